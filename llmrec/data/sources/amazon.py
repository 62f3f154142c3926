"""Amazon Review Data (2018): a category's 5-core reviews plus its item metadata.

``amazon-<Category>`` (e.g. ``amazon-Luxury_Beauty``) fetches ``<Category>_5.json.gz`` and
``meta_<Category>.json.gz`` once to ``<cache>/amazon/``. No checksums are published, so the
first download's sha256 is pinned beside each file (``.sha256``) and enforced later. The gz
files are streamed line by line (never loaded whole) into ``<cache>/amazon/<Category>/``
(``items.jsonl``: item_id, title, brand, categories, features, description;
``interactions.tsv``: user_id, item_id, rating, timestamp in review-file order), then
loaded through :func:`read_table` and :func:`build_dataset`. Reviews of items without
metadata, duplicate metadata records and items without text are dropped, counted in the
dataset's report.
"""

from __future__ import annotations

import gzip
import html
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmrec.data.config import LoadConfig
from llmrec.data.dataset import RecDataset
from llmrec.data.errors import DataError, Drop, LoadReport, logger
from llmrec.data.sources import register
from llmrec.data.sources.cache import cache_dir
from llmrec.data.sources.grouplens import (
    INTERACTIONS_FILE,
    ITEMS_FILE,
    atomic_writer,
    base_url,
    cached_conversion,
    fetch_pinned,
    load_normalised,
    replay,
)

AMAZON_URL = "https://jmcauley.ucsd.edu/data/amazon_v2/"
AMAZON_URL_ENV = "LLMREC_AMAZON_URL"
AMAZON_LICENSE = (
    "Amazon Review Data (2018), Jianmo Ni, Jiacheng Li, Julian McAuley, EMNLP 2019: research "
    "use; cite the paper."
)
# Category file stems of the 2018 5-core files.
AMAZON_CATEGORIES = (
    "AMAZON_FASHION", "All_Beauty", "Appliances", "Arts_Crafts_and_Sewing", "Automotive",
    "Books", "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry",
    "Digital_Music", "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food",
    "Home_and_Kitchen", "Industrial_and_Scientific", "Kindle_Store", "Luxury_Beauty",
    "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments", "Office_Products",
    "Patio_Lawn_and_Garden", "Pet_Supplies", "Prime_Pantry", "Software", "Sports_and_Outdoors",
    "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games",
)
MAX_TITLE_CHARS = 300
MAX_DESCRIPTION_CHARS = 1000
MAX_FEATURES, MAX_FEATURE_CHARS = 10, 200
_TAG = re.compile(r"<[^>]*>")
_STEM = re.compile(r"^[A-Za-z0-9_]+$")


