from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llmrec.data import DataError, LoadConfig, load_dataset
from tests.conftest import INTER_CSV, ITEMS_CSV


def _rows(text: str) -> list[dict]:
    lines = text.strip().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]


def _write_format(write, fmt: str) -> tuple:
    inter, items = _rows(INTER_CSV), _rows(ITEMS_CSV)
    if fmt == "csv":
        return write("i.csv", INTER_CSV), write("t.csv", ITEMS_CSV)
    if fmt == "tsv":
        return (
            write("i.tsv", INTER_CSV.replace(",", "\t")),
            write("t.tsv", ITEMS_CSV.replace(",", "\t")),
        )
    if fmt == "jsonl":
        return (
            write("i.jsonl", "\n".join(json.dumps(r) for r in inter) + "\n"),
            write("t.jsonl", "\n".join(json.dumps(r) for r in items) + "\n"),
        )
    p1, p2 = write("i.parquet", b""), write("t.parquet", b"")
    pd.DataFrame(inter).to_parquet(p1)
    pd.DataFrame(items).to_parquet(p2)
    return p1, p2


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_formats_load_the_same(write, fmt):
    inter, items = _write_format(write, fmt)
    ds = load_dataset(
        interactions=inter,
        items=items,
        interaction_columns={"rating": "rating"},
        item_columns={"list_separators": {"genres": "|"}},
    )
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 5, 8)
    assert ds.catalog.row(0) == {"title": "Alien", "genres": ["Sci-Fi", "Horror"], "year": "1979"}
    assert ds.catalog.text(0) == "Alien. Genres: Sci-Fi, Horror. Year: 1979"
    # a batch of texts (rendered together, in order, repeats and negative indices allowed)
    some = ds.catalog.texts_for([3, 0, 3, -1])
    assert some == [ds.catalog.text(3), ds.catalog.text(0), ds.catalog.text(3),
                    ds.catalog.text(4)]
    assert some == [ds.catalog.texts()[i] for i in (3, 0, 3, 4)]
    with pytest.raises(IndexError, match="item index 5 out of range for 5 items"):
        ds.catalog.with_template(None).texts_for([1, 5])
    seqs = [[ds.catalog.ids[i] for i in s] for s in ds.sequences()]
    assert seqs == [["i3", "i1", "i2", "i4"], ["i1", "i2", "i5", "i3"]]


def test_timestamp_ties_keep_file_order_not_item_id(tiny_dataset):
    seq = [tiny_dataset.catalog.ids[i] for i in tiny_dataset.sequences()[0]]
    assert seq[:3] == ["i3", "i1", "i2"]  # all at t=100: file order, although i1 < i3


def test_column_mapping_and_iso_dates(write):
    inter = write("log.csv", "uid,asin,when\na,x,2020-01-02T00:00:00Z\na,y,2020-01-01\n")
    items = write("meta.csv", "asin,name\nx,Thing X\ny,Thing Y\n")
    ds = load_dataset(
        interactions=inter,
        items=items,
        interaction_columns={"user": "uid", "item": "asin", "timestamp": "when"},
        item_columns={"item": "asin"},
    )
    assert [ds.catalog.ids[i] for i in ds.sequences()[0]] == ["y", "x"]
    assert ds.interactions.frame["timestamp"].iloc[1] == pd.Timestamp("2020-01-01").timestamp()


def test_folder_with_interactions_and_items(tiny_files):
    ds = load_dataset(tiny_files[0].parent)
    assert len(ds.interactions) == 8


def test_recbole_atomic_folder(write):
    write(
        "mini/mini.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t5\n1\t11\t3\t5\n",
    )
    folder = write(
        "mini/mini.item",
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
        '10\tThe "Quoted" Film\tSci-Fi Horror\n11\tOther\tDrama\n',
    ).parent
    ds = load_dataset(folder)
    assert ds.catalog.row(0) == {"movie_title": 'The "Quoted" Film', "class": ["Sci-Fi", "Horror"]}
    assert ds.interactions.frame["rating"].tolist() == [4.0, 3.0]


