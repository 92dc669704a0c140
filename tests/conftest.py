"""Shared fixtures: sample clips written with PyAV, the real clips when present, a local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_clips() -> Path:
    if not REAL.is_dir() or not list(REAL.glob("*.mp4")):
        pytest.skip(f"real clips not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the whole session (starting Ray costs ~5 s)."""
    import ray

    from amplify.config import RayConfig
    from pipelines.run import init_ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    init_ray(RayConfig(num_cpus=2, object_store_mb=256))
    yield ray
    ray.shutdown()
