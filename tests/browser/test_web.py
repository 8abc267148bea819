"""The practice web app in a real browser: Debian's Chromium, headless, driven
over WebDriver (Selenium, pointed at /usr/bin/chromedriver so that Selenium
Manager never downloads anything), against a real `sluice serve` on 127.0.0.1
whose models are a fake upstream (tests/python/fake_upstream.py): two fast
models, a slow one, a failing one and a hostile one.

Usage: test_web.py SLUICE_BINARY AXE_JS [--shots DIR]

Each page is checked with axe-core (injected from AXE_JS) for serious or
critical violations, and screenshots of the main pages at 1280 and 375 px
go to DIR (docs/screenshots by default), where the README shows them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from fake_upstream import FakeUpstream  # noqa: E402

MODELS = {  # logical name -> upstream model id (its prefix picks the fake's behaviour)
    "fast-a": "fast-a", "fast-b": "fast-b", "slow": "slow-1", "broken": "fail-1", "hostile": "hostile-1",
}
DEADLINE = time.time() + 240  # the whole run stops by itself


class Server:
    """`sluice serve` on a free loopback port with a SQLite file, two students in one class."""

    def __init__(self, binary, fake, tmp):
        self.binary = binary
        self.db = "sqlite:" + os.path.join(tmp, "practice.db")
        config = os.path.join(tmp, "sluice.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f'database = "{self.db}"\npractice_router = "none"\n')
            for name, model in MODELS.items():
                f.write(f'\n[models.{name}]\nprovider = "openai"\nbase_url = "{fake.base}/v1"\n'
                        f'model = "{model}"\nprofile = "o200k"\nmax_retries = 0\ntimeout_ms = 30000\n')
        self.key_t = self.admin("user", "create", "teacher").strip()
        self.key_a = self.admin("user", "create", "student-a").strip()
        self.key_b = self.admin("user", "create", "student-b").strip()
        class_id = self.admin("class", "create", "Prompting 101", "--instructor", "teacher",
                              "--models", ",".join(MODELS), "--primary", "fast-a").strip()
        self.admin("class", "add-member", class_id, "student-a")
        self.admin("class", "add-member", class_id, "student-b")
        # The dev override of the embedded assets (SLUICE_WEB_DIR) passes; no other SLUICE_ setting.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") or k == "SLUICE_WEB_DIR"}
        self.log = open(os.path.join(tmp, "server.log"), "w", encoding="utf-8")
        self.proc = subprocess.Popen([binary, "serve", "--config", config, "--addr", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=self.log, env=env, text=True)
        line = ""
        while time.time() < DEADLINE:
            line = self.proc.stdout.readline()
            if "listening on http://" in line:
                break
            if not line and self.proc.poll() is not None:
                raise RuntimeError("sluice serve exited: see " + self.log.name)
        self.base = "http://" + line.strip().rsplit("http://", 1)[1]

    def admin(self, *args):
        out = subprocess.run([self.binary, "admin", "--database", self.db, *args],
                             check=True, capture_output=True, text=True, timeout=30)
        return out.stdout

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()


def chromium(tmp):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--lang=en-US", f"--user-data-dir={tmp}/chromium-profile",
                 "--window-size=1280,900"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(30)
    return driver


class Page:
    def __init__(self, driver, server, axe_js, shots):
        self.d = driver
        self.server = server
        self.axe_js = axe_js
        self.shots = shots
        self.checked_pages = []

    def wait(self, what, condition, timeout=20):
        try:
            return WebDriverWait(self.d, min(timeout, max(1, DEADLINE - time.time())), poll_frequency=0.05).until(
                lambda d: condition())
        except TimeoutException:
            self.d.save_screenshot(os.path.join(tempfile.gettempdir(), "sluice-web-failure.png"))
            raise AssertionError(f"timed out waiting for {what}; page text:\n{self.d.find_element(By.TAG_NAME, 'body').text[:3000]}")

    def find(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def column(self, model):
        return self.find(f'.turn-out .col[data-model="{model}"]')

    def axe(self, name):
        """axe-core's serious and critical violations on the current page: there must be none."""
        self.d.execute_script(self.axe_js)
        violations = self.d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => "
            "({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))));")
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not bad, f"axe on {name}: {json.dumps(bad, indent=1)}"
        self.checked_pages.append(name)

    def shoot(self, name):
        """Screenshots at 1280 px and at 375 px (a phone), through device-metrics emulation."""
        os.makedirs(self.shots, exist_ok=True)
        for width, height, mobile in [(1280, 900, False), (375, 812, True)]:
            self.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
            time.sleep(0.3)
            self.d.save_screenshot(os.path.join(self.shots, f"{name}-{width}.png"))
        self.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def sign_in(self, key):
        self.d.get(self.server.base + "/")
        box = self.wait("the sign-in form", lambda: self.finds("form.signin input[name=key]"))[0]
        box.send_keys(key, Keys.ENTER)
        self.wait("the run page", lambda: self.finds("form.run-form"))

    def sign_out(self):
        self.find("#signout").click()
        self.wait("the sign-in form", lambda: self.finds("form.signin"))

    def pick_models(self, models):
        for box in self.finds('input[name="model"]'):
            if box.is_selected() != (box.get_attribute("value") in models):
                box.click()

    def run(self, prompt, models, kb=None):
        self.d.get(self.server.base + "/#/run")
        self.wait("the run form", lambda: self.finds("form.run-form textarea.prompt"))
        self.pick_models(models)
        if kb:
            self.find("form.run-form details summary").click()
            self.find(f'input[name="kb"][value="{kb}"]').click()
        area = self.find("form.run-form textarea.prompt")
        area.send_keys(prompt)
        area.send_keys(Keys.CONTROL, Keys.ENTER)  # the keyboard shortcut runs it

    def status(self, model):
        return self.column(model).find_element(By.CSS_SELECTOR, ".status").text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("axe")
    parser.add_argument("--shots", default=os.path.join(ROOT, "docs", "screenshots"))
    args = parser.parse_args()
    with open(args.axe, encoding="utf-8") as f:
        axe_js = f.read()
    fake = FakeUpstream()
    tmp = tempfile.TemporaryDirectory(prefix="sluice-web-")
    server = Server(os.path.abspath(args.binary), fake, tmp.name)
    driver = chromium(tmp.name)
    p = Page(driver, server, axe_js, args.shots)
    passed = []
    try:
        # Sign in (a wrong key first).
        driver.get(server.base + "/")
        p.wait("the sign-in form", lambda: p.finds("form.signin"))
        p.axe("sign-in")
        p.shoot("signin")
        p.find("form.signin input[name=key]").send_keys("nv-wrong", Keys.ENTER)
        p.wait("a refusal", lambda: "Sign-in failed" in p.find("form.signin").text)
        assert driver.execute_script("return document.cookie") == "", "the session cookie is HttpOnly"
        p.sign_in(server.key_a)
        assert driver.execute_script("return document.cookie") == "", "the session cookie is HttpOnly"
        passed.append("sign in")

        # Three models, one failing and one slow: the fast column fills while the slow one streams.
        p.run("Hello columns", ["fast-a", "slow", "broken"])
        p.wait("fast tokens", lambda: "echo: Hello columns" in p.column("fast-a").text)
        p.wait("slow tokens", lambda: "word1" in p.column("slow").find_element(By.CSS_SELECTOR, ".answer").text)
        assert "word59" not in p.column("slow").text, "the fast column showed its answer before the slow one ended"
        p.wait("the failing model's error in words",
               lambda: "The model's server failed" in p.column("broken").text)
        passed.append("three columns stream, one fails in words")

        # Stop the slow column: the upstream call ends, what was generated is stored as stopped.
        p.column("slow").find_element(By.XPATH, ".//button[normalize-space()='Stop']").click()
        p.wait("the stopped status", lambda: p.status("slow") == "Stopped")
        p.wait("the stored result", lambda: p.finds(".turn-out a[href^='#/sessions/']"))
        stopped_text = p.column("slow").find_element(By.CSS_SELECTOR, ".answer").text
        assert "word59" not in stopped_text and "word1" in stopped_text, stopped_text
        assert "stopped" in p.column("slow").find_element(By.CSS_SELECTOR, ".meta").text
        p.wait("the upstream noticing", lambda: fake.aborted >= 1, timeout=10)
        p.axe("run")
        p.shoot("run")
        passed.append("stop a column")

        # Continue the session: each model keeps its own history.
        p.find(".turn-out a[href^='#/sessions/']").click()
        p.wait("the session page", lambda: p.finds("article.turn"))
        session_url = driver.current_url
        session_id = session_url.rsplit("/", 1)[1]
        area = p.find("form.run-form textarea.prompt")
        area.send_keys("Second turn")
        area.send_keys(Keys.CONTROL, Keys.ENTER)
        p.wait("the second turn", lambda: len(p.finds("article.turn")) == 2, timeout=30)
        assert "echo: Second turn" in p.finds("article.turn")[1].text
        sent = [r for r in fake.requests if r["body"].get("model") == "fast-a"][-1]["body"]["messages"]
        assert [m["content"] for m in sent if m["role"] != "system"][-3:] == [
            "Hello columns", "echo: Hello columns", "Second turn"], sent
        passed.append("continue")

        # Diff two answers of the first turn.
        turn = p.finds("article.turn")[0]
        turn.find_element(By.CSS_SELECTOR, ".diff-panel summary").click()
        selects = turn.find_elements(By.CSS_SELECTOR, ".diff-panel select")
        Select(selects[0]).select_by_value("fast-a")
        Select(selects[1]).select_by_value("slow")
        turn.find_element(By.CSS_SELECTOR, ".diff-panel button").click()
        p.wait("the diff", lambda: turn.find_elements(By.CSS_SELECTOR, ".diff ins") and turn.find_elements(By.CSS_SELECTOR, ".diff del"))
        assert "word1" in " ".join(e.text for e in turn.find_elements(By.CSS_SELECTOR, ".diff ins"))
        p.axe("session")
        p.shoot("session")
        passed.append("diff two answers")

        # Reopen from the history sidebar.
        driver.get(server.base + "/#/run")
        p.wait("the history entry", lambda: p.finds(f"#sidebar a[href='#/sessions/{session_id}']"))
        p.find(f"#sidebar a[href='#/sessions/{session_id}']").click()
        p.wait("the reopened session", lambda: len(p.finds("article.turn")) == 2)
        passed.append("reopen from history")

        # Upload a knowledge file and see its passage among the sources.
        driver.get(server.base + "/#/library")
        p.wait("the library", lambda: p.finds("section.library form.create"))
        kb_form = p.finds("section.library form.create")[0]
        kb_form.find_element(By.CSS_SELECTOR, "input").send_keys("Seoul notes", Keys.ENTER)
        p.wait("the new base", lambda: "Seoul notes" in p.finds("section.library")[0].text)
        p.finds("section.library")[0].find_element(By.XPATH, ".//button[normalize-space()='Open']").click()
        doc = os.path.join(tmp.name, "seoul.md")
        with open(doc, "w", encoding="utf-8") as f:
            f.write("# Seoul\n\nThe Han river flows through Seoul; the Hangang bridges number more than thirty.\n")
        p.find(".kb-detail input[type=file]").send_keys(doc)
        p.wait("the uploaded document", lambda: "seoul.md" in p.find(".kb-detail .docs").text)
        search = p.find(".kb-detail input[type=search]")
        search.send_keys("Han river", Keys.ENTER)
        p.wait("a search hit", lambda: "Hangang bridges" in p.find(".kb-detail .hits").text)
        p.axe("library")
        p.shoot("library")
        p.d.get(server.base + "/#/run")
        p.wait("the run form", lambda: p.finds('input[name="kb"]'))
        kb_value = p.find('input[name="kb"]').get_attribute("value")
        p.run("How many bridges cross the Han river?", ["fast-a"], kb=kb_value)
        p.wait("the answer with sources", lambda: p.finds(".turn-out .col .sources"), timeout=30)
        sources = p.find(".turn-out .col .sources")
        sources.find_element(By.TAG_NAME, "summary").click()
        assert "Hangang bridges" in sources.text, sources.text
        passed.append("knowledge upload and sources")

        # A hostile answer renders inert.
        p.run("Say something nasty", ["hostile"])
        p.wait("the hostile answer", lambda: "Hostile answer" in p.column("hostile").text)
        p.wait("its result", lambda: p.finds(".turn-out a[href^='#/sessions/']"))
        answer = p.column("hostile").find_element(By.CSS_SELECTOR, ".answer")
        assert "<script>" in answer.text, "raw HTML is shown as text"
        for tag in ["script", "img", "iframe", "svg", "object", "embed"]:
            assert not answer.find_elements(By.TAG_NAME, tag), f"a <{tag}> element was created"
        hrefs = [a.get_attribute("href") for a in answer.find_elements(By.TAG_NAME, "a")]
        assert hrefs == ["https://example.com/"], hrefs
        handlers = driver.execute_script(
            "return [...arguments[0].querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name))"
            ".filter(n => n.startsWith('on'))", answer)
        assert handlers == [], handlers
        assert answer.find_elements(By.CSS_SELECTOR, "table td code"), "markdown tables and code still render"
        for el in answer.find_elements(By.CSS_SELECTOR, "code, strong"):
            driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))", el)
        assert driver.execute_script("return window.__pwned") is None, "a script from the answer ran"
        passed.append("hostile markdown renders inert")

        # Switch language.
        Select(p.find("#lang")).select_by_value("ko")
        p.wait("Korean navigation", lambda: "실행" in p.find("#nav").text)
        assert driver.execute_script("return document.documentElement.lang") == "ko"
        p.shoot("run-ko")
        Select(p.find("#lang")).select_by_value("en")
        p.wait("English navigation", lambda: "Run" in p.find("#nav").text)
        passed.append("switch language")

        # Another student's session link shows "not found".
        p.sign_out()
        p.sign_in(server.key_b)
        driver.get(session_url)
        p.wait("not found", lambda: p.finds("h2.not-found"))
        assert p.find("h2.not-found").text == "Not found"
        assert "Second turn" not in p.find("main").text
        passed.append("another student's link is not found")

        # A blind comparison: labels instead of names until the vote, cast with the keyboard.
        p.d.get(server.base + "/#/run")
        p.wait("the run form", lambda: p.finds('input[name="blind"]'))
        p.find('input[name="blind"]').click()
        p.run("Which is better?", ["fast-a", "fast-b"])
        p.wait("the vote buttons", lambda: p.finds(".turn-out .vote-bar button"), timeout=30)
        board = p.find(".turn-out")
        labels = [c.get_attribute("data-model") for c in board.find_elements(By.CSS_SELECTOR, ".col")]
        assert labels == ["A", "B"], labels
        for name in ("fast-a", "fast-b"):
            assert name not in board.text, f"{name} shows before the vote: {board.text}"
        assert "echo: Which is better?" in board.text
        p.axe("blind-vote")
        driver.execute_script("arguments[0].scrollIntoView({block: 'end'})", p.find(".turn-out .vote"))
        p.shoot("blind-vote")
        driver.execute_script("document.activeElement && document.activeElement.blur()")
        ActionChains(driver).send_keys("1").perform()  # 1 picks answer A
        p.wait("the names", lambda: len(board.find_elements(By.CSS_SELECTOR, ".col h3 .revealed")) == 2)
        heads = [e.text for e in board.find_elements(By.CSS_SELECTOR, ".col h3")]
        assert sorted(h.split("· ")[-1] for h in heads) == ["fast-a", "fast-b"], heads
        status = p.find(".turn-out .vote-status").text
        assert "best: A" in status, status
        assert board.find_element(By.CSS_SELECTOR, ".vote-bar").get_attribute("data-done") == "true"
        driver.execute_script("arguments[0].scrollIntoView({block: 'end'})", p.find(".turn-out .vote"))
        p.shoot("blind-voted")
        # Rate answer B down with a comment.
        col_b = p.column("B")
        col_b.find_element(By.CSS_SELECTOR, ".rating-comment").send_keys("too terse")
        col_b.find_element(By.XPATH, ".//button[contains(., 'Bad')]").click()
        p.wait("the rating", lambda: "Rating saved" in p.column("B").text)
        # A second blind run, voted a tie with 0 on the session page.
        p.d.get(server.base + "/#/library")  # leave the run page, so that it starts afresh
        p.wait("the library", lambda: p.finds("section.library"))
        p.d.get(server.base + "/#/run")
        p.wait("the run form", lambda: p.finds('input[name="blind"]'))
        p.find('input[name="blind"]').click()
        p.run("Another one?", ["fast-a", "fast-b"])
        p.wait("the second vote bar", lambda: p.finds(".turn-out .vote-bar button"), timeout=30)
        p.find(".turn-out a[href^='#/sessions/']").click()
        p.wait("the session page's vote bar", lambda: p.finds("article.turn .vote-bar button"))
        assert "fast-a" not in p.find("article.turn").text
        ActionChains(driver).send_keys("0").perform()
        p.wait("the tie", lambda: len(p.finds("article.turn .col h3 .revealed")) == 2)
        passed.append("blind vote: names hidden, keys 1 and 0, names shown after, rating")

        # The leaderboard: the voted-for model first, an SVG interval per model, the matrix.
        p.d.get(server.base + "/#/leaderboard")
        p.wait("the leaderboard", lambda: p.finds("table.leaderboard tbody tr"))
        rows = p.finds("table.leaderboard tbody tr")
        names = [r.find_element(By.TAG_NAME, "th").text for r in rows]
        assert sorted(names) == ["fast-a", "fast-b"], names
        assert len(p.finds("table.leaderboard svg.interval line.ci")) == 2
        assert "2 votes" in p.find("table.leaderboard caption").text
        assert p.finds("table.matrix td")
        assert not p.finds(".export"), "students get no export buttons"
        p.axe("leaderboard")
        p.shoot("leaderboard")
        passed.append("leaderboard")

        # The instructor exports the class: JSONL through the button's link, with the session cookie.
        p.sign_out()
        p.d.get(server.base + "/")
        box = p.wait("the sign-in form", lambda: p.finds("form.signin input[name=key]"))[0]
        box.send_keys(server.key_t, Keys.ENTER)
        p.wait("signed in", lambda: p.finds("#nav a[href='#/leaderboard']"))
        p.d.get(server.base + "/#/leaderboard")
        p.wait("the export buttons", lambda: p.finds(".export a"))
        href = p.find(".export a").get_attribute("href")
        text = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(r => r.text()).then(done, e => done(String(e)));", href)
        kinds = [json.loads(line)["kind"] for line in text.splitlines()]
        assert kinds.count("vote") == 2 and kinds.count("rating") == 1 and "result" in kinds, kinds
        p.axe("leaderboard-instructor")
        passed.append("instructor export")
    finally:
        driver.quit()
        server.stop()
        fake.stop()
        tmp.cleanup()
        print("passed:", "; ".join(passed))
        print("axe clean:", ", ".join(p.checked_pages))


if __name__ == "__main__":
    main()
