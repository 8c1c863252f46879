/*
 * vmem-bench: libvmem's benchmark suite.  Every figure is measured in the
 * same run as its baseline; results print as a table, or with --json one
 * object per line.
 *
 *   W1  small fixed: alloc+free of 1 quantum in a 2^40-quantum arena, with
 *       and without quantum caching; baseline glibc malloc+free of 16 bytes.
 *       One op = one alloc+free pair.
 *   W2  fragmentation scaling: N live segments of random sizes 1..64 quanta
 *       (made by allocating 2N and freeing a random half), then random
 *       frees and allocations keeping N live; every policy; baseline: a
 *       classic linear resource map (rmalloc/rmfree, first fit over a sorted
 *       array), the allocator the vmem paper replaced.
 *
 *   W3  constrained vmem_xalloc (align 64 KiB, nocross 1 MiB, sizes 1..16
 *       pages) with N live, random frees and allocations as in W2.
 *   W4  identifiers: a quantum-1 VMC_IDENTIFIER arena, 1e5 live ids, random
 *       frees and single-id allocations, instant fit and next fit.
 *   W5  space efficiency: a random trace (log-uniform sizes 1..256 quanta,
 *       live set random-walking up to 4096) against one big span; ratio =
 *       the extent the trace needed (highest end - base) / the peak live size.
 *   W6  threads: 1, 2, ... threads doing W1 (cached) on one shared arena;
 *       throughput and the ratio to one thread.
 *   D   the debug library (vmem-bench-debug, run from vmem-bench): W1's
 *       alloc+free pair with a 16-frame stack captured at each call, and
 *       metadata bytes per live segment, against the fast library.
 *   S   snapshots: writing one of an arena with 1e6 live segments (ns per
 *       segment, bytes per segment).
 *
 * For W2-W4 an "op" is one call: one allocation or one free.
 *
 *   vmem-bench [--quick] [--json] [--only W2]
 */
#include <vmem.h>

#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

/* ---- output ------------------------------------------------------------------- */

static bool json, quick;
static const char *only;

void bench_emit(const bench_result_t *r)
{
	if (json) {
		printf("{\"workload\":\"%s\",\"policy\":\"%s\",\"variant\":\"%s\",\"n\":%ld,"
		       "\"threads\":%d,\"ns_per_op\":%.1f",
		       r->workload, r->policy, r->variant, r->n, r->threads, r->ns_per_op);
		if (r->ratio > 0)
			printf(",\"ratio\":%.3f", r->ratio);
		if (r->ops_per_s > 0)
			printf(",\"ops_per_s\":%.0f", r->ops_per_s);
		if (r->note != NULL)
			printf(",\"note\":\"%s\"", r->note);
		printf("}\n");
	} else {
		printf("%-3s %-11s %-13s n=%-8ld thr=%-2d %10.1f ns/op", r->workload, r->policy,
		       r->variant, r->n, r->threads, r->ns_per_op);
		if (r->ratio > 0)
			printf("  ratio %.3f", r->ratio);
		if (r->ops_per_s > 0)
			printf("  %.3g ops/s", r->ops_per_s);
		if (r->note != NULL)
			printf("  (%s)", r->note);
		printf("\n");
	}
	fflush(stdout);
}

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng = 0x853c49e6748fea9bULL;

uint64_t bench_rand(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1DULL;
}

void bench_seed(uint64_t s)
{
	rng = s ? s : 1;
}

bool bench_quick(void)
{
	return quick;
}

bool bench_selected(const char *w)
{
	return only == NULL || strcmp(only, w) == 0;
}

/* ---- the rmalloc baseline ------------------------------------------------------- */

/*
 * A classic resource map: free extents in a sorted array; allocation is
 * first fit by linear scan, free finds its place by linear scan and
 * coalesces, shifting the array as needed.
 */
typedef struct rmap {
	uintptr_t *addr;
	size_t *size;
	size_t n, cap;
} rmap_t;

