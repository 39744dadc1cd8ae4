"""Procedural road maps: a two-way main road of straights and arcs, optionally ending in a 4-way or
T junction whose turning connectors are smooth arcs; traffic lights for signalised junctions.

Everything is a deterministic function of a `MapLayout`; `sample_*_layout(rng, ...)` draw layouts
from a numpy Generator, so a map is reproducible from a seed. Right-hand traffic: the lanes of a
road's reference direction lie to the right of its reference line (the centre line).
Lane index 0 of a direction is the lane next to the centre line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim_eval.world.polyline import wrap_angle
from sim_eval.world.road_map import Lane, RoadMap, Surface
from sim_eval.world.traffic_light import LightCycle, StopLine, TrafficLight, TrafficLights

ArmName = Literal["approach", "straight", "left", "right"]
# Arms are coded by their outward direction relative to the main road's heading at the junction:
# code k points along main_yaw + k * pi/2.
_ARM_CODE: dict[str, int] = {"straight": 0, "left": 1, "approach": 2, "right": 3}
_ARM_NAME = {v: k for k, v in _ARM_CODE.items()}
_MAX_SPACING_M = 0.95
_SURFACE_OVERLAP_M = 0.3  # road surfaces reach this far into the junction box so the union is seamless
CURVE_RADIUS_RANGE_M = (25.0, 60.0)
SPEED_LIMITS_MPS = (25 / 3.6, 40 / 3.6, 50 / 3.6)
CONNECTOR_LATERAL_ACCEL_MPS2 = 3.0  # sets a junction connector's speed limit from its radius


@dataclass(frozen=True)
class RoadPiece:
    """A stretch of reference line: length along it (m) and signed curvature (1/m, + left)."""

    length_m: float
    curvature_1pm: float = 0.0

    def __post_init__(self) -> None:
        if not (self.length_m > 0 and math.isfinite(self.length_m)):
            raise ValueError(f"RoadPiece.length_m must be > 0, got {self.length_m}")
        if not math.isfinite(self.curvature_1pm):
            raise ValueError(f"RoadPiece.curvature_1pm must be finite, got {self.curvature_1pm}")


@dataclass(frozen=True)
class JunctionLayout:
    """Junction at the end of the main road. kind '4way' has arms straight/left/right; 'T' lacks
    `missing_arm`. cross_lanes: lanes per direction on the left/right arms. main_cycle applies to
    the approach and straight arms, cross_cycle to the left and right arms (both None: unsignalised)."""

    kind: Literal["4way", "T"]
    arm_length_m: float
    cross_lanes: int = 1
    corner_margin_m: float = 4.0
    missing_arm: Literal["straight", "left", "right"] | None = None
    main_cycle: LightCycle | None = None
    cross_cycle: LightCycle | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("4way", "T"):
            raise ValueError(f"JunctionLayout.kind must be '4way' or 'T', got {self.kind!r}")
        if (self.kind == "T") != (self.missing_arm is not None):
            raise ValueError("JunctionLayout.missing_arm must be set exactly for kind 'T'")
        if self.missing_arm not in (None, "straight", "left", "right"):
            raise ValueError(f"JunctionLayout.missing_arm invalid: {self.missing_arm!r}")
        if not 1 <= self.cross_lanes <= 3:
            raise ValueError(f"JunctionLayout.cross_lanes must be 1..3, got {self.cross_lanes}")
        if self.arm_length_m < 5 or self.corner_margin_m < 1:
            raise ValueError("JunctionLayout.arm_length_m must be >= 5 and corner_margin_m >= 1")
        if (self.main_cycle is None) != (self.cross_cycle is None):
            raise ValueError("JunctionLayout: give both main_cycle and cross_cycle, or neither")

    @property
    def arms(self) -> tuple[ArmName, ...]:
        """Arms other than the approach, in code order."""
        return tuple(a for a in ("straight", "left", "right") if a != self.missing_arm)


@dataclass(frozen=True)
class MapLayout:
    """A main road from origin_xyyaw (reference line start, m, m, rad) made of `pieces`, with
    lanes_forward lanes in the reference direction and lanes_backward against it."""

    pieces: tuple[RoadPiece, ...]
    lanes_forward: int
    lanes_backward: int
    lane_width_m: float
    speed_limit_mps: float
    junction: JunctionLayout | None = None
    origin_xyyaw: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sidewalk_width_m: float = 2.0

    def __post_init__(self) -> None:
        if not self.pieces:
            raise ValueError("MapLayout.pieces must not be empty")
        if not (1 <= self.lanes_forward <= 3 and 1 <= self.lanes_backward <= 3):
            raise ValueError(
                f"MapLayout lanes per direction must be 1..3, got {self.lanes_forward}/{self.lanes_backward}"
            )
        if not 2.5 <= self.lane_width_m <= 4.5:
            raise ValueError(f"MapLayout.lane_width_m must be in [2.5, 4.5], got {self.lane_width_m}")
        if not 1.0 <= self.speed_limit_mps <= 40.0:
            raise ValueError(f"MapLayout.speed_limit_mps must be in [1, 40], got {self.speed_limit_mps}")
        half_widths = (self.lanes_forward * self.lane_width_m, self.lanes_backward * self.lane_width_m)
        for p in self.pieces:
            if p.curvature_1pm != 0 and 1 / abs(p.curvature_1pm) <= max(half_widths) + self.sidewalk_width_m:
                raise ValueError(
                    f"MapLayout: piece radius {1 / abs(p.curvature_1pm):.1f} m is too tight for the road width"
                )

    @property
    def main_length_m(self) -> float:
        return float(sum(p.length_m for p in self.pieces))


@dataclass(frozen=True)
class JunctionArm:
    """One road meeting the junction. Lane tuples are ordered from the centre line outwards."""

    name: ArmName
    outward_yaw_rad: float
    incoming_lane_ids: tuple[int, ...]
    outgoing_lane_ids: tuple[int, ...]


@dataclass(frozen=True)
class Junction:
    center_xy: tuple[float, float]
    half_size_m: float
    arms: tuple[JunctionArm, ...]
    connector_ids: tuple[int, ...]

    def arm(self, name: ArmName) -> JunctionArm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"junction has no {name!r} arm (arms: {[a.name for a in self.arms]})")

    def has_arm(self, name: ArmName) -> bool:
        return any(a.name == name for a in self.arms)


@dataclass(frozen=True, eq=False)
class GeneratedMap:
    """A generated map. forward_lane_ids / backward_lane_ids: the main road's lanes in / against the
    reference direction (index 0 next to the centre line)."""

    layout: MapLayout
    road_map: RoadMap
    lights: TrafficLights
    forward_lane_ids: tuple[int, ...]
    backward_lane_ids: tuple[int, ...]
    junction: Junction | None


# ---- geometry helpers -------------------------------------------------------------------------
def _poses_along(pose: tuple[float, float, float], piece: RoadPiece, u: np.ndarray) -> tuple[np.ndarray, ...]:
    x0, y0, yaw0 = pose
    k = piece.curvature_1pm
    yaw = yaw0 + k * u
    if k == 0.0:
        return x0 + u * math.cos(yaw0), y0 + u * math.sin(yaw0), yaw
    return x0 + (np.sin(yaw) - math.sin(yaw0)) / k, y0 - (np.cos(yaw) - math.cos(yaw0)) / k, yaw


def end_pose(origin_xyyaw: tuple[float, float, float], pieces: tuple[RoadPiece, ...]) -> tuple[float, float, float]:
    """Reference-line pose (x m, y m, yaw rad) after all pieces."""
    pose = tuple(float(v) for v in origin_xyyaw)
    for piece in pieces:
        x, y, yaw = _poses_along(pose, piece, np.array([piece.length_m]))
        pose = (float(x[0]), float(y[0]), float(yaw[0]))
    return pose


def sample_offset_line(
    origin_xyyaw: tuple[float, float, float],
    pieces: tuple[RoadPiece, ...],
    offset_m: float,
    max_spacing_m: float = _MAX_SPACING_M,
) -> np.ndarray:
    """(N, 2) points at lateral offset_m (+ left) of the reference line, spaced <= max_spacing_m
    along the offset line itself (arcs stay exact concentric arcs)."""
    out, pose = [], tuple(float(v) for v in origin_xyyaw)
    for i, piece in enumerate(pieces):
        offset_len = piece.length_m * (1.0 - piece.curvature_1pm * offset_m)
        if offset_len <= 0:
            raise ValueError(
                f"offset {offset_m} m crosses the centre of a piece of radius {1 / abs(piece.curvature_1pm):.2f} m"
            )
        n = max(1, math.ceil(offset_len / max_spacing_m))
        u = np.linspace(0.0, piece.length_m, n + 1)
        x, y, yaw = _poses_along(pose, piece, u)
        pts = np.stack([x - offset_m * np.sin(yaw), y + offset_m * np.cos(yaw)], axis=1)
        out.append(pts if i == 0 else pts[1:])
        pose = (float(x[-1]), float(y[-1]), float(yaw[-1]))
    return np.concatenate(out, axis=0)


def _extend(origin: tuple[float, float, float], pieces: tuple[RoadPiece, ...], start_m: float, end_m: float):
    """Origin and pieces lengthened by straight bits at either end."""
    x, y, yaw = origin
    new_origin = (x - start_m * math.cos(yaw), y - start_m * math.sin(yaw), yaw)
    new_pieces = (
        ((RoadPiece(start_m),) if start_m > 0 else ()) + tuple(pieces) + ((RoadPiece(end_m),) if end_m > 0 else ())
    )
    return new_origin, new_pieces


def _band_polygon(origin, pieces, left_m: float, right_m: float) -> np.ndarray:
    """Polygon between lateral offsets right_m < left_m along the reference line."""
    left = sample_offset_line(origin, pieces, left_m, 2.0)
    right = sample_offset_line(origin, pieces, right_m, 2.0)
    return np.concatenate([left, right[::-1]], axis=0)


def connector_path(
    start_xy: np.ndarray, start_yaw: float, end_xy: np.ndarray, end_yaw: float
) -> tuple[np.ndarray, float]:
    """Smooth path from a start pose to an end pose: straight lead-in, one circular arc, straight
    lead-out (exactly tangent at both ends). Returns ((N, 2) points, arc radius m; inf if straight)."""
    p0, p1 = np.asarray(start_xy, float), np.asarray(end_xy, float)
    theta = float(wrap_angle(end_yaw - start_yaw))
    chord = p1 - p0
    if abs(theta) < 1e-6:
        lateral = -math.sin(start_yaw) * chord[0] + math.cos(start_yaw) * chord[1]
        if abs(lateral) > 1e-6:
            raise ValueError("connector_path: parallel start/end poses must be collinear")
        pieces, radius = (RoadPiece(float(np.hypot(*chord))),), math.inf
    else:
        d0 = np.array([math.cos(start_yaw), math.sin(start_yaw)])
        d1 = np.array([math.cos(end_yaw), math.sin(end_yaw)])
        a, b = np.linalg.solve(np.stack([d0, d1], axis=1), chord)  # p0 + a d0 = p1 - b d1
        if a <= 0 or b <= 0:
            raise ValueError("connector_path: end pose is not reachable with a single turn")
        t = min(a, b)
        radius = t / math.tan(abs(theta) / 2)
        pieces = []
        if a - t > 1e-6:
            pieces.append(RoadPiece(a - t))
        pieces.append(RoadPiece(radius * abs(theta), math.copysign(1.0 / radius, theta)))
        if b - t > 1e-6:
            pieces.append(RoadPiece(b - t))
        pieces = tuple(pieces)
    pts = sample_offset_line((p0[0], p0[1], start_yaw), pieces, 0.0)
    pts[0], pts[-1] = p0, p1  # exact joints with the lanes it connects
    return pts, radius


# ---- generation -------------------------------------------------------------------------------
class _LaneDraft:
    def __init__(self, points: np.ndarray, width: float, limit: float, **kw) -> None:
        self.points, self.width, self.limit = points, width, limit
        self.kw = dict(kw)
        self.successors: list[int] = []
        self.predecessors: list[int] = []


def _road_side_lanes(
    drafts: list[_LaneDraft], origin, pieces, n: int, width: float, limit: float, forward: bool
) -> list[int]:
    """Add one side of a road; returns lane ids from the centre line outwards."""
    ids = []
    for k in range(n):
        offset = -(k + 0.5) * width if forward else (k + 0.5) * width
        pts = sample_offset_line(origin, pieces, offset)
        drafts.append(_LaneDraft(pts if forward else pts[::-1].copy(), width, limit))
        ids.append(len(drafts) - 1)
    return ids


def _link_side(drafts: list[_LaneDraft], side: list[int], opposite: list[int]) -> None:
    for k, lane_id in enumerate(side):
        kw = drafts[lane_id].kw
        kw["left_neighbor"] = side[k - 1] if k > 0 else None
        kw["right_neighbor"] = side[k + 1] if k + 1 < len(side) else None
        kw["left_opposite"] = opposite[0] if (k == 0 and opposite) else None
        kw["left_marking"] = "solid" if k == 0 else "dashed"
        kw["right_marking"] = "solid" if k + 1 == len(side) else "dashed"


def generate_map(layout: MapLayout) -> GeneratedMap:
    """Build the road map, surfaces and traffic lights described by `layout` (deterministic)."""
    w, limit = layout.lane_width_m, layout.speed_limit_mps
    nf, nb = layout.lanes_forward, layout.lanes_backward
    junc = layout.junction
    drafts: list[_LaneDraft] = []
    surfaces: list[Surface] = []

    def add_road(origin, pieces, n_fwd, n_bwd, junction_at_start, junction_at_end):
        fwd = _road_side_lanes(drafts, origin, pieces, n_fwd, w, limit, forward=True)
        bwd = _road_side_lanes(drafts, origin, pieces, n_bwd, w, limit, forward=False)
        _link_side(drafts, fwd, bwd)
        _link_side(drafts, bwd, fwd)
        ext = _extend(
            origin,
            pieces,
            _SURFACE_OVERLAP_M if junction_at_start else 0.0,
            _SURFACE_OVERLAP_M if junction_at_end else 0.0,
        )
        surfaces.append(Surface(_band_polygon(*ext, n_bwd * w, -n_fwd * w), "road"))
        sw = layout.sidewalk_width_m
        if sw > 0:
            surfaces.append(Surface(_band_polygon(origin, pieces, n_bwd * w + sw, n_bwd * w), "sidewalk"))
            surfaces.append(Surface(_band_polygon(origin, pieces, -n_fwd * w, -n_fwd * w - sw), "sidewalk"))
        return fwd, bwd

    main_fwd, main_bwd = add_road(layout.origin_xyyaw, layout.pieces, nf, nb, False, junc is not None)
    junction, lights = None, TrafficLights()
    if junc is not None:
        junction, lights = _add_junction(layout, drafts, surfaces, add_road, main_fwd, main_bwd)

    lanes = []
    for lane_id, d in enumerate(drafts):
        lanes.append(
            Lane(
                lane_id=lane_id,
                centerline_xy=d.points,
                width_m=d.width,
                speed_limit_mps=d.limit,
                successors=tuple(d.successors),
                predecessors=tuple(d.predecessors),
                **d.kw,
            )
        )
    return GeneratedMap(
        layout=layout,
        road_map=RoadMap(lanes, tuple(surfaces)),
        lights=lights,
        forward_lane_ids=tuple(main_fwd),
        backward_lane_ids=tuple(main_bwd),
        junction=junction,
    )


def _add_junction(layout: MapLayout, drafts, surfaces, add_road, main_fwd, main_bwd):
    junc = layout.junction
    w, limit = layout.lane_width_m, layout.speed_limit_mps
    nf, nb, nc = layout.lanes_forward, layout.lanes_backward, junc.cross_lanes
    ex, ey, eyaw = end_pose(layout.origin_xyyaw, layout.pieces)
    half = max(nf, nb, nc) * w + junc.corner_margin_m
    cx, cy = ex + half * math.cos(eyaw), ey + half * math.sin(eyaw)
    box = np.array([[half, half], [-half, half], [-half, -half], [half, -half]])
    rot = np.array([[math.cos(eyaw), -math.sin(eyaw)], [math.sin(eyaw), math.cos(eyaw)]])
    surfaces.append(Surface(box @ rot.T + [cx, cy], "junction"))

    # incoming / outgoing lane ids per arm code, ordered from the centre line outwards
    incoming: dict[int, list[int]] = {_ARM_CODE["approach"]: main_fwd}
    outgoing: dict[int, list[int]] = {_ARM_CODE["approach"]: main_bwd}
    for name in junc.arms:
        code = _ARM_CODE[name]
        yaw = eyaw + code * math.pi / 2
        origin = (cx + half * math.cos(yaw), cy + half * math.sin(yaw), yaw)
        n_out, n_in = (nf, nb) if name == "straight" else (nc, nc)
        out_ids, in_ids = add_road(origin, (RoadPiece(junc.arm_length_m),), n_out, n_in, True, False)
        outgoing[code], incoming[code] = out_ids, in_ids

    connectors: list[int] = []

    def connect(from_id: int, to_id: int, turn: str) -> None:
        src, dst = drafts[from_id], drafts[to_id]
        yaw0 = math.atan2(*(src.points[-1] - src.points[-2])[::-1])
        yaw1 = math.atan2(*(dst.points[1] - dst.points[0])[::-1])
        pts, radius = connector_path(src.points[-1], yaw0, dst.points[0], yaw1)
        conn_limit = min(limit, math.sqrt(CONNECTOR_LATERAL_ACCEL_MPS2 * radius)) if math.isfinite(radius) else limit
        drafts.append(_LaneDraft(pts, w, conn_limit, is_junction=True, turn=turn))
        cid = len(drafts) - 1
        drafts[cid].predecessors.append(from_id)
        drafts[cid].successors.append(to_id)
        src.successors.append(cid)
        dst.predecessors.append(cid)
        connectors.append(cid)

    for code in sorted(incoming):
        in_ids = incoming[code]
        targets = {"straight": (code + 2) % 4, "left": (code + 3) % 4, "right": (code + 1) % 4}
        for i, lane_id in enumerate(in_ids):
            made = False
            straight_out = outgoing.get(targets["straight"], [])
            if i < len(straight_out):
                connect(lane_id, straight_out[i], "straight")
                made = True
            left_out, right_out = outgoing.get(targets["left"], []), outgoing.get(targets["right"], [])
            if i == 0 and left_out:
                connect(lane_id, left_out[0], "left")
                made = True
            if i == len(in_ids) - 1 and right_out:
                connect(lane_id, right_out[-1], "right")
                made = True
            if not made:  # e.g. a middle lane facing the missing arm of a T: turn to the nearer side
                if left_out and (i < len(in_ids) / 2 or not right_out):
                    connect(lane_id, left_out[min(i, len(left_out) - 1)], "left")
                else:
                    connect(lane_id, right_out[max(len(right_out) - len(in_ids) + i, 0)], "right")

    lights = TrafficLights()
    if junc.main_cycle is not None:
        group_lights = []
        for code in sorted(incoming):
            cycle = junc.main_cycle if code in (0, 2) else junc.cross_cycle
            stops = []
            for lane_id in incoming[code]:
                d = drafts[lane_id]
                seg = d.points[-1] - d.points[-2]
                length = float(np.hypot(*np.diff(d.points, axis=0).T).sum())
                stops.append(
                    StopLine(
                        lane_id=lane_id,
                        s_m=length,
                        center_xy=(float(d.points[-1][0]), float(d.points[-1][1])),
                        yaw_rad=math.atan2(seg[1], seg[0]),
                        width_m=w,
                    )
                )
            in_yaw = stops[0].yaw_rad
            mid = np.mean([s.center_xy for s in stops], axis=0)
            across = 2 * half + 1.5  # lamp head hangs over the far side of the junction
            head = (float(mid[0] + across * math.cos(in_yaw)), float(mid[1] + across * math.sin(in_yaw)), 5.0)
            group_lights.append(
                TrafficLight(
                    light_id=len(group_lights),
                    cycle=cycle,
                    stop_lines=tuple(stops),
                    head_xyz=head,
                    head_facing_yaw_rad=float(wrap_angle(in_yaw + math.pi)),
                )
            )
        lights = TrafficLights(tuple(group_lights))

    arms = tuple(
        JunctionArm(
            name=_ARM_NAME[code],
            outward_yaw_rad=float(wrap_angle(eyaw + code * math.pi / 2)),
            incoming_lane_ids=tuple(incoming[code]),
            outgoing_lane_ids=tuple(outgoing[code]),
        )
        for code in sorted(incoming)
    )
    junction = Junction(center_xy=(cx, cy), half_size_m=half, arms=arms, connector_ids=tuple(connectors))
    return junction, lights


# ---- random layouts ---------------------------------------------------------------------------
def two_phase_cycles(
    main_green_s: float,
    cross_green_s: float,
    main_green_start_s: float = 0.0,
    yellow_s: float = 3.0,
    all_red_s: float = 1.5,
) -> tuple[LightCycle, LightCycle]:
    """Cycles for a two-phase junction: main green, yellow, all-red, cross green, yellow, all-red.
    main_green_start_s: a time at which the main road's green begins."""
    period = main_green_s + cross_green_s + 2 * (yellow_s + all_red_s)
    main = LightCycle(main_green_s, yellow_s, period - main_green_s - yellow_s, main_green_start_s)
    cross = LightCycle(
        cross_green_s,
        yellow_s,
        period - cross_green_s - yellow_s,
        main_green_start_s + main_green_s + yellow_s + all_red_s,
    )
    return main, cross


