"""Marking pieces: dash runs by arc length from the polyline start, ribbons of the marking's width."""

import numpy as np
import pytest

from sim_eval.render.marking_geometry import MarkingPiecesCache, compute_marking_pieces
from sim_eval.render.scene import Marking


def _runs(pieces):
    b = pieces.run_offsets
    return [pieces.centerline_xy[b[r]:b[r + 1]] for r in range(pieces.n_runs)]


def test_dashes_start_at_the_polyline_start_and_repeat_with_the_period():
    # Extra collinear vertices must not change the pattern.
    line = np.array([[0.0, 0.0], [5.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    pieces = compute_marking_pieces(Marking(line, width_m=0.2, dash_m=(3.0, 6.0)))
    runs = _runs(pieces)
    assert [(r[0, 0], r[-1, 0]) for r in runs] == [(0.0, 3.0), (9.0, 12.0), (18.0, 20.0)]
    assert pieces.polygon_xy.shape == (2 * len(pieces.centerline_xy), 2)
    # Run 1 (9..12 m) contains the vertex at 10 m; its ribbon is 0.2 m wide.
    poly = pieces.polygon_xy[2 * pieces.run_offsets[1]:2 * pieces.run_offsets[2]]
    np.testing.assert_allclose(poly, [[9, 0.1], [10, 0.1], [12, 0.1], [12, -0.1], [10, -0.1], [9, -0.1]])


def test_reversing_the_polyline_moves_the_phase_to_the_other_end():
    line = np.array([[0.0, 0.0], [20.0, 0.0]])
    fwd = _runs(compute_marking_pieces(Marking(line, dash_m=(3.0, 6.0))))
    rev = _runs(compute_marking_pieces(Marking(line[::-1], dash_m=(3.0, 6.0))))
    assert [r[0, 0] for r in fwd] == [0.0, 9.0, 18.0]
    assert [r[0, 0] for r in rev] == [20.0, 11.0, 2.0]


def test_solid_line_around_a_corner_keeps_its_width():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    pieces = compute_marking_pieces(Marking(line, width_m=1.0))
    assert pieces.n_runs == 1
    # Mitred corner: the outer (right) side passes through (10.5, -0.5), the inner (left) through (9.5, 0.5).
    np.testing.assert_allclose(pieces.polygon_xy, [[0, 0.5], [9.5, 0.5], [9.5, 10], [10.5, 10], [10.5, -0.5],
                                                   [0, -0.5]], atol=1e-12)


def test_dash_on_a_curve_follows_the_curve():
    theta = np.linspace(0, np.pi / 2, 91)
    arc = 20.0 * np.stack([np.sin(theta), 1 - np.cos(theta)], axis=1)
    pieces = compute_marking_pieces(Marking(arc, width_m=0.1, dash_m=(5.0, 5.0)))
    centre = np.array([0.0, 20.0])
    radius = np.hypot(*(pieces.centerline_xy - centre).T)
    # Dash ends are interpolated on chords of 0.35 m, so they sit within 1 mm of the arc.
    assert np.abs(radius - 20.0).max() < 1e-3
    assert pieces.n_runs == int(np.ceil(20.0 * np.pi / 2 / 10.0))


def test_degenerate_polylines_and_cache():
    same_point = Marking(np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert compute_marking_pieces(same_point).n_runs == 0
    cache = MarkingPiecesCache(max_entries=2)
    a = Marking(np.array([[0.0, 0.0], [10.0, 0.0]]), dash_m=(1.0, 1.0))
    assert cache.get(a) is cache.get(a)
    for _ in range(3):
        cache.get(Marking(np.array([[0.0, 0.0], [5.0, 0.0]])))
    assert cache.get(a).n_runs == 5
    with pytest.raises(ValueError, match="max_entries"):
        MarkingPiecesCache(max_entries=0)
