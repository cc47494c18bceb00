"""What expires, per store profile, against a real SecantusDB: on the embedded store an hourly
purge through a plain index; on MongoDB a TTL index. Switching profile swaps the index. Also
the store layer's counters, and its reads by _id a page at a time."""
from datetime import timedelta

import pymongo
import pytest

from hocvu.clock import utcnow
from hocvu.store import Store, find_by_ids
from hocvu.storeprofile import EMBEDDED, MONGODB, StoreProfile

pytestmark = pytest.mark.integration


@pytest.fixture
def client(service_config):
    config = service_config("identity")
    client = pymongo.MongoClient(config["MONGO_URI"], tz_aware=True)
    yield client, config["MONGO_DATABASE"]
    client.close()


def store_with(client, profile: str) -> Store:
    client, database = client
    return Store(client, database, "identity", relay=None, profile=StoreProfile(profile))


def test_the_embedded_profile_purges_hourly_through_a_plain_index(client):
    store = store_with(client, EMBEDDED)
    store.expire("sign_in_attempts", "updated_at", keep=timedelta(days=1))
    assert "expireAfterSeconds" not in store.db.sign_in_attempts.index_information()[
        "updated_at_1"]
    now = utcnow()
    attempts = store.db.sign_in_attempts
    attempts.insert_many([{"_id": "old", "updated_at": now - timedelta(days=2)},
                          {"_id": "recent", "updated_at": now - timedelta(hours=23)}])

    assert store.housekeeping.run_when_due(now) == 1
    assert [d["_id"] for d in attempts.find()] == ["recent"]
    attempts.insert_one({"_id": "old-again", "updated_at": now - timedelta(days=3)})
    assert store.housekeeping.run_when_due(now + timedelta(minutes=59)) == 0
    assert store.housekeeping.run_when_due(now + timedelta(minutes=60)) == 1


def test_the_mongodb_profile_uses_a_ttl_index_and_switching_swaps_it(client):
    mongodb = store_with(client, MONGODB)
    mongodb.expire("sign_in_attempts", "updated_at", keep=timedelta(days=1))
    index = mongodb.db.sign_in_attempts.index_information()["updated_at_1"]
    assert index["expireAfterSeconds"] == 86400
    assert not mongodb.housekeeping.rules

    embedded = store_with(client, EMBEDDED)
    embedded.expire("sign_in_attempts", "updated_at", keep=timedelta(days=1))
    assert "expireAfterSeconds" not in embedded.db.sign_in_attempts.index_information()[
        "updated_at_1"]


def test_counters_count_on_both_profiles(client):
    for profile in (EMBEDDED, MONGODB):
        store = store_with(client, profile)
        assert [store.next_value(f"serial-{profile}") for _ in range(3)] == [1, 2, 3]
        # a class's serials at once: the values 4 to 8 are the caller's
        assert store.next_value(f"serial-{profile}", 5) == 8
        assert store.next_value(f"serial-{profile}-new", 5) == 5


def test_concurrent_callers_never_share_a_counter_value(client):
    from concurrent.futures import ThreadPoolExecutor
    store = store_with(client, EMBEDDED)
    with ThreadPoolExecutor(10) as pool:
        values = list(pool.map(lambda _: store.next_value("serial-concurrent"), range(200)))
    assert sorted(values) == list(range(1, 201))


def test_documents_are_read_by_id_a_page_at_a_time_in_the_order_asked(client):
    store = store_with(client, EMBEDDED)
    chunks = store.db.find_by_ids_chunks
    chunks.insert_many([{"_id": f"job:{n:05d}", "n": n} for n in range(7)])
    asked = ["job:00005", "job:00000", "nowhere", "job:00003", "job:00006", "job:00001"]

    found = list(find_by_ids(chunks, asked, {"n": 1}, at_once=2))

    assert [d["_id"] for d in found] == [i for i in asked if i != "nowhere"]
    assert [d["n"] for d in found] == [5, 0, 3, 6, 1]
