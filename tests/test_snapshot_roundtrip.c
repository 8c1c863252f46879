/*
 * The library's snapshot writer (src/snapshot.c) read back by the reader
 * (src/vsnap_read.c): an arena tree with thousands of segments (imports
 * two levels deep, xallocs, an identifier arena with two spans, a
 * quantum-cached arena with objects held, frees that fragment), written
 * mid-run, must come back with the same tree, the same segments as
 * vmem_walk() reports and the same counters as vmem_kstat() and
 * vmem_qcache_kstat().  Built against both libraries; with libvmem-debug
 * the snapshot also carries stacks and the transaction log.
 */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "vsnap.h"

#define PG        ((size_t)4096)
#define ROOT_BASE ((uintptr_t)0x100000000ULL)
#define ROOT_SIZE ((size_t)1 << 32)

/* ---- what the test holds ------------------------------------------------------------------ */

typedef struct held {
	vmem_t *vmp;
	uintptr_t addr;
	size_t size;
	bool xalloc;
} held_t;

typedef struct world {
	vmem_t *root, *heap, *sub, *ids;
	held_t *held;
	size_t nheld, cap;
	uint64_t rng;
} world_t;

static uint64_t next_rand(world_t *w)
{
	/* xorshift64: deterministic, so a failure reproduces. */
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static void hold(world_t *w, vmem_t *vmp, void *p, size_t size, bool xalloc)
{
	assert_non_null(p);
	if (w->nheld == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 1024;
		w->held = realloc(w->held, w->cap * sizeof(held_t));
		assert_non_null(w->held);
	}
	w->held[w->nheld++] = (held_t){vmp, (uintptr_t)p, size, xalloc};
}

static void release(held_t *h)
{
	if (h->xalloc)
		vmem_xfree(h->vmp, (void *)h->addr, h->size);
	else
		vmem_free(h->vmp, (void *)h->addr, h->size);
}

/* Free every third allocation (fragmenting every arena), keeping the rest. */
static void fragment(world_t *w)
{
	size_t kept = 0;

	for (size_t i = 0; i < w->nheld; i++) {
		if (i % 3 == 1)
			release(&w->held[i]);
		else
			w->held[kept++] = w->held[i];
	}
	w->nheld = kept;
}

static void build_world(world_t *w)
{
	memset(w, 0, sizeof(*w));
	w->rng = 0x9e3779b97f4a7c15ULL;
	w->root =
	    vmem_create("rt_root", (void *)ROOT_BASE, ROOT_SIZE, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	w->heap =
	    vmem_create("rt_heap", NULL, 0, PG, vmem_alloc, vmem_free, w->root, 4 * PG, VM_SLEEP);
	w->sub = vmem_create("rt_sub", NULL, 0, PG, vmem_alloc, vmem_free, w->heap, 0,
	                     VM_SLEEP | VMC_NO_QCACHE);
	w->ids = vmem_create("rt_ids", (void *)1, 50000, 1, NULL, NULL, NULL, 0,
	                     VM_SLEEP | VMC_IDENTIFIER);
	assert_non_null(w->root);
	assert_non_null(w->heap);
	assert_non_null(w->sub);
	assert_non_null(w->ids);
	assert_non_null(vmem_add(w->ids, (void *)100000, 20000, VM_SLEEP));

	/* The heap: cached sizes (1-4 pages), larger ones, and aligned xallocs. */
	for (int i = 0; i < 3000; i++) {
		uint64_t r = next_rand(w);
		size_t size = (r % 12 + 1) * PG;

		if (r % 7 == 0)
			hold(w, w->heap,
			     vmem_xalloc(w->heap, size, 8 * PG, 0, 0, NULL, NULL, VM_SLEEP), size,
			     true);
		else
			hold(w, w->heap, vmem_alloc(w->heap, size, VM_SLEEP), size, false);
	}
	/* Two levels of import, with phase and nocross constraints. */
	for (int i = 0; i < 600; i++) {
		uint64_t r = next_rand(w);
		size_t size = (r % 3 + 1) * PG;

		if (r % 4 == 0)
			hold(w, w->sub,
			     vmem_xalloc(w->sub, size, 4 * PG, PG, 16 * PG, NULL, NULL, VM_SLEEP),
			     size, true);
		else
			hold(w, w->sub, vmem_alloc(w->sub, size, VM_SLEEP), size, false);
	}
	/* Identifiers, with caller sizes that are not multiples of anything. */
	for (int i = 0; i < 2000; i++) {
		size_t size = next_rand(w) % 5 + 1;

		hold(w, w->ids, vmem_alloc(w->ids, size, VM_SLEEP), size, false);
	}
	fragment(w);
}

static void destroy_world(world_t *w)
{
	for (size_t i = 0; i < w->nheld; i++)
		release(&w->held[i]);
	free(w->held);
	vmem_destroy(w->sub);
	vmem_destroy(w->heap);
	vmem_destroy(w->ids);
	vmem_destroy(w->root);
}

/* ---- what vmem_walk reports --------------------------------------------------------------- */

typedef struct piece {
	uint64_t start, size;
} piece_t;

typedef struct plist {
	piece_t *p;
	size_t n, cap;
} plist_t;

static void push(plist_t *l, uint64_t start, uint64_t size)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->p = realloc(l->p, l->cap * sizeof(piece_t));
		assert_non_null(l->p);
	}
	l->p[l->n++] = (piece_t){start, size};
}

