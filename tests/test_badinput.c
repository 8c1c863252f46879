/*
 * The bad-input table: one test per documented bad input -- every invalid
 * argument of every function, every kind of bad free, invalid flag
 * combinations -- each asserting the documented error and that nothing
 * changed.  README.md ("Errors") lists the same table.
 *
 * Every row runs on a fresh fixture: a root arena holding segments of
 * every kind, an importing child, an arena with quantum caches, an
 * identifier arena and an unrelated arena.  After the row, every arena
 * must walk, size and count exactly as before (unless the row documents a
 * change), pass vmem__verify, and give everything back at destroy with no
 * leak reported.  Rows whose documented result is abort() run in a child
 * process.  The same table runs against libvmem and libvmem-debug; where
 * the two libraries differ, the row says so.
 */
#include "testutil.h"

#include <id_space.h>
#define VMEM_BSD_IMPLEMENTATION
#include <vmem/bsd.h>

#define PG    ((size_t)0x1000)
#define BASE  ((uintptr_t)0x10000000) /* root:   64 pages */
#define CBASE ((uintptr_t)0x20000000) /* cached: 64 pages */
#define OBASE ((uintptr_t)0x30000000) /* other:  16 pages */

/* ---- the fixture -------------------------------------------------------------------- */

enum { ROOT, CHILD, CACHED, IDS, OTHER, NARENA };

typedef struct piece {
	uintptr_t addr;
	size_t size;
} piece_t;

typedef struct snap {
	int n;
	piece_t p[64];
	size_t alloc, free, span;
	uint64_t inuse, total, import;
} snap_t;

typedef struct fixture {
	vmem_t *a[NARENA];
	uintptr_t seg2pg;     /* root: vmem_alloc, 2 pages */
	uintptr_t segx;       /* root: vmem_xalloc, 1 page, 4-page aligned */
	uintptr_t segodd;     /* root: vmem_alloc, 3 pages + 100 bytes */
	uintptr_t freed;      /* root: allocated (1 page) and freed again */
	uintptr_t kid;        /* child: 1 page (imported from root) */
	uintptr_t obj1, obj2; /* cached: 2-page objects, first and second of their slab */
	uintptr_t xobj;       /* cached: vmem_xalloc of a cached size (2 pages) */
	uintptr_t big;        /* cached: 8 pages, above the caches */
	uintptr_t id;         /* ids: one id */
	uintptr_t oseg;       /* other: 1 page */
	bool changes;         /* the row documents a change: skip the comparison */
	captured_t cap;
	uint64_t errors0;
	snap_t before[NARENA];
} fixture_t;

static fixture_t *F;

static void snap_rec(void *arg, void *addr, size_t size)
{
	snap_t *s = arg;

	assert_true(s->n < 64);
	s->p[s->n++] = (piece_t){(uintptr_t)addr, size};
}

static void take_snap(vmem_t *vmp, snap_t *s)
{
	vmem_kstat_t ks;

	memset(s, 0, sizeof(*s));
	vmem_walk(vmp, VMEM_ALLOC | VMEM_FREE | VMEM_SPAN, snap_rec, s);
	s->alloc = vmem_size(vmp, VMEM_ALLOC);
	s->free = vmem_size(vmp, VMEM_FREE);
	s->span = vmem_size(vmp, VMEM_SPAN);
	assert_int_equal(vmem_kstat(vmp, &ks), 0);
	s->inuse = ks.vk_mem_inuse;
	s->total = ks.vk_mem_total;
	s->import = ks.vk_mem_import;
}

static uintptr_t A(vmem_t *vmp, size_t size)
{
	void *p = vmem_alloc(vmp, size, VM_NOSLEEP);

	assert_non_null(p);
	return (uintptr_t)p;
}

