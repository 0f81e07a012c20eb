"""The `hf-vaegan` console script."""

import json
import re

import numpy as np
import PIL.Image
import pytest
import torch

from hf_vaegan import VAE, Discriminator, Generator
from hf_vaegan.auto import load_pretrained
from hf_vaegan.cli import main

TINY = {"base_channels": 4}


@pytest.fixture(scope="module")
def conditional_gan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gan")
    torch.manual_seed(0)
    Generator(latent_dim=8, num_classes=10, **TINY).save_pretrained(folder)
    return str(folder)


def test_load_pretrained_picks_the_saved_class(tmp_path):
    VAE(latent_dim=4, **TINY).save_pretrained(tmp_path)
    assert type(load_pretrained(tmp_path)) is VAE


def test_sample_npz_with_labels_is_reproducible(conditional_gan, tmp_path):
    for name in ("a.npz", "b.npz"):
        assert (
            main(
                [
                    "sample",
                    conditional_gan,
                    "--num-images",
                    "25",
                    "--all-classes",
                    "--output",
                    str(tmp_path / name),
                    "--batch-size",
                    "7",
                ]
            )
            == 0
        )
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert a["images"].shape == (25, 28, 28) and a["images"].dtype == np.uint8
    assert np.array_equal(a["labels"], np.arange(25) % 10)
    assert np.array_equal(a["images"], b["images"])


def test_sample_png_grid_has_a_column_per_class(conditional_gan, tmp_path):
    output = tmp_path / "grid.png"
    assert main(["sample", conditional_gan, "--num-images", "20", "--all-classes", "--output", str(output)]) == 0
    assert PIL.Image.open(output).size == (10 * 28, 2 * 28)


def test_sample_from_a_vae(tmp_path):
    VAE(latent_dim=4, **TINY).save_pretrained(tmp_path / "vae")
    assert main(["sample", str(tmp_path / "vae"), "--num-images", "4", "--output", str(tmp_path / "v.png")]) == 0
    assert PIL.Image.open(tmp_path / "v.png").size == (56, 56)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--output", "x.jpg", "--class-label", "1"], "must end in"),
        (["--output", "x.png"], "class-conditional"),
        (["--output", "x.png", "--class-label", "10"], r"\[0, 9\]"),
        (["--output", "x.png", "--class-label", "1", "--num-images", "0"], ">= 1"),
    ],
)
def test_sample_errors_are_clear(conditional_gan, tmp_path, capsys, extra, message):
    assert main(["sample", conditional_gan, *extra]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_sample_refuses_models_that_do_not_draw(tmp_path, capsys):
    Discriminator(**TINY).save_pretrained(tmp_path)
    assert main(["sample", str(tmp_path), "--output", str(tmp_path / "x.png")]) == 2
    assert "do not draw images" in capsys.readouterr().err


def test_console_script_is_installed(run_python, tmp_path, conditional_gan):
    result = run_python(
        "-m",
        "hf_vaegan.cli",
        "sample",
        conditional_gan,
        "--class-label",
        "3",
        "--num-images",
        "4",
        "--output",
        str(tmp_path / "g.png"),
    )
    assert "wrote 4 images" in result.stdout


def test_evaluate_prints_one_json_line(conditional_gan, capsys):
    fixture = "tests/fixtures/fashion_mnist_1k.npz"
    assert main(["evaluate", conditional_gan, "--data", fixture, "--num-samples", "200"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip())
    assert {"fid", "kid_mean", "kid_std", "precision", "recall", "class_accuracy"} <= set(metrics)
    assert metrics["num_samples"] == 200 and 0 <= metrics["class_accuracy"] <= 1 and metrics["fid"] > 0


def test_evaluate_takes_a_hub_dataset_and_shows_progress(conditional_gan, unique_repo_id, capsys):
    """`--data user/name` loads the split with `datasets.load_dataset` (here from the local Hub), as
    `--data zalando-datasets/fashion_mnist` would; the generated images count up on a progress bar."""
    import datasets

    arrays = np.load("tests/fixtures/fashion_mnist_1k.npz")
    images = [PIL.Image.fromarray(image) for image in arrays["images"][:300]]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    rows = {"image": images, "label": arrays["labels"][:300].tolist()}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows, features=features)}).push_to_hub(unique_repo_id)
    capsys.readouterr()
    assert main(["evaluate", conditional_gan, "--data", unique_repo_id, "--num-samples", "200"]) == 0
    out, err = capsys.readouterr()
    metrics = json.loads(out.strip())
    assert metrics["data"] == unique_repo_id and metrics["split"] == "test" and metrics["fid"] > 0
    assert "generating" in err and "200/200" in err


def test_evaluate_reports_likelihoods_for_vaes(tmp_path, capsys):
    VAE(latent_dim=4, **TINY).save_pretrained(tmp_path)
    fixture = "tests/fixtures/fashion_mnist_1k.npz"
    args = ["--num-samples", "100", "--likelihood-images", "50", "--importance-samples", "4"]
    assert main(["evaluate", str(tmp_path), "--data", fixture, *args]) == 0
    metrics = json.loads(capsys.readouterr().out.strip())
    assert metrics["likelihood_images"] == 50 and metrics["nll"] <= metrics["negative_elbo"] + 1e-6


def test_evaluate_without_inception_says_what_to_install(conditional_gan, capsys):
    fixture = "tests/fixtures/fashion_mnist_1k.npz"
    assert main(["evaluate", conditional_gan, "--data", fixture, "--extractor", "inception"]) == 2
    assert "torch-fidelity" in capsys.readouterr().err
