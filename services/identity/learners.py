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
from hocvu.events import new_event
from hocvu.outbox import with_events
from hocvu.store import DELETE, Store, read_modify_write
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
    # a day is the longest rate-limit window; an expired code is kept an hour for support
    store.expire(LIMITS, "updated_at", keep=timedelta(days=1))
    store.expire(CODES, "expires_at", keep=timedelta(hours=1))


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

    limits = ((by_address, policy.per_address), (by_phone, policy.per_phone))
    # a refused request counts nothing: both limits are read before either is written
    waits = [_count_request(store.db[LIMITS].find_one({"_id": key}), now, windows)[0]
             for key, windows in limits]
    if any(waits):
        raise TooManyRequests("too many codes asked for; wait before asking again",
                              max(wait for wait in waits if wait))
    # each limit is then one document, changed only if nobody changed it since we read it,
    # so concurrent requests cannot both pass; only such a race, refused on the phone after
    # the address was counted, leaves a count behind (erring towards refusing)
    for key, windows in limits:
        wait = read_modify_write(store.db[LIMITS], key,
                                 lambda current, w=windows: _count_request(current, now, w))
        if wait:
            raise TooManyRequests("too many codes asked for; wait before asking again", wait)
    code, request_id = domain.new_code(), str(uuid.uuid4())
    expires_at = now + policy.lifetime
    requested = new_event("sign_in_code_requested", {
        "request_id": request_id,
        "phone": policy.sealer.seal(phone),
        "code": policy.sealer.seal(code),
        "expires_at": expires_at}, correlation_id)
    # the code and the event that sends it, in one write (through the version, so that a
    # redemption racing with it cannot write the old code back)
    read_modify_write(store.db[CODES], digest, lambda current: (None, with_events({
        "code_digest": domain.code_digest(policy.hash_key, digest, code),
        "expires_at": expires_at, "attempts_left": policy.attempts,
        "request_id": request_id, "created_at": now}, [requested])))


def _count_request(current: dict | None, now: datetime, windows) -> tuple:
    history = (current or {}).get("requests", [])
    wait = domain.retry_after(history, now, windows)
    if wait:
        return wait, None
    return None, {"requests": domain.record_request(history, now, windows), "updated_at": now}


def redeem_code(store: Store, policy: CodePolicy, phone: str, code: str, now: datetime) -> None:
    """Use up the code sent to `phone`; raise InvalidCode (a wrong code spends an attempt)."""
    digest = phone_digest(policy, phone)
    offered = domain.code_digest(policy.hash_key, digest, code)

    def use(stored):
        outcome, keep = domain.check_code(stored, offered, now)
        if keep:
            return outcome, keep
        return outcome, (DELETE if stored else None)

    if read_modify_write(store.db[CODES], digest, use) != domain.ACCEPTED:
        raise InvalidCode()
