/*
 * The structures of one arena: the segment-record reserve, the power-of-two
 * freelists, the optional address/size index, the hash of allocated
 * segments, the span index, and the two operations that change segments:
 * carve (allocate part of a free segment) and release (free a segment,
 * coalescing with its neighbours).  Every function here is called with the
 * arena's vm_lock held; see the theory statement in vmem.c.
 */
#include "vmem_impl.h"

#include <errno.h>
#include <string.h>

vmem_pool_t vmem__seg_pool = VMEM_POOL_INITIALIZER("vmem_seg", sizeof(vmem_seg_t), VMEM_META_SEGS);

#define ASEG(n)  VMEM_CONTAINER(n, vmem_seg_t, u.f.vs_anode)
#define SSEG(n)  VMEM_CONTAINER(n, vmem_seg_t, u.f.sz.vs_snode)
#define SPSEG(n) VMEM_CONTAINER(n, vmem_seg_t, u.s.vs_spnode)

/* ---- address-ordered list ------------------------------------------- */

static void link_before(vmem_seg_t *pos, vmem_seg_t *vsp)
{
	vsp->vs_anext = pos;
	vsp->vs_aprev = pos->vs_aprev;
	pos->vs_aprev->vs_anext = vsp;
	pos->vs_aprev = vsp;
}

static void link_after(vmem_seg_t *pos, vmem_seg_t *vsp)
{
	link_before(pos->vs_anext, vsp);
}

static void unlink_seg(vmem_seg_t *vsp)
{
	vsp->vs_aprev->vs_anext = vsp->vs_anext;
	vsp->vs_anext->vs_aprev = vsp->vs_aprev;
}

/* ---- segment-record reserve ------------------------------------------ */

/*
 * Make sure the arena holds at least n unused records, so that the
 * operation about to start cannot run out half-way.  Fails (ENOMEM) only
 * when no metadata memory can be mapped; the arena is then unchanged.
 */
int vmem__seg_reserve(vmem_t *vmp, unsigned n)
{
	void *list;
	unsigned want;

	if (vmp->vm_nsegfree >= n)
		return 0;
	want = n - vmp->vm_nsegfree + VMEM_SEG_RESERVE_BATCH;
	list = vmp->vm_segfree;
	if (vmem__pool_get_batch(&vmem__seg_pool, want, &list) != 0) {
		vmp->vm_ctr.vc_populate_fail++;
		return ENOMEM;
	}
	vmp->vm_segfree = list;
	vmp->vm_nsegfree += want;
	return 0;
}

vmem_seg_t *vmem__seg_get(vmem_t *vmp)
{
	vmem_seg_t *vsp = vmp->vm_segfree;

	vmp->vm_segfree = *(void **)vsp;
	vmp->vm_nsegfree--;
	memset(vsp, 0, sizeof(*vsp));
	return vsp;
}

void vmem__seg_put(vmem_t *vmp, vmem_seg_t *vsp)
{
	*(void **)vsp = vmp->vm_segfree;
	vmp->vm_segfree = vsp;
	if (++vmp->vm_nsegfree > VMEM_SEG_RESERVE_HIGH) {
		void *head = vmp->vm_segfree, **tail = head;
		unsigned i;

		for (i = 1; i < VMEM_SEG_RESERVE_BATCH; i++)
			tail = *tail;
		vmp->vm_segfree = *tail;
		vmp->vm_nsegfree -= VMEM_SEG_RESERVE_BATCH;
		vmem__pool_put_batch(&vmem__seg_pool, head, tail, VMEM_SEG_RESERVE_BATCH);
	}
}

void vmem__seg_release_reserve(vmem_t *vmp)
{
	void *head = vmp->vm_segfree, **tail = head;

	if (head == NULL)
		return;
	while (*tail != NULL)
		tail = *tail;
	vmem__pool_put_batch(&vmem__seg_pool, head, tail, vmp->vm_nsegfree);
	vmp->vm_segfree = NULL;
	vmp->vm_nsegfree = 0;
}

/* ---- freelists ------------------------------------------------------ */

static inline int freelist_index(size_t size)
{
	return vmem__highbit(size) - 1;
}

/* Put vsp at the head of the freelist for its size (LIFO, as illumos). */
static void list_push(vmem_t *vmp, vmem_seg_t *vsp)
{
	int n = freelist_index(vsp->vs_size);
	vmem_seg_t *head = vmp->vm_freelist[n];

	vsp->vs_list = (uint8_t)n;
	vsp->u.f.vs_fprev = NULL;
	vsp->u.f.vs_fnext = head;
	if (head != NULL)
		head->u.f.vs_fprev = vsp;
	vmp->vm_freelist[n] = vsp;
	vmp->vm_freemap |= 1ULL << n;
}

