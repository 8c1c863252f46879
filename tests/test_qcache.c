/*
 * Quantum caches: the magazine and depot paths, reaping, truthful
 * vmem_size/vmem_walk, no false exhaustion (including objects cached by an
 * idle thread and a VM_SLEEP sleeper woken by cached frees), leak
 * accounting, and a multi-threaded run (also under TSan).
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "qcache.h"

/* The debug library bypasses magazines (every cached free is verified). */
#define SKIP_IF_NO_MAGAZINES()                                                                     \
	do {                                                                                       \
		if (vmem_debug_enabled())                                                          \
			skip();                                                                    \
	} while (0)

#define PG   ((size_t)4096)
#define BASE ((uintptr_t)0x10000000)

static vmem_t *cached_arena(const char *name, size_t npages, size_t qmax_pages)
{
	vmem_t *vmp = vmem_create(name, (void *)BASE, npages * PG, PG, NULL, NULL, NULL,
	                          qmax_pages * PG, VM_SLEEP);

	assert_non_null(vmp);
	return vmp;
}

static vmem_qcache_kstat_t qk(vmem_t *vmp, unsigned i)
{
	vmem_qcache_kstat_t k;

	assert_int_equal(vmem_qcache_kstat(vmp, i, &k), 0);
	return k;
}

static void test_create_caches(void **state)
{
	vmem_t *vmp = cached_arena("qc", 1024, 4), *none, *capped;
	vmem_qcache_kstat_t k;

	(void)state;
	assert_int_equal(vmem_qcache_count(vmp), 4);
	k = qk(vmp, 2);
	assert_string_equal(k.qk_name, "qc_12288");
	assert_int_equal(k.qk_objsize, 3 * PG);
	/* slab: the power of two above 3 * qcache_max = 12 pages -> 16 pages */
	assert_int_equal(k.qk_slabsize, 16 * PG);
	none = vmem_create("noqc", NULL, 0, PG, NULL, NULL, NULL, 4 * PG, VM_SLEEP | VMC_NO_QCACHE);
	assert_int_equal(vmem_qcache_count(none), 0);
	capped = vmem_create("capped", NULL, 0, 1, NULL, NULL, NULL, 100, VM_SLEEP);
	assert_int_equal(vmem_qcache_count(capped), VMEM_NQCACHE_MAX);
	errno = 0;
	assert_int_equal(vmem_qcache_kstat(vmp, 4, &k), -1);
	assert_int_equal(errno, EINVAL);
	vmem_destroy(capped);
	vmem_destroy(none);
	vmem_destroy(vmp);
}

static void test_alloc_free_counts(void **state)
{
	vmem_t *vmp = cached_arena("counts", 1024, 4);
	void *p[10];
	vmem_qcache_kstat_t k;
	vmem_kstat_t ks;
	int i;

	(void)state;
	SKIP_IF_NO_MAGAZINES();
	for (i = 0; i < 10; i++) {
		p[i] = vmem_alloc(vmp, PG, VM_SLEEP);
		assert_non_null(p[i]);
		assert_true((uintptr_t)p[i] >= BASE && (uintptr_t)p[i] < BASE + 1024 * PG);
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(p[i], p[j]);
	}
	/* Callers hold 10 pages; the slab behind them is not "in use". */
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 10 * PG);
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 1014 * PG);
	/* The arena itself sees one slab (16 pages) allocated. */
	vmem_kstat(vmp, &ks);
	assert_int_equal(ks.vk_mem_inuse, 16 * PG);
	assert_int_equal(ks.vk_alloc, 1);
	k = qk(vmp, 0);
	assert_int_equal(k.qk_alloc, 10);
	assert_int_equal(k.qk_slabs, 1);
	assert_int_equal(k.qk_slab_out, 16); /* 10 held + 6 loaded into the magazine */
	for (i = 0; i < 10; i++)
		vmem_free(vmp, p[i], PG);
	k = qk(vmp, 0);
	assert_int_equal(k.qk_free, 10);
	assert_int_equal(k.qk_free_miss, 0); /* all went into the magazines */
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	/* A second round hits the magazines: no new misses. */
	for (i = 0; i < 10; i++)
		p[i] = vmem_alloc(vmp, PG, VM_SLEEP);
	assert_int_equal(qk(vmp, 0).qk_alloc_miss, k.qk_alloc_miss);
	for (i = 0; i < 10; i++)
		vmem_free(vmp, p[i], PG);
	vmem_destroy(vmp);
}

