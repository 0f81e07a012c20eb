"""Re-render the cards of the bundled models (``hf_vaegan/pretrained/<name>/README.md``) as they go to the Hub as
``hf-vaegan/<name>``: the repo id in the title and the snippets, the pipeline's usage section, tables that render
(no blank lines between rows), and metadata with ``datasets`` and a ``model-index`` holding every figure of the
cards' metric tables. The measured figures, the training, the limitations and the commands stay as they are: they are
read from the card itself, so running this again changes nothing.

    python -m hf_vaegan.model_cards.bundled          # rewrite the cards
    python -m hf_vaegan.model_cards.bundled --check  # exit 1 if a card is not as this module renders it
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard

from .. import pipelines
from ..models.modeling_utils import eval_results_from_rows

ORG = "hf-vaegan"
PRETRAINED = Path(__file__).parents[1] / "pretrained"
FASHION_MNIST = "zalando-datasets/fashion_mnist"
FEATURES = "packaged Fashion-MNIST classifier features"
FASHION_TEST = {"type": FASHION_MNIST, "name": "Fashion-MNIST (test split, 10,000 images)", "split": "test"}
SAMPLE_QUALITY_NAMES = {
    "KID": f"KID ({FEATURES})",
    "precision / recall (k=3)": f"precision / recall (k=3, {FEATURES})",
}


@dataclass
class MetricTable:
    """A metric table of a card, found by its header cells, and the data its figures were measured on.

    A two-column table maps metric names to values; in a comparison table (``row``: column index and the cell
    that marks this model) the model's rows are taken, each column a metric, qualified by the cell of
    ``qualifier_column`` when several rows are the model's (e.g. paired and unpaired try-on)."""

    header: tuple[str, ...]
    dataset: dict[str, str]
    row: tuple[int, str] | None = None
    qualifier_column: int | None = None
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class BundledCard:
    datasets: list[str]
    tables: list[MetricTable]
    # text of the card replaced once: snippets that used placeholders; each replacement no longer holds its key
    replacements: dict[str, str] = field(default_factory=dict)


WARDROBE = "synthetic wardrobe (examples/make_wardrobe_dataset.py: avatars and Fashion-MNIST garments)"
BODIES = "synthetic avatars (examples/make_body_dataset.py), 500 held-out images of bodies/test.npz"
TRYON_FID = f"FID of the try-on region (28x28 crops, {FEATURES})"
GARMENT_FEATURES = "packaged garment classifier features"
GARMENTS_TEST = {
    "type": "hf-vaegan/wardrobe-garments",
    "name": "wardrobe colour garments (examples/make_garment_dataset.py), test split, 6,000 images",
    "split": "test",
}
SPACE_TRYON_INPUTS = "the Space's try-on inputs (benchmarks/tryon_space_inputs.py: 512 gallery avatars x garments)"

