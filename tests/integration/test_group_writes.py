"""hocvu.groupwrite against the real store: inserts handed in while a write is on its way
go together in the next one, and each caller hears its own document's outcome."""
import threading
import uuid

import pytest
from pymongo import MongoClient
from bson.errors import InvalidDocument
from pymongo.errors import DuplicateKeyError

from hocvu.groupwrite import GroupInserter
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def collection(mongo_uri):
    client = MongoClient(mongo_uri, retryWrites=False)
    coll = client[f"groupwrite_{uuid.uuid4().hex[:8]}"]["things"]
    coll.create_index("key", unique=True)
    yield coll
    client.drop_database(coll.database.name)
    client.close()


class HeldWrites:
    """The real collection, whose next writes wait until the test lets each go: so the test
    knows which inserts arrive while a write is on its way."""

    def __init__(self, collection):
        self.collection = collection
        self.name = collection.name
        self.holds: list[threading.Event] = []

    def hold_next(self) -> threading.Event:
        gate = threading.Event()
        self.holds.append(gate)
        return gate

    def _wait_if_held(self):
        if self.holds:
            self.holds.pop(0).wait(30)

    def insert_one(self, document):
        self._wait_if_held()
        return self.collection.insert_one(document)

    def insert_many(self, documents, ordered):
        self._wait_if_held()
        return self.collection.insert_many(documents, ordered=ordered)


def insert_in_threads(inserter, documents):
    """Insert each document from a thread of its own; {key: the error raised, or None}."""
    outcomes = {}

    def insert(document):
        try:
            inserter.insert(document)
            outcomes[document["key"]] = None
        except Exception as exc:
            outcomes[document["key"]] = exc

    threads = [threading.Thread(target=insert, args=(doc,)) for doc in documents]
    return threads, outcomes


def test_inserts_arriving_during_a_write_go_together_in_the_next(collection):
    held = HeldWrites(collection)
    first_write = held.hold_next()
    inserter = GroupInserter(held, in_flight=1)
    documents = [{"_id": f"d{i}", "key": f"k{i}"} for i in range(20)]
    threads, outcomes = insert_in_threads(inserter, documents)
    threads[0].start()
    wait_for(lambda: inserter.batches == 1, what="the first write under way")
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: len(inserter._waiting) == 19, what="19 inserts waiting")
    first_write.set()
    for thread in threads:
        thread.join(30)
    assert inserter._writers == 0 and inserter._waiting == []

    assert outcomes == {doc["key"]: None for doc in documents}
    assert collection.count_documents({}) == 20
    assert (inserter.batches, inserter.documents) == (2, 20)  # one alone, then 19 together


def test_each_caller_hears_its_own_duplicate(collection):
    collection.insert_one({"_id": "old", "key": "taken"})
    held = HeldWrites(collection)
    first_write = held.hold_next()
    inserter = GroupInserter(held, in_flight=1)
    documents = [{"_id": "first", "key": "first"},
                 {"_id": "a", "key": "fresh-a"},
                 {"_id": "b", "key": "taken"},        # the key exists already
                 {"_id": "c", "key": "fresh-c"},
                 {"_id": "a", "key": "same-id-as-a"},  # a twin in the same batch
                 {"_id": "d", "key": "fresh-d"}]
    threads, outcomes = insert_in_threads(inserter, documents)
    threads[0].start()
    wait_for(lambda: inserter.batches == 1, what="the first write under way")
    for thread in threads[1:]:
        thread.start()
        # one at a time, so that the twin comes after the original in the batch
        wait_for(lambda: thread in threading.enumerate() and
                 len(inserter._waiting) == threads.index(thread), what="waiting in order")
    first_write.set()
    for thread in threads:
        thread.join(30)
    assert inserter._writers == 0 and inserter._waiting == []

    refused = {key for key, error in outcomes.items() if error is not None}
    assert refused == {"taken", "same-id-as-a"}
    assert all(isinstance(outcomes[key], DuplicateKeyError) for key in refused)
    assert sorted(doc["key"] for doc in collection.find()) == [
        "first", "fresh-a", "fresh-c", "fresh-d", "taken"]
    assert inserter.batches == 2


def test_a_write_that_fails_as_a_whole_fails_every_caller_and_the_next_goes_on(collection):
    held = HeldWrites(collection)
    first_write = held.hold_next()
    inserter = GroupInserter(held, in_flight=1)
    documents = [{"_id": "first", "key": "first"},
                 {"_id": "x", "key": "x"},
                 {"_id": "bad", "key": "bad", "value": object()}]  # BSON cannot encode it
    threads, outcomes = insert_in_threads(inserter, documents)
    threads[0].start()
    wait_for(lambda: inserter.batches == 1, what="the first write under way")
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: len(inserter._waiting) == 2, what="two inserts waiting")
    first_write.set()
    for thread in threads:
        thread.join(30)
    assert inserter._writers == 0 and inserter._waiting == []

    assert outcomes["first"] is None
    assert isinstance(outcomes["x"], InvalidDocument)
    assert outcomes["bad"] is outcomes["x"]
    assert sorted(collection.distinct("key")) == ["first"]
    inserter.insert({"_id": "after", "key": "after"})  # the inserter is not stuck
    assert collection.count_documents({"key": "after"}) == 1


def test_with_two_writes_in_flight_the_second_goes_at_once_and_the_rest_wait(collection):
    held = HeldWrites(collection)
    first_write, second_write = held.hold_next(), held.hold_next()
    inserter = GroupInserter(held, in_flight=2)
    documents = [{"_id": f"d{i}", "key": f"k{i}"} for i in range(10)]
    threads, outcomes = insert_in_threads(inserter, documents)
    threads[0].start()
    wait_for(lambda: inserter.batches == 1, what="the first write under way")
    threads[1].start()
    wait_for(lambda: inserter.batches == 2, what="the second write under way beside it")
    for thread in threads[2:]:
        thread.start()
    wait_for(lambda: len(inserter._waiting) == 8, what="8 inserts waiting")
    first_write.set()
    wait_for(lambda: inserter.batches == 3 and not inserter._waiting,
             what="the 8 written together")
    threads[0].join(30)
    assert outcomes.get("k1", "pending") == "pending"  # the second write is still held
    second_write.set()
    for thread in threads:
        thread.join(30)

    assert outcomes == {doc["key"]: None for doc in documents}
    assert collection.count_documents({}) == 10
    assert (inserter.batches, inserter.documents) == (3, 10)  # 1 and 1, then 8 together
    assert inserter._writers == 0 and inserter._waiting == []
