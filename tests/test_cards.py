"""Model cards: the bundled cards as the Hub shows them (metadata, `model-index`, tables that render, snippets that
run against `hf-vaegan/<name>` on the local Hub), and `push_to_hub` keeping the card of what was loaded."""

import re
import textwrap
from pathlib import Path

import markdown
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

import hf_vaegan
from hf_vaegan import BodyShapePipeline, GANPipeline, Generator, ImageToImagePipeline, TryOnPipeline, VAEPipeline
from hf_vaegan.model_cards import bundled
from hf_vaegan.models.modeling_utils import card_images, eval_results_from_rows, metric_values

BUNDLED = Path(hf_vaegan.__file__).parent / "pretrained"
PIPELINES = {
    "fashion-cgan": GANPipeline,
    "fashion-vae": VAEPipeline,
    "fashion-anomaly-vae": VAEPipeline,
    "fashion-vaegan": VAEPipeline,
    "sketch2garment": ImageToImagePipeline,
    "wardrobe-body-vae": BodyShapePipeline,
    "wardrobe-tryon": TryOnPipeline,
    "wardrobe-garment-gan": GANPipeline,
}
WITHOUT_HF_VAEGAN = "import sys; sys.modules['hf_vaegan'] = None\n"
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_every_bundled_model_has_a_card_spec():
    assert sorted(path.name for path in BUNDLED.iterdir() if path.is_dir()) == sorted(bundled.BUNDLED_CARDS)
    assert sorted(PIPELINES) == sorted(bundled.BUNDLED_CARDS)


def test_bundled_cards_are_as_the_renderer_writes_them():
    """The committed cards are the renderer's output, and rendering them again changes nothing."""
    assert bundled.main(["--check"]) == 0


@pytest.mark.parametrize("name", list(PIPELINES))
def test_bundled_card_metadata(name):
    card = ModelCard.load(BUNDLED / name / "README.md")
    repo_id = f"hf-vaegan/{name}"
    assert re.search(r"^# (.+)$", card.text, re.MULTILINE).group(1) == repo_id
    assert card.data.library_name == "diffusers" and card.data.license == "apache-2.0"
    assert card.data.pipeline_tag in ("unconditional-image-generation", "image-to-image")
    expected_datasets = None if name == "wardrobe-body-vae" else ["zalando-datasets/fashion_mnist"]
    assert card.data.datasets == expected_datasets
    model_name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert model_name == repo_id and results
    for result in results:
        assert isinstance(result.metric_value, float) and result.dataset_type and result.dataset_name
        if re.match(r"(\w+: )?(FID|KID|precision|recall)\b", result.metric_name):
            # never passed off as Inception FID: each says its feature space
            assert re.search(r"(Fashion-MNIST|garment) classifier features", result.metric_name), result.metric_name
    # every figure in model-index is one the card's tables show
    shown = {
        value
        for table in bundled.markdown_tables(card.text)
        for row in table
        for c in row
        for value in metric_values(c)
    }
    assert {result.metric_value for result in results} <= shown


@pytest.mark.parametrize("name", list(PIPELINES))
def test_bundled_card_tables_render(name):
    text = ModelCard.load(BUNDLED / name / "README.md").text
    html = markdown.markdown(text, extensions=["tables", "fenced_code"])
    outside_code = re.sub(r"<pre>.*?</pre>", "", html, flags=re.DOTALL)
    assert html.count("<table>") == len(bundled.markdown_tables(text)) >= 2
    assert not re.search(r"\|\s*-{3}", outside_code), "a table rendered as raw text"


def test_table_rows_are_joined_and_figures_kept():
    broken = "| metric | value |\n| --- | --- |\n\n| NLL | 251.4 |\n\n| MSE | 0.06812 |\n\nText."
    assert (
        bundled.join_table_rows(broken)
        == "| metric | value |\n| --- | --- |\n| NLL | 251.4 |\n| MSE | 0.06812 |\n\nText."
    )


def test_metric_cells_and_rows():
    assert metric_values("**0.0670**") == [0.067]
    assert metric_values("0.0100 +- 0.0027") == [0.01]
    assert metric_values("0.781 / 0.434") == [0.781, 0.434]
    assert metric_values("90.4%") == pytest.approx([0.904])
    assert metric_values("-2.009e+04") == [-20090.0]
    assert metric_values("-") == []
    results = eval_results_from_rows(
        {"precision / recall (k=3)": "0.5 / 0.25", "sketch": "-"},
        task_type="unconditional-image-generation",
        dataset_type="d",
        dataset_name="d",
    )
    assert [(r.metric_type, r.metric_name, r.metric_value) for r in results] == [
        ("precision", "precision (k=3)", 0.5),
        ("recall", "recall (k=3)", 0.25),
    ]


def test_card_images_stay_beside_the_card():
    card = ModelCard("# x\n\n![a](samples.png) ![b](../../secret.png) ![c](/etc/x.png) ![d](https://e.com/i.png)")
    assert card_images(card) == ["samples.png"]


def run_blocks(run_python, blocks: list[str], cwd: Path, *, without_hf_vaegan: bool):
    """Each block in a fresh namespace, in one subprocess (hf-vaegan hidden or importable)."""
    script = "".join(
        f"exec(compile({block!r}, 'card block {i}', 'exec'), {{}})\nprint('block {i} ran')\n"
        for i, block in enumerate(blocks)
    )
    if without_hf_vaegan:
        script = (
            WITHOUT_HF_VAEGAN
            + textwrap.dedent("""
            try:
                import hf_vaegan
                raise SystemExit("hf_vaegan should not be importable here")
            except ImportError:
                pass
        """)
            + script
        )
    result = run_python("-c", script, cwd=cwd)
    assert result.stdout.count(" ran\n") == len(blocks)


