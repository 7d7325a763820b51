"""The response cache: every teacher reply, keyed by what produced it, in SQLite (WAL).

Key: ``base.cache_key(identity, messages, attempt)``, a sha256 of the backend
kind, model, sampling settings, the full chat and the parse attempt. Value: the
reply text exactly as received. No credential is part of the key or the row
(identities never hold one; see ``Backend.identity``).

Durability: the connection is in autocommit mode and the journal is a WAL with
``synchronous=NORMAL``, so every ``put`` is committed before the next request
is counted as done. A process killed with SIGKILL loses at most the replies
that were still in flight; a rerun finds every stored reply and sends no
request for it. (``NORMAL`` protects against a killed process, which is what
a pipeline run meets; ``durable=True`` selects ``FULL`` for power loss too.)

Location: ``annotate.cache`` in params (default ``cache/annotate.sqlite``), a
path outside every DVC output so that ``dvc repro`` never deletes it; it is
git-ignored. Delete the file to force fresh requests.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key      TEXT PRIMARY KEY,
    backend  TEXT NOT NULL,
    model    TEXT NOT NULL,
    response TEXT NOT NULL,
    created  REAL NOT NULL
)
"""


class ResponseCache:
    def __init__(self, path: str | Path, *, durable: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute(SCHEMA)
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return row[0]

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        """The stored replies among ``keys`` (no hit/miss counting: a look-ahead, not a use)."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                self._db.execute(f"SELECT key, response FROM responses WHERE key IN ({marks})", chunk).fetchall()
            )
        return out

    def put(self, key: str, backend: str, model: str, response: str) -> None:
        """Store one reply; committed when this returns."""
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, backend, model, response, created) VALUES (?, ?, ?, ?, ?)",
            (key, backend, model, response, time.time()),
        )
        self.writes += 1

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
