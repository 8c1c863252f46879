/*
 * The BSD-flavoured API (<vmem/bsd.h>), used as a ported FreeBSD program
 * uses it: through the BSD names only.  This file never includes <vmem.h>;
 * what needs the illumos API or the core's internals is in
 * test_bsd_illumos.c (see test_bsd.h), linked into the same binary.
 *
 * Covered: every function of the header; the BSD conventions at their
 * edges (address 0 with base 0, maxaddr inclusive up to VMEM_ADDR_MAX,
 * frees of any size with the same quanta, sizes counted in quanta); the
 * flag mapping and its errors; a porting scenario (an arena importing
 * from a parent arena through vmem_set_import, with a limit and a reclaim
 * callback); M_WAITOK sleeping; vmem_print/vmem_printall; and a randomized
 * test of vmem_xalloc with random constraints on an arena of disjoint
 * spans, every result checked against the constraints and a model.
 * VMEM_BSD_OPS and VMEM_BSD_SEED override the random test's length and
 * seed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <time.h>
#include <unistd.h>

#include <vmem/bsd.h>

#include <cmocka.h>

#include "test_bsd.h"

#define Q ((vmem_size_t)16)

static vmem_addr_t A(vmem_t *vm, vmem_size_t size, int flags)
{
	vmem_addr_t addr = 0xdead;

	assert_int_equal(vmem_alloc(vm, size, flags, &addr), 0);
	return addr;
}

static vmem_addr_t X(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
                     vmem_size_t nocross, vmem_addr_t min, vmem_addr_t max, int flags)
{
	vmem_addr_t addr = 0xdead;

	assert_int_equal(vmem_xalloc(vm, size, align, phase, nocross, min, max, flags, &addr), 0);
	return addr;
}

/* ---- creation, sizes, flags ------------------------------------------------ */

static void test_create_and_sizes(void **state)
{
	vmem_t *vm;

	(void)state;
	vm = vmem_create("bsd-basic", 0x1000, 0x10000, Q, 0, M_WAITOK);
	assert_non_null(vm);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x10000);
	assert_int_equal(vmem_size(vm, VMEM_FREE), 0x10000);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	assert_int_equal(vmem_size(vm, VMEM_MAXFREE), 0x10000);
	assert_int_equal(vmem_size(vm, 0x40), 0); /* unknown mask */
	assert_int_equal(vmem_roundup_size(vm, 1), Q);
	assert_int_equal(vmem_roundup_size(vm, Q), Q);
	assert_int_equal(vmem_roundup_size(vm, Q + 1), 2 * Q);
	assert_int_equal(vmem_roundup_size(vm, SIZE_MAX), 0); /* would wrap */

	/* Sizes are counted in whole quanta. */
	assert_int_equal(A(vm, 20, M_NOWAIT | M_BESTFIT), 0x1000);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 32);
	assert_int_equal(vmem_size(vm, VMEM_FREE), 0x10000 - 32);
	assert_int_equal(vmem_size(vm, VMEM_MAXFREE), 0x10000 - 32);
	vmem_free(vm, 0x1000, 20);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);

	/* No initial span; M_NOWAIT creation; spans added later. */
	vm = vmem_create("bsd-empty", 0, 0, 1, 0, M_NOWAIT);
	assert_non_null(vm);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0);
	assert_int_equal(vmem_alloc(vm, 1, M_NOWAIT, NULL), ENOMEM);
	assert_int_equal(vmem_add(vm, 100, 10, M_WAITOK), 0);
	assert_int_equal(vmem_add(vm, 0, 10, M_NOWAIT), 0);
	assert_int_equal(vmem_size(vm, VMEM_MAXFREE), 10);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 20);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

static void test_create_errors(void **state)
{
	(void)state;
	errno = 0;
	assert_null(vmem_create(NULL, 0, 0, 1, 0, M_WAITOK));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_create("q3", 0, 0, 3, 0, M_WAITOK)); /* quantum not 2^k */
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_create("misaligned", 8, 0x100, 16, 0, M_WAITOK));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_create("wraps", VMEM_ADDR_MAX - 15, 32, 16, 0, M_WAITOK));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_create("flags", 0, 0x100, 16, 0, M_WAITOK | M_NOWAIT));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_create("flags", 0, 0x100, 16, 0, M_BESTFIT));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_create("flags", 0, 0x100, 16, 0, 0x4));
	assert_int_equal(errno, EINVAL);
}

