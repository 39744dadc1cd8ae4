"""HTTP server that lets NeuroNCAP drive any Foresight `Planner` (standard library only).

Endpoints (the NeuroNCAP model API, as its engine and the UniAD / VAM reference servers use it):
    GET  /alive  -> 200 `true`                      (NeuroNCAP polls it until the server is up)
    POST /reset  -> 200 `true`; body ignored ({})   (start of a scenario: buffers cleared, planner.reset)
    POST /infer  -> 200 {"trajectory": 6 x [x, y], "aux_outputs": {...}}   (see planner/server/schema.py)
Errors are JSON objects {"error": message, "field": dotted field or null}:
    400 body is not a JSON object, or nests too deep / holds too many values · 404 unknown path ·
    405 wrong method · 408 body not received by the request deadline · 411 no Content-Length ·
    413 body over `max_body_bytes` · 422 a field is missing, mistyped, mis-shaped or non-finite ·
    500 the planner raised or returned an unusable plan (the server keeps serving; no traceback is sent) ·
    503 (with Retry-After) too many connections, or too many body bytes in flight.

Requests are served on threads, but /reset and /infer are serialised by one lock (one planner, one
episode); /alive never waits on it. Each response closes its connection, so shutdown never waits on
an idle keep-alive client. Under load the server bounds what it holds rather than what it is sent:
at most `max_connections` connections get a thread, each must deliver its whole request within
`request_timeout_s` of being accepted, and the bodies being read or processed sum to at most
`max_inflight_body_bytes`; beyond that a client gets 503 at once and may retry.
"""

from __future__ import annotations

import io
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

from configs import build, defaults
from contract import EpisodeInfo, Planner
from planner.server.announce import LISTENING
from planner.server.episode import BufferConfig, EpisodeBuffer
from planner.server.schema import RequestError, infer_response, parse_infer_request, parse_json_object
from planner.server.trajectory import PlanConversionError, plan_to_neuroncap

log = logging.getLogger(__name__)

DEFAULT_PORT = 9000  # NeuroNCAP's ModelConfig.port
_MAX_ERROR_CHARS = 500
_DRAIN_DEADLINE_S = 5.0  # longest a 413 / 503 keeps reading the refused body
_REFUSAL_DEADLINE_S = 1.0  # longest a connection over `max_connections` is kept to answer it 503
_MAX_REFUSING = 8  # connections being answered 503 at once; beyond, new connections are closed unanswered


@dataclass(frozen=True)
class ServerConfig:
    """Server settings (the keys `run(cfg)` reads besides host / port / planner); their defaults live
    in configs/serve.yaml (`ServerConfig.default()`), which also says what each one is.

    camera:            which of the six images the planner sees (its intrinsics must be in calibration).
    num_frames, history_s, frame_hw, route_if_missing: the observation buffer, see `BufferConfig`.
    max_body_bytes:    larger bodies get 413 unread.
    max_image_pixels:  larger images get 422 (checked from headers / tensor metadata before decoding).
    max_json_depth, max_json_values: deeper or bigger JSON bodies get 400 (values bounded before parsing).
    request_timeout_s: the whole request (headers and body) must arrive within this long of the
                       connection being accepted [s], however slowly the bytes trickle in.
    max_connections:   connections served at once (a thread each); more get 503.
    max_inflight_body_bytes: request bodies being read or processed at once, summed; more get 503.
    retry_after_s:     the Retry-After of a 503 [s].
    listen_backlog:    connections the kernel queues before they are accepted.
    """

    camera: str
    num_frames: int
    history_s: float
    frame_hw: tuple[int, int] | None
    route_if_missing: str
    max_body_bytes: int
    max_image_pixels: int
    max_json_depth: int
    max_json_values: int
    request_timeout_s: float
    max_connections: int
    max_inflight_body_bytes: int
    retry_after_s: int
    listen_backlog: int

    def __post_init__(self) -> None:
        if not isinstance(self.camera, str) or not self.camera:
            raise ValueError(f"ServerConfig.camera must be a camera name, got {self.camera!r}")
        counts = ("max_body_bytes", "max_image_pixels", "max_json_depth", "max_json_values", "max_connections", "max_inflight_body_bytes")
        for name in (*counts, "retry_after_s", "listen_backlog"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ServerConfig.{name} must be an int >= 1, got {value!r}")
        if self.max_inflight_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"ServerConfig.max_inflight_body_bytes ({self.max_inflight_body_bytes}) must be >= max_body_bytes "
                f"({self.max_body_bytes}), or a body of the largest accepted size could never be read"
            )
        timeout = self.request_timeout_s
        if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"ServerConfig.request_timeout_s must be > 0, got {self.request_timeout_s!r}")
        self.buffer_config()  # validates num_frames, history_s, frame_hw

    @classmethod
    def default(cls, **changes: Any) -> ServerConfig:
        """configs/serve.yaml's server keys, with `changes` (field=value) applied."""
        return server_config_from({**defaults("serve"), **changes})

    def buffer_config(self) -> BufferConfig:
        return BufferConfig(num_frames=self.num_frames, history_s=self.history_s, frame_hw=self.frame_hw, route_if_missing=self.route_if_missing)


