"""eval/time_to_quality.py: its summary and table (the runs themselves are the benchmark)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "eval" / "time_to_quality.py"


@pytest.fixture(scope="module")
def ttq():
    spec = importlib.util.spec_from_file_location("time_to_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(epochs: int, seed: int, ndcg: float, wall: float, rss: float = 2.0) -> dict:
    return {"epochs": epochs, "seed": seed, "wall_minutes": wall, "train_minutes": wall - 1,
            "peak_rss_gb": rss, "ndcg@10": ndcg, "hr@10": 2 * ndcg, "best_epoch": epochs - 1,
            "epoch_seconds": 12.0, "adapter_epoch_seconds": [90.0],
            "valid_ndcg@10": [0.05] * epochs}


@pytest.mark.parametrize(
    "ndcgs, reaches",
    [
        ((0.0600, 0.0620, 0.0610), True),  # mean 0.0610
        ((0.0700, 0.0500, 0.0600), False),  # mean 0.0600: one good seed is not enough
        ((0.0609,), True),
    ],
)
def test_a_budget_reaches_the_quality_by_its_mean_over_seeds(ttq, ndcgs, reaches):
    runs = [_run(30, s, v, wall=8.0 + s) for s, v in enumerate(ndcgs)]
    (row,) = ttq.summarise(runs, 0.0609)
    assert row["reaches"] is reaches
    assert row["ndcg@10"] == pytest.approx(sum(ndcgs) / len(ndcgs))
    assert row["wall_max"] == 8.0 + len(ndcgs) - 1
    assert (row["ndcg_se"] is None) is (len(ndcgs) == 1)


def test_the_table_gives_ratios_against_recbole_sasrec(ttq):
    runs = [_run(30, 0, 0.0612, 9.0, rss=1.5), _run(50, 0, 0.0640, 14.0, rss=3.3)]
    rows = ttq.summarise(runs, 0.0609)
    assert [r["epochs"] for r in rows] == [30, 50]
    text = ttq.markdown(runs, rows, 0.0609)
    ref = ttq.RECBOLE_SASREC
    assert f"| 30 | 0 | 0.0612 | {0.0612 / ref['ndcg@10']:.2f} | 9.0 / 9.0 | " \
           f"{9.0 / ref['minutes']:.2f} |" in text
    assert f"| {1.5 / ref['peak_rss_gb']:.2f} | yes |" in text
    assert "| 50 | 0 | 0.0640 | 0.1280 | 14.0 | 13.0 | 12.0 | 90 | 3.30 | 49 |" in text


@pytest.mark.parametrize("flag", ["--epochs", "--seed", "--out", "--cache-dir"])
def test_main_args_must_not_set_what_the_script_sets(ttq, flag, capsys):
    with pytest.raises(SystemExit):
        ttq.main(["--main-args", f"{flag} 3"])
    assert f"--main-args must not set {flag}" in capsys.readouterr().err
