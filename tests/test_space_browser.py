"""The Space in a real browser: Debian's chromium, headless, driven by Playwright, used as a visitor would.

Every tab must show a result as soon as it opens; garments must be at least 128 pixels wide on a desktop and on a
390-pixel phone; the sketch canvas must draw on the first drag; the sketch input touched last must win; a failed
request must empty its results. Screenshots land in `space-screenshots/` under pytest's base temporary folder
(`--basetemp` to choose it); their paths are printed. Chromium must be at /usr/bin/chromium (`make browser` installs
it); Playwright's own browser downloads are never used. The page may only talk to the Space on 127.0.0.1: any other
request is blocked and fails the test.
"""

from __future__ import annotations

import re
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
TIMEOUT_MS = 60_000
expect.set_options(timeout=TIMEOUT_MS)  # requests may wait in the Space's queue on a busy machine
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TAB_NAMES = ("New garments", "Style explorer", "Body shapes", "Try-on", "Sketch to garment", "About")
MIN_GARMENT_PIXELS = 128

# The first `count` images matching a selector loaded and shown (Gradio's galleries load the rest when scrolled to).
IMAGES_SHOWN = """([selector, count]) => {
    const images = Array.from(document.querySelectorAll(selector)).slice(0, count);
    return images.length === count && images.every(image => image.complete && image.naturalWidth > 0);
}"""
# The first garment's image and caption, and the gallery's label, as laid out on the page.
GALLERY_LAYOUT = """selector => {
    const box = element => {
        const rect = document.querySelector(selector + " " + element).getBoundingClientRect();
        return {left: rect.left, right: rect.right, top: rect.top, bottom: rect.bottom, width: rect.width};
    };
    return {image: box("img"), caption: box(".caption-label"), label: box("[data-testid='block-label']")};
}"""
# An image drawn whole: its box has the image's own aspect ratio, or it is fitted inside the box (object-fit contain).
UNCROPPED = """image => {
    const rect = image.getBoundingClientRect();
    const fit = getComputedStyle(image).objectFit;
    const ratio = (rect.width / rect.height) / (image.naturalWidth / image.naturalHeight);
    return {fit, ratio, width: rect.width, natural: image.naturalWidth, page: document.documentElement.clientWidth};
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
def space(tmp_path_factory: pytest.TempPathFactory):
    """The Space with the bundled models when they are there (the screenshots then show them), else tiny ones."""
    env = bundled_models_env() or make_tiny_models(tmp_path_factory.mktemp("browser-models"))
    with serve_space(env) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """A chromium context that may reach 127.0.0.1 only."""
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
            viewport=DESKTOP,
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", local_only)
        yield context
        context.close()
    assert not external_requests, f"the page tried to reach the network: {external_requests}"


@pytest.fixture
def page(request, browser, space, screenshots, capsys):
    """A fresh visit of the Space at desktop width; when the test fails, a screenshot and the server's log."""
    failures = request.session.testsfailed
    visit = browser.new_page()
    visit.set_viewport_size(DESKTOP)
    visit.goto(space.url)
    visit.locator("#garments-grid").wait_for()
    yield visit
    if request.session.testsfailed > failures:
        path = screenshots / f"failed-{request.node.name}.png"
        visit.screenshot(path=path, full_page=True)
        with capsys.disabled():
            print(f"\nscreenshot of the failure: {path}\nserver log:\n{space.output()[-5000:]}")
    visit.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "space-screenshots"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def shoot(screenshots: Path, capsys: pytest.CaptureFixture):
    """`shoot(page, name, full_page=True)` saves a screenshot and prints its path (past pytest's capture)."""

    def save(page, name: str, full_page: bool = True) -> None:
        path = screenshots / f"{name}.png"
        if full_page:  # Gradio loads gallery images lazily: load them all for a picture of the whole page
            page.evaluate(
                "() => document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })"
            )
            page.wait_for_timeout(500)
        page.screenshot(path=path, full_page=full_page)
        with capsys.disabled():
            print(f"\nscreenshot: {path}")

    return save


