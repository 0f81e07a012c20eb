"""Sampling at inference (issue 16, item 4): the generator's gradient-free path computes what its modules compute,
GANPipeline picks bf16 only where the CPU has bf16 instructions, and `hf-vaegan sample` tiles its grid as before."""

import dataclasses

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from diffusers.utils import make_image_grid
from torch import nn

from hf_vaegan import GANPipeline, Generator, hardware
from hf_vaegan.commands import tile
from hf_vaegan.models.generator import few_channel_conv, upsample_conv
from hf_vaegan.pipelines.pipeline_gan import CPU_CHUNK_VALUES


def randomised(generator: Generator) -> Generator:
    """`generator` in eval mode with batch-norm statistics and affine parameters away from their initial values."""
    torch.manual_seed(0)
    for module in generator.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(module.weight, 1.0, 0.2)
            nn.init.normal_(module.bias, 0.0, 0.2)
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return generator.eval()


@pytest.mark.parametrize("bias", (True, False))
def test_upsample_conv_is_upsampling_then_the_convolution(bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1, bias=bias)
    hidden = torch.randn(3, 6, 7, 9)
    expected = conv(F.interpolate(hidden, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(upsample_conv(hidden, conv), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("out_channels", (1, 3))
def test_few_channel_conv_is_the_convolution(out_channels):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, out_channels, 3, padding=1)
    hidden = torch.randn(2, 8, 10, 6)
    torch.testing.assert_close(few_channel_conv(hidden, conv), conv(hidden), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm_type", ("group", "batch", "none"))
@pytest.mark.parametrize(("resolution", "out_channels", "num_classes"), [(28, 1, 10), (32, 3, 0), (64, 3, 4)])
def test_inference_path_agrees_with_the_modules(norm_type, resolution, out_channels, num_classes):
    generator = randomised(
        Generator(
            resolution=resolution,
            out_channels=out_channels,
            latent_dim=8,
            base_channels=8,
            num_classes=num_classes,
            norm_type=norm_type,
        )
    )
    noise = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(5) % num_classes if num_classes else None
    with torch.enable_grad():
        through_modules = generator(noise, labels).sample  # what training runs
    with torch.inference_mode():
        images = generator(noise, labels).sample
    torch.testing.assert_close(images, through_modules.detach())


def test_seeded_sampling_is_reproducible_bit_for_bit():
    pipe = GANPipeline(randomised(Generator(latent_dim=8, base_channels=8, num_classes=10)))
    draws = [pipe(6, [1, 2, 3, 4, 5, 6], torch.Generator().manual_seed(3), output_type="pt").images for _ in range(2)]
    assert torch.equal(*draws)
    samples = [pipe.gan.sample(6, torch.arange(6), torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*samples)


@pytest.mark.parametrize("native_bf16", (False, True))
def test_pipeline_samples_in_bf16_only_where_the_cpu_has_bf16_instructions(monkeypatch, native_bf16):
    cpu = dataclasses.replace(hardware.cpu_info(), amx=native_bf16, avx512_bf16=native_bf16)
    monkeypatch.setattr(hardware, "cpu_info", lambda: cpu)
    pipe = GANPipeline(randomised(Generator(latent_dim=8, base_channels=8, num_classes=10)))
    noise = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 6, 9])
    images = pipe(class_labels=labels, latents=noise, output_type="pt").images
    with torch.no_grad():
        fp32 = pipe.gan(noise, labels).sample
    assert images.dtype == torch.float32
    assert hardware.bf16_is_fast("cpu") is native_bf16
    if native_bf16:
        assert not torch.equal(images, fp32)
        torch.testing.assert_close(images, fp32, rtol=0, atol=0.1)
    else:
        assert torch.equal(images, fp32)


CAPPED_SCRIPT = (
    "import torch\n"
    "from hf_vaegan.hardware import bf16_is_fast, fast_precision\n"
    "print(bf16_is_fast('cpu'), type(fast_precision('cpu', torch.float32)).__name__)\n"
)


def test_a_cpu_capped_to_avx2_never_samples_in_bf16(run_python):
    env = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert run_python("-c", CAPPED_SCRIPT, env=env).stdout.split() == ["False", "nullcontext"]


def test_pipeline_runs_cache_sized_chunks_on_cpu():
    generator = randomised(Generator(latent_dim=8, base_channels=32, num_classes=10))
    pipe = GANPipeline(generator)
    assert pipe.chunk_size == CPU_CHUNK_VALUES // (32 * 28 * 28) < 200
    noise = torch.randn(pipe.chunk_size * 2 + 3, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(len(noise)) % 10
    with torch.no_grad():
        whole = generator(noise, labels).sample
    chunked = pipe(class_labels=labels, latents=noise, output_type="pt").images
    with torch.autocast("cpu", enabled=False):
        torch.testing.assert_close(chunked, whole, rtol=0, atol=0.1 if hardware.bf16_is_fast("cpu") else 1e-5)


@pytest.mark.parametrize("channels", (None, 3))
def test_tile_lays_images_out_row_by_row_like_make_image_grid(channels):
    shape = (7, 4, 5) if channels is None else (7, 4, 5, channels)
    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    grid = tile(images, columns=3)
    tiles = [PIL.Image.fromarray(image) for image in images]
    tiles += [PIL.Image.new(tiles[0].mode, tiles[0].size)] * 2
    expected = make_image_grid(tiles, rows=3, cols=3)
    assert grid.shape == (12, 15, *(() if channels is None else (channels,)))
    assert np.array_equal(grid, np.asarray(expected.convert(tiles[0].mode)))


def test_a_decoder_with_an_accelerate_hook_runs_through_its_own_forward(monkeypatch):
    """With device_map offloading, accelerate moves the weights in when the hooked decoder's forward runs."""
    from accelerate.hooks import ModelHook, add_hook_to_module

    from hf_vaegan.models import generator as generator_module

    generator = randomised(Generator(latent_dim=8, base_channels=8))
    add_hook_to_module(generator.decoder, ModelHook())

    def refuse(*args):
        raise AssertionError("the inference path bypassed the decoder's hook")

    monkeypatch.setattr(generator_module, "decode_for_inference", refuse)
    with torch.no_grad():
        assert generator(torch.randn(2, 8)).sample.shape == (2, 1, 28, 28)
