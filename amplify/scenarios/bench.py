"""Time scenario variations as the job makes them: `python -m amplify.scenarios.bench [threads]`.

One window of 17 frames at 256 x 128 (a real clip from ../shared/data/real when present, else a
synthetic render), on the ground-plane world as real footage gets it; per template: the edit,
its rasterisation, the painter and the grade world model to `rain_night`, i.e. one scenario
variation. Prints one JSON line: seconds per variation per template, and the load average.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

TEMPLATES = ("pedestrian_crossing", "cut_in", "lead_braking", "add_traffic")
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def window() -> tuple[np.ndarray, str]:
    from amplify.io.ingest import IngestConfig, read_windows

    clips = sorted(REAL.glob("*.mp4")) if REAL.is_dir() else []
    if clips:
        cfg = IngestConfig(fps=10, width=256, height=128, window=17, stride=17, max_windows=1)
        return read_windows(clips[0], cfg)[0].frames, clips[0].name
    from amplify.conditions import Condition
    from amplify.synth.render import render_clip
    from amplify.synth.scene import sample_scene

    clip = render_clip(sample_scene(1), Condition(), 17, 256, 128, 10.0)
    return clip.rgb, "synthetic scene 1"


def bench(threads: int = 2, repeats: int = 3) -> dict:
    import torch

    from amplify.conditions import Condition, scenario_id
    from amplify.scenarios.edit import render_edit
    from amplify.scenarios.library import TEMPLATES as LIB
    from amplify.scenarios.library import sample_spec
    from amplify.scenarios.world import World
    from amplify.wfm.generate import Generator

    torch.set_num_threads(threads)
    frames, name = window()
    gen = Generator()
    _ = gen.painter  # loaded once per actor in a job: not part of a variation
    T, H, W = frames.shape[:3]
    world = World.from_clip(T, W, H, 10.0)
    cond = Condition("rain", "night")
    out: dict[str, float] = {}
    for t in TEMPLATES:
        times = []
        for r in range(repeats + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            edit = LIB[t].build(sample_spec(t, r).params, world)
            maps = render_edit(world, edit)
            gen.generate_many(frames, [(cond, 0)], edit=maps, scenario=scenario_id(t))
            times.append(time.perf_counter() - t0)
        out[t] = float(np.median(times[1:]))
    return {
        "bench": "scenarios",
        "clip": name,
        "frames": list(frames.shape),
        "threads": threads,
        "seconds_per_variation": out,
        "max_s": max(out.values()),
        "loadavg_1min": os.getloadavg()[0],
    }


if __name__ == "__main__":
    print(json.dumps(bench(int(sys.argv[1]) if len(sys.argv) > 1 else 2)))
