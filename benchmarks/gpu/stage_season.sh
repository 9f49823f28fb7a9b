#!/usr/bin/env bash
# Adds summer2winter_yosemite's training photos to DEST (default .gpu/data) for the season runs of
# lease.sh. The 107 MB of originals do not fit a device call's 64 MiB with the tree, so each photo is
# re-encoded as WebP quality 85 (42 MiB in all; 34.1 dB mean PSNR against the originals over every 20th
# photo; JPEG at that size gives 31.5 dB), same stems and sizes, .webp. Usage, from the repo root: bash benchmarks/gpu/stage_season.sh [DEST] [SHARED_DATA]
set -euo pipefail
dest=${1:-.gpu/data}
src=${2:-${CYCLEGAN_EDGE_DATA:-../shared/data}}/summer2winter_yosemite
[ -d "$src/trainA" ] || { echo "error: $src/trainA not found (give SHARED_DATA)" >&2; exit 1; }
rm -rf "$dest/summer2winter_yosemite.partial"
python3 - "$src" "$dest/summer2winter_yosemite.partial" <<'PY'
import sys
from pathlib import Path
from PIL import Image
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
for folder in ("trainA", "trainB"):
    (dest / folder).mkdir(parents=True)
    for p in sorted((src / folder).glob("*.jpg")):
        Image.open(p).convert("RGB").save(dest / folder / (p.stem + ".webp"), "WEBP", quality=85)
PY
rm -rf "$dest/summer2winter_yosemite" && mv "$dest/summer2winter_yosemite.partial" "$dest/summer2winter_yosemite"
du -sh "$dest/summer2winter_yosemite"
