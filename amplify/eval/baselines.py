"""Classical augmentation baselines: turn a clear/day clip into a requested condition without a
model, the way a team would with albumentations.

Weather uses the real albumentations transforms (2.x): `RandomRain` (drops redrawn every frame, so
rain moves), `RandomFog` and `RandomSnow` (bleach; one draw for the whole clip, so they do not flicker).
Time of day is `RandomBrightnessContrast` (darken, lower contrast) followed by a tone curve that
albumentations lacks, done in numpy: a gamma and a per-channel gain, blue for night and warm for
dusk. Strengths scale with `Condition.intensity`. Weather is applied first, then the tone (a foggy
night is a fog darkened, not a dark frame fogged white). Deterministic: the same frames,
condition and seed give the same bytes.

`identity` is the other baseline: the source frames unchanged.
"""

from __future__ import annotations

import numpy as np

from amplify.conditions import Condition

# Night: a gamma > 1 crushes mid-tones, the gain tints blue. Dusk: warm gain, slight gamma.
NIGHT_GAIN = np.float32((0.6, 0.65, 0.9))
DUSK_GAIN = np.float32((1.0, 0.75, 0.55))


def identity(frames: np.ndarray, condition: Condition, seed: int = 0) -> np.ndarray:
    """The source frames unchanged (the 'do nothing' baseline).  # (T, H, W, 3) uint8"""
    return np.asarray(frames, np.uint8).copy()


def _weather(frames: np.ndarray, c: Condition, seed: int) -> np.ndarray:
    import albumentations as A  # noqa: N812 (the library's own convention)

    i = float(c.intensity)
    if c.weather == "clear":
        return frames
    if c.weather == "rain":
        rain_type = "drizzle" if i < 0.35 else "heavy" if i < 0.75 else "torrential"
        out = np.empty_like(frames)
        for f, frame in enumerate(frames):
            t = A.Compose(
                [
                    A.RandomRain(
                        slant_range=(-8, -4),
                        rain_type=rain_type,
                        brightness_coefficient=1.0 - 0.3 * i,
                        p=1.0,
                    )
                ],  # fmt: skip
                seed=seed * 100_003 + f,
            )
            out[f] = t(image=np.ascontiguousarray(frame))["image"]
        return out
    if c.weather == "fog":
        t = A.Compose([A.RandomFog(fog_coef_range=(0.3 + 0.6 * i,) * 2, alpha_coef=0.1, p=1.0)],
                      seed=seed)  # fmt: skip
    elif c.weather == "snow":
        lo = 0.1 + 0.3 * i
        # bleach (the default method) with its default gain: closer to the snow twins than
        # "texture" (PSNR 15.1 vs 13.9 dB, SSIM 0.50 vs 0.39 on 3 scenes) and not purple
        t = A.Compose([A.RandomSnow(snow_point_range=(lo, lo), brightness_coeff=2.5,
                                    method="bleach", p=1.0)], seed=seed)  # fmt: skip
    else:  # Condition validates weather; a new one lands here
        raise ValueError(f"no augmentation for weather {c.weather!r}")
    return np.asarray(t(images=np.ascontiguousarray(frames))["images"], np.uint8)


def _tone(frames: np.ndarray, c: Condition, seed: int) -> np.ndarray:
    import albumentations as A  # noqa: N812

    i = float(c.intensity)
    if c.time_of_day == "day":
        return frames
    if c.time_of_day == "night":
        b, k, gamma, gain = -0.05 * i, -0.2, 1.0 + 0.3 * i, NIGHT_GAIN
    else:  # dusk
        b, k, gamma, gain = -0.05 * i, -0.1, 1.0 + 0.15 * i, DUSK_GAIN
    t = A.Compose([A.RandomBrightnessContrast(brightness_limit=(b, b), contrast_limit=(k, k),
                                              p=1.0)], seed=seed)  # fmt: skip
    x = np.asarray(t(images=np.ascontiguousarray(frames))["images"], np.float32) / 255.0
    x = x**gamma * gain  # (T, H, W, 3)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def augment(frames: np.ndarray, condition: Condition, seed: int = 0) -> np.ndarray:
    """`frames` (a clear/day clip, (T, H, W, 3) uint8) made to look like `condition` by
    classical augmentation.  # (T, H, W, 3) uint8"""
    x = np.asarray(frames, np.uint8)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got shape {x.shape}")
    x = _weather(x, condition, int(seed))
    return _tone(x, condition, int(seed))
