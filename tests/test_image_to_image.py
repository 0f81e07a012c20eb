"""The image-to-image models, pipeline and training pieces: U-Net generator, PatchGAN, ImageToImagePipeline, replay
buffer, feature matching, unpaired data, SSIM and the sketch-pair dataset script."""

import argparse
import importlib.util
import json
import textwrap
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from accelerate import Accelerator
from comparisons import assert_same_weights

from hf_vaegan.data.loading import UnpairedImageDataset, load_image_dataset, select_classes
from hf_vaegan.metrics.image_quality import ssim
from hf_vaegan.models.patch_discriminator import PatchDiscriminator
from hf_vaegan.models.unet_generator import UNetGenerator
from hf_vaegan.pipelines.pipeline_image_to_image import ImageToImagePipeline
from hf_vaegan.training.cyclegan import ImageReplayBuffer
from hf_vaegan.training.grids import comparison_grid
from hf_vaegan.training.losses import feature_matching_loss
from hf_vaegan.training.model_args import validate_image_to_image_args

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"
TINY = {"base_channels": 4}


def images(batch, channels, height, width=None, seed=0):
    shape = (batch, channels, height, width or height)
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# Models


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "size", "depth"),
    [(1, 1, (28, 28), 2), (1, 3, (32, 32), 3), (7, 4, (32, 24), 3), (3, 3, (16, 8), 0)],
)
def test_unet_keeps_the_size_and_maps_channels(in_channels, out_channels, size, depth):
    generator = UNetGenerator(
        in_channels=in_channels, out_channels=out_channels, num_downsamplings=depth, layers_per_block=2, **TINY
    )
    output = generator(images(2, in_channels, *size)).sample
    assert output.shape == (2, out_channels, *size)
    assert output.abs().max() <= 1 and torch.isfinite(output).all()


def test_unet_raw_outputs_for_extra_heads():
    torch.manual_seed(0)
    generator = UNetGenerator(
        in_channels=3, out_channels=4, num_downsamplings=2, output_activation="none", norm_type="none", **TINY
    )
    with torch.no_grad():
        generator.to_output.bias.fill_(5.0)  # raw outputs are not squashed into [-1, 1]
    assert generator(images(1, 3, 16)).sample.min() > 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"in_channels": 0}, "in_channels"),
        ({"num_downsamplings": -1}, "num_downsamplings"),
        ({"layers_per_block": 0}, "layers_per_block"),
        ({"norm_type": "instance"}, "norm_type"),
        ({"output_activation": "sigmoid"}, "output_activation"),
        ({"sample_size": 30, "num_downsamplings": 2}, "sample_size"),
        ({"sample_size": (28, 0)}, "sample_size"),
    ],
)
def test_unet_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        UNetGenerator(**kwargs)


@pytest.mark.parametrize(
    ("model_class", "kwargs"),
    [
        (UNetGenerator, {"in_channels": 3, "out_channels": 4, "num_downsamplings": 1, "sample_size": (32, 24)}),
        (PatchDiscriminator, {"in_channels": 5, "num_layers": 2, "spectral_norm": True, "norm_type": "none"}),
    ],
)
def test_from_config_keeps_every_value(model_class, kwargs):
    # diffusers records positional arguments as defaults, so the models take keyword arguments only
    model = model_class(**kwargs, **TINY)
    assert dict(model_class.from_config(model.config).config) == dict(model.config)
    with pytest.raises(TypeError):
        model_class(3)


