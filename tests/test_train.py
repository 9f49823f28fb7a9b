from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import ONE_THREAD, SHARED_DATA, need
from cyclegan_edge import ASSETS_DIR
from cyclegan_edge.models import load_generator

TINY = [
    "--netG", "mobile", "--mobile-config", "4_4_8_4_8_8_4_4", "--ndf", "8",
    "--load-size", "40", "--crop-size", "32", "--workers", "0", "--log-every", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few real horse2zebra images, including a real greyscale zebra file."""
    import cv2

    src = need(SHARED_DATA / "horse2zebra")
    root = tmp_path_factory.mktemp("h2z")
    for domain, n in (("trainA", 4), ("trainB", 4)):
        (root / domain).mkdir()
        files = sorted((src / domain).glob("*.jpg"))
        picked = files[:n]
        if domain == "trainB":
            grey = next(p for p in files if cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ndim == 2)
            picked = picked[:-1] + [grey]
        for p in picked:
            shutil.copy(p, root / domain / p.name)
    return root


def train(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 480) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cyclegan_edge.train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **ONE_THREAD, **(env or {})})  # fmt: skip


def self_signalling_trainer(at_query: int, *signals: int) -> str:
    """A ``python -c`` script running the trainer (its flags as arguments) that sends itself ``signals``, in turn, at
    its ``at_query``-th image-pool query: two a step (A and B), so query 2k+1 is iteration k+1's first, between its
    generators' step and its discriminators'. Sent from outside on a timer, a signal lands wherever a loaded machine
    lets it, and two can be pending at once (Python then handles SIGINT first)."""
    return textwrap.dedent(f"""
        import os, signal, sys
        from cyclegan_edge.train import pool

        query, calls = pool.ImagePool.query, []
        def signalled_query(self, images):
            calls.append(1)
            if len(calls) == {at_query}:
                for signum in {[int(s) for s in signals]}:
                    os.kill(os.getpid(), signum)
            return query(self, images)
        pool.ImagePool.query = signalled_query
        from cyclegan_edge.train.__main__ import main
        sys.exit(main(sys.argv[1:]))
    """)


def read_log(path: Path) -> dict[int, dict[str, float]]:
    """Last row per iteration (a resumed run appends rows again from its checkpoint)."""
    with open(path) as f:
        return {int(r["iteration"]): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}


def wait_for_logged(log_path: Path, rows: int, poll: float = 0.05, timeout: float = 120) -> None:
    """Until ``log_path`` holds iteration ``rows`` (the run is training), or ``timeout`` s."""
    deadline = time.time() + timeout
    while time.time() < deadline and not (log_path.exists() and max(read_log(log_path), default=0) >= rows):
        time.sleep(poll)


# "It learns": overfit one real pair at 32 px. The cycle L1 of the final G/F on that fixed pair, against the
# untrained pair of the same seed, is a strong, low-noise effect (measured: see benchmarks/test_margins.md),
# unlike single-iteration training losses, which swing by 2x from one image draw to the next.
OVERFIT = ["--max-images", "1", "--load-size", "32", "--crop-size", "32", "--no-flip", "--lambda-cycle", "50",
           "--seed", "0"]  # fmt: skip
LEARNS_BAR = 0.5


def fixed_pair_cycle_l1(run: Path, root: Path) -> float:
    import cv2

    from cyclegan_edge.imaging.frames import frames_to_tensor

    def first(domain: str) -> torch.Tensor:
        img = cv2.imread(str(sorted((root / domain).glob("*.jpg"))[0]), cv2.IMREAD_COLOR)
        return torch.from_numpy(frames_to_tensor([cv2.resize(img, (32, 32), interpolation=cv2.INTER_CUBIC)]))

    g, f = load_generator(run / "G_A2B.pth").model, load_generator(run / "G_B2A.pth").model
    a, b = first("trainA"), first("trainB")
    with torch.no_grad():
        return float((f(g(a)) - a).abs().mean() + (g(f(b)) - b).abs().mean())


@pytest.fixture(scope="module")
def untrained_cycle_l1(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> float:
    out = tmp_path_factory.mktemp("untrained")
    r = train(["--dataroot", str(tiny_root), *TINY, *OVERFIT, "--lr", "0", "--max-iters", "1", "--output", str(out),
               "--name", "u"], out)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return fixed_pair_cycle_l1(out / "u", tiny_root)


@pytest.mark.parametrize("lr", ["2e-3", "0"])
def test_training_learns_the_cycle_and_writes_outputs(lr: str, tiny_root: Path, tmp_path: Path,
                                                      untrained_cycle_l1: float, margin: Any) -> None:  # fmt: skip
    """With lr 0 (a trainer that does not learn) the same bar must fail: the test can tell the two apart."""
    import cv2

    r = train(["--dataroot", str(tiny_root), *TINY, *OVERFIT, "--lr", lr, "--max-iters", "100", "--sample-every", "50",
               "--save-every", "40", "--output", str(tmp_path), "--name", "r"], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "r"
    ratio = margin("cycle L1 trained/untrained", fixed_pair_cycle_l1(run, tiny_root) / untrained_cycle_l1,
                   "<" if float(lr) > 0 else ">=", LEARNS_BAR)  # fmt: skip
    assert (ratio < LEARNS_BAR) == (float(lr) > 0), f"cycle L1 after/before = {ratio:.3f} (bar {LEARNS_BAR})"
    assert sorted(read_log(run / "log.csv")) == list(range(1, 101))
    assert "\r" not in r.stderr and "100/100 [" in r.stderr  # the progress bar, as lines in a log
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert {p.name for p in (run / "samples").iterdir()} == {"iter_0000050.png", "iter_0000100.png", "final.png"}
    plot = cv2.imread(str(run / "losses.png"))  # drawn from log.csv: lines in colour on white
    assert plot.shape[:2] == (460, 1100) and (plot.std(axis=2) > 40).sum() > 2000
    g = load_generator(run / "G_A2B.pth")
    assert g.meta["direction"] == "A->B" and g.meta["train_size"] == 32
    assert load_generator(run / "G_B2A.pth").meta["direction"] == "B->A"
    assert (run / "config.json").is_file()


def test_sigkill_then_resume_matches_uninterrupted_run(tiny_root: Path, tmp_path: Path) -> None:
    common = ["--dataroot", str(tiny_root), *TINY, "--max-iters", "14", "--n-epochs", "2", "--n-epochs-decay", "2",
              "--save-every", "3", "--output", str(tmp_path)]  # fmt: skip
    ref = train([*common, "--name", "ref"], tmp_path)
    assert ref.returncode == 0, ref.stderr[-2000:]

    # Same run, killed with SIGKILL in the middle of iteration 11 (iteration 9's checkpoint exists), by itself: a
    # test process that stalled on a loaded machine once let it run to the end first
    script = self_signalling_trainer(21, signal.SIGKILL)  # the first of iteration 11's image-pool queries
    killed = subprocess.run([sys.executable, "-c", script, *common, "--name", "killed"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={**os.environ, **ONE_THREAD})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    log_path = tmp_path / "killed" / "log.csv"
    assert max(read_log(log_path)) == 10
    state = torch.load(tmp_path / "killed" / "checkpoints" / "latest.pt", weights_only=True)
    resumed_from = state["position"]["iteration"]
    assert resumed_from == 9

    stale = tmp_path / "killed" / "checkpoints" / ".latest.pt.a1b2c3d4.tmp.pt"  # what a kill during a save leaves
    stale.write_bytes(b"")
    with open(log_path, "ab") as f:  # the zeros a power loss can leave at the end of a file: a bare ValueError
        f.write(b"\0" * 40 + b"\n")
    res = train([*common, "--name", "killed", "--resume"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not stale.exists()
    assert f"at epoch {state['position']['epoch']}" in res.stderr
    a, b = read_log(tmp_path / "ref" / "log.csv"), read_log(log_path)
    assert sorted(b) == sorted(a) == list(range(1, 15))
    # rows logged after the checkpoint were dropped on resume: each iteration appears once
    with open(log_path) as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == list(range(1, 15))
    for it in range(resumed_from + 1, 15):  # epoch boundaries included: 4 images per epoch here
        for key in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"):
            assert a[it][key] == b[it][key], (it, key)
    ga, gb = load_generator(tmp_path / "ref" / "G_A2B.pth"), load_generator(tmp_path / "killed" / "G_A2B.pth")
    for (k, v), w in zip(ga.model.state_dict().items(), gb.model.state_dict().values()):
        assert torch.equal(v, w), k


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_and_exits_cleanly(sig: int, tiny_root: Path, tmp_path: Path) -> None:
    """Ctrl-C, and SIGTERM (`timeout`, Slurm's scancel, `docker stop`) alike: the iteration ends, all is saved."""
    cmd = [sys.executable, "-m", "cyclegan_edge.train", "--dataroot", str(tiny_root), *TINY, "--save-every", "1000",
           "--output", str(tmp_path), "--name", "c"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log_path = tmp_path / "c" / "log.csv"
    wait_for_logged(log_path, 3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err[-2000:]
    assert "continue with --resume" in err
    said = "stop requested: saving a checkpoint after this iteration (Ctrl-C again: stop at once, saving nothing)" if (
        sig == signal.SIGINT) else "SIGTERM: stopping after this iteration, once a checkpoint is saved"  # no "again"
    assert said in out, out[-2000:]
    state = torch.load(tmp_path / "c" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["position"]["iteration"] == max(read_log(log_path))
    assert (tmp_path / "c" / "G_A2B.pth").is_file()


def test_stop_signals_one_stop_arriving_twice_is_one_a_second_ctrl_c_aborts() -> None:
    """Slurm's scancel or a terminal's Ctrl-C reaches every rank, and torchrun forwards its own copy: one stop
    arrived twice and aborted the run unsaved. The same signal within MERGE_S is one stop; SIGTERM never aborts."""
    from cyclegan_edge.train.stopping import Aborted, StopFlag

    for first in (signal.SIGINT, signal.SIGTERM):
        flag = StopFlag()
        flag(first, None)
        flag(first, None)  # the forwarded copy: merged
        assert flag.requested and flag.signum == first
    flag = StopFlag()
    flag(signal.SIGTERM, None)
    time.sleep(StopFlag.MERGE_S + 0.1)
    flag(signal.SIGTERM, None)  # a scheduler repeating itself: still the same stop
    with pytest.raises(Aborted):
        flag(signal.SIGINT, None)  # the user, on top of it
    flag = StopFlag()
    flag(signal.SIGINT, None)
    time.sleep(StopFlag.MERGE_S + 0.1)
    with pytest.raises(Aborted):
        flag(signal.SIGINT, None)  # Ctrl-C again


def test_a_second_ctrl_c_saves_nothing(tiny_root: Path, tmp_path: Path) -> None:
    """A second Ctrl-C stops at once, in the middle of an iteration: it saved that half-applied step over the
    checkpoint (generators of iteration N+1, discriminators of N, position N), and --resume applied it twice. Now it
    saves nothing: here no checkpoint was due yet, so none exists, and the run says so. SIGTERM, then Ctrl-C, sent
    by the trainer to itself between its generators' and its discriminators' steps of iteration 3 (two Ctrl-C within
    MERGE_S count as one; sent from outside, both could be pending at once, and Python handles SIGINT first)."""
    script = self_signalling_trainer(5, signal.SIGTERM, signal.SIGINT)  # the first of iteration 3's queries
    r = subprocess.run([sys.executable, "-c", script, "--dataroot", str(tiny_root), *TINY, "--max-iters", "100",
                        "--save-every", "1000", "--output", str(tmp_path), "--name", "twice"], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path, env={**os.environ, **ONE_THREAD},
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    assert r.returncode == 143, (r.returncode, r.stderr[-2000:])
    assert "aborted at iteration 2 by a second stop signal, saving nothing; no checkpoint had been saved yet" in (
        r.stderr), r.stderr[-2000:]
    assert max(read_log(tmp_path / "twice" / "log.csv")) == 2
    assert not (tmp_path / "twice" / "checkpoints" / "latest.pt").exists()
    assert not (tmp_path / "twice" / "G_A2B.pth").exists() and "Traceback" not in r.stderr


def test_a_second_signal_while_the_log_closes_is_still_an_abort(tiny_root: Path, tmp_path: Path) -> None:
    """The stop handler is in place before the progress bar and log.csv open and after they close: a second signal
    landing there escaped the trainer's abort handling (error: interrupted, exit 130 after a SIGTERM, the signal
    handlers and torchrun's process group left as they were). Here SIGTERM then Ctrl-C are sent as the log closes."""
    script = textwrap.dedent("""
        import os, signal, sys
        from cyclegan_edge.train import trainer

        closing = trainer.RunLog.__exit__
        def signalled_exit(self, *exc):
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            return closing(self, *exc)
        trainer.RunLog.__exit__ = signalled_exit
        from cyclegan_edge.train.__main__ import main
        sys.exit(main(sys.argv[1:]))
    """)
    r = subprocess.run([sys.executable, "-c", script, "--dataroot", str(tiny_root), *TINY, "--max-iters", "2",
                        "--output", str(tmp_path), "--name", "closing"], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env={**os.environ, **ONE_THREAD},
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    assert r.returncode == 143 and "aborted at iteration 2 by a second stop signal, saving nothing" in r.stderr, (
        r.returncode, r.stderr[-2000:])
    assert "error: interrupted" not in r.stderr and "Traceback" not in r.stderr


def test_kill_9_frees_the_run_for_an_immediate_restart(tiny_root: Path, tmp_path: Path) -> None:
    """A DataLoader worker outlived a kill -9'd trainer by up to 5 s, holding the run's lock it had inherited: a
    restart right after (systemd, a Slurm requeue) was refused as "another process is training this run"."""
    from cyclegan_edge.atomic import OutputBusy, lock_output, unlock_output

    cmd = [sys.executable, "-m", "cyclegan_edge.train", "--dataroot", str(tiny_root), *TINY, "--workers", "1",
           "--max-iters", "100000", "--output", str(tmp_path), "--name", "k"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **ONE_THREAD})  # fmt: skip
    log_path = tmp_path / "k" / "log.csv"
    wait_for_logged(log_path, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 2.5  # the kernel's signal to the worker, and its exit (the watchdog's period: 5 s)
    while True:
        try:
            fd = lock_output(tmp_path / "k")
            break
        except OutputBusy as e:
            if time.monotonic() > deadline:
                pytest.fail(f"the run is still locked 2.5 s after kill -9: {e}")
            time.sleep(0.05)
    unlock_output(tmp_path / "k", fd)
    # a worker whose trainer died before it asked for the death signal (its parent is no longer the trainer): it
    # ends at once, not after the watchdog's period
    r = subprocess.run([sys.executable, "-c", "from cyclegan_edge.train.stopping import start_worker; "
                        "start_worker(0, trainer_pid=1); print('still running')"], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == -signal.SIGKILL and r.stdout == "", (r.returncode, r.stdout, r.stderr[-1000:])


def test_resume_with_other_training_files_says_so_and_restarts_the_epoch(tiny_root: Path, tmp_path: Path) -> None:
    """Files added to trainA since the checkpoint (or other processes under torchrun): --resume continued "mid-epoch"
    in another sequence, silently; and counting from the old epoch length it would have ended early."""
    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    common = ["--dataroot", str(data), *TINY, "--n-epochs", "1", "--n-epochs-decay", "1", "--output", str(tmp_path),
              "--name", "grow"]  # fmt: skip
    assert train([*common, "--max-iters", "2"], tmp_path).returncode == 0  # epoch 0, 2 of its 4 batches
    for p in sorted((data / "trainA").glob("*.jpg")):
        shutil.copy(p, data / "trainA" / f"more_{p.name}")
    r = train([*common, "--resume", "--max-iters", "1000"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert ("--resume: A images 4 -> 8 since the checkpoint; an epoch is now 8 iterations; epoch 0 starts again from "
            "its beginning (2 of its batches were done)") in r.stderr, r.stderr[-2000:]
    assert max(read_log(tmp_path / "grow" / "log.csv")) == 2 + 8 + 8  # both epochs whole, at their new length
    for p in sorted((data / "trainB").glob("*.jpg")):  # once more, on the finished run: its last epoch is done
        shutil.copy(p, data / "trainB" / f"more_{p.name}")
    # and a kill between its two generators' saves left G_B2A.pth from an earlier save: it was kept as it was
    from cyclegan_edge.models import save_generator

    old = load_generator(tmp_path / "grow" / "G_B2A.pth")
    save_generator(tmp_path / "grow" / "G_B2A.pth", old.model, {**old.meta, "iterations": 2})
    r = train([*common, "--resume", "--max-iters", "1000"], tmp_path)
    assert r.returncode == 0 and "has done all its 2 epochs: nothing to train" in r.stderr, r.stderr[-2000:]
    assert max(read_log(tmp_path / "grow" / "log.csv")) == 18
    assert ("--resume: G_B2A.pth missing or older than the checkpoint (iteration 18), as a kill leaves them: written "
            "again from it") in r.stderr and load_generator(tmp_path / "grow" / "G_B2A.pth").meta["iterations"] == 18


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_checkpoint(tiny_root: Path, tmp_path: Path) -> None:
    """torch's zip writer reports a full disk as "[enforce fail at inline_container.cc:672] . unexpected pos ...":
    the line said nothing of the disk. Needs a small tmpfs (root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("a small tmpfs cannot be mounted here (needs root)")
    try:
        cmd = [sys.executable, "-m", "cyclegan_edge.train", "--dataroot", str(tiny_root), *TINY, "--save-every", "1000",
               "--max-iters", "100000", "--output", str(disk), "--name", "full"]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **ONE_THREAD})  # fmt: skip
        ckpt = disk / "full" / "checkpoints" / "latest.pt"
        deadline = time.time() + 120
        while time.time() < deadline and not ckpt.is_file():  # the first epoch's end (4 images)
            time.sleep(0.02)
        with open(disk / "filler", "wb") as f:  # leave room for log rows, not for the next checkpoint
            f.write(b"\0" * (shutil.disk_usage(disk).free - (96 << 10)))
        saved = torch.load(ckpt, weights_only=True)["position"]["iteration"]
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err[-2000:]
        assert err.strip().splitlines()[-1] == f"error: {ckpt}: No space left on device", err[-2000:]
        assert torch.load(ckpt, weights_only=True)["position"]["iteration"] == saved  # the earlier one, whole
        assert sorted(p.name for p in ckpt.parent.iterdir()) == ["latest.pt"]  # no temporary left
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_second_trainer_on_a_running_run_is_refused(tiny_root: Path, tmp_path: Path) -> None:
    """Two trainers on one run resumed the same checkpoint; the second cut the first one's log rows and both saved
    over each other's checkpoints. The second is one line now, and the first ends as it would have."""
    cmd = [sys.executable, "-m", "cyclegan_edge.train", "--dataroot", str(tiny_root), *TINY, "--max-iters", "100000",
           "--output", str(tmp_path), "--name", "busy"]  # fmt: skip
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **ONE_THREAD})  # fmt: skip
    log_path = tmp_path / "busy" / "log.csv"
    try:
        wait_for_logged(log_path, 2)
        second = train(["--dataroot", str(tiny_root), *TINY, "--max-iters", "100000", "--output", str(tmp_path),
                        "--name", "busy", "--resume"], tmp_path)  # fmt: skip
        assert second.returncode == 1 and second.stderr.strip().splitlines()[-1] == (
            f"error: {tmp_path / 'busy'}: another process (pid {first.pid}) is training this run now; wait for it to "
            "end, or give another --name"), second.stderr[-2000:]
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
    assert first.returncode == 130 and "continue with --resume" in err, err[-2000:]
    assert not (tmp_path / ".busy.lock").exists()  # released at the end


def test_ctrl_c_while_starting_is_never_lost(tiny_root: Path, tmp_path: Path) -> None:
    """Ctrl-C at any moment of the start (torch's extension load swallowed one: the run then went on). Killed by
    SIGINT after the line (-2) is the same to a shell (130): an interrupted lazy import in torch re-raises at exit.
    Timed from the call of main(), which a wrapper marks: before it, Python itself and the module's imports (0.1 s
    on an idle machine, several times that on a loaded one) print Python's own traceback."""
    script = textwrap.dedent("""
        import pathlib, sys
        from cyclegan_edge.train.__main__ import main
        pathlib.Path(sys.argv.pop(1)).touch()
        sys.exit(main(sys.argv[1:]))
    """)
    cmd = ["--dataroot", str(tiny_root), *TINY, "--max-iters", "1000", "--output", str(tmp_path)]
    outcomes = []
    for i in range(8):
        started = tmp_path / f"started{i}"
        proc = subprocess.Popen([sys.executable, "-c", script, str(started), *cmd, "--name", f"r{i}"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **ONE_THREAD},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        deadline = time.monotonic() + 60
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1 * i)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        last = err.strip().splitlines()[-1] if err.strip() else ""
        outcomes.append((round(0.1 * i, 2), started.exists(), proc.returncode, last[:80]))
    assert all(marked and rc in (130, -signal.SIGINT) and ("error: interrupted" in last or "continue with --resume"
               in last) for _, marked, rc, last in outcomes), outcomes  # fmt: skip


def test_init_from_a_published_generator(tiny_root: Path, tmp_path: Path) -> None:
    """--init-from: with lr 0 both saved generators are exactly the published one's leading channels (upsampling
    rewritten for resize-conv), and say where they started; --resume does not need the file; a generator that
    does not fit is one usage line, before --overwrite touches the existing run."""
    from cyclegan_edge.models import ResnetGenerator, init_from_wider

    from conftest import COMPRESSED_G

    published = tmp_path / "published.pth"
    shutil.copy(need(COMPRESSED_G), published)
    command = ["--dataroot", str(tiny_root), *TINY, "--init-from", "published.pth", "--lr", "0", "--output",
               str(tmp_path), "--name", "ft"]  # fmt: skip
    r = train([*command, "--max-iters", "1"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    a2b, b2a = load_generator(tmp_path / "ft" / "G_A2B.pth"), load_generator(tmp_path / "ft" / "G_B2A.pth")
    expected = ResnetGenerator(a2b.model.cfg)
    assert a2b.model.cfg.upsample == "bilinear" and init_from_wider(expected, load_generator(published).model)
    for k, v in expected.state_dict().items():
        assert torch.equal(v, a2b.model.state_dict()[k]) and torch.equal(v, b2a.model.state_dict()[k]), k
    assert a2b.meta["init_from"] == str(published)  # absolute, as typed relative
    assert "--upsample convtranspose starts from its exact outputs" in r.stderr  # the start is not the original
    published.unlink()  # a resumed run's weights come from its checkpoint, not from the file it started from
    more = train([*command, "--resume", "--max-iters", "2"], tmp_path)  # the same command (relative path) again
    assert more.returncode == 0 and "resumed from" in more.stderr, more.stderr[-2000:]
    shutil.copy(need(COMPRESSED_G), published)
    bad = train(["--dataroot", str(tiny_root), *TINY, "--netG", "resnet_6blocks", "--ngf", "8", "--init-from",
                 str(published), "--max-iters", "1", "--output", str(tmp_path), "--name", "ft", "--overwrite"], tmp_path)  # fmt: skip
    last = bad.stderr.strip().splitlines()[-1]
    assert bad.returncode == 2 and last.startswith(f"error: --init-from {published}: give --netG mobile --mobile-config "
                                                   "16_16_32_16_32_32_16_16 (or narrower") and "does not fit" in last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ft", "published.pth"]  # refused before --overwrite moved ft
    onnx = train(["--dataroot", str(tiny_root), *TINY, "--init-from", str(ASSETS_DIR / "photo2monet.onnx"),
                  "--max-iters", "1", "--output", str(tmp_path), "--name", "ft", "--overwrite"], tmp_path)  # fmt: skip
    assert onnx.returncode == 1 and onnx.stderr.strip().splitlines()[-1].startswith(  # a bad model: 1, as --teacher
        f"error: --init-from {ASSETS_DIR / 'photo2monet.onnx'}"), onnx.stderr[-2000:]


def test_each_rank_gets_its_device_and_the_process_group_follows_it() -> None:
    """torchrun --device cpu on a GPU machine joined NCCL (chosen by whether CUDA existed, not by the device) and
    failed. The backend follows the device now; one GPU named for every rank, or more ranks than GPUs, is one
    line. (The device's choice, here without a GPU; the gloo group itself runs in the test below.)"""
    from cyclegan_edge.errors import UsageError
    from cyclegan_edge.train.dist import Dist, process_group_backend, rank_device

    second, cpu = Dist(world=2, rank=1, local_rank=1), torch.device("cpu")
    assert rank_device(cpu, second, True, 2) == cpu and process_group_backend(cpu) == "gloo"
    assert rank_device(None, second, True, 2) == torch.device("cuda:1") == rank_device(torch.device("cuda"), second,
                                                                                       True, 2)  # fmt: skip
    assert process_group_backend(torch.device("cuda:1")) == "nccl" and rank_device(None, second, False, 0) == cpu
    assert rank_device(torch.device("cuda:1"), Dist(), True, 2) == torch.device("cuda:1")  # one process: as named
    with pytest.raises(UsageError, match="under torchrun each process takes the GPU of its LOCAL_RANK"):
        rank_device(torch.device("cuda:0"), second, True, 2, "cuda:0")
    with pytest.raises(UsageError, match=r"LOCAL_RANK 1: 1 CUDA GPU\(s\) here: --nproc-per-node 1 at most"):
        rank_device(None, second, True, 1)


def test_torchrun_two_processes_gloo(tiny_root: Path, tmp_path: Path, margin: Any) -> None:
    """2 processes x batch 1 == 1 process x batch 2 (no image pool: each rank keeps its own)."""
    # The published ConvTranspose layers: the 1e-2 output bound below was measured with them (with the bilinear
    # resize-conv default the same 4 steps differ by 2.6e-2; open in the closing note of #21).
    common = ["--dataroot", str(tiny_root), *TINY, "--upsample", "convtranspose", "--max-iters", "4", "--pool-size", "0",
              "--sample-every", "2", "--output", str(tmp_path)]  # fmt: skip
    env = {**os.environ, **ONE_THREAD}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "cyclegan_edge.train", *common, "--name", "ddp", "--batch-size", "1"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(ln for ln in r.stderr.splitlines() if "parameter checksums per rank" in ln)
    sums = line.split(":")[-1].split()
    assert len(sums) == 2 and sums[0] == sums[1]
    # Only rank 0 writes: one header and one row per iteration, one set of grids.
    rows = (tmp_path / "ddp" / "log.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and rows[0].startswith("iteration")
    assert sorted(p.name for p in (tmp_path / "ddp" / "samples").iterdir()) == ["final.png", "iter_0000002.png", "iter_0000004.png"]
    assert "world_size" in (tmp_path / "ddp" / "config.json").read_text()

    single = train([*common, "--name", "single", "--batch-size", "2"], tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    # the logged losses are both ranks' images, as the one process's batch of 2 (they were rank 0's alone)
    logged, whole = read_log(tmp_path / "ddp" / "log.csv")[1], read_log(tmp_path / "single" / "log.csv")[1]
    for key in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"):
        assert abs(logged[key] - whole[key]) <= 1e-4 * max(1.0, abs(whole[key])), (key, logged[key], whole[key])
    g_ddp = load_generator(tmp_path / "ddp" / "G_A2B.pth").model
    g_one = load_generator(tmp_path / "single" / "G_A2B.pth").model
    # Exact equality is not possible: conv biases that feed a non-affine InstanceNorm have a true
    # gradient of zero, so they see only summation-order noise, which Adam scales up to lr-sized
    # steps (measured: ~1e-3 after 4 steps). They cannot change the output. The last conv's bias
    # has a real gradient and no norm after it: it agrees to float precision, and so do outputs.
    torch.testing.assert_close(g_ddp.model[26].bias, g_one.model[26].bias, rtol=0, atol=1e-5)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert margin("max abs DDP vs one process", float((g_ddp(x) - g_one(x)).abs().max()), "<", 1e-2) < 1e-2


def test_torchrun_resume_gives_each_rank_its_own_image_pool(tiny_root: Path, tmp_path: Path) -> None:
    """Only rank 0 saved, and only its own image pools: on --resume every rank took rank 0's 50 images and random
    state, and drew the same swaps from then on. Each rank's pools are in the checkpoint now: a torchrun run
    stopped and resumed ends with the weights of one never stopped."""
    common = ["--dataroot", str(tiny_root), *TINY, "--pool-size", "2", "--save-every", "1", "--batch-size", "1",
              "--output", str(tmp_path)]  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "cyclegan_edge.train"]  # fmt: skip

    def run(*args: str) -> None:
        r = subprocess.run([*torchrun, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, **ONE_THREAD})  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]

    run(*common, "--max-iters", "6", "--name", "whole")
    run(*common, "--max-iters", "3", "--name", "split")
    run("--dataroot", str(tiny_root), "--output", str(tmp_path), "--name", "split", "--resume", "--max-iters", "6")
    whole = load_generator(tmp_path / "whole" / "G_A2B.pth").model.state_dict()
    split = load_generator(tmp_path / "split" / "G_A2B.pth").model.state_dict()
    assert [k for k in whole if not torch.equal(whole[k], split[k])] == []


def test_torchrun_a_lost_rank_is_one_line_and_keeps_the_checkpoint(tiny_root: Path, tmp_path: Path) -> None:
    """One rank killed: the other said "stop requested: saving a checkpoint", then ended in gloo's "RuntimeError:
    [.../pair.cc:537] Read error ... GLHF!" (unexpected), saving nothing. It says what happened now, and saves
    nothing still: its iteration under way may be half applied."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "cyclegan_edge.train", "--dataroot", str(tiny_root), *TINY, "--max-iters", "100000", "--save-every", "3",
           "--output", str(tmp_path), "--name", "lost"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ONE_THREAD})  # fmt: skip
    log_path = tmp_path / "lost" / "log.csv"
    wait_for_logged(log_path, 7)
    ranks = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(ranks) == 2, ranks
    os.kill(int(min(ranks, key=int)), signal.SIGKILL)  # the first started, rank 0: rank 1 names the checkpoint
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    line = next((ln for ln in err.splitlines() if "another process of this run ended" in ln), "")
    assert line.startswith("ERROR rank 1: another process of this run ended at iteration ") and (
        "(gloo: Connection" in line and "saving nothing" in line and "is kept: --resume continues from there"
        in line), err[-3000:]  # fmt: skip
    assert "GLHF" not in err.split(line)[0] + line  # no library dump of our own
    saved = torch.load(tmp_path / "lost" / "checkpoints" / "latest.pt", weights_only=True)["position"]["iteration"]
    ended = int(line.split("ended at iteration ")[1].split()[0])
    # the last save, whole, named by a rank that does not write it (it said "iteration 0")
    assert f"latest.pt (iteration {saved}) is kept" in line and 0 < saved <= ended


def test_an_image_gone_mid_run_is_one_line_and_the_workers_end(tiny_root: Path, tmp_path: Path) -> None:
    """A training image deleted (or a disk unmounted) under a run with DataLoader workers: it said "error: Caught
    ImageReadError in DataLoader worker process 0." and then never exited (the workers ignore SIGTERM, and the
    error kept them alive), Ctrl-C did nothing, a second one a traceback. Now: one line naming the file, exit 1."""
    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    cmd = [sys.executable, "-m", "cyclegan_edge.train", "--dataroot", str(data), *TINY, "--workers", "1",
           "--n-epochs", "200", "--output", str(tmp_path), "--name", "gone"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ONE_THREAD})  # fmt: skip
    log_path, deadline = tmp_path / "gone" / "log.csv", time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (log_path.exists() and read_log(log_path)):
        time.sleep(0.05)
    for image in (data / "trainA").iterdir():
        image.unlink()
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the run did not end after its images went") from None
    assert proc.returncode == 1, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {data / 'trainA'}/") and last.endswith(": no such file"), err[-2000:]


def test_bad_data(tmp_path: Path, tiny_root: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = train(["--a", str(empty), "--b", str(tiny_root / "trainB"), *TINY, "--output", str(tmp_path)], tmp_path)
    assert r.returncode == 1 and f"{empty}: holds no image files (.bmp, " in r.stderr, r.stderr  # not "0 unreadable"

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for i in range(3):
        (corrupt / f"bad{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (corrupt / "readme.txt").write_text("not an image")
    r = train(["--a", str(corrupt), "--b", str(tiny_root / "trainB"), *TINY, "--output", str(tmp_path)], tmp_path)
    assert r.returncode == 1 and r.stderr.count("skipped:") == 3 and "its 3 image files are all unreadable" in r.stderr

    # one real greyscale image plus one corrupt file and a 3x3 one (it trained, scaled up, unsaid): trains, with
    # one warning each and a count
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    grey = next(p for p in sorted((tiny_root / "trainB").iterdir()) if p.stat().st_size and _is_grey(p))
    shutil.copy(grey, mixed / grey.name)
    shutil.copy(corrupt / "bad0.jpg", mixed / "bad0.jpg")
    import cv2

    cv2.imwrite(str(mixed / "speck.png"), cv2.resize(cv2.imread(str(grey)), (3, 3), interpolation=cv2.INTER_AREA))
    r = train(["--a", str(mixed), "--b", str(tiny_root / "trainA"), *TINY, "--max-iters", "2",
               "--output", str(tmp_path), "--name", "m"], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("skipped:") == 2 and "2 of 3 image files skipped" in r.stderr, r.stderr[-2000:]
    assert f"skipped: {mixed / 'speck.png'}: 3x3 px, too small to use (under 5 px a side)" in r.stderr


def _is_grey(p: Path) -> bool:
    import cv2

    return cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ndim == 2


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_existing_run_is_refused_overwrite_moves_it_aside_resume_reads_its_config(tiny_root: Path,
                                                                                  tmp_path: Path) -> None:  # fmt: skip
    common = ["--dataroot", str(tiny_root), "--output", str(tmp_path), "--name", "x"]
    first = train([*common, *TINY, "--max-iters", "2"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "x"
    before = snapshot(run)

    again = train([*common, *TINY, "--max-iters", "2"], tmp_path)
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == (
        f"error: {run} exists: --resume to continue it, --overwrite to start over")
    assert snapshot(run) == before  # not a byte, not an mtime changed

    # --resume with no architecture flags (the README's command after a --netG mobile run) takes them from
    # config.json; may-change flags such as --max-iters are taken from the command line
    res = train([*common, "--resume", "--max-iters", "4", "--workers", "0"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(read_log(run / "log.csv")) == [1, 2, 3, 4]
    assert load_generator(run / "G_A2B.pth").config.channels == (4, 4, 8, 4, 8, 8, 4, 4)

    bad = train([*common, "--resume", "--netG", "resnet_9blocks"], tmp_path)
    assert bad.returncode == 2
    line = bad.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --resume: --netG resnet_9blocks contradicts the run's mobile"), line
    assert line.endswith("; only --amp, --channels-last, --compile, --device, --log-every, --max-iters, "
                         "--sample-every, --save-every, --workers may change"), line  # not --resume: it names the run

    resumed = snapshot(run)
    # --overwrite with data that cannot train: the old run stays where it is (it is moved aside only once the
    # new run's images have been read)
    no_data = train([*common[2:], "--dataroot", str(tmp_path / "nowhere"), *TINY, "--max-iters", "1", "--overwrite"],
                    tmp_path)  # fmt: skip
    assert no_data.returncode != 0 and no_data.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'nowhere' / 'trainA'}: no such folder")
    a_file = tmp_path / "a.jpg"  # a file where a folder goes (it said "no such folder"; -o said "File exists")
    a_file.write_bytes(b"x")
    for flags, line in ((["--a", str(a_file), "--b", str(tiny_root / "trainB")],
                         f"error: {a_file}: a file, not a folder of images"),
                        (["-o", str(a_file), "--dataroot", str(tiny_root)],
                         f"error: --output {a_file}: a file, not a folder (the run goes to OUTPUT/NAME)")):  # fmt: skip
        r = train([*flags, *TINY, "--max-iters", "1"], tmp_path)
        assert r.returncode != 0 and r.stderr.strip().splitlines()[-1] == line, r.stderr[-2000:]
    assert snapshot(run) == resumed and not [p for p in tmp_path.iterdir() if ".replaced-" in p.name]
    over = train([*common, *TINY, "--max-iters", "1", "--overwrite"], tmp_path)
    assert over.returncode == 0, over.stderr[-2000:]
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("x.replaced-")]
    assert len(aside) == 1 and f"moved to {aside[0]}" in over.stderr
    assert {k: v[0] for k, v in snapshot(aside[0]).items()} == {k: v[0] for k, v in resumed.items()}
    assert sorted(read_log(run / "log.csv")) == [1]


@pytest.mark.parametrize(("flags", "line"), [
    (["--netG", "mobile", "--mobile-config", "4_4_x"], "--mobile-config 4_4_x: bad channel config '4_4_x'"),
    (["--netG", "mobile", "--mobile-config", "4_4"], "--mobile-config 4_4: channels must be 8 positive ints"),
    (["--netG", "mobile", "--mobile-config", "0_4_8_4_8_8_4_4"], "--mobile-config 0_4_8_4_8_8_4_4: channels must"),
    (["--ngf", "0"], "--ngf 0: must be a positive channel width"),
    (["--model", "pix2pix", "--ngf", "-1"], "--ngf -1: must be a positive channel width"),
])  # fmt: skip
def test_malformed_generator_flags_name_the_flag(flags: list[str], line: str) -> None:
    from cyclegan_edge.errors import UsageError
    from cyclegan_edge.train.config import parse_config
    from cyclegan_edge.train.config import Pix2PixConfig

    cls = Pix2PixConfig if "pix2pix" in flags else None
    with pytest.raises(UsageError) as e:
        parse_config(["--dataroot", "d", *flags], *([cls] if cls else []))
    assert str(e.value).startswith(line), str(e.value)


def test_help_names_every_option_with_its_default() -> None:
    import dataclasses

    from cyclegan_edge.train.config import TrainConfig, build_parser

    text = " ".join(build_parser().format_help().split())
    assert "--no-no-flip" not in text and "--flip, --no-flip" in text
    # a default is shown where there is one: not "(default: )" for an empty path or "(default: False)" for a switch
    given = [f for f in dataclasses.fields(TrainConfig) if not (f.default is None or f.default is False or f.default == "")]
    assert text.count("(default:") == len(given) and "(default: )" not in text and "(default: False)" not in text


@pytest.mark.parametrize("command", ["cyclegan_edge.train", "cyclegan_edge.train --model pix2pix", "cyclegan_edge.distill",
                                     "cyclegan_edge.evaluate"])  # fmt: skip
def test_help_and_usage_errors_come_before_torch_is_imported(command: str) -> None:
    """torch takes seconds to import: --help and a mistyped flag must not wait for it."""
    probe = ("import runpy, sys\n"
             "sys.argv = ['x', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module(sys.argv.pop(1), run_name='__main__')\n"
             "except SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)\n")  # fmt: skip
    for argv, code in ((["--help"], 0), (["--crop-size" if "evaluate" not in command else "--size", "abc"], 2)):
        r = subprocess.run([sys.executable, "-c", probe, *command.split(), *argv], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        assert r.stdout.strip().splitlines()[-1] == f"exit {code} False", (argv, r.stdout[-500:], r.stderr[-500:])
        assert f"usage: python -m {command.split()[0]}" in r.stdout if code == 0 else r.stderr.startswith("error: argument ")


def test_too_small_crop_is_a_usage_error_and_a_failed_start_does_not_block_the_next(tiny_root: Path, tmp_path: Path) -> None:
    from cyclegan_edge.train.__main__ import main

    assert main(["--dataroot", str(tiny_root), "--crop-size", "3", "--load-size", "3", "--output", str(tmp_path)]) == 2
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")  # what a start that failed before its first iteration leaves
    r = train(["--dataroot", str(tiny_root), *TINY, "--max-iters", "1", "--output", str(tmp_path)], tmp_path)
    assert r.returncode == 0 and "a start that failed: starting it again" in r.stderr, r.stderr[-2000:]
    assert (run / "G_A2B.pth").is_file()


@pytest.mark.parametrize(("argv", "line"), [
    ([], "no data: give --dataroot ROOT or --a DIR --b DIR"),
    (["--dataroot", "d", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--dataroot", "d", "--save-every", "0"], "--save-every 0: must be at least 1"),
    (["--dataroot", "d", "--n-epochs", "0", "--n-epochs-decay", "0"], "--n-epochs 0 --n-epochs-decay 0: nothing to"),
    (["--dataroot", "d", "--crop-size", "128", "--load-size", "72"], "--crop-size 128 > --load-size 72: images are"),
    (["--dataroot", "d", "--resume", "--overwrite"], "--resume continues the run, --overwrite starts it over"),
    (["--dataroot", "d", "--a", "x", "--b", "y"], "--dataroot d and --a/--b name the data twice"),
    (["--a", "x", "--b", "./x"], "--a and --b are the same folder (x): the model learns a mapping between two"),
    (["--dataroot", "d", "--name", "."], "--name '.': a plain folder name"),
    (["--dataroot", "d", "--name", "../escape"], "--name '../escape': a plain folder name"),
    (["--model", "pix2pix", "--dataroot", "d", "--lambda-l1", "-1"], "--lambda-l1 -1.0: must be at least 0"),
    (["--dataroot", "d", "--lambda-cycle", "nan"], "--lambda-cycle nan: must be a finite number"),  # trained to a NaN
    (["--dataroot", "d", "--lr", "inf"], "--lr inf: must be a finite number"),
])  # fmt: skip
def test_flags_that_cannot_make_a_run_are_one_usage_line(argv: list[str], line: str) -> None:
    from cyclegan_edge.errors import UsageError
    from cyclegan_edge.train.config import parse_config
    from cyclegan_edge.train.config import Pix2PixConfig

    with pytest.raises(UsageError) as e:
        parse_config(argv, *([Pix2PixConfig] if "pix2pix" in argv else []))
    assert str(e.value).startswith(line), str(e.value)


def test_run_folder_trust(tiny_root: Path, tmp_path: Path) -> None:
    """A folder that holds no run is never moved by --overwrite; a run killed before its first checkpoint is
    started again by --resume (rerunning says so); a damaged checkpoint or config.json is one line naming the
    file (never torch's advice to load unsafely); the run resumes from another folder (its data path is saved
    absolute)."""
    from conftest import COMPRESSED_G

    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    for image in [*data.glob("train?/*")]:  # 10 times the images: the first checkpoint (an epoch's end) comes late
        for i in range(9):
            shutil.copy(image, image.with_name(f"{i}_{image.name}"))
    before = snapshot(data)
    mixed = train(["--dataroot", "data", *TINY, "--output", "data", "--name", "trainA", "--overwrite"], tmp_path)
    assert mixed.returncode == 1 and mixed.stderr.strip().splitlines()[-1] == (
        "error: data/trainA exists and holds no run (no config.json and log.csv): choose another --name or --output")
    assert snapshot(data) == before

    # killed (SIGKILL) after two logged iterations, long before the first checkpoint; data given relative
    cmd = [sys.executable, "-m", "cyclegan_edge.train", "--dataroot", "data", *TINY, "--save-every", "1000",
           "--init-from", str(need(COMPRESSED_G)), "--output", str(tmp_path), "--name", "early"]  # fmt: skip
    proc = subprocess.Popen([*cmd, "--max-iters", "1000"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **ONE_THREAD})  # fmt: skip
    log_path = tmp_path / "early" / "log.csv"
    wait_for_logged(log_path, 2)
    proc.kill()
    proc.wait(timeout=30)
    assert not (tmp_path / "early" / "checkpoints" / "latest.pt").exists() and max(read_log(log_path)) >= 2
    again = train(["--dataroot", "data", *TINY, "--output", str(tmp_path), "--name", "early"], tmp_path)
    assert again.returncode == 1 and "stopped before its first checkpoint: --resume starts it again" in again.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the saved --load-size restated (the default --crop-size 256 is not this run's 32), from another folder
    res = train(["--output", str(tmp_path), "--name", "early", "--resume", "--load-size", "40", "--max-iters", "2"],
                elsewhere)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "starting it again from iteration 0" in res.stderr and sorted(read_log(log_path)) == [1, 2]
    assert f"generators start from {COMPRESSED_G.resolve()}" in res.stderr  # as the killed start did: its --init-from

    ckpt = tmp_path / "early" / "checkpoints" / "latest.pt"
    os.truncate(ckpt, ckpt.stat().st_size // 2)
    broken = train(["--output", str(tmp_path), "--name", "early", "--resume", "--max-iters", "3"], elsewhere)
    last = broken.stderr.strip().splitlines()[-1]
    assert broken.returncode == 1 and last.startswith(f"error: --resume: {ckpt}: not a readable PyTorch checkpoint (")
    assert last.endswith("; --overwrite starts the run over") and "weights_only" not in broken.stderr
    (tmp_path / "early" / "config.json").write_text('{"dataroot": "unfinished')
    broken = train(["--output", str(tmp_path), "--name", "early", "--resume"], elsewhere)
    assert broken.returncode == 1 and f"error: {tmp_path / 'early' / 'config.json'}: not readable JSON" in broken.stderr


def test_a_run_folder_holding_its_own_input_is_named_by_the_flag_as_typed(tmp_path: Path) -> None:
    from cyclegan_edge.errors import UsageError
    from cyclegan_edge.train.config import TrainConfig
    from cyclegan_edge.train.run_dir import holds_input, prepare_run_dir

    run = tmp_path / "x"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "log.csv").write_text("iteration\n1\n")
    cfg = TrainConfig(a_dir=str(run / "A"), b_dir=str(tmp_path / "B"), output=str(tmp_path), name="x", overwrite=True)
    assert holds_input(run, cfg) == f"--a {run / 'A'}"
    with pytest.raises(UsageError, match=f"holds this run's input --a {run / 'A'}"):
        prepare_run_dir(cfg)
    assert (run / "config.json").is_file()  # not moved aside
    beside = TrainConfig(dataroot=str(tmp_path), output=str(tmp_path), name="x")  # runs inside the data folder
    assert holds_input(run, beside) == ""


def test_a_run_that_lost_its_checkpoint_is_never_started_over_and_a_finished_one_is_not_rewritten(
        tiny_root: Path, tmp_path: Path) -> None:  # fmt: skip
    from conftest import as_user

    common = ["--output", str(tmp_path), "--name", "r"]  # 4 images: checkpoints at each epoch's end (4) and at 6
    assert train(["--dataroot", str(tiny_root), *TINY, "--max-iters", "6", "--save-every", "1000", *common],
                 tmp_path).returncode == 0  # fmt: skip
    run = tmp_path / "r"
    before = snapshot(run)
    r = train([*common, "--resume", "--max-iters", "5"], tmp_path)  # already past the end
    assert r.returncode == 0 and "is already at iteration 6 and this command ends at 5: nothing to train" in r.stderr
    assert snapshot(run) == before  # nothing rewritten, not even config.json
    for folder in (run, run / "checkpoints"):  # a read-only run: one line naming the run's file, not a temporary
        folder.chmod(0o555)
    try:
        r = subprocess.run([*as_user(), sys.executable, "-m", "cyclegan_edge.train", *common, "--resume",
                            "--max-iters", "8"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, **ONE_THREAD})  # fmt: skip
    finally:
        for folder in (run, run / "checkpoints"):
            folder.chmod(0o755)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == f"error: {run / 'config.json'}: Permission denied"
    assert snapshot(run) == before
    tmp_path.chmod(0o555)  # a new run in a read-only --output: it named the lock file beside the run, .new.lock
    try:
        r = subprocess.run([*as_user(), sys.executable, "-m", "cyclegan_edge.train", "--dataroot", str(tiny_root),
                            *TINY, "--output", str(tmp_path), "--name", "new"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300, env={**os.environ, **ONE_THREAD})  # fmt: skip
    finally:
        tmp_path.chmod(0o755)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'new'}: Permission denied"
    shutil.rmtree(run / "checkpoints")  # 75 MB for a full-size run: a user may well delete it
    before = snapshot(run)
    r = train([*common, "--resume", "--max-iters", "8"], tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
        f"error: --resume: {run / 'checkpoints' / 'latest.pt'} is missing, so {run} (G_A2B.pth, G_B2A.pth, 6 logged "
        "iterations) cannot be continued: --overwrite starts it over, moving this run aside first")  # fmt: skip
    assert snapshot(run) == before
    # killed (no generators written) after the epoch-end checkpoint, long before --save-every: refused all the same
    for name in ("G_A2B.pth", "G_B2A.pth"):
        (run / name).unlink()
    r = train([*common, "--resume"], tmp_path)
    assert r.returncode == 1 and f"so {run} (6 logged iterations) cannot be continued" in r.stderr, r.stderr[-1500:]


def test_a_diverged_run_stops_with_exit_1_and_says_which_checkpoint_is_left(tiny_root: Path, tmp_path: Path) -> None:
    r = train(["--dataroot", str(tiny_root), *TINY, "--lr", "1e30", "--max-iters", "30", "--save-every", "1",
               "--output", str(tmp_path), "--name", "nan"], tmp_path)  # fmt: skip
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("ERROR loss is not finite at iteration "), r.stderr[-2000:]
    step = int(last.split("iteration ")[1].split(":")[0])
    assert f"the last checkpoint, {tmp_path / 'nan' / 'checkpoints' / 'latest.pt'} (iteration {step - 1}), is kept" in last
    assert last.endswith("--overwrite with a lower --lr (or --no-amp) starts over")
    state = torch.load(tmp_path / "nan" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["position"]["iteration"] == step - 1


def test_images_of_any_size_train_with_preprocess_none(tiny_root: Path, tmp_path: Path) -> None:
    """An 8x8 image (under the discriminator's 24 px) and a 30x50 one beside 256x256 photos: no size is cropped or
    batched with another; the sample grid shows them at one size."""
    import cv2

    small = tmp_path / "small"
    small.mkdir()
    photo = cv2.imread(str(sorted((tiny_root / "trainA").glob("*.jpg"))[0]))
    cv2.imwrite(str(small / "tiny.png"), cv2.resize(photo, (8, 8), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(small / "wide.png"), cv2.resize(photo, (50, 30), interpolation=cv2.INTER_AREA))
    r = train(["--a", str(small), "--b", str(tiny_root / "trainB"), *TINY, "--preprocess", "none", "--max-iters", "4",
               "--output", str(tmp_path), "--name", "none"], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    grid = cv2.imread(str(tmp_path / "none" / "samples" / "final.png"))
    tile = grid.shape[1] // 3  # 2 rows x 3 tiles of one size, each row under a strip naming its columns
    strip = (grid.shape[0] - 2 * tile) // 2
    assert grid.shape == (2 * (tile + strip), 3 * tile, 3) and 8 < strip < tile
    assert grid[:strip].mean() < 80 and grid[:strip].max() > 200  # dark, with white text
    r = train(["--a", str(small), "--b", str(tiny_root / "trainB"), *TINY, "--preprocess", "none", "--batch-size", "2",
               "--output", str(tmp_path), "--name", "none2"], tmp_path)  # fmt: skip
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
        "error: --preprocess none keeps each image's size, and --batch-size 2 batches images of one size: tiny.png is "
        "8x8 (trained at 24x24), wide.png 50x30 (48x28); use --batch-size 1 or --preprocess resize_and_crop")


@pytest.mark.parametrize(("argv", "line"), [
    (["--crop-size", "16", "--load-size", "16"], "--crop-size 16 / --load-size 16: training needs at least 24 px"),
    (["--beta1", "1"], "--beta1 1.0: Adam's beta1 must be in [0, 1)"),
    (["--seed", "-1"], "--seed -1: use 0..4294967295"),  # it failed in numpy, or hung in the workers, and was saved
    (["--device", "banana"], "--device banana: not a device name"),
    (["--device", "cuda:0"], "--device cuda:0: "),
])  # fmt: skip
def test_values_torch_would_reject_mid_start_are_usage_lines(argv: list[str], line: str, tiny_root: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    if "cuda:0" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    r = train(["--dataroot", str(tiny_root), *TINY, *argv, "-o", str(tmp_path)], tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: " + line), r.stderr[-1000:]
    assert not (tmp_path / "run").exists()


def test_a_run_inside_its_training_images_and_a_resume_by_the_wrong_command_are_refused(tiny_root: Path,
                                                                                        tmp_path: Path) -> None:  # fmt: skip
    a = tiny_root / "trainA"
    r = train(["--a", str(a), "--b", str(tiny_root / "trainB"), *TINY, "-o", str(a / "runs")], tmp_path)
    assert r.returncode == 2 and f"lies inside the training images {a} (--a)" in r.stderr and not (a / "runs").exists()
    r = train(["--dataroot", str(tiny_root), *TINY, "-o", str(tiny_root / "trainB" / "x")], tmp_path)
    assert r.returncode == 2 and "lies inside the training images" in r.stderr
    run = tmp_path / "c"  # what a CycleGAN run's config.json holds, as far as --resume reads it first
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "cyclegan", "dataroot": str(tiny_root)}))
    r = subprocess.run([sys.executable, "-m", "cyclegan_edge.distill", "-o", str(tmp_path), "--name", "c", "--resume"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip() == (f"error: --resume: {run} is a cyclegan run, not distill: "
                                                      "continue it with python -m cyclegan_edge.train --resume")  # fmt: skip
    (run / "config.json").write_text(json.dumps({"model": "cyclegan", "teacher": "t.pth", "dataroot": str(tiny_root)}))
    r = train(["-o", str(tmp_path), "--name", "c", "--resume"], tmp_path)  # what a distillation run's settings hold
    assert r.returncode == 2 and "is a distill run, not cyclegan: continue it with python -m cyclegan_edge.distill" in r.stderr
    (run / "config.json").write_text(json.dumps({"model": "pix2pix", "dataroot": str(tiny_root)}))
    r = train(["-o", str(tmp_path), "--name", "c", "--resume", "--model", "cyclegan"], tmp_path)  # told to rerun itself
    assert r.returncode == 2 and r.stderr.strip() == (f"error: --resume: {run} is a pix2pix run, not cyclegan: drop "
                                                      "--model cyclegan (a resumed run keeps its own)")  # fmt: skip


def test_resume_finds_the_runs_model_under_either_output_spelling(tmp_path: Path) -> None:
    from cyclegan_edge.train.__main__ import model_of

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "config.json").write_text('{"model": "pix2pix"}')
    for flag in ("--output", "-o"):
        assert model_of([flag, str(tmp_path), "--name", "p", "--resume"]) == "pix2pix"
    assert model_of(["-o", str(tmp_path), "--name", "p"]) == "cyclegan"  # a new run: its --model, here the default


def test_loss_plot_leaves_out_the_start_up_spike_and_says_so(tmp_path: Path) -> None:
    """A real log (the H200 season run): start-up losses near 7 would squeeze the later curves (about 2) flat."""
    import cv2
    import numpy as np

    from conftest import ROOT
    from cyclegan_edge.train.loss_plot import plot_losses, read_losses, stretches, y_top

    log_csv = ROOT / "benchmarks" / "gpu" / "nvidia-h200" / "season" / "s2w_mobile_ft" / "log.csv"
    iterations, losses = read_losses(log_csv)
    highs = [stretches(iterations, losses[n])[3] for n in ("cycle_A", "cycle_B", "G_A", "G_B")]
    top = y_top(highs)
    assert top is not None and top < max(h.max() for h in highs)  # the spike is left out
    steady = [np.full(400, 2.0) + np.linspace(0, 0.5, 400)]
    assert y_top(steady) is None  # nothing to leave out: matplotlib's own limits
    assert plot_losses(log_csv, tmp_path / "losses.png") == tmp_path / "losses.png"
    assert cv2.imread(str(tmp_path / "losses.png")).shape[:2] == (460, 1100)


def test_a_short_runs_loss_curve_is_smoothed_too() -> None:
    """200 logged iterations were drawn point by point ('mean of each stretch of 1'): per-image noise hid the trend."""
    import numpy as np

    from cyclegan_edge.train.loss_plot import stretch_count, stretches

    rng = np.random.default_rng(0)
    iterations = np.arange(1, 201, dtype=np.float64)
    values = np.linspace(4, 2, 200) + rng.normal(0, 1, 200)  # a falling trend under noise of its own size
    x, mean, low, high = stretches(iterations, values)
    assert len(x) == stretch_count(200) == 40 and np.all(low <= mean) and np.all(mean <= high)
    assert np.abs(np.diff(mean)).mean() < 0.6 * np.abs(np.diff(values)).mean()  # calmer than the raw log
    assert stretch_count(7) == 7 and stretch_count(100_000) == 400  # a few rows point by point; a long run 400


def test_resume_from_a_checkpoint_of_another_kind_or_shape_is_one_line(tiny_root: Path, tmp_path: Path) -> None:
    """A plain state dict as latest.pt gave 'KeyError: generators (unexpected)', another run's state with other
    widths 'RuntimeError: Error(s) in loading state_dict (unexpected)': one line naming the file now."""
    common = ["--dataroot", str(tiny_root), *TINY, "--max-iters", "2", "--save-every", "1", "--output", str(tmp_path)]
    assert train([*common, "--name", "r"], tmp_path).returncode == 0
    other = [a if a != "4_4_8_4_8_8_4_4" else "8_8_8_8_8_8_8_8" for a in common]
    assert train([*other, "--name", "wide"], tmp_path).returncode == 0
    ckpt = tmp_path / "r" / "checkpoints" / "latest.pt"
    torch.save({"a": torch.zeros(2)}, ckpt)
    r = train([*common, "--name", "r", "--resume", "--max-iters", "4"], tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
        f"error: --resume: {ckpt} is not this run's training state (it holds no format key: a plain state dict?, not "
        "cyclegan-edge/train-state); --overwrite starts the run over"), r.stderr[-2000:]
    shutil.copy(tmp_path / "wide" / "checkpoints" / "latest.pt", ckpt)
    r = train([*common, "--name", "r", "--resume", "--max-iters", "4"], tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith(f"error: --resume: {ckpt} does not fit this run's models (") and \
        last.endswith("); --overwrite starts the run over") and "unexpected" not in last, r.stderr[-2000:]
