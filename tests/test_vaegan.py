"""The VAEGAN model: shapes, its likelihoods, save/load, and loading with diffusers alone as remote code."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from comparisons import assert_same_weights

import hf_vaegan
from hf_vaegan.models.vae import VAE
from hf_vaegan.models.vaegan import VAEGAN, feature_reconstruction_nll

TINY = {"base_channels": 4, "discriminator_base_channels": 4, "latent_dim": 6}


def images(batch, channels=1, resolution=28, seed=0):
    return torch.rand(batch, channels, resolution, resolution, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize(("resolution", "channels"), [(28, 1), (32, 3), (64, 3)])
def test_shapes_and_ranges(resolution, channels):
    model = VAEGAN(resolution=resolution, in_channels=channels, **TINY)
    x = images(2, channels, resolution)
    posterior = model.encode(x).latent_dist
    assert posterior.mean.shape == (2, 6)
    reconstruction = model(x).sample
    assert reconstruction.shape == x.shape and reconstruction.abs().max() <= 1
    samples = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, channels, resolution, resolution) and samples.abs().max() <= 1
    judgement = model.discriminate(x)
    assert judgement.logits.shape == (2,) and judgement.features.shape[0] == 2


def test_feature_likelihood_is_half_the_squared_feature_distance():
    model = VAEGAN(**TINY)
    x, z = images(3), torch.randn(3, 6)
    real = model.discriminate(x).features
    reconstructed = model.discriminate(model.decode(z).sample).features
    expected = 0.5 * ((real - reconstructed) ** 2).sum(dim=1)
    assert torch.allclose(model.reconstruction_nll(x, z), expected, rtol=1e-5)
    assert torch.equal(feature_reconstruction_nll(real, real), torch.zeros(3))


def test_loss_is_the_negative_elbo_and_trains_every_vae_parameter():
    model = VAEGAN(beta=0.5, **TINY)
    output = model.loss(images(4), generator=torch.Generator().manual_seed(0))
    assert output.loss.item() == pytest.approx((output.reconstruction_loss + 0.5 * output.kl_loss).item(), rel=1e-5)
    assert model.loss(images(4), reduction="none").loss.shape == (4,)
    output.loss.backward()
    assert all(parameter.grad is not None for parameter in model.vae.parameters())


@pytest.mark.parametrize("likelihood", ["bernoulli", "laplace"])
def test_pixel_likelihoods_are_those_of_the_vae(likelihood):
    model = VAEGAN(likelihood=likelihood, **TINY)
    x, z = images(2), torch.randn(2, 6)
    assert isinstance(model.vae, VAE) and model.vae.config.likelihood == likelihood
    assert torch.equal(model.reconstruction_nll(x, z), model.vae.reconstruction_nll(x, z))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"likelihood": "poisson"}, "likelihood"),
        ({"discriminator_norm_type": "layer"}, "discriminator_norm_type"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"beta": -1.0}, "beta"),
        ({"resolution": 48}, "resolution"),
    ],
)
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        VAEGAN(**{**TINY, **kwargs})


def test_bad_images_get_clear_errors():
    model = VAEGAN(**TINY)
    with pytest.raises(ValueError, match=r"shape \(batch, 1, 28, 28\)"):
        model.loss(images(2, channels=3))
    with pytest.raises(ValueError, match="latents"):
        model.decode(torch.randn(2, 5))


def test_save_load_round_trip(tmp_path):
    model = VAEGAN(likelihood="gaussian", discriminator_spectral_norm=True, **TINY).eval()
    model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert {"vaegan.py", "vae.py", "discriminator.py", "blocks.py", "modeling_utils.py"} <= files
    assert json.loads((tmp_path / "config.json").read_text())["auto_map"] == {"AutoModel": "vaegan.VAEGAN"}
    loaded = VAEGAN.from_pretrained(tmp_path).eval()
    assert_same_weights(model, loaded)
    x = images(2)
    torch.testing.assert_close(loaded(x).sample, model(x).sample)
    torch.testing.assert_close(loaded.discriminate(x).logits, model.discriminate(x).logits)
    with pytest.raises(ValueError, match="holds a 'VAEGAN' model"):
        VAE.from_pretrained(tmp_path)


def test_loads_with_diffusers_alone_as_remote_code(tmp_path, run_python):
    model = VAEGAN(**TINY).eval()
    model.save_pretrained(tmp_path / "model")
    x = images(2)
    torch.save({"x": x, "reconstruction": model(x).sample, "logits": model.discriminate(x).logits}, tmp_path / "io.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hf_vaegan"] = None  # the package must not be needed
        import torch
        from diffusers import AutoModel

        model = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        assert type(model).__name__ == "VAEGAN" and "hf_vaegan" not in type(model).__module__
        io = torch.load({str(tmp_path / "io.pt")!r}, weights_only=True)
        with torch.no_grad():
            torch.testing.assert_close(model(io["x"]).sample, io["reconstruction"])
            torch.testing.assert_close(model.discriminate(io["x"]).logits, io["logits"])
        exec(model.usage_snippet({str(tmp_path / "model")!r}))
        assert samples.shape == (8, 1, 28, 28) and realness.shape == (8,)
        print("ok")
        """
    )
    assert run_python("-c", script, cwd=tmp_path).stdout.strip().endswith("ok")


BUNDLED = Path(hf_vaegan.__file__).parent / "pretrained" / "fashion-vaegan"
FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"


def test_the_bundled_model_samples_and_reconstructs_fashion_mnist():
    model = VAEGAN.from_pretrained(BUNDLED, subfolder="vae").eval()
    assert model.config.likelihood == "features" and model.config.resolution == 28
    with torch.no_grad():
        samples = model.sample(16, generator=torch.Generator().manual_seed(0))
        assert samples.shape == (16, 1, 28, 28) and torch.isfinite(samples).all() and samples.abs().max() <= 1
        with np.load(FIXTURE) as data:
            x = torch.from_numpy(data["images"][:200]).float().div(127.5).sub(1).unsqueeze(1)
        reconstruction = model.decode(model.encode(x).latent_dist.mode()).sample
    # A trained model reconstructs far better than the mean image does.
    assert (reconstruction - x).pow(2).mean() < 0.5 * (x.mean(0) - x).pow(2).mean()
    # Prior samples are garments, not noise or blanks: dark background around the edges, ink in the middle.
    assert samples[..., :, :2].mean() < -0.8 and samples[..., 8:20, 8:20].mean() > samples[..., :, :2].mean() + 0.5
