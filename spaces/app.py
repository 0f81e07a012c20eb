"""The virtual wardrobe: a Gradio Space over the hf-vaegan models.

`python spaces/app.py` serves it on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT (default 127.0.0.1:7860) and prints the
local URL. Each model comes from its environment variable (a Hub id or a folder, see `wardrobe_space/models.py`),
else from the folder bundled in the `hf_vaegan` package; a missing model disables only its own feature.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
import signal
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image
from wardrobe_space.canvas import BoundedSketchpad
from wardrobe_space.images import (
    MAX_FILE_SIZE,
    MAX_UPLOAD_PIXELS,
    MIN_UPLOAD_SIDE,
    SKETCH_INK_CONTRAST,
    OutputFiles,
    colour_garment_input,
    enlarge,
    gan_garment_for_tryon,
    open_upload,
    sketch_to_model_input,
    to_model_input,
    upload_path,
)
from wardrobe_space.models import (
    ANOMALY_FALSE_POSITIVE_RATE,
    EXAMPLES_PER_CLASS,
    MODEL_SPECS,
    HeldoutGarments,
    LoadedModel,
    anomaly_scores,
    load_models,
)
from wardrobe_space.safety import REQUEST_TIME_LIMIT, CheckedBlocks, Deadline, bad_input, shown

from hf_vaegan.auto import main_component
from hf_vaegan.data.sketch import garment_to_sketch
from hf_vaegan.data.wardrobe import (
    BODY_SHAPE_RANGES,
    DEFAULT_RESOLUTION,
    FASHION_MNIST_CLASSES,
    GARMENT_LABELS,
    Avatar,
    BodyShape,
    Garment,
    dress,
    make_garment,
    random_avatar,
    render_avatar,
)

logger = logging.getLogger(__name__)

MAX_GARMENTS = 64
# Grids are drawn this many images at a time, the request's deadline checked before each chunk. A whole grid at
# once: 64 garments take the GAN well under a second on one thread, at about 1.7x the rate per image of 16 at a time
# (benchmarks/gan_sampling.py --batch_size).
GENERATION_CHUNK = MAX_GARMENTS
MAX_SEED = 2**31 - 1
MAX_INTERPOLATION_STEPS = 16
MAX_TRUNCATION = 2.0
# Truncation samples the noise from a normal cut at +-threshold (exactly, at the same cost for any threshold); below
# 0.05 every draw is practically the mean garment of its class, so smaller values only look broken. 0 turns it off.
MIN_TRUNCATION = 0.05
MAX_TEMPERATURE = 2.0
# The wardrobe renderer colourises garments from Fashion-MNIST-like 28 x 28 greyscale items.
FASHION_MNIST_SIZE = 28
# Fashion-MNIST images are 28 pixels wide, avatars 96 and the body VAE's 64: shown this many times larger, with
# square pixels.
GARMENT_ZOOM = 4
# What the verdict calls each score of `VAEPipeline.anomaly_scores`.
ANOMALY_SCORE_NAMES = {
    "mahalanobis_knn": "how far the image lies from the training garments in the detector's features and in pixels, "
    "each in units of its spread among training garments",
    "mahalanobis": "how far the detector's features of the image lie from those of its training garments",
    "transformation": "nats: how badly the detector recognises the image's quarter turns",
    "elbo": "negative ELBO, nats",
    "reconstruction": "mean squared reconstruction error",
}
# The one-class mean AUROC of the detector's recipe on Fashion-MNIST (benchmarks/anomaly_auroc.py, README).
ONE_CLASS_AUROC = "0.936 (raw-pixel nearest neighbours: 0.923)"
AVATAR_ZOOM = 3
BODY_VAE_ZOOM = 4
# Two CPU cores on a basic Space: two requests compute at a time, the rest wait in Gradio's queue.
CONCURRENCY_LIMIT = 2
QUEUE_SIZE = 256
WEARABLE_CLASSES = [FASHION_MNIST_CLASSES[label] for label in GARMENT_LABELS]
AVATAR_SOURCES = ("Body shapes tab", "Gallery / seed")
GALLERY_AVATARS = 8
# The sketch canvas is 10 times the model's 28 pixels; a pen of radius 7 draws lines about 1.4 model pixels wide
# once the drawing is fitted to the frame, like the training sketches' 1-pixel outlines.
SKETCH_CANVAS_SIZE = 280
SKETCH_PEN_RADIUS = 7
# The example sketches: drawn from held-out garments with the jitter of the training sketches.
SKETCH_JITTER = 0.6
SKETCH_SEED = 1
UNCONDITIONAL = "any (unconditional GAN)"

# Garment galleries: each garment scaled a whole number of times to about GALLERY_SIDE pixels (28-pixel garments 6
# times, the colour GAN's 64-pixel ones 3 times) with square pixels, GALLERY_COLUMNS a row on a desktop (about 190
# pixels each at 1280 pixels wide) and PHONE_GALLERY_COLUMNS on a phone (about 170 pixels each at 390 pixels wide),
# with gaps and a caption under each.
GALLERY_SIDE = 168
GALLERY_COLUMNS = 4
PHONE_GALLERY_COLUMNS = 2
PHONE_WIDTH = 640
# The first example garments of each tab, computed once at start-up so that no tab opens empty.
INITIAL_GARMENT_COUNT = 16
INITIAL_INTERPOLATION_STEPS = 8
# Which input the sketch tab draws from: the one touched last (set by the page, checked by the handler).
SKETCH_SOURCES = ("canvas", "sketch")
# Picks the canvas's brush unless it is already in hand (Gradio's editor marks the active tool's button `highlight`);
# the sketch tab's editor is drawn a moment after the tab opens, so this tries for up to 5 s.
SELECT_BRUSH = """() => {
  let tries = 0;
  const pick = () => {
    const brush = document.querySelector("#sketch-canvas button[aria-label='Brush']");
    if (brush === null || brush.offsetParent === null) {
      if (++tries < 50) setTimeout(pick, 100);
    } else if (!brush.classList.contains("highlight")) {
      brush.click();
    }
  };
  pick();
}"""
# The sketch input touched last, as the page sees it: the pen touching the canvas counts at once (Gradio's editor
# reports a stroke up to a second later), picking an example or uploading when it happens. The "Draw the garment"
# click sends it along with the canvas.
TRACK_SKETCH_SOURCE = """() => {
  document.addEventListener("pointerdown", event => {
    if (event.target instanceof Element && event.target.closest("#sketch-canvas canvas")) {
      window.wardrobeSketchSource = "canvas";
    }
  }, true);
}"""
SEND_SKETCH_SOURCE = "(canvas, lastTouched) => [canvas, window.wardrobeSketchSource || lastTouched]"


def touched_js(source: str) -> str:
    """The page-side handler that records `source` as the sketch input touched last."""
    return f"() => {{ window.wardrobeSketchSource = {json.dumps(source)}; return {json.dumps(source)}; }}"


# The body-shape read-back table, and the R^2 (on held-out avatars, from the model card) from which the head's
# read-back of a parameter is called good or fair; below fair it is unreliable.
READ_BACK_HEADERS = ("parameter", "slider", "read back", "R^2")
GOOD_READ_BACK = 0.9
FAIR_READ_BACK = 0.5

# Single images whose label Gradio floats over their top-left corner: drawn below it instead.
LABELLED_IMAGES = (
    *("analyse-input", "analyse-reconstruction", "body-vae-avatar", "body-avatar", "sketch-model-input"),
    *("sketch-garment", "tryon-person", "tryon-cloth", "tryon-result", "tryon-warped", "tryon-reference-result"),
    "tryon-reference-warp",
)
LABELLED_IMAGE_SELECTOR = ", ".join([*(f"#{element_id} img" for element_id in LABELLED_IMAGES), ".garment-upload img"])

CSS = f"""
/* Uploads as small as Fashion-MNIST's 28 pixels fill their preview; small images keep square pixels. */
.garment-upload img {{width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated;}}
.pixelated img {{image-rendering: pixelated;}}
/* The floating label of a single image covered the image's top (a sketch's waistband, a garment's collar). */
{LABELLED_IMAGE_SELECTOR}, .figure img {{padding-top: 2.25rem; box-sizing: border-box; object-fit: contain;}}
/* Bold text: Gradio's theme declares Source Sans Pro in weights 400 and 600, and its 600 file holds only a few glyphs,
   so bold words, headings and buttons fell back to another, larger font. Gradio also serves the complete bold file:
   declared here for weights 600 and 700, they are Source Sans Pro like the text around them. */