static void walk_cb(void *arg, void *start, size_t size)
{
	push(arg, (uintptr_t)start, size);
}

static void expect_same(const plist_t *walked, const plist_t *snap, const char *arena,
                        const char *what)
{
	if (walked->n != snap->n)
		fail_msg("%s: vmem_walk reports %zu %s pieces, the snapshot %zu", arena, walked->n,
		         what, snap->n);
	for (size_t i = 0; i < walked->n; i++) {
		if (walked->p[i].start != snap->p[i].start || walked->p[i].size != snap->p[i].size)
			fail_msg(
			    "%s: %s piece %zu: walk [0x%llx, +0x%llx), snapshot [0x%llx, +0x%llx)",
			    arena, what, i, (unsigned long long)walked->p[i].start,
			    (unsigned long long)walked->p[i].size,
			    (unsigned long long)snap->p[i].start,
			    (unsigned long long)snap->p[i].size);
	}
}

/*
 * The snapshot's records of one arena, as vmem_walk would report them: a
 * slab's ALLOC record stands for its CACHED objects (ALLOC pieces of the
 * object size) and the runs of free space between and after them (FREE).
 */
static void snapshot_pieces(const vsnap_t *s, const vsnap_arena_t *a, plist_t out[3])
{
	const vsnap_seg_rec_t *slab = NULL;
	uint64_t cursor = 0;

	for (size_t i = a->seg_first; i <= a->seg_first + a->seg_count; i++) {
		const vsnap_seg_rec_t *g = i < a->seg_first + a->seg_count ? &s->segs[i] : NULL;

		if (slab != NULL && (g == NULL || g->sg_type != VSNAP_CACHED)) {
			if (cursor < slab->sg_start + slab->sg_extent)
				push(&out[1], cursor, slab->sg_start + slab->sg_extent - cursor);
			slab = NULL;
		}
		if (g == NULL)
			break;
		switch (g->sg_type) {
		case VSNAP_SPAN:
			push(&out[2], g->sg_start, g->sg_extent);
			break;
		case VSNAP_FREE:
			push(&out[1], g->sg_start, g->sg_extent);
			break;
		case VSNAP_ALLOC:
			if (g->sg_flags & VSNAP_F_SLAB) {
				slab = g;
				cursor = g->sg_start;
			} else {
				push(&out[0], g->sg_start, g->sg_size);
			}
			break;
		case VSNAP_CACHED:
			assert_non_null(slab);
			if (g->sg_start > cursor)
				push(&out[1], cursor, g->sg_start - cursor);
			push(&out[0], g->sg_start, g->sg_size);
			cursor = g->sg_start + g->sg_extent;
			break;
		default:
			fail_msg("segment type 0x%x", g->sg_type);
		}
	}
}

