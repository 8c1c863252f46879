/*
 * Stress: threads hammer one arena tree for a bounded time, then every
 * range must have come back.
 *
 * The tree: a root with one span; "mid", importing from the root, with
 * quantum caches; "leaf", importing from mid; "xleaf", made by
 * vmem_xcreate, importing aligned spans from the root; "flaky", whose
 * import function has no source arena, takes its spans from the root and
 * refuses one import in eight.  Workers allocate (every policy, sizes that
 * are and are not quantum multiples, cached sizes, constrained xallocs,
 * address ranges in the root) with VM_NOSLEEP while holding up to HOLD
 * segments, free them (sometimes handing them to another thread to free),
 * and now and then, holding nothing, allocate with VM_SLEEP: others only
 * ever hold what VM_NOSLEEP gave them and keep freeing it, and the tree is
 * large enough for any one sleeper, so every sleeper gets through.  A
 * checker thread verifies, walks, sizes and reaps the arenas meanwhile.
 *
 * When the time is up (VMEM_STRESS_SECONDS, default 4) the workers free
 * what they hold and exit; then vmem_size(VMEM_ALLOC) must be 0 in every
 * arena, every imported span must be back in the root, and the root must
 * be whole.  A watchdog fails the test instead of letting a deadlock or a
 * lost wake-up hang CI.  No assertion depends on speed.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define PG     ((size_t)4096)
#define BASE   ((uintptr_t)0x200000000)
#define NPAGES 512 /* the root's span */
#define HOLD   8   /* segments a worker holds at most */
#define NWORK  4

enum { ROOT, MID, LEAF, XLEAF, FLAKY, NARENA };

static vmem_t *arena[NARENA];
static atomic_bool stop;

/* What happened, for the report and for docs/reliability.md. */
static struct {
	_Atomic uint64_t allocs, xallocs, frees, handed, nomem, sleeps_asked, imports,
	    import_refused, releases, checks;
} st;

/* Worker threads cannot use cmocka's asserts: say what failed and abort. */
#define require(cond)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "test_stress: %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* ---- the flaky import function: no source arena, one refusal in eight ------ */

static _Atomic uint64_t flaky_calls;
static _Atomic uint64_t flaky_outstanding; /* bytes imported and not yet released */

static void *flaky_import(vmem_t *src, size_t size, int flags)
{
	void *p;

	require(src == NULL);
	if (atomic_fetch_add(&flaky_calls, 1) % 8 == 7) {
		atomic_fetch_add(&st.import_refused, 1);
		return NULL;
	}
	p = vmem_alloc(arena[ROOT], size, flags);
	if (p != NULL) {
		atomic_fetch_add(&st.imports, 1);
		atomic_fetch_add(&flaky_outstanding, size);
	}
	return p;
}

static void flaky_release(vmem_t *src, void *addr, size_t size)
{
	require(src == NULL);
	atomic_fetch_add(&st.releases, 1);
	atomic_fetch_sub(&flaky_outstanding, size);
	vmem_free(arena[ROOT], addr, size);
}

/* xleaf's import: spans of 8 pages or more, aligned as asked. */
static void *x_import(vmem_t *src, size_t *sizep, size_t align, int flags)
{
	size_t size = (*sizep + 8 * PG - 1) & ~(8 * PG - 1);
	void *p = vmem_xalloc(src, size, align, 0, 0, NULL, NULL, flags);

	if (p != NULL)
		*sizep = size;
	return p;
}

/* ---- segments ------------------------------------------------------------------ */

typedef struct seg {
	int arena;
	uintptr_t addr;
	size_t size;
	bool x;
} seg_t;

static void seg_free(const seg_t *s)
{
	if (s->x)
		vmem_xfree(arena[s->arena], (void *)s->addr, s->size);
	else
		vmem_free(arena[s->arena], (void *)s->addr, s->size);
	atomic_fetch_add(&st.frees, 1);
}

/* A mailbox: one thread leaves a segment, another frees it. */
static pthread_mutex_t box_lock = PTHREAD_MUTEX_INITIALIZER;
static seg_t box[16];
static int nbox;

