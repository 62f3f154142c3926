"""On-disk, append-only cache of text embeddings, one folder per encoder fingerprint.

Layout of ``root/<fingerprint>/``:

- ``meta.json``: ``{"format": 1, "dim": D, "dtype": "float32"}`` (written atomically once);
- ``rows.f32``: raw little-endian float32 rows of D values, appended, read via ``np.memmap``;
- ``keys.txt``: one 64-char sha256 hex key plus ``\\n`` per row (row i <-> line i).

An append writes (and fsyncs) the rows before the keys, so a crash leaves at worst rows
without a key or a partial last line; on load only the first ``min(full rows, full key
lines)`` entries count, and the torn tail is cut off before the next append.

Not thread- or process-safe: one writer per fingerprint folder at a time. Each call
re-checks the file sizes, so objects that take turns (sequentially) see each other's rows;
two concurrent writers can interleave or cut off each other's appends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

__all__ = ["EmbeddingCache", "tensors_digest", "text_key"]

_HEX = re.compile(r"[0-9a-f]{64}")
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_LINE = 65  # 64 hex chars + newline
_ITEM = np.dtype("<f4").itemsize


def text_key(text: str) -> str:
    """Cache key of a text: sha256 hex of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tensors_digest(items: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 hex over (name, dtype, shape, bytes) of named tensors, in name order."""
    h = hashlib.sha256()
    for name, t in sorted(items, key=lambda x: x[0]):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


class _Store:
    """The rows and keys of one fingerprint."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows_path, self.keys_path = folder / "rows.f32", folder / "keys.txt"
        self.dim = int(json.loads((folder / "meta.json").read_text())["dim"])
        self.index: dict[str, int] = {}
        self.n = 0  # valid entries: rows with a complete key line
        self._seen = (-1, -1)  # file sizes at the last sync
        self._mm: np.memmap | None = None
        self.sync()

    def _sizes(self) -> tuple[int, int]:
        paths = (self.rows_path, self.keys_path)
        rows, keys = (p.stat().st_size if p.exists() else 0 for p in paths)
        return rows, keys

    def sync(self) -> None:
        """Pick up entries appended since the last look (e.g. by another cache object)."""
        sizes = self._sizes()
        if sizes == self._seen:
            return
        if sizes[0] < self.n * self.dim * _ITEM or sizes[1] < self.n * _LINE:
            self.index, self.n = {}, 0  # files shrank under us: read them again
        data = b""
        if sizes[1]:
            with open(self.keys_path, "rb") as f:
                f.seek(self.n * _LINE)
                data = f.read()
        text = data.decode("ascii", errors="replace")  # one char per byte
        start, limit = self.n, min(sizes[0] // (self.dim * _ITEM), self.n + len(text) // _LINE)
        for i in range(start, limit):
            line = text[(i - start) * _LINE : (i - start + 1) * _LINE]
            if line[-1] != "\n" or not _HEX.fullmatch(line[:-1]):
                break  # a torn or garbled line: it and everything after it are ignored
            self.index.setdefault(line[:-1], i)
            self.n = i + 1
        self._seen = sizes

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), dim) float32 copy of the given rows."""
        if len(idx) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._mm is None or self._mm.shape[0] != self.n:
            self._mm = np.memmap(self.rows_path, dtype="<f4", mode="r", shape=(self.n, self.dim))
        return np.asarray(self._mm[idx], dtype=np.float32)

    def append(self, keys: list[str], rows: np.ndarray) -> None:
        self._mm = None  # release the map before the files change (needed on Windows)
        for path, size in (
            (self.rows_path, self.n * self.dim * _ITEM),
            (self.keys_path, self.n * _LINE),
        ):
            if path.exists() and path.stat().st_size != size:
                os.truncate(path, size)  # cut a torn tail left by a crash
        for path, payload in (
            (self.rows_path, np.ascontiguousarray(rows, dtype="<f4").tobytes()),
            (self.keys_path, "".join(k + "\n" for k in keys).encode("ascii")),
        ):
            with open(path, "ab") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
        for k in keys:
            self.index[k] = self.n
            self.n += 1
        self._seen = self._sizes()


class EmbeddingCache:
    """Embeddings keyed by (encoder fingerprint, sha256 hex of the text), stored under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._stores: dict[str, _Store] = {}
        self.hits = 0
        self.misses = 0

    def _folder(self, fingerprint: str) -> Path:
        if not isinstance(fingerprint, str) or not _SAFE.fullmatch(fingerprint):
            raise ValueError(
                f"fingerprint must match {_SAFE.pattern} (a folder name), got {fingerprint!r}"
            )
        return self.root / fingerprint

    def _store(self, fingerprint: str, dim: int | None = None) -> _Store | None:
        """The store of a fingerprint; created (with ``dim``) if missing and dim is given."""
        store = self._stores.get(fingerprint)
        if store is None:
            folder = self._folder(fingerprint)
            if not (folder / "meta.json").exists():
                if dim is None:
                    return None
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / "meta.json.tmp"
                tmp.write_text(json.dumps({"format": 1, "dim": int(dim), "dtype": "float32"}))
                os.replace(tmp, folder / "meta.json")
            store = self._stores[fingerprint] = _Store(folder)
        else:
            store.sync()
        if dim is not None and store.dim != dim:
            raise ValueError(
                f"embedding cache {store.folder} holds rows of dim {store.dim}, "
                f"got dim {dim}: same fingerprint with a different encoder output size"
            )
        return store

    def get(
        self, fingerprint: str, keys: list[str], *, dim: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Look keys up: ``(found (N,) bool, rows (found.sum(), D) float32)``, rows in key order.

        ``dim`` (optional) is checked against the stored dim (ValueError on mismatch).
        An unknown fingerprint gives ``found`` all False and rows of shape ``(0, dim or 0)``.
        """
        _check_keys(keys)
        store = self._store(fingerprint)
        if store is None:
            self.misses += len(keys)
            return np.zeros(len(keys), dtype=bool), np.zeros((0, dim or 0), dtype=np.float32)
        if dim is not None:
            self._store(fingerprint, dim)
        idx = np.fromiter((store.index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        found = idx >= 0
        self.hits += int(found.sum())
        self.misses += int((~found).sum())
        return found, store.rows(idx[found])

    def put(self, fingerprint: str, keys: list[str], rows: np.ndarray) -> int:
        """Append rows (N, D) for keys not yet stored; returns how many were added."""
        _check_keys(keys)
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[0] != len(keys):
            raise ValueError(f"rows must have shape ({len(keys)}, dim), got {rows.shape}")
        if not np.isfinite(rows).all():
            raise ValueError("rows contain NaN or inf; refusing to cache them")
        store = self._store(fingerprint, rows.shape[1])
        assert store is not None
        new: list[int] = []
        seen: set[str] = set()
        for i, k in enumerate(keys):
            if k not in store.index and k not in seen:  # first occurrence of a new key
                seen.add(k)
                new.append(i)
        if new:
            store.append([keys[i] for i in new], rows[new])
        return len(new)

    def fingerprints(self) -> list[str]:
        """Fingerprints with a folder under root, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "meta.json").is_file())

    def stats(self) -> dict:
        """Rows/dim/bytes per fingerprint, totals, and this object's hit/miss counts."""
        per = {}
        for fp in self.fingerprints():
            store = self._store(fp)
            assert store is not None
            per[fp] = {"rows": store.n, "dim": store.dim, "bytes": store.n * store.dim * _ITEM}
        return {
            "root": str(self.root),
            "rows": sum(s["rows"] for s in per.values()),
            "bytes": sum(s["bytes"] for s in per.values()),
            "hits": self.hits,
            "misses": self.misses,
            "fingerprints": per,
        }

    def __len__(self) -> int:
        """Cached rows over all fingerprints."""
        return self.stats()["rows"]


def _check_keys(keys: list[str]) -> None:
    for k in keys:
        if not isinstance(k, str) or not _HEX.fullmatch(k):
            raise ValueError(f"cache keys must be 64-char lowercase sha256 hex strings, got {k!r}")
