"""Soak test of the NeuroNCAP planner server under valid and hostile traffic; prints one JSON object.

    python benchmarks/server_soak.py                                  # 120 s, 32 clients, 1600x900 images
    python benchmarks/server_soak.py --duration-s 45 --image-hw 450x800
    python benchmarks/server_soak.py --set request_timeout_s=10       # any configs/serve.yaml key

`foresight serve planner=constant_velocity port=0` (no training needed) runs in its own process on
loopback with the limits of configs/serve.yaml. `--clients` threads send requests back to back for
`--duration-s`, each picking a kind at random (seeded):
  valid:   /infer with NeuroNCAP's payload (six base64(torch.save) images); they form one episode, so
           their timestamps must increase and one is in flight at a time, as NeuroNCAP sends them (a
           client that draws /infer while one is in flight draws again); GET /alive, concurrently.
  hostile: slowloris (headers trickled a byte per 0.5 s until the server drops it), a body over
           max_body_bytes, a 4 MB JSON array of numbers, JSON nested 50,000 deep, a torch.save image
           that views 3 bytes as 40000x40000x3, the same archive deflated, a .npy / PNG header
           claiming 100000x100000 pixels, bad base64, binary garbage as body or request line, no
           Content-Length.
At the end: does /alive answer, and does a fresh episode's /infer return the constant-velocity plan
exactly? The JSON holds requests/s, valid-request latency p50/p99, the server's peak RSS (VmHWM),
status counts per kind, 5xx and connection errors on valid requests (must be 0), and `ok`.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.client
import io
import json
import math
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from configs import compose, plain
from foresight.bench_closed_loop import cpu_model
from planner.server.announce import wait_for_port
from planner.server.app import ServerConfig, server_config_from

CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
SPEED_MPS = 8.0
STEP_US = 500_000
T0_US = 1_533_151_603_000_000
# kind -> weight; valid kinds first. Slowloris holds its client until the server's deadline, so it is rare.
KINDS = {
    "infer": 30,
    "alive": 10,
    "slowloris": 1,
    "oversized_body": 3,
    "number_array_json": 3,
    "deep_json": 5,
    "torch_stride_bomb": 5,
    "torch_deflated": 3,
    "npy_header_bomb": 3,
    "png_header_bomb": 3,
    "bad_base64": 3,
    "garbage_body": 4,
    "garbage_request_line": 4,
    "no_content_length": 2,
}
VALID_KINDS = ("infer", "alive")


@dataclass(frozen=True)
class Outcome:
    """One request: its kind, the HTTP status or the name of the client-side error, seconds it took."""

    kind: str
    status: str
    latency_s: float


# -- payloads ------------------------------------------------------------------------------------


def _torch_bytes(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensor, buffer)
    return buffer.getvalue()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _ego2world(step: int) -> list[list[float]]:
    yaw = 0.7
    c, s = math.cos(yaw), math.sin(yaw)
    d = SPEED_MPS * 0.5 * step
    return [[c, -s, 0.0, 100.0 + d * c], [s, c, 0.0, -50.0 + d * s], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


class InferBodies:
    """/infer bodies of one straight drive at SPEED_MPS: the six images are encoded once, and each step
    splices its timestamp and pose in front of them."""

    def __init__(self, image_hw: tuple[int, int], front_b64: str | None = None) -> None:
        h, w = image_hw
        k = [[0.8 * w, 0.0, w / 2], [0.0, 0.8 * w, h / 2], [0.0, 0.0, 1.0]]
        image = _b64(_torch_bytes(torch.zeros((h, w, 3), dtype=torch.uint8)))
        images = dict.fromkeys(CAMERAS, image)
        if front_b64 is not None:
            images["CAM_FRONT"] = front_b64
        canbus = [0.0] * 16
        canbus[9], canbus[13] = 9.8, SPEED_MPS
        rest = {
            "images": images,
            "canbus": canbus,
            "command": 2,
            "calibration": {
                "camera2image": dict.fromkeys(CAMERAS, k),
                "camera2ego": {c: np.eye(4).tolist() for c in CAMERAS},
                "lidar2ego": np.eye(4).tolist(),
            },
        }
        self.tail = json.dumps(rest).encode()[1:]  # '"images": ...}' without its opening brace

    def body(self, step: int) -> bytes:
        head = json.dumps({"timestamp": T0_US + STEP_US * step, "ego2world": _ego2world(step)}).encode()[:-1]
        return head + b", " + self.tail


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header says width x height (CRC fixed, so only the size lies)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    raw = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    raw[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    raw[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(raw[ihdr - 4 : ihdr + 13])))
    return bytes(raw)


def _npy_claiming(height: int, width: int) -> bytes:
    """A .npy header for (height, width, 3) uint8, followed by 64 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": (height, width, 3)})
    return buffer.getvalue() + b"\x00" * 64


