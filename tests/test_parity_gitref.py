"""``git:REF`` parity sides: this package at a commit, installed into a venv cached per commit.

A module fixture clones this checkout's HEAD into a temporary repository and
commits on top of it (tag ``base``: HEAD as it is):

- ``planted``: the ``ours`` side flips one mask pixel of one detection per frame;
- ``broken``: ``setup.py`` fails, so that commit cannot be installed.

The venvs of ``base`` and ``planted`` are built once for the module (the slow
part: a pip install compiling the C helpers); the runs use the tiny ONNX model of
``tests/helpers_onnx.py`` on two small images.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_accel import cli
from inference_accel.ab import git_side
from inference_accel.ab.sides import SideError, parse_side
from tests.helpers_onnx import write_tiny_seg_model

pytestmark = pytest.mark.usefixtures("restore_output_state")  # the CLI runs configure the package logger

ROOT = Path(__file__).resolve().parents[1]
PLANT_AT = "        yield result.detections\n"  # the last line of _ours in inference_accel/ab/sides.py
PLANTED = """\
        planted = result.detections
        dense = np.array(planted.mask.to_dense() if hasattr(planted.mask, "to_dense") else planted.mask, bool)
        first = next(i for i in range(len(dense)) if dense[i].any())  # the first non-empty mask
        y, x = np.argwhere(dense[first])[0]
        dense[first, y, x] = False  # planted: one pixel off
        planted.mask = dense
        yield planted
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=parity-test", "-c", "user.email=parity@test",
                           "-c", "commit.gpgsign=false", *args], capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The clone with its tags, the tiny model and images, and a cache holding the base and planted venvs."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of this package")
    root = tmp_path_factory.mktemp("gitref")
    repo = root / "repo"
    subprocess.run(["git", "clone", "--quiet", "--local", str(ROOT), str(repo)], check=True, capture_output=True)
    git(repo, "tag", "base")
    sides_py = repo / "inference_accel" / "ab" / "sides.py"
    source = sides_py.read_text()
    assert source.count(PLANT_AT) == 1, "the planting point (the last line of _ours) moved: update PLANT_AT"
    sides_py.write_text(source.replace(PLANT_AT, PLANTED))
    git(repo, "commit", "--quiet", "-am", "planted: one mask pixel off per frame")
    git(repo, "tag", "planted")
    git(repo, "checkout", "--quiet", "base")
    (repo / "setup.py").write_text('raise SystemExit("planted build failure")\n')
    git(repo, "commit", "--quiet", "-am", "broken: setup.py fails")
    git(repo, "tag", "broken")
    git(repo, "checkout", "--quiet", "planted")

    model = write_tiny_seg_model(root / "tiny.onnx", size=32, queries=5, classes=4, seed=3)
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFERENCE_ACCEL_CACHE", str(root / "cache"))
        builds = {tag: git_side.prepare(tag, repo) for tag in ("base", "planted")}
        yield {"repo": repo, "model": model, "images": images, "cache": root / "cache", "builds": builds,
               "commits": {tag: git(repo, "rev-parse", tag) for tag in ("base", "planted", "broken")}}


def run(world, *args):
    return cli.main(["parity", *map(str, [*args, "--repo", world["repo"], "--model", world["model"],
                                          "--input", world["images"], "--threshold", 0.05, "--quiet"])])


