"""Configuration of the flow-matching action model (the action expert and what it conditions on).

The expert's depth, head count and head dim come from the world model it attends with (see
`planner.action_model.expert`); this config holds everything else, including the normalisation
constants, so a checkpoint's JSON is enough to map model outputs back to metres.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from configs import build
from data.route_points import ROUTE_PATH_LENGTH_M
from world_model.gpt.config import GPTConfig

# observed: actions attend to the observed frames; imagine: also to n_imagined_frames frames the
# world model first generates (greedy); none: no video at all (ego status only, AD-MLP-like).
VIDEO_MODES = ("observed", "imagine", "none")
# off: no ego status; add: one embedding added to every action token; token: one extra token.
EGO_STATUS_MODES = ("off", "add", "token")
ANCHORS = ("none", "kinematic", "straight", "constant_speed", "route")
# full: speed, acceleration, yaw rate and past poses; speed: speed and acceleration only (no yaw rate,
# no past poses: nothing to extrapolate the lateral motion from, so lateral control has to come from
# the camera; the "copycat" lesson of behaviour cloning with past motion as input); speed_only: the
# speed alone (the same lesson for the longitudinal motion: a planner told its acceleration keeps
# it, and in closed loop a first hesitation becomes a steady deceleration; docs/experiments.md).
EGO_FEATURES = ("full", "speed", "speed_only")
NUM_COMMANDS = 3  # RIGHT 0, LEFT 1, STRAIGHT 2 (data.command.Command)


@dataclass(frozen=True)
class ActionModelConfig:
    """Action model settings (`planner.action_model`; the defaults live in configs/planner_profile/).

    num_waypoints, waypoint_dt_s: K future waypoints every dt [s] (default 6 at 2 Hz = 3 s).
    predict_yaw: waypoints are (x, y, yaw) instead of (x, y).
    expert_width_ratio: expert residual width / world-model width (the reference uses 1/4).
    ego_history_steps, ego_history_dt_s: past poses in the ego status, every dt [s] before now.
    Normalisation (model space = physical / scale): position_scale_m for waypoints (reference 70 m),
    yaw_scale_rad for waypoint and history yaw, history_scale_m for past positions,
    speed_scale_mps, accel_scale_mps2, yaw_rate_scale_rps for the current motion.
    time_min_period, time_max_period: periods of the sinusoidal flow-time embedding (pi0's values).
    anchor: "none": the flow generates the waypoints themselves (the reference); "kinematic": it
    generates their offset from the ego's kinematic extrapolation (current speed, acceleration and
    yaw rate held over the horizon; `planner.action_model.anchor`), so the near future is right
    before any learning and the model spends itself on what physics does not know; "straight": the
    same with the yaw rate left out (speed and acceleration straight ahead), so a heading error the
    planner itself caused is never extrapolated. Needs ego status in the inputs (ego_status 'add' or
    'token'); position_scale_m then scales the offsets. "constant_speed": straight ahead at the
    current speed (no acceleration either), so no motion the planner caused is carried forward.
    "route": the current speed held along the route ahead (needs the route, as route_points_m):
    steering follows the route, the flow learns the speed profile and departures from the route.
    observed_frames: how many of the newest observed frames the action tokens attend to (0: as many
    as the world model's context holds, less the imagined ones); fewer frames make training and
    planning proportionally cheaper.
    ego_features: which ego status the model sees: "full" (speed, acceleration, yaw rate, past
    poses), "speed" (speed and acceleration only: no past lateral motion to copy, so steering has
    to come from the camera) or "speed_only" (no acceleration to copy either: when to speed up or
    slow down has to come from the camera too).
    route_points_m: distances [m] along the route ahead whose points (ego frame, each divided by its
    distance) join the ego status (data/route_points.py): where the route goes, which the command
    (LEFT / RIGHT / STRAIGHT 3 s ahead) leaves open; closed loop passes the scenario's route
    (`Observation.route_ahead_xy`). Empty (the reference, and checkpoints from before it): none.
    waypoint_scale_power p: waypoint k of K (1-based) is scaled by position_scale_m * (k / K)^p,
    so the model's error, roughly even across waypoints in model space, shrinks on the near
    waypoints that a closed-loop controller actually executes before the next plan. 0: one scale
    for all (the reference); 1 suits raw waypoints (distance grows like t); 2 suits offsets from
    the kinematic anchor (they grow like t^2).
    """

    video_mode: str
    n_imagined_frames: int
    num_waypoints: int
    waypoint_dt_s: float
    predict_yaw: bool
    expert_width_ratio: float
    dropout: float
    ego_status: str
    ego_history_steps: int
    ego_history_dt_s: float
    position_scale_m: float
    yaw_scale_rad: float
    history_scale_m: float
    speed_scale_mps: float
    accel_scale_mps2: float
    yaw_rate_scale_rps: float
    time_min_period: float
    time_max_period: float
    anchor: str
    waypoint_scale_power: float
    observed_frames: int
    ego_features: str
    route_points_m: tuple[float, ...]

    def __post_init__(self) -> None:
        route = tuple(float(d) for d in self.route_points_m)
        if any(not d > 0 for d in route) or list(route) != sorted(set(route)):
            raise ValueError(f"ActionModelConfig.route_points_m must be increasing distances > 0 [m], got {list(self.route_points_m)}")
        object.__setattr__(self, "route_points_m", route)
        if any(d > ROUTE_PATH_LENGTH_M for d in route):
            raise ValueError(f"ActionModelConfig.route_points_m: the route path reaches {ROUTE_PATH_LENGTH_M} m, got {list(route)}")
        if route and self.ego_status == "off":
            raise ValueError("ActionModelConfig: route_points_m needs ego_status 'add' or 'token' (the route points join the ego status)")
        if self.ego_features not in EGO_FEATURES:
            raise ValueError(f"ActionModelConfig.ego_features must be one of {EGO_FEATURES}, got {self.ego_features!r}")
        if self.ego_features in ("speed", "speed_only") and self.anchor == "kinematic":
            raise ValueError(f"ActionModelConfig: ego_features={self.ego_features!r} hides the yaw rate; anchor='kinematic' would extrapolate it anyway (use 'straight', 'constant_speed' or 'none')")
        if self.ego_features == "speed_only" and self.anchor == "straight":
            raise ValueError("ActionModelConfig: ego_features='speed_only' hides the acceleration; anchor='straight' would extrapolate it anyway (use 'constant_speed' or 'none')")
        if not isinstance(self.observed_frames, int) or isinstance(self.observed_frames, bool) or self.observed_frames < 0:
            raise ValueError(f"ActionModelConfig.observed_frames must be an int >= 0 (0: the world model's context), got {self.observed_frames!r}")
        if not 0.0 <= self.waypoint_scale_power <= 3.0:
            raise ValueError(f"ActionModelConfig.waypoint_scale_power must be in [0, 3], got {self.waypoint_scale_power}")
        if self.anchor not in ANCHORS:
            raise ValueError(f"ActionModelConfig.anchor must be one of {ANCHORS}, got {self.anchor!r}")
        if self.anchor != "none" and self.ego_status == "off":
            raise ValueError(f"ActionModelConfig: anchor={self.anchor!r} needs ego_status 'add' or 'token' (the extrapolation uses the ego's motion)")
        if self.video_mode not in VIDEO_MODES:
            raise ValueError(f"ActionModelConfig.video_mode must be one of {VIDEO_MODES}, got {self.video_mode!r}")
        if self.ego_status not in EGO_STATUS_MODES:
            raise ValueError(f"ActionModelConfig.ego_status must be one of {EGO_STATUS_MODES}, got {self.ego_status!r}")
        if (self.video_mode == "imagine") != (self.n_imagined_frames > 0) or self.n_imagined_frames < 0:
            raise ValueError(
                f"ActionModelConfig: n_imagined_frames must be >= 1 in 'imagine' mode and 0 otherwise, "
                f"got {self.n_imagined_frames} with video_mode={self.video_mode!r}"
            )
        if self.video_mode == "none" and self.ego_status == "off":
            raise ValueError("ActionModelConfig: video_mode='none' needs ego_status 'add' or 'token' (the model would see only the command)")
        for name in ("num_waypoints", "ego_history_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ActionModelConfig.{name} must be a positive int, got {value!r}")
        for name in (
            "waypoint_dt_s", "expert_width_ratio", "ego_history_dt_s", "position_scale_m", "yaw_scale_rad", "history_scale_m",
            "speed_scale_mps", "accel_scale_mps2", "yaw_rate_scale_rps", "time_min_period", "time_max_period",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"ActionModelConfig.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ActionModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.time_min_period >= self.time_max_period:
            raise ValueError("ActionModelConfig.time_min_period must be < time_max_period")

    def observed_frame_count(self, world_model_frames: int) -> int:
        """Observed frames the action tokens attend to with a world model of `world_model_frames` context."""
        room = world_model_frames - self.n_imagined_frames
        return min(self.observed_frames, room) if self.observed_frames else room

    @property
    def trajectory_dim(self) -> int:
        """Values per waypoint: 2 (x, y) or 3 (x, y, yaw)."""
        return 3 if self.predict_yaw else 2

    @property
    def ego_status_dim(self) -> int:
        """Ego features: speed, accel, yaw rate, then (x, y, yaw) at each past step (ego_features
        'full'); speed and accel ('speed'); speed ('speed_only'); then (x, y) / distance of each route point."""
        motion = {"speed": 2, "speed_only": 1}.get(self.ego_features, 3 + 3 * self.ego_history_steps)
        return motion + 2 * len(self.route_points_m)

    @property
    def uses_route(self) -> bool:
        """Whether the model reads the route ahead (route points in the ego status, or the route anchor)."""
        return bool(self.route_points_m) or self.anchor == "route"

    @property
    def uses_video(self) -> bool:
        return self.video_mode != "none"

    def expert_width(self, world_model: GPTConfig) -> int:
        """Residual width of the expert for a world model (expert_width_ratio * its n_embd)."""
        width = self.expert_width_ratio * world_model.n_embd
        if abs(width - round(width)) > 1e-6 or round(width) < 1:
            raise ValueError(
                f"ActionModelConfig.expert_width_ratio {self.expert_width_ratio} x world-model n_embd {world_model.n_embd} "
                f"is not a positive integer width"
            )
        return int(round(width))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ActionModelConfig":
        """Rebuild from `to_dict` output (a checkpoint's JSON); unknown and missing keys are errors,
        except route_points_m, which checkpoints from before it lack (they read no route: [])."""
        return build(cls, {"route_points_m": [], **values}, "ActionModelConfig")
