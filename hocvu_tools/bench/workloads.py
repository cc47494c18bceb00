"""The workloads: sustained enrollment, sustained learning, the launch burst, bulk enrollment
from the sites' CSV lists. Each drives the
platform over HTTP through the edge with the load generator (its own process), waits until
every accepted request has had all its consequences, then reads the timeline and returns
plain figures (a JSON-ready dict). Requests carry the tokens of facilitators who work in the
learners' communes, as on launch day: verifying them is part of what is measured."""
import json
import subprocess
import time
from collections import Counter
from pathlib import Path

from hocvu_tools.bench.platform import BenchPlatform
from hocvu_tools.bench.probes import BacklogWatch
from hocvu_tools.bench.timeline import Timeline, percentiles, sms_times
from hocvu_tools.devstack.accounts import Facilitators
from hocvu_tools.devstack.population import PROVINCE, learner
from hocvu.reference import communes_of
from hocvu.store import IDS_AT_ONCE, find_by_ids
from hocvu_tools.devstack.processes import BIN
from hocvu_tools.devstack.stack import SERVICES
from services.enrollment.bulk import chunk_id
from services.notifications.templates import CERTIFICATE_ISSUED, ENROLLMENT_CONFIRMED

ENROLL_PATH = "/api/enrollment/enrollments"


class DrainTimeout(RuntimeError):
    pass


class Driver:
    """Hands out learners nobody enrolled yet, and keeps the totals the platform should reach."""

    def __init__(self, platform: BenchPlatform, folder: Path, seed: int = 7):
        self.platform = platform
        self.folder = folder
        self.seed = seed
        self.courses = platform.courses()
        self.next_learner = 0
        self.group_of: dict[str, str] = {}  # correlation id -> learner group
        self.commune_of: dict[str, str] = {}  # correlation id -> learner's commune
        self.facilitators = Facilitators(platform.stack,
                                         [c.code for c in communes_of(PROVINCE)], "bench")
        self.owed: set[str] = set()  # correlation ids of accepted enrollments: a plan each
        self.plans_owed: set[str] = set()  # their enrollment ids whose plan was not seen yet
        self.expected_sms = 0  # theirs, and those of the certificates issued
        # correlation ids whose certificate SMS is owed by name: the gateway's count alone
        # could be reached by other SMS (a sign-in probe's codes) before them
        self.certificates_owed: set[str] = set()
        # what watching the platform cost its stores: the harness's own share of the figures
        self.harness = Counter()

    def enroll_requests(self, count: int, label: str) -> list[dict]:
        requests = []
        for n in range(self.next_learner, self.next_learner + count):
            person = learner(n, self.seed)
            correlation_id = f"bench-{label}-{n}"
            self.group_of[correlation_id] = person.group
            self.commune_of[correlation_id] = person.commune_code
            requests.append({
                "method": "POST", "path": ENROLL_PATH, "tag": correlation_id,
                "headers": {"X-Correlation-ID": correlation_id,
                            **self.facilitators.headers_for(person.commune_code)},
                "body": {"course_id": self.courses[person.group]["id"],
                         "learner": person.as_json()}})
        self.next_learner += count
        return requests

    def load(self, name: str, requests: list[dict], rate: float | None = None,
             concurrency: int | None = None, timeout: float | None = None) -> list[dict]:
        """Send `requests` with the load generator and return its record of each; a request
        not answered within `timeout` seconds (the load generator's 30 by default) counts as
        an error."""
        requests_file = self.folder / f"{name}.requests.jsonl"
        results_file = self.folder / f"{name}.results.jsonl"
        with open(requests_file, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(request, ensure_ascii=False) + "\n" for request in requests)
        mode = ["--rate", str(rate)] if rate else ["--concurrency", str(concurrency)]
        subprocess.run([str(BIN / "python"), "-m", "hocvu_tools.bench.loadgen", str(requests_file),
                        str(results_file), "--base-url", self.platform.stack.base_url, *mode,
                        *(["--timeout", str(timeout)] if timeout else [])],
                       check=True)
        with open(results_file, encoding="utf-8") as lines:
            return [json.loads(line) for line in lines]

    def enrolled(self, results: list[dict]) -> list[dict]:
        accepted = [r for r in results if r["status"] == 201]
        self.expected_sms += len(accepted)
        self.owed.update(r["tag"] for r in accepted)
        self.plans_owed.update(r["id"] for r in accepted)
        return accepted

    def drain(self, timeout: float) -> float:
        """Wait until every plan and SMS owed so far exists; return the seconds waited.

        Watching must not cost the store what it measures (counting 52,000 plans every half
        second took close to half of a store's core): the SMS are counted by the simulator,
        and the plans still owed are looked up by _id, only those not seen yet, only once
        the SMS are all there. The lookups are counted in `harness`."""
        plans = self.platform.db("lessons").plans

        def caught_up():
            self.harness["polls"] += 1
            if self.platform.sms_stats()["accepted"] < self.expected_sms:
                return False
            found = by_ids(self, plans, list(self.plans_owed), {"_id": 1})
            self.plans_owed.difference_update(doc["_id"] for doc in found)
            if self.plans_owed:
                return False
            # the counts are only a cheap first sign: a request the load generator gave up on
            # may still have enrolled someone, whose SMS counts too; read once, at the end
            confirmed = sms_times(self.platform.db("notifications"), self.platform.sms_record,
                                  ENROLLMENT_CONFIRMED)
            self.harness["store_queries"] += 1
            self.harness["documents_read"] += len(confirmed)
            if not self.owed <= confirmed.keys():
                return False
            if not self.certificates_owed:
                return True
            texted = sms_times(self.platform.db("notifications"), self.platform.sms_record,
                               CERTIFICATE_ISSUED)
            self.harness["store_queries"] += 1
            self.harness["documents_read"] += len(texted)
            return self.certificates_owed <= texted.keys()

        waited = self.platform.wait_quiet(caught_up, timeout, poll=0.5)
        if waited is None:
            raise DrainTimeout(f"after {timeout:.0f} s the platform still owed plans or SMS "
                               f"({len(self.plans_owed)} plans of {len(self.owed)}, "
                               f"{self.expected_sms} SMS, certificate SMS of "
                               f"{len(self.certificates_owed)}; stats {self.platform.sms_stats()})")
        return waited

    def store_operations(self) -> dict[str, Counter]:
        return {service: Counter(counts)
                for service, counts in self.platform.store_operations().items()}