static void list_unlink(vmem_t *vmp, vmem_seg_t *vsp)
{
	int n = vsp->vs_list;
	vmem_seg_t *next = vsp->u.f.vs_fnext, *prev = vsp->u.f.vs_fprev;

	if (prev != NULL)
		prev->u.f.vs_fnext = next;
	else
		vmp->vm_freelist[n] = next;
	if (next != NULL)
		next->u.f.vs_fprev = prev;
	if (vmp->vm_freelist[n] == NULL)
		vmp->vm_freemap &= ~(1ULL << n);
}

/* ---- the index -------------------------------------------------------- */

static inline size_t maxfree_of(const vmem_avl_node_t *n)
{
	return n != NULL ? ASEG(n)->u.f.vs_maxfree : 0;
}

static bool addr_augment_changed(vmem_avl_node_t *n)
{
	vmem_seg_t *vsp = ASEG(n);
	size_t m = vsp->vs_size;
	size_t l = maxfree_of(n->an_child[0]), r = maxfree_of(n->an_child[1]);

	if (l > m)
		m = l;
	if (r > m)
		m = r;
	if (m == vsp->u.f.vs_maxfree)
		return false;
	vsp->u.f.vs_maxfree = m;
	return true;
}

static void addr_insert(vmem_t *vmp, vmem_seg_t *vsp)
{
	vmem_avl_node_t *parent = NULL, *cur = vmp->vm_free_addr.at_root;
	int dir = 0;

	while (cur != NULL) {
		parent = cur;
		dir = vsp->vs_start > ASEG(cur)->vs_start;
		cur = cur->an_child[dir];
	}
	vsp->u.f.vs_maxfree = vsp->vs_size;
	vmem__avl_insert_at(&vmp->vm_free_addr, parent, dir, &vsp->u.f.vs_anode);
}

/* Order of the size index: by size, then by address. */
static inline int size_after(const vmem_seg_t *a, const vmem_seg_t *b)
{
	if (a->vs_size != b->vs_size)
		return a->vs_size > b->vs_size;
	return a->vs_start > b->vs_start;
}

/* The exact class of a free size (1-based, in quanta), or 0 if it is large. */
static inline unsigned size_class(const vmem_t *vmp, size_t size)
{
	size_t c = size >> vmp->vm_qshift;

	return c <= VMEM_SIZECLASSES ? (unsigned)c : 0;
}

static void class_push(vmem_sizeidx_t *si, unsigned c, vmem_seg_t *vsp)
{
	vmem_seg_t *head = si->si_head[c - 1];

	vsp->u.f.sz.c.vs_cprev = NULL;
	vsp->u.f.sz.c.vs_cnext = head;
	if (head != NULL)
		head->u.f.sz.c.vs_cprev = vsp;
	si->si_head[c - 1] = vsp;
	si->si_map[(c - 1) / 64] |= 1ULL << ((c - 1) % 64);
	si->si_summary |= 1ULL << ((c - 1) / 64);
}

static void class_unlink(vmem_sizeidx_t *si, unsigned c, vmem_seg_t *vsp)
{
	vmem_seg_t *next = vsp->u.f.sz.c.vs_cnext, *prev = vsp->u.f.sz.c.vs_cprev;

	if (prev != NULL)
		prev->u.f.sz.c.vs_cnext = next;
	else
		si->si_head[c - 1] = next;
	if (next != NULL)
		next->u.f.sz.c.vs_cprev = prev;
	if (si->si_head[c - 1] == NULL) {
		si->si_map[(c - 1) / 64] &= ~(1ULL << ((c - 1) % 64));
		if (si->si_map[(c - 1) / 64] == 0)
			si->si_summary &= ~(1ULL << ((c - 1) / 64));
	}
}

/* Enter vsp (with its current size) in the size half of the index. */
static void size_insert(vmem_t *vmp, vmem_seg_t *vsp)
{
	vmem_avl_node_t *parent = NULL, *cur = vmp->vm_free_size.at_root;
	unsigned c = size_class(vmp, vsp->vs_size);
	int dir = 0;

	if (c != 0) {
		class_push(vmp->vm_sizeidx, c, vsp);
		return;
	}
	while (cur != NULL) {
		parent = cur;
		dir = size_after(vsp, SSEG(cur));
		cur = cur->an_child[dir];
	}
	vmem__avl_insert_at(&vmp->vm_free_size, parent, dir, &vsp->u.f.sz.vs_snode);
}

