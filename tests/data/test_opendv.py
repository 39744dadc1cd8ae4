"""OpenDV-YouTube adapter and the video decoder, on small real videos made with PyAV.

Every test video shows its frame number n as the grey level 4n of its top half (a bar moves in the
bottom half), so a test can tell which source frame was kept.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from data.dataset import ClipWindowDataset, WindowSpec
from data.errors import CorruptFileError, DataError
from data.sources.opendv import LICENSE, _pick_video, find_videos, frame_times_us, read_metadata
from data.store import ClipStore
from data.video_decode import decode_at_rate, probe_video
from foresight.cli import main

SMALL = ["height=36", "width=64"]

PUBLISHED_HEADER = [
    "ID",
    "VideoID",
    "Title",
    "YouTuber",
    "Link",
    "Duration",
    "Train / Val",
    "Mini / Full Set",
    "Nation or Area (Inferred by GPT)",
    "State, Province, or City (Inferred by GPT and refined by human)",
    "Discarded Length at the Begininning (second)",
    "Discarded Length at the Ending (second)",
]


def frame_image(n: int, h: int = 90, w: int = 160) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = 4 * n
    x = (3 * n) % (w - 8)
    img[h // 2 :, x : x + 8] = 255
    return img


def make_video(path: Path, n_frames: int = 60, fps: int = 10, faststart: bool = False, codec: str = "libx264") -> Path:
    """A real n_frames / fps second video (6 s at 10 fps by default), 160x90."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.codec_context.thread_count = 1  # the same bytes on any machine (the truncation tests cut them)
        for n in range(n_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame_image(n), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_numbers(frames: np.ndarray) -> list[int]:
    """Source frame number of each (T, H, W, 3) frame from its grey top half."""
    h = frames.shape[1]
    top = frames[:, h // 16 : h * 7 // 16].astype(np.float64).mean(axis=(1, 2, 3))
    return [int(v) for v in np.round(top / 4)]


def write_csv(path: Path, rows: list[dict[str, object]], header: list[str] = PUBLISHED_HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, r in enumerate(rows, start=1):
            values = {
                "ID": i,
                "VideoID": r["id"],
                "Title": f"Driving in {r['id']}",
                "YouTuber": r.get("channel", "Some Channel"),
                "Link": f"https://www.youtube.com/watch?v={r['id']}",
                "Duration": "0:06",
                "Train / Val": r.get("split", "Train"),
                "Mini / Full Set": "Mini",
                "Nation or Area (Inferred by GPT)": "Testland",
                "State, Province, or City (Inferred by GPT and refined by human)": "Test City, TS",
                "Discarded Length at the Begininning (second)": r.get("start", 1),
                "Discarded Length at the Ending (second)": r.get("end", 1),
            }
            writer.writerow([values[c] for c in header])
    return path


@pytest.fixture(scope="module")
def good_mp4(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "good.mp4")


# ---------------------------------------------------------------- decoder


def test_decode_keeps_grid_frames_inside_the_trims(good_mp4):
    info = probe_video(good_mp4)
    assert info.duration_s == pytest.approx(6.0) and info.fps == pytest.approx(10.0) and info.size_hw == (90, 160)
    chunks = list(decode_at_rate(good_mp4, 2.0, 18, 32, start_s=1.0, end_s=5.0, chunk_frames=3))
    # The grid is 1.0 + k/2 s while < 5.0 s (the end is exclusive): 8 frames, 10 .. 45.
    assert [len(c.frames) for c in chunks] == [3, 3, 2]
    ts = np.concatenate([c.timestamps_us for c in chunks])
    idx = np.concatenate([c.source_indices for c in chunks])
    frames = np.concatenate([c.frames for c in chunks])
    assert ts.tolist() == [1_000_000 + 500_000 * k for k in range(8)]
    assert idx.tolist() == list(range(10, 50, 5))
    assert frame_numbers(frames) == idx.tolist()
    assert frames.shape == (8, 18, 32, 3) and frames.dtype == np.uint8


def test_decode_picks_nearest_frame_and_never_repeats_one(good_mp4):
    # 3 Hz from 10 fps: grid 1, 1.333, 1.667, 2 s -> nearest frames 10, 13, 17, 20.
    got = np.concatenate([c.source_indices for c in decode_at_rate(good_mp4, 3.0, 18, 32, 1.0, 2.1)])
    assert got.tolist() == [10, 13, 17, 20]
    # A trim between frames: frame 10 (1.0 s) is nearer to 1.04 s but lies in the trimmed part.
    got = np.concatenate([c.source_indices for c in decode_at_rate(good_mp4, 2.0, 18, 32, 1.04, 2.1)])
    assert got.tolist() == [11, 15, 20]
    # 20 Hz from 10 fps: each source frame once (ties go to the later frame), none invented.
    chunks = list(decode_at_rate(good_mp4, 20.0, 18, 32, 1.0, 5.0))
    idx = np.concatenate([c.source_indices for c in chunks])
    assert idx.tolist() == list(range(10, 50))
    assert np.all(np.diff(np.concatenate([c.timestamps_us for c in chunks])) > 0)


def test_decode_without_end_stops_inside_the_video(tmp_path, good_mp4):
    # No end: the grid runs while a frame is still shown; the video's end (6 s) is not a grid point.
    idx = np.concatenate([c.source_indices for c in decode_at_rate(good_mp4, 2.0, 18, 32)])
    assert idx.tolist() == list(range(0, 60, 5))
    # 30 fps: frame times are not whole microseconds (33333.3 us apart); 2 s of video -> 0 .. 1.5 s.
    v30 = make_video(tmp_path / "v30.mp4", n_frames=60, fps=30)
    chunks = list(decode_at_rate(v30, 2.0, 18, 32))
    assert np.concatenate([c.source_indices for c in chunks]).tolist() == [0, 15, 30, 45]
    assert np.concatenate([c.timestamps_us for c in chunks]).tolist() == [0, 500_000, 1_000_000, 1_500_000]


def test_decode_truncated_and_corrupt_videos(tmp_path):
    # moov atom at the end: half a file cannot even be opened.
    whole = make_video(tmp_path / "tail_index.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorruptFileError, match="cut.mp4"):
        list(decode_at_rate(cut, 2.0, 18, 32))
    # Index first: the first part of a file decodes its first seconds, and the loss is reported by
    # name. (Cut at 3/4: half of this file ends right at 1.0 s, the first grid time, so whether one
    # frame survived depended on the decoder's last frame: a flaky test under load.)
    fast = make_video(tmp_path / "fast.mp4", faststart=True).read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(fast[: len(fast) * 3 // 4])
    reports: list[tuple[Path, str]] = []
    kept = np.concatenate([c.source_indices for c in decode_at_rate(half, 2.0, 18, 32, 1.0, 5.0, lambda p, r: reports.append((p, r)))])
    assert len(reports) == 1 and reports[0][0] == half and "truncated" in reports[0][1]
    assert 1 <= len(kept) < 8 and kept.tolist() == list(range(10, 10 + 5 * len(kept), 5))
    # Garbage in the middle: decoding fails midway, the frames before it are kept and reported.
    broken = bytearray(fast)
    broken[len(fast) // 2 : len(fast) // 2 + 800] = b"\xff" * 800
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(bytes(broken))
    reports.clear()
    kept = np.concatenate([c.source_indices for c in decode_at_rate(bad, 2.0, 18, 32, 0.0, None, lambda p, r: reports.append((p, r)))])
    assert len(reports) == 1 and reports[0][0] == bad and "decoding failed" in reports[0][1]
    assert kept.tolist() == list(range(0, 5 * len(kept), 5)) and 1 <= len(kept) < 12
    # Not a video at all.
    junk = tmp_path / "junk.webm"
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(CorruptFileError, match="junk.webm"):
        probe_video(junk)


# ---------------------------------------------------------------- metadata


def test_metadata_column_variants_and_missing_column(tmp_path):
    published = write_csv(tmp_path / "OpenDV-YouTube.csv", [{"id": "abc-_123", "start": 90, "end": 60, "split": "Val"}])
    (row,) = read_metadata(published)
    assert row.meta.video_id == "abc-_123" and row.meta.split == "Val"  # VideoID, not the row number ID
    assert (row.meta.discard_start_s, row.meta.discard_end_s) == (90.0, 60.0)
    assert row.meta.url.endswith("abc-_123") and row.meta.youtuber == "Some Channel"

    variants = tmp_path / "variants.csv"
    variants.write_text("youtube_id,SPLIT,discard_start_seconds,Discard End Seconds\nxyz,train,,2.5\nbad,train,soon,1\n")
    ok, bad = read_metadata(variants, require_split=True)
    assert (ok.meta.video_id, ok.meta.split, ok.meta.discard_start_s, ok.meta.discard_end_s) == ("xyz", "train", 0.0, 2.5)
    assert bad.meta is None and "soon" in bad.error and "discard_start_seconds" in bad.error

    # The JSON that the official meta_preprocess.py writes.
    js = tmp_path / "OpenDV-YouTube.json"
    js.write_text(json.dumps([{"id": 1, "videoid": "j1", "split": "Train", "start_discard": 3, "end_discard": 4, "youtuber": "A B"}]))
    (row,) = read_metadata(js)
    assert (row.meta.video_id, row.meta.discard_start_s, row.meta.discard_end_s, row.meta.youtuber) == ("j1", 3.0, 4.0, "A B")

    no_end = tmp_path / "no_end.csv"
    no_end.write_text("VideoID,Train / Val,Discarded Length at the Begininning (second)\nx,Train,1\n")
    with pytest.raises(DataError, match="no_end.csv.*seconds discarded at the end"):
        read_metadata(no_end)
    no_split = tmp_path / "no_split.csv"
    no_split.write_text("VideoID,Discard Start Seconds,Discard End Seconds\nx,1,1\n")
    assert len(read_metadata(no_split)) == 1
    with pytest.raises(DataError, match="split"):
        read_metadata(no_split, require_split=True)


def test_cli_missing_column_is_a_clear_error(tmp_path, good_mp4, capsys):
    csv_path = tmp_path / "meta.csv"
    csv_path.write_text("VideoID,Train / Val,Discarded Length at the Ending (second)\ngood,Train,1\n")
    args = ["data", "opendv", f"videos={good_mp4.parent}", f"metadata={csv_path}", f"out={tmp_path / 'out'}", *SMALL]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "meta.csv" in err and "Discarded Length at the Begininning" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "manifest.json").exists()


# ---------------------------------------------------------------- conversion


def test_cli_converts_videos_skips_missing_and_broken_and_resumes(tmp_path, good_mp4):
    videos = tmp_path / "videos"
    make_video(videos / "Some_Channel" / "vidA.mp4")
    make_video(videos / "Other" / "vidB.webm", n_frames=50, codec="libvpx-vp9")  # 5 s: trims leave [1, 4) s
    whole = make_video(tmp_path / "x.mp4").read_bytes()
    (videos / "Some_Channel" / "vidCut.mp4").write_bytes(whole[: len(whole) // 2])
    fast = make_video(tmp_path / "y.mp4", n_frames=120, faststart=True).read_bytes()  # 12 s
    (videos / "Some_Channel" / "vidHalf.mp4").write_bytes(fast[: len(fast) // 2])
    make_video(videos / "vidVal.mp4", n_frames=30)
    meta = write_csv(
        tmp_path / "OpenDV-YouTube.csv",
        [
            {"id": "vidA"},
            {"id": "vidB", "channel": "Other"},
            {"id": "vidCut"},
            {"id": "vidGone"},
            {"id": "vidHalf"},
            {"id": "vidVal", "split": "Val", "start": 0, "end": 0},
        ],
    )
    out = tmp_path / "store"
    args = ["data", "opendv", f"videos={videos}", f"metadata={meta}", f"out={out}", "split=train", "max_clip_frames=5", *SMALL]
    assert main(args) == 0

    store = ClipStore(out)
    m = store.manifest
    skipped = {s["item"]: s["reason"] for s in m.skipped}
    assert set(skipped) == {"vidCut", "vidGone"}
    assert "vidCut.mp4" in skipped["vidCut"]
    assert "vidGone" in skipped["vidGone"] and str(videos) in skipped["vidGone"] and "not" in skipped["vidGone"]
    assert len(m.skipped_files) == 1 and m.skipped_files[0]["file"].endswith("vidHalf.mp4")
    assert "truncated" in m.skipped_files[0]["reason"]

    by_video: dict[str, list] = {}
    for i in range(len(store)):
        clip = store.load_clip(i)
        by_video.setdefault(clip.provenance["youtube_id"], []).append(clip)
    assert set(by_video) == {"vidA", "vidB", "vidHalf"}  # vidVal is in the other split
    # vidA: 8 frames at 2 Hz from t in [1, 5) s, cut into clips of at most 5 frames.
    a = by_video["vidA"]
    assert [c.num_frames for c in a] == [5, 3]
    ts = np.concatenate([c.frame_timestamps_us for c in a])
    assert ts.tolist() == [1_000_000 + 500_000 * k for k in range(8)]
    assert frame_numbers(np.concatenate([c.frames for c in a])) == list(range(10, 50, 5))
    # vidB (5 s): 6 frames in [1, 4) s -> a clip of 5; the 1-frame rest is under min_clip_frames (2).
    (b,) = by_video["vidB"]
    assert b.frame_timestamps_us.tolist() == [1_000_000 + 500_000 * k for k in range(5)]
    assert frame_numbers(b.frames) == list(range(10, 35, 5))
    half = by_video["vidHalf"]  # a 12 s video cut in half: trims leave [1, 11) s, about 5 s decode
    half_ts = np.concatenate([c.frame_timestamps_us for c in half])
    assert half_ts.tolist() == [1_000_000 + 500_000 * k for k in range(len(half_ts))] and 2 <= len(half_ts) < 20
    assert frame_numbers(np.concatenate([c.frames for c in half])) == list(range(10, 10 + 5 * len(half_ts), 5))
    for clips in by_video.values():
        for c in clips:
            assert c.image_size == (36, 64) and c.fps == 2.0
            assert c.poses is None and c.commands is None and c.intrinsics is None and c.objects is None
            assert c.license == LICENSE
            p = c.provenance
            assert p["labels"] == "none" and p["split"] == "Train"
            assert (p["discard_start_s"], p["discard_end_s"]) == (1.0, 1.0)
            assert p["title"] == f"Driving in {p['youtube_id']}" and p["url"].endswith(p["youtube_id"])
            assert Path(p["source_file"]).stem == p["youtube_id"]
            assert np.all(np.diff(c.frame_timestamps_us) > 0)

    ds = ClipWindowDataset(store, WindowSpec(n_frames=3, fps=2.0))
    assert len(ds) > 0
    item = ds[0]
    assert item["frames"].shape == (3, 36, 64, 3) and not bool(item["has_poses"])
    assert not any(bool(ds[i]["has_poses"]) for i in range(len(ds)))
    assert len(ClipWindowDataset(store, WindowSpec(n_frames=3, fps=2.0), require_poses=True)) == 0

    # Resume: the same command again adds nothing and rewrites no shard.
    shards = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.safetensors")}
    assert main(args) == 0
    again = ClipStore(out).manifest
    assert (again.num_clips, again.num_frames, len(again.skipped), len(again.skipped_files)) == (
        m.num_clips,
        m.num_frames,
        2,
        1,
    )
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.safetensors")} == shards


def test_cli_default_frame_size(tmp_path, good_mp4):
    meta = write_csv(tmp_path / "m.csv", [{"id": "good", "start": 4, "end": 0}])
    out = tmp_path / "store"
    assert main(["data", "opendv", f"videos={good_mp4.parent}", f"metadata={meta}", f"out={out}"]) == 0
    store = ClipStore(out)
    assert len(store) == 1
    frames = store.load_frames(0)
    assert frames.shape == (4, 288, 512, 3)  # 4.0, 4.5, 5.0, 5.5 s
    assert frame_numbers(frames) == [40, 45, 50, 55]


def test_cli_frame_folders_round_trip(tmp_path):
    root = tmp_path / "frames"
    folder = root / "Some_Channel" / "vidF"
    folder.mkdir(parents=True)
    for n in range(40):  # the official extraction: 10 fps, zero-padded frame numbers
        cv2.imwrite(str(folder / f"{n:09d}.jpg"), cv2.cvtColor(frame_image(n), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    other = root / "Some_Channel" / "vidG"
    other.mkdir()
    for n in range(16):
        cv2.imwrite(str(other / f"img_{n:02d}.png"), cv2.cvtColor(frame_image(n), cv2.COLOR_RGB2BGR))
    (other / "img_05.png").write_bytes(b"not a png")  # picked at 0.5 s: reported, and the clip restarts after it
    out = tmp_path / "store"
    assert main(["data", "opendv", f"frames_dir={root}", f"out={out}", *SMALL]) == 0
    store = ClipStore(out)
    items = [item for s in store.manifest.shards for item in s.items]
    assert sorted(items) == ["Some_Channel/vidF", "Some_Channel/vidG"]
    loaded = [store.load_clip(i) for i in range(len(store))]
    clips = {c.provenance["frames_folder"]: c for c in loaded}
    f = clips[str(folder)]
    assert f.frame_timestamps_us.tolist() == [500_000 * k for k in range(8)]
    assert frame_numbers(f.frames) == list(range(0, 40, 5))
    assert f.image_size == (36, 64) and f.poses is None and f.license == LICENSE
    assert f.provenance["labels"] == "none" and f.provenance["youtube_id"] == "vidF"
    assert (f.provenance["first_frame"], f.provenance["last_frame"]) == ("000000000.jpg", "000000035.jpg")
    g = clips[str(other)]  # names not numbers: frames follow name order at 10 fps
    numbers = frame_numbers(g.frames)
    assert 5 not in numbers and numbers[-2:] == [10, 15]
    assert (g.frame_timestamps_us == np.asarray(numbers) * 100_000).all()  # each frame at its own time
    (bad,) = store.manifest.skipped_files
    assert bad["file"] == str(other / "img_05.png") and bad["item"] == "Some_Channel/vidG"
    assert not bool(ClipWindowDataset(store, WindowSpec(n_frames=2, fps=2.0))[0]["has_poses"])

    # With the metadata: times count from the video start (frame 0 is at the start trim), the row's
    # provenance is attached, and split= keeps only folders of that split (vidG has no row).
    meta = write_csv(tmp_path / "m.csv", [{"id": "vidF", "start": 90, "end": 60}, {"id": "vidX", "split": "Val"}])
    out2 = tmp_path / "store2"
    assert main(["data", "opendv", f"frames_dir={root}", f"metadata={meta}", "split=Train", f"out={out2}", *SMALL]) == 0
    (clip,) = list(ClipStore(out2))
    assert clip.frame_timestamps_us.tolist() == [90_000_000 + 500_000 * k for k in range(8)]
    assert clip.provenance["title"] == "Driving in vidF" and clip.provenance["discard_start_s"] == 90.0
    assert clip.provenance["time_origin"] == "video start"


def test_frame_folder_times():
    paths = [Path(f"{n:09d}.jpg") for n in (12, 0, 1, 3)]
    ordered, ts = frame_times_us(paths, 10.0, offset_us=90_000_000)
    assert [p.name for p in ordered] == ["000000000.jpg", "000000001.jpg", "000000003.jpg", "000000012.jpg"]
    assert ts.tolist() == [90_000_000, 90_100_000, 90_300_000, 91_200_000]  # a missing file leaves a gap
    ordered, ts = frame_times_us([Path("b.jpg"), Path("a.jpg")], 4.0)
    assert [p.name for p in ordered] == ["a.jpg", "b.jpg"] and ts.tolist() == [0, 250_000]


def test_find_videos_layout_and_choice(tmp_path):
    for rel in ["Some_Channel/abc.mp4", "Other/abc.webm", "abc.mkv", "Some_Channel/def.webm", "x/def.mp4.part", "x/.hid.mp4", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = find_videos(tmp_path)
    assert sorted(found) == ["abc", "def"]  # partial downloads, hidden and other files are not videos
    assert _pick_video(found["abc"], "Other").name == "abc.webm"  # the channel's folder first
    assert _pick_video(found["abc"], None).name == "abc.mp4"  # then mp4 > webm > mkv
    assert _pick_video(found["def"], "Some Channel") == tmp_path / "Some_Channel" / "def.webm"
