"""The demo in a real browser: ``ccr demo`` served on 127.0.0.1, Debian's chromium driven by Playwright.

Needs the system's ``chromium`` and ``fonts-noto-cjk`` (scripts/setup.sh installs both) and pip
``playwright``; it fails, not skips, without them. Full-page screenshots go to ``$CCR_SCREENSHOT_DIR``
(default: the test's temporary folder); the layout test saves ``layout_1280.png`` and ``layout_390.png``
(desktop and phone widths) with the other tabs beside them.
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
PAGE_HEIGHT = 900

# For each element: its box, its image's natural size, whether an ancestor that clips its overflow (a
# scroll box, overflow: hidden / clip) cuts any of it off, and whether its text is cut (an ellipsis).
BOXES = """elements => elements.map(element => {
    const box = element.getBoundingClientRect();
    let clipped = false;
    for (let node = element.parentElement; node && node !== document.body; node = node.parentElement) {
        const style = getComputedStyle(node);
        if (style.overflowX === "visible" && style.overflowY === "visible") continue;
        const outer = node.getBoundingClientRect();
        clipped ||= box.left < outer.left - 1 || box.right > outer.right + 1 || box.top < outer.top - 1
                    || box.bottom > outer.bottom + 1;
    }
    return {left: box.left, right: box.right, top: box.top, width: box.width, height: box.height, clipped,
            natural: [element.naturalWidth, element.naturalHeight], text: element.innerText,
            cut: element.scrollWidth > element.clientWidth + 1};
})"""


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


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, for the module's tests."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path):
    """The screenshot folder: ``$CCR_SCREENSHOT_DIR`` or the test's temporary folder."""
    folder = Path(os.environ.get("CCR_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def assert_saved(shots: Path, names: list[str], since: float) -> None:
    """Each screenshot was written by this run and holds a page (not a blank image)."""
    for name in names:
        assert (shots / name).stat().st_mtime >= since and (shots / name).stat().st_size > 10_000, name


def test_system_browser_and_cjk_fonts_are_installed():
    assert shutil.which("chromium"), "Debian's chromium is missing: run scripts/setup.sh (apt-get install chromium)"
    fonts = subprocess.run(["fc-list"], capture_output=True, text=True).stdout
    assert "Noto Sans CJK" in fonts, "CJK fonts are missing: run scripts/setup.sh (apt-get install fonts-noto-cjk)"


def test_search_examples_upload_and_bad_input_in_chromium(served, browser, gallery, shots, tmp_path):
    started = time.time()
    photo = tmp_path / "upload.png"
    Image.new("RGB", (120, 90), (230, 180, 40)).save(photo)
    page = browser.new_page(viewport={"width": 1280, "height": PAGE_HEIGHT})
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
    query.press("Enter")  # Enter searches too
    expect(status).to_contain_text("The query has 5,000 characters", timeout=60_000)
    page.screenshot(path=str(shots / "text_to_image_too_long.png"), full_page=True)
    page.locator("#t2i-examples").get_by_text("красное яблоко").click()  # an example fills the inputs and runs
    expect(status).to_contain_text("8 of 24 images for “красное яблоко”", timeout=60_000)
    expect(query).to_have_value("красное яблоко")
    expect(images).to_have_count(8, timeout=30_000)

    rank_captions_of_a_pick(page, handlers.pick_choices(gallery)[5])
    expect(page.locator("#i2t-chart img")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "image_to_text_pick.png"), full_page=True)
    for source in ("Upload file", "Capture from camera", "Paste from clipboard"):
        expect(page.locator("#i2t-upload").get_by_role("button", name=source)).to_be_visible()
    page.locator("#i2t-upload input[type=file]").set_input_files(str(photo))
    preview = page.locator("#i2t-upload img")
    expect(preview).to_be_visible(timeout=30_000)  # the upload is previewed
    assert preview.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [120, 90]
    page.locator("#i2t-rank").click()
    expect(page.locator("#i2t-status")).to_contain_text("captions in each language", timeout=60_000)
    expect(page.locator("#i2t-table")).to_contain_text("ja", timeout=30_000)
    page.screenshot(path=str(shots / "image_to_text_upload.png"), full_page=True)

    page.get_by_role("tab", name="Consistency").click()
    page.locator("#cons-compare").click()
    expect(page.locator("#cons-status")).to_contain_text("in every language's top 5", timeout=60_000)
    expect(page.locator("#cons-gallery img")).to_have_count(5 * 5, timeout=30_000)  # five lines, top 5 each
    page.screenshot(path=str(shots / "consistency.png"), full_page=True)
    page.close()
    assert_saved(shots, ["text_to_image_de.png", "text_to_image_ja.png", "text_to_image_too_long.png",
                         "image_to_text_pick.png", "image_to_text_upload.png", "consistency.png"], started)


def rank_captions_of_a_pick(page, choice: str) -> None:
    """On the image -> text tab, pick the gallery image ``choice``, rank its captions and wait for the answer."""
    page.get_by_role("tab", name="Image → text").click()
    pick = page.locator("#i2t-pick input")
    pick.fill(choice)
    pick.press("Enter")
    page.locator("#i2t-rank").click()
    expect(page.locator("#i2t-status")).to_contain_text("Gold caption ranks: en ", timeout=60_000)


def assert_all_shown(page, selector: str, count: int) -> list[dict]:
    """The ``count`` images of ``selector`` are loaded and whole on the page: inside the window's width, cut
    by no scroll box (every row shown), no larger than their own pixels (not blown up). Returns their boxes."""
    images = page.locator(selector)
    expect(images).to_have_count(count, timeout=30_000)
    for i in range(count):
        images.nth(i).scroll_into_view_if_needed()
    page.wait_for_function(f"() => [...document.querySelectorAll({selector!r})].every("
                           "image => image.complete && image.naturalWidth > 0)", timeout=30_000)
    width = page.evaluate("innerWidth")
    boxes = images.evaluate_all(BOXES)
    for box in boxes:
        assert 0 <= box["left"] and box["right"] <= width, (selector, box, width)
        assert not box["clipped"], (selector, box)
        assert 0 < box["width"] <= box["natural"][0] + 0.5 and 0 < box["height"] <= box["natural"][1] + 0.5, box
    return boxes


def assert_no_horizontal_overflow(page) -> None:
    """Nothing on the page reaches past the window's right edge (no sideways scrolling)."""
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth"), page.evaluate(
        "[document.scrollingElement.scrollWidth, innerWidth]")


