/*
 * Placement: given a request (size, alignment, phase, nocross, address
 * range, policy), choose a free segment and the address inside it.  All
 * functions are called with vm_lock held and change nothing but the rotor
 * and the search counter; carving is the caller's job.
 *
 * Policies (theory statement in vmem.c, section 3):
 *   instant fit  the head of the first non-empty freelist whose every member
 *                is large enough: O(1) with the freemap.  Constrained
 *                requests use the size that guarantees a fit.
 *   best fit     the size index: the smallest free segment that fits (exact
 *                size classes up to 1024 quanta, a tree above).
 *   first fit    the address index: the lowest-addressed segment that fits.
 *   next fit     the address index, starting at the rotor and wrapping.
 *   VM_ENDALLOC  mirrors first fit (highest address) and places the segment
 *                at the top of the chosen free segment.
 * The address index is augmented with the largest free size below each
 * node, so "the next segment at or after A of size >= S" is O(log n).
 * Constrained best, first and next fit examine at most FIT_PROBES segments
 * that might fit before settling for the best one that must (see below).
 */
#include "vmem_impl.h"

#define ASEG(n) VMEM_CONTAINER(n, vmem_seg_t, u.f.vs_anode)
#define SSEG(n) VMEM_CONTAINER(n, vmem_seg_t, u.f.sz.vs_snode)

static inline size_t maxfree(const vmem_avl_node_t *n)
{
	return n != NULL ? ASEG(n)->u.f.vs_maxfree : 0;
}

/*
 * Where can the request go inside the free range [start, start + size)?
 * The lowest address (or with `high` the highest) t such that
 *   t = phase (mod align),
 *   [t, t + rsize) lies inside the free range and inside [min, last],
 *   [t, t + rsize) crosses no multiple of nocross.
 * Every expression is checked so that nothing wraps, whatever the range,
 * including ranges that end at the top of the address space.
 */
bool vmem__seg_fit(const vmem_req_t *r, uintptr_t start, size_t size, bool high, uintptr_t *tp)
{
	uintptr_t lo = start > r->rq_min ? start : r->rq_min;
	uintptr_t hi = vmem__last(start, size);
	uintptr_t mask = r->rq_align - 1, tmax, t, b;
	size_t rs = r->rq_rsize, delta;

	if (hi > r->rq_last)
		hi = r->rq_last;
	if (lo > hi || hi - lo < rs - 1)
		return false;
	tmax = hi - (rs - 1); /* highest start that still fits */
	if (!high) {
		delta = (r->rq_phase - lo) & mask;
		if (delta > tmax - lo)
			return false;
		t = lo + delta;
		if (r->rq_nocross != 0 && ((t ^ (t + rs - 1)) & ~(r->rq_nocross - 1)) != 0) {
			/* Move to the boundary it crosses (b <= t + rs - 1 <= hi). */
			b = (t + rs - 1) & ~(r->rq_nocross - 1);
			if (b > tmax || r->rq_phase > tmax - b)
				return false;
			t = b + r->rq_phase; /* phase + rsize <= nocross: fits */
		}
	} else {
		delta = (tmax - r->rq_phase) & mask;
		if (delta > tmax - lo)
			return false;
		t = tmax - delta;
		if (r->rq_nocross != 0 && ((t ^ (t + rs - 1)) & ~(r->rq_nocross - 1)) != 0) {
			/* End just below the boundary it crosses (b > t >= 0). */
			b = (t + rs - 1) & ~(r->rq_nocross - 1);
			if (b - lo < rs)
				return false;
			t = b - rs;
			delta = (t - r->rq_phase) & mask;
			if (delta > t - lo)
				return false;
			t -= delta;
		}
	}
	*tp = t;
	return true;
}

/* No alignment beyond the quantum, no nocross, no address limits. */
bool vmem__req_unconstrained(const vmem_t *vmp, const vmem_req_t *r)
{
	return r->rq_align == vmp->vm_quantum && r->rq_nocross == 0 && r->rq_min == 0 &&
	       r->rq_last == UINTPTR_MAX;
}

/*
 * The smallest free size that admits the request wherever the free
 * segment starts (address limits aside), or 0 if that overflows.
 * Alignment wastes at most align - quantum; a nocross move at most another
 * rsize - quantum + phase.
 */
