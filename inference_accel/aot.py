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

import os
import re
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
