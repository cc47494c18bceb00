"""Prometheus metrics of a service process (prometheus_client), served by its `metrics` route.

Each service answers `GET /api/<service>/metrics` on its own port, for operations only: the
edge never routes it, like health (hocvu.auth.OPERATIONS). Every hocvu_* series carries the
`service` label, so one dashboard reads every service. What is measured:

    hocvu_http_requests_total{service,route,method,status}     counter
    hocvu_http_request_duration_seconds{service,route}         histogram
    hocvu_events_consumed_total{service,event_type,outcome}    counter; outcome: ok,
        duplicate (an event already processed), retried (the handler failed, it waits in a
        delay queue), dead_lettered (malformed, or failed on its last attempt)
    hocvu_event_handler_duration_seconds{service,event_type}   histogram: from the delivery
        to this process until its handler finished (a wait for a free worker included, and
        for a batch consumer the wait for the batch to fill)
    hocvu_event_batches_total{service,event_type}              counter: batches a batch
        consumer handed to a worker (events consumed / batches: how well they gather)
    hocvu_grouped_inserts_total{service,collection}            counter: writes of inserts
        gathered from concurrent requests (hocvu.groupwrite)
    hocvu_events_published_total{service,event_type}           counter (confirmed by the broker)
    hocvu_outbox_relay_lag_seconds{service}                    histogram: commit -> confirm
    hocvu_outbox_relay_reads_total{service,found}              counter: the relay's reads of
        the change stream, found="events" or "nothing" (events published / reads that found
        events: how well they gather; the embedded store ends an await early on any write)
    hocvu_background_rounds_total{service,loop}                counter: rounds of each
        background loop (relay, SMS dispatcher and reconciler, refresher, imports)
    hocvu_outbox_relay_failures_total{service}                 counter: the relay's rounds that
        failed (store or broker away); it retries every second
    hocvu_outbox_relay_leader{service}   gauge read at scrape time: 1 on the instance that
        holds the relay's lease (summed over instances: 1; 0 means nobody relays)
    notifications only: hocvu_sms_messages{service,status} (the waiting ones: queued,
        awaiting_contact), hocvu_sms_stuck{service}, hocvu_sms_dispatch_backlog{service}
        (gauges read at scrape time), hocvu_sms_send_attempts_total{service,outcome}
        (accepted, retry, rejected), hocvu_sms_outcomes_total{service,status} (each status
        reached, counted as it is recorded: delivered, undelivered, failed, unknown...)
    reporting only: hocvu_communes_recomputed_total{service}: communes whose figures its
        refresher recomputed (each reads all of the commune's facts)
plus prometheus_client's process_* and python_* series. The broker's own figures (queue
depths, dead-letter queues, consumers) come from RabbitMQ's exporter (deploy/README.md).

The instrumented code calls one function per fact (`event_consumed(...)`); the gauges read
from the store are registered with `on_scrape` by whoever owns the collection, and each is
read under a short timeout so that a slow store never stops the route answering.

No label carries personal data: routes are URL rules (`/api/.../<learner_id>`), not paths.
"""
import logging
from datetime import datetime, timezone
from typing import Callable, Iterable

import pymongo
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram,
                               disable_created_metrics, generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from werkzeug.wrappers import Response

log = logging.getLogger(__name__)
# a *_created series per counter doubles the scrape for a fact no dashboard here reads
disable_created_metrics()

# the route's description, for the services' @http declarations and their OpenAPI documents
SUMMARY = "this process's metrics in the Prometheus text format (operations only)"
ANSWERS = {200: "the Prometheus text exposition format (text/plain)"}
SCRAPE_READ_TIMEOUT_SECONDS = 2.0

# seconds: a request or handler is usually a few ms, one stuck on the store up to its timeout
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# the relay publishes within milliseconds when all is well, minutes when the broker was away
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

HTTP_REQUESTS = Counter("hocvu_http_requests", "HTTP requests answered, by route and status.",
                        ["service", "route", "method", "status"])
