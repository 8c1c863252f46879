/*
 * libvmem: the vmem resource allocator, illumos API.
 *
 * Theory statement.  (The design follows Bonwick & Adams, "Magazines and
 * Vmem", USENIX 2001, and the illumos implementation's documented
 * behaviour; the structures and code here are our own.)
 *
 * 1. Arenas, spans, segments
 *
 * An arena is a set of integers.  It is made of spans, ranges added by
 * vmem_add() or imported from a source arena; spans are divided into
 * segments, each either allocated (ALLOC) or free (FREE).  An allocated
 * segment [addr, addr + size) stands for exactly one allocation that
 * returned addr.  Integers are never touched: an arena may describe
 * address space, device memory, file offsets or identifiers alike.
 *
 * Every segment has a boundary tag, vmem_seg_t (vmem_impl.h).  Tags sit on
 * one circular, address-ordered list per arena, anchored by vm_seg0: each
 * span is a SPAN marker followed by the segments that tile it.  Spans are
 * kept in address order (a span index, vm_spans, finds the place).
 *
 * 2. Invariants (checked by vmem__verify_locked())
 *
 *   a. Spans are disjoint, quantum-aligned and in address order; the
 *      segments after a marker tile its span exactly.
 *   b. No two FREE segments are adjacent: frees coalesce both ways
 *      (boundary-tag coalescing, O(1) through the address list).
 *   c. Every FREE segment is on exactly one of 64 freelists, list n holding
 *      sizes in [2^n, 2^(n+1)); bit n of vm_freemap is set iff list n is
 *      not empty.  When the arena is indexed, every FREE segment is also in
 *      the address index (augmented with the largest free size below each
 *      node) and the size index.
 *   d. Every ALLOC segment is in the hash table under its start address and
 *      records the caller's exact size (vs_asize); its extent vs_size is
 *      that size rounded up to the quantum.  mem_inuse is the sum of the
 *      exact sizes, as in illumos.
 *   e. Address 0 is in no illumos arena (vmem_add() refuses it), so NULL can
 *      mean failure.  Arenas of the BSD-style API (vm_zero_ok) may hold 0.
 *   f. Sizes and ends are computed as "last = start + size - 1", which never
 *      wraps: a span may end at the very top of the address space.
 *
 * 3. Allocation policies
 *
 *   Instant fit (the default): any member of list ceil(log2(size)) or above
 *   fits, so the head of the lowest such non-empty list (one find-first-set
 *   on the freemap) is a good fit in constant time, however fragmented the
 *   arena.  Constrained requests use the size that guarantees a fit
 *   (size + align - quantum, plus the nocross slack).  If no list
 *   guarantees a fit, the one list that might (floor(log2(size))) is
 *   scanned, as illumos does.
 *
 *   Best fit, first fit, next fit and address-constrained requests use the
 *   index, built the first time such a request arrives and then kept up to
 *   date: instant-fit-only arenas never pay for it.  Its size half keeps one
 *   LIFO list per exact size up to 1024 quanta, with a two-level bitmap of
 *   the non-empty ones (best fit is two find-first-sets, O(1), ties to the
 *   most recently freed as in illumos) and a (size, address) tree above
 *   that.  Its address half is a tree augmented with the largest free size
 *   below each node, so first fit (the lowest-addressed segment of
 *   sufficient size) prunes every subtree whose largest free segment is too
 *   small: O(log n) where illumos and the BSDs scan lists linearly.  Next
 *   fit starts at the rotor (the end of the previous next-fit allocation)
 *   and wraps, which hands out identifiers sequentially.  VM_ENDALLOC
 *   mirrors the search (highest addresses first) and places the segment at
 *   the top of the free segment chosen.
 *
 *   Constrained best, first and next fit.  A free segment of at least the
 *   guaranteed size always admits an aligned (phase, nocross) request; a
 *   smaller one only might, and the ones that never do (misaligned
 *   remnants) pile up exactly where an exact search looks first, so an
 *   exact constrained search is linear in the fragmentation (illumos and
 *   the BSDs scan).  Ours examines at most 16 might-fit segments in policy
 *   order and then settles for the policy's best guaranteed fit (the
 *   smallest, or the next in address order), found in O(log n); only when
 *   there is none does it search on, so it never fails while a fit exists.
 *
 *   Constraint arithmetic (fit.c, vmem__seg_fit): the lowest t >= lo with
 *   t = phase (mod align) is lo + ((phase - lo) mod align); if [t, t + size)
 *   crosses a nocross boundary b, t moves to b + phase, which fits because
 *   phase + size <= nocross is required.  Every step compares distances,
 *   never sums that could wrap.
 *
 * 4. Imports and span return
 *
 *   When no free segment fits and the arena has an import function, it is
 *   called, without the arena lock, for a span large enough for the request
 *   (rounded to the source's quantum, padded for alignment and nocross, at
 *   least vm_min_import) with VM_NOSLEEP; the span is added as IMPORTED.  When a
 *   free leaves an imported span wholly free, the span leaves the arena at
 *   once and goes back through the release function, again without the
 *   lock.  Requests with address limits never import (the source chooses
 *   the address); unlike illumos, nocross requests do.  vmem_destroy() gives
 *   every imported span back.
 *
 * 5. Metadata
 *
 *   Tags, arenas and hash tables come from memory the library maps itself
 *   (meta.c), never from malloc.  Before changing anything, each operation
 *   reserves the tags it may need (2 for an allocation, 2 more for an
 *   import's span); if none can be mapped a VM_NOSLEEP call fails with the
 *   arena unchanged.  A free never needs a tag.  The hash table grows and
 *   shrinks with the number of allocated segments (0.25 to 2 per bucket);
 *   if a bigger table cannot be mapped the old one keeps working.
 *
 * 6. Locking and sleeping
 *
 *   Each arena has one mutex, vm_lock, protecting everything in it; the
 *   global vmem__list_lock protects the list and tree of arenas.  Lock
 *   order: vmem__list_lock, then an arena lock; the metadata pool locks are
 *   leaves.  No arena lock is held while calling an import or release
 *   function, so a child never holds its lock while its source takes its
 *   own, and arenas of a tree never nest their locks.
 *
 *   A VM_SLEEP allocation that fails waits on its arena's condition
 *   variable.  It can be satisfied by a free in its own arena, or by a free
 *   in any ancestor (that lets an import succeed).  Wake-ups are not lost:
 *     - frees and adds bump vm_freegen (atomic, seq_cst) and broadcast the
 *       arena's own waiters under its lock;
 *     - a sleeper first counts itself in vm_desc_waiters of every ancestor
 *       (seq_cst), then reads the sum of the freegens of its arena and its
 *       ancestors, then tries to import; it sleeps only if, back under its
 *       lock, that sum has not moved;
 *     - a free in arena A, after unlocking A, reads A's vm_desc_waiters and,
 *       if non-zero, broadcasts (under each lock) the waiting descendants.
 *   Either the sleeper sees the new generation or the freer sees the
 *   sleeper (a Dekker pair on seq_cst atomics), and the broadcast happens
 *   under the sleeper's lock, so it cannot fall between the check and the
 *   wait.  Arenas whose import function is not another arena's (no source)
 *   also wake every 100 ms to retry.  VM_NOSLEEP never waits; VM_ABORT
 *   fails at once; VM_PANIC turns failure into a report and abort().
 *
 * 7. Errors
 *
 *   Invalid arguments return NULL with errno EINVAL and change nothing.  A
 *   free the hash cannot match is diagnosed (never allocated, inside a
 *   segment, wrong size, wrong arena) and reported through error.c; the
 *   default policy aborts, report-and-continue leaves the arena unchanged.
 */
#include "vmem_impl.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../debug/debug.h"
#include "qcache.h"
#include <vmem_root.h>

pthread_mutex_t vmem__list_lock = PTHREAD_MUTEX_INITIALIZER;
vmem_t *vmem__list_head;
static vmem_t *list_tail;
static uint32_t next_arena_id = 1;

/*
 * A debugger finds the arenas through vmem_debug_root (root.c).  Nothing
 * calls into root.o, so a static link would drop it: this reference, in the
 * object every program that creates an arena links, keeps it.
 */
__attribute__((used)) static const vmem_root_t *const keep_root = &vmem_debug_root;

static vmem_pool_t arena_pool =
    VMEM_POOL_INITIALIZER("vmem_arena", sizeof(vmem_t), VMEM_META_ARENAS);

#define VM_POLICY (VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT)
#define VM_KNOWN                                                                                   \
	(VM_NOSLEEP | VM_PANIC | VM_PUSHPAGE | VM_NORMALPRI | VM_POLICY | VM_MEMLOAD |             \
	 VM_NORELOC | VM_ABORT | VM_ENDALLOC)
