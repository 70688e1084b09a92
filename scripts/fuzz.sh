#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*_fuzz.cc) and runs each for SECONDS (default 60).
#
#   scripts/fuzz.sh [SECONDS]        build + run every target
#   scripts/fuzz.sh 0                build only
#   FUZZ_TARGETS="version" scripts/fuzz.sh 30   only some targets
#   FUZZ_JOBS=2 (default 2)          ninja parallelism for the build
#   FUZZ_PARALLEL=N (default nproc)  targets fuzzed at once, one core each
#   FUZZ_MERGE=1                     after the run, merge new coverage (edges) back into the
#                                    committed corpus (tests/fuzz/corpus/NAME) with -merge=1
#
# Reproducers of bugs found (and fixed, or waiting for a fix) are kept in tests/fuzz/repro/; run
# one with   build/fuzz/tests/fuzz/NAME_fuzz tests/fuzz/repro/FILE
#
# Compiler: clang 19 (Debian 12 package clang-19 + libclang-rt-19-dev). clang 14 and 16 cannot
# compile the project: libstdc++ 12's <expected> is only enabled when __cpp_concepts >= 202002L,
# which clang reports from version 19 on (clang 14/16 say 201907L), so std::expected (Result<T>)
# does not exist there. Override with CLANG_CC / CLANG_CXX.
#
# The whole project is configured in build/fuzz with LABCTL_FUZZ and LABCTL_SANITIZE at -O1:
# -fsanitize=fuzzer-no-link,address,undefined (UBSan non-recoverable, so undefined behaviour
# counts as a crash, and _GLIBCXX_ASSERTIONS for bounds checks in the standard library); the
# fuzzer executables link -fsanitize=fuzzer,... .
#   FUZZ_BUILD=DIR                   use the targets of an existing LABCTL_FUZZ build instead
#                                    (CI: build/ci, where the tests were built and run; -O0)
# Each target runs on a copy of its committed corpus in build/fuzz/corpus/NAME, so the source
# tree is never written (unless FUZZ_MERGE=1). Crash, leak and timeout artifacts go to
# build/fuzz/artifacts/. Exit status: 0 when no target crashed, 1 otherwise, 2 on a build error.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FUZZ_BUILD:-$ROOT/build/fuzz}"
CLANG_CC="${CLANG_CC:-clang-19}"
CLANG_CXX="${CLANG_CXX:-clang++-19}"
TARGETS=(${FUZZ_TARGETS:-inventory catalog version tftp dhcp phone_info})
[[ -n "${FUZZ_TARGETS:-}" ]] || TARGETS+=(cop bmc_image)  # firmware bundles, SMT_*.bin images
[[ -n "${FUZZ_TARGETS:-}" ]] || TARGETS+=(agent_api)      # the agent API codec
[[ -n "${FUZZ_TARGETS:-}" ]] || TARGETS+=(esxi)  # vSphere About, domain XML, libvirt URIs
[[ -n "${FUZZ_TARGETS:-}" ]] || TARGETS+=(scsi)  # optical drive codec and emulator
[[ -n "${FUZZ_TARGETS:-}" ]] || TARGETS+=(bmc_web)        # BMC web flasher profiles and answers
JOBS="${FUZZ_JOBS:-2}"

if ! command -v "$CLANG_CXX" >/dev/null; then
  echo "fuzz.sh: $CLANG_CXX not found; install clang-19 and libclang-rt-19-dev" >&2
  exit 2
fi

if [[ -z "${FUZZ_BUILD:-}" ]]; then
  # Configuring again is cheap, and keeps an existing build/fuzz in step with these flags.
  CC="$CLANG_CC" CXX="$CLANG_CXX" cmake -S "$ROOT" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
    -DCMAKE_C_FLAGS= -DCMAKE_CXX_FLAGS= -DLABCTL_TESTS=OFF -DLABCTL_BENCH=OFF -DLABCTL_FUZZ=ON \
    -DLABCTL_SANITIZE=ON >/dev/null ||
    { echo "fuzz.sh: configure failed" >&2; exit 2; }
