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
from services.identity import keys
from services.identity.service import IdentityService
from services.lessons.service import LessonsService
from services.notifications.service import NotificationsService
from services.reporting.service import ReportingService
from tests.support.fixtures import base_url
from tests.support.tokens import TestIssuer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SERVICES = [EnrollmentService, LessonsService, CertificatesService, NotificationsService,
            IdentityService, ReportingService]
PHONE, OTHER_PHONE = "+84912345678", "+84987654321"
COMMUNE, OTHER_COMMUNE = "14845", "16000"
PASSWORD = "a walked long passphrase"
LEARNER = {"full_name": "Nguyễn Thị Hoa", "phone": "0912345678", "national_id": "038195001234",
           "birth_year": 1995, "group": "citizen", "province_code": "38",
           "commune_code": COMMUNE}


@pytest.fixture(scope="module")
def stranger():
    """An issuer nobody configured: its tokens must never be trusted."""
    untrusted = TestIssuer(issuer="https://stranger.test")
    yield untrusted
    untrusted.close()


def extra_config(service, sms_gateway, tmp_path) -> dict:
    if service is NotificationsService:
        return {"SMS_GATEWAY_URL": sms_gateway}
    if service is IdentityService:
        # identity signs with its own key but, like every service here, trusts the test issuer
        keys.write_new_key(tmp_path / "identity.pem")
        return {"JWT_SIGNING_KEYS": str(tmp_path / "identity.pem"),
                "IDENTITY_HASH_KEY": "identity-hash-key-" + "0" * 32,
                "BOOTSTRAP_ADMIN_USERNAME": "walk.admin", "BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
                "BOOTSTRAP_ADMIN_PROVINCE": "38",
                "PASSWORD_HASH_TIME_COST": 1, "PASSWORD_HASH_MEMORY_KIB": 8192,
                "PASSWORD_HASH_PARALLELISM": 1}
    return {}


@pytest.fixture
def platform(service_config, run_service, sms_gateway, issuer, tmp_path):
    urls = {}
    for service in SERVICES:
        urls[service.name] = base_url(run_service(service, service_config(
            service.name, **extra_config(service, sms_gateway, tmp_path))))
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
    imported = requests.post(f"{urls['enrollment']}/api/enrollment/imports", headers={
        **staff, "Content-Type": "text/csv"}, params=CSV_QUERIES["/api/enrollment/imports"],
        data=CSV_BODIES["/api/enrollment/imports"])
    assert imported.status_code == 202, imported.text
    session = requests.post(f"{urls['lessons']}/api/lessons/sessions", headers=staff,
                            json={**BODIES["/api/lessons/sessions"], "enrollment_ids": []})
    assert session.status_code == 201, session.text
    # reporting has counted the learner: what it answers outside the scope is then telling
    wait_for(lambda: requests.get(f"{urls['reporting']}/api/reporting/communes", headers=staff,
                                  params={"commune": COMMUNE}).json()["totals"]
             ["certificates_issued"] == 1, what="reporting's figures")
    return {"urls": urls, "staff_subjects": identity_accounts(urls["identity"], issuer),
            "path_values": {"username": "walk.facilitator",
        "enrollment_id": record["id"], "lesson_id": plan["lessons"][0]["id"],
        "course_id": "citizen-digital-basics", "code": certificate["verification_code"],
        "learner_id": record["learner_id"], "certificate_id": certificate["id"],
        "import_id": imported.json()["id"],
        "session_id": session.json()["id"], "commune_code": COMMUNE, "name": "app.js"},
        "secrets": [record["id"], record["learner_id"], certificate["verification_code"],
                    certificate["id"], imported.json()["id"], session.json()["id"]]}


