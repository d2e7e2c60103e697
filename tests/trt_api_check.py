"""TensorRT's Python API, per major version, and a checker of our engine code against it.

No TensorRT that can run installs on our machines, so ``inference_accel/engine``
is checked against the API itself: every ``trt.X``, ``trt.X.Y`` and every
attribute used on an expression that holds a TensorRT object (the module's
``TRT_OBJECTS``) must exist in the API of **every supported major version**,
except inside a version branch (``if tensorrt_major(trt) >= 11:``), which is
checked against the majors it runs on only.

Where each API comes from:

- **TensorRT 10** (JetPack 6, desktop): the ``tensorrt-stubs`` type stubs
  (``tensorrt/__init__.pyi`` and ``tensorrt_bindings/tensorrt.pyi``), parsed with
  ``ast``. They cannot be a dependency (every release requires ``tensorrt==10.x``,
  whose wheel comes from NVIDIA's index, and installing them makes
  ``import tensorrt`` succeed as an empty namespace package), so the checker
  reads them from ``$INFERENCE_ACCEL_TRT_STUBS`` (a wheel or an unpacked
  folder) or an installed ``tensorrt-stubs``; without either it uses
  ``tests/tensorrt_api_snapshot.py``, generated from them.
- **TensorRT 11**: the runtime classes from the installed lean runtime
  (``tensorrt_lean`` 11, dev extra) by ``dir()``, or the snapshot of it. The
  11 builder is not installable here: its classes are TensorRT 10's minus what
  NVIDIA's 10.x -> 11.x migration guide lists as removed (``REMOVED_IN_11``),
  with the enums the lean runtime also has (``BuilderFlag``,
  ``MemoryPoolType``) taken from it.
- A full ``tensorrt`` installed (a GPU machine) is used live for its major.

Regenerate the snapshot (with the stubs at hand and ``tensorrt_lean`` 11
installed)::

    INFERENCE_ACCEL_TRT_STUBS=tensorrt_stubs-10.13.0.35.1-py3-none-any.whl \\
        python -m tests.trt_api_check --write-snapshot
"""

from __future__ import annotations

import ast
import importlib
import inspect
import operator
import os
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

SUPPORTED_MAJORS = (10, 11)
MODULE = "module"
# Expressions that are the TensorRT module itself.
MODULE_ALIASES = ("trt", "self._trt")
# Names a declared TRT_OBJECTS entry may use for a plain Python value (no API check).
PLAIN_TYPES = {"str", "int", "bool", "float", "bytes", "tuple", "list"}
# Classes kept in the snapshot: what our code reaches, and their neighbours.
SNAPSHOT_CLASSES = (
    "Logger", "ILogger", "Runtime", "ICudaEngine", "IExecutionContext", "TensorIOMode", "DataType",
    "Builder", "IBuilderConfig", "BuilderFlag", "MemoryPoolType", "OnnxParser", "INetworkDefinition",
    "ITensor", "IHostMemory", "NetworkDefinitionCreationFlag", "ParserError", "Dims", "IOptimizationProfile",
)
# NVIDIA's TensorRT 10.x -> 11.x migration guide, "Removed Python APIs": the
# weak-typing builder flags, INT8 calibration, the platform queries and the
# algorithm selector. (DIRECT_IO: removed in 11.0-11.4.0, deprecated again in
# 11.4.1; the lean runtime 11.4.0 still lists it.)
REMOVED_IN_11: dict[str, tuple[str, ...]] = {
    "BuilderFlag": ("FP16", "INT8", "FP8", "BF16", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                    "PREFER_PRECISION_CONSTRAINTS"),
    "IBuilderConfig": ("int8_calibrator", "set_calibration_profile", "get_calibration_profile",
                       "set_quantization_flag", "get_quantization_flag", "quantization_flags",
                       "clear_quantization_flag", "algorithm_selector"),
    "Builder": ("platform_has_fast_fp16", "platform_has_fast_int8"),
    "ICudaEngine": ("device_memory_size",),
    MODULE: ("IAlgorithm", "IAlgorithmContext", "IAlgorithmIOInfo", "IAlgorithmSelector", "IAlgorithmVariant",
             "IInt8Calibrator", "IInt8EntropyCalibrator", "IInt8EntropyCalibrator2", "IInt8LegacyCalibrator",
             "IInt8MinMaxCalibrator", "CalibrationAlgoType", "QuantizationFlag"),
}