#define VMC_KNOWN                                                                                  \
	(VMC_POPULATOR | VMC_NO_QCACHE | VMC_IDENTIFIER | VMC_XALLOC | VMC_XALIGN | VMC_DUMPSAFE)
#define VM_TIMED_WAIT_NS 100000000L /* retry interval without a source arena */

/* Known bits only, and at most one fit policy. */
static bool call_flags_ok(int f)
{
	int policy = f & VM_POLICY;

	return (f & ~VM_KNOWN) == 0 && (policy & (policy - 1)) == 0;
}

/* An invalid argument: EINVAL, or with VM_PANIC a fatal report. */
static void *invalid(int vmflag, const char *func, const char *what)
{
	if (vmflag & VM_PANIC)
		vmem__panic("%s: %s", func, what);
	errno = EINVAL;
	return NULL;
}

const char *vmem_name(const vmem_t *vmp)
{
	return vmp != NULL ? vmp->vm_name : NULL;
}

/* ---- waiting and waking --------------------------------------------------- */

/* Sum of the free generations of vmp and every ancestor. */
static uint64_t chain_gen(const vmem_t *vmp)
{
	uint64_t g = 0;

	for (; vmp != NULL; vmp = vmp->vm_source)
		g += atomic_load(&vmp->vm_freegen);
	return g;
}

/*
 * A VM_SLEEP allocation in vmp is about to wait (delta 1) or is done
 * (delta -1).  vm_sleepers (here and in every ancestor) makes cached frees
 * bypass the magazines; vm_desc_waiters (ancestors) makes their frees wake
 * importing arenas.
 */
static void count_sleeper(vmem_t *vmp, int delta)
{
	atomic_fetch_add(&vmp->vm_sleepers, (unsigned)delta);
	for (vmp = vmp->vm_source; vmp != NULL; vmp = vmp->vm_source) {
		atomic_fetch_add(&vmp->vm_sleepers, (unsigned)delta);
		atomic_fetch_add(&vmp->vm_desc_waiters, (unsigned)delta);
	}
}

/*
 * Reap the quantum caches of vmp and of the arenas importing from it (lock
 * dropped): objects sitting in magazines and empty slabs hold space that
 * this allocation may need.  True if the arena gained free space.  At most
 * VMEM_REAP_MAX arenas are reaped; the others are pinned so that a
 * concurrent destroy waits for the reap.
 */
#define VMEM_REAP_MAX 64
static _Atomic unsigned cached_arenas; /* arenas that have quantum caches */

static bool reap_locked(vmem_t *vmp)
{
	vmem_t *set[VMEM_REAP_MAX];
	int n = 0, i;
	uint64_t gen = atomic_load(&vmp->vm_freegen);

	if (atomic_load_explicit(&cached_arenas, memory_order_relaxed) == 0)
		return false;
	/* Lock order: the list lock is never taken under an arena lock. */
	pthread_mutex_unlock(&vmp->vm_lock);
	pthread_mutex_lock(&vmem__list_lock);
	set[n++] = vmp;
	for (i = 0; i < n; i++) {
		for (vmem_t *c = set[i]->vm_children; c != NULL && n < VMEM_REAP_MAX;
		     c = c->vm_sibling) {
			atomic_fetch_add(&c->vm_pins, 1);
			set[n++] = c;
		}
	}
	pthread_mutex_unlock(&vmem__list_lock);
	for (i = n - 1; i >= 0; i--) { /* importers first: their slabs free our spans */
		if (set[i]->vm_nqcache != 0)
			(void)vmem__qc_reap(set[i], true);
		if (i > 0)
			atomic_fetch_sub(&set[i]->vm_pins, 1);
	}
	pthread_mutex_lock(&vmp->vm_lock);
	return atomic_load(&vmp->vm_freegen) != gen;
}

/* Something was freed or added in vmp (lock held): wake its own sleepers. */
static void freed_locked(vmem_t *vmp)
{
	atomic_fetch_add(&vmp->vm_freegen, 1);
	if (vmp->vm_nwaiters != 0)
		pthread_cond_broadcast(&vmp->vm_cv);
}

static void wake_subtree(vmem_t *vmp)
{
	vmem_t *c;

	for (c = vmp->vm_children; c != NULL; c = c->vm_sibling) {
		pthread_mutex_lock(&c->vm_lock);
		if (c->vm_nwaiters != 0)
			pthread_cond_broadcast(&c->vm_cv);
		pthread_mutex_unlock(&c->vm_lock);
		if (atomic_load(&c->vm_desc_waiters) != 0)
			wake_subtree(c);
	}
}

/* After a free in vmp (lock dropped): wake sleepers in importing arenas. */
static void wake_importers(vmem_t *vmp)
{
	if (atomic_load(&vmp->vm_desc_waiters) == 0)
		return;
	pthread_mutex_lock(&vmem__list_lock);
	wake_subtree(vmp);
	pthread_mutex_unlock(&vmem__list_lock);
}

static void sleep_locked(vmem_t *vmp)
{
	vmp->vm_nwaiters++;
	if (vmp->vm_import != NULL && vmp->vm_source == NULL) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += VM_TIMED_WAIT_NS;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&vmp->vm_cv, &vmp->vm_lock, &ts);
	} else {
		pthread_cond_wait(&vmp->vm_cv, &vmp->vm_lock);
	}
	vmp->vm_nwaiters--;
	vmp->vm_ctr.vc_wait++;
}

/* No metadata could be mapped: back off (lock dropped), then retry. */
static void populate_wait_locked(vmem_t *vmp, unsigned *backoff_ms)
{
	struct timespec ts;

	if (*backoff_ms < 64)
		*backoff_ms = *backoff_ms ? *backoff_ms * 2 : 1;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)*backoff_ms * 1000000L;
	vmp->vm_ctr.vc_populate_wait++;
	pthread_mutex_unlock(&vmp->vm_lock);
	nanosleep(&ts, NULL);
	pthread_mutex_lock(&vmp->vm_lock);
}

/* ---- imports -------------------------------------------------------------- */

/* The illumos import and release callbacks, adapted to the internal form. */
static int import_illumos(vmem_t *vmp, size_t *sizep, size_t align, int vmflag, uintptr_t *addrp)
{
	void *p;

	if (vmp->vm_cflags & VMC_XALLOC)
		p = vmp->vm_afunc.x(vmp->vm_source, sizep, align, vmflag);
	else
		p = vmp->vm_afunc.a(vmp->vm_source, *sizep, vmflag);
	if (p == NULL)
		return ENOMEM;
	*addrp = (uintptr_t)p;
	return 0;
}

static void release_illumos(vmem_t *vmp, uintptr_t addr, size_t size)
{
	vmp->vm_ffunc(vmp->vm_source, (void *)addr, size);
}

/*
 * Imports cannot honour address limits (the source picks the address), so
 * only requests without them import.  Unlike illumos, nocross requests do
 * import: the span is made large enough to hold the request wherever the
 * source places it.
 */
static bool can_import(const vmem_t *vmp, const vmem_req_t *r)
{
	return vmp->vm_import != NULL && r->rq_min == 0 && r->rq_last == UINTPTR_MAX;
}

/* Would a span of `size` more take the arena above its limit? */
static bool over_limit(const vmem_t *vmp, size_t size)
{
	return vmp->vm_limit != 0 && (vmp->vm_ctr.vc_mem_total > vmp->vm_limit ||
	                              size > vmp->vm_limit - vmp->vm_ctr.vc_mem_total);
}

/*
 * Run the reclaim callback (lock dropped).  True if the arena gained free
 * space meanwhile, so that the allocation should be tried again.
 */
static bool reclaim_locked(vmem_t *vmp, int vmflag)
{
	uint64_t gen = atomic_load(&vmp->vm_freegen);

	if (vmp->vm_reclaim == NULL)
		return false;
	pthread_mutex_unlock(&vmp->vm_lock);
	vmp->vm_reclaim(vmp, vmflag);
	pthread_mutex_lock(&vmp->vm_lock);
	return atomic_load(&vmp->vm_freegen) != gen;
}

/*
 * Import a span that can hold r.  Drops vm_lock around the import
 * function.  A span the arena cannot use (misaligned, overlapping, too
 * small, or no tags left to describe it) goes straight back.
 */
