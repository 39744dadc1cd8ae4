"""How clips are laid out inside one safetensors shard.

Tensor names are prefixed by the clip's index in the shard (`"3/pose_xyz_m"`). Frames are either
encoded images concatenated into one uint8 buffer with an offsets array (`jpeg`, `png`) or a raw
(T, H, W, 3) uint8 tensor (`raw`); safetensors memory-maps the file, so a reader slices out just the
frames a window needs. Per-clip metadata (ids, intrinsics, extrinsics, provenance, object labels) is
JSON in the safetensors header, with sorted keys everywhere, so equal clips give byte-identical shards.
`extrinsics` is written only for clips that have them; stores written before it existed read as None.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from safetensors.numpy import save

from data.ego_motion import PoseStream
from data.image import encode_frame
from data.schema import CameraExtrinsics, CameraIntrinsics, Clip, FrameObjects, MapPatch


def clip_to_tensors(clip: Clip, prefix: str, codec: str, jpeg_quality: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split a clip into named arrays and a JSON-able metadata dict."""
    t: dict[str, np.ndarray] = {}
    if codec == "raw":
        t[f"{prefix}/frames"] = np.ascontiguousarray(clip.frames)
    else:
        blobs = [encode_frame(f, codec, jpeg_quality) for f in clip.frames]
        offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(b) for b in blobs])
        t[f"{prefix}/frame_bytes"] = np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()
        t[f"{prefix}/frame_offsets"] = offsets
    t[f"{prefix}/frame_timestamps_us"] = clip.frame_timestamps_us
    if clip.poses is not None:
        t[f"{prefix}/pose_timestamps_us"] = clip.poses.timestamps_us
        t[f"{prefix}/pose_xyz_m"] = clip.poses.xyz_m
        t[f"{prefix}/pose_yaw_rad"] = clip.poses.yaw_rad
        if clip.poses.rotation_wxyz is not None:
            t[f"{prefix}/pose_rotation_wxyz"] = clip.poses.rotation_wxyz
    if clip.commands is not None:
        t[f"{prefix}/commands"] = clip.commands
    meta: dict[str, Any] = {
        "clip_id": clip.clip_id,
        "source": clip.source,
        "fps": clip.fps,
        "num_frames": clip.num_frames,
        "height": clip.image_size[0],
        "width": clip.image_size[1],
        "intrinsics": None if clip.intrinsics is None else clip.intrinsics.to_dict(),
        "origin_global": clip.origin_global,
        "license": clip.license,
        "provenance": dict(clip.provenance),
        "has_poses": clip.has_poses,
    }
    if clip.extrinsics is not None:
        meta["extrinsics"] = clip.extrinsics.to_dict()
    if clip.objects is not None:
        counts = np.array([len(o) for o in clip.objects], dtype=np.int64)
        t[f"{prefix}/object_offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        t[f"{prefix}/object_boxes"] = (
            np.concatenate([o.boxes for o in clip.objects]) if counts.sum() else np.zeros((0, 7), np.float32)
        )
        meta["object_categories"] = [c for o in clip.objects for c in o.categories]
        meta["object_track_ids"] = [i for o in clip.objects for i in o.track_ids]
    if clip.map_patch is not None:
        t[f"{prefix}/map_mask"] = clip.map_patch.mask
        meta["map_resolution_m"] = clip.map_patch.resolution_m
        meta["map_origin_xy"] = list(clip.map_patch.origin_xy)
    return t, meta


def pose_stream_from(get, prefix: str, keys: set[str]) -> PoseStream | None:
    """Rebuild the pose stream of clip `prefix` with `get(name) -> array`, or None if unlabeled."""
    if f"{prefix}/pose_timestamps_us" not in keys:
        return None
    rot_key = f"{prefix}/pose_rotation_wxyz"
    return PoseStream(
        get(f"{prefix}/pose_timestamps_us"),
        get(f"{prefix}/pose_xyz_m"),
        get(f"{prefix}/pose_yaw_rad"),
        get(rot_key) if rot_key in keys else None,
    )


def clip_from_parts(meta: dict[str, Any], frames: np.ndarray, get, prefix: str, keys: set[str]) -> Clip:
    """Rebuild a full Clip from its metadata, decoded frames and stored arrays."""
    objects = None
    if f"{prefix}/object_offsets" in keys:
        offsets = get(f"{prefix}/object_offsets")
        boxes = get(f"{prefix}/object_boxes")
        cats, tids = meta["object_categories"], meta["object_track_ids"]
        objects = tuple(
            FrameObjects(boxes[a:b], tuple(cats[a:b]), tuple(tids[a:b])) for a, b in zip(offsets[:-1], offsets[1:])
        )
    map_patch = None
    if f"{prefix}/map_mask" in keys:
        map_patch = MapPatch(get(f"{prefix}/map_mask"), meta["map_resolution_m"], tuple(meta["map_origin_xy"]))
    intr = meta.get("intrinsics")
    extr = meta.get("extrinsics")
    origin = meta.get("origin_global")
    return Clip(
        clip_id=meta["clip_id"],
        source=meta["source"],
        frames=frames,
        frame_timestamps_us=get(f"{prefix}/frame_timestamps_us"),
        fps=float(meta["fps"]),
        intrinsics=None if intr is None else CameraIntrinsics(**intr),
        extrinsics=None if extr is None else CameraExtrinsics.from_dict(extr),
        poses=pose_stream_from(get, prefix, keys),
        commands=get(f"{prefix}/commands") if f"{prefix}/commands" in keys else None,
        objects=objects,
        map_patch=map_patch,
        origin_global=None if origin is None else tuple(origin),
        license=meta.get("license", "unknown"),
        provenance=meta.get("provenance", {}),
    )


def encode_header(metas: list[dict[str, Any]], codec: str) -> dict[str, str]:
    return {"clips": json.dumps(metas, sort_keys=True), "codec": codec}


def shard_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors file of `tensors` with `metadata`, byte-reproducible.

    safetensors keeps the metadata in a Rust HashMap whose order changes from one save to the next,
    so the same shard had different bytes (and manifest checksums) in every run. The header is
    rewritten here: metadata keys sorted, tensor entries in the order of their data. The tensor
    bytes and their offsets are untouched (offsets count from the end of the header).
    """
    raw = save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: (kv[1]["data_offsets"], kv[0]))
    ordered = {"__metadata__": dict(sorted(header.get("__metadata__", {}).items())), **dict(entries)}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header with spaces to 8-byte alignment
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def decode_header(header: dict[str, str] | None, path: str) -> tuple[list[dict[str, Any]], str]:
    if not header or "clips" not in header:
        raise ValueError(f"{path} is not a Foresight clip shard (no clip metadata)")
    return json.loads(header["clips"]), header.get("codec", "jpeg")