# -- one major version's API ------------------------------------------------------------
@dataclass
class Api:
    """Names of the module and members of its classes, for one TensorRT major version."""

    major: int
    source: str
    module: set[str]
    classes: dict[str, set[str]]
    # Classes whose member list is not known here (only in a snapshot that left them out).
    partial: bool = False

    def problem(self, owner: str, attr: str) -> str | None:
        """Why ``owner.attr`` is not in this API (None: it is)."""
        if attr.startswith("__") and attr.endswith("__"):
            return None  # __version__, __name__: every Python module/class has them
        if owner == MODULE:
            return None if attr in self.module else f"trt.{attr} does not exist in TensorRT {self.major} ({self.source})"
        if owner in PLAIN_TYPES:
            return None
        if owner not in self.classes:
            if owner in self.module or self.partial:
                return (f"{owner} is not in the API data of TensorRT {self.major} ({self.source}): "
                        "regenerate tests/tensorrt_api_snapshot.py (see tests/trt_api_check.py)")
            return f"class {owner} does not exist in TensorRT {self.major} ({self.source})"
        if attr in self.classes[owner]:
            return None
        return f"{owner}.{attr} does not exist in TensorRT {self.major} ({self.source})"

    def restricted(self, names: Iterable[str]) -> "Api":
        keep = set(names)
        return Api(self.major, self.source, set(self.module),
                   {k: set(v) for k, v in self.classes.items() if k in keep}, partial=True)


def _parse_tolerant(text: str) -> ast.Module:
    """``ast.parse`` of a generated stub; a ``def`` line Python rejects (the stubs have a
    non-default argument after a default one) keeps its name with ``(*args, **kwargs)``."""
    lines = text.splitlines()
    for _ in range(1000):
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError as exc:
            index = (exc.lineno or 0) - 1
            match = re.match(r"^(\s*def\s+\w+)\(.*\)(\s*->.*)?:\s*$", lines[index]) if 0 <= index < len(lines) else None
            if not match:
                raise
            lines[index] = match.group(1) + "(*args, **kwargs):"
    raise SyntaxError("too many unparsable lines")


def _assigned_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    return set()


def api_from_stubs(bindings_pyi: str, package_pyi: str, source: str) -> Api:
    """TensorRT's API from ``tensorrt_bindings/tensorrt.pyi`` and ``tensorrt/__init__.pyi``."""
    classes: dict[str, set[str]] = {}
    module: set[str] = set()
    for node in _parse_tolerant(bindings_pyi).body:
        module |= _assigned_names(node)
        if isinstance(node, ast.ClassDef):
            members: set[str] = set()
            for item in node.body:
                members |= _assigned_names(item)
            classes[node.name] = {m for m in members if not m.startswith("_")}
    for node in _parse_tolerant(package_pyi).body:
        module |= _assigned_names(node)
        if isinstance(node, ast.ImportFrom):
            module |= {alias.asname or alias.name for alias in node.names}
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            module |= set(ast.literal_eval(node.value))
    version = re.search(r"__version__: str = '([^']+)'", package_pyi)
    major = int(version.group(1).split(".")[0]) if version else 10
    return Api(major, source, {m for m in module if not m.startswith("_")}, classes)


def api_from_module(trt) -> Api:
    """The API of an imported TensorRT module (full package or lean runtime), by ``dir()``."""
    module = {n for n in dir(trt) if not n.startswith("_")}
    classes = {
        n: {m for m in dir(getattr(trt, n)) if not m.startswith("_")}
        for n in module
        if inspect.isclass(getattr(trt, n))
    }
    version = str(getattr(trt, "__version__", "0"))
    return Api(int(version.split(".")[0]), f"{trt.__name__} {version}", module, classes)


def _stub_texts(location: Path) -> tuple[str, str]:
    names = ("tensorrt_bindings/tensorrt.pyi", "tensorrt/__init__.pyi")
    if location.is_file():
        with zipfile.ZipFile(location) as wheel:
            return tuple(wheel.read(n).decode() for n in names)  # type: ignore[return-value]
    return tuple((location / n).read_text() for n in names)  # type: ignore[return-value]


def stubs_location() -> Path | None:
    """The TensorRT 10 stubs: ``$INFERENCE_ACCEL_TRT_STUBS`` or an installed ``tensorrt-stubs``."""
    env = os.environ.get("INFERENCE_ACCEL_TRT_STUBS")
    if env:
        return Path(env)
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        dist = distribution("tensorrt-stubs")
    except (ImportError, PackageNotFoundError):
        return None
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith("tensorrt_bindings/tensorrt.pyi"):
            return Path(dist.locate_file(f)).parents[1]
    return None


