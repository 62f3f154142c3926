"""The command line over the same code: data, train, evaluate, recommend."""

from __future__ import annotations

import json

import pytest

from llmrec.cli import build_parser, main
from tests.conftest import ITEMS_CSV


@pytest.fixture
def folder(write):
    rows = ["user_id,item_id,rating,timestamp"]
    rows += [f"u{u},i{(u + k) % 5 + 1},4,{k}" for u in range(6) for k in range(6)]
    write("data/interactions.csv", "\n".join(rows) + "\n")
    return write("data/items.csv", ITEMS_CSV).parent


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for command in ("data", "train", "evaluate", "recommend"):
        assert command in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    assert "--epochs INT" in text and "Maximum number of epochs. (default: 60)" in text


def test_train_evaluate_recommend(folder, tiny_encoder_dir, tmp_path, capsys):
    model = tmp_path / "model"
    rc = main(["train", str(folder), "--output", str(model), "--encoder", tiny_encoder_dir,
               "--epochs", "3", "--no-progress", "--model-hidden-size", "32",
               "--model-n-heads", "4", "--model-max-len", "7", "--cache-dir", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| popularity |" in out and "| llmrec |" in out and (model / "config.json").is_file()

    assert main(["evaluate", str(folder), "--model", str(model), "--k", "3"]) == 0
    assert "ndcg@3" in capsys.readouterr().out

    assert main(["recommend", "--model", str(model), "--history", "i1", "i2", "-k", "2",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["items"]) == 2 and result["items"][0]["rank"] == 1

    assert main(["recommend", "--model", str(model), "--history", "i1", "i2", "-k", "2",
                 "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("  1. ") and lines[1].startswith("     ")  # item, explanation


def test_errors_are_reported_not_raised(folder, tmp_path, capsys):
    assert main(["recommend", "--model", str(tmp_path / "missing"), "--history", "i1"]) == 2
    assert "not an llmrec model folder" in capsys.readouterr().err
    assert main(["data", "no-such-dataset"]) == 2
    assert "unknown dataset 'no-such-dataset'" in capsys.readouterr().err


def test_safety_scan_writes_a_report_by_reason(write, tmp_path, capsys):
    write("scan/items.csv", "item_id,title\na,Kill Bill\nb,I will find you and kill you\n"
          "c,Die Hard\nd,Secret Stuff\n")
    write("scan/interactions.csv", "user_id,item_id,timestamp\nu,a,1\n")
    policy = write("policy.yaml", "deny_items: [d]\n")
    report = tmp_path / "report.md"
    assert main(["safety", "scan", str(tmp_path / "scan"), "--policy", str(policy),
                 "--out", str(report)]) == 0
    text = report.read_text()
    assert text.startswith("# Safety scan: 2 of 4 items blocked")
    assert "| policy.deny_items:policy | 1 |" in text
    assert "| b | I will find you and kill you |" in text and "| a |" not in text
    assert "2 of 4 items blocked" in capsys.readouterr().out
