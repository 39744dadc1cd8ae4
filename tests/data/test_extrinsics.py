"""Camera extrinsics in the clip schema: the convention (against the simulator's camera model), the
store round trip (old stores read as None), and what each source writes: nuScenes calibrated_sensor,
nuPlan's camera table (the same real scene, so the same mount) and the procedural world."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data.schema import CameraExtrinsics, Clip, quaternion_wxyz_from_matrix
from data.sources.nuscenes import SceneSettings, load_nuscenes, log_poses, scene_clips
from data.store import ClipStore
from data.store.shard_format import clip_to_tensors
from data.store.writer import ClipStoreWriter
from foresight.cli import run_subcommand
from sim_eval.render.camera_model import NUSCENES_CAM_FRONT_FORWARD_M, NUSCENES_CAM_FRONT_HEIGHT_M, PinholeCamera
from sim_eval.synth import Perturbation, SynthEpisode, record_episode
from tests.conftest import shared_data

NUPLAN_LOG = "n015-2018-10-08-15-36-50+0800"


def test_from_mount_matches_the_simulator_camera_model():
    cam = PinholeCamera.nuscenes_cam_front(height=36, width=64, mount_forward_m=1.7, pitch_rad=0.07)
    cam = PinholeCamera(**{**cam.__dict__, "mount_lateral_m": 0.3})
    ext = CameraExtrinsics.from_mount(cam.mount_height_m, cam.mount_forward_m, cam.mount_lateral_m, cam.pitch_rad)
    points_ego = np.random.default_rng(0).uniform(-20, 20, (50, 3))
    # With the ego at the world origin, ego and world coordinates coincide.
    want = cam.world_to_camera(points_ego, (0.0, 0.0, 0.0))
    got = (points_ego - np.asarray(ext.translation_m)) @ ext.rotation_matrix()  # R^T (p - t), row-wise
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert ext.height_m == cam.mount_height_m and ext.pitch_rad == pytest.approx(0.07, abs=1e-12)
    # A level forward camera: the documented quaternion.
    np.testing.assert_allclose(CameraExtrinsics.from_mount(1.5).rotation_wxyz, (0.5, -0.5, 0.5, -0.5), atol=1e-15)


def test_quaternion_round_trip_and_bad_values():
    for seed in range(20):
        q = np.random.default_rng(seed).normal(size=4)
        q = q / np.linalg.norm(q) * np.sign(q[0])
        ext = CameraExtrinsics(tuple(q), (0.0, 0.0, 1.0))
        np.testing.assert_allclose(quaternion_wxyz_from_matrix(ext.rotation_matrix()), q, atol=1e-12)
    with pytest.raises(ValueError, match="unit quaternion"):
        CameraExtrinsics((1.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.5))
    with pytest.raises(ValueError, match="finite"):
        CameraExtrinsics((1.0, 0.0, 0.0), (0.0, 0.0, 1.5))


def _clip(extrinsics: CameraExtrinsics | None) -> Clip:
    frames = np.zeros((3, 8, 16, 3), np.uint8)
    return Clip("c", "test", frames, np.arange(3, dtype=np.int64) * 500_000, 2.0, extrinsics=extrinsics)


def test_store_round_trip_and_stores_without_extrinsics(tmp_path):
    ext = CameraExtrinsics((0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755),
                           (1.70079118954, 0.0159456324149, 1.51095763913))
    for name, value in (("with", ext), ("without", None)):
        with ClipStoreWriter(tmp_path / name, "test", {"a": 1}, codec="png") as w:
            w.add("item", [_clip(value)])
        assert ClipStore(tmp_path / name).load_clip(0).extrinsics == value
    # A clip without extrinsics writes no key: its metadata is what stores written before them hold.
    assert "extrinsics" not in clip_to_tensors(_clip(None), "0", "raw", 90)[1]
    assert json.loads(json.dumps(clip_to_tensors(_clip(ext), "0", "raw", 90)[1]["extrinsics"])) == ext.to_dict()


def test_nuscenes_and_nuplan_give_the_same_real_mount(tmp_path):
    dataroot = shared_data("nuscenes-scene-0916")
    nuplan_root = shared_data("nuplan-scene-0916")
    nusc = load_nuscenes(dataroot, "v1.0-mini")
    settings = SceneSettings(camera="CAM_FRONT", fps=2.0, height=36, width=64, use_sweeps=False, with_objects=False,
                             with_map=False, map_margin_m=10.0, min_clip_frames=2, max_clip_frames=4)
    nu = scene_clips(nusc, nusc.scene[0], settings, log_poses(nusc), lambda path, reason: None)[0].extrinsics
    sample = nusc.get("sample", nusc.scene[0]["first_sample_token"])
    calib = nusc.get("calibrated_sensor", nusc.get("sample_data", sample["data"]["CAM_FRONT"])["calibrated_sensor_token"])
    assert nu.translation_m == tuple(calib["translation"])
    np.testing.assert_allclose(nu.rotation_wxyz, calib["rotation"], atol=1e-12)
    run_subcommand("data", "nuplan", [f"db={nuplan_root / f'{NUPLAN_LOG}.db'}", f"sensor_root={nuplan_root / 'sensor_blobs'}",
                                      f"out={tmp_path / 'nuplan'}", "height=36", "width=64", "max_clip_frames=4"])
    plan = ClipStore(tmp_path / "nuplan").load_clip(0).extrinsics
    np.testing.assert_allclose(plan.rotation_wxyz, nu.rotation_wxyz, atol=1e-12)
    np.testing.assert_allclose(plan.translation_m, nu.translation_m, atol=1e-12)
    # Renault Zoe roof camera: about 1.5 m up, 1.7 m ahead of the rear axle, looking a fraction of a degree down.
    assert plan.height_m == pytest.approx(1.51, abs=0.01) and plan.translation_m[0] == pytest.approx(1.70, abs=0.01)
    assert 0.0 < np.degrees(plan.pitch_rad) < 1.0


@pytest.mark.parametrize("randomize", [False, True])
def test_synth_clips_carry_the_simulator_camera_mount(randomize):
    clip = record_episode(SynthEpisode("smoke", 0, 3), 32, 64, 5.0, randomize, 0.1, Perturbation(0.0, 0.0, 1.0, 0.0))
    ext = clip.extrinsics
    assert ext.translation_m == (NUSCENES_CAM_FRONT_FORWARD_M, 0.0, NUSCENES_CAM_FRONT_HEIGHT_M)
    if randomize:  # the episode's jittered pitch (DomainRandomization.pitch_jitter_rad = 0.01)
        assert ext.pitch_rad != 0.0 and abs(ext.pitch_rad) < 0.05
    else:
        assert ext == CameraExtrinsics.from_mount(NUSCENES_CAM_FRONT_HEIGHT_M, NUSCENES_CAM_FRONT_FORWARD_M)
