"""Tests of hf_vaegan.metrics: known answers for FID, KID, precision/recall, AUROC and the VAE likelihood bounds."""

import importlib.util
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_vaegan import VAE, Generator
from hf_vaegan.commands import make_extractor
from hf_vaegan.data import GARMENT_LABELS, make_garment
from hf_vaegan.metrics import (
    FashionClassifierFeatures,
    FeatureExtractor,
    InceptionV3Features,
    TransformersFeatures,
    anomaly_scores,
    auroc,
    cached_features,
    classification_accuracy,
    default_cache_dir,
    evaluate_generative,
    evaluate_model,
    evaluate_vae,
    feature_statistics,
    frechet_distance,
    importance_weighted_nll,
    is_classifier_folder,
    kernel_distance,
    leave_one_class_out_auroc,
    load_fashion_classifier,
    negative_elbo,
    precision_recall,
    reconstruction_error,
)
from hf_vaegan.metrics.features import FASHION_CLASSIFIER_PATH, GARMENT_CLASSIFIER_PATH
from hf_vaegan.models.fashion_classifier import FashionClassifier

FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"


@pytest.fixture(scope="module")
def fashion() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1k test-split fixture: images (1000, 1, 28, 28) in [-1, 1] and labels (1000,)."""
    with np.load(FIXTURE, allow_pickle=False) as data:
        images = torch.from_numpy(data["images"]).float().unsqueeze(1) / 127.5 - 1
        labels = torch.from_numpy(data["labels"].astype(np.int64))
    return images, labels


@pytest.fixture(scope="module")
def classifier_features() -> FashionClassifierFeatures:
    return FashionClassifierFeatures(device="cpu")


def halves(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of two disjoint class-balanced halves of the fixture."""
    first, second = [], []
    for c in range(10):
        index = torch.nonzero(labels == c).flatten()
        first.append(index[: len(index) // 2])
        second.append(index[len(index) // 2 :])
    return torch.cat(first), torch.cat(second)


class PooledPixels(FeatureExtractor):
    """A cheap deterministic extractor (4x4 average-pooled pixels) that counts the images it has embedded."""

    def __init__(self):
        super().__init__("pooled-pixels", batch_size=300, device="cpu")
        self.images_seen = 0

    def extract_batch(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += len(images)
        return F.avg_pool2d(images, 4).flatten(1)


# Fréchet distance


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mean1, mean2 = rng.normal(size=8), rng.normal(size=8)
    var1, var2 = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
    expected = ((mean1 - mean2) ** 2).sum() + (var1 + var2 - 2 * np.sqrt(var1 * var2)).sum()
    assert frechet_distance(mean1, np.diag(var1), mean2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_sqrtm_for_full_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 12)), rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    (mean1, cov1), (mean2, cov2) = feature_statistics(a), feature_statistics(b)
    covmean = linalg.sqrtm(cov1 @ cov2).real
    expected = ((mean1 - mean2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * covmean)
    assert frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_is_zero_and_finite_for_singular_covariances():
    features = np.random.default_rng(2).normal(size=(10, 64))  # 10 samples in 64-d: rank-9 covariance
    mean, cov = feature_statistics(features)
    assert frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-8)
    other_mean, other_cov = feature_statistics(features[:, ::-1].copy())
    assert math.isfinite(frechet_distance(mean, cov, other_mean, other_cov))


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="cov2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


# KID and precision/recall on synthetic features


def test_kid_is_unbiased_for_equal_distributions():
    rng = np.random.default_rng(3)
    estimates = [
        kernel_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)), num_subsets=5, seed=i)[0]
        for i in range(40)
    ]
    assert min(estimates) < 0  # an unbiased estimator of a zero MMD takes negative values
    assert abs(np.mean(estimates)) < 3 * np.std(estimates) / np.sqrt(len(estimates))
    shifted, _ = kernel_distance(rng.normal(size=(200, 16)), rng.normal(0.5, size=(200, 16)))
    assert shifted > 10 * np.std(estimates)


def test_kid_subsets_are_reproducible_and_spread():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    mean, std = kernel_distance(real, fake, subset_size=50, seed=0)
    assert std > 0
    assert kernel_distance(real, fake, subset_size=50, seed=0) == (mean, std)
    assert kernel_distance(real, fake, subset_size=50, seed=1) != (mean, std)


def test_precision_recall_known_answers():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(300, 8))
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    half_far = np.concatenate([real[:150], real[150:] + 100.0])
    precision, recall = precision_recall(real, half_far)
    assert precision == pytest.approx(0.5)
    assert 0.5 <= recall < 1.0  # the far half covers no real sample