static int import_locked(vmem_t *vmp, const vmem_req_t *r, vmem_seg_t **spanp)
{
	size_t q = vmp->vm_quantum, aq = q, pad = r->rq_phase, isize, want, ialign;
	uintptr_t addr, t;
	int rc, iflags = (r->rq_flags & VM_KMFLAGS & ~VM_PANIC) | VM_NOSLEEP;

	if (vmp->vm_source != NULL && vmp->vm_source->vm_quantum > aq)
		aq = vmp->vm_source->vm_quantum;
	if (vmp->vm_import_quantum > aq)
		aq = vmp->vm_import_quantum;
	if (r->rq_align > aq && !(vmp->vm_cflags & VMC_XALIGN))
		pad = (r->rq_phase & (aq - 1)) != 0 ? r->rq_align - q : r->rq_align - aq;
	if (__builtin_add_overflow(r->rq_rsize, pad, &isize))
		return ENOMEM;
	if (r->rq_nocross != 0) {
		size_t g = vmem__guaranteed_size(vmp, r);

		if (g == 0)
			return ENOMEM;
		if (g > isize)
			isize = g;
	}
	if (isize < vmp->vm_min_import)
		isize = vmp->vm_min_import;
	if (isize > SIZE_MAX - (aq - 1))
		return ENOMEM;
	isize = (isize + aq - 1) & ~(aq - 1);
	ialign = (vmp->vm_cflags & VMC_XALIGN) && r->rq_align > aq ? r->rq_align : aq;
	want = isize;
	if (over_limit(vmp, isize))
		return ENOMEM;

	pthread_mutex_unlock(&vmp->vm_lock);
	rc = vmp->vm_import(vmp, &isize, ialign, iflags, &addr);
	pthread_mutex_lock(&vmp->vm_lock);
	if (rc != 0)
		return rc;
	if (isize < want || ((addr | isize) & (q - 1)) != 0 || isize - 1 > UINTPTR_MAX - addr ||
	    over_limit(vmp, isize) || (addr == 0 && !vmp->vm_zero_ok) ||
	    vmem__span_overlaps(vmp, addr, isize) || !vmem__seg_fit(r, addr, isize, false, &t) ||
	    vmem__seg_reserve(vmp, VMEM_SEGS_PER_SPAN + VMEM_SEGS_PER_ALLOC) != 0) {
		pthread_mutex_unlock(&vmp->vm_lock);
		if (vmp->vm_release != NULL)
			vmp->vm_release(vmp, addr, isize);
		pthread_mutex_lock(&vmp->vm_lock);
		return ENOMEM;
	}
	*spanp = vmem__span_create(vmp, addr, isize, true)->vs_aprev; /* the span marker */
	return 0;
}

/*
 * Take a wholly free imported span off the arena (lock held); the caller
 * releases [*startp, +*sizep) to the source after unlocking.
 */
static void span_take_locked(vmem_t *vmp, vmem_seg_t *fsp, uintptr_t *startp, size_t *sizep)
{
	vmem_seg_t *span = fsp->vs_aprev;

	*startp = span->vs_start;
	*sizep = span->vs_size;
	vmem__free_remove(vmp, fsp);
	fsp->vs_aprev->vs_anext = fsp->vs_anext;
	fsp->vs_anext->vs_aprev = fsp->vs_aprev;
	vmem__span_unlink(vmp, span);
	vmem__seg_put(vmp, fsp);
	vmem__seg_put(vmp, span);
}

static bool span_returnable(const vmem_t *vmp, const vmem_seg_t *fsp)
{
	return vmp->vm_release != NULL && fsp != NULL && vmem__span_wholly_free(fsp) &&
	       (fsp->vs_aprev->vs_flags & VMEM_SEGF_IMPORTED) != 0;
}

/*
 * An allocation imported `span` and then did not use it: either another
 * thread's concurrent import left a fit that was taken first, or the fit
 * failed for want of metadata.  Give it back now if it is wholly free, or
 * nothing would ever return it (spans go back when a free empties them).
 * Lock held; dropped around the release.
 */
static void return_unused_import(vmem_t *vmp, vmem_seg_t *span)
{
	uintptr_t start;
	size_t size;

	if (!span_returnable(vmp, span->vs_anext))
		return;
	span_take_locked(vmp, span->vs_anext, &start, &size);
	pthread_mutex_unlock(&vmp->vm_lock);
	vmp->vm_release(vmp, start, size);
	pthread_mutex_lock(&vmp->vm_lock);
}

/* ---- allocation ----------------------------------------------------------- */

/*
 * Allocate r from vmp (lock held; may be dropped to import or sleep).
 * Returns 0 and the address, or ENOMEM.
 */
static int xalloc_locked(vmem_t *vmp, const vmem_req_t *r, uintptr_t *addrp)
{
	bool sleeper = (r->rq_flags & (VM_NOSLEEP | VM_ABORT)) == 0, counted = false;
	bool importing = can_import(vmp, r);
	unsigned backoff = 0, reclaims = 0;
	uint64_t gen = 0, fgen;
	int err = ENOMEM;
	/* The span imported for this request, if the lock has been held since. */
	vmem_seg_t *fresh = NULL;

	for (;;) {
		vmem_seg_t *fsp, *asp;
		uintptr_t addr;
		bool nomem = true;

		fsp = vmem__seg_reserve(vmp, VMEM_SEGS_PER_ALLOC) == 0
		          ? vmem__fit(vmp, r, &addr, &nomem)
		          : NULL;
		if (fsp == NULL && nomem) {
			/* Out of metadata, not of space: a sleeper backs off and retries. */
			if (fresh != NULL)
				return_unused_import(vmp, fresh);
			fresh = NULL;
			if (!sleeper)
				break;
			populate_wait_locked(vmp, &backoff);
			continue;
		}
		if (fsp != NULL) {
			asp = vmem__carve(vmp, fsp, addr, r->rq_rsize, r->rq_size);
			asp->vs_flags |= r->rq_segflags;
			if (vmem_debug)
				vmem__dbg_on_alloc(vmp, asp);
			*addrp = addr;
			err = 0;
			if (fresh != NULL)
				return_unused_import(vmp, fresh);
			break;
		}
		if (fresh != NULL) {
			/*
			 * Cannot happen (the span was checked to hold the request
			 * and the lock held since), but importing again would only
			 * pile up unused spans.
			 */
			return_unused_import(vmp, fresh);
			fresh = NULL;
			importing = false;
		}
		if (sleeper && !counted) {
			count_sleeper(vmp, 1);
			counted = true;
		}
		if (sleeper)
			gen = chain_gen(vmp);
		fgen = atomic_load(&vmp->vm_freegen);
		if (importing && import_locked(vmp, r, &fresh) == 0)
			continue;
		/*
		 * A failed import may itself have freed space here: a source
		 * reaps its importers' caches before it fails, which gives our
		 * empty slabs back to us.  Our own reap would not see that.
		 */
		if (atomic_load(&vmp->vm_freegen) != fgen && (sleeper || reclaims < 4)) {
			reclaims++;
			continue;
		}
		if ((r->rq_flags & VM_ABORT) == 0 && (sleeper || reclaims < 4) &&
		    reap_locked(vmp)) {
			reclaims++;
			continue;
		}
		if ((r->rq_flags & VM_ABORT) == 0 && (sleeper || reclaims < 4) &&
		    reclaim_locked(vmp, r->rq_flags)) {
			reclaims++;
			continue;
		}
		if (!sleeper)
			break;
		if (chain_gen(vmp) != gen)
			continue;
		sleep_locked(vmp);
	}
	if (counted)
		count_sleeper(vmp, -1);
	if (err != 0)
		vmp->vm_ctr.vc_fail++;
	return err;
}

/* Allocate r, taking the lock; applies VM_PANIC. */
static int xalloc(vmem_t *vmp, const vmem_req_t *r, uintptr_t *addrp)
{
	int err;

	pthread_mutex_lock(&vmp->vm_lock);
	err = xalloc_locked(vmp, r, addrp);
	pthread_mutex_unlock(&vmp->vm_lock);
	if (err != 0 && (r->rq_flags & VM_PANIC) && (r->rq_segflags & VMEM_SEGF_XALLOC))
		vmem__panic(
		    "vmem_xalloc('%s', %zu, %zu, %zu, %zu, %#lx, %#lx, %#x): cannot satisfy "
		    "mandatory allocation",
		    vmp->vm_name, r->rq_size, r->rq_align, r->rq_phase, r->rq_nocross,
		    (unsigned long)r->rq_min,
		    (unsigned long)(r->rq_last == UINTPTR_MAX ? 0 : r->rq_last + 1), r->rq_flags);
	if (err != 0 && (r->rq_flags & VM_PANIC))
		vmem__panic("vmem_alloc('%s', %zu, %#x): cannot satisfy mandatory allocation",
		            vmp->vm_name, r->rq_size, r->rq_flags);
	return err;
}

