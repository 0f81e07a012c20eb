"""push_to_hub -> from_pretrained through the local Hub server, with and without hf-vaegan installed."""

import re
import textwrap

import pytest
import torch
from comparisons import assert_same_weights
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_vaegan import VAE, Discriminator, Generator

TINY = {"base_channels": 4}

# Run in a subprocess where `import hf_vaegan` fails: only diffusers may be needed to load a pushed model.
WITHOUT_HF_VAEGAN = "import sys; sys.modules['hf_vaegan'] = None\n"


def test_push_then_load_into_a_fresh_cache(unique_repo_id, fresh_hf_cache):
    torch.manual_seed(0)
    vae = VAE(latent_dim=4, likelihood="gaussian", **TINY).eval()
    vae.push_to_hub(unique_repo_id, datasets=["zalando-datasets/fashion_mnist"])
    files = set(HfApi().list_repo_files(unique_repo_id))
    assert {"config.json", "diffusion_pytorch_model.safetensors", "vae.py", "blocks.py", "README.md"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)

    loaded = VAE.from_pretrained(unique_repo_id, cache_dir=fresh_hf_cache).eval()
    assert_same_weights(vae, loaded)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(loaded(x).sample, vae(x).sample)


def test_model_card_metadata_and_snippet(unique_repo_id, fresh_hf_cache, run_python):
    torch.manual_seed(0)
    generator = Generator(latent_dim=8, num_classes=10, **TINY)
    generator.push_to_hub(
        unique_repo_id,
        metrics={"FID (domain features)": "12.3", "precision / recall (k=3)": "0.781 / 0.434"},
        eval_dataset={"type": "zalando-datasets/fashion_mnist", "name": "Fashion-MNIST", "split": "test"},
        datasets=["zalando-datasets/fashion_mnist"],
        license="mit",
    )
    card = ModelCard.load(unique_repo_id)
    assert card.data.library_name == "diffusers" and card.data.license == "mit"
    assert card.data.datasets == ["zalando-datasets/fashion_mnist"]
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == unique_repo_id and f"\n# {unique_repo_id}\n" in card.text
    assert {(r.metric_name, r.metric_value, r.dataset_split) for r in results} == {
        ("FID (domain features)", 12.3, "test"),
        ("precision (k=3)", 0.781, "test"),
        ("recall (k=3)", 0.434, "test"),
    }
    assert {"hf-vaegan", "gan"} <= set(card.data.tags)
    assert "| FID (domain features) | 12.3 |\n" in card.text and "|\n\n|" not in card.text
    snippet = re.search(r"```python\n(.*?)```", card.text, re.DOTALL).group(1)
    assert unique_repo_id in snippet
    # the card's first snippet must run for someone who has only diffusers
    result = run_python("-c", WITHOUT_HF_VAEGAN + snippet + "\nprint(tuple(images.shape))", cwd=fresh_hf_cache)
    assert result.stdout.strip().splitlines()[-1] == "(8, 1, 28, 28)"


REMOTE_CODE_MODELS = [VAE(latent_dim=4, **TINY), Discriminator(num_classes=3, spectral_norm=True, **TINY)]


@pytest.mark.parametrize("model", REMOTE_CODE_MODELS)
def test_automodel_with_remote_code_needs_only_diffusers(model, unique_repo_id, tmp_path, run_python):
    model.eval().push_to_hub(unique_repo_id)
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = "torch.tensor([0, 2])" if isinstance(model, Discriminator) else None
    with torch.no_grad():
        expected = model(x, torch.tensor([0, 2])).logits if labels else model(x).sample
    torch.save({"x": x, "expected": expected}, tmp_path / "io.pt")
    script = WITHOUT_HF_VAEGAN + textwrap.dedent(f"""
        import torch
        from diffusers import AutoModel
        try:
            import hf_vaegan
            raise SystemExit("hf_vaegan should not be importable here")
        except ImportError:
            pass
        io = torch.load("io.pt", weights_only=True)
        model = AutoModel.from_pretrained("{unique_repo_id}", trust_remote_code=True).eval()
        print(type(model).__module__)
        with torch.no_grad():
            out = model(io["x"], {labels}).logits if {labels is not None} else model(io["x"]).sample
        torch.testing.assert_close(out, io["expected"])
        print("close")
    """)
    result = run_python("-c", script, cwd=tmp_path)
    module, verdict = result.stdout.strip().splitlines()[-2:]
    assert module.startswith("diffusers_modules") and verdict == "close"


def test_private_repo_needs_the_token(unique_repo_id, hub_token, other_user_token, fresh_hf_cache):
    VAE(latent_dim=4, **TINY).push_to_hub(unique_repo_id, private=True)
    for token in (False, other_user_token):
        # diffusers re-raises huggingface_hub's RepositoryNotFoundError as an OSError with a login hint
        with pytest.raises(OSError, match="private repository") as error:
            VAE.from_pretrained(unique_repo_id, cache_dir=fresh_hf_cache, token=token)
        assert isinstance(error.value.__context__, RepositoryNotFoundError)
    assert VAE.from_pretrained(unique_repo_id, cache_dir=fresh_hf_cache, token=hub_token).config.latent_dim == 4
