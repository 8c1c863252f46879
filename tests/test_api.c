/*
 * The illumos API, function by function and flag by flag, with every
 * documented error path: exact addresses where the semantics fix them.
 */
#include "testutil.h"

#define PG   ((size_t)0x1000)
#define BASE ((uintptr_t)0x100000)

static vmem_t *page_arena(const char *name, size_t npages)
{
	vmem_t *vmp =
	    vmem_create(name, (void *)BASE, npages * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);

	assert_non_null(vmp);
	return vmp;
}

static uintptr_t A(vmem_t *vmp, size_t size, int flags)
{
	return (uintptr_t)vmem_alloc(vmp, size, flags);
}

/* ---- vmem_create / vmem_xcreate ----------------------------------------- */

static void test_create_basic(void **state)
{
	vmem_t *vmp;

	(void)state;
	vmp = vmem_create("basic", (void *)BASE, 16 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	assert_non_null(vmp);
	assert_string_equal(vmem_name(vmp), "basic");
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC | VMEM_FREE), 16 * PG);
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 16 * PG);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);

	/* An empty arena: no initial span. */
	vmp = vmem_create("empty", NULL, 0, 1, NULL, NULL, NULL, 0, VM_NOSLEEP);
	assert_non_null(vmp);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC | VMEM_FREE), 0);
	errno = 0;
	assert_null(vmem_alloc(vmp, 1, VM_NOSLEEP));
	assert_int_equal(errno, ENOMEM);
	vmem_destroy(vmp);
}

static void test_create_name_truncated(void **state)
{
	const char *longname = "this_arena_name_is_longer_than_thirty_characters";
	vmem_t *vmp;

	(void)state;
	vmp = vmem_create(longname, NULL, 0, 1, NULL, NULL, NULL, 0, VM_SLEEP);
	assert_non_null(vmp);
	assert_int_equal(strlen(vmem_name(vmp)), VMEM_NAMELEN);
	assert_memory_equal(vmem_name(vmp), longname, VMEM_NAMELEN);
	vmem_destroy(vmp);
}

static void expect_create_einval(const char *name, uintptr_t base, size_t size, size_t quantum,
                                 vmem_t *source, int flags)
{
	errno = 0;
	assert_null(vmem_create(name, (void *)base, size, quantum, source ? vmem_alloc : NULL,
	                        source ? vmem_free : NULL, source, 0, flags));
	assert_int_equal(errno, EINVAL);
}

static void test_create_errors(void **state)
{
	vmem_t *plain;

	(void)state;
	expect_create_einval(NULL, BASE, PG, PG, NULL, VM_SLEEP);
	expect_create_einval("q0", BASE, PG, 0, NULL, VM_SLEEP);
	expect_create_einval("q3", BASE, PG, 3, NULL, VM_SLEEP);
	expect_create_einval("q-not-pow2", BASE, 6 * PG, 3 * PG, NULL, VM_SLEEP);
	expect_create_einval("base0", 0, PG, PG, NULL, VM_SLEEP);
	expect_create_einval("size0", BASE, 0, PG, NULL, VM_SLEEP);
	expect_create_einval("misaligned-base", BASE + 1, PG, PG, NULL, VM_SLEEP);
	expect_create_einval("misaligned-size", BASE, PG + 1, PG, NULL, VM_SLEEP);
	expect_create_einval("overflow", UINTPTR_MAX - PG + 1, 2 * PG, PG, NULL, VM_SLEEP);
	expect_create_einval("badflags", BASE, PG, PG, NULL, VM_SLEEP | 0x40000000);
	plain = page_arena("plain", 4);
	expect_create_einval("ids", 0, 0, 1, plain, VM_SLEEP | VMC_IDENTIFIER);
	vmem_destroy(plain);
}

static void test_create_top_of_address_space(void **state)
{
	uintptr_t base = UINTPTR_MAX - 16 * PG + 1;
	vmem_t *vmp;
	uintptr_t a;

	(void)state;
	vmp = vmem_create("top", (void *)base, 16 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	assert_non_null(vmp);
	a = A(vmp, PG, VM_SLEEP | VM_ENDALLOC);
	assert_int_equal(a, UINTPTR_MAX - PG + 1);
	assert_int_equal(A(vmp, PG, VM_SLEEP), base);
	assert_int_equal(
	    (uintptr_t)vmem_xalloc(vmp, PG, 0, 0, 0, NULL, NULL, VM_NOSLEEP | VM_FIRSTFIT),
	    base + PG);
	assert_true(vmem_contains(vmp, (void *)(UINTPTR_MAX - 10), 11));
	assert_false(vmem_contains(vmp, (void *)(UINTPTR_MAX - 10), 12));
	assert_arena_ok(vmp);
	vmem_free(vmp, (void *)a, PG);
	vmem_free(vmp, (void *)base, PG);
	vmem_xfree(vmp, (void *)(base + PG), PG);
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 16 * PG);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

/* ---- vmem_add ------------------------------------------------------------------ */

static void test_add(void **state)
{
	vmem_t *vmp = vmem_create("add", NULL, 0, PG, NULL, NULL, NULL, 0, VM_SLEEP);

	(void)state;
	assert_ptr_equal(vmem_add(vmp, (void *)BASE, 4 * PG, VM_SLEEP), (void *)BASE);
	/* Adjacent spans are separate spans: a segment never crosses them. */
	assert_ptr_equal(vmem_add(vmp, (void *)(BASE + 4 * PG), 4 * PG, VM_NOSLEEP),
	                 (void *)(BASE + 4 * PG));
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 8 * PG);
	errno = 0;
	assert_null(vmem_alloc(vmp, 5 * PG, VM_NOSLEEP));
	assert_int_equal(errno, ENOMEM);
	/* Spans come back sorted by address whatever the order of adds. */
	assert_non_null(vmem_add(vmp, (void *)(BASE - 8 * PG), 2 * PG, VM_SLEEP));
	assert_int_equal(A(vmp, PG, VM_SLEEP | VM_FIRSTFIT), BASE - 8 * PG);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void test_add_errors(void **state)
{
	vmem_t *vmp = page_arena("adderr", 8);

	(void)state;
	errno = 0;
	assert_null(vmem_add(vmp, NULL, PG, VM_SLEEP));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_add(vmp, (void *)(BASE + 64 * PG), 0, VM_SLEEP));
	assert_int_equal(errno, EINVAL);
	errno = 0; /* overlaps the initial span */
	assert_null(vmem_add(vmp, (void *)(BASE + 7 * PG), 2 * PG, VM_SLEEP));
	assert_int_equal(errno, EINVAL);
	errno = 0; /* contains it */
	assert_null(vmem_add(vmp, (void *)(BASE - PG), 16 * PG, VM_SLEEP));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_add(vmp, (void *)(BASE + 64 * PG + 1), PG, VM_SLEEP));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_add(vmp, (void *)(UINTPTR_MAX - PG + 1), 2 * PG, VM_SLEEP));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_add(vmp, (void *)(BASE + 64 * PG), PG, VM_SLEEP | VM_BESTFIT));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 8 * PG);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

