#!/usr/bin/env bash
# vmemdb's benchmarks (BENCHMARKS.md, section "vmemdb"):
#   ::vmem and ::findleaks on a target of 1e6 segments: snapshot, live, core;
#   ::dot of a 1,000-arena import tree, to SVG and PNG.
# usage: tests/e2e/bench_vmemdb.sh BUILD_DIR [SEGMENTS]   (an optimized build)
set -euo pipefail
build=$(cd "${1:?build directory}" && pwd)
nseg=${2:-1000000}
vmemdb=$build/tools/vmemdb
prog=$build/tests/e2e/vmemdb_bench_prog
work=$(mktemp -d)
trap 'kill -9 ${pid:-} 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

# best of 3 wall-clock seconds of a command
best() {
	local b=0 t s
	for _ in 1 2 3; do
		s=$(date +%s%N)
		"$@" >/dev/null
		t=$(($(date +%s%N) - s))
		if [ "$b" -eq 0 ] || [ "$t" -lt "$b" ]; then b=$t; fi
	done
	printf '%d.%03d' $((b / 1000000000)) $((b / 1000000 % 1000))
}

row() { printf '| %-44s | %8s s |\n' "$1" "$2"; }

echo "| $nseg segments (one arena), vmemdb $(uname -m), $(nproc) cpus | time |"
echo "|---|---:|"
"$prog" segs "$nseg" snapshot big.vsnap
row "snapshot: load + ::vmem" "$(best "$vmemdb" big.vsnap -e ::vmem)"
row "snapshot: load + ::findleaks (outstanding)" "$(best "$vmemdb" big.vsnap -e ::findleaks)"
row "snapshot: load only (::status)" "$(best "$vmemdb" big.vsnap -e ::status)"

mkfifo ready.fifo
"$prog" segs "$nseg" wait x >ready.fifo &
pid=$!
read -r _ <ready.fifo
row "live: attach, collect + ::vmem" "$(best "$vmemdb" -p "$pid" -e ::vmem)"
row "live: attach, collect + ::findleaks (scan)" "$(best "$vmemdb" -p "$pid" -e ::findleaks)"
gcore -o core "$pid" >/dev/null 2>&1
kill -9 "$pid"
row "core: open, collect + ::vmem" "$(best "$vmemdb" "$prog" "core.$pid" -e ::vmem)"
row "core: open, collect + ::findleaks (scan)" "$(best "$vmemdb" "$prog" "core.$pid" -e ::findleaks)"
"$vmemdb" "$prog" "core.$pid" -e ::findleaks | grep -E '^ +Total'

"$prog" arenas 1000 snapshot tree.vsnap
row "1,000-arena tree: ::dot -T dot (no layout)" "$(best "$vmemdb" tree.vsnap -e '::dot -o t.dot')"
row "1,000-arena tree: ::dot -T svg" "$(best "$vmemdb" tree.vsnap -e '::dot -T svg -o t.svg')"
row "1,000-arena tree: ::dot -T png" "$(best "$vmemdb" tree.vsnap -e '::dot -T png -o t.png')"
row "segment map of 1e6 segments: big::dot -T svg" "$(best "$vmemdb" big.vsnap -e 'big::dot -T svg -o m.svg')"
