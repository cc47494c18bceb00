"""OpenAPI 3 documents generated from a service's routes and marshmallow schemas (apispec).

Each route states its summary, body, query parameters and answers in its @http decorator
(hocvu.http.JsonHttpEntrypoint); this module turns them into the document a service serves
at GET /api/<service>/openapi.json, of the routes a client reaches through the edge, and the
operators' document of the operations routes the edge does not route (health, metrics).
"""
import functools
import inspect
import re
import sys

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from hocvu import auth
from hocvu.http import JsonHttpEntrypoint, access_rule

_PATH_PARAMETER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")

SECURITY_SCHEMES = {
    "bearerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "a token from the configured issuer (docs/identity.md)"},
    "gatewaySignature": {"type": "apiKey", "in": "header", "name": "X-Hocvu-Signature",
                         "description": "HMAC-SHA256 with X-Hocvu-Timestamp "
                                        "(docs/sms-gateway.md)"},
}


class BlockingLessonOut(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    position = fields.Integer(required=True)


class ErrorOut(Schema):
    error = fields.String(required=True, metadata={"example": "VALIDATION_ERROR"})
    message = fields.String(required=True)
    enrollment_id = fields.String(metadata={
        "description": "409 ALREADY_ENROLLED: the existing enrollment, if the caller may see it"})
    message_vi = fields.String(metadata={
        "description": "a CSV upload's error, in Vietnamese for the facilitator"})
    retry_after = fields.Integer(metadata={
        "description": "429 from a service: seconds to wait, as in the Retry-After header"})
    blocking_lesson = fields.Nested(BlockingLessonOut, metadata={
        "description": "409 LESSON_OUT_OF_ORDER: the lesson to complete first"})
    cancelled_at = fields.String(metadata={
        "description": "409 ENROLLMENT_CANCELLED: when the enrollment was cancelled"})
    revoked_at = fields.String(metadata={
        "description": "409 CERTIFICATE_REVOKED: when the certificate was revoked"})
    # last: the attribute hides marshmallow's `fields` module inside the class body
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         required=True)


# answers every route of a kind can give, whatever its handler does
_ANSWERS_BY_RULE = {
    "roles": {401: "no token, or one that is expired or from an unknown issuer",
              403: "the caller's role may not do this",
              503: "the token issuer's keys cannot be fetched"},
    "gateway": {401: "unsigned, badly signed or replayed callback",
                503: "the callback secret is not configured"},
}
_ANSWERS_OF_EVERY_ROUTE = {405: "this path does not answer that method (Allow lists those it does)",
                           429: "too many requests from this address (the edge's limit)",
                           500: "unexpected error (an incident id is logged)"}
_ANSWER_HEADERS = {
    405: {"Allow": {"description": "the methods this path answers", "schema": {"type": "string"}}},
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
}


def routes(service_class) -> list[tuple[str, JsonHttpEntrypoint]]:
    found = []
    for name, member in inspect.getmembers(service_class, inspect.isfunction):
        for extension in getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(extension, JsonHttpEntrypoint):
                found.append((name, extension))
    return sorted(found, key=lambda item: (item[1].url, item[1].method))


def _response(status: int, answer) -> dict:
    """An answer as the route declares it: a description (an error's body is ErrorOut), a
    marshmallow schema, or a JSON schema as a dict."""
    if isinstance(answer, str) and status < 400:
        response = {"description": answer}
    elif isinstance(answer, str):
        response = {"description": answer, "content": {"application/json": {"schema": ErrorOut}}}
    else:
        response = {"description": "OK" if status < 400 else "error",
                    "content": {"application/json": {"schema": answer}}}
    if status in _ANSWER_HEADERS:
        response["headers"] = _ANSWER_HEADERS[status]
    return response


def _operation(name: str, route: JsonHttpEntrypoint, path_parameters: list[str],
               rule: auth.Rule) -> dict:
    parameters = [{"in": "path", "name": p, "required": True, "schema": {"type": "string"}}
                  for p in path_parameters]
    if route.query is not None:
        parameters.append({"in": "query", "schema": route.query})
    operation = {"operationId": name, "summary": route.summary or name.replace("_", " "),
                 "description": f"Who may call it: {rule.describe()}.",
                 "security": {"roles": [{"bearerToken": []}],
                              "gateway": [{"gatewaySignature": []}]}.get(rule.kind, []),
                 "parameters": parameters, "responses": {}}
    if isinstance(route.body_schema, dict):
        # a body that is not JSON (a CSV file): {media type: {"schema": ...}}
        operation["requestBody"] = {"required": route.body_required,
                                    "content": route.body_schema}
    elif route.body_schema is not None:
        operation["requestBody"] = {"required": route.body_required, "content": {
            "application/json": {"schema": route.body_schema}}}
    answers = {**_ANSWERS_OF_EVERY_ROUTE, **_ANSWERS_BY_RULE.get(rule.kind, {}), **route.answers}
    for status, answer in sorted(answers.items()):
        operation["responses"][str(status)] = _response(status, answer)
    if not any(status.startswith("2") for status in operation["responses"]):
        operation["responses"]["200"] = {"description": "OK"}
    return operation


@functools.cache
def build(service_class, title: str, description: str = "", operators: bool = False) -> dict:
    """The document of the routes a client reaches through the edge, or (`operators`) of the
    operations routes the edge does not route, answered on the service's own port."""
    spec = APISpec(title=title, version="1", openapi_version="3.0.3",
                   info={"description": description}, plugins=[MarshmallowPlugin()])
    for scheme, definition in SECURITY_SCHEMES.items():
        spec.components.security_scheme(scheme, definition)
    for name, route in routes(service_class):
        path = _PATH_PARAMETER.sub(r"{\1}", route.url)
        rule = access_rule(service_class, name)
        if (rule is auth.OPERATIONS) != operators:
            continue
        operations = {verb.lower(): _operation(name, route, _PATH_PARAMETER.findall(route.url),
                                               rule)
                      for verb in route.method.split(",")}
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def document(service_class) -> dict:
    """The document a service serves, of what a client reaches through the edge: titled
    after it, described by its module's card."""
    card = sys.modules[service_class.__module__].__doc__ or ""
    return build(service_class, f"hocvu {service_class.name}", card)


def operators_document(service_class) -> dict:
    """The operations routes (health, metrics), which the edge does not route: for the
    operators' probes and scrapers, on the service's own port (docs/operations.md)."""
    return build(service_class, f"hocvu {service_class.name}: operations",
                 "Answered on the service's own port only; the edge answers these paths 404.",
                 operators=True)
