"""Lane markings as painted pieces on the ground: dash runs and their ribbon polygons (world xy).

Shared by the camera and the bird's-eye-view renderers, so dashes sit at the same world positions in
both. A dash pattern's phase is the arc length from the polyline's first point, so dashes are fixed
in the world and slide through the image as the ego moves.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from sim_eval.render.scene import Marking

_MAX_MITER = 2.0  # caps ribbon widening at sharp polyline corners


@dataclass(frozen=True)
class MarkingPieces:
    """The painted runs of one marking.

    centerline_xy: (S, 2) samples along the polyline; run r is centerline_xy[run_offsets[r]:run_offsets[r+1]].
    polygon_xy: (2S, 2) ribbon outlines (left side forward, right side back); run r's polygon is
      polygon_xy[2*run_offsets[r]:2*run_offsets[r+1]].
    run_offsets: (R+1,) int64, R = number of painted runs (1 for a solid line, one per dash).
    """

    centerline_xy: np.ndarray
    polygon_xy: np.ndarray
    run_offsets: np.ndarray

    @property
    def n_runs(self) -> int:
        return len(self.run_offsets) - 1


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """concat(arange(c) for c in counts), vectorised."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


def _empty_pieces() -> MarkingPieces:
    return MarkingPieces(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(1, dtype=np.int64))


def compute_marking_pieces(marking: Marking) -> MarkingPieces:
    """Split a marking into its dash runs and build a ribbon polygon of width_m for each."""
    pts = marking.polyline_xy
    seg = np.diff(pts, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    keep = np.concatenate([[True], seg_len > 1e-9])
    pts = pts[keep]
    if len(pts) < 2:
        return _empty_pieces()
    seg = np.diff(pts, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    n_seg = len(seg)
    tangent = seg / seg_len[:, None]
    seg_normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)  # left of travel
    s_vertex = np.concatenate([[0.0], np.cumsum(seg_len)])
    total = s_vertex[-1]

    # Vertex normals: mitred average of the adjacent segment normals.
    vertex_normal = np.empty_like(pts)
    vertex_normal[0] = seg_normal[0]
    vertex_normal[-1] = seg_normal[-1]
    if n_seg > 1:
        avg = seg_normal[:-1] + seg_normal[1:]
        norm = np.hypot(avg[:, 0], avg[:, 1])
        avg = np.where(norm[:, None] > 1e-9, avg / np.maximum(norm, 1e-9)[:, None], seg_normal[1:])
        cos_half = np.einsum("ij,ij->i", avg, seg_normal[1:])
        vertex_normal[1:-1] = avg / np.clip(cos_half, 1.0 / _MAX_MITER, 1.0)[:, None]

    if marking.dash_m is None:
        starts = np.array([0.0])
        ends = np.array([total])
    else:
        on, off = marking.dash_m
        period = on + off
        starts = np.arange(int(np.ceil(total / period))) * period
        ends = np.minimum(starts + on, total)
        valid = ends - starts > 1e-6
        starts, ends = starts[valid], ends[valid]
    n_runs = len(starts)
    if n_runs == 0:
        return _empty_pieces()

    # Interior polyline vertices that fall strictly inside a painted run keep the ribbon on the curve.
    s_inner = s_vertex[1:-1]
    run_of_vertex = np.searchsorted(starts, s_inner, side="right") - 1
    painted = (run_of_vertex >= 0) & (s_inner > starts[np.maximum(run_of_vertex, 0)]) & (
        s_inner < ends[np.maximum(run_of_vertex, 0)]
    )
    v_idx = np.nonzero(painted)[0] + 1
    run_ids = np.concatenate([np.arange(n_runs), run_of_vertex[painted], np.arange(n_runs)])
    s_all = np.concatenate([starts, s_vertex[v_idx], ends])
    kind = np.concatenate([np.zeros(n_runs), np.ones(len(v_idx)), np.full(n_runs, 2.0)])
    vertex_of_sample = np.concatenate([np.full(n_runs, -1), v_idx, np.full(n_runs, -1)])
    order = np.lexsort((kind, s_all, run_ids))
    s_all, run_ids, vertex_of_sample = s_all[order], run_ids[order], vertex_of_sample[order]

    seg_of_sample = np.clip(np.searchsorted(s_vertex, s_all, side="right") - 1, 0, n_seg - 1)
    center = pts[seg_of_sample] + tangent[seg_of_sample] * (s_all - s_vertex[seg_of_sample])[:, None]
    normal = seg_normal[seg_of_sample]
    is_vertex = vertex_of_sample >= 0
    center[is_vertex] = pts[vertex_of_sample[is_vertex]]
    normal[is_vertex] = vertex_normal[vertex_of_sample[is_vertex]]

    half_w = marking.width_m / 2
    left = center + half_w * normal
    right = center - half_w * normal
    counts = np.bincount(run_ids, minlength=n_runs)
    run_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # Polygon r: left[a..b-1] then right[b-1..a].
    local = _ragged_arange(counts)
    first = np.repeat(run_offsets[:-1], counts)
    last = np.repeat(run_offsets[1:] - 1, counts)
    poly_idx = np.empty(2 * len(s_all), dtype=np.int64)
    poly_start = np.repeat(2 * run_offsets[:-1], counts)
    poly_idx[poly_start + local] = first + local
    poly_idx[poly_start + counts.repeat(counts) + local] = len(s_all) + last - local
    polygon = np.concatenate([left, right])[poly_idx]
    return MarkingPieces(centerline_xy=center, polygon_xy=polygon, run_offsets=run_offsets)


class MarkingPiecesCache:
    """Memoises `compute_marking_pieces` per Marking object (the map's markings are reused every frame).

    Keys are object ids; the Marking itself is kept alive in the entry so an id cannot be recycled
    while cached.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError(f"MarkingPiecesCache.max_entries must be >= 1, got {max_entries}")
        self._max_entries = max_entries
        self._entries: OrderedDict[int, tuple[Marking, MarkingPieces]] = OrderedDict()

    def get(self, marking: Marking) -> MarkingPieces:
        key = id(marking)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is marking:
            self._entries.move_to_end(key)
            return entry[1]
        pieces = compute_marking_pieces(marking)
        self._entries[key] = (marking, pieces)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return pieces
