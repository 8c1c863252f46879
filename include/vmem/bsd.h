/*
 * libvmem: the FreeBSD/NetBSD flavour of the vmem API (FreeBSD vmem(9)).
 *
 * The same arenas as <vmem.h>, with the BSD conventions:
 *   - allocations return 0 or an errno and give the address through an
 *     out-parameter, so address 0 is an ordinary address: an arena made by
 *     this vmem_create() may contain it;
 *   - vmem_xalloc()'s maxaddr is INCLUSIVE (the highest address the
 *     segment may cover; VMEM_ADDR_MAX = no limit), minaddr too;
 *   - a free may pass any size that rounds to the same number of quanta;
 *   - sizes are counted in whole quanta (vmem_size(VMEM_ALLOC) is the sum
 *     of the rounded sizes);
 *   - flags are malloc(9)-style M_* flags, imports are set with
 *     vmem_set_import(), the arena may have a reclaim callback and a limit.
 *
 * Linking both APIs into one program.  Every BSD name below is a macro for
 * a distinct symbol (vmem_create is vmem_bsd_create, and so on), so one
 * translation unit may use this header and another <vmem.h>, and arenas
 * may be passed between them (a vmem_t is the same object in both).  The
 * two headers cannot be included in the same translation unit: the names
 * collide, and the compiler says so.
 *
 * Values of the M_* flags are FreeBSD's userland ones (<sys/vmem.h>
 * without _KERNEL), with M_WAITOK at its kernel value:
 *   M_WAITOK 0x0002, M_NOWAIT 0x0800, M_FIRSTFIT 0x1000, M_BESTFIT 0x2000,
 *   M_NEXTFIT 0x8000.
 * Neither M_WAITOK nor M_NOWAIT means "may wait", as in FreeBSD userland.
 * Strategies (at most one; none means M_FIRSTFIT):
 *   M_FIRSTFIT  "prefer allocation performance": FreeBSD's first fit is the
 *               first segment of the first size class that surely fits,
 *               which is vmem's instant fit; so is ours (constant time,
 *               NOT the lowest address).
 *   M_BESTFIT   "prefer space efficiency": a smallest free segment that
 *               fits; among equals, up to 1024 quanta the most recently
 *               freed (O(1) through exact size classes), above that the
 *               lowest address.
 *   M_NEXTFIT   address-ordered search starting where the previous
 *               next-fit allocation ended, wrapping around.
 *
 * Errors: 0 on success; ENOMEM when the request cannot be met under
 * M_NOWAIT; EINVAL for arguments FreeBSD would assert on (size 0, unknown
 * or contradictory flags, bad align/phase/nocross, minaddr > maxaddr, ...),
 * with nothing changed.  An M_WAITOK request sleeps until it can be met;
 * one that can never be met sleeps forever.  Bad frees are reported as in
 * <vmem.h> (vmem_set_error_handler, VMEM_ERROR_POLICY).
 *
 * The functions below take arenas made by this vmem_create(); see
 * docs/man/vmem_bsd.3 and docs/porting.md for the full story.
 */
#ifndef VMEM_BSD_H
#define VMEM_BSD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmem vmem_t;
typedef uintptr_t vmem_addr_t;
typedef size_t vmem_size_t;

#define VMEM_ADDR_MIN        0
#define VMEM_ADDR_QCACHE_MIN 1 /* FreeBSD's lowest cacheable address; unused here */
#define VMEM_ADDR_MAX        (~(vmem_addr_t)0)

/* vmem_size() type masks. */
#define VMEM_ALLOC   0x01
#define VMEM_FREE    0x02
#define VMEM_MAXFREE 0x10 /* the largest free segment */

/* malloc(9)-style flags. */
#define M_WAITOK   0x0002 /* may sleep (the default) */
#define M_NOWAIT   0x0800 /* never sleep: ENOMEM at once */
#define M_FIRSTFIT 0x1000 /* fast (instant) fit */
#define M_BESTFIT  0x2000 /* smallest segment that fits */
#define M_NEXTFIT  0x8000 /* next fit after the previous next-fit allocation */

/*
 * Import: get a span of `size` (a multiple of the import quantum) for the
 * arena; 0 and *addrp, or an errno.  Called without the arena's lock,
 * always with M_NOWAIT | M_FIRSTFIT (the arena does its own sleeping), so
 * the flags may be passed on to vmem_alloc() on a parent arena.
 */
typedef int(vmem_import_t)(void *arg, vmem_size_t size, int flags, vmem_addr_t *addrp);
/* Release: give back a span an import returned (the whole span, once). */
typedef void(vmem_release_t)(void *arg, vmem_addr_t addr, vmem_size_t size);
/*
 * Reclaim: the arena is exhausted (and its import failed); free what you
 * can into it.  Called without the arena's lock with the failing
 * request's M_* flags (M_WAITOK or M_NOWAIT, and its strategy).
 */
typedef void(vmem_reclaim_t)(vmem_t *vm, int flags);

