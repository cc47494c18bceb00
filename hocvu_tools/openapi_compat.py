"""Is a new OpenAPI document still compatible with the old one, for the clients of the old?

No well-kept library on PyPI does this (the few OpenAPI diff tools there are new and little
used), so this is a small, focused comparison of the documents hocvu generates (OpenAPI 3.0,
local `$ref`s only). It reports what would break a client written against `old`:
- a path, an operation or a documented 2xx answer removed;
- a request: a parameter or body field newly required, a body newly required, a parameter
  or field's type changed, an enum narrowed, a bound tightened (minLength, maxLength,
  minimum, maximum, pattern changed);
- a response: a field removed, no longer required, newly nullable, its type changed or its
  enum widened.
Additions (new paths, operations, optional inputs, answered fields) are compatible.

`python -m hocvu_tools.openapi_compat OLD_DIR NEW_DIR` compares each `<service>.json` and exits
1 on incompatible changes (tests/unit/test_openapi_documents.py compares the generated documents
with the last release's, docs/openapi/released/).
"""
import json
import sys
from pathlib import Path

_VERBS = ("get", "put", "post", "delete", "patch", "head", "options")
_TIGHTER = {"minLength": "raised", "minimum": "raised", "maxLength": "lowered", "maximum": "lowered"}


def breaking_changes(old: dict, new: dict) -> list[str]:
    found = []
    for path, old_item in old.get("paths", {}).items():
        new_item = new.get("paths", {}).get(path)
        if new_item is None:
            found.append(f"{path}: path removed")
            continue
        for verb in _VERBS:
            if verb not in old_item:
                continue
            where = f"{verb.upper()} {path}"
            if verb not in new_item:
                found.append(f"{where}: operation removed")
                continue
            found += _operation_changes(where, old, old_item[verb], new, new_item[verb])
    return found


def _operation_changes(where: str, old_doc: dict, old: dict, new_doc: dict, new: dict) -> list[str]:
    found = []
    old_params = {(p["in"], p["name"]): p for p in old.get("parameters", [])}
    for key, param in {(p["in"], p["name"]): p for p in new.get("parameters", [])}.items():
        name = f"{where}: {key[0]} parameter {key[1]}"
        before = old_params.get(key)
        if param.get("required") and not (before and before.get("required")):
            found.append(f"{name} newly required")
        if before:
            found += _request_schema_changes(name, old_doc, before.get("schema", {}),
                                             new_doc, param.get("schema", {}))
    old_body, new_body = old.get("requestBody"), new.get("requestBody")
    if new_body and new_body.get("required") and not (old_body and old_body.get("required")):
        found.append(f"{where}: request body newly required")
    if old_body and new_body:
        found += _request_schema_changes(f"{where}: body", old_doc, _json_schema(old_body),
                                         new_doc, _json_schema(new_body))
    for status, answer in old.get("responses", {}).items():
        if status not in new.get("responses", {}):
            if status.startswith("2"):
                found.append(f"{where}: answer {status} removed")
            continue
        old_schema, new_schema = _json_schema(answer), _json_schema(new["responses"][status])
        if old_schema and new_schema:
            found += _response_schema_changes(f"{where}: answer {status}", old_doc, old_schema,
                                              new_doc, new_schema)
    return found


def _request_schema_changes(where, old_doc, old, new_doc, new, depth=0) -> list[str]:
    """What the new schema refuses that the old accepted."""
    old, new = _resolve(old_doc, old), _resolve(new_doc, new)
    found = _type_change(where, old, new)
    if "enum" in new and "enum" not in old:
        found.append(f"{where}: now limited to {new['enum']}")
    elif "enum" in new:
        removed = [value for value in old["enum"] if value not in new["enum"]]
        if removed:
            found.append(f"{where}: no longer accepts {removed}")
    for bound, direction in _TIGHTER.items():
        if bound in new and (bound not in old or _tighter(direction, old[bound], new[bound])):
            found.append(f"{where}: {bound} {direction} to {new[bound]}")
    if new.get("pattern") and new.get("pattern") != old.get("pattern"):
        found.append(f"{where}: pattern changed to {new['pattern']}")
    if old.get("nullable") and not new.get("nullable"):
        found.append(f"{where}: null no longer accepted")
    if depth > 8:
        return found
    new_required = set(new.get("required", [])) - set(old.get("required", []))
    found += [f"{where}.{name}: newly required" for name in sorted(new_required)]
    for name, old_prop in old.get("properties", {}).items():
        new_prop = new.get("properties", {}).get(name)
        if new_prop is not None:
            found += _request_schema_changes(f"{where}.{name}", old_doc, old_prop, new_doc,
                                             new_prop, depth + 1)
    if "items" in old and "items" in new:
        found += _request_schema_changes(f"{where}[]", old_doc, old["items"], new_doc,
                                         new["items"], depth + 1)
    return found


def _response_schema_changes(where, old_doc, old, new_doc, new, depth=0) -> list[str]:
    """What a client of the old answers can no longer count on."""
    old, new = _resolve(old_doc, old), _resolve(new_doc, new)
    found = _type_change(where, old, new)
    if "enum" in new and (set(map(json.dumps, new["enum"]))
                          - set(map(json.dumps, old.get("enum", new["enum"])))):
        found.append(f"{where}: may now be {new['enum']}")
    if new.get("nullable") and not old.get("nullable"):
        found.append(f"{where}: may now be null")
    if depth > 8:
        return found
    for name in sorted(set(old.get("required", [])) - set(new.get("required", []))):
        found.append(f"{where}.{name}: no longer always present")
    for name, old_prop in old.get("properties", {}).items():
        new_prop = new.get("properties", {}).get(name)
        if new_prop is None:
            found.append(f"{where}.{name}: field removed")
        else:
            found += _response_schema_changes(f"{where}.{name}", old_doc, old_prop, new_doc,
                                              new_prop, depth + 1)
    if "items" in old and "items" in new:
        found += _response_schema_changes(f"{where}[]", old_doc, old["items"], new_doc,
                                          new["items"], depth + 1)
    return found


def _type_change(where: str, old: dict, new: dict) -> list[str]:
    if "type" in old and "type" in new and old["type"] != new["type"]:
        return [f"{where}: type {old['type']} became {new['type']}"]
    return []


def _tighter(direction: str, old, new) -> bool:
    return new > old if direction == "raised" else new < old


def _json_schema(holder: dict) -> dict | None:
    return holder.get("content", {}).get("application/json", {}).get("schema")


def _resolve(document: dict, schema: dict) -> dict:
    while isinstance(schema, dict) and "$ref" in schema:
        node = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema or {}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m hocvu_tools.openapi_compat OLD_DIR NEW_DIR", file=sys.stderr)
        return 2
    old_dir, new_dir = map(Path, argv)
    found = []
    for old_path in sorted(old_dir.glob("*.json")):
        new_path = new_dir / old_path.name
        if not new_path.exists():
            found.append(f"{old_path.name}: document removed")
            continue
        found += [f"{old_path.stem}: {change}" for change in breaking_changes(
            json.loads(old_path.read_text("utf-8")), json.loads(new_path.read_text("utf-8")))]
    print("\n".join(found) or "compatible")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
