/*
 * The FreeBSD/NetBSD-style API (<vmem/bsd.h>) on the arena core.
 *
 * A BSD arena is an ordinary arena created with two core options:
 *   ca_zero_ok       address 0 is an ordinary address (allocations return
 *                    it through the out-parameter, never as NULL);
 *   ca_free_rounded  a free may give any size of the same number of quanta.
 * Allocation sizes are rounded up to the quantum before they reach the
 * core, so the core records (and vmem_size(VMEM_ALLOC) counts) whole
 * quanta, as FreeBSD does.  The core takes an inclusive last address, so
 * BSD's maxaddr passes through unchanged; the illumos API converts its
 * exclusive one in vmem.c.  The illumos path pays nothing for any of this:
 * the two options are per-arena booleans tested only where 0 or a size
 * mismatch would otherwise be refused.
 *
 * Callbacks.  The core calls its own import/release/reclaim types with
 * VM_* flags; the user's functions have BSD signatures and take M_* flags.
 * The per-arena state needed to translate (the user's three functions) is
 * a bsd_shim_t hung on vm_shim; the import/release argument is the core's
 * vm_cbarg.  Both are read and written under vm_lock; the adapters copy
 * what they need under the lock and call the user's function without it,
 * as the core requires.  Shims come from a metadata pool (never malloc)
 * and are given back after the core has destroyed the arena (which may
 * still call the release adapter while it gives imported spans back).
 *
 * Flag mapping (documented in bsd.h and vmem_bsd(3)):
 *   M_NOWAIT -> VM_NOSLEEP, otherwise VM_SLEEP;
 *   M_FIRSTFIT or no strategy -> instant fit, M_BESTFIT -> VM_BESTFIT,
 *   M_NEXTFIT -> VM_NEXTFIT;
 * and back, for the callbacks: VM_NOSLEEP -> M_NOWAIT, else M_WAITOK.
 */
#include "vmem_impl.h"

#define VMEM_BSD_IMPLEMENTATION
#include <vmem/bsd.h>

#include <errno.h>
#include <stdio.h>

#define M_STRATEGY (M_FIRSTFIT | M_BESTFIT | M_NEXTFIT)
#define M_KNOWN    (M_WAITOK | M_NOWAIT | M_STRATEGY)

#define BSD_SHIM_MAGIC 0x4253445348494dULL /* "BSDSHIM" */

/* Per-arena state of the BSD layer (vm_shim); fields under vm_lock. */
typedef struct bsd_shim {
	uint64_t bs_magic;          /* BSD_SHIM_MAGIC: vm_shim is ours */
	vmem_import_t *bs_import;   /* the user's import function, or NULL */
	vmem_release_t *bs_release; /* the user's release function, or NULL */
	vmem_reclaim_t *bs_reclaim; /* the user's reclaim callback, or NULL */
} bsd_shim_t;

static vmem_pool_t shim_pool =
    VMEM_POOL_INITIALIZER("vmem_bsd_shim", sizeof(bsd_shim_t), VMEM_META_OTHER);

/* ---- flags ---------------------------------------------------------------- */

/* M_* flags to core VM_* flags; false if unknown or contradictory. */
static bool to_vmflag(int flags, int *vmflagp)
{
	int strategy = flags & M_STRATEGY;
	int vmflag;

	if ((flags & ~M_KNOWN) != 0 || (strategy & (strategy - 1)) != 0 ||
	    ((flags & M_WAITOK) && (flags & M_NOWAIT)))
		return false;
	vmflag = (flags & M_NOWAIT) ? VM_NOSLEEP : VM_SLEEP;
	if (strategy == M_BESTFIT)
		vmflag |= VM_BESTFIT;
	else if (strategy == M_NEXTFIT)
		vmflag |= VM_NEXTFIT;
	*vmflagp = vmflag;
	return true;
}

/* Core VM_* flags to the M_* flags a BSD callback expects. */
static int to_mflags(int vmflag)
{
	int flags = (vmflag & (VM_NOSLEEP | VM_ABORT)) ? M_NOWAIT : M_WAITOK;

	if (vmflag & VM_BESTFIT)
		flags |= M_BESTFIT;
	else if (vmflag & VM_NEXTFIT)
		flags |= M_NEXTFIT;
	else
		flags |= M_FIRSTFIT;
	return flags;
}

/* ---- the shim ------------------------------------------------------------- */

/* vm's shim if the BSD layer made it, else NULL (lock held). */
static bsd_shim_t *shim_locked(vmem_t *vm)
{
	bsd_shim_t *bs = vm->vm_shim;

	return bs != NULL && bs->bs_magic == BSD_SHIM_MAGIC ? bs : NULL;
}

