/*
 * Tests of the symbolizer (debug/symbolize.h) against known code:
 * tests/symbolize_fixture.c, linked into this program with -g -O2
 * (symfix_*) and built without debug information into
 * libsymfix_nodebug.so (symfix_nd_*).  Expected lines come from marker
 * comments in the fixture source (FIXTURE_SOURCE), read at run time.
 *
 * Costs (cold open, warm lookup) are printed as information, never
 * checked.  libc is checked by name only: with libc6-dbg installed its
 * DWARF is used, without it .dynsym; both must name qsort.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "symbolize.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#ifndef FIXTURE_SOURCE
#error "FIXTURE_SOURCE must name tests/symbolize_fixture.c"
#endif

/* The fixture, with and without debug information. */
uintptr_t symfix_leaf(void);
uintptr_t symfix_outer(void);
uintptr_t symfix_call_static(int k);
uintptr_t symfix_static_addr(void);
uintptr_t symfix_noreturn_ra(void);
uintptr_t symfix_nd_outer(void);
uintptr_t symfix_nd_call_static(int k);
uintptr_t symfix_nd_static_addr(void);

/* crt1.o's entry point: no DWARF, in .symtab only. */
extern void _start(void);

#define MAXF 8

static vmem_symtab_t *self_st;

/* ---- helpers --------------------------------------------------------- */

/* The line of the fixture carrying "@name". */
static unsigned marker_line(const char *name)
{
	char buf[512], marker[64];
	unsigned line = 0, found = 0;
	FILE *f = fopen(FIXTURE_SOURCE, "r");

	assert_non_null(f);
	snprintf(marker, sizeof(marker), "@%s */", name);
	while (found == 0 && fgets(buf, sizeof(buf), f) != NULL) {
		line++;
		if (strstr(buf, marker) != NULL)
			found = line;
	}
	fclose(f);
	assert_int_not_equal(found, 0);
	return found;
}

static void print_frames(const char *what, const vmem_sym_frame_t *fr, int n)
{
	char buf[512];
	int i;

	for (i = 0; i < n; i++) {
		vmem_sym_format(&fr[i], buf, sizeof(buf));
		print_message("  %-22s #%d %s%s\n", what, i, buf,
		              fr[i].inlined ? " [inlined]" : "");
	}
}

