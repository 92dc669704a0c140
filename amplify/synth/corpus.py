"""`amplify synth`: write a labelled synthetic corpus, every scene under every condition.

Layout under `cfg.out`:
    scene_0000_rain_night.mp4           H.264 yuv420p video
    scene_0000_rain_night.labels.json   boxes, tracks, ego pose, intrinsics (amplify.labels)
    _gt/scene_0000_rain_night.npz       depth, semantic, instance, ego_pose, intrinsics, times
    _corpus.json                        index: config, scenes, seeds, conditions, files
With `scenarios=[cut_in, ...]`, each scene is also edited by each template (parameters drawn
from the scene's seed, `amplify.scenarios`) and the edited scene rendered under every condition:
    scene_0000_rain_night+cut_in.mp4           the scenario twin (same scene, same weather seed)
    scene_0000_rain_night+cut_in.labels.json   its labels: inserted agents `is_generated`, removed
                                               ones gone; `extra.scenario`, `extra.scenario_params`
    _gt/scene_0000_rain_night+cut_in.npz       its depth, semantic and instance maps
A template with nothing to edit in a scene (no vehicle to swap, ...) is skipped there and listed
under the scene's `skipped` in the index.
The dense ground truth of a scene is the same under every condition (paired twins), so the
per-condition `_gt` files are hard links to one file where the filesystem allows it.
Same config, same bytes in every file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from amplify.conditions import TIMES_OF_DAY, WEATHERS, all_conditions
from amplify.errors import ConfigError
from amplify.labels import write_labels
from amplify.synth.classes import AGENT_CATEGORIES, SEMANTIC_CLASSES, SKY_DEPTH
from amplify.synth.gtfile import write_gt
from amplify.synth.render import check_size, render_twins
from amplify.synth.scene import sample_scene

FORMAT = "amplify.synth.corpus"
VERSION = 1


@dataclass(frozen=True)
class SynthConfig:
    """`amplify synth`: `clips` scenes (seeds from `seed`), each rendered under every weather x
    time of day in `weathers` / `times_of_day` as paired twins with labels and dense ground
    truth; `scenarios=[cut_in,...]` also writes each scene edited by each template (module
    docstring of amplify/synth/corpus.py for the layout)."""

    out: str = "synth_out"
    clips: int = 4  # scenes; each is written under every (weather, time of day)
    seed: int = 0
    frames: int = 33
    width: int = 256
    height: int = 128
    fps: float = 10.0
    weathers: tuple[str, ...] = field(default_factory=lambda: WEATHERS)
    times_of_day: tuple[str, ...] = field(default_factory=lambda: TIMES_OF_DAY)
    intensity: float = 0.7
    crf: int = 18
    workers: int = 1  # processes writing scenes in parallel; 0 = one per CPU core
    scenarios: tuple[str, ...] = ()  # templates rendered as twins of every scene (none: off)

    def __post_init__(self) -> None:
        # Lists from YAML/CLI become tuples: the config stays hashable and immutable.
        object.__setattr__(self, "weathers", _names("weathers", self.weathers, WEATHERS))
        object.__setattr__(
            self, "times_of_day", _names("times_of_day", self.times_of_day, TIMES_OF_DAY)
        )
        from amplify.conditions import SCENARIOS

        object.__setattr__(self, "scenarios", _names("scenarios", self.scenarios, SCENARIOS, True))
        if not isinstance(self.out, str | os.PathLike) or not str(self.out):
            raise ConfigError("out", self.out, "must be a non-empty path")
        if isinstance(self.clips, bool) or not isinstance(self.clips, int) or self.clips < 1:
            raise ConfigError("clips", self.clips, "must be a positive integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", self.seed, "must be a non-negative integer")
        check_size(self.frames, self.width, self.height, self.fps)
        x = self.intensity
        if (
            isinstance(x, bool)
            or not isinstance(x, int | float)
            or not math.isfinite(x)
            or not 0 <= x <= 1
        ):
            raise ConfigError("intensity", x, "must be a number in [0, 1]")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError("workers", self.workers, "must be an integer >= 0 (0 = all cores)")
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ConfigError("crf", self.crf, "must be an integer in [0, 51]")


def _names(
    key: str, value: object, allowed: tuple[str, ...], empty_ok: bool = False
) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, list | tuple) or not (value or empty_ok):
        raise ConfigError(key, value, f"must be a non-empty list of {list(allowed)}")
    for v in value:
        if v not in allowed:
            raise ConfigError(key, value, f"{v!r} is not one of {list(allowed)}")
    if len(set(value)) != len(value):
        raise ConfigError(key, value, "has duplicates")
    return tuple(value)


def scene_seed(seed: int, index: int) -> int:
    """The seed of scene `index` of a corpus seeded `seed` (independent streams per scene)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def clip_name(index: int, weather: str, time_of_day: str) -> str:
    return f"scene_{index:04d}_{weather}_{time_of_day}"


