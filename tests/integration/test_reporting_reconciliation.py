"""reporting's figures reconcile with the services that own the facts.

enrollment, lessons, certificates and reporting run together against real RabbitMQ and
SecantusDB. A mixed workload goes through their HTTP APIs (enrollments in many communes and
groups, lessons, whole courses and so certificates); the cancellations and revocations,
whose producers are still being built, are published as their contracts say. Then every
event the platform published is delivered to reporting again, newest first (duplicated and
out of order), and every count of reporting's, per commune, group and age band, is
compared with the owners' own records."""
from collections import Counter

import pytest
import requests
from pymongo import MongoClient

from hocvu_tools.devstack.population import learner
from hocvu.reference import communes_of
from services.certificates.service import CertificatesService
from services.enrollment.service import EnrollmentService
from services.lessons.service import LessonsService
from services.reporting import domain
from services.reporting.service import ReportingService
from tests.support import reporting_events as ev
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

# seven real communes of Thanh Hóa: enrollment checks them against the official list
COMMUNES = tuple(commune.code for commune in communes_of("38"))[:7]
LEARNERS = 56
CAPTURE = "test-capture-for-reporting"
SOURCES = ("enrollment", "lessons", "certificates")


@pytest.fixture
def services(service_config, run_service, pika_client):
    channel = pika_client.channel
    channel.queue_declare(CAPTURE, durable=True)
    for source in SOURCES:
        channel.exchange_declare(f"{source}.events", "topic", durable=True)
        channel.queue_bind(CAPTURE, f"{source}.events", "#")
    urls, configs = {}, {}
    for service in (ReportingService, CertificatesService, EnrollmentService, LessonsService):
        configs[service.name] = service_config(service.name)
        urls[service.name] = base_url(run_service(service, configs[service.name]))
    wait_for(lambda: requests.get(f"{urls['enrollment']}/api/enrollment/courses").json(),
             what="enrollment's copy of the catalog")
    return urls, configs


def database(configs, service):
    config = configs[service]
    return MongoClient(config["MONGO_URI"], tz_aware=True)[config["MONGO_DATABASE"]]


def run_workload(urls, issuer) -> list[str]:
    staff = issuer.facilitator(communes=COMMUNES)
    courses = {c["group"]: c for c in requests.get(f"{urls['lessons']}/api/lessons/courses").json()}
    enrolled = []
    for n in range(LEARNERS):
        person = learner(n, seed=14).as_json()
        person["commune_code"] = COMMUNES[n % len(COMMUNES)]  # born 1950-2012: some elderly
        course = courses[person["group"]]
        answer = requests.post(f"{urls['enrollment']}/api/enrollment/enrollments", headers=staff,
                               json={"course_id": course["id"], "learner": person})
        assert answer.status_code == 201, answer.text
        enrolled.append((answer.json()["id"], course))
    for k, (enrollment_id, course) in enumerate(enrolled):
        lessons = [lesson["id"] for lesson in course["lessons"]]
        taught = lessons if k % 3 == 0 else lessons[:k % 3]
        plan = f"{urls['lessons']}/api/lessons/enrollments/{enrollment_id}"
        wait_for(lambda: requests.get(plan, headers=staff).status_code == 200, what="a plan")
        for lesson_id in taught:
            assert requests.post(f"{plan}/lessons/{lesson_id}/complete",
                                 headers=staff).status_code == 200
    return [enrollment_id for enrollment_id, _ in enrolled]


