"""Bad input to the pipelines: one image contract, bounded work for every number a caller controls, clear errors.

Images of every kind go through `hf_vaegan.data.images.images_to_tensor` (the conversion training uses for PIL
images), so a value means the same thing in every pipeline; batch sizes, step counts and truncation cannot make a
call allocate without bound or loop forever.
"""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from hf_vaegan import VAE, GANPipeline, Generator, ImageToImagePipeline, TryOnModel, TryOnPipeline, UNetGenerator
from hf_vaegan.data import BODY_SHAPE_RANGES, Wardrobe
from hf_vaegan.data.images import images_to_tensor, make_image_transform
from hf_vaegan.models.body_shape import BodyShapeHead
from hf_vaegan.pipelines import pipeline_gan, pipeline_image_to_image, pipeline_utils
from hf_vaegan.pipelines.pipeline_body_shape import BodyShapePipeline
from hf_vaegan.pipelines.pipeline_gan import truncated_normal
from hf_vaegan.pipelines.pipeline_utils import max_batch_size, slerp
from hf_vaegan.pipelines.pipeline_vae import VAEPipeline

TINY = {"base_channels": 4}
LIMIT_28 = max_batch_size(28 * 28)  # grey 28x28 images: 342,392 per call


@pytest.fixture(scope="module")
def gan_pipe() -> GANPipeline:
    torch.manual_seed(0)
    return GANPipeline(Generator(latent_dim=8, num_classes=10, **TINY).eval())


@pytest.fixture(scope="module")
def vae_pipe() -> VAEPipeline:
    torch.manual_seed(0)
    return VAEPipeline(VAE(latent_dim=4, **TINY).eval())


def pixel(value: float) -> float:
    """An 8-bit value in the models' range, as the training transform computes it."""
    return value / 127.5 - 1


# Truncation: exact, bounded, reproducible


@pytest.mark.parametrize("truncation", [1e-9, 1e-4, 0.05, 0.5, 2.0, 50.0])
def test_truncation_is_bounded_work_for_any_threshold(gan_pipe, truncation):
    # The redraw loop this replaces never ended at 1e-9 and took 29 s at 1e-4: one uniform draw per value now.
    noise = gan_pipe.noise(512, torch.Generator().manual_seed(0), truncation=truncation)
    assert noise.shape == (512, 8) and noise.abs().max() <= truncation and torch.isfinite(noise).all()
    images = gan_pipe(batch_size=2, class_labels=1, truncation=truncation, output_type="pt").images
    assert torch.isfinite(images).all()


def test_truncated_noise_follows_the_truncated_normal():
    # The standard deviation of N(0, 1) conditioned on |z| <= t is sqrt(1 - 2 t phi(t) / (2 Phi(t) - 1)).
    for truncation in (0.5, 1.0, 2.0):
        noise = truncated_normal((200_000,), truncation, torch.Generator().manual_seed(0)).double()
        density = math.exp(-(truncation**2) / 2) / math.sqrt(2 * math.pi)
        expected_std = math.sqrt(1 - 2 * truncation * density / math.erf(truncation / math.sqrt(2)))
        assert abs(noise.std().item() - expected_std) < 0.005 and abs(noise.mean().item()) < 0.005
        # uniform in its CDF: the fraction below 0 is one half, below t/2 is (Phi(t/2) - Phi(-t)) / (2 Phi(t) - 1)
        below_half = (math.erf(truncation / 2 / math.sqrt(2)) + math.erf(truncation / math.sqrt(2))) / 2
        below_half /= math.erf(truncation / math.sqrt(2))
        assert abs((noise < truncation / 2).double().mean().item() - below_half) < 0.005


