/*
 * Fault injection: metadata mappings (vmem__fault_map) and import
 * functions fail at chosen points, and every allocation path must then
 * fail cleanly (NULL with ENOMEM, or a create that returns NULL), leave
 * every arena consistent and lose no range; once the resources return,
 * the same requests succeed.  VM_SLEEP callers wait, and succeed when the
 * resources return.
 *
 * The sweeps run a fixed workload (an arena tree: a root with two spans,
 * an importing child, an importing arena with quantum caches, an
 * identifier arena; allocations of every policy, constrained xallocs,
 * frees, walks) in a child process per fault point, so that every run
 * starts from the same metadata state and the k-th mapping is the same
 * mapping each time.  The point moves on until the workload finishes
 * without reaching it: every mapping the workload makes has failed once.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define PG   ((size_t)4096)
#define BASE ((uintptr_t)0x40000000)

/* ---- failing without cmocka: the sweeps' child processes ------------------ */

/*
 * A child process must not return into cmocka (it would go on running the
 * rest of the suite), so its checks exit with status 3 instead.
 */
#define expect(cond)                                                                               \
	do {                                                                                       \
		if (!(cond))                                                                       \
			child_fail(__LINE__, #cond);                                               \
	} while (0)

static const char *child_step = "";
static char step_desc[160];

static void child_fail(int line, const char *what)
{
	fprintf(stderr, "test_faults: child check failed at line %d: %s (%s: %s)\n", line, what,
	        child_step, step_desc);
	_exit(3);
}

static void expect_ok(vmem_t *vmp)
{
	const char *why = NULL;

	if (!vmem__verify(vmp, &why)) {
		fprintf(stderr, "arena '%s': %s\n", vmem_name(vmp), why);
		child_fail(__LINE__, "arena inconsistent");
	}
}

/* ---- the import function that fails on demand ------------------------------- */

static _Atomic long import_calls;      /* calls so far */
static _Atomic long import_fail_from;  /* calls numbered >= this fail (0: none) */
static _Atomic long import_fail_until; /* ... and < this (0: no end) */
static _Atomic long import_refused;    /* calls that failed on purpose */

static bool import_should_fail(void)
{
	long n = atomic_fetch_add(&import_calls, 1) + 1, from = atomic_load(&import_fail_from);
	long until = atomic_load(&import_fail_until);

	if (from == 0 || n < from || (until != 0 && n >= until))
		return false;
	atomic_fetch_add(&import_refused, 1);
	return true;
}

static void *failing_import(vmem_t *src, size_t size, int flags)
{
	if (import_should_fail())
		return NULL;
	return vmem_alloc(src, size, flags);
}

static void import_release(vmem_t *src, void *addr, size_t size)
{
	vmem_free(src, addr, size);
}

/* ---- the workload --------------------------------------------------------------- */

enum { A_ROOT, A_CHILD, A_CACHED, A_IDS, NARENA };

typedef struct held {
	int arena;
	uintptr_t addr;
	size_t size;
	bool x;
} held_t;

enum { ST_ALLOC, ST_XALLOC, ST_ADD, ST_FREE_SOME, ST_WALK };

typedef struct step {
	int kind, arena, flags;
	size_t size, align, phase, nocross;
	uintptr_t min, max;
} step_t;

/*
 * The sweeps' children run one thread: ThreadSanitizer has nothing to find
 * there and makes them slow, so under it they run a shorter workload.
 */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define MAXHELD 8192
#define NSTEPS  2500 /* VMEM_FAULT_STEPS may ask for fewer (valgrind) */

typedef struct workload {
	vmem_t *a[NARENA];
	held_t held[MAXHELD];
	int nheld;
	uint64_t enomem; /* steps that failed cleanly (and then succeeded) */
	uintptr_t next_add;
} workload_t;

/* What a child tells its parent. */
typedef struct outcome {
	uint64_t injected, import_refused, import_calls, enomem, steps;
} outcome_t;

static uint64_t held_bytes(const workload_t *w, int arena)
{
	uint64_t n = 0;

	for (int i = 0; i < w->nheld; i++)
		n += w->held[i].arena == arena ? w->held[i].size : 0;
	return n;
}

/*
 * What arena i has allocated: what we hold from it, and for the root also
 * exactly the spans its importers hold.  (Sizes are quantum multiples, so
 * quantum-cached objects count exactly too.)
 */
static uint64_t expected_alloc(const workload_t *w, int i)
{
	uint64_t n = held_bytes(w, i);

	if (i == A_ROOT)
		n += vmem_size(w->a[A_CHILD], VMEM_SPAN) + vmem_size(w->a[A_CACHED], VMEM_SPAN);
	return n;
}

/* Walk state for span_in_use: spans seen, and spans with nothing allocated. */
typedef struct span_use {
	uintptr_t start, end; /* the current span */
	bool used;
	int idle;
} span_use_t;

static void span_use_rec(void *arg, void *addr, size_t size)
{
	span_use_t *u = arg;
	uintptr_t a = (uintptr_t)addr;

	if (a >= u->start && a - u->start < u->end - u->start) {
		u->used = true; /* a segment inside the current span */
		return;
	}
	u->idle += u->end != u->start && !u->used;
	u->start = a;
	u->end = a + size;
	u->used = false;
}

/* Imported spans of the child (no caches) that hold nothing: none may stay. */
static int idle_spans(vmem_t *vmp)
{
	span_use_t u = {0, 0, false, 0};

	vmem_walk(vmp, VMEM_SPAN | VMEM_ALLOC, span_use_rec, &u);
	return u.idle + (u.end != u.start && !u.used);
}

/* Every arena consistent, and every byte accounted for. */
static void check_all(const workload_t *w)
{
	for (int i = 0; i < NARENA; i++) {
		expect_ok(w->a[i]);
		expect(vmem_size(w->a[i], VMEM_ALLOC) == expected_alloc(w, i));
	}
	expect(idle_spans(w->a[A_CHILD]) == 0);
}

/* A new allocation must be inside its arena and clear of everything we hold there. */
static void hold(workload_t *w, int arena, uintptr_t addr, size_t size, bool x)
{
	expect(w->nheld < MAXHELD);
	expect(vmem_contains(w->a[arena], (void *)addr, size));
	for (int i = 0; i < w->nheld; i++) {
		const held_t *h = &w->held[i];

		if (h->arena == arena)
			expect(addr + size <= h->addr || h->addr + h->size <= addr);
	}
	w->held[w->nheld++] = (held_t){arena, addr, size, x};
}

/* Run one step; false if it failed cleanly for want of memory. */
static bool run_step(workload_t *w, const step_t *s)
{
	vmem_t *vmp = w->a[s->arena];
	void *p = NULL;

	snprintf(step_desc, sizeof(step_desc),
	         "kind %d arena %s size %zu align %#zx phase %#zx nocross %#zx range [%#lx, %#lx) "
	         "flags %#x",
	         s->kind, vmem_name(vmp), s->size, s->align, s->phase, s->nocross,
	         (unsigned long)s->min, (unsigned long)s->max, s->flags);
	errno = 0;
	switch (s->kind) {
	case ST_ALLOC:
		p = vmem_alloc(vmp, s->size, s->flags);
		break;
	case ST_XALLOC:
		p = vmem_xalloc(vmp, s->size, s->align, s->phase, s->nocross, (void *)s->min,
		                (void *)s->max, s->flags);
		break;
	case ST_ADD:
		p = vmem_add(vmp, (void *)s->min, s->size, s->flags);
		if (p == NULL) {
			expect(errno == ENOMEM);
			expect(!vmem_contains(vmp, (void *)s->min, 1));
			return false;
		}
		expect(p == (void *)s->min);
		return true;
	default:
		return true;
	}
	if (p == NULL) {
		expect(errno == ENOMEM);
		return false;
	}
	if (s->kind == ST_XALLOC) {
		uintptr_t a = (uintptr_t)p, last = a + s->size - 1;

		expect(a % (s->align ? s->align : PG) == s->phase);
		expect(s->nocross == 0 || a / s->nocross == last / s->nocross);
		expect(a >= s->min && (s->max == 0 || last < s->max));
	}
	hold(w, s->arena, (uintptr_t)p, s->size, s->kind == ST_XALLOC);
	return true;
}

static void free_held(workload_t *w, int i)
{
	held_t h = w->held[i];

	w->held[i] = w->held[--w->nheld];
	if (h.x)
		vmem_xfree(w->a[h.arena], (void *)h.addr, h.size);
	else
		vmem_free(w->a[h.arena], (void *)h.addr, h.size);
}

typedef struct walk_sum {
	uint64_t n, bytes;
} walk_sum_t;

static void walk_sum(void *arg, void *addr, size_t size)
{
	walk_sum_t *s = arg;

	(void)addr;
	s->n++;
	s->bytes += size;
}

/* The step list: deterministic, so that every child runs the same one. */
static void make_steps(step_t *steps, int n)
{
	static const int policy[] = {0,          VM_BESTFIT,  VM_FIRSTFIT,
	                             VM_NEXTFIT, VM_ENDALLOC, VM_BESTFIT | VM_ENDALLOC};
	unsigned seed = 8;

	for (int i = 0; i < n; i++) {
		step_t *s = &steps[i];
		unsigned r = rand_r(&seed);

		memset(s, 0, sizeof(*s));
		s->flags = VM_NOSLEEP | policy[r % 6];
		s->size = PG * (1 + (r >> 8) % 6);
		switch ((r >> 16) % 20) {
		case 0:
		case 1:
		case 2:
		case 3:
			s->kind = ST_ALLOC;
			s->arena = A_CHILD;
			break;
		case 4:
		case 5:
		case 13:
			s->kind = ST_XALLOC;
			s->arena = (r >> 20) % 2 ? A_CHILD : A_ROOT;
			s->align = PG << ((r >> 21) % 5);
			s->phase = s->align > PG ? PG : 0;
			s->nocross = (r >> 24) % 2 ? 0 : 16 * s->align;
			if ((r >> 25) % 3 == 0 && s->arena == A_ROOT) {
				s->min = BASE + PG * ((r >> 26) % 256);
				s->max = s->min + 64 * PG;
			}
			break;
		case 6:
		case 7:
		case 8:
			s->kind = ST_ALLOC;
			s->arena = A_CACHED; /* quantum-cached sizes */
			s->flags = VM_NOSLEEP;
			s->size = PG * (1 + (r >> 8) % 4);
			break;
		case 9:
		case 16:
		case 17:
		case 18:
			s->kind = ST_ALLOC;
			s->arena = A_IDS;
			s->size = 1 + (r >> 8) % 3;
			s->flags = VM_NOSLEEP | VM_NEXTFIT;
			break;
		case 10:
			s->kind = ST_ALLOC;
			s->arena = A_ROOT;
			break;
		case 11:
			s->kind = ST_ADD;
			s->arena = A_ROOT;
			s->size = 16 * PG;
			s->flags = VM_NOSLEEP;
			break;
		case 12:
			s->kind = ST_FREE_SOME;
			break;
		default:
			s->kind = ST_WALK;
			s->arena = (r >> 20) % NARENA;
			break;
		}
	}
}

static vmem_t *create_arena(int which, vmem_t *root)
{
	switch (which) {
	case A_ROOT:
		return vmem_create("f-root", (void *)BASE, 1024 * PG, PG, NULL, NULL, NULL, 0,
		                   VM_NOSLEEP);
	case A_CHILD:
		return vmem_create("f-child", NULL, 0, PG, failing_import, import_release, root, 0,
		                   VM_NOSLEEP);
	case A_CACHED:
		return vmem_create("f-cached", NULL, 0, PG, failing_import, import_release, root,
		                   4 * PG, VM_NOSLEEP);
	default:
		return vmem_create("f-ids", (void *)1, 5000, 1, NULL, NULL, NULL, 0,
		                   VM_NOSLEEP | VMC_IDENTIFIER);
	}
}

/* The child's fault plan: mappings (count 0: none) and imports. */
static long fault_skip, fault_count, import_from, import_until;

static void arm(void)
{
	if (fault_count != 0)
		vmem__fault_map(fault_skip, fault_count);
	atomic_store(&import_fail_until, import_until);
	atomic_store(&import_fail_from, import_from);
}

/* The resources come back (a request just failed for want of them). */
static void resources_return(void)
{
	vmem__fault_clear();
	atomic_store(&import_fail_from, 0);
}

/*
 * And, for persistent plans, go away again: every further mapping fails,
 * or every further import.
 */
static void resources_go_again(void)
{
	if (fault_count < 0)
		vmem__fault_map(0, -1);
	if (import_from != 0 && import_until == 0)
		atomic_store(&import_fail_from, atomic_load(&import_calls) + 1);
}

/*
 * Create the arenas.  A create that fails must return NULL with ENOMEM,
 * and succeed once the resources return.
 */
static void create_all(workload_t *w)
{
	for (int i = 0; i < NARENA; i++) {
		child_step = "create";
		errno = 0;
		w->a[i] = create_arena(i, w->a[A_ROOT]);
		if (w->a[i] == NULL) {
			expect(errno == ENOMEM);
			w->enomem++;
			resources_return();
			w->a[i] = create_arena(i, w->a[A_ROOT]);
			expect(w->a[i] != NULL);
			resources_go_again();
		}
		expect_ok(w->a[i]);
	}
}

/*
 * Run one allocating step; if it fails (cleanly: checked), the resource it
 * lacked returns and it must succeed, unless its address range is full.
 * True if a fault fired or the step failed.
 */
static bool run_with_retry(workload_t *w, step_t *t)
{
	uint64_t injected = vmem__fault_map_injected();
	long refused = atomic_load(&import_refused);

	if (run_step(w, t))
		return vmem__fault_map_injected() != injected ||
		       atomic_load(&import_refused) != refused;
	check_all(w);
	if (vmem__fault_map_injected() == injected && atomic_load(&import_refused) == refused) {
		/* no fault involved: only an address range may be full */
		expect(t->kind == ST_XALLOC && t->min != 0);
		return true;
	}
	w->enomem++;
	resources_return();
	child_step = "retry";
	expect(run_step(w, t) || (t->kind == ST_XALLOC && t->min != 0));
	resources_go_again();
	return true;
}

static void run_steps(workload_t *w, const step_t *steps, int n)
{
	for (int i = 0; i < n; i++) {
		const step_t *s = &steps[i];
		walk_sum_t sum = {0, 0};
		bool eventful = false;

		child_step = "step";
		if (s->kind == ST_FREE_SOME) {
			for (int k = w->nheld - 1; k >= 0; k -= 6)
				free_held(w, k);
		} else if (s->kind == ST_WALK) {
			vmem_walk(w->a[s->arena], VMEM_ALLOC, walk_sum, &sum);
			expect(sum.bytes == expected_alloc(w, s->arena));
		} else {
			step_t t = *s;

			if (t.kind == ST_ADD) {
				t.min = w->next_add;
				w->next_add += 2 * t.size;
			}
			eventful = run_with_retry(w, &t);
		}
		/* A full check after anything eventful, and regularly. */
		if (eventful || i % 32 == 0)
			check_all(w);
	}
}

typedef struct leak_count {
	int leaks, errors;
} leak_count_t;

static void count_reports(const vmem_error_info_t *info, void *arg)
{
	leak_count_t *c = arg;

	if (info->ve_kind == VMEM_ERR_LEAK)
		c->leaks++;
	else
		c->errors++;
}

/* Free everything, destroy the tree, and check that the root got everything back. */
static void finish(workload_t *w)
{
	leak_count_t reports = {0, 0};

	child_step = "finish";
	while (w->nheld > 0)
		free_held(w, w->nheld - 1);
	vmem_qcache_reap(w->a[A_CACHED]);
	check_all(w);
	/* Every imported span went back the moment it was wholly free. */
	expect(vmem_size(w->a[A_CHILD], VMEM_SPAN) == 0);
	expect(vmem_size(w->a[A_CACHED], VMEM_SPAN) == 0);
	expect(vmem_size(w->a[A_ROOT], VMEM_ALLOC) == 0);
	expect(vmem_size(w->a[A_ROOT], VMEM_FREE) == vmem_size(w->a[A_ROOT], VMEM_SPAN));
	expect(vmem_size(w->a[A_IDS], VMEM_FREE) == 5000);
	vmem_set_error_policy(VMEM_ERRORS_CONTINUE);
	vmem_set_error_handler(count_reports, &reports);
	for (int i = NARENA - 1; i >= 0; i--)
		vmem_destroy(w->a[i]);
	expect(reports.leaks == 0 && reports.errors == 0);
}

/* The child: the workload under the fault plan; the outcome goes to fd. */
static void run_workload(int fd)
{
	static workload_t w;
	static step_t steps[NSTEPS];
	uint64_t injected0 = vmem__fault_map_injected();
	const char *env = getenv("VMEM_FAULT_STEPS");
	int nsteps = env != NULL && atoi(env) > 0 && atoi(env) < NSTEPS ? atoi(env)
	             : UNDER_TSAN                                       ? NSTEPS / 8
	                                                                : NSTEPS;
	outcome_t out;

	memset(&w, 0, sizeof(w));
	w.next_add = BASE + 4096 * PG;
	make_steps(steps, nsteps);
	arm();
	create_all(&w);
	run_steps(&w, steps, nsteps);
	resources_return();
	out = (outcome_t){vmem__fault_map_injected() - injected0, atomic_load(&import_refused),
	                  atomic_load(&import_calls), w.enomem, (uint64_t)nsteps};
	finish(&w);
	expect(write(fd, &out, sizeof(out)) == (ssize_t)sizeof(out));
}

/* Run the workload in a child process under the given plan; its outcome. */
static outcome_t run_plan(long skip, long count, long ifrom, long iuntil)
{
	int fds[2], status;
	outcome_t out;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		fault_skip = skip;
		fault_count = count;
		import_from = ifrom;
		import_until = iuntil;
		run_workload(fds[1]);
		_exit(0);
	}
	close(fds[1]);
	memset(&out, 0, sizeof(out));
	assert_int_equal(read(fds[0], &out, sizeof(out)), sizeof(out));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("workload failed with faults at mapping %ld (count %ld), imports %ld..%ld",
		         skip, count, ifrom, iuntil);
	return out;
}

