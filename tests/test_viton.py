import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from hf_vaegan.data import (
    TRYON_COLUMNS,
    build_wardrobe_dataset,
    load_viton_hd,
    read_openpose_keypoints,
    wardrobe_features,
)

FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"
HEIGHT, WIDTH = 64, 48
NAMES = ["00000_00", "00001_00", "00002_00", "00003_00"]
# Agnostic grey box (rows, cols) and label-map blocks, multiples of 4 so half-size nearest resizing keeps them.
GREY_BOX = (slice(16, 44), slice(12, 36))
PARSE_BLOCKS = {13: (slice(4, 16), slice(16, 32)), 5: (slice(16, 40), slice(8, 40)), 9: (slice(40, 60), slice(12, 36))}


def person_image(seed: int) -> np.ndarray:
    # Colours far from the agnostic grey, so the grey box is recoverable.
    rng = np.random.default_rng(seed)
    levels = rng.choice([20, 60, 200, 240], size=(HEIGHT // 4, WIDTH // 4, 3)).astype(np.uint8)
    return levels.repeat(4, axis=0).repeat(4, axis=1)


def body_25(seed: int) -> np.ndarray:
    points = np.random.default_rng(seed).uniform([0, 0, 0.5], [WIDTH, HEIGHT, 1.0], size=(25, 3))
    points[4] = 0  # an undetected wrist
    return points


def write_json(path: Path, keypoints: np.ndarray) -> None:
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": keypoints.ravel().tolist()}]}))


def make_viton_folder(root: Path) -> dict[str, dict]:
    """A VITON-HD layout with four train and four test pairs; returns what was written per person name."""
    written = {}
    for split in ("train", "test"):
        folders = {
            name: root / split / name
            for name in ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json", "agnostic-v3.2")
        }
        for folder in folders.values():
            folder.mkdir(parents=True)
        for index, name in enumerate(NAMES):
            person = person_image(index)
            Image.fromarray(person).save(folders["image"] / f"{name}.jpg", quality=95)
            agnostic = person.copy()
            agnostic[GREY_BOX] = 128
            Image.fromarray(agnostic).save(folders["agnostic-v3.2"] / f"{name}.jpg", quality=95)
            cloth = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
            cloth[8:56, 8:40] = (40 * index, 200, 90)
            Image.fromarray(cloth).save(folders["cloth"] / f"{name}.jpg", quality=95)
            Image.fromarray(((cloth != 255).any(axis=-1) * 255).astype(np.uint8)).save(
                folders["cloth-mask"] / f"{name}.jpg", quality=95
            )
            parse = np.zeros((HEIGHT, WIDTH), np.uint8)
            for label, box in PARSE_BLOCKS.items():
                parse[box] = label
            parse_image = Image.fromarray(parse, mode="L").convert("P")
            parse_image.putpalette(np.random.default_rng(0).integers(0, 256, 768, dtype=np.uint8).tolist())
            parse_image.save(folders["image-parse-v3"] / f"{name}.png")
            keypoints = body_25(index)
            # One person comes with COCO-18 keypoints, the others with BODY_25.
            write_json(
                folders["openpose_json"] / f"{name}_keypoints.json", keypoints[:18] if index == 3 else keypoints
            )
            written[name] = {"cloth": cloth, "keypoints": keypoints, "coco": index == 3}
        others = NAMES[1:] + NAMES[:1]
        lines = [
            f"{name}.jpg {(other if split == 'test' else name)}.jpg" for name, other in zip(NAMES, others, strict=True)
        ]
        (root / f"{split}_pairs.txt").write_text("\n".join(lines) + "\n")
    return written


@pytest.fixture
def viton_root(tmp_path):
    root = tmp_path / "viton"
    return root, make_viton_folder(root)


def load(root, **kwargs):
    return load_viton_hd(root, cache_dir=str(root.parent / "cache"), **kwargs)


def test_paired_split_columns_and_resizing(viton_root):
    root, written = viton_root
    dataset = load(root, split="train", resolution=(32, 24))
    assert len(dataset) == 4
    shared = wardrobe_features()
    assert all(dataset.features[name] == shared[name] for name in TRYON_COLUMNS)
    for row in dataset:
        name = Path(row["image_name"]).stem
        assert row["cloth_name"] == row["image_name"]
        assert row["image"].size == row["cloth"].size == row["agnostic"].size == (24, 32)
        masks = {key: np.asarray(row[key]) for key in ("cloth_mask", "agnostic_mask", "body_mask")}
        for key, mask in masks.items():
            assert mask.shape == (32, 24) and set(np.unique(mask)) == {0, 255}, key

        parse = np.asarray(row["image_parse"])
        assert set(np.unique(parse)) == {0, *PARSE_BLOCKS}
        assert np.array_equal(masks["body_mask"] > 0, parse > 0)
        grey = np.zeros((HEIGHT, WIDTH), bool)
        grey[GREY_BOX] = True
        expected = grey[::2, ::2]
        overlap = (masks["agnostic_mask"] > 0) & expected
        assert overlap.sum() / ((masks["agnostic_mask"] > 0) | expected).sum() > 0.85

        keypoints = np.asarray(row["pose_keypoints"])
        source = written[name]["keypoints"][[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]]
        if written[name]["coco"]:
            source = written[name]["keypoints"][:18]
        np.testing.assert_allclose(keypoints[:, :2], source[:, :2] / 2, rtol=1e-5)
        np.testing.assert_allclose(keypoints[:, 2], source[:, 2], rtol=1e-5)
        assert (keypoints[4] == 0).all()


def test_unpaired_takes_the_cloth_named_in_the_pairs_file(viton_root):
    root, written = viton_root
    dataset = load(root, split="test", pairs="unpaired", resolution=None)
    row = dataset[0]
    assert (row["image_name"], row["cloth_name"]) == ("00000_00.jpg", "00001_00.jpg")
    assert row["image"].size == (WIDTH, HEIGHT)
    cloth = np.asarray(row["cloth"]).astype(int)
    assert np.abs(cloth[32, 24] - written["00001_00"]["cloth"][32, 24]).max() < 8
    assert load(root, split="test", pairs="paired", max_samples=2)["cloth_name"] == ["00000_00.jpg", "00001_00.jpg"]


def test_cache_follows_file_changes(viton_root):
    root, _ = viton_root
    before = np.asarray(load(root, split="train", resolution=None)[0]["image"])
    Image.fromarray(255 - person_image(0)).save(root / "train" / "image" / "00000_00.jpg", quality=95)
    after = np.asarray(load(root, split="train", resolution=None)[0]["image"])
    assert np.abs(after.astype(int) + before.astype(int) - 255).mean() < 8


def test_same_columns_as_the_synthetic_wardrobe(viton_root):
    root, _ = viton_root
    with np.load(FIXTURE) as fashion_mnist:
        synthetic = build_wardrobe_dataset(fashion_mnist["images"], fashion_mnist["labels"], num_samples=2)
    real = load(root, split="train", resolution=(128, 96))
    mixed = datasets.concatenate_datasets(
        [real.select_columns(TRYON_COLUMNS), synthetic.select_columns(TRYON_COLUMNS)]
    )
    assert len(mixed) == 6 and mixed[5]["image"].size == mixed[0]["image"].size == (96, 128)


def test_missing_folder_and_files_are_named(viton_root):
    root, _ = viton_root
    (root / "test" / "cloth-mask" / "00002_00.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"cloth-mask/00002_00"):
        load(root, split="test")
    for path in (root / "train" / "cloth-mask").iterdir():
        path.unlink()
    (root / "train" / "cloth-mask").rmdir()
    with pytest.raises(FileNotFoundError, match=r"folder .*train/cloth-mask not found"):
        load(root, split="train")
    (root / "test_pairs.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test_pairs.txt"):
        load(root, split="test")


def test_malformed_inputs_raise_value_errors(viton_root):
    root, _ = viton_root
    json_path = root / "train" / "openpose_json" / "00001_00_keypoints.json"
    json_path.write_text('{"people": [')
    with pytest.raises(ValueError, match="00001_00_keypoints.json: malformed OpenPose json"):
        load(root, split="train")
    write_json(json_path, np.zeros((20, 3)))
    with pytest.raises(ValueError, match="18 or 25 points"):
        read_openpose_keypoints(json_path)
    json_path.write_text('{"people": []}')
    with pytest.raises(ValueError, match="people"):
        read_openpose_keypoints(json_path)

    Image.new("RGB", (WIDTH, HEIGHT)).save(root / "test" / "image-parse-v3" / "00002_00.png")
    with pytest.raises(ValueError, match="00002_00.png: image-parse must be a palette"):
        load(root, split="test")
    (root / "test_pairs.txt").write_text("00000_00.jpg 00000_00.jpg\n00001_00.jpg\n")
    with pytest.raises(ValueError, match="test_pairs.txt, line 2"):
        load(root, split="test")
    with pytest.raises(ValueError, match="split must be"):
        load(root, split="validation")
    with pytest.raises(ValueError, match="pairs must be"):
        load(root, pairs="both")
