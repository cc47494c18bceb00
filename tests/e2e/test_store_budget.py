"""What a launch morning costs each store, per enrollment, counted rather than timed.

A burst of enrollments through the edge, then a class of some of them completing the course,
each learner texted, every delivery report answered, every figure counted. Each store's own
counters (serverStatus opcounters) are read before and after; what the platform does when
idle (the relays' reads of the change streams, the lease renewals, the polls) is measured on
the same platform just before and taken off. The test fails when a service's store took more
commands of a kind per enrollment than its budget: the counts do not depend on the
machine's speed, so it holds on a noisy machine, where a timing would not.

The budgets are those of today's design, each with its reason; a change that makes the hot
path cheaper lowers them (docs/performance.md, "Store commands per enrollment").
"""
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pymongo
import pytest
import requests

from hocvu_tools.devstack import accounts
from tests.e2e.conftest import running_platform
from tests.support.commune_day import COMMUNE, enroll, hold_class, learner
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

LEARNERS, CLASS = 300, 50
KINDS = ("insert", "query", "update", "delete", "getmore", "command")
IDLE_SECONDS = 10

# Per enrollment, by store and kind of command (SecantusDB counts an insert_many or a
# bulk write as one command). Measured on 2026-12-07 (docs/performance.md, "Store commands
# per enrollment"), then about a third added so that only a new command on the hot path
# crosses it; `query` counts finds, `getmore` a cursor's further batches and the relays'
# reads beyond their idle pace, `command` the rest (counts, aggregates, distinct).
BUDGET = {
    # learners and enrollments written together in batches (0.9 inserts), a look for the
    # learner and the catalog (1.0 queries)
    "enrollment": {"insert": 1.5, "query": 1.5, "update": 0.5, "delete": 0, "getmore": 0.5,
                   "command": 0.5},
    # plans inserted in batches (0.3), a plan read and written per lesson of the class
    # (1.9 queries, 0.9 updates)
    "lessons": {"insert": 0.5, "query": 2.5, "update": 1.5, "delete": 0, "getmore": 1,
                "command": 0.5},
    # a certificate for one learner in six, in batches
    "certificates": {"insert": 0.5, "query": 0.5, "update": 0.5, "delete": 0, "getmore": 0.5,
                     "command": 0.5},
    # a message written three or four times (queued, sent, reported), the contact, the daily
    # count, the reminder state (5.4 updates); the dispatcher's claims and the reports' reads
    # (1.6 queries, 2.5 getmores)
    "notifications": {"insert": 0.5, "query": 2.5, "update": 7, "delete": 0, "getmore": 3.5,
                      "command": 0.5},
    # nothing per enrollment: the staff signed in before the count
    "identity": {"insert": 0.5, "query": 0.5, "update": 0.5, "delete": 0, "getmore": 0.5,
                 "command": 0.5},
    # each event kept as a fact (1.1 inserts), then the commune's figures recomputed from its
    # facts (1.3 queries, 1.1 updates)
    "reporting": {"insert": 1.5, "query": 2, "update": 1.5, "delete": 0, "getmore": 1,
                  "command": 0.5},
}


def opcounters(platform) -> dict[str, dict[str, int]]:
    counts = {}
    for service, uri in platform.settings.mongo_uris.items():
        with pymongo.MongoClient(uri) as client:
            found = client.admin.command("serverStatus")["opcounters"]
        counts[service] = {kind: int(found.get(kind, 0)) for kind in KINDS}
    return counts


def difference(after: dict, before: dict) -> dict:
    return {service: {kind: after[service][kind] - before[service][kind] for kind in KINDS}
            for service in after}


def delivered(platform) -> int:
    return requests.get(f"{platform.sms_gateway}/v1/stats").json()["delivered"]


def counted(platform, admin) -> tuple[int, int, int]:
    totals = requests.get(platform.url("reporting", "communes"), headers=admin.headers(),
                          params={"commune": COMMUNE}).json()["totals"]
    return totals["enrolled"], totals["certificates_issued"], totals["sms_delivered"]


@pytest.fixture(scope="module")
def morning(tmp_path_factory):
    base = tmp_path_factory.mktemp("store-budget")
    with running_platform(base, f"budget_{uuid.uuid4().hex[:8]}_") as platform:
        admin = accounts.province_admin(platform)
        staff = accounts.create_facilitator(platform, admin, "budget-facilitator",
                                            [COMMUNE]).headers()
        time.sleep(3)  # the start's own work (seed data, first sweeps) done
        start = opcounters(platform)
        time.sleep(IDLE_SECONDS)
        idle = difference(opcounters(platform), start)

        started, before = time.monotonic(), opcounters(platform)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: enroll(platform, staff, n), range(1, LEARNERS + 1)))
        hold_class(platform, staff, [learner(n)["national_id"] for n in range(1, CLASS + 1)])
        # every confirmation and certificate SMS sent and its delivery report answered
        wait_for(lambda: delivered(platform) >= LEARNERS + CLASS, timeout=300,
                 what="every SMS delivered and reported")
        wait_for(lambda: counted(platform, admin) == (LEARNERS, CLASS, LEARNERS + CLASS),
                 timeout=120, what="reporting to count every enrollment, certificate and SMS")
        time.sleep(3)  # the last batches of each consumer written
        spent = difference(opcounters(platform), before)
        elapsed = time.monotonic() - started
        per_enrollment = {service: {kind: max(0.0, spent[service][kind] - idle[service][kind]
                                              * elapsed / IDLE_SECONDS) / LEARNERS
                                    for kind in KINDS} for service in spent}
        yield per_enrollment


def test_each_store_stays_within_its_budget_per_enrollment(morning):
    table = "\n".join(f"{service:14} " + "  ".join(f"{kind} {morning[service][kind]:5.2f}"
                                                   for kind in KINDS)
                      for service in sorted(morning))
    print("store commands per enrollment (idle work taken off):\n" + table)
    over = [f"{service} {kind}: {morning[service][kind]:.2f} > {BUDGET[service][kind]}"
            for service in sorted(morning) for kind in KINDS
            if morning[service][kind] > BUDGET[service][kind]]
    assert over == [], "over budget:\n" + "\n".join(over) + "\n\n" + table
