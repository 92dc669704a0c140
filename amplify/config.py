"""Config schemas shared by the jobs, and how the CLI turns `key=value` overrides into them.

Each verb has one frozen dataclass (its schema) and one YAML file in `configs/` (its values).
`load_config(name, schema, overrides)` composes them with Hydra and returns the dataclass:
Hydra rejects unknown keys and wrong types, `__post_init__` rejects bad values, and both errors
name the key and the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from omegaconf import DictConfig, OmegaConf

from amplify.conditions import Condition
from amplify.errors import ConfigError
from amplify.io.ingest import IngestConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
T = TypeVar("T")


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow. Empty `uri`: an SQLite store `mlflow.db` in the working directory."""

    enabled: bool = True
    uri: str = ""
    experiment: str = "amplify"


@dataclass(frozen=True)
class RayConfig:
    """Empty `address`: start an embedded local Ray. `auto` or `ray://host:port`: join a cluster."""

    address: str = ""
    num_cpus: int = 0  # embedded Ray only; 0 = all cores
    object_store_mb: int = 512  # embedded Ray only: the store holds encoded bytes, not video


@dataclass(frozen=True)
class GridConfig:
    """An explicit grid of variations: weathers x times of day x intensities (x `seeds`).
    Empty weathers and times of day: no grid. Empty intensities: `generate.intensity` alone."""

    weathers: list[str] = field(default_factory=list)
    times_of_day: list[str] = field(default_factory=list)
    intensities: list[float] = field(default_factory=list)

    def conditions(self, default_intensity: float) -> list[Condition]:
        if not self.weathers and not self.times_of_day:
            return []
        weathers = self.weathers or ["clear"]
        times = self.times_of_day or ["day"]
        return [Condition(w, t, float(i)) for w in weathers for t in times
                for i in (self.intensities or [default_intensity])]  # fmt: skip


