"""`examples/train_vae.py` and `examples/train_vaegan.py` end to end, and the VAE training helpers they use."""

import copy
import importlib.util
import json
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from crash import kill_when
from PIL import Image
from safetensors.torch import load_file

from hf_vaegan import VAE, AutoEncoder
from hf_vaegan.models.vaegan import VAEGAN, feature_reconstruction_nll
from hf_vaegan.training import Network
from hf_vaegan.training.losses import generator_loss
from hf_vaegan.training.vae import _grid_rows, create_vae_sample_inputs, kl_weight, reconstruction_grid
from hf_vaegan.training.vaegan import VAEGANObjective, VAEGANTrainer

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "fashion_mnist_1k.npz"
SCRIPTS = {"vae": ROOT / "examples" / "train_vae.py", "vaegan": ROOT / "examples" / "train_vaegan.py"}
TINY = [
    "--base_channels", "4", "--latent_dim", "4", "--train_batch_size", "8", "--num_validation_images", "16",
    "--num_sample_images", "8", "--num_importance_samples", "2", "--seed", "0", "--report_to", "none",
]  # fmt: skip
WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    """The same 60 Fashion-MNIST images as an .npz, a folder of PNGs (one subfolder per class) and a saved dataset."""
    root = tmp_path_factory.mktemp("sources")
    with np.load(FIXTURE) as arrays:
        images, labels = arrays["images"][:60], arrays["labels"][:60]
    np.savez(root / "small.npz", images=images, labels=labels)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / "folder" / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index}.png")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    saved = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(image) for image in images], "label": labels.tolist()}, features=features
    )
    saved.save_to_disk(str(root / "saved"))
    return {"npz": str(root / "small.npz"), "folder": str(root / "folder"), "saved": str(root / "saved")}


def train(run_python, script: str, output_dir: Path, *flags: str, check: bool = True):
    return run_python(str(SCRIPTS[script]), "--output_dir", str(output_dir), *TINY, *flags, check=check)


def assert_complete_run(output_dir: Path, model_class, steps: int) -> None:
    assert (output_dir / f"checkpoint-{steps}").is_dir()
    assert (output_dir / "samples" / f"step-{steps:07d}.png").is_file()
    grid = Image.open(output_dir / "samples.png")
    assert grid.width > grid.height  # images, reconstructions and (VAEs) prior samples side by side
    card = (output_dir / "README.md").read_text()
    assert "reconstruction MSE" in card and "accelerate launch examples/train_va" in card
    model = model_class.from_pretrained(output_dir)
    images = model(torch.zeros(2, 1, 28, 28)).sample
    assert images.shape == (2, 1, 28, 28) and torch.isfinite(images).all()
    assert all(torch.isfinite(value).all() for value in load_file(output_dir / WEIGHTS).values())


