"""The virtual-wardrobe Space: every endpoint through `gradio_client` against `python spaces/app.py` on 127.0.0.1.

The Space runs in a child process with tiny random models made here (the environment variables point it at them), so
these tests check the plumbing, the conversions and the error handling, not the quality of the trained models; the
slow test at the end checks the anomaly verdicts of the bundled models when they are there.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_vaegan import VAE, Generator
from hf_vaegan.data.wardrobe import BodyShape

SPACE_DIR = Path(__file__).parents[1] / "spaces"
FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"
sys.path.insert(0, str(SPACE_DIR))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from wardrobe_space import models as space_models  # noqa: E402
from wardrobe_space.images import MAX_UPLOAD_PIXELS, OutputFiles, open_upload, to_model_input  # noqa: E402
from wardrobe_space.local_server import client_scratch_dir, serve_space  # noqa: E402

GARMENT_TILE = 28 * 4  # the Space shows 28-pixel garments 4 times larger
AVATAR_SIZE = (96 * 3, 128 * 3)  # (width, height) of a shown avatar


def make_tiny_models(folder: Path) -> dict[str, str]:
    """A tiny random VAE (with a model card and a figure) and class-conditional GAN; returns the Space's env vars."""
    torch.manual_seed(0)
    vae = VAE(resolution=28, in_channels=1, latent_dim=4, base_channels=8)
    vae.save_pretrained(folder / "vae")
    card = vae.create_model_card(
        "test-user/tiny-vae",
        sample_image="samples.png",
        training={"steps": 0},
        training_command="accelerate launch examples/train_vae.py --max_train_steps 0",
        limitations="Random weights, for tests.",
    )
    card.save(folder / "vae" / "README.md")
    Image.fromarray(np.tile(np.arange(0, 224, 8, dtype=np.uint8), (28, 1))).save(folder / "vae" / "samples.png")
    Generator(resolution=28, out_channels=1, latent_dim=8, base_channels=8, num_classes=10).save_pretrained(
        folder / "gan"
    )
    return {"HF_VAEGAN_VAE": str(folder / "vae"), "HF_VAEGAN_GAN": str(folder / "gan"), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_tiny_models(tmp_path_factory.mktemp("space-models"))


@pytest.fixture(scope="module")
def space(tiny_models: dict[str, str]):
    with serve_space(tiny_models) as running:
        yield running


@pytest.fixture(scope="module")
def client(space, tmp_path_factory: pytest.TempPathFactory):
    downloads = tmp_path_factory.mktemp("space-downloads")
    with client_scratch_dir():
        yield Client(space.url, verbose=False, download_files=str(downloads), analytics_enabled=False)


@pytest.fixture(scope="module")
def fashion() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {"images": data["images"], "labels": data["labels"]}


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory, fashion: dict[str, np.ndarray]) -> dict[str, Path]:
    """Image files of every awkward kind, most showing a Fashion-MNIST dress."""
    folder = tmp_path_factory.mktemp("uploads")
    dress = fashion["images"][np.flatnonzero(fashion["labels"] == 3)[0]]
    trouser = fashion["images"][np.flatnonzero(fashion["labels"] == 1)[0]]
    big_dress = np.asarray(Image.fromarray(dress).resize((300, 300), Image.Resampling.BILINEAR))
    files = {
        "garment": (Image.fromarray(dress), "png"),
        "trouser": (Image.fromarray(trouser), "png"),
        # a dark garment photographed on white, wider than tall
        "dark_on_white_rgb": (
            Image.fromarray(np.pad(255 - big_dress, ((0, 0), (100, 100)), constant_values=255)),
            "jpg",
        ),
        "rgba_cutout": (
            Image.fromarray(np.dstack([255 - big_dress] * 3 + [(big_dress > 20) * 255]).astype(np.uint8)),
            "png",
        ),
        "16_bit": (Image.fromarray(dress.astype(np.uint16) * 257), "png"),
        "greyscale_alpha": (Image.fromarray(np.dstack([dress, np.full_like(dress, 255)]), mode="LA"), "png"),
        "palette": (Image.fromarray(np.dstack([dress] * 3)).convert("P"), "gif"),
        "cmyk_jpeg": (Image.fromarray(np.dstack([dress] * 3)).convert("CMYK"), "jpg"),
        "smallest_allowed": (Image.fromarray(dress).resize((8, 8)), "bmp"),
    }
    paths = {}
    for name, (image, extension) in files.items():
        paths[name] = folder / f"{name}.{extension}"
        image.save(paths[name])
    paths["corrupt"] = folder / "corrupt.png"
    paths["corrupt"].write_bytes(os.urandom(2048))
    paths["truncated"] = folder / "truncated.png"
    paths["truncated"].write_bytes(paths["trouser"].read_bytes()[:-100])
    paths["empty"] = folder / "empty.png"
    paths["empty"].write_bytes(b"")
    paths["tiny"] = folder / "tiny.png"
    Image.new("L", (4, 4), 255).save(paths["tiny"])
    paths["huge"] = folder / "huge.png"
    Image.new("1", (10_000, 10_000)).save(paths["huge"])  # 100 megapixels in a few kilobytes
    return paths


