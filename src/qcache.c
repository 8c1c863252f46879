/*
 * Quantum caches.
 *
 * Theory statement.
 *
 * 1. Purpose.  Most allocations from an arena are small multiples of its
 * quantum.  A quantum cache serves one such size (i * quantum, i = 1 ...
 * qcache_max / quantum, at most VMEM_NQCACHE_MAX = 16 caches per arena, the
 * illumos cap) without taking the arena lock, and so that threads on
 * different CPUs never touch the same cache line in the common case.
 * vmem_alloc()/vmem_free() of those sizes go to the cache;
 * vmem_xalloc()/vmem_xfree() never do (as in illumos).
 *
 * 2. Layers, fastest first.
 *   a. Per-thread magazines.  Each thread has, for each cache it uses, a
 *      loaded and a previous magazine (arrays of VMEM_MAG_ROUNDS objects).
 *      Allocation pops from the loaded magazine, else swaps in the previous
 *      one if it has rounds; free pushes, else swaps in the previous one if
 *      it has room.  This hits in the common case whatever the pattern of
 *      allocs and frees, touches only the thread's own memory and takes no
 *      lock (tcache.c; the inline fast path is in qcache.h).
 *   b. The depot: lists of full and empty magazines under qc_depot_lock.
 *      A thread whose magazines are both empty trades its empty previous
 *      magazine for a full one, and vice versa; so the depot lock is taken
 *      once per VMEM_MAG_ROUNDS operations at most.
 *   c. Slabs: qc_slabsize-aligned segments allocated from the arena (as
 *      xalloc with VMEM_SEGF_SLAB), cut into objects, with a 64-bit free map
 *      (a slab holds at most 64 objects: its size is the power of two above
 *      3 * qcache_max, as illumos chooses, so that every cache of an arena
 *      imports equal slabs and five 3-quantum objects fill 15/16 of a
 *      16-quantum slab).  A hash finds the slab of an object on free.
 *   d. The arena itself, when no slab can be had (the arena is too
 *      fragmented for a slab, or nearly full): the object is allocated
 *      directly (VMEM_SEGF_QDIRECT) and freed directly.  So the cache can
 *      serve whatever the arena could.
 *
 * 3. Per-thread rather than per-CPU.  The paper's magazines are per CPU,
 * protected by a per-CPU lock.  In userspace a per-CPU layer needs either a
 * lock (an atomic read-modify-write on every operation, ~20 cycles, more
 * than the rest of the fast path together) or restartable sequences in
 * assembly; per-thread magazines need neither: the owner is the only writer.
 * The cost is that a magazine can sit in an idle thread, which the purge
 * protocol (4) and thread-exit flushing address.  BENCHMARKS.md has the
 * figures (W1, W6).
 *
 * 4. Purging another thread's magazines.  Reaping and destruction must
 * empty magazines that belong to other threads.  The owner brackets every
 * magazine operation with te_busy = 1 ... te_busy = 0 and checks te_purge
 * after raising te_busy; a purger raises te_purge, runs
 * membarrier(PRIVATE_EXPEDITED) (which executes a full fence on every CPU
 * running one of our threads, so the owner's plain store and load need no
 * fence of their own), then waits for te_busy to drop and empties the
 * magazines.  Either the owner sees te_purge and backs off to the slow
 * path, or the purger sees te_busy and waits.  Without membarrier (or
 * under TSan) the owner issues the fence itself.
 *
 * 5. Working set and reaping.  The depot remembers the lowest number of
 * full (and empty) magazines it held during the current interval; those
 * were not needed, so a periodic reap (triggered from the depot's slow
 * paths every VMEM_QC_REAP_NS) gives them back: rounds to their slabs,
 * wholly free slabs to the arena.  vmem_qcache_reap() (and an arena about
 * to fail) reaps everything: every thread's magazines, the depot, and
 * every empty slab.
 *
 * 6. No false exhaustion.  An arena allocation that finds no space first
 * imports, then reaps the quantum caches of the arena and of the arenas
 * importing from it, and retries before it fails or sleeps.  While an
 * arena has sleepers (vm_sleepers), frees into its caches bypass the
 * magazines and go to the slabs, giving wholly free slabs back at once, so
 * that a sleeper is woken by cached frees too.
 *
 * 7. Accounting.  The arena's own counters see slabs and direct objects as
 * segments (vk_mem_inuse counts a slab whole, as illumos does).
 * vmem_size() is truthful about callers: VMEM_ALLOC counts the objects
 * callers hold, and objects in magazines and slabs count as free.
 * vmem_walk() empties the magazines first and then reports, inside each
 * slab, the objects callers hold as ALLOC segments and the rest as FREE.
 *
 * 8. Locking.  Order: the tcache registry lock, a cache's depot lock or slab
 * lock (never both), the arena lock, the arena list lock.  The slab layer
 * never calls into the arena while holding the slab lock.  The arena never
 * calls into a cache while holding its own lock.
 */
#include "qcache.h"

#include "../debug/debug.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define VMEM_QC_REAP_NS   (5ULL * 1000000000ULL) /* working-set interval */
#define VMEM_QC_FILL      16                     /* objects moved per slab-layer visit */
#define VMEM_QC_KEEP_SLAB 1                      /* empty slabs kept per cache between reaps */

