"""Data: images in any form as model inputs, and the datasets the package trains and evaluates on.

- ``images``: the canonical image modes and the training transform;
- ``loading``: image and paired datasets from a Hub id, a folder, an ``.npz`` or a ``save_to_disk`` folder;
- ``sketch``: garment sketches and sketch/garment pairs; ``tryon``: try-on datasets as tensors;
- ``wardrobe``: the synthetic virtual wardrobe (its public names are re-exported here); ``viton``: VITON-HD folders.

The wardrobe and VITON-HD names load on first use: they import ``datasets``, which the models and pipelines (importing
``images``) do not need.
"""

import importlib

_VITON_NAMES = ("load_viton_hd", "read_openpose_keypoints", "viton_features")


def __getattr__(name: str):
    wardrobe = importlib.import_module(".wardrobe", __name__)
    if name == "__all__":
        return [*wardrobe.__all__, *_VITON_NAMES]
    if name in wardrobe.__all__:
        return getattr(wardrobe, name)
    if name in _VITON_NAMES:
        return getattr(importlib.import_module(".viton", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