/* Totals, for the figures in docs/reliability.md. */
static uint64_t total_injected, total_runs, total_enomem, total_import_refused;

static void account(const outcome_t *o)
{
	total_injected += o->injected;
	total_import_refused += o->import_refused;
	total_enomem += o->enomem;
	total_runs++;
}

/* Mapping k fails (count 1), or mappings from k on all fail (count -1). */
static void sweep_mappings(long count)
{
	outcome_t base = run_plan(0, 0, 0, 0);
	long k;

	assert_int_equal(base.enomem, 0); /* without faults, nothing runs out */
	for (k = 0; k < 5000; k++) {
		outcome_t o = run_plan(k, count, 0, 0);

		account(&o);
		if (o.injected == 0)
			break; /* the workload makes fewer than k + 1 mappings */
	}
	assert_true(k > 3 && k < 5000);
	fprintf(stderr, "faults: %s mapping failed in turn at each of %ld points\n",
	        count == 1 ? "one" : "every further", k);
}

static void test_each_mapping_fails_once(void **state)
{
	(void)state;
	sweep_mappings(1);
}

static void test_mappings_fail_from_each_point_on(void **state)
{
	(void)state;
	sweep_mappings(-1);
}

/* Import j fails (iuntil = j + 1), or imports from j on all fail (iuntil 0). */
static void sweep_imports(bool persistent)
{
	long j;
	outcome_t base = run_plan(0, 0, 0, 0);

	account(&base);
	assert_true(base.import_calls > 3);
	for (j = 1; j <= (long)base.import_calls + 1; j++) {
		outcome_t o = run_plan(0, 0, j, persistent ? 0 : j + 1);

		account(&o);
		if (j <= (long)base.import_calls)
			assert_true(o.import_refused >= 1);
	}
	fprintf(stderr, "faults: %s import failed in turn at each of %ld points\n",
	        persistent ? "every further" : "one", (long)base.import_calls);
}

