"""Health for operations, on each service's own port (the edge never routes it):

- `GET /api/<service>/health/live`: the process answers HTTP and can still recover by
  itself. No I/O at all, so a supervisor restarts only a process that is truly stuck, never
  one whose store or broker is away: it answers 503 only when a queue consumer's thread
  has ended, or has shown no sign of life for hocvu.messaging.STALL_SECONDS (every wait
  it makes is bounded, so that means stuck where no retry reaches).
- `GET /api/<service>/health/ready`: the service reaches its broker and its store, and
  each of its queue consumers is consuming (not connecting again after an outage), so a
  load balancer may send it traffic and an alert fires while it is not. Each check's
  result (the consumers' aside, known in memory) is kept for CACHE_SECONDS: a flood
  of probes costs one broker connection and one ping per few seconds; and each check gives
  up after CHECK_TIMEOUT_SECONDS, so an unresponsive store or broker makes it answer 503
  within about two seconds instead of hanging. No collection is read or counted.
"""
import logging
import threading
import time

import eventlet
import pymongo
from kombu import Connection

from hocvu import messaging

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
CHECK_TIMEOUT_SECONDS = 1.0

# The bodies, as the OpenAPI documents state them.
LIVE_ANSWER = {"type": "object", "required": ["status", "service"], "additionalProperties": False,
               "properties": {"status": {"type": "string", "enum": ["ok"]},
                              "service": {"type": "string"}}}
STUCK_ANSWER = {"type": "object", "required": ["status", "service", "problems"],
                "additionalProperties": False,
                "properties": {"status": {"type": "string", "enum": ["stuck"]},
                               "service": {"type": "string"},
                               "problems": {"type": "array", "items": {"type": "string"}}}}
READY_ANSWER = {"type": "object", "required": ["status", "service", "checks"],
                "additionalProperties": False,
                "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]},
                               "service": {"type": "string"},
                               "checks": {"type": "object", "additionalProperties": {
                                   "type": "string", "enum": ["ok", "unreachable"]}}}}


def live(service_name: str) -> tuple[int, dict]:
    problems = messaging.consumers_stuck(service_name)
    if problems:
        log.error("liveness: %s cannot recover by itself: %s", service_name, "; ".join(problems))
        return 503, {"status": "stuck", "service": service_name, "problems": problems}
    return 200, {"status": "ok", "service": service_name}


def broker_reachable(amqp_uri: str, timeout: float = CHECK_TIMEOUT_SECONDS) -> bool:
    """Can we log in to the broker, or to one of its nodes when AMQP_URI lists a cluster's
    as alternates (`amqp://a;amqp://b;...`)?"""
    try:
        # eventlet.Timeout bounds the AMQP handshake too, which connect_timeout does not
        with eventlet.Timeout(timeout), Connection(amqp_uri, connect_timeout=timeout) as conn:
            # one attempt at each node, with no sleep between them (kombu sleeps only once
            # it has been round them all)
            conn.ensure_connection(max_retries=max(len(conn.alt), 1) - 1)
        return True
    except (Exception, eventlet.Timeout) as exc:
        log.warning("readiness: broker unreachable: %r", exc)
        return False


def store_reachable(store, timeout: float = CHECK_TIMEOUT_SECONDS) -> bool:
    try:
        # a client-side operation timeout: server selection and the socket read both give
        # up after `timeout`, on the service's own connection pool
        with pymongo.timeout(timeout):
            store.ping()
        return True
    except Exception as exc:
        log.warning("readiness: store unreachable: %r", exc)
        return False


class _Cached:
    """One check's last result, refreshed by one caller at a time once it is stale."""

    def __init__(self, check):
        self._check = check
        self._lock = threading.Lock()
        self._result: bool | None = None
        self._checked_at = float("-inf")

    def _fresh(self) -> bool:
        return time.monotonic() - self._checked_at < CACHE_SECONDS

    def get(self) -> bool:
        if self._fresh():
            return self._result
        with self._lock:
            # whoever waited on the lock gets the result the holder just found
            if not self._fresh():
                self._result = self._check()
                self._checked_at = time.monotonic()
            return self._result


_checks: dict[tuple, _Cached] = {}


def _cached(key: tuple, check) -> bool:
    cached = _checks.get(key)
    if cached is None:
        cached = _checks.setdefault(key, _Cached(check))
    return cached.get()


def ready(store, amqp_uri: str) -> tuple[int, dict]:
    """(HTTP status, body): 200 when broker and store both answer and every queue consumer
    consumes, else 503."""
    checks = {
        "broker": _cached(("broker", amqp_uri), lambda: broker_reachable(amqp_uri)),
        "store": _cached(("store", store.service_name, store.db.name, id(store.client)),
                         lambda: store_reachable(store)),
    }
    consuming = messaging.consumers_connected(store.service_name)
    if consuming is not None:  # known in memory: never cached
        checks["consumers"] = consuming
    ok = all(checks.values())
    return (200 if ok else 503), {
        "status": "ok" if ok else "unavailable", "service": store.service_name,
        "checks": {name: "ok" if up else "unreachable" for name, up in checks.items()}}


def forget() -> None:
    """Drop every cached result (tests that stop a store or broker on purpose)."""
    _checks.clear()