def logged_scalars(logs: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under ``logs``: name -> [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(logs))
    multiplexer.Reload()
    scalars: dict[str, list[tuple[int, float]]] = {}
    for run, tags in multiplexer.Runs().items():
        for tag in tags["scalars"]:
            scalars.setdefault(tag, []).extend((event.step, event.value) for event in multiplexer.Scalars(run, tag))
    return scalars


# Quick runs: each script and model type once, each data source once.


def test_train_vae_from_npz(run_python, sources, tmp_path):
    output_dir = tmp_path / "vae"
    flags = ["--max_train_steps", "4", "--checkpointing_steps", "2", "--sample_steps", "2", "--kl_warmup_steps", "3"]
    train(run_python, "vae", output_dir, "--dataset_name", sources["npz"], *flags, "--report_to", "tensorboard")
    assert_complete_run(output_dir, VAE, 4)
    assert (output_dir / "checkpoint-2").is_dir()
    logged = logged_scalars(output_dir / "logs")
    assert {"loss", "negative_elbo", "reconstruction_nll", "kl", "kl_weight", "grad_norm"} <= logged.keys()
    assert [value for _, value in logged["kl_weight"]] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert [step for step, _ in logged["validation_negative_elbo"]] == [2, 4]
    card = (output_dir / "README.md").read_text()
    assert "negative ELBO (nats per image)" in card and "NLL, IWAE bound" in card


def test_train_autoencoder_from_image_folder(run_python, sources, tmp_path):
    output_dir = tmp_path / "autoencoder"
    flags = ["--model_type", "autoencoder", "--max_train_steps", "3", "--checkpointing_steps", "3"]
    train(run_python, "vae", output_dir, "--dataset_name", sources["folder"], *flags)
    assert_complete_run(output_dir, AutoEncoder, 3)
    assert "negative ELBO" not in (output_dir / "README.md").read_text()


def test_train_vaegan_from_saved_dataset_in_bf16(run_python, sources, tmp_path):
    output_dir = tmp_path / "vaegan"
    flags = ["--max_train_steps", "3", "--checkpointing_steps", "3", "--r1_interval", "2", "--mixed_precision", "bf16"]
    train(run_python, "vaegan", output_dir, "--dataset_name", sources["saved"], *flags)
    assert_complete_run(output_dir, VAEGAN, 3)
    config = json.loads((output_dir / "config.json").read_text())
    assert config["likelihood"] == "features" and config["auto_map"] == {"AutoModel": "vaegan.VAEGAN"}
    assert "feature loss weight (gamma)" in (output_dir / "README.md").read_text()


@pytest.mark.parametrize(("script", "model_class"), [("vae", VAE), ("vaegan", VAEGAN)])
def test_eval_steps_log_sample_quality_and_write_it_into_the_card(run_python, sources, tmp_path, script, model_class):
    output_dir = tmp_path / script
    flags = ["--max_train_steps", "3", "--checkpointing_steps", "3", "--eval_steps", "2", "--eval_num_samples", "20"]
    train(run_python, script, output_dir, "--dataset_name", sources["npz"], *flags, "--report_to", "tensorboard")
    assert_complete_run(output_dir, model_class, 3)
    logged = logged_scalars(output_dir / "logs")
    assert [step for step, _ in logged["eval/fid"]] == [2, 3]  # every 2 steps and at the end
    assert {"eval/kid_mean", "eval/precision", "eval/recall", "eval/negative_elbo", "eval/nll"} <= logged.keys()
    assert all(value >= 0 for _, value in logged["eval/fid"])
    card = (output_dir / "README.md").read_text()
    final_fid = logged["eval/fid"][-1][1]
    assert f"| FID (packaged Fashion-MNIST classifier features) | {final_fid:.3g} |" in card
    assert "20 generated images against the 16 held-out images of the `train` split" in card
    card_text = card.split("\n---\n", 1)[1]  # the metadata's model-index repeats every figure
    assert card_text.count("negative ELBO (nats per image)") == 1  # likelihoods once, from the held-out evaluation


@pytest.mark.slow
@pytest.mark.parametrize("source", ["npz", "folder", "saved"])
@pytest.mark.parametrize(
    ("script", "model_class", "flags"),
    [
        ("vae", VAE, ["--likelihood", "laplace", "--mixed_precision", "bf16"]),
        ("vae", AutoEncoder, ["--model_type", "autoencoder"]),
        ("vaegan", VAEGAN, ["--likelihood", "gaussian", "--loss", "hinge", "--gradient_accumulation_steps", "2"]),
    ],
)
def test_every_model_trains_from_every_source(run_python, sources, tmp_path, script, model_class, flags, source):
    flags = [*flags, "--max_train_steps", "2", "--checkpointing_steps", "2"]
    train(run_python, script, tmp_path / "run", "--dataset_name", sources[source], *flags)
    assert_complete_run(tmp_path / "run", model_class, 2)


@pytest.mark.slow
def test_push_to_hub_uploads_the_model_card_and_grid(run_python, sources, tmp_path, unique_repo_id):
    from huggingface_hub import HfApi

    flags = ["--max_train_steps", "2", "--push_to_hub", "--hub_model_id", unique_repo_id]
    train(run_python, "vaegan", tmp_path / "run", "--dataset_name", sources["npz"], *flags)
    files = set(HfApi().list_repo_files(unique_repo_id))
    assert {WEIGHTS, "config.json", "README.md", "samples.png", "vaegan.py", "vae.py", "discriminator.py"} <= files
    assert not any(name.startswith(("checkpoint-", "samples/", "logs/")) for name in files)


# Resuming


@pytest.mark.slow
@pytest.mark.parametrize("script", ["vae", "vaegan"])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(run_python, sources, tmp_path, script):
    flags = ["--dataset_name", sources["npz"], "--max_train_steps", "6", "--checkpointing_steps", "2"]
    flags += ["--sample_steps", "3", "--ema_decay", "0.9", "--kl_warmup_steps", "4"]
    if script == "vaegan":
        flags += ["--r1_interval", "2"]
    train(run_python, script, tmp_path / "straight", *flags)

    interrupted = tmp_path / "interrupted"
    command = [sys.executable, str(SCRIPTS[script]), "--output_dir", str(interrupted), *TINY, *flags]
    crashed = kill_when(command, interrupted / "checkpoint-4")
    assert crashed.returncode == -9 and not (interrupted / WEIGHTS).exists()
    resumed_run = train(run_python, script, interrupted, *flags, "--resume_from_checkpoint", "latest")
    assert f"Resumed from {interrupted / 'checkpoint-4'} (step 4" in resumed_run.stderr

    straight, resumed = load_file(tmp_path / "straight" / WEIGHTS), load_file(interrupted / WEIGHTS)
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)


