"""Bulk enrollment against real RabbitMQ and SecantusDB: a facilitator's CSV through the
same rules as one enrollment, as a job that survives a restart and never enrolls twice."""
import codecs
import csv
import io
import re

import pytest
import requests
from nameko.containers import ServiceContainer
from pymongo import MongoClient

from hocvu.events import new_event
from services.enrollment import bulk_csv
from services.enrollment.bulk import RowBox
from services.enrollment.service import EnrollmentService
from tests.support.fixtures import HASH_KEY, base_url
from tests.support.waiting import wait_for
from tests.unit.test_bulk_csv import to_windows_1258

pytestmark = pytest.mark.integration

LESSONS_QUEUE = "evt-enrollment-learner_enrolled--lessons.assign_lessons"
COURSE = "citizen-digital-basics"
HEADER = "STT;Họ và tên;Số CCCD;Số điện thoại;Năm sinh;Đối tượng;Mã xã"


def person(n: int, commune: str = "14845") -> str:
    year = 1960 + n % 40
    return (f"{n};Nguyễn Văn Số {chr(0x41 + n % 26)}{chr(0x61 + n // 26 % 26)};"
            f"0380{year % 100:02d}{n:06d};0912{n:06d};{year};Người dân;{commune}")


def csv_file(lines: list[str]) -> str:
    return "\r\n".join([HEADER, *lines]) + "\r\n"


def start_enrollment(config: dict) -> ServiceContainer:
    container = ServiceContainer(EnrollmentService, config)
    container.start()
    return container


def publish_course(pika_client, url):
    pika_client.publish("lessons.events", "course_published", new_event("course_published", {
        "course_id": COURSE, "title": "Kỹ năng số cho người dân", "group": "citizen",
        "lessons": [{"id": f"l{n}", "title": f"Bài {n}", "position": n} for n in (1, 2, 3)]},
        correlation_id="catalog"))
    wait_for(lambda: requests.get(f"{url}/api/enrollment/courses").json(), what="catalog copy")


@pytest.fixture
def config(service_config):
    return service_config("enrollment", BULK_POLL_SECONDS=0.2)


@pytest.fixture
def enrollment(config, run_service, pika_client):
    url = base_url(run_service(EnrollmentService, config))
    publish_course(pika_client, url)
    return url


@pytest.fixture
def db(config, mongo_uri):
    client = MongoClient(mongo_uri, tz_aware=True)
    yield client[config["MONGO_DATABASE"]]
    client.close()


def drained(pika_client, count: int) -> list[dict]:
    """The learner_enrolled events lessons was sent, once `count` enrollments have been
    announced (events are published at least once: a repeat, after a kill, may come too)."""
    found = []
    wait_for(lambda: found.extend(pika_client.drain(LESSONS_QUEUE)) or
             len({e["data"]["enrollment_id"] for e in found}) >= count,
             what=f"{count} enrollments announced")
    return found


def upload(url, headers, data: bytes, **query):
    return requests.post(f"{url}/api/enrollment/imports", params={"course_id": COURSE, **query},
                         data=data, headers={**headers, "Content-Type": "text/csv"}, timeout=60)


def finished(url, headers, job_id, timeout=60):
    return wait_for(lambda: (lambda job: job["status"] == "done" and job)(
        requests.get(f"{url}/api/enrollment/imports/{job_id}", headers=headers).json()),
        timeout=timeout, what=f"import {job_id} done")


BAD_ROWS = {   # row text -> the field its report names
    "20;;038195001234;0912000020;1995;Người dân;14845": "full_name",
    "21;Nguyễn 2 Hoa;038195000021;0912000021;1995;Người dân;14845": "full_name",
    "22;Lê Văn Tám;038195000022;0241234567;1995;Người dân;14845": "phone",
    "23;Lê Văn Tám;038195000023;không có;1995;Người dân;14845": "phone",
    "24;Lê Văn Tám;3.81950E+11;0912000024;1995;Người dân;14845": "national_id",
    "25;Lê Văn Tám;038195000025;0912000025;1996;Người dân;14845": "national_id",
    "26;Lê Văn Tám;038195000026;0912000026;năm;Người dân;14845": "birth_year",
    "27;Lê Văn Tám;038295000027;0912000027;2095;Người dân;14845": "birth_year",
    "28;Lê Văn Tám;038195000028;0912000028;1995;Người ngoài hành tinh;14845": "group",
    "29;Lê Văn Tám;038195000029;0912000029;1995;Học sinh, sinh viên;14845": "course_id",
    "30;Lê Văn Tám;038195000030;0912000030;1995;Người dân;16000": "commune_code",
    "31;Lê Văn Tám;038195000031;0912000031;1995;Người dân;1484": "commune_code",
}


