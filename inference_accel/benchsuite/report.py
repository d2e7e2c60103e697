"""The benchmark page: the matrix JSON -> the generated section of ``docs/BENCHMARKS.md``.

:func:`render_section` turns one run's JSON (see :mod:`.matrix`) into
Markdown: the machine and the command, one table per engine and video
(n/a cells with their reason), the synthetic-output scenario, the side by
side with inference-models, the charts, and the other benchmark scripts'
JSON files with their commands. :func:`replace_section` puts it between
:data:`BEGIN` and :data:`END` and leaves the hand-written rest of the page
alone; running it twice gives the same page.

>>> page = "intro\\n" + BEGIN + "\\nold\\n" + END + "\\noutro\\n"
>>> replace_section(page, "new")
'intro\\n<!-- bench-matrix:begin -->\\nnew\\n<!-- bench-matrix:end -->\\noutro\\n'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from inference_accel.benchsuite.machine import machine_title

BEGIN = "<!-- bench-matrix:begin -->"
END = "<!-- bench-matrix:end -->"
STAGES = ("decode", "preprocess", "inference", "postprocess", "response")
CHARTS = {"fps": "matrix_fps.png", "stages": "matrix_stages.png", "side_by_side": "side_by_side.png"}


class ReportError(ValueError):
    """The page's markers are broken (one without the other, or out of order)."""


def replace_section(page: str, section: str) -> str:
    """``page`` with the text between the markers replaced by ``section``; markers appended when absent."""
    begin, end = page.find(BEGIN), page.find(END)
    if begin < 0 and end < 0:
        return page.rstrip("\n") + f"\n\n{BEGIN}\n{section.strip()}\n{END}\n"
    if begin < 0 or end < 0 or end < begin or page.count(BEGIN) > 1 or page.count(END) > 1:
        raise ReportError(f"the page needs exactly one {BEGIN} followed by one {END}")
    return page[: begin + len(BEGIN)] + "\n" + section.strip() + "\n" + page[end:]


# -- the other scripts' JSON files --------------------------------------------------------------
@dataclass(frozen=True)
class OtherBenchmark:
    title: str
    file: str
    command: str
    summary: Callable[[object], str]


def _postprocess(data) -> str:
    medians = {(r["case"], r["impl"]): r["median_s"] for r in data}
    cases = sorted({case for case, _ in medians})
    parts = [f"{case} {medians[(case, 'reference')] / medians[(case, 'native-2t')]:.1f}x" for case in cases
             if (case, "reference") in medians and (case, "native-2t") in medians]
    return "sparse (compiled, 2 threads) vs dense reference: " + ", ".join(parts)


def _masks(data) -> str:
    rows = data["results"]
    return "; ".join(f"{r['case']}: {r['speedup']:.0f}x" for r in rows[:5])


def _preprocess(data) -> str:
    return "; ".join(f"{r['case']}: reference {r['reference_ms']:.1f} ms, native {r['native_ms']:.1f} ms "
                     f"({r['native_speedup']:.1f}x)" for r in data["rows"])


def _end_to_end(data) -> str:
    return "; ".join(f"{r['video']}: fast {r['paths']['fast']['fps']:.2f} fps vs reference "
                     f"{r['paths']['reference']['fps']:.2f} fps" for r in data)


def _inference_models(data) -> str:
    return "; ".join(f"{c['size']} {c['mask_format']}: total {c['stages']['total']['ratio']:.2f}x" for c in data["cases"])


def _batch(data) -> str:
    runs = data if isinstance(data, list) else [data]
    return "; ".join(
        f"{run['model']} {run['video']}: " + ", ".join(
            f"batch {r['batch_size']} {r['median_fps']:.2f} fps ({r['ratio_vs_first']:.2f}x)" for r in run["rows"]
        ) for run in runs
    )


