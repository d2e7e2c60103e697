"""Benchmark: preprocessing, reference chain vs the CPU paths (vs Pillow-SIMD; vs Triton on a GPU).

Cases (all stretch): 1080p -> 312x312, 4K (3840x2160) -> 312x312 and
432x432, portrait 1080x1920 -> 312x312 (vertical-first on Pillow 13).
Inputs are real photographs from scikit-image resized with OpenCV to the
frame size.

Paths: ``reference`` (the PIL chain), ``cpu`` (Pillow in bands, 2 threads
and 1), ``native`` (the compiled kernel, ``preprocess/native.py``, on the
usable CPUs and on 1 thread, instruction set as ``INFERENCE_ACCEL_PREPROC_ISA``
picks it; ``--isa`` overrides) and, when a Pillow-SIMD install is given
(``--simd-python``, default ``/tmp/venv-simd/bin/python`` if it exists),
**Pillow-SIMD**: the same whole op done the fastest way it allows, in that
interpreter as a subprocess (one thread: its resize is single-threaded):
``Image.frombuffer`` over the BGR bytes (no swap copy), ``resize(BILINEAR)``,
then the swap and normalisation through the same 256-entry tables with
``np.take`` into a preallocated float32 (3, H, W) buffer. The subprocess
times each repeat itself and is driven repeat by repeat, interleaved with
the in-process paths. Its bytes are compared with the installed Pillow's
(``simd_bytes_off``: Pillow-SIMD is not exact).

All paths are measured in the same run, interleaved repeat by repeat (so a
burst of load on a shared machine hits all of them), after a warm-up; the
table shows medians and ratios. ``--isa-sweep`` adds the native path on one
thread with each instruction set this CPU runs; ``--fast-only`` times only
the native path and Pillow-SIMD (nothing in between to evict the frame from
the caches). Every native and CPU result is checked bit-identical to the
reference before timing (``exact``).

Note: the reference chain runs torch ops, after which torch's OpenMP worker
spins on a core for a while (OpenMP's default wait policy). Interleaved with
the reference, the CPU path's second thread competes with that spinning
worker; ``OMP_WAIT_POLICY=PASSIVE`` shows the path without it. Run both. Each path writes into the same preallocated
(1, 3, H, W) float32 buffer; for the reference chain that is
``preprocess_reference`` followed by a copy into the buffer, as
``api.preprocess_into`` does. The CPU result is checked bit-identical to the
reference before timing.

On a machine with CUDA the Triton path is timed too, with CUDA events:
``host`` = numpy frame through the pinned staging buffer, H2D copy and kernel;
``kernel`` = frame already on the device. Without CUDA the script says it
skipped them and why; it never prints GPU numbers it did not measure.

    python development/bench_preprocess.py [--repeats 60] [--json FILE] [--isa auto] [--simd-python PATH]
                                          [--isa-sweep] [--fast-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import PIL
import skimage.data
import torch
from PIL import Image

from inference_accel.preprocess import native
from inference_accel.preprocess.cpu import THREADS, normalization_lut, preprocess_cpu
from inference_accel.preprocess.geometry import plan_geometry
from inference_accel.preprocess.pillow_resize import vertical_first
from inference_accel.preprocess.reference import preprocess_reference

CASES = [
    ("1080p -> 312", (1080, 1920), (312, 312), "astronaut"),
    ("4K -> 312", (2160, 3840), (312, 312), "coffee"),
    ("4K -> 432", (2160, 3840), (432, 432), "coffee"),
    ("portrait 1080x1920 -> 312", (1920, 1080), (312, 312), "chelsea"),
]


def photograph(name: str, frame_hw: tuple[int, int]) -> np.ndarray:
    rgb = getattr(skimage.data, name)()
    return np.ascontiguousarray(cv2.resize(rgb[:, :, ::-1], (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_CUBIC))


# The Pillow-SIMD side, run in its own interpreter: reads commands on stdin,
# answers one line each. "load FRAME.npy LUT.npy H W" prepares a case; "run"
# times one whole op (ms); "save OUT.npy" writes its resized bytes.
SIMD_SERVER = r"""
import sys, time
import numpy as np
import PIL
from PIL import Image
state = {}
print(PIL.__version__, flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "load":
        frame, lut = np.load(cmd[1]), np.load(cmd[2])
        oh, ow = int(cmd[3]), int(cmd[4])
        state.update(frame=frame, lut=lut, size=(ow, oh), out=np.empty((3, oh, ow), np.float32))
        print("ok", flush=True)
    elif cmd[0] == "run":
        f, lut, out = state["frame"], state["lut"], state["out"]
        start = time.perf_counter()
        img = Image.frombuffer("RGB", (f.shape[1], f.shape[0]), f, "raw", "RGB", 0, 1)
        resized = np.asarray(img.resize(state["size"], Image.BILINEAR))
        for c in range(3):
            np.take(lut[c], resized[:, :, 2 - c], out=out[c])
        print((time.perf_counter() - start) * 1e3, flush=True)
        state["resized"] = resized
    elif cmd[0] == "save":
        np.save(cmd[1], state["resized"])
        print("ok", flush=True)
"""


class PillowSimd:
    """A Pillow-SIMD interpreter driven one repeat at a time (see SIMD_SERVER)."""

    def __init__(self, python: str):
        self.proc = subprocess.Popen([python, "-c", SIMD_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.version = self._ask(None)
        self.tmp = tempfile.mkdtemp(prefix="bench-simd-")

    def _ask(self, line: str | None) -> str:
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("the Pillow-SIMD subprocess exited")
        return answer.strip()

    def load(self, frame: np.ndarray, input_hw) -> None:
        np.save(os.path.join(self.tmp, "frame.npy"), frame)
        np.save(os.path.join(self.tmp, "lut.npy"), normalization_lut(torch.float32))
        self._ask(f"load {self.tmp}/frame.npy {self.tmp}/lut.npy {input_hw[0]} {input_hw[1]}")

    def run(self) -> float:
        return float(self._ask("run"))

    def resized(self) -> np.ndarray:
        self._ask(f"save {self.tmp}/resized.npy")
        return np.load(os.path.join(self.tmp, "resized.npy"))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)


def time_cpu_paths(
    frame: np.ndarray,
    input_hw,
    repeats: int,
    isa: str | None,
    simd: PillowSimd | None,
    isa_sweep: bool = False,
    fast_only: bool = False,
) -> dict:
    out = torch.empty((1, 3) + tuple(input_hw))
    geometry = plan_geometry(frame.shape[:2], input_hw)
    use_native = native.resolve_isa(isa)[0] is not None

    def reference() -> None:
        x, _ = preprocess_reference(frame, input_hw)
        out[0].copy_(x[0])

    paths = {
        "reference_ms": reference,
        "cpu_ms": lambda: preprocess_cpu(frame, out, 0, geometry),
        "cpu_1thread_ms": lambda: preprocess_cpu(frame, out, 0, geometry, threads=1),
    }
    if fast_only:  # native and Pillow-SIMD alone: nothing else in between to evict caches or wake threads
        paths = {}
    if use_native:
        paths["native_ms"] = lambda: native.preprocess_native(frame, out, 0, geometry, isa=isa)
        paths["native_1thread_ms"] = lambda: native.preprocess_native(frame, out, 0, geometry, threads=1, isa=isa)
        if isa_sweep:
            for name in native.available_isas():
                paths[f"native_1thread_{name}_ms"] = (
                    lambda name=name: native.preprocess_native(frame, out, 0, geometry, threads=1, isa=name)
                )

    expected, _ = preprocess_reference(frame, input_hw)
    exact = {}
    for key in [k for k in paths if k.startswith(("cpu_ms", "native_"))]:
        if key in paths:
            out.fill_(float("nan"))
            paths[key]()
            exact[key[: -len("_ms")] + "_bit_identical"] = bool(torch.equal(out[0], expected[0]))
    if simd is not None:
        simd.load(frame, input_hw)
        paths["pillow_simd_ms"] = simd.run
    for _ in range(3):
        for run in paths.values():
            run()
    times: dict[str, list[float]] = {key: [] for key in paths}
    for _ in range(repeats):
        for key, run in paths.items():
            if key == "pillow_simd_ms":
                times[key].append(run())  # timed inside the subprocess
                continue
            start = time.perf_counter()
            run()
            times[key].append((time.perf_counter() - start) * 1e3)
    result: dict = {key: statistics.median(values) for key, values in times.items()}
    if not fast_only:
        result["speedup"] = result["reference_ms"] / result["cpu_ms"]
    result.update(exact)
    if use_native:
        result["native_isa"] = native.resolve_isa(isa)[0]
        if not fast_only:
            result["native_speedup"] = result["reference_ms"] / result["native_ms"]
    if simd is not None:
        ours = np.asarray(Image.fromarray(frame).resize((input_hw[1], input_hw[0]), Image.BILINEAR))
        result["simd_bytes_off"] = float((simd.resized() != ours).mean())
        if use_native:
            result["native_vs_simd_1thread"] = result["pillow_simd_ms"] / result["native_1thread_ms"]
            result["native_vs_simd"] = result["pillow_simd_ms"] / result["native_ms"]
    return result


def time_triton(frame: np.ndarray, input_hw, repeats: int) -> dict:
    from inference_accel.preprocess.triton_launch import TritonPreprocessor

    device = torch.device("cuda")
    pre = TritonPreprocessor()
    out = torch.empty((1, 3) + tuple(input_hw), device=device)
    geometry = plan_geometry(frame.shape[:2], input_hw)
    on_device = torch.from_numpy(frame).to(device)
    expected, _ = preprocess_reference(frame, input_hw)
    pre(frame, out, 0, geometry)
    torch.cuda.synchronize()
    exact = bool(torch.equal(out[0].cpu(), expected[0]))
    results = {}
    for label, source in (("triton_host_ms", frame), ("triton_kernel_ms", on_device)):
        for _ in range(5):
            pre(source, out, 0, geometry)
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            pre(source, out, 0, geometry)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        results[label] = statistics.median(times)
    results["triton_bit_identical"] = exact
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="timed repeats per path and case")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--isa", choices=native.ISA_CHOICES, help="native instruction set (default: INFERENCE_ACCEL_PREPROC_ISA)")
    parser.add_argument("--fast-only", action="store_true",
                        help="time only the native path and Pillow-SIMD (no reference or Pillow-band runs in between)")
    parser.add_argument("--isa-sweep", action="store_true",
                        help="also time the native path on 1 thread with every instruction set this CPU runs")
    default_simd = "/tmp/venv-simd/bin/python"
    parser.add_argument("--simd-python", default=default_simd if os.path.exists(default_simd) else None,
                        help=f"python of a Pillow-SIMD install (default {default_simd} if it exists; 'none' skips)")
    args = parser.parse_args(argv)
    simd = None
    if args.simd_python and args.simd_python != "none":
        simd = PillowSimd(args.simd_python)

    cuda = torch.cuda.is_available()
    gpu_note = (
        f"Triton timed on {torch.cuda.get_device_name(0)}"
        if cuda
        else f"Triton path skipped: torch.cuda is not available (torch {torch.__version__}, no GPU/driver visible)"
    )
    meta = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_threads_used": THREADS,
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "repeats": args.repeats,
        "fast_only": args.fast_only,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "gpu": gpu_note,
        "native": native.isa_line(),
        "pillow_simd": f"Pillow-SIMD {simd.version} ({args.simd_python})" if simd else "not measured (no --simd-python)",
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    rows = []
    for name, frame_hw, input_hw, photo in CASES:
        frame = photograph(photo, frame_hw)
        row = {
            "case": name,
            "frame_hw": list(frame_hw),
            "input_hw": list(input_hw),
            "pass_order": "vertical first" if vertical_first(frame_hw, input_hw) else "horizontal first",
            **time_cpu_paths(frame, input_hw, args.repeats, args.isa, simd, args.isa_sweep, args.fast_only),
        }
        if cuda:
            row.update(time_triton(frame, input_hw, args.repeats))
        rows.append(row)

    print(f"Pillow {PIL.__version__}, torch {torch.__version__}, {os.cpu_count()} CPU cores, "
          f"CPU path threads {THREADS}, median of {args.repeats} repeats, "
          f"OMP_WAIT_POLICY={meta['OMP_WAIT_POLICY']}, load average {meta['load_average'][0]:.2f}")
    print(f"native: {meta['native']}; {meta['pillow_simd']}")
    header = (f"{'case':<26} {'order':<17} {'reference':>9} {'cpu':>7} {'cpu 1t':>7} {'native':>7} {'native 1t':>9} "
              f"{'simd 1t':>8} {'ref/nat':>7} {'simd/nat1t':>10} {'simd/nat':>8} {'exact':>5} {'simd off':>8}")
    if cuda:
        header += f" {'triton host ms':>14} {'triton kernel ms':>16}"
    print(header + "   (ms; ratios are x)")

    def cell(r: dict, key: str, width: int, fmt: str = ".2f") -> str:
        return f"{r[key]:>{width}{fmt}}" if key in r else f"{'-':>{width}}"

    for r in rows:
        exact = all(v for k, v in r.items() if k.endswith("_bit_identical"))
        line = (f"{r['case']:<26} {r['pass_order']:<17} {cell(r, 'reference_ms', 9)} {cell(r, 'cpu_ms', 7)} "
                f"{cell(r, 'cpu_1thread_ms', 7)} {cell(r, 'native_ms', 7)} {cell(r, 'native_1thread_ms', 9)} "
                f"{cell(r, 'pillow_simd_ms', 8)} {cell(r, 'native_speedup', 7)} {cell(r, 'native_vs_simd_1thread', 10)} "
                f"{cell(r, 'native_vs_simd', 8)} {str(exact):>5} {cell(r, 'simd_bytes_off', 8, '.2%')}")
        if cuda:
            line += f" {r['triton_host_ms']:>14.3f} {r['triton_kernel_ms']:>16.3f}"
        print(line)
    if args.isa_sweep:
        names = native.available_isas()
        print("native on 1 thread by instruction set (ms):")
        print(f"{'case':<26} " + " ".join(f"{n:>9}" for n in names) + f" {'exact':>6}")
        for r in rows:
            exact = all(r.get(f"native_1thread_{n}_bit_identical", False) for n in names)
            print(f"{r['case']:<26} " + " ".join(cell(r, f"native_1thread_{n}_ms", 9) for n in names) + f" {str(exact):>6}")
    print(gpu_note)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"meta": meta, "rows": rows}, handle, indent=2)
    if simd is not None:
        simd.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