@dataclass(frozen=True)
class GenerateConfig:
    """Which variations the world model makes of each ingested window (none: ingest only)."""

    # "<weather>_<time_of_day>" (rain_day, ...), or a weather or a time of day alone
    variations: list[str] = field(default_factory=list)
    intensity: float = 0.7
    seeds: int = 1  # variations per (window, condition), seeds 0..seeds-1
    match: list[str] = field(default_factory=lambda: ["*"])  # fnmatch patterns on file names
    # Only windows whose source condition is one of these ("clear_day"; "unknown" for footage
    # without a condition label); empty = any.
    source_conditions: list[str] = field(default_factory=list)
    max_windows_per_clip: int = 0  # 0 = every window of a matching clip
    checkpoint: str = "wfm-grade"  # a name under checkpoints/wfm/ or a path
    tokenizer: str = "tok-small"
    steps: int = 12
    guidance: float = 2.0
    # detail restoration after decoding (amplify.wfm.refine): guided-filter window radius as a
    # share of the frame's short side; 0 = off (default: it hurts night and fog, docs/EVAL.md)
    refine: float = 0.0
    # The grid of conditions made of every window, beside `variations` (see GridConfig).
    grid: GridConfig = field(default_factory=GridConfig)
    # N conditions drawn per window (seeded by the window's id: a rerun draws the same ones):
    # a condition by `sample_weights` ("rain_night:2", "fog", "night:0.5": a condition, a weather
    # or a time of day, weight 1 unless given; empty: every condition alike), an intensity
    # uniform in `sample_intensity`.
    samples: int = 0
    sample_weights: list[str] = field(default_factory=list)
    sample_intensity: list[float] = field(default_factory=lambda: [0.3, 1.0])
    # Quality metrics of every variation against its source (clips.blur_ssim, edge_f1,
    # sharpness, cls_score): on `metrics_frames` frames spread over the window (0: all), and
    # the condition classifier named here ("" = no cls_score).
    classifier: str = "cond-cls"
    metrics_frames: int = 5
    actors: int = 1  # model replicas (Ray actors), each loads the model once
    num_gpus: float = 0.0  # per actor; > 0 puts the model on a GPU
    num_cpus: float = 1.0  # per actor
    batch_size: int = 1  # windows per actor call
    # Per window: a generation past it is killed (the model reloads) and the window errors.
    timeout_s: float = 600.0
    # Scenario templates (amplify.scenarios.library, docs/SCENARIOS.md): "name" or "name:weight".
    # Each window gets `scenario_samples` parameter sets drawn by weight (0: one per template),
    # each under the source's own look and under every condition in `variations`.
    scenarios: list[str] = field(default_factory=list)
    scenario_samples: int = 0
    # The conditions scenario samples are also made under (beside the source's own look):
    # ["*"] = every one of `variations`; [] = the source's look only.
    scenario_variations: list[str] = field(default_factory=lambda: ["*"])
    painter: str = "painter"  # the scenario painter checkpoint (checkpoints/wfm/)
    # The ground-plane camera of clips without their own 3D scene (amplify/scenarios/world.py)
    cam_height: float = 1.5
    ego_speed: float = 10.0
    horizon: float = -1.0  # image row of the horizon as a share of the height; < 0: estimate

    def __post_init__(self) -> None:
        # Canonical names ("rain" is "rain_day"): they name the variations in the dataset.
        names = [Condition.parse(v, key="generate.variations").name for v in self.variations]
        object.__setattr__(self, "variations", names)
        if not 0 <= self.intensity <= 1:
            raise ConfigError("generate.intensity", self.intensity, "must be in [0, 1]")
        if self.seeds < 1:
            raise ConfigError("generate.seeds", self.seeds, "must be >= 1")
        if self.steps < 1:
            raise ConfigError("generate.steps", self.steps, "must be >= 1")
        if not 0 <= self.refine <= 1:
            raise ConfigError("generate.refine", self.refine, "must be in [0, 1]")
        if self.actors < 1:
            raise ConfigError("generate.actors", self.actors, "must be >= 1")
        if self.num_gpus < 0:
            raise ConfigError("generate.num_gpus", self.num_gpus, "must be >= 0")
        if self.num_cpus <= 0:
            raise ConfigError("generate.num_cpus", self.num_cpus, "must be > 0")
        if self.batch_size < 1:
            raise ConfigError("generate.batch_size", self.batch_size, "must be >= 1")
        if self.timeout_s <= 0:
            raise ConfigError("generate.timeout_s", self.timeout_s, "must be > 0")
        if self.metrics_frames < 0:
            raise ConfigError("generate.metrics_frames", self.metrics_frames, "must be >= 0")
        self.grid.conditions(self.intensity)  # ConfigError names a bad weather or time of day
        for x in self.grid.intensities:
            if not 0 <= x <= 1:
                raise ConfigError("generate.grid.intensities", x, "must be in [0, 1]")
        if self.samples < 0:
            raise ConfigError("generate.samples", self.samples, "must be >= 0")
        weights: dict[str, float] = {}
        for entry in self.sample_weights:
            name, _, w = str(entry).partition(":")
            cond = Condition.parse(name.strip(), key="generate.sample_weights").name
            try:
                x = float(w) if w else 1.0
            except ValueError:
                x = -1.0
            if not x >= 0:
                raise ConfigError(
                    "generate.sample_weights", entry, "a weight after ':' must be >= 0"
                )
            weights[cond] = weights.get(cond, 0.0) + x
        if weights and not sum(weights.values()) > 0:
            raise ConfigError("generate.sample_weights", self.sample_weights, "all weights are 0")
        object.__setattr__(
            self, "sample_weights", [f"{k}:{v:g}" for k, v in sorted(weights.items())]
        )
        lo_hi = [float(x) for x in self.sample_intensity]
        if len(lo_hi) != 2 or not 0 <= lo_hi[0] <= lo_hi[1] <= 1:
            raise ConfigError("generate.sample_intensity", self.sample_intensity,
                              "must be [low, high] with 0 <= low <= high <= 1")  # fmt: skip
        object.__setattr__(self, "sample_intensity", lo_hi)
        object.__setattr__(self, "scenarios", [_scenario_entry(e) for e in self.scenarios])
        if list(self.scenario_variations) != ["*"]:
            names = [Condition.parse(v, key="generate.scenario_variations").name
                     for v in self.scenario_variations]  # fmt: skip
            object.__setattr__(self, "scenario_variations", names)
        if self.scenario_samples < 0:
            raise ConfigError("generate.scenario_samples", self.scenario_samples, "must be >= 0")
        if self.cam_height <= 0 or self.ego_speed < 0:
            raise ConfigError("generate.cam_height", self.cam_height, "and ego_speed must be > 0")

    def scenario_conditions(self) -> list[str]:
        """The condition names scenario samples are made under (beside the source's look)."""
        sv = list(self.scenario_variations)
        return list(self.variations) if sv == ["*"] else sv

    @property
    def any_work(self) -> bool:
        return bool(self.variations or self.scenarios or self.grid_conditions() or self.samples)

    def grid_conditions(self) -> list[Condition]:
        return self.grid.conditions(self.intensity)

    def scenario_weights(self) -> dict[str, float]:
        return {name: float(w) for name, w in (e.rsplit(":", 1) for e in self.scenarios)}

    def fingerprint(self) -> str:
        """What decides the generated rows: a rerun with other variations is new work."""
        return (
            f"{','.join(sorted(self.variations))}|i{self.intensity:g}|s{self.seeds}|{self.match}|"
            f"{self.source_conditions}|"
            f"m{self.max_windows_per_clip}|{self.checkpoint}|{self.tokenizer}|{self.steps}|{self.guidance:g}"
            f"|r{self.refine:g}"
            + (
                f"|sc{','.join(self.scenarios)}|n{self.scenario_samples}|{self.painter}"
                f"|sv{','.join(self.scenario_conditions())}"
                f"|cam{self.cam_height:g},{self.ego_speed:g},{self.horizon:g}"
                if self.scenarios
                else ""
            )
            # Joined only when set: the fingerprints (and so the resume keys) of jobs made
            # before grids and samples existed stay the same.
            + (
                f"|g{','.join(f'{c.name}@{c.intensity:g}' for c in self.grid_conditions())}"
                if self.grid_conditions()
                else ""
            )
            + (
                f"|n{self.samples}|w{','.join(self.sample_weights)}"
                f"|i{self.sample_intensity[0]:g},{self.sample_intensity[1]:g}"
                if self.samples
                else ""
            )
            + (
                f"|q{self.classifier},{self.metrics_frames}"
                if self.classifier != "cond-cls" or self.metrics_frames != 5
                else ""
            )  # fmt: skip
        )