def make_corpus(cfg: SynthConfig, progress: Callable[[str], None] = print) -> dict:
    """Render and write the corpus of `cfg`; return the index (also written to `_corpus.json`).

    Scenes are independent: with `cfg.workers > 1` they are written by a process pool (each
    scene's files depend only on its seed, so the bytes do not depend on the worker count).
    """
    out = Path(cfg.out)
    (out / "_gt").mkdir(parents=True, exist_ok=True)
    workers = cfg.workers or os.cpu_count() or 1
    scenes = []
    if workers == 1 or cfg.clips == 1:
        for i in range(cfg.clips):
            scenes.append(_write_scene(cfg, i))
            progress(_line(cfg, scenes[-1]))
    else:
        with ProcessPoolExecutor(min(workers, cfg.clips)) as pool:
            for entry in pool.map(_write_scene, [cfg] * cfg.clips, range(cfg.clips)):
                scenes.append(entry)
                progress(_line(cfg, entry))
    for s in scenes:
        s.pop("timing")
    conditions = all_conditions(cfg.weathers, cfg.times_of_day, float(cfg.intensity))
    files = [f for s in scenes for c in s["clips"] for f in (c["video"], c["labels"], c["gt"])]
    files += [f for s in scenes for t in s.get("scenarios", []) for c in t["clips"]
              for f in (c["video"], c["labels"], c["gt"])]  # fmt: skip
    index = {
        "format": FORMAT,
        "version": VERSION,
        # The output folder and worker count are left out: the index must not depend on them.
        "config": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(cfg).items()
            if k not in ("out", "workers")
        },
        "conditions": [c.as_dict() for c in conditions],
        "semantic_classes": list(SEMANTIC_CLASSES),
        "categories": list(AGENT_CATEGORIES),
        "sky_depth_m": SKY_DEPTH,
        "scenes": scenes,
        "files": sorted(files),
    }
    tmp = out / f"_corpus.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(index, sort_keys=True, indent=1))
    os.replace(tmp, out / "_corpus.json")
    progress(
        f"synth: wrote {len(files)} files for {cfg.clips} scenes x {len(conditions)} conditions to {out}"
    )
    return index


def _write_scene(cfg: SynthConfig, i: int) -> dict:
    """Render scene `i` under every condition and write its files; its index entry."""
    t0 = time.perf_counter()
    seed_i = scene_seed(cfg.seed, i)
    conditions = all_conditions(cfg.weathers, cfg.times_of_day, float(cfg.intensity))
    scene = sample_scene(seed_i, duration_s=cfg.frames / cfg.fps)
    twins = render_twins(scene, conditions, cfg.frames, cfg.width, cfg.height, cfg.fps)
    t_render = time.perf_counter() - t0
    stems = [clip_name(i, c.weather, c.time_of_day) for c in conditions]
    clips = _write_clips(cfg, stems, conditions, lambda j: twins[j].rgb,
                         lambda j: twins[j].labels, twins[0])  # fmt: skip
    scenarios, skipped = _write_scenario_twins(cfg, i, scene, conditions)
    timing = {"render_s": t_render, "total_s": time.perf_counter() - t0}
    entry = {"index": i, "seed": seed_i, "clips": clips, "timing": timing}
    if cfg.scenarios:
        entry |= {"scenarios": scenarios, "skipped": skipped}
    return entry