extern vmem_pool_t vmem__mag_pool;
static vmem_pool_t qc_pool =
    VMEM_POOL_INITIALIZER("vmem_qcache", sizeof(vmem_qcache_t), VMEM_META_CACHE);
static vmem_pool_t slab_pool =
    VMEM_POOL_INITIALIZER("vmem_slab", sizeof(vmem_slab_t), VMEM_META_CACHE);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- slab hash (qc_slab_lock) ------------------------------------------------- */

static inline size_t slab_bucket(const vmem_qcache_t *qc, uintptr_t addr)
{
	uint64_t k = (uint64_t)(addr >> qc->qc_slabshift) * 0x9E3779B97F4A7C15ULL;

	return (size_t)(k >> (64 - vmem__highbit(qc->qc_hash_size - 1)));
}

/* The slab containing addr, or NULL. */
static vmem_slab_t *slab_lookup_locked(const vmem_qcache_t *qc, uintptr_t addr)
{
	uintptr_t base = addr & ~(uintptr_t)(qc->qc_slabsize - 1);
	vmem_slab_t *sl;

	if (qc->qc_hash == NULL)
		return NULL;
	for (sl = qc->qc_hash[slab_bucket(qc, base)]; sl != NULL; sl = sl->sl_hnext) {
		if (sl->sl_base == base)
			return sl;
	}
	return NULL;
}

/* Keep the hash at <= 1 slab per bucket; false if no memory for it. */
static bool slab_hash_fit_locked(vmem_qcache_t *qc)
{
	size_t nsize = qc->qc_hash_size ? qc->qc_hash_size : 16, i;
	vmem_slab_t **nt, **old = qc->qc_hash;

	if (qc->qc_hash != NULL && qc->qc_nslabs < qc->qc_hash_size)
		return true;
	while (nsize <= qc->qc_nslabs)
		nsize *= 2;
	nt = vmem__meta_map(nsize * sizeof(*nt), VMEM_META_CACHE);
	if (nt == NULL)
		return qc->qc_hash != NULL; /* longer chains, still correct */
	qc->qc_hash = nt;
	for (i = 0; old != NULL && i < qc->qc_hash_size; i++) {
		vmem_slab_t *sl = old[i], *next;

		for (; sl != NULL; sl = next) {
			size_t b;

			next = sl->sl_hnext;
			qc->qc_hash_size = nsize; /* slab_bucket uses the new size */
			b = slab_bucket(qc, sl->sl_base);
			sl->sl_hnext = nt[b];
			nt[b] = sl;
		}
	}
	qc->qc_hash_size = nsize;
	if (old != NULL)
		vmem__meta_unmap(old);
	return true;
}

static void slab_hash_remove_locked(vmem_qcache_t *qc, vmem_slab_t *sl)
{
	vmem_slab_t **pp = &qc->qc_hash[slab_bucket(qc, sl->sl_base)];

	while (*pp != sl)
		pp = &(*pp)->sl_hnext;
	*pp = sl->sl_hnext;
}

/* ---- slab lists (qc_slab_lock) -------------------------------------------------- */

static void slab_unlist(vmem_qcache_t *qc, vmem_slab_t *sl)
{
	if (sl->sl_prev != NULL)
		sl->sl_prev->sl_next = sl->sl_next;
	else
		qc->qc_slabs[sl->sl_list] = sl->sl_next;
	if (sl->sl_next != NULL)
		sl->sl_next->sl_prev = sl->sl_prev;
}

static void slab_list(vmem_qcache_t *qc, vmem_slab_t *sl)
{
	int l = sl->sl_nfree == 0             ? QC_SLAB_FULL
	        : sl->sl_nfree == qc->qc_nobj ? QC_SLAB_EMPTY
	                                      : QC_SLAB_PARTIAL;

	sl->sl_list = (uint8_t)l;
	sl->sl_prev = NULL;
	sl->sl_next = qc->qc_slabs[l];
	if (sl->sl_next != NULL)
		sl->sl_next->sl_prev = sl;
	qc->qc_slabs[l] = sl;
}

/* Take up to `want` objects from partial, then empty slabs. */
static unsigned slab_take_locked(vmem_qcache_t *qc, uintptr_t *out, unsigned want)
{
	unsigned got = 0;

	while (got < want) {
		vmem_slab_t *sl = qc->qc_slabs[QC_SLAB_PARTIAL];

		if (sl == NULL)
			sl = qc->qc_slabs[QC_SLAB_EMPTY];
		if (sl == NULL)
			break;
		slab_unlist(qc, sl);
		while (got < want && sl->sl_freemap != 0) {
			int i = __builtin_ctzll(sl->sl_freemap);

			sl->sl_freemap &= sl->sl_freemap - 1;
			sl->sl_nfree--;
			out[got++] = sl->sl_base + (uintptr_t)i * qc->qc_objsize;
		}
		slab_list(qc, sl);
	}
	qc->qc_slab_out += got;
	return got;
}

