"""Failover: when the first provider keeps failing, send through the second for a while.

"Keeps failing" is `threshold` retryable failures in a row (unreachable, 5xx, 429, an
account problem); our own rate limit does not count, and a rejection of one message says
nothing about the provider. After `cooldown` seconds the first provider is tried again.
Both providers use our message id as their idempotency key where they have one, but a
message whose first attempt timed out may, after failover, reach the learner twice: the
price of not leaving it stuck (docs/sms-gateway.md).
"""
import logging
import threading
import time

from services.notifications.providers.base import ACCEPTED, RETRY, SendResult, SmsRequest

log = logging.getLogger(__name__)


class Failover:
    def __init__(self, primary, secondary, threshold: int = 3, cooldown: float = 60.0,
                 clock=time.monotonic):
        self.primary = primary
        self.secondary = secondary
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.name = f"{primary.name}+{secondary.name}"
        self._failures = 0
        self._secondary_until = 0.0
        self._lock = threading.Lock()

    @property
    def providers(self):
        return (self.primary, self.secondary)

    def current(self):
        with self._lock:
            return self.secondary if self.clock() < self._secondary_until else self.primary

    def send(self, request: SmsRequest) -> SendResult:
        provider = self.current()
        result = provider.send(request)
        if provider is self.primary:
            self._observe(result)
        return result

    def _observe(self, result: SendResult) -> None:
        with self._lock:
            if result.outcome == ACCEPTED:
                self._failures = 0
            elif result.outcome == RETRY and not result.throttled:
                self._failures += 1
                if self._failures >= self.threshold:
                    log.warning("SMS provider %s failed %s times in a row (%s); sending "
                                "through %s for %ss", self.primary.name, self._failures,
                                result.error, self.secondary.name, self.cooldown)
                    self._secondary_until = self.clock() + self.cooldown
                    self._failures = 0
