"""Thread pools sized from the CPUs this process may use (affinity, cgroup quota), and their overrides."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from inference_accel import workers
from inference_accel.errors import FlagValueError
from inference_accel.flags import POSTPROC_THREADS_FLAG, Flags, read_postproc_threads
from inference_accel.postprocess import sparse_cpu
from inference_accel.preprocess import cpu as preprocess_cpu_module
from inference_accel.workers import cgroup_cpu_quota, cpu_budget


def fake_machine(monkeypatch, cpus: int, affinity: int | None):
    """``os.cpu_count()`` = cpus; affinity of ``affinity`` CPUs (None: no affinity call)."""
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    if affinity is None:
        monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    else:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def budget(root, proc_cgroup=None):
    return cpu_budget(cgroup_root=root, proc_cgroup=proc_cgroup or (root / "no-proc-cgroup"))


# -- cgroup v2 ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "cpu_max,quota,usable",
    [("200000 100000", 2.0, 2), ("150000 100000", 1.5, 2), ("50000 100000", 0.5, 1), ("max 100000", None, 16)],
)
def test_cgroup_v2_quota(tmp_path, monkeypatch, cpu_max, quota, usable):
    fake_machine(monkeypatch, cpus=16, affinity=16)
    write(tmp_path / "cpu.max", cpu_max + "\n")
    got = budget(tmp_path)
    assert got.quota == quota and got.usable == usable and got.affinity == 16
    assert ("cgroup quota" in got.describe()) is (quota is not None)


def test_cgroup_v2_quota_on_the_process_own_cgroup(tmp_path, monkeypatch):
    """On a host the quota sits on the process's cgroup (e.g. systemd-run -p CPUQuota=300%), not the root."""
    fake_machine(monkeypatch, cpus=16, affinity=16)
    write(tmp_path / "system.slice" / "cpu.max", "800000 100000")
    write(tmp_path / "system.slice" / "job.service" / "cpu.max", "300000 100000")
    write(tmp_path / "proc-cgroup", "0::/system.slice/job.service\n")
    got = budget(tmp_path, tmp_path / "proc-cgroup")
    assert got.usable == 3 and got.quota_file.endswith("job.service/cpu.max")


