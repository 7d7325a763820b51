"""The DVC remote ``storage`` (S3 through dvc-s3): push/pull round trip and bad remotes.

moto's S3 server (``moto.server.ThreadedMotoServer`` on 127.0.0.1, a free port) stands in for
S3 or any S3-compatible service: no network, no real credentials. Each test builds a small
throwaway DVC project (two stages; file and directory outputs, binary and empty files, nested
folders), copies the repository's committed ``.dvc/config`` into it and configures the remote
exactly as README tells users to (``dvc remote modify --local ...``). DVC runs as a subprocess,
isolated from the user's global/system DVC config, ~/.aws and git config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml
from conftest import ROOT
from moto.server import ThreadedMotoServer

DVC = Path(sys.executable).with_name("dvc")
BUCKET = "explainft-ci"
PLACEHOLDER_URL = "s3://SET-YOUR-BUCKET/explainft"  # what the committed .dvc/config declares
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}
OUTPUTS = ("data/raw.bin", "data/tree", "out/summary.json", "out/parts")  # the DVC outputs

GENERATE = """\
import os, random
rng = random.Random(20251102)
os.makedirs("data/tree/sub/deeper", exist_ok=True)
with open("data/raw.bin", "wb") as f:
    f.write(rng.randbytes(48 * 1024) + bytes(range(256)))
with open("data/tree/readme.txt", "w", encoding="utf-8") as f:
    f.write("naïve café \\u2014 deterministic text\\n" * 20)
with open("data/tree/sub/weights.bin", "wb") as f:
    f.write(bytes(range(256)) * 64 + b"\\x00\\r\\n\\xff")
open("data/tree/sub/deeper/empty.bin", "wb").close()
"""

SUMMARIZE = """\
import hashlib, json, os
raw = open("data/raw.bin", "rb").read()
os.makedirs("out/parts", exist_ok=True)
for i in range(0, len(raw), 16 * 1024):
    with open(f"out/parts/part_{i // (16 * 1024)}.bin", "wb") as f:
        f.write(raw[i:i + 16 * 1024][::-1])
files = sorted(os.path.join(d, n) for d, _, ns in os.walk("data") for n in ns)
with open("out/summary.json", "w") as f:
    json.dump({p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in files}, f, indent=1, sort_keys=True)
"""


@dataclass
class S3:
    endpoint: str
    bucket: str
    client: object


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """moto's S3 server on 127.0.0.1 (a free port) with one empty bucket; stopped afterwards."""
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)  # no access log line per request
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("AWS_")]:
            mp.delenv(key)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            client = boto3.client("s3", endpoint_url=endpoint)
            client.create_bucket(Bucket=BUCKET)
            yield S3(endpoint, BUCKET, client)
        finally:
            server.stop()
            werkzeug.setLevel(level)


