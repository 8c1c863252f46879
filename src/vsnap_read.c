/*
 * Snapshot reader and strict validator (docs/snapshot-format.md).
 *
 * The input is hostile until proven otherwise: a snapshot may be truncated,
 * corrupted or crafted.  Three rules keep the reader safe:
 *
 *   - No count is trusted alone.  Every fixed-size section must satisfy
 *     count * record size == payload bytes, and variable-size sections are
 *     walked record by record within their payload, before anything is
 *     allocated.  So every array the model holds is at most about twice the
 *     bytes of the section it comes from (the widest in-memory entries are
 *     vsnap_arena_t, 232 bytes per 184 on disk, and vsnap_stack_t, 16 bytes
 *     per stack of at least 16 bytes on disk), and the temporaries are a few
 *     words per arena or cache record.
 *   - Offsets are compared as "length <= end - offset" with offset <= end
 *     already known, never as "offset + length <= end", which could wrap.
 *     Address ranges from the file are checked the same way.
 *   - Nothing recurses.  The arena forest, whose depth the file controls, is
 *     walked with an explicit stack of at most one entry per arena.
 *
 * Integers are decoded byte by byte (little-endian), so the reader neither
 * depends on the host's byte order nor on the buffer's alignment.
 *
 * Checks are made in the order of the format's sections, so a file with
 * several faults is reported by its first one in file order, mostly: the
 * structure of every section (headers, record sizes, variable records) is
 * checked before the content of any, and stacks are read before segments
 * because segments name them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vsnap.h"

/*
 * vsnap_read_file() refuses files larger than this: the whole file is read
 * into memory and the model can take about twice as much again.  A snapshot
 * of 4 GiB holds some 60 million segments, far beyond any real process.
 */
#define VSNAP_FILE_MAX ((uint64_t)4 << 30)

#define FILE_HDR_SIZE 64
#define SEC_HDR_SIZE  24
#define STACK_HDR     8  /* id, depth; then depth pcs */
#define OBJECT_HDR    56 /* vsnap_object_rec_t; then the path */
#define BUILD_ID_MAX  20
#define NERRORS_MAX   (sizeof(((vsnap_t *)0)->errors) / sizeof(uint64_t))
#define TXOP_MAX      7

static const char *const sec_name[VSNAP_SEC_MAX + 1] = {
    "?", "ARENA", "SEG", "QCACHE", "STACK", "TXLOG", "OBJECT", "REGION", "ERRORS", "END"};

/* Record size of each section type; 0 for variable-size records (and END). */
static const uint32_t sec_recsize[VSNAP_SEC_MAX + 1] = {0,
                                                        sizeof(vsnap_arena_rec_t),
                                                        sizeof(vsnap_seg_rec_t),
                                                        sizeof(vsnap_qcache_rec_t),
                                                        0,
                                                        sizeof(vsnap_txrec_t),
                                                        0,
                                                        sizeof(vsnap_region_rec_t),
                                                        sizeof(uint64_t),
                                                        0};

typedef struct section {
	bool present;
	size_t hdr; /* offset of the section header */
	size_t off; /* offset of the payload */
	size_t bytes;
	uint64_t count;
} section_t;

/* One QCACHE record, for sorting caches by (arena, index). */
typedef struct qkey {
	size_t tpos; /* the arena's position in tree order */
	uint32_t index;
	size_t rec; /* record number in the file */
} qkey_t;

/* An arena id and the record number (file order) that holds it. */
typedef struct idrec {
	uint32_t id;
	size_t rec;
} idrec_t;

typedef struct reader {
	const uint8_t *buf;
	size_t len;
	char *err;
	size_t errlen;
	section_t sec[VSNAP_SEC_MAX + 1];
	size_t npcs;      /* return addresses over all stacks */
	size_t pathbytes; /* object paths, NULs included */
	size_t nstacks;
	size_t nobjects;
	vsnap_t *s;
	uint64_t *pcs; /* in the owned block: every stack's return addresses */
	char *paths;   /* in the owned block: every object's path */
	/* Temporaries, one block: per arena in file order unless noted. */
	void *tmp;
	idrec_t *ids;  /* sorted by id */
	size_t *src;   /* record number of the source, or SIZE_MAX */
	size_t *tpos;  /* position in tree order */
	size_t *first; /* children of record i: kids[first[i] .. first[i + 1]) */
	size_t *kids;  /* record numbers, in file order within each parent */
	size_t *stack; /* the walk's explicit stack */
	qkey_t *qkeys; /* per QCACHE record */
} reader_t;

/* ---- errors ---------------------------------------------------------------------------- */

