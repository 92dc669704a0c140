"""Tokenizer throughput: encode and decode frames per second at a fixed size (default 256x128).

`bench()` returns a dict (fps, ms per clip, GFLOP per frame counted by torch's FlopCounterMode);
`python -m amplify.tokenizer.bench [name] [threads] [random]` prints it as JSON (`random`:
untrained weights, same speed).
"""

from __future__ import annotations

import json
import os
import platform
import time

import torch


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


@torch.no_grad()
def bench(
    tokenizer: str = "tok-small",
    width: int = 256,
    height: int = 128,
    frames: int = 17,
    batch: int = 1,
    threads: int = 2,
    repeats: int = 5,
    pretrained: bool = True,
) -> dict:
    """Best-of-`repeats` encode and decode throughput, float32, on CPU."""
    from amplify.tokenizer.checkpoint import load_tokenizer
    from amplify.tokenizer.config import get_config
    from amplify.tokenizer.model import CausalVideoTokenizer

    torch.set_num_threads(threads)
    if pretrained:
        model = load_tokenizer(tokenizer)
    else:
        model = CausalVideoTokenizer(get_config(tokenizer)).eval()
    x = torch.rand(batch, 3, frames, height, width) * 2 - 1
    z = model.encode(x)
    model.decode(z)  # warm up
    t_enc, t_dec = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        z = model.encode(x)
        t1 = time.perf_counter()
        model.decode(z)
        t2 = time.perf_counter()
        t_enc.append(t1 - t0)
        t_dec.append(t2 - t1)
    n = batch * frames
    te, td = min(t_enc), min(t_dec)
    f_enc, f_dec = _flops(lambda: model.encode(x)), _flops(lambda: model.decode(z))
    return {
        "tokenizer": tokenizer,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "size": f"{width}x{height}",
        "frames": frames,
        "batch": batch,
        "threads": threads,
        "encode_fps": round(n / te, 1),
        "decode_fps": round(n / td, 1),
        "roundtrip_fps": round(n / (te + td), 1),
        "encode_gflop_per_frame": round(f_enc / n / 1e9, 3),
        "decode_gflop_per_frame": round(f_dec / n / 1e9, 3),
        "achieved_gflops": round((f_enc + f_dec) / (te + td) / 1e9, 1),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    import sys

    name = sys.argv[1] if len(sys.argv) > 1 else "tok-small"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    random_init = len(sys.argv) > 3 and sys.argv[3] == "random"
    print(json.dumps(bench(name, threads=threads, pretrained=not random_init)))