def stub_api() -> Api | None:
    location = stubs_location()
    if location is None:
        return None
    bindings, package = _stub_texts(location)
    version = re.search(r"__version__: str = '([^']+)'", package)
    return api_from_stubs(bindings, package, f"tensorrt-stubs {version.group(1) if version else '?'} at {location}")


def live_module(name: str, major: int):
    """The installed module ``name`` if it is a real TensorRT of ``major`` (not stubs), else None."""
    try:
        trt = importlib.import_module(name)
    except Exception:
        return None
    if getattr(trt, "__file__", None) is None or not hasattr(trt, "Runtime"):
        return None  # tensorrt-stubs' namespace package
    if not str(getattr(trt, "__version__", "")).startswith(f"{major}."):
        return None
    return trt


def snapshot_api(key: str) -> Api:
    from tests.tensorrt_api_snapshot import SNAPSHOT

    data = SNAPSHOT[key]
    return Api(data["major"], f"{data['source']} (snapshot)", set(data["module"]),
               {k: set(v) for k, v in data["classes"].items()}, partial=True)


def without_removed_in_11(api10: Api, lean11: Api) -> Api:
    """TensorRT 11: 10's API minus ``REMOVED_IN_11``, the lean runtime's classes as they are."""
    classes = {k: set(v) - set(REMOVED_IN_11.get(k, ())) for k, v in api10.classes.items()}
    classes.update({k: set(v) for k, v in lean11.classes.items()})
    module = (set(api10.module) - set(REMOVED_IN_11[MODULE])) | lean11.module
    for gone in REMOVED_IN_11[MODULE]:
        classes.pop(gone, None)
    source = f"{lean11.source}; builder: {api10.source} minus NVIDIA's 10.x->11.x removals"
    return Api(11, source, module, classes, partial=api10.partial or lean11.partial)


def api_10() -> Api:
    live = live_module("tensorrt", 10)
    if live is not None:
        return api_from_module(live)
    return stub_api() or snapshot_api("10")


def lean_11() -> Api:
    live = live_module("tensorrt_lean", 11)
    return api_from_module(live) if live is not None else snapshot_api("11-lean")


def api_11() -> Api:
    live = live_module("tensorrt", 11)
    if live is not None:
        return api_from_module(live)
    return without_removed_in_11(api_10(), lean_11())


def apis() -> dict[int, Api]:
    return {10: api_10(), 11: api_11()}


# -- the scan of our source ---------------------------------------------------------------
@dataclass(frozen=True)
class Use:
    owner: str  # MODULE or a TensorRT class name
    attr: str
    line: int
    majors: frozenset[int]
    expr: str


@dataclass
class Scan:
    uses: list[Use] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # undeclared TensorRT objects
    branches: list[tuple[int, frozenset[int], frozenset[int]]] = field(default_factory=list)


