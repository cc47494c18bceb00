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

from hocvu.http import JsonHttpEntrypoint

_PATH_PARAMETER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


class ErrorOut(Schema):
    error = fields.String(metadata={"example": "VALIDATION_ERROR"})
    message = fields.String()
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


def routes(service_class) -> list[tuple[str, JsonHttpEntrypoint]]:
    found = []
    for name, member in inspect.getmembers(service_class, inspect.isfunction):
        for extension in getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(extension, JsonHttpEntrypoint):
                found.append((name, extension))
    return sorted(found, key=lambda item: (item[1].url, item[1].method))


def _operation(name: str, route: JsonHttpEntrypoint, path_parameters: list[str]) -> dict:
    operation = {"operationId": name, "summary": route.summary or name.replace("_", " "),
                 "parameters": [{"in": "path", "name": p, "required": True,
                                 "schema": {"type": "string"}} for p in path_parameters]
                 + [{"in": "query", "name": q, "required": False, "description": text,
                     "schema": {"type": "string"}} for q, text in route.query.items()],
                 "responses": {}}
    if route.body_schema is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": route.body_schema}}}
    for status, answer in route.answers.items():
        if isinstance(answer, str) and status < 400:
            operation["responses"][str(status)] = {"description": answer}
        elif isinstance(answer, str):
            operation["responses"][str(status)] = {"description": answer, "content": {
                "application/json": {"schema": ErrorOut}}}
        else:
            operation["responses"][str(status)] = {"description": "OK", "content": {
                "application/json": {"schema": answer}}}
    if not operation["responses"]:
        operation["responses"]["200"] = {"description": "OK"}
    return operation


@functools.cache
def build(service_class, title: str, description: str = "") -> dict:
    spec = APISpec(title=title, version="1", openapi_version="3.0.3",
                   info={"description": description}, plugins=[MarshmallowPlugin()])
    for name, route in routes(service_class):
        path = _PATH_PARAMETER.sub(r"{\1}", route.url)
        operations = {verb.lower(): _operation(name, route, _PATH_PARAMETER.findall(route.url))
                      for verb in route.method.split(",")}
        spec.path(path=path, operations=operations)
    return spec.to_dict()