def enrollment_stage(driver: Driver, rate: float, duration: float) -> dict:
    """Open-loop enrollments at `rate` per second for `duration` seconds."""
    requests = driver.enroll_requests(max(1, round(rate * duration)), f"e{rate:g}")
    operations_before = driver.store_operations()
    cpu_before = driver.platform.cpu_seconds()
    results = driver.load(f"enroll-{rate:g}", requests, rate=rate)
    accepted = driver.enrolled(results)
    timeout = max(120.0, duration * 5)
    try:
        drain_seconds = driver.drain(timeout=timeout)
    except DrainTimeout as exc:
        # a rate the platform cannot hold is a finding, not a failed run: recorded as such,
        # with the percentiles of what did arrive (the rest arrived later still)
        drain_seconds, not_drained = None, str(exc)
    figures = _request_figures(results, accepted, offered_rate=rate)
    figures.update(_costs(driver, operations_before, cpu_before, len(accepted), "enrollment"))
    figures.update(_enrollment_hops(accepted, Timeline(driver.platform)))
    figures["drain_after_load_s"] = drain_seconds and round(drain_seconds, 2)
    if drain_seconds is None:
        figures["errors"] = {**figures["errors"], f"not drained {timeout:.0f} s after": 1}
        figures["not_drained"] = not_drained
    return figures


def drained(stage: dict) -> bool:
    """Whether every plan and SMS of the stage arrived; a later stage would start behind."""
    return "not_drained" not in stage


