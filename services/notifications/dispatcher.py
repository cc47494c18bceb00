"""The SMS dispatcher: sends queued messages through the provider, several at a time.

One notifications instance dispatches at a time, under a lease it renews a few times a
lease (hocvu.leases.OwnerLease; a crashed owner's lease runs out and another instance takes
over): so a message needs no claim written on it before it is sent. Each round reads the due
entries of the queue (repository.py), sends them concurrently, appends the outcomes
(accepted, or failed for good) in one insert and deletes their entries in one command; a
retry later with exponential backoff (the provider is down, slow or rate limiting) or a
hold is the one change written onto an entry.

The sign-in codes' lane has a loop of its own (`express`, under a lease of its own): a code
never waits for a round of confirmations to be sent and recorded, which under a launch
morning's load took seconds (docs/performance.md).

Before a claimed message is sent, the send policy (policy.py) may hold it: a reminder at
night or over the day's cap waits for the next allowed moment (`held_reason` says why),
one to a number that opted out is `suppressed`. A send refused by our own token bucket
is put back without counting an attempt. A sign-in code SMS whose code has expired is
`failed` ("code expired") instead of sent, checked at the last moment before the request.
"""
import logging
from datetime import timedelta

from eventlet import GreenPool
from pymongo import UpdateOne

from hocvu import backoff, metrics
from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from hocvu.leases import OwnerLease
from hocvu.privacy import mask_phone
from services.notifications import policy, providers, repository, sign_in_codes
from services.notifications.domain import (ACCEPTED, FAILED, LANE_ORDER, SUPPRESSED,
                                           Settlement)
from services.notifications.due import DueReader

log = logging.getLogger(__name__)

# what _send answers for a code that expired before it could go out: nothing was sent
_EXPIRED = providers.SendResult(outcome=providers.REJECTED, error=sign_in_codes.CODE_EXPIRED)


