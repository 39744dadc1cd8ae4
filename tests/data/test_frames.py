import numpy as np
import pytest
from PIL import Image

from data.errors import CorruptFileError, MissingFileError
from data.frames import load_frames_at_rate, select_at_rate, split_at_gaps
from data.image import read_image_rgb


def test_ten_hertz_to_two_hertz_takes_every_fifth_image():
    ts = np.arange(50) * 100_000
    assert select_at_rate(ts, 2.0).tolist() == list(range(0, 50, 5))  # no 0.4 s step to the last image
    jittered = ts + np.random.default_rng(1).integers(-8_000, 8_000, 50)
    assert select_at_rate(np.sort(jittered), 2.0).tolist() == list(range(0, 50, 5))


def test_drifting_native_rate_keeps_every_image_and_slower_sources_keep_all():
    rng = np.random.default_rng(0)
    ts = np.arange(41) * 500_000 + rng.integers(-40_000, 40_000, 41)
    assert len(select_at_rate(ts, 2.0)) == 41
    assert select_at_rate(np.arange(5) * 1_000_000, 2.0).tolist() == [0, 1, 2, 3, 4]


def test_a_missing_image_shifts_picks_and_a_long_gap_splits():
    ts = np.delete(np.arange(50) * 100_000, [10] + list(range(20, 30)))
    picked = ts[select_at_rate(ts, 2.0)]
    assert 1_100_000 in picked  # the neighbour of the missing 1.0 s image
    runs = split_at_gaps(picked, 2.0)
    assert len(runs) == 2 and picked[runs[1][0]] == 3_000_000


def _write_jpegs(folder, n, size=(40, 64)):
    paths = []
    for i in range(n):
        img = np.full((*size, 3), i * 20 % 255, np.uint8)
        p = folder / f"{i:03d}.jpg"
        Image.fromarray(img).save(p, quality=95)
        paths.append(p)
    return paths


def test_bad_images_are_reported_by_name_and_left_out(tmp_path):
    paths = _write_jpegs(tmp_path, 10)
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[: len(data) // 2])  # truncated JPEG
    paths[6].unlink()
    bad = []
    segs = load_frames_at_rate(np.arange(10) * 500_000, paths, 2.0, 20, 32, lambda p, r: bad.append((p.name, r)))
    assert [b[0] for b in bad] == ["004.jpg", "006.jpg"]
    assert "truncated" in bad[0][1] or "corrupt" in bad[0][1]
    # 4 and 6 missing: 0.5 s spacing breaks at both -> runs [0-3], [5], [7-9]
    assert [len(s.frames) for s in segs] == [4, 1, 3]
    assert segs[0].frames.shape[1:] == (20, 32, 3) and segs[0].source_size_hw == (40, 64)
    with pytest.raises(CorruptFileError, match="004.jpg"):
        read_image_rgb(paths[4])
    with pytest.raises(MissingFileError, match="006.jpg"):
        read_image_rgb(paths[6])


def test_a_bad_selected_image_is_replaced_by_its_neighbour_at_10hz(tmp_path):
    paths = _write_jpegs(tmp_path, 20)
    paths[5].write_bytes(b"not a jpeg")
    bad = []
    segs = load_frames_at_rate(np.arange(20) * 100_000, paths, 2.0, 20, 32, lambda p, r: bad.append(p.name))
    assert bad == ["005.jpg"]
    assert len(segs) == 1 and segs[0].source_indices.tolist() == [0, 4, 10, 15]


def test_max_and_min_frames_cut_segments(tmp_path):
    paths = _write_jpegs(tmp_path, 9)
    segs = load_frames_at_rate(np.arange(9) * 500_000, paths, 2.0, 20, 32, lambda p, r: None, min_frames=2, max_frames=4)
    assert [len(s.frames) for s in segs] == [4, 4]  # the 1-frame tail is dropped