/* Take vsp (with its current size) out of the size half of the index. */
static void size_remove(vmem_t *vmp, vmem_seg_t *vsp)
{
	unsigned c = size_class(vmp, vsp->vs_size);

	if (c != 0)
		class_unlink(vmp->vm_sizeidx, c, vsp);
	else
		vmem__avl_remove(&vmp->vm_free_size, &vsp->u.f.sz.vs_snode);
}

/*
 * The two halves of the index are built separately, each the first time a
 * request needs it, and kept from then on: instant-fit-only arenas pay for
 * neither, best-fit arenas only for the size classes, first- and next-fit
 * arenas only for the address tree.
 */
bool vmem__index_addr(vmem_t *vmp)
{
	if (vmp->vm_idx_addr)
		return true;
	vmem__avl_init(&vmp->vm_free_addr, addr_augment_changed);
	for (vmem_seg_t *vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0; vsp = vsp->vs_anext) {
		if (vsp->vs_type == VMEM_SEG_FREE)
			addr_insert(vmp, vsp);
	}
	vmp->vm_idx_addr = true;
	return true;
}

bool vmem__index_size(vmem_t *vmp)
{
	if (vmp->vm_idx_size)
		return true;
	vmp->vm_sizeidx = vmem__meta_map(sizeof(vmem_sizeidx_t), VMEM_META_HASH);
	if (vmp->vm_sizeidx == NULL)
		return false;
	vmem__avl_init(&vmp->vm_free_size, NULL);
	for (vmem_seg_t *vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0; vsp = vsp->vs_anext) {
		if (vsp->vs_type == VMEM_SEG_FREE)
			size_insert(vmp, vsp);
	}
	vmp->vm_idx_size = true;
	return true;
}

void vmem__index_fini(vmem_t *vmp)
{
	if (vmp->vm_sizeidx != NULL)
		vmem__meta_unmap(vmp->vm_sizeidx);
	vmp->vm_sizeidx = NULL;
	vmp->vm_idx_size = vmp->vm_idx_addr = false;
}

/* ---- free segments ---------------------------------------------------- */

void vmem__free_insert(vmem_t *vmp, vmem_seg_t *vsp)
{
	vsp->vs_type = VMEM_SEG_FREE;
	vsp->vs_flags = 0;
	vsp->vs_depth = 0;
	vsp->vs_stack = 0;
	list_push(vmp, vsp);
	if (vmp->vm_idx_addr)
		addr_insert(vmp, vsp);
	if (vmp->vm_idx_size)
		size_insert(vmp, vsp);
}

void vmem__free_remove(vmem_t *vmp, vmem_seg_t *vsp)
{
	list_unlink(vmp, vsp);
	if (vmp->vm_idx_addr)
		vmem__avl_remove(&vmp->vm_free_addr, &vsp->u.f.vs_anode);
	if (vmp->vm_idx_size)
		size_remove(vmp, vsp);
}

/*
 * Give free segment vsp the extent [start, start + size).  The new extent
 * must not reach any other free segment, so vsp keeps its place in address
 * order.  With to_head it moves to the head of its freelist (as a freshly
 * coalesced segment does); otherwise it moves only if its list changes.
 */
static void free_resize(vmem_t *vmp, vmem_seg_t *vsp, uintptr_t start, size_t size, bool to_head)
{
	bool relist = to_head || freelist_index(size) != vsp->vs_list;

	if (relist)
		list_unlink(vmp, vsp);
	if (vmp->vm_idx_size)
		size_remove(vmp, vsp);
	vsp->vs_start = start;
	vsp->vs_size = size;
	if (relist)
		list_push(vmp, vsp);
	if (vmp->vm_idx_size)
		size_insert(vmp, vsp);
	if (vmp->vm_idx_addr)
		vmem__avl_update(&vmp->vm_free_addr, &vsp->u.f.vs_anode);
}

/* ---- hash of allocated segments ----------------------------------------- */

static inline size_t hash_bucket(const vmem_t *vmp, uintptr_t addr)
{
	uint64_t k = (uint64_t)(addr >> vmp->vm_qshift) * 0x9E3779B97F4A7C15ULL;

	return (size_t)(k >> (64 - vmp->vm_hash_bits));
}

