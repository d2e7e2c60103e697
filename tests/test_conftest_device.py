"""``tests/conftest.py``'s device switch, run on a small suite in a subprocess.

``--device cpu`` must leave the ``gpu`` cases out and say so in one closing
line (never as passed, never as skips); ``--device cuda`` (a CUDA device
faked here) must run them with the interpreter off and leave out the tests
that need it, counted the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
FAKE_CUDA = "import torch\ntorch.cuda.is_available = lambda: True  # the test's stand-in for a GPU\n\n"
SUITE = {
    "test_kernels.py": '''
import os
import pytest


def test_plain(kernel_device):
    print("DEVICE", kernel_device.type, "INTERPRET", os.environ.get("TRITON_INTERPRET"))


@pytest.mark.gpu
@pytest.mark.parametrize("size", ["1080p", "4k", "8k"])
def test_production(size, kernel_device):
    assert kernel_device.type == "cuda"


@pytest.mark.interpreter
def test_needs_the_interpreter():
    assert os.environ.get("TRITON_INTERPRET") == "1"
''',
    "test_frame_graph.py": "def test_listed_interpreter_module():\n    pass\n",
}


def run_suite(tmp_path: Path, *args: str, fake_cuda: bool = False, env_device: str | None = None):
    tests = tmp_path / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "conftest.py").write_text(CONFTEST.read_text())
    for name, source in SUITE.items():
        (tests / name).write_text(source)
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "INFERENCE_ACCEL_TEST_DEVICE")}
    if env_device:
        env["INFERENCE_ACCEL_TEST_DEVICE"] = env_device
    plugin = []
    if fake_cuda:  # a plugin loaded before the conftest
        (tmp_path / "fake_cuda.py").write_text(FAKE_CUDA)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
        plugin = ["-p", "fake_cuda"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugin, "-s", "-rA", "tests", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )


def test_cpu_runs_the_interpreter_and_counts_the_gpu_cases_in_one_line(tmp_path):
    out = run_suite(tmp_path, "--device", "cpu")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DEVICE cpu INTERPRET 1" in out.stdout
    assert "3 passed, 3 deselected" in out.stdout  # plain, interpreter-marked, listed module
    assert "SKIPPED" not in out.stdout and "test_production" not in out.stdout
    lines = [line for line in out.stdout.splitlines() if "GPU cases not run" in line]
    assert lines == ["GPU cases not run (no CUDA device): 3 — run `pytest --device cuda` on a GPU"] or lines == [
        "GPU cases not run (--device cpu): 3 — run `pytest --device cuda` on a GPU"
    ], out.stdout


def test_cuda_runs_the_gpu_cases_without_the_interpreter(tmp_path):
    out = run_suite(tmp_path, fake_cuda=True, env_device="cuda")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DEVICE cuda INTERPRET None" in out.stdout
    assert "4 passed, 2 deselected" in out.stdout
    assert "interpreter cases not run (--device cuda): 2 — run `pytest --device cpu` for them" in out.stdout
    assert "GPU cases not run" not in out.stdout


def test_auto_follows_cuda_and_cuda_without_a_gpu_is_an_error(tmp_path):
    assert "DEVICE cuda" in run_suite(tmp_path, fake_cuda=True).stdout  # auto -> cuda when torch sees one
    if not __import__("torch").cuda.is_available():
        assert "DEVICE cpu" in run_suite(tmp_path).stdout  # auto -> cpu
        out = run_suite(tmp_path, "--device", "cuda")
        assert out.returncode != 0 and "--device cuda: no CUDA device visible" in out.stdout + out.stderr


@pytest.mark.parametrize("value", ["gpu", "CUDA0"])
def test_a_bad_environment_value_is_an_error(tmp_path, value):
    out = run_suite(tmp_path, env_device=value)
    assert out.returncode != 0 and "INFERENCE_ACCEL_TEST_DEVICE" in out.stdout + out.stderr
