/*
 * Metadata mappings and fixed-size object pools; see meta.h.
 */
#include "meta.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#define POOL_FIRST_MAP (64 * 1024)
#define POOL_MAX_MAP   (4 * 1024 * 1024)

static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
/* Head of the list of every metadata mapping (the root points here). */
vmem_meta_region_t *vmem__meta_region_head_var;
static size_t mapped_by_kind[VMEM_META_OTHER + 1];

/* Fault injection state: mappings to let through, then mappings to refuse. */
static _Atomic long fault_skip;
static _Atomic long fault_count;
static _Atomic uint64_t fault_injected;

void vmem__fault_map(long skip, long count)
{
	atomic_store(&fault_skip, skip);
	atomic_store(&fault_count, count);
}

void vmem__fault_clear(void)
{
	atomic_store(&fault_count, 0);
	atomic_store(&fault_skip, 0);
}

uint64_t vmem__fault_map_injected(void)
{
	return atomic_load(&fault_injected);
}

/* True when fault injection refuses this mapping. */
static bool fault_fires(void)
{
	long c = atomic_load_explicit(&fault_count, memory_order_relaxed);

	if (c == 0)
		return false;
	if (atomic_fetch_sub(&fault_skip, 1) > 0)
		return false;
	atomic_store(&fault_skip, 0);
	if (c > 0 && atomic_fetch_sub(&fault_count, 1) <= 0) {
		atomic_store(&fault_count, 0);
		return false;
	}
	atomic_fetch_add(&fault_injected, 1);
	return true;
}

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) & ~(pg - 1);
}

/*
 * Large metadata (segment pools, hash tables at 1e5+ segments) is read in
 * random order, so each access can miss the TLB as well as the cache.
 * Mappings of 2 MiB or more are aligned to 2 MiB and offered to the kernel
 * for transparent huge pages: on the machines we measured, a dependent miss
 * over 256 MiB costs 160 ns with huge pages against 250 ns without.
 */
#define HUGE_PAGE ((size_t)2 << 20)

static void *map_aligned(size_t total)
{
	char *p, *a;

	if (total < HUGE_PAGE) {
		p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	p = mmap(NULL, total + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	         0);
	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	if (a != p)
		munmap(p, (size_t)(a - p));
	munmap(a + total, (size_t)(p + HUGE_PAGE - a));
	(void)madvise(a, total, MADV_HUGEPAGE);
	return a;
}

void *vmem__meta_map(size_t size, vmem_meta_kind_t kind)
{
	size_t total;
	vmem_meta_region_t *r;

	if (size > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	if (fault_fires()) {
		errno = ENOMEM;
		return NULL;
	}
	total = page_round(size + VMEM_META_HDRSIZE);
	r = map_aligned(total);
	if (r == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	r->mr_magic = VMEM_META_MAGIC;
	r->mr_size = total;
	r->mr_kind = (uint32_t)kind;
	pthread_mutex_lock(&region_lock);
	r->mr_prev = NULL;
	r->mr_next = vmem__meta_region_head_var;
	if (vmem__meta_region_head_var != NULL)
		vmem__meta_region_head_var->mr_prev = r;
	vmem__meta_region_head_var = r;
	mapped_by_kind[kind] += total;
	pthread_mutex_unlock(&region_lock);
	return (char *)r + VMEM_META_HDRSIZE;
}

void vmem__meta_unmap(void *usable)
{
	vmem_meta_region_t *r;

	if (usable == NULL)
		return;
	r = (vmem_meta_region_t *)((char *)usable - VMEM_META_HDRSIZE);
	pthread_mutex_lock(&region_lock);
	if (r->mr_prev != NULL)
		r->mr_prev->mr_next = r->mr_next;
	else
		vmem__meta_region_head_var = r->mr_next;
	if (r->mr_next != NULL)
		r->mr_next->mr_prev = r->mr_prev;
	mapped_by_kind[r->mr_kind] -= r->mr_size;
	pthread_mutex_unlock(&region_lock);
	r->mr_magic = 0;
	munmap(r, r->mr_size);
}

/* Carve a new mapping into free objects.  Called with mp_lock held. */
static int pool_grow(vmem_pool_t *pool, size_t need)
{
	size_t mapsize = pool->mp_nextmap ? pool->mp_nextmap : POOL_FIRST_MAP;
	size_t n, i;
	char *base;

	while (mapsize - VMEM_META_HDRSIZE < need * pool->mp_objsize && mapsize < SIZE_MAX / 4)
		mapsize *= 2;
	base = vmem__meta_map(mapsize - VMEM_META_HDRSIZE, pool->mp_kind);
	if (base == NULL)
		return ENOMEM;
	if (mapsize < POOL_MAX_MAP)
		pool->mp_nextmap = mapsize * 2;
	n = (mapsize - VMEM_META_HDRSIZE) / pool->mp_objsize;
	/* Link in address order so that fresh objects are handed out ascending. */
	for (i = n; i-- > 0;) {
		void **obj = (void **)(base + i * pool->mp_objsize);

		*obj = pool->mp_free;
		pool->mp_free = obj;
	}
	pool->mp_nfree += n;
	pool->mp_ntotal += n;
	return 0;
}

int vmem__pool_get_batch(vmem_pool_t *pool, size_t n, void **list)
{
	void *head, **tail = NULL;
	size_t i;

	if (n == 0)
		return 0;
	pthread_mutex_lock(&pool->mp_lock);
	if (pool->mp_nfree < n && pool_grow(pool, n - pool->mp_nfree) != 0) {
		pthread_mutex_unlock(&pool->mp_lock);
		return ENOMEM;
	}
	head = pool->mp_free;
	tail = head;
	for (i = 1; i < n; i++)
		tail = *tail;
	pool->mp_free = *tail;
	pool->mp_nfree -= n;
	pthread_mutex_unlock(&pool->mp_lock);
	*tail = *list;
	*list = head;
	return 0;
}

void *vmem__pool_get(vmem_pool_t *pool)
{
	void *list = NULL;

	if (vmem__pool_get_batch(pool, 1, &list) != 0) {
		errno = ENOMEM;
		return NULL;
	}
	*(void **)list = NULL;
	return list;
}

void vmem__pool_put_batch(vmem_pool_t *pool, void *list, void *tail, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&pool->mp_lock);
	*(void **)tail = pool->mp_free;
	pool->mp_free = list;
	pool->mp_nfree += n;
	pthread_mutex_unlock(&pool->mp_lock);
}

void vmem__pool_put(vmem_pool_t *pool, void *obj)
{
	vmem__pool_put_batch(pool, obj, obj, 1);
}

void vmem__meta_foreach(void (*fn)(const vmem_meta_region_t *, void *), void *arg)
{
	vmem_meta_region_t *r;

	pthread_mutex_lock(&region_lock);
	for (r = vmem__meta_region_head_var; r != NULL; r = r->mr_next)
		fn(r, arg);
	pthread_mutex_unlock(&region_lock);
}

vmem_meta_region_t **vmem__meta_region_head(void)
{
	return &vmem__meta_region_head_var;
}

size_t vmem__meta_mapped(vmem_meta_kind_t kind)
{
	size_t total = 0;
	int k;

	pthread_mutex_lock(&region_lock);
	for (k = 0; k <= VMEM_META_OTHER; k++) {
		if (kind == 0 || (int)kind == k)
			total += mapped_by_kind[k];
	}
	pthread_mutex_unlock(&region_lock);
	return total;
}
