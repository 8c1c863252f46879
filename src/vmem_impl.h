/*
 * libvmem internals: the structures shared by the core (vmem.c, seg.c,
 * fit.c), the quantum caches, the debug layer, snapshots and the inspector's
 * live-process reader.  See the theory statement at the top of vmem.c.
 *
 * Naming: fields carry their structure's prefix (vs_ segment, vm_ arena);
 * functions shared across files are vmem__* and hidden from the shared
 * library's exports.  A function whose name ends in _locked, or whose
 * comment says so, must be called with vm_lock held.
 */
#ifndef VMEM_IMPL_H
#define VMEM_IMPL_H

#include <vmem.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "avl.h"
#include "config.h"
#include "meta.h"

#define VMEM_FREELISTS         64   /* list n holds free segments of [2^n, 2^(n+1)) */
#define VMEM_HASH_INITIAL      16   /* buckets embedded in the arena */
#define VMEM_NQCACHE_MAX       16   /* quantum caches per arena, at most */
#define VMEM_SEGS_PER_ALLOC    2    /* a carve from the middle of a free segment */
#define VMEM_SIZECLASSES       1024 /* exact-size classes of the index, in quanta */
#define VMEM_SEGS_PER_SPAN     2    /* span marker + its free segment */
#define VMEM_SEG_RESERVE_LOW   8    /* refill the arena's reserve below this ... */
#define VMEM_SEG_RESERVE_BATCH 32   /* ... by this many */
#define VMEM_SEG_RESERVE_HIGH  128  /* give a batch back above this */

/* Segment types.  The values are illumos' VMEM_ALLOC/FREE/SPAN/WALKER bits. */
#define VMEM_SEG_ALLOC  0x01
#define VMEM_SEG_FREE   0x02
#define VMEM_SEG_SPAN   0x10
#define VMEM_SEG_WALKER 0x40

/* vs_flags */
#define VMEM_SEGF_IMPORTED 0x01 /* SPAN: imported; returned to the source when wholly free */
#define VMEM_SEGF_XALLOC   0x02 /* ALLOC: made by vmem_xalloc() */
#define VMEM_SEGF_SLAB     0x04 /* ALLOC: a quantum-cache slab */
#define VMEM_SEGF_ANCHOR   0x08 /* SPAN: the arena's list anchor (size 0) */
#define VMEM_SEGF_QDIRECT  0x10 /* ALLOC: a quantum-cached size served without a slab */

typedef struct vmem_seg vmem_seg_t;

/*
 * A boundary tag.  Every segment of an arena, and every span marker, is on
 * the arena's circular address-ordered list (vs_anext/vs_aprev), anchored
 * by vm_seg0.  The union holds what only one type needs:
 *   FREE:  freelist links and the two index nodes (when the arena is indexed);
 *   ALLOC: the hash chain, the caller's exact size and the audit record;
 *   SPAN:  the span index node.
 */
struct vmem_seg {
	uintptr_t vs_start;   /* first integer of the segment (inclusive) */
	size_t vs_size;       /* extent in the arena; a quantum multiple, > 0 */
	vmem_seg_t *vs_anext; /* next on the address-ordered list */
	vmem_seg_t *vs_aprev; /* previous on the address-ordered list */
	uint8_t vs_type;      /* VMEM_SEG_* */
	uint8_t vs_flags;     /* VMEM_SEGF_* */
	uint8_t vs_list;      /* FREE: index of the freelist it is on */
	uint8_t vs_depth;     /* ALLOC, debug: frames in the audit stack */
	uint32_t vs_stack;    /* ALLOC, debug: id of the allocating stack, 0 = none */
	union {
		struct {
			vmem_seg_t *vs_fnext;     /* freelist, LIFO from vm_freelist[] */
			vmem_seg_t *vs_fprev;     /* NULL for the list head */
			vmem_avl_node_t vs_anode; /* vm_free_addr: by start */
			union {
				/* size <= VMEM_SIZECLASSES quanta: its exact class list */
				struct {
					vmem_seg_t *vs_cnext;
					vmem_seg_t *vs_cprev;
				} c;
				vmem_avl_node_t
				    vs_snode; /* larger: vm_free_size, by (size, start) */
			} sz;
			size_t vs_maxfree; /* largest vs_size in vs_anode's subtree */
		} f;
		struct {
			vmem_seg_t *vs_hnext; /* hash chain */
			size_t vs_asize;      /* the size the caller asked for */
			uint64_t vs_time;     /* debug: CLOCK_MONOTONIC ns at allocation */
			uint64_t vs_thread;   /* debug: kernel thread id of the allocator */
		} a;
		struct {
			vmem_avl_node_t vs_spnode; /* vm_spans: by start */
		} s;
	} u;
};

