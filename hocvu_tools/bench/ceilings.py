"""The ceilings: raw throughput of each part on this machine, so that a pipeline figure can be
read as a fraction of what the broker, the store and the framework manage on their own.

    python -m hocvu_tools.bench.ceilings MONGO_URI     (RabbitMQ on 127.0.0.1:5672, guest/guest)

Each function returns a JSON-ready dict and cleans up what it created, also on error.
"""
import json
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pika
import pymongo

from hocvu_tools.devstack.processes import BIN, Process

PREFETCH = 500
ACK_EVERY = 50  # consumer acks with multiple=True: one ack frame per 50 messages
MAX_WORKERS = 10  # as the services run (max_workers: ${MAX_WORKERS:10})
POLL_SECONDS = 0.05
# hocvu_tools.bench.noop_service's names, spelled out: importing it would load nameko and eventlet
# into the harness. The queue is nameko's evt-<source>-<type>--<service>.<method>.
NOOP_EXCHANGE, NOOP_EVENT_TYPE = "bench_source.events", "tick"
NOOP_QUEUE = "evt-bench_source-tick--bench_noop.tick"

# about 300 bytes, shaped like the platform's event envelope
BODY = json.dumps({
    "event_id": "5f0c2a3e-8d1b-4c55-9a7e-2b9d7f3c1e00",
    "event_type": "enrollment.created",
    "schema_version": 1,
    "occurred_at": "2024-01-01T00:00:00.000000+00:00",
    "correlation_id": "bench-ceiling-0000000000",
    "data": {"enrollment_id": "e0c1d2e3-f4a5-4b6c-8d7e-9f0a1b2c3d4e",
             "course_id": "c0c1d2e3", "group": "teachers"},
}).encode()
PERSISTENT_JSON = pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                       content_encoding="utf-8")


class _BatchPublisher:
    """Publishes `count` messages, `batch` at a time, each batch waiting for all its confirms
    before the next goes out. A SelectConnection, because BlockingChannel's confirm mode waits
    for every message's confirm on its own, which would measure round trips, not the broker."""

    def __init__(self, parameters, exchange: str, routing_key: str, count: int, batch: int,
                 timeout: float = 300):
        self.exchange, self.routing_key = exchange, routing_key
        self.count, self.batch, self.timeout = count, batch, timeout
        self.published = 0
        self.unconfirmed: set[int] = set()
        self.started = self.finished = None
        self.error: BaseException | None = None
        self.connection = pika.SelectConnection(
            parameters, on_open_callback=self._on_open,
            on_open_error_callback=self._on_failure, on_close_callback=self._on_failure)
        self.channel = None

    def run(self) -> float:
        """Seconds from the first publish to the last confirm."""
        self.connection.ioloop.call_later(self.timeout, self._on_timeout)
        self.connection.ioloop.start()
        if self.error is not None:
            raise RuntimeError(f"publishing failed: {self.error!r}") from self.error
        return self.finished - self.started

    def _on_open(self, connection):
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel):
        self.channel = channel
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._publish_batch())

    def _publish_batch(self):
        if self.started is None:
            self.started = time.perf_counter()
        for _ in range(min(self.batch, self.count - self.published)):
            self.channel.basic_publish(self.exchange, self.routing_key, BODY, PERSISTENT_JSON)
            self.published += 1
            self.unconfirmed.add(self.published)  # delivery tags count from 1 per channel

    def _on_confirm(self, frame):
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            self._stop(RuntimeError(f"broker nacked delivery tag {method.delivery_tag}"))
            return
        if method.multiple:
            self.unconfirmed = {tag for tag in self.unconfirmed if tag > method.delivery_tag}
        else:
            self.unconfirmed.discard(method.delivery_tag)
        if self.unconfirmed:
            return
        if self.published < self.count:
            self._publish_batch()
        else:
            self.finished = time.perf_counter()
            self._stop()

    def _on_timeout(self):
        self._stop(TimeoutError(f"{self.count - self.published + len(self.unconfirmed)} of "
                                f"{self.count} unconfirmed after {self.timeout} s"))

    def _stop(self, error: BaseException | None = None):
        self.error = self.error or error
        if self.connection.is_open:
            self.connection.close()  # _on_failure stops the loop once it is closed
        elif not self.connection.is_closing:
            self.connection.ioloop.stop()

    def _on_failure(self, _connection, reason):
        if self.finished is None and self.error is None:
            self.error = reason
        self.connection.ioloop.stop()


