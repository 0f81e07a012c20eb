"""Layers only point down: data, models, metrics, pipelines and the Space never import the training layer.

Each module is imported in turn in a fresh interpreter, which reports the first one after which
``hf_vaegan.training`` is loaded. ``accelerate`` itself is loaded by diffusers' ``ModelMixin``, so it cannot be
asserted absent here; what the training layer adds on top (its own modules, diffusers' optimization and EMA
utilities, TensorBoard) must be.
"""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINING_ONLY = ("hf_vaegan.training", "diffusers.optimization", "diffusers.training_utils", "tensorboard")

PROBE = """
import importlib, json, pkgutil, sys
sys.path.insert(0, "spaces")
TRAINING_ONLY = {training_only}


def submodules(package):
    module = importlib.import_module(package)
    return [package] + [
        name for info in pkgutil.iter_modules(module.__path__, package + ".")
        for name in (submodules(info.name) if info.ispkg else [info.name])
    ]


names = ["hf_vaegan", "hf_vaegan.cli"]
for package in ("hf_vaegan.data", "hf_vaegan.models", "hf_vaegan.metrics", "hf_vaegan.pipelines", "wardrobe_space"):
    names += submodules(package)
culprit = None
for name in names:
    importlib.import_module(name)
    loaded = [module for module in TRAINING_ONLY if module in sys.modules]
    if loaded:
        culprit = [name, loaded]
        break
print(json.dumps({{"imported": names, "culprit": culprit}}))
"""


def test_nothing_below_the_training_layer_imports_it():
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(training_only=TRAINING_ONLY)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    imported = report["imported"]
    assert {"hf_vaegan.data.loading", "hf_vaegan.data.wardrobe.dress", "hf_vaegan.metrics.tryon"} <= set(imported)
    assert {"hf_vaegan.pipelines.pipeline_tryon", "wardrobe_space.models", "wardrobe_space.images"} <= set(imported)
    assert report["culprit"] is None, f"{report['culprit'][0]} loads {report['culprit'][1]}"


def test_each_training_module_holds_one_concern_in_at_most_400_lines():
    modules = sorted((REPO / "hf_vaegan" / "training").glob("*.py"))
    assert len(modules) > 10
    long = {module.name: n for module in modules if (n := len(module.read_text().splitlines())) > 400}
    assert not long, f"split these modules by concern: {long}"