#define VMEM_CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Internal import/release callbacks (the public ones are adapted to these). */
typedef int vmem_import_fn(vmem_t *vmp, size_t *sizep, size_t align, int vmflag, uintptr_t *addrp);
typedef void vmem_release_fn(vmem_t *vmp, uintptr_t addr, size_t size);

/* The caller's import function, as given to vmem_create or vmem_xcreate. */
typedef union vmem_afunc {
	vmem_alloc_t *a;   /* vmem_create() */
	vmem_ximport_t *x; /* vmem_xcreate() */
	void (*bsd)(void); /* the BSD-style API's import function */
} vmem_afunc_t;

/* Per-arena counters, named as illumos' kstats; all under vm_lock. */
typedef struct vmem_counters {
	uint64_t vc_mem_inuse;       /* sum of the caller sizes of ALLOC segments */
	uint64_t vc_mem_import;      /* bytes of imported spans */
	uint64_t vc_mem_total;       /* bytes of all spans */
	uint64_t vc_alloc;           /* segments allocated (hash inserts) */
	uint64_t vc_free;            /* segments freed (hash removals) */
	uint64_t vc_wait;            /* sleeps in VM_SLEEP allocations */
	uint64_t vc_fail;            /* allocations that failed */
	uint64_t vc_lookup;          /* hash chain entries skipped on free */
	uint64_t vc_search;          /* free segments examined by searches */
	uint64_t vc_populate_wait;   /* sleeps waiting for metadata */
	uint64_t vc_populate_fail;   /* metadata refills that failed */
	uint64_t vc_contains;        /* vmem_contains() calls */
	uint64_t vc_contains_search; /* spans examined by vmem_contains() */
} vmem_counters_t;

struct vmem_qcache;

struct vmem {
	char vm_name[VMEM_NAMELEN + 1];
	uint32_t vm_id;       /* 1, 2, ... in creation order */
	int vm_cflags;        /* VMC_* */
	size_t vm_quantum;    /* power of two */
	int vm_qshift;        /* log2(vm_quantum) */
	size_t vm_qcache_max; /* sizes up to this are quantum-cached */
	size_t vm_min_import; /* smallest import */
	bool vm_zero_ok;      /* BSD arenas: address 0 is an ordinary integer */
	bool vm_free_rounded; /* BSD arenas: a free may give any size of the same quanta */

	/*
	 * The fields above are set at creation and read by the lock-free cache
	 * paths; the lock starts a new cache line so that taking it does not
	 * disturb them.
	 */
	struct vmem_qcache *vm_qcache[VMEM_NQCACHE_MAX];
	int vm_nqcache;
	_Atomic unsigned vm_sleepers; /* VM_SLEEP sleepers here or in importers */

	pthread_mutex_t vm_lock __attribute__((aligned(64))); /* everything below */
	pthread_cond_t vm_cv;                                 /* VM_SLEEP allocations wait here */

	vmem_seg_t vm_seg0; /* anchor of the address-ordered list (type SPAN) */

	uint64_t vm_freemap; /* bit n set iff vm_freelist[n] is not empty */
	vmem_seg_t *vm_freelist[VMEM_FREELISTS];

