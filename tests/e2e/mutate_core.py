#!/usr/bin/env python3
"""Corrupt a core file of a libvmem program, again and again, and check that
vmemdb never crashes, hangs or trips a sanitizer on it: it must print its
results or a clear error.  Not run by ctest (each round copies the whole
core); run it by hand, best with the ASan+UBSan vmemdb:

  gcore -o core PID         # of a program linked with libvmem(-debug)
  tests/e2e/mutate_core.py build-asan/tools/vmemdb EXE core.PID [ROUNDS] [SEED]

Each round overwrites 1 to 8 words with 0, all ones, random values or
addresses near the arenas; most land inside the allocator's own records
(segment tags and vmem_t structures, found by asking vmemdb), the rest
anywhere in the memory around them.  A failing core is kept as bad-N.core.
"""
import random
import shutil
import subprocess
import sys

COMMANDS = ('::vmem; ::vmem_seg -v; ::findleaks -v; ::walk vmem_alloc; ::kstat; '
            '::vmem_log; ::dot -T dot')


def load_segments(core):
    """The PT_LOAD segments of the core: (file offset, address, file size)."""
    out = subprocess.run(['readelf', '-lW', core], capture_output=True, text=True,
                         check=True).stdout
    segs = []
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == 'LOAD' and int(f[4], 16) > 0:
            segs.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
    return segs


def records(vmemdb, exe, core):
    """Addresses of the arenas and of every segment tag, as vmemdb lists them."""
    def run(cmd):
        return subprocess.run([vmemdb, '-e', cmd, exe, core], capture_output=True,
                              text=True, check=True).stdout.split('\n')
    arenas = [int(x, 16) for x in run('::walk vmem') if x.strip()]
    tags = []
    for line in run('::vmem_seg')[1:]:
        f = line.split()
        if len(f) >= 3 and f[1] in ('SPAN', 'ALLC', 'FREE'):
            tags.append(int(f[0], 16))
    return arenas, tags


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    vmemdb, exe, core = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    random.seed(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    segs = load_segments(core)
    arenas, tags = records(vmemdb, exe, core)
    if not arenas:
        sys.exit('mutate_core.py: vmemdb finds no arena in this core')
    data = open(core, 'rb').read()
    base = subprocess.run([vmemdb, '-e', COMMANDS, exe, core], capture_output=True).stdout

    def offset_of(addr):
        for off, va, size in segs:
            if va <= addr < va + size:
                return off + addr - va
        return None

    def pick_offset():
        r = random.random()
        if r < 0.4 and tags:
            return offset_of(random.choice(tags) + 8 * random.randrange(14))
        if r < 0.6:
            return offset_of(random.choice(arenas) + 8 * random.randrange(0x600 // 8))
        if r < 0.9:
            return offset_of(random.choice(arenas) + 8 * random.randrange(-512, 8192))
        off, _, size = random.choice(segs)
        return off + (random.randrange(size) & ~7)

    failures = changed = 0
    codes = {}
    for i in range(rounds):
        buf = bytearray(data)
        for _ in range(random.choice([1, 1, 2, 3, 8])):
            o = pick_offset()
            if o is None or o + 8 > len(buf):
                continue
            v = random.choice([0, (1 << 64) - 1, random.getrandbits(64), random.getrandbits(16),
                               random.choice(arenas) + 8 * random.randrange(-32, 32)])
            buf[o:o + 8] = v.to_bytes(8, 'little')
        open('mutated.core', 'wb').write(buf)
        try:
            r = subprocess.run([vmemdb, '-e', COMMANDS, exe, 'mutated.core'],
                               capture_output=True, timeout=60)
            code, err = r.returncode, r.stderr.decode(errors='replace')
            changed += r.stdout != base
        except subprocess.TimeoutExpired:
            code, err = 'timeout', ''
        codes[code] = codes.get(code, 0) + 1
        if (code == 'timeout' or code < 0 or code > 2 or 'Sanitizer' in err or
                'runtime error' in err):
            failures += 1
            shutil.copy('mutated.core', 'bad-%d.core' % failures)
            print('round %d: exit %s\n%s' % (i, code, err[-800:]))
    print('mutate_core.py: %d rounds, %d changed the output, exit codes %s, %d failures'
          % (rounds, changed, codes, failures))
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
