"""The evaluation report: JSON (stable keys) and a Markdown summary, written atomically."""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cyclegan_edge import __version__
from cyclegan_edge.atomic import atomic_path, write_json
from cyclegan_edge.imaging.files import OutputError, ReportFolder

SCHEMA = "cyclegan-edge/evaluate"
SCHEMA_VERSION = 1
KEYS = ("schema", "schema_version", "toolkit_version", "created", "command", "machine", "direction", "size", "data",
        "generator", "reverse", "domain", "cycle_l1", "edge_ssim", "checkerboard", "latency_ms", "seconds",
        "caveats")  # fmt: skip
REPORT_FILES = ("evaluate.json", "evaluate.md")
# Under these, a domain score is a number but not a figure to compare (see caveats()).
MIN_IMAGES = 30
MIN_ACCURACY = 0.7
# Edge SSIM of unrelated photos (each test photo against the next): 0.11-0.14; the models judged so far keep 0.32-0.57.
MIN_EDGE_SSIM = 0.2


def finite(x: Any) -> Any:
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def caveats(r: dict[str, Any]) -> list[str]:
    """Why this report's domain score should not be compared with others', one sentence each (none: comparable)."""
    clf, n = r["domain"]["classifier"], r["data"]["n_source"]
    src = r["direction"].split("->")[0]
    out = []
    if r["size"] < clf["size"]:
        out.append(f"--size {r['size']} is under the domain classifier's {clf['size']} px input: it judges upscaled "
                   f"images, so the domain score does not compare with one at {clf['size']} px or more")  # fmt: skip
    if n < MIN_IMAGES:
        lo, hi = r["domain"]["model"]["ci95"]
        known = all(isinstance(x, float) and math.isfinite(x) for x in (lo, hi))
        width = f" (its 95% interval spans {hi - lo:.2f})" if known and hi - lo >= 0.01 else (
            " (resampling so few images cannot show how uncertain it is: its 95% interval has no width)" if known else "")
        out.append(f"only {n} {src} test images: the domain score is a rough guess{width}; compare figures over "
                   f"{MIN_IMAGES} or more")  # fmt: skip
    score = r["domain"]["model"]["score"]
    if not (isinstance(score, float) and math.isfinite(score)):  # shown as "-"
        tgt = r["direction"].split("->")[1]
        out.append(f"no domain score ('-'): the classifier judged the real {src} test photos {tgt} as often as the "
                   f"real {tgt} ones, or more ({clf['source_judged_target']:.2f} vs "
                   f"{clf['target_judged_target']:.2f}), so the 0-1 scale between them has no width")  # fmt: skip
    edges = r.get("edge_ssim")
    if isinstance(edges, float) and edges < MIN_EDGE_SSIM:
        out.append(f"the outputs keep little of their inputs (edge SSIM {edges:.3f}, under {MIN_EDGE_SSIM}; unrelated "
                   f"photos score 0.1-0.15): a domain score then says they do not look like {src} photos, not that "
                   "they translate them; look at the outputs")  # fmt: skip
    if clf["held_out_balanced_accuracy"] < MIN_ACCURACY:
        out.append(f"the domain classifier tells these real test photos apart with balanced accuracy "
                   f"{clf['held_out_balanced_accuracy']:.2f} (under {MIN_ACCURACY}): the domain score says little")  # fmt: skip
    return out


def make_report(**fields: Any) -> dict[str, Any]:
    head = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "toolkit_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    report = {**head, **fields}
    report["caveats"] = caveats(report)
    missing = [k for k in KEYS if k not in report]
    if missing:
        raise ValueError(f"report lacks {missing}")
    return finite({k: report[k] for k in KEYS})


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(ci: list[float | None]) -> str:
    return "-" if None in ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _skipped(n: int | None, around: str = "; {}") -> str:
    return around.format(f"{n} image file{'s' * (n != 1)} skipped: not decodable or too small") if n else ""


