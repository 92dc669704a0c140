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
class RunConfig:
    """`amplify run`: ingest every clip under `input` into the dataset at `output`."""

    input: str = ""
    output: str = "out/dataset"
    extra_inputs: list[str] = field(default_factory=list)  # more folders or files, same treatment
    job_id: str = ""  # empty: a timestamped id
    validation_fraction: float = 0.1  # of source clips (by content hash), never by window
    ingest: IngestConfig = field(default_factory=IngestConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        if not self.input:
            raise ConfigError("input", self.input, "give the folder (or file) of clips: input=DIR")
        if not self.output:
            raise ConfigError("output", self.output, "give the dataset folder: output=DIR")
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError("validation_fraction", self.validation_fraction, "must be in [0, 1)")


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
