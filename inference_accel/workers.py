"""Process-wide worker threads of the CPU fast paths: one named pool per purpose, made on first use.

The CPU paths spend their time in code that releases the GIL (numpy, OpenCV,
Pillow, our compiled helper), so a second thread pays on a 2-core machine.

**How many CPUs.** :func:`cpu_budget` counts the CPUs this process may
actually run on: the scheduler affinity (``os.sched_getaffinity``, e.g.
``taskset`` or a Kubernetes ``cpuset``; ``os.cpu_count()`` where the OS has no
affinity call), lowered to the cgroup CPU quota rounded up when one is set
(``docker --cpus=2``, a Kubernetes CPU limit): cgroup v2 ``cpu.max``
(``"max 100000"`` = no quota, ``"200000 100000"`` = 2 CPUs), cgroup v1
``cpu/cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (-1 = no quota). Missing
or unreadable cgroup files are ignored. :data:`CPU_THREADS` is that count,
read once at import; each call site sizes its pool from it (see
:func:`pool_sizes`).

>>> pool("demo", 2).submit(sum, [1, 2]).result()
3
>>> budget = cpu_budget(cgroup_root="/nonexistent", proc_cgroup="/nonexistent")
>>> budget.usable >= 1 and budget.quota is None
True
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_CGROUP = "/proc/self/cgroup"
# A thread-count override may ask for at most this many threads per usable
# CPU (oversubscription for experiments), and never more than MAX_THREADS.
MAX_THREADS_PER_CPU = 4
MAX_THREADS = 256


@dataclass(frozen=True)
class CpuBudget:
    """The CPUs this process may use, and where that number came from.

    ``cpu_count``: ``os.cpu_count()`` (CPUs in the machine). ``affinity``:
    CPUs the scheduler lets this process run on (None: no affinity call on
    this OS). ``quota``: the cgroup CPU quota in CPUs (None: no quota found),
    read from ``quota_file``. ``usable``: min(affinity or cpu_count,
    ceil(quota)), at least 1.
    """

    usable: int
    cpu_count: int | None
    affinity: int | None
    quota: float | None = None
    quota_file: str | None = None

    def describe(self) -> str:
        """One line: the count and its sources.

        >>> CpuBudget(2, 16, 16, 1.5, "/sys/fs/cgroup/cpu.max").describe()
        '2 (affinity 16 of 16 CPUs; cgroup quota 1.5 CPUs from /sys/fs/cgroup/cpu.max, rounded up)'
        """
        total = "?" if self.cpu_count is None else str(self.cpu_count)
        where = (
            f"affinity {self.affinity} of {total} CPUs"
            if self.affinity is not None
            else f"os.cpu_count() {total} (no affinity call on this OS)"
        )
        if self.quota is None:
            quota = "no cgroup CPU quota"
        else:
            quota = f"cgroup quota {self.quota:g} CPUs from {self.quota_file}"
            if self.quota != int(self.quota):
                quota += ", rounded up"
        return f"{self.usable} ({where}; {quota})"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="strict").strip()
    except (OSError, UnicodeError, ValueError):
        return None


def _v2_quota(directory: Path) -> float | None:
    """``cpu.max`` of one cgroup v2 directory in CPUs (None: no quota, missing or garbage)."""
    text = _read(directory / "cpu.max")
    if not text:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _v1_quota(directory: Path) -> float | None:
    """``cpu.cfs_quota_us / cpu.cfs_period_us`` of one cgroup v1 directory (None: -1, missing or garbage)."""
    quota = _read(directory / "cpu.cfs_quota_us")
    period = _read(directory / "cpu.cfs_period_us")
    if quota is None or period is None:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:  # -1: no quota; 0 or negative periods are garbage
        return None
    return q / p


def _own_cgroup_dirs(root: Path, proc_cgroup: str | os.PathLike[str], v2: bool) -> list[Path]:
    """This process's cgroup directory and its parents under ``root`` (deepest first), then ``root``.

    Inside a container the process's cgroup is usually ``root`` itself
    (cgroup namespace); on a host, e.g. under ``systemd-run -p CPUQuota=``,
    the quota sits on the process's own cgroup further down.
    """
    dirs: list[Path] = []
    text = _read(Path(proc_cgroup)) or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if v2 and parts[0] != "0":
            continue
        if not v2 and "cpu" not in controllers.split(","):
            continue
        rel_parts = [p for p in rel.strip().split("/") if p and p not in (".", "..")]
        while rel_parts:
            dirs.append(root.joinpath(*rel_parts))
            rel_parts.pop()
    dirs.append(root)
    return list(dict.fromkeys(dirs))


def cgroup_cpu_quota(
    cgroup_root: str | os.PathLike[str] = CGROUP_ROOT,
    proc_cgroup: str | os.PathLike[str] = PROC_CGROUP,
) -> tuple[float, str] | None:
    """The tightest cgroup CPU quota over this process's cgroup and its parents: (CPUs, file), or None.

    Reads cgroup v2 ``cpu.max`` under ``cgroup_root`` and cgroup v1
    ``cpu.cfs_quota_us`` under ``cgroup_root/cpu`` (or ``cpu,cpuacct``).
    Never raises: missing, unreadable or garbage files count as no quota.

    >>> cgroup_cpu_quota("/nonexistent", "/nonexistent") is None
    True
    """
    root = Path(cgroup_root)
    found: list[tuple[float, str]] = []
    try:
        for directory in _own_cgroup_dirs(root, proc_cgroup, v2=True):
            quota = _v2_quota(directory)
            if quota is not None:
                found.append((quota, str(directory / "cpu.max")))
        for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
            for directory in _own_cgroup_dirs(root / name, proc_cgroup, v2=False):
                quota = _v1_quota(directory)
                if quota is not None:
                    found.append((quota, str(directory / "cpu.cfs_quota_us")))
    except OSError:  # a path we cannot even stat: treat as no quota
        pass
    return min(found) if found else None


def cpu_budget(
    cgroup_root: str | os.PathLike[str] = CGROUP_ROOT,
    proc_cgroup: str | os.PathLike[str] = PROC_CGROUP,
) -> CpuBudget:
    """How many CPUs this process may use: affinity, lowered to the cgroup quota rounded up."""
    cpu_count = os.cpu_count()
    affinity = None
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            affinity = len(getaffinity(0)) or None
        except OSError:
            affinity = None
    usable = affinity or cpu_count or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        usable = min(usable, math.ceil(quota[0]))
    return CpuBudget(
        usable=max(1, usable),
        cpu_count=cpu_count,
        affinity=affinity,
        quota=None if quota is None else quota[0],
        quota_file=None if quota is None else quota[1],
    )


def usable_cpus(
    cgroup_root: str | os.PathLike[str] = CGROUP_ROOT,
    proc_cgroup: str | os.PathLike[str] = PROC_CGROUP,
) -> int:
    """:attr:`CpuBudget.usable` of :func:`cpu_budget`."""
    return cpu_budget(cgroup_root, proc_cgroup).usable


def max_threads(usable: int | None = None) -> int:
    """The most threads an override may ask for: 4 per usable CPU, at most 256.

    >>> max_threads(2), max_threads(100)
    (8, 256)
    """
    usable = CPU_THREADS if usable is None else usable
    return max(1, min(MAX_THREADS, MAX_THREADS_PER_CPU * usable))


CPU_BUDGET = cpu_budget()
# The CPUs this process may use (read once at import): the default size of every pool.
CPU_THREADS = CPU_BUDGET.usable

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def pool(name: str, threads: int = CPU_THREADS) -> ThreadPoolExecutor:
    """The pool ``name`` with ``threads`` workers (replaced if asked for another size).

    Threads start lazily, so a pool only runs as many threads as tasks it is
    given at once; call sites choose how many tasks to submit.
    """
    with _lock:
        existing = _pools.get(name)
        if existing is None or existing._max_workers != threads:  # noqa: SLF001 - our own pools
            existing = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
            _pools[name] = existing
        return existing


def pool_sizes() -> dict[str, str]:
    """Each pool's size on this machine and the rule that picks it (for ``inference-accel doctor``).

    An invalid thread override in the environment shows as that pool's
    error (the commands themselves refuse it).
    """
    from inference_accel.errors import FlagValueError
    from inference_accel.postprocess.sparse_cpu import native_reason, threads_rule
    from inference_accel.preprocess.cpu import threads_rule as preprocess_rule

    try:
        postprocess = threads_rule(native_reason() is None)
    except FlagValueError as exc:
        postprocess = f"error: {exc}"
    return {
        "preprocess-cpu": preprocess_rule(),
        "postprocess-cpu": postprocess,
        "polygons": "1 thread (the response stays serial: 2 threads measured 3x slower inside the pipeline)",
    }