def identity_accounts(url, issuer) -> dict[str, str]:
    """The staff "here" as accounts in identity too (a walked facilitator and commune admin
    next to the bootstrap province admin), so that changing one's own password, which needs
    the account, is walked in scope: role -> subject."""
    admin = issuer.province_admin()
    for username, role in (("walk.facilitator", "facilitator"), ("walk.commune", "commune_admin")):
        created = requests.post(f"{url}/api/identity/staff", headers=admin, json={
            "username": username, "display_name": username, "role": role, "province": "38",
            "communes": [COMMUNE], "password": PASSWORD})
        assert created.status_code == 201, created.text
    accounts = requests.get(f"{url}/api/identity/staff", headers=admin).json()["items"]
    return {account["role"]: account["subject"] for account in accounts}


def callers(issuer, stranger, subjects):
    """name -> (headers, may see the learner's records)"""
    return {
        "no token": ({}, False),
        "expired": (issuer.facilitator(lifetime=-120), False),
        "unknown issuer": (stranger.facilitator(), False),
        "other audience": (issuer.facilitator(audience="someone-else"), False),
        "malformed": ({"Authorization": "Bearer not.a.jwt"}, False),
        "the learner": (issuer.learner(PHONE), True),
        "another learner": (issuer.learner(OTHER_PHONE), False),
        "facilitator here": (issuer.facilitator(communes=(COMMUNE,),
                                                subject=subjects["facilitator"]), True),
        "facilitator elsewhere": (issuer.facilitator(communes=(OTHER_COMMUNE,)), False),
        "commune admin here": (issuer.commune_admin(COMMUNE, subject=subjects["commune_admin"]),
                               True),
        "commune admin elsewhere": (issuer.commune_admin(OTHER_COMMUNE), False),
        "province admin here": (issuer.province_admin("38", subject=subjects["province_admin"]),
                                True),
        "province admin elsewhere": (issuer.province_admin("01"), False),
    }


# a body each route would accept from a caller in scope (the rest are sent {})
BODIES = {
    "/api/enrollment/enrollments": {"course_id": "citizen-digital-basics", "learner": LEARNER},
    "/api/identity/staff": {"username": "walked-facilitator", "display_name": "Trần Văn Bình",
                            "role": "facilitator", "province": "38", "communes": [COMMUNE],
                            "password": "a-long-enough-password"},
    # the staff "here" are identity accounts with PASSWORD; the one reset is walk.facilitator
    "/api/identity/staff/password": {"current_password": PASSWORD, "new_password": PASSWORD},
    "/api/identity/staff/<username>/password": {"new_password": PASSWORD},
    "/api/certificates/certificates/<certificate_id>/revoke": {"reason": "Cấp nhầm người học"},
    "/api/reporting/targets/<commune_code>": {"target_rate": 0.8},
    "/api/lessons/sessions": {"course_id": "citizen-digital-basics",
                              "lesson_id": "citizen-01-smartphone", "commune_code": COMMUNE,
                              "site": "Nhà văn hoá bản", "date": "2026-01-15",
                              "enrollment_ids": ["e-walked"]},
    "/api/lessons/sessions/<session_id>/attendance": {"enrollment_ids": ["e-walked"]},
}
# the routes that take a CSV file (text/csv), with their query; a commune named in the query
# is one the caller must cover (403 elsewhere), as a site's list names it
CSV_BODIES = {
    "/api/enrollment/imports": (
        "Họ và tên,Số CCCD,Số điện thoại,Năm sinh,Đối tượng\r\n"
        "Trần Văn Bình,038190007777,0912000777,1990,Người dân\r\n").encode("utf-8"),
    "/api/enrollment/enrollments/lookup": b"national_id\r\n038195001234\r\n",
}
CSV_QUERIES = {
    "/api/enrollment/imports": {"course_id": "citizen-digital-basics", "commune_code": COMMUNE},
    "/api/enrollment/enrollments/lookup": {"course_id": "citizen-digital-basics"},
}
ROLE_OF = {"the learner": "learner", "another learner": "learner",
           **{f"{who} {where}": role for who, role in (
               ("facilitator", "facilitator"), ("commune admin", "commune_admin"),
               ("province admin", "province_admin")) for where in ("here", "elsewhere")}}
