"""Reports: a JSON with a stable schema, a Markdown table, PNG plots, and report comparison."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from cyclegan_edge import __version__

SCHEMA = "cyclegan-edge/bench"
SCHEMA_VERSION = 1
ROW_KEYS = ("variant", "precision", "backend", "height", "width", "batch", "iterations", "warmup", "latency_ms",
            "host_pre_ms", "host_post_ms", "gpu_ms", "peak_rss_mb", "peak_gpu_mb", "ratio_to_baseline")  # fmt: skip
OPTIONAL_ROW_KEYS = ("max_abs_vs_reference",)  # added after schema v1 shipped: older reports lack it
STAT_KEYS = ("min", "mean", "p50", "p90", "p99", "max", "fps")


def make_report(command: str, machine: dict[str, Any], model: dict[str, Any], baseline: str, rows: list[dict[str, Any]],
                notes: list[str], power: dict[str, Any] | None = None, pipeline: dict[str, Any] | None = None,
                parity_reference: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "toolkit_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command, "machine": machine, "model": model, "baseline": baseline,
        "parity_reference": parity_reference or baseline,
        "results": [{k: r.get(k) for k in ROW_KEYS + OPTIONAL_ROW_KEYS} for r in rows],
        "notes": notes, "power": power, "pipeline": pipeline,
    }  # fmt: skip


def validate(report: dict[str, Any]) -> None:
    if report.get("schema") != SCHEMA or report.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"not a {SCHEMA} v{SCHEMA_VERSION} report")
    for r in report["results"]:
        missing = [k for k in ROW_KEYS if k not in r]
        if missing or any(k not in r["latency_ms"] for k in STAT_KEYS):
            raise ValueError(f"result row missing {missing or 'latency statistics'}")


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    report = json.loads(Path(path).read_text())
    validate(report)
    return report


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    gpu = m["gpu"]["name"] if m.get("gpu") else "no GPU"
    lines = [
        f"# Benchmark: {report['model'].get('name', '')}",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores, {gpu}; {report['created']}",
        f"- model: {report['model'].get('summary', '')}",
        f"- command: `{report['command']}`",
        "",
        f"| variant | backend | size | batch | p50 ms | p90 ms | p99 ms | mean ms | FPS | pre ms | post ms | "
        f"vs {report['baseline']} | max abs diff vs {report.get('parity_reference', report['baseline'])} |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lat = r["latency_ms"]
        ratio = f"{r['ratio_to_baseline']:.2f}x" if r.get("ratio_to_baseline") else "-"
        diff = f"{r['max_abs_vs_reference']:.1e}" if r.get("max_abs_vs_reference") is not None else "-"
        lines.append(
            f"| {r['variant']} | {r['backend']} | {r['height']}x{r['width']} | {r['batch']} | {lat['p50']:.1f} | "
            f"{lat['p90']:.1f} | {lat['p99']:.1f} | {lat['mean']:.1f} | {lat['fps']:.1f} | "
            f"{r['host_pre_ms']['p50']:.1f} | {r['host_post_ms']['p50']:.1f} | {ratio} | {diff} |"
        )
    for n in report.get("notes", []):
        lines.append(f"\n_{n}_")
    if report.get("pipeline"):
        p = report["pipeline"]
        lines.append(f"\nPipeline: {p['pipeline_fps']:.2f} FPS end to end vs {p['inference_fps']:.2f} FPS pure inference "
                     f"({100 * p['ratio']:.0f}%) at {p['inference_size']}")  # fmt: skip
    return "\n".join(lines) + "\n"


def plots(report: dict[str, Any], rows_raw: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """latency.png (distribution per variant at each size) and fps_vs_size.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = [f"{r['variant']}\n{r['height']}x{r['width']} b{r['batch']}" for r in rows_raw]
    ax.boxplot([r["samples_ms"] for r in rows_raw], showfliers=True)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
    ax.set_ylabel("latency per call (ms)")
    ax.set_title("Inference latency distribution")
    fig.tight_layout()
    paths.append(out_dir / "latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for variant in dict.fromkeys(r["variant"] for r in report["results"]):
        pts = sorted((r["height"] * r["width"], r["latency_ms"]["fps"]) for r in report["results"]
                     if r["variant"] == variant and r["batch"] == 1)  # fmt: skip
        if pts:
            ax.plot([p[0] / 1e3 for p in pts], [p[1] for p in pts], marker="o", label=variant)
    ax.set_xlabel("input size (kilopixels)")
    ax.set_ylabel("FPS (batch 1)")
    ax.set_title("Throughput vs input size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "fps_vs_size.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def compare(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Rows present in both reports, with B's p50 latency and FPS relative to A's."""
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["variant"], r["height"], r["width"], r["batch"])

    rows_a = {key(r): r for r in a["results"]}
    lines = [f"A: {a['machine']['cpu']} ({a['created']})", f"B: {b['machine']['cpu']} ({b['created']})", "",
             "| variant | size | batch | A p50 ms | B p50 ms | B/A latency | B/A FPS |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    matched = 0
    for r in b["results"]:
        ra = rows_a.get(key(r))
        if ra is None:
            continue
        matched += 1
        la, lb = ra["latency_ms"], r["latency_ms"]
        lines.append(f"| {r['variant']} | {r['height']}x{r['width']} | {r['batch']} | {la['p50']:.2f} | {lb['p50']:.2f} | "
                     f"{lb['p50'] / la['p50']:.3f} | {lb['fps'] / la['fps']:.3f} |")  # fmt: skip
    if not matched:
        lines.append("| (no rows in common) | | | | | | |")
    return "\n".join(lines)