def test_precision_recall_rejects_k_too_large():
    with pytest.raises(ValueError, match="`k`"):
        precision_recall(np.zeros((3, 2)), np.ones((3, 2)), k=3)


# The packaged classifier


def test_packaged_classifier_is_small_and_accurate(fashion, classifier_features):
    weights = list(FASHION_CLASSIFIER_PATH.glob("*.safetensors"))
    assert len(weights) == 1 and weights[0].stat().st_size < 2_000_000
    assert "Test accuracy" in (FASHION_CLASSIFIER_PATH / "README.md").read_text()
    model = load_fashion_classifier(device="cpu")
    assert not model.training
    images, labels = fashion
    out = model(images[:4])
    assert out.logits.shape == (4, 10) and out.features.shape == (4, model.config.feature_dim)
    assert classification_accuracy(images, labels, classifier_features) >= 0.90
    assert classification_accuracy(images, labels.roll(100), classifier_features) < 0.3


def test_classifier_features_accept_rgb_and_other_sizes(fashion, classifier_features):
    images = fashion[0][:8]
    grey = classifier_features(images)
    rgb = classifier_features(images.expand(-1, 3, -1, -1))
    assert torch.allclose(grey, rgb, atol=1e-4)
    assert classifier_features(F.interpolate(images, size=32, mode="bilinear")).shape == grey.shape


