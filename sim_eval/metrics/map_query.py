"""`MapQuery`: the map look-ups the closed-loop metrics need (implemented by the sim's world)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class MapQuery(Protocol):
    """Vectorised map queries; points are world-frame (N, 2) [m]."""

    def distance_outside_drivable(self, points_xy: np.ndarray) -> np.ndarray:
        """(N,) [m] distance from each point to the drivable area, 0 inside it."""
        ...

    def lane_heading_at(self, points_xy: np.ndarray) -> np.ndarray:
        """(N,) [rad] driving direction of the lane containing each point, NaN where no lane."""
        ...

    def speed_limit_at(self, points_xy: np.ndarray) -> np.ndarray:
        """(N,) [m/s] speed limit of the lane containing each point, NaN where unknown."""
        ...

    def straddles_lanes(self, footprints_xy: np.ndarray) -> np.ndarray:
        """(N,) bool for footprints (N, 4, 2) [m]: True unless one lane contains all four corners."""
        ...
