"""A small in-memory Hugging Face Hub, served over HTTP on 127.0.0.1, for tests.

It implements the subset of the Hub API that `huggingface_hub` (and through it diffusers and datasets) uses to create
repos, commit files and read them back: whoami, repo creation, README metadata validation, preupload, the basic
Git LFS upload protocol, ndjson commits, repo info, tree and paths-info listings, commit history, and `resolve`
downloads (HEAD, GET and byte ranges). There is no Xet storage: clients must run with `HF_HUB_DISABLE_XET=1`.

As on the Hub, a file goes through LFS when it matches an LFS pattern of the repo's `.gitattributes` (new repos get
`*.bin`, `*.safetensors`, `*.parquet`, ...) or is larger than 10 MB; other files are sent inline with the commit.
Every commit keeps its own file tree, so a commit sha keeps resolving to the files it had. Errors carry the
`X-Error-Code` header the client maps to its exceptions (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`).
Private repos are hidden from anyone but their owner, exactly like missing repos.

This module only uses the standard library (plus PyYAML, a huggingface_hub dependency): importing huggingface_hub here
would freeze its endpoint before the test session points `HF_ENDPOINT` at this server.

Run it by hand with `python tests/hub_server.py --port 8765`, then use `HF_ENDPOINT=http://127.0.0.1:8765`,
`HF_TOKEN=hf_test_user_token` and `HF_HUB_DISABLE_XET=1`.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TEST_USER = "test-user"
TEST_USER_TOKEN = "hf_test_user_token"
OTHER_USER = "other-user"
OTHER_USER_TOKEN = "hf_other_user_token"
USERS_BY_TOKEN = {TEST_USER_TOKEN: TEST_USER, OTHER_USER_TOKEN: OTHER_USER}
# Organizations whose repos a user may create and write, as the bundled models' `hf-vaegan/<name>`.
ORG = "hf-vaegan"
ORGS_BY_USER = {TEST_USER: (ORG,)}

# Prefix of each repo type in download URLs, and its segment in `/api/{segment}/...` URLs.
URL_PREFIXES = {"model": "", "dataset": "datasets/"}
API_SEGMENTS = {"model": "models", "dataset": "datasets"}
DEFAULT_BRANCH = "main"
# Like the `.gitattributes` the Hub puts in the first commit of a repo, shortened.
LFS_PATTERNS = ("*.bin", "*.safetensors", "*.pt", "*.pth", "*.ckpt", "*.npz", "*.parquet", "*.arrow", "*.zip")
INITIAL_GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
_FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", re.DOTALL)


def git_blob_id(content: bytes) -> str:
    """The git object id of a blob."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _card_metadata(readme: bytes) -> dict | None:
    """The YAML front matter of a README.md, or None when it has none. Raises `yaml.YAMLError` when malformed."""
    match = _FRONT_MATTER.match(readme.decode("utf-8", errors="replace"))
    if match is None:
        return None
    metadata = yaml.safe_load(match.group(1))
    return metadata if isinstance(metadata, dict) else None


def _lfs_patterns(gitattributes: bytes) -> list[str]:
    return [line.split()[0] for line in gitattributes.decode().splitlines() if "filter=lfs" in line.split()[1:]]


def _matches(path: str, pattern: str) -> bool:
    """Whether a `.gitattributes` pattern applies to a path: patterns without a slash match the file name."""
    return fnmatch.fnmatchcase(path if "/" in pattern else path.rsplit("/", 1)[-1], pattern.lstrip("/"))


class HubError(Exception):
    """An error answer: status, message and the `X-Error-Code` the client turns into a specific exception."""

    def __init__(self, status: int, message: str, error_code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.error_code, self.headers = status, message, error_code, headers or {}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def error(cls, error: HubError) -> Response:
        headers = {"X-Error-Message": error.message, **error.headers}
        if error.error_code is not None:
            headers["X-Error-Code"] = error.error_code
        return cls.json({"error": error.message}, status=error.status, headers=headers)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # URL-decoded route parameters

    def json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"Invalid JSON body: {error}") from error

    def flag(self, name: str) -> bool:
        return self.query.get(name, ["false"])[0].lower() in ("1", "true")


