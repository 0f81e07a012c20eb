"""The conventions diffusers' own model tests and tooling rely on, for every model class: `torch.compile` with
`fullgraph=True`, `torch.jit.trace` on `return_dict=False` (tensors-only tuples), `device_map="auto"` loading
(`_no_split_modules`), gradient checkpointing (same outputs and gradients, refused where recomputation would update
state twice), and `output_type="latent"` in the pipelines with a latent space."""

import pytest
import torch

from hf_vaegan import (
    VAE,
    VAEGAN,
    AutoEncoder,
    Discriminator,
    GANPipeline,
    Generator,
    ImageToImagePipeline,
    PatchDiscriminator,
    TryOnModel,
    UNetGenerator,
    VAEPipeline,
)
from hf_vaegan.data import BODY_SHAPE_RANGES
from hf_vaegan.models.body_shape import BodyShapeHead
from hf_vaegan.models.fashion_classifier import FashionClassifier
from hf_vaegan.models.transformation_vae import TransformationVAE


def images(batch_size: int, channels: int, height: int, width: int | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch_size, channels, height, width or height, generator=generator) * 2 - 1


def tryon_inputs(batch_size: int = 2, height: int = 32, width: int = 24) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    masks = (torch.rand(batch_size, 3, height, width, generator=generator) > 0.5).float()
    keypoints = torch.rand(batch_size, 18, 3, generator=generator) * torch.tensor([width, height, 1.0])
    return {
        "agnostic": images(batch_size, 3, height, width),
        "agnostic_mask": masks[:, :1],
        "body_mask": masks[:, 1:2],
        "keypoints": keypoints,
        "cloth": images(batch_size, 3, height, width),
        "cloth_mask": masks[:, 2:],
    }


BODY_NAMES = list(BODY_SHAPE_RANGES)
# name -> (class, config, inputs as keyword arguments of forward)
CASES = {
    "VAE": (VAE, {"resolution": 28, "base_channels": 4, "latent_dim": 4}, lambda: {"sample": images(2, 1, 28)}),
    "TransformationVAE": (
        TransformationVAE,
        {"resolution": 28, "base_channels": 4, "latent_dim": 4, "num_reference_images": 3},  # an 8-bit buffer
        lambda: {"sample": images(2, 1, 28)},
    ),
    "AutoEncoder": (
        AutoEncoder,
        {"resolution": 28, "base_channels": 4, "latent_dim": 4},
        lambda: {"sample": images(2, 1, 28)},
    ),
    "VAEGAN": (
        VAEGAN,
        {"resolution": 28, "base_channels": 4, "latent_dim": 4, "discriminator_base_channels": 4},
        lambda: {"sample": images(2, 1, 28)},
    ),
    "Generator": (
        Generator,
        {"resolution": 32, "base_channels": 4, "latent_dim": 4, "num_classes": 3},
        lambda: {
            "noise": torch.randn(2, 4, generator=torch.Generator().manual_seed(0)),
            "class_labels": torch.tensor([0, 2]),
        },
    ),
    "Discriminator": (
        Discriminator,
        {"resolution": 32, "base_channels": 4, "num_classes": 3},
        lambda: {"sample": images(2, 1, 32), "class_labels": torch.tensor([1, 2])},
    ),
    "UNetGenerator": (
        UNetGenerator,
        {"base_channels": 4, "num_downsamplings": 2, "num_residual_blocks": 1},
        lambda: {"sample": images(2, 1, 16, 12)},
    ),
    "PatchDiscriminator": (
        PatchDiscriminator,
        {"in_channels": 1, "base_channels": 4, "num_layers": 2},
        lambda: {"sample": images(2, 1, 16)},
    ),
    "TryOnModel": (
        TryOnModel,
        {"sample_size": (32, 24), "base_channels": 4, "num_downsamplings": 2, "num_residual_blocks": 1},
        tryon_inputs,
    ),
    "TryOnModel-convex": (
        TryOnModel,
        {
            "sample_size": (32, 24),
            "base_channels": 4,
            "num_downsamplings": 2,
            "num_residual_blocks": 1,
            "flow_upsampling": "convex",
        },
        tryon_inputs,
    ),
    "BodyShapeHead": (
        BodyShapeHead,
        {
            "latent_dim": 6,
            "parameter_names": BODY_NAMES,
            "parameter_ranges": [BODY_SHAPE_RANGES[name] for name in BODY_NAMES],
        },
        lambda: {"latents": torch.randn(2, 6, generator=torch.Generator().manual_seed(0))},
    ),
    "FashionClassifier": (
        FashionClassifier,
        {"block_out_channels": (4, 8), "feature_dim": 8},
        lambda: {"sample": images(2, 1, 28)},
    ),
}
CHECKPOINTED = [
    "VAE",
    "AutoEncoder",
    "VAEGAN",
    "Generator",
    "Discriminator",
    "UNetGenerator",
    "TryOnModel",
    "TryOnModel-convex",
]


