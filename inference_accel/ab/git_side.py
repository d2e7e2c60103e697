"""Git sides of a parity run: this package as it was at a commit, installed in its own cached venv.

``git:REF[@SIDE]`` runs ``SIDE`` (default ``ours``) with the package of commit
``REF``. The steps, none of which touches the user's work tree:

1. resolve ``REF`` with ``git rev-parse`` in the repository given by
   ``--repo``, else the git checkout this package is imported from;
2. export that commit's tree with ``git archive`` into a temporary directory;
3. create a venv whose only addition is a ``.pth`` line naming this
   interpreter's site-packages, so it reuses the installed dependencies and
   nothing is downloaded, then ``pip install --no-deps --no-build-isolation``
   the exported tree into it (the C helpers are compiled there);
4. check that ``import inference_accel`` in that venv loads the copy installed
   there, never a checkout on the path.

The venv is cached per commit (and per base environment) under
``<cache>/git-sides/`` (:func:`inference_accel.models.cache.cache_dir`), so a
second run of the same commit skips steps 2-3. The side then runs exactly like
a ``venv:`` side (:func:`inference_accel.ab.sides.run_side`).

>>> split_git_spec("HEAD~1@ours:postproc=reference")
('HEAD~1', 'ours:postproc=reference')
>>> split_git_spec("HEAD@{1}")
('HEAD@{1}', 'ours')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from inference_accel.ab.sides import SideError

logger = logging.getLogger(__name__)

INNER_SIDES = ("ours", "stock-im", "accel-im")
MARKER = "git-side.json"  # written last: a venv directory without it is an unfinished build
PARITY_MODULE = "inference_accel/ab/sides.py"  # a commit without it predates `inference-accel parity`


@dataclass
class GitBuild:
    """A venv holding the package of one commit."""

    commit: str
    venv: Path
    build_seconds: float | None  # None: reused from the cache
    helpers: list[str]  # the compiled helpers installed there (module names)


def split_git_spec(body: str) -> tuple[str, str]:
    """``REF[@SIDE]`` -> ``(REF, SIDE)``; an ``@`` not followed by a side stays in the ref (``HEAD@{1}``)."""
    ref, sep, inner = body.rpartition("@")
    kind = inner.partition(":")[0]
    if sep and kind in ("recorded", "venv", "git"):
        raise SideError(f"side git:{body}: the side run at a git ref must be ours..., stock-im or accel-im, not {kind}")
    if not sep or kind not in INNER_SIDES:
        ref, inner = body, "ours"
    if not ref.strip():
        raise SideError(f"side git:{body}: no ref; use git:REF[@SIDE], e.g. git:HEAD~1 or git:v0.1.0@ours")
    return ref.strip(), inner


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True)
    except FileNotFoundError:
        raise SideError("git sides need the git command, which is not installed here") from None


def checkout_of(package_dir: Path) -> Path:
    """The git work tree whose ``inference_accel/`` is ``package_dir``; :class:`SideError` when there is none."""
    package_dir = Path(package_dir).resolve()
    done = _git(package_dir, "rev-parse", "--show-toplevel")
    top = Path(done.stdout.decode().strip()).resolve() if done.returncode == 0 else None
    if top is None or top / "inference_accel" != package_dir:
        raise SideError(
            f"no git checkout is known: inference_accel is imported from {package_dir}, which is not the "
            "inference_accel/ folder of a git work tree; pass --repo PATH (a clone of this package), "
            "or install the version you want into a venv and use the side venv:PATH"
        )
    return top


def default_repo() -> Path:
    """The checkout this package is imported from (an editable install or a run from the source tree)."""
    import inference_accel

    return checkout_of(Path(inference_accel.__file__).parent)


def resolve_commit(repo: Path, ref: str) -> str:
    """The full commit hash ``ref`` names in ``repo``; :class:`SideError` naming the ref when it names none."""
    if _git(Path(repo), "rev-parse", "--git-dir").returncode != 0:
        raise SideError(f"--repo {repo}: not a git repository")
    if ref.startswith("-"):
        raise SideError(f"git ref {ref!r}: a ref cannot start with '-'")
    done = _git(Path(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if done.returncode != 0:
        after_at = ref.rpartition("@")[2] if "@" in ref else "{"
        hint = "" if after_at.startswith("{") else f"; and {after_at!r} is no side (ours..., stock-im, accel-im)"
        raise SideError(f"git ref {ref!r} names no commit in {repo} (try git -C {repo} log --oneline){hint}")
    commit = done.stdout.decode().strip()
    if _git(Path(repo), "cat-file", "-e", f"{commit}:{PARITY_MODULE}").returncode != 0:
        raise SideError(
            f"git ref {ref!r} ({commit[:12]}) predates `inference-accel parity` (no {PARITY_MODULE}): it cannot "
            "record a side; pick a later commit"
        )
    return commit


def base_site_packages() -> list[str]:
    """This interpreter's site-packages folders, which a git side's venv reuses (in this order)."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        folders.append(site.getusersitepackages())
    return [str(Path(f).resolve()) for f in folders if os.path.isdir(f)]


