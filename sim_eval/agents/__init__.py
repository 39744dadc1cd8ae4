"""Non-ego road users: IDM / scripted / static vehicles, pedestrians, and their joint simulation."""

from sim_eval.agents.idm import NUPLAN_IDM, IDMParams, idm_acceleration
from sim_eval.agents.pedestrian import Pedestrian
from sim_eval.agents.traffic import TrafficSim
from sim_eval.agents.vehicle import SpeedProfile, VehicleAgent

__all__ = ["NUPLAN_IDM", "IDMParams", "Pedestrian", "SpeedProfile", "TrafficSim", "VehicleAgent", "idm_acceleration"]