def _sample_road_basics(rng: np.random.Generator) -> dict:
    return dict(
        lanes_forward=int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2])),
        lanes_backward=int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15])),
        lane_width_m=float(rng.uniform(3.2, 3.75)),
        speed_limit_mps=float(rng.choice(SPEED_LIMITS_MPS[1:])),
    )


def curve_radius_bounds(
    lanes_forward: int, lanes_backward: int, lane_width_m: float, direction: Literal["left", "right"]
) -> tuple[float, float]:
    """Reference-line radius range for which every lane centre line's radius is within 25-60 m."""
    inner = (lanes_backward - 0.5) * lane_width_m if direction == "left" else (lanes_forward - 0.5) * lane_width_m
    outer = (lanes_forward - 0.5) * lane_width_m if direction == "left" else (lanes_backward - 0.5) * lane_width_m
    return CURVE_RADIUS_RANGE_M[0] + inner, CURVE_RADIUS_RANGE_M[1] - outer


def sample_straight_layout(rng: np.random.Generator, length_m: float | None = None, **overrides) -> MapLayout:
    """A straight two-way road (length 150-300 m unless given)."""
    basics = _sample_road_basics(rng) | overrides
    length = float(rng.uniform(150, 300)) if length_m is None else float(length_m)
    return MapLayout(pieces=(RoadPiece(length),), **basics)


