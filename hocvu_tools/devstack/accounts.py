"""Staff accounts for the tools that drive the platform (the end-to-end and fault tests, the
benchmark), signed in the way people are: the province admin that identity creates on its
first start (hocvu_tools.devstack.stack.BOOTSTRAP_ADMIN) creates facilitators, each for at most 50
communes as identity allows, and they sign in with their passwords."""
import secrets
import threading
import time

import requests

from hocvu_tools.devstack.stack import BOOTSTRAP_ADMIN, PROVINCE, Stack

MAX_COMMUNES = 50      # identity's limit for one facilitator
RENEW_BEFORE = 60      # seconds before a token expires that a new one is asked for


class SignInFailed(RuntimeError):
    pass


class StaffSession:
    """A signed-in staff member; `headers()` renews the token shortly before it expires."""

    def __init__(self, stack: Stack, username: str, password: str):
        self.url = stack.url("identity", "staff/sign-in")
        self.username = username
        self._password = password
        self._token, self._expires = "", 0.0
        self._lock = threading.Lock()

    def headers(self) -> dict:
        with self._lock:
            if time.monotonic() > self._expires - RENEW_BEFORE:
                self._sign_in()
            return {"Authorization": f"Bearer {self._token}"}

    def _sign_in(self) -> None:
        answer = requests.post(self.url, json={"username": self.username,
                                               "password": self._password}, timeout=30)
        if answer.status_code != 200:
            raise SignInFailed(f"{self.username}: {answer.status_code} {answer.text[:200]}")
        body = answer.json()
        self._token = body["access_token"]
        self._expires = time.monotonic() + body["expires_in"]


def province_admin(stack: Stack) -> StaffSession:
    return StaffSession(stack, BOOTSTRAP_ADMIN, stack.admin_password)


def create_facilitator(stack: Stack, admin: StaffSession, username: str,
                       communes: list[str]) -> StaffSession:
    password = secrets.token_urlsafe(18)
    answer = requests.post(stack.url("identity", "staff"), headers=admin.headers(), timeout=30,
                           json={"username": username, "display_name": username,
                                 "role": "facilitator", "province": PROVINCE,
                                 "communes": communes, "password": password})
    if answer.status_code != 201:
        raise SignInFailed(f"creating {username}: {answer.status_code} {answer.text[:300]}")
    return StaffSession(stack, username, password)


class Facilitators:
    """Facilitators covering the given communes between them, as a province's teams do:
    `headers_for(commune)` signs in as the one who works there."""

    def __init__(self, stack: Stack, communes: list[str], prefix: str = "facilitator"):
        admin = province_admin(stack)
        self._by_commune: dict[str, StaffSession] = {}
        ordered = sorted(set(communes))
        run = secrets.token_hex(3)  # a platform may outlive one run of a tool
        for number, start in enumerate(range(0, len(ordered), MAX_COMMUNES), start=1):
            team = ordered[start:start + MAX_COMMUNES]
            session = create_facilitator(stack, admin, f"{prefix}-{run}-{number}", team)
            self._by_commune.update(dict.fromkeys(team, session))

    def headers_for(self, commune: str) -> dict:
        return self._by_commune[commune].headers()
