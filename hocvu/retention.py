"""Forgetting old records, once an hour, from a loop the service already runs.

The platform keeps no TTL index: SecantusDB's TTL sweeper reads and decodes every document of
such a collection each minute while holding the store's lock, which grew to 6 % of the store's
time during the launch burst (docs/performance.md). A purge through an ordinary index costs
one query an hour.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from hocvu.clock import utcnow


@dataclass(frozen=True)
class RetentionRule:
    collection: object                      # a pymongo Collection
    expired: Callable[[datetime], dict]     # the filter of what is old at the given cutoff
    keep: timedelta


class HourlyPurge:
    def __init__(self, every: timedelta = timedelta(hours=1)):
        self.rules: list[RetentionRule] = []
        self.every = every
        self.next_run = utcnow()

    def add(self, rule: RetentionRule) -> None:
        self.rules.append(rule)

    def run_when_due(self, now: datetime | None = None) -> int:
        """Delete what every rule says is old, if the hour has come; return how many."""
        now = now or utcnow()
        if now < self.next_run:
            return 0
        self.next_run = now + self.every
        return sum(rule.collection.delete_many(rule.expired(now - rule.keep)).deleted_count
                   for rule in self.rules)
