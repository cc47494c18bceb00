"""OpenAPI 3 documents generated from a service's routes and marshmallow schemas (apispec).

Each route states its summary, body, query parameters and answers in its @http decorator
(hocvu.http.JsonHttpEntrypoint); this module turns them into the document a service serves
at GET /api/<service>/openapi.json.
"""
import functools
import inspect
import re

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


class ErrorOut(Schema):
    error = fields.String(required=True, metadata={"example": "VALIDATION_ERROR"})
    message = fields.String(required=True)
    enrollment_id = fields.String(metadata={
        "description": "409 ALREADY_ENROLLED: the existing enrollment, if the caller may see it"})
    # last: the attribute hides marshmallow's `fields` module inside the class body
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         required=True)


# answers every route of a kind can give, whatever its handler does
_ANSWERS_BY_RULE = {
    "roles": {401: "no token, or one that is expired or from an unknown issuer",
              403: "the caller's role may not do this",
              503: "the token issuer's keys cannot be fetched"},
    "gateway": {401: "unsigned, badly signed or replayed callback"},
}
_ANSWERS_OF_EVERY_ROUTE = {429: "too many requests from this address (the edge's limit)",
                           500: "unexpected error (an incident id is logged)"}


def routes(service_class) -> list[tuple[str, JsonHttpEntrypoint]]:
    found = []
    for name, member in inspect.getmembers(service_class, inspect.isfunction):
        for extension in getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(extension, JsonHttpEntrypoint):
                found.append((name, extension))
    return sorted(found, key=lambda item: (item[1].url, item[1].method))


def _operation(name: str, route: JsonHttpEntrypoint, path_parameters: list[str],
               rule: auth.Rule) -> dict:
    operation = {"operationId": name, "summary": route.summary or name.replace("_", " "),
                 "description": f"Who may call it: {rule.describe()}.",
                 "security": {"roles": [{"bearerToken": []}],
                              "gateway": [{"gatewaySignature": []}]}.get(rule.kind, []),
                 "parameters": [{"in": "path", "name": p, "required": True,
                                 "schema": {"type": "string"}} for p in path_parameters]
                 + [{"in": "query", "name": q, "required": False, "description": text,
                     "schema": {"type": "string"}} for q, text in route.query.items()],
                 "responses": {}}
    if route.body_schema is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": route.body_schema}}}
    answers = {**_ANSWERS_OF_EVERY_ROUTE, **_ANSWERS_BY_RULE.get(rule.kind, {}), **route.answers}
    for status, answer in sorted(answers.items()):
        if isinstance(answer, str) and status < 400:
            operation["responses"][str(status)] = {"description": answer}
        elif isinstance(answer, str):
            operation["responses"][str(status)] = {"description": answer, "content": {
                "application/json": {"schema": ErrorOut}}}
        else:
            operation["responses"][str(status)] = {"description": "OK", "content": {
                "application/json": {"schema": answer}}}
    if not any(status.startswith("2") for status in operation["responses"]):
        operation["responses"]["200"] = {"description": "OK"}
    return operation


@functools.cache
def build(service_class, title: str, description: str = "") -> dict:
    spec = APISpec(title=title, version="1", openapi_version="3.0.3",
                   info={"description": description}, plugins=[MarshmallowPlugin()])
    for scheme, definition in SECURITY_SCHEMES.items():
        spec.components.security_scheme(scheme, definition)
    for name, route in routes(service_class):
        path = _PATH_PARAMETER.sub(r"{\1}", route.url)
        rule = access_rule(service_class, name)
        operations = {verb.lower(): _operation(name, route, _PATH_PARAMETER.findall(route.url),
                                               rule)
                      for verb in route.method.split(",")}
        spec.path(path=path, operations=operations)
    return spec.to_dict()
