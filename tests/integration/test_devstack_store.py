"""SecantusDB as the dev stack starts it (hocvu_tools.devstack.store): a real server on a free port
with its data in a temporary folder, stopped by PID."""
import socket
import time

import psutil
import pymongo
import pytest

from hocvu_tools.devstack.processes import StartError, free_port
from hocvu_tools.devstack.store import start_secantus, store_uri

pytestmark = pytest.mark.integration


def test_starts_keeps_data_across_restarts_and_stops(tmp_path):
    port = free_port()
    began = time.monotonic()
    store = start_secantus(port, tmp_path / "data", tmp_path)
    print(f"SecantusDB answered ping after {time.monotonic() - began:.1f} s")
    try:
        with pymongo.MongoClient(store_uri(port)) as client:
            client.hocvu_test.things.insert_one({"_id": "kept", "n": 1})
    finally:
        store.stop()
    assert not psutil.pid_exists(store.pid) or not store.alive()
    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        pymongo.MongoClient(store_uri(port), serverSelectionTimeoutMS=300).admin.command("ping")

    store = start_secantus(port, tmp_path / "data", tmp_path)
    try:
        with pymongo.MongoClient(store_uri(port)) as client:
            assert client.hocvu_test.things.find_one({"_id": "kept"})["n"] == 1
    finally:
        store.stop()
    assert (tmp_path / "store.log").exists()


def test_uri_turns_retryable_writes_off():
    assert store_uri(27017) == "mongodb://127.0.0.1:27017/?retryWrites=false"


def test_a_taken_port_is_an_error_not_someone_elses_server(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(StartError, match=f"127.0.0.1:{port}: the port is taken by"):
            start_secantus(port, tmp_path / "data", tmp_path)
