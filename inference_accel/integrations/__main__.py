"""``python -m inference_accel.integrations {install-hook,uninstall-hook,status}``.

- ``install-hook``: write the start-up ``.pth`` into this environment's
  site-packages (see :mod:`inference_accel.integrations.autopatch`); the
  integration then turns on in any process started with
  ``INFERENCE_ACCEL_PATCH_INFERENCE_MODELS=1``.
- ``uninstall-hook``: remove it.
- ``status``: the installed inference-models, whether it is supported, the
  hook file, the environment variable, and what the registry holds.
"""

from __future__ import annotations

import argparse
import sys

from inference_accel.integrations import SUPPORTED_RANGE, installed_version, version_problem
from inference_accel.integrations import autopatch


def _status() -> int:
    version = installed_version()
    problem = version_problem(version)
    print(f"inference-models: {version or 'not installed'} (supported: {SUPPORTED_RANGE})")
    print(f"supported: {'yes' if problem is None else 'no - ' + problem}")
    path = autopatch.pth_path()
    print(f"start-up hook: {path} ({'installed' if path.exists() else 'not installed'})")
    print(f"{autopatch.ENV_VAR}: {'set' if autopatch.enabled() else 'not set'}")
    if problem is None:
        from inference_accel.integrations import inference_models as integration
        from inference_models.models.auto_loaders.models_registry import REGISTERED_MODELS

        for backend in ("onnx", "trt"):
            key = integration._registry_key(backend)
            entry = REGISTERED_MODELS.get(key)
            lazy = getattr(entry, "model_class", entry)
            name = f"{getattr(lazy, '_module_name', '?')}.{getattr(lazy, '_class_name', '?')}"
            print(f"registry {key[0]}/{key[1]}/{key[2].value}: {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_accel.integrations", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install-hook", "uninstall-hook", "status"])
    args = parser.parse_args(argv)
    if args.command == "install-hook":
        path = autopatch.install_pth()
        print(f"wrote {path}; start the server with {autopatch.ENV_VAR}=1 to accelerate RF-DETR segmentation")
        return 0
    if args.command == "uninstall-hook":
        removed = autopatch.uninstall_pth()
        print(f"removed {autopatch.pth_path()}" if removed else "no hook installed")
        return 0
    return _status()


if __name__ == "__main__":
    sys.exit(main())
