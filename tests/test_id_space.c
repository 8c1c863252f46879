/*
 * id_space (illumos id_space(9F) API): every function, the id range edges
 * (id 0, the largest id), next fit versus lowest-first fit, specific ids,
 * extension, bad frees and leaks; then threads: sleepers woken one by one
 * by frees and by id_space_extend(), an id space exhausted and refilled
 * across threads, and a stress run checking that no id is ever held twice.
 * A watchdog alarm fails the test rather than letting a lost wake-up hang
 * it; nothing depends on timing.
 */
#include "testutil.h"

#include <id_space.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define NONE ((id_t)-1)

static vmem_t *arena_of(id_space_t *isp)
{
	return (vmem_t *)isp;
}

static void check_ok(id_space_t *isp)
{
	assert_arena_ok(arena_of(isp));
}

static size_t ids_in_use(id_space_t *isp)
{
	return vmem_size(arena_of(isp), VMEM_ALLOC);
}

static void watchdog(int sig)
{
	static const char msg[] = "test_id_space: watchdog fired (a sleeper was never woken?)\n";

	(void)sig;
	write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

static void arm_watchdog(unsigned seconds)
{
	signal(SIGALRM, watchdog);
	alarm(seconds);
}

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- single-threaded ------------------------------------------------------- */

static void test_create_errors(void **state)
{
	(void)state;
	errno = 0;
	assert_null(id_space_create("empty", 5, 5));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(id_space_create("inverted", 6, 5));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(id_space_create(NULL, 0, 5));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(id_alloc_nosleep(NULL), NONE);
	assert_int_equal(id_allocff_nosleep(NULL), NONE);
	assert_int_equal(id_alloc_specific_nosleep(NULL, 1), NONE);
	assert_int_equal(id_space_extend(NULL, 0, 1), EINVAL);
	id_space_destroy(NULL);
}

static void test_next_fit_sequence(void **state)
{
	id_space_t *isp = id_space_create("pids", 0, 8);
	id_t id;

	(void)state;
	assert_non_null(isp);
	assert_string_equal(vmem_name(arena_of(isp)), "pids");
	/* Id 0 is an ordinary id: no +1 trick. */
	for (id = 0; id < 8; id++)
		assert_int_equal(id_alloc(isp), id);
	assert_int_equal(id_alloc_nosleep(isp), NONE);
	assert_int_equal(id_allocff_nosleep(isp), NONE);
	/* Next fit goes on after the last id handed out, wrapping at the end. */
	id_free(isp, 5);
	id_free(isp, 1);
	assert_int_equal(id_alloc_nosleep(isp), 1); /* wrapped to the lowest free */
	assert_int_equal(id_alloc_nosleep(isp), 5); /* then onwards from 2 */
	id_free(isp, 3);
	id_free(isp, 6);
	id_free(isp, 2);
	assert_int_equal(id_alloc(isp), 6); /* rotor is after 5 */
	assert_int_equal(id_alloc(isp), 2); /* wrap */
	assert_int_equal(id_alloc(isp), 3);
	assert_int_equal(ids_in_use(isp), 8);
	for (id = 0; id < 8; id++)
		id_free(isp, id);
	assert_int_equal(ids_in_use(isp), 0);
	check_ok(isp);
	id_space_destroy(isp);
}

static void test_allocff_lowest(void **state)
{
	id_space_t *isp = id_space_create("minors", 10, 20);
	id_t id;

	(void)state;
	assert_non_null(isp);
	for (id = 10; id < 20; id++)
		assert_int_equal(id_allocff(isp), id);
	/* Freed in the order 15, 12, 18: illumos would hand out 18 first. */
	id_free(isp, 15);
	id_free(isp, 12);
	id_free(isp, 18);
	assert_int_equal(id_allocff(isp), 12);
	assert_int_equal(id_allocff_nosleep(isp), 15);
	assert_int_equal(id_allocff_nosleep(isp), 18);
	assert_int_equal(id_allocff_nosleep(isp), NONE);

	/* id_allocff does not move id_alloc's position. */
	for (id = 10; id < 20; id++)
		id_free(isp, id);
	assert_int_equal(id_alloc(isp), 10);
	assert_int_equal(id_alloc(isp), 11);
	assert_int_equal(id_allocff(isp), 12);
	assert_int_equal(id_allocff(isp), 13);
	assert_int_equal(id_alloc(isp), 14);
	id_free(isp, 10);
	assert_int_equal(id_alloc(isp), 15); /* not 10: next fit */
	assert_int_equal(id_allocff(isp), 10);
	for (id = 10; id < 16; id++)
		id_free(isp, id);
	check_ok(isp);
	id_space_destroy(isp);
}

static void test_specific(void **state)
{
	id_space_t *isp = id_space_create("specific", 100, 110);

	(void)state;
	assert_non_null(isp);
	assert_int_equal(id_alloc_specific_nosleep(isp, 105), 105);
	assert_int_equal(id_alloc_specific_nosleep(isp, 105), NONE); /* taken */
	assert_int_equal(id_alloc_specific_nosleep(isp, 100), 100);  /* low edge */
	assert_int_equal(id_alloc_specific_nosleep(isp, 109), 109);  /* high - 1 */
	assert_int_equal(id_alloc_specific_nosleep(isp, 110), NONE); /* high: excluded */
	assert_int_equal(id_alloc_specific_nosleep(isp, 99), NONE);
	assert_int_equal(id_alloc_specific_nosleep(isp, 0), NONE);
	assert_int_equal(id_alloc_specific_nosleep(isp, NONE), NONE);
	/* The others skip the specific ones. */
	assert_int_equal(id_allocff(isp), 101);
	assert_int_equal(id_alloc(isp), 101 + 1);
	assert_int_equal(ids_in_use(isp), 5);
	id_free(isp, 100);
	id_free(isp, 101);
	id_free(isp, 102);
	id_free(isp, 105);
	id_free(isp, 109);
	check_ok(isp);
	id_space_destroy(isp);
}

static void test_range_edges(void **state)
{
	const id_t top = NONE - 1; /* the largest id: (id_t)-1 is the failure value */
	id_space_t *isp;

	(void)state;
	/* A space of one id, 0. */
	isp = id_space_create("zero", 0, 1);
	assert_non_null(isp);
	assert_int_equal(id_alloc_nosleep(isp), 0);
	assert_int_equal(id_alloc_nosleep(isp), NONE);
	id_free(isp, 0);
	assert_int_equal(id_allocff_nosleep(isp), 0);
	id_free(isp, 0);
	assert_int_equal(id_alloc_specific_nosleep(isp, 0), 0);
	id_free(isp, 0);
	id_space_destroy(isp);

	/* The top of id_t: ids up to (id_t)-2, and -1 only as failure. */
	isp = id_space_create("top", top - 2, NONE);
	assert_non_null(isp);
	assert_int_equal(id_alloc(isp), top - 2);
	assert_int_equal(id_alloc(isp), top - 1);
	assert_int_equal(id_alloc(isp), top);
	assert_int_equal(id_alloc_nosleep(isp), NONE);
	id_free(isp, top);
	assert_int_equal(id_alloc_specific_nosleep(isp, top), top);
	id_free(isp, top - 1);
	assert_int_equal(id_alloc_nosleep(isp), top - 1); /* wraps past the end */
	assert_int_equal(ids_in_use(isp), 3);
	id_free(isp, top - 2);
	id_free(isp, top - 1);
	id_free(isp, top);
	check_ok(isp);
	id_space_destroy(isp);

	/* The whole id_t range but -1. */
	isp = id_space_create("all", 0, NONE);
	assert_non_null(isp);
	assert_int_equal(id_allocff(isp), 0);
	assert_int_equal(id_alloc_specific_nosleep(isp, top), top);
	assert_int_equal(vmem_size(arena_of(isp), VMEM_ALLOC | VMEM_FREE), (size_t)NONE);
	id_free(isp, 0);
	id_free(isp, top);
	id_space_destroy(isp);
}

static void test_extend(void **state)
{
	id_space_t *isp = id_space_create("grow", 0, 4);
	id_t id;

	(void)state;
	assert_non_null(isp);
	for (id = 0; id < 4; id++)
		assert_int_equal(id_alloc_nosleep(isp), id);
	assert_int_equal(id_alloc_nosleep(isp), NONE);
	assert_int_equal(id_space_extend(isp, 100, 102), 0);
	assert_int_equal(id_alloc_nosleep(isp), 100);
	assert_int_equal(id_allocff_nosleep(isp), 101);
	assert_int_equal(id_alloc_nosleep(isp), NONE);
	/* Below the first range, adjacent to it: a separate span, fine. */
	assert_int_equal(id_space_extend(isp, 4, 6), 0);
	assert_int_equal(id_allocff_nosleep(isp), 4);
	/* Errors: empty, inverted, overlapping. */
	assert_int_equal(id_space_extend(isp, 7, 7), EINVAL);
	assert_int_equal(id_space_extend(isp, 9, 8), EINVAL);
	assert_int_equal(id_space_extend(isp, 101, 103), EINVAL);
	assert_int_equal(id_space_extend(isp, 0, 1), EINVAL);
	assert_int_equal(vmem_size(arena_of(isp), VMEM_ALLOC | VMEM_FREE), 8);
	for (id = 0; id < 5; id++)
		id_free(isp, id);
	id_free(isp, 100);
	id_free(isp, 101);
	check_ok(isp);
	id_space_destroy(isp);
}

static void test_bad_free_and_leak(void **state)
{
	id_space_t *isp = id_space_create("leaky", 0, 16);
	captured_t c;

	(void)state;
	assert_non_null(isp);
	assert_int_equal(id_alloc(isp), 0);
	assert_int_equal(id_alloc(isp), 1);
	capture_errors(&c);
	id_free(isp, 7);  /* never allocated */
	id_free(isp, 99); /* outside the space */
	id_free(isp, 1);
	id_free(isp, 1); /* twice */
	assert_int_equal(c.n, 3);
	assert_int_equal(c.kind[0], VMEM_ERR_BAD_FREE);
	assert_non_null(strstr(c.msg[0], "id_free('leaky', 0x7, 1)"));
	assert_int_equal(c.kind[1], VMEM_ERR_BAD_FREE);
	assert_non_null(strstr(c.msg[2], "id_free"));
	assert_int_equal(ids_in_use(isp), 1);
	check_ok(isp);

	/* Destroy with an id still allocated: a warning, in identifiers. */
	c.n = 0;
	id_space_destroy(isp);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.kind[0], VMEM_ERR_LEAK);
	assert_non_null(strstr(c.msg[0], "leaked 1 identifiers in 1 segment"));
	release_errors();
}

