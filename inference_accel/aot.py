"""Ahead-of-time compilation of exactly the Triton kernel variants the launchers run.

``triton.compile`` with a ``GPUTarget`` produces PTX and a cubin for any
NVIDIA architecture without a driver. That catches what the interpreter
forgives (types, constexpr misuse, resource limits), and ``cuobjdump`` on the
cubin reports registers, local memory (Triton's "spills") and stack.

What is compiled comes from the kernels' launch contracts
(:class:`~inference_accel.triton_common.KernelContract`): the same jitted
function, the signature a launch binds (pointer dtypes, ``i32``/``fp32``
scalars, nothing specialised), the same constexpr values and the *same
options object* the launch passes (``enable_fp_fusion=False`` included). So
a variant compiled here is byte for byte the kernel a GPU launch compiles;
:func:`jit_request` derives what Triton's own JIT would compile for a given
launch, and the tests check the two agree.

Occupancy is estimated from registers, shared memory and warps per block
with the CUDA occupancy calculator's rules (register allocation in units of
256 per warp, 1 KiB of shared memory reserved per block) and each
architecture's limits (:data:`SM_LIMITS`, from the CUDA programming guide's
table of compute capabilities).

>>> from inference_accel.aot import TARGETS
>>> [t.arch for t in TARGETS]
[87, 89, 90, 86, 120]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from inference_accel.triton_common import AotVariant, KernelContract  # noqa: F401 - AotVariant re-exported

# sm_87: Jetson Orin; sm_89: Ada desktop (RTX 40xx, L4); sm_90: Hopper;
# sm_86: Ampere desktop (RTX 30xx, A10); sm_120: Blackwell desktop (RTX 50xx).
ARCHS = (87, 89, 90, 86, 120)


@dataclass(frozen=True)
class Target:
    arch: int
    warp_size: int = 32


TARGETS = tuple(Target(a) for a in ARCHS)


@dataclass(frozen=True)
class SmLimits:
    """Per-SM limits of one compute capability (CUDA programming guide)."""

    max_threads: int
    max_blocks: int
    shared_bytes: int  # shared memory per SM usable by blocks
    registers: int = 65536
    reserved_shared: int = 1024  # per block, compute capability >= 8.0
    register_unit: int = 256  # registers are allocated per warp in these units


SM_LIMITS = {
    86: SmLimits(max_threads=1536, max_blocks=16, shared_bytes=100 * 1024),
    87: SmLimits(max_threads=1536, max_blocks=16, shared_bytes=164 * 1024),
    89: SmLimits(max_threads=1536, max_blocks=24, shared_bytes=100 * 1024),
    90: SmLimits(max_threads=2048, max_blocks=32, shared_bytes=228 * 1024),
    120: SmLimits(max_threads=1536, max_blocks=32, shared_bytes=100 * 1024),
}

# Modules whose ``CONTRACTS`` list every kernel we ship.
KERNEL_MODULES = (
    "inference_accel.kernels.preprocess",
    "inference_accel.kernels.postprocess",
    "inference_accel.kernels.stock_masks",
)


@dataclass(frozen=True)
class CompileReport:
    """Resources of one compiled kernel variant for one architecture."""

    kernel: str
    arch: int
    registers: int
    local_bytes: int  # register spills land in local memory (Triton's n_spills)
    stack_bytes: int
    shared_bytes: int
    ptx_bytes: int
    num_warps: int
    fp_fusion: bool  # as compiled (read back from the kernel's metadata)
    blocks_per_sm: int
    occupancy: float  # resident warps / the SM's maximum


def occupancy(arch: int, registers: int, shared_bytes: int, num_warps: int) -> tuple[int, float]:
    """(resident blocks per SM, resident warps / max warps) for one kernel on ``sm_<arch>``.

    >>> occupancy(87, 40, 128, 4)
    (12, 1.0)
    >>> occupancy(90, 128, 256, 4)
    (4, 0.25)
    """
    lim = SM_LIMITS[arch]
    max_warps = lim.max_threads // 32
    by_warps = max_warps // num_warps
    per_warp = -(-max(registers, 1) * 32 // lim.register_unit) * lim.register_unit
    by_regs = (lim.registers // per_warp) // num_warps
    per_block_smem = -(-shared_bytes // 128) * 128 + lim.reserved_shared
    by_smem = lim.shared_bytes // per_block_smem
    blocks = max(0, min(lim.max_blocks, by_warps, by_regs, by_smem))
    return blocks, blocks * num_warps / max_warps


def _cuobjdump() -> str:
    import triton.backends.nvidia as nvidia_backend

    return os.path.join(os.path.dirname(nvidia_backend.__file__), "bin", "cuobjdump")


def compile_for(variant: AotVariant, arch: int) -> CompileReport:
    """Compile ``variant`` for ``sm_<arch>`` exactly as a launch would; its resource usage."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn=variant.fn, signature=dict(variant.signature), constexprs=dict(variant.constexprs))
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=dict(variant.options))
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(compiled.asm["cubin"])
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

    registers = field("REG")
    shared = int(compiled.metadata.shared)
    num_warps = int(compiled.metadata.num_warps)
    blocks, occ = occupancy(arch, registers, shared, num_warps)
    return CompileReport(
        kernel=variant.name,
        arch=arch,
        registers=registers,
        local_bytes=field("LOCAL"),
        stack_bytes=field("STACK"),
        shared_bytes=shared,
        ptx_bytes=len(compiled.asm["ptx"]),
        num_warps=num_warps,
        fp_fusion=bool(compiled.metadata.enable_fp_fusion),
        blocks_per_sm=blocks,
        occupancy=round(occ, 3),
    )