def open_image(path: str) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image


def test_space_prints_its_local_url(space):
    assert f"Running on local URL:  {space.url.rstrip('/')}" in space.output()


def test_new_garments_grid_is_reproducible(client):
    grid = open_image(client.predict("Dress", 16, 3, 0.7, api_name="/generate_garments"))
    assert grid.size == (8 * GARMENT_TILE, 2 * GARMENT_TILE)
    assert np.asarray(grid).std() > 0
    again = open_image(client.predict("Dress", 16, 3, 0.7, api_name="/generate_garments"))
    other = open_image(client.predict("Dress", 16, 4, 0.7, api_name="/generate_garments"))
    assert np.array_equal(np.asarray(grid), np.asarray(again))
    assert not np.array_equal(np.asarray(grid), np.asarray(other))
    single = open_image(client.predict("Bag", 1, 0, 0, api_name="/generate_garments"))
    assert single.size == (GARMENT_TILE, GARMENT_TILE)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("Dress", 0, 0, 0), "Count must be a whole number in [1, 64], got 0"),
        (("Dress", 2.5, 0, 0), "Count must be a whole number in [1, 64], got 2.5"),
        (("Dress", 4, -1, 0), "Seed must be a whole number in [0, 2147483647], got -1"),
        (("Dress", 4, 0, 5), "Truncation must be in [0.0, 2.0], got 5"),
        (("Hat", 4, 0, 0), "Hat"),
    ],
)
def test_new_garments_reject_bad_input(client, arguments, message):
    with pytest.raises(AppError) as error:
        client.predict(*arguments, api_name="/generate_garments")
    assert message in str(error.value)


def test_style_samples(client):
    grid = open_image(client.predict(10, 1, 0.8, api_name="/sample_styles"))
    assert grid.size == (8 * GARMENT_TILE, 2 * GARMENT_TILE)
    with pytest.raises(AppError, match=r"Temperature must be in \[0.0, 2.0\]"):
        client.predict(10, 1, -1, api_name="/sample_styles")


def test_style_interpolation_strip(client, uploads):
    strip = client.predict(
        handle_file(uploads["garment"]), handle_file(uploads["trouser"]), 6, api_name="/interpolate_styles"
    )
    assert open_image(strip).size == (6 * GARMENT_TILE, GARMENT_TILE)
    with pytest.raises(AppError, match="No second garment image"):
        client.predict(handle_file(uploads["garment"]), None, 6, api_name="/interpolate_styles")
    with pytest.raises(AppError, match=r"Steps must be a whole number in \[2, 16\]"):
        client.predict(
            handle_file(uploads["garment"]), handle_file(uploads["trouser"]), 1, api_name="/interpolate_styles"
        )


@pytest.mark.parametrize(
    ("kind", "inverted"),
    [
        ("garment", False),
        ("dark_on_white_rgb", True),
        ("rgba_cutout", True),
        ("16_bit", False),
        ("greyscale_alpha", False),
        ("palette", False),
        ("cmyk_jpeg", False),
        ("smallest_allowed", False),
    ],
)
def test_analyse_converts_every_kind_of_upload(client, uploads, kind, inverted):
    model_input, reconstruction, verdict, details = client.predict(
        handle_file(uploads[kind]), api_name="/analyse_garment"
    )
    model_input = open_image(model_input)
    assert model_input.size == open_image(reconstruction).size == (2 * GARMENT_TILE, 2 * GARMENT_TILE)
    pixels = np.asarray(model_input.convert("L"), dtype=np.float32)
    assert pixels[:, :8].mean() < 60 and pixels[96:128, 96:128].mean() > 60  # a light garment on a dark background
    assert details["inverted_upload"] is inverted
    assert details["verdict"] in ("typical", "anomaly")
    assert np.isfinite(details["score_nats"]) and np.isfinite(details["threshold_nats"])
    assert (details["verdict"] == "anomaly") == (details["score_nats"] > details["threshold_nats"])
    assert ("Unusual" in verdict) == (details["verdict"] == "anomaly")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("corrupt", "The garment upload is not an image"),
        ("empty", "The garment upload is not an image"),
        ("truncated", "The garment upload is damaged"),
        ("tiny", "The garment image is 4 x 4 pixels; it needs at least 8 pixels per side"),
        ("huge", "The garment image is too large (10000 x 10000 = 100.0 megapixels); the limit is 16.8 megapixels"),
    ],
)
def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(client, uploads, kind, message):
    with pytest.raises(AppError) as error:
        client.predict(handle_file(uploads[kind]), api_name="/analyse_garment")
    assert message in str(error.value)
    assert client.predict(handle_file(uploads["garment"]), api_name="/analyse_garment")[3]["verdict"]