static void bad_free_child(void *arg)
{
	id_free(arg, 3);
}

static void test_bad_free_aborts_by_default(void **state)
{
	id_space_t *isp = id_space_create("strict", 0, 16);
	char buf[1024];
	int status;

	(void)state;
	assert_non_null(isp);
	status = run_child(bad_free_child, isp, buf, sizeof(buf));
	assert_aborted(status);
	assert_non_null(strstr(buf, "libvmem: id_free('strict', 0x3, 1): bad free"));
	id_space_destroy(isp);
}

/* ---- threads ------------------------------------------------------------------ */

typedef struct sleeper {
	id_space_t *isp;
	bool ff; /* id_allocff, else id_alloc */
	_Atomic id_t got;
} sleeper_t;

static void *sleeper_main(void *arg)
{
	sleeper_t *s = arg;

	atomic_store(&s->got, s->ff ? id_allocff(s->isp) : id_alloc(s->isp));
	return NULL;
}

static unsigned nwaiters(id_space_t *isp)
{
	vmem_t *vmp = arena_of(isp);
	unsigned n;

	pthread_mutex_lock(&vmp->vm_lock);
	n = vmp->vm_nwaiters;
	pthread_mutex_unlock(&vmp->vm_lock);
	return n;
}

static void wait_for_sleepers(id_space_t *isp, unsigned n)
{
	while (nwaiters(isp) < n)
		pause_ms(1);
}

