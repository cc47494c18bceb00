"""JSON over nameko's @http: one error envelope for every service.

Errors answer `{"error": CODE, "message": ..., "fields": {...}}`:
    ValidationFailed (and marshmallow's ValidationError) -> 400 VALIDATION_ERROR
    no or untrusted token -> 401 UNAUTHENTICATED, role or scope refused -> 403 FORBIDDEN
    NotFound -> 404, Conflict -> 409, TooManyRequests -> 429 (+ Retry-After),
    anything unexpected -> 500 INTERNAL_ERROR
Unknown routes and wrong methods get the same envelope (404 / 405).

Every route is checked against its rule in the service's ACCESS table (hocvu.auth) before
its handler runs; the handler finds the caller on `request.principal`.
"""
import json
import logging
import time
import uuid
from functools import partial

import eventlet
from eventlet.event import Event
from marshmallow import Schema, ValidationError
from nameko.exceptions import ConfigurationError
from nameko.extensions import SharedExtension
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from hocvu import auth, logcontext, metrics, signatures

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
MAX_BODY_BYTES = 1024 * 1024
# connections the kernel holds for a service until its accept loop takes them (the kernel caps
# it at net.core.somaxconn, 4096 on Debian 12). eventlet's default of 50 dropped the rest of
# 1,018 uploads arriving at once through the edge: their connects were retried by TCP after
# 1, 3, 7, 15, 31 s, and the last answered after 55-60 s, past the edge's timeout
LISTEN_BACKLOG = 2048


class ApiError(Exception):
    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, fields: dict | None = None, **extra):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra

    def body(self) -> dict:
        body = {"error": self.code, "message": self.message, "fields": self.fields}
        body.update(self.extra)
        return body

    def headers(self) -> dict | None:
        return None


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
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after

    def headers(self) -> dict:
        return {"Retry-After": str(self.retry_after)}


class ServiceUnavailable(ApiError):
    status = 503
    code = "UNAVAILABLE"


class Unauthorized(ApiError):
    status = 401
    code = "UNAUTHENTICATED"

    def headers(self) -> dict:
        return {"WWW-Authenticate": 'Bearer realm="hocvu"'}


class Forbidden(ApiError):
    status = 403
    code = "FORBIDDEN"


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


def load_query(request, schema: Schema) -> dict:
    """Validate the query string against the route's query schema (the one its document
    states); 400 naming every parameter at fault. A repeated parameter counts once (the first)."""
    try:
        return schema.load(request.args.to_dict(flat=True))
    except ValidationError as exc:
        raise ValidationFailed("invalid query parameters", flatten_errors(exc.messages)) from None


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


def listen(address) -> "eventlet.greenio.GreenSocket":
    """The service's listening socket, with room for a crowd of connections at once."""
    return eventlet.listen(address, backlog=LISTEN_BACKLOG)


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def start(self):
        # nameko's WebServer.start, with our backlog
        if not self._starting:
            self._starting = True
            self._sock = listen(self.bind_addr)
            self._sock.settimeout(None)  # as nameko does: kombu issue 838
            self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
            self._gt = self.container.spawn_managed_thread(self.run)


class Authenticator(SharedExtension):
    """One per service process: verifies tokens (hocvu.auth.TokenVerifier, built at start so
    that missing AUTH_* settings stop the service at once) and the gateway's signatures."""

    def setup(self):
        self.verifier = auth.TokenVerifier(self.container.config)

    def caller(self, rule: auth.Rule, request) -> auth.Principal | None:
        """The verified caller of a route with `rule`, or raise an ApiError."""
        if rule.kind == "gateway":
            self._check_gateway_signature(request)
            return None
        if rule.kind != "roles":
            return None
        try:
            principal = self.verifier.principal(request.headers.get("Authorization"))
            auth.authorize(rule, principal)
        except auth.Unauthenticated as exc:
            raise Unauthorized(str(exc)) from None
        except auth.Forbidden as exc:
            raise Forbidden(str(exc)) from None
        except auth.KeysUnavailable:
            log.error("the token issuer's keys cannot be fetched from %s",
                      self.container.config.get("AUTH_JWKS_URL"))
            raise ServiceUnavailable("sign-in cannot be checked right now; try again") from None
        return principal

    def _check_gateway_signature(self, request) -> None:
        secret = str(self.container.config.get("SMS_CALLBACK_SECRET") or "")
        if not secret:
            raise ServiceUnavailable("SMS_CALLBACK_SECRET is not configured")
        if request.content_length and request.content_length > MAX_BODY_BYTES:
            raise ValidationFailed("request body is too large", {"_body": ["at most 1 MiB"]})
        try:
            signatures.verify(secret.encode(), request.headers.get(signatures.TIMESTAMP_HEADER),
                              request.headers.get(signatures.SIGNATURE_HEADER),
                              request.get_data(cache=True), now=time.time())
        except signatures.BadSignature as exc:
            raise Unauthorized(f"gateway callback refused: {exc}") from None


