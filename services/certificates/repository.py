"""certificates' store: issuing a certificate for a completed course (exactly one per
enrollment), revoking one, and finding those a caller may see, print or verify. Each change
is a single-document write carrying the event it causes, idempotent on its own (the unique
enrollment_id, a write conditional on the status)."""
import uuid
from collections import Counter
from datetime import datetime
from typing import Callable

from pymongo import ASCENDING

from hocvu import pagination
from hocvu.auth import Principal
from hocvu.clock import isoformat
from hocvu.events import new_event
from hocvu.http import Conflict, NotFound
from hocvu.outbox import set_events, with_events
from hocvu.store import Store, insert_many_once, insert_once
from services.certificates.domain import REVOKED, VALID, display_code, serial_number


def prepare(store: Store) -> None:
    db = store.db
    store.ensure_collections("certificates", "counters", "cancellations")
    db.certificates.create_index("enrollment_id", unique=True)
    db.certificates.create_index("verification_code", unique=True)
    db.certificates.create_index("serial", unique=True)
    db.certificates.create_index([("learner_id", ASCENDING), ("issued_at", ASCENDING)])
    db.certificates.create_index([("commune_code", ASCENDING), ("issued_at", ASCENDING)])
    # a province admin's pages (scope: the province only): else each page reads them all
    db.certificates.create_index([("province_code", ASCENDING), ("issued_at", ASCENDING)])
    db.certificates.create_index([("learner_subject", ASCENDING), ("issued_at", ASCENDING)])


class CertificateRevoked(Conflict):
    code = "CERTIFICATE_REVOKED"


def issue(store: Store, completion: dict, correlation_id: str, verify_url: str,
          new_code: Callable[[], str], now: datetime) -> dict | None:
    """Issue the enrollment's certificate, or return None if it already has one, or if the
    enrollment was cancelled (cancellations.py) at or before the course's completion.

    The serial comes from a counter document, then the certificate carrying its event is
    inserted: two writes without a transaction. If the second never happens (a crash, or a
    redelivery finding the certificate already issued), a serial number is skipped, which a
    gap in the sequence shows honestly and nothing relies on."""
    certificates = store.db.certificates
    for _ in range(5):
        if certificates.find_one({"enrollment_id": completion["enrollment_id"]},
                                 projection={"_id": 1}):
            return None
        cancellation = store.db.cancellations.find_one({"_id": completion["enrollment_id"]})
        if cancellation and cancellation["cancelled_at"] <= completion["completed_at"]:
            return None
        [serial] = _serials(store, [completion], now.year)
        certificate = _certificate(completion, correlation_id, serial, new_code(), verify_url,
                                   now)
        # unique: the enrollment (a concurrent redelivery issued it: found above next time),
        # the serial (should a counter ever hand one out twice, take another),
        # the code (60 random bits: a collision is next to impossible; take another)
        if insert_once(certificates, certificate):
            return certificate
    raise RuntimeError(f"could not issue a certificate for {completion['enrollment_id']}")


def issue_many(store: Store, completions: list[tuple[dict, str]], verify_url: str,
               new_code: Callable[[], str], now: datetime) -> list[int]:
    """`issue` for many (completion, correlation id) at once, in as many store commands for
    a class of 200 as for one: a read of those already issued, a read of the cancellations,
    a counter write per province, one insert. Returns the positions already issued (a
    redelivery). One whose insertion meets a duplicate (a concurrent redelivery, a serial or
    a code taken) goes the single way, which settles it."""
    db = store.db
    ids = [completion["enrollment_id"] for completion, _ in completions]
    issued = {doc["enrollment_id"] for doc in db.certificates.find(
        {"enrollment_id": {"$in": ids}}, projection={"enrollment_id": 1})}
    cancelled = {doc["_id"]: doc["cancelled_at"]
                 for doc in db.cancellations.find({"_id": {"$in": ids}})}
    already, wanted = [], []
    for position, (completion, correlation_id) in enumerate(completions):
        enrollment_id = completion["enrollment_id"]
        if enrollment_id in issued:
            already.append(position)  # by an earlier delivery, or earlier in this batch
        elif enrollment_id in cancelled and \
                cancelled[enrollment_id] <= completion["completed_at"]:
            continue  # cancelled at or before the completion: no certificate
        else:
            issued.add(enrollment_id)
            wanted.append((completion, correlation_id))
    serials = _serials(store, [completion for completion, _ in wanted], now.year)
    certificates = [_certificate(completion, correlation_id, serial, new_code(), verify_url, now)
                    for (completion, correlation_id), serial in zip(wanted, serials)]
    for position in sorted(insert_many_once(db.certificates, certificates)):
        issue(store, *wanted[position], verify_url, new_code, now)
    return already


