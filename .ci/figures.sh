#!/usr/bin/env bash
# The figures docs/reliability.md quotes, gathered from the logs of a CI run
# (.ci/run): the reliability tests print one summary line each, ctest keeps
# every test's output in Testing/Temporary/LastTest.log, .ci/fuzz.sh writes
# build-fuzz/fuzz-summary.txt and .ci/valgrind.sh one log per test.
cd "$(dirname "$0")/.."

# summary LABEL BUILD_DIR: the summary lines of one build, with their test's name
summary() {
	local log=$2/Testing/Temporary/LastTest.log
	[ -f "$log" ] || return 0
	echo "-- $1 ($2)"
	awk '/^[0-9]+\/[0-9]+ Testing: / { test = $3 }
	     /^<end of output>/ { test = "" }
	     test ~ /^(test_faults|test_stress|test_badinput|fuzz_replay)/ &&
	     /^(stress: [0-9]+ threads|faults:|bad inputs:|replay: [0-9]+ inputs)/ {
		     printf "   %-22s %s\n", test, $0
	     }
	     /^\[  (PASSED|FAILED|SKIPPED) *\] [0-9]+ test/ && test ~ /^test_(faults|stress|badinput)/ {
		     printf "   %-22s %s\n", test, $0
	     }' "$log"
}

summary "plain build" build
summary "ASan+UBSan" build-asan
summary "TSan" build-tsan
if [ -f build-fuzz/fuzz-summary.txt ]; then
	echo "-- fuzzing (build-fuzz)"
	sed 's/^/   /' build-fuzz/fuzz-summary.txt
fi
for log in build/valgrind-*.log; do
	[ -f "$log" ] || continue
	name=${log#build/valgrind-}
	name=${name%.log}
	errors=$(grep -cE '^==[0-9]+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and destination|.* definitely lost)' "$log")
	failures=$(grep -cE '^\[  FAILED  \] [a-z]|check failed' "$log")
	echo "-- valgrind $name: $errors memcheck errors, $failures test failures"
done