static uintptr_t X(vmem_t *vmp, size_t size, size_t align)
{
	void *p = vmem_xalloc(vmp, size, align, 0, 0, NULL, NULL, VM_NOSLEEP);

	assert_non_null(p);
	return (uintptr_t)p;
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));

	f->a[ROOT] =
	    vmem_create("bi-root", (void *)BASE, 64 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	f->a[CHILD] =
	    vmem_create("bi-child", NULL, 0, PG, vmem_alloc, vmem_free, f->a[ROOT], 0, VM_SLEEP);
	f->a[CACHED] = vmem_create("bi-cached", (void *)CBASE, 64 * PG, PG, NULL, NULL, NULL,
	                           4 * PG, VM_SLEEP);
	f->a[IDS] = vmem_create("bi-ids", (void *)1, 1000, 1, NULL, NULL, NULL, 0,
	                        VM_SLEEP | VMC_IDENTIFIER);
	f->a[OTHER] =
	    vmem_create("bi-other", (void *)OBASE, 16 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	for (int i = 0; i < NARENA; i++)
		assert_non_null(f->a[i]);
	f->seg2pg = A(f->a[ROOT], 2 * PG);
	f->segx = X(f->a[ROOT], PG, 4 * PG);
	f->segodd = A(f->a[ROOT], 3 * PG + 100);
	/* (the child imports before `freed` is freed, so that nothing reuses it) */
	f->kid = A(f->a[CHILD], PG);
	f->freed = A(f->a[ROOT], PG);
	vmem_free(f->a[ROOT], (void *)f->freed, PG);
	f->obj1 = A(f->a[CACHED], 2 * PG);
	f->obj2 = A(f->a[CACHED], 2 * PG);
	{
		/* obj1: the one at the start of its slab; obj2: one inside the slab */
		vmem_qcache_kstat_t qk;
		uintptr_t t;

		assert_int_equal(vmem_qcache_kstat(f->a[CACHED], 1, &qk), 0);
		if ((f->obj1 & (qk.qk_slabsize - 1)) != 0) {
			t = f->obj1;
			f->obj1 = f->obj2;
			f->obj2 = t;
		}
		assert_int_equal(f->obj1 & (qk.qk_slabsize - 1), 0);
		assert_int_equal(f->obj2 & ~(qk.qk_slabsize - 1), f->obj1);
	}
	f->xobj = X(f->a[CACHED], 2 * PG, 0);
	f->big = A(f->a[CACHED], 8 * PG);
	f->id = A(f->a[IDS], 1);
	f->oseg = A(f->a[OTHER], PG);
	for (int i = 0; i < NARENA; i++)
		take_snap(f->a[i], &f->before[i]);
	capture_errors(&f->cap);
	f->errors0 = vmem_error_count();
	F = f;
	*state = f;
	return 0;
}

static void free_if(vmem_t *vmp, uintptr_t addr, size_t size, bool x)
{
	if (addr == 0)
		return;
	if (x)
		vmem_xfree(vmp, (void *)addr, size);
	else
		vmem_free(vmp, (void *)addr, size);
}

/* Nothing changed (unless documented), everything consistent, everything comes back. */
static int teardown(void **state)
{
	fixture_t *f = *state;
	captured_t leaks;

	release_errors();
	for (int i = 0; i < NARENA; i++) {
		snap_t now;

		assert_arena_ok(f->a[i]);
		take_snap(f->a[i], &now);
		if (!f->changes && memcmp(&now, &f->before[i], sizeof(now)) != 0)
			fail_msg("arena '%s' changed: %d pieces (was %d), %zu allocated (was %zu)",
			         vmem_name(f->a[i]), now.n, f->before[i].n, now.alloc,
			         f->before[i].alloc);
	}
	free_if(f->a[ROOT], f->seg2pg, 2 * PG, false);
	free_if(f->a[ROOT], f->segx, PG, true);
	free_if(f->a[ROOT], f->segodd, 3 * PG + 100, false);
	free_if(f->a[CHILD], f->kid, PG, false);
	free_if(f->a[CACHED], f->obj1, 2 * PG, false);
	free_if(f->a[CACHED], f->obj2, 2 * PG, false);
	free_if(f->a[CACHED], f->xobj, 2 * PG, true);
	free_if(f->a[CACHED], f->big, 8 * PG, false);
	free_if(f->a[IDS], f->id, 1, false);
	free_if(f->a[OTHER], f->oseg, PG, false);
	capture_errors(&leaks);
	for (int i = NARENA - 1; i >= 0; i--) {
		if (i == ROOT)
			assert_int_equal(vmem_size(f->a[ROOT], VMEM_FREE), 64 * PG);
		vmem_destroy(f->a[i]);
	}
	release_errors();
	assert_int_equal(leaks.n, 0);
	free(f);
	F = NULL;
	return 0;
}

/* ---- expectations --------------------------------------------------------------------- */

#define EXPECT_EINVAL(call)                                                                        \
	do {                                                                                       \
		errno = 0;                                                                         \
		assert_null(call);                                                                 \
		assert_int_equal(errno, EINVAL);                                                   \
	} while (0)

#define EXPECT_ENOMEM(call)                                                                        \
	do {                                                                                       \
		errno = 0;                                                                         \
		assert_null(call);                                                                 \
		assert_int_equal(errno, ENOMEM);                                                   \
	} while (0)

/* Exactly one report so far, of this kind, about this address; the call changed nothing. */
static void expect_report(vmem_error_kind_t kind, uintptr_t addr)
{
	assert_int_equal(F->cap.n, 1);
	if (F->cap.kind[0] != kind)
		fail_msg("reported %d (%s), expected %d", F->cap.kind[0], F->cap.msg[0], kind);
	assert_int_equal(F->cap.addr[0], addr);
	assert_int_equal(vmem_error_count() - F->errors0, 1);
}

static vmem_error_kind_t fast_or_debug(vmem_error_kind_t fast, vmem_error_kind_t debug)
{
	return vmem_debug_enabled() ? debug : fast;
}

/* The row's documented result is a report and abort(): run it in a child. */
static void expect_abort(void (*fn)(void *), const char *needle)
{
	char out[8192];
	int status;

	release_errors(); /* the default policy: abort after the report */
	status = run_child(fn, F, out, sizeof(out));
	capture_errors(&F->cap);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		fail_msg("expected abort(), got status %#x; stderr: %s", status, out);
	if (strstr(out, needle) == NULL)
		fail_msg("expected \"%s\" in: %s", needle, out);
}

#define ROW(fn) static void fn(void **state)

/* ---- vmem_create / vmem_xcreate ------------------------------------------------------- */

ROW(create_null_name)
{
	EXPECT_EINVAL(vmem_create(NULL, (void *)0x1000, PG, PG, NULL, NULL, NULL, 0, VM_SLEEP));
}

ROW(create_quantum_zero)
{
	EXPECT_EINVAL(vmem_create("q", (void *)0x1000, PG, 0, NULL, NULL, NULL, 0, VM_SLEEP));
}

ROW(create_quantum_not_pow2)
{
	EXPECT_EINVAL(
	    vmem_create("q", (void *)0x3000, 0x3000, 0x3000, NULL, NULL, NULL, 0, VM_SLEEP));
}

ROW(create_base0_with_size)
{
	EXPECT_EINVAL(vmem_create("q", NULL, PG, PG, NULL, NULL, NULL, 0, VM_SLEEP));
}

ROW(create_size0_with_base)
{
	EXPECT_EINVAL(vmem_create("q", (void *)0x1000, 0, PG, NULL, NULL, NULL, 0, VM_SLEEP));
}

ROW(create_misaligned_base)
{
	EXPECT_EINVAL(vmem_create("q", (void *)0x1001, PG, PG, NULL, NULL, NULL, 0, VM_SLEEP));
}

ROW(create_misaligned_size)
{
	EXPECT_EINVAL(vmem_create("q", (void *)0x1000, PG + 1, PG, NULL, NULL, NULL, 0, VM_SLEEP));
}

ROW(create_overflowing_span)
{
	EXPECT_EINVAL(vmem_create("q", (void *)(UINTPTR_MAX - PG + 1), 2 * PG, PG, NULL, NULL, NULL,
	                          0, VM_SLEEP));
}

ROW(create_unknown_flags)
{
	EXPECT_EINVAL(
	    vmem_create("q", (void *)0x1000, PG, PG, NULL, NULL, NULL, 0, VM_SLEEP | 0x40000000));
}

ROW(create_fit_flag)
{
	EXPECT_EINVAL(
	    vmem_create("q", (void *)0x1000, PG, PG, NULL, NULL, NULL, 0, VM_SLEEP | VM_BESTFIT));
}

ROW(create_identifier_on_plain_source)
{
	EXPECT_EINVAL(vmem_create("q", NULL, 0, PG, vmem_alloc, vmem_free, F->a[ROOT], 0,
	                          VM_SLEEP | VMC_IDENTIFIER));
}

ROW(xcreate_null_name)
{
	EXPECT_EINVAL(vmem_xcreate(NULL, NULL, 0, PG, NULL, NULL, NULL, 0, VM_SLEEP));
}

ROW(xcreate_quantum_not_pow2)
{
	EXPECT_EINVAL(vmem_xcreate("q", NULL, 0, 24, NULL, NULL, NULL, 0, VM_SLEEP));
}

static void create_panic_child(void *arg)
{
	(void)arg;
	(void)vmem_create("q", (void *)0x1001, PG, PG, NULL, NULL, NULL, 0, VM_SLEEP | VM_PANIC);
}

ROW(create_bad_with_vm_panic)
{
	expect_abort(create_panic_child, "vmem_create: bad initial span");
}

/* ---- vmem_destroy ---------------------------------------------------------------------- */

ROW(destroy_null)
{
	vmem_destroy(NULL);
	assert_int_equal(F->cap.n, 0);
}

ROW(destroy_with_importers)
{
	vmem_destroy(F->a[ROOT]);
	expect_report(VMEM_ERR_DESTROY_BUSY, 0);
	assert_non_null(strstr(F->cap.msg[0], "'bi-child'"));
}

ROW(destroy_with_segments_held)
{
	vmem_t *tmp =
	    vmem_create("leaky", NULL, 0, PG, vmem_alloc, vmem_free, F->a[OTHER], 0, VM_SLEEP);

	assert_non_null(vmem_alloc(tmp, 3 * PG, VM_SLEEP));
	vmem_destroy(tmp); /* a warning, not an error: the spans still go back */
	assert_int_equal(F->cap.n, 1);
	assert_int_equal(F->cap.kind[0], VMEM_ERR_LEAK);
	assert_int_equal(F->cap.count[0], 1);
	assert_int_equal(F->cap.bytes[0], 3 * PG);
	assert_int_equal(vmem_error_count(), F->errors0);
}

/* ---- vmem_add ------------------------------------------------------------------------------ */

ROW(add_null_arena)
{
	EXPECT_EINVAL(vmem_add(NULL, (void *)0x80000000, PG, VM_SLEEP));
}

ROW(add_address_zero)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], NULL, PG, VM_SLEEP));
}

