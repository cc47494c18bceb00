"""No filter the services send their stores scans a collection that grows.

The embedded store reads a collection through an index only when a top-level field of the
filter leads one of its indexes (or is _id), and never for a top-level $or/$and/$nor/$expr
(../shared/design/architecture.md, the store facts): such a filter costs in proportion to the
collection, so the launch morning's backlog makes every call slower than the last. Nor is a
filter served whole by an index unless the index holds every field of it (equalities, then at
most one range): otherwise the store looks up one field's clause alone and decodes all it
matches, and a clause on a field of a handful of values (a status, a kind) is most of the
collection: the reminder planner's claim read every reminder state each minute so. Every
process of the platform records the shape and call site of each filter it sends
(hocvu/storewatch.py) through a commune's day of every kind of work; the test reads the
indexes the services made and names each call site that would scan. Counts and shapes only:
it holds on a noisy machine.
"""
import json
import uuid
from collections import defaultdict

import pymongo
import requests
import pytest

from tests.e2e.conftest import running_platform
from tests.support.commune_day import commune_day

pytestmark = pytest.mark.e2e

LOGICAL = ("$or", "$and", "$nor", "$expr")
# collections that hold a fixed handful of documents whatever the number of learners: a scan
# of them costs what a lookup costs
FIXED_SIZE = {
    "relay_state": "one document per service: the relay's lease and resume token",
    "sms_dispatcher": "one document: the SMS dispatcher's lease",
    "catalog": "enrollment's copy of the course catalog: a handful of courses",
    "commune_totals": "reporting: one document per commune, a few hundred in a province",
}
# call sites (by function) that read a whole collection once in a process's or database's
# life, never on the path of a learner's request or event
ONCE = {
    "forget_clear_phones": "enrollment's migration: runs once in a database's life, at start",
    "_publish_legacy_outbox": "a release before the change-stream relay's events, read once",
    "communes_with_facts": "reporting's first sweep after a start, for figures a crash lost",
    "_move_legacy_statuses": "notifications' migration of messages whose status was rewritten "
                             "on them (releases before outcomes): once in a database's life",
}

# fields that hold a handful of values across a collection that grows: a clause on one of them,
# served alone, reads most of the collection
FEW_VALUES = {"status", "kind", "lane", "province_code", "course_id", "group", "template"}
# call sites whose such reads stay within what their caller asked to see
SCOPE_READS = {
    "fetch_page": "a staff page filtered within its scope (a course, an enrollment) reads the "
                  "scope's documents, a province's for a province admin, to check the rest: "
                  "a page request's cost, never a learner's or a loop's (docs/performance.md, "
                  "'Noticed and left alone')",
}

# claims that read the work still waiting, and nothing else: bounded by that work, measured
WAITING_WORK = {
    ("claim_batch", "import_chunks"):
        "the import loop's claim reads the chunks not yet taken (a chunk is 51 to 100 rows): "
        "70-80 ms a claim with 1,018 files waiting, 0.2 ms of the store per learner over "
        "their drain (docs/performance.md, 'Noticed and left alone')",
}


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    base = tmp_path_factory.mktemp("store-commands")
    log = base / "commands"
    # the background jobs come round within the day, not once an hour
    service_env = {"STORE_COMMAND_LOG": str(log), "SMS_RECONCILE_POLL_SECONDS": "1",
                   "REMINDER_POLL_SECONDS": "1", "SWEEP_SECONDS": "2"}
    with running_platform(base, f"cmd_{uuid.uuid4().hex[:8]}_",
                          service_env=service_env) as platform:
        made = commune_day(platform)
        for service in platform.settings.mongo_uris:  # each service's gauges read too
            assert requests.get(platform.url_direct(service, "metrics")).ok
        yield platform, log, made


def recorded(log) -> list[dict]:
    lines = [json.loads(line) for path in sorted(log.glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines, "no process wrote its store commands"
    return lines


def indexes_of(platform) -> dict[tuple[str, str], list[list[str]]]:
    """(database, collection) -> each index's fields, in order; _id's own among them."""
    found = defaultdict(lambda: [["_id"]])
    for service, uri in platform.settings.mongo_uris.items():
        with pymongo.MongoClient(uri) as client:
            database = client[f"{platform.settings.database_prefix}{service}"]
            for collection in database.list_collection_names():
                for index in database[collection].index_information().values():
                    found[(database.name, collection)].append([key for key, _ in index["key"]])
    return found


# operators the embedded store walks an index with; any other ($ne, $exists, $regex...) in a
# clause keeps that clause off the index
RANGE_OPS = {"$eq", "$gt", "$gte", "$lt", "$lte", "$in"}
ID_OPS = {"$eq", "$in"}


def index_path(shape: dict, indexes: list[list[str]]) -> str | None:
    """How the embedded store reads a filter of this shape (its planner, secantus/storage.py
    `_try_index_id_keys`, as measured): "whole" when one index serves every field of it (the
    fields of a compound index's equality prefix and at most one range after them), else the
    one field whose clause it looks up alone and checks the rest on each document it decoded
    (the first field, in the filter's order, that leads an index), or None: every document."""
    fields = list(shape)
    operators = {field: set(shape[field]) if isinstance(shape[field], dict) else {"$eq"}
                 for field in fields}
    bare = [field for field in fields if not isinstance(shape[field], dict)]
    ranged = [field for field in fields if isinstance(shape[field], dict)]
    walkable = {field for field in fields if operators[field] <= RANGE_OPS}
    if len(bare) == len(fields) and any(set(index[:len(fields)]) == set(fields)
                                        for index in indexes):
        return "whole"
    if len(ranged) == 1 and ranged[0] in walkable and any(
            len(index) > len(bare) and set(index[:len(bare)]) == set(bare)
            and index[len(bare)] == ranged[0] for index in indexes):
        return "whole"
    for field in fields:
        # _id's own index is looked up by value only: a range of _id alone reads every document
        if field == "_id" and not operators[field] <= ID_OPS:
            continue
        if field in walkable and any(index[0] == field for index in indexes):
            return "whole" if len(fields) == 1 else field
    return None


def scans(command: dict, indexes: dict) -> str | None:
    """Why this filter would make the store read more than what it matches, or None."""
    logical = sorted(key for key in command["filter"] if key in LOGICAL)
    if logical:
        return f"top-level {', '.join(logical)}"
    path = index_path(command["filter"], indexes[(command["database"], command["collection"])])
    if path is None:
        return f"no index serves any of {sorted(command['filter']) or 'its (empty) filter'}"
    site = command["site"].rsplit(" ", 1)[-1]
    if path in FEW_VALUES and site not in SCOPE_READS \
            and (site, command["collection"]) not in WAITING_WORK:
        return (f"no index serves the whole filter: it reads every document whose `{path}` "
                f"matches, then checks the rest")
    return None


def test_no_filter_of_a_commune_day_scans_a_collection_that_grows(day):
    platform, log, made = day
    commands = recorded(log)
    # the day did reach every service and each kind of command the hot path sends
    assert {c["service"] for c in commands} == set(platform.settings.mongo_uris)
    assert {"find", "update"} <= {c["command"] for c in commands}
    indexes = indexes_of(platform)
    findings = sorted({f"{c['site']}: {c['command']} {c['collection']} "
                       f"{json.dumps(c['filter'], sort_keys=True)}: {why}"
                       for c in commands if c["collection"] not in FIXED_SIZE
                       and c["site"].rsplit(" ", 1)[-1] not in ONCE
                       and (why := scans(c, indexes))})
    assert findings == [], "filters that scan:\n" + "\n".join(findings)
