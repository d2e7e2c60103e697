"""Packaging: the built wheel and sdist hold the whole package, and the declared
dependencies are exactly the ones the package imports.

A green editable install once hid a wheel with most modules missing, so these
tests build the real artefacts (``python -m build``: the sdist, then the wheel
from the sdist, as pip does from an index) and read what is inside.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import inference_accel

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# Import name -> the distributions that provide it (either one satisfies it).
PROVIDERS = {
    "torch": {"torch"},
    "numpy": {"numpy"},
    "PIL": {"pillow"},
    "supervision": {"supervision"},
    "pycocotools": {"pycocotools"},
    "cv2": {"opencv-python-headless"},
    "scipy": {"scipy"},
    "tqdm": {"tqdm"},
    "onnxruntime": {"onnxruntime", "onnxruntime-gpu"},
    "triton": {"triton"},
    "tensorrt": {"tensorrt"},
    "tensorrt_lean": {"tensorrt-lean-cu13"},
    "rfdetr": {"rfdetr"},
    "skimage": {"scikit-image"},
    "inference_models": {"inference-models"},
    "torchvision": {"torchvision"},
    "onnx": {"onnx"},
    "matplotlib": {"matplotlib"},
    "pydantic": {"pydantic"},
}
# Declared but never imported by us, each for a stated reason.
NOT_IMPORTED_ON_PURPOSE = {
    "onnxscript": "torch.onnx.export (called by rfdetr's exporter) needs it",
}
# The extras that are a toolbox for a person, not what the package imports.
TOOL_EXTRAS = {"dev"}


def _package_sources() -> list[Path]:
    return sorted((ROOT / "inference_accel").rglob("*.py")) + sorted((ROOT / "kernels").glob("*.py"))


def _is_require_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args:
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    return name == "require" and isinstance(first, ast.Constant) and isinstance(first.value, str)


def _imported_top_level_modules() -> dict[str, set[str]]:
    """Third-party top-level modules the package imports (statements and
    ``extras.require`` calls) -> the files importing them."""
    stdlib = set(sys.stdlib_module_names)
    found: dict[str, set[str]] = {}
    for path in _package_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif _is_require_call(node):  # extras.require("module", "extra", ...)
                names = [node.args[0].value]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top not in ("inference_accel", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _requirements(group: str | None) -> list[Requirement]:
    raw = PROJECT["dependencies"] if group is None else PROJECT["optional-dependencies"][group]
    return [Requirement(text) for text in raw]


def _resolved_names(group: str | None, seen: frozenset[str] = frozenset()) -> set[str]:
    """Distribution names a group installs, self-references (inference-accel[x]) expanded."""
    names = set()
    for req in _requirements(group):
        if req.name == PROJECT["name"]:
            for extra in req.extras - seen:
                names |= _resolved_names(extra, seen | {extra})
        else:
            names.add(req.name.lower())
    return names


# -- dependencies ---------------------------------------------------------------
def test_every_imported_module_is_declared():
    declared = _resolved_names(None)
    for group in PROJECT["optional-dependencies"]:
        declared |= _resolved_names(group)
    for module, files in _imported_top_level_modules().items():
        assert module in PROVIDERS, f"{module} (imported by {sorted(files)}) has no known distribution"
        assert PROVIDERS[module] & declared, f"{module} (imported by {sorted(files)}) is not declared"


def test_every_declared_dependency_is_imported():
    provided = set().union(*(PROVIDERS[m] for m in _imported_top_level_modules()))
    for group in [None, *(g for g in PROJECT["optional-dependencies"] if g not in TOOL_EXTRAS)]:
        for req in _requirements(group):
            if req.name == PROJECT["name"] or req.name in NOT_IMPORTED_ON_PURPOSE:
                continue
            assert req.name.lower() in provided, f"{req.name} ({group or 'core'}) is never imported by the package"


def test_core_holds_only_what_the_runtime_imports():
    # The sample media, model export and the ONNX runtime are extras.
    core = _resolved_names(None)
    assert not core & {"rfdetr", "scikit-image", "onnx", "onnxscript", "torchvision", "cuda-python"}
    assert not core & {"onnxruntime", "onnxruntime-gpu"}


def test_only_ranges_no_exact_pins():
    for group in [None, *PROJECT["optional-dependencies"]]:
        for req in _requirements(group):
            for spec in req.specifier:
                assert spec.operator not in ("==", "==="), f"{req} pins an exact version; ranges only"


def test_cpu_and_gpu_onnxruntime_never_together():
    for group in [None, *PROJECT["optional-dependencies"]]:
        names = _resolved_names(group)
        assert not {"onnxruntime", "onnxruntime-gpu"} <= names, f"{group or 'core'} installs both onnxruntimes"


def test_constraints_pin_only_declared_distributions():
    declared = _resolved_names(None)
    for group in PROJECT["optional-dependencies"]:
        declared |= _resolved_names(group)
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            assert [s.operator for s in req.specifier] == ["=="], f"constraints.txt: {line} is not an exact pin"
            assert req.name.lower() in declared, f"constraints.txt pins {req.name}, which nothing declares"


# -- the built artefacts --------------------------------------------------------
def _project_files() -> list[str]:
    """The checkout's files (tracked and untracked, git's ignores applied)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode == 0 and listed.stdout:
        return [line for line in listed.stdout.splitlines() if (ROOT / line).is_file()]
    skip = {".venv", ".git", "build", "dist", "__pycache__"}
    return [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(ROOT).parts) and ".egg-info" not in str(p)
    ]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """sdist + wheel built from the sdist, as ``python -m build`` makes them.

    Built from a clean copy of the project: a stale ``*.egg-info`` in the
    checkout would otherwise lend its file list to the build and hide a
    package missing from setup.py.
    """
    tree = tmp_path_factory.mktemp("tree")
    for name in _project_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def _expected_modules() -> set[str]:
    """Every module of the source tree, at its installed path."""
    names = {str(p.relative_to(ROOT)) for p in (ROOT / "inference_accel").rglob("*.py")}
    names |= {f"inference_accel/kernels/{p.name}" for p in (ROOT / "kernels").glob("*.py")}
    return names


def test_wheel_holds_every_module(dist):
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _expected_modules() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert not any(n.startswith("kernels/") for n in names), "kernels/ must install as inference_accel.kernels"
    # the compiled helpers
    for helper in ("postprocess/_sparse_native", "preprocess/_resize_native", "integrations/_stock_masks_native",
                   "masks/_polygons_native"):
        assert f"inference_accel/{helper}.c" in names
        assert any(n.startswith(f"inference_accel/{helper}.") and n.endswith(".so") for n in names), helper


def test_wheel_metadata(dist):
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        (meta_name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(zf.read(meta_name).decode())
    assert meta["Version"] == inference_accel.__version__
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    core = {r.name for r in requires if r.marker is None}
    assert {"torch", "numpy", "pillow", "supervision"} <= core
    assert set(meta.get_all("Provides-Extra")) >= {"cpu", "gpu", "jetson", "export", "demo", "dev", "inference-models"}


def test_sdist_holds_the_project(dist):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    tracked = subprocess.run(
        ["git", "ls-files", "inference_accel", "kernels", "tests", "development", "parity"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    sources = {line for line in tracked.stdout.splitlines() if line.endswith((".py", ".c"))}
    if tracked.returncode != 0 or not sources:  # not a git checkout: use the tree
        sources = {str(p.relative_to(ROOT)) for p in _package_sources()}
    missing = (sources | {"pyproject.toml", "setup.py", "README.md", "constraints.txt"}) - names
    assert not missing, f"the sdist lacks {sorted(missing)}"
