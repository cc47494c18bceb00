"""Issuing a certificate for a completed course: exactly one per enrollment."""
import uuid
from datetime import datetime

from hocvu.events import new_event
from hocvu.outbox import with_events
from hocvu.store import Store, insert_once
from services.certificates.domain import (VALID, display_code, new_verification_code,
                                         serial_number)


def issue(store: Store, completion: dict, correlation_id: str, verify_url: str,
          now: datetime) -> dict | None:
    """Issue the enrollment's certificate, or return None if it already has one.

    The serial comes from a counter document, then the certificate carrying its event is
    inserted: two writes without a transaction. If the second never happens (a crash, or a
    redelivery finding the certificate already issued), a serial number is skipped, which a
    gap in the sequence shows honestly and nothing relies on."""
    certificates = store.db.certificates
    for _ in range(5):
        if certificates.find_one({"enrollment_id": completion["enrollment_id"]},
                                 projection={"_id": 1}):
            return None
        year = now.year
        sequence = store.next_value(f"serial-{completion['province_code']}-{year}")
        code = new_verification_code()
        certificate = {
            "_id": str(uuid.uuid4()),
            "serial": serial_number(completion["province_code"], year, sequence),
            "verification_code": code,
            "status": VALID,
            "issued_at": now,
            "correlation_id": correlation_id,
            **{key: completion[key] for key in (
                "enrollment_id", "learner_id", "course_id", "course_title", "full_name",
                "group", "province_code", "commune_code")},
            "learner_subject": completion.get("learner_subject"),
        }
        issued = new_event("certificate_issued", {
            "certificate_id": certificate["_id"], "serial": certificate["serial"],
            "verification_code": display_code(code), "verify_url": verify_url.format(code=code),
            **{key: certificate[key] for key in (
                "enrollment_id", "learner_id", "course_id", "course_title", "full_name",
                "issued_at", "province_code", "commune_code", "learner_subject")}},
            correlation_id)
        # unique: the enrollment (a concurrent redelivery issued it: found above next time),
        # the serial (the embedded store's counter may hand one out twice: take another)
        if insert_once(certificates, with_events(certificate, [issued])):
            return certificate
    raise RuntimeError(f"could not issue a certificate for {completion['enrollment_id']}")
