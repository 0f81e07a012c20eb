"""Bad input to the models and to loading: every case gets an error naming the problem, and nothing on disk changes.

The models refuse what would make their outputs meaningless (images outside their range, NaN, integer noise,
labels that are not integer tensors, empty images) and cast inputs of another float dtype; loading names the file
and what is wrong with it.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_vaegan import (
    VAE,
    VAEGAN,
    AutoEncoder,
    Discriminator,
    Generator,
    PatchDiscriminator,
    TryOnModel,
    UNetGenerator,
)
from hf_vaegan.auto import load_pretrained

TINY = {"base_channels": 4}
WEIGHTS = "diffusion_pytorch_model.safetensors"


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


# Values outside the model's range, NaN and infinity


LIKELIHOOD_MODELS = [
    pytest.param(lambda: VAE(latent_dim=4, **TINY), id="vae-bernoulli"),
    pytest.param(lambda: VAE(latent_dim=4, likelihood="gaussian", **TINY), id="vae-gaussian"),
    pytest.param(lambda: VAEGAN(latent_dim=4, **TINY), id="vaegan-features"),
    pytest.param(lambda: AutoEncoder(latent_dim=4, **TINY), id="autoencoder"),
]
RANGE = r"must lie in \[-1, 1\], got values in "
OUT_OF_RANGE = [
    pytest.param(torch.rand(2, 1, 28, 28) * 255, RANGE + r"\[.*, 25\d.*\]; map 8-bit pixels", id="0-255"),
    pytest.param(torch.rand(2, 1, 28, 28) - 3, RANGE + r"\[-[23].*, -2.*\]", id="minus-3-to-minus-2"),
    pytest.param(torch.full((2, 1, 28, 28), float("nan")), "contains NaN or infinite values", id="nan"),
    pytest.param(images(2, 1, 28, 28).index_fill(0, torch.tensor([1]), float("inf")), "contains NaN or inf", id="inf"),
]


@pytest.mark.parametrize("make_model", LIKELIHOOD_MODELS)
@pytest.mark.parametrize(("sample", "message"), OUT_OF_RANGE)
def test_likelihoods_refuse_images_outside_the_model_range(make_model, sample, message):
    model = make_model()
    with pytest.raises(ValueError, match=f"`sample` {message}"):
        model.loss(sample)
    with pytest.raises(ValueError, match=f"`sample` {message}"):
        model.encode(sample)
    if hasattr(model, "reconstruction_nll"):
        with pytest.raises(ValueError, match=f"`sample` {message}"):
            model.reconstruction_nll(sample, torch.zeros(2, 4))


def test_rounding_outside_the_range_still_passes_and_is_not_clamped():
    vae = VAE(latent_dim=4, **TINY)
    edge = torch.full((1, 1, 28, 28), 1.0005)
    assert torch.isfinite(vae.loss(edge).loss)
    with pytest.raises(ValueError, match=r"got values in \[1.002, 1.002\]"):
        vae.loss(torch.full((1, 1, 28, 28), 1.002))


def test_nan_beta_is_refused():
    with pytest.raises(ValueError, match="`beta` must be a finite number >= 0, got nan"):
        VAE(latent_dim=4, **TINY).loss(images(1, 1, 28, 28), beta=float("nan"))


def test_discriminators_take_augmented_values_beyond_the_image_range():
    # DiffAugment's colour jitter leaves [-1, 1]: the discriminators must score such images, not refuse them.
    augmented = images(2, 1, 28, 28) * 1.8 + 0.4
    assert Discriminator(**TINY)(augmented).logits.shape == (2,)
    assert PatchDiscriminator(in_channels=1, num_layers=2, **TINY)(augmented).logits.shape[0] == 2


# dtypes


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_inputs_of_another_float_dtype_are_cast_to_the_model_dtype(dtype):
    torch.manual_seed(0)
    vae, discriminator = VAE(latent_dim=4, **TINY).eval(), Discriminator(**TINY).eval()
    generator = Generator(latent_dim=8, num_classes=3, **TINY).eval()
    unet = UNetGenerator(num_downsamplings=2, **TINY).eval()
    x, noise, labels = images(2, 1, 28, 28), torch.randn(2, 8), torch.tensor([0, 2])
    # float16 and bfloat16 round the inputs: compare with the float32 model on the same rounded values
    rounded_x, rounded_noise = x.to(dtype).float(), noise.to(dtype).float()
    with torch.no_grad():
        pairs = [
            (vae(x.to(dtype)).sample, vae(rounded_x).sample),
            (vae.decode(noise[:, :4].to(dtype)).sample, vae.decode(rounded_noise[:, :4]).sample),
            (discriminator(x.to(dtype)).logits, discriminator(rounded_x).logits),
            (generator(noise.to(dtype), labels).sample, generator(rounded_noise, labels).sample),
            (unet(x.to(dtype)).sample, unet(rounded_x).sample),
        ]
    for cast, reference in pairs:
        assert cast.dtype == torch.float32
        torch.testing.assert_close(cast, reference)


def test_integer_and_bool_inputs_are_refused_by_dtype():
    generator = Generator(latent_dim=8, num_classes=3, **TINY)
    with pytest.raises(TypeError, match="`noise` must be a floating point tensor, got dtype torch.uint8"):
        generator(torch.zeros(2, 8, dtype=torch.uint8), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="`latents` must be a floating point tensor, got dtype torch.int64"):
        VAE(latent_dim=4, **TINY).decode(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(
        TypeError, match=r"`sample` must be a floating point tensor in \[-1, 1\], got dtype torch.bool"
    ):
        VAE(latent_dim=4, **TINY).encode(torch.zeros(1, 1, 28, 28, dtype=torch.bool))
    with pytest.raises(TypeError, match="`sample` must be a torch.Tensor, got ndarray"):
        Discriminator(**TINY)(np.zeros((1, 1, 28, 28), np.float32))


def test_nan_noise_is_refused():
    with pytest.raises(ValueError, match="`noise` contains NaN or infinite values"):
        Generator(latent_dim=8, **TINY)(torch.full((2, 8), float("nan")))


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (np.array([1, 2]), TypeError, "integer torch.Tensor of shape \\(2,\\), got ndarray; convert it with torch"),
        ("1", TypeError, "integer torch.Tensor of shape \\(2,\\), got str"),
        ([1, 2], TypeError, "got list"),
        (torch.tensor([True, False]), TypeError, "integers, got a bool tensor"),
        (torch.tensor([1.0, 2.0]), ValueError, "integer tensor of shape \\(2,\\), got \\(2,\\) torch.float32"),
        (torch.tensor([0, 3]), ValueError, r"lie in \[0, 2\], got \[0, 3\]"),
    ],
)  # fmt: skip
def test_class_labels_must_be_integer_tensors_in_range(labels, error, message):
    for model, inputs in (
        (Generator(latent_dim=8, num_classes=3, **TINY), torch.zeros(2, 8)),
        (Discriminator(num_classes=3, **TINY), images(2, 1, 28, 28)),
    ):
        with pytest.raises(error, match=message):
            model(inputs, labels)


# Empty images


def test_empty_images_are_refused():
    with pytest.raises(ValueError, match=r"`sample` must have shape \(batch, 1, 28, 28\), got \(1, 1, 0, 0\)"):
        VAE(latent_dim=4, **TINY).encode(torch.zeros(1, 1, 0, 0))
    with pytest.raises(ValueError, match="`sample` holds empty 0x0 images"):
        UNetGenerator(num_downsamplings=2, **TINY)(torch.zeros(1, 1, 0, 0))
    with pytest.raises(ValueError, match="`sample` holds empty 0x8 images"):
        PatchDiscriminator(in_channels=1, num_layers=2, **TINY)(torch.zeros(1, 1, 0, 8))


# The try-on model


def tryon_inputs(**changes) -> dict[str, torch.Tensor]:
    size = (32, 24)
    inputs = {
        "agnostic": images(1, 3, *size),
        "agnostic_mask": torch.ones(1, 1, *size),
        "body_mask": torch.ones(1, 1, *size),
        "keypoints": torch.full((1, 18, 3), 5.0),
        "cloth": images(1, 3, *size, seed=1),
        "cloth_mask": torch.ones(1, 1, *size),
    }
    return inputs | changes


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"keypoints": torch.full((1, 18, 3), float("nan"))}, ValueError, "`keypoints` contains NaN or infinite"),
        ({"keypoints": torch.zeros(1, 18, 3, dtype=torch.bool)}, TypeError, "`keypoints` must be real numbers"),
        ({"body_mask": torch.full((1, 1, 32, 24), 255.0)}, ValueError, r"`body_mask` must lie in \[0, 1\], got .*255"),
        ({"cloth": torch.full((1, 3, 32, 24), 2.0)}, ValueError, r"`cloth` must lie in \[-1, 1\]"),
        ({"agnostic": torch.full((1, 3, 32, 24), float("inf"))}, ValueError, "`agnostic` contains NaN or infinite"),
        ({"cloth_mask": torch.ones(1, 1, 32, 24, dtype=torch.uint8)}, TypeError, "`cloth_mask` must be a floating"),
    ],
)  # fmt: skip
def test_tryon_model_refuses_bad_values(changes, error, message):
    model = TryOnModel(sample_size=(32, 24), num_downsamplings=2, **TINY)
    with pytest.raises(error, match=message):
        model(**tryon_inputs(**changes))


def test_tryon_model_takes_integer_keypoints_and_float64_inputs():
    model = TryOnModel(sample_size=(32, 24), num_downsamplings=2, **TINY).eval()
    with torch.no_grad():
        reference = model(**tryon_inputs()).sample
        integer = model(**tryon_inputs(keypoints=torch.full((1, 18, 3), 5, dtype=torch.long))).sample
        doubles = model(**{name: tensor.double() for name, tensor in tryon_inputs().items()}).sample
    torch.testing.assert_close(integer, reference)
    torch.testing.assert_close(doubles, reference)


# torch.compile


def test_value_checks_stay_out_of_torch_compile():
    # The range and NaN checks read values back to Python; while compiling they are skipped, so the graph is whole.
    vae = VAE(latent_dim=4, **TINY).eval()
    generator = Generator(latent_dim=8, num_classes=3, **TINY).eval()
    compiled_loss = torch.compile(vae.loss, backend="eager", fullgraph=True)
    compiled_generator = torch.compile(generator, backend="eager", fullgraph=True)
    x = images(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(
            compiled_loss(x, generator=None, reduction="none").kl_loss, vae.loss(x, reduction="none").kl_loss
        )
        labels = torch.tensor([0, 2])
        torch.testing.assert_close(
            compiled_generator(torch.ones(2, 8), labels).sample, generator(torch.ones(2, 8), labels).sample
        )
    with pytest.raises(ValueError, match="must lie in"):
        vae.loss(x * 300)  # eager: still checked


# Loading


@pytest.fixture
def saved_vae(tmp_path) -> Path:
    folder = tmp_path / "vae"
    VAE(latent_dim=4, **TINY).save_pretrained(folder)
    return folder


def rewrite_config(folder: Path, change) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


@pytest.mark.parametrize(
    "load", [VAE.from_pretrained, load_pretrained], ids=["VAE.from_pretrained", "load_pretrained"]
)
@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda f: rewrite_config(f, lambda c: [c]), ValueError, r"config.json of .* must hold a JSON object.*list"),
        (lambda f: rewrite_config(f, lambda c: "VAE"), ValueError, r"config.json of .* must hold a JSON object.*str"),
        (lambda f: rewrite_config(f, lambda c: {k: v for k, v in c.items() if k != "_class_name"}), ValueError,
         r"does not name its model class \(`_class_name` is None\)"),
        (lambda f: rewrite_config(f, lambda c: c | {"_class_name": 3}), ValueError, r"`_class_name` is 3"),
        (lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:100]), OSError,
         rf"weights file .*{WEIGHTS} is damaged \(.*header.*\): it is truncated, zeroed or not a safetensors file"),
        (lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[: (f / WEIGHTS).stat().st_size // 2]), OSError,
         rf"{WEIGHTS} is damaged \(.*not fully covered\)"),
        (lambda f: (f / WEIGHTS).write_bytes(bytes((f / WEIGHTS).stat().st_size)), OSError, rf"{WEIGHTS} is damaged"),
        (lambda f: (f / WEIGHTS).write_bytes(b""), OSError, rf"{WEIGHTS} is damaged \(.*header too small\)"),
        (lambda f: save_file({k: v.fill_(float("nan")) if k.endswith("bias") else v
                              for k, v in load_file(f / WEIGHTS).items()}, f / WEIGHTS), ValueError,
         r"hold NaN or infinite values \(first in `.*bias`\): the model was saved after its training diverged"),
    ],
    ids=["list", "string", "no-class-name", "number-class", "truncated", "half", "zeroed", "empty", "nan-weights"],
)  # fmt: skip
def test_damaged_folders_fail_naming_the_file_and_the_problem(saved_vae, load, damage, error, message):
    damage(saved_vae)
    before = folder_digest(saved_vae)
    with pytest.raises(error, match=message):
        load(saved_vae)
    assert folder_digest(saved_vae) == before


def test_a_file_or_a_missing_path_is_not_a_model_folder(saved_vae, tmp_path):
    before = folder_digest(saved_vae)
    for path in (saved_vae / "config.json", saved_vae / WEIGHTS):
        with pytest.raises(
            ValueError, match=rf"{path} is a file: pass the folder that holds config.json .*\({saved_vae}\)"
        ):
            load_pretrained(path)
    with pytest.raises(OSError, match="is neither a folder nor a Hub id"):
        load_pretrained(tmp_path / "no" / "such" / "model")
    assert folder_digest(saved_vae) == before


def test_save_into_a_file_is_refused_and_leaves_it_alone(tmp_path):
    target = tmp_path / "model"
    target.write_text("not a folder")
    with pytest.raises(ValueError, match="it is a file, not a folder"):
        VAE(latent_dim=4, **TINY).save_pretrained(target)
    assert target.read_text() == "not a folder"
