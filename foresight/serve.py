"""`foresight serve`: a planner from the registry (a name or a plug-in's `package.module:ClassName`)
behind the NeuroNCAP HTTP contract (planner/server/app.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from configs import plain
from contract import Planner
from foresight.planners import build_planner, planner_options
from planner.server.app import DEFAULT_PORT, ServerConfig, serve, server_config_from


@dataclass(frozen=True)
class ServeSetup:
    """What `foresight serve` serves, and where."""

    planner: Planner
    host: str
    port: int
    config: ServerConfig


def serve_setup(cfg: Any) -> ServeSetup:
    """From configs/serve.yaml: planner (a registry name, learned planners need checkpoint=; or a
    plug-in `package.module:ClassName` built with `planner_options`), host,
    port, and the ServerConfig fields (camera, num_frames, history_s, frame_hw, the request limits:
    all in configs/serve.yaml, which is their only source of defaults)."""
    d = plain(cfg)
    if not d.get("planner"):
        raise ValueError("serve: key `planner` is required (e.g. planner=constant_velocity)")
    name = str(d["planner"])
    port = int(d["port"]) if d.get("port") is not None else DEFAULT_PORT
    if not 0 <= port <= 65535:
        raise ValueError(f"serve: port must be in [0, 65535], got {port}")
    planner = build_planner(name, planner_options(name, d))
    return ServeSetup(planner, str(d.get("host") or "127.0.0.1"), port, server_config_from(d))


def run(cfg: Any) -> None:
    """Serve until SIGINT / SIGTERM."""
    setup = serve_setup(cfg)
    serve(setup.planner, host=setup.host, port=setup.port, config=setup.config)
