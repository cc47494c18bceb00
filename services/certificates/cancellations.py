"""What certificates does when an enrollment is cancelled.

Lessons refuses lesson completions once it knows of a cancellation, but the cancellation
and a course_completed cross services on different exchanges: a course completed in the
moment between the cancellation (enrollment) and lessons hearing of it may still be
announced, and its event may reach certificates before or after the cancellation. The rule
that settles it whatever the order of arrival: a course completed at or after the moment of
the cancellation earns no certificate. So certificates keeps a note of each cancellation
(`cancellations`, by enrollment id): issuing checks it (repository.issue), and a certificate
already issued for such a completion is revoked when the note arrives. A course completed
before the cancellation keeps its certificate: the learner finished it.
"""
from datetime import datetime

from services.certificates import repository
from services.certificates.domain import VALID

REASON = "Ghi danh đã bị hủy trước khi hoàn thành khóa học"
SYSTEM = "system:enrollment_cancelled"


def note(db, cancellation: dict, now: datetime) -> None:
    """Record the cancellation once (a redelivery keeps the first note)."""
    db.cancellations.update_one(
        {"_id": cancellation["enrollment_id"]},
        {"$setOnInsert": {"cancelled_at": cancellation["cancelled_at"], "noted_at": now}},
        upsert=True)


def recheck(db, enrollment_ids: list[str], now: datetime) -> None:
    """After issuing: a cancellation noted between issuing's look at the notes and its
    insertion revokes the certificate now (either side then sees the other's write). One
    read for a whole batch; a revocation only where a note is found."""
    for found in db.cancellations.find({"_id": {"$in": list(enrollment_ids)}}):
        revoke_if_completed_after(db, {"enrollment_id": found["_id"],
                                       "cancelled_at": found["cancelled_at"]}, now)


def revoke_if_completed_after(db, cancellation: dict, now: datetime) -> None:
    """Revoke the certificate of a completion that came after the cancellation (written after
    the note: if this step is lost, the redelivered event finds the note and does it)."""
    certificate = db.certificates.find_one({"enrollment_id": cancellation["enrollment_id"],
                                            "status": VALID})
    if certificate and certificate.get("completed_at") and \
            certificate["completed_at"] >= cancellation["cancelled_at"]:
        repository.revoke(db, certificate, REASON, SYSTEM, now)
