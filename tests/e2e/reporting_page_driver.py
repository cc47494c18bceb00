"""Drives the progress page in headless Chromium (Debian's, through Playwright) and reports
what a person would see, as JSON on standard output:

    python -m tests.e2e.reporting_page_driver '{"scenario": "province", "base_url": ...}'

It runs in a process of its own, without eventlet: Playwright's synchronous API runs its own
asyncio loop, whose shutdown hangs under the test process's monkey-patching. The test
(test_reporting_page.py) compares what this saw with the API's answers."""
import json
import re
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def count(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def sign_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/reporting/")  # the edge sends it on to the page
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("body[data-loaded]")


def reload_after(page, action) -> None:
    before = page.get_attribute("body", "data-loaded")
    action()
    # a selector, not a script: the page's Content-Security-Policy forbids evaluating strings
    page.wait_for_selector(f"body:not([data-loaded='{before}'])")


def seen(page) -> dict:
    """The table (commune -> enrolled, completed, certified), the cards and the charts."""
    table = {}
    for row in page.query_selector_all("#communes tbody tr"):
        table[row.get_attribute("data-commune")] = [
            count(row.query_selector(f"td.{name}").inner_text())
            for name in ("enrolled", "completed", "certified")]
    return {"table": table,
            "totals": {name: count(page.inner_text(f"#total-{name}"))
                       for name in ("enrolled", "completed", "certified", "active")},
            "trend_points": page.locator("#trend circle[data-series=enrolled]").count(),
            "bars": page.locator("#bars rect").count(),
            "url": page.url}


def province(browser, args: dict) -> dict:
    page = browser.new_page(viewport=DESKTOP, locale="vi-VN")
    sign_in(page, args["base_url"], args["username"], args["password"])
    result = {"first": seen(page)}
    page.screenshot(path=f"{args['screenshots']}/reporting-province.png", full_page=True)
    page.click("#communes th[data-sort=enrolled]")  # largest first; a click turns it round
    result["sorted_enrolled"] = [count(td.inner_text())
                                 for td in page.query_selector_all("td.enrolled")]
    reload_after(page, lambda: (page.select_option("select[name=group]", "citizen"),
                                page.click("#filters button[type=submit]")))
    result["citizens"] = seen(page)
    page.screenshot(path=f"{args['screenshots']}/reporting-filtered.png", full_page=True)
    return result


def phone(browser, args: dict) -> dict:
    page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True, locale="vi-VN")
    sign_in(page, args["base_url"], args["username"], args["password"])
    result = {"first": seen(page),
              "page_width": page.evaluate("document.documentElement.scrollWidth")}
    page.screenshot(path=f"{args['screenshots']}/reporting-phone.png", full_page=True)
    page.click("#sign-out")
    result["after_sign_out"] = {"sign_in_visible": page.is_visible("#sign-in"),
                                "report_visible": page.is_visible("#report")}
    return result


def main() -> None:
    args = json.loads(sys.argv[1])
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            result = {"province": province, "phone": phone}[args["scenario"]](browser, args)
        finally:
            browser.close()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
