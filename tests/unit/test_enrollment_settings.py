"""enrollment's settings: its keys typed and defaulted, and a bad one stops the start."""
from datetime import timedelta

import pytest
from nameko.containers import ServiceContainer
from nameko.exceptions import ConfigurationError

from hocvu.sealing import Sealer, new_key_pair
from hocvu.settings import load
from services.enrollment.service import EnrollmentService
from services.enrollment.settings import EnrollmentSettings
from tests.support.containers import NOTHING_LISTENS

KEYS = {"NATIONAL_ID_HASH_KEY": "n" * 32, "LEARNER_SUBJECT_KEY": "s" * 32,
        "NOTIFICATIONS_SEALING_PUBLIC_KEY": new_key_pair()[1]}


def test_the_bulk_defaults_are_those_of_the_config_file():
    settings = load(EnrollmentSettings, KEYS)
    assert isinstance(settings.sealer, Sealer)
    assert (settings.national_id_hash_key, settings.learner_subject_key) == ("n" * 32, "s" * 32)
    assert (settings.bulk_max_bytes, settings.bulk_max_rows, settings.bulk_chunk_rows,
            settings.bulk_concurrency, settings.bulk_save_every_rows,
            settings.bulk_max_attempts) == (20 * 1024 * 1024, 100_000, 250, 4, 25, 5)
    assert settings.bulk_lease == timedelta(seconds=60) and settings.bulk_poll_seconds == 2
    assert settings.bulk_retention == timedelta(days=30)


@pytest.mark.parametrize("key, value, says", [
    ("BULK_CONCURRENCY", "-1", "greater than or equal to 1"),
    ("BULK_SAVE_EVERY_ROWS", 0, "greater than or equal to 1"),
    ("BULK_LEASE_SECONDS", 0, "greater than or equal to"),
    ("BULK_RETENTION_DAYS", "half", "Not a valid number"),
    ("NATIONAL_ID_HASH_KEY", "x" * 31, "Shorter than minimum length 32"),
    ("LEARNER_SUBJECT_KEY", None, "must be set"),
    ("NOTIFICATIONS_SEALING_PUBLIC_KEY", "bm90IGEga2V5", "must be 32 bytes"),
])
def test_a_bad_value_is_named_with_what_is_wrong(key, value, says):
    with pytest.raises(ConfigurationError) as raised:
        load(EnrollmentSettings, {**KEYS, key: value}, "enrollment")
    assert str(raised.value).startswith(f"enrollment: bad settings ({key}: ")
    assert says in str(raised.value)


def test_the_service_does_not_start_with_a_bad_value():
    config = {**KEYS, **NOTHING_LISTENS, "BULK_CHUNK_ROWS": -250}
    with pytest.raises(ConfigurationError, match="BULK_CHUNK_ROWS"):
        ServiceContainer(EnrollmentService, config).start()