def test_extractor_rejects_bad_input(classifier_features):
    with pytest.raises(ValueError, match=r"\(batch, 1 or 3, height, width\)"):
        classifier_features(torch.zeros(2, 28, 28))
    with pytest.raises(TypeError, match="float"):
        classifier_features(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[-1, 1\], got values in \[0, 255\]"):
        classifier_features(torch.full((2, 1, 28, 28), 255.0).index_fill(0, torch.tensor([0]), 0.0))


# evaluate_generative with the classifier's features


def test_evaluate_generative_on_itself_is_perfect(fashion, classifier_features):
    images = fashion[0]
    scores = evaluate_generative(images, images, classifier_features, kid_num_subsets=10)
    assert scores["fid"] == pytest.approx(0.0, abs=1e-6)
    # identical sets: the cross term includes the pairs (x, x) that the within terms leave out, so KID < 0
    assert scores["kid_mean"] < 0
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0


def test_evaluate_generative_ranks_degraded_sets_worse(fashion, classifier_features):
    images, labels = fashion
    reference, held_out = halves(labels)
    real = images[reference]
    clean = images[held_out]
    blurred = F.avg_pool2d(clean, 3, stride=1, padding=1, count_include_pad=False)
    shifted = torch.roll(clean, shifts=(4, 4), dims=(2, 3))
    # equal sizes: FID depends on the sample size; 45 images of each class vs 50 of each class but the first
    clean_balanced = torch.cat([clean[labels[held_out] == c][:45] for c in range(10)])
    class_dropped = clean[labels[held_out] != 0]

    def evaluate(fake: torch.Tensor) -> dict[str, float]:
        return evaluate_generative(fake, real, classifier_features, kid_subset_size=400, kid_num_subsets=20)

    scores = {name: evaluate(fake) for name, fake in [("clean", clean), ("blurred", blurred), ("shifted", shifted)]}
    for degraded in ("blurred", "shifted"):
        assert scores[degraded]["fid"] > 2 * scores["clean"]["fid"], scores
        assert scores[degraded]["kid_mean"] > scores["clean"]["kid_mean"] + 3 * scores["clean"]["kid_std"], scores
    balanced, dropped = evaluate(clean_balanced), evaluate(class_dropped)
    assert dropped["fid"] > 1.5 * balanced["fid"], (balanced, dropped)
    assert dropped["kid_mean"] > balanced["kid_mean"], (balanced, dropped)
    assert dropped["recall"] < balanced["recall"], (balanced, dropped)


def test_evaluate_generative_draws_from_a_sampler_in_batches(fashion, classifier_features):
    images = fashion[0][:300]
    calls = []

    def sampler(n: int) -> torch.Tensor:
        calls.append(n)
        return images[sum(calls) - n : sum(calls)]

    from_sampler = evaluate_generative(sampler, images, classifier_features, num_samples=300, batch_size=128)
    from_tensor = evaluate_generative(images, images, classifier_features)
    assert calls == [128, 128, 44]
    assert from_sampler == pytest.approx(from_tensor)
    with pytest.raises(ValueError, match="returned 3"):
        evaluate_generative(lambda n: images[:3], images, classifier_features, num_samples=10)


# Caching of real features


def test_real_features_are_cached_and_reused(tmp_path, fashion):
    images = fashion[0][:600]
    extractor = PooledPixels()
    first = evaluate_generative(images, images, extractor, dataset="fashion_mnist", split="test", cache_dir=tmp_path)
    assert extractor.images_seen == 1200  # real + fake
    second = evaluate_generative(images, images, extractor, dataset="fashion_mnist", split="test", cache_dir=tmp_path)
    assert extractor.images_seen == 1800  # fake only: the real features came from the cache
    assert first == second
    assert [p.name for p in tmp_path.iterdir()] == ["fashion_mnist-test-pooled-pixels-600.npz"]


@pytest.mark.parametrize("corruption", ["truncate", "flip_bytes", "garbage"])
def test_corrupt_cache_is_detected_and_recomputed(tmp_path, fashion, caplog, corruption):
    images = fashion[0][:100]
    extractor = PooledPixels()
    expected = cached_features(images, extractor, "fm", "test", tmp_path)
    (path,) = tmp_path.iterdir()
    data = path.read_bytes()
    corrupted = {
        "truncate": data[: len(data) // 2],
        "flip_bytes": data[:1000] + bytes(b ^ 0xFF for b in data[1000:1100]) + data[1100:],
        "garbage": b"not a zip file",
    }[corruption]
    path.write_bytes(corrupted)
    with caplog.at_level(logging.WARNING, logger="hf_vaegan.metrics.cache"):
        recomputed = cached_features(images, extractor, "fm", "test", tmp_path)
    assert extractor.images_seen == 200
    assert "recomputing" in caplog.text
    assert torch.equal(recomputed, expected)
    cached_features(images, extractor, "fm", "test", tmp_path)  # the rewritten file is valid again
    assert extractor.images_seen == 200
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_cache_detects_other_images_under_the_same_key(tmp_path, fashion):
    extractor = PooledPixels()
    cached_features(fashion[0][:100], extractor, "fm", "test", tmp_path)
    other = cached_features(fashion[0][100:200], extractor, "fm", "test", tmp_path)
    assert extractor.images_seen == 200
    assert torch.equal(other, extractor(fashion[0][100:200]))


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_VAEGAN_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "stats"
    monkeypatch.delenv("HF_VAEGAN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "hf_vaegan" / "stats"


# Other feature extractors


def save_tiny_dinov2(folder: Path) -> None:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
    )
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)


def save_tiny_clip(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    tiny = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    config = CLIPConfig(
        text_config={**tiny, "vocab_size": 100},
        vision_config={**tiny, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)


def test_transformers_extractor_works_offline_with_a_local_dinov2(tmp_path, fashion):
    save_tiny_dinov2(tmp_path / "tiny-dinov2")
    extractor = TransformersFeatures(tmp_path / "tiny-dinov2", device="cpu", batch_size=50)
    assert extractor.name == "tiny-dinov2"
    images = fashion[0][:120]
    features = extractor(images)
    assert features.shape == (120, 32) and features.dtype == torch.float32
    assert torch.allclose(features, extractor(images.expand(-1, 3, -1, -1)))  # grey is replicated to RGB
    assert not torch.allclose(features[0], features[1])
    scores = evaluate_generative(images, images, extractor, kid_num_subsets=5)
    assert scores["fid"] == pytest.approx(0.0, abs=1e-6) and scores["precision"] == 1.0


def test_transformers_extractor_uses_the_projected_clip_embedding(tmp_path, fashion):
    save_tiny_clip(tmp_path / "tiny-clip")
    extractor = TransformersFeatures(tmp_path / "tiny-clip", name="org/tiny-clip", device="cpu")
    assert extractor.name == "org--tiny-clip"
    assert extractor(fashion[0][:5]).shape == (5, 16)  # projection_dim, not the hidden size


@pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is not None, reason="torch-fidelity is installed")
def test_inception_extractor_says_what_to_install():
    with pytest.raises(ImportError, match=r"pip install torch-fidelity"):
        InceptionV3Features()


# VAE likelihoods and anomaly detection


@pytest.fixture(scope="module")
def tiny_vae(fashion) -> VAE:
    """A tiny VAE trained for a few steps on the fixture, so that its bounds are not trivially loose."""
    torch.manual_seed(0)
    vae = VAE(resolution=28, in_channels=1, latent_dim=4, base_channels=8)
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    images = fashion[0]
    for step in range(30):
        loss = vae.loss(images[(step * 64) % 1000 :][:64]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return vae.eval()


def test_iwae_bound_is_below_the_elbo_and_tightens_with_k(fashion, tiny_vae):
    images = fashion[0][::10]
    generator = torch.Generator().manual_seed(0)
    elbo = negative_elbo(tiny_vae, images, num_samples=20, generator=generator).mean()
    iwae = {k: importance_weighted_nll(tiny_vae, images, k, generator=generator).mean() for k in (1, 10, 100)}
    assert iwae[1] == pytest.approx(elbo.item(), rel=0.02)  # K = 1 is the ELBO (with a sampled KL)
    assert iwae[100] < iwae[10] < iwae[1]
    assert iwae[100] < elbo


def test_evaluate_vae_reports_nats_and_bits_per_dim(fashion, tiny_vae):
    tiny_vae.train()
    metrics = evaluate_vae(tiny_vae, fashion[0][:50], num_importance_samples=5)
    assert tiny_vae.training  # evaluation restores the mode it found
    tiny_vae.eval()
    assert metrics["nll"] < metrics["negative_elbo"]
    assert metrics["nll_bits_per_dim"] == pytest.approx(metrics["nll"] / (784 * math.log(2)))
    assert metrics["elbo_bits_per_dim"] == pytest.approx(metrics["negative_elbo"] / (784 * math.log(2)))
    assert 0 < metrics["reconstruction_mse"] < 4


def test_reconstruction_error_is_deterministic_and_per_image(fashion, tiny_vae):
    images = fashion[0][:20]
    errors = reconstruction_error(tiny_vae, images)
    assert errors.shape == (20,) and torch.equal(errors, reconstruction_error(tiny_vae, images))
    expected = (tiny_vae(images).sample - images).pow(2).mean(dim=(1, 2, 3))
    assert torch.allclose(errors, expected.detach(), atol=1e-6)


def test_auroc_known_rankings():
    labels = np.array([0, 0, 0, 1, 1])
    assert auroc(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), labels) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.7, 0.2, 0.1]), labels) == 0.0
    assert auroc(np.ones(5), labels) == 0.5
    assert auroc(torch.tensor([0.0, 1.0, 1.0, 1.0]), torch.tensor([False, False, True, True])) == pytest.approx(0.75)


