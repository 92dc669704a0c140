"""The dataset card (`OUT/README.md`): counts, conditions, schema, and the YAML header that lets
`datasets.load_dataset(OUT, "frames")` find the tables without custom code."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from amplify.dataset.reader import committed_files, read_table
from amplify.dataset.schema import SCHEMA_VERSION, SCHEMAS
from amplify.dataset.writer import read_manifests


def write_card(out: str | Path) -> Path:
    out = Path(out)
    tables = [t for t in SCHEMAS if committed_files(out, t)]
    clips = read_table(out, "clips", ["split", "variation", "weather", "time_of_day", "generator"])
    errors = read_table(out, "errors", ["error_type", "stage"])
    frames = read_table(out, "frames", ["split"])
    jobs = read_manifests(out)

    def count(col, table) -> str:
        c = Counter(table.column(col).to_pylist())
        return (
            ", ".join(
                f"{k if k is not None else 'unknown'}: {v}" for k, v in sorted(c.items(), key=str)
            )
            or "none"
        )

    lines = ["---", "configs:"]
    for i, t in enumerate(tables):
        lines += [f"- config_name: {t}", f'  data_files: "{t}/*.parquet"']
        if i == 0:
            lines.append("  default: true")
    lines += [
        "---",
        "",
        "# amplify dataset",
        "",
        f"Written by `amplify` (schema version {SCHEMA_VERSION}); {len(jobs)} committed job(s): "
        + ", ".join(m.job_id for m in jobs)
        + ".",
        "",
        "## Counts",
        "",
        f"- frames: {frames.num_rows} ({count('split', frames)})",
        f"- clips: {clips.num_rows} ({count('split', clips)})",
        f"- errors: {errors.num_rows} ({count('error_type', errors)})",
        f"- variations: {count('variation', clips)}",
        f"- weather: {count('weather', clips)}",
        f"- time of day: {count('time_of_day', clips)}",
        "",
        "## Load",
        "",
        "```python",
        "from datasets import load_dataset",
        f'frames = load_dataset("parquet", data_files="{out}/frames/*.parquet", split="train")',
        "```",
        "`image` decodes as an image; `split` (train/validation/test, by source clip) is a column.",
        "",
        "## Schema",
        "",
    ]
    for name, schema in SCHEMAS.items():
        lines.append(f"### {name}")
        lines.append("")
        lines += [f"- `{f.name}`: {f.type}" for f in schema]
        lines.append("")
    path = out / "README.md"
    tmp = out / ".README.md.tmp"
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path
