/*
 * The debug library: every kind of bad free dies (default policy) with a
 * report that names the kind and the functions and file:line that
 * allocated, freed before, and freed now; leaks come out grouped by stack
 * with counts, bytes and symbolized call sites (text and JSON); in
 * report-and-continue mode nothing is lost and every error is counted.
 * Linked with libvmem-debug (vmem_debug_static).
 */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "../debug/dbg_impl.h"

#define PG ((size_t)4096)

static int line_alloc, line_free1, line_leak3, line_leak1, line_xalloc;

static __attribute__((noinline)) void *alloc_here(vmem_t *vmp, size_t size)
{
	void *p;

	line_alloc = __LINE__ + 1;
	p = vmem_alloc(vmp, size, VM_SLEEP);
	__asm__ volatile("" : "+r"(p)); /* not a tail call: keep this frame */
	return p;
}

static __attribute__((noinline)) void *xalloc_here(vmem_t *vmp, size_t size)
{
	void *p;

	line_xalloc = __LINE__ + 1;
	p = vmem_xalloc(vmp, size, 0, 0, 0, NULL, NULL, VM_SLEEP);
	__asm__ volatile("" : "+r"(p));
	return p;
}

static __attribute__((noinline)) void free_once(vmem_t *vmp, void *p, size_t size)
{
	line_free1 = __LINE__ + 1;
	vmem_free(vmp, p, size);
	__asm__ volatile("");
}

static __attribute__((noinline)) void free_again(vmem_t *vmp, void *p, size_t size)
{
	vmem_free(vmp, p, size);
	__asm__ volatile("");
}

static vmem_t *arena(const char *name, size_t qcache_pages)
{
	vmem_t *vmp = vmem_create(name, (void *)0x1000000, 1024 * PG, PG, NULL, NULL, NULL,
	                          qcache_pages * PG, VM_SLEEP);

	assert_non_null(vmp);
	return vmp;
}

/* "fn (.../test_debug.c:line)" appears in out. */
static void assert_frame(const char *out, const char *fn, int line)
{
	char want[256];

	snprintf(want, sizeof(want), "%s (", fn);
	if (strstr(out, want) == NULL)
		fail_msg("no frame for %s in:\n%s", fn, out);
	snprintf(want, sizeof(want), "test_debug.c:%d)", line);
	if (strstr(out, want) == NULL)
		fail_msg("no test_debug.c:%d in:\n%s", line, out);
}

/* ---- bad frees, default policy: report and abort ---------------------------------- */

static void double_free_child(void *arg)
{
	vmem_t *vmp = arena("dbl", 0);
	void *p = alloc_here(vmp, 8 * PG);

	(void)arg;
	free_once(vmp, p, 8 * PG);
	free_again(vmp, p, 8 * PG);
}

static void test_double_free_report(void **state)
{
	char out[16384];

	(void)state;
	assert_aborted(run_child(double_free_child, NULL, out, sizeof(out)));
	assert_non_null(strstr(out, "libvmem: vmem_free('dbl', 0x1000000, 32768): double free"));
	assert_non_null(strstr(out, "current stack"));
	assert_non_null(strstr(out, "free_again ("));
	assert_non_null(strstr(out, "allocated by thread"));
	assert_null(strstr(out, "allocated by thread 0 ")); /* thread and time known */
	assert_frame(out, "alloc_here", line_alloc);
	assert_non_null(strstr(out, "first freed by thread"));
	assert_frame(out, "free_once", line_free1);
	assert_non_null(strstr(out, "double_free_child ("));
}

static void cached_double_free_child(void *arg)
{
	vmem_t *vmp = arena("qdbl", 4);
	void *p = alloc_here(vmp, PG);

	(void)arg;
	free_once(vmp, p, PG);
	free_again(vmp, p, PG);
}

static void test_cached_double_free_report(void **state)
{
	char out[16384];

	(void)state;
	assert_aborted(run_child(cached_double_free_child, NULL, out, sizeof(out)));
	assert_non_null(strstr(out, "double free"));
	assert_frame(out, "alloc_here", line_alloc);
	assert_frame(out, "free_once", line_free1);
	assert_non_null(strstr(out, "free_again ("));
}

