"""Atomic model folders and versioned JSON configs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmrec.version import __version__

logger = logging.getLogger("llmrec")


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` whole.

    A crash (or exception) leaves ``target`` as it was: never a half-written model folder.
    Files in an existing ``target`` that the new save does not write (e.g. a hand-written
    note) are carried over.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            for old in target.iterdir():
                if not (tmp / old.name).exists():
                    dest = tmp / old.name
                    if old.is_dir():
                        shutil.copytree(old, dest)
                    else:
                        shutil.copy2(old, dest)
            backup = target.with_name(f".{target.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(target, backup)
            os.replace(tmp, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Sorted keys, with the library version recorded."""
    payload = {"llmrec_version": __version__, **data}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: not an llmrec model folder (no {path.name})")
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("llmrec_version", None)
    return data
