"""Issuing a certificate for a completed course (exactly one per enrollment), and revoking
one. Each write is one document changed with the event it causes, so that it maps onto a
single-document write carrying its events; each is idempotent on its own (the unique
enrollment_id, a conditional update on the status)."""
import uuid
from datetime import datetime
from typing import Callable

from hocvu.auth import Principal
from hocvu.http import NotFound
from hocvu.store import Transaction
from services.certificates.domain import REVOKED, VALID, display_code, serial_number


def issue(tx: Transaction, completion: dict, correlation_id: str, verify_url: str,
          new_code: Callable[[], str], now: datetime) -> dict | None:
    """Issue the enrollment's certificate, or return None if it already has one, or if the
    enrollment was cancelled (cancellations.py) before the course was completed."""
    if tx["certificates"].find_one({"enrollment_id": completion["enrollment_id"]},
                                   projection={"_id": 1}):
        return None
    cancellation = tx["cancellations"].find_one({"_id": completion["enrollment_id"]})
    if cancellation and cancellation["cancelled_at"] <= completion["completed_at"]:
        return None
    year = now.year
    counter = tx["counters"].find_one_and_update(
        {"_id": f"serial-{completion['province_code']}-{year}"}, {"$inc": {"value": 1}},
        upsert=True, return_document=True)
    code = new_code()
    certificate = {
        "_id": str(uuid.uuid4()),
        "serial": serial_number(completion["province_code"], year, counter["value"]),
        "verification_code": code,
        "status": VALID,
        "issued_at": now,
        "completed_at": completion["completed_at"],
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


def find_for(tx: Transaction, certificate_id: str, caller: Principal) -> dict:
    """The certificate if the caller may act on it (a province admin: their province); 404
    otherwise, as if it did not exist."""
    certificate = tx["certificates"].find_one({"_id": certificate_id})
    if certificate is None or not caller.covers(certificate["province_code"],
                                                certificate["commune_code"]):
        raise NotFound(f"no certificate {certificate_id}")
    return certificate


def revoke(tx: Transaction, certificate: dict, reason: str, revoked_by: str,
           now: datetime) -> dict:
    """Revoke a valid certificate and announce it; a revoked one is returned unchanged (a
    second revocation keeps the first one's time and reason, and announces nothing)."""
    if certificate["status"] == REVOKED:
        return certificate
    change = {"status": REVOKED, "revoked_at": now, "revocation_reason": reason,
              "revoked_by": revoked_by}
    updated = tx["certificates"].update_one({"_id": certificate["_id"], "status": VALID},
                                            {"$set": change})
    if not updated.modified_count:
        return tx["certificates"].find_one({"_id": certificate["_id"]})
    revoked = {**certificate, **change}
    tx.publish("certificate_revoked", {
        "certificate_id": revoked["_id"], "reason": reason, "revoked_at": now,
        **{key: revoked[key] for key in (
            "enrollment_id", "learner_id", "course_id", "serial", "full_name", "course_title",
            "group", "province_code", "commune_code", "learner_subject")}},
        revoked.get("correlation_id") or revoked["_id"])
    return revoked