static bool box_put(const seg_t *s)
{
	bool ok;

	pthread_mutex_lock(&box_lock);
	ok = nbox < 16;
	if (ok)
		box[nbox++] = *s;
	pthread_mutex_unlock(&box_lock);
	return ok;
}

static bool box_take(seg_t *s)
{
	bool ok;

	pthread_mutex_lock(&box_lock);
	ok = nbox > 0;
	if (ok)
		*s = box[--nbox];
	pthread_mutex_unlock(&box_lock);
	return ok;
}

/* ---- requests ---------------------------------------------------------------------- */

typedef struct req {
	int arena, flags;
	size_t size, align, phase, nocross;
	uintptr_t min, max;
	bool x;
} req_t;

static void make_req(req_t *r, unsigned *seed, bool sleeping)
{
	static const int policy[] = {0,
	                             0,
	                             VM_BESTFIT,
	                             VM_FIRSTFIT,
	                             VM_NEXTFIT,
	                             VM_ENDALLOC,
	                             VM_FIRSTFIT | VM_ENDALLOC,
	                             VM_BESTFIT | VM_ENDALLOC};
	unsigned v = (unsigned)rand_r(seed);

	memset(r, 0, sizeof(*r));
	r->arena = (int)(v % NARENA);
	r->flags = policy[(v >> 4) % 8] | (sleeping ? VM_SLEEP : VM_NOSLEEP);
	switch ((v >> 8) % 4) {
	case 0:
		r->size = 1 + (size_t)rand_r(seed) % (3 * PG); /* not a quantum multiple */
		break;
	case 1:
		r->size = PG * (1 + (v >> 12) % 4); /* mid's cached sizes */
		break;
	default:
		r->size = PG * (1 + (v >> 12) % 8);
		break;
	}
	r->x = (v >> 16) % 3 == 0;
	if (!r->x)
		return;
	r->align = PG << ((v >> 18) % 5);
	r->phase = ((v >> 21) % 2) ? ((v >> 22) % (r->align / PG)) * PG : 0;
	if ((v >> 25) % 2)
		r->nocross = 32 * PG; /* holds phase + size: both under 16 pages */
	/* Address ranges only in the root, and never while sleeping. */
	if (r->arena == ROOT && !sleeping && (v >> 26) % 2) {
		r->min = BASE + PG * ((size_t)rand_r(seed) % (NPAGES / 2));
		r->max = r->min + PG * (NPAGES / 4);
	}
}

/* Allocate r; the segment, or false (only VM_NOSLEEP may fail). */
static bool do_alloc(const req_t *r, seg_t *s)
{
	void *p;

	if (r->x)
		p = vmem_xalloc(arena[r->arena], r->size, r->align, r->phase, r->nocross,
		                (void *)r->min, (void *)r->max, r->flags);
	else
		p = vmem_alloc(arena[r->arena], r->size, r->flags);
	if (p == NULL) {
		int err = errno;

		if (!(r->flags & VM_NOSLEEP) || err != ENOMEM)
			fprintf(stderr,
			        "test_stress: %s('%s', %zu, align %zu, flags %#x): errno %d\n",
			        r->x ? "vmem_xalloc" : "vmem_alloc", vmem_name(arena[r->arena]),
			        r->size, r->align, r->flags, err);
		require((r->flags & VM_NOSLEEP) && err == ENOMEM);
		atomic_fetch_add(&st.nomem, 1);
		return false;
	}
	if (r->x) {
		uintptr_t a = (uintptr_t)p;

		require(a % r->align == r->phase);
		require(!r->nocross || a / r->nocross == (a + r->size - 1) / r->nocross);
		require(!r->min || (a >= r->min && a + r->size <= r->max));
	}
	atomic_fetch_add(r->x ? &st.xallocs : &st.allocs, 1);
	*s = (seg_t){r->arena, (uintptr_t)p, r->size, r->x};
	return true;
}

/* ---- threads ------------------------------------------------------------------------- */

static _Atomic unsigned seeds = 1;

