"""Issue 16: train_gan.py's --preset, the phase-decomposed generator in training, the equal-budget baselines and
benchmark (tiny and fast: the 1k Fashion-MNIST fixture, seconds of training)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from hf_vaegan import Generator
from hf_vaegan.metrics import evaluate_model
from hf_vaegan.training.presets import GAN_PRESETS, apply_preset

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "fashion_mnist_1k.npz"
sys.path.insert(0, str(REPO / "benchmarks"))

import baselines  # noqa: E402
import gan_equal_budget  # noqa: E402


@pytest.fixture(scope="module")
def train_gan_module():
    spec = importlib.util.spec_from_file_location("train_gan", REPO / "examples" / "train_gan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_budget_preset_sets_its_defaults_and_explicit_flags_override_them(train_gan_module, tmp_path):
    base = ["--dataset_name", str(FIXTURE), "--output_dir", str(tmp_path / "out")]
    quality = train_gan_module.parse_args(base)
    assert quality.preset == "quality" and quality.base_channels == 64 and quality.mode_seeking_weight == 0.3
    budget = train_gan_module.parse_args([*base, "--preset", "cpu-budget"])
    for flag, value in GAN_PRESETS["cpu-budget"].items():
        assert getattr(budget, flag) == value, flag
    overridden = train_gan_module.parse_args(
        [*base, "--base_channels", "24", "--preset", "cpu-budget", "--mode_seeking_weight=0.1"]
    )
    assert overridden.base_channels == 24 and overridden.mode_seeking_weight == 0.1
    others = set(GAN_PRESETS["cpu-budget"]) - {"base_channels", "mode_seeking_weight"}
    assert all(getattr(overridden, flag) == GAN_PRESETS["cpu-budget"][flag] for flag in others)


def test_a_preset_of_an_unknown_flag_is_refused():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="bad")
    with pytest.raises(ValueError, match="unknown flags"):
        apply_preset(parser, [], {"bad": {"no_such_flag": 1}})


def test_training_through_the_phase_decomposed_upsampling_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    generator = Generator(resolution=28, latent_dim=8, base_channels=8, num_classes=3)
    noise, labels = torch.randn(5, 8), torch.arange(5) % 3
    results = []
    for fast in (False, True):
        generator.zero_grad()
        generator.phase_upsampling_in_training = fast
        images = generator(noise, labels).sample
        images.pow(2).sum().backward()
        results.append((images.detach(), [parameter.grad.clone() for parameter in generator.parameters()]))
    (slow_images, slow_grads), (fast_images, fast_grads) = results
    torch.testing.assert_close(fast_images, slow_images, atol=1e-5, rtol=1e-4)
    for fast_grad, slow_grad in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(fast_grad, slow_grad, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(baselines.BASELINES))
def test_baselines_train_a_step_and_sample_images_of_their_resolution(name):
    torch.manual_seed(0)
    model = baselines.BASELINES[name]()
    size = model.resolution
    before = [parameter.clone() for parameter in model.parameters()]
    losses = model.train_step(torch.rand(8, 1, size, size) * 2 - 1, torch.arange(8) % 10)
    assert set(losses) == {"d_loss", "g_loss"} and all(torch.isfinite(torch.tensor(list(losses.values()))))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    images = model.sample(6, class_labels=torch.arange(6) % 10, generator=torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, size, size) and images.abs().max() <= 1
    assert model.training  # sampling restores the mode


def test_the_conditional_baseline_is_scored_with_class_accuracy():
    model = baselines.MLPConditionalGAN()
    real = torch.rand(40, 1, 28, 28) * 2 - 1
    metrics = evaluate_model(model, real, num_samples=20)
    assert 0.0 <= metrics["class_accuracy"] <= 1.0
    assert "class_accuracy" not in evaluate_model(baselines.DCGAN(), real, num_samples=20)


def test_equal_budget_benchmark_of_the_baselines_prints_a_table_and_a_json_line(tmp_path, capsys):
    summary = gan_equal_budget.main(
        [
            "--train_data", str(FIXTURE), "--test_data", str(FIXTURE), "--seconds", "1", "--num_samples", "50",
            "--runs", "dcgan", "mlp-cgan", "--output_dir", str(tmp_path / "bench"),
        ]
    )  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("CPU: ") and "| mlp-cgan |" in "\n".join(lines)
    assert json.loads(lines[-1]) == summary
    assert set(summary["runs"]) == {"dcgan", "mlp-cgan"} and summary["runs"]["dcgan"]["steps"] > 0


@pytest.mark.slow
def test_equal_budget_benchmark_with_our_recipe_prints_the_ratio(tmp_path, capsys):
    summary = gan_equal_budget.main(
        [
            "--train_data", str(FIXTURE), "--test_data", str(FIXTURE), "--seconds", "2", "--num_samples", "50",
            "--runs", "ours", "mlp-cgan", "--output_dir", str(tmp_path / "bench"),
        ]
    )  # fmt: skip
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["best_baseline"] == "mlp-cgan" and last["fid_ratio_ours_to_best_baseline"] > 0
    batch_size = GAN_PRESETS["cpu-budget"].get("train_batch_size", 64)
    assert summary["runs"]["ours"]["images_seen"] == summary["runs"]["ours"]["steps"] * batch_size