static int fail(reader_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(reader_t *r, const char *fmt, ...)
{
	va_list ap;

	if (r->err != NULL && r->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* "section 2 (SEG) record 17 at offset 4242: " + the message. */
static int rec_fail(reader_t *r, int type, size_t rec, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int rec_fail(reader_t *r, int type, size_t rec, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->err == NULL || r->errlen == 0)
		return -1;
	n = snprintf(r->err, r->errlen, "section %d (%s) record %zu at offset %zu: ", type,
	             sec_name[type], rec, off);
	if (n >= 0 && (size_t)n < r->errlen) {
		va_start(ap, fmt);
		vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* "section 2 (SEG) at offset 4218: " + the message, for a whole section. */
static int sec_fail(reader_t *r, int type, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int sec_fail(reader_t *r, int type, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->err == NULL || r->errlen == 0)
		return -1;
	n = snprintf(r->err, r->errlen, "section %d (%s) at offset %zu: ", type, sec_name[type],
	             off);
	if (n >= 0 && (size_t)n < r->errlen) {
		va_start(ap, fmt);
		vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---- decoding -------------------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void get_arena(const uint8_t *p, vsnap_arena_rec_t *a)
{
	a->ar_id = le32(p);
	a->ar_source_id = le32(p + 4);
	a->ar_cflags = le32(p + 8);
	a->ar_nqcache = le32(p + 12);
	a->ar_quantum = le64(p + 16);
	a->ar_qcache_max = le64(p + 24);
	a->ar_addr = le64(p + 32);
	memcpy(a->ar_name, p + 40, VSNAP_NAMELEN);
	for (int i = 0; i < VSNAP_NKSTAT; i++)
		a->ar_kstat[i] = le64(p + 72 + 8 * i);
}

static void get_seg(const uint8_t *p, vsnap_seg_rec_t *g)
{
	g->sg_arena = le32(p);
	g->sg_type = p[4];
	g->sg_flags = p[5];
	g->sg_reserved = (uint16_t)(p[6] | p[7] << 8);
	g->sg_stack = le32(p + 8);
	g->sg_reserved2 = le32(p + 12);
	g->sg_start = le64(p + 16);
	g->sg_size = le64(p + 24);
	g->sg_extent = le64(p + 32);
	g->sg_thread = le64(p + 40);
	g->sg_time = le64(p + 48);
	g->sg_addr = le64(p + 56);
}

static void get_qcache(const uint8_t *p, vsnap_qcache_rec_t *q)
{
	q->qr_arena = le32(p);
	q->qr_index = le32(p + 4);
	memcpy(q->qr_name, p + 8, VSNAP_QNAMELEN);
	for (int i = 0; i < VSNAP_NQKSTAT; i++)
		q->qr_kstat[i] = le64(p + 56 + 8 * i);
}

static void get_tx(const uint8_t *p, vsnap_txrec_t *t)
{
	t->tx_seq = le64(p);
	t->tx_time = le64(p + 8);
	t->tx_addr = le64(p + 16);
	t->tx_size = le64(p + 24);
	t->tx_tid = le32(p + 32);
	t->tx_arena = le32(p + 36);
	t->tx_stack = le32(p + 40);
	t->tx_stack2 = le32(p + 44);
	t->tx_op = p[48];
	memcpy(t->tx_pad, p + 49, sizeof(t->tx_pad));
}

static void get_object(const uint8_t *p, vsnap_object_rec_t *o)
{
	o->ob_base = le64(p);
	o->ob_start = le64(p + 8);
	o->ob_end = le64(p + 16);
	o->ob_build_id_len = le32(p + 24);
	o->ob_path_len = le32(p + 28);
	memcpy(o->ob_build_id, p + 32, BUILD_ID_MAX);
	o->ob_reserved = le32(p + 52);
}

static void get_region(const uint8_t *p, vsnap_region_rec_t *g)
{
	g->rg_start = le64(p);
	g->rg_size = le64(p + 8);
	g->rg_kind = le32(p + 16);
	g->rg_reserved = le32(p + 20);
}

/* A non-empty range [start, +size) that does not wrap past the top of the space. */
static bool wraps(uint64_t start, uint64_t size)
{
	return size != 0 && size - 1 > UINT64_MAX - start;
}

/* ---- framing: file header, section headers, variable records ------------------------- */

static int check_file_header(reader_t *r)
{
	const uint8_t *p = r->buf;
	uint32_t v;

	if (r->len < FILE_HDR_SIZE)
		return fail(r,
		            "file header at offset 0: the input is %zu bytes, shorter than the "
		            "64-byte header",
		            r->len);
	if (memcmp(p, VSNAP_MAGIC, 8) != 0)
		return fail(r, "file header at offset 0: bad magic (not a libvmem snapshot)");
	if ((v = le32(p + 8)) != VSNAP_VERSION)
		return fail(
		    r, "file header at offset 8: version %u, this reader knows only version %d", v,
		    VSNAP_VERSION);
	if ((v = le32(p + 12)) != FILE_HDR_SIZE)
		return fail(r, "file header at offset 12: header size %u, expected %d", v,
		            FILE_HDR_SIZE);
	if ((v = le32(p + 20)) != 4 && v != 8)
		return fail(r, "file header at offset 20: pointer size %u, expected 4 or 8", v);
	return 0;
}

/* Checks one section header at off (24 bytes known to be there); fills r->sec[type]. */
static int check_section_header(reader_t *r, size_t off, int *last)
{
	const uint8_t *p = r->buf + off;
	uint32_t type = le32(p), recsize = le32(p + 4);
	uint64_t count = le64(p + 8), bytes = le64(p + 16);
	size_t left = r->len - off - SEC_HDR_SIZE;
	section_t *sec;

	if (type == 0 || type > VSNAP_SEC_MAX)
		return fail(r, "section header at offset %zu: unknown section type %u", off, type);
	sec = &r->sec[type];
	if (sec->present)
		return sec_fail(r, (int)type, off,
		                "the section appears twice (first at offset %zu)", sec->hdr);
	if ((int)type < *last)
		return sec_fail(r, (int)type, off, "out of order: after section %d (%s)", *last,
		                sec_name[*last]);
	if (recsize != sec_recsize[type])
		return sec_fail(r, (int)type, off, "record size %u, expected %u%s", recsize,
		                sec_recsize[type],
		                sec_recsize[type] == 0 ? " (variable-size records)" : "");
	if (bytes > left)
		return sec_fail(
		    r, (int)type, off,
		    "payload of %llu bytes runs past the end of the file (%zu bytes left)",
		    (unsigned long long)bytes, left);
	if (type == VSNAP_SEC_END && (count != 0 || bytes != 0))
		return sec_fail(r, (int)type, off,
		                "END has %llu records and %llu payload bytes, "
		                "expected none",
		                (unsigned long long)count, (unsigned long long)bytes);
	if (recsize != 0 && (bytes % recsize != 0 || bytes / recsize != count))
		return sec_fail(r, (int)type, off,
		                "%llu records of %u bytes do not make the %llu payload bytes",
		                (unsigned long long)count, recsize, (unsigned long long)bytes);
	sec->present = true;
	sec->hdr = off;
	sec->off = off + SEC_HDR_SIZE;
	sec->bytes = (size_t)bytes;
	sec->count = count;
	*last = (int)type;
	return 0;
}

static int check_sections(reader_t *r)
{
	uint32_t announced = le32(r->buf + 56), found = 0;
	size_t off = FILE_HDR_SIZE;
	int last = 0;

	for (;;) {
		if (off == r->len)
			return fail(r, "offset %zu: the file ends without an END section", off);
		if (r->len - off < SEC_HDR_SIZE)
			return fail(r, "section header at offset %zu: truncated (%zu of %d bytes)",
			            off, r->len - off, SEC_HDR_SIZE);
		if (check_section_header(r, off, &last) != 0)
			return -1;
		found++;
		off += SEC_HDR_SIZE + r->sec[last].bytes;
		if (last == VSNAP_SEC_END)
			break;
	}
	if (off != r->len)
		return sec_fail(r, VSNAP_SEC_END, r->sec[VSNAP_SEC_END].hdr,
		                "%zu bytes after END (offset %zu)", r->len - off, off);
	if (found != announced)
		return fail(r, "file header at offset 56: announces %u sections, the file has %u",
		            announced, found);
	return 0;
}

/* The variable-size records must fill the payload exactly, and number sh_count. */
static int check_count(reader_t *r, int type, size_t n)
{
	const section_t *sec = &r->sec[type];

	if (n != sec->count)
		return sec_fail(r, type, sec->hdr,
		                "the header counts %llu records, the payload holds %zu",
		                (unsigned long long)sec->count, n);
	return 0;
}

static int check_stack_records(reader_t *r)
{
	const section_t *sec = &r->sec[VSNAP_SEC_STACK];
	size_t off = sec->off, end = sec->off + sec->bytes, n = 0;
	uint32_t prev = 0;

	while (off < end) {
		const uint8_t *p = r->buf + off;
		uint32_t id, depth;

		if (end - off < STACK_HDR)
			return rec_fail(r, VSNAP_SEC_STACK, n, off,
			                "record header runs past the payload (%zu bytes left)",
			                end - off);
		if (n == sec->count)
			return rec_fail(r, VSNAP_SEC_STACK, n, off,
			                "more records than the header's count of %llu",
			                (unsigned long long)sec->count);
		id = le32(p);
		depth = le32(p + 4);
		if (depth < 1 || depth > VSNAP_MAXDEPTH)
			return rec_fail(r, VSNAP_SEC_STACK, n, off,
			                "stack %u has depth %u, outside 1-%d", id, depth,
			                VSNAP_MAXDEPTH);
		if ((end - off - STACK_HDR) / 8 < depth)
			return rec_fail(
			    r, VSNAP_SEC_STACK, n, off,
			    "stack %u of depth %u runs past the payload (%zu bytes left)", id,
			    depth, end - off);
		if (id == 0)
			return rec_fail(r, VSNAP_SEC_STACK, n, off, "stack id 0");
		if (n > 0 && id == prev)
			return rec_fail(r, VSNAP_SEC_STACK, n, off, "duplicate stack id %u", id);
		if (n > 0 && id < prev)
			return rec_fail(r, VSNAP_SEC_STACK, n, off,
			                "stack id %u after %u: ids are not ascending", id, prev);
		prev = id;
		r->npcs += depth;
		off += STACK_HDR + (size_t)depth * 8;
		n++;
	}
	r->nstacks = n;
	return check_count(r, VSNAP_SEC_STACK, n);
}

static int check_object_records(reader_t *r)
{
	const section_t *sec = &r->sec[VSNAP_SEC_OBJECT];
	size_t off = sec->off, end = sec->off + sec->bytes, n = 0;

	while (off < end) {
		const uint8_t *p = r->buf + off;
		uint32_t idlen, plen;
		size_t padded;

		if (end - off < OBJECT_HDR)
			return rec_fail(r, VSNAP_SEC_OBJECT, n, off,
			                "record header runs past the payload (%zu bytes left)",
			                end - off);
		if (n == sec->count)
			return rec_fail(r, VSNAP_SEC_OBJECT, n, off,
			                "more records than the header's count of %llu",
			                (unsigned long long)sec->count);
		idlen = le32(p + 24);
		plen = le32(p + 28);
		if (idlen > BUILD_ID_MAX)
			return rec_fail(r, VSNAP_SEC_OBJECT, n, off,
			                "build id of %u bytes, at most %d", idlen, BUILD_ID_MAX);
		if (plen < 1 || plen > VSNAP_MAXPATH)
			return rec_fail(r, VSNAP_SEC_OBJECT, n, off, "path length %u, outside 1-%d",
			                plen, VSNAP_MAXPATH);
		padded = ((size_t)plen + 7) & ~(size_t)7;
		if (end - off - OBJECT_HDR < padded)
			return rec_fail(r, VSNAP_SEC_OBJECT, n, off,
			                "path of %u bytes runs past the payload (%zu bytes left)",
			                plen, end - off - OBJECT_HDR);
		/* The model's paths are C strings: a NUL inside would silently cut one. */
		if (memchr(p + OBJECT_HDR, 0, plen) != NULL)
			return rec_fail(r, VSNAP_SEC_OBJECT, n, off,
			                "the path contains a NUL byte");
		r->pathbytes += (size_t)plen + 1;
		off += OBJECT_HDR + padded;
		n++;
	}
	r->nobjects = n;
	return check_count(r, VSNAP_SEC_OBJECT, n);
}

/* ---- memory ---------------------------------------------------------------------------- */

/* Carves aligned pieces out of one block: a sizing pass (base NULL), then the real one. */
typedef struct carver {
	char *base;
	size_t used;
} carver_t;

static void *carve(carver_t *c, size_t n, size_t size)
{
	void *p;

	c->used = (c->used + 15) & ~(size_t)15;
	p = c->base != NULL && n != 0 ? c->base + c->used : NULL;
	c->used += n * size;
	return p;
}

static void carve_model(carver_t *c, reader_t *r)
{
	vsnap_t *s = r->s;

	s->arenas = carve(c, s->narenas, sizeof(vsnap_arena_t));
	s->segs = carve(c, s->nsegs, sizeof(vsnap_seg_rec_t));
	s->qcaches = carve(c, s->nqcaches, sizeof(vsnap_qcache_rec_t));
	s->stacks = carve(c, s->nstacks, sizeof(vsnap_stack_t));
	s->log = carve(c, s->nlog, sizeof(vsnap_txrec_t));
	s->objects = carve(c, s->nobjects, sizeof(vsnap_object_t));
	s->regions = carve(c, s->nregions, sizeof(vsnap_region_rec_t));
	r->pcs = carve(c, r->npcs, sizeof(uint64_t));
	r->paths = carve(c, r->pathbytes, 1);
}

static void carve_tmp(carver_t *c, reader_t *r)
{
	size_t na = r->s->narenas;

	r->ids = carve(c, na, sizeof(idrec_t));
	r->src = carve(c, na, sizeof(size_t));
	r->tpos = carve(c, na, sizeof(size_t));
	r->first = carve(c, na + 1, sizeof(size_t));
	r->kids = carve(c, na, sizeof(size_t));
	r->stack = carve(c, na, sizeof(size_t));
	r->qkeys = carve(c, r->s->nqcaches, sizeof(qkey_t));
}

/*
 * Every count here was checked against its payload (fixed sections) or
 * found by walking the payload (variable ones), so each array is bounded
 * by the bytes of its section.
 */
static int allocate(reader_t *r)
{
	vsnap_t *s = r->s;
	carver_t c = {NULL, 0};
	void *owned;

	s->narenas = (size_t)r->sec[VSNAP_SEC_ARENA].count;
	s->nsegs = (size_t)r->sec[VSNAP_SEC_SEG].count;
	s->nqcaches = (size_t)r->sec[VSNAP_SEC_QCACHE].count;
	s->nstacks = r->nstacks;
	s->nlog = (size_t)r->sec[VSNAP_SEC_TXLOG].count;
	s->nobjects = r->nobjects;
	s->nregions = (size_t)r->sec[VSNAP_SEC_REGION].count;
	carve_model(&c, r);
	owned = malloc(c.used != 0 ? c.used : 1);
	c.used = 0;
	carve_tmp(&c, r);
	r->tmp = malloc(c.used != 0 ? c.used : 1);
	if (owned == NULL || r->tmp == NULL) {
		free(owned);
		return fail(r, "out of memory reading a snapshot of %zu bytes", r->len);
	}
	s->owned = owned;
	c = (carver_t){owned, 0};
	carve_model(&c, r);
	c = (carver_t){r->tmp, 0};
	carve_tmp(&c, r);
	return 0;
}

/* ---- arenas ---------------------------------------------------------------------------- */

static size_t arena_off(const reader_t *r, size_t i)
{
	return r->sec[VSNAP_SEC_ARENA].off + i * sizeof(vsnap_arena_rec_t);
}

static int by_id(const void *a, const void *b)
{
	const idrec_t *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->rec < y->rec ? -1 : x->rec > y->rec;
}

/* Record number of the arena with this id, or SIZE_MAX. */
static size_t find_arena(const reader_t *r, uint32_t id)
{
	size_t lo = 0, hi = r->s->narenas;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->ids[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->s->narenas && r->ids[lo].id == id ? r->ids[lo].rec : SIZE_MAX;
}

/* Ids and names, then the sorted id index, which also finds duplicates. */
static int check_arena_ids(reader_t *r)
{
	size_t n = r->s->narenas;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = r->buf + arena_off(r, i);

		r->ids[i] = (idrec_t){le32(p), i};
		if (r->ids[i].id == 0)
			return rec_fail(r, VSNAP_SEC_ARENA, i, arena_off(r, i), "arena id 0");
		if (memchr(p + 40, 0, VSNAP_NAMELEN) == NULL)
			return rec_fail(r, VSNAP_SEC_ARENA, i, arena_off(r, i),
			                "arena %u: the name has no NUL within %d bytes",
			                r->ids[i].id, VSNAP_NAMELEN);
	}
	if (n > 1)
		qsort(r->ids, n, sizeof(idrec_t), by_id);
	for (size_t k = 1; k < n; k++) {
		if (r->ids[k].id == r->ids[k - 1].id)
			return rec_fail(r, VSNAP_SEC_ARENA, r->ids[k].rec,
			                arena_off(r, r->ids[k].rec),
			                "duplicate arena id %u (also record %zu)", r->ids[k].id,
			                r->ids[k - 1].rec);
	}
	return 0;
}

static int check_arena_sources(reader_t *r)
{
	for (size_t i = 0; i < r->s->narenas; i++) {
		uint32_t sid = le32(r->buf + arena_off(r, i) + 4);

		r->src[i] = SIZE_MAX;
		if (sid == 0)
			continue;
		r->src[i] = find_arena(r, sid);
		if (r->src[i] == SIZE_MAX)
			return rec_fail(r, VSNAP_SEC_ARENA, i, arena_off(r, i),
			                "arena %u: source id %u names no arena",
			                le32(r->buf + arena_off(r, i)), sid);
	}
	return 0;
}

/* Children of every arena, in file order: a counting sort by source. */
static void link_children(reader_t *r)
{
	size_t n = r->s->narenas;

	memset(r->first, 0, (n + 1) * sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		if (r->src[i] != SIZE_MAX)
			r->first[r->src[i] + 1]++;
	}
	for (size_t i = 0; i < n; i++)
		r->first[i + 1] += r->first[i];
	/* r->stack doubles as the fill cursor per parent; the walk reuses it after. */
	memcpy(r->stack, r->first, n * sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		if (r->src[i] != SIZE_MAX)
			r->kids[r->stack[r->src[i]]++] = i;
	}
}

/*
 * Preorder over the forest with an explicit stack: each root in file order,
 * then its importers.  Children are pushed in reverse so they pop in file
 * order.  Every arena is pushed at most once (it has one source), so the
 * stack never holds more than narenas entries.  Returns how many arenas
 * were placed; the others hang from a cycle.
 */
static size_t walk_tree(reader_t *r)
{
	vsnap_t *s = r->s;
	size_t placed = 0, sp = 0;

	for (size_t i = 0; i < s->narenas; i++)
		r->tpos[i] = SIZE_MAX;
	for (size_t root = 0; root < s->narenas; root++) {
		if (r->src[root] != SIZE_MAX)
			continue;
		r->stack[sp++] = root;
		while (sp > 0) {
			size_t i = r->stack[--sp];
			vsnap_arena_t *a = &s->arenas[placed];

			r->tpos[i] = placed++;
			memset(a, 0, sizeof(*a));
			get_arena(r->buf + arena_off(r, i), &a->a);
			a->depth =
			    r->src[i] == SIZE_MAX ? 0 : s->arenas[r->tpos[r->src[i]]].depth + 1;
			for (size_t k = r->first[i + 1]; k > r->first[i]; k--)
				r->stack[sp++] = r->kids[k - 1];
		}
	}
	return placed;
}

static int check_arenas(reader_t *r)
{
	size_t n = r->s->narenas, i;

	if (n == 0)
		return 0;
	if (check_arena_ids(r) != 0 || check_arena_sources(r) != 0)
		return -1;
	link_children(r);
	if (walk_tree(r) == n)
		return 0;
	/* Some arena never reaches a root.  Following sources n times lands on the cycle. */
	for (i = 0; r->tpos[i] != SIZE_MAX; i++)
		;
	for (size_t k = 0; k < n; k++)
		i = r->src[i];
	return rec_fail(r, VSNAP_SEC_ARENA, i, arena_off(r, i),
	                "arena %u: source id %u forms a cycle", le32(r->buf + arena_off(r, i)),
	                le32(r->buf + arena_off(r, i) + 4));
}

/* The model's arena for record number i. */
static vsnap_arena_t *arena_of(reader_t *r, size_t i)
{
	return &r->s->arenas[r->tpos[i]];
}

/* ---- stacks ---------------------------------------------------------------------------- */

static void read_stacks(reader_t *r)
{
	vsnap_t *s = r->s;
	uint64_t *pcs = r->pcs;
	size_t off = r->sec[VSNAP_SEC_STACK].off;

	for (size_t i = 0; i < s->nstacks; i++) {
		const uint8_t *p = r->buf + off;
		vsnap_stack_t *st = &s->stacks[i];

		st->id = le32(p);
		st->depth = le32(p + 4);
		st->pc = pcs;
		for (uint32_t d = 0; d < st->depth; d++)
			*pcs++ = le64(p + STACK_HDR + 8 * d);
		off += STACK_HDR + (size_t)st->depth * 8;
	}
}

const vsnap_stack_t *vsnap_stack(const vsnap_t *s, uint32_t id)
{
	size_t lo = 0, hi;

	if (s == NULL || id == 0)
		return NULL;
	hi = s->nstacks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->stacks[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nstacks && s->stacks[lo].id == id ? &s->stacks[lo] : NULL;
}

const vsnap_arena_t *vsnap_arena(const vsnap_t *s, uint32_t id)
{
	if (s == NULL || id == 0)
		return NULL;
	/* Ids are dense in creation order, which is often the tree order too. */
	if (id <= s->narenas && s->arenas[id - 1].a.ar_id == id)
		return &s->arenas[id - 1];
	for (size_t i = 0; i < s->narenas; i++) {
		if (s->arenas[i].a.ar_id == id)
			return &s->arenas[i];
	}
	return NULL;
}

/* ---- segments -------------------------------------------------------------------------- */

/* Where the walk of one arena's segments stands. */
typedef struct segwalk {
	size_t arena;      /* record number of the arena being walked, SIZE_MAX: none yet */
	uint64_t prev;     /* start of the previous record of this arena */
	bool span;         /* a SPAN is open: */
	uint64_t sp_start; /*   its range */
	uint64_t sp_ext;
	uint64_t sp_pos;   /*   bytes of it tiled so far */
	size_t sp_rec;     /*   its record number */
	bool slab;         /* the last ALLOC was a slab: */
	uint64_t sl_start; /*   its range */
	uint64_t sl_ext;
	uint64_t sl_pos; /*   end of the last CACHED object, from the slab's start */
} segwalk_t;

#define RANGE   "[0x%llx, +0x%llx)"
#define R(a, b) (unsigned long long)(a), (unsigned long long)(b)

static size_t seg_off(const reader_t *r, size_t i)
{
	return r->sec[VSNAP_SEC_SEG].off + i * sizeof(vsnap_seg_rec_t);
}

/* The open span, if any, must be tiled to its end. */
static int close_span(reader_t *r, segwalk_t *w)
{
	if (w->span && w->sp_pos != w->sp_ext)
		return rec_fail(r, VSNAP_SEC_SEG, w->sp_rec, seg_off(r, w->sp_rec),
		                "span " RANGE
		                " of arena %u is not tiled: its segments stop at +0x%llx",
		                R(w->sp_start, w->sp_ext), arena_of(r, w->arena)->a.ar_id,
		                (unsigned long long)w->sp_pos);
	w->span = false;
	return 0;
}

static int seg_span(reader_t *r, segwalk_t *w, const vsnap_seg_rec_t *g, size_t i)
{
	if (wraps(g->sg_start, g->sg_extent))
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "span " RANGE " wraps around the address space",
		                R(g->sg_start, g->sg_extent));
	if (w->span && g->sg_start - w->sp_start < w->sp_ext)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "span " RANGE " overlaps the previous span " RANGE,
		                R(g->sg_start, g->sg_extent), R(w->sp_start, w->sp_ext));
	if (close_span(r, w) != 0)
		return -1;
	w->span = true;
	w->sp_start = g->sg_start;
	w->sp_ext = g->sg_extent;
	w->sp_pos = 0;
	w->sp_rec = i;
	w->slab = false;
	return 0;
}

/* ALLOC or FREE: the next tile of the open span. */
static int seg_tile(reader_t *r, segwalk_t *w, const vsnap_seg_rec_t *g, size_t i)
{
	uint64_t d;

	if (!w->span)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "segment " RANGE " is outside any span (no SPAN record before it)",
		                R(g->sg_start, g->sg_extent));
	/* Address order (checked by the caller) keeps sg_start >= sp_start. */
	d = g->sg_start - w->sp_start;
	if (d < w->sp_pos)
		return rec_fail(
		    r, VSNAP_SEC_SEG, i, seg_off(r, i),
		    "segment " RANGE " overlaps the previous segment, which ends at 0x%llx",
		    R(g->sg_start, g->sg_extent), (unsigned long long)(w->sp_start + w->sp_pos));
	if (d >= w->sp_ext || g->sg_extent > w->sp_ext - d)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "segment " RANGE " runs past its span " RANGE,
		                R(g->sg_start, g->sg_extent), R(w->sp_start, w->sp_ext));
	if (d > w->sp_pos)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "segment " RANGE " leaves a gap in its span after 0x%llx",
		                R(g->sg_start, g->sg_extent),
		                (unsigned long long)(w->sp_start + w->sp_pos));
	w->sp_pos = d + g->sg_extent;
	w->slab = g->sg_type == VSNAP_ALLOC && (g->sg_flags & VSNAP_F_SLAB);
	w->sl_start = g->sg_start;
	w->sl_ext = g->sg_extent;
	w->sl_pos = 0;
	return 0;
}

static int seg_cached(reader_t *r, segwalk_t *w, const vsnap_seg_rec_t *g, size_t i)
{
	uint64_t d;

	if (!w->slab)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "CACHED object " RANGE " is outside its slab (no slab ALLOC record "
		                "before it)",
		                R(g->sg_start, g->sg_extent));
	d = g->sg_start - w->sl_start;
	if (d < w->sl_pos)
		return rec_fail(
		    r, VSNAP_SEC_SEG, i, seg_off(r, i),
		    "CACHED object " RANGE " overlaps the previous one, which ends at 0x%llx",
		    R(g->sg_start, g->sg_extent), (unsigned long long)(w->sl_start + w->sl_pos));
	if (d >= w->sl_ext || g->sg_extent > w->sl_ext - d)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "CACHED object " RANGE " is outside its slab " RANGE,
		                R(g->sg_start, g->sg_extent), R(w->sl_start, w->sl_ext));
	w->sl_pos = d + g->sg_extent;
	return 0;
}

/* Arena, type, grouping, order, sizes and stack of record i, then its place. */
static int check_seg(reader_t *r, segwalk_t *w, const vsnap_seg_rec_t *g, size_t i)
{
	size_t a = find_arena(r, g->sg_arena);
	int t = g->sg_type;

	if (a == SIZE_MAX)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i), "arena id %u names no arena",
		                g->sg_arena);
	if (t != VSNAP_ALLOC && t != VSNAP_FREE && t != VSNAP_SPAN && t != VSNAP_CACHED)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i), "unknown segment type 0x%x", t);
	if (w->arena != SIZE_MAX && a < w->arena)
		return rec_fail(
		    r, VSNAP_SEC_SEG, i, seg_off(r, i),
		    "a segment of arena %u after those of arena %u: not grouped in ARENA "
		    "order",
		    g->sg_arena, arena_of(r, w->arena)->a.ar_id);
	if (a != w->arena) {
		if (w->arena != SIZE_MAX && close_span(r, w) != 0)
			return -1;
		*w = (segwalk_t){.arena = a};
		arena_of(r, a)->seg_first = i;
	} else if (g->sg_start < w->prev) {
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "segment " RANGE " is out of address order (after one at 0x%llx)",
		                R(g->sg_start, g->sg_extent), (unsigned long long)w->prev);
	}
	if (g->sg_extent == 0)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i), "empty segment at 0x%llx",
		                (unsigned long long)g->sg_start);
	if (g->sg_size > g->sg_extent)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "segment " RANGE " has size 0x%llx, larger than its extent",
		                R(g->sg_start, g->sg_extent), (unsigned long long)g->sg_size);
	if (g->sg_stack != 0 && vsnap_stack(r->s, g->sg_stack) == NULL)
		return rec_fail(r, VSNAP_SEC_SEG, i, seg_off(r, i),
		                "segment " RANGE " has stack id %u, which names no stack",
		                R(g->sg_start, g->sg_extent), g->sg_stack);
	w->prev = g->sg_start;
	arena_of(r, a)->seg_count++;
	if (t == VSNAP_SPAN)
		return seg_span(r, w, g, i);
	if (t == VSNAP_CACHED)
		return seg_cached(r, w, g, i);
	return seg_tile(r, w, g, i);
}