/* Put addr back in slab sl; false if it is not an allocated object of sl. */
static bool slab_give_locked(vmem_qcache_t *qc, vmem_slab_t *sl, uintptr_t addr)
{
	uintptr_t off = addr - sl->sl_base;
	uint64_t bit;

	if (off % qc->qc_objsize != 0 || off / qc->qc_objsize >= qc->qc_nobj)
		return false;
	bit = 1ULL << (off / qc->qc_objsize);
	if (sl->sl_freemap & bit)
		return false;
	slab_unlist(qc, sl);
	sl->sl_freemap |= bit;
	sl->sl_nfree++;
	slab_list(qc, sl);
	qc->qc_slab_out--;
	return true;
}

/* ---- slabs and the arena ---------------------------------------------------------- */

/* Get a new slab from the arena, without sleeping; false if none. */
static bool slab_create(vmem_qcache_t *qc, int vmflag)
{
	vmem_slab_t *sl = vmem__pool_get(&slab_pool);
	uintptr_t base;

	if (sl == NULL)
		return false;
	if (vmem__alloc_seg(qc->qc_arena, qc->qc_slabsize, qc->qc_slabsize,
	                    (vmflag & VM_KMFLAGS & ~VM_PANIC) | VM_NOSLEEP | VM_ABORT,
	                    VMEM_SEGF_SLAB, &base) != 0) {
		vmem__pool_put(&slab_pool, sl);
		return false;
	}
	memset(sl, 0, sizeof(*sl));
	if (vmem_debug)
		sl->sl_audit = vmem__dbg_slab_audit_new(qc->qc_nobj);
	sl->sl_base = base;
	sl->sl_nfree = (uint16_t)qc->qc_nobj;
	sl->sl_freemap = qc->qc_nobj == 64 ? ~0ULL : (1ULL << qc->qc_nobj) - 1;
	pthread_mutex_lock(&qc->qc_slab_lock);
	qc->qc_nslabs++;
	if (!slab_hash_fit_locked(qc)) {
		qc->qc_nslabs--;
		pthread_mutex_unlock(&qc->qc_slab_lock);
		vmem__free_seg(qc->qc_arena, base, qc->qc_slabsize);
		if (vmem_debug)
			vmem__dbg_slab_audit_free(sl->sl_audit);
		vmem__pool_put(&slab_pool, sl);
		return false;
	}
	sl->sl_hnext = qc->qc_hash[slab_bucket(qc, base)];
	qc->qc_hash[slab_bucket(qc, base)] = sl;
	slab_list(qc, sl);
	qc->qc_slab_create++;
	pthread_mutex_unlock(&qc->qc_slab_lock);
	return true;
}

/*
 * Give wholly free slabs beyond `keep` back to the arena.  Returns how many
 * went back.
 */
static unsigned slabs_release(vmem_qcache_t *qc, unsigned keep)
{
	unsigned released = 0;

	for (;;) {
		vmem_slab_t *sl;
		unsigned nempty = 0;

		pthread_mutex_lock(&qc->qc_slab_lock);
		for (sl = qc->qc_slabs[QC_SLAB_EMPTY]; sl != NULL && nempty <= keep;
		     sl = sl->sl_next)
			nempty++;
		sl = qc->qc_slabs[QC_SLAB_EMPTY];
		if (nempty <= keep || sl == NULL) {
			pthread_mutex_unlock(&qc->qc_slab_lock);
			return released;
		}
		slab_unlist(qc, sl);
		slab_hash_remove_locked(qc, sl);
		qc->qc_nslabs--;
		qc->qc_slab_destroy++;
		pthread_mutex_unlock(&qc->qc_slab_lock);
		vmem__free_seg(qc->qc_arena, sl->sl_base, qc->qc_slabsize);
		if (vmem_debug)
			vmem__dbg_slab_audit_free(sl->sl_audit);
		vmem__pool_put(&slab_pool, sl);
		released++;
	}
}

/*
 * An object that belongs to no slab reached the slab layer: it was
 * allocated directly from the arena (VMEM_SEGF_QDIRECT), or it is a bad
 * free that the fast path could not see.  The arena sorts it out.
 */
static void free_foreign(vmem_qcache_t *qc, uintptr_t addr)
{
	vmem__free_cached_object(qc->qc_arena, addr, qc->qc_objsize, qc);
}

void vmem__qc_return_rounds(vmem_qcache_t *qc, const uintptr_t *rounds, unsigned n)
{
	uintptr_t foreign[VMEM_MAG_ROUNDS];
	unsigned nf = 0, i;

	pthread_mutex_lock(&qc->qc_slab_lock);
	for (i = 0; i < n; i++) {
		vmem_slab_t *sl = slab_lookup_locked(qc, rounds[i]);

		if (sl == NULL || !slab_give_locked(qc, sl, rounds[i])) {
			if (nf < VMEM_MAG_ROUNDS)
				foreign[nf++] = rounds[i];
		}
	}
	pthread_mutex_unlock(&qc->qc_slab_lock);
	for (i = 0; i < nf; i++)
		free_foreign(qc, foreign[i]);
}

/* ---- the depot ------------------------------------------------------------------------ */

static void depot_push(vmem_qcache_t *qc, vmem_mag_t **list, uint64_t *count, vmem_mag_t *m)
{
	(void)qc;
	m->mg_next = *list;
	*list = m;
	(*count)++;
}