# -- cgroup v1 ---------------------------------------------------------------------
@pytest.mark.parametrize("controller_dir", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota(tmp_path, monkeypatch, controller_dir):
    fake_machine(monkeypatch, cpus=32, affinity=32)
    write(tmp_path / controller_dir / "cpu.cfs_quota_us", "300000\n")
    write(tmp_path / controller_dir / "cpu.cfs_period_us", "100000\n")
    got = budget(tmp_path)
    assert got.usable == 3 and got.quota == 3.0 and got.quota_file.endswith("cpu.cfs_quota_us")


def test_cgroup_v1_no_quota(tmp_path, monkeypatch):
    fake_machine(monkeypatch, cpus=8, affinity=8)
    write(tmp_path / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    got = budget(tmp_path)
    assert got.usable == 8 and got.quota is None and "no cgroup CPU quota" in got.describe()


# -- garbage never crashes and counts as no quota --------------------------------------
@pytest.mark.parametrize(
    "files",
    [
        {"cpu.max": ""},
        {"cpu.max": "lots\n"},
        {"cpu.max": "100000"},
        {"cpu.max": "0 100000"},
        {"cpu.max": "200000 0"},
        {"cpu.max": "-5 100000"},
        {"cpu.max": "2.5e5 100000"},
        {"cpu.max": "200000 100000 7"},
        {"cpu/cpu.cfs_quota_us": "200000"},  # period missing
        {"cpu/cpu.cfs_quota_us": "x", "cpu/cpu.cfs_period_us": "100000"},
        {"cpu/cpu.cfs_quota_us": "200000", "cpu/cpu.cfs_period_us": "-1"},
    ],
)
def test_garbage_cgroup_files_are_ignored(tmp_path, monkeypatch, files):
    fake_machine(monkeypatch, cpus=4, affinity=4)
    for name, text in files.items():
        write(tmp_path / name, text)
    assert budget(tmp_path).usable == 4 and budget(tmp_path).quota is None


def test_unreadable_cgroup_files_are_ignored(tmp_path, monkeypatch):
    fake_machine(monkeypatch, cpus=4, affinity=4)
    (tmp_path / "cpu.max").mkdir()  # a directory where a file should be
    (tmp_path / "cpu.max" / "x").write_text("1")
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    write(tmp_path / "proc-cgroup", "not a cgroup line\n::\n0::/../../etc\n")
    assert budget(tmp_path, tmp_path / "proc-cgroup").usable == 4
    assert cgroup_cpu_quota(tmp_path / "missing", tmp_path / "missing") is None


# -- affinity ------------------------------------------------------------------------
def test_affinity_smaller_than_cpu_count(tmp_path, monkeypatch):
    fake_machine(monkeypatch, cpus=64, affinity=3)  # taskset -c 0-2 / a cpuset
    got = budget(tmp_path)
    assert (got.usable, got.affinity, got.cpu_count) == (3, 3, 64)
    assert got.describe().startswith("3 (affinity 3 of 64 CPUs")


def test_affinity_and_quota_take_the_smaller(tmp_path, monkeypatch):
    fake_machine(monkeypatch, cpus=64, affinity=6)
    write(tmp_path / "cpu.max", "1000000 100000")  # 10 CPUs of quota, 6 allowed by affinity
    assert budget(tmp_path).usable == 6
    write(tmp_path / "cpu.max", "400000 100000")
    assert budget(tmp_path).usable == 4


def test_without_an_affinity_call_cpu_count_counts(tmp_path, monkeypatch):
    fake_machine(monkeypatch, cpus=12, affinity=None)
    got = budget(tmp_path)
    assert got.usable == 12 and got.affinity is None and "os.cpu_count() 12" in got.describe()


# -- the pools' rules ----------------------------------------------------------------
def test_two_cpus_give_the_measured_two(tmp_path, monkeypatch):
    """The rules reproduce what was measured on the 2-core machine: 2 threads where 2 paid, else 1."""
    fake_machine(monkeypatch, cpus=2, affinity=2)
    assert budget(tmp_path).usable == 2
    monkeypatch.setattr(sparse_cpu, "CPU_THREADS", 2)
    monkeypatch.delenv(POSTPROC_THREADS_FLAG, raising=False)
    hd, uhd = 1080 * 1920, 2160 * 3840
    native = [sparse_cpu._threads(n, hd, True) for n in (1, 7, 8, 9, 16, 64, 300)]
    assert native == [1, 1, 2, 2, 2, 2, 2]
    numpy = [sparse_cpu._threads(n, area, False) for n, area in ((15, uhd), (16, uhd), (300, uhd), (300, hd))]
    assert numpy == [1, 2, 2, 1]
    parts = preprocess_cpu_module._parts
    limit = preprocess_cpu_module.PARALLEL_MIN_PIXELS
    assert [parts(2, px, limit) for px in (limit - 1, limit, 2 * limit, hd, uhd)] == [1, 2, 2, 2, 2]
    assert [parts(1, px, limit) for px in (limit, uhd)] == [1, 1]


def test_more_cpus_scale_the_rules(monkeypatch):
    monkeypatch.setattr(sparse_cpu, "CPU_THREADS", 16)
    monkeypatch.delenv(POSTPROC_THREADS_FLAG, raising=False)
    hd, uhd = 1080 * 1920, 2160 * 3840
    assert [sparse_cpu._threads(n, hd, True) for n in (7, 8, 20, 64, 300)] == [1, 2, 5, 16, 16]
    assert sparse_cpu._threads(300, uhd, False) == 2  # numpy holds the GIL: stays at 2
    parts = preprocess_cpu_module._parts
    limit = preprocess_cpu_module.PARALLEL_MIN_PIXELS
    assert [parts(16, px, limit) for px in (limit - 1, limit, 3 * limit, hd)] == [1, 2, 3, 16]


def test_many_threads_give_the_same_bytes():
    """The band split at more than 2 threads stays exact (what a bigger machine runs)."""
    from inference_accel.postprocess.mask_geometry import mask_placement
    from inference_accel.preprocess.cpu import preprocess_cpu
    from inference_accel.preprocess.geometry import plan_geometry

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    g = plan_geometry(frame.shape[:2], (312, 312))
    one, many = torch.empty(1, 3, 312, 312), torch.empty(1, 3, 312, 312)
    preprocess_cpu(frame, one, 0, g, threads=1)
    preprocess_cpu(frame, many, 0, g, threads=7)
    assert torch.equal(one, many)

    windows = rng.normal(-1.0, 2.0, (24, 40, 40)).astype(np.float32)
    placement = mask_placement(None, (40, 40), (300, 500))
    arith = sparse_cpu.torch_cpu_arith()
    a = sparse_cpu.sparse_masks(windows, placement, (300, 500), arith, threads=1)
    b = sparse_cpu.sparse_masks(windows, placement, (300, 500), arith, threads=5)
    assert len(a._rles) == 24 and all(np.array_equal(x, y) for x, y in zip(a._rles, b._rles))  # noqa: SLF001


# -- overrides are bounded -------------------------------------------------------------
def test_thread_override_is_bounded():
    env = {POSTPROC_THREADS_FLAG: "1000000"}
    with pytest.raises(FlagValueError, match=POSTPROC_THREADS_FLAG) as info:
        read_postproc_threads(env, usable=2)
    assert "1 to 8" in str(info.value)
    assert read_postproc_threads({POSTPROC_THREADS_FLAG: "8"}, usable=2) == 8
    with pytest.raises(FlagValueError, match=POSTPROC_THREADS_FLAG):
        read_postproc_threads({POSTPROC_THREADS_FLAG: "9"}, usable=2)
    assert read_postproc_threads({POSTPROC_THREADS_FLAG: "256"}, usable=100) == 256
    with pytest.raises(FlagValueError, match=POSTPROC_THREADS_FLAG):
        read_postproc_threads({POSTPROC_THREADS_FLAG: "257"}, usable=100)


def test_bad_override_fails_the_postprocessing_with_the_flag_name(monkeypatch):
    monkeypatch.setenv(POSTPROC_THREADS_FLAG, "1000000")
    with pytest.raises(FlagValueError, match=POSTPROC_THREADS_FLAG):
        sparse_cpu._threads(64, 1080 * 1920, True)


# -- doctor ------------------------------------------------------------------------------
def test_doctor_shows_cpus_and_pool_sizes(monkeypatch):
    from inference_accel.doctor import doctor_report

    monkeypatch.delenv(POSTPROC_THREADS_FLAG, raising=False)
    report = doctor_report(Flags())
    assert f"CPUs usable: {workers.CPU_THREADS} (" in report
    assert "affinity" in report or "os.cpu_count()" in report
    for name in ("preprocess-cpu", "postprocess-cpu", "polygons"):
        assert name in report
    assert f"up to {workers.CPU_THREADS} thread(s)" in report

    monkeypatch.setenv(POSTPROC_THREADS_FLAG, "3")
    assert f"3 thread(s) ({POSTPROC_THREADS_FLAG}=3)" in doctor_report(Flags())
    monkeypatch.setenv(POSTPROC_THREADS_FLAG, "1000000")
    assert "error:" in doctor_report(Flags()) and POSTPROC_THREADS_FLAG in doctor_report(Flags())
