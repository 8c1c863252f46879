/*
 * The allocator's own metadata: memory libvmem maps itself, never malloc.
 *
 * Every mapping starts with a vmem_meta_region_t header and is kept on one
 * global list, so that a debugger (vmemdb) can find all metadata and a leak
 * scan can skip it: segment records hold the address of every segment and
 * would otherwise make every range look referenced.
 *
 * Fixed-size objects (segment records, arenas, magazines) come from pools
 * that carve mappings of geometrically growing size; freed objects go back
 * to their pool and are never unmapped.  Variable-size tables (hash tables)
 * get a mapping each and give it back when replaced.
 *
 * Locking: each pool has its own mutex and the region list has one; both
 * are leaves (nothing else is taken while holding them).  Callers may hold
 * an arena lock.
 */
#ifndef VMEM_META_H
#define VMEM_META_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMEM_META_MAGIC 0x564d454d4d455441ULL /* "VMEMMETA" */

/* What a metadata region holds (for the inspector and leak scans). */
typedef enum vmem_meta_kind {
	VMEM_META_SEGS = 1, /* segment records */
	VMEM_META_ARENAS,   /* arena structures */
	VMEM_META_HASH,     /* allocated-segment hash tables */
	VMEM_META_CACHE,    /* quantum-cache slabs, magazines, thread caches */
	VMEM_META_DEBUG,    /* debug layer: stacks, audit, transaction log */
	VMEM_META_OTHER
} vmem_meta_kind_t;

typedef struct vmem_meta_region {
	uint64_t mr_magic;                /* VMEM_META_MAGIC */
	struct vmem_meta_region *mr_next; /* global region list */
	struct vmem_meta_region *mr_prev;
	size_t mr_size;   /* bytes mapped, this header included */
	uint32_t mr_kind; /* vmem_meta_kind_t */
	uint32_t mr_pad;
} vmem_meta_region_t;

/* Usable bytes start here, 64-byte aligned. */
#define VMEM_META_HDRSIZE 64

typedef struct vmem_pool {
	const char *mp_name;
	size_t mp_objsize; /* rounded up to 16 */
	vmem_meta_kind_t mp_kind;
	pthread_mutex_t mp_lock;
	void *mp_free;     /* free objects, linked through their first word */
	size_t mp_nfree;   /* objects on mp_free */
	size_t mp_ntotal;  /* objects ever carved */
	size_t mp_nextmap; /* size of the next mapping */
} vmem_pool_t;

#define VMEM_POOL_INITIALIZER(name, size, kind)                                                    \
	{                                                                                          \
		(name), (((size) + 15) & ~(size_t)15), (kind), PTHREAD_MUTEX_INITIALIZER, NULL, 0, \
		    0, 0                                                                           \
	}

/* Map `size` usable bytes (zeroed) of metadata; NULL with errno on failure. */
void *vmem__meta_map(size_t size, vmem_meta_kind_t kind);
void vmem__meta_unmap(void *usable);

/* One object, or NULL (errno = ENOMEM) when no memory can be mapped. */
void *vmem__pool_get(vmem_pool_t *pool);
void vmem__pool_put(vmem_pool_t *pool, void *obj);
/*
 * Take `n` objects at once, all or nothing, linked through their first
 * word into *list.  Returns 0, or ENOMEM leaving *list untouched.
 */
int vmem__pool_get_batch(vmem_pool_t *pool, size_t n, void **list);
/* Give back a list of `n` objects linked through their first word. */
void vmem__pool_put_batch(vmem_pool_t *pool, void *list, void *tail, size_t n);

/* Walk every metadata region (under the region lock). */
void vmem__meta_foreach(void (*fn)(const vmem_meta_region_t *, void *), void *arg);
/* Head of the region list, for the inspector's root. */
vmem_meta_region_t **vmem__meta_region_head(void);
extern vmem_meta_region_t *vmem__meta_region_head_var;
/* Bytes of metadata mapped, by kind (0 = all kinds). */
size_t vmem__meta_mapped(vmem_meta_kind_t kind);

/*
 * Fault injection, for tests: the next `skip` mappings succeed, then
 * `count` fail (count < 0: all fail).  vmem__fault_clear() disarms it.
 */
void vmem__fault_map(long skip, long count);
void vmem__fault_clear(void);
/* Mappings refused by fault injection so far. */
uint64_t vmem__fault_map_injected(void);

#endif /* VMEM_META_H */
