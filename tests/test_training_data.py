import argparse
from pathlib import Path

import datasets
import huggingface_hub.constants
import numpy as np
import pytest
import torch
from PIL import Image

from hf_vaegan.data.images import make_image_transform, to_canonical_mode
from hf_vaegan.data.loading import collate_examples, load_image_dataset, load_paired_dataset, make_dataloader
from hf_vaegan.training.dataset_args import (
    add_dataset_args,
    load_image_dataset_from_args,
    load_paired_dataset_from_args,
)

FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"


def _gradient(height: int, width: int) -> np.ndarray:
    """A left-to-right ramp: asymmetric, so flips and crops are visible."""
    return np.tile(np.linspace(0, 255, width, dtype=np.float64), (height, 1)).round().astype(np.uint8)


def _tiny_dataset(num_rows: int = 6) -> datasets.Dataset:
    rows = range(num_rows)
    return datasets.Dataset.from_dict(
        {
            "caption": [f"row {index}" for index in rows],
            "img": [np.full((5 + index, 7, 3), 40 * index, dtype=np.uint8) for index in rows],
            "y": [index % 2 for index in rows],
        },
        features=datasets.Features(
            {"caption": datasets.Value("string"), "img": datasets.Image(), "y": datasets.ClassLabel(names=["a", "b"])}
        ),
    )


# Sources -----------------------------------------------------------------------------------------------------------


def test_npz_fixture_loads_with_detected_columns():
    info = load_image_dataset(str(FIXTURE))
    assert len(info.dataset) == 1000
    assert (info.image_column, info.label_column) == ("image", "label")
    assert info.num_classes == 10
    assert info.class_names == [str(index) for index in range(10)]
    assert info.num_channels == 1
    first = info.dataset[0]
    expected = np.load(FIXTURE)
    np.testing.assert_array_equal(np.asarray(first["image"]), expected["images"][0])
    assert first["label"] == expected["labels"][0]


def test_npz_class_names_rgb_and_float_images(tmp_path):
    path = tmp_path / "colors.npz"
    rng = np.random.default_rng(0)
    images = rng.random((4, 9, 11, 3))
    np.savez(path, images=images, labels=np.array([0, 1, 2, 1]), class_names=np.array(["red", "green", "blue"]))
    info = load_image_dataset(str(path))
    assert info.class_names == ["red", "green", "blue"] and info.num_classes == 3
    assert info.num_channels == 3
    np.testing.assert_array_equal(np.asarray(info.dataset[2]["image"]), np.rint(images[2] * 255).astype(np.uint8))


def test_npz_without_labels_has_no_label_column(tmp_path):
    path = tmp_path / "unlabeled.npz"
    np.savez(path, images=np.zeros((3, 8, 8, 1), dtype=np.uint8))
    info = load_image_dataset(str(path))
    assert info.label_column is None and info.num_classes is None
    batch = collate_examples([info.with_image_transform(8)[0]])
    assert set(batch) == {"pixel_values"}


def test_image_folder_uses_subfolders_as_classes(tmp_path):
    for class_name, mode, size in [("coat", "L", (13, 7)), ("coat", "RGB", (8, 8)), ("shirt", "RGBA", (5, 21))]:
        folder = tmp_path / "images" / class_name
        folder.mkdir(parents=True, exist_ok=True)
        Image.new(mode, size).save(folder / f"{mode}.png")
    info = load_image_dataset(str(tmp_path / "images"), cache_dir=str(tmp_path / "cache"), num_channels=3)
    assert info.class_names == ["coat", "shirt"]
    assert sorted(info.dataset[info.label_column]) == [0, 0, 1]
    batch = collate_examples(list(info.with_image_transform((12, 10))))
    assert batch["pixel_values"].shape == (3, 3, 12, 10)


def test_saved_dataset_and_dataset_dict(tmp_path):
    _tiny_dataset().save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict(train=_tiny_dataset(6), test=_tiny_dataset(2)).save_to_disk(str(tmp_path / "dict"))
    assert len(load_image_dataset(str(tmp_path / "single")).dataset) == 6
    info = load_image_dataset(str(tmp_path / "dict"), split="test")
    assert len(info.dataset) == 2 and info.label_column == "y"
    with pytest.raises(ValueError, match=r"split 'validation' does not exist.*\['test', 'train'\]"):
        load_image_dataset(str(tmp_path / "dict"), split="validation")


