"""The committed OpenAPI documents (docs/openapi/) are the ones the code generates, and a
change to them breaks no client of the last release's documents (docs/openapi/released/,
hocvu_tools.openapi_compat)."""
import copy
import json
from pathlib import Path

import pytest

from hocvu_tools.openapi_compat import breaking_changes
from hocvu_tools.openapi_docs import OPERATIONS, RELEASED, render, render_operations, service_classes

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi"
REGENERATE = "regenerate them with `.venv/bin/python -m hocvu_tools.openapi_docs write docs/openapi`"
# A break made on purpose (announced to the clients) is listed here, one reported line a line,
# in the commit that makes it; the release that publishes it empties the file.
ACCEPTED = COMMITTED / "accepted-breaking-changes.txt"


@pytest.mark.parametrize("service", service_classes(), ids=lambda s: s.name)
def test_the_committed_document_is_the_generated_one(service):
    path = COMMITTED / f"{service.name}.json"
    assert path.exists(), f"{path} is missing: {REGENERATE}"
    assert path.read_text("utf-8") == render(service), \
        f"{path} differs from what the code generates: {REGENERATE} and commit them"


@pytest.mark.parametrize("service", service_classes(), ids=lambda s: s.name)
def test_the_committed_operators_document_is_the_generated_one(service):
    path = COMMITTED / OPERATIONS / f"{service.name}.json"
    assert path.exists(), f"{path} is missing: {REGENERATE}"
    assert path.read_text("utf-8") == render_operations(service), \
        f"{path} differs from what the code generates: {REGENERATE} and commit them"


@pytest.mark.parametrize("service", service_classes(), ids=lambda s: s.name)
def test_no_incompatible_change_since_the_last_release(service):
    released = COMMITTED / RELEASED / f"{service.name}.json"
    assert released.exists(), f"{released} is missing: every service has a released document"
    accepted = set(ACCEPTED.read_text("utf-8").splitlines()) if ACCEPTED.exists() else set()
    changes = [change for change in breaking_changes(json.loads(released.read_text("utf-8")),
                                                     json.loads(render(service)))
               if change not in accepted]
    assert not changes, "incompatible API changes since the last release (if meant, announce " \
        f"them and list them in {ACCEPTED.relative_to(ROOT)}):\n" + "\n".join(changes)


# --- the comparison itself -------------------------------------------------------------

DOCUMENT = {
    "paths": {"/api/x/items": {
        "get": {"parameters": [{"in": "query", "name": "limit", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
                "responses": {"200": {"content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Item"}}}}}},
        "post": {"requestBody": {"required": True, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/ItemIn"}}}},
                 "responses": {"201": {"description": "OK"}}}}},
    "components": {"schemas": {
        "Item": {"type": "object", "required": ["id"],
                 "properties": {"id": {"type": "string"}, "status": {"type": "string",
                                                                     "enum": ["a", "b"]},
                                "note": {"type": "string"}}},
        "ItemIn": {"type": "object", "required": ["name"],
                   "properties": {"name": {"type": "string", "maxLength": 50},
                                  "group": {"type": "string", "enum": ["a", "b"]},
                                  "score": {"type": "integer"}}}}},
}


def changed(edit) -> list[str]:
    new = copy.deepcopy(DOCUMENT)
    edit(new)
    return breaking_changes(DOCUMENT, new)


def test_the_same_document_is_compatible():
    assert breaking_changes(DOCUMENT, copy.deepcopy(DOCUMENT)) == []


def test_additions_are_compatible():
    def add(doc):
        doc["paths"]["/api/x/other"] = {"get": {"responses": {}}}
        doc["components"]["schemas"]["Item"]["properties"]["extra"] = {"type": "string"}
        doc["components"]["schemas"]["ItemIn"]["properties"]["optional"] = {"type": "string"}
        doc["components"]["schemas"]["ItemIn"]["properties"]["group"]["enum"].append("c")
        doc["components"]["schemas"]["ItemIn"]["properties"]["name"]["maxLength"] = 80
        doc["paths"]["/api/x/items"]["get"]["responses"]["404"] = {"description": "no"}
    assert changed(add) == []


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["paths"].pop("/api/x/items"), "path removed"),
    (lambda d: d["paths"]["/api/x/items"].pop("post"), "operation removed"),
    (lambda d: d["paths"]["/api/x/items"]["get"]["responses"].pop("200"), "answer 200 removed"),
    (lambda d: d["components"]["schemas"]["Item"]["properties"].pop("note"), "note: field removed"),
    (lambda d: d["components"]["schemas"]["Item"]["required"].clear(), "id: no longer always present"),
    (lambda d: d["components"]["schemas"]["Item"]["properties"]["status"]["enum"].append("c"),
     "status: may now be"),
    (lambda d: d["components"]["schemas"]["Item"]["properties"]["id"].update(nullable=True),
     "id: may now be null"),
    (lambda d: d["components"]["schemas"]["ItemIn"]["required"].append("score"),
     "score: newly required"),
    (lambda d: d["components"]["schemas"]["ItemIn"]["properties"]["group"]["enum"].remove("b"),
     "group: no longer accepts ['b']"),
    (lambda d: d["components"]["schemas"]["ItemIn"]["properties"]["score"].update(enum=[1]),
     "score: now limited to [1]"),
    (lambda d: d["components"]["schemas"]["ItemIn"]["properties"]["name"].update(maxLength=20),
     "name: maxLength lowered to 20"),
    (lambda d: d["components"]["schemas"]["ItemIn"]["properties"]["name"].update(pattern="^a"),
     "name: pattern changed"),
    (lambda d: d["components"]["schemas"]["ItemIn"]["properties"]["score"].update(type="string"),
     "score: type integer became string"),
    (lambda d: d["paths"]["/api/x/items"]["get"]["parameters"][0].update(required=True),
     "query parameter limit newly required"),
    (lambda d: d["paths"]["/api/x/items"]["get"]["parameters"][0]["schema"].update(maximum=50),
     "maximum lowered to 50"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_an_incompatible_change_is_reported(edit, expected):
    found = changed(edit)
    assert any(expected in change for change in found), found


def test_an_optional_body_made_required_is_reported():
    old = copy.deepcopy(DOCUMENT)
    old["paths"]["/api/x/items"]["post"]["requestBody"]["required"] = False
    assert any("request body newly required" in change
               for change in breaking_changes(old, DOCUMENT))
