from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cyclegan_edge.imaging.frames import (
    frames_to_tensor,
    pad_to_multiple,
    resize_shorter_side,
    tensor_to_frame,
    tensor_to_frames,
    to_bgr,
)
from cyclegan_edge.imaging.files import list_files
from cyclegan_edge.imaging.io import JOB_KEYWORD, ImageReadError, png_text, read_image, write_image


@pytest.mark.parametrize("hw", [(256, 256), (301, 451), (1, 1), (5, 3), (720, 1280)])
def test_round_trip_is_exact_for_any_size(hw: tuple[int, int], rng: np.random.Generator) -> None:
    frame = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    t = frames_to_tensor([frame])
    assert t.dtype == np.float32 and t.shape[0] == 1 and t.shape[1] == 3
    assert t.shape[2] % 4 == 0 and t.shape[3] % 4 == 0
    assert t.min() >= -1.0 and t.max() <= 1.0
    assert np.array_equal(tensor_to_frame(t, hw), frame)


def test_channel_order_and_range() -> None:
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR
    t = frames_to_tensor([frame])
    assert np.allclose(t[0, 0], 1.0) and np.allclose(t[0, 1:], -1.0)  # red is channel 0 in RGB


def test_padding_reflects_and_crops_back() -> None:
    img = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    padded = pad_to_multiple(img)
    assert padded.shape == (8, 8, 3)
    assert np.array_equal(padded[:5, :6], img)
    assert np.array_equal(padded[5, :6], img[3])  # reflect, not edge-repeat
    assert np.array_equal(padded[:5, 6], img[:, 4])


def test_grey_and_bgra_inputs() -> None:
    grey = np.full((6, 10), 77, np.uint8)
    assert np.array_equal(to_bgr(grey), np.full((6, 10, 3), 77, np.uint8))
    bgra = np.dstack([np.full((6, 10, 3), 9, np.uint8), np.full((6, 10), 255, np.uint8)])
    assert to_bgr(bgra).shape == (6, 10, 3)
    with pytest.raises(ValueError, match="uint8"):
        to_bgr(np.zeros((4, 4, 3), np.float32))


def test_batches(rng: np.random.Generator) -> None:
    frames = [rng.integers(0, 256, size=(30, 42, 3), dtype=np.uint8) for _ in range(3)]
    out = tensor_to_frames(frames_to_tensor(frames), (30, 42))
    assert all(np.array_equal(a, b) for a, b in zip(frames, out))
    with pytest.raises(ValueError, match="share a size"):
        frames_to_tensor([frames[0], frames[0][:20]])


def test_resize_shorter_side_keeps_aspect_and_multiple() -> None:
    assert resize_shorter_side(432, 768, 256) == (256, 456)
    h, w = resize_shorter_side(1080, 1920, 360)
    assert (h, w) == (360, 640)


def test_image_files(tmp_path: Path, horse_paths: list[Path]) -> None:
    img = read_image(horse_paths[0])
    assert img.shape == (256, 256, 3)
    out = write_image(tmp_path / "sub" / "x.png", img)
    assert np.array_equal(read_image(out), img)
    assert png_text(out, JOB_KEYWORD) is None and png_text(tmp_path / "missing.png", JOB_KEYWORD) is None
    assert [p.name for p in tmp_path.iterdir()] == ["sub"]  # no temp files left
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    with pytest.raises(ImageReadError, match="not a decodable image"):
        read_image(bad)
    (tmp_path / "notes.txt").write_text("x")
    assert list_files([tmp_path]) == [bad, out]
    tagged = write_image(tmp_path / "tags" / "tagged.png", img, job="abc")
    assert png_text(tagged, JOB_KEYWORD) == "abc" and np.array_equal(read_image(tagged), img)
    jpeg = write_image(tmp_path / "tags" / "x.jpg", img, job="abc")  # JPEG keeps no job: written all the same
    assert png_text(jpeg, JOB_KEYWORD) is None and read_image(jpeg).shape == img.shape


def test_real_greyscale_file_is_converted() -> None:
    from conftest import SHARED_DATA, need

    import cv2

    folder = need(SHARED_DATA / "horse2zebra" / "trainB")
    grey = next(p for p in sorted(folder.glob("*.jpg")) if cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ndim == 2)
    img = read_image(grey)
    assert img.shape[2] == 3 and np.array_equal(img[..., 0], img[..., 2])
