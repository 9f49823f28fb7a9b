from __future__ import annotations

import inspect
import os
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import ONE_THREAD, interrupt_when
from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.export.onnx_export import export_onnx
from cyclegan_edge.imaging.frames import frames_to_tensor, tensor_to_frame
from cyclegan_edge.models import load_generator
from cyclegan_edge.runtime.backends import BackendError, BackendOptions, OnnxRuntimeBackend, open_backend
from cyclegan_edge.runtime.batch import convert_folder
from cyclegan_edge.runtime.pipeline import Pipeline, PipelineOptions, output_size
from cyclegan_edge.runtime.sinks import MemorySink, MultiSink, OutputExists, VideoFileSink
from cyclegan_edge.runtime.sources import SourceError, frame_sequence_number, glob_root, open_source, parse_source
from cyclegan_edge.trt.loader import TensorRTUnavailable, import_tensorrt

ENV = {**os.environ, **ONE_THREAD}


@pytest.fixture(scope="module")
def h2z_onnx(compressed_g_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(load_generator(compressed_g_path), tmp_path_factory.mktemp("m") / "h2z.onnx")


@pytest.fixture(scope="module")
def backend(h2z_onnx: Path) -> OnnxRuntimeBackend:
    b = open_backend(h2z_onnx, BackendOptions(threads=1, backend="onnxruntime"))
    assert isinstance(b, OnnxRuntimeBackend)
    return b


def video_info(path: Path) -> tuple[int, float, int, int]:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    info = (n, cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    return info


def test_parse_source() -> None:
    assert parse_source("0").kind == "camera" and parse_source("0").live
    assert parse_source("/dev/video2").kind == "camera"
    assert parse_source("csi://1").target == "1" and parse_source("csi://1").kind == "csi"
    assert parse_source("rtsp://cam/stream").kind == "stream"
    assert parse_source("RTSP://Cam/Stream") == parse_source("rtsp://Cam/Stream")  # was a file: "no such file"
    assert parse_source("Test://?frames=2").kind == "test" and parse_source("UDP://@:5000").kind == "stream"
    assert parse_source("clip.mp4") == parse_source("clip.mp4") and not parse_source("clip.mp4").live


def test_parse_source_file_kinds(tmp_path: Path) -> None:
    """Images, folders and globs are not frame streams: the runtime hands them to the batch converter."""
    (tmp_path / "a[1].jpg").write_bytes(b"")
    kinds = {uri: parse_source(uri) for uri in ("clip.mp4", "x.JPG", str(tmp_path), "frames/", "in/**/*.png",
                                                 str(tmp_path / "a[1].jpg"))}  # fmt: skip
    assert [s.kind for s in kinds.values()] == ["file", "image", "folder", "folder", "glob", "image"]
    assert [s.is_stream for s in kinds.values()] == [True, False, False, False, False, False]
    assert glob_root("in/**/*.png") == Path("in") and glob_root("*.jpg") == Path(".")
    assert glob_root("/data/a/img_??.png") == Path("/data/a")
    with pytest.raises(SourceError, match="converted file by file"):
        open_source(str(tmp_path))


def test_street_video_end_to_end(street_video: Path, backend: OnnxRuntimeBackend, tmp_path: Path) -> None:
    """Every frame converted, same count, fps and size; encoded frames are the backend's output."""
    source = open_source(str(street_video))
    opts = PipelineOptions(size=128)
    out = tmp_path / "street.mp4"
    memory = MemorySink()
    stats = Pipeline(source, backend, MultiSink([VideoFileSink(out, source.fps, output_size(source.size, opts)), memory]),
                     opts).run()  # fmt: skip
    source.close()
    assert stats.error is None and stats.dropped == 0
    n_in, fps_in, w_in, h_in = video_info(street_video)
    assert stats.frames_out == n_in == 377
    assert video_info(out) == (n_in, fps_in, w_in, h_in)
    # frame 100, converted directly: resize to the inference size, backend, resize back
    cap = cv2.VideoCapture(str(street_video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    frame = cap.read()[1]
    cap.release()
    ih, iw = 128, 228
    small = cv2.resize(frame, (iw, ih), interpolation=cv2.INTER_AREA)
    direct = tensor_to_frame(backend.infer(frames_to_tensor([small])), (ih, iw))
    direct = cv2.resize(direct, (w_in, h_in), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(memory.frames_list[100], direct)
    assert not list(tmp_path.glob(".*partial*"))


def test_live_source_drops_stale_frames_with_bounded_latency(backend: OnnxRuntimeBackend, margin: Any) -> None:
    # 100 fps camera stand-in; inference at 240x320 takes far longer than 10 ms on this CPU.
    source = open_source("test://?fps=100&size=320x240&frames=150")
    memory = MemorySink()
    in_flight: list[int] = []
    pipeline = Pipeline(source, backend, memory, PipelineOptions(side_by_side=True),
                        on_frame=lambda s: in_flight.append(s.frames_in - s.frames_out - pipeline.q_capture.dropped))
    stats = pipeline.run()
    infer_ms = float(np.mean(stats.stage_ms["infer"]))
    assert infer_ms > 10
    assert stats.dropped > 0 and stats.frames_in == 150
    assert stats.frames_out + stats.dropped == stats.frames_in
    seqs = [frame_sequence_number(f) for f in memory.frames_list]  # left half holds the source frame
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # Stages hold at most one frame each (a slot and a queue of one before each of 4 stages, and the one the capture
    # thread holds): frames never pile up, whatever the machine's load (at 100 fps, queues that kept every frame
    # would hold about 100 by the end)
    assert margin("most frames in flight", max(in_flight), "<=", 9) <= 9, in_flight
    # so latency stays a few inferences long, never grows (its maximum: one stall of a loaded machine decides it)
    late = stats.latencies_ms[len(stats.latencies_ms) // 2 :]
    bound = 6 * infer_ms + 200
    assert margin("median live latency ms, second half", np.median(late), "<", bound) < bound, (late, infer_ms)


@pytest.mark.parametrize(("query", "named"), [
    ("size=320", "size=320"), ("size=axb", "size=axb"), ("size=4x4", "size=4x4"), ("fps=abc", "fps=abc"),
    ("fps=nan", "fps=nan"), ("fps=0", "fps=0"), ("frames=-1", "frames=-1"), ("x=1", "unknown parameter 'x'")])
def test_a_bad_test_source_names_its_value(query: str, named: str) -> None:
    """It said Python's words ("not enough values to unpack (expected 2, got 1)", "could not convert string ...")."""
    with pytest.raises(SourceError) as bad:
        open_source(f"test://?{query}")
    assert str(bad.value) == (f"test://?{query}: bad test source ({named}); use test://?fps=1..1000&size=WxH "
                              "(8..7680 each)&frames=N (0: endless)")  # fmt: skip


def test_a_test_camera_read_late_skips_ahead_on_its_clock() -> None:
    """test:// stamps a frame when it was due (a camera's exposure), on its 1/fps clock: read late, it skips ahead
    as a camera's clock runs on. Without that its stamps fell further behind the reads (1080p at 60 fps read at 24:
    the last of 20 frames stamped 0.32 s in, read at 0.82 s), and a live run's FPS and latency were made up."""
    source = open_source("test://?fps=100&size=64x48&frames=5")
    stamps = []
    for pause in (0, 0, 0.25, 0, 0.05):
        time.sleep(pause)
        source.read()
        now = time.perf_counter()
        stamps.append(source.captured_at(now))
        assert now - 0.01 - 0.005 <= stamps[-1] <= now, (now, stamps[-1])  # within an interval (and a sleep's slack)
    steps = np.diff(stamps) / 0.01
    assert np.allclose(steps, np.round(steps), atol=1e-6) and steps[0] == pytest.approx(1) and steps[1] >= 24, steps


def test_max_frames_counts_the_frames_a_live_source_writes(backend: OnnxRuntimeBackend) -> None:
    """--max-frames 20 on a camera wrote fewer than 20 frames: the stale frames it dropped were counted too."""
    source = open_source("test://?fps=100&size=320x240")  # endless; inference takes far longer than 10 ms
    memory = MemorySink()
    stats = Pipeline(source, backend, memory, PipelineOptions(max_frames=20)).run()
    assert stats.dropped > 0 and not stats.interrupted and stats.error is None
    assert stats.frames_out == len(memory.frames_list) == 20


def test_file_source_drops_nothing(backend: OnnxRuntimeBackend, tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(30):
        w.write(np.full((48, 64, 3), i * 8, np.uint8))
    w.release()
    source = open_source(str(clip))
    memory = MemorySink()
    stats = Pipeline(source, backend, memory).run()
    assert stats.frames_in == stats.frames_out == 30 and stats.dropped == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_sigint_leaves_playable_partial_output(sig: int, street_video: Path, h2z_onnx: Path, tmp_path: Path) -> None:
    """Ctrl-C, and SIGTERM (`timeout`, `docker stop`, systemd) alike: the video is finalized where it stopped."""
    out = tmp_path / "cut.mp4"
    partial = tmp_path / ".cut.partial.mp4"
    cmd = [sys.executable, "-m", "cyclegan_edge.runtime", "--engine", str(h2z_onnx), "--video", str(street_video),
           "--output", str(out), "--headless"]  # fmt: skip
    rc, said, err = interrupt_when(cmd, lambda: partial.exists() and partial.stat().st_size > 20_000, ENV, sig=sig)
    assert rc == (130 if sig == signal.SIGINT else 143), err
    n, fps, w, h = video_info(out)
    assert 0 < n < 377 and (w, h) == (768, 432) and fps == 12.5
    assert f"stopped: {n} frames written to {out}" in err and "the same command continues it" in err
    assert f"-> {out}" not in said  # no line that reads as a finished conversion
    assert not partial.exists()
    av = pytest.importorskip("av")  # every frame up to the stop, none missing in the middle (a resume cannot see a gap)
    with av.open(str(out)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert len(times) == n and np.allclose(np.diff(times), 1 / 12.5, atol=1e-3), np.diff(times).max()
    with av.open(str(out)) as c:  # the sound stops where the picture does (the source is read ahead of it)
        audio = [p for p in c.demux(c.streams.audio[0]) if p.pts is not None]
        audio_end = max(float((p.pts + p.duration) * p.time_base) for p in audio)
    video_end = times[-1] + 1 / 12.5
    assert abs(audio_end - video_end) < 0.05, (audio_end, video_end)


class FailingBackend:
    """The real ONNX Runtime backend, made to fail at frame N (an exception inside inference)."""

    def __init__(self, inner: OnnxRuntimeBackend, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls, self.name = inner, fail_at, 0, "failing"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls > self.fail_at:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.inner.infer(batch)

    def close(self) -> None:
        pass


class SlowBackend:
    """The real ONNX Runtime backend, made slow (seconds a call) from call N on: a large frame on a CPU."""

    def __init__(self, inner: Any, seconds: float, from_call: int = 1) -> None:
        self.inner, self.seconds, self.from_call, self.calls, self.name = inner, seconds, from_call, 0, "slow"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls >= self.from_call:
            time.sleep(self.seconds)
        return self.inner.infer(batch)

    def close(self) -> None:
        pass


def test_a_live_frame_waits_for_one_inference_at_most(backend: OnnxRuntimeBackend, margin: Any) -> None:
    """A camera through a model slower than its frame rate: the pre-processing stage took each frame at once and
    held it until the inference queue had room, so a frame waited out two inferences before its own (latency p50
    392 ms for 60 ms inferences, a 720p test camera with --size 256 on 2 cores). It takes the newest frame only
    once there is room now: one inference waited at most. Here inference takes 0.3 s (a sleep: no machine load
    moves it), the rest well under 10 ms at 64x48."""
    source = open_source("test://?fps=100&size=64x48&frames=300")
    stats = Pipeline(source, SlowBackend(backend, 0.3), MemorySink(), PipelineOptions()).run()
    late = statistics.median(stats.latencies_ms[2:])
    assert stats.frames_out >= 6 and margin("median live latency ms, 0.3 s inferences", late, "<", 750) < 750, (
        stats.latencies_ms)  # its own inference and at most one before it (and the rest); 900 ms and more before


def test_a_finite_live_source_writes_its_last_frame(backend: OnnxRuntimeBackend) -> None:
    """A live source's end replaced its last frame in the one-frame mailbox: a camera clip of 10 frames through a
    slow model wrote frames 0, 1, 2, 6 and never 9 (a UDP sender that stops: the recording ended a frame early)."""
    source = open_source("test://?fps=30&size=64x64&frames=10")
    sink = MemorySink()
    try:
        stats = Pipeline(source, SlowBackend(backend, 0.2), sink, PipelineOptions(side_by_side=True)).run()
    finally:
        source.close()
    written = [frame_sequence_number(f) for f in sink.frames_list]  # the source half keeps its number
    assert stats.error is None and written[-1] == 9 and stats.frames_out + stats.dropped == 10, (written, stats)


SIGNALLED = """
import os, signal, sys, threading, time
from typing import Any
import numpy as np
from cyclegan_edge.runtime.backends import BackendOptions, OnnxRuntimeBackend
{slow_backend}
from pathlib import Path
real = OnnxRuntimeBackend(Path({model!r}), BackendOptions(threads=1))
for at in {signal_at!r}:
    threading.Timer(at, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
"""


def run_signalled(script: str, signal_at: tuple[float, ...], cwd: Path,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``script`` in a fresh Python that has ``real`` (ONNX Runtime on the bundled model) and SlowBackend, with a
    Ctrl-C sent to itself at each of ``signal_at`` seconds (SIGINT as a terminal sends it)."""
    model = str(ASSETS_DIR / "photo2monet.onnx")
    head = SIGNALLED.format(slow_backend=inspect.getsource(SlowBackend), model=model, signal_at=signal_at)
    return subprocess.run([sys.executable, "-c", head + textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, **ONE_THREAD, **(env or {})},
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip


def test_a_second_ctrl_c_while_a_stage_is_busy_still_closes_the_output(tmp_path: Path) -> None:
    """Ctrl-C, then Ctrl-C again while the pipeline waited for a slow frame: the KeyboardInterrupt skipped closing
    the output (OpenCV's writer: a 0-byte partial file, the 19 frames written lost). The second one now ends the
    wait; the output is closed all the same."""
    r = run_signalled(f"""
        from cyclegan_edge.runtime import pipeline
        from cyclegan_edge.runtime.pipeline import Pipeline, PipelineOptions
        from cyclegan_edge.runtime.sinks import VideoFileSink
        from cyclegan_edge.runtime.sources import open_source

        class CtrlCTwiceInAFrame(SlowBackend):  # Ctrl-C at its 20th frame (which takes 4 s), and again (below)
            def infer(self, batch):
                if self.calls + 1 == self.from_call:
                    os.kill(os.getpid(), signal.SIGINT)
                return super().infer(batch)

        waiting = pipeline.wait_for_stages
        def ctrl_c_again(threads, leave):  # once the pipeline waits for that frame alone, however loaded the machine
            while sum(th.is_alive() for th in threads) > 1:
                threading.Event().wait(0.01)
            os.kill(os.getpid(), signal.SIGINT)
            return waiting(threads, leave)
        pipeline.wait_for_stages = ctrl_c_again

        source = open_source({str(ASSETS_DIR / "demo.mp4")!r})
        sink = VideoFileSink("out.avi", source.fps, source.size)
        stats = Pipeline(source, CtrlCTwiceInAFrame(real, 4.0, from_call=20), sink, PipelineOptions(size=64)).run()
        print(stats.frames_out, stats.interrupted, stats.stuck)
    """, (), tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    frames, interrupted, stuck = r.stdout.split(maxsplit=2)
    assert interrupted == "True" and stuck.strip() == "['infer']" and 0 < int(frames) <= 19, r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.avi"]
    assert video_info(tmp_path / "out.avi")[0] == int(frames)  # what was written, closed whole


def test_ctrl_c_before_a_live_sources_first_frame_is_a_stop_not_an_error(tmp_path: Path) -> None:
    """Ctrl-C on a camera while the model's first frame was still running said "error: nothing written: all 24
    frames of the source came while the model was busy and were dropped as stale", exit 1."""
    r = run_signalled("""
        import cyclegan_edge.runtime.__main__ as runtime

        class CtrlCInFirstFrame(SlowBackend):  # Ctrl-C 1 s into the first frame (it takes 3 s), however loaded
            def infer(self, batch):
                if self.calls == 0:
                    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
                return super().infer(batch)

        runtime.open_backend = lambda *args, **kwargs: CtrlCInFirstFrame(real, 3.0)
        sys.exit(runtime.main(["test://?fps=30&size=64x64", "out.mp4", "--headless"]))
    """, (), tmp_path)
    assert r.returncode == 130 and r.stderr.strip().splitlines()[-1] == (
        "stopped before the first frame: nothing written to out.mp4"), r.stderr[-2000:]
    assert not list(tmp_path.iterdir())


def test_an_unexpected_error_in_a_stage_shows_its_traceback_when_asked(tmp_path: Path) -> None:
    """A bug in a stage (here the backend) was said without "unexpected", and CYCLEGAN_EDGE_TRACEBACK=1 showed no
    traceback: the pipeline kept only its line. It now goes the one error path every command's errors go."""
    script = """
        import cyclegan_edge.runtime.__main__ as runtime
        class Broken(SlowBackend):
            def infer(self, batch): return batch.no_such_thing
        runtime.open_backend = lambda *args, **kwargs: Broken(real, 0.0)
        sys.exit(runtime.main(["test://?frames=3&size=64x48", "out.mp4", "--headless"]))
    """
    said = run_signalled(script, (), tmp_path)
    assert said.returncode == 1 and said.stderr.strip().splitlines()[-1] == (
        "error: AttributeError: 'numpy.ndarray' object has no attribute 'no_such_thing' (unexpected; "
        "CYCLEGAN_EDGE_TRACEBACK=1 shows the traceback)"), said.stderr[-2000:]
    shown = run_signalled(script, (), tmp_path, {"CYCLEGAN_EDGE_TRACEBACK": "1"})
    assert shown.returncode == 1 and "Traceback" in shown.stderr and "in infer" in shown.stderr, shown.stderr[-2000:]


def test_a_sink_that_fails_to_close_does_not_leave_the_others_unfinished(backend: OnnxRuntimeBackend,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    """A recording beside a stream (-o rtsp://... plus a file): the stream's close failing left the recording in
    its hidden partial file, never finished. Every sink is closed now; the first failure is the run's error."""
    from cyclegan_edge.runtime.sinks import SinkError

    class FailsToClose(MemorySink):  # a stream whose server went away at the end
        def close(self) -> None:
            raise SinkError("rtsp://cam/out: closing the stream failed (Broken pipe)")

    source = open_source("test://?frames=5&size=64x48&fps=50")
    out = tmp_path / "recording.avi"
    try:
        sinks = MultiSink([FailsToClose(), VideoFileSink(out, source.fps, source.size)])
        stats = Pipeline(source, backend, sinks, PipelineOptions()).run()
    finally:
        source.close()
    assert stats.error == "rtsp://cam/out: closing the stream failed (Broken pipe)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recording.avi"] and video_info(out)[0] == stats.frames_out


def test_a_read_that_never_returns_is_left_and_the_output_closed(backend: OnnxRuntimeBackend, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A camera whose read hangs after the last frame wanted (a stalled driver; here a source that blocks): the
    pipeline waited for its capture stage without end, from a thread where no Ctrl-C can reach it. It is left
    after STAGES_LEFT_AFTER_S now, named, and the output closed whole."""
    from cyclegan_edge.runtime import pipeline
    from cyclegan_edge.runtime.sources import Source

    monkeypatch.setattr(pipeline, "STAGES_LEFT_AFTER_S", 1.0)
    hang, written, hanging = threading.Event(), threading.Event(), threading.Event()

    class Stalls(Source):  # frames until three are written (a live source drops some on a busy machine), then a
        name, live, fps, size, frame_count = "stalling camera", True, 30.0, (48, 64), 0  # read that never returns

        def __init__(self) -> None:
            self.n = 0

        def read(self) -> np.ndarray | None:
            time.sleep(1 / 30)
            if written.is_set():
                hanging.set()
                hang.wait(60)  # a driver stuck in the kernel
            self.n += 1
            return np.full((48, 64, 3), 5 * self.n, np.uint8)

    def stuck_at_the_third(stats: Any) -> None:  # the read hangs before the pipeline stops (it could end first)
        if stats.frames_out >= 3:
            written.set()
            hanging.wait(5)

    out = tmp_path / "camera.avi"
    done: list[Any] = []
    source = Stalls()
    worker = threading.Thread(target=lambda: done.append(Pipeline(
        source, backend, VideoFileSink(out, source.fps, source.size, live=True), PipelineOptions(max_frames=3),
        on_frame=stuck_at_the_third).run()))  # fmt: skip
    worker.start()
    worker.join(20)
    hang.set()
    assert done, "the pipeline still waits for its capture stage"
    assert done[0].stuck == ["capture"] and done[0].error is None and video_info(out)[0] == done[0].frames_out > 0


def test_exception_in_inference_keeps_converted_frames(street_video: Path, backend: OnnxRuntimeBackend,
                                                       tmp_path: Path) -> None:  # fmt: skip
    source = open_source(str(street_video))
    out = tmp_path / "fail.mp4"
    opts = PipelineOptions(size=64)
    stats = Pipeline(source, FailingBackend(backend, 20), VideoFileSink(out, source.fps, source.size), opts).run()
    source.close()
    assert stats.error is not None and "illegal memory access" in stats.error
    n, _, w, h = video_info(out)
    assert n == stats.frames_out and 0 < n <= 20 and (w, h) == (768, 432)


def test_opencv_writer_replaces_an_earlier_file_with_a_whole_conversion_only(
        street_video: Path, backend: OnnxRuntimeBackend, tmp_path: Path) -> None:  # fmt: skip
    """OpenCV's writer (.avi, or no PyAV) under --overwrite renamed whatever it had written over the earlier file:
    a run stopped or failed halfway left 31 frames where a whole conversion had been. The earlier file now stays,
    the stopped conversion's frames in the partial file (named); a whole conversion replaces it."""
    from cyclegan_edge.runtime.__main__ import continue_hint

    out = tmp_path / "out.avi"

    def convert(b: Any) -> tuple[VideoFileSink, Any]:
        source = open_source(str(street_video))
        try:
            sink = VideoFileSink(out, source.fps, source.size)
            return sink, Pipeline(source, b, sink, PipelineOptions(size=64, max_frames=30)).run()
        finally:
            source.close()

    first, stats = convert(backend)
    assert stats.error is None and not first.held_back and video_info(out)[0] == 30
    before = out.read_bytes()
    failed, stats = convert(FailingBackend(backend, 10))
    assert stats.error is not None and out.read_bytes() == before
    assert failed.held_back == str(tmp_path / ".out.partial.avi") and video_info(Path(failed.held_back))[0] > 0
    hint = continue_hint(failed, True)
    assert hint == "the earlier output is kept as it was; --overwrite converts again from the start", hint
    again, stats = convert(backend)  # the next run starts again in the partial file, and replaces the earlier one
    assert stats.error is None and not again.held_back and video_info(out)[0] == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.avi"]


def test_overwrite_replaces_a_frame_folder_with_a_whole_conversion_only(
        street_video: Path, backend: OnnxRuntimeBackend, tmp_path: Path) -> None:  # fmt: skip
    """--overwrite into a folder of frames wrote the new frames over the first ones and left the rest: 5 new
    frames, then 67 of the earlier run's. A whole conversion now replaces them all; a failed one leaves them."""
    from cyclegan_edge.runtime.sinks import open_output

    frames = tmp_path / "frames"

    def convert(b: Any, count: int, overwrite: bool) -> tuple[Any, Any]:
        source = open_source(str(street_video))
        try:
            sink = open_output(str(frames), source.fps, source.size, source=source, overwrite=overwrite)
            return sink, Pipeline(source, b, sink, PipelineOptions(size=64, max_frames=count)).run()
        finally:
            source.close()

    assert convert(backend, 6, False)[1].error is None
    earlier = {p.name: p.read_bytes() for p in frames.iterdir()}
    assert len(earlier) == 6
    failed, stats = convert(FailingBackend(backend, 2), 6, True)
    assert stats.error is not None and {p.name: p.read_bytes() for p in frames.glob("frame_*")} == earlier
    assert failed.held_back == str(frames / ".replacing")
    assert len(list((frames / ".replacing").iterdir())) == stats.frames_out > 0
    assert convert(backend, 3, True)[1].error is None
    assert sorted(p.name for p in frames.iterdir()) == [f"frame_{i:06d}.png" for i in range(3)]

    # a camera recorded over them with --overwrite, killed (-9) before its end: the next run kept nothing of it
    from cyclegan_edge.runtime.sinks import ImageFolderSink

    recording = ImageFolderSink(frames, overwrite=True, live=True)
    for i in range(2):
        recording.write(np.full((48, 64, 3), 50 * i, np.uint8))  # never closed: the process was killed
    recording._unlock()  # what the kernel does for a killed process
    ImageFolderSink(frames, overwrite=True, live=True).close()
    assert sorted(p.name for p in (frames / "interrupted").iterdir()) == ["frame_000000.png", "frame_000001.png"]


def test_a_folder_of_frames_is_locked_inside_itself(tmp_path: Path) -> None:
    """The folder's lock went beside it (.NAME.lock in its parent): OUTPUT "." failed ("PosixPath('.') has an empty
    name"), and a writable folder in a parent the user cannot write was refused. The lock is inside it now; a folder
    it made and never wrote into is removed again."""
    from cyclegan_edge.runtime.sinks import ImageFolderSink, OutputLocked

    here = tmp_path / "here"
    here.mkdir()
    os.chdir(here)
    try:
        first = ImageFolderSink(".")
        with pytest.raises(OutputLocked, match=r"^\.: another process \(pid \d+\) is writing it now"):
            ImageFolderSink(".")
        first.write(np.zeros((8, 8, 3), np.uint8))
        first.close()
    finally:
        os.chdir(tmp_path)
    assert sorted(p.name for p in here.iterdir()) == ["frame_000000.png"]  # nothing beside it, no lock left
    ImageFolderSink(tmp_path / "unused").close()
    assert not (tmp_path / "unused").exists()


def test_an_existing_output_is_kept_unless_overwrite(street_video: Path, backend: OnnxRuntimeBackend,
                                                    tmp_path: Path) -> None:  # fmt: skip
    """Another file at OUTPUT (here the user's own video, then another conversion's output) is never replaced
    without --overwrite: the writer refuses before any frame, and the file stays byte for byte. This conversion's
    own output resumes; --overwrite replaces the other file with a finished conversion only."""
    from cyclegan_edge.runtime.av_video import AvVideoWriter
    from cyclegan_edge.runtime.pipeline import after_resume
    from cyclegan_edge.runtime.sinks import EncodeSettings

    out = tmp_path / "precious.mp4"
    shutil.copy(street_video, out)
    before = out.read_bytes()
    opts = PipelineOptions(size=64, max_frames=60)

    def convert(b: Any, job: tuple[object, ...] = ("h2z", 64), overwrite: bool = False) -> tuple[AvVideoWriter, Any]:
        source = open_source(str(street_video))
        try:
            sink = AvVideoWriter(out, source.size, source.fps, EncodeSettings(), source, job, overwrite)
            left = after_resume(opts, sink.resumed)
            assert left is not None
            return sink, Pipeline(source, b, sink, left).run()
        finally:
            source.close()

    with pytest.raises(OutputExists, match="precious.mp4 exists and holds no work of this conversion"):
        convert(backend)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["precious.mp4"]

    # --overwrite asks for the file to be replaced, by a finished conversion: one that fails halfway leaves it
    # (its frames in the partial file), and the same --overwrite run continues them into a whole one
    forced, stats = convert(FailingBackend(backend, 10), overwrite=True)
    assert stats.error is not None and out.read_bytes() == before
    assert forced.held_back == str(tmp_path / ".precious.partial.mp4")
    assert video_info(Path(forced.held_back))[0] == stats.frames_out > 0
    again, stats2 = convert(backend, overwrite=True)
    assert stats2.error is None and again.resumed == stats.frames_out and video_info(out)[0] == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.mp4"]
    converted = out.read_bytes()
    with pytest.raises(OutputExists):  # another job (another model) keeps its hands off it
        convert(backend, job=("z2h", 64))
    assert out.read_bytes() == converted


def test_batch_keeps_another_conversions_videos_and_says_so(street_video: Path, backend: OnnxRuntimeBackend,
                                                            tmp_path: Path) -> None:  # fmt: skip
    """A rerun with another model (job) over videos an earlier batch made: an unfinished one is kept, a failed row
    naming why; a finished one is kept, 'from another conversion', not counted as this run's (it was 'skipped
    (exists)' and the batch said ok). The same job skips or resumes them; --overwrite converts them again."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(street_video, src / "street.mp4")
    first = convert_folder(src, out, backend, PipelineOptions(size=64, max_frames=6), job=("model a",))
    assert first[0].status == "done" and video_info(out / "street.mp4")[0] == 6
    kept = (out / "street.mp4").read_bytes()
    row = convert_folder(src, out, backend, PipelineOptions(size=64, max_frames=12), job=("model b",))[0]
    assert row.failed and "another conversion's unfinished work" in str(row.error) and "--overwrite" in str(row.error)
    assert (out / "street.mp4").read_bytes() == kept
    whole = tmp_path / "whole"  # a finished conversion (every frame of a short clip)
    whole.mkdir()
    write_short_clip(whole / "clip.mp4", street_video, 8)
    done = tmp_path / "done"
    assert convert_folder(whole, done, backend, PipelineOptions(size=64), job=("model a",))[0].status == "done"
    finished = (done / "clip.mp4").read_bytes()
    again = convert_folder(whole, done, backend, PipelineOptions(size=64), job=("model a",))[0]
    assert again.status == "skipped (exists)"
    row = convert_folder(whole, done, backend, PipelineOptions(size=64), job=("model b",))[0]
    assert row.status == "skipped (exists, from another conversion)" and (done / "clip.mp4").read_bytes() == finished
    redone = convert_folder(whole, done, backend, PipelineOptions(size=64), overwrite=True, job=("model b",))[0]
    assert redone.status == "done" and (done / "clip.mp4").read_bytes() != finished


def write_short_clip(path: Path, like: Path, frames: int) -> None:
    """The first ``frames`` frames of ``like`` as an MJPEG .mp4 PyAV reads (a whole, short source)."""
    cap = cv2.VideoCapture(str(like))
    ok, frame = cap.read()
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 12.5, (frame.shape[1], frame.shape[0]))
    for _ in range(frames):
        w.write(frame)
        ok, frame = cap.read()
    w.release()
    cap.release()


def test_batch_folder(street_video: Path, h2z_onnx: Path, horse_paths: list[Path], tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    cap = cv2.VideoCapture(str(street_video))
    for name, start, fourcc in (("a.mp4", 0, "mp4v"), ("sub/b.avi", 50, "MJPG")):
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        w = cv2.VideoWriter(str(src / name), cv2.VideoWriter_fourcc(*fourcc), 12.5, (384, 216))
        for _ in range(8):
            w.write(cv2.resize(cap.read()[1], (384, 216)))
        w.release()
    cap.release()
    shutil.copy(horse_paths[0], src / "horse.jpg")
    shutil.copy(horse_paths[1], src / "sub" / "horse2.jpg")
    (src / "broken.jpg").write_bytes(horse_paths[2].read_bytes()[:300])
    (src / "broken.mp4").write_bytes((src / "a.mp4").read_bytes()[:2000])
    (src / "notes.txt").write_text("hello")

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cyclegan_edge.runtime", "--engine", str(h2z_onnx), "--input", str(src), "--output", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 1, r.stderr  # two broken files
    table = r.stdout
    for line, status in (("a.mp4", "done"), ("sub/b.avi", "done"), ("horse.jpg", "done"), ("sub/horse2.jpg", "done"),
                         ("broken.jpg", "failed"), ("broken.mp4", "failed"), ("notes.txt", "skipped")):  # fmt: skip
        row = next(ln for ln in table.splitlines() if ln.startswith(line + " "))
        assert status in row, row
    assert "5 of 7 files ok" in table
    broken = next(ln for ln in table.splitlines() if ln.startswith("broken.mp4 "))
    assert broken.endswith("failed: cannot open this video (Invalid data found when processing input)"), broken
    assert video_info(out / "a.mp4")[:1] == (8,) and video_info(out / "sub" / "b.mp4")[0] == 8
    assert cv2.imread(str(out / "horse.png")).shape == (256, 256, 3)
    assert (out / "sub" / "horse2.png").is_file()

    r2 = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    for name in ("a.mp4", "sub/b.avi", "horse.jpg"):
        row = next(ln for ln in r2.stdout.splitlines() if ln.startswith(name + " "))
        assert "skipped (exists)" in row
    assert "4 of them skipped: their outputs exist from an earlier run (--overwrite converts them again)" in r2.stdout


def test_batch_ctrl_c_exits_130_and_lists_what_it_did_not_start(street_video: Path, h2z_onnx: Path,
                                                                tmp_path: Path) -> None:  # fmt: skip
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    cap = cv2.VideoCapture(str(street_video))
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        w = cv2.VideoWriter(str(src / name), cv2.VideoWriter_fourcc(*"mp4v"), 12.5, (384, 216))
        for _ in range(60):
            w.write(cv2.resize(cap.read()[1], (384, 216)))
        w.release()
    cap.release()
    cmd = [sys.executable, "-m", "cyclegan_edge.runtime", "--engine", str(h2z_onnx), str(src), str(out)]
    rc, table, err = interrupt_when(cmd, (out / ".a.partial.mp4").exists, ENV)
    assert rc == 130, err[-2000:]
    rows = {ln.split()[0]: ln for ln in table.splitlines() if ln.endswith(("interrupted", "not started"))}
    assert "interrupted" in rows["a.mp4"] and "not started" in rows["b.mp4"] and "not started" in rows["c.mp4"]
    assert "0 of 3 files ok" in table and "stopped: 3 files interrupted or not started" in err

    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0 and "3 of 3 files ok" in again.stdout, again.stderr[-2000:]
    assert f"; outputs in {out} (model {h2z_onnx}, " in again.stdout  # what ran, as for one file
    assert [video_info(out / n)[0] for n in ("a.mp4", "b.mp4", "c.mp4")] == [60, 60, 60]


def test_truncated_video_converts_what_decodes(street_video: Path, backend: OnnxRuntimeBackend, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    clip = tmp_path / "long.avi"
    cap = cv2.VideoCapture(str(street_video))
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 12.5, (192, 108))
    for _ in range(40):
        w.write(cv2.resize(cap.read()[1], (192, 108)))
    w.release()
    cap.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    results = convert_folder(tmp_path, tmp_path / "out", backend, PipelineOptions())
    row = next(r for r in results if r.path.name == "cut.avi")
    assert row.status == f"done: {row.frames} of 40 frames decode (truncated or corrupt)" and 5 < row.frames < 40
    assert next(r for r in results if r.path.name == "long.avi").status == "done"
    assert video_info(tmp_path / "out" / "cut.mp4")[0] == row.frames


def test_matroska_without_a_frame_count_is_not_called_truncated(backend: OnnxRuntimeBackend, tmp_path: Path) -> None:
    """Matroska stores no frame count: the reader's estimate from the duration (here stretched by a longer audio
    track) is no evidence of a damaged file, so neither the batch table nor a warning claims one."""
    import av

    src = tmp_path / "in"
    src.mkdir()
    with av.open(str(src / "clip.mkv"), "w") as c:
        v, a = c.add_stream("libx264", rate=10), c.add_stream("aac", rate=48000)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        for i in range(10):  # 1 s of video
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 * i, np.uint8), format="rgb24")
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
        for i in range(94):  # 2 s of audio
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 48000, i * 1024
            c.mux(a.encode(samples))
        c.mux(a.encode(None))
    row = convert_folder(src, tmp_path / "out", backend, PipelineOptions(size=64))[0]
    assert row.status == "done" and row.frames == 10, row


def test_backend_parity_onnxruntime_vs_pytorch(compressed_g_path: Path, h2z_onnx: Path, street_video: Path) -> None:
    ort_b = open_backend(h2z_onnx)
    torch_b = open_backend(compressed_g_path, BackendOptions(device="cpu"))
    assert torch_b.name == "pytorch:cpu"
    cap = cv2.VideoCapture(str(street_video))
    frames = [cv2.resize(cap.read()[1], (384, 216)) for _ in range(3)]
    cap.release()
    for f in frames:
        x = frames_to_tensor([f])
        assert float(np.abs(ort_b.infer(x) - torch_b.infer(x)).max()) < 5e-4


def test_clear_errors(tmp_path: Path, h2z_onnx: Path) -> None:
    bad_plan = tmp_path / "summer2winter.plan"
    bad_plan.write_bytes(b"\x00" * 100)
    not_gen = tmp_path / "classifier.onnx"
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])  # fmt: skip
    onnx.save(helper.make_model(g), str(not_gen))
    (tmp_path / "model.tflite").write_bytes(b"x")
    cases = [
        (["--engine", str(not_gen), "--video", "x.mp4"], "not an image generator"),
        (["--engine", str(tmp_path / "model.tflite"), "--video", "x.mp4"], "unknown model extension"),
        (["--engine", str(h2z_onnx), "--video", str(tmp_path / "missing.mp4"), "--headless", "-o", "o.mp4"], "no such file"),
        (["--engine", str(h2z_onnx), "--camera", "7", "--headless", "-o", str(tmp_path / "o.mp4")], "7: cannot open"),
    ]
    try:
        import_tensorrt()
        plan_error = "missing engine sidecar"  # a machine with TensorRT reads the sidecar first
    except TensorRTUnavailable:
        plan_error = "TensorRT is not importable"
    cases.append((["--engine", str(bad_plan), "--camera", "0"], plan_error))
    for args, expected in cases:
        r = subprocess.run([sys.executable, "-m", "cyclegan_edge.runtime", *args], capture_output=True, text=True,
                           env=ENV, timeout=60, cwd=tmp_path)  # fmt: skip
        assert r.returncode == 1, (args, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("[")]
        assert len(lines) == 1 and expected in lines[0], (args, r.stderr)
    with pytest.raises(BackendError):
        open_backend(tmp_path / "nothing.onnx")
    with pytest.raises(SourceError):
        open_source(str(tmp_path / "nothing.mp4"))


def test_a_size_far_above_the_source_is_named(tmp_path: Path) -> None:
    """--size 4x a small source's shorter side runs the model on an upscaled frame (slower, no detail gained):
    converted, with a warning that says so and what size avoids it; a --size under 2x says nothing."""
    small = cv2.resize(cv2.imread(str(sorted((ASSETS_DIR / "images").glob("*.jpg"))[0])), (48, 32))
    cv2.imwrite(str(tmp_path / "small.png"), small)
    cmd = [sys.executable, "-m", "cyclegan_edge.runtime", "small.png", "--model", str(ASSETS_DIR / "photo2monet.onnx")]
    r = subprocess.run([*cmd, "big.png", "--size", "128"], capture_output=True, text=True, env=ENV, cwd=tmp_path,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0 and cv2.imread(str(tmp_path / "big.png")).shape == (32, 48, 3), r.stderr[-2000:]
    assert ("WARNING small.png: --size 128 is 4.0x the source's shorter side (32 px): the model runs on an upscaled "
            "frame, slower and with no detail gained; --size 32 or less (or none) avoids it") in r.stderr
    r = subprocess.run([*cmd, "fine.png", "--size", "60"], capture_output=True, text=True, env=ENV, cwd=tmp_path,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0 and "WARNING" not in r.stderr, r.stderr[-2000:]
    from cyclegan_edge.runtime.pipeline import upscale_note

    odd = upscale_note((7, 9), PipelineOptions(size=256))  # no --size fits a 7 px side (8 is the least): none is named
    assert odd is not None and odd.endswith("no detail gained; leaving --size out avoids it"), odd


def test_a_large_photo_at_full_resolution_gets_a_hint() -> None:
    """A 24 MP photo at full resolution took 5.7 GB and about 30 s on this CPU, with nothing said about --size."""
    from cyclegan_edge.runtime.pipeline import large_note

    hint = large_note((4000, 6000), PipelineOptions())
    assert hint == ("6000x4000 (24 MP) at full resolution is slow and takes gigabytes of memory on a CPU; --size 1024 "
                    "translates at a 1024 px shorter side and scales the result back to this size")
    assert large_note((4000, 6000), PipelineOptions(size=1024)) is None
    assert large_note((2448, 3264), PipelineOptions()) is None  # 8 MP: a phone photo of a few years ago, fine
