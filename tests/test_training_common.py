"""The training layer in-process: the loop, checkpoints, named state, the update, losses, DiffAugment, grids, cards."""

import argparse
import math
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from PIL import Image

from hf_vaegan import Discriminator, Generator
from hf_vaegan.training import (
    CheckpointedTensors,
    CheckpointError,
    DiffAugment,
    GANTrainer,
    Network,
    TrainingDivergedError,
    TrainingLoop,
    assert_finite_parameters,
    check_finite,
    create_ema,
    create_fixed_sample_inputs,
    create_training_rng,
    discriminator_loss,
    generator_loss,
    input_gradient_penalty,
    list_checkpoints,
    register_training_state,
    resolve_checkpoint,
    save_checkpoint,
)
from hf_vaegan.training.args import add_training_args, validate_training_args
from hf_vaegan.training.checkpoints import checkpoint_step, remove_partial_checkpoints
from hf_vaegan.training.grids import log_sample_grid, make_sample_grid
from hf_vaegan.training.hub import training_command
from hf_vaegan.training.losses import mode_seeking_loss
from hf_vaegan.training.session import fast_bf16_available, resolve_mixed_precision
from hf_vaegan.training.state import ProcessGenerator


@pytest.fixture
def make_accelerator():
    """Accelerators are process-wide singletons: reset their state after each test."""
    yield lambda **kwargs: Accelerator(cpu=True, **kwargs)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def parse_training_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_training_args(parser, default_output_dir="unused")
    return parser.parse_args(list(argv))


# Divergence guard


def test_check_finite_returns_floats_and_names_the_step_of_a_nan(make_accelerator):
    accelerator = make_accelerator()
    values = check_finite(accelerator, 3, loss=torch.tensor(1.5), grad_norm=torch.tensor(2.0))
    assert values == {"loss": 1.5, "grad_norm": 2.0}
    with pytest.raises(TrainingDivergedError, match=r"step 7: d_loss = nan") as error:
        check_finite(accelerator, 7, d_loss=torch.tensor(float("nan")), g_loss=torch.tensor(0.1))
    assert "g_loss" not in str(error.value)
    with pytest.raises(TrainingDivergedError, match="g_loss = inf"):
        check_finite(accelerator, 1, g_loss=torch.tensor(float("inf")))


def test_assert_finite_parameters_names_the_tensor():
    model = torch.nn.Linear(2, 2)
    assert_finite_parameters(model=model)
    with torch.no_grad():
        model.bias[1] = float("nan")
    with pytest.raises(TrainingDivergedError, match=r"model\.bias"):
        assert_finite_parameters(model=model)


# Checkpoints


class ExplodingState:
    """A checkpointed object whose saving fails once armed, like a crash in the middle of `save_state`."""

    armed = False

    def state_dict(self):
        if self.armed:
            raise OSError("disk full")
        return {"value": torch.zeros(1)}

    def load_state_dict(self, state_dict):
        pass


def test_checkpoints_are_atomic_and_pruned_to_the_limit(make_accelerator, tmp_path):
    accelerator = make_accelerator(project_dir=str(tmp_path))
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    exploding = ExplodingState()
    register_training_state(accelerator, "exploding", exploding)
    for step in (1, 2, 3):
        save_checkpoint(accelerator, tmp_path, step, total_limit=2, models={"model": model})
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-3"]

    exploding.armed = True
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*checkpoint-4: disk full; checkpoint-3"):
        save_checkpoint(accelerator, tmp_path, 4, total_limit=2)
    assert not (tmp_path / ".partial-checkpoint-4").exists()
    assert resolve_checkpoint(tmp_path, "latest") == tmp_path / "checkpoint-3"
    (tmp_path / ".partial-checkpoint-4").mkdir()  # what a SIGKILL mid-save leaves
    remove_partial_checkpoints(tmp_path)
    assert not (tmp_path / ".partial-checkpoint-4").exists()

    exploding.armed = False
    with torch.no_grad():
        accelerator.unwrap_model(model).weight[0, 0] = float("inf")
    with pytest.raises(TrainingDivergedError, match=r"model\.weight"):
        save_checkpoint(accelerator, tmp_path, 5, models={"model": model})
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-3"]