def test_seeded_truncated_sampling_is_reproducible(gan_pipe):
    draws = [gan_pipe(batch_size=3, class_labels=2, truncation=0.7, generator=torch.Generator().manual_seed(5),
                      output_type="pt").images for _ in range(2)]  # fmt: skip
    assert torch.equal(*draws)
    per_image = gan_pipe.noise(2, [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)], truncation=0.7)
    first = gan_pipe.noise(1, [torch.Generator().manual_seed(5)], truncation=0.7)
    assert torch.equal(per_image[:1], first)
    with pytest.raises(ValueError, match=r"one generator per image \(3\), got 2"):
        gan_pipe.noise(3, [torch.Generator(), torch.Generator()], truncation=0.7)


@pytest.mark.parametrize(
    ("truncation", "message"),
    [
        (0, "0"),
        (-1.0, "-1.0"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        ("0.5", "'0.5'"),
    ],
)
def test_truncation_must_be_a_positive_finite_number(gan_pipe, truncation, message):
    with pytest.raises(ValueError, match=f"`truncation` must be a finite number > 0, got {message}"):
        gan_pipe(batch_size=1, class_labels=1, truncation=truncation)


# Batch sizes and step counts


def refuse_to_run(pipe, monkeypatch):
    """Makes drawing noise or running the model fail the test: errors must come before any allocation."""

    def fail(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(pipeline_gan, "randn_tensor", fail)
    monkeypatch.setattr(pipeline_gan, "truncated_normal", fail)
    monkeypatch.setattr(pipe.model, "forward", fail)


@pytest.mark.parametrize(
    ("batch_size", "message"),
    [
        (0, "`batch_size` must be >= 1, got 0"),
        (-1, "`batch_size` must be >= 1, got -1"),
        (2.5, "`batch_size` must be an integer, got 2.5"),
        (True, "`batch_size` must be an integer, got True"),
        ("8", "`batch_size` must be an integer, got '8'"),
        (10**6, rf"`batch_size` must be at most {LIMIT_28} for this model \(784 values per image, at most 1 GiB"),
    ],
)
def test_batch_sizes_are_checked_before_any_allocation(gan_pipe, vae_pipe, monkeypatch, batch_size, message):
    for pipe, kwargs in ((gan_pipe, {"class_labels": 1}), (vae_pipe, {})):
        with monkeypatch.context() as patch:
            refuse_to_run(pipe, patch)
            with pytest.raises(ValueError, match=message):
                pipe(batch_size=batch_size, **kwargs)
            if pipe is gan_pipe:
                with pytest.raises(ValueError, match=message):
                    pipe(batch_size=batch_size, truncation=0.5, **kwargs)


def test_numpy_integer_batch_sizes_work(gan_pipe):
    assert len(gan_pipe(batch_size=np.int64(2), class_labels=1).images) == 2


def test_large_batches_run_in_chunks_with_the_same_images(gan_pipe, vae_pipe, monkeypatch):
    noise = torch.randn(7, 8, generator=torch.Generator().manual_seed(0))
    whole = gan_pipe(latents=noise, class_labels=3, output_type="pt").images
    latents = torch.randn(7, 4, generator=torch.Generator().manual_seed(1))
    decoded = vae_pipe(latents=latents, output_type="pt").images
    calls = []
    monkeypatch.setattr(pipeline_utils, "CHUNK_VALUES", 3 * 28 * 28)  # three images per forward pass
    for model in (gan_pipe.gan, vae_pipe.vae.decoder):
        original = model.forward
        monkeypatch.setattr(model, "forward", lambda *a, original=original, **k: calls.append(1) or original(*a, **k))
    torch.testing.assert_close(gan_pipe(latents=noise, class_labels=3, output_type="pt").images, whole)
    torch.testing.assert_close(vae_pipe(latents=latents, output_type="pt").images, decoded)
    assert len(calls) == 3 + 3


@pytest.mark.parametrize(
    ("num_steps", "message"),
    [(1, ">= 2, got 1"), (0, ">= 2, got 0"), (2.5, "an integer, got 2.5"), (10**7, f"at most {LIMIT_28}")],
)
def test_interpolation_step_counts(gan_pipe, vae_pipe, num_steps, message):
    with pytest.raises(ValueError, match=f"`num_steps` must be {message}"):
        gan_pipe.interpolate(num_steps=num_steps, class_labels=1)
    garment = Image.new("L", (28, 28))
    with pytest.raises(ValueError, match=f"`num_steps` must be {message}"):
        vae_pipe.interpolate(garment, garment, num_steps=num_steps)


def test_interpolation_endpoints(gan_pipe, vae_pipe):
    garment = Image.new("L", (28, 28), 40)
    with pytest.raises(ValueError, match="`start` must be one image, got 2"):
        vae_pipe.interpolate([garment, garment], garment)
    with pytest.raises(ValueError, match="`end` must be one image, got 3"):
        vae_pipe.interpolate(garment, np.zeros((3, 28, 28), np.uint8))
    assert len(vae_pipe.interpolate([garment], garment, num_steps=3).images) == 3
    with pytest.raises(ValueError, match=r"`start` must be a latent vector, a tensor of shape \(8,\), got \(2, 8\)"):
        gan_pipe.interpolate(num_steps=3, class_labels=1, start=torch.zeros(2, 8))
    with pytest.raises(ValueError, match="`end` contains NaN or infinite values"):
        gan_pipe.interpolate(num_steps=3, class_labels=1, start=torch.ones(8), end=torch.full((8,), float("nan")))
    # where the great circle is undefined (a zero vector, opposite directions) the walk is a straight line
    for start, end in ((torch.zeros(8), torch.ones(8)), (torch.ones(8), -torch.ones(8))):
        path = slerp(start, end, torch.linspace(0, 1, 5))
        torch.testing.assert_close(path, torch.lerp(start, end, torch.linspace(0, 1, 5)[:, None]))
        strip = gan_pipe.interpolate(num_steps=5, class_labels=1, start=start, end=end, output_type="pt").images
        assert torch.isfinite(strip).all()


# Latents, labels, temperature


@pytest.mark.parametrize(
    ("latents", "error", "message"),
    [
        (torch.full((1, 8), float("nan")), ValueError, "`latents` contains NaN or infinite values"),
        (torch.zeros(1, 8, dtype=torch.long), TypeError, "`latents` must be a floating point tensor, got dtype"),
        (torch.zeros(1, 5), ValueError, r"`latents` must have shape \(batch, 8\), got \(1, 5\)"),
        (np.zeros((1, 8), np.float32), TypeError, "`latents` must be a torch.Tensor, got ndarray"),
    ],
)  # fmt: skip
def test_bad_latents(gan_pipe, latents, error, message):
    with pytest.raises(error, match=message):
        gan_pipe(latents=latents, class_labels=1)


def test_latents_with_truncation_is_ambiguous(gan_pipe):
    with pytest.raises(ValueError, match="`truncation` applies to drawn noise"):
        gan_pipe(latents=torch.zeros(1, 8), class_labels=1, truncation=0.5)


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (np.array([1.5, 2.0]), TypeError, r"`class_labels` must be integers in \[0, 9\] .*got dtype float64"),
        ("3", TypeError, r"must be integers in \[0, 9\] .*got '3'"),
        ([1.0, 2.0], TypeError, r"got \[1.0, 2.0\]"),
        (torch.tensor([True, False]), TypeError, "got dtype torch.bool"),
        (np.array([1, 12]), ValueError, r"must lie in \[0, 9\], got \[1, 12\]"),
        ([1, 2, 3], ValueError, "one label or 2 labels, got 3"),
    ],
)
def test_bad_class_labels(gan_pipe, labels, error, message):
    with pytest.raises(error, match=message):
        gan_pipe(batch_size=2, class_labels=labels)


