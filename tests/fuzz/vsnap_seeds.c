/*
 * Writes the seed corpus of the snapshot reader's fuzz target: a few small,
 * real snapshots from the library's writer, each taken mid-run from a
 * different arena layout.  Built against both libraries (vsnap_seeds and
 * vsnap_seeds_debug: the debug one adds stacks and a short log).
 *
 *   vsnap_seeds DIR   writes DIR/<lib>-small, DIR/<lib>-tree, DIR/<lib>-cached
 *
 * The files are small on purpose (the corpus stays under 1 MB and libFuzzer
 * mutates small inputs faster); the layouts are fixed, so rerunning it
 * changes only addresses, times and paths.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <vmem.h>

#define PG ((size_t)4096)

static const char *dir, *lib;

static void snap(const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s-%s", dir, lib, name);
	if (vmem_snapshot_write(path) != 0) {
		perror(path);
		exit(1);
	}
	printf("%s\n", path);
}

static void *must(void *p)
{
	if (p == NULL) {
		fprintf(stderr, "vsnap_seeds: allocation failed\n");
		exit(1);
	}
	return p;
}

/* One arena, a handful of segments. */
static void small(void)
{
	vmem_t *a = must(
	    vmem_create("seed_small", (void *)0x10000, 64 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP));
	void *p[6];

	for (int i = 0; i < 6; i++)
		p[i] = must(vmem_alloc(a, (size_t)(i % 3 + 1) * PG, VM_SLEEP));
	vmem_free(a, p[1], 2 * PG);
	vmem_free(a, p[4], 2 * PG);
	snap("small");
	vmem_free(a, p[0], PG);
	vmem_free(a, p[2], 3 * PG);
	vmem_free(a, p[3], PG);
	vmem_free(a, p[5], 3 * PG);
	vmem_destroy(a);
}

/* Imports two levels deep, xallocs, an identifier arena with two spans. */
static void tree(void)
{
	vmem_t *root = must(vmem_create("seed_root", (void *)0x40000000, 4096 * PG, PG, NULL, NULL,
	                                NULL, 0, VM_SLEEP));
	vmem_t *mid = must(vmem_create("seed_mid", NULL, 0, PG, vmem_alloc, vmem_free, root, 0,
	                               VM_SLEEP | VMC_NO_QCACHE));
	vmem_t *leaf = must(vmem_create("seed_leaf", NULL, 0, PG, vmem_alloc, vmem_free, mid, 0,
	                                VM_SLEEP | VMC_NO_QCACHE));
	vmem_t *ids = must(vmem_create("seed_ids", (void *)1, 100, 1, NULL, NULL, NULL, 0,
	                               VM_SLEEP | VMC_IDENTIFIER));
	void *p[40], *x[8], *id[30];

	must(vmem_add(ids, (void *)1000, 50, VM_SLEEP));
	for (int i = 0; i < 40; i++)
		p[i] = must(vmem_alloc(i % 2 ? mid : leaf, (size_t)(i % 4 + 1) * PG, VM_SLEEP));
	for (int i = 0; i < 8; i++)
		x[i] = must(
		    vmem_xalloc(leaf, PG, 4 * PG, (size_t)(i % 2) * PG, 0, NULL, NULL, VM_SLEEP));
	for (int i = 0; i < 30; i++)
		id[i] = must(vmem_alloc(ids, (size_t)(i % 3 + 1), VM_SLEEP));
	for (int i = 0; i < 40; i += 3)
		vmem_free(i % 2 ? mid : leaf, p[i], (size_t)(i % 4 + 1) * PG);
	for (int i = 0; i < 30; i += 2)
		vmem_free(ids, id[i], (size_t)(i % 3 + 1));
	snap("tree");
	for (int i = 0; i < 40; i++)
		if (i % 3 != 0)
			vmem_free(i % 2 ? mid : leaf, p[i], (size_t)(i % 4 + 1) * PG);
	for (int i = 0; i < 8; i++)
		vmem_xfree(leaf, x[i], PG);
	for (int i = 1; i < 30; i += 2)
		vmem_free(ids, id[i], (size_t)(i % 3 + 1));
	vmem_destroy(ids);
	vmem_destroy(leaf);
	vmem_destroy(mid);
	vmem_destroy(root);
}

/* A quantum-cached arena: slabs partly held, a cached size served directly. */
static void cached(void)
{
	vmem_t *src = must(vmem_create("seed_src", (void *)0x80000000, 1024 * PG, PG, NULL, NULL,
	                               NULL, 0, VM_SLEEP));
	vmem_t *qc =
	    must(vmem_create("seed_qc", NULL, 0, PG, vmem_alloc, vmem_free, src, 4 * PG, VM_SLEEP));
	void *p[48];

	for (int i = 0; i < 48; i++)
		p[i] = must(vmem_alloc(qc, (size_t)(i % 4 + 1) * PG, VM_SLEEP));
	for (int i = 0; i < 48; i += 3)
		vmem_free(qc, p[i], (size_t)(i % 4 + 1) * PG);
	snap("cached");
	for (int i = 0; i < 48; i++)
		if (i % 3 != 0)
			vmem_free(qc, p[i], (size_t)(i % 4 + 1) * PG);
	vmem_destroy(qc);
	vmem_destroy(src);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	lib = vmem_debug_enabled() ? "debug" : "nodebug";
	/* Keeps the debug snapshots small: the log is their largest section. */
	(void)vmem_debug_set_log_size(64);
	(void)vmem_debug_set_stack_depth(8);
	small();
	tree();
	cached();
	return 0;
}