ROW(add_size_zero)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)0x80000000, 0, VM_SLEEP));
}

ROW(add_misaligned_address)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)0x80000800, PG, VM_SLEEP));
}

ROW(add_misaligned_size)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)0x80000000, PG + 1, VM_SLEEP));
}

ROW(add_overflowing_span)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)(UINTPTR_MAX - PG + 1), 2 * PG, VM_SLEEP));
}

ROW(add_overlapping_span)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)(BASE + 63 * PG), 2 * PG, VM_SLEEP));
}

ROW(add_containing_span)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)(BASE - PG), 66 * PG, VM_SLEEP));
}

ROW(add_inside_span)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)(BASE + 8 * PG), PG, VM_SLEEP));
}

ROW(add_same_span)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)BASE, 64 * PG, VM_SLEEP));
}

ROW(add_fit_flag)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)0x80000000, PG, VM_SLEEP | VM_NEXTFIT));
}

ROW(add_unknown_flag)
{
	EXPECT_EINVAL(vmem_add(F->a[ROOT], (void *)0x80000000, PG, VM_SLEEP | 0x10000));
}

static void add_panic_child(void *arg)
{
	fixture_t *f = arg;

	(void)vmem_add(f->a[ROOT], (void *)BASE, PG, VM_SLEEP | VM_PANIC);
}

