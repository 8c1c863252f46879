#!/usr/bin/env bash
# vmemdb on a snapshot written by e2e_prog (libvmem-debug or libvmem): the
# arena table, counters byte for byte, segments, walkers, ::whatis, the log,
# JSON, and ::findleaks listing every outstanding allocation.
. "$(dirname "$0")/lib.sh"
variant=$1
DEBUG=${variant%_shared}
KSTAT=$E2E_WORK/s.vsnap.kstat

"$E2E_BIN/e2e_prog_$variant" snapshot "$E2E_WORK/s.vsnap" || fail "e2e_prog snapshot exited $?"
check_common s.vsnap

check_kstat "$KSTAT" s.vsnap

expect_ok leaks.out s.vsnap -e '::findleaks'
has leaks.out "^findleaks: snapshot: no process memory to scan, so every outstanding allocation is listed\$"
has leaks.out "^ +Total +22 vmem_seg leaks, 126983 bytes\$"
if [ "$DEBUG" = debug ]; then
	has leaks.out "^8192 +5 [0-9a-f]{16} va +keep_pages\+0x[0-9a-f]+\$"
	has leaks.out "^12288 +3 [0-9a-f]{16} va +leak_pages\+0x[0-9a-f]+\$"
	has leaks.out "^8192 +1 [0-9a-f]{16} heap +leak_cached\+0x[0-9a-f]+\$"
	has leaks.out "^ {17}leak_pages \(.*e2e_prog\.c:$(line_of LEAK_SITE_PAGES)\)\$"
	[ "$(count leaks.out '^leak [0-9]+:')" -eq 9 ] || fail "::findleaks: not 9 groups"
else
	has leaks.out "^8192 +5 [0-9a-f]{16} va +-\$"
	has leaks.out "^12288 +3 [0-9a-f]{16} va +-\$"
	has leaks.out "^1 +7 [0-9a-f]{16} ids +-\$"
fi
expect_ok leaksv.out s.vsnap -e '::findleaks -v'
[ "$(count leaksv.out '^    [0-9a-f]{16} (ALLC|CACH) ')" -eq 22 ] || fail "::findleaks -v: not 22 members"
ok "::findleaks (snapshot)"

# the prompt reads commands from stdin when it is not a terminal
printf '::vmem\n::quit\n::vmem\n' | timeout 60 "$VMEMDB" s.vsnap >stdin.out 2>&1 || fail "stdin commands"
[ "$(count stdin.out '^ADDR ')" -eq 1 ] || fail "::quit did not stop reading"
ok "commands from stdin"
