/*
 * Model-based randomized test of the arena core.
 *
 * A parent arena (spans near 0, across 2^63, and ending exactly at 2^64) and
 * a child importing from it are driven by hundreds of thousands of random
 * operations: alloc with every policy, xalloc with random (sometimes
 * invalid) constraints, frees of both kinds, bad frees, adds, contains.  A
 * simple reference model, written with 128-bit arithmetic and division
 * (nothing like the allocator's overflow-free code), checks after every
 * step that:
 *   - results are quantum-aligned, inside a span, disjoint from every other
 *     allocation, and honour align/phase/nocross/min/max;
 *   - best fit returns a smallest fitting segment, first fit the lowest
 *     address (highest with VM_ENDALLOC), next fit the lowest position at or
 *     after the rotor, wrapping;
 *   - a VM_NOSLEEP failure happens only when nothing fits (and, in the child,
 *     the import could not be had either);
 *   - invalid arguments give EINVAL and change nothing;
 *   - imported spans are recorded and given back exactly when wholly free;
 *   - vmem_walk (ALLOC, FREE, SPAN), vmem_size and vmem_contains agree with
 *     the model, and vmem__verify finds every internal invariant intact.
 * VMEM_MODEL_OPS and VMEM_MODEL_SEED override the length and the seed.
 */
#include "testutil.h"

typedef unsigned __int128 u128;

#define Q        ((uint64_t)16)
#define MAXSPANS 2048
#define TOP      ((u128)1 << 64)

typedef struct mspan {
	uint64_t start, size;
	bool imported;
} mspan_t;

typedef struct mseg {
	uint64_t start, asize, rsize;
	bool x;      /* from vmem_xalloc */
	bool import; /* parent: a span the child imported (not ours to free) */
} mseg_t;

typedef struct model {
	vmem_t *vmp;
	mspan_t spans[MAXSPANS];
	int nspans;
	mseg_t *segs; /* sorted by start */
	int nsegs, cap;
	uint64_t rotor;
} model_t;

typedef struct mreq {
	uint64_t size, rsize, align, phase, nocross, min, last;
	int flags;
	uint64_t max; /* vmem_xalloc's maxaddr (exclusive, 0: none) */
} mreq_t;

/*
 * The last address an extent may reach under maxaddr: illumos bounds the
 * caller's [a, a + size), not the rounded extent, so the highest start is
 * the highest quantum multiple t with t + size <= max.  Requests the
 * library refuses anyway keep max - 1.
 */
static uint64_t caller_last(uint64_t size, uint64_t min, uint64_t max)
{
	u128 t;

	if (max == 0)
		return UINT64_MAX;
	if (max <= min || max - min < size || size == 0 || size > UINT64_MAX - (Q - 1))
		return max - 1;
	t = (u128)(max - size) / Q * Q;
	return (uint64_t)(t + ((size + Q - 1) / Q * Q) - 1);
}

static model_t P, C;

