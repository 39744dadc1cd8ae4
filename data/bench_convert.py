"""`foresight bench convert`: how fast `foresight data opendv` turns video into clips (one JSON object).

Makes `videos` synthetic driving videos of the OpenDV-YouTube kind once (H.264, 30 fps, 1280x720,
a minute each by default; a textured road seen from a moving car, so the decoder has real work) and
keeps them under `cache`. Then it times, on the same files:

- decode_only_fps: PyAV decoding every frame and nothing else, `decode_threads` threads: the
  ceiling of one worker;
- video_s_per_s_workers1 / _workers2: seconds of video converted per second of wall time by the
  real command (`foresight data opendv`, 288x512 JPEG frames at 2 Hz by default) with 1 and 2
  worker processes, each decoding with `decode_threads` threads;
- ratio_workers2_vs_1, ratio_vs_decode_only (one worker against the ceiling), and the hours that
  `projected_video_hours` of video would take on `projected_cores` cores of the same speed, scaling
  at the measured two-worker efficiency.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from configs import build, compose
from data.convert import available_cores
from data.settings import check_int, check_real

CAMERA_HEIGHT_M = 1.5
SPEED_MPS = 15.0
TEXTURE_PX_PER_M = 16
TEXTURE_HALF_WIDTH_M = 24.0
TEXTURE_PERIOD_M = 36.0  # lane dashes every 9 m repeat exactly in this length
FOG_START_M, FOG_END_M = 40.0, 120.0


@dataclass(frozen=True)
class BenchConvertConfig:
    """configs/bench/convert.yaml: sizes in px, rates in Hz, durations in s."""

    cache: str | None
    videos: int
    duration_s: float
    width: int
    height: int
    fps: int
    crf: int
    seed: int
    out_height: int
    out_width: int
    out_fps: float
    decode_threads: int
    projected_video_hours: float
    projected_cores: int

    def __post_init__(self) -> None:
        check_int("videos", self.videos, 1)
        object.__setattr__(self, "duration_s", check_real("duration_s", self.duration_s, 0.0, low_open=True))
        for key in ("width", "height", "fps", "out_height", "out_width", "decode_threads", "projected_cores"):
            check_int(key, getattr(self, key), 1)
        if self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even (H.264 4:2:0), got {self.width}x{self.height}")
        check_int("crf", self.crf, 0, 51)
        check_int("seed", self.seed, 0)
        object.__setattr__(self, "out_fps", check_real("out_fps", self.out_fps, 0.0, low_open=True))
        object.__setattr__(self, "projected_video_hours", check_real("projected_video_hours", self.projected_video_hours, 0.0, low_open=True))

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache).expanduser() if self.cache else Path.home() / ".cache" / "foresight" / "bench_convert"


# ----------------------------------------------------------------------------- synthetic driving video


def _ground_texture(rng: np.random.Generator) -> np.ndarray:
    """(L, W, 3) uint8 BGR texture of the road plane, TEXTURE_PX_PER_M px per metre: asphalt,
    dashed lane lines, solid edges, grass; periodic along the road (TEXTURE_PERIOD_M)."""
    ppm = TEXTURE_PX_PER_M
    length, width = int(TEXTURE_PERIOD_M * ppm), int(2 * TEXTURE_HALF_WIDTH_M * ppm)
    x_m = (np.arange(width) + 0.5) / ppm - TEXTURE_HALF_WIDTH_M
    z_m = (np.arange(length) + 0.5) / ppm
    grain = cv2.GaussianBlur(rng.normal(0, 1, (length, width)).astype(np.float32), (0, 0), 1.2)
    asphalt = 95 + 14 * grain
    grass = np.stack([40 + 18 * grain, 105 + 30 * grain, 60 + 15 * grain], axis=-1)
    tex = np.repeat(asphalt[..., None], 3, axis=-1)
    tex = np.where((np.abs(x_m) > 6.0)[None, :, None], grass, tex)
    dashes = (z_m % 9.0 < 3.0)[:, None] & (np.abs(np.abs(x_m) - 1.75) < 0.08)[None, :]
    edges = (np.abs(np.abs(x_m) - 5.25) < 0.1)[None, :].repeat(length, axis=0)
    tex[dashes | edges] = 235
    return np.clip(tex, 0, 255).astype(np.uint8)


class DrivingScene:
    """Frames (H, W, 3) uint8 BGR of a car driving at SPEED_MPS down a straight road: the ground is
    the textured plane under a pinhole camera (so it streams towards the viewer like real footage),
    over a sky and a still skyline, with a car ahead whose distance changes."""

    def __init__(self, height: int, width: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.h, self.w = height, width
        self.f = 0.55 * width  # focal length [px]: ~85 degrees horizontal field of view
        self.horizon = int(0.45 * height)
        self.texture = _ground_texture(rng)
        ys, xs = np.mgrid[self.horizon + 1 : height, 0:width].astype(np.float32)
        z = self.f * CAMERA_HEIGHT_M / (ys - self.horizon)
        x = (xs - width / 2) * z / self.f
        self.map_x = (x + TEXTURE_HALF_WIDTH_M) * TEXTURE_PX_PER_M
        self.map_z = z * TEXTURE_PX_PER_M
        self.fog = np.clip((z - FOG_START_M) / (FOG_END_M - FOG_START_M), 0, 1)[..., None]
        self.fog_colour = np.array([170, 165, 160], np.float32)
        sky = np.linspace(235, 175, self.horizon + 1)[:, None, None] * np.array([1.0, 0.85, 0.7]) * rng.uniform(0.85, 1.0)
        self.sky = np.broadcast_to(sky, (self.horizon + 1, width, 3)).astype(np.uint8).copy()
        x0 = 0
        while x0 < width:  # a skyline of blocks on the horizon
            bw, bh = int(rng.integers(width // 40, width // 12)), int(rng.integers(height // 40, height // 8))
            shade = int(rng.integers(70, 140))
            cv2.rectangle(self.sky, (x0, self.horizon - bh), (x0 + bw, self.horizon), (shade, shade, shade + 10), -1)
            x0 += bw + int(rng.integers(0, width // 30))

    def frame(self, t_s: float) -> np.ndarray:
        img = np.empty((self.h, self.w, 3), np.uint8)
        img[: self.horizon + 1] = self.sky
        map_y = np.mod(self.map_z + SPEED_MPS * t_s * TEXTURE_PX_PER_M, self.texture.shape[0]).astype(np.float32)
        ground = cv2.remap(self.texture, self.map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP).astype(np.float32)
        img[self.horizon + 1 :] = (ground * (1 - self.fog) + self.fog_colour * self.fog).astype(np.uint8)
        z_car = 18.0 + 8.0 * np.sin(t_s / 4.0)
        bottom = self.horizon + int(self.f * CAMERA_HEIGHT_M / z_car)
        half_w, car_h = int(0.9 * self.f / z_car), int(1.5 * self.f / z_car)
        cx = self.w // 2 + int(self.f * 0.3 * np.sin(t_s / 7.0) / z_car)
        cv2.rectangle(img, (cx - half_w, bottom - car_h), (cx + half_w, bottom), (40, 35, 30), -1)
        for side in (-1, 1):
            lx = cx + side * int(0.7 * half_w)
            cv2.circle(img, (lx, bottom - car_h // 3), max(1, half_w // 8), (30, 30, 220), -1)
        return img


def make_video(path: Path, cfg: BenchConvertConfig, seed: int) -> Path:
    """Write one synthetic driving video (H.264 yuv420p, cfg.fps, cfg.width x cfg.height,
    cfg.duration_s) atomically to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    scene = DrivingScene(cfg.height, cfg.width, seed)
    try:
        with av.open(str(tmp), "w") as container:
            stream = container.add_stream("libx264", rate=cfg.fps, options={"crf": str(cfg.crf), "preset": "faster"})
            stream.width, stream.height, stream.pix_fmt = cfg.width, cfg.height, "yuv420p"
            for k in range(int(round(cfg.duration_s * cfg.fps))):
                frame = av.VideoFrame.from_ndarray(scene.frame(k / cfg.fps), format="bgr24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def cached_videos(cfg: BenchConvertConfig) -> list[Path]:
    """The benchmark's videos, made on first use and kept in cfg.cache_dir."""
    tag = f"{cfg.width}x{cfg.height}-{cfg.fps}fps-{cfg.duration_s:g}s-crf{cfg.crf}"
    paths = []
    for k in range(cfg.videos):
        path = cfg.cache_dir / f"drive-{tag}-seed{cfg.seed + k}.mp4"
        if not path.is_file():
            make_video(path, cfg, cfg.seed + k)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- measurements


def decode_only(paths: list[Path], threads: int) -> tuple[int, float]:
    """(frames, seconds) to decode every frame of `paths` with PyAV and do nothing else."""
    frames, start = 0, time.perf_counter()
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            for _ in container.decode(stream):
                frames += 1
    return frames, time.perf_counter() - start


def _metadata_csv(path: Path, videos: list[Path]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["VideoID", "Train / Val", "Discarded Length at the Begininning (second)", "Discarded Length at the Ending (second)"])
        for v in videos:
            w.writerow([v.stem, "Train", 0, 0])
    return path


def convert_seconds(videos_dir: Path, metadata: Path, out: Path, cfg: BenchConvertConfig, workers: int) -> float:
    """Wall seconds of `foresight data opendv` over the videos with `workers` processes (its
    progress output swallowed, so that this command prints one JSON object)."""
    from data.sources.opendv import run as run_opendv

    overrides = [
        f"videos={videos_dir}", f"metadata={metadata}", f"out={out}", f"workers={workers}",
        f"decode_threads={cfg.decode_threads}", f"height={cfg.out_height}", f"width={cfg.out_width}", f"fps={cfg.out_fps}",
    ]  # fmt: skip
    command = compose("data/opendv", overrides)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_opendv(command)
    return time.perf_counter() - start


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run(cfg: Any) -> dict:
    c = build(BenchConvertConfig, cfg, "bench convert")
    paths = cached_videos(c)
    video_s = c.videos * c.duration_s
    frames, decode_s = decode_only(paths, c.decode_threads)
    with tempfile.TemporaryDirectory() as tmp:
        videos_dir = Path(tmp) / "videos"
        videos_dir.mkdir()
        for p in paths:  # the command finds videos by their stem under one folder
            (videos_dir / f"{p.stem}.mp4").symlink_to(p)
        metadata = _metadata_csv(Path(tmp) / "OpenDV-YouTube.csv", paths)
        seconds = {w: convert_seconds(videos_dir, metadata, Path(tmp) / f"out-w{w}", c, w) for w in (1, 2)}
    per_s = {w: video_s / s for w, s in seconds.items()}
    ratio_2_vs_1 = per_s[2] / per_s[1]
    decode_fps = frames / decode_s
    efficiency = ratio_2_vs_1 / 2  # per-core throughput kept when going from one worker to two
    projected_h = c.projected_video_hours / (per_s[1] * c.projected_cores * efficiency)
    out = {
        "videos": c.videos,
        "video_s_each": c.duration_s,
        "source": f"H.264 {c.width}x{c.height} {c.fps} fps, crf {c.crf}",
        "output": f"{c.out_height}x{c.out_width} jpeg at {c.out_fps:g} Hz",
        "decode_threads": c.decode_threads,
        "decode_only_fps": decode_fps,
        "video_s_per_s_decode_only": decode_fps / c.fps,
        "video_s_per_s_workers1": per_s[1],
        "video_s_per_s_workers2": per_s[2],
        "ratio_workers2_vs_1": ratio_2_vs_1,
        "ratio_vs_decode_only": per_s[1] / (decode_fps / c.fps),
        "projected": {
            "video_hours": c.projected_video_hours,
            "cores": c.projected_cores,
            "hours": projected_h,
            "assumes": "cores as fast as this machine's, scaling at the measured two-worker efficiency",
        },
        "machine": {"cpu": _cpu_model(), "cores_available": available_cores()},
    }
    print(json.dumps(out, indent=1))
    return out
