"""reporting against real RabbitMQ and SecantusDB: events published to the real exchanges
as their producers publish them (duplicated, out of order), figures read over HTTP."""
import csv
import io

import pytest
import requests
from pymongo import MongoClient

from services.reporting import repository
from services.reporting.service import ReportingService
from tests.support import reporting_events as ev
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

A, B, OTHER_PROVINCE = "14845", "14848", "00004"   # two communes of Thanh Hóa (38), one of Hà Nội
D1, D2, D3 = "2026-11-02", "2026-11-03", "2026-11-20"


@pytest.fixture
def reporting(service_config, run_service):
    config = service_config("reporting", ACTIVE_DAYS=7)
    container = run_service(ReportingService, config)
    return base_url(container), config


def workload():
    """Three enrollments in A, one in B, one in Hà Nội; every kind of event."""
    return [
        # a lesson completed before its enrollment is known: counted once it is
        ev.lesson_completed("e1", "l1", D2),
        ev.learner_enrolled("e1", "citizen", A, D1, birth_year=1950),
        ev.lesson_completed("e1", "l2", D2),
        ev.course_completed("e1", "citizen", A, D2),
        ev.certificate_issued("e1", A, D2),
        ev.sms_outcome("m1", "e1", "citizen", A, D1),
        ev.sms_outcome("m2", "e1", "citizen", A, D2, status="failed"),
        ev.learner_enrolled("e2", "worker", A, D1, birth_year=1990),
        ev.lesson_completed("e2", "l1", D1),
        ev.course_completed("e2", "worker", A, D3),
        ev.certificate_issued("e2", A, D3),
        ev.certificate_revoked("e2", "worker", A, D3),
        ev.learner_enrolled("e3", "worker", A, D2, birth_year=1990),
        ev.enrollment_cancelled("e3", "worker", A, D3),
        ev.learner_enrolled("e4", "student", B, D1, birth_year=2008),
        ev.learner_enrolled("e5", "citizen", OTHER_PROVINCE, D1, province="01"),
    ]


