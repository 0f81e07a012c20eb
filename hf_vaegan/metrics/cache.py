"""On-disk cache of real-image features, so evaluation does not recompute them.

Files are `<cache_dir>/<dataset>-<split>-<extractor>-<n>.npz` (plain `.npz`, loaded without pickle). Each stores the
features, a fingerprint of the images they came from and a checksum of the features: a file that is unreadable,
truncated, altered or made from other images is detected, recomputed and replaced. Writes are atomic (a temporary
file in the same folder, then `os.replace`), so concurrent evaluations never read a half-written file.
"""

import hashlib
import logging
import os
import re
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from .features import FeatureExtractor

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "HF_VAEGAN_CACHE"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """`$HF_VAEGAN_CACHE/stats`, else `$XDG_CACHE_HOME/hf_vaegan/stats`, else `~/.cache/hf_vaegan/stats`."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser() / "stats"
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "hf_vaegan" / "stats"


def cache_path(dataset: str, split: str, extractor_name: str, num_images: int, cache_dir: str | Path | None) -> Path:
    parts = [re.sub(r"[^\w.-]+", "--", str(part)) for part in (dataset, split, extractor_name, num_images)]
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / ("-".join(parts) + ".npz")


def images_fingerprint(images: torch.Tensor) -> str:
    """SHA-256 of the images' shape, dtype and values."""
    array = images.detach().cpu().contiguous().numpy()
    digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    digest.update(array.data)
    return digest.hexdigest()


def _features_checksum(features: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(features).data).hexdigest()


def _read_cache(path: Path, fingerprint: str, extractor_name: str) -> np.ndarray | None:
    """The cached features, or None (logging why) if the file is missing, corrupt or stale."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            features = data["features"]
            stored = {key: str(data[key]) for key in ("fingerprint", "extractor", "checksum")}
            version = int(data["version"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        logger.warning("Feature cache %s is unreadable (%s); recomputing it.", path, error)
        return None
    if version != FORMAT_VERSION or features.ndim != 2 or stored["checksum"] != _features_checksum(features):
        logger.warning("Feature cache %s is corrupt; recomputing it.", path)
        return None
    if stored["fingerprint"] != fingerprint or stored["extractor"] != extractor_name:
        logger.warning("Feature cache %s was made from other images or another extractor; recomputing it.", path)
        return None
    return features


def _write_cache(path: Path, features: np.ndarray, fingerprint: str, extractor_name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as file:
        temporary = Path(file.name)
        try:
            np.savez(
                file,
                features=features,
                fingerprint=np.str_(fingerprint),
                extractor=np.str_(extractor_name),
                checksum=np.str_(_features_checksum(features)),
                version=np.int64(FORMAT_VERSION),
            )
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    os.replace(temporary, path)


def cached_features(
    images: torch.Tensor,
    extractor: FeatureExtractor,
    dataset: str,
    split: str,
    cache_dir: str | Path | None = None,
) -> torch.Tensor:
    """Features `(N, D)` of real `images` `(N, C, H, W)` in [-1, 1], read from the cache or computed and cached.

    Args:
        images: the real images; their fingerprint is checked against the cached one.
        extractor: the feature extractor; its `name` is part of the cache key.
        dataset: dataset name for the cache key (e.g. `"fashion_mnist"`).
        split: split name for the cache key (e.g. `"test"`).
        cache_dir: the cache folder; defaults to [`default_cache_dir`].
    """
    path = cache_path(dataset, split, extractor.name, len(images), cache_dir)
    fingerprint = images_fingerprint(images)
    features = _read_cache(path, fingerprint, extractor.name)
    if features is not None:
        return torch.from_numpy(features)
    computed = extractor(images)
    _write_cache(path, computed.numpy(), fingerprint, extractor.name)
    return computed