class _Admission:
    """What the server holds at once: connections with a thread, connections being refused, and the
    bytes of request bodies being read or processed. Thread-safe counters; `try_*` never waits."""

    def __init__(self, max_connections: int, max_body_bytes_in_flight: int) -> None:
        self.max_connections = max_connections
        self.max_body_bytes_in_flight = max_body_bytes_in_flight
        self._lock = threading.Lock()
        self.connections = 0
        self.refusing = 0
        self.body_bytes_in_flight = 0

    def try_connect(self) -> bool:
        with self._lock:
            if self.connections >= self.max_connections:
                return False
            self.connections += 1
            return True

    def disconnect(self) -> None:
        with self._lock:
            self.connections -= 1

    def try_refuse(self) -> bool:
        with self._lock:
            if self.refusing >= _MAX_REFUSING:
                return False
            self.refusing += 1
            return True

    def refused(self) -> None:
        with self._lock:
            self.refusing -= 1

    def try_reserve_body(self, num_bytes: int) -> bool:
        with self._lock:
            if self.body_bytes_in_flight + num_bytes > self.max_body_bytes_in_flight:
                return False
            self.body_bytes_in_flight += num_bytes
            return True

    def release_body(self, num_bytes: int) -> None:
        with self._lock:
            self.body_bytes_in_flight -= num_bytes