void vmem__hash_init(vmem_t *vmp)
{
	memset(vmp->vm_hash0, 0, sizeof(vmp->vm_hash0));
	vmp->vm_hash_table = vmp->vm_hash0;
	vmp->vm_hash_size = VMEM_HASH_INITIAL;
	vmp->vm_hash_bits = 4;
	vmp->vm_hash_count = 0;
}

void vmem__hash_fini(vmem_t *vmp)
{
	if (vmp->vm_hash_table != vmp->vm_hash0)
		vmem__meta_unmap(vmp->vm_hash_table);
	vmp->vm_hash_table = NULL;
}

/*
 * Move every entry to a table of 2^bits buckets.  If no memory can be had
 * the old table stays: lookups get slower, nothing breaks.
 */
static void hash_rescale(vmem_t *vmp, int bits)
{
	size_t nsize = (size_t)1 << bits, i;
	vmem_seg_t **old = vmp->vm_hash_table, **nt;
	size_t osize = vmp->vm_hash_size;

	if (nsize == VMEM_HASH_INITIAL) {
		if (old == vmp->vm_hash0)
			return;
		nt = vmp->vm_hash0;
		memset(nt, 0, sizeof(vmp->vm_hash0));
	} else {
		nt = vmem__meta_map(nsize * sizeof(*nt), VMEM_META_HASH);
		if (nt == NULL)
			return;
	}
	vmp->vm_hash_table = nt;
	vmp->vm_hash_size = nsize;
	vmp->vm_hash_bits = bits;
	for (i = 0; i < osize; i++) {
		vmem_seg_t *vsp = old[i], *next;

		for (; vsp != NULL; vsp = next) {
			size_t b = hash_bucket(vmp, vsp->vs_start);

			next = vsp->u.a.vs_hnext;
			vsp->u.a.vs_hnext = nt[b];
			nt[b] = vsp;
		}
	}
	if (old != vmp->vm_hash0)
		vmem__meta_unmap(old);
}

void vmem__hash_insert(vmem_t *vmp, vmem_seg_t *vsp)
{
	size_t b = hash_bucket(vmp, vsp->vs_start);

	vsp->u.a.vs_hnext = vmp->vm_hash_table[b];
	vmp->vm_hash_table[b] = vsp;
	/* Keep 0.25 to 2 segments per bucket, rescaling by at least 4x. */
	if (++vmp->vm_hash_count > 2 * vmp->vm_hash_size)
		hash_rescale(vmp, vmem__highbit(vmp->vm_hash_count) + 1);
}

/* The link that points at the ALLOC segment starting at addr, or NULL. */
vmem_seg_t **vmem__hash_lookup(vmem_t *vmp, uintptr_t addr)
{
	vmem_seg_t **pp = &vmp->vm_hash_table[hash_bucket(vmp, addr)];

	while (*pp != NULL && (*pp)->vs_start != addr) {
		pp = &(*pp)->u.a.vs_hnext;
		vmp->vm_ctr.vc_lookup++;
	}
	return *pp != NULL ? pp : NULL;
}

void vmem__hash_remove(vmem_t *vmp, vmem_seg_t **linkp)
{
	*linkp = (*linkp)->u.a.vs_hnext;
	if (--vmp->vm_hash_count < vmp->vm_hash_size / 8 && vmp->vm_hash_size > VMEM_HASH_INITIAL) {
		int bits = vmem__highbit(vmp->vm_hash_count) + 1;

		hash_rescale(vmp, bits < 4 ? 4 : bits);
	}
}

/* ---- spans ------------------------------------------------------------ */

/* The span marker with the greatest start <= addr, or NULL. */
static vmem_seg_t *span_floor(vmem_t *vmp, uintptr_t addr, uint64_t *visited)
{
	vmem_avl_node_t *cur = vmp->vm_spans.at_root;
	vmem_seg_t *best = NULL;

	while (cur != NULL) {
		vmem_seg_t *sp = SPSEG(cur);

		(*visited)++;
		if (sp->vs_start <= addr) {
			best = sp;
			cur = cur->an_child[1];
		} else {
			cur = cur->an_child[0];
		}
	}
	return best;
}

/* The span containing addr, or NULL.  Counts contains_search. */
vmem_seg_t *vmem__span_find(vmem_t *vmp, uintptr_t addr)
{
	vmem_seg_t *sp = span_floor(vmp, addr, &vmp->vm_ctr.vc_contains_search);

	if (sp != NULL && addr <= vmem__last(sp->vs_start, sp->vs_size))
		return sp;
	return NULL;
}