def test_analyse_without_upload(client):
    with pytest.raises(AppError, match="No garment image: upload one or pick an example"):
        client.predict(None, api_name="/analyse_garment")


def test_body_shapes(client):
    defaults = BodyShape().to_dict()
    avatar = open_image(client.predict(*defaults.values(), api_name="/render_body"))
    assert avatar.size == AVATAR_SIZE
    wide = open_image(client.predict(*{**defaults, "hip_width": 0.25}.values(), api_name="/render_body"))
    assert not np.array_equal(np.asarray(avatar), np.asarray(wide))
    *values, random_avatar = client.predict(5, api_name="/random_body")
    assert open_image(random_avatar).size == AVATAR_SIZE
    assert values == pytest.approx(list(BodyShape.sample(5).to_dict().values()), abs=1e-4)
    with pytest.raises(AppError, match=r"Height must be in \[0.78, 0.94\], got 2.0"):
        client.predict(*{**defaults, "height": 2.0}.values(), api_name="/render_body")


def tryon_arguments(garment, garment_class="Dress", avatar_source="Body shapes tab"):
    return (avatar_source, 3, *BodyShape().to_dict().values(), garment, garment_class, 7)


def test_tryon_reference_and_missing_model(client, uploads):
    gan_garment = open_image(client.predict("Coat", 2, api_name="/gan_garment"))
    assert gan_garment.size == (28, 28)
    for avatar_source in ("Body shapes tab", "Random (seed)"):
        garment = handle_file(uploads["garment"])
        cloth, person, warped = client.predict(
            *tryon_arguments(garment, "Dress", avatar_source), api_name="/reference_tryon"
        )
        assert open_image(cloth).size == open_image(person).size == open_image(warped).size == AVATAR_SIZE
    with pytest.raises(
        AppError, match="The try-on model is not available: its weights and TryOnPipeline have not landed"
    ):
        client.predict(*tryon_arguments(handle_file(uploads["garment"])), api_name="/tryon")
    with pytest.raises(AppError, match="Garment class must be one of"):
        client.predict(*tryon_arguments(handle_file(uploads["garment"]), "Sandal"), api_name="/reference_tryon")
    with pytest.raises(AppError, match="Avatar must be one of"):
        client.predict(*tryon_arguments(handle_file(uploads["garment"]), "Dress", "Mine"), api_name="/reference_tryon")


def test_upload_conversion_pads_instead_of_cropping(tmp_path):
    bar = np.zeros((20, 60), np.uint8)
    bar[5:15, :] = 255  # a light bar the full width of a wide image
    Image.fromarray(bar).save(tmp_path / "bar.png")
    model_input, inverted = to_model_input(open_upload(str(tmp_path / "bar.png")), 28, 1)
    pixels = np.asarray(model_input)
    assert model_input.size == (28, 28) and model_input.mode == "L" and not inverted
    assert pixels[:, 0].max() > 200 and pixels[:, -1].max() > 200  # both ends of the bar are kept
    assert pixels[0].max() < 10 and pixels[-1].max() < 10  # padded above and below with the background


def test_result_files_are_never_seen_half_written():
    """Concurrent requests with the same result share one file: a reader must always get it whole."""
    files = OutputFiles()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256), np.uint8))
    path = Path(files(image))
    expected = path.read_bytes()
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            assert files(image) == str(path)

    writers = [threading.Thread(target=write) for _ in range(3)]
    for writer in writers:
        writer.start()
    try:
        reads = [path.read_bytes() for _ in range(300)]
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert all(read == expected for read in reads)
    assert sorted(p.name for p in files.folder.iterdir()) == [path.name]  # no staging file left behind


