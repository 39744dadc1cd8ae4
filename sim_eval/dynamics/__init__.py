"""Ego dynamics: kinematic bicycle, plan-to-reference interpolation and the LQR tracker (nuPlan's loop)."""

from contract.vehicle import VehicleParameters
from sim_eval.dynamics.lqr_tracker import ControlCommand, LQRTracker, LQRTrackerConfig
from sim_eval.dynamics.reference import ReferenceTrajectory
from sim_eval.dynamics.vehicle import EgoState, KinematicBicycle

__all__ = [
    "ControlCommand",
    "EgoState",
    "KinematicBicycle",
    "LQRTracker",
    "LQRTrackerConfig",
    "ReferenceTrajectory",
    "VehicleParameters",
]