def wait_for_images(page, selector: str, count: int = 1) -> None:
    page.wait_for_function(IMAGES_SHOWN, arg=[selector, count])


def wait_for_image(page, element_id: str) -> None:
    # Gradio's images load lazily: one far below the visible part of the page loads only when scrolled to.
    page.locator(f"#{element_id}").scroll_into_view_if_needed()
    wait_for_images(page, f"#{element_id} img")


def image_source(page, element_id: str) -> str | None:
    images = page.locator(f"#{element_id} img")
    return images.first.get_attribute("src") if images.count() else None


def wait_for_new_image(page, element_id: str, previous: str | None) -> str:
    """Waits for the first image of the element to be another file than `previous`, shown; returns its source."""
    expect(page.locator(f"#{element_id} img").first).not_to_have_attribute("src", previous or "")
    wait_for_image(page, element_id)
    return image_source(page, element_id)


def wait_for_error_notice(page, text: str) -> None:
    """Waits for the error notice (toast) showing `text`, and for its fade-in to end."""
    page.locator("[data-testid='toast-body']").filter(has_text=text).first.wait_for()
    page.wait_for_timeout(1000)


def open_tab(page, name: str) -> None:
    """Opens a tab from the tab bar (wrapped onto more rows on a narrow screen, never hidden in a menu)."""
    page.get_by_role("tab", name="New garments").wait_for()  # the page is drawn
    page.get_by_role("tab", name=name).click()


def upload(page, element_id: str, path: Path) -> None:
    """Replaces the image of an upload input by the file at `path`."""
    remove = page.locator(f"#{element_id} button[aria-label='Remove Image']")
    if remove.count():
        remove.click()
    page.locator(f"#{element_id} input[type=file]").set_input_files(path)


def draw_strokes(page, element_id: str, strokes: list[list[tuple[float, float]]]) -> None:
    """Drags the mouse over the canvas of an image editor, as a visitor draws, without picking a tool first; points
    are fractions of the canvas's width and height."""
    # The brush is picked for the visitor when the tab opens: wait for it, as a visitor sees it, not a click.
    expect(page.locator(f"#{element_id} button[aria-label='Brush']")).to_have_class(re.compile(r"\bhighlight\b"))
    box = page.locator(f"#{element_id} canvas").first.bounding_box()
    for stroke in strokes:
        page.mouse.move(box["x"] + stroke[0][0] * box["width"], box["y"] + stroke[0][1] * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=12)
        page.mouse.up()
    # Gradio's editor reports the drawing up to a second after the stroke (then the hidden "last touched" field
    # reads "canvas"); a click before that finds the canvas empty, and is told so (see the sketch rule's test).
    expect(page.locator("#sketch-last-touched :is(textarea, input)")).to_have_value("canvas")


def assert_garments_shown(page, element_id: str, count: int) -> dict:
    """The gallery shows `count` garments at least MIN_GARMENT_PIXELS wide, each caption under its image and the
    gallery's label above the first; returns the layout of the first garment."""
    wait_for_images(page, f"#{element_id} .thumbnail-item img", 1)
    expect(page.locator(f"#{element_id} .thumbnail-item")).to_have_count(count)
    layout = page.evaluate(GALLERY_LAYOUT, f"#{element_id}")
    assert layout["image"]["width"] >= MIN_GARMENT_PIXELS, layout
    assert layout["caption"]["top"] >= layout["image"]["bottom"] - 1, f"a caption covers its garment: {layout}"
    assert layout["label"]["bottom"] <= layout["image"]["top"] + 1, f"the label covers the first garment: {layout}"
    return layout