static vmem_mag_t *depot_pop(vmem_mag_t **list, uint64_t *count, uint64_t *minp)
{
	vmem_mag_t *m = *list;

	if (m == NULL)
		return NULL;
	*list = m->mg_next;
	if (--*count < *minp)
		*minp = *count;
	return m;
}

static void depot_lock(vmem_qcache_t *qc)
{
	if (pthread_mutex_trylock(&qc->qc_depot_lock) != 0) {
		pthread_mutex_lock(&qc->qc_depot_lock);
		qc->qc_depot_contention++;
	}
}

/* Periodically give back what the depot did not need (not busy, no locks). */
static void maybe_reap_working_set(vmem_qcache_t *qc)
{
	uint64_t now = now_ns();

	if (now - atomic_load_explicit((_Atomic uint64_t *)&qc->qc_reap_ns, memory_order_relaxed) <
	    VMEM_QC_REAP_NS)
		return;
	atomic_store_explicit((_Atomic uint64_t *)&qc->qc_reap_ns, now, memory_order_relaxed);
	(void)vmem__qc_reap_one(qc, false);
}

/* ---- slow paths ------------------------------------------------------------------------- */

/*
 * Allocation that the two magazines could not serve.  Called busy
 * (entered) when `entered`; leaves before any blocking work.
 */
int vmem__qc_alloc_slow(vmem_qcache_t *qc, vmem_tc_entry_t *e, bool entered, int vmflag,
                        uintptr_t *addrp)
{
	uintptr_t batch[VMEM_QC_FILL];
	unsigned got;

	if (entered) {
		vmem_mag_t *full;

		depot_lock(qc);
		full = depot_pop(&qc->qc_full, &qc->qc_nfull, &qc->qc_min_full);
		if (full != NULL) {
			uint32_t n;

			depot_push(qc, &qc->qc_empty, &qc->qc_nempty, e->te_prev);
			qc->qc_depot_alloc++;
			pthread_mutex_unlock(&qc->qc_depot_lock);
			e->te_prev = e->te_loaded;
			e->te_loaded = full;
			n = atomic_load_explicit(&full->mg_count, memory_order_relaxed) - 1;
			*addrp = full->mg_round[n];
			atomic_store_explicit(&full->mg_count, n, memory_order_relaxed);
			vmem__tc_count(&e->te_alloc);
			vmem__tc_count(&e->te_alloc_miss);
			vmem__tc_leave(e);
			maybe_reap_working_set(qc);
			return 0;
		}
		pthread_mutex_unlock(&qc->qc_depot_lock);
		vmem__tc_count(&e->te_alloc);
		vmem__tc_count(&e->te_alloc_miss);
		vmem__tc_leave(e);
	}

	/* The slab layer: a batch, to refill the loaded magazine. */
	pthread_mutex_lock(&qc->qc_slab_lock);
	got = slab_take_locked(qc, batch, e != NULL ? VMEM_QC_FILL : 1);
	pthread_mutex_unlock(&qc->qc_slab_lock);
	if (got == 0 && slab_create(qc, vmflag)) {
		pthread_mutex_lock(&qc->qc_slab_lock);
		got = slab_take_locked(qc, batch, e != NULL ? VMEM_QC_FILL : 1);
		pthread_mutex_unlock(&qc->qc_slab_lock);
	}
	if (got == 0) {
		/* No slab: straight from the arena (may reap, import, sleep). */
		int err = vmem__alloc_seg(qc->qc_arena, qc->qc_objsize, 0, vmflag,
		                          VMEM_SEGF_QDIRECT, addrp);

		if (err == 0) {
			pthread_mutex_lock(&qc->qc_slab_lock);
			qc->qc_direct++;
			qc->qc_direct_out++;
			pthread_mutex_unlock(&qc->qc_slab_lock);
		}
		return err;
	}
	*addrp = batch[--got];
	if (got > 0 && e != NULL && vmem__tc_enter(e)) {
		vmem_mag_t *m = e->te_loaded;
		uint32_t n = atomic_load_explicit(&m->mg_count, memory_order_relaxed);

		while (got > 0 && n < VMEM_MAG_ROUNDS)
			m->mg_round[n++] = batch[--got];
		atomic_store_explicit(&m->mg_count, n, memory_order_relaxed);
		vmem__tc_leave(e);
	}
	if (got > 0)
		vmem__qc_return_rounds(qc, batch, got);
	return 0;
}

/*
 * A free that the two magazines could not take.  Called busy when
 * `entered`; `bypass` sends the object straight to its slab.
 */
