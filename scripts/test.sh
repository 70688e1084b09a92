#!/usr/bin/env bash
# Sets up and runs the whole test suite: unit and end-to-end tests under AddressSanitizer and
# UndefinedBehaviorSanitizer with warnings as errors, a formatting check, and every fuzz target
# for FUZZ_SECONDS (default 60) each. This is what CI runs.
#
# One build does both (preset ci, build/ci): clang 19 with the sanitizers and libFuzzer's coverage
# hooks, so the fuzz targets are the same objects the tests ran. A GCC build of the same code is
# `cmake --preset asan` (or debug): the developers' default, where GCC's warnings are checked.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
jobs="$(nproc)"

stamp() { echo "== $1 (at $((SECONDS / 60))m$((SECONDS % 60))s)"; }
stamp "format check"
./scripts/check-format.sh

stamp "build (clang, asan+ubsan+fuzzer coverage, -Werror)"
cmake --preset ci >/dev/null
cmake --build --preset ci -- -j"$jobs"

stamp "tests"
ctest --preset ci -j"$jobs" --timeout 600

stamp "fuzz (${FUZZ_SECONDS:-60} s per target)"
FUZZ_BUILD="$PWD/build/ci" ./scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
stamp "done"