size_t vmem__guaranteed_size(const vmem_t *vmp, const vmem_req_t *r)
{
	size_t g = r->rq_rsize, extra = r->rq_align - vmp->vm_quantum;

	if (r->rq_nocross != 0) {
		if (__builtin_add_overflow(extra, r->rq_rsize - vmp->vm_quantum, &extra) ||
		    __builtin_add_overflow(extra, r->rq_phase, &extra))
			return 0;
	}
	if (__builtin_add_overflow(g, extra, &g))
		return 0;
	return g;
}

/* Head of the first freelist whose every member is at least `need`. */
static vmem_seg_t *instant_pick(const vmem_t *vmp, size_t need)
{
	int k = vmem__ispow2(need) ? vmem__highbit(need) - 1 : vmem__highbit(need);
	uint64_t m;

	if (k >= VMEM_FREELISTS)
		return NULL;
	m = vmp->vm_freemap & (~0ULL << k);
	if (m == 0)
		return NULL;
	return vmp->vm_freelist[vmem__lowbit(m) - 1];
}

/* ---- address index queries ---------------------------------------------- */

/* Lowest node of subtree n with vs_size >= m; requires maxfree(n) >= m. */
static vmem_seg_t *leftmost_fit(vmem_avl_node_t *n, size_t m)
{
	for (;;) {
		if (maxfree(n->an_child[0]) >= m)
			n = n->an_child[0];
		else if (ASEG(n)->vs_size >= m)
			return ASEG(n);
		else
			n = n->an_child[1];
	}
}

static vmem_seg_t *rightmost_fit(vmem_avl_node_t *n, size_t m)
{
	for (;;) {
		if (maxfree(n->an_child[1]) >= m)
			n = n->an_child[1];
		else if (ASEG(n)->vs_size >= m)
			return ASEG(n);
		else
			n = n->an_child[0];
	}
}

/* Lowest free segment of size >= m that ends at or after addr. */
static vmem_seg_t *ceil_fit(vmem_avl_node_t *n, uintptr_t addr, size_t m)
{
	vmem_seg_t *vsp;

	if (n == NULL || maxfree(n) < m)
		return NULL;
	vsp = ASEG(n);
	if (vmem__last(vsp->vs_start, vsp->vs_size) < addr)
		return ceil_fit(n->an_child[1], addr, m);
	if ((vsp = ceil_fit(n->an_child[0], addr, m)) != NULL)
		return vsp;
	if (ASEG(n)->vs_size >= m)
		return ASEG(n);
	return maxfree(n->an_child[1]) >= m ? leftmost_fit(n->an_child[1], m) : NULL;
}

/* Highest free segment of size >= m that starts at or before addr. */
static vmem_seg_t *floor_fit(vmem_avl_node_t *n, uintptr_t addr, size_t m)
{
	vmem_seg_t *vsp;

	if (n == NULL || maxfree(n) < m)
		return NULL;
	vsp = ASEG(n);
	if (vsp->vs_start > addr)
		return floor_fit(n->an_child[0], addr, m);
	if ((vsp = floor_fit(n->an_child[1], addr, m)) != NULL)
		return vsp;
	if (ASEG(n)->vs_size >= m)
		return ASEG(n);
	return maxfree(n->an_child[0]) >= m ? rightmost_fit(n->an_child[0], m) : NULL;
}

/*
 * The next free segment after vsp in address order with size >= m: the
 * lowest such in vsp's right subtree, else the first ancestor reached from
 * its left subtree that is large enough itself or has such a segment in
 * its right subtree.  Amortized O(1) per step of a scan, O(log n) at most,
 * and it touches only nodes near vsp (a scan stays in cache).
 */
static vmem_seg_t *next_fit(vmem_t *vmp, const vmem_seg_t *vsp, size_t m)
{
	const vmem_avl_node_t *n = &vsp->u.f.vs_anode;
	vmem_avl_node_t *p;

	(void)vmp;
	if (maxfree(n->an_child[1]) >= m)
		return leftmost_fit(n->an_child[1], m);
	for (; (p = vmem__avl_parent(n)) != NULL; n = p) {
		if (p->an_child[0] != n)
			continue; /* came up from the right: p is lower */
		if (ASEG(p)->vs_size >= m)
			return ASEG(p);
		if (maxfree(p->an_child[1]) >= m)
			return leftmost_fit(p->an_child[1], m);
	}
	return NULL;
}

