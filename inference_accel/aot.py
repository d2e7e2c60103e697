"""Ahead-of-time compilation of Triton kernels for GPUs we do not have.

``triton.compile`` with a ``GPUTarget`` produces PTX and a cubin for any
NVIDIA architecture without a driver. That catches what the interpreter
forgives (types, constexpr misuse, resource limits), and ``cuobjdump`` on the
cubin reports registers and spills for the docs.

>>> from inference_accel.aot import TARGETS
>>> [t.arch for t in TARGETS]
[87, 89, 90]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping

# sm_87: Jetson Orin; sm_89: Ada desktop (RTX 40xx, L4); sm_90: Hopper.
ARCHS = (87, 89, 90)


@dataclass(frozen=True)
class Target:
    arch: int
    warp_size: int = 32


TARGETS = tuple(Target(a) for a in ARCHS)

# Modules whose ``aot_variants()`` list every kernel variant we ship.
KERNEL_MODULES = ("inference_accel.kernels.preprocess", "inference_accel.kernels.postprocess")


@dataclass(frozen=True)
class AotVariant:
    """One compilable kernel variant: the jitted function, the Triton type of
    each argument, the constexpr values and the launch's warp count."""

    name: str
    fn: Any
    signature: Mapping[str, str]
    constexprs: Mapping[str, Any]
    num_warps: int = 4


@dataclass(frozen=True)
class CompileReport:
    """Resources of one compiled kernel variant for one architecture."""

    kernel: str
    arch: int
    registers: int
    local_bytes: int  # register spills land in local memory
    stack_bytes: int
    shared_bytes: int
    ptx_bytes: int


def _cuobjdump() -> str:
    import triton.backends.nvidia as nvidia_backend

    return os.path.join(os.path.dirname(nvidia_backend.__file__), "bin", "cuobjdump")


def compile_for(
    fn: Any,
    signature: Mapping[str, str],
    constexprs: Mapping[str, Any],
    arch: int,
    num_warps: int = 4,
) -> CompileReport:
    """Compile ``fn`` for ``sm_<arch>`` and return its resource usage.

    ``signature`` maps every argument name to a Triton type (``"*fp32"``,
    ``"i32"``, ``"constexpr"``...); ``constexprs`` gives the constexpr values.
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn=fn, signature=dict(signature), constexprs=dict(constexprs))
    compiled = triton.compile(
        source, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps}
    )
    cubin = compiled.asm["cubin"]
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        out = subprocess.run(
            [_cuobjdump(), "--dump-resource-usage", handle.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def field(name: str) -> int:
        match = re.search(rf"\b{name}:(\d+)", out)
        return int(match.group(1)) if match else 0

    return CompileReport(
        kernel=fn.__name__ if hasattr(fn, "__name__") else str(fn),
        arch=arch,
        registers=field("REG"),
        local_bytes=field("LOCAL"),
        stack_bytes=field("STACK"),
        shared_bytes=int(compiled.metadata.shared),
        ptx_bytes=len(compiled.asm["ptx"]),
    )


def collect_variants(modules: tuple[str, ...] = KERNEL_MODULES) -> list[AotVariant]:
    """Every variant from every kernel module that exists (``aot_variants()``)."""
    variants: list[AotVariant] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        variants.extend(module.aot_variants())
    return variants


def compile_all(modules: tuple[str, ...] = KERNEL_MODULES) -> list[dict[str, Any]]:
    """Compile every variant for every target; one row per (variant, arch)."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("AOT compilation needs TRITON_INTERPRET unset (jitted, not interpreted, kernels)")
    rows = []
    for variant in collect_variants(modules):
        for target in TARGETS:
            report = compile_for(
                variant.fn, variant.signature, variant.constexprs, target.arch, variant.num_warps
            )
            row = dict(report.__dict__)
            row["kernel"] = variant.name
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m inference_accel.aot [--json FILE]``: compile and print a table."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--module", action="append", help="kernel module(s) to compile")
    args = parser.parse_args(argv)
    rows = compile_all(tuple(args.module) if args.module else KERNEL_MODULES)
    print(f"{'kernel':<40} {'arch':>5} {'regs':>5} {'spill(local B)':>14} {'stack B':>8} {'smem B':>7}")
    for r in rows:
        print(
            f"{r['kernel']:<40} sm_{r['arch']:<2} {r['registers']:>5} {r['local_bytes']:>14} "
            f"{r['stack_bytes']:>8} {r['shared_bytes']:>7}"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
