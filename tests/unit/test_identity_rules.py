"""identity's rules without a broker or a store; the clock is whatever the test says."""
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from nameko.exceptions import ConfigurationError

from hocvu import sealing, settings
from hocvu.auth import learner_subject
from services.identity import domain, keys
from services.identity.domain import COMMUNE_ADMIN, FACILITATOR, PROVINCE_ADMIN, client_address
from services.identity.dependencies import Runtime
from services.identity.settings import IdentitySettings
from services.identity.tokens import Issuer
from services.notifications import sign_in_codes, sms, templates

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- lockout -----------------------------------------------------------------------------

POLICY = domain.LockoutPolicy(max_failures=3, window=timedelta(minutes=15),
                              lock=timedelta(minutes=10))


def test_the_last_allowed_failure_locks_the_username_for_the_lock_period():
    state = None
    for second in (0, 10, 20):
        assert domain.locked_for(state, at(second)) is None
        state = domain.after_failure(state, at(second), POLICY)
    assert domain.locked_for(state, at(20)) == 600
    assert domain.locked_for(state, at(619.5)) == 1
    assert domain.locked_for(state, at(620)) is None


def test_failures_spread_beyond_the_window_never_lock():
    state = None
    for minute in (0, 10, 20, 30, 40):
        state = domain.after_failure(state, at(minute * 60), POLICY)
        assert domain.locked_for(state, at(minute * 60)) is None


def test_after_a_lock_runs_out_the_count_starts_again():
    state = None
    for second in (0, 1, 2):
        state = domain.after_failure(state, at(second), POLICY)
    state = domain.after_failure(state, at(700), POLICY)
    assert state["failures"] == 1 and domain.locked_for(state, at(700)) is None


# --- rate limits -------------------------------------------------------------------------

PER_PHONE = domain.parse_windows("1/60,5/3600,10/86400")


def test_one_code_a_minute():
    history = domain.record_request([], at(0), PER_PHONE)
    assert domain.retry_after(history, at(1), PER_PHONE) == 59
    assert domain.retry_after(history, at(59.5), PER_PHONE) == 1
    assert domain.retry_after(history, at(60), PER_PHONE) is None


def test_five_an_hour_then_wait_for_the_oldest_to_leave_the_hour():
    history = []
    for minute in range(5):
        assert domain.retry_after(history, at(minute * 60), PER_PHONE) is None
        history = domain.record_request(history, at(minute * 60), PER_PHONE)
    assert domain.retry_after(history, at(5 * 60), PER_PHONE) == 3600 - 300
    assert domain.retry_after(history, at(3600), PER_PHONE) is None


def test_ten_a_day():
    history = []
    for hour in range(10):
        history = domain.record_request(history, at(hour * 3600), PER_PHONE)
    assert domain.retry_after(history, at(10 * 3600), PER_PHONE) == 86400 - 36000
    assert domain.retry_after(history, at(86400), PER_PHONE) is None


def test_the_history_keeps_only_what_a_window_still_counts():
    history = []
    for minute in range(30):
        history = domain.record_request(history, at(minute * 3000), PER_PHONE)
    assert len(history) == 10
    assert domain.record_request(history, at(10 ** 7), PER_PHONE) == [at(10 ** 7)]


@pytest.mark.parametrize("text", ["", "5", "5/0", "a/b", "1/60,x"])
def test_malformed_limits_are_refused(text):
    with pytest.raises(ValueError):
        domain.parse_windows(text)


# --- one-time codes ----------------------------------------------------------------------

KEY = b"k" * 32


def stored_code(code="123456", expires=at(300), attempts=3):
    return {"code_digest": domain.code_digest(KEY, "phone:abc", code), "expires_at": expires,
            "attempts_left": attempts}


