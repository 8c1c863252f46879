#!/usr/bin/env bash
# ::dot renders: the import tree and a segment map, as DOT text (which the
# dot program accepts), SVG (checked for the arena names) and PNG.
. "$(dirname "$0")/lib.sh"

"$E2E_BIN/e2e_prog_debug" snapshot "$E2E_WORK/s.vsnap" || fail "e2e_prog snapshot exited $?"

expect_ok tree.out s.vsnap -e '::dot -T svg -o tree.svg'
has tree.out "^::dot: wrote tree.svg \(svg\)\$"
has tree.svg '^<svg '
for name in heap va dma ids tiny; do
	has tree.svg ">$name</text>" "tree.svg: arena $name"
done
has tree.svg '>76.0 KiB / 76.0 KiB</text>' "tree.svg: va's in-use/total"
[ "$(count tree.svg '^<g id="edge')" -eq 2 ] || fail "tree.svg: not 2 import edges"
ok "import tree (svg)"

expect_ok map.out s.vsnap -e 'va::dot -T svg -o va.svg'
has va.svg '>va</text>' "va.svg: the arena's name"
[ "$(grep -o 'alloc 0x1001[0-9a-f]\{4\} 12288 bytes' va.svg | sort -u | wc -l)" -eq 3 ] ||
	fail "va.svg: not 3 cells of 12288 bytes"
expect_ok map2.out s.vsnap -e '::dot -T svg -o heap.svg heap'
has heap.svg 'a quantum.*cache slab: 3 objects held' "heap.svg: the slab of va's 3 imports"
has heap.svg 'imported by dma' "heap.svg: spans imported by dma"
ok "segment maps (svg)"

expect_ok png.out s.vsnap -e '::dot -T png -o tree.png'
[ "$(head -c 8 tree.png | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "tree.png is not a PNG"
ok "png"

expect_ok dot.out s.vsnap -e '::dot'
has dot.out '^digraph vmem \{'
has dot.out 'a1 -> a2'
if command -v dot >/dev/null; then
	dot -Tsvg dot.out >cli.svg || fail "the dot program rejects ::dot's output"
	has cli.svg '>ids</text>'
fi
expect_ok json.out --json s.vsnap -e '::dot -T svg -o j.svg'
has json.out '"format":"svg","file":"j.svg","nodes":5'
ok "dot text, json"
