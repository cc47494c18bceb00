"""Waiting for an asynchronous outcome without fixed sleeps."""
import time


def wait_for(condition, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Call `condition` until it returns something truthy; return that, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
