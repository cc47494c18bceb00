"""Learners going through the whole journey over HTTP, many at once, as the frontend would
drive them: a facilitator of the learner's commune enrolls them, waits for the lessons and
records every lesson as done in class. Like a real client, a request that fails for a
passing reason (connection refused, 5xx, a timeout) is sent again, with backoff (0.1 s
doubling to 2 s), for at most `deadline_seconds`; every such retry is counted, by cause, so
that a scenario can bound them. An enrollment retried after it did commit answers 409 with
the enrollment it made.

Faults run beside the load, one after another, each once a given share of the journeys
finished; the report says when each ran and how much of the load was in flight, and keeps
the error of one that failed (a fault that did not happen proves nothing)."""
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import requests

from hocvu_tools.devstack.accounts import Facilitators
from hocvu_tools.devstack.population import PROVINCE, learner
from hocvu_tools.devstack.stack import Stack
from hocvu.reference import communes_of

# the client's backoff: a request failing for `seconds` is retried at most this often
FIRST_PAUSE, LONGEST_PAUSE = 0.1, 2.0
LAST_SHARE = 0.1  # of the journeys, held back until every fault has ended


def progress(message: str) -> None:
    """A line on the terminal while a long stage runs (seen with `pytest -s`)."""
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Journey:
    number: int
    phone: str
    enrollment_id: str = ""
    learner_id: str = ""


@dataclass
class Fault:
    name: str
    action: Callable[[], object]
    after: float  # the share of journeys finished before it starts


@dataclass
class Injection:
    name: str
    started_at: float  # seconds since the drive started
    seconds: float
    finished_before: int  # journeys finished when it started
    finished_after: int   # ... and when it ended
    error: str | None = None


@dataclass
class DriveReport:
    journeys: list[Journey]
    seconds: float
    concurrency: int
    injections: list[Injection] = field(default_factory=list)
    retried_requests: int = 0   # answered 5xx or not at all, and sent again
    retry_causes: Counter = field(default_factory=Counter)
    most_retries_of_one_request: int = 0
    errors: list[str] = field(default_factory=list)

    def retry_bound(self) -> int:
        """The most retries the faults can explain. While something is down for W seconds,
        each of the `concurrency` clients has one request failing, retried after 0.1, 0.2,
        0.4, 0.8, 1.6 s, then every 2 s: at most 5 + W / 2 retries, + 1 for the answer that
        was already on its way when the fault ended. Counting W as the whole injection (its
        restart and readiness wait included) over-counts; a retry storm or a client looping
        on an error that does not heal still exceeds it."""
        return sum(self.concurrency * (6 + int(i.seconds / LONGEST_PAUSE))
                   for i in self.injections)

    def describe_injections(self) -> str:
        return "; ".join(f"{i.name} at {i.started_at:.0f} s for {i.seconds:.0f} s "
                         f"({i.finished_before}-{i.finished_after} journeys finished)"
                         for i in self.injections)


