"""The job report: a hand-made two-job dataset (a source window, then its variations, an inserted
agent and an error), its HTML page played in headless Chromium over the DevTools protocol."""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from amplify.cli import main
from amplify.dataset.schema import clip_id, error_id, frame_id, source_id
from amplify.dataset.writer import Manifest, commit, now_iso, staging_dir, to_table, write_part
from amplify.io.samples import pattern_frame
from amplify.report import ReportConfig, html_report, write_job_report

W, H, N, FPS = 64, 32, 9, 8.0
CAR = {"track_id": 1, "category": "car", "x0": 6.0, "y0": 18.0, "x1": 22.0, "y1": 28.0}
PED = {"track_id": 7, "category": "pedestrian", "x0": 40.0, "y0": 8.0, "x1": 52.0, "y1": 28.0}
METRICS = {"blur_ssim": 0.8125, "edge_f1": 0.5, "sharpness": 1.25, "cls_score": 0.9375}


def _commit(out: Path, job: str, tables: dict[str, pa.Table]) -> None:
    staged = {}
    for name, table in tables.items():
        write_part(table, staging_dir(out, job) / name / f"{job}.parquet")
        staged[name] = [f"{job}.parquet"]
    counts = {name: t.num_rows for name, t in tables.items()}
    commit(out, Manifest(job, now_iso(), {}, counts=counts, timings={"total_s": 1.0}), staged)


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Job "a" ingests one window; job "b" adds rain_night and a cut-in (its pedestrian is
    `is_generated`), with quality metrics, plus one error row."""
    out = tmp_path_factory.mktemp("report") / "ds"
    sid, ingest = source_id("ab" * 32), "fps8|64x32|w9s9"
    base = dict(source_id=sid, source_path="/in/drive.mp4", source_sha256="ab" * 32,
                split="train", window_index=0, shot_index=0, start_s=0.0, num_frames=N, fps=FPS,
                width=W, height=H, intensity=None, scenario=None, scenario_params=None, seed=0,
                checkpoint_sha256=None, parent_clip_id=None, has_labels=True, num_boxes=N,
                source_meta="{}", ingest=ingest)  # fmt: skip
    src = {**base, "clip_id": clip_id(sid, ingest, 0), "variation": "source",
           "weather": "clear", "time_of_day": "day", "generator": "source"}  # fmt: skip
    params = {"world": "scene", "distance_m": 12.5, "added": [7]}
    kids = [
        {**base, "clip_id": clip_id(sid, ingest, 0, v), "variation": v, "weather": wt,
         "time_of_day": td, "intensity": 0.7, "generator": "wfm:wfm-grade",
         "checkpoint_sha256": "c" * 64, "parent_clip_id": src["clip_id"], "scenario": sc,
         "scenario_params": json.dumps(params) if sc else None}
        for v, wt, td, sc in [("rain_night", "rain", "night", None),
                              ("source+cut_in", "clear", "day", "cut_in")]
    ]  # fmt: skip

    def frames(c: dict, look, boxes) -> list[dict]:
        return [
            {"frame_id": frame_id(c["clip_id"], i), "clip_id": c["clip_id"], "source_id": sid,
             "split": "train", "variation": c["variation"], "frame_index": i,
             "timestamp_s": i / FPS, "image": {"bytes": _png(look(pattern_frame(i, W, H))),
             "path": None}, "width": W, "height": H, "boxes": boxes, "weather": c["weather"],
             "time_of_day": c["time_of_day"], "intensity": c["intensity"]}
            for i in range(N)
        ]  # fmt: skip

    car = {**CAR, "is_generated": False}
    _commit(out, "a", {"frames": to_table("frames", frames(src, lambda a: a, [car])),
                       "clips": to_table("clips", [src])})  # fmt: skip
    rows = frames(kids[0], lambda a: a // 3, [car])
    rows += frames(kids[1], lambda a: a, [car, {**PED, "is_generated": True}])
    clips = to_table("clips", [{**k, **METRICS} for k in kids])
    for k, v in METRICS.items():  # a schema without the metric columns: add them, as a newer one
        if k not in clips.schema.names:
            clips = clips.append_column(pa.field(k, pa.float32()), pa.array([v] * 2, pa.float32()))
    err = {"error_id": error_id("/in/broken.mp4", "probe", None), "source_path": "/in/broken.mp4",
           "source_sha256": None, "stage": "probe", "error_type": "CorruptVideoError",
           "message": "/in/broken.mp4: moov atom not found", "job_id": "b"}  # fmt: skip
    _commit(out, "b", {"frames": to_table("frames", rows), "clips": clips,
                       "errors": to_table("errors", [err])})  # fmt: skip
    return out


# Headless Chromium over the DevTools protocol on a pipe (fds 3 and 4: no websocket library) ----


def _chromium() -> str:
    for name in (os.environ.get("AMPLIFY_CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    pytest.skip("headless Chromium not found (Debian: apt-get install chromium; .ci/run does)")


class Chromium:
    """Just enough of a CDP client: send a command, wait for its answer or an event."""

    def __init__(self, exe: str, profile: Path) -> None:
        import fcntl

        to_browser, self._w = os.pipe()
        self._r, from_browser = os.pipe()
        # Chromium reads commands on fd 3 and writes on fd 4; park both above 10 first so that
        # placing one never overwrites the other in the child.
        hi = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        os.close(to_browser)
        os.close(from_browser)
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--mute-audio",
                "--no-first-run", "--autoplay-policy=no-user-gesture-required",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            close_fds=False,  # every other fd of ours is close-on-exec
            preexec_fn=lambda: (os.dup2(hi[0], 3), os.dup2(hi[1], 4)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in hi:
            os.close(fd)
        self._buf, self._n = b"", 0

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._r], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._r, 1 << 16) if ready else b""
            if not chunk:
                raise TimeoutError("chromium did not answer" if not ready else "chromium exited")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._n += 1
        msg = {"id": self._n, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 20
        while (m := self._read(deadline)).get("id") != self._n:
            pass
        assert "error" not in m, f"{method}: {m['error']}"
        return m["result"]

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + 20
        while (m := self._read(deadline)).get("method") != method:
            pass
        return m

    def open(self, url: str) -> str:
        """A new tab, tall enough that every video is on screen (muted autoplay pauses off it)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1800, "height": 3000, "deviceScaleFactor": 1, "mobile": False},
                  s)  # fmt: skip
        self.send("Page.enable", {}, s)
        self.send("Page.navigate", {"url": url}, s)
        self.wait_event("Page.loadEventFired")
        return s

    def evaluate(self, session: str, js: str):
        r = self.send(
            "Runtime.evaluate",
            {"expression": js, "awaitPromise": True, "returnByValue": True},
            session,
        )
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"]["value"]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._r)
        os.close(self._w)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Chromium(_chromium(), tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


# Every video: ready (>= HAVE_CURRENT_DATA) within 10 s, then currentTime sampled every 50 ms for
# 0.8 s (the 9-frame clips loop every 1.1 s, so count changes rather than compare ends).
PLAYS = """(async () => {
  const vs = [...document.querySelectorAll("video")];
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  for (let t = 0; t < 200 && vs.some(v => v.readyState < 2 && !v.error); t++) await sleep(50);
  const moves = vs.map(() => 0), last = vs.map(v => v.currentTime);
  for (let t = 0; t < 16; t++) {
    await sleep(50);
    vs.forEach((v, i) => { if (v.currentTime !== last[i]) moves[i]++; last[i] = v.currentTime; });
  }
  return vs.map((v, i) => ({src: v.getAttribute("src"), ready: v.readyState, paused: v.paused,
    error: v.error && v.error.message, moves: moves[i], width: v.videoWidth}));
})()"""


def _first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)