def _response(data) -> str:
    parts = []
    for result in data["results"]:
        rows = result["rows"]
        if "mean_ratio_vs_before" not in rows.get("after (json bytes)", {}):
            return "older JSON format: rerun the command"
        parts.append(f"{result['sample']}: json bytes {rows['after (json bytes)']['mean_ratio_vs_before']:.2f}x, "
                     f"dicts {rows['after']['mean_ratio_vs_before']:.2f}x (default GC, mean)")
    return "; ".join(parts)


def _concurrency(data) -> str:
    return f"{data.get('model', '?')}, {data.get('engine', '?')}, frame {data.get('frame_hw', '?')}"


OTHER_BENCHMARKS = (
    OtherBenchmark("preprocessing", "preprocess_native.json",
                   "OMP_WAIT_POLICY=PASSIVE python development/bench_preprocess.py --repeats 100 --isa-sweep "
                   "--json docs/bench/preprocess_native.json", _preprocess),
    OtherBenchmark("postprocessing", "postprocess.json",
                   "python development/bench_postprocess.py --json docs/bench/postprocess.json", _postprocess),
    OtherBenchmark("mask toolkit", "masks.json",
                   "python development/bench_masks.py --repeats 5 --json docs/bench/masks.json", _masks),
    OtherBenchmark("end to end, fast vs reference", "end_to_end.json",
                   "python development/bench_end_to_end.py --videos 312p,1080p --frames 20 "
                   "--json docs/bench/end_to_end.json", _end_to_end),
    OtherBenchmark("concurrency", "concurrency.json",
                   "python development/bench_concurrency.py --frames 24 --repeats 5 --json docs/bench/concurrency.json",
                   _concurrency),
    OtherBenchmark("response stage, before vs after", "response.json",
                   "python development/bench_response.py --frames 4 --repeats 3 --json docs/bench/response.json",
                   _response),
    OtherBenchmark("batches (CPU engine)", "batch.json",
                   "python development/bench_batch.py --model seg-nano --frames 8 --repeats 3 --json docs/bench/batch.json",
                   _batch),
    OtherBenchmark("inference-models, stock vs accelerated", "inference_models.json",
                   ".venv-integration/bin/python development/bench_inference_models.py --frames 7 "
                   "--json docs/bench/inference_models.json", _inference_models),
)