static void test_each_import_fails_once(void **state)
{
	(void)state;
	sweep_imports(false);
}

static void test_imports_fail_from_each_point_on(void **state)
{
	(void)state;
	sweep_imports(true);
}

/* ---- every allocation path, with no metadata at all ---------------------------------- */

/*
 * Allocate one-unit segments from `hog` until the metadata runs out (all
 * mappings refused): from then on no arena can add a record to its
 * reserve.  Returns how many were allocated.
 */
static size_t exhaust_metadata(vmem_t *hog, uintptr_t *ids, size_t max)
{
	size_t n = 0;

	vmem__fault_map(0, -1);
	for (; n < max; n++) {
		ids[n] = (uintptr_t)vmem_alloc(hog, 1, VM_NOSLEEP);
		if (ids[n] == 0)
			break;
	}
	assert_true(n < max);
	assert_int_equal(errno, ENOMEM);
	return n;
}

static void release_hog(vmem_t *hog, uintptr_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vmem_free(hog, (void *)ids[i], 1);
	assert_int_equal(vmem_size(hog, VMEM_ALLOC), 0);
	vmem_destroy(hog);
	free(ids);
}

/* An arena whose record reserve is used up, with `npages` free pages. */
static vmem_t *reserve_spent_arena(const char *name, uintptr_t base, size_t npages, void **held,
                                   int *nheld)
{
	vmem_t *vmp =
	    vmem_create(name, (void *)base, npages * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);

	assert_non_null(vmp);
	*nheld = 0;
	/* Every record of the reserve ends up describing a held page. */
	while (vmp->vm_nsegfree >= VMEM_SEGS_PER_ALLOC)
		held[(*nheld)++] = vmem_alloc(vmp, PG, VM_NOSLEEP | VM_ENDALLOC);
	return vmp;
}