/*
 * Create an arena with an initial span [base, base + size) (none if size
 * is 0; base 0 is allowed).  quantum must be a power of two, base and size
 * multiples of it.  qcache_max is a hint passed to the core.  flags:
 * M_WAITOK or M_NOWAIT (creation never sleeps).  NULL with errno EINVAL or
 * ENOMEM on failure.
 */
vmem_t *vmem_bsd_create(const char *name, vmem_addr_t base, vmem_size_t size, vmem_size_t quantum,
                        vmem_size_t qcache_max, int flags);

/*
 * Destroy an arena: imported spans go back through the release function;
 * allocations still outstanding are reported as a leak (a warning).
 */
void vmem_bsd_destroy(vmem_t *vm);

/*
 * Add the span [addr, addr + size), which is never released.  0, EINVAL
 * (misaligned, empty, wrapping or overlapping a span) or ENOMEM (M_NOWAIT
 * and no metadata memory).
 */
int vmem_bsd_add(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, int flags);

/*
 * Allocate `size` (rounded up to the quantum) with the given wait flag and
 * strategy.  0 and *addrp (if addrp is not NULL), ENOMEM or EINVAL.
 */
int vmem_bsd_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp);

/*
 * Constrained allocation: the segment [a, a + roundup(size)) satisfies
 *   a = phase (mod align)            (align 0: the quantum; phase < align)
 *   it crosses no multiple of nocross (0: no restriction)
 *   minaddr <= a and a + roundup(size) - 1 <= maxaddr   (both inclusive)
 * align, phase and nocross are multiples of the quantum; align and nocross
 * powers of two, align <= nocross, phase + roundup(size) <= nocross.
 * Requests with an address range other than [VMEM_ADDR_MIN, VMEM_ADDR_MAX]
 * are served from the arena's spans only (they never import).
 */
int vmem_bsd_xalloc(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
                    vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr, int flags,
                    vmem_addr_t *addrp);

/*
 * Free a segment from vmem_alloc() / vmem_xalloc().  size may be any size
 * that rounds to the allocation's number of quanta.  A free that matches
 * no allocation is reported (see <vmem.h>).
 */
void vmem_bsd_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);
void vmem_bsd_xfree(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);

/*
 * Set (or with NULL functions, remove) the import and release functions.
 * Spans are imported in multiples of import_quantum (0: the quantum), which
 * is rounded up to a power of two.  Replaces any previous pair; spans
 * imported before are released through the new release function.
 */
void vmem_bsd_set_import(vmem_t *vm, vmem_import_t *importfn, vmem_release_t *releasefn, void *arg,
                         vmem_size_t import_quantum);

/* Set (NULL: remove) the reclaim callback, called with M_* flags. */
void vmem_bsd_set_reclaim(vmem_t *vm, vmem_reclaim_t *reclaimfn);

/*
 * Cap the arena's total span size: an import that would take it above
 * `limit` is not made.  Spans added with vmem_add() count but are never
 * refused.  0 removes the cap.
 */
void vmem_bsd_set_limit(vmem_t *vm, vmem_size_t limit);

/* size rounded up to the arena's quantum; 0 if that does not fit. */
vmem_size_t vmem_bsd_roundup_size(vmem_t *vm, vmem_size_t size);

/*
 * VMEM_ALLOC: bytes allocated (in whole quanta); VMEM_FREE: bytes free;
 * VMEM_ALLOC | VMEM_FREE: total span size; VMEM_MAXFREE: the largest free
 * segment.  Any other mask: 0.
 */
vmem_size_t vmem_bsd_size(vmem_t *vm, int typemask);

/*
 * Print an arena (addr is the vmem_t pointer, as in DDB's "show vmem") or
 * every arena of the process, through `pr` (printf when NULL).  modif
 * "v" adds every span and segment.  `pr` is called with arena locks held
 * and must not use the arenas.  The layout is in vmem_bsd(3).
 */
void vmem_bsd_print(vmem_addr_t addr, const char *modif, int (*pr)(const char *, ...));
void vmem_bsd_printall(const char *modif, int (*pr)(const char *, ...));

/*
 * The BSD names.  The implementation defines VMEM_BSD_IMPLEMENTATION to
 * see the prototypes above next to <vmem.h> without these.
 */
#ifndef VMEM_BSD_IMPLEMENTATION
#ifdef VMEM_H
#error "<vmem/bsd.h> and <vmem.h> cannot be used in the same translation unit"
#endif
#define vmem_create       vmem_bsd_create
#define vmem_destroy      vmem_bsd_destroy
#define vmem_add          vmem_bsd_add
#define vmem_alloc        vmem_bsd_alloc
#define vmem_xalloc       vmem_bsd_xalloc
#define vmem_free         vmem_bsd_free
#define vmem_xfree        vmem_bsd_xfree
#define vmem_set_import   vmem_bsd_set_import
#define vmem_set_reclaim  vmem_bsd_set_reclaim
#define vmem_set_limit    vmem_bsd_set_limit
#define vmem_roundup_size vmem_bsd_roundup_size
#define vmem_size         vmem_bsd_size
#define vmem_print        vmem_bsd_print
#define vmem_printall     vmem_bsd_printall
#endif

#ifdef __cplusplus
}
#endif

#endif /* VMEM_BSD_H */