ROW(add_bad_with_vm_panic)
{
	expect_abort(add_panic_child, "vmem_add: bad arguments");
}

/* ---- vmem_alloc --------------------------------------------------------------------------------
 */

ROW(alloc_null_arena)
{
	EXPECT_EINVAL(vmem_alloc(NULL, PG, VM_SLEEP));
}

ROW(alloc_size_zero)
{
	EXPECT_EINVAL(vmem_alloc(F->a[ROOT], 0, VM_SLEEP));
}

ROW(alloc_size_too_large_to_round)
{
	EXPECT_EINVAL(vmem_alloc(F->a[ROOT], SIZE_MAX - 10, VM_SLEEP));
}

ROW(alloc_unknown_flag)
{
	EXPECT_EINVAL(vmem_alloc(F->a[ROOT], PG, VM_SLEEP | 0x10000));
}

ROW(alloc_two_fit_policies)
{
	EXPECT_EINVAL(vmem_alloc(F->a[ROOT], PG, VM_SLEEP | VM_BESTFIT | VM_FIRSTFIT));
}

ROW(alloc_three_fit_policies)
{
	EXPECT_EINVAL(
	    vmem_alloc(F->a[ROOT], PG, VM_NOSLEEP | VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT));
}

ROW(alloc_cached_size_zero)
{
	EXPECT_EINVAL(vmem_alloc(F->a[CACHED], 0, VM_SLEEP));
}

ROW(alloc_cached_unknown_flag)
{
	EXPECT_EINVAL(vmem_alloc(F->a[CACHED], PG, VM_SLEEP | 0x10000));
}

ROW(alloc_exhausted_nosleep)
{
	EXPECT_ENOMEM(vmem_alloc(F->a[ROOT], 64 * PG, VM_NOSLEEP));
}

ROW(alloc_exhausted_abort)
{
	EXPECT_ENOMEM(vmem_alloc(F->a[ROOT], 64 * PG, VM_SLEEP | VM_ABORT));
}

ROW(alloc_exhausted_import_fails)
{
	EXPECT_ENOMEM(vmem_alloc(F->a[CHILD], 64 * PG, VM_NOSLEEP));
}

static void alloc_panic_child(void *arg)
{
	fixture_t *f = arg;

	(void)vmem_alloc(f->a[ROOT], 64 * PG, VM_NOSLEEP | VM_PANIC);
}

ROW(alloc_exhausted_vm_panic)
{
	expect_abort(alloc_panic_child, "cannot satisfy mandatory allocation");
}

/* ---- vmem_xalloc ---------------------------------------------------------------------------- */

static void *xa(size_t size, size_t align, size_t phase, size_t nocross, uintptr_t min,
                uintptr_t max, int flags)
{
	return vmem_xalloc(F->a[ROOT], size, align, phase, nocross, (void *)min, (void *)max,
	                   flags);
}

ROW(xalloc_null_arena)
{
	EXPECT_EINVAL(vmem_xalloc(NULL, PG, 0, 0, 0, NULL, NULL, VM_SLEEP));
}

ROW(xalloc_size_zero)
{
	EXPECT_EINVAL(xa(0, 0, 0, 0, 0, 0, VM_SLEEP));
}

ROW(xalloc_size_too_large)
{
	EXPECT_EINVAL(xa(SIZE_MAX, 0, 0, 0, 0, 0, VM_SLEEP));
}

ROW(xalloc_align_not_pow2)
{
	EXPECT_EINVAL(xa(PG, 3 * PG, 0, 0, 0, 0, VM_SLEEP));
}

ROW(xalloc_align_not_quantum_multiple)
{
	EXPECT_EINVAL(xa(PG, PG / 2, 0, 0, 0, 0, VM_SLEEP));
}

ROW(xalloc_phase_not_quantum_multiple)
{
	EXPECT_EINVAL(xa(PG, 4 * PG, 0x800, 0, 0, 0, VM_SLEEP));
}

ROW(xalloc_phase_not_below_align)
{
	EXPECT_EINVAL(xa(PG, 4 * PG, 4 * PG, 0, 0, 0, VM_SLEEP));
}

ROW(xalloc_nocross_not_pow2)
{
	EXPECT_EINVAL(xa(PG, 0, 0, 3 * PG, 0, 0, VM_SLEEP));
}

ROW(xalloc_nocross_not_quantum_multiple)
{
	EXPECT_EINVAL(xa(PG, 0, 0, PG / 2, 0, 0, VM_SLEEP));
}

ROW(xalloc_align_above_nocross)
{
	EXPECT_EINVAL(xa(PG, 8 * PG, 0, 4 * PG, 0, 0, VM_SLEEP));
}

ROW(xalloc_phase_plus_size_above_nocross)
{
	EXPECT_EINVAL(xa(2 * PG, 4 * PG, 3 * PG, 4 * PG, 0, 0, VM_SLEEP));
}

ROW(xalloc_size_above_nocross)
{
	EXPECT_EINVAL(xa(4 * PG + 1, 0, 0, 4 * PG, 0, 0, VM_SLEEP));
}