static void expect_enomem(void *p)
{
	assert_null(p);
	assert_int_equal(errno, ENOMEM);
}

static void test_every_path_fails_cleanly(void **state)
{
	enum { MAXIDS = 2000000 };
	vmem_t *hog = vmem_create("hog", (void *)1, 1UL << 40, 1, NULL, NULL, NULL, 0,
	                          VM_SLEEP | VMC_IDENTIFIER);
	uintptr_t *ids = calloc(MAXIDS, sizeof(*ids));
	void *held[64];
	int nheld;
	vmem_t *vmp, *child, *cached;
	size_t n, free_before;
	uint64_t injected = vmem__fault_map_injected();

	(void)state;
	vmp = reserve_spent_arena("spent", BASE, 64, held, &nheld);
	child = vmem_create("spent-child", NULL, 0, PG, failing_import, import_release, vmp, 0,
	                    VM_SLEEP);
	cached =
	    vmem_create("spent-cached", NULL, 0, PG, vmem_alloc, vmem_free, vmp, 4 * PG, VM_SLEEP);
	free_before = vmem_size(vmp, VMEM_FREE);
	n = exhaust_metadata(hog, ids, MAXIDS);

	/* Every allocation path: NULL and ENOMEM, nothing changed. */
	errno = 0;
	expect_enomem(vmem_alloc(vmp, PG, VM_NOSLEEP));
	expect_enomem(vmem_alloc(vmp, PG, VM_NOSLEEP | VM_BESTFIT));
	expect_enomem(vmem_alloc(vmp, PG, VM_NOSLEEP | VM_FIRSTFIT | VM_ENDALLOC));
	expect_enomem(vmem_alloc(vmp, PG, VM_NOSLEEP | VM_NEXTFIT));
	expect_enomem(vmem_alloc(vmp, PG, VM_SLEEP | VM_ABORT));
	expect_enomem(vmem_xalloc(vmp, PG, 4 * PG, PG, 16 * PG, (void *)BASE,
	                          (void *)(BASE + 32 * PG), VM_NOSLEEP));
	expect_enomem(vmem_add(vmp, (void *)(BASE + 1024 * PG), 8 * PG, VM_NOSLEEP));
	assert_false(vmem_contains(vmp, (void *)(BASE + 1024 * PG), 1));
	expect_enomem(vmem_alloc(child, PG, VM_NOSLEEP));      /* an importing arena */
	expect_enomem(vmem_alloc(cached, 2 * PG, VM_NOSLEEP)); /* a quantum cache */
	expect_enomem(vmem_create("new", (void *)BASE, PG, PG, NULL, NULL, NULL, 0, VM_NOSLEEP));
	assert_int_equal(vmem_size(vmp, VMEM_FREE), free_before);
	assert_int_equal(vmem_size(child, VMEM_SPAN), 0);
	assert_int_equal(vmem_size(cached, VMEM_ALLOC), 0);
	assert_arena_ok(vmp);
	assert_arena_ok(child);
	assert_arena_ok(cached);
	/* Frees need no metadata. */
	vmem_free(vmp, held[--nheld], PG);
	assert_arena_ok(vmp);
	assert_true(vmem__fault_map_injected() > injected);
	total_injected += vmem__fault_map_injected() - injected;

	/* The resources return: the same requests succeed. */
	vmem__fault_clear();
	{
		/* (the constrained one first: the cached arena's slab import is large) */
		void *c = vmem_xalloc(vmp, PG, 4 * PG, PG, 16 * PG, (void *)BASE,
		                      (void *)(BASE + 32 * PG), VM_NOSLEEP);
		void *a = vmem_alloc(child, PG, VM_NOSLEEP),
		     *b = vmem_alloc(cached, 2 * PG, VM_NOSLEEP);

		assert_non_null(a);
		assert_non_null(b);
		assert_non_null(c);
		assert_non_null(vmem_add(vmp, (void *)(BASE + 1024 * PG), 8 * PG, VM_NOSLEEP));
		vmem_free(child, a, PG);
		vmem_free(cached, b, 2 * PG);
		vmem_xfree(vmp, c, PG);
	}
	vmem_destroy(cached);
	vmem_destroy(child);
	while (nheld > 0)
		vmem_free(vmp, held[--nheld], PG);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
	release_hog(hog, ids, n);
}

