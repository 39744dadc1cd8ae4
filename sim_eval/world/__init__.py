"""The simulator's world: road maps, map generation, traffic lights, routes and render conversion."""

from sim_eval.world.generator import GeneratedMap, Junction, JunctionArm, MapLayout, generate_map, generate_random_map
from sim_eval.world.polyline import Polyline
from sim_eval.world.road_map import Lane, RoadMap, Surface
from sim_eval.world.route import Route, RouteStop, build_route
from sim_eval.world.state import AgentArrays, EgoBox, WorldState
from sim_eval.world.to_render import SceneConverter, render_scene
from sim_eval.world.traffic_light import LightCycle, StopLine, TrafficLight, TrafficLights

__all__ = [
    "AgentArrays",
    "EgoBox",
    "GeneratedMap",
    "Junction",
    "JunctionArm",
    "Lane",
    "LightCycle",
    "MapLayout",
    "Polyline",
    "RoadMap",
    "Route",
    "RouteStop",
    "SceneConverter",
    "StopLine",
    "Surface",
    "TrafficLight",
    "TrafficLights",
    "WorldState",
    "build_route",
    "generate_map",
    "generate_random_map",
    "render_scene",
]
