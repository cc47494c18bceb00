"""Learners going through the whole journey over HTTP, many at once, as the frontend would
drive them: a facilitator of the learner's commune enrolls them, waits for the lessons and
records every lesson as done in class. Like a real client, a
request that fails for a passing reason (connection refused, 5xx, a timeout) is sent again;
an enrollment retried after it did commit answers 409 with the enrollment it made."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from hocvu.devstack.accounts import Facilitators
from hocvu.devstack.population import PROVINCE, learner
from hocvu.devstack.stack import Stack
from hocvu.reference import communes_of


@dataclass
class Journey:
    number: int
    phone: str
    enrollment_id: str = ""
    learner_id: str = ""


@dataclass
class DriveReport:
    journeys: list[Journey]
    seconds: float
    retried_requests: int = 0   # answered 5xx or not at all, and sent again
    errors: list[str] = field(default_factory=list)


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
        self.finished = 0

    def run(self, fault=None, fault_after: float = 0.3) -> DriveReport:
        """Drive every journey; run `fault()` beside them once `fault_after` of them finished."""
        started = time.monotonic()
        fault_done = threading.Event()
        errors = []

        def inject():
            while self.finished < self.count * fault_after:
                time.sleep(0.05)
            try:
                fault()
            finally:
                fault_done.set()

        with ThreadPoolExecutor(self.concurrency + 1) as pool:
            if fault:
                pool.submit(inject)
            futures = [pool.submit(self.journey, n) for n in range(self.count)]
            journeys = []
            for future in futures:
                try:
                    journeys.append(future.result())
                except Exception as exc:  # reported, and the totals will show what is missing
                    errors.append(repr(exc))
        if fault:
            fault_done.wait()
        return DriveReport(journeys, time.monotonic() - started, self.retried, errors)

    def journey(self, n: int) -> Journey:
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
        return journey

    def _call(self, method, url, body=None, accept=(200,), wait_for_404=False, staff=None):
        session = getattr(self._local, "session", None) or requests.Session()
        self._local.session = session
        deadline = time.monotonic() + self.deadline_seconds
        pause = 0.1
        while True:
            answer_was_404 = False
            try:
                answer = session.request(method, url, json=body, timeout=15,
                                         headers=self.facilitators.headers_for(staff))
                answer_was_404 = answer.status_code == 404
                if answer.status_code in accept:
                    return answer
                passing = answer.status_code >= 500 or (wait_for_404 and answer.status_code == 404)
                if not passing:
                    raise AssertionError(f"{method} {url} -> {answer.status_code} {answer.text}")
            except requests.RequestException:
                session = self._local.session = requests.Session()
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {url} still failing after {self.deadline_seconds}s")
            if not (wait_for_404 and answer_was_404):
                with self._lock:
                    self.retried += 1
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
