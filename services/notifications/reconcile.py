"""Nothing stuck silently: messages that wait too long are settled and counted.

- A message waiting for its learner's number for longer than SMS_CONTACT_TIMEOUT_SECONDS
  (default one day) is `failed` with the reason "no phone number": we know it never left.
- A message `accepted` without a delivery report for longer than
  SMS_REPORT_TIMEOUT_SECONDS (default one hour) is looked up with its provider where the
  provider's API allows it (eSMS); what it says is recorded. If it cannot say (SpeedSMS,
  the simulator) or still says "pending" after SMS_REPORT_GIVE_UP_SECONDS (default one
  day), the message becomes `unknown`. A delivery report arriving later still wins.

The accepted messages are walked once each, in the order they were accepted, behind a
cursor kept in `sms_reconciler` (one read of a page of `accepted` outcomes, one of their
later outcomes): what a report settled is passed over, and nothing is read twice however
many messages were sent. One the provider still says is pending waits in `sms_rechecks`
to be asked again.

Each end is recorded by repository.record, as a report's would be, and so announced
(sms_outcome) for reporting to count.

`summary()` counts the messages still waiting and those stuck, for the metrics route
(`gauges()`) and the ops command (python -m hocvu_tools.ops sms).
"""
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

import requests
from pymongo import ASCENDING, UpdateOne

from hocvu import metrics
from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from services.notifications import domain, providers, repository
from services.notifications.domain import Settlement

log = logging.getLogger(__name__)

_CURSOR = "accepted-walk"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_WALK_ORDER = [("at", ASCENDING), ("_id", ASCENDING)]


class Reconciler(WakeableLoop):
    name = "notifications.reconciler"

    def __init__(self, messages, provider, settings, clock: Callable[[], datetime] = utcnow):
        """`settings`: the service's (settings.NotificationsSettings)."""
        super().__init__()
        self.db = messages.database
        self.provider = provider
        self.clock = clock
        self.poll_seconds = settings.reconcile_poll_seconds
        self.contact_timeout = settings.contact_timeout
        self.report_timeout = settings.report_timeout
        self.give_up = settings.report_give_up
        self.batch_size = settings.reconcile_batch_size

    def run_once(self) -> bool:
        now = self.clock()
        overdue = self._without_number(now)
        walked = self._walk_accepted(now)
        rechecked = self._recheck(now)
        return max(overdue, walked, rechecked) >= self.batch_size

    def _without_number(self, now: datetime) -> int:
        waiting = self.db[repository.WAITING]
        overdue = list(waiting.find({"created_at": {"$lte": now - self.contact_timeout}})
                       .limit(self.batch_size))
        repository.record(self.db, [(entry, Settlement(domain.FAILED, {
            "last_error": "no phone number", "failed_at": now})) for entry in overdue], now)
        if overdue:
            waiting.delete_many({"_id": {"$in": [entry["_id"] for entry in overdue]}})
        return len(overdue)

    def _walk_accepted(self, now: datetime) -> int:
        """The next page of messages accepted more than SMS_REPORT_TIMEOUT_SECONDS ago, in
        the order accepted: those still without an end are asked about (or given up)."""
        state = self.db.sms_reconciler
        cursor = state.find_one({"_id": _CURSOR}) or {"at": _EPOCH, "after": ""}
        outcomes = self.db[repository.OUTCOMES]
        # the rest of the cursor's moment, then later moments: two ranges of one index (a
        # top-level $or would make the embedded store read every outcome)
        page = list(outcomes.find({"kind": domain.ACCEPTED, "at": cursor["at"],
                                   "_id": {"$gt": cursor["after"]}})
                    .sort(_WALK_ORDER).limit(self.batch_size))
        if len(page) < self.batch_size:
            page += list(outcomes.find({"kind": domain.ACCEPTED, "at": {
                "$gt": cursor["at"], "$lte": now - self.report_timeout}})
                .sort(_WALK_ORDER).limit(self.batch_size - len(page)))
        if not page:
            return 0
        self._judge(page, now)
        state.update_one({"_id": _CURSOR}, {"$set": {"at": page[-1]["at"],
                                                     "after": page[-1]["_id"]}}, upsert=True)
        return len(page)

    def _recheck(self, now: datetime) -> int:
        """Messages the provider said were still pending, when they are due to be asked
        again."""
        rechecks = self.db[repository.RECHECKS]
        due = list(rechecks.find({"next_check_at": {"$lte": now}}).limit(self.batch_size))
        if due:
            self._judge([entry["accepted"] for entry in due], now)
            rechecks.delete_many({"_id": {"$in": [entry["_id"] for entry in due]},
                                  "next_check_at": {"$lte": now}})
        return len(due)

    def _judge(self, accepted: list[dict], now: datetime) -> None:
        """For each `accepted` outcome whose message has no later one: what the provider
        says, recorded; or, while it still says pending, a recheck later."""
        known = repository.outcomes_of(self.db, [outcome["message_id"] for outcome in accepted])
        open_ = [outcome for outcome in accepted
                 if _still_accepted(known.get(outcome["message_id"], []))]
        if not open_:
            return
        messages = {message["_id"]: message for message in self.db.messages.find(
            {"_id": {"$in": [outcome["message_id"] for outcome in open_]}},
            projection=dict.fromkeys(repository.OUTCOME_FIELDS, 1))}
        settled, later = [], []
        for outcome in open_:
            message = messages.get(outcome["message_id"], {"_id": outcome["message_id"]})
            settlement = self._settlement(outcome, now)
            if settlement is None:
                later.append(outcome)
            else:
                settled.append((message, settlement))
        repository.record(self.db, settled, now, known=known)
        if later:
            self.db[repository.RECHECKS].bulk_write([UpdateOne(
                {"_id": outcome["message_id"]},
                {"$set": {"accepted": {key: value for key, value in outcome.items()
                                       if key != "to"},  # no number kept here
                          "next_check_at": now + self.report_timeout}},
                upsert=True) for outcome in later], ordered=False)

    def _settlement(self, accepted: dict, now: datetime) -> Settlement | None:
        """What the provider says of an accepted message without a report (where it can be
        asked): an end, or None to ask again later; `unknown` once it cannot say in time."""
        fields = accepted.get("fields") or {}
        adapter = providers.by_name(self.provider, fields.get("provider") or "")
        answer = None
        if adapter is not None and adapter.can_query_status and fields.get("provider_message_id"):
            try:
                answer = adapter.query_status(fields["provider_message_id"])
            except (requests.RequestException, ValueError) as exc:
                log.warning("status of SMS %s unavailable from %s: %s", accepted["message_id"],
                            adapter.name, type(exc).__name__)
        if answer == providers.DELIVERED:
            return Settlement(domain.DELIVERED, {"delivered_at": now, "reconciled_at": now})
        if answer == providers.UNDELIVERED:
            return Settlement(domain.UNDELIVERED, {
                "last_error": "provider status: undelivered", "reconciled_at": now})
        if answer == providers.PENDING and accepted["at"] > now - self.give_up:
            return None
        why = ("no delivery report, and the provider still says pending"
               if answer == providers.PENDING else
               "no delivery report, and the provider's status could not be asked")
        log.warning("SMS %s through %s is now unknown: %s", accepted["message_id"],
                    fields.get("provider"), why)
        return Settlement(domain.UNKNOWN, {"last_error": why, "reconciled_at": now})


