"""Paired translation: U-Net generators (reference keys, size multiples through checkpoint, ONNX and the runtime
backends) and pix2pix training on real edges -> photo pairs made by scripts/make_paired.py."""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from conftest import ONE_THREAD, ROOT, SHARED_DATA, need
from cyclegan_edge.imaging.frames import frames_to_tensor, pad_batch, pad_to_multiple, tensor_to_frames
from cyclegan_edge.models import UnetConfig, UnetGenerator, infer_generator_config, load_generator, save_generator
from cyclegan_edge.runtime.backends import BackendOptions, open_backend, translate_frames

ENV = {**os.environ, **ONE_THREAD}


# ---- an independent definition of the reference layout (pytorch-CycleGAN-and-pix2pix networks.py) ----------
class RefBlock(nn.Module):
    def __init__(self, outer_nc: int, inner_nc: int, norm_layer: Any, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 use_dropout: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.outermost = outermost
        use_bias = norm_layer.func == nn.InstanceNorm2d
        downconv = nn.Conv2d(input_nc or outer_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [nn.LeakyReLU(0.2, True), downconv, norm_layer(inner_nc), submodule, nn.ReLU(True), upconv,
                     norm_layer(outer_nc)] + ([nn.Dropout(0.5)] if use_dropout else [])  # fmt: skip
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RefUnet(nn.Module):
    def __init__(self, num_downs: int, ngf: int, norm: str, use_dropout: bool = True) -> None:
        super().__init__()
        norm_layer = (functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True) if norm == "batch"
                      else functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False))  # fmt: skip
        block = RefBlock(ngf * 8, ngf * 8, norm_layer, innermost=True)
        for _ in range(num_downs - 5):
            block = RefBlock(ngf * 8, ngf * 8, norm_layer, submodule=block, use_dropout=use_dropout)
        block = RefBlock(ngf * 4, ngf * 8, norm_layer, submodule=block)
        block = RefBlock(ngf * 2, ngf * 4, norm_layer, submodule=block)
        block = RefBlock(ngf, ngf * 2, norm_layer, submodule=block)
        self.model = RefBlock(3, ngf, norm_layer, input_nc=3, submodule=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def reference_unet(num_downs: int, ngf: int, norm: str, seed: int = 0) -> RefUnet:
    """Random weights and BatchNorm statistics far from the defaults, so a key mix-up cannot go unseen."""
    torch.manual_seed(seed)
    ref = RefUnet(num_downs, ngf, norm)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return ref.eval()


@pytest.fixture
def odd_frame(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("num_downs,norm", [(7, "batch"), (8, "instance")])
def test_reference_layout_loads_key_compatible(num_downs: int, norm: str, tmp_path: Path, odd_frame: np.ndarray) -> None:
    ref = reference_unet(num_downs, 4, norm)
    path = tmp_path / "latest_net_G.pth"
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, path)  # as DataParallel saves it
    loaded = load_generator(path)
    assert loaded.config == UnetConfig(depth=num_downs, ngf=4, norm=norm)
    assert loaded.config.size_multiple == 2**num_downs
    assert loaded.model.state_dict().keys() == ref.state_dict().keys()

    side = 2**num_downs
    x = torch.rand(2, 3, side, 2 * side, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), ref(x), rtol=0, atol=1e-6)

    # An odd size through the runtime's PyTorch backend: padded to the model's multiple, cropped back.
    backend = open_backend(path, BackendOptions(backend="torch", device="cpu"))
    assert backend.size_multiple == side  # type: ignore[attr-defined]
    out = translate_frames(backend, [odd_frame])[0]
    assert out.shape == odd_frame.shape
    with torch.no_grad():
        expected = ref(torch.from_numpy(pad_batch(frames_to_tensor([odd_frame]), side))).numpy()
    assert np.array_equal(out, tensor_to_frames(expected, odd_frame.shape[:2])[0])

    # our format carries the family and the size multiple; round trip
    ours = save_generator(tmp_path / "G.pth", loaded.model, {"direction": "A->B"})
    arch = torch.load(ours, weights_only=True)["arch"]
    assert arch["family"] == "unet" and arch["size_multiple"] == side and arch["depth"] == num_downs
    assert load_generator(ours).config == loaded.config


def test_unet_128_and_256_inferred_from_keys() -> None:
    for num_downs, name in ((7, "unet_128"), (8, "unet_256")):
        cfg = infer_generator_config(RefUnet(num_downs, 64, "batch").state_dict())
        assert isinstance(cfg, UnetConfig) and cfg.name == f"{name}_ngf64_batch" and cfg.size_multiple == 2**num_downs