# -- what the JIT compiles for a launch (Triton's own binder, no GPU) ------------------
@dataclass(frozen=True)
class CompileRequest:
    """The inputs of one compile: what makes two compiles the same kernel."""

    signature: Mapping[str, str]
    constexprs: Mapping[str, Any]
    attrs: Mapping[str, Any]  # per-argument specialisation (alignment, ...); empty for ours
    options: Any  # the backend's parsed options (CUDAOptions)


def aot_request(variant: AotVariant, arch: int) -> CompileRequest:
    """What :func:`compile_for` hands ``triton.compile`` for ``variant``."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend

    backend = make_backend(GPUTarget("cuda", arch, 32))
    return CompileRequest(
        signature=dict(variant.signature),
        constexprs=dict(variant.constexprs),
        attrs={},
        options=backend.parse_options(dict(variant.options)),
    )


def jit_request(contract: KernelContract, args: Mapping[str, Any], arch: int) -> CompileRequest:
    """What Triton's JIT would compile on ``sm_<arch>`` for ``contract.launch(grid, **args)``.

    Runs Triton's own argument binder and specialiser (the code behind
    ``kernel[grid](...)``) for a CUDA target, without a driver, so a launch
    recorded on CPU tensors says which kernel a GPU would compile. Uses
    Triton internals (``create_function_from_signature``, ``_pack_args``);
    the tests pin them.
    """
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import JITFunction, create_function_from_signature

    kernel = contract.fn
    jit_fn = kernel if isinstance(kernel, JITFunction) else JITFunction(kernel.fn, **kernel.kwargs)
    backend = make_backend(GPUTarget("cuda", arch, 32))
    binder = create_function_from_signature(jit_fn.signature, jit_fn.params, backend)
    kwargs = {**contract.bind(args), **contract.options}
    kwargs["debug"] = kwargs.get("debug", jit_fn.debug) or knobs.runtime.debug
    kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    bound, specialization, options = binder(**kwargs)
    options, signature, constexprs, attrs = jit_fn._pack_args(backend, kwargs, bound, specialization, options)
    names = jit_fn.arg_names
    return CompileRequest(
        signature=dict(signature),
        constexprs={names[path[0]]: value for path, value in constexprs.items()},
        attrs={names[path[0]]: attr for path, attr in attrs.items() if attr},
        options=options,
    )


# -- every variant, every target ---------------------------------------------------------
def collect_contracts(modules: Iterable[str] = KERNEL_MODULES) -> list[KernelContract]:
    """The ``CONTRACTS`` of every kernel module that exists."""
    contracts: list[KernelContract] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        contracts.extend(module.CONTRACTS)
    return contracts


def collect_variants(modules: Iterable[str] = KERNEL_MODULES) -> list[AotVariant]:
    """Every variant of every contract (what a GPU can launch)."""
    return [v for contract in collect_contracts(modules) for v in contract.variants()]


def compile_all(
    modules: Iterable[str] = KERNEL_MODULES,
    archs: Iterable[int] = ARCHS,
    full_archs: Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    """Compile variants for targets; one row per (variant, arch).

    ``full_archs`` None: every variant for every arch. Otherwise every
    variant for the archs in ``full_archs``, and for the other archs only
    each contract's heaviest variant (most registers on the first full
    arch, then most shared memory): a representative subset that keeps the
    test fast.
    """
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("AOT compilation needs TRITON_INTERPRET unset (jitted, not interpreted, kernels)")
    archs = tuple(archs)
    full = archs if full_archs is None else tuple(a for a in archs if a in tuple(full_archs))
    if not full:
        raise ValueError("full_archs must name at least one of the archs")
    rows: list[dict[str, Any]] = []
    contracts = collect_contracts(modules)
    for arch in full:
        for contract in contracts:
            rows.extend(asdict(compile_for(v, arch)) for v in contract.variants())
    for arch in (a for a in archs if a not in full):
        for contract in contracts:
            mine = {v.name for v in contract.variants()}
            ranked = [r for r in rows if r["arch"] == full[0] and r["kernel"] in mine]
            heaviest = max(ranked, key=lambda r: (r["registers"], r["shared_bytes"]))["kernel"]
            variant = next(v for v in contract.variants() if v.name == heaviest)
            rows.append(asdict(compile_for(variant, arch)))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: one line per (variant, arch)."""
    lines = [
        "| kernel variant | arch | regs | spill (local B) | stack B | smem B | blocks/SM | occupancy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kernel']} | sm_{r['arch']} | {r['registers']} | {r['local_bytes']} | {r['stack_bytes']} "
            f"| {r['shared_bytes']} | {r['blocks_per_sm']} | {r['occupancy']:.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m inference_accel.aot [--module M] [--arch N] [--full-arch N] [--json FILE]``."""
    parser = argparse.ArgumentParser(description="Compile the shipped Triton kernel variants ahead of time.")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--module", action="append", help="kernel module(s) to compile (default: all)")
    parser.add_argument("--arch", action="append", type=int, help=f"target sm_N (default: {ARCHS})")
    parser.add_argument(
        "--full-arch",
        action="append",
        type=int,
        help="compile every variant only for these archs; the others get each kernel's heaviest variant",
    )
    args = parser.parse_args(argv)
    rows = compile_all(
        tuple(args.module) if args.module else KERNEL_MODULES,
        tuple(args.arch) if args.arch else ARCHS,
        tuple(args.full_arch) if args.full_arch else None,
    )
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
