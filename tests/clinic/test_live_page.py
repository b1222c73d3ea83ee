"""The live page in a real browser: Debian's Chromium, headless, driven by Playwright (no browser
download), against `ecgpipe up --devices 3` and `ecgpipe serve --port 0` started through the CLI.

It checks that the page's ledger matches `ecgpipe report --json` read just before and just after
it (within one refresh), kills ingest through the CLI and sees the page show the outage and the
buffered backlog grow, saves screenshots and inspects them (the main elements visible, the
chart and the strip drawn), and that the page logged no console error. With
ECGPIPE_UPDATE_SCREENSHOT=1 the outage screenshot is also copied to docs/img/live-page.png.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ECGPIPE = [sys.executable, "-m", "lab.cli"]
CHROMIUM = "/usr/bin/chromium"
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "live-page.png"
FIELDS = ("generated", "stored", "duplicates", "buffered", "evicted", "lost")
MAIN = ("#ledger", "#ledger-generated", "#backlog-chart", "#ecg-strip", "#device-list", "#stack-state")


def cli(state: Path, *args: str) -> str:
    res = subprocess.run([*ECGPIPE, *args, "--state-dir", str(state)], capture_output=True, text=True,
                         timeout=180, env={**os.environ, "ECGPIPE_STATE_DIR": ""}, check=False)
    assert res.returncode == 0, f"ecgpipe {' '.join(args)} failed: {res.stderr}{res.stdout}"
    return res.stdout


def report_totals(state: Path) -> dict[str, int]:
    return dict(json.loads(cli(state, "report", "--json"))["totals"])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A stack of 3 devices and `ecgpipe serve` over it: (state dir, the page's URL with the token)."""
    state = tmp_path / "state"
    serve: subprocess.Popen[bytes] | None = None
    try:
        cli(state, "up", "--devices", "3")
        with (tmp_path / "serve.log").open("wb") as log:
            serve = subprocess.Popen([*ECGPIPE, "serve", "--port", "0", "--state-dir", str(state)],
                                     stdout=log, stderr=subprocess.STDOUT)
        where = state / "serve" / "serve.json"
        wait_until(lambda: where.is_file() or serve is None or serve.poll() is not None, 60,
                   what="ecgpipe serve to write serve.json")
        assert serve.poll() is None, (tmp_path / "serve.log").read_text()
        url = json.loads(where.read_text())["url"]
        token = (state / "secrets" / "api" / "clinician.token").read_text().strip()
        yield state, f"{url}/live#token={token}"
    finally:
        if serve is not None and serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait(10)
        subprocess.run([*ECGPIPE, "down", "--state-dir", str(state)], capture_output=True, timeout=120,
                       check=False)


def polls(page: Page) -> int:
    return int(page.evaluate("Number(document.body.dataset.polls || 0)"))


def next_polls(page: Page, n: int = 2) -> None:
    """Wait for n more snapshots: the n-th was built after this call (the server caches one for
    at most half a refresh, the page asks once a refresh)."""
    want = polls(page) + n  # polled from here: the page's CSP refuses wait_for_function's eval
    wait_until(lambda: polls(page) >= want, 30, what=f"{n} more snapshots on the page")


def shown(page: Page) -> dict[str, int]:
    values: dict[str, Any] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[id^=ledger-]')]"
        ".filter(e => e.dataset.value !== undefined).map(e => [e.id.slice(7), e.dataset.value]))")
    return {k: int(values[k]) for k in FIELDS}


def crop(shot: Image.Image, page: Page, selector: str, least: int = 100) -> np.ndarray:
    box = page.locator(selector).bounding_box()
    assert box is not None and min(box["width"], box["height"]) > least, f"{selector} not visible: {box}"
    x, y, w, h = (round(box[k]) for k in ("x", "y", "width", "height"))
    return np.asarray(shot.convert("RGB").crop((x, y, x + w, y + h)), dtype=np.int16)


def count(pixels: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(pixels - np.asarray(rgb)).max(axis=2) <= tol).sum())


def test_live_page_follows_the_stack_through_an_ingest_outage(served: tuple[Path, str],
                                                              tmp_path: Path) -> None:
    state, url = served
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 940})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error"
                    else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(url)
            expect(page.locator("#stack-state")).to_have_text("running", timeout=30_000)
            assert "token" not in page.url  # the fragment is read, then taken out of the address bar
            expect(page.locator("#devices-online")).to_have_text("3", timeout=30_000)
            expect(page.locator("#device-list button")).to_have_count(3)

            # the ledger the page shows lies between two `ecgpipe report --json` around it
            wait_until(lambda: report_totals(state)["stored"] >= 6, 60, what="readings stored")
            before = report_totals(state)
            next_polls(page)
            on_page = shown(page)
            after = report_totals(state)
            for k in ("generated", "stored", "duplicates", "lost", "evicted"):
                assert before[k] <= on_page[k] <= after[k], (k, before, on_page, after)
            assert on_page["generated"] == sum(on_page[k] for k in ("stored", "buffered", "evicted", "lost"))
            assert page.locator("#ledger-balance").inner_text().endswith("holds")

            expect(page.locator("#ecg-note")).to_contain_text("readings in", timeout=30_000)
            running = tmp_path / "live-running.png"
            page.screenshot(path=str(running), full_page=True)
            trace = count(crop(Image.open(running), page, "#ecg-strip"), (17, 17, 17), tol=60)
            assert trace > 300, f"no ECG trace on the strip ({trace} dark pixels)"

            cli(state, "kill", "ingest")
            expect(page.locator("#stack-state")).to_have_text("outage", timeout=30_000)
            expect(page.locator("#outage")).to_contain_text("ingest: killed by SIGKILL")
            levels = []
            for _ in range(3):  # the backlog grows over two refreshes
                next_polls(page)
                levels.append(shown(page)["buffered"])
            assert levels[0] < levels[1] < levels[2], levels

            shot = tmp_path / "live-outage.png"
            page.screenshot(path=str(shot), full_page=True)
            inspect_screenshot(shot, page)
            if os.environ.get("ECGPIPE_UPDATE_SCREENSHOT") == "1":
                DOCS_SHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, DOCS_SHOT)
        finally:
            browser.close()
    assert problems == []


def inspect_screenshot(path: Path, page: Page) -> None:
    """The PNG decodes at a sensible size; the main elements are visible in it; the chart has
    its outbox line and the outage's shading; the strip is ECG paper, not a blank box."""
    shot = Image.open(path)
    shot.load()
    assert shot.format == "PNG" and shot.width == 1280 and 800 <= shot.height <= 4000, shot.size
    for selector in MAIN:
        box = page.locator(selector).bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, selector
        assert box["x"] + box["width"] <= shot.width and box["y"] + box["height"] <= shot.height, selector
    chart = crop(shot, page, "#backlog-chart")
    assert chart.std() > 5, "the backlog chart is blank"
    assert count(chart, (230, 138, 0)) > 50, "no device-outbox line on the chart"
    assert count(chart, (249, 225, 225), tol=12) > 500, "no fault window shaded on the chart"
    strip = crop(shot, page, "#ecg-strip")
    assert strip.std() > 5 and count(strip, (224, 108, 108)) > 500, "the strip is not on ECG paper"
    header = crop(shot, page, "#stack-box", least=20)
    assert count(header, (198, 40, 40), tol=20) > 200, "the header does not show the outage in red"