def broker_ceiling(amqp_uri: str, messages: int = 50_000, batch: int = 500) -> dict:
    """Persistent ~300-byte messages into one durable classic queue with batched publisher
    confirms, then consumed with prefetch PREFETCH and an ack (multiple=True) every
    ACK_EVERY messages. pika is pure Python: on a small machine the client may be the limit."""
    parameters = pika.URLParameters(amqp_uri)
    queue = f"hocvu_tools.bench.ceiling.{uuid.uuid4().hex}"
    connection = pika.BlockingConnection(parameters)
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        publish_seconds = _BatchPublisher(parameters, "", queue, messages, batch).run()
        consume_seconds = _consume(channel, queue, messages)
    finally:
        _delete(parameters, queues=[queue])
        if connection.is_open:
            connection.close()
    return {"messages": messages, "publish_per_second": round(messages / publish_seconds),
            "consume_per_second": round(messages / consume_seconds), "confirm_batch": batch,
            "prefetch": PREFETCH, "ack_every": ACK_EVERY}


def _consume(channel, queue: str, count: int) -> float:
    """Seconds from the first delivery to the last ack."""
    state = {"received": 0, "first": None}

    def on_message(ch, method, _properties, _body):
        state["first"] = state["first"] or time.perf_counter()
        state["received"] += 1
        if state["received"] % ACK_EVERY == 0 or state["received"] == count:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if state["received"] == count:
            ch.stop_consuming()

    channel.basic_qos(prefetch_count=PREFETCH)
    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    return time.perf_counter() - state["first"]


def _delete(parameters, queues=(), exchanges=()):
    """On a connection of its own: the one in use may be the reason we are cleaning up."""
    connection = pika.BlockingConnection(parameters)
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in exchanges:
            channel.exchange_delete(exchange)
    finally:
        connection.close()


def store_ceiling(mongo_uri: str, operations: int = 4000, concurrency: int = 10) -> dict:
    """insert_one, upsert (half new keys, half existing) and a two-document transaction, each
    `operations` times from `concurrency` threads sharing one client, as a service's worker
    pool shares one; default write concern, as the services use."""
    client = pymongo.MongoClient(mongo_uri)
    db = client[f"hocvu_bench_ceiling_{uuid.uuid4().hex[:8]}"]
    try:
        # before the timed part: SecantusDB can deadlock on DDL concurrent with transactions
        for name in ("inserts", "upserts", "tx_enrollments", "tx_outbox"):
            db.create_collection(name)
            db[name].create_index("learner_id")  # one secondary index, as real collections have
        existing = operations // 2
        db.upserts.insert_many([_enrollment(f"k{i}") for i in range(existing)])

        def insert(i):
            db.inserts.insert_one(_enrollment(f"i{i}"))

        def upsert(i):
            key = f"k{i // 2}" if i % 2 == 0 and i // 2 < existing else f"new{i}"
            db.upserts.update_one({"_id": key}, {"$set": {"status": "confirmed", "seq": i}},
                                  upsert=True)

        def transaction(i):
            def both(session):
                db.tx_enrollments.insert_one(_enrollment(f"t{i}"), session=session)
                db.tx_outbox.insert_one({"_id": f"o{i}", "learner_id": f"t{i}",
                                         "status": "pending", "body": BODY.decode()},
                                        session=session)
            with client.start_session() as session:
                session.with_transaction(both)

        return {"concurrency": concurrency, "operations": operations,
                "insert_one_per_second": _rate(operations, concurrency, insert),
                "upsert_per_second": _rate(operations, concurrency, upsert),
                "transaction_2docs_per_second": _rate(operations, concurrency, transaction),
                "write_concern": "w=1 (default)"}
    finally:
        client.drop_database(db.name)
        client.close()