UNTRUSTED = ("no token", "expired", "unknown issuer", "other audience", "malformed")


def call(platform, service, route, headers):
    path = route.url
    for name, value in platform["path_values"].items():
        path = path.replace(f"<{name}>", value)
    url = platform["urls"][service.name] + path
    if route.method == "GET":
        return requests.get(url, headers=headers, timeout=10)
    if route.url in CSV_BODIES:
        return requests.request(route.method, url, data=CSV_BODIES[route.url],
                                params=CSV_QUERIES[route.url], timeout=10,
                                headers={**headers, "Content-Type": "text/csv"})
    body = BODIES.get(route.url, {})
    if route.url.endswith("/sms-preferences"):
        body = {"reminders": True}
    return requests.request(route.method, url, json=body, headers=headers, timeout=10)


def assert_no_figures_of_the_learner(url: str, text: str, where: str) -> None:
    """Reporting answers every staff member the figures of their own scope: out of the
    learner's, that is rows of nothing (no count), never the learner's commune."""
    if url.endswith(".csv"):
        assert len(text.strip().splitlines()) == 1, where  # the header only
        return
    body = json.loads(text)
    for row in body["items"]:
        assert row.get("commune_code") != COMMUNE, where
        assert not any(row.get(metric) for metric in ("enrolled", "lessons_completed",
                                                      "certificates_issued")), where


def test_every_route_with_every_caller(platform, issuer, stranger):
    checked = []
    for service in SERVICES:
        for name, route in routes(service):
            rule = access_rule(service, name)
            for caller, (headers, in_scope) in callers(
                    issuer, stranger, platform["staff_subjects"]).items():
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
                elif ROLE_OF[caller] not in rule.roles:
                    assert answer.status_code == 403, where
                    assert answer.json()["error"] == "FORBIDDEN", where
                elif in_scope:
                    assert answer.status_code in (200, 201, 202, 409), where
                else:
                    assert answer.status_code in (200, 403, 404, 409), where
                    # nothing the caller did not already know (an id in the URL is echoed back)
                    unknown_to_caller = [secret for secret in platform["secrets"]
                                         if secret not in answer.request.url]
                    text = answer.text
                    assert not any(secret in text for secret in unknown_to_caller), where
                    if answer.status_code == 200 and service is ReportingService:
                        assert_no_figures_of_the_learner(route.url, text, where)
                    elif answer.status_code == 200:
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


def test_another_providers_tokens_work_by_configuration_alone(service_config, run_service,
                                                             issuer):
    """A province's own OpenID Connect provider (its SSO, VNeID) names its issuer, publishes
    its keys and calls its claims as it likes: settings, not code, point a service at it."""
    from services.certificates.service import CertificatesService
    provider = TestIssuer(issuer="https://sso.thanhhoa.test/realms/hocvu")
    try:
        url = base_url(run_service(CertificatesService, service_config(
            "certificates", AUTH_ISSUER=provider.issuer, AUTH_JWKS_URL=provider.jwks_url,
            AUTH_ROLE_CLAIM="hocvu_role", AUTH_PROVINCE_CLAIM="hocvu_province",
            AUTH_COMMUNES_CLAIM="hocvu_communes")))
        certificates = f"{url}/api/certificates/certificates"
        theirs = provider.token("ignored", hocvu_role="province_admin", hocvu_province="38",
                                subject="f:3f6c2a", province=None)
        answer = requests.get(certificates, headers={"Authorization": f"Bearer {theirs}"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"items": [], "next_cursor": None}
        # the issuer it no longer trusts is refused, however good its tokens
        assert requests.get(certificates, headers=issuer.province_admin()).status_code == 401
    finally:
        provider.close()
