#!/usr/bin/env bash
# The core tests under valgrind memcheck: any invalid access, use of
# uninitialised memory or definite leak fails the run.
#
#   .ci/valgrind.sh [BUILD_DIR]     default: build (what ./build.sh test builds)
#
# The long tests run shortened (VMEM_MODEL_OPS, VMEM_FAULT_STEPS): valgrind
# is some 30 times slower, and these runs are about memory errors, not
# about coverage, which the plain and sanitizer runs give.  The library maps
# its own metadata and keeps its pools (by design); memcheck does not count
# mappings as leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}

if [ ! -x "$dir/tests/test_api" ]; then
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)"
fi

vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
	--show-leak-kinds=definite --track-origins=yes)
status=0
run() { # run NAME [valgrind options...] -- COMMAND...
	local name=$1 opts=() t0
	shift
	while [ "$1" != "--" ]; do
		opts+=("$1")
		shift
	done
	shift
	t0=$(date +%s)
	if "${vg[@]}" "${opts[@]}" "$@" >"$dir/valgrind-$name.log" 2>&1; then
		echo "valgrind: $name clean ($(($(date +%s) - t0))s)"
	else
		echo "valgrind: $name FAILED ($(($(date +%s) - t0))s):"
		grep -E '^==[0-9]+==|FAILED|ERROR' "$dir/valgrind-$name.log" | head -40
		status=1
	fi
}

# Tests whose children abort on purpose: only the parent is checked.
run test_avl -- "$dir/tests/test_avl"
run test_api --child-silent-after-fork=yes -- "$dir/tests/test_api"
run test_badinput --child-silent-after-fork=yes -- "$dir/tests/test_badinput"
VMEM_MODEL_OPS=20000 run test_model -- "$dir/tests/test_model"
# The fault sweeps' children run the workload: they are checked too.
VMEM_FAULT_STEPS=250 run test_faults -- "$dir/tests/test_faults"
run fuzz_replay -- "$dir/tests/fuzz/fuzz_replay" tests/fuzz/corpus/fuzz_vmem \
	tests/fuzz/regressions/fuzz_vmem
exit $status
