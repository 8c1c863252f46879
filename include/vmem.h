/*
 * libvmem: the vmem resource allocator (Bonwick & Adams, USENIX 2001) in
 * userspace, with the illumos vmem(9) API.
 *
 * An arena is a set of integers (addresses, offsets, identifiers) made of
 * spans; allocations carve segments out of the spans.  Code written against
 * illumos <sys/vmem.h> compiles unchanged against this header.
 *
 * Differences from illumos that a caller can observe are listed in
 * docs/design.md ("Semantics"); the short version:
 *   - invalid arguments return NULL with errno = EINVAL instead of panicking;
 *   - VM_FIRSTFIT returns the lowest-addressed fit;
 *   - VM_ENDALLOC places segments at the highest quantum-aligned address;
 *   - bad frees are reported through vmem_set_error_handler() and, by
 *     default, abort the process after the report.
 */
#ifndef VMEM_H
#define VMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An arena.  Opaque: every access goes through the functions below. */
typedef struct vmem vmem_t;

/* Import callback: get `size` bytes of span from `source`. */
typedef void *(vmem_alloc_t)(vmem_t *, size_t, int);
/* Release callback: give a span back to `source`. */
typedef void(vmem_free_t)(vmem_t *, void *, size_t);
/* Extended import: may increase *size; the third argument is the alignment. */
typedef void *(vmem_ximport_t)(vmem_t *, size_t *, size_t, int);

/*
 * Per-call flags (low 16 bits).  Exactly one of VM_SLEEP / VM_NOSLEEP; at
 * most one fit policy.  No fit flag means "instant fit", constant time.
 */
#define VM_SLEEP     0x00000000 /* may block until the request can be met */
#define VM_NOSLEEP   0x00000001 /* never block; NULL when exhausted */
#define VM_PANIC     0x00000002 /* failure is fatal: report and abort() */
#define VM_PUSHPAGE  0x00000004 /* accepted for compatibility; no effect */
#define VM_NORMALPRI 0x00000008 /* accepted for compatibility; no effect */
#define VM_KMFLAGS   0x000000ff /* flags passed through to import functions */
#define VM_BESTFIT   0x00000100 /* smallest free segment that fits */
#define VM_FIRSTFIT  0x00000200 /* lowest-addressed free segment that fits */
#define VM_NEXTFIT   0x00000400 /* next fit after the previous allocation */
#define VM_MEMLOAD   0x00000800 /* accepted for compatibility; no effect */
#define VM_NORELOC   0x00001000 /* accepted for compatibility; no effect */
#define VM_ABORT     0x00002000 /* on failure return NULL at once: no sleep, no reap */
#define VM_ENDALLOC  0x00004000 /* prefer the highest addresses */
#define VM_FLAGS     0x0000FFFF

/* Arena creation flags (high 16 bits of vmem_create's vmflag). */
#define VMC_POPULATOR  0x00010000 /* accepted for compatibility; no effect */
#define VMC_NO_QCACHE  0x00020000 /* no quantum caches */
#define VMC_IDENTIFIER 0x00040000 /* integers are identifiers, not memory */
#define VMC_XALLOC     0x00080000 /* set by vmem_xcreate: ximport semantics */
#define VMC_XALIGN     0x00100000 /* imports are aligned to the request */
#define VMC_DUMPSAFE   0x00200000 /* accepted for compatibility; no effect */
#define VMC_FLAGS      0xFFFF0000

/* Segment types for vmem_walk() and vmem_size(). */
#define VMEM_ALLOC     0x01
#define VMEM_FREE      0x02
#define VMEM_SPAN      0x10
#define VMEM_REENTRANT 0x80000000 /* drop the arena lock around callbacks */
/* The spellings used by the vmem_walk(9F) manual page. */
#define VMBM_ALLOC VMEM_ALLOC
#define VMBM_FREE  VMEM_FREE

/* Longest arena name kept; longer names are truncated. */
#define VMEM_NAMELEN 30

vmem_t *vmem_create(const char *name, void *base, size_t size, size_t quantum, vmem_alloc_t *afunc,
                    vmem_free_t *ffunc, vmem_t *source, size_t qcache_max, int vmflag);