def _serials(store: Store, completions: list[dict], year: int) -> list[str]:
    """A serial number for each completion, from one counter write per province."""
    wanted = Counter(completion["province_code"] for completion in completions)
    last = {province: store.next_value(f"serial-{province}-{year}", count) - count
            for province, count in wanted.items()}
    serials = []
    for completion in completions:
        last[completion["province_code"]] += 1
        serials.append(serial_number(completion["province_code"], year,
                                     last[completion["province_code"]]))
    return serials


def _certificate(completion: dict, correlation_id: str, serial: str, code: str,
                 verify_url: str, now: datetime) -> dict:
    """The certificate document, carrying the certificate_issued event it causes."""
    certificate = {
        "_id": str(uuid.uuid4()),
        "serial": serial,
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
    issued = new_event("certificate_issued", {
        "certificate_id": certificate["_id"], "serial": certificate["serial"],
        "verification_code": display_code(code), "verify_url": verify_url.format(code=code),
        **{key: certificate[key] for key in (
            "enrollment_id", "learner_id", "course_id", "course_title", "full_name",
            "issued_at", "province_code", "commune_code", "learner_subject")}},
        correlation_id)
    return with_events(certificate, [issued])


def find_for(db, certificate_id: str, caller: Principal) -> dict:
    """The certificate if the caller may act on it (a province admin: their province); 404
    otherwise, as if it did not exist."""
    certificate = db.certificates.find_one({"_id": certificate_id})
    if certificate is None or not caller.covers(certificate["province_code"],
                                                certificate["commune_code"]):
        raise NotFound(f"no certificate {certificate_id}")
    return certificate


def revoke(db, certificate: dict, reason: str, revoked_by: str, now: datetime) -> dict:
    """Revoke a valid certificate and announce it; a revoked one is returned unchanged (a
    second revocation keeps the first one's time and reason, and announces nothing)."""
    if certificate["status"] == REVOKED:
        return certificate
    change = {"status": REVOKED, "revoked_at": now, "revocation_reason": reason,
              "revoked_by": revoked_by}
    revoked = {**certificate, **change}
    announced = new_event("certificate_revoked", {
        "certificate_id": revoked["_id"], "reason": reason, "revoked_at": now,
        **{key: revoked[key] for key in (
            "enrollment_id", "learner_id", "course_id", "serial", "full_name", "course_title",
            "group", "province_code", "commune_code", "learner_subject")}},
        revoked.get("correlation_id") or revoked["_id"])
    updated = db.certificates.update_one({"_id": certificate["_id"], "status": VALID},
                                         set_events({"$set": change}, [announced]))
    if not updated.modified_count:
        # a concurrent revocation won: answer what it wrote
        return db.certificates.find_one({"_id": certificate["_id"]})
    return revoked


def page(db, caller: Principal, args: dict) -> dict:
    """The certificates the caller may see (their own, or their communes'), a page at a time."""
    return pagination.scoped_page(db.certificates, caller, args, ("enrollment_id", "learner_id"),
                                  "issued_at")


def printable(db, certificate_id: str, caller: Principal) -> dict:
    """The certificate to print for the caller (the learner, or staff whose communes cover
    theirs): 404 when it is not theirs to see, 409 once it is revoked."""
    certificate = db.certificates.find_one({"_id": certificate_id})
    if certificate is None or not caller.may_see(certificate["province_code"],
                                                 certificate["commune_code"],
                                                 certificate.get("learner_subject")):
        raise NotFound(f"no certificate {certificate_id}")
    if certificate["status"] == REVOKED:
        raise CertificateRevoked("this certificate was revoked: it is no longer printed",
                                 revoked_at=isoformat(certificate["revoked_at"]))
    return certificate


def by_code(db, code: str | None) -> dict:
    """The certificate a verification code (its stored form) names; 404 for none."""
    certificate = code and db.certificates.find_one({"verification_code": code})
    if not certificate:
        raise NotFound("no certificate has this verification code")
    return certificate