def _deflated(raw: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(raw)) as source:
        entries = {info.filename: source.read(info) for info in source.infolist()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in entries.items():
            target.writestr(name, data)
    return out.getvalue()


def hostile_bodies(small_hw: tuple[int, int]) -> dict[str, bytes]:
    """The /infer bodies of the hostile kinds that are plain POSTs (built once)."""
    stride_bomb = _torch_bytes(torch.zeros(3, dtype=torch.uint8).as_strided((40_000, 40_000, 3), (0, 0, 1)))
    deflated = _deflated(_torch_bytes(torch.zeros((*small_hw, 3), dtype=torch.uint8)))
    with_front = {
        "torch_stride_bomb": _b64(stride_bomb),
        "torch_deflated": _b64(deflated),
        "npy_header_bomb": _b64(_npy_claiming(100_000, 100_000)),
        "png_header_bomb": _b64(_png_claiming(100_000, 100_000)),
        "bad_base64": "%%% not base64 %%%",
    }
    bodies = {kind: InferBodies(small_hw, front_b64=front).body(0) for kind, front in with_front.items()}
    bodies["number_array_json"] = b'{"canbus": [' + b"0.5," * 1_000_000 + b"0.5]}"
    bodies["deep_json"] = b"[" * 50_000 + b"]" * 50_000
    bodies["garbage_body"] = random.Random(0).randbytes(64 * 1024)
    return bodies


# -- one request of each kind --------------------------------------------------------------------


def _post(port: int, path: str, body: bytes, timeout_s: float) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return str(response.status)
    finally:
        connection.close()


def _get(port: int, path: str, timeout_s: float) -> tuple[str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return str(response.status), response.read()
    finally:
        connection.close()


def _raw(port: int, data: bytes, timeout_s: float) -> str:
    """Send `data` on a fresh connection and return the status of whatever comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    if match:
        return match.group(1).decode()
    # http.server answers a request line it cannot parse as HTTP/0.9 would: the body alone, no status line.
    return "http0.9_error" if reply.startswith(b'{"error"') else "no_reply"


def _slowloris(port: int, stop: threading.Event, limit_s: float) -> tuple[str, float]:
    """Trickle header lines every 0.5 s until the server ends the connection; (how it ended, seconds held):
    "dropped" by the server, "held_past_limit" (still open after `limit_s`), "aborted_at_end" (the soak ended)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /infer HTTP/1.1\r\nHost: soak\r\n")
        while time.monotonic() - t0 < limit_s:
            if stop.is_set():
                return "aborted_at_end", time.monotonic() - t0
            sock.settimeout(0.5)
            try:
                sock.recv(4096)  # an answer or the end of the stream: the server ended it
                return "dropped", time.monotonic() - t0
            except TimeoutError:
                pass
            except OSError:
                return "dropped", time.monotonic() - t0
            try:
                sock.sendall(b"X-Slow: a\r\n")
            except OSError:
                return "dropped", time.monotonic() - t0
    return "held_past_limit", time.monotonic() - t0


# -- the soak ------------------------------------------------------------------------------------


class Soak:
    """Clients, the one-episode lane of valid /infer requests, and what they observed."""

    def __init__(self, port: int, config: ServerConfig, image_hw: tuple[int, int], seed: int) -> None:
        self.port = port
        self.config = config
        self.infer_bodies = InferBodies(image_hw)
        self.hostile = hostile_bodies((36, 64))
        self.seed = seed
        self.stop = threading.Event()
        self.lane = threading.Lock()
        self.step = 0
        self.outcomes: list[Outcome] = []
        self.outcomes_lock = threading.Lock()
        self.slowloris_held_s: list[float] = []
        self.request_timeout_s = config.request_timeout_s

    def run(self, clients: int, duration_s: float) -> float:
        threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]
        t0 = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(duration_s)
        self.stop.set()
        for thread in threads:
            thread.join(timeout=self.request_timeout_s + 30)
        return time.monotonic() - t0

    def _client(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        kinds, weights = list(KINDS), list(KINDS.values())
        while not self.stop.is_set():
            kind = rng.choices(kinds, weights)[0]
            if kind == "infer" and self.lane.acquire(blocking=False):
                try:  # one episode: timestamps must reach the server in order, so one /infer at a time
                    self.step += 1
                    body = self.infer_bodies.body(self.step)
                    self._timed(kind, functools.partial(_post, self.port, "/infer", body, self.config.request_timeout_s + 30))
                finally:
                    self.lane.release()
            elif kind != "infer":  # (an "infer" that finds the lane taken is drawn again)
                self._timed(kind, functools.partial(self._request, kind))

    def _timed(self, kind: str, request: Callable[[], str]) -> None:
        t0 = time.monotonic()
        try:
            status = request()
        except (OSError, http.client.HTTPException) as exc:
            status = type(exc).__name__
        with self.outcomes_lock:
            self.outcomes.append(Outcome(kind, status, time.monotonic() - t0))

    def warm_up(self) -> None:
        """One episode start and one /infer before timing (the server imports torch on its first image)."""
        assert _post(self.port, "/reset", b"{}", 60) == "200"
        assert _post(self.port, "/infer", self.infer_bodies.body(0), 60) == "200"

    def _request(self, kind: str) -> str:
        """One request of a kind other than "infer"; its status (or how a slowloris ended)."""
        port, cfg = self.port, self.config
        timeout_s = cfg.request_timeout_s + 30
        if kind == "alive":
            return _get(port, "/alive", timeout_s)[0]
        if kind == "slowloris":
            result, held_s = _slowloris(port, self.stop, cfg.request_timeout_s + 10)
            if result == "dropped":
                with self.outcomes_lock:
                    self.slowloris_held_s.append(held_s)
            return result
        if kind == "oversized_body":
            head = b"POST /infer HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (cfg.max_body_bytes + 1)
            return _raw(port, head + b"{" * 65536, timeout_s)
        if kind == "garbage_request_line":
            return _raw(port, random.randbytes(200) + b"\r\n\r\n", timeout_s)
        if kind == "no_content_length":
            return _raw(port, b"POST /infer HTTP/1.1\r\nHost: soak\r\n\r\n", timeout_s)
        return _post(port, "/infer", self.hostile[kind], timeout_s)


def start_server(overrides: list[str]) -> tuple[subprocess.Popen, int]:
    script = "import sys; from foresight.cli import main; sys.exit(main(['serve', 'planner=constant_velocity', 'port=0', *sys.argv[1:]]))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", script, *overrides], cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    port, lines = wait_for_port(process.stderr, timeout_s=60)
    if port is not None:
        # Keep reading its log (dropped clients are logged) so that the pipe never fills.
        threading.Thread(target=_discard_lines, args=(process.stderr,), daemon=True).start()
        return process, port
    process.kill()
    raise RuntimeError("the server did not start:\n" + "".join(lines))


def _discard_lines(stream: io.TextIOBase) -> None:
    for _ in stream:
        pass


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory [MB] (VmHWM on Linux; psutil's rss elsewhere, a lower bound)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - psutil absent or the process gone: no figure
        return None


def final_checks(port: int) -> tuple[bool, bool]:
    """(/alive answers true, a fresh episode's /infer returns the constant-velocity plan exactly)."""
    status, body = _get(port, "/alive", 10)
    alive = status == "200" and json.loads(body) is True
    bodies = InferBodies((36, 64))
    correct = _post(port, "/reset", b"{}", 10) == "200"
    for step in range(2):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("POST", "/infer", body=bodies.body(step))
            response = connection.getresponse()
            reply = json.loads(response.read())
        finally:
            connection.close()
        trajectory = np.array(reply.get("trajectory", []), dtype=np.float64)
        expected = np.c_[SPEED_MPS * 0.5 * np.arange(1, 7), np.zeros(6)]
        correct &= response.status == 200 and trajectory.shape == (6, 2) and bool(np.allclose(trajectory, expected, atol=1e-6))
    return alive, correct




def percentile_ms(latencies_s: list[float], q: float) -> float | None:
    return round(float(np.percentile(latencies_s, q)) * 1000, 2) if latencies_s else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=120.0, help="how long the clients send requests [s]")
    parser.add_argument("--clients", type=int, default=32, help="concurrent client threads")
    parser.add_argument("--image-hw", default="900x1600", help="HEIGHTxWIDTH of the six images of a valid /infer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a configs/serve.yaml override for the server")
    args = parser.parse_args(argv)
    image_hw = tuple(int(v) for v in args.image_hw.lower().split("x"))
    config = server_config_from(plain(compose("serve", args.set)))

    process, port = start_server(args.set)
    try:
        soak = Soak(port, config, image_hw, args.seed)  # type: ignore[arg-type]
        soak.warm_up()
        wall_s = soak.run(args.clients, args.duration_s)
        alive, correct = final_checks(port)
        peak_mb = peak_rss_mb(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()

    outcomes = soak.outcomes
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for outcome in outcomes:
        by_kind[outcome.kind][outcome.status] += 1
    valid = [o for o in outcomes if o.kind in VALID_KINDS]
    valid_5xx = sum(1 for o in valid if o.status.startswith("5"))
    valid_errors = sum(1 for o in valid if not o.status.isdigit())
    infer_latencies = [o.latency_s for o in valid if o.kind == "infer" and o.status == "200"]
    valid_latencies = [o.latency_s for o in valid if o.status == "200"]
    slowloris_max_s = max(soak.slowloris_held_s, default=None)
    hostile_5xx = sum(1 for o in outcomes if o.kind not in VALID_KINDS and o.status.startswith("5"))
    slowloris_held_past_limit = by_kind["slowloris"]["held_past_limit"]
    ok = alive and correct and valid_5xx == 0 and valid_errors == 0 and peak_mb is not None and peak_mb < 1024 and slowloris_held_past_limit == 0
    result = {
        "duration_s": round(wall_s, 1),
        "clients": args.clients,
        "image_hw": list(image_hw),
        "server_overrides": args.set,
        "requests": len(outcomes),
        "requests_per_s": round(len(outcomes) / wall_s, 1),
        "valid_requests": len(valid),
        "valid_infer_200": len(infer_latencies),
        "valid_infer_per_s": round(len(infer_latencies) / wall_s, 2),
        "valid_infer_latency_ms_p50": percentile_ms(infer_latencies, 50),
        "valid_infer_latency_ms_p99": percentile_ms(infer_latencies, 99),
        "valid_latency_ms_p50": percentile_ms(valid_latencies, 50),
        "valid_latency_ms_p99": percentile_ms(valid_latencies, 99),
        "valid_5xx": valid_5xx,
        "valid_connection_errors": valid_errors,
        "hostile_5xx": hostile_5xx,
        "status_counts": dict(sorted(Counter(o.status for o in outcomes).items())),
        "by_kind": {kind: dict(sorted(by_kind[kind].items())) for kind in KINDS if kind in by_kind},
        "slowloris_max_held_s": None if slowloris_max_s is None else round(slowloris_max_s, 2),
        "slowloris_held_past_limit": slowloris_held_past_limit,
        "request_timeout_s": config.request_timeout_s,
        "server_peak_rss_mb": None if peak_mb is None else round(peak_mb, 1),
        "alive_at_end": alive,
        "infer_correct_at_end": correct,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "ok": ok,
    }
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
