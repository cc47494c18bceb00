"""The WSGI application: routing, request handling and one log line per request."""
import json
import logging
import time
from dataclasses import dataclass
from typing import Callable

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .delivery import DeliveryReporter, http_report_sender
from .faults import Faults, RateLimited
from .modes import EsmsMode, SpeedSmsMode
from .store import DuplicateRequest, MessageStore, Recorder
from .validation import ValidationFailed, validate_fault_changes, validate_message

log = logging.getLogger("sms_simulator")

MAX_BODY_BYTES = 64 * 1024
DEFAULT_LIST_LIMIT = 1000

_ERROR_CODES = {413: "PAYLOAD_TOO_LARGE"}


@dataclass(frozen=True)
class Settings:
    delivery_delay: float = 0.2
    callback_attempts: int = 5
    callback_backoff: float = 0.5
    callback_timeout: float = 2.0
    callback_workers: int = 4
    fail_rate: float = 0.0
    rate_limit_per_minute: int | None = None
    record_path: str | None = None
    seed: int | None = None
    retry_after_format: str = "seconds"
    # which provider's API to speak: simulator (docs/sms-gateway.md), esms or speedsms
    mode: str = "simulator"
    api_key: str = "test-api-key"            # esms: ApiKey
    secret_key: str = "test-secret-key"      # esms: SecretKey
    access_token: str = "test-access-token"  # speedsms: the Basic-auth user name
    webhook_url: str | None = None           # speedsms: the account's webhook for reports
    callback_secret: bytes | None = None     # signs POSTed reports (X-Hocvu-Signature)


class _Request(Request):
    max_content_length = MAX_BODY_BYTES

    def __init__(self, environ):
        super().__init__(environ)
        # Handlers add details here for the access log line; never text or a full number.
        self.log_fields: dict[str, object] = {}


def mask_phone(value: str) -> str:
    """All but the last 4 characters hidden; long junk is cut so it cannot flood logs."""
    value = value[:20]
    return "*" * max(len(value) - 4, 0) + value[-4:]


def json_response(payload: dict | None, status: int = 200, headers: dict | None = None) -> Response:
    body = "" if payload is None else json.dumps(payload, ensure_ascii=False)
    return Response(body, status=status, headers=headers,
                    content_type="application/json; charset=utf-8")


def error_response(status: int, code: str, message: str, **extra) -> Response:
    return json_response({"error": code, "message": message, **extra}, status)


