"""The health check every service answers at GET /api/<service>/health."""
import logging

from kombu import Connection

log = logging.getLogger(__name__)

# The body of both answers (200 ok, 503 unavailable), as the OpenAPI documents state it; a
# service adds its own counts beside these.
ANSWER = {"type": "object", "required": ["status", "service", "checks"],
          "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]},
                         "service": {"type": "string"},
                         "checks": {"type": "object", "additionalProperties": {
                             "type": "string", "enum": ["ok", "unreachable"]}},
                         "outbox_pending": {"type": "integer", "minimum": 0}},
          "additionalProperties": True}


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