/* The mirror image: the previous free segment with size >= m. */
static vmem_seg_t *prev_fit(vmem_t *vmp, const vmem_seg_t *vsp, size_t m)
{
	const vmem_avl_node_t *n = &vsp->u.f.vs_anode;
	vmem_avl_node_t *p;

	(void)vmp;
	if (maxfree(n->an_child[0]) >= m)
		return rightmost_fit(n->an_child[0], m);
	for (; (p = vmem__avl_parent(n)) != NULL; n = p) {
		if (p->an_child[1] != n)
			continue;
		if (ASEG(p)->vs_size >= m)
			return ASEG(p);
		if (maxfree(p->an_child[0]) >= m)
			return rightmost_fit(p->an_child[0], m);
	}
	return NULL;
}

/*
 * Constrained requests (alignment, phase, nocross) meet free segments of
 * two kinds: those of at least the guaranteed size g always admit the
 * request, those between rsize and g only might, depending on where they
 * start.  Segments that never fit (wrongly aligned remnants) collect in
 * exactly the places an exact search looks first, and an exact constrained
 * best or first fit would re-examine all of them on every call: linear in
 * the fragmentation, which is what illumos and the BSDs do.  So a search
 * examines at most FIT_PROBES might-fit segments; then it settles for the
 * best segment that must fit (the smallest for best fit, the next in
 * address order for first and next fit), found in O(log n).  Only when
 * there is none (or the address range clips it) does the search go on
 * through every candidate, so a request never fails while a fit exists.
 */
#define FIT_PROBES 16

/* The guaranteed size when settling can help: 0 if every candidate fits. */
static size_t settle_size(const vmem_t *vmp, const vmem_req_t *r, size_t m)
{
	size_t g;

	if (vmem__req_unconstrained(vmp, r))
		return 0;
	g = vmem__guaranteed_size(vmp, r);
	return g > m ? g : 0;
}

/* The settling candidate vsp, if it lies within [min, stop] and admits r. */
static vmem_seg_t *settle(vmem_t *vmp, const vmem_req_t *r, vmem_seg_t *vsp, uintptr_t stop,
                          bool high, uintptr_t *addrp)
{
	if (vsp == NULL)
		return NULL;
	if (high ? vmem__last(vsp->vs_start, vsp->vs_size) < r->rq_min : vsp->vs_start > stop)
		return NULL;
	vmp->vm_ctr.vc_search++;
	return vmem__seg_fit(r, vsp->vs_start, vsp->vs_size, high, addrp) ? vsp : NULL;
}

/*
 * Scan free segments of size >= m in ascending address order, starting at
 * the first that ends at or after `from` and ending with the last that
 * starts at or before `stop`, for the first that admits the request
 * (bounded as described above).
 */
static vmem_seg_t *addr_scan_up(vmem_t *vmp, const vmem_req_t *r, size_t m, uintptr_t from,
                                uintptr_t stop, uintptr_t *addrp)
{
	size_t g = settle_size(vmp, r, m);
	unsigned probes = 0;
	vmem_seg_t *vsp, *gsp;

	for (vsp = ceil_fit(vmp->vm_free_addr.at_root, from, m);
	     vsp != NULL && vsp->vs_start <= stop; vsp = next_fit(vmp, vsp, m)) {
		vmp->vm_ctr.vc_search++;
		if (vmem__seg_fit(r, vsp->vs_start, vsp->vs_size, false, addrp))
			return vsp;
		if (++probes == FIT_PROBES && g != 0 &&
		    (gsp = settle(vmp, r, next_fit(vmp, vsp, g), stop, false, addrp)) != NULL)
			return gsp;
	}
	return NULL;
}

/* The mirror image: descending from the last segment starting at or before rq_last. */
static vmem_seg_t *addr_scan_down(vmem_t *vmp, const vmem_req_t *r, size_t m, uintptr_t *addrp)
{
	size_t g = settle_size(vmp, r, m);
	unsigned probes = 0;
	vmem_seg_t *vsp, *gsp;

	for (vsp = floor_fit(vmp->vm_free_addr.at_root, r->rq_last, m);
	     vsp != NULL && vmem__last(vsp->vs_start, vsp->vs_size) >= r->rq_min;
	     vsp = prev_fit(vmp, vsp, m)) {
		vmp->vm_ctr.vc_search++;
		if (vmem__seg_fit(r, vsp->vs_start, vsp->vs_size, true, addrp))
			return vsp;
		if (++probes == FIT_PROBES && g != 0 &&
		    (gsp = settle(vmp, r, prev_fit(vmp, vsp, g), 0, true, addrp)) != NULL)
			return gsp;
	}
	return NULL;
}