vmem_t *vmem_xcreate(const char *name, void *base, size_t size, size_t quantum,
                     vmem_ximport_t *afunc, vmem_free_t *ffunc, vmem_t *source, size_t qcache_max,
                     int vmflag);
void vmem_destroy(vmem_t *vmp);

void *vmem_add(vmem_t *vmp, void *vaddr, size_t size, int vmflag);

void *vmem_alloc(vmem_t *vmp, size_t size, int vmflag);
void *vmem_xalloc(vmem_t *vmp, size_t size, size_t align_arg, size_t phase, size_t nocross,
                  void *minaddr, void *maxaddr, int vmflag);
void vmem_free(vmem_t *vmp, void *vaddr, size_t size);
void vmem_xfree(vmem_t *vmp, void *vaddr, size_t size);

int vmem_contains(vmem_t *vmp, void *vaddr, size_t size);
void vmem_walk(vmem_t *vmp, int typemask, void (*func)(void *, void *, size_t), void *arg);
size_t vmem_size(vmem_t *vmp, int typemask);

/* ---- libvmem extensions ------------------------------------------------ */

/*
 * Errors in the use of an arena (bad frees and the like) are reported
 * through one handler.  The default handler writes the report to stderr;
 * then, under VMEM_ERRORS_ABORT (the default), the process aborts.  Under
 * VMEM_ERRORS_CONTINUE the offending call returns having changed nothing.
 * The environment variable VMEM_ERROR_POLICY=abort|continue sets the initial
 * policy.
 */
typedef enum vmem_error_kind {
	VMEM_ERR_BAD_FREE = 1,  /* address never allocated here (or freed already) */
	VMEM_ERR_DOUBLE_FREE,   /* debug build: freed twice, earlier free known */
	VMEM_ERR_INTERIOR_FREE, /* address is inside an allocated segment */
	VMEM_ERR_SIZE_MISMATCH, /* size differs from the allocation's */
	VMEM_ERR_WRONG_ARENA,   /* segment belongs to another arena */
	VMEM_ERR_FREE_XALLOC,   /* vmem_free() of a vmem_xalloc() segment */
	VMEM_ERR_XFREE_CACHED,  /* vmem_xfree() of a quantum-cached allocation */
	VMEM_ERR_DESTROY_BUSY,  /* vmem_destroy() of an arena that has importers */
	VMEM_ERR_LEAK,          /* vmem_destroy() with segments still allocated */
	VMEM_ERR_PANIC,         /* a VM_PANIC allocation failed (always fatal) */
	VMEM_ERR_NKINDS
} vmem_error_kind_t;

typedef struct vmem_error_info {
	vmem_error_kind_t ve_kind;
	const char *ve_kind_name; /* "bad free", "double free", ... */
	const char *ve_func;      /* the API function that found it */
	vmem_t *ve_arena;         /* arena the call was made on */
	const char *ve_arena_name;
	uintptr_t ve_addr;        /* address given by the caller */
	size_t ve_size;           /* size given by the caller */
	uintptr_t ve_seg_start;   /* the segment concerned, when one is known */
	size_t ve_seg_size;       /* its recorded (caller's) size */
	const char *ve_seg_arena; /* for VMEM_ERR_WRONG_ARENA: the owner */
	uint64_t ve_count;        /* VMEM_ERR_LEAK: segments still allocated */
	uint64_t ve_bytes;        /* VMEM_ERR_LEAK: their total size */
	const char *ve_message;   /* the whole report, one line, no newline */
	/*
	 * libvmem-debug only (NULL / 0 otherwise): stacks as return addresses,
	 * the caller first; threads are kernel thread ids; times are
	 * CLOCK_MONOTONIC nanoseconds.
	 */
	const uintptr_t *ve_cur_stack; /* the call that found the error */
	int ve_cur_depth;
	const uintptr_t *ve_alloc_stack; /* the allocation of the segment concerned */
	int ve_alloc_depth;
	uint64_t ve_alloc_thread, ve_alloc_time;
	const uintptr_t *ve_free_stack; /* the earlier free (double free) */
	int ve_free_depth;
	uint64_t ve_free_thread, ve_free_time;
} vmem_error_info_t;

typedef void vmem_error_handler_t(const vmem_error_info_t *info, void *arg);

#define VMEM_ERRORS_ABORT    0
#define VMEM_ERRORS_CONTINUE 1