static bool round_size(const vmem_t *vmp, size_t size, size_t *rsizep)
{
	size_t q = vmp->vm_quantum;

	if (size == 0 || size > SIZE_MAX - (q - 1))
		return false;
	*rsizep = (size + q - 1) & ~(q - 1);
	return true;
}

int vmem__alloc(vmem_t *vmp, size_t size, int vmflag, uintptr_t *addrp)
{
	vmem_req_t r;

	if (vmp == NULL || !call_flags_ok(vmflag))
		return EINVAL;
	if (size - 1 < vmp->vm_qcache_max) {
		int err = vmem__qc_alloc(vmp->vm_qcache[(size - 1) >> vmp->vm_qshift], size, vmflag,
		                         addrp);

		if (err != 0 && (vmflag & VM_PANIC))
			vmem__panic(
			    "vmem_alloc('%s', %zu, %#x): cannot satisfy mandatory allocation",
			    vmp->vm_name, size, vmflag);
		return err;
	}
	if (!round_size(vmp, size, &r.rq_rsize))
		return EINVAL;
	r.rq_size = size;
	r.rq_align = vmp->vm_quantum;
	r.rq_phase = 0;
	r.rq_nocross = 0;
	r.rq_min = 0;
	r.rq_last = UINTPTR_MAX;
	r.rq_flags = vmflag;
	r.rq_segflags = 0;
	return xalloc(vmp, &r, addrp);
}

void *vmem_alloc(vmem_t *vmp, size_t size, int vmflag)
{
	VMEM_API_SCOPE();
	uintptr_t addr;
	int err;

	/* A cached size from this thread's magazines: the common case, no calls. */
	if (!vmem_debug && vmp != NULL && size - 1 < vmp->vm_qcache_max && call_flags_ok(vmflag) &&
	    vmem__qc_alloc_fast(vmp->vm_qcache[(size - 1) >> vmp->vm_qshift], &addr))
		return (void *)addr;
	err = vmem__alloc(vmp, size, vmflag, &addr);

	if (err == EINVAL)
		return invalid(vmflag, "vmem_alloc",
		               "bad arguments (size 0 or too large, or flags)");
	if (err != 0) {
		errno = err;
		return NULL;
	}
	return (void *)addr;
}

/*
 * Build a request from vmem_xalloc()'s arguments; maxaddr is exclusive
 * (NULL: no limit).  Returns NULL, or what is wrong.
 */
static const char *xalloc_request(const vmem_t *vmp, size_t size, size_t align, size_t phase,
                                  size_t nocross, uintptr_t min, uintptr_t last, int vmflag,
                                  vmem_req_t *r)
{
	size_t q = vmp->vm_quantum;

	if (!call_flags_ok(vmflag))
		return "invalid flags";
	if (!round_size(vmp, size, &r->rq_rsize))
		return "size is 0 or too large";
	if (align == 0)
		align = q;
	if (((align | phase | nocross) & (q - 1)) != 0)
		return "parameters not vm_quantum aligned";
	if (!vmem__ispow2(align) || phase >= align || (nocross != 0 && !vmem__ispow2(nocross)))
		return "parameters inconsistent or invalid";
	if (nocross != 0 &&
	    (align > nocross || phase > nocross - r->rq_rsize || r->rq_rsize > nocross))
		return "overconstrained allocation";
	if (min > last)
		return "minaddr above maxaddr";
	if (last - min < r->rq_rsize - 1)
		return "address range smaller than the size";
	r->rq_size = size;
	r->rq_align = align;
	r->rq_phase = phase;
	r->rq_nocross = nocross;
	r->rq_min = min;
	r->rq_last = last;
	r->rq_flags = vmflag;
	r->rq_segflags = VMEM_SEGF_XALLOC;
	return NULL;
}

int vmem__xalloc(vmem_t *vmp, size_t size, size_t align, size_t phase, size_t nocross,
                 uintptr_t min, uintptr_t last, int vmflag, uintptr_t *addrp, const char **whyp)
{
	vmem_req_t r;
	const char *bad;

	if (vmp == NULL) {
		if (whyp != NULL)
			*whyp = "NULL arena";
		return EINVAL;
	}
	bad = xalloc_request(vmp, size, align, phase, nocross, min, last, vmflag, &r);
	if (bad != NULL) {
		if (whyp != NULL)
			*whyp = bad;
		return EINVAL;
	}
	return xalloc(vmp, &r, addrp);
}

/*
 * The last address a segment's extent may reach under illumos' maxaddr
 * (exclusive, NULL: none).  illumos bounds the caller's range
 * [addr, addr + size), not the quantum-rounded extent: vmem_alloc(9F)'s
 * maxaddr is "the maximum address which may be included in the segment",
 * and a segment is what the caller asked for.  A start t is always a
 * quantum multiple, so t + size <= maxaddr iff t <= P2ALIGN(maxaddr - size),
 * i.e. iff the extent ends at or below P2ALIGN(maxaddr - size) + rsize - 1
 * (which cannot wrap: P2ALIGN(2^64 - 1 - size) <= 2^64 - rsize).  The
 * extent may then reach past maxaddr by less than a quantum, as in illumos.
 * With a quantum-aligned maxaddr this is maxaddr - 1.  Requests that
 * xalloc_request() refuses anyway keep maxaddr - 1, so the refusal names
 * the caller's range.
 */
static uintptr_t xalloc_last(const vmem_t *vmp, size_t size, uintptr_t min, void *maxaddr)
{
	uintptr_t max = (uintptr_t)maxaddr;
	size_t rsize;

	if (maxaddr == NULL)
		return UINTPTR_MAX;
	if (vmp == NULL || max <= min || max - min < size || !round_size(vmp, size, &rsize))
		return max - 1;
	return ((max - size) & ~(vmp->vm_quantum - 1)) + (rsize - 1);
}

void *vmem_xalloc(vmem_t *vmp, size_t size, size_t align_arg, size_t phase, size_t nocross,
                  void *minaddr, void *maxaddr, int vmflag)
{
	VMEM_API_SCOPE();
	uintptr_t addr, last = xalloc_last(vmp, size, (uintptr_t)minaddr, maxaddr);
	const char *bad = NULL;
	int err;

	err = vmem__xalloc(vmp, size, align_arg, phase, nocross, (uintptr_t)minaddr, last, vmflag,
	                   &addr, &bad);
	if (err == EINVAL)
		return invalid(vmflag, "vmem_xalloc", bad);
	if (err != 0) {
		errno = err;
		return NULL;
	}
	return (void *)addr;
}

/* ---- freeing ---------------------------------------------------------------- */

/* An arena other than self holding an ALLOC segment at addr (name copied). */
static bool find_owner(const vmem_t *self, uintptr_t addr, char *name, vmem_error_info_t *info)
{
	vmem_t *a;
	bool found = false;

	pthread_mutex_lock(&vmem__list_lock);
	for (a = vmem__list_head; a != NULL && !found; a = a->vm_next) {
		vmem_seg_t *vsp;
		uint64_t lookups;

		if (a == self)
			continue;
		pthread_mutex_lock(&a->vm_lock);
		lookups = a->vm_ctr.vc_lookup;
		if (vmem__hash_lookup(a, addr) != NULL) {
			vsp = *vmem__hash_lookup(a, addr);
			snprintf(name, VMEM_NAMELEN + 1, "%s", a->vm_name);
			info->ve_seg_size = vsp->u.a.vs_asize;
			if (vmem_debug)
				vmem__dbg_describe_seg(vsp, info);
			found = true;
		}
		a->vm_ctr.vc_lookup = lookups; /* a diagnosis is not a lookup */
		pthread_mutex_unlock(&a->vm_lock);
	}
	pthread_mutex_unlock(&vmem__list_lock);
	return found;
}

