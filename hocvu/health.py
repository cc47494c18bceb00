"""The health check every service answers at GET /api/<service>/health."""
import logging

from kombu import Connection

log = logging.getLogger(__name__)


def broker_reachable(amqp_uri: str, timeout: float = 2.0) -> bool:
    try:
        with Connection(amqp_uri, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1)
        return True
    except Exception as exc:
        log.warning("health: broker unreachable: %r", exc)
        return False


def store_reachable(store) -> bool:
    try:
        store.ping()
        return True
    except Exception as exc:
        log.warning("health: store unreachable: %r", exc)
        return False


def check(store, amqp_uri: str, **details) -> tuple[int, dict]:
    """(HTTP status, body): 200 with status ok when both connections work, else 503."""
    checks = {"broker": broker_reachable(amqp_uri), "store": store_reachable(store)}
    body = {"status": "ok" if all(checks.values()) else "unavailable",
            "service": store.service_name,
            "checks": {name: "ok" if ok else "unreachable" for name, ok in checks.items()}}
    if checks["store"]:
        body["outbox_pending"] = store.relay.pending_count()
        body.update(details)
    return (200 if body["status"] == "ok" else 503), body
