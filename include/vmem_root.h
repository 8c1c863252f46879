/*
 * The self-describing root: how a debugger finds and reads libvmem's state
 * in another process (live, or a core file) without knowing how this
 * particular build laid out its structures.
 *
 * Every libvmem build exports one object, `vmem_debug_root` (an ELF symbol
 * of libvmem.so, libvmem-debug.so, or of the executable a static library
 * was linked into).  It starts with a magic number and a version, gives the
 * addresses of the global state (the arena list, the metadata regions, the
 * error counters, the registry of per-thread magazine tables, and in the
 * debug library the stack depot and the transaction log), and the size of
 * each structure and the offset of each field a reader needs.  A reader
 * checks the magic, the version it understands and the pointer size, then
 * follows pointers by reading memory.
 *
 * Versions.  VMEM_ROOT_VERSION is bumped only on incompatible changes (a
 * field moved or changed meaning).  Compatible additions keep the version:
 * they append fields after the last one, grow vr_size, and may give a
 * meaning to padding that earlier builds left zero.  So a reader:
 *   - refuses another version, and a root smaller than VMEM_ROOT_SIZE_BASE
 *     (the first version-1 roots);
 *   - reads min(vr_size, sizeof what it knows) bytes and treats what lies
 *     past vr_size as absent;
 *   - uses a group of appended fields only when vr_size covers it.
 * An older reader therefore reads a newer build (without what it does not
 * know of), and a newer reader reads an older build, saying what is missing.
 *
 * History of version 1: the first roots ended at vr_dbg (VMEM_ROOT_SIZE_BASE
 * bytes) and described of the quantum caches only their sizes and slabs.
 * Roots of VMEM_ROOT_SIZE_MAGS bytes or more also describe the caches'
 * counters and depots, the magazines, and the per-thread magazine tables
 * (vr_qcstat, vr_mag, vr_tcache), and fill ra_nqcache_max and rr_hdrsize
 * (0 in the first roots).
 *
 * All fields are fixed-size integers; addresses are the target process's.
 * Every offset and size is computed by the compiler (src/root.c).
 */
#ifndef VMEM_ROOT_H
#define VMEM_ROOT_H

#include <stddef.h>
#include <stdint.h>

#define VMEM_ROOT_MAGIC   0x544f4f524d454d56ULL /* "VMEMROOT" little-endian */
#define VMEM_ROOT_VERSION 1

/* Offsets (bytes) of the fields of struct vmem (an arena). */
typedef struct vmem_root_arena {
	uint32_t ra_size;
	uint32_t ra_name;        /* char[VMEM_NAMELEN + 1] */
	uint32_t ra_id;          /* uint32_t */
	uint32_t ra_cflags;      /* int */
	uint32_t ra_quantum;     /* size_t */
	uint32_t ra_qcache_max;  /* size_t */
	uint32_t ra_seg0;        /* the anchor segment (embedded) */
	uint32_t ra_next;        /* vmem_t *: next arena, creation order */
	uint32_t ra_source;      /* vmem_t * */
	uint32_t ra_nqcache;     /* int */
	uint32_t ra_qcache;      /* vmem_qcache_t *[ra_nqcache_max]: ra_nqcache used */
	uint32_t ra_ctr;         /* 13 uint64_t: mem_inuse, mem_import, mem_total, alloc, free,
	                            wait, fail, lookup, search, populate_wait, populate_fail,
	                            contains, contains_search (vmem_kstat_t less vk_source_id) */
	uint32_t ra_spans_count; /* size_t: number of spans */
	uint32_t ra_hash_count;  /* size_t: number of allocated segments */
	uint32_t ra_nqcache_max; /* entries of the ra_qcache array (0 in the first roots) */
	uint32_t ra_pad;
} vmem_root_arena_t;

/* Offsets of the fields of vmem_seg_t (a boundary tag). */
typedef struct vmem_root_seg {
	uint32_t rs_size;
	uint32_t rs_start;  /* uintptr_t */
	uint32_t rs_extent; /* size_t: the segment's extent (quantum multiple) */
	uint32_t rs_anext;  /* vmem_seg_t *: address-ordered list, circular via the anchor */
	uint32_t rs_type;   /* uint8_t: 1 ALLOC, 2 FREE, 0x10 SPAN, 0x40 WALKER */
	uint32_t rs_flags;  /* uint8_t: 1 IMPORTED span, 2 XALLOC, 4 SLAB, 8 ANCHOR, 0x10 QDIRECT */
	uint32_t rs_stack;  /* uint32_t: ALLOC, debug: stack id */
	uint32_t rs_asize;  /* size_t: ALLOC: the caller's size */
	uint32_t rs_time;   /* uint64_t: ALLOC, debug: CLOCK_MONOTONIC ns */
	uint32_t rs_thread; /* uint64_t: ALLOC, debug: thread id */
} vmem_root_seg_t;