class Project:
    """A throwaway git + DVC project run with the venv's dvc, isolated from the user's configuration."""

    def __init__(self, path: Path, home: Path):
        self.path = path
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DVC_", "GIT_"))}
        missing = home / "missing"  # never created: no ~/.aws config or credentials are read
        env.update(
            DVC_GLOBAL_CONFIG_DIR=str(home / "dvc-global"),
            DVC_SYSTEM_CONFIG_DIR=str(home / "dvc-system"),
            DVC_SITE_CACHE_DIR=str(home / "dvc-site-cache"),
            DVC_NO_ANALYTICS="1",
            AWS_CONFIG_FILE=str(missing / "config"),
            AWS_SHARED_CREDENTIALS_FILE=str(missing / "credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_TERMINAL_PROMPT="0",
            GIT_AUTHOR_NAME="ci",
            GIT_AUTHOR_EMAIL="ci@example.invalid",
            GIT_COMMITTER_NAME="ci",
            GIT_COMMITTER_EMAIL="ci@example.invalid",
        )
        self.env = env

    def run(self, *cmd: str, check: bool = True, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run(
            list(cmd), cwd=self.path, env={**self.env, **(extra_env or {})}, text=True, capture_output=True, timeout=180
        )
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def dvc(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(str(DVC), *args, **kw)

    def git(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run("git", *args, **kw)

    def configure_remote(self, url: str, endpoint: str, **options: str) -> None:
        """The README's commands: everything site-specific and secret goes to .dvc/config.local."""
        self.dvc("remote", "modify", "--local", "storage", "url", url)
        self.dvc("remote", "modify", "--local", "storage", "endpointurl", endpoint)
        for key, value in {**CREDENTIALS, **options}.items():
            self.dvc("remote", "modify", "--local", "storage", key, value)

    def status(self, *args: str) -> dict:
        return json.loads(self.dvc("status", "--json", *args).stdout)


def tree_hashes(root: Path, *names: str) -> dict[str, str]:
    """sha256 of every file under root/<name> (a file or a folder), keyed by relative path."""
    out = {}
    for name in names:
        top = root / name
        for p in [top] if top.is_file() else sorted(q for q in top.rglob("*") if q.is_file()):
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def remove_outputs(proj: Project) -> None:
    for name in OUTPUTS:
        p = proj.path / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def new_project(path: Path, home: Path) -> Project:
    """git init, dvc init, the repository's committed .dvc/config, a two-stage pipeline, dvc repro, commit."""
    path.mkdir()
    proj = Project(path, home)
    proj.git("init", "-q")
    proj.dvc("init", "-q")
    shutil.copy(ROOT / ".dvc" / "config", path / ".dvc" / "config")
    (path / "generate.py").write_text(GENERATE, encoding="utf-8")
    (path / "summarize.py").write_text(SUMMARIZE, encoding="utf-8")
    py = shlex.quote(sys.executable)
    (path / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "generate": {
                        "cmd": f"{py} generate.py",
                        "deps": ["generate.py"],
                        "outs": ["data/raw.bin", "data/tree"],
                    },
                    "summarize": {
                        "cmd": f"{py} summarize.py",
                        "deps": ["summarize.py", "data/raw.bin", "data/tree"],
                        "outs": ["out/summary.json", "out/parts"],
                    },
                }
            },
            sort_keys=False,
        )
    )
    proj.dvc("repro")
    proj.git("add", "-A")
    proj.git("commit", "-q", "-m", "pipeline")
    return proj


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built once (dvc repro); each test works on its own copy."""
    base = tmp_path_factory.mktemp("remote")
    proj = new_project(base / "proj", base / "home")
    files = tree_hashes(proj.path, *OUTPUTS)
    # the outputs the round trip must carry: a binary file, a nested folder with an empty file, a JSON file
    assert {
        "data/raw.bin",
        "data/tree/sub/deeper/empty.bin",
        "data/tree/readme.txt",
        "out/summary.json",
        "out/parts/part_0.bin",
    } <= files.keys()
    return proj.path


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Project:
    shutil.copytree(built, tmp_path / "proj", symlinks=True)
    return Project(tmp_path / "proj", tmp_path / "home")


def cache_hashes(proj: Project) -> dict[str, str]:
    hashes = tree_hashes(proj.path, ".dvc/cache")
    assert hashes, "the local cache is empty"
    return hashes


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 port bound but not listening for the test's duration: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_push_then_pull_round_trip(project: Project, s3: S3, tmp_path: Path):
    proj = project
    original = tree_hashes(proj.path, *OUTPUTS)
    committed_config = (proj.path / ".dvc" / "config").read_bytes()
    prefix = "roundtrip/cache"
    proj.configure_remote(f"s3://{s3.bucket}/{prefix}", s3.endpoint)

    # the committed file is untouched; URL, endpoint and credentials live in the git-ignored config.local
    assert (proj.path / ".dvc" / "config").read_bytes() == committed_config
    committed = committed_config.decode()
    for secret in ("access_key_id", "secret_access_key", "testing", "endpointurl", s3.endpoint, s3.bucket):
        assert secret not in committed
    local = (proj.path / ".dvc" / "config.local").read_text()
    assert s3.endpoint in local and "secret_access_key = testing" in local
    assert proj.git("check-ignore", ".dvc/config.local").returncode == 0
    assert proj.git("status", "--porcelain").stdout == ""

    pushed = proj.dvc("push")
    assert "pushed" in pushed.stdout, pushed.stdout
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)["Contents"]]
    # one object per distinct file content, one .dir listing per directory output
    assert len([k for k in keys if not k.endswith(".dir")]) == len(set(original.values()))
    assert len([k for k in keys if k.endswith(".dir")]) == 2
    assert proj.status("--cloud") == {}

    # lose the cache and the outputs, then pull them back
    shutil.rmtree(proj.path / ".dvc" / "cache")
    remove_outputs(proj)
    proj.dvc("pull")
    assert proj.status() == {}
    assert tree_hashes(proj.path, *OUTPUTS) == original

    # a fresh clone (no config.local, no cache): configure as README says, pull, same bytes
    clone = Project(tmp_path / "clone", tmp_path / "home")
    subprocess.run(
        ["git", "clone", "-q", str(proj.path), str(clone.path)],
        env=proj.env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert not (clone.path / ".dvc" / "config.local").exists()
    clone.configure_remote(f"s3://{s3.bucket}/{prefix}", s3.endpoint)
    clone.dvc("pull")
    assert clone.status() == {}
    assert tree_hashes(clone.path, *OUTPUTS) == original


def test_unreachable_endpoint_fails_clearly_and_keeps_the_cache(project: Project, closed_port: int):
    proj = project
    endpoint = f"http://127.0.0.1:{closed_port}"
    proj.configure_remote(f"s3://{BUCKET}/cache", endpoint)
    cache, outputs = cache_hashes(proj), tree_hashes(proj.path, *OUTPUTS)

    fast = {"AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}  # no botocore retries: fails in about a second
    p = proj.dvc("push", check=False, extra_env=fast)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert f"127.0.0.1:{closed_port}" in out and "Could not connect to the endpoint URL" in out, out
    assert cache_hashes(proj) == cache
    assert tree_hashes(proj.path, *OUTPUTS) == outputs

    # the default remote being down does not matter to local work: status and repro never contact it
    assert proj.status() == {}
    remove_outputs(proj)
    proj.dvc("repro", extra_env=fast)
    assert proj.status() == {}
    assert tree_hashes(proj.path, *OUTPUTS) == outputs


def test_missing_bucket_fails_clearly(project: Project, s3: S3):
    proj = project
    missing = "explainft-no-such-bucket"
    proj.configure_remote(f"s3://{missing}/cache", s3.endpoint)
    cache = cache_hashes(proj)

    p = proj.dvc("push", check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "NoSuchBucket" in out and "bucket does not exist" in out, out
    # dvc's one-line error does not repeat the bucket's name; its -v log names the full remote URL
    verbose = proj.dvc("push", "-v", check=False)
    assert verbose.returncode != 0 and f"s3://{missing}/cache" in verbose.stdout + verbose.stderr
    assert cache_hashes(proj) == cache
    assert missing not in [b["Name"] for b in s3.client.list_buckets()["Buckets"]]  # dvc never creates buckets


def test_repository_config_declares_the_s3_storage_remote():
    from dvc.config import Config
    from dvc.fs import get_cloud_fs

    path = ROOT / ".dvc" / "config"
    conf = Config.validate(Config.load_file(path))
    assert conf["core"]["analytics"] is False
    assert conf["core"].get("remote") == "storage"
    storage = conf["remote"]["storage"]
    assert storage["url"].startswith("s3://")
    assert storage["url"] == PLACEHOLDER_URL
    # bucket endpoint and credentials are the user's, in .dvc/config.local (git-ignored by DVC)
    assert not {"endpointurl", "access_key_id", "secret_access_key", "session_token", "profile"} & storage.keys()
    assert "/config.local" in (ROOT / ".dvc" / ".gitignore").read_text().split()
    cls, _, fs_path = get_cloud_fs(conf, name="storage")  # resolves the plugin; connects nowhere
    assert cls.protocol == "s3" and cls.__module__.startswith("dvc_s3"), cls
    assert fs_path == PLACEHOLDER_URL.removeprefix("s3://")
