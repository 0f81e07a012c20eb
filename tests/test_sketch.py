from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from hf_vaegan.data.loading import load_paired_dataset
from hf_vaegan.data.sketch import garment_to_sketch, make_sketch_pairs

FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"


@pytest.fixture(scope="module")
def fashion():
    arrays = np.load(FIXTURE)
    return arrays["images"], arrays["labels"]


def test_same_seed_gives_identical_bytes(fashion):
    image = fashion[0][123]
    first = garment_to_sketch(image, jitter=0.6, seed=7)
    assert first.tobytes() == garment_to_sketch(image, jitter=0.6, seed=7).tobytes()
    assert first.tobytes() != garment_to_sketch(image, jitter=0.6, seed=8).tobytes()
    assert garment_to_sketch(image).tobytes() == garment_to_sketch(image, seed=99).tobytes()


@pytest.mark.parametrize("jitter", [0.0, 0.6])
def test_sketches_are_dark_lines_on_mostly_white_paper(fashion, jitter):
    paper_fractions = []
    for index, image in enumerate(fashion[0][::25]):
        sketch = garment_to_sketch(image, jitter=jitter, seed=index)
        assert sketch.shape == image.shape and sketch.dtype == np.uint8
        assert not np.array_equal(sketch, image) and not np.array_equal(sketch, 255 - image)
        paper_fractions.append(np.mean(sketch > 200))
        assert paper_fractions[-1] > 0.5, f"image {index}: only {paper_fractions[-1]:.0%} paper"
        assert np.sum(sketch < 128) >= 15, f"image {index}: almost no ink"
    assert np.mean(paper_fractions) > 0.75


def test_outline_follows_the_garment_silhouette(fashion):
    for image in fashion[0][::100]:
        ink = garment_to_sketch(image) < 128
        silhouette = image > 25
        boundary = silhouette & ~ndimage.binary_erosion(silhouette, border_value=0)
        assert np.mean(ink[ndimage.binary_dilation(boundary)]) > 0.3
        assert np.mean(ink[boundary]) > 0.7
        assert not ink[~ndimage.binary_dilation(silhouette, iterations=2)].any()


def test_background_polarity_does_not_matter(fashion):
    image = fashion[0][7]
    on_black = garment_to_sketch(image) < 128
    on_white = garment_to_sketch(255 - image) < 128
    assert np.sum(on_black & on_white) / np.sum(on_black | on_white) > 0.6


def test_pil_and_color_inputs():
    array = np.zeros((30, 20, 3), dtype=np.uint8)
    array[5:25, 4:16] = (200, 30, 30)
    sketch = garment_to_sketch(Image.fromarray(array).convert("RGBA"))
    assert isinstance(sketch, Image.Image) and sketch.mode == "L" and sketch.size == (20, 30)
    ink = np.asarray(sketch) < 128
    assert ink[5, 4:16].all() and ink[5:25, 4].all() and not ink[10:20, 7:13].any()
    np.testing.assert_array_equal(garment_to_sketch(array), np.asarray(sketch))


def test_blank_image_gives_blank_paper():
    assert (garment_to_sketch(np.zeros((28, 28), dtype=np.uint8), jitter=1.0) == 255).all()


@pytest.mark.parametrize(
    ("image", "kwargs", "error"),
    [
        (np.zeros((8, 8), dtype=np.float32), {}, TypeError),
        (np.zeros((8, 8, 2), dtype=np.uint8), {}, ValueError),
        ([[0, 1]], {}, TypeError),
        (np.zeros((8, 8), dtype=np.uint8), {"jitter": -1}, ValueError),
        (np.zeros((8, 8), dtype=np.uint8), {"detail": 0}, ValueError),
    ],
)
def test_bad_inputs(image, kwargs, error):
    with pytest.raises(error):
        garment_to_sketch(image, **kwargs)


def test_sketch_pairs_dataset(fashion, tmp_path):
    images, labels = fashion[0][:20], fashion[1][:20]
    pairs = make_sketch_pairs(images, labels, seed=0)
    assert pairs.column_names == ["sketch", "image", "label"]
    assert isinstance(pairs.features["sketch"], datasets.Image)
    assert pairs.features["label"].names == [str(index) for index in range(10)]
    assert pairs["label"] == labels.tolist()
    np.testing.assert_array_equal(np.asarray(pairs[3]["image"]), images[3])
    np.testing.assert_array_equal(
        np.asarray(pairs[3]["sketch"]), garment_to_sketch(images[3], jitter=0.6, seed=(0, 3))
    )
    again = make_sketch_pairs(images, labels, seed=0)
    assert [np.asarray(s).tobytes() for s in again["sketch"]] == [np.asarray(s).tobytes() for s in pairs["sketch"]]

    named = make_sketch_pairs(images[:2], [0, 1], class_names=["top", "trouser"], jitter=0)
    assert named.features["label"].names == ["top", "trouser"]
    assert "label" not in make_sketch_pairs(images[:2]).column_names

    pairs.save_to_disk(str(tmp_path / "pairs"))
    info = load_paired_dataset(str(tmp_path / "pairs"))
    assert (info.source_column, info.target_column) == ("sketch", "image")
    example = info.with_image_transform(32, random_flip=True)[0]
    assert example["source_pixel_values"].shape == example["target_pixel_values"].shape == (1, 32, 32)


@pytest.mark.parametrize(
    ("labels", "class_names"), [([0, 1, 2], None), ([0, 5], ["a", "b"]), ([-1, 0], None), ([0.0, 1.0], None)]
)
def test_sketch_pairs_bad_labels(fashion, labels, class_names):
    with pytest.raises(ValueError, match="labels must"):
        make_sketch_pairs(fashion[0][:2], labels, class_names=class_names)