def test_codes_are_six_random_digits():
    codes = {domain.new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 150


def test_the_right_code_is_accepted_once_and_removed():
    offered = domain.code_digest(KEY, "phone:abc", "123456")
    assert domain.check_code(stored_code(), offered, at(10)) == (domain.ACCEPTED, None)


def test_a_code_is_bound_to_its_phone():
    offered = domain.code_digest(KEY, "phone:other", "123456")
    assert domain.check_code(stored_code(), offered, at(10))[0] == domain.WRONG


def test_wrong_codes_spend_attempts_and_the_last_removes_the_code():
    wrong = domain.code_digest(KEY, "phone:abc", "654321")
    outcome, kept = domain.check_code(stored_code(attempts=2), wrong, at(10))
    assert outcome == domain.WRONG and kept["attempts_left"] == 1
    assert domain.check_code(kept, wrong, at(11)) == (domain.WRONG, None)
    right = domain.code_digest(KEY, "phone:abc", "123456")
    assert domain.check_code(None, right, at(12)) == (domain.NO_CODE, None)


def test_an_expired_code_is_refused_even_when_right():
    right = domain.code_digest(KEY, "phone:abc", "123456")
    assert domain.check_code(stored_code(), right, at(299))[0] == domain.ACCEPTED
    assert domain.check_code(stored_code(), right, at(300)) == (domain.NO_CODE, None)


# --- who may create whom -----------------------------------------------------------------

PROVINCE_38 = {"role": PROVINCE_ADMIN, "province": "38", "communes": []}
COMMUNE_14845 = {"role": COMMUNE_ADMIN, "province": "38", "communes": ["14845"]}
FACILITATOR_14845 = {"role": FACILITATOR, "province": "38", "communes": ["14845"]}


@pytest.mark.parametrize("creator, role, province, communes, allowed", [
    (PROVINCE_38, COMMUNE_ADMIN, "38", ["14845"], True),
    (PROVINCE_38, FACILITATOR, "38", ["14845", "14846"], True),
    (PROVINCE_38, FACILITATOR, "01", ["00001"], False),
    (PROVINCE_38, PROVINCE_ADMIN, "38", [], False),
    (COMMUNE_14845, FACILITATOR, "38", ["14845"], True),
    (COMMUNE_14845, FACILITATOR, "38", ["14845", "14846"], False),
    (COMMUNE_14845, FACILITATOR, "38", ["14846"], False),
    (COMMUNE_14845, FACILITATOR, "01", ["14845"], False),
    (COMMUNE_14845, COMMUNE_ADMIN, "38", ["14845"], False),
    (FACILITATOR_14845, FACILITATOR, "38", ["14845"], False),
])
def test_who_may_create_whom(creator, role, province, communes, allowed):
    assert (domain.creation_refusal(creator, role, province, communes) is None) is allowed


def test_what_each_admin_may_list():
    assert domain.visible_staff(PROVINCE_38) == {"province": "38"}
    assert domain.visible_staff(COMMUNE_14845) == {"province": "38",
                                                   "communes": {"$in": ["14845"]}}
    assert domain.visible_staff(FACILITATOR_14845) is None


def account(role, province="38", communes=()):
    return {"role": role, "province": province, "communes": list(communes)}


HIDDEN = domain.HIDDEN
COMMUNE_14812 = {"role": COMMUNE_ADMIN, "province": "38", "communes": ["14812"]}


@pytest.mark.parametrize("caller, target, refusal", [
    # a province admin: commune admins and facilitators of their province
    (PROVINCE_38, account(COMMUNE_ADMIN, communes=["14845"]), None),
    (PROVINCE_38, account(FACILITATOR, communes=["14845", "14812"]), None),
    (PROVINCE_38, account(PROVINCE_ADMIN), "forbidden"),          # listed, so no secret
    (PROVINCE_38, account(FACILITATOR, "42", ["18073"]), HIDDEN),
    (PROVINCE_38, account(PROVINCE_ADMIN, "42"), HIDDEN),
    # a commune admin: facilitators of their own commune only
    (COMMUNE_14845, account(FACILITATOR, communes=["14845"]), None),
    (COMMUNE_14845, account(FACILITATOR, communes=["14845", "14812"]), "forbidden"),
    (COMMUNE_14845, account(COMMUNE_ADMIN, communes=["14845"]), "forbidden"),
    (COMMUNE_14845, account(FACILITATOR, communes=["14812"]), HIDDEN),
    (COMMUNE_14812, account(FACILITATOR, communes=["14845"]), HIDDEN),
    (COMMUNE_14845, account(PROVINCE_ADMIN), HIDDEN),             # covers no commune listed
    (COMMUNE_14845, account(FACILITATOR, "42", ["14845"]), HIDDEN),
    # a facilitator: nobody, whoever it is
    (FACILITATOR_14845, account(FACILITATOR, communes=["14845"]), "forbidden"),
])
def test_who_may_reset_whose_password(caller, target, refusal):
    answer = domain.reset_refusal(caller, target)
    if refusal == "forbidden":
        assert answer not in (None, HIDDEN) and isinstance(answer, str)
    else:
        assert answer == refusal


def test_an_account_is_hidden_exactly_when_the_caller_cannot_list_it():
    """404 for what a caller's list would not show, so the answer reveals nothing new."""
    accounts = [account(role, province, communes) for role, province, communes in [
        (PROVINCE_ADMIN, "38", []), (COMMUNE_ADMIN, "38", ["14845"]),
        (FACILITATOR, "38", ["14845", "14812"]), (FACILITATOR, "38", ["14812"]),
        (FACILITATOR, "42", ["18073"]), (COMMUNE_ADMIN, "42", ["18073"])]]
    for caller in (PROVINCE_38, COMMUNE_14845, COMMUNE_14812):
        scope = domain.visible_staff(caller)
        for target in accounts:
            listed = target["province"] == scope["province"] and (
                "communes" not in scope or bool(set(target["communes"])
                                                & set(scope["communes"]["$in"])))
            assert (domain.reset_refusal(caller, target) == HIDDEN) is (not listed), (
                caller, target)


@pytest.mark.parametrize("role, province, communes, field", [
    (COMMUNE_ADMIN, "38", ["14845", "14846"], "communes"),
    (FACILITATOR, "38", [], "communes"),
    (FACILITATOR, "38", ["1484"], "communes"),
    (FACILITATOR, "38", ["14845", "14845"], "communes"),
    (FACILITATOR, "99", ["14845"], "province"),
    (FACILITATOR, "42", ["14845"], "communes"),   # 14845 is in Thanh Hoá (38)
    (FACILITATOR, "38", ["99999"], "communes"),   # no such commune
    (PROVINCE_ADMIN, "38", ["14845"], "communes"),
    ("superuser", "38", [], "role"),
])
def test_malformed_scopes(role, province, communes, field):
    assert field in domain.scope_problems(role, province, communes)


def test_well_formed_scopes():
    assert domain.scope_problems(FACILITATOR, "38", ["14845", "14812"]) == {}
    assert domain.scope_problems(COMMUNE_ADMIN, "42", ["18073"]) == {}
    assert domain.scope_problems(PROVINCE_ADMIN, "42", []) == {}


def test_password_rules():
    assert domain.password_problems("correct horse battery", "hoa.nguyen") == []
    assert domain.password_problems("short", "hoa") != []
    assert domain.password_problems("x" * 129, "hoa") != []
    assert domain.password_problems(" " * 12, "hoa") != []
    assert domain.password_problems("my name is Hoa.Nguyen!", "hoa.nguyen") != []


def test_usernames():
    assert domain.normalize_username("  Hoa.Nguyen ") == "hoa.nguyen"
    assert domain.username_problems("hoa.nguyen") == []
    assert domain.username_problems("ab") != []
    assert domain.username_problems("hoa nguyen") != []


# --- keys and tokens ---------------------------------------------------------------------

def test_the_kid_is_the_rfc_7638_thumbprint():
    # RFC 8037, appendix A.3: the thumbprint of its example Ed25519 key
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert keys.thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_a_jwk_publishes_the_public_half_only():
    key = keys.load_pem(keys.new_key_pem())
    assert set(key.jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert key.jwk["alg"] == "EdDSA" and key.jwk["use"] == "sig"
    assert key.kid == keys.thumbprint(key.jwk)


def test_p256_keys_sign_es256():
    key = keys.SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()))
    assert key.algorithm == "ES256" and {"x", "y"} <= set(key.jwk)


