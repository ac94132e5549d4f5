"""Open every page of the built book in headless Chromium, served over loopback, and check it.

For every page of ``_toc.yml`` (plus ``index.html``):
- the page loads with HTTP 200;
- every ``<img>`` has loaded (``complete`` and ``naturalWidth > 0``);
- if the page contains TeX math, MathJax has typeset it (``mjx-container`` elements exist and no
  raw ``$$`` / ``\\(`` delimiters are left in the text);
- the page shows no progress-bar text (``it/s]``, ``%|``, ``█``) and no raw traceback
  (``Traceback (most recent call last)``): the same patterns the build's notebook check uses;
- no request failed (Chrome's network log: no ``loadingFailed`` event, no HTTP status >= 400),
  which also catches any attempt to reach the internet;
- a full-page screenshot is saved to ``_build/browser/<page>.png``.

Uses Debian's ``chromium`` and ``chromium-driver`` through Selenium with an explicit Service, so
nothing is downloaded. Exit code 1 with a list of problems when any check fails.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import socketserver
import sys
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from compressible.reproduction.bookbuild import PROGRESS_BAR, TRACEBACK, read_toc

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def toc_pages(root: Path) -> list[str]:
    """``index`` plus every page of the table of contents, in order."""
    return ["index"] + [chapter.name for chapter in read_toc(root)]


def serve(directory: Path) -> tuple[socketserver.TCPServer, int]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep CI output short
        pass

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # the browser moved on to the next page
            pass


def make_driver() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def network_problems(driver) -> list[str]:
    problems, statuses = [], {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            statuses[params["requestId"]] = params["request"]["url"]
        elif method == "Network.responseReceived":
            status = params["response"]["status"]
            # the browser asks for /favicon.ico by itself; the book does not reference one
            if status >= 400 and not params["response"]["url"].endswith("/favicon.ico"):
                problems.append(f"HTTP {status} for {params['response']['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = statuses.get(params["requestId"], "?")
            problems.append(f"request failed ({params.get('errorText')}) for {url}")
    return problems


def check_page(driver, base: str, page: str, shots: Path) -> list[str]:
    url = f"{base}/{page}.html"
    driver.get(url)
    deadline = time.time() + 30
    while time.time() < deadline and driver.execute_script("return document.readyState") != "complete":
        time.sleep(0.2)
    problems = []
    has_math = driver.execute_script(
        "return document.querySelectorAll('.math, mjx-container, script[type^=\"math/tex\"]').length"
    )
    if has_math:
        while time.time() < deadline and not driver.execute_script(
            "return document.querySelectorAll('mjx-container').length > 0"
        ):
            time.sleep(0.2)
        typeset = driver.execute_script("return document.querySelectorAll('mjx-container').length")
        if not typeset:
            problems.append("math present but MathJax typeset nothing")
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth])"
    )
    for src, complete, width in images:
        if not complete or not width:
            problems.append(f"image did not load: {src}")
    text = driver.execute_script("return document.body.innerText")
    if match := PROGRESS_BAR.search(text):
        problems.append(f"shows progress-bar text {match.group()!r}: {text[max(0, match.start() - 60):match.end() + 20]!r}")
    if TRACEBACK in text:
        problems.append("shows a raw traceback")
    problems += network_problems(driver)
    title = driver.title
    if "404" in title or not title:
        problems.append(f"suspicious page title {title!r}")
    slug = page.replace("/", "_")
    driver.save_screenshot(str(shots / f"{slug}.png"))
    print(f"  {page:40s} images={len(images):3d} math={'yes' if has_math else 'no ':3s} "
          f"{'OK' if not problems else 'FAIL'}")
    return [f"{page}: {p}" for p in problems]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="folder holding _toc.yml")
    parser.add_argument("--html", default="_build/html")
    parser.add_argument("--screenshots", default="_build/browser")
    args = parser.parse_args(argv)
    root, html = Path(args.root), Path(args.html)
    shots = Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    server, port = serve(html)
    driver = make_driver()
    problems = []
    try:
        pages = toc_pages(root)
        print(f"browser check: {len(pages)} pages at http://127.0.0.1:{port}/")
        for page in pages:
            problems += check_page(driver, f"http://127.0.0.1:{port}", page, shots)
    finally:
        driver.quit()
        server.shutdown()
    if problems:
        print("browser check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"browser check passed; screenshots in {shots}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