def venv_path(commit: str, environ=None) -> Path:
    """Where the venv of ``commit`` for this interpreter and its site-packages is cached.

    >>> venv_path("ab" * 20, {"INFERENCE_ACCEL_CACHE": "/tmp/c"}).parent.as_posix()
    '/tmp/c/git-sides'
    """
    from inference_accel.models.cache import cache_dir

    base = hashlib.sha256("\n".join([sys.executable, *base_site_packages()]).encode()).hexdigest()[:10]
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache_dir(environ) / "git-sides" / f"{commit}-{tag}-{base}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock on ``path`` (two parity runs never build the same venv at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def _site_packages(venv_dir: Path) -> Path:
    return venv_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _export(repo: Path, commit: str, into: Path) -> None:
    """The tree of ``commit`` written into ``into`` (``git archive``, streamed; the work tree is not read)."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit],
                                   stdout=subprocess.PIPE, stderr=errors)
        failure = None
        try:
            with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(into, filter="data")
                else:  # Python < 3.10.12 / 3.11.4: git archive holds only the commit's own paths
                    archive.extractall(into)
        except tarfile.TarError as exc:
            failure = exc  # a failed git says why first
        finally:
            process.stdout.close()
            code = process.wait()
        if code != 0:
            errors.seek(0)
            raise SideError(f"git archive {commit[:12]} in {repo} failed: {errors.read().decode().strip()}")
        if failure is not None:
            raise SideError(f"git archive {commit[:12]} in {repo}: unreadable output: {failure}")


def _tail(done: subprocess.CompletedProcess, lines: int = 4) -> str:
    """The last lines of a failed command's output; of pip's, those of the failing build step.

    >>> _tail(subprocess.CompletedProcess([], 1, "", "x\\n  [1 lines of output]\\n  boom\\n  [end of output]\\nhint: see above"))
    'boom'
    """
    text = done.stderr or done.stdout or ""
    blocks = re.findall(r"\[\d+ lines? of output\]\n(.*?)\n\s*\[end of output\]", text, re.S)
    return " ".join(line.strip() for line in (blocks[-1] if blocks else text).strip().splitlines()[-lines:])


def _build(repo: Path, commit: str, venv_dir: Path) -> None:
    for module in ("pip", "setuptools"):
        if not any((Path(f) / module).is_dir() for f in base_site_packages()):
            raise SideError(
                f"git sides install with pip and setuptools from this environment; {module} is not installed here"
            )
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt", clear=True).create(venv_dir)
    packages = _site_packages(venv_dir)
    if not packages.is_dir():
        raise SideError(f"the new venv {venv_dir} has no {packages}")
    (packages / "_inference_accel_base_env.pth").write_text("".join(f"{f}\n" for f in base_site_packages()))
    with tempfile.TemporaryDirectory(prefix="parity-git-") as tmp:
        source = Path(tmp) / "source"
        _export(repo, commit, source)
        done = subprocess.run(
            [str(_python(venv_dir)), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--ignore-installed",
             "--no-index", "--no-input", "--disable-pip-version-check", "--quiet", str(source)],
            capture_output=True, text=True, cwd=tmp,
        )
    if done.returncode != 0:
        raise SideError(
            f"pip could not install commit {commit[:12]} into {venv_dir} (exit {done.returncode}): {_tail(done)}"
        )


def imported_file(venv_dir: Path) -> Path:
    """``inference_accel.__file__`` as the venv's python sees it (run from a neutral folder, like the side)."""
    with tempfile.TemporaryDirectory(prefix="parity-git-check-") as tmp:
        done = subprocess.run([str(_python(venv_dir)), "-c", "import inference_accel; print(inference_accel.__file__)"],
                              capture_output=True, text=True, cwd=tmp)
    if done.returncode != 0:
        raise SideError(f"import inference_accel fails in {venv_dir}: {_tail(done)}")
    return Path(done.stdout.strip().splitlines()[-1]).resolve()