def test_upload_limit_is_checked_before_decoding(tmp_path):
    side = int(MAX_UPLOAD_PIXELS**0.5) + 1
    Image.new("1", (side, side)).save(tmp_path / "big.png")
    with pytest.raises(gr.Error, match="too large"):
        open_upload(str(tmp_path / "big.png"))


def test_anomaly_threshold_is_the_calibrated_quantile(tiny_models):
    style = space_models.load_style_model(Path(tiny_models["HF_VAEGAN_VAE"]))
    threshold = style.threshold
    assert threshold.num_images == 980
    flagged = np.mean(threshold.reference_scores > threshold.threshold)
    assert flagged == pytest.approx(1 - space_models.ANOMALY_QUANTILE, abs=1 / threshold.num_images)
    assert threshold.percentile(threshold.threshold) == pytest.approx(99, abs=0.2)
    image = space_models.HeldoutGarments.load().calibration_images()[0]
    first, second = (
        space_models.anomaly_scores(style.pipeline, [image]),
        space_models.anomaly_scores(style.pipeline, [image]),
    )
    assert first == pytest.approx(second)  # same image, same score


def test_missing_models_leave_the_app_running_with_clear_messages(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_VAEGAN_GAN", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("HF_VAEGAN_VAE", "not a valid id!")
    models = space_models.load_models()
    assert not any(model.available for model in models.values())
    assert "is neither a folder nor a Hub model id" in models["gan"].problem
    with pytest.raises(gr.Error, match="The garment GAN is not available"):
        models["gan"].require()
    monkeypatch.delenv("HF_VAEGAN_GAN")
    bundled = space_models.load_model(next(spec for spec in space_models.MODEL_SPECS if spec.key == "gan"))
    assert bundled.available or "HF_VAEGAN_GAN is not set and the bundled folder" in bundled.problem

    from app import WardrobeSpace, build_demo

    assert isinstance(build_demo(models), gr.Blocks)  # the UI builds without any model
    space = WardrobeSpace(models, space_models.HeldoutGarments.load())
    with pytest.raises(gr.Error, match="The style VAE is not available"):
        space.sample_styles(4, 0, 1.0)


def test_model_from_the_hub(monkeypatch, unique_repo_id):
    Generator(resolution=28, out_channels=1, latent_dim=8, base_channels=8, num_classes=10).push_to_hub(unique_repo_id)
    monkeypatch.setenv("HF_VAEGAN_GAN", unique_repo_id)
    gan = space_models.load_model(next(spec for spec in space_models.MODEL_SPECS if spec.key == "gan"))
    assert gan.available, gan.problem
    assert gan.card() is not None and unique_repo_id in gan.card()


def test_about_tab_shows_cards_and_status(space):
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(space.url + "config") as response:
        config = response.read().decode()
    assert "accelerate launch examples/train_vae.py --max_train_steps 0" in config  # the card's training command
    assert "HF_VAEGAN_TRYON" in config and "TryOnPipeline have not landed" in config
    assert "samples.png" in config  # the card's figure, in the About tab's gallery


def bundled_models_env() -> dict[str, str] | None:
    """Environment for the Space to use the bundled GAN and VAE, or `None` while they are not there."""
    specs = [spec for spec in space_models.MODEL_SPECS if spec.key in ("gan", "vae")]
    if not all((space_models.BUNDLED_DIR / spec.bundled_name).is_dir() for spec in specs):
        return None
    return {spec.env_var: "" for spec in space_models.MODEL_SPECS} | {"HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_bundled_models_tell_real_garments_from_noise(monkeypatch, fashion, tmp_path):
    env = bundled_models_env()
    if env is None:
        pytest.skip("the bundled GAN and VAE are not in hf_vaegan/pretrained yet")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from app import WardrobeSpace

    space = WardrobeSpace(space_models.load_models(), space_models.HeldoutGarments.load())
    assert open_image(space.generate_garments("Sneaker", 8, 0, 0.7)).size == (8 * GARMENT_TILE, GARMENT_TILE)
    rng = np.random.default_rng(0)
    verdicts = {}
    for kind, images in (("real", fashion["images"][::50]), ("noise", rng.integers(0, 256, (20, 28, 28), np.uint8))):
        verdicts[kind] = []
        for index, image in enumerate(images):
            path = tmp_path / f"{kind}-{index}.png"
            Image.fromarray(image).save(path)
            verdicts[kind].append(space.analyse_garment(str(path))[3]["verdict"])
    assert verdicts["real"].count("anomaly") <= 2 and verdicts["noise"].count("anomaly") == 20
