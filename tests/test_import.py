"""A light import: `import hf_vaegan` and `hf-vaegan --help` load nothing heavy; names still resolve on first use.

Import times are measured by `benchmarks/import_time.py`, not here: what is checked is what gets imported.
"""

import json
import subprocess
import sys
from pathlib import Path

import hf_vaegan

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
{code}
watched = ["torch", "diffusers", "accelerate", "datasets", "transformers", "gradio", "scipy", "tensorboard",
           "hf_vaegan.training", "hf_vaegan.data.wardrobe"]
print(json.dumps([name for name in watched if name in sys.modules]))
"""


def loaded_after(code: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_hf_vaegan_loads_nothing_heavy():
    assert loaded_after("import hf_vaegan") == []


def test_help_answers_without_torch():
    code = "from hf_vaegan.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert loaded_after(code) == []


def test_models_and_pipelines_load_neither_the_training_layer_nor_datasets():
    loaded = loaded_after("from hf_vaegan import VAE, GANPipeline, TryOnPipeline\nVAE(resolution=28)")
    assert {"torch", "diffusers"} <= set(loaded)
    # accelerate and transformers come with diffusers' ModelMixin itself; these are ours to keep out.
    assert not {"hf_vaegan.training", "datasets", "gradio", "tensorboard"} & set(loaded)


def test_public_names_resolve_and_are_listed():
    for name in hf_vaegan.__all__:
        assert getattr(hf_vaegan, name).__name__ == name
    assert set(hf_vaegan.__all__) <= set(dir(hf_vaegan))
    from hf_vaegan import VAE
    from hf_vaegan.models import VAE as defined

    assert VAE is defined
    try:
        hf_vaegan.NoSuchModel  # noqa: B018
    except AttributeError as error:
        assert "has no attribute 'NoSuchModel'" in str(error)
    else:
        raise AssertionError("a missing name must raise AttributeError")


def test_the_data_package_still_exports_the_wardrobe():
    import hf_vaegan.data as data

    assert "Wardrobe" in data.__all__ and "load_viton_hd" in data.__all__
    from hf_vaegan.data import Wardrobe, load_viton_hd

    assert Wardrobe.__name__ == "Wardrobe" and callable(load_viton_hd)
