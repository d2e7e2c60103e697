"""A recorder of the torch ops host code issues: what CUDA-graph capture forbids, seen on the CPU.

Under ``TRITON_INTERPRET=1`` the interpreter itself issues torch ops (it
copies kernel arguments to and from numpy); those are skipped, so what is
recorded is exactly what our launchers issue between kernel launches.
"""

from __future__ import annotations

import sys


class TorchOpsRecorder:
    """Every torch op our host code issues (not the interpreter's own), and which allocate.

    An op allocates when its schema returns a tensor that aliases no input
    (``out=`` variants, in-place ops and views alias one). ``.item()`` and
    friends are ``_local_scalar_dense``: a host sync.
    """

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        recorder = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                frame = sys._getframe(1)
                while frame is not None:
                    name = frame.f_code.co_filename
                    if "triton" in name and "interpreter" in name:
                        break
                    frame = frame.f_back
                else:
                    recorder.ops.append(func)
                return func(*args, **(kwargs or {}))

        self.ops = []
        self.mode = Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)

    @property
    def allocating(self):
        return [str(f) for f in self.ops if any(r.alias_info is None and str(r.type) == "Tensor" for r in f._schema.returns)]

    @property
    def syncing(self):
        return [str(f) for f in self.ops if "local_scalar" in str(f) or "nonzero" in str(f)]
