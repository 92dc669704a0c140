"""Stage functions called directly, without Ray: ingest a clip, then generate its variations
with a real (tiny, untrained) world model through the one generation path."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
import pytest
import torch

from amplify.io.ingest import IngestConfig
from amplify.io.samples import write_video
from amplify.stages import ClipTask, GenerateTarget, generate_clip, ingest_clip, staging_dir


@pytest.fixture(scope="module")
def grade_checkpoints(tmp_path_factory):
    from amplify.tokenizer.checkpoint import save_tokenizer
    from amplify.tokenizer.config import get_config as tok_config
    from amplify.tokenizer.model import CausalVideoTokenizer
    from amplify.wfm.checkpoint import save_wfm
    from amplify.wfm.config import get_config as wfm_config
    from amplify.wfm.model import WorldModel

    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    tok = save_tokenizer(CausalVideoTokenizer(tok_config("tok-tiny")), d / "tok-tiny")
    model = WorldModel(wfm_config("wfm-grade-tiny"))
    with torch.no_grad():  # a head that does something: the zero init would be the identity
        model.out.weight.normal_(0, 0.05)
        for blk in model.blocks:
            blk.ada[1].weight.normal_(0, 0.05)
        model.ada_out[1].weight.normal_(0, 0.05)
    return str(save_wfm(model, d / "wfm-grade-tiny")), str(tok)


def test_generate_clip_without_ray(tmp_path, grade_checkpoints):
    from amplify.wfm.generate import Generator

    torch.set_num_threads(1)
    video = write_video(tmp_path / "drive.mp4", frames=12, width=64, height=32)
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    ing = IngestConfig(fps=10, width=64, height=32, window=9, stride=9)
    task = ClipTask(str(video), sha, str(tmp_path / "ds"), "job1", "train", ing)
    staged = ingest_clip(task)
    stage = staging_dir(task.out, task.job_id)
    part = staged.parts["clips"][0]
    (clip_id,) = pq.read_table(stage / "clips" / part, columns=["clip_id"]).column(0).to_pylist()
    gen = Generator(*grade_checkpoints)
    target = GenerateTarget(
        frames_part=str(stage / "frames" / part), clips_part=str(stage / "clips" / part),
        clip_id=clip_id, source_path=str(video), sha256=sha, out=task.out, job_id="job1",
        variations=("rain_day", "clear_night"), intensity=0.7, seeds=1,
    )  # fmt: skip
    result = generate_clip(gen, target)
    assert result.ok, result.error
    assert result.counts == {"variations": 2, "frames": 2 * 9}
    (name,) = result.parts["clips"]
    rows = pq.read_table(stage / "clips" / name).to_pylist()
    assert sorted(r["variation"] for r in rows) == ["clear_night", "rain_day"]  # parts sort by id
    assert all(r["generator"] == gen.name and r["parent_clip_id"] == clip_id for r in rows)
    frames = pq.read_table(stage / "frames" / name).to_pylist()
    night = [f["image"]["bytes"] for f in frames if f["variation"] == "clear_night"]
    rain = [f["image"]["bytes"] for f in frames if f["variation"] == "rain_day"]
    assert len(night) == 9 and night != rain