/* Format and report a refused free; the debug layer adds stacks first. */
void vmem__report_free_error(vmem_t *vmp, vmem_error_info_t *info)
{
	const char *func = info->ve_func, *name = vmp->vm_name;
	unsigned long addr = (unsigned long)info->ve_addr;
	size_t size = info->ve_size;

	if (vmem_debug)
		vmem__dbg_classify(vmp, info);
	switch (info->ve_kind) {
	case VMEM_ERR_INTERIOR_FREE:
		vmem__report(info,
		             "%s('%s', %#lx, %zu): free of an address inside a segment: %#lx is "
		             "%#lx+%#lx, a segment of size %zu",
		             func, name, addr, size, addr, (unsigned long)info->ve_seg_start,
		             (unsigned long)(info->ve_addr - info->ve_seg_start),
		             info->ve_seg_size);
		break;
	case VMEM_ERR_WRONG_ARENA:
		vmem__report(
		    info,
		    "%s('%s', %#lx, %zu): free to the wrong arena: %#lx was allocated from "
		    "arena '%s' (size %zu)",
		    func, name, addr, size, addr, info->ve_seg_arena, info->ve_seg_size);
		break;
	case VMEM_ERR_DOUBLE_FREE:
		vmem__report(info,
		             "%s('%s', %#lx, %zu): double free: %#lx (size %zu) was already freed",
		             func, name, addr, size, addr, info->ve_seg_size);
		break;
	case VMEM_ERR_SIZE_MISMATCH:
		vmem__report(
		    info,
		    "%s('%s', %#lx, %zu): size mismatch: segment %#lx was allocated with size "
		    "%zu, freed with size %zu",
		    func, name, addr, size, addr, info->ve_seg_size, size);
		break;
	case VMEM_ERR_FREE_XALLOC:
		vmem__report(
		    info,
		    "%s('%s', %#lx, %zu): vmem_free of a vmem_xalloc segment: free it with "
		    "vmem_xfree",
		    func, name, addr, size);
		break;
	case VMEM_ERR_XFREE_CACHED:
		vmem__report(info,
		             "%s('%s', %#lx, %zu): vmem_xfree of a quantum-cached segment: free it "
		             "with vmem_free",
		             func, name, addr, size);
		break;
	default:
		vmem__report(
		    info, "%s('%s', %#lx, %zu): bad free: %#lx %s", func, name, addr, size, addr,
		    info->ve_seg_start != 0 ? "is free space in this arena (freed already?)"
		                            : "was never allocated from this arena");
		break;
	}
}

/*
 * Debug library: a caller's free of an address in a quantum-cache slab
 * that did not come through the object's own cache (a size that rounds to
 * another cache or to none, or vmem_xfree) is about the object, not the
 * slab: diagnose it from the object's audit.  True if reported.  No lock
 * held (the slab locks come before the arena lock).
 */
static bool report_object_free(vmem_t *vmp, uintptr_t addr, size_t size, const char *func)
{
	vmem_error_info_t info = {.ve_func = func,
	                          .ve_arena = vmp,
	                          .ve_arena_name = vmp->vm_name,
	                          .ve_addr = addr,
	                          .ve_size = size};

	if (!vmem_debug || vmp->vm_nqcache == 0 || !vmem__qc_diagnose(vmp, addr, size, &info))
		return false;
	if (strcmp(func, "vmem_xfree") == 0)
		info.ve_kind = VMEM_ERR_XFREE_CACHED; /* the cache's ground, whatever the object */
	vmem__report_free_error(vmp, &info);
	return true;
}

/* Diagnose and report a free whose address the hash does not know. */
static void report_unknown_free(vmem_t *vmp, uintptr_t addr, size_t size, const char *func)
{
	vmem_error_info_t info = {.ve_kind = VMEM_ERR_BAD_FREE,
	                          .ve_func = func,
	                          .ve_arena = vmp,
	                          .ve_arena_name = vmp->vm_name,
	                          .ve_addr = addr,
	                          .ve_size = size};
	char owner[VMEM_NAMELEN + 1];
	vmem_seg_t *vsp;

	if (report_object_free(vmp, addr, size, func))
		return;
	pthread_mutex_lock(&vmp->vm_lock);
	vsp = vmem__seg_find(vmp, addr);
	if (vsp != NULL && vsp->vs_type == VMEM_SEG_ALLOC) {
		info.ve_seg_start = vsp->vs_start;
		info.ve_seg_size = vsp->u.a.vs_asize;
		/* An object of a quantum-cache slab, given to vmem_xfree? */
		info.ve_kind = (vsp->vs_flags & VMEM_SEGF_SLAB) && strcmp(func, "vmem_xfree") == 0
		                   ? VMEM_ERR_XFREE_CACHED
		                   : VMEM_ERR_INTERIOR_FREE;
		if (vmem_debug)
			vmem__dbg_describe_seg(vsp, &info);
	} else if (vsp != NULL) {
		info.ve_seg_start = vsp->vs_start; /* free space: "freed already?" */
	}
	pthread_mutex_unlock(&vmp->vm_lock);
	if (vsp == NULL && find_owner(vmp, addr, owner, &info)) {
		info.ve_kind = VMEM_ERR_WRONG_ARENA;
		info.ve_seg_start = addr;
		info.ve_seg_arena = owner;
	}
	vmem__report_free_error(vmp, &info);
}

static bool size_matches(const vmem_t *vmp, const vmem_seg_t *vsp, size_t size)
{
	size_t rsize;

	if (size == vsp->u.a.vs_asize)
		return true;
	return vmp->vm_free_rounded && round_size(vmp, size, &rsize) && rsize == vsp->vs_size;
}

/*
 * A caller's free that names what the quantum cache owns: a slab (its first
 * object starts where the slab does; freeing the slab would pull the object
 * and its neighbours out from under the cache), or, given to vmem_xfree, an
 * object the cache served straight from the arena (it must go back through
 * vmem_free, which keeps the cache's count of such objects).
 */
static void report_cache_free(vmem_t *vmp, vmem_seg_t *vsp, size_t size, const char *func)
{
	vmem_error_info_t info = {.ve_kind = strcmp(func, "vmem_xfree") == 0
	                                         ? VMEM_ERR_XFREE_CACHED
	                                         : VMEM_ERR_INTERIOR_FREE,
	                          .ve_func = func,
	                          .ve_arena = vmp,
	                          .ve_arena_name = vmp->vm_name,
	                          .ve_addr = vsp->vs_start,
	                          .ve_size = size,
	                          .ve_seg_start = vsp->vs_start,
	                          .ve_seg_size = vsp->u.a.vs_asize};

	if (vmem_debug)
		vmem__dbg_describe_seg(vsp, &info);
	pthread_mutex_unlock(&vmp->vm_lock);
	if (report_object_free(vmp, info.ve_addr, size, func))
		return;
	vmem__report_free_error(vmp, &info);
}

/*
 * Free [addr, addr + size), which must be an allocated segment of vmp.
 * `internal`: the quantum cache giving back a slab (callers never may).
 */
static void xfree_impl(vmem_t *vmp, uintptr_t addr, size_t size, const char *func, bool internal)
{
	vmem_seg_t **linkp, *vsp, *fsp;
	uintptr_t span_start = 0;
	size_t span_size = 0;
	bool give_back = false;

	pthread_mutex_lock(&vmp->vm_lock);
	linkp = vmem__hash_lookup(vmp, addr);
	if (linkp == NULL) {
		pthread_mutex_unlock(&vmp->vm_lock);
		report_unknown_free(vmp, addr, size, func);
		return;
	}
	vsp = *linkp;
	if (!internal &&
	    ((vsp->vs_flags & VMEM_SEGF_SLAB) != 0 ||
	     ((vsp->vs_flags & VMEM_SEGF_QDIRECT) != 0 && strcmp(func, "vmem_xfree") == 0))) {
		report_cache_free(vmp, vsp, size, func); /* unlocks */
		return;
	}
	if (!size_matches(vmp, vsp, size) || (vmem_debug && !vmem__dbg_free_allowed(vsp, func))) {
		vmem_error_info_t info = {.ve_kind = size_matches(vmp, vsp, size)
		                                         ? VMEM_ERR_FREE_XALLOC
		                                         : VMEM_ERR_SIZE_MISMATCH,
		                          .ve_func = func,
		                          .ve_arena = vmp,
		                          .ve_arena_name = vmp->vm_name,
		                          .ve_addr = addr,
		                          .ve_size = size,
		                          .ve_seg_start = addr,
		                          .ve_seg_size = vsp->u.a.vs_asize};

		if (vmem_debug)
			vmem__dbg_describe_seg(vsp, &info);
		pthread_mutex_unlock(&vmp->vm_lock);
		vmem__report_free_error(vmp, &info);
		return;
	}
	vmem__hash_remove(vmp, linkp);
	if (vmem_debug)
		vmem__dbg_on_free(vmp, vsp, size, func);
	fsp = vmem__release(vmp, vsp);
	freed_locked(vmp);
	if (span_returnable(vmp, fsp)) {
		span_take_locked(vmp, fsp, &span_start, &span_size);
		give_back = true;
	}
	pthread_mutex_unlock(&vmp->vm_lock);
	if (give_back)
		vmp->vm_release(vmp, span_start, span_size);
	wake_importers(vmp);
}

void vmem__free(vmem_t *vmp, uintptr_t addr, size_t size, const char *func)
{
	if (vmp == NULL)
		vmem__panic("%s(NULL, %#lx, %zu): NULL arena", func, (unsigned long)addr, size);
	if (size - 1 < vmp->vm_qcache_max) {
		vmem__qc_free(vmp->vm_qcache[(size - 1) >> vmp->vm_qshift], addr, size);
		return;
	}
	xfree_impl(vmp, addr, size, func, false);
}

