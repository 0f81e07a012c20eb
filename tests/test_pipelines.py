"""The sampling, interpolation, reconstruction and anomaly-score pipelines."""

import numpy as np
import PIL.Image
import pytest
import torch
from comparisons import assert_same_weights

from hf_vaegan import VAE, GANPipeline, Generator, VAEPipeline
from hf_vaegan.pipelines.pipeline_utils import slerp

TINY = {"base_channels": 4}


@pytest.fixture
def gan_pipe():
    torch.manual_seed(0)
    return GANPipeline(Generator(latent_dim=8, num_classes=10, **TINY).eval())


@pytest.fixture
def vae_pipe():
    torch.manual_seed(0)
    return VAEPipeline(VAE(latent_dim=4, **TINY).eval())


def test_gan_pipeline_outputs_and_reproducibility(gan_pipe):
    images = gan_pipe(batch_size=3, class_labels=2, generator=torch.Generator().manual_seed(1)).images
    assert len(images) == 3 and all(isinstance(i, PIL.Image.Image) and i.size == (28, 28) for i in images)
    again = gan_pipe(batch_size=3, class_labels=2, generator=torch.Generator().manual_seed(1), output_type="np")
    assert again.images.shape == (3, 28, 28, 1) and 0 <= again.images.min() and again.images.max() <= 1
    assert np.array_equal(np.asarray(images[0]), (again.images[0, ..., 0] * 255).round().astype(np.uint8))
    tensors = gan_pipe(batch_size=2, class_labels=[0, 9], output_type="pt").images
    assert tensors.shape == (2, 1, 28, 28)


def test_gan_pipeline_validates_labels_and_options(gan_pipe):
    with pytest.raises(ValueError, match="class-conditional"):
        gan_pipe(batch_size=2)
    with pytest.raises(ValueError, match=r"lie in \[0, 9\]"):
        gan_pipe(batch_size=1, class_labels=10)
    with pytest.raises(ValueError, match="one label or 2 labels"):
        gan_pipe(batch_size=2, class_labels=[1, 2, 3])
    with pytest.raises(ValueError, match="output_type"):
        gan_pipe(batch_size=1, class_labels=1, output_type="jpeg")
    with pytest.raises(ValueError, match="truncation"):
        gan_pipe(batch_size=1, class_labels=1, truncation=0)


def test_truncation_bounds_the_noise(gan_pipe):
    noise = gan_pipe.noise(256, torch.Generator().manual_seed(0), truncation=0.5)
    assert noise.abs().max() <= 0.5 and noise.std() > 0.2


def test_interpolation_ends_at_its_endpoints(gan_pipe):
    start, end = torch.randn(8), torch.randn(8)
    path = slerp(start, end, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], start, atol=1e-5) and torch.allclose(path[-1], end, atol=1e-5)
    strip = gan_pipe.interpolate(num_steps=5, class_labels=4, start=start, end=end, output_type="pt").images
    direct = gan_pipe(latents=torch.stack([start, end]), class_labels=4, output_type="pt").images
    assert strip.shape == (5, 1, 28, 28)
    assert torch.allclose(strip[0], direct[0], atol=1e-5) and torch.allclose(strip[-1], direct[1], atol=1e-5)


def garment_images(count=4):
    data = np.load("tests/fixtures/fashion_mnist_1k.npz")
    return [PIL.Image.fromarray(image) for image in data["images"][:count]]


def test_vae_pipeline_accepts_any_image_mode_and_size(vae_pipe):
    rgba = PIL.Image.new("RGBA", (61, 45), (200, 10, 10, 128))
    batch = vae_pipe.preprocess([rgba, garment_images(1)[0].convert("RGB")])
    assert batch.shape == (2, 1, 28, 28) and batch.min() >= -1 and batch.max() <= 1
    with pytest.raises(ValueError, match="No image"):
        vae_pipe.preprocess([])


def test_vae_pipeline_sample_reconstruct_interpolate(vae_pipe):
    samples = vae_pipe(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert samples.shape == (2, 28, 28, 1)
    garments = garment_images(2)
    assert len(vae_pipe.reconstruct(garments).images) == 2
    strip = vae_pipe.interpolate(garments[0], garments[1], num_steps=6, output_type="pt").images
    ends = vae_pipe.reconstruct(garments, output_type="pt").images
    assert strip.shape == (6, 1, 28, 28)
    assert torch.allclose(strip[0], ends[0], atol=1e-4) and torch.allclose(strip[-1], ends[1], atol=1e-4)


def test_anomaly_scores(vae_pipe):
    garments = garment_images(3)
    elbo = vae_pipe.anomaly_scores(garments, generator=torch.Generator().manual_seed(0))
    expected = (
        vae_pipe.vae.loss(vae_pipe.preprocess(garments), generator=torch.Generator().manual_seed(0), reduction="none")
        .loss.detach()
        .numpy()
    )
    assert elbo.shape == (3,) and np.allclose(elbo, expected)
    assert vae_pipe.anomaly_scores(garments, method="reconstruction").shape == (3,)
    with pytest.raises(ValueError, match="method"):
        vae_pipe.anomaly_scores(garments, method="density")


def test_pipeline_folder_is_in_diffusers_layout(tmp_path, gan_pipe):
    # the layout and its four load paths: tests/test_pipeline_layout.py
    gan_pipe.save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").is_file() and (tmp_path / "gan" / "config.json").is_file()
    loaded = GANPipeline.from_pretrained(tmp_path)
    assert_same_weights(gan_pipe.gan, loaded.gan)
    noise = torch.randn(2, 8)
    torch.testing.assert_close(
        loaded(latents=noise, class_labels=1, output_type="pt").images,
        gan_pipe(latents=noise, class_labels=1, output_type="pt").images,
    )
