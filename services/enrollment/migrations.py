"""Changes to data stored by earlier releases, applied once at start: each that finished is
recorded in `migrations`, so later starts cost one read by _id, not a scan."""
import logging

from hocvu import auth
from hocvu.clock import utcnow
from hocvu.privacy import mask_phone

log = logging.getLogger(__name__)


def forget_clear_phones(db, subject_key: bytes) -> int:
    """The first release kept learners' phone numbers in clear, in `learners` and in the
    learner_contact_registered events of the outbox. Keep only the mask and the sign-in
    subject instead, and strip the number from stored events (notifications has it)."""
    if db.migrations.find_one({"_id": "forget_clear_phones"}, projection={"_id": 1}):
        return 0
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
    # another instance may finish the same migration at once: both records say the same
    db.migrations.update_one({"_id": "forget_clear_phones"},
                             {"$set": {"done_at": utcnow()}}, upsert=True)
    return changed