# Argument errors


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"train_{name}_script", SCRIPTS[name])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("script", "flags", "message"),
    [
        ("vae", ["--resolution", "48"], "--resolution must be one of"),
        ("vae", ["--beta", "-1"], "--beta must be"),
        ("vae", ["--kl_warmup_steps", "-2"], "--kl_warmup_steps"),
        ("vae", ["--num_sample_images", "1"], "--num_sample_images"),
        ("vae", ["--likelihood", "features"], "invalid choice"),
        ("vaegan", ["--loss", "wgan-gp"], "invalid choice"),
        ("vaegan", ["--feature_loss_weight", "-1"], "--feature_loss_weight"),
        ("vaegan", ["--latent_dim", "0"], "--latent_dim must be a positive integer"),
        ("vaegan", ["--eval_steps", "-1"], "--eval_steps must be >= 0"),
        ("vae", ["--eval_steps", "10", "--model_type", "autoencoder"], "--eval_steps measures samples from the prior"),
    ],
)
def test_bad_flags_are_named(capsys, script, flags, message):
    with pytest.raises(SystemExit):
        load_script(script).parse_args(["--dataset_name", "x.npz", *flags])
    assert message in capsys.readouterr().err


def test_too_many_validation_images_is_a_clear_error(run_python, sources, tmp_path):
    result = train(run_python, "vae", tmp_path / "run", "--dataset_name", sources["npz"],
                   "--num_validation_images", "60", check=False)  # fmt: skip
    assert result.returncode != 0 and "--num_validation_images 60 would leave no training images" in result.stderr


# Helpers


def test_kl_warmup_is_linear_then_constant():
    assert [kl_weight(step, 0.5, 4) for step in (1, 2, 4, 10)] == [0.125, 0.25, 0.5, 0.5]
    assert kl_weight(1, 0.5, 0) == 0.5


@pytest.mark.parametrize(("pairs", "rows"), [(1, 1), (4, 2), (8, 4), (32, 8), (6, 3), (7, 1)])
def test_grid_rows_keep_pairs_together_and_square(pairs, rows):
    assert _grid_rows(pairs) == rows


@pytest.fixture
def accelerator():
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