static int count_done(sleeper_t *s, int n)
{
	int done = 0;

	for (int i = 0; i < n; i++)
		done += atomic_load(&s[i].got) != NONE;
	return done;
}

/* Sleepers in a full space are served one per freed id, then by an extension. */
static void test_sleepers_woken(void **state)
{
	enum { T = 4, N = 6 };
	id_space_t *isp = id_space_create("sleepy", 0, N);
	sleeper_t s[T];
	pthread_t th[T];
	bool seen[N + 2] = {false};
	int i;

	(void)state;
	assert_non_null(isp);
	arm_watchdog(120);
	for (i = 0; i < N; i++)
		assert_int_equal(id_alloc(isp), i);
	for (i = 0; i < T; i++) {
		s[i].isp = isp;
		s[i].ff = i % 2 != 0;
		atomic_init(&s[i].got, NONE);
		pthread_create(&th[i], NULL, sleeper_main, &s[i]);
	}
	wait_for_sleepers(isp, T);
	assert_int_equal(count_done(s, T), 0);

	/* Each free lets exactly one sleeper through. */
	id_free(isp, 4);
	while (count_done(s, T) < 1)
		pause_ms(1);
	id_free(isp, 1);
	while (count_done(s, T) < 2)
		pause_ms(1);
	wait_for_sleepers(isp, T - 2);
	assert_int_equal(count_done(s, T), 2);

	/* An extension wakes the rest. */
	assert_int_equal(id_space_extend(isp, N, N + 2), 0);
	for (i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < T; i++) {
		id_t id = atomic_load(&s[i].got);

		assert_true(id == 1 || id == 4 || id == N || id == N + 1);
		assert_false(seen[id]);
		seen[id] = true;
	}
	assert_int_equal(ids_in_use(isp), N + 2);
	for (i = 0; i < N + 2; i++)
		id_free(isp, i);
	{
		vmem_kstat_t ks;

		assert_int_equal(vmem_kstat(arena_of(isp), &ks), 0);
		assert_true(ks.vk_wait >= T); /* every sleeper really slept */
	}
	alarm(0);
	check_ok(isp);
	id_space_destroy(isp);
}