/* First fit over the request's whole range (descending with `high`). */
static vmem_seg_t *addr_scan(vmem_t *vmp, const vmem_req_t *r, size_t m, bool high,
                             uintptr_t *addrp)
{
	return high ? addr_scan_down(vmp, r, m, addrp)
	            : addr_scan_up(vmp, r, m, r->rq_min, r->rq_last, addrp);
}

/* ---- size index queries -------------------------------------------------- */

/* First node of the large-size tree, in (size, address) order, with size >= m. */
static vmem_avl_node_t *size_lower_bound(const vmem_t *vmp, size_t m)
{
	vmem_avl_node_t *n = vmp->vm_free_size.at_root, *best = NULL;

	while (n != NULL) {
		if (SSEG(n)->vs_size >= m) {
			best = n;
			n = n->an_child[0];
		} else {
			n = n->an_child[1];
		}
	}
	return best;
}

/* The smallest non-empty exact class >= c (1-based, in quanta), or 0. */
static unsigned class_ceil(const vmem_sizeidx_t *si, size_t c)
{
	size_t b = c - 1, w;
	uint64_t m;

	if (c == 0 || c > VMEM_SIZECLASSES)
		return 0;
	w = b / 64;
	m = si->si_map[w] & (~0ULL << (b % 64));
	if (m != 0)
		return (unsigned)(w * 64 + (size_t)__builtin_ctzll(m) + 1);
	m = w + 1 < 64 ? si->si_summary & (~0ULL << (w + 1)) : 0;
	if (m == 0)
		return 0;
	w = (size_t)__builtin_ctzll(m);
	return (unsigned)(w * 64 + (size_t)__builtin_ctzll(si->si_map[w]) + 1);
}

/* The smallest free segment of at least g bytes, or NULL. */
static vmem_seg_t *smallest_at_least(const vmem_t *vmp, size_t g)
{
	unsigned k = class_ceil(vmp->vm_sizeidx, g >> vmp->vm_qshift);
	vmem_avl_node_t *n;

	if (k != 0)
		return vmp->vm_sizeidx->si_head[k - 1];
	n = size_lower_bound(vmp, g);
	return n != NULL ? SSEG(n) : NULL;
}

/* Examine vsp for best fit; after FIT_PROBES misfits, settle. */
static vmem_seg_t *best_probe(vmem_t *vmp, const vmem_req_t *r, vmem_seg_t *vsp, size_t g,
                              unsigned *probes, bool high, uintptr_t *addrp)
{
	vmp->vm_ctr.vc_search++;
	if (vmem__seg_fit(r, vsp->vs_start, vsp->vs_size, high, addrp))
		return vsp;
	if (++*probes == FIT_PROBES && g != 0)
		return settle(vmp, r, smallest_at_least(vmp, g), UINTPTR_MAX, high, addrp);
	return NULL;
}

/*
 * Best fit: the smallest free segment that admits the request.  Small sizes
 * come from the exact classes, smallest first, most recently freed first
 * within a class (illumos breaks ties the same way); larger ones from the
 * size tree, by (size, address).  Unconstrained, the first candidate fits:
 * O(1) for small sizes, O(log n) for large ones.  Constrained, after
 * FIT_PROBES misfits it settles for the smallest segment that must fit.
 */
static vmem_seg_t *fit_best(vmem_t *vmp, const vmem_req_t *r, bool high, uintptr_t *addrp)
{
	const vmem_sizeidx_t *si = vmp->vm_sizeidx;
	size_t c = r->rq_rsize >> vmp->vm_qshift, g = settle_size(vmp, r, r->rq_rsize);
	unsigned probes = 0;
	vmem_avl_node_t *n;
	vmem_seg_t *vsp, *gsp;

	for (unsigned k = class_ceil(si, c); k != 0; k = class_ceil(si, (size_t)k + 1)) {
		for (vsp = si->si_head[k - 1]; vsp != NULL; vsp = vsp->u.f.sz.c.vs_cnext)
			if ((gsp = best_probe(vmp, r, vsp, g, &probes, high, addrp)) != NULL)
				return gsp;
	}
	for (n = size_lower_bound(vmp, r->rq_rsize); n != NULL; n = vmem__avl_next(n))
		if ((gsp = best_probe(vmp, r, SSEG(n), g, &probes, high, addrp)) != NULL)
			return gsp;
	return NULL;
}

