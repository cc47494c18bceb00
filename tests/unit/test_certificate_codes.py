"""Signed verification codes: a made-up code is refused without a store lookup."""
import pytest
from nameko.containers import ServiceContainer
from nameko.exceptions import ConfigurationError

from hocvu import settings
from services.certificates.domain import CODE_ALPHABET, CodeKeys, display_code
from services.certificates.service import CertificatesService
from services.certificates.settings import CertificatesSettings

OLD, NEW = "o" * 32, "n" * 32


def test_a_code_verifies_under_its_key_typed_in_any_usual_form():
    keys = CodeKeys(OLD)
    code = keys.new_code()
    assert keys.worth_looking_up(display_code(code).lower().replace("-", " ")) == code


def test_a_made_up_or_altered_code_is_refused():
    keys = CodeKeys(OLD)
    code = keys.new_code()
    altered = code[:5] + next(ch for ch in CODE_ALPHABET if ch != code[5]) + code[6:]
    assert keys.worth_looking_up(altered) is None
    # a code signed with a key the service does not hold proves nothing
    assert keys.worth_looking_up(CodeKeys(NEW).new_code()) is None
    # of many made-up codes, about one in a million would pass; none of these does
    forged = [code[:12] + tag for tag in ("0000", "ZZZZ", "AAAA", "1234")]
    assert sum(keys.is_signed(c) for c in forged) <= 1


def test_rotation_signs_with_the_first_key_and_verifies_with_every_one():
    before = CodeKeys(OLD).new_code()
    rotated = CodeKeys(f"{NEW},{OLD}")
    after = rotated.new_code()
    assert rotated.worth_looking_up(before) == before
    assert CodeKeys(NEW).worth_looking_up(after) == after
    assert CodeKeys(OLD).worth_looking_up(after) is None


def test_legacy_unsigned_codes_are_still_looked_up():
    assert CodeKeys(OLD).worth_looking_up("K7QM-2XRT-9BH4") == "K7QM2XRT9BH4"


@pytest.mark.parametrize("setting", ["", "short", f"{OLD},short", " , "])
def test_a_missing_or_short_key_is_refused(setting):
    with pytest.raises(ValueError, match="CERTIFICATE_CODE_KEY"):
        CodeKeys(setting)


def test_bad_settings_stop_certificates_naming_each_key():
    with pytest.raises(ConfigurationError) as raised:
        settings.load(CertificatesSettings, {"PUBLIC_BASE_URL": "verify.example",
                                             "CERTIFICATE_CODE_KEY": "short"}, "certificates")
    assert str(raised.value).startswith(
        "certificates: bad settings (CERTIFICATE_CODE_KEY: Shorter than minimum length 32.; "
        "PUBLIC_BASE_URL: must be an http(s) URL)")


def test_a_short_key_among_the_keys_stops_certificates_at_start():
    container = ServiceContainer(CertificatesService, {"AMQP_URI": "memory://",
                                                       "CERTIFICATE_CODE_KEY": f"{OLD},short"})
    codes = next(provider for provider in container.dependencies
                 if provider.attr_name == "codes")
    with pytest.raises(ConfigurationError, match="CERTIFICATE_CODE_KEY must hold"):
        codes.setup()
