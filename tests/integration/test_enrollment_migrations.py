"""enrollment forgets the phone numbers the first release kept in clear, once."""
import uuid

import pymongo
import pytest

from hocvu import auth
from services.enrollment.migrations import forget_clear_phones

pytestmark = pytest.mark.integration
KEY = b"k" * 32


def test_clear_numbers_become_masks_and_subjects_once(mongo_uri):
    client = pymongo.MongoClient(mongo_uri)
    db = client[f"test_{uuid.uuid4().hex[:8]}_enrollment"]
    db.learners.insert_one({"_id": "l1", "full_name": "Lê Văn A", "phone": "+84912345678"})
    db.outbox.insert_one({"_id": "e1", "event_type": "learner_contact_registered",
                          "status": "sent", "payload": {"data": {"phone": "+84912345678"}}})
    assert forget_clear_phones(db, KEY) == 1
    learner = db.learners.find_one({"_id": "l1"})
    assert "phone" not in learner and learner["phone_masked"] == "+84*****5678"
    assert learner["subject"] == auth.learner_subject("+84912345678", KEY)
    assert "phone" not in db.outbox.find_one({"_id": "e1"})["payload"]["data"]
    # done once: a learner stored in clear afterwards (it cannot be) is not looked for again
    db.learners.insert_one({"_id": "l2", "phone": "+84987654321"})
    assert forget_clear_phones(db, KEY) == 0
    client.drop_database(db.name)
    client.close()