static int read_segs(reader_t *r)
{
	segwalk_t w = {.arena = SIZE_MAX};

	for (size_t i = 0; i < r->s->nsegs; i++) {
		vsnap_seg_rec_t *g = &r->s->segs[i];

		get_seg(r->buf + seg_off(r, i), g);
		if (check_seg(r, &w, g, i) != 0)
			return -1;
	}
	return w.arena != SIZE_MAX ? close_span(r, &w) : 0;
}

/* ---- quantum caches -------------------------------------------------------------------- */

static size_t qc_off(const reader_t *r, size_t i)
{
	return r->sec[VSNAP_SEC_QCACHE].off + i * sizeof(vsnap_qcache_rec_t);
}

static int by_arena_index(const void *a, const void *b)
{
	const qkey_t *x = a, *y = b;

	if (x->tpos != y->tpos)
		return x->tpos < y->tpos ? -1 : 1;
	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->rec < y->rec ? -1 : x->rec > y->rec;
}

/*
 * The format does not require caches grouped by arena, but the model
 * gives each arena a range: sort them by (arena in tree order, index),
 * which also puts duplicates next to each other.
 */
static int read_qcaches(reader_t *r)
{
	vsnap_t *s = r->s;
	size_t n = s->nqcaches;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = r->buf + qc_off(r, i);
		uint32_t id = le32(p), index = le32(p + 4);
		size_t a = find_arena(r, id);

		if (a == SIZE_MAX)
			return rec_fail(r, VSNAP_SEC_QCACHE, i, qc_off(r, i),
			                "cache %u: arena id %u names no arena", index, id);
		if (index >= arena_of(r, a)->a.ar_nqcache)
			return rec_fail(r, VSNAP_SEC_QCACHE, i, qc_off(r, i),
			                "cache index %u, but arena %u has %u caches", index, id,
			                arena_of(r, a)->a.ar_nqcache);
		/* Printed with %s by every consumer: it must end inside the record. */
		if (memchr(p + 8, 0, VSNAP_QNAMELEN) == NULL)
			return rec_fail(r, VSNAP_SEC_QCACHE, i, qc_off(r, i),
			                "cache %u of arena %u: the name has no NUL within %d bytes",
			                index, id, VSNAP_QNAMELEN);
		r->qkeys[i] = (qkey_t){r->tpos[a], index, i};
	}
	if (n > 1)
		qsort(r->qkeys, n, sizeof(qkey_t), by_arena_index);
	for (size_t k = 0; k < n; k++) {
		const qkey_t *q = &r->qkeys[k];
		vsnap_arena_t *a = &s->arenas[q->tpos];

		if (k > 0 && q->tpos == q[-1].tpos && q->index == q[-1].index)
			return rec_fail(r, VSNAP_SEC_QCACHE, q->rec, qc_off(r, q->rec),
			                "duplicate cache (arena %u, index %u), also record %zu",
			                a->a.ar_id, q->index, q[-1].rec);
		if (a->qc_count++ == 0)
			a->qc_first = k;
		get_qcache(r->buf + qc_off(r, q->rec), &s->qcaches[k]);
	}
	return 0;
}

