"""RecBole atomic files (``name.inter`` + ``name.item``) and MovieLens-100k from the RecBole
wheel, which ships them (fetched from PyPI, so it works without any other network)."""

from __future__ import annotations

import copy
import re
import zipfile
from pathlib import Path

from llmrec.data.build import build_dataset
from llmrec.data.config import InteractionColumns, ItemColumns, LoadConfig
from llmrec.data.dataset import RecDataset
from llmrec.data.errors import DataError, LoadReport
from llmrec.data.io import atomic_fields, read_table
from llmrec.data.sources.cache import cache_dir, fetch_wheel

RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
MOVIELENS_LICENSE = (
    "MovieLens (GroupLens Research, University of Minnesota): research use only, no "
    "commercial use or redistribution without permission; cite F. Maxwell Harper and Joseph "
    "A. Konstan, 2015, The MovieLens Datasets: History and Context, ACM TiiS 5(4)."
)
# token_seq fields that are prose (kept as one string), not lists of tags.
_PROSE = re.compile(r"title|name|desc|text|review|summary|abstract", re.IGNORECASE)


def load_atomic(
    folder: str | Path,
    config: LoadConfig | None = None,
    *,
    name: str | None = None,
    rename: dict[str, str] | None = None,
    template: str | None = None,
    license: str | None = None,
) -> RecDataset:
    """Load ``<name>.inter`` and ``<name>.item`` from a RecBole atomic-file folder."""
    folder = Path(folder)
    name = name or folder.name
    inter_path, item_path = folder / f"{name}.inter", folder / f"{name}.item"
    for p in (inter_path, item_path):
        if not p.is_file():
            raise DataError(f"RecBole atomic folder lacks {p.name}", file=str(folder))
    config = copy.deepcopy(config) if config is not None else LoadConfig()
    items = read_table(item_path, encoding=config.encoding)
    items.frame, item_types = atomic_fields(items.frame)
    inter = read_table(inter_path, encoding=config.encoding)
    inter.frame, inter_types = atomic_fields(inter.frame)
    defaults = LoadConfig()
    if config.item_columns == defaults.item_columns:
        config.item_columns = ItemColumns(
            item="item_id",
            rename=rename or {},
            list_separators={
                f: " " for f, t in item_types.items() if t == "token_seq" and not _PROSE.search(f)
            },
        )
    if config.interaction_columns == defaults.interaction_columns:
        config.interaction_columns = InteractionColumns(
            rating="rating" if "rating" in inter_types else None
        )
    if template is not None and config.template is None:
        config.template = template
    report = LoadReport()
    report.note(f"read RecBole atomic files {inter_path.name}, {item_path.name} from {folder}")
    return build_dataset(name, items, inter, config, report=report, license=license)


def ml100k_from_wheel(
    config: LoadConfig | None = None, *, cache: str | Path | None = None
) -> RecDataset:
    """MovieLens-100k from the ``recbole==1.2.1`` wheel (sha256-checked), cached."""
    root = cache_dir(cache)
    folder = root / "ml-100k-recbole"
    if not (folder / "ml-100k.inter").is_file() or not (folder / "ml-100k.item").is_file():
        wheel = fetch_wheel("recbole==1.2.1", RECBOLE_WHEEL, RECBOLE_WHEEL_SHA256,
                            root / "wheels")
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for suffix in ("inter", "item"):
                member = f"recbole/dataset_example/ml-100k/ml-100k.{suffix}"
                tmp = folder / f"ml-100k.{suffix}.part"
                tmp.write_bytes(zf.read(member))
                tmp.replace(folder / f"ml-100k.{suffix}")
    ds = load_atomic(
        folder,
        config,
        name="ml-100k",
        rename={"movie_title": "title", "release_year": "year", "class": "genres"},
        template="item_text_movie",
        license=MOVIELENS_LICENSE,
    )
    ds.report.note(f"source: {RECBOLE_WHEEL} (sha256 {RECBOLE_WHEEL_SHA256[:12]}...)")
    return ds
