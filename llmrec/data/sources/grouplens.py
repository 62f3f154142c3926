"""MovieLens zips from GroupLens (ml-100k, ml-1m, ml-latest-small), downloaded and cached.

Each zip is fetched once to ``<cache>/grouplens/<name>.zip``. GroupLens publishes no
checksums, so the sha256 of the first download is pinned beside the zip (``.sha256``, see
:func:`~llmrec.data.sources.cache.fetch_url`) and enforced on every later load. The raw
files are converted once to ``<cache>/grouplens/<name>/`` (``items.jsonl``: item_id, title,
year, genres; ``interactions.tsv``: user_id, item_id, rating, timestamp in the ratings file's
row order), then loaded through :func:`read_table` and :func:`build_dataset`.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from llmrec.data.build import build_dataset
from llmrec.data.config import InteractionColumns, LoadConfig
from llmrec.data.dataset import RecDataset
from llmrec.data.errors import DataError, Drop, LoadReport
from llmrec.data.io import read_table
from llmrec.data.sources import register
from llmrec.data.sources.cache import cache_dir, fetch_url, sha256_of
from llmrec.data.sources.recbole import MOVIELENS_LICENSE

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"
GROUPLENS_URL_ENV = "LLMREC_GROUPLENS_URL"
GROUPLENS_DATASETS = ("ml-100k", "ml-1m", "ml-latest-small")
ITEMS_FILE, INTERACTIONS_FILE, MARKER_FILE = "items.jsonl", "interactions.tsv", "converted.json"
FORMAT_VERSION = 1  # bump when the normalised files change: cached conversions are redone
# u.genre order of the 19 flags in ml-100k's u.item ("unknown" is not kept as a genre).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
_YEAR = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*(?:\d{4})?)?\)\s*$")  # "(1995)", "(2006–2007)"

_RATING_FIELDS = ("user id", "item id", "rating", "timestamp")
Converter = Callable[[Path], tuple[list[Drop], list[str]]]  # folder -> (drops, notes)


def base_url(explicit: str | None, env: str, default: str) -> str:
    """``explicit``, else ``$env``, else ``default``; always ending in '/'."""
    url = explicit or os.environ.get(env) or default
    return url if url.endswith("/") else url + "/"


def fetch_pinned(url: str, dest: Path) -> str:
    """Download ``url`` to ``dest`` unless cached; return its (pinned, verified) sha256."""
    fetch_url(url, dest)
    pinned = dest.with_name(dest.name + ".sha256")
    return pinned.read_text().strip() if pinned.is_file() else sha256_of(dest)


@contextmanager
def atomic_writer(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text file that appears at ``path`` only when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_conversion(
    folder: Path, sources: dict[str, str], convert: Converter
) -> tuple[list[Drop], list[str]]:
    """Run ``convert(folder)`` unless ``folder`` already holds a conversion of exactly
    ``sources`` (file name -> sha256). Returns the conversion's drops and notes, which are
    stored in the marker file so that later loads report them too."""
    marker = folder / MARKER_FILE
    try:
        state = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    files_ok = (folder / ITEMS_FILE).is_file() and (folder / INTERACTIONS_FILE).is_file()
    if (isinstance(state, dict) and state.get("format") == FORMAT_VERSION
            and state.get("sources") == sources and files_ok):
        return [Drop(**d) for d in state["drops"]], list(state["notes"])
    marker.unlink(missing_ok=True)  # a half-updated folder is never taken as converted
    drops, notes = convert(folder)
    with atomic_writer(marker) as fh:
        json.dump({"format": FORMAT_VERSION, "sources": sources,
                   "drops": [asdict(d) for d in drops], "notes": notes}, fh, indent=1)
    return drops, notes


def load_normalised(
    name: str,
    folder: Path,
    config: LoadConfig | None,
    report: LoadReport,
    *,
    template: str | None,
    license: str,
) -> RecDataset:
    """Load ``items.jsonl`` + ``interactions.tsv`` written by a converter (UTF-8, seconds)."""
    config = copy.deepcopy(config) if config is not None else LoadConfig()
    if config.interaction_columns == InteractionColumns():
        config.interaction_columns = InteractionColumns(rating="rating")
    if config.template is None:
        config.template = template
    config.timestamp_unit = "s"  # the normalised files always hold unix seconds
    items = read_table(folder / ITEMS_FILE, encoding="utf-8")
    inter = read_table(folder / INTERACTIONS_FILE, encoding="utf-8")
    return build_dataset(name, items, inter, config, report=report, license=license)


def replay(report: LoadReport, drops: list[Drop], notes: list[str]) -> None:
    """Record a conversion's drops and notes in ``report`` (logged each load)."""
    for note in notes:
        report.note(note)
    for d in drops:
        report.drop(d.stage, d.reason, d.count, unit=d.unit, examples=d.examples)


