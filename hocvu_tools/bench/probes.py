"""What a learner waits for while a backlog drains: a sign-in code asked for every few
seconds during a workload, each timed from the request to the SMS gateway accepting its SMS.

Each request uses a phone number of its own (identity allows one code a minute per number)
and a correlation id of its own, by which the timeline finds its SMS afterwards. The bench
platform raises identity's per-address limit for the run (all the load comes from one
address); nothing else about the platform changes.
"""
import itertools
import threading
import time

import requests

from hocvu_tools.bench.timeline import percentiles, sms_times
from services.notifications.templates import SIGN_IN_CODE


class SignInProbe:
    """Asks for a sign-in code every `every` seconds from start() to stop()."""

    # every probe of a run draws its numbers from here: identity limits the codes a number
    # may have in a day, and a run has a probe per workload
    _numbers = itertools.count(1)

    def __init__(self, platform, every: float = 2.0, tag: str = "probe"):
        self.platform = platform
        self.every = every
        self.tag = tag
        self.sent: dict[str, float] = {}  # correlation id -> when the request went
        self.refused: list[int] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sign-in probe", daemon=True)

    def start(self) -> "SignInProbe":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        url = self.platform.stack.url("identity", "learners/code")
        while not self._stopped.is_set():
            n = next(self._numbers)
            correlation = f"{self.tag}-signin-{n}"
            started = time.time()
            try:
                answer = requests.post(url, json={"phone": f"0912{n % 1_000_000:06d}"},
                                       headers={"X-Correlation-ID": correlation}, timeout=30)
                if answer.status_code == 202:
                    self.sent[correlation] = started
                else:
                    self.refused.append(answer.status_code)
            except requests.RequestException:
                self.refused.append(0)
            self._stopped.wait(self.every)

    def figures(self, timeout: float = 120.0) -> dict:
        """Request → SMS accepted at the gateway, once every code's SMS is there (or the
        timeout passed: those missing are counted)."""
        deadline = time.time() + timeout
        while True:
            received = sms_times(self.platform.db("notifications"), self.platform.sms_record,
                                 SIGN_IN_CODE)
            waiting = [c for c in self.sent if (received.get(c) or {}).get("received") is None]
            if not waiting or time.time() > deadline:
                break
            time.sleep(1)
        first = min(self.sent.values(), default=0)
        timed = sorted((sent - first, received[c]["queued"] - sent, received[c]["received"] - sent)
                       for c, sent in self.sent.items()
                       if (received.get(c) or {}).get("received") is not None)
        return {**percentiles([wait for _, _, wait in timed]), "asked": len(self.sent),
                "missing": len(waiting), "refused": len(self.refused),
                # asked -> the message written in notifications (the events' path)
                "to_message_ms": percentiles([queued for _, queued, _ in timed]),
                # (seconds into the run, ms to the message, ms to the gateway) of each
                "each": [[round(at, 1), round(queued * 1000), round(wait * 1000)]
                         for at, queued, wait in timed]}


class ClassProbe:
    """A class that finishes its course while a backlog drains: `size` learners enrolled
    (and texted) before the workload, whose lessons are all completed `after` seconds into
    it, through the lessons API as their facilitator would; each certificate is timed from
    its issue to the gateway accepting its SMS (certificate_sms_ms)."""

    def __init__(self, driver, size: int = 30, after: float = 10.0, tag: str = "class"):
        self.driver = driver
        self.after = after
        enrolled = driver.enrolled(driver.load(f"{tag}-enroll",
                                               driver.enroll_requests(size, tag),
                                               concurrency=8))
        driver.drain(timeout=120.0)
        self.learners = [(r["tag"], r["id"]) for r in enrolled]
        # correlation ids of the learners whose every lesson was completed: a certificate
        # SMS each
        self.finished: list[str] = []
        self.refused: list[int] = []
        self._thread = threading.Thread(target=self._run, name="class probe", daemon=True)

    def start(self) -> "ClassProbe":
        self._thread.start()
        return self

    def join(self) -> None:
        """Wait until the class is done; its certificates' SMS are then owed (the drain
        waits for each). Counted here, on the caller's thread, which owns the driver's
        totals."""
        self._thread.join()
        self.driver.expected_sms += len(self.finished)
        self.driver.certificates_owed.update(self.finished)

    def _run(self) -> None:
        time.sleep(self.after)
        base = self.driver.platform.stack.base_url
        for correlation_id, enrollment_id in self.learners:
            headers = self.driver.facilitators.headers_for(self.driver.commune_of[correlation_id])
            lessons = self.driver.courses[self.driver.group_of[correlation_id]]["lessons"]
            for lesson in lessons:
                try:
                    answer = requests.post(
                        f"{base}/api/lessons/enrollments/{enrollment_id}/lessons/"
                        f"{lesson['id']}/complete", json={"score": 90}, headers=headers,
                        timeout=60)
                except requests.RequestException:
                    self.refused.append(0)
                    break
                if answer.status_code != 200:
                    self.refused.append(answer.status_code)
                    break
            else:
                self.finished.append(correlation_id)

    def figures(self, timeline) -> dict:
        """Certificate issued → its SMS accepted at the gateway (the drain waited for it)."""
        issued = {c: timeline.issued[c]["occurred"] for c, _ in self.learners
                  if c in timeline.issued}
        timed = [timeline.certificate_sms[c]["received"] - at for c, at in issued.items()
                 if (timeline.certificate_sms.get(c) or {}).get("received") is not None]
        return {**percentiles(timed), "learners": len(self.learners),
                "certificates": len(issued), "missing": len(issued) - len(timed),
                "refused": len(self.refused)}


class BacklogWatch:
    """What learners and the provider wait for while a workload's backlog drains: a sign-in
    code asked for every 2 s (sign_in_code_sms_ms), a class completing its course 10 s in
    (certificate_sms_ms), and the gateway's wait for our answer to each delivery report
    (delivery_report_ms). The class is enrolled (and texted) when this is made, before the
    workload's costs are counted; its lessons and certificates, about 1 % of a burst's
    work, are in them."""

    def __init__(self, driver, tag: str, class_size: int):
        self.driver = driver
        self.graduating = ClassProbe(driver, size=class_size, after=10.0, tag=f"{tag}-class")
        self.sign_in = SignInProbe(driver.platform, every=2.0, tag=tag)
        self._reports_before = 0

    def start(self) -> "BacklogWatch":
        self._reports_before = self.driver.platform.sms_stats()["reports_answered"]
        self.sign_in.start()
        self.graduating.start()
        return self

    def class_done(self) -> None:
        """Wait for the class's lessons; their certificates' SMS are then owed."""
        self.graduating.join()

    def stop(self) -> None:
        self.sign_in.stop()

    def figures(self, timeline) -> dict:
        return {
            "delivery_report_ms":
                self.driver.platform.sms_stats(self._reports_before)["report_answer_ms"],
            # request -> the code's SMS accepted at the gateway, while the backlog drained
            "sign_in_code_sms_ms": self.sign_in.figures(),
            # a class's certificates issued while the backlog drained -> their SMS at the
            # gateway
            "certificate_sms_ms": self.graduating.figures(timeline),
        }