/* ---- VM_SLEEP callers wait, then succeed ------------------------------------------------- */

static void watchdog(int sig)
{
	static const char msg[] = "test_faults: watchdog fired (a sleeper never got through?)\n";

	(void)sig;
	write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

static void msleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

typedef struct sleeper {
	vmem_t *vmp;
	int kind; /* 0 alloc, 1 xalloc, 2 add, 3 best-fit alloc */
	uintptr_t arg;
	_Atomic(uintptr_t) got;
} sleeper_t;

static void *sleeper_main(void *arg)
{
	sleeper_t *s = arg;
	void *p;

	if (s->kind == 0)
		p = vmem_alloc(s->vmp, PG, VM_SLEEP);
	else if (s->kind == 3)
		p = vmem_alloc(s->vmp, PG, VM_SLEEP | VM_BESTFIT);
	else if (s->kind == 1)
		p = vmem_xalloc(s->vmp, PG, 2 * PG, 0, 0, NULL, NULL, VM_SLEEP | VM_FIRSTFIT);
	else
		p = vmem_add(s->vmp, (void *)s->arg, 4 * PG, VM_SLEEP);
	atomic_store(&s->got, (uintptr_t)p);
	return NULL;
}

static uint64_t kstat_of(vmem_t *vmp, size_t offset)
{
	vmem_kstat_t ks;

	assert_int_equal(vmem_kstat(vmp, &ks), 0);
	return *(uint64_t *)((char *)&ks + offset);
}

/* Wait until the counter at `offset` of vmp's kstat reaches `n`. */
static void wait_for_kstat(vmem_t *vmp, size_t offset, uint64_t n)
{
	while (kstat_of(vmp, offset) < n)
		msleep(1);
}

/* Wait until `n` threads sleep in vmp (its count of waiters, under its lock). */
static void wait_for_sleepers(vmem_t *vmp, unsigned n)
{
	for (;;) {
		unsigned w;

		pthread_mutex_lock(&vmp->vm_lock);
		w = vmp->vm_nwaiters;
		pthread_mutex_unlock(&vmp->vm_lock);
		if (w >= n)
			return;
		msleep(1);
	}
}

static int done_count(sleeper_t *s, int n)
{
	int d = 0;

	for (int i = 0; i < n; i++)
		d += atomic_load(&s[i].got) != 0;
	return d;
}

static void test_sleepers_wait_for_metadata(void **state)
{
	enum { T = 3, MAXIDS = 2000000 };
	vmem_t *hog = vmem_create("hog2", (void *)1, 1UL << 40, 1, NULL, NULL, NULL, 0,
	                          VM_SLEEP | VMC_IDENTIFIER);
	uintptr_t *ids = calloc(MAXIDS, sizeof(*ids));
	void *held[64];
	int nheld;
	vmem_t *vmp;
	sleeper_t s[T];
	pthread_t th[T];
	size_t n;
	uint64_t waits0;

	(void)state;
	signal(SIGALRM, watchdog);
	alarm(300);
	vmp = reserve_spent_arena("starved", BASE, 64, held, &nheld);
	n = exhaust_metadata(hog, ids, MAXIDS);
	waits0 = kstat_of(vmp, offsetof(vmem_kstat_t, vk_populate_wait));
	for (int i = 0; i < T; i++) {
		s[i] = (sleeper_t){vmp, i, BASE + (1024 + 8 * (uintptr_t)i) * PG, 0};
		pthread_create(&th[i], NULL, sleeper_main, &s[i]);
	}
	/* Each backs off at least twice while the metadata is gone. */
	wait_for_kstat(vmp, offsetof(vmem_kstat_t, vk_populate_wait), waits0 + 2 * T);
	assert_int_equal(done_count(s, T), 0);
	assert_arena_ok(vmp);
	vmem__fault_clear();
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(done_count(s, T), T);
	assert_int_equal(atomic_load(&s[2].got), s[2].arg);
	assert_int_equal(atomic_load(&s[1].got) % (2 * PG), 0);
	assert_arena_ok(vmp);
	vmem_free(vmp, (void *)atomic_load(&s[0].got), PG);
	vmem_xfree(vmp, (void *)atomic_load(&s[1].got), PG);
	while (nheld > 0)
		vmem_free(vmp, held[--nheld], PG);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 68 * PG);
	vmem_destroy(vmp);
	release_hog(hog, ids, n);
	alarm(0);
}

