/*
 * The snapshot reader and validator (src/vsnap_read.c) against crafted
 * files: a round trip of a valid snapshot that uses every section, one
 * test per rule of "What a reader checks" (docs/snapshot-format.md), each
 * asserting the message and that the reader gave back all its memory,
 * then a truncation sweep and a bit-flip sweep, and vsnap_read_file()'s
 * own errors.  The library's writer is round-tripped in
 * test_snapshot_roundtrip.c.
 *
 * Every input is handed to the reader in a heap block of exactly its size,
 * so that AddressSanitizer sees any read past the end.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>

#include "testutil.h"

#include "vsnap.h"
#include "vsnap_build.h"

/* ---- memory accounting ------------------------------------------------------------------ */

/*
 * The test links with -Wl,--wrap for the four allocation functions, so
 * every call made by the reader (a static library linked in) comes through
 * here: live_bytes is what it holds at any moment.  A reader that failed
 * must be back where it started.  (mallinfo() cannot tell: glibc counts
 * blocks in its per-thread caches as in use.)
 */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

static size_t live_bytes, peak_bytes;

static void note_peak(void)
{
	if (live_bytes > peak_bytes)
		peak_bytes = live_bytes;
}

void *__wrap_malloc(size_t n)
{
	void *p = __real_malloc(n);

	if (p != NULL)
		live_bytes += malloc_usable_size(p);
	note_peak();
	return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
	void *p = __real_calloc(n, size);

	if (p != NULL)
		live_bytes += malloc_usable_size(p);
	note_peak();
	return p;
}

void *__wrap_realloc(void *p, size_t n)
{
	size_t old = p != NULL ? malloc_usable_size(p) : 0;
	void *q = __real_realloc(p, n);

	if (q != NULL)
		live_bytes += malloc_usable_size(q) - old;
	else if (n == 0)
		live_bytes -= old;
	note_peak();
	return q;
}

void __wrap_free(void *p)
{
	if (p != NULL)
		live_bytes -= malloc_usable_size(p);
	__real_free(p);
}

static size_t heap_in_use(void)
{
	return live_bytes;
}

/* ---- a sample snapshot using every section ------------------------------------------- */

typedef struct sample_stack {
	uint32_t id, depth;
	uint64_t pc[VSNAP_MAXDEPTH];
} sample_stack_t;

typedef struct sample_obj {
	vsnap_object_rec_t o;
	char path[64];
} sample_obj_t;

typedef struct sample {
	uint32_t flags;
	vsnap_arena_rec_t arenas[8];
	size_t narenas;
	vsnap_seg_rec_t segs[32];
	size_t nsegs;
	vsnap_qcache_rec_t qcs[8];
	size_t nqcs;
	sample_stack_t stacks[8];
	size_t nstacks;
	vsnap_txrec_t log[8];
	size_t nlog;
	sample_obj_t objs[4];
	size_t nobjs;
	vsnap_region_rec_t regions[4];
	size_t nregions;
	uint64_t errors[40];
	size_t nerrors;
} sample_t;

static void add_arena(sample_t *sm, uint32_t id, uint32_t src, const char *name, uint64_t quantum,
                      uint32_t nqcache, uint32_t cflags)
{
	vsnap_arena_rec_t *a = &sm->arenas[sm->narenas++];

	a->ar_id = id;
	a->ar_source_id = src;
	a->ar_cflags = cflags;
	a->ar_nqcache = nqcache;
	a->ar_quantum = quantum;
	a->ar_qcache_max = nqcache * quantum;
	a->ar_addr = 0x555500000000ULL + id * 0x1000;
	snprintf(a->ar_name, sizeof(a->ar_name), "%s", name);
	for (int k = 0; k < VSNAP_NKSTAT; k++)
		a->ar_kstat[k] = id * 1000 + (uint64_t)k;
	a->ar_kstat[3] = src; /* vk_source_id */
}

static void add_seg(sample_t *sm, uint32_t arena, uint8_t type, uint8_t flags, uint64_t start,
                    uint64_t size, uint64_t extent, uint32_t stack)
{
	size_t i = sm->nsegs++;
	vsnap_seg_rec_t *g = &sm->segs[i];

	g->sg_arena = arena;
	g->sg_type = type;
	g->sg_flags = flags;
	g->sg_stack = stack;
	g->sg_start = start;
	g->sg_size = size;
	g->sg_extent = extent;
	if (type == VSNAP_ALLOC || type == VSNAP_CACHED) {
		g->sg_thread = 7000 + i;
		g->sg_time = 1000000 + i;
	}
	g->sg_addr = 0x600000000000ULL + i * 0x40;
}

static void add_qcache(sample_t *sm, uint32_t arena, uint32_t index, const char *name)
{
	vsnap_qcache_rec_t *q = &sm->qcs[sm->nqcs++];

	q->qr_arena = arena;
	q->qr_index = index;
	snprintf(q->qr_name, sizeof(q->qr_name), "%s", name);
	for (int k = 0; k < VSNAP_NQKSTAT; k++)
		q->qr_kstat[k] = index * 100 + (uint64_t)k + 1;
}

static void add_stack(sample_t *sm, uint32_t id, uint32_t depth)
{
	sample_stack_t *st = &sm->stacks[sm->nstacks++];

	st->id = id;
	st->depth = depth;
	for (uint32_t d = 0; d < depth; d++)
		st->pc[d] = 0x401000 + id * 0x100 + d;
}

static void add_tx(sample_t *sm, uint64_t seq, uint8_t op, uint32_t arena, uint32_t stack,
                   uint32_t stack2)
{
	vsnap_txrec_t *t = &sm->log[sm->nlog++];

	t->tx_seq = seq;
	t->tx_time = 5000000 + seq;
	t->tx_addr = 0x100000 + seq * 0x1000;
	t->tx_size = 0x1000;
	t->tx_tid = 7000 + (uint32_t)seq;
	t->tx_arena = arena;
	t->tx_stack = stack;
	t->tx_stack2 = stack2;
	t->tx_op = op;
}

static void add_obj(sample_t *sm, const char *path, uint32_t idlen)
{
	sample_obj_t *o = &sm->objs[sm->nobjs++];

	o->o.ob_base = 0x7f0000000000ULL + sm->nobjs * 0x100000;
	o->o.ob_start = o->o.ob_base + 0x1000;
	o->o.ob_end = o->o.ob_base + 0x80000;
	o->o.ob_build_id_len = idlen;
	for (uint32_t k = 0; k < idlen; k++)
		o->o.ob_build_id[k] = (uint8_t)(0xa0 + k);
	o->o.ob_path_len = (uint32_t)strlen(path);
	snprintf(o->path, sizeof(o->path), "%s", path);
}

/*
 * Arenas, in file order: 1 root, 2 heap (from 1), 3 other (a root), 4
 * cached (from 2, two caches), 6 ids (from 1; id 5 was destroyed).  Tree
 * order: 1, 2, 4, 6, 3.  Segment records are numbered in the comments: the
 * rule tests below change them by number.
 */