	/*
	 * The index: built on the first request that needs more than instant
	 * fit (best, first or next fit, constrained xalloc), then kept.
	 */
	bool vm_idx_addr;                /* the address half of the index is built */
	bool vm_idx_size;                /* the size half is built */
	vmem_avl_tree_t vm_free_addr;    /* FREE segments by address, max size augmented */
	struct vmem_sizeidx *vm_sizeidx; /* FREE segments of up to 1024 quanta, by exact size */
	vmem_avl_tree_t vm_free_size;    /* larger FREE segments, by (size, address) */
	vmem_avl_tree_t vm_spans;        /* span markers by address (always kept) */
	uintptr_t vm_rotor;              /* next-fit: where the last next-fit ended */

	vmem_seg_t **vm_hash_table; /* ALLOC segments by start */
	size_t vm_hash_size;        /* buckets, a power of two */
	int vm_hash_bits;           /* log2(vm_hash_size) */
	size_t vm_hash_count;       /* segments in the table */
	vmem_seg_t *vm_hash0[VMEM_HASH_INITIAL];

	void *vm_segfree; /* reserve of unused records, linked through the first word */
	unsigned vm_nsegfree;

	vmem_t *vm_source;           /* arena we import from, or NULL */
	vmem_import_fn *vm_import;   /* NULL: no imports */
	vmem_release_fn *vm_release; /* NULL: imported spans are kept */
	vmem_afunc_t vm_afunc;       /* the caller's import function */
	vmem_free_t *vm_ffunc;       /* the caller's release function */
	void *vm_cbarg;              /* extra argument for the BSD API's callbacks */
	size_t vm_import_quantum;    /* imports are multiples of this (0: the quanta) */
	size_t vm_limit;             /* imports may not take mem_total above this (0: none) */
	vmem_reclaim_t *vm_reclaim;  /* called, unlocked, before failing or sleeping */
	void *vm_shim; /* owned by the API layer that made the arena (BSD, id_space) */

	vmem_t *vm_next; /* global list of arenas, creation order */
	vmem_t *vm_prev;
	vmem_t *vm_children; /* arenas importing from this one */
	vmem_t *vm_sibling;  /* next child of vm_source */

	unsigned vm_nwaiters;             /* threads in cv_wait here (vm_lock) */
	_Atomic unsigned vm_desc_waiters; /* sleepers in arenas importing from here */
	_Atomic uint64_t vm_freegen;      /* bumped on every free and add */

	_Atomic unsigned vm_pins; /* internal users (reapers) that destroy must wait for */

	vmem_counters_t vm_ctr;

	void *vm_debug; /* debug layer's per-arena state */
};

/*
 * The size half of the index: one LIFO list per exact size up to
 * VMEM_SIZECLASSES quanta, and a two-level bitmap of the non-empty ones, so
 * that the smallest free size >= s is found with two find-first-sets.
 * Class c (1-based, in quanta) is bit c - 1.
 */
typedef struct vmem_sizeidx {
	uint64_t si_summary;                    /* bit w: si_map[w] != 0 */
	uint64_t si_map[VMEM_SIZECLASSES / 64]; /* bit c - 1: class c not empty */
	vmem_seg_t *si_head[VMEM_SIZECLASSES];  /* [c - 1]: most recently freed first */
} vmem_sizeidx_t;

/* ---- shared pools -------------------------------------------------- */
extern vmem_pool_t vmem__seg_pool;

/* ---- bit helpers -------------------------------------------------- */
/* 1-based index of the highest set bit; 0 for 0. */
static inline int vmem__highbit(uint64_t x)
{
	return x == 0 ? 0 : 64 - __builtin_clzll(x);
}

/* 1-based index of the lowest set bit; 0 for 0. */
static inline int vmem__lowbit(uint64_t x)
{
	return x == 0 ? 0 : __builtin_ctzll(x) + 1;
}

static inline bool vmem__ispow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* Last integer of [start, start + size); size > 0, never overflows. */
static inline uintptr_t vmem__last(uintptr_t start, size_t size)
{
	return start + (size - 1);
}

/* ---- seg.c: arena structures (all _locked) --------------------------- */
int vmem__seg_reserve(vmem_t *vmp, unsigned n);
void vmem__seg_release_reserve(vmem_t *vmp);
vmem_seg_t *vmem__seg_get(vmem_t *vmp);
void vmem__seg_put(vmem_t *vmp, vmem_seg_t *vsp);

