/*
 * Model-based fuzz target: the illumos API over a small tree of arenas.
 *
 * The input is decoded into a sequence of calls -- create/xcreate (roots,
 * importing children, quantum caches, identifier arenas, bad arguments),
 * add, alloc, xalloc with arbitrary constraints, free, xfree, bad frees in
 * report-and-continue mode, contains, walk, size, reap, destroy, metadata
 * fault injection and import failures -- and every result is checked
 * against a reference model that uses 128-bit arithmetic and division
 * (nothing like the allocator's overflow-free code).
 *
 * Two levels of model, because quantum caches hide space from the caller:
 *   - "strict" arenas (no quantum caches) are modelled exactly: addresses
 *     fixed by best/first/next fit, failure only when nothing fits and no
 *     import could be had, walks and sizes equal to the model, imported
 *     spans given back exactly when wholly free;
 *   - arenas with quantum caches are modelled from the callers' side:
 *     results inside a span, aligned, constrained and disjoint from every
 *     held segment; walks tile the spans and report exactly the held
 *     segments; failures are checked only when no cached object is held
 *     (then the caches can be reaped empty and the arena is exact again).
 * Import and release callbacks update the models as they happen, so an
 * allocation a child makes in its source is checked like any other.
 *
 * When the input is used up, everything still held is freed and every
 * arena destroyed, children first: every imported span must have gone
 * back and every root must be whole, with no leak reported.
 *
 * A failed check prints what failed and the operation, then aborts (a
 * crash for libFuzzer, a failed test for the replay driver).
 * FUZZ_VMEM_TRACE=1 prints every operation as it is decoded.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmem.h>

#include "fuzz_vmem.h"
#include "qcache.h"
#include "vmem_impl.h"

typedef unsigned __int128 u128;

#define NSLOT      6                        /* arenas alive at once */
#define MAXOPS     1500                     /* operations decoded from one input */
#define MAXSEGS    600                      /* held segments per arena */
#define MAXSPANS   300                      /* spans per arena */
#define MAXCROSS   4096                     /* imports and releases during one operation */
#define CAPSEGS    (3 * MAXSEGS)            /* room for children's imports too */
#define CAPSPANS   (MAXSPANS + 3 * MAXSEGS) /* added and imported spans */
#define MAXREPORTS 8

/* ---- checks ------------------------------------------------------------------ */

static char op_desc[256];
static bool trace;

static void fail(int line, const char *what)
{
	fprintf(stderr, "fuzz_vmem: check failed at line %d: %s\n  during: %s\n", line, what,
	        op_desc);
	abort();
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fail(__LINE__, #cond);                                                     \
	} while (0)

/* ---- the input --------------------------------------------------------------- */

typedef struct reader {
	const uint8_t *p, *end;
} reader_t;

static uint8_t u8(reader_t *r)
{
	return r->p < r->end ? *r->p++ : 0;
}

/* n bytes, little-endian (missing bytes read as 0). */
static uint64_t un(reader_t *r, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)u8(r) << (8 * i);
	return v;
}

/* ---- the model ------------------------------------------------------------------- */

typedef struct mspan {
	uint64_t start, size;
	bool imported;
} mspan_t;

typedef struct mseg {
	uint64_t start, asize, rsize;
	bool x;      /* vmem_xalloc: freed with vmem_xfree */
	bool import; /* a span a child imported: only the child gives it back */
	bool cached; /* served by a quantum cache */
} mseg_t;

enum { IMP_NONE, IMP_PLAIN, IMP_X };

typedef struct marena {
	vmem_t *vmp;
	int parent; /* slot of the source arena, -1 for none */
	uint64_t q;
	bool qc;        /* has quantum caches: the callers'-side model */
	int imp;        /* IMP_*: how it imports */
	uint64_t xgran; /* IMP_X: imports are rounded up to this */
	bool ident;
	bool destroying; /* being destroyed: spans go back with segments in them */
	mspan_t *spans;
	int nspans;
	mseg_t *segs; /* sorted by start */
	int nsegs, ncached;
	uint64_t rotor; /* next fit: where the last next-fit allocation ended */
} marena_t;

static marena_t ar[NSLOT];

typedef struct mreq {
	uint64_t size, rsize, align, phase, nocross, min, last;
	int flags;
	bool x;
	uint64_t max; /* vmem_xalloc's maxaddr (exclusive, 0: none) */
} mreq_t;

/* What one operation did: imports, releases, reports, injected faults. */
typedef struct crossing {
	int child;
	bool release;
	uint64_t addr, size;
} crossing_t;

static crossing_t cross[MAXCROSS];
static int ncross;
static bool import_failed[NSLOT]; /* an import function returned NULL */
static bool import_misfit[NSLOT]; /* a span was refused for its alignment */
static int import_fail_next;      /* imports still to fail on purpose */
static int freeing[NSLOT];        /* inside a vmem_free/vmem_xfree into the slot */
static bool faults_armed;         /* metadata fault injection may fire */
static uint64_t injected_before;
static unsigned dirty; /* slots to compare after the operation */

typedef struct report {
	vmem_error_kind_t kind;
	uintptr_t addr;
	size_t size;
	uint64_t count;
} report_t;

static report_t reports[MAXREPORTS];
static int nreports;

struct fuzz_stats fuzz_stats;

static bool injected(void)
{
	return vmem__fault_map_injected() != injected_before;
}

static void on_report(const vmem_error_info_t *info, void *arg)
{
	(void)arg;
	CHECK(nreports < MAXREPORTS);
	reports[nreports++] =
	    (report_t){info->ve_kind, info->ve_addr, info->ve_size, info->ve_count};
}

static void op_begin(void)
{
	ncross = 0;
	nreports = 0;
	dirty = 0;
	memset(import_failed, 0, sizeof(import_failed));
	memset(import_misfit, 0, sizeof(import_misfit));
	injected_before = vmem__fault_map_injected();
	fuzz_stats.ops++;
	if (trace)
		fprintf(stderr, "op: %s\n", op_desc);
}

static bool cached(const marena_t *A, uint64_t size)
{
	return size - 1 < A->vmp->vm_qcache_max;
}

/*
 * The last address an extent may reach under maxaddr: illumos bounds the
 * caller's [a, a + size), not the rounded extent, so the highest start is
 * the highest quantum multiple t with t + size <= max.  Requests the
 * library refuses anyway keep max - 1.
 */
static uint64_t caller_last(uint64_t q, uint64_t size, uint64_t min, uint64_t max)
{
	u128 t;

	if (max == 0)
		return UINT64_MAX;
	if (max <= min || max - min < size || size == 0 || size > UINT64_MAX - (q - 1))
		return max - 1;
	t = (u128)(max - size) / q * q;
	return (uint64_t)(t + (((u128)size + q - 1) / q * q) - 1);
}

static uint64_t roundq(uint64_t size, uint64_t q)
{
	return (size + q - 1) & ~(q - 1);
}

/* ---- model bookkeeping --------------------------------------------------------- */