/* Every segment of the arena, as vmem_walk reports ALLOC, FREE and SPAN. */
static void check_segments(const vsnap_t *s, vmem_t *vmp)
{
	static const int types[3] = {VMEM_ALLOC, VMEM_FREE, VMEM_SPAN};
	static const char *const names[3] = {"ALLOC", "FREE", "SPAN"};
	const vsnap_arena_t *a = vsnap_arena(s, vmem_id(vmp));
	plist_t walked[3], snap[3];

	memset(walked, 0, sizeof(walked));
	memset(snap, 0, sizeof(snap));
	snapshot_pieces(s, a, snap);
	for (int t = 0; t < 3; t++) {
		vmem_walk(vmp, types[t], walk_cb, &walked[t]);
		expect_same(&walked[t], &snap[t], vmem_name(vmp), names[t]);
		free(walked[t].p);
		free(snap[t].p);
	}
}

/* ---- the model against the live arenas ---------------------------------------------------- */

static void check_arena(const vsnap_t *s, vmem_t *vmp, vmem_t *source, int depth)
{
	const vsnap_arena_t *a = vsnap_arena(s, vmem_id(vmp));

	assert_non_null(a);
	assert_string_equal(a->a.ar_name, vmem_name(vmp));
	assert_int_equal(a->a.ar_source_id, source != NULL ? vmem_id(source) : 0);
	assert_int_equal(a->a.ar_quantum, vmp->vm_quantum);
	assert_int_equal(a->a.ar_cflags, (uint32_t)vmp->vm_cflags);
	assert_int_equal(a->a.ar_qcache_max, vmp->vm_qcache_max);
	assert_int_equal(a->a.ar_nqcache, vmem_qcache_count(vmp));
	assert_int_equal(a->a.ar_addr, (uintptr_t)vmp);
	assert_int_equal(a->depth, depth);
	if (source != NULL)
		assert_true(vsnap_arena(s, vmem_id(source)) < a); /* tree order */
	assert_true(a->seg_count > 0);
}

/* Counters taken right after the snapshot, before vmem_walk (which reaps) runs. */
typedef struct counters {
	vmem_kstat_t ks[4];
	vmem_qcache_kstat_t qk[16];
	unsigned nq;
} counters_t;

static void take_counters(world_t *w, counters_t *c)
{
	vmem_t *v[4] = {w->root, w->heap, w->sub, w->ids};

	for (int i = 0; i < 4; i++)
		assert_int_equal(vmem_kstat(v[i], &c->ks[i]), 0);
	c->nq = vmem_qcache_count(w->heap);
	assert_true(c->nq > 0 && c->nq <= 16);
	for (unsigned i = 0; i < c->nq; i++)
		assert_int_equal(vmem_qcache_kstat(w->heap, i, &c->qk[i]), 0);
}

static void check_counters(const vsnap_t *s, world_t *w, const counters_t *c)
{
	vmem_t *v[4] = {w->root, w->heap, w->sub, w->ids};
	const vsnap_arena_t *heap = vsnap_arena(s, vmem_id(w->heap));

	_Static_assert(sizeof(vmem_kstat_t) == VSNAP_NKSTAT * 8, "arena counters");
	for (int i = 0; i < 4; i++)
		assert_memory_equal(vsnap_arena(s, vmem_id(v[i]))->a.ar_kstat, &c->ks[i],
		                    sizeof(vmem_kstat_t));
	assert_int_equal(heap->qc_count, c->nq);
	for (unsigned i = 0; i < c->nq; i++) {
		const vsnap_qcache_rec_t *q = &s->qcaches[heap->qc_first + i];

		assert_int_equal(q->qr_arena, vmem_id(w->heap));
		assert_int_equal(q->qr_index, i);
		assert_string_equal(q->qr_name, c->qk[i].qk_name);
		assert_memory_equal(q->qr_kstat, &c->qk[i].qk_objsize, VSNAP_NQKSTAT * 8);
	}
	for (int k = 1; k < VMEM_ERR_NKINDS; k++)
		assert_int_equal(s->errors[k], vmem_error_count_kind((vmem_error_kind_t)k));
	assert_int_equal(s->nerrors, VMEM_ERR_NKINDS);
}

