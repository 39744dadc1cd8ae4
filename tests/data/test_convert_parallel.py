"""Conversion on every core and across machines (issue #15): the store written with any number of
worker processes and ranks (torchrun, SLURM tasks, separately launched jobs merged afterwards) is
the same, byte for byte, as the one a single process writes; a killed rank resumes with only what
it had not finished; corrupt and missing inputs are reported by file name whatever the layout."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import pytest

from data.ranks import DistEnv
from data.store import ClipStore
from foresight.cli import main
from tests.conftest import REPO_ROOT, shared_data
from tests.data.test_opendv import make_video, write_csv

NUSCENES_FIXTURE, NUSCENES_VERSION = "nuscenes-scene-0916", "v1.0-mini"
SMALL = ["height=36", "width=64", "max_clip_frames=3", "clips_per_shard=2"]
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
               "SLURM_LOCALID", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN")  # fmt: skip


def store_files(root: Path) -> dict[str, bytes]:
    """Every file of a store directory by name (hidden temporaries included: there must be none;
    the CLI's record of the command, out/.hydra/, is no part of the store)."""
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def _env(**launch: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    return {**env, "PYTHONPATH": str(REPO_ROOT), **launch}


@pytest.fixture(scope="module")
def opendv_inputs(tmp_path_factory) -> list[str]:
    """Six metadata rows: four good videos, one that cannot be opened (the first half of a file whose
    index is at its end), one cut in half mid-stream (decodes, then breaks), one not on disk."""
    root = tmp_path_factory.mktemp("opendv")
    videos = root / "videos"
    for k, name in enumerate(["vidA", "vidB", "vidC", "vidD"]):
        make_video(videos / "Some_Channel" / f"{name}.mp4", n_frames=50 + 10 * k)
    whole = make_video(root / "x.mp4").read_bytes()
    (videos / "Some_Channel" / "vidCut.mp4").write_bytes(whole[: len(whole) // 2])
    fast = make_video(root / "y.mp4", n_frames=120, faststart=True).read_bytes()
    (videos / "Some_Channel" / "vidHalf.mp4").write_bytes(fast[: len(fast) // 2])
    rows = [{"id": v} for v in ["vidA", "vidCut", "vidB", "vidGone", "vidC", "vidHalf", "vidD"]]
    meta = write_csv(root / "OpenDV-YouTube.csv", rows)
    return ["data", "opendv", f"videos={videos}", f"metadata={meta}", *SMALL]


@pytest.fixture(scope="module")
def one_process_store(opendv_inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "store"
    assert main([*opendv_inputs, f"out={out}", "workers=1"]) == 0
    return out


def _check_reports(store: Path) -> None:
    m = ClipStore(store, verify=True).manifest
    assert m.complete is False  # vidGone may still be downloaded: a later run retries it
    reasons = {s["item"]: s["reason"] for s in m.skipped}
    assert set(reasons) == {"vidCut", "vidGone"} and "vidCut.mp4" in reasons["vidCut"] and "vidGone" in reasons["vidGone"]
    assert [Path(f["file"]).name for f in m.skipped_files] == ["vidHalf.mp4"]
    assert {s.items[0] for s in m.shards} == {"vidA", "vidB", "vidC", "vidD", "vidHalf"}


def test_one_and_two_workers_write_the_same_store_and_report_bad_videos_by_name(opendv_inputs, one_process_store, tmp_path):
    out = tmp_path / "store"
    assert main([*opendv_inputs, f"out={out}", "workers=2"]) == 0
    _check_reports(out)
    assert store_files(out) == store_files(one_process_store)
    in_order = list(dict.fromkeys(s.items[0] for s in ClipStore(out).manifest.shards))
    assert in_order == ["vidA", "vidB", "vidC", "vidHalf", "vidD"]  # metadata order, whichever worker finished first


def test_two_ranks_under_torchrun_write_the_same_store_as_one_process(opendv_inputs, one_process_store, tmp_path):
    out = tmp_path / "store"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "foresight.cli"]
    done = subprocess.run([*torchrun, *opendv_inputs, f"out={out}"], cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_reports(out)
    assert store_files(out) == store_files(one_process_store)  # rank 0 merged the journals: none is left


def test_slurm_tasks_launched_separately_write_the_same_store_after_merge(opendv_inputs, one_process_store, tmp_path, capsys):
    out = tmp_path / "store"
    for rank in (1, 0):
        env = _env(SLURM_PROCID=str(rank), SLURM_NTASKS="2")
        done = subprocess.run([sys.executable, "-m", "foresight.cli", *opendv_inputs, f"out={out}", "workers=2"],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "foresight data merge" in done.stdout
    assert sorted(p.name for p in out.glob("manifest*")) == ["manifest.part-0000.json", "manifest.part-0001.json"]
    assert main(["data", "merge", f"out={out}", "verify=true"]) == 0
    assert "merged 7 of 7 items" in capsys.readouterr().out
    _check_reports(out)
    assert store_files(out) == store_files(one_process_store)


RANK_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from data.convert import ShardFormat, SourceItem, convert_items
    from data.errors import CorruptFileError
    from tests.conftest import turning_clip

    out, loaded = Path(sys.argv[1]), Path(sys.argv[2])

    def loader(i):
        def load(report):
            if f"item{i}" == os.environ.get("KILL_AT"):
                os.kill(os.getpid(), signal.SIGKILL)  # the rank dies in the middle of its share
            with open(loaded, "a") as f:
                f.write(f"item{i}\\n")
            if i == 4:
                raise CorruptFileError(f"log{i}.db is corrupt")
            if i == 6:
                report(Path(f"frame{i}.jpg"), "truncated JPEG")
            return [turning_clip(f"c{i}-{j}", num_frames=3 + i, hw=(8, 8)) for j in range(1 + i % 3)]
        return load

    items = [SourceItem(f"item{i}", loader(i)) for i in range(10)]
    convert_items(out, "test", {"n": 10}, items, ShardFormat("png", 95, 2), description="test")
    """
)


def _rank(out: Path, loaded: Path, rank: int | None, kill_at: str | None = None) -> subprocess.CompletedProcess:
    launch = {} if rank is None else {"RANK": str(rank), "WORLD_SIZE": "2"}
    env = _env(**launch, **({"KILL_AT": kill_at} if kill_at else {}))
    return subprocess.run([sys.executable, "-c", RANK_SCRIPT, str(out), str(loaded)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_a_killed_rank_resumes_with_only_what_it_had_not_finished(tmp_path, capsys):
    reference = tmp_path / "reference"
    assert _rank(reference, tmp_path / "reference.log", None).returncode == 0
    out, loaded = tmp_path / "store", tmp_path / "loaded.log"
    assert _rank(out, loaded, 0).returncode == 0
    assert _rank(out, loaded, 1, kill_at="item5").returncode == -9  # rank 1 owns items 1, 3, 5, 7, 9
    assert loaded.read_text().split() == ["item0", "item2", "item4", "item6", "item8", "item1", "item3"]

    # Merging now keeps what is finished, says what is not, and can be done again later.
    assert main(["data", "merge", f"out={out}"]) == 1
    assert "3 items of" in capsys.readouterr().err
    partial = ClipStore(out, verify=True).manifest
    assert not partial.complete and {s.items[0] for s in partial.shards} == {"item0", "item1", "item2", "item3", "item6", "item8"}

    loaded.write_text("")
    assert _rank(out, loaded, 1).returncode == 0
    assert loaded.read_text().split() == ["item5", "item7", "item9"]
    assert main(["data", "merge", f"out={out}"]) == 0
    m = ClipStore(out, verify=True).manifest
    assert m.complete and [s["item"] for s in m.skipped] == ["item4"] and m.skipped_files[0]["file"] == "frame6.jpg"
    assert store_files(out) == store_files(reference)


def test_nuplan_logs_in_two_workers_give_the_same_store(tmp_path):
    root = shared_data("nuplan-scene-0916")
    (db,) = root.glob("*.db")
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("log-a", "log-b"):  # two logs for two workers (the same recording under two names)
        (logs / f"{name}.db").symlink_to(db)
    stores = {}
    for workers in (1, 2):
        stores[workers] = tmp_path / f"w{workers}"
        args = ["data", "nuplan", f"db={logs}", f"sensor_root={root / 'sensor_blobs'}", f"out={stores[workers]}"]
        assert main([*args, "height=72", "width=128", f"workers={workers}"]) == 0
    assert store_files(stores[2]) == store_files(stores[1])
    assert [s.items for s in ClipStore(stores[2]).manifest.shards] == [["log-a"], ["log-b"]]


def test_nuscenes_items_can_be_listed_again_in_a_worker_process():
    # A worker process gets the function that lists the items, pickled, and calls it once.
    from configs import compose
    from data.sources.nuscenes import SceneSettings, nuscenes_items

    dataroot = shared_data(NUSCENES_FIXTURE)
    cfg = compose("data/nuscenes", [f"dataroot={dataroot}", f"version={NUSCENES_VERSION}", "out=o"])
    make = partial(nuscenes_items, str(dataroot), NUSCENES_VERSION, SceneSettings.from_cfg(cfg), ())
    assert [i.key for i in pickle.loads(pickle.dumps(make))()] == [i.key for i in make()] != []


def test_merge_without_journals_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "merge", f"out={tmp_path}"]) == 1
    assert "no conversion journal" in capsys.readouterr().err


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, DistEnv(0, 1, 0)),
        ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, DistEnv(3, 4, 1)),
        ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, DistEnv(5, 8, 1)),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"},
         DistEnv(2, 4, 2)),
        ({"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "16"}, DistEnv(1, 2, 1)),  # torchrun inside SLURM
    ],
)  # fmt: skip
def test_rank_and_world_size_come_from_torchrun_or_slurm(monkeypatch, environ, expected):
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    env = DistEnv.from_environ()
    assert env == expected
    assert [i for i in range(10) if env.owns(i)] == list(range(expected.rank, 10, expected.world_size))