/* ---- instant fit, exact sizes, ENDALLOC ----------------------------------------- */

static void test_instant_fit_sequential(void **state)
{
	vmem_t *vmp = page_arena("instant", 16);

	(void)state;
	assert_int_equal(A(vmp, PG, VM_SLEEP), BASE);
	assert_int_equal(A(vmp, PG, VM_SLEEP), BASE + PG);
	assert_int_equal(A(vmp, 3 * PG, VM_SLEEP), BASE + 2 * PG);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 5 * PG);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void test_exact_sizes(void **state)
{
	vmem_t *vmp = page_arena("exact", 16);
	uintptr_t a, b;
	captured_t cap;

	(void)state;
	a = A(vmp, 100, VM_SLEEP);
	b = A(vmp, PG + 1, VM_SLEEP);
	assert_int_equal(a, BASE);
	assert_int_equal(b, BASE + PG); /* extents are quantum multiples */
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 100 + PG + 1);
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 16 * PG - 100 - PG - 1);
	/* The free must give the exact size. */
	capture_errors(&cap);
	vmem_free(vmp, (void *)a, PG);
	assert_int_equal(cap.n, 1);
	assert_int_equal(cap.kind[0], VMEM_ERR_SIZE_MISMATCH);
	assert_int_equal(cap.seg_size[0], 100);
	assert_non_null(strstr(cap.msg[0], "size mismatch"));
	assert_non_null(strstr(cap.msg[0], "'exact'"));
	release_errors();
	vmem_free(vmp, (void *)a, 100);
	vmem_free(vmp, (void *)b, PG + 1);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void test_endalloc(void **state)
{
	vmem_t *vmp = page_arena("endalloc", 16);
	uintptr_t end = BASE + 16 * PG;

	(void)state;
	assert_int_equal(A(vmp, PG, VM_SLEEP | VM_ENDALLOC), end - PG);
	/* A size that is not a quantum multiple still lands quantum-aligned. */
	assert_int_equal(A(vmp, 100, VM_SLEEP | VM_ENDALLOC), end - 2 * PG);
	assert_int_equal(A(vmp, 2 * PG, VM_SLEEP | VM_ENDALLOC | VM_BESTFIT), end - 4 * PG);
	assert_int_equal(A(vmp, PG, VM_SLEEP | VM_ENDALLOC | VM_FIRSTFIT), end - 5 * PG);
	assert_int_equal(
	    (uintptr_t)vmem_xalloc(vmp, PG, 4 * PG, 0, 0, NULL, NULL, VM_SLEEP | VM_ENDALLOC),
	    end - 8 * PG);
	/* Free now: [BASE, end - 8 pages) and 2 pages at end - 7 pages.  Instant
	 * fit takes the smaller list, from the bottom. */
	assert_int_equal(A(vmp, PG, VM_SLEEP), end - 7 * PG);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

/*
 * Free holes of 3, 1 and 2 pages (in address order), separated by
 * allocated pages, with the rest of the arena allocated.
 */
static vmem_t *holes_arena(uintptr_t *h3, uintptr_t *h1, uintptr_t *h2)
{
	vmem_t *vmp = page_arena("holes", 12);
	uintptr_t p[12];
	int i;

	for (i = 0; i < 12; i++)
		p[i] = A(vmp, PG, VM_SLEEP);
	/* pages: 0..2 hole3, 3 used, 4 hole1, 5 used, 6..7 hole2, 8..11 used */
	for (i = 0; i < 3; i++)
		vmem_free(vmp, (void *)p[i], PG);
	vmem_free(vmp, (void *)p[4], PG);
	vmem_free(vmp, (void *)p[6], PG);
	vmem_free(vmp, (void *)p[7], PG);
	*h3 = p[0];
	*h1 = p[4];
	*h2 = p[6];
	assert_arena_ok(vmp);
	return vmp;
}

static void test_bestfit(void **state)
{
	uintptr_t h3, h1, h2;
	vmem_t *vmp = holes_arena(&h3, &h1, &h2);

	(void)state;
	assert_int_equal(A(vmp, PG, VM_NOSLEEP | VM_BESTFIT), h1);
	assert_int_equal(A(vmp, PG, VM_NOSLEEP | VM_BESTFIT), h2);
	assert_int_equal(A(vmp, 2 * PG, VM_NOSLEEP | VM_BESTFIT), h3);
	/* Two one-page segments left: equal sizes go lowest address first. */
	assert_int_equal(A(vmp, PG, VM_NOSLEEP | VM_BESTFIT), h3 + 2 * PG);
	assert_int_equal(A(vmp, PG, VM_NOSLEEP | VM_BESTFIT), h2 + PG);
	assert_null(vmem_alloc(vmp, PG, VM_NOSLEEP | VM_BESTFIT));
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void test_firstfit(void **state)
{
	uintptr_t h3, h1, h2;
	vmem_t *vmp = holes_arena(&h3, &h1, &h2);

	(void)state;
	/* Lowest address that fits, not the most recently freed. */
	assert_int_equal(A(vmp, PG, VM_NOSLEEP | VM_FIRSTFIT), h3);
	assert_int_equal(A(vmp, 2 * PG, VM_NOSLEEP | VM_FIRSTFIT), h3 + PG);
	assert_int_equal(A(vmp, PG, VM_NOSLEEP | VM_FIRSTFIT), h1);
	/* With ENDALLOC: the highest-addressed fit, at its top. */
	assert_int_equal(A(vmp, PG, VM_NOSLEEP | VM_FIRSTFIT | VM_ENDALLOC), h2 + PG);
	assert_int_equal(A(vmp, PG, VM_NOSLEEP | VM_FIRSTFIT | VM_ENDALLOC), h2);
	assert_null(vmem_alloc(vmp, PG, VM_NOSLEEP | VM_FIRSTFIT));
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void test_instant_fit_lifo(void **state)
{
	uintptr_t h3, h1, h2;
	vmem_t *vmp = holes_arena(&h3, &h1, &h2);

	(void)state;
	/*
	 * Instant fit takes the head of the first list that guarantees a fit:
	 * for 1 page, list 2^12 holds h1 only; for 2 pages, h2 and h3 share
	 * list 2^13 and the more recently freed (h2) comes first.
	 */
	assert_int_equal(A(vmp, 2 * PG, VM_NOSLEEP), h2);
	assert_int_equal(A(vmp, PG, VM_NOSLEEP), h1);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void test_nextfit_identifiers(void **state)
{
	vmem_t *ids =
	    vmem_create("ids", (void *)1, 10, 1, NULL, NULL, NULL, 0, VM_SLEEP | VMC_IDENTIFIER);
	uintptr_t id;
	int i;

	(void)state;
	assert_non_null(ids);
	for (i = 1; i <= 5; i++)
		assert_int_equal(A(ids, 1, VM_SLEEP | VM_NEXTFIT), i);
	vmem_free(ids, (void *)2, 1);
	/* Next fit continues after the last id, not at the freed one. */
	assert_int_equal(A(ids, 1, VM_SLEEP | VM_NEXTFIT), 6);
	for (i = 7; i <= 10; i++)
		assert_int_equal(A(ids, 1, VM_SLEEP | VM_NEXTFIT), i);
	/* Then it wraps around to the lowest free id. */
	assert_int_equal(A(ids, 1, VM_SLEEP | VM_NEXTFIT), 2);
	assert_null(vmem_alloc(ids, 1, VM_NOSLEEP | VM_NEXTFIT));
	vmem_free(ids, (void *)7, 1);
	vmem_free(ids, (void *)3, 1);
	assert_int_equal(A(ids, 1, VM_SLEEP | VM_NEXTFIT), 3);
	assert_int_equal(A(ids, 1, VM_SLEEP | VM_NEXTFIT), 7);
	/* ENDALLOC has no effect with NEXTFIT. */
	vmem_free(ids, (void *)1, 1);
	vmem_free(ids, (void *)10, 1);
	id = A(ids, 1, VM_SLEEP | VM_NEXTFIT | VM_ENDALLOC);
	assert_int_equal(id, 10);
	assert_int_equal(vmem_size(ids, VMEM_ALLOC), 9);
	assert_arena_ok(ids);
	for (i = 2; i <= 10; i++)
		vmem_free(ids, (void *)(uintptr_t)i, 1);
	assert_int_equal(vmem_size(ids, VMEM_ALLOC), 0);
	vmem_destroy(ids);
}

static void test_alloc_errors(void **state)
{
	vmem_t *vmp = page_arena("allocerr", 4);

	(void)state;
	errno = 0;
	assert_null(vmem_alloc(vmp, 0, VM_SLEEP));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_alloc(vmp, PG, VM_SLEEP | VM_BESTFIT | VM_FIRSTFIT));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_alloc(vmp, PG, VM_SLEEP | VM_NEXTFIT | VM_FIRSTFIT));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_alloc(vmp, PG, 0x10000));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_alloc(vmp, SIZE_MAX, VM_SLEEP));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_alloc(NULL, PG, VM_SLEEP));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_alloc(vmp, 5 * PG, VM_NOSLEEP));
	assert_int_equal(errno, ENOMEM);
	/* VM_ABORT: fail at once even though VM_SLEEP was asked. */
	errno = 0;
	assert_null(vmem_alloc(vmp, 5 * PG, VM_SLEEP | VM_ABORT));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 4 * PG);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