bool vmem__span_overlaps(vmem_t *vmp, uintptr_t start, size_t size)
{
	uint64_t visited = 0;
	vmem_seg_t *sp = span_floor(vmp, vmem__last(start, size), &visited);

	return sp != NULL && vmem__last(sp->vs_start, sp->vs_size) >= start;
}

/*
 * Add the span [start, start + size), which overlaps no other, in address
 * order, with one free segment covering it.  Needs two reserved records.
 * Returns the free segment.
 */
vmem_seg_t *vmem__span_create(vmem_t *vmp, uintptr_t start, size_t size, bool imported)
{
	vmem_seg_t *span = vmem__seg_get(vmp), *fsp = vmem__seg_get(vmp);
	vmem_avl_node_t *parent = NULL, *cur = vmp->vm_spans.at_root;
	vmem_seg_t *succ = NULL;
	int dir = 0;

	while (cur != NULL) {
		parent = cur;
		dir = start > SPSEG(cur)->vs_start;
		if (!dir)
			succ = SPSEG(cur);
		cur = cur->an_child[dir];
	}
	span->vs_start = start;
	span->vs_size = size;
	span->vs_type = VMEM_SEG_SPAN;
	span->vs_flags = imported ? VMEM_SEGF_IMPORTED : 0;
	link_before(succ != NULL ? succ : &vmp->vm_seg0, span);
	vmem__avl_insert_at(&vmp->vm_spans, parent, dir, &span->u.s.vs_spnode);

	fsp->vs_start = start;
	fsp->vs_size = size;
	link_after(span, fsp);
	vmem__free_insert(vmp, fsp);

	vmp->vm_ctr.vc_mem_total += size;
	if (imported)
		vmp->vm_ctr.vc_mem_import += size;
	return fsp;
}

/* Take a span marker off the arena (its segments are the caller's). */
void vmem__span_unlink(vmem_t *vmp, vmem_seg_t *span)
{
	vmem__avl_remove(&vmp->vm_spans, &span->u.s.vs_spnode);
	unlink_seg(span);
	vmp->vm_ctr.vc_mem_total -= span->vs_size;
	if (span->vs_flags & VMEM_SEGF_IMPORTED)
		vmp->vm_ctr.vc_mem_import -= span->vs_size;
}

/* A free segment that is its span's only segment. */
bool vmem__span_wholly_free(const vmem_seg_t *fsp)
{
	return fsp->vs_type == VMEM_SEG_FREE && fsp->vs_aprev->vs_type == VMEM_SEG_SPAN &&
	       fsp->vs_anext->vs_type == VMEM_SEG_SPAN;
}

/*
 * The segment (ALLOC or FREE) containing addr, or NULL when addr is in no
 * span.  Walks the span's segments: for error reports and the inspector,
 * not for the allocation paths.
 */
vmem_seg_t *vmem__seg_find(vmem_t *vmp, uintptr_t addr)
{
	uint64_t visited = 0;
	vmem_seg_t *sp = span_floor(vmp, addr, &visited), *vsp;

	if (sp == NULL || addr > vmem__last(sp->vs_start, sp->vs_size))
		return NULL;
	for (vsp = sp->vs_anext; vsp->vs_type != VMEM_SEG_SPAN; vsp = vsp->vs_anext) {
		if (vsp->vs_type == VMEM_SEG_WALKER)
			continue;
		if (addr >= vsp->vs_start && addr <= vmem__last(vsp->vs_start, vsp->vs_size))
			return vsp;
	}
	return NULL;
}

/* ---- carve and release -------------------------------------------------- */

/*
 * Allocate [addr, addr + rsize) out of free segment fsp, which contains
 * it; asize is the caller's size.  What is left on either side stays free.
 * Needs VMEM_SEGS_PER_ALLOC reserved records.  Returns the ALLOC segment,
 * entered in the hash.
 */
