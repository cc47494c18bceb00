"""Schemathesis fuzzes every service, through the nginx edge, against the OpenAPI document
it serves.

The whole platform runs as `make run` runs it (the six services as their own processes,
nginx in front, identity issuing the tokens), with one learner taken through the whole
journey, so an enrollment, a lesson plan, a certificate and its SMS exist. For each kind of
caller (no token: every route; a learner signed in by SMS code, a facilitator, a commune
admin, the province admin, all with identity's real tokens: the routes that take a token)
schemathesis runs its examples, coverage and fuzzing phases against each service's served
`openapi.json` (which must be the committed docs/openapi/ one) with every check it has
(server errors, status codes, content types, response headers and schemas, invalid data
rejected, valid data accepted, missing headers, unsupported methods, ignored auth...).
Health, which the edge does not route, is fuzzed on each service's own port. Any failure
fails the test, listed with the request that caused it.

Bounded: a fixed seed, derandomized generation, at most MAX_EXAMPLES per operation and
phase, and requests only to 127.0.0.1. The edge's rate limits are lifted for this platform
(the fuzzer is one address sending thousands of requests; the limits are tested in
tests/integration/test_devstack_edge.py). The stateful phase (chains of calls through links)
is off: the documents declare no links yet. Run it alone:
`make test PYTEST_ARGS=tests/e2e/test_fuzz_api.py`.
"""
import datetime
import json
import time
from pathlib import Path

import pytest
import requests
import schemathesis
from schemathesis.engine import Status, events, from_schema

from hocvu import reference
from hocvu_tools.devstack import accounts, proxy
from hocvu.http import access_rule
from hocvu.openapi import routes
from services.certificates.service import CertificatesService
from services.enrollment.service import EnrollmentService
from services.identity.service import IdentityService
from services.lessons.service import LessonsService
from services.notifications.service import NotificationsService
from services.reporting.service import ReportingService
from services.enrollment import identity
from tests.e2e.conftest import running_platform
from tests.support.signin import commune_admin, learner_headers
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SERVICES = [EnrollmentService, LessonsService, CertificatesService, NotificationsService,
            IdentityService, ReportingService]
# Past about 16 examples an operation, Hypothesis adds its targeting pass (schemathesis steers
# towards accepted inputs), which multiplies the cost; 10 keeps the module near two minutes
# on a quiet machine (the others' tests slow it several times over).
MAX_EXAMPLES = 10
SEED = 20251125
PHONE, COMMUNE = "+84912345678", "14845"
LEARNER = {"full_name": "Nguyễn Thị Hoa", "phone": "0912345678", "national_id": "038195001234",
           "birth_year": 1995, "group": "citizen", "province_code": "38",
           "commune_code": COMMUNE}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The platform as `make run` runs it, without the edge's rate limits."""
    with running_platform(
            tmp_path_factory.mktemp("fuzzed"), f"fuzz_{SEED}_",
            service_env={"STAFF_TOKEN_MINUTES": "120",
                         "PASSWORD_HASH_TIME_COST": "1", "PASSWORD_HASH_MEMORY_KIB": "8192",
                         "PASSWORD_HASH_PARALLELISM": "1"},
            edge=proxy.EdgeSettings.unthrottled()) as stack:
        yield stack


@pytest.fixture(scope="module")
def callers(platform) -> dict[str, dict]:
    """Nobody, and one of each role in Thanh Hóa (38) with identity's tokens, after one
    learner's whole journey so that the records the routes name exist."""
    admin = accounts.province_admin(platform)
    facilitator = accounts.create_facilitator(platform, admin, "fuzz-facilitator", [COMMUNE])
    staff = facilitator.headers()
    created = requests.post(platform.url("enrollment", "enrollments"), headers=staff,
                            json={"course_id": "citizen-digital-basics", "learner": LEARNER})
    assert created.status_code == 201, created.text
    enrollment = created.json()
    plan_url = platform.url("lessons", f"enrollments/{enrollment['id']}")
    plan = wait_for(lambda: requests.get(plan_url, headers=staff).ok and
                    requests.get(plan_url, headers=staff).json(), what="lesson plan")
    for lesson in plan["lessons"]:
        requests.post(f"{plan_url}/lessons/{lesson['id']}/complete", headers=staff)
    wait_for(lambda: requests.get(platform.url("certificates", "certificates"),
                                  headers=staff).json()["items"], what="certificate")
    return {"no token": {},
            "learner": learner_headers(platform, LEARNER["phone"]),
            "facilitator": staff,
            "commune admin": commune_admin(platform, admin, "fuzz-commune-admin",
                                           COMMUNE).headers(),
            "province admin": admin.headers()}


COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi"


@schemathesis.hook
def map_case(context, case):
    """A positive case meets the rules its document can only state in words.

    JSON Schema cannot say "letters of any script", the mobile number plan, "the CCCD encodes
    the birth year", "not after this year", "communes of that province", "a password not
    containing the username", "a reason not only spaces" or "a learner gives a score where
    the course has a pass mark" (the fields' descriptions say them). Only in cases generated as
    valid, and only where a value breaks one of those rules, it is replaced by one that keeps
    them, so such a case stays valid and is expected to pass; invalid cases are left as
    generated."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    if case.path in CSV_FILES:
        # any string is a CSV to JSON Schema; one with the header line the route needs is
        # what a valid file is (the header names are stated in the route's description)
        case.body = CSV_FILES[case.path]
        return case
    if case.path.startswith("/api/reporting/") and case.query:
        _repair_range(case.query)
    if case.path in BODY_REQUIRED_BY_RULE and not isinstance(case.body, dict):
        case.body, case.media_type = {}, "application/json"
    if not isinstance(case.body, dict):
        return case
    repair = REPAIRS.get(case.path)
    if repair:
        repair(case.body)
    if case.path == "/api/identity/staff/{username}/password":
        _repair_password(case.body, "new_password", str(case.path_parameters.get("username")))
    return case


def _valid_phone(body: dict, field: str = "phone") -> None:
    try:
        identity.normalize_phone(body.get(field, ""))
    except identity.InvalidPhone:
        body[field] = "0912345678"


def _repair_learner(body: dict) -> None:
    learner = body.get("learner")
    if not isinstance(learner, dict):
        return
    this_year = datetime.date.today().year
    if learner.get("birth_year", 0) > this_year:
        learner["birth_year"] = this_year
    if identity.name_problems(identity.normalize_name(learner.get("full_name", ""))):
        learner["full_name"] = "Nguyễn Văn An"
    _valid_phone(learner)
    national_id, birth_year = learner.get("national_id", ""), learner.get("birth_year", 1900)
    encoded = f"{(birth_year // 100 - 19) * 2}{birth_year % 100:02d}"
    learner["national_id"] = national_id[:3] + encoded + national_id[6:]
    province = learner.get("province_code")
    if province in reference.provinces() and reference.commune_problems(
            province, str(learner.get("commune_code"))):
        learner["commune_code"] = reference.communes_of(province)[0].code


def _repair_range(query: dict) -> None:
    """reporting's `from` is not after `to` (default today) and at most 366 days before it."""
    try:
        end = datetime.date.fromisoformat(str(query.get("to") or datetime.date.today()))
        start = datetime.date.fromisoformat(str(query["from"])) if query.get("from") else None
    except ValueError:
        return  # not a date: the case's own business
    if start and not 0 <= (end - start).days < 366:
        query["from"] = str(query["to"]) if query.get("to") else end.isoformat()


def _repair_password(body: dict, field: str, username: str = "") -> None:
    if username and username.lower() in str(body.get(field, "")).lower():
        body[field] = "Mật-khẩu-đủ-dài-" + "7" * 4


def _repair_staff(body: dict) -> None:
    body["province"], body["communes"] = "38", [COMMUNE]   # a commune of that province
    _repair_password(body, "password", str(body.get("username", "")))


def _repair_reason(body: dict) -> None:
    if len(" ".join(str(body.get("reason", "")).split())) < 3:
        body["reason"] = "Cấp nhầm người học"


def _repair_score(body: dict) -> None:
    # a learner gives their score where the course has a pass mark (every seeded course has)
    if body.get("score") is None:
        body["score"] = 90


# bodies optional in the document, required by a rule it states in words (_repair_score)
BODY_REQUIRED_BY_RULE = {"/api/lessons/enrollments/{enrollment_id}/lessons/{lesson_id}/complete"}


