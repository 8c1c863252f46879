/*
 * Snapshots of libvmem's state: the file format (docs/snapshot-format.md)
 * and the in-memory model a reader builds from it.
 *
 * The writer is src/snapshot.c (in the library, no malloc).  The reader
 * and validator is src/vsnap_read.c (not in the library: linked into the
 * inspector, the tests and the fuzzer).  vmemdb builds the same model from
 * a live process or a core file, so every command works on every target.
 *
 * All integers are little-endian; every record is a multiple of 8 bytes.
 */
#ifndef VMEM_VSNAP_H
#define VMEM_VSNAP_H

#include <stddef.h>
#include <stdint.h>

#define VSNAP_MAGIC   "VMEMSNAP"
#define VSNAP_VERSION 1

/* ---- on disk ------------------------------------------------------------- */

typedef struct vsnap_file_header {
	char fh_magic[8];    /* "VMEMSNAP" */
	uint32_t fh_version; /* VSNAP_VERSION */
	uint32_t fh_hdrsize; /* 64 */
	uint32_t fh_flags;   /* VSNAP_F_* */
	uint32_t fh_ptrsize; /* sizeof(void *) of the writer */
	uint64_t fh_pid;     /* process that wrote it */
	uint64_t fh_time_ns; /* CLOCK_REALTIME when written */
	uint64_t fh_reserved[2];
	uint32_t fh_nsections; /* sections that follow, END included */
	uint32_t fh_reserved2;
} vsnap_file_header_t;

#define VSNAP_F_DEBUG 0x1 /* written by libvmem-debug: audit data present */

typedef struct vsnap_section_header {
	uint32_t sh_type;    /* VSNAP_SEC_* */
	uint32_t sh_recsize; /* bytes per record; 0 for variable-size records */
	uint64_t sh_count;   /* records */
	uint64_t sh_bytes;   /* payload bytes that follow */
} vsnap_section_header_t;

enum {
	VSNAP_SEC_ARENA = 1,
	VSNAP_SEC_SEG = 2,
	VSNAP_SEC_QCACHE = 3,
	VSNAP_SEC_STACK = 4, /* variable: vsnap_stack_rec_t + pc[depth] */
	VSNAP_SEC_TXLOG = 5,
	VSNAP_SEC_OBJECT = 6, /* variable: vsnap_object_rec_t + path, padded to 8 */
	VSNAP_SEC_REGION = 7,
	VSNAP_SEC_ERRORS = 8, /* uint64_t per error kind, index = kind */
	VSNAP_SEC_END = 9,
	VSNAP_SEC_MAX = 9
};

#define VSNAP_NAMELEN  32 /* arena names: VMEM_NAMELEN + NUL, padded */
#define VSNAP_QNAMELEN 48
#define VSNAP_NKSTAT   14 /* vmem_kstat_t fields, in order */
#define VSNAP_NQKSTAT  18 /* vmem_qcache_kstat_t fields after the name, in order */
#define VSNAP_MAXDEPTH 64 /* frames per stack */
#define VSNAP_MAXPATH  4096

typedef struct vsnap_arena_rec {
	uint32_t ar_id;
	uint32_t ar_source_id; /* 0: no source */
	uint32_t ar_cflags;    /* VMC_* */
	uint32_t ar_nqcache;
	uint64_t ar_quantum;
	uint64_t ar_qcache_max;
	uint64_t ar_addr; /* the vmem_t in the process */
	char ar_name[VSNAP_NAMELEN];
	uint64_t ar_kstat[VSNAP_NKSTAT];
} vsnap_arena_rec_t;

/* Segment types in snapshots (the arena's, plus cached objects). */
#define VSNAP_ALLOC  0x01
#define VSNAP_FREE   0x02
#define VSNAP_SPAN   0x10
#define VSNAP_CACHED 0x80 /* an object of a quantum-cache slab held by a caller */

/* Segment flags (as the arena's vs_flags). */
#define VSNAP_F_IMPORTED 0x01 /* SPAN: imported from the source */
#define VSNAP_F_XALLOC   0x02 /* ALLOC: made by vmem_xalloc */
#define VSNAP_F_SLAB     0x04 /* ALLOC: a quantum-cache slab */
#define VSNAP_F_QDIRECT  0x10 /* ALLOC: a cached size served without a slab */

typedef struct vsnap_seg_rec {
	uint32_t sg_arena; /* arena id */
	uint8_t sg_type;   /* VSNAP_ALLOC, FREE, SPAN, CACHED */
	uint8_t sg_flags;  /* VSNAP_F_* */
	uint16_t sg_reserved;
	uint32_t sg_stack; /* allocation stack id, 0: none */
	uint32_t sg_reserved2;
	uint64_t sg_start;
	uint64_t sg_size;   /* ALLOC, CACHED: the caller's size; FREE, SPAN: extent */
	uint64_t sg_extent; /* the range taken (quantum multiple) */
	uint64_t sg_thread; /* ALLOC, CACHED, debug: allocating thread id */
	uint64_t sg_time;   /* ALLOC, CACHED, debug: CLOCK_MONOTONIC ns */
	uint64_t sg_addr;   /* the boundary tag in the process (CACHED: its slab's) */
} vsnap_seg_rec_t;