def figures(url, headers, path="communes", **params):
    answer = requests.get(f"{url}/api/reporting/{path}", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


# the workload's totals in Thanh Hóa, every event counted once
SETTLED = {"enrolled": 4, "lessons_completed": 3, "courses_completed": 2,
           "certificates_issued": 2, "certificates_revoked": 1, "cancellations": 1,
           "sms_delivered": 1, "sms_failed": 1}


def settled(url, headers, **params):
    """Figures once every event of the workload is counted (consumers and the refresher
    run asynchronously)."""
    def counted():
        body = figures(url, headers, **params)
        totals = {k: v for k, v in body["totals"].items() if k != "active"}
        # the days are summed after the communes (the province's days last of all)
        trend = figures(url, headers, "days", **{"from": D1, "to": D3})["items"]
        by_days = {k: sum(d[k] for d in trend) for k in SETTLED}
        return totals == SETTLED == by_days and body
    return wait_for(counted, what="the workload's figures")


def test_figures_from_duplicated_and_out_of_order_events(reporting, pika_client, issuer):
    url, _ = reporting
    events = workload()
    ev.publish(pika_client, *events)
    ev.publish(pika_client, *events[:6])  # delivered again
    body = settled(url, issuer.province_admin(), **{"to": D3})
    rows = {row["commune_code"]: row for row in body["items"]}
    assert len(rows) == 166  # every commune of Thanh Hóa, and none of Hà Nội
    assert OTHER_PROVINCE not in rows and rows["14848"]["enrolled"] == 1
    assert sum(1 for r in rows.values() if r["enrolled"]) == 2
    a = rows[A]
    assert a["commune_name"] and a["province_code"] == "38"
    assert {k: a[k] for k in ("enrolled", "lessons_completed", "courses_completed",
                              "certificates_issued", "certificates_revoked", "certified",
                              "cancellations", "sms_delivered", "sms_failed")} == {
        "enrolled": 3, "lessons_completed": 3, "courses_completed": 2, "certificates_issued": 2,
        "certificates_revoked": 1, "certified": 1, "cancellations": 1, "sms_delivered": 1,
        "sms_failed": 1}
    assert a["certification_rate"] == round(1 / 3, 4) and a["rate_basis"] == "enrolled"
    assert a["target_rate"] == 0.8 and a["target_met"] is False
    assert rows[B]["enrolled"] == 1 and rows[B]["certified"] == 0
    assert body["totals"]["enrolled"] == 4

    # groups and age bands
    citizens = figures(url, issuer.province_admin(), group="citizen")
    assert [(r["commune_code"], r["enrolled"], r["certified"]) for r in citizens["items"]
            if r["enrolled"]] == [(A, 1, 1)]
    elderly = figures(url, issuer.province_admin(), age_band="60_and_over")
    assert elderly["totals"]["enrolled"] == 1 and elderly["totals"]["lessons_completed"] == 2

    # a date range, and who was active on its last day (a lesson in the 7 days up to it)
    first_days = figures(url, issuer.province_admin(), **{"from": D1, "to": D2})
    assert first_days["totals"]["enrolled"] == 4 and first_days["totals"]["courses_completed"] == 1
    assert first_days["totals"]["active"] == 2  # e1 (D2) and e2 (D1)
    assert figures(url, issuer.province_admin(), **{"to": D3})["totals"]["active"] == 0

    trend = figures(url, issuer.province_admin(), "days", **{"from": D1, "to": D3})["items"]
    by_day = {d["day"]: d for d in trend}
    assert [d["day"] for d in trend][::18] == [D1, D3] and len(trend) == 19  # every day
    assert by_day[D1]["enrolled"] == 3 and by_day[D2]["enrolled"] == 1
    assert by_day[D3]["certificates_revoked"] == 1 and by_day[D3]["cancellations"] == 1
    assert sum(d["lessons_completed"] for d in trend) == 3


def test_a_delivery_after_all_wins_over_a_failure_in_either_order(reporting, pika_client,
                                                                  issuer):
    url, _ = reporting
    ev.publish(pika_client, *workload())
    settled(url, issuer.province_admin(), **{"to": D3})
    # m2 failed (reconciliation said unknown), then its report came: delivered after all;
    # m1 delivered, then a late failure about it: changes nothing
    ev.publish(pika_client, ev.sms_outcome("m2", "e1", "citizen", A, D2),
               ev.sms_outcome("m1", "e1", "citizen", A, D1, status="failed"))
    wait_for(lambda: figures(url, issuer.province_admin(), **{"to": D3})["totals"]
             ["sms_failed"] == 0, what="m2 counted as delivered")
    totals = figures(url, issuer.province_admin(), **{"to": D3})["totals"]
    assert (totals["sms_delivered"], totals["sms_failed"]) == (2, 0)


def test_each_caller_sees_only_their_scope(reporting, pika_client, issuer):
    url, _ = reporting
    ev.publish(pika_client, *workload())
    settled(url, issuer.province_admin())
    commune_admin = figures(url, issuer.commune_admin(B))
    assert [r["commune_code"] for r in commune_admin["items"]] == [B]
    facilitator = figures(url, issuer.facilitator(communes=(A,)), "days", **{"from": D1, "to": D3})
    assert sum(d["enrolled"] for d in facilitator["items"]) == 3
    # asking for what is not theirs gives nothing, as if it did not exist
    assert figures(url, issuer.commune_admin(B), commune=A)["items"] == []
    assert figures(url, issuer.province_admin(), province="01")["items"] == []
    hanoi = figures(url, issuer.province_admin("01"))
    assert [r["commune_code"] for r in hanoi["items"] if r["enrolled"]] == [OTHER_PROVINCE]
    for path in ("communes", "days", "export.csv", "targets"):
        assert requests.get(f"{url}/api/reporting/{path}").status_code == 401
        learner = requests.get(f"{url}/api/reporting/{path}",
                               headers=issuer.learner("+84900000001"))
        assert learner.status_code == 403 and learner.json()["error"] == "FORBIDDEN"


def test_csv_export_has_a_row_per_commune_day_group_and_band(reporting, pika_client, issuer):
    url, _ = reporting
    ev.publish(pika_client, *workload())
    settled(url, issuer.province_admin())
    answer = requests.get(f"{url}/api/reporting/export.csv", headers=issuer.commune_admin(A),
                          params={"from": D1, "to": D3})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert {r["commune_code"] for r in rows} == {A}
    assert sum(int(r["enrolled"]) for r in rows) == 3
    elderly = [r for r in rows if r["age_band"] == "60_and_over" and r["day"] == D2]
    assert [(r["group"], r["lessons_completed"]) for r in elderly] == [("citizen", "2")]


def test_bad_filters_are_refused_naming_the_field(reporting, issuer):
    url, _ = reporting
    for params, field in (({"group": "farmers"}, "group"), ({"commune": "14"}, "commune"),
                          ({"from": "2026-13-01"}, "from"),
                          ({"from": "2026-11-20", "to": "2026-11-01"}, "from"),
                          ({"from": "2024-01-01", "to": "2026-01-01"}, "from")):
        answer = requests.get(f"{url}/api/reporting/communes", params=params,
                              headers=issuer.province_admin())
        assert answer.status_code == 400, params
        assert answer.json()["error"] == "VALIDATION_ERROR" and field in answer.json()["fields"]


def test_targets_are_set_by_the_province_admin_and_change_the_rate(reporting, pika_client,
                                                                  issuer):
    url, _ = reporting
    ev.publish(pika_client, *workload())
    settled(url, issuer.province_admin())
    target_url = f"{url}/api/reporting/targets/{A}"
    body = {"target_rate": 0.5, "adult_population": 2}
    assert requests.put(target_url, json=body, headers=issuer.commune_admin(A)).status_code == 403
    assert requests.put(target_url, json=body,
                        headers=issuer.province_admin("01")).status_code == 404
    bad = requests.put(target_url, json={"target_rate": 2, "adult_population": -1},
                       headers=issuer.province_admin())
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"target_rate", "adult_population"}
    assert requests.get(f"{url}/api/reporting/targets",
                        headers=issuer.province_admin()).json()["items"] == []
    saved = requests.put(target_url, json=body, headers=issuer.province_admin())
    assert saved.status_code == 200, saved.text
    row = next(r for r in figures(url, issuer.commune_admin(A))["items"])
    assert (row["certification_rate"], row["rate_basis"], row["target_met"]) == (
        0.5, "adult_population", True)
    targets = requests.get(f"{url}/api/reporting/targets", headers=issuer.commune_admin(A)).json()
    assert targets["items"] == [{"province_code": "38", "commune_code": A, "target_rate": 0.5,
                                 "adult_population": 2}]
    assert requests.get(f"{url}/api/reporting/targets",
                        headers=issuer.commune_admin(B)).json()["items"] == []


