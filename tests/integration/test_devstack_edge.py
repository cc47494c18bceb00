"""The nginx edge (hocvu_tools.devstack.proxy + deploy/nginx/hocvu.conf.template) in front of
throwaway HTTP servers, one per service, each saying who it is and what it received."""
import http.client
import re
import socket
import sys
import textwrap
import time

import pytest
import requests

from hocvu_tools.devstack import proxy
from hocvu_tools.devstack.processes import Process, free_port

pytestmark = pytest.mark.integration

SERVICES = ("enrollment", "lessons", "certificates", "notifications", "identity", "reporting")
ORIGINS = ("https://app.hocvu.example", "http://localhost:5173")

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

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_FOO = answer

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Echo).serve_forever()
""")


def start_edge(tmp_path_factory, settings: proxy.EdgeSettings):
    base = tmp_path_factory.mktemp("edge")
    script = base / "upstream.py"
    script.write_text(UPSTREAM)
    ports = {service: free_port() for service in SERVICES}
    upstreams = {service: Process(service, [sys.executable, script, service, str(port)],
                                  base / "log").start() for service, port in ports.items()}
    listen_port = free_port()
    nginx = proxy.nginx(f"127.0.0.1:{listen_port}", ports, base / "run", base / "log",
                        settings).start()
    return f"http://127.0.0.1:{listen_port}", ports, upstreams, nginx, base


@pytest.fixture
def tight_edge(tmp_path_factory):
    """An edge whose generous class is made tight, to see that it applies at all."""
    url, ports, upstreams, nginx, _ = start_edge(
        tmp_path_factory, proxy.EdgeSettings(api_rate="1r/m", api_burst=3))
    try:
        for service, process in upstreams.items():
            process.wait_http(f"http://127.0.0.1:{ports[service]}/")
        nginx.wait_http(f"{url}/api/lessons/ready")
        yield url
    finally:
        nginx.stop()
        for process in upstreams.values():
            process.stop()


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    began = time.monotonic()
    url, ports, upstreams, nginx, base = start_edge(
        tmp_path_factory, proxy.EdgeSettings(cors_origins=ORIGINS))
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


def test_a_csv_sized_body_passes_and_one_over_21_megabytes_gets_a_json_413(edge):
    url, *_ = edge
    answer = requests.post(f"{url}/api/enrollment/imports", data=b"x" * (15 * 1024 * 1024),
                           timeout=30)
    assert answer.status_code == 200 and answer.json()["received"] == 15 * 1024 * 1024
    answer = requests.post(f"{url}/api/enrollment/imports", data=b"x" * (22 * 1024 * 1024),
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


def raw(url: str, request: bytes, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    """Send `request` as written (no client library tidying it) and parse the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5,
                                  source_address=(source, 0)) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            if length and len(body) >= int(length[1]):
                break
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_line.split()[1]), headers, body