vmem_seg_t *vmem__carve(vmem_t *vmp, vmem_seg_t *fsp, uintptr_t addr, size_t rsize, size_t asize)
{
	uintptr_t fstart = fsp->vs_start;
	size_t left = addr - fstart;
	size_t right = fsp->vs_size - left - rsize;
	vmem_seg_t *asp;

	if (left == 0 && right == 0) {
		vmem__free_remove(vmp, fsp);
		asp = fsp;
	} else {
		asp = vmem__seg_get(vmp);
		asp->vs_start = addr;
		asp->vs_size = rsize;
		if (left == 0) {
			link_before(fsp, asp);
			free_resize(vmp, fsp, addr + rsize, right, false);
		} else if (right == 0) {
			link_after(fsp, asp);
			free_resize(vmp, fsp, fstart, left, false);
		} else {
			vmem_seg_t *rsp = vmem__seg_get(vmp);

			link_after(fsp, asp);
			rsp->vs_start = addr + rsize;
			rsp->vs_size = right;
			link_after(asp, rsp);
			free_resize(vmp, fsp, fstart, left, false);
			vmem__free_insert(vmp, rsp);
		}
	}
	asp->vs_type = VMEM_SEG_ALLOC;
	asp->vs_flags = 0;
	asp->vs_list = 0;
	asp->vs_depth = 0;
	asp->vs_stack = 0;
	memset(&asp->u, 0, sizeof(asp->u));
	asp->u.a.vs_asize = asize;
	vmem__hash_insert(vmp, asp);
	vmp->vm_ctr.vc_alloc++;
	vmp->vm_ctr.vc_mem_inuse += asize;
	return asp;
}

/*
 * Free ALLOC segment vsp, already out of the hash: coalesce it with free
 * neighbours and put the result at the head of its freelist.  Never needs
 * a record (coalescing only gives records back).  Returns the free segment
 * that now covers vsp's range.
 */
vmem_seg_t *vmem__release(vmem_t *vmp, vmem_seg_t *vsp)
{
	vmem_seg_t *prev = vsp->vs_aprev, *next = vsp->vs_anext;
	bool pf = prev->vs_type == VMEM_SEG_FREE, nf = next->vs_type == VMEM_SEG_FREE;

	vmp->vm_ctr.vc_free++;
	vmp->vm_ctr.vc_mem_inuse -= vsp->u.a.vs_asize;
	if (pf && nf) {
		size_t size = prev->vs_size + vsp->vs_size + next->vs_size;

		vmem__free_remove(vmp, next);
		unlink_seg(vsp);
		unlink_seg(next);
		vmem__seg_put(vmp, vsp);
		vmem__seg_put(vmp, next);
		free_resize(vmp, prev, prev->vs_start, size, true);
		return prev;
	}
	if (pf) {
		size_t size = prev->vs_size + vsp->vs_size;

		unlink_seg(vsp);
		vmem__seg_put(vmp, vsp);
		free_resize(vmp, prev, prev->vs_start, size, true);
		return prev;
	}
	if (nf) {
		uintptr_t start = vsp->vs_start;
		size_t size = vsp->vs_size + next->vs_size;

		unlink_seg(vsp);
		vmem__seg_put(vmp, vsp);
		free_resize(vmp, next, start, size, true);
		return next;
	}
	vmem__free_insert(vmp, vsp);
	return vsp;
}

/*
 * Walker markers (VMEM_REENTRANT walks) sit on the address list between
 * segments and keep their two neighbours from coalescing.
 */
void vmem__walker_link_after(vmem_seg_t *pos, vmem_seg_t *walker)
{
	link_after(pos, walker);
}

/*
 * Take a walker marker off the list and coalesce the free segments it kept
 * apart.  Returns the free segment left where it was, or NULL.
 */
vmem_seg_t *vmem__walker_unlink(vmem_t *vmp, vmem_seg_t *walker)
{
	vmem_seg_t *a = walker->vs_aprev, *b = walker->vs_anext;

	unlink_seg(walker);
	if (a->vs_type == VMEM_SEG_FREE && b->vs_type == VMEM_SEG_FREE) {
		size_t size = a->vs_size + b->vs_size;

		vmem__free_remove(vmp, a);
		unlink_seg(a);
		vmem__seg_put(vmp, a);
		free_resize(vmp, b, b->vs_start - (size - b->vs_size), size, true);
		return b;
	}
	if (a->vs_type == VMEM_SEG_FREE)
		return a;
	return b->vs_type == VMEM_SEG_FREE ? b : NULL;
}

size_t vmem__largest_free_locked(vmem_t *vmp)
{
	vmem_seg_t *vsp;
	size_t best = 0;
	int n;

	if (vmp->vm_idx_addr)
		return maxfree_of(vmp->vm_free_addr.at_root);
	if (vmp->vm_freemap == 0)
		return 0;
	/* Every member of the highest non-empty list beats every other list. */
	n = vmem__highbit(vmp->vm_freemap) - 1;
	for (vsp = vmp->vm_freelist[n]; vsp != NULL; vsp = vsp->u.f.vs_fnext) {
		if (vsp->vs_size > best)
			best = vsp->vs_size;
	}
	return best;
}