typedef struct kind_case {
	const char *name;
	const char *expect;
	void (*run)(void);
} kind_case_t;

static void run_interior(void)
{
	vmem_t *vmp = arena("interior", 0);
	char *p = alloc_here(vmp, 8 * PG);

	free_again(vmp, p + PG, PG);
}

static void run_size(void)
{
	vmem_t *vmp = arena("size", 0);
	void *p = alloc_here(vmp, 8 * PG);

	free_again(vmp, p, 9 * PG);
}

static void run_wrong_arena(void)
{
	vmem_t *a = arena("right", 0);
	vmem_t *b =
	    vmem_create("wrong", (void *)0x9000000, 64 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	void *p = alloc_here(a, 8 * PG);

	free_again(b, p, 8 * PG);
}

static void run_free_xalloc(void)
{
	vmem_t *vmp = arena("xfree", 0);
	void *p = xalloc_here(vmp, 8 * PG);

	free_again(vmp, p, 8 * PG);
}

static void run_never(void)
{
	vmem_t *vmp = arena("never", 0);

	(void)alloc_here(vmp, PG);
	free_again(vmp, (void *)0x7000000, PG);
}

static void run_xfree_cached(void)
{
	vmem_t *vmp = arena("xcached", 4);
	char *p = alloc_here(vmp, PG);

	vmem_xfree(vmp, p + PG, PG); /* inside the slab, not the slab's start */
}

static const kind_case_t kinds[] = {
    {"interior", "free of an address inside a segment", run_interior},
    {"size", "size mismatch", run_size},
    {"wrong", "free to the wrong arena: 0x1000000 was allocated from arena 'right'",
     run_wrong_arena},
    {"xfree", "vmem_free of a vmem_xalloc segment", run_free_xalloc},
    {"never", "bad free: 0x7000000 was never allocated", run_never},
    {"xcached", "vmem_xfree of a quantum-cached segment", run_xfree_cached},
};

static void kind_child(void *arg)
{
	((const kind_case_t *)arg)->run();
}

static void test_each_kind_dies_with_report(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char out[16384];

		assert_aborted(run_child(kind_child, (void *)&kinds[i], out, sizeof(out)));
		if (strstr(out, kinds[i].expect) == NULL)
			fail_msg("%s: expected \"%s\" in:\n%s", kinds[i].name, kinds[i].expect,
			         out);
		assert_non_null(strstr(out, "current stack"));
		if (strcmp(kinds[i].name, "never") != 0 && strcmp(kinds[i].name, "xcached") != 0)
			assert_frame(out,
			             kinds[i].run == run_free_xalloc ? "xalloc_here" : "alloc_here",
			             kinds[i].run == run_free_xalloc ? line_xalloc : line_alloc);
	}
}

/* A failed VM_PANIC allocation names the call made and shows where it was made. */
static int line_panic;

/* With arg != NULL only learn the call's line (the call itself runs in a child). */
static __attribute__((noinline)) void panic_here(void *arg)
{
	vmem_t *vmp;
	void *p;

	line_panic = __LINE__ + 4;
	if (arg != NULL)
		return;
	vmp = arena("mandatory", 0);
	p = vmem_alloc(vmp, 4096 * PG, VM_NOSLEEP | VM_PANIC);
	__asm__ volatile("" : "+r"(p));
}

static void test_panic_report_has_stack(void **state)
{
	char out[16384];

	(void)state;
	panic_here(out);
	assert_aborted(run_child(panic_here, NULL, out, sizeof(out)));
	assert_non_null(
	    strstr(out, "vmem_alloc('mandatory', 16777216, 0x3): cannot satisfy mandatory"));
	assert_non_null(strstr(out, "current stack"));
	assert_frame(out, "panic_here", line_panic);
}

/* ---- report-and-continue: counted, nothing lost ------------------------------------ */

