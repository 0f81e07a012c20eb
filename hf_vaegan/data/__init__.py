"""Data: images in any form as model inputs, and the datasets the package trains and evaluates on.

- ``images``: the canonical image modes and the training transform;
- ``loading``: image and paired datasets from a Hub id, a folder, an ``.npz`` or a ``save_to_disk`` folder;
- ``sketch``: garment sketches and sketch/garment pairs; ``tryon``: try-on datasets as tensors;
- ``wardrobe``: the synthetic virtual wardrobe (its public names are re-exported here); ``viton``: VITON-HD folders.
"""

from . import wardrobe
from .viton import load_viton_hd, read_openpose_keypoints, viton_features
from .wardrobe import *  # noqa: F403 (the wardrobe's __all__)

__all__ = [*wardrobe.__all__, "load_viton_hd", "read_openpose_keypoints", "viton_features"]