void vmem__qc_free_slow(vmem_qcache_t *qc, vmem_tc_entry_t *e, bool entered, bool bypass,
                        uintptr_t addr)
{
	if (entered && !bypass) {
		vmem_mag_t *empty;

		depot_lock(qc);
		empty = depot_pop(&qc->qc_empty, &qc->qc_nempty, &qc->qc_min_empty);
		pthread_mutex_unlock(&qc->qc_depot_lock);
		if (empty == NULL) {
			empty = vmem__pool_get(&vmem__mag_pool);
			if (empty != NULL)
				atomic_store_explicit(&empty->mg_count, 0, memory_order_relaxed);
		}
		if (empty != NULL) {
			depot_lock(qc);
			depot_push(qc, &qc->qc_full, &qc->qc_nfull, e->te_prev);
			qc->qc_depot_free++;
			pthread_mutex_unlock(&qc->qc_depot_lock);
			e->te_prev = e->te_loaded;
			e->te_loaded = empty;
			empty->mg_round[0] = addr;
			atomic_store_explicit(&empty->mg_count, 1, memory_order_relaxed);
			vmem__tc_count(&e->te_free);
			vmem__tc_count(&e->te_free_miss);
			vmem__tc_leave(e);
			maybe_reap_working_set(qc);
			return;
		}
	}
	if (entered) {
		vmem__tc_count(&e->te_free);
		vmem__tc_count(&e->te_free_miss);
		vmem__tc_leave(e);
	}
	vmem__qc_return_rounds(qc, &addr, 1);
	if (bypass)
		(void)slabs_release(qc, 0);
}

/* ---- the debug library's paths ---------------------------------------------------------- */

/*
 * Operations that no thread entry counts (the debug library has no
 * magazines) go to the cache's shared counters, under the depot lock.
 */
static void count_shared(vmem_qcache_t *qc, uint64_t *counter)
{
	pthread_mutex_lock(&qc->qc_depot_lock);
	(*counter)++;
	pthread_mutex_unlock(&qc->qc_depot_lock);
}

/* One object from the slabs, with its slab and index (qc_slab_lock held). */
static bool slab_take_one_locked(vmem_qcache_t *qc, uintptr_t *addrp, vmem_slab_t **slp,
                                 unsigned *objp)
{
	if (slab_take_locked(qc, addrp, 1) == 0)
		return false;
	*slp = slab_lookup_locked(qc, *addrp);
	*objp = (unsigned)((*addrp - (*slp)->sl_base) / qc->qc_objsize);
	return true;
}

/* Allocation in the debug library: straight to the slabs, audited. */
int vmem__qc_alloc_debug(vmem_qcache_t *qc, size_t size, int vmflag, uintptr_t *addrp)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		vmem_slab_t *sl;
		unsigned obj;

		pthread_mutex_lock(&qc->qc_slab_lock);
		if (slab_take_one_locked(qc, addrp, &sl, &obj)) {
			if (sl->sl_audit != NULL)
				vmem__dbg_qc_on_alloc(qc, sl->sl_audit, obj, *addrp, size);
			pthread_mutex_unlock(&qc->qc_slab_lock);
			count_shared(qc, &qc->qc_dead_alloc);
			return 0;
		}
		pthread_mutex_unlock(&qc->qc_slab_lock);
		if (attempt == 0 && !slab_create(qc, vmflag))
			break;
	}
	return vmem__qc_alloc_slow(qc, NULL, false, vmflag, addrp);
}

/*
 * What a free of addr with `size` is, addr being in slab sl of qc and not
 * a good free: a free in the slab's unused tail, an interior free, a
 * double free or a wrong size (the caller's size of the object, which the
 * audit keeps, against the size given).  qc_slab_lock held.
 */
static void diagnose_locked(vmem_qcache_t *qc, vmem_slab_t *sl, uintptr_t addr, size_t size,
                            vmem_error_info_t *info)
{
	uintptr_t off = addr - sl->sl_base;
	unsigned obj = (unsigned)(off / qc->qc_objsize);
	size_t asize = obj < qc->qc_nobj ? vmem__dbg_qc_size(sl->sl_audit, obj) : 0;

	info->ve_seg_start = sl->sl_base + (uintptr_t)obj * qc->qc_objsize;
	info->ve_seg_size = asize != 0 ? asize : qc->qc_objsize;
	if (obj >= qc->qc_nobj) {
		info->ve_kind = VMEM_ERR_BAD_FREE; /* in a slab's unused tail */
		info->ve_seg_start = 0;
		info->ve_seg_size = 0;
		return;
	}
	if (off % qc->qc_objsize != 0) {
		info->ve_kind = VMEM_ERR_INTERIOR_FREE;
	} else if (sl->sl_freemap & (1ULL << obj)) {
		uint64_t tid, when;

		if (sl->sl_audit != NULL &&
		    vmem__dbg_qc_audit(sl->sl_audit, obj, &tid, &when) == 0 && when == 0) {
			info->ve_kind = VMEM_ERR_BAD_FREE; /* a free object never handed out */
			info->ve_seg_start = 0;
			info->ve_seg_size = 0;
			return;
		}
		info->ve_kind = VMEM_ERR_DOUBLE_FREE;
	} else {
		info->ve_kind = VMEM_ERR_SIZE_MISMATCH;
	}
	if (sl->sl_audit != NULL)
		vmem__dbg_qc_describe(sl->sl_audit, obj, info);
	if (info->ve_kind != VMEM_ERR_DOUBLE_FREE) { /* an earlier life's free: not this story */
		info->ve_free_stack = NULL;
		info->ve_free_depth = 0;
		info->ve_free_thread = 0;
		info->ve_free_time = 0;
	}
}