static void sample_init(sample_t *sm)
{
	memset(sm, 0, sizeof(*sm));
	sm->flags = VSNAP_F_DEBUG;
	add_arena(sm, 1, 0, "root", 0x1000, 0, 0);
	add_arena(sm, 2, 1, "heap", 0x1000, 0, VMC_NO_QCACHE);
	add_arena(sm, 3, 0, "other", 0x1000, 0, 0);
	add_arena(sm, 4, 2, "cached", 0x1000, 2, 0);
	add_arena(sm, 6, 1, "ids", 1, 0, VMC_IDENTIFIER);

	add_seg(sm, 1, VSNAP_SPAN, 0, 0x100000, 0x100000, 0x100000, 0);              /* 0 */
	add_seg(sm, 1, VSNAP_ALLOC, 0, 0x100000, 0x40000, 0x40000, 0);               /* 1 */
	add_seg(sm, 1, VSNAP_ALLOC, 0, 0x140000, 0x10000, 0x10000, 7);               /* 2 */
	add_seg(sm, 1, VSNAP_FREE, 0, 0x150000, 0xb0000, 0xb0000, 0);                /* 3 */
	add_seg(sm, 2, VSNAP_SPAN, VSNAP_F_IMPORTED, 0x100000, 0x40000, 0x40000, 0); /* 4 */
	add_seg(sm, 2, VSNAP_ALLOC, VSNAP_F_XALLOC, 0x100000, 0xf00, 0x1000, 7);     /* 5 */
	add_seg(sm, 2, VSNAP_FREE, 0, 0x101000, 0x3f000, 0x3f000, 0);                /* 6 */
	add_seg(sm, 3, VSNAP_SPAN, 0, 0x1000, 0x3000, 0x3000, 0);                    /* 7 */
	add_seg(sm, 3, VSNAP_FREE, 0, 0x1000, 0x1000, 0x1000, 0);                    /* 8 */
	add_seg(sm, 3, VSNAP_ALLOC, 0, 0x2000, 0x1800, 0x2000, 9);                   /* 9 */
	add_seg(sm, 3, VSNAP_SPAN, 0, 0x8000, 0x1000, 0x1000, 0);                    /* 10 */
	add_seg(sm, 3, VSNAP_ALLOC, VSNAP_F_QDIRECT, 0x8000, 0x800, 0x1000, 0);      /* 11 */
	add_seg(sm, 4, VSNAP_SPAN, VSNAP_F_IMPORTED, 0x200000, 0x20000, 0x20000, 0); /* 12 */
	add_seg(sm, 4, VSNAP_ALLOC, VSNAP_F_SLAB, 0x200000, 0x8000, 0x8000, 3);      /* 13 */
	add_seg(sm, 4, VSNAP_CACHED, 0, 0x200000, 0x1000, 0x1000, 3);                /* 14 */
	add_seg(sm, 4, VSNAP_CACHED, 0, 0x203000, 0x2000, 0x2000, 9);                /* 15 */
	add_seg(sm, 4, VSNAP_FREE, 0, 0x208000, 0x18000, 0x18000, 0);                /* 16 */
	add_seg(sm, 6, VSNAP_SPAN, 0, 1, 1000, 1000, 0);                             /* 17 */
	add_seg(sm, 6, VSNAP_ALLOC, 0, 1, 10, 10, 0);                                /* 18 */
	add_seg(sm, 6, VSNAP_FREE, 0, 11, 990, 990, 0);                              /* 19 */

	/* Out of index order on purpose: the model sorts caches by (arena, index). */
	add_qcache(sm, 4, 1, "cached_8192");
	add_qcache(sm, 4, 0, "cached_4096");

	add_stack(sm, 3, 2);
	add_stack(sm, 7, 5);
	add_stack(sm, 9, VSNAP_MAXDEPTH);

	for (uint8_t op = 1; op <= 7; op++)
		add_tx(sm, 10 + 2 * op, op, op % 3 + 1, op % 2 ? 7 : 3, op >= 3 ? 9 : 0);

	add_obj(sm, "/usr/bin/prog", 20);
	add_obj(sm, "/bin/abc", 0); /* 8 bytes: no padding */
	add_obj(sm, "/lib/x86_64-linux-gnu/libc.so.6", 8);

	sm->regions[sm->nregions++] = (vsnap_region_rec_t){0x7f1000000000ULL, 0x10000, 1, 0};
	sm->regions[sm->nregions++] = (vsnap_region_rec_t){0x7f1000100000ULL, 0x2000, 5, 0};

	sm->nerrors = VMEM_ERR_NKINDS;
	for (size_t k = 1; k < sm->nerrors; k++)
		sm->errors[k] = k * 3;
}

static void sample_build(const sample_t *sm, vsb_t *b)
{
	vsb_init(b, sm->flags);
	vsb_begin(b, VSNAP_SEC_ARENA);
	for (size_t i = 0; i < sm->narenas; i++)
		vsb_rec(b, &sm->arenas[i], sizeof(sm->arenas[i]));
	vsb_begin(b, VSNAP_SEC_SEG);
	for (size_t i = 0; i < sm->nsegs; i++)
		vsb_rec(b, &sm->segs[i], sizeof(sm->segs[i]));
	vsb_begin(b, VSNAP_SEC_QCACHE);
	for (size_t i = 0; i < sm->nqcs; i++)
		vsb_rec(b, &sm->qcs[i], sizeof(sm->qcs[i]));
	vsb_begin(b, VSNAP_SEC_STACK);
	for (size_t i = 0; i < sm->nstacks; i++)
		vsb_stack(b, sm->stacks[i].id, sm->stacks[i].depth, sm->stacks[i].pc);
	vsb_begin(b, VSNAP_SEC_TXLOG);
	for (size_t i = 0; i < sm->nlog; i++)
		vsb_rec(b, &sm->log[i], sizeof(sm->log[i]));
	vsb_begin(b, VSNAP_SEC_OBJECT);
	for (size_t i = 0; i < sm->nobjs; i++)
		vsb_object(b, &sm->objs[i].o, sm->objs[i].path);
	vsb_begin(b, VSNAP_SEC_REGION);
	for (size_t i = 0; i < sm->nregions; i++)
		vsb_rec(b, &sm->regions[i], sizeof(sm->regions[i]));
	vsb_begin(b, VSNAP_SEC_ERRORS);
	for (size_t i = 0; i < sm->nerrors; i++)
		vsb_rec(b, &sm->errors[i], sizeof(sm->errors[i]));
	vsb_finish(b);
}

/* ---- running the reader ------------------------------------------------------------------ */