static void rm_init(rmap_t *m, uintptr_t base, size_t size, size_t cap)
{
	m->addr = malloc(cap * sizeof(*m->addr));
	m->size = malloc(cap * sizeof(*m->size));
	m->cap = cap;
	m->n = 1;
	m->addr[0] = base;
	m->size[0] = size;
}

static void rm_fini(rmap_t *m)
{
	free(m->addr);
	free(m->size);
}

static uintptr_t rmalloc(rmap_t *m, size_t size)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		if (m->size[i] >= size) {
			uintptr_t a = m->addr[i];

			m->addr[i] += size;
			m->size[i] -= size;
			if (m->size[i] == 0) {
				memmove(&m->addr[i], &m->addr[i + 1],
				        (m->n - i - 1) * sizeof(*m->addr));
				memmove(&m->size[i], &m->size[i + 1],
				        (m->n - i - 1) * sizeof(*m->size));
				m->n--;
			}
			return a;
		}
	}
	return 0;
}

static void rmfree(rmap_t *m, uintptr_t a, size_t size)
{
	size_t i = 0;
	bool left, right;

	while (i < m->n && m->addr[i] < a)
		i++;
	left = i > 0 && m->addr[i - 1] + m->size[i - 1] == a;
	right = i < m->n && a + size == m->addr[i];
	if (left && right) {
		m->size[i - 1] += size + m->size[i];
		memmove(&m->addr[i], &m->addr[i + 1], (m->n - i - 1) * sizeof(*m->addr));
		memmove(&m->size[i], &m->size[i + 1], (m->n - i - 1) * sizeof(*m->size));
		m->n--;
	} else if (left) {
		m->size[i - 1] += size;
	} else if (right) {
		m->addr[i] = a;
		m->size[i] += size;
	} else {
		memmove(&m->addr[i + 1], &m->addr[i], (m->n - i) * sizeof(*m->addr));
		memmove(&m->size[i + 1], &m->size[i], (m->n - i) * sizeof(*m->size));
		m->addr[i] = a;
		m->size[i] = size;
		m->n++;
	}
}

/* ---- W2: fragmentation scaling -------------------------------------------------- */

#define W2_Q ((size_t)4096)

typedef struct live_seg {
	uintptr_t addr;
	size_t size;
} live_seg_t;

typedef struct live {
	live_seg_t *seg;
	size_t n;
} live_t;

static size_t w2_size(void)
{
	return W2_Q * (1 + bench_rand() % 64);
}

/* Remove and return a random live segment. */
static size_t live_take(live_t *l, uintptr_t *addrp)
{
	size_t i = bench_rand() % l->n, size = l->seg[i].size;

	*addrp = l->seg[i].addr;
	l->seg[i] = l->seg[--l->n];
	return size;
}

static void live_put(live_t *l, uintptr_t a, size_t size)
{
	l->seg[l->n].addr = a;
	l->seg[l->n].size = size;
	l->n++;
}

/* Build the fragmented state: allocate 2n, free a random half. */
static void w2_fill(live_t *l, size_t n, void *ctx, uintptr_t (*alloc)(void *, size_t),
                    void (*release)(void *, uintptr_t, size_t))
{
	size_t i;
	uintptr_t a;

	l->n = 0;
	for (i = 0; i < 2 * n; i++) {
		size_t size = w2_size();

		live_put(l, alloc(ctx, size), size);
	}
	for (i = 0; i < n; i++) {
		size_t size = live_take(l, &a);

		release(ctx, a, size);
	}
}

/*
 * The same fragmented state for the resource map, built directly: first
 * fit on a fresh map allocates the 2n segments back to back, so the free
 * extents are the runs of freed segments.  (Building it through rmfree
 * would cost O(n^2) shifting before the measurement starts.)
 */
