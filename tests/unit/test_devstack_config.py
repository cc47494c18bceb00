"""What `make run` reads from its environment (hocvu.devstack.config) and prints."""
import stat

import pytest

from hocvu.devstack import config
from hocvu.devstack.__main__ import mask_uri


def test_default_ports():
    assert config.ports({}) == {"edge": 8000, "enrollment": 8001, "lessons": 8002,
                                "certificates": 8003, "notifications": 8004, "identity": 8005,
                                "sms_simulator": 8025, "store": 27017}


def test_each_port_has_its_variable():
    ports = config.ports({"HOCVU_HTTP_PORT": "9000", "HOCVU_ENROLLMENT_PORT": "9001",
                          "HOCVU_LESSONS_PORT": "9002", "HOCVU_CERTIFICATES_PORT": "9003",
                          "HOCVU_NOTIFICATIONS_PORT": "9004", "HOCVU_IDENTITY_PORT": "9005",
                          "HOCVU_SMS_SIMULATOR_PORT": "9025", "HOCVU_STORE_PORT": "9017"})
    assert ports == {"edge": 9000, "enrollment": 9001, "lessons": 9002, "certificates": 9003,
                     "notifications": 9004, "identity": 9005, "sms_simulator": 9025,
                     "store": 9017}


def test_an_empty_variable_means_the_default():
    assert config.ports({"HOCVU_HTTP_PORT": " "})["edge"] == 8000


@pytest.mark.parametrize("value", ["http", "0", "65536", "-1", "80.5"])
def test_a_port_that_is_not_one_names_its_variable(value):
    with pytest.raises(config.ConfigError, match="HOCVU_LESSONS_PORT"):
        config.ports({"HOCVU_LESSONS_PORT": value})


def test_two_parts_on_one_port_is_an_error():
    with pytest.raises(config.ConfigError, match="HOCVU_HTTP_PORT and HOCVU_LESSONS_PORT"):
        config.ports({"HOCVU_LESSONS_PORT": "8000"})


def test_external_servers_only_when_set():
    assert config.external_uri({}, "MONGO_URI") is None
    assert config.external_uri({"MONGO_URI": ""}, "MONGO_URI") is None
    assert config.external_uri({"MONGO_URI": "mongodb://db:27017/"}, "MONGO_URI") == \
        "mongodb://db:27017/"


def test_hash_key_from_the_environment_writes_nothing(tmp_path):
    secrets = tmp_path / "secrets.env"
    assert config.national_id_hash_key({"NATIONAL_ID_HASH_KEY": "k" * 40}, secrets) == "k" * 40
    assert not secrets.exists()


def test_hash_key_generated_once_private_and_reused(tmp_path):
    secrets = tmp_path / "var" / "secrets.env"
    key = config.national_id_hash_key({}, secrets)
    assert len(key) == 64 and int(key, 16) >= 0
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert config.national_id_hash_key({}, secrets) == key


def test_hash_key_file_written_by_hand(tmp_path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# mine\nNATIONAL_ID_HASH_KEY = abc123\n")
    assert config.national_id_hash_key({}, secrets) == "abc123"


def test_hash_key_file_without_a_key_is_an_error(tmp_path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("OTHER=1\n")
    with pytest.raises(config.ConfigError, match="NATIONAL_ID_HASH_KEY"):
        config.national_id_hash_key({}, secrets)


@pytest.mark.parametrize("uri, shown", [
    ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
    ("mongodb://app:s3cret@db.example:27017/?retryWrites=false",
     "mongodb://app:***@db.example:27017/?retryWrites=false"),
    ("mongodb://127.0.0.1:27017/?retryWrites=false", "mongodb://127.0.0.1:27017/?retryWrites=false"),
])
def test_printed_uris_hide_passwords(uri, shown):
    assert mask_uri(uri) == shown
