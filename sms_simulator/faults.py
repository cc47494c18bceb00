"""Injected failures: a share of sends answered as unavailable, and a rate limit."""
import math
import random
import threading
import time
from collections import deque

WINDOW_SECONDS = 60.0


class RateLimited(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"rate limited; retry after {retry_after}s")
        self.retry_after = retry_after


class Faults:
    """Fault settings that can change while the server runs, and the rolling minute."""

    def __init__(self, fail_rate: float = 0.0, rate_limit_per_minute: int | None = None,
                 *, seed: int | None = None, clock=time.monotonic):
        self._lock = threading.Lock()
        self._fail_rate = fail_rate
        self._limit = rate_limit_per_minute
        self._random = random.Random(seed)
        self._clock = clock
        # Kept even with no limit set, so that a limit set later sees the recent past.
        self._accepted_at: deque[float] = deque()

    def settings(self) -> dict:
        with self._lock:
            return {"fail_rate": self._fail_rate, "rate_limit_per_minute": self._limit}

    def update(self, changes: dict) -> dict:
        with self._lock:
            self._fail_rate = changes.get("fail_rate", self._fail_rate)
            self._limit = changes.get("rate_limit_per_minute", self._limit)
        return self.settings()

    def should_fail(self) -> bool:
        with self._lock:
            return self._fail_rate > 0 and self._random.random() < self._fail_rate

    def admit(self) -> None:
        """Count one accepted message, or raise RateLimited if the minute is full."""
        with self._lock:
            now = self._clock()
            while self._accepted_at and self._accepted_at[0] <= now - WINDOW_SECONDS:
                self._accepted_at.popleft()
            if self._limit is not None and len(self._accepted_at) >= self._limit:
                if self._accepted_at:
                    wait = self._accepted_at[0] + WINDOW_SECONDS - now
                else:
                    wait = WINDOW_SECONDS
                raise RateLimited(max(1, math.ceil(wait)))
            self._accepted_at.append(now)

    def reset_window(self) -> None:
        with self._lock:
            self._accepted_at.clear()
