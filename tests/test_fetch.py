"""The download stage (explainft.datasets.fetch): every kind, its manifest and its errors.

Nothing here touches the network: the Hub calls are replaced by fakes, and the
URL kind talks to a ThreadingHTTPServer on 127.0.0.1 started by the tests.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import io
import json
import re
import socket
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import httpx2
import huggingface_hub
import pytest
from huggingface_hub import errors as hf_errors
from huggingface_hub.utils import filter_repo_objects

from explainft.datasets.fetch import FETCH_KINDS, fetch, validate_fetch
from explainft.datasets.fetch import hub as FH
from explainft.errors import ConfigError, DownloadError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(data: bytes) -> dict:
    return {"bytes": len(data), "sha256": sha(data)}


def manifest_of(out: Path) -> dict:
    return json.loads((out / "SOURCE.json").read_text(encoding="utf-8"))


def tree(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` except the manifest, by relative POSIX path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "SOURCE.json"
    }


def siblings(out: Path) -> list[str]:
    """What lies beside ``out`` in its parent (temporary folders must not remain)."""
    return sorted(p.name for p in out.parent.iterdir())


# =========================================================================== validation


@pytest.mark.parametrize(
    "spec, key, fragment",
    [
        ("hub", "sources.d.fetch", "must be a mapping"),
        ({}, "sources.d.fetch.from", "is required"),
        ({"from": "ftp"}, "sources.d.fetch.from", "one of hub, url, local, package"),
        ({"from": "hub", "files": ["a"]}, "sources.d.fetch.repo_id", "is required for from: hub"),
        ({"from": "hub", "repo_id": "o/n"}, "sources.d.fetch.files", "is required"),
        ({"from": "hub", "repo_id": "o/n", "files": ["a"], "revison": "x"}, "sources.d.fetch.revison", "unknown key"),
        (
            {"from": "hub", "repo_id": "o/n", "files": "data/*.parquet"},
            "sources.d.fetch.files",
            "list of glob patterns",
        ),
        ({"from": "hub", "repo_id": "o/n", "files": []}, "sources.d.fetch.files", "non-empty list"),
        ({"from": "hub", "repo_id": "no-slash", "files": ["a"]}, "sources.d.fetch.repo_id", "owner/name"),
        ({"from": "hub", "repo_id": "o/n", "files": ["../x"]}, "sources.d.fetch.files", "must be relative"),
        (
            {"from": "hub", "repo_id": "o/n", "files": ["a"], "revision": 3},
            "sources.d.fetch.revision",
            "must be a string",
        ),
        (
            {"from": "hub", "repo_id": "o/n", "files": ["a"], "token_env": "MY TOKEN"},
            "sources.d.fetch.token_env",
            "NAME",
        ),
        ({"from": "url", "urls": ["ftp://h/x.txt"]}, "sources.d.fetch.urls", "not an http(s) URL"),
        ({"from": "url", "urls": ["http://h/"]}, "sources.d.fetch.urls", "usable file name"),
        (
            {"from": "url", "urls": ["http://a/x.txt", "http://b/x.txt"]},
            "sources.d.fetch.urls",
            "both be saved as 'x.txt'",
        ),
        ({"from": "url", "urls": ["http://a/SOURCE.json"]}, "sources.d.fetch.urls", "overwrite the manifest"),
        ({"from": "url", "urls": ["http://a/x.txt"], "retries": True}, "sources.d.fetch.retries", "must be an integer"),
        ({"from": "url", "urls": ["http://a/x.txt"], "retries": -1}, "sources.d.fetch.retries", ">= 0"),
        ({"from": "url", "urls": ["http://a/x.txt"], "timeout": 0}, "sources.d.fetch.timeout", "> 0"),
        ({"from": "url", "urls": ["http://a/x.txt"], "extract": "yes"}, "sources.d.fetch.extract", "true or false"),
        (
            {"from": "url", "urls": ["http://a/x.txt"], "sha256": {"y.txt": "0" * 64}},
            "sources.d.fetch.sha256.y.txt",
            "neither one of the urls",
        ),
        (
            {"from": "url", "urls": ["http://a/x.txt"], "sha256": {"x.txt": "abc"}},
            "sources.d.fetch.sha256.x.txt",
            "64-digit hex",
        ),
        ({"from": "local"}, "sources.d.fetch.path", "is required"),
        ({"from": "local", "path": "x", "patterns": ["/etc/*"]}, "sources.d.fetch.patterns", "must be relative"),
        ({"from": "package", "package": "chatterbot-corpus", "files": ["a"]}, "sources.d.fetch.package", "import name"),
        ({"from": "package", "package": "p", "files": ["*"], "urls": []}, "sources.d.fetch.urls", "unknown key"),
    ],
)
def test_validate_rejects_bad_specs(spec, key, fragment):
    with pytest.raises(ConfigError) as ei:
        validate_fetch("d", spec)
    assert ei.value.key == key
    assert fragment in ei.value.message


def test_validate_fills_defaults_per_kind():
    assert FETCH_KINDS == ("hub", "url", "local", "package")
    assert validate_fetch("d", {"from": "hub", "repo_id": "o/n", "files": ["a"]}) == {
        "from": "hub",
        "repo_id": "o/n",
        "revision": "main",
        "files": ["a"],
        "token_env": "HF_TOKEN",
    }
    assert validate_fetch("d", {"from": "url", "urls": ["https://h/a.zip"], "sha256": {"a.zip": "AB" * 32}}) == {
        "from": "url",
        "urls": ["https://h/a.zip"],
        "sha256": {"a.zip": "ab" * 32},
        "extract": False,
        "timeout": 60,
        "retries": 3,
        "backoff": 1.0,
    }
    assert validate_fetch("d", {"from": "local", "path": "x"}) == {"from": "local", "path": "x", "patterns": None}
    assert validate_fetch("d", {"from": "package", "package": "p", "files": ["*.yml"]}) == {
        "from": "package",
        "package": "p",
        "files": ["*.yml"],
        "distribution": None,
    }


def test_validate_never_echoes_a_token_pasted_into_token_env():
    canary = "hf_CANARYtokenVALUEdontLEAK0123456789"  # the shape of a real token: hf_ + 34 characters
    with pytest.raises(ConfigError) as ei:
        validate_fetch("d", {"from": "hub", "repo_id": "o/n", "files": ["a"], "token_env": canary})
    assert ei.value.key == "sources.d.fetch.token_env"
    assert canary not in str(ei.value)


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "**/*.jsonl.gz",
        "*/train.jsonl.gz",
        "red-team-attempts/",
        "red-team-attempts/*",
        "red-team-attempts/red_team_attempts.jsonl.gz",
        "[r]ed-*",
        "*-attempts/*",
    ],
)
def test_hh_rlhf_red_team_patterns_are_rejected(pattern):
    with pytest.raises(ConfigError) as ei:
        validate_fetch("hh_rlhf_chosen", {"from": "hub", "repo_id": "Anthropic/hh-rlhf", "files": [pattern]})
    assert ei.value.key == "sources.hh_rlhf_chosen.fetch.files"
    assert "red-team-attempts/" in ei.value.message and repr(pattern) in ei.value.message


@pytest.mark.parametrize(
    "pattern",
    [
        "harmless-base/train.jsonl.gz",
        "helpful-*/test.jsonl.gz",
        "harmless-base/",
        "helpful-base/*.jsonl.gz",
    ],
)
def test_hh_rlhf_subset_patterns_are_accepted(pattern):
    spec = {"from": "hub", "repo_id": "Anthropic/hh-rlhf", "files": [pattern]}
    assert validate_fetch("x", spec)["files"] == [pattern]
    # the exclusion is specific to that repository
    assert validate_fetch("x", {"from": "hub", "repo_id": "o/n", "files": ["*"]})["files"] == ["*"]


# =========================================================================== hub

ARENA_SHA = "1b6335d42a1d2c7e34870c905d03ab964f7f2bd8"
ARENA_FILE = "data/train-00000-of-00001-cced8514c7ed782a.parquet"
CANARY = "hf_CANARY_dont_leak_0123456789"


class FakeHub:
    """Stands in for the Hub: a repo's files, the commit it resolves to, and a record of the calls."""

    def __init__(self, files: dict[str, bytes], commit: str = ARENA_SHA):
        self.files = files
        self.commit = commit
        self.info_calls: list[dict] = []
        self.snapshot_calls: list[dict] = []
        self.info_error: Exception | None = None
        self.snapshot_error: Exception | None = None

    def dataset_info(self, repo_id, *, revision=None, token=None, **kw):
        self.info_calls.append({"repo_id": repo_id, "revision": revision, "token": token, **kw})
        if self.info_error:
            raise self.info_error
        return SimpleNamespace(id=repo_id, sha=self.commit)

    def snapshot_download(self, repo_id, **kw):
        self.snapshot_calls.append({"repo_id": repo_id, **kw})
        if self.snapshot_error:
            raise self.snapshot_error
        local = Path(kw["local_dir"])
        assert local.is_dir() and not any(local.iterdir()), "local_dir must be a fresh empty folder"
        # what huggingface_hub leaves besides the files
        meta = local / ".cache" / "huggingface" / "download"
        meta.mkdir(parents=True)
        for path in filter_repo_objects(
            self.files, allow_patterns=kw["allow_patterns"], ignore_patterns=kw.get("ignore_patterns")
        ):
            (local / path).parent.mkdir(parents=True, exist_ok=True)
            (local / path).write_bytes(self.files[path])
            (meta / f"{Path(path).name}.metadata").write_text(f"{self.commit}\netag\n1700000000.0\n")
        return str(local)