@pytest.mark.parametrize("name", list(PIPELINES))
def test_bundled_card_snippets_run_against_the_hub(name, run_python, tmp_path):
    """Published as `hf-vaegan/<name>` (`push_to_hub` of the loaded folder: the sources saved with standalone
    modules, the card kept as it is, with its images), every Python block of the card runs for a visitor: those with
    `trust_remote_code=True` where hf-vaegan cannot be imported, the others with it installed."""
    repo_id = f"hf-vaegan/{name}"
    pipe = PIPELINES[name].from_pretrained(BUNDLED / name)
    pipe.push_to_hub(repo_id)
    pushed = ModelCard.load(repo_id)
    assert str(pushed) == (BUNDLED / name / "README.md").read_text()
    files = set(HfApi().list_repo_files(repo_id))
    assert set(card_images(pushed)) <= files and "model_index.json" in files

    blocks = PYTHON_BLOCK.findall(pushed.text)
    remote = [block for block in blocks if "trust_remote_code=True" in block]
    local = [block for block in blocks if block not in remote]
    assert len(remote) >= 2 and local  # the pipeline and its component through diffusers; hf-vaegan's classes
    run_blocks(run_python, remote, tmp_path, without_hf_vaegan=True)
    run_blocks(run_python, local, tmp_path, without_hf_vaegan=False)


def sections(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, re.MULTILINE)


def test_pushing_a_loaded_pipeline_keeps_its_card(unique_repo_id, tmp_path):
    folder = BUNDLED / "fashion-cgan"
    GANPipeline.from_pretrained(folder).push_to_hub(unique_repo_id)
    original, pushed = ModelCard.load(folder / "README.md"), ModelCard.load(unique_repo_id)
    assert sections(pushed.text) == sections(original.text)  # evaluation, training, limitations...
    assert "| FID (packaged Fashion-MNIST classifier features) | 1.29 |" in pushed.text
    assert f"\n# {unique_repo_id}\n" in pushed.text and "hf-vaegan/fashion-cgan" not in pushed.text
    assert f'DiffusionPipeline.from_pretrained("{unique_repo_id}", trust_remote_code=True)' in pushed.text
    name, results = model_index_to_eval_results(pushed.data.to_dict()["model-index"])
    assert name == unique_repo_id and len(results) == len(original.data.eval_results)
    assert "samples.png" in HfApi().list_repo_files(unique_repo_id)

    # and pushed again from the Hub copy, to a third repo
    again = f"{unique_repo_id}-again"
    GANPipeline.from_pretrained(unique_repo_id).push_to_hub(again)
    assert f"\n# {again}\n" in ModelCard.load(again).text and "samples.png" in HfApi().list_repo_files(again)


def test_a_new_card_only_when_asked(unique_repo_id):
    pipe = GANPipeline.from_pretrained(BUNDLED / "fashion-cgan")
    with pytest.raises(ValueError, match="keep_model_card=False"):
        pipe.push_to_hub(unique_repo_id, limitations="none")
    pipe.push_to_hub(unique_repo_id, keep_model_card=False, limitations="Rendered anew.")
    card = ModelCard.load(unique_repo_id)
    assert "Rendered anew." in card.text and "## Evaluation" not in card.text
    assert f'GANPipeline.from_pretrained("{unique_repo_id}")' in card.text
    custom = ModelCard("---\nlicense: mit\n---\n\n# mine\n")
    pipe.push_to_hub(unique_repo_id, model_card=custom)
    assert ModelCard.load(unique_repo_id).text.strip() == "# mine"


def test_pushing_a_loaded_model_keeps_its_card(unique_repo_id, tmp_path):
    torch.manual_seed(0)
    generator = Generator(latent_dim=8, base_channels=4)
    folder = tmp_path / "my-gan"
    generator.save_pretrained(folder)
    generator.create_model_card(
        "my-gan",
        sample_image="samples.png",
        limitations="Kept limitations.",
        metrics={"FID (packaged Fashion-MNIST classifier features)": "3.5"},
        eval_dataset={"type": "zalando-datasets/fashion_mnist", "split": "test"},
    ).save(folder / "README.md")
    (folder / "samples.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    Generator.from_pretrained(folder).push_to_hub(unique_repo_id)
    card = ModelCard.load(unique_repo_id)
    assert "Kept limitations." in card.text and f"\n# {unique_repo_id}\n" in card.text
    assert f'AutoModel.from_pretrained("{unique_repo_id}", trust_remote_code=True)' in card.text
    assert '"my-gan"' not in card.text and card.data.eval_results[0].metric_value == 3.5
    assert "samples.png" in HfApi().list_repo_files(unique_repo_id)
    # a model built in Python, or a pipeline's component, gets a new card
    Generator(latent_dim=8, base_channels=4).push_to_hub(f"{unique_repo_id}-new")
    assert "Kept limitations." not in ModelCard.load(f"{unique_repo_id}-new").text
    component = Generator.from_pretrained(BUNDLED / "fashion-cgan", subfolder="gan")
    component.push_to_hub(f"{unique_repo_id}-component")
    assert "## Evaluation" not in ModelCard.load(f"{unique_repo_id}-component").text


def test_metrics_without_their_dataset_are_refused():
    with pytest.raises(ValueError, match="eval_dataset"):
        Generator(latent_dim=8, base_channels=4).create_model_card("user/x", metrics={"FID": "1.0"})
