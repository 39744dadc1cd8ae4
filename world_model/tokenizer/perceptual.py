"""Optional perceptual loss: distances between VGG16 features, from weights already on disk.

No weights are downloaded. `weights_path` is a torchvision-layout VGG16 state dict (keys
features.{i}.weight/bias; classifier.* ignored) saved as .safetensors or as a torch file read with
weights_only=True. Distances follow LPIPS without its learned per-channel weights: features are
unit-normalised over channels, squared differences averaged over space and summed over layers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

# VGG16 "D" feature stack: conv widths, "M" = 2x2 max-pool. Features are tapped after the last ReLU
# of each stage (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualLoss(nn.Module):
    """Frozen VGG16 feature distance between two (B, 3, H, W) batches in [-1, 1] -> scalar."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        taps: list[int] = []
        c = 3
        for v in _VGG16:
            if v == "M":
                taps.append(len(layers) - 1)
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU()]
                c = int(v)
        taps.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.taps = frozenset(taps)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def _feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(F.normalize(h, dim=1, eps=1e-10))
        return out

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = reconstruction.new_zeros(())
        for a, b in zip(self._feats(reconstruction), self._feats(target)):
            total = total + ((a - b) ** 2).sum(dim=1).mean()
        return total

    def train(self, mode: bool = True) -> "PerceptualLoss":
        return super().train(False)  # always frozen


def load_perceptual_loss(weights_path: str | Path | None) -> PerceptualLoss | None:
    """The perceptual loss with weights from `weights_path`, or None (with a log line) when no file is there."""
    if not weights_path:
        log.info("perceptual loss off: no perceptual_weights path configured")
        return None
    path = Path(weights_path)
    if not path.is_file():
        log.warning("perceptual loss off: VGG16 weights not found at %s (nothing is downloaded)", path)
        return None
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"cannot read VGG16 weights {path} with weights_only=True: {exc}") from exc
    state = {k: v for k, v in state.items() if k.startswith("features.")}
    model = PerceptualLoss()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} is not a torchvision-layout VGG16 state dict: {exc}") from exc
    log.info("perceptual loss on: VGG16 features from %s", path)
    return model
