#!/usr/bin/env bash
# vmemdb -p on a running e2e_prog (libvmem or libvmem-debug, static or
# shared): the state, the counters, the magazines, the conservative leak
# scan, and that the process is left running and untraced afterwards, also
# when vmemdb is killed.
. "$(dirname "$0")/lib.sh"
variant=$1
DEBUG=${variant%_shared}
KSTAT=$E2E_WORK/st.kstat

resumed() {
	grep -Eq '^TracerPid:[[:space:]]+0$' "/proc/$PROG_PID/status" || fail "$1: still traced"
	# S in pause(), or R for an instant while it restarts it: anything but stopped (t, T)
	case "$(awk '/^State:/ {print $2}' "/proc/$PROG_PID/status")" in
	t | T) fail "$1: still stopped" ;;
	esac
}

require_ptrace
start_wait "$variant" st
check_common -p "$PROG_PID"
resumed "after the common checks"

check_kstat "$KSTAT" -p "$PROG_PID"
check_magazines -p "$PROG_PID"
expect_ok leaks.out -p "$PROG_PID" -e '::findleaks'
check_leaks_scan leaks.out "$DEBUG"
expect_ok walk.out -p "$PROG_PID" -e '::findleaks | ::vmem_seg -s; ::walk leak'
[ "$(count walk.out '^[0-9a-f]{16} (ALLC|CACH) ')" -eq 4 ] || fail "::findleaks | ::vmem_seg"
expect_ok st.out -p "$PROG_PID" -e '::status'
has st.out "^library: +libvmem$([ "$DEBUG" = debug ] && echo -debug), root version 1 at 0x[0-9a-f]+ in /"
resumed "after ::findleaks"

# vmemdb killed while it holds the process: the handler detaches first.
mkfifo cmd.fifo out.fifo
"$VMEMDB" -p "$PROG_PID" <cmd.fifo >out.fifo 2>sigterm.err &
vdb_pid=$!
exec 4>cmd.fifo 5<out.fifo
echo '::vmem' >&4
read -r -t 100 header <&5 || fail "no answer from vmemdb"
[[ $header == ADDR* ]] || fail "vmemdb said '$header'"
grep -Eq '^TracerPid:[[:space:]]+[1-9]' "/proc/$PROG_PID/status" || fail "not stopped while inspected"
kill -TERM "$vdb_pid"
wait "$vdb_pid"
exec 4>&- 5<&-
resumed "after SIGTERM to vmemdb"
ok "stopped while inspected, resumed after"
