"""The one place that reads environment flags.

Flag names are the ones Roboflow's ``inference`` server uses, so a deployment
can switch our fast paths with the switches it already knows. CLI options
override the environment through :func:`resolve_flags`.

>>> import os
>>> from inference_accel.flags import read_flags
>>> read_flags({"RFDETR_PIPELINE_DEPTH": "1"}).pipeline_depth
1
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Mapping

from inference_accel.errors import FlagValueError

PREPROC_FLAG = "INFERENCE_MODELS_RFDETR_TRITON_PREPROC_ENABLED"
POSTPROC_FLAG = "INFERENCE_MODELS_RFDETR_TRITON_POSTPROC_ENABLED"
CUDA_GRAPHS_FLAG = "ENABLE_AUTO_CUDA_GRAPHS_FOR_TRT_BACKEND"
PIPELINE_DEPTH_FLAG = "RFDETR_PIPELINE_DEPTH"
# Our own tuning knobs of the CPU postprocessing (no Roboflow equivalent).
POSTPROC_NATIVE_FLAG = "INFERENCE_ACCEL_POSTPROC_NATIVE"
POSTPROC_THREADS_FLAG = "INFERENCE_ACCEL_POSTPROC_THREADS"
# ... and of the response stage (the compiled painter and points writer).
RESPONSE_NATIVE_FLAG = "INFERENCE_ACCEL_RESPONSE_NATIVE"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Flags:
    """Resolved switches for the fast paths.

    ``preproc_fast`` / ``postproc_fast``: allow the fused preprocessing and the
    sparse postprocessing (Triton on GPU, the CPU fast path elsewhere); false
    forces the reference path. ``cuda_graphs``: capture per-frame GPU work in
    CUDA graphs (only meaningful on GPU). ``pipeline_depth``: 1 runs frames one
    after another, 2 overlaps CPU and GPU stages of consecutive frames.
    """

    preproc_fast: bool = True
    postproc_fast: bool = True
    cuda_graphs: bool = True
    pipeline_depth: int = 1


def parse_bool(name: str, value: str) -> bool:
    """Parse a boolean flag value, or raise :class:`FlagValueError` naming it."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise FlagValueError(
        f"{name}={value!r} is not a boolean; use one of true/false, 1/0, yes/no, on/off"
    )


def parse_depth(name: str, value: str | int) -> int:
    """Parse the pipeline depth (1 or 2), or raise :class:`FlagValueError`."""
    try:
        depth = int(str(value).strip())
    except ValueError:
        raise FlagValueError(f"{name}={value!r} is not an integer; use 1 or 2") from None
    if depth not in (1, 2):
        raise FlagValueError(f"{name}={value!r} is out of range; use 1 or 2")
    return depth


def read_flags(environ: Mapping[str, str] | None = None) -> Flags:
    """Read every flag from ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    defaults = Flags()

    def boolean(name: str, default: bool) -> bool:
        raw = env.get(name)
        return default if raw is None or raw.strip() == "" else parse_bool(name, raw)

    raw_depth = env.get(PIPELINE_DEPTH_FLAG)
    depth = (
        defaults.pipeline_depth
        if raw_depth is None or raw_depth.strip() == ""
        else parse_depth(PIPELINE_DEPTH_FLAG, raw_depth)
    )
    # Our two CPU-postprocessing knobs are not fields (they change speed, never
    # pixels, and are re-read where used), but a bad value is an error here,
    # at startup, naming the variable: never a fast path failing per frame.
    read_postproc_native(env)
    read_postproc_threads(env)
    read_response_native(env)
    return Flags(
        preproc_fast=boolean(PREPROC_FLAG, defaults.preproc_fast),
        postproc_fast=boolean(POSTPROC_FLAG, defaults.postproc_fast),
        cuda_graphs=boolean(CUDA_GRAPHS_FLAG, defaults.cuda_graphs),
        pipeline_depth=depth,
    )


def resolve_flags(
    *,
    preproc_fast: bool | None = None,
    postproc_fast: bool | None = None,
    cuda_graphs: bool | None = None,
    pipeline_depth: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flags:
    """Environment flags with explicit (CLI) overrides applied on top."""
    flags = read_flags(environ)
    overrides = {
        "preproc_fast": preproc_fast,
        "postproc_fast": postproc_fast,
        "cuda_graphs": cuda_graphs,
        "pipeline_depth": None
        if pipeline_depth is None
        else parse_depth("--pipeline-depth", pipeline_depth),
    }
    return replace(flags, **{k: v for k, v in overrides.items() if v is not None})


def read_postproc_native(environ: Mapping[str, str] | None = None) -> bool:
    """``INFERENCE_ACCEL_POSTPROC_NATIVE`` (default true): allow the compiled CPU executor.

    >>> read_postproc_native({"INFERENCE_ACCEL_POSTPROC_NATIVE": "off"})
    False
    """
    raw = (os.environ if environ is None else environ).get(POSTPROC_NATIVE_FLAG, "")
    return True if raw.strip() == "" else parse_bool(POSTPROC_NATIVE_FLAG, raw)


def read_response_native(environ: Mapping[str, str] | None = None) -> bool:
    """``INFERENCE_ACCEL_RESPONSE_NATIVE`` (default true): allow the compiled response helper.

    >>> read_response_native({"INFERENCE_ACCEL_RESPONSE_NATIVE": "0"})
    False
    """
    raw = (os.environ if environ is None else environ).get(RESPONSE_NATIVE_FLAG, "")
    return True if raw.strip() == "" else parse_bool(RESPONSE_NATIVE_FLAG, raw)


def read_postproc_threads(environ: Mapping[str, str] | None = None, usable: int | None = None) -> int | None:
    """``INFERENCE_ACCEL_POSTPROC_THREADS``: worker threads of the CPU postprocessing (None: measured default).

    Bounded: 1 to 4 per usable CPU (``usable``, default: this process's, see
    :mod:`inference_accel.workers`), never above 256; anything else is a
    :class:`FlagValueError` naming the flag.

    >>> read_postproc_threads({"INFERENCE_ACCEL_POSTPROC_THREADS": "2"})
    2
    """
    from inference_accel.workers import CPU_THREADS, MAX_THREADS_PER_CPU, max_threads

    raw = (os.environ if environ is None else environ).get(POSTPROC_THREADS_FLAG, "")
    if raw.strip() == "":
        return None
    usable = CPU_THREADS if usable is None else usable
    cap = max_threads(usable)
    allowed = f"use 1 to {cap} ({MAX_THREADS_PER_CPU} per usable CPU, {usable} usable here, 256 at most)"
    try:
        threads = int(raw.strip())
    except ValueError:
        raise FlagValueError(f"{POSTPROC_THREADS_FLAG}={raw!r} is not an integer; {allowed}") from None
    if not 1 <= threads <= cap:
        raise FlagValueError(f"{POSTPROC_THREADS_FLAG}={raw!r} is out of range; {allowed}")
    return threads
