"""What every Triton launcher shares: the interpreter switch, the normalisation
table, and each kernel's launch contract.

**The launch contract.** A kernel's parameters are listed once, in order, in a
:class:`KernelContract` beside the kernel (``kernels/<op>.py``): each one's
name, the Triton type(s) a launch may bind to it and, for a constexpr, the
values launched on a GPU. Everything else is derived from that one list:

- the ``@triton.jit`` decoration (:meth:`KernelContract.jit`): every runtime
  scalar unspecialised, every pointer unspecialised on alignment, so the JIT
  compiles exactly the variants listed, whatever the sizes, strides or
  addresses; the decorator refuses a function whose parameters differ from
  the contract in name or order;
- the launch (:meth:`KernelContract.launch`): by keyword, each value checked
  against its declared type, with the contract's compile options;
- the ahead-of-time variants (:meth:`KernelContract.variants`): one per
  combination of pointer dtypes and constexpr values, with the same options
  object the launch passes (``inference_accel.aot`` compiles them).

Constexpr values a launch may use only under ``TRITON_INTERPRET=1`` (bigger
tiles that make the interpreter faster, the CPU arithmetics) are declared as
such; a GPU launch refuses them, so a GPU runs only AOT-checked variants.

This module imports neither Triton nor a kernel at import time (the CPU paths
import the normalisation table from here).

>>> contract = KernelContract("demo", (pointer("x_ptr", "fp32", "fp16"), *scalars("i32", "n"),
...                                    constexpr("BLOCK", 64)), num_warps=4)
>>> [v.name for v in contract.variants()]
['demo x_ptr:fp32', 'demo x_ptr:fp16']
>>> dict(contract.variants()[1].signature)
{'x_ptr': '*fp16', 'n': 'i32', 'BLOCK': 'constexpr'}
>>> contract.variants()[0].options is contract.options
True
"""

from __future__ import annotations

import inspect
import itertools
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

import torch

from inference_accel.preprocess.normalization import Normalization, normalize_channels
from inference_accel.preprocess.normalization import resolve as resolve_normalization


def interpreter_active() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def normalization_lut(device: torch.device | str = "cpu", normalization: Normalization | None = None) -> torch.Tensor:
    """float32 (3, 256): ``lut[c, v]`` = reference value of byte ``v`` in model plane ``c``.

    Computed on the CPU by ``normalization.normalize_channels``, the function
    ``reference.to_normalized_tensor`` calls (``/ 255``, the scale, ``- mean``,
    ``/ std`` in float32), so each entry is bit-identical to what the
    reference computes for that byte; then moved to ``device``.
    ``normalization``: None is ImageNet. The channel order is not in the
    table: the paths pick the source channel of each plane.

    >>> lut = normalization_lut()
    >>> tuple(lut.shape), lut.dtype
    ((3, 256), torch.float32)
    >>> normalization_lut(normalization=Normalization((0, 0, 0), (1, 1, 1), scale=1.0))[1, 200].item()
    200.0
    """
    values = torch.arange(256, dtype=torch.uint8).float().view(1, 256).expand(3, 256)
    return normalize_channels(values, resolve_normalization(normalization)).contiguous().to(device)


# -- the launch contract ------------------------------------------------------------
CONSTEXPR = "constexpr"

# torch dtype -> the element type Triton gives a tensor of that dtype.
_TRITON_DTYPES = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float64: "fp64",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.int16: "i16",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.bool: "i1",
}


def triton_type(value: Any) -> str:
    """The Triton type the JIT gives a runtime argument (``"*fp32"``, ``"i32"``, ``"fp32"``...).

    Triton's own rule (``triton.runtime.jit.mangle_type``), without importing
    Triton; anything Triton cannot pass (a numpy scalar) gets its class name.

    >>> triton_type(torch.zeros(2, dtype=torch.float16)), triton_type(7), triton_type(2**31), triton_type(0.5)
    ('*fp16', 'i32', 'i64', 'fp32')
    """
    if isinstance(value, torch.Tensor):
        return "*" + _TRITON_DTYPES.get(value.dtype, str(value.dtype))
    if isinstance(value, bool):
        return "u1"
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return "i32"
        return "i64" if -(2**63) <= value < 2**63 else "u64"
    if isinstance(value, float):
        return "fp32"
    return type(value).__name__


@dataclass(frozen=True)
class Param:
    """One kernel parameter as every launch binds it.

    ``types``: the Triton types a launch may pass (several for a pointer
    whose dtype varies, each one an AOT variant), or ``("constexpr",)``.
    ``values``: a constexpr's values launched on a GPU (each one an AOT
    variant). ``interpreter_values``: values allowed only under the
    interpreter (never compiled ahead of time, refused on a GPU).
    """

    name: str
    types: tuple[str, ...]
    values: tuple[Any, ...] = ()
    interpreter_values: tuple[Any, ...] = ()

    @property
    def is_constexpr(self) -> bool:
        return self.types == (CONSTEXPR,)

    @property
    def is_pointer(self) -> bool:
        return self.types[0].startswith("*")

    def choices(self) -> tuple[Any, ...]:
        """What varies between AOT variants: the dtypes of a pointer, the values of a constexpr."""
        return self.values if self.is_constexpr else self.types


def pointer(name: str, *dtypes: str) -> Param:
    """A pointer parameter; more than one dtype makes one variant per dtype."""
    return Param(name, tuple(f"*{d}" for d in dtypes))


def pointers(dtype: str, *names: str) -> tuple[Param, ...]:
    """Pointer parameters of one fixed dtype."""
    return tuple(pointer(n, dtype) for n in names)