def build(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    model_class, config, make_inputs = CASES[name]
    torch.manual_seed(0)
    return model_class(**config).eval(), make_inputs()


def tensors(outputs) -> list[torch.Tensor]:
    flat = []
    for output in outputs:
        flat += tensors(output) if isinstance(output, tuple) else [output]
    return flat


def test_every_model_class_is_covered():
    from hf_vaegan.auto import model_classes

    assert set(model_classes()) <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_return_dict_false_gives_tuples_of_tensors(name):
    model, inputs = build(name)
    with torch.no_grad():
        outputs = model(**inputs, return_dict=False)
        as_dict = model(**inputs).to_tuple()
    assert isinstance(outputs, tuple)
    assert all(isinstance(value, torch.Tensor) for value in tensors(outputs) if value is not None)
    # the dataclass holds the same values (and may hold more, e.g. the VAE's posterior)
    for value, expected in zip(tensors(outputs), tensors(as_dict), strict=False):
        torch.testing.assert_close(value, expected)


class PositionalInputs(torch.nn.Module):
    """`model(**inputs, return_dict=False)` called with the inputs in order, for `torch.jit.trace`."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *values: torch.Tensor):
        return self.model(**dict(zip(self.names, values, strict=True)), return_dict=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_traces_with_jit(name):
    model, inputs = build(name)
    with torch.no_grad():
        traced = torch.jit.trace(PositionalInputs(model, list(inputs)), tuple(inputs.values()), check_trace=False)
        expected = tensors(model(**inputs, return_dict=False))
        for value, wanted in zip(tensors(traced(*inputs.values())), expected, strict=True):
            torch.testing.assert_close(value, wanted)


@pytest.mark.parametrize("name", ["Generator", "VAE"])
def test_compiles_with_fullgraph(name):
    model, inputs = build(name)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(**inputs).sample, model(**inputs).sample)


@pytest.mark.parametrize("name", sorted(CASES))
def test_loads_with_device_map_auto(name, tmp_path):
    model, inputs = build(name)
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path, device_map="auto").eval()
    assert isinstance(loaded._no_split_modules, list)
    with torch.no_grad():
        for value, expected in zip(
            tensors(loaded(**inputs, return_dict=False)), tensors(model(**inputs, return_dict=False)), strict=True
        ):
            torch.testing.assert_close(value, expected, atol=5e-5, rtol=1e-4)


@pytest.mark.parametrize("name", CHECKPOINTED)
def test_gradient_checkpointing_gives_the_same_outputs_and_gradients(name):
    model, inputs = build(name)
    checkpointed, _ = build(name)
    checkpointed.load_state_dict(model.state_dict())
    checkpointed.enable_gradient_checkpointing()
    assert checkpointed.is_gradient_checkpointing and not model.is_gradient_checkpointing
    results = []
    for network in (model, checkpointed):
        network.train()
        outputs = [value for value in tensors(network(**inputs, return_dict=False)) if value is not None]
        sum(value.float().square().mean() for value in outputs).backward()
        results.append((outputs, {key: p.grad for key, p in network.named_parameters() if p.grad is not None}))
    (outputs, gradients), (checkpointed_outputs, checkpointed_gradients) = results
    for value, expected in zip(checkpointed_outputs, outputs, strict=True):
        torch.testing.assert_close(value, expected)
    assert gradients.keys() == checkpointed_gradients.keys() and gradients
    for key, gradient in gradients.items():
        torch.testing.assert_close(checkpointed_gradients[key], gradient, msg=key)
    checkpointed.disable_gradient_checkpointing()
    assert not checkpointed.is_gradient_checkpointing


@pytest.mark.parametrize(
    ("model", "layer"),
    [
        (Discriminator(resolution=28, base_channels=4, spectral_norm=True), "encoder.layers.0"),
        (Generator(resolution=28, base_channels=4, latent_dim=4, norm_type="batch"), "decoder.layers.0"),
    ],
)
def test_gradient_checkpointing_is_refused_where_the_forward_pass_updates_state(model, layer):
    with pytest.raises(ValueError, match=rf"cannot use gradient checkpointing: .*{layer}"):
        model.enable_gradient_checkpointing()
    assert not model.is_gradient_checkpointing


@pytest.mark.parametrize("name", ["PatchDiscriminator", "BodyShapeHead"])
def test_models_without_checkpointing_say_so(name):
    model, _ = build(name)
    with pytest.raises(ValueError, match="does not support gradient checkpointing"):
        model.enable_gradient_checkpointing()


def test_vae_pipeline_latent_output():
    torch.manual_seed(0)
    pipe = VAEPipeline(VAE(resolution=28, base_channels=4, latent_dim=4).eval())
    latents = pipe(batch_size=3, generator=torch.Generator().manual_seed(1), output_type="latent").images
    assert latents.shape == (3, 4)
    decoded = pipe(latents=latents, output_type="pt").images
    again = pipe(batch_size=3, generator=torch.Generator().manual_seed(1), output_type="pt").images
    torch.testing.assert_close(decoded, again)
    pictures = images(2, 1, 28)
    torch.testing.assert_close(pipe.reconstruct(pictures, output_type="latent").images, pipe.encode(pictures))
    assert pipe.interpolate(pictures[:1], pictures[1:], num_steps=5, output_type="latent").images.shape == (5, 4)


def test_gan_pipeline_latent_output_is_the_noise_the_images_come_from():
    torch.manual_seed(0)
    pipe = GANPipeline(Generator(resolution=28, base_channels=4, latent_dim=4, num_classes=3).eval())
    options = {"batch_size": 4, "class_labels": 1, "truncation": 0.7}
    noise = pipe(generator=torch.Generator().manual_seed(2), output_type="latent", **options).images
    assert noise.shape == (4, 4) and noise.abs().max() <= 0.7
    drawn = pipe(generator=torch.Generator().manual_seed(2), output_type="pt", **options).images
    torch.testing.assert_close(pipe(latents=noise, class_labels=1, output_type="pt").images, drawn)


def test_pipelines_without_a_latent_space_refuse_latent_output():
    pipe = ImageToImagePipeline(UNetGenerator(base_channels=4, num_downsamplings=2, num_residual_blocks=1).eval())
    with pytest.raises(ValueError, match=r"`output_type` must be one of \('pil', 'np', 'pt'\), got 'latent'"):
        pipe(images(1, 1, 16), output_type="latent")