@font-face {{
  font-family: "Source Sans Pro"; font-style: normal; font-weight: 600; font-display: swap;
  src: url("static/fonts/SourceSansPro/SourceSansPro-Bold.woff2") format("woff2");
}}
@font-face {{
  font-family: "Source Sans Pro"; font-style: normal; font-weight: 700; font-display: swap;
  src: url("static/fonts/SourceSansPro/SourceSansPro-Bold.woff2") format("woff2");
}}
strong, b, .prose strong, .prose b {{font-weight: 700 !important;}}
/* Galleries: every image shown whole (the gallery grows with them instead of scrolling), its caption under it rather
   than over it, and the gallery's label above the first row. */
.captioned .grid-wrap {{max-height: none !important; min-height: 0 !important;}}
.captioned .grid-container {{padding-top: 2.25rem;}}
.captioned .thumbnail-item {{
  aspect-ratio: auto !important; height: auto !important; display: flex; flex-direction: column;
}}
.captioned .thumbnail-item > img {{aspect-ratio: 1 / 1; height: auto !important; border-radius: 0;}}
.captioned .caption-label {{
  position: static !important; max-width: none !important; border: none !important; border-radius: 0 !important;
  text-align: center !important; opacity: 1 !important;
}}
/* The read-back table in the page's font, narrower than Gradio's monospaced tables. */
#body-read table, #body-read table * {{font-family: var(--font) !important;}}
/* Fewer, larger garments a row on a phone, and the read-back table narrow enough to show its R^2 column. */
@media (max-width: {PHONE_WIDTH}px) {{
  #body-read table {{font-size: 12px;}}
  #body-read th, #body-read td {{padding-left: 4px !important; padding-right: 4px !important;}}
  .garment-gallery .grid-container {{
    grid-template-columns: repeat({PHONE_GALLERY_COLUMNS}, minmax(0, 1fr)) !important;
  }}
  .strip-gallery .grid-container {{grid-template-columns: repeat(4, minmax(0, 1fr)) !important;}}
}}
/* Figures of the About tab: the whole figure, never cropped. */
.figure img {{object-fit: contain; max-height: none;}}
"""
UPLOAD_LIMITS = (
    f"at most {MAX_FILE_SIZE} and {MAX_UPLOAD_PIXELS / 1e6:.1f} megapixels, at least {MIN_UPLOAD_SIDE} pixels per side"
)
UPLOAD_NOTE = (
    f"Uploads of any format and mode (RGBA, 16-bit, greyscale, palette...), {UPLOAD_LIMITS}, are converted to the "
    "models' input: a 28 x 28 light garment on black, like Fashion-MNIST. A transparent background becomes black "
    "under a light garment, white under a dark one; an upload with a light border (a dark garment on white) is then "
    "inverted, and non-square images are padded, not cropped. *Model input* shows the result."
)


def _number(value: Any, name: str) -> float:
    """`value` as a float (infinite when it is a whole number too large for one), or a `gr.Error` naming the
    field; `True` and `False` are not numbers here."""
    if isinstance(value, bool):
        raise bad_input(f"{name} must be a number, got {shown(value)}.")
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        raise bad_input(f"{name} must be a number, got {shown(value)}.") from None


def whole_number(value: Any, name: str, low: int, high: int) -> int:
    """`value` as an int in [low, high], or a `gr.Error` naming the field."""
    number = _number(value, name)
    if not (math.isfinite(number) and number == int(number) and low <= number <= high):
        raise bad_input(f"{name} must be a whole number in [{low}, {high}], got {shown(value)}.")
    return int(number)


def number_in(value: Any, name: str, low: float, high: float) -> float:
    """`value` as a float in [low, high], or a `gr.Error` naming the field."""
    number = _number(value, name)
    if not (math.isfinite(number) and low <= number <= high):
        raise bad_input(f"{name} must be in [{low}, {high}], got {shown(value)}.")
    return number


def truncation_threshold(value: Any) -> float | None:
    """The truncation threshold of a request: `None` for 0 (off), else a number in [MIN_TRUNCATION,
    MAX_TRUNCATION], or a `gr.Error` stating that range."""
    number = _number(value, "Truncation")
    if number == 0:
        return None
    if not (math.isfinite(number) and MIN_TRUNCATION <= number <= MAX_TRUNCATION):
        raise bad_input(
            f"Truncation must be 0 (off) or in [{MIN_TRUNCATION}, {MAX_TRUNCATION}], got {shown(value)}: lower "
            "thresholds draw practically the same garment every time."
        )
    return number


def choice_index(value: Any, name: str, choices: Sequence[str]) -> int:
    if value not in choices:
        raise bad_input(f"{name} must be one of {', '.join(choices)}; got {shown(value)}.")
    return list(choices).index(value)


def upload_image(label: str, elem_id: str, value: Image.Image | None = None) -> gr.Image:
    """An image input handed to its handler as an unopened file (see `WardrobeSpace`), showing `value` at first."""
    return gr.Image(
        value,
        label=label,
        type="filepath",
        image_mode=None,
        format="png",
        height=240,
        elem_id=elem_id,
        elem_classes="garment-upload",
    )


def garment_gallery(label: str, elem_id: str, value: list[tuple[str, str]] | None, scale: int) -> gr.Gallery:
    """A gallery of garments: GALLERY_COLUMNS a row (PHONE_GALLERY_COLUMNS on a phone), each captioned."""
    return gr.Gallery(
        value,
        label=label,
        columns=GALLERY_COLUMNS,
        height="auto",
        object_fit="contain",
        buttons=["download", "fullscreen"],
        elem_id=elem_id,
        elem_classes=["garment-gallery", "captioned", "pixelated"],
        scale=scale,
    )


def _accuracy(r2: float | None) -> str:
    """How well the body-shape head reads a parameter back, in words."""
    if r2 is None:
        return "not measured"
    quality = "good" if r2 >= GOOD_READ_BACK else "fair" if r2 >= FAIR_READ_BACK else "poor"
    return f"{r2:.2f} {quality}"


def clear_on_failure(event: Any, outputs: Sequence[gr.Component]) -> None:
    """Empties `outputs` in the browser when `event`'s request fails, so that no earlier result stays beside an input
    it was not computed from."""
    event.failure(None, None, list(outputs), js=f"() => [{', '.join(['null'] * len(outputs))}]")


def seeded(seed: Any) -> torch.Generator:
    return torch.Generator().manual_seed(whole_number(seed, "Seed", 0, MAX_SEED))


def named_parameters(function: Callable, names: Sequence[str]) -> Callable:
    """`function(*args)` with a signature naming its arguments, which Gradio shows as the endpoint's parameters."""

    def call(*args: Any) -> Any:
        return function(*args)

    call.__name__ = function.__name__
    call.__doc__ = function.__doc__
    call.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
    )
    return call