ROW(xalloc_minaddr_above_maxaddr)
{
	EXPECT_EINVAL(xa(PG, 0, 0, 0, BASE + 8 * PG, BASE + 4 * PG, VM_SLEEP));
}

ROW(xalloc_empty_range)
{
	EXPECT_EINVAL(xa(PG, 0, 0, 0, BASE + 8 * PG, BASE + 8 * PG, VM_SLEEP));
}

ROW(xalloc_range_smaller_than_size)
{
	EXPECT_EINVAL(xa(2 * PG, 0, 0, 0, BASE + 8 * PG, BASE + 9 * PG, VM_SLEEP));
}

ROW(xalloc_unknown_flag)
{
	EXPECT_EINVAL(xa(PG, 0, 0, 0, 0, 0, VM_SLEEP | 0x20000));
}

ROW(xalloc_two_fit_policies)
{
	EXPECT_EINVAL(xa(PG, 0, 0, 0, 0, 0, VM_SLEEP | VM_NEXTFIT | VM_BESTFIT));
}

ROW(xalloc_range_outside_spans)
{
	EXPECT_ENOMEM(xa(PG, 0, 0, 0, 0x70000000, 0x70100000, VM_NOSLEEP));
}

ROW(xalloc_range_full)
{
	EXPECT_ENOMEM(xa(PG, 0, 0, 0, F->seg2pg, F->seg2pg + 2 * PG, VM_NOSLEEP));
}

ROW(xalloc_unsatisfiable_alignment)
{
	EXPECT_ENOMEM(xa(PG, 1UL << 40, 0, 0, 0, 0, VM_NOSLEEP));
}

static void xalloc_panic_child(void *arg)
{
	(void)arg;
	(void)xa(PG, 3 * PG, 0, 0, 0, 0, VM_SLEEP | VM_PANIC);
}

ROW(xalloc_bad_with_vm_panic)
{
	expect_abort(xalloc_panic_child, "parameters inconsistent or invalid");
}

/* ---- bad frees (report and continue) ----------------------------------------------------------
 */

ROW(free_never_allocated)
{
	vmem_free(F->a[ROOT], (void *)0x70000000, PG);
	expect_report(VMEM_ERR_BAD_FREE, 0x70000000);
	assert_non_null(strstr(F->cap.msg[0], "was never allocated from this arena"));
}

ROW(free_of_free_space)
{
	vmem_free(F->a[ROOT], (void *)(BASE + 40 * PG), PG);
	expect_report(fast_or_debug(VMEM_ERR_BAD_FREE, VMEM_ERR_BAD_FREE), BASE + 40 * PG);
	assert_non_null(strstr(F->cap.msg[0], "free space"));
}

ROW(free_twice)
{
	vmem_free(F->a[ROOT], (void *)F->freed, PG);
	expect_report(fast_or_debug(VMEM_ERR_BAD_FREE, VMEM_ERR_DOUBLE_FREE), F->freed);
}

ROW(free_inside_segment)
{
	vmem_free(F->a[ROOT], (void *)(F->seg2pg + PG), PG);
	expect_report(VMEM_ERR_INTERIOR_FREE, F->seg2pg + PG);
	assert_int_equal(F->cap.seg_size[0], 2 * PG);
}

ROW(free_unaligned_inside_segment)
{
	vmem_xfree(F->a[ROOT], (void *)(F->segodd + 17), 100);
	expect_report(VMEM_ERR_INTERIOR_FREE, F->segodd + 17);
}

ROW(free_size_smaller)
{
	vmem_free(F->a[ROOT], (void *)F->seg2pg, PG);
	expect_report(VMEM_ERR_SIZE_MISMATCH, F->seg2pg);
	assert_int_equal(F->cap.seg_size[0], 2 * PG);
}

ROW(free_size_larger)
{
	vmem_free(F->a[ROOT], (void *)F->seg2pg, 3 * PG);
	expect_report(VMEM_ERR_SIZE_MISMATCH, F->seg2pg);
}

ROW(free_size_same_quanta)
{
	/* Exact sizes, as illumos: 3 pages + 101 bytes is not 3 pages + 100. */
	vmem_free(F->a[ROOT], (void *)F->segodd, 3 * PG + 101);
	expect_report(VMEM_ERR_SIZE_MISMATCH, F->segodd);
	assert_int_equal(F->cap.seg_size[0], 3 * PG + 100);
}

ROW(free_size_zero)
{
	vmem_free(F->a[ROOT], (void *)F->seg2pg, 0);
	expect_report(VMEM_ERR_SIZE_MISMATCH, F->seg2pg);
}

ROW(free_to_wrong_arena)
{
	vmem_free(F->a[ROOT], (void *)F->oseg, PG);
	expect_report(VMEM_ERR_WRONG_ARENA, F->oseg);
	assert_non_null(strstr(F->cap.msg[0], "'bi-other'"));
}

ROW(xfree_to_wrong_arena)
{
	vmem_xfree(F->a[OTHER], (void *)F->segx, PG);
	expect_report(VMEM_ERR_WRONG_ARENA, F->segx);
	assert_non_null(strstr(F->cap.msg[0], "'bi-root'"));
}

ROW(free_of_xalloc_segment)
{
	/* libvmem-debug insists on vmem_xfree; libvmem accepts it, as illumos does. */
	vmem_free(F->a[ROOT], (void *)F->segx, PG);
	if (vmem_debug_enabled()) {
		expect_report(VMEM_ERR_FREE_XALLOC, F->segx);
		return;
	}
	assert_int_equal(F->cap.n, 0);
	F->segx = 0;
	F->changes = true;
}