BUNDLED_CARDS = {
    "fashion-cgan": BundledCard(
        [FASHION_MNIST], [MetricTable(("metric", "value"), FASHION_TEST, names=SAMPLE_QUALITY_NAMES)]
    ),
    "fashion-vae": BundledCard([FASHION_MNIST], [MetricTable(("metric", "value"), FASHION_TEST)]),
    "fashion-anomaly-vae": BundledCard(
        [FASHION_MNIST],
        [
            MetricTable(
                ("metric", "value"),
                {
                    "type": FASHION_MNIST,
                    "name": "Fashion-MNIST test split: 5,000 held-out garments (normal) and images made from them",
                    "split": "test",
                },
            )
        ],
    ),
    "fashion-vaegan": BundledCard(
        [FASHION_MNIST],
        [
            MetricTable(
                ("model", "FID", "KID", "precision / recall (k=3)"),
                FASHION_TEST,
                row=(0, "`fashion-vaegan` (this model)"),
                names={"FID": f"FID ({FEATURES})", **SAMPLE_QUALITY_NAMES},
            ),
            MetricTable(("metric", "value"), FASHION_TEST),
        ],
    ),
    "sketch2garment": BundledCard(
        [FASHION_MNIST],
        [
            MetricTable(
                ("method", "L1", "SSIM", "FID", "class accuracy"),
                {
                    "type": FASHION_MNIST,
                    "name": "Fashion-MNIST test split: outline sketches (hf_vaegan.data.sketch, seed 1) -> garments",
                    "split": "test",
                },
                row=(0, "**this model**"),
                names={
                    "L1": "L1 (intensities in [0, 1])",
                    "FID": f"FID ({FEATURES})",
                    "class accuracy": "class accuracy (packaged Fashion-MNIST classifier)",
                },
            )
        ],
        {
            "garments = pipe([sketch_a, sketch_b]).images  # PIL sketches of any size and mode -> 28x28 garments": (
                'sketch = Image.new("L", (112, 112), "white")  # a drawing: dark lines on white paper\n'
                'ImageDraw.Draw(sketch).rectangle([28, 12, 84, 100], outline="black", width=6)  # a dress outline\n'
                "garments = pipe([sketch]).images  # PIL sketches of any size and mode -> 28x28 garments"
            ),
            "from hf_vaegan import ImageToImagePipeline\n\npipe": (
                "from hf_vaegan import ImageToImagePipeline\nfrom PIL import Image, ImageDraw\n\npipe"
            ),
        },
    ),
    "wardrobe-garment-gan": BundledCard(
        [FASHION_MNIST],  # the wardrobe's garments are Fashion-MNIST's, colourised
        [
            MetricTable(
                ("model", "FID", "KID", "precision", "recall", "class accuracy"),
                GARMENTS_TEST,
                row=(0, "this model"),
                names={
                    "FID": f"FID ({GARMENT_FEATURES})",
                    "KID": f"KID ({GARMENT_FEATURES})",
                    "precision": f"precision (k=3, {GARMENT_FEATURES})",
                    "recall": f"recall (k=3, {GARMENT_FEATURES})",
                    "class accuracy": "class accuracy (packaged garment classifier agrees with the requested label)",
                },
            ),
        ],
    ),
    "wardrobe-body-vae": BundledCard(
        [],
        [
            MetricTable(("metric", "value"), {"type": "hf-vaegan/synthetic-bodies", "name": BODIES, "split": "test"}),
            MetricTable(
                ("parameter", "R^2"),
                {"type": "hf-vaegan/synthetic-bodies", "name": BODIES, "split": "test"},
                names={
                    name: f"R^2 of {name} read from the latent (body-shape head)"
                    for name in (
                        "height shoulder_width waist_width hip_width right_arm_angle left_arm_angle "
                        "right_elbow_bend left_elbow_bend skin_tone hair_tone"
                    ).split()
                },
            ),
        ],
    ),
    "wardrobe-tryon": BundledCard(
        [FASHION_MNIST],  # the wardrobe's garments are Fashion-MNIST's
        [
            MetricTable(
                ("metric", "value"),
                {"type": "hf-vaegan/synthetic-wardrobe", "name": f"{WARDROBE}, 500 held-out pairs", "split": "test"},
                names={"FID of the try-on region": TRYON_FID},
            ),
            MetricTable(
                (
                    "setting",
                    "method",
                    "SSIM (higher is better)",
                    "L1 (lower is better)",
                    "L1 in the try-on region",
                    "FID of the region",
                ),
                {"type": "hf-vaegan/synthetic-wardrobe", "name": f"{WARDROBE}, 500 held-out pairs", "split": "test"},
                row=(1, "this model"),
                qualifier_column=0,
                names={"FID of the region": TRYON_FID, "L1 (lower is better)": "L1 (lower is better, [0, 1] scale)"},
            ),
            MetricTable(
                (
                    "method",
                    "artefact rate",
                    "artefact rate, arms",
                    "artefact rate, 1-px tolerance",
                    "SSIM mean",
                    "SSIM 10th pct",
                    "L1",
                ),
                {"type": "hf-vaegan/space-tryon-inputs", "name": SPACE_TRYON_INPUTS, "split": "test"},
                row=(0, "this model"),
                names={"artefact rate": "artefact rate (share of pixels off by > 0.15)"},
            ),
        ],  # fmt: skip
    ),
}


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every table of a Markdown text, as rows of cells (the header first, without the `---` line)."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def join_table_rows(text: str) -> str:
    """Removes the blank lines between the rows of a table (they end it: the rest renders as raw text)."""
    return re.sub(r"^(\|[^\n]*)\n(?:[ \t]*\n)+(?=\|)", r"\1\n", text, flags=re.MULTILINE)


