"""`PolygonMapQuery`: a `MapQuery` over a shapely drivable polygon and lane centrelines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True, eq=False)
class LaneSpec:
    """One lane: centreline_xy (P, 2) [m] in driving order, width_m [m], speed_limit_mps [m/s] (NaN = unknown)."""

    centerline_xy: np.ndarray
    width_m: float
    speed_limit_mps: float = float("nan")

    def __post_init__(self) -> None:
        centerline = np.array(self.centerline_xy, dtype=np.float64)
        if centerline.ndim != 2 or centerline.shape[0] < 2 or centerline.shape[1] != 2:
            raise ValueError(f"LaneSpec.centerline_xy: expected (P>=2, 2), got {centerline.shape}")
        if not np.isfinite(centerline).all():
            raise ValueError("LaneSpec.centerline_xy: contains non-finite values")
        if (np.linalg.norm(np.diff(centerline, axis=0), axis=-1) <= 0).any():
            raise ValueError("LaneSpec.centerline_xy: repeated consecutive points")
        if not (math.isfinite(self.width_m) and self.width_m > 0):
            raise ValueError(f"LaneSpec.width_m: must be finite and > 0, got {self.width_m}")
        if not (math.isnan(self.speed_limit_mps) or self.speed_limit_mps > 0):
            raise ValueError(f"LaneSpec.speed_limit_mps: must be > 0 or NaN, got {self.speed_limit_mps}")
        centerline.setflags(write=False)
        object.__setattr__(self, "centerline_xy", centerline)


class PolygonMapQuery:
    """Map queries from a drivable polygon plus lanes (each lane = centreline buffered by width / 2).

    Where lanes overlap (junctions), a point belongs to the lane with the nearest centreline.
    """

    def __init__(self, drivable_area: BaseGeometry, lanes: Sequence[LaneSpec]) -> None:
        if not isinstance(drivable_area, BaseGeometry) or drivable_area.is_empty:
            raise ValueError("PolygonMapQuery.drivable_area: expected a non-empty shapely geometry")
        if not all(isinstance(lane, LaneSpec) for lane in lanes):
            raise TypeError("PolygonMapQuery.lanes: expected a sequence of LaneSpec")
        self.drivable_area = drivable_area
        self.lanes = tuple(lanes)
        self._centerlines = [LineString(lane.centerline_xy) for lane in self.lanes]
        self._lane_polygons = [
            line.buffer(0.5 * lane.width_m, cap_style="flat") for line, lane in zip(self._centerlines, self.lanes)
        ]
        for geometry in (self.drivable_area, *self._centerlines, *self._lane_polygons):
            shapely.prepare(geometry)
        self._cumulative_m = [
            np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(lane.centerline_xy, axis=0), axis=-1))])
            for lane in self.lanes
        ]
        self._segment_heading = [
            np.arctan2(np.diff(lane.centerline_xy[:, 1]), np.diff(lane.centerline_xy[:, 0])) for lane in self.lanes
        ]

    @classmethod
    def from_lanes(cls, lanes: Sequence[LaneSpec], shoulder_m: float = 0.0) -> PolygonMapQuery:
        """Drivable area = union of the lane polygons widened by shoulder_m [m] on each side."""
        polygons = [
            LineString(lane.centerline_xy).buffer(0.5 * lane.width_m + shoulder_m, cap_style="flat") for lane in lanes
        ]
        return cls(shapely.union_all(polygons), lanes)

    @staticmethod
    def _points(points_xy: np.ndarray) -> np.ndarray:
        points = np.asarray(points_xy, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"PolygonMapQuery: points must be (N, 2), got {points.shape}")
        return points

    def distance_outside_drivable(self, points_xy: np.ndarray) -> np.ndarray:
        points = self._points(points_xy)
        return shapely.distance(self.drivable_area, shapely.points(points)).astype(np.float64)

    def _lane_index(self, points: np.ndarray) -> np.ndarray:
        """(N,) index of the lane containing each point (nearest centreline wins), -1 where none."""
        if not self.lanes:
            return np.full(points.shape[0], -1)
        geometries = shapely.points(points)
        distance = np.full((len(self.lanes), points.shape[0]), np.inf)
        for index, (polygon, line) in enumerate(zip(self._lane_polygons, self._centerlines)):
            inside = shapely.intersects_xy(polygon, points[:, 0], points[:, 1])
            distance[index, inside] = shapely.distance(line, geometries[inside])
        best = distance.argmin(axis=0)
        return np.where(np.isfinite(distance.min(axis=0)), best, -1)

    def lane_heading_at(self, points_xy: np.ndarray) -> np.ndarray:
        points = self._points(points_xy)
        lane_index = self._lane_index(points)
        heading = np.full(points.shape[0], np.nan)
        for index in np.unique(lane_index[lane_index >= 0]):
            mask = lane_index == index
            arc_m = shapely.line_locate_point(self._centerlines[index], shapely.points(points[mask]))
            segment = np.clip(np.searchsorted(self._cumulative_m[index], arc_m, side="right") - 1,
                              0, len(self._segment_heading[index]) - 1)
            heading[mask] = self._segment_heading[index][segment]
        return heading

    def speed_limit_at(self, points_xy: np.ndarray) -> np.ndarray:
        points = self._points(points_xy)
        lane_index = self._lane_index(points)
        limits = np.array([lane.speed_limit_mps for lane in self.lanes] + [np.nan])
        return limits[lane_index]  # index -1 picks the trailing NaN

    def straddles_lanes(self, footprints_xy: np.ndarray) -> np.ndarray:
        footprints = np.asarray(footprints_xy, dtype=np.float64)
        if footprints.ndim != 3 or footprints.shape[1:] != (4, 2):
            raise ValueError(f"PolygonMapQuery.straddles_lanes: footprints must be (N, 4, 2), got {footprints.shape}")
        flat = footprints.reshape(-1, 2)
        inside_one_lane = np.zeros(footprints.shape[0], dtype=bool)
        for polygon in self._lane_polygons:
            inside = shapely.intersects_xy(polygon, flat[:, 0], flat[:, 1]).reshape(-1, 4)
            inside_one_lane |= inside.all(axis=1)
        return ~inside_one_lane
