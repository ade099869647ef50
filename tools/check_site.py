"""Read every page of the built site (site/) in headless Chromium, offline.

``make docs-check`` runs it after ``make docs``. The site is served on
127.0.0.1 and every request to any other host is refused, as without internet.
Each page must then:

- load with no failed request and no script error;
- draw each Mermaid diagram (the theme replaces its block with the drawing);
- fit each code block to the content column (nothing to scroll sideways),
  at a desktop width and a narrow laptop's;
- show each image at least at ``MIN_IMAGE_SCALE`` of its own size, so that a
  chart's labels stay as legible as they were drawn.

A screenshot of each page goes to ``site-check/`` for a look. Chromium comes
from ``$CHROMIUM`` or the ``PATH`` (``apt-get install chromium``; Playwright
drives it, from the project's ``docs-check`` dependency group).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, Request, Route, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
SHOTS = ROOT / "site-check"
WIDTHS = (1280, 1024)
# Requests the pages make that may fail offline without breaking anything: the
# header's repository facts (stars, latest release) come from GitHub's API.
OPTIONAL_HOSTS = frozenset({"api.github.com"})
MIN_IMAGE_SCALE = 0.85

MEASURE = """() => {
  const wide = [...document.querySelectorAll("article pre > code")]
    .filter((code) => code.scrollWidth > code.clientWidth + 1)
    .map((code) => `${code.scrollWidth - code.clientWidth}px too wide: `
      + code.textContent.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), ""));
  const diagrams = [...document.querySelectorAll("article .mermaid")];
  const undrawn = diagrams.filter(
    (el) => el.tagName !== "DIV" || el.getBoundingClientRect().height < 100);
  const small = [...document.querySelectorAll("article img")]
    .filter((img) => img.naturalWidth === 0 || img.width / img.naturalWidth < MIN_SCALE)
    .map((img) => `${img.getAttribute("src")} shown at ${img.width}px of ${img.naturalWidth}px`);
  return {wide, diagrams: diagrams.length, undrawn: undrawn.length, small};
}""".replace("MIN_SCALE", str(MIN_IMAGE_SCALE))


def chromium() -> str:
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        sys.exit("no Chromium: install it (apt-get install chromium) or set CHROMIUM to its path")
    return found


def serve(root: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def check_page(page: Page, url: str, name: str) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on(
        "requestfailed",
        lambda request: (
            None
            if urlsplit(request.url).hostname in OPTIONAL_HOSTS
            else problems.append(f"request failed: {request.url} ({request.failure})")
        ),
    )
    page.on(
        "response",
        lambda response: (
            problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400
            else None
        ),
    )
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url, wait_until="networkidle")
        if page.locator("article pre.mermaid").count():
            # The theme draws each diagram into a closed shadow root on a <div>
            # that replaces the block: wait for the blocks to be replaced.
            page.wait_for_function(
                "() => !document.querySelector('article pre.mermaid')", timeout=30_000
            )
        found = page.evaluate(MEASURE)
        problems += [f"at {width}px, code block {line}" for line in found["wide"]]
        if found["undrawn"]:
            problems.append(f"{found['undrawn']} of {found['diagrams']} diagrams not drawn")
        problems += [f"at {width}px, image {line}" for line in found["small"]]
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    return list(dict.fromkeys(problems))


def main() -> int:
    pages = sorted(SITE.rglob("index.html"))
    if not pages:
        sys.exit(f"no site in {SITE}: run make docs first")
    SHOTS.mkdir(exist_ok=True)
    server = serve(SITE)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    refused: list[str] = []

    def offline(route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(request.url)
            route.abort("internetdisconnected")

    failures = 0
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium())
        try:
            for path in pages:
                relative = path.parent.relative_to(SITE).as_posix()
                name = relative.replace("/", "-") or "index"
                page = browser.new_page()
                page.route("**/*", offline)
                url = base + (f"{relative}/" if relative != "." else "")
                problems = check_page(page, url, name)
                page.close()
                failures += bool(problems)
                print(f"{'FAIL' if problems else 'ok  '} /{relative if relative != '.' else ''}")
                for problem in problems:
                    print(f"      {problem}")
        finally:
            browser.close()
            server.shutdown()
    for url in dict.fromkeys(refused):
        print(f"{'note' if urlsplit(url).hostname in OPTIONAL_HOSTS else 'FAIL'}: asked for {url}")
    shots = SHOTS.relative_to(ROOT)
    print(f"{len(pages)} pages, {failures} with problems; screenshots in {shots}/")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
