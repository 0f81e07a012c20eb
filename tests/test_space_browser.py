"""The Space in a real browser: Debian's chromium, headless, driven by Playwright, through every tab.

Screenshots of each tab land in `test-artifacts/space/`. Chromium must be at /usr/bin/chromium (`make browser`
installs it); Playwright's own browser downloads are never used. The page may only talk to the Space on 127.0.0.1:
any other request is blocked and fails the test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from space_server import serve_space
from test_space import FIXTURE, bundled_models_env, make_tiny_models

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts" / "space"
TIMEOUT_MS = 60_000

IMAGE_SHOWN = """selector => {
    const image = document.querySelector(selector);
    return image !== null && image.complete && image.naturalWidth > 0;
}"""


@pytest.fixture(scope="module")
def garment_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("browser-uploads")
    with np.load(FIXTURE) as data:
        images, labels = data["images"], data["labels"]
    files = {}
    for name, label in (("shirt", 0), ("dress", 3)):
        files[name] = folder / f"{name}.png"
        Image.fromarray(images[np.flatnonzero(labels == label)[0]]).save(files[name])
    files["corrupt"] = folder / "corrupt.png"
    files["corrupt"].write_bytes(b"definitely not a PNG" * 50)
    return files


@pytest.fixture(scope="module")
def space_url(tmp_path_factory: pytest.TempPathFactory):
    """The Space with the bundled models when they are there (the screenshots then show them), else tiny ones."""
    env = bundled_models_env() or make_tiny_models(tmp_path_factory.mktemp("browser-models"))
    with serve_space(env) as running:
        yield running.url


@pytest.fixture(scope="module")
def browser_page(space_url: str, tmp_path_factory: pytest.TempPathFactory):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`)")
    from playwright.sync_api import sync_playwright

    external_requests: list[str] = []

    def local_only(route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            external_requests.append(url)
            route.abort()

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", local_only)
        page = context.new_page()
        page.goto(space_url)
        yield page
        context.close()
    assert not external_requests, f"the page tried to reach the network: {external_requests}"


@pytest.fixture(scope="module")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


def wait_for_image(page, element_id: str) -> None:
    page.wait_for_function(IMAGE_SHOWN, arg=f"#{element_id} img")


def wait_for_error_notice(page, text: str) -> None:
    """Waits for the error notice (toast) showing `text`, and for its fade-in to end."""
    page.locator("[data-testid='toast-body']").filter(has_text=text).first.wait_for()
    page.wait_for_timeout(1000)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def draw_strokes(page, element_id: str, strokes: list[list[tuple[float, float]]]) -> None:
    """Draws with the mouse on the canvas of an image editor; points are fractions of the canvas's width and height."""
    page.locator(f"#{element_id} button[aria-label='Brush']").click()
    box = page.locator(f"#{element_id} canvas").first.bounding_box()
    for stroke in strokes:
        page.mouse.move(box["x"] + stroke[0][0] * box["width"], box["y"] + stroke[0][1] * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=12)
        page.mouse.up()


# Trousers: the outline of two legs. The canvas sits in the middle of its wider editor.
TROUSERS = [[(0.42, 0.1), (0.58, 0.1), (0.6, 0.9), (0.53, 0.9), (0.5, 0.3), (0.47, 0.9), (0.4, 0.9), (0.42, 0.1)]]