BODY_PARAMETERS = tuple(BODY_SHAPE_RANGES)
TRYON_PARAMETERS = ("avatar_source", "avatar_seed", *BODY_PARAMETERS, "garment", "garment_class", "colour_seed")


class WardrobeSpace:
    """The event handlers of the Space, over the loaded models; `build()` lays out the UI.

    Every event is registered with `preprocess=False`: handlers get the raw values (numbers, strings, upload file
    data) and check them themselves, so that a bad value or file, from the UI or an API client, gets a message naming
    the field, and a huge or corrupt upload is refused before Gradio would decode it. Uploads are opened only from
    Gradio's upload cache (`wardrobe_space.safety`; `build()` checks every request's files before Gradio touches
    them too). Each request's work is bounded by these checks, and it stops with an error between its chunks of
    work once it has run for `time_limit` seconds.
    """

    def __init__(
        self, models: dict[str, LoadedModel], heldout: HeldoutGarments, time_limit: float = REQUEST_TIME_LIMIT
    ):
        self.models = models
        self.heldout = heldout
        self.time_limit = time_limit
        self.png = OutputFiles()

    def _garment_gallery(
        self, draw: Callable[[int], list[Image.Image]], count: int, caption: str, deadline: Deadline
    ) -> list[tuple[str, str]]:
        """`count` garments drawn by `draw(n)`, `GENERATION_CHUNK` at a time, as gallery items (PNG file, caption
        "`caption` i")."""
        images = []
        for start in range(0, count, GENERATION_CHUNK):
            deadline.check()
            images += draw(min(GENERATION_CHUNK, count - start))
        return self._gallery(images, [f"{caption} {i}" for i in range(1, len(images) + 1)])

    def _gallery(self, images: Sequence[Image.Image], captions: Sequence[str]) -> list[tuple[str, str]]:
        return [
            (self.png(enlarge(image, max(1, round(GALLERY_SIDE / image.width)))), text)
            for image, text in zip(images, captions, strict=True)
        ]

    # New garments (the class-conditional GAN)

    @property
    def gan_classes(self) -> list[str]:
        gan = self.models["gan"]
        num_classes = gan.value.gan.config.num_classes if gan.available else len(FASHION_MNIST_CLASSES)
        if num_classes == 0:
            return [UNCONDITIONAL]
        if num_classes == len(WEARABLE_CLASSES):
            return list(WEARABLE_CLASSES)
        if num_classes == len(FASHION_MNIST_CLASSES):
            return list(FASHION_MNIST_CLASSES)
        return [f"class {label}" for label in range(num_classes)]

    def generate_garments(
        self, class_name: str, count: float, seed: float, truncation: float
    ) -> list[tuple[str, str]]:
        """`count` new garments of one class (PNG files captioned with the class); truncation 0 samples the full
        prior."""
        deadline = Deadline(self.time_limit)
        pipeline = self.models["gan"].require()
        label = choice_index(class_name, "Class", self.gan_classes)
        count = whole_number(count, "Count", 1, MAX_GARMENTS)
        threshold = truncation_threshold(truncation)
        generator = seeded(seed)

        def draw(batch_size: int) -> list[Image.Image]:
            class_labels = None if class_name == UNCONDITIONAL else label
            return pipeline(
                batch_size=batch_size, class_labels=class_labels, truncation=threshold, generator=generator
            ).images

        caption = "garment" if class_name == UNCONDITIONAL else class_name
        return self._garment_gallery(draw, count, caption, deadline)

    # Style explorer (the VAE)

    def sample_styles(self, count: float, seed: float, temperature: float) -> list[tuple[str, str]]:
        """Draws from the VAE's prior N(0, temperature^2 I) (PNG files captioned "sample i")."""
        deadline = Deadline(self.time_limit)
        pipeline = self.models["vae"].require()
        count = whole_number(count, "Count", 1, MAX_GARMENTS)
        temperature = number_in(temperature, "Temperature", 0.0, MAX_TEMPERATURE)
        generator = seeded(seed)

        def draw(batch_size: int) -> list[Image.Image]:
            return pipeline(batch_size=batch_size, temperature=temperature, generator=generator).images

        return self._garment_gallery(draw, count, "sample", deadline)

    def interpolate_styles(self, first: Any, second: Any, steps: float) -> list[tuple[str, str]]:
        """The decoded great circle between the latent codes of two garments, step by step (PNG files captioned with
        the step)."""
        deadline = Deadline(self.time_limit)
        self.models["vae"].require()
        steps = whole_number(steps, "Steps", 2, MAX_INTERPOLATION_STEPS)
        first_image = open_upload(first, "first garment")
        deadline.check()
        second_image = open_upload(second, "second garment")
        deadline.check()
        return self._interpolation(first_image, second_image, steps)

    def _interpolation(self, first: Image.Image, second: Image.Image, steps: int) -> list[tuple[str, str]]:
        pipeline = self.models["vae"].require()
        config = pipeline.vae.config
        start, _ = to_model_input(first, config.resolution, config.in_channels)
        end, _ = to_model_input(second, config.resolution, config.in_channels)
        images = pipeline.interpolate(start, end, num_steps=steps).images
        captions = ["first", *(f"step {i}" for i in range(2, steps)), "second"]
        return self._gallery(images, captions)

    def analyse_garment(self, upload: Any) -> tuple[str, str, str, dict[str, Any]]:
        """The model input, its reconstruction by the style VAE, and the anomaly detector's verdict against its
        calibrated threshold."""
        deadline = Deadline(self.time_limit)
        self.models["vae"].require()
        self.models["anomaly"].require()
        image = open_upload(upload, "garment")
        deadline.check()
        return self._analysis(image, deadline)

    def _analysis(self, image: Image.Image, deadline: Deadline) -> tuple[str, str, str, dict[str, Any]]:
        pipeline = self.models["vae"].require()
        detector = self.models["anomaly"].require()
        config = pipeline.vae.config
        model_input, inverted = to_model_input(image, config.resolution, config.in_channels)
        deadline.check()
        reconstruction = pipeline.reconstruct(model_input).images[0]
        deadline.check()
        score = float(anomaly_scores(detector.pipeline, [model_input])[0])
        threshold = detector.threshold
        anomalous = score > threshold.threshold
        percentile = threshold.percentile(score)
        score_name = ANOMALY_SCORE_NAMES.get(threshold.method, threshold.method)
        verdict = (
            f"### {'Unusual: an anomaly' if anomalous else 'A typical garment'}\n"
            f"Score **{score:.2f}** ({score_name}) against a threshold of **{threshold.threshold:.2f}**: higher than "
            f"{percentile:.1f}% of {threshold.num_images} real held-out garments. The threshold flags "
            f"{threshold.false_positive_rate:.0%} of real garments by design."
            + (" The upload was inverted (light border)." if inverted else "")
        )
        details = {
            "verdict": "anomaly" if anomalous else "typical",
            "method": threshold.method,
            "score": round(score, 3),
            "threshold": round(threshold.threshold, 3),
            "false_positive_rate": threshold.false_positive_rate,
            "percentile_among_real_garments": round(percentile, 2),
            "inverted_upload": inverted,
        }
        pictures = (self.png(enlarge(image, 2 * GARMENT_ZOOM)) for image in (model_input, reconstruction))
        return *pictures, verdict, details

    # Body shapes

    @staticmethod
    def body_shape(*values: Any) -> BodyShape:
        parameters = dict(zip(BODY_SHAPE_RANGES, values, strict=True))
        for name, value in parameters.items():
            number_in(value, name.replace("_", " ").capitalize(), *BODY_SHAPE_RANGES[name])
        return BodyShape(**{name: float(value) for name, value in parameters.items()})

    def render_body(self, *values: Any) -> tuple[str, str, dict[str, Any]]:
        """The body VAE's avatar for the body parameters (in `BODY_SHAPE_RANGES` order, decoded from the latent its
        body-shape head puts them at), the avatar the try-on dresses, and a table of the parameters: the sliders', the
        ones the head reads back from the VAE's latent, and how well the head reads each one (R^2 on held-out avatars,
        from the model card)."""
        pipeline = self.models["body_vae"].require()
        shape = self.body_shape(*values)
        images, read_back = pipeline(body_shapes=shape.to_dict(), return_dict=False)
        avatar = render_avatar(shape, DEFAULT_RESOLUTION)
        pictures = (enlarge(images[0], BODY_VAE_ZOOM), enlarge(Image.fromarray(avatar.image), AVATAR_ZOOM))
        return *(self.png(image) for image in pictures), self._read_back_table(shape.to_dict(), read_back[0])

    def _read_back_table(self, sliders: dict[str, float], read_back: dict[str, float]) -> dict[str, Any]:
        r2 = self.models["body_vae"].read_back_r2()
        rows = [
            [name.replace("_", " "), round(sliders[name], 3), round(value, 3), _accuracy(r2.get(name))]
            for name, value in read_back.items()
        ]
        return {"headers": list(READ_BACK_HEADERS), "data": rows}

    def random_body(self, seed: float) -> list[Any]:
        """Body parameters drawn uniformly from their ranges (as the body VAE's training avatars were), then the
        avatars."""
        shape = BodyShape.sample(whole_number(seed, "Seed", 0, MAX_SEED))
        values = [round(value, 4) for value in shape.to_dict().values()]
        return [*values, *self.render_body(*values)]

    # Try-on

    def gan_garment(self, class_name: str, seed: float) -> str:
        """One new garment of a wearable class from the GAN, as the GAN draws it (64 x 64 colour on white from the
        bundled colour GAN; the first of the seed's candidates that stands out from the white, see
        `gan_garment_for_tryon`), for the try-on's garment input."""
        pipeline = self.models["gan"].require()
        index = choice_index(class_name, "Garment class", WEARABLE_CLASSES)
        return self.png(gan_garment_for_tryon(pipeline, index, seeded(seed)))

    def _avatar(self, source: str, seed: float, body_values: Sequence[Any]) -> Avatar:
        if choice_index(source, "Avatar", AVATAR_SOURCES) == 0:
            return render_avatar(self.body_shape(*body_values), DEFAULT_RESOLUTION)
        return random_avatar(whole_number(seed, "Avatar seed", 0, MAX_SEED))

    def _garment(self, upload: Any, class_name: str, colour_seed: float) -> Garment:
        label = GARMENT_LABELS[choice_index(class_name, "Garment class", WEARABLE_CLASSES)]
        seed = whole_number(colour_seed, "Colour seed", 0, MAX_SEED)
        return self._garment_of(open_upload(upload, "garment"), label, seed)

    @staticmethod
    def _garment_of(image: Image.Image, label: int, seed: int) -> Garment:
        """A colour garment as it comes; a greyscale one colourised and patterned (colour seed `seed`)."""
        colour_garment = colour_garment_input(image)
        if colour_garment is not None:
            return Garment.from_image(colour_garment, label, DEFAULT_RESOLUTION, framed=False)
        item, _ = to_model_input(image, FASHION_MNIST_SIZE, 1)
        if not np.asarray(item).any():
            raise bad_input("The garment image is empty (no garment on its background).")
        return make_garment(np.asarray(item), label, seed, DEFAULT_RESOLUTION)

    def _tryon_inputs(self, source: Any, avatar_seed: Any, *rest: Any) -> tuple[Avatar, Garment]:
        *body_values, upload, class_name, colour_seed = rest
        return self._avatar(source, avatar_seed, body_values), self._garment(upload, class_name, colour_seed)

    def model_tryon(self, *inputs: Any) -> tuple[str, str, str, str]:
        """The avatar, the garment colourised, the try-on model's result and its warped garment."""
        deadline = Deadline(self.time_limit)
        self.models["tryon"].require()
        avatar, garment = self._tryon_inputs(*inputs)
        deadline.check()
        return self._tryon(avatar, garment)

    def _tryon(self, avatar: Avatar, garment: Garment) -> tuple[str, str, str, str]:
        pipeline = self.models["tryon"].require()
        images, warped = pipeline(avatar, garment, return_dict=False)
        pictures = (Image.fromarray(avatar.image), Image.fromarray(garment.image), images[0], warped[0])
        return tuple(self.png(enlarge(image, AVATAR_ZOOM)) for image in pictures)

    def reference_tryon(self, *inputs: Any) -> tuple[str, str]:
        """The synthetic data's renderer dressing the avatar: the ground truth the try-on model learned to reproduce,
        and its warped garment."""
        return self._reference(*self._tryon_inputs(*inputs))

    def _reference(self, avatar: Avatar, garment: Garment) -> tuple[str, str]:
        dressed = dress(avatar, garment)
        images = (dressed.image, dressed.warped_cloth)
        return tuple(self.png(enlarge(Image.fromarray(image), AVATAR_ZOOM)) for image in images)

    # Sketch to garment

    def canvas_sketch(self, canvas: dict[str, Any] | None, last_touched: Any) -> Any:
        """The canvas's drawing as a file for the sketch input when the canvas was touched after the sketch input
        (`last_touched`, set by the page), else no change (the sketch input's upload or example is used).

        Raises:
            gr.Error: the canvas was touched last but holds no drawing (cleared, or a stroke the editor had not
                reported yet): never the other input in its place, silently.
        """
        if choice_index(last_touched, "Last touched input", SKETCH_SOURCES) != 0:
            return gr.skip()
        drawing = (canvas or {}).get("composite")
        if drawing is None or not (np.asarray(drawing.convert("L")) < 255 - SKETCH_INK_CONTRAST).any():
            raise bad_input(
                "The canvas, touched last, holds no drawing yet: draw the garment's outline (if you just drew, "
                "press again in a moment), or pick an example or upload a sketch."
            )
        return self.png(drawing)

    def sketch_to_garment(self, upload: Any) -> tuple[str, str]:
        """The sketch as the model takes it (28 x 28, dark lines on white) and the garment the model draws from it."""
        deadline = Deadline(self.time_limit)
        self.models["sketch"].require()
        image = open_upload(upload, "sketch")
        deadline.check()
        return self._sketch_garment(image)

    def _sketch_garment(self, image: Image.Image) -> tuple[str, str]:
        pipeline = self.models["sketch"].require()
        sketch, _ = sketch_to_model_input(image, FASHION_MNIST_SIZE)
        garment = pipeline(sketch).images[0]
        return self.png(enlarge(sketch, 2 * GARMENT_ZOOM)), self.png(enlarge(garment, 2 * GARMENT_ZOOM))

    @staticmethod
    def send_garment(garment: Any, class_name: Any) -> tuple[str, str, gr.Tabs]:
        """The garment and its class as the try-on's inputs, and the try-on tab opened."""
        choice_index(class_name, "Garment class", WEARABLE_CLASSES)
        return upload_path(garment, "garment"), class_name, gr.Tabs(selected="tryon")

    # Layout

    def build(self) -> gr.Blocks:
        examples = self.heldout.example_indices()
        example_images = [Image.fromarray(self.heldout.images[i]) for i in examples]
        # Gradio's copies of results and uploads are deleted after a day, so that a long-running Space keeps its disk
        # (the components' initial values, computed here once, are kept).
        # CheckedBlocks: every file a request names must be one Gradio received (`wardrobe_space.safety`).
        with CheckedBlocks(title="Virtual wardrobe", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
            gr.Markdown(
                "# Virtual wardrobe\nInvent garments with a class-conditional GAN or draw them, explore their styles "
                "with a VAE, shape an avatar and dress it. Models: [hf-vaegan](https://github.com/hf-vaegan/hf-vaegan).\n\n"
                "Every tab opens with an example result; change the settings and press its button for your own."
            )
            # Wrapped onto a second row on a phone rather than hidden in Gradio's "More tabs" menu.
            with gr.Tabs(overflow_behavior="wrap") as tabs:
                with gr.Tab("New garments", id="garments"):
                    self._garments_tab()
                with gr.Tab("Style explorer", id="styles"):
                    self._styles_tab(example_images)
                with gr.Tab("Body shapes", id="bodies"):
                    body_sliders, dress_button = self._bodies_tab()
                with gr.Tab("Try-on", id="tryon"):
                    garment, garment_class, avatar_source = self._tryon_tab(body_sliders, examples)
                with gr.Tab("Sketch to garment", id="sketch") as sketch_tab:
                    send_button, sketch_garment, sketch_class = self._sketch_tab(examples)
                with gr.Tab("About", id="about"):
                    self._about_tab()
            dress_button.click(
                lambda: (AVATAR_SOURCES[0], gr.Tabs(selected="tryon")),
                None,
                [avatar_source, tabs],
                api_visibility="private",
            )
            send_button.click(
                self.send_garment,
                [sketch_garment, sketch_class],
                [garment, garment_class, tabs],
                api_visibility="private",
                preprocess=False,
            )
            # The canvas opens with its brush in hand: Gradio's editor starts with no tool, so a first drag drew
            # nothing. The page picks the brush when the sketch tab opens (its editor is drawn then).
            sketch_tab.select(None, None, None, js=SELECT_BRUSH)
            demo.load(None, None, None, js=f"() => {{ ({TRACK_SKETCH_SOURCE})(); ({SELECT_BRUSH})(); }}")
        return demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)

    def _initially(self, compute: Callable[[], Any], empty: Any) -> Any:
        """A tab's first result, computed once when the Space starts (`empty` when its model is missing or fails)."""
        try:
            return compute()
        except Exception as error:  # a missing or broken model leaves its tab empty, the app starts anyway
            logger.warning("No initial result: %s", error)
            return empty

    def _unavailable_note(self, *keys: str) -> None:
        for key in keys:
            model = self.models[key]
            if not model.available:
                gr.Markdown(f"**{model.spec.title} is not available**: {model.problem}")

    def _garments_tab(self) -> None:
        gr.Markdown(
            "Garments that never existed, drawn by the class-conditional GAN: the bundled one draws the wardrobe's "
            "colour garments, 64 x 64 pixels on white (shown larger), which the try-on tab dresses as they are. "
            "The **truncation** trick draws the noise from a normal cut at +-threshold: "
            "lower values give more typical, less varied garments "
            f"(0 = off, else {MIN_TRUNCATION} to {MAX_TRUNCATION:g})."
        )
        self._unavailable_note("gan")
        first_class = self.gan_classes[0]
        initial = self._initially(lambda: self.generate_garments(first_class, INITIAL_GARMENT_COUNT, 0, 0), None)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                class_name = gr.Dropdown(self.gan_classes, value=first_class, label="Class")
                count = gr.Slider(1, MAX_GARMENTS, value=INITIAL_GARMENT_COUNT, step=1, label="Count")
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, elem_id="garments-seed")
                truncation = gr.Slider(
                    0,
                    MAX_TRUNCATION,
                    value=0,
                    step=MIN_TRUNCATION,
                    label=f"Truncation (0 = off, else {MIN_TRUNCATION} to {MAX_TRUNCATION:g})",
                )
                button = gr.Button("Generate", variant="primary", elem_id="generate-garments")
            output = garment_gallery("New garments", "garments-grid", initial, scale=2)
        inputs = [class_name, count, seed, truncation]
        generate = button.click(self.generate_garments, inputs, output, api_name="generate_garments", preprocess=False)
        clear_on_failure(generate, [output])

    def _styles_tab(self, example_images: list[Image.Image]) -> None:
        self._unavailable_note("vae")
        gr.Markdown(UPLOAD_NOTE)
        with gr.Accordion("Sample styles from the prior", open=True):
            with gr.Row():
                with gr.Column(scale=1, min_width=240):
                    count = gr.Slider(1, MAX_GARMENTS, value=INITIAL_GARMENT_COUNT, step=1, label="Count")
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, elem_id="styles-seed")
                    temperature = gr.Slider(0, MAX_TEMPERATURE, value=1, step=0.05, label="Temperature")
                    sample_button = gr.Button("Sample", variant="primary", elem_id="sample-styles")
                initial = self._initially(lambda: self.sample_styles(INITIAL_GARMENT_COUNT, 0, 1.0), None)
                samples = garment_gallery("Samples", "styles-grid", initial, scale=2)
        sample = sample_button.click(
            self.sample_styles, [count, seed, temperature], samples, api_name="sample_styles", preprocess=False
        )
        clear_on_failure(sample, [samples])

        # T-shirt -> ankle boot, trouser -> coat, sandal -> sneaker, dress -> shirt
        pairs = [(0, 9), (1, 4), (5, 7), (3, 6)]
        first_of_class = example_images[::EXAMPLES_PER_CLASS]
        with gr.Accordion("Interpolate between two garments", open=True):
            start, end = first_of_class[pairs[0][0]], first_of_class[pairs[0][1]]
            with gr.Row():
                first = upload_image("First garment", "first-garment", start)
                second = upload_image("Second garment", "second-garment", end)
                with gr.Column():
                    steps = gr.Slider(
                        2, MAX_INTERPOLATION_STEPS, value=INITIAL_INTERPOLATION_STEPS, step=1, label="Steps"
                    )
                    interpolate_button = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
            gr.Examples(
                [[first_of_class[a], first_of_class[b]] for a, b in pairs], [first, second], label="Pairs of classes"
            )
            initial = self._initially(lambda: self._interpolation(start, end, INITIAL_INTERPOLATION_STEPS), None)
            strip = gr.Gallery(
                initial,
                label="Path through the latent space, from the first garment to the second",
                columns=INITIAL_INTERPOLATION_STEPS,
                height="auto",
                object_fit="contain",
                elem_id="interpolation-strip",
                elem_classes=["strip-gallery", "captioned", "pixelated"],
            )
        interpolate = interpolate_button.click(
            self.interpolate_styles, [first, second, steps], strip, api_name="interpolate_styles", preprocess=False
        )
        clear_on_failure(interpolate, [strip])

        with gr.Accordion("Reconstruct a garment and score how unusual it is", open=True):
            gr.Markdown(
                "The reconstruction is the style VAE's; the score is the anomaly detector's (a VAE whose encoder also "
                "tells which way a garment was turned, trained on Fashion-MNIST's training garments): the Mahalanobis "
                "distance of its features of the image (latent code, and its answers on the image's four quarter "
                "turns) to those of the training garments, plus the pixel distance to the nearest of the 8,000 "
                "training garments it keeps, each in units of its spread among training garments. On Fashion-MNIST "
                "this score tells one class from the nine "
                f"others with a mean AUROC of {ONE_CLASS_AUROC} (README). The threshold flags "
                f"{ANOMALY_FALSE_POSITIVE_RATE:.0%} of real Fashion-MNIST test garments the model never saw "
                "(calibrated when the Space starts): an 'anomaly' means unlike the training garments (noise, photos, "
                "drawings, odd framing), not a wrong class."
            )
            example = example_images[0]
            initial = self._initially(
                lambda: self._analysis(example, Deadline(self.time_limit)), (None, None, "", None)
            )
            with gr.Row():
                upload = upload_image("Garment", "analyse-upload", example)
                model_input = gr.Image(
                    initial[0], label="Model input", format="png", elem_id="analyse-input", elem_classes="pixelated"
                )
                reconstruction = gr.Image(
                    initial[1],
                    label="Reconstruction",
                    format="png",
                    elem_id="analyse-reconstruction",
                    elem_classes="pixelated",
                )
            analyse_button = gr.Button("Reconstruct and score", variant="primary", elem_id="analyse")
            verdict = gr.Markdown(initial[2], label="Verdict", elem_id="analyse-verdict")
            details = gr.JSON(initial[3], label="Score", elem_id="analyse-details")
            gr.Examples(
                [[image] for image in example_images],
                [upload],
                label="Real held-out garments",
                elem_id="analyse-examples",
            )
        results = [model_input, reconstruction, verdict, details]
        analyse = analyse_button.click(
            self.analyse_garment, upload, results, api_name="analyse_garment", preprocess=False
        )
        clear_on_failure(analyse, results)

    def _bodies_tab(self) -> tuple[list[gr.Slider], gr.Button]:
        gr.Markdown(
            "The avatar's body, parameter by parameter (lengths are fractions of the image height; right and left are "
            "the person's). The body-shape VAE draws the avatar from the latent its body-shape head puts the sliders "
            "at, and the head reads the parameters back from that latent. The try-on tab dresses the renderer's "
            "avatar of the same parameters. Release a slider to redraw."
        )
        self._unavailable_note("body_vae")
        defaults = BodyShape().to_dict()
        initial = self._initially(lambda: self.render_body(*defaults.values()), (None, None, None))
        with gr.Row():
            with gr.Column(scale=2):
                sliders = [
                    gr.Slider(low, high, value=defaults[name], step=(high - low) / 100, label=name.replace("_", " "))
                    for name, (low, high) in BODY_SHAPE_RANGES.items()
                ]
                with gr.Row():
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, elem_id="body-seed")
                    random_button = gr.Button("Random body", elem_id="random-body")
                with gr.Row():
                    render_button = gr.Button("Render", variant="primary", elem_id="render-body")
                    dress_button = gr.Button("Dress this avatar", elem_id="dress-body")
            with gr.Column(scale=2):
                with gr.Row():
                    vae_avatar = gr.Image(
                        initial[0],
                        label="Body VAE avatar (64 x 64)",
                        format="png",
                        elem_id="body-vae-avatar",
                        elem_classes="pixelated",
                    )
                    avatar = gr.Image(
                        initial[1],
                        label="Avatar for the try-on",
                        format="png",
                        elem_id="body-avatar",
                        elem_classes="pixelated",
                    )
                read_back = gr.Dataframe(
                    initial[2],
                    headers=list(READ_BACK_HEADERS),
                    label="Parameters the head reads back from the VAE's latent, and how well it reads each (R^2)",
                    interactive=False,
                    wrap=True,
                    max_height=800,  # every row, no scrolling inside the table
                    elem_id="body-read",
                )
                gr.Markdown(self._read_back_note(), elem_id="body-read-note")
        outputs = [vae_avatar, avatar, read_back]
        render_body = named_parameters(self.render_body, BODY_PARAMETERS)
        render = render_button.click(render_body, sliders, outputs, api_name="render_body", preprocess=False)
        clear_on_failure(render, outputs)
        for slider in sliders:
            release = slider.release(render_body, sliders, outputs, api_visibility="private", preprocess=False)
            clear_on_failure(release, outputs)
        randomise = random_button.click(
            self.random_body, seed, [*sliders, *outputs], api_name="random_body", preprocess=False
        )
        clear_on_failure(randomise, outputs)
        return sliders, dress_button

    def _read_back_note(self) -> str:
        """What the read-back's accuracy column means, with the parameters the head reads poorly."""
        r2 = self.models["body_vae"].read_back_r2()
        if not r2:
            return (
                "The loaded body-shape VAE's card gives no read-back accuracy (R^2 of each parameter on held-out "
                "avatars), so the read-back above comes without one: treat it as unmeasured."
            )
        poor = [f"{name.replace('_', ' ')} (R^2 {value:.2f})" for name, value in r2.items() if value < FAIR_READ_BACK]
        note = (
            "**How far to trust the read-back**: R^2 is how well the head reads each parameter from the latent of "
            "held-out avatars (1 = exactly, 0 = no better than guessing the average; good from "
            f"{GOOD_READ_BACK}, poor below {FAIR_READ_BACK}), as measured by `examples/fit_body_shape_head.py` and "
            "written in the model card. "
        )
        if poor:
            note += (
                f"The head reads {', '.join(poor)} poorly: their read-back can be far from the slider (an elbow bend "
                "of 10 can read back as 40), and the avatar may not show them as set."
            )
        return note

    def _tryon_tab(self, body_sliders: list[gr.Slider], examples: list[int]) -> tuple[gr.Image, gr.Dropdown, gr.Radio]:
        gr.Markdown(
            "Dress an avatar (the body shapes tab's, or one of the gallery's) in a garment from the examples, an "
            "upload (a garment photo or drawing), the GAN or the sketch tab. A colour garment (the GAN's, or a photo "
            "on a light background) is worn as it is; a greyscale one (Fashion-MNIST, a drawing) is first colourised "
            "and patterned as in the try-on training data, its colours chosen by the seed. The try-on model warps the "
            "garment onto the body and dresses the avatar."
        )
        self._unavailable_note("tryon")
        wearable = [(i, self.heldout.labels[i]) for i in examples if self.heldout.labels[i] in GARMENT_LABELS]
        first_garment = Image.fromarray(self.heldout.images[wearable[0][0]])
        first_class = FASHION_MNIST_CLASSES[wearable[0][1]]
        with gr.Row():
            with gr.Column():
                source = gr.Radio(AVATAR_SOURCES, value=AVATAR_SOURCES[0], label="Avatar", elem_id="tryon-source")
                avatar_seed = gr.Number(0, label="Avatar seed (gallery)", precision=0, minimum=0, maximum=MAX_SEED)
                gallery = gr.Gallery(
                    [(Image.fromarray(random_avatar(seed).image), f"seed {seed}") for seed in range(GALLERY_AVATARS)],
                    label="Avatar gallery: pick one",
                    columns=GALLERY_AVATARS // 2,
                    height="auto",
                    object_fit="contain",
                    allow_preview=False,
                    elem_id="tryon-gallery",
                    elem_classes=["captioned", "pixelated"],
                )
            with gr.Column():
                garment = upload_image("Garment", "tryon-garment", first_garment)
                class_name = gr.Dropdown(WEARABLE_CLASSES, value=first_class, label="Garment class")
                with gr.Row():
                    garment_seed = gr.Number(
                        0, label="Seed (GAN garment and colours)", precision=0, minimum=0, maximum=MAX_SEED
                    )
                    gan_button = gr.Button("New garment from the GAN", elem_id="tryon-gan-garment")
        gr.Examples(
            [[Image.fromarray(self.heldout.images[i]), FASHION_MNIST_CLASSES[label]] for i, label in wearable],
            [garment, class_name],
            label="Held-out garments",
            examples_per_page=6,
        )
        defaults = BodyShape().to_dict().values()

        def first_inputs() -> tuple[Avatar, Garment]:
            avatar = self._avatar(AVATAR_SOURCES[0], 0, list(defaults))
            return avatar, self._garment_of(first_garment, GARMENT_LABELS[WEARABLE_CLASSES.index(first_class)], 0)

        model_result = self._initially(lambda: self._tryon(*first_inputs()), (None,) * 4)
        reference_result = self._initially(lambda: self._reference(*first_inputs()), (None,) * 2)
        with gr.Row():
            tryon_button = gr.Button("Try on", variant="primary", elem_id="tryon-model")
            reference_button = gr.Button("Reference render", elem_id="tryon-reference")
        with gr.Row():
            person = gr.Image(model_result[0], label="Avatar", format="png", elem_id="tryon-person")
            cloth = gr.Image(model_result[1], label="Garment as worn", format="png", elem_id="tryon-cloth")
            result = gr.Image(model_result[2], label="Try-on result", format="png", elem_id="tryon-result")
            warped = gr.Image(model_result[3], label="Warped garment", format="png", elem_id="tryon-warped")
        gr.Markdown(
            "**Reference**: the renderer that made the try-on training data dresses the same avatar: the ground truth "
            "the try-on model learned to reproduce, not a learned model."
        )
        with gr.Row():
            reference = gr.Image(
                reference_result[0], label="Reference result", format="png", elem_id="tryon-reference-result"
            )
            reference_warped = gr.Image(
                reference_result[1], label="Reference warped garment", format="png", elem_id="tryon-reference-warp"
            )

        def pick_avatar(selection: gr.SelectData) -> tuple[str, int]:
            return AVATAR_SOURCES[1], selection.index

        gallery.select(pick_avatar, None, [source, avatar_seed], api_visibility="private")
        inputs = [source, avatar_seed, *body_sliders, garment, class_name, garment_seed]
        gan_button.click(
            self.gan_garment, [class_name, garment_seed], garment, api_name="gan_garment", preprocess=False
        )
        # A failed request empties both results: neither the model's nor the reference's earlier result stays beside
        # inputs it was not computed from.
        every_result = [person, cloth, result, warped, reference, reference_warped]
        tryon = tryon_button.click(
            named_parameters(self.model_tryon, TRYON_PARAMETERS),
            inputs,
            [person, cloth, result, warped],
            api_name="tryon",
            preprocess=False,
        )
        clear_on_failure(tryon, every_result)
        reference_tryon = reference_button.click(
            named_parameters(self.reference_tryon, TRYON_PARAMETERS),
            inputs,
            [reference, reference_warped],
            api_name="reference_tryon",
            preprocess=False,
        )
        clear_on_failure(reference_tryon, every_result)
        return garment, class_name, source

    def _sketch_tab(self, examples: list[int]) -> tuple[gr.Button, gr.Image, gr.Dropdown]:
        gr.Markdown(
            "Draw a garment's outline with dark lines on the white canvas (or upload a sketch, or pick an example) "
            "and the sketch-to-garment model (pix2pix) draws the garment. It learned from outlines of Fashion-MNIST "
            "garments: the drawing is fitted to its 28 x 28 frame, so fill the canvas and use the thick pen. *Model "
            "input* shows what the model sees.\n\n"
            "**Which input is used: the one you touched last.** Drawing on the canvas after picking an example or "
            "uploading a sketch uses the drawing; picking an example or uploading after drawing uses that. *Sketch* "
            "shows the input that was used."
        )
        self._unavailable_note("sketch")
        first_of_class = examples[::EXAMPLES_PER_CLASS]
        sketches = [
            garment_to_sketch(Image.fromarray(self.heldout.images[i]), jitter=SKETCH_JITTER, seed=(SKETCH_SEED, i))
            for i in first_of_class
        ]
        first_label = int(self.heldout.labels[first_of_class[0]])
        first_class = FASHION_MNIST_CLASSES[first_label] if first_label in GARMENT_LABELS else WEARABLE_CLASSES[0]
        initial = self._initially(lambda: self._sketch_garment(sketches[0]), (None, None))
        with gr.Row():
            canvas = BoundedSketchpad(
                label="Draw here",
                type="pil",
                image_mode="L",
                canvas_size=(SKETCH_CANVAS_SIZE, SKETCH_CANVAS_SIZE),
                fixed_canvas=True,
                brush=gr.Brush(default_size=SKETCH_PEN_RADIUS, colors=["#000000"], color_mode="fixed"),
                layers=False,
                transforms=(),
                elem_id="sketch-canvas",
            )
            with gr.Column():
                sketch = upload_image(
                    "Sketch: the input used (an upload, an example or your drawing)", "sketch-input", sketches[0]
                )
                sketch_button = gr.Button("Draw the garment", variant="primary", elem_id="sketch-generate")
        # The input touched last, as the page saw it: "canvas" or "sketch" (an upload or an example).
        last_touched = gr.Textbox(SKETCH_SOURCES[1], visible="hidden", elem_id="sketch-last-touched")
        sketch_examples = gr.Examples(
            [[example] for example in sketches],
            [sketch],
            label="Sketches of held-out garments (drawn by hf_vaegan.data.sketch)",
            examples_per_page=len(first_of_class),
            elem_id="sketch-examples",
        )
        with gr.Row():
            model_input = gr.Image(
                initial[0], label="Model input", format="png", elem_id="sketch-model-input", elem_classes="pixelated"
            )
            garment = gr.Image(
                initial[1],
                label="Garment",
                format="png",
                interactive=False,
                elem_id="sketch-garment",
                elem_classes="pixelated",
            )
        with gr.Row(equal_height=True):
            sketch_class = gr.Dropdown(
                WEARABLE_CLASSES, value=first_class, label="Garment class", elem_id="sketch-class"
            )
            send_button = gr.Button("Try this garment on", elem_id="sketch-send")
        # Which input was touched last is tracked in the page, without a request.
        # Which input was touched last is tracked in the page (`TRACK_SKETCH_SOURCE`), without a request: a stroke
        # counts from the moment the pen touches the canvas (the editor reports its change up to a second later),
        # an example or an upload when it is picked; emptying the sketch input leaves the canvas.
        canvas.change(None, None, last_touched, js=touched_js(SKETCH_SOURCES[0]))
        sketch.upload(None, None, last_touched, js=touched_js(SKETCH_SOURCES[1]))
        sketch.clear(None, None, last_touched, js=touched_js(SKETCH_SOURCES[0]))
        sketch_examples.dataset.click(None, None, last_touched, js=touched_js(SKETCH_SOURCES[1]))
        # The canvas arrives as image blobs that only Gradio's preprocessing assembles; that step is the UI's own
        # (private), the API endpoint takes an image file, checked like every upload.
        taken = sketch_button.click(
            self.canvas_sketch,
            [canvas, last_touched],
            sketch,
            api_visibility="private",
            show_progress="hidden",
            js=SEND_SKETCH_SOURCE,
        )
        clear_on_failure(taken, [model_input, garment])
        drawn = taken.then(
            self.sketch_to_garment, sketch, [model_input, garment], api_name="sketch_to_garment", preprocess=False
        )
        clear_on_failure(drawn, [model_input, garment])
        return send_button, garment, sketch_class

    def _about_tab(self) -> None:
        gr.Markdown(
            "## The models\nEach model loads with `from_pretrained` from the Hub id or folder in its environment "
            "variable, else from the folder bundled in the `hf_vaegan` package. Their cards list the data, the "
            "figures, the limits and the command that trained them: open a model to read its card."
        )
        for spec in MODEL_SPECS:
            model = self.models[spec.key]
            title = spec.title if model.available else f"{spec.title} (not available)"
            with gr.Accordion(title, open=False):
                gr.Markdown(model_status(model))
                card = model.card()
                if card:
                    gr.Markdown(_without_local_images(card))
                for path in model.figures():
                    gr.Image(
                        str(path),
                        label=f"Figure: {path.name}",
                        format="png",
                        interactive=False,
                        buttons=["fullscreen", "download"],
                        elem_classes=["figure", "pixelated"],
                    )
        gr.Markdown(ABOUT_SPACE)


