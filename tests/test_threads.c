/*
 * Concurrency: VM_SLEEP allocations that wait for frees in their own arena,
 * in their source and in a grandparent, and a timed stress run of threads
 * sharing an arena tree.  A watchdog fails the test instead of letting a
 * lost wake-up hang CI.  Meant to run under TSan as well.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define PG ((size_t)4096)

static void watchdog(int sig)
{
	static const char msg[] = "test_threads: watchdog fired (a sleeper was never woken?)\n";

	(void)sig;
	write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

static void arm_watchdog(unsigned seconds)
{
	signal(SIGALRM, watchdog);
	alarm(seconds);
}

typedef struct sleeper {
	vmem_t *vmp;
	size_t size;
	int flags;
	_Atomic(uintptr_t) got;
} sleeper_t;

static void *sleeper_main(void *arg)
{
	sleeper_t *s = arg;

	atomic_store(&s->got, (uintptr_t)vmem_alloc(s->vmp, s->size, s->flags));
	return NULL;
}

static void msleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Wait until `n` threads sleep in vmp (observed through the wait counter). */
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

/* Threads sleeping in `wait_in` are served one by one by frees in `free_in`. */
static void sleepers_served_by(vmem_t *alloc_in, vmem_t *wait_in, vmem_t *free_in, void **held,
                               int n)
{
	enum { T = 4 };
	pthread_t th[T];
	sleeper_t s[T];
	int i, done;

	assert_true(n >= T);
	for (i = 0; i < T; i++) {
		s[i] = (sleeper_t){alloc_in, PG, VM_SLEEP, 0};
		pthread_create(&th[i], NULL, sleeper_main, &s[i]);
	}
	wait_for_sleepers(wait_in, T);
	for (i = 0; i < T; i++) {
		vmem_free(free_in, held[i], PG);
		/* Exactly one more thread gets through per page freed. */
		do {
			done = 0;
			for (int j = 0; j < T; j++)
				done += atomic_load(&s[j].got) != 0;
			msleep(1);
		} while (done < i + 1);
		msleep(5);
		done = 0;
		for (int j = 0; j < T; j++)
			done += atomic_load(&s[j].got) != 0;
		assert_int_equal(done, i + 1);
	}
	for (i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		vmem_free(alloc_in, (void *)atomic_load(&s[i].got), PG);
	}
}

