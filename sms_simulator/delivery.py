"""Delivery reports: after a delay, tell the caller's callback URL the message arrived.

With a callback secret, each POSTed report is signed (signing.py, the scheme the platform
verifies in hocvu/signatures.py).
"""
import heapq
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import requests

from .signing import signature_headers
from .modes import EsmsMode, SpeedSmsMode
from .store import MessageStore
from .timestamps import utc_now_iso

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
REPORT_FORMATS = {EsmsMode.name: EsmsMode.report, SpeedSmsMode.name: SpeedSmsMode.report}


class ReportFailed(Exception):
    pass


def http_report_sender(timeout: float, secret: bytes | None = None,
                       clock: Callable[[], float] = time.time) -> Callable[[str, dict], None]:
    """A sender that POSTs the report as JSON and treats anything but 2xx as failure; with a
    `secret`, each attempt is signed anew (X-Hocvu-Timestamp, X-Hocvu-Signature)."""

    # one keep-alive connection per callback worker thread: a real gateway reuses its
    # connections, and a new one per report costs both sides CPU (docs/performance.md)
    local = threading.local()

    def send(url: str, report: dict, method: str = "POST") -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        body = json.dumps(report).encode()
        headers = {"Content-Type": "application/json"}
        if secret:
            headers.update(signature_headers(secret, int(clock()), body))
        try:
            if method == "GET":  # eSMS reports in the query string of a GET
                response = local.session.get(url, params=report, timeout=timeout)
            else:
                response = local.session.post(url, data=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            raise ReportFailed(type(exc).__name__) from exc
        if not 200 <= response.status_code < 300:
            raise ReportFailed(f"HTTP {response.status_code}")

    return send


@dataclass(frozen=True)
class _Job:
    message_id: str
    attempt: int = 1
    delivered_at: str | None = None


class DeliveryReporter:
    """A fixed set of worker threads draining a queue ordered by due time.

    Retries go back on the queue instead of sleeping in a worker, so a callback that
    keeps failing does not hold up reports for other messages.
    """

    def __init__(self, store: MessageStore, send: Callable[[str, dict], None], *,
                 attempts: int = 5, backoff: float = 0.5, workers: int = 4,
                 clock: Callable[[], float] = time.monotonic):
        self._store = store
        self._send = send
        self._attempts = attempts
        self._backoff = backoff
        self._clock = clock
        self._queue: list[tuple[float, int, _Job]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"sms-report-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def schedule(self, message_id: str, delay: float) -> None:
        self._push(_Job(message_id), delay)

    def _push(self, job: _Job, delay: float) -> None:
        with self._ready:
            heapq.heappush(self._queue, (self._clock() + delay, next(self._order), job))
            self._ready.notify()

    def _next_job(self) -> _Job | None:
        with self._ready:
            while not self._stopping:
                if not self._queue:
                    self._ready.wait()
                    continue
                wait = self._queue[0][0] - self._clock()
                if wait <= 0:
                    return heapq.heappop(self._queue)[2]
                self._ready.wait(wait)
            return None

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            try:
                self._run(job)
            except Exception:
                log.exception("delivery report job for %s crashed", job.message_id)

    def _run(self, job: _Job) -> None:
        message = self._store.get(job.message_id)
        if message is None:
            return  # cleared by DELETE /v1/messages while waiting
        delivered_at = job.delivered_at or utc_now_iso()
        if not message.callback_url:
            self._store.update(message.message_id, counts_as="delivered",
                               status="delivered", delivered_at=delivered_at)
            return
        method, report = "POST", {
            "message_id": message.message_id,
            "request_id": message.request_id,
            "to": message.to,
            "status": "delivered",
            "delivered_at": delivered_at,
        }
        if message.report_format in REPORT_FORMATS:
            method, report = REPORT_FORMATS[message.report_format](message, delivered_at)
        started = time.monotonic()
        try:
            if method == "POST":
                self._send(message.callback_url, report)
            else:
                self._send(message.callback_url, report, method)
        except ReportFailed as exc:
            self._store.report_answered((time.monotonic() - started) * 1000)
            self._failed(job, delivered_at, str(exc))
            return
        self._store.report_answered((time.monotonic() - started) * 1000)
        self._store.update(message.message_id, counts_as="delivered", status="delivered",
                           delivered_at=delivered_at, report_attempts=job.attempt,
                           report_error=None)

    def _failed(self, job: _Job, delivered_at: str, error: str) -> None:
        if job.attempt >= self._attempts:
            log.warning("delivery report for %s failed after %d attempts: %s",
                        job.message_id, job.attempt, error)
            self._store.update(job.message_id, counts_as="report_failed",
                               status="report_failed", report_attempts=job.attempt,
                               report_error=error)
            return
        if self._store.update(job.message_id, report_attempts=job.attempt, report_error=error):
            delay = min(self._backoff * 2 ** (job.attempt - 1), MAX_BACKOFF_SECONDS)
            self._push(_Job(job.message_id, job.attempt + 1, delivered_at), delay)
