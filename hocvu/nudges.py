"""Waking a job's loop in whichever instance of the service runs it.

A job one instance does for all, under a lease (the SMS dispatcher, hocvu.leases.OwnerLease),
is woken at once by a worker of the same process that stored work for it. Work stored by
another instance waited for the owner's next poll: with two and four instances of
notifications that wait was most of an SMS's delay at 40 enrollments a second
(docs/performance.md, "More instances on the same 2 cores").

A nudge is a small transient message naming the job, published on the service's fanout
exchange `<service>.nudges`. Every instance consumes it from an exclusive queue of its own
(deleted with its connection) and wakes its loop for that job, which runs a round only where
it holds the lease. Nudges are best effort: one lost while the broker is away leaves the
owner's poll to find the work, as before. A process with a single instance never sends one
(it owns the lease it would nudge).

Cost: one publish without a confirm per batch of work stored by an instance that does not
own the job, delivered once to each instance; nothing is stored.
"""
import logging
import socket
import threading
import uuid
from typing import Callable

from amqp.exceptions import AMQPError
from kombu import Connection, Exchange, Queue
from kombu.exceptions import KombuError
from nameko.extensions import DependencyProvider

from hocvu import topology

log = logging.getLogger(__name__)

# the longest a job name may be; anything else on the exchange is ignored
LONGEST_JOB = 100
_RECONNECT_SECONDS = 2.0


class Nudges:
    """Publishes and receives one service's nudges: `on(job, wake)` registers what a nudge
    for `job` calls in this process; `send(job)` nudges every instance."""

    def __init__(self, amqp_uri: str, service_name: str):
        self.amqp_uri = amqp_uri
        self.exchange = Exchange(topology.nudge_exchange(service_name), type="fanout",
                                 durable=False)
        self.queue = Queue(topology.nudge_queue(service_name, uuid.uuid4().hex), self.exchange,
                           exclusive=True, auto_delete=True, durable=False)
        self.handlers: dict[str, Callable[[], None]] = {}
        self.sent = self.received = 0
        self._publishing = threading.Lock()  # one publisher connection, one user at a time
        self._publisher: Connection | None = None
        self._producer = None
        self._stopped = threading.Event()
        self.listening = threading.Event()  # set while this instance's queue is consumed

    def on(self, job: str, wake: Callable[[], None]) -> None:
        self.handlers[job] = wake

    def send(self, job: str) -> bool:
        """Nudge every instance's `job`; False when the broker could not take it (the
        owner's poll will find the work)."""
        with self._publishing:
            try:
                if self._publisher is None:
                    self._publisher = Connection(self.amqp_uri, connect_timeout=2)
                    # declared once a connection: a nudge is then one frame set, no reply
                    self._producer = self._publisher.Producer(exchange=self.exchange)
                self._producer.publish(job, routing_key="", delivery_mode=1,
                                       content_type="text/plain", content_encoding="utf-8")
                self.sent += 1
                return True
            except (KombuError, AMQPError, OSError) as exc:
                log.info("nudge for %s not sent (%s); its owner's poll will find the work",
                         job, type(exc).__name__)
                self._close_publisher()
                return False

    def consume(self) -> None:
        """Receive nudges until stop(); reconnects while the broker is away."""
        while not self._stopped.is_set():
            try:
                with Connection(self.amqp_uri, connect_timeout=5, heartbeat=30) as connection:
                    with connection.Consumer(self.queue, callbacks=[self._received],
                                             no_ack=True, accept=["text/plain"]):
                        self.listening.set()
                        while not self._stopped.is_set():
                            try:
                                connection.drain_events(timeout=1)
                            except socket.timeout:
                                connection.heartbeat_check()
            except (KombuError, AMQPError, OSError) as exc:
                self.listening.clear()
                if self._stopped.is_set():
                    return
                log.info("nudges: broker connection lost (%s); reconnecting",
                         type(exc).__name__)
                self._stopped.wait(_RECONNECT_SECONDS)

    def _received(self, body, message) -> None:
        job = body if isinstance(body, str) and len(body) <= LONGEST_JOB else None
        wake = self.handlers.get(job)
        if wake is not None:
            self.received += 1
            wake()

    def stop(self) -> None:
        self._stopped.set()
        with self._publishing:
            self._close_publisher()

    def _close_publisher(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.release()
            except Exception:  # closing a broken connection: nothing more to do
                pass
            self._publisher = self._producer = None


class NudgeChannel(DependencyProvider):
    """Runs the service's Nudges in its container (one consumer thread); other extensions
    find it with `nudges_of(container)`."""

    def setup(self):
        self.nudges = Nudges(self.container.config["AMQP_URI"], self.container.service_name)

    def start(self):
        self.container.spawn_managed_thread(self.nudges.consume,
                                            identifier=f"{self.container.service_name}.nudges")

    def stop(self):
        self.nudges.stop()

    kill = stop

    def get_dependency(self, worker_ctx) -> Nudges:
        return self.nudges


def nudges_of(container) -> Nudges | None:
    for extension in container.dependencies:
        if isinstance(extension, NudgeChannel):
            return extension.nudges
    return None
