"""Round trips between the real huggingface_hub / diffusers clients and the local test Hub of `conftest.py`."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
import torch
from datasets import Dataset, load_dataset
from diffusers.models import AutoencoderKL
from huggingface_hub import HfApi, HfFileSystem, constants, get_token, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

README = """---
license: apache-2.0
tags:
- hub-server-test
---
# A test model
"""


@pytest.fixture
def api() -> HfApi:
    return HfApi()


@pytest.fixture
def sample_folder(tmp_path: Path) -> Path:
    """Files of every kind a model repo holds: a card with metadata, JSON, a nested path, binary data."""
    folder = tmp_path / "upload"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "README.md").write_text(README)
    (folder / "config.json").write_text('{"hidden_size": 8}\n')
    (folder / "nested" / "deeper" / "notes.txt").write_text("nested file\n")
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 40 + os.urandom(1000))
    (folder / "empty.txt").write_bytes(b"")
    return folder


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_session_environment_points_at_the_local_hub(hub_endpoint, hub_token):
    assert constants.ENDPOINT == hub_endpoint
    assert get_token() == hub_token
    assert not constants.is_offline_mode()
    assert constants.HF_HUB_CACHE.startswith(os.path.join(tempfile.gettempdir(), "hf-home-"))


def test_whoami_names_the_token_owner(api, hub_token, other_user_token):
    assert api.whoami(token=hub_token)["name"] == "test-user"
    assert api.whoami(token=other_user_token)["name"] == "other-user"
    with pytest.raises(HfHubHTTPError) as error:
        api.whoami(token="hf_not_a_known_token")
    assert error.value.response.status_code == 401


def test_upload_folder_round_trip(api, sample_folder, unique_repo_id, fresh_hf_cache, tmp_path):
    api.create_repo(unique_repo_id)
    api.upload_folder(repo_id=unique_repo_id, folder_path=sample_folder, commit_message="Add sample files")
    expected = _folder_files(sample_folder)

    assert sorted(api.list_repo_files(unique_repo_id)) == sorted([".gitattributes", *expected])
    for filename, content in expected.items():
        assert Path(hf_hub_download(unique_repo_id, filename, cache_dir=fresh_hf_cache)).read_bytes() == content

    snapshot = Path(snapshot_download(unique_repo_id, cache_dir=tmp_path / "snapshot-cache"))
    snapshot_files = _folder_files(snapshot)
    assert snapshot_files.pop(".gitattributes").startswith(b"*.bin filter=lfs")
    assert snapshot_files == expected

    info = api.model_info(unique_repo_id, files_metadata=True)
    assert info.card_data.license == "apache-2.0"
    sizes = {sibling.rfilename: sibling.size for sibling in info.siblings}
    assert sizes["weights.bin"] == len(expected["weights.bin"])
    assert [entry.path for entry in api.list_repo_tree(unique_repo_id, path_in_repo="nested")] == ["nested/deeper"]
    assert [entry.path for entry in api.get_paths_info(unique_repo_id, ["config.json", "nested", "missing"])] == [
        "config.json",
        "nested",
    ]
    tree = {entry.path: entry for entry in api.list_repo_tree(unique_repo_id, recursive=True)}
    assert tree["weights.bin"].lfs.sha256 == hashlib.sha256(expected["weights.bin"]).hexdigest()  # *.bin goes to LFS
    assert tree["config.json"].lfs is None
    ranged = HfFileSystem().cat_file(f"{unique_repo_id}/weights.bin", start=100, end=300)
    assert ranged == expected["weights.bin"][100:300]
    assert api.file_exists(unique_repo_id, "nested/deeper/notes.txt")
    assert not api.file_exists(unique_repo_id, "nested/missing.txt")


def test_older_commit_keeps_resolving_to_its_own_files(api, unique_repo_id, fresh_hf_cache):
    api.create_repo(unique_repo_id)
    first = api.upload_file(path_or_fileobj=b"version 1", path_in_repo="data.txt", repo_id=unique_repo_id)
    second = api.upload_file(path_or_fileobj=b"version 2", path_in_repo="data.txt", repo_id=unique_repo_id)
    api.delete_file("data.txt", repo_id=unique_repo_id, revision="main")

    assert first.oid != second.oid
    old = hf_hub_download(unique_repo_id, "data.txt", revision=first.oid, cache_dir=fresh_hf_cache)
    assert Path(old).read_bytes() == b"version 1"
    assert api.model_info(unique_repo_id, revision=second.oid).sha == second.oid
    assert not api.file_exists(unique_repo_id, "data.txt")
    assert api.file_exists(unique_repo_id, "data.txt", revision=second.oid)
    titles = [commit.title for commit in api.list_repo_commits(unique_repo_id)]
    upload, delete = "Upload data.txt with huggingface_hub", "Delete data.txt with huggingface_hub"
    assert titles == [delete, upload, upload, "initial commit"]


@pytest.mark.parametrize("filename", ["same.txt", "same.safetensors"])  # regular and LFS files
def test_unchanged_file_is_not_committed_again(api, unique_repo_id, filename):
    api.create_repo(unique_repo_id)
    first = api.upload_file(path_or_fileobj=b"same", path_in_repo=filename, repo_id=unique_repo_id)
    again = api.upload_file(path_or_fileobj=b"same", path_in_repo=filename, repo_id=unique_repo_id)
    assert again.oid == first.oid


def test_private_repo_is_only_visible_to_its_owner(api, unique_repo_id, hub_token, other_user_token, fresh_hf_cache):
    api.create_repo(unique_repo_id, private=True)
    api.upload_file(path_or_fileobj=b"secret", path_in_repo="secret.txt", repo_id=unique_repo_id)

    for token in (False, other_user_token):
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(unique_repo_id, "secret.txt", token=token, cache_dir=fresh_hf_cache)
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(unique_repo_id, token=token)
        assert not api.repo_exists(unique_repo_id, token=token)
    downloaded = hf_hub_download(unique_repo_id, "secret.txt", token=hub_token, cache_dir=fresh_hf_cache)
    assert Path(downloaded).read_bytes() == b"secret"
    assert api.model_info(unique_repo_id).private


def test_writing_needs_the_owner_token(api, unique_repo_id, hub_token, other_user_token):
    api.create_repo(unique_repo_id)
    with pytest.raises(HfHubHTTPError) as error:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=unique_repo_id, token=other_user_token)
    assert error.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as error:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=unique_repo_id, token=False)
    assert error.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo(unique_repo_id.replace("test-user/", "other-user/"), token=hub_token)
    assert error.value.response.status_code == 403
    assert api.list_repo_files(unique_repo_id, token=other_user_token) == [".gitattributes"]


def test_missing_file_revision_and_repo_raise_the_client_errors(api, unique_repo_id, fresh_hf_cache):
    api.create_repo(unique_repo_id)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(unique_repo_id, "missing.json", cache_dir=fresh_hf_cache)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(unique_repo_id, ".gitattributes", revision="0" * 40, cache_dir=fresh_hf_cache)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(unique_repo_id + "-missing", "config.json", cache_dir=fresh_hf_cache)
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(unique_repo_id, path_in_repo="no-such-folder"))


def test_create_repo_exist_ok(api, unique_repo_id):
    first = api.create_repo(unique_repo_id, exist_ok=True)
    second = api.create_repo(unique_repo_id, exist_ok=True)
    assert first == second
    assert first.repo_id == unique_repo_id
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo(unique_repo_id)
    assert error.value.response.status_code == 409


def test_invalid_readme_metadata_is_refused(api, unique_repo_id):
    api.create_repo(unique_repo_id)
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(path_or_fileobj=b"---\nlicense: [\n---\n", path_in_repo="README.md", repo_id=unique_repo_id)


def test_datasets_push_to_hub_and_load_dataset(api, unique_repo_id, fresh_hf_cache):
    dataset = Dataset.from_dict({"image": [[[0, 1], [2, 3]], [[4, 5], [6, 7]]], "label": [3, 7]})
    dataset.push_to_hub(unique_repo_id, private=True)

    loaded = load_dataset(unique_repo_id, split="train", cache_dir=fresh_hf_cache)
    assert loaded.to_dict() == dataset.to_dict()
    assert any(path.endswith(".parquet") for path in api.list_repo_files(unique_repo_id, repo_type="dataset"))
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(unique_repo_id)  # same id, other repo type


def test_diffusers_model_push_to_hub_and_from_pretrained(unique_repo_id, fresh_hf_cache):
    torch.manual_seed(0)
    config = dict(block_out_channels=(8,), norm_num_groups=8, latent_channels=2, sample_size=8)
    model = AutoencoderKL(**config).eval()
    model.push_to_hub(unique_repo_id)

    loaded = AutoencoderKL.from_pretrained(unique_repo_id, cache_dir=fresh_hf_cache).eval()
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        expected = model(images, sample_posterior=False).sample
        actual = loaded(images, sample_posterior=False).sample
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    assert {"config.json", "diffusion_pytorch_model.safetensors", "README.md"} <= set(
        HfApi().list_repo_files(unique_repo_id)
    )


def test_subprocess_uses_the_local_hub(run_python, hub_endpoint):
    result = run_python(
        "-c",
        "from huggingface_hub import constants, whoami; print(constants.ENDPOINT, whoami()['name'])",
    )
    assert result.stdout.split() == [hub_endpoint, "test-user"]
