"""A small per-process cache for reference data that changes rarely (the course catalog):
reading it from the store on every request is a round trip to the platform's busiest part.
Absent keys are not cached, so a course published a moment ago is found at once."""
import threading
import time
from typing import Callable


class TtlCache:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self._entries: dict = {}
        self._lock = threading.Lock()

    def get(self, key, load: Callable[[], object]):
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry and now - entry[0] < self.seconds:
            return entry[1]
        value = load()
        if value is not None:
            with self._lock:
                self._entries[key] = (now, value)
        return value

    def forget(self, key) -> None:
        with self._lock:
            self._entries.pop(key, None)
