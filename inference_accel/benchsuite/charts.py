"""Charts of a matrix run, drawn from its JSON with matplotlib (never by hand).

Three PNG files, each titled with the machine: fps per configuration grouped
by video (bars: mean over runs, whiskers: min-max), per-stage median time per
configuration (stacked, one panel per video), and the three systems of the
side by side per video. matplotlib (the ``bench`` extra) is imported here
only, with the Agg backend, so nothing else needs it.

>>> from inference_accel.benchsuite.charts import chart_rows
>>> chart_rows({"cells": [{"status": "n/a", "engine": "e", "video": "v"}]})
[]
"""

from __future__ import annotations

from pathlib import Path

from inference_accel import extras
from inference_accel.benchsuite.machine import machine_title

STAGES = ("decode", "preprocess", "inference", "postprocess", "response")
STAGE_COLOURS = ("#9e9e9e", "#4c72b0", "#dd8452", "#55a868", "#c44e52")


def _pyplot():
    matplotlib = extras.require("matplotlib", "bench", "the benchmark charts")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def chart_rows(document: dict) -> list[dict]:
    """The cells that ran (n/a and not-run cells have no figures to draw)."""
    return [r for r in document.get("cells", []) if r.get("status") == "ok"]


def _title(document: dict, what: str) -> str:
    skipped = sum(r.get("status") != "ok" for r in document.get("cells", []))
    note = f"{skipped} n/a or not-run cells left out (their reasons: see the table)" if skipped and "configuration" in what else ""
    return "\n".join(filter(None, (what, note, machine_title(document["machine"]))))


def fps_chart(document: dict, path: Path) -> Path | None:
    """Grouped bars: x = configuration (engine, flags), one bar per video; None when no cell ran."""
    rows = chart_rows(document)
    if not rows:
        return None
    plt = _pyplot()
    configs = list(dict.fromkeys((r["engine"], r["short"]) for r in rows))
    videos = list(dict.fromkeys(r["video"] for r in rows))
    width = 0.8 / len(videos)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(configs) * max(1, len(videos) / 2)), 4.8))
    for v, video in enumerate(videos):
        xs, means, low, high = [], [], [], []
        for c, config in enumerate(configs):
            row = next((r for r in rows if (r["engine"], r["short"]) == config and r["video"] == video), None)
            if row is None:
                continue
            fps = row["fps"]
            xs.append(c + (v - (len(videos) - 1) / 2) * width)
            means.append(fps["mean"])
            low.append(fps["mean"] - fps["min"])
            high.append(fps["max"] - fps["mean"])
        ax.bar(xs, means, width, yerr=[low, high], capsize=2, label=video)
    engines = {e for e, _ in configs}
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels([s if len(engines) == 1 else f"{e}\n{s}" for e, s in configs], rotation=30, ha="right")
    ax.set_xlabel("configuration (preproc/postproc: F fast, R reference; g CUDA graphs 0/1; d pipeline depth)")
    ax.set_ylabel("end-to-end throughput (frames/s)")
    ax.set_title(_title(document, "fps per configuration (mean of runs, whiskers min-max)"), fontsize=10)
    ax.legend(title="video")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stages_chart(document: dict, path: Path) -> Path | None:
    """Stacked per-stage medians (ms) per configuration, one panel per video; None when no cell ran."""
    rows = chart_rows(document)
    if not rows:
        return None
    plt = _pyplot()
    videos = list(dict.fromkeys(r["video"] for r in rows))
    fig, axes = plt.subplots(1, len(videos), figsize=(max(6.0, 4.2 * len(videos)), 4.8), squeeze=False)
    for ax, video in zip(axes[0], videos):
        mine = [r for r in rows if r["video"] == video]
        labels = [r["short"] if len({x["engine"] for x in rows}) == 1 else f"{r['engine']}\n{r['short']}" for r in mine]
        bottom = [0.0] * len(mine)
        for stage, colour in zip(STAGES, STAGE_COLOURS):
            values = [r["median_ms"][stage] for r in mine]
            ax.bar(range(len(mine)), values, 0.7, bottom=bottom, label=stage, color=colour)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_xticks(range(len(mine)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{video} ({mine[0]['frame_hw'][1]}x{mine[0]['frame_hw'][0]})", fontsize=9)
        ax.set_xlabel("configuration")
        ax.set_ylabel("median time per frame (ms)")
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(title="stage", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(_title(document, "per-stage median time per configuration (stacked)"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def side_by_side_chart(document: dict, path: Path) -> Path | None:
    """Bars per video: stock inference-models, accelerated, ours; None when the side by side did not run."""
    part = document.get("side_by_side") or {}
    if part.get("status") != "ok":
        return None
    plt = _pyplot()
    systems = ("stock", "accelerated", "ours")
    names = {"stock": "inference-models (stock)", "accelerated": "inference-models (accelerated)", "ours": "our pipeline"}
    rows = part["rows"]
    fig, ax = plt.subplots(figsize=(max(6.0, 2.4 * len(rows)), 4.5))
    width = 0.26
    for k, system in enumerate(systems):
        means = [r["systems"][system]["fps"]["mean"] for r in rows]
        low = [m - r["systems"][system]["fps"]["min"] for m, r in zip(means, rows)]
        high = [r["systems"][system]["fps"]["max"] - m for m, r in zip(means, rows)]
        ax.bar([i + (k - 1) * width for i in range(len(rows))], means, width, yerr=[low, high], capsize=2,
               label=names[system])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["video"] for r in rows])
    ax.set_xlabel("video")
    ax.set_ylabel("throughput (frames/s)")
    ax.set_title(_title(document, "same model and frames: three systems per video"), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_charts(document: dict, out_dir: Path) -> dict[str, Path]:
    """Every chart the document has data for, as ``out_dir/<name>.png``; key -> path."""
    from inference_accel.benchsuite.report import CHARTS

    out_dir.mkdir(parents=True, exist_ok=True)
    makers = {"fps": fps_chart, "stages": stages_chart, "side_by_side": side_by_side_chart}
    written = {}
    for key, maker in makers.items():
        path = maker(document, out_dir / CHARTS[key])
        if path is not None:
            written[key] = path
    return written
