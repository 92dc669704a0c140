"""The schema of `amplify export` (values live in configs/export.yaml): which rows leave the
dataset (filters), where each source lands (splits), how the files are cut (shards) and in which
formats they are written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from amplify.conditions import SCENARIOS, Condition
from amplify.errors import ConfigError

FORMATS = ("parquet", "webdataset", "coco")
SPLITS = ("train", "validation", "test")
ORIGINS = ("any", "source", "generated")
# `filter.where` terms: `<column> <op> <number>`, e.g. "blur_ssim>=0.7".
WHERE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class SplitConfig:
    """Splits by source clip: every window and variation of a source lands in one split.

    A source's split is a pure function of (seed, its group key, the fractions): it keeps its
    split when the dataset grows. Explicit lists win over fractions; their entries match a
    source id, a source sha256 (or a prefix of 8+ hex digits) or an fnmatch pattern on the
    source path.
    """

    validation: float = 0.1
    test: float = 0.1
    seed: int = 0
    validation_sources: list[str] = field(default_factory=list)
    test_sources: list[str] = field(default_factory=list)
    # Regex on the source file name; its first group is the group key, so the
    # synthetic twins of one scene (`scene_0007_rain_day.mp4`, `scene_0007_fog_night.mp4`) share
    # a split. A path it does not match is its own group (its source id). "" = source id only.
    group_pattern: str = ""
    # true: keep the dataset's own `split` column (`amplify run`: validation_fraction,
    # test_fraction) instead of recomputing.
    keep_dataset_split: bool = False

    def __post_init__(self) -> None:
        for key in ("validation", "test"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
                raise ConfigError(f"split.{key}", v, "must be a fraction in [0, 1)")
        if self.validation + self.test >= 1:
            raise ConfigError(
                "split.validation+split.test",
                self.validation + self.test,
                "must leave a share for train (< 1)",
            )
        if self.group_pattern:
            try:
                re.compile(self.group_pattern)
            except re.error as e:
                raise ConfigError("split.group_pattern", self.group_pattern, str(e)) from e


@dataclass(frozen=True)
class FilterConfig:
    """Filters on the clip rows; a frame leaves with its clip. Applied in this order, each
    counted (clips and frames removed) in the export's manifest and card. Empty = no filter."""

    # "<weather>_<time_of_day>" names, or "unknown" for clips without a condition (real footage)
    conditions: list[str] = field(default_factory=list)
    weather: list[str] = field(default_factory=list)  # a weather, or "unknown"
    time_of_day: list[str] = field(default_factory=list)  # a time of day, or "unknown"
    scenarios: list[str] = field(default_factory=list)  # template names, or "none"
    generators: list[str] = field(default_factory=list)  # fnmatch on `generator`, e.g. "wfm:*"
    origin: str = "any"  # any | source (ingested clips) | generated (made by the world model)
    labelled: bool = False  # true: only clips with boxes (`has_labels`)
    # Numeric clip columns, any that the dataset has (quality metrics: blur_ssim, cls_score...):
    # `+filter.min.blur_ssim=0.7` keeps rows >= 0.7. A null passes on a source clip (metrics
    # are measured against the source) and fails on a generated one.
    min: dict[str, float] = field(default_factory=dict)
    max: dict[str, float] = field(default_factory=dict)
    where: list[str] = field(default_factory=list)  # ["blur_ssim>=0.7", "cls_score>0.8"]
    # At most this many generated variations per source clip (a stable seeded choice); 0 = all.
    max_variations_per_source: int = 0

    def __post_init__(self) -> None:
        for name in self.conditions:
            if name != "unknown":
                c = Condition.parse(name, key="filter.conditions")
                if c.name != name:  # "rain" would silently mean rain_day: ask for the full name
                    raise ConfigError(
                        "filter.conditions", name, f"give the full name, e.g. {c.name!r}"
                    )
        for name in self.weather:
            if name != "unknown":
                Condition(weather=name)
        for name in self.time_of_day:
            if name != "unknown":
                Condition(time_of_day=name)
        for name in self.scenarios:
            if name != "none" and name not in SCENARIOS:
                raise ConfigError(
                    "filter.scenarios", name, f"must be 'none' or one of {list(SCENARIOS)}"
                )
        if self.origin not in ORIGINS:
            raise ConfigError("filter.origin", self.origin, f"must be one of {list(ORIGINS)}")
        for term in self.where:
            if not WHERE.match(term):
                raise ConfigError(
                    "filter.where", term, "must read '<column><op><number>', op in >= <= > < == !="
                )
        if self.max_variations_per_source < 0:
            raise ConfigError(
                "filter.max_variations_per_source", self.max_variations_per_source, "must be >= 0"
            )

    def numeric_terms(self) -> list[tuple[str, str, float]]:
        """Every numeric test as (column, op, value): `min`, `max`, then `where`, in order."""
        terms = [(c, ">=", float(v)) for c, v in sorted(self.min.items())]
        terms += [(c, "<=", float(v)) for c, v in sorted(self.max.items())]
        for t in self.where:
            col, op, value = WHERE.match(t).groups()  # type: ignore[union-attr]
            terms.append((col, op, float(value)))
        return terms