/* The reader on an exact-size copy; returns its result, *out and the message. */
static int read_copy(const uint8_t *buf, size_t len, vsnap_t **out, char *err, size_t errlen)
{
	uint8_t *copy = malloc(len != 0 ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	err[0] = '\0';
	rc = vsnap_read_buf(copy, len, out, err, errlen);
	free(copy);
	return rc;
}

/*
 * The model must hold together whatever the input was: every invariant a
 * consumer (vmemdb, the fuzz target) relies on.
 */
static void check_model(const vsnap_t *s)
{
	size_t segs = 0, qcs = 0;

	assert_int_equal(s->version, VSNAP_VERSION);
	assert_true(s->ptrsize == 4 || s->ptrsize == 8);
	assert_true(s->nerrors <= 32);
	for (size_t t = 0; t < s->narenas; t++) {
		const vsnap_arena_t *a = &s->arenas[t];

		assert_ptr_equal(vsnap_arena(s, a->a.ar_id), a);
		assert_non_null(memchr(a->a.ar_name, 0, VSNAP_NAMELEN));
		if (a->a.ar_source_id == 0) {
			assert_int_equal(a->depth, 0);
		} else {
			const vsnap_arena_t *src = vsnap_arena(s, a->a.ar_source_id);

			assert_non_null(src);
			assert_true(src < a); /* tree order: the source first */
			assert_int_equal(a->depth, src->depth + 1);
		}
		assert_true(a->seg_count <= s->nsegs && a->seg_first <= s->nsegs - a->seg_count);
		for (size_t i = a->seg_first; i < a->seg_first + a->seg_count; i++)
			assert_int_equal(s->segs[i].sg_arena, a->a.ar_id);
		assert_true(a->qc_count <= s->nqcaches && a->qc_first <= s->nqcaches - a->qc_count);
		for (size_t i = a->qc_first; i < a->qc_first + a->qc_count; i++) {
			assert_int_equal(s->qcaches[i].qr_arena, a->a.ar_id);
			assert_true(s->qcaches[i].qr_index < a->a.ar_nqcache);
			assert_non_null(memchr(s->qcaches[i].qr_name, 0, VSNAP_QNAMELEN));
		}
		segs += a->seg_count;
		qcs += a->qc_count;
	}
	assert_int_equal(segs, s->nsegs);
	assert_int_equal(qcs, s->nqcaches);
	for (size_t i = 0; i < s->nsegs; i++) {
		const vsnap_seg_rec_t *g = &s->segs[i];

		assert_true(g->sg_size <= g->sg_extent && g->sg_extent != 0);
		assert_true(g->sg_stack == 0 || vsnap_stack(s, g->sg_stack) != NULL);
	}
	for (size_t i = 0; i < s->nstacks; i++) {
		assert_true(s->stacks[i].id != 0 &&
		            (i == 0 || s->stacks[i].id > s->stacks[i - 1].id));
		assert_true(s->stacks[i].depth >= 1 && s->stacks[i].depth <= VSNAP_MAXDEPTH);
		assert_ptr_equal(vsnap_stack(s, s->stacks[i].id), &s->stacks[i]);
	}
	for (size_t i = 0; i < s->nlog; i++) {
		assert_true(s->log[i].tx_op >= 1 && s->log[i].tx_op <= 7);
		assert_true(i == 0 || s->log[i].tx_seq > s->log[i - 1].tx_seq);
	}
	for (size_t i = 0; i < s->nobjects; i++) {
		assert_int_equal(strlen(s->objects[i].path), s->objects[i].o.ob_path_len);
		assert_true(s->objects[i].o.ob_build_id_len <= 20);
	}
	for (size_t i = 0; i < s->nregions; i++)
		assert_true(s->regions[i].rg_size == 0 ||
		            s->regions[i].rg_size - 1 <= UINT64_MAX - s->regions[i].rg_start);
}

static vsnap_t *expect_ok(const uint8_t *buf, size_t len)
{
	char err[512];
	vsnap_t *s = NULL;

	if (read_copy(buf, len, &s, err, sizeof(err)) != 0)
		fail_msg("rejected: %s", err);
	assert_non_null(s);
	check_model(s);
	return s;
}

/* Rejected, with `what` in a one-line message, and every byte given back. */
static void expect_error(const uint8_t *buf, size_t len, const char *what)
{
	char err[512];
	vsnap_t *s = (vsnap_t *)err; /* must become NULL */
	uint8_t *copy = malloc(len != 0 ? len : 1);
	size_t before;
	int rc;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	err[0] = '\0';
	before = heap_in_use();
	rc = vsnap_read_buf(copy, len, &s, err, sizeof(err));
	assert_int_equal(heap_in_use(), before);
	free(copy);
	assert_int_equal(rc, -1);
	assert_null(s);
	if (strstr(err, what) == NULL)
		fail_msg("expected \"%s\" in the message, got \"%s\"", what, err);
	assert_null(strchr(err, '\n'));
	assert_non_null(strstr(err, "offset "));
}

static void expect_sample_error(const sample_t *sm, const char *what)
{
	vsb_t b;

	sample_build(sm, &b);
	expect_error(b.buf, b.len, what);
	vsb_free(&b);
}

/* ---- (a) round trip ---------------------------------------------------------------------- */

static void test_roundtrip_sample(void **state)
{
	static const uint32_t tree_ids[] = {1, 2, 4, 6, 3};
	static const size_t tree_rec[] = {0, 1, 3, 4, 2}; /* file record of each */
	static const int tree_depth[] = {0, 1, 2, 1, 0};
	static const size_t seg_first[] = {0, 4, 12, 17, 7}, seg_count[] = {4, 3, 5, 3, 5};
	sample_t sm;
	vsb_t b;
	vsnap_t *s;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	s = expect_ok(b.buf, b.len);

	assert_int_equal(s->version, 1);
	assert_int_equal(s->flags, VSNAP_F_DEBUG);
	assert_int_equal(s->ptrsize, 8);
	assert_int_equal(s->pid, 4242);
	assert_int_equal(s->time_ns, 1700000000123456789ULL);
	assert_non_null(s->owned);

	assert_int_equal(s->narenas, 5);
	for (size_t t = 0; t < 5; t++) {
		const vsnap_arena_t *a = &s->arenas[t];

		assert_int_equal(a->a.ar_id, tree_ids[t]);
		assert_memory_equal(&a->a, &sm.arenas[tree_rec[t]], sizeof(a->a));
		assert_int_equal(a->depth, tree_depth[t]);
		assert_int_equal(a->seg_first, seg_first[t]);
		assert_int_equal(a->seg_count, seg_count[t]);
		assert_ptr_equal(vsnap_arena(s, tree_ids[t]), a);
	}
	assert_string_equal(s->arenas[2].a.ar_name, "cached");
	assert_int_equal(s->arenas[2].qc_first, 0);
	assert_int_equal(s->arenas[2].qc_count, 2);
	assert_int_equal(s->arenas[0].qc_count, 0);
	assert_null(vsnap_arena(s, 5));
	assert_null(vsnap_arena(s, 0));
	assert_null(vsnap_arena(s, 7));

	assert_int_equal(s->nsegs, sm.nsegs);
	assert_memory_equal(s->segs, sm.segs, sm.nsegs * sizeof(vsnap_seg_rec_t));

	assert_int_equal(s->nqcaches, 2);
	assert_memory_equal(&s->qcaches[0], &sm.qcs[1], sizeof(vsnap_qcache_rec_t));
	assert_memory_equal(&s->qcaches[1], &sm.qcs[0], sizeof(vsnap_qcache_rec_t));
	assert_string_equal(s->qcaches[0].qr_name, "cached_4096");

	assert_int_equal(s->nstacks, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(s->stacks[i].id, sm.stacks[i].id);
		assert_int_equal(s->stacks[i].depth, sm.stacks[i].depth);
		assert_memory_equal(s->stacks[i].pc, sm.stacks[i].pc, sm.stacks[i].depth * 8);
	}
	assert_ptr_equal(vsnap_stack(s, 7), &s->stacks[1]);
	assert_null(vsnap_stack(s, 0));
	assert_null(vsnap_stack(s, 4));
	assert_null(vsnap_stack(s, 10));

	assert_int_equal(s->nlog, 7);
	assert_memory_equal(s->log, sm.log, 7 * sizeof(vsnap_txrec_t));

	assert_int_equal(s->nobjects, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_memory_equal(&s->objects[i].o, &sm.objs[i].o, sizeof(vsnap_object_rec_t));
		assert_string_equal(s->objects[i].path, sm.objs[i].path);
	}

	assert_int_equal(s->nregions, 2);
	assert_memory_equal(s->regions, sm.regions, 2 * sizeof(vsnap_region_rec_t));

	assert_int_equal(s->nerrors, VMEM_ERR_NKINDS);
	assert_memory_equal(s->errors, sm.errors, VMEM_ERR_NKINDS * sizeof(uint64_t));
	vsnap_free(s);
	vsb_free(&b);
}

/* The smallest snapshot: a header and END.  And sections may be left out. */
static void test_roundtrip_minimal(void **state)
{
	vsb_t b;
	vsnap_t *s;
	vsnap_arena_rec_t a;

	(void)state;
	vsb_init(&b, 0);
	vsb_finish(&b);
	assert_int_equal(b.len, 64 + 24);
	s = expect_ok(b.buf, b.len);
	assert_int_equal(s->narenas + s->nsegs + s->nqcaches + s->nstacks + s->nlog + s->nobjects +
	                     s->nregions + s->nerrors,
	                 0);
	assert_null(vsnap_arena(s, 1));
	assert_null(vsnap_stack(s, 1));
	vsnap_free(s);
	vsb_free(&b);

	/* Only arenas: a forest with no segments, and a 4-byte pointer size. */
	vsb_init(&b, 0);
	vsb_put32(&b, offsetof(vsnap_file_header_t, fh_ptrsize), 4);
	vsb_begin(&b, VSNAP_SEC_ARENA);
	memset(&a, 0, sizeof(a));
	for (uint32_t id = 1; id <= 3; id++) {
		a.ar_id = id;
		a.ar_source_id = id - 1; /* a chain: 1 <- 2 <- 3 */
		vsb_rec(&b, &a, sizeof(a));
	}
	vsb_finish(&b);
	s = expect_ok(b.buf, b.len);
	assert_int_equal(s->ptrsize, 4);
	assert_int_equal(s->narenas, 3);
	assert_int_equal(s->arenas[2].depth, 2);
	assert_int_equal(s->arenas[2].seg_count, 0);
	vsnap_free(s);
	vsb_free(&b);
	vsnap_free(NULL);
}

/* Boundaries that are valid: a 4096-byte path, a region ending at the top of the space. */
static void test_roundtrip_limits(void **state)
{
	vsnap_object_rec_t o;
	char *path = malloc(VSNAP_MAXPATH + 1);
	vsnap_region_rec_t top = {UINT64_MAX - 0xff, 0x100, 6, 0};
	vsnap_seg_rec_t g;
	vsnap_arena_rec_t a;
	vsb_t b;
	vsnap_t *s;

	(void)state;
	memset(path, 'p', VSNAP_MAXPATH);
	path[VSNAP_MAXPATH] = '\0';
	memset(&o, 0, sizeof(o));
	o.ob_path_len = VSNAP_MAXPATH;
	o.ob_build_id_len = 20;
	memset(&a, 0, sizeof(a));
	a.ar_id = 9;
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_ARENA);
	vsb_rec(&b, &a, sizeof(a));
	/* A span that ends at 2^64 exactly, tiled by one segment. */
	vsb_begin(&b, VSNAP_SEC_SEG);
	memset(&g, 0, sizeof(g));
	g.sg_arena = 9;
	g.sg_type = VSNAP_SPAN;
	g.sg_start = UINT64_MAX - 0xfff;
	g.sg_size = g.sg_extent = 0x1000;
	vsb_rec(&b, &g, sizeof(g));
	g.sg_type = VSNAP_FREE;
	vsb_rec(&b, &g, sizeof(g));
	vsb_begin(&b, VSNAP_SEC_OBJECT);
	vsb_object(&b, &o, path);
	vsb_begin(&b, VSNAP_SEC_REGION);
	vsb_rec(&b, &top, sizeof(top));
	vsb_finish(&b);
	s = expect_ok(b.buf, b.len);
	assert_int_equal(strlen(s->objects[0].path), VSNAP_MAXPATH);
	assert_int_equal(s->regions[0].rg_start, UINT64_MAX - 0xff);
	assert_int_equal(s->arenas[0].seg_count, 2);
	vsnap_free(s);
	vsb_free(&b);
	free(path);
}