/* ---- log, objects, regions, errors ----------------------------------------------------- */

static int read_log(reader_t *r)
{
	const section_t *sec = &r->sec[VSNAP_SEC_TXLOG];

	for (size_t i = 0; i < r->s->nlog; i++) {
		size_t off = sec->off + i * sizeof(vsnap_txrec_t);
		vsnap_txrec_t *t = &r->s->log[i];

		get_tx(r->buf + off, t);
		if (t->tx_op < 1 || t->tx_op > TXOP_MAX)
			return rec_fail(r, VSNAP_SEC_TXLOG, i, off, "unknown operation %u",
			                t->tx_op);
		if (i > 0 && t->tx_seq <= t[-1].tx_seq)
			return rec_fail(r, VSNAP_SEC_TXLOG, i, off,
			                "sequence number %llu after %llu: not increasing",
			                (unsigned long long)t->tx_seq,
			                (unsigned long long)t[-1].tx_seq);
	}
	return 0;
}

/* Already checked by check_object_records(): only copies. */
static void read_objects(reader_t *r)
{
	vsnap_t *s = r->s;
	size_t off = r->sec[VSNAP_SEC_OBJECT].off;
	char *path = r->paths;

	for (size_t i = 0; i < s->nobjects; i++) {
		const uint8_t *p = r->buf + off;
		vsnap_object_t *o = &s->objects[i];

		get_object(p, &o->o);
		memcpy(path, p + OBJECT_HDR, o->o.ob_path_len);
		path[o->o.ob_path_len] = '\0';
		o->path = path;
		path += (size_t)o->o.ob_path_len + 1;
		off += OBJECT_HDR + (((size_t)o->o.ob_path_len + 7) & ~(size_t)7);
	}
}