bool vmem__qc_diagnose(vmem_t *vmp, uintptr_t addr, size_t size, vmem_error_info_t *info)
{
	for (int i = 0; i < vmp->vm_nqcache; i++) {
		vmem_qcache_t *qc = vmp->vm_qcache[i];
		vmem_slab_t *sl;

		pthread_mutex_lock(&qc->qc_slab_lock);
		sl = slab_lookup_locked(qc, addr);
		if (sl != NULL) {
			diagnose_locked(qc, sl, addr, size, info);
			pthread_mutex_unlock(&qc->qc_slab_lock);
			return true;
		}
		pthread_mutex_unlock(&qc->qc_slab_lock);
	}
	return false;
}

/*
 * Free in the debug library: the object must be an allocated object of one
 * of this cache's slabs (or an object the arena served directly), freed
 * with the size it was allocated with.  An object of another cache of the
 * arena (a size that rounds to another cache) is a wrong size.
 */
void vmem__qc_free_debug(vmem_qcache_t *qc, uintptr_t addr, size_t size)
{
	vmem_error_info_t info = {.ve_func = "vmem_free",
	                          .ve_arena = qc->qc_arena,
	                          .ve_arena_name = qc->qc_arena->vm_name,
	                          .ve_addr = addr,
	                          .ve_size = size};
	vmem_slab_t *sl;
	uintptr_t off;
	unsigned obj;

	pthread_mutex_lock(&qc->qc_slab_lock);
	sl = slab_lookup_locked(qc, addr);
	if (sl == NULL) {
		pthread_mutex_unlock(&qc->qc_slab_lock);
		if (vmem__qc_diagnose(qc->qc_arena, addr, size, &info)) {
			vmem__report_free_error(qc->qc_arena, &info);
			return;
		}
		free_foreign(qc, addr); /* direct objects; the arena diagnoses the rest */
		return;
	}
	off = addr - sl->sl_base;
	obj = (unsigned)(off / qc->qc_objsize);
	if (obj < qc->qc_nobj && off % qc->qc_objsize == 0 && !(sl->sl_freemap & (1ULL << obj))) {
		size_t asize = vmem__dbg_qc_size(sl->sl_audit, obj);

		/* (Arenas of the BSD API take any size of the same quanta: this cache's.) */
		if (asize == 0 || asize == size || qc->qc_arena->vm_free_rounded) {
			if (sl->sl_audit != NULL)
				vmem__dbg_qc_on_free(qc, sl->sl_audit, obj, addr);
			(void)slab_give_locked(qc, sl, addr);
			pthread_mutex_unlock(&qc->qc_slab_lock);
			count_shared(qc, &qc->qc_dead_free);
			(void)slabs_release(qc, VMEM_QC_KEEP_SLAB);
			return;
		}
	}
	diagnose_locked(qc, sl, addr, size, &info);
	pthread_mutex_unlock(&qc->qc_slab_lock);
	vmem__report_free_error(qc->qc_arena, &info);
}

/* ---- reaping ----------------------------------------------------------------------------- */

/* Return the rounds of every magazine on a depot list; free the magazines. */
static void depot_drain(vmem_qcache_t *qc, vmem_mag_t *list)
{
	while (list != NULL) {
		vmem_mag_t *m = list;
		uint32_t n = atomic_load_explicit(&m->mg_count, memory_order_relaxed);

		list = m->mg_next;
		if (n != 0)
			vmem__qc_return_rounds(qc, m->mg_round, n);
		vmem__pool_put(&vmem__mag_pool, m);
	}
}

/* Detach up to `n` magazines from a depot list. */
static vmem_mag_t *depot_detach(vmem_mag_t **list, uint64_t *count, uint64_t n)
{
	vmem_mag_t *head = *list, *m = head, *prev = NULL;
	uint64_t i;

	for (i = 0; i < n && m != NULL; i++) {
		prev = m;
		m = m->mg_next;
	}
	if (prev == NULL)
		return NULL;
	prev->mg_next = NULL;
	*list = m;
	*count -= i;
	return head;
}

/*
 * Reap one cache.  full: every magazine of every thread, the whole depot,
 * every empty slab.  Otherwise the depot's unused working set and the
 * empty slabs beyond VMEM_QC_KEEP_SLAB.  True if slabs went to the arena.
 */
bool vmem__qc_reap_one(vmem_qcache_t *qc, bool full)
{
	vmem_mag_t *fulls, *empties;

	if (full)
		vmem__tc_purge(qc, false);
	pthread_mutex_lock(&qc->qc_depot_lock);
	fulls = depot_detach(&qc->qc_full, &qc->qc_nfull, full ? UINT64_MAX : qc->qc_min_full);
	empties = depot_detach(&qc->qc_empty, &qc->qc_nempty, full ? UINT64_MAX : qc->qc_min_empty);
	qc->qc_min_full = qc->qc_nfull;
	qc->qc_min_empty = qc->qc_nempty;
	pthread_mutex_unlock(&qc->qc_depot_lock);
	depot_drain(qc, fulls);
	depot_drain(qc, empties);
	pthread_mutex_lock(&qc->qc_slab_lock);
	qc->qc_reaps++;
	pthread_mutex_unlock(&qc->qc_slab_lock);
	return slabs_release(qc, full ? 0 : VMEM_QC_KEEP_SLAB) != 0;
}

