"""One gate for every op: implementations, their preconditions, and fallback.

Each op (``preprocess``, ``postprocess``) has several implementations ranked
by preference, e.g. ``triton`` > ``cpu`` > ``reference``. An implementation
registers a *capability check* that returns ``None`` when it can run in this
process, or a reason string when it cannot. :func:`explain` lists every
implementation with its reason (what ``doctor`` prints); :func:`choose` picks
the best available one. At run time a fast path that fails (compile or launch
error) is switched off for the process with :func:`disable`, which warns
once; a fast path that cannot handle one particular input reports it with
:func:`warn_once` and that input takes the next implementation.

**Whose fault.** :func:`disable` is for faults of the path itself only: a
Triton compile or launch failure, a failed self-check, an internal error on
*valid* input. The public entry points check their arguments before any
implementation runs (:mod:`inference_accel.arguments`), so an invalid
argument raises a clear error and leaves every path on; and an error that
the reference shares on the same input is the input's, not the path's, so
it is raised without disabling anything. :func:`disabled` lists what is off.

>>> from inference_accel.dispatch import register, choose, Implementation
>>> register(Implementation("demo", "fast", 10, lambda flags: "needs a GPU"))
>>> register(Implementation("demo", "reference", 0, lambda flags: None))
>>> choose("demo", None).name
'reference'
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

logger = logging.getLogger("inference_accel")

REFERENCE = "reference"


@dataclass(frozen=True)
class Implementation:
    """One implementation of an op.

    ``check(flags)`` returns ``None`` if the implementation can run in this
    process with these flags, or a human-readable reason why not.
    """

    op: str
    name: str
    rank: int
    check: Callable[[Any], str | None]


@dataclass(frozen=True)
class Verdict:
    implementation: Implementation
    reason: str | None  # None: available

    @property
    def available(self) -> bool:
        return self.reason is None


_registry: dict[str, dict[str, Implementation]] = {}
_disabled: dict[tuple[str, str], str] = {}
_warned: set[str] = set()
_lock = threading.Lock()


def register(impl: Implementation) -> None:
    """Add (or replace) an implementation of ``impl.op``."""
    _registry.setdefault(impl.op, {})[impl.name] = impl


def explain(op: str, flags: Any) -> list[Verdict]:
    """Every implementation of ``op``, best first, with why it is unavailable."""
    verdicts = []
    for impl in sorted(_registry.get(op, {}).values(), key=lambda i: -i.rank):
        reason = _disabled.get((op, impl.name))
        if reason is None:
            try:
                reason = impl.check(flags)
            except Exception as exc:  # a broken probe must not break dispatch
                reason = f"capability check failed: {exc!r}"
        verdicts.append(Verdict(impl, reason))
    return verdicts


def choose(op: str, flags: Any) -> Implementation:
    """The best available implementation of ``op``."""
    for verdict in explain(op, flags):
        if verdict.available:
            return verdict.implementation
    raise RuntimeError(f"no implementation of {op!r} is available")


def disable(op: str, name: str, reason: str) -> None:
    """Turn ``op``'s implementation ``name`` off for this process, warning once.

    Only for a fault of the implementation itself (see "Whose fault" above),
    never for an invalid argument.
    """
    with _lock:
        if (op, name) in _disabled:
            return
        _disabled[(op, name)] = f"disabled after a failure: {reason}"
    logger.warning("%s: %s fast path disabled for this process: %s", op, name, reason)


def disabled(op: str) -> dict[str, str]:
    """``op``'s implementations switched off at run time, with the reason.

    >>> disabled("demo")
    {}
    """
    with _lock:
        return {name: reason for (o, name), reason in _disabled.items() if o == op}


def warn_once(key: str, message: str) -> None:
    """Log ``message`` the first time ``key`` is seen in this process."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message)


def reset_runtime_state() -> None:
    """Forget disabled implementations and issued warnings (tests use this)."""
    with _lock:
        _disabled.clear()
        _warned.clear()