def test_a_new_key_file_is_private_and_never_overwritten(tmp_path):
    path = tmp_path / "secrets" / "signing.pem"
    assert keys.main(["new", str(path)]) == 0
    assert path.stat().st_mode & 0o777 == 0o600
    before = path.read_bytes()
    assert keys.main(["new", str(path)]) == 1
    assert path.read_bytes() == before
    assert keys.load_keyring(str(path))[0].algorithm == "EdDSA"


def test_tokens_carry_the_contract_claims_and_verify_against_the_jwks():
    keyring = [keys.load_pem(keys.new_key_pem()) for _ in range(2)]
    issuer = Issuer(keyring, "http://edge.test/api/identity/", "hocvu",
                    timedelta(minutes=15), timedelta(minutes=60))
    now = datetime.now(timezone.utc)
    token = issuer.staff_token({"_id": "u-1", "role": COMMUNE_ADMIN, "province": "38",
                                "communes": ["14845"], "display_name": "Lê Hoa"},
                               now)["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["kid"] == keyring[0].kid and header["alg"] == "EdDSA"
    public = jwt.PyJWK(keyring[0].jwk).key
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="hocvu",
                        issuer="http://edge.test/api/identity")
    assert claims["sub"] == "staff:u-1" and claims["communes"] == ["14845"]
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
    assert issuer.discovery()["jwks_uri"] == "http://edge.test/api/identity/.well-known/jwks.json"


def test_the_learner_subject_is_a_keyed_hash_of_the_phone():
    subject = learner_subject("+84912345678", b"s" * 32)
    assert subject.startswith("learner:") and len(subject) == len("learner:") + 32
    assert subject == learner_subject("+84912345678", b"s" * 32)
    assert subject != learner_subject("+84912345678", b"t" * 32)
    assert "912345678" not in subject