static void *worker(void *arg)
{
	unsigned seed = atomic_fetch_add(&seeds, 7919);
	seg_t held[HOLD], s;
	int n = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		unsigned v = (unsigned)rand_r(&seed) % 32;
		req_t r;

		if (v < 14 && n < HOLD) {
			make_req(&r, &seed, false);
			n += do_alloc(&r, &held[n]);
		} else if (v < 26 && n > 0) {
			int i = rand_r(&seed) % n;

			s = held[i];
			held[i] = held[--n];
			if (v == 25 && box_put(&s))
				atomic_fetch_add(&st.handed, 1);
			else
				seg_free(&s);
		} else if (v < 28 && box_take(&s)) {
			seg_free(&s);
		} else if (v == 31 && n == 0) {
			/* Holding nothing, so waiting cannot deadlock anyone. */
			make_req(&r, &seed, true);
			atomic_fetch_add(&st.sleeps_asked, 1);
			n += do_alloc(&r, &held[n]);
		}
	}
	while (n > 0)
		seg_free(&held[--n]);
	return NULL;
}

static void count_walk(void *arg, void *addr, size_t size)
{
	(void)addr;
	(void)size;
	(*(uint64_t *)arg)++;
}

/* Reentrant walks may allocate: take a page and give it back. */
static void churn_walk(void *arg, void *addr, size_t size)
{
	vmem_t *vmp = arg;
	void *p = vmem_alloc(vmp, PG, VM_NOSLEEP);

	(void)addr;
	(void)size;
	if (p != NULL)
		vmem_free(vmp, p, PG);
}

static void *checker(void *arg)
{
	unsigned seed = 99;

	(void)arg;
	while (!atomic_load(&stop)) {
		vmem_t *vmp = arena[rand_r(&seed) % NARENA];
		const char *why = NULL;
		uint64_t pieces = 0;

		if (!vmem__verify(vmp, &why))
			fprintf(stderr, "test_stress: arena '%s' inconsistent: %s\n",
			        vmem_name(vmp), why);
		require(why == NULL);
		switch (rand_r(&seed) % 5) {
		case 0:
			vmem_walk(vmp, VMEM_ALLOC | VMEM_FREE | VMEM_SPAN, count_walk, &pieces);
			break;
		case 1:
			vmem_walk(vmp, VMEM_ALLOC | VMEM_REENTRANT, churn_walk, vmp);
			break;
		case 2: {
			vmem_kstat_t ks; /* one snapshot, under the arena's lock */

			require(vmem_kstat(vmp, &ks) == 0 && ks.vk_mem_inuse <= ks.vk_mem_total &&
			        ks.vk_mem_import <= ks.vk_mem_total);
			(void)vmem_size(vmp, VMEM_ALLOC);
			break;
		}
		case 3:
			vmem_qcache_reap(arena[MID]);
			break;
		default:
			(void)vmem_contains(vmp, (void *)(BASE + PG), PG);
			break;
		}
		atomic_fetch_add(&st.checks, 1);
		sched_yield();
	}
	return NULL;
}

static void watchdog(int sig)
{
	static const char msg[] =
	    "test_stress: watchdog fired: a thread never finished (deadlock or lost wake-up)\n";

	(void)sig;
	write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

static unsigned stress_seconds(void)
{
	const char *v = getenv("VMEM_STRESS_SECONDS");

	return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : 4;
}

/* Sleep until `secs` after *t0, whatever signals arrive meanwhile. */
static void sleep_until(const struct timespec *t0, unsigned secs)
{
	struct timespec end = {t0->tv_sec + (time_t)secs, t0->tv_nsec};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL) != 0)
		;
}

static uint64_t waits(void)
{
	uint64_t w = 0;

	for (int i = 0; i < NARENA; i++) {
		vmem_kstat_t ks;

		assert_int_equal(vmem_kstat(arena[i], &ks), 0);
		w += ks.vk_wait;
	}
	return w;
}

