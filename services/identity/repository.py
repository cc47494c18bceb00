"""Identity's store: staff accounts (bootstrap, sign-in with lockout, creation, listing,
passwords changed by their owner or reset by an admin) and learners' sign-in with a phone
and a one-time code.

Identity keeps no phone number in clear: codes and rate limits are filed under keyed
hashes (IDENTITY_HASH_KEY), and the code itself only as a keyed hash bound to the phone.
The SMS goes out through notifications: `sign_in_code_requested` carries the phone and the
code sealed with notifications' public key, so the broker, dead letters and our outbox
hold nothing readable.
"""
import logging
import uuid
from datetime import datetime, timedelta

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from hocvu import pagination
from hocvu.events import new_event
from hocvu.http import (ApiError, Conflict, Forbidden, NotFound, TooManyRequests,
                        ValidationFailed)
from hocvu.outbox import with_events
from hocvu.store import DELETE, Store, read_modify_write
from services.identity import domain
from services.identity.passwords import Passwords

log = logging.getLogger(__name__)

ACCOUNTS, ATTEMPTS = "staff", "sign_in_attempts"
CODES, LIMITS = "sign_in_codes", "rate_limits"


def prepare(store: Store) -> None:
    store.ensure_collections(ACCOUNTS, ATTEMPTS, CODES, LIMITS)
    store.db[ACCOUNTS].create_index("username", unique=True)
    store.db[ACCOUNTS].create_index([("province", ASCENDING), ("created_at", ASCENDING),
                                     ("_id", ASCENDING)])
    # failures of unknown usernames would pile up; a day is far past any window or lock
    store.expire(ATTEMPTS, "updated_at", keep=timedelta(days=1))
    # a day is the longest rate-limit window; an expired code is kept an hour for support
    store.expire(LIMITS, "updated_at", keep=timedelta(days=1))
    store.expire(CODES, "expires_at", keep=timedelta(hours=1))


class BadCredentials(ApiError):
    status = 401
    code = "INVALID_CREDENTIALS"

    def __init__(self):
        super().__init__("the username or the password is wrong")

    def headers(self) -> dict:
        return {"WWW-Authenticate": 'Bearer realm="hocvu"'}


class WrongCurrentPassword(BadCredentials):
    """401 with the sign-in's code: the token was fine (else UNAUTHENTICATED), the password
    typed to confirm the change was not."""

    def __init__(self):
        ApiError.__init__(self, "the current password is wrong")


class InvalidCode(ApiError):
    """A wrong code is a failed sign-in, like a wrong password: 401, not a malformed body."""
    status = 401
    code = "INVALID_CODE"

    def __init__(self):
        super().__init__("the code is wrong, was used or has expired; ask for a new one",
                         {"code": ["wrong, used or expired"]})


# --- staff -------------------------------------------------------------------------------

def bootstrap_admin(store: Store, passwords: Passwords, username: str, password: str,
                    province: str, now: datetime) -> bool:
    """Create the first province admin unless an account has this username already."""
    username = domain.normalize_username(username)
    problems = (domain.username_problems(username) + domain.password_problems(password, username)
                + sum(domain.scope_problems(domain.PROVINCE_ADMIN, province, []).values(), []))
    if problems:
        raise ValueError(f"BOOTSTRAP_ADMIN_*: {'; '.join(problems)}")
    if store.db[ACCOUNTS].find_one({"username": username}, projection={"_id": 1}):
        return False
    account = new_account(username, "Quản trị tỉnh", domain.PROVINCE_ADMIN, province, [],
                          passwords.hash(password), now, created_by="bootstrap")
    try:
        store.db[ACCOUNTS].insert_one(account)
    except DuplicateKeyError:
        return False  # another instance bootstrapped it at the same moment
    log.info("bootstrap province admin %r created for province %s", username, province)
    return True


def new_account(username, display_name, role, province, communes, password_hash, now,
                created_by) -> dict:
    return {"_id": str(uuid.uuid4()), "username": username, "display_name": display_name,
            "role": role, "province": province, "communes": list(communes),
            "password_hash": password_hash, "created_at": now, "created_by": created_by}


def _attempts_id(hash_key: bytes, username: str) -> str:
    return domain.keyed_digest(hash_key, f"staff:{username}")


def _checked_password(store: Store, passwords: Passwords, policy: domain.LockoutPolicy,
                      hash_key: bytes, username: str, account: dict | None, password: str,
                      now: datetime) -> None:
    """The lockout around one password check: raises TooManyRequests while the username is
    locked (without checking), BadCredentials when the password is not the account's (and
    counts the failure); a success clears the count."""
    attempts_id = _attempts_id(hash_key, username)
    attempts = store.db[ATTEMPTS]
    wait = domain.locked_for(attempts.find_one({"_id": attempts_id}), now)
    if wait:
        raise TooManyRequests("too many failed sign-ins; try again later", wait)
    if not passwords.verify(account and account["password_hash"], password):
        def record_failure(current):
            state = domain.after_failure(current, now, policy)
            return state, {**state, "updated_at": now}

        if domain.locked_for(read_modify_write(attempts, attempts_id, record_failure), now):
            # the username itself stays out of the log: people type passwords into it
            log.warning("a username (attempts record %s) is locked after %s failed sign-ins",
                        attempts_id[:12], policy.max_failures)
        raise BadCredentials()
    attempts.delete_one({"_id": attempts_id})