BAD_CASES = [
    # (name, interactions text, items text, kwargs, message regex)
    (
        "missing column",
        "user,item_id,timestamp\nu,i1,1\n",
        ITEMS_CSV,
        {},
        r"i\.csv:1: column 'user_id': missing user column 'user_id'.*did you mean 'user'",
    ),
    (
        "bad timestamp",
        "user_id,item_id,timestamp\nu,i1,1\nu,i2,yesterday\n",
        ITEMS_CSV,
        {},
        r"i\.csv:3: column 'timestamp': unparsable timestamp.*'yesterday'",
    ),
    (
        "missing timestamp",
        "user_id,item_id,timestamp\nu,i1,\n",
        ITEMS_CSV,
        {},
        r"i\.csv:2: column 'timestamp': missing timestamp",
    ),
    (
        "unknown item",
        "user_id,item_id,timestamp\nu,i1,1\nu,zz,2\n",
        ITEMS_CSV,
        {},
        r"i\.csv:3: column 'item_id': item id not in the items file 'zz'",
    ),
    (
        "missing user",
        "user_id,item_id,timestamp\n,i1,1\n",
        ITEMS_CSV,
        {},
        r"i\.csv:2: column 'user_id': missing user id",
    ),
    (
        "bad rating",
        "user_id,item_id,timestamp,r\nu,i1,1,five\n",
        ITEMS_CSV,
        {"interaction_columns": {"rating": "r"}},
        r"i\.csv:2: column 'r': unparsable rating 'five'",
    ),
    (
        "no text",
        "user_id,item_id,timestamp\nu,i1,1\n",
        "item_id,title\ni1,Alien\ni2,\n",
        {},
        r"t\.csv:3: item has no text",
    ),
    (
        "duplicate item",
        "user_id,item_id,timestamp\nu,i1,1\n",
        "item_id,title\ni1,Alien\ni2,B\ni1,Again\n",
        {},
        r"t\.csv:4: column 'item_id': duplicate item id 'i1' \(first at .*t\.csv:2\)",
    ),
    ("empty file", "", ITEMS_CSV, {}, r"i\.csv: file is empty"),
    (
        "header only",
        "user_id,item_id,timestamp\n",
        ITEMS_CSV,
        {},
        r"i\.csv: has a header .* no data",
    ),
    (
        "duplicate header",
        "user_id,item_id,user_id\nu,i1,1\n",
        ITEMS_CSV,
        {},
        r"i\.csv:1: duplicate column name",
    ),
    (
        "bad encoding",
        b"user_id,item_id,timestamp\nu,i1,1\nb\xe9b\xe9,i2,2\n",
        ITEMS_CSV,
        {},
        r"i\.csv:3: not valid utf-8 \(byte 0xe9 at character 2\).*encoding='latin-1'",
    ),
    (
        "missing text field",
        "user_id,item_id,timestamp\nu,i1,1\n",
        ITEMS_CSV,
        {"item_columns": {"text_fields": ["title", "plot"]}},
        r"missing text field column 'plot'",
    ),
]


@pytest.mark.parametrize(
    ("inter", "items", "kwargs", "match"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_bad_input_names_file_line_column(write, inter, items, kwargs, match):
    i, t = write("i.csv", inter), write("t.csv", items)
    with pytest.raises(DataError, match=match):
        load_dataset(interactions=i, items=t, **kwargs)


def test_bad_json_line_is_located(write):
    i = write("i.jsonl", '{"user_id": "u", "item_id": "i1", "timestamp": 1}\n{"user_id": oops}\n')
    t = write("t.csv", ITEMS_CSV)
    with pytest.raises(DataError, match=r"i\.jsonl:2: invalid JSON"):
        load_dataset(interactions=i, items=t)


def test_drop_mode_counts_every_dropped_row(write):
    i = write("i.csv", "user_id,item_id,timestamp\nu,i1,1\nu,zz,2\nu,i2,never\n,i3,3\nv,i3,4\n")
    t = write("t.csv", "item_id,title\ni1,A\ni2,B\ni3,C\ni4,\n")
    ds = load_dataset(interactions=i, items=t, on_invalid="drop")
    assert len(ds.interactions) == 2 and ds.n_items == 3
    reasons = {d.reason.rsplit(" in ", 1)[0]: (d.count, d.examples) for d in ds.report.drops}
    assert reasons["item id not in the items file (column 'item_id')"] == (1, [f"{i}:3"])
    assert (
        reasons[
            "unparsable timestamp (expected unix time or an ISO 8601 date) (column 'timestamp')"
        ][0]
        == 1
    )
    assert reasons["missing user id (column 'user_id')"] == (1, [f"{i}:5"])
    assert ds.report.total() == 4  # 3 interactions + 1 item without text
    assert "dropped 1 rows: item id not in the items file" in ds.report.summary()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"on_invalid": "skip"}, ValueError, r"on_invalid must be one of \('error', 'drop'\)"),
        ({"timestamp_unit": "days"}, ValueError, r"timestamp_unit must be one of"),
        ({"colums": {}}, ValueError, r"LoadConfig: unknown key\(s\) \['colums'\]"),
        (
            {"interaction_columns": {"usr": "u"}},
            ValueError,
            r"InteractionColumns: unknown key\(s\) \['usr'\]",
        ),
    ],
)
def test_config_errors(tiny_files, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load_dataset(interactions=tiny_files[0], items=tiny_files[1], **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("no-such-dataset",), {}, r"unknown dataset 'no-such-dataset'.*ml-100k"),
        ((), {}, r"needs a dataset name"),
        ((), {"interactions": "x.csv"}, r"pass both interactions= and items="),
        (("ml-100k",), {"source": "nowhere"}, r"source must be one of"),
    ],
)
def test_load_dataset_argument_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(*args, **kwargs)


def test_both_config_and_overrides_is_an_error(tiny_files):
    with pytest.raises(ValueError, match="either a LoadConfig or keyword overrides"):
        load_dataset(
            interactions=tiny_files[0], items=tiny_files[1], config=LoadConfig(), on_invalid="drop"
        )


def test_millisecond_timestamps(write):
    i = write("i.csv", "user_id,item_id,timestamp\nu,i1,1500\nu,i2,500\n")
    ds = load_dataset(interactions=i, items=write("t.csv", ITEMS_CSV), timestamp_unit="ms")
    np.testing.assert_allclose(ds.interactions.frame["timestamp"], [1.5, 0.5])


def test_single_item_text_renders_only_that_item(tiny_dataset):
    from llmrec.data import ItemCatalog

    cat = tiny_dataset.catalog
    lazy = ItemCatalog(list(cat.ids), cat.table.copy(), cat.template)
    assert lazy.text(2) == cat.texts()[2] and lazy.text(-1) == cat.texts()[-1]
    assert lazy._texts is None  # nothing else was rendered
    with pytest.raises(IndexError, match="out of range"):
        lazy.text(len(cat))
    assert lazy.texts() == cat.texts() and lazy.text(2) == cat.texts()[2]