def model_status(model: LoadedModel) -> str:
    spec = model.spec
    if not model.available:
        return f"**Not available**: {model.problem}\n\nSet `{spec.env_var}` to a Hub id or folder to use another one."
    return (
        f"Loaded from `{spec.source}` (override with `{spec.env_var}`).\n\n"
        f"```json\n{json.dumps(_config(model), indent=1)}\n```"
    )


def _config(model: LoadedModel) -> dict[str, Any]:
    """The main model's settings: in the folder's root, or in a pipeline's main component."""
    folder = model.folder
    if (folder / "model_index.json").is_file():
        folder = folder / main_component(json.loads((folder / "model_index.json").read_text()), folder)
    config = json.loads(folder.joinpath("config.json").read_text())
    return {key: value for key, value in config.items() if not key.startswith("_") and key != "auto_map"}


def _without_local_images(card: str) -> str:
    """Card text with its relative image links replaced by a pointer to the figures shown below it."""
    return re.sub(r"!\[([^\]]*)\]\((?!https?://)[^)]*\)", r"*(figure: \1, shown below)*", card)


ABOUT_SPACE = f"""
## The data
Garments come from [Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist) (Zalando Research, MIT license):
28 x 28 greyscale images of 10 classes, a light garment on black. The garment GAN learned the wardrobe's colour
garments: the six wearable classes colourised and patterned by the wardrobe renderer at 64 x 64 on white
(`examples/make_garment_dataset.py`), as the try-on's training data makes them. The examples and the anomaly
calibration set are 1,000 test-split images the models never trained on; the example sketches are their outlines,
drawn by `hf_vaegan.data.sketch` like the sketch model's training inputs. Avatars and dressed avatars come from the
synthetic wardrobe renderer of `hf_vaegan.data.wardrobe`: the body-shape VAE learned its undressed avatars, the try-on
model its dressed ones.

## Limits
- The garment GAN draws the wardrobe's six wearable classes in colour at 64 x 64; the style VAE and the anomaly
  detector know 28 x 28 greyscale Fashion-MNIST only. The try-on colourises greyscale garments itself.
- The anomaly score measures how unlike Fashion-MNIST an image is, photographs included: a real photo of a shirt is
  usually "unusual" for a model of centred, 28-pixel catalogue images.
- The try-on model knows the renderer's avatars and Fashion-MNIST garments at 128 x 96: bent arms and unusual
  garments warp poorly. The body-shape VAE reads the waist width back poorly (R^2 0.12, see its card).
- The sketch model knows outlines of the ten Fashion-MNIST types at 28 x 28: other drawings are forced into one of
  them, and it does not choose colours.
- Uploads: {UPLOAD_LIMITS}.

## Running this Space
```bash
python spaces/app.py           # serves http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change)
HF_VAEGAN_GAN=user/my-gan HF_VAEGAN_VAE=./my-vae python spaces/app.py
```
"""


def build_demo(models: dict[str, LoadedModel] | None = None) -> gr.Blocks:
    """The Space's Blocks with its queue; loads the models unless given."""
    return WardrobeSpace(models or load_models(), HeldoutGarments.load()).build()


def main() -> None:
    # Each request computes on one thread and Gradio's queue runs CONCURRENCY_LIMIT of them at a time: the small
    # models gain little from intra-op threads, and threads of concurrent requests fighting over shared cores slow
    # every one of them down.
    torch.set_num_threads(1)
    # Stopped with SIGTERM (as containers are), close the server as on Ctrl+C and remove the temporary files.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    build_demo().launch(max_file_size=MAX_FILE_SIZE, css=CSS)


if __name__ == "__main__":
    main()
