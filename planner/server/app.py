"""HTTP server that lets NeuroNCAP drive any Foresight `Planner` (standard library only).

Endpoints (the NeuroNCAP model API, as its engine and the UniAD / VAM reference servers use it):
    GET  /alive  -> 200 `true`                      (NeuroNCAP polls it until the server is up)
    POST /reset  -> 200 `true`; body ignored ({})   (start of a scenario: buffers cleared, planner.reset)
    POST /infer  -> 200 {"trajectory": 6 x [x, y], "aux_outputs": {...}}   (see planner/server/schema.py)
Errors are JSON objects {"error": message, "field": dotted field or null}:
    400 body is not a JSON object · 404 unknown path · 405 wrong method · 411 no Content-Length ·
    413 body over `max_body_bytes` · 422 a field is missing, mistyped, mis-shaped or non-finite ·
    500 the planner raised or returned an unusable plan (the server keeps serving; no traceback is sent).

Requests are served on threads, but /reset and /infer are serialised by one lock (one planner, one
episode); /alive never waits on it. Each response closes its connection, so shutdown never waits on
an idle keep-alive client.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping

from contract import EpisodeInfo, Planner
from planner.server.episode import BufferConfig, EpisodeBuffer
from planner.server.schema import RequestError, infer_response, parse_infer_request, parse_json_object
from planner.server.trajectory import PlanConversionError, plan_to_neuroncap

log = logging.getLogger(__name__)

DEFAULT_PORT = 9000  # NeuroNCAP's ModelConfig.port
_MAX_ERROR_CHARS = 500
_DRAIN_DEADLINE_S = 5.0  # longest a 413 keeps reading the refused body


@dataclass(frozen=True)
class ServerConfig:
    """Server settings (the keys `run(cfg)` reads besides host / port / planner).

    camera:           which of the six images the planner sees (its intrinsics must be in calibration).
    num_frames, history_s, frame_hw: the observation buffer, see `BufferConfig`.
    max_body_bytes:   larger bodies get 413 unread; six 1600x900 torch.save images are ~35 MB.
    max_image_pixels: larger images get 422 (checked from headers before decoding where possible).
    request_timeout_s: a client that stalls mid-request is dropped after this long [s].
    """

    camera: str = "CAM_FRONT"
    num_frames: int = 4
    history_s: float = 2.0
    frame_hw: tuple[int, int] | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    request_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.camera, str) or not self.camera:
            raise ValueError(f"ServerConfig.camera must be a camera name, got {self.camera!r}")
        for name in ("max_body_bytes", "max_image_pixels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ServerConfig.{name} must be an int >= 1, got {value!r}")
        timeout = self.request_timeout_s
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"ServerConfig.request_timeout_s must be > 0, got {self.request_timeout_s!r}")
        self.buffer_config()  # validates num_frames, history_s, frame_hw

    def buffer_config(self) -> BufferConfig:
        return BufferConfig(num_frames=self.num_frames, history_s=self.history_s, frame_hw=self.frame_hw)


class _Session:
    """The planner and the current episode's buffer, behind one lock."""

    def __init__(self, planner: Planner, config: ServerConfig) -> None:
        self.planner = planner
        self.config = config
        self.lock = threading.Lock()
        self.buffer = EpisodeBuffer(config.buffer_config())
        self.episodes = 0
        self.needs_planner_reset = True

    def reset(self) -> None:
        with self.lock:
            self._start_episode()

    def infer(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = parse_infer_request(payload, camera=self.config.camera, max_pixels=self.config.max_image_pixels)
        with self.lock:
            if self.needs_planner_reset:  # /infer without a /reset first: start an episode implicitly
                self._start_episode()
            try:
                observation = self.buffer.observe(request)
            except ValueError as exc:
                if isinstance(exc, RequestError):
                    raise
                raise RequestError(422, "", f"request does not make a valid observation: {exc}") from exc
            try:
                plan = self.planner.plan(observation)
            except Exception as exc:  # noqa: BLE001 - any planner failure is a 500, never a crash
                log.exception("planner %s raised at t=%.2f s", self.planner.name, observation.time_s)
                raise _PlannerFailure(f"planner {self.planner.name!r} raised {type(exc).__name__}: {exc}") from exc
            try:
                trajectory = plan_to_neuroncap(plan, self.planner.num_waypoints, self.planner.plan_dt_s)
            except PlanConversionError as exc:
                log.error("planner %s returned an unusable plan: %s", self.planner.name, exc)
                raise _PlannerFailure(f"planner {self.planner.name!r} returned an unusable plan: {exc}") from exc
        return infer_response(trajectory)

    def _start_episode(self) -> None:
        self.buffer = EpisodeBuffer(self.config.buffer_config())
        self.episodes += 1
        try:
            self.planner.reset(EpisodeInfo(f"neuroncap/{self.episodes}"))
        except Exception as exc:  # noqa: BLE001 - a planner failure is a 500, never a crash
            log.exception("planner %s raised in reset", self.planner.name)
            self.needs_planner_reset = True  # try again at the next /reset or /infer
            raise _PlannerFailure(f"planner {self.planner.name!r} reset raised {type(exc).__name__}: {exc}") from exc
        self.needs_planner_reset = False


class _PlannerFailure(RuntimeError):
    """The planner raised or returned something unusable: a 500 with this message."""


class NeuroNcapServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer bound to one planner session; `url` is where it listens."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], planner: Planner, config: ServerConfig) -> None:
        self.session = _Session(planner, config)
        self.config = config
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is not worth a traceback on stderr.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: NeuroNcapServer
    protocol_version = "HTTP/1.1"
    server_version = "ForesightNeuroNCAP/1"

    def setup(self) -> None:
        self.timeout = self.server.config.request_timeout_s  # socket timeout for every read
        self._unread_body_bytes = 0
        super().setup()

    # --- routing -------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self._path()
        if path == "/alive":
            self._send_json(200, True)
        elif path in ("/reset", "/infer"):
            self._send_error_json(RequestError(405, "", f"{path} takes POST"), allow="POST")
        else:
            self._send_error_json(RequestError(404, "", f"no endpoint {path}; endpoints: GET /alive, POST /reset, POST /infer"))

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        if path == "/alive":
            self._send_error_json(RequestError(405, "", "/alive takes GET"), allow="GET")
            return
        if path not in ("/reset", "/infer"):
            self._send_error_json(RequestError(404, "", f"no endpoint {path}; endpoints: GET /alive, POST /reset, POST /infer"))
            return
        try:
            body = self._read_body()
            if path == "/reset":
                self.server.session.reset()
                self._send_json(200, True)
            else:
                self._send_json(200, self.server.session.infer(parse_json_object(body)))
        except RequestError as exc:
            self._send_error_json(exc)
        except _PlannerFailure as exc:
            self._send_json(500, {"error": _clip(str(exc)), "field": None})
        except (TimeoutError, ConnectionError) as exc:
            log.warning("client %s dropped: %s", self.client_address[0], exc)
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug of ours: log it, answer 500 without the traceback
            log.exception("internal error serving %s", path)
            self._send_json(500, {"error": "internal server error (see the server log)", "field": None})

    def do_PUT(self) -> None:  # noqa: N802
        self._method_not_allowed()

    def do_DELETE(self) -> None:  # noqa: N802
        self._method_not_allowed()

    def do_PATCH(self) -> None:  # noqa: N802
        self._method_not_allowed()

    # --- plumbing --------------------------------------------------------------------------------
    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _method_not_allowed(self) -> None:
        path = self._path()
        allow = {"/alive": "GET", "/reset": "POST", "/infer": "POST"}.get(path)
        if allow is None:
            self._send_error_json(RequestError(404, "", f"no endpoint {path}"))
        else:
            self._send_error_json(RequestError(405, "", f"{path} takes {allow}"), allow=allow)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "", "chunked bodies are not supported; send Content-Length")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise RequestError(411, "", "Content-Length header required")
        try:
            length = int(length_header)
        except ValueError as exc:
            raise RequestError(400, "", f"Content-Length is not an integer: {length_header!r}") from exc
        if length < 0:
            raise RequestError(400, "", f"Content-Length is negative: {length}")
        limit = self.server.config.max_body_bytes
        if length > limit:
            self._unread_body_bytes = length
            raise RequestError(413, "", f"body of {length} bytes exceeds the limit of {limit} bytes")
        body = self.rfile.read(length)
        if len(body) != length:
            raise RequestError(400, "", f"body ended after {len(body)} of {length} bytes")
        return body

    def _send_error_json(self, error: RequestError, allow: str | None = None) -> None:
        headers = {"Allow": allow} if allow else {}
        self._send_json(error.status, {"error": _clip(error.message), "field": error.field or None}, headers)
        if error.status == 413:
            self._drain_unread_body()

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload, allow_nan=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def _drain_unread_body(self) -> None:
        """After a 413, read and drop what the client is still sending (bounded in time), so that
        closing the socket does not reset the connection before the client has read the answer."""
        remaining = self._unread_body_bytes
        deadline = time.monotonic() + _DRAIN_DEADLINE_S
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(_DRAIN_DEADLINE_S)
            while remaining > 0 and time.monotonic() < deadline:
                chunk = self.connection.recv(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, header overflow) as JSON too."""
        self.close_connection = True
        try:
            self._send_json(code, {"error": message or HTTPStatus(code).phrase, "field": None})
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug("%s %s", self.address_string(), format % args)


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_ERROR_CHARS else message[: _MAX_ERROR_CHARS - 3] + "..."


def make_server(
    planner: Planner, host: str = "127.0.0.1", port: int = DEFAULT_PORT, config: ServerConfig | None = None
) -> NeuroNcapServer:
    """Bind (port 0 picks a free port; see `.url`) without serving yet: call `serve_forever()` on it.

    Privileged planners are refused: NeuroNCAP sends no ground truth.
    """
    if not isinstance(planner, Planner):
        raise TypeError(f"make_server needs a contract.Planner, got {type(planner).__name__}")
    if planner.privileged:
        raise ValueError(f"planner {planner.name!r} is privileged (reads ground truth); NeuroNCAP provides none")
    return NeuroNcapServer((host, port), planner, config or ServerConfig())


def serve(planner: Planner, host: str = "127.0.0.1", port: int = DEFAULT_PORT, config: ServerConfig | None = None) -> None:
    """Serve until SIGINT / SIGTERM (or KeyboardInterrupt); in-flight requests finish, then the socket closes."""
    server = make_server(planner, host, port, config)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if not stop.is_set():
            stop.set()
            log.info("signal %d: shutting down", signum)
            # shutdown() waits for serve_forever to return, so it must not run on the serving thread.
            threading.Thread(target=server.shutdown, name="neuroncap-shutdown", daemon=True).start()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    log.info("NeuroNCAP planner server for %r listening on %s", planner.name, server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        log.info("interrupted: shutting down")
    finally:
        server.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def server_config_from(cfg: Mapping[str, Any]) -> ServerConfig:
    """ServerConfig from the keys of a config mapping that name its fields (the rest keep their defaults)."""
    fields = ServerConfig.__dataclass_fields__
    kwargs = {key: cfg[key] for key in fields if key in cfg and cfg[key] is not None}
    if "frame_hw" in kwargs:
        kwargs["frame_hw"] = tuple(int(v) for v in kwargs["frame_hw"])
    return ServerConfig(**kwargs)