/* The core's callbacks, translating to the user's. */
static int import_adapter(vmem_t *vm, size_t *sizep, size_t align, int vmflag, uintptr_t *addrp)
{
	vmem_import_t *fn = NULL;
	vmem_addr_t addr = 0;
	void *arg;
	int err;

	pthread_mutex_lock(&vm->vm_lock);
	if (shim_locked(vm) != NULL)
		fn = shim_locked(vm)->bs_import;
	arg = vm->vm_cbarg;
	pthread_mutex_unlock(&vm->vm_lock);
	if (fn == NULL)
		return ENOMEM;
	/* BSD imports cannot grow the span: *sizep stays as asked. */
	err = fn(arg, *sizep, to_mflags(vmflag), &addr);
	if (err != 0)
		return err;
	*addrp = addr;
	return 0;
}

static void release_adapter(vmem_t *vm, uintptr_t addr, size_t size)
{
	vmem_release_t *fn = NULL;
	void *arg;

	pthread_mutex_lock(&vm->vm_lock);
	if (shim_locked(vm) != NULL)
		fn = shim_locked(vm)->bs_release;
	arg = vm->vm_cbarg;
	pthread_mutex_unlock(&vm->vm_lock);
	if (fn != NULL)
		fn(arg, addr, size);
}

static void reclaim_adapter(vmem_t *vm, int vmflag)
{
	vmem_reclaim_t *fn = NULL;

	pthread_mutex_lock(&vm->vm_lock);
	if (shim_locked(vm) != NULL)
		fn = shim_locked(vm)->bs_reclaim;
	pthread_mutex_unlock(&vm->vm_lock);
	if (fn != NULL)
		fn(vm, to_mflags(vmflag));
}

/* ---- creation and destruction --------------------------------------------- */

vmem_t *vmem_bsd_create(const char *name, vmem_addr_t base, vmem_size_t size, vmem_size_t quantum,
                        vmem_size_t qcache_max, int flags)
{
	vmem_create_args_t a = {
	    .ca_name = name,
	    .ca_base = base,
	    .ca_size = size,
	    .ca_quantum = quantum,
	    .ca_qcache_max = qcache_max,
	    .ca_zero_ok = true,
	    .ca_free_rounded = true,
	};
	bsd_shim_t *bs;
	vmem_t *vm;
	int vmflag;

	if (!to_vmflag(flags, &vmflag) || (flags & M_STRATEGY) != 0) {
		errno = EINVAL;
		return NULL;
	}
	a.ca_vmflag = vmflag & VM_NOSLEEP;
	bs = vmem__pool_get(&shim_pool);
	if (bs == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	*bs = (bsd_shim_t){.bs_magic = BSD_SHIM_MAGIC};
	vm = vmem__create(&a);
	if (vm == NULL) {
		int err = errno;

		vmem__pool_put(&shim_pool, bs);
		errno = err;
		return NULL;
	}
	pthread_mutex_lock(&vm->vm_lock);
	vm->vm_shim = bs;
	pthread_mutex_unlock(&vm->vm_lock);
	return vm;
}

void vmem_bsd_destroy(vmem_t *vm)
{
	bsd_shim_t *bs;
	bool busy;

	if (vm == NULL)
		return;
	/*
	 * The core refuses (and reports) the destruction of an arena that
	 * others import from; then the shim must stay.  Creating an importer
	 * of an arena being destroyed is the caller's race, as in FreeBSD.
	 */
	pthread_mutex_lock(&vmem__list_lock);
	busy = vm->vm_children != NULL;
	pthread_mutex_unlock(&vmem__list_lock);
	pthread_mutex_lock(&vm->vm_lock);
	bs = shim_locked(vm);
	pthread_mutex_unlock(&vm->vm_lock);
	vmem_destroy(vm);
	if (!busy && bs != NULL) {
		bs->bs_magic = 0;
		vmem__pool_put(&shim_pool, bs);
	}
}

/* ---- spans and allocation ------------------------------------------------- */

int vmem_bsd_add(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, int flags)
{
	int vmflag;

	if (vm == NULL || !to_vmflag(flags, &vmflag) || (flags & M_STRATEGY) != 0)
		return EINVAL;
	return vmem__add(vm, addr, size, vmflag);
}

/* size rounded up to vm's quantum; false for 0 or if it would wrap. */
static bool roundup_size(const vmem_t *vm, size_t size, size_t *rsizep)
{
	size_t mask = vm->vm_quantum - 1;

	if (size == 0 || size > SIZE_MAX - mask)
		return false;
	*rsizep = (size + mask) & ~mask;
	return true;
}

int vmem_bsd_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	VMEM_API_SCOPE();
	uintptr_t addr;
	size_t rsize;
	int vmflag, err;

	if (vm == NULL || !to_vmflag(flags, &vmflag) || !roundup_size(vm, size, &rsize))
		return EINVAL;
	err = vmem__alloc(vm, rsize, vmflag, &addr);
	if (err == 0 && addrp != NULL)
		*addrp = addr;
	return err;
}

