"""The nginx edge (hocvu.devstack.proxy + deploy/nginx/hocvu.conf.template) in front of four
throwaway HTTP servers, one per service, each saying who it is and what it received."""
import re
import sys
import textwrap
import time

import pytest
import requests

from hocvu.devstack import proxy
from hocvu.devstack.processes import Process, free_port

SERVICES = ("enrollment", "lessons", "certificates", "notifications")

UPSTREAM = textwrap.dedent("""
    import json, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps connections open, as the services do

        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps({"service": sys.argv[1], "path": self.path,
                               "version": self.request_version, "received": length,
                               "headers": dict(self.headers)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Echo).serve_forever()
""")


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    base = tmp_path_factory.mktemp("edge")
    script = base / "upstream.py"
    script.write_text(UPSTREAM)
    ports = {service: free_port() for service in SERVICES}
    upstreams = {service: Process(service, [sys.executable, script, service, str(port)],
                                  base / "log").start() for service, port in ports.items()}
    listen_port = free_port()
    began = time.monotonic()
    nginx = proxy.nginx(f"127.0.0.1:{listen_port}", ports, base / "run", base / "log").start()
    url = f"http://127.0.0.1:{listen_port}"
    try:
        for service, process in upstreams.items():
            process.wait_http(f"http://127.0.0.1:{ports[service]}/")
        nginx.wait_until(lambda: requests.get(f"{url}/", timeout=1).status_code == 404, 20)
        print(f"nginx answered after {time.monotonic() - began:.2f} s")
        yield url, upstreams, nginx, base
    finally:
        nginx.stop()
        for process in upstreams.values():
            process.stop()


@pytest.mark.parametrize("service", SERVICES)
def test_each_prefix_reaches_its_service_with_the_path_intact(edge, service):
    url, *_ = edge
    answer = requests.get(f"{url}/api/{service}/things/42?x=1", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["service"] == service
    assert answer.json()["path"] == f"/api/{service}/things/42?x=1"


def test_upstream_requests_can_reuse_connections(edge):
    url, *_ = edge
    seen = requests.get(f"{url}/api/lessons/x", timeout=5).json()
    assert seen["version"] == "HTTP/1.1"
    assert "Connection" not in seen["headers"]  # no "close": the keepalive pool may reuse it


def test_a_request_id_is_made_when_missing_and_kept_when_given(edge):
    url, *_ = edge
    answer = requests.get(f"{url}/api/enrollment/x", timeout=5)
    made = answer.json()["headers"]["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made) and answer.headers["X-Request-ID"] == made

    answer = requests.get(f"{url}/api/enrollment/x", headers={"X-Request-ID": "abc-123"}, timeout=5)
    assert answer.json()["headers"]["X-Request-ID"] == "abc-123"
    assert answer.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize("path", ["/", "/api/", "/api/unknown/x", "/apix/enrollment/"])
def test_other_paths_get_a_json_404(edge, path):
    url, *_ = edge
    answer = requests.get(url + path, timeout=5)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"] == "NOT_FOUND"
    assert "X-Request-ID" in answer.headers


def test_a_prefix_without_its_slash_is_redirected_to_it(edge):
    url, *_ = edge
    answer = requests.get(f"{url}/api/enrollment", allow_redirects=False, timeout=5)
    assert answer.status_code == 301
    assert answer.headers["Location"].endswith("/api/enrollment/")


def test_a_csv_sized_body_passes_and_one_over_10_megabytes_gets_a_json_413(edge):
    url, *_ = edge
    answer = requests.post(f"{url}/api/enrollment/imports", data=b"x" * (5 * 1024 * 1024),
                           timeout=30)
    assert answer.status_code == 200 and answer.json()["received"] == 5 * 1024 * 1024
    answer = requests.post(f"{url}/api/enrollment/imports", data=b"x" * (11 * 1024 * 1024),
                           timeout=30)
    assert answer.status_code == 413 and answer.json()["error"] == "PAYLOAD_TOO_LARGE"


def test_the_access_log_carries_the_request_id(edge):
    url, _, _, base = edge
    requests.get(f"{url}/api/lessons/logged", headers={"X-Request-ID": "find-me-7"}, timeout=5)
    log = base / "log" / "nginx-access.log"
    deadline = time.monotonic() + 5
    while "request_id=find-me-7" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "request_id=find-me-7" in log.read_text()


def test_everything_nginx_writes_stays_in_its_folders(edge):
    *_, base = edge
    state = base / "run" / "nginx"
    assert (state / "nginx.conf").exists() and (state / "nginx.pid").exists()
    assert (state / "client_body").is_dir()


def test_a_stopped_service_gets_a_json_502(edge):
    # last in this module: it stops the notifications upstream
    url, upstreams, *_ = edge
    upstreams["notifications"].stop()
    answer = requests.get(f"{url}/api/notifications/health", timeout=10)
    assert answer.status_code == 502
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"] == "BAD_GATEWAY"
    assert requests.get(f"{url}/api/lessons/health", timeout=5).status_code == 200


def test_nginx_stops_by_pid_with_its_workers(edge):
    _, _, nginx, base = edge
    import psutil
    workers = psutil.Process(nginx.pid).children()
    assert workers
    nginx.stop()
    assert not nginx.alive()
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert not (base / "run" / "nginx" / "nginx.pid").exists()
