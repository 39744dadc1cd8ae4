"""The NeuroNCAP model-API wire format: /infer request validation and the response body.

Sources (atonderski/neuro-ncap at 00a3574): `neuro_ncap/components/model_api.py` (ModelInput.to_json_dict,
ModelAPI.run_model, ModelAuxOutput.from_json), `neuro_ncap/engine.py` (Engine.run / step),
`neuro_ncap/components/nuscenes_api.py` (the CAN vector), `neuro_ncap/structures.py` (Command);
reference servers: the UniAD fork's and valeoai/VideoActionModel `inference/server.py`.

Request body of POST /infer (JSON object):
    images:      {camera name: base64 image text}; NeuroNCAP sends all six nuScenes cameras
                 (CAM_FRONT, CAM_FRONT_LEFT, CAM_FRONT_RIGHT, CAM_BACK, CAM_BACK_LEFT, CAM_BACK_RIGHT)
                 as base64(torch.save(uint8 (H, W, 3) RGB tensor)). Only the configured camera
                 (CAM_FRONT) is decoded; the others must be strings and are otherwise ignored.
    ego2world:   4x4 rigid transform, nuScenes ego (rear-axle) frame -> world [m].
    canbus:      16 numbers, nuScenes CAN "pose" message order (see CANBUS_* below).
    timestamp:   integer [us].
    command:     0 RIGHT, 1 LEFT, 2 STRAIGHT (NeuroNCAP resolves its FOLLOW_REFERENCE = 3 client-side).
    calibration: {camera2image: {camera: 3x3 intrinsics [px]}, camera2ego: {camera: 4x4}, lidar2ego: 4x4};
                 camera2image[camera] is required; camera2ego[camera] (the camera's rigid mount,
                 camera -> ego) is read when sent (a planner's ground-plane warp needs it).
    route_ahead: optional (this project's extension; NeuroNCAP does not send it): [[x, y], ...] the
                 route from the ego onwards in the ego frame of `ego2world` (x forward, y left) [m],
                 in driving order; planners that read the route (anchor "route", route points) need it.

Response body of POST /infer:
    {"trajectory": [[x, y]] * 6, "aux_outputs": {objects_in_bev, object_classes, object_scores,
     object_ids, future_trajs: null}}
    trajectory row i is the rear-axle position at timestamp + (i + 1) * 0.5 s in the ego frame of
    `ego2world`, x forward, y left [m] (NeuroNCAP feeds it to nuPlan's LQR tracker as rear-axle
    poses; UniAD's runner swaps its native lidar x-right/y-forward axes into this before replying).
    `aux_outputs` must be an object: NeuroNCAP indexes it unconditionally.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from data.command import Command
from data.schema import CameraExtrinsics, quaternion_wxyz_from_matrix
from planner.server.image_codec import ImageDecodeError, decode_image_b64

NEURONCAP_NUM_WAYPOINTS = 6  # engine.step: trajectory_times = timestamp + i * time_step, i = 1..6
NEURONCAP_DT_S = 0.5  # scenario time-step (GeneralSettings default and every shipped scenario)

# The 16-value CAN vector: nuScenes CAN bus "pose" message fields concatenated in the order
# pos (3), orientation (4, quaternion w x y z), accel (3), rotation_rate (3), vel (3)
# (nuscenes_api._read_nusc_canbus; emulate_nuscenes_canbus_signals writes the same layout in closed loop).
CANBUS_LENGTH = 16
CANBUS_POSITION_XYZ = slice(0, 3)  # world frame [m]
CANBUS_ORIENTATION_WXYZ = slice(3, 7)  # world frame, yaw-only in closed loop
CANBUS_ACCEL_XYZ = slice(7, 10)  # ego frame [m/s^2]; z carries +9.8 (gravity)
CANBUS_ROTATION_RATE_XYZ = slice(10, 13)  # ego frame [rad/s]
CANBUS_VELOCITY_XYZ = slice(13, 16)  # ego frame [m/s]; y and z are zero in closed loop
CANBUS_ACCEL_X = 7
CANBUS_YAW_RATE = 12
CANBUS_SPEED_X = 13  # what NeuroNCAP's own ConstantVelocityModel reads as the speed

_ROTATION_TOLERANCE = 1e-3  # |R^T R - I| bound; poses arrive as float32 or float64
_AUX_OUTPUT_KEYS = ("objects_in_bev", "object_classes", "object_scores", "object_ids", "future_trajs")


class RequestError(ValueError):
    """A request the server refuses: HTTP `status`, the offending `field` (dotted path) and why."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.field = field
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field or None}


