"""Every log line a service writes is one JSON object, whatever a caller puts in its
headers, its body or its events; lines about a request or an event carry its ids."""
import io
import json
import logging
import logging.config
import re
import socket
import time

import pytest
import yaml
from nameko.cli.main import setup_yaml_parser

from hocvu import signatures
from hocvu_tools.devstack.processes import REPO
from hocvu.events import new_event
from services.notifications.service import NotificationsService
from hocvu.sealing import Sealer, new_key_pair
from tests.support.fixtures import CALLBACK_SECRET, SEALING_PUBLIC_KEY, base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

FORGED = '\n{"level": "CRITICAL", "message": "forged", "service": "x"}'


@pytest.fixture
def service_log():
    """The service's own LOGGING config (services/notifications/config.yaml), its console
    writing into a buffer for the test; the previous logging set-up is put back after."""
    setup_yaml_parser()
    config = yaml.safe_load((REPO / "services/notifications/config.yaml").read_text())["LOGGING"]
    buffer = io.StringIO()
    config["handlers"]["console"]["stream"] = buffer
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    quiet = logging.getLogger("nameko.web.server")
    saved_quiet = quiet.level
    logging.config.dictConfig(config)
    try:
        yield buffer
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        quiet.setLevel(saved_quiet)


def lines(buffer: io.StringIO) -> list[dict]:
    """Every line written so far, each parsed: fails on any line that is not JSON."""
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def post_raw(url: str, report: dict, extra_header_lines: str) -> int:
    """POST a signed report with header lines written as given: an HTTP client library
    refuses a newline in a header value, an attacker's socket does not (an obsolete folded
    header continues on a line starting with a space)."""
    body = json.dumps(report).encode()
    signed = signatures.headers(CALLBACK_SECRET.encode(), int(time.time()), body)
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST /api/notifications/delivery-reports HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in signed.items())
            + extra_header_lines + "Connection: close\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_a_forged_line_in_a_header_or_body_stays_inside_one_json_line(
        service_log, service_config, run_service):
    url = base_url(run_service(NotificationsService, service_config(
        "notifications", SMS_GATEWAY_URL="http://127.0.0.1:9")))
    folded = "X-Correlation-ID: corr\r\n " + FORGED.strip() + "\r\n"
    status = post_raw(url, {"request_id": "m" + FORGED[:60], "message_id": "g",
                            "status": "delivered"}, folded)
    # accepted, then applied from the queue: the consumer logs that it names no message of
    # ours, with the request id from the body in the line
    assert status == 200
    status = post_raw(url, {}, "X-Request-ID: edge-request-1\r\nX-Other: a\r\n "
                      + FORGED.strip() + "\r\n")
    assert status == 400  # signed, but an empty report
    # the edge's id, when the caller sent none of its own
    wait_for(lambda: [line for line in lines(service_log)
                      if line.get("correlation_id") == "edge-request-1"],
             what="the empty report's log line")
    wait_for(lambda: [line for line in lines(service_log) if FORGED[:60] in line["message"]],
             what="the unknown report's log line")
    everything = lines(service_log)
    for line in everything:
        assert {"timestamp", "level", "service", "logger", "message"} <= set(line), line
        assert line["service"] == "notifications" and line["level"] != "CRITICAL"
    # a correlation id with a line break in it is not one: the request gets an id of its own
    about_forged = [line for line in everything if FORGED[:60] in line["message"]]
    assert about_forged, everything
    assert all(line["correlation_id"] not in ("corr", "corr\r\n " + FORGED.strip())
               and re.fullmatch(r"[0-9a-f]{32}", line["correlation_id"]) for line in about_forged)
    print(json.dumps(about_forged[0]))


def test_lines_about_an_event_carry_its_correlation_and_event_ids(
        service_log, service_config, run_service, pika_client):
    run_service(NotificationsService, service_config(
        "notifications", SMS_GATEWAY_URL="http://127.0.0.1:9"))
    # sealed for another service's key: notifications cannot open it and says so
    _, someone_elses_key = new_key_pair()
    event = new_event("learner_contact_registered", {
        "learner_id": "lrn-1", "enrollment_id": "enr-1", "full_name": "Vũ Đức Anh",
        "sealed_phone": Sealer(someone_elses_key).seal("+84987001234")},
        correlation_id="corr-evt" + FORGED)
    pika_client.publish("enrollment.events", "learner_contact_registered", event)
    about_it = wait_for(lambda: [line for line in lines(service_log)
                                 if line.get("event_id") == event["event_id"]],
                        what="a line about the event")
    assert about_it[0]["correlation_id"] == "corr-evt" + FORGED
    assert "+84987001234" not in service_log.getvalue()


def test_each_event_of_a_batch_gets_its_own_line_with_its_ids(
        service_log, service_config, run_service, pika_client):
    """confirm_enrollment takes its events in batches (hocvu.messaging.subscribe_batch):
    still one line per event handled, each with that event's ids."""
    from tests.integration.test_batch_consumers import enrolled
    pika_client.declare_queue("evt-enrollment-learner_enrolled--notifications.confirm_enrollment",
                              "enrollment.events", "learner_enrolled")
    events = [enrolled(n) for n in range(3)]
    for event in events + events[:1]:
        pika_client.publish("enrollment.events", "learner_enrolled", event)
    run_service(NotificationsService, service_config(
        "notifications", SMS_GATEWAY_URL="http://127.0.0.1:9"))

    def handled():
        return [line for line in lines(service_log)
                if line["message"].startswith("confirm_enrollment handled learner_enrolled")]
    about = wait_for(lambda: len(handled()) == 4 and handled(), what="four lines, one per delivery")
    assert sorted((line["event_id"], line["correlation_id"]) for line in about) == sorted(
        (event["event_id"], event["correlation_id"]) for event in events + events[:1])
    assert sum(": duplicate in " in line["message"] for line in about) == 1
