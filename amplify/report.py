"""Visual reports of a dataset, read from committed data only (files a manifest lists):

- `variations_sheet`: one PNG, a row per source window that has variations (middle frames).
- `html_report`: a static page per job, `_reports/<job_id>.html`: each source window and its
  variations playing side by side (small videos under `_reports/<job_id>/`, referenced relatively
  so the folder can be copied), each with its spec and quality metrics, then errors and totals.
- `write_job_report`: both, as the job writes them at commit; `amplify report` rebuilds them.

Boxes are drawn into the frames: agents a scenario inserted (`is_generated`) in magenta, the
source's in yellow.
"""

from __future__ import annotations

import html
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import av
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from amplify.dataset.reader import check_schema, committed_files, read_table
from amplify.dataset.writer import Manifest, read_manifests
from amplify.errors import AmplifyError, ConfigError

CAPTION_H = 14
INSERTED, SOURCE_BOX = (255, 0, 255), (255, 230, 0)  # magenta: placed by a scenario; yellow
# Quality-metric columns of `clips` (issue 11), shown when the dataset has them.
METRICS = {"blur_ssim": "blur SSIM", "edge_f1": "edge F1", "sharpness": "sharpness",
           "cls_score": "classifier"}  # fmt: skip


@dataclass(frozen=True)
class Codec:
    """How the page's videos are written: container, PyAV encoder and the options of both."""

    ext: str
    encoder: str
    mime: str
    container_options: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)


