/*
 * Targets for vmemdb's benchmarks (tests/e2e/bench_vmemdb.sh, BENCHMARKS.md).
 *
 *   bench_prog segs N snapshot|wait FILE
 *       one arena of N segments: N/2 one-page allocations separated by N/2
 *       free pages; the allocations are kept in a malloc'd array except one
 *       in a hundred, which leaks.
 *   bench_prog arenas N snapshot|wait FILE
 *       N arenas in a tree (each importing from the arena created 1..4
 *       arenas before it, so the tree is broad and deep), one allocation
 *       each.
 * "wait" prints "ready" and sleeps, for vmemdb -p and gcore; "snapshot"
 * writes FILE and exits.
 */
#include <vmem.h>
#include <vmem_root.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define PAGE ((size_t)4096)

static void **kept;

static void segs(size_t n)
{
	vmem_t *big = vmem_create("big", (void *)0x100000000ULL, n * PAGE, PAGE, NULL, NULL, NULL,
	                          0, VM_SLEEP);
	size_t half = n / 2;
	void **all = malloc(n * sizeof(*all));

	kept = malloc(half * sizeof(*kept));
	if (big == NULL || all == NULL || kept == NULL)
		exit(3);
	for (size_t i = 0; i < n; i++)
		all[i] = vmem_alloc(big, PAGE, VM_SLEEP);
	for (size_t i = 0; i < n; i += 2)
		vmem_free(big, all[i], PAGE);
	for (size_t i = 0; i < half; i++)
		kept[i] = i % 100 == 0 ? NULL : all[2 * i + 1];
	memset(all, 0, n * sizeof(*all));
	free(all);
}

static void arenas(size_t n)
{
	vmem_t **a = malloc(n * sizeof(*a));
	char name[32];

	kept = malloc(n * sizeof(*kept));
	if (a == NULL || kept == NULL)
		exit(3);
	a[0] = vmem_create("root", (void *)0x100000000ULL, (size_t)1 << 40, PAGE, NULL, NULL, NULL,
	                   0, VM_SLEEP);
	for (size_t i = 1; i < n; i++) {
		snprintf(name, sizeof(name), "arena%zu", i);
		a[i] = vmem_create(name, NULL, 0, PAGE, vmem_alloc, vmem_free, a[(i - 1) / 4], 0,
		                   VM_SLEEP);
	}
	for (size_t i = 0; i < n; i++)
		kept[i] = vmem_alloc(a[i], (i % 7 + 1) * PAGE, VM_SLEEP);
}

int main(int argc, char **argv)
{
	size_t n;

	if (argc != 5) {
		fprintf(stderr, "usage: bench_prog segs|arenas N snapshot|wait FILE\n");
		return 2;
	}
	n = strtoull(argv[2], NULL, 0);
	prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0); /* for vmemdb -p and gcore */
	if (strcmp(argv[1], "segs") == 0)
		segs(n);
	else
		arenas(n);
	if (strcmp(argv[3], "snapshot") == 0)
		return vmem_snapshot_write(argv[4]) == 0 ? 0 : 3;
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
