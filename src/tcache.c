/*
 * Per-thread magazines for the quantum caches (see the theory statement in
 * qcache.c, section 2).
 *
 * Each thread has a table of entries indexed by the caches' small integer
 * ids; an entry holds the thread's loaded and previous magazines for one
 * cache and its operation counters.  The table is reached through one
 * initial-exec TLS pointer, so the fast path is a TLS load, an index, and
 * a pointer compare.
 *
 * All tables are on a registry (registry_lock) so that a purger can empty
 * the magazines of every thread (reaping, cache destruction) and counters
 * can be summed.  Ownership: only the owning thread changes its magazines,
 * except a purger, which first raises te_purge, issues membarrier() so that
 * the owner needs no fence of its own, and waits for te_busy to drop; the
 * owner backs off while te_purge is up.  A purger holds registry_lock and
 * no other lock while it waits.
 *
 * Lock order: registry_lock, then a cache's depot or slab lock, then the
 * arena lock.  Tables grow (under registry_lock) when a cache with a larger
 * id is first used; ids are recycled with a new generation, so a stale
 * entry is never mistaken for a new cache's.
 */
#include "qcache.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VMEM_QC_MAXID 65536 /* caches alive at once, all arenas together */

__thread vmem_tcache_t *vmem__tls_tc __attribute__((tls_model("initial-exec")));
bool vmem__tc_asym;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
/* The registry's head; not static: the root (root.c) gives debuggers its address. */
vmem_tcache_t *vmem__tc_registry;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static pthread_key_t tc_key;

static vmem_pool_t tc_pool =
    VMEM_POOL_INITIALIZER("vmem_tcache", sizeof(vmem_tcache_t), VMEM_META_CACHE);
vmem_pool_t vmem__mag_pool = VMEM_POOL_INITIALIZER("vmem_mag", sizeof(vmem_mag_t), VMEM_META_CACHE);

/* ---- cache ids ---------------------------------------------------------------- */

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_used[VMEM_QC_MAXID / 64];
static uint32_t id_gen;

/* A free id (UINT32_MAX if none) and a fresh generation for it. */
uint32_t vmem__qc_id_get(uint32_t *gen)
{
	uint32_t i, id = UINT32_MAX;

	pthread_mutex_lock(&id_lock);
	for (i = 0; i < VMEM_QC_MAXID / 64; i++) {
		if (~id_used[i] != 0) {
			int b = __builtin_ctzll(~id_used[i]);

			id_used[i] |= 1ULL << b;
			id = i * 64 + (uint32_t)b;
			break;
		}
	}
	*gen = ++id_gen;
	pthread_mutex_unlock(&id_lock);
	return id;
}

void vmem__qc_id_put(uint32_t id)
{
	pthread_mutex_lock(&id_lock);
	id_used[id / 64] &= ~(1ULL << (id % 64));
	pthread_mutex_unlock(&id_lock);
}

/* ---- membarrier ------------------------------------------------------------------ */

/* Make every running thread of this process execute a full fence. */
static void asym_fence(void)
{
	if (vmem__tc_asym && !VMEM_TSAN)
		syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	else
		atomic_thread_fence(memory_order_seq_cst);
}

static void tc_exit(void *arg);

static void tc_init_once(void)
{
	long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		vmem__tc_asym = true;
	pthread_key_create(&tc_key, tc_exit);
}

/* ---- tables ------------------------------------------------------------------------ */

static vmem_tcache_t *tc_create(void)
{
	vmem_tcache_t *tc = vmem__pool_get(&tc_pool);

	if (tc == NULL)
		return NULL;
	memset(tc, 0, sizeof(*tc));
	pthread_mutex_lock(&registry_lock);
	tc->tc_next = vmem__tc_registry;
	if (vmem__tc_registry != NULL)
		vmem__tc_registry->tc_prev = tc;
	vmem__tc_registry = tc;
	pthread_mutex_unlock(&registry_lock);
	pthread_setspecific(tc_key, tc);
	vmem__tls_tc = tc;
	return tc;
}

