"""Config validation at the edge of `foresight data ...` (issue #17, items 10 and 11): every numeric key
is checked (a finite number of the right kind, in range) before any work starts, and the error names
the key. The inputs named here do not exist: a command that validated late would fail on them
instead, or (synth) start recording."""

from __future__ import annotations

import pytest

from foresight.cli import main, run_subcommand

# Each command with inputs that do not exist, so that only the config can be at fault.
REQUIRED = {
    "synth": ["out={out}"],
    "nuscenes": ["dataroot={tmp}/no-nuscenes", "out={out}"],
    "opendv": ["frames_dir={tmp}/no-frames", "out={out}"],
}
# frames.yaml keys, shared by every conversion: (override, key the error must name).
FRAME_KEYS = [
    ("height=nan", "height"), ("height=0", "height"), ("height=1.5", "height"), ("height=eight", "height"),
    ("width=nan", "width"), ("width=-4", "width"),
    ("fps=0", "fps"), ("fps=nan", "fps"), ("fps=inf", "fps"), ("fps=-2", "fps"),
    ("jpeg_quality=500", "jpeg_quality"), ("jpeg_quality=0", "jpeg_quality"), ("jpeg_quality=nan", "jpeg_quality"),
    ("clips_per_shard=0", "clips_per_shard"), ("clips_per_shard=nan", "clips_per_shard"),
    ("min_clip_frames=0", "min_clip_frames"), ("min_clip_frames=inf", "min_clip_frames"),
    ("max_clip_frames=-1", "max_clip_frames"), ("max_clip_frames=nan", "max_clip_frames"),
    ("codec=gif", "codec"), ("overwrite=3", "overwrite"),
]  # fmt: skip
COMMAND_KEYS = {
    "synth": [
        ("episodes=-3", "episodes"), ("episodes=0", "episodes"), ("episodes=nan", "episodes"),
        ("seed=-1", "seed"), ("seed=nan", "seed"), ("workers=0", "workers"), ("workers=nan", "workers"),
        ("fps=3", "fps"),  # does not divide the 10 Hz physics rate: was a ValueError inside a worker
        ("suites=[]", "suites"), ("suites=[no_such_suite]", "suites"), ("randomize=2", "randomize"),
        ("perturb.probability=nan", "probability"), ("perturb.max_offset_m=nan", "max_offset_m"),
        ("perturb.max_offset_m=inf", "max_offset_m"), ("perturb.duration_s=nan", "duration_s"),
        ("perturb.max_speed_frac=nan", "max_speed_frac"),
    ],
    "nuscenes": [("map_margin_m=nan", "map_margin_m"), ("map_margin_m=inf", "map_margin_m"), ("map_margin_m=-1", "map_margin_m")],
    "opendv": [("frames_dir_fps=0", "frames_dir_fps"), ("frames_dir_fps=nan", "frames_dir_fps"), ("frames_dir_fps=inf", "frames_dir_fps")],
}  # fmt: skip
CASES = [(cmd, *case) for cmd in REQUIRED for case in [*FRAME_KEYS, *COMMAND_KEYS[cmd]]]


def _args(command: str, tmp_path) -> list[str]:
    return [a.format(tmp=tmp_path, out=tmp_path / "out") for a in REQUIRED[command]]


@pytest.mark.parametrize("command, override, key", CASES, ids=[f"{c}-{o}" for c, o, _ in CASES])
def test_bad_number_is_refused_before_any_work_naming_the_key(tmp_path, command, override, key):
    with pytest.raises(ValueError, match=rf"\b{key}\b"):
        run_subcommand("data", command, [*_args(command, tmp_path), override])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override", ["fps=0", "height=nan", "episodes=-3", "jpeg_quality=500"])
def test_the_reported_synth_inputs_exit_non_zero_with_the_key_and_no_store(tmp_path, capsys, override):
    # Were: ZeroDivisionError traceback; accepted; a "complete" empty store with exit 0; accepted.
    assert main(["data", "synth", f"out={tmp_path / 'out'}", override, "workers=1"]) == 1
    assert override.split("=")[0] in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "override", ["jpeg_quality=500", "height=nan", "width=0", "fps=inf", "pose_margin_s=nan", "object_tolerance_s=-1", "min_clip_frames=0"]
)
def test_nuplan_settings_are_checked_before_any_log_is_read(tmp_path, capsys, override):
    # nuPlan's own settings in NuplanSettings; the store keys by the shared conversion path.
    (tmp_path / "a.db").write_bytes(b"not a database")
    args = ["data", "nuplan", f"db={tmp_path / 'a.db'}", f"sensor_root={tmp_path}", f"out={tmp_path / 'out'}"]
    assert main([*args, override]) == 1
    assert override.split("=")[0] in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("override", ["batch_size=nan", "batch_size=0", "num_workers=-1"])
def test_tokenize_numbers_are_checked_naming_the_key(tmp_path, capsys, override):
    args = ["data", "tokenize", f"clips={tmp_path}", f"tokenizer={tmp_path}", f"out={tmp_path / 'out'}"]
    assert main([*args, override]) == 1
    assert override.split("=")[0] in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_default_configs_are_valid(tmp_path):
    """The YAML defaults pass their own validation (each command then fails on the missing input)."""
    from data.errors import DataError

    for command in REQUIRED:
        if command == "synth":
            continue  # would record episodes
        with pytest.raises((DataError, FileNotFoundError)):
            run_subcommand("data", command, _args(command, tmp_path))
    from configs import compose
    from sim_eval.synth import SynthConfig

    assert SynthConfig.from_cfg(compose("data/synth", ["out=o"])).episodes == 200
