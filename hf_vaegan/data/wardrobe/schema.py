"""The wardrobe's vocabulary: garment classes and groups, parse labels, pose keypoints, try-on columns, body shapes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

GARMENT_LABELS = (0, 1, 2, 3, 4, 6)

GARMENT_GROUPS = {"upper": (0, 2, 4, 6), "lower": (1,), "dress": (3,)}

PARSE_LABELS = (
    "background",
    "hat",
    "hair",
    "glove",
    "sunglasses",
    "upper_clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "torso_skin",
    "scarf",
    "skirt",
    "face",
    "left_arm",
    "right_arm",
    "left_leg",
    "right_leg",
    "left_shoe",
    "right_shoe",
)

POSE_KEYPOINTS = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)

# Columns shared with :func:`hf_vaegan.data.load_viton_hd`, so one training script reads either dataset.
TRYON_COLUMNS = (
    "image",
    "cloth",
    "cloth_mask",
    "agnostic",
    "agnostic_mask",
    "image_parse",
    "body_mask",
    "pose_keypoints",
)

AGNOSTIC_FILL = (128, 128, 128)

DEFAULT_RESOLUTION = (128, 96)

# Test avatars get ids from here on, so an avatar id names one avatar across both splits.
TEST_AVATAR_ID_OFFSET = 1_000_000

BODY_SHAPE_RANGES: dict[str, tuple[float, float]] = {
    "height": (0.78, 0.94),
    "shoulder_width": (0.19, 0.27),
    "waist_width": (0.12, 0.21),
    "hip_width": (0.16, 0.25),
    "right_arm_angle": (3.0, 40.0),
    "left_arm_angle": (3.0, 40.0),
    "right_elbow_bend": (0.0, 120.0),
    "left_elbow_bend": (0.0, 120.0),
    "skin_tone": (0.0, 1.0),
    "hair_tone": (0.0, 1.0),
}

_LABEL = {name: index for index, name in enumerate(PARSE_LABELS)}

# Fashion-MNIST items fill a 28 x 28 frame; cloth geometry is measured in these "frame units".
_FRAME = 28.0

_SPLITS = ("train", "test")

_STREAM_AVATAR, _STREAM_GARMENT, _STREAM_PAIRING, _STREAM_SPLIT = 0, 1, 2, 3


def _rng(rng: np.random.Generator | int | Sequence[int] | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def check_resolution(resolution: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from an int (square) or a pair; ``ValueError`` unless height >= 32 and not too narrow."""
    if isinstance(resolution, (int, np.integer)):
        resolution = (resolution, resolution)
    if len(resolution) != 2 or not all(isinstance(size, (int, np.integer)) for size in resolution):
        raise ValueError(f"resolution must be (height, width) integers, got {resolution!r}")
    height, width = int(resolution[0]), int(resolution[1])
    if height < 32 or width < 0.6 * height:
        raise ValueError(f"resolution must have height >= 32 and width >= 0.6 * height, got {(height, width)}")
    return height, width


@dataclass(frozen=True)
class BodyShape:
    """Interpretable body parameters of an avatar; each must lie in its :data:`BODY_SHAPE_RANGES` range.

    Lengths are fractions of the image height, so a shape renders alike at any resolution. "Right" and "left" are
    the person's (right is on the image's left), as in OpenPose and the CIHP labels.

    Args:
        height: head top to soles (0.78-0.94); the feet stay on the same floor line.
        shoulder_width: across the shoulders (0.19-0.27).
        waist_width: at the waist (0.12-0.21).
        hip_width: at the hips (0.16-0.25).
        right_arm_angle, left_arm_angle: upper arm away from the body, degrees (3-40).
        right_elbow_bend, left_elbow_bend: forearm folded towards the body, degrees (0 straight - 120); beyond
            about 60 degrees the forearm crosses in front of the torso.
        skin_tone: 0 light to 1 dark.
        hair_tone: 0 black to 1 blond.
    """

    height: float = 0.86
    shoulder_width: float = 0.23
    waist_width: float = 0.165
    hip_width: float = 0.205
    right_arm_angle: float = 12.0
    left_arm_angle: float = 12.0
    right_elbow_bend: float = 10.0
    left_elbow_bend: float = 10.0
    skin_tone: float = 0.3
    hair_tone: float = 0.3

    def __post_init__(self) -> None:
        for name, (low, high) in BODY_SHAPE_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"BodyShape.{name} must be a number, got {type(value).__name__}")
            if not low <= value <= high:
                raise ValueError(f"BodyShape.{name} must be in [{low}, {high}], got {value}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def sample(cls, rng: np.random.Generator | int | None = None) -> BodyShape:
        """Draws every parameter uniformly from its range."""
        rng = _rng(rng)
        return cls(**{name: rng.uniform(low, high) for name, (low, high) in BODY_SHAPE_RANGES.items()})

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_label(label: int) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise TypeError(f"garment label must be an int, got {type(label).__name__}")
    if int(label) not in GARMENT_LABELS:
        name = FASHION_MNIST_CLASSES[label] if 0 <= label < len(FASHION_MNIST_CLASSES) else "unknown"
        allowed = ", ".join(f"{index} {FASHION_MNIST_CLASSES[index]}" for index in GARMENT_LABELS)
        raise ValueError(f"Fashion-MNIST label {label} ({name}) is not a wearable garment; allowed: {allowed}")
    return int(label)


def garment_gan_label(wearable_index: int, num_classes: int) -> int:
    """The class a class-conditional garment GAN of ``num_classes`` classes takes for the ``wearable_index``-th of
    :data:`GARMENT_LABELS`: that index for a GAN of the wearable classes alone, its Fashion-MNIST label for a GAN of
    all ten."""
    if num_classes == len(GARMENT_LABELS):
        return wearable_index
    if num_classes == len(FASHION_MNIST_CLASSES):
        return GARMENT_LABELS[wearable_index]
    raise ValueError(
        f"a garment GAN has the {len(GARMENT_LABELS)} wearable classes or the {len(FASHION_MNIST_CLASSES)} of "
        f"Fashion-MNIST, not {num_classes}"
    )


def _group_of(label: int) -> str:
    return next(group for group, labels in GARMENT_GROUPS.items() if label in labels)
