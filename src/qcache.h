/*
 * Quantum caches: structures shared by qcache.c (caches, slabs, depot,
 * reaping) and tcache.c (per-thread magazines).  Theory in qcache.c.
 */
#ifndef VMEM_QCACHE_H
#define VMEM_QCACHE_H

#include "vmem_impl.h"

/* Rounds per magazine: the struct is 512 bytes. */
#define VMEM_MAG_ROUNDS 62

typedef struct vmem_mag {
	struct vmem_mag *mg_next;  /* depot list link */
	_Atomic uint32_t mg_count; /* rounds held; written by one owner at a time */
	uint32_t mg_pad;
	uintptr_t mg_round[VMEM_MAG_ROUNDS];
} vmem_mag_t;

/* A slab: a qc_slabsize-aligned segment of the arena cut into objects. */
typedef struct vmem_slab {
	struct vmem_slab *sl_next; /* on one of the cache's slab lists */
	struct vmem_slab *sl_prev;
	struct vmem_slab *sl_hnext; /* slab hash chain */
	uintptr_t sl_base;          /* first integer of the slab */
	uint64_t sl_freemap;        /* bit i set: object i is in the slab (free) */
	uint16_t sl_nfree;          /* objects in the slab */
	uint8_t sl_list;            /* which list: QC_SLAB_PARTIAL, _EMPTY, _FULL */
	void *sl_audit;             /* debug build: vmem_qaudit_t per object */
} vmem_slab_t;

enum { QC_SLAB_PARTIAL, QC_SLAB_EMPTY, QC_SLAB_FULL, QC_SLAB_NLISTS };

typedef struct vmem_qcache {
	/* Read-mostly: the fast path reads these and nothing else here. */
	vmem_t *qc_arena;
	size_t qc_objsize;
	uint32_t qc_id;  /* index in every thread's entry table */
	uint32_t qc_gen; /* distinguishes reuses of qc_id */
	size_t qc_slabsize;
	int qc_slabshift;
	unsigned qc_nobj; /* objects per slab, <= 64 */
	char qc_name[VMEM_NAMELEN + 12];

	/* Depot: full and empty magazines. */
	pthread_mutex_t qc_depot_lock __attribute__((aligned(64)));
	vmem_mag_t *qc_full;
	vmem_mag_t *qc_empty;
	uint64_t qc_nfull, qc_nempty;
	uint64_t qc_min_full, qc_min_empty; /* lowest depot levels this interval */
	uint64_t qc_depot_alloc;            /* full magazines handed to threads */
	uint64_t qc_depot_free;             /* full magazines taken from threads */
	uint64_t qc_depot_contention;       /* depot lock found held */
	uint64_t qc_reap_ns;                /* when the working set was last reaped */

	/* Slab layer. */
	pthread_mutex_t qc_slab_lock __attribute__((aligned(64)));
	vmem_slab_t *qc_slabs[QC_SLAB_NLISTS];
	vmem_slab_t **qc_hash; /* slab by base >> qc_slabshift */
	size_t qc_hash_size;
	size_t qc_nslabs;
	uint64_t qc_slab_out;     /* objects out of slabs (in magazines or with callers) */
	uint64_t qc_slab_create;  /* slabs taken from the arena */
	uint64_t qc_slab_destroy; /* slabs given back */
	uint64_t qc_direct;       /* objects served straight from the arena */
	uint64_t qc_direct_out;   /* ... and not yet freed */
	uint64_t qc_reaps;

	/* Counters of threads that exited, and (debug) of operations without
	 * magazines, under qc_depot_lock. */
	uint64_t qc_dead_alloc, qc_dead_free, qc_dead_alloc_miss, qc_dead_free_miss;
} vmem_qcache_t;

/* One thread's view of one cache: a loaded and a previous magazine. */
typedef struct vmem_tc_entry {
	vmem_qcache_t *te_qc; /* NULL: unused */
	uint32_t te_gen;
	_Atomic uint32_t te_busy;  /* the owner is inside an operation */
	_Atomic uint32_t te_purge; /* a purger is emptying the magazines */
	uint32_t te_pad;
	vmem_mag_t *te_loaded;
	vmem_mag_t *te_prev;
	_Atomic uint64_t te_alloc, te_free;           /* operations */
	_Atomic uint64_t te_alloc_miss, te_free_miss; /* ... that left the magazines */
} __attribute__((aligned(64))) vmem_tc_entry_t;

