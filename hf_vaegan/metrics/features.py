"""Feature extractors: the embeddings in which FID, KID and precision/recall are computed.

Every extractor maps images `(B, C, H, W)` in [-1, 1] to features `(B, D)` (float32, on the CPU), in batches, and has a
`name` that identifies its weights in the cache of real-image features. Three are provided:

- [`FashionClassifierFeatures`]: the small Fashion-MNIST classifier shipped with the package (fast, offline; numbers
  comparable only with each other), or any `FashionClassifier` folder, such as the wardrobe's 64x64 colour garment
  classifier also shipped (`GARMENT_CLASSIFIER_PATH`) or one `examples/train_classifier.py` trained on your data;
- [`TransformersFeatures`]: any `transformers` vision backbone (DINOv2, CLIP, SigLIP...); the Fréchet distance in
  DINOv2 space is the modern recommendation (Stein et al., 2023);
- [`InceptionV3Features`]: the InceptionV3 pool features of the original FID (Heusel et al., 2017), through
  `torch-fidelity`, for numbers comparable with papers.
"""

import hashlib
import json
import re
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.blocks import IMAGE_RANGE, check_image_batch
from ..models.fashion_classifier import FashionClassifier

FASHION_CLASSIFIER_PATH = Path(__file__).parent / "weights" / "fashion-classifier"
# 64x64 RGB garments of `examples/make_garment_dataset.py`, six classes in `hf_vaegan.data.GARMENT_LABELS` order
GARMENT_CLASSIFIER_PATH = Path(__file__).parent / "weights" / "garment-classifier"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_metric_images(images: torch.Tensor, name: str = "images") -> None:
    """Raises a clear error unless `images` is a float tensor `(B, 1 or 3, H, W)` of finite values in [-1, 1]: the
    input of every metric (the models' own check, `hf_vaegan.models.blocks.check_image_batch`)."""
    check_image_batch(images, (1, 3), name=name, value_range=IMAGE_RANGE)


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float `(B, 1 or 3, H, W)` -> uint8 `(B, 3, H, W)`: the input the standard preprocessors expect."""
    pixels = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


def load_fashion_classifier(device: str | torch.device | None = None) -> FashionClassifier:
    """The Fashion-MNIST classifier shipped in the package (see its model card), in eval mode."""
    model = FashionClassifier.from_pretrained(FASHION_CLASSIFIER_PATH, use_safetensors=True)
    return model.to(device or default_device()).eval()


def weights_name(folder: Path) -> str:
    """`<folder name>-<digest of its weights>`: a cache key that changes whenever the weights do."""
    (weights,) = folder.glob("*.safetensors")
    return f"{folder.name}-{hashlib.sha256(weights.read_bytes()).hexdigest()[:12]}"


def is_classifier_folder(path: str | Path) -> bool:
    """Whether `path` is a local folder holding a saved `FashionClassifier`."""
    config = Path(path) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("_class_name") == FashionClassifier.__name__


class FeatureExtractor(ABC):
    """Base class: batching, device placement and input checks around `extract_batch`.

    Args:
        name: identifies the extractor and its weights; part of the cache key of real-image features.
        batch_size: images per forward pass.
        device: where the model runs; CUDA when available by default.
    """

    def __init__(self, name: str, batch_size: int = 256, device: str | torch.device | None = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
        self.name = name
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else default_device()

    @abstractmethod
    def extract_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Features `(B, D)` of one batch of images `(B, C, H, W)` in [-1, 1], already on `self.device`."""

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features `(N, D)` (float32, CPU) of images `(N, C, H, W)` in [-1, 1]."""
        check_metric_images(images)
        if len(images) == 0:
            raise ValueError("`images` is empty")
        features = [self.extract_batch(batch.to(self.device)).float().cpu() for batch in images.split(self.batch_size)]
        return torch.cat(features)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r})"


class FashionClassifierFeatures(FeatureExtractor):
    """Penultimate-layer features (128-d) of the packaged Fashion-MNIST classifier, or of `model` (then pass a `name`).

    RGB inputs are converted to greyscale and other sizes are resized to 28x28 (antialiased bilinear).
    """

    def __init__(
        self,
        model: FashionClassifier | None = None,
        name: str | None = None,
        batch_size: int = 512,
        device: str | torch.device | None = None,
    ):
        if model is None:
            model = load_fashion_classifier(device)
            name = name or weights_name(FASHION_CLASSIFIER_PATH)
        elif name is None:
            raise ValueError("pass a `name` identifying the weights of a custom `model` (it keys the feature cache)")
        super().__init__(name, batch_size, device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_folder(
        cls, folder: str | Path, batch_size: int = 512, device: str | torch.device | None = None
    ) -> "FashionClassifierFeatures":
        """Features of the `FashionClassifier` saved in `folder` (e.g. `GARMENT_CLASSIFIER_PATH`, or an
        `examples/train_classifier.py` output), named after the folder and its weights' digest."""
        model = FashionClassifier.from_pretrained(folder, use_safetensors=True)
        return cls(model, weights_name(Path(folder)), batch_size, device)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Greyscale, `config.resolution`-sized images for the classifier."""
        if images.shape[1] == 3 and self.model.config.in_channels == 1:
            luma_weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
            images = torch.einsum("bchw,c->bhw", images, luma_weights).unsqueeze(1)
        size = self.model.config.resolution
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return images.to(self.model.dtype)

    def extract_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.prepare(images)).features


class TransformersFeatures(FeatureExtractor):
    """Image embeddings of a `transformers` vision model, preprocessed by its own `AutoImageProcessor`.

    Uses `get_image_features` when the model has it (CLIP, SigLIP: the projected embedding), otherwise the pooled
    output (DINOv2: the normalised CLS token), otherwise the first token of the last hidden state. Greyscale images are
    replicated to RGB; resizing and normalisation follow the processor's config.

    Args:
        model_name_or_path: a Hub id (e.g. `"facebook/dinov2-base"`) or a local folder with the model and its
            preprocessor config.
        name: cache key of the weights; defaults to `model_name_or_path` (with `/` replaced by `--`).
        model_kwargs: extra `AutoModel.from_pretrained` arguments (e.g. `{"dtype": torch.float16}`).
        **from_pretrained_kwargs: passed to both `from_pretrained` calls (`revision`, `cache_dir`,
            `local_files_only`, `token`).
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        name: str | None = None,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        model_kwargs: dict | None = None,
        **from_pretrained_kwargs,
    ):
        from transformers import AutoImageProcessor, AutoModel

        if name is None:
            source = str(model_name_or_path)
            name = Path(source).name if Path(source).is_dir() else source
        super().__init__(re.sub(r"[^\w.-]+", "--", name), batch_size, device)
        self.processor = AutoImageProcessor.from_pretrained(model_name_or_path, **from_pretrained_kwargs)
        self.model = AutoModel.from_pretrained(model_name_or_path, **from_pretrained_kwargs, **(model_kwargs or {}))
        self.model.to(self.device).eval()

    def extract_batch(self, images: torch.Tensor) -> torch.Tensor:
        inputs = self.processor(images=to_uint8_rgb(images).cpu(), return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, self.model.dtype)
        if hasattr(self.model, "get_image_features"):
            output = self.model.get_image_features(pixel_values=pixel_values)
            # transformers < 5 returns the tensor, >= 5 a model output with the projection in `pooler_output`
            return output if isinstance(output, torch.Tensor) else output.pooler_output
        output = self.model(pixel_values=pixel_values)
        pooled = getattr(output, "pooler_output", None)
        return pooled.flatten(1) if pooled is not None else output.last_hidden_state[:, 0]


