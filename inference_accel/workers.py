"""Process-wide worker threads of the CPU fast paths: one named pool per purpose, made on first use.

The CPU paths spend their time in code that releases the GIL (numpy, OpenCV,
Pillow, our compiled helper), so a second thread pays on a 2-core machine.

>>> pool("demo", 2).submit(sum, [1, 2]).result()
3
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

CPU_THREADS = max(1, min(2, os.cpu_count() or 1))

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def pool(name: str, threads: int = CPU_THREADS) -> ThreadPoolExecutor:
    """The pool ``name`` with ``threads`` workers (replaced if asked for another size)."""
    with _lock:
        existing = _pools.get(name)
        if existing is None or existing._max_workers != threads:  # noqa: SLF001 - our own pools
            existing = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
            _pools[name] = existing
        return existing