def markdown(r: dict[str, Any]) -> str:
    d, g = r["domain"], r["generator"]
    clf, cb = d["classifier"], r["checkerboard"]
    src, tgt = r["direction"].split("->")
    macs = f"{g['macs'] / 1e9:.2f} GMACs, {g['params'] / 1e6:.3f} M params" if g.get("macs") else "- (not a .pth)"
    lat = r["latency_ms"]
    train_skipped = clf.get("skipped_a", 0) + clf.get("skipped_b", 0)  # absent from classifiers cached before
    lines = [
        f"# Evaluation: {Path(g['path']).name} ({r['direction']})",
        "",
        f"- command: `{r['command']}`",
        f"- machine: {r['machine']['cpu']}; {r['created']}; backend {g['backend']}"
        + (f", model {g['precision'].upper()}" if g.get("precision") else ""),
        f"- test images: {r['data']['n_source']} {src} ({r['data']['source']}{_skipped(r['data'].get('skipped_source'))}), "
        f"{r['data']['n_target']} {tgt} ({r['data']['target']}{_skipped(r['data'].get('skipped_target'))}), "
        f"at {r['size']}x{r['size']}",
        f"- domain classifier: held-out balanced accuracy **{clf['held_out_balanced_accuracy']:.3f}** on these test sets "
        f"(real {src} judged {tgt}: {clf['source_judged_target']:.3f}, real {tgt} judged {tgt}: "
        f"{clf['target_judged_target']:.3f}); trained on {clf['n_a']} A + {clf['n_b']} B images"
        f"{_skipped(train_skipped, ' ({})')}, {clf['size']} px, "
        f"epochs {clf['epochs']}; `{clf['cache']}`",
        "",
        f"Domain score: 0 = looks like real {src} photos, 1 = like real {tgt} photos (95% bootstrap interval over "
        f"images; a score or interval beyond 0-1 is judged more, or less, {tgt}-like than the real photos). "
        f"Edge SSIM: content preservation (1 = the input's luminance edges). Checkerboard: alias-frequency "
        f"energy share relative to the input's (1 = no more than the input).",
        "",
        f"| images | domain score | 95% CI | judged {tgt} | edge SSIM | checkerboard |",
        "|---|---|---|---|---|---|",
        f"| **model** | **{_f(d['model']['score'], 2)}** | {_ci(d['model']['ci95'])} | {_f(d['model']['judged_target'])} | "
        f"{_f(r['edge_ssim'])} | {_f(cb['score'], 2)} |",
    ]
    for name, b in d["baselines"].items():
        lines.append(f"| {name} | {_f(b['score'], 2)} | {_ci(b['ci95'])} | {_f(b['judged_target'])} | {_f(b['edge_ssim'])} | "
                     f"{_f(b['checkerboard'], 2)} |")  # fmt: skip
    lines += [
        "",
        f"- cycle L1 ({r['direction']}->{src}, [-1, 1] units): "
        + (f"**{r['cycle_l1']:.4f}** (reverse: {Path(r['reverse']['path']).name})" if r["reverse"] else "- (no --reverse)"),
        f"- checkerboard: output alias share {cb['output_alias_share']:.2e} vs input {cb['input_alias_share']:.2e}",
        f"- complexity at {r['size']}x{r['size']}: {macs}",
        "- latency (batch 1): " + (f"median {lat['p50']:.1f} ms, min {lat['min']:.1f} ms over {lat['iterations']} calls, "
                                   f"{lat['backend']}, {lat['threads']} thread{'' if lat['threads'] == 1 else 's'}"
                                   if lat else "- (skipped)"),
        f"- total time: {r['seconds']:.0f} s",
    ]  # fmt: skip
    if r["caveats"]:
        lines += ["", "**Caveats**", ""] + [f"- {c}" for c in r["caveats"]]
    return "\n".join(lines) + "\n"


OUTPUT = ReportFolder(REPORT_FILES, f"evaluate writes {' and '.join(REPORT_FILES)}", "; nothing written")


def output_error(out: Path, e: OSError) -> OutputError:
    """The one line for a failed write into ``out``: the same whether the write failed or ``check_output`` saw
    beforehand that it would."""
    return OUTPUT.error(out, e)


def check_output(out_dir: str | Path, inputs: Sequence[Path], overwrite: bool = False) -> None:
    """Refuse, before any work, an --output that ``write_report`` would fail on (see ReportFolder.check), or
    that holds an earlier evaluation (another run's figures: kept unless ``overwrite``)."""
    out = Path(out_dir)
    OUTPUT.check(out, inputs)
    earlier = out / REPORT_FILES[0]
    if overwrite or not earlier.is_file():
        return
    try:
        held = json.loads(earlier.read_text())
        what = f"{Path(held['generator']['path']).name} {held['direction']}, {held['created']}"
    except (OSError, ValueError, KeyError, TypeError):
        what = REPORT_FILES[0]
    raise OutputError(f"--output {out} holds an evaluation ({what}): --overwrite replaces it, or give another "
                      "--output; nothing written")  # fmt: skip


def write_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """evaluate.json and evaluate.md in ``out_dir``, each written atomically; OutputError (one line) on failure."""
    out = Path(out_dir)
    json_path, md_path = (out / n for n in REPORT_FILES)
    try:
        write_json(json_path, report)
        with atomic_path(md_path) as tmp:
            tmp.write_text(markdown(report))
    except OSError as e:
        raise output_error(out, e) from None
    return json_path, md_path
