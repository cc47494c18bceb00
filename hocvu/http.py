"""JSON over nameko's @http: one error envelope for every service.

Errors answer `{"error": CODE, "message": ..., "fields": {...}}`:
    ValidationFailed (and marshmallow's ValidationError) -> 400 VALIDATION_ERROR
    NotFound -> 404, Conflict -> 409, TooManyRequests -> 429 (+ Retry-After), anything unexpected -> 500 INTERNAL_ERROR
Unknown routes and wrong methods get the same envelope (404 / 405).
"""
import json
import logging
import uuid

from marshmallow import Schema, ValidationError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
MAX_BODY_BYTES = 1024 * 1024


class ApiError(Exception):
    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, fields: dict | None = None,
                 headers: dict | None = None, **extra):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        body = {"error": self.code, "message": self.message, "fields": self.fields}
        body.update(self.extra)
        return body


class ValidationFailed(ApiError):
    status = 400
    code = "VALIDATION_ERROR"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class Conflict(ApiError):
    status = 409
    code = "CONFLICT"


class TooManyRequests(ApiError):
    """429, with the wait in the Retry-After header and as `retry_after` in the body."""
    status = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)},
                         retry_after=retry_after)


class ServiceUnavailable(ApiError):
    status = 503
    code = "UNAVAILABLE"


def json_response(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False, default=str), status=status,
                    headers=headers, content_type=JSON_TYPE)


def flatten_errors(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict -> {"learner.phone": ["..."]}."""
    if isinstance(messages, list):
        return {prefix or "_schema": [str(m) for m in messages]}
    flat = {}
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(flatten_errors(value, name))
    return flat


def read_json(request) -> object:
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise ValidationFailed("request body is too large", {"_body": ["at most 1 MiB"]})
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise ValidationFailed("request body must be a JSON object", {"_body": ["empty body"]})
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("request body is not valid JSON", {"_body": [str(exc)]}) from None


def load_body(request, schema: Schema, allow_empty: bool = False) -> dict:
    """Parse and validate a JSON body; raise ValidationFailed naming every field at fault."""
    if allow_empty and not request.get_data(cache=True).strip():
        payload = {}
    else:
        payload = read_json(request)
    return load(schema, payload)


def load(schema: Schema, payload) -> dict:
    if not isinstance(payload, dict):
        raise ValidationFailed("expected a JSON object", {"_body": ["expected a JSON object"]})
    try:
        return schema.load(payload)
    except ValidationError as exc:
        raise ValidationFailed("some fields are invalid", flatten_errors(exc.messages)) from None


class JsonWsgiApp(WsgiApp):
    """nameko's WsgiApp, with unknown routes and methods answered in the JSON envelope."""

    def __call__(self, environ, start_response):
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
        except HTTPException as exc:
            response = self._error_response(exc, environ)
        else:
            request = Request(environ, shallow=True)
            request.path_values = values
            response = provider.handle_request(request)
        return response(environ, start_response)

    @staticmethod
    def _error_response(exc: HTTPException, environ) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.code, "HTTP_ERROR")
        headers = {k: v for k, v in exc.get_headers(environ) if k.lower() != "content-type"}
        return json_response({"error": code, "message": exc.description, "fields": {}},
                             exc.code, headers)


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)


class JsonHttpEntrypoint(HttpRequestHandler):
    """nameko's @http answering JSON. The route also describes itself for OpenAPI:
    `summary`, the request `body` schema, `query` parameters {name: description} and
    `answers` {status: response schema, or a description for an error}."""
    server = JsonWebServer()

    def __init__(self, method, url, summary: str = "", body=None, query=None, answers=None,
                 **kwargs):
        kwargs.setdefault("expected_exceptions", (ApiError,))
        self.summary = summary
        self.body_schema = body
        self.query = query or {}
        self.answers = answers or {}
        super().__init__(method, url, **kwargs)

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status = 200
        if isinstance(result, tuple):
            status, result = result
        return json_response(result, status)

    def response_from_exception(self, exc):
        if isinstance(exc, ApiError):
            return json_response(exc.body(), exc.status, exc.headers)
        incident = uuid.uuid4().hex[:12]
        log.error("unexpected error answering an HTTP request (incident %s): %r", incident, exc)
        return json_response({"error": "INTERNAL_ERROR", "fields": {},
                              "message": f"unexpected error, incident {incident}"}, 500)


http = JsonHttpEntrypoint.decorator
