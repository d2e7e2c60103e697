"""Where exported models live: the user's cache directory.

``$INFERENCE_ACCEL_CACHE`` if set, else ``$XDG_CACHE_HOME/inference_accel``,
else ``~/.cache/inference_accel``.

>>> cache_dir({"INFERENCE_ACCEL_CACHE": "/tmp/x"}).as_posix()
'/tmp/x'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("INFERENCE_ACCEL_CACHE"):
        return Path(env["INFERENCE_ACCEL_CACHE"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "inference_accel"


def cached_model_path(name: str, environ: Mapping[str, str] | None = None, *, dynamic_batch: bool = False) -> Path:
    """Path of the cached ONNX export of RF-DETR ``name`` (e.g. ``seg-nano``).

    ``dynamic_batch``: the dynamic-batch export, cached beside the fixed-batch one.

    >>> cached_model_path("seg-nano", {"INFERENCE_ACCEL_CACHE": "/c"}, dynamic_batch=True).as_posix()
    '/c/models/rfdetr-seg-nano-dynbatch.onnx'
    """
    suffix = "-dynbatch" if dynamic_batch else ""
    return cache_dir(environ) / "models" / f"rfdetr-{name}{suffix}.onnx"