void vmem__free_insert(vmem_t *vmp, vmem_seg_t *vsp);
void vmem__free_remove(vmem_t *vmp, vmem_seg_t *vsp);
/*
 * Make sure one half of the index exists, building it from the free
 * segments the first time (false if no memory for it).
 */
bool vmem__index_addr(vmem_t *vmp);
bool vmem__index_size(vmem_t *vmp);
void vmem__index_fini(vmem_t *vmp);

void vmem__hash_init(vmem_t *vmp);
void vmem__hash_fini(vmem_t *vmp);
void vmem__hash_insert(vmem_t *vmp, vmem_seg_t *vsp);
vmem_seg_t **vmem__hash_lookup(vmem_t *vmp, uintptr_t addr);
void vmem__hash_remove(vmem_t *vmp, vmem_seg_t **linkp);

vmem_seg_t *vmem__span_find(vmem_t *vmp, uintptr_t addr);
bool vmem__span_overlaps(vmem_t *vmp, uintptr_t start, size_t size);
vmem_seg_t *vmem__span_create(vmem_t *vmp, uintptr_t start, size_t size, bool imported);
void vmem__span_unlink(vmem_t *vmp, vmem_seg_t *span);
vmem_seg_t *vmem__seg_find(vmem_t *vmp, uintptr_t addr);

vmem_seg_t *vmem__carve(vmem_t *vmp, vmem_seg_t *fsp, uintptr_t addr, size_t rsize, size_t asize);
vmem_seg_t *vmem__release(vmem_t *vmp, vmem_seg_t *vsp);
bool vmem__span_wholly_free(const vmem_seg_t *fsp);
void vmem__walker_link_after(vmem_seg_t *pos, vmem_seg_t *walker);
vmem_seg_t *vmem__walker_unlink(vmem_t *vmp, vmem_seg_t *walker);

bool vmem__verify_locked(vmem_t *vmp, const char **why);
/* Size of the largest free segment (0 if none). */
size_t vmem__largest_free_locked(vmem_t *vmp);

/* ---- fit.c: placement policies (all _locked) -------------------------- */
typedef struct vmem_req {
	size_t rq_size;      /* the caller's size, > 0 */
	size_t rq_rsize;     /* rounded up to the quantum */
	size_t rq_align;     /* power of two >= quantum */
	size_t rq_phase;     /* < rq_align, quantum multiple */
	size_t rq_nocross;   /* 0, or a power of two >= rq_align */
	uintptr_t rq_min;    /* lowest address allowed */
	uintptr_t rq_last;   /* highest address allowed (inclusive) */
	int rq_flags;        /* VM_* */
	uint8_t rq_segflags; /* VMEM_SEGF_* to give the segment */
} vmem_req_t;

bool vmem__seg_fit(const vmem_req_t *r, uintptr_t start, size_t size, bool high, uintptr_t *tp);
/*
 * Choose a free segment for r and the address in it (lock held).  NULL with
 * *nomem set: the index the policy needs could not be mapped (a metadata
 * shortage, not a full arena).
 */
vmem_seg_t *vmem__fit(vmem_t *vmp, const vmem_req_t *r, uintptr_t *addrp, bool *nomem);
bool vmem__req_unconstrained(const vmem_t *vmp, const vmem_req_t *r);
size_t vmem__guaranteed_size(const vmem_t *vmp, const vmem_req_t *r);

/* ---- snapshot.c: the writer's record interface (for the debug layer) ---- */
typedef struct vmem_snapw vmem_snapw_t;
/* Append bytes to the current record. */
void vmem__snapw_put(vmem_snapw_t *w, const void *p, size_t n);
/* The current record is complete. */
void vmem__snapw_record(vmem_snapw_t *w);

