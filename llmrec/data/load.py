"""``load_dataset``: one entry point for named datasets, RecBole folders and local files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmrec.data.build import build_dataset
from llmrec.data.config import LoadConfig, build_config
from llmrec.data.dataset import RecDataset
from llmrec.data.errors import LoadReport
from llmrec.data.io import read_table
from llmrec.data.sources import available, lookup
from llmrec.data.sources.recbole import load_atomic

_EXTS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def load_dataset(
    name_or_path: str | Path | None = None,
    *,
    interactions: str | Path | None = None,
    items: str | Path | None = None,
    config: LoadConfig | None = None,
    cache_dir: str | Path | None = None,
    source: str | None = None,
    **overrides: Any,
) -> RecDataset:
    """Load a dataset: item catalog + interactions.

    - a registered name (``"ml-100k"``, see :func:`llmrec.data.available_datasets`),
    - a RecBole atomic folder (``<name>.inter`` + ``<name>.item``),
    - a folder with ``interactions.<ext>`` and ``items.<ext>`` (csv, tsv, jsonl, parquet),
    - or explicit files: ``load_dataset(interactions="log.csv", items="items.jsonl", ...)``.

    ``config`` (a :class:`LoadConfig`) or its fields as keywords (``on_invalid="drop"``,
    ``interaction_columns={"user": "uid"}``...) control parsing; unknown keywords are errors.
    """
    config = build_config(LoadConfig, config, overrides)  # type: ignore[assignment]
    if interactions is not None or items is not None:
        if interactions is None or items is None:
            raise ValueError("pass both interactions= and items= (the catalog gives item texts)")
        if name_or_path is not None:
            raise ValueError("pass either a dataset name/folder or interactions= and items=")
        return _from_files(Path(interactions), Path(items), config, name=Path(interactions).stem)
    if name_or_path is None:
        raise ValueError("load_dataset needs a dataset name, a folder, or interactions= and items=")
    name = str(name_or_path)
    fn = lookup(name)
    if fn is not None:
        return fn(config, cache_dir, source)
    if source is not None:
        raise ValueError(f"source= applies to named datasets only, not to {name!r}")
    path = Path(name)
    if path.is_dir():
        atomic = sorted(path.glob("*.inter"))
        if atomic:
            return load_atomic(path, config, name=atomic[0].stem)
        inter = _find(path, "interactions")
        item = _find(path, "items")
        if inter and item:
            return _from_files(inter, item, config, name=path.name)
        raise FileNotFoundError(
            f"{path}: no RecBole atomic files (*.inter + *.item) and no "
            f"interactions.<ext> + items.<ext> with <ext> in {_EXTS}"
        )
    if path.is_file():
        raise ValueError(f"{path} is one file; pass interactions={str(path)!r} and items=...")
    raise ValueError(
        f"unknown dataset {name!r}: not a registered name ({', '.join(available())}) "
        "and not an existing folder"
    )


def _find(folder: Path, stem: str) -> Path | None:
    for ext in _EXTS:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def _from_files(inter: Path, items: Path, config: LoadConfig, *, name: str) -> RecDataset:
    report = LoadReport()
    report.note(f"read {inter} and {items}")
    item_table = read_table(items, encoding=config.encoding)
    inter_table = read_table(inter, encoding=config.encoding)
    return build_dataset(name, item_table, inter_table, config, report=report)