class JourneyDriver:
    def __init__(self, stack: Stack, count: int, concurrency: int = 16, seed: int = 1,
                 deadline_seconds: float = 240):
        self.stack = stack
        self.count = count
        self.concurrency = concurrency
        self.seed = seed
        self.deadline_seconds = deadline_seconds
        self.courses = {c["group"]: c for c in
                        requests.get(stack.url("lessons", "courses"), timeout=10).json()}
        self.facilitators = Facilitators(stack, [c.code for c in communes_of(PROVINCE)])
        self._local = threading.local()
        self._lock = threading.Lock()
        self.retried = 0
        self.retry_causes: Counter = Counter()
        self.most_retries = 0
        self.finished = 0

    def run(self, faults: list[Fault] = ()) -> DriveReport:
        """Drive every journey; run the `faults` beside them, in turn.

        The last LAST_SHARE of the journeys start only once every fault has ended: on a slow
        machine the faults before them can take longer than the rest of the load, and a
        fault that runs after the load proves nothing."""
        assert all(f.after < 1 - LAST_SHARE for f in faults), "a fault starts too late"
        started = time.monotonic()
        all_done = threading.Event()
        faults_ended = threading.Event()
        if not faults:
            faults_ended.set()
        injections: list[Injection] = []
        errors = []

        def inject():
            try:
                inject_each()
            finally:
                faults_ended.set()

        def inject_each():
            for fault in faults:
                while self.finished < self.count * fault.after and not all_done.is_set():
                    time.sleep(0.05)
                injection = Injection(fault.name, time.monotonic() - started, 0.0,
                                      self.finished, self.finished)
                progress(f"{fault.name}: {self.finished}/{self.count} journeys finished")
                try:
                    fault.action()
                except Exception as exc:  # noqa: BLE001 - reported, and the test fails on it
                    injection.error = repr(exc)
                injection.seconds = time.monotonic() - started - injection.started_at
                injection.finished_after = self.finished
                injections.append(injection)
                progress(f"{fault.name}: done in {injection.seconds:.1f} s"
                         f"{' FAILED: ' + injection.error if injection.error else ''}")

        with ThreadPoolExecutor(self.concurrency + 1) as pool:
            injector = pool.submit(inject) if faults else None
            last = int(self.count * (1 - LAST_SHARE))
            futures = [pool.submit(self.journey, n, faults_ended if n >= last else None)
                       for n in range(self.count)]
            journeys = []
            for future in futures:
                try:
                    journeys.append(future.result())
                except Exception as exc:  # reported, and the totals will show what is missing
                    errors.append(repr(exc))
            all_done.set()
            if injector:
                injector.result()
        progress(f"load done: {len(journeys)} journeys in {time.monotonic() - started:.0f} s, "
                 f"{self.retried} requests retried")
        return DriveReport(journeys, time.monotonic() - started, self.concurrency, injections,
                           self.retried, self.retry_causes, self.most_retries, errors)

    def journey(self, n: int, wait_for: threading.Event | None = None) -> Journey:
        if wait_for is not None:
            wait_for.wait()
        person = learner(n, self.seed)
        course = self.courses[person.group]
        journey = Journey(n, person.phone)
        staff = person.commune_code
        answer = self._call("POST", self.stack.url("enrollment", "enrollments"),
                            {"course_id": course["id"], "learner": person.as_json()},
                            accept=(201, 409), staff=staff)
        body = answer.json()
        journey.enrollment_id = body["id"] if answer.status_code == 201 else body["enrollment_id"]
        plan_url = self.stack.url("lessons", f"enrollments/{journey.enrollment_id}")
        plan = self._call("GET", plan_url, accept=(200,), wait_for_404=True, staff=staff).json()
        journey.learner_id = plan["learner_id"]
        for lesson in plan["lessons"]:
            self._call("POST", f"{plan_url}/lessons/{lesson['id']}/complete", {"score": 90},
                       accept=(200,), staff=staff)
        with self._lock:
            self.finished += 1
            if self.finished % 100 == 0:
                progress(f"{self.finished}/{self.count} journeys finished")
        return journey

    def _call(self, method, url, body=None, accept=(200,), wait_for_404=False, staff=None):
        session = getattr(self._local, "session", None) or requests.Session()
        self._local.session = session
        deadline = time.monotonic() + self.deadline_seconds
        pause = FIRST_PAUSE
        retries = 0
        while True:
            cause = None
            try:
                answer = session.request(method, url, json=body, timeout=15,
                                         headers=self.facilitators.headers_for(staff))
                if answer.status_code in accept:
                    return answer
                if answer.status_code >= 500:
                    cause = str(answer.status_code)
                elif not (wait_for_404 and answer.status_code == 404):  # 404: not there yet
                    raise AssertionError(f"{method} {url} -> {answer.status_code} {answer.text}")
            except requests.RequestException as exc:
                cause = type(exc).__name__
                session = self._local.session = requests.Session()
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {url} still failing after {self.deadline_seconds}s")
            if cause:
                retries += 1
                with self._lock:
                    self.retried += 1
                    self.retry_causes[cause] += 1
                    self.most_retries = max(self.most_retries, retries)
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