/* What the run exercised, printed at the end. */
static struct {
	uint64_t ok, exact, settled, nomem, einval, imports, releases, frees, badfrees, adds,
	    contains;
} st;
static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t rn(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* ---- model bookkeeping ---------------------------------------------------- */

static int seg_index(model_t *m, uint64_t start)
{
	int lo = 0, hi = m->nsegs;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (m->segs[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void seg_add(model_t *m, mseg_t s)
{
	int i = seg_index(m, s.start);

	if (m->nsegs == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->segs = realloc(m->segs, (size_t)m->cap * sizeof(*m->segs));
	}
	memmove(&m->segs[i + 1], &m->segs[i], (size_t)(m->nsegs - i) * sizeof(*m->segs));
	m->segs[i] = s;
	m->nsegs++;
}

static void seg_del(model_t *m, int i)
{
	memmove(&m->segs[i], &m->segs[i + 1], (size_t)(m->nsegs - i - 1) * sizeof(*m->segs));
	m->nsegs--;
}

static int seg_find(model_t *m, uint64_t start)
{
	int i = seg_index(m, start);

	return i < m->nsegs && m->segs[i].start == start ? i : -1;
}

static void span_add(model_t *m, uint64_t start, uint64_t size, bool imported)
{
	int i = 0;

	assert_true(m->nspans < MAXSPANS);
	while (i < m->nspans && m->spans[i].start < start)
		i++;
	memmove(&m->spans[i + 1], &m->spans[i], (size_t)(m->nspans - i) * sizeof(mspan_t));
	m->spans[i] = (mspan_t){start, size, imported};
	m->nspans++;
}

static int span_of(model_t *m, uint64_t addr)
{
	for (int i = 0; i < m->nspans; i++) {
		if (addr >= m->spans[i].start &&
		    (u128)addr < (u128)m->spans[i].start + m->spans[i].size)
			return i;
	}
	return -1;
}

static bool span_overlaps(model_t *m, uint64_t start, uint64_t size)
{
	for (int i = 0; i < m->nspans; i++) {
		u128 s = m->spans[i].start, e = s + m->spans[i].size;

		if ((u128)start < e && s < (u128)start + size)
			return true;
	}
	return false;
}

/* Free intervals [s, e), maximal within each span, in address order. */
typedef struct fint {
	u128 s, e;
} fint_t;

static int free_intervals(model_t *m, fint_t *out)
{
	int n = 0, j = 0;

	for (int i = 0; i < m->nspans; i++) {
		u128 s = m->spans[i].start, e = s + m->spans[i].size, cur = s;

		while (j < m->nsegs && m->segs[j].start < s)
			j++;
		for (; j < m->nsegs && (u128)m->segs[j].start < e; j++) {
			if (m->segs[j].start > cur)
				out[n++] = (fint_t){cur, m->segs[j].start};
			cur = (u128)m->segs[j].start + m->segs[j].rsize;
		}
		if (cur < e)
			out[n++] = (fint_t){cur, e};
	}
	return n;
}

static fint_t *fbuf;

/* ---- the reference fit (128-bit arithmetic, division) ------------------- */

static bool mfit(u128 s, u128 e, const mreq_t *r, bool high, u128 *tp)
{
	u128 lo = s > r->min ? s : r->min;
	u128 hi = e < (u128)r->last + 1 ? e : (u128)r->last + 1;
	u128 A = r->align, P_ = r->phase, R = r->rsize, N = r->nocross, t, d;

	if (lo >= hi || hi - lo < R)
		return false;
	if (!high) {
		t = lo + (P_ + A - lo % A) % A;
		if (N && t / N != (t + R - 1) / N)
			t = ((t + R - 1) / N) * N + P_;
		if (t + R > hi)
			return false;
	} else {
		t = hi - R;
		d = (t % A + A - P_) % A;
		if (d > t - lo)
			return false;
		t -= d;
		if (N && t / N != (t + R - 1) / N) {
			u128 b = ((t + R - 1) / N) * N;

			if (b < lo + R)
				return false;
			t = b - R;
			d = (t % A + A - P_) % A;
			if (d > t - lo)
				return false;
			t -= d;
		}
	}
	*tp = t;
	return true;
}

/* Does any free interval admit r? */
static bool model_can_fit(model_t *m, const mreq_t *r)
{
	int n = free_intervals(m, fbuf);
	u128 t;

	for (int i = 0; i < n; i++) {
		if (mfit(fbuf[i].s, fbuf[i].e, r, false, &t))
			return true;
	}
	return false;
}

/*
 * Constrained best, first and next fit may stop after a bounded number of
 * misfits and settle for the best segment that must fit (src/fit.c): one of
 * at least the guaranteed size, which admits the request wherever it
 * starts.  g is 0 when settling cannot happen (no alignment beyond the
 * quantum and no nocross: every candidate admits the request but for the
 * range, so there is nothing to give up on).
 */
static u128 guaranteed(const mreq_t *r)
{
	u128 g = (u128)r->rsize + r->align - Q;

	if (r->nocross != 0)
		g += (u128)r->rsize - Q + r->phase;
	return g > r->rsize ? g : 0;
}

/*
 * The address settling gives, or false: the lowest (highest with high)
 * admitting interval of size >= g among intervals [from, n) (or down from
 * `from` with high) whose start is at most stop.
 */
static bool settle_addr(const fint_t *f, int n, const mreq_t *r, bool high, u128 stop, u128 *tp)
{
	u128 g = guaranteed(r);

	if (g == 0)
		return false;
	if (!high) {
		for (int i = 0; i < n && f[i].s <= stop; i++) {
			if (f[i].e - f[i].s >= g && mfit(f[i].s, f[i].e, r, false, tp))
				return true;
		}
	} else {
		for (int i = n - 1; i >= 0; i--) {
			if (f[i].e - f[i].s >= g && mfit(f[i].s, f[i].e, r, true, tp))
				return true;
		}
	}
	return false;
}

/* The smallest interval of size >= g, or 0. */
static uint64_t settle_size(const fint_t *f, int n, const mreq_t *r)
{
	u128 g = guaranteed(r), best = 0;

	if (g == 0)
		return 0;
	for (int i = 0; i < n; i++) {
		u128 sz = f[i].e - f[i].s;

		if (sz >= g && (best == 0 || sz < best))
			best = sz;
	}
	return (uint64_t)best;
}

/* The exact address the policy must return, or false if it is free to choose. */
/* Best fit: the size of the smallest free interval that admits the request. */
static uint64_t best_size;

/*
 * Best fit may pick any of the smallest admitting segments (libvmem takes the
 * most recently freed, as illumos), or, having settled, any of the smallest
 * segments of the guaranteed size: the result must lie in a free interval of
 * exactly one of those sizes, at that interval's lowest (highest with
 * VM_ENDALLOC) admissible address.
 */
static void check_best(model_t *m, const mreq_t *r, uint64_t a)
{
	int n = free_intervals(m, fbuf);
	bool high = (r->flags & VM_ENDALLOC) != 0;
	u128 t;

	for (int i = 0; i < n; i++) {
		if ((u128)a < fbuf[i].s || (u128)a >= fbuf[i].e)
			continue;
		if ((uint64_t)(fbuf[i].e - fbuf[i].s) != best_size &&
		    (uint64_t)(fbuf[i].e - fbuf[i].s) != settle_size(fbuf, n, r))
			fail_msg(
			    "best fit chose a free segment of %#lx, the smallest that fits is %#lx",
			    (unsigned long)(fbuf[i].e - fbuf[i].s), (unsigned long)best_size);
		assert_true(mfit(fbuf[i].s, fbuf[i].e, r, high, &t));
		if ((uint64_t)t != a)
			fail_msg("best fit placed at %#lx, expected %#lx in its segment",
			         (unsigned long)a, (unsigned long)t);
		return;
	}
	fail_msg("best fit result %#lx is in no free interval", (unsigned long)a);
}

/*
 * Sets *expect to the exact address the policy would choose and *alt to the
 * one settling would (alt = expect when settling cannot happen); returns
 * false if the policy is free to choose (best fit: check_best()).
 */
static bool model_expect(model_t *m, const mreq_t *r, uint64_t *expect, uint64_t *alt)
{
	int n = free_intervals(m, fbuf),
	    policy = r->flags & (VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT);
	bool high = (r->flags & VM_ENDALLOC) != 0;
	u128 t, best = 0, bsize = 0;
	bool found = false;

	u128 other = 0;
	bool settles = false;

	if (policy == VM_FIRSTFIT) {
		if (!high) {
			for (int i = 0; i < n && !found; i++)
				found = mfit(fbuf[i].s, fbuf[i].e, r, false, &best);
		} else {
			for (int i = n - 1; i >= 0 && !found; i--)
				found = mfit(fbuf[i].s, fbuf[i].e, r, true, &best);
		}
		settles = settle_addr(fbuf, n, r, high, TOP, &other);
	} else if (policy == VM_BESTFIT) {
		for (int i = 0; i < n; i++) {
			u128 sz = fbuf[i].e - fbuf[i].s;

			if (!mfit(fbuf[i].s, fbuf[i].e, r, high, &t))
				continue;
			/* smaller wins; among equal sizes any may be chosen (see below) */
			if (!found || sz < bsize) {
				best = t;
				bsize = sz;
				found = true;
			}
		}
		assert_true(found);
		best_size = (uint64_t)bsize;
		return false; /* the address is not fixed: check_best() checks the size */
	} else if (policy == VM_NEXTFIT) {
		mreq_t ahead = *r;

		if (m->rotor > ahead.min)
			ahead.min = m->rotor;
		for (int i = 0; i < n && !found && ahead.min <= ahead.last; i++)
			found = mfit(fbuf[i].s, fbuf[i].e, &ahead, false, &best);
		if (found) {
			settles = settle_addr(fbuf, n, &ahead, false, ahead.last, &other);
		} else if (m->rotor != 0) {
			u128 stop = m->rotor - 1 < r->last ? m->rotor - 1 : r->last;

			for (int i = 0; i < n && !found && fbuf[i].s <= stop; i++)
				found = mfit(fbuf[i].s, fbuf[i].e, r, false, &best);
			settles = settle_addr(fbuf, n, r, false, stop, &other);
		}
	} else {
		return false;
	}
	assert_true(found); /* the caller established that something fits */
	*expect = (uint64_t)best;
	*alt = settles ? (uint64_t)other : *expect;
	return true;
}

/* ---- import/release callbacks record what crossed the arena boundary ----- */

typedef struct crossing {
	bool release;
	uint64_t addr, size;
} crossing_t;

static crossing_t crossings[64];
static int ncross;
static uint64_t import_fail_size; /* size of the last failed import, 0 if none */

static void *model_import(vmem_t *src, size_t size, int flags)
{
	void *p = vmem_alloc(src, size, flags);

	assert_true(flags & VM_NOSLEEP);
	if (p == NULL) {
		import_fail_size = size;
		return NULL;
	}
	assert_true(ncross < 64);
	crossings[ncross++] = (crossing_t){false, (uint64_t)(uintptr_t)p, size};
	return p;
}

static void model_release(vmem_t *src, void *addr, size_t size)
{
	assert_true(ncross < 64);
	crossings[ncross++] = (crossing_t){true, (uint64_t)(uintptr_t)addr, size};
	vmem_free(src, addr, size);
}

/* Whole imported span of the child, in the model, is free. */
static bool child_span_wholly_free(int si)
{
	uint64_t s = C.spans[si].start;
	int i = seg_index(&C, s);

	return !(i < C.nsegs && (u128)C.segs[i].start < (u128)s + C.spans[si].size);
}

/* Apply the recorded imports and releases to both models. */
static void apply_crossings(void)
{
	for (int k = 0; k < ncross; k++) {
		crossing_t *c = &crossings[k];

		if (!c->release) {
			st.imports++;
			seg_add(&P, (mseg_t){c->addr, c->size, (c->size + Q - 1) & ~(Q - 1), false,
			                     true});
			span_add(&C, c->addr, c->size, true);
		} else {
			int si = span_of(&C, c->addr), pi = seg_find(&P, c->addr);

			st.releases++;

			assert_true(si >= 0 && C.spans[si].start == c->addr &&
			            C.spans[si].size == c->size && C.spans[si].imported);
			assert_true(child_span_wholly_free(si));
			memmove(&C.spans[si], &C.spans[si + 1],
			        (size_t)(C.nspans - si - 1) * sizeof(mspan_t));
			C.nspans--;
			assert_true(pi >= 0 && P.segs[pi].import);
			seg_del(&P, pi);
		}
	}
	ncross = 0;
}

/* No imported span of the child may stay wholly free. */
static void check_no_free_imported_span(void)
{
	for (int i = 0; i < C.nspans; i++) {
		if (C.spans[i].imported && child_span_wholly_free(i))
			fail_msg("imported span %#lx+%#lx is wholly free but was not returned",
			         (unsigned long)C.spans[i].start, (unsigned long)C.spans[i].size);
	}
}

/* ---- comparing the arena with the model ------------------------------------- */

typedef struct wlist {
	int n, cap;
	uint64_t *addr, *size;
} wlist_t;

static void wrec(void *arg, void *addr, size_t size)
{
	wlist_t *w = arg;

	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 512;
		w->addr = realloc(w->addr, (size_t)w->cap * sizeof(uint64_t));
		w->size = realloc(w->size, (size_t)w->cap * sizeof(uint64_t));
	}
	w->addr[w->n] = (uint64_t)(uintptr_t)addr;
	w->size[w->n] = size;
	w->n++;
}

static wlist_t wl;

static void compare(model_t *m)
{
	int n, i;
	uint64_t inuse = 0, total = 0;

	assert_arena_ok(m->vmp);
	wl.n = 0;
	vmem_walk(m->vmp, VMEM_ALLOC, wrec, &wl);
	assert_int_equal(wl.n, m->nsegs);
	for (i = 0; i < m->nsegs; i++) {
		assert_int_equal(wl.addr[i], m->segs[i].start);
		assert_int_equal(wl.size[i], m->segs[i].asize);
		inuse += m->segs[i].asize;
	}
	wl.n = 0;
	vmem_walk(m->vmp, VMEM_FREE, wrec, &wl);
	n = free_intervals(m, fbuf);
	assert_int_equal(wl.n, n);
	for (i = 0; i < n; i++) {
		assert_int_equal(wl.addr[i], (uint64_t)fbuf[i].s);
		assert_int_equal(wl.size[i], (uint64_t)(fbuf[i].e - fbuf[i].s));
	}
	wl.n = 0;
	vmem_walk(m->vmp, VMEM_SPAN, wrec, &wl);
	assert_int_equal(wl.n, m->nspans);
	for (i = 0; i < m->nspans; i++) {
		assert_int_equal(wl.addr[i], m->spans[i].start);
		assert_int_equal(wl.size[i], m->spans[i].size);
		total += m->spans[i].size;
	}
	assert_int_equal(vmem_size(m->vmp, VMEM_ALLOC), inuse);
	assert_int_equal(vmem_size(m->vmp, VMEM_FREE), total - inuse);
	assert_int_equal(vmem_size(m->vmp, VMEM_ALLOC | VMEM_FREE), total);
}

/* ---- random requests ------------------------------------------------------------ */

static uint64_t random_size(void)
{
	switch (rn(10)) {
	case 0:
		return 1 + rn(Q * 4); /* not a quantum multiple */
	case 1:
		return Q << rn(14);
	case 2:
		return Q * (1 + rn(4096));
	default:
		return Q * (1 + rn(16));
	}
}

/* A random address near the spans of m (or anywhere). */
static uint64_t random_addr(model_t *m)
{
	if (m->nspans == 0 || rn(8) == 0)
		return rnd() & ~(Q - 1);
	{
		mspan_t *s = &m->spans[rn((uint64_t)m->nspans)];
		uint64_t off = rn(s->size + 4 * Q);

		return (s->start + off - 2 * Q) & ~(Q - 1);
	}
}

static int random_policy(void)
{
	static const int pol[] = {0, 0, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT};
	int f = pol[rn(5)];

	if (rn(4) == 0)
		f |= VM_ENDALLOC;
	return f;
}

/* Is the xalloc request valid (the documented EINVAL rules, restated)? */
static bool mreq_valid(const mreq_t *r)
{
	if (r->size == 0 || r->size > UINT64_MAX - (Q - 1))
		return false;
	if ((r->align | r->phase | r->nocross) % Q != 0)
		return false;
	if ((r->align & (r->align - 1)) != 0 || r->phase >= r->align)
		return false;
	if (r->nocross != 0 && (r->nocross & (r->nocross - 1)) != 0)
		return false;
	if (r->nocross != 0 && (r->align > r->nocross || (u128)r->phase + r->rsize > r->nocross))
		return false;
	if (r->min > r->last || (u128)r->last - r->min + 1 < r->rsize)
		return false;
	return __builtin_popcount((unsigned)(r->flags & (VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT))) <=
	       1;
}

static void check_result(model_t *m, const mreq_t *r, uint64_t a)
{
	int i = seg_index(m, a), si = span_of(m, a);

	assert_true(si >= 0);
	assert_true((u128)a + r->rsize <= (u128)m->spans[si].start + m->spans[si].size);
	assert_int_equal(a % Q, 0);
	assert_int_equal(a % r->align, r->phase);
	assert_true(a >= r->min && (u128)a + r->rsize - 1 <= r->last);
	assert_true(r->max == 0 || (u128)a + r->size <= r->max); /* the caller's range */
	if (r->nocross)
		assert_true(a / r->nocross == ((u128)a + r->rsize - 1) / r->nocross);
	/* disjoint from its neighbours */
	if (i > 0)
		assert_true((u128)m->segs[i - 1].start + m->segs[i - 1].rsize <= a);
	if (i < m->nsegs)
		assert_true((u128)a + r->rsize <= m->segs[i].start);
}

/* One allocation (alloc or xalloc) on m, checked against the model. */
static void do_alloc(model_t *m, bool x)
{
	mreq_t r;
	uint64_t a, expect = 0, alt = 0;
	bool fits, must, valid;
	int err;
	void *p;

	memset(&r, 0, sizeof(r));
	r.size = random_size();
	r.rsize = (r.size + Q - 1) & ~(Q - 1);
	r.align = Q;
	r.last = UINT64_MAX;
	r.flags = VM_NOSLEEP | random_policy();
	if (x) {
		r.align = rn(3) == 0 ? 0 : Q << rn(12);
		if (r.align != 0)
			r.phase = rn(r.align / Q) * Q;
		if (rn(3) == 0) {
			/* A power of two that the request can live with. */
			uint64_t need = r.phase + r.rsize, lo = r.align ? r.align : Q;

			if (need > lo)
				lo = need;
			if (lo <= (1ULL << 40)) {
				r.nocross = (uint64_t)1 << (64 - __builtin_clzll(lo - 1));
				r.nocross <<= rn(5);
			}
		}
		if (rn(3) == 0) {
			r.min = random_addr(m);
			r.last = rn(2) ? UINT64_MAX : r.min + rn(1 << 20);
			if (r.last < r.min)
				r.last = UINT64_MAX;
		}
		/* Sometimes break a rule on purpose. */
		switch (rn(40)) {
		case 0:
			r.phase = r.align ? r.align : Q;
			break;
		case 1:
			r.align = 3 * Q;
			break;
		case 2:
			r.nocross = r.rsize / 2 & ~(Q - 1);
			break;
		case 3:
			r.min = r.last == UINT64_MAX ? 1 : r.last + 1;
			break;
		case 4:
			r.flags |= VM_BESTFIT | VM_FIRSTFIT;
			break;
		default:
			break;
		}
		r.max = r.last == UINT64_MAX ? 0 : r.last + 1;
		r.last = caller_last(r.size, r.min, r.max);
	}
	{
		mreq_t eff = r;

		if (eff.align == 0)
			eff.align = Q;
		valid = mreq_valid(&eff);
		if (valid)
			r = eff;
	}
	import_fail_size = 0;
	errno = 0;
	if (x)
		p = vmem_xalloc(m->vmp, r.size, r.align, r.phase, r.nocross,
		                (void *)(uintptr_t)r.min, (void *)(uintptr_t)r.max, r.flags);
	else
		p = vmem_alloc(m->vmp, r.size, r.flags);
	err = errno;
	a = (uint64_t)(uintptr_t)p;
	if (!valid) {
		assert_null(p);
		assert_int_equal(err, EINVAL);
		assert_int_equal(ncross, 0);
		st.einval++;
		return;
	}
	fits = model_can_fit(m, &r);
	if (p == NULL) {
		assert_int_equal(err, ENOMEM);
		assert_false(fits);
		st.nomem++;
		if (m == &C && r.min == 0 && r.last == UINT64_MAX) {
			/* The child must have tried to import, and the parent had no room. */
			mreq_t imp = {
			    import_fail_size, import_fail_size, Q, 0, 0, 0, UINT64_MAX, 0, 0};

			assert_true(import_fail_size != 0);
			assert_false(model_can_fit(&P, &imp));
		}
		apply_crossings();
		return;
	}
	if (ncross > 0) {
		assert_false(fits); /* imports only when nothing fitted */
		apply_crossings();
	}
	must = model_expect(m, &r, &expect, &alt);
	if ((r.flags & VM_BESTFIT) != 0)
		check_best(m, &r, a);
	st.ok++;
	st.exact += must;
	check_result(m, &r, a);
	st.settled += must && a != expect && a == alt;
	if (must && a != expect && a != alt)
		fail_msg("policy %#x size %#lx align %#lx phase %#lx nocross %#lx [%#lx,%#lx]: "
		         "got %#lx, expected %#lx",
		         r.flags, (unsigned long)r.size, (unsigned long)r.align,
		         (unsigned long)r.phase, (unsigned long)r.nocross, (unsigned long)r.min,
		         (unsigned long)r.last, (unsigned long)a, (unsigned long)expect);
	if ((r.flags & VM_NEXTFIT) != 0)
		m->rotor = a + r.rsize;
	seg_add(m, (mseg_t){a, r.size, r.rsize, x, false});
}

static void do_free(model_t *m)
{
	int i, tries = 0;
	mseg_t s;

	if (m->nsegs == 0)
		return;
	do {
		i = (int)rn((uint64_t)m->nsegs);
	} while (m->segs[i].import && ++tries < 8);
	if (m->segs[i].import)
		return;
	s = m->segs[i];
	seg_del(m, i);
	st.frees++;
	if (s.x || rn(4) == 0)
		vmem_xfree(m->vmp, (void *)(uintptr_t)s.start, s.asize);
	else
		vmem_free(m->vmp, (void *)(uintptr_t)s.start, s.asize);
	apply_crossings();
	check_no_free_imported_span();
}

static captured_t cap;

/* A free that must be refused and change nothing. */
static void do_bad_free(model_t *m)
{
	uint64_t a = random_addr(m), size = 1 + rn(4 * Q);
	int before = cap.n, i;

	if (m->nsegs > 0 && rn(2) == 0) {
		i = (int)rn((uint64_t)m->nsegs);
		if (m->segs[i].import)
			return;
		a = m->segs[i].start;
		size = m->segs[i].asize + 1; /* wrong size */
	} else if (seg_find(m, a) >= 0) {
		return;
	}
	vmem_free(m->vmp, (void *)(uintptr_t)a, size);
	st.badfrees++;
	assert_int_equal(cap.n, before + 1);
	assert_int_equal(ncross, 0);
}

static void do_add(model_t *m)
{
	uint64_t size = Q * (1 + rn(4096)), a = rnd() & ~(Q - 1);
	bool ok;
	void *p;

	if (rn(2))
		a = random_addr(m);
	/* The two arenas' own spans stay apart, so that imports never collide. */
	ok = a != 0 && (u128)a + size <= TOP && !span_overlaps(&P, a, size) &&
	     !span_overlaps(&C, a, size) && m->nspans < MAXSPANS - 8;
	if (!ok && (a == 0 || (u128)a + size > TOP || span_overlaps(m, a, size))) {
		errno = 0;
		assert_null(vmem_add(m->vmp, (void *)(uintptr_t)a, size, VM_NOSLEEP));
		assert_int_equal(errno, EINVAL);
		return;
	}
	if (!ok)
		return;
	p = vmem_add(m->vmp, (void *)(uintptr_t)a, size, VM_NOSLEEP);
	assert_ptr_equal(p, (void *)(uintptr_t)a);
	span_add(m, a, size, false);
	st.adds++;
}

static void do_contains(model_t *m)
{
	uint64_t a = random_addr(m), size = rn(3) ? rn(64 * Q) : rnd();
	int expect = 0;

	for (int i = 0; i < m->nspans; i++) {
		u128 s = m->spans[i].start, e = s + m->spans[i].size;

		if (a >= s && a < e && (size == 0 || (u128)a + size <= e))
			expect = 1;
	}
	assert_int_equal(vmem_contains(m->vmp, (void *)(uintptr_t)a, size) != 0, expect);
	st.contains++;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v != NULL ? strtoull(v, NULL, 0) : dflt;
}

static void test_model(void **state)
{
	uint64_t ops = env_u64("VMEM_MODEL_OPS", 300000),
	         seed = env_u64("VMEM_MODEL_SEED", 20261122);
	static const uint64_t init[][2] = {
	    {0x1000, 0x10000},                /* near zero */
	    {0x100000, 0x100000},             /* 1 MiB */
	    {0x7FFFFFFFFFFF0000ULL, 0x20000}, /* across 2^63 */
	    {0xFFFFFFFFFFFC0000ULL, 0x40000}, /* ends exactly at 2^64 */
	};
	uint64_t k;

	(void)state;
	fprintf(stderr, "model test: %llu operations, seed %llu\n", (unsigned long long)ops,
	        (unsigned long long)seed);
	rng_state = seed;
	fbuf = malloc(sizeof(fint_t) * 1000000);
	memset(&P, 0, sizeof(P));
	memset(&C, 0, sizeof(C));
	P.vmp = vmem_create("model-parent", NULL, 0, Q, NULL, NULL, NULL, 0, VM_SLEEP);
	C.vmp =
	    vmem_create("model-child", NULL, 0, Q, model_import, model_release, P.vmp, 0, VM_SLEEP);
	assert_non_null(P.vmp);
	assert_non_null(C.vmp);
	for (k = 0; k < 4; k++) {
		assert_non_null(
		    vmem_add(P.vmp, (void *)(uintptr_t)init[k][0], init[k][1], VM_SLEEP));
		span_add(&P, init[k][0], init[k][1], false);
	}
	capture_errors(&cap);
	for (k = 0; k < ops; k++) {
		model_t *m = rn(2) ? &P : &C;
		uint64_t what = rn(100);

		if (cap.n > 8)
			cap.n = 0;
		if (what < 30)
			do_alloc(m, false);
		else if (what < 55)
			do_alloc(m, true);
		else if (what < 95)
			do_free(m);
		else if (what < 97)
			do_contains(m);
		else if (what < 98)
			do_bad_free(m);
		else if (rn(20) == 0)
			do_add(m);
		/* Keep the live set bounded so that the arenas churn. */
		while (m->nsegs > 600)
			do_free(m);
		if (k % 64 == 0 || k < 2000) {
			compare(&P);
			compare(&C);
		}
	}
	release_errors();
	compare(&P);
	compare(&C);
	fprintf(
	    stderr,
	    "model test: %llu allocations (%llu at an address the policy fixes, %llu of them "
	    "settled), %llu ENOMEM, "
	    "%llu EINVAL, %llu frees, %llu bad frees, %llu imports, %llu span returns, %llu adds, "
	    "%llu contains\n",
	    (unsigned long long)st.ok, (unsigned long long)st.exact, (unsigned long long)st.settled,
	    (unsigned long long)st.nomem, (unsigned long long)st.einval,
	    (unsigned long long)st.frees, (unsigned long long)st.badfrees,
	    (unsigned long long)st.imports, (unsigned long long)st.releases,
	    (unsigned long long)st.adds, (unsigned long long)st.contains);
	/* Destroying the child gives every imported span back. */
	{
		captured_t leak;

		capture_errors(&leak);
		vmem_destroy(C.vmp);
		release_errors();
		assert_true(leak.n <= 1);
	}
	for (int i = 0; i < ncross; i++) {
		int pi = seg_find(&P, crossings[i].addr);

		assert_true(crossings[i].release && pi >= 0 && P.segs[pi].import);
		seg_del(&P, pi);
	}
	ncross = 0;
	compare(&P);
	for (int i = 0; i < P.nsegs; i++)
		assert_false(P.segs[i].import);
	{
		captured_t leak;

		capture_errors(&leak);
		vmem_destroy(P.vmp);
		release_errors();
	}
	free(P.segs);
	free(C.segs);
	free(fbuf);
	free(wl.addr);
	free(wl.size);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