@pytest.fixture
def fake_hub(monkeypatch):
    def install(files: dict[str, bytes], commit: str = ARENA_SHA) -> FakeHub:
        hub = FakeHub(files, commit)
        monkeypatch.setattr(
            huggingface_hub.HfApi, "dataset_info", lambda api, repo_id, **kw: hub.dataset_info(repo_id, **kw)
        )
        monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
        return hub

    return install


def arena_spec(**over) -> dict:
    return {
        "from": "hub",
        "repo_id": "lmsys/chatbot_arena_conversations",
        "revision": ARENA_SHA,
        "files": [ARENA_FILE],
        "token_env": "ARENA_TOKEN",
        **over,
    }


def test_hub_fetch_downloads_files_and_writes_manifest(tmp_path, fake_hub, monkeypatch):
    monkeypatch.setenv("ARENA_TOKEN", CANARY)
    parquet = b"PAR1" + bytes(range(256)) * 4 + b"PAR1"
    hub = fake_hub({ARENA_FILE: parquet, "README.md": b"# card\n", ".gitattributes": b"*.parquet lfs\n"})
    out = tmp_path / "raw" / "chatbot_arena"

    man = fetch("chatbot_arena", arena_spec(), out)

    assert hub.info_calls == [{"repo_id": "lmsys/chatbot_arena_conversations", "revision": ARENA_SHA, "token": CANARY}]
    (call,) = hub.snapshot_calls
    assert call["repo_id"] == "lmsys/chatbot_arena_conversations"
    assert call["repo_type"] == "dataset"
    assert call["revision"] == ARENA_SHA
    assert call["allow_patterns"] == [ARENA_FILE]
    assert call["ignore_patterns"] is None
    assert call["token"] == CANARY
    assert Path(call["local_dir"]).parent == out.parent and not Path(call["local_dir"]).exists()
    assert tree(out) == {ARENA_FILE: parquet}
    assert not (out / ".cache").exists()
    expected = {
        "dataset": "chatbot_arena",
        "from": "hub",
        "repo_id": "lmsys/chatbot_arena_conversations",
        "revision": ARENA_SHA,
        "commit": ARENA_SHA,
        "patterns": [ARENA_FILE],
        "files": {ARENA_FILE: entry(parquet)},
    }
    assert man == expected and manifest_of(out) == expected
    assert siblings(out) == ["chatbot_arena"]
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert CANARY.encode() not in p.read_bytes(), p


