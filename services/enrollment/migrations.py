"""Changes to data stored by earlier releases, applied at start (idempotent, cheap when done)."""
import logging

from hocvu import auth
from hocvu.privacy import mask_phone

log = logging.getLogger(__name__)


def drop_index_if_present(collection, name: str) -> None:
    if name in collection.index_information():
        collection.drop_index(name)


def forget_clear_phones(db, subject_key: bytes) -> int:
    """The first release kept learners' phone numbers in clear, in `learners` and in the
    learner_contact_registered events of the outbox. Keep only the mask and the sign-in
    subject instead, and strip the number from stored events (notifications has it)."""
    changed = 0
    for learner in db.learners.find({"phone": {"$exists": True}}, projection={"phone": 1}):
        db.learners.update_one({"_id": learner["_id"]}, {
            "$set": {"phone_masked": mask_phone(learner["phone"]),
                     "subject": auth.learner_subject(learner["phone"], subject_key)},
            "$unset": {"phone": ""}})
        changed += 1
    stripped = db.outbox.update_many(
        {"event_type": "learner_contact_registered", "status": "sent",
         "payload.data.phone": {"$exists": True}},
        {"$unset": {"payload.data.phone": ""}}).modified_count
    if changed or stripped:
        log.info("removed phone numbers kept in clear: %s learners, %s sent events",
                 changed, stripped)
    return changed