static int read_regions(reader_t *r)
{
	const section_t *sec = &r->sec[VSNAP_SEC_REGION];

	for (size_t i = 0; i < r->s->nregions; i++) {
		size_t off = sec->off + i * sizeof(vsnap_region_rec_t);
		vsnap_region_rec_t *g = &r->s->regions[i];

		get_region(r->buf + off, g);
		if (wraps(g->rg_start, g->rg_size))
			return rec_fail(r, VSNAP_SEC_REGION, i, off,
			                "region " RANGE " wraps around the address space",
			                R(g->rg_start, g->rg_size));
	}
	return 0;
}

/* The model keeps a fixed array of counters: more kinds are refused, not cut. */
static int check_errors_count(reader_t *r)
{
	const section_t *sec = &r->sec[VSNAP_SEC_ERRORS];

	if (sec->count > NERRORS_MAX)
		return sec_fail(r, VSNAP_SEC_ERRORS, sec->hdr,
		                "%llu error kinds, this reader knows at most %zu",
		                (unsigned long long)sec->count, NERRORS_MAX);
	return 0;
}

static void read_errors(reader_t *r)
{
	const section_t *sec = &r->sec[VSNAP_SEC_ERRORS];

	r->s->nerrors = (uint32_t)sec->count;
	for (size_t i = 0; i < sec->count; i++)
		r->s->errors[i] = le64(r->buf + sec->off + 8 * i);
}