/* ---- error.c ---------------------------------------------------------- */
void vmem__report(vmem_error_info_t *info, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void vmem__write_line(const char *msg);
/* Write the VMEM_SNAPSHOT snapshot, if asked for, before a fatal abort. */
void vmem__snapshot_on_fatal(void);
_Noreturn void vmem__panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Every public entry point that allocates or frees opens an API scope: the
 * debug layer records the caller's return address and captures the stack
 * once, at the outermost entry (compiled away in the fast library).
 */
typedef struct vmem_api_scope {
	char vas_unused;
} vmem_api_scope_t;

void vmem__dbg_api_enter(void *ra);
void vmem__dbg_api_leave(void);

static inline vmem_api_scope_t vmem__api_enter(void *ra)
{
	if (vmem_debug)
		vmem__dbg_api_enter(ra);
	return (vmem_api_scope_t){0};
}

static inline void vmem__api_leave(vmem_api_scope_t *s)
{
	(void)s;
	if (vmem_debug)
		vmem__dbg_api_leave();
}

#define VMEM_API_SCOPE()                                                                           \
	vmem_api_scope_t vmem_api_scope_ __attribute__((cleanup(vmem__api_leave), unused)) =       \
	    vmem__api_enter(__builtin_return_address(0))

/* ---- vmem.c ----------------------------------------------------------- */
typedef struct vmem_create_args {
	const char *ca_name;
	uintptr_t ca_base;
	size_t ca_size;
	size_t ca_quantum;
	vmem_import_fn *ca_import;
	vmem_release_fn *ca_release;
	vmem_afunc_t ca_afunc;
	vmem_free_t *ca_ffunc;
	void *ca_cbarg;
	vmem_t *ca_source;
	size_t ca_qcache_max;
	int ca_vmflag;
	bool ca_zero_ok;      /* address 0 is allowed (BSD-style arenas) */
	bool ca_free_rounded; /* frees may give any size of the same quanta */
} vmem_create_args_t;

vmem_t *vmem__create(const vmem_create_args_t *a);

/*
 * The API's entry points in integer form, for the other APIs built on the
 * core (BSD-style, id_space).  They return 0, ENOMEM or EINVAL; `last` is
 * the highest address allowed (inclusive); VM_PANIC is applied as usual.
 */
int vmem__alloc(vmem_t *vmp, size_t size, int vmflag, uintptr_t *addrp);
int vmem__xalloc(vmem_t *vmp, size_t size, size_t align, size_t phase, size_t nocross,
                 uintptr_t min, uintptr_t last, int vmflag, uintptr_t *addrp, const char **whyp);
/* `func` names the API function in reports ("vmem_free", "id_free", ...). */
void vmem__free(vmem_t *vmp, uintptr_t addr, size_t size, const char *func);
void vmem__xfree(vmem_t *vmp, uintptr_t addr, size_t size, const char *func);
int vmem__add(vmem_t *vmp, uintptr_t addr, size_t size, int vmflag);
/* Allocate a segment with VMEM_SEGF_* flags (slabs, direct cache objects). */
int vmem__alloc_seg(vmem_t *vmp, size_t size, size_t align, int vmflag, uint8_t segflags,
                    uintptr_t *addrp);
void vmem__free_seg(vmem_t *vmp, uintptr_t addr, size_t size);
/* An object of a quantum cache that no slab owns: free it in the arena. */
struct vmem_qcache;
void vmem__free_cached_object(vmem_t *vmp, uintptr_t addr, size_t size, struct vmem_qcache *qc);
/* Format and report a refused free (info: kind, addresses, sizes filled in). */
void vmem__report_free_error(vmem_t *vmp, vmem_error_info_t *info);
/* Replace the import and release functions (the BSD vmem_set_import). */
void vmem__set_import(vmem_t *vmp, vmem_import_fn *import, vmem_release_fn *release, void *cbarg,
                      size_t import_quantum);
/* Largest free segment, taking the lock (for VMEM_MAXFREE). */
size_t vmem__largest_free(vmem_t *vmp);
/* Lock the arena and check every invariant; *why says what failed. */
bool vmem__verify(vmem_t *vmp, const char **why);

extern pthread_mutex_t vmem__list_lock;
extern vmem_t *vmem__list_head;

#endif /* VMEM_IMPL_H */