def test_resolve_checkpoint(tmp_path):
    assert resolve_checkpoint(tmp_path, None) is None
    assert resolve_checkpoint(tmp_path, "latest") is None
    for name in ("checkpoint-9", "checkpoint-10", "checkpoint-x", ".partial-checkpoint-11"):
        (tmp_path / name).mkdir()
    assert resolve_checkpoint(tmp_path, "latest") == tmp_path / "checkpoint-10"
    assert resolve_checkpoint(tmp_path, str(tmp_path / "checkpoint-9")) == tmp_path / "checkpoint-9"
    with pytest.raises(ValueError, match="checkpoint-<step>"):
        resolve_checkpoint(tmp_path, str(tmp_path / "checkpoint-x"))


def test_validate_training_args_names_the_flag(tmp_path):
    validate_training_args(parse_training_args("--resume_from_checkpoint", "latest"))
    cases = [
        (["--ema_decay", "1.0"], "--ema_decay"),
        (["--adam_beta2", "1.5"], "--adam_beta2"),
        (["--resume_from_checkpoint", str(tmp_path / "missing")], "no such folder"),
        (["--resume_from_checkpoint", str(tmp_path)], "not a checkpoint folder"),
        (["--report_to", "tensorbored"], "unknown tracker"),
    ]
    for argv, message in cases:
        with pytest.raises(ValueError, match=message):
            validate_training_args(parse_training_args(*argv))


# The loop


def run_loop(accelerator, dataloader, args, model, optimizer) -> list[list[float]]:
    """Train a linear model with the loop; returns the batches seen (as lists of values)."""
    loop = TrainingLoop(accelerator, dataloader, args, models={"model": model})
    loop.resume()
    seen = []
    for batch in loop:
        seen.append(batch["x"].flatten().tolist())
        with accelerator.accumulate(model):
            loss = model(batch["x"]).pow(2).mean()
            accelerator.backward(loss)
            logs = check_finite(accelerator, loop.next_step, loss=loss)
            optimizer.step()
            optimizer.zero_grad()
        loop.step_done(logs)
    loop.end()
    assert loop.global_step == loop.max_train_steps
    return seen


def test_training_loop_resumes_on_the_same_batches(make_accelerator, tmp_path):
    accelerator = make_accelerator(gradient_accumulation_steps=2, dataloader_config=_seedable())
    dataset = [{"x": torch.tensor([float(index)])} for index in range(10)]
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=2, shuffle=True)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    args = parse_training_args(
        "--output_dir", str(tmp_path), "--num_epochs", "2", "--gradient_accumulation_steps", "2",
        "--checkpointing_steps", "4", "--report_to", "none",
    )  # fmt: skip
    # 5 batches per epoch, accumulated by 2: 3 optimizer steps per epoch (the last one on a single batch).
    full_run = run_loop(accelerator, dataloader, args, model, optimizer)
    assert len(full_run) == 10
    assert sorted(value for batch in full_run[:5] for value in batch) == list(range(10))
    assert full_run[:5] != full_run[5:]  # each epoch is shuffled anew
    # Every --checkpointing_steps steps, and at the end so that a finished run can be extended.
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-4", "checkpoint-6"]

    args.resume_from_checkpoint = str(tmp_path / "checkpoint-4")
    resumed = run_loop(accelerator, dataloader, args, model, optimizer)
    # Step 4 is the first step of epoch 2: the resumed run skips that step's two batches.
    assert resumed == full_run[7:]


def _seedable():
    from accelerate.utils import DataLoaderConfiguration

    return DataLoaderConfiguration(use_seedable_sampler=True)


