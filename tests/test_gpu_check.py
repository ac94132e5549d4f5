"""``make gpu-check`` (``.ci/gpu_check.py``) on a machine without a CUDA GPU: exit code 2 and a first line
that names CUDA as what is missing, before anything else runs or is written.

On a machine with a GPU these tests are skipped (there the check would run for its whole budget)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU: run `make gpu-check` itself")


def _first_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.strip())


def test_the_check_needs_a_cuda_gpu(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "GPU_CHECK_BUDGET": "30", "OUT": str(tmp_path / "out")}
    run = subprocess.run([sys.executable, str(ROOT / ".ci" / "gpu_check.py")], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 2
    assert "CUDA" in _first_line(run.stderr + run.stdout)
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_gpu_check_needs_a_cuda_gpu(tmp_path):
    run = subprocess.run(["make", "--no-print-directory", "gpu-check", f"GPU_PY={sys.executable}", "GPU_CHECK_BUDGET=30"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                                                      "OUT": str(tmp_path / "out")})
    assert run.returncode == 2
    assert "CUDA" in _first_line(run.stderr)
