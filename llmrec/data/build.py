"""Validate parsed tables and turn them into a :class:`RecDataset`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmrec.data.catalog import ItemCatalog
from llmrec.data.config import LoadConfig
from llmrec.data.dataset import Interactions, RecDataset
from llmrec.data.errors import DataError, LoadReport
from llmrec.data.io import Table
from llmrec.data.template import ItemTemplate, is_empty

_UNIT_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass
class _Problems:
    """Row problems of one table, handled together by ``on_invalid``."""

    table: Table
    stage: str
    items: list[tuple[str, str | None, np.ndarray, pd.Series | None]] = field(default_factory=list)

    def add(self, reason: str, column: str | None, mask: np.ndarray,
            values: pd.Series | None = None) -> None:
        if mask.any():
            self.items.append((reason, column, mask, values))

    def resolve(self, on_invalid: str, report: LoadReport) -> np.ndarray:
        """Raise for the first bad row (``error``) or return the keep-mask (``drop``)."""
        n = len(self.table.frame)
        if not self.items:
            return np.ones(n, dtype=bool)
        if on_invalid == "error":
            row, reason, column, values = min(
                (int(np.flatnonzero(m)[0]), r, c, v) for r, c, m, v in self.items
            )
            shown = f" {values.iloc[row]!r}" if values is not None else ""
            hint = " (or load with on_invalid='drop' to skip such rows, counted in the report)"
            raise self.table.error(row, column, f"{reason}{shown}{hint}")
        bad = np.zeros(n, dtype=bool)
        for reason, column, mask, _ in self.items:
            fresh = mask & ~bad  # each row is counted once, under its first reason
            rows = np.flatnonzero(fresh)
            where = f"{reason} (column '{column}')" if column else reason
            report.drop(self.stage, f"{where} in {self.table.file}", len(rows),
                        examples=[self.table.where(r) for r in rows[:5]])
            bad |= mask
        return ~bad


def _require(table: Table, columns: dict[str, str] | list[tuple[str, str]]) -> None:
    have = [str(c) for c in table.frame.columns]
    pairs = columns.items() if isinstance(columns, dict) else columns
    for role, col in pairs:
        if col not in have:
            close = difflib.get_close_matches(col, have, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"missing {role} column {col!r}; the file has columns {have}{hint} "
                "(map columns with interaction_columns= / item_columns=)",
                file=table.file, line=table.header_line, column=col,
            )


def _ids(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Ids as stripped strings, and the mask of missing ones."""
    missing = series.isna().to_numpy()
    ids = series.astype(str).str.strip()
    ids = ids.str.replace(r"\.0$", "", regex=True) if series.dtype.kind == "f" else ids
    return ids, missing | (ids == "").to_numpy()


def _field_values(series: pd.Series, sep: str | None) -> list:
    out = []
    for v in series.tolist():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, str):
            v = v.strip()
            if sep is not None:
                v = [p.strip() for p in v.split(sep) if p.strip()]
        out.append(None if is_empty(v) else v)
    return out


def build_catalog(table: Table, config: LoadConfig, report: LoadReport) -> ItemCatalog:
    """Validate the items table: ids present and unique, every item with some text."""
    cols = config.item_columns
    _require(table, {"item id": cols.item})
    frame = table.frame
    text_fields = cols.text_fields
    if text_fields is None:
        text_fields = [c for c in frame.columns if c != cols.item]
    else:
        _require(table, [("text field", c) for c in text_fields])
    if not text_fields:
        raise DataError("no text columns besides the item id", file=table.file, column=cols.item)
    ids, missing_id = _ids(frame[cols.item])
    values = {cols.rename.get(c, c): _field_values(frame[c], cols.list_separators.get(c))
              for c in text_fields}
    no_text = np.array([all(values[f][i] is None for f in values) for i in range(len(frame))])
    problems = _Problems(table, "load")
    problems.add("missing item id", cols.item, missing_id)
    problems.add(f"item has no text in any of {list(values)}", None, no_text & ~missing_id,
                 ids)
    keep = problems.resolve(config.on_invalid, report)
    kept_ids = ids[keep]
    dup = kept_ids.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(keep)[dup]
        first, again = rows[0], next(r for r in rows[1:] if ids.iloc[r] == ids.iloc[rows[0]])
        raise table.error(
            int(again), cols.item,
            f"duplicate item id {ids.iloc[again]!r} (first at {table.where(int(first))})",
        )
    table_out = pd.DataFrame({f: [v for v, k in zip(vals, keep, strict=True) if k]
                              for f, vals in values.items()})
    return ItemCatalog(kept_ids.tolist(), table_out, ItemTemplate.resolve(config.template))