def test_planted_commit_differs_by_one_pixel_per_frame_and_is_named(world, tmp_path, monkeypatch, capsys):
    """Run from this checkout's root, whose unplanted inference_accel/ ``python -m`` would import first if the
    side's subprocess ran here (it runs in a neutral folder: ``venv:`` sides alike)."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    code = run(world, "git:base", "git:planted", "--out", out)
    text = capsys.readouterr().out
    assert code == cli.EXIT_DIFFERENT, text
    assert "1 pixel(s) differ" in text and "DIFFERENT" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 2 and summary["differing_pixels"] == 2
    assert summary["matched"] == summary["detections_a"] == summary["detections_b"] > 0
    assert summary["masks_identical"] == summary["masks_compared"] - 2 and summary["class_disagreements"] == 0
    commits = world["commits"]
    assert (summary["side_a_commit"], summary["side_b_commit"]) == (commits["base"], commits["planted"])
    assert summary["side_a"] == f"git:base ({commits['base'][:12]})"
    assert f"git:planted ({commits['planted'][:12]})" in (out / "report.md").read_text()


def test_identical_refs_exit_0_and_reuse_the_cached_venv(world, capsys):
    assert run(world, "git:base", f"git:{world['commits']['base']}") == 0
    assert "IDENTICAL" in capsys.readouterr().out
    again = git_side.prepare("base", world["repo"])
    assert again.build_seconds is None and again.venv == world["builds"]["base"].venv


def test_each_venv_runs_its_own_installed_commit(world):
    for tag, build in world["builds"].items():
        assert build.commit == world["commits"][tag] and build.build_seconds > 0
        assert build.venv.parent == world["cache"] / "git-sides" and build.venv.name.startswith(build.commit)
        installed = git_side.check_imports_own_copy(build.venv)
        assert installed.is_relative_to(build.venv.resolve())
        assert ("planted: one pixel off" in (installed.parent / "ab" / "sides.py").read_text()) == (tag == "planted")
        assert "postprocess._sparse_native" in build.helpers  # the C helpers were compiled there
    assert git_side.compiled_helpers(world["builds"]["base"].venv) == world["builds"]["base"].helpers
    assert git(world["repo"], "status", "--porcelain", "--ignored") == ""  # the work tree was never written


def test_export_writes_exactly_the_commits_tree(world, tmp_path):
    repo = world["repo"]
    git_side._export(repo, world["commits"]["base"], tmp_path / "tree")
    tree = tmp_path / "tree"
    exported = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    assert exported == sorted(git(repo, "ls-tree", "-r", "--name-only", "base").splitlines())
    sides_at_base = git(repo, "show", f"base:{git_side.PARITY_MODULE}") + "\n"
    assert (tree / git_side.PARITY_MODULE).read_text() == sides_at_base
    with pytest.raises(SideError, match=f"git archive {'0' * 12} in .* failed: fatal"):
        git_side._export(repo, "0" * 40, tmp_path / "none")


def test_bad_ref_is_one_clear_line_and_leaves_no_venv(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFERENCE_ACCEL_CACHE", str(tmp_path / "cache"))
    assert run(world, "ours", "git:no-such-ref") == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "git ref 'no-such-ref' names no commit" in err
    first = git(world["repo"], "rev-list", "--max-parents=0", "HEAD").splitlines()[0]
    assert run(world, "ours", f"git:{first}") == cli.EXIT_ERROR
    assert "predates `inference-accel parity`" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "git-sides").exists()


def test_a_commit_that_fails_to_install_is_named_and_cleaned_up(world, tmp_path, monkeypatch):
    monkeypatch.setenv("INFERENCE_ACCEL_CACHE", str(tmp_path / "cache"))
    broken = world["commits"]["broken"][:12]
    with pytest.raises(SideError, match=f"pip could not install commit {broken}.*planted build failure"):
        git_side.prepare("broken", world["repo"])
    assert [p.suffix for p in (tmp_path / "cache" / "git-sides").iterdir()] == [".lock"]


def test_repository_lookup(world, tmp_path):
    repo = world["repo"]
    assert git_side.checkout_of(repo / "inference_accel") == repo.resolve()
    for not_a_checkout in (tmp_path / "inference_accel", repo / "inference_accel" / "ab"):
        not_a_checkout.mkdir(exist_ok=True)
        with pytest.raises(SideError, match="no git checkout is known.*--repo PATH.*venv:PATH"):
            git_side.checkout_of(not_a_checkout)
    with pytest.raises(SideError, match="not a git repository"):
        git_side.prepare("HEAD", tmp_path)
    with pytest.raises(SideError, match="cannot start with '-'"):
        git_side.resolve_commit(repo, "--all")


def test_git_side_specs(capsys):
    side = parse_side("git:HEAD~1@ours:postproc=reference", repo="/some/repo")
    assert (side.kind, side.ref, side.inner) == ("git", "HEAD~1", "ours:postproc=reference")
    assert side.repo == Path("/some/repo") and side.commit is None and side.path is None
    assert (parse_side("git:v1@stock-im").ref, parse_side("git:v1@stock-im").inner) == ("v1", "stock-im")
    assert parse_side("git:HEAD@{2}").ref == "HEAD@{2}" and parse_side("git:HEAD@{2}").inner == "ours"
    assert parse_side("git:main").label == "git:main"  # no commit until prepared
    for bad, why in (("git:", "no ref"), ("git:@ours", "no ref"), ("git:HEAD@venv:/x", "not venv"),
                     ("git:HEAD@ours:preproc=slow", "preproc")):
        with pytest.raises(SideError, match=why):
            parse_side(bad)
    assert cli.main(["parity", "ours", "ours", "--repo", "/tmp"]) == cli.EXIT_ERROR
    assert "--repo /tmp: only git:REF sides use it" in capsys.readouterr().err