/* A null message buffer is allowed; an absent result pointer is an error. */
static void test_api_arguments(void **state)
{
	sample_t sm;
	vsb_t b;
	vsnap_t *s = NULL;
	char err[256];

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	b.buf[0] = 'X';
	assert_int_equal(vsnap_read_buf(b.buf, b.len, &s, NULL, 0), -1);
	assert_null(s);
	assert_int_equal(vsnap_read_buf(b.buf, b.len, NULL, err, sizeof(err)), -1);
	assert_int_equal(vsnap_read_buf(NULL, 10, &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no buffer"));
	/* A tiny message buffer gets a truncated, terminated message. */
	assert_int_equal(vsnap_read_buf(b.buf, b.len, &s, err, 8), -1);
	assert_int_equal(strlen(err), 7);
	assert_null(vsnap_stack(NULL, 1));
	assert_null(vsnap_arena(NULL, 1));
	vsb_free(&b);
}

/* ---- (b) one test per rule: the file and its sections ------------------------------------ */

static void test_reject_short_header(void **state)
{
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	expect_error(b.buf, 63,
	             "file header at offset 0: the input is 63 bytes, shorter than the "
	             "64-byte header");
	expect_error(b.buf, 0, "the input is 0 bytes");
	vsb_free(&b);
}

/* Patch one field of the sample's built file and expect `what`. */
static void expect_patched32(size_t off, uint32_t v, const char *what)
{
	sample_t sm;
	vsb_t b;

	sample_init(&sm);
	sample_build(&sm, &b);
	vsb_put32(&b, off, v);
	expect_error(b.buf, b.len, what);
	vsb_free(&b);
}

static void test_reject_magic(void **state)
{
	(void)state;
	expect_patched32(0, 0x4d454d56 ^ 1, "file header at offset 0: bad magic");
	expect_patched32(4, 0, "file header at offset 0: bad magic");
}

static void test_reject_version(void **state)
{
	(void)state;
	expect_patched32(8, 2,
	                 "file header at offset 8: version 2, this reader knows only version 1");
	expect_patched32(8, 0, "version 0");
}

static void test_reject_header_size(void **state)
{
	(void)state;
	expect_patched32(12, 72, "file header at offset 12: header size 72, expected 64");
}

static void test_reject_pointer_size(void **state)
{
	(void)state;
	expect_patched32(20, 16, "file header at offset 20: pointer size 16, expected 4 or 8");
	expect_patched32(20, 0, "pointer size 0");
}

static void test_reject_section_count(void **state)
{
	(void)state;
	expect_patched32(56, 5, "file header at offset 56: announces 5 sections, the file has 9");
}

static void test_reject_section_header_truncated(void **state)
{
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	expect_error(b.buf, 64 + 10, "section header at offset 64: truncated (10 of 24 bytes)");
	vsb_free(&b);
}

static void test_reject_payload_past_end(void **state)
{
	sample_t sm;
	vsb_t b;
	size_t left;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	left = b.len - 64 - 24;
	vsb_put64(&b, 64 + 16, left + 8);
	expect_error(b.buf, b.len, "section 1 (ARENA) at offset 64: payload of");
	expect_error(b.buf, b.len, "runs past the end of the file");
	/* A payload size that would wrap an offset computed naively. */
	vsb_put64(&b, 64 + 16, UINT64_MAX - 16);
	expect_error(b.buf, b.len, "runs past the end of the file");
	vsb_free(&b);
}

static void test_reject_unknown_type(void **state)
{
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	vsb_put32(&b, b.hdr[VSNAP_SEC_QCACHE], 42);
	expect_error(b.buf, b.len, "unknown section type 42");
	vsb_put32(&b, b.hdr[VSNAP_SEC_QCACHE], 0);
	expect_error(b.buf, b.len, "unknown section type 0");
	vsb_free(&b);
}

static void test_reject_type_twice(void **state)
{
	vsb_t b;

	(void)state;
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_ARENA);
	vsb_begin(&b, VSNAP_SEC_ARENA);
	vsb_finish(&b);
	expect_error(
	    b.buf, b.len,
	    "section 1 (ARENA) at offset 88: the section appears twice (first at offset 64)");
	vsb_free(&b);
}

static void test_reject_out_of_order(void **state)
{
	vsb_t b;

	(void)state;
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_REGION);
	vsb_begin(&b, VSNAP_SEC_STACK);
	vsb_finish(&b);
	expect_error(b.buf, b.len,
	             "section 4 (STACK) at offset 88: out of order: after section 7 "
	             "(REGION)");
	vsb_free(&b);
}