def _scenario_entry(entry: str) -> str:
    """ "name" or "name:weight" -> canonical "name:weight" (ConfigError names a bad one)."""
    from amplify.conditions import parse_scenario

    name, _, weight = str(entry).partition(":")
    name = parse_scenario(name.strip())
    try:
        w = float(weight) if weight else 1.0
    except ValueError:
        w = -1.0
    if not w > 0:
        raise ConfigError("generate.scenarios", entry, "a weight after ':' must be a number > 0")
    return f"{name}:{w:g}"


@dataclass(frozen=True)
class RunConfig:
    """`amplify run`: ingest every clip under `input`, generate the requested variations of each
    window with the world model, and write it all as one dataset at `output`."""

    input: str = ""
    output: str = "out/dataset"
    extra_inputs: list[str] = field(default_factory=list)  # more folders or files, same treatment
    job_id: str = ""  # empty: a timestamped id
    # Shares of source clips (by content hash, never by window) in validation and test; the rest
    # is train. `amplify export` splits the same way by default (same fractions, seed 0).
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    # `amplify run` exits non-zero when more than this share of the job's work (input clips and
    # generated windows) ended as error rows. The rows and the manifest are committed anyway.
    max_error_rate: float = 0.1
    ingest: IngestConfig = field(default_factory=IngestConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        if not self.input:
            raise ConfigError("input", self.input, "give the folder (or file) of clips: input=DIR")
        if not self.output:
            raise ConfigError("output", self.output, "give the dataset folder: output=DIR")
        for key in ("validation_fraction", "test_fraction"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(key, getattr(self, key), "must be in [0, 1)")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ConfigError(
                "validation_fraction+test_fraction",
                self.validation_fraction + self.test_fraction,
                "must leave a share for train (< 1)",
            )
        if not 0 <= self.max_error_rate <= 1:
            raise ConfigError("max_error_rate", self.max_error_rate, "must be in [0, 1]")


def _thaw(node: DictConfig) -> None:
    # Frozen dataclasses make read-only nodes, which Hydra cannot apply overrides to; the
    # dataclass is frozen again when `to_object` builds it.
    OmegaConf.set_readonly(node, None)
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _thaw(child)


def load_config(name: str, schema: type[T], overrides: list[str]) -> T:
    """Compose `configs/<name>.yaml` over `schema` with `overrides`; return the dataclass."""
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import ConfigCompositionException

    node = OmegaConf.structured(schema)
    _thaw(node)
    ConfigStore.instance().store(name=f"{name}_schema", node=node)
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = compose(config_name=name, overrides=list(overrides))
    except ConfigCompositionException as e:
        cause = e.__cause__
        detail = str(cause).strip() if cause else ""
        raise ConfigError(
            "overrides", " ".join(overrides), f"{e}{': ' + detail if detail else ''}"
        ) from e
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]
