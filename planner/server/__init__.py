"""NeuroNCAP model-API server: lets the NeuroNCAP benchmark drive any Foresight `Planner` over HTTP."""

from planner.server.app import DEFAULT_PORT, NeuroNcapServer, ServerConfig, make_server, serve

__all__ = ["DEFAULT_PORT", "NeuroNcapServer", "ServerConfig", "make_server", "serve"]