def test_training_state_round_trips_through_a_checkpoint_without_pickle(make_accelerator, tmp_path):
    accelerator = make_accelerator()
    model = accelerator.prepare(torch.nn.Linear(3, 2))
    ema = create_ema(accelerator, model, decay=0.9)
    generator = create_training_rng(accelerator, seed=5)
    inputs = create_fixed_sample_inputs(accelerator, noise=torch.randn(4, 3), labels=torch.arange(4))
    for _ in range(3):
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.step(model.parameters())
    checkpoint = save_checkpoint(accelerator, tmp_path, 3)
    assert (checkpoint / "training_state.safetensors").is_file()
    assert not list(checkpoint.glob("custom_checkpoint_*"))

    expected_draw = torch.randn(4, generator=generator)
    shadow = [param.clone() for param in ema.shadow_params]
    noise = inputs.noise.clone()
    ema.step(model.parameters())  # changes the shadow weights and the step count
    inputs.load_state_dict({"noise": torch.zeros(4, 3), "labels": torch.zeros(4)})
    accelerator.load_state(str(checkpoint))
    assert torch.equal(torch.randn(4, generator=generator), expected_draw)
    assert all(torch.equal(a, b) for a, b in zip(ema.shadow_params, shadow, strict=True))
    assert ema.optimization_step == 3 and isinstance(ema.optimization_step, int)
    assert torch.equal(inputs.noise, noise) and torch.equal(inputs.labels, torch.arange(4))

    register_training_state(accelerator, "extra", CheckpointedTensors(extra=torch.zeros(1)))
    with pytest.raises(CheckpointError, match=r"holds the training state \['ema', 'rng', 'sample_inputs'\] but this"):
        accelerator.load_state(str(checkpoint))
    (checkpoint / "training_state.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="training_state.safetensors is corrupt"):
        accelerator.load_state(str(checkpoint))


class Value:
    def __init__(self, value: float):
        self.value = torch.tensor(value)

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state_dict):
        self.value = state_dict["value"]


def test_training_state_is_matched_by_name_not_by_registration_order(make_accelerator, tmp_path):
    accelerator = make_accelerator()
    accelerator.prepare(torch.nn.Linear(2, 2))
    register_training_state(accelerator, "first", Value(1.0))
    register_training_state(accelerator, "second", Value(2.0))
    checkpoint = save_checkpoint(accelerator, tmp_path, 1)
    with pytest.raises(ValueError, match="'first' is already registered"):
        register_training_state(accelerator, "first", Value(0.0))

    other = Accelerator(cpu=True)
    other.prepare(torch.nn.Linear(2, 2))
    second, first = Value(0.0), Value(0.0)
    register_training_state(other, "second", second)
    register_training_state(other, "first", first)
    other.load_state(str(checkpoint))
    assert (first.value.item(), second.value.item()) == (1.0, 2.0)


def test_networks_prepared_in_another_order_are_refused(tmp_path):
    from hf_vaegan.training.state import training_state

    def run(names):
        accelerator = Accelerator(cpu=True)
        for name in names:
            model = torch.nn.Linear(2, 2)
            Network.prepare(accelerator, {name: model}, torch.optim.SGD(model.parameters(), lr=0.1))
            training_state(accelerator).networks.append(name)
        return accelerator

    checkpoint = save_checkpoint(run(["generator", "discriminator"]), tmp_path, 1)
    with pytest.raises(CheckpointError, match=r"holds the networks \['generator', 'discriminator'\], in this order"):
        run(["discriminator", "generator"]).load_state(str(checkpoint))


def test_process_generator_refuses_another_number_of_processes(make_accelerator):
    accelerator = make_accelerator()
    process_generator = ProcessGenerator(accelerator, seed=5)
    state = process_generator.state_dict()
    assert not torch.equal(
        torch.randn(4, generator=ProcessGenerator(accelerator, seed=6).generator),
        torch.randn(4, generator=process_generator.generator),
    )
    with pytest.raises(ValueError, match="same number of processes"):
        process_generator.load_state_dict({"states": state["states"].repeat(2, 1)})


def test_max_train_time_ends_the_run_with_a_final_checkpoint(make_accelerator, tmp_path):
    accelerator = make_accelerator(dataloader_config=_seedable())
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    dataloader = torch.utils.data.DataLoader([{"x": torch.tensor([1.0])}] * 8, batch_size=2)
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    args = parse_training_args(
        "--output_dir", str(tmp_path), "--num_epochs", "3", "--checkpointing_steps", "100", "--report_to", "none",
        "--max_train_time", "1e-9",
    )  # fmt: skip
    assert len(run_loop(accelerator, dataloader, args, model, optimizer)) == 1
    assert [path.name for path in list_checkpoints(tmp_path)] == ["checkpoint-1"]