/* Quantum caches and their slabs. */
typedef struct vmem_root_qcache {
	uint32_t rq_size;
	uint32_t rq_name;     /* char[VMEM_NAMELEN + 12] */
	uint32_t rq_objsize;  /* size_t */
	uint32_t rq_slabsize; /* size_t */
	uint32_t rq_nobj;     /* unsigned */
	uint32_t rq_slabs;    /* vmem_slab_t *[3]: partial, empty, full lists */
	uint32_t rq_nslabs;   /* size_t */
	uint32_t rq_slab_out; /* uint64_t: objects out of slabs */
	uint32_t sl_size;     /* vmem_slab_t: */
	uint32_t sl_next;     /* vmem_slab_t * */
	uint32_t sl_base;     /* uintptr_t */
	uint32_t sl_freemap;  /* uint64_t: bit i set: object i free (in the slab) */
	uint32_t sl_audit;    /* debug: vmem_qaudit_t[nobj] */
	uint32_t qa_size;     /* vmem_qaudit_t: */
	uint32_t qa_alloc_stack, qa_alloc_tid, qa_alloc_time; /* uint32, uint32, uint64 */
	uint32_t qa_pad;
} vmem_root_qcache_t;

/* Metadata regions: header of each mapping, on a list. */
typedef struct vmem_root_region {
	uint32_t rr_next;    /* vmem_meta_region_t *: next */
	uint32_t rr_size;    /* size_t: bytes mapped, header included */
	uint32_t rr_kind;    /* uint32_t: 1 segs, 2 arenas, 3 hash, 4 cache, 5 debug, 6 other */
	uint32_t rr_hdrsize; /* sizeof the header: the bytes to read (0 in the first roots) */
} vmem_root_region_t;

/* The debug library's state (vr_debug != 0). */
typedef struct vmem_root_debug {
	uint64_t rd_depot_byid;  /* address of the `stack_rec_t **` variable: table [id - 1] */
	uint64_t rd_depot_count; /* address of the uint32_t count of stacks */
	uint32_t rd_stack_depth; /* offset of uint32_t depth in a stack record */
	uint32_t rd_stack_pc;    /* offset of uintptr_t pc[depth] */
	uint64_t rd_log_recs;    /* address of the `vmem_txrec_t *` variable */
	uint64_t rd_log_size;    /* address of the size_t entries */
	uint64_t rd_log_seq;     /* address of the uint64_t newest sequence number */
	uint32_t rd_txrec_size;  /* the log's records: see vsnap.h, same layout */
	uint32_t rd_pad;
} vmem_root_debug_t;

/*
 * Appended (VMEM_ROOT_SIZE_MAGS): the rest of a quantum cache (vmem_qcache_t,
 * whose size is vr_qcache.rq_size).  A cache's counters, as
 * vmem_qcache_kstat() computes them: alloc = qs_dead_alloc + the te_alloc of
 * every thread entry of the cache (likewise free, alloc_miss, free_miss);
 * depot_full and depot_empty are qs_nfull and qs_nempty; mag_rounds counts
 * the rounds of the magazines on the qs_full list and in the thread entries;
 * the others are the fields of the same name.
 */
typedef struct vmem_root_qcstat {
	uint32_t qs_id;    /* uint32_t: the cache's index in every thread's entry table */
	uint32_t qs_gen;   /* uint32_t: told apart from earlier caches with the same id */
	uint32_t qs_full;  /* vmem_mag_t *: depot list of full magazines, by rm_next */
	uint32_t qs_empty; /* vmem_mag_t *: depot list of empty magazines */
	uint32_t qs_nfull, qs_nempty; /* uint64_t: magazines on those lists */
	uint32_t qs_depot_alloc;      /* uint64_t: full magazines handed to threads */
	uint32_t qs_depot_free;       /* uint64_t: full magazines taken from threads */
	uint32_t qs_depot_contention; /* uint64_t */
	uint32_t qs_slab_create;      /* uint64_t */
	uint32_t qs_slab_destroy;     /* uint64_t */
	uint32_t qs_direct;           /* uint64_t: objects served by the arena itself */
	uint32_t qs_reaps;            /* uint64_t */
	/* uint64_t: the operations of threads gone, and the debug library's (no magazines) */
	uint32_t qs_dead_alloc, qs_dead_free, qs_dead_alloc_miss, qs_dead_free_miss;
	uint32_t qs_pad;
} vmem_root_qcstat_t;

