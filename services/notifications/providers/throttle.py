"""A token bucket per provider account, shared by the dispatcher's green threads.

A send that finds the bucket empty is not made: it comes back as a retry after the time
the next token needs, without an attempt counted, so one busy account never makes the
dispatcher wait. A provider's own 429 (or 5xx with Retry-After) empties the bucket until
the time it asked for, so the messages behind it wait too instead of hitting it again.
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

    def take(self) -> float:
        """Take a token and return 0, or return the seconds until one is available."""
        with self._lock:
            now = self.clock()
            if now < self._paused_until:
                return self._paused_until - now
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def pause(self, seconds: float) -> None:
        with self._lock:
            now = self.clock()
            self._paused_until = max(self._paused_until, now + seconds)
            self._tokens = 0
            self._updated = now


class Throttled:
    """An adapter behind its account's token bucket."""

    def __init__(self, provider, bucket: TokenBucket):
        self.provider = provider
        self.bucket = bucket
        self.name = provider.name
        self.can_query_status = getattr(provider, "can_query_status", False)

    def send(self, request: SmsRequest) -> SendResult:
        wait = self.bucket.take()
        if wait > 0:
            return SendResult(RETRY, error=f"{self.name} rate limit (ours)", retry_after=wait,
                              throttled=True, provider=self.name)
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