/*
 * Exhausted and refilled across threads: producers drain the space with
 * id_alloc_nosleep until it reports -1, hand their ids to a shared pool
 * and sleep in id_alloc for one more; consumers take ids from the pool and
 * free them, which refills the space and wakes the producers.  Every id is
 * held by at most one thread at a time.
 */
enum { XN = 64, XPROD = 4, XCONS = 2, XROUNDS = 200 };

static struct {
	id_space_t *isp;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	id_t pool[XN];
	int npool;
	int producers_left;
	_Atomic int owner[XN]; /* 0 free, else thread number + 1 */
	_Atomic long exhausted, slept_allocs;
} X;

static void take_id(id_t id, int who)
{
	int expect = 0;

	if (id >= XN || !atomic_compare_exchange_strong(&X.owner[id], &expect, who + 1)) {
		/* cmocka asserts do not cross threads: record and exit loudly. */
		fprintf(stderr, "id %u handed out twice (to %d, held by %d)\n", (unsigned)id, who,
		        expect - 1);
		_exit(1);
	}
}

static void give_to_pool(id_t id)
{
	pthread_mutex_lock(&X.lock);
	X.pool[X.npool++] = id;
	pthread_cond_signal(&X.cv);
	pthread_mutex_unlock(&X.lock);
}

static void *producer_main(void *arg)
{
	int who = (int)(intptr_t)arg;

	for (int r = 0; r < XROUNDS; r++) {
		id_t id;

		/* Drain until the space is exhausted ... */
		while ((id = (r % 2 ? id_allocff_nosleep(X.isp) : id_alloc_nosleep(X.isp))) !=
		       NONE) {
			take_id(id, who);
			give_to_pool(id);
		}
		atomic_fetch_add(&X.exhausted, 1);
		/* ... then sleep until the consumers refill it. */
		id = r % 2 ? id_allocff(X.isp) : id_alloc(X.isp);
		atomic_fetch_add(&X.slept_allocs, 1);
		take_id(id, who);
		give_to_pool(id);
	}
	pthread_mutex_lock(&X.lock);
	X.producers_left--;
	pthread_cond_broadcast(&X.cv);
	pthread_mutex_unlock(&X.lock);
	return NULL;
}

static void *consumer_main(void *arg)
{
	(void)arg;
	for (;;) {
		id_t id;

		pthread_mutex_lock(&X.lock);
		while (X.npool == 0 && X.producers_left > 0)
			pthread_cond_wait(&X.cv, &X.lock);
		if (X.npool == 0) {
			pthread_mutex_unlock(&X.lock);
			return NULL;
		}
		id = X.pool[--X.npool];
		pthread_mutex_unlock(&X.lock);
		/* Release ownership before the id can be handed out again. */
		atomic_store(&X.owner[id], 0);
		id_free(X.isp, id);
	}
}