# Trousers: the outline of two legs. The canvas sits in the middle of its wider editor.
TROUSERS = [[(0.42, 0.1), (0.58, 0.1), (0.6, 0.9), (0.53, 0.9), (0.5, 0.3), (0.47, 0.9), (0.4, 0.9), (0.42, 0.1)]]
# A skirt: a trapezoid.
SKIRT = [[(0.4, 0.15), (0.6, 0.15), (0.7, 0.85), (0.3, 0.85), (0.4, 0.15)]]


@pytest.mark.slow
def test_every_tab_opens_with_a_result(page, shoot):
    """No button pressed: each tab already shows what it does."""
    assert_garments_shown(page, "garments-grid", 16)
    expect(page.locator("#garments-grid .caption-label").first).to_have_text("T-shirt/top 1")
    # Bold words in the page's font, not in a larger fallback (the theme's semibold file lacks most letters).
    assert page.evaluate("() => document.fonts.check('700 14px \"Source Sans Pro\"')")
    assert page.evaluate("() => getComputedStyle(document.querySelector('strong')).fontWeight") == "700"
    shoot(page, "1-new-garments")

    open_tab(page, "Style explorer")
    assert_garments_shown(page, "styles-grid", 16)
    wait_for_images(page, "#interpolation-strip .thumbnail-item img", 1)
    expect(page.locator("#interpolation-strip .thumbnail-item")).to_have_count(8)
    for element_id in ("first-garment", "second-garment", "analyse-upload", "analyse-input", "analyse-reconstruction"):
        wait_for_image(page, element_id)
    expect(page.locator("#analyse-verdict")).to_contain_text("against a threshold of")
    shoot(page, "2-style-explorer")

    open_tab(page, "Body shapes")
    wait_for_image(page, "body-vae-avatar")
    wait_for_image(page, "body-avatar")
    expect(page.locator("#body-read")).to_contain_text("0.12 poor")  # the waist width's read-back accuracy
    expect(page.locator("#body-read-note")).to_contain_text("How far to trust the read-back")
    shoot(page, "3-body-shapes")

    open_tab(page, "Try-on")
    for element_id in ("tryon-garment", "tryon-person", "tryon-cloth", "tryon-result", "tryon-warped"):
        wait_for_image(page, element_id)
    wait_for_image(page, "tryon-reference-result")
    wait_for_image(page, "tryon-reference-warp")
    shoot(page, "4-try-on")

    open_tab(page, "Sketch to garment")
    for element_id in ("sketch-input", "sketch-model-input", "sketch-garment"):
        wait_for_image(page, element_id)
    # The brush is in hand: the canvas draws on the first drag.
    expect(page.locator("#sketch-canvas button[aria-label='Brush']")).to_have_class(re.compile(r"\bhighlight\b"))
    expect(page.locator("#sketch-last-touched")).to_be_hidden()
    page.get_by_text("Which input is used: the one you touched last.").wait_for()
    shoot(page, "5-sketch-to-garment")

    open_tab(page, "About")
    page.get_by_text("The sketch-to-garment model", exact=True).wait_for()
    # Every model's section is closed: the tab is a page, not a 19,000-pixel scroll.
    expect(page.get_by_text("Loaded from").first).to_be_hidden()
    assert page.evaluate("() => document.documentElement.scrollHeight") < 3000
    shoot(page, "6-about")
    page.get_by_text("The garment GAN", exact=True).click()
    page.get_by_text("Loaded from").first.wait_for()
    figure = page.locator(".figure img").first
    figure.scroll_into_view_if_needed()
    wait_for_images(page, ".figure img", 1)
    layout = figure.evaluate(UNCROPPED)
    assert layout["fit"] == "contain" or abs(layout["ratio"] - 1) < 0.02, f"the figure is cropped: {layout}"
    assert layout["width"] <= layout["page"], layout
    assert page.get_by_text("Not available").count() == 0
    shoot(page, "6b-about-gan-open")