static void w2_fill_rmap(live_t *l, size_t n, rmap_t *m, uintptr_t base, size_t span)
{
	size_t i, total = 2 * n;
	uintptr_t a = base;
	bool *freed = calloc(total, sizeof(bool));
	uintptr_t *start = malloc(total * sizeof(*start));
	size_t *size = malloc(total * sizeof(*size));

	for (i = 0; i < total; i++) {
		start[i] = a;
		size[i] = w2_size();
		a += size[i];
	}
	/* Free a random half: a partial Fisher-Yates over the indices. */
	{
		size_t *idx = malloc(total * sizeof(*idx));

		for (i = 0; i < total; i++)
			idx[i] = i;
		for (i = 0; i < n; i++) {
			size_t j = i + bench_rand() % (total - i), t = idx[i];

			idx[i] = idx[j];
			idx[j] = t;
			freed[idx[i]] = true;
		}
		free(idx);
	}
	m->n = 0;
	l->n = 0;
	for (i = 0; i < total; i++) {
		if (!freed[i]) {
			live_put(l, start[i], size[i]);
		} else if (m->n > 0 && m->addr[m->n - 1] + m->size[m->n - 1] == start[i]) {
			m->size[m->n - 1] += size[i];
		} else {
			m->addr[m->n] = start[i];
			m->size[m->n] = size[i];
			m->n++;
		}
	}
	/* and the rest of the span */
	if (m->n > 0 && m->addr[m->n - 1] + m->size[m->n - 1] == a) {
		m->size[m->n - 1] += base + span - a;
	} else {
		m->addr[m->n] = a;
		m->size[m->n] = base + span - a;
		m->n++;
	}
	free(freed);
	free(start);
	free(size);
}

/* ops calls: alternately free a random live segment and allocate a new one. */
static double w2_run(live_t *l, long ops, void *ctx, uintptr_t (*alloc)(void *, size_t),
                     void (*release)(void *, uintptr_t, size_t))
{
	double t0 = bench_now();
	long i;

	for (i = 0; i < ops / 2; i++) {
		uintptr_t a;
		size_t size = live_take(l, &a);

		release(ctx, a, size);
		size = w2_size();
		a = alloc(ctx, size);
		if (a == 0) {
			fprintf(stderr, "vmem-bench: W2 allocation failed\n");
			exit(1);
		}
		live_put(l, a, size);
	}
	return (bench_now() - t0) / (double)(ops / 2 * 2);
}

typedef struct vctx {
	vmem_t *vmp;
	int flags;
} vctx_t;

static uintptr_t v_alloc(void *c, size_t size)
{
	vctx_t *v = c;

	return (uintptr_t)vmem_alloc(v->vmp, size, v->flags);
}

static void v_free(void *c, uintptr_t a, size_t size)
{
	vctx_t *v = c;

	vmem_free(v->vmp, (void *)a, size);
}

static uintptr_t rm_alloc_cb(void *c, size_t size)
{
	return rmalloc(c, size);
}

static void rm_free_cb(void *c, uintptr_t a, size_t size)
{
	rmfree(c, a, size);
}

