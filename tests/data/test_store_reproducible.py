"""Byte-reproducible clip stores (issue #17, item 14): the same clips written by two processes give
the same shard bytes and the same manifest (checksums included). Each process writes a few stores,
since the safetensors header's metadata order used to vary from one save to the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from data.store import ClipStore
from tests.conftest import REPO_ROOT

WRITE_STORES = textwrap.dedent(
    """
    import sys
    from dataclasses import replace
    from pathlib import Path
    from data.store import ClipStoreWriter
    from tests.conftest import turning_clip
    root = Path(sys.argv[1])
    # A provenance dict built from a set: its key order follows the process's string hash salt.
    provenance = {key: key.upper() for key in {"camera", "scene", "log", "vehicle", "weather"}}
    for k in range(3):
        with ClipStoreWriter(root / str(k), "test", {"size": [8, 16], "seed": 1}, codec="png", clips_per_shard=2) as w:
            for i in range(3):
                clip = replace(turning_clip(f"c{i}", num_frames=4, hw=(8, 16)), provenance=provenance)
                w.add(f"item{i}", [clip])
    """
)


def _write_stores(root, hash_seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", WRITE_STORES, str(root)], cwd=REPO_ROOT, env=env, check=True, timeout=120)


def test_the_same_clips_written_by_two_processes_are_the_same_bytes(tmp_path):
    _write_stores(tmp_path / "a", "1")
    _write_stores(tmp_path / "b", "2")
    stores = [tmp_path / run / str(k) for run in ("a", "b") for k in range(3)]
    reference = stores[0]
    files = sorted(p.name for p in reference.iterdir())
    assert files == ["manifest.json", "shard-00000.safetensors", "shard-00001.safetensors"]
    for store in stores[1:]:
        assert sorted(p.name for p in store.iterdir()) == files
        for name in files:
            assert (store / name).read_bytes() == (reference / name).read_bytes(), f"{store / name} differs"
    back = ClipStore(reference, verify=True)  # still a valid store, read back the same way
    assert len(back) == 3 and back.load_clip(2).provenance["scene"] == "SCENE"
    assert json.loads((reference / "manifest.json").read_text())["complete"]
