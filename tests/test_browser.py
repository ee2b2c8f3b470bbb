"""Open every report page in headless Chromium: it loads, logs nothing, and is not blank.

Needs the ``chromium`` binary (Debian package ``chromium``; CI installs it). Without it the
test fails, by design: a report nobody has seen render is not tested. The Table 3
screenshot is kept as ``test-artifacts/table3.png``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from clerc.report.html import render
from tests.fixtures_results import write_fixture

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")


def chromium() -> str:
    """The browser binary; fails the test (never skips) when none is installed."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"headless Chromium not found (looked for {', '.join(BROWSERS)}); "
                "install it with `apt-get install -y chromium`")


def open_page(page: Path, shot: Path, profile: Path, size: str = "1400,1100") -> list[str]:
    """Screenshot ``page`` into ``shot``; return the console messages Chromium logged."""
    cmd = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
           f"--window-size={size}", f"--screenshot={shot}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists(), f"chromium failed on {page}:\n{proc.stderr}"
    return [m.group(1) for m in map(CONSOLE.search, proc.stderr.splitlines()) if m]


def assert_not_blank(shot: Path) -> None:
    """More than one colour, and over 2% of pixels differ from the most common one."""
    img = Image.open(shot).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 24)
    assert colours and len(colours) > 2, f"{shot.name} is a single colour"
    background = max(colours)[0]
    share = 1 - background / (img.width * img.height)
    assert share > 0.02, f"{shot.name}: only {share:.1%} of pixels differ from the background"


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("browser")
    return render(write_fixture(root / "run", seed=5), root / "reports")


def test_every_page_renders_without_console_errors(pages, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    for page in pages:
        shot = tmp_path / f"{page.stem}.png"
        messages = open_page(page, shot, tmp_path / "profile")
        assert messages == [], f"{page.name} logged to the console: {messages}"
        assert_not_blank(shot)
        if page.stem == "table3":
            shutil.copyfile(shot, ARTIFACTS / "table3.png")
    assert (ARTIFACTS / "table3.png").stat().st_size > 10_000


def test_table3_dom_has_the_full_matrix(pages, tmp_path):
    page = next(p for p in pages if p.stem == "table3")
    cmd = [chromium(), "--headless", "--disable-gpu", "--no-sandbox",
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    table = re.search(r'<table id="table3-median_percentile".*?</table>', dom, re.S)
    assert table, "Table 3 is missing from the DOM Chromium built"
    assert len(re.findall(r'<td class="num matrix', table.group(0))) == 56


def test_console_errors_are_caught(tmp_path):
    """The check above can fail: a page that logs an error is reported."""
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><html><head><link rel="icon" href="data:,"></head>'
                    "<body><p>x</p><script>console.error('boom'); nope();</script></body></html>")
    messages = open_page(page, tmp_path / "bad.png", tmp_path / "profile", "400,300")
    assert any("boom" in m for m in messages), messages
    assert any("nope is not defined" in m for m in messages), messages