static void test_reject_record_size(void **state)
{
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	vsb_put32(&b, b.hdr[VSNAP_SEC_SEG] + 4, 32);
	expect_error(b.buf, b.len, "section 2 (SEG) at offset");
	expect_error(b.buf, b.len, "record size 32, expected 64");
	vsb_free(&b);
	sample_build(&sm, &b);
	vsb_put32(&b, b.hdr[VSNAP_SEC_STACK] + 4, 8);
	expect_error(b.buf, b.len, "record size 8, expected 0 (variable-size records)");
	vsb_free(&b);
	sample_build(&sm, &b);
	vsb_put32(&b, b.hdr[VSNAP_SEC_END] + 4, 8);
	expect_error(b.buf, b.len, "section 9 (END) at offset");
	vsb_free(&b);
}

static void test_reject_count_times_size(void **state)
{
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	vsb_put64(&b, b.hdr[VSNAP_SEC_SEG] + 8, sm.nsegs + 1);
	expect_error(b.buf, b.len, "21 records of 64 bytes do not make the 1280 payload bytes");
	/* A count whose product with the record size wraps to the payload size. */
	vsb_put64(&b, b.hdr[VSNAP_SEC_SEG] + 8, sm.nsegs + (UINT64_MAX / 64 + 1));
	expect_error(b.buf, b.len, "records of 64 bytes do not make the 1280 payload bytes");
	vsb_free(&b);
}

static void test_reject_variable_records_fill(void **state)
{
	static const uint64_t pc[4] = {1, 2, 3, 4};
	vsnap_object_rec_t o;
	vsb_t b;

	(void)state;
	/* Bytes left over after the last record. */
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_STACK);
	vsb_stack(&b, 1, 2, pc);
	vsb_bytes(&b, pc, 4);
	vsb_finish(&b);
	expect_error(b.buf, b.len,
	             "section 4 (STACK) record 1 at offset 112: record header runs "
	             "past the payload (4 bytes left)");
	vsb_free(&b);

	/* A record longer than what is left. */
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_STACK);
	vsb_stack(&b, 1, 2, pc);
	vsb_put32(&b, vsb_payload(&b, VSNAP_SEC_STACK) + 4, 3);
	vsb_finish(&b);
	expect_error(b.buf, b.len, "stack 1 of depth 3 runs past the payload (24 bytes left)");
	vsb_free(&b);

	/* More records than counted, and fewer. */
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_STACK);
	vsb_stack(&b, 1, 1, pc);
	vsb_stack(&b, 2, 1, pc);
	vsb_stack(&b, 3, 1, pc);
	vsb_end(&b);
	vsb_put64(&b, b.hdr[VSNAP_SEC_STACK] + 8, 2);
	vsb_finish(&b);
	expect_error(b.buf, b.len,
	             "record 2 at offset 120: more records than the header's count of 2");
	vsb_put64(&b, b.hdr[VSNAP_SEC_STACK] + 8, 4);
	expect_error(
	    b.buf, b.len,
	    "section 4 (STACK) at offset 64: the header counts 4 records, the payload holds 3");
	vsb_free(&b);

	/* An object whose path runs past the payload. */
	memset(&o, 0, sizeof(o));
	o.ob_path_len = 5;
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_OBJECT);
	vsb_object(&b, &o, "/a/b/");
	vsb_put32(&b, vsb_payload(&b, VSNAP_SEC_OBJECT) + 28, 9);
	vsb_finish(&b);
	expect_error(b.buf, b.len,
	             "section 6 (OBJECT) record 0 at offset 88: path of 9 bytes runs "
	             "past the payload (8 bytes left)");
	vsb_free(&b);

	/* An object header cut short. */
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_OBJECT);
	vsb_rec(&b, &o, 48);
	vsb_finish(&b);
	expect_error(b.buf, b.len, "record header runs past the payload (48 bytes left)");
	vsb_free(&b);
}

static void test_reject_no_end(void **state)
{
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	expect_error(b.buf, b.hdr[VSNAP_SEC_END], "the file ends without an END section");
	vsb_free(&b);
}

static void test_reject_after_end(void **state)
{
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	vsb_bytes(&b, "\0\0\0\0\0\0\0\0", 8);
	expect_error(b.buf, b.len, "section 9 (END) at offset");
	expect_error(b.buf, b.len, ": 8 bytes after END");
	vsb_free(&b);

	/* A section after END is also something after END. */
	vsb_init(&b, 0);
	vsb_finish(&b);
	vsb_begin(&b, VSNAP_SEC_ARENA);
	vsb_end(&b);
	expect_error(b.buf, b.len, "24 bytes after END (offset 88)");
	vsb_free(&b);
}

static void test_reject_end_with_records(void **state)
{
	vsb_t b;

	(void)state;
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_END);
	vsb_rec(&b, "\0\0\0\0\0\0\0\0", 8);
	vsb_end(&b);
	expect_error(b.buf, b.len,
	             "section 9 (END) at offset 64: END has 1 records and 8 payload "
	             "bytes, expected none");
	vsb_free(&b);
}

/* ---- (b) arenas ---------------------------------------------------------------------------- */

static void test_reject_arena_id_zero(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.arenas[2].ar_id = 0;
	expect_sample_error(&sm, "section 1 (ARENA) record 2 at offset 456: arena id 0");
}

static void test_reject_arena_duplicate(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.arenas[4].ar_id = 3;
	expect_sample_error(&sm, "section 1 (ARENA) record 4 at offset 824: duplicate arena id 3 "
	                         "(also record 2)");
}

static void test_reject_arena_unknown_source(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.arenas[1].ar_source_id = 99;
	expect_sample_error(&sm, "record 1 at offset 272: arena 2: source id 99 names no arena");
}

static void test_reject_arena_cycle(void **state)
{
	sample_t sm;

	(void)state;
	/* 1 -> 4 -> 2 -> 1: the cycle's members are reported, not their importers. */
	sample_init(&sm);
	sm.arenas[0].ar_source_id = 4;
	expect_sample_error(&sm, "forms a cycle");
	sample_init(&sm);
	sm.arenas[2].ar_source_id = 3;
	expect_sample_error(&sm, "record 2 at offset 456: arena 3: source id 3 forms a cycle");
	/* A cycle with importers hanging from it. */
	sample_init(&sm);
	sm.arenas[0].ar_source_id = 6;
	expect_sample_error(&sm, "forms a cycle");
}

static void test_reject_arena_name_without_nul(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	memset(sm.arenas[1].ar_name, 'x', VSNAP_NAMELEN);
	expect_sample_error(&sm, "record 1 at offset 272: arena 2: the name has no NUL within 32 "
	                         "bytes");
}

/* ---- (b) segments -------------------------------------------------------------------------- */

static void test_reject_seg_unknown_arena(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[5].sg_arena = 5;
	expect_sample_error(&sm, "section 2 (SEG) record 5 at offset 1352: arena id 5 names no "
	                         "arena");
}

static void test_reject_seg_unknown_type(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[6].sg_type = 0x40;
	expect_sample_error(&sm, "section 2 (SEG) record 6 at offset 1416: unknown segment type "
	                         "0x40");
	sm.segs[6].sg_type = 0;
	expect_sample_error(&sm, "unknown segment type 0x0");
}

static void test_reject_seg_not_grouped(void **state)
{
	sample_t sm;
	vsnap_arena_rec_t t;

	(void)state;
	/* The ARENA section lists 3 before 2; the segments come 2 then 3. */
	sample_init(&sm);
	t = sm.arenas[1];
	sm.arenas[1] = sm.arenas[2];
	sm.arenas[2] = t;
	expect_sample_error(&sm, "record 7 at offset 1480: a segment of arena 3 after those of "
	                         "arena 2: not grouped in ARENA order");
	/* An arena's segments split in two groups. */
	sample_init(&sm);
	sm.segs[sm.nsegs] = sm.segs[0];
	sm.nsegs++;
	expect_sample_error(&sm, "a segment of arena 1 after those of arena 6: not grouped");
}

