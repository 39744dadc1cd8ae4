"""The nuPlan log database (SQLite): table layout, read-only access and table checks.

One `.db` file holds one driving log (nuplan-devkit `docs/nuplan_schema.md`). Primary and foreign
keys (`token`, `*_token`) are 8-byte BLOBs, timestamps are integer microseconds, positions are metres
in the map's global frame, and camera calibration columns are pickled Python lists. `TABLE_DDL`
restates the tables this project reads, so tests (and exporters) can write databases in the same
layout with `create_tables`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from data.errors import CorruptFileError, MissingFileError, MissingTableError

# Tables every conversion reads, and those needed only for object boxes.
REQUIRED_TABLES: tuple[str, ...] = ("log", "ego_pose", "camera", "image", "lidar_pc", "scene", "scenario_tag")
OBJECT_TABLES: tuple[str, ...] = ("lidar_box", "track", "category")

TABLE_DDL: dict[str, str] = {
    "log": """CREATE TABLE log (
        token BLOB PRIMARY KEY, vehicle_name VARCHAR(64), date VARCHAR(64), timestamp INTEGER,
        logfile VARCHAR(64), location VARCHAR(64), map_version VARCHAR(64))""",
    "ego_pose": """CREATE TABLE ego_pose (
        token BLOB PRIMARY KEY, timestamp INTEGER, x FLOAT, y FLOAT, z FLOAT,
        qw FLOAT, qx FLOAT, qy FLOAT, qz FLOAT, vx FLOAT, vy FLOAT, vz FLOAT,
        acceleration_x FLOAT, acceleration_y FLOAT, acceleration_z FLOAT,
        angular_rate_x FLOAT, angular_rate_y FLOAT, angular_rate_z FLOAT,
        epsg INTEGER, log_token BLOB NOT NULL)""",
    "camera": """CREATE TABLE camera (
        token BLOB PRIMARY KEY, log_token BLOB NOT NULL, channel VARCHAR(64), model VARCHAR(64),
        translation BLOB, rotation BLOB, intrinsic BLOB, distortion BLOB, width INTEGER, height INTEGER)""",
    "image": """CREATE TABLE image (
        token BLOB PRIMARY KEY, next_token BLOB, prev_token BLOB, ego_pose_token BLOB NOT NULL,
        camera_token BLOB NOT NULL, filename_jpg VARCHAR(128), timestamp INTEGER)""",
    "lidar": """CREATE TABLE lidar (
        token BLOB PRIMARY KEY, log_token BLOB NOT NULL, channel VARCHAR(64), model VARCHAR(64),
        translation BLOB, rotation BLOB, max_nbr_points INTEGER)""",
    "lidar_pc": """CREATE TABLE lidar_pc (
        token BLOB PRIMARY KEY, next_token BLOB, prev_token BLOB, scene_token BLOB,
        ego_pose_token BLOB NOT NULL, lidar_token BLOB NOT NULL, filename VARCHAR(128), timestamp INTEGER)""",
    "category": """CREATE TABLE category (token BLOB PRIMARY KEY, name VARCHAR(64), description TEXT)""",
    "track": """CREATE TABLE track (
        token BLOB PRIMARY KEY, category_token BLOB NOT NULL, width FLOAT, length FLOAT, height FLOAT)""",
    "lidar_box": """CREATE TABLE lidar_box (
        token BLOB PRIMARY KEY, lidar_pc_token BLOB NOT NULL, track_token BLOB NOT NULL,
        next_token BLOB, prev_token BLOB, x FLOAT, y FLOAT, z FLOAT, width FLOAT, length FLOAT,
        height FLOAT, vx FLOAT, vy FLOAT, vz FLOAT, yaw FLOAT, confidence FLOAT)""",
    "scene": """CREATE TABLE scene (
        token BLOB PRIMARY KEY, log_token BLOB NOT NULL, name TEXT, goal_ego_pose_token BLOB,
        roadblock_ids TEXT)""",
    "scenario_tag": """CREATE TABLE scenario_tag (
        token BLOB PRIMARY KEY, lidar_pc_token BLOB NOT NULL, type TEXT, agent_track_token BLOB)""",
    "traffic_light_status": """CREATE TABLE traffic_light_status (
        token BLOB PRIMARY KEY, lidar_pc_token BLOB NOT NULL, lane_connector_id INTEGER, status VARCHAR(8))""",
}


def open_log_db(path: str | Path) -> sqlite3.Connection:
    """Open a nuPlan `.db` read-only; errors name the file.

    Opened as immutable (no locks, no journal): nuPlan logs are static files, often on read-only
    storage. Temporary tables still work (they live in SQLite's separate temp database).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"nuPlan database not found: {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise CorruptFileError(f"{path} is not a readable SQLite database: {exc}") from exc
    return conn


def table_names(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}


def table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def require_tables(conn: sqlite3.Connection, tables: tuple[str, ...], db_path: str | Path) -> None:
    """Raise MissingTableError naming the first absent table and the database file."""
    present = table_names(conn)
    for table in tables:
        if table not in present:
            raise MissingTableError(f"{Path(db_path).name}: nuPlan table {table!r} is missing ({db_path})")


def create_tables(conn: sqlite3.Connection, tables: tuple[str, ...] | None = None) -> None:
    """Create `tables` (default: all of TABLE_DDL) in an empty database, in the nuPlan layout."""
    for table in TABLE_DDL if tables is None else tables:
        conn.execute(TABLE_DDL[table])
    conn.commit()


def token_hex(token: bytes | str | None) -> str | None:
    """A token as lowercase hex (nuPlan tokens are 8-byte BLOBs; some exports store hex text)."""
    if token is None:
        return None
    if isinstance(token, (bytes, bytearray, memoryview)):
        return bytes(token).hex()
    return str(token).lower()