@dataclass(frozen=True)
class InferRequest:
    """One validated /infer request.

    front_rgb:        (H, W, 3) uint8 RGB image of the configured camera.
    front_intrinsics: (3, 3) pinhole matrix of `front_rgb` [px].
    ego2world:        (4, 4) float64 rigid transform, ego (rear axle) -> world [m].
    canbus:           (16,) float64, layout CANBUS_*.
    timestamp_us:     [us].
    command:          RIGHT / LEFT / STRAIGHT.
    front_extrinsics: the camera's mount (camera -> ego) from calibration.camera2ego, or None when not sent.
    route_ahead_xy:   (R, 2) [m] the route ahead in the ego frame (`route_ahead`), or None when not sent.
    """

    front_rgb: np.ndarray
    front_intrinsics: np.ndarray
    ego2world: np.ndarray
    canbus: np.ndarray
    timestamp_us: int
    command: Command
    front_extrinsics: CameraExtrinsics | None = None
    route_ahead_xy: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.front_rgb.dtype != np.uint8 or self.front_rgb.ndim != 3 or self.front_rgb.shape[2] != 3:
            raise ValueError(f"InferRequest.front_rgb must be (H, W, 3) uint8, got {self.front_rgb.shape}")
        for name, shape in (("front_intrinsics", (3, 3)), ("ego2world", (4, 4)), ("canbus", (CANBUS_LENGTH,))):
            value = getattr(self, name)
            if value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"InferRequest.{name} must be a finite {shape} array, got {value.shape}")

    @property
    def speed_mps(self) -> float:
        return float(self.canbus[CANBUS_SPEED_X])

    @property
    def accel_mps2(self) -> float:
        return float(self.canbus[CANBUS_ACCEL_X])

    @property
    def yaw_rate_rps(self) -> float:
        return float(self.canbus[CANBUS_YAW_RATE])

    @property
    def pose_xyyaw(self) -> np.ndarray:
        """(3,) [m, m, rad] world x, y and yaw of the ego (pitch and roll dropped)."""
        rotation = self.ego2world[:3, :3]
        return np.array([self.ego2world[0, 3], self.ego2world[1, 3], math.atan2(rotation[1, 0], rotation[0, 0])])


