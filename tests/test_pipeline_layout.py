"""Pipelines in diffusers' layout: `save_pretrained`/`push_to_hub` write model_index.json, a subfolder per component
and sources diffusers' remote-code loaders can fetch, so a folder or a pushed repo loads four ways: the pipeline's own
`from_pretrained`, `DiffusionPipeline.from_pretrained` with hf-vaegan installed, the same with only diffusers (a
subprocess where `import hf_vaegan` fails), and `snapshot_download` + a local load. The bundled folders too."""

import ast
import json
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import diffusers
import pytest
import torch
from comparisons import assert_same_weights
from diffusers import DiffusionPipeline
from huggingface_hub import HfApi, ModelCard, snapshot_download

import hf_vaegan
from hf_vaegan import (
    VAE,
    VAEGAN,
    BodyShapePipeline,
    GANPipeline,
    Generator,
    ImageToImagePipeline,
    TryOnPipeline,
    UNetGenerator,
    VAEPipeline,
    load_pretrained,
)
from hf_vaegan.cli import main as cli
from hf_vaegan.data.wardrobe import BODY_SHAPE_RANGES
from hf_vaegan.models import BodyShapeHead, TransformationVAE, TryOnModel

WITHOUT_HF_VAEGAN = "import sys; sys.modules['hf_vaegan'] = None\n"
BUNDLED = Path(hf_vaegan.__file__).parent / "pretrained"
TRYON_SIZE = (32, 24)


def tryon_inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    height, width = TRYON_SIZE
    image = lambda: torch.rand(1, 3, height, width, generator=generator) * 2 - 1  # noqa: E731
    mask = lambda: (torch.rand(1, 1, height, width, generator=generator) > 0.5).float()  # noqa: E731
    keypoints = torch.rand(1, 18, 3, generator=generator) * torch.tensor([width, height, 1.0])
    return {"agnostic": image(), "agnostic_mask": mask(), "body_mask": mask(), "keypoints": keypoints,
            "cloth": image(), "cloth_mask": mask()}  # fmt: skip


@dataclass
class Case:
    """A tiny pipeline, its main module and class, and `probe`: Python code computing a tensor from `pipe` and
    `inputs`, run the same way in this process and in one without hf-vaegan."""

    make: Callable[[], DiffusionPipeline]
    probe: str
    inputs: Callable[[], dict[str, torch.Tensor]] = dict


def body_shape_pipeline() -> BodyShapePipeline:
    names = list(BODY_SHAPE_RANGES)
    vae = VAE(resolution=32, in_channels=3, latent_dim=6, base_channels=4, likelihood="laplace")
    head = BodyShapeHead(latent_dim=6, parameter_names=names, parameter_ranges=[BODY_SHAPE_RANGES[n] for n in names])
    return BodyShapePipeline(vae.eval(), head.eval())


SEEDED = "generator=torch.Generator().manual_seed(0), output_type='pt'"
CASES = {
    "gan": Case(
        lambda: GANPipeline(Generator(latent_dim=8, num_classes=10, base_channels=4).eval()),
        f"pipe(batch_size=2, class_labels=[1, 7], {SEEDED}).images",
    ),
    "vae": Case(
        lambda: VAEPipeline(VAE(latent_dim=4, base_channels=4).eval()), f"pipe(batch_size=2, {SEEDED}).images"
    ),
    "vaegan": Case(
        lambda: VAEPipeline(VAEGAN(latent_dim=4, base_channels=4, discriminator_base_channels=4).eval()),
        "pipe.reconstruct(inputs['images'], output_type='pt').images",
        lambda: {"images": torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1},
    ),
    "image_to_image": Case(
        lambda: ImageToImagePipeline(UNetGenerator(num_downsamplings=2, sample_size=28, base_channels=4).eval()),
        "pipe(inputs['images'], output_type='pt').images",
        lambda: {"images": torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1},
    ),
    "tryon": Case(
        lambda: TryOnPipeline(
            TryOnModel(sample_size=TRYON_SIZE, base_channels=4, num_downsamplings=2, num_residual_blocks=1).eval()
        ),
        "pipe.tryon(**inputs).sample",
        tryon_inputs,
    ),
    "body_shape": Case(
        body_shape_pipeline, "pipe(body_shapes=[{'height': 0.8}, {'height': 0.9}], output_type='pt').images"
    ),
}


def probe(case: Case, pipe, inputs) -> torch.Tensor:
    with torch.no_grad():
        return eval(case.probe, {"torch": torch}, {"pipe": pipe, "inputs": inputs})  # the probe's source is above