def test_a_rebuild_from_the_retained_events_gives_the_same_figures(reporting, pika_client,
                                                                   issuer):
    url, config = reporting
    ev.publish(pika_client, *workload())
    before = settled(url, issuer.province_admin(), **{"to": D3})
    trend_before = figures(url, issuer.province_admin(), "days", **{"from": D1, "to": D3})
    db = MongoClient(config["MONGO_URI"], tz_aware=True)[config["MONGO_DATABASE"]]
    derived_before = {name: sorted(db[name].find(), key=lambda d: d["_id"])
                      for name in repository.DERIVED}
    replayed = repository.rebuild(db, active_days=7)
    assert replayed == len(workload())  # each event kept once, duplicates or not
    assert {name: sorted(db[name].find(), key=lambda d: d["_id"])
            for name in repository.DERIVED} == derived_before
    assert figures(url, issuer.province_admin(), **{"to": D3}) == before
    assert figures(url, issuer.province_admin(), "days", **{"from": D1, "to": D3}) == trend_before
    # what is kept of an event has no name, no subject, no birth year
    kept = db.events.find_one({"event_type": "learner_enrolled"})["fact"]
    assert set(kept) == {"enrollment_id", "course_id", "group", "province_code",
                         "commune_code", "age_band", "day"}


def test_an_event_breaking_its_contract_is_dead_lettered_and_changes_nothing(reporting,
                                                                           pika_client):
    url, config = reporting
    _, event = ev.learner_enrolled("e9", "citizen", A, D1)
    event["data"]["commune_code"] = "not-a-commune"
    pika_client.publish("enrollment.events", "learner_enrolled", event)
    dlq = "evt-enrollment-learner_enrolled--reporting.count_enrollment.dlq"
    dead = wait_for(lambda: pika_client.drain(dlq), what="the dead letter")
    assert [body["event_id"] for body in dead] == [event["event_id"]]
    db = MongoClient(config["MONGO_URI"], tz_aware=True)[config["MONGO_DATABASE"]]
    assert db.events.count_documents({}) == 0 and db.enrollments.count_documents({}) == 0
