"""Time one variation: `python -m amplify.wfm.bench [checkpoint] [threads] [repeats]`.

Prints the wall time of `Generator.generate` on a 17 x 128 x 256 synthetic clip (the default job
shape) with the default steps and guidance, and the load average beside it (shared machines).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch


def main(argv: list[str]) -> dict:
    from amplify.conditions import Condition
    from amplify.wfm.generate import Generator

    ckpt = argv[0] if argv else "wfm-grade"
    threads = int(argv[1]) if len(argv) > 1 else 2
    repeats = int(argv[2]) if len(argv) > 2 else 3
    torch.set_num_threads(threads)
    gen = Generator(ckpt)
    frames = np.random.default_rng(0).integers(0, 255, (17, 128, 256, 3), dtype=np.uint8)
    gen.generate(frames[:5], Condition("rain", "night"))  # warm-up
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        gen.generate(frames, Condition("fog", "dusk"), seed=i)
        times.append(time.perf_counter() - t0)
    return {
        "checkpoint": str(gen.checkpoint_path),
        "threads": threads,
        "steps": gen.sampler.steps,
        "seconds_per_variation": times,
        "median_s": float(np.median(times)),
        "loadavg_1min": os.getloadavg()[0],
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