/* ---- vmem_xalloc ---------------------------------------------------------------- */

static void test_xalloc_constraints(void **state)
{
	vmem_t *vmp =
	    vmem_create("x", (void *)0x10000, 0x100000, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	uintptr_t a;

	(void)state;
	a = (uintptr_t)vmem_xalloc(vmp, PG, 0x10000, 0x3000, 0, NULL, NULL, VM_SLEEP);
	assert_int_equal(a % 0x10000, 0x3000);
	a = (uintptr_t)vmem_xalloc(vmp, 3 * PG, 0, 0, 0x4000, NULL, NULL, VM_SLEEP | VM_FIRSTFIT);
	assert_true(a / 0x4000 == (a + 3 * PG - 1) / 0x4000);
	/* minaddr inclusive, maxaddr exclusive. */
	a = (uintptr_t)vmem_xalloc(vmp, PG, 0, 0, 0, (void *)0x50000, (void *)0x51000, VM_NOSLEEP);
	assert_int_equal(a, 0x50000);
	assert_null(vmem_xalloc(vmp, PG, 0, 0, 0, (void *)0x50000, (void *)0x51000, VM_NOSLEEP));
	a = (uintptr_t)vmem_xalloc(vmp, PG, 0, 0, 0, (void *)0x50000, (void *)0x52000,
	                           VM_NOSLEEP | VM_ENDALLOC);
	assert_int_equal(a, 0x51000);
	/* All together. */
	a = (uintptr_t)vmem_xalloc(vmp, 2 * PG, 0x8000, 0x1000, 0x10000, (void *)0x60000,
	                           (void *)0x80000, VM_NOSLEEP | VM_BESTFIT);
	assert_true(a >= 0x60000 && a + 2 * PG <= 0x80000);
	assert_int_equal(a % 0x8000, 0x1000);
	assert_true(a / 0x10000 == (a + 2 * PG - 1) / 0x10000);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void test_xalloc_nocross_moves(void **state)
{
	/* A free range that starts just before a boundary: the fit moves past it. */
	vmem_t *vmp =
	    vmem_create("nocross", (void *)0xE000, 0x6000, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	uintptr_t a;

	(void)state;
	a = (uintptr_t)vmem_xalloc(vmp, 3 * PG, 0, 0, 0x10000, NULL, NULL, VM_NOSLEEP);
	assert_int_equal(a, 0x10000);
	assert_null(vmem_xalloc(vmp, 3 * PG, 0, 0, 0x10000, NULL, NULL, VM_NOSLEEP));
	assert_int_equal((uintptr_t)vmem_xalloc(vmp, 2 * PG, 0, 0, 0x10000, NULL, NULL, VM_NOSLEEP),
	                 0xE000);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void expect_xalloc_einval(vmem_t *vmp, size_t size, size_t align, size_t phase,
                                 size_t nocross, uintptr_t min, uintptr_t max, int flags)
{
	errno = 0;
	assert_null(vmem_xalloc(vmp, size, align, phase, nocross, (void *)min, (void *)max, flags));
	assert_int_equal(errno, EINVAL);
}

/*
 * maxaddr bounds the caller's range [a, a + size), not the extent rounded
 * up to the quantum (vmem_alloc(9F): "the maximum address which may be
 * included in the segment"; illumos compares start + size with it).
 */
static void test_xalloc_maxaddr_bounds_callers_size(void **state)
{
	vmem_t *vmp =
	    vmem_create("xq", (void *)0x100000, 0x100000, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	uintptr_t top = (uintptr_t)0 - PG, a;

	(void)state;
	a = (uintptr_t)vmem_xalloc(vmp, 0x800, 0, 0, 0, (void *)0x101000, (void *)0x101800,
	                           VM_NOSLEEP);
	assert_int_equal(a, 0x101000);
	a = (uintptr_t)vmem_xalloc(vmp, 0x800, 0, 0, 0, NULL, (void *)0x102800,
	                           VM_NOSLEEP | VM_ENDALLOC);
	assert_int_equal(a, 0x102000);
	/* One byte more than fits below maxaddr: the next page down. */
	a = (uintptr_t)vmem_xalloc(vmp, 0x801, 0, 0, 0, NULL, (void *)0x104800,
	                           VM_NOSLEEP | VM_ENDALLOC);
	assert_int_equal(a, 0x103000);
	/* A range wide enough for the size but holding no quantum-aligned start. */
	expect_xalloc_einval(vmp, 0x800, 0, 0, 0, 0x105400, 0x105c00, VM_NOSLEEP);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0x800 + 0x800 + 0x801);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);

	/* At the top of the address space: maxaddr 2^64 - 0x800 admits the last page. */
	vmp = vmem_create("xtop", (void *)top, PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	a = (uintptr_t)vmem_xalloc(vmp, 0x800, 0, 0, 0, NULL, (void *)(top + 0x800), VM_NOSLEEP);
	assert_int_equal(a, top);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

static void test_xalloc_errors(void **state)
{
	vmem_t *vmp = page_arena("xerr", 64);

	(void)state;
	expect_xalloc_einval(vmp, 0, 0, 0, 0, 0, 0, VM_SLEEP);            /* size 0 */
	expect_xalloc_einval(vmp, PG, 3 * PG, 0, 0, 0, 0, VM_SLEEP);      /* align not 2^n */
	expect_xalloc_einval(vmp, PG, 0x800, 0, 0, 0, 0, VM_SLEEP);       /* align < quantum */
	expect_xalloc_einval(vmp, PG, 4 * PG, 4 * PG, 0, 0, 0, VM_SLEEP); /* phase >= align */
	expect_xalloc_einval(vmp, PG, 4 * PG, 0x800, 0, 0, 0, VM_SLEEP);  /* phase misaligned */
	expect_xalloc_einval(vmp, 4 * PG, 0, 0, 2 * PG, 0, 0, VM_SLEEP);  /* nocross < size */
	expect_xalloc_einval(vmp, PG, 0, 0, 3 * PG, 0, 0, VM_SLEEP);      /* nocross not 2^n */
	expect_xalloc_einval(vmp, PG, 8 * PG, 0, 4 * PG, 0, 0, VM_SLEEP); /* align > nocross */
	expect_xalloc_einval(vmp, 2 * PG, 4 * PG, 3 * PG, 4 * PG, 0, 0, VM_SLEEP); /* phase+size */
	expect_xalloc_einval(vmp, PG, 0, 0, 0, BASE + 8 * PG, BASE + 4 * PG,
	                     VM_SLEEP);                                        /* min>max */
	expect_xalloc_einval(vmp, 2 * PG, 0, 0, 0, BASE, BASE + PG, VM_SLEEP); /* range < size */
	expect_xalloc_einval(vmp, PG, 0, 0, 0, 0, 0, VM_SLEEP | VM_BESTFIT | VM_FIRSTFIT);
	expect_xalloc_einval(NULL, PG, 0, 0, 0, 0, 0, VM_SLEEP);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

/* ---- frees: errors are reported, nothing is lost ---------------------------------- */

static void test_bad_frees_continue(void **state)
{
	vmem_t *vmp = page_arena("badfree", 16), *other = page_arena("other", 4);
	uintptr_t a, b, o;
	captured_t cap;
	uint64_t errs = vmem_error_count();

	(void)state;
	a = A(vmp, 2 * PG, VM_SLEEP);
	b = A(vmp, PG, VM_SLEEP);
	/* other's span starts at the same BASE: move it out of the way. */
	vmem_destroy(other);
	other = vmem_create("other", (void *)0x900000, 4 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	o = A(other, PG, VM_SLEEP);
	capture_errors(&cap);

	vmem_free(vmp, (void *)(BASE + 10 * PG), PG); /* free space */
	vmem_free(vmp, (void *)(a + PG), PG);         /* inside a segment */
	vmem_free(vmp, (void *)a, PG);                /* wrong size */
	vmem_free(vmp, (void *)o, PG);                /* belongs to 'other' */
	vmem_free(vmp, (void *)0x12345000, PG);       /* nowhere */
	vmem_xfree(vmp, (void *)b, PG);
	vmem_xfree(vmp, (void *)b, PG); /* second free of b */

	assert_int_equal(cap.n, 6);
	assert_int_equal(cap.kind[0], VMEM_ERR_BAD_FREE);
	assert_non_null(strstr(cap.msg[0], "bad free"));
	assert_int_equal(cap.kind[1], VMEM_ERR_INTERIOR_FREE);
	assert_int_equal(cap.seg_size[1], 2 * PG);
	assert_int_equal(cap.kind[2], VMEM_ERR_SIZE_MISMATCH);
	assert_int_equal(cap.kind[3], VMEM_ERR_WRONG_ARENA);
	assert_non_null(strstr(cap.msg[3], "'other'"));
	assert_int_equal(cap.kind[4], VMEM_ERR_BAD_FREE);
	assert_int_equal(cap.addr[4], 0x12345000);
	/* Only the debug library remembers the first free. */
	assert_int_equal(cap.kind[5],
	                 vmem_debug_enabled() ? VMEM_ERR_DOUBLE_FREE : VMEM_ERR_BAD_FREE);
	assert_int_equal(cap.addr[5], b);
	assert_int_equal(vmem_error_count() - errs, 6);
	release_errors();

	/* Nothing was lost or corrupted. */
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 2 * PG);
	assert_int_equal(vmem_size(other, VMEM_ALLOC), PG);
	assert_arena_ok(vmp);
	assert_arena_ok(other);
	vmem_free(vmp, (void *)a, 2 * PG);
	vmem_free(other, (void *)o, PG);
	vmem_destroy(vmp);
	vmem_destroy(other);
}

static void double_free_child(void *arg)
{
	vmem_t *vmp = page_arena("dies", 4);
	void *p = vmem_alloc(vmp, PG, VM_SLEEP);

	(void)arg;
	vmem_free(vmp, p, PG);
	vmem_free(vmp, p, PG);
}

static void test_bad_free_aborts_by_default(void **state)
{
	char out[4096];
	int status;

	(void)state;
	status = run_child(double_free_child, NULL, out, sizeof(out));
	assert_aborted(status);
	/* "bad free" from libvmem; libvmem-debug knows it is a "double free" */
	assert_non_null(strstr(out, vmem_debug_enabled()
	                                ? "libvmem: vmem_free('dies', 0x100000, 4096): double free"
	                                : "libvmem: vmem_free('dies', 0x100000, 4096): bad free"));
}

static void panic_child(void *arg)
{
	vmem_t *vmp = page_arena("panics", 1);

	(void)arg;
	(void)vmem_alloc(vmp, 2 * PG, VM_NOSLEEP | VM_PANIC);
}

static void test_vm_panic_aborts(void **state)
{
	char out[4096];
	int status;

	(void)state;
	status = run_child(panic_child, NULL, out, sizeof(out));
	assert_aborted(status);
	assert_non_null(strstr(out, "cannot satisfy mandatory allocation"));
}

static void einval_panic_child(void *arg)
{
	vmem_t *vmp = page_arena("panics2", 1);

	(void)arg;
	(void)vmem_xalloc(vmp, PG, 3 * PG, 0, 0, NULL, NULL, VM_PANIC);
}

static void test_vm_panic_on_bad_arguments(void **state)
{
	char out[4096];

	(void)state;
	assert_aborted(run_child(einval_panic_child, NULL, out, sizeof(out)));
	assert_non_null(strstr(out, "parameters inconsistent or invalid"));
}

static void test_error_policy_api(void **state)
{
	(void)state;
	errno = 0;
	assert_int_equal(vmem_set_error_policy(7), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(vmem_set_error_policy(VMEM_ERRORS_CONTINUE), VMEM_ERRORS_ABORT);
	assert_int_equal(vmem_get_error_policy(), VMEM_ERRORS_CONTINUE);
	assert_int_equal(vmem_set_error_policy(VMEM_ERRORS_ABORT), VMEM_ERRORS_CONTINUE);
}

/* ---- contains, walk, size ------------------------------------------------------------ */

static void test_contains(void **state)
{
	vmem_t *vmp = page_arena("contains", 4);

	(void)state;
	assert_non_null(vmem_add(vmp, (void *)(BASE + 4 * PG), 4 * PG, VM_SLEEP));
	assert_true(vmem_contains(vmp, (void *)BASE, PG));
	assert_true(vmem_contains(vmp, (void *)(BASE + 1), 4 * PG - 1));
	assert_false(vmem_contains(vmp, (void *)(BASE + 1), 4 * PG)); /* crosses into span 2 */
	assert_true(vmem_contains(vmp, (void *)(BASE + 4 * PG), 4 * PG));
	assert_false(vmem_contains(vmp, (void *)(BASE - 1), 2));
	assert_false(vmem_contains(vmp, (void *)(BASE + 8 * PG), 1));
	assert_true(vmem_contains(vmp, (void *)(BASE + 5), 0));
	assert_false(vmem_contains(vmp, (void *)(BASE + 2 * PG), SIZE_MAX));
	assert_int_equal(vmp->vm_ctr.vc_contains, 8);
	vmem_destroy(vmp);
}

typedef struct walk_rec {
	int n;
	uintptr_t addr[64];
	size_t size[64];
} walk_rec_t;

static void record(void *arg, void *addr, size_t size)
{
	walk_rec_t *w = arg;

	w->addr[w->n] = (uintptr_t)addr;
	w->size[w->n] = size;
	w->n++;
}

static void test_walk_and_size(void **state)
{
	vmem_t *vmp = page_arena("walk", 8);
	walk_rec_t w;
	uintptr_t a, b;

	(void)state;
	a = A(vmp, 100, VM_SLEEP);
	b = A(vmp, 2 * PG, VM_SLEEP);
	assert_non_null(vmem_add(vmp, (void *)(BASE + 16 * PG), 2 * PG, VM_SLEEP));

	memset(&w, 0, sizeof(w));
	vmem_walk(vmp, VMEM_ALLOC, record, &w);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.addr[0], a);
	assert_int_equal(w.size[0], 100); /* the caller's size */
	assert_int_equal(w.addr[1], b);
	assert_int_equal(w.size[1], 2 * PG);

	memset(&w, 0, sizeof(w));
	vmem_walk(vmp, VMBM_FREE, record, &w);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.addr[0], BASE + 3 * PG);
	assert_int_equal(w.size[0], 5 * PG);
	assert_int_equal(w.addr[1], BASE + 16 * PG);

	memset(&w, 0, sizeof(w));
	vmem_walk(vmp, VMEM_SPAN, record, &w);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.addr[0], BASE);
	assert_int_equal(w.size[0], 8 * PG);
	assert_int_equal(w.size[1], 2 * PG);

	memset(&w, 0, sizeof(w));
	vmem_walk(vmp, VMEM_ALLOC | VMEM_FREE | VMEM_SPAN, record, &w);
	assert_int_equal(w.n, 6); /* address order: span, a, b, free, span, free */
	assert_int_equal(w.addr[0], BASE);
	assert_int_equal(w.addr[1], a);
	assert_int_equal(w.addr[4], BASE + 16 * PG);

	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 100 + 2 * PG);
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 10 * PG - 100 - 2 * PG);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC | VMEM_FREE), 10 * PG);
	assert_int_equal(vmem_size(vmp, VMEM_SPAN), 10 * PG);
	assert_int_equal(vmem_size(vmp, 0), 0);
	vmem_free(vmp, (void *)a, 100);
	vmem_free(vmp, (void *)b, 2 * PG);
	vmem_destroy(vmp);
}

