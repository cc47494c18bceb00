"""Staff accounts in the store: bootstrap, sign-in with lockout, creation and listing.

Passwords are kept as argon2id hashes (argon2-cffi), rehashed at the next sign-in when
the configured parameters change. Hashing runs in a native thread (eventlet's tpool):
it takes tens of milliseconds of CPU and would otherwise stall every other request.
"""
import logging
import secrets
import uuid
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from hocvu import pagination
from hocvu.http import ApiError, Conflict, TooManyRequests
from hocvu.retention import RetentionRule
from hocvu.store import Store
from services.identity import domain

log = logging.getLogger(__name__)

ACCOUNTS, ATTEMPTS = "staff", "sign_in_attempts"


class BadCredentials(ApiError):
    status = 401
    code = "INVALID_CREDENTIALS"

    def __init__(self):
        super().__init__("the username or the password is wrong")

    def headers(self) -> dict:
        return {"WWW-Authenticate": 'Bearer realm="hocvu"'}


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int, parallelism: int):
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                     parallelism=parallelism)
        # verified against when the username is unknown, so both cost the same time
        self._decoy = self.hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return tpool.execute(self.hasher.hash, password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return tpool.execute(self.hasher.verify, stored_hash or self._decoy, password) \
                and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)


def prepare(store: Store) -> None:
    store.ensure_collections(ACCOUNTS, ATTEMPTS)
    store.db[ACCOUNTS].create_index("username", unique=True)
    store.db[ACCOUNTS].create_index([("province", ASCENDING), ("created_at", ASCENDING),
                                     ("_id", ASCENDING)])
    store.db[ATTEMPTS].create_index("updated_at")
    if store.relay:
        # failures of unknown usernames would pile up; a day is far past any window or lock
        store.relay.housekeeping.add(RetentionRule(
            store.db[ATTEMPTS], expired=lambda cutoff: {"updated_at": {"$lt": cutoff}},
            keep=timedelta(days=1)))


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


def sign_in(store: Store, passwords: Passwords, policy: domain.LockoutPolicy, hash_key: bytes,
            username: str, password: str, now: datetime) -> dict:
    """The account whose password this is; raises TooManyRequests while the username is
    locked and BadCredentials otherwise (the same for an unknown username)."""
    username = domain.normalize_username(username)
    attempts_id = domain.keyed_digest(hash_key, f"staff:{username}")
    attempts = store.db[ATTEMPTS]
    wait = domain.locked_for(attempts.find_one({"_id": attempts_id}), now)
    if wait:
        raise TooManyRequests("too many failed sign-ins; try again later", wait)
    account = store.db[ACCOUNTS].find_one({"username": username})
    if not passwords.verify(account and account["password_hash"], password):
        def record_failure(tx):
            state = domain.after_failure(tx[ATTEMPTS].find_one({"_id": attempts_id}), now,
                                         policy)
            tx[ATTEMPTS].replace_one({"_id": attempts_id}, {**state, "updated_at": now},
                                     upsert=True)
            return state

        if domain.locked_for(store.transact(record_failure), now):
            # the username itself stays out of the log: people type passwords into it
            log.warning("a username (attempts record %s) is locked after %s failed sign-ins",
                        attempts_id[:12], policy.max_failures)
        raise BadCredentials()
    attempts.delete_one({"_id": attempts_id})
    if passwords.needs_rehash(account["password_hash"]):
        store.db[ACCOUNTS].update_one({"_id": account["_id"]},
                                      {"$set": {"password_hash": passwords.hash(password)}})
    return account


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
