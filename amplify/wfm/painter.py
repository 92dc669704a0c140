"""The scenario painter: the part of the world model that draws inserted agents and paints over
removed ones, per frame, at pixel resolution.

    maps = render_edit(world, edit)              # amplify/scenarios/edit.py: the edit's proxies
    model = load_painter()                       # checkpoints/wfm/painter.safetensors
    out = paint(model, frames, maps, scenario_id("cut_in"))  # (T, H, W, 3) uint8

The grade world model only re-colours source pixels, so it can neither add nor remove agents;
the painter does, inside the edit's `region` and nowhere else. Design:
- Input per pixel (`INPUT_CHANNELS` = 21): the source frame in [0, 1] with the `remove` pixels
  filled from around them (`fill_holes`: push-pull interpolation, Gortler et al. 1996) (3), the `insert` and `remove` masks (2), the inserted agents' proxy G-buffer: albedo (3),
  normals (3), inverse depth 8 / (8 + d) (1), one-hot category (7, `AGENT_CATEGORIES`), head and
  tail lamp codes (2); all proxies are 0 outside `insert`.
- A small convolutional U-Net (no normalisation layers, so a 64 px training crop and a full frame
  see the same statistics): widths `cfg.widths` at strides 1, 2, 4, 8, two 3x3 convs per level,
  two dilated convs at the bottleneck (receptive field ~ 140 px: the clip's lighting is read from
  the context around the region); the scenario id (`amplify.conditions.scenario_id`) is an
  embedding added at the bottleneck.
- Output (9 channels): where an agent is inserted, a per-pixel colour affine of the proxy albedo,
  `rgb = gain * albedo + bias` (lighting multiplies albedo, so shading an agent is a smooth
  gain); elsewhere in the region (removed agents) a residual over the filled source,
  `rgb = fill + residual`, so a zero residual is already a smooth background.
- Compose: `out = source` outside `region` (bit-identical), the painted pixels inside.

Baselines for the evaluation: `copy_paste` (the twin's own pixels: the ceiling) and `flat_box`
(each inserted agent's box in its mean twin colour, removed regions in the mean surrounding
colour: the floor). `amplify.eval.metrics.masked_ssim` / `masked_psnr` score them inside a mask.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from amplify.conditions import SCENARIOS
from amplify.errors import ConfigError
from amplify.scenarios.edit import EditMaps
from amplify.synth.classes import AGENT_CATEGORIES
from amplify.synth.raster import EMIT_HEAD, EMIT_TAIL

N_CATEGORIES = len(AGENT_CATEGORIES)  # 7
INPUT_CHANNELS = 3 + 2 + 3 + 3 + 1 + N_CATEGORIES + 2  # 21
DEPTH_SCALE_M = 8.0  # inverse depth 8 / (8 + d): 1 at the camera, 0.5 at 8 m, 0.04 at 200 m
DEFAULT_PAINTER = "painter"


@dataclass(frozen=True)
class PainterConfig:
    widths: tuple[int, ...] = (24, 48, 96, 128)  # channels at strides 1, 2, 4, 8
    n_scenarios: int = len(SCENARIOS) + 1  # id 0 = none

    def __post_init__(self) -> None:
        if len(self.widths) != 4 or any(int(w) < 1 for w in self.widths):
            raise ConfigError("widths", self.widths, "must be 4 positive channel counts")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> PainterConfig:
        return cls(widths=tuple(d["widths"]), n_scenarios=int(d["n_scenarios"]))


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation),
        nn.SiLU(),
    )


class Painter(nn.Module):
    """U-Net from the 21 input channels to a colour affine of the proxy albedo."""

    def __init__(self, cfg: PainterConfig = PainterConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        w0, w1, w2, w3 = cfg.widths
        self.enc0 = _block(INPUT_CHANNELS, w0)
        self.enc1 = _block(w0, w1)
        self.enc2 = _block(w1, w2)
        self.enc3 = _block(w2, w3)
        self.down = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for c in (w0, w1, w2))
        self.scenario = nn.Embedding(cfg.n_scenarios, w3)
        self.mid = _block(w3, w3, dilation=2)
        self.dec2 = _block(w3 + w2, w2)
        self.dec1 = _block(w2 + w1, w1)
        self.dec0 = _block(w1 + w0, w0)
        self.head = nn.Conv2d(w0, 9, 1)
        nn.init.zeros_(self.scenario.weight)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():  # start at rgb = 0.6 * albedo + 0.2: a lit, slightly grey agent
            self.head.bias.copy_(torch.tensor([0.6, 0.6, 0.6, 0.2, 0.2, 0.2, 0.0, 0.0, 0.0]))

    def forward(self, x: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """x (B, 21, H, W) from `painter_inputs`, H and W multiples of 8; scenario (B,) int64.
        Returns the painted RGB (B, 3, H, W), not clamped (the loss sees the raw values)."""
        albedo = x[:, 5:8]  # (B, 3, H, W)
        e0 = self.enc0(x)  # (B, w0, H, W)
        e1 = self.enc1(self.down[0](e0))  # (B, w1, H/2, W/2)
        e2 = self.enc2(self.down[1](e1))  # (B, w2, H/4, W/4)
        e3 = self.enc3(self.down[2](e2))  # (B, w3, H/8, W/8)
        e3 = self.mid(e3 + self.scenario(scenario)[:, :, None, None])  # (B, w3, H/8, W/8)
        d2 = self.dec2(torch.cat([_up(e3), e2], 1))  # (B, w2, H/4, W/4)
        d1 = self.dec1(torch.cat([_up(d2), e1], 1))  # (B, w1, H/2, W/2)
        d0 = self.dec0(torch.cat([_up(d1), e0], 1))  # (B, w0, H, W)
        gain, bias, resid = self.head(d0).chunk(3, 1)  # (B, 3, H, W) each
        ins = x[:, 3:4]  # (B, 1, H, W)
        return ins * (gain * albedo + bias) + (1 - ins) * (x[:, :3] + resid)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def fill_holes(img: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """`img` (B, C, H, W) with the `hole` (B, 1, H, W) bool pixels filled by push-pull: each
    coarser level averages the known pixels below it; holes take the upsampled coarser value."""
    if not bool(hole.any()):
        return img
    known = (~hole).float()
    H, W = img.shape[-2:]
    if min(H, W) <= 2 or not bool(known.any()):
        mean = (img * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(
            1
        )
        return torch.where(hole, mean, img)
    num = F.avg_pool2d(img * known, 2, ceil_mode=True)
    den = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse = fill_holes(num / den.clamp_min(1e-6), den <= 0)
    up = F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)
    return torch.where(hole, up, img)


def painter_inputs(
    source: torch.Tensor,
    insert: torch.Tensor,
    remove: torch.Tensor,
    albedo: torch.Tensor,
    normal: torch.Tensor,
    depth: torch.Tensor,
    category: torch.Tensor,
    emissive: torch.Tensor,
) -> torch.Tensor:
    """The painter's input (B, 21, H, W) float32 from per-frame maps: source (B, H, W, 3) uint8,
    insert / remove (B, H, W) bool, albedo / normal (B, H, W, 3) float, depth (B, H, W) metres,
    category / emissive (B, H, W) uint8 (0 outside `insert`)."""
    ins = insert.float()
    src = source.float().permute(0, 3, 1, 2) / 255.0  # (B, 3, H, W)
    src = fill_holes(src, remove[:, None]).permute(0, 2, 3, 1)  # (B, H, W, 3)
    inv_depth = torch.where(insert, DEPTH_SCALE_M / (DEPTH_SCALE_M + depth.float()), 0.0)
    cat = F.one_hot(category.long(), N_CATEGORIES + 1)[..., 1:].float()  # (B, H, W, 7)
    lamps = torch.stack([emissive == EMIT_HEAD, emissive == EMIT_TAIL], -1).float()  # (B,H,W,2)
    x = torch.cat(
        [
            src,
            ins[..., None],
            remove.float()[..., None],
            albedo.float() * ins[..., None],
            normal.float() * ins[..., None],
            inv_depth[..., None],
            cat,
            lamps,
        ],
        -1,
    )  # (B, H, W, 21)
    return x.permute(0, 3, 1, 2).contiguous()


def maps_inputs(frames: np.ndarray, maps: EditMaps, idx: slice | np.ndarray) -> torch.Tensor:
    """`painter_inputs` of the frames `idx` of a clip and its `EditMaps`."""
    t = torch.from_numpy
    return painter_inputs(
        t(np.ascontiguousarray(frames[idx])),
        t(np.ascontiguousarray(maps.insert[idx])),
        t(np.ascontiguousarray(maps.remove[idx])),
        t(np.ascontiguousarray(maps.albedo[idx])),
        t(np.ascontiguousarray(maps.normal[idx])),
        t(np.ascontiguousarray(maps.depth[idx])),
        t(np.ascontiguousarray(maps.category[idx])),
        t(np.ascontiguousarray(maps.emissive[idx])),
    )


@torch.no_grad()
def paint(
    model: Painter, frames: np.ndarray, maps: EditMaps, scenario: int = 0, batch: int = 4
) -> np.ndarray:
    """Paint the edit into `frames` (T, H, W, 3) uint8, H and W multiples of 8; returns a new
    (T, H, W, 3) uint8 clip equal to `frames` outside `maps.region` (bit-identical). Frames
    whose region is empty are not run; a clip with an empty region comes back unchanged."""
    T, H, W, _ = frames.shape
    if H % 8 or W % 8:
        raise ConfigError("frames", (H, W), "height and width must be multiples of 8")
    if maps.insert.shape != (T, H, W):
        raise ConfigError("maps", maps.insert.shape, f"must match the frames {(T, H, W)}")
    region = maps.region
    out = frames.copy()
    todo = np.flatnonzero(region.reshape(T, -1).any(1))
    if len(todo) == 0:
        return out
    model.eval()
    device = next(model.parameters()).device
    for i in range(0, len(todo), batch):
        idx = todo[i : i + batch]
        x = maps_inputs(frames, maps, idx).to(device)  # (b, 21, H, W)
        sid = torch.full((len(idx),), int(scenario), dtype=torch.long, device=device)
        rgb = model(x, sid).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()  # (b, H, W, 3)
        rgb = np.round(rgb * 255.0).astype(np.uint8)
        out[idx] = np.where(region[idx][..., None], rgb, frames[idx])
    return out


# Checkpoints --------------------------------------------------------------------------------


def load_painter(name_or_path: str | Path = DEFAULT_PAINTER, device: str = "cpu") -> Painter:
    """A trained painter (committed name under checkpoints/wfm/ or a .safetensors path), eval."""
    from safetensors.torch import load_file

    from amplify.checkpoints import resolve_checkpoint

    path = resolve_checkpoint(name_or_path, "wfm")
    side = path.with_suffix(".json")
    cfg = json.loads(side.read_text())["config"] if side.is_file() else {}
    model = Painter(PainterConfig.from_dict(cfg) if cfg else PainterConfig())
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return model.to(device).eval()


# Baselines ------------------------------------------------------------------------------------


def copy_paste(source: np.ndarray, twin: np.ndarray, maps: EditMaps) -> np.ndarray:
    """The ceiling: the twin's pixels inside `region`, the source elsewhere. # (T, H, W, 3)"""
    return np.where(maps.region[..., None], twin, source)