/* ---- entry points ---------------------------------------------------------------------- */

static int read_all(reader_t *r)
{
	vsnap_t *s = r->s;

	if (check_file_header(r) != 0 || check_sections(r) != 0)
		return -1;
	if (check_stack_records(r) != 0 || check_object_records(r) != 0)
		return -1;
	if (check_errors_count(r) != 0)
		return -1;
	s->version = le32(r->buf + 8);
	s->flags = le32(r->buf + 16);
	s->ptrsize = le32(r->buf + 20);
	s->pid = le64(r->buf + 24);
	s->time_ns = le64(r->buf + 32);
	if (allocate(r) != 0 || check_arenas(r) != 0)
		return -1;
	read_stacks(r);
	if (read_segs(r) != 0 || read_qcaches(r) != 0 || read_log(r) != 0)
		return -1;
	read_objects(r);
	if (read_regions(r) != 0)
		return -1;
	read_errors(r);
	return 0;
}

int vsnap_read_buf(const void *buf, size_t len, vsnap_t **out, char *err, size_t errlen)
{
	reader_t r = {.buf = buf, .len = len, .err = err, .errlen = errlen};
	int rc;

	if (out == NULL)
		return fail(&r, "vsnap_read_buf: no place for the result");
	*out = NULL;
	if (buf == NULL && len != 0)
		return fail(&r, "vsnap_read_buf: no buffer");
	/* The model and the temporaries take at most about three times the input. */
	if (len > SIZE_MAX / 4)
		return fail(&r, "the input is %zu bytes, too large to read", len);
	r.s = calloc(1, sizeof(vsnap_t));
	if (r.s == NULL)
		return fail(&r, "out of memory reading a snapshot of %zu bytes", len);
	rc = read_all(&r);
	free(r.tmp);
	if (rc != 0) {
		vsnap_free(r.s);
		return -1;
	}
	*out = r.s;
	return 0;
}