@pytest.mark.slow
def test_every_tab_in_a_real_browser(browser_page, artifacts, garment_files):
    page = browser_page

    page.locator("#generate-garments").click()
    wait_for_image(page, "garments-grid")
    page.screenshot(path=artifacts / "1-new-garments.png", full_page=True)

    open_tab(page, "Style explorer")
    page.locator("#sample-styles").click()
    wait_for_image(page, "styles-grid")
    page.locator("#first-garment input[type=file]").set_input_files(garment_files["shirt"])
    page.locator("#second-garment input[type=file]").set_input_files(garment_files["dress"])
    wait_for_image(page, "second-garment")
    page.locator("#interpolate").click()
    wait_for_image(page, "interpolation-strip")
    page.locator("#analyse-upload input[type=file]").set_input_files(garment_files["dress"])
    wait_for_image(page, "analyse-upload")
    page.locator("#analyse").click()
    wait_for_image(page, "analyse-reconstruction")
    wait_for_image(page, "analyse-input")
    page.get_by_text("against a threshold of").wait_for()
    page.screenshot(path=artifacts / "2-style-explorer.png", full_page=True)

    open_tab(page, "Body shapes")
    page.locator("#random-body").click()
    wait_for_image(page, "body-vae-avatar")
    wait_for_image(page, "body-avatar")
    page.locator("#body-read").get_by_text("hip_width").wait_for()
    page.screenshot(path=artifacts / "3-body-shapes.png", full_page=True)
    page.locator("#dress-body").click()  # opens the try-on tab with the sliders' avatar
    page.locator("#tryon-model").wait_for()

    page.locator("#tryon-gan-garment").click()
    wait_for_image(page, "tryon-garment")
    page.locator("#tryon-model").click()
    wait_for_image(page, "tryon-result")
    wait_for_image(page, "tryon-warped")
    page.locator("#tryon-gallery button.thumbnail-item").nth(5).click()  # a gallery avatar instead
    expect(page.locator("#tryon-source input[value='Gallery / seed']")).to_be_checked()
    body_result = page.locator("#tryon-result img").get_attribute("src")
    page.locator("#tryon-model").click()
    expect(page.locator("#tryon-result img")).not_to_have_attribute("src", body_result)
    page.locator("#tryon-reference").click()
    wait_for_image(page, "tryon-reference-result")
    wait_for_image(page, "tryon-reference-warp")
    page.screenshot(path=artifacts / "4-try-on.png", full_page=True)

    open_tab(page, "Sketch to garment")
    draw_strokes(page, "sketch-canvas", TROUSERS)
    page.locator("#sketch-generate").click()
    wait_for_image(page, "sketch-input")  # the canvas's drawing
    wait_for_image(page, "sketch-model-input")
    wait_for_image(page, "sketch-garment")
    page.screenshot(path=artifacts / "5-sketch-to-garment.png", full_page=True)
    page.locator("#sketch-class input").click()
    page.get_by_role("option", name="Trouser", exact=True).click()
    page.locator("#sketch-send").click()  # the garment and its class go to the try-on tab
    expect(page.get_by_role("tab", name="Try-on")).to_have_attribute("aria-selected", "true")
    wait_for_image(page, "tryon-garment")
    gan_result = page.locator("#tryon-result img").get_attribute("src")
    page.locator("#tryon-model").click()
    expect(page.locator("#tryon-result img")).not_to_have_attribute("src", gan_result)
    wait_for_image(page, "tryon-result")
    page.screenshot(path=artifacts / "5b-sketched-garment-tried-on.png", full_page=True)

    open_tab(page, "About")
    page.get_by_text("Loaded from").first.wait_for()
    page.get_by_text("The sketch-to-garment model", exact=True).wait_for()
    assert page.get_by_text("Not available").count() == 0
    page.screenshot(path=artifacts / "6-about.png", full_page=True)

    # The errors come last, so that their notices cover none of the screenshots above.
    open_tab(page, "Sketch to garment")
    page.locator("#sketch-canvas button[aria-label='Clear canvas']").click()
    page.locator("#sketch-input button[aria-label='Remove Image']").click()
    page.locator("#sketch-generate").click()
    wait_for_error_notice(page, "No sketch image: upload one or pick an example")
    page.screenshot(path=artifacts / "5c-sketch-missing.png")

    open_tab(page, "Style explorer")
    dress_input = page.locator("#analyse-input img").get_attribute("src")
    page.locator("#analyse-examples button").first.click()  # an example: a file of Gradio's cache, accepted
    wait_for_image(page, "analyse-upload")
    page.locator("#analyse").click()
    expect(page.locator("#analyse-input img")).not_to_have_attribute("src", dress_input)
    expect(page.locator("#analyse-verdict")).to_contain_text("against a threshold of")
    page.locator("#analyse-upload button[aria-label='Remove Image']").click()
    page.locator("#analyse-upload input[type=file]").set_input_files(garment_files["corrupt"])
    page.locator("#analyse").click()
    wait_for_error_notice(page, "The garment upload is not an image")
    # Nothing of the example's analysis stays beside the corrupt upload.
    expect(page.locator("#analyse-input img")).to_have_count(0)
    expect(page.locator("#analyse-reconstruction img")).to_have_count(0)
    expect(page.locator("#analyse-verdict")).not_to_contain_text("against a threshold of")
    page.screenshot(path=artifacts / "2b-style-explorer-corrupt-upload.png")
