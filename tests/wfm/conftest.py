"""Fixtures for the world-model tests: a tiny synthetic corpus with twins, a random tokenizer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def wfm_corpus(tmp_path_factory) -> Path:
    """Three scenes x (clear, rain) x (day, night), 9 frames of 64x32: paired twins."""
    from amplify.synth.corpus import SynthConfig, make_corpus

    root = tmp_path_factory.mktemp("wfm_corpus")
    cfg = SynthConfig(out=str(root), clips=3, seed=5, frames=9, width=64, height=32,
                      weathers=("clear", "rain"), times_of_day=("day", "night"))  # fmt: skip
    make_corpus(cfg, progress=lambda s: None)
    return root


@pytest.fixture(scope="session")
def tok_tiny_path(tmp_path_factory) -> Path:
    """A randomly initialised tok-tiny saved as a checkpoint (the shapes are what matter)."""
    import torch

    from amplify.tokenizer.checkpoint import save_tokenizer
    from amplify.tokenizer.config import get_config
    from amplify.tokenizer.model import CausalVideoTokenizer

    torch.manual_seed(0)
    model = CausalVideoTokenizer(get_config("tok-tiny"))
    return save_tokenizer(model, tmp_path_factory.mktemp("tok") / "tok-tiny")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one thread is 30x faster than two (measured)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inputs(cfg, B: int = 2, n: int = 3, h: int = 4, w: int = 8, seed: int = 0):
    import torch

    from amplify.wfm.config import CONTROLS, SOURCE

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, cfg.latent_channels, n, h, w, generator=g)
    controls = {
        k: torch.randn(B, 4 * c, n, h * 8 // f, w * 8 // f, generator=g)
        for k, (c, f) in CONTROLS.items()
    }
    controls[SOURCE] = torch.randn(x.shape, generator=g)
    cond = {
        "weather": torch.tensor([1, 3][:B]),
        "time_of_day": torch.tensor([0, 2][:B]),
        "intensity": torch.tensor([0.7, 0.2][:B]),
        "scenario": torch.zeros(B, dtype=torch.long),
        "keep": torch.ones(B),
    }
    t = torch.rand(B, n, generator=g)
    return x, t, cond, controls


def _randomize(model, seed: int = 0):
    """Give the zero-initialised (adaLN-zero) layers random weights so every path matters."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


@pytest.fixture
def wfm_util() -> SimpleNamespace:
    """`inputs(cfg, B, n, h, w, seed)` -> (x, t, cond, controls); `randomize(model)`."""
    return SimpleNamespace(inputs=_inputs, randomize=_randomize)