@pytest.mark.slow
def test_using_every_tab(page, shoot, garment_files):
    """The buttons of each tab replace its first result with a new one."""
    first = image_source(page, "garments-grid")
    page.locator("#garments-seed input").fill("7")
    page.locator("#generate-garments").click()
    wait_for_new_image(page, "garments-grid", first)
    assert_garments_shown(page, "garments-grid", 16)

    open_tab(page, "Style explorer")
    samples = image_source(page, "styles-grid")
    page.locator("#styles-seed input").fill("3")
    page.locator("#sample-styles").click()
    wait_for_new_image(page, "styles-grid", samples)
    strip = image_source(page, "interpolation-strip")
    upload(page, "first-garment", garment_files["shirt"])
    upload(page, "second-garment", garment_files["dress"])
    wait_for_image(page, "second-garment")
    page.locator("#interpolate").click()
    wait_for_new_image(page, "interpolation-strip", strip)
    analysed = image_source(page, "analyse-input")
    upload(page, "analyse-upload", garment_files["dress"])
    wait_for_image(page, "analyse-upload")
    page.locator("#analyse").click()
    wait_for_new_image(page, "analyse-input", analysed)
    expect(page.locator("#analyse-verdict")).to_contain_text("against a threshold of")

    open_tab(page, "Body shapes")
    body = image_source(page, "body-avatar")
    page.locator("#random-body").click()
    wait_for_new_image(page, "body-avatar", body)
    wait_for_image(page, "body-vae-avatar")
    page.locator("#dress-body").click()  # opens the try-on tab with the sliders' avatar
    expect(page.get_by_role("tab", name="Try-on")).to_have_attribute("aria-selected", "true")

    result = image_source(page, "tryon-result")
    page.locator("#tryon-gan-garment").click()
    wait_for_image(page, "tryon-garment")
    page.locator("#tryon-model").click()
    result = wait_for_new_image(page, "tryon-result", result)
    page.locator("#tryon-gallery button.thumbnail-item").nth(5).click()  # a gallery avatar instead
    expect(page.locator("#tryon-source input[value='Gallery / seed']")).to_be_checked()
    page.locator("#tryon-model").click()
    wait_for_new_image(page, "tryon-result", result)
    reference = image_source(page, "tryon-reference-result")
    page.locator("#tryon-reference").click()
    wait_for_new_image(page, "tryon-reference-result", reference)
    shoot(page, "4b-try-on-used")

    open_tab(page, "Sketch to garment")
    garment = image_source(page, "sketch-garment")
    draw_strokes(page, "sketch-canvas", TROUSERS)
    page.locator("#sketch-generate").click()
    wait_for_new_image(page, "sketch-garment", garment)
    page.locator("#sketch-class input").click()
    page.get_by_role("option", name="Trouser", exact=True).click()
    page.locator("#sketch-send").click()  # the garment and its class go to the try-on tab
    expect(page.get_by_role("tab", name="Try-on")).to_have_attribute("aria-selected", "true")
    wait_for_image(page, "tryon-garment")
    result = image_source(page, "tryon-result")
    page.locator("#tryon-model").click()
    wait_for_new_image(page, "tryon-result", result)
    shoot(page, "5b-sketched-garment-tried-on")


@pytest.mark.slow
def test_the_sketch_input_touched_last_wins(page, shoot):
    open_tab(page, "Sketch to garment")
    example_buttons = page.locator("#sketch-examples button")

    # Drawn first, then an example picked: the example wins.
    draw_strokes(page, "sketch-canvas", TROUSERS)
    sketch = image_source(page, "sketch-input")
    example_buttons.nth(3).click()
    example = wait_for_new_image(page, "sketch-input", sketch)
    assert page.evaluate("() => window.wardrobeSketchSource") == "sketch"
    garment = image_source(page, "sketch-garment")
    page.locator("#sketch-generate").click()
    wait_for_new_image(page, "sketch-garment", garment)
    assert image_source(page, "sketch-input") == example, "the drawing replaced the example picked after it"
    shoot(page, "5c-sketch-example-after-drawing", full_page=False)

    # An example picked, then drawn on the canvas: the drawing wins.
    example_buttons.nth(5).click()
    example = wait_for_new_image(page, "sketch-input", example)
    draw_strokes(page, "sketch-canvas", SKIRT)
    assert page.evaluate("() => window.wardrobeSketchSource") == "canvas"  # the click right after the stroke
    garment = image_source(page, "sketch-garment")
    page.locator("#sketch-generate").click()
    wait_for_new_image(page, "sketch-input", example)  # the drawing, now the sketch
    wait_for_new_image(page, "sketch-garment", garment)
    shoot(page, "5d-sketch-drawing-after-example", full_page=False)


