"""Load a VITON-HD folder into a ``datasets.Dataset`` with the synthetic wardrobe's column names.

Expected layout (as in the VITON-HD release of Choi et al., 2021)::

    root/
        train_pairs.txt, test_pairs.txt     # "person.jpg cloth.jpg" per line
        train/ and test/, each with
            image/00000_00.jpg              # person
            cloth/00000_00.jpg              # flat garment
            cloth-mask/00000_00.jpg
            image-parse-v3/00000_00.png     # palette label map, CIHP/LIP ids
            openpose_json/00000_00_keypoints.json
            agnostic-v3.2/00000_00.jpg      # person with the try-on region in grey

Columns are :data:`~hf_vaegan.data.wardrobe.TRYON_COLUMNS` (typed as in
:func:`~hf_vaegan.data.wardrobe.wardrobe_features`) plus ``image_name`` and ``cloth_name``; all images are resized
to ``resolution``. They differ from the synthetic ones in what real data allows:

* ``body_mask`` is the parsed person (``image_parse > 0``), clothes included, not an undressed body;
* ``agnostic_mask`` is recovered from ``agnostic-v3.2``: pixels showing the grey fill where the photo is not grey;
* ``pose_keypoints`` are OpenPose's, BODY_25 reduced to COCO-18 order, with confidence; missing points are zeros;
* with ``pairs="unpaired"``, ``cloth`` is another garment and ``image`` still shows the person's own: there is no
  unpaired ground truth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets.fingerprint import Hasher
from PIL import Image, ImageFilter

from .wardrobe import (
    AGNOSTIC_FILL,
    DEFAULT_RESOLUTION,
    POSE_KEYPOINTS,
    TRYON_COLUMNS,
    check_resolution,
    wardrobe_features,
)

VITON_FOLDERS = ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json", "agnostic-v3.2")
# BODY_25 has MidHip at 8 and feet after 18; dropping them leaves the COCO-18 order.
BODY_25_TO_COCO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
# JPEG moves the grey fill by a few levels; photo pixels inside the fill differ from it by more than this.
_GREY_TOLERANCE = 12
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_FILE_KEYS = ("image", "agnostic", "parse", "cloth", "cloth_mask")


def viton_features() -> datasets.Features:
    """Features of :func:`load_viton_hd` datasets: the shared try-on columns and the source file names."""
    shared = wardrobe_features()
    return datasets.Features(
        {name: shared[name] for name in TRYON_COLUMNS}
        | {"image_name": datasets.Value("string"), "cloth_name": datasets.Value("string")}
    )


def _read_pairs(path: Path, pairs: str) -> list[tuple[str, str]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        names = line.split()
        if len(names) != 2:
            raise ValueError(f"{path}, line {number}: expected 'person_image cloth_image', got {line!r}")
        person, cloth = names
        rows.append((person, person if pairs == "paired" else cloth))
    if not rows:
        raise ValueError(f"{path} lists no pairs")
    return rows


def _index(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    return {path.stem: path for path in folder.iterdir() if path.suffix.lower() in suffixes}


def read_openpose_keypoints(path: str | Path) -> np.ndarray:
    """(18, 3) float32 [x, y, confidence] of ``people[0]`` in an OpenPose json (BODY_25 or COCO-18), COCO-18 order."""
    try:
        people = json.loads(Path(path).read_text())["people"]
        values = np.asarray(people[0]["pose_keypoints_2d"], dtype=np.float32)
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: malformed OpenPose json, need people[0].pose_keypoints_2d ({error!r})") from error
    if values.shape == (25 * 3,):
        return values.reshape(25, 3)[list(BODY_25_TO_COCO_18)]
    if values.shape == (len(POSE_KEYPOINTS) * 3,):
        return values.reshape(len(POSE_KEYPOINTS), 3)
    raise ValueError(f"{path}: pose_keypoints_2d must hold 18 or 25 points (54 or 75 numbers), got {values.size}")


def _agnostic_mask(agnostic: np.ndarray, person: np.ndarray) -> np.ndarray:
    agnostic, person = agnostic.astype(np.int16), person.astype(np.int16)
    grey = (np.abs(agnostic - np.asarray(AGNOSTIC_FILL)) <= _GREY_TOLERANCE).all(axis=-1)
    covered = np.abs(agnostic - person).max(axis=-1) > _GREY_TOLERANCE
    mask = Image.fromarray(((grey & covered) * 255).astype(np.uint8))
    # Closing fills the pinholes where the photo itself happened to be grey.
    return np.asarray(mask.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.MinFilter(5)))


def _binary(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    resized = np.asarray(image.convert("L").resize(size, Image.Resampling.BILINEAR))
    return np.where(resized >= 128, 255, 0).astype(np.uint8)


def _check_label_map(path: str | Path) -> None:
    with Image.open(path) as parse:  # reads the header only
        if parse.mode not in ("P", "L"):
            raise ValueError(f"{path}: image-parse must be a palette (P) or grayscale (L) label map, got {parse.mode}")


def _label_map(path: str | Path) -> Image.Image:
    """The label map at ``path`` as an ``L`` image of label ids (a palette image's indices)."""
    with Image.open(path) as parse:
        return Image.fromarray(np.asarray(parse, dtype=np.uint8))


def _examples(entries: list[dict[str, Any]], resolution: tuple[int, int] | None) -> Iterator[dict[str, Any]]:
    for entry in entries:
        person = Image.open(entry["image"]).convert("RGB")
        width, height = person.size
        size = (width, height) if resolution is None else (resolution[1], resolution[0])
        agnostic = Image.open(entry["agnostic"]).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        agnostic_mask = _agnostic_mask(np.asarray(agnostic), np.asarray(person))
        parse = _label_map(entry["parse"]).resize(size, Image.Resampling.NEAREST)
        keypoints = np.asarray(entry["keypoints"], np.float32).copy()
        keypoints[:, 0] *= size[0] / width
        keypoints[:, 1] *= size[1] / height
        yield {
            "image": person.resize(size, Image.Resampling.BICUBIC),
            "cloth": Image.open(entry["cloth"]).convert("RGB").resize(size, Image.Resampling.BICUBIC),
            "cloth_mask": _binary(Image.open(entry["cloth_mask"]), size),
            "agnostic": agnostic.resize(size, Image.Resampling.BICUBIC),
            "agnostic_mask": _binary(Image.fromarray(agnostic_mask), size),
            "image_parse": parse,
            "body_mask": np.where(np.asarray(parse) > 0, 255, 0).astype(np.uint8),
            "pose_keypoints": keypoints.tolist(),
            "image_name": entry["image_name"],
            "cloth_name": entry["cloth_name"],
        }


def load_viton_hd(
    root: str | Path,
    split: str = "train",
    pairs: str = "paired",
    resolution: int | Sequence[int] | None = DEFAULT_RESOLUTION,
    max_samples: int | None = None,
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """Reads ``root/{split}_pairs.txt`` and the ``root/{split}/`` folders (see the module docstring).

    Args:
        root: the VITON-HD folder.
        split: "train" or "test".
        pairs: "paired" (each person with their own cloth) or "unpaired" (the cloth named in the pairs file).
        resolution: (height, width) of every image, or None to keep the person images' size.
        max_samples: read only the first pairs.
        cache_dir: where ``datasets`` caches the Arrow file (default: the Hugging Face datasets cache); the cache is
            keyed by the files' sizes and modification times, so edited files are read again.

    Raises:
        FileNotFoundError: naming a missing folder, pairs file or image.
        ValueError: for a malformed pairs line, OpenPose json or label map.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if pairs not in ("paired", "unpaired"):
        raise ValueError(f"pairs must be 'paired' or 'unpaired', got {pairs!r}")
    resolution = None if resolution is None else check_resolution(resolution)
    root = Path(root)
    pairs_file = root / f"{split}_pairs.txt"
    if not pairs_file.is_file():
        raise FileNotFoundError(f"VITON-HD pairs file {pairs_file} not found")
    folders = {name: root / split / name for name in VITON_FOLDERS}
    for folder in folders.values():
        if not folder.is_dir():
            raise FileNotFoundError(f"VITON-HD folder {folder} not found")
    rows = _read_pairs(pairs_file, pairs)[:max_samples]

    index = {name: _index(folder, _IMAGE_SUFFIXES) for name, folder in folders.items() if name != "openpose_json"}
    index["openpose_json"] = _index(folders["openpose_json"], (".json",))
    entries, missing = [], []
    for person, cloth in rows:
        person_stem, cloth_stem = Path(person).stem, Path(cloth).stem
        wanted = {
            "image": ("image", person_stem),
            "agnostic": ("agnostic-v3.2", person_stem),
            "parse": ("image-parse-v3", person_stem),
            "keypoints": ("openpose_json", f"{person_stem}_keypoints"),
            "cloth": ("cloth", cloth_stem),
            "cloth_mask": ("cloth-mask", cloth_stem),
        }
        found = {key: index[folder].get(stem) for key, (folder, stem) in wanted.items()}
        missing += [f"{folders[folder] / stem}.*" for key, (folder, stem) in wanted.items() if found[key] is None]
        if not missing:
            entries.append(found | {"image_name": person, "cloth_name": cloth})
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} VITON-HD file(s) listed by {pairs_file} not found, e.g. {missing[:3]}"
        )

    files = [entry[key] for entry in entries for key in _FILE_KEYS + ("keypoints",)]
    stats = [(str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns) for path in files]
    fingerprint = Hasher.hash([split, pairs, resolution, stats])
    for entry in entries:
        # Malformed inputs fail here with their own message, not wrapped in a dataset generation error.
        entry["keypoints"] = read_openpose_keypoints(entry["keypoints"]).tolist()
        _check_label_map(entry["parse"])
        entry.update({key: str(entry[key]) for key in _FILE_KEYS})
    return datasets.Dataset.from_generator(
        _examples,
        features=viton_features(),
        gen_kwargs={"entries": entries, "resolution": resolution},
        cache_dir=cache_dir,
        fingerprint=fingerprint,
    )
