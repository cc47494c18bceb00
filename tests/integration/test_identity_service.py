"""identity against real RabbitMQ and SecantusDB: tokens, staff, learners' codes.

Tokens are verified the way every other service will: PyJWT's PyJWKClient reading the
JWKS at the jwks_uri that identity's discovery document names.
"""
import json
import re

import jwt
import pytest
import requests
from pymongo import MongoClient

from hocvu import sealing
from hocvu.auth import learner_subject
from hocvu.clock import utcnow
from hocvu_tools.devstack.processes import free_port
from hocvu.events import new_event
from services.identity import keys
from services.identity.service import IdentityService
from services.notifications.service import NotificationsService
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CODE_QUEUE = "evt-identity-sign_in_code_requested--notifications.send_sign_in_code"
ADMIN, ADMIN_PASSWORD = "admin.thanhhoa", "a long bootstrap passphrase"
SUBJECT_KEY = "learner-subject-key-" + "1" * 32
PHONE = "+84912345678"


@pytest.fixture
def sealing_keys():
    private, public = sealing.new_key_pair()
    return {"private": private, "public": public}


@pytest.fixture
def key_files(tmp_path):
    paths = [tmp_path / f"signing-{n}.pem" for n in (1, 2)]
    for path in paths:
        keys.write_new_key(path)
    return [str(path) for path in paths]


@pytest.fixture
def start_identity(service_config, run_service, key_files, sealing_keys):
    """Start an instance of identity (several may share one database); returns its URL."""
    database = service_config("identity")["MONGO_DATABASE"]

    def start(**overrides):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        run_service(IdentityService, service_config("identity", **{
            "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "MONGO_DATABASE": database,
            # identity trusts its own tokens the way every service does: through its JWKS
            "AUTH_ISSUER": f"{url}/api/identity", "AUTH_AUDIENCE": "hocvu",
            "AUTH_JWKS_URL": f"{url}/api/identity/.well-known/jwks.json",
            "JWT_SIGNING_KEYS": key_files[0],
            "IDENTITY_HASH_KEY": "identity-hash-key-" + "0" * 32,
            "LEARNER_SUBJECT_KEY": SUBJECT_KEY,
            "NOTIFICATIONS_SEALING_PUBLIC_KEY": sealing_keys["public"],
            "BOOTSTRAP_ADMIN_USERNAME": ADMIN, "BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "BOOTSTRAP_ADMIN_PROVINCE": "38",
            # cheap hashing for tests; the parameters themselves are argon2-cffi's concern
            "PASSWORD_HASH_TIME_COST": 1, "PASSWORD_HASH_MEMORY_KIB": 8192,
            "PASSWORD_HASH_PARALLELISM": 1, "SIGN_IN_MAX_FAILURES": 3,
            **overrides}))
        return url

    start.database = database
    start.mongo_uri = service_config("identity")["MONGO_URI"]
    return start


@pytest.fixture
def identity(start_identity):
    return start_identity()


def sign_in(url, username, password):
    return requests.post(f"{url}/api/identity/staff/sign-in",
                         json={"username": username, "password": password})


def token_of(url, username, password) -> str:
    answer = sign_in(url, username, password)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def verified_claims(url, token) -> dict:
    """What any hocvu service would accept: keys from this instance's JWKS (the discovery
    document's jwks_uri when the instance is the issuer), the algorithm from the JWK, never
    from the token."""
    discovery = requests.get(f"{url}/api/identity/.well-known/openid-configuration").json()
    jwks_url = f"{url}/api/identity/.well-known/jwks.json"
    signing_key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    return jwt.decode(token, signing_key.key, algorithms=[signing_key.algorithm_name],
                      audience="hocvu", issuer=discovery["issuer"],
                      options={"require": ["iss", "aud", "exp", "iat", "sub"]})