/* Grow tc's table to hold index id (registry_lock held). */
static int tc_grow_locked(vmem_tcache_t *tc, uint32_t id)
{
	uint32_t n = tc->tc_nentries ? tc->tc_nentries : 64;
	vmem_tc_entry_t *t;

	while (n <= id)
		n *= 2;
	t = vmem__meta_map((size_t)n * sizeof(*t), VMEM_META_CACHE);
	if (t == NULL)
		return ENOMEM;
	if (tc->tc_entry != NULL) {
		memcpy(t, tc->tc_entry, (size_t)tc->tc_nentries * sizeof(*t));
		vmem__meta_unmap(tc->tc_entry);
	}
	tc->tc_entry = t;
	tc->tc_nentries = n;
	return 0;
}

vmem_tc_entry_t *vmem__tc_entry_slow(vmem_qcache_t *qc)
{
	vmem_tcache_t *tc;
	vmem_tc_entry_t *e;
	vmem_mag_t *m1, *m2;

	pthread_once(&tc_once, tc_init_once);
	tc = vmem__tls_tc;
	if (tc == NULL && (tc = tc_create()) == NULL)
		return NULL;
	m1 = vmem__pool_get(&vmem__mag_pool);
	m2 = m1 != NULL ? vmem__pool_get(&vmem__mag_pool) : NULL;
	if (m2 == NULL) {
		if (m1 != NULL)
			vmem__pool_put(&vmem__mag_pool, m1);
		return NULL;
	}
	m1->mg_count = 0;
	m2->mg_count = 0;
	pthread_mutex_lock(&registry_lock);
	if (qc->qc_id >= tc->tc_nentries && tc_grow_locked(tc, qc->qc_id) != 0) {
		pthread_mutex_unlock(&registry_lock);
		vmem__pool_put(&vmem__mag_pool, m1);
		vmem__pool_put(&vmem__mag_pool, m2);
		return NULL;
	}
	e = &tc->tc_entry[qc->qc_id];
	memset(e, 0, sizeof(*e));
	e->te_loaded = m1;
	e->te_prev = m2;
	e->te_gen = qc->qc_gen;
	e->te_qc = qc; /* last: the entry is live once it names its cache */
	pthread_mutex_unlock(&registry_lock);
	return e;
}

/* Empty e's magazines back to the slabs (e is quiescent). */
static void drain_entry(vmem_qcache_t *qc, vmem_tc_entry_t *e)
{
	vmem_mag_t *mags[2] = {e->te_loaded, e->te_prev};

	for (int i = 0; i < 2; i++) {
		unsigned n = atomic_load_explicit(&mags[i]->mg_count, memory_order_relaxed);

		if (n != 0) {
			vmem__qc_return_rounds(qc, mags[i]->mg_round, n);
			atomic_store_explicit(&mags[i]->mg_count, 0, memory_order_relaxed);
		}
	}
}

/* Drop e: fold its counters into qc and free its magazines (quiescent). */
static void forget_entry(vmem_qcache_t *qc, vmem_tc_entry_t *e)
{
	pthread_mutex_lock(&qc->qc_depot_lock);
	qc->qc_dead_alloc += atomic_load(&e->te_alloc);
	qc->qc_dead_free += atomic_load(&e->te_free);
	qc->qc_dead_alloc_miss += atomic_load(&e->te_alloc_miss);
	qc->qc_dead_free_miss += atomic_load(&e->te_free_miss);
	pthread_mutex_unlock(&qc->qc_depot_lock);
	vmem__pool_put(&vmem__mag_pool, e->te_loaded);
	vmem__pool_put(&vmem__mag_pool, e->te_prev);
	e->te_loaded = e->te_prev = NULL;
	e->te_qc = NULL;
}

static inline vmem_tc_entry_t *entry_of(vmem_tcache_t *tc, const vmem_qcache_t *qc)
{
	vmem_tc_entry_t *e;

	if (qc->qc_id >= tc->tc_nentries)
		return NULL;
	e = &tc->tc_entry[qc->qc_id];
	return e->te_qc == qc && e->te_gen == qc->qc_gen ? e : NULL;
}