typedef struct vmem_tcache {
	struct vmem_tcache *tc_next; /* global registry, under the registry lock */
	struct vmem_tcache *tc_prev;
	uint32_t tc_nentries;
	uint32_t tc_pad;
	vmem_tc_entry_t *tc_entry; /* tc_nentries entries, indexed by qc_id */
} vmem_tcache_t;

/* ---- qcache.c ---- */
int vmem__qc_create(vmem_t *vmp, size_t qcache_max);
/* Destroy the caches; returns objects still out (leaked) and their bytes. */
void vmem__qc_destroy(vmem_t *vmp, uint64_t *nleaked, uint64_t *bleaked);
int vmem__qc_alloc_slow(vmem_qcache_t *qc, vmem_tc_entry_t *e, bool entered, int vmflag,
                        uintptr_t *addrp);
void vmem__qc_free_slow(vmem_qcache_t *qc, vmem_tc_entry_t *e, bool entered, bool bypass,
                        uintptr_t addr);
bool vmem__qc_reap_one(vmem_qcache_t *qc, bool full);
/* The debug library's cached paths: no magazines, every free verified. */
int vmem__qc_alloc_debug(vmem_qcache_t *qc, size_t size, int vmflag, uintptr_t *addrp);
void vmem__qc_free_debug(vmem_qcache_t *qc, uintptr_t addr, size_t size);
/*
 * Debug library: if addr lies in a slab of one of vmp's caches, say in
 * *info what a free of it with `size` is (a double free, an interior
 * free, a wrong size) with the object's audit, and return true.  No slab
 * or arena lock held.
 */
bool vmem__qc_diagnose(vmem_t *vmp, uintptr_t addr, size_t size, vmem_error_info_t *info);
/* Return rounds to their slabs (or the arena); qc_slab_lock not held. */
void vmem__qc_return_rounds(vmem_qcache_t *qc, const uintptr_t *rounds, unsigned n);
/* Objects in magazines and slabs of vmp's caches, as bytes free to callers. */
uint64_t vmem__qc_cached_bytes(vmem_t *vmp);
/* Reap every cache of vmp; true if anything went back to the arena. */
bool vmem__qc_reap(vmem_t *vmp, bool full);
vmem_qcache_t *vmem__qc_of_slab(vmem_t *vmp, uintptr_t addr, vmem_slab_t **slabp);
/* The object size, count and free map of the slab starting at base. */
/* The slab at base: object size and count, free map, audit array (debug) and
 * the slab record's address; slab locks taken. */
bool vmem__qc_slab_info(vmem_t *vmp, uintptr_t base, size_t *objsize, unsigned *nobj,
                        uint64_t *freemap, void **audit, uintptr_t *slabaddr);
/* Fill ks from the cache's depot and slab state (not the threads'). */
void vmem__qc_kstat_shared(vmem_qcache_t *qc, vmem_qcache_kstat_t *ks);
bool vmem__qc_slab_state(vmem_t *vmp, uintptr_t base, size_t *objsize, unsigned *nobj,
                         uint64_t *freemap);

/* ---- tcache.c ---- */
/* This thread's entry for qc, creating it if needed; NULL if impossible. */
vmem_tc_entry_t *vmem__tc_entry_slow(vmem_qcache_t *qc);
/* Take the rounds out of every thread's magazines for qc (and forget qc's
 * entries if `forget`).  Calls fn(qc, rounds, n) for each batch. */
void vmem__tc_purge(vmem_qcache_t *qc, bool forget);
/* Sum the per-thread counters and magazine contents for qc. */
void vmem__tc_sum(vmem_qcache_t *qc, uint64_t *alloc, uint64_t *free, uint64_t *alloc_miss,
                  uint64_t *free_miss, uint64_t *rounds);
/* Call fn with every live thread entry's counters (alloc, free, alloc_miss,
 * free_miss), under the registry lock: fn must take no lock. */
