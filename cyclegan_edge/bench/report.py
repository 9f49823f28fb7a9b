"""Reports: a JSON with a stable schema, a Markdown table, PNG plots, and report comparison."""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cyclegan_edge import __version__
from cyclegan_edge.atomic import atomic_path
from cyclegan_edge.bench.load import OTHERS_BUSY_CPUS
from cyclegan_edge.errors import first_line
from cyclegan_edge.imaging.files import OutputError, ReportFolder
from cyclegan_edge.runtime.timing import throughput_fps

SCHEMA = "cyclegan-edge/bench"
SCHEMA_VERSION = 1
ROW_KEYS = ("variant", "precision", "backend", "height", "width", "batch", "iterations", "warmup", "latency_ms",
            "host_pre_ms", "host_post_ms", "gpu_ms", "peak_rss_mb", "peak_gpu_mb", "ratio_to_baseline")  # fmt: skip
# added after schema v1: older reports lack them
OPTIONAL_ROW_KEYS = ("max_abs_vs_reference", "psnr_vs_reference_db", "others_busy_cpus", "round_p50_ms", "power_mw",
                     "energy_mj_per_frame")  # fmt: skip
STAT_KEYS = ("min", "mean", "p50", "p90", "p99", "max", "fps")
FPS_DEFINITION = "FPS = batch x 1000 / p50 ms (frames per second at the median call)"

OUTPUT_FILES = ("report.json", "report.md", "latency.png", "fps_vs_size.png")  # what bench writes (or removes)


OUTPUT = ReportFolder(OUTPUT_FILES, "bench writes report.json, report.md and plots")


def output_error(out: Path, e: OSError) -> OutputError:
    """The one line for an --output that cannot take the report: the same whether a write failed or
    ``check_output`` saw beforehand that it would."""
    return OUTPUT.error(out, e)