typedef struct reentrant_ctx {
	vmem_t *vmp;
	int calls;
	uintptr_t freed_total;
} reentrant_ctx_t;

/* Frees every allocated segment it is shown, and allocates one page once. */
static void free_in_walk(void *arg, void *addr, size_t size)
{
	reentrant_ctx_t *c = arg;

	c->calls++;
	vmem_free(c->vmp, addr, size);
	c->freed_total += size;
	if (c->calls == 1)
		assert_non_null(vmem_alloc(c->vmp, PG, VM_NOSLEEP | VM_FIRSTFIT | VM_ENDALLOC));
}

static void test_walk_reentrant(void **state)
{
	vmem_t *vmp = page_arena("reentrant", 16);
	reentrant_ctx_t c = {vmp, 0, 0};
	int i;

	(void)state;
	for (i = 0; i < 8; i++)
		assert_non_null(vmem_alloc(vmp, PG, VM_SLEEP));
	vmem_walk(vmp, VMEM_ALLOC | VMEM_REENTRANT, free_in_walk, &c);
	/* Saw the 8 pages and then the page allocated at the top meanwhile. */
	assert_int_equal(c.calls, 9);
	assert_arena_ok(vmp);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_int_equal(vmem_size(vmp, VMEM_FREE), 16 * PG);
	vmem_destroy(vmp);
}