def test_mixed_precision_auto_prefers_the_configured_value_then_fast_bf16(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert resolve_mixed_precision("no") == "no" and resolve_mixed_precision("fp16") == "fp16"
    assert resolve_mixed_precision("auto") == ("bf16" if fast_bf16_available() else "no")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    assert resolve_mixed_precision("auto") == "fp16"
    assert resolve_mixed_precision("no") == "no"
    assert parse_training_args().mixed_precision == "auto"


# Images and cards


def test_sample_grid_layout_and_png(make_accelerator, tmp_path):
    images = torch.linspace(-1, 1, 20 * 28 * 28).reshape(20, 1, 28, 28)
    grid = make_sample_grid(images)
    assert grid.size == (5 * 28, 4 * 28)
    assert grid.getpixel((0, 0))[0] == 0 and grid.getpixel((5 * 28 - 1, 4 * 28 - 1))[0] == 255
    assert make_sample_grid(images, rows=10).size == (2 * 28, 10 * 28)
    assert make_sample_grid(images[:12]).size == (4 * 28, 3 * 28)  # the squarest layout that fills the grid
    with pytest.raises(ValueError, match="do not fill"):
        make_sample_grid(images, rows=3)
    rgb = make_sample_grid(torch.zeros(4, 3, 32, 32))
    assert rgb.getpixel((0, 0)) == (128, 128, 128)
    path = log_sample_grid(make_accelerator(), grid, 12, tmp_path)
    assert path == tmp_path / "samples" / "step-0000012.png"
    assert Image.open(path).size == grid.size


def test_training_command_redacts_the_token():
    argv = ["--hub_token", "hf_secret", "--hub_token=hf_x", "--seed", "1"]
    command = training_command("examples/train_gan.py", argv)
    assert "hf_secret" not in command and "hf_x" not in command
    assert command == ("accelerate launch examples/train_gan.py --hub_token '***' '--hub_token=***' --seed 1")


# GAN losses and penalties


def test_gan_losses_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.0])
    softplus = torch.nn.functional.softplus
    expected = softplus(-real).mean() + softplus(fake).mean()
    assert torch.allclose(discriminator_loss(real, fake, "non-saturating"), expected)
    assert torch.allclose(discriminator_loss(real, fake, "hinge"), torch.tensor((0 + 0.5) / 2 + (0 + 1) / 2))
    wgan = discriminator_loss(real, fake, "wgan-gp")
    assert torch.allclose(wgan, fake.mean() - real.mean() + 1e-3 * real.pow(2).mean())
    assert torch.allclose(generator_loss(fake, "non-saturating"), softplus(-fake).mean())
    assert torch.allclose(generator_loss(fake, "hinge"), torch.tensor(0.5))
    with pytest.raises(ValueError, match="loss must be one of"):
        discriminator_loss(real, fake, "lsgan")


def test_input_gradient_penalties_of_a_linear_critic():
    weight = torch.tensor([3.0, 4.0], requires_grad=True)  # ||grad|| = 5 everywhere
    inputs = torch.randn(6, 2, requires_grad=True)
    outputs = inputs @ weight
    r1 = input_gradient_penalty(outputs, inputs)
    assert torch.allclose(r1, torch.tensor(25.0))
    gradient_penalty = input_gradient_penalty(outputs, inputs, target_norm=1.0)
    assert torch.allclose(gradient_penalty, torch.tensor(16.0))
    (weight_grad,) = torch.autograd.grad(r1, weight)  # differentiable: d(||w||^2)/dw = 2w
    assert torch.allclose(weight_grad, 2 * weight.detach())


# DiffAugment


def test_diffaugment_policy_parsing():
    assert DiffAugment("translation, cutout,color").operations == ("translation", "cutout", "color")
    assert not DiffAugment("none") and not DiffAugment("") and not DiffAugment(None)
    with pytest.raises(ValueError, match=r"unknown DiffAugment operation\(s\) \['blur'\]"):
        DiffAugment("translation,blur")