def test_numpy_and_list_labels_work(gan_pipe):
    reference = gan_pipe(latents=torch.ones(2, 8), class_labels=torch.tensor([1, 2]), output_type="pt").images
    for labels in (np.array([1, 2]), [1, 2], (np.int64(1), 2)):
        torch.testing.assert_close(
            gan_pipe(latents=torch.ones(2, 8), class_labels=labels, output_type="pt").images, reference
        )


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0, "1"])
def test_temperature_must_be_a_finite_non_negative_number(vae_pipe, temperature):
    with pytest.raises(ValueError, match=f"`temperature` must be a finite number >= 0, got {temperature!r}"):
        vae_pipe(batch_size=1, temperature=temperature)


def test_zero_temperature_decodes_the_prior_mean(vae_pipe):
    images = vae_pipe(batch_size=2, temperature=0.0, output_type="pt").images
    torch.testing.assert_close(images, vae_pipe(latents=torch.zeros(2, 4), output_type="pt").images)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"num_samples": 0}, "`num_samples` must be an integer >= 1, got 0"), ({"num_samples": 1.5}, "got 1.5"),
     ({"method": "density"}, "`method` must be one of")],
)  # fmt: skip
def test_bad_anomaly_score_options(vae_pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        vae_pipe.anomaly_scores(Image.new("L", (28, 28)), **kwargs)


# The image contract: what each input means


def value_of(pipe, image, **kwargs) -> list[float]:
    return pipe.preprocess(image, **kwargs).unique().tolist()


def test_modes_dtypes_and_ranges_mean_the_same_value_everywhere(vae_pipe):
    # Each case was wrong before: 200 became 399, 16-bit 30000 became 1.0, mode I 1.0, mode F 0.5 -1.0.
    assert value_of(vae_pipe, np.full((28, 28), 200, np.uint8)) == pytest.approx([pixel(200)])
    assert value_of(vae_pipe, Image.fromarray(np.full((28, 28), 30000, np.uint16))) == pytest.approx([pixel(117)])
    assert value_of(vae_pipe, Image.fromarray(np.full((28, 28), 30000, np.int32))) == pytest.approx([pixel(117)])
    half = Image.fromarray(np.full((28, 28), 0.5, np.float32))
    assert value_of(vae_pipe, half) == pytest.approx([pixel(128)], abs=1e-6)
    assert value_of(vae_pipe, Image.fromarray(np.full((28, 28), 200.0, np.float32))) == pytest.approx([pixel(200)])
    assert value_of(vae_pipe, np.full((28, 28), 30000, np.uint16)) == pytest.approx([30000 / 65535 * 2 - 1])
    assert value_of(vae_pipe, np.full((28, 28), 0.25)) == pytest.approx([-0.5])
    assert value_of(vae_pipe, np.ones((28, 28), bool)) == [1.0]
    assert value_of(vae_pipe, Image.new("1", (28, 28), 1)) == [1.0]
    assert value_of(vae_pipe, torch.full((1, 28, 28), 200, dtype=torch.uint8)) == pytest.approx([pixel(200)])
    assert value_of(vae_pipe, torch.full((1, 28, 28), 0.3, dtype=torch.float64)) == pytest.approx([0.3])


def test_transparency_is_composited_not_dropped(vae_pipe):
    # RGBA used to lose its alpha: transparent black pixels read as a black garment.
    transparent = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
    assert value_of(vae_pipe, transparent) == [1.0]  # on white by default
    assert value_of(vae_pipe, transparent, background=0) == [-1.0]  # Fashion-MNIST models: on black
    assert value_of(vae_pipe, Image.new("LA", (28, 28), (0, 0))) == [1.0]
    palette = Image.new("P", (28, 28), 0)
    palette.info["transparency"] = 0
    assert value_of(vae_pipe, palette) == [1.0]
    rgba_array = np.zeros((28, 28, 4), np.uint8)
    assert value_of(vae_pipe, rgba_array, background=0) == [-1.0] and value_of(vae_pipe, rgba_array) == [1.0]
    half = torch.cat([torch.ones(3, 28, 28), torch.zeros(1, 28, 28)])  # white at alpha 0.5 on black: mid grey
    assert value_of(vae_pipe, half, background=0) == pytest.approx([0.0], abs=1e-6)


def test_pipelines_see_what_training_sees():
    # Training converts PIL images with the same function: both give the same tensor for every mode.
    transform = make_image_transform(28, 1)
    pipe = VAEPipeline(VAE(latent_dim=4, **TINY))
    ramp = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    modes = [
        Image.fromarray(ramp),
        Image.fromarray(ramp.astype(np.uint16) * 257),
        Image.fromarray(ramp.astype(np.float32) / 255),
        Image.fromarray(np.stack([ramp, 255 - ramp, ramp // 2, 255 - ramp // 3], axis=-1), "RGBA"),
        Image.fromarray(ramp).convert("P"),
        Image.fromarray(ramp).convert("CMYK"),
        Image.fromarray(np.stack([ramp, ramp], axis=-1), "LA"),
    ]
    for image in modes:
        torch.testing.assert_close(pipe.preprocess(image)[0], transform(image), msg=image.mode)


def test_one_image_in_every_form_gives_one_tensor():
    ramp = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    reference = images_to_tensor(Image.fromarray(ramp), 1)
    forms = [ramp, ramp[..., None], ramp[None], ramp / 255.0, torch.from_numpy(ramp)[None],
             torch.from_numpy(ramp / 127.5 - 1), np.repeat(ramp[..., None], 3, axis=-1),
             [Image.fromarray(ramp)]]  # fmt: skip
    for form in forms:
        torch.testing.assert_close(images_to_tensor(form, 1), reference)
    mixed = images_to_tensor([Image.fromarray(ramp), ramp, torch.from_numpy(ramp)], 1)
    torch.testing.assert_close(mixed, reference.expand(3, -1, -1, -1))


PIL_NAN = Image.fromarray(np.full((28, 28), np.nan, np.float32))
BAD_IMAGES = [
    (Image.fromarray(np.full((28, 28), -0.5, np.float32)), ValueError,
     r"`images`: the mode 'F' image holds values in \[-0.5, -0.5\], which are not pixels"),
    (PIL_NAN, ValueError, "`images`: the mode 'F' image contains NaN or infinite values"),
    (Image.fromarray(np.full((28, 28), 300.0, np.float32)), ValueError, r"must lie in \[0, 1\] or \[0, 255\]"),
    (Image.fromarray(np.full((28, 28), -5, np.int32)), ValueError,
     r"mode 'I' image holds values in \[-5, -5\].*expected \[0, 65535\]"),
    (Image.new("LAB", (28, 28)), ValueError, "cannot read mode 'LAB' images .* convert them to RGB first"),
    (Image.new("L", (0, 0)), ValueError, "`images` is an empty 0x0 image"),
    (np.full((28, 28), 255.0), ValueError,
     r"float numpy images must lie in \[0, 1\], got values in \[255, 255\]; 8-bit values: pass uint8"),
    (np.full((28, 28), np.nan), ValueError, "`images` contains NaN or infinite values"),
    (np.zeros((28, 28), np.int64), TypeError, r"numpy images must be uint8 or float in \[0, 1\] .*got dtype int64"),
    (np.zeros((28, 28), np.complex64), TypeError, "got dtype complex64"),
    (np.zeros((28, 28), object), TypeError, "got dtype object"),
    (np.zeros((0, 28), np.uint8), ValueError, r"`images` is empty \(shape \(0, 28\)\)"),
    (np.zeros((1, 2, 28, 28, 3), np.uint8), ValueError, "2, 3 or 4 dimensions, got shape"),
    (torch.zeros(1, 2, 28, 28), ValueError, r"1, 3 or 4 channels in the layout \(N, C, H, W\)"),
    (torch.full((1, 28, 28), 255.0), ValueError, r"image tensors must lie in \[-1, 1\], got values in \[255, 255\]"),
    (torch.full((1, 28, 28), float("inf")), ValueError, "contains NaN or infinite values"),
    (torch.zeros(1, 28, 28, dtype=torch.long), TypeError, r"image tensors must be float in \[-1, 1\] .*torch.int64"),
    ("garment.png", TypeError, r"`images` is a path \('garment.png'\), not an image.*PIL.Image.open"),
    ([Image.new("L", (28, 28)), 3], TypeError, r"`images\[1\]` must be a PIL image, a numpy array or a torch tensor"),
    ([Image.new("L", (28, 28)), None], ValueError, "No image was given"),
    ([], ValueError, "No image was given"),
    ({"image": 1}, TypeError, "got dict"),
]  # fmt: skip


@pytest.mark.parametrize(("image", "error", "message"), BAD_IMAGES)
def test_what_cannot_be_an_image_is_refused_by_every_pipeline(vae_pipe, image, error, message):
    with pytest.raises(error, match=message):
        vae_pipe.preprocess(image)
    with pytest.raises(error, match=message):
        vae_pipe.anomaly_scores(image)
    unet = ImageToImagePipeline(UNetGenerator(num_downsamplings=2, sample_size=28, **TINY))
    with pytest.raises(error, match=message.replace("`images", "`image")):
        unet(image)


def test_images_of_different_sizes_need_a_size():
    with pytest.raises(ValueError, match=r"same size .*got sizes \[\(28, 28\), \(32, 32\)\]"):
        images_to_tensor([np.zeros((28, 28), np.uint8), np.zeros((32, 32), np.uint8)], 1)
    assert images_to_tensor([np.zeros((28, 28), np.uint8), np.zeros((32, 32), np.uint8)], 1, (8, 8)).shape == (
        2,
        1,
        8,
        8,
    )


# Image-to-image sizes


def test_image_to_image_sizes_are_bounded(monkeypatch):
    pipe = ImageToImagePipeline(UNetGenerator(num_downsamplings=2, **TINY).eval())
    with monkeypatch.context() as patch:
        patch.setattr(pipeline_utils, "MAX_OUTPUT_VALUES", 3 * 32 * 32)
        patch.setattr(pipeline_image_to_image, "images_to_tensor", None)  # checked before any image is converted
        with pytest.raises(ValueError, match="The number of images must be at most 3 .*got 5"):
            pipe([np.zeros((2, 28, 28), np.uint8), torch.zeros(3, 1, 28, 28)], height=32, width=32)
    with pytest.raises(
        ValueError, match=r"40000x40000 images are more than this pipeline translates \(4.2 megapixels\)"
    ):
        pipe(np.zeros((28, 28), np.uint8), height=40000, width=40000)
    for bad in (2.5, -4, 0, True):
        with pytest.raises(
            ValueError, match=f"`height` must be a positive multiple of 4 for this generator, got {bad!r}"
        ):
            pipe(np.zeros((28, 28), np.uint8), height=bad)
    with pytest.raises(ValueError, match="at least 4x4 pixels"):
        pipe(Image.new("L", (0, 0)))


# Try-on


@pytest.fixture(scope="module")
def tryon():
    with np.load("tests/fixtures/fashion_mnist_1k.npz") as data:
        wardrobe = Wardrobe(data["images"][:200], data["labels"][:200], resolution=(32, 24), seed=0)
    torch.manual_seed(0)
    pipe = TryOnPipeline(TryOnModel(sample_size=(32, 24), num_downsamplings=2, **TINY).eval())
    garment = wardrobe.garment(int(np.flatnonzero(wardrobe.labels == 0)[0]))
    return pipe, wardrobe.avatar(0), garment


def test_tryon_takes_garments_of_any_mode_through_the_contract(tryon):
    pipe, avatar, garment = tryon
    rgb = Image.fromarray(garment.image)
    reference = pipe(avatar, rgb, garment_category="upper", output_type="pt").images
    cut_out = Image.fromarray(np.dstack([garment.image, np.where(garment.mask, 255, 0).astype(np.uint8)]), "RGBA")
    on_white = Image.alpha_composite(Image.new("RGBA", rgb.size, "white"), cut_out).convert("RGB")
    for same in (np.asarray(rgb) / 255.0, torch.from_numpy(np.array(rgb)).permute(2, 0, 1) / 127.5 - 1):
        torch.testing.assert_close(pipe(avatar, same, garment_category="upper", output_type="pt").images, reference)
    torch.testing.assert_close(
        pipe(avatar, cut_out, garment_category="upper", output_type="pt").images,
        pipe(avatar, on_white, garment_category="upper", output_type="pt").images,
    )


def person_row() -> dict:
    return {
        "agnostic": Image.new("RGB", (24, 32)),
        "agnostic_mask": Image.new("L", (24, 32)),
        "body_mask": Image.new("L", (24, 32)),
        "pose_keypoints": np.zeros((18, 3)),
    }


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"pose_keypoints": np.full((18, 3), np.nan)}, ValueError, r"`person\[0\]\['pose_keypoints'\]` contains NaN"),
        ({"pose_keypoints": [["x"] * 3] * 18}, TypeError, r"`person\[0\]\['pose_keypoints'\]` must be numbers"),
        ({"agnostic": np.full((32, 24, 3), 255.0)}, ValueError, r"`person\[0\]\['agnostic'\]`: float numpy images"),
        ({"agnostic": "person.png"}, TypeError, r"`person\[0\]\['agnostic'\]` is a path"),
        ({"agnostic": [Image.new("RGB", (24, 32))] * 2}, TypeError, r"`person\[0\]\['agnostic'\]` must be one image"),
        ({"agnostic": np.zeros((2, 32, 24, 3), np.uint8)}, ValueError, "must be one image, got a batch of 2"),
    ],
)  # fmt: skip
def test_tryon_person_rows_are_checked(tryon, change, error, message):
    pipe, _, garment = tryon
    with pytest.raises(error, match=message):
        pipe(person=person_row() | change, garment=garment)