/* Set the policy; returns the previous one, or -1 (EINVAL) for a bad value. */
int vmem_set_error_policy(int policy);
int vmem_get_error_policy(void);
/* Install a handler (NULL restores the default); called before any abort. */
void vmem_set_error_handler(vmem_error_handler_t *handler, void *arg);
/* Errors reported so far in this process, all kinds but VMEM_ERR_LEAK. */
uint64_t vmem_error_count(void);
/* Reports of one kind so far (leaks included). */
uint64_t vmem_error_count_kind(vmem_error_kind_t kind);

/*
 * The debug library, libvmem-debug (pkg-config vmem-debug), records for
 * every allocated segment (quantum-cached objects included) the thread,
 * the time and the stack; verifies every free; keeps a transaction log;
 * and reports leaks grouped by stack.  Environment:
 *   VMEM_STACK_DEPTH=n    frames per stack (default 16, at most 64)
 *   VMEM_LOG_SIZE=n       transaction log entries (default 16384; 0: off)
 *   VMEM_LEAK_CHECK=1     report outstanding segments of every arena at exit
 *   VMEM_LEAK_JSON=path   also write leak reports as JSON to path
 * In libvmem these functions return -1 with errno ENOTSUP (and
 * vmem_debug_enabled() returns 0).
 */
int vmem_debug_enabled(void);
int vmem_debug_set_log_size(size_t entries);
int vmem_debug_set_stack_depth(int depth);
#define VMEM_REPORT_TEXT 0
#define VMEM_REPORT_JSON 1
/* Write a leak report of vmp (NULL: every arena) to fd; 0, or -1 with errno. */
int vmem_debug_leak_report(vmem_t *vmp, int fd, int flags);

/*
 * Counters of one arena, named as illumos' vmem kstats (vk_<kstat name>).
 * vk_mem_inuse counts the sizes callers asked for; vk_source_id is the
 * source arena's id (0: none); arena ids start at 1.
 */
typedef struct vmem_kstat {
	uint64_t vk_mem_inuse;       /* bytes (or ids) allocated, caller sizes */
	uint64_t vk_mem_import;      /* bytes of spans imported from the source */
	uint64_t vk_mem_total;       /* bytes of all spans */
	uint64_t vk_source_id;       /* id of the source arena, 0 if none */
	uint64_t vk_alloc;           /* segments allocated */
	uint64_t vk_free;            /* segments freed */
	uint64_t vk_wait;            /* VM_SLEEP waits */
	uint64_t vk_fail;            /* allocations that failed */
	uint64_t vk_lookup;          /* hash chain entries passed over by frees */
	uint64_t vk_search;          /* free segments examined by allocations */
	uint64_t vk_populate_wait;   /* waits for metadata memory */
	uint64_t vk_populate_fail;   /* metadata refills that failed */
	uint64_t vk_contains;        /* vmem_contains() calls */
	uint64_t vk_contains_search; /* span index nodes visited by vmem_contains() */
} vmem_kstat_t;

/* Fill *ks with the arena's counters; 0, or -1 with errno EINVAL. */
int vmem_kstat(vmem_t *vmp, vmem_kstat_t *ks);

/* The arena's id (1, 2, ... in creation order). */
uint32_t vmem_id(const vmem_t *vmp);

/*
 * Reclaim callback (as FreeBSD's vmem_set_reclaim): when an allocation
 * finds no space and its import (if any) failed, the arena calls fn(vmp,
 * vmflag) without holding its lock, before failing or sleeping; if the
 * callback freed anything into the arena the allocation is retried, even
 * with VM_NOSLEEP.  NULL removes it.
 */
typedef void(vmem_reclaim_t)(vmem_t *, int);
void vmem_set_reclaim(vmem_t *vmp, vmem_reclaim_t *fn);

/*
 * Cap on the arena's size (as FreeBSD's vmem_set_limit): an import that
 * would take the arena's total span size above `limit` is not made.  Spans
 * added with vmem_add() are not limited.  0 removes the cap.
 */
void vmem_set_limit(vmem_t *vmp, size_t limit);