def test_every_kind_of_bad_row_is_reported_and_changes_nothing_and_a_reupload_repeats(
        enrollment, db, issuer, pika_client):
    staff = issuer.facilitator()
    good = [person(n) for n in range(1, 4)]
    lines = good + list(BAD_ROWS) + [good[0]]   # the same person twice in one file
    # as Excel saves "CSV" on a Vietnamese Windows: Windows-1258, semicolons
    data = to_windows_1258(csv_file(lines))
    answer = upload(enrollment, staff, data)
    assert answer.status_code == 202, answer.text
    created = answer.json()
    waiting = db.import_chunks.find_one({"job_id": created["id"]})
    assert waiting["rows"] == list(range(2, 2 + len(lines)))
    assert "Nguyễn" not in repr(waiting) and "038" + "1" not in repr(waiting)
    assert created["rows"] == len(lines) and created["status"] in ("queued", "running")
    assert created["file"]["encoding"] == "windows-1258" and created["file"]["delimiter"] == ";"
    assert answer.headers["Location"] == f"/api/enrollment/imports/{created['id']}"

    job = finished(enrollment, staff, created["id"])
    assert job["counts"] == {"valid": 4, "enrolled": 3, "already_enrolled": 1,
                             "invalid": len(BAD_ROWS)}
    assert job["processed"] == len(lines) and job["progress"] == 1.0
    report = requests.get(f"{enrollment}/api/enrollment/imports/{created['id']}/report",
                          headers=staff)
    assert report.headers["Content-Type"].startswith("text/csv")
    assert report.content.startswith(codecs.BOM_UTF8)
    rows = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig"))))
    reported = {(int(r["row"]), r["field"]) for r in rows if r["outcome"] == "invalid"}
    expected = {(number, field) for number, field in
                zip(range(5, 5 + len(BAD_ROWS)), BAD_ROWS.values())}
    assert {row for row, _ in reported} == {row for row, _ in expected}
    assert expected <= reported, sorted(expected - reported)
    repeat = [r for r in rows if r["outcome"] == "already_enrolled"]
    assert [int(r["row"]) for r in repeat] == [len(lines) + 1]
    assert all(r["message_vi"] and r["message_en"] for r in rows)
    assert "Số điện thoại: không phải số di động Việt Nam hợp lệ" in \
        next(r["message_vi"] for r in rows if int(r["row"]) == 7)
    # invalid rows changed nothing; valid rows were announced like any enrollment
    assert db.enrollments.count_documents({}) == 3 and db.learners.count_documents({}) == 3
    # the rows were personal data: once done, no chunk keeps them, sealed or not
    stored = repr(list(db.import_chunks.find())) + repr(list(db.imports.find()))
    assert "sealed_rows" not in stored and not re.search(r"0380\d{8}|0912\d{6}", stored)
    announced = list({e["data"]["enrollment_id"]: e for e in drained(pika_client, 3)}.values())
    assert sorted(e["data"]["full_name"] for e in announced) == sorted(
        line.split(";")[1] for line in good)
    assert all(e["correlation_id"].startswith(f"imp-{created['id']}-") for e in announced)

    # the same file again, as Excel "CSV UTF-8" this time: nobody enrolled twice
    again = upload(enrollment, staff, codecs.BOM_UTF8 + csv_file(lines).encode("utf-8"))
    assert again.status_code == 202, again.text
    assert again.json()["file"]["encoding"] == "utf-8-sig"
    job = finished(enrollment, staff, again.json()["id"])
    assert job["counts"] == {"valid": 4, "enrolled": 0, "already_enrolled": 4,
                             "invalid": len(BAD_ROWS)}
    assert db.enrollments.count_documents({}) == 3

    # a job is its creator's and its communes' staff's business only
    elsewhere = issuer.facilitator(communes=("16000",))
    assert requests.get(f"{enrollment}/api/enrollment/imports/{created['id']}",
                        headers=elsewhere).status_code == 404
    assert requests.get(f"{enrollment}/api/enrollment/imports/{created['id']}/report",
                        headers=elsewhere).status_code == 404
    assert requests.get(f"{enrollment}/api/enrollment/imports/{created['id']}",
                        headers=issuer.commune_admin("14845")).status_code == 200