static int seg_index(const marena_t *A, uint64_t start)
{
	int lo = 0, hi = A->nsegs;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (A->segs[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int seg_find(const marena_t *A, uint64_t start)
{
	int i = seg_index(A, start);

	return i < A->nsegs && A->segs[i].start == start ? i : -1;
}

/* The held segment whose extent contains addr, or -1. */
static int seg_containing(const marena_t *A, uint64_t addr)
{
	int i = seg_index(A, addr);

	if (i < A->nsegs && A->segs[i].start == addr)
		return i;
	if (i > 0 && (u128)addr < (u128)A->segs[i - 1].start + A->segs[i - 1].rsize)
		return i - 1;
	return -1;
}

static void seg_add(marena_t *A, mseg_t s)
{
	int i = seg_index(A, s.start);

	CHECK(A->nsegs < CAPSEGS);
	memmove(&A->segs[i + 1], &A->segs[i], (size_t)(A->nsegs - i) * sizeof(mseg_t));
	A->segs[i] = s;
	A->nsegs++;
	A->ncached += s.cached;
}

static void seg_del(marena_t *A, int i)
{
	A->ncached -= A->segs[i].cached;
	memmove(&A->segs[i], &A->segs[i + 1], (size_t)(A->nsegs - i - 1) * sizeof(mseg_t));
	A->nsegs--;
}

static void span_add(marena_t *A, uint64_t start, uint64_t size, bool imported)
{
	int i = 0;

	CHECK(A->nspans < CAPSPANS);
	while (i < A->nspans && A->spans[i].start < start)
		i++;
	memmove(&A->spans[i + 1], &A->spans[i], (size_t)(A->nspans - i) * sizeof(mspan_t));
	A->spans[i] = (mspan_t){start, size, imported};
	A->nspans++;
}

static int span_of(const marena_t *A, uint64_t addr)
{
	for (int i = 0; i < A->nspans; i++) {
		if (addr >= A->spans[i].start &&
		    (u128)addr < (u128)A->spans[i].start + A->spans[i].size)
			return i;
	}
	return -1;
}

static bool span_overlaps(const marena_t *A, uint64_t start, uint64_t size)
{
	for (int i = 0; i < A->nspans; i++) {
		u128 s = A->spans[i].start, e = s + A->spans[i].size;

		if ((u128)start < e && s < (u128)start + size)
			return true;
	}
	return false;
}

static bool span_wholly_free(const marena_t *A, int si)
{
	uint64_t s = A->spans[si].start;
	int i = seg_index(A, s);

	return !(i < A->nsegs && (u128)A->segs[i].start < (u128)s + A->spans[si].size);
}

static int root_of(int s)
{
	while (ar[s].parent >= 0)
		s = ar[s].parent;
	return s;
}

/* Does [start, start + size) overlap a span of any arena of slot s's tree? */
static bool tree_overlaps(int s, uint64_t start, uint64_t size)
{
	int root = root_of(s);

	for (int i = 0; i < NSLOT; i++) {
		if (ar[i].vmp != NULL && root_of(i) == root && span_overlaps(&ar[i], start, size))
			return true;
	}
	return false;
}

/* Some arena of slot s's tree holds as much as the model allows. */
static bool tree_full(int s)
{
	int root = root_of(s);

	for (int i = 0; i < NSLOT; i++) {
		if (ar[i].vmp != NULL && root_of(i) == root &&
		    (ar[i].nsegs >= MAXSEGS || ar[i].nspans >= MAXSPANS))
			return true;
	}
	return false;
}

static bool has_children(int s)
{
	for (int i = 0; i < NSLOT; i++) {
		if (ar[i].vmp != NULL && ar[i].parent == s)
			return true;
	}
	return false;
}

/* Free intervals [s, e), maximal within each span, in address order. */
typedef struct fint {
	u128 s, e;
} fint_t;

static fint_t fbuf[CAPSPANS + CAPSEGS + 16];

static int free_intervals(const marena_t *A)
{
	int n = 0, j = 0;

	for (int i = 0; i < A->nspans; i++) {
		u128 s = A->spans[i].start, e = s + A->spans[i].size, cur = s;

		while (j < A->nsegs && A->segs[j].start < s)
			j++;
		for (; j < A->nsegs && (u128)A->segs[j].start < e; j++) {
			if (A->segs[j].start > cur)
				fbuf[n++] = (fint_t){cur, A->segs[j].start};
			cur = (u128)A->segs[j].start + A->segs[j].rsize;
		}
		if (cur < e)
			fbuf[n++] = (fint_t){cur, e};
	}
	return n;
}

/* ---- the reference fit: 128-bit arithmetic and division ------------------------ */

static bool mfit(u128 s, u128 e, const mreq_t *r, bool high, u128 *tp)
{
	u128 lo = s > r->min ? s : r->min;
	u128 hi = e < (u128)r->last + 1 ? e : (u128)r->last + 1;
	u128 A = r->align, P = r->phase, R = r->rsize, N = r->nocross, t, d;

	if (lo >= hi || hi - lo < R)
		return false;
	if (!high) {
		t = lo + (P + A - lo % A) % A;
		if (N && t / N != (t + R - 1) / N)
			t = ((t + R - 1) / N) * N + P;
		if (t + R > hi)
			return false;
	} else {
		t = hi - R;
		d = (t % A + A - P) % A;
		if (d > t - lo)
			return false;
		t -= d;
		if (N && t / N != (t + R - 1) / N) {
			u128 b = ((t + R - 1) / N) * N;

			if (b < lo + R)
				return false;
			t = b - R;
			d = (t % A + A - P) % A;
			if (d > t - lo)
				return false;
			t -= d;
		}
	}
	*tp = t;
	return true;
}

static bool model_can_fit(const marena_t *A, const mreq_t *r)
{
	int n = free_intervals(A);
	u128 t;

	for (int i = 0; i < n; i++) {
		if (mfit(fbuf[i].s, fbuf[i].e, r, false, &t))
			return true;
	}
	return false;
}

/*
 * Constrained searches (docs/design.md, "Decisions"): best, first and next
 * fit examine free segments that might admit the request in policy order;
 * after FIT_PROBES that do not, they settle for the policy's best segment
 * of the guaranteed size -- one that must admit it -- so their cost stays
 * bounded however fragmented the arena.  The model restates the guaranteed
 * size and replays the searches over its free intervals, which are the
 * arena's free segments.
 */
#define FIT_PROBES 16

/* The size that guarantees a fit (0: none, or no better than the exact search). */
static uint64_t settle_size(const marena_t *A, const mreq_t *r)
{
	u128 g = (u128)r->rsize + (r->align - A->q);

	if (r->align == A->q && r->nocross == 0 && r->min == 0 && r->last == UINT64_MAX)
		return 0; /* unconstrained: the first candidate fits */
	if (r->nocross != 0)
		g += (u128)(r->rsize - A->q) + r->phase;
	return g > UINT64_MAX || g <= r->rsize ? 0 : (uint64_t)g;
}

/*
 * First fit upward, as the arena searches: free segments of at least m in
 * address order, from the first ending at or after `from` to the last
 * starting at or before `stop`; after FIT_PROBES misfits, the next segment
 * of at least the guaranteed size, if it admits the request.
 */
static bool scan_up(const marena_t *A, const mreq_t *r, u128 from, u128 stop, u128 *tp)
{
	int n = free_intervals(A), probes = 0;
	uint64_t g = settle_size(A, r);

	for (int i = 0; i < n && fbuf[i].s <= stop; i++) {
		if (fbuf[i].e - fbuf[i].s < r->rsize || fbuf[i].e - 1 < from)
			continue;
		if (mfit(fbuf[i].s, fbuf[i].e, r, false, tp))
			return true;
		if (++probes != FIT_PROBES || g == 0)
			continue;
		for (int j = i + 1; j < n; j++) {
			if (fbuf[j].e - fbuf[j].s < g)
				continue;
			if (fbuf[j].s <= stop && mfit(fbuf[j].s, fbuf[j].e, r, false, tp))
				return true;
			break;
		}
	}
	return false;
}

/* The mirror image (VM_ENDALLOC): downward from the last segment starting in range. */
static bool scan_down(const marena_t *A, const mreq_t *r, u128 *tp)
{
	int n = free_intervals(A), probes = 0;
	uint64_t g = settle_size(A, r);

	for (int i = n - 1; i >= 0 && fbuf[i].e - 1 >= r->min; i--) {
		if (fbuf[i].e - fbuf[i].s < r->rsize || fbuf[i].s > r->last)
			continue;
		if (mfit(fbuf[i].s, fbuf[i].e, r, true, tp))
			return true;
		if (++probes != FIT_PROBES || g == 0)
			continue;
		for (int j = i - 1; j >= 0; j--) {
			if (fbuf[j].e - fbuf[j].s < g)
				continue;
			if (fbuf[j].e - 1 >= r->min && mfit(fbuf[j].s, fbuf[j].e, r, true, tp))
				return true;
			break;
		}
	}
	return false;
}

/*
 * The address the policy must return: 1 and *expect, 0 if the policy is
 * free to choose (instant fit), 2 for best fit (check_best() checks it:
 * ties among the smallest go to the most recently freed, which the model
 * does not know), -1 if nothing fits (a contradiction when the allocation
 * succeeded).
 */
static int model_expect(const marena_t *A, const mreq_t *r, uint64_t *expect)
{
	int policy = r->flags & (VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT);
	bool found = false;
	u128 t = 0;

	if (policy == VM_FIRSTFIT && (r->flags & VM_ENDALLOC)) {
		found = scan_down(A, r, &t);
	} else if (policy == VM_FIRSTFIT) {
		found = scan_up(A, r, r->min, r->last, &t);
	} else if (policy == VM_NEXTFIT) {
		/* from the rotor on; then, wrapping, what starts below it */
		mreq_t ahead = *r;

		if (A->rotor > ahead.min)
			ahead.min = A->rotor;
		if (ahead.min <= ahead.last)
			found = scan_up(A, &ahead, ahead.min, ahead.last, &t);
		if (!found && A->rotor != 0)
			found = scan_up(A, r, r->min,
			                A->rotor - 1 < r->last ? A->rotor - 1 : r->last, &t);
	} else if (policy == VM_BESTFIT) {
		return model_can_fit(A, r) ? 2 : -1;
	} else {
		return 0;
	}
	*expect = (uint64_t)t;
	return found ? 1 : -1;
}

/* The documented EINVAL rules of vmem_alloc/vmem_xalloc, restated. */
static bool mreq_valid(const marena_t *A, const mreq_t *r)
{
	uint64_t q = A->q;
	int policy = r->flags & (VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT);
	const int known = VM_NOSLEEP | VM_PANIC | VM_PUSHPAGE | VM_NORMALPRI | VM_BESTFIT |
	                  VM_FIRSTFIT | VM_NEXTFIT | VM_MEMLOAD | VM_NORELOC | VM_ABORT |
	                  VM_ENDALLOC;

	if ((r->flags & ~known) != 0 || (policy & (policy - 1)) != 0)
		return false;
	if (r->size == 0 || r->size > UINT64_MAX - (q - 1))
		return false;
	if ((r->align | r->phase | r->nocross) % q != 0)
		return false;
	if ((r->align & (r->align - 1)) != 0 || r->phase >= r->align)
		return false;
	if (r->nocross != 0 && (r->nocross & (r->nocross - 1)) != 0)
		return false;
	if (r->nocross != 0 && (r->align > r->nocross || (u128)r->phase + r->rsize > r->nocross))
		return false;
	return r->min <= r->last && (u128)r->last - r->min + 1 >= r->rsize;
}

/* Does a in [a, a + rsize) satisfy r inside a span of A, clear of held segments? */
static void check_placement(const marena_t *A, const mreq_t *r, uint64_t a)
{
	int si = span_of(A, a), i = seg_index(A, a);

	CHECK(si >= 0);
	CHECK((u128)a + r->rsize <= (u128)A->spans[si].start + A->spans[si].size);
	CHECK(a % A->q == 0);
	CHECK(a % r->align == r->phase);
	CHECK(a >= r->min && (u128)a + r->rsize - 1 <= r->last);
	CHECK(r->max == 0 || (u128)a + r->size <= r->max); /* the caller's range */
	if (r->nocross)
		CHECK(a / r->nocross == ((u128)a + r->rsize - 1) / r->nocross);
	if (i > 0)
		CHECK((u128)A->segs[i - 1].start + A->segs[i - 1].rsize <= a);
	if (i < A->nsegs)
		CHECK((u128)a + r->rsize <= A->segs[i].start);
}

/*
 * May an allocation that failed have failed?  Strict arenas: only if the
 * model finds no room, and the arena could not import (address limits, no
 * import function, absurd size) or its import failed.  Arenas with quantum
 * caches: the same, but only when no cached object is held (the caches can
 * then be reaped empty) and the request reaps (not VM_ABORT).  An injected
 * metadata fault excuses any failure.
 */
static bool failure_explained(int s, const mreq_t *r)
{
	const marena_t *A = &ar[s];
	uint64_t aq = A->q;

	if (injected())
		return true;
	if (A->qc && (A->ncached != 0 || (r->flags & VM_ABORT)))
		return true;
	if (model_can_fit(A, r))
		return false;
	if (A->imp == IMP_NONE || r->min != 0 || r->last != UINT64_MAX)
		return true;
	if (A->parent >= 0 && ar[A->parent].q > aq)
		aq = ar[A->parent].q;
	if ((u128)r->rsize + r->align + r->nocross + aq + A->xgran >= (u128)1 << 64)
		return true;
	return import_failed[s] || import_misfit[s];
}

/*
 * A best-fit result, at its segment's lowest (highest with VM_ENDALLOC)
 * admissible address, in a free segment of the smallest size that admits
 * the request -- or, once FIT_PROBES smaller segments may have been tried
 * and failed, in one of the smallest segments of the guaranteed size (the
 * lowest-addressed such one above 1024 quanta, where the size tree orders
 * them by address).
 */
static void check_best(const marena_t *A, const mreq_t *r, uint64_t a)
{
	int n = free_intervals(A), misfits = 0, at = -1, lowest_settle = -1;
	bool high = (r->flags & VM_ENDALLOC) != 0;
	uint64_t g = settle_size(A, r);
	u128 t, smallest = 0, settle = 0;

	for (int i = 0; i < n; i++) {
		u128 sz = fbuf[i].e - fbuf[i].s;

		if (mfit(fbuf[i].s, fbuf[i].e, r, high, &t) && (smallest == 0 || sz < smallest))
			smallest = sz;
		if (g != 0 && sz >= g && (settle == 0 || sz < settle)) {
			settle = sz;
			lowest_settle = i;
		}
		if ((u128)a >= fbuf[i].s && (u128)a < fbuf[i].e)
			at = i;
	}
	for (int i = 0; i < n; i++) {
		u128 sz = fbuf[i].e - fbuf[i].s;

		misfits +=
		    sz >= r->rsize && sz <= smallest && !mfit(fbuf[i].s, fbuf[i].e, r, high, &t);
	}
	CHECK(at >= 0);
	CHECK(mfit(fbuf[at].s, fbuf[at].e, r, high, &t) && (uint64_t)t == a);
	if (fbuf[at].e - fbuf[at].s == smallest)
		return;
	snprintf(
	    op_desc + strlen(op_desc), sizeof(op_desc) - strlen(op_desc),
	    " [best fit took a free segment of %#llx at %#llx; smallest fit %#llx, %d misfits, "
	    "guaranteed-size segment %#llx]",
	    (unsigned long long)(fbuf[at].e - fbuf[at].s), (unsigned long long)fbuf[at].s,
	    (unsigned long long)smallest, misfits, (unsigned long long)settle);
	CHECK(misfits >= FIT_PROBES && settle != 0 && fbuf[at].e - fbuf[at].s == settle);
	CHECK(settle <= (u128)1024 * A->q || at == lowest_settle);
}

static int count_imports(int child)
{
	int n = 0;

	for (int k = 0; k < ncross; k++)
		n += cross[k].child == child && !cross[k].release;
	return n;
}

/*
 * Check one allocation of slot s (the caller's or an import's) and record
 * it.  fits: the model had room before the call; imports0: imports by s
 * before the call.  Returns the address or 0.
 */
static uint64_t check_alloc(int s, const mreq_t *r, void *p, int err, bool fits, int imports0)
{
	marena_t *A = &ar[s];
	uint64_t a = (uint64_t)(uintptr_t)p, expect;
	int must;

	dirty |= 1u << s;
	if (trace)
		fprintf(stderr, "  slot %d: %#llx (errno %d)\n", s, (unsigned long long)a, err);
	if (p == NULL) {
		CHECK(err == ENOMEM);
		CHECK(failure_explained(s, r));
		fuzz_stats.nomem++;
		return 0;
	}
	fuzz_stats.allocs++;
	check_placement(A, r, a);
	if (!A->qc) {
		/* Imports happen only when nothing fitted. */
		if (fits)
			CHECK(count_imports(s) == imports0);
		must = model_expect(A, r, &expect);
		CHECK(must >= 0);
		if (must == 2)
			check_best(A, r, a);
		if (must == 1 && a != expect) {
			snprintf(op_desc + strlen(op_desc), sizeof(op_desc) - strlen(op_desc),
			         " [got %#llx, policy wants %#llx]", (unsigned long long)a,
			         (unsigned long long)expect);
			CHECK(a == expect);
		}
	}
	if (r->flags & VM_NEXTFIT)
		A->rotor = a + r->rsize;
	seg_add(A,
	        (mseg_t){a, r->size, r->rsize, r->x, false, !r->x && A->qc && cached(A, r->size)});
	return a;
}

/* ---- import and release callbacks: the models follow them as they happen ----- */

static void record(int child, bool release, uint64_t addr, uint64_t size)
{
	CHECK(ncross < MAXCROSS);
	cross[ncross++] = (crossing_t){child, release, addr, size};
	if (trace)
		fprintf(stderr, "  %s slot %d [%#llx, +%#llx)\n", release ? "release" : "import",
		        child, (unsigned long long)addr, (unsigned long long)size);
	dirty |= 1u << child | 1u << ar[child].parent;
}

/* The child's source allocated an import: both models take it. */
static void import_done(int child, const mreq_t *r, void *p, int err, bool fits, int imports0)
{
	int src = ar[child].parent;
	uint64_t a = check_alloc(src, r, p, err, fits, imports0);

	if (a == 0) {
		import_failed[child] = true;
		return;
	}
	ar[src].segs[seg_find(&ar[src], a)].import = true;
	span_add(&ar[child], a, r->size, true);
	record(child, false, a, r->size);
	fuzz_stats.imports++;
}

static bool import_refused_on_purpose(int child)
{
	if (import_fail_next <= 0)
		return false;
	import_fail_next--;
	import_failed[child] = true;
	fuzz_stats.import_faults++;
	return true;
}

static void *do_import(int child, vmem_t *src, size_t size, int flags)
{
	marena_t *S = &ar[ar[child].parent];
	mreq_t r = {size, roundq(size, S->q), S->q, 0, 0, 0, UINT64_MAX, flags, false, 0};
	bool fits;
	int imports0 = count_imports(ar[child].parent);
	void *p;

	CHECK(src == S->vmp);
	CHECK(flags & VM_NOSLEEP);
	if (import_refused_on_purpose(child))
		return NULL;
	fits = model_can_fit(S, &r);
	errno = 0;
	p = vmem_alloc(src, size, flags);
	import_done(child, &r, p, errno, fits, imports0);
	return p;
}

static void *do_ximport(int child, vmem_t *src, size_t *sizep, size_t align, int flags)
{
	marena_t *S = &ar[ar[child].parent];
	uint64_t g = ar[child].xgran, size = *sizep;
	mreq_t r;
	bool fits;
	int imports0 = count_imports(ar[child].parent);
	void *p;

	CHECK(src == S->vmp);
	if (import_refused_on_purpose(child))
		return NULL;
	if (size > UINT64_MAX - (g - 1)) {
		import_failed[child] = true;
		return NULL;
	}
	size = roundq(size, g);
	r = (mreq_t){size, roundq(size, S->q), align, 0, 0, 0, UINT64_MAX, flags, true, 0};
	CHECK(mreq_valid(S, &r));
	fits = model_can_fit(S, &r);
	errno = 0;
	p = vmem_xalloc(src, size, align, 0, 0, NULL, NULL, flags);
	import_done(child, &r, p, errno, fits, imports0);
	if (p != NULL)
		*sizep = size;
	return p;
}

static void do_release(int child, vmem_t *src, void *addr, size_t size)
{
	marena_t *C = &ar[child], *S = &ar[C->parent];
	uint64_t a = (uint64_t)(uintptr_t)addr;
	int si = span_of(C, a), pi = seg_find(S, a);
	bool refused = false;

	CHECK(src == S->vmp);
	CHECK(si >= 0 && C->spans[si].start == a && C->spans[si].size == size);
	CHECK(C->spans[si].imported);
	CHECK(C->destroying || span_wholly_free(C, si));
	/*
	 * An import given straight back, not because something was freed in
	 * the child: refused.  Only a misaligned span may be (or any span when
	 * metadata ran out).  Cached arenas may also be reaped meanwhile.
	 */
	for (int k = 0; k < ncross; k++)
		refused |= cross[k].child == child && !cross[k].release && cross[k].addr == a;
	refused = refused && freeing[child] == 0 && !C->destroying;
	if (refused && ((a | size) & (C->q - 1)) != 0)
		import_misfit[child] = true;
	else if (refused && !C->qc)
		CHECK(injected());
	memmove(&C->spans[si], &C->spans[si + 1], (size_t)(C->nspans - si - 1) * sizeof(mspan_t));
	C->nspans--;
	CHECK(pi >= 0 && S->segs[pi].import && S->segs[pi].asize == size);
	seg_del(S, pi);
	record(child, true, a, size);
	fuzz_stats.releases++;
	freeing[C->parent]++;
	if (C->imp == IMP_X)
		vmem_xfree(src, addr, size);
	else
		vmem_free(src, addr, size);
	freeing[C->parent]--;
}

/* One callback of each kind per slot: the callbacks are told the source, not the child. */
#define SLOT_CALLBACKS(n)                                                                          \
	static void *import_##n(vmem_t *src, size_t size, int flags)                               \
	{                                                                                          \
		return do_import(n, src, size, flags);                                             \
	}                                                                                          \
	static void *ximport_##n(vmem_t *src, size_t *sizep, size_t align, int flags)              \
	{                                                                                          \
		return do_ximport(n, src, sizep, align, flags);                                    \
	}                                                                                          \
	static void release_##n(vmem_t *src, void *addr, size_t size)                              \
	{                                                                                          \
		do_release(n, src, addr, size);                                                    \
	}
SLOT_CALLBACKS(0)
SLOT_CALLBACKS(1)
SLOT_CALLBACKS(2)
SLOT_CALLBACKS(3)
SLOT_CALLBACKS(4)
SLOT_CALLBACKS(5)

static vmem_alloc_t *const import_fn[NSLOT] = {import_0, import_1, import_2,
                                               import_3, import_4, import_5};
static vmem_ximport_t *const ximport_fn[NSLOT] = {ximport_0, ximport_1, ximport_2,
                                                  ximport_3, ximport_4, ximport_5};
static vmem_free_t *const release_fn[NSLOT] = {release_0, release_1, release_2,
                                               release_3, release_4, release_5};

/* ---- comparing arenas with their models ---------------------------------------- */

typedef struct piece {
	uint64_t addr, size;
} piece_t;

typedef struct walk {
	int n;
	piece_t p[4 * (CAPSPANS + CAPSEGS)];
} walk_t;

static walk_t wk;

static void walk_rec(void *arg, void *addr, size_t size)
{
	walk_t *w = arg;

	CHECK(w->n < (int)(sizeof(w->p) / sizeof(w->p[0])));
	w->p[w->n++] = (piece_t){(uint64_t)(uintptr_t)addr, size};
}

static void do_walk(const marena_t *A, int mask)
{
	wk.n = 0;
	vmem_walk(A->vmp, mask, walk_rec, &wk);
}

static void check_verify(const marena_t *A)
{
	const char *why = NULL;

	if (!vmem__verify(A->vmp, &why)) {
		snprintf(op_desc + strlen(op_desc), sizeof(op_desc) - strlen(op_desc), " [%s]",
		         why);
		CHECK(!"arena inconsistent");
	}
}

static uint64_t span_total(const marena_t *A, bool imported_only)
{
	uint64_t t = 0;

	for (int i = 0; i < A->nspans; i++)
		t += imported_only && !A->spans[i].imported ? 0 : A->spans[i].size;
	return t;
}

static void check_kstat(const marena_t *A)
{
	vmem_kstat_t ks;

	CHECK(vmem_kstat(A->vmp, &ks) == 0);
	CHECK(ks.vk_mem_total == span_total(A, false));
	CHECK(ks.vk_mem_import == span_total(A, true));
	CHECK(vmem_size(A->vmp, VMEM_SPAN) == ks.vk_mem_total);
	CHECK(vmem_size(A->vmp, VMEM_ALLOC | VMEM_FREE) == ks.vk_mem_total);
	CHECK(vmem_size(A->vmp, 0) == 0);
}

/* A strict arena, exactly: walks of every kind, sizes, counters. */
static void compare_strict(const marena_t *A)
{
	uint64_t inuse = 0, total = span_total(A, false);
	int n;
	vmem_kstat_t ks;

	check_verify(A);
	do_walk(A, VMEM_ALLOC);
	CHECK(wk.n == A->nsegs);
	for (int i = 0; i < A->nsegs; i++) {
		CHECK(wk.p[i].addr == A->segs[i].start && wk.p[i].size == A->segs[i].asize);
		inuse += A->segs[i].asize;
	}
	do_walk(A, VMEM_FREE);
	n = free_intervals(A);
	CHECK(wk.n == n);
	for (int i = 0; i < n; i++)
		CHECK(wk.p[i].addr == (uint64_t)fbuf[i].s &&
		      wk.p[i].size == (uint64_t)(fbuf[i].e - fbuf[i].s));
	do_walk(A, VMEM_SPAN);
	CHECK(wk.n == A->nspans);
	for (int i = 0; i < A->nspans; i++)
		CHECK(wk.p[i].addr == A->spans[i].start && wk.p[i].size == A->spans[i].size);
	CHECK(vmem_size(A->vmp, VMEM_ALLOC) == inuse);
	CHECK(vmem_size(A->vmp, VMEM_FREE) == total - inuse);
	check_kstat(A);
	CHECK(vmem_kstat(A->vmp, &ks) == 0 && ks.vk_mem_inuse == inuse);
}

/*
 * An imported span leaves the moment it is wholly free.  The model's spans
 * follow the library's through the crossings, so this needs the model only
 * and is cheap enough for every operation.
 */
static void check_no_idle_import(const marena_t *A)
{
	for (int i = 0; i < A->nspans; i++)
		CHECK(!A->spans[i].imported || A->vmp->vm_release == NULL ||
		      !span_wholly_free(A, i));
}

/* Callers' view of a cached arena, without disturbing its caches. */
static void compare_cached_light(const marena_t *A)
{
	uint64_t lo = 0, hi = 0, size = vmem_size(A->vmp, VMEM_ALLOC);

	check_verify(A);
	check_kstat(A);
	for (int i = 0; i < A->nsegs; i++) {
		lo += A->segs[i].asize;
		hi += A->segs[i].cached ? A->segs[i].rsize : A->segs[i].asize;
	}
	/* Objects held count their exact or their rounded size (slab objects). */
	CHECK(size >= lo && size <= hi);
}

/*
 * Callers' view of a cached arena, walked (the walk empties the
 * magazines): after each span marker, the pieces tile the span exactly
 * (allocated pieces by their rounded size), and the allocated pieces are
 * exactly the held segments, reported with their exact or (slab objects)
 * rounded size.
 */
static void compare_cached_walk(const marena_t *A, int reentrant)
{
	uint64_t alloc_total = 0;
	u128 cur = 0, end = 0;
	int si = -1, k = 0;
	bool in_span = false;

	compare_cached_light(A);
	do_walk(A, VMEM_ALLOC | VMEM_FREE | VMEM_SPAN | reentrant);
	for (int i = 0; i < wk.n; i++) {
		const piece_t *p = &wk.p[i];

		if (!in_span) {
			si++;
			CHECK(si < A->nspans && A->spans[si].start == p->addr &&
			      A->spans[si].size == p->size);
			cur = p->addr;
			end = (u128)p->addr + p->size;
			in_span = true;
			continue;
		}
		CHECK(p->addr == cur && p->size > 0 && (u128)p->addr + p->size <= end);
		if (k < A->nsegs && A->segs[k].start == p->addr) {
			const mseg_t *g = &A->segs[k++];

			CHECK(p->size == g->asize || (g->cached && p->size == g->rsize));
			alloc_total += p->size;
			cur += g->rsize;
		} else {
			CHECK(p->size % A->q == 0);
			cur += p->size;
		}
		CHECK(cur <= end);
		in_span = cur != end;
	}
	CHECK(!in_span && k == A->nsegs && si == A->nspans - 1);
	/* The allocated pieces alone: the held segments, nothing else. */
	do_walk(A, VMEM_ALLOC);
	CHECK(wk.n == A->nsegs);
	for (int i = 0; i < wk.n; i++)
		CHECK(wk.p[i].addr == A->segs[i].start);
	CHECK(vmem_size(A->vmp, VMEM_ALLOC) == alloc_total);
}

/*
 * Compare the arenas the operation touched.  Comparing costs time linear in
 * the arena, so large arenas are compared on every 8th operation only (and
 * always at the end of the input): a divergence is still caught, a few
 * operations later, and the fuzzer runs several times faster.
 */
static void compare_dirty(void)
{
	static unsigned opno;

	opno++;
	for (int s = 0; s < NSLOT; s++) {
		if (ar[s].vmp == NULL || !(dirty & (1u << s)))
			continue;
		if (!ar[s].qc)
			check_no_idle_import(&ar[s]);
		if (ar[s].nsegs + ar[s].nspans > 48 && opno % 8 != 0)
			continue;
		if (ar[s].qc)
			compare_cached_light(&ar[s]);
		else
			compare_strict(&ar[s]);
	}
}

static void expect_no_report(void)
{
	CHECK(nreports == 0);
}

/* ---- decoding helpers ------------------------------------------------------------ */

/* A live slot chosen by the input, or -1 if there is none. */
static int pick_slot(reader_t *r)
{
	int s = u8(r) % NSLOT;

	for (int i = 0; i < NSLOT; i++) {
		int t = (s + i) % NSLOT;

		if (ar[t].vmp != NULL)
			return t;
	}
	return -1;
}

static uint64_t pick_size(reader_t *r, uint64_t q)
{
	uint8_t sel = u8(r), k;

	switch (sel & 7) {
	case 0:
		return 1 + u8(r); /* small, rarely a quantum multiple */
	case 1:
		return q << (u8(r) % 24);
	case 2:
		return q * (1 + un(r, 2));
	case 3:
		k = u8(r);
		if (k < 16)
			return 0 - (uint64_t)k; /* too large to round, or to fit */
		if (k < 32)
			return (uint64_t)1 << (32 + k % 32);
		return k < 48 ? 0 : un(r, 8);
	default:
		return q * (1 + (sel >> 3)); /* 1 to 32 quanta */
	}
}

/* An address near the spans of A, or anywhere. */
static uint64_t pick_addr(reader_t *r, const marena_t *A)
{
	uint8_t sel = u8(r);
	const mspan_t *s;
	uint64_t off, a;

	switch (sel & 7) {
	case 0:
		return un(r, 8);
	case 1:
		return un(r, 2) << 12;
	case 2:
		return 0 - (un(r, 2) << 12); /* near the top of the address space */
	case 3:
		return ((uint64_t)1 << 63) - (un(r, 2) << 12);
	default:
		if (A == NULL || A->nspans == 0)
			return un(r, 3) << 8;
		s = &A->spans[u8(r) % A->nspans];
		off = un(r, 3) % (s->size + 4 * A->q);
		a = s->start + off - 2 * A->q;
		return (sel & 8) ? a : a & ~(A->q - 1);
	}
}

static int pick_flags(reader_t *r)
{
	static const int policy[8] = {0,           0,          0,          VM_BESTFIT,
	                              VM_FIRSTFIT, VM_NEXTFIT, VM_BESTFIT, VM_FIRSTFIT};
	static const int junk[4] = {VM_BESTFIT | VM_FIRSTFIT, 0x10000,
	                            VM_PUSHPAGE | VM_NORMALPRI | VM_MEMLOAD | VM_NORELOC,
	                            VM_NEXTFIT | VM_BESTFIT};
	uint8_t b = u8(r);
	int f = VM_NOSLEEP | policy[b & 7];

	if (b & 0x08)
		f |= VM_ENDALLOC;
	if ((b & 0x30) == 0x30)
		f |= VM_ABORT;
	if ((b & 0xC0) == 0xC0)
		f |= junk[u8(r) & 3];
	return f;
}

/*
 * VM_SLEEP only where the call cannot block: VM_ABORT, or a strict arena
 * with room already and no fault injection armed.
 */
static int maybe_sleep(reader_t *r, const marena_t *A, const mreq_t *req, bool valid)
{
	int f = req->flags;

	if (!(u8(r) & 1))
		return f;
	if ((f & VM_ABORT) ||
	    (valid && !A->qc && !faults_armed && import_fail_next == 0 && model_can_fit(A, req)))
		f &= ~VM_NOSLEEP;
	return f;
}

/* ---- operations ------------------------------------------------------------------- */

static void op_create(reader_t *r)
{
	static const uint64_t quanta[8] = {1, 2, 16, 64, 4096, 4096, 1 << 16, 8};
	int s = -1, kind = u8(r) & 3, parent = -1, cflags, vmflag;
	uint8_t qsel = u8(r), csel = u8(r), qm = u8(r);
	uint64_t q, base = 0, size = 0, qcache_max = 0, xgran = 0;
	const char *name = "fuzz";
	bool valid;
	vmem_t *vmp;
	marena_t *A;

	for (int i = 0; i < NSLOT && s < 0; i++)
		s = ar[i].vmp == NULL ? i : -1;
	if (s < 0)
		return;
	if (kind >= 2)
		parent = pick_slot(r);
	if (parent < 0)
		kind &= 1;
	if (parent >= 0) {
		int shift = (int)(qsel % 5) - 2; /* the source's quantum, shifted -2 .. +2 */

		q = shift < 0 ? ar[parent].q >> -shift : ar[parent].q << shift;
		if (q == 0)
			q = 1;
	} else {
		q = quanta[qsel & 7];
	}
	if ((qsel & 0xF8) == 0xF8)
		q = (qsel & 1) ? 0 : 3 * q; /* not a power of two */
	if (qm & 1)
		qcache_max = q * (1 + (qm >> 1) % 20);
	cflags = (csel & 1 ? VMC_NO_QCACHE : 0) | (csel & 2 ? VMC_IDENTIFIER : 0) |
	         (csel & 4 ? VMC_XALIGN : 0) | (csel & 8 ? VMC_DUMPSAFE | VMC_POPULATOR : 0);
	if ((csel & 0x70) == 0x70)
		cflags |= 0x01000000; /* unknown */
	if (csel == 0xFF)
		name = NULL;
	vmflag = cflags | (csel & 0x80 ? VM_NOSLEEP : VM_SLEEP);
	if (kind == 0 || (kind >= 2 && (u8(r) & 7) == 0)) {
		base = pick_addr(r, parent >= 0 ? &ar[parent] : NULL);
		size = pick_size(r, q > 0 ? q : 1);
		if (q > 1 && (qsel & 0x18) != 0x18) {
			base &= ~(q - 1);
			size = roundq(size, q);
		}
	}
	if (kind == 3)
		xgran = (parent >= 0 ? ar[parent].q : 1) << (u8(r) % 6);
	valid = name != NULL && q != 0 && (q & (q - 1)) == 0 &&
	        (cflags & ~(VMC_POPULATOR | VMC_NO_QCACHE | VMC_IDENTIFIER | VMC_XALIGN |
	                    VMC_DUMPSAFE)) == 0;
	if (base != 0 || size != 0)
		valid = valid && base != 0 && size != 0 && ((base | size) & (q - 1)) == 0 &&
		        size - 1 <= UINT64_MAX - base;
	if (parent >= 0 && (cflags & VMC_IDENTIFIER) &&
	    !(ar[parent].vmp->vm_cflags & VMC_IDENTIFIER))
		valid = false;
	/* A child's own span must stay clear of its tree, or imports could collide. */
	if (valid && parent >= 0 && size != 0 && tree_overlaps(parent, base, size))
		base = size = 0;
	snprintf(op_desc, sizeof(op_desc),
	         "create slot %d kind %d parent %d base %#llx size %#llx q %#llx qcache_max "
	         "%#llx flags %#x",
	         s, kind, parent, (unsigned long long)base, (unsigned long long)size,
	         (unsigned long long)q, (unsigned long long)qcache_max, vmflag);
	op_begin();
	errno = 0;
	if (kind == 3)
		vmp = vmem_xcreate(name, (void *)(uintptr_t)base, size, q, ximport_fn[s],
		                   release_fn[s], ar[parent].vmp, qcache_max, vmflag);
	else
		vmp = vmem_create(name, (void *)(uintptr_t)base, size, q,
		                  kind == 2 ? import_fn[s] : NULL, kind == 2 ? release_fn[s] : NULL,
		                  parent >= 0 ? ar[parent].vmp : NULL, qcache_max, vmflag);
	expect_no_report();
	if (!valid) {
		CHECK(vmp == NULL && errno == EINVAL);
		fuzz_stats.einval++;
		return;
	}
	if (vmp == NULL) {
		CHECK(errno == ENOMEM && injected());
		return;
	}
	fuzz_stats.creates++;
	A = &ar[s];
	memset(A, 0, sizeof(*A));
	A->vmp = vmp;
	A->parent = kind >= 2 ? parent : -1;
	A->q = q;
	A->qc = vmp->vm_nqcache != 0;
	A->imp = kind == 3 ? IMP_X : kind == 2 ? IMP_PLAIN : IMP_NONE;
	A->xgran = xgran;
	A->ident = (cflags & VMC_IDENTIFIER) != 0;
	A->spans = malloc(CAPSPANS * sizeof(mspan_t));
	A->segs = malloc(CAPSEGS * sizeof(mseg_t));
	if (size != 0)
		span_add(A, base, size, false);
	CHECK(strcmp(vmem_name(vmp), name) == 0);
	dirty = 1u << s;
}

static void op_add(reader_t *r)
{
	int s = pick_slot(r), flags;
	marena_t *A;
	uint64_t addr, size;
	bool valid;
	void *p;

	if (s < 0)
		return;
	A = &ar[s];
	addr = pick_addr(r, A);
	size = pick_size(r, A->q);
	flags = (u8(r) & 1) || faults_armed ? VM_NOSLEEP : VM_SLEEP;
	if ((addr & 0xF00) == 0xF00)
		flags |= (addr & 0x1000) ? VM_BESTFIT : 0x20000; /* a fit flag, or unknown */
	else
		addr &= ~(A->q - 1);
	valid = addr != 0 && size != 0 && ((addr | size) & (A->q - 1)) == 0 &&
	        size - 1 <= UINT64_MAX - addr && !span_overlaps(A, addr, size) &&
	        (flags & (VM_BESTFIT | 0x20000)) == 0;
	if (valid && (tree_overlaps(s, addr, size) || A->nspans >= MAXSPANS))
		return;
	snprintf(op_desc, sizeof(op_desc), "add slot %d [%#llx, +%#llx) flags %#x", s,
	         (unsigned long long)addr, (unsigned long long)size, flags);
	op_begin();
	dirty = 1u << s;
	errno = 0;
	p = vmem_add(A->vmp, (void *)(uintptr_t)addr, size, flags);
	expect_no_report();
	if (!valid) {
		CHECK(p == NULL && errno == EINVAL);
		fuzz_stats.einval++;
	} else if (p == NULL) {
		CHECK(errno == ENOMEM && injected());
	} else {
		CHECK(p == (void *)(uintptr_t)addr);
		span_add(A, addr, size, false);
	}
}

/*
 * An address range at the edges of a free gap, give or take a unit: where
 * off-by-one errors in the fit live.  maxaddr 0 means no limit.
 */
static void gap_range(reader_t *r, const marena_t *A, mreq_t *q, uint64_t *maxaddr)
{
	int n = free_intervals(A);
	uint8_t d = u8(r);
	u128 lo, hi, max;

	if (n == 0)
		return;
	lo = fbuf[u8(r) % n].s;
	hi = fbuf[u8(r) % n].e;
	q->min = (uint64_t)lo + (uint64_t)(d & 3) % 3 - 1; /* lo - 1, lo, lo + 1 */
	switch ((d >> 2) & 3) {
	case 0:
		max = lo + 1;
		break;
	case 1:
		max = lo + q->rsize;
		break;
	case 2:
		max = hi;
		break;
	default:
		max = hi - q->rsize;
		break;
	}
	max += (uint64_t)(d >> 4) % 3 - 1; /* give or take one */
	*maxaddr = (uint64_t)max;          /* 2^64 wraps to 0: no limit */
}

/* The constraints of an xalloc request, decoded: often valid, sometimes not. */
static void pick_constraints(reader_t *r, const marena_t *A, mreq_t *q, uint64_t *maxaddr)
{
	uint8_t a = u8(r), n = u8(r), m = u8(r);

	q->align = (a & 3) == 0 ? 0 : (a & 3) == 3 && (a & 4) ? un(r, 8) : A->q << (a >> 3) % 24;
	if (q->align != 0 && (a & 0x80) == 0 && q->align >= A->q)
		q->phase = (un(r, 2) % (q->align / A->q)) * A->q;
	else if (a & 0x80)
		q->phase = un(r, 2) * (a & 0x40 ? 1 : A->q);
	if (n & 1) {
		/* a power of two the request can live with, perhaps larger */
		uint64_t need = q->phase + q->rsize, lo = q->align ? q->align : A->q;

		if (need > lo)
			lo = need;
		if (lo <= ((uint64_t)1 << 60)) {
			q->nocross = (uint64_t)1 << (64 - __builtin_clzll(lo - 1 ? lo - 1 : 1));
			q->nocross <<= (n >> 1) % 4;
		}
	} else if ((n & 6) == 6) {
		q->nocross = (n & 8) ? un(r, 8) : q->rsize / 2; /* arbitrary, or too small */
	}
	*maxaddr = 0;
	if ((m & 0x31) == 0x31) {
		gap_range(r, A, q, maxaddr);
	} else if (m & 1) {
		q->min = pick_addr(r, A);
		if (m & 2)
			*maxaddr =
			    q->min + (m & 4 ? un(r, 3) : roundq(q->rsize, A->q) * (1 + m % 8));
		if (m & 8)
			*maxaddr = pick_addr(r, A);
	}
	q->max = *maxaddr;
	q->last = caller_last(A->q, q->size, q->min, *maxaddr);
}

static void op_alloc(reader_t *r, bool x)
{
	int s = pick_slot(r), imports0;
	marena_t *A;
	mreq_t q;
	uint64_t maxaddr = 0;
	bool valid, fits;
	void *p;
	int err;

	if (s < 0)
		return;
	A = &ar[s];
	memset(&q, 0, sizeof(q));
	q.size = pick_size(r, A->q);
	q.rsize = roundq(q.size, A->q);
	q.flags = pick_flags(r);
	q.last = UINT64_MAX;
	q.x = x;
	if (x)
		pick_constraints(r, A, &q, &maxaddr);
	{
		mreq_t eff = q; /* align 0 means the quantum */

		if (eff.align == 0)
			eff.align = A->q;
		valid = mreq_valid(A, &eff) && q.size <= UINT64_MAX - (A->q - 1);
		if (valid)
			q = eff;
		else
			q.align = eff.align;
	}
	if (!x)
		q.align = A->q;
	if (valid && tree_full(s))
		return;
	q.flags = maybe_sleep(r, A, &q, valid);
	snprintf(op_desc, sizeof(op_desc),
	         "%s slot %d size %#llx align %#llx phase %#llx nocross %#llx min %#llx max "
	         "%#llx flags %#x",
	         x ? "xalloc" : "alloc", s, (unsigned long long)q.size, (unsigned long long)q.align,
	         (unsigned long long)q.phase, (unsigned long long)q.nocross,
	         (unsigned long long)q.min, (unsigned long long)maxaddr, q.flags);
	op_begin();
	dirty = 1u << s;
	fits = valid && model_can_fit(A, &q);
	imports0 = count_imports(s);
	errno = 0;
	if (x)
		p = vmem_xalloc(A->vmp, q.size, q.align, q.phase, q.nocross,
		                (void *)(uintptr_t)q.min, (void *)(uintptr_t)maxaddr, q.flags);
	else
		p = vmem_alloc(A->vmp, q.size, q.flags);
	err = errno;
	expect_no_report();
	if (!valid) {
		CHECK(p == NULL && err == EINVAL && ncross == 0);
		fuzz_stats.einval++;
		return;
	}
	if (!(q.flags & (VM_NOSLEEP | VM_ABORT)))
		CHECK(p != NULL);
	(void)check_alloc(s, &q, p, err, fits, imports0);
}

/* A held segment of A that the caller may free (not a child's import), or -1. */
static int pick_held(reader_t *r, const marena_t *A)
{
	int i;

	if (A->nsegs == 0)
		return -1;
	i = (int)(un(r, 2) % (uint64_t)A->nsegs);
	for (int k = 0; k < A->nsegs; k++, i = (i + 1) % A->nsegs) {
		if (!A->segs[i].import)
			return i;
	}
	return -1;
}

/* Recently freed segments, for double frees. */
typedef struct freed_seg {
	int slot;
	uint64_t addr, size;
} freed_seg_t;

static freed_seg_t freed[8];
static int nfreed;

static void free_seg(int s, int i, bool use_xfree)
{
	marena_t *A = &ar[s];
	mseg_t g = A->segs[i];

	seg_del(A, i);
	freed[nfreed++ % 8] = (freed_seg_t){s, g.start, g.asize};
	fuzz_stats.frees++;
	dirty |= 1u << s;
	/*
	 * A cached size must be freed the way it was allocated (vmem_xfree for
	 * vmem_xalloc, vmem_free for vmem_alloc); other sizes either way.
	 */
	if (A->qc && cached(A, g.asize))
		use_xfree = g.x;
	if (g.x && vmem_debug_enabled())
		use_xfree = true; /* the debug library refuses vmem_free of them */
	freeing[s]++;
	if (use_xfree)
		vmem_xfree(A->vmp, (void *)(uintptr_t)g.start, g.asize);
	else
		vmem_free(A->vmp, (void *)(uintptr_t)g.start, g.asize);
	freeing[s]--;
}

static void op_free(reader_t *r)
{
	int s = pick_slot(r), i, n;
	uint8_t b;

	if (s < 0)
		return;
	b = u8(r);
	n = b & 0x80 ? 1 + (b & 15) : 1; /* sometimes a burst */
	for (int k = 0; k < n; k++) {
		i = pick_held(r, &ar[s]);
		if (i < 0)
			return;
		snprintf(op_desc, sizeof(op_desc), "free slot %d %#llx size %#llx%s", s,
		         (unsigned long long)ar[s].segs[i].start,
		         (unsigned long long)ar[s].segs[i].asize, ar[s].segs[i].x ? " (x)" : "");
		op_begin();
		free_seg(s, i, (b & 0x40) != 0);
		expect_no_report();
		compare_dirty();
	}
}

#define K(kind) (1u << (kind))
/* Any refused free: where quantum caches hide slabs, only the count is certain. */
#define ANY_FREE_KIND                                                                              \
	(K(VMEM_ERR_BAD_FREE) | K(VMEM_ERR_DOUBLE_FREE) | K(VMEM_ERR_INTERIOR_FREE) |              \
	 K(VMEM_ERR_SIZE_MISMATCH) | K(VMEM_ERR_WRONG_ARENA) | K(VMEM_ERR_FREE_XALLOC) |           \
	 K(VMEM_ERR_XFREE_CACHED))

static uint64_t slab_size(const marena_t *A)
{
	return A->qc ? A->vmp->vm_qcache[0]->qc_slabsize : 0;
}

/* The report a refused free of (a, size) in a cached arena may produce; 0: do not try. */
static unsigned bad_free_kinds_cached(const marena_t *A, uint64_t a, uint64_t size, bool xfree)
{
	bool debug = vmem_debug_enabled();
	int i = seg_find(A, a);

	/*
	 * The fast library does not check frees of cached sizes (documented):
	 * a vmem_free goes into a magazine unchecked, and a vmem_xfree of an
	 * object sitting in a magazine, when the cache served it straight from
	 * the arena, frees it under the magazine.  And a free of a slab's own
	 * address and size would free the slab.  No library can see those.
	 */
	if ((cached(A, size) && !debug) || size == slab_size(A))
		return 0;
	if (i >= 0 && A->segs[i].asize == size)
		return debug && A->segs[i].x && !xfree ? ANY_FREE_KIND : 0;
	/*
	 * vmem_xfree of a cached object with its rounded size: when the cache
	 * served it straight from the arena the segment matches and is freed,
	 * unreported (a known gap: docs/reliability.md, "Findings").
	 */
	if (i >= 0 && xfree && A->segs[i].cached && A->segs[i].rsize == size)
		return 0;
	/* A cached free goes by size class: same class, same object, a real free. */
	if (i >= 0 && !xfree && cached(A, size) && A->segs[i].cached &&
	    A->segs[i].rsize == roundq(size, A->q))
		return 0;
	return ANY_FREE_KIND;
}

/*
 * The report a refused free of (a, size) in slot s must produce, as a set
 * of acceptable kinds; 0 if the free would be a real one (or, in a cached
 * arena, one the library cannot tell from a real one).
 */
static unsigned bad_free_kinds(int s, uint64_t a, uint64_t size, bool xfree)
{
	const marena_t *A = &ar[s];
	int i = seg_find(A, a);
	unsigned k;

	if (A->qc)
		return bad_free_kinds_cached(A, a, size, xfree);
	if (i >= 0 && A->segs[i].asize == size)
		/* the debug library insists on vmem_xfree for vmem_xalloc segments */
		return vmem_debug_enabled() && A->segs[i].x && !xfree ? K(VMEM_ERR_FREE_XALLOC) : 0;
	if (i >= 0)
		return K(VMEM_ERR_SIZE_MISMATCH);
	if (seg_containing(A, a) >= 0)
		return K(VMEM_ERR_INTERIOR_FREE);
	k = K(VMEM_ERR_BAD_FREE) | K(VMEM_ERR_DOUBLE_FREE);
	if (span_of(A, a) >= 0)
		return k;
	/* Outside our spans: another arena's segment, if one starts there. */
	for (int t = 0; t < NSLOT; t++) {
		int j;

		if (t == s || ar[t].vmp == NULL)
			continue;
		j = seg_find(&ar[t], a);
		if (j >= 0 && !(ar[t].qc && ar[t].segs[j].cached))
			return K(VMEM_ERR_WRONG_ARENA);
		if (j >= 0 || (ar[t].qc && span_of(&ar[t], a) >= 0))
			k |= K(VMEM_ERR_WRONG_ARENA); /* a slab may start there, or not */
	}
	return k;
}

static void op_bad_free(reader_t *r)
{
	int s = pick_slot(r), i;
	uint8_t how;
	marena_t *A;
	uint64_t a, size;
	unsigned kinds;

	if (s < 0)
		return;
	A = &ar[s];
	how = u8(r);
	size = pick_size(r, A->q);
	switch (how & 7) {
	case 0: /* a held segment, the wrong size */
	case 1:
		if ((i = seg_containing(A, pick_addr(r, A))) < 0 && A->nsegs == 0)
			return;
		i = i >= 0 ? i : (int)(un(r, 2) % (uint64_t)A->nsegs);
		a = A->segs[i].start;
		if (size == A->segs[i].asize)
			size += A->q;
		break;
	case 2: /* inside a held segment */
		if (A->nsegs == 0)
			return;
		i = (int)(un(r, 2) % (uint64_t)A->nsegs);
		if (A->segs[i].rsize < 2)
			return;
		a = A->segs[i].start + 1 + un(r, 8) % (A->segs[i].rsize - 1);
		break;
	case 3: /* freed already */
		if (nfreed == 0)
			return;
		i = (int)(u8(r) % (nfreed < 8 ? nfreed : 8));
		if (freed[i].slot != s || ar[s].vmp == NULL)
			return;
		a = freed[i].addr;
		size = freed[i].size;
		break;
	case 4: { /* held in another arena */
		int t = pick_slot(r);

		if (t < 0 || ar[t].nsegs == 0)
			return;
		a = ar[t].segs[un(r, 2) % (uint64_t)ar[t].nsegs].start;
		break;
	}
	default:
		a = pick_addr(r, A);
		break;
	}
	kinds = bad_free_kinds(s, a, size, (how & 8) != 0);
	if (kinds == 0)
		return;
	snprintf(op_desc, sizeof(op_desc), "bad %s slot %d %#llx size %#llx (kinds %#x)",
	         how & 8 ? "xfree" : "free", s, (unsigned long long)a, (unsigned long long)size,
	         kinds);
	op_begin();
	dirty = 1u << s;
	if (how & 8)
		vmem_xfree(A->vmp, (void *)(uintptr_t)a, size);
	else
		vmem_free(A->vmp, (void *)(uintptr_t)a, size);
	fuzz_stats.badfrees++;
	CHECK(nreports == 1);
	CHECK(reports[0].kind > 0 && reports[0].kind < 32 && (kinds & (1u << reports[0].kind)));
	CHECK(reports[0].addr == a && (A->qc || reports[0].size == size));
	CHECK(ncross == 0);
}

/* An (address, size) for vmem_contains: often right at a span's or a segment's edge. */
static void pick_range(reader_t *r, const marena_t *A, uint64_t *ap, uint64_t *sizep)
{
	uint8_t b = u8(r);
	uint64_t delta = (uint64_t)(b >> 4) % 3 - 1; /* -1, 0 or +1 */

	*ap = pick_addr(r, A);
	switch (b & 3) {
	case 0:
		*sizep = b & 4 ? un(r, 8) : un(r, 2);
		break;
	case 1: /* up to the end of a span */
		if (A->nspans > 0) {
			const mspan_t *s = &A->spans[u8(r) % A->nspans];

			*ap = s->start + un(r, 3) % s->size;
			*sizep = s->start + (s->size - 1) - *ap + 1 + delta;
			break;
		}
		/* fall through */
	case 2: /* a held segment, give or take one */
		if (A->nsegs > 0) {
			const mseg_t *g = &A->segs[un(r, 2) % (uint64_t)A->nsegs];

			*ap = g->start;
			*sizep = g->rsize + delta;
			break;
		}
		/* fall through */
	default:
		*sizep = 0;
		break;
	}
}

static void op_contains(reader_t *r)
{
	int s = pick_slot(r), expect = 0;
	const marena_t *A;
	uint64_t a, size;

	if (s < 0)
		return;
	A = &ar[s];
	pick_range(r, A, &a, &size);
	for (int i = 0; i < A->nspans; i++) {
		u128 st = A->spans[i].start, e = st + A->spans[i].size;

		if (a >= st && a < e && (size == 0 || (u128)a + size <= e))
			expect = 1;
	}
	snprintf(op_desc, sizeof(op_desc), "contains slot %d %#llx size %#llx", s,
	         (unsigned long long)a, (unsigned long long)size);
	op_begin();
	CHECK((vmem_contains(A->vmp, (void *)(uintptr_t)a, size) != 0) == expect);
}

/* A walk of a chosen kind, checked piece by piece against the model. */
static void op_walk(reader_t *r)
{
	int s = pick_slot(r), mask, k = 0, n, fi = 0;
	const marena_t *A;
	uint8_t b;

	if (s < 0)
		return;
	A = &ar[s];
	b = u8(r);
	mask = (b & 7) == 0 ? VMEM_ALLOC
	                    : ((b & 1) ? VMEM_ALLOC : 0) | ((b & 2) ? VMEM_FREE : 0) |
	                          ((b & 4) ? VMEM_SPAN : 0);
	if (b & 8)
		mask |= VMEM_REENTRANT;
	snprintf(op_desc, sizeof(op_desc), "walk slot %d mask %#x", s, mask);
	op_begin();
	dirty = 1u << s;
	if (A->qc) {
		compare_cached_walk(A, mask & VMEM_REENTRANT);
		return;
	}
	do_walk(A, mask);
	/* The expected sequence: each span, then its segments and gaps in address order. */
	n = free_intervals(A);
	for (int si = 0; si < A->nspans; si++) {
		u128 e = (u128)A->spans[si].start + A->spans[si].size;
		int j = seg_index(A, A->spans[si].start);

		if (mask & VMEM_SPAN) {
			CHECK(k < wk.n && wk.p[k].addr == A->spans[si].start &&
			      wk.p[k].size == A->spans[si].size);
			k++;
		}
		for (;;) {
			bool seg = j < A->nsegs && (u128)A->segs[j].start < e;
			bool gap = fi < n && fbuf[fi].s < e;

			if (!seg && !gap)
				break;
			if (seg && (!gap || A->segs[j].start < fbuf[fi].s)) {
				if (mask & VMEM_ALLOC) {
					CHECK(k < wk.n && wk.p[k].addr == A->segs[j].start &&
					      wk.p[k].size == A->segs[j].asize);
					k++;
				}
				j++;
			} else {
				if (mask & VMEM_FREE) {
					CHECK(k < wk.n && wk.p[k].addr == (uint64_t)fbuf[fi].s &&
					      wk.p[k].size == (uint64_t)(fbuf[fi].e - fbuf[fi].s));
					k++;
				}
				fi++;
			}
		}
	}
	CHECK(k == wk.n);
}

static void op_size(reader_t *r)
{
	int s = pick_slot(r);
	const marena_t *A;
	uint64_t inuse = 0, total, expect, got;
	int mask;

	if (s < 0)
		return;
	A = &ar[s];
	mask = (int)un(r, 4);
	snprintf(op_desc, sizeof(op_desc), "size slot %d mask %#x", s, mask);
	op_begin();
	got = vmem_size(A->vmp, mask);
	if (A->qc) {
		dirty = 1u << s;
		return;
	}
	total = span_total(A, false);
	for (int i = 0; i < A->nsegs; i++)
		inuse += A->segs[i].asize;
	if (mask & VMEM_SPAN)
		expect = total;
	else
		expect = (mask & VMEM_ALLOC ? inuse : 0) + (mask & VMEM_FREE ? total - inuse : 0);
	CHECK(got == expect);
}

static void forget_slot(int s)
{
	marena_t *A = &ar[s];

	free(A->spans);
	free(A->segs);
	memset(A, 0, sizeof(*A));
	for (int i = 0; i < 8; i++) {
		if (freed[i].slot == s)
			freed[i].addr = 0;
	}
}

/*
 * Destroy slot s: refused (reported, nothing changed) while it has
 * children; otherwise every imported span goes back and a leak is
 * reported if segments were still held.
 */
static void destroy_slot(int s, bool expect_clean)
{
	marena_t *A = &ar[s];
	int held = A->nsegs;
	bool busy = has_children(s);

	snprintf(op_desc, sizeof(op_desc), "destroy slot %d (%d held%s)", s, held,
	         busy ? ", has importers" : "");
	op_begin();
	dirty = 1u << s;
	if (A->parent >= 0)
		dirty |= 1u << A->parent;
	A->destroying = !busy;
	vmem_destroy(A->vmp);
	A->destroying = false;
	if (busy) {
		CHECK(nreports == 1 && reports[0].kind == VMEM_ERR_DESTROY_BUSY);
		return;
	}
	fuzz_stats.destroys++;
	if (held == 0 || expect_clean) {
		expect_no_report();
	} else {
		CHECK(nreports == 1 && reports[0].kind == VMEM_ERR_LEAK);
		CHECK(reports[0].count == (uint64_t)held);
	}
	for (int i = 0; i < A->nspans; i++)
		CHECK(!A->spans[i].imported || A->vmp->vm_release == NULL);
	dirty &= ~(1u << s);
	forget_slot(s);
}

static void op_destroy(reader_t *r)
{
	int s = pick_slot(r);

	if (s >= 0)
		destroy_slot(s, false);
}

static void op_fault(reader_t *r)
{
	uint8_t b = u8(r);

	snprintf(op_desc, sizeof(op_desc), "fault %#x", b);
	op_begin();
	if ((b & 3) == 0) {
		vmem__fault_clear();
		faults_armed = false;
	} else if ((b & 3) == 1) {
		vmem__fault_map(b >> 4, (b >> 2) & 3 ? (b >> 2) & 3 : -1);
		faults_armed = true;
	} else {
		import_fail_next = 1 + (b >> 2) % 4;
	}
}

static void op_reap(reader_t *r)
{
	int s = pick_slot(r);

	if (s < 0)
		return;
	snprintf(op_desc, sizeof(op_desc), "reap slot %d", s);
	op_begin();
	dirty = 1u << s;
	vmem_qcache_reap(ar[s].vmp);
	expect_no_report();
}

/* The NULL arena: EINVAL, 0, or nothing, as documented. */
static void op_null_arena(reader_t *r)
{
	uint8_t b = u8(r);

	snprintf(op_desc, sizeof(op_desc), "null arena %d", b & 7);
	op_begin();
	errno = 0;
	switch (b & 7) {
	case 0:
		CHECK(vmem_alloc(NULL, 16, VM_NOSLEEP) == NULL && errno == EINVAL);
		break;
	case 1:
		CHECK(vmem_xalloc(NULL, 16, 0, 0, 0, NULL, NULL, VM_NOSLEEP) == NULL &&
		      errno == EINVAL);
		break;
	case 2:
		CHECK(vmem_add(NULL, (void *)0x1000, 0x1000, VM_NOSLEEP) == NULL &&
		      errno == EINVAL);
		break;
	case 3:
		CHECK(vmem_contains(NULL, (void *)0x1000, 1) == 0);
		break;
	case 4:
		CHECK(vmem_size(NULL, VMEM_ALLOC | VMEM_FREE) == 0);
		break;
	case 5:
		vmem_walk(NULL, VMEM_ALLOC, walk_rec, &wk);
		vmem_destroy(NULL);
		break;
	default:
		if (pick_slot(r) >= 0)
			vmem_walk(ar[pick_slot(r)].vmp, VMEM_ALLOC, NULL, NULL);
		break;
	}
	expect_no_report();
}

/* ---- one input ---------------------------------------------------------------- */

/* Free everything, children first, and check that every range came back. */
static void teardown(void)
{
	vmem__fault_clear();
	faults_armed = false;
	import_fail_next = 0;
	for (bool any = true; any;) {
		any = false;
		for (int s = 0; s < NSLOT; s++) {
			marena_t *A = &ar[s];
			int i;

			if (A->vmp == NULL || has_children(s))
				continue;
			any = true;
			while ((i = pick_held(&(reader_t){NULL, NULL}, A)) >= 0) {
				snprintf(op_desc, sizeof(op_desc), "teardown: free slot %d %#llx",
				         s, (unsigned long long)A->segs[i].start);
				op_begin();
				free_seg(s, i, false);
				expect_no_report();
				compare_dirty();
			}
			snprintf(op_desc, sizeof(op_desc), "teardown: check slot %d", s);
			op_begin();
			CHECK(A->nsegs == 0);
			if (A->qc) {
				vmem_qcache_reap(A->vmp);
				compare_cached_walk(A, 0);
			} else {
				compare_strict(A);
			}
			/* Nothing held: every imported span is back in the source. */
			for (i = 0; i < A->nspans; i++)
				CHECK(!A->spans[i].imported || A->vmp->vm_release == NULL);
			CHECK(vmem_size(A->vmp, VMEM_ALLOC) == 0);
			CHECK(vmem_size(A->vmp, VMEM_FREE) == span_total(A, false));
			expect_no_report();
			destroy_slot(s, true);
			compare_dirty();
		}
	}
}

typedef void op_fn(reader_t *);

static void op_alloc_plain(reader_t *r)
{
	op_alloc(r, false);
}

static void op_alloc_x(reader_t *r)
{
	op_alloc(r, true);
}

/* Operation table, weighted: allocations and frees dominate. */
static op_fn *const ops[32] = {
    op_create,      op_create,      op_add,     op_add,     op_alloc_plain, op_alloc_plain,
    op_alloc_plain, op_alloc_x,     op_alloc_x, op_alloc_x, op_alloc_x,     op_free,
    op_free,        op_free,        op_free,    op_free,    op_bad_free,    op_bad_free,
    op_contains,    op_walk,        op_size,    op_destroy, op_fault,       op_reap,
    op_null_arena,  op_alloc_plain, op_alloc_x, op_free,    op_create,      op_walk,
    op_bad_free,    op_add,
};

static void init_once(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	trace = getenv("FUZZ_VMEM_TRACE") != NULL;
	vmem_set_error_policy(VMEM_ERRORS_CONTINUE);
	vmem_set_error_handler(on_report, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	reader_t r = {data, data + size};

	init_once();
	fuzz_stats.inputs++;
	nfreed = 0;
	for (int n = 0; r.p < r.end && n < MAXOPS; n++) {
		ops[u8(&r) & 31](&r);
		compare_dirty();
	}
	teardown();
	return 0;
}