/* The record for an address the test holds: its segment, or its cached object. */
static const vsnap_seg_rec_t *find_seg(const vsnap_t *s, const vsnap_arena_t *a, uintptr_t addr)
{
	size_t lo = a->seg_first, hi = a->seg_first + a->seg_count;
	const vsnap_seg_rec_t *g;

	/* Records are in address order: the last one starting at or below addr. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->segs[mid].sg_start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Among equal starts (span, slab, first object) the last is the most specific. */
	g = lo > a->seg_first ? &s->segs[lo - 1] : NULL;
	return g != NULL && g->sg_start == addr ? g : NULL;
}

/* Every allocation the test holds is in the snapshot, with its size and kind. */
static void check_held(const vsnap_t *s, const world_t *w)
{
	bool debug = vmem_debug_enabled();

	for (size_t i = 0; i < w->nheld; i++) {
		const held_t *h = &w->held[i];
		const vsnap_arena_t *a = vsnap_arena(s, vmem_id(h->vmp));
		const vsnap_seg_rec_t *g = find_seg(s, a, h->addr);

		if (g == NULL)
			fail_msg("%s: held 0x%lx (+0x%zx) not in the snapshot", vmem_name(h->vmp),
			         (unsigned long)h->addr, h->size);
		if (g->sg_type == VSNAP_CACHED) {
			assert_false(h->xalloc);
			assert_true(g->sg_size >= h->size);
		} else {
			assert_int_equal(g->sg_type, VSNAP_ALLOC);
			assert_int_equal(g->sg_size, h->size);
			assert_int_equal(!!(g->sg_flags & VSNAP_F_XALLOC), h->xalloc);
			assert_false(g->sg_flags & VSNAP_F_SLAB);
		}
		if (debug) {
			/* libvmem-debug audits every allocation: stack, thread, time. */
			assert_true(g->sg_stack != 0);
			assert_non_null(vsnap_stack(s, g->sg_stack));
			assert_true(g->sg_thread != 0 && g->sg_time != 0);
		} else {
			assert_int_equal(g->sg_stack, 0);
		}
	}
}

/* The comparisons above are not vacuous: every kind of record is there. */
static void check_kinds(const vsnap_t *s, const world_t *w)
{
	const vsnap_arena_t *heap = vsnap_arena(s, vmem_id(w->heap));
	const vsnap_arena_t *ids = vsnap_arena(s, vmem_id(w->ids));
	size_t slabs = 0, cached = 0, xalloc = 0, imported = 0, free = 0, spans = 0;

	for (size_t i = heap->seg_first; i < heap->seg_first + heap->seg_count; i++) {
		const vsnap_seg_rec_t *g = &s->segs[i];

		slabs += g->sg_type == VSNAP_ALLOC && (g->sg_flags & VSNAP_F_SLAB);
		xalloc += g->sg_type == VSNAP_ALLOC && (g->sg_flags & VSNAP_F_XALLOC);
		cached += g->sg_type == VSNAP_CACHED;
		imported += g->sg_type == VSNAP_SPAN && (g->sg_flags & VSNAP_F_IMPORTED);
		free += g->sg_type == VSNAP_FREE;
	}
	assert_true(slabs > 0 && cached > slabs && xalloc > 0 && imported > 0 && free > 0);
	for (size_t i = ids->seg_first; i < ids->seg_first + ids->seg_count; i++)
		spans += s->segs[i].sg_type == VSNAP_SPAN;
	assert_int_equal(spans, 2);
}

static void check_debug_data(const vsnap_t *s)
{
	if (!vmem_debug_enabled()) {
		assert_int_equal(s->flags & VSNAP_F_DEBUG, 0);
		assert_int_equal(s->nstacks, 0);
		assert_int_equal(s->nlog, 0);
		return;
	}
	assert_int_equal(s->flags & VSNAP_F_DEBUG, VSNAP_F_DEBUG);
	assert_true(s->nstacks > 0);
	assert_true(s->nlog > 0);
	/* Every stack any record names resolves (the reader checks segments; here the log too). */
	for (size_t i = 0; i < s->nsegs; i++)
		assert_true(s->segs[i].sg_stack == 0 ||
		            vsnap_stack(s, s->segs[i].sg_stack) != NULL);
	for (size_t i = 0; i < s->nlog; i++) {
		assert_true(s->log[i].tx_stack == 0 || vsnap_stack(s, s->log[i].tx_stack) != NULL);
		assert_true(s->log[i].tx_stack2 == 0 ||
		            vsnap_stack(s, s->log[i].tx_stack2) != NULL);
	}
}