static int lookup(vmem_symtab_t *st, uintptr_t pc, int ra, vmem_sym_frame_t *fr)
{
	return vmem_sym_lookup(st, pc, ra, fr, MAXF);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static void assert_frame(const vmem_sym_frame_t *f, const char *function, const char *marker,
                         int inlined)
{
	assert_non_null(f->function);
	assert_string_equal(f->function, function);
	assert_non_null(f->file);
	assert_string_equal(f->file, FIXTURE_SOURCE);
	assert_int_equal(f->line, marker_line(marker));
	assert_int_equal(f->inlined, inlined);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uintptr_t libc_qsort(void)
{
	/* Through libc's own handle: under ASan, &qsort is the interceptor. */
	void *h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	void *p;

	assert_non_null(h);
	p = dlsym(h, "qsort");
	dlclose(h);
	assert_non_null(p);
	return (uintptr_t)p;
}

static const vmem_sym_object_t *find_object(const vmem_sym_object_t *objs, size_t n, uintptr_t pc)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (objs[i].start <= pc && pc < objs[i].end)
			return &objs[i];
	return NULL;
}

/* ---- tests ----------------------------------------------------------- */

static void test_self_objects(void **state)
{
	static vmem_sym_object_t objs[128];
	static char paths[128][256];
	char exe[256];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t n = vmem_sym_self_objects(objs, paths, 128), i;
	const vmem_sym_object_t *libc;

	(void)state;
	assert_true(len > 0);
	exe[len] = '\0';
	assert_true(n >= 3 && n <= 128); /* the program, libsymfix_nodebug, libc at least */
	assert_string_equal(objs[0].path, exe);
	assert_true(objs[0].start <= (uintptr_t)&symfix_outer);
	assert_true((uintptr_t)&symfix_outer < objs[0].end);
	assert_int_equal(objs[0].build_id_len, 20); /* Debian links with --build-id (sha1) */
	libc = find_object(objs, n, libc_qsort());
	assert_non_null(libc);
	assert_non_null(strstr(libc->path, "libc.so"));
	for (i = 0; i < n; i++) {
		assert_true(objs[i].path == paths[i] && paths[i][0] != '\0');
		assert_true(objs[i].base <= objs[i].start && objs[i].start < objs[i].end);
		assert_null(strstr(objs[i].path, "vdso"));
		print_message("  %#14" PRIxPTR "-%#14" PRIxPTR " base %#14" PRIxPTR " id %d %s\n",
		              objs[i].start, objs[i].end, objs[i].base, objs[i].build_id_len,
		              objs[i].path);
	}
	assert_int_equal(vmem_sym_self_objects(objs, paths, 1), n); /* count beyond max */
	assert_int_equal(vmem_sym_self_objects(NULL, NULL, 0), n);
}

/* A function's entry: exact name, offset 0, the fixture's file. */
static void test_function_entry(void **state)
{
	vmem_sym_frame_t fr[MAXF];
	uintptr_t pc = (uintptr_t)&symfix_outer;
	int n = lookup(self_st, pc, 0, fr);

	(void)state;
	print_frames("entry", fr, n);
	assert_int_equal(n, 1);
	assert_string_equal(fr[0].function, "symfix_outer");
	assert_int_equal(fr[0].offset, 0);
	assert_int_equal(fr[0].inlined, 0);
	assert_string_equal(fr[0].file, FIXTURE_SOURCE);
	assert_int_equal(fr[0].line, marker_line("outer_open"));
	assert_int_equal(fr[0].pc, pc);
}

/* A call made by inlined code: the inlined function, then its caller at the call site. */
static void test_inlined(void **state)
{
	vmem_sym_frame_t fr[MAXF];
	uintptr_t ra = symfix_outer();
	int n = lookup(self_st, ra, 1, fr);

	(void)state;
	print_frames("inlined", fr, n);
	assert_int_equal(n, 2);
	assert_frame(&fr[0], "symfix_inlined", "inlined_call", 1);
	assert_frame(&fr[1], "symfix_outer", "outer_call", 0);
	assert_int_equal(fr[0].pc, ra);
	assert_int_equal(fr[1].pc, ra);
	assert_int_equal(fr[1].offset, ra - (uintptr_t)&symfix_outer);

	/* Room for one frame: the innermost. */
	assert_int_equal(vmem_sym_lookup(self_st, ra, 1, fr, 1), 1);
	assert_frame(&fr[0], "symfix_inlined", "inlined_call", 1);
}

static void test_static_function(void **state)
{
	vmem_sym_frame_t fr[MAXF];
	uintptr_t ra = symfix_call_static(3);
	int n = lookup(self_st, ra, 1, fr);

	(void)state;
	print_frames("static", fr, n);
	assert_int_equal(n, 1);
	assert_frame(&fr[0], "symfix_hidden", "static_call", 0);
	assert_int_equal(fr[0].offset, ra - symfix_static_addr());

	n = lookup(self_st, symfix_static_addr(), 0, fr);
	assert_int_equal(n, 1);
	assert_string_equal(fr[0].function, "symfix_hidden");
	assert_int_equal(fr[0].offset, 0);
}

/* return_address: pc - 1 is looked up, pc reported. */
static void test_return_address(void **state)
{
	vmem_sym_frame_t a[MAXF], b[MAXF];
	uintptr_t ra = symfix_outer();
	int n = lookup(self_st, ra, 1, a), i;

	(void)state;
	assert_int_equal(lookup(self_st, ra - 1, 0, b), n);
	for (i = 0; i < n; i++) {
		assert_string_equal(a[i].function, b[i].function);
		assert_string_equal(a[i].file, b[i].file);
		assert_int_equal(a[i].line, b[i].line);
		assert_int_equal(a[i].inlined, b[i].inlined);
		assert_int_equal(a[i].pc, ra);
		assert_int_equal(b[i].pc, ra - 1);
		assert_int_equal(a[i].vaddr, b[i].vaddr + 1);
	}

	/* A call ending its function: only pc - 1 is inside symfix_dies. */
	ra = symfix_noreturn_ra();
	n = lookup(self_st, ra, 1, a);
	print_frames("noreturn, ra", a, n);
	assert_int_equal(n, 1);
	assert_frame(&a[0], "symfix_dies", "noreturn_call", 0);
	n = lookup(self_st, ra, 0, b);
	print_frames("noreturn, pc", b, n); /* whatever follows symfix_dies */
}

/* No DWARF but a .symtab: names (global and local) from the ELF symbols. */
static void test_nodebug_library(void **state)
{
	vmem_sym_frame_t fr[MAXF];
	char buf[256];
	uintptr_t pc = (uintptr_t)&symfix_nd_outer, ra;
	int n = lookup(self_st, pc, 0, fr);

	(void)state;
	print_frames("nodebug", fr, n);
	assert_int_equal(n, 1);
	assert_string_equal(fr[0].function, "symfix_nd_outer");
	assert_null(fr[0].file);
	assert_int_equal(fr[0].line, 0);
	assert_int_equal(fr[0].offset, 0);
	assert_true(ends_with(fr[0].object, "/libsymfix_nodebug.so"));
	vmem_sym_format(&fr[0], buf, sizeof(buf));
	assert_true(strncmp(buf, "symfix_nd_outer (libsymfix_nodebug.so+0x", 39) == 0);

	ra = symfix_nd_call_static(2);
	n = lookup(self_st, ra, 1, fr);
	print_frames("nodebug static", fr, n);
	assert_int_equal(n, 1);
	assert_string_equal(fr[0].function, "symfix_nd_hidden");
	assert_int_equal(fr[0].offset, ra - symfix_nd_static_addr());

	ra = symfix_nd_outer(); /* inlined code: no inline information without DWARF */
	n = lookup(self_st, ra, 1, fr);
	assert_int_equal(n, 1);
	assert_string_equal(fr[0].function, "symfix_nd_outer");
	assert_int_equal(fr[0].inlined, 0);
}

static void test_libc_function(void **state)
{
	vmem_sym_frame_t fr[MAXF];
	uintptr_t pc = libc_qsort();
	int n = lookup(self_st, pc, 0, fr);

	(void)state;
	print_frames("libc", fr, n);
	assert_true(n >= 1);
	assert_string_equal(fr[n - 1].function, "qsort");
	assert_int_equal(fr[n - 1].offset, 0);
	assert_int_equal(fr[n - 1].inlined, 0);
	assert_non_null(strstr(fr[n - 1].object, "libc.so"));
}

/* crt code has no DWARF: _start comes from the program's .symtab. */
static void test_crt_start(void **state)
{
	vmem_sym_frame_t fr[MAXF];
	int n = lookup(self_st, (uintptr_t)&_start, 0, fr);

	(void)state;
	print_frames("crt", fr, n);
	assert_true(n >= 1);
	assert_string_equal(fr[n - 1].function, "_start");
	assert_int_equal(fr[n - 1].offset, 0);
}

static void test_no_object(void **state)
{
	vmem_sym_frame_t fr[MAXF];
	char buf[64];
	void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	assert_true(page != MAP_FAILED);
	assert_int_equal(lookup(self_st, (uintptr_t)page, 0, fr), 0);
	assert_int_equal(lookup(self_st, (uintptr_t)page + 1, 1, fr), 0);
	assert_int_equal(lookup(self_st, 0, 0, fr), 0);
	assert_int_equal(lookup(self_st, 0, 1, fr), 0);
	assert_int_equal(vmem_sym_lookup(NULL, (uintptr_t)&symfix_outer, 0, fr, MAXF), 0);
	assert_int_equal(vmem_sym_lookup(self_st, (uintptr_t)&symfix_outer, 0, fr, 0), 0);
	munmap(page, 4096);

	memset(fr, 0, sizeof(fr[0]));
	fr[0].pc = 0x1234;
	assert_int_equal(vmem_sym_format(&fr[0], buf, sizeof(buf)), 6);
	assert_string_equal(buf, "0x1234");
}

/* Compare what two lookups say, the second made at pc + shift. */
static void assert_same_frames(const vmem_sym_frame_t *a, int na, const vmem_sym_frame_t *b, int nb,
                               uintptr_t shift)
{
	int i;

	assert_int_equal(na, nb);
	for (i = 0; i < na; i++) {
		if (a[i].function == NULL)
			assert_null(b[i].function);
		else
			assert_string_equal(a[i].function, b[i].function);
		if (a[i].file == NULL)
			assert_null(b[i].file);
		else
			assert_string_equal(a[i].file, b[i].file);
		assert_int_equal(a[i].line, b[i].line);
		assert_int_equal(a[i].inlined, b[i].inlined);
		assert_int_equal(a[i].offset, b[i].offset);
		assert_int_equal(a[i].vaddr, b[i].vaddr);
		assert_int_equal(a[i].pc + shift, b[i].pc);
		assert_string_equal(a[i].object, b[i].object);
	}
}

/* Another process's layout: this program's objects re-listed at a fake
 * base must give the same answers at pc + shift. */
static void test_open_fake_base(void **state)
{
	static vmem_sym_object_t objs[128];
	static char paths[128][256];
	const uintptr_t shift = (uintptr_t)1 << 44;
	size_t n = vmem_sym_self_objects(objs, paths, 128);
	const vmem_sym_object_t *exe = find_object(objs, n, (uintptr_t)&symfix_outer);
	const vmem_sym_object_t *nd = find_object(objs, n, (uintptr_t)&symfix_nd_outer);
	vmem_sym_object_t fake[2];
	vmem_sym_frame_t a[MAXF], b[MAXF];
	uintptr_t pcs[4] = {symfix_outer(), symfix_call_static(1), (uintptr_t)&symfix_nd_outer,
	                    symfix_noreturn_ra()};
	vmem_symtab_t *st;
	int i;

	(void)state;
	assert_non_null(exe);
	assert_non_null(nd);
	fake[0] = *exe;
	fake[1] = *nd;
	fake[1].build_id_len = 0; /* no build id: trust the file */
	for (i = 0; i < 2; i++) {
		fake[i].base += shift;
		fake[i].start += shift;
		fake[i].end += shift;
	}
	st = vmem_sym_open(fake, 2);
	assert_non_null(st);
	for (i = 0; i < 4; i++) {
		int ra = i != 2;
		int na = lookup(self_st, pcs[i], ra, a);
		int nb = lookup(st, pcs[i] + shift, ra, b);

		print_frames("fake base", b, nb);
		assert_true(na >= 1);
		assert_same_frames(a, na, b, nb, shift);
	}
	/* Not a self symtab: the real addresses are in no listed object. */
	assert_int_equal(lookup(st, pcs[0], 1, a), 0);
	vmem_sym_close(st);

	/* A build id the file does not have: the file is not trusted. */
	memset(fake[0].build_id, 0xee, sizeof(fake[0].build_id));
	st = vmem_sym_open(fake, 1);
	assert_non_null(st);
	assert_int_equal(lookup(st, pcs[0] + shift, 1, b), 1);
	print_frames("wrong build id", b, 1);
	assert_null(b[0].function);
	assert_null(b[0].file);
	assert_string_equal(b[0].object, exe->path);
	assert_int_equal(b[0].vaddr, pcs[0] - exe->base);
	vmem_sym_close(st);

	/* Objects without a path or with an empty range are ignored. */
	fake[0].path = "";
	fake[1].end = fake[1].start;
	st = vmem_sym_open(fake, 2);
	assert_non_null(st);
	assert_int_equal(lookup(st, pcs[0] + shift, 1, b), 0);
	assert_int_equal(lookup(st, pcs[2] + shift, 0, b), 0);
	vmem_sym_close(st);
	vmem_sym_close(NULL);
}

/* Files that are missing, not ELF, or not files: the object is known, nothing else. */
static void test_bad_files(void **state)
{
	const char *paths[4] = {"/nonexistent/libnothing.so", "/etc/passwd", "/", FIXTURE_SOURCE};
	vmem_sym_object_t objs[4];
	vmem_sym_frame_t fr[MAXF];
	vmem_symtab_t *st;
	int i;

	(void)state;
	memset(objs, 0, sizeof(objs));
	for (i = 0; i < 4; i++) {
		objs[i].path = paths[i];
		objs[i].base = (uintptr_t)(i + 1) << 32;
		objs[i].start = objs[i].base;
		objs[i].end = objs[i].base + 0x100000;
	}
	objs[1].build_id_len = 20; /* a build id that no file can match */
	st = vmem_sym_open(objs, 4);
	assert_non_null(st);
	for (i = 0; i < 4; i++) {
		int n = lookup(st, objs[i].base + 0x1234, 1, fr);

		assert_int_equal(n, 1);
		assert_null(fr[0].function);
		assert_null(fr[0].file);
		assert_string_equal(fr[0].object, paths[i]);
		assert_int_equal(fr[0].vaddr, 0x1234);
	}
	vmem_sym_close(st);
}

static void test_format(void **state)
{
	vmem_sym_frame_t f;
	char buf[128], small[8];

	(void)state;
	memset(&f, 0, sizeof(f));
	f.pc = 0x1234;
	f.function = "fn";
	f.file = "/a/b.c";
	f.line = 12;
	f.object = "/lib/x.so";
	f.vaddr = 0x34;
	assert_int_equal(vmem_sym_format(&f, buf, sizeof(buf)), 14);
	assert_string_equal(buf, "fn (/a/b.c:12)");
	assert_int_equal(vmem_sym_format(&f, small, sizeof(small)), 14);
	assert_string_equal(small, "fn (/a/");
	assert_int_equal(vmem_sym_format(&f, NULL, 0), 14);
	f.line = 0;
	vmem_sym_format(&f, buf, sizeof(buf));
	assert_string_equal(buf, "fn (x.so+0x34)");
	f.function = NULL;
	vmem_sym_format(&f, buf, sizeof(buf));
	assert_string_equal(buf, "0x1234 (x.so+0x34)");
	f.object = NULL;
	vmem_sym_format(&f, buf, sizeof(buf));
	assert_string_equal(buf, "0x1234");
}

/* ---- concurrency ----------------------------------------------------- */

typedef struct thread_arg {
	vmem_symtab_t *st;
	uintptr_t pcs[3];
	char expect[3][256];
	int bad;
} thread_arg_t;

static void format_all(vmem_symtab_t *st, uintptr_t pc, char *out, size_t len)
{
	vmem_sym_frame_t fr[MAXF];
	int n = vmem_sym_lookup(st, pc, 1, fr, MAXF), i;
	size_t used = 0;

	out[0] = '\0';
	for (i = 0; i < n && used < len; i++)
		used += (size_t)vmem_sym_format(&fr[i], out + used, len - used);
}

static void *lookup_thread(void *p)
{
	thread_arg_t *t = p;
	char got[256];
	int i;

	for (i = 0; i < 3000; i++) {
		format_all(t->st, t->pcs[i % 3], got, sizeof(got));
		if (strcmp(got, t->expect[i % 3]) != 0)
			t->bad++;
	}
	return NULL;
}

/* Lookups from several threads on one symtab, objects opened concurrently. */
static void test_threads(void **state)
{
	vmem_symtab_t *st = vmem_sym_open_self();
	thread_arg_t arg[4];
	pthread_t th[4];
	int i, j;

	(void)state;
	assert_non_null(st);
	for (i = 0; i < 4; i++) {
		arg[i].st = st;
		arg[i].pcs[0] = symfix_outer();
		arg[i].pcs[1] = symfix_nd_call_static(1);
		arg[i].pcs[2] = libc_qsort() + 1;
		arg[i].bad = 0;
		for (j = 0; j < 3; j++)
			format_all(self_st, arg[i].pcs[j], arg[i].expect[j],
			           sizeof(arg[i].expect[j]));
	}
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, lookup_thread, &arg[i]), 0);
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(arg[i].bad, 0);
	}
	vmem_sym_close(st);
}

