"""3D drawing templates for boxes (vehicles, pedestrians, obstacles) and traffic-light heads.

A template is a set of points in unit box coordinates (u along the heading in [-0.5, 0.5], v to the
left in [-0.5, 0.5], w up in [0, 1]) and faces made of parts: the face itself, then details painted
on it (windows, lamps, wheels). An instance scales the unit box by (length, width, height), rotates by
yaw and translates its base centre. Faces are convex and outward-facing; the renderer draws the visible
ones (back faces culled) of each solid, solids far to near.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

PartRole = Literal[
    "body", "roof", "window", "tire", "shadow", "rear_lamp", "headlight", "skin", "trousers",
    "housing", "pole", "lamp_red", "lamp_yellow", "lamp_green",
]


@dataclass(frozen=True)
class TemplatePart:
    """One polygon of a template: indices into the template's points, and what colours it."""

    role: PartRole
    point_idx: np.ndarray  # (K,) int


@dataclass(frozen=True)
class TemplateFace:
    """A planar face: outward normal and centre in unit coordinates; parts drawn in order."""

    normal_uvw: np.ndarray  # (3,)
    center_uvw: np.ndarray  # (3,)
    parts: tuple[TemplatePart, ...]


@dataclass(frozen=True)
class SolidTemplate:
    points_uvw: np.ndarray  # (P, 3) unit coordinates
    ground_parts: tuple[TemplatePart, ...]  # drawn first, on the ground (contact shadow)
    faces: tuple[TemplateFace, ...]

    @property
    def face_centers_uvw(self) -> np.ndarray:
        """(F, 3) face centres, stacked."""
        return np.stack([f.center_uvw for f in self.faces])

    @property
    def face_normals_uvw(self) -> np.ndarray:
        """(F, 3) outward face normals, stacked."""
        return np.stack([f.normal_uvw for f in self.faces])


class _Builder:
    """Accumulates points and faces of one template."""

    def __init__(self) -> None:
        self.points: list[np.ndarray] = []

    def add(self, pts: np.ndarray) -> np.ndarray:
        start = sum(len(p) for p in self.points)
        self.points.append(np.asarray(pts, dtype=np.float64))
        return np.arange(start, start + len(pts))


# Faces of the unit box: (name, normal, function mapping face coords (a, b) in [0,1]^2 to uvw).
# a runs horizontally across the face, b runs up (for the top face, b runs forward).
_FACE_FRAMES = {
    "front": (np.array([1.0, 0, 0]), lambda a, b: np.stack([np.full_like(a, 0.5), 0.5 - a, b], -1)),
    "rear": (np.array([-1.0, 0, 0]), lambda a, b: np.stack([np.full_like(a, -0.5), a - 0.5, b], -1)),
    "left": (np.array([0, 1.0, 0]), lambda a, b: np.stack([a - 0.5, np.full_like(a, 0.5), b], -1)),
    "right": (np.array([0, -1.0, 0]), lambda a, b: np.stack([0.5 - a, np.full_like(a, -0.5), b], -1)),
    "top": (np.array([0, 0, 1.0]), lambda a, b: np.stack([b - 0.5, 0.5 - a, np.ones_like(a)], -1)),
}


def _rect(face: str, a0: float, a1: float, b0: float, b1: float) -> np.ndarray:
    """(4, 3) rectangle on a face of the unit box, in face coordinates [a0, a1] x [b0, b1]."""
    a = np.array([a0, a1, a1, a0], dtype=np.float64)
    b = np.array([b0, b0, b1, b1], dtype=np.float64)
    return _FACE_FRAMES[face][1](a, b)


def _face(builder: _Builder, name: str, body_role: PartRole,
          details: list[tuple[PartRole, np.ndarray]]) -> TemplateFace:
    normal, frame = _FACE_FRAMES[name]
    parts = [TemplatePart(body_role, builder.add(_rect(name, 0, 1, 0, 1)))]
    parts += [TemplatePart(role, builder.add(pts)) for role, pts in details]
    center = frame(np.array([0.5]), np.array([0.5]))[0]
    return TemplateFace(normal_uvw=normal, center_uvw=center, parts=tuple(parts))


def _finish(builder: _Builder, ground_parts: tuple[TemplatePart, ...], faces: list[TemplateFace]) -> SolidTemplate:
    return SolidTemplate(points_uvw=np.concatenate(builder.points), ground_parts=ground_parts, faces=tuple(faces))


def _shadow(builder: _Builder, grow: float) -> tuple[TemplatePart, ...]:
    h = 0.5 * grow
    pts = np.array([[h, h, 0.0], [-h, h, 0.0], [-h, -h, 0.0], [h, -h, 0.0]])
    return (TemplatePart("shadow", builder.add(pts)),)