def test_local_dataset_repository_loads_like_a_hub_id(tmp_path):
    """A folder laid out like a Hub dataset repo goes through datasets.load_dataset, as a Hub id does."""
    repo = tmp_path / "user" / "fashion"
    (repo / "data").mkdir(parents=True)
    _tiny_dataset(4).to_parquet(str(repo / "data" / "train-00000-of-00001.parquet"))
    _tiny_dataset(3).to_parquet(str(repo / "data" / "test-00000-of-00001.parquet"))
    info = load_image_dataset(str(repo), split="test", cache_dir=str(tmp_path / "cache"))
    assert len(info.dataset) == 3
    assert (info.image_column, info.label_column, info.class_names) == ("img", "y", ["a", "b"])


def test_max_train_samples_draws_a_reproducible_subset():
    first = load_image_dataset(str(FIXTURE), max_train_samples=50, seed=3)
    again = load_image_dataset(str(FIXTURE), max_train_samples=50, seed=3)
    other = load_image_dataset(str(FIXTURE), max_train_samples=50, seed=4)
    assert len(first.dataset) == 50
    assert first.dataset["label"] == again.dataset["label"]
    assert first.dataset["label"] != other.dataset["label"]
    assert len(load_image_dataset(str(FIXTURE), max_train_samples=5000).dataset) == 1000


# Columns -----------------------------------------------------------------------------------------------------------


def test_integer_label_column_counts_classes(tmp_path):
    dataset = _tiny_dataset().cast_column("y", datasets.Value("int32"))
    dataset = dataset.map(lambda row: {"y": row["y"] * 2})
    dataset.save_to_disk(str(tmp_path / "ints"))
    assert load_image_dataset(str(tmp_path / "ints")).label_column is None
    info = load_image_dataset(str(tmp_path / "ints"), label_column="y")
    assert (info.num_classes, info.class_names) == (3, ["0", "1", "2"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_column": "picture"}, r"image column 'picture' does not exist.*'caption'.*'img'.*'y'"),
        ({"image_column": "caption"}, r"'caption' must have a datasets.Image feature.*\['img'\]"),
        ({"label_column": "tag"}, r"label column 'tag' does not exist.*'caption'"),
        ({"label_column": "caption"}, r"label column 'caption' must be a ClassLabel or an integer"),
        ({"num_channels": 4}, r"num_channels must be 1, 3"),
        ({"max_train_samples": 0}, r"max_train_samples must be positive"),
    ],
)
def test_column_and_argument_errors(tmp_path, kwargs, message):
    _tiny_dataset().save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(ValueError, match=message):
        load_image_dataset(str(tmp_path / "saved"), **kwargs)


def test_dataset_without_image_column_is_refused(tmp_path):
    datasets.Dataset.from_dict({"text": ["a"]}).save_to_disk(str(tmp_path / "text"))
    with pytest.raises(ValueError, match=r"no Image column.*'text' \(Value\)"):
        load_image_dataset(str(tmp_path / "text"))


# Source errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing/deeper/folder", "./missing", "/no/such/file.npz", "clothes.npz"])
def test_missing_local_path(name):
    with pytest.raises(ValueError, match="local path .* does not exist"):
        load_image_dataset(name)


def test_unreachable_hub_id(monkeypatch, tmp_path):
    # Offline mode makes the Hub lookup fail at once, without touching the network.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="'someone/no-such-dataset' is not an existing local path.*Hub dataset id"):
        load_image_dataset("someone/no-such-dataset", cache_dir=str(tmp_path / "cache"))


def test_empty_folder_and_wrong_file_kind(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images or data files"):
        load_image_dataset(str(tmp_path / "empty"), cache_dir=str(tmp_path / "cache"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="is a file but not a .npz"):
        load_image_dataset(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match="dataset_name is required"):
        load_image_dataset(None)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"pictures": np.zeros((2, 4, 4), np.uint8)}, r"no 'images' array; it holds: \['pictures'\]"),
        ({"images": np.zeros((2, 16), np.uint8)}, r"shape \(N, H, W\) or \(N, H, W, C\).*got shape \(2, 16\)"),
        ({"images": np.zeros((2, 4, 4, 2), np.uint8)}, r"got shape \(2, 4, 4, 2\)"),
        ({"images": np.full((2, 4, 4), 300, np.int32)}, r"must lie in \[0, 255\]"),
        ({"images": np.full((2, 4, 4), -0.5)}, r"must lie in \[0, 1\] or \[0, 255\]"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.zeros(3, np.int64)}, r"must be 2 integers"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0.5, 1.0])}, r"dtype float64"),
        (
            {"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0, 2]), "class_names": np.array(["a", "b"])},
            r"go up to 2 but there are only 2 class_names",
        ),
    ],
)
def test_bad_npz_contents(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_image_dataset(str(path))


def test_unreadable_npz(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, images=np.zeros((1, 4, 4), np.uint8), class_names=np.array(["a", None], dtype=object))
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip archive")
    for path in (pickled, corrupt):
        with pytest.raises(ValueError, match="is not a readable .npz file"):
            load_image_dataset(str(path))


# Transforms --------------------------------------------------------------------------------------------------------


def _image_of_mode(mode: str, size: tuple[int, int]) -> Image.Image:
    ramp = Image.fromarray(_gradient(size[1], size[0]))
    if mode == "I;16":
        return Image.fromarray(_gradient(size[1], size[0]).astype(np.uint16) * 257)
    if mode == "F":
        return Image.fromarray(_gradient(size[1], size[0]).astype(np.float32) / 255)
    return ramp.convert(mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "I", "F", "1", "LA", "CMYK", "YCbCr", "PA"])