def test_batch_padding_matches_frame_padding_and_the_eager_gather(rng: np.random.Generator) -> None:
    for hw, multiple in (((37, 53), 64), ((130, 200), 128), ((5, 3), 256)):
        frame = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
        t = frames_to_tensor([frame], multiple)
        assert np.array_equal(pad_batch(frames_to_tensor([frame], 1), multiple), t)
        assert np.array_equal(tensor_to_frames(t, hw)[0], frame) and t.shape[2:] == pad_to_multiple(frame, multiple).shape[:2]
    # The eager forward pads with a gather: the same values as the backends' np.pad
    model = UnetGenerator(UnetConfig(depth=6, ngf=4, norm="instance")).eval()
    x = torch.from_numpy(frames_to_tensor([rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)]))
    with torch.no_grad():
        padded = model.model(torch.from_numpy(pad_batch(x.numpy(), 64)))[..., :40, :56]
        torch.testing.assert_close(model(x), padded, rtol=0, atol=0)


def test_onnx_metadata_and_onnxruntime_parity_at_odd_sizes(tmp_path: Path, rng: np.random.Generator, margin: Any) -> None:
    onnx = pytest.importorskip("onnx")
    from cyclegan_edge.export.onnx_export import export_onnx

    pth = tmp_path / "unet128.pth"
    torch.save(reference_unet(7, 4, "batch").state_dict(), pth)
    path = export_onnx(load_generator(pth), tmp_path / "unet128.onnx")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["size_multiple"] == "128" and "128" in meta["size_rule"] and meta["architecture"] == "unet_128_ngf4_batch"

    torch_b = open_backend(pth, BackendOptions(backend="torch", device="cpu"))
    backends = [open_backend(path, BackendOptions(backend="onnxruntime", provider="cpu"))]
    try:
        import openvino  # noqa: F401

        backends.append(open_backend(path, BackendOptions(backend="openvino")))
    except (ImportError, OSError):
        pass
    worst = 0.0
    for hw in ((37, 53), (130, 200)):
        frame = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
        x = frames_to_tensor([frame])
        ref = torch_b.infer(x)
        for b in backends:
            assert b.size_multiple == 128  # type: ignore[attr-defined]
            out = b.infer(x)
            assert out.shape == x.shape
            worst = max(worst, float(np.abs(out - ref).max()))
            assert translate_frames(b, [frame])[0].shape == frame.shape
    assert margin("U-Net ONNX max abs vs PyTorch at odd sizes", worst, "<", 1e-4) < 1e-4


# ---- pix2pix on real pairs ------------------------------------------------------------------------------
TINY = ["--netG", "unet_64", "--ngf", "8", "--ndf", "8", "--load-size", "64", "--crop-size", "64", "--workers", "0",
        "--log-every", "1", "--seed", "0"]  # fmt: skip
# "It learns": overfit one real pair (as tests/test_train.py does) and compare G's L1 to B on it, in eval mode
# (BatchNorm running statistics: how it exports and runs), with an untrained G of the same seed.
OVERFIT = ["--max-images", "1", "--no-flip"]
LEARNS_BAR = 0.5


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = need(SHARED_DATA / "summer2winter_yosemite")
    out = tmp_path_factory.mktemp("edges2yosemite")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_paired.py"), "--source", str(src), "--out", str(out),
                        "--count", "4", "--test-count", "2"], capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(list((out / "train").glob("*.png"))) == 4 and len(list((out / "test").glob("*.png"))) == 2
    from cyclegan_edge.imaging.io import read_image

    test_pairs, sketches = sorted((out / "test").glob("*.png")), sorted((out / "testA").glob("*.png"))
    assert [p.name for p in sketches] == [p.name for p in test_pairs]  # the A sides alone: what the model takes
    assert (read_image(sketches[0]) == read_image(test_pairs[0])[:, :256]).all()
    return out


def train(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cyclegan_edge.train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=480, env=ENV)  # fmt: skip


def read_log(path: Path) -> dict[int, dict[str, float]]:
    with open(path) as f:
        return {int(r["iteration"]): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}


def fixed_pair_l1(g_path: Path, root: Path) -> float:
    from cyclegan_edge.imaging.cv import cv2
    from cyclegan_edge.imaging.io import read_image

    ab = read_image(sorted((root / "train").glob("*.png"))[0])
    half = ab.shape[1] // 2
    a, b = (torch.from_numpy(frames_to_tensor([cv2().resize(x, (64, 64), interpolation=cv2().INTER_CUBIC)]))
            for x in (ab[:, :half], ab[:, half:]))  # fmt: skip
    with torch.no_grad():
        return float((load_generator(g_path).model(a) - b).abs().mean())