def parse_json_object(body: bytes, max_depth: int | None = None, max_values: int | None = None) -> dict[str, Any]:
    """Request body -> JSON object; RequestError 400 if it is not UTF-8 JSON holding an object, nests
    deeper than `max_depth` containers, or may hold more than `max_values` values (None: no limit).

    The value count is bounded before parsing, from the separators (`,` `[` `{`; a container holds at
    most one more value than it has commas), because Python objects take ~10x the bytes of their JSON:
    a 57 MB array of numbers is ~1 GB parsed. NaN / Infinity literals (which Python's json and httpx
    emit) parse to floats so that the field check can name where they are.
    """
    if max_values is not None:
        bound = body.count(b",") + body.count(b"[") + body.count(b"{") + 1
        if bound > max_values:
            raise RequestError(400, "", f"body may hold up to {bound} JSON values; the limit is {max_values}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, "", f"body is not UTF-8: {exc}") from exc
    del body  # the caller passes its only reference: a 35 MB body is not held three times while parsing
    try:
        payload = json.loads(text)
    except RecursionError as exc:
        raise RequestError(400, "", f"body nests JSON arrays / objects too deeply (limit {max_depth})") from exc
    except ValueError as exc:  # JSONDecodeError, and numbers longer than int's 4300-digit limit
        raise RequestError(400, "", f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise RequestError(400, "", f"body must be a JSON object, got {type(payload).__name__}")
    if max_depth is not None:
        _check_depth(payload, max_depth)
    return payload


def _check_depth(payload: dict[str, Any], max_depth: int) -> None:
    """RequestError 400 if containers nest deeper than `max_depth` (iterative: any depth is safe to check)."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise RequestError(400, "", f"body nests JSON arrays / objects deeper than {max_depth} levels")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def parse_infer_request(payload: dict[str, Any], camera: str = "CAM_FRONT", max_pixels: int = 4096 * 4096) -> InferRequest:
    """Validate a NeuroNCAP /infer body (already JSON-decoded) into an InferRequest.

    Every failure is a RequestError 422 naming the field, e.g. `images.CAM_FRONT`, `ego2world[1][3]`.
    """
    missing = [key for key in ("images", "ego2world", "canbus", "timestamp", "command", "calibration") if key not in payload]
    if missing:
        raise RequestError(422, missing[0], f"required field missing (missing: {', '.join(missing)})")

    ego2world = _number_array(payload["ego2world"], "ego2world", (4, 4))
    _check_rigid(ego2world, "ego2world")
    canbus = _number_array(payload["canbus"], "canbus", (CANBUS_LENGTH,))
    timestamp_us = payload["timestamp"]
    if not isinstance(timestamp_us, int) or isinstance(timestamp_us, bool) or not 0 <= timestamp_us < 2**63:
        raise RequestError(422, "timestamp", f"must be a non-negative integer number of microseconds, got {timestamp_us!r}")
    command = payload["command"]
    choices = [c.value for c in Command]
    if not isinstance(command, int) or isinstance(command, bool) or command not in choices:
        raise RequestError(422, "command", f"must be one of {choices} (0 right, 1 left, 2 straight), got {command!r}")

    calibration = payload["calibration"]
    if not isinstance(calibration, dict):
        raise RequestError(422, "calibration", f"must be an object, got {type(calibration).__name__}")
    camera2image = calibration.get("camera2image")
    if not isinstance(camera2image, dict) or camera not in camera2image:
        raise RequestError(422, f"calibration.camera2image.{camera}", "required 3x3 intrinsics of the planner's camera missing")
    intrinsics = _number_array(camera2image[camera], f"calibration.camera2image.{camera}", (3, 3))
    if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0 or not np.allclose(intrinsics[2], [0.0, 0.0, 1.0]):
        raise RequestError(422, f"calibration.camera2image.{camera}", f"not a pinhole matrix: {intrinsics.tolist()}")
    extrinsics = None
    camera2ego = calibration.get("camera2ego")
    if camera2ego is not None:
        if not isinstance(camera2ego, dict):
            raise RequestError(422, "calibration.camera2ego", f"must be an object {{camera name: 4x4}}, got {type(camera2ego).__name__}")
        if camera in camera2ego:
            field = f"calibration.camera2ego.{camera}"
            mount = _number_array(camera2ego[camera], field, (4, 4))
            _check_rigid(mount, field)
            extrinsics = CameraExtrinsics(quaternion_wxyz_from_matrix(mount[:3, :3]), tuple(float(v) for v in mount[:3, 3]))

    images = payload["images"]
    if not isinstance(images, dict):
        raise RequestError(422, "images", f"must be an object {{camera name: base64 image}}, got {type(images).__name__}")
    if camera not in images:
        raise RequestError(422, f"images.{camera}", f"required image missing (got cameras {sorted(images)})")
    for name, text in images.items():
        if not isinstance(text, str):
            raise RequestError(422, f"images.{name}", f"must be a base64 string, got {type(text).__name__}")
    try:
        front = decode_image_b64(images[camera], max_pixels=max_pixels)
    except ImageDecodeError as exc:
        raise RequestError(422, f"images.{camera}", str(exc)) from exc

    route = None
    if payload.get("route_ahead") is not None:
        route = _number_array(payload["route_ahead"], "route_ahead", (None, 2))
        if len(route) < 1:
            raise RequestError(422, "route_ahead", "must hold at least one [x, y] point")

    return InferRequest(
        route_ahead_xy=route,
        front_rgb=front,
        front_intrinsics=intrinsics,
        ego2world=ego2world,
        canbus=canbus,
        timestamp_us=timestamp_us,
        command=Command(command),
        front_extrinsics=extrinsics,
    )


def infer_response(trajectory_xy: np.ndarray) -> dict[str, Any]:
    """Response body for (6, 2) [m] ego-frame waypoints; aux outputs are left empty (null)."""
    trajectory = np.asarray(trajectory_xy, dtype=np.float64)
    if trajectory.shape != (NEURONCAP_NUM_WAYPOINTS, 2) or not np.isfinite(trajectory).all():
        raise ValueError(f"trajectory must be a finite ({NEURONCAP_NUM_WAYPOINTS}, 2) array, got {trajectory.shape}")
    return {"trajectory": trajectory.tolist(), "aux_outputs": dict.fromkeys(_AUX_OUTPUT_KEYS)}


def _number_array(value: object, field: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """Nested JSON lists of exactly `shape` (None: any length) holding finite numbers (no bools, no
    strings) -> float64."""
    flat: list[float] = []

    def walk(node: object, path: str, depth: int) -> None:
        if depth == len(shape):
            if not isinstance(node, (int, float)) or isinstance(node, bool):
                raise RequestError(422, path, f"must be a number, got {type(node).__name__}")
            if not math.isfinite(node):
                raise RequestError(422, path, f"must be finite, got {node}")
            flat.append(float(node))
            return
        if not isinstance(node, list) or (shape[depth] is not None and len(node) != shape[depth]):
            got = f"a list of {len(node)}" if isinstance(node, list) else type(node).__name__
            want = "any length" if shape[depth] is None else shape[depth]
            raise RequestError(422, path, f"must be a list of {want} (full shape {shape}), got {got}")
        for i, child in enumerate(node):
            walk(child, f"{path}[{i}]", depth + 1)

    walk(value, field, 0)
    return np.array(flat, dtype=np.float64).reshape(tuple(-1 if n is None else n for n in shape))


def _check_rigid(transform: np.ndarray, field: str) -> None:
    """RequestError 422 naming `field` unless the (4, 4) transform is rigid: a rotation and a translation."""
    if not np.allclose(transform[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise RequestError(422, f"{field}[3]", f"last row must be [0, 0, 0, 1], got {transform[3].tolist()}")
    rotation = transform[:3, :3]
    error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
    if error > _ROTATION_TOLERANCE or np.linalg.det(rotation) <= 0:
        raise RequestError(422, field, f"upper-left 3x3 is not a rotation (|R^T R - I| = {error:.2g})")
