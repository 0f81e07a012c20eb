"""Tests of anomaly detection: every score of `hf_vaegan.metrics.anomaly_scores` on a tiny `TransformationVAE`, the
transformations of its head, the threshold calibrated on held-out normal images (metrics and `VAEPipeline`), and the
one-class benchmark end to end on the fixture."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_vaegan import VAE, VAEPipeline
from hf_vaegan.metrics import ANOMALY_METHODS, AnomalyThreshold, anomaly_scores, auroc, calibrate_threshold
from hf_vaegan.models import TransformationVAE
from hf_vaegan.training.anomaly import train_autoencoder, train_transformation_vae

FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"
TINY = {"latent_dim": 4, "base_channels": 8}
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES.parent / "benchmarks"))

import anomaly_auroc  # noqa: E402


@pytest.fixture(scope="module")
def splits() -> dict[str, torch.Tensor]:
    """The 1k fixture (images `(N, 1, 28, 28)` in [-1, 1]) cut into training, calibration and test sets of normal
    garments; the model never sees the last two."""
    with np.load(FIXTURE, allow_pickle=False) as data:
        images = torch.from_numpy(data["images"]).float().unsqueeze(1) / 127.5 - 1
    return {"train": images[:400], "calibration": images[400:700], "test": images[700:]}


@pytest.fixture(scope="module")
def detector(splits) -> TransformationVAE:
    return train_transformation_vae(
        splits["train"], num_steps=30, batch_size=64, learning_rate=3e-3, num_reference_images=300, **TINY
    )


@pytest.mark.parametrize("method", ANOMALY_METHODS)
def test_every_score_is_finite_and_flags_inverted_garments(detector, splits, method):
    normal = splits["test"][:100]
    inverted = -normal  # dark garments on a white background: nothing like the training images
    generator = torch.Generator().manual_seed(0)
    scores = anomaly_scores(detector, torch.cat([normal, inverted]), method, generator=generator)
    assert scores.shape == (200,) and torch.isfinite(scores).all()
    assert auroc(scores, torch.arange(200) >= 100) > 0.9, method


@pytest.mark.parametrize("method", ["transformation", "mahalanobis", "mahalanobis_knn"])
def test_head_scores_are_deterministic(detector, splits, method):
    images = splits["test"][:8]
    first, second = (anomaly_scores(detector, images, method) for _ in range(2))
    assert torch.equal(first, second)
    if method != "mahalanobis_knn":  # standardised: below 0 for images more typical than the average
        assert (first >= 0).all()


@pytest.mark.parametrize("method", ["transformation", "mahalanobis", "mahalanobis_knn"])
def test_head_scores_need_the_head(splits, method):
    with pytest.raises(ValueError, match="TransformationVAE"):
        anomaly_scores(VAE(**TINY), splits["test"][:2], method)


def test_mahalanobis_needs_fitted_normal_features(detector, splits):
    unfitted = TransformationVAE(**TINY)
    with pytest.raises(ValueError, match="fit_normal_features"):
        anomaly_scores(unfitted, splits["test"][:2], "mahalanobis")
    with pytest.raises(ValueError, match="more images"):
        unfitted.fit_normal_features(splits["train"][:10])
    # fitted on the training images: they sit closer to their own Gaussian than new images of the same kind do
    train, test = (anomaly_scores(detector, splits[name][:100], "mahalanobis") for name in ("train", "test"))
    assert train.mean() < test.mean()
    assert detector.anomaly_features(splits["test"][:3]).shape == (3, 4 + 4 * 4)


def test_mahalanobis_knn_keeps_normal_images_and_standardises_on_them(detector, splits):
    references = detector.reference_images
    assert references.dtype == torch.uint8 and references.shape == (300, 1, 28, 28)
    kept = references.float() / 127.5 - 1
    # every kept image is one of the training images (8-bit, as the fixture's pixels are); cdist's matrix-product
    # path leaves about 0.01 of rounding at distance 0, where normal images lie about 10 apart
    nearest_training = torch.cdist(kept.flatten(1), splits["train"].flatten(1)).min(dim=1).values
    assert nearest_training.max() < 0.05
    torch.testing.assert_close(detector.nearest_reference_distance(kept[:5]), torch.zeros(5), atol=0.05, rtol=0)
    # the distance to the nearest other kept image, not 0, sets the scale of the nearest-neighbour term
    (mahalanobis_mean, mahalanobis_std), (knn_mean, knn_std) = detector.normal_score_statistics.tolist()
    assert mahalanobis_std > 0 and knn_mean > 0 and knn_std > 0
    normal, inverted = splits["test"][:50], -splits["test"][:50]
    knn = [detector.nearest_reference_distance(images) for images in (normal, inverted)]
    assert knn[0].mean() < knn[1].mean()
    expected = (detector.feature_mahalanobis(normal) - mahalanobis_mean) / mahalanobis_std
    expected += (knn[0] - knn_mean) / knn_std
    torch.testing.assert_close(detector.mahalanobis_knn(normal), expected)


def test_mahalanobis_knn_needs_fitted_reference_images(splits):
    with pytest.raises(ValueError, match="keeps no normal images"):
        anomaly_scores(TransformationVAE(**TINY), splits["test"][:2], "mahalanobis_knn")
    unfitted = TransformationVAE(num_reference_images=50, **TINY)
    with pytest.raises(ValueError, match="fit_normal_features"):
        anomaly_scores(unfitted, splits["test"][:2], "mahalanobis_knn")
    with pytest.raises(ValueError, match="at least that many normal images, got 40"):
        unfitted.fit_normal_features(splits["train"][:40])
    with pytest.raises(ValueError, match="0 or at least 2"):
        TransformationVAE(num_reference_images=1, **TINY)
    with pytest.raises(ValueError, match="num_reference_images"):
        TransformationVAE(num_reference_images=-3, **TINY)


def test_transformations_turn_and_shift():
    vae = TransformationVAE(shift_pixels=3, **TINY)
    assert vae.num_transformations == 20
    image = torch.full((1, 1, 28, 28), -1.0)
    image[0, 0, 10, 5] = 1.0
    assert torch.equal(vae.transform(image, 0), image)
    assert torch.equal(vae.transform(image, 1), torch.rot90(image, 1, dims=(2, 3)))
    shifted_right = vae.transform(image, 4)  # shift (3, 0), no turn
    assert shifted_right[0, 0, 10, 8] == 1.0 and shifted_right.sum() == image.sum()
    batch = torch.cat([image, image])
    assert torch.equal(vae.transform(batch, torch.tensor([0, 1]))[1], vae.transform(image, 1)[0])
    with pytest.raises(ValueError, match="transformations"):
        vae.transform(image, 20)
    with pytest.raises(ValueError, match="shift_pixels"):
        TransformationVAE(shift_pixels=14, **TINY)


def test_transformation_vae_round_trip(tmp_path, detector, splits):
    detector.save_pretrained(tmp_path)
    loaded = TransformationVAE.from_pretrained(tmp_path)
    images = splits["test"][:4]
    # the fitted Gaussian, the kept images and the scores' statistics are saved with the weights
    assert loaded.reference_images.dtype == torch.uint8
    for method in ("transformation", "mahalanobis", "mahalanobis_knn"):
        torch.testing.assert_close(anomaly_scores(loaded, images, method), anomaly_scores(detector, images, method))


def test_training_changes_the_detector(splits):
    # two steps from the same seed give the same model; more steps give another
    one = train_transformation_vae(splits["train"], num_steps=2, batch_size=64, **TINY)
    again = train_transformation_vae(splits["train"], num_steps=2, batch_size=64, **TINY)
    more = train_transformation_vae(splits["train"], num_steps=3, batch_size=64, **TINY)
    weights = [model.transformation_head.weight for model in (one, again, more)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    autoencoder = train_autoencoder(splits["train"], num_steps=2, batch_size=64, **TINY)
    assert not autoencoder.training
    with pytest.raises(ValueError, match="cannot fill a batch"):
        train_autoencoder(splits["train"][:10], num_steps=2, batch_size=64, **TINY)


@pytest.mark.parametrize("method", ["mahalanobis", "mahalanobis_knn"])
def test_threshold_holds_its_false_positive_rate_on_held_out_normal_images(detector, splits, method):
    calibration = anomaly_scores(detector, splits["calibration"], method)
    threshold = calibrate_threshold(calibration, false_positive_rate=0.1, method=method)
    assert (calibration.numpy() > threshold.threshold).mean() <= 0.1
    # new normal images (300): flagged at about the chosen rate (sampling error ~0.025 for each of the two sets)
    test = anomaly_scores(detector, splits["test"], method)
    assert 0.03 <= (test.numpy() > threshold.threshold).mean() <= 0.2
    assert threshold.num_images == 300 and 85 <= threshold.percentile(threshold.threshold) <= 95


@pytest.mark.parametrize(
    ("scores", "rate", "message"),
    [
        (np.ones(50), 0.01, "at least 100"),
        (np.ones(50), 1.0, "in \\(0, 1\\)"),
        (np.array([1.0, np.nan] * 50), 0.1, "finite"),
    ],
)
def test_threshold_refuses_bad_calibration(scores, rate, message):
    with pytest.raises(ValueError, match=message):
        calibrate_threshold(scores, rate)


def test_pipeline_detects_anomalies_against_a_calibrated_threshold(detector, splits):
    pipe = VAEPipeline(detector)
    assert pipe.default_anomaly_method == "mahalanobis_knn"
    assert VAEPipeline(TransformationVAE(**TINY)).default_anomaly_method == "mahalanobis"
    assert VAEPipeline(VAE(**TINY)).default_anomaly_method == "elbo"
    threshold = pipe.calibrate_anomaly_threshold(splits["calibration"], false_positive_rate=0.05)
    assert isinstance(threshold, AnomalyThreshold) and threshold.method == "mahalanobis_knn"
    normal = splits["test"][:50]
    result = pipe.detect_anomalies(torch.cat([normal, -normal]), threshold)
    assert result.scores.shape == (100,) and result.is_anomaly.dtype == bool
    assert result.is_anomaly[:50].mean() <= 0.2 and result.is_anomaly[50:].mean() >= 0.9
    with pytest.raises(TypeError, match="AnomalyThreshold"):
        pipe.detect_anomalies(normal, threshold.threshold)
    with pytest.raises(ValueError, match="false_positive_rate"):
        pipe.calibrate_anomaly_threshold(splits["calibration"], false_positive_rate=-0.1)


def test_one_class_benchmark_reports_every_score(tmp_path, capsys):
    with np.load(FIXTURE, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    for name, part in (("train", slice(0, 700)), ("test", slice(700, None))):
        np.savez(tmp_path / f"{name}.npz", images=images[part], labels=labels[part])
    arguments = ["--train_data", str(tmp_path / "train.npz"), "--test_data", str(tmp_path / "test.npz")]
    arguments += ["--classes", "1", "7", "--num_steps", "3", "--train_batch_size", "32", "--base_channels", "8"]
    anomaly_auroc.main(anomaly_auroc.parse_args(arguments))
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["protocol"] == "one-class" and set(report["per_class"]) == {"1", "7"}
    for row in [report["mean_auroc"], *report["per_class"].values()]:
        assert set(row) == set(anomaly_auroc.ONE_CLASS_SCORES) and all(0 <= value <= 1 for value in row.values())
    # trousers and sneakers stand apart from the other classes' pixels even after three steps of training
    assert report["mean_auroc"]["mahalanobis_knn"] > 0.8


def test_training_script_saves_a_detector_that_keeps_reference_images(tmp_path):
    spec = importlib.util.spec_from_file_location("train_anomaly_detector", EXAMPLES / "train_anomaly_detector.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with np.load(FIXTURE, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    np.savez(tmp_path / "train.npz", images=images[:500], labels=labels[:500])
    np.savez(tmp_path / "validation.npz", images=images[500:], labels=labels[500:])
    output_dir = tmp_path / "detector"
    arguments = ["--train_data", str(tmp_path / "train.npz"), "--validation_data", str(tmp_path / "validation.npz")]
    arguments += ["--output_dir", str(output_dir), "--num_steps", "3", "--train_batch_size", "32"]
    arguments += ["--base_channels", "8", "--latent_dim", "4", "--num_reference_images", "200"]
    script.main(script.parse_args(arguments))
    pipe = VAEPipeline.from_pretrained(output_dir)
    assert pipe.vae.reference_images.shape == (200, 1, 28, 28) and pipe.default_anomaly_method == "mahalanobis_knn"
    scores = pipe.anomaly_scores(torch.from_numpy(images[500:520]).float().unsqueeze(1) / 127.5 - 1)
    assert scores.shape == (20,) and np.isfinite(scores).all()
    card = (output_dir / "README.md").read_text()
    assert "method `mahalanobis_knn`" in card and "AUROC vs inverted garments" in card