static void test_continue_loses_nothing(void **state)
{
	vmem_t *a = arena("keep", 4);
	vmem_t *b =
	    vmem_create("other", (void *)0x9000000, 64 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	char *p = alloc_here(a, 8 * PG), *x = xalloc_here(a, 8 * PG), *q = alloc_here(a, PG);
	char *d = alloc_here(a, 2 * PG);
	uint64_t before[VMEM_ERR_NKINDS];
	captured_t cap;

	(void)state;
	for (int k = 1; k < VMEM_ERR_NKINDS; k++)
		before[k] = vmem_error_count_kind((vmem_error_kind_t)k);
	vmem_free(a, d, 2 * PG);
	capture_errors(&cap);
	vmem_free(a, p + PG, PG);            /* interior */
	vmem_free(a, p, 7 * PG);             /* size */
	vmem_free(b, p, 8 * PG);             /* wrong arena */
	vmem_free(a, x, 8 * PG);             /* vmem_free of xalloc */
	vmem_free(a, (void *)0x7000000, PG); /* never */
	vmem_free(a, d, 2 * PG);             /* double (cached) */
	vmem_xfree(a, q + PG, PG);           /* xfree inside a slab */
	release_errors();
	assert_int_equal(cap.n, 7);
	assert_int_equal(cap.kind[0], VMEM_ERR_INTERIOR_FREE);
	assert_int_equal(cap.kind[1], VMEM_ERR_SIZE_MISMATCH);
	assert_int_equal(cap.kind[2], VMEM_ERR_WRONG_ARENA);
	assert_int_equal(cap.kind[3], VMEM_ERR_FREE_XALLOC);
	assert_int_equal(cap.kind[4], VMEM_ERR_BAD_FREE);
	assert_int_equal(cap.kind[5], VMEM_ERR_DOUBLE_FREE);
	assert_int_equal(cap.kind[6], VMEM_ERR_XFREE_CACHED);
	assert_int_equal(
	    vmem_error_count_kind(VMEM_ERR_INTERIOR_FREE) - before[VMEM_ERR_INTERIOR_FREE], 1);
	assert_int_equal(vmem_error_count_kind(VMEM_ERR_DOUBLE_FREE) - before[VMEM_ERR_DOUBLE_FREE],
	                 1);
	assert_int_equal(
	    vmem_error_count_kind(VMEM_ERR_XFREE_CACHED) - before[VMEM_ERR_XFREE_CACHED], 1);
	/* Everything is still where it was. */
	assert_int_equal(vmem_size(a, VMEM_ALLOC), 8 * PG + 8 * PG + PG);
	assert_int_equal(vmem_size(b, VMEM_ALLOC), 0);
	assert_arena_ok(a);
	assert_arena_ok(b);
	vmem_free(a, p, 8 * PG);
	vmem_xfree(a, x, 8 * PG);
	vmem_free(a, q, PG);
	assert_int_equal(vmem_size(a, VMEM_ALLOC), 0);
	vmem_destroy(a);
	vmem_destroy(b);
}

/* vmem_debug_leak_report(vmp, ..., JSON) into buf (NUL-terminated), through a file. */
static void json_leak_report(vmem_t *vmp, char *buf, size_t size)
{
	char path[] = "/tmp/vmem-leak-XXXXXX";
	int fd = mkstemp(path);
	ssize_t n;

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vmem_debug_leak_report(vmp, fd, VMEM_REPORT_JSON), 0);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, size - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
}

/*
 * Frees of quantum-cached objects with the wrong size: through another
 * cache, through no cache, or a size of the same cache that is not the one
 * the object was allocated with.  Each is a size mismatch naming the
 * object and its caller's size (not the slab behind it), nothing is freed,
 * and the caller's size is the one leak reports show.
 */
