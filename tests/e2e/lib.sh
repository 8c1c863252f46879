# shellcheck shell=bash
# Shared by the vmemdb end-to-end scripts (sourced).  The environment comes
# from ctest (tests/e2e/CMakeLists.txt): VMEMDB, E2E_BIN, E2E_SRC, E2E_WORK.
# Nothing here waits on time: programs say "ready" on a pipe; `timeout` and
# the programs' own alarm() are only watchdogs.
set -u

: "${VMEMDB:?} ${E2E_BIN:?} ${E2E_SRC:?} ${E2E_WORK:?}"
rm -rf "$E2E_WORK"
mkdir -p "$E2E_WORK"
cd "$E2E_WORK" || exit 1
# Cores and gcore output never grow past 2 GiB here (an AddressSanitizer
# process maps terabytes of shadow memory; its cores are not tried at all).
ulimit -f 2097152 2>/dev/null

# Tracing a sibling (vmemdb -p, gcore): root, or Yama scope 0 or 1 (the test
# programs allow any tracer with PR_SET_PTRACER); scope 2 and 3 forbid it.
can_ptrace() {
	local scope
	[ "$(id -u)" -eq 0 ] && return 0
	scope=$(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo 0)
	[ "$scope" -le 1 ]
}

require_ptrace() {
	can_ptrace || skip "ptrace is restricted here (kernel.yama.ptrace_scope" \
		"$(cat /proc/sys/kernel/yama/ptrace_scope)) and we are not root"
}

# sanitized BUILD: whether the programs carry AddressSanitizer
asan_build() {
	[[ ${E2E_SANITIZE:-} == *address* ]]
}

E2E_PIDS=()
cleanup() {
	local p
	for p in "${E2E_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
	done
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*"
	exit 77
}

ok() {
	echo "ok: $*"
}

# vdb OUTFILE ARGS...: run vmemdb, stdout to OUTFILE, stderr to OUTFILE.err; its status.
vdb() {
	local out=$1
	shift
	timeout 120 "$VMEMDB" "$@" >"$out" 2>"$out.err"
}

# expect_ok OUTFILE ARGS...: vmemdb must succeed.
expect_ok() {
	local out=$1
	vdb "$@" || fail "vmemdb ${*:2} exited $?: $(cat "$out.err")"
}

# has FILE REGEX [what]: an extended regex must match a line of FILE.
has() {
	grep -Eq -- "$2" "$1" || {
		echo "---- $1" >&2
		cat "$1" >&2
		fail "${3:-$1}: no line matches /$2/"
	}
}

hasnt() {
	if grep -Eq -- "$2" "$1"; then
		cat "$1" >&2
		fail "${3:-$1}: a line matches /$2/"
	fi
}

# count FILE REGEX: lines matching
count() {
	grep -Ec -- "$2" "$1"
}

# line_of MARKER: the line of e2e_prog.c carrying the marker comment
line_of() {
	grep -n -- "$1" "$E2E_SRC" | head -1 | cut -d: -f1
}

# kst KSTATFILE NAME STAT: one counter as the program printed it
kst() {
	awk -F'\t' -v k="$2:$3" '{ split($1, f, ":"); if (f[3] ":" f[4] == k) print $2 }' "$1"
}

# start_wait VARIANT NAME [MODE]: run e2e_prog_VARIANT MODE (wait) NAME, sets PROG_PID once
# it is ready.
start_wait() {
	local prog="$E2E_BIN/e2e_prog_$1" fifo="$E2E_WORK/$2.fifo" line
	mkfifo "$fifo"
	"$prog" "${3:-wait}" "$E2E_WORK/$2" >"$fifo" &
	E2E_PIDS+=($!)
	PROG_PID=$!
	exec 3<"$fifo"
	read -r -t 100 line <&3 || fail "$prog did not become ready"
	exec 3<&-
	[ "$line" = "ready $PROG_PID" ] || fail "$prog said '$line'"
}

# The arena rows of ::vmem must carry the counters the program printed itself.
check_vmem() {
	local out=$1 kstat=$2 name
	for name in heap va dma ids; do
		local inuse total alloc failed
		inuse=$(kst "$kstat" "$name" mem_inuse)
		total=$(kst "$kstat" "$name" mem_total)
		alloc=$(kst "$kstat" "$name" alloc)
		failed=$(kst "$kstat" "$name" fail)
		has "$out" "^[0-9a-f]{16} +$name +$inuse +$total +$alloc +$failed\$" "::vmem row $name"
	done
	has "$out" "^[0-9a-f]{16}   va " "::vmem: va indented under heap"
	has "$out" "^[0-9a-f]{16}   dma " "::vmem: dma indented under heap"
	has "$out" "^[0-9a-f]{16} +va +77824 +77824 " "::vmem: va's 77824 bytes in use"
	has "$out" "^[0-9a-f]{16} +ids +7 +999 +10 +1\$" "::vmem: ids 7 in use, 1 failure"
	[ "$(count "$out" '^[0-9a-f]{16} ')" -eq 4 ] || fail "::vmem: not 4 arenas"
	ok "::vmem"
}

