"""Camera-render speed benchmark on the hand-built example road (wired into `foresight bench sim`)."""

from __future__ import annotations

import time

import numpy as np

from sim_eval.render.camera import CameraRenderer
from sim_eval.render.camera_model import PinholeCamera
from sim_eval.render.example_scene import example_road_scene


def benchmark_render(
    n_frames: int = 200,
    height: int = 288,
    width: int = 512,
    n_vehicles: int = 8,
    lanes_per_direction: int = 3,
    curvature_1pm: float = 1.0 / 300.0,
    with_labels: bool = False,
    seed: int = 0,
) -> dict:
    """Render `n_frames` consecutive frames of the ego driving 1 m per frame down the example road.

    Only the render call is timed (the scene is built outside the timer; the map objects are shared
    across frames, as in the simulator). with_labels times `render_with_labels` instead of `render`.
    Returns frames_per_s and per-frame milliseconds (mean, median, p90) with the settings used.
    """
    if n_frames < 1:
        raise ValueError(f"benchmark_render: n_frames must be >= 1, got {n_frames}")
    camera = PinholeCamera.nuscenes_cam_front(height=height, width=width)
    renderer = CameraRenderer(camera)
    scenes = [
        example_road_scene(ego_s_m=float(i), lanes_per_direction=lanes_per_direction, n_vehicles=n_vehicles,
                           curvature_1pm=curvature_1pm, seed=seed)
        for i in range(n_frames)
    ]
    render = renderer.render_with_labels if with_labels else renderer.render
    render(scenes[0])  # warm caches (background, marking geometry)
    times = np.empty(n_frames)
    for i, scene in enumerate(scenes):
        t0 = time.perf_counter()
        render(scene)
        times[i] = time.perf_counter() - t0
    ms = times * 1e3
    return {
        "frames_per_s": float(n_frames / times.sum()),
        "ms_per_frame_mean": float(ms.mean()),
        "ms_per_frame_median": float(np.median(ms)),
        "ms_per_frame_p90": float(np.percentile(ms, 90)),
        "n_frames": n_frames,
        "height": height,
        "width": width,
        "n_vehicles": n_vehicles,
        "lanes_per_direction": lanes_per_direction,
        "with_labels": with_labels,
    }
