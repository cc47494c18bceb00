"""Old outbox and inbox records are purged once an hour through plain indexes, against a real
SecantusDB; a store that still has the inbox's old TTL index gets the plain one instead."""
from datetime import timedelta

import pymongo
import pytest

from hocvu.clock import utcnow
from hocvu.outbox import PENDING, SENT, OutboxRelay, prepare_outbox
from hocvu.store import INBOX, Store

pytestmark = pytest.mark.integration


@pytest.fixture
def store(service_config):
    config = service_config("lessons")
    client = pymongo.MongoClient(config["MONGO_URI"], tz_aware=True)
    db = client[config["MONGO_DATABASE"]]
    db[INBOX].create_index("processed_at", expireAfterSeconds=30 * 24 * 3600)  # as before
    prepare_outbox(db)
    store = Store(client, config["MONGO_DATABASE"], "lessons",
                  OutboxRelay(db, "lessons", config))
    store.ensure_inbox(retention=timedelta(days=30))
    yield store
    client.close()


def test_the_inbox_keeps_no_ttl_index(store):
    index = store.db[INBOX].index_information()["processed_at_1"]
    assert "expireAfterSeconds" not in index


def test_old_records_go_once_an_hour_and_recent_ones_stay(store):
    now = utcnow()
    inbox, outbox = store.db[INBOX], store.db[OutboxRelay.COLLECTION]
    inbox.insert_many([{"_id": "old", "processed_at": now - timedelta(days=31)},
                       {"_id": "recent", "processed_at": now - timedelta(days=29)}])
    outbox.insert_many([
        {"_id": "sent-old", "status": SENT, "next_attempt_at": now - timedelta(days=8)},
        {"_id": "sent-recent", "status": SENT, "next_attempt_at": now - timedelta(days=6)},
        {"_id": "pending-old", "status": PENDING, "next_attempt_at": now - timedelta(days=8)}])
    housekeeping = store.relay.housekeeping

    assert housekeeping.run_when_due(now) == 2
    assert sorted(d["_id"] for d in inbox.find()) == ["recent"]
    assert sorted(d["_id"] for d in outbox.find()) == ["pending-old", "sent-recent"]

    inbox.insert_one({"_id": "old-again", "processed_at": now - timedelta(days=40)})
    assert housekeeping.run_when_due(now + timedelta(minutes=59)) == 0
    assert housekeeping.run_when_due(now + timedelta(minutes=60)) == 1
    assert inbox.count_documents({"_id": "old-again"}) == 0