/*
 * Quantum caches.  An arena created with qcache_max > 0 (and without
 * VMC_NO_QCACHE) serves vmem_alloc()/vmem_free() of every multiple of the
 * quantum up to min(qcache_max, 16 quanta) from per-thread magazines, a
 * depot and slabs; vmem_xalloc()/vmem_xfree() bypass them.  Cached objects
 * are reported as free by vmem_size(); vmem_walk() empties the magazines
 * first and reports slab objects individually.  vmem_qcache_reap() gives
 * every cached object that no caller holds back to the arena.
 */
void vmem_qcache_reap(vmem_t *vmp);
/* Number of quantum caches of the arena (0 if none). */
unsigned vmem_qcache_count(const vmem_t *vmp);

typedef struct vmem_qcache_kstat {
	char qk_name[48];             /* "<arena>_<size>", as illumos names them */
	uint64_t qk_objsize;          /* object size */
	uint64_t qk_slabsize;         /* slab size (a power of two) */
	uint64_t qk_alloc;            /* allocations */
	uint64_t qk_free;             /* frees */
	uint64_t qk_alloc_miss;       /* allocations the thread's magazines could not serve */
	uint64_t qk_free_miss;        /* frees they could not take */
	uint64_t qk_depot_alloc;      /* full magazines taken from the depot */
	uint64_t qk_depot_free;       /* full magazines given to the depot */
	uint64_t qk_depot_contention; /* depot lock found busy */
	uint64_t qk_depot_full;       /* full magazines in the depot now */
	uint64_t qk_depot_empty;      /* empty magazines in the depot now */
	uint64_t qk_mag_rounds;       /* objects in magazines now (threads and depot) */
	uint64_t qk_slabs;            /* slabs now */
	uint64_t qk_slab_create;      /* slabs taken from the arena */
	uint64_t qk_slab_destroy;     /* slabs given back */
	uint64_t qk_slab_out;         /* objects out of slabs (magazines or callers) */
	uint64_t qk_direct;           /* objects served without a slab */
	uint64_t qk_reaps;            /* reaps */
} vmem_qcache_kstat_t;

/* Counters of cache i (0 <= i < vmem_qcache_count()); 0, or -1 with EINVAL. */
int vmem_qcache_kstat(vmem_t *vmp, unsigned i, vmem_qcache_kstat_t *ks);

/*
 * Arenas in tree order: each arena without a source (in creation order),
 * then depth-first the arenas importing from it.  fn returns non-zero to
 * stop.  fn must not create or destroy arenas (the arena list is locked);
 * it may call vmem_kstat() and the like.
 */
typedef struct vmem_arena_info {
	vmem_t *vai_arena;
	uint32_t vai_id;
	uint32_t vai_source_id; /* 0: no source */
	int vai_depth;          /* 0 for an arena without a source */
	int vai_cflags;         /* VMC_* */
	size_t vai_quantum;
	const char *vai_name;
} vmem_arena_info_t;
int vmem_arena_foreach(int (*fn)(const vmem_arena_info_t *info, void *arg), void *arg);

/*
 * Every counter of every arena, cache and error kind, in the kstat(1M)
 * parseable form "vmem:<id>:<name>:<statistic>\t<value>" (caches appear under
 * their arena's id with their own name, error counts as vmem:0:errors:<kind>),
 * or with VMEM_KSTAT_JSON as one JSON object.  0, or -1 with errno.
 */
#define VMEM_KSTAT_JSON 1
int vmem_kstat_print(int fd, int flags);

/*
 * Snapshots (docs/snapshot-format.md): the arena tree, every span and
 * segment (with its audit record in libvmem-debug), the caches, the stacks,
 * the transaction log, the metadata regions and the loaded objects, taken
 * consistently (every arena locked) and written without malloc.  The path
 * form writes PATH.tmp and renames it.  0, or -1 with errno.
 * Also written: at exit when VMEM_SNAPSHOT=path is set; before an abort on
 * a fatal error (to VMEM_SNAPSHOT); and when the signal named by
 * VMEM_SNAPSHOT_SIGNAL (e.g. USR1) arrives (to VMEM_SNAPSHOT, default
 * vmem-<pid>.vsnap; the handler only wakes a thread that writes it).
 */
int vmem_snapshot_write(const char *path);
int vmem_snapshot_write_fd(int fd);

/* The arena's name, as stored (possibly truncated). */
const char *vmem_name(const vmem_t *vmp);

#ifdef __cplusplus
}
#endif

#endif /* VMEM_H */
