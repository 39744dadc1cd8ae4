"""Lane-graph road map with a drivable-area geometry and spatial queries.

Right-hand traffic. World metres, headings in radians counter-clockwise from +x, lateral offsets
positive to the left of a lane's direction of travel.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import Polygon

from sim_eval.render.scene import as_points_xy
from sim_eval.world.polyline import Polyline, wrap_angle

MarkingKind = Literal["solid", "dashed", "none"]
TurnKind = Literal["straight", "left", "right"]
_MARKINGS = ("solid", "dashed", "none")


@dataclass(frozen=True, eq=False)
class Lane:
    """One directed lane. centerline_xy: (N>=2, 2) world metres sampled at <= 1 m, in the direction
    of travel. left_neighbor / right_neighbor: adjacent SAME-direction lane ids; left_opposite: the
    opposite-direction lane across the centre line (only for the lane next to it). left_marking /
    right_marking: the paint on each boundary. turn: for junction connectors, the manoeuvre."""

    lane_id: int
    centerline_xy: np.ndarray
    width_m: float
    speed_limit_mps: float
    successors: tuple[int, ...] = ()
    predecessors: tuple[int, ...] = ()
    left_neighbor: int | None = None
    right_neighbor: int | None = None
    left_marking: MarkingKind = "none"
    right_marking: MarkingKind = "none"
    is_junction: bool = False
    left_opposite: int | None = None
    turn: TurnKind | None = None
    path: Polyline = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = f"Lane {self.lane_id}"
        pts = as_points_xy(f"{where}.centerline_xy", self.centerline_xy, 2)
        spacing = np.hypot(*np.diff(pts, axis=0).T)
        if spacing.max() > 1.0 + 1e-6:
            raise ValueError(f"{where}.centerline_xy must be sampled at <= 1 m, max spacing {spacing.max():.3f} m")
        if not (0.5 <= self.width_m <= 10.0):
            raise ValueError(f"{where}.width_m must be in [0.5, 10], got {self.width_m}")
        if not (0.0 < self.speed_limit_mps < 80.0):
            raise ValueError(f"{where}.speed_limit_mps must be in (0, 80), got {self.speed_limit_mps}")
        for name in ("left_marking", "right_marking"):
            if getattr(self, name) not in _MARKINGS:
                raise ValueError(f"{where}.{name} must be one of {_MARKINGS}, got {getattr(self, name)!r}")
        if self.turn is not None and self.turn not in ("straight", "left", "right"):
            raise ValueError(f"{where}.turn must be straight/left/right/None, got {self.turn!r}")
        object.__setattr__(self, "successors", tuple(int(i) for i in self.successors))
        object.__setattr__(self, "predecessors", tuple(int(i) for i in self.predecessors))
        object.__setattr__(self, "path", Polyline(pts))
        object.__setattr__(self, "centerline_xy", self.path.points_xy)

    @property
    def length_m(self) -> float:
        return self.path.length_m

    def point_at(self, s_m: float | np.ndarray) -> np.ndarray:
        """Centre-line point(s) at arc length s (clamped). Scalar -> (2,), (M,) -> (M, 2)."""
        return self.path.point_at(s_m)

    def heading_at(self, s_m: float | np.ndarray) -> np.ndarray:
        """Direction of travel (rad) at arc length s (clamped)."""
        return self.path.heading_at(s_m)

    def project(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s_m, lateral_m) of (2,) or (M, 2) points; lateral + left of the direction of travel."""
        proj = self.path.project(xy)
        return proj.s_m, proj.lateral_m

    def boundary_xy(self, side: Literal["left", "right"]) -> np.ndarray:
        """(N, 2) boundary polyline on the given side, in the direction of travel."""
        half = 0.5 * self.width_m
        return self.path.offset(half if side == "left" else -half)

    def polygon_xy(self) -> np.ndarray:
        """(2N, 2) lane outline: left boundary forward, right boundary backward."""
        return np.concatenate([self.boundary_xy("left"), self.boundary_xy("right")[::-1]], axis=0)