/* ---- whole-arena verification -------------------------------------------- */

#define FAIL(msg)                                                                                  \
	do {                                                                                       \
		*why = (msg);                                                                      \
		return false;                                                                      \
	} while (0)

static bool verify_freelists(vmem_t *vmp, size_t nfree, const char **why)
{
	size_t counted = 0;
	int n;

	for (n = 0; n < VMEM_FREELISTS; n++) {
		vmem_seg_t *vsp, *prev = NULL;

		if (((vmp->vm_freemap >> n) & 1) != (vmp->vm_freelist[n] != NULL))
			FAIL("freemap bit disagrees with its freelist");
		for (vsp = vmp->vm_freelist[n]; vsp != NULL; prev = vsp, vsp = vsp->u.f.vs_fnext) {
			if (vsp->vs_type != VMEM_SEG_FREE || vsp->vs_list != n ||
			    freelist_index(vsp->vs_size) != n)
				FAIL("segment on the wrong freelist");
			if (vsp->u.f.vs_fprev != prev)
				FAIL("freelist back link broken");
			if (++counted > nfree)
				FAIL("freelists hold more segments than the arena");
		}
	}
	if (counted != nfree)
		FAIL("a free segment is on no freelist");
	return true;
}

static int addr_cmp(const vmem_avl_node_t *a, const vmem_avl_node_t *b)
{
	return ASEG(a)->vs_start < ASEG(b)->vs_start ? -1 : ASEG(a)->vs_start > ASEG(b)->vs_start;
}

static int size_cmp(const vmem_avl_node_t *a, const vmem_avl_node_t *b)
{
	return size_after(SSEG(a), SSEG(b)) ? 1 : (SSEG(a) == SSEG(b) ? 0 : -1);
}

static int span_cmp(const vmem_avl_node_t *a, const vmem_avl_node_t *b)
{
	return SPSEG(a)->vs_start < SPSEG(b)->vs_start ? -1
	                                               : SPSEG(a)->vs_start > SPSEG(b)->vs_start;
}

static bool verify_classes(vmem_t *vmp, size_t *nclassed, const char **why)
{
	const vmem_sizeidx_t *si = vmp->vm_sizeidx;

	*nclassed = 0;
	for (unsigned c = 1; c <= VMEM_SIZECLASSES; c++) {
		bool bit = (si->si_map[(c - 1) / 64] >> ((c - 1) % 64)) & 1;
		vmem_seg_t *prev = NULL;

		if (bit != (si->si_head[c - 1] != NULL))
			FAIL("size class bitmap disagrees with its list");
		for (vmem_seg_t *v = si->si_head[c - 1]; v != NULL;
		     prev = v, v = v->u.f.sz.c.vs_cnext) {
			if (v->vs_type != VMEM_SEG_FREE || size_class(vmp, v->vs_size) != c ||
			    v->u.f.sz.c.vs_cprev != prev)
				FAIL("size class list damaged");
			++*nclassed;
		}
	}
	for (unsigned w = 0; w < VMEM_SIZECLASSES / 64; w++) {
		if (((si->si_summary >> w) & 1) != (si->si_map[w] != 0))
			FAIL("size class summary bitmap wrong");
	}
	return true;
}

static bool verify_index(vmem_t *vmp, size_t nfree, const char **why)
{
	vmem_avl_node_t *n;
	size_t nclassed;

	if (vmp->vm_idx_size) {
		if (!vmem__avl_verify(&vmp->vm_free_size, size_cmp))
			FAIL("large-size tree malformed");
		if (!verify_classes(vmp, &nclassed, why))
			return false;
		if (nclassed + vmp->vm_free_size.at_count != nfree)
			FAIL("size index does not hold every free segment");
		for (n = vmem__avl_first(&vmp->vm_free_size); n != NULL; n = vmem__avl_next(n)) {
			if (size_class(vmp, SSEG(n)->vs_size) != 0)
				FAIL("a small free segment is in the large-size tree");
		}
	}
	if (!vmp->vm_idx_addr)
		return true;
	if (!vmem__avl_verify(&vmp->vm_free_addr, addr_cmp))
		FAIL("address tree malformed");
	if (vmp->vm_free_addr.at_count != nfree)
		FAIL("address index does not hold every free segment");
	for (n = vmem__avl_first(&vmp->vm_free_addr); n != NULL; n = vmem__avl_next(n)) {
		size_t m = ASEG(n)->vs_size;

		if (maxfree_of(n->an_child[0]) > m)
			m = maxfree_of(n->an_child[0]);
		if (maxfree_of(n->an_child[1]) > m)
			m = maxfree_of(n->an_child[1]);
		if (ASEG(n)->u.f.vs_maxfree != m || ASEG(n)->vs_type != VMEM_SEG_FREE)
			FAIL("index augmentation wrong");
	}
	return true;
}

