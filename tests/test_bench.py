from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA, STREET_VIDEO, as_user, interrupt_when, need
from cyclegan_edge import ASSETS_DIR

from cyclegan_edge.bench.report import ROW_KEYS, SCHEMA, STAT_KEYS, compare, load_report, validate
from cyclegan_edge.bench.runner import parse_sizes
from cyclegan_edge.runtime.timing import latency_stats
from cyclegan_edge.bench.tegrastats import parse_line, summarize

# Real tegrastats lines. Nano and Xavier (JetPack 4) as kept in jetson_stats' tegrastats
# emulator (tests/tegrastats); AGX Orin on JetPack 7.2 / L4T R39.2 from jetson_stats'
# tests (rbonghi/jetson_stats).
NANO_JP4 = ("RAM 1180/3965MB (lfb 1x2MB) SWAP 149/1024MB (cached 7MB) IRAM 0/252kB(lfb 252kB) "
            "CPU [30%@1036,33%@1036,28%@1036,26%@1036] EMC_FREQ 10%@1600 GR3D_FREQ 0%@76 NVENC 716 NVDEC 716 APE 25 "
            "PLL@57C CPU@60.5C PMIC@100C GPU@59C AO@65C thermal@59.75C POM_5V_IN 4520/4680 POM_5V_GPU 0/0 "
            "POM_5V_CPU 1078/1205")  # fmt: skip
XAVIER_JP4 = ("RAM 4722/7844MB (lfb 1x512kB) CPU [55%@2035,14%@2034,27%@2034,55%@2035,47%@2035,45%@2035] "
              "SWAP 149/1024MB (cached 7MB) EMC_FREQ 2%@1866 GR3D_FREQ 37%@1300 APE 150 MTS fg 0% bg 0% BCPU@-45C "
              "MCPU@-45C GPU@-51C PLL@45C AO@47.5C Tboard@37C Tdiode@46.75C PMIC@100C thermal@46.4C VDD_IN 14025/14416 "
              "VDD_CPU 2209/2538 VDD_GPU 6854/6903 VDD_SOC 1371/1370 VDD_WIFI 19/19 NVENC 716 NVDEC 716 VDD_DDR 2702/2702")  # fmt: skip
ORIN_JP7 = ("07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) "
            "CPU [23%@2201,10%@2201,4%@2201,14%@2201,30%@2201,18%@2201,10%@2201,10%@2201,33%@2201,7%@2201,5%@2201,27%@2201] "
            "EMC_FREQ 3%@3199 GR3D_FREQ 12%@[1300,1300] NVENC0 off NVDEC0 off NVJPG0 off NVJPG1 off VIC off OFA off "
            "NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 "
            "cpu@52.968C/52.968C soc2@48.406C/48.406C soc0@49.531C/49.531C gpu@47.625C/47.625C "
            "VDD_GPU_SOC 5139mW/5139mW/5139mW VDD_CPU_CV 3268mW/3268mW/3268mW VIN_SYS_5V0 5500mW/5500mW/5500mW")  # fmt: skip


def test_latency_stats_on_known_timings() -> None:
    s = latency_stats(list(range(1, 101)), batch=1)  # 1..100 ms
    assert s["min"] == 1 and s["max"] == 100 and s["mean"] == 50.5
    assert s["p50"] == 50.5 and s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert s["fps"] == pytest.approx(1000 / 50.5)
    assert latency_stats([10.0, 10.0], batch=4)["fps"] == pytest.approx(400.0)
    assert latency_stats([2.0, 2.0, 50.0], batch=2)["fps"] == pytest.approx(1000.0)  # at the median, not the mean
    with pytest.raises(ValueError):
        latency_stats([])


def test_parse_sizes() -> None:
    assert parse_sizes("256,512x768,720p") == [(256, 256), (512, 768), (720, 1280)]
    with pytest.raises(ValueError, match="bad size"):
        parse_sizes("huge")
    assert parse_sizes(" 64 , 48 x 80 ,") == [(64, 64), (48, 80)]
    for bad in ("512x", "x512", "1x2x3", "-64", "6 4", "64.5"):
        with pytest.raises(ValueError, match=f"bad size '{bad}': use 256, HxW or 720p"):
            parse_sizes(bad)
    with pytest.raises(ValueError, match="no size given"):
        parse_sizes(" , ")


def test_tegrastats_nano_jetpack4() -> None:
    s = parse_line(NANO_JP4)
    assert (s.ram_used_mb, s.ram_total_mb) == (1180, 3965)
    assert s.cpu_load == [30, 33, 28, 26] and s.gpu_load == 0 and s.gpu_mhz == 76 and s.emc_load == 10
    assert s.power_mw == {"POM_5V_IN": 4520, "POM_5V_GPU": 0, "POM_5V_CPU": 1078}
    assert s.total_power_mw == 4520  # the module input rail, not the sum
    assert s.temps_c["GPU"] == 59 and s.temps_c["thermal"] == 59.75


def test_tegrastats_xavier_jetpack4() -> None:
    s = parse_line(XAVIER_JP4)
    assert s.gpu_load == 37 and s.gpu_mhz == 1300 and len(s.cpu_load) == 6
    assert s.power_mw["VDD_IN"] == 14025 and s.total_power_mw == 14025 and s.power_mw["VDD_DDR"] == 2702
    assert "RAM" not in s.power_mw and "SWAP" not in s.power_mw
    assert s.temps_c["Tdiode"] == 46.75 and s.temps_c["BCPU"] == -45


def test_tegrastats_orin_jetpack7() -> None:
    s = parse_line(ORIN_JP7)
    assert (s.ram_used_mb, s.ram_total_mb) == (20642, 62817) and len(s.cpu_load) == 12
    assert s.gpu_load == 12 and s.gpu_mhz == 1300 and s.emc_load == 3
    assert s.power_mw == {"VDD_GPU_SOC": 5139, "VDD_CPU_CV": 3268, "VIN_SYS_5V0": 5500}
    assert s.total_power_mw == 5139 + 3268 + 5500  # AGX Orin has no single input rail
    assert s.temps_c == {"cpu": 52.968, "soc2": 48.406, "soc0": 49.531, "gpu": 47.625}


def test_tegrastats_missing_fields() -> None:
    s = parse_line("RAM 4722/7844MB (lfb 1x512kB) EMC_FREQ 2%@1866 GR3D_FREQ @[1000,1000,1000] APE 150 CV0@-256C")
    assert s.gpu_load is None and s.gpu_mhz == 1000 and s.power_mw == {} and s.total_power_mw is None
    assert s.temps_c == {}  # -256C: sensor off
    empty = parse_line("")
    assert empty.ram_used_mb is None and empty.cpu_load == []
    summary = summarize([parse_line(NANO_JP4), parse_line(NANO_JP4.replace("POM_5V_IN 4520", "POM_5V_IN 5520"))])
    assert summary["total_power_mw_mean"] == 5020 and summary["samples"] == 2