@pytest.fixture(scope="module", params=["h264", "vp9"])
def page(request, dataset, tmp_path_factory) -> Path:
    """Job "b"'s page: H.264 as the job writes it (then copied elsewhere), VP9 elsewhere."""
    d = tmp_path_factory.mktemp(request.param)
    if request.param == "h264":
        made = write_job_report(dataset, "b", ReportConfig(codec="h264"))
        assert set(made) == {"png", "html"} and made["png"].is_file()
        return shutil.copytree(dataset / "_reports", d / "copied") / "b.html"
    return html_report(dataset, "b", d / "b.html", ReportConfig(codec=request.param))


def _videos(page: Path) -> dict[str, Path]:
    """The card's title ("source", a variation) -> its video (the video's title is the clip id)."""
    text, found = page.read_text(), {}
    for v in (page.parent / "b").iterdir():
        cut = text.index(f'title="{v.stem}"')
        found[text[cut : text.index("</b>", cut)].rsplit("<b>", 1)[1]] = v
    return found


def test_report_page_shows_specs_metrics_boxes_and_errors(page):
    text = page.read_text()
    videos = _videos(page)
    assert set(videos) == {"source", "rain_night", "source+cut_in"}  # one window, side by side
    assert text.count("<video") == 3
    assert f'src="b/{videos["source"].name}"' in text  # relative: the folder can be copied
    for needle in ["drive.mp4", "rain_night", "source+cut_in", "cut_in", "distance_m", "12.5",
                   "blur SSIM", "0.812", "classifier", "0.938", "wfm:wfm-grade", "seed",
                   "CorruptVideoError", "moov atom not found", "Totals"]:  # fmt: skip
        assert needle in text, needle
    if videos["source"].suffix == ".mp4":  # +faststart: the index before the media data
        head = videos["source"].read_bytes()
        assert head.index(b"moov") < head.index(b"mdat")

    # Boxes are drawn into the frames: magenta only where a scenario inserted the pedestrian.
    def colour(video: Path) -> tuple[int, int]:
        a = _first_frame(video)
        r, g, b = a[..., 0], a[..., 1], a[..., 2]
        return int(((r - g > 90) & (b - g > 90)).sum()), int(((r - b > 90) & (g - b > 90)).sum())

    magenta_src, yellow_src = colour(videos["source"])
    magenta_cut, yellow_cut = colour(videos["source+cut_in"])
    assert magenta_src == 0 and yellow_src > 20
    assert magenta_cut > 20 and yellow_cut > 20


def test_report_videos_load_and_play_in_chromium(page, browser):
    t0 = time.perf_counter()
    session = browser.open(page.as_uri())
    states = browser.evaluate(session, PLAYS)
    assert len(states) == 3
    for s in states:
        assert s["error"] is None and s["ready"] >= 2 and s["width"] == 256, s
        assert not s["paused"] and s["moves"] >= 3, s  # it plays: currentTime advances
    assert time.perf_counter() - t0 < 15


def test_cli_rebuilds_the_latest_job_and_names_a_bad_one(dataset, capsys):
    page = dataset / "_reports" / "b.html"
    page.unlink(missing_ok=True)
    assert main(["report", f"output={dataset}"]) == 0
    assert page.is_file() and str(page) in capsys.readouterr().out
    assert main(["report", f"output={dataset}", "job=nosuchjob"]) == 2
    assert "job='nosuchjob'" in capsys.readouterr().err
    # job "a" made no variation: the page still lists its totals
    assert main(["report", f"output={dataset}", "job=a", "codec=vp9"]) == 0
    assert "made no variations" in (dataset / "_reports" / "a.html").read_text()
