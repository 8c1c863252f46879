/*
 * vmem-demo: build a small arena tree the way a kernel or a runtime would,
 * use it, and print its state; then leak a little, hit a bug (a double
 * free) and die, leaving a snapshot for vmemdb to inspect post mortem.
 *
 *   heap        [0x10000000, +256 MiB)   pages (quantum 4 KiB)
 *     va        imports spans from heap, gives them back when free
 *     dma       constrained allocations: 64 KiB aligned, no 1 MiB crossing
 *   pids        identifiers [1, 1000), next-fit: handed out in sequence
 *
 * Linked with libvmem-debug: the double free is reported with both stacks,
 * the snapshot (VMEM_SNAPSHOT, set here to the path given, default
 * vmem-demo.vsnap) is written, and the process aborts.  Then:
 *
 *   vmemdb vmem-demo.vsnap -e '::vmem; ::findleaks; ::dot -T svg -o tree.svg'
 */
#include <vmem.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGE ((size_t)4096)

static void print_seg(void *arg, void *addr, size_t size)
{
	const char *type = arg;

	printf("      %-5s [%#14" PRIxPTR ", %#14" PRIxPTR ")  %zu\n", type, (uintptr_t)addr,
	       (uintptr_t)addr + size, size);
}

static void show(vmem_t *vmp, int depth, int maxsegs)
{
	printf("%*s%-10s in use %10zu  free %10zu  total %10zu\n", 2 * depth, "", vmem_name(vmp),
	       vmem_size(vmp, VMEM_ALLOC), vmem_size(vmp, VMEM_FREE),
	       vmem_size(vmp, VMEM_ALLOC | VMEM_FREE));
	if (maxsegs > 0) {
		vmem_walk(vmp, VMEM_SPAN, print_seg, "SPAN");
		vmem_walk(vmp, VMEM_ALLOC, print_seg, "ALLOC");
	}
}

/* Kept buffers: referenced from here, so they are not leaks. */
static void *cache[4];

/* Forgets what it allocates: the leak vmemdb's ::findleaks points at. */
static __attribute__((noinline)) void load_config(vmem_t *va)
{
	for (int i = 0; i < 3; i++) {
		void *buf = vmem_alloc(va, 2 * PAGE, VM_SLEEP); /* leaked */

		(void)buf;
	}
}

static __attribute__((noinline)) void fill_cache(vmem_t *va)
{
	for (int i = 0; i < 4; i++)
		cache[i] = vmem_alloc(va, PAGE, VM_SLEEP);
}

/* The bug that kills the demo: the same buffer freed twice. */
static __attribute__((noinline)) void release_twice(vmem_t *va)
{
	void *p = vmem_alloc(va, PAGE, VM_SLEEP);

	vmem_free(va, p, PAGE);
	vmem_free(va, p, PAGE);
	__asm__ volatile("" ::: "memory"); /* no tail call: keep this frame in the report */
}

int main(int argc, char **argv)
{
	vmem_t *heap, *va, *dma, *pids;
	void *p[8], *d[4];
	uintptr_t id[5];
	const char *snap = argc > 1 ? argv[1] : "vmem-demo.vsnap";
	int i;

	/* where libvmem writes its snapshot when a fatal error kills the process */
	setenv("VMEM_SNAPSHOT", snap, 1);
	heap =
	    vmem_create("heap", (void *)0x10000000, 256 << 20, PAGE, NULL, NULL, NULL, 0, VM_SLEEP);
	va = vmem_create("va", NULL, 0, PAGE, vmem_alloc, vmem_free, heap, 0, VM_SLEEP);
	dma = vmem_create("dma", NULL, 0, PAGE, vmem_alloc, vmem_free, heap, 0, VM_SLEEP);
	pids =
	    vmem_create("pids", (void *)1, 999, 1, NULL, NULL, NULL, 0, VM_SLEEP | VMC_IDENTIFIER);
	if (heap == NULL || va == NULL || dma == NULL || pids == NULL) {
		perror("vmem_create");
		return 1;
	}

	for (i = 0; i < 8; i++)
		p[i] = vmem_alloc(va, (size_t)(i + 1) * PAGE, VM_SLEEP);
	for (i = 0; i < 4; i++)
		d[i] = vmem_xalloc(dma, 3 * PAGE, 64 * 1024, 0, 1 << 20, NULL, NULL, VM_SLEEP);
	for (i = 0; i < 5; i++)
		id[i] = (uintptr_t)vmem_alloc(pids, 1, VM_SLEEP | VM_NEXTFIT);

	printf("arena tree after allocating:\n");
	show(heap, 0, 1);
	show(va, 1, 1);
	show(dma, 1, 1);
	show(pids, 0, 0);
	printf("  pids handed out:");
	for (i = 0; i < 5; i++)
		printf(" %" PRIuPTR, id[i]);
	printf("\n\n");

	for (i = 0; i < 8; i++)
		vmem_free(va, p[i], (size_t)(i + 1) * PAGE);
	for (i = 0; i < 4; i++)
		vmem_xfree(dma, d[i], 3 * PAGE);
	vmem_free(pids, (void *)id[2], 1);
	id[2] = (uintptr_t)vmem_alloc(pids, 1, VM_SLEEP | VM_NEXTFIT);

	printf("after freeing (imported spans went back to heap):\n");
	show(heap, 0, 0);
	show(va, 1, 0);
	show(dma, 1, 0);
	printf("  next pid after freeing pid 3: %" PRIuPTR " (next fit keeps going)\n", id[2]);

	/* What vmemdb will see: the tree in use, a few leaks, the pids still out. */
	fill_cache(va);
	load_config(va);
	d[0] = vmem_xalloc(dma, 3 * PAGE, 64 * 1024, 0, 1 << 20, NULL, NULL, VM_SLEEP);
	printf(
	    "\nin use when the bug strikes (4 cached pages, 3 forgotten buffers, 1 dma buffer):\n");
	show(heap, 0, 0);
	show(va, 1, 0);
	show(dma, 1, 0);
	show(pids, 0, 0);
	printf("\nnow a bug: a buffer freed twice.  libvmem-debug reports it, writes %s and "
	       "aborts:\n",
	       snap);
	fflush(stdout);
	release_twice(va);
	/* only with VMEM_ERROR_POLICY=continue do we get here */
	if (vmem_snapshot_write(snap) != 0)
		perror(snap);
	return 1;
}