def test_bench_cli_report_is_complete(compressed_g_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    calib = tmp_path / "calib"  # 4 real photos: calibration time grows with the count, the checks here do not
    calib.mkdir()
    for photo in sorted((compressed_g_path.parents[2] / "horse2zebra" / "trainA").iterdir())[:4]:
        shutil.copy(photo, calib)
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.bench", str(compressed_g_path), "--variants",
                        "pytorch,onnxruntime-fp32,onnxruntime-int8,tensorrt-fp16", "--sizes", "128,96x160", "--batch", "1,2",
                        "--iters", "3", "--warmup", "1", "--calib", str(calib),
                        "--out", str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    report = load_report(out / "report.json")
    assert report["schema"] == SCHEMA and report["baseline"] == "pytorch"
    variants = {x["variant"] for x in report["results"]}
    assert variants == {"pytorch", "onnxruntime-fp32", "onnxruntime-int8"}
    assert len(report["results"]) == 3 * 2 * 2
    assert any("tensorrt" in n for n in report["notes"])  # said why, not silently dropped
    for row in report["results"]:
        assert set(ROW_KEYS) <= set(row) and set(STAT_KEYS) <= set(row["latency_ms"])
        lat = row["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert row["peak_rss_mb"] > 50
    assert all(x["ratio_to_baseline"] == 1.0 for x in report["results"] if x["variant"] == "pytorch")
    assert report["model"]["params"] == 356_867 and report["machine"]["cores"] >= 1
    for png in ("latency.png", "fps_vs_size.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 200 and img.std() > 5
    md = (out / "report.md").read_text()
    assert re.search(r"\| pytorch( \*)? \| pytorch:cpu \| 128x128 \| 1 \| [0-9.]+ \| [0-9.]+ \|", md), md  # * busy
    assert "| speed vs pytorch (p50) |" in md and "- peak memory (RSS) of the bench process, one variant " in md

    # compare mode: the same report against itself gives ratios of exactly 1
    r2 = subprocess.run([sys.executable, "-m", "cyclegan_edge.bench", "--compare", str(out / "report.json"),
                         str(out / "report.json")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r2.returncode == 0 and len(re.findall(r"\| 1\.000( ~)? \| 1\.000( ~)? \|", r2.stdout)) == 12, r2.stdout

    # A rerun into the folder keeps these measurements unless told: one line, before any work, nothing changed.
    before = {n: (out / n).read_bytes() for n in ("report.json", "report.md", "latency.png", "fps_vs_size.png")}
    again = [sys.executable, "-m", "cyclegan_edge.bench", str(compressed_g_path), "--variants", "onnxruntime-fp32",
             "--sizes", "64", "--iters", "2", "--warmup", "0", "-o", str(out)]  # fmt: skip
    r = subprocess.run(again, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"error: --output {out} holds a report (12 cases measured {report['created']}): --overwrite replaces it, or "
        "give another --output"], r.stderr[-2000:]
    assert {n: (out / n).read_bytes() for n in before} == before
    r = subprocess.run([*again, "--overwrite"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and len(load_report(out / "report.json")["results"]) == 1, r.stderr[-2000:]
    assert not (out / "fps_vs_size.png").exists()  # one size: the earlier run's plot is not left to be misread

    # --overwrite stopped halfway wrote its first case over the whole report at once (12 cases -> 2 after a Ctrl-C);
    # the earlier report now stays until the run is whole, the stopped run's cases in OUT/partial
    before = {n: (out / n).read_bytes() for n in ("report.json", "report.md", "latency.png")}
    longer = [*again[:4], "--variants", "onnxruntime-fp32", "--sizes", "64,256", "--iters", "400", "--warmup", "0",
              "-o", str(out), "--overwrite"]  # fmt: skip
    changed = lambda: (out / "partial" / "report.json").is_file() or (out / "report.json").read_bytes() != before[
        "report.json"]  # noqa: E731
    status, _, err = interrupt_when(longer, changed, timeout=120)
    assert status == 130 and {n: (out / n).read_bytes() for n in before} == before, err[-2000:]
    assert err.strip().splitlines()[-1] == (f"stopped in round 1 of 3: 1 of 2 cases measured; report in "
                                            f"{out}/partial/report.json, "
                                            f"report.md; the earlier report in {out} is kept (a whole run replaces "
                                            "it)"), err[-2000:]  # fmt: skip
    assert len(load_report(out / "partial" / "report.json")["results"]) == 1


def test_schema_validation_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a cyclegan-edge/bench"):
        validate({"schema": "other"})
    good = {"schema": SCHEMA, "schema_version": 1, "machine": {}, "created": "t",
            "results": [{k: None for k in ROW_KEYS}]}
    good["results"][0]["latency_ms"] = {k: 1.0 for k in STAT_KEYS}
    validate(good)
    del good["results"][0]["peak_rss_mb"]
    with pytest.raises(ValueError, match="missing"):
        validate(good)
    # --compare said "Expecting property name ... (char 3000)", "AttributeError (unexpected)", "ZeroDivisionError
    # (unexpected)", "KeyError: 'machine' (unexpected)": now one line naming the file, and what is wrong with it
    good["results"][0] |= {"peak_rss_mb": 1.0, "variant": "onnxruntime-fp32", "height": 64, "width": 64, "batch": 1}
    (tmp_path / "folder").mkdir()
    write = {"a.json": json.dumps({**good, "schema_version": 2}), "cut.json": json.dumps(good)[:35], "list.json": "[]",
             "zero.json": json.dumps({**good, "results": [{**good["results"][0],
                                                          "latency_ms": {k: 0 for k in STAT_KEYS}}]}),
             "nomachine.json": json.dumps({k: v for k, v in good.items() if k != "machine"}),
             "folder/report.json": json.dumps(good)}  # fmt: skip
    for name, text in write.items():
        (tmp_path / name).write_text(text)
    said = {}
    for name in ("a.json", "cut.json", "list.json", "zero.json", "nomachine.json"):
        with pytest.raises(ValueError) as e:
            load_report(tmp_path / name)
        said[name] = str(e.value).removeprefix(f"{tmp_path / name}: ")
    assert said == {
        "a.json": "not a readable bench report (a cyclegan-edge/bench v2 report; this cyclegan-edge reads v1 (another "
                  "version of the toolkit wrote it))",
        "cut.json": "not a readable bench report (Unterminated string starting at: line 1 column 35 (char 34))",
        "list.json": "not a readable bench report (not a cyclegan-edge/bench report)",
        "zero.json": "not a readable bench report (result row onnxruntime-fp32 64x64 batch 1: latencies must be "
                     "numbers above 0)",
        "nomachine.json": "not a readable bench report (no 'machine' in it)"}, said
    assert load_report(tmp_path / "folder") == good  # the --output folder names its report


def test_compare_matches_rows() -> None:
    def rep(p50: float, cpu: str) -> dict:
        row = {k: None for k in ROW_KEYS} | {"variant": "onnxruntime-fp32", "height": 256, "width": 256, "batch": 1}
        row["latency_ms"] = {"p50": p50, "p90": p50, "fps": 1000 / p50}
        return {"machine": {"cpu": cpu}, "created": "t", "results": [row]}

    text = compare(rep(100.0, "Orin"), rep(50.0, "Xavier"))
    assert "| onnxruntime-fp32 | 256x256 | 1 | 100.00 | 50.00 | 0.500 | 2.000 |" in text
    # rounds whose medians spread 1.2x: a 1.1x difference is within it, marked; a 2x one is not
    a, b = rep(100.0, "x"), rep(110.0, "x")
    a["results"][0]["round_p50_ms"], b["results"][0]["round_p50_ms"] = [95.0, 100.0, 114.0], [108.0, 110.0, 111.0]
    a["results"][0]["iterations"] = b["results"][0]["iterations"] = 30  # 10 a round: enough to judge them
    assert "| 100.00 | 110.00 | 1.100 ~ | 0.909 ~ |" in compare(a, b) and "~ B/A within the spread" in compare(a, b)
    b["results"][0]["latency_ms"] = {"p50": 200.0, "p90": 200.0, "fps": 5.0}
    assert "| 100.00 | 200.00 | 2.000 | 0.500 |" in compare(a, b) and "~ B/A" not in compare(a, b)


def test_compare_warns_when_the_figures_are_not_comparable() -> None:
    """Two different models, two thread counts, a busy machine on one side and a stopped run were compared as if
    they were two runs of one model, with "iterations differ" as the only warning."""
    def rep(sha: str, threads: int, busy: float, notes: list[str]) -> dict:
        row = {k: None for k in ROW_KEYS} | {"variant": "onnxruntime-fp32", "height": 256, "width": 256, "batch": 1,
                                            "iterations": 30, "others_busy_cpus": busy,
                                            "round_p50_ms": [10.0, 10.1, 9.9]}  # fmt: skip
        row["latency_ms"] = {"p50": 10.0, "p90": 11.0, "fps": 100.0}
        return {"machine": {"cpu": "x"}, "created": "t", "results": [row], "threads": threads, "notes": notes,
                "model": {"file": f"{sha}.onnx", "sha256": sha * 16}}  # fmt: skip

    same = compare(rep("aaaa", 0, 0.0, []), rep("aaaa", 0, 0.0, []))
    assert "warning" not in same, same
    older = {k: v for k, v in rep("aaaa", 0, 0.0, []).items() if k != "threads"}  # written before threads were kept
    assert "threads" not in compare(older, rep("aaaa", 4, 0.0, [])), "an older report's threads are not known"
    text = compare(rep("aaaa", 0, 0.0, []), rep("bbbb", 1, 1.5, ["interrupted (Ctrl-C) after 1 of 8 cases"]))
    warnings = [ln.removeprefix("warning: ") for ln in text.splitlines() if ln.startswith("warning: ")]
    assert warnings[:3] == [
        "the models differ: A aaaa.onnx (sha256 aaaaaaaaaaaa), B bbbb.onnx (sha256 bbbbbbbbbbbb): the ratios compare "
        "two models, not two runs of one", "threads differ: A the library default, B 1",
        "B is not a whole run: interrupted (Ctrl-C) after 1 of 8 cases"], warnings
    assert warnings[3].startswith("B: a busy machine in 1 of 1 cases"), warnings


def test_plots_name_the_model_and_machine_and_mark_what_the_report_flags(tmp_path: Path) -> None:
    """A latency.png of 12 cases all timed on a busy machine, or of a stopped run, showed clean boxes: shared on
    its own it said nothing against its figures, nor which model or machine it was."""
    from cyclegan_edge.bench.report import plot_caption, plots

    def row(variant: str, p90: float, busy: float) -> dict:
        r = {k: None for k in ROW_KEYS} | {"variant": variant, "height": 64, "width": 64, "batch": 1, "iterations": 20,
                                          "others_busy_cpus": busy}  # fmt: skip
        r["latency_ms"] = {"min": 9.0, "p50": 10.0, "p90": p90, "p99": p90, "max": p90, "mean": 10.0, "fps": 100.0}
        return r | {"samples_ms": [9.0, 10.0, p90]}

    rows = [row("onnxruntime-fp32", 11.0, 0.0), row("openvino-fp32", 30.0, 0.0), row("openvino-int8", 11.0, 1.5)]
    report = {"model": {"file": "h2z.onnx"}, "machine": {"cpu": "AMD EPYC"}, "results": rows,
              "notes": ["interrupted (Ctrl-C) after 3 of 4 cases"]}  # fmt: skip
    assert plot_caption(report) == [
        "h2z.onnx on AMD EPYC", "not a whole run: interrupted (Ctrl-C) after 3 of 4 cases",
        "* 2 of 3 cases timed on a busy or unsteady machine: rerun on an idle one before trusting them"]
    clean = {**report, "results": [row(r["variant"], 11.0, 0.0) for r in rows], "notes": []}
    assert plot_caption(clean) == ["h2z.onnx on AMD EPYC"]
    heights = []
    for name, rep in (("flagged", report), ("clean", clean)):
        (png,) = plots(rep, rep["results"], tmp_path / name)
        img = cv2.imread(str(png))
        assert img is not None and img.std() > 5
        heights.append(img.shape[0])
    assert heights[0] > heights[1]  # room for the warnings under the plot


def test_gpu_report_script_runs_end_to_end_and_says_what_it_could_not_do(tmp_path: Path) -> None:
    """benchmarks/gpu/gpu_report.py (issue 7's report) in --quick mode on this machine: the real
    pipeline of measurements and report files; GPU variants are listed with the reason they did not run.
    As on the device machine: only the data stage_data.sh carries, and no PyAV or OpenVINO to import."""
    need(SHARED_DATA / "horse2zebra" / "testA")
    staged = tmp_path / "staged"
    st = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "stage_data.sh"), str(staged), str(SHARED_DATA)],
                        cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert st.returncode == 0, st.stderr
    assert sum(p.stat().st_size for p in staged.rglob("*") if p.is_file()) < 20 * 2**20  # fits beside a TRT part
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text("import sys\nsys.modules.update(av=None, openvino=None)\n")
    out = tmp_path / "gpu"
    variants = "pytorch,pytorch-cuda-fp16-graphs,onnxruntime-fp32,tensorrt-fp16"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "gpu_report.py"), "--out", str(out), "--quick",
                        "--device", "cpu", "--variants", variants, "--data", str(staged)],
                       capture_output=True, text=True, timeout=900,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "block")})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["errors"] == {} and report["machine"]["versions"]["torch"]
    models = report["sections"]["inference"]["models"]
    assert set(models) == {"compressed_h2z", "resnet_9blocks"}
    for name, model in models.items():
        rows = {row["variant"]: row for row in model["rows"]}
        assert set(rows) == {"pytorch", "onnxruntime-fp32"}, name
        assert {(row["height"], row["width"]) for row in model["rows"]} == {(64, 64), (72, 128)}
        assert rows["pytorch"]["max_abs_vs_reference"] == 0.0  # the reference is PyTorch FP32 on the CPU
        assert 0 < rows["onnxruntime-fp32"]["max_abs_vs_reference"] < 2e-3 and rows["onnxruntime-fp32"]["parity_ok"]
        notes = " ".join(model["notes"])
        assert "pytorch-cuda-fp16-graphs skipped" in notes
        assert "tensorrt-fp16 built, not run" in notes or "tensorrt-fp16 skipped" in notes  # with / without TensorRT
    runs = report["sections"]["training"]["runs"]
    for run in runs.values():
        assert run["exit_status"] == 0 and run["iterations_logged"] == 20 and run["images_per_s_median"] > 0
        assert len(run["curve"]["cycle_A"]) == 20
    md = (out / "report.md").read_text()
    assert "## Inference" in md and "## Training" in md and "pytorch-cuda-fp16-graphs skipped" in md
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_size_the_generator_cannot_take_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cyclegan_edge.bench.__main__ import main

    assert main([str(ASSETS_DIR / "photo2monet.onnx"), "--sizes", "256,3", "-o", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == ("error: --sizes 256,3: 3x3 px is too small for the generator (it needs "
                                               "at least 5 px per side)")
    assert not (tmp_path / "r").exists()  # refused before anything was measured or written


def bench(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The bench command in this process: (exit status, stdout, stderr)."""
    from cyclegan_edge.bench.__main__ import main

    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_an_fp16_onnx_is_benched_as_given_not_converted_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cyclegan_edge.export.fp16 import export_fp16

    fp16 = export_fp16(ASSETS_DIR / "photo2monet.onnx", tmp_path / "m.fp16.onnx")  # what export --precision fp16 writes
    out = tmp_path / "rep"
    status, stdout, err = bench([fp16, "--variants", "onnxruntime-fp32,onnxruntime-fp16,openvino-fp32", "--sizes", "64",
                                 "--iters", "2", "--warmup", "1", "-o", out], capsys)  # fmt: skip
    assert status == 0, err[-2000:]
    report = load_report(out / "report.json")
    assert [(r["variant"], r["precision"]) for r in report["results"]] == [("onnxruntime-fp16", "fp16")]
    assert report["model"]["precision"] == "fp16" and report["model"]["file"] == "m.fp16.onnx"
    derived = [n for n in report["notes"] if "already FP16" in n]
    assert len(derived) == 1 and "onnxruntime-fp32, openvino-fp32 not run" in derived[0]
    assert not any("built, not run" in n for n in report["notes"])
    # one size: no throughput-vs-size plot, and the report says why instead of claiming it
    assert not (out / "fps_vs_size.png").exists() and (out / "latency.png").exists()
    assert any(n.startswith("fps_vs_size.png not drawn: one input size (64x64)") for n in report["notes"])
    assert stdout.rstrip().endswith(f"written: {out}/report.json, report.md, latency.png")


def test_precision_is_read_without_the_onnx_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edge install has no onnx package: ONNX Runtime and the export's metadata tell FP16 from FP32."""
    from cyclegan_edge.onnx_facts import read_onnx_facts
    from cyclegan_edge.export.fp16 import export_fp16

    fp32 = ASSETS_DIR / "photo2monet.onnx"
    fp16 = export_fp16(fp32, tmp_path / "m.fp16.onnx")
    assert read_onnx_facts(fp16).precision == "fp16"  # with onnx: the weights
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError, as without the package
    assert (read_onnx_facts(fp16).precision, read_onnx_facts(fp16).evidence) == ("fp16", "the export's metadata")
    assert read_onnx_facts(fp32).precision == "fp32" and read_onnx_facts(fp32).evidence.startswith("assumed")
    assert read_onnx_facts(need(ASSETS_DIR / "photo2monet.int8.onnx")).precision == "int8"
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        read_onnx_facts(tmp_path / "bad.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # OpenVINO alone: the metadata bytes still tell
    assert read_onnx_facts(fp16).precision == "fp16" and read_onnx_facts(fp32).evidence.startswith("assumed")


def test_an_int8_onnx_is_labelled_int8_and_nothing_is_derived(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    int8 = need(ASSETS_DIR / "photo2monet.int8.onnx")
    out = tmp_path / "rep"
    with_openvino = importlib.util.find_spec("openvino") is not None
    variants = "onnxruntime-fp32,onnxruntime-fp16,onnxruntime-int8,openvino-fp32" + (",openvino-int8" * with_openvino)
    status, _, err = bench([int8, "--variants", variants, "--sizes", "64,48x80", "--batches", "1,2", "--iters", "2",
                            "--warmup", "1", "-o", out], capsys)  # fmt: skip
    assert status == 0, err[-2000:]
    report = load_report(out / "report.json")
    rows = report["results"]
    assert {r["variant"] for r in rows} == {"onnxruntime-int8"} | ({"openvino-int8"} if with_openvino else set())
    assert all(r["precision"] == "int8" for r in rows) and len(rows) == (2 if with_openvino else 1) * 2 * 2
    assert all(r["backend"] == "openvino:CPU:f32+int8" for r in rows if r["variant"] == "openvino-int8")
    notes = report["notes"]
    assert len([n for n in notes if "already INT8" in n]) == 1
    assert "onnxruntime-fp32, onnxruntime-fp16, openvino-fp32 not run" in " ".join(notes)
    assert not any("--calib" in n or "built, not run" in n for n in notes)  # no calibration asked, no FP16 tried
    for r in rows:  # one FPS definition: the one --compare states
        assert r["latency_ms"]["fps"] == pytest.approx(r["batch"] * 1000 / r["latency_ms"]["p50"])
    md = (out / "report.md").read_text()
    assert "- model: photo2monet.int8.onnx (INT8 (DequantizeLinear/QuantizeLinear nodes); 0.68 MiB; sha256 " in md
    assert "FPS = batch x 1000 / p50 ms" in md
    r = rows[-1]
    assert f"| {r['latency_ms']['mean']:.1f} | {r['batch'] * 1000 / r['latency_ms']['p50']:.1f} |" in md
    assert (out / "fps_vs_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any("fps_vs_size" in n for n in notes)


def test_a_bad_model_path_is_one_line_before_any_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.onnx"
    assert bench([missing, "-o", tmp_path / "r"], capsys) == (1, "", f"error: {missing}: no such model file\n")
    (tmp_path / "notes.txt").write_text("x")
    status, _, err = bench([tmp_path / "notes.txt", "-o", tmp_path / "r"], capsys)
    assert status == 2
    assert err == f"error: {tmp_path / 'notes.txt'}: bench takes a generator checkpoint (.pth/.pt) or an .onnx\n"
    (tmp_path / "cut.onnx").write_bytes((ASSETS_DIR / "photo2monet.onnx").read_bytes()[:5000])  # a truncated copy
    status, _, err = bench([tmp_path / "cut.onnx", "-o", tmp_path / "r"], capsys)
    assert (status, err) == (1, f"error: {tmp_path / 'cut.onnx'}: not a readable ONNX model (DecodeError)\n")
    (tmp_path / "empty.onnx").write_bytes(b"")  # it parsed as an FP32 model, then failed in ONNX's checker words
    status, _, err = bench([tmp_path / "empty.onnx", "-o", tmp_path / "r"], capsys)
    assert (status, err) == (1, f"error: {tmp_path / 'empty.onnx'}: not a readable ONNX model (no graph)\n")
    assert not (tmp_path / "r").exists()


def test_fps_vs_size_plot_names_the_sizes_and_draws_every_batch(tmp_path: Path) -> None:
    from cyclegan_edge.bench.report import fps_plot_skipped, fps_vs_size_plot
    from cyclegan_edge.bench.runner import run_benchmark

    rows, _ = run_benchmark(ASSETS_DIR / "photo2monet.onnx", ["onnxruntime-fp32"], [(64, 64), (48, 80)], [1, 2], 2, 1)
    assert fps_plot_skipped(rows) is None
    assert fps_vs_size_plot(rows, tmp_path / "fps.png") == ["48x80", "64x64"]  # smallest pixel count first, H x W
    img = cv2.imread(str(tmp_path / "fps.png"))
    assert img is not None and img.shape[0] > 400 and img.std() > 5
    one = [r for r in rows if (r["height"], r["width"]) == (64, 64)]
    assert "one input size (64x64)" in str(fps_plot_skipped(one))
    stopped = str(fps_plot_skipped(one, asked=2))  # two asked, one measured before a Ctrl-C: not "give two sizes"
    assert "one input size (64x64) measured of the 2 asked for" in stopped and "give --sizes" not in stopped


def test_rounds_take_the_cases_in_turn_and_show_how_far_they_spread() -> None:
    """Two runs of one bench command differed 2x on a case while each looked steady (p90 near p50, no other
    process busy): the machine's speed had changed between them. Rounds taken in turn over all cases time every
    variant under the same conditions, and a case whose rounds' medians spread is said to be unsteady."""
    from cyclegan_edge.bench.report import rounds_spread, timed_unsteady, unsteady_note
    from cyclegan_edge.bench.runner import run_benchmark

    order: list[tuple[str, int]] = []
    rows, _ = run_benchmark(MODEL, ["onnxruntime-fp32", "openvino-fp32"], [(64, 64)], [1], 3, 1, rounds=3,
                            progress=lambda row: order.append((row["variant"], len(row["round_p50_ms"]))))  # fmt: skip
    assert order == [("onnxruntime-fp32", 1), ("openvino-fp32", 1), ("onnxruntime-fp32", 2), ("openvino-fp32", 2),
                     ("onnxruntime-fp32", 3), ("openvino-fp32", 3)]  # in turn, one row per case  # fmt: skip
    for row in rows:
        assert row["iterations"] == len(row["samples_ms"]) == 9 and len(row["round_p50_ms"]) == 3
        lat = row["latency_ms"]
        # round_p50_ms is rounded to 3 decimals, the latencies are not: a round's median can be its minimum
        assert lat["min"] - 5e-4 <= min(row["round_p50_ms"]) <= max(row["round_p50_ms"]) <= lat["max"] + 5e-4
    drifted = dict(rows[0], round_p50_ms=[10.0, 10.5, 21.0], iterations=30)
    drifted["latency_ms"] = dict(drifted["latency_ms"], p50=10.5, p90=11.0)
    assert rounds_spread(drifted) == 2.1 and timed_unsteady(drifted)
    assert "the machine's speed changed during the run in 1 of 1 cases (their rounds' medians 2.10x apart in " \
           "onnxruntime-fp32 64x64 batch 1, over 1.3x); rerun on an idle one" in str(unsteady_note([drifted]))


def test_other_processes_load_is_judged_over_all_rounds_and_said_when_it_cannot_be() -> None:
    """Rounds under a second were each too short to judge others' load, and nothing said so: every row read "not
    busy" (null) at bench's defaults on a 256 px model. The rounds' windows add up now; where they cannot (no psutil,
    or under a second in all) the notes say that the check did not run."""
    from cyclegan_edge.bench.report import unsteady_note
    from cyclegan_edge.bench.runner import add_round

    timed = {"height": 64, "width": 64, "batch": 1, "iterations": 10, "warmup": 5, "samples_ms": [10.0] * 10,
             "latency_ms": {"p50": 10.0}, "timed_window": (0.0, 0.1)}  # fmt: skip
    row: dict = {"variant": "onnxruntime-fp32"}
    add_round(row, timed, (0.3, 0.6))
    assert row["others_busy_cpus"] is None  # 0.6 s: too short alone
    add_round(row, timed, (0.3, 0.6))
    assert row["others_busy_cpus"] == 0.5 and row["round_p50_ms"] == [10.0, 10.0]
    short = add_round({"variant": "openvino-fp32"}, timed, (0.0, 0.2))
    unmeasured = add_round({"variant": "openvino-int8"}, timed, None)  # no psutil
    assert "other processes' load not measured in 1 of 2 cases (timed for under a second in all: more --iters)" in str(
        unsteady_note([row, short]))  # fmt: skip
    assert "(psutil is not installed: pip install 'cyclegan-edge[bench]')" in str(unsteady_note([short, unmeasured]))


MODEL = ASSETS_DIR / "photo2monet.onnx"
QUICK = ["--sizes", "64", "--iters", "2", "--warmup", "1"]


@pytest.mark.parametrize("flags, says", [
    (["--sizes", "abc"], "--sizes abc: bad size 'abc': use 256, HxW or 720p"),
    (["--sizes", "512x"], "--sizes 512x: bad size '512x': use 256, HxW or 720p"),
    (["--sizes", "64x48x32"], "--sizes 64x48x32: bad size '64x48x32': use 256, HxW or 720p"),
    (["--sizes", ","], "--sizes ,: no size given: use 256, HxW or 720p"),
    (["--batches", "two"], "--batches two: use batch sizes of 1 or more, e.g. 1,4"),
    (["--batches", "1,0"], "--batches 1,0: use batch sizes of 1 or more, e.g. 1,4"),
    (["--iters", "0"], "argument --iters: '0' is not allowed: use 1..1000000"),
    (["--warmup", "-1"], "argument --warmup: '-1' is not allowed: use 0..1000000"),
    (["--threads", "-1"], "argument --threads: '-1' is not allowed: use 0..1024"),
    (["--variants", "onnxruntime-fp32,tensorrt"], "unknown variants ['tensorrt']: use pytorch, "),
    (["--variants", "onnxruntime-fp32,openvino-fp32", "--baseline", "openvino"],  # every ratio came out empty
     "--baseline openvino: not one of the variants benched (onnxruntime-fp32, openvino-fp32)"),
])  # fmt: skip
def test_a_wrong_command_line_is_one_usage_line_before_any_work(
    flags: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, stdout, err = bench([MODEL, "-o", tmp_path / "r", *QUICK, *flags], capsys)
    assert (status, stdout, err.count("\n")) == (2, "", 1), err[-2000:]  # no progress bar: nothing was started
    assert err.startswith(f"error: {says}")
    assert not (tmp_path / "r").exists()


def test_the_diff_column_names_the_variant_it_compares_with(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The outputs are compared with the first variant's; the column said "vs --baseline", another variant."""
    out = tmp_path / "r"
    status, _, err = bench([MODEL, "-o", out, *QUICK, "--rounds", "1", "--variants", "onnxruntime-fp32,openvino-fp32",
                            "--baseline", "openvino-fp32"], capsys)  # fmt: skip
    report = load_report(out / "report.json")
    assert status == 0 and (report["baseline"], report["parity_reference"]) == ("openvino-fp32", "onnxruntime-fp32")
    assert "| speed vs openvino-fp32 (p50) | max abs diff vs onnxruntime-fp32 |" in (out / "report.md").read_text()
    diff = {r["variant"]: r["max_abs_vs_reference"] for r in report["results"]}
    assert diff["onnxruntime-fp32"] == 0.0 < diff["openvino-fp32"] < 1e-3, diff
    # and what a difference means to the eye: the worst image's PSNR, "=" for the same outputs
    db = {r["variant"]: r["psnr_vs_reference_db"] for r in report["results"]}
    assert db["onnxruntime-fp32"] is None and (db["openvino-fp32"] is None or db["openvino-fp32"] > 60), db
    table = [ln for ln in (out / "report.md").read_text().splitlines() if ln.startswith("| onnxruntime-fp32")]
    assert table[0].endswith(" | 0.0e+00 | = |"), table
    from cyclegan_edge.bench.runner import psnr_db

    frames = np.zeros((1, 3, 8, 8), np.float32)
    assert psnr_db(frames, frames + 0.5 / 127.5, (8, 8)) is None  # under half a grey level: the same images
    assert psnr_db(frames, frames + 4 / 127.5, (8, 8)) == pytest.approx(20 * np.log10(255 / 4), abs=0.01)  # 4 grey levels


def test_help_says_what_iters_and_warmup_are_with_their_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from cyclegan_edge.bench.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--iters ITERS timed calls per variant, size and batch, in each round (default: 10)" in text
    assert "--rounds ROUNDS rounds taken in turn over all cases: " in text and "(default: 3)" in text
    assert "--warmup WARMUP untimed calls before each round's timed ones (default: 5)" in text
    assert "--sizes SIZES, --size SIZES e.g. 256,512,360x640,720p (default: 256)" in text


def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "h2z.onnx.parity.json"  # a file given where the output folder goes
    taken.write_text("keep me\n")
    d = tmp_path / "d"
    (d / "report.md").mkdir(parents=True)
    said = {taken: f"{taken}: a file, not a folder (bench writes report.json, report.md and plots into a folder)",
            taken / "sub": f"{taken / 'sub'}: cannot write (Not a directory)",
            d: f"{d}: a folder is in the way of {d / 'report.md'}"}  # fmt: skip
    for out, line in said.items():
        assert bench([MODEL, "-o", out, *QUICK], capsys) == (1, "", f"error: --output {line}\n")  # no progress bar
    assert taken.read_text() == "keep me\n" and os.listdir(tmp_path / "d") == ["report.md"]
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for out in (ro, ro / "sub"):  # the folder given, never a hidden temporary file's name
        cmd = [*as_user(), sys.executable, "-m", "cyclegan_edge.bench", str(MODEL), "-o", str(out), *QUICK]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert (r.returncode, r.stdout) == (1, "")
        assert r.stderr == f"error: --output {out}: cannot write (Permission denied)\n"
    # the report's own write (after the measurements) says the same line, should the folder go bad meanwhile
    probe = ("import sys; from pathlib import Path; from cyclegan_edge.bench import report as r\n"
             "from cyclegan_edge.bench.__main__ import save_report\n"
             "for out in map(Path, sys.argv[1:]):\n"
             "    for f in (lambda: r.check_output(out, []), lambda: save_report(out, {'results': []}, [], False)):\n"
             "        try: f()\n"
             "        except r.OutputError as e: print(e)\n")  # fmt: skip
    r = subprocess.run([*as_user(), sys.executable, "-c", probe, str(ro), str(taken)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and lines[0::2] == lines[1::2], r.stdout + r.stderr[-2000:]
    assert os.listdir(ro) == [] and taken.read_text() == "keep me\n"


def test_a_bundled_models_name_is_benched_from_its_checkpoint(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`bench photo2monet` said "no such model file" while `bench pipeline photo2monet` and the runtime took it."""
    status, _, err = bench(["photo2monet", "--variants", "onnxruntime-fp32", "-o", tmp_path / "r", *QUICK], capsys)
    assert status == 0, err[-2000:]
    assert load_report(tmp_path / "r")["model"]["file"] == "photo2monet.pth"


def test_a_second_bench_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    """Two benches into one --output (the second with --overwrite) both said "written"; the folder held the first's
    report only: the second's measurements were lost without a word."""
    import time

    out = tmp_path / "rep"
    first = subprocess.Popen([sys.executable, "-m", "cyclegan_edge.bench", str(MODEL), "--variants", "onnxruntime-fp32",
                              "--sizes", "64", "--iters", "3000", "--rounds", "1", "-o", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / ".report.json.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        second = [sys.executable, "-m", "cyclegan_edge.bench", str(MODEL), "--variants", "onnxruntime-fp32", *QUICK,
                  "-o", str(out), "--overwrite"]  # fmt: skip
        r = subprocess.run(second, capture_output=True, text=True, timeout=120)
    finally:
        first.kill()
        first.wait()
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"error: --output {out}: another process (pid {first.pid}) is benchmarking into it now; wait for it to end, or "
        "give another --output"], r.stderr[-2000:]


def test_pytorch_variants_asked_of_an_onnx_say_why_they_are_skipped(tmp_path: Path) -> None:
    """`bench model.onnx --variants pytorch` said "nothing could be measured (see the notes):" and no note."""
    from cyclegan_edge.bench.runner import prepare_variants

    int8 = ASSETS_DIR / "photo2monet.int8.onnx"  # a given precision (its own path through prepare_variants)
    for model in (MODEL, int8):
        _, notes = prepare_variants(model, ["pytorch", "pytorch-cuda-fp16"], tmp_path, None)
        assert notes[0] == (f"pytorch, pytorch-cuda-fp16 skipped: PyTorch variants run a checkpoint (.pth), not "
                            f"{model.name}"), notes


def test_tensorrt_variants_are_skipped_before_any_build_where_no_gpu_could_run_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cyclegan_edge.bench.runner import gpu_visible, prepare_variants

    if gpu_visible():
        pytest.skip("a CUDA GPU is here: the engines are built and run")
    note = ("tensorrt-fp32, tensorrt-fp16 skipped: no CUDA GPU here to run an engine (neither cuda-python nor PyTorch "
            "sees one); python -m cyclegan_edge.export MODEL --engine OUT.plan builds one")  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    assert prepare_variants(MODEL, ["tensorrt-fp32", "tensorrt-fp16"], work, None) == ([], [note])
    assert os.listdir(work) == []  # neither an FP16 ONNX nor an engine was made for them
    out = tmp_path / "rep"
    status, _, err = bench([MODEL, "--variants", "onnxruntime-fp32,tensorrt-fp32,tensorrt-fp16", "-o", out, *QUICK],
                           capsys)  # fmt: skip
    assert status == 0, err[-2000:]
    report = load_report(out / "report.json")
    assert [r["variant"] for r in report["results"]] == ["onnxruntime-fp32"]
    assert note in report["notes"] and not any("built, not run" in n for n in report["notes"])


def test_tensorrt_variants_are_skipped_before_any_calibration_where_a_gpu_has_no_tensorrt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lent H200 had CUDA and no TensorRT: the report's INT8 calibration for the engines alone cost 45 s
    there (and cut the run off) before the import failed. The GPU is stood in for; the import failure is real."""
    from cyclegan_edge.bench import runner

    calib = need(SHARED_DATA / "horse2zebra" / "trainA")
    monkeypatch.setattr(runner, "gpu_visible", lambda: True)
    for name in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"):
        monkeypatch.setitem(sys.modules, name, None)
    work = tmp_path / "work"
    work.mkdir()
    variants, notes = runner.prepare_variants(MODEL, ["tensorrt-fp32", "tensorrt-int8"], work, str(calib))
    assert variants == [] and len(notes) == 1, notes
    assert notes[0].startswith("tensorrt-fp32, tensorrt-int8 skipped: TensorRT is not importable"), notes
    assert os.listdir(work) == []  # no ONNX export, no FP16 conversion, no INT8 calibration for them


def test_a_busy_machine_is_named_in_the_notes() -> None:
    """A case whose p90 is far above its p50 was measured while something else ran: the report says which, so
    that its 25x 'speed-up' is not taken at face value (a new user's trial on a shared machine)."""
    from cyclegan_edge.bench.report import unsteady_note

    def row(variant: str, p50: float, p90: float, iterations: int = 30) -> dict[str, object]:
        return {"variant": variant, "height": 256, "width": 256, "batch": 1, "iterations": iterations,
                "latency_ms": {"p50": p50, "p90": p90}}  # fmt: skip

    steady = [row("onnxruntime-fp32", 90.0, 97.0), row("openvino-fp32", 60.0, 70.0)]
    assert unsteady_note(steady) is None
    note = unsteady_note([*steady, row("pytorch", 909.0, 2618.0)])
    assert note is not None and note.startswith("unsteady timing in 1 of 3 cases")
    assert "worst pytorch 256x256 batch 1: 2.9x" in note
    both = unsteady_note([*steady, row("pytorch", 909.0, 2618.0), row("onnxruntime-int8", 50.0, 200.0, iterations=3)])
    assert both is not None and both.startswith("unsteady timing in 1 of 4 cases") and (
        "; steadiness not judged in 1 of 4 cases" in both)  # fmt: skip
    few = unsteady_note([*steady, row("pytorch", 909.0, 2618.0, iterations=3)])  # p90 of 3: the slowest
    assert few == ("steadiness not judged in 1 of 3 cases: timed from fewer than 10 calls (as few as 3; --iters), "
                   "too few to tell a busy machine from a steady one; take their ratios as rough")  # fmt: skip


def test_lease_generators_travel_as_float16_parts_and_come_back_as_working_float32(tmp_path: Path) -> None:
    """lease.sh halves each run's generators on the GPU machine and splits one archive into parts (files back
    from it: 16 MiB each at most); lease_unpack.py joins them and restores float32 generators that load."""
    import torch

    from cyclegan_edge.models import build_generator, load_generator, named_config, save_generator

    run, pack, back = tmp_path / "runs" / "s2w", tmp_path / "pack", tmp_path / "back"
    run.mkdir(parents=True)
    torch.manual_seed(0)
    model = build_generator(named_config("mobile", upsample="bilinear"))
    for name in ("G_A2B.pth", "G_B2A.pth"):
        save_generator(run / name, model, {"direction": "A->B"})
    (pack / "s2w").mkdir(parents=True)
    script = str(ROOT / "benchmarks" / "gpu" / "lease_unpack.py")
    r = subprocess.run([sys.executable, script, "--halve", str(run), str(pack / "s2w")], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("packed") == 2, r.stderr
    archive = subprocess.run(["tar", "-czf", "-", "-C", str(pack), "."], capture_output=True, check=True).stdout
    parts = tmp_path / "out"
    parts.mkdir()
    size = len(archive) // 3 + 1  # as split -b makes them
    for i in range(3):
        (parts / f"season.tgz.part-a{'abc'[i]}").write_bytes(archive[i * size : (i + 1) * size])
    r = subprocess.run([sys.executable, script, str(parts), str(back)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (back / "s2w").iterdir()) == ["G_A2B.pth", "G_B2A.pth"]
    loaded = load_generator(back / "s2w" / "G_A2B.pth").model
    for (key, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert b.dtype == a.dtype, key
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4), key  # float16 rounding, no more
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert (model.eval()(x) - loaded.eval()(x)).abs().max() < 0.02
    missing = subprocess.run([sys.executable, script, str(tmp_path / "nothing"), str(back)], capture_output=True,
                             text=True)  # fmt: skip
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: no season.tgz.part-* in {tmp_path / 'nothing'}"


def test_an_edge_install_without_matplotlib_gets_its_report_without_plots(tmp_path: Path) -> None:
    """[runtime] brings no matplotlib: bench says so before measuring and writes the report without plots
    (it measured every case, then failed on the plots, and a rerun was refused: the folder held a report)."""
    shadow = tmp_path / "nomatplotlib" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n")
    out = tmp_path / "rep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), str(ROOT)])}
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.bench", str(MODEL), "--variants", "onnxruntime-fp32",
                        *QUICK, "-o", str(out)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    warning = ("WARNING no plots: matplotlib is not installed here (pip install 'cyclegan-edge[bench]' draws "
               "latency.png and fps_vs_size.png); the table has every figure")  # fmt: skip
    assert r.stderr.splitlines()[0] == warning, r.stderr[-2000:]
    report = load_report(out / "report.json")
    assert report["results"][0]["variant"] == "onnxruntime-fp32" and warning[8:] in report["notes"]
    assert sorted(os.listdir(out)) == ["report.json", "report.md"]
    assert r.stdout.rstrip().endswith(f"written: {out}/report.json, report.md")


def test_an_edge_install_without_onnx_benches_what_it_can(tmp_path: Path) -> None:
    """[runtime] has no onnx package: bench failed on the FP16 variant it derives (one line naming [engine]) and
    measured nothing. It now measures the FP32 model's variants and says which were skipped."""
    shadow = tmp_path / "noonnx" / "onnx"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'onnx'\", name='onnx')\n")
    out = tmp_path / "rep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), str(ROOT)])}
    variants = "onnxruntime-fp32,onnxruntime-fp16,onnxruntime-int8"
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.bench", str(MODEL), "--variants", variants, "--calib",
                        str(ASSETS_DIR / "images"), *QUICK, "-o", str(out)], cwd=tmp_path, capture_output=True,
                       text=True, env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    report = load_report(out / "report.json")
    assert [row["variant"] for row in report["results"]] == ["onnxruntime-fp32"]
    assert ("onnxruntime-fp16, onnxruntime-int8 skipped: making FP16/INT8 models from the ONNX needs the onnx "
            "package (pip install 'cyclegan-edge[engine]')") in report["notes"]


def test_a_bad_calibration_image_is_reported_once_per_read(tmp_path: Path) -> None:
    """Both INT8 variants calibrated from the folder, each reading it (and warning about the same bad file) again;
    the parity frames are a read of their own (the first images only)."""
    calib = tmp_path / "calib"
    calib.mkdir()
    for p in (ASSETS_DIR / "images").glob("*.jpg"):
        shutil.copy(p, calib)
    (calib / "broken.jpg").write_bytes((ASSETS_DIR / "images" / "coffee.jpg").read_bytes()[:300])
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.bench", str(MODEL), "--variants",
                        "onnxruntime-int8,openvino-int8", "--calib", str(calib), *QUICK, "-o", str(tmp_path / "rep")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    said = [ln for ln in r.stderr.splitlines() if ln.startswith(f"WARNING skipped: {calib / 'broken.jpg'}")]
    assert len(said) == 2, r.stderr[-2000:]  # parity frames, calibration
    # the two INT8 rows are two models (two placements), calibrated on what (the 3 photos that read): said now
    notes = load_report(tmp_path / "rep")["notes"]
    assert (f"INT8 calibrated on 3 images of {calib}; onnxruntime-int8 the TensorRT placement (export --target "
            "tensorrt), openvino-int8 the CPU one (--target cpu): two INT8 models, not one") in notes


def test_pipeline_says_when_size_upscales_the_video(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """bench pipeline --size 2160 on a 720p clip measured an upscaled conversion without the word the runtime says."""
    args = ["pipeline", MODEL, "--video", ASSETS_DIR / "demo.mp4", "--size", "512", "--max-frames", "2", "-o",
            tmp_path / "p.json"]  # fmt: skip
    status, _, err = bench(args, capsys)
    said = [r.getMessage() for r in caplog.records if "upscaled" in r.getMessage()]
    assert status == 0 and said == ["demo.mp4: --size 512 is 2.1x the source's shorter side (240 px): the model runs "
                                    "on an upscaled frame, slower and with no detail gained; --size 240 or less (or "
                                    "none) avoids it"], (said, err[-1000:])  # fmt: skip


def test_pipeline_keeps_an_earlier_measurement_unless_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pipeline.json"
    args = ["pipeline", MODEL, "--video", ASSETS_DIR / "demo.mp4", "--size", "64", "--max-frames", "4", "-o", out]
    status, stdout, err = bench(args, capsys)
    assert status == 0 and json.loads(out.read_text())["frames"] == 4, err[-2000:]
    first = out.read_bytes()
    assert bench([*args[:-4], "--max-frames", "2", "-o", out], capsys) == (
        1, "", f"error: --output {out} holds a measurement already: --overwrite replaces it, or give another --output\n")
    assert out.read_bytes() == first
    status, _, err = bench([*args[:-4], "--max-frames", "2", "-o", out, "--overwrite"], capsys)
    assert status == 0 and json.loads(out.read_text())["frames"] == 2, err[-2000:]
    said = f"error: --output {tmp_path}: a folder, not a file (the result is one JSON file); nothing measured\n"
    assert bench([*args[:-2], "-o", tmp_path], capsys) == (1, "", said)


def test_pipeline_measures_what_the_runtime_runs_on_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bench pipeline opened its backend with the library's defaults (OpenVINO f32, one stream) where the runtime
    converts a file with its own (precision auto: bf16 on CPUs that run it natively; two streams in flight): the
    figures were not a conversion's. Now both name the same backend, and inference alone keeps as many frames in
    flight as the pipeline does."""
    from cyclegan_edge.runtime.__main__ import main as runtime_main
    from cyclegan_edge.runtime.backends import FILE_STREAMS

    pytest.importorskip("openvino")
    video = ASSETS_DIR / "demo.mp4"
    assert runtime_main([str(video), str(tmp_path / "out.mp4"), "--model", str(MODEL), "--size", "64",
                         "--max-frames", "4"]) == 0  # fmt: skip
    ran = capsys.readouterr().out.splitlines()[0]  # "4 frames -> ... (model M, BACKEND)"
    out = tmp_path / "pipeline.json"
    args = ["pipeline", MODEL, "--video", video, "--size", "64", "--max-frames", "8", "-o", out]
    status, _, err = bench(args, capsys)
    result = json.loads(out.read_text())
    assert status == 0 and result["frames"] == 8, err[-2000:]
    assert ran.endswith(f", {result['backend']})"), (ran, result["backend"])
    assert result["streams"] == FILE_STREAMS and result["in_flight"] == 2 and result["inference_fps"] > 0


def test_pipeline_says_when_other_processes_kept_the_machine_busy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """A steady load beside the measurement slows every frame alike, so no spread showed it: two busy loops on this
    2-core machine moved the ratio from 0.72 to 0.85 without a word. Now the CPUs other processes kept busy are
    measured (psutil) and named; a live source, whose dropped frames make the ratio meaningless, is refused."""
    from cyclegan_edge.bench.pipeline_bench import OtherLoad, unsteady_pipeline_note

    pytest.importorskip("psutil")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        load = OtherLoad()
        time.sleep(2)  # this process idle: the loop has a CPU of its own
        others = load.cpus()
        out = tmp_path / "pipeline.json"
        args = ["pipeline", MODEL, "--video", ASSETS_DIR / "demo.mp4", "--size", "232", "-o", out]  # over a second
        status, _, err = bench(args, capsys)
        latency = bench([MODEL, "--variants", "onnxruntime-fp32,openvino-fp32", "--sizes", "32,256", "--iters", "40",
                         "--threads", "2", "-o", tmp_path / "report"], capsys)  # fmt: skip
    finally:
        busy.kill()
        busy.wait()
    assert others is not None and others > 0.8, others
    result = json.loads(out.read_text())
    assert status == 0 and result["others_busy_cpus"] > 0.25 and result["unsteady"].startswith("a busy machine: "), (
        result["others_busy_cpus"], err[-2000:])
    assert result["unsteady"] in [r.getMessage() for r in caplog.records]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    # A case timed over less than a second is not judged (the counters tick in 10 ms steps, and an idle machine
    # read as busy): 40 calls at 32 px, unless the machine is loaded beyond the loop; at 256 px, over a second each
    from cyclegan_edge.bench.load import MIN_WINDOW_S, OTHERS_BUSY_CPUS, cpus_over

    rows = report["results"]
    timed_s = [r["iterations"] * r["latency_ms"]["mean"] / 1e3 for r in rows]  # a little under each window
    assert latency[0] == 0
    assert all(r["others_busy_cpus"] is not None for r, t in zip(rows, timed_s) if t >= MIN_WINDOW_S)
    assert all(r["others_busy_cpus"] is None for r, t in zip(rows, timed_s) if t < MIN_WINDOW_S / 2), (
        [(t, r["others_busy_cpus"]) for r, t in zip(rows, timed_s)])
    assert cpus_over((0.9 * MIN_WINDOW_S, 0.9 * MIN_WINDOW_S)) is None  # not judged, however busy
    assert all(r["others_busy_cpus"] > OTHERS_BUSY_CPUS for r in rows if r["height"] == 256), latency[2][-2000:]
    busy = sum((r["others_busy_cpus"] or 0) > OTHERS_BUSY_CPUS for r in rows)
    assert any(n.startswith(f"a busy machine in {busy} of 4 cases: other processes (or virtual machines) kept up to ")
               for n in report["notes"]), report["notes"]  # fmt: skip
    assert unsteady_pipeline_note(0.2) is None and unsteady_pipeline_note(None) is None  # idle; not judged
    status, stdout, err = bench(["pipeline", MODEL, "--video", "test://?fps=30", "-o", tmp_path / "x.json"], capsys)
    assert (status, stdout) == (2, "") and err.startswith("error: --video test://?fps=30: a live source drops"), err
    assert not (tmp_path / "x.json").exists()


def test_a_stopped_pipeline_measurement_is_not_written(tmp_path: Path) -> None:
    """Ctrl-C while bench pipeline converted: the pipeline stopped early (as a conversion does), then bench timed
    inference on the frames it had, wrote the JSON and said 'written' with exit 0: a result over a part of the
    video that reads as whole."""
    import time

    out = tmp_path / "pipeline.json"
    cmd = [sys.executable, "-m", "cyclegan_edge.bench", "pipeline", str(MODEL), "--video", str(need(STREET_VIDEO)),
           "--size", "256", "-o", str(out)]  # fmt: skip
    start = time.time()
    status, stdout, err = interrupt_when(cmd, lambda: time.time() > start + 5)
    assert status == 130 and "written" not in stdout, (stdout, err[-2000:])
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_gpu_named_is_the_one_cuda_visible_devices_gives_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """machine info named nvidia-smi's first GPU, which a shard run with CUDA_VISIBLE_DEVICES=3 does not use."""
    from cyclegan_edge.machine import visible_gpu

    for value, args in (("3", ["-i", "3"]), ("GPU-8f2a,1", ["-i", "GPU-8f2a"]), ("", []), ("-1", [])):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        assert visible_gpu() == args, value
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpu() == []


def test_tegrastats_power_is_each_cases_own(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """--tegrastats averaged the power over the whole run (building variants, calibration, every variant) into one
    figure that described no variant. Each case now gets the mean over its own timed calls, and its energy per
    frame. No Jetson here: a stand-in prints real Xavier lines whose input rail counts up, 50 a second."""
    fake = tmp_path / "bin" / "tegrastats"
    fake.parent.mkdir()
    line = XAVIER_JP4.replace("VDD_IN 14025/14416", "VDD_IN {0}/{0}")
    fake.write_text(f"#!{sys.executable}\nimport sys, time\ni = 0\nwhile True:\n"
                    f"    print({line!r}.format(10000 + i), flush=True)\n    i += 1\n"
                    "    time.sleep(0.02)\n")  # fmt: skip
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "r"
    status, stdout, err = bench([MODEL, "-o", out, "--variants", "onnxruntime-fp32,openvino-fp32", "--sizes", "64",
                                 "--iters", "40", "--warmup", "1", "--rounds", "1", "--tegrastats"],
                                capsys)  # fmt: skip
    assert status == 0, err[-2000:]
    report = load_report(out / "report.json")
    first, second = report["results"]
    for r in report["results"]:
        assert 10000 <= r["power_mw"] < 11000, r["power_mw"]
        assert r["energy_mj_per_frame"] == round(r["power_mw"] * r["latency_ms"]["p50"] / 1000, 2)
    assert first["power_mw"] < second["power_mw"]  # timed later: a later count, not one mean for both
    assert " W | mJ/frame |" in stdout and f" {first['power_mw'] / 1000:.2f} | " in stdout
    assert report["power"]["samples"] > 0 and "the whole run's mean, builds included: " in stdout
