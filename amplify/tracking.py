"""MLflow tracking: one run per job, logged from the driver only (SQLite locks under concurrent
writers). An embedded SQLite store in the working directory by default, a server by config."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from amplify.config import TrackingConfig


def tracking_uri(cfg: TrackingConfig) -> str:
    return cfg.uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def flatten(d: Any, prefix: str = "") -> dict[str, str]:
    """Nested config -> {"ingest.fps": "10.0", ...} for MLflow params."""
    if is_dataclass(d):
        d = asdict(d)
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)[:500]
    return out


@contextlib.contextmanager
def job_run(cfg: TrackingConfig, name: str, config: Any, tags: dict[str, str]) -> Iterator[Any]:
    """An MLflow run for a job (None when tracking is disabled): params = the flattened config."""
    if not cfg.enabled:
        yield None
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(cfg.experiment) is None:
        artifacts = None
        if uri.startswith("sqlite:///"):
            # Artifacts beside the database, not in whatever folder the job started from.
            artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
        mlflow.create_experiment(cfg.experiment, artifact_location=artifacts)
    mlflow.set_experiment(cfg.experiment)
    with mlflow.start_run(run_name=name, tags=tags) as run:
        mlflow.log_params(flatten(config))
        yield run
