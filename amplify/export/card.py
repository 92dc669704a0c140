"""The export's dataset card (`README.md`): the YAML header that makes `load_dataset(EXPORT)` find
every split, then counts per split x condition x scenario, what each filter removed, lineage
(jobs, generators and checkpoints, configs) and the licences of real sources."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa

from amplify.dataset.writer import Manifest
from amplify.export.config import SPLITS
from amplify.export.licences import licence_of


def hf_header(parquet_files: dict[str, list[str]]) -> list[str]:
    """`configs:` with one config per table and its splits' shard patterns."""
    lines = ["---", "configs:"]
    for i, table in enumerate(("frames", "clips")):
        splits = sorted(
            {Path(f).name.split("-")[0] for f in parquet_files.get(table, [])}, key=SPLITS.index
        )
        if not splits:
            continue
        lines.append(f"- config_name: {table}")
        if i == 0:
            lines.append("  default: true")
        lines.append("  data_files:")
        for s in splits:
            lines += [f"  - split: {s}", f'    path: "parquet/{table}/{s}-*.parquet"']
    return lines + ["---", ""]


def _condition(r: dict) -> str:
    return f"{r['weather']}_{r['time_of_day']}" if r["weather"] else "unknown"


def write_card(
    path: Path,
    clips: pa.Table,
    manifest: dict,
    jobs: list[Manifest],
    known_licences: dict,
) -> Path:
    rows = clips.select(
        [
            "split",
            "weather",
            "time_of_day",
            "scenario",
            "num_frames",
            "generator",
            "checkpoint_sha256",
            "source_path",
        ]
    ).to_pylist()
    lines = (
        hf_header(manifest["files"].get("parquet", {})) if "parquet" in manifest["files"] else []
    )
    counts = manifest["counts"]
    lines += [
        "# amplify export",
        "",
        f"Exported by `amplify export` on {manifest['created']} from `{manifest['input']}` "
        f"({len(jobs)} committed job(s)); export id `{manifest['export_id']}`; formats: "
        + ", ".join(manifest["config"]["formats"])
        + ". Splits are by source clip: no window or variation of a validation or test source "
        "is in train.",
        "",
        "## Splits",
        "",
        "| split | clips | frames | sources |",
        "|---|---|---|---|",
    ]
    for s in SPLITS:
        if s in counts:
            c = counts[s]
            lines.append(f"| {s} | {c['clips']} | {c['frames']} | {c['sources']} |")
    grid = Counter()
    frames = Counter()
    for r in rows:
        k = (r["split"], _condition(r), r["scenario"] or "none")
        grid[k] += 1
        frames[k] += r["num_frames"]
    lines += [
        "",
        "## Counts per split x condition x scenario",
        "",
        "| split | condition | scenario | clips | frames |",
        "|---|---|---|---|---|",
    ]
    for k in sorted(grid, key=lambda k: (SPLITS.index(k[0]), k[1], k[2])):
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {grid[k]} | {frames[k]} |")
    total = manifest["total"]
    lines += [
        "",
        "## Filters",
        "",
        f"The dataset held {total['clips']} clips ({total['frames']} frames). Filters, in the "
        "order applied:",
        "",
        "| filter | clips removed | frames removed |",
        "|---|---|---|",
    ]
    for name, r in manifest["removed"].items():
        lines.append(f"| `{name}` | {r['clips']} | {r['frames']} |")
    if not manifest["removed"]:
        lines.append("| (none) | 0 | 0 |")
    gens = Counter((r["generator"], r["checkpoint_sha256"]) for r in rows)
    lines += [
        "",
        "## Lineage",
        "",
        "Generators and checkpoints (sha256) of the exported clips:",
        "",
    ]
    for (g, sha), n in sorted(gens.items(), key=lambda x: (str(x[0][0]), str(x[0][1]))):
        lines.append(f"- `{g}`" + (f" (checkpoint `{sha[:16]}`)" if sha else "") + f": {n} clips")
    lines += ["", "Jobs that wrote the dataset (their full configs are in its `_manifests/`):", ""]
    for m in jobs:
        cfg = m.config or {}
        gen = cfg.get("generate") or {}
        ing = cfg.get("ingest") or {}
        lines.append(
            f"- `{m.job_id}` ({m.created}): input `{cfg.get('input', '?')}`, ingest "
            f"{ing.get('fps', '?')} fps {ing.get('width', '?')}x{ing.get('height', '?')} window "
            f"{ing.get('window', '?')}, variations {gen.get('variations', [])}, world model "
            f"`{gen.get('checkpoint', '-')}`; counts {json.dumps(m.counts, sort_keys=True)}"
        )
    by_source: dict[str, dict] = {}
    for r in rows:  # once per source, not per row (licence_of resolves paths)
        if r["source_path"] not in by_source:
            by_source[r["source_path"]] = licence_of(r["source_path"], known_licences)
    lines += [
        "",
        "## Licences",
        "",
        "Licences of the source clips, where the folder they came from states them. Generated "
        "variations are derived from their source clip and carry its licence terms.",
        "",
        "| source | licence | origin |",
        "|---|---|---|",
    ]
    for src, lic in sorted(by_source.items()):
        lines.append(f"| `{Path(src).name}` | {lic['licence']} | {lic['origin']} |")
    lines += [
        "",
        "## Export config",
        "",
        "```json",
        json.dumps(manifest["config"], indent=1, sort_keys=True),
        "```",
        "",
        "Loaders: docs/EXPORT.md in the amplify repository.",
        "",
    ]
    path.write_text("\n".join(lines))
    return path