int vmem__alloc_seg(vmem_t *vmp, size_t size, size_t align, int vmflag, uint8_t segflags,
                    uintptr_t *addrp)
{
	vmem_req_t r;

	if (!round_size(vmp, size, &r.rq_rsize))
		return EINVAL;
	r.rq_size = size;
	r.rq_align = align != 0 ? align : vmp->vm_quantum;
	r.rq_phase = 0;
	r.rq_nocross = 0;
	r.rq_min = 0;
	r.rq_last = UINTPTR_MAX;
	r.rq_flags = vmflag;
	r.rq_segflags = segflags;
	return xalloc(vmp, &r, addrp);
}

void vmem__free_seg(vmem_t *vmp, uintptr_t addr, size_t size)
{
	xfree_impl(vmp, addr, size, "vmem_free", true);
}

/*
 * A quantum cache handed back an object that is in none of its slabs: an
 * object it served straight from the arena, or a bad free that went into a
 * magazine unchecked.  (Reported here, when it reaches the arena.)
 */
void vmem__free_cached_object(vmem_t *vmp, uintptr_t addr, size_t size, struct vmem_qcache *qc)
{
	vmem_seg_t **linkp;
	uint8_t flags = 0;
	bool found;

	pthread_mutex_lock(&vmp->vm_lock);
	linkp = vmem__hash_lookup(vmp, addr);
	found = linkp != NULL && (*linkp)->u.a.vs_asize == size;
	if (found)
		flags = (*linkp)->vs_flags;
	pthread_mutex_unlock(&vmp->vm_lock);
	if (found && (flags & VMEM_SEGF_QDIRECT)) {
		pthread_mutex_lock(&qc->qc_slab_lock);
		qc->qc_direct_out--;
		pthread_mutex_unlock(&qc->qc_slab_lock);
	} else if (found && (flags & VMEM_SEGF_XALLOC) && !vmem_debug) {
		vmem_error_info_t info = {.ve_kind = VMEM_ERR_FREE_XALLOC,
		                          .ve_func = "vmem_free",
		                          .ve_arena = vmp,
		                          .ve_arena_name = vmp->vm_name,
		                          .ve_addr = addr,
		                          .ve_size = size,
		                          .ve_seg_start = addr,
		                          .ve_seg_size = size};

		vmem__report(&info,
		             "vmem_free('%s', %#lx, %zu): vmem_free of a vmem_xalloc segment: a "
		             "quantum-cached size must be freed with vmem_xfree",
		             vmp->vm_name, (unsigned long)addr, size);
	}
	xfree_impl(vmp, addr, size, "vmem_free", false);
}

void vmem__xfree(vmem_t *vmp, uintptr_t addr, size_t size, const char *func)
{
	if (vmp == NULL)
		vmem__panic("%s(NULL, %#lx, %zu): NULL arena", func, (unsigned long)addr, size);
	xfree_impl(vmp, addr, size, func, false);
}

void vmem_free(vmem_t *vmp, void *vaddr, size_t size)
{
	VMEM_API_SCOPE();

	if (!vmem_debug && vmp != NULL && size - 1 < vmp->vm_qcache_max &&
	    vmem__qc_free_fast(vmp->vm_qcache[(size - 1) >> vmp->vm_qshift], (uintptr_t)vaddr,
	                       atomic_load_explicit(&vmp->vm_sleepers, memory_order_relaxed)))
		return;
	vmem__free(vmp, (uintptr_t)vaddr, size, "vmem_free");
}

void vmem_xfree(vmem_t *vmp, void *vaddr, size_t size)
{
	VMEM_API_SCOPE();
	vmem__xfree(vmp, (uintptr_t)vaddr, size, "vmem_xfree");
}

/* ---- spans ---------------------------------------------------------------- */

/* Add [addr, addr + size) as a span that is never given back.  0 or errno. */
int vmem__add(vmem_t *vmp, uintptr_t addr, size_t size, int vmflag)
{
	unsigned backoff = 0;

	if (vmp == NULL || !call_flags_ok(vmflag) || (vmflag & VM_POLICY))
		return EINVAL;
	if ((addr == 0 && !vmp->vm_zero_ok) || size == 0 ||
	    ((addr | size) & (vmp->vm_quantum - 1)) != 0 || size - 1 > UINTPTR_MAX - addr)
		return EINVAL;
	pthread_mutex_lock(&vmp->vm_lock);
	if (vmem__span_overlaps(vmp, addr, size)) {
		pthread_mutex_unlock(&vmp->vm_lock);
		return EINVAL;
	}
	while (vmem__seg_reserve(vmp, VMEM_SEGS_PER_SPAN) != 0) {
		if (vmflag & (VM_NOSLEEP | VM_ABORT)) {
			pthread_mutex_unlock(&vmp->vm_lock);
			return ENOMEM;
		}
		populate_wait_locked(vmp, &backoff);
		if (vmem__span_overlaps(vmp, addr, size)) {
			pthread_mutex_unlock(&vmp->vm_lock);
			return EINVAL;
		}
	}
	vmem__span_create(vmp, addr, size, false);
	freed_locked(vmp);
	pthread_mutex_unlock(&vmp->vm_lock);
	wake_importers(vmp);
	return 0;
}

void *vmem_add(vmem_t *vmp, void *vaddr, size_t size, int vmflag)
{
	int err;

	err = vmem__add(vmp, (uintptr_t)vaddr, size, vmflag);
	if (err == EINVAL)
		return invalid(vmflag, "vmem_add", "bad arguments");
	if (err != 0) {
		if (vmflag & VM_PANIC)
			vmem__panic("vmem_add('%s', %p, %zu): no memory for metadata", vmp->vm_name,
			            vaddr, size);
		errno = err;
		return NULL;
	}
	return vaddr;
}

int vmem_contains(vmem_t *vmp, void *vaddr, size_t size)
{
	uintptr_t addr = (uintptr_t)vaddr;
	vmem_seg_t *sp;
	int found = 0;

	if (vmp == NULL)
		return 0;
	pthread_mutex_lock(&vmp->vm_lock);
	vmp->vm_ctr.vc_contains++;
	sp = vmem__span_find(vmp, addr);
	if (sp != NULL && (size == 0 || size - 1 <= vmem__last(sp->vs_start, sp->vs_size) - addr))
		found = 1;
	pthread_mutex_unlock(&vmp->vm_lock);
	return found;
}

/* ---- walking ---------------------------------------------------------------- */

static size_t seg_report_size(const vmem_seg_t *vsp)
{
	return vsp->vs_type == VMEM_SEG_ALLOC ? vsp->u.a.vs_asize : vsp->vs_size;
}

/*
 * Give back every wholly free imported span (lock held, dropped around
 * each release).  Needed after a reentrant walk, whose marker can keep a
 * free from noticing that its span became free.
 */
static void return_free_spans_locked(vmem_t *vmp)
{
	for (;;) {
		vmem_seg_t *vsp;
		uintptr_t start;
		size_t size;

		for (vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0; vsp = vsp->vs_anext) {
			if (vsp->vs_type == VMEM_SEG_SPAN && span_returnable(vmp, vsp->vs_anext))
				break;
		}
		if (vsp == &vmp->vm_seg0)
			return;
		span_take_locked(vmp, vsp->vs_anext, &start, &size);
		pthread_mutex_unlock(&vmp->vm_lock);
		vmp->vm_release(vmp, start, size);
		pthread_mutex_lock(&vmp->vm_lock);
	}
}

/*
 * The pieces a walk reports for segment vsp (lock held): the segment
 * itself, or for a quantum-cache slab its objects (held by callers: ALLOC)
 * and the runs of free space between them (FREE).  Returns how many pieces
 * were written to out[] (at most 2 * 64 + 1).
 */
typedef struct walk_piece {
	uintptr_t start;
	size_t size;
	int type;
} walk_piece_t;

#define WALK_PIECES_MAX 130

