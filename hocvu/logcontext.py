"""Who a log line is about: the correlation id and event id of the work in progress.

An entrypoint binds them (`bound(...)`) when a request or an event arrives, and starts its
worker with `spawn_worker`, so the worker's lines carry them too; `AddLogContext`, a
logging filter the services' LOGGING configs install, puts them on every record, and the
JSON formatter writes them as fields (absent when unknown). Values from a request are only
ever data inside one JSON line: a newline in them is escaped, never a new line.

They live in context variables. Under eventlet each greenthread runs in a context of its
own, and a new one starts empty (greenlet >= 1.0), so two requests served at once never
see each other's ids, and a worker gets the entrypoint's ids only through `spawn_worker`.
"""
import contextvars
import logging
import re
import uuid
from contextlib import contextmanager

_correlation_id = contextvars.ContextVar("hocvu_correlation_id", default=None)
_event_id = contextvars.ContextVar("hocvu_event_id", default=None)

# a correlation id from a caller is logged, so bound its size; ours are UUIDs
MAX_ID_CHARS = 100


# what a caller may choose as a correlation id; nginx's request ids are 32 hex digits
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def correlation_id_of(headers) -> str:
    """The id a request and everything it causes are followed by: the caller's
    X-Correlation-ID (a frontend keeps one for a learner's whole journey), else the request
    id the edge gave it (X-Request-ID), else a new one. A malformed value is not used."""
    for name in ("X-Correlation-ID", "X-Request-ID"):
        value = headers.get(name) or ""
        if _WELL_FORMED_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def _clean(value) -> str | None:
    return str(value)[:MAX_ID_CHARS] if value else None


def current() -> dict[str, str]:
    """The ids known here: {"correlation_id": ..., "event_id": ...}, without the unknown."""
    ids = {"correlation_id": _correlation_id.get(), "event_id": _event_id.get()}
    return {name: value for name, value in ids.items() if value}


@contextmanager
def bound(correlation_id=None, event_id=None):
    """Within the block (in this greenthread), log lines carry these ids."""
    tokens = (_correlation_id.set(_clean(correlation_id)), _event_id.set(_clean(event_id)))
    try:
        yield
    finally:
        _event_id.reset(tokens[1])
        _correlation_id.reset(tokens[0])


def spawn_worker(entrypoint, args, kwargs, **spawn_kwargs):
    """`container.spawn_worker`, with the worker running in a copy of this context.

    nameko gives no hook between spawning the worker's greenthread and running it; the
    greenthread is in the container's table of workers, not yet started, and a greenlet's
    context may be set until it starts."""
    container = entrypoint.container
    context = contextvars.copy_context()
    worker_ctx = container.spawn_worker(entrypoint, args, kwargs, **spawn_kwargs)
    thread = getattr(container, "_worker_threads", {}).get(worker_ctx)
    if thread is not None and not thread.dead and not thread:  # created, not started
        thread.gr_context = context
    return worker_ctx


class AddLogContext(logging.Filter):
    """Puts the bound ids on every record (as `correlation_id`, `event_id`) when known."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