def _read_json(request: Request) -> object:
    try:
        return json.loads(request.get_data(cache=False).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed({"body": ["must be a UTF-8 JSON document"]}) from None


class SimulatorApp:
    def __init__(self, settings: Settings, store: MessageStore, faults: Faults,
                 reporter: DeliveryReporter, recorder: Recorder | None = None):
        self.settings = settings
        self.store = store
        self.faults = faults
        self.reporter = reporter
        self._recorder = recorder
        self._url_map = Map([
            Rule("/health", endpoint=self.health, methods=["GET"]),
            Rule("/v1/messages", endpoint=self.send, methods=["POST"]),
            Rule("/v1/messages", endpoint=self.list_messages, methods=["GET"]),
            Rule("/v1/messages", endpoint=self.clear_messages, methods=["DELETE"]),
            Rule("/v1/stats", endpoint=self.stats, methods=["GET"]),
            Rule("/v1/admin/faults", endpoint=self.get_faults, methods=["GET"]),
            Rule("/v1/admin/faults", endpoint=self.set_faults, methods=["POST"]),
            *self._mode_rules(settings),
        ], strict_slashes=False, merge_slashes=False)

    def _mode_rules(self, settings: Settings) -> list[Rule]:
        if settings.mode == EsmsMode.name:
            self.mode = EsmsMode(self, settings.api_key, settings.secret_key)
        elif settings.mode == SpeedSmsMode.name:
            self.mode = SpeedSmsMode(self, settings.access_token, settings.webhook_url)
        elif settings.mode == "simulator":
            self.mode = None
        else:
            raise ValueError(f"unknown mode {settings.mode!r}")
        return self.mode.rules() if self.mode else []

    # shared by the provider modes (modes.py)
    mask = staticmethod(lambda value: mask_phone(value))

    def outage(self) -> Response | None:
        if self.faults.should_fail():
            self.store.count("unavailable")
            return error_response(503, "UNAVAILABLE", "The gateway is temporarily unavailable.")
        return None

    def rate_limited(self, exc: RateLimited) -> Response:
        self.store.count("rate_limited")
        response = error_response(429, "RATE_LIMITED", "Too many messages this minute.",
                                  retry_after=exc.retry_after)
        response.headers["Retry-After"] = self.faults.retry_after(exc.retry_after)
        return response

    def accepted(self, request: "_Request", message) -> None:
        self.reporter.schedule(message.message_id, self.settings.delivery_delay)
        request.log_fields["message_id"] = message.message_id
        request.log_fields["segments"] = message.segments

    def close(self) -> None:
        self.reporter.stop()
        if self._recorder is not None:
            self._recorder.close()

    def __call__(self, environ, start_response):
        request = _Request(environ)
        started = time.perf_counter()
        response = self._dispatch(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        details = "".join(f" {key}={value}" for key, value in request.log_fields.items())
        # The path only: a query string may carry a phone number.
        log.info("%s %s %s %d %.1fms%s", request.remote_addr, request.method, request.path,
                 response.status_code, elapsed_ms, details)
        return response(environ, start_response)

    def _dispatch(self, request: _Request) -> Response:
        try:
            handler, _ = self._url_map.bind_to_environ(request.environ).match()
            return handler(request)
        except ValidationFailed as exc:
            return error_response(400, "VALIDATION_ERROR", "The request is invalid; see fields.",
                                  fields=exc.fields)
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.valid_methods or ()))
            response = error_response(405, "METHOD_NOT_ALLOWED",
                                      f"{request.method} is not allowed here; use {allowed}.")
            response.headers["Allow"] = allowed
            return response
        except NotFound:
            return error_response(404, "NOT_FOUND", f"There is no endpoint at {request.path}.")
        except HTTPException as exc:
            return error_response(exc.code, _ERROR_CODES.get(exc.code, "HTTP_ERROR"),
                                  exc.description or exc.name)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return error_response(500, "INTERNAL_ERROR", "The simulator failed unexpectedly.")

    def health(self, request: _Request) -> Response:
        return json_response({"status": "ok"})

    def send(self, request: _Request) -> Response:
        if self.faults.should_fail():
            # Checked before the body is read: an outage stores nothing.
            self.store.count("unavailable")
            return error_response(503, "UNAVAILABLE", "The gateway is temporarily unavailable.")
        try:
            payload = _read_json(request)
            if isinstance(payload, dict):
                self._note_sender(request, payload)
            fields = validate_message(payload)
        except ValidationFailed:
            self.store.count("rejected")
            raise
        try:
            message = self.store.accept(fields, admit=self.faults.admit)
        except DuplicateRequest as exc:
            request.log_fields["duplicate_of"] = exc.message_id
            return error_response(409, "DUPLICATE_REQUEST_ID",
                                  "This request_id was already accepted.",
                                  message_id=exc.message_id)
        except RateLimited as exc:
            self.store.count("rate_limited")
            response = error_response(429, "RATE_LIMITED", "Too many messages this minute.",
                                      retry_after=exc.retry_after)
            response.headers["Retry-After"] = self.faults.retry_after(exc.retry_after)
            return response
        self.reporter.schedule(message.message_id, self.settings.delivery_delay)
        request.log_fields["message_id"] = message.message_id
        request.log_fields["segments"] = message.segments
        return json_response({
            "request_id": message.request_id,
            "message_id": message.message_id,
            "status": "accepted",
            "segments": message.segments,
            "accepted_at": message.received_at,
        }, 202)

    @staticmethod
    def _note_sender(request: _Request, payload: dict) -> None:
        if isinstance(payload.get("request_id"), str):
            request.log_fields["request_id"] = payload["request_id"][:64]
        if isinstance(payload.get("to"), str):
            request.log_fields["to"] = mask_phone(payload["to"])

    def list_messages(self, request: _Request) -> Response:
        limit = request.args.get("limit", str(DEFAULT_LIST_LIMIT))
        if not (limit.isascii() and limit.isdigit() and int(limit) >= 1):
            raise ValidationFailed({"limit": ["must be a whole number >= 1"]})
        messages = self.store.find(to=request.args.get("to"),
                                   request_id=request.args.get("request_id"),
                                   limit=int(limit))
        return json_response({"messages": [m.to_dict() for m in messages],
                              "count": len(messages)})

    def clear_messages(self, request: _Request) -> Response:
        self.store.clear()
        self.faults.reset_window()
        return Response(status=204)

    def stats(self, request: _Request) -> Response:
        try:
            since = max(0, int(request.args.get("reports_from", 0)))
        except ValueError:
            return json_response({"error": "reports_from must be a whole number"}, 400)
        return json_response(self.store.stats(reports_from=since))

    def get_faults(self, request: _Request) -> Response:
        return json_response(self.faults.settings())

    def set_faults(self, request: _Request) -> Response:
        changes = validate_fault_changes(_read_json(request))
        settings = self.faults.update(changes)
        log.info("faults now fail_rate=%s rate_limit_per_minute=%s retry_after_format=%s",
                 settings["fail_rate"], settings["rate_limit_per_minute"],
                 settings["retry_after_format"])
        return json_response(settings)


def create_app(settings: Settings = Settings(),
               send_report: Callable[[str, dict], None] | None = None) -> SimulatorApp:
    """Build the application and start its report workers; call close() when done.

    `send_report(url, report)` defaults to an HTTP POST; tests pass a fake.
    """
    recorder = Recorder(settings.record_path) if settings.record_path else None
    store = MessageStore(recorder)
    faults = Faults(settings.fail_rate, settings.rate_limit_per_minute, seed=settings.seed,
                    retry_after_format=settings.retry_after_format)
    sender = send_report or http_report_sender(settings.callback_timeout,
                                               settings.callback_secret)
    reporter = DeliveryReporter(store, sender, attempts=settings.callback_attempts,
                                backoff=settings.callback_backoff,
                                workers=settings.callback_workers)
    reporter.start()
    return SimulatorApp(settings, store, faults, reporter, recorder)
