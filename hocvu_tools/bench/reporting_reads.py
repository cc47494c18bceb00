"""`python -m hocvu_tools.bench.reporting_reads`: what reporting's read path costs at a province's
launch scale, on a SecantusDB of its own (docs/reporting.md, "Cost").

52,000 enrollments in 1,018 communes of one province (the launch: 52,000 people at 1,018
sites), spread over 30 days, with lessons, completions and certificates. It writes their
folded documents directly (what the consumers would have left), times a full recompute of
every commune (what a restart or a rebuild does after the replay), then times each route's
query for a province admin and a commune admin, several times each, and prints the median."""
import argparse
import random
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from pymongo import MongoClient

from hocvu import auth
from hocvu_tools.devstack.processes import free_port
from hocvu_tools.devstack.store import start_secantus, store_uri
from services.reporting import domain, queries, repository

PROVINCE = "38"
GROUPS = domain.GROUPS


class _Store:
    def __init__(self, db):
        self.db = db

    def ensure_collections(self, *names):
        existing = set(self.db.list_collection_names())
        for name in names:
            if name not in existing:
                self.db.create_collection(name)


def enrollment_docs(count: int, communes: list[str], days: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    start = date.fromisoformat(domain.today()) - timedelta(days=days - 1)
    docs = []
    for n in range(count):
        enrolled = start + timedelta(days=rng.randrange(days))
        doc = {"_id": f"enr-{n}", "province_code": PROVINCE, "commune_code": communes[n % len(communes)],
               "group": GROUPS[n % 4], "age_band": rng.choice(("under_60", "under_60", "60_and_over")),
               "course_id": f"{GROUPS[n % 4]}-digital-basics", "enrolled_on": enrolled.isoformat(),
               "lessons": {}}
        lessons = rng.randint(0, 5)
        for k in range(lessons):
            doc["lessons"][f"lesson-{k}"] = min(date.fromisoformat(domain.today()), enrolled + timedelta(days=k)).isoformat()
        if lessons == 5:
            doc["completed_on"] = doc["certified_on"] = doc["lessons"]["lesson-4"]
        docs.append(doc)
    return docs


def timed(work, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hocvu_tools.bench.reporting_reads")
    parser.add_argument("--enrollments", type=int, default=52_000)
    parser.add_argument("--communes", type=int, default=1_018)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hocvu-reporting-reads-") as folder:
        port = free_port()
        store = start_secantus(port, Path(folder) / "store", Path(folder))
        try:
            db = MongoClient(store_uri(port), tz_aware=True)["reporting_reads"]
            repository.prepare(_Store(db))
            communes = [f"{90000 + k:05d}" for k in range(args.communes)]
            docs = enrollment_docs(args.enrollments, communes, args.days, seed=1)
            began = time.perf_counter()
            for start in range(0, len(docs), 1000):
                db.enrollments.insert_many(docs[start:start + 1000], ordered=False)
            print(f"wrote {len(docs):,} enrollments in {args.communes:,} communes "
                  f"in {time.perf_counter() - began:.1f} s")
            began = time.perf_counter()
            repository.refresh(db, communes, active_days=7)
            print(f"recomputed every commune (a restart, or a rebuild after its replay) in "
                  f"{time.perf_counter() - began:.1f} s: {db.commune_days.count_documents({}):,} "
                  f"commune-days, {db.province_days.count_documents({})} province-days")
            began = time.perf_counter()
            repository.refresh(db, communes, active_days=7)
            print(f"recomputed every commune again, nothing changed (a restart) in "
                  f"{time.perf_counter() - began:.1f} s")
            province = auth.Principal("admin", auth.PROVINCE_ADMIN, province=PROVINCE)
            commune = auth.Principal("c", auth.COMMUNE_ADMIN, province=PROVINCE,
                                     communes=frozenset(communes[:1]))
            last_week = {"date_from": date.fromisoformat(domain.today()) - timedelta(days=6)}
            for label, work in (
                    ("province admin, table, whole campaign",
                     lambda: queries.communes(db, province, {}, 0.8)),
                    ("province admin, table, last 7 days",
                     lambda: queries.communes(db, province, last_week, 0.8)),
                    ("province admin, trend, 30 days", lambda: queries.days(db, province, {})),
                    ("province admin, CSV, 30 days",
                     lambda: queries.export_csv(db, province, {})),
                    ("commune admin, table", lambda: queries.communes(db, commune, {}, 0.8)),
                    ("commune admin, trend, 30 days", lambda: queries.days(db, commune, {}))):
                seconds, result = timed(work, args.repeat)
                size = len(result["items"]) if isinstance(result, dict) else result.count("\n")
                print(f"  {label:<42} {seconds * 1000:8.0f} ms  ({size:,} rows)")
        finally:
            store.stop()


if __name__ == "__main__":
    main()
