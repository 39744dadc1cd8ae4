"""Semantic classes of the camera label image, and a colour map to look at them."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class SemanticClass(IntEnum):
    SKY = 0
    GROUND = 1  # off-road ground: grass, sidewalk, the plain ground under the horizon
    ROAD = 2  # road and junction surfaces
    MARKING = 3
    VEHICLE = 4
    PEDESTRIAN = 5
    OBSTACLE = 6
    LIGHT = 7  # traffic-light heads and their poles


LABEL_COLORS_RGB = np.array(
    [
        (135, 190, 235),  # sky
        (110, 140, 80),   # ground
        (90, 90, 95),     # road
        (250, 250, 250),  # marking
        (40, 90, 220),    # vehicle
        (230, 60, 60),    # pedestrian
        (240, 160, 40),   # obstacle
        (250, 230, 40),   # light
    ],
    dtype=np.uint8,
)


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class ids -> (H, W, 3) uint8 RGB for viewing."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be (H, W) uint8, got {labels.shape} {labels.dtype}")
    if labels.max(initial=0) >= len(LABEL_COLORS_RGB):
        raise ValueError(f"labels contain ids >= {len(LABEL_COLORS_RGB)}")
    return LABEL_COLORS_RGB[labels]
