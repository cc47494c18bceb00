"""The SMS gateway simulator as a real process: `python -m sms_simulator` on a free port.

A small http.server in this process plays the notifications service's callback endpoint.
It runs in a thread, which also works when the test process is eventlet-patched.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from hocvu import signatures
from hocvu_tools.devstack.processes import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
PHONE = "84912345678"
SECRET_TEXT = "Ma OTP cua ban la 771205"


def wait_until(condition, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


class CallbackReceiver:
    """Collects delivery reports; answers the statuses in `script` first, then 200."""

    def __init__(self):
        self.reports: list[dict] = []
        self.signed: list[tuple[dict, bytes]] = []  # (headers, raw body) of each report
        self.script: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.reports.append(json.loads(body))
                    receiver.signed.append((dict(self.headers), body))
                    status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/sms/reports"

    def start(self):
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


class Simulator:
    def __init__(self, tmp_path: Path, *options: str):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"sms-simulator-{self.port}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sms_simulator", "--host", "127.0.0.1",
             "--port", str(self.port), *options],
            cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if k != "SMS_CALLBACK_SECRET"},
                 "PYTHONUNBUFFERED": "1"},
        )
        if not wait_until(self._healthy):
            self.kill()
            pytest.fail(f"simulator did not come up:\n{self.log_text()}")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            return True  # exited; the caller's next request shows why
        try:
            return requests.get(self.base_url + "/health", timeout=0.5).status_code == 200
        except requests.ConnectionError:
            return False

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.base_url + path, timeout=5, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.base_url + path, timeout=5, **kwargs)

    def stop(self, signum=signal.SIGTERM) -> int:
        os.kill(self.process.pid, signum)
        try:
            return self.process.wait(timeout=10)
        finally:
            self.kill()

    def kill(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def receiver():
    receiver = CallbackReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def start_simulator(tmp_path):
    started = []

    def start(*options: str) -> Simulator:
        simulator = Simulator(tmp_path, *options)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.kill()


def send(simulator: Simulator, request_id: str, callback_url: str | None = None):
    body = {"request_id": request_id, "to": PHONE, "brandname": "HOCVU",
            "text": SECRET_TEXT, "encoding": "GSM7"}
    if callback_url:
        body["callback_url"] = callback_url
    return simulator.post("/v1/messages", json=body)


def test_delivery_report_reaches_callback(start_simulator, receiver, tmp_path):
    record = tmp_path / "sent.jsonl"
    simulator = start_simulator("--delivery-delay", "0.2", "--record", str(record))

    accepted = send(simulator, "enr-7-confirm", receiver.url)

    assert accepted.status_code == 202
    message_id = accepted.json()["message_id"]
    assert wait_until(lambda: receiver.reports)
    [report] = receiver.reports
    assert report["message_id"] == message_id
    assert report["request_id"] == "enr-7-confirm"
    assert report["to"] == PHONE
    assert report["status"] == "delivered"
    assert wait_until(
        lambda: simulator.get("/v1/messages").json()["messages"][0]["status"] == "delivered"
    )
    assert json.loads(record.read_text(encoding="utf-8"))["message_id"] == message_id

    duplicate = send(simulator, "enr-7-confirm", receiver.url)
    assert duplicate.status_code == 409
    assert duplicate.json()["message_id"] == message_id

    assert simulator.stop() == 0
    log = simulator.log_text()
    assert "*******5678" in log
    assert PHONE not in log
    assert SECRET_TEXT not in log


def test_reports_are_signed_with_the_callback_secret(start_simulator, receiver):
    secret = "shared-" + "k" * 40
    simulator = start_simulator("--delivery-delay", "0", "--callback-secret", secret)
    send(simulator, "signed-1", receiver.url)
    assert wait_until(lambda: receiver.signed)
    [(headers, body)] = receiver.signed
    signatures.verify(secret.encode(), headers["X-Hocvu-Timestamp"],
                      headers["X-Hocvu-Signature"], body, now=time.time())
    with pytest.raises(signatures.BadSignature):
        signatures.verify(b"another-secret", headers["X-Hocvu-Timestamp"],
                          headers["X-Hocvu-Signature"], body, now=time.time())
    simulator.stop()
    assert secret not in simulator.log_text()


def test_reports_are_unsigned_without_a_secret(start_simulator, receiver):
    simulator = start_simulator("--delivery-delay", "0")
    send(simulator, "unsigned-1", receiver.url)
    assert wait_until(lambda: receiver.signed)
    assert "X-Hocvu-Signature" not in receiver.signed[0][0]


def test_failing_callback_is_retried(start_simulator, receiver):
    simulator = start_simulator("--delivery-delay", "0", "--callback-backoff", "0.05")
    receiver.script = [500, 503]

    send(simulator, "retry-me", receiver.url)

    assert wait_until(
        lambda: simulator.get("/v1/messages").json()["messages"][0]["status"] == "delivered"
    )
    assert len(receiver.reports) == 3
    assert simulator.get("/v1/messages").json()["messages"][0]["report_attempts"] == 3


def test_unreachable_callback_ends_as_report_failed(start_simulator):
    simulator = start_simulator("--delivery-delay", "0", "--callback-attempts", "2",
                                "--callback-backoff", "0.05")

    send(simulator, "nobody-home", f"http://127.0.0.1:{free_port()}/gone")

    assert wait_until(
        lambda: simulator.get("/v1/messages").json()["messages"][0]["status"] == "report_failed"
    )
    assert simulator.get("/v1/stats").json()["report_failed"] == 1


def test_faults_from_command_line_and_admin_endpoint(start_simulator):
    simulator = start_simulator("--rate-limit-per-minute", "1")

    assert send(simulator, "first").status_code == 202
    limited = send(simulator, "second")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1

    simulator.post("/v1/admin/faults", json={"rate_limit_per_minute": None, "fail_rate": 1})
    assert send(simulator, "third").json() == {
        "error": "UNAVAILABLE", "message": "The gateway is temporarily unavailable."
    }


def test_sigint_stops_cleanly(start_simulator):
    simulator = start_simulator()

    assert simulator.stop(signal.SIGINT) == 0