@dataclass(frozen=True)
class StoredFile:
    """A file of a commit. Its content id is the Hub's `ETag`: git blob id, or sha256 for LFS files."""

    content_id: str
    size: int
    lfs: bool

    @property
    def git_oid(self) -> str:
        """The git object id: of the LFS pointer file for LFS files."""
        return git_blob_id(self.lfs_pointer) if self.lfs else self.content_id

    @property
    def lfs_pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.content_id}\nsize {self.size}\n".encode()


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    message: str
    author: str
    date: datetime
    files: dict[str, StoredFile]  # by path in repo


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: datetime
    branches: dict[str, str] = field(default_factory=dict)  # branch -> head commit sha
    commits: dict[str, Commit] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def url_path(self) -> str:
        return URL_PREFIXES[self.repo_type] + self.repo_id


class InMemoryHub:
    """The Hub's state and API, independent of the HTTP plumbing. Requests are handled one at a time."""

    def __init__(self, url: str):
        self.url = url
        self._repos: dict[tuple[str, str], Repo] = {}
        self._contents: dict[str, bytes] = {}  # by content id, shared by all repos
        self._lock = threading.Lock()
        api_repo = r"/api/(?P<repo_type>models|datasets)/(?P<repo_id>[^/]+/[^/]+)"
        repo = r"/(?:(?P<repo_type>datasets)/)?(?P<repo_id>[^/]+/[^/]+)"
        rev = r"(?P<revision>[^/]+)"
        routes: list[tuple[str, str, Callable[[Request], Response]]] = [
            ("GET", r"/api/whoami-v2", self.whoami),
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("GET", rf"{api_repo}(?:/revision/{rev})?", self.repo_info),
            ("GET", rf"{api_repo}/tree/{rev}(?:/(?P<path>.+))?", self.tree),
            ("POST", rf"{api_repo}/paths-info/{rev}", self.paths_info),
            ("GET", rf"{api_repo}/commits/{rev}", self.list_commits),
            ("POST", rf"{api_repo}/preupload/{rev}", self.preupload),
            ("POST", rf"{api_repo}/commit/{rev}", self.commit),
            ("POST", rf"{repo}\.git/info/lfs/objects/batch", self.lfs_batch),
            ("PUT", r"/lfs-uploads/(?P<sha256>[0-9a-f]{64})", self.lfs_upload),
            ("GET", rf"{repo}/resolve/{rev}/(?P<path>.+)", self.resolve),
        ]
        self._routes = [(method, re.compile(pattern), handler) for method, pattern, handler in routes]

    def handle(self, request: Request) -> Response:
        route_method = "GET" if request.method == "HEAD" else request.method
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if method == route_method and match is not None:
                request.params = {name: unquote(value) for name, value in match.groupdict().items() if value}
                try:
                    with self._lock:
                        return handler(request)
                except HubError as error:
                    return Response.error(error)
                except Exception as error:  # a gap in this server: answer instead of dropping the connection
                    traceback.print_exc()
                    return Response.error(
                        HubError(500, f"Test Hub failed on {request.method} {request.path}: {error!r}")
                    )
        return Response.error(HubError(404, f"No route for {request.method} {request.path}"))

    # -- access control ------------------------------------------------------------------------------------------

    @staticmethod
    def _user(request: Request) -> str | None:
        """The user owning the request's bearer token, None for anonymous requests."""
        authorization = request.headers.get("authorization")
        if authorization is None:
            return None
        token = authorization.removeprefix("Bearer ").strip()
        if token not in USERS_BY_TOKEN:
            raise HubError(401, "Invalid credentials in Authorization header")
        return USERS_BY_TOKEN[token]

    @staticmethod
    def _may_write(user: str | None, namespace: str) -> bool:
        return user is not None and (namespace == user or namespace in ORGS_BY_USER.get(user, ()))

    def _readable_repo(self, request: Request) -> Repo:
        """The repo named by the route, if the caller may read it. Private repos look missing to everyone else."""
        repo_type = "dataset" if request.params.get("repo_type") == "datasets" else "model"
        repo = self._repos.get((repo_type, request.params["repo_id"]))
        user = self._user(request)
        if repo is None or (repo.private and not self._may_write(user, repo.owner)):
            # Like the Hub: 401 for anonymous callers, 404 for authenticated ones, same error code for both.
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def _writable_repo(self, request: Request) -> Repo:
        repo = self._readable_repo(request)
        user = self._user(request)
        if user is None:
            raise HubError(401, "You must be authenticated to write to a repo")
        if not self._may_write(user, repo.owner):
            raise HubError(403, f"You don't have the rights to write to {repo.repo_id}")
        return repo

    @staticmethod
    def _commit_at(repo: Repo, revision: str) -> Commit:
        """The commit a branch name or a full commit sha points to."""
        sha = repo.branches.get(revision, revision)
        if sha not in repo.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    # -- listings ------------------------------------------------------------------------------------------------

    @staticmethod
    def _file_entry(path: str, file: StoredFile) -> dict:
        entry = {"type": "file", "oid": file.git_oid, "size": file.size, "path": path}
        if file.lfs:
            entry["lfs"] = {"oid": file.content_id, "size": file.size, "pointerSize": len(file.lfs_pointer)}
        return entry

    @staticmethod
    def _folder_entry(commit: Commit, folder: str) -> dict:
        content = sorted((path, file.git_oid) for path, file in commit.files.items() if path.startswith(folder + "/"))
        tree_id = hashlib.sha1(json.dumps(content).encode()).hexdigest()
        return {"type": "directory", "oid": tree_id, "size": 0, "path": folder}

    def _entry(self, commit: Commit, path: str) -> dict | None:
        """The tree entry of a file or folder, None when the commit has no such path."""
        if path in commit.files:
            return self._file_entry(path, commit.files[path])
        if any(file.startswith(path + "/") for file in commit.files):
            return self._folder_entry(commit, path)
        return None

    # -- endpoints -----------------------------------------------------------------------------------------------

    def whoami(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return Response.json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user.replace("-", " ").title(),
                "email": f"{user}@example.com",
                "emailVerified": True,
                "isPro": False,
                "orgs": [{"type": "org", "name": org} for org in ORGS_BY_USER.get(user, ())],
                "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
            }
        )

    def create_repo(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            raise HubError(401, "You must be authenticated to create a repo")
        payload = request.json()
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise HubError(400, f"This test Hub only hosts {sorted(URL_PREFIXES)} repos, got type {repo_type!r}")
        namespace = payload.get("organization") or user
        if not self._may_write(user, namespace):
            raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace {namespace}")
        repo_id = f"{namespace}/{payload['name']}"
        existing = self._repos.get((repo_type, repo_id))
        if existing is not None:
            return Response.json(
                {"error": f"You already created this {repo_type} repo", "url": f"{self.url}/{existing.url_path}"},
                status=409,
            )
        repo = Repo(repo_type, repo_id, payload.get("visibility") == "private", datetime.now(timezone.utc))
        self._repos[(repo_type, repo_id)] = repo
        gitattributes = self._store_content(INITIAL_GITATTRIBUTES.encode())
        self._store_commit(repo, DEFAULT_BRANCH, user, "initial commit", "", {".gitattributes": gitattributes})
        return Response.json({"url": f"{self.url}/{repo.url_path}", "name": repo_id, "id": repo_id})

    def validate_yaml(self, request: Request) -> Response:
        try:
            _card_metadata(request.json().get("content", "").encode())
        except yaml.YAMLError as error:
            message = f"Invalid YAML in README.md front matter: {error}"
            return Response.json({"errors": [{"message": message}], "warnings": []}, status=400)
        return Response.json({"errors": [], "warnings": []})

    def repo_info(self, request: Request) -> Response:
        repo = self._readable_repo(request)
        commit = self._commit_at(repo, request.params.get("revision", DEFAULT_BRANCH))
        siblings = []
        for path, file in sorted(commit.files.items()):
            sibling: dict = {"rfilename": path}
            if request.flag("blobs"):
                sibling.update(size=file.size, blobId=file.git_oid)
                if file.lfs:
                    sibling["lfs"] = {
                        "sha256": file.content_id,
                        "size": file.size,
                        "pointerSize": len(file.lfs_pointer),
                    }
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.owner,
            "sha": commit.sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "createdAt": _timestamp(repo.created_at),
            "lastModified": _timestamp(commit.date),
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if "README.md" in commit.files:
            card_data = _card_metadata(self._contents[commit.files["README.md"].content_id])
            if card_data is not None:
                info["cardData"] = card_data
        return Response.json(info)

    def tree(self, request: Request) -> Response:
        repo = self._readable_repo(request)
        commit = self._commit_at(repo, request.params["revision"])
        folder = request.params.get("path", "").strip("/")
        if folder and (self._entry(commit, folder) or {}).get("type") != "directory":
            raise HubError(404, f"Folder {folder!r} not found at {commit.sha}", "EntryNotFound")
        recursive = request.flag("recursive")
        prefix = folder + "/" if folder else ""
        entries: dict[str, dict] = {}
        for path, file in commit.files.items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            # Folders between the listed one and the file: only the first one unless listing recursively.
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                sub_folder = prefix + "/".join(parts[:depth])
                entries[sub_folder] = self._folder_entry(commit, sub_folder)
            if recursive or len(parts) == 1:
                entries[path] = self._file_entry(path, file)
        return Response.json([entries[path] for path in sorted(entries)])

    def paths_info(self, request: Request) -> Response:
        repo = self._readable_repo(request)
        commit = self._commit_at(repo, request.params["revision"])
        if request.headers.get("content-type", "").startswith("application/json"):
            paths = request.json().get("paths", [])
        else:
            paths = parse_qs(request.body.decode()).get("paths", [])
        entries = (self._entry(commit, path.strip("/")) for path in paths)
        return Response.json([entry for entry in entries if entry is not None])

    def list_commits(self, request: Request) -> Response:
        repo = self._readable_repo(request)
        commit: Commit | None = self._commit_at(repo, request.params["revision"])
        history = []
        while commit is not None:
            history.append(
                {
                    "id": commit.sha,
                    "title": commit.title,
                    "message": commit.message,
                    "authors": [{"user": commit.author}],
                    "date": _timestamp(commit.date),
                }
            )
            commit = repo.commits[commit.parent] if commit.parent is not None else None
        return Response.json(history)

    def preupload(self, request: Request) -> Response:
        repo = self._writable_repo(request)
        commit = self._commit_at(repo, request.params["revision"])
        gitattributes = commit.files.get(".gitattributes")
        patterns = _lfs_patterns(self._contents[gitattributes.content_id]) if gitattributes is not None else []
        files = []
        for file in request.json().get("files", []):
            path = file["path"]
            lfs = file["size"] > LFS_SIZE_THRESHOLD or any(_matches(path, pattern) for pattern in patterns)
            existing = commit.files.get(path)
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    # Compared with the local file's git blob id (sha256 for LFS) to skip unchanged files.
                    "oid": existing.content_id if existing is not None else None,
                }
            )
        return Response.json({"files": files, "commitOid": commit.sha})

    def lfs_batch(self, request: Request) -> Response:
        self._writable_repo(request)
        payload = request.json()
        if payload.get("operation") != "upload":
            raise HubError(400, "This test Hub only supports LFS uploads: downloads go through /resolve")
        objects = []
        for lfs_object in payload.get("objects", []):
            answer = {"oid": lfs_object["oid"], "size": lfs_object["size"], "authenticated": True}
            if lfs_object["oid"] not in self._contents:  # no actions: the client skips objects already stored
                answer["actions"] = {"upload": {"href": f"{self.url}/lfs-uploads/{lfs_object['oid']}"}}
            objects.append(answer)
        return Response.json({"transfer": "basic", "objects": objects})

    def lfs_upload(self, request: Request) -> Response:
        # Unauthenticated, like the presigned storage URLs of the Hub: content-addressed, so nothing to protect.
        if hashlib.sha256(request.body).hexdigest() != request.params["sha256"]:
            raise HubError(400, "Uploaded content does not match the sha256 in the upload URL")
        self._contents[request.params["sha256"]] = request.body
        return Response(200)

    def commit(self, request: Request) -> Response:
        repo = self._writable_repo(request)
        branch = request.params["revision"]
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
        if request.flag("create_pr"):
            raise HubError(400, "This test Hub does not support pull requests (create_pr)")
        try:
            lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise HubError(400, f"Invalid ndjson commit payload: {error}") from error
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "A commit payload starts with a 'header' line")
        header = lines[0]["value"]
        head = repo.commits[repo.branches[branch]]
        if header.get("parentCommit") not in (None, head.sha):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = value.get("path", "").strip("/")
            if key == "file":
                content = value["content"]
                files[path] = self._store_content(
                    base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                )
            elif key == "lfsFile":
                if value["oid"] not in self._contents:
                    raise HubError(400, f"{path}: LFS object {value['oid']} was not uploaded")
                files[path] = StoredFile(value["oid"], len(self._contents[value["oid"]]), lfs=True)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                removed = [file for file in files if file.startswith(path + "/")]
                if not removed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for file in removed:
                    del files[file]
            else:
                raise HubError(400, f"Unsupported commit operation {key!r}")
        summary, description = header.get("summary", ""), header.get("description", "")
        commit = self._store_commit(repo, branch, self._user(request), summary, description, files)
        commit_url = f"{self.url}/{repo.url_path}/commit/{commit.sha}"
        return Response.json({"success": True, "commitOid": commit.sha, "commitUrl": commit_url, "hookOutput": ""})

    def resolve(self, request: Request) -> Response:
        repo = self._readable_repo(request)
        commit = self._commit_at(repo, request.params["revision"])
        path = request.params["path"]
        if path not in commit.files:
            # The commit header lets the client remember, per commit, that this file does not exist.
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        file = commit.files[path]
        content = self._contents[file.content_id]
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{file.content_id}"',
            "X-Repo-Commit": commit.sha,
            "Accept-Ranges": "bytes",
        }
        if file.lfs:  # what the Hub sends along its redirect to the storage of LFS files
            headers.update({"X-Linked-ETag": f'"{file.content_id}"', "X-Linked-Size": str(file.size)})
        byte_range = request.headers.get("range")
        if byte_range is None:
            return Response(200, content, headers)
        start, end = self._parse_range(byte_range, len(content))
        headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        return Response(206, content[start : end + 1], headers)

    @staticmethod
    def _parse_range(byte_range: str, size: int) -> tuple[int, int]:
        """First and last byte of a single `bytes=` range, as in RFC 9110."""
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", byte_range.strip())
        if match is None or match.groups() == ("", ""):
            raise HubError(416, f"Unsupported Range header: {byte_range}")
        first, last = match.groups()
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:  # suffix range: the last N bytes
            start, end = max(size - int(last), 0), size - 1
        if start >= size or start > end:
            raise HubError(416, f"Range {byte_range} not satisfiable for {size} bytes")
        return start, end

    # -- storage -------------------------------------------------------------------------------------------------

    def _store_content(self, content: bytes) -> StoredFile:
        """Store a regular (non-LFS) file's content."""
        file = StoredFile(git_blob_id(content), len(content), lfs=False)
        self._contents[file.content_id] = content
        return file

    @staticmethod
    def _store_commit(
        repo: Repo, branch: str, author: str, title: str, message: str, files: dict[str, StoredFile]
    ) -> Commit:
        parent = repo.branches.get(branch)
        # Unique even for identical trees: the time in nanoseconds goes into the hash.
        tree = sorted((path, file.content_id) for path, file in files.items())
        identity = json.dumps([repo.repo_id, parent, title, message, tree, time.time_ns()])
        sha = hashlib.sha1(identity.encode()).hexdigest()
        commit = Commit(sha, parent, title, message, author, datetime.now(timezone.utc), files)
        repo.commits[sha] = commit
        repo.branches[branch] = sha
        return commit


class _HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client pools connections
    server: HubServer

    def do_GET(self) -> None:
        self._answer()

    do_HEAD = do_POST = do_PUT = do_GET

    def _answer(self) -> None:
        url = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
        )
        response = self.server.hub.handle(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF closing the chunk
        while self.rfile.readline().strip():  # trailer fields, up to the blank line
            pass
        return b"".join(chunks)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: pytest output stays readable, failures show up as client exceptions."""


class HubServer(ThreadingHTTPServer):
    """The in-memory Hub served on 127.0.0.1 (a free port by default) from a daemon thread.

    >>> server = HubServer()
    >>> server.start()
    >>> server.url  # e.g. 'http://127.0.0.1:40123', to use as HF_ENDPOINT
    >>> server.stop()
    """

    daemon_threads = True

    def __init__(self, port: int = 0):
        super().__init__(("127.0.0.1", port), _HubRequestHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.hub = InMemoryHub(self.url)
        self._thread = threading.Thread(target=self.serve_forever, name="test-hub-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one).")
    server = HubServer(parser.parse_args().port)
    print(f"Test Hub on {server.url}; tokens: {USERS_BY_TOKEN}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    main()
