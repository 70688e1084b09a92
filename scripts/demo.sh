#!/usr/bin/env bash
# The main job on the bundled example lab: installs what labctl needs, builds it, and applies the
# seed's lab (simulated devices, so it runs on any machine): plan, journaled apply with live
# progress, then a second apply that finds nothing to do, and an audit.
#
#   ./scripts/demo.sh                 # examples/lab.yaml, from a factory-new simulated lab
#   ./scripts/demo.sh examples/x.yaml # another inventory
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --build-only
cmake --preset release >/dev/null
cmake --build --preset release --target labctl -- -j"$(nproc)"
inventory="${1:-examples/lab.yaml}"
labctl=./build/release/controller/labctl

# The demo's state (journal and simulated devices) stays apart from any real lab's, and starts
# factory-new each time.
export LABCTL_STATE_DIR="$PWD/build/demo-state"
rm -rf "$LABCTL_STATE_DIR"
# Demo secrets; a real inventory reads them from the environment, 0600 files or a command.
export LAB_BMC_PASSWORD="${LAB_BMC_PASSWORD:-demo-bmc-password}"
for ext in 1000 1001 1002 1003 1004 1005; do var="LAB_SIP_$ext"; export "$var=${!var:-demo-$ext}"; done

"$labctl" validate "$inventory"
"$labctl" apply --yes "$inventory"
echo
"$labctl" apply --yes "$inventory"
echo
"$labctl" audit --format table "$inventory" || true  # exit 2: the loud fan is still a finding