def _vehicle_template() -> SolidTemplate:
    b = _Builder()
    shadow = _shadow(b, 1.08)
    wheels = [("tire", _rect(s, a0, a1, 0.0, 0.32)) for s in ("left", "right") for a0, a1 in ((0.1, 0.27), (0.73, 0.9))]
    side_windows = [("window", _rect(s, 0.22, 0.7, 0.6, 0.9)) for s in ("left", "right")]
    faces = [
        _face(b, "front", "body", [
            ("window", _rect("front", 0.08, 0.92, 0.62, 0.9)),
            ("headlight", _rect("front", 0.06, 0.22, 0.4, 0.52)),
            ("headlight", _rect("front", 0.78, 0.94, 0.4, 0.52)),
            ("tire", _rect("front", 0.0, 1.0, 0.0, 0.12)),
        ]),
        _face(b, "rear", "body", [
            ("window", _rect("rear", 0.1, 0.9, 0.64, 0.9)),
            ("rear_lamp", _rect("rear", 0.05, 0.22, 0.46, 0.6)),
            ("rear_lamp", _rect("rear", 0.78, 0.95, 0.46, 0.6)),
            ("tire", _rect("rear", 0.0, 1.0, 0.0, 0.12)),
        ]),
        _face(b, "left", "body", [side_windows[0], *wheels[:2]]),
        _face(b, "right", "body", [side_windows[1], *wheels[2:]]),
        _face(b, "top", "roof", []),
    ]
    return _finish(b, shadow, faces)


def _pedestrian_template() -> SolidTemplate:
    b = _Builder()
    shadow = _shadow(b, 1.4)
    faces = [
        _face(b, s, "body", [("trousers", _rect(s, 0, 1, 0, 0.47)), ("skin", _rect(s, 0.15, 0.85, 0.86, 1.0))])
        for s in ("front", "rear", "left", "right")
    ]
    faces.append(_face(b, "top", "skin", []))
    return _finish(b, shadow, faces)


def _plain_template(body: PartRole, top: PartRole, shadow_grow: float | None) -> SolidTemplate:
    b = _Builder()
    shadow = _shadow(b, shadow_grow) if shadow_grow is not None else ()
    faces = [_face(b, s, body, []) for s in ("front", "rear", "left", "right")]
    faces.append(_face(b, "top", top, []))
    return _finish(b, shadow, faces)


# Traffic-light head: a housing of fixed size with three lamp discs on its front face.
LIGHT_HEAD_SIZE_M = (0.3, 0.4, 1.05)  # depth along facing, width, height
LIGHT_POLE_WIDTH_M = 0.14
LAMP_RADIUS_M = 0.13


def _light_head_template() -> SolidTemplate:
    b = _Builder()
    depth, width, height = LIGHT_HEAD_SIZE_M
    theta = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lamps: list[tuple[PartRole, np.ndarray]] = []
    for role, w_center in (("lamp_red", 0.8), ("lamp_yellow", 0.5), ("lamp_green", 0.2)):
        disc = np.stack([
            np.full_like(theta, 0.5),
            LAMP_RADIUS_M * np.cos(theta) / width,
            w_center + LAMP_RADIUS_M * np.sin(theta) / height,
        ], axis=-1)
        lamps.append((role, disc))
    faces = [_face(b, "front", "housing", lamps)]
    faces += [_face(b, s, "housing", []) for s in ("rear", "left", "right", "top")]
    return _finish(b, (), faces)


VEHICLE_TEMPLATE = _vehicle_template()
PEDESTRIAN_TEMPLATE = _pedestrian_template()
OBSTACLE_TEMPLATE = _plain_template("body", "roof", shadow_grow=1.1)
LIGHT_HEAD_TEMPLATE = _light_head_template()
LIGHT_POLE_TEMPLATE = _plain_template("pole", "pole", shadow_grow=None)


def place_points(points_uvw: np.ndarray, size_lwh: np.ndarray, yaw_rad: np.ndarray,
                 base_xyz: np.ndarray) -> np.ndarray:
    """Instances of a template in the world.

    points_uvw: (P, 3); size_lwh, base_xyz: (B, 3); yaw_rad: (B,). Returns (B, P, 3) world metres.
    """
    local = points_uvw[None] * size_lwh[:, None, :]  # (B, P, 3)
    c, s = np.cos(yaw_rad)[:, None], np.sin(yaw_rad)[:, None]
    out = np.empty_like(local)
    out[..., 0] = c * local[..., 0] - s * local[..., 1] + base_xyz[:, None, 0]
    out[..., 1] = s * local[..., 0] + c * local[..., 1] + base_xyz[:, None, 1]
    out[..., 2] = local[..., 2] + base_xyz[:, None, 2]
    return out