/* ---- imports, span return, destroy ----------------------------------------------------- */

typedef struct source_log {
	int imports, releases;
	uintptr_t last_addr;
	size_t last_size;
} source_log_t;

static source_log_t slog;

static void *logged_import(vmem_t *src, size_t size, int flags)
{
	void *p = vmem_alloc(src, size, flags);

	if (p != NULL) {
		slog.imports++;
		slog.last_addr = (uintptr_t)p;
		slog.last_size = size;
	}
	return p;
}

static void logged_release(vmem_t *src, void *addr, size_t size)
{
	slog.releases++;
	slog.last_addr = (uintptr_t)addr;
	slog.last_size = size;
	vmem_free(src, addr, size);
}

static void test_import_and_return(void **state)
{
	vmem_t *src = page_arena("source", 64), *child;
	uintptr_t a, b;

	(void)state;
	memset(&slog, 0, sizeof(slog));
	child = vmem_create("child", NULL, 0, PG, logged_import, logged_release, src, 0, VM_SLEEP);
	assert_non_null(child);
	a = A(child, 3 * PG, VM_SLEEP);
	assert_int_equal(slog.imports, 1);
	assert_int_equal(slog.last_size, 3 * PG);
	assert_int_equal(a, slog.last_addr);
	assert_int_equal(vmem_size(src, VMEM_ALLOC), 3 * PG);
	assert_int_equal(child->vm_ctr.vc_mem_import, 3 * PG);
	b = A(child, PG, VM_SLEEP);
	assert_int_equal(slog.imports, 2);
	/* Freeing a leaves its span wholly free: it goes back at once, exactly. */
	vmem_free(child, (void *)a, 3 * PG);
	assert_int_equal(slog.releases, 1);
	assert_int_equal(slog.last_addr, a);
	assert_int_equal(slog.last_size, 3 * PG);
	assert_int_equal(vmem_size(src, VMEM_ALLOC), PG);
	assert_int_equal(vmem_size(child, VMEM_ALLOC | VMEM_FREE), PG);
	assert_arena_ok(child);
	assert_arena_ok(src);
	/* Destroy gives back what is left, and reports the leak. */
	{
		captured_t cap;

		capture_errors(&cap);
		vmem_destroy(child);
		release_errors();
		assert_int_equal(cap.n, 1);
		assert_int_equal(cap.kind[0], VMEM_ERR_LEAK);
		assert_int_equal(cap.count[0], 1);
		assert_int_equal(cap.bytes[0], PG);
		assert_non_null(strstr(cap.msg[0], "leaked 4096 bytes in 1 segment"));
	}
	(void)b;
	assert_int_equal(slog.releases, 2);
	assert_int_equal(vmem_size(src, VMEM_ALLOC), 0);
	assert_arena_ok(src);
	vmem_destroy(src);
}