def test_reconstruction_grid_shows_pairs_and_prior_samples(accelerator):
    held_out = torch.rand(10, 1, 28, 28) * 2 - 1
    inputs = create_vae_sample_inputs(accelerator, held_out, num_images=8, latent_dim=4, seed=0)
    assert inputs.images.shape == (4, 1, 28, 28) and inputs.noise.shape == (8, 4)
    vae = VAE(latent_dim=4, base_channels=4).eval()
    grid = reconstruction_grid(vae, inputs)
    assert grid.size == (28 * (4 + 1 + 4), 28 * 2)  # 2 rows of 2 pairs, a gap, 2 rows of 4 samples
    first_image = ((held_out[0, 0] + 1) * 127.5).numpy()
    assert np.abs(np.asarray(grid)[:28, :28, 0].astype(float) - first_image).max() <= 1
    # Another run (accelerator): each checkpoints its own "sample_inputs".
    autoencoder_inputs = create_vae_sample_inputs(Accelerator(cpu=True), held_out, num_images=8, latent_dim=0, seed=0)
    assert reconstruction_grid(AutoEncoder(latent_dim=4, base_channels=4).eval(), autoencoder_inputs).size == (
        28 * 4,
        28 * 2,
    )


def test_vaegan_step_routes_gradients_as_in_larsen_et_al(accelerator):
    """Encoder: grad of beta * KL + L; decoder: grad of gamma * L + adversarial (reconstructions and prior samples);
    L the feature reconstruction term under the discriminator after its own update."""
    torch.manual_seed(0)
    vaegan = VAEGAN(latent_dim=3, base_channels=4, discriminator_base_channels=4, norm_type="none")
    before = copy.deepcopy(vaegan)
    learning_rate, beta, gamma = 0.1, 0.7, 0.3
    objective = VAEGANObjective(vaegan.vae, pixel_likelihood=False)
    vae_optimizer = torch.optim.SGD(vaegan.vae.parameters(), lr=learning_rate)
    discriminator_optimizer = torch.optim.SGD(vaegan.discriminator.parameters(), lr=learning_rate)
    vae_network = Network.prepare(accelerator, objective, vae_optimizer)
    discriminator = Network.prepare(accelerator, vaegan.discriminator, discriminator_optimizer)
    trainer = VAEGANTrainer(
        accelerator, vae_network, discriminator,
        feature_loss_weight=gamma, beta=beta, rng=torch.Generator().manual_seed(1),
    )  # fmt: skip
    real = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    logs = trainer.train_step({"pixel_values": real}, step=1)

    # The same step by the book, with separate gradients, against the updated discriminator.
    vae, rng = before.vae, torch.Generator().manual_seed(1)
    prior_latents = torch.randn(4, 3, generator=rng)
    posterior = vae.encode(real).latent_dist
    reconstruction = vae.decode(posterior.sample(generator=rng)).sample
    judged = vaegan.discriminator(torch.cat([real, reconstruction, vae.decode(prior_latents).sample]))
    real_features, reconstruction_features, _ = judged.features.chunk(3)
    _, reconstruction_logits, prior_logits = judged.logits.chunk(3)
    feature_nll = feature_reconstruction_nll(real_features, reconstruction_features).mean()
    adversarial = generator_loss(reconstruction_logits, "non-saturating") + generator_loss(
        prior_logits, "non-saturating"
    )
    encoder = [*vae.encoder.parameters(), *vae.to_posterior.parameters()]
    decoder = list(vae.decoder.parameters())
    encoder_gradients = torch.autograd.grad(beta * posterior.kl().mean() + feature_nll, encoder, retain_graph=True)
    decoder_gradients = torch.autograd.grad(gamma * feature_nll + adversarial, decoder)
    assert logs["reconstruction_nll"] == pytest.approx(feature_nll.item(), rel=1e-5)
    encoder_after = [*vaegan.vae.encoder.parameters(), *vaegan.vae.to_posterior.parameters()]
    for old, gradient, new in zip([*encoder, *decoder], [*encoder_gradients, *decoder_gradients],
                                  [*encoder_after, *vaegan.vae.decoder.parameters()], strict=True):  # fmt: skip
        assert torch.allclose(new, old - learning_rate * gradient, atol=1e-6, rtol=1e-4)
    discriminator_pairs = zip(before.discriminator.parameters(), vaegan.discriminator.parameters(), strict=True)
    assert any(not torch.equal(old, new) for old, new in discriminator_pairs)
