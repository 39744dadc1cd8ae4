"""Flow-matching action model ("VAM"): an action expert attending jointly with the video world model.

Glossary: K waypoints (num_waypoints) every waypoint_dt_s; D = 2 (x, y) or 3 (x, y, yaw) values per
waypoint; S samples (noise draws) per batch element; t flow time (0 noise, 1 data); x_t the noisy
waypoints at t; the expert predicts the velocity dx_t/dt in units of position_scale_m (70 m).
"""

from planner.action_model.checkpoint import export_vam, load_vam, vam_metadata
from planner.action_model.conditions import ActionConditions, conditions_from_batch, conditions_from_observation
from planner.action_model.config import EGO_STATUS_MODES, VIDEO_MODES, ActionModelConfig
from planner.action_model.ego_status import ego_status_features, past_poses_at
from planner.action_model.expert import ActionExpert
from planner.action_model.joint import JointOutput, joint_attention_mask, joint_forward
from planner.action_model.metrics import MetricValue, open_loop_metrics
from planner.action_model.model import VideoActionModel
from planner.action_model.normalization import trajectory_from_model, trajectory_to_model
from planner.action_model.sampling import sample_plans, sample_trajectories
from planner.action_model.video_stream import VideoContext, VideoStreamGPT

__all__ = [
    "EGO_STATUS_MODES",
    "VIDEO_MODES",
    "ActionConditions",
    "ActionExpert",
    "ActionModelConfig",
    "JointOutput",
    "MetricValue",
    "VideoActionModel",
    "VideoContext",
    "VideoStreamGPT",
    "conditions_from_batch",
    "conditions_from_observation",
    "ego_status_features",
    "export_vam",
    "joint_attention_mask",
    "joint_forward",
    "load_vam",
    "open_loop_metrics",
    "past_poses_at",
    "sample_plans",
    "sample_trajectories",
    "trajectory_from_model",
    "trajectory_to_model",
    "vam_metadata",
]
