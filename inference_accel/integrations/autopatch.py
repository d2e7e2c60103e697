"""Turn the inference-models integration on from the environment, without editing server code.

An operator of Roboflow's ``inference`` server (or any process using
``inference-models``) runs once, in the server's Python environment::

    python -m inference_accel.integrations install-hook

which writes ``inference_accel_inference_models.pth`` into its
``site-packages``. Python executes that one line at every start-up; it costs
one environment lookup and does nothing else unless

    INFERENCE_ACCEL_PATCH_INFERENCE_MODELS=1

is set. Then it installs an import hook that waits for
``inference_models.models.auto_loaders.models_registry`` to be imported by
the server and, right after, calls
:func:`inference_accel.integrations.inference_models.register` (accelerated
RF-DETR instance-segmentation classes for the ONNX and TRT registry keys).
Nothing of ``inference_models`` is imported early; a process that never
loads a model never pays for it.

If the integration cannot be enabled (``inference-models`` outside
``>=0.39,<0.40``, our package broken), the hook logs an error naming the
reason and the server runs the stock classes: a start-up flag must not take a
server down. ``python -m inference_accel.integrations status`` shows what a
fresh process would do. ``uninstall-hook`` removes the file.

>>> enabled({"INFERENCE_ACCEL_PATCH_INFERENCE_MODELS": "1"}), enabled({})
(True, False)
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import Mapping

ENV_VAR = "INFERENCE_ACCEL_PATCH_INFERENCE_MODELS"
TARGET_MODULE = "inference_models.models.auto_loaders.models_registry"
PTH_NAME = "inference_accel_inference_models.pth"
# One line; .pth lines starting with "import" are executed by site.py at start-up.
PTH_LINE = (
    "import os; os.environ.get('INFERENCE_ACCEL_PATCH_INFERENCE_MODELS', '').strip().lower() "
    "in ('1', 'true', 'yes', 'on') and __import__('inference_accel.integrations.autopatch', "
    "fromlist=['_']).install_import_hook()\n"
)

logger = logging.getLogger("inference_accel")
_TRUE = {"1", "true", "yes", "on"}
_state: dict = {"hook": None, "registered": None, "error": None}


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``INFERENCE_ACCEL_PATCH_INFERENCE_MODELS`` asks for the integration."""
    environ = os.environ if environ is None else environ
    return environ.get(ENV_VAR, "").strip().lower() in _TRUE


def _register_now() -> None:
    try:
        from inference_accel.integrations.inference_models import register

        _state["registered"] = register()
        _state["error"] = None
    except Exception as exc:  # never break the host's import
        _state["error"] = f"{type(exc).__name__}: {exc}"
        message = (
            f"{ENV_VAR} is set but the inference-models integration could not be enabled; "
            f"the stock classes run ({_state['error']})"
        )
        logger.error(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)


class _RegistryLoader(importlib.abc.Loader):
    """Runs the real loader of the registry module, then registers our classes."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _register_now()


class _RegistryFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that only wraps the loader of :data:`TARGET_MODULE`."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _RegistryLoader(spec.loader)
        return spec


def install_import_hook() -> bool:
    """Register now if the registry is already imported, else when it is; returns True if hooked.

    Never raises (it runs from a ``.pth`` line at interpreter start-up).
    """
    try:
        if TARGET_MODULE in sys.modules:
            _register_now()
            return False
        if _state["hook"] is None:
            finder = _RegistryFinder()
            sys.meta_path.insert(0, finder)
            _state["hook"] = finder
        return True
    except Exception as exc:  # pragma: no cover - defensive
        logger.error("inference_accel import hook failed: %s", exc)
        return False


def remove_import_hook() -> None:
    """Take the hook out of ``sys.meta_path`` (tests)."""
    finder = _state["hook"]
    if finder is not None and finder in sys.meta_path:
        sys.meta_path.remove(finder)
    _state["hook"] = None


def state() -> dict:
    """What this process did: ``{"hook": bool, "registered": keys or None, "error": str or None}``."""
    return {"hook": _state["hook"] is not None, "registered": _state["registered"], "error": _state["error"]}


def site_packages() -> Path:
    """The ``site-packages`` of this interpreter's environment (where the ``.pth`` goes)."""
    return Path(sysconfig.get_paths()["purelib"])


def pth_path(directory: Path | None = None) -> Path:
    return (directory or site_packages()) / PTH_NAME


def install_pth(directory: Path | None = None) -> Path:
    """Write the start-up line; returns its path."""
    path = pth_path(directory)
    path.write_text(PTH_LINE)
    return path


def uninstall_pth(directory: Path | None = None) -> bool:
    """Remove the start-up line; returns whether there was one."""
    path = pth_path(directory)
    if path.exists():
        path.unlink()
        return True
    return False
