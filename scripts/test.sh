#!/usr/bin/env bash
# Sets up and runs the whole test suite: unit and end-to-end tests under AddressSanitizer and
# UndefinedBehaviorSanitizer with warnings as errors, a formatting check, and every fuzz target
# for FUZZ_SECONDS (default 60) each. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
jobs="$(nproc)"

stamp() { echo "== $1 (at $((SECONDS / 60))m$((SECONDS % 60))s)"; }
stamp "format check"
./scripts/check-format.sh

stamp "build (asan+ubsan, -Werror)"
cmake --preset asan >/dev/null
cmake --build --preset asan -- -j"$jobs"

stamp "tests"
ctest --preset asan -j"$jobs" --timeout 600

stamp "fuzz (${FUZZ_SECONDS:-60} s per target)"
./scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
stamp "done"