def test_unet_bad_inputs_get_clear_errors():
    generator = UNetGenerator(in_channels=2, num_downsamplings=2, **TINY)
    with pytest.raises(ValueError, match=r"shape \(batch, 2, height, width\), got \(1, 1, 28, 28\)"):
        generator(images(1, 1, 28))
    with pytest.raises(ValueError, match="multiples of 2\\*\\*num_downsamplings = 4, got 30x28"):
        generator(images(1, 2, 30, 28))
    with pytest.raises(TypeError, match="floating point"):
        generator(torch.zeros(1, 2, 28, 28, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        generator(np.zeros((1, 2, 28, 28), dtype=np.float32))


@pytest.mark.parametrize(("size", "num_layers"), [((28, 28), 2), ((64, 64), 3), ((128, 96), 3), ((16, 8), 1)])
def test_patch_discriminator_returns_a_logit_map_and_features(size, num_layers):
    discriminator = PatchDiscriminator(in_channels=5, num_layers=num_layers, spectral_norm=True, **TINY)
    output = discriminator(images(2, 5, *size))
    assert output.logits.shape == (2, 1, *discriminator.logits_size(*size))
    assert len(output.features) == num_layers + 1
    assert [feature.shape[1] for feature in output.features] == [4 * 2**layer for layer in range(num_layers + 1)]
    logits, features = discriminator(images(2, 5, *size), return_dict=False)
    assert logits.shape == output.logits.shape and len(features) == len(output.features)


def test_patch_discriminator_is_local():
    # A change in one corner leaves the logits of patches far from it untouched (70x70-style patches, not a global
    # verdict).
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(in_channels=1, num_layers=2, norm_type="none", **TINY).eval()
    x = images(1, 1, 64)
    changed = x.clone()
    changed[..., :4, :4] = 1.0
    difference = (discriminator(changed).logits - discriminator(x).logits).abs()[0, 0]
    assert difference[0, 0] > 0 and difference[-1, -1] == 0


def test_patch_discriminator_refuses_too_small_images():
    with pytest.raises(ValueError, match="too small for 3 layers"):
        PatchDiscriminator(in_channels=1, num_layers=3, **TINY)(images(1, 1, 16))


def test_models_round_trip_and_load_as_remote_code(tmp_path, run_python):
    generator = UNetGenerator(in_channels=2, out_channels=3, num_downsamplings=2, sample_size=(32, 24), **TINY).eval()
    discriminator = PatchDiscriminator(in_channels=5, num_layers=2, spectral_norm=True, **TINY).eval()
    generator.save_pretrained(tmp_path / "generator")
    discriminator.save_pretrained(tmp_path / "discriminator")
    assert {"unet_generator.py", "blocks.py", "modeling_utils.py"} <= {
        path.name for path in (tmp_path / "generator").iterdir()
    }
    config = json.loads((tmp_path / "generator" / "config.json").read_text())
    assert config["auto_map"] == {"AutoModel": "unet_generator.UNetGenerator"}
    assert UNetGenerator.from_pretrained(tmp_path / "generator").config.sample_size == [32, 24]
    x, pair = images(2, 2, 32, 24), images(2, 5, 32, 24)
    torch.save(
        {"x": x, "y": generator(x).sample, "pair": pair, "logits": discriminator(pair).logits}, tmp_path / "io.pt"
    )
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hf_vaegan"] = None  # the package must not be needed
        import torch
        from diffusers import AutoModel

        generator = AutoModel.from_pretrained({str(tmp_path / "generator")!r}, trust_remote_code=True).eval()
        discriminator = AutoModel.from_pretrained({str(tmp_path / "discriminator")!r}, trust_remote_code=True).eval()
        io = torch.load({str(tmp_path / "io.pt")!r}, weights_only=True)
        with torch.no_grad():
            torch.testing.assert_close(generator(io["x"]).sample, io["y"])
            torch.testing.assert_close(discriminator(io["pair"]).logits, io["logits"])
            exec(generator.usage_snippet("ignored").split("# Or,")[0].replace(
                'AutoModel.from_pretrained("ignored", trust_remote_code=True)', "generator"))
        assert outputs.shape == (4, 3, 32, 24)
        print("ok")
        """
    )
    assert run_python("-c", script, cwd=tmp_path).stdout.strip().endswith("ok")


# Pipeline


@pytest.fixture
def gray_pipe():
    torch.manual_seed(0)
    return ImageToImagePipeline(UNetGenerator(num_downsamplings=2, sample_size=28, **TINY).eval())


def test_pipeline_accepts_pil_numpy_and_tensors_alone_or_batched(gray_pipe):
    sketch = PIL.Image.new("L", (28, 28), 255)
    pil = gray_pipe(sketch).images
    assert len(pil) == 1 and isinstance(pil[0], PIL.Image.Image) and pil[0].size == (28, 28) and pil[0].mode == "L"
    reference = gray_pipe(sketch, output_type="pt").images
    same_inputs = [
        [sketch, sketch],  # a list of PIL images
        np.full((2, 28, 28), 255, dtype=np.uint8),  # a greyscale numpy batch
        np.ones((28, 28, 3), dtype=np.float32),  # an RGB numpy image in [0, 1], converted to greyscale
        torch.ones(2, 1, 28, 28),  # tensors in [-1, 1]
        [torch.ones(1, 28, 28), torch.ones(3, 28, 28)],  # a list of single images, one RGB
    ]
    for inputs in same_inputs:
        outputs = gray_pipe(inputs, output_type="pt").images
        assert outputs.shape[1:] == (1, 28, 28)
        torch.testing.assert_close(outputs, reference.expand(len(outputs), -1, -1, -1), atol=1e-5, rtol=0)
    numpy_outputs = gray_pipe(np.zeros((3, 28, 28), np.uint8), output_type="np").images
    assert numpy_outputs.shape == (3, 28, 28, 1) and 0 <= numpy_outputs.min() and numpy_outputs.max() <= 1


def test_pipeline_composites_transparent_drawings_on_white_and_resizes(gray_pipe):
    # A sketchpad gives strokes on a transparent canvas: the background must read as paper, not black.
    drawing = np.zeros((280, 280, 4), dtype=np.uint8)
    drawing[100:180, 100:110] = (0, 0, 0, 255)
    batch = gray_pipe.preprocess(PIL.Image.fromarray(drawing, "RGBA"))
    assert batch.shape == (1, 1, 28, 28)
    assert batch[0, 0, 0, 0] == 1.0 and batch[0, 0, 14, 10] < 0
    assert gray_pipe.preprocess(torch.zeros(1, 1, 56, 60)).shape == (1, 1, 28, 28)
    transparent = gray_pipe.preprocess(np.zeros((12, 12, 4), np.float32))  # transparent arrays are paper too
    torch.testing.assert_close(transparent, torch.ones(1, 1, 28, 28))
    assert gray_pipe(np.zeros((28, 28), np.uint8), height=32, width=16, output_type="pt").images.shape[2:] == (32, 16)


def test_pipeline_converts_channels_for_rgb_models():
    pipe = ImageToImagePipeline(UNetGenerator(in_channels=3, out_channels=3, num_downsamplings=2, **TINY).eval())
    # No sample_size: the input size, rounded down to a multiple of 4.
    assert pipe(PIL.Image.new("L", (30, 45)), output_type="pt").images.shape == (1, 3, 44, 28)
    gray = pipe(torch.zeros(1, 1, 28, 28), output_type="pt").images
    torch.testing.assert_close(gray, pipe(torch.zeros(1, 3, 28, 28), output_type="pt").images)
    assert pipe(torch.zeros(1, 1, 28, 28)).images[0].mode == "RGB"
    with pytest.raises(ValueError, match="at least 4x4 pixels"):
        pipe(PIL.Image.new("RGB", (3, 10)))


@pytest.mark.parametrize(
    ("inputs", "kwargs", "error", "message"),
    [
        (None, {}, ValueError, "No image was given"),
        ([], {}, ValueError, "No image was given"),
        (np.zeros((0, 28, 28), np.uint8), {}, ValueError, "empty"),
        (torch.zeros(0, 1, 28, 28), {}, ValueError, "empty"),
        (torch.zeros(1, 2, 28, 28), {}, ValueError, "1, 3 or 4 channels"),
        (np.zeros((1, 2, 28, 28, 3), np.uint8), {}, ValueError, "2, 3 or 4 dimensions"),
        (torch.full((1, 1, 28, 28), 3.0), {}, ValueError, r"must lie in \[-1, 1\]"),
        (np.full((28, 28), 2.0), {}, ValueError, r"must lie in \[0, 1\]"),
        (np.zeros((28, 28), np.int64), {}, TypeError, "uint8 or float"),
        (torch.zeros(1, 1, 28, 28, dtype=torch.long), {}, TypeError, "float"),
        ("sketch.png", {}, TypeError, "PIL images, numpy arrays or torch tensors"),
        (np.zeros((28, 28), np.uint8), {"height": 30}, ValueError, "multiple of 4"),
        (np.zeros((28, 28), np.uint8), {"output_type": "jpeg"}, ValueError, "output_type"),
    ],
)
def test_pipeline_input_validation(gray_pipe, inputs, kwargs, error, message):
    with pytest.raises(error, match=message):
        gray_pipe(inputs, **kwargs)


def test_pipeline_refuses_non_image_generators_and_round_trips(tmp_path, gray_pipe):
    with pytest.raises(ValueError, match="maps 7 to 4 channels"):
        ImageToImagePipeline(UNetGenerator(in_channels=7, out_channels=4, **TINY))
    gray_pipe.save_pretrained(tmp_path)
    loaded = ImageToImagePipeline.from_pretrained(tmp_path)
    assert_same_weights(gray_pipe.generator, loaded.generator)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(loaded(x, output_type="pt").images, gray_pipe(x, output_type="pt").images)


# Training pieces


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


def test_replay_buffer_fills_then_swaps_and_resumes_exactly(accelerator):
    generator = torch.Generator().manual_seed(0)
    buffer = ImageReplayBuffer(accelerator, capacity=4, image_shape=(1, 2, 2), generator=generator)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(buffer(first), first) and buffer.size == 4  # filling: images pass through
    state = buffer.state_dict()
    rng_state = generator.get_state()
    newer = torch.arange(10.0, 74.0).view(64, 1, 1, 1).expand(64, 1, 2, 2)
    mixed = buffer(newer)
    replayed = mixed[:, 0, 0, 0] != newer[:, 0, 0, 0]
    assert 16 < replayed.sum() < 48  # about half are swapped for stored images...
    for index in torch.nonzero(replayed).flatten().tolist():  # ...which are older ones
        assert mixed[index, 0, 0, 0] < 4 or mixed[index, 0, 0, 0] < newer[index, 0, 0, 0]

    restored = ImageReplayBuffer(accelerator, capacity=4, image_shape=(1, 2, 2), generator=generator)
    restored.load_state_dict(state)
    generator.set_state(rng_state)
    assert torch.equal(restored(newer), mixed) and torch.equal(restored.images, buffer.images)
    with pytest.raises(ValueError, match="replay buffers of shape"):
        ImageReplayBuffer(accelerator, capacity=3, image_shape=(1, 2, 2)).load_state_dict(state)
    assert torch.equal(ImageReplayBuffer(accelerator, 0, (1, 2, 2))(newer), newer)  # capacity 0: disabled


def test_feature_matching_loss_pulls_only_the_fake_features():
    real = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 5, 2, 2, requires_grad=True)]
    fake = [feature.detach().clone().requires_grad_(True) for feature in real]
    assert feature_matching_loss(real, fake) == 0
    fake = [torch.randn_like(feature).requires_grad_(True) for feature in real]
    feature_matching_loss(real, fake).backward()
    assert all(feature.grad is not None for feature in fake) and all(feature.grad is None for feature in real)
    with pytest.raises(ValueError, match="same non-zero number of layers"):
        feature_matching_loss(real, fake[:1])


def test_comparison_grid_lays_out_blocks_of_rows():
    sources, outputs = images(10, 1, 28), images(10, 3, 28)
    grid = comparison_grid(sources, outputs, sources, max_columns=8)
    # 10 examples -> blocks of 5 columns; 2 blocks x 3 rows; colour because one batch is RGB.
    assert grid.size == (5 * 28, 6 * 28) and grid.mode == "RGB"
    with pytest.raises(ValueError, match="same number and size"):
        comparison_grid(sources, outputs[:4])


def test_select_classes_and_unpaired_dataset():
    info = load_image_dataset(str(FIXTURE))
    sneakers = select_classes(info, ["7"])
    boots_and_bags = select_classes(info, ["9", "8"])
    assert set(sneakers.dataset["label"]) == {7} and set(boots_and_bags.dataset["label"]) == {8, 9}
    with pytest.raises(ValueError, match="unknown class 'Sneaker'"):
        select_classes(info, ["Sneaker"])
    unpaired = UnpairedImageDataset(sneakers.with_image_transform(28), boots_and_bags.with_image_transform(28))
    assert len(unpaired) == max(len(sneakers.dataset), len(boots_and_bags.dataset))
    last = unpaired[len(unpaired) - 1]
    assert last["pixel_values_a"].shape == last["pixel_values_b"].shape == (1, 28, 28)


@pytest.mark.parametrize(
    ("resolution", "depth", "layers"), [(28, 2, 2), (32, 3, 2), (64, 4, 3), ((128, 96), 4, 3), (256, 6, 3)]
)
def test_auto_depths_fit_the_resolution(resolution, depth, layers):
    args = argparse.Namespace(
        resolution=resolution,
        num_downsamplings=None,
        discriminator_num_layers=None,
        base_channels=8,
        layers_per_block=1,
        num_residual_blocks=0,
        discriminator_base_channels=None,
        generator_learning_rate=1e-4,
        discriminator_learning_rate=1e-4,
        diffaugment="color,translation",
    )
    validate_image_to_image_args(args)
    assert (args.num_downsamplings, args.discriminator_num_layers) == (depth, layers)
    height, width = (resolution,) * 2 if isinstance(resolution, int) else resolution
    UNetGenerator(num_downsamplings=depth, sample_size=(height, width))  # the depth fits
    assert min(PatchDiscriminator(num_layers=layers).logits_size(height, width)) >= 4


# SSIM


def test_ssim_matches_scikit_image():
    rows, cols = np.mgrid[0:16, 0:14]
    a = np.clip(
        np.stack([np.sin(rows / 3.0) * np.cos(cols / 2.0), np.cos((rows + cols) / 4.0), (rows - cols) / 16]), -1, 1
    )
    b = np.clip(
        np.stack(
            [np.sin(rows / 3.2) * np.cos(cols / 2.0), np.cos((rows + 2 * cols) / 4.0) / 2, (rows - cols) / 20 + 0.1]
        ),
        -1,
        1,
    )
    a, b = torch.from_numpy(a), torch.from_numpy(b)
    # skimage 0.26 structural_similarity((x + 1) / 2, ..., data_range=1, gaussian_weights=True, sigma=1.5,
    # use_sample_covariance=False), channel_axis for the RGB pair.
    scores = ssim(torch.stack([a, a]), torch.stack([b, a]))
    assert scores[0].item() == pytest.approx(0.6736034546768019, abs=1e-10) and scores[1].item() == pytest.approx(1)
    assert ssim(a[None, :1], b[None, :1]).item() == pytest.approx(0.9775707781157723, abs=1e-10)
    with pytest.raises(ValueError, match="same shape"):
        ssim(a[None], b[None, :1])
    with pytest.raises(ValueError, match="window_size"):
        ssim(a[None], b[None], window_size=15)


def test_ssim_ranks_degradations():
    clean = images(4, 1, 28)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    slightly, badly = (clean + 0.1 * noise).clamp(-1, 1), (clean + 0.5 * noise).clamp(-1, 1)
    assert (ssim(clean, slightly) > ssim(clean, badly)).all()
    assert (ssim(clean, -clean) < 0).all()  # an inverted image is dissimilar


# The sketch-pair dataset script


@pytest.fixture(scope="module")
def make_sketch_dataset():
    spec = importlib.util.spec_from_file_location("make_sketch_dataset", REPO / "examples" / "make_sketch_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sketch_dataset_script_is_deterministic(make_sketch_dataset, tmp_path):
    def build(name, *extra):
        argv = ["--train_data", str(FIXTURE), "--test_data", str(FIXTURE), "--max_samples", "24"]
        return make_sketch_dataset.main(
            make_sketch_dataset.parse_args([*argv, "--output_dir", str(tmp_path / name), *extra])
        )

    def sketch_bytes(pairs, split):
        return [np.asarray(sketch).tobytes() for sketch in pairs[split]["sketch"]]

    first, again, other_seed = build("first"), build("again"), build("other", "--seed", "5")
    assert sketch_bytes(first, "train") == sketch_bytes(again, "train")
    assert sketch_bytes(first, "test") == sketch_bytes(again, "test")
    assert sketch_bytes(first, "train") != sketch_bytes(other_seed, "train")
    # Same images in both splits here, but the test split is sketched with seed + 1.
    assert first["train"]["image"][0] == first["test"]["image"][0]
    assert sketch_bytes(first, "train") != sketch_bytes(first, "test")
    saved = datasets.load_from_disk(str(tmp_path / "first"))
    assert saved["train"].column_names == ["sketch", "image", "label"] and len(saved["test"]) == 24
    assert sketch_bytes(saved, "train") == sketch_bytes(first, "train")
