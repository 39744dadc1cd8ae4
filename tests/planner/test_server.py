"""The NeuroNCAP planner server over real loopback HTTP: contract, error statuses, resilience, shutdown."""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from configs import compose
from contract import EpisodeInfo, Observation, Plan, Planner
from foresight.serve import serve_setup
from planner.baselines import ConstantVelocityPlanner
from planner.server import ServerConfig, make_server
from planner.server.announce import wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
FRONT_K = [[120.0, 0.0, 31.5], [0.0, 120.0, 17.5], [0.0, 0.0, 1.0]]
IMAGE_HW = (36, 64)


def torch_b64(image: np.ndarray) -> str:
    """The NeuroNCAP renderer's encoding: base64(torch.save(uint8 (H, W, 3) tensor))."""
    buffer = io.BytesIO()
    torch.save(torch.from_numpy(np.ascontiguousarray(image)), buffer)
    return base64.b64encode(buffer.getvalue()).decode("utf-8")


def ego2world(x_m: float, y_m: float, yaw_rad: float) -> list[list[float]]:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return [[c, -s, 0.0, x_m], [s, c, 0.0, y_m], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def infer_payload(step: int, speed_mps: float = 8.0, yaw_rad: float = 0.7, front: str | None = None) -> dict:
    """Step `step` (0.5 s apart) of an ego driving straight along world heading `yaw_rad` at `speed_mps`."""
    distance = speed_mps * 0.5 * step
    canbus = [0.0] * 16
    canbus[7], canbus[9], canbus[12], canbus[13] = 0.0, 9.8, 0.0, speed_mps
    image = np.full((*IMAGE_HW, 3), 10 * step, dtype=np.uint8)
    images = {camera: torch_b64(np.zeros((*IMAGE_HW, 3), np.uint8)) for camera in CAMERAS}
    images["CAM_FRONT"] = front if front is not None else torch_b64(image)
    return {
        "images": images,
        "ego2world": ego2world(100.0 + distance * math.cos(yaw_rad), -50.0 + distance * math.sin(yaw_rad), yaw_rad),
        "canbus": canbus,
        "timestamp": 1_533_151_603_000_000 + 500_000 * step,
        "command": 2,
        "calibration": {
            "camera2image": {camera: FRONT_K for camera in CAMERAS},
            "camera2ego": {camera: np.eye(4).tolist() for camera in CAMERAS},
            "lidar2ego": np.eye(4).tolist(),
        },
    }


class RecordingPlanner(ConstantVelocityPlanner):
    """Constant velocity that keeps what it was shown."""

    def __init__(self) -> None:
        super().__init__(num_waypoints=8, plan_dt_s=0.5)
        self.observations: list[Observation] = []
        self.resets = 0

    def reset(self, episode: EpisodeInfo) -> None:
        self.resets += 1
        self.observations.clear()

    def plan(self, observation: Observation) -> Plan:
        self.observations.append(observation)
        return super().plan(observation)


class FlakyPlanner(Planner):
    """Raises in reset while `fail_reset` is set, in plan while `fail` is set; NaN waypoints while `nan` is set."""

    name = "flaky"
    num_waypoints = 6
    plan_dt_s = 0.5

    def __init__(self) -> None:
        self.fail_reset = True
        self.fail = True
        self.nan = False

    def reset(self, episode: EpisodeInfo) -> None:
        if self.fail_reset:
            raise ValueError("checkpoint went missing")

    def plan(self, observation: Observation) -> Plan:
        if self.fail:
            raise RuntimeError("boom: planner exploded")
        waypoints = np.c_[np.arange(1, 7) * 1.0, np.zeros(6)]
        if self.nan:
            waypoints[3, 1] = np.nan
        return Plan(waypoints=waypoints, dt_s=0.5)


class Running:
    """A server on 127.0.0.1:<ephemeral> served by a background thread."""

    def __init__(self, planner: Planner, config: ServerConfig | None = None) -> None:
        self.server = make_server(planner, "127.0.0.1", 0, config)
        self.host, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def request(self, method: str, path: str, body: bytes | dict | None = None, headers: dict | None = None):
        """(status, decoded JSON body, response headers) of one request on a fresh connection."""
        if isinstance(body, dict):
            body = json.dumps(body).encode("utf-8")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            response = connection.getresponse()
            raw = response.read()
            return response.status, json.loads(raw), dict(response.getheaders())
        finally:
            connection.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def recording():
    planner = RecordingPlanner()
    running = Running(planner)
    yield running, planner
    running.close()


def test_alive_reset_and_infer_drive_straight_at_v_t(recording):
    running, planner = recording
    assert running.request("GET", "/alive")[:2] == (200, True)
    assert running.request("POST", "/reset", {})[:2] == (200, True)
    assert planner.resets == 1
    speed = 8.0
    for step in range(6):
        status, body, headers = running.request("POST", "/infer", infer_payload(step, speed_mps=speed))
        assert status == 200, body
        assert headers["Content-Type"] == "application/json"
        trajectory = np.array(body["trajectory"])
        assert trajectory.shape == (6, 2) and np.isfinite(trajectory).all()
        # Straight ahead in the ego frame (x forward, y left) at v * t, t = 0.5 ... 3.0 s.
        np.testing.assert_allclose(trajectory[:, 0], speed * 0.5 * np.arange(1, 7), atol=1e-9)
        np.testing.assert_allclose(trajectory[:, 1], 0.0, atol=1e-9)
        assert set(body["aux_outputs"]) == {"objects_in_bev", "object_classes", "object_scores", "object_ids", "future_trajs"}

    # What the planner saw: a rolling buffer of the last 4 front frames and 2 s of ego history,
    # re-expressed in the current ego frame (the world heading 0.7 rad must not leak in).
    last = planner.observations[-1]
    assert len(planner.observations) == 6 and planner.resets == 1
    assert last.frames_rgb.shape == (4, *IMAGE_HW, 3)
    np.testing.assert_array_equal(last.frames_rgb[:, 0, 0, 0], [20, 30, 40, 50])  # steps 2..5, newest last
    np.testing.assert_allclose(last.frame_timestamps_s, [1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(last.ego_history_timestamps_s, [0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(last.ego_history_xyyaw[:, 0], [-16.0, -12.0, -8.0, -4.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(last.ego_history_xyyaw[:, 1:], 0.0, atol=1e-9)
    assert last.time_s == pytest.approx(2.5)
    assert (last.speed_mps, last.accel_mps2, last.yaw_rate_rps) == (speed, 0.0, 0.0)
    assert int(last.command) == 2
    np.testing.assert_allclose(last.camera_intrinsics, FRONT_K)

    # /reset starts a new episode: empty buffers, the clock restarts, the planner is reset.
    assert running.request("POST", "/reset", {})[:2] == (200, True)
    assert running.request("POST", "/infer", infer_payload(0))[0] == 200
    first = planner.observations[-1]
    assert planner.resets == 2
    assert first.frames_rgb.shape[0] == 1 and first.ego_history_xyyaw.shape == (1, 3) and first.time_s == 0.0


def test_infer_without_reset_starts_an_episode_and_timestamps_must_increase(recording):
    running, planner = recording
    assert running.request("POST", "/infer", infer_payload(3))[0] == 200
    assert planner.resets == 1
    status, body, _ = running.request("POST", "/infer", infer_payload(3))
    assert status == 422 and body["field"] == "timestamp" and "/reset" in body["error"]
    assert running.request("POST", "/infer", infer_payload(4))[0] == 200


def test_malformed_json_is_400(recording):
    running, _ = recording
    for raw in (b"{not json", b"[1, 2, 3]", b"\xff\xfe"):
        status, body, _ = running.request("POST", "/infer", raw)
        assert status == 400, raw
        assert body["error"]


def test_wrong_image_shape_is_422_naming_the_field(recording):
    running, _ = recording
    for bad in (np.zeros((*IMAGE_HW, 4), np.uint8), np.zeros(IMAGE_HW, np.uint8)):
        status, body, _ = running.request("POST", "/infer", infer_payload(0, front=torch_b64(bad)))
        assert status == 422
        assert body["field"] == "images.CAM_FRONT" and "(H, W, 3)" in body["error"]
    status, body, _ = running.request("POST", "/infer", infer_payload(0, front="%%% not base64 %%%"))
    assert status == 422 and body["field"] == "images.CAM_FRONT" and "base64" in body["error"]


def test_nan_in_ego2world_is_422_naming_the_entry(recording):
    running, planner = recording
    payload = infer_payload(0)
    payload["ego2world"][1][3] = float("nan")
    raw = json.dumps(payload).encode("utf-8")  # Python and httpx write the NaN literal
    assert b"NaN" in raw
    status, body, _ = running.request("POST", "/infer", raw)
    assert status == 422 and body["field"] == "ego2world[1][3]" and "finite" in body["error"]
    assert planner.observations == []


def _set(path: list, value):
    def edit(payload: dict) -> dict:
        node = payload
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return payload

    return edit


@pytest.mark.parametrize(
    "edit, field",
    [
        (_set(["command"], 3), "command"),
        (_set(["command"], True), "command"),
        (_set(["command"], KeyError), "command"),
        (_set(["timestamp"], 1.5), "timestamp"),
        (_set(["canbus"], [0.0] * 15), "canbus"),
        (_set(["canbus", 13], "8.0"), "canbus[13]"),
        (_set(["ego2world", 0, 0], 2.0), "ego2world"),
        (_set(["ego2world", 3], [0.0, 0.0, 1.0, 1.0]), "ego2world[3]"),
        (_set(["images", "CAM_FRONT"], KeyError), "images.CAM_FRONT"),
        (_set(["images", "CAM_BACK"], 7), "images.CAM_BACK"),
        (_set(["calibration", "camera2image", "CAM_FRONT"], [[1.0, 0.0], [0.0, 1.0]]), "calibration.camera2image.CAM_FRONT"),
        (_set(["calibration"], KeyError), "calibration"),
    ],
)
def test_bad_fields_are_422_naming_the_field(recording, edit, field):
    running, _ = recording
    status, body, _ = running.request("POST", "/infer", edit(infer_payload(0)))
    assert status == 422, body
    assert body["field"] == field, body


def test_planner_that_raises_is_500_with_a_message_and_the_server_keeps_serving():
    planner = FlakyPlanner()
    running = Running(planner)
    try:
        status, body, _ = running.request("POST", "/reset", {})
        assert status == 500 and "reset raised ValueError: checkpoint went missing" in body["error"]
        planner.fail_reset = False
        status, body, _ = running.request("POST", "/infer", infer_payload(0))
        assert status == 500
        assert "RuntimeError" in body["error"] and "boom: planner exploded" in body["error"]
        assert "Traceback" not in body["error"] and "File " not in body["error"]
        planner.fail = False
        status, body, _ = running.request("POST", "/infer", infer_payload(1))
        assert status == 200 and np.array(body["trajectory"]).shape == (6, 2)
        planner.nan = True
        status, body, _ = running.request("POST", "/infer", infer_payload(2))
        assert status == 500 and "unusable plan" in body["error"] and "NaN" in body["error"]
        assert running.request("GET", "/alive")[:2] == (200, True)
    finally:
        running.close()


def test_unknown_path_is_404_and_wrong_method_is_405(recording):
    running, _ = recording
    assert running.request("GET", "/nope")[0] == 404
    assert running.request("POST", "/infer/extra", {})[0] == 404
    status, _, headers = running.request("GET", "/infer")
    assert status == 405 and headers["Allow"] == "POST"
    assert running.request("POST", "/alive", {})[0] == 405
    assert running.request("DELETE", "/reset")[0] == 405


def test_oversized_body_is_413_and_the_server_keeps_serving():
    # 8 MiB overflows the loopback socket buffers: the client is still sending when the 413 is ready,
    # which is the case where the server must drain before closing or the client sees a reset.
    running = Running(RecordingPlanner(), ServerConfig.default(max_body_bytes=1 << 20))
    try:
        for _ in range(2):
            status, body, _ = running.request("POST", "/infer", b"x" * (8 << 20))
            assert status == 413 and "exceeds the limit of 1048576 bytes" in body["error"]
        assert running.request("GET", "/alive")[:2] == (200, True)
        assert running.request("POST", "/infer", infer_payload(0))[0] == 200
    finally:
        running.close()


def test_missing_content_length_is_411(recording):
    running, _ = recording
    connection = http.client.HTTPConnection(running.host, running.port, timeout=10)
    try:
        connection.putrequest("POST", "/infer")
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 411 and json.loads(response.read())["error"]
    finally:
        connection.close()


def test_config_keys_build_the_planner_and_the_server_config():
    cfg = compose("serve", ["port=0", "host=127.0.0.1", "num_frames=2", "frame_hw=[18,32]"])
    setup = serve_setup(cfg)
    assert isinstance(setup.planner, ConstantVelocityPlanner) and (setup.host, setup.port) == ("127.0.0.1", 0)
    assert setup.planner.num_waypoints == cfg.baselines.constant_velocity.num_waypoints  # configs/baselines
    assert setup.config.num_frames == 2 and setup.config.frame_hw == (18, 32) and setup.config.history_s == ServerConfig.default().history_s
    with pytest.raises(ValueError, match="planner"):
        serve_setup(compose("serve", ["planner=null"]))
    with pytest.raises(ValueError, match="privileged"):
        make_server(serve_setup(compose("serve", ["planner=expert"])).planner, "127.0.0.1", 0)


def test_run_serves_until_sigterm_then_exits_cleanly():
    """`foresight serve` in its own process: it announces its URL, answers, and shuts down on SIGTERM."""
    script = "import sys; from foresight.cli import main; sys.exit(main(['serve', 'planner=constant_velocity', 'port=0']))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url, lines = wait_for_port(process.stderr, timeout_s=30)
        assert url is not None, "".join(lines)
        connection = http.client.HTTPConnection("127.0.0.1", url, timeout=10)
        connection.request("GET", "/alive")
        assert connection.getresponse().read() == b"true"
        connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        process.stderr.close()
