"""The contact sheet writes a PNG of the condition grid; the benchmark reports frames/s."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from amplify.synth.bench import bench_synth
from amplify.synth.contact_sheet import contact_sheet


def test_contact_sheet_grid(tmp_path: Path) -> None:
    out = contact_sheet(1, tmp_path / "sheet.png", frame=1, width=64, height=32, scale=1)
    with Image.open(out) as img:
        size = img.size
    # 3 columns (times of day) x (4 weathers + 1 ground-truth row), captions above each tile
    assert size[0] == 3 * 64 and size[1] > 5 * 32


def test_bench_reports_fps() -> None:
    r = bench_synth(frames=2, width=64, height=32, scenes=1, workers=1)
    assert r["render_clip_fps"] > 0 and r["twins_fps"] > 0 and r["width"] == 64