def run_pix2pix(root: Path, out: Path, name: str, *extra: str) -> Path:
    r = train(["--model", "pix2pix", "--dataroot", str(root), *TINY, "--output", str(out), "--name", name, *extra], out)
    assert r.returncode == 0, r.stderr[-2000:]
    return out / name


@pytest.fixture(scope="module")
def untrained_l1(pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> float:
    run = run_pix2pix(pairs, tmp_path_factory.mktemp("untrained"), "u", *OVERFIT, "--lr", "0", "--max-iters", "1")
    return fixed_pair_l1(run / "G_A2B.pth", pairs)


@pytest.fixture(scope="module")
def trained(pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_pix2pix(pairs, tmp_path_factory.mktemp("trained"), "t", *OVERFIT, "--lr", "2e-3", "--max-iters", "100",
                       "--sample-every", "50")  # fmt: skip


def test_pix2pix_learns_the_pair_and_writes_outputs(trained: Path, pairs: Path, untrained_l1: float, margin: Any) -> None:
    ratio = margin("pix2pix L1 to B trained/untrained", fixed_pair_l1(trained / "G_A2B.pth", pairs) / untrained_l1,
                   "<", LEARNS_BAR)  # fmt: skip
    assert ratio < LEARNS_BAR, f"L1 after/before = {ratio:.3f} (bar {LEARNS_BAR})"
    assert sorted(read_log(trained / "log.csv")) == list(range(1, 101))
    assert {"G_gan", "G_L1", "D_real", "D_fake"} <= set(read_log(trained / "log.csv")[100])
    assert {p.name for p in (trained / "samples").iterdir()} == {"iter_0000050.png", "iter_0000100.png", "final.png"}
    g = load_generator(trained / "G_A2B.pth")
    assert g.meta["direction"] == "A->B" and g.meta["train_size"] == 64 and g.config.name == "unet_64_ngf8_batch"
    config = json.loads((trained / "config.json").read_text())
    assert config["model"] == "pix2pix" and config["generator"]["size_multiple"] == 64
    # the training state holds the same generator (for export from latest.pt)
    state_g = load_generator(trained / "checkpoints" / "latest.pt")
    for (k, v), w in zip(g.model.state_dict().items(), state_g.model.state_dict().values()):
        assert torch.equal(v, w), k


def test_export_takes_pix2pix_direction_names(trained: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """pix2pix's reference spells a direction AtoB; export's --direction took only A->B (anything else reached the
    checkpoint reader, after torch had loaded)."""
    from cyclegan_edge.export.__main__ import main as export_main

    state = trained / "checkpoints" / "latest.pt"
    assert export_main([str(state), "--onnx", str(tmp_path / "p.onnx"), "--direction", "AtoB", "--test-count",
                        "1"]) == 0  # fmt: skip
    assert export_main([str(state), "--onnx", str(tmp_path / "q.onnx"), "--direction", "BtoA"]) == 1
    assert f"{state}: training state with no B->A generator (it holds A->B)" in capsys.readouterr().err
    assert export_main([str(state), "--onnx", str(tmp_path / "r.onnx"), "--direction", "AB"]) == 2
    assert "'AB': choose A->B or B->A" in capsys.readouterr().err
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "r.onnx").exists()


def test_lr0_fails_the_same_bar(pairs: Path, tmp_path: Path, untrained_l1: float, margin: Any) -> None:
    """A trainer that does not learn (lr 0) stays above the bar: the test above can tell the two apart."""
    run = run_pix2pix(pairs, tmp_path, "z", *OVERFIT, "--lr", "0", "--max-iters", "100")
    ratio = margin("pix2pix L1 to B lr 0/untrained", fixed_pair_l1(run / "G_A2B.pth", pairs) / untrained_l1, ">=", LEARNS_BAR)
    assert ratio >= LEARNS_BAR


def test_resume_matches_uninterrupted_run(pairs: Path, tmp_path: Path) -> None:
    """Dropout and BatchNorm on, 2 pairs per epoch with flips: a run stopped at 3 and resumed to 7 equals one run to 7."""
    common = ["--max-images", "2", "--save-every", "2"]
    run_pix2pix(pairs, tmp_path, "ref", *common, "--max-iters", "7")
    run_pix2pix(pairs, tmp_path, "cut", *common, "--max-iters", "3")
    r = train(["--dataroot", str(pairs), "--output", str(tmp_path), "--name", "cut", "--resume", "--max-iters", "7"],
              tmp_path)  # no --model: the run's config.json says pix2pix  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "at epoch 1, batch 1 (iteration 3)" in r.stderr
    a, b = read_log(tmp_path / "ref" / "log.csv"), read_log(tmp_path / "cut" / "log.csv")
    assert sorted(a) == sorted(b) == list(range(1, 8))
    for it in range(4, 8):
        for key in ("G_gan", "G_L1", "D_real", "D_fake"):
            assert a[it][key] == b[it][key], (it, key)
    ga, gb = (load_generator(tmp_path / n / "G_A2B.pth").model for n in ("ref", "cut"))
    for (k, v), w in zip(ga.state_dict().items(), gb.state_dict().values()):
        assert torch.equal(v, w), k  # weights and BatchNorm running statistics


def test_a_b_to_a_runs_sample_grid_names_the_sides_it_shows(pairs: Path, tmp_path: Path) -> None:
    """--direction BtoA feeds the pairs' B sides in, and its sample grids still read real A | fake B | real B."""
    from cyclegan_edge.train.config import Pix2PixConfig
    from cyclegan_edge.train.pix2pix import Pix2Pix

    for direction, labels in (("AtoB", ["real A", "fake B", "real B"]), ("BtoA", ["real B", "fake A", "real A"])):
        cfg = Pix2PixConfig(dataroot=str(pairs), netG="unet_64", ngf=8, ndf=8, load_size=64, crop_size=64,
                            direction=direction, output=str(tmp_path), name=direction)  # fmt: skip
        assert Pix2Pix(cfg).grid_labels() == [labels]


def test_two_folder_pairs_equal_side_by_side(pairs: Path, tmp_path: Path) -> None:
    from cyclegan_edge.imaging.io import read_image, write_image
    from cyclegan_edge.train.data import PairedDataset, paired_files
    from cyclegan_edge.train.config import Pix2PixConfig

    for p in sorted((pairs / "train").glob("*.png")):
        ab = read_image(p)
        write_image(tmp_path / "trainA" / p.name, ab[:, : ab.shape[1] // 2])
        write_image(tmp_path / "trainB" / p.name, ab[:, ab.shape[1] // 2 :])
    (tmp_path / "trainB" / "alone.png").write_bytes((tmp_path / "trainB" / p.name).read_bytes())
    cfg = Pix2PixConfig(load_size=72, crop_size=64, seed=3)
    side = PairedDataset(paired_files(Pix2PixConfig(dataroot=str(pairs), load_size=72, crop_size=64), False), cfg, 64)
    folders = PairedDataset(paired_files(Pix2PixConfig(dataroot=str(tmp_path)), False), cfg, 64)
    assert len(side) == len(folders) == 4
    for i in range(4):
        s, f = side[i], folders[i]
        assert torch.equal(s["A"], f["A"]) and torch.equal(s["B"], f["B"]) and s["A"].shape == (3, 64, 64)
        assert torch.equal(s["A"][0], s["A"][2]) and not torch.equal(s["B"][0], s["B"][2])  # A: grey edges, B: photo
    swapped = PairedDataset(paired_files(Pix2PixConfig(dataroot=str(pairs)), False), cfg, 64, b_to_a=True)
    assert torch.equal(swapped[0]["A"], side[0]["B"])


def test_pairs_of_other_sizes_are_refused_before_a_batch_mixes_them(pairs: Path, tmp_path: Path) -> None:
    """--preprocess none (or scale_width) keeps each pair's size, and --batch-size 2 batches them: a pair of another
    size failed mid-epoch ("stack expects each tensor to be equal size"), whenever a batch first mixed sizes. As
    CycleGAN's data does, the pairs are checked before training."""
    from cyclegan_edge.imaging.io import read_image, write_image
    from cyclegan_edge.train.config import Pix2PixConfig
    from cyclegan_edge.train.data import DataError, paired_files

    (tmp_path / "train").mkdir()
    for p in sorted((pairs / "train").glob("*.png")):
        shutil.copy(p, tmp_path / "train" / p.name)
    small = sorted((tmp_path / "train").glob("*.png"))[-1]
    write_image(small, read_image(small)[:128, :256])
    with pytest.raises(DataError, match="--preprocess none keeps each image's size, and --batch-size 2 batches "
                                        rf"images of one size: .* \(trained at 256x256\), {small.name} 128x128"):
        paired_files(Pix2PixConfig(dataroot=str(tmp_path), preprocess="none", batch_size=2), False)
    assert len(paired_files(Pix2PixConfig(dataroot=str(tmp_path), preprocess="none", batch_size=1), False)) == 4
    # scale_width makes every pair --load-size wide: pairs of one aspect batch at any size (a first version of this
    # check compared the files' sizes and refused them); another aspect is refused
    cfg = Pix2PixConfig(dataroot=str(tmp_path), preprocess="scale_width", batch_size=2, load_size=64, crop_size=32)
    assert len(paired_files(cfg, False)) == 4
    write_image(small, read_image(small)[:96, :256])
    with pytest.raises(DataError, match=r"--preprocess scale_width keeps each image's aspect \(64 px wide\)"):
        paired_files(cfg, False)


def test_two_folder_pairs_that_are_ambiguous_or_skewed_are_named(
        pairs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """x.jpg and x.png in trainB: one was dropped without a word; the image without a partner went unnamed; a
    pair of another shape (a square A, a 3:2 B) trained unaligned without a word."""
    from cyclegan_edge.imaging.io import read_image, write_image
    from cyclegan_edge.train.data import paired_files
    from cyclegan_edge.train.config import Pix2PixConfig

    names = []
    for p in sorted((pairs / "train").glob("*.png")):
        ab = read_image(p)
        write_image(tmp_path / "trainA" / p.name, ab[:, : ab.shape[1] // 2])
        write_image(tmp_path / "trainB" / p.name, ab[:, ab.shape[1] // 2 :])
        names.append(p.stem)
    b = tmp_path / "trainB"
    write_image(b / f"{names[0]}.jpg", read_image(b / f"{names[0]}.png"))  # the same name twice
    write_image(tmp_path / "trainA" / "zz_alone.png", read_image(b / f"{names[0]}.png"))
    write_image(b / f"{names[1]}.png", cv2.resize(read_image(b / f"{names[1]}.png"), (300, 200)))
    with caplog.at_level("WARNING"):
        got = paired_files(Pix2PixConfig(dataroot=str(tmp_path)), False)
    assert len(got) == 4 and got[0][1] == b / f"{names[0]}.jpg"  # the first of the two (sorted), as named
    assert (f"{b}: 1 file shares a name with another (first: {names[0]}.jpg and {names[0]}.png): pairs are matched "
            "by name; the first of each is used") in caplog.text
    assert f"1 image without a partner of the same name, skipped (first: {tmp_path / 'trainA' / 'zz_alone.png'})" \
        in caplog.text
    assert (f"1 of 4 pairs differ in shape (first: {tmp_path / 'trainA' / names[1]}.png 256x256, {b / names[1]}.png "
            "300x200)") in caplog.text


def test_runtime_cli_runs_the_checkpoint_at_any_size(trained: Path, pairs: Path, tmp_path: Path) -> None:
    from cyclegan_edge.imaging.io import read_image, write_image

    src = tmp_path / "in"
    ab = read_image(sorted((pairs / "test").glob("*.png"))[0])
    write_image(src / "odd.png", ab[:37, :53])
    write_image(src / "tall.png", ab[:200, :130])
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.runtime", "--input", str(src), "--output", str(out),
                        "--model", str(trained / "G_A2B.pth")], capture_output=True, text=True, env=ENV, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 of 2 files ok" in r.stdout
    assert read_image(out / "odd.png").shape == (37, 53, 3) and read_image(out / "tall.png").shape == (200, 130, 3)


def test_images_that_are_no_pair_are_named(pairs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """train/ holds A|B pairs of squares; a photo dropped in by mistake is cut in half all the same: named."""
    from cyclegan_edge.imaging.io import read_image, write_image
    from cyclegan_edge.train.data import paired_files
    from cyclegan_edge.train.config import Pix2PixConfig

    shutil.copytree(pairs / "train", tmp_path / "train")
    with caplog.at_level("WARNING"):
        assert len(paired_files(Pix2PixConfig(dataroot=str(tmp_path)), False)) == 4
    assert "not twice as wide" not in caplog.text
    photo = read_image(sorted((pairs / "train").glob("*.png"))[0])[:, 256:]  # a B side alone: square
    write_image(tmp_path / "train" / "zz_photo.png", photo)
    with caplog.at_level("WARNING"):
        assert len(paired_files(Pix2PixConfig(dataroot=str(tmp_path)), False)) == 5
    assert "1 of 5 images are not twice as wide as high (e.g. zz_photo.png, 256x256)" in caplog.text