def _costs(driver: Driver, operations_before: dict[str, Counter], cpu_before: dict, done: int,
           unit: str) -> dict:
    """What each unit of work cost the store (its own operation counters) and each process
    (CPU time), from before the load until its consequences had all happened."""
    after = driver.store_operations()
    by_store = {service: after[service] - operations_before.get(service, Counter())
                for service in sorted(after)}
    operations = sum(by_store.values(), Counter())
    cpu = driver.platform.cpu_seconds()
    per_process = {name: round((cpu[name] - cpu_before.get(name, 0)) * 1000 / max(1, done), 2)
                   for name in sorted(cpu)}
    return {
        f"store_operations_per_{unit}": {
            kind: round(count / max(1, done), 1) for kind, count in operations.items()},
        # each store's, as the store budget test counts them (tests/e2e/test_store_budget.py)
        f"store_operations_by_store_per_{unit}": {
            service: {kind: round(count / max(1, done), 2) for kind, count in counts.items()}
            for service, counts in by_store.items()},
        # the load generator is left out: it is the frontend's and the learners' work
        f"cpu_ms_per_{unit}": per_process,
        f"store_cpu_ms_per_{unit}": round(sum(
            ms for name, ms in per_process.items() if name.startswith("store")), 2),
        f"services_cpu_ms_per_{unit}": round(sum(
            ms for name, ms in per_process.items() if name.split("-")[0] in SERVICES), 2),
    }


def learning_stage(driver: Driver, rate: float, duration: float,
                   enroll_concurrency: int = 16) -> dict:
    """Enrolled learners completing their lessons, open loop at `rate` completions per second.

    A cohort big enough for `duration` seconds is enrolled first (not measured); its lessons
    are then sent lesson by lesson across the cohort, so each learner's lessons arrive in
    order, about duration / lessons apart, and the last lessons come at the end."""
    lessons_per_course = sum(len(c["lessons"]) for c in driver.courses.values()) / len(
        driver.courses)
    cohort = max(4, round(rate * duration / lessons_per_course))
    enrolled = driver.enrolled(driver.load(
        f"learn-{rate:g}-enroll", driver.enroll_requests(cohort, f"l{rate:g}"),
        concurrency=enroll_concurrency))
    driver.drain(timeout=max(120.0, cohort / 5))
    learners = [(r["tag"], r["id"], [lesson["id"] for lesson in
                                     driver.courses[driver.group_of[r["tag"]]]["lessons"]])
                for r in enrolled]
    requests = []
    for position in range(max(len(lessons) for _, _, lessons in learners)):
        for correlation_id, enrollment_id, lessons in learners:
            if position < len(lessons):
                requests.append({
                    "method": "POST", "body": {"score": 90},
                    "headers": driver.facilitators.headers_for(driver.commune_of[correlation_id]),
                    "path": f"/api/lessons/enrollments/{enrollment_id}/lessons/"
                            f"{lessons[position]}/complete",
                    "tag": {"c": correlation_id, "last": position == len(lessons) - 1}})
    operations_before = driver.store_operations()
    cpu_before = driver.platform.cpu_seconds()
    results = driver.load(f"learn-{rate:g}", requests, rate=rate)
    completed = [r for r in results if r["status"] == 200]
    finished_courses = sum(1 for r in completed if r["tag"]["last"])
    driver.expected_sms += finished_courses
    drain_seconds = driver.drain(timeout=max(120.0, duration * 5))
    figures = _request_figures(results, completed, offered_rate=rate)
    figures.update(_costs(driver, operations_before, cpu_before, len(completed), "completion"))
    timeline = Timeline(driver.platform)
    last = {r["tag"]["c"]: r["due"] for r in completed if r["tag"]["last"]}
    figures.update({
        "learners": len(learners),
        "courses_finished": finished_courses,
        "last_lesson_to_course_completed_ms": _since(last, timeline.completed, "occurred"),
        "last_lesson_to_certificate_ms": _since(last, timeline.issued, "occurred"),
        "last_lesson_to_certificate_sms_ms": _since(last, timeline.certificate_sms, "received"),
        "certificates_missing": len(set(last) - set(timeline.issued)),
        "certificate_sms_missing": len(set(last) - set(timeline.certificate_sms)),
        "drain_after_load_s": round(drain_seconds, 2),
    })
    return figures


