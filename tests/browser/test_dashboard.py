"""The instructor's class dashboard in a real browser (issue 25), with the same
set-up as test_web.py: Debian's Chromium, headless, over WebDriver, against a
real `sluice serve` on 127.0.0.1 whose models are the fake upstream.

Usage: test_dashboard.py SLUICE_BINARY AXE_JS [--shots DIR]

Students run prompts through the API (one model fails, one answers with
hostile markup); the instructor signs in and sees the students, the activity
and usage charts, the budgets with what is left, changes a budget, filters
the students' sessions, and reads one read-only (the hostile answer as inert
text); the student then sees that read in their access record, and another
student gets "not found" for the dashboard. Every page is checked with axe.
"""

import argparse
import json
import os
import sys
import tempfile
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_web import ROOT, Page, Server, chromium  # noqa: E402
from fake_upstream import FakeUpstream  # noqa: E402


def api(server, key, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("axe")
    parser.add_argument("--shots", default=os.path.join(ROOT, "docs", "screenshots"))
    args = parser.parse_args()
    with open(args.axe, encoding="utf-8") as f:
        axe_js = f.read()
    fake = FakeUpstream()
    tmp = tempfile.TemporaryDirectory(prefix="sluice-dashboard-")
    server = Server(os.path.abspath(args.binary), fake, tmp.name)
    teacher_key = server.admin("key", "create", "teacher").strip()
    class_id = json.loads(server.admin("class", "show", "1"))["class"]["id"]
    driver = chromium(tmp.name)
    p = Page(driver, server, axe_js, args.shots)
    passed = []
    try:
        # Students practise: a plain run, one with a failing model, one with a hostile answer.
        runs = [(server.key_a, ["fast-a", "fast-b"], "Explain photosynthesis"),
                (server.key_a, ["fast-a", "broken"], "Summarise the water cycle"),
                (server.key_b, ["hostile"], "Say something nasty"),
                (server.key_b, ["fast-b"], "List three prime numbers")]
        sessions = []
        for key, models, prompt in runs:
            status, body = api(server, key, "POST", f"/user/practice/sessions/run?class_id={class_id}",
                               {"prompt_text": prompt, "model_names": models})
            assert status == 201, (status, body)
            sessions.append(body["session_id"])
        server.admin("budget", "set", str(class_id), "--student", "student-a",
                     "--tokens-per-day", "5000", "--runs-per-hour", "20")
        server.admin("budget", "set", str(class_id), "--cost-per-month", "10")

        # The instructor's dashboard: students, totals, charts, budgets.
        p.sign_in(teacher_key)
        p.wait("the Classes link", lambda: p.finds("#nav a[href='#/classes']"))
        p.find("#nav a[href='#/classes']").click()
        p.wait("the class list", lambda: p.finds(f"main a[href='#/classes/{class_id}']"))
        p.find(f"main a[href='#/classes/{class_id}']").click()
        p.wait("the dashboard", lambda: p.finds("section.budget"))
        main_text = p.find("main").text
        for name in ["student-a", "student-b"]:
            assert name in main_text, main_text
        rows = {r.find_element(By.TAG_NAME, "th").text: r.text for r in p.finds("table.data tbody tr")}
        assert "student-a" in rows and "student-b" in rows, rows
        assert "teacher" not in rows, "instructors are not listed as students"
        charts = p.finds("figure.chart-box svg.chart")
        assert len(charts) == 4, "tokens and calls per day, tokens per model and per student"
        assert all(c.find_elements(By.CSS_SELECTOR, "rect") for c in charts), "every chart has bars"
        bar_titles = " ".join(t.get_attribute("textContent") for t in p.finds("svg.chart title"))
        assert "fast-a" in bar_titles and "broken" in bar_titles, bar_titles
        budgets = p.finds("section.budget")
        assert len(budgets) == 3, "the class and its two students"
        assert "5,000" in budgets[1].text and "Tokens per day" in budgets[1].text, budgets[1].text
        assert budgets[1].find_elements(By.TAG_NAME, "meter"), "a meter shows what is used"
        used = int(budgets[1].find_element(By.TAG_NAME, "meter").get_attribute("value"))
        assert 0 < used < 5000, used
        p.axe("dashboard")
        p.shoot("dashboard")
        # The lower half, budgets with their meters, as one picture of the element.
        budgets[0].find_element(By.XPATH, "..").screenshot(os.path.join(args.shots, "dashboard-budgets-1280.png"))
        passed.append("dashboard: students, charts, budgets with what is left")

        # Change student-b's budget through the form.
        form_box = budgets[2]
        form_box.find_element(By.TAG_NAME, "summary").click()
        box = form_box.find_element(By.CSS_SELECTOR, "input[name='runs_per_hour']")
        box.clear()
        box.send_keys("3")
        form_box.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # The page draws itself again: read it in one script, not element by element.
        cells = "return [...(document.querySelectorAll('section.budget')[2]?.querySelectorAll('td') || [])].map(c => c.textContent)"
        p.wait("the new limit", lambda: "3" in (driver.execute_script(cells) or []))
        status, body = api(server, teacher_key, "GET", f"/user/practice/classes/{class_id}/budgets")
        assert status == 200 and body["items"][2]["limits"]["runs_per_hour"] == 3, body
        passed.append("set a student's budget")

        # The students' sessions, filtered to those with errors.
        driver.get(server.base + f"/#/classes/{class_id}/sessions")
        p.wait("the session list", lambda: len(p.finds("main table.data tbody tr a")) == 4)
        Select(p.find("select[name='has_errors']")).select_by_value("true")
        p.find("form.filters button[type=submit]").click()
        p.wait("the filtered list", lambda: len(p.finds("main table.data tbody tr a")) == 1)
        assert "Summarise the water" in p.find("main table.data tbody").text
        p.axe("class sessions")
        p.shoot("class-sessions")
        passed.append("filter the students' sessions")

        # A hostile answer, read-only: inert text, nothing to change.
        hostile = sessions[2]
        driver.get(server.base + f"/#/classes/{class_id}/sessions/{hostile}")
        p.wait("the read-only session", lambda: p.finds("article.turn .answer"))
        answer = p.find("article.turn .answer")
        assert "Hostile answer" in answer.text and "<script>" in answer.text, answer.text
        for tag in ["script", "img", "iframe", "svg", "object", "embed", "a"]:
            assert not answer.find_elements(By.TAG_NAME, tag), f"a <{tag}> element was created"
        assert driver.execute_script("return window.__pwned") is None, "a script from the answer ran"
        assert not p.finds("form.run-form"), "read-only: no way to continue it"
        assert "Read-only" in p.find("main").text and "student-b" in p.find("main").text
        p.axe("student session")
        p.shoot("student-session")
        passed.append("read a student's session read-only, hostile text inert")

        # The student sees the read; another student gets "not found" for the dashboard.
        p.sign_out()
        p.sign_in(server.key_b)
        driver.get(server.base + "/#/reads")
        p.wait("the access record", lambda: p.finds("main table.data tbody tr"))
        record = p.find("main table.data tbody").text
        assert "teacher" in record and f"#{hostile}" in record, record
        p.axe("reads")
        passed.append("the student sees who read their session")
        assert not p.finds("#nav a[href='#/classes']"), "a student has no Classes link"
        driver.get(server.base + f"/#/classes/{class_id}")
        p.wait("not found", lambda: p.finds("h2.not-found"))
        assert "student-a" not in p.find("main").text
        driver.get(server.base + f"/#/classes/{class_id}/sessions/{sessions[0]}")
        p.wait("not found", lambda: p.finds("h2.not-found") and "Explain" not in p.find("main").text)
        passed.append("a student gets not found for the dashboard and others' sessions")
    finally:
        driver.quit()
        server.stop()
        fake.stop()
        tmp.cleanup()
        print("passed:", "; ".join(passed))
        print("axe clean:", ", ".join(p.checked_pages))


if __name__ == "__main__":
    main()