/*
 * Imports refused, from a source-less import function (the arena retries
 * every 100 ms) and from one importing from a source arena (a free in the
 * source wakes the sleepers).
 */
static vmem_t *backing;

static void *backing_import(vmem_t *src, size_t size, int flags)
{
	if (src != NULL)
		abort(); /* not cmocka: this runs in the sleepers' threads */
	if (import_should_fail())
		return NULL;
	return vmem_alloc(backing, size, flags);
}

static void backing_release(vmem_t *src, void *addr, size_t size)
{
	vmem_free(backing, addr, size);
}

static void sleepers_wait_for_imports(vmem_t *vmp, vmem_t *wake_by_free_in)
{
	enum { T = 4 };
	sleeper_t s[T];
	pthread_t th[T];
	long refused0 = atomic_load(&import_refused);

	atomic_store(&import_fail_until, 0);
	atomic_store(&import_fail_from, 1); /* every import fails from now on */
	for (int i = 0; i < T; i++) {
		s[i] = (sleeper_t){vmp, 0, 0, 0};
		pthread_create(&th[i], NULL, sleeper_main, &s[i]);
	}
	/* All asleep, each after a refused import. */
	wait_for_sleepers(vmp, T);
	while (atomic_load(&import_refused) < refused0 + T)
		msleep(1);
	assert_int_equal(done_count(s, T), 0);
	assert_int_equal(vmem_size(vmp, VMEM_SPAN), 0);
	assert_arena_ok(vmp);
	atomic_store(&import_fail_from, 0); /* the imports come back */
	if (wake_by_free_in != NULL)
		vmem_free(wake_by_free_in, vmem_alloc(wake_by_free_in, PG, VM_SLEEP), PG);
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(done_count(s, T), T);
	assert_arena_ok(vmp);
	for (int i = 0; i < T; i++)
		vmem_free(vmp, (void *)atomic_load(&s[i].got), PG);
	assert_int_equal(vmem_size(vmp, VMEM_SPAN), 0); /* every span went back */
}