static int walk_pieces(vmem_t *vmp, const vmem_seg_t *vsp, walk_piece_t *out)
{
	size_t objsize;
	unsigned nobj, i;
	uint64_t freemap;
	int n = 0;
	uintptr_t run = 0;
	bool in_run = false;

	if (!(vsp->vs_flags & VMEM_SEGF_SLAB) || vsp->vs_type != VMEM_SEG_ALLOC ||
	    !vmem__qc_slab_state(vmp, vsp->vs_start, &objsize, &nobj, &freemap)) {
		out[0] = (walk_piece_t){vsp->vs_start, seg_report_size(vsp), vsp->vs_type};
		return 1;
	}
	for (i = 0; i < nobj; i++) {
		uintptr_t a = vsp->vs_start + (uintptr_t)i * objsize;

		if (freemap & (1ULL << i)) {
			if (!in_run)
				run = a;
			in_run = true;
			continue;
		}
		if (in_run)
			out[n++] = (walk_piece_t){run, a - run, VMEM_SEG_FREE};
		in_run = false;
		out[n++] = (walk_piece_t){a, objsize, VMEM_SEG_ALLOC};
	}
	if (!in_run)
		run = vsp->vs_start + (uintptr_t)nobj * objsize;
	if (vsp->vs_start + vsp->vs_size != run || in_run) /* the slab's tail, free */
		out[n++] = (walk_piece_t){run, vsp->vs_start + vsp->vs_size - run, VMEM_SEG_FREE};
	return n;
}

/*
 * VMEM_REENTRANT: the lock is dropped around each callback, so the callback
 * may allocate and free in this arena.  A WALKER marker holds the place.
 * The view is a hint: segments can change between callbacks.
 */
static void walk_reentrant(vmem_t *vmp, int typemask, void (*func)(void *, void *, size_t),
                           void *arg)
{
	vmem_seg_t walker;

	memset(&walker, 0, sizeof(walker));
	walker.vs_type = VMEM_SEG_WALKER;
	pthread_mutex_lock(&vmp->vm_lock);
	vmem__walker_link_after(&vmp->vm_seg0, &walker);
	for (;;) {
		vmem_seg_t *vsp = walker.vs_anext;

		if (vsp == &vmp->vm_seg0)
			break;
		(void)vmem__walker_unlink(vmp, &walker);
		vmem__walker_link_after(vsp, &walker);
		if (vsp->vs_type != VMEM_SEG_WALKER) {
			walk_piece_t pieces[WALK_PIECES_MAX];
			int n = walk_pieces(vmp, vsp, pieces);

			pthread_mutex_unlock(&vmp->vm_lock);
			for (int i = 0; i < n; i++) {
				if (pieces[i].type & typemask)
					func(arg, (void *)pieces[i].start, pieces[i].size);
			}
			pthread_mutex_lock(&vmp->vm_lock);
		}
	}
	(void)vmem__walker_unlink(vmp, &walker);
	if (vmp->vm_release != NULL)
		return_free_spans_locked(vmp);
	freed_locked(vmp);
	pthread_mutex_unlock(&vmp->vm_lock);
	wake_importers(vmp);
}

void vmem_walk(vmem_t *vmp, int typemask, void (*func)(void *, void *, size_t), void *arg)
{
	vmem_seg_t *vsp;

	if (vmp == NULL || func == NULL)
		return;
	/* Cached objects are reported as what they are: empty the magazines. */
	if (vmp->vm_nqcache != 0)
		(void)vmem__qc_reap(vmp, true);
	if ((unsigned)typemask & (unsigned)VMEM_REENTRANT) {
		walk_reentrant(vmp, typemask, func, arg);
		return;
	}
	/* As illumos: the lock is held across callbacks, which must not use vmp. */
	pthread_mutex_lock(&vmp->vm_lock);
	for (vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0; vsp = vsp->vs_anext) {
		if (vsp->vs_type == VMEM_SEG_WALKER)
			continue;
		if (vsp->vs_flags & VMEM_SEGF_SLAB) {
			walk_piece_t pieces[WALK_PIECES_MAX];
			int n = walk_pieces(vmp, vsp, pieces);

			for (int i = 0; i < n; i++) {
				if (pieces[i].type & typemask)
					func(arg, (void *)pieces[i].start, pieces[i].size);
			}
		} else if (vsp->vs_type & typemask) {
			func(arg, (void *)vsp->vs_start, seg_report_size(vsp));
		}
	}
	pthread_mutex_unlock(&vmp->vm_lock);
}

/*
 * VMEM_ALLOC: what callers hold.  Objects sitting in quantum caches
 * (magazines, free slab space) count as free, although the arena's own
 * counters (vmem_kstat) see whole slabs as allocated.
 */
size_t vmem_size(vmem_t *vmp, int typemask)
{
	uint64_t cached = 0, total, inuse;
	size_t size = 0;

	if (vmp == NULL)
		return 0;
	if (vmp->vm_nqcache != 0)
		cached = vmem__qc_cached_bytes(vmp);
	pthread_mutex_lock(&vmp->vm_lock);
	total = vmp->vm_ctr.vc_mem_total;
	inuse = vmp->vm_ctr.vc_mem_inuse;
	pthread_mutex_unlock(&vmp->vm_lock);
	inuse = cached < inuse ? inuse - cached : 0;
	if (typemask & VMEM_SPAN)
		return total;
	if (typemask & VMEM_ALLOC)
		size += inuse;
	if (typemask & VMEM_FREE)
		size += total - inuse;
	return size;
}

size_t vmem__largest_free(vmem_t *vmp)
{
	size_t n;

	pthread_mutex_lock(&vmp->vm_lock);
	n = vmem__largest_free_locked(vmp);
	pthread_mutex_unlock(&vmp->vm_lock);
	return n;
}

void vmem_set_reclaim(vmem_t *vmp, vmem_reclaim_t *fn)
{
	if (vmp == NULL)
		return;
	pthread_mutex_lock(&vmp->vm_lock);
	vmp->vm_reclaim = fn;
	pthread_mutex_unlock(&vmp->vm_lock);
}

void vmem_set_limit(vmem_t *vmp, size_t limit)
{
	if (vmp == NULL)
		return;
	pthread_mutex_lock(&vmp->vm_lock);
	vmp->vm_limit = limit;
	pthread_mutex_unlock(&vmp->vm_lock);
}

void vmem__set_import(vmem_t *vmp, vmem_import_fn *import, vmem_release_fn *release, void *cbarg,
                      size_t import_quantum)
{
	pthread_mutex_lock(&vmp->vm_lock);
	vmp->vm_import = import;
	vmp->vm_release = release;
	vmp->vm_cbarg = cbarg;
	vmp->vm_import_quantum = import_quantum;
	pthread_mutex_unlock(&vmp->vm_lock);
}

static void vmem_destroy_unlisted(vmem_t *vmp);

/* ---- creation and destruction ------------------------------------------------ */

