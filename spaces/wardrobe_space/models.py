"""Which models the Space uses, where each comes from, and what to say when one is missing.

Each model comes from the environment variable of its `ModelSpec` (a Hub id or a local folder), else from the
folder bundled inside the installed `hf_vaegan` package, so the same code runs offline, in the tests (tiny models in
a temporary folder) and on the Hub. A model that cannot be loaded leaves its tab explaining why; the app still starts.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from huggingface_hub import ModelCard, snapshot_download
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from PIL import Image

import hf_vaegan
from hf_vaegan import BodyShapePipeline, GANPipeline, ImageToImagePipeline, TryOnPipeline, VAEPipeline
from hf_vaegan.metrics import AnomalyThreshold, calibrate_threshold

logger = logging.getLogger(__name__)

BUNDLED_DIR = Path(hf_vaegan.__file__).parent / "pretrained"
HELDOUT_GARMENTS = Path(__file__).parents[1] / "data" / "heldout_garments.npz"
EXAMPLES_PER_CLASS = 2

# The anomaly verdict: the detector's best score (`VAEPipeline.default_anomaly_method`; the transformation score of the
# bundled TransformationVAE) against the threshold that flags this share of held-out real garments. ELBO-based scores
# (a plain VAE as detector) average ANOMALY_SAMPLES posterior draws with a fixed seed, so that an image always gets the
# same score.
ANOMALY_FALSE_POSITIVE_RATE = 0.01
ANOMALY_SAMPLES = 4
ANOMALY_SEED = 0
# How the body-shape VAE's card names the accuracy of the parameters its head reads back from the latent.
READ_BACK_METRIC = re.compile(r"R\^2 of (\w+) read from the latent.*")


@dataclass(frozen=True)
class ModelSpec:
    """A model of the Space.

    Attributes:
        key: short name used in code (`"gan"`).
        title: what the UI calls it.
        env_var: environment variable holding a Hub id or folder that overrides the bundled model.
        bundled_name: folder name under `hf_vaegan/pretrained/`.
        load: folder -> the object the tab uses.
    """

    key: str
    title: str
    env_var: str
    bundled_name: str
    load: Callable[[Path], Any]

    @property
    def source(self) -> str:
        return os.environ.get(self.env_var, "").strip() or str(BUNDLED_DIR / self.bundled_name)


@dataclass
class LoadedModel:
    """The outcome of loading a `ModelSpec`: the ready object, or why there is none."""

    spec: ModelSpec
    folder: Path | None = None
    value: Any = None
    problem: str | None = None

    @property
    def available(self) -> bool:
        return self.value is not None

    def require(self) -> Any:
        """The loaded object, or a `gr.Error` telling the user why this feature is unavailable."""
        if self.value is None:
            raise gr.Error(f"{self.spec.title} is not available: {self.problem}", title="Model not available")
        return self.value

    def card(self) -> str | None:
        """The model card's text (without its YAML metadata), if the folder has one."""
        readme = self.folder / "README.md" if self.folder else None
        return ModelCard.load(readme).text if readme and readme.is_file() else None

    def read_back_r2(self) -> dict[str, float]:
        """R^2 of each body parameter read back from the latent of held-out avatars by a body-shape head, from the
        model card's metadata (`examples/fit_body_shape_head.py` measures and writes them); empty without them."""
        return dict(self._card_read_back_r2)

    @cached_property
    def _card_read_back_r2(self) -> dict[str, float]:
        # Parsed once: every body render shows them, and the card does not change while the Space runs.
        readme = self.folder / "README.md" if self.folder else None
        if not (readme and readme.is_file()):
            return {}
        figures = {}
        for result in ModelCard.load(readme).data.eval_results or []:
            match = READ_BACK_METRIC.fullmatch(result.metric_name or "")
            if match:
                figures[match.group(1)] = float(result.metric_value)
        return figures

    def figures(self) -> list[Path]:
        """The PNG figures shipped beside the weights (sample grids, curves)."""
        return sorted(self.folder.glob("*.png")) if self.folder else []


