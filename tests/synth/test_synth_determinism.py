"""Same config, same bytes: every file of two corpus runs hashes the same."""

from __future__ import annotations

import hashlib
from pathlib import Path

from amplify.synth.corpus import SynthConfig, make_corpus

TINY = dict(clips=1, seed=7, frames=4, width=64, height=32, weathers=("clear", "snow"),
            times_of_day=("day", "night"))  # fmt: skip


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_two_runs_write_identical_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    index = make_corpus(SynthConfig(out=str(a), **TINY), progress=lambda _: None)
    make_corpus(SynthConfig(out=str(b), **TINY), progress=lambda _: None)
    ha, hb = _hashes(a), _hashes(b)
    assert ha == hb
    # 4 conditions x (video, labels, gt) + index
    assert len(ha) == 13 and "_corpus.json" in ha
    assert sorted(index["files"]) == sorted(k for k in ha if k != "_corpus.json")


def test_worker_count_does_not_change_bytes(tmp_path: Path) -> None:
    kw = {**TINY, "clips": 2, "frames": 2, "weathers": ("rain",), "times_of_day": ("dusk",)}
    make_corpus(SynthConfig(out=str(tmp_path / "a"), workers=1, **kw), progress=lambda _: None)
    make_corpus(SynthConfig(out=str(tmp_path / "b"), workers=2, **kw), progress=lambda _: None)
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")


def test_scene_seed_changes_the_scene(tmp_path: Path) -> None:
    from amplify.conditions import Condition
    from amplify.synth.render import render_clip
    from amplify.synth.scene import sample_scene

    c = Condition("clear", "day", 0.5)
    x = render_clip(sample_scene(1), c, 2, 64, 32, 10.0)
    y = render_clip(sample_scene(2), c, 2, 64, 32, 10.0)
    assert not (x.depth == y.depth).all()
