"""Oriented-box footprints and vectorised separating-axis overlap tests.

Corner order follows nuPlan: front-left, rear-left, rear-right, front-right, so the front
bumper is the segment corners[..., 0, :] -> corners[..., 3, :].
"""

from __future__ import annotations

import numpy as np

FRONT_LEFT, REAR_LEFT, REAR_RIGHT, FRONT_RIGHT = 0, 1, 2, 3


def box_corners(
    center_xyyaw: np.ndarray, length_m: np.ndarray | float, width_m: np.ndarray | float
) -> np.ndarray:
    """Corners of oriented boxes.

    center_xyyaw (..., 3) [m, m, rad] box centres; length_m / width_m broadcast to (...).
    Returns (..., 4, 2) [m] in the order FL, RL, RR, FR.
    """
    center_xyyaw = np.asarray(center_xyyaw, dtype=np.float64)
    half_l = 0.5 * np.asarray(length_m, dtype=np.float64)
    half_w = 0.5 * np.asarray(width_m, dtype=np.float64)
    half_l, half_w = np.broadcast_arrays(half_l, half_w)
    half_l = np.broadcast_to(half_l, center_xyyaw.shape[:-1])
    half_w = np.broadcast_to(half_w, center_xyyaw.shape[:-1])
    cos, sin = np.cos(center_xyyaw[..., 2]), np.sin(center_xyyaw[..., 2])
    sign_lon = np.array([1.0, -1.0, -1.0, 1.0])
    sign_lat = np.array([1.0, 1.0, -1.0, -1.0])
    local_x = half_l[..., None] * sign_lon  # (..., 4)
    local_y = half_w[..., None] * sign_lat
    world_x = center_xyyaw[..., 0:1] + cos[..., None] * local_x - sin[..., None] * local_y
    world_y = center_xyyaw[..., 1:2] + sin[..., None] * local_x + cos[..., None] * local_y
    return np.stack([world_x, world_y], axis=-1)


def _edge_normals(polygon_xy: np.ndarray) -> np.ndarray:
    """(..., N, 2) closed convex polygon (or a 2-point segment) -> (..., N, 2) edge normals."""
    edges = np.roll(polygon_xy, -1, axis=-2) - polygon_xy
    return np.stack([-edges[..., 1], edges[..., 0]], axis=-1)


def convex_overlap(polygon_a_xy: np.ndarray, polygon_b_xy: np.ndarray) -> np.ndarray:
    """Whether convex polygons overlap (touching counts, as shapely's `intersects`).

    polygon_a_xy (..., Na, 2), polygon_b_xy (..., Nb, 2), batch dims broadcast; a 2-vertex
    "polygon" is a segment. Returns (...) bool. Separating-axis theorem over all edge normals;
    NaN coordinates give False.
    """
    a = np.asarray(polygon_a_xy, dtype=np.float64)
    b = np.asarray(polygon_b_xy, dtype=np.float64)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    axes = np.concatenate([_edge_normals(a), _edge_normals(b)], axis=-2)  # (..., K, 2)
    proj_a = np.einsum("...kd,...nd->...kn", axes, a)  # (..., K, Na)
    proj_b = np.einsum("...kd,...nd->...kn", axes, b)
    # Degenerate axes (zero-length edges) project everything to 0 and never separate.
    separated = (proj_a.max(-1) < proj_b.min(-1)) | (proj_b.max(-1) < proj_a.min(-1))
    overlap = ~separated.any(-1)
    finite = np.isfinite(a).all(axis=(-2, -1)) & np.isfinite(b).all(axis=(-2, -1))
    return overlap & finite