HTTP_DURATION = Histogram("hocvu_http_request_duration_seconds",
                          "Time to answer an HTTP request, by route.", ["service", "route"],
                          buckets=LATENCY_BUCKETS)
EVENTS_CONSUMED = Counter("hocvu_events_consumed",
                          "Event deliveries consumed, by event type and what became of them.",
                          ["service", "event_type", "outcome"])
HANDLER_DURATION = Histogram("hocvu_event_handler_duration_seconds",
                             "Time an event handler ran, by event type.",
                             ["service", "event_type"], buckets=LATENCY_BUCKETS)
EVENTS_PUBLISHED = Counter("hocvu_events_published",
                           "Events the outbox relay published (broker confirmed), by type.",
                           ["service", "event_type"])
RELAY_LAG = Histogram("hocvu_outbox_relay_lag_seconds",
                      "From an event's commit to the broker's confirm of its publication.",
                      ["service"], buckets=LAG_BUCKETS)
RELAY_FAILURES = Counter("hocvu_outbox_relay_failures",
                         "Rounds of the outbox relay that failed (store or broker away).",
                         ["service"])
SMS_SEND_ATTEMPTS = Counter("hocvu_sms_send_attempts",
                            "SMS sent to the provider, by its answer (accepted, retry, rejected).",
                            ["service", "outcome"])
SMS_OUTCOMES = Counter("hocvu_sms_outcomes",
                       "SMS statuses reached (accepted, delivered, undelivered, failed, "
                       "suppressed, unknown), as their outcomes are recorded.",
                       ["service", "status"])
EVENT_BATCHES = Counter("hocvu_event_batches",
                        "Batches a batch consumer handed to a worker (events / batches: their "
                        "mean size), by event type.", ["service", "event_type"])
GROUPED_INSERTS = Counter("hocvu_grouped_inserts",
                          "Writes of inserts gathered from concurrent workers (hocvu.groupwrite), "
                          "by collection.", ["service", "collection"])
BACKGROUND_ROUNDS = Counter("hocvu_background_rounds",
                            "Rounds of a background loop (relay, SMS dispatcher, refresher...).",
                            ["service", "loop"])
RELAY_READS = Counter("hocvu_outbox_relay_reads",
                      "Reads of the change stream by the outbox relay, by whether they found "
                      "events.", ["service", "found"])
COMMUNES_RECOMPUTED = Counter("hocvu_communes_recomputed",
                              "Communes whose figures reporting's refresher recomputed.",
                              ["service"])

CONSUMED_OUTCOMES = ("ok", "duplicate", "retried", "dead_lettered")