static void tmp_path(char *buf, size_t len, const char *what)
{
	const char *dir = getenv("TMPDIR");

	snprintf(buf, len, "%s/test_snapshot_roundtrip.%d.%s.vsnap",
	         dir != NULL && *dir ? dir : "/tmp", (int)getpid(), what);
}

static vsnap_t *read_back(const char *path)
{
	char err[512];
	vsnap_t *s = NULL;

	if (vsnap_read_file(path, &s, err, sizeof(err)) != 0)
		fail_msg("the library's snapshot is rejected: %s", err);
	return s;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_roundtrip_world(void **state)
{
	char path[512];
	world_t w;
	counters_t c;
	vsnap_t *s;

	(void)state;
	build_world(&w);
	tmp_path(path, sizeof(path), "world");
	assert_int_equal(vmem_snapshot_write(path), 0);
	take_counters(&w, &c);
	s = read_back(path);
	unlink(path);

	assert_int_equal(s->version, VSNAP_VERSION);
	assert_int_equal(s->ptrsize, sizeof(void *));
	assert_int_equal(s->pid, (uint64_t)getpid());
	assert_true(s->nsegs > 3000);
	assert_true(s->nobjects > 0 && s->objects[0].path[0] != '\0');
	assert_true(s->nregions > 0);
	check_arena(s, w.root, NULL, 0);
	check_arena(s, w.heap, w.root, 1);
	check_arena(s, w.sub, w.heap, 2);
	check_arena(s, w.ids, NULL, 0);
	check_counters(s, &w, &c);
	check_held(s, &w);
	check_debug_data(s);
	check_kinds(s, &w);
	check_segments(s, w.root);
	check_segments(s, w.heap);
	check_segments(s, w.sub);
	check_segments(s, w.ids);
	print_message("snapshot: %zu arenas, %zu segments, %zu caches, %zu stacks, %zu log "
	              "records, %zu objects, %zu regions\n",
	              s->narenas, s->nsegs, s->nqcaches, s->nstacks, s->nlog, s->nobjects,
	              s->nregions);
	vsnap_free(s);

	/* Run on, then again: everything freed and destroyed is gone from the next one. */
	{
		uint32_t ids[4] = {vmem_id(w.root), vmem_id(w.heap), vmem_id(w.sub),
		                   vmem_id(w.ids)};

		destroy_world(&w);
		assert_int_equal(vmem_snapshot_write(path), 0);
		s = read_back(path);
		unlink(path);
		for (int i = 0; i < 4; i++)
			assert_null(vsnap_arena(s, ids[i]));
		vsnap_free(s);
	}
}

/* The descriptor form, into a file and into a full pipe's worth of data. */
static void test_write_fd(void **state)
{
	char path[512], err[512];
	world_t w;
	vsnap_t *s = NULL;
	struct stat st;
	uint8_t *buf;
	int fd;

	(void)state;
	build_world(&w);
	tmp_path(path, sizeof(path), "fd");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vmem_snapshot_write_fd(fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	if (vsnap_read_buf(buf, (size_t)st.st_size, &s, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	check_arena(s, w.sub, w.heap, 2);
	check_held(s, &w);
	vsnap_free(s);
	free(buf);
	destroy_world(&w);

	errno = 0;
	assert_int_equal(vmem_snapshot_write_fd(-1), -1);
	assert_int_equal(errno, EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_world),
	    cmocka_unit_test(test_write_fd),
	};

	/* A small log keeps the debug snapshot small; ENOTSUP in libvmem. */
	(void)vmem_debug_set_log_size(4096);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
