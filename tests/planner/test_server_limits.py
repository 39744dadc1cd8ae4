"""Hostile inputs to the NeuroNCAP server: image decompression bombs, JSON bombs, slow and many clients.

Each attack is small and bounded in time; memory is measured as the process's peak RSS (VmHWM, reset
through /proc/self/clear_refs) over the attack, since the server runs on a thread of this process.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
import zipfile
from dataclasses import MISSING, fields
from typing import Self

import numpy as np
import pytest
import torch

from configs import compose
from foresight.serve import serve_setup
from planner.server import ServerConfig, make_server
from planner.server.app import server_config_from
from planner.server.image_codec import ImageDecodeError, decode_image_b64
from tests.planner.test_server import IMAGE_HW, RecordingPlanner, Running, infer_payload, torch_b64

MAX_PIXELS = 4096 * 4096
MiB = 1 << 20


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


class PeakRss:
    """Peak resident memory above the starting RSS [MiB] while the `with` block ran."""

    def __enter__(self) -> Self:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        self.start_kib = _status_kib("VmRSS")
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.monotonic() - self.t0
        self.mib = (_status_kib("VmHWM") - self.start_kib) / 1024


def _torch_bytes(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensor, buffer)
    return buffer.getvalue()


def _rezip(raw: bytes, compression: int = zipfile.ZIP_STORED, extra: dict[str, bytes] | None = None) -> bytes:
    """The same torch.save archive rewritten with `compression` and `extra` entries added."""
    with zipfile.ZipFile(io.BytesIO(raw)) as source:
        entries = {info.filename: source.read(info) for info in source.infolist()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as target:
        for name, data in {**entries, **(extra or {})}.items():
            target.writestr(name, data)
    return out.getvalue()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _stride_zero_bomb(height: int, width: int) -> bytes:
    """A 3-byte storage viewed as (height, width, 3): ~1.5 KB on the wire, height * width * 3 bytes if copied."""
    return _torch_bytes(torch.zeros(3, dtype=torch.uint8).as_strided((height, width, 3), (0, 0, 1)))


def test_server_limits_live_in_the_yaml_only():
    assert [f.name for f in fields(ServerConfig) if f.default is not MISSING or f.default_factory is not MISSING] == []
    assert ServerConfig.default(max_connections=7) == serve_setup(compose("serve", ["max_connections=7"])).config
    with pytest.raises(ValueError, match="missing keys"):
        server_config_from({"camera": "CAM_FRONT"})
    with pytest.raises(ValueError, match="max_inflight_body_bytes"):
        ServerConfig.default(max_body_bytes=1000, max_inflight_body_bytes=999)
    with pytest.raises(ValueError, match="max_json_depth"):
        ServerConfig.default(max_json_depth=0)


# -- image decompression bombs -------------------------------------------------------------------


def test_stride_zero_torch_bomb_is_refused_from_its_metadata_before_any_copy():
    raw = _stride_zero_bomb(12_000, 12_000)  # 432 MB if materialised
    assert len(raw) < 2000
    with PeakRss() as peak, pytest.raises(ImageDecodeError, match="12000x12000 px exceeds the limit"):
        decode_image_b64(_b64(raw), max_pixels=MAX_PIXELS)
    assert peak.mib < 50 and peak.wall_s < 5, (peak.mib, peak.wall_s)
    # Under the pixel limit, the view still promises 12 MB from 3 stored bytes: refused, not expanded.
    with pytest.raises(ImageDecodeError, match="storage holds 3 bytes"):
        decode_image_b64(_b64(_stride_zero_bomb(2000, 2000)), max_pixels=MAX_PIXELS)


def test_compressed_torch_archive_entries_are_refused():
    image = np.zeros((*IMAGE_HW, 3), np.uint8)
    raw = _torch_bytes(torch.from_numpy(image))
    deflated = _rezip(raw, zipfile.ZIP_DEFLATED)
    assert len(deflated) < len(raw)
    with pytest.raises(ImageDecodeError, match="compressed"):
        decode_image_b64(_b64(deflated), max_pixels=MAX_PIXELS)
    np.testing.assert_array_equal(decode_image_b64(_b64(_rezip(raw)), max_pixels=MAX_PIXELS), image)  # stored: fine


def test_torch_archive_with_too_many_entries_is_refused():
    raw = _torch_bytes(torch.zeros((*IMAGE_HW, 3), dtype=torch.uint8))
    padded = _rezip(raw, extra={f"archive/junk/{i}": b"x" for i in range(200)})
    with pytest.raises(ImageDecodeError, match="entries"):
        decode_image_b64(_b64(padded), max_pixels=MAX_PIXELS)


def test_strided_and_sliced_torch_images_still_decode_exactly():
    planes = torch.arange(3 * 20 * 30, dtype=torch.int64).remainder(251).to(torch.uint8).reshape(3, 20, 30)
    hwc = planes.permute(1, 2, 0)  # (20, 30, 3) with channel-last strides (30, 1, 600)
    np.testing.assert_array_equal(decode_image_b64(_b64(_torch_bytes(hwc)), max_pixels=MAX_PIXELS), hwc.numpy())
    crop = hwc[5:15, 3:13]  # saved with its whole storage and an offset
    np.testing.assert_array_equal(decode_image_b64(_b64(_torch_bytes(crop)), max_pixels=MAX_PIXELS), crop.numpy())


# -- JSON bombs ----------------------------------------------------------------------------------


@pytest.fixture
def running():
    server = Running(RecordingPlanner())
    yield server
    server.close()


def test_deeply_nested_or_absurd_json_is_400_not_500(running):
    status, body, _ = running.request("POST", "/infer", b"[" * 50_000 + b"]" * 50_000)
    assert status == 400 and "nest" in body["error"], body
    nested = json.dumps({**infer_payload(0), "extra": json.loads("[" * 40 + "]" * 40)}).encode()
    status, body, _ = running.request("POST", "/infer", nested)
    assert status == 400 and "nest" in body["error"], body
    status, body, _ = running.request("POST", "/infer", b'{"timestamp": ' + b"7" * 5000 + b"}")
    assert status == 400, body
    assert running.request("POST", "/infer", infer_payload(0))[0] == 200


def test_json_with_millions_of_values_is_refused_without_building_them(running):
    body = b'{"canbus": [' + b"0.5," * 5_000_000 + b"0.5]}"  # 20 MB: ~200 MB of Python floats if parsed
    with PeakRss() as peak:
        status, reply, _ = running.request("POST", "/infer", body)
    assert status == 400 and "values" in reply["error"], reply
    assert peak.mib < 100, peak.mib
    assert running.request("POST", "/infer", infer_payload(0))[0] == 200


# -- slow and many clients -----------------------------------------------------------------------


def _seconds_until_dropped(running: Running, head: bytes, trickle: bytes, period_s: float, limit_s: float) -> float:
    """Send `head`, then one byte of `trickle` every `period_s`; seconds until the server ends the connection."""
    sock = socket.create_connection((running.host, running.port), timeout=limit_s)
    t0 = time.monotonic()
    try:
        sock.sendall(head)
        for byte in trickle:
            sock.settimeout(period_s)
            try:
                if sock.recv(4096) == b"":
                    return time.monotonic() - t0
                return time.monotonic() - t0  # an answer (408) also ends it
            except TimeoutError:
                pass
            except OSError:
                return time.monotonic() - t0
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - t0
            if time.monotonic() - t0 > limit_s:
                break
        return float("inf")
    finally:
        sock.close()


@pytest.mark.parametrize("stage", ["headers", "body"])
def test_slowloris_is_dropped_at_the_whole_request_deadline(stage):
    running = Running(RecordingPlanner(), ServerConfig.default(request_timeout_s=1.0))
    try:
        if stage == "headers":
            head, trickle = b"POST /infer HTTP/1.1\r\n", b"X-Slow: " + b"a" * 200
        else:
            head, trickle = b"POST /infer HTTP/1.1\r\nContent-Length: 1000\r\n\r\n", b"{" + b" " * 999
        dropped_after_s = _seconds_until_dropped(running, head, trickle, period_s=0.1, limit_s=6.0)
        assert dropped_after_s < 3.0, dropped_after_s  # deadline 1 s; each byte arrives well within any per-read timeout
        assert running.request("GET", "/alive")[:2] == (200, True)
    finally:
        running.close()


def test_connections_over_the_cap_get_503_with_retry_after():
    running = Running(RecordingPlanner(), ServerConfig.default(max_connections=4, request_timeout_s=8.0))
    idle = [socket.create_connection((running.host, running.port), timeout=5) for _ in range(4)]
    try:
        time.sleep(0.3)  # let the server accept all four
        status, body, headers = running.request("GET", "/alive")
        assert status == 503 and "busy" in body["error"], body
        assert int(headers["Retry-After"]) >= 1
    finally:
        for sock in idle:
            sock.close()
    try:
        deadline = time.monotonic() + 3
        while running.request("GET", "/alive")[0] != 200:
            assert time.monotonic() < deadline, "slots not released after the idle clients left"
            time.sleep(0.05)
        assert running.request("POST", "/infer", infer_payload(0))[0] == 200
    finally:
        running.close()


def test_body_bytes_in_flight_over_the_budget_get_503_with_retry_after():
    config = ServerConfig.default(max_body_bytes=1 * MiB, max_inflight_body_bytes=3 * MiB // 2, request_timeout_s=8.0)
    running = Running(RecordingPlanner(), config)
    slow = socket.create_connection((running.host, running.port), timeout=5)
    try:
        slow.sendall(b"POST /infer HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % MiB + b" " * 1000)  # holds 1 MiB of budget
        time.sleep(0.3)
        assert running.request("POST", "/infer", infer_payload(0))[0] == 200  # a small request still fits
        status, body, headers = running.request("POST", "/infer", b" " * (MiB * 3 // 4))
        assert status == 503 and "in flight" in body["error"] and int(headers["Retry-After"]) >= 1, body
    finally:
        slow.close()
    deadline = time.monotonic() + 3
    while (status := running.request("POST", "/infer", b" " * (MiB * 3 // 4))[0]) == 503:
        assert time.monotonic() < deadline, "budget not released after the slow client left"
        time.sleep(0.05)
    assert status == 400  # read and parsed: whitespace is not a JSON object
    running.close()


def test_fifty_clients_connecting_at_once_are_all_answered_promptly():
    """Fifty connections made before the server accepts any: all must sit in the listen backlog (a
    small backlog leaves the rest to SYN retries, seconds late, or resets)."""
    server = make_server(RecordingPlanner(), "127.0.0.1", 0)
    host, port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    sockets = []
    try:
        for _ in range(50):
            sock = socket.create_connection((host, port), timeout=0.5)  # a full backlog drops the SYN
            sock.sendall(b"GET /alive HTTP/1.1\r\nHost: x\r\n\r\n")
            sockets.append(sock)
        t0 = time.monotonic()
        thread.start()
        latest = 0.0
        for sock in sockets:
            reply = sock.recv(4096)
            latest = max(latest, time.monotonic() - t0)
            assert reply.startswith(b"HTTP/1.1 200"), reply[:40]
        assert latest < 0.9, latest  # the first SYN retry comes after 1 s
        payloads = [infer_payload(0) for _ in range(50)]
        statuses: list[int] = []

        def infer(payload: dict) -> None:
            connection = http.client.HTTPConnection(host, port, timeout=30)
            try:
                connection.request("POST", "/infer", body=json.dumps(payload).encode())
                statuses.append(connection.getresponse().status)
            finally:
                connection.close()

        workers = [threading.Thread(target=infer, args=(p,)) for p in payloads]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        assert len(statuses) == 50 and set(statuses) <= {200, 422}, statuses  # 422: same timestamp twice
    finally:
        for sock in sockets:
            sock.close()
        if thread.is_alive():
            server.shutdown()
        server.server_close()


def test_torch_bomb_over_http_is_422_and_cheap(running):
    payload = infer_payload(0, front=_b64(_stride_zero_bomb(12_000, 12_000)))
    with PeakRss() as peak:
        status, body, _ = running.request("POST", "/infer", payload)
    assert status == 422 and body["field"] == "images.CAM_FRONT" and "exceeds" in body["error"], body
    assert peak.mib < 50 and peak.wall_s < 5, (peak.mib, peak.wall_s)
    assert running.request("POST", "/infer", infer_payload(1, front=torch_b64(np.zeros((*IMAGE_HW, 3), np.uint8))))[0] == 200