static void w2(void)
{
	static const struct {
		const char *name;
		int flags;
	} pol[] = {{"instantfit", 0},
	           {"bestfit", VM_BESTFIT},
	           {"firstfit", VM_FIRSTFIT},
	           {"nextfit", VM_NEXTFIT}};
	static const long full_n[] = {1000, 10000, 100000, 1000000};
	static const long quick_n[] = {1000, 10000, 100000};
	const long *ns = quick ? quick_n : full_n;
	int nn = quick ? 3 : 4;
	long ops = quick ? 200000 : 1000000;
	live_t l;

	l.seg = malloc(2 * 1000000 * sizeof(*l.seg));
	for (int i = 0; i < nn; i++) {
		long n = ns[i];
		uintptr_t base = (uintptr_t)1 << 40;
		size_t span = (size_t)n * 2 * 64 * W2_Q * 2;

		for (size_t p = 0; p < sizeof(pol) / sizeof(pol[0]); p++) {
			vctx_t v = {vmem_create("w2", (void *)base, span, W2_Q, NULL, NULL, NULL, 0,
			                        VM_SLEEP | VMC_NO_QCACHE),
			            VM_NOSLEEP | pol[p].flags};
			bench_result_t r = {"W2", pol[p].name, "vmem", n, 1, 0, 0, 0, NULL};

			vmem_kstat_t k0, k1;
			char note[64];

			bench_seed(42 + (uint64_t)n);
			w2_fill(&l, (size_t)n, &v, v_alloc, v_free);
			vmem_kstat(v.vmp, &k0);
			r.ns_per_op = w2_run(&l, ops, &v, v_alloc, v_free);
			vmem_kstat(v.vmp, &k1);
			/* Free segments examined per allocation: flat means O(1) search. */
			snprintf(note, sizeof(note), "search/alloc %.2f",
			         (double)(k1.vk_search - k0.vk_search) / (double)(ops / 2));
			r.note = note;
			bench_emit(&r);
			while (l.n > 0) {
				uintptr_t a;
				size_t size = live_take(&l, &a);

				vmem_free(v.vmp, (void *)a, size);
			}
			vmem_destroy(v.vmp);
		}
		{
			/* The linear map: fewer operations at large N, or it takes hours. */
			rmap_t m;
			long rops = ops;
			bench_result_t r = {"W2", "firstfit", "rmalloc", n, 1, 0, 0, 0, NULL};

			while (rops > 2000 && (double)rops * (double)n > (quick ? 2e9 : 2e10))
				rops /= 2;
			rm_init(&m, base, span, 4 * (size_t)n + 16);
			bench_seed(42 + (uint64_t)n);
			w2_fill_rmap(&l, (size_t)n, &m, base, span);
			r.ns_per_op = w2_run(&l, rops, &m, rm_alloc_cb, rm_free_cb);
			bench_emit(&r);
			rm_fini(&m);
		}
	}
	free(l.seg);
}

/* ---- W1: small fixed -------------------------------------------------------------- */

#define Q12 ((size_t)4096)

static double w1_vmem(vmem_t *vmp, long pairs)
{
	double t0;
	long i;

	/* warm up: the thread's magazines and the first slab */
	for (i = 0; i < 1000; i++)
		vmem_free(vmp, vmem_alloc(vmp, Q12, VM_SLEEP), Q12);
	t0 = bench_now();
	for (i = 0; i < pairs; i++) {
		void *p = vmem_alloc(vmp, Q12, VM_SLEEP);

		__asm__ volatile("" : : "r"(p) : "memory");
		vmem_free(vmp, p, Q12);
	}
	return (bench_now() - t0) / (double)pairs;
}

