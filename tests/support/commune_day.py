"""A commune's day on a running platform, through the edge, as its users do it: a facilitator
enrolls learners one by one and in a burst, imports a list, pages through every list, holds a
class that completes a course; a learner signs in with the texted code and finishes online;
an enrollment is cancelled, a certificate revoked; the admin reads the figures. Every route
and event handler of the hot path runs at least once, and every list is paged past its first
page: what the store-command tests read."""
import csv
import datetime
import io
from concurrent.futures import ThreadPoolExecutor

import requests

from hocvu_tools.devstack import accounts
from tests.support.signin import learner_headers
from tests.support.waiting import wait_for

COMMUNE, PROVINCE, COURSE = "14845", "38", "citizen-digital-basics"
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Lò", "Hà")
GIVEN = ("Hoa", "Mai", "Lan", "Hương", "Thu", "Ngọc", "Bích", "Yến", "Dung", "Thảo")


def learner(n: int) -> dict:
    """The n-th learner of the day: a woman born in 1995 in Thanh Hoá (CCCD 038 1 95 ...)."""
    name = f"{FAMILY[n % len(FAMILY)]} Thị {GIVEN[n // len(FAMILY) % len(GIVEN)]}"
    return {"full_name": name, "phone": f"0912{n:06d}",
            "national_id": f"0381950{n:05d}", "birth_year": 1995, "group": "citizen",
            "province_code": PROVINCE, "commune_code": COMMUNE}


def enroll(platform, headers: dict, n: int) -> str:
    answer = requests.post(platform.url("enrollment", "enrollments"), headers=headers,
                           json={"course_id": COURSE, "learner": learner(n)})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def page_through(url: str, headers: dict, limit: int = 7, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        page = requests.get(url, headers=headers, params={
            **params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def import_list(platform, headers: dict, first: int, rows: int) -> None:
    out = io.StringIO()
    table = csv.writer(out)
    table.writerow(["Họ và tên", "Số CCCD", "Số điện thoại", "Năm sinh", "Đối tượng"])
    for n in range(first, first + rows):
        person = learner(n)
        table.writerow([person["full_name"], person["national_id"], person["phone"],
                        person["birth_year"], "Người dân"])
    answer = requests.post(platform.url("enrollment", "imports"), headers={
        **headers, "Content-Type": "text/csv"}, data=out.getvalue().encode("utf-8"),
        params={"course_id": COURSE, "commune_code": COMMUNE})
    assert answer.status_code == 202, answer.text
    job_url = platform.url("enrollment", f"imports/{answer.json()['id']}")
    job = wait_for(lambda: (lambda j: j["status"] == "done" and j)(
        requests.get(job_url, headers=headers).json()), timeout=120, what="the import")
    assert job["counts"]["enrolled"] == rows, job
    assert requests.get(f"{job_url}/report", headers=headers).status_code == 200


def hold_class(platform, headers: dict, national_ids: list[str]) -> list[str]:
    """A class whose learners, named by their national IDs, attend every lesson."""
    present = "Số CCCD\r\n" + "".join(f"{cccd}\r\n" for cccd in national_ids)
    found = requests.post(platform.url("enrollment", "enrollments/lookup"),
                          params={"course_id": COURSE}, data=present.encode(),
                          headers={**headers, "Content-Type": "text/csv"})
    assert found.status_code == 200, found.text
    ids = [item["enrollment_id"] for item in found.json()["items"]]
    assert len(ids) == len(national_ids)
    for enrollment_id in ids:
        wait_for(lambda: requests.get(platform.url("lessons", f"enrollments/{enrollment_id}"),
                                      headers=headers).ok, what="lesson plan")
    course = requests.get(platform.url("lessons", f"courses/{COURSE}")).json()
    for lesson in course["lessons"]:
        session = requests.post(platform.url("lessons", "sessions"), headers=headers, json={
            "course_id": COURSE, "lesson_id": lesson["id"], "commune_code": COMMUNE,
            "site": "Nhà văn hoá", "date": datetime.date.today().isoformat(),
            "enrollment_ids": ids})
        assert session.status_code == 201, session.text
    return ids


def learner_finishes_online(platform, n: int, enrollment_id: str) -> None:
    headers = learner_headers(platform, learner(n)["phone"])
    progress_url = platform.url("lessons", f"enrollments/{enrollment_id}")
    progress = wait_for(lambda: (lambda r: r.ok and r.json())(
        requests.get(progress_url, headers=headers)), what="lessons assigned")
    for lesson in progress["lessons"]:
        done = requests.post(f"{progress_url}/lessons/{lesson['id']}/complete",
                             json={"score": 90}, headers=headers)
        assert done.status_code == 200, done.text
    assert requests.get(platform.url("enrollment", "enrollments"), headers=headers).ok
    assert requests.get(platform.url("certificates", "certificates"), headers=headers).ok


def commune_day(platform, singles: int = 20, burst: int = 60, imported: int = 40,
                class_size: int = 10) -> dict:
    """Run the day; return the enrollment ids it made, by how."""
    admin = accounts.province_admin(platform)
    facilitator = accounts.create_facilitator(platform, admin, "day-facilitator", [COMMUNE])
    staff = facilitator.headers()
    single_ids = [enroll(platform, staff, n) for n in range(1, singles + 1)]
    with ThreadPoolExecutor(16) as pool:
        burst_ids = list(pool.map(lambda n: enroll(platform, staff, n),
                                  range(singles + 1, singles + burst + 1)))
    first_imported = singles + burst + 1
    import_list(platform, staff, first_imported, imported)
    class_ids = hold_class(platform, staff, [learner(n)["national_id"] for n in range(
        first_imported, first_imported + class_size)])
    learner_finishes_online(platform, 1, single_ids[0])

    certificates = wait_for(lambda: (lambda items: len(items) > class_size and items)(
        page_through(platform.url("certificates", "certificates"), staff)),
        timeout=60, what="the class's certificates and the online learner's")
    revoked = requests.post(platform.url("certificates",
                                         f"certificates/{certificates[0]['id']}/revoke"),
                            headers=admin.headers(), json={"reason": "issued in error"})
    assert revoked.status_code == 200, revoked.text
    cancelled = requests.post(platform.url("enrollment", f"enrollments/{single_ids[-1]}/cancel"),
                              headers=staff)
    assert cancelled.status_code == 200, cancelled.text

    for headers in (staff, admin.headers()):  # a commune's scope, and a province's
        page_through(platform.url("enrollment", "enrollments"), headers)
        page_through(platform.url("enrollment", "enrollments"), headers, course_id=COURSE)
        page_through(platform.url("enrollment", "enrollments"), headers, commune_code=COMMUNE)
        page_through(platform.url("certificates", "certificates"), headers)
        page_through(platform.url("certificates", "certificates"), headers,
                     enrollment_id=class_ids[0])
        page_through(platform.url("notifications", "messages"), headers)
        page_through(platform.url("notifications", "messages"), headers,
                     enrollment_id=single_ids[0])
    page_through(platform.url("identity", "staff"), admin.headers(), limit=1)
    for path in ("communes", "days", "targets"):
        answer = requests.get(platform.url("reporting", path), headers=admin.headers(),
                              params={"commune": COMMUNE} if path != "targets" else {})
        assert answer.ok, answer.text
    return {"single": single_ids, "burst": burst_ids, "class": class_ids,
            "admin": admin, "facilitator": facilitator}