@pytest.mark.parametrize("size", [(28, 28), (7, 13), (50, 1), (3, 100)])
@pytest.mark.parametrize("num_channels", [1, 3])
def test_every_mode_and_size_becomes_a_tensor_in_range(mode, size, num_channels):
    image = _image_of_mode(mode, size)
    assert image.mode == mode
    for resolution, expected_hw in [(16, (16, 16)), ((12, 20), (12, 20))]:
        pixels = make_image_transform(resolution, num_channels)(image)
        assert pixels.dtype == torch.float32
        assert pixels.shape == (num_channels, *expected_hw)
        assert pixels.min() >= -1 and pixels.max() <= 1


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.fromarray(np.full((4, 4), 32768, np.uint16)), 128 / 127.5 - 1),  # PIL would clip this to white
        (Image.fromarray(np.full((4, 4), 40000, np.int32)), 156 / 127.5 - 1),
        (Image.fromarray(np.full((4, 4), 200, np.int32)), 200 / 127.5 - 1),
        (Image.fromarray(np.full((4, 4), 0.5, np.float32)), 128 / 127.5 - 1),
        (Image.fromarray(np.full((4, 4), 100.0, np.float32)), 100 / 127.5 - 1),
        (Image.new("RGBA", (4, 4), (0, 0, 0, 0)), 1.0),  # fully transparent: the white backdrop shows
        (Image.new("RGBA", (4, 4), (0, 0, 0, 255)), -1.0),
        (Image.new("1", (4, 4), 1), 1.0),
        (Image.new("L", (4, 4), 0), -1.0),
    ],
)
def test_conversion_values(image, expected):
    pixels = make_image_transform(4, 1)(image)
    torch.testing.assert_close(pixels, torch.full((1, 4, 4), expected), atol=1 / 127.5, rtol=0)


def test_palette_transparency_composites_on_white():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    assert np.asarray(to_canonical_mode(image, 3)).tolist() == [[[255, 255, 255], [255, 0, 0]]]


def test_grayscale_to_rgb_repeats_the_channel_and_rgb_to_gray_uses_luma():
    gray = Image.fromarray(_gradient(8, 8))
    rgb = make_image_transform(8, 3)(gray)
    assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])
    red = make_image_transform(2, 1)(Image.new("RGB", (2, 2), (255, 0, 0)))
    torch.testing.assert_close(red, torch.full((1, 2, 2), 76 / 127.5 - 1))


def test_center_crop_keeps_aspect_ratio_and_the_middle():
    # 10 x 30 image: black | gray | white thirds. Covering 10 x 10 keeps the gray middle third only.
    array = np.concatenate([np.zeros((10, 10)), np.full((10, 10), 128), np.full((10, 10), 255)], 1).astype(np.uint8)
    pixels = make_image_transform(10, 1)(Image.fromarray(array))
    assert pixels.shape == (1, 10, 10)
    assert torch.allclose(pixels[:, :, 2:8], torch.tensor(128 / 127.5 - 1), atol=1e-6)


def test_random_crop_and_flip_vary_between_draws():
    image = Image.fromarray(_gradient(10, 40))
    transform = make_image_transform(10, 1, random_flip=True, center_crop=False)
    torch.manual_seed(0)
    draws = [transform(image) for _ in range(40)]
    left_edges = {round(float(draw[0, 0, 0]), 4) for draw in draws}
    assert len(left_edges) > 4
    increasing = [bool(draw[0, 0, -1] > draw[0, 0, 0]) for draw in draws]
    assert any(increasing) and not all(increasing)
    fixed = make_image_transform(10, 1)
    assert all(torch.equal(fixed(image), fixed(image)) for _ in range(5))


