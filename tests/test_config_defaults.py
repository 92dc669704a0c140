"""One source of config values: every verb's YAML composes over its schema; the dataclass defaults
say the same as the YAML; `python -m` entry points are their verbs; each experiment config in
configs/experiment/ reproduces the recorded config of the checkpoint it names."""

from __future__ import annotations

import dataclasses
import json
import re
import runpy
import sys
import warnings
from pathlib import Path

import pytest

from amplify.cli import VERBS, _resolve
from amplify.config import CONFIG_DIR, load_config
from amplify.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
BY_NAME = {v.name: v for v in VERBS}

# Keys without a default: the verb refuses to run without them (ConfigError naming the key).
REQUIRED = {"run": ["input=clips"], "export": ["input=out/dataset", "output=out/export"]}

# Dataclass defaults that may differ from the YAML, and why.
DEFAULT_EXCEPTIONS = {
    # The dataclass trains on renders only (what tests build); the verb adds real footage.
    ("train classifier", "real_root"),
}


def _compose(verb, overrides: list[str]):
    return load_config(verb.config, _resolve(verb.schema), overrides)


def _flat(cfg, prefix: str = "") -> dict:
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out.update(_flat(v, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = list(v) if isinstance(v, tuple) else v
    return out


def _same(a, b) -> bool:
    """Equal values; paths are equal when they name the same place from the repository root."""
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str) and a and b and ("/" in a or "/" in b):
        return (ROOT / a).resolve() == (ROOT / b).resolve()
    return False


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
def test_every_verb_composes_without_overrides(verb):
    if verb.name in REQUIRED:
        with pytest.raises(ConfigError, match=REQUIRED[verb.name][0].split("=")[0]):
            _compose(verb, [])
    cfg = _compose(verb, REQUIRED.get(verb.name, []))
    assert isinstance(cfg, _resolve(verb.schema))


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
def test_dataclass_defaults_are_the_yaml_values(verb):
    """Code that builds a config directly (tests, amplify.gpu) gets what the verb gets."""
    schema = _resolve(verb.schema)
    required = dict(o.split("=", 1) for o in REQUIRED.get(verb.name, []))
    built = _flat(schema(**required))
    composed = _flat(_compose(verb, REQUIRED.get(verb.name, [])))
    differ = {
        k: (built[k], composed[k])
        for k in built
        if not _same(built[k], composed[k]) and (verb.name, k) not in DEFAULT_EXCEPTIONS
    }
    assert not differ, f"{verb.name}: dataclass default vs configs/{verb.config}.yaml: {differ}"


# ---- `python -m` entry points --------------------------------------------------------------------
# module -> (its verb, a command line to try besides the defaults)
ENTRY_POINTS = {
    "pipelines.run": ("run", ["input=clips", "output=/tmp/elsewhere"]),
    "pipelines.train_tokenizer": ("train tokenizer", ["out=/tmp/elsewhere", "steps=7"]),
    "pipelines.train_wfm": ("train wfm", ["out=/tmp/elsewhere", "+experiment=wfm-small"]),
    "amplify.tokenizer.evaluate": ("eval tokenizer", ["out=/tmp/elsewhere"]),
}
# `__main__` blocks that are no config entry point: the command itself, benchmarks (positional
# arguments), and the GPU scripts, which run where Hydra is not installed (amplify/gpu/args.py).
NOT_ENTRY_POINTS = ("amplify/__main__.py", "amplify/cli.py", "amplify/gpu/")


def test_every_main_block_is_a_verb():
    found = set()
    for path in [*ROOT.glob("pipelines/**/*.py"), *ROOT.glob("amplify/**/*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        assert "parse_argv" not in text, rel
        if "bench" in path.stem or rel.startswith(NOT_ENTRY_POINTS):
            continue
        if re.search(r'^if __name__ == "__main__":', text, re.M):
            found.add(rel.removesuffix(".py").replace("/", "."))
    assert found == set(ENTRY_POINTS)


class _Loaded(Exception):
    """Raised by the spy loader: the entry point has its config, nothing else runs."""


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_module_entry_point_is_its_verb(module, monkeypatch):
    """`python -m MODULE k=v` loads the same YAML through the same loader as `amplify VERB k=v`
    (the 10 world-model keys steps, batch, lr, warmup, ckpt_every, eval_every, log_every,
    threads, eval_pairs and eval_steps once differed: the module had its own argv parser)."""
    import amplify.config

    verb_name, other = ENTRY_POINTS[module]
    verb = BY_NAME[verb_name]
    calls = []

    def spy(name, schema, overrides):
        calls.append((name, schema, list(overrides), load_config(name, schema, overrides)))
        raise _Loaded

    monkeypatch.setattr(amplify.config, "load_config", spy)
    for argv in (REQUIRED.get(verb_name, []), other):
        monkeypatch.setattr(sys, "argv", [module, *argv])
        with warnings.catch_warnings(), pytest.raises(_Loaded):
            warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is imported
            runpy.run_module(module, run_name="__main__")
        name, schema, overrides, cfg = calls.pop()
        assert (name, schema, overrides) == (verb.config, _resolve(verb.schema), argv)
        assert cfg == _compose(verb, argv)


# ---- experiment configs: the recipes of the committed checkpoints ------------------------------
# name -> (verb, checkpoint JSON, the block of it holding the config that ran)
EXPERIMENTS = {
    "tok-small": ("train tokenizer", "checkpoints/tokenizer/tok-small.json", ["train"]),
    "tok-real-stage1": ("train tokenizer", "checkpoints/tokenizer/tok-real.json",
                        ["stage1", "train"]),
    "tok-real": ("train tokenizer", "checkpoints/tokenizer/tok-real.json", ["train"]),
    "wfm-small": ("train wfm", "checkpoints/wfm/wfm-small.json", ["train"]),
    "wfm-grade": ("train grade", "checkpoints/wfm/wfm-grade.json", ["training"]),
    "cond-cls": ("train classifier", "checkpoints/classifier/cond-cls.json", ["config"]),
}  # fmt: skip
# Where a run wrote (not its recipe), and bookkeeping recorded beside the config.
NOT_RECIPE = {"out", "export", "mlflow_uri", "steps_done", "trainer", "meta"}
RENAMED = {"experiment": "mlflow_experiment"}  # recorded before configs/experiment/ existed
# Recorded values an experiment cannot replay (its YAML says why).
UNREPLAYABLE = {
    "tok-real": {"init_from"},  # stage 1's export, copied into checkpoints/, since overwritten
    "wfm-small": {"init_from", "deadline", "max_minutes"},  # a warm-start chain; a clock time
}


def test_every_experiment_is_checked():
    assert {p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")} == set(EXPERIMENTS)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_reproduces_its_checkpoint(name):
    verb_name, sidecar, block = EXPERIMENTS[name]
    recorded = json.loads((ROOT / sidecar).read_text())
    for key in block:
        recorded = recorded[key]
    cfg = _flat(_compose(BY_NAME[verb_name], [f"+experiment={name}"]))
    skip = NOT_RECIPE | UNREPLAYABLE.get(name, set())
    differ = {
        k: (v, cfg.get(RENAMED.get(k, k), "<not a key>"))
        for k, v in recorded.items()
        if k not in skip and cfg.get(RENAMED.get(k, k), "<not a key>") != v
    }
    assert not differ, f"{name}: recorded vs composed: {differ}"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_is_refused_by_other_verbs(name):
    """`amplify train wfm +experiment=tok-small` must fail, not train a world model into
    checkpoints/tokenizer/ (every experiment names keys, or a model, only its verb takes)."""
    for verb in VERBS:
        if verb.name.startswith("train ") and verb.name != EXPERIMENTS[name][0]:
            with pytest.raises(ConfigError):
                _compose(verb, [*REQUIRED.get(verb.name, []), f"+experiment={name}"])


def test_experiments_replay_what_the_records_do_not_hold():
    tok = BY_NAME["train tokenizer"]
    real = _compose(tok, ["+experiment=tok-real"])
    assert real.init_from == _compose(tok, ["+experiment=tok-real-stage1"]).export + ".safetensors"
    # wfm-small ran to a clock deadline; the experiment gives it the same training time.
    small = json.loads((ROOT / "checkpoints/wfm/wfm-small.json").read_text())
    wfm = _compose(BY_NAME["train wfm"], ["+experiment=wfm-small"])
    assert abs(wfm.max_minutes * 60 - small["metrics"]["train_seconds"]) < 1 and not wfm.deadline
    # wfm-grade's data are in its recorded command, not its config block.
    grade = json.loads((ROOT / "checkpoints/wfm/wfm-grade.json").read_text())["command"]
    args = dict(
        a.split("=", 1) for a in grade.split("`amplify train grade ")[1].split("`")[0].split()
    )
    cfg = _compose(BY_NAME["train grade"], ["+experiment=wfm-grade"])
    assert list(cfg.data) == args["data"].strip("[]").split(",") and cfg.real == args["real"]
    # A command-line key still wins over the experiment's.
    assert _compose(tok, ["+experiment=tok-small", "steps=7"]).steps == 7
