"""Token store: tokenize a clip store, read it back, resume after a kill, verify checksums, split by rank."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data.errors import CorruptFileError
from data.store import ClipStore, ClipStoreWriter
from tests.conftest import turning_clip
from world_model.tokenizer import ConvTokenizer, export_tokenizer, tokenizer_config
from world_model.tokenizer.pixels import frames_to_images
from world_model.tokens import TokenStore, TokenStoreWriter
from world_model.tokens.tokenize import TokenizeConfig, run_tokenize

NUM_FRAMES = (5, 3, 7, 4)


def _textured(clip, seed):
    """Give the flat test frames some structure so that tokens differ across cells and frames."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    frames = clip.frames.astype(np.int16) + rng.integers(-60, 60, size=clip.frames.shape[1:], dtype=np.int16)
    return replace(clip, frames=np.clip(frames, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("clips")
    with ClipStoreWriter(out, "test", {"t": 1}, codec="png", clips_per_shard=2) as w:
        for i, n in enumerate(NUM_FRAMES):
            w.add(f"item{i}", [_textured(turning_clip(f"clip{i}", num_frames=n, hw=(16, 32)), i)])
    return out


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = ConvTokenizer(tokenizer_config("tiny", base_channels=8)).eval()
    out = tmp_path_factory.mktemp("tok")
    export_tokenizer(model, out)
    return out


def expected_tokens(clips_dir, tokenizer_dir):
    from world_model.tokenizer import load_tokenizer

    model, store = load_tokenizer(tokenizer_dir), ClipStore(clips_dir)
    with torch.no_grad():
        return [model.encode(frames_to_images(torch.from_numpy(store.load_frames(i)))).indices.numpy() for i in range(len(store))]


def tokenize(clips_dir, tokenizer_dir, out, **kw):
    return run_tokenize(TokenizeConfig.default(clips_dir, tokenizer_dir, out, batch_size=3, num_workers=0, device="cpu", **kw))


def test_round_trip(clips_dir, tokenizer_dir, tmp_path):
    manifest = tokenize(clips_dir, tokenizer_dir, tmp_path)
    assert manifest.complete
    store = TokenStore(tmp_path, verify=True)
    assert len(store) == len(NUM_FRAMES) and store.grid_hw == (2, 4) and store.codebook_size == 1000
    assert store.num_frames == sum(NUM_FRAMES)
    for i, want in enumerate(expected_tokens(clips_dir, tokenizer_dir)):
        got = store.clip_tokens(i)
        assert isinstance(got, np.memmap) and got.dtype == np.uint16 and got.shape == (NUM_FRAMES[i], 2, 4)
        np.testing.assert_array_equal(got, want)  # clips are encoded in chunks of 3 frames: still exact
        meta = store.meta(i)
        assert meta["clip_id"] == f"clip{i}" and meta["clip_index"] == i and meta["fps"] == 2.0
    assert len(np.unique(np.concatenate([store.clip_tokens(i).ravel() for i in range(len(store))]))) > 5
    m = json.loads((tmp_path / "manifest.json").read_text())
    tok = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    assert m["tokenizer"]["weights_sha256"] == tok["weights_sha256"] and m["tokenizer"]["precision"] == "fp32"
    assert m["tokenizer"]["config"] == tok["config"]
    assert m["source"]["num_clips"] == 4 and len(m["source"]["manifest_sha256"]) == 64
    assert m["grid_hw"] == [2, 4] and m["dtype"] == "uint16" and m["schema_version"] == 1
    # rerunning a finished store encodes nothing and changes nothing
    before = (tmp_path / "manifest.json").read_bytes()
    tokenize(clips_dir, tokenizer_dir, tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_bytes()) == json.loads(before)


def test_resume_after_kill(clips_dir, tokenizer_dir, tmp_path, monkeypatch):
    real_write = TokenStoreWriter.write_clip

    def dying_write(self, clip_index, *args):
        if clip_index == 2:
            # killed while writing clip 2: its temp file stays behind, never renamed
            (self.out_dir / ".clip-000002.npy.abc123.tmp").write_bytes(b"\x93NUMPY half")
            raise KeyboardInterrupt
        return real_write(self, clip_index, *args)

    monkeypatch.setattr(TokenStoreWriter, "write_clip", dying_write)
    with pytest.raises(KeyboardInterrupt):
        tokenize(clips_dir, tokenizer_dir, tmp_path)
    monkeypatch.setattr(TokenStoreWriter, "write_clip", real_write)
    partial = TokenStore(tmp_path)
    assert not partial.manifest.complete and len(partial) < 4
    # a file written after the last journal save is on disk but unlisted; a reader never sees it
    (tmp_path / "clip-000003.npy").write_bytes(b"garbage from an interrupted run")
    assert all(partial.meta(i)["clip_index"] < 2 for i in range(len(partial)))

    listed = {partial.meta(i)["clip_index"] for i in range(len(partial))}
    rewritten = []

    def counting_write(self, clip_index, *args):
        rewritten.append(clip_index)
        return real_write(self, clip_index, *args)

    monkeypatch.setattr(TokenStoreWriter, "write_clip", counting_write)
    manifest = tokenize(clips_dir, tokenizer_dir, tmp_path)
    assert sorted(rewritten) == sorted(set(range(4)) - listed)  # finished clips are not encoded again
    assert manifest.complete and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    store = TokenStore(tmp_path, verify=True)
    for i, want in enumerate(expected_tokens(clips_dir, tokenizer_dir)):
        np.testing.assert_array_equal(store.clip_tokens(i), want)


def test_verify_catches_corruption(clips_dir, tokenizer_dir, tmp_path):
    tokenize(clips_dir, tokenizer_dir, tmp_path)
    path = tmp_path / "clip-000001.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="clip-000001.npy does not match its manifest checksum"):
        TokenStore(tmp_path, verify=True)
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(CorruptFileError, match="clip-000001.npy"):
        TokenStore(tmp_path).clip_tokens(1)
    # a resumed run notices the truncated file and rewrites it
    tokenize(clips_dir, tokenizer_dir, tmp_path)
    TokenStore(tmp_path, verify=True)


def test_other_tokenizer_is_refused_unless_overwrite(clips_dir, tokenizer_dir, tmp_path):
    tokenize(clips_dir, tokenizer_dir, tmp_path / "tokens")
    torch.manual_seed(1)
    export_tokenizer(ConvTokenizer(tokenizer_config("tiny", base_channels=8)).eval(), tmp_path / "other")
    with pytest.raises(ValueError, match="another tokenizer"):
        tokenize(clips_dir, tmp_path / "other", tmp_path / "tokens")
    assert tokenize(clips_dir, tmp_path / "other", tmp_path / "tokens", overwrite=True).complete
    with pytest.raises(ValueError, match=r"tokenize: unknown keys \['batchsize'\]"):
        tokenize(clips_dir, tokenizer_dir, tmp_path / "x", batchsize=2)
    with pytest.raises(ValueError, match=r"tokenize: missing keys \['batch_size', 'device'"):  # a mapping names every key
        run_tokenize({"clips": str(clips_dir), "tokenizer": str(tokenizer_dir), "out": str(tmp_path / "x")})


def test_ranks_split_clips_and_rank0_merges(clips_dir, tokenizer_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # ranks run one after another here, no process group
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    part = tokenize(clips_dir, tokenizer_dir, tmp_path)
    assert [r.clip_index for r in part.clips] == [1, 3] and (tmp_path / "manifest.part-0001.json").is_file()
    assert not (tmp_path / "clip-000000.npy").exists()
    monkeypatch.setenv("RANK", "0")
    manifest = tokenize(clips_dir, tokenizer_dir, tmp_path)
    assert manifest.complete and [r.clip_index for r in manifest.clips] == [0, 1, 2, 3]
    assert not list(tmp_path.glob("manifest.part-*.json"))
    store = TokenStore(tmp_path, verify=True)
    for i, want in enumerate(expected_tokens(clips_dir, tokenizer_dir)):
        np.testing.assert_array_equal(store.clip_tokens(i), want)


def test_llamagen_checkpoint_tokenizes_too(tmp_path):
    from world_model.tokenizer import LlamaGenVQ, LlamaGenVQConfig

    torch.manual_seed(0)
    cfg = LlamaGenVQConfig(ch=32, num_res_blocks=1, z_channels=32, codebook_size=256)
    torch.save({"model": LlamaGenVQ(cfg).state_dict()}, tmp_path / "vq.pt")
    with ClipStoreWriter(tmp_path / "clips", "test", {"t": 2}, codec="png") as w:
        w.add("a", [_textured(turning_clip("a", num_frames=2, hw=(32, 64)), 0)])
    manifest = tokenize(tmp_path / "clips", tmp_path / "vq.pt", tmp_path / "tokens")
    store = TokenStore(tmp_path / "tokens")
    assert manifest.tokenizer["architecture"] == "llamagen-vq" and store.grid_hw == (2, 4) and store.codebook_size == 256
    assert store.clip_tokens(0).shape == (2, 2, 4)


def test_real_nuscenes_scene_tokenizes(tokenizer_dir, tmp_path):
    from foresight.cli import main
    from tests.conftest import shared_data

    root = shared_data("nuscenes-scene-0916")
    args = [f"dataroot={root}", f"out={tmp_path / 'clips'}", "height=32", "width=64", "with_map=false", "with_objects=false", "codec=png"]
    assert main(["data", "nuscenes", *args]) == 0
    manifest = tokenize(tmp_path / "clips", tokenizer_dir, tmp_path / "tokens")
    store = TokenStore(tmp_path / "tokens", verify=True)
    assert manifest.complete and len(store) == 1 and store.grid_hw == (4, 8)
    assert store.clip_tokens(0).shape == (ClipStore(tmp_path / "clips").refs[0].num_frames, 4, 8) == (41, 4, 8)
    assert store.meta(0)["fps"] == 2.0


def test_poses_round_trip_and_windows_carry_the_motions_at_the_model_rate(clips_dir, tokenizer_dir, tmp_path):
    from world_model.token_sources import TokenSource, source_windows

    tokenize(clips_dir, tokenizer_dir, tmp_path)
    store, clips = TokenStore(tmp_path, verify=True), ClipStore(clips_dir)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for i in range(len(store)):
        record = manifest["clips"][i]
        assert record["poses_file"] == f"clip-{i:06d}.poses.npy" and len(record["poses_sha256"]) == 64
        stream, ts = clips.pose_stream(i), clips.frame_timestamps_us(i)
        poses = store.clip_poses(i)
        assert poses.dtype == np.float32 and store.meta(i)["has_poses"]
        np.testing.assert_array_equal(poses, stream.pose_at(ts).astype(np.float32))
    # Clips are stored at 2 Hz; at a 1 Hz model rate each clip gives 2 interleaved clips (frames o, o+2, ...).
    windows = source_windows(TokenSource("t", str(tmp_path)), store, n_frames=3, fps=1.0, val_clips=0, codebook_size=store.codebook_size).train
    assert len(windows) > 0
    for k in range(len(windows)):
        item, (ci, start) = windows[k], windows.index[k]
        name, offset = windows.clip_ids[ci].split("@")
        clip_index = int(name.removeprefix("clip"))
        frames = int(offset) + 2 * (start + np.arange(3))  # stored frame of each window frame
        stream, ts = clips.pose_stream(clip_index), clips.frame_timestamps_us(clip_index)
        motion = item["ego_motion"].numpy()
        assert motion.shape == (3, 3) and np.isnan(motion[0]).all()
        for f in (1, 2):
            want = stream.in_ego_frame(int(ts[frames[f - 1]]), ts[frames[f] : frames[f] + 1])[0]  # [dx fwd, dy left, dyaw]
            np.testing.assert_allclose(motion[f], want, atol=1e-4)
        assert motion[1:, 0].min() > 4.0  # 5 m/s over 1 s: about 5 m forward per model frame


def test_stores_without_poses_load_with_unknown_motions(clips_dir, tokenizer_dir, tmp_path):
    from world_model.token_sources import TokenSource, source_windows

    tokenize(clips_dir, tokenizer_dir, tmp_path)
    # A store written before poses were kept: no poses fields in the manifest, no poses files.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for record in manifest["clips"]:
        (tmp_path / record.pop("poses_file")).unlink()
        record.pop("poses_sha256"), record.pop("poses_bytes")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    store = TokenStore(tmp_path, verify=True)
    assert store.clip_poses(0) is None and not store.meta(0)["has_poses"]
    windows = source_windows(TokenSource("t", str(tmp_path)), store, n_frames=2, fps=None, val_clips=0, codebook_size=store.codebook_size)
    assert windows.clips_with_poses == 0 and all(windows.train[k]["ego_motion"].isnan().all() for k in range(len(windows.train)))
    # A clip without poses (OpenDV) gets no poses file, beside one with poses; a corrupt poses file is caught.
    writer = TokenStoreWriter(tmp_path / "mixed", store.manifest)
    tokens = np.zeros((3, 2, 4), np.uint16)
    writer.write_clip(0, "a", 2.0, tokens, np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.write_clip(1, "b", 2.0, tokens)
    writer.merge(2)
    assert sorted(p.name for p in (tmp_path / "mixed").glob("clip-*")) == ["clip-000000.npy", "clip-000000.poses.npy", "clip-000001.npy"]
    mixed = TokenStore(tmp_path / "mixed", verify=True)
    assert mixed.clip_poses(0)[2, 3] == 11 and mixed.clip_poses(1) is None
    with pytest.raises(ValueError, match="poses must be finite"):
        writer.write_clip(0, "a", 2.0, tokens, np.zeros((2, 4), np.float32))
    (tmp_path / "mixed" / "clip-000000.poses.npy").write_bytes(b"\x93NUMPY broken")
    with pytest.raises(CorruptFileError, match="clip-000000.poses.npy"):
        TokenStore(tmp_path / "mixed", verify=True)


def test_warp_prev_stores_the_warped_previous_frame_tokens_across_chunks(tokenizer_dir, tmp_path):
    """`warp_prev=true`: every clip with poses and a camera gets (T, h, w) warped previous-frame tokens,
    the same whatever the chunking (the frame before a chunk comes from the chunk before); a clip
    without a camera gets none; windows carry them at the store's rate and -1 (unknown) otherwise."""
    from dataclasses import replace

    from data.schema import CameraIntrinsics
    from sim_eval.render.camera_model import PinholeCamera
    from world_model.gpt.ego_motion import frame_motions
    from world_model.token_sources import TokenSource, source_windows
    from world_model.tokenizer import load_tokenizer
    from world_model.warp_tokens import warped_frame_tokens

    pinhole = PinholeCamera.nuscenes_cam_front(height=16, width=32)
    camera = (CameraIntrinsics.from_matrix(pinhole.intrinsic_matrix, 32, 16), pinhole.extrinsics())
    clips = tmp_path / "clips"
    with ClipStoreWriter(clips, "test", {"t": 1}, codec="png") as w:
        w.add("a", [replace(_textured(turning_clip("cam", num_frames=8, hw=(16, 32)), 0), intrinsics=camera[0], extrinsics=camera[1])])
        w.add("b", [_textured(turning_clip("nocam", num_frames=8, hw=(16, 32)), 1)])
    tokenize(clips, tokenizer_dir, tmp_path / "t3", warp_prev=True)  # chunks of 3 frames
    store = TokenStore(tmp_path / "t3", verify=True)
    assert store.meta(0)["has_warped"] and not store.meta(1)["has_warped"] and store.clip_warped(1) is None
    warped = store.clip_warped(0)
    assert warped.dtype == np.int32 and warped.shape == (8, 2, 4) and (warped[0] == -1).all() and (warped[1:] >= 0).all()
    source = ClipStore(clips)
    motions = frame_motions(source.pose_stream(0).pose_at(source.frame_timestamps_us(0))[:, [0, 1, 3]].astype(np.float64))
    expected = warped_frame_tokens(load_tokenizer(tokenizer_dir).eval(), source.load_frames(0), motions, camera)
    np.testing.assert_array_equal(warped, expected)
    run_tokenize(TokenizeConfig.default(clips, tokenizer_dir, tmp_path / "t8", batch_size=8, num_workers=0, device="cpu", warp_prev=True))
    np.testing.assert_array_equal(TokenStore(tmp_path / "t8").clip_warped(0), warped)  # one chunk: the same
    # Windows at the store's rate carry them; at half the rate (they span one stored frame) they are unknown.
    at_rate = source_windows(TokenSource("t", str(tmp_path / "t3")), store, n_frames=3, fps=None, val_clips=0, codebook_size=store.codebook_size)
    assert at_rate.clips_with_warped == 1
    item = at_rate.train[0]
    np.testing.assert_array_equal(item["warped_prev"].numpy(), warped[:3])
    other = at_rate.train[len(at_rate.train) - 1]  # the clip without a camera
    assert (other["warped_prev"] == -1).all()
    half = source_windows(TokenSource("t", str(tmp_path / "t3")), store, n_frames=2, fps=1.0, val_clips=0, codebook_size=store.codebook_size)
    assert half.clips_with_warped == 0 and all((half.train[k]["warped_prev"] == -1).all() for k in range(len(half.train)))