static void test_reject_seg_address_order(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[2].sg_start = 0xf0000;
	expect_sample_error(&sm, "record 2 at offset 1160: segment [0xf0000, +0x10000) is out of "
	                         "address order (after one at 0x100000)");
	/* Spans too. */
	sample_init(&sm);
	sm.segs[10].sg_start = 0x800;
	expect_sample_error(&sm, "segment [0x800, +0x1000) is out of address order");
}

static void test_reject_seg_outside_span(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[3].sg_size = sm.segs[3].sg_extent = 0xb1000;
	expect_sample_error(&sm, "record 3 at offset 1224: segment [0x150000, +0xb1000) runs past "
	                         "its span [0x100000, +0x100000)");
	/* No span at all before it. */
	sample_init(&sm);
	sm.segs[17].sg_type = VSNAP_FREE;
	expect_sample_error(&sm, "record 17 at offset 2120: segment [0x1, +0x3e8) is outside any "
	                         "span (no SPAN record before it)");
}

static void test_reject_seg_overlap(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[2].sg_start = 0x13f000;
	expect_sample_error(&sm,
	                    "record 2 at offset 1160: segment [0x13f000, +0x10000) overlaps the "
	                    "previous segment, which ends at 0x140000");
	/* Spans that overlap. */
	sample_init(&sm);
	sm.segs[10].sg_start = sm.segs[11].sg_start = 0x3000;
	expect_sample_error(&sm, "record 10 at offset 1672: span [0x3000, +0x1000) overlaps the "
	                         "previous span [0x1000, +0x3000)");
}

/* Segments must tile their span: no gap, and no part left over. */
static void test_reject_seg_not_tiled(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[9].sg_start = 0x3000;
	sm.segs[9].sg_size = sm.segs[9].sg_extent = 0x1000;
	expect_sample_error(&sm, "record 9 at offset 1608: segment [0x3000, +0x1000) leaves a gap "
	                         "in its span after 0x2000");
	sample_init(&sm);
	sm.segs[9].sg_size = sm.segs[9].sg_extent = 0x1000;
	expect_sample_error(&sm,
	                    "record 7 at offset 1480: span [0x1000, +0x3000) of arena 3 is not "
	                    "tiled: its segments stop at +0x2000");
	/* The last span of the last arena, checked at the end of the section. */
	sample_init(&sm);
	sm.segs[19].sg_size = sm.segs[19].sg_extent = 900;
	expect_sample_error(&sm, "record 17 at offset 2120: span [0x1, +0x3e8) of arena 6 is not "
	                         "tiled: its segments stop at +0x38e");
}

static void test_reject_seg_empty_or_wrapping(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[6].sg_size = sm.segs[6].sg_extent = 0;
	expect_sample_error(&sm, "record 6 at offset 1416: empty segment at 0x101000");
	sample_init(&sm);
	sm.segs[17].sg_start = UINT64_MAX - 10;
	expect_sample_error(&sm, "record 17 at offset 2120: span [0xfffffffffffffff5, +0x3e8) "
	                         "wraps around the address space");
}

static void test_reject_cached_outside_slab(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[15].sg_start = 0x207000;
	expect_sample_error(&sm, "record 15 at offset 1992: CACHED object [0x207000, +0x2000) is "
	                         "outside its slab [0x200000, +0x8000)");
	/* Not after a slab: the ALLOC before it is not one. */
	sample_init(&sm);
	sm.segs[13].sg_flags = 0;
	expect_sample_error(&sm, "record 14 at offset 1928: CACHED object [0x200000, +0x1000) is "
	                         "outside its slab (no slab ALLOC record before it)");
	/* After a FREE that follows the slab: record 17, after arena 4's FREE. */
	sample_init(&sm);
	memmove(&sm.segs[18], &sm.segs[17], 3 * sizeof(vsnap_seg_rec_t));
	sm.segs[17] = sm.segs[15];
	sm.segs[17].sg_start = 0x209000;
	sm.nsegs++;
	expect_sample_error(&sm, "record 17 at offset 2120: CACHED object [0x209000, +0x2000) is "
	                         "outside its slab (no slab ALLOC record before it)");
	/* Two objects that overlap. */
	sample_init(&sm);
	sm.segs[15].sg_start = 0x200800;
	expect_sample_error(&sm,
	                    "CACHED object [0x200800, +0x2000) overlaps the previous one, which "
	                    "ends at 0x201000");
}

static void test_reject_seg_size_over_extent(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[5].sg_size = 0x1001;
	expect_sample_error(&sm, "record 5 at offset 1352: segment [0x100000, +0x1000) has size "
	                         "0x1001, larger than its extent");
}

static void test_reject_seg_unknown_stack(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.segs[9].sg_stack = 8;
	expect_sample_error(&sm,
	                    "record 9 at offset 1608: segment [0x2000, +0x2000) has stack id 8, "
	                    "which names no stack");
	/* No STACK section at all: every stack id is unknown. */
	sample_init(&sm);
	sm.nstacks = 0;
	expect_sample_error(&sm, "record 2 at offset 1160: segment [0x140000, +0x10000) has stack "
	                         "id 7, which names no stack");
}

/* ---- (b) stacks, caches, log, objects, regions, errors ------------------------------------ */

static void test_reject_stack_id_zero(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.stacks[0].id = 0;
	expect_sample_error(&sm, "section 4 (STACK) record 0 at offset");
	expect_sample_error(&sm, ": stack id 0");
}

static void test_reject_stack_duplicate(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.stacks[1].id = 3;
	expect_sample_error(&sm, "section 4 (STACK) record 1 at offset");
	expect_sample_error(&sm, "duplicate stack id 3");
}

static void test_reject_stack_unsorted(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.stacks[1].id = 2;
	expect_sample_error(&sm, "stack id 2 after 3: ids are not ascending");
}

static void test_reject_stack_depth(void **state)
{
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sm.stacks[0].depth = 0;
	expect_sample_error(&sm, "stack 3 has depth 0, outside 1-64");
	/* 65 frames in the payload, and a depth of 65. */
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_STACK);
	{
		uint64_t pc[VSNAP_MAXDEPTH + 1] = {0};

		vsb_stack(&b, 1, VSNAP_MAXDEPTH + 1, pc);
	}
	vsb_finish(&b);
	expect_error(b.buf, b.len,
	             "section 4 (STACK) record 0 at offset 88: stack 1 has depth 65, "
	             "outside 1-64");
	/* A huge depth must not be multiplied into an offset. */
	vsb_put32(&b, vsb_payload(&b, VSNAP_SEC_STACK) + 4, UINT32_MAX);
	expect_error(b.buf, b.len, "stack 1 has depth 4294967295, outside 1-64");
	vsb_free(&b);
}

static void test_reject_qcache_unknown_arena(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.qcs[1].qr_arena = 5;
	expect_sample_error(&sm, "section 3 (QCACHE) record 1 at offset");
	expect_sample_error(&sm, "cache 0: arena id 5 names no arena");
}

static void test_reject_qcache_index(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.qcs[0].qr_index = 2;
	expect_sample_error(&sm, "section 3 (QCACHE) record 0 at offset");
	expect_sample_error(&sm, "cache index 2, but arena 4 has 2 caches");
	/* An arena without caches. */
	sample_init(&sm);
	sm.qcs[0].qr_arena = 1;
	expect_sample_error(&sm, "cache index 1, but arena 1 has 0 caches");
}