def amazon_urls(category: str, url: str | None = None) -> tuple[str, str]:
    """(reviews, metadata) URLs; base ``url``, else ``$LLMREC_AMAZON_URL``, else the UCSD one."""
    base = base_url(url, AMAZON_URL_ENV, AMAZON_URL)
    return (f"{base}categoryFilesSmall/{category}_5.json.gz",
            f"{base}metaFiles2/meta_{category}.json.gz")


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line, object) of each non-blank line of a gzipped JSON-lines file."""
    lineno = 0
    try:
        with gzip.open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except ValueError as err:
                    raise DataError(f"invalid JSON: {err}", file=str(path), line=lineno) from None
                if not isinstance(obj, dict):
                    raise DataError(f"expected a JSON object, got {type(obj).__name__}",
                                    file=str(path), line=lineno)
                yield lineno, obj
    except (OSError, EOFError) as err:  # truncated / not gzip
        raise DataError(f"unreadable gzip data ({err}); delete the file and its .sha256 to "
                        "download it again", file=str(path), line=lineno + 1) from None


def _field(obj: dict, key: str, kind: type, where: str, line: int) -> str:
    """A required review field as text: an id (no tabs) or a number."""
    value = obj.get(key)
    if kind is str:
        ok = isinstance(value, str) and value.strip() != "" and not re.search(r"\s", value)
        if ok:
            return value
        raise DataError(f"missing or invalid id {value!r}", file=where, line=line, column=key)
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = kind(value)
        if number != number or abs(number) == float("inf"):
            raise ValueError
    except (TypeError, ValueError):
        raise DataError(f"missing or invalid number {value!r}", file=where, line=line,
                        column=key) from None
    return repr(number)


def _clean(value: Any, limit: int) -> str | None:
    """Text without HTML tags or entities, whitespace collapsed, cut at a word near
    ``limit``; lists are joined. None when nothing is left."""
    if isinstance(value, list):
        value = " ".join(v for v in value if isinstance(v, str))
    if not isinstance(value, str):
        return None
    text = " ".join(html.unescape(_TAG.sub(" ", value)).split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.") + " ..."
    return text or None


def _item(obj: dict) -> dict[str, Any] | None:
    """A normalised catalog row, or None when the record has no title, description or
    features."""
    raw_cats = obj.get("category") if isinstance(obj.get("category"), list) else []
    categories = [c for c in (_clean(c, MAX_FEATURE_CHARS) for c in raw_cats) if c]
    if not categories and _clean(obj.get("main_cat"), MAX_FEATURE_CHARS):
        categories = [_clean(obj.get("main_cat"), MAX_FEATURE_CHARS)]
    raw_feats = obj.get("feature") if isinstance(obj.get("feature"), list) else []
    features = [f for f in (_clean(f, MAX_FEATURE_CHARS) for f in raw_feats) if f]
    row = {
        "item_id": obj["asin"],
        "title": _clean(obj.get("title"), MAX_TITLE_CHARS),
        "brand": _clean(obj.get("brand"), MAX_FEATURE_CHARS),
        "categories": categories,
        "features": features[:MAX_FEATURES],
        "description": _clean(obj.get("description"), MAX_DESCRIPTION_CHARS),
    }
    if not (row["title"] or row["description"] or row["features"]):
        return None
    return row


class _Tally:
    """Count of dropped records and the first few locations."""

    def __init__(self) -> None:
        self.count, self.examples = 0, []

    def add(self, where: str) -> None:
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(where)

    def drop(self, reason: str, unit: str) -> list[Drop]:
        return [Drop("load", reason, self.count, unit, self.examples)] if self.count else []


def convert_amazon(reviews: Path, meta: Path, folder: Path) -> tuple[list[Drop], list[str]]:
    """Stream the raw gz files into the normalised files of ``folder``; (drops, notes)."""
    staged = folder / f"reviews.{os.getpid()}.staged.tsv"
    try:
        return _convert(reviews, meta, folder, staged)
    finally:
        staged.unlink(missing_ok=True)


def _convert(reviews: Path, meta: Path, folder: Path, staged: Path) -> tuple[list[Drop], list[str]]:
    asins: set[str] = set()
    with atomic_writer(staged) as out:  # pass 1: reviews, in file order
        for line, obj in _json_lines(reviews):
            user = _field(obj, "reviewerID", str, str(reviews), line)
            asin = _field(obj, "asin", str, str(reviews), line)
            rating = _field(obj, "overall", float, str(reviews), line)
            ts = _field(obj, "unixReviewTime", int, str(reviews), line)
            out.write(f"{line}\t{user}\t{asin}\t{rating}\t{ts}\n")
            asins.add(asin)
    kept: set[str] = set()
    textless: set[str] = set()
    dupes, no_text, unreviewed = _Tally(), _Tally(), 0
    with atomic_writer(folder / ITEMS_FILE) as out:  # pass 2: metadata of reviewed items
        for line, obj in _json_lines(meta):
            asin = _field(obj, "asin", str, str(meta), line)
            if asin not in asins:
                unreviewed += 1
            elif asin in kept or asin in textless:
                dupes.add(f"{meta}:{line}")
            elif (row := _item(obj)) is None:
                textless.add(asin)
                no_text.add(f"{meta}:{line}")
            else:
                kept.add(asin)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    if not kept:
        raise DataError(f"no reviewed item has metadata with text in {meta}", file=str(reviews))
    missing, of_textless = _Tally(), _Tally()
    with atomic_writer(folder / INTERACTIONS_FILE) as out, staged.open(encoding="utf-8") as fh:
        out.write("user_id\titem_id\trating\ttimestamp\n")  # pass 3: keep catalog items
        for record in fh:
            line, rest = record.split("\t", 1)
            asin = rest.split("\t", 2)[1]
            if asin in kept:
                out.write(rest)
            else:
                (of_textless if asin in textless else missing).add(f"{reviews}:{line}")
    drops = [
        *dupes.drop(f"duplicate metadata record for an item in {meta.name} (kept the first)",
                    "metadata records"),
        *no_text.drop(f"item without title, description or features in {meta.name}", "items"),
        *missing.drop(f"review of an item missing from {meta.name}", "rows"),
        *of_textless.drop(f"review of an item without text in {meta.name}", "rows"),
    ]
    notes = [f"converted {reviews.name} and {meta.name} to {folder} (reviews in file order); "
             f"{len(kept)} items, {unreviewed} metadata records of items without 5-core "
             "reviews skipped"]
    return drops, notes


def load_amazon(
    category: str,
    config: LoadConfig | None = None,
    *,
    cache: str | Path | None = None,
    url: str | None = None,
) -> RecDataset:
    """Download (once) and load one category of Amazon Review Data (2018), 5-core.

    ``url`` is the base folder (default ``$LLMREC_AMAZON_URL``, else :data:`AMAZON_URL`).
    Invalid JSON or a review without reviewerID / asin / overall / unixReviewTime raises
    :class:`DataError` naming the gz file and line, whatever ``config.on_invalid`` says.
    """
    if not _STEM.match(category):
        raise ValueError(f"Amazon category must be a file stem like 'Luxury_Beauty', got "
                         f"{category!r}")
    if category not in AMAZON_CATEGORIES:
        logger.warning("amazon: %r is not one of the known 2018 categories %s", category,
                       AMAZON_CATEGORIES)
    reviews_url, meta_url = amazon_urls(category, url)
    root = cache_dir(cache) / "amazon"
    reviews, meta = root / f"{category}_5.json.gz", root / f"meta_{category}.json.gz"
    shas = {reviews.name: fetch_pinned(reviews_url, reviews),
            meta.name: fetch_pinned(meta_url, meta)}
    drops, notes = cached_conversion(root / category, shas,
                                     lambda folder: convert_amazon(reviews, meta, folder))
    report = LoadReport()
    for u in (reviews_url, meta_url):
        sha = shas[u.rsplit("/", 1)[1]]
        report.note(f"source: {u} (sha256 {sha[:12]}..., pinned on first download)")
    replay(report, drops, notes)
    return load_normalised(f"amazon-{category}", root / category, config, report,
                           template=None, license=AMAZON_LICENSE)


@register("amazon-", prefix=True)
def amazon(config: LoadConfig | None, cache: str | Path | None, source: str | None,
           *, name: str) -> RecDataset:
    """``amazon-<Category>``: Amazon Review Data (2018) 5-core reviews + metadata of
    ``<Category>`` (a file stem such as ``Luxury_Beauty``, see :data:`AMAZON_CATEGORIES`)."""
    if (source or "ucsd") != "ucsd":
        raise ValueError(f"{name}: source must be 'ucsd', got {source!r}")
    category = name.removeprefix("amazon-")
    if not category:
        raise ValueError(f"amazon-<Category>: name a category, one of {AMAZON_CATEGORIES}")
    return load_amazon(category, config, cache=cache)