class InceptionV3Features(FeatureExtractor):
    """The 2048-d pool features of the FID InceptionV3 (the TensorFlow-compatible port in `torch-fidelity`).

    This is the protocol of the FID/KID numbers in papers. It needs `pip install torch-fidelity` (which
    `torchmetrics[image]` also installs) and downloads its weights (about 100 MB) on first use, unless
    `weights_path` points to a local copy of `pt_inception-2015-12-05-6726825d.pth`. Images are converted to uint8
    RGB and resized to 299x299 inside the network, as in the reference implementation.
    """

    def __init__(
        self, weights_path: str | Path | None = None, batch_size: int = 64, device: str | torch.device | None = None
    ):
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as error:
            raise ImportError(
                "InceptionV3Features needs the `torch-fidelity` package (`pip install torch-fidelity`, or "
                "`pip install torchmetrics[image]`, which brings it). Without it, use FashionClassifierFeatures "
                "(offline, Fashion-MNIST) or TransformersFeatures (e.g. DINOv2)."
            ) from error
        super().__init__("inception-v3-compat", batch_size, device)
        try:
            model = FeatureExtractorInceptionV3(
                "inception-v3-compat",
                ["2048"],
                feature_extractor_weights_path=None if weights_path is None else str(weights_path),
            )
        except Exception as error:
            raise RuntimeError(
                "Could not load the InceptionV3 FID weights: torch-fidelity downloads them on first use, which needs "
                "network access; pass `weights_path` to a local `pt_inception-2015-12-05-6726825d.pth` instead."
            ) from error
        self.model = model.to(self.device).eval()

    def extract_batch(self, images: torch.Tensor) -> torch.Tensor:
        (features,) = self.model(to_uint8_rgb(images))
        return features