int vmem_bsd_xalloc(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
                    vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr, int flags,
                    vmem_addr_t *addrp)
{
	VMEM_API_SCOPE();
	uintptr_t addr;
	size_t rsize;
	int vmflag, err;

	if (vm == NULL || !to_vmflag(flags, &vmflag) || !roundup_size(vm, size, &rsize))
		return EINVAL;
	/* Both ends inclusive: maxaddr is the core's `last` as it is. */
	err = vmem__xalloc(vm, rsize, align, phase, nocross, minaddr, maxaddr, vmflag, &addr, NULL);
	if (err == 0 && addrp != NULL)
		*addrp = addr;
	return err;
}

void vmem_bsd_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	VMEM_API_SCOPE();
	vmem__free(vm, addr, size, "vmem_free");
}

void vmem_bsd_xfree(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	VMEM_API_SCOPE();
	vmem__xfree(vm, addr, size, "vmem_xfree");
}

/* ---- callbacks and limits -------------------------------------------------- */

/* The core rounds import sizes with a mask: the import quantum must be 2^k. */
static size_t pow2_roundup(size_t x)
{
	int hb = vmem__highbit(x);

	if (x == 0 || vmem__ispow2(x))
		return x;
	return hb >= 64 ? (size_t)1 << 63 : (size_t)1 << hb;
}

void vmem_bsd_set_import(vmem_t *vm, vmem_import_t *importfn, vmem_release_t *releasefn, void *arg,
                         vmem_size_t import_quantum)
{
	bsd_shim_t *bs;

	if (vm == NULL)
		return;
	pthread_mutex_lock(&vm->vm_lock);
	bs = shim_locked(vm);
	if (bs != NULL) {
		bs->bs_import = importfn;
		bs->bs_release = releasefn;
	}
	pthread_mutex_unlock(&vm->vm_lock);
	if (bs == NULL)
		return; /* not a BSD arena: nothing to translate with */
	vmem__set_import(vm, importfn != NULL ? import_adapter : NULL,
	                 releasefn != NULL ? release_adapter : NULL, arg,
	                 pow2_roundup(import_quantum));
}

void vmem_bsd_set_reclaim(vmem_t *vm, vmem_reclaim_t *reclaimfn)
{
	bsd_shim_t *bs;

	if (vm == NULL)
		return;
	pthread_mutex_lock(&vm->vm_lock);
	bs = shim_locked(vm);
	if (bs != NULL)
		bs->bs_reclaim = reclaimfn;
	pthread_mutex_unlock(&vm->vm_lock);
	if (bs != NULL)
		vmem_set_reclaim(vm, reclaimfn != NULL ? reclaim_adapter : NULL);
}

void vmem_bsd_set_limit(vmem_t *vm, vmem_size_t limit)
{
	vmem_set_limit(vm, limit);
}

/* ---- sizes ----------------------------------------------------------------- */

vmem_size_t vmem_bsd_roundup_size(vmem_t *vm, vmem_size_t size)
{
	size_t rsize;

	if (vm == NULL || size == 0 || !roundup_size(vm, size, &rsize))
		return 0;
	return rsize;
}

vmem_size_t vmem_bsd_size(vmem_t *vm, int typemask)
{
	if (vm == NULL)
		return 0;
	switch (typemask) {
	case VMEM_ALLOC:
	case VMEM_FREE:
	case VMEM_ALLOC | VMEM_FREE:
		return vmem_size(vm, typemask);
	case VMEM_MAXFREE:
		return vmem__largest_free(vm);
	default:
		return 0;
	}
}

/* ---- printing -------------------------------------------------------------- */

typedef int printer_t(const char *, ...);

/* What one pass over an arena's segments finds (lock held). */
typedef struct arena_census {
	uint64_t nspans, nimported, nalloc, nfree;
	uint64_t alloc_by_order[64]; /* ALLOC segments with extent in [2^n, 2^(n+1)) */
	uint64_t free_by_order[64];
} arena_census_t;