def _open(zf: zipfile.ZipFile, member: str, encoding: str, newline: str) -> io.TextIOWrapper:
    try:
        return io.TextIOWrapper(zf.open(member), encoding=encoding, newline=newline)
    except KeyError:
        raise DataError(f"the zip has no member {member!r}", file=zf.filename) from None


def _member_lines(zf: zipfile.ZipFile, member: str, where: str,
                  encoding: str) -> Iterator[tuple[int, str]]:
    """(1-based line, text) of the non-blank lines of a zip member."""
    lineno = 0
    with _open(zf, member, encoding, "\n") as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                text = line.rstrip("\r\n")
                if text.strip():
                    yield lineno, text
        except UnicodeDecodeError as err:
            raise DataError(f"not valid {encoding}: {err.reason}", file=where,
                            line=lineno + 1) from None


def _number(text: str, kind: type, what: str, where: str, line: int) -> str:
    try:
        value = kind(text.strip())
    except ValueError:
        raise DataError(f"unparsable {what} {text!r}", file=where, line=line,
                        column=what) from None
    if value != value or abs(value) == float("inf"):
        raise DataError(f"unparsable {what} {text!r}", file=where, line=line, column=what)
    return text.strip()


def _split_title(title: str) -> tuple[str, str | None]:
    """"Toy Story (1995)" -> ("Toy Story", "1995"); no trailing year -> (title, None)."""
    m = _YEAR.search(title)
    if m is None or not title[: m.start()].strip():
        return title.strip(), None
    return title[: m.start()].strip(), m.group(1)


def _ratings(zf: zipfile.ZipFile, member: str, sep: str, header: str | None,
             encoding: str, out: TextIO) -> None:
    where = f"{zf.filename}/{member}"
    out.write("user_id\titem_id\trating\ttimestamp\n")
    num, sep_re = r"(?:\d+(?:\.\d*)?)", re.escape(sep)
    fast = re.compile(sep_re.join([r"\d+", r"\d+", num, r"\d+"]))  # plain well-formed lines
    lines = _member_lines(zf, member, where, encoding)
    if header is not None:
        line, text = next(lines, (1, ""))
        if text.strip() != header:
            raise DataError(f"expected the header {header!r}, got {text!r}", file=where,
                            line=line)
    for line, text in lines:
        parts = text.split(sep)
        if len(parts) != 4:
            raise DataError(f"expected 4 {sep!r}-separated fields (user, item, rating, "
                            f"timestamp), got {len(parts)}: {text!r}", file=where, line=line)
        if fast.fullmatch(text):
            out.write(text.replace(sep, "\t") + "\n")
            continue
        for value, kind, what in zip(parts, (int, int, float, int), _RATING_FIELDS,
                                     strict=True):  # slow path: names the bad field
            _number(value, kind, what, where, line)
        out.write("\t".join([p.strip() for p in parts]) + "\n")


def _item(out: TextIO, seen: dict[str, int], where: str, line: int, item_id: str,
          title: str, genres: list[str], fallback_year: str | None = None) -> None:
    item_id = _number(item_id, int, "item id", where, line)
    if item_id in seen:
        raise DataError(f"duplicate movie id {item_id} (first at line {seen[item_id]})",
                        file=where, line=line)
    seen[item_id] = line
    title, year = _split_title(title)
    row = {"item_id": item_id, "title": title, "year": year or fallback_year, "genres": genres}
    out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _movies_100k(zf: zipfile.ZipFile, member: str, out: TextIO) -> None:
    where, seen = f"{zf.filename}/{member}", {}
    for line, text in _member_lines(zf, member, where, "latin-1"):
        parts = text.split("|")
        if len(parts) != 5 + len(ML100K_GENRES):
            raise DataError(f"expected {5 + len(ML100K_GENRES)} '|'-separated fields, got "
                            f"{len(parts)}", file=where, line=line)
        flags = parts[5:]
        if any(f.strip() not in ("0", "1") for f in flags):
            raise DataError(f"genre flags must be 0 or 1, got {flags}", file=where, line=line)
        genres = [g for g, f in zip(ML100K_GENRES, flags, strict=True)
                  if f.strip() == "1" and g != "unknown"]
        released = re.search(r"(\d{4})\s*$", parts[2])
        _item(out, seen, where, line, parts[0], parts[1], genres,
              released.group(1) if released else None)


def _movies_1m(zf: zipfile.ZipFile, member: str, out: TextIO) -> None:
    where, seen = f"{zf.filename}/{member}", {}
    for line, text in _member_lines(zf, member, where, "latin-1"):
        parts = text.split("::")
        if len(parts) < 3:
            raise DataError(f"expected 3 '::'-separated fields (id, title, genres), got "
                            f"{len(parts)}", file=where, line=line)
        title = "::".join(parts[1:-1])
        genres = [g.strip() for g in parts[-1].split("|") if g.strip()]
        _item(out, seen, where, line, parts[0], title, genres)


