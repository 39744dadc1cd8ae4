"""Arc-length parametrised 2D polylines: the geometry under lanes, routes and scripted paths.

All coordinates are world metres; headings are radians counter-clockwise from +x; lateral offsets
are positive to the LEFT of the direction of travel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim_eval.render.scene import as_points_xy  # lives with the renderers: render must not import world

_MIN_SEGMENT_M = 1e-6


@dataclass(frozen=True)
class Projection:
    """Points projected onto a polyline. s_m: (M,) arc length of the foot point (extrapolated
    linearly before the start / past the end); lateral_m: (M,) signed offset, + left."""

    s_m: np.ndarray
    lateral_m: np.ndarray


@dataclass(frozen=True, eq=False)
class Polyline:
    """A piecewise-linear curve. points_xy: (N>=2, 2) world metres, no repeated consecutive points."""

    points_xy: np.ndarray
    s_m: np.ndarray = field(init=False, repr=False)  # (N,) cumulative arc length, s_m[0] == 0
    _segment_heading: np.ndarray = field(init=False, repr=False)  # (N-1,)
    _vertex_heading: np.ndarray = field(init=False, repr=False)  # (N,) unwrapped

    def __post_init__(self) -> None:
        pts = as_points_xy("Polyline.points_xy", self.points_xy, 2)
        seg = np.diff(pts, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        if (seg_len < _MIN_SEGMENT_M).any():
            i = int(np.argmin(seg_len))
            raise ValueError(f"Polyline.points_xy has a repeated point at index {i}: {pts[i]}")
        pts.setflags(write=False)
        seg_heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
        vertex_heading = np.empty(len(pts))
        vertex_heading[0], vertex_heading[-1] = seg_heading[0], seg_heading[-1]
        vertex_heading[1:-1] = 0.5 * (seg_heading[:-1] + seg_heading[1:])
        if len(seg_heading) >= 2:
            # On a smoothly sampled curve the tangent at an end vertex differs from the end chord by
            # half the chord-to-chord turn; correct for it unless the end looks like a real corner.
            turn0, turn1 = seg_heading[1] - seg_heading[0], seg_heading[-1] - seg_heading[-2]
            if abs(turn0) < 0.3:
                vertex_heading[0] -= 0.5 * turn0
            if abs(turn1) < 0.3:
                vertex_heading[-1] += 0.5 * turn1
        object.__setattr__(self, "points_xy", pts)
        object.__setattr__(self, "s_m", np.concatenate([[0.0], np.cumsum(seg_len)]))
        object.__setattr__(self, "_segment_heading", seg_heading)
        object.__setattr__(self, "_vertex_heading", vertex_heading)

    @property
    def length_m(self) -> float:
        return float(self.s_m[-1])

    def point_at(self, s_m: float | np.ndarray) -> np.ndarray:
        """Point(s) at arc length s (clamped to [0, length]). Scalar -> (2,), (M,) -> (M, 2)."""
        s = np.clip(np.asarray(s_m, dtype=np.float64), 0.0, self.length_m)
        x = np.interp(s, self.s_m, self.points_xy[:, 0])
        y = np.interp(s, self.s_m, self.points_xy[:, 1])
        return np.stack([x, y], axis=-1)

    def heading_at(self, s_m: float | np.ndarray) -> np.ndarray:
        """Heading (rad, wrapped to (-pi, pi]) at arc length s, interpolated between vertices."""
        s = np.clip(np.asarray(s_m, dtype=np.float64), 0.0, self.length_m)
        return wrap_angle(np.interp(s, self.s_m, self._vertex_heading))

    def curvature_at(self, s_m: float | np.ndarray) -> np.ndarray:
        """Signed curvature (1/m, + turning left) from the vertex-heading derivative."""
        s = np.clip(np.asarray(s_m, dtype=np.float64), 0.0, self.length_m)
        mid_s = 0.5 * (self.s_m[:-1] + self.s_m[1:])
        if len(mid_s) < 2:
            return np.zeros_like(s)
        kappa = np.diff(self._vertex_heading) / np.diff(self.s_m)
        return np.interp(s, mid_s, kappa)

    def project(self, xy: np.ndarray, s_range_m: tuple[float, float] | None = None) -> Projection:
        """Project (M, 2) or (2,) points onto the polyline (or onto the part within `s_range_m`).

        Beyond the ends of the (windowed) polyline the first/last segment is extended, so a point
        ahead of the end gets s > end and a perpendicular lateral offset.
        """
        pts = np.asarray(xy, dtype=np.float64)
        single = pts.ndim == 1
        pts = as_points_xy("Polyline.project xy", pts.reshape(-1, 2))
        first, last = 0, len(self.points_xy) - 2
        if s_range_m is not None:
            first = int(np.clip(np.searchsorted(self.s_m, s_range_m[0], side="right") - 1, 0, last))
            last = int(np.clip(np.searchsorted(self.s_m, s_range_m[1], side="left") - 1, first, last))
        a = self.points_xy[first : last + 1]  # (S, 2) segment starts
        d = self.points_xy[first + 1 : last + 2] - a  # (S, 2)
        seg_len2 = (d**2).sum(axis=1)
        rel = pts[:, None, :] - a[None, :, :]  # (M, S, 2)
        t = (rel * d[None]).sum(axis=2) / seg_len2[None]  # (M, S)
        # The nearest segment is chosen with clamped feet (true nearest point); only then is a
        # point before the start / past the end measured along the extended end segment.
        foot = a[None] + np.clip(t, 0.0, 1.0)[..., None] * d[None]
        dist2 = ((pts[:, None, :] - foot) ** 2).sum(axis=2)
        best = np.argmin(dist2, axis=1)  # (M,)
        rows = np.arange(len(pts))
        tb = t[rows, best]
        lo = np.where(best == 0, -np.inf, 0.0)
        hi = np.where(best == len(a) - 1, np.inf, 1.0)
        tb = np.clip(tb, lo, hi)
        seg_len = np.sqrt(seg_len2[best])
        s = self.s_m[first + best] + tb * seg_len
        db = d[best]
        cross = db[:, 0] * rel[rows, best, 1] - db[:, 1] * rel[rows, best, 0]
        lateral = cross / seg_len
        if single:
            return Projection(s_m=s[0], lateral_m=lateral[0])
        return Projection(s_m=s, lateral_m=lateral)

    def offset(self, lateral_m: float) -> np.ndarray:
        """(N, 2) points shifted by lateral_m along the vertex normals (+ left)."""
        h = self._vertex_heading
        normal = np.stack([-np.sin(h), np.cos(h)], axis=1)
        return self.points_xy + lateral_m * normal

    def concatenated(self, other: "Polyline") -> "Polyline":
        """This polyline followed by `other`; a shared joint point is kept once."""
        tail = other.points_xy
        if np.hypot(*(tail[0] - self.points_xy[-1])) < 1e-3:
            tail = tail[1:]
        return Polyline(np.concatenate([self.points_xy, tail], axis=0))


def wrap_angle(angle_rad: float | np.ndarray) -> np.ndarray:
    """Wrap angles to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(angle_rad, dtype=np.float64), 2 * np.pi)