/*
 * Appended: a magazine (vmem_mag_t), an array of free objects ("rounds") of
 * one cache: rm_round[0 .. count).  Objects in magazines are free for
 * callers although they are out of their slabs.
 */
typedef struct vmem_root_mag {
	uint32_t rm_size;
	uint32_t rm_next;    /* vmem_mag_t *: depot list link */
	uint32_t rm_count;   /* uint32_t: rounds held, at most rm_nrounds */
	uint32_t rm_round;   /* uintptr_t[rm_nrounds] */
	uint32_t rm_nrounds; /* capacity of rm_round */
	uint32_t rm_pad;
} vmem_root_mag_t;

/*
 * Appended: the per-thread magazine tables.  Each thread that used a cache
 * has a vmem_tcache_t on a registry list (rt_registry, linked by rt_next);
 * its table holds rt_nentries entries of te_size bytes, and the entry of a
 * cache is the one at index qs_id, which belongs to the cache when its te_qc
 * is the cache's address and its te_gen the cache's qs_gen (otherwise it is
 * stale or unused).  An entry holds a loaded and a previous magazine.
 */
typedef struct vmem_root_tcache {
	uint64_t rt_registry; /* address of the `vmem_tcache_t *` registry head */
	uint32_t rt_size;     /* vmem_tcache_t: */
	uint32_t rt_next;     /* vmem_tcache_t * */
	uint32_t rt_nentries; /* uint32_t */
	uint32_t rt_entry;    /* vmem_tc_entry_t *: the table */
	uint32_t te_size;     /* vmem_tc_entry_t (the table's stride): */
	uint32_t te_qc;       /* vmem_qcache_t *: NULL when unused */
	uint32_t te_gen;      /* uint32_t */
	uint32_t te_loaded;   /* vmem_mag_t * */
	uint32_t te_prev;     /* vmem_mag_t * */
	uint32_t te_alloc, te_free, te_alloc_miss, te_free_miss; /* uint64_t */
	uint32_t te_pad;
} vmem_root_tcache_t;

typedef struct vmem_root {
	uint64_t vr_magic;        /* VMEM_ROOT_MAGIC */
	uint32_t vr_version;      /* VMEM_ROOT_VERSION */
	uint32_t vr_size;         /* sizeof(vmem_root_t) in this build */
	uint32_t vr_ptrsize;      /* sizeof(void *) */
	uint32_t vr_debug;        /* 1: libvmem-debug */
	uint64_t vr_list_head;    /* address of the `vmem_t *` head of the arena list */
	uint64_t vr_list_lock;    /* address of the list mutex (informative) */
	uint64_t vr_region_head;  /* address of the `vmem_meta_region_t *` region list head */
	uint64_t vr_error_counts; /* address of uint64_t[VMEM_ERR_NKINDS] error counts by kind */
	uint32_t vr_nkinds;       /* VMEM_ERR_NKINDS */
	uint32_t vr_namelen;      /* VMEM_NAMELEN */
	vmem_root_arena_t vr_arena;
	vmem_root_seg_t vr_seg;
	vmem_root_qcache_t vr_qcache;
	vmem_root_region_t vr_region;
	uint64_t vr_dbg; /* address of a vmem_root_debug_t when vr_debug, else 0 */
	/* Appended: present when vr_size >= VMEM_ROOT_SIZE_MAGS. */
	vmem_root_qcstat_t vr_qcstat;
	vmem_root_mag_t vr_mag;
	vmem_root_tcache_t vr_tcache;
} vmem_root_t;

/* vr_size of the first version-1 roots: the least a reader accepts. */
#define VMEM_ROOT_SIZE_BASE offsetof(vmem_root_t, vr_qcstat)
/* vr_size from which the caches' counters, depots and magazines are described. */
#define VMEM_ROOT_SIZE_MAGS (offsetof(vmem_root_t, vr_tcache) + sizeof(vmem_root_tcache_t))

/* The root of this process (readers in other processes look up the symbol). */
extern const vmem_root_t vmem_debug_root;

#endif /* VMEM_ROOT_H */
