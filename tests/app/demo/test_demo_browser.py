"""The demo in a real browser: ``ccr demo`` served on 127.0.0.1, Debian's chromium driven by Playwright.

Needs the system's ``chromium`` and ``fonts-noto-cjk`` (scripts/setup.sh installs both) and pip
``playwright``; it fails, not skips, without them. Full-page screenshots go to ``$CCR_SCREENSHOT_DIR``
(default: the test's temporary folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from modeling_ccr.app.demo import handlers

REPO = Path(__file__).resolve().parents[3]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model_dir, gallery):
    """``ccr demo MODEL --gallery INDEX`` in a subprocess; yields its URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "modeling_ccr.app.cli", "demo", str(tiny_model_dir), "--gallery",
               str(gallery.folder), "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            if server.poll() is not None:
                pytest.fail(f"ccr demo exited with {server.returncode}: {server.stderr.read()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("ccr demo did not answer within 120 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_system_browser_and_cjk_fonts_are_installed():
    assert shutil.which("chromium"), "Debian's chromium is missing: run scripts/setup.sh (apt-get install chromium)"
    fonts = subprocess.run(["fc-list"], capture_output=True, text=True).stdout
    assert "Noto Sans CJK" in fonts, "CJK fonts are missing: run scripts/setup.sh (apt-get install fonts-noto-cjk)"


def test_search_upload_and_bad_input_in_chromium(served, gallery, tmp_path):
    shots = Path(os.environ.get("CCR_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    started = time.time()
    photo = tmp_path / "upload.png"
    Image.new("RGB", (120, 90), (230, 180, 40)).save(photo)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(served)
        query = page.locator("#t2i-query textarea")
        status = page.locator("#t2i-status")
        images = page.locator("#t2i-gallery img")
        for text, shot in [("rotes Herz", "text_to_image_de.png"), ("猫の顔", "text_to_image_ja.png")]:
            query.fill(text)
            page.locator("#t2i-search").click()
            expect(status).to_contain_text(f"for “{text}”", timeout=60_000)
            expect(images.first).to_be_visible(timeout=30_000)
            assert images.count() >= 1
            page.screenshot(path=str(shots / shot), full_page=True)
        query.fill("x" * 5000)
        page.locator("#t2i-search").click()
        expect(status).to_contain_text("The query has 5,000 characters", timeout=60_000)
        page.screenshot(path=str(shots / "text_to_image_too_long.png"), full_page=True)

        page.get_by_role("tab", name="Image → text").click()
        pick = page.locator("#i2t-pick input")
        pick.fill(handlers.pick_choices(gallery)[5])
        pick.press("Enter")
        page.locator("#i2t-rank").click()
        expect(page.locator("#i2t-status")).to_contain_text("Gold caption ranks: en ", timeout=60_000)
        expect(page.locator("#i2t-chart img")).to_be_visible(timeout=30_000)
        page.screenshot(path=str(shots / "image_to_text_pick.png"), full_page=True)
        page.locator("#i2t-upload input[type=file]").set_input_files(str(photo))
        expect(page.locator("#i2t-upload")).to_contain_text("upload.png", timeout=30_000)
        page.locator("#i2t-rank").click()
        expect(page.locator("#i2t-status")).to_contain_text("captions in each language", timeout=60_000)
        expect(page.locator("#i2t-table")).to_contain_text("ja", timeout=30_000)
        page.screenshot(path=str(shots / "image_to_text_upload.png"), full_page=True)

        page.get_by_role("tab", name="Consistency").click()
        page.locator("#cons-compare").click()
        expect(page.locator("#cons-status")).to_contain_text("in every language's top 5", timeout=60_000)
        page.screenshot(path=str(shots / "consistency.png"), full_page=True)
        browser.close()
    for name in ["text_to_image_de.png", "text_to_image_ja.png", "text_to_image_too_long.png",
                 "image_to_text_pick.png", "image_to_text_upload.png", "consistency.png"]:
        assert (shots / name).stat().st_mtime >= started and (shots / name).stat().st_size > 10_000, name
