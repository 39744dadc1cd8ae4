import json

import cv2
import pytest

from data.store import ClipStoreWriter
from foresight.cli import main, run_subcommand
from tests.conftest import turning_clip


def test_viz_clip_writes_a_strip_with_a_bev_panel(tmp_path):
    with ClipStoreWriter(tmp_path / "store", "test", {}, codec="png") as w:
        w.add("a", [turning_clip(hw=(72, 128))])
    out = tmp_path / "strip.png"
    assert main(["viz", "clip", f"path={tmp_path / 'store'}", f"out={out}", "max_frames=4", "frame_height=72"]) == 0
    img = cv2.imread(str(out))
    assert img is not None
    # 4 thumbnails of 128 px + 6 px gap + a square BEV panel as tall as the strip (>= 2 * 72)
    assert img.shape[0] == 144 and img.shape[1] == 4 * 128 + 6 + 144
    bev = img[:, 4 * 128 + 6 :]
    assert (bev.std(axis=2) > 30).any()  # coloured trajectory dots are drawn


def test_viz_index_out_of_range_is_a_clear_error(tmp_path, capsys):
    with ClipStoreWriter(tmp_path, "test", {}, codec="png") as w:
        w.add("a", [turning_clip(hw=(16, 32))])
    with pytest.raises(IndexError, match="holds 1 clips"):
        run_subcommand("viz", "clip", [f"path={tmp_path}", f"out={tmp_path / 'x.png'}", "index=3"])
    assert main(["viz", "clip", f"path={tmp_path}", f"out={tmp_path / 'x.png'}", "index=3"]) == 1
    assert "holds 1 clips" in capsys.readouterr().err


def test_bench_data_prints_json_for_each_codec(capsys):
    result = run_subcommand("bench", "data", ["clips=1", "frames_per_clip=10", "height=36", "width=64", "max_windows=3"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["codecs"].keys() == {"jpeg", "png", "raw"}
    for r in result["codecs"].values():
        assert r["windows_per_s"] > 0 and r["mb_per_s"] > 0 and r["bytes_per_frame"] > 0
    assert result["windows_per_s_ratio_vs_raw"]["raw"] == 1.0