vmem_t *vmem__create(const vmem_create_args_t *a)
{
	vmem_t *vmp;
	int err;

	if (a->ca_name == NULL || !vmem__ispow2(a->ca_quantum) ||
	    (a->ca_vmflag & ~(VMC_KNOWN | VM_KMFLAGS)) != 0)
		return invalid(a->ca_vmflag, "vmem_create", "bad arguments");
	if ((a->ca_base != 0 || a->ca_size != 0) &&
	    ((a->ca_base == 0 && !a->ca_zero_ok) || a->ca_size == 0 ||
	     ((a->ca_base | a->ca_size) & (a->ca_quantum - 1)) != 0 ||
	     a->ca_size - 1 > UINTPTR_MAX - a->ca_base))
		return invalid(a->ca_vmflag, "vmem_create", "bad initial span");
	if (a->ca_source != NULL && (a->ca_vmflag & VMC_IDENTIFIER) &&
	    !(a->ca_source->vm_cflags & VMC_IDENTIFIER))
		return invalid(a->ca_vmflag, "vmem_create",
		               "an identifier arena must import from an identifier arena");

	vmp = vmem__pool_get(&arena_pool);
	if (vmp == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	memset(vmp, 0, sizeof(*vmp));
	snprintf(vmp->vm_name, sizeof(vmp->vm_name), "%s", a->ca_name);
	vmp->vm_cflags = a->ca_vmflag & VMC_FLAGS;
	vmp->vm_quantum = a->ca_quantum;
	vmp->vm_qshift = vmem__highbit(a->ca_quantum) - 1;
	vmp->vm_zero_ok = a->ca_zero_ok;
	vmp->vm_free_rounded = a->ca_free_rounded;
	vmp->vm_source = a->ca_source;
	vmp->vm_import = a->ca_import;
	vmp->vm_release = a->ca_release;
	vmp->vm_afunc = a->ca_afunc;
	vmp->vm_ffunc = a->ca_ffunc;
	vmp->vm_cbarg = a->ca_cbarg;
	if ((vmp->vm_cflags & VMC_NO_QCACHE) && a->ca_qcache_max != 0) {
		/* As illumos: without caches, import at least a slab's worth. */
		size_t slab = (size_t)1 << vmem__highbit(3 * a->ca_qcache_max);

		vmp->vm_min_import = slab > 64 ? slab : 64;
	}
	pthread_mutex_init(&vmp->vm_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&vmp->vm_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	vmp->vm_seg0.vs_anext = vmp->vm_seg0.vs_aprev = &vmp->vm_seg0;
	vmp->vm_seg0.vs_type = VMEM_SEG_SPAN;
	vmp->vm_seg0.vs_flags = VMEM_SEGF_ANCHOR;
	vmem__avl_init(&vmp->vm_spans, NULL);
	vmem__hash_init(vmp);

	if (a->ca_size != 0) {
		err = vmem__seg_reserve(vmp, VMEM_SEGS_PER_SPAN);
		if (err != 0) {
			vmem__hash_fini(vmp);
			pthread_mutex_destroy(&vmp->vm_lock);
			pthread_cond_destroy(&vmp->vm_cv);
			vmem__pool_put(&arena_pool, vmp);
			errno = err;
			return NULL;
		}
		vmem__span_create(vmp, a->ca_base, a->ca_size, false);
	}
	if (!(vmp->vm_cflags & VMC_NO_QCACHE) && a->ca_qcache_max != 0) {
		if (vmem__qc_create(vmp, a->ca_qcache_max) != 0) {
			vmem_destroy_unlisted(vmp);
			errno = ENOMEM;
			return NULL;
		}
		if (vmp->vm_nqcache != 0)
			atomic_fetch_add(&cached_arenas, 1);
	}
	if (vmem_debug)
		vmem__dbg_arena_init(vmp);

	pthread_mutex_lock(&vmem__list_lock);
	vmp->vm_id = next_arena_id++;
	vmp->vm_prev = list_tail;
	if (list_tail != NULL)
		list_tail->vm_next = vmp;
	else
		vmem__list_head = vmp;
	list_tail = vmp;
	if (vmp->vm_source != NULL) {
		vmem_t **pp = &vmp->vm_source->vm_children;

		while (*pp != NULL) /* keep children in creation order */
			pp = &(*pp)->vm_sibling;
		*pp = vmp;
	}
	pthread_mutex_unlock(&vmem__list_lock);
	return vmp;
}

vmem_t *vmem_create(const char *name, void *base, size_t size, size_t quantum, vmem_alloc_t *afunc,
                    vmem_free_t *ffunc, vmem_t *source, size_t qcache_max, int vmflag)
{
	vmem_create_args_t a = {
	    .ca_name = name,
	    .ca_base = (uintptr_t)base,
	    .ca_size = size,
	    .ca_quantum = quantum,
	    .ca_import = afunc != NULL ? import_illumos : NULL,
	    .ca_release = ffunc != NULL ? release_illumos : NULL,
	    .ca_afunc.a = afunc,
	    .ca_ffunc = ffunc,
	    .ca_source = source,
	    .ca_qcache_max = qcache_max,
	    .ca_vmflag = vmflag & ~(VMC_XALLOC | VMC_XALIGN),
	};

	return vmem__create(&a);
}

vmem_t *vmem_xcreate(const char *name, void *base, size_t size, size_t quantum,
                     vmem_ximport_t *afunc, vmem_free_t *ffunc, vmem_t *source, size_t qcache_max,
                     int vmflag)
{
	vmem_create_args_t a = {
	    .ca_name = name,
	    .ca_base = (uintptr_t)base,
	    .ca_size = size,
	    .ca_quantum = quantum,
	    .ca_import = afunc != NULL ? import_illumos : NULL,
	    .ca_release = ffunc != NULL ? release_illumos : NULL,
	    .ca_afunc.x = afunc,
	    .ca_ffunc = ffunc,
	    .ca_source = source,
	    .ca_qcache_max = qcache_max,
	    .ca_vmflag = vmflag | VMC_XALLOC,
	};

	return vmem__create(&a);
}

/* Unlink vmp from the arena list and its source (list lock held). */
static void unlist_locked(vmem_t *vmp)
{
	if (vmp->vm_prev != NULL)
		vmp->vm_prev->vm_next = vmp->vm_next;
	else
		vmem__list_head = vmp->vm_next;
	if (vmp->vm_next != NULL)
		vmp->vm_next->vm_prev = vmp->vm_prev;
	else
		list_tail = vmp->vm_prev;
	if (vmp->vm_source != NULL) {
		vmem_t **pp = &vmp->vm_source->vm_children;

		while (*pp != vmp)
			pp = &(*pp)->vm_sibling;
		*pp = vmp->vm_sibling;
	}
}

static void report_busy(vmem_t *vmp)
{
	vmem_error_info_t info = {.ve_kind = VMEM_ERR_DESTROY_BUSY,
	                          .ve_func = "vmem_destroy",
	                          .ve_arena = vmp,
	                          .ve_arena_name = vmp->vm_name};
	char child[VMEM_NAMELEN + 1];
	unsigned n = 0;
	vmem_t *c;

	pthread_mutex_lock(&vmem__list_lock);
	for (c = vmp->vm_children; c != NULL; c = c->vm_sibling)
		n++;
	snprintf(child, sizeof(child), "%s",
	         vmp->vm_children != NULL ? vmp->vm_children->vm_name : "");
	pthread_mutex_unlock(&vmem__list_lock);
	info.ve_count = n;
	vmem__report(&info,
	             "vmem_destroy('%s'): destroy of an arena with importers: %u arena(s) still "
	             "import from it, first '%s'; nothing destroyed",
	             vmp->vm_name, n, child);
}

void vmem_destroy(vmem_t *vmp)
{
	if (vmp == NULL)
		return;
	pthread_mutex_lock(&vmem__list_lock);
	if (vmp->vm_children != NULL) {
		pthread_mutex_unlock(&vmem__list_lock);
		report_busy(vmp);
		return;
	}
	unlist_locked(vmp);
	pthread_mutex_unlock(&vmem__list_lock);
	/* A reaper working on behalf of our source may still be reaping us. */
	while (atomic_load(&vmp->vm_pins) != 0)
		sched_yield();
	vmem_destroy_unlisted(vmp);
}

/* Destroy an arena that is on no list (and has no importers). */
static void vmem_destroy_unlisted(vmem_t *vmp)
{
	vmem_seg_t *vsp, *next, *give = NULL;
	uint64_t nleaked = 0, bleaked = 0;

	if (vmem_debug)
		vmem__dbg_leak_report_destroy(vmp); /* grouped by stack, before the caches go */
	if (vmp->vm_nqcache != 0)
		atomic_fetch_sub(&cached_arenas, 1);
	vmem__qc_destroy(vmp, &nleaked, &bleaked);
	pthread_mutex_lock(&vmp->vm_lock);
	for (vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0; vsp = next) {
		next = vsp->vs_anext;
		if (vsp->vs_type == VMEM_SEG_ALLOC) {
			nleaked++;
			bleaked += vsp->u.a.vs_asize;
		}
		if (vsp->vs_type == VMEM_SEG_SPAN && (vsp->vs_flags & VMEM_SEGF_IMPORTED) &&
		    vmp->vm_release != NULL) {
			vsp->vs_anext = give; /* chain imported spans to give back */
			give = vsp;
		} else if (vsp->vs_type != VMEM_SEG_WALKER) {
			vmem__seg_put(vmp, vsp);
		}
	}
	pthread_mutex_unlock(&vmp->vm_lock);

	if (nleaked != 0) {
		vmem_error_info_t info = {.ve_kind = VMEM_ERR_LEAK,
		                          .ve_func = "vmem_destroy",
		                          .ve_arena = vmp,
		                          .ve_arena_name = vmp->vm_name,
		                          .ve_count = nleaked,
		                          .ve_bytes = bleaked};

		vmem__report(&info, "vmem_destroy('%s'): leaked %llu %s in %llu segment%s",
		             vmp->vm_name, (unsigned long long)bleaked,
		             (vmp->vm_cflags & VMC_IDENTIFIER) ? "identifiers" : "bytes",
		             (unsigned long long)nleaked, nleaked == 1 ? "" : "s");
	}
	while (give != NULL) {
		vsp = give;
		give = vsp->vs_anext;
		vmp->vm_release(vmp, vsp->vs_start, vsp->vs_size);
		vmem__seg_put(vmp, vsp);
	}
	vmem__index_fini(vmp);
	vmem__hash_fini(vmp);
	vmem__seg_release_reserve(vmp);
	pthread_mutex_destroy(&vmp->vm_lock);
	pthread_cond_destroy(&vmp->vm_cv);
	vmem__pool_put(&arena_pool, vmp);
}

/* ---- checking ------------------------------------------------------------------ */

bool vmem__verify(vmem_t *vmp, const char **why)
{
	bool ok;

	pthread_mutex_lock(&vmp->vm_lock);
	ok = vmem__verify_locked(vmp, why);
	pthread_mutex_unlock(&vmp->vm_lock);
	return ok;
}
