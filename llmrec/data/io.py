"""Reading local tables (csv, tsv, jsonl, parquet, RecBole atomic) through ``datasets``.

Before parsing, text files are scanned once: empty files, bad encodings and line numbers are
found there, so every later error can name the file and the line of the offending row.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.errors import DataError

TEXT_FORMATS = {".csv": ",", ".tsv": "\t", ".txt": "\t", ".inter": "\t", ".item": "\t",
                ".user": "\t"}
JSON_FORMATS = (".jsonl", ".json", ".ndjson")
PARQUET_FORMATS = (".parquet", ".pq")
ATOMIC_FORMATS = (".inter", ".item", ".user")
_CHUNK = 16 << 20


@dataclass
class Table:
    """A parsed file: its rows as a DataFrame and a map from row to source line."""

    frame: pd.DataFrame
    file: str
    _lines: np.ndarray | None  # line number of each row, or None when not exact
    header_line: int | None = None  # 1 for csv / tsv files with a header row

    def line_of(self, row: int) -> int | None:
        """1-based line of data row ``row``, or None where the format has no exact lines."""
        return None if self._lines is None else int(self._lines[row])

    def where(self, row: int) -> str:
        """``file:line`` (or ``file: row N``) for messages."""
        line = self.line_of(row)
        return f"{self.file}:{line}" if line is not None else f"{self.file}: row {row + 1}"

    def error(self, row: int, column: str | None, message: str) -> DataError:
        line = self.line_of(row)
        if line is None:
            message = f"row {row + 1}: {message}"
        return DataError(message, file=self.file, line=line, column=column)


def _scan_lines(path: Path, encoding: str) -> np.ndarray:
    """Line numbers (1-based) of the non-blank lines; raises on undecodable bytes."""
    starts: list[np.ndarray] = []
    line_base = 0
    carry = b""
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            data = carry + chunk
            if not chunk:
                carry = b""
            else:
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut], data[cut:]
            if data:
                try:
                    data.decode(encoding)
                except UnicodeDecodeError as err:
                    before = data[: err.start]
                    line = line_base + before.count(b"\n") + 1
                    col = err.start - (before.rfind(b"\n") + 1) + 1
                    raise DataError(
                        f"not valid {encoding} (byte 0x{data[err.start]:02x} at character "
                        f"{col}); pass encoding='latin-1' (or the file's real encoding)",
                        file=str(path),
                        line=line,
                    ) from None
                lines = data.split(b"\n")
                if data.endswith(b"\n"):
                    lines = lines[:-1]
                nonblank = np.flatnonzero([bool(x.strip()) for x in lines]) + line_base + 1
                starts.append(nonblank)
                line_base += len(lines)
            if not chunk:
                break
    return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)


def _header(path: Path, sep: str, encoding: str, quoting: int) -> list[str]:
    with path.open(encoding=encoding, newline="") as fh:
        for row in csv.reader(fh, delimiter=sep, quoting=quoting):
            if any(cell.strip() for cell in row):
                return [c.strip() for c in row]
    return []


def read_table(path: str | Path, *, encoding: str = "utf-8", sep: str | None = None) -> Table:
    """Read one file; the format follows the extension (``sep`` overrides the delimiter)."""
    import datasets

    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", file=str(path))
    if path.stat().st_size == 0:
        raise DataError("file is empty", file=str(path))
    suffix = path.suffix.lower()
    datasets.disable_progress_bars()

    if suffix in PARQUET_FORMATS:
        frame = datasets.load_dataset("parquet", data_files=str(path), split="train").to_pandas()
        if frame.empty:
            raise DataError("has no data rows", file=str(path))
        return Table(frame, str(path), None)

    lines = _scan_lines(path, encoding)
    if suffix in JSON_FORMATS:
        if len(lines) == 0:
            raise DataError("has no data rows (only blank lines)", file=str(path))
        try:
            ds = datasets.load_dataset(
                "json", data_files=str(path), split="train", encoding=encoding
            )
        except Exception as err:  # locate the bad line; datasets does not say
            _raise_bad_json(path, encoding, err)
        frame = ds.to_pandas()
        return Table(frame, str(path), lines if len(lines) == len(frame) else None)

    if suffix not in TEXT_FORMATS and sep is None:
        known = sorted([*TEXT_FORMATS, *JSON_FORMATS, *PARQUET_FORMATS])
        raise DataError(f"unknown file type {suffix!r}; use one of {known}", file=str(path))
    delimiter = sep or TEXT_FORMATS[suffix]
    # RecBole atomic and tsv files are not quoted: a '"' in a title is a character.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    header = _header(path, delimiter, encoding, quoting)
    if len(lines) <= 1:
        raise DataError(f"has a header {header} but no data rows", file=str(path))
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(f"duplicate column name(s) {dupes} in the header", file=str(path), line=1)
    features = datasets.Features({c: datasets.Value("string") for c in header})
    try:
        ds = datasets.load_dataset(
            "csv",
            data_files=str(path),
            split="train",
            sep=delimiter,
            quoting=quoting,
            features=features,
            keep_default_na=False,
            na_filter=False,
            encoding=encoding,
        )
    except Exception as err:
        raise DataError(f"could not parse as a {delimiter!r}-separated table: {err}",
                        file=str(path)) from err
    frame = ds.to_pandas()
    data_lines = lines[1:]
    return Table(
        frame, str(path), data_lines if len(data_lines) == len(frame) else None, int(lines[0])
    )


def _raise_bad_json(path: Path, encoding: str, err: Exception) -> None:
    with path.open(encoding=encoding) as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as jerr:
                raise DataError(
                    f"invalid JSON at character {jerr.colno}: {jerr.msg}",
                    file=str(path),
                    line=lineno,
                ) from None
            if not isinstance(value, dict):
                raise DataError(
                    f"each line must be a JSON object, got {type(value).__name__}",
                    file=str(path),
                    line=lineno,
                ) from None
    raise DataError(f"could not read as JSON lines: {err}", file=str(path)) from err


def atomic_fields(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Strip RecBole ``name:type`` headers; returns the renamed frame and name -> type."""
    types = {}
    rename = {}
    for col in frame.columns:
        name, _, kind = str(col).partition(":")
        types[name] = kind or "token"
        rename[col] = name
    return frame.rename(columns=rename), types
