#!/usr/bin/env bash
# Corrupt and mismatched inputs: one clear line on stderr, nothing on
# stdout, a non-zero exit.
. "$(dirname "$0")/lib.sh"

# expect_error STATUS REGEX ARGS...: vmemdb fails with STATUS and one line matching REGEX.
expect_error() {
	local want=$1 regex=$2 status
	shift 2
	vdb err.out "$@"
	status=$?
	[ "$status" -eq "$want" ] || fail "vmemdb $*: exit $status, wanted $want: $(cat err.out.err)"
	[ "$(wc -l <err.out.err)" -eq 1 ] || fail "vmemdb $*: not one line: $(cat err.out.err)"
	[ ! -s err.out ] || fail "vmemdb $*: wrote to stdout"
	grep -Eq -- "$regex" err.out.err || fail "vmemdb $*: '$(cat err.out.err)' does not match /$regex/"
	ok "$(cat err.out.err)"
}

"$E2E_BIN/e2e_prog_debug" snapshot "$E2E_WORK/s.vsnap" || fail "e2e_prog snapshot exited $?"
size=$(stat -c %s s.vsnap)

head -c $((size / 2)) s.vsnap >trunc.vsnap
expect_error 1 '^vmemdb: .*trunc' trunc.vsnap -e '::vmem'
head -c 40 s.vsnap >short.vsnap
expect_error 1 '^vmemdb: ' short.vsnap -e '::vmem'
printf 'not a snapshot at all, not an ELF file either\n' >junk
expect_error 1 '^vmemdb: ' junk -e '::vmem'
: >empty
expect_error 1 '^vmemdb: ' empty -e '::vmem'
expect_error 1 '^vmemdb: .*nosuchfile' nosuchfile -e '::vmem'

# commands
expect_error 1 "^vmemdb: no command '::nosuch'" s.vsnap -e '::nosuch'
expect_error 1 "^vmemdb: 'zzz' is neither an address nor an arena" s.vsnap -e 'zzz::vmem'
expect_error 1 '^vmemdb: ::vmem_seg: bad value' s.vsnap -e '::vmem_seg -T NOPE'
expect_error 2 '^usage: vmemdb' 
expect_error 1 '^vmemdb: no process' -p 2147483000

can_ptrace || skip "the snapshot and command errors passed; the process ones need ptrace," \
	"restricted here (kernel.yama.ptrace_scope $(cat /proc/sys/kernel/yama/ptrace_scope))"

# a process without libvmem, live and as a core
mkfifo nv.fifo
"$E2E_BIN/e2e_no_vmem" >nv.fifo &
E2E_PIDS+=($!)
spid=$!
read -r -t 100 _ <nv.fifo
expect_error 1 'no libvmem in this process' -p "$spid"
grep -Eq '^TracerPid:[[:space:]]+0$' "/proc/$spid/status" || fail "e2e_no_vmem left traced"
if command -v gcore >/dev/null && gcore -o "$E2E_WORK/nvcore" "$spid" >/dev/null 2>&1; then
	expect_error 1 'no libvmem in this process' "$E2E_BIN/e2e_no_vmem" "nvcore.$spid"
else
	echo "note: gcore unavailable: the core of a process without libvmem is not tried"
fi
sleeper=$(command -v sleep)

# a corrupt process: the broken list is a note, the rest is read, nothing loops
start_wait debug cor corrupt
vdb cor.out -p "$PROG_PID" -e '::vmem; ::findleaks' || fail "vmemdb on a corrupt list exited $?"
has cor.out.err "^vmemdb: note: arena 'va': segment list broken at 0x[0-9a-f]+ \((a cycle|segments out of address order)\); 2 segments read\$"
has cor.out '^[0-9a-f]{16}   va ' "::vmem despite the broken list"
has cor.out '^ +Total '
ok "a corrupt segment list is reported, not followed"

# corrupt magazines (libvmem, not -debug): notes, and the rest of the state
start_wait nodebug badm badmags
vdb badm.out -p "$PROG_PID" -e '::vmem; ::kstat; ::findleaks' || fail "vmemdb on corrupt magazines exited $?"
has badm.out.err "^vmemdb: note: cache heap_16384: the depot's list of full magazines is broken at 0x[0-9a-f]+ \(it claims 1\)\$"
has badm.out.err "^vmemdb: note: cache heap_16384: magazine at 0x[0-9a-f]+ claims 1000 rounds \(it holds [0-9]+\): its objects look held\$"
has badm.out '^[0-9a-f]{16} +heap '
has badm.out '^vmem:1:heap_16384:mag_rounds	'
has badm.out '^ +Total '
ok "corrupt magazines are reported, not followed"

# a root vmemdb cannot read: unknown version, bad magic, smaller than any
# version-1 root; and one it reads as an older libvmem's (without magazines)
for how in version magic short old; do
	mkfifo fr_$how.fifo
	"$E2E_BIN/e2e_fake_root" $how >fr_$how.fifo &
	E2E_PIDS+=($!)
	fpid=$!
	read -r -t 100 _ <fr_$how.fifo
	case $how in
	version) expect_error 1 'has root version 99; this vmemdb reads version 1' -p "$fpid" ;;
	magic) expect_error 1 'bad magic 0x1122334455667788: not a libvmem root' -p "$fpid" ;;
	short) expect_error 1 'root in .*e2e_fake_root is [0-9]+ bytes; version 1 has at least [0-9]+$' -p "$fpid" ;;
	old)
		vdb old.out -p "$fpid" -e '::status; ::kstat' || fail "vmemdb on a first-version root exited $?"
		has old.out.err "^vmemdb: note: the libvmem in .*e2e_fake_root has a root without magazines \(an older build\): cache counters other than sizes and slabs are not known, and objects freed into magazines cannot be told from objects callers hold\$"
		has old.out "^library: +libvmem, root version 1 at 0x[0-9a-f]+ in .*e2e_fake_root\$"
		has old.out "^arenas: +0; "
		has old.out "^vmem:0:errors:bad_free	3\$"
		hasnt old.out "^cached: "
		ok "a first-version root is read, and said to lack magazines"
		;;
	esac
done

# the wrong executable for a core (not of an AddressSanitizer process: too big)
variant=debug
asan_build && variant=plain
start_wait $variant st
if command -v gcore >/dev/null && gcore -o "$E2E_WORK/gc" "$PROG_PID" >/dev/null 2>&1; then
	expect_error 1 "was not produced by $sleeper" "$sleeper" "gc.$PROG_PID"
	other=nodebug
	[ $variant = plain ] && other=debug
	expect_error 1 "was not produced by .*e2e_prog_$other" "$E2E_BIN/e2e_prog_$other" "gc.$PROG_PID"
	head -c 3000 "gc.$PROG_PID" >gc.trunc
	expect_error 1 '^vmemdb: ' "$E2E_BIN/e2e_prog_$variant" gc.trunc
	expect_error 1 'not a core file' "$E2E_BIN/e2e_prog_$variant" "$E2E_BIN/e2e_prog_$variant"
else
	echo "note: gcore unavailable: mismatched executables are not tried"
fi
rm -f gc.* nvcore.* # cores are large: kept only when a check fails