/*
 * Next fit: the lowest fit at or after the rotor, else the lowest fit from
 * the bottom (wrapping around).  The rotor then moves past the new segment,
 * which makes identifier arenas hand out ids sequentially.
 */
static vmem_seg_t *fit_next(vmem_t *vmp, const vmem_req_t *r, uintptr_t *addrp)
{
	vmem_req_t ahead = *r;
	uintptr_t rotor = vmp->vm_rotor;
	vmem_seg_t *vsp;

	if (rotor > ahead.rq_min)
		ahead.rq_min = rotor;
	if (ahead.rq_min <= ahead.rq_last) {
		vsp = addr_scan(vmp, &ahead, r->rq_rsize, false, addrp);
		if (vsp != NULL)
			goto found;
	}
	/* Wrap: segments starting below the rotor (they may reach past it). */
	if (rotor != 0) {
		vsp = addr_scan_up(vmp, r, r->rq_rsize, r->rq_min,
		                   rotor - 1 < r->rq_last ? rotor - 1 : r->rq_last, addrp);
		if (vsp != NULL)
			goto found;
	}
	return NULL;
found:
	vmp->vm_rotor = *addrp + r->rq_rsize;
	return vsp;
}

/*
 * Instant fit, and the default policy for constrained requests.  First
 * the O(1) freelist pick of a segment guaranteed to fit; failing that, a
 * search for any segment that fits: the one might-fit freelist in an
 * unindexed arena (exactly as illumos), the index otherwise.
 */
static vmem_seg_t *fit_instant(vmem_t *vmp, const vmem_req_t *r, bool high, uintptr_t *addrp,
                               bool *nomem)
{
	bool ranged = r->rq_min != 0 || r->rq_last != UINTPTR_MAX;
	size_t g = vmem__guaranteed_size(vmp, r);
	vmem_seg_t *vsp;

	if (!ranged && g != 0 && (vsp = instant_pick(vmp, g)) != NULL) {
		vmp->vm_ctr.vc_search++;
		if (vmem__seg_fit(r, vsp->vs_start, vsp->vs_size, high, addrp))
			return vsp;
	}
	if (vmem__req_unconstrained(vmp, r)) {
		int n = vmem__highbit(r->rq_rsize) - 1;

		/* Any fit will do: the cheapest structure there is. */
		if (vmp->vm_idx_size)
			return fit_best(vmp, r, high, addrp);
		if (vmp->vm_idx_addr)
			return addr_scan(vmp, r, r->rq_rsize, high, addrp);
		for (vsp = vmp->vm_freelist[n]; vsp != NULL; vsp = vsp->u.f.vs_fnext) {
			vmp->vm_ctr.vc_search++;
			if (vsp->vs_size >= r->rq_rsize &&
			    vmem__seg_fit(r, vsp->vs_start, vsp->vs_size, high, addrp))
				return vsp;
		}
		return NULL;
	}
	if (!vmem__index_addr(vmp)) {
		*nomem = true;
		return NULL;
	}
	/* Segments of the guaranteed size fit unless the range clips them. */
	if (g != 0 && (vsp = addr_scan(vmp, r, g, high, addrp)) != NULL)
		return vsp;
	return addr_scan(vmp, r, r->rq_rsize, high, addrp);
}

vmem_seg_t *vmem__fit(vmem_t *vmp, const vmem_req_t *r, uintptr_t *addrp, bool *nomem)
{
	int policy = r->rq_flags & (VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT);
	bool high = (r->rq_flags & VM_ENDALLOC) != 0;

	*nomem = false;
	if (policy == 0)
		return fit_instant(vmp, r, high, addrp, nomem);
	/* The index these policies search is built on first use. */
	if (!(policy == VM_BESTFIT ? vmem__index_size(vmp) : vmem__index_addr(vmp))) {
		*nomem = true;
		return NULL;
	}
	if (policy == VM_BESTFIT)
		return fit_best(vmp, r, high, addrp);
	if (policy == VM_NEXTFIT)
		return fit_next(vmp, r, addrp);
	return addr_scan(vmp, r, r->rq_rsize, high, addrp);
}
