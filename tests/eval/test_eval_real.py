"""`amplify eval real`: real (tiny, untrained) world-model and tokenizer checkpoints and the
committed classifier through the CLI; stand-ins with known behaviour for the exact figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from amplify.cli import main
from amplify.conditions import Condition
from amplify.errors import ConfigError
from amplify.eval.real import RealEvalConfig, evaluate_real
from amplify.io.samples import write_video

pytest.importorskip("albumentations")

KEYS = {"clips", "identity_psnr", "identity_ssim", "tokenizer_psnr", "tokenizer_ssim",
        "classifier_acc_sources", "model", "augment", "errors", "config", "checkpoint",
        "classifier"}  # fmt: skip
METRICS = {"blur_ssim", "edge_f1", "sharpness", "cls_acc", "flicker_ratio"}
SMALL = dict(width=64, height=32, frames=5)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two 12-frame clips (one in a subfolder) and their conditions file."""
    d = tmp_path_factory.mktemp("real")
    write_video(d / "a.mp4", frames=12, width=96, height=48)
    (d / "sub").mkdir()
    write_video(d / "sub" / "b.mp4", frames=12, width=80, height=40)
    f = d / "conditions.json"
    f.write_text(json.dumps({"a.mp4": "clear_day", "sub/b.mp4": "clear_night"}))
    return d, f


@pytest.fixture(scope="module")
def tiny_checkpoints(tiny_models):
    return tiny_models["wfm"], tiny_models["tokenizer"]


