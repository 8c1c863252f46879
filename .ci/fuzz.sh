#!/usr/bin/env bash
# Fuzz the arena core for a bounded time, under ASan+UBSan, with libFuzzer.
#
#   .ci/fuzz.sh [SECONDS]      default: $FUZZ_SECONDS, else 150
#
# Builds build-fuzz/ with clang (the library with -fsanitize=fuzzer-no-link
# for coverage, everything with address,undefined) and runs fuzz_vmem
# (libvmem) and fuzz_vmem_debug (libvmem-debug) side by side for SECONDS
# each.  Each starts from the checked-in seed corpus and regression inputs
# (tests/fuzz/corpus, tests/fuzz/regressions, read-only) plus a scratch
# corpus in build-fuzz/ that persists between local runs.
#
# On a failure the input is saved as build-fuzz/artifacts/<target>-crash-*
# and the script fails, printing how to reproduce it; once the bug is
# fixed, copy the input into tests/fuzz/regressions/fuzz_vmem/ so that
# ctest (fuzz_replay) replays it forever.
#
# The figures docs/reliability.md quotes are in build-fuzz/fuzz-summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-${FUZZ_SECONDS:-150}}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=$(nproc 2>/dev/null || echo 2)

CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DVMEM_SANITIZE=address,undefined -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link \
	-DVMEM_BUILD_FUZZ=ON -DVMEM_BUILD_TOOLS=OFF >/dev/null
targets=(fuzz_vmem)
grep -q '^fuzz_vmem_debug:' <(cmake --build "$dir" --target help | sed 's/^\.\.\. //;s/ .*//;s/$/:/') &&
	targets+=(fuzz_vmem_debug)
cmake --build "$dir" -j "$jobs" --target "${targets[@]}"

mkdir -p "$dir/artifacts"
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# run TARGET: fuzz it for $secs; its time in $dir/TARGET.took, its status returned
run() {
	local t=$1 t0 rc=0
	t0=$(date +%s)
	mkdir -p "$dir/corpus-$t"
	"$dir/tests/fuzz/$t" -max_total_time="$secs" -timeout=30 -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/$t-" "$dir/corpus-$t" \
		tests/fuzz/corpus/fuzz_vmem tests/fuzz/regressions/fuzz_vmem >"$dir/$t.log" 2>&1 || rc=$?
	echo $(($(date +%s) - t0)) >"$dir/$t.took"
	return $rc
}
pids=()
for t in "${targets[@]}"; do
	run "$t" &
	pids+=($!)
done
status=0
declare -A failed
for i in "${!targets[@]}"; do
	failed[${targets[$i]}]=""
	wait "${pids[$i]}" || { failed[${targets[$i]}]=" STOPPED BY A FAILURE"; status=1; }
done

# One line per target: executions, coverage, corpus, time.
: >"$dir/fuzz-summary.txt"
for t in "${targets[@]}"; do
	log="$dir/$t.log"
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	echo "$t: ${execs:-?} executions in $(cat "$dir/$t.took")s (${rate:-?}/s)${failed[$t]}; ${done_line#*DONE }" |
		tee -a "$dir/fuzz-summary.txt"
done
# ---- snapshot reader (issue 5): fuzz_vsnap, its own target and corpus --------------
# VSNAP_FUZZ_SECONDS (default 60) under the same ASan+UBSan build, from the
# real snapshots in tests/fuzz/corpus/vsnap (written by tests/fuzz/vsnap_seeds.c).
vsecs=${VSNAP_FUZZ_SECONDS:-60}
vstatus=0
cmake --build "$dir" -j "$jobs" --target fuzz_vsnap
mkdir -p "$dir/corpus-fuzz_vsnap"
"$dir/tests/fuzz_vsnap" -max_total_time="$vsecs" -timeout=30 -print_final_stats=1 \
	-artifact_prefix="$dir/artifacts/fuzz_vsnap-" "$dir/corpus-fuzz_vsnap" \
	tests/fuzz/corpus/vsnap >"$dir/fuzz_vsnap.log" 2>&1 || vstatus=1
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/fuzz_vsnap.log" | tail -1 || true)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz_vsnap.log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/fuzz_vsnap.log")
echo "fuzz_vsnap: ${execs:-?} executions in ${vsecs}s (${rate:-?}/s); ${done_line#*DONE }" |
	tee -a "$dir/fuzz-summary.txt"
if [ "$vstatus" -ne 0 ]; then
	grep -E 'broken model|ERROR: |SUMMARY: |Test unit written' "$dir/fuzz_vsnap.log" || true
	echo "fuzz_vsnap: FAILED; reproduce with build/tests/fuzz_vsnap_replay <the crash file>" >&2
	[ "$status" -ne 0 ] || exit 1
fi
# ---- end of the snapshot reader's block ---------------------------------------------

if [ "$status" -ne 0 ]; then
	for t in "${targets[@]}"; do
		grep -E 'check failed|during:|ERROR: |SUMMARY: |Test unit written' "$dir/$t.log" || true
	done
	echo "fuzz: FAILED; reproduce with build/tests/fuzz/fuzz_replay <the crash file>" \
		"(FUZZ_VMEM_TRACE=1 prints every operation)" >&2
	exit 1
fi
echo "fuzz: no failure"