def check_imports_own_copy(venv_dir: Path) -> Path:
    """Raise :class:`SideError` unless the venv's python imports the package installed in that venv."""
    found = imported_file(venv_dir)
    if not found.is_relative_to(Path(venv_dir).resolve()):
        hint = f" (PYTHONPATH={os.environ['PYTHONPATH']} comes first)" if os.environ.get("PYTHONPATH") else ""
        raise SideError(f"the venv {venv_dir} imports inference_accel from {found}, not its own copy{hint}")
    return found


def compiled_helpers(venv_dir: Path) -> list[str]:
    """Module names of the compiled helpers installed in the venv (e.g. ``postprocess._sparse_native``)."""
    package = _site_packages(venv_dir) / "inference_accel"
    return sorted(
        ".".join(p.relative_to(package).with_name(p.name.split(".")[0]).parts)
        for p in package.rglob("*") if p.suffix in (".so", ".pyd")
    )


def ensure_venv(repo: Path, commit: str) -> GitBuild:
    """The cached venv of ``commit`` (built now when missing; logged with how long it took)."""
    venv_dir = venv_path(commit)
    with _locked(venv_dir.with_name(venv_dir.name + ".lock")):
        marker = venv_dir / MARKER
        if marker.is_file() and _python(venv_dir).exists():
            meta = json.loads(marker.read_text())
            try:
                check_imports_own_copy(venv_dir)
            except SideError as exc:
                raise SideError(f"{exc} (delete {venv_dir} to rebuild it)") from None
            logger.info("git side %s: reusing %s", commit[:12], venv_dir)
            return GitBuild(commit, venv_dir, None, meta.get("helpers", []))
        logger.info("git side %s: installing it into %s (once per commit) ...", commit[:12], venv_dir)
        start = time.perf_counter()
        try:
            _build(repo, commit, venv_dir)
            imported = check_imports_own_copy(venv_dir)
        except BaseException:
            shutil.rmtree(venv_dir, ignore_errors=True)
            raise
        seconds = time.perf_counter() - start
        helpers = compiled_helpers(venv_dir)
        marker.write_text(json.dumps({
            "commit": commit, "repo": str(repo), "build_seconds": round(seconds, 3), "helpers": helpers,
            "python": sys.executable, "base_site_packages": base_site_packages(), "inference_accel": str(imported),
        }, indent=1))
        logger.info("git side %s: built in %.1f s (compiled helpers: %s)", commit[:12], seconds,
                    ", ".join(helpers) or "none: their Python fallbacks run")
        return GitBuild(commit, venv_dir, seconds, helpers)


def prepare(ref: str, repo: Path | None) -> GitBuild:
    """Resolve ``ref`` (in ``repo``, else this package's checkout) and return its venv, built or cached."""
    repo = Path(repo).resolve() if repo is not None else default_repo()
    if not repo.is_dir():
        raise SideError(f"--repo {repo}: no such directory")
    return ensure_venv(repo, resolve_commit(repo, ref))
