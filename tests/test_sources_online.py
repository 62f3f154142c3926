"""GroupLens and Amazon downloads, offline: tiny archives in the raw formats via file:// URLs."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest

from llmrec.data.errors import DataError
from llmrec.data.load import load_dataset
from llmrec.data.sources.amazon import AMAZON_LICENSE, load_amazon
from llmrec.data.sources.grouplens import load_grouplens
from llmrec.data.sources.recbole import MOVIELENS_LICENSE

# ml-1m: user 1 has a tie (10 then 20 at 978300760), user 2 a tie against id order (20, 10).
ML1M_RATINGS = """1::10::5::978300760
1::20::3::978300760
2::20::4::978300000
1::30::4::978300700
2::10::2::978300000
3::30:: 1e0::978301000
"""
ML1M_MOVIES = """10::Misérables, Les (1995)::Drama|Musical
20::Toy Story (1995)::Animation|Children's|Comedy
30::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi
"""


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


ML100K_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250949\n"
ML100K_ITEM = (
    f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{_flags(5)}\n"
    f"302|L.A. Confidential (1997)|01-Jan-1997||http://x|{_flags(6, 10, 16)}\n"
    f"303|Être et avoir|01-Jan-2002||http://x|{_flags(0)}\n"
)
LATEST_RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964982703\n"
LATEST_MOVIES = (
    "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
    '2,"American President, The (1995)",Comedy|Drama|Romance\n'
    "3,Babylon 5,(no genres listed)\n"
)


def _zip(folder: Path, name: str, files: dict[str, str], encoding: str = "latin-1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(f"{name}/{member}", text.encode(encoding))
    return path


@pytest.fixture
def grouplens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    server = tmp_path / "server"
    _zip(server, "ml-1m", {"ratings.dat": ML1M_RATINGS, "movies.dat": ML1M_MOVIES})
    _zip(server, "ml-100k", {"u.data": ML100K_DATA, "u.item": ML100K_ITEM})
    _zip(server, "ml-latest-small", {"ratings.csv": LATEST_RATINGS, "movies.csv": LATEST_MOVIES},
         "utf-8")
    monkeypatch.setenv("LLMREC_GROUPLENS_URL", server.as_uri())
    return server


def _seqs(ds) -> dict[str, list[str]]:
    ids = ds.catalog.ids
    return {u: [ids[i] for i in s] for u, s in zip(ds.interactions.user_ids, ds.sequences(),
                                                     strict=True)}


def test_ml_1m(grouplens: Path, tmp_path: Path) -> None:
    ds = load_dataset("ml-1m", cache_dir=tmp_path / "cache")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (3, 3, 6)
    assert ds.catalog.ids == ["10", "20", "30"]
    row = ds.catalog.row(0)
    assert (row["title"], row["year"], row["genres"]) == ("Misérables, Les", "1995",
                                                          ["Drama", "Musical"])
    assert ds.catalog.text(2) == "Cité des enfants perdus, La (1995). Genres: Adventure, Sci-Fi"
    # time order, ties in file order (not item id order)
    assert _seqs(ds) == {"1": ["30", "10", "20"], "2": ["20", "10"], "3": ["30"]}
    assert ds.interactions.frame["rating"].tolist() == [5, 3, 4, 4, 2, 1]
    assert ds.license == MOVIELENS_LICENSE
    assert any("ml-1m.zip" in n and n.startswith("source: file://") for n in ds.report.notes)


def test_ml_100k_grouplens_source(grouplens: Path, tmp_path: Path) -> None:
    ds = load_dataset("ml-100k", source="grouplens", cache_dir=tmp_path / "cache")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 3, 3)
    assert ds.catalog.row(1)["genres"] == ["Crime", "Film-Noir", "Thriller"]
    assert ds.catalog.text(0) == "Kolya (1996). Genres: Comedy"
    # no year in the title: the release date's; 'unknown' is not a genre
    assert ds.catalog.text(2) == "Être et avoir (2002)"
    assert _seqs(ds) == {"196": ["242", "302"], "186": ["302"]}
    with pytest.raises(ValueError, match="source must be one of"):
        load_dataset("ml-100k", source="nope", cache_dir=tmp_path / "cache")


def test_ml_latest_small(grouplens: Path, tmp_path: Path) -> None:
    ds = load_dataset("ml-latest-small", cache_dir=tmp_path / "cache")
    assert ds.catalog.row(1)["title"] == "American President, The"
    assert ds.catalog.text(2) == "Babylon 5"
    assert ds.interactions.frame["rating"].tolist() == [4.0, 3.5]
    assert _seqs(ds) == {"1": ["1", "2"]}


def test_cache_reused_and_pinned(grouplens: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_grouplens("ml-1m", cache=cache)
    converted = cache / "grouplens" / "ml-1m" / "interactions.tsv"
    stamp = converted.stat().st_mtime_ns
    assert (cache / "grouplens" / "ml-1m.zip.sha256").is_file()
    (grouplens / "ml-1m.zip").unlink()  # no download possible any more
    ds = load_dataset("ml-1m", cache_dir=cache)
    assert len(ds.interactions) == 6 and converted.stat().st_mtime_ns == stamp
    with (cache / "grouplens" / "ml-1m.zip").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(OSError, match=r"ml-1m\.zip: sha256 .* does not match the expected"):
        load_dataset("ml-1m", cache_dir=cache)


@pytest.mark.parametrize(
    ("ratings", "movies", "match"),
    [
        ("1::10::5::1\n1::10::5\n", ML1M_MOVIES,
         r"ml-1m\.zip/ml-1m/ratings\.dat:2: expected 4 '::'-separated fields"),
        ("1::10::5::1\n\n1::10::x::1\n", ML1M_MOVIES,
         r"ml-1m/ratings\.dat:3: column 'rating': unparsable rating 'x'"),
        ("1::10::5::1\n", ML1M_MOVIES + "10::Again (1990)::Drama\n",
         r"ml-1m/movies\.dat:4: duplicate movie id 10 \(first at line 1\)"),
    ],
)
def test_malformed_grouplens(tmp_path: Path, ratings: str, movies: str, match: str) -> None:
    server = tmp_path / "server"
    _zip(server, "ml-1m", {"ratings.dat": ratings, "movies.dat": movies})
    with pytest.raises(DataError, match=match):
        load_grouplens("ml-1m", cache=tmp_path / "cache", url=server.as_uri())
    assert not (tmp_path / "cache" / "grouplens" / "ml-1m" / "converted.json").exists()


def test_malformed_zip(tmp_path: Path) -> None:
    server = tmp_path / "server"
    _zip(server, "ml-latest-small", {"ratings.csv": "u,i,r,t\n1,1,4,1\n",
                                     "movies.csv": LATEST_MOVIES}, "utf-8")
    with pytest.raises(DataError, match=r"ratings\.csv:1: expected the header"):
        load_grouplens("ml-latest-small", cache=tmp_path / "c1", url=server.as_uri())
    _zip(server, "ml-1m", {"ratings.dat": ML1M_RATINGS})
    with pytest.raises(DataError, match=r"ml-1m\.zip: the zip has no member 'ml-1m/movies\.dat'"):
        load_grouplens("ml-1m", cache=tmp_path / "c2", url=server.as_uri())


# ---- Amazon ---------------------------------------------------------------------------------

REVIEWS = [
    {"reviewerID": "U1", "asin": "A2", "overall": 4.0, "unixReviewTime": 100},
    {"reviewerID": "U1", "asin": "A1", "overall": 5.0, "unixReviewTime": 100},  # tie: A2 first
    {"reviewerID": "U2", "asin": "A3", "overall": 3.0, "unixReviewTime": 50},  # no metadata
    {"reviewerID": "U2", "asin": "A2", "overall": 2.0, "unixReviewTime": 60},
    {"reviewerID": "U2", "asin": "A4", "overall": 1.0, "unixReviewTime": 70},  # A4: no text
    {"reviewerID": "U1", "asin": "A1", "overall": 4.0, "unixReviewTime": 90, "vote": "2"},
]
META = [
    {"asin": "A2", "title": "Rose &amp; Oud <b>Cream</b>", "brand": "Acme",
     "category": ["Beauty", "Skin Care"], "feature": ["<li>50 ml</li>", ""],
     "description": ["<p>Rich cream.</p>", "Works " + "well " * 400]},
    {"asin": "A9", "title": "Never reviewed"},
    {"asin": "A1", "title": "Soap", "description": [], "category": [], "main_cat": "Beauty"},
    {"asin": "A2", "title": "Duplicate record, ignored"},
    {"asin": "A4", "title": "", "brand": "OnlyBrand", "description": ["<br/>"]},
]


def _gz(path: Path, rows: list, extra: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows) + extra
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)


@pytest.fixture
def amazon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    server = tmp_path / "amazon-server"
    _gz(server / "categoryFilesSmall" / "Luxury_Beauty_5.json.gz", REVIEWS)
    _gz(server / "metaFiles2" / "meta_Luxury_Beauty.json.gz", META)
    monkeypatch.setenv("LLMREC_AMAZON_URL", server.as_uri())
    return server


def test_amazon(amazon: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ds = load_dataset("amazon-Luxury_Beauty", cache_dir=cache)
    assert ds.name == "amazon-Luxury_Beauty" and ds.license == AMAZON_LICENSE
    assert ds.catalog.ids == ["A2", "A1"]  # metadata order, reviewed items with text only
    row = ds.catalog.row(0)
    assert row["title"] == "Rose & Oud Cream" and row["features"] == ["50 ml"]
    assert row["description"].startswith("Rich cream. Works well")
    assert row["description"].endswith(" ...") and len(row["description"]) <= 1010
    assert ds.catalog.text(1) == "Soap. Categories: Beauty"
    assert _seqs(ds) == {"U1": ["A1", "A2", "A1"], "U2": ["A2"]}
    assert ds.interactions.frame["rating"].tolist() == [4.0, 5.0, 2.0, 4.0]
    meta = "meta_Luxury_Beauty.json.gz"
    assert [(d.reason, d.count, d.unit) for d in ds.report.drops] == [
        (f"duplicate metadata record for an item in {meta} (kept the first)", 1,
         "metadata records"),
        (f"item without title, description or features in {meta}", 1, "items"),
        (f"review of an item missing from {meta}", 1, "rows"),
        (f"review of an item without text in {meta}", 1, "rows"),
    ]
    assert [d.examples[0].rsplit("/", 1)[1] for d in ds.report.drops] == [
        f"{meta}:4", f"{meta}:5", "Luxury_Beauty_5.json.gz:3", "Luxury_Beauty_5.json.gz:5"]
    assert any("1 metadata records of items without" in n for n in ds.report.notes)
    # second load: cached (no download), the same drops reported again
    (amazon / "metaFiles2" / "meta_Luxury_Beauty.json.gz").unlink()
    again = load_dataset("amazon-Luxury_Beauty", cache_dir=cache)
    assert again.report.drops == ds.report.drops and again.report.notes == ds.report.notes


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("{not json\n", r"Luxury_Beauty_5\.json\.gz:7: invalid JSON"),
        ('{"reviewerID": "U9", "asin": "A1", "unixReviewTime": 5}\n',
         r"_5\.json\.gz:7: column 'overall': missing or invalid number None"),
    ],
)
def test_amazon_malformed(tmp_path: Path, extra: str, match: str) -> None:
    server = tmp_path / "server"
    _gz(server / "categoryFilesSmall" / "Luxury_Beauty_5.json.gz", REVIEWS, extra)
    _gz(server / "metaFiles2" / "meta_Luxury_Beauty.json.gz", META)
    with pytest.raises(DataError, match=match):
        load_amazon("Luxury_Beauty", cache=tmp_path / "cache", url=server.as_uri())
    assert not list((tmp_path / "cache" / "amazon" / "Luxury_Beauty").glob("*.tsv*"))


def test_amazon_truncated_gz(tmp_path: Path) -> None:
    server = tmp_path / "server"
    _gz(server / "categoryFilesSmall" / "Luxury_Beauty_5.json.gz", REVIEWS * 50)
    _gz(server / "metaFiles2" / "meta_Luxury_Beauty.json.gz", META)
    gz = server / "categoryFilesSmall" / "Luxury_Beauty_5.json.gz"
    gz.write_bytes(gz.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"_5\.json\.gz:\d+: unreadable gzip data"):
        load_amazon("Luxury_Beauty", cache=tmp_path / "cache", url=server.as_uri())


def test_amazon_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"amazon-<Category>: name a category, one of"):
        load_dataset("amazon-", cache_dir=tmp_path)
    monkeypatch.setenv("LLMREC_AMAZON_URL", (tmp_path / "empty").as_uri())
    with pytest.raises(OSError, match=r"could not download .*Not_A_Category_5\.json\.gz"):
        load_dataset("amazon-Not_A_Category", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="file stem"):
        load_amazon("../etc", cache=tmp_path)
    with pytest.raises(OSError, match="could not download"):
        load_amazon("Software", cache=tmp_path, url=(tmp_path / "nothing").as_uri())