static double w1_malloc(long pairs)
{
	double t0;
	long i;

	for (i = 0; i < 1000; i++)
		free(malloc(16));
	t0 = bench_now();
	for (i = 0; i < pairs; i++) {
		void *p = malloc(16);

		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
	return (bench_now() - t0) / (double)pairs;
}

static vmem_t *w1_arena(bool cached)
{
	/* 2^40 quanta of 4 KiB */
	return vmem_create(cached ? "w1" : "w1-nocache", (void *)((uintptr_t)1 << 52),
	                   (size_t)1 << 52, Q12, NULL, NULL, NULL, cached ? 16 * Q12 : 0,
	                   VM_SLEEP | (cached ? 0 : VMC_NO_QCACHE));
}

static void w1(void)
{
	long pairs = quick ? 2000000 : 20000000;
	vmem_t *c = w1_arena(true), *u = w1_arena(false);
	double tm, tc, tu;
	char note[96];

	tm = w1_malloc(pairs);
	tc = w1_vmem(c, pairs);
	tu = w1_vmem(u, pairs / 4);
	bench_emit(&(bench_result_t){"W1", "instantfit", "malloc", pairs, 1, tm, 0, 0, NULL});
	snprintf(note, sizeof(note), "%.2fx malloc's time, %.1fx faster than no cache", tc / tm,
	         tu / tc);
	bench_emit(&(bench_result_t){"W1", "instantfit", "vmem", pairs, 1, tc, 0, 0, note});
	bench_emit(
	    &(bench_result_t){"W1", "instantfit", "vmem-nocache", pairs / 4, 1, tu, 0, 0, NULL});
	vmem_destroy(c);
	vmem_destroy(u);
}

/* ---- W3: constrained xalloc --------------------------------------------------------- */

typedef struct xctx {
	vmem_t *vmp;
	int flags;
} xctx_t;

static uintptr_t x_alloc(void *c, size_t size)
{
	xctx_t *x = c;

	return (uintptr_t)vmem_xalloc(x->vmp, size, 64 * 1024, 0, 1 << 20, NULL, NULL, x->flags);
}

static void x_free(void *c, uintptr_t a, size_t size)
{
	xctx_t *x = c;

	vmem_xfree(x->vmp, (void *)a, size);
}

static size_t w3_size(void)
{
	return W2_Q * (1 + bench_rand() % 16);
}

static void w3(void)
{
	static const long ns[] = {1000, 10000, 100000};
	static const struct {
		const char *name;
		int flags;
	} pol[] = {{"instantfit", 0}, {"bestfit", VM_BESTFIT}, {"firstfit", VM_FIRSTFIT}};
	long ops = quick ? 100000 : 1000000;
	live_t l;

	l.seg = malloc(2 * 100000 * sizeof(*l.seg));
	for (size_t p = 0; p < sizeof(pol) / sizeof(pol[0]); p++) {
		for (int i = 0; i < 3; i++) {
			long n = ns[i];
			/* 2n allocations of at most 16 pages, 64K-aligned: 2n * 128K is plenty */
			xctx_t x = {vmem_create("w3", (void *)((uintptr_t)1 << 40),
			                        (size_t)n * 2 * (128 << 10) * 2, W2_Q, NULL, NULL,
			                        NULL, 0, VM_SLEEP),
			            VM_NOSLEEP | pol[p].flags};
			bench_result_t r = {"W3", pol[p].name, "vmem", n, 1, 0, 0, 0, NULL};
			size_t k;

			bench_seed(7 + (uint64_t)n);
			l.n = 0;
			for (k = 0; k < 2 * (size_t)n; k++) {
				size_t size = w3_size();

				live_put(&l, x_alloc(&x, size), size);
			}
			for (k = 0; k < (size_t)n; k++) {
				uintptr_t a;
				size_t size = live_take(&l, &a);

				x_free(&x, a, size);
			}
			{
				double t0 = bench_now();
				long j;

				for (j = 0; j < ops / 2; j++) {
					uintptr_t a;
					size_t size = live_take(&l, &a);

					x_free(&x, a, size);
					size = w3_size();
					a = x_alloc(&x, size);
					if (a == 0) {
						fprintf(stderr,
						        "vmem-bench: W3 allocation failed\n");
						exit(1);
					}
					live_put(&l, a, size);
				}
				r.ns_per_op = (bench_now() - t0) / (double)(ops / 2 * 2);
			}
			bench_emit(&r);
			while (l.n > 0) {
				uintptr_t a;
				size_t size = live_take(&l, &a);

				x_free(&x, a, size);
			}
			vmem_destroy(x.vmp);
		}
	}
	free(l.seg);
}

/* ---- W4: identifiers ------------------------------------------------------------------ */

static void w4(void)
{
	static const struct {
		const char *name;
		int flags;
	} pol[] = {{"instantfit", 0}, {"nextfit", VM_NEXTFIT}};
	long n = 100000, ops = quick ? 400000 : 4000000;
	uintptr_t *live = malloc((size_t)n * sizeof(*live));

	for (size_t p = 0; p < 2; p++) {
		vmem_t *ids = vmem_create("w4", (void *)1, (size_t)1 << 31, 1, NULL, NULL, NULL, 0,
		                          VM_SLEEP | VMC_IDENTIFIER);
		bench_result_t r = {"W4", pol[p].name, "vmem", n, 1, 0, 0, 0, NULL};
		double t0;
		long i;

		bench_seed(99);
		for (i = 0; i < n; i++)
			live[i] = (uintptr_t)vmem_alloc(ids, 1, VM_NOSLEEP | pol[p].flags);
		t0 = bench_now();
		for (i = 0; i < ops / 2; i++) {
			size_t j = bench_rand() % (size_t)n;

			vmem_free(ids, (void *)live[j], 1);
			live[j] = (uintptr_t)vmem_alloc(ids, 1, VM_NOSLEEP | pol[p].flags);
		}
		r.ns_per_op = (bench_now() - t0) / (double)(ops / 2 * 2);
		bench_emit(&r);
		for (i = 0; i < n; i++)
			vmem_free(ids, (void *)live[i], 1);
		vmem_destroy(ids);
	}
	free(live);
}

/* ---- W5: space efficiency ---------------------------------------------------------------- */

static size_t w5_size(void)
{
	/* log-uniform 1..256 quanta */
	int shift = (int)(bench_rand() % 9);

	return W2_Q * (1 + bench_rand() % ((size_t)1 << shift));
}

static void w5(void)
{
	static const struct {
		const char *name;
		int flags;
	} pol[] = {{"instantfit", 0},
	           {"bestfit", VM_BESTFIT},
	           {"firstfit", VM_FIRSTFIT},
	           {"nextfit", VM_NEXTFIT}};
	long steps = quick ? 200000 : 2000000;
	live_t l;

	l.seg = malloc(8192 * sizeof(*l.seg));
	for (size_t p = 0; p < sizeof(pol) / sizeof(pol[0]); p++) {
		uintptr_t base = (uintptr_t)1 << 40, hi = base;
		vmem_t *vmp = vmem_create("w5", (void *)base, (size_t)1 << 40, W2_Q, NULL, NULL,
		                          NULL, 0, VM_SLEEP | VMC_NO_QCACHE);
		size_t live_bytes = 0, peak_live = 0;
		bench_result_t r = {"W5", pol[p].name, "vmem", steps, 1, 0, 0, 0, NULL};
		double t0 = bench_now();
		long i;

		bench_seed(5);
		l.n = 0;
		for (i = 0; i < steps; i++) {
			/* the live count random-walks between 0 and 4096 */
			if (l.n < 4096 && (l.n == 0 || bench_rand() % 2)) {
				size_t size = w5_size();
				uintptr_t a =
				    (uintptr_t)vmem_alloc(vmp, size, VM_NOSLEEP | pol[p].flags);

				live_put(&l, a, size);
				live_bytes += size;
				if (a + size > hi)
					hi = a + size;
				if (live_bytes > peak_live)
					peak_live = live_bytes;
			} else {
				uintptr_t a;
				size_t size = live_take(&l, &a);

				vmem_free(vmp, (void *)a, size);
				live_bytes -= size;
			}
		}
		r.ns_per_op = (bench_now() - t0) / (double)steps;
		r.ratio = (double)(hi - base) / (double)peak_live;
		bench_emit(&r);
		while (l.n > 0) {
			uintptr_t a;
			size_t size = live_take(&l, &a);

			vmem_free(vmp, (void *)a, size);
		}
		vmem_destroy(vmp);
	}
	free(l.seg);
}

/* ---- W6: threads ---------------------------------------------------------------------------- */

typedef struct w6_arg {
	vmem_t *vmp;
	long pairs;
	pthread_barrier_t *start;
	double ns;
} w6_arg_t;

static void *w6_thread(void *arg)
{
	w6_arg_t *a = arg;

	pthread_barrier_wait(a->start);
	a->ns = w1_vmem(a->vmp, a->pairs);
	return NULL;
}

/*
 * The machine's own ceiling for W6: the same threads running a loop of
 * pure arithmetic.  On a host whose two vCPUs share a core this is far
 * below 2x, and no allocator can beat it.
 */
static void *w6_alu(void *arg)
{
	w6_arg_t *a = arg;
	uint64_t x = 1;
	double t0;

	pthread_barrier_wait(a->start);
	t0 = bench_now();
	for (long i = 0; i < a->pairs; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	a->ns = (bench_now() - t0) / (double)a->pairs;
	__asm__ volatile("" : : "r"(x));
	return NULL;
}

/* Run fn on t threads; returns total iterations per second. */
static double w6_run(void *(*fn)(void *), vmem_t *vmp, int t, long iters)
{
	pthread_t th[64];
	w6_arg_t args[64];
	pthread_barrier_t start;
	double t0, wall;

	pthread_barrier_init(&start, NULL, (unsigned)t + 1);
	for (int i = 0; i < t; i++) {
		args[i] = (w6_arg_t){vmp, iters, &start, 0};
		pthread_create(&th[i], NULL, fn, &args[i]);
	}
	t0 = bench_now();
	pthread_barrier_wait(&start);
	for (int i = 0; i < t; i++)
		pthread_join(th[i], NULL);
	wall = bench_now() - t0;
	pthread_barrier_destroy(&start);
	return (double)iters * t / (wall / 1e9);
}

static void w6(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN), pairs = quick ? 2000000 : 20000000;
	int maxt = cpus > 2 ? (int)cpus : 2;
	double one = 0, alu_one = 0;

	for (int t = 1; t <= maxt; t *= 2) {
		vmem_t *vmp = w1_arena(true);
		double ops_s = w6_run(w6_thread, vmp, t, pairs);
		double alu = w6_run(w6_alu, NULL, t, pairs * 20);
		bench_result_t r = {"W6", "instantfit", "vmem", pairs, t, 0, 0, 0, NULL};
		char note[96];

		if (t == 1) {
			one = ops_s;
			alu_one = alu;
		}
		r.ns_per_op = 1e9 * t / ops_s; /* per pair, per thread */
		r.ops_per_s = ops_s;
		snprintf(note, sizeof(note), "%.2fx one thread; pure arithmetic scales %.2fx here",
		         ops_s / one, alu / alu_one);
		r.note = note;
		bench_emit(&r);
		vmem_destroy(vmp);
	}
}

/* ---- D: the debug library's costs ------------------------------------------------------ */

#ifdef VMEM_BENCH_DEBUG
#define VARIANT    "vmem-debug"
#define BENCH_PROG "vmem-bench-debug"
#else
#define VARIANT    "vmem"
#define BENCH_PROG "vmem-bench"
#endif

/* Resident memory of this process, in bytes. */
static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, res = 0;

	if (f != NULL) {
		if (fscanf(f, "%lu %lu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Run W1's pairs `depth` frames down, so that a capture sees 16 frames. */
static __attribute__((noinline)) double deep_pairs(vmem_t *vmp, long pairs, int depth)
{
	double r;

	if (depth > 0)
		r = deep_pairs(vmp, pairs, depth - 1);
	else
		r = w1_vmem(vmp, pairs);
	__asm__ volatile("" : "+m"(r)); /* no tail call: keep the frame */
	return r;
}

static void d_pairs(void)
{
	long pairs = quick ? 200000 : 2000000;
	vmem_t *c = w1_arena(true), *u = w1_arena(false);
	bench_result_t r = {
	    "D", "instantfit", VARIANT, pairs, 1, 0, 0, 0, "16-frame stacks, cached size"};

	r.ns_per_op = deep_pairs(c, pairs, 13);
	bench_emit(&r);
	r.ns_per_op = deep_pairs(u, pairs / 4, 13);
	r.n = pairs / 4;
	r.note = "16-frame stacks, no cache";
	bench_emit(&r);
	vmem_destroy(c);
	vmem_destroy(u);
}

/*
 * Metadata per live segment: the growth of resident memory while n
 * segments of W2's sizes are allocated.  The library keeps the records it
 * has mapped in a process-wide pool, so this must run in a process that
 * has not allocated before (main runs it with --meta in a fresh one).
 */
static void d_meta(void)
{
	long n = quick ? 100000 : 1000000;
	live_t l;
	vmem_t *u;
	size_t before;
	char note[96];

	l.seg = malloc((size_t)n * sizeof(*l.seg));
	memset(l.seg, 0, (size_t)n * sizeof(*l.seg));
	u = vmem_create("d-meta", (void *)((uintptr_t)1 << 40), (size_t)1 << 44, W2_Q, NULL, NULL,
	                NULL, 0, VM_SLEEP | VMC_NO_QCACHE);
	bench_seed(3);
	before = rss_bytes();
	for (long i = 0; i < n; i++) {
		size_t size = w2_size();

		l.seg[i].addr = (uintptr_t)vmem_alloc(u, size, VM_NOSLEEP);
		l.seg[i].size = size;
	}
	snprintf(note, sizeof(note), "%.1f bytes of metadata per live segment",
	         (double)(rss_bytes() - before) / (double)n);
	bench_emit(&(bench_result_t){"D", "instantfit", VARIANT, n, 1, 0, 0, 0, note});
	for (long i = 0; i < n; i++)
		vmem_free(u, (void *)l.seg[i].addr, l.seg[i].size);
	vmem_destroy(u);
	free(l.seg);
}

/* ---- S: snapshots ----------------------------------------------------------------------- */

static void s_snapshot(void)
{
	long n = quick ? 100000 : 1000000;
	vmem_t *vmp = vmem_create("s-snap", (void *)((uintptr_t)1 << 40), (size_t)1 << 44, W2_Q,
	                          NULL, NULL, NULL, 0, VM_SLEEP | VMC_NO_QCACHE);
	char path[] = "/tmp/vmem-bench-snap-XXXXXX", note[128];
	live_t l;
	vmem_kstat_t ks;
	int fd = mkstemp(path);
	double t0, t;
	off_t bytes;

	l.seg = malloc(2 * (size_t)n * sizeof(*l.seg));
	bench_seed(11);
	w2_fill(&l, (size_t)n, &(vctx_t){vmp, VM_NOSLEEP}, v_alloc, v_free);
	vmem_kstat(vmp, &ks);
	t0 = bench_now();
	if (vmem_snapshot_write_fd(fd) != 0) {
		perror("vmem-bench: snapshot");
		exit(1);
	}
	t = bench_now() - t0;
	bytes = lseek(fd, 0, SEEK_END);
	close(fd);
	unlink(path);
	snprintf(note, sizeof(note), "%ld live segments: %.0f ms, %.1f bytes per live segment", n,
	         t / 1e6, (double)bytes / (double)n);
	bench_emit(&(bench_result_t){"S", "-", VARIANT, n, 1, t / (double)n, 0, 0, note});
	while (l.n > 0) {
		uintptr_t a;
		size_t size = live_take(&l, &a);

		vmem_free(vmp, (void *)a, size);
	}
	vmem_destroy(vmp);
	free(l.seg);
}

/*
 * Run `prog` (vmem-bench or vmem-bench-debug, found next to argv0) with
 * this run's options and `extra`, copying its results to our output.
 */
static void run_variant(const char *argv0, const char *prog, const char *extra)
{
	char cmd[4096], line[1024];
	const char *slash = strrchr(argv0, '/');
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%.*s%s%s%s%s%s%s", slash ? (int)(slash - argv0 + 1) : 0, argv0,
	         prog, quick ? " --quick" : "", json ? " --json" : "", only ? " --only " : "",
	         only ? only : "", extra);
	fflush(stdout);
	f = popen(cmd, "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stdout);
	pclose(f);
}

int main(int argc, char **argv)
{
	bool meta = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = true;
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else if (strcmp(argv[i], "--meta") == 0)
			meta = true; /* internal: D's metadata row, in a fresh process */
		else {
			fprintf(stderr, "usage: vmem-bench [--quick] [--json] [--only Wn]\n");
			return 2;
		}
	}
	if (meta) {
		d_meta();
		return 0;
	}
#ifndef VMEM_BENCH_DEBUG
	if (bench_selected("W1"))
		w1();
	if (bench_selected("W2"))
		w2();
	if (bench_selected("W3"))
		w3();
	if (bench_selected("W4"))
		w4();
	if (bench_selected("W5"))
		w5();
	if (bench_selected("W6"))
		w6();
#else
	(void)w1, (void)w2, (void)w3, (void)w4, (void)w5, (void)w6;
#endif
	if (bench_selected("D")) {
		d_pairs();
		run_variant(argv[0], BENCH_PROG, " --meta");
	}
	if (bench_selected("S"))
		s_snapshot();
#ifndef VMEM_BENCH_DEBUG
	run_variant(argv[0], "vmem-bench-debug", "");
#endif
	return 0;
}