static void test_cached_wrong_size_frees(void **state)
{
	vmem_t *a = arena("qsize", 2); /* caches of 1 and 2 pages */
	char *c1 = alloc_here(a, PG), *c2 = alloc_here(a, PG), *odd = alloc_here(a, 3000);
	captured_t cap;

	(void)state;
	capture_errors(&cap);
	vmem_free(a, c2, 2 * PG); /* another cache */
	vmem_free(a, c1, 2 * PG); /* another cache, the object at its slab's start */
	vmem_free(a, c2, 3 * PG); /* no cache */
	vmem_free(a, c1, 3 * PG); /* no cache, at the slab's start */
	vmem_free(a, c2, 100);    /* same cache, another size */
	vmem_free(a, odd, PG);    /* allocated with 3000 */
	vmem_xfree(a, c2, PG);    /* vmem_xfree of a live cached object */
	vmem_free(a, c2 + 8, PG); /* inside it */
	release_errors();
	assert_int_equal(cap.n, 8);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(cap.kind[i], VMEM_ERR_SIZE_MISMATCH);
		assert_non_null(strstr(cap.msg[i], "size mismatch"));
	}
	assert_int_equal(cap.addr[0], (uintptr_t)c2);
	assert_int_equal(cap.size[0], 2 * PG);
	assert_int_equal(cap.seg_size[0], PG);
	assert_int_equal(cap.addr[1], (uintptr_t)c1);
	assert_int_equal(cap.seg_size[3], PG);
	assert_int_equal(cap.size[4], 100);
	assert_int_equal(cap.seg_size[5], 3000);
	assert_int_equal(cap.kind[6], VMEM_ERR_XFREE_CACHED);
	assert_int_equal(cap.kind[7], VMEM_ERR_INTERIOR_FREE);
	/* Nothing was freed. */
	assert_int_equal(vmem_size(a, VMEM_ALLOC), 3 * PG);
	assert_arena_ok(a);
	{
		char buf[8192];

		json_leak_report(a, buf, sizeof(buf));
		assert_non_null(strstr(buf, "\"total_bytes\":11192,\"total_count\":3,"));
	}
	vmem_free(a, c1, PG);
	vmem_free(a, c2, PG);
	vmem_free(a, odd, 3000);
	assert_int_equal(vmem_size(a, VMEM_ALLOC), 0);
	vmem_destroy(a);
}

/* ---- leak reports ----------------------------------------------------------------------- */

static __attribute__((noinline)) void leak_three(vmem_t *vmp)
{
	for (int i = 0; i < 3; i++) {
		line_leak3 = __LINE__ + 1;
		(void)vmem_alloc(vmp, 2 * PG, VM_SLEEP);
	}
}

static __attribute__((noinline)) void leak_one(vmem_t *vmp)
{
	line_leak1 = __LINE__ + 1;
	(void)vmem_xalloc(vmp, 10 * PG, 0, 0, 0, NULL, NULL, VM_SLEEP);
	__asm__ volatile("");
}

static void leak_child(void *arg)
{
	vmem_t *vmp = arena("leaky", 0);

	(void)arg;
	leak_three(vmp);
	leak_one(vmp);
	vmem_destroy(vmp);
}

static void test_leak_report_groups(void **state)
{
	char out[32768];
	const char *g1, *g2;
	int status;

	(void)state;
	status = run_child(leak_child, NULL, out, sizeof(out));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* leaks are warnings */
	assert_non_null(strstr(out, "ERROR: libvmem: detected leaks in arena 'leaky'"));
	/* Largest first: 10 pages in 1 segment, then 6 pages in 3. */
	g1 = strstr(out, "Leak of 40960 byte(s) in 1 segment(s) allocated from arena 'leaky'");
	g2 = strstr(out, "Leak of 24576 byte(s) in 3 segment(s) allocated from arena 'leaky'");
	assert_non_null(g1);
	assert_non_null(g2);
	assert_true(g1 < g2);
	assert_frame(g1, "leak_one", line_leak1);
	assert_frame(g2, "leak_three", line_leak3);
	assert_non_null(strstr(out, "SUMMARY: libvmem: 65536 byte(s) leaked in 4 segment(s)"));
	assert_non_null(strstr(out, "vmem_destroy('leaky'): leaked 65536 bytes in 4 segments"));
}

/*
 * A leak in an importing arena is reported once, by that arena: the
 * source's segments behind the importer's spans (a plain segment, and a
 * cached object when the span has a cached size) are the importer's
 * business, as vmemdb's ::findleaks has it too.
 */