@pytest.mark.slow
def test_a_failed_request_empties_its_results(page, shoot, garment_files):
    """After an error no earlier result stays on screen as if it belonged to the new input, in any tab."""
    page.locator("#garments-seed input").fill("-5")
    page.locator("#generate-garments").click()
    wait_for_error_notice(page, "Seed must be a whole number")
    expect(page.locator("#garments-grid .thumbnail-item img")).to_have_count(0)

    open_tab(page, "Style explorer")
    upload(page, "analyse-upload", garment_files["corrupt"])
    page.locator("#analyse").click()
    wait_for_error_notice(page, "The garment upload is not an image")
    expect(page.locator("#analyse-input img")).to_have_count(0)
    expect(page.locator("#analyse-reconstruction img")).to_have_count(0)
    expect(page.locator("#analyse-verdict")).not_to_contain_text("against a threshold of")
    upload(page, "second-garment", garment_files["corrupt"])
    page.locator("#interpolate").click()
    wait_for_error_notice(page, "The second garment upload is not an image")
    expect(page.locator("#interpolation-strip .thumbnail-item img")).to_have_count(0)
    shoot(page, "2b-style-explorer-corrupt-upload")

    open_tab(page, "Body shapes")
    page.locator("#body-seed input").fill("-3")
    page.locator("#random-body").click()
    wait_for_error_notice(page, "Seed must be a whole number")
    expect(page.locator("#body-avatar img")).to_have_count(0)
    expect(page.locator("#body-read")).not_to_contain_text("0.12 poor")

    open_tab(page, "Try-on")
    upload(page, "tryon-garment", garment_files["corrupt"])
    page.locator("#tryon-model").click()
    wait_for_error_notice(page, "The garment upload is not an image")
    for element_id in ("tryon-result", "tryon-warped", "tryon-reference-result", "tryon-reference-warp"):
        expect(page.locator(f"#{element_id} img")).to_have_count(0)
    shoot(page, "4c-try-on-corrupt-upload")

    open_tab(page, "Sketch to garment")
    upload(page, "sketch-input", garment_files["corrupt"])
    page.locator("#sketch-generate").click()
    wait_for_error_notice(page, "The sketch upload is not an image")
    expect(page.locator("#sketch-model-input img")).to_have_count(0)
    expect(page.locator("#sketch-garment img")).to_have_count(0)
    shoot(page, "5e-sketch-corrupt-upload")


@pytest.mark.slow
def test_on_a_phone(page, shoot):
    page.set_viewport_size(PHONE)
    page.reload()
    layout = assert_garments_shown(page, "garments-grid", 16)
    assert layout["image"]["right"] <= PHONE["width"], layout
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    shoot(page, "7-phone-new-garments")
    # every tab is in the tab bar, on screen, none behind a "More tabs" menu
    expect(page.get_by_role("button", name="More tabs")).to_have_count(0)
    for name in TAB_NAMES:
        box = page.get_by_role("tab", name=name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, box)
    open_tab(page, "Body shapes")
    wait_for_image(page, "body-avatar")
    accuracy = page.locator("#body-read").get_by_text("0.12 poor")
    accuracy.scroll_into_view_if_needed()
    box = accuracy.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"], f"the read-back's R^2 is off screen: {box}"
    shoot(page, "7b-phone-body-shapes")