void vmem__tc_purge(vmem_qcache_t *qc, bool forget)
{
	vmem_tcache_t *tc;
	bool any = false;

	pthread_once(&tc_once, tc_init_once);
	pthread_mutex_lock(&registry_lock);
	for (tc = vmem__tc_registry; tc != NULL; tc = tc->tc_next) {
		vmem_tc_entry_t *e = entry_of(tc, qc);

		if (e != NULL) {
			atomic_store(&e->te_purge, 1);
			any = true;
		}
	}
	if (any) {
		asym_fence();
		for (tc = vmem__tc_registry; tc != NULL; tc = tc->tc_next) {
			vmem_tc_entry_t *e = entry_of(tc, qc);

			if (e == NULL)
				continue;
			while (atomic_load_explicit(&e->te_busy, memory_order_acquire) != 0)
				sched_yield();
			drain_entry(qc, e);
			if (forget)
				forget_entry(qc, e);
			atomic_store_explicit(&e->te_purge, 0, memory_order_release);
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

void vmem__tc_sum(vmem_qcache_t *qc, uint64_t *alloc, uint64_t *free, uint64_t *alloc_miss,
                  uint64_t *free_miss, uint64_t *rounds)
{
	vmem_tcache_t *tc;

	*alloc = *free = *alloc_miss = *free_miss = *rounds = 0;
	pthread_mutex_lock(&registry_lock);
	for (tc = vmem__tc_registry; tc != NULL; tc = tc->tc_next) {
		vmem_tc_entry_t *e = entry_of(tc, qc);

		if (e == NULL)
			continue;
		*alloc += atomic_load_explicit(&e->te_alloc, memory_order_relaxed);
		*free += atomic_load_explicit(&e->te_free, memory_order_relaxed);
		*alloc_miss += atomic_load_explicit(&e->te_alloc_miss, memory_order_relaxed);
		*free_miss += atomic_load_explicit(&e->te_free_miss, memory_order_relaxed);
		*rounds += atomic_load_explicit(&e->te_loaded->mg_count, memory_order_relaxed);
		*rounds += atomic_load_explicit(&e->te_prev->mg_count, memory_order_relaxed);
	}
	pthread_mutex_unlock(&registry_lock);
}

void vmem__tc_sum_all(void (*fn)(const vmem_qcache_t *qc, uint32_t gen, const uint64_t sums[4],
                                 void *arg),
                      void *arg)
{
	vmem_tcache_t *tc;

	pthread_mutex_lock(&registry_lock);
	for (tc = vmem__tc_registry; tc != NULL; tc = tc->tc_next) {
		for (uint32_t i = 0; i < tc->tc_nentries; i++) {
			vmem_tc_entry_t *e = &tc->tc_entry[i];
			uint64_t sums[4];

			if (e->te_qc == NULL)
				continue;
			sums[0] = atomic_load_explicit(&e->te_alloc, memory_order_relaxed);
			sums[1] = atomic_load_explicit(&e->te_free, memory_order_relaxed);
			sums[2] = atomic_load_explicit(&e->te_alloc_miss, memory_order_relaxed);
			sums[3] = atomic_load_explicit(&e->te_free_miss, memory_order_relaxed);
			fn(e->te_qc, e->te_gen, sums, arg);
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

/* Thread exit: give every magazine back and leave the registry. */
static void tc_exit(void *arg)
{
	vmem_tcache_t *tc = arg;
	uint32_t i;

	pthread_mutex_lock(&registry_lock);
	for (i = 0; i < tc->tc_nentries; i++) {
		vmem_tc_entry_t *e = &tc->tc_entry[i];

		if (e->te_qc != NULL) {
			drain_entry(e->te_qc, e);
			forget_entry(e->te_qc, e);
		}
	}
	if (tc->tc_prev != NULL)
		tc->tc_prev->tc_next = tc->tc_next;
	else
		vmem__tc_registry = tc->tc_next;
	if (tc->tc_next != NULL)
		tc->tc_next->tc_prev = tc->tc_prev;
	pthread_mutex_unlock(&registry_lock);
	vmem__tls_tc = NULL;
	if (tc->tc_entry != NULL)
		vmem__meta_unmap(tc->tc_entry);
	vmem__pool_put(&tc_pool, tc);
}