def test_auroc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(6)
    scores, labels = rng.integers(0, 5, size=200).astype(float), rng.integers(0, 2, size=200)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    difference = positives[:, None] - negatives[None, :]
    expected = ((difference > 0).sum() + 0.5 * (difference == 0).sum()) / difference.size
    assert auroc(scores, labels) == pytest.approx(expected, rel=1e-12)


def test_auroc_rejects_single_class():
    with pytest.raises(ValueError, match="both classes"):
        auroc(np.arange(3.0), np.zeros(3))


def test_anomaly_scores(fashion, tiny_vae):
    images = fashion[0][:16]
    elbo = anomaly_scores(tiny_vae, images, "elbo", generator=torch.Generator().manual_seed(0))
    assert elbo.shape == (16,) and torch.allclose(
        elbo, negative_elbo(tiny_vae, images, generator=torch.Generator().manual_seed(0))
    )
    assert torch.equal(anomaly_scores(tiny_vae, images, "reconstruction"), reconstruction_error(tiny_vae, images))
    with pytest.raises(ValueError, match="method"):
        anomaly_scores(tiny_vae, images, "likelihood")


def test_leave_one_class_out_protocol(fashion):
    images, labels = fashion
    train, test = halves(labels)
    trained_on = {}

    def train_fn(train_images: torch.Tensor, held_out_class: int) -> VAE:
        trained_on[held_out_class] = train_images
        torch.manual_seed(held_out_class)
        vae = VAE(resolution=28, in_channels=1, latent_dim=4, base_channels=8)
        optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
        for step in range(40):
            vae.loss(train_images[(step * 64) % len(train_images) :][:64]).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return vae

    results = leave_one_class_out_auroc(
        train_fn, images[train], labels[train], images[test], labels[test], classes=(1, 8), method="reconstruction"
    )
    assert list(results) == [1, 8]
    for held_out, train_images in trained_on.items():
        expected = images[train][labels[train] != held_out]
        assert torch.equal(train_images, expected)
    # even after 40 steps, a model that never saw a class reconstructs it worse than the classes it saw
    assert all(0.5 < value <= 1.0 for value in results.values()), results