def table_eval_results(text: str, table: MetricTable, task_type: str) -> list[EvalResult]:
    found = [rows for rows in markdown_tables(text) if tuple(rows[0]) == table.header]
    if len(found) != 1:
        raise ValueError(f"expected one table with the header {table.header}, found {len(found)}")
    header, *rows = found[0]
    results = []
    if table.row is None:
        selected = [({row[0]: row[1] for row in rows}, table.names)]
    else:
        column, marker = table.row
        selected = []
        for row in rows:
            if row[column] != marker:
                continue
            skip = {column, table.qualifier_column}
            cells = {header[i]: cell for i, cell in enumerate(row) if i not in skip}
            names = {name: table.names.get(name, name) for name in cells}
            if table.qualifier_column is not None:
                names = {name: f"{row[table.qualifier_column]}: {shown}" for name, shown in names.items()}
            selected.append((cells, names))
        if not selected:
            raise ValueError(f"no row of the table {table.header} has {marker!r} in column {column}")
    for cells, names in selected:
        results += eval_results_from_rows(
            cells,
            task_type=task_type,
            dataset_type=table.dataset["type"],
            dataset_name=table.dataset["name"],
            dataset_split=table.dataset.get("split"),
            names=names,
        )
    return results


def section(text: str, title: str) -> str | None:
    match = re.search(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    return match.group(0) if match else None


def render_bundled_card(name: str, folder: Path | None = None) -> str:
    """The card of the bundled model ``name`` as it goes to the Hub, from its current README.md."""
    spec = BUNDLED_CARDS[name]
    folder = folder or PRETRAINED / name
    repo_id = f"{ORG}/{name}"
    card = ModelCard.load(folder / "README.md")
    pipeline_class = json.loads((folder / "model_index.json").read_text())["_class_name"][1]
    pipe = getattr(pipelines, pipeline_class).from_pretrained(folder)
    rendered = pipe.create_model_card(repo_id).text
    text = join_table_rows(card.text)
    for old, new in spec.replacements.items():
        text = text.replace(old, new)
    text = re.sub(r"^# .*$", f"# {repo_id}", text, count=1, flags=re.MULTILINE)
    text = text.replace(section(text, "Usage"), section(rendered, "Usage"))
    introduction = re.compile(r"^A `\w+` from \[hf-vaegan\].*?\.from_pretrained`\.$", re.MULTILINE | re.DOTALL)
    text = introduction.sub(lambda _: introduction.search(rendered).group(0), text, count=1)
    text = re.sub(r"\n{3,}", "\n\n", text)

    task_type = card.data.pipeline_tag or pipe.model.pipeline_tag
    eval_results = [result for table in spec.tables for result in table_eval_results(text, table, task_type)]
    data = card.data.to_dict()
    data.pop("model-index", None)
    data.pop("model_name", None)
    card.data = type(card.data)(**{**data, "datasets": spec.datasets or None})
    card.data.model_name = repo_id
    card.data.eval_results = eval_results
    card.text = text
    return str(card)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 if a card would change.")
    args = parser.parse_args(argv)
    stale = []
    for name in BUNDLED_CARDS:
        readme = PRETRAINED / name / "README.md"
        card = render_bundled_card(name)
        if readme.read_text() != card:
            stale.append(name)
            if not args.check:
                readme.write_text(card)
    verb = "would change" if args.check else "re-rendered"
    print(f"{verb}: {', '.join(stale) or 'none'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