static void test_sleepers_wait_for_imports(void **state)
{
	vmem_t *src, *child;

	(void)state;
	signal(SIGALRM, watchdog);
	alarm(300);
	backing = vmem_create("backing", (void *)BASE, 256 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	child = vmem_create("no-source", NULL, 0, PG, backing_import, backing_release, NULL, 0,
	                    VM_SLEEP);
	sleepers_wait_for_imports(child, NULL);
	vmem_destroy(child);
	assert_int_equal(vmem_size(backing, VMEM_ALLOC), 0);

	src = vmem_create("source", (void *)(BASE + 1024 * PG), 256 * PG, PG, NULL, NULL, NULL, 0,
	                  VM_SLEEP);
	child =
	    vmem_create("sourced", NULL, 0, PG, failing_import, import_release, src, 0, VM_SLEEP);
	sleepers_wait_for_imports(child, src);
	vmem_destroy(child);
	assert_int_equal(vmem_size(src, VMEM_ALLOC), 0);
	assert_arena_ok(src);
	vmem_destroy(src);
	vmem_destroy(backing);
	alarm(0);
	fprintf(stderr,
	        "faults: %llu metadata faults injected, %llu imports refused, %llu clean "
	        "ENOMEM failures, over %llu workload runs\n",
	        (unsigned long long)total_injected, (unsigned long long)total_import_refused,
	        (unsigned long long)total_enomem, (unsigned long long)total_runs);
}

/* ---- regression: best fit when its index cannot be mapped ---------------------------- */

static _Atomic long counted_imports;

static void *counting_import(vmem_t *src, size_t size, int flags)
{
	void *p = vmem_alloc(src, size, flags);

	if (p != NULL)
		atomic_fetch_add(&counted_imports, 1);
	return p;
}

/*
 * Found by the fuzzer (corpus input 4768849d...): best fit's size index is
 * mapped on first use.  Without metadata, a VM_NOSLEEP best-fit allocation
 * must fail with the arena unchanged -- not import span after span, finding
 * no fit in any (the index is still missing), and keep them all.
 */
static void test_best_fit_without_index_memory(void **state)
{
	vmem_t *root =
	    vmem_create("bf-root", (void *)BASE, 256 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child =
	    vmem_create("bf-child", NULL, 0, PG, counting_import, vmem_free, root, 0, VM_SLEEP);
	long imports0 = atomic_load(&counted_imports);
	void *p;

	(void)state;
	vmem__fault_map(0, -1);
	errno = 0;
	p = vmem_alloc(child, PG, VM_NOSLEEP | VM_BESTFIT);
	vmem__fault_clear();
	if (p != NULL) {
		vmem_free(child, p, PG); /* a library that builds the index differently */
	} else {
		assert_int_equal(errno, ENOMEM);
		if (vmem_size(child, VMEM_SPAN) != 0)
			fail_msg("a failed best-fit allocation imported %ld spans and kept %zu "
			         "bytes of them, unused",
			         atomic_load(&counted_imports) - imports0,
			         vmem_size(child, VMEM_SPAN));
	}
	assert_int_equal(vmem_size(child, VMEM_SPAN), 0);
	assert_int_equal(vmem_size(root, VMEM_ALLOC), 0);
	/* The metadata is back: the same request succeeds. */
	p = vmem_alloc(child, PG, VM_NOSLEEP | VM_BESTFIT);
	assert_non_null(p);
	vmem_free(child, p, PG);
	assert_arena_ok(child);
	vmem_destroy(child);
	vmem_destroy(root);
}

/*
 * The same, sleeping: a VM_SLEEP best-fit caller on an arena with room
 * must get through once the metadata returns, though nothing is freed.
 */
static void test_best_fit_sleeper_without_index_memory(void **state)
{
	vmem_t *vmp =
	    vmem_create("bf-sleep", (void *)BASE, 64 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	sleeper_t s = {vmp, 3, 0, 0};
	pthread_t th;
	int ms;

	(void)state;
	vmem__fault_map(0, -1);
	pthread_create(&th, NULL, sleeper_main, &s);
	/* Give it time to find no index (a sleeper, however it waits, stays put). */
	msleep(200);
	assert_int_equal(atomic_load(&s.got), 0);
	vmem__fault_clear();
	for (ms = 0; ms < 10000 && atomic_load(&s.got) == 0; ms += 10)
		msleep(10);
	if (atomic_load(&s.got) == 0)
		fail_msg("a VM_SLEEP best-fit allocation, with room in the arena, did not get "
		         "through within 10 s of the metadata coming back");
	pthread_join(th, NULL);
	vmem_free(vmp, (void *)atomic_load(&s.got), PG);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	vmem_destroy(vmp);
}

/* ---- regression: space freed while the import was failing ------------------------------ */

static void *import_32_pages(vmem_t *src, size_t *sizep, size_t align, int flags)
{
	size_t size = (*sizep + 32 * PG - 1) & ~(32 * PG - 1);
	void *p = vmem_xalloc(src, size, align, 0, 0, NULL, NULL, flags);

	if (p != NULL)
		*sizep = size;
	return p;
}

/*
 * Found by the fuzzer (regressions/fuzz_vmem/lib-nosleep-fails-after-
 * source-reaps-our-slab): an arena's import fails because its source is
 * full; the source, before failing, reaps the caches of the arenas that
 * import from it, which frees this arena's empty slab.  The space is there
 * when the import returns: a VM_NOSLEEP allocation must use it, not fail
 * ("no false exhaustion", src/qcache.c, section 6).
 */
static void test_space_freed_during_failed_import(void **state)
{
	vmem_t *src =
	    vmem_create("fe-src", (void *)BASE, 32 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *c = vmem_xcreate("fe-cached", NULL, 0, PG, import_32_pages, vmem_xfree, src, 4 * PG,
	                         VM_SLEEP);
	void *big, *obj, *p;

	(void)state;
	big = vmem_alloc(c, 16 * PG, VM_NOSLEEP); /* imports all 32 pages of the source */
	obj = vmem_alloc(c, PG, VM_NOSLEEP);      /* a slab: the other 16 pages */
	assert_non_null(big);
	assert_non_null(obj);
	vmem_free(c, obj, PG); /* into a magazine: the slab stays */
	p = vmem_alloc(c, 8 * PG, VM_NOSLEEP);
	if (p == NULL)
		fail_msg("VM_NOSLEEP allocation of 8 pages failed with %zu pages free in the arena "
		         "(its empty slab was reaped while its import failed)",
		         vmem_size(c, VMEM_FREE) / PG);
	vmem_free(c, p, 8 * PG);
	vmem_free(c, big, 16 * PG);
	vmem_qcache_reap(c);
	assert_int_equal(vmem_size(c, VMEM_SPAN), 0);
	assert_int_equal(vmem_size(src, VMEM_ALLOC), 0);
	vmem_destroy(c);
	vmem_destroy(src);
}

int main(void)
{
	/* The sweeps first: their children fork from a process that has mapped little. */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_mapping_fails_once),
	    cmocka_unit_test(test_mappings_fail_from_each_point_on),
	    cmocka_unit_test(test_each_import_fails_once),
	    cmocka_unit_test(test_imports_fail_from_each_point_on),
	    cmocka_unit_test(test_every_path_fails_cleanly),
	    cmocka_unit_test(test_sleepers_wait_for_metadata),
	    cmocka_unit_test(test_sleepers_wait_for_imports),
	    cmocka_unit_test(test_best_fit_without_index_memory),
	    cmocka_unit_test(test_best_fit_sleeper_without_index_memory),
	    cmocka_unit_test(test_space_freed_during_failed_import),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
