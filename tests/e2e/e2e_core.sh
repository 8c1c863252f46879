#!/usr/bin/env bash
# vmemdb EXE CORE on a core of e2e_prog: from gcore (gdb) or from the kernel
# (abort with ulimit -c unlimited).  Skipped, saying why, where the machine
# cannot produce one.
. "$(dirname "$0")/lib.sh"
how=$1
variant=$2
DEBUG=${variant%_shared}
[ "$variant" = plain ] && DEBUG=nodebug
KSTAT=$E2E_WORK/st.kstat
prog=$E2E_BIN/e2e_prog_$variant

if asan_build && [ "$variant" != plain ]; then
	skip "AddressSanitizer processes map terabytes of shadow memory: their cores are not " \
		"taken (e2e_core_*_plain covers cores in this build)"
fi
if [ "$how" = gcore ]; then
	command -v gcore >/dev/null || skip "gcore (gdb) is not installed"
	require_ptrace
	start_wait "$variant" st
	gcore -o "$E2E_WORK/gc" "$PROG_PID" >gcore.log 2>&1 || skip "gcore failed: $(tail -1 gcore.log)"
	kill -9 "$PROG_PID"
	core=$E2E_WORK/gc.$PROG_PID
else
	pattern=$(cat /proc/sys/kernel/core_pattern)
	case "$pattern" in
	\|*) skip "the kernel hands cores to a program ($pattern)" ;;
	*/*) skip "the kernel writes cores elsewhere ($pattern)" ;;
	esac
	(ulimit -c 2097152 2>/dev/null) || skip "ulimit -c 2097152 (2 GiB) is not allowed"
	(
		ulimit -c 2097152
		exec "$prog" crash "$E2E_WORK/st"
	)
	status=$?
	[ "$status" -eq 134 ] || fail "e2e_prog crash exited $status, not SIGABRT"
	core=$(ls "$E2E_WORK"/core* 2>/dev/null | head -1)
	[ -n "$core" ] || skip "no core was written (core_pattern '$pattern')"
fi
[ -s "$core" ] || fail "empty core $core"

check_common "$prog" "$core"
check_kstat "$KSTAT" "$prog" "$core"
check_magazines "$prog" "$core"
expect_ok leaks.out "$prog" "$core" -e '::findleaks'
check_leaks_scan leaks.out "$DEBUG"
# a core alone: the executable is the one its NT_FILE note names
expect_ok alone.out "$core" -e '::vmem'
check_vmem alone.out "$KSTAT"
expect_ok st.out "$prog" "$core" -e '::status'
# the executable named by a relative path: its frames are still symbolized
(cd "$(dirname "$prog")" && vdb "$E2E_WORK/rel.out" "./$(basename "$prog")" "$core" -e '::findleaks') ||
	fail "vmemdb ./$(basename "$prog") exited $?: $(cat rel.out.err)"
check_leaks_scan rel.out "$DEBUG"
has st.out "^target: +core .* \(executable $prog\)\$"
ok "core ($how)"
rm -f "$core" # cores are large: kept only when a check fails
