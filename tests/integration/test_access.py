"""Every route of every service, called by every kind of caller: the ACCESS tables hold.

One learner in commune 14845 of Thanh Hóa (38) goes through the whole journey; then each
route (found from the services' own route lists, so a new route is walked without editing
this test) is called with no token, an expired token, a token from an issuer nobody trusts,
a token for another audience, the learner, another learner, and staff inside and outside
the learner's commune and province. Answers: 401 without a valid token, 403 out of role on
a write, and another commune's data never visible, not even its existence."""
import json
import time

import pytest
import requests

from hocvu import auth
from hocvu.http import access_rule
from hocvu.openapi import routes
from services.certificates.service import CertificatesService
from services.enrollment.service import EnrollmentService
from services.lessons.service import LessonsService
from services.notifications.service import NotificationsService
from tests.support.fixtures import base_url
from tests.support.tokens import TestIssuer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SERVICES = [EnrollmentService, LessonsService, CertificatesService, NotificationsService]
PHONE, OTHER_PHONE = "+84912345678", "+84987654321"
COMMUNE, OTHER_COMMUNE = "14845", "16000"
LEARNER = {"full_name": "Nguyễn Thị Hoa", "phone": "0912345678", "national_id": "038195001234",
           "birth_year": 1995, "group": "citizen", "province_code": "38",
           "commune_code": COMMUNE}


@pytest.fixture(scope="module")
def stranger():
    """An issuer nobody configured: its tokens must never be trusted."""
    untrusted = TestIssuer(issuer="https://stranger.test")
    yield untrusted
    untrusted.close()


@pytest.fixture
def platform(service_config, run_service, sms_gateway, issuer):
    urls = {}
    for service in SERVICES:
        extra = {"SMS_GATEWAY_URL": sms_gateway} if service is NotificationsService else {}
        urls[service.name] = base_url(run_service(service, service_config(service.name, **extra)))
    wait_for(lambda: requests.get(f"{urls['enrollment']}/api/enrollment/courses").json(),
             what="enrollment's copy of the catalog")
    staff = issuer.facilitator()
    enrollment = requests.post(f"{urls['enrollment']}/api/enrollment/enrollments", headers=staff,
                               json={"course_id": "citizen-digital-basics", "learner": LEARNER})
    assert enrollment.status_code == 201, enrollment.text
    record = enrollment.json()
    plan_url = f"{urls['lessons']}/api/lessons/enrollments/{record['id']}"
    plan = wait_for(lambda: requests.get(plan_url, headers=staff).ok and
                    requests.get(plan_url, headers=staff).json(), what="lesson plan")
    for lesson in plan["lessons"]:
        requests.post(f"{plan_url}/lessons/{lesson['id']}/complete", headers=staff)
    certificate = wait_for(lambda: requests.get(
        f"{urls['certificates']}/api/certificates/certificates", headers=staff).json()["items"],
        what="certificate")[0]
    wait_for(lambda: len(requests.get(f"{urls['notifications']}/api/notifications/messages",
                                      headers=staff).json()["items"]) == 2, what="both SMS")
    return {"urls": urls, "path_values": {
        "enrollment_id": record["id"], "lesson_id": plan["lessons"][0]["id"],
        "course_id": "citizen-digital-basics", "code": certificate["verification_code"],
        "learner_id": record["learner_id"]},
        "secrets": [record["id"], record["learner_id"], certificate["verification_code"]]}


def callers(issuer, stranger):
    """name -> (headers, may see the learner's records)"""
    return {
        "no token": ({}, False),
        "expired": (issuer.facilitator(lifetime=-120), False),
        "unknown issuer": (stranger.facilitator(), False),
        "other audience": (issuer.facilitator(audience="someone-else"), False),
        "malformed": ({"Authorization": "Bearer not.a.jwt"}, False),
        "the learner": (issuer.learner(PHONE), True),
        "another learner": (issuer.learner(OTHER_PHONE), False),
        "facilitator here": (issuer.facilitator(communes=(COMMUNE,)), True),
        "facilitator elsewhere": (issuer.facilitator(communes=(OTHER_COMMUNE,)), False),
        "commune admin here": (issuer.commune_admin(COMMUNE), True),
        "commune admin elsewhere": (issuer.commune_admin(OTHER_COMMUNE), False),
        "province admin here": (issuer.province_admin("38"), True),
        "province admin elsewhere": (issuer.province_admin("01"), False),
    }


UNTRUSTED = ("no token", "expired", "unknown issuer", "other audience", "malformed")


def call(platform, service, route, headers):
    path = route.url
    for name, value in platform["path_values"].items():
        path = path.replace(f"<{name}>", value)
    url = platform["urls"][service.name] + path
    if route.method == "GET":
        return requests.get(url, headers=headers, timeout=10)
    body = {"course_id": "citizen-digital-basics", "learner": LEARNER} \
        if route.url.endswith("/enrollments") else {}
    if route.url.endswith("/sms-preferences"):
        body = {"reminders": True}
    return requests.request(route.method, url, json=body, headers=headers, timeout=10)


def test_every_route_with_every_caller(platform, issuer, stranger):
    checked = []
    for service in SERVICES:
        for name, route in routes(service):
            rule = access_rule(service, name)
            for caller, (headers, in_scope) in callers(issuer, stranger).items():
                answer = call(platform, service, route, headers)
                where = f"{route.method} {route.url} as {caller}: {answer.status_code} {answer.text[:200]}"
                checked.append(where)
                if rule.kind == "gateway":
                    assert answer.status_code == 401, where   # a token is no signature
                elif rule.kind in ("public", "operations"):
                    assert answer.status_code not in (401, 403), where
                elif caller in UNTRUSTED:
                    assert answer.status_code == 401, where
                    assert answer.json()["error"] == "UNAUTHENTICATED", where
                    assert answer.headers["WWW-Authenticate"].startswith("Bearer"), where
                elif in_scope:
                    assert answer.status_code in (200, 201, 409), where
                else:
                    assert answer.status_code in (200, 403, 404, 409), where
                    # nothing the caller did not already know (an id in the URL is echoed back)
                    unknown_to_caller = [secret for secret in platform["secrets"]
                                         if secret not in answer.request.url]
                    text = answer.text
                    assert not any(secret in text for secret in unknown_to_caller), where
                    if answer.status_code == 200:
                        assert json.loads(text)["items"] == [], where
    assert len(checked) == sum(len(routes(s)) for s in SERVICES) * 13


def test_a_token_signed_by_a_key_the_issuer_does_not_publish_is_refused(platform, issuer,
                                                                        stranger):
    """The issuer's name on a token signed with another key (the stranger's) proves nothing."""
    forged = stranger.token(auth.PROVINCE_ADMIN, issuer=issuer.issuer, province="38")
    url = f"{platform['urls']['enrollment']}/api/enrollment/enrollments"
    answer = requests.get(url, headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401


def test_the_algorithm_comes_from_the_key_not_from_the_token(platform, issuer):
    """alg=none, or HS256 keyed with the public key, must not pass."""
    import base64
    header = base64.urlsafe_b64encode(json.dumps(
        {"alg": "none", "kid": issuer.kid}).encode()).rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps({
        "iss": issuer.issuer, "aud": "hocvu", "sub": "staff:x", "iat": int(time.time()),
        "exp": int(time.time()) + 600, "role": "province_admin", "province": "38"}).encode()
    ).rstrip(b"=").decode()
    url = f"{platform['urls']['enrollment']}/api/enrollment/enrollments"
    answer = requests.get(url, headers={"Authorization": f"Bearer {header}.{payload}."})
    assert answer.status_code == 401