def scalars(ty: str, *names: str) -> tuple[Param, ...]:
    """Runtime scalars of one Triton type (``"i32"``, ``"fp32"``), never specialised."""
    return tuple(Param(n, (ty,)) for n in names)


def constexpr(name: str, *values: Any, interpreter: Iterable[Any] = ()) -> Param:
    """A compile-time parameter: the values a GPU launch may use, then interpreter-only ones."""
    return Param(name, (CONSTEXPR,), tuple(values), tuple(interpreter))


def _same_value(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # True is not 1: a bool constexpr stays a bool


def _python_fn(kernel: Any) -> Callable[..., Any]:
    """The Python function behind a ``@triton.jit`` object (JIT or interpreter)."""
    return getattr(kernel, "fn", kernel)


@dataclass(frozen=True)
class AotVariant:
    """One compiled kernel variant: exactly what a launch of that variant compiles.

    ``options`` is the contract's own options mapping (the launch passes the
    same object).
    """

    name: str
    fn: Any
    signature: Mapping[str, str]
    constexprs: Mapping[str, Any]
    options: Mapping[str, Any]

    @property
    def num_warps(self) -> int:
        return int(self.options["num_warps"])


class KernelContract:
    """A kernel's parameters, in order, and its compile options: the one definition.

    ``fp_fusion`` False (the default) compiles with ``enable_fp_fusion=False``:
    the kernel writes every FMA it wants explicitly and nothing else may be
    contracted (the float order is part of the result).
    """

    def __init__(self, name: str, params: Iterable[Param], *, num_warps: int, fp_fusion: bool = False) -> None:
        self.name = name
        self.params = tuple(params)
        self.names: tuple[str, ...] = tuple(p.name for p in self.params)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"{name}: parameter names repeat: {list(self.names)}")
        self.options: Mapping[str, Any] = MappingProxyType(
            {"num_warps": int(num_warps), "enable_fp_fusion": bool(fp_fusion)}
        )
        self.fn: Any = None

    def runtime_scalars(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if not p.is_constexpr and not p.is_pointer)

    def pointers(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.is_pointer)

    # -- the kernel ------------------------------------------------------------
    def mismatch(self, kernel: Any) -> str | None:
        """How ``kernel``'s parameters differ from the contract (None: same names, same order)."""
        params = inspect.signature(_python_fn(kernel)).parameters.values()
        have = tuple(p.name for p in params)
        if have != self.names:
            return f"{self.name}: the kernel's parameters {have} differ from the contract's {self.names}"
        return None

    def jit(self, fn: Callable[..., Any]) -> Any:
        """Decorator: ``triton.jit`` with the contract's specialisation rules; checks the signature."""
        import triton

        kernel = triton.jit(
            do_not_specialize=self.runtime_scalars(), do_not_specialize_on_alignment=self.pointers()
        )(fn)
        problem = self.mismatch(kernel)
        if problem:
            raise TypeError(problem)
        self.fn = kernel
        return kernel

    # -- launch ----------------------------------------------------------------
    def bind(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """``args`` in the kernel's order, each checked against its declared type or values."""
        missing = [n for n in self.names if n not in args]
        extra = [n for n in args if n not in self.names]
        if missing or extra:
            raise TypeError(f"{self.name}: missing arguments {missing}, unexpected {extra}")
        interpreted = interpreter_active()
        for p in self.params:
            value = args[p.name]
            if p.is_constexpr:
                allowed = p.values + (p.interpreter_values if interpreted else ())
                if not any(_same_value(value, v) for v in allowed):
                    raise ValueError(f"{self.name}: {p.name}={value!r} is not a declared value {allowed}")
            elif triton_type(value) not in p.types:
                raise TypeError(f"{self.name}: {p.name} is {triton_type(value)}, declared {p.types}")
        return {n: args[n] for n in self.names}

    def launch(self, grid: tuple[int, ...], **args: Any) -> None:
        """``kernel[grid](**args, **options)`` after :meth:`bind`."""
        self.fn[grid](**self.bind(args), **self.options)

    # -- ahead of time -----------------------------------------------------------
    def variants(self) -> list[AotVariant]:
        """Every variant a GPU launch can compile: pointer dtypes x constexpr values."""
        varying = [p for p in self.params if len(p.choices()) > 1]
        out = []
        for combo in itertools.product(*(p.choices() for p in self.params)):
            chosen = dict(zip(self.names, combo))
            signature = {
                p.name: CONSTEXPR if p.is_constexpr else chosen[p.name] for p in self.params
            }
            constexprs = {p.name: chosen[p.name] for p in self.params if p.is_constexpr}
            label = "".join(
                f" {p.name}={chosen[p.name]}" if p.is_constexpr else f" {p.name}:{chosen[p.name][1:]}"
                for p in varying
            )
            out.append(
                AotVariant(
                    name=self.name + label,
                    fn=self.fn,
                    signature=MappingProxyType(signature),
                    constexprs=MappingProxyType(constexprs),
                    options=self.options,
                )
            )
        return out

    def variant_of(self, args: Mapping[str, Any]) -> AotVariant | None:
        """The AOT variant a launch with ``args`` compiles (None: none, e.g. interpreter-only values)."""
        bound = {n: args[n] for n in self.names}
        for variant in self.variants():
            if all(
                _same_value(bound[n], variant.constexprs[n])
                if n in variant.constexprs
                else triton_type(bound[n]) == variant.signature[n]
                for n in self.names
            ):
                return variant
        return None
