from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cyclegan_edge.imaging.files import output_path, unique_outputs
from cyclegan_edge.imaging.io import read_image


def test_translate_folder_and_files(compressed_g_path: Path, horse_paths: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "horses"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(horse_paths[0], folder / "a.jpg")
    shutil.copy(horse_paths[1], folder / "sub" / "b.jpg")
    (folder / "broken.jpg").write_bytes(horse_paths[2].read_bytes()[:200])
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.translate", str(compressed_g_path), str(folder),
                        str(horse_paths[3]), "--output", str(out), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 1, r.stderr  # one unreadable file
    assert "skipped: " in r.stderr and "broken.jpg: not a decodable image" in r.stderr
    assert "3 of 4 images written" in r.stdout
    for src, dst in ((horse_paths[0], out / "horses" / "a.png"), (horse_paths[1], out / "horses" / "sub" / "b.png"),
                     (horse_paths[3], out / (horse_paths[3].stem + ".png"))):  # fmt: skip
        before, after = read_image(src), read_image(dst)
        assert after.shape == before.shape
        assert np.abs(after.astype(int) - before.astype(int)).mean() > 5  # translated, not copied


def test_output_path_one_rule_for_translate_and_batch(tmp_path: Path) -> None:
    """Relative paths kept, images as PNG, videos as MP4; translate keeps each input folder's name (several
    inputs stay apart), batch mode writes below the output folder directly; a bare file keeps its name."""
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    photos, out = tmp_path / "photos", Path("out")
    image, video = photos / "sub" / "x.jpg", photos / "sub" / "clip.MOV"
    assert output_path(image, out, [photos], root_named=True) == out / "photos" / "sub" / "x.png"  # translate
    assert output_path(image, out, [photos]) == out / "sub" / "x.png"  # batch
    assert output_path(video, out, [photos]) == out / "sub" / "clip.mp4"
    assert output_path(Path("elsewhere/y.tiff"), out, [photos], root_named=True) == out / "y.png"
    sources = [photos / "x.jpg", photos / "x.png"]
    named = unique_outputs(sources, [output_path(s, out, [photos]) for s in sources])
    assert named == [out / "x.jpg.png", out / "x.png.png"]


def test_output_folder_that_holds_every_input_is_named(tmp_path: Path, capsys: object) -> None:
    from cyclegan_edge import ASSETS_DIR
    from cyclegan_edge.runtime.translate import main

    for p in (ASSETS_DIR / "images").glob("*.jpg"):
        shutil.copy(p, tmp_path / p.name)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([str(ASSETS_DIR / "photo2monet.onnx"), str(tmp_path), "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.strip() == (f"error: {tmp_path}: every image found is inside this output folder, where outputs go (and "
                           "are not read back as inputs): choose an output folder outside the inputs")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_bundled_name_works_and_videos_left_out_are_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """As the runtime's --model: a bundled model's name; a folder's videos are not images: said, not silently
    dropped (the runtime converts them)."""
    from cyclegan_edge import ASSETS_DIR
    from cyclegan_edge.runtime.translate import main

    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(sorted((ASSETS_DIR / "images").glob("*.jpg"))[0], folder / "photo.jpg")
    shutil.copy(ASSETS_DIR / "demo.mp4", folder / "clip.mp4")
    assert main(["photo2monet", str(folder), str(folder / "photo.jpg"), str(folder / "clip.mp4"), "-o",
                 str(tmp_path / "out")]) == 0  # each named once more: translated once, the video still left out
    assert (tmp_path / "out" / "mixed" / "photo.png").is_file() and not (tmp_path / "out" / "mixed" / "clip.mp4").exists()
    assert f"left out 1 video ({folder / 'clip.mp4'}): translate takes images" in caplog.text
    assert sorted(p.name for p in (tmp_path / "out" / "mixed").iterdir()) == ["photo.png"]
    assert not (tmp_path / "out" / "photo.png").exists()


def test_a_rerun_keeps_what_exists_and_overwrite_replaces_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rerun (another model, say) into the same folder adds what is missing and keeps what is there."""
    from cyclegan_edge import ASSETS_DIR
    from cyclegan_edge.runtime.translate import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted((ASSETS_DIR / "images").glob("*.jpg"))[:2]:
        shutil.copy(p, photos / p.name)
    out = tmp_path / "out"
    model = str(ASSETS_DIR / "photo2monet.onnx")
    assert main([model, str(photos), "-o", str(out)]) == 0
    written = sorted((out / "photos").glob("*.png"))
    assert len(written) == 2 and "2 of 2 images written" in capsys.readouterr().out
    mine = written[0].read_bytes()
    written[1].unlink()
    written[0].write_bytes(b"the user's own file, by the same name")
    assert main([model, str(photos), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "1 of 1 images written" in said and "1 that existed kept (--overwrite replaces them)" in said, said
    assert written[0].read_bytes() == b"the user's own file, by the same name" and written[1].is_file()
    assert main([model, str(photos), "-o", str(out)]) == 0
    assert f"nothing to do: all 2 outputs exist in {out} (--overwrite replaces them)" in capsys.readouterr().out
    (out / "photos" / "elsewhere.png").mkdir()  # a folder by an output's name is no output: said, not "kept"
    shutil.copy(photos / written[0].with_suffix(".jpg").name, photos / "elsewhere.jpg")
    assert main([model, str(photos), "-o", str(out)]) == 1
    assert f"error: {out / 'photos' / 'elsewhere.png'}: Is a directory" in capsys.readouterr().err
    (out / "photos" / "elsewhere.png").rmdir()
    (photos / "elsewhere.jpg").unlink()
    assert main([model, str(photos), "-o", str(out), "--overwrite"]) == 0
    assert "2 of 2 images written" in capsys.readouterr().out and written[0].read_bytes() == mine


def test_a_folder_that_held_images_before_the_run_is_not_marked_as_outputs(tmp_path: Path) -> None:
    """Writing into a folder of originals (translate's output beside its input, or a batch into the user's
    album) must not mark it: a later run over the folder above would leave the originals out."""
    from cyclegan_edge import ASSETS_DIR
    from cyclegan_edge.imaging.files import OUTPUT_MARKER
    from cyclegan_edge.runtime.translate import main

    photos = sorted((ASSETS_DIR / "images").glob("*.jpg"))[:2]
    album, other = tmp_path / "parent" / "album", tmp_path / "parent" / "other"
    album.mkdir(parents=True)
    other.mkdir()
    for p in photos:
        shutil.copy(p, album / p.name)
        shutil.copy(p, other / p.name)
    model = str(ASSETS_DIR / "photo2monet.onnx")
    assert main([model, str(album / photos[0].name), "-o", str(album)]) == 0
    assert (album / f"{photos[0].stem}.png").is_file() and not (album / OUTPUT_MARKER).exists()
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.runtime", str(other), str(album), "--model", model],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0 and not (album / OUTPUT_MARKER).exists(), r.stderr[-2000:]
    assert main([model, str(tmp_path / "parent"), "-o", str(tmp_path / "out")]) == 0
    # every original in album was read as an input (and the outputs written there: x.jpg and x.png share a name)
    written = sorted(p.name for p in (tmp_path / "out" / "parent" / "album").iterdir())
    assert written == sorted([f"{p.name}.png" for p in photos] + [f"{p.stem}.png.png" for p in photos]), written
    fresh = tmp_path / "fresh"
    assert main([model, str(other), "-o", str(fresh)]) == 0 and (fresh / OUTPUT_MARKER).is_file()  # a new folder is


def test_an_output_that_cannot_be_a_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    """A file at --output, or a folder that cannot be written: one line naming --output (not a made-up path below
    it), before the model loads."""
    from cyclegan_edge import ASSETS_DIR
    from conftest import ROOT, as_user

    taken = tmp_path / "notes.txt"
    taken.write_text("keep me\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    images = str(ASSETS_DIR / "images")
    for out, why in ((taken, "a file, not a folder"), (ro / "out", "cannot write (Permission denied)"),
                     (ro, "cannot write (Permission denied)")):  # fmt: skip
        r = subprocess.run([*as_user(), sys.executable, "-m", "cyclegan_edge.translate", "/nonexistent/model.onnx",
                            images, "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 1 and r.stderr == f"error: --output {out}: {why}; nothing written\n", r.stderr
    assert taken.read_text() == "keep me\n" and os.listdir(ro) == []
    # an image file's name for --output made a folder of that name: a usage line naming the runtime instead
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.translate", "photo2monet", images, "-o",
                        str(tmp_path / "x.png")], cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and r.stderr == (
        f"error: --output {tmp_path / 'x.png'}: translate writes into a folder (-o DIR gives DIR/NAME.png); one image "
        f"to one file: python -m cyclegan_edge.runtime IMAGE {tmp_path / 'x.png'} --model MODEL\n"), r.stderr
    assert not (tmp_path / "x.png").exists()


def test_size_translates_large_photos_small_and_ctrl_c_says_what_was_written(tmp_path: Path) -> None:
    """--size translates at a shorter side and writes each result at the photo's own size; Ctrl-C says how many
    images are done (exit 130) and the same command adds the rest."""
    from cyclegan_edge import ASSETS_DIR
    from cyclegan_edge.imaging.files import OUTPUT_MARKER
    from conftest import ONE_THREAD, interrupt_when

    photo = sorted((ASSETS_DIR / "images").glob("*.jpg"))[0]
    big = tmp_path / "big"
    big.mkdir()
    for i in range(40):
        shutil.copy(photo, big / f"p{i:02d}.jpg")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cyclegan_edge.translate", str(ASSETS_DIR / "photo2monet.onnx"), str(big), "-o",
           str(out)]  # fmt: skip
    env = {**os.environ, **ONE_THREAD}
    def outputs() -> int:  # complete ones: not the hidden temporary file of one being written
        return len([p for p in out.glob("big/*.png") if not p.name.startswith(".")])

    rc, said, err = interrupt_when(cmd, lambda: outputs() >= 2, env=env)
    done = outputs()
    assert rc == 130 and f"interrupted: {done} of 40 images written to {out}; the same command adds the rest" in err, err
    assert "error: interrupted" not in err  # that line says it all
    assert (out / OUTPUT_MARKER).is_file()  # a new folder: marked from its first output
    assert 2 <= done < 40
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and f"{40 - done} of {40 - done} images written" in r.stdout, r.stderr[-2000:]
    assert f"{done} that existed kept" in r.stdout
    full = read_image(out / "big" / "p00.png")
    r = subprocess.run([*cmd, "--size", "64"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and "holds 40 outputs made with another model or other settings" in r.stderr, r.stderr
    r = subprocess.run([*cmd, "--size", "64", "--overwrite"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "40 of 40 images written" in r.stdout, r.stderr[-2000:]
    small = read_image(out / "big" / "p00.png")
    assert small.shape == full.shape == read_image(photo).shape  # back at the photo's own size
    assert np.abs(small.astype(int) - full.astype(int)).mean() > 2  # translated at 64 px: another picture


def test_which_output_folders_may_be_marked(tmp_path: Path) -> None:
    """New, empty or marked: yes. Holding images (a hidden folder's too): no. An earlier run's marked subfolder and
    our own unfinished files do not count; a tree too large to walk is not marked."""
    from cyclegan_edge.imaging.files import OUTPUT_MARKER, mark_output_folder, markable_output_folder

    out = tmp_path / "out"
    assert markable_output_folder(out)
    (out / "monet").mkdir(parents=True)
    (out / "monet" / "a.png").write_bytes(b"x")
    mark_output_folder(out / "monet")
    (out / ".x.partial.mp4").write_bytes(b"x")
    (out / ".y.png.1234.tmp.png").write_bytes(b"x")
    (out / "notes.txt").write_text("x")
    assert markable_output_folder(out)
    assert not markable_output_folder(out, max_entries=2)
    (out / ".thumbs").mkdir()
    (out / ".thumbs" / "t.jpg").write_bytes(b"x")
    assert not markable_output_folder(out)
    (out / ".thumbs" / "t.jpg").unlink()
    (out / "holiday.JPG").write_bytes(b"x")
    assert not markable_output_folder(out)
    (out / OUTPUT_MARKER).write_text("marked before\n")
    assert markable_output_folder(out)


def test_size_does_not_blow_up_a_strip_too_small_to_translate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 1 px high strip is too small at any --size: skipped with the reason (upscaled, it was a 256x256000 frame)."""
    from cyclegan_edge import ASSETS_DIR
    from cyclegan_edge.imaging.io import write_image
    from cyclegan_edge.runtime.translate import main

    strip = tmp_path / "in" / "strip.png"
    write_image(strip, np.full((1, 1000, 3), 128, np.uint8))
    assert main([str(ASSETS_DIR / "photo2monet.onnx"), str(strip), "-o", str(tmp_path / "out"), "--size", "256"]) == 1
    said = capsys.readouterr()
    assert "skipped: " in said.err and "1000x1 px is too small for the generator" in said.err
    assert "0 of 1 images written" in said.out


def test_another_models_outputs_stop_a_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each PNG names its job (model bytes, --size): a rerun with another model would have kept the first
    model's images as if they were its own; it is refused, nothing touched, unless --overwrite. Outputs that
    name no job (an older version's) are kept as before. The runtime's folder conversion checks alike."""
    from PIL import Image

    from cyclegan_edge import ASSETS_DIR
    from cyclegan_edge.imaging.io import JOB_KEYWORD, png_text, write_image
    from cyclegan_edge.runtime.__main__ import main as runtime_main
    from cyclegan_edge.runtime.batch import image_job, model_digest
    from cyclegan_edge.runtime.pipeline import PipelineOptions
    from cyclegan_edge.runtime.translate import main

    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for p in sorted((ASSETS_DIR / "images").glob("*.jpg"))[:2]:
        shutil.copy(p, photos / p.name)
    fp32, int8 = ASSETS_DIR / "photo2monet.onnx", ASSETS_DIR / "photo2monet.int8.onnx"
    assert main([str(fp32), str(photos), "-o", str(out), "--size", "64"]) == 0
    written = sorted((out / "photos").glob("*.png"))
    first = {p: p.read_bytes() for p in written}
    job = image_job(model_digest(fp32), PipelineOptions(size=64))
    assert len(written) == 2 and all(png_text(p, JOB_KEYWORD) == job for p in written)
    with Image.open(written[0]) as im:  # another PNG reader finds the chunk, and its CRC holds
        assert im.text[JOB_KEYWORD] == job and np.array_equal(np.asarray(im)[..., ::-1], read_image(written[0]))
    capsys.readouterr()
    refusal = f"holds 2 outputs made with another model or other settings (first: {written[0]})"
    for other in ([str(int8), "--size", "64"], [str(fp32)]):
        assert main([other[0], str(photos), "-o", str(out), *other[1:]]) == 1
        err = capsys.readouterr().err.strip()
        assert err == f"error: {out} {refusal}: --overwrite replaces them, or give another output folder", err
        assert {p: p.read_bytes() for p in written} == first
    assert main([str(fp32), str(photos), "-o", str(out), "--size", "64"]) == 0  # its own: nothing to do
    assert "nothing to do: all 2 outputs exist" in capsys.readouterr().out
    assert main([str(int8), str(photos), "-o", str(out), "--size", "64", "--overwrite"]) == 0
    assert "2 of 2 images written" in capsys.readouterr().out
    assert all(png_text(p, JOB_KEYWORD) == image_job(model_digest(int8), PipelineOptions(size=64)) for p in written)
    write_image(written[0], read_image(written[0]))  # as an older version wrote it: no job named
    written[1].unlink()
    assert main([str(fp32), str(photos), "-o", str(out), "--size", "64"]) == 0
    said = capsys.readouterr().out
    assert "1 of 1 images written" in said and "; 1 that existed kept" in said, said
    assert png_text(written[0], JOB_KEYWORD) is None and png_text(written[1], JOB_KEYWORD) == job

    batch_out = tmp_path / "batch"
    assert runtime_main([str(photos), str(batch_out), "--model", str(fp32), "--size", "64"]) == 0
    made = sorted(batch_out.glob("*.png"))
    before = [p.read_bytes() for p in made]
    capsys.readouterr()
    assert runtime_main([str(photos), str(batch_out), "--model", str(int8), "--size", "64"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {batch_out} holds 2 outputs made with another model or other settings (first: {made[0]}): "
                   "--overwrite replaces them, or give another output folder"), err
    assert [p.read_bytes() for p in made] == before


def test_sigterm_stops_a_job_started_in_the_background_as_ctrl_c_does(tmp_path: Path) -> None:
    """`cmd &` in a script starts it with SIGINT ignored: SIGTERM (a `kill`, `timeout`) must still stop it the
    Ctrl-C way, saying what was written (raised as SIGINT it was lost, and the process died on the spot)."""
    import signal
    import time

    from cyclegan_edge import ASSETS_DIR
    from conftest import ONE_THREAD

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(40):
        shutil.copy(sorted((ASSETS_DIR / "images").glob("*.jpg"))[0], photos / f"p{i:02d}.jpg")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cyclegan_edge.translate", "photo2monet", str(photos), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ONE_THREAD},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("photos/p*.png"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    done = len(list(out.glob("photos/p*.png")))
    assert proc.returncode == 143 and f"interrupted: {done} of 40 images written to {out}" in err, err[-2000:]


def test_a_transparent_png_keeps_its_transparency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A logo with alpha came out opaque, its alpha dropped unsaid: the colour is translated, the alpha kept (PNG
    output); a JPEG output of the runtime has no alpha to keep."""
    import cv2

    from cyclegan_edge import ASSETS_DIR
    from cyclegan_edge.runtime.__main__ import main as runtime_main
    from cyclegan_edge.runtime.translate import main

    photo = read_image(sorted((ASSETS_DIR / "images").glob("*.jpg"))[0])
    h, w = photo.shape[:2]
    alpha = np.zeros((h, w), np.uint8)
    cv2.circle(alpha, (w // 2, h // 2), min(h, w) // 3, 255, -1)  # an opaque disc on a transparent ground
    logos = tmp_path / "logos"
    logos.mkdir()
    cv2.imwrite(str(logos / "logo.png"), np.dstack([photo, alpha]))
    assert main(["photo2monet", str(logos), "-o", str(tmp_path / "out"), "--size", "64"]) == 0
    out = cv2.imread(str(tmp_path / "out" / "logos" / "logo.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (h, w, 4) and np.array_equal(out[:, :, 3], alpha)
    assert np.abs(out[:, :, :3].astype(int) - photo.astype(int)).mean() > 5  # translated, not copied
    capsys.readouterr()
    assert runtime_main([str(logos / "logo.png"), str(tmp_path / "logo.jpg"), "--size", "64"]) == 0
    assert cv2.imread(str(tmp_path / "logo.jpg"), cv2.IMREAD_UNCHANGED).shape == (h, w, 3)
