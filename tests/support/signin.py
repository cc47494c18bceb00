"""Signing in through a running platform (hocvu_tools.devstack.stack.Stack) as each kind of user
does: staff with passwords (hocvu_tools.devstack.accounts), a learner with the code texted to them,
read here from the SMS gateway simulator."""
import re
import secrets

import requests

from hocvu_tools.devstack import accounts
from tests.support.waiting import wait_for


def learner_headers(platform, phone_local: str) -> dict:
    e164 = "+84" + phone_local[1:]
    asked = requests.post(platform.url("identity", "learners/code"), json={"phone": phone_local})
    assert asked.status_code == 202, asked.text
    sms = wait_for(lambda: [m for m in requests.get(
        f"{platform.sms_gateway}/v1/messages", params={"to": e164.lstrip("+")}).json()["messages"]
        if re.search(r"\b\d{6}\b", m["text"])], what="the sign-in code SMS")
    code = re.search(r"\b(\d{6})\b", sms[-1]["text"])[1]
    token = requests.post(platform.url("identity", "learners/token"),
                          json={"phone": phone_local, "code": code})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def commune_admin(platform, admin: accounts.StaffSession, username: str,
                  commune: str) -> accounts.StaffSession:
    password = secrets.token_urlsafe(18)
    created = requests.post(platform.url("identity", "staff"), headers=admin.headers(), json={
        "username": username, "display_name": username, "role": "commune_admin",
        "province": "38", "communes": [commune], "password": password})
    assert created.status_code == 201, created.text
    return accounts.StaffSession(platform, username, password)
