"""The licence of each source clip, where a folder of real footage states it: a `manifest.json`
list (`file`, `license`, `repo`, as `../shared/data/train_real` has) or a Markdown table in its
`README.md` with a `file` column and a `licence` column (as `../shared/data/real` has). Clips of
the synthetic corpus (a `_corpus.json` beside them) are ours. Anything else is "unknown"."""

from __future__ import annotations

import json
from pathlib import Path

SYNTHETIC = "synthetic (amplify synth): no third-party content"
UNKNOWN = "unknown (not stated where the clip came from)"


def _cells(line: str) -> list[str]:
    return [c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]


def _readme_table(readme: Path) -> dict[Path, dict]:
    found: dict[Path, dict] = {}
    header: list[str] | None = None
    for line in readme.read_text(errors="replace").splitlines():
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        row = dict(zip(header, cells, strict=False))
        lic = next((v for k, v in row.items() if k.startswith("licen")), None)
        if "file" in row and lic:
            found[(readme.parent / row["file"]).resolve()] = {
                "licence": lic,
                "origin": row.get("source", ""),
            }
    return found


def load_licences(roots: list[str | Path]) -> dict[Path, dict]:
    """Resolved source path -> {licence, origin} over every folder of `roots` that exists."""
    found: dict[Path, dict] = {}
    for root in map(Path, roots):
        manifest, readme = root / "manifest.json", root / "README.md"
        if manifest.is_file():
            try:
                entries = json.loads(manifest.read_text())
            except json.JSONDecodeError:
                entries = []
            for e in entries if isinstance(entries, list) else []:
                if isinstance(e, dict) and "file" in e and "license" in e:
                    found[(root / e["file"]).resolve()] = {
                        "licence": e["license"],
                        "origin": e.get("repo", ""),
                    }
        if readme.is_file():
            for path, doc in _readme_table(readme).items():
                found.setdefault(path, doc)
    return found


def licence_of(source_path: str, known: dict[Path, dict]) -> dict:
    path = Path(source_path).resolve()
    if path in known:
        return known[path]
    if (path.parent / "_corpus.json").is_file():
        return {"licence": SYNTHETIC, "origin": "amplify synth"}
    return {"licence": UNKNOWN, "origin": ""}
