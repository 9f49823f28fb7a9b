#!/usr/bin/env bash
# Copies what the GPU checks read from the shared data into DEST (default .gpu/data, ignored by git) so that a
# device call can carry it: the device machine gets the repo alone, not ../shared. About 11 MiB: the published
# compressed horse->zebra generator, 4 horse test photos (parity), 120 horse and 120 zebra training photos
# (INT8 calibration, the 300-iteration training comparison).
# Usage, from the repo root: bash benchmarks/gpu/stage_data.sh [DEST] [SHARED_DATA]
set -euo pipefail
dest=${1:-.gpu/data}
src=${2:-${CYCLEGAN_EDGE_DATA:-../shared/data}}
[ -d "$src/horse2zebra" ] || { echo "error: $src/horse2zebra not found (give SHARED_DATA)" >&2; exit 1; }
rm -rf "$dest.partial"
mkdir -p "$dest.partial/weights" "$dest.partial/horse2zebra"
cp -r "$src/weights/horse2zebra_gan_compression" "$dest.partial/weights/"
train=${TRAIN_PHOTOS:-120}  # per domain; lease.sh carries 40 to leave room for the season photos
for spec in testA:4 testB:4 trainA:$train trainB:$train; do
  folder=${spec%%:*}
  mkdir -p "$dest.partial/horse2zebra/$folder"
  mapfile -t files < <(find "$src/horse2zebra/$folder" -maxdepth 1 -name '*.jpg' | sort)
  cp -t "$dest.partial/horse2zebra/$folder" "${files[@]:0:${spec##*:}}"
done
rm -rf "$dest" && mv "$dest.partial" "$dest"
du -sh "$dest"