ROW(xfree_of_cached_object)
{
	vmem_xfree(F->a[CACHED], (void *)F->obj2, 2 * PG);
	expect_report(VMEM_ERR_XFREE_CACHED, F->obj2);
}

ROW(xfree_of_cached_object_first_in_slab)
{
	vmem_xfree(F->a[CACHED], (void *)F->obj1, 2 * PG);
	expect_report(VMEM_ERR_XFREE_CACHED, F->obj1);
}

ROW(xfree_of_cached_object_served_directly)
{
	/* A span smaller than a slab: the cache serves objects straight from the arena. */
	vmem_t *tiny = vmem_create("bi-tiny", (void *)0x50000000, 8 * PG, PG, NULL, NULL, NULL,
	                           4 * PG, VM_SLEEP);
	void *p = vmem_alloc(tiny, 2 * PG, VM_SLEEP);

	assert_non_null(p);
	vmem_xfree(tiny, p, 2 * PG);
	expect_report(VMEM_ERR_XFREE_CACHED, (uintptr_t)p);
	assert_int_equal(vmem_size(tiny, VMEM_ALLOC), 2 * PG); /* still held */
	vmem_free(tiny, p, 2 * PG);
	vmem_destroy(tiny);
}

ROW(free_of_cached_xalloc_segment)
{
	/*
	 * libvmem-debug refuses it at once.  libvmem's magazines take it
	 * unchecked; it is reported when the cache gives it back (at the latest
	 * at vmem_qcache_reap) and is then freed.
	 */
	vmem_free(F->a[CACHED], (void *)F->xobj, 2 * PG);
	if (vmem_debug_enabled()) {
		expect_report(VMEM_ERR_FREE_XALLOC, F->xobj);
		return;
	}
	vmem_qcache_reap(F->a[CACHED]);
	expect_report(VMEM_ERR_FREE_XALLOC, F->xobj);
	F->xobj = 0;
	F->changes = true;
}

ROW(free_cached_never_allocated)
{
	if (!vmem_debug_enabled())
		skip(); /* libvmem does not check frees of cached sizes (documented) */
	vmem_free(F->a[CACHED], (void *)(CBASE + 40 * PG), 2 * PG);
	assert_int_equal(F->cap.n, 1);
	assert_int_equal(F->cap.addr[0], CBASE + 40 * PG);
}

ROW(free_cached_twice)
{
	void *p;

	if (!vmem_debug_enabled())
		skip(); /* libvmem does not check frees of cached sizes (documented) */
	p = vmem_alloc(F->a[CACHED], PG, VM_SLEEP);
	vmem_free(F->a[CACHED], p, PG);
	vmem_free(F->a[CACHED], p, PG);
	expect_report(VMEM_ERR_DOUBLE_FREE, (uintptr_t)p);
	F->changes = true; /* the slab the object came from stays */
}

ROW(free_from_child_to_source)
{
	vmem_free(F->a[ROOT], (void *)(F->kid + PG / 2), PG);
	expect_report(VMEM_ERR_INTERIOR_FREE, F->kid + PG / 2);
}

ROW(free_identifier_never_allocated)
{
	vmem_free(F->a[IDS], (void *)500, 1);
	expect_report(VMEM_ERR_BAD_FREE, 500);
}

static void free_null_child(void *arg)
{
	(void)arg;
	vmem_free(NULL, (void *)0x1000, PG);
}

ROW(free_null_arena)
{
	expect_abort(free_null_child, "NULL arena");
}

static void bad_free_abort_child(void *arg)
{
	fixture_t *f = arg;

	vmem_free(f->a[ROOT], (void *)f->freed, PG);
}

ROW(bad_free_default_policy_aborts)
{
	expect_abort(bad_free_abort_child, "vmem_free('bi-root'");
}

/* ---- queries and settings
 * ------------------------------------------------------------------------ */

static void never_called(void *arg, void *addr, size_t size)
{
	(void)arg;
	(void)addr;
	(void)size;
	fail_msg("walk callback called");
}

ROW(contains_null_arena)
{
	assert_int_equal(vmem_contains(NULL, (void *)BASE, PG), 0);
}

ROW(contains_size_past_span)
{
	assert_int_equal(vmem_contains(F->a[ROOT], (void *)(BASE + PG), SIZE_MAX), 0);
	assert_int_equal(vmem_contains(F->a[ROOT], (void *)(BASE + PG), 64 * PG), 0);
}

ROW(walk_null_arena_or_callback)
{
	vmem_walk(NULL, VMEM_ALLOC, never_called, NULL);
	vmem_walk(F->a[ROOT], VMEM_ALLOC, NULL, NULL);
}

ROW(walk_empty_mask)
{
	vmem_walk(F->a[ROOT], 0, never_called, NULL);
}

ROW(size_null_arena_or_empty_mask)
{
	assert_int_equal(vmem_size(NULL, VMEM_ALLOC), 0);
	assert_int_equal(vmem_size(F->a[ROOT], 0), 0);
}