class Darken:
    """A 'world model' with known behaviour: darkens for night, else returns the source."""

    checkpoint_sha256 = "stand-in"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.tokenizer = IdentityTokenizer()

    def generate(self, frames: np.ndarray, condition: Condition, seed: int = 0) -> np.ndarray:
        self.calls.append(condition.name)
        out = frames.copy()
        return (out // 3).astype(np.uint8) if condition.time_of_day == "night" else out

    def generate_many(self, frames: np.ndarray, requests: list, *, source=None) -> list[np.ndarray]:
        return [self.generate(frames, c, seed=s) for c, s in requests]


class IdentityTokenizer(torch.nn.Module):
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z / 2


class Brightness(torch.nn.Module):
    """A classifier with known behaviour: always clear; night when the frame is dark, else day."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, 3, 64, 128)
        dark = (x.mean((1, 2, 3)) < -0.25).float()  # x in [-0.5, 0.5]
        weather = torch.tensor([10.0, 0, 0, 0]).expand(len(x), 4)
        tod = torch.stack([1 - dark, torch.zeros_like(dark), dark], 1) * 10
        return weather, tod


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_cli_end_to_end(tmp_path, clips, tiny_checkpoints, capsys):
    from PIL import Image

    from amplify.wfm.checkpoint import sha256_file

    d, f = clips
    wfm, tok = tiny_checkpoints
    sheet, js = tmp_path / "sheet.jpg", tmp_path / "r.json"
    rc = main(["eval", "real", f"input={d}", f"conditions={f}", f"checkpoint={wfm}",
               f"tokenizer={tok}", "width=64", "height=32", "frames=5",
               "targets=[rain_day,clear_night]", f"sheet={sheet}", f"out_json={js}"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    r = _last_json(out)
    assert set(r) == KEYS and r == json.loads(js.read_text())
    progress = [s for s in out.splitlines() if s.startswith("eval real: clip")]
    assert len(progress) == 2 and all(s.endswith(" s") for s in progress)
    assert "| clip | condition | classified | identity_psnr |" in out
    assert [c["clip"] for c in r["clips"]] == ["a.mp4", "sub/b.mp4"]
    for c in r["clips"]:
        assert c["windows"] == 1 and c["frames"] == 5
        assert 0 < c["identity_psnr"] < 100 and -1 <= c["identity_ssim"] <= 1
        assert 0 < c["tokenizer_psnr"] <= 100 and -1 <= c["tokenizer_ssim"] <= 1
        assert c["identity_sharpness"] >= 0 and c["tokenizer_sharpness"] >= 0
    assert r["identity_psnr"] == pytest.approx(np.mean([c["identity_psnr"] for c in r["clips"]]),
                                               abs=1e-3)  # fmt: skip
    assert r["classifier_acc_sources"] in (0.0, 0.5, 1.0)
    for k in ("model", "augment"):
        assert set(r[k]) == {"rain_day", "clear_night"}
        for m in r[k].values():
            assert set(m) == METRICS
            assert -1 <= m["blur_ssim"] <= 1 and 0 <= m["edge_f1"] <= 1
            assert 0 <= m["cls_acc"] <= 1 and m["sharpness"] >= 0 and m["flicker_ratio"] >= 0
    assert r["checkpoint"] == {"name": wfm, "sha256": sha256_file(wfm)}
    assert r["classifier"]["name"] == "cond-cls"
    # per clip: source / model / augment rows of 32 + 14 px; a label column and 3 tiles of 64 px
    assert Image.open(sheet).size == (150 + 3 * 64, 2 * 3 * (32 + 14))


def test_identity_stand_in_scores_the_cap(clips, capsys):
    d, f = clips
    cfg = RealEvalConfig(input=str(d), conditions=str(f), targets=("fog_day", "clear_night"),
                         **SMALL)  # fmt: skip
    gen, said = Darken(), []
    r = evaluate_real(cfg, generator=gen, classifier=Brightness(), progress=said.append)
    # per clip: its own condition first, then each target (the own one reused: same seed)
    assert gen.calls == ["clear_day", "fog_day", "clear_night", "clear_night", "fog_day"]
    a, b = r["clips"]
    assert a["identity_psnr"] == 100.0 and a["identity_ssim"] == pytest.approx(1.0)
    assert a["identity_sharpness"] == pytest.approx(1.0) and b["identity_sharpness"] < 0.2
    assert b["identity_psnr"] < 30  # asked for night, the stand-in darkens: no longer the source
    assert r["tokenizer_psnr"] == 100.0 and r["tokenizer_ssim"] == pytest.approx(1.0)
    assert all(c["tokenizer_sharpness"] == pytest.approx(1.0) for c in r["clips"])
    # both sources are bright: the classifier says clear_day for both, the file says so for one
    assert r["classifier_acc_sources"] == 0.5
    fog, night = r["model"]["fog_day"], r["model"]["clear_night"]
    for k in ("blur_ssim", "edge_f1", "sharpness", "flicker_ratio"):
        assert fog[k] == pytest.approx(1.0)  # the source unchanged
    assert fog["cls_acc"] == 0.0 and night["cls_acc"] == 1.0
    assert night["sharpness"] < 0.2 and night["flicker_ratio"] < 0.5  # a third of the contrast
    assert set(r["augment"]) == {"fog_day", "clear_night"}
    assert _last_json(capsys.readouterr().out) == r
    assert said[-1].splitlines()[-1].startswith("| **mean** | augment |")


def test_without_a_model_scores_the_baseline_only(clips, capsys):
    d, f = clips
    cfg = RealEvalConfig(input=str(d), conditions=str(f), checkpoint="none",
                         targets=("snow_day",), **SMALL)  # fmt: skip
    r = evaluate_real(cfg, classifier=Brightness(), progress=lambda s: None)
    assert r["model"] == {} and r["identity_psnr"] is None and r["tokenizer_psnr"] is None
    assert r["checkpoint"] == {"name": "none", "sha256": None}
    assert set(r["augment"]["snow_day"]) == METRICS


def test_an_unreadable_clip_is_an_error_row(tmp_path, clips):
    d, _ = clips
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    (tmp_path / "a.mp4").symlink_to(d / "a.mp4")
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"broken.mp4": "rain_day", "a.mp4": "clear_day"}))
    cfg = RealEvalConfig(input=str(tmp_path), conditions=str(f), targets=("fog_day",), **SMALL)
    r = evaluate_real(cfg, generator=Darken(), classifier=Brightness(), progress=lambda s: None)
    assert [c["clip"] for c in r["clips"]] == ["a.mp4"]
    assert [e["clip"] for e in r["errors"]] == ["broken.mp4"]


@pytest.mark.parametrize("content,rc,said", [
    (None, 2, "no such file"),
    ("{not json", 2, "not valid JSON"),
    ('["a.mp4"]', 2, "non-empty JSON object"),
    ('{"a.mp4": "hail_day"}', 2, "clip 'a.mp4': condition 'hail_day'"),
    ('{"a.mp4": "clear_day", "gone.mp4": "rain_day"}', 1, "clip 'gone.mp4' of"),
])  # fmt: skip
def test_bad_conditions_file_names_the_file_and_the_clip(tmp_path, clips, capsys, content, rc,
                                                         said):  # fmt: skip
    d, _ = clips
    f = tmp_path / "conditions.json"
    if content is not None:
        f.write_text(content)
    assert main(["eval", "real", f"input={d}", f"conditions={f}", "checkpoint=none"]) == rc
    err = capsys.readouterr().err
    assert str(f) in err and said in err


@pytest.mark.parametrize("kw,key", [
    ({"frames": 6}, "frames"), ({"width": 100}, "width"), ({"max_windows": -1}, "max_windows"),
    ({"targets": ("rain_noon",)}, "targets"), ({"targets": ("fog_day", "fog_day")}, "targets"),
    ({"sheet": "s.gif"}, "sheet"), ({"input": "/nonexistent/folder"}, "input"),
    ({"intensity": 1.5}, "intensity"),
])  # fmt: skip
def test_config_validation(tmp_path, kw, key):
    base = {"input": str(tmp_path), "conditions": "c.json"}
    with pytest.raises(ConfigError) as e:
        RealEvalConfig(**{**base, **kw})
    assert e.value.key == key


def test_input_and_conditions_are_required(tmp_path, capsys):
    assert main(["eval", "real", "checkpoint=none"]) == 2
    assert "input=DIR" in capsys.readouterr().err
    assert main(["eval", "real", f"input={tmp_path}", "checkpoint=none"]) == 2
    assert "conditions=FILE" in capsys.readouterr().err


def test_config_composes(tmp_path):
    from amplify.config import load_config

    c = load_config("eval_real", RealEvalConfig,
                    [f"input={tmp_path}", "conditions=c.json", "targets=[rain_night]"])  # fmt: skip
    assert c.targets == ("rain_night",) and c.max_windows == 1 and c.threads == 1
    assert c.checkpoint == "wfm-grade" and c.frames == 17 and not math.isnan(c.intensity)
    assert load_config("eval_real", RealEvalConfig, []).input == ""  # composes without input
