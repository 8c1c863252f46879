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
	for name in heap va dma ids tiny; do
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
	[ "$(count "$out" '^[0-9a-f]{16} ')" -eq 5 ] || fail "::vmem: not 5 arenas"
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
		has "$out" "^ {17}leak_pages \(.*e2e_prog\.c:$lp\)\$" "leak_pages' file:line"
		has "$out" "^ {17}leak_cached \(.*e2e_prog\.c:$lc\)\$" "leak_cached's file:line"
	else
		# the cached leak too: the objects free in magazines are told apart
		has "$out" "^12288 +3 [0-9a-f]{16} va +-\$"
		has "$out" "^8192 +1 [0-9a-f]{16} heap +-\$"
	fi
	has "$out" "^ +Total +4 vmem_seg leaks, 45056 bytes\$"
	[ "$(count "$out" '^leak [0-9]+:')" -eq 2 ] || fail "::findleaks: not 2 groups"
	hasnt "$out" "keep_pages|use_dma|worker|churn"
	hasnt "$out" "were not checked: libvmem"
	ok "::findleaks (scan, $debug)"
}

# check_kstat KSTAT TARGET...: ::kstat is the program's own vmem_kstat_print(),
# byte for byte, caches included (a process's and a core's through the root's
# description of the depots and the threads' magazines); --json the same as
# vmem_kstat_print(VMEM_KSTAT_JSON).
check_kstat() {
	local kstat=$1
	shift
	expect_ok k.out "$@" -e '::kstat'
	diff "$kstat" k.out >&2 || fail "::kstat differs from vmem_kstat_print()"
	ok "::kstat"
	if command -v python3 >/dev/null; then
		expect_ok kj.out --json "$@" -e '::kstat'
		python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
			kj.out "$kstat.json" || fail "::kstat --json differs from vmem_kstat_print(VMEM_KSTAT_JSON)"
		ok "::kstat --json"
	fi
}

# check_magazines TARGET...: a process or a core.  libvmem (not -debug) keeps
# freed objects in magazines: e2e_prog leaves heap_16384's in its depot (full
# and empty) and in both threads' magazines, and tiny's object, which the
# arena served directly, in one too.  They are counted (::status), described
# (::whatis) and not held (check_common and check_leaks_scan see to that);
# libvmem-debug has none.
check_magazines() {
	local kstat=$KSTAT rounds obj direct
	rounds=$(awk -F'\t' '$1 ~ /:mag_rounds$/ { n += $2 } END { print n + 0 }' "$kstat")
	expect_ok mst.out "$@" -e '::status'
	has mst.out "^cached: +$rounds objects free in magazines \(not held by callers\)\$"
	obj=$(cat "${kstat%.kstat}.magobj")
	expect_ok mw.out "$@" -e "${obj}::whatis"
	expect_ok ts.out "$@" -e 'tiny::vmem_seg -T ALLOC'
	if [ "$DEBUG" = debug ]; then
		[ "$rounds" -eq 0 ] || fail "libvmem-debug has $rounds rounds in magazines"
		hasnt mw.out "free in a magazine"
		hasnt ts.out " ALLC "
	else
		# e2e_prog's sequence, unless the library reaped on its own (a 5 s interval)
		if [ "$(kst "$kstat" heap_16384 depot_full)" -lt 1 ] ||
			[ "$(kst "$kstat" heap_16384 depot_empty)" -lt 1 ] ||
			[ "$(kst "$kstat" heap_16384 mag_rounds)" -ne 200 ]; then
			fail "e2e_prog did not leave heap_16384's depot and magazines as planned"
		fi
		has mw.out "^$obj is $obj\+0, free in a magazine of the heap_16384 cache of the heap vmem arena "
		# tiny's object: an allocated segment of the arena, yet free (and no leak:
		# check_leaks_scan), though nothing points to it
		[ "$(count ts.out '^[0-9a-f]{16} ALLC ')" -eq 1 ] || fail "tiny has not 1 ALLOC segment"
		direct=$(awk '$2 == "ALLC" { print $3 }' ts.out | sed 's/^0*//')
		expect_ok dw.out "$@" -e "${direct}::whatis"
		has dw.out "^$direct is $direct\+0, free in a magazine of the tiny_4096 cache of the tiny vmem arena, served by the arena directly \(vmem_seg [0-9a-f]+, 4096 bytes\)\$"
	fi
	ok "magazines ($rounds objects)"
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
	# the cached objects callers hold: 2 + 1 of heap's own, 5 + 3 spans va took
	# (not the objects free in magazines, in libvmem without -debug)
	expect_ok cach.out "${tgt[@]}" -e '::vmem_seg -T CACHED'
	[ "$(count cach.out '^[0-9a-f]{16} CACH ')" -eq 11 ] || fail "::vmem_seg -T CACHED: not 11 objects"
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
