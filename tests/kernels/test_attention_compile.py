"""The attention kernels compile for sm_90 without a GPU (the interpreter never compiles them)."""

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_kernels_compile_for_sm90_without_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, "-m", "kernels.bench.attention_compile"]
    args = ["--first-only", "--fail-on-spill", "--head-dims", "64", "128"]
    result = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("regs=") == 6
