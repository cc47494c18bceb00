"""Learners sign in (and up: it is the same) with their phone and a one-time code.

Identity keeps no phone number in clear: codes and rate limits are filed under keyed
hashes (IDENTITY_HASH_KEY), and the code itself only as a keyed hash bound to the phone.
The SMS goes out through notifications: `sign_in_code_requested` carries the phone and the
code sealed with notifications' public key, so the broker, dead letters and our outbox
hold nothing readable.
"""
import ipaddress
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta


from hocvu import sealing
from hocvu.http import ApiError, TooManyRequests
from hocvu.retention import RetentionRule
from hocvu.store import Store
from services.identity import domain

CODES, LIMITS = "sign_in_codes", "rate_limits"


class InvalidCode(ApiError):
    """A wrong code is a failed sign-in, like a wrong password: 401, not a malformed body."""
    status = 401
    code = "INVALID_CODE"

    def __init__(self):
        super().__init__("the code is wrong, was used or has expired; ask for a new one",
                         {"code": ["wrong, used or expired"]})


@dataclass(frozen=True)
class CodePolicy:
    hash_key: bytes
    sealer: sealing.Sealer  # with notifications' public key
    lifetime: timedelta
    attempts: int
    per_phone: tuple[domain.Window, ...]
    per_address: tuple[domain.Window, ...]


def prepare(store: Store) -> None:
    store.ensure_collections(CODES, LIMITS)
    store.db[CODES].create_index("expires_at")
    store.db[LIMITS].create_index("updated_at")
    if store.relay:
        longest = timedelta(days=1)
        store.relay.housekeeping.add(RetentionRule(
            store.db[LIMITS], expired=lambda cutoff: {"updated_at": {"$lt": cutoff}},
            keep=longest))
        store.relay.housekeeping.add(RetentionRule(
            store.db[CODES], expired=lambda cutoff: {"expires_at": {"$lt": cutoff}},
            keep=timedelta(hours=1)))


def client_address(headers, peer: str | None) -> str:
    """The learner's address as the nginx edge saw it: X-Real-IP, else the last hop of
    X-Forwarded-For (the one nginx appended), else the connection's peer."""
    candidates = [headers.get("X-Real-IP", ""),
                  headers.get("X-Forwarded-For", "").split(",")[-1], peer or ""]
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate.strip()))
        except ValueError:
            continue
    return "unknown"


def phone_digest(policy: CodePolicy, phone: str) -> str:
    return domain.keyed_digest(policy.hash_key, f"phone:{phone}")


def request_code(store: Store, policy: CodePolicy, phone: str, address: str, now: datetime,
                 correlation_id: str) -> None:
    """Make a new code for `phone` (replacing any earlier one) and have it sent; raise
    TooManyRequests, changing nothing, when the phone or the address asked too often."""
    digest = phone_digest(policy, phone)
    by_phone = f"phone:{digest}"
    by_address = f"address:{domain.keyed_digest(policy.hash_key, f'address:{address}')}"

    def work(tx):
        limits = tx[LIMITS]
        histories = {key: (limits.find_one({"_id": key}) or {}).get("requests", [])
                     for key in (by_phone, by_address)}
        waits = [wait for wait in (
            domain.retry_after(histories[by_phone], now, policy.per_phone),
            domain.retry_after(histories[by_address], now, policy.per_address)) if wait]
        if waits:
            return max(waits)
        for key, windows in ((by_phone, policy.per_phone), (by_address, policy.per_address)):
            limits.replace_one({"_id": key}, {
                "requests": domain.record_request(histories[key], now, windows),
                "updated_at": now}, upsert=True)
        code, request_id = domain.new_code(), str(uuid.uuid4())
        expires_at = now + policy.lifetime
        tx[CODES].replace_one({"_id": digest}, {
            "code_digest": domain.code_digest(policy.hash_key, digest, code),
            "expires_at": expires_at, "attempts_left": policy.attempts,
            "request_id": request_id, "created_at": now}, upsert=True)
        tx.publish("sign_in_code_requested", {
            "request_id": request_id,
            "phone": policy.sealer.seal(phone),
            "code": policy.sealer.seal(code),
            "expires_at": expires_at}, correlation_id)
        return None

    wait = store.transact(work)
    if wait:
        raise TooManyRequests("too many codes asked for; wait before asking again", wait)


def redeem_code(store: Store, policy: CodePolicy, phone: str, code: str, now: datetime) -> None:
    """Use up the code sent to `phone`; raise InvalidCode (a wrong code spends an attempt)."""
    digest = phone_digest(policy, phone)
    offered = domain.code_digest(policy.hash_key, digest, code)

    def work(tx):
        stored = tx[CODES].find_one({"_id": digest})
        outcome, keep = domain.check_code(stored, offered, now)
        if keep:
            tx[CODES].replace_one({"_id": digest}, keep)
        elif stored:
            tx[CODES].delete_one({"_id": digest})
        return outcome

    if store.transact(work) != domain.ACCEPTED:
        raise InvalidCode()


