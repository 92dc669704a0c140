"""Appearance pass: a G-buffer shaded into RGB under one condition (weather x time of day).

Physically motivated, cheap: sky by elevation with a sun glow; Lambert sun plus hemispheric
ambient; at dusk and night street lamps, vehicle and ego headlights as point/spot lights (computed
at half resolution: light is smooth), emissive lamps, tail lights and windows with bloom; fog as
Koschmieder extinction `exp(-beta * depth)` toward a fog colour; rain darkens and wets the ground
(mirror reflection about the horizon, Fresnel-weighted) and adds streaks; snow covers upward
surfaces and the road outside wheel tracks, and falls as flakes. Streaks and flakes come from
`condition_rng`, so the geometry is never touched by a condition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amplify.synth.camera import dot
from amplify.synth.classes import CLASS_ID
from amplify.synth.conditions import Condition, condition_rng
from amplify.synth.raster import (
    EMIT_HEAD,
    EMIT_LAMP,
    EMIT_TAIL,
    EMIT_WINDOW,
    EMIT_WINDOW_LIT,
    GBuffer,
    row_view,
)


@dataclass(frozen=True)
class Light:
    """Lighting of a time of day (clear weather)."""

    sun_elev: float  # radians
    sun_azim: float  # radians, + to the right of the road
    sun: tuple[float, float, float]  # direct colour
    ambient: tuple[float, float, float]
    zenith: tuple[float, float, float]
    horizon: tuple[float, float, float]
    lights: float  # how strongly lamps and headlights show (0 by day)
    haze: tuple[float, float, float]  # fog colour


LIGHTS = {
    "day": Light(
        sun_elev=0.95, sun_azim=0.5, sun=(0.80, 0.77, 0.70), ambient=(0.42, 0.45, 0.52),
        zenith=(0.22, 0.42, 0.82), horizon=(0.68, 0.78, 0.92), lights=0.0,
        haze=(0.76, 0.78, 0.80),
    ),
    # low sun ahead-left, warm direct light, orange horizon under a violet zenith
    "dusk": Light(
        sun_elev=0.06, sun_azim=-0.35, sun=(0.95, 0.50, 0.22), ambient=(0.26, 0.20, 0.24),
        zenith=(0.16, 0.17, 0.38), horizon=(0.98, 0.55, 0.26), lights=0.45,
        haze=(0.62, 0.48, 0.42),
    ),
    # no sun: faint ambient, the scene is lit by lamps, headlights and windows
    "night": Light(
        sun_elev=-0.5, sun_azim=0.0, sun=(0.0, 0.0, 0.0), ambient=(0.030, 0.034, 0.055),
        zenith=(0.005, 0.008, 0.025), horizon=(0.04, 0.05, 0.09), lights=1.0,
        haze=(0.07, 0.07, 0.085),
    ),
}  # fmt: skip
EMIT = {
    EMIT_HEAD: (1.6, 1.55, 1.35),
    EMIT_TAIL: (1.3, 0.08, 0.05),
    EMIT_LAMP: (1.6, 1.35, 0.95),
    EMIT_WINDOW_LIT: (0.85, 0.65, 0.36),
}
LAMP_RGB = np.float32((1.0, 0.80, 0.55))
HEAD_RGB = np.float32((1.0, 0.97, 0.90))


def shade_clip(g: GBuffer, cond: Condition, seed: int) -> np.ndarray:
    """RGB frames of `g` under `cond`; `seed` (the scene's) seeds rain and snow per frame.
    # (T, H, W, 3) uint8"""
    T, H, W = g.shape
    i = float(cond.intensity)
    lt = LIGHTS[cond.time_of_day]
    f32 = np.float32
    wet = i if cond.weather == "rain" else 0.0
    snow = i if cond.weather == "snow" else 0.0
    overcast = {"clear": 0.0, "rain": 0.85, "fog": 0.7, "snow": 0.75}[cond.weather] * (
        0.4 + 0.6 * i
    )
    # Deeper dusk/night with intensity; night by default is lit only by lamps and headlights.
    dark = {"day": 1.0, "dusk": 1.0 - 0.35 * i, "night": 1.0 - 0.4 * i}[cond.time_of_day]

    # 1. Sky: gradient by elevation, greyed by cloud cover, sun glow on a clear sky.
    ray = g.rays / np.sqrt(dot(g.rays, g.rays))[..., None]  # (H, W, 3)
    elev = np.clip(-ray[..., 1], 0.0, 1.0)
    wgt = np.clip(elev / 0.45, 0.0, 1.0)[..., None] ** 0.6
    zen, hor = f32(lt.zenith), f32(lt.horizon)
    grey = f32(sum(lt.horizon) / 3 * 0.9 + sum(lt.zenith) / 3 * 0.1) * f32((0.97, 1.0, 1.03))
    zen, hor = zen + overcast * (grey * 0.9 - zen), hor + overcast * (grey * 1.05 - hor)
    sky = (hor + wgt * (zen - hor)) * dark  # (H, W, 3)
    sun_dir = f32(
        (
            np.sin(lt.sun_azim) * np.cos(lt.sun_elev),
            -np.sin(lt.sun_elev),
            np.cos(lt.sun_azim) * np.cos(lt.sun_elev),
        )
    )
    if lt.sun[0] > 0:
        cosang = np.clip(dot(ray, sun_dir), 0.0, 1.0)
        glow = 0.5 * cosang**24 + 2.5 * (cosang > 0.9995).astype(f32)
        sky = sky + (1 - overcast) * glow[..., None] * f32(lt.sun)
    if cond.time_of_day != "night" and overcast < 0.5:
        # fair-weather clouds: a few octaves of sines over (azimuth, elevation), thinning upward
        az = np.arctan2(ray[..., 0], ray[..., 2])
        e = elev + 0.02
        n = (np.sin(az * 9.0 + 1.3) * np.sin(e * 31.0 + np.sin(az * 5.0))
             + 0.6 * np.sin(az * 23.0 - e * 17.0 + 0.7) * np.sin(e * 57.0 + az * 3.0)
             + 0.4 * np.sin(az * 47.0 + e * 29.0) * np.sin(e * 83.0 - az * 11.0))  # fmt: skip
        cover = np.clip((n - 0.35) * 1.2, 0.0, 1.0) * np.clip(1.2 - elev * 2.0, 0.0, 1.0)
        cloud = f32(lt.sun) * 0.55 + f32(lt.ambient) * 0.9
        sky = sky + ((1 - overcast) * 0.8 * cover)[..., None] * (cloud * dark - sky)
    if cond.time_of_day == "night":
        sky = sky + f32((0.06, 0.045, 0.03)) * np.exp(-elev / 0.05)[..., None]  # city glow

    # 2. Surfaces: sun (dimmed by clouds) and hemispheric ambient.
    alb = g.albedo  # (T, H, W, 3)
    nrm = g.normal
    sem = g.semantic
    is_sky = sem == CLASS_ID["sky"]
    ground = np.isin(
        sem, (CLASS_ID["road"], CLASS_ID["lane_marking"], CLASS_ID["sidewalk"], CLASS_ID["terrain"])
    )
    up = np.clip(-nrm[..., 1], 0.0, 1.0)  # (T, H, W)
    if snow > 0:
        white = f32((0.90, 0.92, 0.96))
        road = np.isin(sem, (CLASS_ID["road"], CLASS_ID["lane_marking"]))
        q = np.mod(g.ground_d, g.lane_width) - g.lane_width / 2
        tracks = np.exp(-(((np.abs(q) - 0.85) / 0.5) ** 2))
        cover = np.where(road, snow * (0.9 - 0.55 * tracks), snow * 0.95 * up)
        cover = np.where(sem == CLASS_ID["vegetation"], np.maximum(cover, 0.45 * snow), cover)
        alb = alb + cover[..., None] * (white - alb)
    if wet > 0:
        alb = alb * (1.0 - 0.5 * wet * ground.astype(f32))[..., None]
    sun_vis = (1.0 - overcast) * dark
    amb = f32(lt.ambient) * (1.0 + 0.8 * overcast * (cond.time_of_day != "night")) * dark
    light = (0.65 + 0.35 * up)[..., None] * amb  # (T, H, W, 3)
    if sun_vis > 0:
        lambert = np.clip(dot(nrm, -sun_dir), 0.0, 1.0)  # (T, H, W)
        light += lambert[..., None] * (f32(lt.sun) * f32(sun_vis))
    if lt.lights > 0:
        # half-resolution light added to 2x2 pixel blocks through a broadcast view: no copy
        pl = f32(lt.lights) * _point_lights(g)  # (T, H/2, W/2, 3)
        light.reshape(T, H // 2, 2, W // 2, 2, 3)[...] += pl[:, :, None, :, None, :]
    rgb = np.multiply(alb, light, out=light)

    # 3. Emitters (lamps, head and tail lights, lit windows) by table lookup on the emissive
    # code; unlit glass reflects the sky; then the sky itself.
    on = 0.35 + 0.65 * lt.lights  # vehicles drive with lights on in every condition
    lut = np.zeros((8, 3), f32)
    for code, colour in EMIT.items():
        lut[code] = f32(colour) * (on if code in (EMIT_HEAD, EMIT_TAIL) else lt.lights)
    # whole-row gathers through a 12-byte view: 3x faster than indexing (N, 3)
    emit = row_view(lut)[g.emissive].view(f32).reshape(rgb.shape)  # (T, H, W, 3)
    lut[EMIT_WINDOW] = 0.25 * hor * dark
    rgb += row_view(lut)[g.emissive].view(f32).reshape(rgb.shape)
    np.copyto(rgb, np.broadcast_to(sky, rgb.shape), where=is_sky[..., None])

    # 4. Wet ground mirrors what stands above it (reflection about the horizon row).
    if wet > 0:
        h = g.horizon_row
        rows = np.arange(H)
        src = np.clip(np.round(2 * h - rows - 1).astype(int), 0, H - 1)
        depth_gain = np.clip((rows - h) / (H - h), 0, 1)  # grazing (far) ground reflects more
        fres = f32(wet * (0.55 - 0.35 * depth_gain))[None, :, None, None] * ground[..., None]
        rgb += fres * (rgb[:, src] - rgb)

    # 5. Bloom around bright emitters (more in fog and rain: scattering).
    if lt.lights > 0 or cond.weather != "clear":
        # at half resolution: a glow has no sharp detail, and it is 4x cheaper
        spread = 1.0 + 1.5 * (cond.weather in ("fog", "rain")) * i
        small = (
            emit[:, 0::2, 0::2] + emit[:, 1::2, 0::2] + emit[:, 0::2, 1::2] + emit[:, 1::2, 1::2]
        )
        small = _blur(small, max(1, int(round(0.006 * W * spread))))
        small = _blur(small, max(1, int(round(0.015 * W * spread))))
        small *= f32(0.25 * (0.9 + 0.8 * spread * (lt.lights > 0)))
        # upsample 2x by broadcasting into a (T, h, 2, w, 2, 3) view of rgb: no copy
        rgb.reshape(T, H // 2, 2, W // 2, 2, 3)[...] += small[:, :, None, :, None, :]

    # 6. Participating media: fog (dense), haze with rain and snow (light).
    beta = {"clear": 0.0015, "rain": 0.02, "fog": 0.09, "snow": 0.03}[cond.weather]
    beta = beta * (0.25 + 0.75 * i) if cond.weather != "clear" else beta
    haze = f32(lt.haze) * dark
    if cond.weather == "snow":
        haze = haze * 1.12
    trans = np.exp(-beta * g.depth)[..., None]  # (T, H, W, 1)
    if lt.lights > 0:  # light scattered by the medium around emitters
        rgb += emit * (0.15 * (1.0 - trans))
    rgb -= haze
    rgb *= trans
    rgb += haze

    # 7. Precipitation drawn per frame from the condition RNG.
    if cond.weather in ("rain", "snow"):
        for f in range(T):
            rng = condition_rng(seed, cond, f)
            if cond.weather == "rain":
                rain_streaks(rgb[f], rng, i, haze)
            else:
                snow_flakes(rgb[f], rng, i, dark)
    if cond.weather == "rain":  # rain veils contrast a little
        rgb *= 1 - 0.12 * i
        rgb += 0.12 * i * haze
    rgb *= 255.0
    rgb += 0.5
    return np.clip(rgb, 0.0, 255.0, out=rgb).astype(np.uint8)


def _point_lights(g: GBuffer) -> np.ndarray:
    """Light from street lamps, other vehicles' headlights and the ego's own, computed at quarter
    resolution (light varies slowly; 16x fewer pixels), upsampled bilinearly to half resolution.
    # (T, H/2, W/2, 3)"""
    T, H, W = g.shape
    s = 4
    d2 = g.depth[:, s // 2 :: s, s // 2 :: s]  # (T, h, w)
    p = g.rays[None, s // 2 :: s, s // 2 :: s] * d2[..., None]  # (T, h, w, 3) level frame
    n = g.normal[:, s // 2 :: s, s // 2 :: s]
    h, w = d2.shape[1:]
    lamp_i = np.zeros((T, h * w), np.float32)
    head_i = np.zeros((T, h * w), np.float32)
    # One frame at a time: light counts differ per frame, and padding costs more than the loop.
    for f in range(T):
        pf, nf = p[f].reshape(-1, 3), n[f].reshape(-1, 3)  # (n, 3)
        lamp = g.lamps[f].astype(np.float32)
        lamp = lamp[(lamp[:, 2] > -15) & (lamp[:, 2] < 80)]  # (K, 3)
        v = lamp[:, None, :] - pf[None]  # (K, n, 3)
        dist2 = dot(v, v)
        facing = np.clip(dot(v, nf[None]) / np.sqrt(dist2 + 1e-6), 0.0, 1.0)
        # sums over lights run along axis 0: row-by-row adds, the same bits on every run
        lamp_i[f] = (0.7 * 20.0 / (20.0 + dist2) * (0.3 + 0.7 * facing)).sum(0)
        head = g.heads[f].astype(np.float32)
        head = head[(head[:, 2] > -10) & (head[:, 2] < 70)]  # (M, 6)
        v = pf[None] - head[:, None, :3]  # (M, n, 3)
        dist = np.sqrt(dot(v, v)) + 1e-3
        cone = np.clip((dot(v, head[:, None, 3:]) / dist - 0.85) / 0.1, 0.0, 1.0)
        head_i[f] = (0.8 * cone * 30.0 / (30.0 + dist * dist)).sum(0)
    # ego headlights: a cone ahead of the camera, lighting the road from 3 m on
    pf = p.reshape(T, -1, 3)
    z = np.maximum(pf[..., 2], 0.1)
    cone = np.exp(-((pf[..., 0] / (0.35 * z + 0.6)) ** 2)) * np.clip((z - 2.0) / 4.0, 0, 1)
    head_i += 0.4 * cone * 250.0 / (250.0 + z * z) * (pf[..., 1] > 0.5)
    lamp_i, head_i = lamp_i.reshape(T, h, w, 1), head_i.reshape(T, h, w, 1)
    return _upsample(lamp_i * LAMP_RGB + head_i * HEAD_RGB, H // 2, W // 2)


def _upsample(x: np.ndarray, h2: int, w2: int) -> np.ndarray:
    """Bilinear upsampling of (T, h, w, C) samples taken at full-resolution pixels 4i + 2 to the
    half-resolution grid (T, h2, w2, C): half-res pixel j is centred on full-res 2j + 1."""
    for axis, n in ((1, h2), (2, w2)):
        m = x.shape[axis]
        pos = np.clip((2 * np.arange(n) + 1 - 2.5) / 4, 0, m - 1).astype(np.float32)
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, m - 1)
        shape = [1, 1, 1, 1]
        shape[axis] = n
        t = (pos - i0).reshape(shape)
        x = np.take(x, i0, axis=axis) * (1 - t) + np.take(x, i1, axis=axis) * t
    return x


def _blur(x: np.ndarray, r: int) -> np.ndarray:
    """Box blur of radius `r` over H and W of (T, H, W, C), by cumulative sums."""
    for axis in (1, 2):
        n = x.shape[axis]
        c = np.cumsum(x, axis=axis, dtype=np.float32)
        pad = [(0, 0)] * x.ndim
        pad[axis] = (1, 0)
        c = np.pad(c, pad)
        hi = np.minimum(np.arange(n) + r + 1, n)
        lo = np.maximum(np.arange(n) - r, 0)
        x = (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) / (2 * r + 1)
    return x


def rain_streaks(img: np.ndarray, rng: np.random.Generator, i: float, haze: np.ndarray) -> None:
    """Slanted bright streaks, blended in place.  img: (H, W, 3)"""
    H, W, _ = img.shape
    n = int(i * H * W / 45)
    x0 = rng.uniform(0, W, n)
    y0 = rng.uniform(-0.1 * H, H, n)
    length = rng.uniform(0.04, 0.12, n) * H
    alpha = rng.uniform(0.12, 0.3, n).astype(np.float32)
    steps = np.linspace(0, 1, 14)
    xs = (x0[:, None] + 0.18 * length[:, None] * steps).astype(int).ravel()
    ys = (y0[:, None] + length[:, None] * steps).astype(int).ravel()
    a = np.repeat(alpha, steps.size)
    ok = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    xs, ys, a = xs[ok], ys[ok], a[ok, None]
    col = np.float32((0.80, 0.82, 0.86)) * 0.6 + haze * 0.6
    img[ys, xs] = img[ys, xs] * (1 - a) + a * col


def snow_flakes(img: np.ndarray, rng: np.random.Generator, i: float, dark: float) -> None:
    """Flakes: small bright dots, some larger (near the camera), blended in place."""
    H, W, _ = img.shape
    n = int(i * H * W / 55)
    xs = rng.integers(0, W, n)
    ys = rng.integers(0, H, n)
    big = rng.uniform(0, 1, n) < 0.25
    a = rng.uniform(0.5, 0.9, n).astype(np.float32)[:, None]
    col = np.float32((0.95, 0.95, 0.97)) * max(dark, 0.55)
    img[ys, xs] = img[ys, xs] * (1 - a) + a * col
    bx, by, ba = xs[big], ys[big], a[big] * 0.8
    for dx, dy in ((1, 0), (0, 1), (1, 1)):
        x2, y2 = np.minimum(bx + dx, W - 1), np.minimum(by + dy, H - 1)
        img[y2, x2] = img[y2, x2] * (1 - ba) + ba * col