static void test_sleep_own_arena(void **state)
{
	vmem_t *vmp =
	    vmem_create("sleep", (void *)0x10000, 4 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	void *held[4];
	int i;

	(void)state;
	arm_watchdog(60);
	for (i = 0; i < 4; i++)
		held[i] = vmem_alloc(vmp, PG, VM_SLEEP);
	sleepers_served_by(vmp, vmp, vmp, held, 4);
	assert_true(vmp->vm_ctr.vc_wait >= 4);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
	alarm(0);
}

static void test_sleep_woken_by_source(void **state)
{
	vmem_t *src =
	    vmem_create("src", (void *)0x10000, 4 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child = vmem_create("child", NULL, 0, PG, vmem_alloc, vmem_free, src, 0, VM_SLEEP);
	void *held[4];
	int i;

	(void)state;
	arm_watchdog(60);
	for (i = 0; i < 4; i++)
		held[i] = vmem_alloc(src, PG, VM_SLEEP);
	/* The child's sleepers wait in the child; frees happen in the source. */
	sleepers_served_by(child, child, src, held, 4);
	assert_int_equal(vmem_size(src, VMEM_ALLOC), 0);
	assert_arena_ok(child);
	assert_arena_ok(src);
	vmem_destroy(child);
	vmem_destroy(src);
	alarm(0);
}

static void test_sleep_woken_by_grandparent(void **state)
{
	vmem_t *g =
	    vmem_create("grand", (void *)0x10000, 4 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *p = vmem_create("parent", NULL, 0, PG, vmem_alloc, vmem_free, g, 0, VM_SLEEP);
	vmem_t *c = vmem_create("kid", NULL, 0, PG, vmem_alloc, vmem_free, p, 0, VM_SLEEP);
	void *held[4];
	int i;

	(void)state;
	arm_watchdog(60);
	for (i = 0; i < 4; i++)
		held[i] = vmem_alloc(g, PG, VM_SLEEP);
	sleepers_served_by(c, c, g, held, 4);
	assert_int_equal(vmem_size(g, VMEM_ALLOC), 0);
	vmem_destroy(c);
	vmem_destroy(p);
	vmem_destroy(g);
	alarm(0);
}

static void test_nosleep_never_blocks(void **state)
{
	vmem_t *vmp =
	    vmem_create("nosleep", (void *)0x10000, PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	void *a = vmem_alloc(vmp, PG, VM_SLEEP);

	(void)state;
	arm_watchdog(10);
	assert_null(vmem_alloc(vmp, PG, VM_NOSLEEP));
	assert_null(vmem_xalloc(vmp, PG, 0, 0, 0, NULL, NULL, VM_NOSLEEP | VM_BESTFIT));
	assert_null(vmem_alloc(vmp, PG, VM_SLEEP | VM_ABORT));
	assert_int_equal(vmp->vm_ctr.vc_wait, 0);
	assert_int_equal(vmp->vm_ctr.vc_fail, 3);
	vmem_free(vmp, a, PG);
	vmem_destroy(vmp);
	alarm(0);
}

/* ---- stress ------------------------------------------------------------------- */

typedef struct stress {
	vmem_t *arena[3];
	atomic_bool stop;
	_Atomic uint64_t ops;
	_Atomic unsigned seed;
} stress_t;

static void *stress_main(void *arg)
{
	stress_t *st = arg;
	unsigned seed = atomic_fetch_add(&st->seed, 7919);
	static const int policies[] = {0, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT, VM_ENDALLOC};

	while (!atomic_load(&st->stop)) {
		/*
		 * Hold at most one segment, and never while asking for another, so
		 * that every sleeper can be satisfied: no hold-and-wait deadlock.
		 */
		vmem_t *vmp = st->arena[rand_r(&seed) % 3];
		size_t size = PG * (1 + rand_r(&seed) % 24);
		int flags = VM_SLEEP | policies[rand_r(&seed) % 5];
		void *p;
		bool x = rand_r(&seed) % 3 == 0;

		if (x)
			p = vmem_xalloc(vmp, size, PG << (rand_r(&seed) % 4), 0, 0, NULL, NULL,
			                flags);
		else
			p = vmem_alloc(vmp, size, flags);
		assert_non_null(p);
		if (rand_r(&seed) % 8 == 0)
			sched_yield();
		if (x)
			vmem_xfree(vmp, p, size);
		else
			vmem_free(vmp, p, size);
		atomic_fetch_add(&st->ops, 1);
	}
	return NULL;
}

static void test_stress_tree(void **state)
{
	enum { T = 6 };
	stress_t st;
	pthread_t th[T];
	int i;
	uint64_t waits;

	(void)state;
	arm_watchdog(120);
	memset(&st, 0, sizeof(st));
	st.seed = 1;
	/* 64 pages at the root: six threads asking up to 24 pages each must sleep. */
	st.arena[0] =
	    vmem_create("root", (void *)0x100000, 64 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	st.arena[1] =
	    vmem_create("mid", NULL, 0, PG, vmem_alloc, vmem_free, st.arena[0], 0, VM_SLEEP);
	st.arena[2] =
	    vmem_create("leaf", NULL, 0, PG, vmem_alloc, vmem_free, st.arena[1], 0, VM_SLEEP);
	for (i = 0; i < T; i++)
		pthread_create(&th[i], NULL, stress_main, &st);
	msleep(1500);
	atomic_store(&st.stop, true);
	for (i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	waits =
	    st.arena[0]->vm_ctr.vc_wait + st.arena[1]->vm_ctr.vc_wait + st.arena[2]->vm_ctr.vc_wait;
	fprintf(stderr, "stress: %llu alloc/free pairs, %llu sleeps\n",
	        (unsigned long long)atomic_load(&st.ops), (unsigned long long)waits);
	assert_true(atomic_load(&st.ops) > 100);
	vmem_qcache_reap(st.arena[1]);
	for (i = 2; i >= 0; i--) {
		assert_int_equal(vmem_size(st.arena[i], VMEM_ALLOC), 0);
		assert_arena_ok(st.arena[i]);
	}
	/* Every imported span went back: the root is whole. */
	assert_int_equal(vmem_size(st.arena[1], VMEM_ALLOC | VMEM_FREE), 0);
	assert_int_equal(vmem_size(st.arena[2], VMEM_ALLOC | VMEM_FREE), 0);
	assert_int_equal(vmem_size(st.arena[0], VMEM_FREE), 64 * PG);
	vmem_destroy(st.arena[2]);
	vmem_destroy(st.arena[1]);
	vmem_destroy(st.arena[0]);
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sleep_own_arena),
	    cmocka_unit_test(test_sleep_woken_by_source),
	    cmocka_unit_test(test_sleep_woken_by_grandparent),
	    cmocka_unit_test(test_nosleep_never_blocks),
	    cmocka_unit_test(test_stress_tree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
