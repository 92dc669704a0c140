"""`amplify eval scenarios`: real renders, real twins, a real (tiny, untrained) painter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amplify.errors import ConfigError
from amplify.eval.scenarios import ScenarioEvalConfig, evaluate_scenarios, family, found, iou


def test_matching_helpers():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert family("van") == family("truck") == "vehicle" and family("animal") == "animal"
    dets = [("truck", 0.9, 0, 0, 10, 10)]
    assert found(dets, (1, 0, 10, 10), "car")  # a vehicle found as another kind of vehicle
    assert not found(dets, (1, 0, 10, 10), "pedestrian")
    assert not found(dets, (6, 0, 16, 10), "car")  # IoU 0.25


def test_config_is_checked():
    with pytest.raises(ConfigError, match="teleport"):
        ScenarioEvalConfig(templates=["teleport"])
    with pytest.raises(ConfigError):
        ScenarioEvalConfig(frames=10)


def test_eval_scores_model_ceiling_and_floor(tmp_path, capsys):
    from amplify.wfm.painter import Painter, PainterConfig

    painter = Painter(PainterConfig(widths=(4, 4, 8, 8))).eval()
    cfg = ScenarioEvalConfig(scenes=1, templates=["lead_stopped", "remove_agent"], frames=9,
                             width=128, height=64, conditions=["clear_day"], detector="",
                             out_json=str(tmp_path / "r.json"), sheet=str(tmp_path / "s.png"))  # fmt: skip
    result = evaluate_scenarios(cfg, painter=painter, progress=lambda *_: None)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads((tmp_path / "r.json").read_text()) == result
    assert (tmp_path / "s.png").is_file()
    lead = result["templates"]["lead_stopped"]
    # The twin's own pixels are the ceiling; the untrained painter is below it; outside the edit
    # every method keeps the source (the painter bit for bit).
    assert lead["copy_paste"]["box_ssim"] > 0.9
    assert lead["model"]["box_ssim"] < lead["copy_paste"]["box_ssim"]
    assert lead["model"]["outside_blur_ssim"] == pytest.approx(1.0)
    assert np.isfinite(result["templates"]["remove_agent"]["model"]["box_psnr"])
    # The twin's own pixels move exactly as the twin: no temporal error; the others have some.
    assert lead["copy_paste"]["box_temporal_error"] < 0.5
    assert lead["model"]["box_temporal_error"] > lead["copy_paste"]["box_temporal_error"]