void vmem__tc_sum_all(void (*fn)(const vmem_qcache_t *qc, uint32_t gen, const uint64_t sums[4],
                                 void *arg),
                      void *arg);
uint32_t vmem__qc_id_get(uint32_t *gen);
void vmem__qc_id_put(uint32_t id);

/* Head of the list of every thread's table, under the registry lock. */
extern vmem_tcache_t *vmem__tc_registry;
extern __thread vmem_tcache_t *vmem__tls_tc __attribute__((tls_model("initial-exec")));
extern bool vmem__tc_asym; /* membarrier available: the fast path needs no fence */

/*
 * The fast path's entry into its own magazines.  The owner announces
 * itself (te_busy) and then checks for a purger (te_purge); a purger sets
 * te_purge and then waits for te_busy to drop.  The owner's side is a plain
 * store and load; the fence that orders them is issued by the purger with
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) (an asymmetric Dekker
 * pair).  Without membarrier, or under TSan, the owner fences itself.
 */
static inline bool vmem__tc_enter(vmem_tc_entry_t *e)
{
	atomic_store_explicit(&e->te_busy, 1, memory_order_relaxed);
	if (VMEM_TSAN || !vmem__tc_asym)
		atomic_thread_fence(memory_order_seq_cst);
	else
		atomic_signal_fence(memory_order_seq_cst);
	/* acquire: pairs with the purger's release when it is done with our magazines */
	if (atomic_load_explicit(&e->te_purge, memory_order_acquire) != 0) {
		atomic_store_explicit(&e->te_busy, 0, memory_order_release);
		return false;
	}
	return true;
}

static inline void vmem__tc_leave(vmem_tc_entry_t *e)
{
	atomic_store_explicit(&e->te_busy, 0, memory_order_release);
}

/* This thread's entry for qc, or NULL if it has none yet. */
static inline vmem_tc_entry_t *vmem__tc_entry(vmem_qcache_t *qc)
{
	vmem_tcache_t *tc = vmem__tls_tc;
	vmem_tc_entry_t *e;

	if (tc == NULL || qc->qc_id >= tc->tc_nentries)
		return NULL;
	e = &tc->tc_entry[qc->qc_id];
	return e->te_qc == qc && e->te_gen == qc->qc_gen ? e : NULL;
}