static void test_depot_and_reap(void **state)
{
	enum { N = 1000 };
	vmem_t *vmp = cached_arena("depot", 4096, 2);
	static void *p[N];
	vmem_qcache_kstat_t k;
	vmem_kstat_t ks;
	int i;

	(void)state;
	SKIP_IF_NO_MAGAZINES();
	for (i = 0; i < N; i++)
		assert_non_null(p[i] = vmem_alloc(vmp, 2 * PG, VM_NOSLEEP));
	for (i = 0; i < N; i++)
		vmem_free(vmp, p[i], 2 * PG);
	k = qk(vmp, 1);
	assert_true(k.qk_depot_free > 0); /* full magazines went to the depot */
	assert_true(k.qk_depot_full > 0);
	assert_true(k.qk_mag_rounds >= N - 2 * VMEM_MAG_ROUNDS);
	for (i = 0; i < N; i++)
		assert_non_null(p[i] = vmem_alloc(vmp, 2 * PG, VM_NOSLEEP));
	k = qk(vmp, 1);
	assert_true(k.qk_depot_alloc > 0); /* ... and came back */
	for (i = 0; i < N; i++)
		vmem_free(vmp, p[i], 2 * PG);
	/* Reap: everything back to the arena. */
	vmem_qcache_reap(vmp);
	k = qk(vmp, 1);
	assert_int_equal(k.qk_slabs, 0);
	assert_int_equal(k.qk_depot_full, 0);
	assert_int_equal(k.qk_mag_rounds, 0);
	assert_true(k.qk_reaps > 0);
	vmem_kstat(vmp, &ks);
	assert_int_equal(ks.vk_mem_inuse, 0);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

/* The whole arena through the cache, freed, then a request only the arena can serve. */
static void test_no_false_exhaustion(void **state)
{
	enum { N = 64 }; /* pages: exactly 4 slabs of 16 */
	vmem_t *vmp = cached_arena("exhaust", N, 1);
	void *p[N];
	int i;

	(void)state;
	for (i = 0; i < N; i++)
		assert_non_null(p[i] = vmem_alloc(vmp, PG, VM_NOSLEEP));
	assert_null(vmem_alloc(vmp, PG, VM_NOSLEEP));
	for (i = 0; i < N; i++)
		vmem_free(vmp, p[i], PG);
	/* Every page sits in a magazine or a slab: the arena must reap, not fail. */
	assert_non_null(p[0] = vmem_alloc(vmp, N * PG, VM_NOSLEEP));
	vmem_free(vmp, p[0], N * PG);
	/* Likewise through another cache. */
	for (i = 0; i < N; i++)
		assert_non_null(p[i] = vmem_alloc(vmp, PG, VM_NOSLEEP));
	for (i = 0; i < N; i++)
		vmem_free(vmp, p[i], PG);
	assert_non_null(p[0] = vmem_xalloc(vmp, N * PG, 0, 0, 0, NULL, NULL, VM_NOSLEEP));
	vmem_xfree(vmp, p[0], N * PG);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

typedef struct idle {
	vmem_t *vmp;
	pthread_barrier_t filled, done;
} idle_t;

/* Allocate the whole arena, free it all into this thread's magazines, then idle. */
static void *idle_hoarder(void *arg)
{
	idle_t *t = arg;
	void *p[64];
	int i;

	for (i = 0; i < 64; i++)
		p[i] = vmem_alloc(t->vmp, PG, VM_NOSLEEP);
	for (i = 0; i < 64; i++)
		vmem_free(t->vmp, p[i], PG);
	pthread_barrier_wait(&t->filled);
	pthread_barrier_wait(&t->done);
	return NULL;
}

static void test_idle_thread_magazines_reaped(void **state)
{
	idle_t t;
	pthread_t th;
	void *p;

	(void)state;
	SKIP_IF_NO_MAGAZINES();
	t.vmp = cached_arena("hoard", 64, 1);
	pthread_barrier_init(&t.filled, NULL, 2);
	pthread_barrier_init(&t.done, NULL, 2);
	pthread_create(&th, NULL, idle_hoarder, &t);
	pthread_barrier_wait(&t.filled);
	/* The other thread holds every page in its magazines, and sleeps. */
	assert_true(qk(t.vmp, 0).qk_mag_rounds > 0);
	p = vmem_alloc(t.vmp, 64 * PG, VM_NOSLEEP);
	assert_non_null(p);
	vmem_free(t.vmp, p, 64 * PG);
	pthread_barrier_wait(&t.done);
	pthread_join(th, NULL);
	assert_arena_ok(t.vmp);
	vmem_destroy(t.vmp);
}

typedef struct waiter {
	vmem_t *vmp;
	_Atomic(uintptr_t) got;
} waiter_t;

static void *big_sleeper(void *arg)
{
	waiter_t *w = arg;

	atomic_store(&w->got, (uintptr_t)vmem_alloc(w->vmp, 16 * PG, VM_SLEEP));
	return NULL;
}

static void watchdog(int sig)
{
	(void)sig;
	write(2, "test_qcache: watchdog fired\n", 28);
	_exit(1);
}

static void test_sleeper_woken_by_cached_frees(void **state)
{
	vmem_t *vmp = cached_arena("sleepq", 16, 1);
	waiter_t w = {vmp, 0};
	pthread_t th;
	void *p[16];
	int i;

	(void)state;
	signal(SIGALRM, watchdog);
	alarm(60);
	for (i = 0; i < 16; i++)
		assert_non_null(p[i] = vmem_alloc(vmp, PG, VM_NOSLEEP));
	pthread_create(&th, NULL, big_sleeper, &w);
	while (atomic_load(&vmp->vm_sleepers) == 0)
		sched_yield();
	for (i = 0; i < 16; i++)
		vmem_free(vmp, p[i], PG); /* cached size, yet the sleeper must wake */
	pthread_join(th, NULL);
	assert_true(atomic_load(&w.got) != 0);
	vmem_free(vmp, (void *)atomic_load(&w.got), 16 * PG);
	alarm(0);
	vmem_destroy(vmp);
}

typedef struct wrec {
	int n;
	uintptr_t a[256];
	size_t s[256];
	size_t total;
} wrec_t;

static void rec(void *arg, void *a, size_t s)
{
	wrec_t *w = arg;

	if (w->n < 256) {
		w->a[w->n] = (uintptr_t)a;
		w->s[w->n] = s;
	}
	w->n++;
	w->total += s;
}

static void test_walk_is_truthful(void **state)
{
	vmem_t *vmp = cached_arena("walkq", 64, 2);
	void *a = vmem_alloc(vmp, PG, VM_SLEEP), *b = vmem_alloc(vmp, 2 * PG, VM_SLEEP);
	void *c = vmem_alloc(vmp, 5 * PG, VM_SLEEP); /* not cached */
	wrec_t w;

	(void)state;
	memset(&w, 0, sizeof(w));
	vmem_walk(vmp, VMEM_ALLOC, rec, &w);
	assert_int_equal(w.n, 3);
	assert_int_equal(w.total, 8 * PG);
	for (int i = 0; i < 3; i++) {
		assert_true(w.a[i] == (uintptr_t)a || w.a[i] == (uintptr_t)b ||
		            w.a[i] == (uintptr_t)c);
		assert_int_equal(w.s[i], w.a[i] == (uintptr_t)a   ? PG
		                         : w.a[i] == (uintptr_t)b ? 2 * PG
		                                                  : 5 * PG);
	}
	memset(&w, 0, sizeof(w));
	vmem_walk(vmp, VMEM_FREE, rec, &w);
	assert_int_equal(w.total, 64 * PG - 8 * PG);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 8 * PG);
	vmem_free(vmp, a, PG);
	vmem_free(vmp, b, 2 * PG);
	vmem_free(vmp, c, 5 * PG);
	vmem_destroy(vmp);
}

static void test_xalloc_bypasses(void **state)
{
	vmem_t *vmp = cached_arena("bypass", 64, 2);
	void *x = vmem_xalloc(vmp, PG, 0, 0, 0, NULL, NULL, VM_SLEEP);
	captured_t cap;

	(void)state;
	assert_non_null(x);
	assert_int_equal(qk(vmp, 0).qk_alloc, 0);
	vmem_xfree(vmp, x, PG);
	assert_int_equal(qk(vmp, 0).qk_free, 0);
	/* vmem_free of an xalloc'd segment of a cached size: caught, nothing lost. */
	x = vmem_xalloc(vmp, PG, 0, 0, 0, NULL, NULL, VM_SLEEP);
	capture_errors(&cap);
	vmem_free(vmp, x, PG);
	vmem_qcache_reap(vmp);
	release_errors();
	assert_int_equal(cap.n, 1);
	assert_int_equal(cap.kind[0], VMEM_ERR_FREE_XALLOC);
	/* libvmem frees it anyway (it went through a magazine and cannot be
	 * handed back); libvmem-debug refuses it, and the owner still has it. */
	if (vmem_debug_enabled())
		vmem_xfree(vmp, x, PG);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void test_destroy_counts_cached_leaks(void **state)
{
	vmem_t *src =
	    vmem_create("lsrc", (void *)BASE, 1024 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *vmp =
	    vmem_create("leaky", NULL, 0, PG, vmem_alloc, vmem_free, src, 4 * PG, VM_SLEEP);
	captured_t cap;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_non_null(vmem_alloc(vmp, 2 * PG, VM_SLEEP));
	capture_errors(&cap);
	vmem_destroy(vmp);
	release_errors();
	assert_int_equal(cap.n, 1);
	assert_int_equal(cap.kind[0], VMEM_ERR_LEAK);
	assert_int_equal(cap.count[0], 3);
	assert_int_equal(cap.bytes[0], 6 * PG);
	assert_int_equal(vmem_size(src, VMEM_ALLOC), 0); /* slabs and spans went back */
	vmem_destroy(src);
}

static void test_direct_when_no_slab_fits(void **state)
{
	/* 3 pages: too small for a 16-page slab, so objects come straight from the arena. */
	vmem_t *vmp =
	    vmem_create("tiny", (void *)BASE, 3 * PG, PG, NULL, NULL, NULL, 4 * PG, VM_SLEEP);
	void *p[3];

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_non_null(p[i] = vmem_alloc(vmp, PG, VM_NOSLEEP));
	assert_null(vmem_alloc(vmp, PG, VM_NOSLEEP));
	assert_int_equal(qk(vmp, 0).qk_direct, 3);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 3 * PG);
	for (int i = 0; i < 3; i++)
		vmem_free(vmp, p[i], PG);
	vmem_qcache_reap(vmp);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_non_null(p[0] = vmem_alloc(vmp, 3 * PG, VM_NOSLEEP));
	vmem_free(vmp, p[0], 3 * PG);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

/* ---- threads ------------------------------------------------------------------ */

typedef struct churn {
	vmem_t *vmp;
	atomic_bool stop;
	_Atomic uint64_t ops;
} churn_t;

static void *churner(void *arg)
{
	churn_t *c = arg;
	void *held[32];
	size_t sz[32];
	int n = 0;
	unsigned seed = (unsigned)(uintptr_t)&n;

	while (!atomic_load(&c->stop)) {
		if (n < 32 && (n == 0 || rand_r(&seed) % 2)) {
			sz[n] = PG * (1 + rand_r(&seed) % 4);
			held[n] = vmem_alloc(c->vmp, sz[n], VM_SLEEP);
			assert_non_null(held[n]);
			n++;
		} else {
			int i = rand_r(&seed) % n;

			vmem_free(c->vmp, held[i], sz[i]);
			held[i] = held[--n];
			sz[i] = sz[n];
		}
		atomic_fetch_add_explicit(&c->ops, 1, memory_order_relaxed);
	}
	while (n > 0) {
		n--;
		vmem_free(c->vmp, held[n], sz[n]);
	}
	return NULL;
}

static void test_threads_churn_and_reap(void **state)
{
	enum { T = 4 };
	churn_t c;
	pthread_t th[T];
	struct timespec ts = {0, 20 * 1000 * 1000};
	vmem_kstat_t ks;

	(void)state;
	memset(&c, 0, sizeof(c));
	/* Small enough that reaps and sleeps happen, big enough for everyone. */
	c.vmp = cached_arena("churn", 1024, 4);
	for (int i = 0; i < T; i++)
		pthread_create(&th[i], NULL, churner, &c);
	for (int k = 0; k < 40; k++) {
		nanosleep(&ts, NULL);
		vmem_qcache_reap(c.vmp); /* purge the others' magazines while they run */
		(void)vmem_size(c.vmp, VMEM_ALLOC);
	}
	atomic_store(&c.stop, true);
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "churn: %llu operations\n", (unsigned long long)atomic_load(&c.ops));
	assert_int_equal(vmem_size(c.vmp, VMEM_ALLOC), 0);
	vmem_qcache_reap(c.vmp);
	vmem_kstat(c.vmp, &ks);
	assert_int_equal(ks.vk_mem_inuse, 0);
	assert_arena_ok(c.vmp);
	vmem_destroy(c.vmp);
}

static void *exiter(void *arg)
{
	vmem_t *vmp = arg;
	void *p[100];

	for (int i = 0; i < 100; i++)
		p[i] = vmem_alloc(vmp, PG, VM_SLEEP);
	for (int i = 0; i < 100; i++)
		vmem_free(vmp, p[i], PG);
	return NULL;
}

static void test_thread_exit_returns_magazines(void **state)
{
	vmem_t *vmp = cached_arena("exit", 1024, 1);
	pthread_t th;
	vmem_qcache_kstat_t k;

	(void)state;
	SKIP_IF_NO_MAGAZINES();
	pthread_create(&th, NULL, exiter, vmp);
	pthread_join(th, NULL);
	k = qk(vmp, 0);
	/* The thread's loaded/previous magazines were emptied at exit; only the depot holds rounds.
	 */
	assert_int_equal(k.qk_mag_rounds, k.qk_depot_full * VMEM_MAG_ROUNDS);
	assert_int_equal(k.qk_alloc, 100);
	assert_int_equal(k.qk_free, 100);
	vmem_destroy(vmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_caches),
	    cmocka_unit_test(test_alloc_free_counts),
	    cmocka_unit_test(test_depot_and_reap),
	    cmocka_unit_test(test_no_false_exhaustion),
	    cmocka_unit_test(test_idle_thread_magazines_reaped),
	    cmocka_unit_test(test_sleeper_woken_by_cached_frees),
	    cmocka_unit_test(test_walk_is_truthful),
	    cmocka_unit_test(test_xalloc_bypasses),
	    cmocka_unit_test(test_destroy_counts_cached_leaks),
	    cmocka_unit_test(test_direct_when_no_slab_fits),
	    cmocka_unit_test(test_threads_churn_and_reap),
	    cmocka_unit_test(test_thread_exit_returns_magazines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