static void create_tree(void)
{
	arena[ROOT] =
	    vmem_create("s-root", (void *)BASE, NPAGES * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	arena[MID] =
	    vmem_create("s-mid", NULL, 0, PG, vmem_alloc, vmem_free, arena[ROOT], 4 * PG, VM_SLEEP);
	arena[LEAF] =
	    vmem_create("s-leaf", NULL, 0, PG, vmem_alloc, vmem_free, arena[MID], 0, VM_SLEEP);
	arena[XLEAF] = vmem_xcreate("s-xleaf", NULL, 0, PG, x_import, vmem_xfree, arena[ROOT], 0,
	                            VM_SLEEP | VMC_XALIGN);
	arena[FLAKY] =
	    vmem_create("s-flaky", NULL, 0, PG, flaky_import, flaky_release, NULL, 0, VM_SLEEP);
	for (int i = 0; i < NARENA; i++)
		assert_non_null(arena[i]);
}

static void print_piece(void *arg, void *addr, size_t size)
{
	fprintf(stderr, "    %s %#lx +%#zx\n", (const char *)arg, (unsigned long)addr, size);
}

/* What is left where, when something was not given back. */
static void describe_tree(void)
{
	for (int i = 0; i < NARENA; i++) {
		vmem_kstat_t ks;

		vmem_kstat(arena[i], &ks);
		fprintf(stderr, "  %s: alloc %zu span %zu inuse %llu import %llu\n",
		        vmem_name(arena[i]), vmem_size(arena[i], VMEM_ALLOC),
		        vmem_size(arena[i], VMEM_SPAN), (unsigned long long)ks.vk_mem_inuse,
		        (unsigned long long)ks.vk_mem_import);
		vmem_walk(arena[i], VMEM_ALLOC, print_piece, "alloc");
		vmem_walk(arena[i], VMEM_SPAN, print_piece, "span");
	}
}

static void test_stress_tree(void **state)
{
	unsigned secs = stress_seconds();
	pthread_t th[NWORK], chk;
	struct timespec t0, t1;
	seg_t s;
	double elapsed;

	(void)state;
	signal(SIGALRM, watchdog);
	alarm(secs + 240);
	create_tree();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < NWORK; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	pthread_create(&chk, NULL, checker, NULL);
	sleep_until(&t0, secs);
	atomic_store(&stop, true);
	for (int i = 0; i < NWORK; i++)
		pthread_join(th[i], NULL);
	pthread_join(chk, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	while (box_take(&s))
		seg_free(&s);
	elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	/* Every range came back. */
	vmem_qcache_reap(arena[MID]);
	for (int i = NARENA - 1; i >= 0; i--) {
		assert_arena_ok(arena[i]);
		if (vmem_size(arena[i], VMEM_ALLOC) != 0 ||
		    (i != ROOT && vmem_size(arena[i], VMEM_SPAN) != 0)) {
			describe_tree();
			fail_msg("arena '%s' holds %zu bytes allocated and %zu of spans after "
			         "everything was freed",
			         vmem_name(arena[i]), vmem_size(arena[i], VMEM_ALLOC),
			         i == ROOT ? 0 : vmem_size(arena[i], VMEM_SPAN));
		}
	}
	assert_int_equal(atomic_load(&flaky_outstanding), 0);
	assert_int_equal(atomic_load(&st.imports), atomic_load(&st.releases));
	assert_int_equal(vmem_size(arena[ROOT], VMEM_FREE), NPAGES * PG);
	assert_true(atomic_load(&st.allocs) + atomic_load(&st.xallocs) > 0);
	assert_int_equal(atomic_load(&st.frees),
	                 atomic_load(&st.allocs) + atomic_load(&st.xallocs));
	fprintf(stderr,
	        "stress: %d threads for %.1f s: %llu operations (%llu allocs, %llu xallocs, "
	        "%llu frees, %llu handed to another thread), %llu VM_SLEEP requests, %llu sleeps, "
	        "%llu VM_NOSLEEP failures, %llu flaky imports (%llu refused), %llu checks; "
	        "nothing lost\n",
	        NWORK, elapsed,
	        (unsigned long long)(atomic_load(&st.allocs) + atomic_load(&st.xallocs) +
	                             atomic_load(&st.frees)),
	        (unsigned long long)atomic_load(&st.allocs),
	        (unsigned long long)atomic_load(&st.xallocs),
	        (unsigned long long)atomic_load(&st.frees),
	        (unsigned long long)atomic_load(&st.handed),
	        (unsigned long long)atomic_load(&st.sleeps_asked), (unsigned long long)waits(),
	        (unsigned long long)atomic_load(&st.nomem),
	        (unsigned long long)atomic_load(&st.imports),
	        (unsigned long long)atomic_load(&st.import_refused),
	        (unsigned long long)atomic_load(&st.checks));
	for (int i = NARENA - 1; i >= 0; i--)
		vmem_destroy(arena[i]);
	alarm(0);
}

/* ---- regression: two imports in flight at once ----------------------------------- */

/*
 * Found by the stress run: the arena lock is dropped around an import, so
 * two threads can import at once.  Thread A's span arrives first and A
 * allocates 9 of its 16 pages; thread B's 8-page span arrives next, but
 * B's fit (instant fit: the smallest list that surely fits 3 pages) takes
 * A's 7 leftover pages instead.  B's span must not then stay in the arena
 * wholly free: once both are freed, every span must be back in the root.
 * The import function stages the order, so the outcome is certain.
 */
static pthread_mutex_t stage_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stage_cv = PTHREAD_COND_INITIALIZER;
static int importing;     /* threads inside the import function */
static bool a_done;       /* thread A has its allocation */
static __thread int role; /* 'A' or 'B' */

static void *staged_import(vmem_t *src, size_t *sizep, size_t align, int flags)
{
	size_t size = (*sizep + 8 * PG - 1) & ~(8 * PG - 1); /* 8-page granules */
	void *p = vmem_xalloc(src, size, align, 0, 0, NULL, NULL, flags);

	pthread_mutex_lock(&stage_lock);
	importing++;
	pthread_cond_broadcast(&stage_cv);
	while (importing < 2 || (role == 'B' && !a_done))
		pthread_cond_wait(&stage_cv, &stage_lock);
	pthread_mutex_unlock(&stage_lock);
	if (p != NULL)
		*sizep = size;
	return p;
}

typedef struct staged {
	vmem_t *vmp;
	int role;
	size_t size;
	void *got;
} staged_t;

static void *staged_main(void *arg)
{
	staged_t *t = arg;

	role = t->role;
	t->got = vmem_alloc(t->vmp, t->size, VM_NOSLEEP);
	return NULL;
}

static void test_concurrent_imports_give_spans_back(void **state)
{
	vmem_t *root =
	    vmem_create("r-root", (void *)BASE, 1024 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child =
	    vmem_xcreate("r-child", NULL, 0, PG, staged_import, vmem_xfree, root, 0, VM_SLEEP);
	staged_t a = {child, 'A', 9 * PG, NULL}, b = {child, 'B', 3 * PG, NULL};
	pthread_t ta, tb;

	(void)state;
	signal(SIGALRM, watchdog);
	alarm(60);
	pthread_create(&ta, NULL, staged_main, &a);
	pthread_create(&tb, NULL, staged_main, &b);
	pthread_join(ta, NULL);
	pthread_mutex_lock(&stage_lock);
	a_done = true;
	pthread_cond_broadcast(&stage_cv);
	pthread_mutex_unlock(&stage_lock);
	pthread_join(tb, NULL);
	assert_non_null(a.got);
	assert_non_null(b.got);
	vmem_free(child, a.got, 9 * PG);
	vmem_free(child, b.got, 3 * PG);
	assert_arena_ok(child);
	assert_int_equal(vmem_size(child, VMEM_ALLOC), 0);
	if (vmem_size(child, VMEM_SPAN) != 0)
		fail_msg("the importing arena holds nothing but kept %zu bytes of imported spans "
		         "(a span imported while another import was in flight, never used)",
		         vmem_size(child, VMEM_SPAN));
	assert_int_equal(vmem_size(root, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(root);
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_concurrent_imports_give_spans_back),
	    cmocka_unit_test(test_stress_tree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