static void *ximport_1m(vmem_t *src, size_t *sizep, size_t align, int flags)
{
	size_t size = (*sizep + 0xFFFFF) & ~(size_t)0xFFFFF;
	void *p = vmem_xalloc(src, size, align, 0, 0, NULL, NULL, flags);

	if (p != NULL)
		*sizep = size;
	return p;
}

static void test_xcreate_ximport(void **state)
{
	vmem_t *src =
	    vmem_create("src", (void *)0x10000000, 64 << 20, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child = vmem_xcreate("xchild", NULL, 0, PG, ximport_1m, vmem_xfree, src, 0,
	                             VM_SLEEP | VMC_XALIGN);
	uintptr_t a, b;

	(void)state;
	assert_non_null(child);
	a = A(child, PG, VM_SLEEP);
	b = A(child, PG, VM_SLEEP);
	/* One 1 MiB import serves both. */
	assert_int_equal(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 1 << 20);
	assert_int_equal(b, a + PG);
	/* VMC_XALIGN: an aligned request gets an aligned import. */
	a = (uintptr_t)vmem_xalloc(child, 2 << 20, 4 << 20, 0, 0, NULL, NULL, VM_SLEEP);
	assert_int_equal(a % (4 << 20), 0);
	assert_arena_ok(child);
	vmem_xfree(child, (void *)a, 2 << 20);
	vmem_free(child, (void *)b, PG);
	vmem_free(child, (void *)(b - PG), PG);
	assert_int_equal(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 0);
	assert_int_equal(vmem_size(src, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(src);
}

static void test_import_constrained(void **state)
{
	vmem_t *src =
	    vmem_create("csrc", (void *)0x10000000, 64 << 20, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child = vmem_create("cchild", NULL, 0, PG, vmem_alloc, vmem_free, src, 0, VM_SLEEP);
	uintptr_t a;

	(void)state;
	/* Alignment beyond the source's quantum: the import is padded. */
	a = (uintptr_t)vmem_xalloc(child, PG, 0x10000, 0x2000, 0, NULL, NULL, VM_NOSLEEP);
	assert_int_equal(a % 0x10000, 0x2000);
	/* nocross requests import too (unlike illumos). */
	a = (uintptr_t)vmem_xalloc(child, 3 * PG, 0, 0, 0x4000, NULL, NULL, VM_NOSLEEP);
	assert_true(a != 0 && a / 0x4000 == (a + 3 * PG - 1) / 0x4000);
	/* Address limits cannot be imported. */
	assert_null(vmem_xalloc(child, PG, 0, 0, 0, (void *)0x1000, (void *)0x2000, VM_NOSLEEP));
	assert_arena_ok(child);
	vmem_destroy(child); /* leaks reported on stderr; spans given back */
	assert_int_equal(vmem_size(src, VMEM_ALLOC), 0);
	vmem_destroy(src);
}

static void test_destroy_busy(void **state)
{
	vmem_t *src = page_arena("busy", 4);
	vmem_t *child =
	    vmem_create("importer", NULL, 0, PG, vmem_alloc, vmem_free, src, 0, VM_SLEEP);
	captured_t cap;

	(void)state;
	capture_errors(&cap);
	vmem_destroy(src);
	release_errors();
	assert_int_equal(cap.n, 1);
	assert_int_equal(cap.kind[0], VMEM_ERR_DESTROY_BUSY);
	assert_non_null(strstr(cap.msg[0], "'importer'"));
	/* Still usable. */
	assert_non_null(vmem_alloc(child, PG, VM_NOSLEEP));
	assert_arena_ok(src);
	vmem_destroy(child);
	vmem_destroy(src);
}

static void test_identifier_leak_wording(void **state)
{
	vmem_t *ids = vmem_create("idleak", (void *)1, 100, 1, NULL, NULL, NULL, 0,
	                          VM_SLEEP | VMC_IDENTIFIER);
	captured_t cap;

	(void)state;
	assert_non_null(vmem_alloc(ids, 3, VM_SLEEP));
	capture_errors(&cap);
	vmem_destroy(ids);
	release_errors();
	assert_int_equal(cap.n, 1);
	assert_non_null(strstr(cap.msg[0], "leaked 3 identifiers"));
}

static void test_no_qcache_min_import(void **state)
{
	vmem_t *src = page_arena("mi-src", 256);
	vmem_t *child = vmem_create("mi", NULL, 0, PG, vmem_alloc, vmem_free, src, 4 * PG,
	                            VM_SLEEP | VMC_NO_QCACHE);
	void *p;

	(void)state;
	p = vmem_alloc(child, PG, VM_SLEEP);
	/* slab size for qcache_max 4 pages: 2^highbit(12 pages) = 16 pages */
	assert_int_equal(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 16 * PG);
	vmem_free(child, p, PG);
	vmem_destroy(child);
	vmem_destroy(src);
}

static void test_limit(void **state)
{
	vmem_t *src = page_arena("lim-src", 64);
	vmem_t *child =
	    vmem_create("limited", NULL, 0, PG, vmem_alloc, vmem_free, src, 0, VM_SLEEP);
	void *a, *b;

	(void)state;
	vmem_set_limit(child, 4 * PG);
	a = vmem_alloc(child, 3 * PG, VM_NOSLEEP);
	assert_non_null(a);
	errno = 0;
	assert_null(vmem_alloc(child, 2 * PG, VM_NOSLEEP)); /* 3 + 2 > 4 */
	assert_int_equal(errno, ENOMEM);
	b = vmem_alloc(child, PG, VM_NOSLEEP);
	assert_non_null(b);
	assert_int_equal(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 4 * PG);
	vmem_set_limit(child, 0);
	assert_non_null(vmem_alloc(child, 2 * PG, VM_NOSLEEP));
	vmem_destroy(child);
	vmem_destroy(src);
}

static void *reclaim_held;
static int reclaim_calls, reclaim_flags;

static void reclaimer(vmem_t *vmp, int flags)
{
	reclaim_calls++;
	reclaim_flags = flags;
	if (reclaim_held != NULL) {
		vmem_free(vmp, reclaim_held, 2 * PG);
		reclaim_held = NULL;
	}
}

static void test_reclaim(void **state)
{
	vmem_t *vmp = page_arena("reclaim", 4);
	void *a, *b;

	(void)state;
	reclaim_held = vmem_alloc(vmp, 2 * PG, VM_SLEEP);
	a = vmem_alloc(vmp, 2 * PG, VM_SLEEP);
	vmem_set_reclaim(vmp, reclaimer);
	/* Full: the reclaim callback frees a cached segment and the retry succeeds. */
	b = vmem_alloc(vmp, 2 * PG, VM_NOSLEEP);
	assert_non_null(b);
	assert_int_equal(reclaim_calls, 1);
	assert_true(reclaim_flags & VM_NOSLEEP);
	/* Nothing left to reclaim: fails after asking. */
	assert_null(vmem_alloc(vmp, PG, VM_NOSLEEP));
	assert_int_equal(reclaim_calls, 2);
	/* VM_ABORT does not reclaim. */
	assert_null(vmem_alloc(vmp, PG, VM_SLEEP | VM_ABORT));
	assert_int_equal(reclaim_calls, 2);
	vmem_set_reclaim(vmp, NULL);
	vmem_free(vmp, a, 2 * PG);
	vmem_free(vmp, b, 2 * PG);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

/* ---- metadata ----------------------------------------------------------------------------- */

static void test_metadata_failure_is_clean(void **state)
{
	vmem_t *vmp = vmem_create("meta", (void *)BASE, 1 << 30, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	uintptr_t *addrs = calloc(20000, sizeof(*addrs));
	int n = 0, i;

	(void)state;
	/* Refuse every new mapping, then allocate until the records run out. */
	vmem__fault_map(0, -1);
	for (; n < 20000; n++) {
		addrs[n] = (uintptr_t)vmem_alloc(vmp, PG, VM_NOSLEEP);
		if (addrs[n] == 0)
			break;
	}
	assert_true(n < 20000);
	assert_int_equal(errno, ENOMEM);
	assert_true(vmp->vm_ctr.vc_populate_fail > 0);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), (size_t)n * PG);
	assert_arena_ok(vmp);
	/* Frees need no metadata. */
	for (i = 0; i < n; i += 2)
		vmem_free(vmp, (void *)addrs[i], PG);
	assert_arena_ok(vmp);
	vmem__fault_clear();
	for (i = 1; i < n; i += 2)
		vmem_free(vmp, (void *)addrs[i], PG);
	assert_int_equal(vmem_size(vmp, VMEM_ALLOC), 0);
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
	free(addrs);
}

static void test_hash_grows_and_shrinks(void **state)
{
	enum { N = 50000 };
	vmem_t *vmp =
	    vmem_create("hash", (void *)1, N, 1, NULL, NULL, NULL, 0, VM_SLEEP | VMC_IDENTIFIER);
	int i;

	(void)state;
	for (i = 0; i < N; i++)
		assert_int_equal(A(vmp, 1, VM_NOSLEEP), i + 1);
	assert_true(vmp->vm_hash_size >= N / 2);
	assert_true(vmp->vm_hash_size <= 4 * N);
	assert_arena_ok(vmp);
	for (i = 0; i < N; i++)
		vmem_free(vmp, (void *)(uintptr_t)(i + 1), 1);
	assert_int_equal(vmp->vm_hash_size, VMEM_HASH_INITIAL);
	assert_true(vmp->vm_ctr.vc_lookup < 2 * (uint64_t)N); /* chains stay short */
	assert_arena_ok(vmp);
	vmem_destroy(vmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_basic),
	    cmocka_unit_test(test_create_name_truncated),
	    cmocka_unit_test(test_create_errors),
	    cmocka_unit_test(test_create_top_of_address_space),
	    cmocka_unit_test(test_add),
	    cmocka_unit_test(test_add_errors),
	    cmocka_unit_test(test_instant_fit_sequential),
	    cmocka_unit_test(test_exact_sizes),
	    cmocka_unit_test(test_endalloc),
	    cmocka_unit_test(test_bestfit),
	    cmocka_unit_test(test_firstfit),
	    cmocka_unit_test(test_instant_fit_lifo),
	    cmocka_unit_test(test_nextfit_identifiers),
	    cmocka_unit_test(test_alloc_errors),
	    cmocka_unit_test(test_xalloc_constraints),
	    cmocka_unit_test(test_xalloc_nocross_moves),
	    cmocka_unit_test(test_xalloc_errors),
	    cmocka_unit_test(test_xalloc_maxaddr_bounds_callers_size),
	    cmocka_unit_test(test_bad_frees_continue),
	    cmocka_unit_test(test_bad_free_aborts_by_default),
	    cmocka_unit_test(test_vm_panic_aborts),
	    cmocka_unit_test(test_vm_panic_on_bad_arguments),
	    cmocka_unit_test(test_error_policy_api),
	    cmocka_unit_test(test_contains),
	    cmocka_unit_test(test_walk_and_size),
	    cmocka_unit_test(test_walk_reentrant),
	    cmocka_unit_test(test_import_and_return),
	    cmocka_unit_test(test_xcreate_ximport),
	    cmocka_unit_test(test_import_constrained),
	    cmocka_unit_test(test_destroy_busy),
	    cmocka_unit_test(test_identifier_leak_wording),
	    cmocka_unit_test(test_no_qcache_min_import),
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_reclaim),
	    cmocka_unit_test(test_metadata_failure_is_clean),
	    cmocka_unit_test(test_hash_grows_and_shrinks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