def resolve_folder(spec: ModelSpec) -> Path:
    """The local folder of `spec.source`: the folder itself, or a snapshot of the Hub repository it names."""
    source = spec.source
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    overridden = bool(os.environ.get(spec.env_var, "").strip())
    if not overridden:
        raise FileNotFoundError(
            f"{spec.env_var} is not set and the bundled folder hf_vaegan/pretrained/{spec.bundled_name} does not "
            "exist (its weights have not been trained and bundled yet)."
        )
    try:
        validate_repo_id(source)
    except HFValidationError:
        raise FileNotFoundError(f"{spec.env_var}={source!r} is neither a folder nor a Hub model id.") from None
    return Path(snapshot_download(source))


def load_model(spec: ModelSpec) -> LoadedModel:
    """Loads one model; any failure becomes `problem`, shown in the UI, so that one bad model never stops the app."""
    try:
        folder = resolve_folder(spec)
        return LoadedModel(spec, folder, spec.load(folder))
    except Exception as error:  # every reason must reach the UI, none may stop the app
        logger.warning("%s unavailable: %s", spec.title, error)
        return LoadedModel(spec, problem=f"{type(error).__name__}: {error}")


@dataclass(frozen=True)
class HeldoutGarments:
    """Fashion-MNIST test images the models never trained on (`data/heldout_garments.npz`).

    The first `EXAMPLES_PER_CLASS` of each class are the Space's example garments, the rest calibrate the anomaly
    detector's threshold.
    """

    images: np.ndarray  # (N, 28, 28) uint8, light garment on black
    labels: np.ndarray  # (N,)

    @classmethod
    def load(cls, path: Path = HELDOUT_GARMENTS) -> HeldoutGarments:
        with np.load(path) as data:
            return cls(data["images"], data["labels"].astype(np.int64))

    def example_indices(self) -> list[int]:
        """The examples, class by class."""
        return [int(i) for c in np.unique(self.labels) for i in np.flatnonzero(self.labels == c)[:EXAMPLES_PER_CLASS]]

    def calibration_images(self) -> list[Image.Image]:
        examples = set(self.example_indices())
        return [Image.fromarray(image) for i, image in enumerate(self.images) if i not in examples]


def anomaly_scores(pipeline: VAEPipeline, images: list[Image.Image]) -> np.ndarray:
    """The pipeline's best anomaly score per image (higher = more unusual), reproducible (fixed seed)."""
    generator = torch.Generator(pipeline.device).manual_seed(ANOMALY_SEED)
    return pipeline.anomaly_scores(images, num_samples=ANOMALY_SAMPLES, generator=generator)


@dataclass(frozen=True)
class AnomalyDetector:
    """The detector pipeline and its threshold, calibrated on the held-out real garments when the Space starts."""

    pipeline: VAEPipeline
    threshold: AnomalyThreshold


def load_anomaly_detector(folder: Path) -> AnomalyDetector:
    pipeline = VAEPipeline.from_pretrained(folder)
    scores = anomaly_scores(pipeline, HeldoutGarments.load().calibration_images())
    threshold = calibrate_threshold(scores, ANOMALY_FALSE_POSITIVE_RATE, pipeline.default_anomaly_method)
    return AnomalyDetector(pipeline, threshold)


MODEL_SPECS = (
    ModelSpec("gan", "The garment GAN", "HF_VAEGAN_GAN", "wardrobe-garment-gan", GANPipeline.from_pretrained),
    ModelSpec("vae", "The style VAE", "HF_VAEGAN_VAE", "fashion-vae", VAEPipeline.from_pretrained),
    ModelSpec("anomaly", "The anomaly detector", "HF_VAEGAN_ANOMALY", "fashion-anomaly-vae", load_anomaly_detector),
    ModelSpec(
        "body_vae", "The body-shape VAE", "HF_VAEGAN_BODY_VAE", "wardrobe-body-vae", BodyShapePipeline.from_pretrained
    ),
    ModelSpec("tryon", "The try-on model", "HF_VAEGAN_TRYON", "wardrobe-tryon", TryOnPipeline.from_pretrained),
    ModelSpec(
        "sketch",
        "The sketch-to-garment model",
        "HF_VAEGAN_SKETCH",
        "sketch2garment",
        ImageToImagePipeline.from_pretrained,
    ),
)


def load_models() -> dict[str, LoadedModel]:
    return {spec.key: load_model(spec) for spec in MODEL_SPECS}