def test_tryon_counts_and_output_type_are_checked(tryon, monkeypatch):
    pipe, avatar, garment = tryon
    with pytest.raises(ValueError, match="`output_type` must be one of"):
        pipe(avatar, garment, output_type="jpeg")
    monkeypatch.setattr(pipeline_utils, "MAX_OUTPUT_VALUES", 3 * 6 * 32 * 24)
    with pytest.raises(ValueError, match="The number of persons and garments must be at most 3"):
        pipe([avatar] * 4, garment)


# Body shapes


@pytest.fixture(scope="module")
def body_pipe() -> BodyShapePipeline:
    names = list(BODY_SHAPE_RANGES)
    head = BodyShapeHead(latent_dim=6, parameter_names=names, parameter_ranges=[BODY_SHAPE_RANGES[n] for n in names])
    vae = VAE(resolution=32, in_channels=3, latent_dim=6, base_channels=4, likelihood="laplace").eval()
    return BodyShapePipeline(vae, head)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"body_shapes": {"height": float("nan")}}, ValueError, "parameter 'height' must be a finite number, got nan"),
        ({"body_shapes": {"height": "tall"}}, ValueError, "parameter 'height' must be a finite number, got 'tall'"),
        ({"body_shapes": object()}, TypeError, "a body shape must be a mapping of body parameters"),
        ({"body_shapes": torch.full((1, 10), float("inf"))}, ValueError, "`body_shapes` contains NaN or infinite"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be >= 1, got 0"),
        ({"batch_size": 2.5}, ValueError, "`batch_size` must be an integer, got 2.5"),
        ({"body_shapes": {"height": 0.85}, "output_type": "jpeg"}, ValueError, "`output_type` must be one of"),
    ],
)  # fmt: skip
def test_bad_body_shapes(body_pipe, kwargs, error, message):
    with pytest.raises(error, match=message):
        body_pipe(**kwargs)


def test_body_shape_interpolation_steps(body_pipe):
    with pytest.raises(ValueError, match="`num_steps` must be >= 2, got 1"):
        body_pipe.interpolate({"height": 0.8}, {"height": 0.9}, num_steps=1)