def sign_in(store: Store, passwords: Passwords, policy: domain.LockoutPolicy, hash_key: bytes,
            username: str, password: str, now: datetime) -> dict:
    """The account whose password this is; raises TooManyRequests while the username is
    locked and BadCredentials otherwise (the same for an unknown username)."""
    username = domain.normalize_username(username)
    account = store.db[ACCOUNTS].find_one({"username": username})
    _checked_password(store, passwords, policy, hash_key, username, account, password, now)
    if passwords.needs_rehash(account["password_hash"]):
        store.db[ACCOUNTS].update_one({"_id": account["_id"]},
                                      {"$set": {"password_hash": passwords.hash(password)}})
    return account


def change_password(store: Store, passwords: Passwords, policy: domain.LockoutPolicy,
                    hash_key: bytes, account_id: str | None, current: str, new: str,
                    now: datetime) -> None:
    """A staff member sets their own new password, proving the current one. A wrong current
    password counts toward the lockout like a failed sign-in (a stolen token must not be a
    way to guess the password without limit)."""
    account = account_id and store.db[ACCOUNTS].find_one({"_id": account_id})
    if not account:
        raise NotFound("your account is not kept here: change its password where you sign in")
    problems = domain.password_problems(new, account["username"])
    if problems:
        raise ValidationFailed("the new password is not acceptable", {"new_password": problems})
    try:
        _checked_password(store, passwords, policy, hash_key, account["username"], account,
                          current, now)
    except BadCredentials:
        raise WrongCurrentPassword() from None
    store.db[ACCOUNTS].update_one({"_id": account_id}, {"$set": {
        "password_hash": passwords.hash(new), "password_changed_at": now}})
    log.info("staff account %s changed its password", account_id)


def reset_password(store: Store, passwords: Passwords, hash_key: bytes, caller: dict,
                   username: str, new: str, now: datetime) -> None:
    """An admin sets a new password on an account of their scope (domain.reset_refusal);
    the account's lockout is cleared so its owner can sign in with it at once."""
    username = domain.normalize_username(username)
    account = store.db[ACCOUNTS].find_one({"username": username})
    refusal = domain.reset_refusal(caller, account) if account else domain.HIDDEN
    if refusal == domain.HIDDEN:
        # the same answer whether the account does not exist or is outside the scope
        raise NotFound("no such staff account in your scope")
    if refusal:
        raise Forbidden(refusal)
    problems = domain.password_problems(new, username)
    if problems:
        raise ValidationFailed("the new password is not acceptable", {"new_password": problems})
    store.db[ACCOUNTS].update_one({"_id": account["_id"]}, {"$set": {
        "password_hash": passwords.hash(new), "password_changed_at": now,
        "password_reset_by": caller["subject"]}})
    store.db[ATTEMPTS].delete_one({"_id": _attempts_id(hash_key, username)})
    log.info("staff account %s: password reset by %s", account["_id"], caller["subject"])


def create(store: Store, passwords: Passwords, creator: dict, data: dict, now: datetime) -> dict:
    if store.db[ACCOUNTS].find_one({"username": data["username"]}, projection={"_id": 1}):
        raise Conflict("this username is taken", {"username": ["is taken"]})
    account = new_account(data["username"], data["display_name"], data["role"],
                          data["province"], data["communes"], passwords.hash(data["password"]),
                          now, created_by=creator["subject"])
    try:
        store.db[ACCOUNTS].insert_one(account)
    except DuplicateKeyError:
        raise Conflict("this username is taken", {"username": ["is taken"]}) from None
    log.info("staff account %s (%s) created by %s", account["_id"], account["role"],
             creator["subject"])
    return account


def page(store: Store, scope: dict, limit: int, after: tuple | None) -> dict:
    """Accounts in `scope`, oldest first, a page at a time (hocvu.pagination)."""
    return pagination.fetch_page(store.db[ACCOUNTS], scope, "created_at", limit, after)


# --- learners' one-time codes ------------------------------------------------------------

def phone_digest(policy: domain.CodePolicy, phone: str) -> str:
    return domain.keyed_digest(policy.hash_key, f"phone:{phone}")


def request_code(store: Store, policy: domain.CodePolicy, phone: str, address: str,
                 now: datetime, correlation_id: str) -> None:
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


def redeem_code(store: Store, policy: domain.CodePolicy, phone: str, code: str,
                now: datetime) -> None:
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
