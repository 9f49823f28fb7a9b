"""Issue 17: one string names any source or sink. ``runtime INPUT [OUTPUT]`` on real files, the old flags as
aliases, and the one-line refusals. In this process: ``main(argv)`` returns what ``python -m`` exits with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.imaging.files import OUTPUT_MARKER
from cyclegan_edge.imaging.io import read_image
from cyclegan_edge.runtime.__main__ import main
from cyclegan_edge.runtime.sources import open_source

MODEL = ASSETS_DIR / "photo2monet.onnx"
DEMO = ASSETS_DIR / "demo.mp4"
IMAGES = sorted((ASSETS_DIR / "images").glob("*.jpg"))
FAST = ["--model", str(MODEL), "--size", "64", "--threads", "1"]


def runtime(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    """Exit status, stdout and the ``error:`` lines of one run."""
    rc = main([*args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return rc, out, [ln for ln in err.splitlines() if ln.startswith("error:")]


def frame_count(video: Path) -> int:
    """Frames decoded by the runtime's own reader (PyAV when installed)."""
    source = open_source(str(video))
    try:
        n = 0
        while source.read() is not None:
            n += 1
        return n
    finally:
        source.close()


def write_clip(path: Path, frames: int = 4, hw: tuple[int, int] = (48, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    photo = cv2.resize(read_image(IMAGES[0]), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (hw[1], hw[0]))
    for i in range(frames):
        w.write(np.roll(photo, 4 * i, axis=1))
    w.release()
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two images (one in a subfolder), a short video, and a file that is neither."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    shutil.copy(IMAGES[0], root / IMAGES[0].name)
    shutil.copy(IMAGES[1], root / "sub" / IMAGES[1].name)
    write_clip(root / "sub" / "clip.avi")
    (root / "notes.txt").write_text("hello")
    return root


@pytest.fixture(autouse=True)
def no_display(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server: no window can open (as on this project's CI machine)."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def test_help_says_each_options_default(capsys: pytest.CaptureFixture[str]) -> None:
    """runtime --help named few defaults (--batch, --threads, --size, --max-frames said none), where the other
    commands' help names them all."""
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--batch BATCH video files: frames per backend call; cameras always 1 (default: 1)",
                   "--threads THREADS CPU threads for the backend (0: library default) (default: 0)",
                   "0 = full resolution; the demo runs at 256 unless given (default: 0)",
                   "h264 (plays everywhere), hevc, av1, mjpeg (default: h264)"):  # fmt: skip
        assert option in text, option


def test_video_to_video(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    rc, stdout, errors = runtime(capsys, str(DEMO), str(out), *FAST, "--max-frames", "4")
    assert rc == 0 and not errors, errors
    assert f"4 frames -> {out}" in stdout
    assert frame_count(out) == 4


def test_folder_to_folder_is_batch(capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, stdout, errors = runtime(capsys, str(folder), str(out), *FAST)
    assert rc == 0 and not errors, errors
    assert "4 of 4 files ok" in stdout  # notes.txt: skipped, not failed
    assert read_image(out / (IMAGES[0].stem + ".png")).shape == read_image(IMAGES[0]).shape
    assert (out / "sub" / (IMAGES[1].stem + ".png")).is_file()
    assert frame_count(out / "sub" / "clip.mp4") == 4
    rc, stdout, _ = runtime(capsys, str(folder), str(out), *FAST)
    assert rc == 0 and stdout.count("skipped (exists)") == 3


def test_glob_to_folder(capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, stdout, errors = runtime(capsys, f"{folder}/**/*.jpg", str(out), *FAST)
    assert rc == 0 and not errors, errors
    assert "2 of 2 files ok" in stdout
    converted = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert converted == sorted([OUTPUT_MARKER, IMAGES[0].stem + ".png", f"sub/{IMAGES[1].stem}.png"])  # paths below the glob's root
    rc, _, errors = runtime(capsys, f"{folder}/*.gif", str(out), *FAST)
    assert rc == 1 and len(errors) == 1 and "no file matches" in errors[0], errors
    expanded = [str(p) for p in sorted(folder.glob("*"))]  # the pattern left unquoted: the shell hands over files
    new_out = tmp_path / "new_out"  # and the output folder, not made yet
    rc, _, errors = runtime(capsys, *expanded, str(new_out), *FAST)
    assert rc == 2 and errors == [f"error: unrecognized arguments: {expanded[2]} ... {new_out} ({len(expanded) - 1} of "
                                  "them): a pattern the shell expanded? Quote it ('photos/*.jpg') for the command to "
                                  "expand, or give the folder (see python -m cyclegan_edge.runtime --help)"], errors
    assert not new_out.exists()


def test_image_to_image_file_or_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "monet.png"
    rc, stdout, errors = runtime(capsys, str(IMAGES[0]), str(out), *FAST)
    assert rc == 0 and not errors, errors
    before, after = read_image(IMAGES[0]), read_image(out)
    assert after.shape == before.shape and np.abs(after.astype(int) - before.astype(int)).mean() > 5
    rc, _, errors = runtime(capsys, str(IMAGES[0]), str(tmp_path / "folder"), *FAST)
    assert rc == 0 and (tmp_path / "folder" / (IMAGES[0].stem + ".png")).is_file(), errors
    rc, _, errors = runtime(capsys, str(IMAGES[0]), str(tmp_path / "x.mp4"), *FAST)
    assert rc == 1 and len(errors) == 1 and "an image translates to an image file" in errors[0], errors


def test_side_by_side_puts_an_image_beside_its_translation_too(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:  # fmt: skip
    """--side-by-side was left out for images (a folder's videos came out side by side, its photos not)."""
    out, alone = tmp_path / "both" / (IMAGES[0].stem + ".png"), tmp_path / "alone.png"
    rc, _, errors = runtime(capsys, str(IMAGES[0]), str(tmp_path / "both"), *FAST, "--side-by-side")
    assert rc == 0 and not errors, errors
    rc, _, errors = runtime(capsys, str(IMAGES[0]), str(alone), *FAST)
    photo, both, translated = read_image(IMAGES[0]), read_image(out), read_image(alone)
    h, w = photo.shape[:2]
    assert both.shape[:2] == (h, 2 * w) and np.array_equal(both[:, :w], photo) and np.array_equal(both[:, w:],
                                                                                                translated)  # fmt: skip
    rc, _, errors = runtime(capsys, str(IMAGES[0]), str(tmp_path / "both"), *FAST)  # other settings than its output's
    assert rc == 1 and len(errors) == 1, errors


def test_a_phone_photo_is_translated_upright(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A portrait photo from a phone is stored sideways with an EXIF orientation that every viewer applies; it was
    translated sideways and written landscape (the output PNG has no EXIF to turn it back)."""
    import struct

    jpeg = IMAGES[0].read_bytes()
    assert jpeg[:2] == b"\xff\xd8" and b"Exif" not in jpeg[:4096]
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + bytes(4)  # orientation 6: turn 90 cw
    exif = b"Exif\0\0MM\0*" + struct.pack(">I", 8) + ifd
    phone = tmp_path / "phone.jpg"
    phone.write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:])
    stored = read_image(IMAGES[0])
    assert np.array_equal(read_image(phone), np.rot90(stored, k=-1))
    out = tmp_path / "phone.png"
    rc, _, errors = runtime(capsys, str(phone), str(out), *FAST)
    h, w = stored.shape[:2]
    assert rc == 0 and read_image(out).shape[:2] == (w, h) and h != w, errors


def test_display_without_a_display_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, errors = runtime(capsys, str(DEMO), "display://0", *FAST, "--max-frames", "2")
    assert rc == 1 and len(errors) == 1 and "display://0: no window can open here" in errors[0], errors
    rc, _, errors = runtime(capsys, str(DEMO), *FAST, "--max-frames", "2")  # a stream without OUTPUT: a window
    assert rc == 1 and len(errors) == 1 and "no display here" in errors[0], errors


@pytest.mark.parametrize("uri, expected", [
    ("srt://192.168.1.2:5000", "unknown output: give a video file, a folder, display://N, udp://HOST:PORT"),
    ("udp://192.168.1.2", "give udp://HOST:PORT"),
])  # fmt: skip
def test_unknown_output_refused(capsys: pytest.CaptureFixture[str], uri: str, expected: str) -> None:
    """udp:// and rtp:// stream (tests/test_stream_out.py); other schemes, or a stream without a port, are one line."""
    rc, _, errors = runtime(capsys, str(DEMO), uri, *FAST)
    assert rc == 2 and len(errors) == 1, errors  # a URI that is wrong as written: the command line's fault (exit 2)
    assert f"{uri}: {expected}" in errors[0]


def test_folder_to_stream_refused(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    rc, _, errors = runtime(capsys, str(folder), "udp://127.0.0.1:5000", *FAST)
    assert rc == 1 and len(errors) == 1 and "is translated to files" in errors[0], errors


@pytest.mark.parametrize("args, expected", [
    ([str(DEMO), "--video", str(DEMO)], "give the input once"),
    ([str(DEMO), "--camera", "test://"], "give the input once"),
    ([str(DEMO), "out.mp4", "--output", "other.mp4"], "give the output once"),
    ([str(DEMO), "out.mp4", "--shard", "0/2"], "--shard K/N splits a batch"),
])  # fmt: skip
def test_usage_errors(capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    rc, _, errors = runtime(capsys, *args)
    assert rc == 2 and len(errors) == 1 and expected in errors[0], errors


@pytest.mark.parametrize("args, expected", [
    (["--max-frames", "-1"], "argument --max-frames: '-1' is not allowed: use 0..1000000000"),
    (["--threads", "-1"], "argument --threads: '-1' is not allowed: use 0..1024"),
    (["--bitrate", "abc"], "--bitrate abc: give bits per second, e.g. 4M or 800k"),
    (["--preset", "bogus"], ("--preset bogus is not a preset of --codec h264: use one of ultrafast, superfast, "
                             "veryfast, faster, fast, medium, slow, slower, veryslow, placebo, p1, p2, p3, p4, p5, p6, "
                             "p7, default")),
    (["--preset", "p5", "--encoder", "cpu"], "--preset p5 is not a preset of --codec h264 on --encoder cpu: use one"),
    (["--codec", "av1", "--preset", "14"], "--preset 14 is not a preset of --codec av1: use one of -2, -1, 0, 1, "),
    (["--codec", "mjpeg", "--preset", "fast"], "--codec mjpeg has no presets: leave out --preset fast"),
])  # fmt: skip
def test_bad_values_are_usage_errors_before_the_model_loads(capfd: pytest.CaptureFixture[str], tmp_path: Path,
                                                            args: list[str], expected: str) -> None:  # fmt: skip
    """One line, exit 2, nothing written; the model (missing here) is not even opened."""
    out = tmp_path / "out.mp4"
    rc = main([str(DEMO), str(out), "--model", str(tmp_path / "missing.onnx"), *args])
    stdout, stderr = capfd.readouterr()
    assert rc == 2 and stderr.count("\n") == 1 and stderr.startswith(f"error: {expected}"), stderr
    assert not stdout and not list(tmp_path.iterdir())


def test_zero_frames_and_threads_mean_all_and_the_default(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "all.mp4"
    args = ["--model", str(MODEL), "--size", "64", "--max-frames", "0", "--threads", "0"]
    rc, stdout, errors = runtime(capsys, str(DEMO), str(out), *args)
    assert rc == 0 and not errors, errors
    assert f"{frame_count(DEMO)} frames -> {out}" in stdout and frame_count(out) == frame_count(DEMO)


def test_old_flags_still_work(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The headline form: --camera URI --engine MODEL -o FILE (and --video, --input)."""
    cam = tmp_path / "cam.mp4"
    rc, stdout, errors = runtime(capsys, "--camera", "test://?fps=30", "--engine", str(MODEL), "--max-frames", "3",
                                 "-o", str(cam), "--size", "64")  # fmt: skip
    assert rc == 0 and not errors, errors
    assert f"-> {cam}" in stdout and frame_count(cam) >= 1  # live: stale frames may be dropped
    video = tmp_path / "video.mp4"
    rc, _, errors = runtime(capsys, "--video", str(DEMO), "--output", str(video), *FAST, "--max-frames", "2")
    assert rc == 0 and frame_count(video) == 2, errors
    rc, stdout, errors = runtime(capsys, "--input", str(ASSETS_DIR / "images"), "-o", str(tmp_path / "b"), *FAST)
    assert rc == 0 and f"{len(IMAGES)} of {len(IMAGES)} files ok" in stdout, errors


def test_a_live_run_that_cannot_keep_up_says_what_keeps_more(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """A 720p camera at full resolution (the default) on a 2-core CPU: 9 of 90 frames recorded, a slide show with
    1.5 s of latency, and nothing but the count of stale frames said why. Now a note names the size it ran at and
    the --size that keeps more; a run that keeps up gets none."""
    from cyclegan_edge.runtime.pipeline import PipelineOptions, PipelineStats, keep_up_note

    rc, stdout, errors = runtime(capsys, "test://?fps=30&size=640x480&frames=30", str(tmp_path / "full.mp4"),
                                 "--model", str(MODEL), "--threads", "1")  # fmt: skip
    kept = int(stdout.split(" frames -> ")[0].split()[-1])
    notes = [r.getMessage() for r in caplog.records if "the model kept" in r.getMessage()]
    assert rc == 0 and not errors and kept < 15, stdout  # the bundled model at 640x480: over 100 ms a frame here
    assert notes == [f"test://?fps=30&size=640x480&frames=30: the model kept {kept} of 30 frames (the others came "
                     "while it was busy) at 640x480, the source's full resolution: --size 256 runs it at 340x256, 4x "
                     "fewer pixels"], notes  # fmt: skip
    caplog.clear()
    rc, stdout, errors = runtime(capsys, "test://?fps=5&size=640x480&frames=10", str(tmp_path / "small.mp4"), *FAST)
    assert rc == 0 and not errors and not [r for r in caplog.records if "the model kept" in r.getMessage()], stdout
    # a --size given: the note names no size of its own
    stats = PipelineStats(frames_in=30, frames_out=10, dropped=20)
    assert keep_up_note(stats, (480, 640), PipelineOptions(size=128)) == (
        "the model kept 10 of 30 frames (the others came while it was busy) at 172x128: a smaller --size or an INT8 "
        "model or a GPU keeps more")  # fmt: skip
    assert keep_up_note(stats, (480, 640), PipelineOptions(size=128), "openvino:CPU:f32+int8").endswith(
        "at 172x128: a smaller --size or a GPU keeps more")  # already INT8
    assert keep_up_note(PipelineStats(frames_in=30, frames_out=15, dropped=15), (480, 640), PipelineOptions()) is None


def test_an_existing_image_output_is_kept_unless_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine.png"
    common = ["--size", "64", "--threads", "1", "--backend", "onnxruntime"]
    assert runtime(capsys, str(IMAGES[0]), str(out), *common)[0] == 0
    first = out.read_bytes()
    rc, said, errors = runtime(capsys, str(IMAGES[0]), str(out), *common)  # the same command again: done, as a video
    assert rc == 0 and said == f"{out} already holds this translation of {IMAGES[0]} (--overwrite translates again)\n"
    for other in ([str(IMAGES[1]), str(out), *common], [str(IMAGES[0]), str(out), *common[2:], "--size", "32"]):
        rc, _, errors = runtime(capsys, *other)  # another source, another size: not this translation
        assert rc == 1 and errors == [f"error: {out} exists: --overwrite replaces it, or give another output"]
        assert out.read_bytes() == first
    assert runtime(capsys, str(IMAGES[1]), str(out), *common, "--overwrite")[0] == 0
    assert out.read_bytes() != first


def test_bundled_model_by_name_and_demo_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--model photo2monet`` is the bundled file (the same pixels as its path); ``--demo monet`` runs the bundled
    clip through it; an unknown demo name is a usage error naming the choices."""
    by_path, by_name = tmp_path / "by_path.png", tmp_path / "by_name.png"
    common = ["--size", "64", "--threads", "1", "--backend", "onnxruntime"]
    assert runtime(capsys, str(IMAGES[0]), str(by_path), "--model", str(MODEL), *common)[0] == 0
    rc, out, _ = runtime(capsys, str(IMAGES[0]), str(by_name), "--model", "photo2monet", *common)
    assert rc == 0 and f"(model {MODEL}, onnxruntime" in out
    assert np.array_equal(read_image(by_path), read_image(by_name))
    rc, out, _ = runtime(capsys, "--demo", "monet", "-o", str(tmp_path / "d.mp4"), "--max-frames", "3", *common)
    assert rc == 0 and "(model photo2monet.onnx (bundled" in out and frame_count(tmp_path / "d.mp4") == 3
    # the model's name, which --model takes, names its demo too (a new user tried it: 'invalid choice')
    rc, out, _ = runtime(capsys, "--demo", "photo2monet", "-o", str(tmp_path / "e.mp4"), "--max-frames", "3", *common)
    assert rc == 0 and "(model photo2monet.onnx (bundled" in out and frame_count(tmp_path / "e.mp4") == 3
    rc, _, errors = runtime(capsys, "--demo", "winter", "--headless")
    assert rc == 2 and len(errors) == 1 and "invalid choice: 'winter'" in errors[0]


def test_bare_demo_takes_model_named_demo_refuses_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """A bare ``--demo`` runs the bundled clip through ``--model``; ``--demo NAME --model X`` names two models: one
    line, nothing written."""
    bundled_out, mine_out = tmp_path / "bundled.mp4", tmp_path / "mine.mp4"
    common = ["--max-frames", "2", "--size", "64", "--threads", "1", "--backend", "onnxruntime"]
    rc, out, errors = runtime(capsys, "--demo", "-o", str(mine_out), "--model", str(MODEL), *common)
    assert rc == 0 and f"(model {MODEL}, onnxruntime" in out and frame_count(mine_out) == 2, errors
    rc, _, errors = runtime(capsys, "--demo", "monet", "--model", str(MODEL), "-o", str(bundled_out), *common)
    assert rc == 2 and len(errors) == 1 and "leave out --model" in errors[0] and not bundled_out.exists()
    # another conversion (another size) into the first output: refused, the file kept; --overwrite replaces it
    first = mine_out.read_bytes()
    rc, out, errors = runtime(capsys, "--demo", "-o", str(mine_out), *common, "--size", "32")
    assert rc == 1 and len(errors) == 1 and "exists and holds no work of this conversion" in errors[0], errors
    assert mine_out.read_bytes() == first
    rc, out, errors = runtime(capsys, "--demo", "-o", str(mine_out), *common, "--size", "32", "--overwrite")
    assert rc == 0 and "2 frames -> " in out and frame_count(mine_out) == 2 and mine_out.read_bytes() != first


def test_a_rerun_into_mkv_resumes_and_a_frame_folder_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Matroska stores the job tag as COMMENT: the same conversion into an .mkv resumes (it was refused as another
    file); a folder of frames from another conversion is kept unless --overwrite (it was written over)."""
    mkv = tmp_path / "out.mkv"
    assert runtime(capsys, str(DEMO), str(mkv), *FAST, "--max-frames", "2")[0] == 0
    rc, out, errors = runtime(capsys, str(DEMO), str(mkv), *FAST, "--max-frames", "4")
    assert rc == 0 and not errors and frame_count(mkv) == 4, errors
    rc, out, errors = runtime(capsys, str(DEMO), str(mkv), *FAST, "--max-frames", "4")
    assert rc == 0 and "already holds the 4 frames" in out, (out, errors)
    frames = tmp_path / "frames"
    assert runtime(capsys, str(DEMO), str(frames), *FAST, "--max-frames", "2")[0] == 0
    first = (frames / "frame_000000.png").read_bytes()
    rc, _, errors = runtime(capsys, str(DEMO), str(frames), *FAST, "--max-frames", "2", "--size", "32")
    assert rc == 1 and errors == [f"error: {frames} holds frames of another conversion (another model, other settings "
                                  "or another video): --overwrite replaces them, or give another folder"]  # fmt: skip
    assert (frames / "frame_000000.png").read_bytes() == first
    assert runtime(capsys, str(DEMO), str(frames), *FAST, "--max-frames", "2", "--size", "32", "--overwrite")[0] == 0
    assert (frames / "frame_000000.png").read_bytes() != first


def test_a_batch_rerun_with_another_model_does_not_call_its_videos_ok(capsys: pytest.CaptureFixture[str],
                                                                       tmp_path: Path) -> None:  # fmt: skip
    """The video of a folder converted by one model, then the same folder with another model and the images set
    aside: the video is kept and named as another conversion's, not counted ok, exit 1 (it said 'ok', exit 0)."""
    clips = tmp_path / "clips"
    write_clip(clips / "clip.avi")
    out = tmp_path / "out"
    assert runtime(capsys, str(clips), str(out), *FAST)[0] == 0
    made = (out / "clip.mp4").read_bytes()
    other = ["--model", str(ASSETS_DIR / "photo2monet.int8.onnx"), *FAST[2:]]
    rc, said, errors = runtime(capsys, str(clips), str(out), *other)
    assert rc == 1 and not errors and "0 of 1 files ok" in said, said
    assert ("1 video skipped: its output was made by another conversion (another model, other settings, encoder or "
            "PyAV version); --overwrite converts them again") in said
    assert (out / "clip.mp4").read_bytes() == made
    assert runtime(capsys, str(clips), str(out), *other, "--overwrite")[0] == 0


@pytest.mark.parametrize(("source", "output", "named"), [
    ("video", "afile/out.mp4", "afile/out.mp4"), ("video", "afile/frames", "afile/frames"),
    ("camera", "afile/deeper/out.mp4", "afile/deeper/out.mp4"), ("image", "afile/out.png", "afile/out.png"),
    ("image", "afile/deeper/", f"afile/deeper/{IMAGES[0].stem}.png")])  # fmt: skip
def test_an_output_under_a_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path, source: str,
                                         output: str, named: str) -> None:  # fmt: skip
    """An output whose folder is a regular file said "cannot write (File exists)" (mkdir's words), or failed at the
    first frame with "Not a directory" after the model had loaded; now one line names the file in the way, first."""
    afile = tmp_path / "afile"
    afile.write_bytes(b"not a folder")
    uri = {"video": str(DEMO), "image": str(IMAGES[0]), "camera": "test://?fps=30&size=64x48&frames=3"}[source]
    rc, out, errors = runtime(capsys, uri, f"{tmp_path}/{output}", *FAST, "--headless")
    assert (rc, out) == (1, "") and errors == [f"error: {tmp_path / named}: {afile} is a file, not a folder"], errors
    assert afile.read_bytes() == b"not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_show_without_a_display_says_so(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """--show where no window can open wrote the file without a word about the window it had asked for."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "shown.mp4"
    rc, said, errors = runtime(capsys, str(DEMO), str(out), *FAST, "--show", "--max-frames", "3")
    assert (rc, errors) == (0, []) and f"3 frames -> {out}" in said and frame_count(out) == 3
    assert [r.getMessage() for r in caplog.records if "--show" in r.getMessage()] == [
        f"--show: no window can open here (no display, or an OpenCV without a GUI); writing {out} only"]


@pytest.mark.parametrize(("uri", "line"), [
    ("udp://127.0.0.1", "udp://127.0.0.1: give udp://HOST:PORT (the port this receiver listens on, 1..65535)"),
    ("udp://127.0.0.1:99999", "udp://127.0.0.1:99999: give udp://HOST:PORT (the port this receiver listens on, "
                              "1..65535)"),
    ("rtp://127.0.0.1:65535", "rtp://127.0.0.1:65535: RTP takes PORT+1 for RTCP: give a PORT below 65535"),
    ("test://frames=3", "test://frames=3: bad test source (its parameters go after '?'); use test://?fps=1..1000&"
                        "size=WxH (8..7680 each)&frames=N (0: endless)")])  # fmt: skip
def test_a_receiver_or_test_source_it_cannot_take_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                              uri: str, line: str) -> None:  # fmt: skip
    """A receiver without a port (or over 65535) bound a random port (or the port modulo 65536) and waited for a
    sender that could never find it; test:// without '?' ignored its parameters and recorded on, endlessly."""
    rc, out, errors = runtime(capsys, uri, str(tmp_path / "out.mp4"), *FAST, "--headless")
    assert (rc, out, errors) == (2, "", [f"error: {line}"])  # a command line that is wrong: exit 2, as usage is
    assert not (tmp_path / "out.mp4").exists()


def test_a_stream_with_nowhere_to_go_is_refused_before_it_waits(tmp_path: Path) -> None:
    """No OUTPUT and no display: a receiver waited for its sender, as long as it took, only to fail then with "no
    display here"; now before it waits."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.runtime", "udp://127.0.0.1:5999", *FAST], env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: no display here: give OUTPUT (a video file or folder) or --output (or run where a window can open)"]