def _enrollment(key: str) -> dict:
    return {"_id": key, "learner_id": f"l-{key}", "course_id": "c0c1d2e3", "group": "teachers",
            "status": "pending", "channel": "sms", "phone": "+84900000000",
            "created_at": "2024-01-01T00:00:00+00:00", "correlation_id": f"bench-{key}",
            "attempts": 0}


def _rate(count: int, concurrency: int, operation) -> float:
    """Operations per second, `count` operations shared among `concurrency` threads."""
    start = threading.Barrier(concurrency + 1)

    def worker(first):
        start.wait()
        for i in range(first, count, concurrency):
            operation(i)

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker, w) for w in range(concurrency)]
        start.wait()  # threads already running: their start-up is not timed
        began = time.perf_counter()
        for future in futures:
            future.result()
    return round(count / (time.perf_counter() - began), 1)


def framework_ceiling(amqp_uri: str, events: int = 10_000, log_dir: Path | None = None,
                      timeout: float = 120) -> dict:
    """hocvu_tools.bench.noop_service (nameko, eventlet, max_workers MAX_WORKERS, a handler that
    does nothing) draining a queue filled before it started: what nameko's dispatch alone
    manages. Timed from the first sample below full to the first empty sample."""
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="hocvu-ceiling-"))
    parameters = pika.URLParameters(amqp_uri)
    exchange, event_type, queue = NOOP_EXCHANGE, NOOP_EVENT_TYPE, NOOP_QUEUE
    config = log_dir / "bench_noop.yaml"
    log_dir.mkdir(parents=True, exist_ok=True)
    # JSON is YAML; WARNING keeps a per-message log line from being what we measure
    config.write_text(json.dumps({
        "AMQP_URI": amqp_uri, "max_workers": MAX_WORKERS,
        "LOGGING": {"version": 1, "handlers": {"console": {"class": "logging.StreamHandler"}},
                    "root": {"level": "WARNING", "handlers": ["console"]}}}))
    service = Process("bench_noop", [BIN / "python", "-m", "nameko", "run", "--config", config,
                                     "hocvu_tools.bench.noop_service"], log_dir)
    connection = pika.BlockingConnection(parameters)
    try:
        channel = connection.channel()
        # flags exactly as nameko declares them, or its own declaration fails
        # with PRECONDITION_FAILED
        channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
        channel.queue_declare(queue, durable=True, auto_delete=False, exclusive=False)
        channel.queue_bind(queue, exchange, routing_key=event_type)
        _BatchPublisher(parameters, exchange, event_type, events, batch=500).run()

        def depth() -> int:
            return channel.queue_declare(queue, passive=True).method.message_count

        full = depth()
        last_full_at = time.perf_counter()
        service.start()
        began = None
        deadline = time.monotonic() + timeout
        while True:
            if not service.alive():
                raise RuntimeError(f"bench_noop exited with code {service.popen.returncode}; "
                                   f"the end of {service.log_path}:\n{service.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{depth()} of {events} events left after {timeout} s")
            left = depth()
            now = time.perf_counter()
            if left == full:
                last_full_at = now
            elif began is None:
                # drained within one poll: count it all from the last full sample, a lower bound
                began = (now, left) if left else (last_full_at, full)
            if left == 0:
                break
            time.sleep(POLL_SECONDS)
        # message_count leaves out the up to MAX_WORKERS delivered and not yet acknowledged;
        # stopping lets those finish (or requeues them), so the depth after says they did
        service.stop()
        unprocessed = depth()
        began_at, drained = began
        return {"events": events, "events_per_second": round(drained / (now - began_at)),
                "max_workers": MAX_WORKERS, "unprocessed_after_stop": unprocessed}
    finally:
        service.stop()
        if connection.is_open:
            connection.close()
        _delete(parameters, queues=[queue], exchanges=[exchange])


if __name__ == "__main__":
    amqp = "amqp://guest:guest@127.0.0.1:5672/"
    for name, measure in [("broker", lambda: broker_ceiling(amqp)),
                          ("store", lambda: store_ceiling(sys.argv[1])),
                          ("framework", lambda: framework_ceiling(amqp))]:
        began = time.perf_counter()
        figures = measure()
        print(name, json.dumps(figures), f"({time.perf_counter() - began:.1f} s)", flush=True)
