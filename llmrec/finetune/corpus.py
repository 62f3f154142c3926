"""Domain text for adaptation: files read through ``datasets`` (streamed when large), a
recommendation dataset's item texts, or co-interaction pairs from its training logs."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.finetune.config import CorpusArguments

BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".csv": "csv",
            ".parquet": "parquet"}


@dataclass
class Corpus:
    """Training examples: single texts, or (anchor, positive) pairs.

    ``texts`` / ``pairs`` hold an in-memory corpus; ``stream`` a ``datasets.IterableDataset``
    (texts only) whose length is unknown.
    """

    texts: list[str] | None = None
    pairs: list[tuple[str, str]] | None = None
    stream: Any = None
    description: str = ""

    @property
    def is_pairs(self) -> bool:
        return self.pairs is not None

    def __len__(self) -> int:
        if self.stream is not None:
            raise TypeError("a streamed corpus has no length; set max_steps")
        return len(self.pairs if self.pairs is not None else self.texts or [])

    def batches(self, batch_size: int, seed: int, epoch: int, skip: int = 0,
                shuffle_buffer: int = 10_000) -> Iterator[list]:
        """Batches of the epoch in an order fixed by (seed, epoch); the first ``skip``
        batches are left out (resume)."""
        if self.stream is not None:
            stream = self.stream.shuffle(seed=seed, buffer_size=shuffle_buffer)
            stream.set_epoch(epoch)
            batch: list = []
            n = 0
            for row in stream:
                batch.append(row["text"])
                if len(batch) == batch_size:
                    if n >= skip:
                        yield batch
                    n, batch = n + 1, []
            if batch and n >= skip:
                yield batch
            return
        data: list = self.pairs if self.pairs is not None else self.texts  # type: ignore[assignment]
        order = np.random.default_rng([seed, epoch]).permutation(len(data))
        for start in range(skip * batch_size, len(data), batch_size):
            yield [data[i] for i in order[start : start + batch_size]]


def _files(path: Path) -> list[Path]:
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in BUILDERS)
        if not files:
            raise ValueError(f"corpus: no {sorted(BUILDERS)} files in folder {path}")
    kinds = {BUILDERS.get(p.suffix) for p in files}
    if None in kinds:
        raise ValueError(f"corpus: {files[0]} has an unsupported extension; "
                         f"use one of {sorted(BUILDERS)}")
    if len(kinds) > 1:
        raise ValueError(f"corpus: folder {path} mixes file kinds {sorted(kinds)}; "  # type: ignore[type-var]
                         "keep one kind per corpus")
    return files


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _from_files(files: list[Path], args: CorpusArguments) -> Corpus:
    import datasets

    builder = BUILDERS[files[0].suffix]
    size = sum(p.stat().st_size for p in files)
    stream = args.streaming == "yes" or (args.streaming == "auto" and size > _ram_bytes() // 4)
    ds = datasets.load_dataset(builder, data_files=[str(p) for p in files], split="train",
                               streaming=stream)
    field = "text" if builder == "text" else args.text_field
    columns = ds.column_names
    if columns is None:  # a stream knows its columns once read: peek at the first row
        columns = list(next(iter(ds), {}))
    if field not in columns:
        raise ValueError(f"corpus: {files[0]} has no column {field!r} (columns: {columns}); "
                         "set text_field")
    where = f"{len(files)} {builder} file(s) under {files[0].parent}"
    if stream:
        if field != "text":
            ds = ds.rename_column(field, "text")
        ds = ds.select_columns(["text"]).filter(lambda r: isinstance(r["text"], str)
                                                and bool(r["text"].strip()))
        if args.max_texts:
            ds = ds.take(args.max_texts)
        return Corpus(stream=ds, description=f"{where} (streamed, {size / 1e6:.1f} MB)")
    texts = [t for t in ds[field] if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError(f"corpus: {where} holds no non-empty text in {field!r}")
    return Corpus(texts=texts[: args.max_texts], description=f"{where}: {len(texts)} texts")


def cointeraction_pairs(dataset: Any, max_pairs: int | None = None,
                        seed: int = 0) -> list[tuple[str, str]]:
    """(text of an item, text of the next different item) for every consecutive pair in the
    training sequences of ``dataset``'s default split (never its valid / test targets)."""
    split = dataset.split()
    texts = dataset.catalog.texts()
    pairs: list[tuple[str, str]] = []
    for seq in split.train:
        for a, b in itertools.pairwise(seq):
            if a != b:
                pairs.append((texts[int(a)], texts[int(b)]))
    if not pairs:
        raise ValueError("interactions: no user has two consecutive training items")
    if max_pairs is not None and len(pairs) > max_pairs:
        keep = np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[i] for i in sorted(keep)]
    return pairs


def load_corpus(args: CorpusArguments, *, pairs: bool, seed: int = 0) -> Corpus:
    """The corpus ``args`` describes; ``pairs`` asks for co-interaction pairs."""
    from llmrec.data import load_dataset

    if pairs:
        if not args.interactions:
            raise ValueError("interactions: the 'pairs' objective needs a dataset with "
                             "interaction logs (interactions=ml-100k or a dataset folder)")
        ds = load_dataset(args.interactions, cache_dir=args.cache_dir)
        found = cointeraction_pairs(ds, args.max_texts, seed)
        return Corpus(pairs=found, description=f"{len(found)} co-interaction pairs from "
                      f"{ds.name} (training split)")
    path = Path(args.corpus).expanduser()
    if path.is_file() or (path.is_dir() and any(p.suffix in BUILDERS for p in path.rglob("*"))
                          and not _is_dataset_folder(path)):
        return _from_files(_files(path), args)
    try:
        ds = load_dataset(args.corpus, cache_dir=args.cache_dir)
    except (KeyError, FileNotFoundError, ValueError) as err:
        raise ValueError(f"corpus: {args.corpus!r} is neither a text file / folder nor a "
                         f"dataset llmrec can load ({err})") from err
    texts = ds.catalog.texts()[: args.max_texts]
    return Corpus(texts=texts, description=f"{len(texts)} item texts of {ds.name}")


def _is_dataset_folder(path: Path) -> bool:
    """A folder load_dataset reads (RecBole atomic files or interactions.* + items.*)."""
    names = {p.name for p in path.iterdir()}
    return any(n.endswith(".inter") for n in names) or (
        any(n.startswith("interactions.") for n in names)
        and any(n.startswith("items.") for n in names)
    )
