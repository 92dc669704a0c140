"""`bench_synth`: rendering speed of the synthetic corpus (video encoding not included)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor

from amplify.conditions import Condition, all_conditions
from amplify.synth.raster import rasterize_clip
from amplify.synth.render import render_clip, render_twins
from amplify.synth.scene import sample_scene
from amplify.synth.shade import shade_clip

_CONDS = ("clear_day", "rain_night", "fog_dusk", "snow_day")


def _render_scenes(seeds: list[int], frames: int, width: int, height: int, fps: float) -> int:
    n = 0
    for seed in seeds:
        cond = Condition.parse(_CONDS[seed % len(_CONDS)], 0.7)  # a mix of cheap and costly
        render_clip(sample_scene(seed), cond, frames, width, height, fps)
        n += frames
    return n


def bench_synth(
    frames: int = 33,
    width: int = 256,
    height: int = 128,
    fps: float = 10.0,
    scenes: int = 4,
    workers: int | None = None,
) -> dict:
    """Frames per second of `render_clip` (one scene, one condition: geometry + shading; also
    per CPU second of the process, which a busy shared machine does not distort as much), of
    its two passes, of `render_twins` (one geometry pass shaded under all 12 conditions, as the
    corpus does), and of `render_clip` over `workers` processes (default: every core)."""
    workers = workers or os.cpu_count() or 1
    seeds = list(range(scenes))
    _render_scenes(seeds[:1], 3, width, height, fps)  # warm up imports and caches

    t0, c0 = time.perf_counter(), time.process_time()
    n = _render_scenes(seeds, frames, width, height, fps)
    single = n / (time.perf_counter() - t0)
    # CPU seconds of this process: what one dedicated core would give, on a shared machine
    single_cpu = n / (time.process_time() - c0)

    scene = sample_scene(0)
    t0 = time.perf_counter()
    g = rasterize_clip(scene, frames, width, height, fps)
    raster = frames / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for k, name in enumerate(_CONDS):
        shade_clip(g, Condition.parse(name, 0.7), k)
    shade = len(_CONDS) * frames / (time.perf_counter() - t0)
    conds = all_conditions()
    t0, c0 = time.perf_counter(), time.process_time()
    render_twins(scene, conds, frames, width, height, fps)
    twins = len(conds) * frames / (time.perf_counter() - t0)
    twins_cpu = len(conds) * frames / (time.process_time() - c0)

    parallel = single
    if workers > 1:
        chunks = [seeds[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            list(
                pool.map(
                    _render_scenes,
                    [[0]] * workers,
                    [3] * workers,
                    [width] * workers,
                    [height] * workers,
                    [fps] * workers,
                )
            )
            t0 = time.perf_counter()
            n = sum(
                pool.map(
                    _render_scenes,
                    chunks,
                    [frames] * workers,
                    [width] * workers,
                    [height] * workers,
                    [fps] * workers,
                )
            )
            parallel = n / (time.perf_counter() - t0)
    return {
        "width": width,
        "height": height,
        "frames_per_clip": frames,
        "render_clip_fps": round(single, 1),
        "render_clip_fps_per_cpu_second": round(single_cpu, 1),
        "raster_fps": round(raster, 1),
        "shade_fps": round(shade, 1),
        "twins_fps": round(twins, 1),
        "twins_fps_per_cpu_second": round(twins_cpu, 1),
        "parallel_fps": round(parallel, 1),
        "workers": workers,
        "cpu_count": os.cpu_count(),
    }


if __name__ == "__main__":
    print(bench_synth())