void vsnap_free(vsnap_t *s)
{
	if (s == NULL)
		return;
	free(s->owned);
	free(s);
}

/* The whole file, in a buffer of its own; refused beyond VSNAP_FILE_MAX. */
static int slurp(int fd, const struct stat *st, uint8_t **bufp, size_t *lenp, char *why,
                 size_t whylen)
{
	size_t cap = S_ISREG(st->st_mode) ? (size_t)st->st_size + 1 : 65536, len = 0;
	uint8_t *buf = malloc(cap);

	if (buf == NULL) {
		snprintf(why, whylen, "out of memory for %zu bytes", cap);
		return -1;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			uint8_t *nb;

			cap = cap > VSNAP_FILE_MAX / 2 ? (size_t)VSNAP_FILE_MAX + 1 : 2 * cap;
			if (len > VSNAP_FILE_MAX) {
				snprintf(why, whylen, "larger than the reader's limit of 4 GiB");
				free(buf);
				return -1;
			}
			if ((nb = realloc(buf, cap)) == NULL) {
				snprintf(why, whylen, "out of memory for %zu bytes", cap);
				free(buf);
				return -1;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, whylen, "read error at offset %zu: %s", len, strerror(errno));
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > VSNAP_FILE_MAX) {
		snprintf(why, whylen, "larger than the reader's limit of 4 GiB");
		free(buf);
		return -1;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

int vsnap_read_file(const char *path, vsnap_t **out, char *err, size_t errlen)
{
	char why[512];
	struct stat st;
	uint8_t *buf = NULL;
	size_t len = 0;
	int fd, rc = -1;

	if (out != NULL)
		*out = NULL;
	if (path == NULL || out == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			         "vsnap_read_file: no path or no place for the result");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, sizeof(why), "cannot open: %s", strerror(errno));
	} else if (fstat(fd, &st) != 0) {
		snprintf(why, sizeof(why), "cannot stat: %s", strerror(errno));
	} else if (S_ISDIR(st.st_mode)) {
		snprintf(why, sizeof(why), "is a directory, not a snapshot file");
	} else if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > VSNAP_FILE_MAX) {
		snprintf(why, sizeof(why), "%lld bytes, larger than the reader's limit of 4 GiB",
		         (long long)st.st_size);
	} else if (slurp(fd, &st, &buf, &len, why, sizeof(why)) != 0) {
		/* why says it */
	} else if (len == 0) {
		snprintf(why, sizeof(why), "empty file, not a snapshot");
	} else {
		rc = vsnap_read_buf(buf, len, out, why, sizeof(why));
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	if (rc != 0 && err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s", path, why);
	return rc;
}