# --- client address, the code SMS ----------------------------------------------------------

def test_the_client_address_is_the_one_the_edge_saw():
    assert client_address({"X-Real-IP": "203.0.113.7"}, "127.0.0.1") == "203.0.113.7"
    assert client_address({"X-Forwarded-For": "10.9.9.9, 203.0.113.8"}, "127.0.0.1") \
        == "203.0.113.8"
    assert client_address({"X-Forwarded-For": "nonsense"}, "127.0.0.1") == "127.0.0.1"


def test_a_code_message_is_stored_redacted_and_sent_with_its_code():
    private, public = sealing.new_key_pair()
    message = {"text": f"Ma dang nhap: {sign_in_codes.REDACTED}. Het han sau 5 phut.",
               "sealed_code": sealing.Sealer(public).seal("042917")}
    assert sign_in_codes.text_to_send(message, sealing.Opener(private)) == \
        "Ma dang nhap: 042917. Het han sau 5 phut."
    assert sign_in_codes.text_to_send({"text": "Chao"}, None) == "Chao"
    with pytest.raises(sealing.CannotOpen):
        sign_in_codes.text_to_send(message, sealing.Opener(sealing.new_key_pair()[0]))


def test_the_sign_in_template_fits_one_gsm7_segment_with_the_placeholder_as_long_as_a_code():
    assert len(sign_in_codes.REDACTED) == 6
    text = sms.compose(templates.render(templates.SIGN_IN_CODE, code=sign_in_codes.REDACTED))
    assert text.encoding == "GSM7" and text.segments == 1


# --- settings ----------------------------------------------------------------------------

@pytest.fixture
def good_settings(tmp_path) -> dict:
    key_file = tmp_path / "signing.pem"
    keys.write_new_key(key_file)
    return {"JWT_SIGNING_KEYS": str(key_file), "AUTH_ISSUER": "https://hocvu.example/api/identity",
            "IDENTITY_HASH_KEY": "h" * 32, "LEARNER_SUBJECT_KEY": "s" * 32,
            "NOTIFICATIONS_SEALING_PUBLIC_KEY": sealing.new_key_pair()[1],
            "PASSWORD_HASH_TIME_COST": 1, "PASSWORD_HASH_MEMORY_KIB": 8,
            "PASSWORD_HASH_PARALLELISM": 1}


def test_identity_builds_its_runtime_from_its_settings(good_settings):
    runtime = Runtime(settings.load(IdentitySettings, good_settings))
    assert runtime.issuer.issuer == "https://hocvu.example/api/identity"
    assert runtime.issuer.staff_lifetime == timedelta(minutes=15)
    assert runtime.lockout == domain.LockoutPolicy(5, timedelta(seconds=900),
                                                   timedelta(seconds=900))
    assert runtime.codes.per_phone == domain.parse_windows("1/60,5/3600,10/86400")
    assert runtime.codes.lifetime == timedelta(seconds=300) and runtime.codes.attempts == 5


@pytest.mark.parametrize("bad, key, problem", [
    ({"SIGN_IN_MAX_FAILURES": "-1"}, "SIGN_IN_MAX_FAILURES", "Must be greater than or equal to 1"),
    ({"AUTH_ISSUER": "identity.example"}, "AUTH_ISSUER", "must be the URL identity is reached at"),
    ({"IDENTITY_HASH_KEY": "short"}, "IDENTITY_HASH_KEY", "Shorter than minimum length 32"),
    ({"CODE_LIMITS_PER_PHONE": "1/60,5"}, "CODE_LIMITS_PER_PHONE",
     "rate limit '5' is not <count>/<seconds>"),
    ({"PASSWORD_HASH_MEMORY_KIB": "16", "PASSWORD_HASH_PARALLELISM": 4},
     "PASSWORD_HASH_MEMORY_KIB", "must be at least 8 KiB per lane"),
])
def test_a_bad_setting_stops_identity_naming_its_key(good_settings, bad, key, problem):
    with pytest.raises(ConfigurationError, match=f"^identity: bad settings \\({key}: {problem}"):
        settings.load(IdentitySettings, {**good_settings, **bad}, "identity")


def test_an_unusable_key_file_or_sealing_key_stops_identity(good_settings, tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read signing key"):
        Runtime(settings.load(IdentitySettings, {**good_settings,
                                                 "JWT_SIGNING_KEYS": str(tmp_path / "none.pem")}))
    with pytest.raises(ConfigurationError, match="NOTIFICATIONS_SEALING_PUBLIC_KEY: .* base64"):
        Runtime(settings.load(IdentitySettings, {**good_settings,
                                                 "NOTIFICATIONS_SEALING_PUBLIC_KEY": "not a key"}))
