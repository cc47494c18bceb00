"""Nothing stuck silently: messages that wait too long are settled and counted.

- A message `awaiting_contact` for longer than SMS_CONTACT_TIMEOUT_SECONDS (default one
  day) is `failed` with the reason "no phone number": we know it never left.
- A message `accepted` without a delivery report for longer than
  SMS_REPORT_TIMEOUT_SECONDS (default one hour) is looked up with its provider where the
  provider's API allows it (eSMS); what it says is recorded. If it cannot say (SpeedSMS,
  the simulator) or still says "pending" after SMS_REPORT_GIVE_UP_SECONDS (default one
  day), the message becomes `unknown`. A delivery report arriving later still wins.

Each such end is written by repository.settle, as a report's would be, and so announced
(sms_outcome) for reporting to count.

`summary()` counts messages per status and those stuck, for the metrics route (`gauges()`)
and the ops command (python -m hocvu_tools.ops sms).
"""
import logging
from datetime import datetime, timedelta
from typing import Callable

import requests
from pymongo import UpdateOne

from hocvu import metrics
from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from services.notifications import domain
from services.notifications import providers
from services.notifications.repository import settle

log = logging.getLogger(__name__)


class Reconciler(WakeableLoop):
    name = "notifications.reconciler"

    def __init__(self, messages, provider, settings, clock: Callable[[], datetime] = utcnow):
        """`settings`: the service's (settings.NotificationsSettings)."""
        super().__init__()
        self.messages = messages
        self.provider = provider
        self.clock = clock
        self.poll_seconds = settings.reconcile_poll_seconds
        self.contact_timeout = settings.contact_timeout
        self.report_timeout = settings.report_timeout
        self.give_up = settings.report_give_up
        self.batch_size = settings.reconcile_batch_size

    def run_once(self) -> bool:
        now = self.clock()
        # a message awaiting its contact keeps next_attempt_at at its creation time
        overdue = [message for lane in domain.LANE_ORDER for message in self.messages.find(
            {"status": domain.AWAITING_CONTACT, "lane": lane,
             "next_attempt_at": {"$lte": now - self.contact_timeout}}).limit(self.batch_size)]
        changes = [settle(message, domain.Settlement(domain.FAILED, {
            "last_error": "no phone number", "failed_at": now}, (domain.AWAITING_CONTACT,)), now)
            for message in overdue]
        waiting = list(self.messages.find({
            "status": domain.ACCEPTED, "accepted_at": {"$lte": now - self.report_timeout},
            "next_check_at": {"$not": {"$gt": now}},  # never checked, or due again
        }).limit(self.batch_size))
        changes += [self._settlement(message, now) for message in waiting]
        if changes:
            self.messages.bulk_write(changes, ordered=False)
        return len(waiting) == self.batch_size or len(overdue) >= self.batch_size

    def _settlement(self, message: dict, now: datetime) -> UpdateOne:
        """What the provider says of an accepted message without a report (where it can be
        asked), or `unknown` once it cannot say in time."""
        adapter = providers.by_name(self.provider, message.get("provider") or "")
        answer = None
        if adapter is not None and adapter.can_query_status and message.get("provider_message_id"):
            try:
                answer = adapter.query_status(message["provider_message_id"])
            except (requests.RequestException, ValueError) as exc:
                log.warning("status of SMS %s unavailable from %s: %s", message["_id"],
                            adapter.name, type(exc).__name__)
        accepted = (domain.ACCEPTED,)
        if answer == providers.DELIVERED:
            return settle(message, domain.Settlement(domain.DELIVERED, {
                "delivered_at": now, "reconciled_at": now}, accepted), now)
        if answer == providers.UNDELIVERED:
            return settle(message, domain.Settlement(domain.UNDELIVERED, {
                "last_error": "provider status: undelivered", "reconciled_at": now}, accepted),
                now)
        if answer == providers.PENDING and message["accepted_at"] > now - self.give_up:
            return UpdateOne({"_id": message["_id"], "status": domain.ACCEPTED},
                             {"$set": {"next_check_at": now + self.report_timeout}})
        why = ("no delivery report, and the provider still says pending"
               if answer == providers.PENDING else
               "no delivery report, and the provider's status could not be asked")
        log.warning("SMS %s through %s is now unknown: %s", message["_id"],
                    message.get("provider"), why)
        return settle(message, domain.Settlement(domain.UNKNOWN, {
            "last_error": why, "reconciled_at": now}, accepted), now)


def stuck_queries(now: datetime, older_than: timedelta) -> list[dict]:
    """Messages not settled although they should have been by now: one read through an index
    per state (a top-level $or would make the embedded store read every message)."""
    before = now - older_than
    return [*({"status": status, "lane": lane, "next_attempt_at": {"$lte": before}}
              for status in (domain.AWAITING_CONTACT, domain.QUEUED)
              for lane in domain.LANE_ORDER),
            {"status": domain.ACCEPTED, "accepted_at": {"$lte": before}}]


FAILED_STATUSES = (domain.FAILED, domain.UNDELIVERED, domain.UNKNOWN, domain.SUPPRESSED)


def summary(messages, now: datetime, older_than: timedelta) -> dict:
    """Messages per stored status and those stuck, each counted through the status index."""
    by_status = {status: n for status in sorted(domain.LEARNER_STATUSES)
                 if (n := messages.count_documents({"status": status}))}
    return {"by_status": by_status,
            "stuck": sum(messages.count_documents(query)
                         for query in stuck_queries(now, older_than))}


def gauges(messages, stuck_after: timedelta, service_name: str):
    """The SMS gauges of the metrics route (hocvu.metrics.on_scrape): messages per stored
    status, those stuck (older than `stuck_after`, SMS_STUCK_AFTER_SECONDS), and the
    dispatcher's backlog (queued and due now: waiting only for the dispatcher)."""
    now = utcnow()
    counts = summary(messages, now, stuck_after)
    by_status = {status: counts["by_status"].get(status, 0)
                 for status in sorted(set(domain.LEARNER_STATUSES) | set(counts["by_status"]))}
    yield metrics.gauge("hocvu_sms_messages", "SMS messages by stored status.", service_name,
                        {(status,): n for status, n in by_status.items()}, ("status",))
    yield metrics.gauge("hocvu_sms_stuck", "SMS not settled although they should be by now.",
                        service_name, counts["stuck"])
    backlog = sum(messages.count_documents({"status": domain.QUEUED, "lane": lane,
                                            "next_attempt_at": {"$lte": now}})
                  for lane in domain.LANE_ORDER)
    yield metrics.gauge("hocvu_sms_dispatch_backlog",
                        "SMS queued and due now, waiting for the dispatcher.", service_name,
                        backlog)
