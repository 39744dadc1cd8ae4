"""`foresight bench convert` (issue #15) at a tiny size: it makes its videos once, keeps them in the
cache, runs the real conversion with one and two workers and prints one JSON object."""

from __future__ import annotations

import json

import av

from foresight.cli import main

TINY = ["videos=2", "duration_s=1.5", "width=96", "height=64", "out_height=16", "out_width=32"]
KEYS = {"video_s_per_s_workers1", "video_s_per_s_workers2", "ratio_workers2_vs_1", "decode_only_fps", "ratio_vs_decode_only", "projected"}


def test_bench_convert_prints_one_json_object_with_the_measurements(tmp_path, capsys):
    assert main(["bench", "convert", f"cache={tmp_path}", *TINY]) == 0
    out = json.loads(capsys.readouterr().out)  # nothing but the JSON object on stdout
    assert KEYS <= set(out) and all(out[k] > 0 for k in KEYS - {"projected"})
    assert out["projected"]["video_hours"] == 1800 and out["projected"]["cores"] == 64 and out["projected"]["hours"] > 0
    videos = sorted(tmp_path.glob("*.mp4"))
    assert len(videos) == 2
    with av.open(str(videos[0])) as container:  # the OpenDV kind: H.264 at the requested rate, size, length
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height) == ("h264", 96, 64)
        assert float(stream.average_rate) == 30 and stream.frames == 45
    made = {p: p.stat().st_mtime_ns for p in videos}
    assert main(["bench", "convert", f"cache={tmp_path}", *TINY]) == 0
    assert {p: p.stat().st_mtime_ns for p in sorted(tmp_path.glob("*.mp4"))} == made  # made once, then reused


def test_bench_convert_refuses_an_odd_frame_size(tmp_path, capsys):
    assert main(["bench", "convert", f"cache={tmp_path}", *TINY, "width=95"]) == 1
    assert "width and height must be even" in capsys.readouterr().err