def request_from(url: str, source: str, method: str, path: str, headers=None):
    """One request from another loopback address: another client, for the rate limits."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5,
                                            source_address=(source, 0))
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def assert_envelope(body: bytes, code: str):
    import json
    parsed = json.loads(body)
    assert parsed["error"] == code and isinstance(parsed["message"], str)
    assert parsed["fields"] == {}


@pytest.mark.parametrize("path", [
    "/api/enrollment/health", "/api/lessons/health/live", "/api/certificates/health/ready",
    "/api/notifications/health/ready", "/api/identity/health/live", "/api/lessons/healthz",
    "/api/enrollment//health/ready", "/api/enrollment/x/../health/ready",
    "/api/enrollment/%68ealth/ready", "/api/enrollment/health/ready?x=1",
    "/api/lessons/metrics", "/api/notifications/metrics", "/api/enrollment//metrics",
    "/api/identity/%6detrics", "/api/certificates/metrics?x=1"])
def test_health_and_metrics_are_not_routed_whatever_the_spelling(edge, path):
    url, *_ = edge
    status, headers, body = raw(url, f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                                     "Connection: close\r\n\r\n".encode())
    assert status == 404  # the stub services would have answered 200
    assert headers["content-type"] == ["application/json"]
    assert_envelope(body, "NOT_FOUND")


def test_identity_has_its_own_prefix(edge):
    url, *_ = edge
    seen = requests.get(f"{url}/api/identity/.well-known/jwks.json", timeout=5).json()
    assert seen["service"] == "identity" and seen["path"] == "/api/identity/.well-known/jwks.json"


def test_services_get_the_address_nginx_saw_not_the_one_claimed(edge):
    url, *_ = edge
    seen = requests.get(f"{url}/api/lessons/x", headers={"X-Real-IP": "203.0.113.9"},
                        timeout=5).json()
    assert seen["headers"]["X-Real-IP"] == "127.0.0.1"


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO", "PROPFIND", "TRACK"])
def test_methods_the_api_does_not_use_get_a_json_405_with_allow(edge, method):
    url, *_ = edge
    target = "127.0.0.1:443" if method == "CONNECT" else "/api/lessons/courses"
    status, headers, body = raw(url, f"{method} {target} HTTP/1.1\r\nHost: x\r\n"
                                     "Connection: close\r\n\r\n".encode())
    print(f"{method}: {status} {headers.get('allow')}")
    assert status == 405
    assert headers["content-type"] == ["application/json"]
    assert headers["allow"] == ["GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"]
    assert_envelope(body, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_the_methods_the_api_uses_reach_the_service(edge, method):
    url, *_ = edge
    answer = requests.request(method, f"{url}/api/enrollment/things/1", timeout=5)
    assert answer.status_code == 200 and answer.json()["service"] == "enrollment"
    assert "Allow" not in answer.headers


@pytest.mark.parametrize("origin", ORIGINS)
def test_an_allowed_origin_gets_cors_headers(edge, origin):
    url, *_ = edge
    answer = requests.get(f"{url}/api/lessons/courses", headers={"Origin": origin}, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    assert answer.headers["Vary"] == "Origin"
    assert "X-Request-ID" in answer.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in answer.headers


@pytest.mark.parametrize("origin", ["https://evil.example", "https://app.hocvu.example.evil.example",
                                    "null", ORIGINS[0] + "/"])
def test_any_other_origin_gets_no_cors_header(edge, origin):
    url, *_ = edge
    answer = requests.get(f"{url}/api/lessons/courses", headers={"Origin": origin}, timeout=5)
    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.lower().startswith("access-control-")]
    assert answer.headers["Vary"] == "Origin"


def test_a_preflight_is_answered_at_the_edge(edge):
    url, *_ = edge
    answer = requests.options(f"{url}/api/enrollment/enrollments", headers={
        "Origin": ORIGINS[0], "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"}, timeout=5)
    assert answer.status_code == 204 and answer.content == b""  # no service was asked
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGINS[0]
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-correlation-id"} <= allowed
    assert int(answer.headers["Access-Control-Max-Age"]) > 0

    refused = requests.options(f"{url}/api/enrollment/enrollments", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, timeout=5)
    assert refused.status_code == 204
    assert not [name for name in refused.headers if name.lower().startswith("access-control-")]


def test_the_edge_answers_a_huge_uri_in_the_envelope(edge):
    url, *_ = edge
    answer = requests.get(f"{url}/api/lessons/{'x' * 20000}", timeout=5)
    assert answer.status_code == 414
    assert_envelope(answer.content, "URI_TOO_LONG")


def hammer(url: str, source: str, path: str, count: int, method: str = "GET"):
    return [request_from(url, source, method, path) for _ in range(count)]


def assert_limited(answers, retry_after: str):
    statuses = [status for status, _, _ in answers]
    print("statuses:", statuses)
    assert statuses[0] == 200 and 429 in statuses
    status, headers, body = next(a for a in answers if a[0] == 429)
    assert headers["Retry-After"] == retry_after
    assert headers["Content-Type"] == "application/json"
    assert_envelope(body, "TOO_MANY_REQUESTS")


@pytest.mark.parametrize("path", ["/api/identity/staff/sign-in", "/api/identity/learners/code",
                                  "/api/identity/learners/token"])
def test_sign_in_and_code_requests_are_strictly_limited_per_address(edge, path):
    url, *_ = edge
    # each case its own client address, so that the cases do not share a budget
    source = {"/api/identity/staff/sign-in": "127.0.0.11", "/api/identity/learners/code":
              "127.0.0.12", "/api/identity/learners/token": "127.0.0.13"}[path]
    answers = hammer(url, source, path, 12, "POST")
    # 10 a minute with a burst of 5: no more than 6 pass at once
    assert sum(1 for status, _, _ in answers if status == 200) <= 7
    assert_limited(answers, retry_after="6")
    # another address is another client, with its own budget
    assert request_from(url, "127.0.0.14", "POST", path)[0] == 200
    # the keys of the signing service are not sign-in: they stay on the generous budget
    assert request_from(url, source, "GET", "/api/identity/.well-known/jwks.json")[0] == 200


def test_certificate_verification_is_limited_per_address(edge):
    url, *_ = edge
    answers = hammer(url, "127.0.0.21", "/api/certificates/verify/K7QM2XRT9BH4", 60)
    assert_limited(answers, retry_after="1")
    assert request_from(url, "127.0.0.22", "GET", "/api/certificates/verify/X")[0] == 200


def test_everything_else_has_a_limit_of_its_own(tight_edge):
    answers = hammer(tight_edge, "127.0.0.31", "/api/lessons/courses", 10)
    assert_limited(answers, retry_after="60")
    assert request_from(tight_edge, "127.0.0.32", "GET", "/api/lessons/courses")[0] == 200


def test_a_stopped_service_gets_a_json_502(edge):
    # last in this module: it stops the notifications upstream
    url, upstreams, *_ = edge
    upstreams["notifications"].stop()
    answer = requests.get(f"{url}/api/notifications/messages", timeout=10)
    assert answer.status_code == 502
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"] == "BAD_GATEWAY"
    assert requests.get(f"{url}/api/lessons/courses", timeout=5).status_code == 200


def test_nginx_stops_by_pid_with_its_workers(edge):
    _, _, nginx, base = edge
    import psutil
    workers = psutil.Process(nginx.pid).children()
    assert workers
    nginx.stop()
    assert not nginx.alive()
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert not (base / "run" / "nginx" / "nginx.pid").exists()
