"""GPU training path on CPU: `amplify.gpu.prepare` bundles tiny real + synthetic clips (leaving the
validation item out), and `amplify.gpu.train` trains a few steps with Ray, MLflow, Hydra,
OmegaConf and PyAV blocked, exporting an fp16 tokenizer that loads by path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("ray", "mlflow", "hydra", "omegaconf", "av")
# Run code with the blocked modules unimportable (sys.modules[name] = None makes import fail).
_BLOCK = "import sys\nfor m in {mods!r}: sys.modules[m] = None\n"


def _write_clip(path: Path, seed: int, frames: int = 20) -> Path:
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(16, 32, 3)).astype(np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 128, 64, "yuv420p"
        for t in range(frames):
            img = np.roll(np.kron(base, np.ones((4, 4, 1), np.uint8)), t, axis=1)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return path


def _run_blocked(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", _BLOCK.format(mods=BLOCKED) + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_gpu_train_imports_without_ray_mlflow_hydra_av():
    r = _run_blocked("import amplify.gpu.train, amplify.gpu.bundle\nprint('ok')")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("ok")


def test_prepare_then_train_on_cpu(tmp_path):
    pytest.importorskip("av")
    from amplify.gpu.bundle import read_bundle
    from amplify.gpu.prepare import PrepareConfig, prepare

    # Tiny data: three synthetic scenes (scene 0 held out) and a real folder of two items, one of
    # them a validation item that must never enter the bundle.
    synth = tmp_path / "synth"
    real = tmp_path / "real"
    synth.mkdir()
    (real / "a").mkdir(parents=True)
    for i in range(3):
        _write_clip(synth / f"scene_{i:04d}_clear_day.mp4", seed=i)
    _write_clip(real / "a" / "train.mp4", seed=10)
    _write_clip(real / "a" / "val.mp4", seed=11)
    manifest = [{"file": f"a/{n}.mp4", "license": "MIT", "weather": "rain", "time_of_day": "day"}
                for n in ("train", "val")]  # fmt: skip
    (real / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "split.json").write_text(json.dumps({"validation": ["a/val.mp4"]}))

    data = tmp_path / "bundle"
    meta = prepare(
        PrepareConfig(
            out=str(data),
            synth=str(synth),
            real=str(real),
            split=str(tmp_path / "split.json"),
            holdout_every=3,
            frames=9,
            width=128,
            height=64,
            max_mb=5,
        ),
        progress=lambda s: None,
    )
    assert [e["file"] for e in meta["real_items"]] == ["a/train.mp4"]
    assert meta["windows"]["real"] == 2 and meta["windows"]["synth"] == 4
    groups, _ = read_bundle(data)
    assert groups["real"].shape == (2, 9, 64, 128, 3) and groups["real"].dtype == np.uint8
    assert groups["heldout"].shape[0] >= 1

    # Train a few steps with Ray, MLflow, Hydra and PyAV unimportable.
    out = tmp_path / "out"
    args = [f"data={data}", f"out={out}", "device=cpu", "model=tok-tiny", "init_from=",
            "steps=3", "batch=2", "frames=5", "crop_h=32", "crop_w=32", "budget_s=240",
            "wfm_model=wfm-grade-tiny", "wfm_init=", "wfm_scenes=1", "wfm_steps=2",
            "wfm_batch=2", "wfm_workers=2"]  # fmt: skip
    r = _run_blocked(
        "from amplify.gpu.train import GpuTrainConfig, run\n"
        "from amplify.gpu.args import parse_args\n"
        f"run(parse_args(GpuTrainConfig, {args!r}))\n"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tokenizer"]["step"] == 3
    # The world model: one scene rendered there under 12 conditions + the 2 real windows.
    assert summary["world_model"]["steps"] == 2, summary["world_model"]
    assert (out / "wfm-gpu.safetensors").is_file() and not (out / "wfm_run" / "last.pt").exists()
    assert meta["real_conditions"] == ["rain_day", "rain_day"]

    from safetensors import safe_open

    from amplify.tokenizer.checkpoint import load_tokenizer

    with safe_open(str(out / "tok-gpu.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype.is_floating_point for k in f.keys())
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float16"}
    side = json.loads((out / "tok-gpu.json").read_text())
    assert side["step"] == 3 and side["train"]["steps"] == 3
    model = load_tokenizer(out / "tok-gpu.safetensors")
    assert model.cfg.name == "tok-gpu"