static void test_leak_report_leaves_out_imported_spans(void **state)
{
	vmem_t *src = arena("src", 4);
	vmem_t *big = vmem_create("big", NULL, 0, PG, vmem_alloc, vmem_free, src, 0, VM_SLEEP);
	vmem_t *small = vmem_create("small", NULL, 0, PG, vmem_alloc, vmem_free, src, 0, VM_SLEEP);
	char buf[65536];
	void *own;

	(void)state;
	leak_one(big);                                    /* a 10-page span imported from src */
	assert_non_null(vmem_alloc(small, PG, VM_SLEEP)); /* a 1-page span: cached in src */
	own = vmem_xalloc(src, 3 * PG, 0, 0, 0, NULL, NULL, VM_SLEEP); /* src's own leak */
	json_leak_report(NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "{\"arena\":\"src\",\"arena_id\""));
	assert_non_null(strstr(buf, "\"total_bytes\":12288,\"total_count\":1,"));
	assert_non_null(strstr(buf, "{\"arena\":\"big\""));
	assert_non_null(strstr(buf, "\"total_bytes\":40960,\"total_count\":1,"));
	assert_non_null(strstr(buf, "{\"arena\":\"small\""));
	assert_non_null(strstr(buf, "\"total_bytes\":4096,\"total_count\":1,"));
	/* Per arena: the same rule, and an arena without leaks still gets a document. */
	vmem_xfree(src, own, 3 * PG);
	json_leak_report(src, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"total_bytes\":0,\"total_count\":0,\"leaks\":[]}"));
	vmem_destroy(big); /* leak warnings on stderr; spans go back to src */
	vmem_destroy(small);
	vmem_destroy(src);
}

static void test_leak_report_json_and_cached(void **state)
{
	vmem_t *vmp = arena("jleak", 4);
	char buf[65536];

	(void)state;
	leak_three(vmp); /* cached size: from a slab */
	leak_one(vmp);
	json_leak_report(vmp, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"arena\":\"jleak\""));
	assert_non_null(strstr(buf, "\"total_bytes\":65536,\"total_count\":4"));
	assert_non_null(strstr(buf, "{\"bytes\":40960,\"count\":1,"));
	assert_non_null(strstr(buf, "{\"bytes\":24576,\"count\":3,"));
	assert_non_null(strstr(buf, "\"function\":\"leak_three\""));
	assert_non_null(strstr(buf, "test_debug.c\""));
	errno = 0;
	assert_int_equal(vmem_debug_leak_report(vmp, 1, 7), -1);
	assert_int_equal(errno, EINVAL);
	{
		captured_t cap;

		capture_errors(&cap); /* the one-line warning; the grouped report goes to stderr */
		vmem_destroy(vmp);
		release_errors();
		assert_int_equal(cap.n, 1);
		assert_int_equal(cap.count[0], 4);
	}
}

/* ---- audit, log, configuration -------------------------------------------------------------- */

static void test_audit_record_and_log(void **state)
{
	vmem_t *vmp = arena("audit", 0);
	void *p = alloc_here(vmp, 3 * PG);
	vmem_seg_t *vsp;
	const uintptr_t *pcs;
	int depth;
	vmem_txrec_t rec;

	(void)state;
	pthread_mutex_lock(&vmp->vm_lock);
	vsp = *vmem__hash_lookup(vmp, (uintptr_t)p);
	pcs = vmem__stack_get(vsp->vs_stack, &depth);
	assert_true(depth >= 2 && depth <= 16);
	assert_true(vsp->u.a.vs_thread == vmem__dbg_tid());
	assert_true(vsp->u.a.vs_time != 0);
	pthread_mutex_unlock(&vmp->vm_lock);
	(void)pcs;
	assert_true(vmem__log_last(vmp->vm_id, (uintptr_t)p, &rec));
	assert_int_equal(rec.tx_op, VMEM_TX_ALLOC);
	assert_int_equal(rec.tx_size, 3 * PG);
	free_once(vmp, p, 3 * PG);
	assert_true(vmem__log_last(vmp->vm_id, (uintptr_t)p, &rec));
	assert_int_equal(rec.tx_op, VMEM_TX_FREE);
	assert_int_equal(rec.tx_stack2, vsp->vs_stack == 0 ? rec.tx_stack2 : rec.tx_stack2);
	/* A short stack depth is honoured. */
	assert_int_equal(vmem_debug_set_stack_depth(2), 0);
	p = alloc_here(vmp, PG);
	pthread_mutex_lock(&vmp->vm_lock);
	vsp = *vmem__hash_lookup(vmp, (uintptr_t)p);
	(void)vmem__stack_get(vsp->vs_stack, &depth);
	pthread_mutex_unlock(&vmp->vm_lock);
	assert_true(depth <= 2);
	assert_int_equal(vmem_debug_set_stack_depth(16), 0);
	assert_int_equal(vmem_debug_set_stack_depth(0), -1);
	/* A log of size 0 records nothing. */
	assert_int_equal(vmem_debug_set_log_size(0), 0);
	vmem_free(vmp, p, PG);
	assert_false(vmem__log_last(vmp->vm_id, (uintptr_t)p, &rec));
	assert_int_equal(vmem_debug_set_log_size(1024), 0);
	assert_true(vmem_debug_enabled());
	vmem_destroy(vmp);
}