_OPS: dict[type, Callable[[int, int], bool]] = {
    ast.GtE: operator.ge, ast.Gt: operator.gt, ast.LtE: operator.le, ast.Lt: operator.lt,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


def _version_test(test: ast.expr) -> Callable[[int], bool] | None:
    """``tensorrt_major(trt) <op> N`` as a predicate on the major (None: not a version test)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OPS):
        return None
    left, right = test.left, test.comparators[0]
    if (isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "tensorrt_major"
            and isinstance(right, ast.Constant) and isinstance(right.value, int)):
        op, bound = _OPS[type(test.ops[0])], right.value
        return lambda major: op(major, bound)
    return None


class _Scanner(ast.NodeVisitor):
    def __init__(self, objects: dict[str, str], majors: Iterable[int]):
        self.objects = objects
        self.active = frozenset(majors)
        self.scan = Scan()

    def _use(self, owner: str, attr: str, node: ast.AST) -> None:
        self.scan.uses.append(Use(owner, attr, node.lineno, self.active, ast.unparse(node)))

    def _is_trt_call(self, node: ast.expr) -> bool:
        """A call of a TensorRT function/method (its result is a TensorRT value)."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            return False
        base = ast.unparse(node.func.value)
        return base in MODULE_ALIASES or base in self.objects or self._module_chain(node.func) is not None

    def _module_chain(self, node: ast.Attribute) -> list[str] | None:
        chain = [node.attr]
        value = node.value
        while isinstance(value, ast.Attribute) and ast.unparse(value) not in MODULE_ALIASES:
            chain.append(value.attr)
            value = value.value
        if ast.unparse(value) in MODULE_ALIASES:
            return chain[::-1]
        return None

    def visit_If(self, node: ast.If) -> None:
        predicate = None
        only_body = False
        if isinstance(node.test, ast.BoolOp) and isinstance(node.test.op, ast.And):
            for value in node.test.values:
                predicate = predicate or _version_test(value)
            only_body = True  # the else branch also runs when another operand is false
        else:
            predicate = _version_test(node.test)
        self.visit(node.test)
        outer = self.active
        if predicate is None:
            for stmt in node.body + node.orelse:
                self.visit(stmt)
            return
        body = frozenset(m for m in outer if predicate(m))
        orelse = outer if only_body else outer - body
        self.scan.branches.append((node.lineno, body, orelse))
        self.active = body
        for stmt in node.body:
            self.visit(stmt)
        self.active = orelse
        for stmt in node.orelse:
            self.visit(stmt)
        self.active = outer

    def visit_Assign(self, node: ast.Assign) -> None:
        if self._is_trt_call(node.value):
            for target in node.targets:
                text = ast.unparse(target)
                if text not in self.objects:
                    self.scan.problems.append(
                        f"line {node.lineno}: `{text}` holds the result of `{ast.unparse(node.value.func)}` "
                        "but is not declared in TRT_OBJECTS (its attributes would go unchecked)"
                    )
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = self._module_chain(node)
        if chain is not None:
            if not chain[0].startswith("__"):  # trt.__version__, trt.__name__
                self._use(MODULE, chain[0], node)
                for owner, attr in zip(chain, chain[1:]):
                    self._use(owner, attr, node)
            return
        base = ast.unparse(node.value)
        if base in self.objects:
            self._use(self.objects[base], node.attr, node)
        elif self._is_trt_call(node.value):
            self.scan.problems.append(
                f"line {node.lineno}: `.{node.attr}` on `{base}`, a TensorRT value not declared in TRT_OBJECTS"
            )
        self.generic_visit(node)


def scan_source(source: str, objects: dict[str, str], majors: Iterable[int] = SUPPORTED_MAJORS) -> Scan:
    scanner = _Scanner(objects, majors)
    scanner.visit(ast.parse(source))
    return scanner.scan


def check_source(source: str, objects: dict[str, str], api_by_major: dict[int, Api]) -> tuple[Scan, list[str]]:
    """Every TensorRT use in ``source`` resolved against each major it runs on: (scan, failures)."""
    scan = scan_source(source, objects, api_by_major)
    failures = list(scan.problems)
    for use in scan.uses:
        for major in sorted(use.majors):
            problem = api_by_major[major].problem(use.owner, use.attr)
            if problem:
                failures.append(f"line {use.line}: `{use.expr}`: {problem}")
    return scan, failures


# -- the snapshot ---------------------------------------------------------------------------
def snapshot_entry(api: Api) -> dict:
    return {
        "major": api.major,
        "source": api.source.split(" at ")[0],
        "module": sorted(api.module),
        "classes": {k: sorted(api.classes[k]) for k in SNAPSHOT_CLASSES if k in api.classes},
    }


def write_snapshot(path: Path) -> None:
    stubs = stub_api()
    if stubs is None:
        raise SystemExit("no TensorRT 10 stubs: set INFERENCE_ACCEL_TRT_STUBS to the tensorrt-stubs wheel")
    lean = live_module("tensorrt_lean", 11)
    if lean is None:
        raise SystemExit("tensorrt_lean 11 is not installed (pip install the dev extra)")
    entries = {"10": snapshot_entry(stubs), "11-lean": snapshot_entry(api_from_module(lean))}
    import pprint

    header = (
        '"""TensorRT API names, generated by ``python -m tests.trt_api_check --write-snapshot``: do not edit.\n'
        "\n"
        "Used by ``tests/trt_api_check.py`` when the TensorRT 10 stubs or the lean\n"
        "runtime 11 are not at hand. Names only: the module's names and the members\n"
        "of the classes our engine code reaches (``SNAPSHOT_CLASSES``).\n"
        '"""\n\n'
    )
    lines = [header + "SNAPSHOT = " + pprint.pformat(entries, width=110, compact=True)]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-snapshot"]:
        raise SystemExit("usage: python -m tests.trt_api_check --write-snapshot")
    target = Path(__file__).with_name("tensorrt_api_snapshot.py")
    write_snapshot(target)
    print(f"wrote {target}")