def _still_accepted(outcomes: list[dict]) -> bool:
    top = domain.leading(outcomes)
    return top is not None and top["kind"] == domain.ACCEPTED


def stuck_queries(now: datetime, older_than: timedelta) -> list[tuple[str, dict]]:
    """(collection, filter) of the messages not sent although they should have been by now:
    each one range of an index (a top-level $or would make the embedded store read every
    entry)."""
    before = now - older_than
    return [*((repository.QUEUE, {"lane": lane, "next_attempt_at": {"$lte": before}})
              for lane in domain.LANE_ORDER),
            (repository.WAITING, {"created_at": {"$lte": before}})]


FAILED_STATUSES = (domain.FAILED, domain.UNDELIVERED, domain.UNKNOWN, domain.SUPPRESSED)


def summary(messages, now: datetime, older_than: timedelta) -> dict:
    """The messages still waiting (queued, or for a number) and those stuck, each counted
    through an index of the entries: never over the messages sent (those are counted as
    their outcomes are recorded, hocvu_sms_outcomes_total)."""
    db = messages.database
    queued = sum(db[repository.QUEUE].count_documents({"lane": lane})
                 for lane in domain.LANE_ORDER)
    waiting = db[repository.WAITING].count_documents({"created_at": {"$lte": now}})
    return {"by_status": {domain.QUEUED: queued, domain.AWAITING_CONTACT: waiting},
            "stuck": sum(db[collection].count_documents(query)
                         for collection, query in stuck_queries(now, older_than))}


def gauges(messages, stuck_after: timedelta, service_name: str):
    """The SMS gauges of the metrics route (hocvu.metrics.on_scrape): messages waiting, by
    status (queued, awaiting_contact), those stuck (older than `stuck_after`,
    SMS_STUCK_AFTER_SECONDS), and the dispatcher's backlog (queued and due now: waiting only
    for the dispatcher)."""
    now = utcnow()
    counts = summary(messages, now, stuck_after)
    yield metrics.gauge("hocvu_sms_messages", "SMS waiting, by status (queued, "
                        "awaiting_contact).", service_name,
                        {(status,): n for status, n in counts["by_status"].items()},
                        ("status",))
    yield metrics.gauge("hocvu_sms_stuck", "SMS not sent although they should be by now.",
                        service_name, counts["stuck"])
    queue = messages.database[repository.QUEUE]
    backlog = sum(queue.count_documents({"lane": lane, "next_attempt_at": {"$lte": now}})
                  for lane in domain.LANE_ORDER)
    yield metrics.gauge("hocvu_sms_dispatch_backlog",
                        "SMS queued and due now, waiting for the dispatcher.", service_name,
                        backlog)