def test_reporting_reconciles_with_the_owning_services(services, pika_client, issuer):
    urls, configs = services
    enrollment_ids = run_workload(urls, issuer)
    certificates = database(configs, "certificates").certificates
    wait_for(lambda: certificates.count_documents({}) == len(enrollment_ids[::3]),
             what="a certificate per finished course")
    enrollments = {e["_id"]: e for e in database(configs, "enrollment").enrollments.find()}
    births = {l["_id"]: l["birth_year"] for l in database(configs, "enrollment").learners.find()}

    # the producers of these two are being built: published here as their contracts say
    cancelled = [e for e in enrollment_ids[1::3]][:4]
    revoked = [c["enrollment_id"] for c in certificates.find().sort("_id", 1)][:3]
    for enrollment_id in cancelled:
        e = enrollments[enrollment_id]
        ev.publish(pika_client, ev.enrollment_cancelled(enrollment_id, e["group"],
                                                        e["commune_code"], domain.today()))
    for enrollment_id in revoked:
        e = enrollments[enrollment_id]
        ev.publish(pika_client, ev.certificate_revoked(enrollment_id, e["group"],
                                                       e["commune_code"], domain.today()))

    # what the owners hold, per commune|group|age band
    def key(e):
        band = domain.age_band(births[e["learner_id"]], e["enrolled_at"])
        return (e["commune_code"], domain.bucket(e["group"], band))
    expected = {metric: Counter() for metric in domain.COUNTED if not metric.startswith("sms")}
    for e in enrollments.values():
        expected["enrolled"][key(e)] += 1
    for plan in database(configs, "lessons").plans.find():
        done = sum(1 for lesson in plan["lessons"] if lesson["status"] == "completed")
        expected["lessons_completed"][key(enrollments[plan["_id"]])] += done
        expected["courses_completed"][key(enrollments[plan["_id"]])] += bool(plan["completed_at"])
    for certificate in certificates.find():
        expected["certificates_issued"][key(enrollments[certificate["enrollment_id"]])] += 1
    for enrollment_id in revoked:
        expected["certificates_revoked"][key(enrollments[enrollment_id])] += 1
    for enrollment_id in cancelled:
        expected["cancellations"][key(enrollments[enrollment_id])] += 1

    # everything once more, newest first: duplicated and out of order
    published = pika_client.drain(CAPTURE)
    kinds = Counter(event["event_type"] for event in published)
    assert kinds["learner_enrolled"] == LEARNERS and kinds["enrollment_cancelled"] == len(cancelled)
    for event in reversed(published):
        source = {"learner_enrolled": "enrollment", "enrollment_cancelled": "enrollment",
                  "certificate_issued": "certificates", "certificate_revoked": "certificates"}.get(
            event["event_type"], "lessons")
        pika_client.publish(f"{source}.events", event["event_type"], event)

    admin = issuer.province_admin()

    def reported():
        rows = requests.get(f"{urls['reporting']}/api/reporting/export.csv", headers=admin,
                            params={"from": "2026-01-01"}).content.decode("utf-8-sig")
        found = {metric: Counter() for metric in expected}
        header, *lines = [line.split(",") for line in rows.strip().splitlines()]
        for line in lines:
            row = dict(zip(header, line))
            for metric in expected:
                count = int(row[metric])
                if count:
                    found[metric][(row["commune_code"],
                                   domain.bucket(row["group"], row["age_band"]))] += count
        return found == expected and found
    found = wait_for(reported, timeout=60, what="reporting to agree with the owners")

    totals = {metric: sum(counts.values()) for metric, counts in found.items()}
    print(f"\nreconciled, per commune, group and age band ({len(found['enrolled'])} cells): "
          f"{totals}")
    assert totals["enrolled"] == LEARNERS and totals["cancellations"] == len(cancelled)
    assert sum(1 for (_, cell) in found["enrolled"] if cell.endswith("60_and_over")) >= 1
    # the retained stream holds each event once, however often it came
    kept = database(configs, "reporting").events
    assert kept.count_documents({}) == len(published) - sum(
        kinds[t] for t in ("course_published", "lessons_assigned", "learner_contact_registered"))
    # and the table's figures are the sums of those cells, once the refresher came round
    # (the export reads the facts; the table, the communes' figures the refresher recomputes
    # every REFRESH_SECONDS or more: docs/reporting.md)
    metrics = ("enrolled", "lessons_completed", "courses_completed", "certificates_issued",
               "certificates_revoked", "cancellations")

    def table_followed():
        table = requests.get(f"{urls['reporting']}/api/reporting/communes",
                             headers=admin).json()
        return all(table["totals"][m] == totals[m] for m in metrics) and table
    wait_for(table_followed, timeout=60, what="the communes' table to follow the facts")
