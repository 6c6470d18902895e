#!/usr/bin/env python3
"""The ops console in a real headless Chromium (Selenium), driven by
Tests/IntegrationTests/ConsoleBrowserTests.swift, which starts the broker, the worker and
`ingestctl console serve`, and checks afterwards what the worker handled.

Steps (each asserts what a person would see):
  1. sign in as the operator; filter by conversation; open a dead letter;
  2. plan a bulk redrive of batch "a", confirm, follow the job to "done";
  3. plan batch "b", run it slowly, cancel it halfway, read how many were replayed;
  4. a POST without the CSRF token is refused (403);
  5. sign in as the viewer: no redrive button, masked values, a forged POST refused.
Prints one JSON line: {"cancelledAfter": N}. Screenshots go to --screenshots.
"""
import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser():
    options = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(a)
    options.binary_location = "/usr/bin/chromium"
    # Debian's driver, named: Selenium Manager would otherwise try to download one.
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def wait_for(predicate, seconds, message):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message)


def sign_in(driver, base, user, password):
    driver.get(base + "/dlq")
    expect("/login" in driver.current_url, "an anonymous visitor is sent to sign in")
    driver.find_element(By.NAME, "user").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.TAG_NAME, "button").click()
    wait_for(lambda: driver.current_url.endswith("/dlq"), 10, "signed in: " + driver.current_url)


def post(base, path, form, cookie):
    """A POST outside the page (what a forger would send)."""
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(base + path, data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(request) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def cookie_of(driver):
    c = driver.get_cookie("ingest_console")
    expect(c is not None and c.get("httpOnly"), "the session cookie is HttpOnly")
    return "ingest_console=" + c["value"]


def run_job(driver, base, shots, path_filter, rate, name):
    driver.get(base + "/dlq?" + urllib.parse.urlencode({"class": "poison", "path": path_filter}))
    driver.find_element(By.ID, "plan").click()
    wait_for(lambda: "/redrive/" in driver.current_url, 30, "a plan page")
    planned = int(driver.find_element(By.ID, "planned").text)
    driver.save_screenshot(os.path.join(shots, name + "-plan.png"))
    rate_field = driver.find_element(By.NAME, "rate")
    rate_field.clear()
    rate_field.send_keys(str(rate))
    driver.find_element(By.ID, "run").click()
    return planned, driver.current_url


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--url", required=True)
    a.add_argument("--operator", required=True)
    a.add_argument("--viewer", required=True)
    a.add_argument("--password", required=True)
    a.add_argument("--conversation", required=True)
    a.add_argument("--batch-a", type=int, required=True)
    a.add_argument("--batch-b", type=int, required=True)
    a.add_argument("--screenshots", required=True)
    args = a.parse_args()
    base = args.url.rstrip("/")
    os.makedirs(args.screenshots, exist_ok=True)
    driver = browser()
    try:
        # 1. Sign in, filter, open a dead letter.
        sign_in(driver, base, args.operator, args.password)
        total = args.batch_a + args.batch_b
        expect(f"<strong>{total}</strong> dead letter(s) match" in driver.page_source, "every dead letter listed")
        driver.save_screenshot(os.path.join(args.screenshots, "dead-letters.png"))
        driver.find_element(By.NAME, "conversation").send_keys(args.conversation)
        driver.find_element(By.XPATH, "//button[text()='Filter']").click()
        wait_for(lambda: "<strong>1</strong> dead letter(s) match" in driver.page_source, 30, "filtered to one")
        driver.find_element(By.CSS_SELECTOR, "table tr td a[href^='/dlq/record']").click()
        wait_for(lambda: "dlq-error-message" in driver.page_source, 30, "the dead letter's page")
        expect("event marked as poison" in driver.page_source, "its error is shown")
        expect("15551234567" in driver.page_source, "an operator sees the value (only viewers get it masked)")
        driver.save_screenshot(os.path.join(args.screenshots, "dead-letter.png"))

        # 2. Bulk redrive of batch a, followed to the end.
        planned, job = run_job(driver, base, args.screenshots, "detail.eventBody.batch=a", 1000, "bulk")
        expect(planned == args.batch_a, f"the plan holds exactly batch a: {planned}")
        wait_for(
            lambda: (driver.refresh() or True) and driver.find_element(By.ID, "state").text == "done",
            120,
            "the bulk redrive finished",
        )
        expect(int(driver.find_element(By.ID, "replayed").text) == args.batch_a, "all of batch a replayed")
        driver.save_screenshot(os.path.join(args.screenshots, "bulk-done.png"))

        # 3. Batch b slowly, cancelled halfway.
        planned_b, job_b = run_job(driver, base, args.screenshots, "detail.eventBody.batch=b", 20, "slow")
        expect(planned_b == args.batch_b, f"the plan holds exactly batch b: {planned_b}")
        wait_for(
            lambda: (driver.refresh() or True) and int(driver.find_element(By.ID, "replayed").text) >= 10,
            60,
            "the slow job is under way",
        )
        driver.save_screenshot(os.path.join(args.screenshots, "job-running.png"))
        driver.find_element(By.ID, "cancel").click()
        wait_for(
            lambda: (driver.refresh() or True) and driver.find_element(By.ID, "state").text == "cancelled",
            30,
            "the job stopped",
        )
        replayed = int(driver.find_element(By.ID, "replayed").text)
        expect(0 < replayed < args.batch_b, f"cancelled halfway: {replayed} of {args.batch_b}")

        # 4. A POST without the CSRF token.
        operator_cookie = cookie_of(driver)
        expect(post(base, "/redrive/plan", {"class": "poison"}, operator_cookie) == 403, "no token: refused")

        # The audit page lists both runs.
        driver.get(base + "/audit")
        expect(driver.page_source.count("<td>done</td>") >= 1 and "<td>cancelled</td>" in driver.page_source,
               "both runs audited")
        driver.save_screenshot(os.path.join(args.screenshots, "audit.png"))
        driver.get(base + "/trace?conversation=" + urllib.parse.quote(args.conversation))
        expect("replayed from" in driver.page_source, "the trace shows the replay")
        driver.save_screenshot(os.path.join(args.screenshots, "trace.png"))

        # 5. The viewer.
        driver.delete_all_cookies()
        sign_in(driver, base, args.viewer, args.password)
        expect(len(driver.find_elements(By.ID, "plan")) == 0, "no redrive button for a viewer")
        driver.get(base + "/dlq?" + urllib.parse.urlencode({"conversation": args.conversation}))
        driver.find_element(By.CSS_SELECTOR, "table tr td a[href^='/dlq/record']").click()
        wait_for(lambda: "dlq-error-message" in driver.page_source, 30, "the viewer's dead-letter page")
        expect("***" in driver.page_source and "15551234567" not in driver.page_source, "masked for the viewer")
        driver.save_screenshot(os.path.join(args.screenshots, "viewer-masked.png"))
        page = driver.page_source
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        expect(post(base, "/redrive/plan", {"csrf": token, "class": "poison"}, cookie_of(driver)) == 403,
               "a viewer's forged POST (with its own valid token) is refused")
        print(json.dumps({"cancelledAfter": replayed}))
        return 0
    except Exception as e:  # noqa: BLE001 - report any failure with a screenshot
        driver.save_screenshot(os.path.join(args.screenshots, "failure.png"))
        print(f"browser test failed: {e}\nat {driver.current_url}", file=sys.stderr)
        return 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
