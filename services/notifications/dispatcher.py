"""The SMS dispatcher: sends queued messages through the provider, several at a time.

One notifications instance dispatches at a time, under a lease it renews a few times a
lease (hocvu.leases.OwnerLease; a crashed owner's lease runs out and another instance takes
over): so a message needs no claim written on it before it is sent. Each round reads the due
messages, sends them concurrently, and records every outcome in one bulk write: accepted,
retry later with exponential backoff (the provider is down, slow or rate limiting), or
failed for good.

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
from pymongo.errors import PyMongoError

from hocvu import backoff, metrics
from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from hocvu.leases import OwnerLease
from hocvu.privacy import mask_phone
from services.notifications import policy, providers, sign_in_codes
from services.notifications.domain import (ACCEPTED, DELIVERED, FAILED, LANE_ORDER, QUEUED,
                                           SUPPRESSED, UNDELIVERED, Settlement)
from services.notifications.due import DueReader
from services.notifications.repository import settle

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
        self.messages = messages
        self.provider = provider
        self.policy = send_policy
        self.clock = clock
        self.brandname = settings.brandname
        self.max_attempts = settings.max_attempts
        self.max_backoff = settings.max_backoff
        self.poll_seconds = settings.poll_seconds
        self.linger_seconds = settings.linger_seconds
        self.owner = OwnerLease(messages.database["sms_dispatcher"], job, settings.lease)
        self.pool = GreenPool(settings.send_concurrency)
        self.batch_size = settings.batch_size
        self.lanes = [DueReader(messages, settings.batch_size, lane) for lane in lanes]
        self.opener = settings.opener

    def run_once(self) -> bool:
        if not self.owner.hold():
            return False  # another instance dispatches
        batch, more = self._due(self.clock())
        sendable, decisions, outcomes = [], {}, []
        # the round's decisions at once: one read of opt-outs, one write of daily-cap slots
        ruled = (self.policy.decide_many(batch) if self.policy and batch else
                 [policy.Decision(policy.SEND)] * len(batch))
        for message, decision in zip(batch, ruled):
            if decision.action == policy.SEND:
                sendable.append(message)
                decisions[message["_id"]] = decision
            else:
                outcomes += self._hold(message, decision)
        for message, result in zip(sendable, self._send_in_order(sendable)):
            if result.outcome != providers.ACCEPTED and self.policy:
                self.policy.give_back(decisions[message["_id"]])
            outcomes += self._record(message, result)
        if outcomes:
            self.messages.bulk_write(outcomes, ordered=True)
        return more

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
        try:
            self.owner.release()
        except PyMongoError:
            pass  # the store is away: the lease runs out by itself

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

    def _hold(self, message: dict, decision: policy.Decision) -> list:
        if decision.action == policy.SUPPRESS:
            now = self.clock()
            return [settle(message, Settlement(SUPPRESSED, {
                "last_error": decision.reason, "suppressed_at": now}, (QUEUED,)), now)]
        return [_change(message, {"next_attempt_at": decision.until,
                                  "held_reason": decision.reason})]

    def _send(self, message: dict) -> providers.SendResult:
        # here, not at claim time: a message may wait in the pool behind slow sends
        if sign_in_codes.expired(message, self.clock()):
            return _EXPIRED
        return self.provider.send(providers.SmsRequest(
            request_id=message["_id"], to=message["to"],
            text=sign_in_codes.text_to_send(message, self.opener),
            encoding=message["encoding"], brandname=self.brandname))

    def _record(self, message: dict, result: providers.SendResult) -> list:
        """The writes that record what the provider answered (made in one bulk per round)."""
        now = self.clock()
        if result.throttled:
            # our own bucket said "not yet": no attempt was made, none is counted
            return [_change(message, {
                "next_attempt_at": now + timedelta(seconds=result.retry_after or 1),
                "held_reason": result.error})]
        if result is _EXPIRED:
            log.info("SMS %s to %s not sent: its sign-in code expired first",
                     message["_id"], mask_phone(message["to"]))
            return [_failed(message, {"last_error": result.error, "failed_at": now}, now)]
        attempts = message["attempts"] + 1
        metrics.sms_send_attempt("notifications", result.outcome)
        if result.outcome == providers.ACCEPTED:
            accepted = {"provider": result.provider or self.provider.name, "attempts": attempts,
                        "provider_message_id": result.provider_message_id, "accepted_at": now}
            return [
                settle(message, Settlement(ACCEPTED, accepted, (QUEUED,)), now),
                # the delivery report was quicker than us and already settled it
                UpdateOne({"_id": message["_id"], "status": {"$in": [DELIVERED, UNDELIVERED]},
                           "accepted_at": {"$exists": False}}, {"$set": accepted})]
        if result.outcome == providers.RETRY and attempts < self.max_attempts:
            delay = result.retry_after or backoff.exponential(attempts, self.max_backoff,
                                                              first=2)
            log.warning("SMS %s to %s not accepted (%s); attempt %s, retrying in %ss",
                        message["_id"], mask_phone(message["to"]), result.error, attempts, delay)
            return [_change(message, {
                "attempts": attempts, "last_error": result.error, "held_reason": None,
                "next_attempt_at": now + timedelta(seconds=delay)})]
        log.error("SMS %s to %s failed for good after %s attempts: %s",
                  message["_id"], mask_phone(message["to"]), attempts, result.error)
        return [_failed(message, {"attempts": attempts, "last_error": result.error,
                                  "failed_at": now}, now)]


def _change(message: dict, fields: dict) -> UpdateOne:
    """Change a message the dispatcher read as queued, if nothing settled it meanwhile."""
    return UpdateOne({"_id": message["_id"], "status": QUEUED}, {"$set": fields})


def _failed(message: dict, fields: dict, now) -> UpdateOne:
    """A message the dispatcher read as queued failed for good, if nothing settled it
    meanwhile (a delivery report can overtake the send's own answer)."""
    return settle(message, Settlement(FAILED, fields, (QUEUED,)), now)