class _DeadlineReader(io.RawIOBase):
    """Socket reads that all end by `deadline_s` (time.monotonic()): a per-read timeout would let a
    client that sends a byte a second hold its thread forever; this one gets TimeoutError at the deadline."""

    def __init__(self, sock: socket.socket, deadline_s: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline_s = deadline_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining_s = self._deadline_s - time.monotonic()
        if remaining_s <= 0:
            raise TimeoutError("the request was not received within request_timeout_s")
        self._sock.settimeout(remaining_s)
        return self._sock.recv_into(buffer)


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
        self.admission = _Admission(config.max_connections, config.max_inflight_body_bytes)
        self.request_queue_size = config.listen_backlog  # read by server_activate's listen()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection if one is free, else a short-lived 503 (or, past that, a close)."""
        if self.admission.try_connect():
            try:
                super().process_request(request, client_address)
            except BaseException:
                self.admission.disconnect()
                raise
        elif self.admission.try_refuse():
            try:
                threading.Thread(target=self._refuse, args=(request,), name="neuroncap-busy", daemon=True).start()
            except BaseException:
                self.admission.refused()
                raise
        else:
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.admission.disconnect()

    def _refuse(self, request: socket.socket) -> None:
        """Answer 503 to a connection over `max_connections`, within _REFUSAL_DEADLINE_S: read the request
        head first and drain what follows, so that closing does not reset the connection under the answer."""
        deadline = time.monotonic() + _REFUSAL_DEADLINE_S
        body = json.dumps({"error": f"server busy: {self.config.max_connections} connections open; retry later", "field": None})
        answer = (
            f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Retry-After: {self.config.retry_after_s}\r\nConnection: close\r\n\r\n{body}"
        ).encode()
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = _recv_before(request, deadline, 65536)
                if not chunk:
                    break
                head += chunk
            request.settimeout(max(deadline - time.monotonic(), 0.05))
            request.sendall(answer)
            request.shutdown(socket.SHUT_WR)
            while _recv_before(request, deadline, 1 << 20):
                pass
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
            self.admission.refused()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is not worth a traceback on stderr.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def _recv_before(sock: socket.socket, deadline: float, max_bytes: int) -> bytes:
    """One recv of up to `max_bytes` that ends by `deadline` (time.monotonic()); b"" at the deadline,
    at the end of the stream or on an error."""
    remaining_s = deadline - time.monotonic()
    if remaining_s <= 0:
        return b""
    try:
        sock.settimeout(remaining_s)
        return sock.recv(max_bytes)
    except OSError:
        return b""


class _Handler(BaseHTTPRequestHandler):
    server: NeuroNcapServer
    protocol_version = "HTTP/1.1"
    server_version = "ForesightNeuroNCAP/1"

    def setup(self) -> None:
        self.timeout = self.server.config.request_timeout_s  # bounds each write of the answer
        self._unread_body_bytes = 0
        self._reserved_body_bytes = 0
        super().setup()
        # Reading the request line, the headers and the body must all end by one deadline.
        deadline = time.monotonic() + self.server.config.request_timeout_s
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

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
        config = self.server.config
        try:
            if path == "/reset":
                self._read_body()
                self.server.session.reset()
                self._send_json(200, True)
            else:
                # The body is parsed where it is read, so that its bytes are freed before the planner runs.
                payload = parse_json_object(self._read_body(), max_depth=config.max_json_depth, max_values=config.max_json_values)
                self._send_json(200, self.server.session.infer(payload))
        except RequestError as exc:
            self._send_error_json(exc)
        except _PlannerFailure as exc:
            self._send_json(500, {"error": _clip(str(exc)), "field": None})
        except TimeoutError as exc:
            log.warning("client %s dropped: %s", self.client_address[0], exc)
            self._try_send_error_json(RequestError(408, "", f"request not received within request_timeout_s = {config.request_timeout_s} s"))
        except ConnectionError as exc:
            log.warning("client %s dropped: %s", self.client_address[0], exc)
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug of ours: log it, answer 500 without the traceback
            log.exception("internal error serving %s", path)
            self._send_json(500, {"error": "internal server error (see the server log)", "field": None})
        finally:
            self.server.admission.release_body(self._reserved_body_bytes)
            self._reserved_body_bytes = 0

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
        admission = self.server.admission
        if not admission.try_reserve_body(length):
            self._unread_body_bytes = length
            in_flight, limit = admission.body_bytes_in_flight, admission.max_body_bytes_in_flight
            message = f"server busy: {in_flight} body bytes in flight, {length} more would exceed max_inflight_body_bytes = {limit}; retry later"
            raise RequestError(503, "", message)
        self._reserved_body_bytes = length
        body = self.rfile.read(length)
        if len(body) != length:
            raise RequestError(400, "", f"body ended after {len(body)} of {length} bytes")
        return body

    def _send_error_json(self, error: RequestError, allow: str | None = None) -> None:
        headers = {"Allow": allow} if allow else {}
        if error.status == 503:
            headers["Retry-After"] = str(self.server.config.retry_after_s)
        self._send_json(error.status, {"error": _clip(error.message), "field": error.field or None}, headers)
        if error.status in (413, 503):
            self._drain_unread_body()

    def _try_send_error_json(self, error: RequestError) -> None:
        """An answer to a client that may be gone already."""
        self.close_connection = True
        try:
            self._send_error_json(error)
        except OSError:
            pass

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self.connection.settimeout(self.server.config.request_timeout_s)  # reads left it at their deadline's rest
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
    `config` None: `ServerConfig.default()` (configs/serve.yaml).

    Privileged planners are refused: NeuroNCAP sends no ground truth.
    """
    if not isinstance(planner, Planner):
        raise TypeError(f"make_server needs a contract.Planner, got {type(planner).__name__}")
    if planner.privileged:
        raise ValueError(f"planner {planner.name!r} is privileged (reads ground truth); NeuroNCAP provides none")
    return NeuroNcapServer((host, port), planner, config or ServerConfig.default())


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
    log.info(LISTENING, planner.name, server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        log.info("interrupted: shutting down")
    finally:
        server.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def server_config_from(cfg: Mapping[str, Any]) -> ServerConfig:
    """ServerConfig from the keys of a config mapping that name its fields (configs/serve.yaml has them
    all; other keys, such as planner and port, are ignored; a missing one is an error naming it)."""
    kwargs = {key: cfg[key] for key in ServerConfig.__dataclass_fields__ if key in cfg}
    if kwargs.get("frame_hw") is not None:
        kwargs["frame_hw"] = tuple(int(v) for v in kwargs["frame_hw"])
    return build(ServerConfig, kwargs, "serve")