def create_staff(url, token, **account):
    body = {"display_name": "Nguyễn Thị Hoa", "password": "another long passphrase",
            "province": "38", **account}
    return requests.post(f"{url}/api/identity/staff", json=body, headers=bearer(token))


# --- discovery, keys, health -------------------------------------------------------------

def test_discovery_names_the_jwks_and_the_endpoints(identity, key_files):
    discovery = requests.get(f"{identity}/api/identity/.well-known/openid-configuration").json()
    assert discovery["issuer"] == f"{identity}/api/identity"
    assert discovery["id_token_signing_alg_values_supported"] == ["EdDSA"]
    assert {"sub", "role", "province", "communes", "phone_number"} <= set(
        discovery["claims_supported"])
    assert discovery["jwks_uri"] == f"{identity}/api/identity/.well-known/jwks.json"
    jwks = requests.get(discovery["jwks_uri"]).json()
    expected = keys.load_keyring(key_files[0])[0]
    assert jwks == {"keys": [expected.jwk]}
    assert "d" not in jwks["keys"][0]  # never the private half


def test_health(identity):
    assert requests.get(f"{identity}/api/identity/health/live").json()["status"] == "ok"
    ready = requests.get(f"{identity}/api/identity/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"broker": "ok", "store": "ok"}


def test_key_rotation_publishes_both_keys_and_tokens_of_both_verify(start_identity, key_files):
    before = start_identity()
    old_token = token_of(before, ADMIN, ADMIN_PASSWORD)
    # the new key goes first (it signs); the old stays published until its tokens expire
    after = start_identity(JWT_SIGNING_KEYS=f"{key_files[1]},{key_files[0]}",
                           AUTH_ISSUER=f"{before}/api/identity")  # instances share the issuer
    kids = [k["kid"] for k in requests.get(f"{after}/api/identity/.well-known/jwks.json")
            .json()["keys"]]
    old_kid, new_kid = (keys.load_keyring(path)[0].kid for path in key_files)
    assert kids == [new_kid, old_kid]
    new_token = token_of(after, ADMIN, ADMIN_PASSWORD)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert jwt.get_unverified_header(old_token)["kid"] == old_kid
    assert verified_claims(after, old_token)["sub"] == verified_claims(after, new_token)["sub"]
    # and a token of the new key still works on a staff route of an instance with both
    assert requests.get(f"{after}/api/identity/staff", headers=bearer(old_token)).status_code == 200


# --- staff -------------------------------------------------------------------------------

def test_the_bootstrap_admin_signs_in_once_created_and_is_never_recreated(start_identity):
    first = start_identity()
    answer = sign_in(first, ADMIN.upper(), ADMIN_PASSWORD)  # usernames ignore case
    assert answer.status_code == 200
    assert answer.json()["token_type"] == "Bearer" and answer.json()["expires_in"] == 900
    claims = verified_claims(first, answer.json()["access_token"])
    assert claims["role"] == "province_admin" and claims["province"] == "38"
    assert claims["sub"].startswith("staff:") and "communes" not in claims
    assert claims["exp"] - claims["iat"] == 900

    # a restart with another bootstrap password changes nothing
    second = start_identity(BOOTSTRAP_ADMIN_PASSWORD="a different long passphrase")
    assert sign_in(second, ADMIN, ADMIN_PASSWORD).status_code == 200
    assert sign_in(second, ADMIN, "a different long passphrase").status_code == 401
    with MongoClient(start_identity.mongo_uri) as client:
        assert client[start_identity.database].staff.count_documents({}) == 1


def test_a_password_is_rehashed_at_sign_in_when_the_hash_parameters_change(start_identity):
    def stored_hash():
        with MongoClient(start_identity.mongo_uri) as client:
            return client[start_identity.database].staff.find_one({"username": ADMIN})[
                "password_hash"]

    start_identity()
    assert ",t=1," in stored_hash()
    stronger = start_identity(PASSWORD_HASH_TIME_COST=2)
    assert ",t=1," in stored_hash()  # nothing changes before the password is seen again
    assert sign_in(stronger, "nobody.here", ADMIN_PASSWORD).status_code == 401
    assert sign_in(stronger, ADMIN, ADMIN_PASSWORD).status_code == 200
    assert ",t=2," in stored_hash()
    assert sign_in(stronger, ADMIN, ADMIN_PASSWORD).status_code == 200


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(identity):
    wrong = sign_in(identity, ADMIN, "not the right passphrase")
    unknown = sign_in(identity, "nobody.here", "not the right passphrase")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert sign_in(identity, ADMIN, "").status_code == 400


@pytest.mark.parametrize("username", [ADMIN, "nobody.here"])
def test_failed_sign_ins_lock_the_username(identity, username):
    for _ in range(3):
        assert sign_in(identity, username, "not the right passphrase").status_code == 401
    locked = sign_in(identity, username, ADMIN_PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["error"] == "TOO_MANY_REQUESTS"
    assert 890 <= int(locked.headers["Retry-After"]) <= 900
    assert locked.json()["retry_after"] == int(locked.headers["Retry-After"])
    assert sign_in(identity, "someone.else", "not the right passphrase").status_code == 401


def test_admins_create_staff_within_their_scope_only(identity):
    admin = token_of(identity, ADMIN, ADMIN_PASSWORD)
    made = create_staff(identity, admin, username="Lan.Commune", role="commune_admin",
                        communes=["14845"])
    assert made.status_code == 201, made.text
    assert made.json()["username"] == "lan.commune" and "password_hash" not in made.json()
    assert create_staff(identity, admin, username="lan.commune", role="facilitator",
                        communes=["14845"]).status_code == 409
    out_of_province = create_staff(identity, admin, username="outside", role="facilitator",
                                   province="42", communes=["18073"])
    assert out_of_province.status_code == 403 and out_of_province.json()["error"] == "FORBIDDEN"

    commune = token_of(identity, "lan.commune", "another long passphrase")
    assert verified_claims(identity, commune)["communes"] == ["14845"]
    assert create_staff(identity, commune, username="minh.facilitator", role="facilitator",
                        communes=["14845"]).status_code == 201
    for refused in ({"username": "other.commune", "role": "facilitator", "communes": ["14812"]},
                    {"username": "two.communes", "role": "facilitator",
                     "communes": ["14845", "14812"]},
                    {"username": "peer.admin", "role": "commune_admin", "communes": ["14845"]}):
        assert create_staff(identity, commune, **refused).status_code == 403, refused
    assert create_staff(identity, admin, username="far.facilitator", role="facilitator",
                        communes=["14797"]).status_code == 201

    facilitator = token_of(identity, "minh.facilitator", "another long passphrase")
    assert create_staff(identity, facilitator, username="x.y.z", role="facilitator",
                        communes=["14845"]).status_code == 403
    assert requests.get(f"{identity}/api/identity/staff",
                        headers=bearer(facilitator)).status_code == 403

    seen_by_commune = requests.get(f"{identity}/api/identity/staff", headers=bearer(commune))
    assert [a["username"] for a in seen_by_commune.json()["items"]] == [
        "lan.commune", "minh.facilitator"]


def test_staff_lists_come_in_pages(identity):
    admin = token_of(identity, ADMIN, ADMIN_PASSWORD)
    for n in range(3):
        assert create_staff(identity, admin, username=f"facilitator.{n}", role="facilitator",
                            communes=["14845"]).status_code == 201
    names, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{identity}/api/identity/staff", params=params,
                            headers=bearer(admin)).json()
        assert len(page["items"]) <= 2
        names += [a["username"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == [ADMIN, "facilitator.0", "facilitator.1", "facilitator.2"]
    assert requests.get(f"{identity}/api/identity/staff", params={"limit": 0},
                        headers=bearer(admin)).status_code == 400


def test_staff_routes_need_a_valid_staff_token(identity, start_identity, tmp_path):
    url = f"{identity}/api/identity/staff"
    missing = requests.get(url)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["error"] == "UNAUTHENTICATED"
    assert requests.get(url, headers=bearer("not.a.token")).status_code == 401
    # signed by a key this identity does not hold
    stranger_key = tmp_path / "stranger.pem"
    keys.write_new_key(stranger_key)
    stranger = start_identity(JWT_SIGNING_KEYS=str(stranger_key))
    forged = token_of(stranger, ADMIN, ADMIN_PASSWORD)
    assert requests.get(url, headers=bearer(forged)).status_code == 401


def test_an_invalid_account_is_refused_with_every_field_and_nothing_is_created(identity):
    admin = token_of(identity, ADMIN, ADMIN_PASSWORD)
    answer = create_staff(identity, admin, username="a b", role="commune_admin",
                          communes=["14845", "14812"], password="short")
    assert answer.status_code == 400
    assert {"username", "communes", "password"} <= set(answer.json()["fields"])
    page = requests.get(f"{identity}/api/identity/staff", headers=bearer(admin)).json()
    assert [a["username"] for a in page["items"]] == [ADMIN]


# --- passwords ---------------------------------------------------------------------------

FACILITATOR_PASSWORD = "another long passphrase"


def change_password(url, token, current, new):
    return requests.post(f"{url}/api/identity/staff/password", headers=bearer(token),
                         json={"current_password": current, "new_password": new})


def reset_password(url, token, username, new):
    return requests.post(f"{url}/api/identity/staff/{username}/password",
                         headers=bearer(token), json={"new_password": new})


def test_staff_change_their_own_password(identity):
    admin = token_of(identity, ADMIN, ADMIN_PASSWORD)
    assert create_staff(identity, admin, username="minh.facilitator", role="facilitator",
                        communes=["14845"]).status_code == 201
    facilitator = token_of(identity, "minh.facilitator", FACILITATOR_PASSWORD)

    changed = change_password(identity, facilitator, FACILITATOR_PASSWORD,
                              "a brand new passphrase")
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"status": "changed"}
    assert sign_in(identity, "minh.facilitator", FACILITATOR_PASSWORD).status_code == 401
    assert sign_in(identity, "minh.facilitator", "a brand new passphrase").status_code == 200
    # tokens issued before the change live on until they expire (docs/identity.md)
    assert requests.get(f"{identity}/api/identity/staff",
                        headers=bearer(admin)).status_code == 200


def test_a_weak_new_password_is_refused_and_changes_nothing(identity):
    admin = token_of(identity, ADMIN, ADMIN_PASSWORD)
    for weak in ("short", " " * 20, f"my name is {ADMIN.upper()}", "x" * 129):
        answer = change_password(identity, admin, ADMIN_PASSWORD, weak)
        assert answer.status_code == 400, weak
        assert answer.json()["error"] == "VALIDATION_ERROR"
        assert list(answer.json()["fields"]) == ["new_password"]
    missing = requests.post(f"{identity}/api/identity/staff/password", headers=bearer(admin),
                            json={"new_password": "a brand new passphrase"})
    assert missing.status_code == 400 and "current_password" in missing.json()["fields"]
    assert sign_in(identity, ADMIN, ADMIN_PASSWORD).status_code == 200


def test_a_wrong_current_password_changes_nothing_and_counts_toward_the_lockout(identity):
    admin = token_of(identity, ADMIN, ADMIN_PASSWORD)
    wrong = change_password(identity, admin, "not the right passphrase", "a brand new passphrase")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "INVALID_CREDENTIALS"  # the token itself was fine
    assert sign_in(identity, ADMIN, "a brand new passphrase").status_code == 401  # 2nd failure
    assert change_password(identity, admin, "still not it at all",
                           "a brand new passphrase").status_code == 401  # 3rd: locked
    locked = change_password(identity, admin, ADMIN_PASSWORD, "a brand new passphrase")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert sign_in(identity, ADMIN, ADMIN_PASSWORD).status_code == 429


def test_changing_a_password_needs_a_token(identity):
    answer = requests.post(f"{identity}/api/identity/staff/password",
                           json={"current_password": ADMIN_PASSWORD,
                                 "new_password": "a brand new passphrase"})
    assert answer.status_code == 401 and answer.json()["error"] == "UNAUTHENTICATED"
    assert sign_in(identity, ADMIN, ADMIN_PASSWORD).status_code == 200


def test_admins_reset_passwords_in_their_scope_only(identity):
    admin = token_of(identity, ADMIN, ADMIN_PASSWORD)
    for username, role, communes in [("lan.commune", "commune_admin", ["14845"]),
                                     ("minh.facilitator", "facilitator", ["14845"]),
                                     ("hai.elsewhere", "facilitator", ["14812"]),
                                     ("ba.two.communes", "facilitator", ["14845", "14812"])]:
        assert create_staff(identity, admin, username=username, role=role,
                            communes=communes).status_code == 201
    commune = token_of(identity, "lan.commune", FACILITATOR_PASSWORD)
    facilitator = token_of(identity, "minh.facilitator", FACILITATOR_PASSWORD)

    # a commune admin: a facilitator of their commune
    reset = reset_password(identity, commune, "Minh.Facilitator", "reset by the commune")
    assert reset.status_code == 200, reset.text
    assert sign_in(identity, "minh.facilitator", FACILITATOR_PASSWORD).status_code == 401
    assert sign_in(identity, "minh.facilitator", "reset by the commune").status_code == 200
    # not one of another commune, nor one that does not exist: the same 404
    elsewhere = reset_password(identity, commune, "hai.elsewhere", "reset by the commune")
    unknown = reset_password(identity, commune, "nobody.here", "reset by the commune")
    assert elsewhere.status_code == unknown.status_code == 404
    assert elsewhere.json() == unknown.json()
    # listed to them but not theirs to reset: 403
    assert reset_password(identity, commune, "ba.two.communes",
                          "reset by the commune").status_code == 403
    assert reset_password(identity, commune, ADMIN, "reset by the commune").status_code == 404
    # a facilitator resets nobody, not even a colleague
    by_facilitator = reset_password(identity, facilitator, "hai.elsewhere", "reset by a peer")
    assert by_facilitator.status_code == 403 and by_facilitator.json()["error"] == "FORBIDDEN"
    assert sign_in(identity, "hai.elsewhere", FACILITATOR_PASSWORD).status_code == 200

    # the province admin: commune admins and facilitators of the province
    assert reset_password(identity, admin, "lan.commune",
                          "reset by the province").status_code == 200
    assert sign_in(identity, "lan.commune", "reset by the province").status_code == 200
    weak = reset_password(identity, admin, "hai.elsewhere", "hai.elsewhere is me")
    assert weak.status_code == 400 and list(weak.json()["fields"]) == ["new_password"]
    assert sign_in(identity, "hai.elsewhere", FACILITATOR_PASSWORD).status_code == 200
    assert requests.post(f"{identity}/api/identity/staff/hai.elsewhere/password",
                         json={"new_password": "no token at all"}).status_code == 401


def test_a_province_admin_cannot_reach_another_province(start_identity):
    first = start_identity()
    admin = token_of(first, ADMIN, ADMIN_PASSWORD)
    assert create_staff(first, admin, username="minh.facilitator", role="facilitator",
                        communes=["14845"]).status_code == 201
    # another province's admin on the same accounts
    other = start_identity(BOOTSTRAP_ADMIN_USERNAME="admin.nghean",
                           BOOTSTRAP_ADMIN_PROVINCE="42")
    stranger = token_of(other, "admin.nghean", ADMIN_PASSWORD)
    assert reset_password(other, stranger, "minh.facilitator",
                          "taken over from outside").status_code == 404
    assert reset_password(other, stranger, ADMIN, "taken over from outside").status_code == 404
    assert sign_in(first, "minh.facilitator", FACILITATOR_PASSWORD).status_code == 200


def test_a_reset_clears_the_lockout(identity):
    admin = token_of(identity, ADMIN, ADMIN_PASSWORD)
    assert create_staff(identity, admin, username="minh.facilitator", role="facilitator",
                        communes=["14845"]).status_code == 201
    for _ in range(3):
        assert sign_in(identity, "minh.facilitator", "not the right one").status_code == 401
    assert sign_in(identity, "minh.facilitator", FACILITATOR_PASSWORD).status_code == 429
    assert reset_password(identity, admin, "minh.facilitator",
                          "a fresh start passphrase").status_code == 200
    assert sign_in(identity, "minh.facilitator", "a fresh start passphrase").status_code == 200


# --- learners ----------------------------------------------------------------------------

def ask_code(url, phone="0912 345 678", address="203.0.113.10"):
    return requests.post(f"{url}/api/identity/learners/code", json={"phone": phone},
                         headers={"X-Real-IP": address})


def ask_token(url, code, phone="+84 912 345 678"):
    return requests.post(f"{url}/api/identity/learners/token",
                         json={"phone": phone, "code": code})


def strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def test_a_learner_signs_in_with_the_code_only_notifications_can_read(
        identity, start_identity, pika_client, sealing_keys):
    answer = ask_code(identity)
    assert answer.status_code == 202 and answer.json() == {"status": "sent", "expires_in": 300}

    raw = wait_for(lambda: pika_client.drain_with_headers(CODE_QUEUE), what="the code event")
    assert len(raw) == 1
    body = raw[0][1].decode()
    assert "912345678" not in body
    data = json.loads(body)["data"]
    opener = sealing.Opener(sealing_keys["private"])
    code = opener.open(data["code"])
    assert re.fullmatch(r"\d{6}", code) and code not in body
    assert opener.open(data["phone"]) == PHONE

    wrong = str((int(code) + 1) % 10 ** 6).zfill(6)
    refused = ask_token(identity, wrong)
    assert refused.status_code == 401 and refused.json()["error"] == "INVALID_CODE"
    granted = ask_token(identity, code)
    assert granted.status_code == 200, granted.text
    assert granted.json()["expires_in"] == 3600
    claims = verified_claims(identity, granted.json()["access_token"])
    assert claims["sub"] == learner_subject(PHONE, SUBJECT_KEY.encode())
    assert claims["role"] == "learner" and claims["phone_number"] == PHONE
    assert claims["phone_number_verified"] is True
    assert ask_token(identity, code).status_code == 401  # used up

    # identity's store holds neither the phone nor the code in clear
    with MongoClient(start_identity.mongo_uri) as client:
        db = client[start_identity.database]
        stored = [s for name in db.list_collection_names() for doc in db[name].find()
                  for s in strings_in(doc)]
    assert stored and not [s for s in stored if "912345678" in s or code in s]


def test_a_code_allows_few_attempts(identity, pika_client, sealing_keys):
    assert ask_code(identity).status_code == 202
    raw = wait_for(lambda: pika_client.drain(CODE_QUEUE), what="the code event")
    code = sealing.Opener(sealing_keys["private"]).open(raw[0]["data"]["code"])
    wrong = str((int(code) + 1) % 10 ** 6).zfill(6)
    for _ in range(5):
        assert ask_token(identity, wrong).status_code == 401
    assert ask_token(identity, code).status_code == 401  # the code is gone


def test_codes_are_rate_limited_per_phone_and_per_address(start_identity, pika_client):
    identity = start_identity(CODE_LIMITS_PER_ADDRESS="3/600")
    assert ask_code(identity).status_code == 202
    again = ask_code(identity, phone="+84912345678")
    assert again.status_code == 429 and again.json()["error"] == "TOO_MANY_REQUESTS"
    assert 55 <= int(again.headers["Retry-After"]) <= 60
    assert again.json()["retry_after"] == int(again.headers["Retry-After"])

    assert ask_code(identity, phone="0987001234").status_code == 202
    assert ask_code(identity, phone="0987001235").status_code == 202
    crowded = ask_code(identity, phone="0987001236")
    assert crowded.status_code == 429 and int(crowded.headers["Retry-After"]) > 500
    assert ask_code(identity, phone="0987001236", address="198.51.100.1").status_code == 202
    # refusals sent nothing: one event per accepted request
    wait_for(lambda: pika_client.depth(CODE_QUEUE) >= 4, what="four code events")
    assert len(pika_client.drain(CODE_QUEUE)) == 4


def test_a_bad_phone_or_code_is_a_clear_400(identity, pika_client):
    bad_phone = ask_code(identity, phone="+1 202 555 0100")
    assert bad_phone.status_code == 400 and "phone" in bad_phone.json()["fields"]
    bad_code = ask_token(identity, "12ab")
    assert bad_code.status_code == 400 and "code" in bad_code.json()["fields"]
    assert pika_client.depth(CODE_QUEUE) == 0


def test_the_sms_carries_the_code_and_notifications_stores_it_redacted(
        identity, start_identity, service_config, run_service, sms_gateway, sms_outbox,
        sealing_keys):
    port = free_port()
    config = service_config(
        "notifications", WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", SMS_GATEWAY_URL=sms_gateway,
        SMS_CALLBACK_URL=f"http://127.0.0.1:{port}/api/notifications/delivery-reports",
        SMS_POLL_SECONDS=0.2, NOTIFICATIONS_SEALING_PRIVATE_KEY=sealing_keys["private"])
    run_service(NotificationsService, config)
    assert ask_code(identity, phone="0987 001 234").status_code == 202
    sent = wait_for(lambda: [m for m in sms_outbox() if m["to"] == "84987001234"],
                    what="the code SMS")
    code = re.search(r"\b(\d{6})\b", sent[0]["text"]).group(1)
    assert sent[0]["text"].startswith("Ma dang nhap Binh dan hoc vu so: ")

    with MongoClient(config["MONGO_URI"]) as client:
        stored = client[config["MONGO_DATABASE"]].messages.find_one(
            {"template": "sign_in_code"})
    assert stored["sms_class"] == "transactional" and "******" in stored["text"]
    assert not [s for s in strings_in(stored) if code in s]
    assert sent[0]["text"] == stored["text"].replace("******", code)

    assert ask_token(identity, code, phone="0987001234").status_code == 200


def test_notifications_dead_letters_a_code_it_cannot_open_and_sends_nothing(
        service_config, run_service, pika_client, sms_gateway, sms_outbox, sealing_keys):
    config = service_config("notifications", SMS_GATEWAY_URL=sms_gateway, SMS_POLL_SECONDS=0.2,
                            NOTIFICATIONS_SEALING_PRIVATE_KEY=sealing_keys["private"])
    run_service(NotificationsService, config)
    stranger = sealing.Sealer(sealing.new_key_pair()[1])  # not notifications' key
    event = new_event("sign_in_code_requested", {
        "request_id": "req-1", "phone": stranger.seal(PHONE), "code": stranger.seal("123456"),
        "expires_at": utcnow()}, correlation_id="corr-code")
    pika_client.publish("identity.events", "sign_in_code_requested", event)
    dead = wait_for(lambda: pika_client.drain_with_headers(f"{CODE_QUEUE}.dlq"),
                    what="the dead letter")
    assert "not sealed for this service" in dead[0][0]["x-hocvu-reason"]
    assert "912345678" not in dead[0][1].decode()
    with MongoClient(config["MONGO_URI"]) as client:
        assert client[config["MONGO_DATABASE"]].messages.count_documents({}) == 0
    assert sms_outbox() == []