@pytest.fixture(scope="module", params=list(CASES))
def saved(request, tmp_path_factory):
    """(case, the pipeline, its folder written by save_pretrained)."""
    torch.manual_seed(0)
    case = CASES[request.param]
    pipe = case.make()
    folder = tmp_path_factory.mktemp(request.param) / "pipe"
    pipe.save_pretrained(folder)
    return case, pipe, folder


def assert_same_pipeline(case: Case, pipe, loaded) -> None:
    assert loaded.component_names() == pipe.component_names()
    for name in pipe.component_names():
        assert_same_weights(getattr(pipe, name), getattr(loaded, name))
    inputs = case.inputs()
    torch.testing.assert_close(probe(case, loaded, inputs), probe(case, pipe, inputs))


def test_save_pretrained_writes_diffusers_layout(saved):
    _, pipe, folder = saved
    index = json.loads((folder / "model_index.json").read_text())
    pipeline_module = type(pipe).__module__.rpartition(".")[2]
    assert index["_class_name"] == [pipeline_module, type(pipe).__name__]
    assert index["_diffusers_version"] == diffusers.__version__
    expected = {"model_index.json", f"{pipeline_module}.py"}
    for name in pipe.component_names():
        module = type(getattr(pipe, name)).__module__.rpartition(".")[2]
        assert index[name] == [module, type(getattr(pipe, name)).__name__]
        expected |= {
            f"{name}/{file}" for file in ("config.json", "diffusion_pytorch_model.safetensors", f"{module}.py")
        }
    assert {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()} == expected
    for source in folder.rglob("*.py"):  # one file each: nothing relative, nothing of hf-vaegan
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0 and not (node.module or "").startswith("hf_vaegan"), (source, node.module)
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("hf_vaegan") for alias in node.names), source


def test_loads_with_hf_vaegan_from_a_folder(saved):
    case, pipe, folder = saved
    assert_same_pipeline(case, pipe, type(pipe).from_pretrained(folder))
    remote = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    assert type(remote).__name__ == type(pipe).__name__ and type(remote).__module__.startswith("diffusers_modules")
    assert_same_pipeline(case, pipe, remote)
    assert type(load_pretrained(folder)) is type(pipe.model)  # the main model, for the CLI and fine-tuning


def test_loads_with_hf_vaegan_from_the_hub(saved, unique_repo_id, fresh_hf_cache, tmp_path):
    case, pipe, folder = saved
    pipe.push_to_hub(unique_repo_id)
    pushed = set(HfApi().list_repo_files(unique_repo_id))
    assert {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} | {"README.md"} <= pushed
    assert_same_pipeline(case, pipe, type(pipe).from_pretrained(unique_repo_id, cache_dir=fresh_hf_cache))
    remote = DiffusionPipeline.from_pretrained(unique_repo_id, cache_dir=fresh_hf_cache, trust_remote_code=True)
    assert_same_pipeline(case, pipe, remote)
    assert type(load_pretrained(unique_repo_id, cache_dir=fresh_hf_cache)) is type(pipe.model)
    snapshot = snapshot_download(unique_repo_id, cache_dir=tmp_path / "snapshot-cache")
    assert_same_pipeline(case, pipe, type(pipe).from_pretrained(snapshot))
    assert_same_pipeline(case, pipe, DiffusionPipeline.from_pretrained(snapshot, trust_remote_code=True))


def test_loads_with_diffusers_alone(saved, unique_repo_id, tmp_path, run_python):
    """From the folder, from the Hub and from a snapshot, in a process where `import hf_vaegan` fails; the loaded
    pipeline then saves itself again in the same layout, which loads too."""
    case, pipe, folder = saved
    pipe.push_to_hub(unique_repo_id)
    inputs = case.inputs()
    torch.save({"inputs": inputs, "expected": probe(case, pipe, inputs)}, tmp_path / "io.pt")
    card_snippet = re.search(r"```python\n(.*?)```", ModelCard.load(unique_repo_id).text, re.DOTALL).group(1)
    assert f'DiffusionPipeline.from_pretrained("{unique_repo_id}"' in card_snippet
    script = WITHOUT_HF_VAEGAN + textwrap.dedent(f"""
        import torch
        from diffusers import DiffusionPipeline
        from huggingface_hub import snapshot_download
        try:
            import hf_vaegan
            raise SystemExit("hf_vaegan should not be importable here")
        except ImportError:
            pass
        io = torch.load("io.pt", weights_only=True)
        inputs = io["inputs"]
        sources = [{str(folder)!r}, "{unique_repo_id}", snapshot_download("{unique_repo_id}", cache_dir="snapshot")]
        for source in sources:
            pipe = DiffusionPipeline.from_pretrained(source, trust_remote_code=True)
            assert type(pipe).__module__.startswith("diffusers_modules"), type(pipe).__module__
            pipe.save_pretrained("again")
            for pipe in (pipe, DiffusionPipeline.from_pretrained("again", trust_remote_code=True)):
                with torch.no_grad():
                    torch.testing.assert_close({case.probe}, io["expected"])
        exec({card_snippet!r})  # the card's first snippet runs too
        print(type(pipe).__name__, "close")
    """)
    result = run_python("-c", script, cwd=tmp_path)
    assert result.stdout.strip().splitlines()[-1] == f"{type(pipe).__name__} close"


