"""A service's settings are typed, defaulted and checked once: a bad value names its key."""
from datetime import timedelta

import pytest
from nameko.exceptions import ConfigurationError

from hocvu import settings


class ExampleSettings(settings.SettingsSchema):
    unaccented = settings.flag("SMS_UNACCENTED", True)
    concurrency = settings.whole("SMS_SEND_CONCURRENCY", 10)
    linger = settings.number("SMS_LINGER_SECONDS", 0.02)
    lease = settings.duration("SMS_LEASE_SECONDS", 30)
    retention = settings.duration("BULK_RETENTION_DAYS", 30, unit="days")
    brandname = settings.text("SMS_BRANDNAME", "HOCVUSO")
    key = settings.secret("CERTIFICATE_CODE_KEY")


KEY = "k" * 32


def test_defaults_apply_to_keys_missing_empty_or_null():
    loaded = settings.load(ExampleSettings, {"CERTIFICATE_CODE_KEY": KEY, "SMS_UNACCENTED": "",
                                             "SMS_SEND_CONCURRENCY": None, "AMQP_URI": "x"})
    assert vars(loaded) == {"unaccented": True, "concurrency": 10, "linger": 0.02,
                            "lease": timedelta(seconds=30), "retention": timedelta(days=30),
                            "brandname": "HOCVUSO", "key": KEY}


def test_values_from_the_environment_arrive_as_text_and_are_typed():
    loaded = settings.load(ExampleSettings, {
        "CERTIFICATE_CODE_KEY": KEY, "SMS_UNACCENTED": "false", "SMS_SEND_CONCURRENCY": "4",
        "SMS_LINGER_SECONDS": "0.5", "SMS_LEASE_SECONDS": 12, "BULK_RETENTION_DAYS": "1.5"})
    assert loaded.unaccented is False and loaded.concurrency == 4 and loaded.linger == 0.5
    assert loaded.lease == timedelta(seconds=12) and loaded.retention == timedelta(hours=36)


def test_text_from_the_environment_that_yaml_read_as_a_number_stays_the_text():
    loaded = settings.load(ExampleSettings, {"CERTIFICATE_CODE_KEY": 10 ** 40,
                                             "SMS_BRANDNAME": 38})
    assert loaded.brandname == "38" and loaded.key == str(10 ** 40)


def test_every_bad_key_is_named_in_one_message():
    with pytest.raises(ConfigurationError) as raised:
        settings.load(ExampleSettings, {"SMS_UNACCENTED": "maybe", "SMS_SEND_CONCURRENCY": "0",
                                        "SMS_LEASE_SECONDS": "-1", "SMS_LINGER_SECONDS": "fast"},
                      "notifications")
    message = str(raised.value)
    assert message.startswith("notifications: bad settings (")
    for key in ("SMS_UNACCENTED", "SMS_SEND_CONCURRENCY", "SMS_LEASE_SECONDS",
                "SMS_LINGER_SECONDS", "CERTIFICATE_CODE_KEY: must be set"):
        assert key in message
    assert "docs/configuration.md" in message


def test_a_secret_too_short_to_be_one_is_refused():
    with pytest.raises(ConfigurationError, match="CERTIFICATE_CODE_KEY: Shorter than minimum"):
        settings.load(ExampleSettings, {"CERTIFICATE_CODE_KEY": "short"})


def test_a_number_may_have_a_ceiling():
    class Share(settings.SettingsSchema):
        rate = settings.number("DEFAULT_TARGET_RATE", 0.8, minimum=0.01, maximum=1.0)

    assert settings.load(Share, {}).rate == 0.8
    with pytest.raises(ConfigurationError, match="DEFAULT_TARGET_RATE: Must be greater than or "
                                                 "equal to 0.01 and less than or equal to 1.0"):
        settings.load(Share, {"DEFAULT_TARGET_RATE": "1.5"})


def _schedule(text: str) -> list[int]:
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number of minutes")
    return [int(text)]


class ParsedSettings(settings.SettingsSchema):
    schedule = settings.parsed("REPORT_SCHEDULE", _schedule, "15")
    key = settings.parsed("SEALING_KEY", str.upper)


def test_a_parsed_key_is_what_its_parser_makes_and_its_error_is_the_keys_problem():
    assert vars(settings.load(ParsedSettings, {"SEALING_KEY": "abc"})) == {
        "schedule": [15], "key": "ABC"}
    with pytest.raises(ConfigurationError) as raised:
        settings.load(ParsedSettings, {"REPORT_SCHEDULE": "soon"})
    assert "REPORT_SCHEDULE: 'soon' is not a number of minutes" in str(raised.value)
    assert "SEALING_KEY: must be set" in str(raised.value)


@pytest.mark.parametrize("service", ["certificates", "enrollment", "identity", "lessons",
                                     "notifications", "reporting"])
def test_every_key_a_service_checks_can_be_set_from_the_environment(service):
    """A service reads its settings from its config file only (nameko's configuration): a key
    the file does not name cannot be set by the environment an operations team deploys with,
    whatever docs/configuration.md says. The provider's rate was such a key."""
    import importlib
    import inspect
    import re
    from pathlib import Path

    module = importlib.import_module(f"services.{service}.settings")
    schemas = [value for value in vars(module).values() if inspect.isclass(value)
               and issubclass(value, settings.SettingsSchema)
               and value is not settings.SettingsSchema]
    keys = {field.data_key for schema in schemas for field in schema._declared_fields.values()}
    config = (Path(__file__).parents[2] / "services" / service / "config.yaml").read_text()
    settable = set(re.findall(r"^([A-Z][A-Z0-9_]*): \$\{\1:", config, re.M))
    assert schemas and sorted(keys - settable) == []
