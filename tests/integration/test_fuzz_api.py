"""Schemathesis fuzzes every service against the OpenAPI document it serves.

The four services run in the test process (real RabbitMQ, a real SecantusDB, the SMS
simulator) with one learner taken through the whole journey, so an enrollment, a lesson
plan, a certificate and two SMS exist. For each kind of caller (no token: every route; the
learner, a facilitator, a commune admin, a province admin: the routes that take a token)
schemathesis runs its examples, coverage and fuzzing phases against each service's served
`openapi.json` (which must be the committed docs/openapi/ one) with every check it has
(server errors, status codes, content types, response headers and schemas, invalid data
rejected, valid data accepted, missing headers, unsupported methods, ignored auth...).
Any failure fails the test, listed with the request that caused it.

Bounded: a fixed seed, derandomized generation, at most MAX_EXAMPLES per operation and
phase, and requests only to 127.0.0.1. The stateful phase (chains of calls through links)
is off: the documents declare no links yet. Run it alone: `make test PYTEST_ARGS=tests/integration/test_fuzz_api.py`.
"""
import datetime
import json
import time
from pathlib import Path

import pytest
import requests
import schemathesis
from schemathesis.engine import Status, events, from_schema

from hocvu.http import access_rule
from hocvu.openapi import routes
from services.certificates.service import CertificatesService
from services.enrollment.service import EnrollmentService
from services.lessons.service import LessonsService
from services.notifications.service import NotificationsService
from services.enrollment import identity
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SERVICES = [EnrollmentService, LessonsService, CertificatesService, NotificationsService]
# Past about 16 examples an operation, Hypothesis adds its targeting pass (schemathesis steers
# towards accepted inputs), which multiplies the cost; 10 keeps the module near two minutes
# on a quiet machine (the others' tests slow it several times over).
MAX_EXAMPLES = 10
SEED = 20251125
PHONE, COMMUNE = "+84912345678", "14845"
LEARNER = {"full_name": "Nguyễn Thị Hoa", "phone": "0912345678", "national_id": "038195001234",
           "birth_year": 1995, "group": "citizen", "province_code": "38",
           "commune_code": COMMUNE}


@pytest.fixture
def platform(service_config, run_service, sms_gateway, issuer):
    """The four services with one learner's whole journey in their stores."""
    urls = {}
    for service in SERVICES:
        extra = {"SMS_GATEWAY_URL": sms_gateway} if service is NotificationsService else {}
        urls[service.name] = base_url(run_service(service, service_config(service.name, **extra)))
    wait_for(lambda: requests.get(f"{urls['enrollment']}/api/enrollment/courses").json(),
             what="enrollment's copy of the catalog")
    staff = issuer.facilitator()
    created = requests.post(f"{urls['enrollment']}/api/enrollment/enrollments", headers=staff,
                            json={"course_id": "citizen-digital-basics", "learner": LEARNER})
    assert created.status_code == 201, created.text
    enrollment = created.json()
    plan_url = f"{urls['lessons']}/api/lessons/enrollments/{enrollment['id']}"
    plan = wait_for(lambda: requests.get(plan_url, headers=staff).ok and
                    requests.get(plan_url, headers=staff).json(), what="lesson plan")
    for lesson in plan["lessons"]:
        requests.post(f"{plan_url}/lessons/{lesson['id']}/complete", headers=staff)
    wait_for(lambda: requests.get(f"{urls['certificates']}/api/certificates/certificates",
                                  headers=staff).json()["items"], what="certificate")
    wait_for(lambda: len(requests.get(f"{urls['notifications']}/api/notifications/messages",
                                      headers=staff).json()["items"]) == 2, what="both SMS")
    return urls


COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi"


@schemathesis.hook
def map_case(context, case):
    """A positive enrollment meets the rules its document can only state in words.

    JSON Schema cannot say "letters of any script", the mobile number plan, "the CCCD encodes
    the birth year" or "not after this year" (LearnerIn's description says them). Only in
    cases generated as valid, and only where a value breaks one of those rules, it is
    replaced by one that keeps them, so such a case stays valid and is expected to pass;
    invalid cases are left as generated."""
    if case.meta is None or not case.meta.generation.mode.is_positive \
            or case.path != "/api/enrollment/enrollments" or not isinstance(case.body, dict) \
            or not isinstance(case.body.get("learner"), dict):
        return case
    learner = case.body["learner"]
    this_year = datetime.date.today().year
    if learner.get("birth_year", 0) > this_year:
        learner["birth_year"] = this_year
    if identity.name_problems(identity.normalize_name(learner.get("full_name", ""))):
        learner["full_name"] = "Nguyễn Văn An"
    try:
        identity.normalize_phone(learner.get("phone", ""))
    except identity.InvalidPhone:
        learner["phone"] = "0912345678"
    national_id, birth_year = learner.get("national_id", ""), learner.get("birth_year", 1900)
    encoded = f"{(birth_year // 100 - 19) * 2}{birth_year % 100:02d}"
    learner["national_id"] = national_id[:3] + encoded + national_id[6:]
    return case


def callers(issuer) -> dict[str, dict]:
    """The callers the fuzzer plays: nobody, and one of each role, all in Thanh Hóa (38)."""
    return {"no token": {},
            "learner": issuer.learner(PHONE),
            "facilitator": issuer.facilitator(communes=(COMMUNE,)),
            "commune admin": issuer.commune_admin(COMMUNE),
            "province admin": issuer.province_admin("38")}


def tokenless_operations(service_class) -> set[str]:
    return {name for name, _ in routes(service_class)
            if access_rule(service_class, name).kind != "roles"}


def fuzz(url: str, service_class, headers: dict) -> list[str]:
    """Run every phase and check of schemathesis against one service; the failures found."""
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
    if headers:
        # a route that takes no token (public, operations, the gateway's) never reads one:
        # the caller without one fuzzes it, callers with one fuzz the routes their roles decide
        schema = schema.exclude(operation_id=sorted(tokenless))
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
                  if not (headers and operation["operationId"] in tokenless)}
    untested = operations - tested
    if untested:
        failures.append(f"never tested: {sorted(untested)}")
    return failures


def test_every_service_answers_as_its_document_says_to_every_caller(platform, issuer):
    found = []
    for caller, headers in callers(issuer).items():
        for service in SERVICES:
            started = time.monotonic()
            for failure in fuzz(platform[service.name], service, headers):
                found.append(f"{service.name}, {caller}: {failure}")
                print(found[-1])  # at once: a run cut short still tells what it found
            print(f"fuzzed {service.name} as {caller} in {time.monotonic() - started:.1f} s")
    assert not found, f"{len(found)} failures:\n" + "\n".join(dict.fromkeys(found))
