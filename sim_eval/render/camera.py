"""Front-camera renderer: a painter's algorithm over a `RenderScene` with numpy + OpenCV.

Order: sky / ground background, ground polygons (in the scene's order), lane markings, then solids
(boxes and traffic lights) far to near with back faces culled. Every polygon is clipped against the
near plane in 3D before projection, so geometry crossing the image plane stays correct. The same
geometry is rasterised into colours (`render`) or semantic class ids (`render_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sim_eval.render.appearance import CameraPalette, DomainRandomization
from sim_eval.render.camera_model import PinholeCamera, clip_polygon_near
from sim_eval.render.labels import SemanticClass
from sim_eval.render.marking_geometry import MarkingPiecesCache
from sim_eval.render.scene import Box, RenderScene, TrafficLightHead
from sim_eval.render.solid_templates import (
    LIGHT_HEAD_SIZE_M,
    LIGHT_HEAD_TEMPLATE,
    LIGHT_POLE_TEMPLATE,
    LIGHT_POLE_WIDTH_M,
    OBSTACLE_TEMPLATE,
    PEDESTRIAN_TEMPLATE,
    VEHICLE_TEMPLATE,
    SolidTemplate,
    place_points,
)

_SHIFT = 4  # fixed-point bits for cv2.fillPoly: sub-pixel vertex positions
_SCALE = float(1 << _SHIFT)
_COORD_LIMIT = 2.0**26  # keeps fixed-point coordinates inside int32 for far off-screen vertices

_GROUND_LABEL = {"road": SemanticClass.ROAD, "junction": SemanticClass.ROAD,
                 "sidewalk": SemanticClass.GROUND, "grass": SemanticClass.GROUND}
_BOX_LABEL = {"vehicle": SemanticClass.VEHICLE, "pedestrian": SemanticClass.PEDESTRIAN,
              "obstacle": SemanticClass.OBSTACLE}
_BOX_TEMPLATE = {"vehicle": VEHICLE_TEMPLATE, "pedestrian": PEDESTRIAN_TEMPLATE, "obstacle": OBSTACLE_TEMPLATE}
_LIT_ROLE = {"red": "lamp_red", "yellow": "lamp_yellow", "green": "lamp_green"}
_EMISSIVE_ROLES = frozenset({"rear_lamp", "headlight", "lamp_red", "lamp_yellow", "lamp_green"})


@dataclass(frozen=True)
class CameraFrame:
    """One rendered frame: rgb (H, W, 3) uint8 and labels (H, W) uint8 `SemanticClass` ids."""

    rgb: np.ndarray
    labels: np.ndarray


class _Canvas:
    """Where polygons go: an RGB image, a label image, or both (same geometry for both)."""

    __slots__ = ("rgb", "labels")

    def __init__(self, rgb: np.ndarray | None, labels: np.ndarray | None) -> None:
        self.rgb = rgb
        self.labels = labels

    def fill(self, polygons: list[np.ndarray], rgb: tuple[int, int, int], label: int | None) -> None:
        """Fill (K, 2) int32 fixed-point polygons. Polygons of one call must not overlap (even-odd
        fill). label None paints colour only (contact shadows do not change what the ground is)."""
        if self.rgb is not None:
            cv2.fillPoly(self.rgb, polygons, rgb, cv2.LINE_8, _SHIFT)
        if self.labels is not None and label is not None:
            cv2.fillPoly(self.labels, polygons, label, cv2.LINE_8, _SHIFT)


@dataclass(frozen=True)
class _SolidBatch:
    """Every instance of one template in the frame, transformed and projected together.
    Per-instance scalars are Python lists: the draw loop indexes them one at a time."""

    template: SolidTemplate
    points_cam: np.ndarray  # (B, P, 3)
    uv_fixed: np.ndarray  # (B, P, 2) int32
    visible: list  # (B, F) bool: face turned towards the lens
    shade: list  # (B, F) float: ambient + diffuse lighting of each face
    z_min: list  # (B,) nearest / farthest point depth
    z_max: list
    off_screen: list  # (B,) bool: entirely outside the image (valid when all points are in front)
    pixel_height: list  # (B,) projected height in pixels (valid when all points are in front)


@dataclass(frozen=True)
class _TemplateGeometry:
    points_and_centers_uvw: np.ndarray  # (P + F, 3): template points, then face centres
    face_normals_uvw: np.ndarray  # (F, 3)


_TEMPLATE_GEOMETRY: dict[int, _TemplateGeometry] = {}


def _template_geometry(template: SolidTemplate) -> _TemplateGeometry:
    """Stacked arrays of a (module-level, immortal) template, computed once."""
    geometry = _TEMPLATE_GEOMETRY.get(id(template))
    if geometry is None:
        geometry = _TemplateGeometry(np.concatenate([template.points_uvw, template.face_centers_uvw]),
                                     template.face_normals_uvw)
        _TEMPLATE_GEOMETRY[id(template)] = geometry
    return geometry


def _to_fixed(uv: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(uv * _SCALE, -_COORD_LIMIT, _COORD_LIMIT)).astype(np.int32)


def _rgb(c: tuple[int, int, int]) -> tuple[int, int, int]:
    return int(c[0]), int(c[1]), int(c[2])


def _scale_rgb(rgb: tuple[int, int, int] | np.ndarray, gain: float) -> tuple[int, int, int]:
    r, g, b = rgb
    return (min(255, int(r * gain + 0.5)), min(255, int(g * gain + 0.5)), min(255, int(b * gain + 0.5)))


def _mix_rgb(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return (int(a[0] + (b[0] - a[0]) * t + 0.5), int(a[1] + (b[1] - a[1]) * t + 0.5),
            int(a[2] + (b[2] - a[2]) * t + 0.5))


class CameraRenderer:
    """Renders what the ego's front camera sees.

    camera: intrinsics and mount. palette: colours and lighting. randomize: per-frame domain
    randomisation magnitudes, applied only when `render(..., rng=...)` gets a Generator.
    max_distance_m culls objects whose centre (and ground pieces whose nearest vertex) is farther
    from the lens. near_m: near clipping plane. haze_m: distance scale of the haze that fades far
    solids towards the horizon colour. detail_min_px: solids shorter than this on screen are drawn
    without windows, wheels and contact shadow (lamps are always drawn).
    """

    def __init__(
        self,
        camera: PinholeCamera,
        palette: CameraPalette = CameraPalette(),
        randomize: DomainRandomization | None = None,
        max_distance_m: float = 120.0,
        near_m: float = 0.3,
        haze_m: float = 250.0,
        detail_min_px: float = 6.0,
    ) -> None:
        if not isinstance(camera, PinholeCamera):
            raise TypeError(f"CameraRenderer.camera must be a PinholeCamera, got {type(camera).__name__}")
        if not (max_distance_m > near_m > 0):
            raise ValueError(f"CameraRenderer needs max_distance_m > near_m > 0, got {max_distance_m}, {near_m}")
        if haze_m <= 0:
            raise ValueError(f"CameraRenderer.haze_m must be > 0, got {haze_m}")
        self.camera = camera
        self.palette = palette
        self.randomize = randomize
        self.max_distance_m = float(max_distance_m)
        self.near_m = float(near_m)
        self.haze_m = float(haze_m)
        self.detail_min_px = float(detail_min_px)
        self._marking_cache = MarkingPiecesCache()
        self._background_key: tuple | None = None
        self._background_rgb: np.ndarray | None = None
        self._background_labels: np.ndarray | None = None

    # ----------------------------------------------------------------- public API
    def render(self, scene: RenderScene, rng: np.random.Generator | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB. Deterministic without rng; with rng, applies `self.randomize`."""
        rgb, _ = self._render(scene, rng, want_rgb=True, want_labels=False)
        assert rgb is not None
        return rgb

    def render_labels(self, scene: RenderScene) -> np.ndarray:
        """(H, W) uint8 `SemanticClass` ids, from the same geometry as `render(scene)`."""
        _, labels = self._render(scene, None, want_rgb=False, want_labels=True)
        assert labels is not None
        return labels

    def render_with_labels(self, scene: RenderScene, rng: np.random.Generator | None = None) -> CameraFrame:
        """RGB and labels from one geometry pass (and, with rng, the same randomised camera)."""
        rgb, labels = self._render(scene, rng, want_rgb=True, want_labels=True)
        assert rgb is not None and labels is not None
        return CameraFrame(rgb=rgb, labels=labels)

    def _render(self, scene: RenderScene, rng: np.random.Generator | None, want_rgb: bool,
                want_labels: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        camera, palette = self.camera, self.palette
        if rng is not None:
            camera, palette = self._jittered(rng)
        bg_rgb, bg_labels = self._background(camera, palette)
        canvas = _Canvas(bg_rgb.copy() if want_rgb else None, bg_labels.copy() if want_labels else None)
        self._draw(scene, camera, palette, canvas)
        rgb = canvas.rgb
        if rng is not None and rgb is not None:
            rgb = self._post_jitter(rgb, rng)
        return rgb, canvas.labels

    # ----------------------------------------------------------------- randomisation
    def _jittered(self, rng: np.random.Generator) -> tuple[PinholeCamera, CameraPalette]:
        if self.randomize is None:
            raise ValueError("CameraRenderer: rng given but randomize is None; pass a DomainRandomization")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"CameraRenderer: rng must be a numpy Generator, got {type(rng).__name__}")
        palette = self.randomize.jitter_palette(self.palette, rng)
        pitch = self.camera.pitch_rad + self.randomize.pitch_jitter_rad * rng.standard_normal()
        return self.camera.with_pitch(pitch), palette

    def _post_jitter(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        assert self.randomize is not None
        gain = 1.0 + self.randomize.white_balance_jitter * rng.standard_normal(3)
        out = rgb.astype(np.float32) * gain.astype(np.float32)
        if self.randomize.pixel_noise_std > 0:
            out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(self.randomize.pixel_noise_std)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    # ----------------------------------------------------------------- rasterisation
    def _background(self, camera: PinholeCamera, palette: CameraPalette) -> tuple[np.ndarray, np.ndarray]:
        """Sky gradient above the horizon, hazy ground below; cached for the last (camera, palette)."""
        key = (camera, palette)
        if self._background_key == key:
            assert self._background_rgb is not None and self._background_labels is not None
            return self._background_rgb, self._background_labels
        h, w = camera.height, camera.width
        horizon = camera.horizon_row
        rows = np.arange(h, dtype=np.float64)
        sky = rows < horizon
        col = np.empty((h, 3))
        t_sky = np.clip(rows / max(horizon, 1.0), 0.0, 1.0) ** 0.8
        top, hor = np.array(palette.sky_top_rgb, float), np.array(palette.sky_horizon_rgb, float)
        col[sky] = top + (hor - top) * t_sky[sky, None]
        # Ground seen at row r lies at distance mount_height * fy / (r - horizon); haze grows with it.
        dist = camera.mount_height_m * camera.fy / np.maximum(rows - horizon, 1e-3)
        haze = 1.0 - np.exp(-dist / (0.25 * self.haze_m))
        near, far = np.array(palette.ground_near_rgb, float), np.array(palette.ground_horizon_rgb, float)
        col[~sky] = near + (far - near) * haze[~sky, None]
        rgb = np.ascontiguousarray(np.broadcast_to(np.rint(col).astype(np.uint8)[:, None, :], (h, w, 3)))
        labels = np.where(sky, np.uint8(SemanticClass.SKY), np.uint8(SemanticClass.GROUND)).astype(np.uint8)
        labels = np.ascontiguousarray(np.broadcast_to(labels[:, None], (h, w)))
        self._background_key, self._background_rgb, self._background_labels = key, rgb, labels
        return rgb, labels

    # ----------------------------------------------------------------- geometry
    def _project_fixed(self, camera: PinholeCamera, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) camera points -> (N, 2) int32 fixed point; rows with depth < near are meaningless."""
        z = np.maximum(points_cam[:, 2], self.near_m)
        uv = np.empty((len(points_cam), 2))
        uv[:, 0] = camera.fx * points_cam[:, 0] / z + camera.cx
        uv[:, 1] = camera.fy * points_cam[:, 1] / z + camera.cy
        return _to_fixed(uv)

    def _clipped_fixed(self, camera: PinholeCamera, polygon_cam: np.ndarray) -> np.ndarray | None:
        clipped = clip_polygon_near(polygon_cam, self.near_m)
        if len(clipped) < 3:
            return None
        return self._project_fixed(camera, clipped)

    def _flat_pieces(self, camera: PinholeCamera, rt: np.ndarray, points_xy: np.ndarray,
                     offsets: np.ndarray) -> list[np.ndarray | None]:
        """Ground polygons (concatenated (N, 2) world xy, polygon i = points[offsets[i]:offsets[i+1]])
        -> fixed-point image polygons, None where culled. One vectorised transform and projection."""
        if len(offsets) < 2:
            return []
        pts_cam = points_xy @ rt[:, :2].T + rt[:, 3]  # z = 0 on the ground
        z = pts_cam[:, 2]
        starts = offsets[:-1]
        z_min = np.minimum.reduceat(z, starts)
        z_max = np.maximum.reduceat(z, starts)
        culled = ((z_max < self.near_m) | (z_min > self.max_distance_m)).tolist()
        clip = (z_min < self.near_m).tolist()
        uv = self._project_fixed(camera, pts_cam)
        bounds = offsets.tolist()
        out: list[np.ndarray | None] = []
        for i, (c, needs_clip) in enumerate(zip(culled, clip)):
            if c:
                out.append(None)
            elif needs_clip:
                out.append(self._clipped_fixed(camera, pts_cam[bounds[i]:bounds[i + 1]]))
            else:
                out.append(uv[bounds[i]:bounds[i + 1]])
        return out

    def _draw(self, scene: RenderScene, camera: PinholeCamera, palette: CameraPalette, canvas: _Canvas) -> None:
        if not isinstance(scene, RenderScene):
            raise TypeError(f"CameraRenderer.render expects a RenderScene, got {type(scene).__name__}")
        rt = camera.world_to_camera_matrix(scene.ego_pose_xyyaw)
        cam_pos = camera.position_world(scene.ego_pose_xyyaw)

        # Ground polygons, in the scene's order.
        if scene.ground:
            sizes = [len(g.polygon_xy) for g in scene.ground]
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            pieces = self._flat_pieces(camera, rt, np.concatenate([g.polygon_xy for g in scene.ground]), offsets)
            for g, poly in zip(scene.ground, pieces):
                if poly is not None:
                    canvas.fill([poly], _rgb(g.color), int(_GROUND_LABEL[g.kind]))

        # Markings: every painted run of every marking in one pass; the runs of one marking never
        # overlap, so each marking is a single fill call.
        if scene.markings:
            all_pieces = [self._marking_cache.get(m) for m in scene.markings]
            poly_offsets = []
            base = 0
            for p in all_pieces:
                poly_offsets.append(2 * p.run_offsets[:-1] + base)
                base += len(p.polygon_xy)
            if base > 0:
                offsets = np.concatenate(poly_offsets + [np.array([base])])
                flat = self._flat_pieces(camera, rt, np.concatenate([p.polygon_xy for p in all_pieces]), offsets)
                k = 0
                for m, p in zip(scene.markings, all_pieces):
                    polys = [q for q in flat[k:k + p.n_runs] if q is not None]
                    k += p.n_runs
                    if polys:
                        canvas.fill(polys, _rgb(m.color), int(SemanticClass.MARKING))

        self._draw_solids(scene, camera, palette, rt, cam_pos, canvas)

    def _batch(self, template: SolidTemplate, rt: np.ndarray, camera: PinholeCamera, size_lwh: np.ndarray,
               yaw: np.ndarray, base_xyz: np.ndarray, cam_pos: np.ndarray, palette: CameraPalette) -> _SolidBatch:
        """Place, transform and project all instances of a template; per-face visibility and shade."""
        geometry = _template_geometry(template)
        n_points = len(template.points_uvw)
        # Template points and face centres placed in one go: (B, P + F, 3).
        placed = place_points(geometry.points_and_centers_uvw, size_lwh, yaw, base_xyz)
        b = len(placed)
        pts_cam = (placed[:, :n_points].reshape(-1, 3) @ rt[:, :3].T + rt[:, 3]).reshape(b, n_points, 3)
        uv = self._project_fixed(camera, pts_cam.reshape(-1, 3)).reshape(b, n_points, 2)
        centers_world = placed[:, n_points:]
        normals = geometry.face_normals_uvw
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        normals_world = np.empty((b, len(normals), 3))
        normals_world[..., 0] = c * normals[None, :, 0] - s * normals[None, :, 1]
        normals_world[..., 1] = s * normals[None, :, 0] + c * normals[None, :, 1]
        normals_world[..., 2] = normals[None, :, 2]
        visible = np.einsum("bfk,bfk->bf", cam_pos[None, None, :] - centers_world, normals_world) > 0
        shade = palette.ambient + palette.diffuse * np.maximum(normals_world @ palette.sun_unit, 0.0)
        z = pts_cam[..., 2]
        u, v = uv[..., 0], uv[..., 1]
        off_screen = ((u.max(1) < 0) | (u.min(1) > camera.width * _SCALE)
                      | (v.max(1) < 0) | (v.min(1) > camera.height * _SCALE))
        return _SolidBatch(
            template=template, points_cam=pts_cam, uv_fixed=uv,
            visible=visible.tolist(), shade=shade.tolist(),
            z_min=z.min(1).tolist(), z_max=z.max(1).tolist(), off_screen=off_screen.tolist(),
            pixel_height=((v.max(1) - v.min(1)) / _SCALE).tolist(),
        )

    def _draw_solids(self, scene: RenderScene, camera: PinholeCamera, palette: CameraPalette, rt: np.ndarray,
                     cam_pos: np.ndarray, canvas: _Canvas) -> None:
        """Boxes and traffic lights, far to near, back faces culled."""
        # One entry per solid instance: (distance, tie-break order, batch, index in batch, scene object).
        instances: list[tuple[float, int, _SolidBatch, int, Box | TrafficLightHead]] = []

        by_kind: dict[str, list[Box]] = {}
        for box in scene.boxes:
            dx, dy = cam_pos[0] - box.center_xy[0], cam_pos[1] - box.center_xy[1]
            if dx * dx + dy * dy > (self.max_distance_m + box.length_m) ** 2:
                continue
            # The ego's own box (or any box the lens sits inside) would fill the frame: skip it.
            c, s = np.cos(box.yaw_rad), np.sin(box.yaw_rad)
            if (abs(c * dx + s * dy) <= box.length_m / 2 and abs(-s * dx + c * dy) <= box.width_m / 2
                    and cam_pos[2] <= box.height_m):
                continue
            by_kind.setdefault(box.kind, []).append(box)
        for kind, boxes in by_kind.items():
            size = np.array([[b.length_m, b.width_m, b.height_m] for b in boxes])
            yaw = np.array([b.yaw_rad for b in boxes])
            base = np.array([[b.center_xy[0], b.center_xy[1], 0.0] for b in boxes])
            batch = self._batch(_BOX_TEMPLATE[kind], rt, camera, size, yaw, base, cam_pos, palette)
            dist = np.hypot(base[:, 0] - cam_pos[0], base[:, 1] - cam_pos[1]).tolist()
            for i, box in enumerate(boxes):
                instances.append((dist[i], len(instances), batch, i, box))

        lights = [lt for lt in scene.lights
                  if np.hypot(cam_pos[0] - lt.position_xyz[0], cam_pos[1] - lt.position_xyz[1]) <= self.max_distance_m]
        if lights:
            depth, width, height = LIGHT_HEAD_SIZE_M
            n = len(lights)
            pos = np.array([lt.position_xyz for lt in lights], dtype=np.float64)
            yaw = np.array([lt.facing_yaw_rad for lt in lights])
            head_base = pos - np.array([0.0, 0.0, height / 2])
            heads = self._batch(LIGHT_HEAD_TEMPLATE, rt, camera, np.tile([depth, width, height], (n, 1)),
                                yaw, head_base, cam_pos, palette)
            # The pole stands behind the housing, from the ground up into the housing.
            back = -(depth + LIGHT_POLE_WIDTH_M) / 2
            pole_base = np.stack([pos[:, 0] + back * np.cos(yaw), pos[:, 1] + back * np.sin(yaw), np.zeros(n)], 1)
            pole_size = np.stack([np.full(n, LIGHT_POLE_WIDTH_M), np.full(n, LIGHT_POLE_WIDTH_M),
                                  np.maximum(head_base[:, 2] + height * 0.9, 0.05)], axis=1)
            poles = self._batch(LIGHT_POLE_TEMPLATE, rt, camera, pole_size, yaw, pole_base, cam_pos, palette)
            dist = np.hypot(pos[:, 0] - cam_pos[0], pos[:, 1] - cam_pos[1]).tolist()
            for i, lt in enumerate(lights):
                instances.append((dist[i] + 1e-6, len(instances), poles, i, lt))
                instances.append((dist[i], len(instances), heads, i, lt))

        instances.sort(key=lambda e: (-e[0], e[1]))
        haze_rgb = palette.ground_horizon_rgb
        for dist, _, batch, i, obj in instances:
            if batch.z_max[i] < self.near_m:
                continue
            needs_clip = batch.z_min[i] < self.near_m
            if not needs_clip and batch.off_screen[i]:
                continue
            simple = not needs_clip and batch.pixel_height[i] < self.detail_min_px
            haze = 1.0 - np.exp(-dist / self.haze_m)
            if isinstance(obj, Box):
                label = int(_BOX_LABEL[obj.kind])
                base_rgb = obj.color
            else:
                label = int(SemanticClass.LIGHT)
                base_rgb = palette.light_housing_rgb
            colors = self._role_colors(obj, palette)
            pts_cam, uv = batch.points_cam[i], batch.uv_fixed[i]
            if not simple:
                for part in batch.template.ground_parts:
                    poly = self._clipped_fixed(camera, pts_cam[part.point_idx]) if needs_clip else uv[part.point_idx]
                    if poly is not None:
                        canvas.fill([poly], _mix_rgb(colors[part.role], haze_rgb, haze), None)
            visible, shade = batch.visible[i], batch.shade[i]
            for f, face in enumerate(batch.template.faces):
                if not visible[f]:
                    continue
                for part in face.parts:
                    role = part.role
                    if role == "body":
                        rgb = _scale_rgb(base_rgb, shade[f])
                    elif role == "roof":
                        rgb = _scale_rgb(base_rgb, shade[f] * palette.roof_tint)
                    elif role in _EMISSIVE_ROLES:
                        rgb = colors[role]  # lamps are lit from inside: not shaded
                    elif simple:
                        continue  # too small on screen for windows, wheels and shadows
                    else:
                        rgb = _scale_rgb(colors[role], shade[f])
                    poly = self._clipped_fixed(camera, pts_cam[part.point_idx]) if needs_clip else uv[part.point_idx]
                    if poly is not None:
                        canvas.fill([poly], _mix_rgb(rgb, haze_rgb, haze), label)

    @staticmethod
    def _role_colors(obj: Box | TrafficLightHead, palette: CameraPalette) -> dict[str, tuple[int, int, int]]:
        colors = {
            "window": palette.window_rgb,
            "tire": palette.tire_rgb,
            "shadow": palette.shadow_rgb,
            "headlight": palette.headlight_rgb,
            "skin": palette.skin_rgb,
            "trousers": palette.trousers_rgb,
            "housing": palette.light_housing_rgb,
            "pole": palette.light_pole_rgb,
            "lamp_red": palette.lamp_off_rgb,
            "lamp_yellow": palette.lamp_off_rgb,
            "lamp_green": palette.lamp_off_rgb,
        }
        if isinstance(obj, Box):
            colors["rear_lamp"] = palette.brake_on_rgb if obj.brake_on else palette.brake_off_rgb
        elif obj.state in _LIT_ROLE:
            role = _LIT_ROLE[obj.state]
            colors[role] = getattr(palette, f"{role}_rgb")
        return colors