/*
 * Check every invariant of the arena: spans sorted and disjoint; each span
 * exactly tiled by its segments; no two free segments adjacent; freelists,
 * freemap, index, hash and counters consistent.  For tests, the stress test
 * and the debug layer.
 */
bool vmem__verify_locked(vmem_t *vmp, const char **why)
{
	vmem_seg_t *vsp;
	uintptr_t next_start = 0;
	bool open = false; /* inside a span whose segments do not yet reach its end */
	size_t nfree = 0, nalloc = 0, nspan = 0;
	uint64_t inuse = 0, total = 0, import = 0;
	bool have_prev_span = false;
	uintptr_t prev_span_last = 0;
	size_t qmask = vmp->vm_quantum - 1;

	if (vmp->vm_seg0.vs_type != VMEM_SEG_SPAN || vmp->vm_seg0.vs_size != 0)
		FAIL("anchor damaged");
	for (vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0; vsp = vsp->vs_anext) {
		if (vsp->vs_anext->vs_aprev != vsp)
			FAIL("address list back link broken");
		if (vsp->vs_type == VMEM_SEG_WALKER)
			continue;
		if (vsp->vs_size == 0 || ((vsp->vs_start | vsp->vs_size) & qmask) != 0)
			FAIL("segment empty or not quantum-aligned");
		if (vsp->vs_size - 1 > UINTPTR_MAX - vsp->vs_start)
			FAIL("segment wraps around the address space");
		if (vsp->vs_type == VMEM_SEG_SPAN) {
			if (open)
				FAIL("span not covered by its segments");
			if (have_prev_span && vsp->vs_start <= prev_span_last)
				FAIL("spans overlap or are out of order");
			open = true;
			have_prev_span = true;
			prev_span_last = vmem__last(vsp->vs_start, vsp->vs_size);
			next_start = vsp->vs_start;
			nspan++;
			total += vsp->vs_size;
			if (vsp->vs_flags & VMEM_SEGF_IMPORTED)
				import += vsp->vs_size;
			continue;
		}
		if (!open || vsp->vs_start != next_start)
			FAIL("segments do not tile their span");
		if (vmem__last(vsp->vs_start, vsp->vs_size) > prev_span_last)
			FAIL("segment runs past its span");
		if (vmem__last(vsp->vs_start, vsp->vs_size) == prev_span_last)
			open = false;
		else
			next_start = vsp->vs_start + vsp->vs_size;
		if (vsp->vs_type == VMEM_SEG_FREE) {
			if (vsp->vs_aprev->vs_type == VMEM_SEG_FREE)
				FAIL("two adjacent free segments");
			nfree++;
		} else if (vsp->vs_type == VMEM_SEG_ALLOC) {
			vmem_seg_t **pp = vmem__hash_lookup(vmp, vsp->vs_start);

			if (pp == NULL || *pp != vsp)
				FAIL("allocated segment missing from the hash");
			if (vsp->u.a.vs_asize == 0 || vsp->u.a.vs_asize > vsp->vs_size ||
			    vsp->vs_size - vsp->u.a.vs_asize > qmask)
				FAIL("allocated segment's caller size inconsistent");
			nalloc++;
			inuse += vsp->u.a.vs_asize;
		} else {
			FAIL("segment of unknown type");
		}
	}
	if (open)
		FAIL("last span not covered by its segments");
	if (nalloc != vmp->vm_hash_count)
		FAIL("hash count differs from allocated segments");
	if (nspan != vmp->vm_spans.at_count || !vmem__avl_verify(&vmp->vm_spans, span_cmp))
		FAIL("span index inconsistent");
	if (inuse != vmp->vm_ctr.vc_mem_inuse || total != vmp->vm_ctr.vc_mem_total ||
	    import != vmp->vm_ctr.vc_mem_import)
		FAIL("counters disagree with the segments");
	if (!verify_freelists(vmp, nfree, why))
		return false;
	if (!verify_index(vmp, nfree, why))
		return false;
	return true;
}