bool vmem__qc_reap(vmem_t *vmp, bool full)
{
	bool any = false;

	for (int i = 0; i < vmp->vm_nqcache; i++)
		any |= vmem__qc_reap_one(vmp->vm_qcache[i], full);
	return any;
}

/* ---- creation, destruction, accounting ------------------------------------------------- */

int vmem__qc_create(vmem_t *vmp, size_t qcache_max)
{
	size_t q = vmp->vm_quantum, nq = qcache_max >> vmp->vm_qshift, slab;
	int i;

	if (nq > VMEM_NQCACHE_MAX)
		nq = VMEM_NQCACHE_MAX;
	if (nq == 0 || q > (SIZE_MAX >> 8) / nq)
		return 0; /* nothing to cache, or sizes beyond any slab */
	slab = (size_t)1 << vmem__highbit(3 * nq * q);
	if (slab < 64)
		slab = 64;
	for (i = 0; i < (int)nq; i++) {
		vmem_qcache_t *qc = vmem__pool_get(&qc_pool);

		if (qc == NULL)
			goto fail;
		memset(qc, 0, sizeof(*qc));
		qc->qc_id = vmem__qc_id_get(&qc->qc_gen);
		if (qc->qc_id == UINT32_MAX) {
			vmem__pool_put(&qc_pool, qc);
			goto fail;
		}
		qc->qc_arena = vmp;
		qc->qc_objsize = (size_t)(i + 1) * q;
		qc->qc_slabsize = slab;
		qc->qc_slabshift = vmem__highbit(slab) - 1;
		qc->qc_nobj = (unsigned)(slab / qc->qc_objsize);
		qc->qc_reap_ns = now_ns();
		snprintf(qc->qc_name, sizeof(qc->qc_name), "%s_%zu", vmp->vm_name, qc->qc_objsize);
		pthread_mutex_init(&qc->qc_depot_lock, NULL);
		pthread_mutex_init(&qc->qc_slab_lock, NULL);
		vmp->vm_qcache[i] = qc;
		vmp->vm_nqcache = i + 1;
	}
	vmp->vm_qcache_max = nq * q;
	return 0;
fail : {
	uint64_t n, b;

	vmem__qc_destroy(vmp, &n, &b);
}
	return ENOMEM;
}

void vmem__qc_destroy(vmem_t *vmp, uint64_t *nleaked, uint64_t *bleaked)
{
	int i;

	*nleaked = *bleaked = 0;
	vmp->vm_qcache_max = 0; /* no new cached operations */
	for (i = 0; i < vmp->vm_nqcache; i++) {
		vmem_qcache_t *qc = vmp->vm_qcache[i];
		vmem_slab_t *sl;

		vmem__tc_purge(qc, true);
		(void)vmem__qc_reap_one(qc, true);
		/* What is left in slabs is held by callers: leaked. */
		for (int l = 0; l < QC_SLAB_NLISTS; l++) {
			while ((sl = qc->qc_slabs[l]) != NULL) {
				unsigned held = qc->qc_nobj - sl->sl_nfree;

				*nleaked += held;
				*bleaked += (uint64_t)held * qc->qc_objsize;
				slab_unlist(qc, sl);
				vmem__free_seg(vmp, sl->sl_base, qc->qc_slabsize);
				if (vmem_debug)
					vmem__dbg_slab_audit_free(sl->sl_audit);
				vmem__pool_put(&slab_pool, sl);
			}
		}
		if (qc->qc_hash != NULL)
			vmem__meta_unmap(qc->qc_hash);
		vmem__qc_id_put(qc->qc_id);
		pthread_mutex_destroy(&qc->qc_depot_lock);
		pthread_mutex_destroy(&qc->qc_slab_lock);
		vmem__pool_put(&qc_pool, qc);
		vmp->vm_qcache[i] = NULL;
	}
	vmp->vm_nqcache = 0;
}

/*
 * Bytes that sit, free for callers, inside the caches: whole free slabs'
 * objects, and objects in magazines (depot and threads).  Called without
 * the arena lock.
 */
uint64_t vmem__qc_cached_bytes(vmem_t *vmp)
{
	uint64_t bytes = 0;

	for (int i = 0; i < vmp->vm_nqcache; i++) {
		vmem_qcache_t *qc = vmp->vm_qcache[i];
		uint64_t a, f, am, fm, rounds, slabbed;

		vmem__tc_sum(qc, &a, &f, &am, &fm, &rounds);
		pthread_mutex_lock(&qc->qc_depot_lock);
		for (vmem_mag_t *m = qc->qc_full; m != NULL; m = m->mg_next)
			rounds += atomic_load_explicit(&m->mg_count, memory_order_relaxed);
		pthread_mutex_unlock(&qc->qc_depot_lock);
		pthread_mutex_lock(&qc->qc_slab_lock);
		/* slab bytes not out: free objects and the tail each slab wastes */
		slabbed =
		    (uint64_t)qc->qc_nslabs * qc->qc_slabsize - qc->qc_slab_out * qc->qc_objsize;
		pthread_mutex_unlock(&qc->qc_slab_lock);
		bytes += slabbed + rounds * qc->qc_objsize;
	}
	return bytes;
}

