"""Which filters a service sends its store, and from where: what the no-scan test reads
(tests/e2e/test_store_commands.py).

Off unless STORE_COMMAND_LOG names a directory. Then every process writes there one JSON line
per distinct (collection, command, filter shape, call site): the filter's shape keeps its
field names and operators, never its values (no personal data reaches the file). The call
site is the innermost frame in the platform's own code outside the store layer, so a finding
names the line to change.

The embedded store scans the whole collection for a filter with a top-level $or/$and, or one
no index leads with (../shared/design/architecture.md, the store facts): a query instant on
500 learners costs seconds on 50,000. Only a record of what the services really send, checked
against the indexes they really have, finds every such filter.
"""
import json
import os
import threading
import traceback
from pathlib import Path

from pymongo import monitoring

# where each command keeps its filter(s)
FILTERS = {"find": "filter", "count": "query", "distinct": "query", "findAndModify": "query",
           "update": "updates", "delete": "deletes", "aggregate": "pipeline"}
# frames of these are the store layer, not the caller
_LAYER = ("/pymongo/", "/hocvu/store.py", "/hocvu/groupwrite.py", "/hocvu/storewatch.py",
          "/eventlet/", "/nameko/", "/threading.py")
_ROOT = Path(__file__).resolve().parents[1]


def shape(value):
    """The filter with its values replaced: field names, operators and their nesting."""
    if isinstance(value, dict):
        return {key: (shape(inner) if key.startswith("$") or isinstance(inner, dict) else "=")
                for key, inner in value.items()}
    if isinstance(value, list):
        shapes = [shape(item) for item in value if isinstance(item, dict)]
        return shapes or "[]"
    return "="


def filters_of(command_name: str, command: dict) -> list[dict]:
    found = command.get(FILTERS[command_name])
    if command_name in ("update", "delete"):
        return [statement.get("q") or {} for statement in found or []]
    if command_name == "aggregate":
        first = (found or [{}])[0]
        if "$changeStream" in first:
            return []  # the relay's tail of the oplog: no collection is read
        return [first.get("$match") or {}]
    return [found or {}]


def call_site() -> str:
    for frame in reversed(traceback.extract_stack()[:-1]):
        if not any(part in frame.filename for part in _LAYER) and \
                frame.filename.startswith(str(_ROOT)):
            return f"{Path(frame.filename).relative_to(_ROOT)}:{frame.lineno} {frame.name}"
    return "unknown"


class CommandLog(monitoring.CommandListener):
    def __init__(self, directory: str, service: str):
        self.path = Path(directory) / f"{service}-{os.getpid()}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.service = service
        self._seen = set()
        self._lock = threading.Lock()

    def started(self, event):
        if event.command_name not in FILTERS:
            return
        collection = event.command.get(event.command_name)
        site = call_site()
        for found in filters_of(event.command_name, event.command):
            line = {"service": self.service, "database": event.database_name,
                    "collection": collection, "command": event.command_name,
                    "filter": shape(found), "site": site}
            key = json.dumps(line, sort_keys=True)
            with self._lock:
                if key in self._seen:
                    continue
                self._seen.add(key)
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(key + "\n")

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def listeners(config: dict, service: str) -> list:
    directory = str(config.get("STORE_COMMAND_LOG") or "")
    return [CommandLog(directory, service)] if directory else []