@dataclass(frozen=True)
class ShardConfig:
    """Where a shard ends: after `max_rows` rows or `max_bytes` bytes of images, whichever comes
    first (0 = no limit on that). Rows are frames for Parquet, clips for WebDataset."""

    max_rows: int = 0
    max_bytes: int = 256 * 1024 * 1024
    row_group_rows: int = 256  # Parquet row groups: what a streaming reader holds at once

    def __post_init__(self) -> None:
        for key in ("max_rows", "max_bytes"):
            if getattr(self, key) < 0:
                raise ConfigError(f"shard.{key}", getattr(self, key), "must be >= 0")
        if self.row_group_rows < 1:
            raise ConfigError("shard.row_group_rows", self.row_group_rows, "must be >= 1")


@dataclass(frozen=True)
class WebDatasetConfig:
    """The video layout: one H.264 mp4 per clip in tar shards, labels beside it."""

    crf: int = 18  # x264 quality: 0 lossless ... 51 worst; 18 is visually lossless
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise ConfigError("webdataset.crf", self.crf, "must be in [0, 51]")


@dataclass(frozen=True)
class CocoConfig:
    images: bool = True  # also write each frame's image file beside the JSON (coco/<split>/)


@dataclass(frozen=True)
class ExportConfig:
    """`amplify export`: a frozen, filtered, split copy of a dataset's committed rows, in the
    formats training jobs read (Parquet for Hugging Face and friends, WebDataset tar shards of
    mp4 clips, COCO JSON), committed with a manifest and described by a dataset card. A
    dataset part that goes into the Parquet export unchanged (no filter drops any of its rows,
    its split is the dataset's) is hard-linked, not rewritten; `link=false` writes every shard.
    Options and loaders: docs/EXPORT.md."""

    input: str = ""
    output: str = ""
    formats: list[str] = field(default_factory=lambda: ["parquet"])
    overwrite: bool = False  # replace an existing export at `output` (atomically)
    # Parquet: a committed frames file that goes into the export unchanged (every row kept, one
    # split that its `split` column already names) is hard-linked, not rewritten; false = write
    # every shard anew (a copy that shares no storage with the dataset).
    link: bool = True
    split: SplitConfig = field(default_factory=SplitConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    webdataset: WebDatasetConfig = field(default_factory=WebDatasetConfig)
    coco: CocoConfig = field(default_factory=CocoConfig)
    # Real footage folders whose manifest.json / README.md name the licence of their clips.
    licence_sources: list[str] = field(
        default_factory=lambda: ["../shared/data/train_real", "../shared/data/real"]
    )

    def __post_init__(self) -> None:
        if not self.input:
            raise ConfigError("input", self.input, "give the dataset folder: input=DIR")
        if not self.output:
            raise ConfigError("output", self.output, "give the export folder: output=DIR")
        if not self.formats:
            raise ConfigError("formats", self.formats, f"name at least one of {list(FORMATS)}")
        for f in self.formats:
            if f not in FORMATS:
                raise ConfigError("formats", f, f"must be one of {list(FORMATS)}")
        object.__setattr__(self, "formats", list(dict.fromkeys(self.formats)))