static void census_locked(vmem_t *vm, arena_census_t *c)
{
	vmem_seg_t *vsp;

	*c = (arena_census_t){0};
	for (vsp = vm->vm_seg0.vs_anext; vsp != &vm->vm_seg0; vsp = vsp->vs_anext) {
		int order = vmem__highbit(vsp->vs_size) - 1;

		if (vsp->vs_type == VMEM_SEG_SPAN) {
			c->nspans++;
			if (vsp->vs_flags & VMEM_SEGF_IMPORTED)
				c->nimported++;
		} else if (vsp->vs_type == VMEM_SEG_ALLOC) {
			c->nalloc++;
			c->alloc_by_order[order]++;
		} else if (vsp->vs_type == VMEM_SEG_FREE) {
			c->nfree++;
			c->free_by_order[order]++;
		}
	}
}

/* Every span and segment, one line each (lock held). */
static void print_segments_locked(vmem_t *vm, printer_t *pr)
{
	vmem_seg_t *vsp;

	for (vsp = vm->vm_seg0.vs_anext; vsp != &vm->vm_seg0; vsp = vsp->vs_anext) {
		unsigned long start = (unsigned long)vsp->vs_start;
		unsigned long last = (unsigned long)vmem__last(vsp->vs_start, vsp->vs_size);

		if (vsp->vs_type == VMEM_SEG_SPAN)
			pr("  span  0x%016lx-0x%016lx size %zu%s\n", start, last, vsp->vs_size,
			   (vsp->vs_flags & VMEM_SEGF_IMPORTED) ? " imported" : "");
		else if (vsp->vs_type == VMEM_SEG_ALLOC)
			pr("    alloc 0x%016lx-0x%016lx size %zu\n", start, last, vsp->vs_size);
		else if (vsp->vs_type == VMEM_SEG_FREE)
			pr("    free  0x%016lx-0x%016lx size %zu\n", start, last, vsp->vs_size);
	}
}

/* The report for one arena (lock held). */
static void print_arena_locked(vmem_t *vm, bool verbose, printer_t *pr)
{
	const vmem_counters_t *k = &vm->vm_ctr;
	arena_census_t c;
	int n;

	census_locked(vm, &c);
	pr("vmem %p '%s': quantum %zu%s\n", (void *)vm, vm->vm_name, vm->vm_quantum,
	   (vm->vm_cflags & VMC_IDENTIFIER) ? ", identifiers" : "");
	pr("  size %llu, inuse %llu, free %llu, maxfree %zu, imported %llu\n",
	   (unsigned long long)k->vc_mem_total, (unsigned long long)k->vc_mem_inuse,
	   (unsigned long long)(k->vc_mem_total - k->vc_mem_inuse), vmem__largest_free_locked(vm),
	   (unsigned long long)k->vc_mem_import);
	pr("  spans %llu (%llu imported), segments %llu inuse, %llu free\n",
	   (unsigned long long)c.nspans, (unsigned long long)c.nimported,
	   (unsigned long long)c.nalloc, (unsigned long long)c.nfree);
	if (c.nalloc + c.nfree != 0)
		pr("  %-5s %10s %10s\n", "order", "inuse", "free");
	for (n = 0; n < 64; n++) {
		if (c.alloc_by_order[n] + c.free_by_order[n] != 0)
			pr("  2^%-3d %10llu %10llu\n", n, (unsigned long long)c.alloc_by_order[n],
			   (unsigned long long)c.free_by_order[n]);
	}
	if (verbose)
		print_segments_locked(vm, pr);
}

static bool is_verbose(const char *modif)
{
	for (; modif != NULL && *modif != '\0'; modif++) {
		if (*modif == 'v')
			return true;
	}
	return false;
}

void vmem_bsd_print(vmem_addr_t addr, const char *modif, int (*pr)(const char *, ...))
{
	vmem_t *vm;

	if (pr == NULL)
		pr = printf;
	/* addr comes from a person or a debugger: print it only if it is an arena. */
	pthread_mutex_lock(&vmem__list_lock);
	for (vm = vmem__list_head; vm != NULL && (vmem_addr_t)vm != addr; vm = vm->vm_next)
		continue;
	if (vm != NULL) {
		pthread_mutex_lock(&vm->vm_lock);
		print_arena_locked(vm, is_verbose(modif), pr);
		pthread_mutex_unlock(&vm->vm_lock);
	} else {
		pr("vmem 0x%lx: not an arena\n", (unsigned long)addr);
	}
	pthread_mutex_unlock(&vmem__list_lock);
}

void vmem_bsd_printall(const char *modif, int (*pr)(const char *, ...))
{
	vmem_t *vm;

	if (pr == NULL)
		pr = printf;
	pthread_mutex_lock(&vmem__list_lock);
	for (vm = vmem__list_head; vm != NULL; vm = vm->vm_next) {
		pthread_mutex_lock(&vm->vm_lock);
		print_arena_locked(vm, is_verbose(modif), pr);
		pthread_mutex_unlock(&vm->vm_lock);
	}
	pthread_mutex_unlock(&vmem__list_lock);
}
