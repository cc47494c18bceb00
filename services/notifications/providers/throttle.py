"""A token bucket per provider account, shared by the dispatcher's green threads.

A send reserves the next token and waits for it when it is due within `max_wait` (a
second): the round's senders then go at the account's rate, one after another, and nothing
is written back to the store for them. Measured on the 2,600 burst before this: at 50/s, the
dispatcher read a round of 100, sent 50 and put the rest back, four times per message on
average (10,864 queue entries rewritten for 2,650 messages). A token further away than that
(the account paused by the provider's Retry-After, or a backlog of reservations) is not
waited for: the send comes back as a retry at that time, without an attempt counted, so one
paused account never holds the dispatcher. A provider's own 429 (or 5xx with Retry-After)
empties the bucket until the time it asked for, so the messages behind it wait too instead
of hitting it again.
"""
import threading
import time

from services.notifications.providers.base import RETRY, SendResult, SmsRequest


class TokenBucket:
    def __init__(self, rate_per_second: float, burst: float, clock=time.monotonic):
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs a rate > 0 and a burst >= 1")
        self.rate = rate_per_second
        self.burst = burst
        self.clock = clock
        self._tokens = burst
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def reserve(self, max_wait: float = 0.0) -> tuple[bool, float]:
        """The next token for the caller: (True, the seconds to wait before using it, 0 when
        one is there), or (False, the seconds until one could be had) when that is further
        than `max_wait`, and nothing is reserved."""
        with self._lock:
            now = self.clock()
            if now < self._paused_until:
                return False, self._paused_until - now
            # tokens below zero are reservations not yet due
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            wait = max(0.0, (1 - self._tokens) / self.rate)
            if wait > max_wait:
                return False, wait
            self._tokens -= 1
            return True, wait

    def pause(self, seconds: float) -> None:
        with self._lock:
            now = self.clock()
            self._paused_until = max(self._paused_until, now + seconds)
            self._tokens = 0
            self._updated = now


class Throttled:
    """An adapter behind its account's token bucket."""

    def __init__(self, provider, bucket: TokenBucket, max_wait: float = 1.0,
                 sleep=time.sleep):
        self.provider = provider
        self.bucket = bucket
        self.max_wait = max_wait
        self.sleep = sleep  # a green thread's sleep in the service (eventlet patches it)
        self.name = provider.name
        self.can_query_status = getattr(provider, "can_query_status", False)

    def send(self, request: SmsRequest) -> SendResult:
        granted, wait = self.bucket.reserve(self.max_wait)
        if not granted:
            return SendResult(RETRY, error=f"{self.name} rate limit (ours)", retry_after=wait,
                              throttled=True, provider=self.name)
        if wait:
            self.sleep(wait)
        result = self.provider.send(request)
        if result.outcome == RETRY and result.retry_after:
            self.bucket.pause(result.retry_after)
        return _named(result, self.name)

    def query_status(self, provider_message_id: str) -> str:
        return self.provider.query_status(provider_message_id)

    def parse_report(self, body):
        return self.provider.parse_report(body)


def _named(result: SendResult, name: str) -> SendResult:
    if result.provider:
        return result
    return SendResult(result.outcome, result.provider_message_id, result.error,
                      result.retry_after, result.throttled, name)