/* Relaxed increment: only the owner writes, others only read. */
static inline void vmem__tc_count(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

/*
 * Could addr be an object of qc's slabs?  Rejects most bad frees (and the
 * cache's direct objects, which then take the slow path) without a lookup.
 */
static inline bool vmem__qc_plausible(const vmem_qcache_t *qc, uintptr_t addr)
{
	uintptr_t off = addr & (qc->qc_slabsize - 1);

	if (vmem__ispow2(qc->qc_objsize))
		return (off & (qc->qc_objsize - 1)) == 0;
	return off % qc->qc_objsize == 0 && off / qc->qc_objsize < qc->qc_nobj;
}

/*
 * Take a round from this thread's loaded magazine, else from its previous
 * one (then swapped in); e entered.  false: both are empty, nothing changed.
 */
static inline bool vmem__mag_pop(vmem_tc_entry_t *e, uintptr_t *addrp)
{
	vmem_mag_t *m = e->te_loaded;
	uint32_t n = atomic_load_explicit(&m->mg_count, memory_order_relaxed);

	if (__builtin_expect(n == 0, 0)) {
		vmem_mag_t *p = e->te_prev;

		n = atomic_load_explicit(&p->mg_count, memory_order_relaxed);
		if (n == 0)
			return false;
		e->te_prev = m;
		e->te_loaded = m = p;
	}
	*addrp = m->mg_round[--n];
	atomic_store_explicit(&m->mg_count, n, memory_order_relaxed);
	vmem__tc_count(&e->te_alloc);
	return true;
}

/* The mirror image: put a round in; false: both magazines are full. */
static inline bool vmem__mag_push(vmem_tc_entry_t *e, uintptr_t addr)
{
	vmem_mag_t *m = e->te_loaded;
	uint32_t n = atomic_load_explicit(&m->mg_count, memory_order_relaxed);

	if (__builtin_expect(n == VMEM_MAG_ROUNDS, 0)) {
		vmem_mag_t *p = e->te_prev;

		if (atomic_load_explicit(&p->mg_count, memory_order_relaxed) != 0)
			return false;
		e->te_prev = m;
		e->te_loaded = m = p;
		n = 0;
	}
	m->mg_round[n] = addr;
	atomic_store_explicit(&m->mg_count, n + 1, memory_order_relaxed);
	vmem__tc_count(&e->te_free);
	return true;
}

/*
 * The fast paths the public entry points try first: a round from (or into)
 * this thread's magazines.  They make no calls, so those entry points stay
 * leaf functions (no frame, no saved registers) when they succeed.  false:
 * nothing changed; take the full path (vmem__qc_alloc/vmem__qc_free below),
 * which enters again and sees a consistent state.  Not for the debug
 * library (no magazines there).
 */
static inline bool vmem__qc_alloc_fast(vmem_qcache_t *qc, uintptr_t *addrp)
{
	vmem_tc_entry_t *e = vmem__tc_entry(qc);
	bool ok;

	if (__builtin_expect(e == NULL || !vmem__tc_enter(e), 0))
		return false;
	ok = vmem__mag_pop(e, addrp);
	vmem__tc_leave(e);
	return ok;
}

/* sleepers: the arena's vm_sleepers (frees then bypass the magazines). */
static inline bool vmem__qc_free_fast(vmem_qcache_t *qc, uintptr_t addr, unsigned sleepers)
{
	vmem_tc_entry_t *e;
	bool ok;

	if (__builtin_expect(sleepers != 0 || !vmem__qc_plausible(qc, addr), 0))
		return false;
	e = vmem__tc_entry(qc);
	if (__builtin_expect(e == NULL || !vmem__tc_enter(e), 0))
		return false;
	ok = vmem__mag_push(e, addr);
	vmem__tc_leave(e);
	return ok;
}

/*
 * vmem_alloc() of a cached size: the loaded magazine, else the previous.
 * `size`: the caller's, which the debug library records and checks.
 */
static inline int vmem__qc_alloc(vmem_qcache_t *qc, size_t size, int vmflag, uintptr_t *addrp)
{
	vmem_tc_entry_t *e;

	if (vmem_debug)
		return vmem__qc_alloc_debug(qc, size, vmflag, addrp);
	e = vmem__tc_entry(qc);
	if (__builtin_expect(e == NULL, 0) && (e = vmem__tc_entry_slow(qc)) == NULL)
		return vmem__qc_alloc_slow(qc, NULL, false, vmflag, addrp);
	if (__builtin_expect(!vmem__tc_enter(e), 0))
		return vmem__qc_alloc_slow(qc, NULL, false, vmflag, addrp);
	if (!vmem__mag_pop(e, addrp))
		return vmem__qc_alloc_slow(qc, e, true, vmflag, addrp);
	vmem__tc_leave(e);
	return 0;
}

/* vmem_free() of a cached size: the loaded magazine, else the previous. */
static inline void vmem__qc_free(vmem_qcache_t *qc, uintptr_t addr, size_t size)
{
	bool bypass;
	vmem_tc_entry_t *e;

	if (vmem_debug) {
		vmem__qc_free_debug(qc, addr, size);
		return;
	}
	bypass = atomic_load_explicit(&qc->qc_arena->vm_sleepers, memory_order_relaxed) != 0;
	e = vmem__tc_entry(qc);
	if (__builtin_expect(bypass || !vmem__qc_plausible(qc, addr), 0)) {
		vmem__qc_free_slow(qc, NULL, false, true, addr);
		return;
	}
	if (__builtin_expect(e == NULL, 0) && (e = vmem__tc_entry_slow(qc)) == NULL) {
		vmem__qc_free_slow(qc, NULL, false, false, addr);
		return;
	}
	if (__builtin_expect(!vmem__tc_enter(e), 0)) {
		vmem__qc_free_slow(qc, NULL, false, false, addr);
		return;
	}
	if (!vmem__mag_push(e, addr)) {
		vmem__qc_free_slow(qc, e, true, false, addr);
		return;
	}
	vmem__tc_leave(e);
}

#endif /* VMEM_QCACHE_H */
