"""The progress page in a real browser (headless Chromium from Debian, driven by Playwright),
through the edge of a whole platform loaded with the demo workload (hocvu_tools.devstack.demo):
an admin signs in, the page shows the API's figures, a filter narrows them, and a commune
admin on a phone sees only their commune. The screenshots are the ones docs/reporting.md
shows (docs/img/). The browser runs in a process of its own (reporting_page_driver.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from hocvu_tools.devstack import accounts, demo
from tests.support.signin import commune_admin
from tests.support.waiting import wait_for

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "img"


@pytest.fixture(scope="module")
def loaded(platform):
    """The demo workload, and the figures once reporting has counted all of it."""
    done = demo.load(platform, learners=24, communes=4, seed=4242)
    admin = accounts.province_admin(platform)

    def counted():
        totals = api(platform, admin, "communes")["totals"]
        return (totals["enrolled"] == done["enrolled"]
                and totals["lessons_completed"] == done["lessons_completed"]
                and totals["courses_completed"] == done["courses_completed"]
                and totals["certificates_issued"] == done["courses_completed"] and totals)
    wait_for(counted, timeout=90, what="reporting to count the demo workload")
    return done, admin


def api(platform, session, path, **params) -> dict:
    answer = requests.get(platform.url("reporting", path), headers=session.headers(),
                          params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def browse(platform, scenario: str, session: accounts.StaffSession, password: str) -> dict:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    args = {"scenario": scenario, "base_url": platform.base_url, "username": session.username,
            "password": password, "screenshots": str(SCREENSHOTS)}
    run = subprocess.run([sys.executable, "-m", "tests.e2e.reporting_page_driver",
                          json.dumps(args)], cwd=REPO, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def expected(body: dict) -> dict[str, list[int]]:
    """The API's rows as the table shows them: communes with someone enrolled."""
    return {r["commune_code"]: [r["enrolled"], r["courses_completed"], r["certified"]]
            for r in body["items"] if r["enrolled"]}


def test_a_province_admin_sees_the_apis_figures_and_filters_them(platform, loaded):
    done, admin = loaded
    seen = browse(platform, "province", admin, platform.admin_password)
    first, body = seen["first"], api(platform, admin, "communes")
    assert first["url"].endswith("/api/reporting/page/")  # /reporting/ led there
    assert first["table"] == expected(body)
    assert set(first["table"]) == set(done["communes"])
    certified = body["totals"]["certificates_issued"] - body["totals"]["certificates_revoked"]
    assert first["totals"] == {"enrolled": done["enrolled"], "certified": certified,
                               "completed": done["courses_completed"],
                               "active": body["totals"]["active"]}
    assert first["trend_points"] == len(api(platform, admin, "days")["items"]) == 30
    assert first["bars"] == len(first["table"])
    assert seen["sorted_enrolled"] == sorted(seen["sorted_enrolled"])

    citizens = api(platform, admin, "communes", group="citizen")
    assert seen["citizens"]["table"] == expected(citizens)
    assert seen["citizens"]["totals"]["enrolled"] == citizens["totals"]["enrolled"] < done[
        "enrolled"]
    for name in ("reporting-province.png", "reporting-filtered.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000


def test_a_commune_admin_on_a_phone_sees_only_their_commune(platform, loaded):
    done, admin = loaded
    commune = done["communes"][0]
    own = commune_admin(platform, admin, "reporting-commune-admin", commune)
    seen = browse(platform, "phone", own, own._password)
    assert list(seen["first"]["table"]) == [commune]
    assert seen["first"]["table"] == expected(api(platform, own, "communes"))
    # nothing is wider than the phone: the table scrolls inside its own frame
    assert seen["page_width"] <= 390
    assert seen["after_sign_out"] == {"sign_in_visible": True, "report_visible": False}