def test_diffusers_own_save_pretrained_loads_back(saved, tmp_path):
    case, pipe, _ = saved
    DiffusionPipeline.save_pretrained(pipe, tmp_path / "by-diffusers")
    index = json.loads((tmp_path / "by-diffusers" / "model_index.json").read_text())
    assert index["_class_name"] == type(pipe).__name__  # diffusers' own form: a class name, components by module
    assert_same_pipeline(case, pipe, type(pipe).from_pretrained(tmp_path / "by-diffusers"))


def test_without_trust_remote_code_diffusers_asks_for_it(saved):
    _, _, folder = saved
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        DiffusionPipeline.from_pretrained(folder)


def test_bare_model_folders_still_load(tmp_path, unique_repo_id, fresh_hf_cache):
    torch.manual_seed(0)
    generator = Generator(latent_dim=8, base_channels=4).eval()
    generator.save_pretrained(tmp_path / "gan")
    assert_same_weights(generator, GANPipeline.from_pretrained(tmp_path / "gan").gan)
    generator.push_to_hub(unique_repo_id)  # a model's repo: no model_index.json
    assert_same_weights(generator, GANPipeline.from_pretrained(unique_repo_id, cache_dir=fresh_hf_cache).gan)
    pipe = body_shape_pipeline()  # a VAE's folder plus the head examples/fit_body_shape_head.py adds to it
    pipe.vae.save_pretrained(tmp_path / "body")
    pipe.shape_head.save_pretrained(tmp_path / "body" / "body_shape_head")
    assert_same_pipeline(CASES["body_shape"], pipe, BodyShapePipeline.from_pretrained(tmp_path / "body"))


def test_components_passed_by_name_are_used(saved):
    case, pipe, folder = saved
    name = pipe.component_names()[0]
    loaded = type(pipe).from_pretrained(folder, **{name: getattr(pipe, name)})
    assert getattr(loaded, name) is getattr(pipe, name)


BUNDLED_PIPELINES = {
    "fashion-cgan": (GANPipeline, Generator),
    "fashion-vae": (VAEPipeline, VAE),
    "fashion-anomaly-vae": (VAEPipeline, TransformationVAE),
    "fashion-vaegan": (VAEPipeline, VAEGAN),
    "sketch2garment": (ImageToImagePipeline, UNetGenerator),
    "wardrobe-body-vae": (BodyShapePipeline, VAE),
    "wardrobe-tryon": (TryOnPipeline, TryOnModel),
    "wardrobe-garment-gan": (GANPipeline, Generator),
}


def test_every_bundled_folder_is_listed():
    assert sorted(path.name for path in BUNDLED.iterdir() if path.is_dir()) == sorted(BUNDLED_PIPELINES)


@pytest.mark.parametrize("name", list(BUNDLED_PIPELINES))
def test_bundled_folders_load_as_pipelines(name):
    pipeline_class, model_class = BUNDLED_PIPELINES[name]
    folder = BUNDLED / name
    assert (folder / "README.md").is_file() and not (folder / "config.json").exists()
    ours = pipeline_class.from_pretrained(folder)
    # the folder's sources point diffusers at hf-vaegan's own classes, which it ships with
    theirs = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    assert type(theirs) is pipeline_class and type(theirs.model) is model_class
    for component in ours.component_names():
        assert_same_weights(getattr(ours, component), getattr(theirs, component))
    assert type(load_pretrained(folder)) is model_class


def test_the_cli_samples_a_bundled_pipeline_folder(tmp_path):
    output = tmp_path / "grid.png"
    args = ["sample", str(BUNDLED / "fashion-cgan"), "--num-images", "10", "--all-classes", "--output", str(output)]
    assert cli(args) == 0
    assert output.is_file()
