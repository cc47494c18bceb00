"""The progress page in a real browser (headless Chromium from Debian, driven by Playwright),
through the edge of a whole platform loaded with the demo workload (hocvu.devstack.demo):
an admin signs in, the page shows the API's figures, a filter narrows them, and a commune
admin on a phone sees only their commune. The screenshots are the ones docs/reporting.md
shows (docs/img/)."""
import re
from pathlib import Path

import pytest
import requests

from hocvu.devstack import accounts, demo
from tests.support.signin import commune_admin
from tests.support.waiting import wait_for

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
PHONE = {"width": 390, "height": 844}


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


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def api(platform, session, path, **params) -> dict:
    answer = requests.get(platform.url("reporting", path), headers=session.headers(),
                          params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def sign_in(page, platform, username: str, password: str) -> None:
    page.goto(f"{platform.base_url}/reporting/")  # the edge sends it on to the page
    assert page.url.endswith("/api/reporting/page/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("body[data-loaded]")


def reload_after(page, action) -> None:
    before = page.get_attribute("body", "data-loaded")
    action()
    # a selector, not a script: the page's Content-Security-Policy forbids evaluating strings
    page.wait_for_selector(f"body:not([data-loaded='{before}'])")


def count(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def table(page) -> dict[str, tuple[int, int, int]]:
    found = {}
    for row in page.query_selector_all("#communes tbody tr"):
        found[row.get_attribute("data-commune")] = tuple(
            count(row.query_selector(f"td.{name}").inner_text())
            for name in ("enrolled", "completed", "certified"))
    return found


def expected(body: dict) -> dict[str, tuple[int, int, int]]:
    return {r["commune_code"]: (r["enrolled"], r["courses_completed"], r["certified"])
            for r in body["items"] if r["enrolled"]}


def test_a_province_admin_sees_the_apis_figures_and_filters_them(platform, loaded, browser):
    done, admin = loaded
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    sign_in(page, platform, admin.username, platform.admin_password)

    shown, body = table(page), api(platform, admin, "communes")
    assert shown == expected(body)
    assert set(shown) == set(done["communes"])
    assert count(page.inner_text("#total-enrolled")) == body["totals"]["enrolled"] == done["enrolled"]
    assert count(page.inner_text("#total-completed")) == done["courses_completed"]
    assert count(page.inner_text("#total-certified")) == done["courses_completed"]
    days = api(platform, admin, "days")["items"]
    assert page.locator("#trend circle[data-series=enrolled]").count() == len(days)
    assert page.locator("#bars rect").count() == len(shown)
    page.screenshot(path=str(SCREENSHOTS / "reporting-province.png"), full_page=True)

    # largest first at the start; a click on the column turns the order around
    page.click("#communes th[data-sort=enrolled]")
    enrolled = [count(td.inner_text()) for td in page.query_selector_all("td.enrolled")]
    assert enrolled == sorted(enrolled)

    reload_after(page, lambda: (page.select_option("select[name=group]", "citizen"),
                                page.click("#filters button[type=submit]")))
    citizens = api(platform, admin, "communes", group="citizen")
    assert table(page) == expected(citizens)
    assert count(page.inner_text("#total-enrolled")) == citizens["totals"]["enrolled"] < done[
        "enrolled"]
    page.screenshot(path=str(SCREENSHOTS / "reporting-filtered.png"), full_page=True)
    page.close()


def test_a_commune_admin_on_a_phone_sees_only_their_commune(platform, loaded, browser):
    done, admin = loaded
    commune = done["communes"][0]
    own = commune_admin(platform, admin, "reporting-commune-admin", commune)
    page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True, locale="vi-VN")
    sign_in(page, platform, own.username, own._password)
    assert list(table(page)) == [commune]
    assert table(page) == expected(api(platform, own, "communes"))
    # nothing is wider than the phone but the table, which scrolls inside its frame
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(SCREENSHOTS / "reporting-phone.png"), full_page=True)
    page.click("#sign-out")
    assert page.is_visible("#sign-in") and not page.is_visible("#report")
    page.close()