ROW(kstat_bad_arguments)
{
	vmem_kstat_t ks;

	errno = 0;
	assert_int_equal(vmem_kstat(NULL, &ks), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(vmem_kstat(F->a[ROOT], NULL), -1);
	assert_int_equal(errno, EINVAL);
}

ROW(qcache_kstat_bad_index)
{
	vmem_qcache_kstat_t qk;

	errno = 0;
	assert_int_equal(vmem_qcache_kstat(F->a[CACHED], 4, &qk), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(vmem_qcache_kstat(F->a[ROOT], 0, &qk), -1);
	assert_int_equal(errno, EINVAL);
}

ROW(set_error_policy_bad_value)
{
	errno = 0;
	assert_int_equal(vmem_set_error_policy(2), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(vmem_get_error_policy(), VMEM_ERRORS_CONTINUE);
}

ROW(settings_on_null_arena)
{
	vmem_set_limit(NULL, PG);
	vmem_set_reclaim(NULL, NULL);
	vmem_qcache_reap(NULL);
	assert_int_equal(vmem_qcache_count(NULL), 0);
	assert_null(vmem_name(NULL));
}

/* ---- id_space
 * ------------------------------------------------------------------------------------ */

ROW(id_space_create_null_name)
{
	EXPECT_EINVAL(id_space_create(NULL, 1, 100));
}

ROW(id_space_create_empty_range)
{
	EXPECT_EINVAL(id_space_create("ids", 100, 100));
	EXPECT_EINVAL(id_space_create("ids", 100, 1));
}

ROW(id_space_bad_extend_alloc_free)
{
	id_space_t *isp = id_space_create("bi-idspace", 10, 20);
	id_t a;

	assert_non_null(isp);
	assert_int_equal(id_space_extend(isp, 30, 30), EINVAL); /* empty */
	assert_int_equal(id_space_extend(isp, 15, 25), EINVAL); /* overlapping */
	a = id_alloc_specific_nosleep(isp, 12);
	assert_int_equal(a, 12);
	assert_int_equal(id_alloc_specific_nosleep(isp, 12), (id_t)-1); /* taken */
	assert_int_equal(id_alloc_specific_nosleep(isp, 25), (id_t)-1); /* outside */
	assert_int_equal(id_alloc_specific_nosleep(isp, (id_t)-1), (id_t)-1);
	id_free(isp, 13);
	expect_report(VMEM_ERR_BAD_FREE, 13);
	assert_non_null(strstr(F->cap.msg[0], "id_free"));
	for (int i = 0; i < 9; i++)
		assert_true(id_alloc_nosleep(isp) != (id_t)-1);
	assert_int_equal(id_alloc_nosleep(isp), (id_t)-1);   /* full */
	assert_int_equal(id_allocff_nosleep(isp), (id_t)-1); /* full */
	for (id_t i = 10; i < 20; i++)
		id_free(isp, i);
	assert_int_equal(F->cap.n, 1);
	id_space_destroy(isp);
}

/* ---- the BSD-style API
 * ---------------------------------------------------------------------------- */

ROW(bsd_create_bad_arguments)
{
	EXPECT_EINVAL(vmem_bsd_create("b", 0, 0x1000, 0x3000, 0, M_WAITOK));     /* quantum */
	EXPECT_EINVAL(vmem_bsd_create("b", 0x800, 0x1000, 0x1000, 0, M_WAITOK)); /* base */
	EXPECT_EINVAL(vmem_bsd_create(NULL, 0, 0x1000, 0x1000, 0, M_WAITOK));    /* name */
}

ROW(bsd_bad_flags_and_ranges)
{
	vmem_t *vm = vmem_bsd_create("bi-bsd", 0, 16 * PG, PG, 0, M_WAITOK);
	vmem_addr_t a = 1;

	assert_non_null(vm);
	assert_int_equal(vmem_bsd_alloc(vm, 0, M_NOWAIT, &a), EINVAL);
	assert_int_equal(vmem_bsd_alloc(vm, PG, M_NOWAIT | M_WAITOK, &a), EINVAL);
	assert_int_equal(vmem_bsd_alloc(vm, PG, M_NOWAIT | M_BESTFIT | M_FIRSTFIT, &a), EINVAL);
	assert_int_equal(vmem_bsd_alloc(vm, PG, M_NOWAIT | 0x4, &a), EINVAL);
	assert_int_equal(vmem_bsd_xalloc(vm, PG, 0, 0, 0, 8 * PG, 4 * PG, M_NOWAIT, &a), EINVAL);
	assert_int_equal(vmem_bsd_xalloc(vm, PG, 3 * PG, 0, 0, 0, VMEM_ADDR_MAX, M_NOWAIT, &a),
	                 EINVAL);
	assert_int_equal(vmem_bsd_xalloc(vm, PG, 4 * PG, 4 * PG, 0, 0, VMEM_ADDR_MAX, M_NOWAIT, &a),
	                 EINVAL);
	assert_int_equal(vmem_bsd_alloc(vm, 17 * PG, M_NOWAIT, &a), ENOMEM);
	assert_int_equal(vmem_bsd_add(vm, 8 * PG, 16 * PG, M_NOWAIT), EINVAL); /* overlaps */
	assert_int_equal(vmem_bsd_add(vm, 64 * PG, 0, M_NOWAIT), EINVAL);
	assert_int_equal(a, 1); /* never written */
	assert_int_equal(vmem_bsd_size(vm, VMEM_ALLOC), 0);
	assert_arena_ok(vm);
	vmem_bsd_destroy(vm);
}

ROW(bsd_bad_frees)
{
	vmem_t *vm = vmem_bsd_create("bi-bsd2", 0, 16 * PG, PG, 0, M_WAITOK);
	vmem_addr_t a;

	assert_int_equal(vmem_bsd_alloc(vm, 2 * PG, M_NOWAIT, &a), 0);
	vmem_bsd_free(vm, a, 3 * PG); /* any size of the same quanta is fine, not this one */
	expect_report(VMEM_ERR_SIZE_MISMATCH, a);
	vmem_bsd_free(vm, a + 8 * PG, PG);
	assert_int_equal(F->cap.n, 2);
	assert_int_equal(F->cap.kind[1], VMEM_ERR_BAD_FREE);
	vmem_bsd_free(vm, a, 2 * PG - 1); /* rounds to the same quanta: a real free */
	assert_int_equal(vmem_bsd_size(vm, VMEM_ALLOC), 0);
	assert_int_equal(F->cap.n, 2);
	vmem_bsd_destroy(vm);
}

/* ---- the table
 * -------------------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(create_null_name),
	    T(create_quantum_zero),
	    T(create_quantum_not_pow2),
	    T(create_base0_with_size),
	    T(create_size0_with_base),
	    T(create_misaligned_base),
	    T(create_misaligned_size),
	    T(create_overflowing_span),
	    T(create_unknown_flags),
	    T(create_fit_flag),
	    T(create_identifier_on_plain_source),
	    T(xcreate_null_name),
	    T(xcreate_quantum_not_pow2),
	    T(create_bad_with_vm_panic),
	    T(destroy_null),
	    T(destroy_with_importers),
	    T(destroy_with_segments_held),
	    T(add_null_arena),
	    T(add_address_zero),
	    T(add_size_zero),
	    T(add_misaligned_address),
	    T(add_misaligned_size),
	    T(add_overflowing_span),
	    T(add_overlapping_span),
	    T(add_containing_span),
	    T(add_inside_span),
	    T(add_same_span),
	    T(add_fit_flag),
	    T(add_unknown_flag),
	    T(add_bad_with_vm_panic),
	    T(alloc_null_arena),
	    T(alloc_size_zero),
	    T(alloc_size_too_large_to_round),
	    T(alloc_unknown_flag),
	    T(alloc_two_fit_policies),
	    T(alloc_three_fit_policies),
	    T(alloc_cached_size_zero),
	    T(alloc_cached_unknown_flag),
	    T(alloc_exhausted_nosleep),
	    T(alloc_exhausted_abort),
	    T(alloc_exhausted_import_fails),
	    T(alloc_exhausted_vm_panic),
	    T(xalloc_null_arena),
	    T(xalloc_size_zero),
	    T(xalloc_size_too_large),
	    T(xalloc_align_not_pow2),
	    T(xalloc_align_not_quantum_multiple),
	    T(xalloc_phase_not_quantum_multiple),
	    T(xalloc_phase_not_below_align),
	    T(xalloc_nocross_not_pow2),
	    T(xalloc_nocross_not_quantum_multiple),
	    T(xalloc_align_above_nocross),
	    T(xalloc_phase_plus_size_above_nocross),
	    T(xalloc_size_above_nocross),
	    T(xalloc_minaddr_above_maxaddr),
	    T(xalloc_empty_range),
	    T(xalloc_range_smaller_than_size),
	    T(xalloc_unknown_flag),
	    T(xalloc_two_fit_policies),
	    T(xalloc_range_outside_spans),
	    T(xalloc_range_full),
	    T(xalloc_unsatisfiable_alignment),
	    T(xalloc_bad_with_vm_panic),
	    T(free_never_allocated),
	    T(free_of_free_space),
	    T(free_twice),
	    T(free_inside_segment),
	    T(free_unaligned_inside_segment),
	    T(free_size_smaller),
	    T(free_size_larger),
	    T(free_size_same_quanta),
	    T(free_size_zero),
	    T(free_to_wrong_arena),
	    T(xfree_to_wrong_arena),
	    T(free_of_xalloc_segment),
	    T(xfree_of_cached_object),
	    T(xfree_of_cached_object_first_in_slab),
	    T(xfree_of_cached_object_served_directly),
	    T(free_of_cached_xalloc_segment),
	    T(free_cached_never_allocated),
	    T(free_cached_twice),
	    T(free_from_child_to_source),
	    T(free_identifier_never_allocated),
	    T(free_null_arena),
	    T(bad_free_default_policy_aborts),
	    T(contains_null_arena),
	    T(contains_size_past_span),
	    T(walk_null_arena_or_callback),
	    T(walk_empty_mask),
	    T(size_null_arena_or_empty_mask),
	    T(kstat_bad_arguments),
	    T(qcache_kstat_bad_index),
	    T(set_error_policy_bad_value),
	    T(settings_on_null_arena),
	    T(id_space_create_null_name),
	    T(id_space_create_empty_range),
	    T(id_space_bad_extend_alloc_free),
	    T(bsd_create_bad_arguments),
	    T(bsd_bad_flags_and_ranges),
	    T(bsd_bad_frees),
	};
	int failed;

	failed = cmocka_run_group_tests(tests, NULL, NULL);
	fprintf(stderr, "bad inputs: %zu rows\n", sizeof(tests) / sizeof(tests[0]));
	return failed;
}
