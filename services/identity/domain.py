"""Identity's rules, in plain Python with no I/O: every `now` is passed in, so a test
controls the clock.

- staff: who may create whom and reset whose password, usernames, password rules, lockout
  after failed sign-ins;
- learners: one-time codes (6 digits, kept as a keyed hash, short-lived, few attempts)
  and the rate limits on asking for them.
"""
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from hocvu import reference
from hocvu.places import PROVINCE_CODES, is_commune_code
from hocvu.sealing import Sealer

FACILITATOR, COMMUNE_ADMIN, PROVINCE_ADMIN = "facilitator", "commune_admin", "province_admin"
STAFF_ROLES = (FACILITATOR, COMMUNE_ADMIN, PROVINCE_ADMIN)

PASSWORD_MIN, PASSWORD_MAX = 12, 128
MAX_COMMUNES = 50  # a facilitator may serve several communes; a bound keeps tokens small
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


def keyed_digest(key: bytes, value: str) -> str:
    """How identity keeps phones, usernames of failed sign-ins and client addresses."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


# --- staff -------------------------------------------------------------------------------

def normalize_username(raw: str) -> str:
    return (raw or "").strip().lower()


def username_problems(username: str) -> list[str]:
    if not _USERNAME.fullmatch(username):
        return ["3 to 64 characters: letters, digits, dots, hyphens and underscores, "
                "starting with a letter or digit"]
    return []


def password_problems(password: str, username: str) -> list[str]:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return [f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"]
    if not password.strip():
        return ["must not be only spaces"]
    if username and username in password.lower():
        return ["must not contain the username"]
    return []


def scope_problems(role: str, province: str, communes: list[str]) -> dict[str, list[str]]:
    """Is (role, province, communes) a well-formed staff scope? {field: problems}, empty if so."""
    if role not in STAFF_ROLES:
        return {"role": [f"must be one of {', '.join(STAFF_ROLES)}"]}
    if province not in PROVINCE_CODES:
        return {"province": ["must be one of the 34 two-digit province codes"]}
    if not all(is_commune_code(code) for code in communes):
        return {"communes": ["must be 5-digit commune or ward codes"]}
    if len(set(communes)) != len(communes):
        return {"communes": ["must not repeat"]}
    known = reference.communes()
    elsewhere = [code for code in communes
                 if code not in known or known[code].province_code != province]
    if elsewhere:
        return {"communes": [f"not communes of province {province}: {', '.join(elsewhere)}"]}
    if role == PROVINCE_ADMIN and communes:
        return {"communes": ["a province admin covers the whole province: give none"]}
    if role == COMMUNE_ADMIN and len(communes) != 1:
        return {"communes": ["a commune admin has exactly one commune"]}
    if role == FACILITATOR and not 1 <= len(communes) <= MAX_COMMUNES:
        return {"communes": [f"a facilitator has 1 to {MAX_COMMUNES} communes"]}
    return {}


def creation_refusal(creator: dict, role: str, province: str, communes: list[str]) -> str | None:
    """Why `creator` (a role, province and communes) may not create this account; None if
    they may. A province admin creates commune admins and facilitators in their province; a
    commune admin creates facilitators of their own commune only; a facilitator nobody."""
    if creator["role"] == PROVINCE_ADMIN:
        if role == PROVINCE_ADMIN:
            return "a province admin cannot create another province admin"
        if province != creator["province"]:
            return "outside your province"
        return None
    if creator["role"] == COMMUNE_ADMIN:
        if role != FACILITATOR:
            return "a commune admin creates facilitators only"
        if province != creator["province"] or not set(communes) <= set(creator["communes"]):
            return "outside your commune"
        return None
    return "your role cannot create accounts"


def visible_staff(caller: dict) -> dict | None:
    """The store filter of the accounts `caller` may list; None if they may list none."""
    if caller["role"] == PROVINCE_ADMIN:
        return {"province": caller["province"]}
    if caller["role"] == COMMUNE_ADMIN:
        return {"province": caller["province"], "communes": {"$in": list(caller["communes"])}}
    return None


HIDDEN = "hidden"  # a refusal answered as if the account did not exist


def reset_refusal(caller: dict, account: dict) -> str | None:
    """Why `caller` may not set a new password on `account`; None if they may. HIDDEN when
    the account is not one the caller may list (visible_staff): the answer must not tell
    whether it exists. A province admin resets the commune admins and facilitators of their
    province; a commune admin the facilitators of their own commune only (a facilitator who
    also serves other communes is the province admin's); nobody resets a province admin."""
    if caller["role"] == PROVINCE_ADMIN:
        if account["province"] != caller["province"]:
            return HIDDEN
        if account["role"] == PROVINCE_ADMIN:
            return "a province admin resets commune admins and facilitators only"
        return None
    if caller["role"] == COMMUNE_ADMIN:
        if account["province"] != caller["province"] \
                or not set(account["communes"]) & set(caller["communes"]):
            return HIDDEN
        if account["role"] != FACILITATOR:
            return "a commune admin resets facilitators only"
        if not set(account["communes"]) <= set(caller["communes"]):
            return "this facilitator also serves other communes: the province admin resets it"
        return None
    return "your role cannot reset passwords"


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lock: timedelta = timedelta(minutes=15)


def locked_for(state: dict | None, now: datetime) -> int | None:
    """Seconds until a locked username may try again; None when it is not locked."""
    until = (state or {}).get("locked_until")
    if until and until > now:
        return max(1, math.ceil((until - now).total_seconds()))
    return None


def after_failure(state: dict | None, now: datetime, policy: LockoutPolicy) -> dict:
    """The attempts record after one more failed sign-in: failures counted within a window
    that starts at the first of them; the last allowed failure locks for `policy.lock`."""
    state = dict(state or {})
    first = state.get("first_failure_at")
    lock_ran_out = state.get("locked_until") is not None and locked_for(state, now) is None
    if first is None or now - first >= policy.window or lock_ran_out:
        state = {"first_failure_at": now, "failures": 0}
    state["failures"] = state.get("failures", 0) + 1
    if state["failures"] >= policy.max_failures:
        state["locked_until"] = now + policy.lock
    return state


# --- learners' one-time codes ------------------------------------------------------------

def new_code() -> str:
    return f"{secrets.randbelow(10 ** 6):06d}"


def code_digest(key: bytes, phone_digest: str, code: str) -> str:
    """The code bound to the phone it was sent to: a stored digest fits no other number."""
    return keyed_digest(key, f"{phone_digest}:{code}")


ACCEPTED, WRONG, NO_CODE = "accepted", "wrong", "no_code"


def check_code(stored: dict | None, offered_digest: str, now: datetime) -> tuple[str, dict | None]:
    """(outcome, what to keep): ACCEPTED uses the code up; WRONG spends an attempt and the
    last attempt removes it; NO_CODE when none was sent, it expired or it was used up."""
    if not stored or stored["expires_at"] <= now or stored["attempts_left"] <= 0:
        return NO_CODE, None
    if hmac.compare_digest(stored["code_digest"], offered_digest):
        return ACCEPTED, None
    left = stored["attempts_left"] - 1
    return WRONG, ({**stored, "attempts_left": left} if left > 0 else None)


# --- rate limits -------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    limit: int
    seconds: int


@dataclass(frozen=True)
class CodePolicy:
    hash_key: bytes
    sealer: Sealer  # with notifications' public key
    lifetime: timedelta
    attempts: int
    per_phone: tuple[Window, ...]
    per_address: tuple[Window, ...]


def parse_windows(text: str) -> tuple[Window, ...]:
    """"1/60,5/3600" -> at most 1 per 60 s and 5 per hour."""
    windows = []
    for part in str(text).split(","):
        try:
            limit, seconds = (int(value) for value in part.strip().split("/"))
        except ValueError:
            raise ValueError(f"rate limit {part.strip()!r} is not <count>/<seconds>") from None
        if limit < 1 or seconds < 1:
            raise ValueError(f"rate limit {part.strip()!r} must be positive")
        windows.append(Window(limit, seconds))
    return tuple(windows)


def retry_after(history: list[datetime], now: datetime, windows: tuple[Window, ...]) -> int | None:
    """Seconds to wait before one more request is allowed; None if it is allowed now.

    `history` holds the times of the requests allowed before (any order). In a window that
    is full, the wait lasts until its oldest counted request leaves it."""
    recent = sorted((t for t in history if t <= now), reverse=True)
    waits = []
    for window in windows:
        span = timedelta(seconds=window.seconds)
        inside = [t for t in recent if now - t < span]
        if len(inside) >= window.limit:
            oldest_counted = inside[window.limit - 1]
            waits.append((oldest_counted + span - now).total_seconds())
    return max(1, math.ceil(max(waits))) if waits else None


def record_request(history: list[datetime], now: datetime,
                   windows: tuple[Window, ...]) -> list[datetime]:
    """`history` with `now` added, keeping only what a window still counts."""
    longest = timedelta(seconds=max(w.seconds for w in windows))
    keep = max(w.limit for w in windows)
    return sorted([t for t in history if now - t < longest] + [now], reverse=True)[:keep]


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