def _timestamps(series: pd.Series, unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds since the epoch (float64), the mask of unparsable and of blank values."""
    if pd.api.types.is_datetime64_any_dtype(series):
        ts = pd.to_datetime(series, utc=True)
        secs = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
        return secs, np.zeros(len(secs), dtype=bool), np.isnan(secs)
    numeric = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    secs = numeric * _UNIT_SCALE[unit]
    todo = np.isnan(numeric)
    if todo.any():
        text = series[todo].astype(str).str.strip()
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        secs[todo] = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    blank = series.isna().to_numpy() | (series.astype(str).str.strip() == "").to_numpy()
    return secs, np.isnan(secs) & ~blank, blank


def build_interactions(
    table: Table, catalog: ItemCatalog, config: LoadConfig, report: LoadReport
) -> Interactions:
    """Validate the interactions table and map ids to internal indices."""
    cols = config.interaction_columns
    _require(table, {**cols.required(), **cols.optional()})
    frame = table.frame
    users, missing_user = _ids(frame[cols.user])
    items, missing_item = _ids(frame[cols.item])
    secs, bad_ts, blank_ts = _timestamps(frame[cols.timestamp], config.timestamp_unit)
    known = items.isin(catalog.ids).to_numpy()
    problems = _Problems(table, "load")
    problems.add("missing user id", cols.user, missing_user)
    problems.add("missing item id", cols.item, missing_item)
    problems.add("missing timestamp", cols.timestamp, blank_ts)
    problems.add("unparsable timestamp (expected unix time or an ISO 8601 date)",
                 cols.timestamp, bad_ts, frame[cols.timestamp])
    problems.add("item id not in the items file", cols.item, ~known & ~missing_item, items)
    rating = np.full(len(frame), np.nan)
    if cols.rating:
        raw = frame[cols.rating]
        rating = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        blank = raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy()
        problems.add("unparsable rating", cols.rating, np.isnan(rating) & ~blank, raw)
    keep = problems.resolve(config.on_invalid, report)
    rows = np.flatnonzero(keep)
    user_codes, user_ids = pd.factorize(users.iloc[rows], sort=False)
    out = pd.DataFrame({
        "user": user_codes.astype(np.int64),
        "item": catalog.indices(items.iloc[rows]),
        "timestamp": secs[rows],
        "rating": rating[rows],
        "event": frame[cols.event].iloc[rows].astype(str).to_numpy() if cols.event else None,
        "source_row": rows.astype(np.int64),
    })
    return Interactions(out, [str(u) for u in user_ids])


def build_dataset(
    name: str,
    items: Table,
    interactions: Table,
    config: LoadConfig,
    *,
    report: LoadReport | None = None,
    license: str | None = None,
) -> RecDataset:
    """Catalog + interactions, validated; drops are recorded in ``report``."""
    report = report or LoadReport()
    catalog = build_catalog(items, config, report)
    inter = build_interactions(interactions, catalog, config, report)
    if len(inter) == 0:
        raise DataError("no interactions left after validation", file=interactions.file)
    return RecDataset(name, catalog, inter, report, license)
