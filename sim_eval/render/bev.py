"""Bird's-eye-view renderer for reports and videos: road, markings, boxes, lights and trajectories."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import cv2
import numpy as np

from contract.vehicle import PACIFICA
from sim_eval.render.appearance import RGB, check_rgb
from sim_eval.render.marking_geometry import MarkingPiecesCache
from sim_eval.render.scene import RenderScene

_SHIFT = 4
_SCALE = float(1 << _SHIFT)

def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(p[0]), int(p[1])


def _rgb(c: RGB) -> tuple[int, int, int]:
    return int(c[0]), int(c[1]), int(c[2])


@dataclass(frozen=True)
class BevPalette:
    """BEV colours (RGB). Ground polygons and markings keep their scene colours."""

    background_rgb: RGB = (52, 64, 48)
    ego_rgb: RGB = (0, 200, 120)
    ego_outline_rgb: RGB = (255, 255, 255)
    box_outline_rgb: RGB = (15, 15, 15)
    heading_rgb: RGB = (245, 245, 245)
    brake_rgb: RGB = (255, 40, 30)
    light_red_rgb: RGB = (255, 40, 30)
    light_yellow_rgb: RGB = (255, 200, 0)
    light_green_rgb: RGB = (40, 230, 90)
    light_off_rgb: RGB = (90, 90, 90)
    text_rgb: RGB = (255, 255, 255)
    trajectory_rgbs: tuple[RGB, ...] = ((255, 80, 200), (60, 200, 255), (255, 200, 40), (160, 255, 80),
                                        (255, 130, 60), (200, 160, 255))

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.endswith("_rgb"):
                check_rgb("BevPalette", f.name, getattr(self, f.name))
        if not self.trajectory_rgbs:
            raise ValueError("BevPalette.trajectory_rgbs must not be empty")
        for c in self.trajectory_rgbs:
            check_rgb("BevPalette", "trajectory_rgbs[]", c)


class BevRenderer:
    """Top-down view of a `RenderScene`.

    size_px: image side (int) or (height, width). Scale: exactly one of meters_per_px or extent_m
    (metres spanned by the image width); default 0.25 m/px. ego_centered: the ego's rear axle sits at
    the image centre and, with heading_up, its heading points up the image; otherwise the view is
    world-aligned (x right, y up) around center_xy. The ego is drawn from its pose with the given
    footprint (default nuPlan Pacifica), highlighted.
    """

    def __init__(
        self,
        size_px: int | tuple[int, int] = 256,
        meters_per_px: float | None = None,
        extent_m: float | None = None,
        ego_centered: bool = True,
        heading_up: bool = True,
        center_xy: tuple[float, float] | None = None,
        ego_footprint_m: tuple[float, float, float] = (PACIFICA.rear_axle_to_front_m, PACIFICA.rear_axle_to_rear_m, PACIFICA.width_m),
        palette: BevPalette = BevPalette(),
    ) -> None:
        h, w = (size_px, size_px) if isinstance(size_px, (int, np.integer)) else tuple(size_px)
        if int(h) != h or int(w) != w or h < 8 or w < 8:
            raise ValueError(f"BevRenderer.size_px must be >= 8 pixels per side, got {size_px}")
        if meters_per_px is not None and extent_m is not None:
            raise ValueError("BevRenderer: give meters_per_px or extent_m, not both")
        if extent_m is not None:
            if extent_m <= 0:
                raise ValueError(f"BevRenderer.extent_m must be > 0, got {extent_m}")
            meters_per_px = extent_m / w
        elif meters_per_px is None:
            meters_per_px = 0.25
        if meters_per_px <= 0:
            raise ValueError(f"BevRenderer.meters_per_px must be > 0, got {meters_per_px}")
        if not ego_centered and center_xy is None:
            raise ValueError("BevRenderer: ego_centered=False needs center_xy")
        front, rear, width = ego_footprint_m
        if not (front + rear > 0 and width > 0):
            raise ValueError(f"BevRenderer.ego_footprint_m (front, rear, width) must span a positive area, "
                             f"got {ego_footprint_m}")
        self.height, self.width = int(h), int(w)
        self.meters_per_px = float(meters_per_px)
        self.ego_centered = ego_centered
        self.heading_up = heading_up
        self.center_xy = center_xy
        self.ego_footprint_m = ego_footprint_m
        self.palette = palette
        self._marking_cache = MarkingPiecesCache()

    # ----------------------------------------------------------------- coordinates
    def _view(self, ego_pose_xyyaw: tuple[float, float, float]) -> tuple[np.ndarray, float]:
        """View centre (world xy) and rotation (rad) that maps to image-up."""
        if self.ego_centered:
            center = np.asarray(ego_pose_xyyaw[:2], dtype=np.float64)
        else:
            assert self.center_xy is not None
            center = np.asarray(self.center_xy, dtype=np.float64)
        yaw = ego_pose_xyyaw[2] if (self.ego_centered and self.heading_up) else np.pi / 2
        return center, yaw

    def world_to_pixels(self, points_xy: np.ndarray, ego_pose_xyyaw: tuple[float, float, float]) -> np.ndarray:
        """(N, 2) world metres -> (N, 2) float pixel (column, row) for this view."""
        pts = np.asarray(points_xy, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points_xy must have shape (N, 2), got {pts.shape}")
        center, yaw = self._view(ego_pose_xyyaw)
        d = pts - center
        c, s = np.cos(yaw), np.sin(yaw)
        up = c * d[:, 0] + s * d[:, 1]  # along the view's "up" direction
        left = -s * d[:, 0] + c * d[:, 1]
        out = np.empty_like(d)
        out[:, 0] = (self.width - 1) / 2 - left / self.meters_per_px
        out[:, 1] = (self.height - 1) / 2 - up / self.meters_per_px
        return out

    def _fixed(self, points_xy: np.ndarray, pose: tuple[float, float, float]) -> np.ndarray:
        px = self.world_to_pixels(points_xy, pose)
        return np.rint(np.clip(px * _SCALE, -2.0**26, 2.0**26)).astype(np.int32)

    # ----------------------------------------------------------------- drawing
    def render(
        self,
        scene: RenderScene,
        trajectories: Mapping[str, np.ndarray] | None = None,
        colors: Mapping[str, RGB] | None = None,
        legend: bool = True,
    ) -> np.ndarray:
        """(H, W, 3) uint8 RGB.

        trajectories: name -> (K, 2) world xy polyline, or (S, K, 2) a fan of S sampled polylines
        (drawn thin and faded). colors: name -> RGB; names without one cycle through the palette.
        """
        if not isinstance(scene, RenderScene):
            raise TypeError(f"BevRenderer.render expects a RenderScene, got {type(scene).__name__}")
        pal = self.palette
        pose = scene.ego_pose_xyyaw
        img = np.empty((self.height, self.width, 3), dtype=np.uint8)
        img[:] = pal.background_rgb

        for g in scene.ground:
            cv2.fillPoly(img, [self._fixed(g.polygon_xy, pose)], _rgb(g.color), cv2.LINE_AA, _SHIFT)

        for m in scene.markings:
            pieces = self._marking_cache.get(m)
            bounds = pieces.run_offsets.tolist()
            if m.width_m / self.meters_per_px >= 1.5:
                poly_px = self._fixed(pieces.polygon_xy, pose)
                polys = [poly_px[2 * bounds[r]:2 * bounds[r + 1]] for r in range(pieces.n_runs)]
                if polys:
                    cv2.fillPoly(img, polys, _rgb(m.color), cv2.LINE_AA, _SHIFT)
            else:
                line_px = self._fixed(pieces.centerline_xy, pose)
                lines = [line_px[bounds[r]:bounds[r + 1]] for r in range(pieces.n_runs)]
                if lines:
                    cv2.polylines(img, lines, False, _rgb(m.color), 1, cv2.LINE_AA, _SHIFT)

        for box in scene.boxes:
            corners = self._fixed(box.corners_xy(), pose)  # FL, RL, RR, FR
            cv2.fillPoly(img, [corners], _rgb(box.color), cv2.LINE_AA, _SHIFT)
            cv2.polylines(img, [corners], True, pal.box_outline_rgb, 1, cv2.LINE_AA, _SHIFT)
            if box.kind == "vehicle":
                cv2.line(img, _pt(corners[0]), _pt(corners[3]), pal.heading_rgb, 2, cv2.LINE_AA, _SHIFT)
                if box.brake_on:
                    cv2.line(img, _pt(corners[1]), _pt(corners[2]), pal.brake_rgb, 2, cv2.LINE_AA, _SHIFT)

        light_rgb = {"red": pal.light_red_rgb, "yellow": pal.light_yellow_rgb, "green": pal.light_green_rgb,
                     "off": pal.light_off_rgb}
        radius_px = max(3.0, 0.8 / self.meters_per_px)
        for lt in scene.lights:
            x, y = lt.position_xyz[0], lt.position_xyz[1]
            tip = (x + 2.0 * np.cos(lt.facing_yaw_rad), y + 2.0 * np.sin(lt.facing_yaw_rad))
            pts = self._fixed(np.array([[x, y], tip]), pose)
            cv2.line(img, _pt(pts[0]), _pt(pts[1]), pal.box_outline_rgb, 2, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, _pt(pts[0]), int(radius_px * _SCALE), light_rgb[lt.state], -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, _pt(pts[0]), int(radius_px * _SCALE), pal.box_outline_rgb, 1, cv2.LINE_AA, _SHIFT)

        self._draw_ego(img, pose)
        if trajectories:
            self._draw_trajectories(img, pose, trajectories, colors or {}, legend)
        return img

    def _draw_ego(self, img: np.ndarray, pose: tuple[float, float, float]) -> None:
        front, rear, width = self.ego_footprint_m
        x, y, yaw = pose
        c, s = np.cos(yaw), np.sin(yaw)
        local = np.array([[front, width / 2], [-rear, width / 2], [-rear, -width / 2], [front, -width / 2]])
        world = local @ np.array([[c, s], [-s, c]]) + np.array([x, y])
        corners = self._fixed(world, pose)
        cv2.fillPoly(img, [corners], self.palette.ego_rgb, cv2.LINE_AA, _SHIFT)
        cv2.polylines(img, [corners], True, self.palette.ego_outline_rgb, 2, cv2.LINE_AA, _SHIFT)
        cv2.line(img, _pt(corners[0]), _pt(corners[3]), self.palette.heading_rgb, 2, cv2.LINE_AA, _SHIFT)

    def _draw_trajectories(self, img: np.ndarray, pose: tuple[float, float, float],
                           trajectories: Mapping[str, np.ndarray], colors: Mapping[str, RGB], legend: bool) -> None:
        pal = self.palette
        resolved: list[tuple[str, RGB, np.ndarray]] = []
        for k, (name, traj) in enumerate(trajectories.items()):
            arr = np.asarray(traj, dtype=np.float64)
            if arr.ndim not in (2, 3) or arr.shape[-1] != 2 or arr.shape[-2] < 1 or not np.isfinite(arr).all():
                raise ValueError(f"BevRenderer.render: trajectories[{name!r}] must be finite (K, 2) or (S, K, 2), "
                                 f"got shape {arr.shape}")
            rgb = colors.get(name, pal.trajectory_rgbs[k % len(pal.trajectory_rgbs)])
            check_rgb("BevRenderer.render colors", name, rgb)
            resolved.append((name, tuple(int(c) for c in rgb), arr))
        # Fans of samples first (thin, faded towards the background), single polylines on top.
        for _, rgb, arr in resolved:
            if arr.ndim == 3:
                faded = tuple(int(0.6 * a + 0.4 * b) for a, b in zip(rgb, pal.background_rgb))
                cv2.polylines(img, [self._fixed(sample, pose) for sample in arr], False, faded, 1, cv2.LINE_AA,
                              _SHIFT)
        dot = int(max(1.5, 0.25 / self.meters_per_px) * _SCALE)
        for _, rgb, arr in resolved:
            if arr.ndim == 2:
                pts = self._fixed(arr, pose)
                if len(pts) > 1:
                    cv2.polylines(img, [pts], False, rgb, 2, cv2.LINE_AA, _SHIFT)
                for p in pts:
                    cv2.circle(img, (int(p[0]), int(p[1])), dot, rgb, -1, cv2.LINE_AA, _SHIFT)
        if legend:
            scale = max(0.3, self.height / 700)
            line_h = int(22 * scale) + 4
            for k, (name, rgb, _) in enumerate(resolved):
                y = 6 + k * line_h
                cv2.rectangle(img, (6, y), (6 + line_h - 6, y + line_h - 6), rgb, -1)
                cv2.putText(img, name, (6 + line_h, y + line_h - 8), cv2.FONT_HERSHEY_SIMPLEX, scale,
                            pal.text_rgb, 1, cv2.LINE_AA)