def test_a_restart_mid_job_and_a_crash_before_outcomes_were_saved_enroll_each_row_once(
        config, db, issuer, pika_client, run_service):
    settings = {**config, "BULK_CHUNK_ROWS": 4, "BULK_CONCURRENCY": 1,
                "BULK_SAVE_EVERY_ROWS": 2, "BULK_LEASE_SECONDS": 1}
    staff = issuer.facilitator()
    lines = [person(n) for n in range(100, 140)]
    first = start_enrollment(settings)
    try:
        url = base_url(first)
        publish_course(pika_client, url)
        created = upload(url, staff, csv_file(lines).encode("utf-8")).json()
        wait_for(lambda: db.enrollments.count_documents({}) >= 2, what="some rows enrolled")
    finally:
        first.kill()   # as kill -9 would: mid-row, mid-chunk
    assert db.enrollments.count_documents({}) < len(lines), "the job ended before the kill"

    url = base_url(run_service(EnrollmentService, settings))
    job = finished(url, staff, created["id"])
    assert job["counts"] == {"valid": 40, "enrolled": 40, "already_enrolled": 0, "invalid": 0}
    assert db.enrollments.count_documents({}) == 40

    # a crash just after a row's enrollment was written, before its outcome was: the chunk
    # is taken again with one outcome saved, and the counts not yet added to the job
    # (its rows, which a done chunk no longer keeps, sealed again as the upload had them)
    chunk = db.import_chunks.find_one({"job_id": created["id"], "chunk_no": 3})
    cells = [cells for row, cells in bulk_csv.parse(csv_file(lines).encode(), 100).rows
             if row in chunk["rows"]]
    db.import_chunks.update_one({"_id": chunk["_id"]}, {"$set": {
        "outcomes": chunk["outcomes"][:1], "status": "pending",
        "sealed_rows": RowBox(HASH_KEY.encode()).seal(cells)}})
    db.imports.update_one({"_id": created["id"]}, {
        "$pull": {"counted_chunks": 3}, "$set": {"finished_at": None},
        "$inc": {"counts.valid": -4, "counts.enrolled": -4}})
    job = finished(url, staff, created["id"])
    assert job["counts"] == {"valid": 40, "enrolled": 40, "already_enrolled": 0, "invalid": 0}
    assert db.enrollments.count_documents({}) == 40
    announced = drained(pika_client, 40)
    assert len({e["data"]["enrollment_id"] for e in announced}) == 40
    # a repeat is the same event published again (the relay's at-least-once), never a second
    # enrollment of anyone: one event id per enrollment
    assert len({e["event_id"] for e in announced}) == 40


