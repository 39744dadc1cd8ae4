"""NeuroNCAP server pieces without HTTP: image codec, request schema, observation buffer, plan resampling."""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from contract import Plan, world_to_ego
from data.command import Command
from planner.server.episode import BufferConfig, EpisodeBuffer
from planner.server.image_codec import ImageDecodeError, decode_image_b64
from planner.server.schema import (
    CANBUS_ACCEL_X,
    CANBUS_SPEED_X,
    CANBUS_YAW_RATE,
    InferRequest,
    RequestError,
    infer_response,
    parse_infer_request,
    parse_json_object,
)
from planner.server.trajectory import PlanConversionError, plan_to_neuroncap
from sim_eval.render.camera_model import PinholeCamera

NUSCENES_FRONT_K = PinholeCamera.nuscenes_cam_front(height=900, width=1600).intrinsic_matrix
_side_effects: list[str] = []


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _image(seed: int = 0, hw=(9, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


def _record_side_effect(tag: str) -> None:
    _side_effects.append(tag)


class _Exploit:
    """Pickles to a call of `_record_side_effect`: what a hostile payload would smuggle in."""

    def __reduce__(self):
        return (_record_side_effect, ("pwned",))


# --- image codec ------------------------------------------------------------------------------
def test_torch_npy_png_round_trip_exactly():
    image = _image()
    npy = io.BytesIO()
    np.save(npy, image)
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    for raw in (_torch_bytes(torch.from_numpy(image)), npy.getvalue(), png.getvalue()):
        decoded = decode_image_b64(_b64(raw), max_pixels=10_000)
        np.testing.assert_array_equal(decoded, image)
        assert decoded.flags.c_contiguous and decoded.flags.writeable


def test_hostile_torch_payload_is_refused_without_running_code():
    raw = _torch_bytes({"image": torch.zeros(2, 2, 3, dtype=torch.uint8), "x": _Exploit()})
    with pytest.raises(ImageDecodeError, match="could not be read safely"):
        decode_image_b64(_b64(raw), max_pixels=10_000)
    assert _side_effects == []


@pytest.mark.parametrize(
    "raw, match",
    [
        (_torch_bytes(torch.zeros(9, 16, 3, dtype=torch.float32)), "uint8"),
        (_torch_bytes([1, 2, 3]), "not a tensor"),
        (_torch_bytes(torch.zeros(3, 9, 16, dtype=torch.uint8)), r"\(H, W, 3\)"),
        (_torch_bytes(torch.zeros(0, 16, 3, dtype=torch.uint8)), "empty"),
        (b"GIF89a....", "unrecognised image encoding"),
        (b"\x89PNG\r\n\x1a\ntruncated", "PNG/JPEG payload could not be decoded"),
    ],
)
def test_bad_images_are_refused_with_a_reason(raw, match):
    with pytest.raises(ImageDecodeError, match=match):
        decode_image_b64(_b64(raw), max_pixels=10_000)


def test_npy_header_that_lies_about_its_size_is_refused_before_allocating():
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": (90, 90, 3)})
    buffer.write(bytes(12))  # the data of a (2, 2, 3) array
    with pytest.raises(ImageDecodeError, match="header promises 24300"):
        decode_image_b64(_b64(buffer.getvalue()), max_pixels=10**9)


def test_pixel_limit_is_enforced_for_every_encoding():
    image = _image(hw=(20, 30))
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    npy = io.BytesIO()
    np.save(npy, image)
    for raw in (_torch_bytes(torch.from_numpy(image)), npy.getvalue(), png.getvalue()):
        with pytest.raises(ImageDecodeError, match="exceeds the limit of 599 px"):
            decode_image_b64(_b64(raw), max_pixels=599)


# --- request schema ----------------------------------------------------------------------------
def _payload(**overrides) -> dict:
    canbus = list(np.arange(16, dtype=float))
    payload = {
        "images": {"CAM_FRONT": _b64(_torch_bytes(torch.from_numpy(_image())))},
        "ego2world": np.eye(4).tolist(),
        "canbus": canbus,
        "timestamp": 1_000_000,
        "command": 1,
        "calibration": {"camera2image": {"CAM_FRONT": NUSCENES_FRONT_K.tolist()}},
    }
    payload.update(overrides)
    return payload


def test_canbus_fields_map_to_speed_accel_and_yaw_rate_in_neuroncap_order():
    request = parse_infer_request(_payload())
    assert request.speed_mps == CANBUS_SPEED_X == 13.0
    assert request.accel_mps2 == CANBUS_ACCEL_X == 7.0
    assert request.yaw_rate_rps == CANBUS_YAW_RATE == 12.0
    assert request.command is Command.LEFT and request.timestamp_us == 1_000_000


def test_pose_yaw_comes_from_the_rotation_and_ignores_pitch():
    yaw, pitch = 2.5, 0.05
    rz = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    ry = np.array([[math.cos(pitch), 0, math.sin(pitch)], [0, 1, 0], [-math.sin(pitch), 0, math.cos(pitch)]])
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = rz @ ry, [3.0, -4.0, 0.5]
    request = parse_infer_request(_payload(ego2world=matrix.tolist()))
    np.testing.assert_allclose(request.pose_xyyaw, [3.0, -4.0, yaw], atol=1e-12)


def test_other_cameras_are_accepted_but_not_decoded():
    payload = _payload()
    payload["images"]["CAM_BACK"] = _b64(b"never decoded")
    request = parse_infer_request(payload)
    assert request.front_rgb.shape == (9, 16, 3)


def test_camera_mount_is_read_from_camera2ego_when_sent():
    assert parse_infer_request(_payload()).front_extrinsics is None  # optional: NeuroNCAP sends it, other clients may not
    mount = PinholeCamera.nuscenes_cam_front(height=72, width=128, pitch_rad=0.03).extrinsics()
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = mount.rotation_matrix(), mount.translation_m
    calibration = {"camera2image": {"CAM_FRONT": NUSCENES_FRONT_K.tolist()}, "camera2ego": {"CAM_FRONT": matrix.tolist()}}
    request = parse_infer_request(_payload(calibration=calibration))
    np.testing.assert_allclose(request.front_extrinsics.rotation_matrix(), mount.rotation_matrix(), atol=1e-12)
    np.testing.assert_allclose(request.front_extrinsics.translation_m, mount.translation_m, atol=1e-12)
    assert request.front_extrinsics.pitch_rad == pytest.approx(0.03)
    observation = EpisodeBuffer(BufferConfig()).observe(request)
    assert observation.camera_extrinsics == request.front_extrinsics
    matrix[:3, :3] *= 2.0  # not a rotation
    calibration["camera2ego"]["CAM_FRONT"] = matrix.tolist()
    with pytest.raises(RequestError) as info:
        parse_infer_request(_payload(calibration=calibration))
    assert (info.value.status, info.value.field) == (422, "calibration.camera2ego.CAM_FRONT") and "rotation" in info.value.message


def test_route_ahead_is_read_when_sent():
    assert parse_infer_request(_payload()).route_ahead_xy is None  # NeuroNCAP sends none
    request = parse_infer_request(_payload(route_ahead=[[0.0, 0.0], [10.0, 0.5], [20, 2]]))
    np.testing.assert_allclose(request.route_ahead_xy, [[0, 0], [10, 0.5], [20, 2]])
    observation = EpisodeBuffer(BufferConfig()).observe(request)
    np.testing.assert_allclose(observation.route_ahead_xy, request.route_ahead_xy)
    for bad, field in (([[0.0, 0.0, 1.0]], "route_ahead[0]"), ([], "route_ahead"), ([[0.0, float("nan")]], "route_ahead[0][1]")):
        with pytest.raises(RequestError) as info:
            parse_infer_request(_payload(route_ahead=bad))
        assert (info.value.status, info.value.field) == (422, field)
    # Without one, the buffer can assume the road goes straight on (opt-in: NeuroNCAP sends none).
    straight = EpisodeBuffer(BufferConfig(route_if_missing="straight")).observe(parse_infer_request(_payload()))
    assert straight.route_ahead_xy[0].tolist() == [0.0, 0.0] and straight.route_ahead_xy[-1, 1] == 0.0
    assert EpisodeBuffer(BufferConfig(route_if_missing="straight")).observe(request).route_ahead_xy.tolist() == request.route_ahead_xy.tolist()
    with pytest.raises(ValueError, match="route_if_missing"):
        BufferConfig(route_if_missing="guess")


def test_parse_errors_name_the_field_and_status():
    with pytest.raises(RequestError) as info:
        parse_infer_request(_payload(canbus=[0.0] * 15 + [float("inf")]))
    assert (info.value.status, info.value.field) == (422, "canbus[15]")
    with pytest.raises(RequestError) as info:
        parse_infer_request(_payload(calibration={"camera2image": {"CAM_FRONT": [[1, 0, 0], [0, 1, 0], [0, 0, 2]]}}))
    assert info.value.field == "calibration.camera2image.CAM_FRONT" and "pinhole" in info.value.message
    with pytest.raises(RequestError) as info:
        parse_json_object(b"null")
    assert info.value.status == 400
    assert parse_json_object(b'{"a": NaN}')["a"] != parse_json_object(b'{"a": NaN}')["a"]  # NaN reaches the field check


def test_response_is_json_with_six_waypoints_and_an_aux_object():
    body = json.loads(json.dumps(infer_response(np.ones((6, 2)))))
    assert np.array(body["trajectory"]).shape == (6, 2)
    assert isinstance(body["aux_outputs"], dict)
    with pytest.raises(ValueError):
        infer_response(np.ones((5, 2)))


# --- observation buffer -----------------------------------------------------------------------
def _request(t_s: float, x: float, y: float, yaw: float, hw=(9, 16), value: int = 0) -> InferRequest:
    matrix = np.eye(4)
    matrix[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
    matrix[:2, 3] = [x, y]
    return InferRequest(
        front_rgb=np.full((*hw, 3), value, np.uint8),
        front_intrinsics=NUSCENES_FRONT_K if hw == (900, 1600) else np.array([[50.0, 0, 8], [0, 50.0, 4.5], [0, 0, 1]]),
        ego2world=matrix,
        canbus=np.zeros(16),
        timestamp_us=int(round(t_s * 1e6)) + 7_000_000,
        command=Command.STRAIGHT,
    )


def test_history_on_a_circle_matches_world_to_ego_and_wraps_yaw():
    """Left turn of radius 20 m crossing world yaw +-pi: history in the current ego frame, yaw wrapped."""
    buffer = EpisodeBuffer(BufferConfig(num_frames=3, history_s=1.5))
    radius, yaw_rate = 20.0, 0.4
    poses = []
    for i in range(8):
        yaw = 2.1 + yaw_rate * 0.5 * i  # passes pi between i = 5 and 6, inside the history window
        x, y = radius * math.sin(yaw), -radius * math.cos(yaw)
        poses.append((x, y, yaw))
        observation = buffer.observe(_request(0.5 * i, x, y, yaw, value=i))
    expected = world_to_ego(np.array(poses[-4:]), np.array(poses[-1]))
    np.testing.assert_allclose(observation.ego_history_xyyaw[:, :2], expected[:, :2], atol=1e-9)
    np.testing.assert_allclose(observation.ego_history_xyyaw[:, 2], yaw_rate * 0.5 * np.arange(-3, 1), atol=1e-9)
    assert observation.ego_history_xyyaw[-2, 0] < 0 < observation.ego_history_xyyaw[-2, 1]  # behind, on the centre's (left) side
    np.testing.assert_allclose(observation.ego_history_timestamps_s, [2.0, 2.5, 3.0, 3.5])
    np.testing.assert_array_equal(observation.frames_rgb[:, 0, 0, 0], [5, 6, 7])
    assert observation.time_s == pytest.approx(3.5)


def test_frame_resize_scales_the_intrinsics_like_the_simulator_camera():
    buffer = EpisodeBuffer(BufferConfig(num_frames=2, frame_hw=(72, 128)))
    observation = buffer.observe(_request(0.0, 0.0, 0.0, 0.0, hw=(900, 1600)))
    assert observation.frames_rgb.shape == (1, 72, 128, 3)
    expected = PinholeCamera.nuscenes_cam_front(height=72, width=128).intrinsic_matrix
    np.testing.assert_allclose(observation.camera_intrinsics, expected, rtol=1e-12)


def test_buffer_refuses_time_going_back_and_frame_size_changes_without_changing_state():
    buffer = EpisodeBuffer(BufferConfig())
    buffer.observe(_request(0.0, 0.0, 0.0, 0.0))
    with pytest.raises(RequestError, match="does not increase"):
        buffer.observe(_request(0.0, 1.0, 0.0, 0.0))
    with pytest.raises(RequestError, match="frame size changed"):
        buffer.observe(_request(0.5, 1.0, 0.0, 0.0, hw=(10, 16)))
    assert buffer.num_calls == 1
    assert buffer.observe(_request(0.5, 1.0, 0.0, 0.0)).frames_rgb.shape[0] == 2


def test_buffer_config_is_validated():
    with pytest.raises(ValueError, match="num_frames"):
        BufferConfig(num_frames=0)
    with pytest.raises(ValueError, match="frame_hw"):
        BufferConfig(frame_hw=(72,))


# --- plan -> NeuroNCAP trajectory -----------------------------------------------------------------
def test_same_grid_is_passed_through_and_yaw_is_dropped():
    waypoints = np.c_[np.arange(1, 9) * 2.0, np.arange(1, 9) * 0.1, np.zeros(8)]
    out = plan_to_neuroncap(Plan(waypoints=waypoints, dt_s=0.5), 8, 0.5)
    np.testing.assert_allclose(out, waypoints[:6, :2])


def test_finer_plan_is_resampled_exactly_at_the_half_seconds():
    t = 0.1 * np.arange(1, 41)  # 4 s at 10 Hz, x = t^2, y = -t
    out = plan_to_neuroncap(Plan(waypoints=np.c_[t**2, -t], dt_s=0.1), 40, 0.1)
    target = 0.5 * np.arange(1, 7)
    np.testing.assert_allclose(out, np.c_[target**2, -target], atol=1e-12)


def test_coarser_plan_is_interpolated_from_the_ego_at_the_origin():
    out = plan_to_neuroncap(Plan(waypoints=np.array([[4.0, 0.0], [8.0, 2.0], [12.0, 2.0]]), dt_s=1.0), 3, 1.0)
    np.testing.assert_allclose(out, [[2, 0], [4, 0], [6, 1], [8, 2], [10, 2], [12, 2]])


@pytest.mark.parametrize(
    "plan, match",
    [
        (Plan(waypoints=np.ones((4, 2)), dt_s=0.5), "NeuroNCAP needs 3 s"),
        (Plan(waypoints=np.ones((6, 2)), dt_s=0.5), "6 waypoints, expected 4"),  # not what the planner declared
        (Plan(waypoints=np.full((4, 2), np.nan), dt_s=0.5), "NaN"),
        (Plan(waypoints=np.ones((4, 2)), dt_s=0.0), "dt_s"),
        ("not a plan", "not a Plan"),
    ],
)
def test_unusable_plans_are_refused(plan, match):
    with pytest.raises(PlanConversionError, match=match):
        plan_to_neuroncap(plan, 4, 0.5)
