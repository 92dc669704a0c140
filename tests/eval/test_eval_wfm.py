"""`amplify.wfm.evaluate` end to end with a stand-in generator (no world model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amplify.conditions import Condition
from amplify.errors import ConfigError
from amplify.eval.classifier import ConditionClassifier
from amplify.wfm.evaluate import WFMEvalConfig, evaluate

pytest.importorskip("albumentations")


class StandIn:
    """Darkens for night, otherwise returns the source: a 'model' with known behaviour."""

    checkpoint_sha256 = "stand-in"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def generate(self, frames, condition: Condition, seed=0, layout=None, depth=None, source=None):
        self.calls.append(
            (frames.shape, condition.name, seed, layout is not None, depth is not None)
        )
        out = frames.copy()
        if condition.time_of_day == "night":
            out = (out // 3).astype(np.uint8)
        return out


def test_evaluate_end_to_end(tmp_path, capsys):
    cfg = WFMEvalConfig(scenes=1, frames=5, width=64, height=32, targets=("fog_day", "clear_night"),
                        sheet=str(tmp_path / "sheet.png"), out_json=str(tmp_path / "r.json"))  # fmt: skip
    gen, said = StandIn(), []
    r = evaluate(cfg, generator=gen, classifier=ConditionClassifier(), progress=said.append)
    assert [c[1] for c in gen.calls] == ["fog_day", "clear_night"]
    table = said[-1].splitlines()  # the Markdown summary comes right before the JSON line
    assert table[0].startswith("| condition | method | psnr | ssim |")
    psnr = r["conditions"]["clear_night"]["model"]["psnr"]
    assert any(row.startswith(f"| clear_night | model | {psnr:.1f} |") for row in table)
    assert gen.calls[0][0] == (5, 32, 64, 3) and gen.calls[0][3] and gen.calls[0][4]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads((tmp_path / "r.json").read_text())
    assert (tmp_path / "sheet.png").stat().st_size > 0
    fog = r["conditions"]["fog_day"]
    # the stand-in returns the source unchanged for fog: it scores exactly as the source baseline
    for k in ("psnr", "ssim", "edge_f1", "blur_ssim"):
        assert fog["model"][k] == pytest.approx(fog["source"][k])
    assert fog["model"]["edge_f1"] == pytest.approx(1.0)
    assert fog["model"]["blur_ssim"] == pytest.approx(1.0)
    night = r["conditions"]["clear_night"]
    assert night["model"]["psnr"] > night["source"]["psnr"]  # darker is closer to the night twin
    for k in ("model", "source", "augment"):
        assert night[k]["fd"] >= 0
        assert 0 <= night[k]["cls_acc"] <= 1
    assert set(r["overall"]) == {"model", "source", "augment", "truth"}
    assert r["generator"]["checkpoint_sha256"] == "stand-in"


def test_evaluate_real_clips(tmp_path, real_clips, capsys):
    cfg = WFMEvalConfig(scenes=1, frames=5, width=64, height=32, targets=("clear_night",),
                        real=str(real_clips), max_real=1, sheet=str(tmp_path / "s.png"))  # fmt: skip
    r = evaluate(
        cfg, generator=StandIn(), classifier=ConditionClassifier(), progress=lambda s: None
    )
    assert len(r["real"]["clips"]) == 1
    assert 0 <= r["real"]["overall"]["model"]["edge_f1"] <= 1


@pytest.mark.parametrize("kw,key", [
    ({"scenes": 0}, "scenes"), ({"frames": 6}, "frames"), ({"width": 100}, "width"),
    ({"guidance": -1.0}, "guidance"), ({"source_weather": "hail"}, "source_weather"),
    ({"targets": ("rain_noon",)}, "targets"), ({"targets": ("clear_day",)}, "targets"),
    ({"real": "/nonexistent/folder"}, "real"), ({"seed": -1}, "seed"),
])  # fmt: skip
def test_config_validation(kw, key):
    with pytest.raises(ConfigError) as e:
        WFMEvalConfig(**kw)
    assert e.value.key == key


def test_configs_compose():
    from amplify.config import load_config
    from amplify.eval.classifier import ClassifierTrainConfig

    c = load_config("eval_wfm", WFMEvalConfig, ["scenes=2", "targets=[rain_night,fog_dusk]"])
    assert c.scenes == 2 and c.targets == ("rain_night", "fog_dusk") and c.seed == 10_000
    t = load_config("train_classifier", ClassifierTrainConfig, ["epochs=3"])
    assert t.epochs == 3 and t.name == "cond-cls"


def test_baselines_only_without_a_model(capsys):
    cfg = WFMEvalConfig(checkpoint="none", scenes=1, frames=5, width=64, height=32,
                        targets=("snow_day",))  # fmt: skip
    r = evaluate(cfg, classifier=ConditionClassifier(), progress=lambda s: None)
    assert set(r["overall"]) == {"source", "augment", "truth"}
    assert r["generator"]["seconds_per_clip"] is None


def test_tokenizer_ceiling_scores_the_twin_through_the_tokenizer():
    import torch

    class IdentityTokenizer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.w

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return z

    gen = StandIn()
    gen.tokenizer = IdentityTokenizer()
    cfg = WFMEvalConfig(scenes=1, frames=5, width=64, height=32, targets=("rain_day",))
    r = evaluate(cfg, generator=gen, classifier=ConditionClassifier(), progress=lambda s: None)
    recon = r["overall"]["recon"]
    assert recon["psnr"] == 100.0 and recon["ssim"] == pytest.approx(1.0)
    assert recon["fd"] == pytest.approx(0.0, abs=1e-3)


def test_refining_generator_is_scored_before_and_after():
    from amplify.wfm.refine import RefineConfig

    class Soft(StandIn):
        """Blurs its output (a soft decoder); restores detail when asked, like Generator."""

        refine = RefineConfig(radius=0.25)

        def generate(
            self, frames, condition, seed=0, layout=None, depth=None, refine=True, source=None
        ):
            from amplify.wfm.controls import blur
            from amplify.wfm.refine import restore_detail

            out = (blur(super().generate(frames, condition, seed), 3.0) * 255).round()
            out = out.astype(np.uint8)
            return restore_detail(out, frames, self.refine) if refine else out

    cfg = WFMEvalConfig(scenes=1, frames=5, width=64, height=32, targets=("clear_night",),
                        tokenizer_ceiling=False)  # fmt: skip
    r = evaluate(cfg, generator=Soft(), classifier=ConditionClassifier(), progress=lambda s: None)
    assert set(r["overall"]) == {"model", "raw", "source", "augment", "truth"}
    night = r["conditions"]["clear_night"]
    assert night["model"]["edge_f1"] > night["raw"]["edge_f1"]
    assert night["model"]["psnr"] > night["raw"]["psnr"]
