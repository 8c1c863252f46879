#!/usr/bin/env bash
# What one W2 instant-fit operation touches, counted by cachegrind: runs
# w2-lines with 2 and with OPS operations at each N and prints the
# difference per operation (instructions, D1 misses, last-level misses).
# Usage: tests/bench/cachelines.sh [BUILD_DIR] [OPS]   (needs valgrind)
set -euo pipefail
build=${1:-build}
ops=${2:-1000000}
prog=$build/tests/bench/w2-lines
[ -x "$prog" ] || { echo "cachelines.sh: $prog not built" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "cachelines.sh: valgrind is needed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# counts N OPS: "Ir D1misses LLdmisses" of one run
counts() {
	valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
		"$prog" "$1" "$2" >/dev/null 2>"$tmp/log"
	awk '/ I +refs:/ { gsub(",", "", $4); ir = $4 }
	     / D1 +misses:/ { gsub(",", "", $4); d1 = $4 }
	     / LLd +misses:/ { gsub(",", "", $4); ll = $4 }
	     END { print ir, d1, ll }' "$tmp/log"
}

printf '%-8s %14s %14s %14s\n' N instr/op D1-misses/op LL-misses/op
for n in 1000 10000 100000 1000000; do
	read -r i0 d0 l0 < <(counts "$n" 2)
	read -r i1 d1 l1 < <(counts "$n" "$ops")
	awk -v n="$n" -v ops="$ops" -v i0="$i0" -v i1="$i1" -v d0="$d0" -v d1="$d1" \
		-v l0="$l0" -v l1="$l1" 'BEGIN {
		printf "%-8d %14.1f %14.2f %14.2f\n", n, (i1 - i0) / (ops - 2),
			(d1 - d0) / (ops - 2), (l1 - l0) / (ops - 2) }'
done