def sample_curve_layout(
    rng: np.random.Generator,
    direction: Literal["left", "right"],
    lead_in_m: float | None = None,
    lead_out_m: float | None = None,
    **overrides,
) -> MapLayout:
    """Straight, one arc of 40-90 degrees (every lane's radius within 25-60 m), straight."""
    basics = _sample_road_basics(rng) | overrides
    lo, hi = curve_radius_bounds(basics["lanes_forward"], basics["lanes_backward"], basics["lane_width_m"], direction)
    if lo > hi:
        raise ValueError("sample_curve_layout: road too wide for a 25-60 m curve")
    radius = float(rng.uniform(lo, hi))
    angle = float(rng.uniform(np.deg2rad(40), np.deg2rad(90)))
    sign = 1.0 if direction == "left" else -1.0
    lead_in = float(rng.uniform(30, 60)) if lead_in_m is None else float(lead_in_m)
    lead_out = float(rng.uniform(100, 160)) if lead_out_m is None else float(lead_out_m)
    pieces = (RoadPiece(lead_in), RoadPiece(radius * angle, sign / radius), RoadPiece(lead_out))
    return MapLayout(pieces=pieces, **basics)


def sample_junction_layout(
    rng: np.random.Generator,
    kind: Literal["4way", "T"] | None = None,
    need_arm: Literal["straight", "left", "right"] | None = None,
    approach_m: float | None = None,
    arm_length_m: float | None = None,
    signalized: bool = True,
    main_green_start_s: float | None = None,
    main_green_s: float | None = None,
    cross_green_s: float | None = None,
    **overrides,
) -> MapLayout:
    """A straight approach road into a 4-way or T junction (the T never lacks `need_arm`)."""
    basics = _sample_road_basics(rng) | overrides
    kind = kind or ("4way" if rng.random() < 0.6 else "T")
    missing = None
    if kind == "T":
        options = [a for a in ("straight", "left", "right") if a != need_arm]
        missing = options[int(rng.integers(len(options)))]
    cycles = (None, None)
    if signalized:
        cycles = two_phase_cycles(
            main_green_s=float(rng.uniform(15, 25)) if main_green_s is None else main_green_s,
            cross_green_s=float(rng.uniform(10, 20)) if cross_green_s is None else cross_green_s,
            main_green_start_s=float(rng.uniform(-10, 0)) if main_green_start_s is None else main_green_start_s,
        )
    junction = JunctionLayout(
        kind=kind,
        arm_length_m=float(rng.uniform(80, 140)) if arm_length_m is None else float(arm_length_m),
        cross_lanes=int(rng.choice([1, 2], p=[0.6, 0.4])),
        corner_margin_m=float(rng.uniform(6.0, 9.0)),
        missing_arm=missing,
        main_cycle=cycles[0],
        cross_cycle=cycles[1],
    )
    approach = float(rng.uniform(60, 120)) if approach_m is None else float(approach_m)
    return MapLayout(pieces=(RoadPiece(approach),), junction=junction, **basics)


def sample_layout(rng: np.random.Generator) -> MapLayout:
    """Any of the above, chosen at random."""
    kind = int(rng.integers(4))
    if kind == 0:
        return sample_straight_layout(rng)
    if kind == 1:
        return sample_curve_layout(rng, "left")
    if kind == 2:
        return sample_curve_layout(rng, "right")
    return sample_junction_layout(rng)


def generate_random_map(rng: np.random.Generator) -> GeneratedMap:
    """generate_map(sample_layout(rng))."""
    return generate_map(sample_layout(rng))