vmem_qcache_t *vmem__qc_of_slab(vmem_t *vmp, uintptr_t addr, vmem_slab_t **slabp)
{
	for (int i = 0; i < vmp->vm_nqcache; i++) {
		vmem_qcache_t *qc = vmp->vm_qcache[i];
		vmem_slab_t *sl;

		pthread_mutex_lock(&qc->qc_slab_lock);
		sl = slab_lookup_locked(qc, addr);
		pthread_mutex_unlock(&qc->qc_slab_lock);
		if (sl != NULL) {
			*slabp = sl;
			return qc;
		}
	}
	return NULL;
}

bool vmem__qc_slab_info(vmem_t *vmp, uintptr_t base, size_t *objsize, unsigned *nobj,
                        uint64_t *freemap, void **audit, uintptr_t *slabaddr)
{
	for (int i = 0; i < vmp->vm_nqcache; i++) {
		vmem_qcache_t *qc = vmp->vm_qcache[i];
		vmem_slab_t *sl;

		pthread_mutex_lock(&qc->qc_slab_lock);
		sl = slab_lookup_locked(qc, base);
		if (sl != NULL && sl->sl_base == base) {
			*objsize = qc->qc_objsize;
			*nobj = qc->qc_nobj;
			*freemap = sl->sl_freemap;
			*audit = sl->sl_audit;
			*slabaddr = (uintptr_t)sl;
			pthread_mutex_unlock(&qc->qc_slab_lock);
			return true;
		}
		pthread_mutex_unlock(&qc->qc_slab_lock);
	}
	return false;
}

bool vmem__qc_slab_state(vmem_t *vmp, uintptr_t base, size_t *objsize, unsigned *nobj,
                         uint64_t *freemap)
{
	for (int i = 0; i < vmp->vm_nqcache; i++) {
		vmem_qcache_t *qc = vmp->vm_qcache[i];
		vmem_slab_t *sl;

		pthread_mutex_lock(&qc->qc_slab_lock);
		sl = slab_lookup_locked(qc, base);
		if (sl != NULL && sl->sl_base == base) {
			*objsize = qc->qc_objsize;
			*nobj = qc->qc_nobj;
			*freemap = sl->sl_freemap;
			pthread_mutex_unlock(&qc->qc_slab_lock);
			return true;
		}
		pthread_mutex_unlock(&qc->qc_slab_lock);
	}
	return false;
}

/* ---- public: reaping and counters ------------------------------------------------------------ */

void vmem_qcache_reap(vmem_t *vmp)
{
	if (vmp != NULL)
		(void)vmem__qc_reap(vmp, true);
}

unsigned vmem_qcache_count(const vmem_t *vmp)
{
	return vmp != NULL ? (unsigned)vmp->vm_nqcache : 0;
}

void vmem__qc_kstat_shared(vmem_qcache_t *qc, vmem_qcache_kstat_t *ks)
{
	uint64_t rounds = 0;

	memset(ks, 0, sizeof(*ks));
	snprintf(ks->qk_name, sizeof(ks->qk_name), "%s", qc->qc_name);
	ks->qk_objsize = qc->qc_objsize;
	ks->qk_slabsize = qc->qc_slabsize;
	pthread_mutex_lock(&qc->qc_depot_lock);
	ks->qk_alloc = qc->qc_dead_alloc;
	ks->qk_free = qc->qc_dead_free;
	ks->qk_alloc_miss = qc->qc_dead_alloc_miss;
	ks->qk_free_miss = qc->qc_dead_free_miss;
	ks->qk_depot_alloc = qc->qc_depot_alloc;
	ks->qk_depot_free = qc->qc_depot_free;
	ks->qk_depot_contention = qc->qc_depot_contention;
	ks->qk_depot_full = qc->qc_nfull;
	ks->qk_depot_empty = qc->qc_nempty;
	for (vmem_mag_t *m = qc->qc_full; m != NULL; m = m->mg_next)
		rounds += atomic_load_explicit(&m->mg_count, memory_order_relaxed);
	pthread_mutex_unlock(&qc->qc_depot_lock);
	ks->qk_mag_rounds = rounds;
	pthread_mutex_lock(&qc->qc_slab_lock);
	ks->qk_slabs = qc->qc_nslabs;
	ks->qk_slab_create = qc->qc_slab_create;
	ks->qk_slab_destroy = qc->qc_slab_destroy;
	ks->qk_slab_out = qc->qc_slab_out;
	ks->qk_direct = qc->qc_direct;
	ks->qk_reaps = qc->qc_reaps;
	pthread_mutex_unlock(&qc->qc_slab_lock);
}

int vmem_qcache_kstat(vmem_t *vmp, unsigned i, vmem_qcache_kstat_t *ks)
{
	uint64_t a, f, am, fm, rounds;

	if (vmp == NULL || ks == NULL || i >= (unsigned)vmp->vm_nqcache) {
		errno = EINVAL;
		return -1;
	}
	vmem__tc_sum(vmp->vm_qcache[i], &a, &f, &am, &fm, &rounds);
	vmem__qc_kstat_shared(vmp->vm_qcache[i], ks);
	ks->qk_alloc += a;
	ks->qk_free += f;
	ks->qk_alloc_miss += am;
	ks->qk_free_miss += fm;
	ks->qk_mag_rounds += rounds;
	return 0;
}