def test_train_classifier_script_saves_a_loadable_model_with_its_card(tmp_path):
    script = _load_example("train_classifier")
    with np.load(FIXTURE, allow_pickle=False) as data:
        np.savez(tmp_path / "train.npz", images=data["images"][:256], labels=data["labels"][:256])
        np.savez(tmp_path / "test.npz", images=data["images"][::10], labels=data["labels"][::10])
    output_dir = tmp_path / "classifier"
    script.main(
        ["--train_data", str(tmp_path / "train.npz"), "--test_data", str(tmp_path / "test.npz")]
        + ["--output_dir", str(output_dir), "--num_epochs", "1", "--train_batch_size", "64"]
    )
    extractor = FashionClassifierFeatures(FashionClassifier.from_pretrained(output_dir), name="tiny-run", device="cpu")
    assert extractor(torch.zeros(2, 1, 28, 28)).shape == (2, 128)
    card = (output_dir / "README.md").read_text()
    assert "Test accuracy" in card and "--num_epochs 1 --train_batch_size 64" in card


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_garment_dataset_trains_an_rgb_classifier_on_its_own_classes(tmp_path):
    """The colour garments (make_garment_dataset.py) train a 64x64 RGB feature space with the garment class names."""
    fashion_mnist = tmp_path / "fashion_mnist"
    fashion_mnist.mkdir()
    with np.load(FIXTURE, allow_pickle=False) as data:
        np.savez(fashion_mnist / "train.npz", images=data["images"][:200], labels=data["labels"][:200])
        np.savez(fashion_mnist / "test.npz", images=data["images"][200:300], labels=data["labels"][200:300])
    garments = tmp_path / "garments"
    maker = _load_example("make_garment_dataset")
    maker.main(maker.parse_args(["--fashion_mnist", str(fashion_mnist), "--output_dir", str(garments)]))
    with np.load(garments / "train.npz", allow_pickle=False) as data:
        images, labels, class_names = data["images"], data["labels"], list(data["class_names"])
    wearable = np.isin(np.load(fashion_mnist / "train.npz")["labels"], (0, 1, 2, 3, 4, 6))
    assert images.shape == (wearable.sum(), 64, 64, 3) and images.dtype == np.uint8
    assert class_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Shirt"]
    assert set(labels.tolist()) <= set(range(6)) and (images[:, 0, 0] == 255).all()  # white background
    assert images.std(axis=(1, 2)).mean() > 10  # colourised, not grey (channels differ)
    maker.main(maker.parse_args(["--fashion_mnist", str(fashion_mnist), "--output_dir", str(tmp_path / "again")]))
    assert np.array_equal(np.load(tmp_path / "again" / "train.npz")["images"], images)  # seeded

    output_dir = tmp_path / "classifier"
    _load_example("train_classifier").main(
        ["--train_data", str(garments / "train.npz"), "--test_data", str(garments / "test.npz")]
        + ["--output_dir", str(output_dir), "--num_epochs", "1", "--train_batch_size", "32"]
    )
    model = FashionClassifier.from_pretrained(output_dir)
    assert (model.config.in_channels, model.config.resolution, model.config.num_classes) == (3, 64, 6)
    assert is_classifier_folder(output_dir) and not is_classifier_folder(garments)
    extractor = FashionClassifierFeatures.from_folder(output_dir, device="cpu")
    assert extractor.name.startswith("classifier-") and extractor(torch.zeros(2, 3, 64, 64)).shape == (2, 128)
    # a 6-class garment generator is judged by this 6-class classifier: the class accuracy of its samples
    generator = Generator(resolution=64, out_channels=3, latent_dim=8, base_channels=8, num_classes=6)
    real = torch.from_numpy(images[:40]).permute(0, 3, 1, 2).float() / 127.5 - 1
    metrics = evaluate_model(generator, real, 12, extractor)
    assert 0 <= metrics["class_accuracy"] <= 1 and np.isfinite(metrics["fid"])
    assert "class_accuracy" not in evaluate_model(generator, real, 12, FashionClassifierFeatures(device="cpu"))
    card = (output_dir / "README.md").read_text()
    assert "64x64 RGB garment classifier" in card and "| 5 | Shirt |" in card


