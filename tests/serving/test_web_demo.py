"""The Gradio demo in a real headless browser (Debian's chromium, driven by Playwright).

Chromium must be installed (`make test` installs it); a missing browser fails the test rather
than skipping it, so that CI cannot pass without exercising the page.
"""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from serving_helpers import png_bytes

from mqt_llava.model.images import load_image
from mqt_llava.serving.ui import build_demo, launch_options

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "serving"
QUESTION = "What is in the picture?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def demo_url(tiny_vlm):
    demo = build_demo(tiny_vlm, max_new_tokens=8)
    demo.launch(prevent_thread_lock=True, **launch_options("127.0.0.1", free_port()))
    try:
        yield demo.local_url
    finally:
        demo.close()


def test_upload_ask_and_compare_two_budgets_in_chromium(demo_url, tiny_vlm, tmp_path):
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium"
    image = tmp_path / "picture.png"
    image.write_bytes(png_bytes(seed=3))
    want = {m: tiny_vlm.ask(load_image(image), QUESTION, m, max_new_tokens=8) for m in (16, 2)}
    assert want[16] != want[2]  # else the comparison below could not tell the budgets apart
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(demo_url)
            page.locator("#image input[type=file]").set_input_files(image)
            expect(page.locator("#image img").first).to_be_visible(timeout=20_000)
            page.locator("#question textarea").fill(QUESTION)
            budget_b = page.locator("#budget-b input[type=number]")
            budget_b.fill("2")
            budget_b.press("Enter")
            page.locator("#ask").click()
            latency_b = page.locator("#latency-b textarea, #latency-b input").first
            expect(latency_b).to_have_value(
                re.compile(r"\d+ ms with 2 visual tokens"), timeout=30_000
            )
            latency_a = page.locator("#latency-a textarea, #latency-a input").first
            assert re.fullmatch(r"\d+ ms with 16 visual tokens", latency_a.input_value())
            assert page.locator("#answer-a textarea").input_value() == want[16]
            assert page.locator("#answer-b textarea").input_value() == want[2]
            page.screenshot(path=ARTIFACTS / "web-demo.png", full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "web-demo.png").stat().st_size > 10_000