@pytest.mark.parametrize("width, columns", [(1280, 8), (390, 2)])
def test_layout_at_desktop_and_phone_width(served, browser, gallery, loaded, tiny_model_dir, shots, width, columns):
    """Every result whole and within the window, captions uncut, no sideways overflow, the model's state
    shown on the first screen; screenshots of each tab at ``width``."""
    started = time.time()
    page = browser.new_page(viewport={"width": width, "height": PAGE_HEIGHT})
    page.goto(served)
    state = page.locator("#model-state")
    expect(state).to_have_text(f"Model: {tiny_model_dir}, trained.")  # the tiny model has no "untrained" flag
    box = state.bounding_box()
    assert box["y"] + box["height"] <= PAGE_HEIGHT and box["x"] + box["width"] <= width

    page.locator("#t2i-query textarea").fill("rotes Herz")
    page.locator("#t2i-search").click()
    expect(page.locator("#t2i-status")).to_contain_text("8 of 24 images for “rotes Herz”", timeout=60_000)
    boxes = assert_all_shown(page, "#t2i-gallery img", 8)
    assert len({round(box["left"]) for box in boxes}) == columns  # as many columns as fit the width
    expected, _ = handlers.text_to_image("rotes Herz", gallery, *loaded, language="en", k=8)
    captions = page.locator("#t2i-gallery .caption-label").evaluate_all(BOXES)
    assert [caption["text"] for caption in captions] == [label for _, label in expected]  # whole captions
    assert not any(caption["cut"] or caption["clipped"] for caption in captions), captions
    assert_no_horizontal_overflow(page)
    page.screenshot(path=str(shots / f"layout_{width}.png"), full_page=True)

    rank_captions_of_a_pick(page, handlers.pick_choices(gallery)[2])
    expect(page.locator("#i2t-table")).to_contain_text("ja", timeout=30_000)
    table = page.locator("#i2t-table [role=grid]").evaluate_all(BOXES)[0]
    assert table["right"] <= width and not table["clipped"], table
    assert page.locator("#i2t-table .virtual-table-viewport").evaluate(  # the table wraps, no sideways scroll
        "viewport => viewport.scrollWidth <= viewport.clientWidth + 1")
    assert_no_horizontal_overflow(page)
    page.screenshot(path=str(shots / f"layout_{width}_image_to_text.png"), full_page=True)

    page.get_by_role("tab", name="Consistency").click()
    page.locator("#cons-compare").click()
    expect(page.locator("#cons-status")).to_contain_text("in every language's top 5", timeout=60_000)
    boxes = assert_all_shown(page, "#cons-gallery img", 5 * 5)
    # one language per row, its top 5 side by side (whatever the width)
    assert len({round(box["left"]) for box in boxes}) == 5 and len({round(box["top"]) for box in boxes}) == 5
    assert_no_horizontal_overflow(page)
    page.screenshot(path=str(shots / f"layout_{width}_consistency.png"), full_page=True)
    page.close()
    assert_saved(shots, [f"layout_{width}.png", f"layout_{width}_image_to_text.png",
                         f"layout_{width}_consistency.png"], started)