def other_benchmarks_table(bench_dir: Path) -> list[str]:
    """One row per other script: its JSON (read if present), its command, a short summary."""
    lines = ["| benchmark | JSON | command | figures |", "|---|---|---|---|"]
    for other in OTHER_BENCHMARKS:
        path = bench_dir / other.file
        if not path.is_file():
            summary = "not present: run the command"
        else:
            try:
                summary = other.summary(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
                summary = f"present; not summarised ({type(exc).__name__}: {exc})"
        lines.append(f"| {other.title} | `bench/{other.file}` | `{other.command}` | {summary} |")
    return lines


# -- the section ------------------------------------------------------------------------------
def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _cell_text(text) -> str:
    r"""``text`` safe inside a Markdown table cell (no pipe, no line break).

    >>> print(_cell_text("a | b\nc"))
    a \| b c
    """
    return " ".join(str(text).split()).replace("|", "\\|")


def _hw(row: dict) -> str:
    h, w = row["frame_hw"]
    return f"{w}x{h}"


def matrix_tables(document: dict) -> list[str]:
    """One table per engine and video; n/a rows carry the reason; ratio against the all-reference depth-1 cell."""
    lines: list[str] = []
    cells = document.get("cells", [])
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in cells:
        groups.setdefault((row["engine"], row["video"]), []).append(row)
    for (engine, video), rows in groups.items():
        baseline = next((r for r in rows if r["status"] == "ok" and r["flags"]["preproc"] == "reference"
                         and r["flags"]["postproc"] == "reference" and r["flags"]["depth"] == 1
                         and r["flags"]["cuda_graphs"] == "off"), None)
        base_fps = baseline["fps"]["mean"] if baseline else None
        lines += ["", f"#### {engine}, {video} ({_hw(rows[0])})", "",
                  "| preproc | postproc | CUDA graphs | depth | fps (mean) | fps min-max | vs reference | "
                  + " | ".join(f"{s} ms" for s in STAGES) + " | peak RSS MB | peak device MB | implementations |",
                  "|---|---|---|---|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|---:|---|"]
        for row in rows:
            f = row["flags"]
            head = f"| {f['preproc']} | {f['postproc']} | {f['cuda_graphs']} | {f['depth']} "
            if row["status"] != "ok":
                lines.append(head + "| " + row["status"] + " | | | " + "| " * len(STAGES)
                             + f"| | {row['status']}: {_cell_text(row['reason'])} |")
                continue
            fps = row["fps"]
            ratio = f"{fps['mean'] / base_fps:.2f}x" if base_fps else "n/a"
            impls = ", ".join(f"{k}={'/'.join(v)}" for k, v in row["implementations"].items())
            lines.append(head + f"| {fps['mean']:.2f} | {fps['min']:.2f}-{fps['max']:.2f} | {ratio} | "
                         + " | ".join(_num(row["median_ms"][s]) for s in STAGES)
                         + f" | {row['peak_rss_mb']:.0f} | {_num(row['peak_device_mb'], 0)} | {impls} |")
    return lines


def synthetic_table(part: dict | None) -> list[str]:
    if not part:
        return ["", "Not run in this matrix run."]
    if part.get("status") == "n/a":
        return ["", f"n/a: {part['reason']}"]
    lines = ["", f"**{part['label']}**: seed {part['seed']}, threshold {part['threshold']}, "
             f"{part['engine_output_shape']['queries']} queries, masks {part['engine_output_shape']['mask_hw']}, "
             f"resize mode {part.get('resize_mode', 'stretch')}. "
             f"{part['method']}. These are not the model's figures: the model rows above are the random-weight "
             "model's, and the two are never mixed.", "",
             "| frame | detections/frame | median mask area | masks < 5% of frame | post ms reference -> fast | "
             "response ms reference -> fast | post + response ratio | identical |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in part["rows"]:
        ref, fast = row["paths"]["reference"]["median_ms"], row["paths"]["fast"]["median_ms"]
        d = row["detections_per_frame"]
        lines.append(
            f"| {row['video']} ({row['frame_hw'][1]}x{row['frame_hw'][0]}) | {d['min']}-{d['max']} "
            f"(mean {d['mean']:.1f}) | {row['mask_area_fraction']['median']:.2%} | "
            f"{row['mask_area_fraction']['under_5_percent']:.0%} | {ref['postprocess']:.1f} -> {fast['postprocess']:.1f} | "
            f"{ref['response']:.1f} -> {fast['response']:.1f} | {_num(row['ratio_post_plus_response'])}x | "
            f"{row['identical_frames']}/{row['frames']} |")
    return lines


def side_by_side_table(part: dict | None) -> list[str]:
    if not part:
        return ["", "Not run in this matrix run."]
    if part.get("status") != "ok":
        return ["", f"{part.get('status', 'n/a')}: {part.get('reason')}"]
    lines = ["", f"inference-models {part['inference_models']} (`{part['python']}`), mask format "
             f"`{part['mask_format']}`, threshold {part['threshold']}, {part['runs']} run(s). Arrangement: "
             f"{part['arrangement']}. Timed: {part['timed']}." + (f" Note: {part['note']}." if part.get("note") else ""), "",
             "| video | stock fps | accelerated fps | ours fps | accelerated / stock | ours / stock | "
             "stock vs accelerated: differing frames |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in part["rows"]:
        s = row["systems"]
        r = row["ratios_vs_stock"]
        lines.append(f"| {row['video']} | {s['stock']['fps']['mean']:.2f} | {s['accelerated']['fps']['mean']:.2f} | "
                     f"{s['ours']['fps']['mean']:.2f} | {_num(r['accelerated'])}x | {_num(r['ours'])}x | "
                     f"{row['stock_vs_accelerated_differing_frames']} |")
    return lines


def render_section(document: dict, bench_dir: Path | None = None, charts: dict[str, str] | None = None) -> str:
    """The Markdown of one matrix run (``charts``: chart key -> path relative to the page)."""
    m = document["machine"]
    s = document["settings"]
    gpu = m.get("gpu", "none")
    lines = [
        "## Flag matrix, side by side and synthetic outputs (generated)",
        "",
        "<!-- generated by inference-accel bench --matrix --report: edit outside the bench-matrix markers -->",
        f"**Machine**: {machine_title(m)} (class `{document['machine_class']}`); {m.get('arch')}, "
        f"{m.get('cpu_cores')} cores ({m.get('usable_cpus_from')}).",
        f"torch {m.get('torch')}, Pillow {m.get('pillow')}, onnxruntime {m.get('onnxruntime')}, "
        f"TensorRT: {m.get('tensorrt')}, CUDA: {m.get('cuda')}, inference_accel {m.get('inference_accel')}.",
        f"**Command**: `{document.get('command', 'inference-accel bench --matrix')}` "
        f"({document['created_utc']}, {document['elapsed_s'] / 60:.1f} min).",
        f"**Model**: {s['model']}; videos {', '.join(s['videos'])}; {s['runs']} run(s) per cell of {s['frames']} "
        f"timed frames after {s['warmup']} warm-up frame(s). **Method**: {document['method']}.",
    ]
    if gpu in (None, "none"):
        lines.append("No GPU on this machine: every GPU figure is absent, and the cells that need one say n/a.")
    if document.get("interrupted"):
        lines.append("**This run was interrupted**: cells marked \"not run\" have no figures.")
    if document.get("time_budget_spent"):
        lines.append("**This run's time budget was spent**: cells marked \"not run\" have no figures.")
    lines += ["", "Engines: " + "; ".join(f"{e['name']} ({e['device']}): "
                                          + ("ran" if e["status"] == "ok" else f"n/a: {e['reason']}")
                                          for e in document["engines"]) + ".",
              "", "### Every combination of the four flags",
              "", "Flags: " + ", ".join(f"{k} = `{v}`" for k, v in document["flag_names"].items())
              + ". *vs reference*: fps over the all-reference, depth-1, graphs-off cell of the same engine and video."]
    lines += matrix_tables(document)
    charts = charts or {}
    for key, caption in (("fps", "fps per configuration"), ("stages", "per-stage time per configuration")):
        if key in charts:
            lines += ["", f"![{caption}]({charts[key]})"]
    lines += ["", "### Synthetic engine outputs (not a model): postprocessing and response"]
    lines += synthetic_table(document.get("synthetic"))
    lines += ["", "### Side by side: stock inference-models, accelerated inference-models, our pipeline"]
    lines += side_by_side_table(document.get("side_by_side"))
    if "side_by_side" in charts:
        lines += ["", f"![three systems per video]({charts['side_by_side']})"]
    if bench_dir is not None:
        lines += ["", "### The other benchmark scripts (their JSON in `docs/bench/`, read when this section was made)", ""]
        lines += other_benchmarks_table(bench_dir)
    return "\n".join(lines) + "\n"


def write_report(document: dict, docs_dir: Path, chart_paths: dict[str, Path] | None = None) -> Path:
    """Rewrite the generated section of ``docs_dir/BENCHMARKS.md`` (created when missing); returns the page."""
    page_path = docs_dir / "BENCHMARKS.md"
    page = page_path.read_text() if page_path.is_file() else "# Benchmarks\n"
    relative = {k: str(Path(p).resolve().relative_to(docs_dir.resolve())) for k, p in (chart_paths or {}).items()}
    section = render_section(document, docs_dir / "bench", relative)
    page_path.write_text(replace_section(page, section))
    return page_path