static void test_reject_qcache_duplicate(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.qcs[0].qr_index = 0;
	expect_sample_error(&sm, "section 3 (QCACHE) record 1 at offset");
	expect_sample_error(&sm, "duplicate cache (arena 4, index 0), also record 0");
}

static void test_reject_qcache_name_without_nul(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	memset(sm.qcs[1].qr_name, 'q', VSNAP_QNAMELEN);
	expect_sample_error(&sm, "cache 0 of arena 4: the name has no NUL within 48 bytes");
}

static void test_reject_log_operation(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.log[2].tx_op = 8;
	expect_sample_error(&sm, "section 5 (TXLOG) record 2 at offset");
	expect_sample_error(&sm, "unknown operation 8");
	sm.log[2].tx_op = 0;
	expect_sample_error(&sm, "unknown operation 0");
}

static void test_reject_log_sequence(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.log[3].tx_seq = sm.log[2].tx_seq;
	expect_sample_error(&sm, "section 5 (TXLOG) record 3 at offset");
	expect_sample_error(&sm, "sequence number 16 after 16: not increasing");
	sm.log[3].tx_seq = 1;
	expect_sample_error(&sm, "sequence number 1 after 16: not increasing");
}

/* Patch object record i's field at `field` (offset in the record) in the built sample. */
static void expect_object_patch(size_t i, size_t field, uint32_t v, const char *what)
{
	sample_t sm;
	vsb_t b;
	size_t off;

	sample_init(&sm);
	sample_build(&sm, &b);
	off = vsb_payload(&b, VSNAP_SEC_OBJECT);
	for (size_t k = 0; k < i; k++)
		off += sizeof(vsnap_object_rec_t) + ((sm.objs[k].o.ob_path_len + 7) & ~7u);
	vsb_put32(&b, off + field, v);
	expect_error(b.buf, b.len, what);
	vsb_free(&b);
}

static void test_reject_object_path_length(void **state)
{
	(void)state;
	expect_object_patch(1, offsetof(vsnap_object_rec_t, ob_path_len), 0,
	                    "section 6 (OBJECT) record 1 at offset");
	expect_object_patch(1, offsetof(vsnap_object_rec_t, ob_path_len), 0,
	                    "path length 0, outside 1-4096");
	expect_object_patch(0, offsetof(vsnap_object_rec_t, ob_path_len), 4097,
	                    "path length 4097, outside 1-4096");
	expect_object_patch(0, offsetof(vsnap_object_rec_t, ob_path_len), UINT32_MAX,
	                    "path length 4294967295, outside 1-4096");
}

static void test_reject_object_build_id(void **state)
{
	(void)state;
	expect_object_patch(2, offsetof(vsnap_object_rec_t, ob_build_id_len), 21,
	                    "section 6 (OBJECT) record 2 at offset");
	expect_object_patch(2, offsetof(vsnap_object_rec_t, ob_build_id_len), 21,
	                    "build id of 21 bytes, at most 20");
}

/* The model's paths are C strings: a NUL inside one is refused. */
static void test_reject_object_path_nul(void **state)
{
	(void)state;
	expect_object_patch(0, sizeof(vsnap_object_rec_t), 0x00727375,
	                    "record 0 at offset 3792: the path contains a NUL byte");
}

static void test_reject_region_wrap(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.regions[1] = (vsnap_region_rec_t){UINT64_MAX - 0xff, 0x101, 2, 0};
	expect_sample_error(&sm, "section 7 (REGION) record 1 at offset");
	expect_sample_error(&sm, "region [0xffffffffffffff00, +0x101) wraps around the address "
	                         "space");
}

static void test_reject_errors_count(void **state)
{
	sample_t sm;

	(void)state;
	sample_init(&sm);
	sm.nerrors = 33;
	expect_sample_error(&sm, "section 8 (ERRORS) at offset");
	expect_sample_error(&sm, "33 error kinds, this reader knows at most 32");
}

/* ---- (c) truncation and (d) bit flips ---------------------------------------------------- */

static void test_truncation_sweep(void **state)
{
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	for (size_t cut = 0; cut < b.len; cut++) {
		char err[512];
		vsnap_t *s = NULL;
		size_t before = heap_in_use();

		if (read_copy(b.buf, cut, &s, err, sizeof(err)) == 0)
			fail_msg("truncated at %zu of %zu bytes and accepted", cut, b.len);
		assert_null(s);
		assert_int_equal(heap_in_use(), before);
		assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
		assert_non_null(strstr(err, "offset "));
	}
	vsb_free(&b);
}

static void test_bitflip_sweep(void **state)
{
	static const uint8_t flips[] = {0x01, 0x02, 0x10, 0x80, 0xff};
	size_t accepted = 0, rejected = 0;
	sample_t sm;
	vsb_t b;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	for (size_t i = 0; i < b.len; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			char err[512];
			vsnap_t *s = NULL;

			b.buf[i] ^= flips[f];
			if (read_copy(b.buf, b.len, &s, err, sizeof(err)) == 0) {
				check_model(s);
				vsnap_free(s);
				accepted++;
			} else {
				assert_null(s);
				assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
				rejected++;
			}
			b.buf[i] ^= flips[f];
		}
	}
	/* Both outcomes happen: payload bytes such as counters are free-form. */
	assert_true(accepted > 0 && rejected > 0);
	print_message("bit flips: %zu accepted, %zu rejected\n", accepted, rejected);
	vsb_free(&b);
}

/* ---- allocation bound ---------------------------------------------------------------------- */

/* What the reader holds at its peak for this input, beyond what was live before. */
static size_t peak_for(const uint8_t *buf, size_t len, int expect_ok)
{
	char err[512];
	vsnap_t *s = NULL;
	size_t before = heap_in_use(), peak;
	int rc;

	peak_bytes = before;
	rc = vsnap_read_buf(buf, len, &s, err, sizeof(err));
	peak = peak_bytes - before;
	if ((rc == 0) != expect_ok)
		fail_msg("rc %d: %s", rc, err);
	vsnap_free(s);
	return peak;
}

/*
 * The widest inputs for their size: depth-1 stacks (16 bytes on disk, 24
 * in the model) and bare arenas (184 bytes on disk, 232 in the model plus
 * the tree's temporaries).  The reader stays within twice the input
 * (plus a page), accepted or not: counts that claim more are refused
 * before anything is allocated.
 */
static void test_allocation_bound(void **state)
{
	static const uint64_t pc = 0x401000;
	vsnap_arena_rec_t a;
	sample_t sm;
	vsb_t b;
	size_t peak;

	(void)state;
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_STACK);
	for (uint32_t id = 1; id <= 20000; id++)
		vsb_stack(&b, id, 1, &pc);
	vsb_finish(&b);
	peak = peak_for(b.buf, b.len, 1);
	print_message("20000 stacks: %zu bytes in, %zu at the peak\n", b.len, peak);
	assert_true(peak <= 2 * b.len + 4096);
	vsb_free(&b);

	memset(&a, 0, sizeof(a));
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_ARENA);
	for (uint32_t id = 1; id <= 5000; id++) {
		a.ar_id = id;
		a.ar_source_id = id / 2; /* a binary tree */
		vsb_rec(&b, &a, sizeof(a));
	}
	vsb_finish(&b);
	peak = peak_for(b.buf, b.len, 1);
	print_message("5000 arenas: %zu bytes in, %zu at the peak\n", b.len, peak);
	assert_true(peak <= 2 * b.len + 4096);
	/* The same file with a wrong section count: refused before any allocation. */
	vsb_put32(&b, offsetof(vsnap_file_header_t, fh_nsections), 7);
	assert_true(peak_for(b.buf, b.len, 0) <= 4096);
	vsb_free(&b);

	sample_init(&sm);
	sample_build(&sm, &b);
	peak = peak_for(b.buf, b.len, 1);
	assert_true(peak <= 2 * b.len + 4096);
	/* A count of 2^40 segments with no payload behind it allocates nothing. */
	vsb_put64(&b, b.hdr[VSNAP_SEC_SEG] + 8, (uint64_t)1 << 40);
	assert_true(peak_for(b.buf, b.len, 0) <= 4096);
	vsb_free(&b);
}

