"""Shapes, ranges, config validation and save/load round trips of the core models."""

import inspect
import json
import math
from pathlib import Path

import pytest
import torch
from comparisons import assert_same_weights
from diffusers.utils.dynamic_modules_utils import get_relative_imports

from hf_vaegan import VAE, AutoEncoder, Discriminator, Generator
from hf_vaegan.auto import model_classes
from hf_vaegan.models.blocks import SUPPORTED_RESOLUTIONS, DiagonalGaussian

CHANNELS = (1, 3)
TINY = {"base_channels": 4}


def images(batch, channels, resolution, seed=0):
    return torch.rand(batch, channels, resolution, resolution, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def in_range(tensor):
    return tensor.min() >= -1 and tensor.max() <= 1 and torch.isfinite(tensor).all()


@pytest.mark.parametrize("resolution", SUPPORTED_RESOLUTIONS)
@pytest.mark.parametrize("channels", CHANNELS)
def test_autoencoder_and_vae_shapes(resolution, channels):
    x = images(2, channels, resolution)
    autoencoder = AutoEncoder(resolution=resolution, in_channels=channels, latent_dim=8, **TINY)
    output = autoencoder(x)
    assert output.sample.shape == x.shape and output.latents.shape == (2, 8) and in_range(output.sample)

    vae = VAE(resolution=resolution, in_channels=channels, latent_dim=8, **TINY)
    posterior = vae.encode(x).latent_dist
    assert posterior.mean.shape == posterior.logvar.shape == (2, 8)
    reconstruction = vae(x).sample
    assert reconstruction.shape == x.shape and in_range(reconstruction)
    assert vae.sample(3).shape == (3, channels, resolution, resolution)


@pytest.mark.parametrize("resolution", SUPPORTED_RESOLUTIONS)
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("num_classes", (0, 10))
def test_gan_shapes(resolution, channels, num_classes):
    labels = torch.tensor([0, 9]) if num_classes else None
    generator = Generator(resolution=resolution, out_channels=channels, latent_dim=8, num_classes=num_classes, **TINY)
    fake = generator(torch.randn(2, 8), labels).sample
    assert fake.shape == (2, channels, resolution, resolution) and in_range(fake)

    discriminator = Discriminator(resolution=resolution, in_channels=channels, num_classes=num_classes, **TINY)
    output = discriminator(fake, labels)
    assert output.logits.shape == (2,) and output.features.shape[0] == 2


def test_projection_discriminator_depends_on_the_label():
    discriminator = Discriminator(num_classes=10, **TINY)
    x = images(1, 1, 28)
    assert discriminator(x, torch.tensor([1])).logits != discriminator(x, torch.tensor([2])).logits


def test_spectral_norm_bounds_the_largest_singular_value():
    discriminator = Discriminator(spectral_norm=True, **TINY)
    for _ in range(20):  # the power iteration converges during training-mode forward passes
        discriminator(images(4, 1, 28))
    weight = discriminator.encoder.layers[0].weight
    assert torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_minibatch_std_lets_the_discriminator_see_the_spread_of_its_group():
    torch.manual_seed(0)
    discriminator = Discriminator(minibatch_std_group_size=2, **TINY).eval()
    batch = images(4, 1, 28)
    with torch.no_grad():
        logits = discriminator(batch).logits
        changed = batch.clone()
        changed[1] = -changed[1]  # in the first group of two
        changed_logits = discriminator(changed).logits
        # A batch of copies has no spread: each logit is that of the image alone.
        copies = discriminator(batch[:1].repeat(4, 1, 1, 1)).logits
        alone = discriminator(batch[:1]).logits
    assert changed_logits[0] != logits[0]  # image 0 sees its group-mate change
    assert torch.equal(changed_logits[2:], logits[2:])  # the other group does not
    assert torch.allclose(copies, alone.expand(4), atol=1e-5)


@pytest.mark.parametrize(
    ("model_class", "kwargs", "field"),
    [
        (VAE, {"resolution": 48}, "resolution"),
        (VAE, {"in_channels": 2}, "in_channels"),
        (VAE, {"latent_dim": 0}, "latent_dim"),
        (VAE, {"likelihood": "poisson"}, "likelihood"),
        (VAE, {"beta": -1.0}, "beta"),
        (AutoEncoder, {"base_channels": 2.5}, "base_channels"),
        (Generator, {"out_channels": 4}, "out_channels"),
        (Generator, {"num_classes": 1}, "num_classes"),
        (Generator, {"norm_type": "layer"}, "norm_type"),
        (Discriminator, {"num_classes": -3}, "num_classes"),
        (Discriminator, {"spectral_norm": "yes"}, "spectral_norm"),
        (Discriminator, {"minibatch_std_group_size": -1}, "minibatch_std_group_size"),
    ],
)
def test_invalid_config_names_the_field(model_class, kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        model_class(**kwargs)


def test_bad_inputs_get_clear_errors():
    vae = VAE(**TINY)
    with pytest.raises(ValueError, match=r"shape \(batch, 1, 28, 28\)"):
        vae(images(2, 3, 28))
    with pytest.raises(TypeError, match="floating point"):
        vae(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    generator = Generator(num_classes=10, latent_dim=8, **TINY)
    with pytest.raises(ValueError, match="class-conditional"):
        generator(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"lie in \[0, 9\]"):
        generator(torch.randn(2, 8), torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="noise"):
        generator(torch.randn(2, 7), torch.tensor([3, 4]))
    with pytest.raises(ValueError, match="unconditional"):
        Generator(**TINY)(torch.randn(2, 64), torch.tensor([0, 1]))


@pytest.mark.parametrize("likelihood", ("bernoulli", "gaussian", "laplace"))
def test_vae_loss_terms(likelihood):
    vae = VAE(likelihood=likelihood, latent_dim=4, beta=0.5, **TINY)
    x = images(3, 1, 28)
    output = vae.loss(x)
    for term in (output.loss, output.reconstruction_loss, output.kl_loss):
        assert term.ndim == 0 and torch.isfinite(term)
    assert output.kl_loss >= 0
    assert output.loss.item() == pytest.approx((output.reconstruction_loss + 0.5 * output.kl_loss).item(), rel=1e-5)
    per_example = vae.loss(x, reduction="none", generator=torch.Generator().manual_seed(0))
    assert per_example.loss.shape == (3,)
    output.loss.backward()
    assert all(p.grad is not None for p in vae.parameters())


def test_kl_is_zero_when_the_posterior_equals_the_prior():
    prior_parameters = torch.zeros(5, 2 * 7)  # mean 0, log-variance 0
    assert torch.equal(DiagonalGaussian(prior_parameters).kl(), torch.zeros(5))
    shifted = DiagonalGaussian(torch.cat([torch.ones(5, 7), torch.zeros(5, 7)], dim=1))
    assert torch.allclose(shifted.kl(), torch.full((5,), 3.5))  # 0.5 * sum(mean^2) over 7 dimensions


def test_log_prob_matches_torch_distributions():
    parameters = torch.randn(4, 6)
    gaussian = DiagonalGaussian(parameters)
    z = gaussian.sample(generator=torch.Generator().manual_seed(1))
    reference = torch.distributions.Normal(gaussian.mean, gaussian.std).log_prob(z).sum(1)
    assert torch.allclose(gaussian.log_prob(z), reference, atol=1e-5)


def test_reparameterised_samples_carry_gradients():
    vae = VAE(latent_dim=4, **TINY)
    posterior = vae.encode(images(2, 1, 28)).latent_dist
    z = posterior.sample()
    assert z.requires_grad
    z.sum().backward()
    assert vae.to_posterior.weight.grad.abs().sum() > 0


def test_bernoulli_nll_is_the_binary_cross_entropy():
    vae = VAE(latent_dim=4, **TINY)
    x, z = images(2, 1, 28), torch.randn(2, 4)
    probabilities = (vae.decode(z).sample + 1) / 2
    targets = (x + 1) / 2
    expected = -(targets * probabilities.log() + (1 - targets) * (1 - probabilities).log()).flatten(1).sum(1)
    assert torch.allclose(vae.reconstruction_nll(x, z), expected, rtol=1e-4)


def test_gaussian_nll_matches_torch_distributions():
    vae = VAE(latent_dim=4, likelihood="gaussian", **TINY)
    x, z = images(2, 1, 28), torch.randn(2, 4)
    mean, scale = vae.decode(z).sample, vae.log_scale.exp()
    expected = -torch.distributions.Normal(mean, scale).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(vae.reconstruction_nll(x, z), expected, rtol=1e-4)


def test_generator_argument_makes_sampling_reproducible():
    vae = VAE(latent_dim=4, **TINY)
    first = vae.sample(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, vae.sample(4, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(first, vae.sample(4, generator=torch.Generator().manual_seed(4)))
    gan = Generator(latent_dim=8, num_classes=10, **TINY)
    labels = torch.arange(4)
    assert torch.equal(
        gan.sample(4, labels, generator=torch.Generator().manual_seed(3)),
        gan.sample(4, labels, generator=torch.Generator().manual_seed(3)),
    )
    posterior = vae.encode(images(2, 1, 28)).latent_dist
    assert torch.equal(
        posterior.sample(generator=torch.Generator().manual_seed(5)),
        posterior.sample(generator=torch.Generator().manual_seed(5)),
    )


def test_group_norm_generator_is_independent_of_the_batch():
    generator = Generator(latent_dim=8, **TINY).eval()
    noise = torch.randn(4, 8)
    assert torch.allclose(generator(noise).sample[:1], generator(noise[:1]).sample, atol=1e-6)


MODELS = [
    (AutoEncoder, {"latent_dim": 6}),
    (VAE, {"latent_dim": 6, "likelihood": "laplace"}),
    (Generator, {"latent_dim": 6, "num_classes": 3}),
    (Discriminator, {"num_classes": 3, "spectral_norm": True, "minibatch_std_group_size": 2}),
]


def run(model, seed=0):
    torch.manual_seed(seed)
    model.eval()
    with torch.no_grad():
        if isinstance(model, Generator):
            return model(torch.randn(2, 6), torch.tensor([0, 2])).sample
        if isinstance(model, Discriminator):
            return model(images(2, 1, 28), torch.tensor([0, 2])).logits
        return model(images(2, 1, 28)).sample


@pytest.mark.parametrize(("model_class", "kwargs"), MODELS)
def test_save_load_round_trip(tmp_path, model_class, kwargs):
    model = model_class(**kwargs, **TINY)
    model.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "diffusion_pytorch_model.safetensors" in files and "blocks.py" in files and "modeling_utils.py" in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    config = json.loads((tmp_path / "config.json").read_text())
    module, class_name = config["auto_map"]["AutoModel"].split(".")
    assert class_name == model_class.__name__ and (tmp_path / f"{module}.py").is_file()
    loaded = model_class.from_pretrained(tmp_path)
    assert_same_weights(model, loaded)
    torch.testing.assert_close(run(loaded), run(model))


def test_loading_into_another_config_or_class_fails_clearly(tmp_path):
    VAE(latent_dim=6, **TINY).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"do not fit a VAE .*latent_dim"):
        VAE.from_pretrained(tmp_path, latent_dim=8)
    with pytest.raises(ValueError, match="holds a 'VAE' model"):
        Generator.from_pretrained(tmp_path)


def test_pickle_is_refused(tmp_path):
    model = VAE(**TINY)
    with pytest.raises(ValueError, match="safetensors only"):
        model.save_pretrained(tmp_path, safe_serialization=False)
    model.save_pretrained(tmp_path)
    (tmp_path / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "diffusion_pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        VAE.from_pretrained(tmp_path)


def test_corrupt_weights_file_fails_clearly_and_save_does_not_touch_other_folders(tmp_path):
    model = VAE(**TINY)
    model.save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(Exception, match="(?i)safetensor|header|incomplete|deserializ"):
        VAE.from_pretrained(tmp_path)


def test_vae_elbo_is_a_probability_bound_for_bernoulli():
    # A negative ELBO in nats must be positive for Bernoulli pixels (probabilities are <= 1).
    vae = VAE(latent_dim=4, **TINY)
    assert (vae.loss(images(4, 1, 28), reduction="none").loss > 0).all()
    assert math.isfinite(vae.loss(images(4, 1, 28)).loss.item())


@pytest.mark.parametrize(("model_class", "kwargs"), MODELS)
def test_outputs_survive_accelerate_mixed_precision(model_class, kwargs):
    # Under mixed precision, accelerate wraps forward with this: it rebuilds output dataclasses from one dict.
    from accelerate.utils.operations import convert_outputs_to_fp32

    model = model_class(**kwargs, **TINY)
    model.forward = convert_outputs_to_fp32(torch.autocast("cpu", dtype=torch.bfloat16)(model.forward))
    output = run(model)
    assert output.dtype == torch.float32 and torch.isfinite(output).all()
    if isinstance(model, VAE):
        assert model(images(2, 1, 28)).latent_dist is not None
    if isinstance(model, Discriminator):
        assert model(images(2, 1, 28), torch.tensor([0, 1])).features.shape[0] == 2


@pytest.mark.parametrize(("model_class", "kwargs"), MODELS)
def test_from_config_keeps_every_value(model_class, kwargs):
    # diffusers records positional arguments as defaults, so the models take keyword arguments only
    model = model_class(**kwargs, **TINY)
    assert dict(model_class.from_config(model.config).config) == dict(model.config)
    with pytest.raises(TypeError):
        model_class(28)


def test_local_subfolder_loads_the_subfolder_model(tmp_path):
    Generator(latent_dim=6, **TINY).save_pretrained(tmp_path)
    discriminator = Discriminator(**TINY).eval()
    discriminator.save_pretrained(tmp_path / "discriminator")
    loaded = Discriminator.from_pretrained(tmp_path, subfolder="discriminator").eval()
    assert_same_weights(discriminator, loaded)
    x = images(2, 1, 28)
    torch.testing.assert_close(loaded(x).logits, discriminator(x).logits)


@pytest.mark.parametrize("name", sorted(model_classes()))
def test_source_files_import_each_other_directly(name):
    # diffusers' remote-code loader copies a local folder's direct relative imports only (the Hub's, recursively)
    module_file = inspect.getfile(model_classes()[name])
    direct = {Path(module_file).parent / f"{module}.py" for module in get_relative_imports(module_file)}
    assert set(model_classes()[name].source_files()) - {Path(module_file)} == direct
