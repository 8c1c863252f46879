#!/usr/bin/env bash
# The README's first command tells this story: the demo builds a tree, leaks,
# dies of a double free leaving a snapshot, and vmemdb shows the tree, the
# leak (load_config at its line) and draws the tree.  Keep it true.
. "$(dirname "$0")/lib.sh"
demo=${VMEM_DEMO:?}
src=$(dirname "$E2E_SRC")/../../tools/vmem-demo.c

"$demo" "$E2E_WORK/demo.vsnap" >demo.out 2>&1
status=$?
[ "$status" -eq 134 ] || fail "vmem-demo exited $status, not by SIGABRT"
has demo.out "double free" "the demo's report"
has demo.out "snapshot written to $E2E_WORK/demo.vsnap"

expect_ok story.out demo.vsnap -e '::vmem; ::findleaks; ::dot -T svg -o demo-tree.svg'
[ "$(count story.out '^[0-9a-f]{16} ')" -eq 4 ] || fail "not 4 arenas"
has story.out '^[0-9a-f]{16}   va +40960 +40960 '
line=$(grep -n 'leaked \*/' "$src" | head -1 | cut -d: -f1)
has story.out "^8192 +3 [0-9a-f]{16} va +load_config\+0x[0-9a-f]+\$"
has story.out "^ {17}load_config \(.*vmem-demo\.c:$line\)\$"
has story.out '^::dot: wrote demo-tree.svg \(svg\)$'
has demo-tree.svg '>pids</text>'
expect_ok log.out demo.vsnap -e '::vmem_log -o badfree'
[ "$(count log.out ' badfree +va ')" -eq 1 ] || fail "the double free is not in the log"
ok "the demo's story"
