"""The SMS gateway simulator's WSGI app, driven in-process with werkzeug's test client."""
import json
import re
import threading
import time

import pytest
from werkzeug.test import Client

from sms_simulator.app import Settings, create_app, mask_phone
from sms_simulator.delivery import ReportFailed
from sms_simulator.faults import Faults, RateLimited
from sms_simulator.segments import GSM7_BASIC, count_segments, gsm7_unsupported

ISO_MS_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
CALLBACK = "http://notifications.test/sms/reports"


class FakeSender:
    """Stands in for the HTTP POST of delivery reports; fails the first `failures` calls."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.calls: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, url: str, report: dict) -> None:
        with self._lock:
            self.calls.append((url, report))
            failing = len(self.calls) <= self.failures
        if failing:
            raise ReportFailed("HTTP 500")


@pytest.fixture
def make_client():
    apps = []

    def make(sender=None, **overrides):
        settings = Settings(**{"delivery_delay": 0.0, "callback_backoff": 0.0, **overrides})
        app = create_app(settings, send_report=sender or FakeSender())
        apps.append(app)
        return Client(app)

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def client(make_client):
    return make_client()


def message(**overrides) -> dict:
    body = {
        "request_id": "enr-42-reminder",
        "to": "84912345678",
        "brandname": "HOCVU",
        "text": "Ban co buoi hoc luc 19:00 hom nay.",
        "encoding": "GSM7",
    }
    body.update(overrides)
    return body


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def stored(client, **query) -> list[dict]:
    return client.get("/v1/messages", query_string=query).json["messages"]


# --- segments -------------------------------------------------------------------------

def test_gsm7_default_alphabet_has_127_characters_besides_escape():
    assert len(GSM7_BASIC) == 127


@pytest.mark.parametrize("text, encoding, expected", [
    ("a" * 160, "GSM7", 1),
    ("a" * 161, "GSM7", 2),
    ("a" * 306, "GSM7", 2),
    ("a" * 307, "GSM7", 3),
    ("€" * 80, "GSM7", 1),                      # extension characters count two septets
    ("€" * 81, "GSM7", 2),
    ("a" * 152 + "€" + "a" * 152, "GSM7", 3),   # the escape pair is not split across parts
    ("đ" * 70, "UCS2", 1),
    ("đ" * 71, "UCS2", 2),
    ("đ" * 134, "UCS2", 2),
    ("đ" * 135, "UCS2", 3),
    ("😀" * 35, "UCS2", 1),                      # a surrogate pair is two UTF-16 units
    ("😀" * 36, "UCS2", 2),
])
def test_segments(text, encoding, expected):
    assert count_segments(text, encoding) == expected


def test_gsm7_unsupported_lists_vietnamese_letters_once():
    assert gsm7_unsupported("Chào bạn, bạn đã đăng ký") == ["ạ", "đ", "ã", "ă", "ý"]
    assert gsm7_unsupported("Price: 10€ [ok] {x} ~^|\\") == []


# --- sending --------------------------------------------------------------------------

def test_send_is_accepted(client):
    response = client.post("/v1/messages", json=message())

    assert response.status_code == 202
    body = response.json
    assert body["request_id"] == "enr-42-reminder"
    assert body["status"] == "accepted"
    assert body["segments"] == 1
    assert body["message_id"]
    assert ISO_MS_UTC.fullmatch(body["accepted_at"])


def test_message_ids_are_unique(client):
    ids = {
        client.post("/v1/messages", json=message(request_id=f"r{n}")).json["message_id"]
        for n in range(20)
    }
    assert len(ids) == 20


def test_segments_follow_encoding(client):
    text = "Chúc mừng bạn đã hoàn thành khóa học Kỹ năng số cơ bản! " * 2
    response = client.post("/v1/messages", json=message(text=text, encoding="UCS2"))

    assert response.status_code == 202
    assert response.json["segments"] == count_segments(text, "UCS2") == 2


def test_gsm7_with_vietnamese_diacritics_is_rejected(client):
    response = client.post("/v1/messages", json=message(text="Chào bạn", encoding="GSM7"))

    assert response.status_code == 400
    assert response.json["error"] == "VALIDATION_ERROR"
    assert "GSM 03.38" in response.json["fields"]["text"][0]
    assert stored(client) == []


@pytest.mark.parametrize("field, value", [
    ("request_id", ""),
    ("request_id", "x" * 65),
    ("request_id", "has space"),
    ("request_id", 42),
    ("to", "0912345678"),
    ("to", "+84912345678"),
    ("to", "84212345678"),
    ("to", "8491234567"),
    ("to", "849123456789"),
    ("brandname", ""),
    ("brandname", "TWELVE_CHARS"),
    ("brandname", "HOC VU!"),
    ("brandname", "   "),
    ("text", ""),
    ("text", "a" * 1601),
    ("text", "\ud83d"),
    ("encoding", "UTF8"),
    ("encoding", "gsm7"),
    ("callback_url", "ftp://example.com/x"),
    ("callback_url", "not a url"),
    ("callback_url", "http://"),
])
def test_invalid_field_is_reported(client, field, value):
    response = client.post("/v1/messages", json=message(**{field: value}))

    assert response.status_code == 400
    assert response.json["error"] == "VALIDATION_ERROR"
    assert list(response.json["fields"]) == [field]
    assert response.json["message"]


def test_every_missing_field_is_reported_at_once(client):
    response = client.post("/v1/messages", json={})

    assert response.status_code == 400
    assert set(response.json["fields"]) == {"request_id", "to", "brandname", "text", "encoding"}


def test_unknown_field_is_rejected(client):
    response = client.post("/v1/messages", json=message(callbackUrl=CALLBACK))

    assert response.status_code == 400
    assert response.json["fields"] == {"callbackUrl": ["unknown field"]}


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b""])
def test_body_must_be_a_json_object(client, body):
    response = client.post("/v1/messages", data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json["error"] == "VALIDATION_ERROR"
    assert "body" in response.json["fields"]


def test_oversized_body_is_refused(client):
    response = client.post("/v1/messages", json=message(text="a" * 70_000))

    assert response.status_code == 413
    assert response.json["error"] == "PAYLOAD_TOO_LARGE"


def test_duplicate_request_id_answers_409_with_original_message_id(client):
    first = client.post("/v1/messages", json=message())
    second = client.post("/v1/messages", json=message(text="another text"))

    assert second.status_code == 409
    assert second.json["error"] == "DUPLICATE_REQUEST_ID"
    assert second.json["message_id"] == first.json["message_id"]
    assert len(stored(client)) == 1
    assert client.get("/v1/stats").json["duplicates"] == 1


def test_concurrent_sends_with_one_request_id_accept_exactly_one(client):
    statuses = []

    def send():
        statuses.append(client.post("/v1/messages", json=message()).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [202] + [409] * 7


# --- listing, stats, clearing ---------------------------------------------------------

def test_list_shows_stored_fields(client):
    client.post("/v1/messages", json=message(callback_url=CALLBACK))

    [listed] = stored(client)
    assert listed["request_id"] == "enr-42-reminder"
    assert listed["to"] == "84912345678"
    assert listed["brandname"] == "HOCVU"
    assert listed["text"] == message()["text"]
    assert listed["encoding"] == "GSM7"
    assert listed["segments"] == 1
    assert listed["callback_url"] == CALLBACK
    assert ISO_MS_UTC.fullmatch(listed["received_at"])
    assert listed["status"] in ("accepted", "delivered")


def test_list_filters_and_limit(client):
    for n, to in enumerate(["84912345678", "84987654321", "84912345678"]):
        client.post("/v1/messages", json=message(request_id=f"r{n}", to=to))

    assert [m["request_id"] for m in stored(client, to="84912345678")] == ["r0", "r2"]
    assert [m["request_id"] for m in stored(client, request_id="r1")] == ["r1"]
    limited = client.get("/v1/messages", query_string={"limit": 2}).json
    assert limited["count"] == 2
    assert [m["request_id"] for m in limited["messages"]] == ["r1", "r2"]


@pytest.mark.parametrize("limit", ["0", "-1", "ten", "1.5"])
def test_list_rejects_bad_limit(client, limit):
    response = client.get("/v1/messages", query_string={"limit": limit})

    assert response.status_code == 400
    assert "limit" in response.json["fields"]


def test_stats_count_outcomes(client):
    client.post("/v1/messages", json=message())
    client.post("/v1/messages", json=message())
    client.post("/v1/messages", json=message(request_id="bad", to="123"))

    assert wait_until(lambda: client.get("/v1/stats").json["delivered"] == 1)
    stats = client.get("/v1/stats").json
    assert stats["accepted"] == 1
    assert stats["duplicates"] == 1
    assert stats["rejected"] == 1
    assert stats["report_failed"] == 0


def test_delete_clears_messages_and_request_ids(client):
    client.post("/v1/messages", json=message())

    response = client.delete("/v1/messages")

    assert response.status_code == 204
    assert response.data == b""
    assert stored(client) == []
    assert client.get("/v1/stats").json["accepted"] == 0
    assert client.post("/v1/messages", json=message()).status_code == 202


# --- delivery reports -----------------------------------------------------------------

def test_delivery_report_is_posted_to_callback(make_client):
    sender = FakeSender()
    client = make_client(sender)
    accepted = client.post("/v1/messages", json=message(callback_url=CALLBACK)).json

    assert wait_until(lambda: stored(client)[0]["status"] == "delivered")
    [(url, report)] = sender.calls
    assert url == CALLBACK
    assert report["message_id"] == accepted["message_id"]
    assert report["request_id"] == "enr-42-reminder"
    assert report["to"] == "84912345678"
    assert report["status"] == "delivered"
    assert ISO_MS_UTC.fullmatch(report["delivered_at"])
    [listed] = stored(client)
    assert listed["delivered_at"] == report["delivered_at"]
    assert listed["report_attempts"] == 1
    answered = client.get("/v1/stats").json["report_answer_ms"]
    assert answered["count"] == 1 and 0 <= answered["p50"] == answered["max"]
    # those after the first only: none yet
    assert client.get("/v1/stats?reports_from=1").json["report_answer_ms"]["count"] == 0
    assert client.get("/v1/stats?reports_from=first").status_code == 400


def test_delivery_waits_for_the_delay(make_client):
    sender = FakeSender()
    client = make_client(sender, delivery_delay=0.3)
    client.post("/v1/messages", json=message(callback_url=CALLBACK))

    time.sleep(0.1)
    assert sender.calls == []
    assert stored(client)[0]["status"] == "accepted"
    assert wait_until(lambda: len(sender.calls) == 1)


def test_message_without_callback_is_marked_delivered(make_client):
    sender = FakeSender()
    client = make_client(sender)
    client.post("/v1/messages", json=message())

    assert wait_until(lambda: stored(client)[0]["status"] == "delivered")
    assert sender.calls == []


def test_failed_report_is_retried(make_client):
    sender = FakeSender(failures=2)
    client = make_client(sender, callback_attempts=5)
    client.post("/v1/messages", json=message(callback_url=CALLBACK))

    assert wait_until(lambda: stored(client)[0]["status"] == "delivered")
    assert len(sender.calls) == 3
    [listed] = stored(client)
    assert listed["report_attempts"] == 3
    assert listed["report_error"] is None
    # Every attempt reports the same delivery, not the time of the retry.
    assert len({report["delivered_at"] for _, report in sender.calls}) == 1


def test_report_gives_up_after_configured_attempts(make_client):
    sender = FakeSender(failures=100)
    client = make_client(sender, callback_attempts=3)
    client.post("/v1/messages", json=message(callback_url=CALLBACK))

    assert wait_until(lambda: stored(client)[0]["status"] == "report_failed")
    time.sleep(0.05)
    assert len(sender.calls) == 3
    [listed] = stored(client)
    assert listed["report_attempts"] == 3
    assert listed["report_error"] == "HTTP 500"
    assert listed["delivered_at"] is None
    assert client.get("/v1/stats").json["report_failed"] == 1


def test_cleared_message_gets_no_report(make_client):
    sender = FakeSender()
    client = make_client(sender, delivery_delay=0.2)
    client.post("/v1/messages", json=message(callback_url=CALLBACK))
    client.delete("/v1/messages")

    time.sleep(0.4)
    assert sender.calls == []


# --- faults ---------------------------------------------------------------------------

def test_faults_default_to_none(client):
    assert client.get("/v1/admin/faults").json == {"fail_rate": 0.0, "rate_limit_per_minute": None,
                                                   "retry_after_format": "seconds"}


def test_fail_rate_one_answers_503_and_stores_nothing(client):
    changed = client.post("/v1/admin/faults", json={"fail_rate": 1})
    assert changed.json == {"fail_rate": 1.0, "rate_limit_per_minute": None,
                            "retry_after_format": "seconds"}

    response = client.post("/v1/messages", json=message())

    assert response.status_code == 503
    assert response.json["error"] == "UNAVAILABLE"
    assert stored(client) == []
    assert client.get("/v1/stats").json["unavailable"] == 1

    client.post("/v1/admin/faults", json={"fail_rate": 0})
    assert client.post("/v1/messages", json=message()).status_code == 202


def test_fail_rate_from_settings_fails_about_that_share(make_client):
    client = make_client(fail_rate=0.5, seed=7)
    statuses = [
        client.post("/v1/messages", json=message(request_id=f"r{n}")).status_code
        for n in range(200)
    ]
    assert set(statuses) == {202, 503}
    assert 60 < statuses.count(503) < 140


def test_rate_limit_answers_429_with_retry_after(client):
    client.post("/v1/admin/faults", json={"rate_limit_per_minute": 2})
    for n in range(2):
        assert client.post("/v1/messages", json=message(request_id=f"r{n}")).status_code == 202

    response = client.post("/v1/messages", json=message(request_id="r2"))

    assert response.status_code == 429
    assert response.json["error"] == "RATE_LIMITED"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert len(stored(client)) == 2
    assert client.get("/v1/stats").json["rate_limited"] == 1


def test_rate_limit_can_be_lifted(client):
    client.post("/v1/admin/faults", json={"rate_limit_per_minute": 0})
    assert client.post("/v1/messages", json=message()).status_code == 429

    client.post("/v1/admin/faults", json={"rate_limit_per_minute": None})
    assert client.post("/v1/messages", json=message()).status_code == 202


def test_fault_update_is_partial(client):
    client.post("/v1/admin/faults", json={"rate_limit_per_minute": 60})
    client.post("/v1/admin/faults", json={"fail_rate": 0.25})

    assert client.get("/v1/admin/faults").json == {"fail_rate": 0.25, "rate_limit_per_minute": 60,
                                                   "retry_after_format": "seconds"}


@pytest.mark.parametrize("body", [
    {"fail_rate": 1.5},
    {"fail_rate": -0.1},
    {"fail_rate": "0.5"},
    {"fail_rate": True},
    {"rate_limit_per_minute": -1},
    {"rate_limit_per_minute": 2.5},
    {"rate_limit": 10},
    {"retry_after_format": "minutes"},
    [],
])
def test_invalid_fault_settings_are_rejected(client, body):
    response = client.post("/v1/admin/faults", json=body)

    assert response.status_code == 400
    assert response.json["error"] == "VALIDATION_ERROR"
    assert client.get("/v1/admin/faults").json == {"fail_rate": 0.0, "rate_limit_per_minute": None,
                                                   "retry_after_format": "seconds"}


def test_rate_limit_window_rolls():
    now = [1000.0]
    faults = Faults(rate_limit_per_minute=2, clock=lambda: now[0])
    faults.admit()
    now[0] += 20
    faults.admit()

    with pytest.raises(RateLimited) as limited:
        faults.admit()
    assert limited.value.retry_after == 40

    now[0] += 40  # the first acceptance is now a full minute old
    faults.admit()
    with pytest.raises(RateLimited):
        faults.admit()


# --- plumbing -------------------------------------------------------------------------

def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_unknown_route_is_json_404(client):
    response = client.get("/v2/messages")
    assert response.status_code == 404
    assert response.content_type.startswith("application/json")
    assert response.json["error"] == "NOT_FOUND"


def test_wrong_method_is_json_405(client):
    response = client.put("/v1/messages", json=message())
    assert response.status_code == 405
    assert response.json["error"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST", "DELETE"}


def test_record_file_gets_one_json_line_per_accepted_message(make_client, tmp_path):
    record = tmp_path / "sms.jsonl"
    client = make_client(record_path=str(record))
    client.post("/v1/messages", json=message(request_id="r1", text="Chào bạn", encoding="UCS2"))
    client.post("/v1/messages", json=message(request_id="r1"))
    client.post("/v1/messages", json=message(request_id="r2"))

    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert [line["request_id"] for line in lines] == ["r1", "r2"]
    assert lines[0]["text"] == "Chào bạn"


def test_log_masks_phone_and_omits_text(client, caplog):
    caplog.set_level("INFO", logger="sms_simulator")
    secret_text = "Ma xac nhan cua ban la 493817"

    client.post("/v1/messages", json=message(text=secret_text))
    client.post("/v1/messages", json=message(request_id="x", text=secret_text, encoding="bad"))
    client.get("/v1/messages", query_string={"to": "84912345678"})

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "*******5678" in logged
    assert "84912345678" not in logged
    assert "493817" not in logged
    assert len([r for r in caplog.records if "/v1/messages" in r.getMessage()]) == 3


@pytest.mark.parametrize("value, masked", [
    ("84912345678", "*******5678"),
    ("123", "123"),
    ("", ""),
])
def test_mask_phone(value, masked):
    assert mask_phone(value) == masked