def test_a_hundred_thousand_rows_are_taken_and_one_more_or_a_larger_file_is_not(
        config, run_service, pika_client, issuer, db):
    url = base_url(run_service(EnrollmentService, {**config, "BULK_MAX_BYTES": 12_000_000}))
    publish_course(pika_client, url)
    staff = issuer.facilitator(communes=("16000",))
    # valid learners of a commune this facilitator does not cover: the job reports them
    # without writing any (100,000 enrollments would take this machine an hour)
    header = "full_name,national_id,phone,birth_year,group,commune_code\r\n"
    row = "Nguyễn Thị Hoa,038195001234,0912345678,1995,citizen,14845\r\n"
    answer = upload(url, staff, (header + row * 100_000).encode("utf-8"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["rows"] == 100_000
    assert db.import_chunks.count_documents({"job_id": answer.json()["id"]}) == 400

    too_many = upload(url, staff, (header + row * 100_001).encode("utf-8"))
    assert too_many.status_code == 400 and "100,000" in too_many.json()["message"]
    assert too_many.json()["message_vi"]
    too_large = upload(url, staff, (header + row * 200_000).encode("utf-8"))
    assert too_large.status_code == 413, too_large.text
    assert too_large.json()["error"] == "PAYLOAD_TOO_LARGE"
    assert db.imports.count_documents({}) == 1


def test_uploads_refused_before_any_row_is_read(enrollment, issuer, db):
    staff = issuer.facilitator()
    good = csv_file([person(1)]).encode("utf-8")
    cases = [
        (upload(enrollment, staff, good, course_id="no-such-course"), 404),
        (upload(enrollment, staff, good, commune_code="16000"), 403),
        (upload(enrollment, staff, b""), 400),
        (upload(enrollment, staff, "Họ và tên;Số điện thoại\r\nA B;0912345678\r\n".encode()), 400),
        (upload(enrollment, staff, b"\xff\xfe\x00\xd8 not utf-16"), 400),
        (upload(enrollment, staff, (HEADER + "\r\n").encode()), 400),
    ]
    for answer, status in cases:
        assert answer.status_code == status, answer.text
        assert answer.json()["fields"], answer.text
    assert upload(enrollment, issuer.learner("+84912345678"), good).status_code == 403
    no_commune = "Họ và tên;Số CCCD;Số điện thoại;Năm sinh;Đối tượng\r\n" \
                 "Nguyễn Thị Hoa;038195001234;0912345678;1995;Người dân\r\n"
    assert upload(enrollment, staff, no_commune.encode()).status_code == 400
    site = upload(enrollment, staff, no_commune.encode(), commune_code="14845")
    assert site.status_code == 202, site.text
    assert finished(enrollment, staff, site.json()["id"])["counts"]["enrolled"] == 1
    assert db.imports.count_documents({}) == 1


def test_two_enrollment_instances_share_a_job_and_enroll_each_row_once(
        config, db, issuer, pika_client, run_service):
    settings = {**config, "BULK_CHUNK_ROWS": 3, "BULK_CONCURRENCY": 2}
    first = base_url(run_service(EnrollmentService, settings))
    second = base_url(run_service(EnrollmentService, settings))
    publish_course(pika_client, first)
    wait_for(lambda: requests.get(f"{second}/api/enrollment/courses").json(),
             what="the second instance's catalog")
    staff = issuer.facilitator()
    lines = [person(n) for n in range(200, 230)]
    created = upload(first, staff, csv_file(lines).encode("utf-8")).json()
    # either instance answers for the job; the second works it too (it polls for chunks)
    job = finished(second, staff, created["id"])
    assert job["counts"] == {"valid": 30, "enrolled": 30, "already_enrolled": 0, "invalid": 0}
    assert db.enrollments.count_documents({}) == 30
    assert db.import_chunks.count_documents({"job_id": created["id"], "status": "done"}) == 10


def test_a_chunk_that_keeps_failing_is_reported_and_its_job_finishes(
        config, db, issuer, pika_client, run_service):
    url = base_url(run_service(EnrollmentService, {
        **config, "BULK_CHUNK_ROWS": 3, "BULK_LEASE_SECONDS": 0.5, "BULK_MAX_ATTEMPTS": 2}))
    publish_course(pika_client, url)
    staff = issuer.facilitator()
    created = upload(url, staff, csv_file([person(n) for n in range(300, 306)]).encode()).json()
    finished(url, staff, created["id"])
    # rows that cannot be read every time they are tried (sealed under another key, as after
    # a change of NATIONAL_ID_HASH_KEY that the docs forbid): the chunk is taken again
    db.import_chunks.update_one({"job_id": created["id"], "chunk_no": 1}, {"$set": {
        "outcomes": [], "status": "pending", "attempts": 0,
        "sealed_rows": RowBox(b"another key" * 4).seal([{}, {}, {}])}})
    db.imports.update_one({"_id": created["id"]}, {
        "$pull": {"counted_chunks": 1}, "$set": {"finished_at": None},
        "$inc": {"counts.valid": -3, "counts.enrolled": -3}})
    job = finished(url, staff, created["id"])
    assert job["counts"] == {"valid": 3, "enrolled": 3, "already_enrolled": 0, "invalid": 3}
    assert db.import_chunks.find_one({"job_id": created["id"], "chunk_no": 1})["attempts"] == 2
    report = requests.get(f"{url}/api/enrollment/imports/{created['id']}/report",
                          headers=staff).content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(report)))
    assert [int(r["row"]) for r in rows] == [5, 6, 7]
    assert rows[0]["message_en"] == "could not be processed after 2 attempts; upload this row again"
    assert rows[0]["message_vi"] == "Dòng: không xử lý được sau 2 lần thử; hãy tải lại dòng này"