# H.264 first: every browser plays it (Safari included). Debian's chromium 150 plays both (checked
# in headless Chromium: canPlayType "probably", currentTime advances); VP9 when PyAV lacks libx264.
# `+faststart` puts the index first, so a page served over HTTP starts playing before the end.
CODECS = {
    "h264": Codec("mp4", "libx264", "video/mp4", {"movflags": "+faststart"},
                  {"crf": "26", "preset": "veryfast"}),
    "vp9": Codec("webm", "libvpx-vp9", "video/webm", {},
                 {"crf": "34", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
}  # fmt: skip


class ReportError(AmplifyError):
    """A report video could not be written; the message names the file and the frame."""


@dataclass(frozen=True)
class ReportConfig:
    """`amplify report`: (re)build a committed job's report from the dataset at `output`:
    `_reports/<job>.html` (source windows and their variations playing side by side, specs,
    quality metrics, errors, totals; videos in `_reports/<job>/`) and `_reports/<job>.png`."""

    output: str = "out/dataset"
    job: str = ""  # empty: the latest committed job
    width: int = 256  # each video fits in width x height (aspect kept, even sides)
    height: int = 128
    codec: str = "auto"  # auto (h264 when PyAV has libx264, else vp9) | h264 | vp9
    max_windows: int = 24  # source windows on the page (0: all); the rest are counted

    def __post_init__(self) -> None:
        if self.codec not in ("auto", *CODECS):
            raise ConfigError("codec", self.codec, f"must be one of {['auto', *CODECS]}")
        for key in ("width", "height"):
            if not 16 <= getattr(self, key) <= 4096:
                raise ConfigError(key, getattr(self, key), "must be in [16, 4096]")
        if self.max_windows < 0:
            raise ConfigError("max_windows", self.max_windows, "must be >= 0 (0: all)")


def pick_codec(name: str = "auto") -> Codec:
    """The codec `name` names; "auto": H.264 when this PyAV build can encode it, else VP9."""
    if name == "auto":
        name = "h264" if CODECS["h264"].encoder in av.codecs_available else "vp9"
    codec = CODECS[name]
    if codec.encoder not in av.codecs_available:
        raise ConfigError("codec", name, f"this PyAV build has no {codec.encoder} encoder")
    return codec


def draw_boxes(img: Image.Image, boxes: list[dict], scale: tuple[float, float] = (1, 1)) -> None:
    """Outline `boxes` (dataset pixel coordinates, times `scale`) on `img` in place."""
    draw = ImageDraw.Draw(img)
    sx, sy = scale
    for b in boxes:
        colour = INSERTED if b.get("is_generated") else SOURCE_BOX
        draw.rectangle(
            [b["x0"] * sx, b["y0"] * sy, b["x1"] * sx - 1, b["y1"] * sy - 1], outline=colour
        )


def variations_sheet(dataset: str | Path, out_png: str | Path, max_rows: int = 8) -> Path | None:
    """Write the sheet; None when the dataset holds no variation yet."""
    clips = read_table(
        dataset, "clips", ["clip_id", "parent_clip_id", "variation", "source_path", "seed"]
    )
    rows = clips.to_pylist()
    children: dict[str, list[dict]] = {}
    for c in rows:
        if c["parent_clip_id"] is not None and c["seed"] == 0:
            children.setdefault(c["parent_clip_id"], []).append(c)
    if not children:
        return None
    parents = {c["clip_id"]: c for c in rows if c["clip_id"] in children}
    order = sorted(parents, key=lambda k: parents[k]["source_path"])[:max_rows]
    variations = sorted({c["variation"] for kids in children.values() for c in kids})
    wanted = set(order) | {c["clip_id"] for k in order for c in children[k]}
    frames = read_table(dataset, "frames", ["clip_id", "frame_index", "image", "boxes"],
                        filters=[("clip_id", "in", sorted(wanted))]).to_pylist()  # fmt: skip
    by_clip: dict[str, list[dict]] = {}
    for f in frames:
        if f["clip_id"] in wanted:
            by_clip.setdefault(f["clip_id"], []).append(f)

    def tile(clip_id: str | None) -> Image.Image | None:
        fs = sorted(by_clip.get(clip_id or "", []), key=lambda f: f["frame_index"])
        if not fs:
            return None
        f = fs[len(fs) // 2]
        img = Image.open(io.BytesIO(f["image"]["bytes"])).convert("RGB")
        draw_boxes(img, f["boxes"])
        return img

    first = tile(order[0])
    assert first is not None
    w, h = first.size
    cols = ["source", *variations]
    sheet = Image.new("RGB", (w * len(cols), (h + CAPTION_H) * len(order)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, parent in enumerate(order):
        kids = {c["variation"]: c["clip_id"] for c in children[parent]}
        ids = [parent, *[kids.get(v) for v in variations]]
        y = r * (h + CAPTION_H)
        for c, (name, cid) in enumerate(zip(cols, ids, strict=True)):
            img = tile(cid)
            label = f"{Path(parents[parent]['source_path']).name} | {name}" if c == 0 else name
            draw.text((c * w + 3, y + 1), label, fill=(230, 230, 230))
            if img is not None:
                sheet.paste(img, (c * w, y + CAPTION_H))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    return out_png


# The HTML page: one job's windows playing side by side -----------------------------------------


def fit_size(w: int, h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """(w, h) scaled to fit in box_w x box_h, aspect kept, both sides even (yuv420p needs it)."""
    s = min(box_w / w, box_h / h)
    return max(2, round(w * s / 2) * 2), max(2, round(h * s / 2) * 2)


def encode_clip(
    frames: list[dict], path: Path, fps: float, size: tuple[int, int], codec: Codec
) -> Path:
    """Frames (rows of `frames`, in order) -> a video at `fps` and `size`, boxes drawn."""
    rate = Fraction(fps if fps > 0 else 10.0).limit_denominator(1001)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with av.open(str(tmp), "w", format=codec.ext, options=codec.container_options) as out:
            stream = out.add_stream(codec.encoder, rate=rate, options=codec.options)
            stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
            stream.codec_context.thread_count = 1  # same frames, same bytes
            for f in frames:
                try:
                    img = Image.open(io.BytesIO(f["image"]["bytes"])).convert("RGB")
                except OSError as e:
                    raise ReportError(
                        f"{path}: frame {f['frame_index']} of clip {f['clip_id']}: {e}"
                    ) from e
                scale = (size[0] / img.width, size[1] / img.height)
                img = img.resize(size, Image.Resampling.BILINEAR)
                draw_boxes(img, f["boxes"], scale)
                for packet in stream.encode(av.VideoFrame.from_image(img)):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    except av.FFmpegError as e:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"{path}: {codec.encoder}: {e}") from e
    os.replace(tmp, path)
    return path


def _job_manifest(dataset: Path, job_id: str) -> Manifest:
    jobs = read_manifests(dataset)
    for m in jobs:
        if m.job_id == job_id:
            return m
    known = ", ".join(m.job_id for m in jobs[-5:]) or "none"
    raise ConfigError(
        "job", job_id, f"no committed job with this id in {dataset} (latest: {known})"
    )


def _rows(files: list[Path]) -> list[dict]:
    """Every row of the given committed files, all columns (newer columns appear when present)."""
    rows: list[dict] = []
    for f in files:
        check_schema(f)
        rows += pq.read_table(f).to_pylist()
    return rows


def _frames_of(index: dict[Path, set[str]], ids: set[str]) -> dict[str, list[dict]]:
    """clip id -> its frames in order, reading only the committed files that hold those clips."""
    by_clip: dict[str, list[dict]] = {}
    cols = ["clip_id", "frame_index", "image", "boxes"]
    for path, held in index.items():
        if held & ids:
            table = pq.read_table(path, columns=cols, filters=[("clip_id", "in", sorted(ids))])
            for f in table.to_pylist():
                by_clip.setdefault(f["clip_id"], []).append(f)
    return {k: sorted(v, key=lambda f: f["frame_index"]) for k, v in by_clip.items()}


def _card_order(c: dict) -> tuple:
    """Conditions first, then each scenario under its looks; seeds in order."""
    return (c["scenario"] or "", c["variation"], c["seed"])


def _e(x: object) -> str:
    return html.escape(str(x))


def _condition(c: dict) -> str:
    if c.get("weather") is None and c.get("time_of_day") is None:
        return "unknown"
    return f"{c.get('weather') or '?'}_{c.get('time_of_day') or '?'}"


def _spec(c: dict, source: bool) -> str:
    """The card's caption: what a training job would filter on."""
    if source:
        items = [
            ("file", Path(c["source_path"]).name),
            ("window", f"{c['window_index']} at {c['start_s']:.2f} s, {c['num_frames']} frames"),
            ("condition", _condition(c)),
            ("split", c["split"]),
            ("boxes", c["num_boxes"]),
        ]
    else:
        items = [
            ("condition", _condition(c)),
            ("intensity", "" if c["intensity"] is None else f"{c['intensity']:.2f}"),
            ("seed", c["seed"]),
            ("generator", c["generator"]),
        ]
        if c.get("checkpoint_sha256"):
            items.append(("checkpoint", c["checkpoint_sha256"][:12]))
        if c.get("spec"):  # list | grid | sample | scenario (datasets of schema 3 on)
            items.append(("origin", json.loads(c["spec"]).get("origin", "")))
        if c.get("scenario"):
            params = json.loads(c["scenario_params"] or "{}")
            items.append(("scenario", c["scenario"]))
            for k, v in params.items():
                if isinstance(v, float):
                    items.append((k, f"{v:.3g}"))
                elif isinstance(v, str | int):  # lists (added, removed) stay in the JSON below
                    items.append((k, v[:12] if k.endswith("sha256") else v))
        items += [(label, f"{c[k]:.3f}") for k, label in METRICS.items() if c.get(k) is not None]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    # The full spec (newer datasets) holds the scenario parameters; older ones have those only.
    doc, label = (
        (c.get("spec"), "spec") if c.get("spec") else (c.get("scenario_params"), "scenario")
    )
    extra = ""
    if not source and doc:
        pretty = _e(json.dumps(json.loads(doc), indent=1, sort_keys=True))
        extra = f"<details><summary>{label} (JSON)</summary><pre>{pretty}</pre></details>"
    return f"<table>{rows}</table>{extra}"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>amplify job {job}</title>
<style>
body {{ font: 13px system-ui, sans-serif; background: #16181c; color: #ddd; margin: 16px; }}
h1 {{ font-size: 18px; }} h2 {{ font-size: 14px; margin: 20px 0 6px; }}
.row {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; background: #202329; padding: 6px; border-radius: 4px; width: {w}px; }}
figcaption b {{ color: #fff; }} video {{ display: block; background: #000; }}
table {{ border-collapse: collapse; }} th {{ text-align: left; color: #999; font-weight: normal;
  padding-right: 8px; }} td, th {{ vertical-align: top; }}
th {{ white-space: nowrap; }} td {{ overflow-wrap: anywhere; }}
table.list td, table.list th {{ border-bottom: 1px solid #333; padding: 2px 8px 2px 0; }}
pre {{ max-width: {w}px; max-height: 200px; overflow: auto; font-size: 11px; }}
.key span {{ padding: 0 4px; }} a {{ color: #8cf; }}
</style></head><body>
<h1>amplify job {job}</h1>
<p>{meta}</p>
<p class="key">boxes: <span style="color:#ff0">yellow</span> from the source,
<span style="color:#f0f">magenta</span> inserted by a scenario. Click a video to restart its row.</p>
{body}
<script>
for (const v of document.querySelectorAll("video")) v.addEventListener("click", () => {{
  for (const x of v.closest(".row").querySelectorAll("video")) {{ x.currentTime = 0; x.play(); }}
}});
</script>
</body></html>
"""


def html_report(
    dataset: str | Path, job_id: str, out_html: str | Path, cfg: ReportConfig | None = None
) -> Path:
    """Write job `job_id`'s page to `out_html` and its videos to the folder beside it named after
    the page (`_reports/<job>.html` -> `_reports/<job>/`); return the page's path."""
    cfg = cfg or ReportConfig()
    dataset, out_html = Path(dataset), Path(out_html)
    codec = pick_codec(cfg.codec)
    manifest = _job_manifest(dataset, job_id)

    # 1. The job's variations, and their source windows (committed by this job or an earlier one).
    job_clips = _rows([dataset / f for f in manifest.files.get("clips", [])])
    variations = [c for c in job_clips if c["parent_clip_id"] is not None]
    parent_ids = {c["parent_clip_id"] for c in variations}
    known = {c["clip_id"]: c for c in job_clips}
    missing = parent_ids - set(known)
    if missing:
        earlier = _rows(committed_files(dataset, "clips"))
        known.update({c["clip_id"]: c for c in earlier if c["clip_id"] in missing})
    windows = sorted(
        (known[p] for p in parent_ids if p in known),
        key=lambda c: (c["source_path"], c["window_index"], c["clip_id"]),
    )
    shown = windows[: cfg.max_windows] if cfg.max_windows else windows
    kids: dict[str, list[dict]] = {}
    for c in variations:
        kids.setdefault(c["parent_clip_id"], []).append(c)

    # 2. One video per clip shown, window by window (only that window's frames in memory).
    videos = out_html.parent / out_html.stem
    shutil.rmtree(videos, ignore_errors=True)
    videos.mkdir(parents=True)
    index: dict[Path, set[str]] = {}  # frames file -> the clips it holds (ids only: cheap)
    for p in committed_files(dataset, "frames") if shown else []:
        check_schema(p)
        index[p] = set(pq.read_table(p, columns=["clip_id"]).column("clip_id").to_pylist())
    sections = []
    for w in shown:
        row = sorted(kids[w["clip_id"]], key=_card_order)
        frames = _frames_of(index, {w["clip_id"], *(c["clip_id"] for c in row)})
        cards = []
        for c in [w, *row]:
            fs = frames.get(c["clip_id"], [])
            if not fs:
                continue
            size = fit_size(c["width"], c["height"], cfg.width, cfg.height)
            name = f"{c['clip_id']}.{codec.ext}"
            encode_clip(fs, videos / name, c["fps"], size, codec)
            src = f"{quote(videos.name)}/{name}"
            title = "source" if c is w else c["variation"]
            cards.append(
                f'<figure><video src="{src}" width="{size[0]}" height="{size[1]}" muted '
                f'autoplay loop playsinline preload="auto" title="{_e(c["clip_id"])}"></video>'
                f"<figcaption><b>{_e(title)}</b>{_spec(c, c is w)}</figcaption></figure>"
            )
        head = f"{_e(Path(w['source_path']).name)} &middot; window {w['window_index']}"
        sections.append(f'<h2>{head}</h2><div class="row">{"".join(cards)}</div>')
    if not windows:
        sections.append("<p>This job made no variations.</p>")
    elif len(shown) < len(windows):
        sections.append(
            f"<p>{len(windows) - len(shown)} more window(s) not shown "
            f"(<code>amplify report max_windows=0</code> shows all).</p>"
        )

    # 3. Errors and totals.
    errors = _rows([dataset / f for f in manifest.files.get("errors", [])])
    sections.append(f"<h2>Errors ({len(errors)})</h2>")
    if errors:
        cells = ["file", "stage", "error", "message"]
        lines = [f"<tr>{''.join(f'<th>{k}</th>' for k in cells)}</tr>"]
        for e in sorted(errors, key=lambda e: (e["source_path"], e["stage"])):
            vals = [e["source_path"], e["stage"], e["error_type"], e["message"]]
            lines.append(f"<tr>{''.join(f'<td>{_e(v)}</td>' for v in vals)}</tr>")
        sections.append(f'<table class="list">{"".join(lines)}</table>')
    totals = {**manifest.counts, **{f"time {k}": v for k, v in manifest.timings.items()}}
    sections.append("<h2>Totals</h2>")
    sections.append(
        '<table class="list">'
        + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in totals.items())
        + "</table>"
    )
    sheet = out_html.with_suffix(".png")
    meta = (
        f"committed {_e(manifest.created)} to <code>{_e(dataset.resolve())}</code>; "
        f"{len(windows)} source window(s) with {len(variations)} variation(s); "
        f"videos {codec.encoder} {cfg.width}x{cfg.height}"
        + (f'; <a href="{quote(sheet.name)}">contact sheet</a>' if sheet.is_file() else "")
    )
    page = PAGE.format(job=_e(job_id), meta=meta, body="\n".join(sections), w=cfg.width)
    tmp = out_html.with_name(f".{out_html.name}.tmp")
    tmp.write_text(page)
    os.replace(tmp, out_html)
    return out_html


def write_job_report(
    dataset: str | Path, job_id: str, cfg: ReportConfig | None = None
) -> dict[str, Path]:
    """The job's reports under `dataset/_reports/`: "png" (the contact sheet, when the dataset
    has variations) and "html" (the page, always; its videos in `_reports/<job_id>/`)."""
    reports = Path(dataset) / "_reports"
    found: dict[str, Path] = {}
    png = variations_sheet(dataset, reports / f"{job_id}.png")
    if png is not None:
        found["png"] = png
    found["html"] = html_report(dataset, job_id, reports / f"{job_id}.html", cfg)
    return found


def report(cfg: ReportConfig) -> int:
    """`amplify report`: rebuild a job's reports (default: the latest job) and print their paths."""
    jobs = read_manifests(cfg.output)
    if not jobs:
        raise ConfigError("output", cfg.output, "no committed job (run `amplify run` first)")
    job = cfg.job or jobs[-1].job_id
    for kind, path in write_job_report(cfg.output, job, cfg).items():
        print(f"{kind}: {path}")
    return 0