elif ! grep -q '^LABCTL_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "fuzz.sh: $BUILD is not a build configured with LABCTL_FUZZ=ON" >&2
  exit 2
fi
ninja -C "$BUILD" -j"$JOBS" "${TARGETS[@]/%/_fuzz}" ||
  { echo "fuzz.sh: build failed" >&2; exit 2; }

if [[ "$SECONDS_PER_TARGET" == 0 ]]; then
  echo "fuzz.sh: built ${TARGETS[*]/%/_fuzz} in $BUILD/tests/fuzz"
  exit 0
fi

mkdir -p "$BUILD/artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if [[ -z "${ASAN_SYMBOLIZER_PATH:-}" ]]; then
  for s in /usr/lib/llvm-19/bin/llvm-symbolizer "$(command -v llvm-symbolizer || true)"; do
    if [[ -x "$s" ]]; then export ASAN_SYMBOLIZER_PATH="$s"; break; fi
  done
fi
export LABCTL_CATALOG="${LABCTL_CATALOG:-$ROOT/catalog/catalog.yaml}"

# One target: its run, its summary line in $BUILD/$t.result, exit 1 on a crash.
run_target() {
  local t=$1
  local src="$ROOT/tests/fuzz/corpus/$t"
  local work="$BUILD/corpus/$t"
  rm -rf "$work"
  mkdir -p "$work"
  if [[ -d "$src" ]]; then cp -r "$src"/. "$work"/; fi
  local args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=65536
              -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-")
  # Seeds the dictionary cannot come from: YAML and key-name tokens for the YAML parsers.
  if [[ ( "$t" == inventory || "$t" == catalog ) && -f "$ROOT/tests/fuzz/yaml.dict" ]]; then
    args+=(-dict="$ROOT/tests/fuzz/yaml.dict")
  fi
  local log="$BUILD/$t.log"
  echo "fuzz.sh: $t for ${SECONDS_PER_TARGET}s (log $log)"
  local rc=0 status
  "$BUILD/tests/fuzz/${t}_fuzz" "${args[@]}" "$work" >"$log" 2>&1 || rc=$?
  local runs speed cov
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  if ((rc == 0)); then
    status=ok
  else
    status="CRASH (exit $rc)"
    # The whole report (stack, the trap's location, the input's name): CI keeps only this.
    { echo "fuzz.sh: $t crashed; the end of its log:"
      grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED|RELOAD)' "$log" | tail -60; } >&2 || true
  fi
  printf '%-10s %-16s runs %-10s exec/s %-7s %s\n' "$t" "$status" "${runs:-?}" "${speed:-?}" \
    "${cov:-}" > "$BUILD/$t.result"
  if [[ "${FUZZ_MERGE:-0}" == 1 && $rc == 0 ]]; then
    mkdir -p "$src"
    # Edges only (no hit counters), so the committed corpus stays small.
    "$BUILD/tests/fuzz/${t}_fuzz" -merge=1 -use_counters=0 -max_len=65536 -timeout=10 "$src" "$work" \
      >"$BUILD/$t.merge.log" 2>&1 || echo "fuzz.sh: merge for $t failed" >&2
  fi
  return $((rc != 0))
}

# FUZZ_PARALLEL targets at a time (default: one per core), each fuzzing on one core.
PARALLEL="${FUZZ_PARALLEL:-$(nproc)}"
failed=0
running=0
for t in "${TARGETS[@]}"; do
  run_target "$t" &
  running=$((running + 1))
  if ((running >= PARALLEL)); then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
summary=()
for t in "${TARGETS[@]}"; do summary+=("$(cat "$BUILD/$t.result" 2>/dev/null || echo "$t: no result")"); done

echo "fuzz.sh: summary (${SECONDS_PER_TARGET}s per target, artifacts in $BUILD/artifacts)"
printf '  %s\n' "${summary[@]}"
exit "$failed"