def test_diffaugment_operations_are_random_per_image_and_differentiable():
    images = torch.rand(16, 3, 32, 32, requires_grad=True)
    for policy in ("translation", "cutout", "color"):
        augment = DiffAugment(policy)
        first = augment(images, torch.Generator().manual_seed(0))
        again = augment(images, torch.Generator().manual_seed(0))
        other = augment(images, torch.Generator().manual_seed(1))
        assert first.shape == images.shape and torch.equal(first, again) and not torch.equal(first, other)
        (gradient,) = torch.autograd.grad(first.sum(), images)
        assert gradient.abs().sum() > 0

    cut = DiffAugment("cutout")(torch.ones(8, 1, 28, 28), torch.Generator().manual_seed(0))
    zero_fraction = (cut == 0).float().mean(dim=(1, 2, 3))
    assert ((zero_fraction > 0) & (zero_fraction <= 0.25 + 1e-6)).all()

    dot = torch.zeros(64, 1, 32, 32)
    dot[:, :, 16, 16] = 1.0
    moved = DiffAugment("translation")(dot, torch.Generator().manual_seed(0))
    positions = moved.flatten(1).argmax(dim=1)
    rows, cols = positions // 32 - 16, positions % 32 - 16
    assert moved.flatten(1).sum(dim=1).eq(1).all()  # the content moves, nothing is lost or duplicated
    assert rows.abs().max() <= 4 and cols.abs().max() <= 4 and len(set(positions.tolist())) > 10


def test_checkpoint_step_of_paths():
    assert checkpoint_step(Path("out/checkpoint-120")) == 120
    assert checkpoint_step("checkpoint-") is None and checkpoint_step(".partial-checkpoint-3") is None


def test_mode_seeking_term_penalises_a_generator_that_ignores_its_noise(make_accelerator):
    noise, twin_noise = torch.randn(4, 8), torch.randn(4, 8)
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    collapsed = mode_seeking_loss(noise, images, twin_noise, images.clone())
    varied = mode_seeking_loss(noise, images, twin_noise, -images)
    assert collapsed.item() == pytest.approx(1e5) and varied.item() < 10

    accelerator = make_accelerator()
    generator = Generator(latent_dim=8, base_channels=4, num_classes=3)
    discriminator = Discriminator(base_channels=4, num_classes=3, minibatch_std_group_size=2)
    generator, discriminator = (
        Network.prepare(accelerator, model, torch.optim.Adam(model.parameters(), lr=1e-4))
        for model in (generator, discriminator)
    )
    trainer = GANTrainer(accelerator, generator, discriminator, mode_seeking_weight=1.0, rng=torch.Generator())
    batch = {"pixel_values": torch.rand(4, 1, 28, 28) * 2 - 1, "labels": torch.tensor([0, 1, 2, 0])}
    logs = trainer.train_step(batch, step=1)
    assert 0 < logs["mode_seeking"] < 1e5 and math.isfinite(logs["g_loss"])
    with pytest.raises(ValueError, match="mode_seeking_weight"):
        GANTrainer(accelerator, generator, discriminator, mode_seeking_weight=-1.0)


AUTO_PRECISION_SCRIPT = (
    "import os; os.environ.pop('ACCELERATE_MIXED_PRECISION', None); os.environ['ACCELERATE_USE_CPU'] = '1'\n"
    "from hf_vaegan.hardware import cpu_info\n"
    "from hf_vaegan.training.session import resolve_mixed_precision\n"
    "info = cpu_info()\n"
    "print(info.kernels, info.native_bf16, info.avx512, resolve_mixed_precision('auto'))\n"
)


@pytest.mark.parametrize(("capability", "isa"), [("avx2", "AVX2"), ("default", "SSE41")])
def test_mixed_precision_auto_is_fp32_on_cpus_capped_below_native_bf16(run_python, capability, isa):
    # bf16 autocast without bf16 instructions ran at 0.11x the fp32 rate under these caps: `auto` must not choose
    # it, whatever CPU runs the test (torch's own AMX and AVX-512 BF16 checks ignore the caps).
    env = {"ATEN_CPU_CAPABILITY": capability, "ONEDNN_MAX_CPU_ISA": isa}
    kernels, native_bf16, avx512, precision = run_python("-c", AUTO_PRECISION_SCRIPT, env=env).stdout.split()
    assert (kernels, native_bf16, avx512, precision) == (capability.upper(), "False", "False", "no")


def test_mixed_precision_auto_is_fp32_when_onednn_stops_below_avx512_bf16(run_python):
    # AVX-512 without its BF16 extension (Skylake, Cascade Lake) has no bf16 instructions: `auto` must stay fp32.
    env = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    _, native_bf16, _, precision = run_python("-c", AUTO_PRECISION_SCRIPT, env=env).stdout.split()
    assert (native_bf16, precision) == ("False", "no")