def _movies_csv(zf: zipfile.ZipFile, member: str, out: TextIO) -> None:
    where, seen = f"{zf.filename}/{member}", {}
    with _open(zf, member, "utf-8", "") as fh:
        reader = csv.reader(fh)
        done = 0  # last line read
        try:
            for row in reader:
                start, done = done + 1, reader.line_num
                if not any(c.strip() for c in row):
                    continue
                if start == 1:
                    if [c.strip() for c in row] != ["movieId", "title", "genres"]:
                        raise DataError(f"expected the header movieId,title,genres, got {row}",
                                        file=where, line=start)
                    continue
                if len(row) != 3:
                    raise DataError(f"expected 3 fields (movieId, title, genres), got "
                                    f"{len(row)}", file=where, line=start)
                genres = [g.strip() for g in row[2].split("|")
                          if g.strip() and g.strip() != "(no genres listed)"]
                _item(out, seen, where, start, row[0], row[1], genres)
        except (UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"unreadable CSV: {err}", file=where, line=done + 1) from None


# name -> (ratings member, separator, header, encoding, movies member, movies parser)
_SPECS: dict[str, tuple[str, str, str | None, str, str, Callable]] = {
    "ml-100k": ("ml-100k/u.data", "\t", None, "latin-1", "ml-100k/u.item", _movies_100k),
    "ml-1m": ("ml-1m/ratings.dat", "::", None, "latin-1", "ml-1m/movies.dat", _movies_1m),
    "ml-latest-small": ("ml-latest-small/ratings.csv", ",", "userId,movieId,rating,timestamp",
                        "utf-8", "ml-latest-small/movies.csv", _movies_csv),
}


def load_grouplens(
    name: str,
    config: LoadConfig | None = None,
    *,
    cache: str | Path | None = None,
    url: str | None = None,
) -> RecDataset:
    """Download (once) and load one GroupLens MovieLens zip.

    ``url`` is the base folder (default ``$LLMREC_GROUPLENS_URL``, else
    :data:`GROUPLENS_URL`); the zip is ``<url><name>.zip``. No sha256 is published: the first
    download's is pinned and checked later. A malformed raw line raises :class:`DataError`
    naming the zip member and line, whatever ``config.on_invalid`` says.
    """
    if name not in _SPECS:
        raise ValueError(f"GroupLens dataset must be one of {GROUPLENS_DATASETS}, got {name!r}")
    ratings, sep, header, encoding, movies, parse_movies = _SPECS[name]
    zip_url = base_url(url, GROUPLENS_URL_ENV, GROUPLENS_URL) + f"{name}.zip"
    root = cache_dir(cache) / "grouplens"
    zip_path = root / f"{name}.zip"
    sha = fetch_pinned(zip_url, zip_path)

    def convert(folder: Path) -> tuple[list[Drop], list[str]]:
        with zipfile.ZipFile(zip_path) as zf:
            with atomic_writer(folder / ITEMS_FILE) as out:
                parse_movies(zf, movies, out)
            with atomic_writer(folder / INTERACTIONS_FILE) as out:
                _ratings(zf, ratings, sep, header, encoding, out)
        return [], [f"converted {ratings} and {movies} to {folder} (ratings in file order)"]

    drops, notes = cached_conversion(root / name, {zip_path.name: sha}, convert)
    report = LoadReport()
    report.note(f"source: {zip_url} (sha256 {sha[:12]}..., pinned on first download)")
    replay(report, drops, notes)
    return load_normalised(name, root / name, config, report, template="item_text_movie",
                           license=MOVIELENS_LICENSE)


def _grouplens_only(name: str, source: str | None) -> None:
    if (source or "grouplens") != "grouplens":
        raise ValueError(f"{name}: source must be 'grouplens', got {source!r}")


@register("ml-1m")
def ml_1m(config: LoadConfig | None, cache: str | Path | None, source: str | None) -> RecDataset:
    """MovieLens-1M: 6,040 users, 3,883 movies, 1,000,209 ratings (GroupLens zip)."""
    _grouplens_only("ml-1m", source)
    return load_grouplens("ml-1m", config, cache=cache)


@register("ml-latest-small")
def ml_latest_small(config: LoadConfig | None, cache: str | Path | None,
                    source: str | None) -> RecDataset:
    """MovieLens latest-small: 610 users, 9,742 movies, 100,836 ratings (GroupLens zip)."""
    _grouplens_only("ml-latest-small", source)
    return load_grouplens("ml-latest-small", config, cache=cache)
