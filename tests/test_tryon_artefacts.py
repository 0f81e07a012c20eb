"""The try-on artefact rate and the benchmark cases of the Space's input distribution."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_vaegan.data import GARMENT_LABELS
from hf_vaegan.data.wardrobe import PARSE_LABELS, Garment, dress, make_garment, random_avatar
from hf_vaegan.metrics.tryon import (
    ARTEFACT_THRESHOLD,
    SpaceCase,
    artefact_map,
    artefact_rate,
    score_tryon_cases,
    space_case_batches,
    space_case_tensors,
    summarize_tryon_cases,
)

FIXTURE = Path(__file__).parent / "fixtures" / "fashion_mnist_1k.npz"
SIZE = (32, 24)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tryon_space_inputs  # noqa: E402


def images(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_identical_images_have_no_artefacts():
    x = images()
    assert torch.equal(artefact_rate(x, x), torch.zeros(2))
    assert not artefact_map(x, x).any()


def test_a_planted_patch_is_counted_exactly():
    target = torch.zeros(2, 3, *SIZE)
    result = target.clone()
    # 0.2 off on the [0, 1] scale (0.4 on [-1, 1]) in a 6 x 5 patch of the first image: artefacts.
    result[0, :, 2:8, 3:8] += 0.4
    # 0.1 off in the second image, and one channel 0.4 off (0.133 averaged over channels): not artefacts.
    result[1, :, 10:20, 10:20] += 0.2
    result[1, 0, 0:4, 0:4] += 0.8
    rates = artefact_rate(result, target)
    assert rates[0].item() == pytest.approx(30 / (SIZE[0] * SIZE[1]))
    assert rates[1].item() == 0
    # Inside a mask: the share of its pixels.
    mask = torch.zeros(2, 1, *SIZE)
    mask[:, :, 0:8, 0:8] = 1
    assert artefact_rate(result, target, mask)[0].item() == pytest.approx(30 / 64)
    assert torch.isnan(artefact_rate(result, target, torch.zeros(2, 1, *SIZE))).all()
    # The threshold is on the [0, 1] scale: just above and just below it.
    above, below = target.clone(), target.clone()
    above[..., 0, 0] += 2 * ARTEFACT_THRESHOLD + 0.01
    below[..., 0, 0] += 2 * ARTEFACT_THRESHOLD - 0.01
    assert artefact_map(above, target).sum() == 2 and artefact_map(below, target).sum() == 0


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="must have one shape"):
        artefact_map(images(), images()[:, :1])


@pytest.fixture(scope="module")
def cases() -> list[SpaceCase]:
    with np.load(FIXTURE) as data:
        items, labels = data["images"], data["labels"]
    garments = [(items[np.flatnonzero(labels == label)[0]], int(label)) for label in GARMENT_LABELS[:3]]
    return [
        SpaceCase(seed, item, label, "fixture", colour)
        for seed in (0, 1)
        for item, label in garments
        for colour in (0, 5)
    ]


def test_space_cases_are_the_renderers_avatars_garments_and_ground_truth(cases):
    batch = space_case_tensors(cases[:2], SIZE)
    avatar = random_avatar(0, SIZE)
    assert np.array_equal(avatar.image, random_avatar(0, SIZE).image)  # seeded
    dressed = dress(avatar, make_garment(cases[1].item, cases[1].label, cases[1].colour_seed, SIZE))
    to_tensor = torch.from_numpy(dressed.image).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(batch["target"][1], to_tensor)
    torch.testing.assert_close(batch["person_image"][0], torch.from_numpy(avatar.image).permute(2, 0, 1) / 127.5 - 1)
    arms = np.isin(avatar.parse, [PARSE_LABELS.index("left_arm"), PARSE_LABELS.index("right_arm")])
    assert torch.equal(batch["arm_mask"][0, 0], torch.from_numpy(arms).float()) and arms.any()
    assert batch["keypoints"].shape == (2, 18, 3) and batch["agnostic_mask"].shape == (2, 1, *SIZE)


def test_a_colour_garment_case_is_worn_as_it_comes():
    cloth = np.full((40, 40, 3), 255, np.uint8)
    cloth[:, 8:32] = (200, 30, 40)  # a red dress, cropped to the garment as the Space crops a colour upload
    case = SpaceCase(0, label=3, source="colour", cloth=cloth, colour_seed=7)
    batch = space_case_tensors([case], SIZE)
    dressed = dress(random_avatar(0, SIZE), Garment.from_image(cloth, 3, SIZE, framed=False))
    torch.testing.assert_close(
        batch["target"][0], torch.from_numpy(dressed.image).permute(2, 0, 1).float() / 127.5 - 1
    )
    worn = batch["cloth"][0][:, batch["cloth_mask"][0, 0] > 0.5]
    torch.testing.assert_close(worn.mean(dim=1), torch.tensor([200, 30, 40]) / 127.5 - 1, atol=0.05, rtol=0)


def test_the_ground_truth_scores_perfectly_and_the_person_does_not(cases):
    batches = list(space_case_batches(cases, 5, SIZE))
    targets = iter([batch["target"] for batch in batches])
    predictors = {"truth": lambda inputs: next(targets), "undressed": lambda inputs: inputs["person_image"]}
    scores = score_tryon_cases(predictors, batches)
    assert len(scores["truth"]["ssim"]) == len(cases)
    truth, undressed = (summarize_tryon_cases(scores[name]) for name in ("truth", "undressed"))
    assert truth["artefact_rate"] == truth["arm_artefact_rate"] == truth["l1"] == 0
    assert truth["ssim_mean"] == pytest.approx(1) and truth["ssim_p10"] == pytest.approx(1)
    assert undressed["artefact_rate"] > 0.01 and undressed["ssim_p10"] < truth["ssim_p10"]


def test_the_space_input_benchmark_dresses_the_colour_gans_garments_as_drawn(tmp_path, capsys):
    flags = ["--num_avatars", "1", "--num_garments", "4", "--num_colour_seeds", "2"]
    cases = tryon_space_inputs.space_cases(tryon_space_inputs.parse_args(flags))
    gan_cases = [case for case in cases if case.source.startswith("GAN")]
    assert len(cases) == 8 and len(gan_cases) == 4
    assert all(case.cloth is not None and case.cloth.shape[2] == 3 for case in gan_cases)
    assert len({case.source for case in gan_cases}) == 4  # one GAN draw per colour seed
    assert all(
        case.cloth is None and case.item.shape == (28, 28) for case in cases if case.source.startswith("held-out")
    )

    tryon_space_inputs.main([*flags, "--renderer_warp", "--grid", str(tmp_path / "worst.png"), "--num_worst", "3"])
    assert torch.is_grad_enabled()  # the benchmark leaves the process as it found it
    output = capsys.readouterr().out.splitlines()
    figures = json.loads(next(line for line in output if line.startswith("{")))
    assert figures["cases"] == 8 and set(figures["by_garment_source"]) == {"the GAN", "the held-out set"}
    by_source = [source["model"]["artefact_rate"] for source in figures["by_garment_source"].values()]
    assert min(by_source) <= figures["model"]["artefact_rate"] <= max(by_source)  # pooled over the two halves
    assert figures["model"]["artefact_rate"] < figures["naive paste"]["artefact_rate"]
    # The renderer's own warp leaves only the composition's errors.
    assert figures["model on the renderer's warp"]["artefact_rate"] < figures["model"]["artefact_rate"]
    assert Image.open(tmp_path / "worst.png").size == (5 * 96, 3 * 128)


def test_the_one_pixel_tolerance_forgives_a_shifted_edge_but_not_a_wrong_colour():
    target = torch.full((1, 3, *SIZE), -1.0)
    target[..., :, 10:14] = 1.0  # a white stripe on black
    shifted = torch.roll(target, 1, dims=-1)  # the same stripe one pixel to the right
    assert artefact_map(shifted, target).sum() == 2 * SIZE[0]  # both of its edges, strictly
    assert not artefact_map(shifted, target, tolerance=1).any()
    assert artefact_map(torch.roll(target, 2, dims=-1), target, tolerance=1).sum() == 2 * SIZE[0]
    fringe = target.clone()
    fringe[:, 0, :, 9] = 1.0  # a red column beside the stripe: no pixel near it is red
    fringe[:, 1:, :, 9] = -1.0
    assert artefact_map(fringe, target, tolerance=1).sum() == SIZE[0]
    with pytest.raises(ValueError, match="tolerance"):
        artefact_map(target, target, tolerance=-1)