class JsonHttpEntrypoint(HttpRequestHandler):
    """nameko's @http answering JSON. The route also describes itself for OpenAPI:
    `summary`, the request `body` schema (`body_required=False` when it may be left out),
    the `query` schema (the handler validates with the same one: hocvu.http.load_query) and
    `answers` {status: response schema, or a description for an error}. Who may call it is
    the service's ACCESS table's business."""
    server = JsonWebServer()
    authenticator = Authenticator()

    def __init__(self, method, url, summary: str = "", body=None, query=None, answers=None,
                 body_required: bool = True, **kwargs):
        kwargs.setdefault("expected_exceptions", (ApiError,))
        self.summary = summary
        self.body_schema = body
        self.body_required = body_required
        self.query = query
        self.answers = answers or {}
        super().__init__(method, url, **kwargs)

    def setup(self):
        super().setup()
        self.rule = access_rule(self.container.service_cls, self.method_name)

    def handle_request(self, request):
        started = time.perf_counter()
        request.correlation_id = logcontext.correlation_id_of(request.headers)
        with logcontext.bound(correlation_id=request.correlation_id):
            response = self._answer(request)
            seconds = time.perf_counter() - started
            metrics.http_request(self.container.service_name, self.url, self.method,
                                 response.status_code, seconds)
            # reads are the bulk of the traffic and are in the edge's access log already;
            # a change is worth a line here, with the id that follows its consequences
            log.log(logging.DEBUG if request.method in ("GET", "HEAD") else logging.INFO,
                    "%s %s answered %s in %.1f ms", request.method, self.url,
                    response.status_code, seconds * 1000)
        return response

    def _answer(self, request):
        request.shallow = False  # as nameko does before reading a body: a signature covers it
        try:
            request.principal = self.authenticator.caller(self.rule, request)
        except ApiError as exc:
            return self.response_from_exception(exc)
        return self._handle_request(request)

    def _handle_request(self, request):
        """nameko's handle_request, its worker started in this request's log context."""
        try:
            context_data = self.server.context_data_from_headers(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            logcontext.spawn_worker(self, args, kwargs, context_data=context_data,
                                    handle_result=partial(self.handle_result, event))
            return self.response_from_result(event.wait())
        except Exception as exc:
            return self.response_from_exception(exc)

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status = 200
        if isinstance(result, tuple):
            status, result = result
        return json_response(result, status)

    def response_from_exception(self, exc):
        if isinstance(exc, ApiError):
            return json_response(exc.body(), exc.status, exc.headers())
        incident = uuid.uuid4().hex[:12]
        log.error("unexpected error answering an HTTP request (incident %s): %r", incident, exc)
        return json_response({"error": "INTERNAL_ERROR", "fields": {},
                              "message": f"unexpected error, incident {incident}"}, 500)


def access_rule(service_cls, method_name: str) -> auth.Rule:
    """The rule a service's ACCESS table gives a route; a route it forgets does not start."""
    table = getattr(service_cls, "ACCESS", None) or {}
    rule = table.get(method_name)
    if not isinstance(rule, auth.Rule):
        raise ConfigurationError(
            f"{service_cls.__name__}.{method_name} has no rule in {service_cls.__name__}.ACCESS")
    return rule


http = JsonHttpEntrypoint.decorator