/* Identical stacks are stored once. */
static void test_stacks_deduplicated(void **state)
{
	vmem_t *vmp = arena("dedup", 0);
	uint32_t ids[8];

	(void)state;
	for (int i = 0; i < 8; i++) {
		void *p = alloc_here(vmp, PG);

		pthread_mutex_lock(&vmp->vm_lock);
		ids[i] = (*vmem__hash_lookup(vmp, (uintptr_t)p))->vs_stack;
		pthread_mutex_unlock(&vmp->vm_lock);
	}
	for (int i = 1; i < 8; i++)
		assert_int_equal(ids[i], ids[0]);
	assert_true(ids[0] != 0);
	captured_t cap;
	capture_errors(&cap);
	vmem_destroy(vmp);
	release_errors();
}

/* VMEM_LEAK_CHECK=1: a program that exits with live segments gets a report. */
static void test_leak_check_at_exit(void **state)
{
	char cmd[512], out[16384];
	FILE *f;
	size_t n;

	(void)state;
	snprintf(cmd, sizeof(cmd), "VMEM_LEAK_CHECK=1 %s 2>&1", DEBUG_EXIT_HELPER);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	assert_int_equal(pclose(f), 0);
	assert_non_null(strstr(out, "detected leaks in arena 'exitleak'"));
	assert_non_null(strstr(out, "Leak of 8192 byte(s) in 2 segment(s)"));
	assert_non_null(strstr(out, "leak_at_exit ("));
	snprintf(cmd, sizeof(cmd), "%s 2>&1", DEBUG_EXIT_HELPER);
	f = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	pclose(f);
	assert_null(strstr(out, "detected leaks")); /* only when asked */
}

/* The helpers record their call lines when they run: run them here, in the parent. */
static int record_lines(void **state)
{
	vmem_t *vmp = arena("lines", 0);
	void *p = alloc_here(vmp, PG), *x = xalloc_here(vmp, PG);
	captured_t cap;

	(void)state;
	free_once(vmp, p, PG);
	vmem_xfree(vmp, x, PG);
	leak_three(vmp);
	leak_one(vmp);
	capture_errors(&cap);
	vmem_destroy(vmp); /* (the leak report goes to stderr) */
	release_errors();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_double_free_report),
	    cmocka_unit_test(test_cached_double_free_report),
	    cmocka_unit_test(test_each_kind_dies_with_report),
	    cmocka_unit_test(test_panic_report_has_stack),
	    cmocka_unit_test(test_continue_loses_nothing),
	    cmocka_unit_test(test_cached_wrong_size_frees),
	    cmocka_unit_test(test_leak_report_groups),
	    cmocka_unit_test(test_leak_report_json_and_cached),
	    cmocka_unit_test(test_leak_report_leaves_out_imported_spans),
	    cmocka_unit_test(test_audit_record_and_log),
	    cmocka_unit_test(test_stacks_deduplicated),
	    cmocka_unit_test(test_leak_check_at_exit),
	};

	return cmocka_run_group_tests(tests, record_lines, NULL);
}