def _write_clips(cfg: SynthConfig, stems, conditions, rgb_of, labels_of, gt) -> list[dict]:
    """Per condition j: `stems[j]`.mp4 of `rgb_of(j)`, its `labels_of(j)` sidecar and its dense
    ground truth (the same for every condition: written once from `gt`, then linked)."""
    from amplify.synth.video import write_mp4  # PyAV only where videos are written

    out = Path(cfg.out)
    first_gt: Path | None = None
    clips = []
    for j, (stem, c) in enumerate(zip(stems, conditions, strict=True)):
        video, labels, gt_file = f"{stem}.mp4", f"{stem}.labels.json", f"_gt/{stem}.npz"
        write_mp4(out / video, rgb_of(j), cfg.fps, cfg.crf)
        write_labels(labels_of(j), out / labels)
        if first_gt is None:
            arrays = {
                "depth": gt.depth,
                "semantic": gt.semantic,
                "instance": gt.instance,
                "ego_pose": gt.ego_pose,
                "intrinsics": gt.intrinsics,
                "times": np.arange(cfg.frames) / float(cfg.fps),
            }
            write_gt(out / gt_file, arrays)
            first_gt = out / gt_file
        else:
            _link_or_copy(first_gt, out / gt_file)
        clips.append({**c.as_dict(), "video": video, "labels": labels, "gt": gt_file})
    return clips


def _write_scenario_twins(cfg: SynthConfig, i: int, scene, conditions) -> tuple[list, dict]:
    """Scene `i` edited by each of `cfg.scenarios` (parameters from the scene's seed), rendered
    under every condition: the twins' files and index entries, and the templates skipped."""
    from amplify.scenarios.edit import NothingToEdit, render_edit
    from amplify.scenarios.library import sample_spec, template
    from amplify.scenarios.world import World
    from amplify.synth.render import gbuffer_labels, label_extra
    from amplify.synth.shade import shade_clip

    done, skipped = [], {}
    if not cfg.scenarios:
        return done, skipped
    world = World.from_scene(scene, cfg.frames, cfg.width, cfg.height, cfg.fps)
    for name in cfg.scenarios:
        params = sample_spec(name, scene.seed).params
        try:
            edit = template(name).build(params, world)
        except NothingToEdit as e:
            skipped[name] = str(e)
            continue
        maps = render_edit(world, edit)
        g, record = maps.gbuffer, edit.record(params)
        extra = {**label_extra(scene), "scenario": name, "scenario_params": record}
        stems = [f"{clip_name(i, c.weather, c.time_of_day)}+{name}" for c in conditions]
        frames = maps.labels.frames
        clips = _write_clips(
            cfg, stems, conditions, lambda j, g=g: shade_clip(g, conditions[j], scene.seed),
            lambda j, g=g, f=frames, e=extra: gbuffer_labels(g, f, conditions[j], cfg.fps, e), g,
        )  # fmt: skip
        done.append({"scenario": name, "params": record, "clips": clips})
    return done, skipped


def _line(cfg: SynthConfig, entry: dict) -> str:
    n = len(entry["clips"]) * cfg.frames
    t = entry["timing"]
    twins = ""
    if "scenarios" in entry:
        k = sum(len(x["clips"]) for x in entry["scenarios"])
        twins = f", {k} scenario twins" + (
            f" (skipped {', '.join(entry['skipped'])})" if entry["skipped"] else ""
        )
    return (
        f"synth: scene {entry['index'] + 1}/{cfg.clips} seed={entry['seed']} "
        f"{len(entry['clips'])} clips{twins}, {n} frames (render "
        f"{n / max(t['render_s'], 1e-9):.0f} frames/s, total {t['total_s']:.1f} s)"
    )


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
