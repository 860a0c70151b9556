"""The draw-a-digit page in a real browser: Playwright driving Debian's Chromium against a live
``mnist-edge serve``. Mouse strokes on the canvas, the answer shown while drawing, the bars, the
28x28 the model saw, Clear (button and Escape), a photo upload and a phone-sized screen.

Playwright's own browser download cannot be used here; the system Chromium is launched instead
(``apt-get install chromium``: ``make browser`` does it). ``MNIST_EDGE_SERVE_SCREENSHOT=path``
saves the screenshot there too (the README's), ``MNIST_EDGE_SERVE_MODEL=path`` serves that model
instead of the tests' tiny one.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import os
import shutil
from pathlib import Path
from urllib.request import Request, urlopen

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "chromium is not installed: run `make browser` (apt-get install chromium)", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'"
)
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")

from mnist_edge.serve.process import ServerProcess  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Digits as pen strokes in the 280x280 canvas's own coordinates: lists of polylines.
STROKES = {
    1: [[(150, 40), (140, 140), (135, 240)]],
    0: [
        [
            (140 + 62 * math.sin(t / 20 * 2 * math.pi), 140 - 95 * math.cos(t / 20 * 2 * math.pi))
            for t in range(21)
        ]
    ],
    7: [[(70, 50), (210, 50), (120, 245)]],
}


@pytest.fixture(scope="module")
def server(exported):
    model = os.environ.get("MNIST_EDGE_SERVE_MODEL") or exported[("tflite", "int8")].path
    with ServerProcess(model) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 900, "height": 640})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    tab.goto(server.url + "/")
    yield tab
    context.close()
    assert errors == [], errors  # no script errors, no CSP violations


def draw(page, strokes, *, release: bool = True) -> None:
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * scale, box["y"] + y * scale

    for k, line in enumerate(strokes):
        page.mouse.move(*at(*line[0]))
        page.mouse.down()
        for (x0, y0), (x1, y1) in itertools.pairwise(line):
            for step in range(1, 9):  # intermediate points, as a hand makes them
                page.mouse.move(*at(x0 + (x1 - x0) * step / 8, y0 + (y1 - y0) * step / 8))
        if release or k < len(strokes) - 1:
            page.mouse.up()


def settled(page) -> None:
    """Wait until the page has its final answer: no timer, request or queued drawing left."""
    page.wait_for_function(
        "() => document.getElementById('result').getAttribute('aria-busy') === 'false'"
        " && document.getElementById('answer').textContent !== '?'"
        " || document.getElementById('status').textContent !== ''",
        timeout=15_000,
    )


def shown(page) -> tuple[str, str]:
    return page.inner_text("#answer"), page.inner_text("#answer-name")


def api_answer(server, page) -> dict:
    """What /predict says for the canvas exactly as the page has it."""
    data_url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    body = base64.b64decode(data_url.split(",", 1)[1])
    request = Request(server.url + "/predict", data=body, headers={"Content-Type": "image/png"})
    with urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("digit", sorted(STROKES))
def test_drawn_digit_is_answered_with_bars_and_the_image_seen(page, server, digit):
    assert shown(page)[0] == "?"
    draw(page, STROKES[digit])
    settled(page)
    label, name = shown(page)
    expected = api_answer(server, page)
    assert int(label) == expected["label"]  # the page shows the model's answer for its own canvas
    assert int(label) == digit, f"drew a {digit}, the page says {label} ({name})"
    assert name.startswith(expected["name"])
    widths = page.eval_on_selector_all(
        "#bars li .bar span", "spans => spans.map(s => parseFloat(s.style.width))"
    )
    np.testing.assert_allclose(widths, np.array(expected["probabilities"]) * 100, atol=0.06)
    assert page.get_attribute(f"#bars li[data-digit='{digit}']", "class") == "top"
    # The small canvas holds the 28x28 the model saw.
    seen = page.evaluate(
        "Array.from(document.getElementById('seen').getContext('2d').getImageData(0,0,28,28).data)"
    )
    assert np.array_equal(np.array(seen).reshape(28, 28, 4)[..., 0], np.array(expected["image"]))


def test_answer_updates_while_the_pen_is_still_down(page):
    draw(page, STROKES[1], release=False)
    page.wait_for_function("() => document.getElementById('answer').textContent !== '?'", timeout=15_000)
    page.mouse.up()


def test_clear_button_and_escape_key_reset_the_page(page):
    for clear in ("button", "escape"):
        draw(page, STROKES[7])
        settled(page)
        if clear == "button":
            page.click("#clear")
        else:
            page.keyboard.press("Escape")
        assert shown(page) == ("?", "Draw a digit")
        ink = page.evaluate(
            "Array.from(document.getElementById('pad').getContext('2d').getImageData(0,0,280,280).data)"
            ".some(v => v < 255)"
        )
        assert not ink


def test_keyboard_reaches_every_control(page):
    reached = []
    for _ in range(4):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
    assert {"pad", "clear", "upload"} <= set(reached)


def test_photo_upload_is_answered(page, server, mnist):
    from PIL import Image

    photo = np.full((120, 90), 235, np.uint8)  # light paper
    digit = 255 - np.array(Image.fromarray(mnist.x_test[0]).resize((72, 72)))  # dark ink
    photo[20:92, 9:81] = np.minimum(photo[20:92, 9:81], digit)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=90)
    page.set_input_files(
        "#upload", {"name": "digit.jpg", "mimeType": "image/jpeg", "buffer": buffer.getvalue()}
    )
    settled(page)
    request = Request(server.url + "/predict", data=buffer.getvalue(), headers={"Content-Type": "image/jpeg"})
    with urlopen(request, timeout=30) as response:
        expected = json.loads(response.read())
    assert int(shown(page)[0]) == expected["label"]


def test_upload_of_another_type_is_explained(page):
    page.set_input_files("#upload", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"seven"})
    assert "PNG or JPEG" in page.inner_text("#status")


def test_phone_screen_fits_without_sideways_scrolling(browser, server, tmp_path):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True
    )
    phone = context.new_page()
    phone.goto(server.url + "/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    pad = phone.locator("#pad").bounding_box()
    assert 250 <= pad["width"] <= 390
    assert phone.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 16
    context.close()


def test_screenshot_for_the_readme(page, tmp_path):
    draw(page, STROKES[7])
    settled(page)
    page.wait_for_timeout(300)  # the bars' short transition
    shot = page.screenshot(full_page=True)
    (tmp_path / "serve.png").write_bytes(shot)
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
    target = os.environ.get("MNIST_EDGE_SERVE_SCREENSHOT")
    if target:
        Path(target).write_bytes(shot)