static void test_flag_errors(void **state)
{
	vmem_t *vm = vmem_create("bsd-flags", 0x1000, 0x1000, Q, 0, M_WAITOK);
	vmem_addr_t addr = 0xdead;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(vmem_alloc(vm, Q, M_WAITOK | M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_alloc(vm, Q, M_NOWAIT | M_BESTFIT | M_FIRSTFIT, &addr), EINVAL);
	assert_int_equal(vmem_alloc(vm, Q, M_NOWAIT | M_NEXTFIT | M_BESTFIT, &addr), EINVAL);
	assert_int_equal(vmem_alloc(vm, Q, M_NOWAIT | 0x1, &addr), EINVAL); /* kernel M_NOWAIT */
	assert_int_equal(vmem_alloc(vm, 0, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_alloc(vm, SIZE_MAX, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_alloc(NULL, Q, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(addr, 0xdead); /* untouched on failure */
	assert_int_equal(vmem_add(vm, 0x10000, 0x1000, M_NOWAIT | M_BESTFIT), EINVAL);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	/* Neither M_WAITOK nor M_NOWAIT: may wait (FreeBSD userland), succeeds here. */
	assert_int_equal(A(vm, Q, 0), 0x1000);
	assert_int_equal(A(vm, Q, M_FIRSTFIT), 0x1010);
	vmem_free(vm, 0x1000, Q);
	vmem_free(vm, 0x1010, Q);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

/* ---- the BSD conventions ---------------------------------------------------- */

static void test_address_zero(void **state)
{
	vmem_t *vm;
	vmem_addr_t addr;

	(void)state;
	/* base 0: address 0 comes back through the out-parameter. */
	vm = vmem_create("bsd-zero", 0, 0x100, Q, 0, M_WAITOK);
	assert_non_null(vm);
	addr = 0xdead;
	assert_int_equal(vmem_alloc(vm, 1, M_NOWAIT | M_FIRSTFIT, &addr), 0);
	assert_int_equal(addr, 0);
	vmem_free(vm, 0, 1);
	/* NetBSD's unit test: 50 in [0, 49] is 0, then 25 in [0, 24] is 0 (quantum 1 there). */
	assert_int_equal(X(vm, 0x50, 0, 0, 0, 0, 0x4f, M_NOWAIT | M_BESTFIT), 0);
	vmem_xfree(vm, 0, 0x50);
	assert_int_equal(X(vm, 0x10, 0, 0, 0, 0, 0xf, M_NOWAIT | M_BESTFIT), 0);
	/* [0, 0xf] pins the first quantum; now taken, so ENOMEM. */
	assert_int_equal(vmem_xalloc(vm, 1, 0, 0, 0, 0, 0xf, M_NOWAIT, &addr), ENOMEM);
	/* A range smaller than the rounded size can never be met. */
	assert_int_equal(vmem_xalloc(vm, 1, 0, 0, 0, 0, 0, M_NOWAIT, &addr), EINVAL);
	vmem_xfree(vm, 0, 0x10);
	assert_int_equal(X(vm, 1, 0, 0, 0, 0, 0xf, M_NOWAIT), 0);
	/* Freeing address 0 is an ordinary free: the arena is whole again. */
	vmem_xfree(vm, 0, 1);
	assert_int_equal(vmem_size(vm, VMEM_MAXFREE), 0x100);
	/* Next fit from the start, best fit, and the high end all work near 0. */
	assert_int_equal(A(vm, Q, M_NOWAIT | M_NEXTFIT), 0);
	assert_int_equal(A(vm, Q, M_NOWAIT | M_NEXTFIT), Q);
	vmem_free(vm, 0, Q);
	vmem_free(vm, Q, Q);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);

	/* A span at 0 added to an empty arena. */
	vm = vmem_create("bsd-zero-add", 0, 0, 1, 0, M_WAITOK);
	assert_non_null(vm);
	assert_int_equal(vmem_add(vm, 0, 50, M_WAITOK), 0);
	assert_int_equal(vmem_add(vm, 40, 20, M_WAITOK), EINVAL); /* overlaps */
	assert_int_equal(X(vm, 50, 0, 0, 0, VMEM_ADDR_MIN, 49, M_NOWAIT | M_BESTFIT), 0);
	vmem_xfree(vm, 0, 50);
	assert_int_equal(X(vm, 25, 0, 0, 0, VMEM_ADDR_MIN, 24, M_NOWAIT | M_BESTFIT), 0);
	vmem_xfree(vm, 0, 25);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

static void test_maxaddr_inclusive(void **state)
{
	const vmem_addr_t T = VMEM_ADDR_MAX - 0xff; /* a 0x100 span ending at the top */
	vmem_t *vm;
	vmem_addr_t addr = 0xdead;

	(void)state;
	/* NetBSD's unit test, moved to the top of a 64-bit address space. */
	vm = vmem_create("bsd-top", 0, 0, 1, 0, M_WAITOK);
	assert_non_null(vm);
	assert_int_equal(vmem_add(vm, T, 0x100, M_WAITOK), 0);
	/* Ranges smaller than the size can never be met: EINVAL. */
	assert_int_equal(vmem_xalloc(vm, 0x101, 0, 0, 0, T, VMEM_ADDR_MAX, M_NOWAIT, &addr),
	                 EINVAL);
	assert_int_equal(vmem_xalloc(vm, 0x100, 0, 0, 0, T + 1, VMEM_ADDR_MAX, M_NOWAIT, &addr),
	                 EINVAL);
	assert_int_equal(vmem_xalloc(vm, 0x100, 0, 0, 0, T, VMEM_ADDR_MAX - 1, M_NOWAIT, &addr),
	                 EINVAL);
	assert_int_equal(addr, 0xdead);
	/* The whole span, whose last byte is VMEM_ADDR_MAX itself. */
	assert_int_equal(X(vm, 0x100, 0, 0, 0, T, VMEM_ADDR_MAX, M_NOWAIT | M_BESTFIT), T);
	assert_int_equal(vmem_size(vm, VMEM_FREE), 0);
	vmem_xfree(vm, T, 0x100);
	assert_int_equal(X(vm, 0x100, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT), T);
	vmem_xfree(vm, T, 0x100);

	/* Half taken: the other half fits only if maxaddr may be the top byte. */
	assert_int_equal(X(vm, 0x80, 0, 0, 0, T, T + 0x7f, M_NOWAIT), T);
	assert_int_equal(vmem_xalloc(vm, 0x80, 0, 0, 0, T, VMEM_ADDR_MAX - 1, M_NOWAIT, &addr),
	                 ENOMEM);
	assert_int_equal(X(vm, 0x80, 0, 0, 0, T, VMEM_ADDR_MAX, M_NOWAIT), T + 0x80);
	vmem_xfree(vm, T + 0x80, 0x80);
	/* A single address at the very top; next fit below it. */
	assert_int_equal(X(vm, 1, 0, 0, 0, VMEM_ADDR_MAX, VMEM_ADDR_MAX, M_NOWAIT), VMEM_ADDR_MAX);
	assert_int_equal(vmem_xalloc(vm, 1, 0, 0, 0, VMEM_ADDR_MAX, VMEM_ADDR_MAX, M_NOWAIT, &addr),
	                 ENOMEM);
	assert_int_equal(X(vm, 1, 0, 0, 0, 0, VMEM_ADDR_MAX - 1, M_NOWAIT | M_NEXTFIT), T + 0x80);
	vmem_xfree(vm, VMEM_ADDR_MAX, 1);
	vmem_xfree(vm, T + 0x80, 1);
	vmem_xfree(vm, T, 0x80);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);

	/* Inclusive in the middle of a span too: [0x1000, 0x100f] holds 16, [.., 0x100e] not. */
	vm = vmem_create("bsd-max", 0x1000, 0x1000, Q, 0, M_WAITOK);
	assert_non_null(vm);
	assert_int_equal(vmem_xalloc(vm, Q, 0, 0, 0, 0, 0x100e, M_NOWAIT, &addr), ENOMEM);
	assert_int_equal(X(vm, Q, 0, 0, 0, 0, 0x100f, M_NOWAIT), 0x1000);
	/* minaddr inclusive as well. */
	assert_int_equal(X(vm, 1, 0, 0, 0, 0x1ff0, 0x1fff, M_NOWAIT), 0x1ff0);
	assert_int_equal(vmem_xalloc(vm, 1, 0, 0, 0, 0x1ff1, VMEM_ADDR_MAX, M_NOWAIT, &addr),
	                 ENOMEM);
	vmem_xfree(vm, 0x1000, Q);
	vmem_xfree(vm, 0x1ff0, 1);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

static void test_create_top_and_whole(void **state)
{
	vmem_t *vm;
	vmem_addr_t addr;

	(void)state;
	/* An initial span ending at the top, and one starting at 0, in one arena. */
	vm = vmem_create("bsd-ends", VMEM_ADDR_MAX - 0xfff, 0x1000, 0x1000, 0, M_WAITOK);
	assert_non_null(vm);
	assert_int_equal(vmem_add(vm, 0, 0x1000, M_WAITOK), 0);
	/* Two equal best fits: either may come first. */
	{
		vmem_addr_t a1 = A(vm, 0x1000, M_NOWAIT | M_BESTFIT);
		vmem_addr_t a2 = A(vm, 0x1000, M_NOWAIT | M_BESTFIT);

		assert_true((a1 == 0 && a2 == VMEM_ADDR_MAX - 0xfff) ||
		            (a2 == 0 && a1 == VMEM_ADDR_MAX - 0xfff));
	}
	assert_int_equal(vmem_alloc(vm, 1, M_NOWAIT, &addr), ENOMEM);
	assert_int_equal(vmem_size(vm, VMEM_MAXFREE), 0);
	vmem_free(vm, VMEM_ADDR_MAX - 0xfff, 1); /* any size of the same quanta */
	vmem_free(vm, 0, 0xfff);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

static void test_free_rounded(void **state)
{
	vmem_t *vm = vmem_create("bsd-rounded", 0x1000, 0x1000, Q, 0, M_WAITOK);
	vmem_addr_t a, b;

	(void)state;
	assert_non_null(vm);
	/* 20 rounds to 32: any size in [17, 32] frees it. */
	a = A(vm, 20, M_NOWAIT | M_BESTFIT);
	vmem_free(vm, a, 17);
	a = A(vm, 20, M_NOWAIT | M_BESTFIT);
	vmem_free(vm, a, 32);
	b = X(vm, 1, 64, 16, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT | M_BESTFIT);
	assert_int_equal(b, 0x1010);
	vmem_xfree(vm, b, 16);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);

	/* Other sizes are still size mismatches: reported, nothing freed. */
	a = A(vm, 20, M_NOWAIT | M_BESTFIT);
	tb_capture_errors();
	vmem_free(vm, a, 16);
	vmem_free(vm, a, 33);
	vmem_free(vm, a + Q, 16);   /* inside the segment */
	vmem_xfree(vm, 0x1800, 16); /* never allocated */
	assert_int_equal(tb_nerrors(), 4);
	assert_string_equal(tb_error_kind(0), "size mismatch");
	assert_non_null(strstr(tb_error_msg(0), "vmem_free"));
	assert_string_equal(tb_error_kind(1), "size mismatch");
	assert_string_equal(tb_error_kind(2), "interior free");
	assert_string_equal(tb_error_kind(3), "bad free");
	assert_non_null(strstr(tb_error_msg(3), "vmem_xfree"));
	tb_release_errors();
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 32);
	vmem_free(vm, a, 20);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

/* ---- strategies and constraints ------------------------------------------- */

static void test_strategies(void **state)
{
	vmem_t *vm = vmem_create("bsd-fit", 0, 0x1000, Q, 0, M_WAITOK);
	vmem_addr_t a[16], addr;
	int i;

	(void)state;
	assert_non_null(vm);
	for (i = 0; i < 16; i++)
		a[i] = A(vm, 0x100, M_NOWAIT | M_NEXTFIT);
	for (i = 0; i < 16; i++)
		assert_int_equal(a[i], (vmem_addr_t)i * 0x100);
	assert_int_equal(vmem_alloc(vm, Q, M_NOWAIT | M_NEXTFIT, &addr), ENOMEM);
	/* Holes of 0x300 at 0x100 and 0x100 at 0xa00. */
	vmem_free(vm, a[1], 0x100);
	vmem_free(vm, a[2], 0x100);
	vmem_free(vm, a[3], 0x100);
	vmem_free(vm, a[10], 0x100);
	/* Best fit takes the smaller hole. */
	assert_int_equal(A(vm, 0x80, M_NOWAIT | M_BESTFIT), 0xa00);
	/* Next fit goes on from its rotor (the top) and wraps to the first fit. */
	assert_int_equal(A(vm, 0x80, M_NOWAIT | M_NEXTFIT), 0x100);
	assert_int_equal(A(vm, 0x80, M_NOWAIT | M_NEXTFIT), 0x180);
	/* M_FIRSTFIT (instant fit) returns some fitting segment. */
	addr = A(vm, 0x80, M_NOWAIT | M_FIRSTFIT);
	assert_true(addr == 0x200 || addr == 0x280 || addr == 0x300 || addr == 0x380 ||
	            addr == 0xa80);
	vmem_free(vm, addr, 0x80);
	vmem_free(vm, 0x100, 0x80);
	vmem_free(vm, 0x180, 0x80);
	vmem_free(vm, 0xa00, 0x80);
	for (i = 0; i < 16; i++) {
		if (i < 1 || (i > 3 && i != 10))
			vmem_free(vm, a[i], 0x100);
	}
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

static void test_xalloc_constraints(void **state)
{
	vmem_t *vm = vmem_create("bsd-x", 0x10000, 0x10000, Q, 0, M_WAITOK);
	vmem_addr_t a, b, c;

	(void)state;
	assert_non_null(vm);
	a = X(vm, 0x10, 0x1000, 0x30, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT | M_BESTFIT);
	assert_int_equal(a, 0x10030);
	/* nocross: 0x300 from 0x10f00 would cross 0x11000; it moves up. */
	b = X(vm, 0x300, 0, 0, 0x1000, 0x10f00, VMEM_ADDR_MAX, M_NOWAIT | M_BESTFIT);
	assert_int_equal(b, 0x11000);
	/* The range clips: the highest 0x100 that fits under maxaddr 0x1ffff. */
	c = X(vm, 0x100, 0x100, 0, 0, 0x1fe00, 0x1ffff, M_NOWAIT | M_NEXTFIT);
	assert_int_equal(c, 0x1fe00);
	vmem_xfree(vm, a, 0x10);
	vmem_xfree(vm, b, 0x2f1); /* rounds to 0x300 */
	vmem_xfree(vm, c, 0x100);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

static void test_xalloc_errors(void **state)
{
	vmem_t *vm = vmem_create("bsd-xerr", 0x10000, 0x1000, Q, 0, M_WAITOK);
	vmem_addr_t addr = 0xdead;
	const vmem_addr_t lo = VMEM_ADDR_MIN, hi = VMEM_ADDR_MAX;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(vmem_xalloc(vm, 0, 0, 0, 0, lo, hi, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_xalloc(vm, Q, 48, 0, 0, lo, hi, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_xalloc(vm, Q, 8, 0, 0, lo, hi, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_xalloc(vm, Q, 64, 64, 0, lo, hi, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_xalloc(vm, Q, 0, 16, 0, lo, hi, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_xalloc(vm, Q, 64, 0, 32, lo, hi, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_xalloc(vm, 64, 32, 16, 64, lo, hi, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_xalloc(vm, Q, 0, 0, 0, 0x2000, 0x1000, M_NOWAIT, &addr), EINVAL);
	assert_int_equal(vmem_xalloc(vm, Q, 0, 0, 0, lo, hi, M_NOWAIT | M_WAITOK, &addr), EINVAL);
	assert_int_equal(addr, 0xdead);
	/* Valid but impossible: ENOMEM under M_NOWAIT. */
	assert_int_equal(vmem_xalloc(vm, 0x2000, 0, 0, 0, lo, hi, M_NOWAIT, &addr), ENOMEM);
	assert_int_equal(vmem_xalloc(vm, Q, 0, 0, 0, 0x20000, hi, M_NOWAIT, &addr), ENOMEM);
	assert_int_equal(addr, 0xdead);
	/* addrp may be NULL (the man page allows it); the address is then known. */
	assert_int_equal(vmem_xalloc(vm, Q, 0, 0, 0, 0x10100, 0x1010f, M_NOWAIT, NULL), 0);
	vmem_xfree(vm, 0x10100, Q);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

/*
 * qcache_max is passed to the core: small vmem_alloc() sizes then come from
 * quantum caches.  The BSD conventions hold through them: address 0 is
 * handed out, frees may give any size of the same quanta, sizes count in
 * quanta.
 */
static void test_quantum_cache(void **state)
{
	enum { N = 256 };
	vmem_t *vm = vmem_create("bsd-qcache", 0, 0x10000, Q, 4 * Q, M_WAITOK);
	static vmem_addr_t got[N];
	static vmem_size_t sz[N];
	bool zero = false;
	int i, j;

	(void)state;
	assert_non_null(vm);
	for (i = 0; i < N; i++) {
		sz[i] = 1 + (vmem_size_t)(i * 7) % (4 * Q); /* 1 .. 64: every cache */
		got[i] = A(vm, sz[i], i % 2 ? M_NOWAIT : M_WAITOK);
		zero |= got[i] == 0;
	}
	assert_true(zero); /* the first slab starts at the arena's base, 0 */
	for (i = 0; i < N; i++) {
		vmem_size_t ri = vmem_roundup_size(vm, sz[i]);

		for (j = 0; j < i; j++) { /* pairwise disjoint */
			vmem_size_t rj = vmem_roundup_size(vm, sz[j]);

			assert_true(got[i] + ri <= got[j] || got[j] + rj <= got[i]);
		}
	}
	/* Any size of the same quanta frees an object. */
	for (i = 0; i < N; i++)
		vmem_free(vm, got[i], vmem_roundup_size(vm, sz[i]) - (vmem_size_t)i % Q);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

/* ---- porting scenario: imports, a limit, a reclaim callback ---------------- */

#define PG     ((vmem_size_t)0x1000)
#define IMPORT (16 * PG)

/* What the callbacks saw. */
static struct {
	vmem_t *parent;
	int imports, releases, reclaims, failed_imports;
	int import_flags, reclaim_flags;
	vmem_size_t imported, released;
	vmem_addr_t cache[64]; /* allocations the reclaim callback may give back */
	int ncache;
	vmem_size_t cache_size;
} cb;

/* A FreeBSD-style import: take the span from the parent arena. */
static int import_from_parent(void *arg, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	int err;

	assert_ptr_equal(arg, cb.parent);
	assert_int_equal(size % IMPORT, 0);
	cb.import_flags = flags;
	err = vmem_alloc(arg, size, flags, addrp);
	if (err == 0) {
		cb.imports++;
		cb.imported += size;
	} else {
		cb.failed_imports++;
	}
	return err;
}

static void release_to_parent(void *arg, vmem_addr_t addr, vmem_size_t size)
{
	cb.releases++;
	cb.released += size;
	vmem_free(arg, addr, size);
}

/* Give back one cached allocation per call. */
static void reclaim_cache(vmem_t *vm, int flags)
{
	cb.reclaims++;
	cb.reclaim_flags = flags;
	if (cb.ncache > 0)
		vmem_free(vm, cb.cache[--cb.ncache], cb.cache_size);
}

static void test_porting_import_limit(void **state)
{
	vmem_t *parent, *kva;
	vmem_addr_t addr, got[64];
	int n, i;

	(void)state;
	memset(&cb, 0, sizeof(cb));
	parent = vmem_create("kernel_arena", 0x40000000, 128 * PG, PG, 0, M_WAITOK);
	assert_non_null(parent);
	cb.parent = parent;
	kva = vmem_create("kva", 0, 0, PG, 0, M_WAITOK);
	assert_non_null(kva);
	vmem_set_import(kva, import_from_parent, release_to_parent, parent, IMPORT);
	vmem_set_limit(kva, 4 * IMPORT);

	/* Allocate pages until the limit stops the imports. */
	for (n = 0; n < 64; n++) {
		int err = vmem_alloc(kva, PG, M_NOWAIT | M_BESTFIT, &got[n]);

		if (err != 0) {
			assert_int_equal(err, ENOMEM);
			break;
		}
	}
	assert_int_equal(n, 64);
	assert_int_equal(vmem_alloc(kva, PG, M_NOWAIT, &addr), ENOMEM);
	assert_int_equal(cb.imports, 4);
	assert_int_equal(cb.failed_imports, 0); /* the limit, not the parent, said no */
	assert_int_equal(cb.imported, 4 * IMPORT);
	assert_int_equal(cb.import_flags, M_NOWAIT | M_FIRSTFIT); /* imports never wait */
	assert_int_equal(vmem_size(kva, VMEM_ALLOC | VMEM_FREE), 4 * IMPORT);
	assert_int_equal(vmem_size(parent, VMEM_ALLOC), 4 * IMPORT);
	for (i = 0; i < n; i++)
		assert_true(got[i] >= 0x40000000 && got[i] < 0x40000000 + 128 * PG);
	tb_assert_arena_ok(kva);

	/* Raising the limit lets imports go on; an aligned request imports padded. */
	vmem_set_limit(kva, 0);
	addr = X(kva, PG, 8 * PG, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT);
	assert_int_equal(addr % (8 * PG), 0);
	assert_int_equal(cb.imports, 5);
	vmem_xfree(kva, addr, PG); /* the whole span is free again: released */
	assert_int_equal(cb.releases, 1);
	vmem_set_limit(kva, 4 * IMPORT);

	/*
	 * At the limit, the reclaim callback runs with the request's flags and
	 * what it frees serves the request, M_NOWAIT or not.
	 */
	cb.cache_size = PG;
	for (i = 0; i < 3; i++)
		cb.cache[cb.ncache++] = got[--n];
	vmem_set_reclaim(kva, reclaim_cache);
	assert_int_equal(vmem_alloc(kva, PG, M_NOWAIT | M_NEXTFIT, &got[n]), 0);
	n++;
	assert_int_equal(cb.reclaims, 1);
	assert_int_equal(cb.reclaim_flags, M_NOWAIT | M_NEXTFIT);
	assert_int_equal(vmem_alloc(kva, PG, M_WAITOK | M_BESTFIT, &got[n]), 0);
	n++;
	assert_int_equal(cb.reclaims, 2);
	assert_int_equal(cb.reclaim_flags, M_WAITOK | M_BESTFIT);
	assert_int_equal(vmem_alloc(kva, PG, 0, &got[n]), 0); /* no flags: M_WAITOK, first fit */
	n++;
	assert_int_equal(cb.reclaim_flags, M_WAITOK | M_FIRSTFIT);
	/* Nothing left to reclaim: M_NOWAIT fails after the callback. */
	assert_int_equal(vmem_alloc(kva, PG, M_NOWAIT, &addr), ENOMEM);
	assert_true(cb.reclaims >= 4);
	vmem_set_reclaim(kva, NULL);
	i = cb.reclaims;
	assert_int_equal(vmem_alloc(kva, PG, M_NOWAIT, &addr), ENOMEM);
	assert_int_equal(cb.reclaims, i);

	/* Frees give the spans back as they empty; destroy gives back the rest. */
	for (i = 0; i < n / 2; i++)
		vmem_free(kva, got[i], PG);
	tb_assert_arena_ok(kva);
	tb_capture_errors();
	vmem_destroy(kva);
	assert_int_equal(tb_nerrors(), 1);
	assert_string_equal(tb_error_kind(0), "leak");
	tb_release_errors();
	assert_int_equal(cb.released, cb.imported);
	assert_int_equal(vmem_size(parent, VMEM_ALLOC), 0);
	tb_assert_arena_ok(parent);
	vmem_destroy(parent);
}

static int failing_import(void *arg, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	(void)arg;
	(void)size;
	(void)flags;
	(void)addrp;
	cb.failed_imports++;
	return ENOMEM;
}

static void test_set_import_replace(void **state)
{
	vmem_t *vm = vmem_create("bsd-imp", 0, 0, PG, 0, M_WAITOK);
	vmem_addr_t addr;

	(void)state;
	assert_non_null(vm);
	memset(&cb, 0, sizeof(cb));
	vmem_set_import(vm, failing_import, NULL, NULL, 0);
	assert_int_equal(vmem_alloc(vm, PG, M_NOWAIT, &addr), ENOMEM);
	assert_int_equal(cb.failed_imports, 1);
	/* Address-limited requests never import. */
	assert_int_equal(vmem_xalloc(vm, PG, 0, 0, 0, 0, 0xffffff, M_NOWAIT, &addr), ENOMEM);
	assert_int_equal(cb.failed_imports, 1);
	/* Removing the import: no more calls. */
	vmem_set_import(vm, NULL, NULL, NULL, 0);
	assert_int_equal(vmem_alloc(vm, PG, M_NOWAIT, &addr), ENOMEM);
	assert_int_equal(cb.failed_imports, 1);
	vmem_destroy(vm);
}

/* ---- M_WAITOK sleeps -------------------------------------------------------- */

typedef struct waiter {
	vmem_t *vm;
	int flags;
	_Atomic int done;
	int err;
	vmem_addr_t addr;
} waiter_t;

static void *waiter_main(void *arg)
{
	waiter_t *w = arg;

	w->err = vmem_alloc(w->vm, PG, w->flags, &w->addr);
	atomic_store(&w->done, 1);
	return NULL;
}

static void pause_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};

	nanosleep(&ts, NULL);
}

static void test_waitok_sleeps_until_free(void **state)
{
	vmem_t *vm = vmem_create("bsd-wait", 0, 2 * PG, PG, 0, M_WAITOK);
	waiter_t w[2] = {{vm, M_WAITOK, 0, -1, 1}, {vm, 0, 0, -1, 1}};
	pthread_t th[2];
	int i;

	(void)state;
	assert_non_null(vm);
	alarm(120); /* a lost wake-up fails the test instead of hanging it */
	assert_int_equal(A(vm, PG, M_NOWAIT), 0);
	assert_int_equal(A(vm, PG, M_NOWAIT), PG);
	for (i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, waiter_main, &w[i]);
	while (tb_nwaiters(vm) < 2)
		pause_ms(1);
	assert_int_equal(atomic_load(&w[0].done) + atomic_load(&w[1].done), 0);
	vmem_free(vm, PG, PG);
	vmem_free(vm, 0, PG);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	/* Both got a page, address 0 included, and they are different pages. */
	assert_int_equal(w[0].err, 0);
	assert_int_equal(w[1].err, 0);
	assert_true(w[0].addr < 2 * PG && w[1].addr < 2 * PG && w[0].addr != w[1].addr);
	assert_true(tb_nwaits(vm) >= 2);
	vmem_free(vm, w[0].addr, PG);
	vmem_free(vm, w[1].addr, PG);
	alarm(0);
	tb_assert_arena_ok(vm);
	vmem_destroy(vm);
}

/* ---- printing ---------------------------------------------------------------- */

static char outbuf[16384];
static size_t outlen;

static int capture_pr(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(outbuf + outlen, sizeof(outbuf) - outlen, fmt, ap);
	va_end(ap);
	if (n > 0)
		outlen +=
		    (size_t)n < sizeof(outbuf) - outlen ? (size_t)n : sizeof(outbuf) - outlen - 1;
	return n;
}

static void test_print(void **state)
{
	vmem_t *vm = vmem_create("bsd-print", 0, 0x1000, Q, 0, M_WAITOK);
	vmem_t *other = vmem_create("bsd-print-2", 0x100000, 0x100, 1, 0, M_WAITOK);
	char line[128];

	(void)state;
	assert_non_null(vm);
	assert_non_null(other);
	assert_int_equal(A(vm, 0x100, M_NOWAIT | M_BESTFIT), 0);
	assert_int_equal(vmem_add(vm, 0x10000, 0x100, M_WAITOK), 0);

	outlen = 0;
	vmem_print((vmem_addr_t)vm, "", capture_pr);
	snprintf(line, sizeof(line), "vmem %p 'bsd-print': quantum 16\n", (void *)vm);
	assert_non_null(strstr(outbuf, line));
	assert_non_null(
	    strstr(outbuf, "  size 4352, inuse 256, free 4096, maxfree 3840, imported 0\n"));
	assert_non_null(strstr(outbuf, "  spans 2 (0 imported), segments 1 inuse, 2 free\n"));
	assert_non_null(strstr(outbuf, "  order      inuse       free\n"));
	assert_non_null(strstr(outbuf, "  2^8            1          1\n")); /* 0x100, both */
	assert_non_null(strstr(outbuf, "  2^11           0          1\n")); /* 0xf00 */
	assert_null(strstr(outbuf, "span "));

	outlen = 0;
	vmem_print((vmem_addr_t)vm, "v", capture_pr);
	assert_non_null(
	    strstr(outbuf, "  span  0x0000000000000000-0x0000000000000fff size 4096\n"));
	assert_non_null(
	    strstr(outbuf, "    alloc 0x0000000000000000-0x00000000000000ff size 256\n"));
	assert_non_null(
	    strstr(outbuf, "    free  0x0000000000000100-0x0000000000000fff size 3840\n"));
	assert_non_null(strstr(outbuf, "  span  0x0000000000010000-0x00000000000100ff size 256\n"));

	outlen = 0;
	vmem_print((vmem_addr_t)&outlen, "", capture_pr);
	snprintf(line, sizeof(line), "vmem %#lx: not an arena\n", (unsigned long)&outlen);
	assert_string_equal(outbuf, line);

	outlen = 0;
	vmem_printall("", capture_pr);
	assert_non_null(strstr(outbuf, "'bsd-print': quantum 16\n"));
	assert_non_null(strstr(outbuf, "'bsd-print-2': quantum 1\n"));

	vmem_free(vm, 0, 0x100);
	vmem_destroy(other);
	vmem_destroy(vm);
}

/* ---- both APIs in one program ------------------------------------------------- */

static void test_both_apis(void **state)
{
	vmem_t *vm = vmem_create("bsd-both", 0, 0x1000, Q, 0, M_WAITOK);
	vmem_addr_t addr;

	(void)state;
	assert_non_null(vm);
	addr = A(vm, 0x40, M_NOWAIT | M_BESTFIT);
	assert_int_equal(addr, 0);
	tb_illumos_side(vm, addr, 0x40);
	vmem_free(vm, addr, 0x40);

	/* Leaks at destroy are reported as a warning, in quanta. */
	addr = A(vm, 0x31, M_NOWAIT);
	tb_capture_errors();
	vmem_destroy(vm);
	assert_int_equal(tb_nerrors(), 1);
	assert_string_equal(tb_error_kind(0), "leak");
	assert_non_null(strstr(tb_error_msg(0), "leaked 64 bytes in 1 segment"));
	tb_release_errors();
}

/* ---- randomized: random xalloc constraints against a model ------------------- */

typedef unsigned __int128 u128;

#define MAXFREE  4096
#define MAXLIVE  4096
#define NSPANS   5
#define ADDR_TOP ((u128)1 << 64)

/* A free interval [start, end) of the model; intervals are disjoint, sorted. */
typedef struct mfree {
	u128 start, end;
} mfree_t;

typedef struct mlive {
	vmem_addr_t addr;
	vmem_size_t size, rsize; /* asked, rounded */
	bool x;
} mlive_t;

typedef struct mreq {
	vmem_size_t size, rsize, align, phase, nocross;
	vmem_addr_t min, max;
	int flags; /* M_* */
	bool x;    /* vmem_xalloc (else vmem_alloc) */
} mreq_t;

static struct {
	mfree_t fr[MAXFREE];
	int nfree;
	mlive_t live[MAXLIVE];
	int nlive;
	u128 total;
	vmem_addr_t rotor;
	uint64_t rng;
} M;

static struct {
	uint64_t ok, nomem, einval, frees, badfrees;
	uint64_t at_zero, at_top, at_max; /* allocations touching the edges */
} st;

static uint64_t rnd(void)
{
	/* xorshift64* */
	M.rng ^= M.rng >> 12;
	M.rng ^= M.rng << 25;
	M.rng ^= M.rng >> 27;
	return M.rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t rn(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* The spans: disjoint and never adjacent (so free intervals never merge across). */
static const struct {
	vmem_addr_t start;
	vmem_size_t size;
} spans[NSPANS] = {
    {0, 0x4000},                              /* address 0 */
    {0x10000, 0x8000},                        /* */
    {0x20000, 0x100},                         /* small */
    {0x8000000000000000ULL - 0x2000, 0x4000}, /* across 2^63 */
    {VMEM_ADDR_MAX - 0x3fff, 0x4000},         /* the top byte */
};

static void model_insert_free(u128 start, u128 end)
{
	int i = 0;

	while (i < M.nfree && M.fr[i].start < start)
		i++;
	/* Coalesce with the neighbours it touches (always in the same span). */
	if (i > 0 && M.fr[i - 1].end == start) {
		M.fr[i - 1].end = end;
		if (i < M.nfree && M.fr[i].start == end) {
			M.fr[i - 1].end = M.fr[i].end;
			memmove(&M.fr[i], &M.fr[i + 1],
			        (size_t)(M.nfree - i - 1) * sizeof(mfree_t));
			M.nfree--;
		}
		return;
	}
	if (i < M.nfree && M.fr[i].start == end) {
		M.fr[i].start = start;
		return;
	}
	assert_true(M.nfree < MAXFREE);
	memmove(&M.fr[i + 1], &M.fr[i], (size_t)(M.nfree - i) * sizeof(mfree_t));
	M.fr[i] = (mfree_t){start, end};
	M.nfree++;
}

/* Take [t, t + rs) out of free interval i. */
static void model_take(int i, u128 t, u128 rs)
{
	mfree_t f = M.fr[i];

	assert_true(t >= f.start && t + rs <= f.end);
	memmove(&M.fr[i], &M.fr[i + 1], (size_t)(M.nfree - i - 1) * sizeof(mfree_t));
	M.nfree--;
	if (f.start < t)
		model_insert_free(f.start, t);
	if (t + rs < f.end)
		model_insert_free(t + rs, f.end);
}

/*
 * The lowest t in free interval f with t = phase (mod align), [t, t + rs)
 * inside f and inside [min, max], crossing no multiple of nocross.
 * Plain 128-bit arithmetic with division: a different method from the
 * core's, on purpose.
 */
static bool model_lowest_fit(const mfree_t *f, const mreq_t *r, u128 min, u128 *tp)
{
	u128 a = r->align ? r->align : Q, rs = r->rsize, nc = r->nocross;
	u128 lo = f->start > min ? f->start : min;
	u128 hi = f->end - 1 < (u128)r->max ? f->end - 1 : (u128)r->max;
	u128 t;

	if (lo > hi)
		return false;
	t = (lo + (a - 1 - r->phase)) / a * a + r->phase;
	for (;;) {
		if (t + rs - 1 > hi)
			return false;
		if (nc == 0 || t / nc == (t + rs - 1) / nc)
			break;
		t = (t + rs - 1) / nc * nc + r->phase;
	}
	*tp = t;
	return true;
}

/* The first interval (in address order) with a fit at or above min. */
static int model_first(const mreq_t *r, u128 min, u128 *tp)
{
	for (int i = 0; i < M.nfree; i++) {
		if (model_lowest_fit(&M.fr[i], r, min, tp))
			return i;
	}
	return -1;
}

/*
 * Constrained searches may settle (src/fit.c): after a bounded number of
 * misfits they take the best segment of at least the guaranteed size, which
 * admits the request wherever it starts.  0 when they never settle.
 */
static u128 model_guaranteed(const mreq_t *r)
{
	u128 a = r->align ? r->align : Q, g = (u128)r->rsize + a - Q;

	if (r->nocross != 0)
		g += (u128)r->rsize - Q + r->phase;
	return g > r->rsize ? g : 0;
}

/* Settled first/next fit: the lowest interval of size >= g with a fit, starting <= stop. */
static int model_settle_first(const mreq_t *r, u128 min, u128 stop, u128 *tp)
{
	u128 g = model_guaranteed(r);

	for (int i = 0; g != 0 && i < M.nfree && M.fr[i].start <= stop; i++) {
		if (M.fr[i].end - M.fr[i].start >= g && model_lowest_fit(&M.fr[i], r, min, tp))
			return i;
	}
	return -1;
}

/* Settled best fit: the size of the smallest interval of size >= g, or 0. */
static u128 model_settle_best_size(const mreq_t *r)
{
	u128 g = model_guaranteed(r), best = 0;

	for (int i = 0; g != 0 && i < M.nfree; i++) {
		u128 size = M.fr[i].end - M.fr[i].start;

		if (size >= g && (best == 0 || size < best))
			best = size;
	}
	return best;
}

/* The smallest interval with a fit (ties: lowest address). */
static int model_best(const mreq_t *r, u128 *tp)
{
	int best = -1;
	u128 t;

	for (int i = 0; i < M.nfree; i++) {
		u128 size = M.fr[i].end - M.fr[i].start;

		if ((best < 0 || size < M.fr[best].end - M.fr[best].start) &&
		    model_lowest_fit(&M.fr[i], r, r->min, &t)) {
			best = i;
			*tp = t;
		}
	}
	return best;
}

static bool is_pow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* Would FreeBSD assert on these arguments?  (Then we return EINVAL.) */
static bool model_valid(const mreq_t *r)
{
	vmem_size_t a = r->align ? r->align : Q;

	if (r->size == 0 || (r->flags & M_WAITOK))
		return false;
	if (((r->align | r->phase | r->nocross) & (Q - 1)) != 0 || !is_pow2(a) || r->phase >= a)
		return false;
	if (r->nocross != 0 &&
	    (!is_pow2(r->nocross) || a > r->nocross || (u128)r->phase + r->rsize > r->nocross))
		return false;
	return r->min <= r->max && (u128)r->max - r->min + 1 >= r->rsize;
}

static vmem_size_t random_size(void)
{
	switch (rn(8)) {
	case 0:
		return 1 + rn(Q);
	case 1:
		return 1 + rn(0x2000);
	default:
		return 1 + rn(0x200);
	}
}

static void random_range(mreq_t *r)
{
	int s = (int)rn(NSPANS);
	u128 span_end = (u128)spans[s].start + spans[s].size;

	switch (rn(7)) {
	case 0:
	case 1:
		r->min = VMEM_ADDR_MIN;
		r->max = VMEM_ADDR_MAX;
		return;
	case 6: { /* a window about the size of the request: ends at max or fails */
		u128 hi = (u128)spans[s].start + rn(spans[s].size / Q) * Q + Q - 1 - rn(2) * rn(Q);
		u128 lo = hi + 1 - r->rsize - rn(2) * rn(2 * Q);

		r->max = (vmem_addr_t)hi;
		r->min = lo > hi ? 0 : (vmem_addr_t)lo; /* lo wrapped below 0 */
		break;
	}
	case 2: /* ending exactly at, or just below, a span's last byte */
		r->min = rn(2) ? VMEM_ADDR_MIN : spans[s].start + rn(spans[s].size);
		r->max = (vmem_addr_t)(span_end - 1 - rn(2) * rn(Q + 1));
		break;
	case 3: /* starting at or just above a span's first byte */
		r->min = spans[s].start + rn(2) * rn(Q + 1);
		r->max = rn(2) ? VMEM_ADDR_MAX : (vmem_addr_t)(span_end - 1);
		break;
	default: { /* a random window in or around a span */
		u128 lo = (u128)spans[s].start + rn(spans[s].size + 0x100);
		u128 hi = lo + rn(spans[s].size);

		if (lo > (u128)VMEM_ADDR_MAX)
			lo = VMEM_ADDR_MAX;
		if (hi > (u128)VMEM_ADDR_MAX)
			hi = VMEM_ADDR_MAX;
		r->min = (vmem_addr_t)lo;
		r->max = (vmem_addr_t)hi;
		break;
	}
	}
	if (rn(50) == 0) { /* now and then, inverted */
		vmem_addr_t t = r->min;

		r->min = r->max;
		r->max = t;
	}
}

static void random_request(mreq_t *r)
{
	static const int strategies[] = {0, M_FIRSTFIT, M_BESTFIT, M_NEXTFIT};

	memset(r, 0, sizeof(*r));
	r->x = rn(4) != 0;
	r->size = rn(200) == 0 ? 0 : random_size();
	r->rsize = (r->size + Q - 1) & ~(Q - 1);
	r->flags = M_NOWAIT | strategies[rn(4)];
	if (rn(200) == 0)
		r->flags |= M_WAITOK; /* contradictory: EINVAL */
	r->min = VMEM_ADDR_MIN;
	r->max = VMEM_ADDR_MAX;
	if (!r->x)
		return;
	if (rn(3) != 0) {
		r->align = rn(3) == 0 ? 0 : Q << rn(10);
		if (r->align > Q)
			r->phase = rn(r->align / Q) * Q;
		if (rn(100) == 0)
			r->phase += rn(2) ? 8 : r->align; /* misaligned, or not below align */
	}
	if (rn(3) == 0) {
		vmem_size_t a = r->align ? r->align : Q;

		r->nocross = a << rn(6);
		while ((u128)r->phase + r->rsize > r->nocross && rn(20) != 0)
			r->nocross <<= 1;
		if (rn(100) == 0)
			r->nocross = 3 * Q;
	}
	random_range(r);
}

/* Check a successful allocation against the request and the model. */
static void check_placement(const mreq_t *r, vmem_addr_t addr)
{
	vmem_size_t a = r->align ? r->align : Q;
	u128 t, last = (u128)addr + r->rsize - 1;
	int i, want;

	assert_int_equal(addr % a, r->phase);
	assert_true(addr >= r->min && last <= r->max);
	if (r->nocross != 0)
		assert_true(addr / r->nocross == (uint64_t)(last / r->nocross));
	for (i = 0; i < M.nfree; i++) {
		if (M.fr[i].start <= addr && last < M.fr[i].end)
			break;
	}
	if (i == M.nfree)
		fail_msg("%#lx+%#lx is not free in the model", (unsigned long)addr,
		         (unsigned long)r->rsize);
	if (r->flags & M_NEXTFIT) {
		/* The lowest fit at or after the rotor, else the lowest fit (or settled). */
		u128 from = M.rotor > r->min ? M.rotor : r->min, ts = 0;
		int alt;

		want = model_first(r, from, &t);
		if (want >= 0) {
			alt = model_settle_first(r, from, r->max, &ts);
		} else {
			want = model_first(r, r->min, &t);
			alt = M.rotor == 0
			          ? -1
			          : model_settle_first(r, r->min,
			                               M.rotor - 1 < r->max ? M.rotor - 1 : r->max,
			                               &ts);
		}
		if ((want != i || (vmem_addr_t)t != addr) && (alt != i || (vmem_addr_t)ts != addr))
			fail_msg("next fit: %#lx, model %#lx (rotor %#lx)", (unsigned long)addr,
			         (unsigned long)t, (unsigned long)M.rotor);
	} else {
		/* Inside the free segment chosen, placement is at the lowest fit. */
		assert_true(model_lowest_fit(&M.fr[i], r, r->min, &t));
		assert_true(t == addr);
		/* Best fit chooses a smallest such segment (ties: any); instant fit any. */
		if (r->flags & M_BESTFIT) {
			int b = model_best(r, &t);

			assert_true(b >= 0);
			if (M.fr[i].end - M.fr[i].start != model_settle_best_size(r))
				assert_int_equal(M.fr[i].end - M.fr[i].start,
				                 M.fr[b].end - M.fr[b].start);
		}
	}
	model_take(i, addr, r->rsize);
}

static void do_alloc(vmem_t *vm, const mreq_t *r)
{
	vmem_addr_t addr = 0xdead;
	u128 t;
	int err;

	if (r->x)
		err = vmem_xalloc(vm, r->size, r->align, r->phase, r->nocross, r->min, r->max,
		                  r->flags, &addr);
	else
		err = vmem_alloc(vm, r->size, r->flags, &addr);
	if (!model_valid(r)) {
		assert_int_equal(err, EINVAL);
		st.einval++;
		return;
	}
	if (model_first(r, r->min, &t) < 0) {
		assert_int_equal(err, ENOMEM);
		st.nomem++;
		return;
	}
	if (err != 0)
		fail_msg("size %#lx align %#lx phase %#lx nocross %#lx [%#lx, %#lx] flags %#x: "
		         "error %d, the model has a fit at %#lx",
		         (unsigned long)r->size, (unsigned long)r->align, (unsigned long)r->phase,
		         (unsigned long)r->nocross, (unsigned long)r->min, (unsigned long)r->max,
		         r->flags, err, (unsigned long)t);
	check_placement(r, addr);
	st.at_zero += addr == 0;
	st.at_top += addr + (r->rsize - 1) == VMEM_ADDR_MAX;
	st.at_max += r->max != VMEM_ADDR_MAX && addr + (r->rsize - 1) == r->max;
	if (r->flags & M_NEXTFIT)
		M.rotor = addr + r->rsize; /* wraps to 0 at the top, as the core's */
	assert_true(M.nlive < MAXLIVE);
	M.live[M.nlive++] = (mlive_t){addr, r->size, r->rsize, r->x};
	st.ok++;
}

static void do_free(vmem_t *vm)
{
	int i = (int)rn((uint64_t)M.nlive);
	mlive_t l = M.live[i];
	vmem_size_t size = l.rsize - rn(Q); /* any size of the same quanta */

	if (rn(100) == 0) { /* a wrong size: reported, nothing changes */
		tb_capture_errors();
		vmem_free(vm, l.addr, l.rsize + Q);
		assert_int_equal(tb_nerrors(), 1);
		assert_string_equal(tb_error_kind(0), "size mismatch");
		tb_release_errors();
		st.badfrees++;
		return;
	}
	if (l.x)
		vmem_xfree(vm, l.addr, size);
	else
		vmem_free(vm, l.addr, size);
	model_insert_free(l.addr, (u128)l.addr + l.rsize);
	M.live[i] = M.live[--M.nlive];
	st.frees++;
}

/* vmem_size and the free segments (through the illumos walk) against the model. */
static void check_model(vmem_t *vm, bool segments)
{
	static uintptr_t start[MAXFREE];
	static size_t size[MAXFREE];
	u128 inuse = 0, maxfree = 0;
	size_t n;
	int i;

	for (i = 0; i < M.nlive; i++)
		inuse += M.live[i].rsize;
	for (i = 0; i < M.nfree; i++) {
		if (M.fr[i].end - M.fr[i].start > maxfree)
			maxfree = M.fr[i].end - M.fr[i].start;
	}
	assert_true(vmem_size(vm, VMEM_ALLOC) == inuse);
	assert_true(vmem_size(vm, VMEM_FREE) == M.total - inuse);
	assert_true(vmem_size(vm, VMEM_ALLOC | VMEM_FREE) == M.total);
	assert_true(vmem_size(vm, VMEM_MAXFREE) == maxfree);
	if (!segments)
		return;
	n = tb_free_segments(vm, start, size, MAXFREE);
	assert_int_equal(n, M.nfree);
	for (i = 0; i < M.nfree; i++) {
		assert_true(start[i] == M.fr[i].start);
		assert_true(size[i] == M.fr[i].end - M.fr[i].start);
	}
	tb_assert_arena_ok(vm);
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? strtoull(v, NULL, 0) : dflt;
}

static void test_random_xalloc_model(void **state)
{
	uint64_t ops = env_u64("VMEM_BSD_OPS", 60000), seed = env_u64("VMEM_BSD_SEED", 0x5eed);
	vmem_t *vm;
	uint64_t k;
	int s;

	(void)state;
	memset(&M, 0, sizeof(M));
	memset(&st, 0, sizeof(st));
	M.rng = seed ? seed : 1;
	print_message("random xalloc: %llu operations, seed %#llx\n", (unsigned long long)ops,
	              (unsigned long long)seed);
	vm = vmem_create("bsd-random", spans[0].start, spans[0].size, Q, 0, M_NOWAIT);
	assert_non_null(vm);
	model_insert_free(spans[0].start, spans[0].size);
	M.total = spans[0].size;
	for (s = 1; s < NSPANS; s++) {
		assert_int_equal(vmem_add(vm, spans[s].start, spans[s].size, M_NOWAIT), 0);
		model_insert_free(spans[s].start, (u128)spans[s].start + spans[s].size);
		M.total += spans[s].size;
	}
	check_model(vm, true);

	for (k = 0; k < ops; k++) {
		/* Drift between filling up and draining, so both ends get exercised. */
		bool filling = (k / 5000) % 2 == 0;

		if (M.nlive > 0 && (M.nlive == MAXLIVE || rn(100) < (filling ? 35 : 60))) {
			do_free(vm);
		} else {
			mreq_t r;

			random_request(&r);
			do_alloc(vm, &r);
		}
		check_model(vm, k % 97 == 0);
	}
	while (M.nlive > 0)
		do_free(vm);
	check_model(vm, true);
	print_message("random xalloc: %llu ok, %llu ENOMEM, %llu EINVAL, %llu frees, %llu bad\n",
	              (unsigned long long)st.ok, (unsigned long long)st.nomem,
	              (unsigned long long)st.einval, (unsigned long long)st.frees,
	              (unsigned long long)st.badfrees);
	print_message("random xalloc: %llu at address 0, %llu ending at VMEM_ADDR_MAX, %llu ending "
	              "at a maxaddr below it\n",
	              (unsigned long long)st.at_zero, (unsigned long long)st.at_top,
	              (unsigned long long)st.at_max);
	/* The run must have exercised every outcome, and both edges. */
	assert_true(st.ok > ops / 10 && st.nomem > 0 && st.einval > 0);
	assert_true(st.at_zero > 0 && st.at_top > 0 && st.at_max > 0);
	vmem_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_and_sizes),
	    cmocka_unit_test(test_create_errors),
	    cmocka_unit_test(test_flag_errors),
	    cmocka_unit_test(test_address_zero),
	    cmocka_unit_test(test_maxaddr_inclusive),
	    cmocka_unit_test(test_create_top_and_whole),
	    cmocka_unit_test(test_free_rounded),
	    cmocka_unit_test(test_strategies),
	    cmocka_unit_test(test_xalloc_constraints),
	    cmocka_unit_test(test_xalloc_errors),
	    cmocka_unit_test(test_quantum_cache),
	    cmocka_unit_test(test_porting_import_limit),
	    cmocka_unit_test(test_set_import_replace),
	    cmocka_unit_test(test_waitok_sleeps_until_free),
	    cmocka_unit_test(test_print),
	    cmocka_unit_test(test_both_apis),
	    cmocka_unit_test(test_random_xalloc_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
