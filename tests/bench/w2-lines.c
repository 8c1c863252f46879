/*
 * w2-lines: W2's instant-fit loop alone, for counting what an operation
 * touches.  Run under cachegrind twice, with a few and with many
 * operations, the difference isolates the operations from building the
 * fragmented state (tests/bench/cachelines.sh does that).
 *
 *   w2-lines N OPS     N live segments of 1..64 pages, OPS calls
 */
#include <vmem.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGE ((size_t)4096)

/* xorshift64: cheap, so the harness adds few instructions of its own. */
static uint64_t rng = 0x853c49e6748fea9bULL;

static uint64_t bench_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

typedef struct live_seg {
	uintptr_t addr;
	size_t size;
} live_seg_t;

static size_t random_size(void)
{
	return PAGE * (1 + bench_rand() % 64);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000, ops = argc > 2 ? atol(argv[2]) : 1000000;
	vmem_t *vmp;
	live_seg_t *live;
	size_t nlive = 0;

	if (n <= 0 || ops < 0) {
		fprintf(stderr, "usage: w2-lines N OPS\n");
		return 2;
	}
	vmp = vmem_create("w2-lines", (void *)((uintptr_t)1 << 40), (size_t)1 << 46, PAGE, NULL,
	                  NULL, NULL, 0, VM_SLEEP | VMC_NO_QCACHE);
	live = malloc(2 * (size_t)n * sizeof(*live));
	if (vmp == NULL || live == NULL)
		return 1;
	/* The fragmented state: allocate 2n, free a random half. */
	for (long i = 0; i < 2 * n; i++) {
		live[nlive].size = random_size();
		live[nlive].addr = (uintptr_t)vmem_alloc(vmp, live[nlive].size, VM_NOSLEEP);
		nlive++;
	}
	for (long i = 0; i < n; i++) {
		size_t j = bench_rand() % nlive;

		vmem_free(vmp, (void *)live[j].addr, live[j].size);
		live[j] = live[--nlive];
	}
	/* The measured part: one free and one allocation per two ops. */
	for (long i = 0; i < ops / 2; i++) {
		size_t j = bench_rand() % nlive;

		vmem_free(vmp, (void *)live[j].addr, live[j].size);
		live[j].size = random_size();
		live[j].addr = (uintptr_t)vmem_alloc(vmp, live[j].size, VM_NOSLEEP);
		if (live[j].addr == 0) {
			fprintf(stderr, "w2-lines: allocation failed\n");
			return 1;
		}
	}
	printf("w2-lines: n=%ld ops=%ld\n", n, ops);
	return 0;
}