def http_request(service: str, route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(service, route, method, str(status)).inc()
    HTTP_DURATION.labels(service, route).observe(seconds)


def event_consumed(service: str, event_type: str, outcome: str,
                   handler_seconds: float | None = None) -> None:
    """One delivery of `event_type` settled with `outcome` (CONSUMED_OUTCOMES); the handler's
    run time when it ran."""
    EVENTS_CONSUMED.labels(service, event_type, outcome).inc()
    if handler_seconds is not None:
        HANDLER_DURATION.labels(service, event_type).observe(handler_seconds)


def event_published(service: str, event_type: str, lag_seconds: float | None) -> None:
    """The relay published an event, `lag_seconds` after its commit (at the broker's
    confirm; None when the event does not say when it was committed)."""
    EVENTS_PUBLISHED.labels(service, event_type).inc()
    if lag_seconds is not None:
        RELAY_LAG.labels(service).observe(max(lag_seconds, 0.0))


def relay_failed(service: str) -> None:
    RELAY_FAILURES.labels(service).inc()


def seconds_since(moment: datetime) -> float:
    """Seconds from `moment` (a stored time; naive ones are UTC, as pymongo reads them
    without tz_aware) until now."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - moment).total_seconds()


def sms_send_attempt(service: str, outcome: str) -> None:
    SMS_SEND_ATTEMPTS.labels(service, outcome).inc()


def sms_outcome(service: str, status: str) -> None:
    SMS_OUTCOMES.labels(service, status).inc()


def event_batch(service: str, event_type: str) -> None:
    EVENT_BATCHES.labels(service, event_type).inc()


def grouped_insert(service: str, collection: str) -> None:
    GROUPED_INSERTS.labels(service, collection).inc()


def background_round(service: str, loop: str) -> None:
    BACKGROUND_ROUNDS.labels(service, loop).inc()


def relay_read(service: str, found_events: bool) -> None:
    RELAY_READS.labels(service, "events" if found_events else "nothing").inc()


def communes_recomputed(service: str, communes: int) -> None:
    COMMUNES_RECOMPUTED.labels(service).inc(communes)


# -- gauges read at scrape time ------------------------------------------------------------

class _ScrapeTimeGauges(Collector):
    """Calls every registered reader at each scrape; a reader that fails or runs out of time
    is left out of that scrape (and logged), the rest are served."""

    def __init__(self):
        self.readers: dict[tuple[str, str], Callable[[], Iterable[GaugeMetricFamily]]] = {}

    def collect(self):
        for (service, what), read in list(self.readers.items()):
            try:
                with pymongo.timeout(SCRAPE_READ_TIMEOUT_SECONDS):
                    families = list(read())
            except Exception as exc:
                log.warning("metrics: could not read %s of %s: %r", what, service, exc)
                continue
            yield from families


_scrape_time = _ScrapeTimeGauges()
REGISTRY.register(_scrape_time)


def on_scrape(service: str, what: str, read: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
    """Serve the gauges `read()` yields at every scrape. A second registration of the same
    (service, what), by a restarted container, replaces the first."""
    _scrape_time.readers[(service, what)] = read


def forget(service: str, what: str) -> None:
    """Stop reading (service, what): its container stopped."""
    _scrape_time.readers.pop((service, what), None)


def gauge(name: str, documentation: str, service: str,
          values: dict[tuple[str, ...], float] | float, labels: tuple[str, ...] = ()
          ) -> GaugeMetricFamily:
    """A gauge family for a reader: one value, or {label values: value}."""
    family = GaugeMetricFamily(name, documentation, labels=["service", *labels])
    if not isinstance(values, dict):
        values = {(): values}
    for label_values, value in values.items():
        family.add_metric([service, *label_values], value)
    return family


def response() -> Response:
    """The route's answer: every metric of this process."""
    return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def series() -> dict[str, tuple[str, ...]]:
    """Every hocvu_* series this process can serve, with its labels (a histogram's _bucket
    with `le`, _sum and _count; a counter's _total), whether or not it has a value yet: what
    the dashboard and the alert rules may name (tests/unit/test_monitoring.py)."""
    found = dict(SCRAPE_TIME_GAUGES)
    for collector in (HTTP_REQUESTS, HTTP_DURATION, EVENTS_CONSUMED, HANDLER_DURATION,
                      EVENTS_PUBLISHED, RELAY_LAG, RELAY_FAILURES, SMS_SEND_ATTEMPTS,
                      SMS_OUTCOMES, EVENT_BATCHES, GROUPED_INSERTS, BACKGROUND_ROUNDS, RELAY_READS,
                      COMMUNES_RECOMPUTED):
        labels = tuple(collector._labelnames)
        for family in collector.describe():
            if family.type == "histogram":
                found[f"{family.name}_bucket"] = (*labels, "le")
                found[f"{family.name}_sum"] = found[f"{family.name}_count"] = labels
            else:
                found[f"{family.name}_total"] = labels
    return found


# every gauge a reader may serve, with its labels (the readers are registered where their
# data lives: hocvu.outbox.relay_gauges, services.notifications.reconcile.gauges,
# hocvu.messaging.consumer_gauges)
SCRAPE_TIME_GAUGES = {
    "hocvu_outbox_relay_leader": ("service",),
    "hocvu_sms_messages": ("service", "status"),
    "hocvu_sms_stuck": ("service",),
    "hocvu_sms_dispatch_backlog": ("service",),
    "hocvu_consumers_connected": ("service",),
}
