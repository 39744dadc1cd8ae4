"""Video writing round trips through PyAV; tiling; the render benchmark's report."""

import av
import imageio.v2 as imageio
import numpy as np
import pytest

from sim_eval.render.bench import benchmark_render
from sim_eval.render.video import side_by_side, write_video


def _frames(n: int, h: int, w: int) -> list[np.ndarray]:
    """Frames whose mean brightness encodes their index, so order survives lossy coding."""
    return [np.full((h, w, 3), 20 + 20 * i, dtype=np.uint8) for i in range(n)]


def test_mp4_round_trip_has_every_frame_in_order(tmp_path):
    frames = _frames(9, 48, 80)
    path = write_video(frames, tmp_path / "clip.mp4", fps=10)
    assert path == tmp_path / "clip.mp4"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "mpeg4")
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 9 and decoded[0].shape == (48, 80, 3)
    means = [float(d.mean()) for d in decoded]
    np.testing.assert_allclose(means, [20 + 20 * i for i in range(9)], atol=4)


def test_odd_sizes_are_padded_and_gif_is_written_on_request(tmp_path):
    frames = _frames(3, 33, 45)
    with av.open(str(write_video(frames, tmp_path / "odd.mp4", fps=5))) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 3 and decoded[0].shape == (34, 46, 3)
    gif = write_video(frames, tmp_path / "clip.gif", fps=5)
    back = imageio.mimread(gif)
    assert len(back) == 3 and back[0].shape[:2] == (33, 45)


def test_falls_back_to_gif_when_no_mp4_encoder_works(tmp_path, monkeypatch):
    monkeypatch.setattr("sim_eval.render.video._MP4_CODECS", ("no_such_codec",))
    path = write_video(_frames(2, 16, 16), tmp_path / "clip.mp4", fps=5)
    assert path == tmp_path / "clip.gif" and not (tmp_path / "clip.mp4").exists()
    assert len(imageio.mimread(path)) == 2


def test_bad_frames_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        write_video([], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        write_video([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="uint8"):
        write_video([np.zeros((8, 8, 3), np.float32)], tmp_path / "x.mp4")


def test_side_by_side_centres_shorter_frames():
    cam = np.full((4, 6, 3), 200, np.uint8)
    bev = np.full((8, 8, 3), 100, np.uint8)
    tiled = side_by_side(cam, bev, gap_px=2)
    assert tiled.shape == (8, 6 + 2 + 8, 3)
    assert (tiled[2:6, :6] == 200).all() and (tiled[:2, :6] == 0).all() and (tiled[6:, :6] == 0).all()
    assert (tiled[:, 6:8] == 0).all() and (tiled[:, 8:] == 100).all()
    with pytest.raises(ValueError, match="at least one"):
        side_by_side()


def test_benchmark_reports_speed():
    result = benchmark_render(n_frames=5, height=64, width=128, n_vehicles=4)
    assert result["frames_per_s"] > 0 and result["ms_per_frame_median"] > 0
    assert (result["height"], result["width"], result["n_vehicles"], result["n_frames"]) == (64, 128, 4, 5)
