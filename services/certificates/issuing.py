"""Issuing a certificate for a completed course: exactly one per enrollment."""
import uuid
from datetime import datetime

from hocvu.store import Transaction
from services.certificates.domain import (VALID, display_code, new_verification_code,
                                         serial_number)


def issue(tx: Transaction, completion: dict, correlation_id: str, verify_url: str,
          now: datetime) -> dict | None:
    """Issue the enrollment's certificate, or return None if it already has one."""
    if tx["certificates"].find_one({"enrollment_id": completion["enrollment_id"]},
                                   projection={"_id": 1}):
        return None
    year = now.year
    counter = tx["counters"].find_one_and_update(
        {"_id": f"serial-{completion['province_code']}-{year}"}, {"$inc": {"value": 1}},
        upsert=True, return_document=True)
    code = new_verification_code()
    certificate = {
        "_id": str(uuid.uuid4()),
        "serial": serial_number(completion["province_code"], year, counter["value"]),
        "verification_code": code,
        "status": VALID,
        "issued_at": now,
        "correlation_id": correlation_id,
        **{key: completion[key] for key in (
            "enrollment_id", "learner_id", "course_id", "course_title", "full_name",
            "group", "province_code", "commune_code")},
        "learner_subject": completion.get("learner_subject"),
    }
    tx["certificates"].insert_one(certificate)
    tx.publish("certificate_issued", {
        "certificate_id": certificate["_id"], "serial": certificate["serial"],
        "verification_code": display_code(code), "verify_url": verify_url.format(code=code),
        **{key: certificate[key] for key in (
            "enrollment_id", "learner_id", "course_id", "course_title", "full_name",
            "issued_at", "province_code", "commune_code", "learner_subject")}}, correlation_id)
    return certificate