def _repair_session(body: dict) -> None:
    """A class is recorded on its day or after, not before it happens."""
    try:
        day = datetime.date.fromisoformat(str(body.get("date")))
    except ValueError:
        return
    if day > datetime.date.today():
        body["date"] = datetime.date.today().isoformat()


CSV_FILES = {
    "/api/enrollment/imports": "Họ và tên,Số CCCD,Số điện thoại,Năm sinh,Đối tượng,Mã xã\r\n"
                               "Trần Văn Bình,038190007777,0912000777,1990,Người dân,14845\r\n",
    "/api/enrollment/enrollments/lookup": "Số CCCD\r\n038195001234\r\n",
}

REPAIRS = {
    "/api/certificates/certificates/{certificate_id}/revoke": _repair_reason,
    "/api/lessons/enrollments/{enrollment_id}/lessons/{lesson_id}/complete": _repair_score,
    "/api/lessons/sessions": _repair_session,
    "/api/enrollment/enrollments": _repair_learner,
    "/api/identity/learners/code": _valid_phone,
    "/api/identity/learners/token": _valid_phone,
    "/api/identity/staff": _repair_staff,
}


def tokenless_operations(service_class) -> set[str]:
    return {name for name, _ in routes(service_class)
            if access_rule(service_class, name).kind != "roles"}


def operations_of(service_class) -> set[str]:
    return {name for name, _ in routes(service_class)
            if access_rule(service_class, name).kind == "operations"}


def fuzz(url: str, service_class, headers: dict, operations_only: bool = False) -> list[str]:
    """Run every phase and check of schemathesis against one service at `url`; the failures
    found. `operations_only`: just the routes for operations (health), on the service port."""
    service = service_class.name
    document = requests.get(f"{url}/api/{service}/openapi.json", timeout=10).json()
    assert document == json.loads((COMMITTED / f"{service}.json").read_text("utf-8")), \
        f"{service} serves another document than docs/openapi/{service}.json"
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        # ids in paths are free strings, of which hypothesis discards those a URL cannot carry
        # ("/", ".", ".."): a generator's efficiency warning, not a finding about the API
        "suppress-health-check": ["filter_too_much"],
        "base-url": url,
        "headers": headers,
        "workers": 1,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "checks": {"enabled": True},
        "phases": {"stateful": {"enabled": False}},
    })
    schema = schemathesis.openapi.from_dict(document, config=config)
    tokenless = tokenless_operations(service_class)
    operations_routes = operations_of(service_class)
    if operations_only:
        skipped = {name for name, _ in routes(service_class)} - operations_routes
    elif headers:
        # a route that takes no token (public, operations, the gateway's) never reads one:
        # the caller without one fuzzes it, callers with one fuzz the routes their roles decide
        skipped = tokenless
    else:
        skipped = operations_routes  # the edge does not route them
    if skipped:
        schema = schema.exclude(operation_id=sorted(skipped))
    failures, tested = [], set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"error in {getattr(event, 'label', 'the run')}: {event.info.format()}")
        elif isinstance(event, events.ScenarioFinished):
            if event.status in (Status.SUCCESS, Status.FAILURE):
                tested.add(event.label)
            if event.status == Status.ERROR:
                failures.append(f"{event.label}: the scenario ended in an error")
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        failures.append(f"{event.label} [{check.name}] {failure.title}: "
                                        f"{failure.message}\n    {check.failure_info.code_sample}")
    operations = {f"{verb.upper()} {path}" for path, item in document["paths"].items()
                  for verb, operation in item.items()
                  if operation["operationId"] not in skipped}
    untested = operations - tested
    if untested:
        failures.append(f"never tested: {sorted(untested)}")
    return failures


def test_every_service_answers_as_its_document_says_to_every_caller(platform, callers):
    found = []
    runs = [(caller, service, platform.base_url, headers, False)
            for caller, headers in callers.items() for service in SERVICES]
    runs += [("operations", service, platform.service_url(service.name), {}, True)
             for service in SERVICES]
    for caller, service, url, headers, operations_only in runs:
        started = time.monotonic()
        for failure in fuzz(url, service, headers, operations_only):
            found.append(f"{service.name}, {caller}: {failure}")
            print(found[-1])  # at once: a run cut short still tells what it found
        print(f"fuzzed {service.name} as {caller} in {time.monotonic() - started:.1f} s")
    assert not found, f"{len(found)} failures:\n" + "\n".join(dict.fromkeys(found))
