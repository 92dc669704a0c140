"""The scenario painter: training falls, compositing keeps the outside exact, baselines, and the
committed checkpoint against the flat-box floor on a held-out edit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from amplify.conditions import Condition, scenario_id
from amplify.eval.metrics import masked_ssim
from amplify.wfm.paint_train import (
    bank_inputs,
    crops_of,
    paint_loss,
    render_pair,
    reverse_pair,
)
from amplify.wfm.painter import (
    INPUT_CHANNELS,
    Painter,
    PainterConfig,
    copy_paste,
    flat_box,
    paint,
)

TINY = PainterConfig(widths=(8, 8, 16, 16))
# A held-out scene (the committed painter trains on 30 000+): a pedestrian steps out at dusk.
HELD_OUT = dict(seed=95_000, template="pedestrian_crossing")


@pytest.fixture(scope="module")
def pair():
    """One cut-in edit, 5 frames of 128 x 64, rain at night (lamps lit)."""
    return render_pair(
        30_007, "cut_in", Condition("rain", "night", 0.8), frames=5, width=128, height=64
    )


def test_tiny_painter_loss_falls(pair):
    torch.manual_seed(0)
    crops = crops_of(pair, 4, 32, np.random.default_rng(0))
    x, twin, region, insert = bank_inputs(crops, np.arange(len(crops["source"])))
    assert x.shape[1] == INPUT_CHANNELS and region.sum() > 0
    assert ((insert > 0) <= (region > 0)).all()  # inserted pixels are part of the region
    sid = torch.from_numpy(crops["scenario"]).long()
    model = Painter(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = paint_loss(model(x, sid), twin, region, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])


def test_insert_weight_counts_each_crops_inserted_pixels_apart():
    twin = torch.zeros(2, 3, 8, 8)
    pred = torch.zeros(2, 3, 8, 8)
    region = torch.ones(2, 1, 8, 8)
    insert = torch.zeros(2, 1, 8, 8)
    insert[0, :, 0, 0] = 1  # one inserted pixel in crop 0, wrong by 1
    pred[0, :, 0, 0] = 1.0
    base, l1 = paint_loss(pred, twin, region, 0.0)
    assert torch.isclose(base, torch.tensor(1 / 128)) and torch.isclose(l1, base)
    weighted, l1w = paint_loss(pred, twin, region, 0.0, insert, 0.5)
    # crop 0's single inserted pixel is all of its insert L1 (1.0); crop 1 has none: not counted
    assert torch.isclose(weighted, base + 0.5) and torch.isclose(l1w, l1)


def test_paint_keeps_outside_region_exact(pair):
    torch.manual_seed(0)
    model = Painter(TINY)
    out = paint(model, pair.source, pair.maps, scenario_id("cut_in"))
    region = pair.maps.region
    assert out.shape == pair.source.shape and out.dtype == np.uint8
    assert region.any() and (out[~region] == pair.source[~region]).all()
    assert (out[region] != pair.source[region]).any()
    # deterministic
    assert (paint(model, pair.source, pair.maps, scenario_id("cut_in")) == out).all()


def test_paint_empty_region_returns_input(pair):
    empty = np.zeros_like(pair.maps.insert)
    maps = replace(pair.maps, insert=empty, remove=empty)
    out = paint(Painter(TINY), pair.source, maps)
    assert (out == pair.source).all()


def test_reverse_pair_swaps_roles(pair):
    r = reverse_pair(pair)
    assert (r.source == pair.twin).all() and (r.twin == pair.source).all()
    # the reversed insert shows the source's own agents that the edit took away
    assert r.maps.insert.shape == pair.maps.insert.shape
    assert (r.maps.category[r.maps.insert] > 0).all()


def test_baselines_shapes(pair):
    cp = copy_paste(pair.source, pair.twin, pair.maps)
    fb = flat_box(pair.source, pair.twin, pair.maps)
    for img in (cp, fb):
        assert img.shape == pair.source.shape and img.dtype == np.uint8
    region = pair.maps.region
    assert (cp[region] == pair.twin[region]).all() and (cp[~region] == pair.source[~region]).all()
    # SSIM windows straddle the mask edge, where night headlight pools differ outside `region`
    assert masked_ssim(cp, pair.twin, pair.maps.insert) > 0.98


def test_committed_painter_beats_flat_box():
    from amplify.errors import ConfigError
    from amplify.wfm.painter import load_painter

    try:
        model = load_painter()
    except ConfigError:
        pytest.skip("no committed painter checkpoint (checkpoints/wfm/painter.safetensors)")
    p = render_pair(HELD_OUT["seed"], HELD_OUT["template"], Condition("clear", "dusk", 0.7))
    out = paint(model, p.source, p.maps, p.scenario)
    fb = flat_box(p.source, p.twin, p.maps)
    mask = p.maps.insert
    assert masked_ssim(out, p.twin, mask) > masked_ssim(fb, p.twin, mask)


def test_extra_banks_join_and_banks_from_evaluation_seeds_are_refused(pair, tmp_path):
    from amplify.errors import ConfigError
    from amplify.scenarios.library import TEMPLATES
    from amplify.wfm.paint_train import PainterTrainConfig, join_banks

    def bank(seeds: tuple[int, int]) -> dict:
        b = crops_of(pair, 2, 32, np.random.default_rng(0))
        counts = np.array([int(t == "cut_in") for t in TEMPLATES])
        return {**b, "seeds": np.array(seeds), "template_counts": counts, "key": "k"}

    cfg = PainterTrainConfig()
    np.savez(tmp_path / "other.npz", **bank((40_001, 40_300)))
    joined, parts = join_banks(bank((30_001, 30_600)), [str(tmp_path / "other.npz")], cfg)
    n = len(bank((1, 2))["source"])
    assert len(joined["source"]) == 2 * n and len(joined["scenario"]) == 2 * n
    assert joined["template_counts"][list(TEMPLATES).index("cut_in")] == 2
    assert parts == [{"bank": str(tmp_path / "other.npz"), "seeds": [40_001, 40_300], "crops": n}]
    x, twin, region, insert = bank_inputs(joined, np.arange(2 * n))
    assert x.shape[0] == 2 * n
    np.savez(tmp_path / "eval.npz", **bank((20_500, 20_600)))  # eval scenarios' scenes
    with pytest.raises(ConfigError, match="reach"):
        join_banks(bank((30_001, 30_600)), [str(tmp_path / "eval.npz")], cfg)
    with pytest.raises(ConfigError, match="no such"):
        join_banks(bank((30_001, 30_600)), [str(tmp_path / "none.npz")], cfg)
