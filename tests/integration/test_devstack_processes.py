"""The dev stack's child processes (hocvu_tools.devstack.processes): logs, readiness, and stopping
by PID, with throwaway `python -c` children."""
import socket
import sys
import time

import psutil
import pytest

from hocvu_tools.devstack.processes import (Process, StartError, ephemeral_port_range, free_port,
                                      port_holder)

pytestmark = pytest.mark.integration


def python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


def test_output_goes_to_the_log_and_sigterm_stops_it(tmp_path):
    process = Process("talker", python("import time; print('hello', flush=True); time.sleep(60)"),
                      tmp_path).start()
    process.wait_until(lambda: "hello" in process.log_path.read_text(), 10)
    began = time.monotonic()
    process.stop()
    assert not process.alive() and time.monotonic() - began < 5
    assert process.log_path == tmp_path / "talker.log"


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    process = Process("stubborn", python(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"), tmp_path).start()
    process.wait_until(lambda: "ready" in process.log_path.read_text(), 10)
    began = time.monotonic()
    process.stop(grace=1)
    assert not process.alive() and 1 <= time.monotonic() - began < 5


def test_children_that_outlive_their_parent_are_stopped_too(tmp_path):
    # the parent leaves a child in a session of its own, out of reach of a process-group kill
    process = Process("parent", python(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "print(child.pid, flush=True); time.sleep(60)"), tmp_path).start()
    process.wait_until(lambda: process.log_path.read_text().strip(), 10)
    child = psutil.Process(int(process.log_path.read_text().split()[0]))
    process.stop(grace=2)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_process_that_dies_while_starting_fails_at_once_with_its_log(tmp_path):
    process = Process("broken", python("import sys; print('no config here'); sys.exit(3)"),
                      tmp_path).start()
    began = time.monotonic()
    with pytest.raises(StartError, match=r"(?s)broken exited with code 3.*no config here"):
        process.wait_until(lambda: False, 30)
    assert time.monotonic() - began < 5


def test_a_process_that_never_answers_fails_after_the_timeout_with_its_log(tmp_path):
    process = Process("silent", python("import time; print('thinking', flush=True); "
                                       "time.sleep(60)"), tmp_path).start()
    try:
        with pytest.raises(StartError, match=r"(?s)silent not answering 200 .* after 2 s.*thinking"):
            process.wait_http(f"http://127.0.0.1:{free_port()}/health", timeout=2)
    finally:
        process.stop()


def test_port_holder_names_the_listening_process():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.listen()
        assert "pytest" in port_holder(port) or "python" in port_holder(port)
    assert port_holder(port) is None


def test_a_free_port_is_outside_the_range_outgoing_connections_take():
    low, high = ephemeral_port_range()
    for _ in range(20):
        port = free_port()
        assert not low <= port <= high
        assert port_holder(port) is None