typedef struct vsnap_qcache_rec {
	uint32_t qr_arena;
	uint32_t qr_index;
	char qr_name[VSNAP_QNAMELEN];
	uint64_t qr_kstat[VSNAP_NQKSTAT];
} vsnap_qcache_rec_t;

typedef struct vsnap_stack_rec {
	uint32_t st_id;
	uint32_t st_depth; /* 1 .. VSNAP_MAXDEPTH; uint64_t pc[depth] follow */
} vsnap_stack_rec_t;

typedef struct vsnap_txrec {
	uint64_t tx_seq;
	uint64_t tx_time;
	uint64_t tx_addr;
	uint64_t tx_size;
	uint32_t tx_tid;
	uint32_t tx_arena;
	uint32_t tx_stack;
	uint32_t tx_stack2;
	uint8_t tx_op; /* 1 ALLOC, 2 XALLOC, 3 FREE, 4 XFREE, 5 QALLOC, 6 QFREE, 7 BADFREE */
	uint8_t tx_pad[7];
} vsnap_txrec_t;

typedef struct vsnap_object_rec {
	uint64_t ob_base;  /* load bias */
	uint64_t ob_start; /* runtime range of its PT_LOAD segments */
	uint64_t ob_end;
	uint32_t ob_build_id_len; /* 0 .. 20 */
	uint32_t ob_path_len;     /* 1 .. VSNAP_MAXPATH; the path follows, then padding to 8 */
	uint8_t ob_build_id[20];
	uint32_t ob_reserved;
} vsnap_object_rec_t;

typedef struct vsnap_region_rec {
	uint64_t rg_start; /* a metadata mapping of the library */
	uint64_t rg_size;
	uint32_t rg_kind; /* 1 segs, 2 arenas, 3 hash, 4 cache, 5 debug, 6 other */
	uint32_t rg_reserved;
} vsnap_region_rec_t;

_Static_assert(sizeof(vsnap_file_header_t) == 64, "file header");
_Static_assert(sizeof(vsnap_section_header_t) == 24, "section header");
_Static_assert(sizeof(vsnap_arena_rec_t) == 184, "arena record");
_Static_assert(sizeof(vsnap_seg_rec_t) == 64, "segment record");
_Static_assert(sizeof(vsnap_qcache_rec_t) == 200, "qcache record");
_Static_assert(sizeof(vsnap_txrec_t) == 56, "log record");
_Static_assert(sizeof(vsnap_object_rec_t) == 56, "object record");
_Static_assert(sizeof(vsnap_region_rec_t) == 24, "region record");

/* ---- in memory: what a reader (or vmemdb's live/core collector) builds ---- */

typedef struct vsnap_arena {
	vsnap_arena_rec_t a; /* as on disk */
	size_t seg_first;    /* its segments: segs[seg_first .. seg_first + seg_count) */
	size_t seg_count;
	size_t qc_first; /* its caches: qcaches[qc_first .. + qc_count) */
	size_t qc_count;
	int depth; /* 0 for roots, source's depth + 1 */
} vsnap_arena_t;

typedef struct vsnap_stack {
	uint32_t id;
	uint32_t depth;
	const uint64_t *pc;
} vsnap_stack_t;

typedef struct vsnap_object {
	vsnap_object_rec_t o;
	const char *path; /* NUL-terminated */
} vsnap_object_t;

typedef struct vsnap {
	uint32_t version, flags, ptrsize;
	uint64_t pid, time_ns;
	vsnap_arena_t *arenas; /* in tree order: each source before the arenas importing from it */
	size_t narenas;
	vsnap_seg_rec_t *segs;
	size_t nsegs;
	vsnap_qcache_rec_t *qcaches;
	size_t nqcaches;
	vsnap_stack_t *stacks; /* sorted by id */
	size_t nstacks;
	vsnap_txrec_t *log; /* oldest first */
	size_t nlog;
	vsnap_object_t *objects;
	size_t nobjects;
	vsnap_region_rec_t *regions;
	size_t nregions;
	uint64_t errors[32]; /* by error kind */
	uint32_t nerrors;
	void *owned; /* memory the reader allocated, freed by vsnap_free */
} vsnap_t;

/*
 * Read and validate a snapshot.  Returns 0 and *out, or -1 with a one-line
 * explanation in err ("section 2 (SEG) record 17 at offset 4242: ...").
 * Never crashes on a hostile file; allocates at most a small multiple of
 * the file's size.
 */
int vsnap_read_file(const char *path, vsnap_t **out, char *err, size_t errlen);
int vsnap_read_buf(const void *buf, size_t len, vsnap_t **out, char *err, size_t errlen);
void vsnap_free(vsnap_t *s);
/* The stack with this id, or NULL. */
const vsnap_stack_t *vsnap_stack(const vsnap_t *s, uint32_t id);
/* The arena with this id, or NULL. */
const vsnap_arena_t *vsnap_arena(const vsnap_t *s, uint32_t id);

#endif /* VMEM_VSNAP_H */