static void test_exhausted_and_refilled(void **state)
{
	pthread_t prod[XPROD], cons[XCONS];
	int i;

	(void)state;
	arm_watchdog(300);
	memset(&X, 0, sizeof(X));
	pthread_mutex_init(&X.lock, NULL);
	pthread_cond_init(&X.cv, NULL);
	X.isp = id_space_create("refill", 0, XN);
	assert_non_null(X.isp);
	X.producers_left = XPROD;
	for (i = 0; i < XPROD; i++)
		pthread_create(&prod[i], NULL, producer_main, (void *)(intptr_t)i);
	for (i = 0; i < XCONS; i++)
		pthread_create(&cons[i], NULL, consumer_main, NULL);
	for (i = 0; i < XPROD; i++)
		pthread_join(prod[i], NULL);
	for (i = 0; i < XCONS; i++)
		pthread_join(cons[i], NULL);
	alarm(0);
	assert_int_equal(atomic_load(&X.exhausted), XPROD * XROUNDS);
	assert_int_equal(atomic_load(&X.slept_allocs), XPROD * XROUNDS);
	assert_int_equal(X.npool, 0);
	assert_int_equal(ids_in_use(X.isp), 0);
	for (i = 0; i < XN; i++)
		assert_int_equal(atomic_load(&X.owner[i]), 0);
	check_ok(X.isp);
	id_space_destroy(X.isp);
	pthread_cond_destroy(&X.cv);
	pthread_mutex_destroy(&X.lock);
}

/*
 * Refilled by extension: every thread needs K ids it keeps; the space
 * starts with one and the main thread extends it, a chunk at a time, only
 * while some thread is asleep in it.
 */
enum { EK = 16, ET = 4, ECHUNK = 5 };

static id_space_t *ext_isp;
static id_t ext_got[ET][EK];

static void *extend_user_main(void *arg)
{
	int t = (int)(intptr_t)arg;

	for (int k = 0; k < EK; k++)
		ext_got[t][k] = k % 2 ? id_allocff(ext_isp) : id_alloc(ext_isp);
	return NULL;
}

static void test_refilled_by_extension(void **state)
{
	pthread_t th[ET];
	static bool seen[ET * EK + ECHUNK];
	id_t next = 1;
	int i, k;

	(void)state;
	arm_watchdog(300);
	memset(seen, 0, sizeof(seen));
	ext_isp = id_space_create("extend", 0, 1);
	assert_non_null(ext_isp);
	for (i = 0; i < ET; i++)
		pthread_create(&th[i], NULL, extend_user_main, (void *)(intptr_t)i);
	while (next < ET * EK) {
		/* Extend only when the space is exhausted and someone waits. */
		while (nwaiters(ext_isp) == 0)
			pause_ms(1);
		assert_int_equal(id_space_extend(ext_isp, next, next + ECHUNK), 0);
		next += ECHUNK;
	}
	for (i = 0; i < ET; i++)
		pthread_join(th[i], NULL);
	alarm(0);
	assert_int_equal(ids_in_use(ext_isp), ET * EK);
	for (i = 0; i < ET; i++) {
		for (k = 0; k < EK; k++) {
			id_t id = ext_got[i][k];

			assert_true(id < next);
			assert_false(seen[id]);
			seen[id] = true;
			id_free(ext_isp, id);
		}
	}
	check_ok(ext_isp);
	id_space_destroy(ext_isp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_errors),
	    cmocka_unit_test(test_next_fit_sequence),
	    cmocka_unit_test(test_allocff_lowest),
	    cmocka_unit_test(test_specific),
	    cmocka_unit_test(test_range_edges),
	    cmocka_unit_test(test_extend),
	    cmocka_unit_test(test_bad_free_and_leak),
	    cmocka_unit_test(test_bad_free_aborts_by_default),
	    cmocka_unit_test(test_sleepers_woken),
	    cmocka_unit_test(test_exhausted_and_refilled),
	    cmocka_unit_test(test_refilled_by_extension),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