def flat_box(source: np.ndarray, twin: np.ndarray, maps: EditMaps, ring_px: int = 3) -> np.ndarray:
    """The floor: removed regions filled with the mean source colour of a `ring_px` ring around
    them, then each inserted (`is_generated`) agent's 2D box filled with the mean twin colour of
    that agent's visible pixels. # (T, H, W, 3) uint8"""
    out = source.copy()
    instance = maps.gbuffer.instance
    for t in range(source.shape[0]):
        rem = maps.remove[t]
        if rem.any():
            lab, n = ndimage.label(rem)
            for k in range(1, n + 1):
                blob = lab == k
                ring = ndimage.binary_dilation(blob, iterations=ring_px) & ~rem
                if ring.any():
                    out[t][blob] = source[t][ring].mean(0).round().astype(np.uint8)
        for b in maps.labels.frames[t] if t < len(maps.labels.frames) else ():
            if not b.is_generated:
                continue
            mask = maps.insert[t] & (instance[t] == b.track_id)
            if not mask.any():
                continue
            x0, y0 = int(np.floor(b.x0)), int(np.floor(b.y0))
            x1, y1 = int(np.ceil(b.x1)), int(np.ceil(b.y1))
            out[t, y0:y1, x0:x1] = twin[t][mask].mean(0).round().astype(np.uint8)
    return out
