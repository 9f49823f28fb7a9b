"""End-to-end FPS of the demo command, per bundled demo model, interleaved (issue 13: the season demo runs at
least as fast as the photo->Monet one on the same backend).

    python benchmarks/demo_fps.py [--rounds 5] [--backend auto] [NAME ...]   # default: every demo name

Each round runs ``python -m cyclegan_edge.runtime --demo NAME --headless -o TMP.mp4`` once per name (the whole
bundled clip: decode, inference, H.264 encode with its sound) and reads the FPS the runtime prints. Prints the
median and minimum per name and each name's median over the first's.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cyclegan_edge.machine import cpu_flags, cpu_model
from cyclegan_edge.runtime.bundled import DEMO_MODELS

LINE = re.compile(r"(\d+) frames -> .* at ([\d.]+) FPS \(model (.*), (\S+?)[,)]")


def demo_fps(name: str, backend: str, out: Path) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "cyclegan_edge.runtime", "--demo", name, "--headless", "--overwrite", "-o", str(out),
           "--backend", backend]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = LINE.search(r.stdout)
    if m is None:
        raise RuntimeError(f"no FPS line in: {r.stdout!r}")
    return float(m.group(2)), f"{m.group(3).split(' ')[0]} on {m.group(4)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", default=list(DEMO_MODELS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    fps: dict[str, list[float]] = {n: [] for n in args.names}
    ran: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name in args.names:
                value, ran[name] = demo_fps(name, args.backend, Path(tmp) / f"{name}.mp4")
                fps[name].append(value)
    print(f"# demo FPS, {args.rounds} interleaved rounds; {cpu_model()}, vector flags {' '.join(cpu_flags())}")
    first = statistics.median(fps[args.names[0]])
    for name in args.names:
        med = statistics.median(fps[name])
        print(f"--demo {name:8s} {ran[name]:40s} median {med:5.2f} FPS, min {min(fps[name]):5.2f} "
              f"({med / first:.2f}x --demo {args.names[0]})")


if __name__ == "__main__":
    main()