class DispatchLoop(WakeableLoop):
    name = "notifications.sms_dispatcher"

    def __init__(self, messages, provider, settings, send_policy=None, clock=utcnow,
                 lanes: tuple[int, ...] = LANE_ORDER, job: str = "dispatcher",
                 name: str | None = None):
        """`settings`: the service's (settings.NotificationsSettings). `lanes`: those it
        reads, in order, under the lease named `job` (one instance at a time per job)."""
        super().__init__()
        self.name = name or self.name
        self.db = messages.database
        self.queue = self.db[repository.QUEUE]
        self.provider = provider
        self.policy = send_policy
        self.clock = clock
        self.brandname = settings.brandname
        self.max_attempts = settings.max_attempts
        self.max_backoff = settings.max_backoff
        self.poll_seconds = settings.poll_seconds
        self.linger_seconds = settings.linger_seconds
        self.owner = OwnerLease(self.db["sms_dispatcher"], job, settings.lease)
        self.pool = GreenPool(settings.send_concurrency)
        self.batch_size = settings.batch_size
        self.lanes = [DueReader(self.queue, settings.batch_size, lane) for lane in lanes]
        self.opener = settings.opener
        # how to wake the instance that holds this job's lease, when it is another one
        # (hocvu.nudges); None: wake this loop, whoever holds it
        self.nudge = None

    def wake(self) -> None:
        """A worker stored work for this loop: wake it here if this instance holds the lease,
        else nudge the instance that does (its poll would find the work a second later)."""
        if self.nudge is None or self.owner.last_held():
            super().wake()
        else:
            self.nudge(self.owner.job)

    def nudged(self) -> None:
        """Another instance stored work: a round, if this instance holds the lease."""
        if self.owner.last_held():
            super().wake()

    def run_once(self) -> bool:
        if not self.owner.hold():
            return False  # another instance dispatches
        now = self.clock()
        batch, more = self._due(now)
        batch = self._not_yet_sent(batch)
        sendable, settled, changes = [], [], []
        # the round's decisions at once: one read of opt-outs, one of what each number got today
        ruled = (self.policy.decide_many(batch) if self.policy and batch else
                 [policy.Decision(policy.SEND)] * len(batch))
        for entry, decision in zip(batch, ruled):
            if decision.action == policy.SEND:
                sendable.append(entry)
            else:
                self._hold(entry, decision, settled, changes)
        for entry, result in zip(sendable, self._send_in_order(sendable)):
            self._record(entry, result, settled, changes)
        self._write(settled, changes)
        return more

    def _not_yet_sent(self, batch: list[dict]) -> list[dict]:
        """The entries of `batch` whose message has no outcome yet. One that has was queued
        again after it went (two releases racing), or outlived the round that sent it (the
        process stopped between recording the outcome and deleting the entry): it is
        deleted, not sent twice. One read of the batch's possible outcome ids."""
        if not batch:
            return batch
        done = set(repository.outcomes_of(self.db, [entry["_id"] for entry in batch]))
        if done:
            self.queue.delete_many({"_id": {"$in": list(done)}})
        return [entry for entry in batch if entry["_id"] not in done]

    def _write(self, settled: list, changes: list) -> None:
        """The round's outcomes (one insert), then the entries they end (one delete) and the
        retries and holds (one bulk write). In that order: an entry outliving its outcome is
        skipped next round (_not_yet_sent), never sent again."""
        if settled:
            repository.record(self.db, settled, self.clock(),
                              known={entry["_id"]: [] for entry, _ in settled})
            self.queue.delete_many({"_id": {"$in": [entry["_id"] for entry, _ in settled]}})
        if changes:
            self.queue.bulk_write(changes, ordered=False)

    def _due(self, now) -> tuple[list[dict], bool]:
        """A round's messages, lane by lane: a lane is read only for the room the lanes
        above it left, so a sign-in code waits for one round at most, whatever waits below."""
        batch, more = [], False
        for lane in self.lanes:
            room = self.batch_size - len(batch)
            if not room:
                return batch, True
            found, lane_more = lane.read(now, room)
            batch += found
            more = more or lane_more
        return batch, more

    def stop(self, wait: bool = True) -> None:
        super().stop(wait)
        self.owner.let_go()

    def _send_in_order(self, messages: list[dict]) -> list[providers.SendResult]:
        """Several numbers at once, each number's messages one after another in the round's
        order (a confirmation brought forward before its certificate, repository.py)."""
        by_number: dict[str, list[int]] = {}
        for position, message in enumerate(messages):
            by_number.setdefault(message["to"], []).append(position)
        results: list = [None] * len(messages)
        for sent in self.pool.imap(
                lambda positions: [(p, self._send(messages[p])) for p in positions],
                by_number.values()):
            for position, result in sent:
                results[position] = result
        return results

    def _hold(self, entry: dict, decision: policy.Decision, settled: list,
              changes: list) -> None:
        if decision.action == policy.SUPPRESS:
            settled.append((entry, Settlement(SUPPRESSED, {
                "last_error": decision.reason, "suppressed_at": self.clock()})))
        else:
            changes.append(_change(entry, {"next_attempt_at": decision.until,
                                           "held_reason": decision.reason}))

    def _send(self, message: dict) -> providers.SendResult:
        # here, not at claim time: a message may wait in the pool behind slow sends
        if sign_in_codes.expired(message, self.clock()):
            return _EXPIRED
        return self.provider.send(providers.SmsRequest(
            request_id=message["_id"], to=message["to"],
            text=sign_in_codes.text_to_send(message, self.opener),
            encoding=message["encoding"], brandname=self.brandname))

    def _record(self, entry: dict, result: providers.SendResult, settled: list,
                changes: list) -> None:
        """What the provider answered, as an outcome (`settled`) or a change to the entry
        (`changes`), written together at the end of the round."""
        now = self.clock()
        if result.throttled:
            # our own bucket said "not yet": no attempt was made, none is counted
            changes.append(_change(entry, {
                "next_attempt_at": now + timedelta(seconds=result.retry_after or 1),
                "held_reason": result.error}))
            return
        if result is _EXPIRED:
            log.info("SMS %s to %s not sent: its sign-in code expired first",
                     entry["_id"], mask_phone(entry["to"]))
            settled.append((entry, Settlement(FAILED, {"last_error": result.error,
                                                       "failed_at": now})))
            return
        attempts = entry["attempts"] + 1
        metrics.sms_send_attempt("notifications", result.outcome)
        if result.outcome == providers.ACCEPTED:
            settled.append((entry, Settlement(ACCEPTED, {
                "provider": result.provider or self.provider.name, "attempts": attempts,
                "provider_message_id": result.provider_message_id, "accepted_at": now,
                "to": entry["to"],  # the daily caps count these (policy.py)
                "sms_class": entry.get("sms_class") or policy.class_of(entry["template"])})))
            return
        if result.outcome == providers.RETRY and attempts < self.max_attempts:
            delay = result.retry_after or backoff.exponential(attempts, self.max_backoff,
                                                              first=2)
            log.warning("SMS %s to %s not accepted (%s); attempt %s, retrying in %ss",
                        entry["_id"], mask_phone(entry["to"]), result.error, attempts, delay)
            changes.append(_change(entry, {
                "attempts": attempts, "last_error": result.error, "held_reason": None,
                "next_attempt_at": now + timedelta(seconds=delay)}))
            return
        log.error("SMS %s to %s failed for good after %s attempts: %s",
                  entry["_id"], mask_phone(entry["to"]), attempts, result.error)
        settled.append((entry, Settlement(FAILED, {"attempts": attempts,
                                                   "last_error": result.error,
                                                   "failed_at": now})))


def _change(entry: dict, fields: dict) -> UpdateOne:
    """Change a queue entry (a retry, a hold): nothing else writes it while it is queued."""
    return UpdateOne({"_id": entry["_id"]}, {"$set": fields})