def test_hub_branch_revision_is_resolved_and_pinned(tmp_path, fake_hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    commit = "0123456789abcdef0123456789abcdef01234567"
    files = {
        "data/train-00000-of-00001.parquet": b"train",
        "data/validation-00000-of-00001.parquet": b"val",
        "data/test-00000-of-00001.parquet": b"test",
    }
    hub = fake_hub(files, commit=commit)
    out = tmp_path / "coqa"
    man = fetch(
        "coqa",
        {"from": "hub", "repo_id": "stanfordnlp/coqa", "files": ["data/train-*.parquet", "data/validation-*.parquet"]},
        out,
    )
    assert hub.info_calls[0]["revision"] == "main" and hub.info_calls[0]["token"] is None
    assert hub.snapshot_calls[0]["revision"] == commit  # downloaded at the resolved commit
    assert hub.snapshot_calls[0]["token"] is None
    assert man["revision"] == "main" and man["commit"] == commit
    assert tree(out) == {
        "data/train-00000-of-00001.parquet": b"train",
        "data/validation-00000-of-00001.parquet": b"val",
    }


def test_hub_hh_rlhf_subsets_never_include_red_team(tmp_path, fake_hub):
    files = {
        f"{s}/{split}.jsonl.gz": f"{s}-{split}".encode()
        for s in ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")
        for split in ("train", "test")
    }
    files["red-team-attempts/red_team_attempts.jsonl.gz"] = b"red team"
    hub = fake_hub(files, commit="f" * 40)
    out = tmp_path / "hh"
    man = fetch(
        "hh_rlhf_chosen",
        {"from": "hub", "repo_id": "Anthropic/hh-rlhf", "files": ["harmless-base/train.jsonl.gz", "helpful-base/"]},
        out,
    )
    assert hub.snapshot_calls[0]["ignore_patterns"] == ["red-team-attempts/*"]
    assert tree(out) == {
        "harmless-base/train.jsonl.gz": b"harmless-base-train",
        "helpful-base/test.jsonl.gz": b"helpful-base-test",
        "helpful-base/train.jsonl.gz": b"helpful-base-train",
    }
    assert sorted(man["files"]) == sorted(tree(out))


def test_hub_pattern_matching_nothing_is_an_error(tmp_path, fake_hub):
    fake_hub({ARENA_FILE: b"x"})
    out = tmp_path / "arena"
    with pytest.raises(DownloadError) as ei:
        fetch("chatbot_arena", arena_spec(files=[ARENA_FILE, "data/test-*.parquet"]), out)
    msg = str(ei.value)
    assert "pattern 'data/test-*.parquet' matched no file" in msg
    assert "lmsys/chatbot_arena_conversations" in msg and ARENA_SHA in msg
    assert not out.exists() and siblings(out) == []


def _http_response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/datasets/x"))


@pytest.mark.parametrize(
    "where, make_error, fragments",
    [
        (
            "info",
            lambda: hf_errors.GatedRepoError(
                f"403 Client Error: Cannot access gated repo (token {CANARY})", response=_http_response(403)
            ),
            [
                "lmsys/chatbot_arena_conversations",
                "is gated",
                "accept its terms",
                "https://huggingface.co/datasets/lmsys/chatbot_arena_conversations",
                "ARENA_TOKEN",
                "is set",
            ],
        ),
        (
            "snapshot",
            lambda: hf_errors.GatedRepoError("403 gated", response=_http_response(403)),
            ["is gated", "ARENA_TOKEN"],
        ),
        (
            "info",
            lambda: hf_errors.RepositoryNotFoundError(
                "404 Client Error: Repository Not Found", response=_http_response(404)
            ),
            ["lmsys/chatbot_arena_conversations", "repository not found", "ARENA_TOKEN"],
        ),
        (
            "info",
            lambda: hf_errors.RevisionNotFoundError(
                "404 Client Error: Revision Not Found", response=_http_response(404)
            ),
            [f"revision '{ARENA_SHA}' does not exist", "lmsys/chatbot_arena_conversations"],
        ),
        (
            "info",
            lambda: hf_errors.HfHubHTTPError("503 Server Error: Service Unavailable", response=_http_response(503)),
            ["HTTP 503", "503 Server Error", ARENA_SHA],
        ),
        (
            "snapshot",
            lambda: httpx2.ConnectError("[Errno -2] Name or service not known"),
            [
                "cannot reach the Hugging Face Hub",
                "Name or service not known",
                ARENA_SHA,
                "lmsys/chatbot_arena_conversations",
                "Check the network",
            ],
        ),
        (
            "snapshot",
            lambda: hf_errors.LocalEntryNotFoundError("Got: ConnectError: refused\nAn error happened"),
            ["cannot reach the Hugging Face Hub", "LocalEntryNotFoundError: Got: ConnectError: refused"],
        ),
    ],
)
def test_hub_errors_become_download_errors(tmp_path, fake_hub, monkeypatch, where, make_error, fragments):
    monkeypatch.setenv("ARENA_TOKEN", CANARY)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = fake_hub({ARENA_FILE: b"x"})
    setattr(hub, f"{where}_error", make_error())
    out = tmp_path / "arena"
    with pytest.raises(DownloadError) as ei:
        fetch("chatbot_arena", arena_spec(), out)
    msg = str(ei.value)
    for fragment in fragments:
        assert fragment in msg
    assert CANARY not in msg
    assert "\n" not in msg
    assert not out.exists() and siblings(out) == []


def test_hub_other_failures_keep_their_cause(tmp_path, fake_hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = fake_hub({ARENA_FILE: b"x"})
    hub.snapshot_error = OSError(28, "No space left on device")
    with pytest.raises(DownloadError) as ei:
        fetch("chatbot_arena", arena_spec(), tmp_path / "arena")
    assert str(ei.value) == (
        f"Hugging Face dataset lmsys/chatbot_arena_conversations at revision {ARENA_SHA}: "
        f"download failed: OSError: [Errno 28] No space left on device"
    )
    hub.snapshot_error = TypeError("a bug, not a download failure")
    with pytest.raises(TypeError):
        fetch("chatbot_arena", arena_spec(), tmp_path / "arena")
    assert siblings(tmp_path / "arena") == []


def test_hub_offline_mode_is_named(tmp_path, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ARENA_TOKEN", raising=False)
    hub = fake_hub({ARENA_FILE: b"x"})
    hub.info_error = hf_errors.OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/datasets/x: offline mode")
    with pytest.raises(DownloadError) as ei:
        fetch("chatbot_arena", arena_spec(), tmp_path / "arena")
    msg = str(ei.value)
    assert "cannot reach the Hugging Face Hub" in msg and "HF_HUB_OFFLINE is set" in msg
    assert f"Hugging Face dataset lmsys/chatbot_arena_conversations at revision {ARENA_SHA}" in msg


def test_hub_gated_without_token_says_so(tmp_path, fake_hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub = fake_hub({ARENA_FILE: b"x"})
    hub.info_error = hf_errors.GatedRepoError("401 gated", response=_http_response(401))
    with pytest.raises(DownloadError, match=r"is gated.*environment variable HF_TOKEN \(\$HF_TOKEN is not set\)"):
        fetch("chatbot_arena", arena_spec(token_env="HF_TOKEN"), tmp_path / "arena")


# =========================================================================== url

TRAIN = b'{"asin": "B0001", "questionText": "Does it fit?"}\n' * 50
VAL = b'{"asin": "B0002", "questionText": "Is it loud?"}\n'
CORNELL = {
    "cornell movie-dialogs corpus/movie_lines.txt": "L1045 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ They do not!\n".encode(
        "latin-1"
    ),
    "cornell movie-dialogs corpus/movie_conversations.txt": b"u0 +++$+++ u2 +++$+++ m0 +++$+++ ['L194', 'L195']\n",
    "cornell movie-dialogs corpus/README.txt": "Caf\xe9 readme\n".encode("latin-1"),
}


def _zip(members: dict[str, bytes], dirs: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


CORNELL_ZIP = _zip(
    {**CORNELL, "__MACOSX/cornell movie-dialogs corpus/._movie_lines.txt": b"\x00\x05\x16\x07"},
    dirs=("cornell movie-dialogs corpus/",),
)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, length: int | None = None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        path = self.path.split("?")[0]
        with srv.lock:
            srv.hits[path] = srv.hits.get(path, 0) + 1
            n = srv.hits[path]
        if path in srv.files:
            self._send(200, srv.files[path])
        elif path == "/flaky/val-qar.jsonl":  # 500, then the file
            self._send(500, b"oops") if n == 1 else self._send(200, VAL)
        elif path == "/down/val-qar.jsonl":
            self._send(503, b"maintenance")
        elif path == "/busy/val-qar.jsonl":  # rate-limited once
            self._send(429, b"slow down") if n == 1 else self._send(200, VAL)
        elif path == "/slow/val-qar.jsonl":  # no answer within the timeout
            time.sleep(1.0)
            self._send(200, VAL)
        elif path == "/stall/val-qar.jsonl":  # headers and a first part, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(VAL)))
            self.end_headers()
            self.wfile.write(VAL[:10])
            self.wfile.flush()
            time.sleep(1.0)
        elif path == "/truncated/val-qar.jsonl":  # announces more than it sends, then hangs up
            self._send(200, VAL[:20], length=len(VAL))
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(404, b"not found")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # the slow handler writes to a closed socket
        pass


@pytest.fixture(scope="module")
def http_server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.lock = threading.Lock()
    srv.hits = {}
    srv.files = {
        "/amazonqa/train-qar.jsonl": TRAIN,
        "/amazonqa/val-qar.jsonl": VAL,
        "/data/cornell_movie_dialogs_corpus.zip": CORNELL_ZIP,
        "/evil/slip.zip": _zip({"ok.txt": b"fine", "../escaped.txt": b"bad"}),
        "/evil/abs.zip": _zip({"/tmp/explainft-abs.txt": b"bad"}),
        "/evil/notzip.zip": b"this is not a zip archive",
    }
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_for_localhost(monkeypatch):
    # a proxy configured on a CI machine must not intercept the 127.0.0.1 test server
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def url_spec(*urls, **over) -> dict:
    return {"from": "url", "urls": list(urls), "timeout": 2, "retries": 2, "backoff": 0.01, **over}


def test_url_fetch_files_with_checksums(tmp_path, http_server):
    base = http_server.base
    train_url, val_url = f"{base}/amazonqa/train-qar.jsonl", f"{base}/amazonqa/val-qar.jsonl"
    out = tmp_path / "raw" / "amazonqa"
    man = fetch(
        "amazonqa", url_spec(train_url, val_url, sha256={"train-qar.jsonl": sha(TRAIN), val_url: sha(VAL).upper()}), out
    )
    assert tree(out) == {"train-qar.jsonl": TRAIN, "val-qar.jsonl": VAL}
    expected = {
        "dataset": "amazonqa",
        "from": "url",
        "urls": [train_url, val_url],
        "extract": False,
        "downloads": {
            train_url: {"file": "train-qar.jsonl", **entry(TRAIN)},
            val_url: {"file": "val-qar.jsonl", **entry(VAL)},
        },
        "files": {"train-qar.jsonl": entry(TRAIN), "val-qar.jsonl": entry(VAL)},
    }
    assert man == expected and manifest_of(out) == expected
    assert siblings(out) == ["amazonqa"]


def test_url_zip_is_extracted_with_its_folder(tmp_path, http_server):
    url = f"{http_server.base}/data/cornell_movie_dialogs_corpus.zip"
    out = tmp_path / "cornell"
    man = fetch("cornell_movie_dialogs", url_spec(url, extract=True), out)
    assert tree(out) == CORNELL  # the archive itself is gone, __MACOSX skipped
    assert man["files"] == {k: entry(v) for k, v in CORNELL.items()}
    assert man["downloads"] == {
        url: {
            "file": "cornell_movie_dialogs_corpus.zip",
            **entry(CORNELL_ZIP),
            "extracted": 3,
            "skipped": ["__MACOSX/cornell movie-dialogs corpus/._movie_lines.txt"],
        }
    }


def test_url_zip_kept_as_is_without_extract(tmp_path, http_server):
    url = f"{http_server.base}/data/cornell_movie_dialogs_corpus.zip"
    out = tmp_path / "cornell"
    fetch("cornell_movie_dialogs", url_spec(url), out)
    assert tree(out) == {"cornell_movie_dialogs_corpus.zip": CORNELL_ZIP}


@pytest.mark.parametrize(
    "path, member", [("/evil/slip.zip", "../escaped.txt"), ("/evil/abs.zip", "/tmp/explainft-abs.txt")]
)
def test_url_zip_slip_is_rejected(tmp_path, http_server, path, member):
    url = http_server.base + path
    out = tmp_path / "raw" / "evil"
    with pytest.raises(DownloadError) as ei:
        fetch("evil", url_spec(url, extract=True), out)
    assert str(ei.value) == f"{url}: unsafe path in zip archive (zip-slip): {member!r}"
    assert not (tmp_path / "raw" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert not out.exists() and siblings(out) == []


def test_url_bad_zip_is_an_error(tmp_path, http_server):
    url = f"{http_server.base}/evil/notzip.zip"
    with pytest.raises(DownloadError, match=r"notzip\.zip: not a valid zip archive"):
        fetch("evil", url_spec(url, extract=True), tmp_path / "evil")


def test_url_404_is_not_retried(tmp_path, http_server):
    url = f"{http_server.base}/nowhere/missing-qar.jsonl"
    with pytest.raises(DownloadError) as ei:
        fetch("amazonqa", url_spec(url), tmp_path / "amazonqa")
    assert str(ei.value) == f"{url}: HTTP 404 Not Found"
    assert http_server.hits["/nowhere/missing-qar.jsonl"] == 1


def test_url_500_then_200_is_retried(tmp_path, http_server):
    url = f"{http_server.base}/flaky/val-qar.jsonl"
    out = tmp_path / "amazonqa"
    man = fetch("amazonqa", url_spec(url), out)
    assert http_server.hits["/flaky/val-qar.jsonl"] == 2
    assert tree(out) == {"val-qar.jsonl": VAL} and man["files"] == {"val-qar.jsonl": entry(VAL)}


def test_url_persistent_5xx_gives_up_after_retries(tmp_path, http_server):
    url = f"{http_server.base}/down/val-qar.jsonl"
    with pytest.raises(DownloadError) as ei:
        fetch("amazonqa", url_spec(url, retries=2), tmp_path / "amazonqa")
    assert str(ei.value) == f"{url}: HTTP 503 Service Unavailable (gave up after 3 attempts)"
    assert http_server.hits["/down/val-qar.jsonl"] == 3


def test_url_timeout(tmp_path, http_server):
    url = f"{http_server.base}/slow/val-qar.jsonl"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as ei:
        fetch("amazonqa", url_spec(url, timeout=0.2, retries=1), tmp_path / "amazonqa")
    assert time.monotonic() - t0 < 1.8  # did not wait for the slow server (1 s per attempt)
    assert str(ei.value) == f"{url}: timed out: no data for 0.2 s (after 0 bytes) (gave up after 2 attempts)"
    assert http_server.hits["/slow/val-qar.jsonl"] == 2


def test_url_stall_mid_body_times_out_and_leaves_nothing(tmp_path, http_server):
    url = f"{http_server.base}/stall/val-qar.jsonl"
    out = tmp_path / "raw" / "amazonqa"
    with pytest.raises(DownloadError) as ei:
        fetch("amazonqa", url_spec(url, timeout=0.2, retries=0), out)
    # bytes are counted per 1 MiB chunk, so the 10 bytes received may not be counted yet
    assert re.fullmatch(
        re.escape(f"{url}: timed out: no data for 0.2 s (after ")
        + r"(0|10)"
        + re.escape(" bytes) (gave up after 1 attempt)"),
        str(ei.value),
    )
    assert not out.exists() and siblings(out) == []


def test_url_429_is_retried(tmp_path, http_server):
    url = f"{http_server.base}/busy/val-qar.jsonl"
    out = tmp_path / "amazonqa"
    fetch("amazonqa", url_spec(url), out)
    assert http_server.hits["/busy/val-qar.jsonl"] == 2 and tree(out) == {"val-qar.jsonl": VAL}


def test_url_truncated_body_is_an_error_and_leaves_nothing(tmp_path, http_server):
    url = f"{http_server.base}/truncated/val-qar.jsonl"
    out = tmp_path / "raw" / "amazonqa"
    with pytest.raises(DownloadError) as ei:
        fetch("amazonqa", url_spec(url, retries=1), out)
    msg = str(ei.value)
    assert msg.startswith(f"{url}: connection closed mid-body")
    assert "truncated" in msg and "gave up after 2 attempts" in msg
    assert http_server.hits["/truncated/val-qar.jsonl"] == 2
    assert not out.exists() and siblings(out) == []


def test_url_connection_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/val-qar.jsonl"
    with pytest.raises(DownloadError) as ei:
        fetch("amazonqa", url_spec(url, retries=1), tmp_path / "amazonqa")
    assert str(ei.value) == f"{url}: connection refused (gave up after 2 attempts)"


def test_url_sha256_mismatch_keeps_nothing(tmp_path, http_server):
    url = f"{http_server.base}/amazonqa/val-qar.jsonl"
    out = tmp_path / "raw" / "amazonqa"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as ei:
        fetch("amazonqa", url_spec(url, sha256={url: wrong}), out)
    assert str(ei.value) == (
        f"{url}: sha256 mismatch: expected {wrong}, got {sha(VAL)} ({len(VAL)} bytes); the file was not kept. "
        "If the publisher changed the file and you have checked the new one, pin it: set the digest "
        f"for {Path(url).name} under the profile's fetch.sha256 to {sha(VAL)}"
    )
    assert not out.exists() and siblings(out) == []


def test_failed_refetch_keeps_the_previous_folder(tmp_path, http_server):
    base = http_server.base
    out = tmp_path / "raw" / "amazonqa"
    fetch("amazonqa", url_spec(f"{base}/amazonqa/val-qar.jsonl"), out)
    before = {**tree(out), "SOURCE.json": (out / "SOURCE.json").read_bytes()}
    # the first file downloads, the second fails: nothing of the new attempt may show
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch("amazonqa", url_spec(f"{base}/amazonqa/train-qar.jsonl", f"{base}/nowhere/x.jsonl"), out)
    assert {**tree(out), "SOURCE.json": (out / "SOURCE.json").read_bytes()} == before
    assert siblings(out) == ["amazonqa"]


# =========================================================================== local


@pytest.fixture
def local_src(tmp_path) -> Path:
    src = tmp_path / "downloads" / "coqa"
    (src / "sub").mkdir(parents=True)
    (src / "coqa-train-v1.0.json").write_bytes(b'{"version": "1.0", "data": []}')
    (src / "coqa-dev-v1.0.json").write_bytes(b'{"version": "1.0", "data": [1]}')
    (src / "sub" / "notes.txt").write_bytes(b"notes\n")
    return src


def test_local_folder_copies_everything(tmp_path, local_src):
    out = tmp_path / "raw" / "coqa"
    man = fetch("coqa", {"from": "local", "path": str(local_src)}, out)
    assert tree(out) == {
        "coqa-dev-v1.0.json": b'{"version": "1.0", "data": [1]}',
        "coqa-train-v1.0.json": b'{"version": "1.0", "data": []}',
        "sub/notes.txt": b"notes\n",
    }
    assert man["path"] == str(local_src) and man["patterns"] is None
    for rel in tree(out):
        copy, orig = out / rel, local_src / rel
        assert not copy.is_symlink() and copy.stat().st_ino != orig.stat().st_ino  # a real copy


def test_local_relative_path_and_patterns(tmp_path, local_src, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "raw" / "coqa"
    spec = {"from": "local", "path": "downloads/coqa", "patterns": ["coqa-*.json", "**/*.txt"]}
    man = fetch("coqa", spec, out)
    assert man == {
        "dataset": "coqa",
        "from": "local",
        "path": "downloads/coqa",
        "patterns": ["coqa-*.json", "**/*.txt"],
        "files": {
            "coqa-dev-v1.0.json": entry(b'{"version": "1.0", "data": [1]}'),
            "coqa-train-v1.0.json": entry(b'{"version": "1.0", "data": []}'),
            "sub/notes.txt": entry(b"notes\n"),
        },
    }


def test_local_single_file(tmp_path, local_src):
    out = tmp_path / "raw" / "coqa"
    fetch("coqa", {"from": "local", "path": str(local_src / "coqa-dev-v1.0.json")}, out)
    assert tree(out) == {"coqa-dev-v1.0.json": b'{"version": "1.0", "data": [1]}'}


def test_local_missing_path_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DownloadError) as ei:
        fetch("coqa", {"from": "local", "path": "downloads/nope"}, tmp_path / "raw" / "coqa")
    assert str(ei.value).startswith("local path 'downloads/nope' does not exist")
    assert str(tmp_path / "downloads" / "nope") in str(ei.value)


def test_local_pattern_matching_nothing(tmp_path, local_src):
    with pytest.raises(DownloadError, match=r"pattern '\*\.parquet' matched no file"):
        fetch("coqa", {"from": "local", "path": str(local_src), "patterns": ["*.parquet"]}, tmp_path / "raw" / "c")


def test_local_source_containing_the_output_is_refused(tmp_path, local_src):
    with pytest.raises(DownloadError, match="contains the output folder"):
        fetch("coqa", {"from": "local", "path": str(local_src)}, local_src / "raw" / "coqa")


def test_local_manifest_name_collision(tmp_path, local_src):
    (local_src / "SOURCE.json").write_text("{}")
    with pytest.raises(DownloadError, match="would overwrite the manifest SOURCE.json"):
        fetch("coqa", {"from": "local", "path": str(local_src)}, tmp_path / "raw" / "coqa")


def test_refetch_is_deterministic_and_replaces_the_folder(tmp_path, local_src):
    out = tmp_path / "raw" / "coqa"
    out.mkdir(parents=True)
    (out / "stale.txt").write_text("from an older fetch")
    (out.parent / ".coqa.fetch-killed").mkdir()  # leftover of a killed run
    (out.parent / ".coqa.fetch-killed" / "half.json").write_text("{")
    spec = {"from": "local", "path": str(local_src)}
    fetch("coqa", spec, out)
    first = (out / "SOURCE.json").read_bytes()
    assert not (out / "stale.txt").exists()
    assert siblings(out) == ["coqa"]
    fetch("coqa", spec, out)
    assert (out / "SOURCE.json").read_bytes() == first
    assert first.endswith(b"\n") and json.loads(first)["dataset"] == "coqa"


# =========================================================================== package


def test_package_chatterbot_english(tmp_path):
    root = Path(importlib.util.find_spec("chatterbot_corpus").submodule_search_locations[0])
    english = sorted(root.glob("data/english/*.yml"))
    assert len(english) > 10
    out = tmp_path / "raw" / "chatterbot"
    man = fetch("chatterbot", {"from": "package", "package": "chatterbot_corpus", "files": ["data/english/*.yml"]}, out)
    assert tree(out) == {f"data/english/{p.name}": p.read_bytes() for p in english}
    assert {k: v for k, v in man.items() if k != "files"} == {
        "dataset": "chatterbot",
        "from": "package",
        "package": "chatterbot_corpus",
        "distribution": "chatterbot-corpus",
        "version": "1.3.3",
        "patterns": ["data/english/*.yml"],
    }
    assert man["files"]["data/english/ai.yml"] == entry((root / "data/english/ai.yml").read_bytes())
    assert manifest_of(out) == man


def test_package_missing_says_what_to_install(tmp_path):
    with pytest.raises(DownloadError) as ei:
        fetch("demo", {"from": "package", "package": "no_such_corpus_pkg", "files": ["*.yml"]}, tmp_path / "d")
    assert (
        str(ei.value) == "Python package 'no_such_corpus_pkg' is not installed: install it with "
        "`pip install no-such-corpus-pkg`"
    )
    with pytest.raises(DownloadError, match=r"`pip install my-corpus`"):
        fetch(
            "demo",
            {"from": "package", "package": "no_such_corpus_pkg", "files": ["*.yml"], "distribution": "my-corpus"},
            tmp_path / "d",
        )


def test_package_pattern_matching_nothing(tmp_path):
    with pytest.raises(
        DownloadError, match=r"chatterbot-corpus 1\.3\.3.*pattern 'data/klingon/\*\.yml' matched no file"
    ):
        fetch(
            "demo", {"from": "package", "package": "chatterbot_corpus", "files": ["data/klingon/*.yml"]}, tmp_path / "d"
        )
    assert not (tmp_path / "d").exists()


def test_fetch_validates_before_doing_anything(tmp_path):
    with pytest.raises(ConfigError) as ei:
        fetch("demo", {"from": "package", "package": "chatterbot_corpus"}, tmp_path / "raw" / "demo")
    assert ei.value.key == "sources.demo.fetch.files"
    assert not (tmp_path / "raw").exists()


def test_glob_prefix_matcher_agrees_with_fnmatch():
    # the NFA answers "could some path starting with the prefix match"; check it on whole strings
    from fnmatch import fnmatchcase

    cases = ["a*c", "a?c", "[ab]x", "[!a]x", "x[", "*", "ab*", "a/**/c"]
    for pattern in cases:
        for s in ["abc", "ax", "bx", "cx", "x[", "ab", "a/q/c", ""]:
            if fnmatchcase(s, pattern):
                assert FH._glob_could_match_prefix(pattern, s), (pattern, s)
    assert not FH._glob_could_match_prefix("b*", "a")
    assert not FH._glob_could_match_prefix("[!a]*", "a")
