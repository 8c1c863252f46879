/*
 * Known code for tests/test_symbolize.c, compiled twice:
 *   - with -g -O2 into the test program: functions symfix_*;
 *   - without debug information into libsymfix_nodebug.so (FIXTURE_NODEBUG):
 *     the same functions named symfix_nd_*, found through .symtab only.
 *
 * The test checks exact lines: a line it checks carries a marker comment
 * "@name" and the test finds the marker by reading this file, so editing
 * the file cannot silently break the expectations.
 *
 * Each function returns a return address captured by symfix_leaf(), so the
 * test symbolizes pcs of real calls.  Nothing here may be a tail call (the
 * return address would then belong to the caller's caller): a store after
 * each call keeps the call a call.
 */
#include <setjmp.h>
#include <stdint.h>

#ifdef FIXTURE_NODEBUG
#define FX(name) symfix_nd_##name
#else
#define FX(name) symfix_##name
#endif

/* noclone: gcc would otherwise specialise static functions (.isra,
 * .constprop) and the DWARF name would belong to the clone's origin. */
#if defined(__clang__)
#define FX_NOINLINE __attribute__((noinline))
#else
#define FX_NOINLINE __attribute__((noinline, noclone))
#endif

uintptr_t FX(leaf)(void);
uintptr_t FX(outer)(void);
uintptr_t FX(call_static)(int k);
uintptr_t FX(static_addr)(void);
uintptr_t FX(noreturn_ra)(void);

volatile uintptr_t FX(sink);

/* The return address of its call: a pc inside the caller. */
FX_NOINLINE uintptr_t FX(leaf)(void)
{
	__asm__ volatile("" ::: "memory");
	return (uintptr_t)__builtin_return_address(0);
}

/* Always inlined into symfix_outer: its call of leaf is an inlined frame. */
static inline __attribute__((always_inline)) uintptr_t FX(inlined)(void)
{
	uintptr_t r = FX(leaf)(); /* @inlined_call */

	FX(sink) = r;
	return r;
}

FX_NOINLINE uintptr_t FX(outer)(void)
{                                    /* @outer_open */
	uintptr_t r = FX(inlined)(); /* @outer_call */

	FX(sink) += 1;
	return r;
}

/* A static function: in .symtab as a local symbol, never in .dynsym. */
static FX_NOINLINE uintptr_t FX(hidden)(int k)
{
	uintptr_t r = FX(leaf)(); /* @static_call */

	FX(sink) = r + (uintptr_t)k;
	return r;
}

uintptr_t FX(call_static)(int k)
{
	uintptr_t r = FX(hidden)(k);

	FX(sink) = r;
	return r;
}

uintptr_t FX(static_addr)(void)
{
	return (uintptr_t)&FX(hidden);
}

/*
 * A call that ends its function: escape() does not return, so the call is
 * the last instruction of dies() and its return address is the first byte
 * past dies() -- only pc - 1 is inside it.
 */
static jmp_buf FX(jb);
static volatile uintptr_t FX(escape_ra);

static FX_NOINLINE __attribute__((noreturn)) void FX(escape)(void)
{
	FX(escape_ra) = (uintptr_t)__builtin_return_address(0);
	longjmp(FX(jb), 1);
}

static FX_NOINLINE void FX(dies)(void)
{
	FX(escape)(); /* @noreturn_call */
}

uintptr_t FX(noreturn_ra)(void)
{
	if (setjmp(FX(jb)) == 0)
		FX(dies)();
	return FX(escape_ra);
}
