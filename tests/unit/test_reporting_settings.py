"""reporting's settings: typed and defaulted; a bad value stops the start naming its key."""
import pytest
from nameko.containers import ServiceContainer
from nameko.exceptions import ConfigurationError

from hocvu import settings
from services.reporting.service import ReportingService
from services.reporting.settings import ReportingSettings
from tests.support.containers import NOTHING_LISTENS


def test_the_defaults_are_a_week_half_an_hour_a_second_and_four_in_five():
    assert vars(settings.load(ReportingSettings, {"ACTIVE_DAYS": ""})) == {
        "active_days": 7, "sweep_seconds": 1800.0, "refresh_seconds": 1.0,
        "default_target_rate": 0.8}


def test_every_bad_value_is_named():
    with pytest.raises(ConfigurationError) as raised:
        settings.load(ReportingSettings, {"ACTIVE_DAYS": "-1", "SWEEP_SECONDS": "0",
                                          "REFRESH_SECONDS": "600",
                                          "DEFAULT_TARGET_RATE": "80"}, "reporting")
    message = str(raised.value)
    assert message.startswith("reporting: bad settings (ACTIVE_DAYS: Must be greater than")
    assert "DEFAULT_TARGET_RATE: Must be greater than or equal to 0.01 and less than or equal " \
           "to 1.0" in message and "SWEEP_SECONDS" in message
    assert "REFRESH_SECONDS: Must be greater than or equal to 0.05 and less than or equal to 60" \
        in message


def test_a_bad_value_stops_the_service_at_start():
    # nothing listens on port 9: the start is stopped by the settings, before any connection
    with pytest.raises(ConfigurationError, match="DEFAULT_TARGET_RATE"):
        ServiceContainer(ReportingService, {**NOTHING_LISTENS, "DEFAULT_TARGET_RATE": "-0.5"}).start()
