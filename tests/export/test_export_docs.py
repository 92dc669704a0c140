"""docs/EXPORT.md's snippets run as written: the `amplify export` command, then every Python block
from a folder where `out/dataset` is a dataset and `out/export` its export. Blocks after a
`<!-- slow -->` line (Ray Train) run only in the slow suite."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "EXPORT.md"
BLOCK = re.compile(r"(<!-- (\w+) -->\n)?```(python|bash)\n(.*?)```", re.S)


def blocks(lang: str, slow: bool) -> list[tuple[int, str]]:
    found = [
        (i, code)
        for i, (_, tag, kind, code) in enumerate(BLOCK.findall(DOC.read_text()))
        if kind == lang and (tag == "slow") == slow
    ]
    assert found, f"no {lang} snippets in {DOC}"
    return found


@pytest.fixture
def workdir(tmp_path, monkeypatch, dataset, exported):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "dataset").symlink_to(dataset)
    (tmp_path / "out" / "export").symlink_to(exported)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def run_python(code: str, name: str) -> None:
    import torch

    torch.set_num_threads(1)
    exec(compile(code, name, "exec"), {"__name__": "__main__"})


def test_export_command(dataset, tmp_path, monkeypatch):
    from amplify.cli import main

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "dataset").symlink_to(dataset)
    monkeypatch.chdir(tmp_path)
    for _, code in blocks("bash", slow=False):
        argv = shlex.split(code.replace("\\\n", " "))
        assert argv[0] == "amplify"
        assert main(argv[1:]) == 0
    assert (tmp_path / "out" / "export" / "_export.json").is_file()


def test_python_snippets(workdir, ray_local):
    for i, code in blocks("python", slow=False):
        run_python(code, f"EXPORT.md block {i}")


@pytest.mark.slow
def test_ray_train_snippet(workdir, ray_local):
    """Ray Train, two CPU workers, a few steps from the export (~80 s on a 2-core VM)."""
    for i, code in blocks("python", slow=True):
        run_python(code, f"EXPORT.md block {i}")