def launch_burst(driver: Driver, count: int, concurrency: int, timeout: float) -> dict:
    """`count` enrollments as fast as the platform takes them from `concurrency` clients;
    the time until every one has its lesson plan and its confirmation SMS, and the counts."""
    # a class enrolled (and texted) before, who finish their course 10 s into the burst, and a
    # learner asking for a sign-in code every 2 s, timed while the backlog builds and drains
    watch = BacklogWatch(driver, "burst", class_size=max(10, min(200, count // 100)))
    requests = driver.enroll_requests(count, "burst")
    operations_before = driver.store_operations()
    cpu_before = driver.platform.cpu_seconds()
    harness_before = Counter(driver.harness)
    watch.start()
    started = time.time()
    try:
        results = driver.load("burst", requests, concurrency=concurrency)
        submitted = time.time() - started
        accepted = driver.enrolled(results)
        watch.class_done()
        driver.drain(timeout=timeout)
    finally:
        watch.stop()
    costs = _costs(driver, operations_before, cpu_before, len(accepted), "enrollment")
    timeline = Timeline(driver.platform)
    ours = {r["tag"] for r in accepted}
    assigned = [timeline.assigned[c]["occurred"] for c in ours if c in timeline.assigned]
    sms = [timeline.confirmation_sms[c] for c in ours if c in timeline.confirmation_sms]
    last_consequence = max(assigned + [s["received"] for s in sms], default=started)
    first_sent = min(r["sent"] for r in results)
    figures = _request_figures(results, accepted, offered_rate=None)
    figures.update({
        "learners": count,
        "concurrency": concurrency,
        "submitted_in_s": round(submitted, 1),
        "drained_in_s": round(last_consequence - first_sent, 1),
        "drained_per_s": round(len(accepted) / max(0.001, last_consequence - first_sent), 1),
        "enrollments": sum(1 for c in ours if c in timeline.enrolled),
        "lesson_plans": len(assigned),
        "confirmation_sms": len(sms),
        "confirmation_sms_duplicated": sum(1 for s in sms if s["copies"] > 1),
        "dead_letters": sum(driver.platform.dead_letters().values()),
        "enroll_to_sms_ms": _since({r["tag"]: r["due"] for r in accepted},
                                   timeline.confirmation_sms, "received"),
        **watch.figures(timeline),
        "harness": dict(Counter(driver.harness) - harness_before),
    })
    figures.update(costs)
    return figures


def _request_figures(results: list[dict], succeeded: list[dict],
                     offered_rate: float | None) -> dict:
    span = max(r["done"] for r in results) - min(r["due"] for r in results)
    ok = {r["i"] for r in succeeded}
    failures = Counter(f"{r['status']} {r['error'] or ''}".strip()
                       for r in results if r["i"] not in ok)
    return {
        "offered_per_s": offered_rate,
        "requests": len(results),
        "succeeded": len(succeeded),
        "succeeded_per_s": round(len(succeeded) / span, 1) if span > 0 else None,
        "errors": dict(failures),
        "http_latency_ms": percentiles([r["done"] - r["due"] for r in results]),
    }


def _enrollment_hops(accepted: list[dict], timeline: Timeline) -> dict:
    due = {r["tag"]: r["due"] for r in accepted}
    enrolled, sms = timeline.enrolled, timeline.confirmation_sms

    def hop(start_of, end_of):
        return percentiles([end_of(c) - start_of(c) for c in due
                            if _known(start_of, c) and _known(end_of, c)])

    return {
        "enroll_to_assigned_ms": _since(due, timeline.assigned, "occurred"),
        "enroll_to_sms_ms": _since(due, sms, "received"),
        "hops_ms": {
            "request_to_committed": hop(due.get, lambda c: enrolled[c]["occurred"]),
            # relayed, routed and consumed: the relay's change stream, the broker, lessons
            "committed_to_assigned": hop(lambda c: enrolled[c]["occurred"],
                                         lambda c: timeline.assigned[c]["occurred"]),
            "committed_to_sms_queued": hop(lambda c: enrolled[c]["occurred"],
                                           lambda c: sms[c]["queued"]),
            "sms_queued_to_received": hop(lambda c: sms[c]["queued"],
                                          lambda c: sms[c]["received"]),
        },
        "plans_missing": len(set(due) - set(timeline.assigned)),
        "sms_missing": len(set(due) - set(sms)),
        "sms_duplicated": sum(1 for c in due if sms.get(c, {}).get("copies", 0) > 1),
    }


def _known(time_of, correlation_id) -> bool:
    try:
        return time_of(correlation_id) is not None
    except KeyError:
        return False


def _since(start: dict[str, float], later: dict[str, dict], field: str) -> dict:
    return percentiles([later[c][field] - t for c, t in start.items()
                        if c in later and later[c][field] is not None])


IMPORT_PATH = "/api/enrollment/imports"
EDGE_TIMEOUT_S = 60.0   # nginx's proxy_read_timeout, unset in deploy/nginx: its default
IMPORT_HEADER = "Họ và tên,Số CCCD,Số điện thoại,Năm sinh,Đối tượng,Mã xã"
GROUP_NAMES_VI = {"official": "Cán bộ, công chức, viên chức", "student": "Học sinh, sinh viên",
                  "worker": "Công nhân, người lao động", "citizen": "Người dân"}


def _site_file(driver: Driver, rows: int, commune: str, group: str) -> str:
    """A site's list as Excel saves it ("CSV UTF-8": a byte-order mark, CRLF): `rows` learners
    nobody enrolled yet, all of `commune`, for the course of `group`."""
    lines = [IMPORT_HEADER]
    for n in range(driver.next_learner, driver.next_learner + rows):
        person = learner(n, driver.seed)
        lines.append(f"{person.full_name},{person.national_id},{person.phone},"
                     f"{person.birth_year},\"{GROUP_NAMES_VI[group]}\",{commune}")
    driver.next_learner += rows
    return "\ufeff" + "\r\n".join(lines) + "\r\n"


def bulk_import(driver: Driver, files: int, rows_per_file: int, concurrency: int,
                timeout: float, label: str) -> dict:
    """`files` uploads of `rows_per_file` learners each (a site's list: one commune, one
    course), sent by `concurrency` clients at once; the time from the first upload until every
    learner has a lesson plan and a confirmation SMS, and the counts that must add up."""
    communes = sorted(c.code for c in communes_of(PROVINCE))
    groups = sorted(driver.courses)
    requests = []
    for i in range(files):
        commune, group = communes[i % len(communes)], groups[i % len(groups)]
        requests.append({
            "method": "POST", "tag": f"{label}-{i}",
            "path": f"{IMPORT_PATH}?course_id={driver.courses[group]['id']}",
            "data": _site_file(driver, rows_per_file, commune, group),
            "headers": {"Content-Type": "text/csv",
                        **driver.facilitators.headers_for(commune)}})
    learners = files * rows_per_file
    watch = BacklogWatch(driver, f"bulk-{label}", class_size=max(10, min(200, learners // 100)))
    operations_before = driver.store_operations()
    cpu_before = driver.platform.cpu_seconds()
    watch.start()
    started = time.time()
    try:
        rows_owed, jobs, results = _upload_and_drain(driver, requests, rows_per_file,
                                                     concurrency, timeout, label, watch)
    finally:
        watch.stop()
    timeline = Timeline(driver.platform)
    assigned = [timeline.assigned[c]["occurred"] for c in rows_owed if c in timeline.assigned]
    sms = [timeline.confirmation_sms[c] for c in rows_owed if c in timeline.confirmation_sms]
    last_consequence = max(assigned + [s["received"] for s in sms], default=started)
    first_sent = min(r["sent"] for r in results)
    counts = Counter()
    for job in by_ids(driver, driver.platform.db("enrollment").imports, jobs, {"counts": 1}):
        counts.update(job["counts"])
    accepted = [r for r in results if r["status"] == 202]
    figures = _request_figures(results, accepted, offered_rate=None)
    figures.update({
        "files": files, "rows_per_file": rows_per_file, "learners": learners,
        "concurrency": concurrency,
        "uploaded_in_s": round(max(r["done"] for r in results) - started, 1),
        "drained_in_s": round(last_consequence - first_sent, 1),
        "learners_per_s": round(learners / max(0.001, last_consequence - first_sent), 1),
        "enrolled": counts["enrolled"], "already_enrolled": counts["already_enrolled"],
        "invalid": counts["invalid"],
        "enrollments": sum(1 for c in rows_owed if c in timeline.enrolled),
        "lesson_plans": len(assigned),
        "confirmation_sms": len(sms),
        "confirmation_sms_duplicated": sum(1 for s in sms if s["copies"] > 1),
        "dead_letters": sum(driver.platform.dead_letters().values()),
        "upload_to_sms_ms": percentiles([s["received"] - first_sent for s in sms]),
        **watch.figures(timeline),
    })
    figures.update(_costs(driver, operations_before, cpu_before, learners, "learner"))
    return figures


def _upload_and_drain(driver: Driver, requests: list[dict], rows_per_file: int,
                      concurrency: int, timeout: float, label: str,
                      watch: BacklogWatch) -> tuple[set[str], list[str], list[dict]]:
    """Upload the files and wait until every row they hold has had its consequences; the
    rows owed, the jobs accepted and the load generator's record of each upload."""
    # a site's browser waits for its upload's answer as long as the edge waits for the
    # service (nginx's proxy_read_timeout, 60 s): with 1,018 files at once some answers take
    # longer than the load generator's usual 30 s (http_latency_ms says how long)
    results = driver.load(f"bulk-{label}", requests, concurrency=concurrency,
                          timeout=EDGE_TIMEOUT_S)
    jobs = [r["id"] for r in results if r["status"] == 202]
    # every row of every accepted file is owed a plan and an SMS, under its row's id
    rows_owed = {f"imp-{job}-{row}" for job in jobs for row in range(2, rows_per_file + 2)}
    driver.owed.update(rows_owed)
    driver.expected_sms += len(rows_owed)
    watch.class_done()
    # the plans owed are looked up by enrollment id, which a row has once the job enrolled it
    chunks = _wait_for_jobs(driver, jobs, timeout)
    driver.plans_owed.update(_enrolled_ids(driver, chunks))
    driver.drain(timeout=timeout)
    return rows_owed, jobs, results


def _wait_for_jobs(driver: Driver, jobs: list[str], timeout: float) -> dict[str, int]:
    """Wait until every job has counted all its chunks. Only the jobs not seen done are read
    again, a few at a time: reading all 1,018 by one `$in` each second kept enrollment's
    store busy the whole import (1-5 s a read: the store's cost of a `$in` grows with the
    square of what it finds), which the figures then charged to the platform. Returns each
    job's number of chunks."""
    imports = driver.platform.db("enrollment").imports
    pending = set(jobs)
    chunks = {}

    def all_done():
        for job in by_ids(driver, imports, list(pending),
                          {"chunk_count": 1, "counted_chunks": 1}):
            if len(job["counted_chunks"]) >= job["chunk_count"]:
                pending.discard(job["_id"])
                chunks[job["_id"]] = job["chunk_count"]
        return not pending

    if driver.platform.wait_quiet(all_done, timeout, poll=1.0) is None:
        raise DrainTimeout(f"after {timeout:.0f} s the import jobs were not done")
    return chunks


def by_ids(driver: Driver, collection, ids: list, projection: dict) -> list[dict]:
    """The documents of these _ids (hocvu.store.find_by_ids: 52,000 plans looked up 1,000 at
    a time cost lessons' store close to a minute at a drain's end), counted in `harness`."""
    found = list(find_by_ids(collection, ids, projection))
    driver.harness["store_queries"] += -(-len(ids) // IDS_AT_ONCE)
    driver.harness["documents_read"] += len(found)
    return found


def _enrolled_ids(driver: Driver, chunks: dict[str, int]) -> set[str]:
    """The enrollments the jobs made, from their chunks' outcomes, read by _id."""
    ids = [chunk_id(job, number) for job, count in chunks.items() for number in range(count)]
    found = set()
    for chunk in by_ids(driver, driver.platform.db("enrollment").import_chunks, ids,
                        {"outcomes": 1}):
        found.update(outcome["id"] for outcome in chunk["outcomes"]
                     if outcome["o"] == "enrolled")
    return found


def bulk_workload(driver: Driver, sites: int, rows_per_site: int, concurrency: int,
                  timeout: float) -> dict:
    """Launch morning from lists: every site's file at once, then the province's one file
    of as many learners."""
    return {
        "sites": bulk_import(driver, sites, rows_per_site, concurrency, timeout, "sites"),
        "single_file": bulk_import(driver, 1, sites * rows_per_site, 1, timeout, "single"),
    }