/* ---- vsnap_read_file ------------------------------------------------------------------------ */

static void tmp_path(char *buf, size_t len, const char *what)
{
	const char *dir = getenv("TMPDIR");

	snprintf(buf, len, "%s/test_vsnap.%d.%s", dir != NULL && *dir ? dir : "/tmp", (int)getpid(),
	         what);
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void expect_file_error(const char *path, const char *what)
{
	char err[1024];
	vsnap_t *s = (vsnap_t *)err;
	size_t before = heap_in_use();

	assert_int_equal(vsnap_read_file(path, &s, err, sizeof(err)), -1);
	assert_int_equal(heap_in_use(), before);
	assert_null(s);
	if (strstr(err, what) == NULL || strncmp(err, path, strlen(path)) != 0)
		fail_msg("expected \"%s: ...%s\", got \"%s\"", path, what, err);
	assert_null(strchr(err, '\n'));
}

static void test_read_file(void **state)
{
	char path[512], err[512];
	sample_t sm;
	vsb_t b;
	vsnap_t *s = NULL;

	(void)state;
	sample_init(&sm);
	sample_build(&sm, &b);
	tmp_path(path, sizeof(path), "ok");
	write_file(path, b.buf, b.len);
	if (vsnap_read_file(path, &s, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	check_model(s);
	assert_int_equal(s->nsegs, sm.nsegs);
	vsnap_free(s);

	/* A file cut short: the message names the file, then the section. */
	write_file(path, b.buf, b.len - 10);
	expect_file_error(path, "truncated (14 of 24 bytes)");
	write_file(path, b.buf, 0);
	expect_file_error(path, "empty file, not a snapshot");
	unlink(path);
	expect_file_error(path, "cannot open: No such file or directory");
	tmp_path(path, sizeof(path), "dir");
	assert_int_equal(mkdir(path, 0700), 0);
	expect_file_error(path, "is a directory, not a snapshot file");
	rmdir(path);
	expect_file_error("/dev/null", "empty file, not a snapshot");
	assert_int_equal(vsnap_read_file(NULL, &s, err, sizeof(err)), -1);
	vsb_free(&b);
}

/* Files over the limit are refused from their size alone, before any read. */
static void test_read_file_too_large(void **state)
{
	char path[512];
	int fd;

	(void)state;
	tmp_path(path, sizeof(path), "large");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	if (ftruncate(fd, ((off_t)4 << 30) + 1) != 0) {
		close(fd);
		unlink(path);
		skip(); /* no sparse files here */
	}
	close(fd);
	expect_file_error(path, "4294967297 bytes, larger than the reader's limit of 4 GiB");
	unlink(path);
}

/* A pipe has no size: the reader grows its buffer as the data comes. */
static void test_read_file_pipe(void **state)
{
	char path[512], err[512];
	vsnap_region_rec_t g = {0x7f0000000000ULL, 0x1000, 6, 0};
	vsnap_t *s = NULL;
	vsb_t b;
	pid_t pid;
	int status;

	(void)state;
	vsb_init(&b, 0);
	vsb_begin(&b, VSNAP_SEC_REGION);
	for (int i = 0; i < 20000; i++) {
		g.rg_start += 0x1000;
		vsb_rec(&b, &g, sizeof(g));
	}
	vsb_finish(&b);
	assert_true(b.len > 4 * 65536); /* several growths of the reader's buffer */
	tmp_path(path, sizeof(path), "fifo");
	assert_int_equal(mkfifo(path, 0600), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY);

		_exit(fd >= 0 && write(fd, b.buf, b.len) == (ssize_t)b.len ? 0 : 1);
	}
	if (vsnap_read_file(path, &s, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(s->nregions, 20000);
	assert_int_equal(s->regions[19999].rg_start, 0x7f0000000000ULL + 20000 * 0x1000);
	vsnap_free(s);
	unlink(path);
	vsb_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_sample),
	    cmocka_unit_test(test_roundtrip_minimal),
	    cmocka_unit_test(test_roundtrip_limits),
	    cmocka_unit_test(test_api_arguments),
	    cmocka_unit_test(test_reject_short_header),
	    cmocka_unit_test(test_reject_magic),
	    cmocka_unit_test(test_reject_version),
	    cmocka_unit_test(test_reject_header_size),
	    cmocka_unit_test(test_reject_pointer_size),
	    cmocka_unit_test(test_reject_section_count),
	    cmocka_unit_test(test_reject_section_header_truncated),
	    cmocka_unit_test(test_reject_payload_past_end),
	    cmocka_unit_test(test_reject_unknown_type),
	    cmocka_unit_test(test_reject_type_twice),
	    cmocka_unit_test(test_reject_out_of_order),
	    cmocka_unit_test(test_reject_record_size),
	    cmocka_unit_test(test_reject_count_times_size),
	    cmocka_unit_test(test_reject_variable_records_fill),
	    cmocka_unit_test(test_reject_no_end),
	    cmocka_unit_test(test_reject_after_end),
	    cmocka_unit_test(test_reject_end_with_records),
	    cmocka_unit_test(test_reject_arena_id_zero),
	    cmocka_unit_test(test_reject_arena_duplicate),
	    cmocka_unit_test(test_reject_arena_unknown_source),
	    cmocka_unit_test(test_reject_arena_cycle),
	    cmocka_unit_test(test_reject_arena_name_without_nul),
	    cmocka_unit_test(test_reject_seg_unknown_arena),
	    cmocka_unit_test(test_reject_seg_unknown_type),
	    cmocka_unit_test(test_reject_seg_not_grouped),
	    cmocka_unit_test(test_reject_seg_address_order),
	    cmocka_unit_test(test_reject_seg_outside_span),
	    cmocka_unit_test(test_reject_seg_overlap),
	    cmocka_unit_test(test_reject_seg_not_tiled),
	    cmocka_unit_test(test_reject_seg_empty_or_wrapping),
	    cmocka_unit_test(test_reject_cached_outside_slab),
	    cmocka_unit_test(test_reject_seg_size_over_extent),
	    cmocka_unit_test(test_reject_seg_unknown_stack),
	    cmocka_unit_test(test_reject_stack_id_zero),
	    cmocka_unit_test(test_reject_stack_duplicate),
	    cmocka_unit_test(test_reject_stack_unsorted),
	    cmocka_unit_test(test_reject_stack_depth),
	    cmocka_unit_test(test_reject_qcache_unknown_arena),
	    cmocka_unit_test(test_reject_qcache_index),
	    cmocka_unit_test(test_reject_qcache_duplicate),
	    cmocka_unit_test(test_reject_qcache_name_without_nul),
	    cmocka_unit_test(test_reject_log_operation),
	    cmocka_unit_test(test_reject_log_sequence),
	    cmocka_unit_test(test_reject_object_path_length),
	    cmocka_unit_test(test_reject_object_build_id),
	    cmocka_unit_test(test_reject_object_path_nul),
	    cmocka_unit_test(test_reject_region_wrap),
	    cmocka_unit_test(test_reject_errors_count),
	    cmocka_unit_test(test_truncation_sweep),
	    cmocka_unit_test(test_bitflip_sweep),
	    cmocka_unit_test(test_allocation_bound),
	    cmocka_unit_test(test_read_file),
	    cmocka_unit_test(test_read_file_too_large),
	    cmocka_unit_test(test_read_file_pipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