@dataclass(frozen=True)
class Surface:
    """A ground area of the map besides the lanes. polygon_xy: (N>=3, 2) world metres. Road and
    junction surfaces are drivable, sidewalks are not."""

    polygon_xy: np.ndarray
    kind: Literal["road", "junction", "sidewalk"]

    def __post_init__(self) -> None:
        object.__setattr__(self, "polygon_xy", as_points_xy("Surface.polygon_xy", self.polygon_xy, 3))
        if self.kind not in ("road", "junction", "sidewalk"):
            raise ValueError(f"Surface.kind must be road/junction/sidewalk, got {self.kind!r}")


class RoadMap:
    """Lanes plus the drivable area (union of lane polygons and road/junction surfaces)."""

    def __init__(self, lanes: dict[int, Lane] | list[Lane], surfaces: tuple[Surface, ...] = ()) -> None:
        lane_list = list(lanes.values()) if isinstance(lanes, dict) else list(lanes)
        if not lane_list:
            raise ValueError("RoadMap needs at least one lane")
        self.lanes: dict[int, Lane] = {}
        for lane in lane_list:
            if lane.lane_id in self.lanes:
                raise ValueError(f"RoadMap: duplicate lane_id {lane.lane_id}")
            self.lanes[lane.lane_id] = lane
        for lane in lane_list:
            refs = [*lane.successors, *lane.predecessors, lane.left_neighbor, lane.right_neighbor, lane.left_opposite]
            missing = [r for r in refs if r is not None and r not in self.lanes]
            if missing:
                raise ValueError(f"RoadMap: lane {lane.lane_id} references unknown lanes {missing}")
        self.surfaces: tuple[Surface, ...] = tuple(surfaces)
        self._lane_ids = np.array(list(self.lanes), dtype=np.int64)
        self._lane_polygons = [Polygon(self.lanes[int(i)].polygon_xy()).buffer(0) for i in self._lane_ids]
        self._lane_tree = STRtree(self._lane_polygons)
        drivable_parts = self._lane_polygons + [
            Polygon(s.polygon_xy).buffer(0) for s in self.surfaces if s.kind != "sidewalk"
        ]
        self.drivable_area = shapely.union_all(drivable_parts)
        shapely.prepare(self.drivable_area)

    # ---- spatial queries -------------------------------------------------------------------
    def lane_polygon(self, lane_id: int) -> Polygon:
        return self._lane_polygons[int(np.flatnonzero(self._lane_ids == lane_id)[0])]

    def lanes_near(self, xy: np.ndarray, max_distance_m: float = 0.0) -> list[int]:
        """Ids of lanes whose polygon is within max_distance_m of the (2,) point."""
        pt_idx, lane_ids, _, _, _ = self._candidates(np.asarray(xy, dtype=np.float64).reshape(1, 2), max_distance_m)
        return sorted(int(i) for i in lane_ids)

    def _candidates(self, pts: np.ndarray, max_distance_m: float = 0.0) -> tuple[np.ndarray, ...]:
        """All (point, lane) pairs with the point in (or within max_distance_m of) the lane polygon:
        point index (P,), lane id (P,), and the point's s_m, lateral_m, lane heading (P,) on that lane."""
        geoms = shapely.points(pts)
        if max_distance_m > 0:
            pt_idx, tree_idx = self._lane_tree.query(geoms, predicate="dwithin", distance=max_distance_m)
        else:
            pt_idx, tree_idx = self._lane_tree.query(geoms, predicate="intersects")
        s, lat, heading = (np.empty(len(pt_idx)) for _ in range(3))
        for ti in np.unique(tree_idx):
            sel = tree_idx == ti
            lane = self.lanes[int(self._lane_ids[ti])]
            proj = lane.path.project(pts[pt_idx[sel]])
            s[sel], lat[sel], heading[sel] = proj.s_m, proj.lateral_m, lane.heading_at(proj.s_m)
        return pt_idx, self._lane_ids[tree_idx], s, lat, heading

    def _best_lanes(
        self,
        points_xy: np.ndarray,
        heading_rad: np.ndarray | float | None,
        max_distance_m: float,
        max_heading_diff_rad: float,
        heading_weight: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per point, the candidate lane with the smallest |lateral| + heading_weight * |heading
        difference| (only lanes within max_heading_diff_rad when a heading is given).
        Returns lane ids (M,) (-1 where none) and that lane's heading there (M,) (NaN where none)."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        pt_idx, lane_ids, _, lat, heading = self._candidates(pts, max_distance_m)
        key = np.abs(lat)
        if heading_rad is not None:
            hint = np.broadcast_to(np.asarray(heading_rad, dtype=np.float64), (len(pts),))[pt_idx]
            dh = np.abs(wrap_angle(heading - hint))
            key = key + heading_weight * dh
            keep = dh <= max_heading_diff_rad
            pt_idx, lane_ids, heading, key = pt_idx[keep], lane_ids[keep], heading[keep], key[keep]
        order = np.lexsort((lane_ids, key, pt_idx))  # per point: lowest key first (ties: lowest id)
        first = order[np.unique(pt_idx[order], return_index=True)[1]]
        best_id, best_heading = np.full(len(pts), -1, dtype=np.int64), np.full(len(pts), np.nan)
        best_id[pt_idx[first]], best_heading[pt_idx[first]] = lane_ids[first], heading[first]
        return best_id, best_heading

    def lane_at(
        self,
        xy: np.ndarray,
        heading_rad: float | None = None,
        max_distance_m: float = 0.0,
        max_heading_diff_rad: float = np.pi / 2,
    ) -> int | None:
        """Lane containing (or within max_distance_m of) the (2,) point with the smallest |lateral|
        offset; with heading_rad, only lanes whose direction is within max_heading_diff_rad of it,
        and overlapping junction connectors resolve to the best-aligned one. None when none qualifies."""
        ids, _ = self._best_lanes(
            np.asarray(xy, dtype=np.float64).reshape(1, 2), heading_rad, max_distance_m, max_heading_diff_rad, 2.0
        )
        return None if ids[0] < 0 else int(ids[0])

    def is_drivable_xy(self, points_xy: np.ndarray) -> np.ndarray:
        """(M,) bool: point inside (or on the edge of) the drivable area. Accepts (M, 2) or (2,)."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        return shapely.intersects_xy(self.drivable_area, pts[:, 0], pts[:, 1])

    def distance_outside_drivable(self, points_xy: np.ndarray) -> np.ndarray:
        """(M,) metres from each point to the drivable area (0 inside). Accepts (M, 2) or (2,)."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        return shapely.distance(self.drivable_area, shapely.points(pts))

    def lane_heading_at(self, points_xy: np.ndarray, heading_hint_rad: np.ndarray | float | None = None) -> np.ndarray:
        """(M,) direction of travel (rad) of the lane at each point, NaN off the lanes. Without a hint
        the lane with the nearest centre line wins; with a hint (the vehicle's heading, scalar or
        (M,)) the best-aligned lane wins, so a car in a junction is judged against the connector it
        follows while a car in an opposite-direction lane still gets that lane's heading."""
        weight = 0.0 if heading_hint_rad is None else 100.0
        return self._best_lanes(points_xy, heading_hint_rad, 0.0, np.inf, weight)[1]

    def speed_limit_at(self, points_xy: np.ndarray, heading_hint_rad: np.ndarray | float | None = None) -> np.ndarray:
        """(M,) speed limit (m/s) of the lane at each point (chosen as in lane_at), NaN off the lanes."""
        ids, _ = self._best_lanes(points_xy, heading_hint_rad, 0.0, np.pi / 2, 2.0)
        limits = np.array([self.lanes[int(i)].speed_limit_mps for i in self._lane_ids] + [np.nan])
        lookup = {int(lane_id): k for k, lane_id in enumerate(self._lane_ids)}
        return limits[[lookup.get(int(i), -1) for i in ids]]

    def straddles_lanes(self, footprints_xy: np.ndarray) -> np.ndarray:
        """(N,) bool for (N, 4, 2) footprints: True unless a single lane contains all four corners."""
        fp = np.asarray(footprints_xy, dtype=np.float64)
        if fp.ndim != 3 or fp.shape[1:] != (4, 2):
            raise ValueError(f"RoadMap.straddles_lanes: footprints must be (N, 4, 2), got {fp.shape}")
        flat = fp.reshape(-1, 2)
        pairs = self._lane_tree.query(shapely.points(flat), predicate="intersects")  # (2, P): point idx, lane idx
        hit = np.zeros((len(flat), len(self._lane_ids)), dtype=bool)
        hit[pairs[0], pairs[1]] = True
        inside_one = hit.reshape(len(fp), 4, -1).all(axis=1).any(axis=1)
        return ~inside_one

    # ---- lane graph ------------------------------------------------------------------------
    def check_route(self, lane_ids: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        """Validate that each lane is a successor of the previous one; returns the ids as a tuple."""
        ids = tuple(int(i) for i in lane_ids)
        if not ids:
            raise ValueError("route must contain at least one lane id")
        for a, b in zip(ids[:-1], ids[1:]):
            if a not in self.lanes or b not in self.lanes:
                raise ValueError(f"route references unknown lane {a if a not in self.lanes else b}")
            if b not in self.lanes[a].successors:
                raise ValueError(f"route is not connected: lane {b} is not a successor of lane {a}")
        if ids[-1] not in self.lanes:
            raise ValueError(f"route references unknown lane {ids[-1]}")
        return ids

    def route_polyline(self, lane_ids: tuple[int, ...] | list[int]) -> np.ndarray:
        """(N, 2) centre line of consecutive lanes, joint points kept once."""
        ids = self.check_route(lane_ids)
        path = self.lanes[ids[0]].path
        for lane_id in ids[1:]:
            path = path.concatenated(self.lanes[lane_id].path)
        return path.points_xy

    def route_speed_limits(self, lane_ids: tuple[int, ...] | list[int]) -> np.ndarray:
        """(N,) speed limit (m/s) at each point of route_polyline(lane_ids); a joint point takes the
        lower of the two lanes' limits."""
        ids = self.check_route(lane_ids)
        first = self.lanes[ids[0]]
        limits = [np.full(len(first.centerline_xy), first.speed_limit_mps)]
        prev_end = first.centerline_xy[-1]
        for lane_id in ids[1:]:
            lane = self.lanes[lane_id]
            n = len(lane.centerline_xy)
            lim = np.full(n, lane.speed_limit_mps)
            if np.hypot(*(lane.centerline_xy[0] - prev_end)) < 1e-3:
                limits[-1][-1] = min(limits[-1][-1], lane.speed_limit_mps)
                lim = lim[1:]
            limits.append(lim)
            prev_end = lane.centerline_xy[-1]
        return np.concatenate(limits)

    def shortest_route(self, from_lane: int, to_lane: int) -> tuple[int, ...]:
        """Lane ids from from_lane to to_lane (both included) minimising the summed lane lengths
        (Dijkstra over successors). Raises ValueError when to_lane is unreachable."""
        for lane_id in (from_lane, to_lane):
            if lane_id not in self.lanes:
                raise ValueError(f"shortest_route: unknown lane {lane_id}")
        dist = {from_lane: 0.0}
        parent: dict[int, int] = {}
        heap = [(0.0, from_lane)]
        while heap:
            d, lane_id = heapq.heappop(heap)
            if lane_id == to_lane:
                break
            if d > dist[lane_id]:
                continue
            for nxt in self.lanes[lane_id].successors:
                nd = d + self.lanes[nxt].length_m
                if nd < dist.get(nxt, np.inf):
                    dist[nxt], parent[nxt] = nd, lane_id
                    heapq.heappush(heap, (nd, nxt))
        if to_lane not in dist:
            raise ValueError(f"shortest_route: lane {to_lane} is not reachable from lane {from_lane}")
        route = [to_lane]
        while route[-1] != from_lane:
            route.append(parent[route[-1]])
        return tuple(reversed(route))

    @property
    def bounds_xy(self) -> tuple[float, float, float, float]:
        """(min_x, min_y, max_x, max_y) of the drivable area, metres."""
        return tuple(float(v) for v in self.drivable_area.bounds)
