"""No filter the services send their stores scans a collection that grows.

The embedded store reads a collection through an index only when a top-level field of the
filter leads one of its indexes (or is _id), and never for a top-level $or/$and/$nor/$expr
(../shared/design/architecture.md, the store facts): such a filter costs in proportion to the
collection, so the launch morning's backlog makes every call slower than the last. Every
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


def leading_fields(platform) -> dict[tuple[str, str], set[str]]:
    """(database, collection) -> the fields its indexes lead with, _id among them."""
    leading = defaultdict(lambda: {"_id"})
    for service, uri in platform.settings.mongo_uris.items():
        with pymongo.MongoClient(uri) as client:
            database = client[f"{platform.settings.database_prefix}{service}"]
            for collection in database.list_collection_names():
                for index in database[collection].index_information().values():
                    leading[(database.name, collection)].add(index["key"][0][0])
    return leading


def scans(command: dict, leading: dict) -> str | None:
    """Why this filter would make the store read the whole collection, or None."""
    logical = sorted(key for key in command["filter"] if key in LOGICAL)
    if logical:
        return f"top-level {', '.join(logical)}"
    fields = {key for key in command["filter"] if not key.startswith("$")}
    if not fields & leading[(command["database"], command["collection"])]:
        return f"no index leads with any of {sorted(fields) or 'its (empty) filter'}"
    return None


def test_no_filter_of_a_commune_day_scans_a_collection_that_grows(day):
    platform, log, made = day
    commands = recorded(log)
    # the day did reach every service and each kind of command the hot path sends
    assert {c["service"] for c in commands} == set(platform.settings.mongo_uris)
    assert {"find", "update"} <= {c["command"] for c in commands}
    leading = leading_fields(platform)
    findings = sorted({f"{c['site']}: {c['command']} {c['collection']} "
                       f"{json.dumps(c['filter'], sort_keys=True)}: {why}"
                       for c in commands if c["collection"] not in FIXED_SIZE
                       and c["site"].rsplit(" ", 1)[-1] not in ONCE
                       and (why := scans(c, leading))})
    assert findings == [], "filters that scan:\n" + "\n".join(findings)
