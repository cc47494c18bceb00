"""What `make run` reads from its environment (hocvu_tools.devstack.config) and prints."""
import re
import stat
from pathlib import Path

import pytest

from hocvu_tools.devstack import config
from hocvu_tools.devstack.__main__ import mask_uri


def test_default_ports():
    assert config.ports({}) == {"edge": 8000, "enrollment": 8001, "lessons": 8002,
                                "certificates": 8003, "notifications": 8004, "identity": 8005,
                                "reporting": 8006, "sms_simulator": 8025, "store": 27017}


def test_each_port_has_its_variable():
    ports = config.ports({"HOCVU_HTTP_PORT": "9000", "HOCVU_ENROLLMENT_PORT": "9001",
                          "HOCVU_LESSONS_PORT": "9002", "HOCVU_CERTIFICATES_PORT": "9003",
                          "HOCVU_NOTIFICATIONS_PORT": "9004", "HOCVU_IDENTITY_PORT": "9005",
                          "HOCVU_REPORTING_PORT": "9006", "HOCVU_SMS_SIMULATOR_PORT": "9025",
                          "HOCVU_STORE_PORT": "9017"})
    assert ports == {"edge": 9000, "enrollment": 9001, "lessons": 9002, "certificates": 9003,
                     "notifications": 9004, "identity": 9005, "reporting": 9006,
                     "sms_simulator": 9025, "store": 9017}


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


def test_secrets_from_the_environment_are_not_written(tmp_path):
    secrets = tmp_path / "secrets.env"
    environ = {name: "k" * 40 for name in config.GENERATED}
    environ.update({name: f"{name}-value" for name in config.SEALING_PAIR})
    environ[config.SIGNING_KEYS] = "/etc/hocvu/identity.pem"
    chosen = config.platform_secrets(environ, secrets)
    assert chosen == environ
    assert not secrets.exists() and not (tmp_path / "secrets").exists()


def test_secrets_generated_once_private_and_reused(tmp_path):
    secrets = tmp_path / "var" / "secrets.env"
    first = config.platform_secrets({}, secrets)
    # 32 random bytes, as hex; and a second platform gets other keys
    assert re.fullmatch(r"[0-9a-f]{64}", first["NATIONAL_ID_HASH_KEY"])
    assert config.platform_secrets({}, tmp_path / "other.env")["NATIONAL_ID_HASH_KEY"] != \
        first["NATIONAL_ID_HASH_KEY"]
    assert len({first[name] for name in config.GENERATED}) == len(config.GENERATED)
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(first[config.SIGNING_KEYS]).stat().st_mode) == 0o600
    assert config.platform_secrets({}, secrets) == first


def test_a_secrets_file_from_an_older_release_gets_the_new_secrets_added(tmp_path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# mine\nNATIONAL_ID_HASH_KEY = abc123\n")
    chosen = config.platform_secrets({}, secrets)
    assert chosen["NATIONAL_ID_HASH_KEY"] == "abc123"
    assert secrets.read_text().startswith("# mine\nNATIONAL_ID_HASH_KEY = abc123\n")
    assert config.platform_secrets({}, secrets) == chosen


def test_half_a_sealing_pair_is_an_error(tmp_path):
    with pytest.raises(config.ConfigError, match="NOTIFICATIONS_SEALING"):
        config.platform_secrets({"NOTIFICATIONS_SEALING_PUBLIC_KEY": "x"}, tmp_path / "s.env")


@pytest.mark.parametrize("uri, shown", [
    ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
    ("mongodb://app:s3cret@db.example:27017/?retryWrites=false",
     "mongodb://app:***@db.example:27017/?retryWrites=false"),
    ("mongodb://127.0.0.1:27017/?retryWrites=false", "mongodb://127.0.0.1:27017/?retryWrites=false"),
])
def test_printed_uris_hide_passwords(uri, shown):
    assert mask_uri(uri) == shown
