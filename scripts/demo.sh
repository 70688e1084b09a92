#!/usr/bin/env bash
# The main job on the bundled example lab: installs what labctl needs, builds it, and shows what
# it would do to the seed's lab (simulated devices, so it runs on any machine).
#
#   ./scripts/demo.sh                 # plan examples/lab.yaml
#   ./scripts/demo.sh examples/x.yaml # another inventory
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --build-only
cmake --preset release >/dev/null
cmake --build --preset release --target labctl -- -j"$(nproc)"
inventory="${1:-examples/lab.yaml}"
# Keep the demo's state (and its simulated devices) apart from any real lab's.
export LABCTL_STATE_DIR="${LABCTL_STATE_DIR:-$PWD/build/demo-state}"
./build/release/controller/labctl validate "$inventory"
exec ./build/release/controller/labctl plan "$inventory"
