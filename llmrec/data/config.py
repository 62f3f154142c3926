"""Configuration of the data loaders: column mappings and how bad rows are handled."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmrec.configs import strict_from_dict

ON_INVALID = ("error", "drop")
TIMESTAMP_UNITS = ("s", "ms", "us", "ns")


@dataclass
class InteractionColumns:
    """Which column of the interactions file holds what."""

    user: str = field(default="user_id", metadata={"help": "User id column."})
    item: str = field(default="item_id", metadata={"help": "Item id column."})
    timestamp: str = field(
        default="timestamp",
        metadata={"help": "Event time: numbers (unix time, see timestamp_unit) or date strings."},
    )
    rating: str | None = field(default=None, metadata={"help": "Optional rating column."})
    event: str | None = field(
        default=None, metadata={"help": "Optional event type column (click, buy, ...)."}
    )

    def required(self) -> dict[str, str]:
        return {"user": self.user, "item": self.item, "timestamp": self.timestamp}

    def optional(self) -> dict[str, str]:
        return {k: v for k, v in (("rating", self.rating), ("event", self.event)) if v}


@dataclass
class ItemColumns:
    """Which column of the items file is the id, and which are text fields."""

    item: str = field(default="item_id", metadata={"help": "Item id column."})
    text_fields: list[str] | None = field(
        default=None,
        metadata={"help": "Columns that describe the item; None = every column but the id."},
    )
    rename: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "Rename fields for templates, e.g. {'movie_title': 'title'}."},
    )
    list_separators: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "Split string fields into lists, e.g. {'genres': '|'}."},
    )


@dataclass
class LoadConfig:
    """How local files are read and validated."""

    interaction_columns: InteractionColumns = field(
        default_factory=InteractionColumns, metadata={"help": "Interactions column mapping."}
    )
    item_columns: ItemColumns = field(
        default_factory=ItemColumns, metadata={"help": "Items column mapping."}
    )
    on_invalid: str = field(
        default="error",
        metadata={
            "help": "Rows with a missing id, an unparsable timestamp or rating, an unknown item, "
            "or an item with no text: 'error' stops with file, line and column; 'drop' removes "
            "them, counted and logged in dataset.report."
        },
    )
    encoding: str = field(default="utf-8", metadata={"help": "Text encoding of csv/tsv/jsonl."})
    timestamp_unit: str = field(
        default="s", metadata={"help": f"Unit of numeric timestamps, one of {TIMESTAMP_UNITS}."}
    )
    template: str | None = field(
        default=None,
        metadata={"help": "Item text template: builtin name, .jinja path or template string."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.interaction_columns, dict):
            self.interaction_columns = _build(InteractionColumns, self.interaction_columns)
        if isinstance(self.item_columns, dict):
            self.item_columns = _build(ItemColumns, self.item_columns)
        if self.on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {ON_INVALID}, got {self.on_invalid!r}")
        if self.timestamp_unit not in TIMESTAMP_UNITS:
            raise ValueError(
                f"timestamp_unit must be one of {TIMESTAMP_UNITS}, got {self.timestamp_unit!r}"
            )


_build = strict_from_dict


def build_config(cls: type, config: object | None, overrides: dict) -> object:
    """``config`` if given (then no overrides allowed), else ``cls(**overrides)`` checked."""
    if config is not None:
        if overrides:
            raise ValueError(
                f"pass either a {cls.__name__} or keyword overrides, not both: {sorted(overrides)}"
            )
        if not isinstance(config, cls):
            raise TypeError(f"expected a {cls.__name__}, got {type(config).__name__}")
        return config
    return _build(cls, overrides)
