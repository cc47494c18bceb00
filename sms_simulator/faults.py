"""Injected failures: a share of sends answered as unavailable, and a rate limit.

A 429's Retry-After is written in either form RFC 9110 allows, as `retry_after_format`
says: "seconds" (delay-seconds) or "http-date" (an IMF-fixdate in GMT).
"""
import email.utils
import math
import random
import threading
import time
from collections import deque

WINDOW_SECONDS = 60.0


RETRY_AFTER_FORMATS = ("seconds", "http-date")


class RateLimited(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"rate limited; retry after {retry_after}s")
        self.retry_after = retry_after


def retry_after_header(seconds: int, form: str, wall_clock=time.time) -> str:
    if form == "http-date":
        return email.utils.formatdate(wall_clock() + seconds, usegmt=True)
    return str(seconds)


class Faults:
    """Fault settings that can change while the server runs, and the rolling minute."""

    def __init__(self, fail_rate: float = 0.0, rate_limit_per_minute: int | None = None,
                 *, seed: int | None = None, clock=time.monotonic,
                 retry_after_format: str = "seconds"):
        self._lock = threading.Lock()
        self._fail_rate = fail_rate
        self._limit = rate_limit_per_minute
        self._retry_after_format = retry_after_format
        self._random = random.Random(seed)
        self._clock = clock
        # Kept even with no limit set, so that a limit set later sees the recent past.
        self._accepted_at: deque[float] = deque()

    def settings(self) -> dict:
        with self._lock:
            return {"fail_rate": self._fail_rate, "rate_limit_per_minute": self._limit,
                    "retry_after_format": self._retry_after_format}

    def update(self, changes: dict) -> dict:
        with self._lock:
            self._fail_rate = changes.get("fail_rate", self._fail_rate)
            self._limit = changes.get("rate_limit_per_minute", self._limit)
            self._retry_after_format = changes.get("retry_after_format",
                                                   self._retry_after_format)
        return self.settings()

    def retry_after(self, seconds: int) -> str:
        with self._lock:
            form = self._retry_after_format
        return retry_after_header(seconds, form)

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