/* ---- cost (information only) --------------------------------------- */

static double warm_ns(vmem_symtab_t *st, uintptr_t pc, int ra)
{
	vmem_sym_frame_t fr[MAXF];
	const int iters = 200000;
	uint64_t t0 = now_ns();
	int i;

	for (i = 0; i < iters; i++)
		vmem_sym_lookup(st, pc, ra, fr, MAXF);
	return (double)(now_ns() - t0) / iters;
}

static void test_cost(void **state)
{
	vmem_sym_frame_t fr[MAXF];
	uintptr_t ra = symfix_outer(), qs = libc_qsort();
	uint64_t t0 = now_ns(), t1, t2, t3;
	vmem_symtab_t *st = vmem_sym_open_self();

	(void)state;
	assert_non_null(st);
	t1 = now_ns();
	vmem_sym_lookup(st, ra, 1, fr, MAXF);
	t2 = now_ns();
	vmem_sym_lookup(st, qs, 0, fr, MAXF);
	t3 = now_ns();
	print_message("  cost: open_self %.1f us, first lookup in the program %.2f ms, "
	              "in libc %.2f ms\n",
	              (double)(t1 - t0) / 1e3, (double)(t2 - t1) / 1e6, (double)(t3 - t2) / 1e6);
	print_message("  cost: warm lookup %.0f ns (program, 2 frames), %.0f ns (libc), "
	              "%.0f ns (no DWARF)\n",
	              warm_ns(st, ra, 1), warm_ns(st, qs, 0),
	              warm_ns(st, (uintptr_t)&symfix_nd_outer, 0));
	vmem_sym_close(st);
}

static int group_setup(void **state)
{
	(void)state;
	self_st = vmem_sym_open_self();
	return self_st == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	vmem_sym_close(self_st);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_self_objects),   cmocka_unit_test(test_function_entry),
	    cmocka_unit_test(test_inlined),        cmocka_unit_test(test_static_function),
	    cmocka_unit_test(test_return_address), cmocka_unit_test(test_nodebug_library),
	    cmocka_unit_test(test_libc_function),  cmocka_unit_test(test_crt_start),
	    cmocka_unit_test(test_no_object),      cmocka_unit_test(test_open_fake_base),
	    cmocka_unit_test(test_bad_files),      cmocka_unit_test(test_format),
	    cmocka_unit_test(test_threads),        cmocka_unit_test(test_cost),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
