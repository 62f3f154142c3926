"""Two CPU processes (torchrun, gloo, through accelerate) train the same model as one process.

Tolerance: every weight within 1e-4 after 5 epochs (measured here: 5e-6; the remaining
difference is float summation order in the all-reduce).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "finetune" / "ddp_check.py"
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_process_ddp_matches_single_process(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun not found next to the interpreter"
    _run([sys.executable, str(SCRIPT), str(tmp_path / "one.json"), "--batch-size", "26"],
         tmp_path)
    _run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", str(SCRIPT),
          str(tmp_path / "two.json"), "--batch-size", "13"], tmp_path)
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert (one["world_size"], two["world_size"]) == (1, 2)
    diff = np.abs(np.array(one["weights"]) - np.array(two["weights"])).max()
    assert diff < 1e-4, f"2-process weights differ by {diff}"
    assert one["valid"] == pytest.approx(two["valid"])


def test_train_recommender_entry_point_under_torchrun(tmp_path, tiny_encoder_dir):
    """finetune/train_recommender.py under 2 gloo processes: one process encodes the catalog
    (the other reuses the cache), both train, the main one saves a loadable model."""
    from tests.conftest import INTER_CSV, ITEMS_CSV

    data = tmp_path / "data"
    data.mkdir()
    (data / "interactions.csv").write_text(INTER_CSV)
    (data / "items.csv").write_text(ITEMS_CSV)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    script = SCRIPT.parent / "train_recommender.py"
    _run([torchrun, "--nproc_per_node", "2", "--master_port", "29519", str(script),
          "--dataset", str(data), "--encoder", tiny_encoder_dir, "--save_dir",
          str(tmp_path / "model"), "--cache_dir", str(tmp_path / "cache"), "--cpu",
          "--epochs", "2", "--batch_size", "2", "--hidden_size", "32", "--n_heads", "4",
          "--max_len", "7", "--no_progress", "--output_dir", str(tmp_path / "ckpt")],
         tmp_path)
    from llmrec import Recommender

    rec = Recommender.from_pretrained(tmp_path / "model")
    assert len(rec.recommend(["i1", "i2"], k=2)) == 2
    assert (tmp_path / "ckpt" / "learning_curve.png").is_file()