# ::findleaks after a conservative scan (live, core): exactly the leaked segments.
check_leaks_scan() {
	local out=$1 debug=$2
	local lp lc
	lp=$(line_of LEAK_SITE_PAGES)
	lc=$(line_of LEAK_SITE_CACHED)
	has "$out" "^findleaks: conservative scan of [0-9]+ mappings"
	if [ "$debug" = debug ]; then
		has "$out" "^12288 +3 [0-9a-f]{16} va +leak_pages\+0x[0-9a-f]+\$"
		has "$out" "^8192 +1 [0-9a-f]{16} heap +leak_cached\+0x[0-9a-f]+\$"
		has "$out" "^ +Total +4 vmem_seg leaks, 45056 bytes\$"
		has "$out" "^ {17}leak_pages \(.*e2e_prog\.c:$lp\)\$" "leak_pages' file:line"
		has "$out" "^ {17}leak_cached \(.*e2e_prog\.c:$lc\)\$" "leak_cached's file:line"
		[ "$(count "$out" '^leak [0-9]+:')" -eq 2 ] || fail "::findleaks: not 2 groups"
	else
		has "$out" "^12288 +3 [0-9a-f]{16} va +-\$"
		has "$out" "^ +Total +3 vmem_seg leaks, 36864 bytes\$"
		has "$out" "quantum-cached objects were not checked"
	fi
	hasnt "$out" "keep_pages|use_dma|worker"
	ok "::findleaks (scan, $debug)"
}

# ::kstat: the arena and error lines are the program's own, byte for byte; of
# the caches a process shows only the sizes, slabs and objects out.
check_kstat() {
	local out=$1 kstat=$2 partial=$3
	if [ "$partial" = partial ]; then
		grep -E ':(heap|va|dma|ids|errors):|:(objsize|slabsize|slabs|slab_out)	' "$kstat" >"$kstat.expect"
	else
		cp "$kstat" "$kstat.expect"
	fi
	diff "$kstat.expect" "$out" >&2 || fail "::kstat differs from vmem_kstat_print()"
	ok "::kstat"
}

# The commands every target answers the same way.
check_common() {
	local tgt=("$@") kstat=$KSTAT debug=$DEBUG
	expect_ok vmem.out "${tgt[@]}" -e '::vmem'
	check_vmem vmem.out "$kstat"
	expect_ok seg.out "${tgt[@]}" -e 'va::vmem_seg -T ALLOC'
	[ "$(count seg.out '^[0-9a-f]{16} ALLC ')" -eq 8 ] || fail "va has not 8 ALLOC segments"
	expect_ok span.out "${tgt[@]}" -e '::walk vmem_span va'
	[ "$(count span.out '^[0-9a-f]+$')" -eq 8 ] || fail "::walk vmem_span va: not 8 spans"
	expect_ok size.out "${tgt[@]}" -e '::walk vmem_alloc va | ::vmem_seg -m 12K -s'
	[ "$(count size.out '^[0-9a-f]{16} ALLC [0-9a-f]{16} +12288')" -eq 3 ] ||
		fail "::vmem_seg -m 12K: not the 3 segments of 12288 bytes"
	ok "::vmem_seg, ::walk"
	# whatis: the first leaked segment of va
	local start
	start=$(awk '$2 == "ALLC" && $1 != "ADDR" {print $3}' size.out | head -1)
	start=$(printf '%x' "$((16#$start))")
	expect_ok whatis.out "${tgt[@]}" -e "${start}::whatis"
	has whatis.out "^$start is $start\+0, allocated from the va vmem arena"
	has whatis.out "allocated from the heap_12288 cache of the heap vmem arena \(a span imported by va\)"
	if [ "$debug" = debug ]; then
		has whatis.out "^ {17}leak_pages \(" "::whatis audit stack"
		# leak_pages made va's 3 segments, and heap's slab and objects va imported
		expect_ok caller.out "${tgt[@]}" -e 'va::vmem_seg -c leak_pages'
		[ "$(count caller.out '^[0-9a-f]{16} ALLC ')" -eq 3 ] || fail "va::vmem_seg -c leak_pages"
		expect_ok caller.out "${tgt[@]}" -e '::vmem_seg -c leak_pages -T CACHED'
		[ "$(count caller.out '^[0-9a-f]{16} CACH ')" -eq 3 ] || fail "::vmem_seg -c leak_pages -T CACHED"
		expect_ok v.out "${tgt[@]}" -e '::walk vmem_alloc va | ::vmem_seg -v'
		[ "$(count v.out '^ {17}keep_pages \(')" -eq 5 ] || fail "::vmem_seg -v: keep_pages"
		[ "$(count v.out '^ {17}leak_pages \(')" -eq 3 ] || fail "::vmem_seg -v: leak_pages"
		expect_ok log.out "${tgt[@]}" -e '::vmem_log -o xfree'
		[ "$(count log.out ' xfree +dma ')" -eq 1 ] || fail "::vmem_log -o xfree: not 1 record"
		ok "::vmem_seg -c/-v, ::whatis, ::vmem_log"
	fi
	if command -v python3 >/dev/null; then
		local cmd
		for cmd in ::vmem ::vmem_seg ::findleaks ::kstat ::vmem_log ::status '::walk vmem_alloc va' \
			"${start}::whatis" '::dot' '::help'; do
			expect_ok json.out --json "${tgt[@]}" -e "$cmd"
			python3 -c 'import json,sys; json.load(open(sys.argv[1]))' json.out ||
				fail "--json $cmd: not JSON"
		done
		expect_ok json.out --json "${tgt[@]}" -e '::vmem'
		python3 - json.out <<'EOF' || fail "--json ::vmem: wrong contents"
import json, sys
rows = {r["name"]: r for r in json.load(open(sys.argv[1]))}
assert rows["va"]["inuse"] == 77824 and rows["va"]["depth"] == 1, rows["va"]
assert rows["ids"]["fail"] == 1
EOF
		ok "--json"
	else
		echo "note: python3 missing: JSON output not validated"
	fi
}
