"""Jobs take scenarios: real Ray, a real synthetic corpus plus an unlabelled clip, tiny models.
Rows carry the template, its parameters and the edited boxes; the contact sheet is written."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

from amplify.config import GenerateConfig, RunConfig, TrackingConfig
from amplify.dataset.reader import read_table
from amplify.io.ingest import IngestConfig
from amplify.io.samples import write_video
from amplify.labels import load_labels, write_labels
from amplify.synth.corpus import SynthConfig, make_corpus
from pipelines.run import run_job


def test_scenario_mix_over_synthetic_and_real_clips(tmp_path, tiny_models, ray_local):
    corpus = tmp_path / "in"
    make_corpus(SynthConfig(out=str(corpus), clips=1, seed=3, frames=9, width=64, height=32,
                            fps=8.0, weathers=("clear",), times_of_day=("day",)),
                progress=lambda *_: None)  # fmt: skip
    write_video(corpus / "dashcam.mp4", frames=12, width=80, height=40)  # no labels
    # A user's labelled clip: the rendered video with a sidecar that keeps the 3D boxes and the
    # camera matrix but not the synthetic scene (as an AV log's export would carry them).
    other = tmp_path / "other"
    make_corpus(SynthConfig(out=str(other), clips=1, seed=4, frames=9, width=64, height=32,
                            fps=8.0, weathers=("clear",), times_of_day=("day",)),
                progress=lambda *_: None)  # fmt: skip
    (mp4,) = other.glob("scene_*.mp4")
    shutil.copy(mp4, corpus / "user3d.mp4")
    write_labels(replace(load_labels(mp4), extra={}, condition=None), corpus / "user3d.labels.json")
    cfg = RunConfig(
        input=str(corpus),
        output=str(tmp_path / "ds"),
        ingest=IngestConfig(fps=8, width=64, height=32, window=9, stride=9),
        generate=GenerateConfig(
            variations=["rain_night"],
            scenarios=["lead_stopped", "remove_agent:2"],
            checkpoint=tiny_models["wfm"],
            tokenizer=tiny_models["tokenizer"],
            painter=tiny_models["painter"],
            steps=2,
        ),
        tracking=TrackingConfig(enabled=False),
    )
    logs: list[str] = []
    result = run_job(cfg, log=logs.append)
    assert result.counts["errors"] == 0, read_table(tmp_path / "ds", "errors").to_pylist()
    clips = read_table(tmp_path / "ds", "clips").to_pylist()
    frames = read_table(tmp_path / "ds", "frames", ["clip_id", "frame_index", "boxes"]).to_pylist()
    boxes = {(f["clip_id"], f["frame_index"]): f["boxes"] for f in frames}
    src = {c["clip_id"]: c for c in clips if c["variation"] == "source"}
    synth = next(c for c in src.values() if c["has_labels"] and "scene_" in c["source_path"])
    real = next(c for c in src.values() if not c["has_labels"])
    kids = [c for c in clips if c["parent_clip_id"] == synth["clip_id"]]
    # One sample per template, each under the source's look and under rain_night; plus rain_night.
    assert sorted(c["variation"] for c in kids) == sorted(
        ["rain_night", "source+lead_stopped", "rain_night+lead_stopped",
         "source+remove_agent", "rain_night+remove_agent"])  # fmt: skip
    for c in kids:
        if c["scenario"] is None:
            assert c["scenario_params"] is None
            continue
        p = json.loads(c["scenario_params"])
        assert p["world"] == "scene" and p["camera"] == "scene" and len(p["painter_sha256"]) == 64
        assert c["variation"].endswith("+" + c["scenario"])
        per_frame = [boxes[(c["clip_id"], i)] for i in range(c["num_frames"])]
        ids = {b["track_id"] for f in per_frame for b in f}
        generated = {b["track_id"] for f in per_frame for b in f if b["is_generated"]}
        if c["scenario"] == "lead_stopped":
            assert generated and generated <= set(p["added"])
            assert "distance_m" in p and 15 <= p["distance_m"] <= 50
        else:  # remove_agent: the removed track is in no frame of the variation
            (gone,) = p["removed"]
            assert gone not in ids and not generated
            assert any(
                b["track_id"] == gone for i in range(9) for b in boxes[(synth["clip_id"], i)]
            )
    # The unlabelled clip: lead_stopped on the ground plane; remove_agent has nothing to remove.
    real_kids = {c["variation"]: c for c in clips if c["parent_clip_id"] == real["clip_id"]}
    assert "source+lead_stopped" in real_kids and "source+remove_agent" not in real_kids
    assert (
        json.loads(real_kids["source+lead_stopped"]["scenario_params"])["world"] == "ground_plane"
    )
    assert real_kids["source+lead_stopped"]["has_labels"]
    assert json.loads(real_kids["source+lead_stopped"]["scenario_params"])["camera"] == "boxes_2d"
    # The user's clip: no scene, so the ground-plane world, but its camera and agents come from
    # the sidecar's 3D boxes; its labelled agents can be removed.
    user = next(c for c in src.values() if "user3d" in c["source_path"])
    user_kids = {c["variation"]: c for c in clips if c["parent_clip_id"] == user["clip_id"]}
    for v in ("source+lead_stopped", "source+remove_agent"):
        p = json.loads(user_kids[v]["scenario_params"])
        assert (p["world"], p["camera"]) == ("ground_plane", "labels_3d"), p
    assert any("skipped remove_agent" in line for line in logs)
    sheets = list((tmp_path / "ds" / "_reports").glob("*.png"))
    assert sheets