def test_train_classifier_refuses_images_it_cannot_use(tmp_path):
    script = _load_example("train_classifier")
    np.savez(tmp_path / "wide.npz", images=np.zeros((4, 28, 30), np.uint8), labels=np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"wide.npz: `images` must be uint8 of shape \(N, H, H\)"):
        script.load_npz(str(tmp_path / "wide.npz"))
    names = np.array(["a", "b"])
    np.savez(tmp_path / "labels.npz", images=np.zeros((4, 8, 8), np.uint8), labels=np.full(4, 2), class_names=names)
    with pytest.raises(ValueError, match=r"labels.npz: `labels` must be N integers in \[0, 2\)"):
        script.load_npz(str(tmp_path / "labels.npz"))


def test_the_packaged_garment_classifier_knows_the_wardrobe_garments():
    """`--extractor garments`: the classifier of the wardrobe's 64x64 colour garments, by name or by folder."""
    extractor = make_extractor("garments", "cpu")
    assert make_extractor(str(GARMENT_CLASSIFIER_PATH), "cpu").name == extractor.name
    with np.load(FIXTURE, allow_pickle=False) as data:
        wearable = np.flatnonzero(np.isin(data["labels"], GARMENT_LABELS))[:120]
        items, labels = data["images"][wearable], data["labels"][wearable]
    garments = np.stack(
        [make_garment(item, int(label), 7, (64, 64)).image for item, label in zip(items, labels, strict=True)]
    )
    images = torch.from_numpy(garments).permute(0, 3, 1, 2).float() / 127.5 - 1
    predicted = extractor.model(extractor.prepare(images)).logits.argmax(-1)
    expected = torch.tensor([GARMENT_LABELS.index(int(label)) for label in labels])
    # its card: 84.8% on the 6,000 test garments
    assert (predicted == expected).float().mean() > 0.75
