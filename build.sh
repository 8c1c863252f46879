#!/usr/bin/env bash
# libvmem's one entry point for building and checking.  Every mode first
# installs the Debian packages that are missing (apt-get; sudo when not root).
#
#   ./build.sh demo    build everything and run the demo           (README, first command)
#   ./build.sh test    build everything and run the whole test suite (README, second command)
#   ./build.sh asan    the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   ./build.sh tsan    the concurrency tests under ThreadSanitizer
#   ./build.sh fuzz [SECONDS]   libFuzzer on the arena core under ASan+UBSan (.ci/fuzz.sh)
#   ./build.sh valgrind         the core tests under valgrind memcheck (.ci/valgrind.sh)
#   ./build.sh bench [--quick] [--json]   the benchmark suite (optimized build)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(cmake make gcc pkg-config libcmocka-dev libunwind-dev libdwarf-dev libelf-dev
          libgraphviz-dev graphviz libedit-dev clang libclang-rt-14-dev valgrind gdb)
JOBS=$(nproc 2>/dev/null || echo 2)

ensure_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		local sudo=""
		[ "$(id -u)" -ne 0 ] && sudo=sudo
		echo "build.sh: installing ${missing[*]}" >&2
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# build DIR [cmake options...]
build() {
	local dir=$1
	shift
	cmake -S . -B "$dir" "$@" >/dev/null
	cmake --build "$dir" -j "$JOBS"
}

mode=${1:-demo}
[ $# -gt 0 ] && shift
case "$mode" in
demo)
	ensure_packages
	build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	# The demo dies of a double free on purpose; libvmem-debug leaves a snapshot.
	rm -f build/demo.vsnap
	./build/tools/vmem-demo build/demo.vsnap ||
		echo "build.sh: vmem-demo died as intended (status $?); its snapshot is build/demo.vsnap"
	echo
	echo "\$ vmemdb build/demo.vsnap -e '::vmem; ::findleaks; ::dot -T svg -o build/demo-tree.svg'"
	./build/tools/vmemdb build/demo.vsnap -e '::vmem; ::findleaks; ::dot -T svg -o build/demo-tree.svg'
	echo "build.sh: the arena tree is drawn in build/demo-tree.svg;" \
		"explore the snapshot with ./build/tools/vmemdb build/demo.vsnap (::help)"
	;;
test)
	ensure_packages
	build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	ctest --test-dir build --output-on-failure -j "$JOBS"
	;;
asan)
	ensure_packages
	build build-asan -DCMAKE_BUILD_TYPE=Debug -DVMEM_SANITIZE=address,undefined
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir build-asan --output-on-failure -j "$JOBS"
	;;
tsan)
	ensure_packages
	build build-tsan -DCMAKE_BUILD_TYPE=Debug -DVMEM_SANITIZE=thread
	TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan -L concurrency --output-on-failure
	;;
fuzz)
	ensure_packages
	.ci/fuzz.sh "$@"
	;;
valgrind)
	ensure_packages
	build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	.ci/valgrind.sh build
	;;
bench)
	ensure_packages
	build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	./build/tests/bench/vmem-bench "$@"
	;;
*)
	echo "usage: $0 demo|test|asan|tsan|fuzz [seconds]|valgrind|bench [bench options]" >&2
	exit 2
	;;
esac