def check_output(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse, before any work, an --output the report could not be written to (see ReportFolder.check)."""
    OUTPUT.check(out, inputs)


def make_report(command: str, machine: dict[str, Any], model: dict[str, Any], baseline: str, rows: list[dict[str, Any]],
                notes: list[str], power: dict[str, Any] | None = None, pipeline: dict[str, Any] | None = None,
                parity_reference: str | None = None, threads: int | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "toolkit_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command, "machine": machine, "model": model, "baseline": baseline,
        "parity_reference": parity_reference or baseline,
        "results": [{**{k: r.get(k) for k in ROW_KEYS}, **{k: r[k] for k in OPTIONAL_ROW_KEYS if k in r}}
                    for r in rows],  # fmt: skip
        "notes": notes, "power": power, "pipeline": pipeline, "threads": threads or None,  # None: the library's
    }  # fmt: skip


def validate(report: dict[str, Any]) -> None:
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} report")
    if report.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"a {SCHEMA} v{report.get('schema_version')} report; this cyclegan-edge reads "
                         f"v{SCHEMA_VERSION} (another version of the toolkit wrote it)")  # fmt: skip
    for r in report["results"]:
        missing = [k for k in ROW_KEYS if k not in r]
        if missing or any(k not in r["latency_ms"] for k in STAT_KEYS):
            raise ValueError(f"result row missing {missing or 'latency statistics'}")
        if not all(isinstance(r["latency_ms"][k], (int, float)) and r["latency_ms"][k] > 0 for k in STAT_KEYS):
            raise ValueError(f"result row {case_name(r)}: latencies must be numbers above 0")
    for key in ("machine", "created"):
        if key not in report:
            raise ValueError(f"no {key!r} in it")


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A report.json (or the folder holding one), checked; ValueError naming the file when it is not one."""
    path = Path(path) / "report.json" if Path(path).is_dir() else Path(path)
    try:
        report = json.loads(path.read_text())
        validate(report)
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSON errors are ValueErrors
        raise ValueError(f"{path}: not a readable bench report ({first_line(e)})") from None
    return report


def model_line(model: dict[str, Any]) -> str:
    """The model as report.md shows it: file, what it computes in, size, hash, architecture and complexity
    (whatever the report holds: reports written before these keys existed have fewer)."""
    head = model.get("file") or Path(str(model.get("path", ""))).name or model.get("name", "")
    facts = []
    if model.get("precision"):
        facts.append(f"{str(model['precision']).upper()} ({model['precision_evidence']})"
                     if model.get("precision_evidence") else str(model["precision"]).upper())  # fmt: skip
    if model.get("size_bytes") is not None:
        facts.append(f"{model['size_bytes'] / 2**20:.2f} MiB")
    if model.get("sha256"):
        facts.append(f"sha256 {model['sha256'][:12]}")
    if model.get("int8_target"):
        facts.append(f"INT8 placement for {model['int8_target']} (export --target)")
    for key in ("architecture", "summary"):
        if model.get(key):
            facts.append(str(model[key]))
    return f"{head} ({'; '.join(facts)})" if facts else str(head)


def watts_and_energy(row: dict[str, Any]) -> str:
    """A row's power cells: W and mJ per frame ('-': no tegrastats sample fell in its timed calls)."""
    if row.get("power_mw") is None:
        return " - | - |"
    return f" {row['power_mw'] / 1000:.2f} | {row['energy_mj_per_frame']:.1f} |"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    gpu = m["gpu"]["name"] if m.get("gpu") else "no GPU"
    ref = report.get("parity_reference", report["baseline"])
    power = any("power_mw" in r for r in report["results"])  # --tegrastats
    lines = [
        f"# Benchmark: {report['model'].get('name', '')}",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores, {gpu}; {report['created']}",
        f"- model: {model_line(report['model'])}",
        f"- command: `{report['command']}`",
        f"- latency in ms per call (batch frames); {FPS_DEFINITION}",
        f"- outputs against {ref}'s on the same images: the largest difference in the model's -1..1 range (one grey "
        "level is 7.8e-3), and the PSNR of the worst image (identical: =)",
        "",
        f"| variant | backend | size | batch | min ms | p50 ms | p90 ms | p99 ms | mean ms | FPS | pre ms | post ms | "
        f"speed vs {report['baseline']} (p50) | max abs diff vs {ref} | PSNR dB vs {ref} |" + " W | mJ/frame |" * power,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|---|" * power,
    ]
    if power:
        whole = (report.get("power") or {}).get("total_power_mw_mean")
        lines.insert(-3, "- power (tegrastats): the module's mean over each case's timed calls, and energy per frame "
                     "at the median call" + (f"; the whole run's mean, builds included: {whole / 1000:.1f} W" if whole
                                             else ""))  # fmt: skip
    peaks = [r["peak_rss_mb"] for r in report["results"] if r.get("peak_rss_mb") is not None]
    if peaks:  # the process's (ru_maxrss): no figure per variant
        lines.insert(5, f"- peak memory (RSS) of the bench process, one variant loaded at a time: {max(peaks):.0f} MB")
    for r in report["results"]:
        lat = r["latency_ms"]
        ratio = f"{r['ratio_to_baseline']:.2f}x" if r.get("ratio_to_baseline") else "-"
        diff = f"{r['max_abs_vs_reference']:.1e}" if r.get("max_abs_vs_reference") is not None else "-"
        db = ("-" if "psnr_vs_reference_db" not in r else "=" if r["psnr_vs_reference_db"] is None else
              f"{r['psnr_vs_reference_db']:.1f}")  # not measured (an older report), or the same images
        mark = " *" if flagged(r) else ""  # as in the plots: see the notes
        lines.append(
            f"| {r['variant']}{mark} | {r['backend']} | {r['height']}x{r['width']} | {r['batch']} | {lat['min']:.1f} | "
            f"{lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | {lat['mean']:.1f} | "
            f"{throughput_fps(r['batch'], lat['p50']):.1f} | {r['host_pre_ms']['p50']:.1f} | "
            f"{r['host_post_ms']['p50']:.1f} | {ratio} | {diff} | {db} |" + (watts_and_energy(r) if power else "")
        )
    if any(flagged(r) for r in report["results"]):
        lines.append("\n\\* timed on a busy or unsteady machine (the notes below say how): take its figures as rough")
    for n in report.get("notes", []):
        lines.append(f"\n_{n}_")
    if report.get("pipeline"):
        p = report["pipeline"]
        lines.append(f"\nPipeline: {p['pipeline_fps']:.2f} FPS end to end vs {p['inference_fps']:.2f} FPS for inference "
                     f"alone on the same frames ({100 * p['ratio']:.0f}%) at {p['inference_size']}")  # fmt: skip
    return "\n".join(lines) + "\n"


def case_key(r: dict[str, Any]) -> tuple[int, int, int]:
    return (r["height"], r["width"], r["batch"])


def latency_plot(rows_raw: list[dict[str, Any]], path: Path, caption: list[str] | None = None) -> None:
    """Horizontal box plots on a log axis (one outlier cannot flatten the rest), grouped by size and batch
    under a heading each, one colour per variant, the p50 written beside each box."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    variants = list(dict.fromkeys(r["variant"] for r in rows_raw))
    colour = {v: plt.get_cmap("tab10")(i % 10) for i, v in enumerate(variants)}
    data, positions, labels, headings = [], [], [], []
    y = 0.0
    for case in dict.fromkeys(case_key(r) for r in rows_raw):
        headings.append((y, f"{case[0]}x{case[1]}, batch {case[2]}"))
        y += 1.0
        for r in (r for r in rows_raw if case_key(r) == case):
            data.append(r)
            positions.append(y)
            labels.append(r["variant"] + (" *" if flagged(r) else ""))
            y += 1.0
        y += 0.4
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.3 * y))
    import matplotlib

    new = tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10)  # ``vert`` is deprecated there
    horizontal: dict[str, Any] = {"orientation": "horizontal"} if new else {"vert": False}
    boxes = ax.boxplot([r["samples_ms"] for r in data], positions=positions, widths=0.6, **horizontal,
                       patch_artist=True, flierprops={"markersize": 3, "alpha": 0.6},
                       medianprops={"color": "black"})  # fmt: skip
    for patch, r in zip(boxes["boxes"], data):
        patch.set_facecolor(colour[r["variant"]])
        patch.set_alpha(0.75)
    low = min(min(r["samples_ms"]) for r in data) / 1.3
    high = max(max(r["samples_ms"]) for r in data) * 1.3
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    dense = math.log10(high / low) < 2.5  # 1-2-5 ticks while they fit, decades beyond
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if dense else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_ylim(y, -0.8)
    for pos, r in zip(positions, data):  # a column right of the plot
        p50 = r["latency_ms"]["p50"]
        ax.text(1.01, pos, f"{p50:,.0f}" if p50 >= 100 else f"{p50:.3g}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8)  # fmt: skip
    ax.text(1.01, -0.8, "p50 ms", transform=ax.get_yaxis_transform(), va="bottom", fontsize=8, fontweight="bold")
    for hy, text in headings:
        ax.text(0.0, hy, text, transform=ax.get_yaxis_transform(), fontsize=9, fontweight="bold", va="center")
        ax.axhline(hy - 0.7, color="0.85", linewidth=0.8)
    ax.grid(axis="x", which="major", color="0.9")
    ax.set_xlabel("latency per call (ms, log scale)")
    ax.set_title("Inference latency per call, by size and batch")
    save_with_caption(fig, path, caption or [])


def sizes_in(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """The (H, W) sizes measured, smallest pixel count first."""
    return sorted({(r["height"], r["width"]) for r in rows}, key=lambda hw: (hw[0] * hw[1], hw))


UNSTEADY_P90_OVER_P50 = 1.5  # an idle machine keeps p90 within ~1.2x p50 (benchmarks/*.txt); a busy one does not
UNSTEADY_MIN_ITERATIONS = 10  # with fewer timed calls p90 is about the slowest one: one hiccup is not a busy machine


# the rounds' medians of one case on a machine that kept its speed: within 1.1x here (benchmarks/bench_rounds_zen4.txt);
# the trial saw one case's median 2x apart between two runs of one command, each steady within itself
ROUNDS_SPREAD_LIMIT = 1.3


ROUND_MIN_CALLS = 5  # a round's median from fewer calls is about one call: a hiccup, not the machine's speed


def rounds_spread(row: dict[str, Any]) -> float | None:
    """How far apart the case's rounds' medians are (slowest / fastest); None for one round, or rounds too short
    to tell (fewer than ROUND_MIN_CALLS calls each)."""
    p50s = row.get("round_p50_ms") or []
    judged = len(p50s) > 1 and (row.get("iterations") or 0) >= ROUND_MIN_CALLS * len(p50s) and min(p50s) > 0
    return max(p50s) / min(p50s) if judged else None


def timed_busy(row: dict[str, Any]) -> bool:
    """Other processes kept more than OTHERS_BUSY_CPUS busy while the case was timed."""
    return (row.get("others_busy_cpus") or 0.0) > OTHERS_BUSY_CPUS


def timed_unsteady(row: dict[str, Any]) -> bool:
    """The latency spread says another process was using the machine (judged from enough calls only), or the rounds'
    medians say the machine's speed changed during the run."""
    return spread_unsteady(row) or (rounds_spread(row) or 1.0) > ROUNDS_SPREAD_LIMIT


def spread_unsteady(row: dict[str, Any]) -> bool:
    """p90 over UNSTEADY_P90_OVER_P50 x p50, from enough calls to tell (UNSTEADY_MIN_ITERATIONS)."""
    lat = row["latency_ms"]
    return (row.get("iterations") or 0) >= UNSTEADY_MIN_ITERATIONS and lat["p90"] > UNSTEADY_P90_OVER_P50 * lat["p50"]


def flagged(row: dict[str, Any]) -> bool:
    """A case its report warns against: timed on a busy or unsteady machine (marked * in report.md and the plots)."""
    return timed_busy(row) or timed_unsteady(row)


def stopped_note(report: dict[str, Any]) -> str | None:
    """The note that says a report is not a whole run (Ctrl-C, or a partial one written while measuring)."""
    return next((n for n in report.get("notes", []) if n.startswith(("interrupted", "partial"))), None)


def plot_caption(report: dict[str, Any]) -> list[str]:
    """What a plot shown on its own must say: the model and machine, and what the report says against its figures
    (a stopped run, cases timed on a busy or unsteady machine: marked * in the plots)."""
    cpu = report.get("machine", {}).get("cpu", "?")
    lines = [f"{model_line(report.get('model', {})).split(' (')[0]} on {cpu}"]
    stopped = stopped_note(report)
    marked = [r for r in report["results"] if flagged(r)]
    if stopped:
        lines.append(f"not a whole run: {stopped}")
    if marked:
        lines.append(f"* {len(marked)} of {len(report['results'])} cases timed on a busy or unsteady machine: "
                     "rerun on an idle one before trusting them")  # fmt: skip
    return lines


def unsteady_note(rows: list[dict[str, Any]]) -> str | None:
    """A note naming the cases not timed on an idle machine: other processes kept more than OTHERS_BUSY_CPUS busy
    meanwhile (a steady load slows every call alike: no spread shows it), or the latency spread says so (p90 over
    1.5x p50, judged from 10 timed calls up); their ratios and FPS are not to be trusted. Else one saying that cases
    timed from fewer calls were not judged; None when every case was judged steady."""
    busy = [r for r in rows if timed_busy(r)]
    judged = [r for r in rows if (r.get("iterations") or 0) >= UNSTEADY_MIN_ITERATIONS]
    unsteady = [r for r in judged if spread_unsteady(r)]
    drifted = [r for r in rows if (rounds_spread(r) or 1.0) > ROUNDS_SPREAD_LIMIT]
    said = []
    if busy:
        worst = max(busy, key=lambda r: r["others_busy_cpus"])
        said.append(f"a busy machine in {len(busy)} of {len(rows)} cases: other processes (or virtual machines) kept "
                    f"up to {worst['others_busy_cpus']:.1f} CPUs busy while they were timed (worst {case_name(worst)})")
    if unsteady:
        worst = max(unsteady, key=lambda r: r["latency_ms"]["p90"] / r["latency_ms"]["p50"])
        spread = worst["latency_ms"]["p90"] / worst["latency_ms"]["p50"]
        said.append(f"unsteady timing in {len(unsteady)} of {len(rows)} cases (p90 over {UNSTEADY_P90_OVER_P50:g}x "
                    f"p50; worst {case_name(worst)}: {spread:.1f}x): another process was likely using the machine")
    if drifted:
        worst = max(drifted, key=lambda r: rounds_spread(r) or 1.0)
        said.append(f"the machine's speed changed during the run in {len(drifted)} of {len(rows)} cases (their rounds' "
                    f"medians {rounds_spread(worst):.2f}x apart in {case_name(worst)}, over "
                    f"{ROUNDS_SPREAD_LIMIT:g}x)")  # fmt: skip
    if said:
        said[-1] += "; rerun on an idle one before trusting their ratios"
    unmeasured = [r for r in rows if "others_s" in r and r.get("others_busy_cpus") is None]  # a run's own rows
    if unmeasured:
        why = ("psutil is not installed: pip install 'cyclegan-edge[bench]'" if any(r["others_s"] is None
               for r in unmeasured) else "timed for under a second in all: more --iters")  # fmt: skip
        said.append(f"other processes' load not measured in {len(unmeasured)} of {len(rows)} cases ({why}); a "
                    "steady load elsewhere slows every call alike, so only that check would see it")  # fmt: skip
    if len(judged) < len(rows):
        fewest = min(r.get("iterations") or 0 for r in rows)
        said.append(f"steadiness not judged in {len(rows) - len(judged)} of {len(rows)} cases: timed from fewer "
                    f"than {UNSTEADY_MIN_ITERATIONS} calls (as few as {fewest}; --iters), too few to tell a busy "
                    "machine from a steady one; take their ratios as rough")  # fmt: skip
    return "; ".join(said) or None


def case_name(row: dict[str, Any]) -> str:
    return f"{row['variant']} {row['height']}x{row['width']} batch {row['batch']}"


def fps_plot_skipped(rows: list[dict[str, Any]], asked: int = 1) -> str | None:
    """Why fps_vs_size.png is not drawn (None: it is): throughput against size needs two sizes or more measured
    (``asked``: how many --sizes gave; fewer measured means the run stopped early)."""
    sizes = sizes_in(rows)
    if len(sizes) >= 2:
        return None
    where = f"one input size ({sizes[0][0]}x{sizes[0][1]})" if sizes else "no results"
    if asked >= 2:
        return (f"fps_vs_size.png not drawn: {where} measured of the {asked} asked for (the run stopped before the "
                "others)")  # fmt: skip
    return (f"fps_vs_size.png not drawn: {where}, so there is nothing to plot against size (the table and "
            "latency.png compare the variants); give --sizes two or more sizes for it")


def fps_vs_size_plot(rows: list[dict[str, Any]], path: Path, caption: list[str] | None = None) -> list[str]:
    """FPS (batch x 1000 / p50) against input size: one colour per variant, one line style per batch; the
    sizes evenly spaced, smallest pixel count first, labelled H x W as in the table. Returns the x labels."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    sizes = sizes_in(rows)
    labels = [f"{h}x{w}" for h, w in sizes]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    batches = sorted({r["batch"] for r in rows})
    styles, markers = ("-", "--", ":", "-."), ("o", "s", "^", "D")  # per batch: told apart in greyscale too
    fig, ax = plt.subplots(figsize=(9, 4.8))
    values = []
    for i, variant in enumerate(variants):
        for j, batch in enumerate(batches):
            pts = sorted((sizes.index((r["height"], r["width"])), throughput_fps(batch, r["latency_ms"]["p50"]))
                         for r in rows if r["variant"] == variant and r["batch"] == batch)  # fmt: skip
            if not pts:
                continue
            values += [p[1] for p in pts]
            label = variant if len(batches) == 1 else f"{variant}, batch {batch}"
            marked = [r for r in rows if r["variant"] == variant and r["batch"] == batch]
            label += " *" if any(flagged(r) for r in marked) else ""
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[j % len(markers)],
                    color=plt.get_cmap("tab10")(i % 10), linestyle=styles[j % len(styles)], label=label)  # fmt: skip
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels(labels, rotation=30 if len(sizes) > 6 else 0)
    ax.set_xlim(-0.3, len(sizes) - 0.7)
    log = bool(values) and max(values) / min(values) > 20  # one slow variant or large size cannot flatten the rest
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.grid(color="0.9")
    ax.set_xlabel("input size (H x W), smallest first")
    ax.set_ylabel("FPS = batch x 1000 / p50 ms" + (" (log scale)" if log else ""))
    batch_text = f"batch {batches[0]}" if len(batches) == 1 else "by batch"
    ax.set_title(f"Throughput vs input size ({batch_text})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    save_with_caption(fig, path, caption or [])
    return labels


def save_with_caption(fig: Any, path: Path, caption: list[str]) -> None:
    """The figure, with ``caption`` under it (the first line grey, warnings after it dark red), and closed."""
    import matplotlib.pyplot as plt

    height = 0.22 * len(caption)
    fig.set_figheight(fig.get_figheight() + height)
    fig.tight_layout(rect=(0, height / fig.get_figheight(), 1, 1))
    for i, line in enumerate(caption):
        fig.text(0.01, (height - 0.22 * (i + 0.75)) / fig.get_figheight(), line, fontsize=8,
                 color="0.35" if i == 0 else "darkred")  # fmt: skip
    try:
        with atomic_path(path) as tmp:  # Ctrl-C or a full disk leaves the earlier plot, not half of this one
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


def plots(report: dict[str, Any], rows_raw: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """latency.png (distribution per variant, grouped by size and batch) and, with two sizes or more,
    fps_vs_size.png (see fps_plot_skipped); a stale fps_vs_size.png from an earlier run is removed."""
    import matplotlib

    matplotlib.use("Agg")

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "latency.png"]
    caption = plot_caption(report)
    latency_plot(rows_raw, paths[0], caption)
    fps_png = out_dir / "fps_vs_size.png"
    if fps_plot_skipped(report["results"]):
        fps_png.unlink(missing_ok=True)  # it would not belong to this report
    else:
        fps_vs_size_plot(report["results"], fps_png, caption)
        paths.append(fps_png)
    return paths


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two reports' conditions: the model, threads, iterations, machine, library and toolkit
    versions; and what either says of its own figures (a busy machine, unsteady timing, a stopped run)."""
    said = []
    sha = [rep.get("model", {}).get("sha256") for rep in (a, b)]
    if sha[0] and sha[1] and sha[0] != sha[1]:
        files = [model_line(rep["model"]).split(" (")[0] for rep in (a, b)]
        said.append(f"the models differ: A {files[0]} (sha256 {sha[0][:12]}), B {files[1]} (sha256 {sha[1][:12]}): "
                    "the ratios compare two models, not two runs of one")  # fmt: skip
    threads = [rep.get("threads") for rep in (a, b)]
    if "threads" in a and "threads" in b and threads[0] != threads[1]:  # older reports did not record them
        said.append(f"threads differ: A {threads[0] or 'the library default'}, B {threads[1] or 'the library default'}")
    for label, rep in (("A", a), ("B", b)):
        stopped = stopped_note(rep)
        unsteady = unsteady_note(rep["results"])
        if stopped:
            said.append(f"{label} is not a whole run: {stopped}")
        if unsteady and not unsteady.startswith("steadiness not judged"):
            said.append(f"{label}: {unsteady}")
    runs = [sorted({timing_of(r) for r in rep["results"]}) for rep in (a, b)]
    if runs[0] != runs[1]:
        said.append(f"timed calls differ: A {'; '.join(runs[0])}, B {'; '.join(runs[1])}")
    single = [label for label, rep in (("A", a), ("B", b)) if all(rounds_spread(r) is None for r in rep["results"])]
    if single:
        said.append(f"{' and '.join(single)} carr{'y' if len(single) > 1 else 'ies'} no spread of rounds (one round, "
                    "or rounds too short to judge): nothing marks a ratio that this machine's own variation could "
                    "make (up to 2x between runs here); --rounds 3 or more, --iters 10 or more")  # fmt: skip
    ma, mb = a.get("machine", {}), b.get("machine", {})
    for key in ("cpu", "cores", "gpu", "os", "python"):
        if ma.get(key) != mb.get(key):
            said.append(f"machine {key} differs: A {ma.get(key)}, B {mb.get(key)}")
    va, vb = ma.get("versions", {}), mb.get("versions", {})
    for lib in sorted(set(va) | set(vb)):
        if va.get(lib) != vb.get(lib):
            said.append(f"{lib} differs: A {va.get(lib, 'absent')}, B {vb.get(lib, 'absent')}")
    if a.get("toolkit_version") != b.get("toolkit_version"):
        said.append(f"cyclegan-edge differs: A {a.get('toolkit_version')}, B {b.get('toolkit_version')}")
    return said


def timing_of(row: dict[str, Any]) -> str:
    """How a case was timed, as --compare says it: calls a round x rounds, warm-up."""
    rounds = len(row.get("round_p50_ms") or []) or 1
    calls = (row.get("iterations") or 0) // rounds
    return f"{calls} calls x {rounds} round{'s' if rounds > 1 else ''} (warm-up {row.get('warmup')})"


def compare(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Rows present in both reports, B against A with one statistic (the median, p50) for latency and for
    throughput; then the cases only one report has, and the conditions that differ (warnings)."""
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["variant"], r["height"], r["width"], r["batch"])

    def name(k: tuple[Any, ...]) -> str:
        return f"{k[0]} {k[1]}x{k[2]} batch {k[3]}"

    rows_a, rows_b = {key(r): r for r in a["results"]}, {key(r): r for r in b["results"]}
    lines = [f"A: {a['machine']['cpu']} ({a['created']})", f"B: {b['machine']['cpu']} ({b['created']})", "",
             f"Latency and FPS both from the median (p50) call: {FPS_DEFINITION}.", "",
             "| variant | size | batch | A p50 ms | B p50 ms | B/A latency | B/A FPS |", "|---|---|---|---|---|---|---|"]
    common = [k for k in rows_b if k in rows_a]
    within = 0
    for k in common:
        pa, pb = rows_a[k]["latency_ms"]["p50"], rows_b[k]["latency_ms"]["p50"]
        noise = max(filter(None, (rounds_spread(rows_a[k]), rounds_spread(rows_b[k]))), default=None)
        mark = " ~" if noise and 1 / noise <= pb / pa <= noise else ""
        within += bool(mark)
        lines.append(f"| {k[0]} | {k[1]}x{k[2]} | {k[3]} | {pa:.2f} | {pb:.2f} | {pb / pa:.3f}{mark} | "
                     f"{pa / pb:.3f}{mark} |")
    if not common:
        lines.append("| (no cases in common) | | | | | | |")
    if within:
        lines.append("\n~ B/A within the spread of that case's rounds' medians (--rounds) in A or B: a difference "
                     "these runs cannot tell from the machine's own variation")  # fmt: skip
    for label, only in (("A", [k for k in rows_a if k not in rows_b]), ("B", [k for k in rows_b if k not in rows_a])):
        if only:
            lines.append(f"\nonly in {label}: " + "; ".join(name(k) for k in only))
    warnings = differences(a, b)
    if warnings:
        lines.append("")
        lines += [f"warning: {w}" for w in warnings]
    return "\n".join(lines)