def test_same_size_image_passes_through_exactly():
    array = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    pixels = make_image_transform(28, 1)(Image.fromarray(array))
    assert torch.equal(pixels[0], torch.from_numpy(array.astype(np.float32) / 127.5 - 1))


@pytest.mark.parametrize(("resolution", "num_channels"), [(0, 1), ((8, -1), 3), (8, 2)])
def test_invalid_transform_arguments(resolution, num_channels):
    with pytest.raises(ValueError):
        make_image_transform(resolution, num_channels)


# Paired datasets ---------------------------------------------------------------------------------------------------


def test_paired_flip_and_crop_are_shared(tmp_path):
    ramps = [_gradient(12, 30 + index) for index in range(4)]
    datasets.Dataset.from_dict(
        {"sketch": ramps, "photo": [np.stack([ramp] * 3, -1) for ramp in ramps]},
        features=datasets.Features({"sketch": datasets.Image(), "photo": datasets.Image()}),
    ).save_to_disk(str(tmp_path / "pairs"))
    info = load_paired_dataset(str(tmp_path / "pairs"), target_column="photo")
    assert (info.source_num_channels, info.target_num_channels) == (1, 3)
    dataset = info.with_image_transform(12, random_flip=True, center_crop=False)
    torch.manual_seed(0)
    flipped = set()
    for _ in range(10):
        batch = collate_examples(list(dataset))
        assert batch["source_pixel_values"].shape == (4, 1, 12, 12)
        assert batch["target_pixel_values"].shape == (4, 3, 12, 12)
        torch.testing.assert_close(batch["target_pixel_values"].mean(1, keepdim=True), batch["source_pixel_values"])
        flipped.update((batch["source_pixel_values"][:, 0, 0, 0] > 0).tolist())
    assert flipped == {True, False}


def test_paired_missing_column_lists_columns(tmp_path):
    _tiny_dataset().save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(ValueError, match=r"source column 'sketch' does not exist.*'img'"):
        load_paired_dataset(str(tmp_path / "saved"), target_column="img")


# Batching and flags ------------------------------------------------------------------------------------------------


def test_dataloader_batches_and_reproducible_shuffle():
    info = load_image_dataset(str(FIXTURE), max_train_samples=40, seed=0)
    dataset = info.with_image_transform(32)

    def labels_in_order(seed):
        return torch.cat([batch["labels"] for batch in make_dataloader(dataset, 8, seed=seed)]).tolist()

    batch = next(iter(make_dataloader(dataset, 16, seed=0)))
    assert batch["pixel_values"].shape == (16, 1, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long and batch["labels"].shape == (16,)
    assert labels_in_order(1) == labels_in_order(1)
    assert sorted(labels_in_order(1)) == sorted(info.dataset["label"])
    assert [len(batch["labels"]) for batch in make_dataloader(dataset, 16, shuffle=False, drop_last=True)] == [16, 16]


def test_dataloader_with_worker_processes():
    dataset = load_image_dataset(str(FIXTURE), max_train_samples=24, seed=0).with_image_transform(16, random_flip=True)
    batches = list(make_dataloader(dataset, 8, seed=0, num_workers=2))
    assert [batch["pixel_values"].shape for batch in batches] == [(8, 1, 16, 16)] * 3


def test_cli_flags_drive_the_loaders(tmp_path):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=None)
    add_dataset_args(parser)
    args = parser.parse_args(
        ["--dataset_name", str(FIXTURE), "--resolution", "24x20", "--no-center_crop", "--max_train_samples", "10"]
    )
    assert (args.resolution, args.center_crop, args.random_flip) == ((24, 20), False, False)
    assert args.dataset_split == "train"
    info = load_image_dataset_from_args(args)
    assert len(info.dataset) == 10
    example = info.with_image_transform(args.resolution, center_crop=args.center_crop)[0]
    assert example["pixel_values"].shape == (1, 24, 20)
    with pytest.raises(SystemExit):
        parser.parse_args(["--dataset_name", "x", "--resolution", "big"])

    paired_parser = argparse.ArgumentParser()
    paired_parser.add_argument("--seed", type=int, default=0)
    add_dataset_args(paired_parser, paired=True)
    _tiny_dataset().save_to_disk(str(tmp_path / "saved"))
    paired_args = paired_parser.parse_args(
        ["--dataset_name", str(tmp_path / "saved"), "--source_column", "img", "--target_column", "img"]
    )
    assert not hasattr(paired_args, "image_column")
    assert load_paired_dataset_from_args(paired_args).source_column == "img"
