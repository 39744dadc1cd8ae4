"""How the camera renderer colours the world: a palette and optional domain randomisation."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

RGB = tuple[int, int, int]


def check_rgb(owner: str, name: str, value: RGB) -> None:
    if len(value) != 3 or not all(isinstance(c, (int, np.integer)) and 0 <= c <= 255 for c in value):
        raise ValueError(f"{owner}.{name} must be 3 ints in [0, 255], got {value}")


@dataclass(frozen=True)
class CameraPalette:
    """Colours (RGB uint8 triples) and lighting of the camera renderer.

    Scene objects carry their own base colours; the palette covers the background, the details drawn
    on boxes and the lighting. Face shade = ambient + diffuse * max(0, normal . sun_direction).
    """

    sky_top_rgb: RGB = (92, 140, 200)
    sky_horizon_rgb: RGB = (196, 214, 228)
    ground_horizon_rgb: RGB = (150, 156, 140)
    ground_near_rgb: RGB = (96, 118, 70)
    window_rgb: RGB = (28, 34, 44)
    tire_rgb: RGB = (18, 18, 20)
    shadow_rgb: RGB = (34, 34, 36)
    brake_on_rgb: RGB = (255, 36, 24)
    brake_off_rgb: RGB = (112, 22, 20)
    headlight_rgb: RGB = (226, 226, 200)
    skin_rgb: RGB = (214, 170, 140)
    trousers_rgb: RGB = (40, 44, 60)
    light_housing_rgb: RGB = (30, 30, 30)
    light_pole_rgb: RGB = (90, 90, 90)
    lamp_red_rgb: RGB = (255, 40, 30)
    lamp_yellow_rgb: RGB = (255, 196, 0)
    lamp_green_rgb: RGB = (40, 255, 110)
    lamp_off_rgb: RGB = (52, 52, 52)
    roof_tint: float = 0.8  # roof colour = base colour * roof_tint * shade
    ambient: float = 0.55
    diffuse: float = 0.45
    sun_direction_xyz: tuple[float, float, float] = (0.35, 0.45, 0.82)  # towards the sun, world frame

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.endswith("_rgb"):
                check_rgb("CameraPalette", f.name, getattr(self, f.name))
        if not (0 < self.roof_tint <= 1.5):
            raise ValueError(f"CameraPalette.roof_tint must be in (0, 1.5], got {self.roof_tint}")
        if self.ambient < 0 or self.diffuse < 0 or self.ambient + self.diffuse <= 0:
            raise ValueError("CameraPalette.ambient and diffuse must be >= 0 with a positive sum")
        sun = np.asarray(self.sun_direction_xyz, dtype=np.float64)
        if sun.shape != (3,) or not np.isfinite(sun).all() or np.linalg.norm(sun) < 1e-6:
            raise ValueError(f"CameraPalette.sun_direction_xyz must be a non-zero 3-vector, got {self.sun_direction_xyz}")

    @property
    def sun_unit(self) -> np.ndarray:
        sun = np.asarray(self.sun_direction_xyz, dtype=np.float64)
        return sun / np.linalg.norm(sun)


@dataclass(frozen=True)
class DomainRandomization:
    """Per-frame appearance jitter magnitudes (standard deviations), all applied from an explicit rng.

    color_jitter: relative std of each palette colour channel; white_balance_jitter: relative std of a
    per-channel gain on the whole frame (also recolours scene objects); sun_azimuth_jitter_rad: std of
    the sun's rotation about z (changes face shading); pitch_jitter_rad: std of the camera pitch;
    pixel_noise_std: additive Gaussian noise in uint8 levels.
    """

    color_jitter: float = 0.06
    white_balance_jitter: float = 0.05
    sun_azimuth_jitter_rad: float = 0.5
    pitch_jitter_rad: float = 0.01
    pixel_noise_std: float = 2.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"DomainRandomization.{f.name} must be finite and >= 0, got {v}")

    def jitter_palette(self, palette: CameraPalette, rng: np.random.Generator) -> CameraPalette:
        """A palette with every colour scaled per channel by N(1, color_jitter) and the sun rotated."""
        changes: dict = {}
        for f in fields(palette):
            if f.name.endswith("_rgb"):
                base = np.asarray(getattr(palette, f.name), dtype=np.float64)
                gain = 1.0 + self.color_jitter * rng.standard_normal(3)
                changes[f.name] = tuple(int(c) for c in np.clip(np.rint(base * gain), 0, 255))
        angle = self.sun_azimuth_jitter_rad * rng.standard_normal()
        c, s = np.cos(angle), np.sin(angle)
        sx, sy, sz = palette.sun_direction_xyz
        changes["sun_direction_xyz"] = (c * sx - s * sy, s * sx + c * sy, sz)
        return replace(palette, **changes)
