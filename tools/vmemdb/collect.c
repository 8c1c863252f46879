/*
 * The collector: libvmem's state in another process (live or core) turned
 * into the model every command reads (a vsnap_t, as a snapshot gives it).
 *
 * Nothing here knows how a libvmem build lays out its structures: the root
 * (include/vmem_root.h), found as the ELF symbol vmem_debug_root of one of
 * the loaded objects, gives the addresses of the globals and the size and
 * offset of every field.  The root's magic, version and pointer size are
 * checked, then every offset against its structure's size, so that a root
 * from an incompatible build is refused with a reason instead of decoded.
 *
 * The target's memory is not trusted either: a core may have been dumped
 * while an arena was being changed, and a live process may be corrupt.  Every
 * list walk is bounded (Brent's cycle check, an address-order check for
 * segments, a cap from the metadata actually mapped) and a broken list is
 * reported as a note with what was read before the break.
 *
 * Quantum caches.  An object of a slab whose free-map bit is clear is out of
 * its slab: held by a caller, or free in a magazine (libvmem, not -debug,
 * keeps freed objects in per-thread magazines and in each cache's depot).
 * Where the root describes magazines, they are all read first: the depot's
 * lists and, through the registry of per-thread tables, each thread's loaded
 * and previous magazine of the cache.  Their objects become no record of the
 * model (as in a snapshot, whose writer drains the magazines first) but the
 * target's list of magazine objects; only the objects callers hold become
 * CACHED records.  The same walk gives the cache counters that
 * vmem_qcache_kstat() sums, so ::kstat prints what the process itself would.
 */
#include "vmemdb.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vmem_root.h>

#define MAX_ARENAS  (1u << 20)
#define MAX_REGIONS (1u << 22)
#define MAX_STACKS  (1u << 24)
#define MAX_LOG     (1u << 26)
#define MAX_NQCACHE 64         /* roots without ra_nqcache_max: a bound beside the arena's size */
#define MAX_THREADS (1u << 22) /* tables on the magazine registry */
#define MAX_ENTRIES (1u << 24) /* entries of one thread's table */
#define MAX_ROUNDS  (1u << 16) /* a magazine's capacity */
#define MAX_MAGS    (1u << 24) /* magazines on one depot list */
#define MAX_STRUCT  (1u << 20) /* no libvmem structure is near this size */
#define SEG_WALKER  0x40
#define SEGF_ANCHOR 0x08
#define REGION_SEGS 1

typedef struct growbuf {
	void *p;
	size_t n, cap, elsize;
} growbuf_t;

typedef struct rctx {
	vdb_target_t *t;
	vmem_root_t r;
	vmem_root_debug_t d;
	uint32_t ps; /* the target's pointer size */
	char *err;
	size_t errlen;
	uint64_t seg_limit;
	bool mags; /* the root describes magazines (vr_size >= VMEM_ROOT_SIZE_MAGS) */
	/* one structure each, sized from the root: arena, segment, cache, slab, magazine,
	 * thread table, thread entry */
	uint8_t *abuf, *sbuf, *qbuf, *slbuf, *mbuf, *tbuf, *ebuf;
	growbuf_t arenas, segs, qcs, cached, stacks, pcs, log, regions;
	growbuf_t tables;             /* ttable_t: every thread's table of magazine entries */
	growbuf_t magobj;             /* vdb_magobj_t: objects in magazines */
	bool said_entries, said_mags; /* notes given once, not per cache */
	uint64_t *arena_addr;         /* parallel to arenas: the vmem_t's address */
	uint64_t *arena_src;          /* and its source's address */
} rctx_t;

/* A thread's table of magazine entries, as the registry gives it. */
typedef struct ttable {
	uint64_t addr;     /* the vmem_tcache_t */
	uint64_t entry;    /* its table */
	uint32_t nentries; /* entries in the table */
} ttable_t;

/* ---- small helpers --------------------------------------------------------------- */

static int fail(rctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(rctx_t *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static void *grow(growbuf_t *g)
{
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		void *p = realloc(g->p, cap * g->elsize);

		if (p == NULL)
			return NULL;
		g->p = p;
		g->cap = cap;
	}
	return memset((char *)g->p + g->n++ * g->elsize, 0, g->elsize);
}

static uint64_t get_uint(const uint8_t *b, uint32_t off, unsigned width)
{
	uint64_t v = 0;
	uint32_t v32;

	if (width == 8) {
		memcpy(&v, b + off, 8);
	} else if (width == 4) {
		memcpy(&v32, b + off, 4);
		v = v32;
	} else {
		v = b[off];
	}
	return v;
}

static uint64_t get_ptr(const rctx_t *c, const uint8_t *b, uint32_t off)
{
	return get_uint(b, off, c->ps);
}

/* A pointer-sized integer at addr in the target. */
static bool rd_ptr(rctx_t *c, uint64_t addr, uint64_t *v)
{
	uint8_t b[8];

	if (!vdb_read(c->t, addr, b, c->ps))
		return false;
	*v = get_uint(b, 0, c->ps);
	return true;
}

static bool rd_u32(rctx_t *c, uint64_t addr, uint32_t *v)
{
	return vdb_read(c->t, addr, v, 4);
}

static bool rd_u64(rctx_t *c, uint64_t addr, uint64_t *v)
{
	return vdb_read(c->t, addr, v, 8);
}

/* Brent's cycle detection over the addresses of a list's nodes. */
typedef struct brent {
	uint64_t saved, power, steps;
} brent_t;

static bool brent_cycle(brent_t *b, uint64_t addr)
{
	if (b->power == 0)
		b->power = 1;
	if (addr == b->saved)
		return true;
	if (++b->steps == b->power) {
		b->saved = addr;
		b->power *= 2;
		b->steps = 0;
	}
	return false;
}

/* ---- finding and checking the root ---------------------------------------------------- */

static int find_root(rctx_t *c, vdb_root_info_t *ri)
{
	vdb_target_t *t = c->t;
	const char *with_vmem = NULL;
	size_t found = 0;

	for (size_t i = 0; i < t->nobjs; i++) {
		uint64_t v;

		if (vdb_elf_symbol(t->objs[i].path, "vmem_debug_root", &v) == 1) {
			if (found++ == 0) {
				ri->addr = v + t->objs[i].base;
				ri->object = t->objs[i].path;
			}
		} else if (with_vmem == NULL &&
		           vdb_elf_symbol(t->objs[i].path, "vmem_create", &v) == 1) {
			with_vmem = t->objs[i].path;
		}
	}
	if (found > 1)
		vdb_note(t,
		         "%zu loaded objects define vmem_debug_root (several copies of libvmem); "
		         "reading the one in %s",
		         found, ri->object);
	if (found > 0)
		return 0;
	if (with_vmem != NULL)
		return fail(
		    c,
		    "%s contains libvmem (vmem_create) but not its root vmem_debug_root: built "
		    "from a libvmem without the root, or statically linked without src/root.c",
		    with_vmem);
	return fail(c, "no libvmem in this process: no loaded object defines vmem_debug_root");
}

/* Does [off, off + width) fit in a structure of `size` bytes? */
static bool fits(uint32_t off, uint64_t width, uint32_t size)
{
	return (uint64_t)off + width <= size;
}

/* The groups a root of VMEM_ROOT_SIZE_MAGS bytes or more adds: NULL, or what is wrong. */
static const char *check_mag_layout(const rctx_t *c)
{
	const vmem_root_t *r = &c->r;
	const vmem_root_qcstat_t *qs = &r->vr_qcstat;
	const vmem_root_mag_t *m = &r->vr_mag;
	const vmem_root_tcache_t *tc = &r->vr_tcache;
	const vmem_root_region_t *rr = &r->vr_region;
	uint32_t ps = c->ps, qsz = r->vr_qcache.rq_size;
	const uint32_t ctr[] = {
	    qs->qs_nfull,         qs->qs_nempty,           qs->qs_depot_alloc,
	    qs->qs_depot_free,    qs->qs_depot_contention, qs->qs_slab_create,
	    qs->qs_slab_destroy,  qs->qs_direct,           qs->qs_reaps,
	    qs->qs_dead_alloc,    qs->qs_dead_free,        qs->qs_dead_alloc_miss,
	    qs->qs_dead_free_miss};

	if (r->vr_arena.ra_nqcache_max == 0 ||
	    !fits(r->vr_arena.ra_qcache, (uint64_t)r->vr_arena.ra_nqcache_max * ps,
	          r->vr_arena.ra_size))
		return "the arena's cache array lies outside the arena";
	if (rr->rr_hdrsize == 0 || rr->rr_hdrsize > MAX_STRUCT ||
	    !fits(rr->rr_next, ps, rr->rr_hdrsize) || !fits(rr->rr_size, ps, rr->rr_hdrsize) ||
	    !fits(rr->rr_kind, 4, rr->rr_hdrsize))
		return "a region header field lies outside the header";
	if (qsz == 0 || !fits(qs->qs_id, 4, qsz) || !fits(qs->qs_gen, 4, qsz) ||
	    !fits(qs->qs_full, ps, qsz) || !fits(qs->qs_empty, ps, qsz))
		return "a cache's depot lies outside the cache";
	for (size_t i = 0; i < sizeof(ctr) / sizeof(ctr[0]); i++)
		if (!fits(ctr[i], 8, qsz))
			return "a cache counter lies outside the cache";
	if (m->rm_size == 0 || m->rm_size > MAX_STRUCT || m->rm_nrounds == 0 ||
	    m->rm_nrounds > MAX_ROUNDS || !fits(m->rm_next, ps, m->rm_size) ||
	    !fits(m->rm_count, 4, m->rm_size) ||
	    !fits(m->rm_round, (uint64_t)m->rm_nrounds * ps, m->rm_size))
		return "a magazine field lies outside the magazine";
	if (tc->rt_size == 0 || tc->rt_size > MAX_STRUCT || !fits(tc->rt_next, ps, tc->rt_size) ||
	    !fits(tc->rt_nentries, 4, tc->rt_size) || !fits(tc->rt_entry, ps, tc->rt_size))
		return "a thread table field lies outside the table";
	if (tc->te_size == 0 || tc->te_size > MAX_STRUCT || !fits(tc->te_qc, ps, tc->te_size) ||
	    !fits(tc->te_gen, 4, tc->te_size) || !fits(tc->te_loaded, ps, tc->te_size) ||
	    !fits(tc->te_prev, ps, tc->te_size) || !fits(tc->te_alloc, 8, tc->te_size) ||
	    !fits(tc->te_free, 8, tc->te_size) || !fits(tc->te_alloc_miss, 8, tc->te_size) ||
	    !fits(tc->te_free_miss, 8, tc->te_size))
		return "a thread entry field lies outside the entry";
	return NULL;
}

static int check_layout(rctx_t *c)
{
	const vmem_root_t *r = &c->r;
	const vmem_root_arena_t *a = &r->vr_arena;
	const vmem_root_seg_t *s = &r->vr_seg;
	const vmem_root_qcache_t *q = &r->vr_qcache;
	uint32_t ps = c->ps, nl = r->vr_namelen;
	const char *bad = NULL;

	if (a->ra_size == 0 || a->ra_size > MAX_STRUCT || s->rs_size == 0 ||
	    s->rs_size > MAX_STRUCT || q->rq_size > MAX_STRUCT || q->sl_size > MAX_STRUCT ||
	    q->qa_size > MAX_STRUCT)
		bad = "a structure size is 0 or absurd";
	else if (nl == 0 || nl > 255 || !fits(a->ra_name, nl + 1, a->ra_size))
		bad = "arena name";
	else if (!fits(a->ra_id, 4, a->ra_size) || !fits(a->ra_cflags, 4, a->ra_size) ||
	         !fits(a->ra_quantum, ps, a->ra_size) || !fits(a->ra_qcache_max, ps, a->ra_size) ||
	         !fits(a->ra_next, ps, a->ra_size) || !fits(a->ra_source, ps, a->ra_size) ||
	         !fits(a->ra_nqcache, 4, a->ra_size) || !fits(a->ra_qcache, ps, a->ra_size) ||
	         !fits(a->ra_ctr, 13 * 8, a->ra_size) || !fits(a->ra_seg0, s->rs_size, a->ra_size))
		bad = "an arena field lies outside the arena";
	else if (!fits(s->rs_start, ps, s->rs_size) || !fits(s->rs_extent, ps, s->rs_size) ||
	         !fits(s->rs_anext, ps, s->rs_size) || !fits(s->rs_type, 1, s->rs_size) ||
	         !fits(s->rs_flags, 1, s->rs_size) || !fits(s->rs_stack, 4, s->rs_size) ||
	         !fits(s->rs_asize, ps, s->rs_size) || !fits(s->rs_time, 8, s->rs_size) ||
	         !fits(s->rs_thread, 8, s->rs_size))
		bad = "a segment field lies outside the segment";
	else if (q->rq_size != 0 &&
	         (!fits(q->rq_name, nl + 12, q->rq_size) || !fits(q->rq_objsize, ps, q->rq_size) ||
	          !fits(q->rq_slabsize, ps, q->rq_size) || !fits(q->rq_nobj, 4, q->rq_size) ||
	          !fits(q->rq_slabs, 3 * (uint64_t)ps, q->rq_size) ||
	          !fits(q->rq_nslabs, ps, q->rq_size) || !fits(q->rq_slab_out, 8, q->rq_size) ||
	          !fits(q->sl_next, ps, q->sl_size) || !fits(q->sl_base, ps, q->sl_size) ||
	          !fits(q->sl_freemap, 8, q->sl_size) || !fits(q->sl_audit, ps, q->sl_size)))
		bad = "a cache or slab field lies outside its structure";
	else if (r->vr_debug && q->qa_size != 0 &&
	         (!fits(q->qa_alloc_stack, 4, q->qa_size) ||
	          !fits(q->qa_alloc_tid, 4, q->qa_size) || !fits(q->qa_alloc_time, 8, q->qa_size)))
		bad = "an audit field lies outside the audit record";
	else if (c->mags)
		bad = check_mag_layout(c);
	if (bad != NULL)
		return fail(
		    c, "the libvmem root is inconsistent (%s): not a build this vmemdb can read",
		    bad);
	return 0;
}

static int read_root(rctx_t *c, vdb_root_info_t *ri)
{
	uint8_t head[24];
	uint64_t magic;
	uint32_t version, size, ptrsize, debug;

	if (!vdb_read(c->t, ri->addr, head, sizeof(head)))
		return fail(c, "cannot read vmem_debug_root at 0x%llx (in %s)",
		            (unsigned long long)ri->addr, ri->object);
	memcpy(&magic, head, 8);
	memcpy(&version, head + 8, 4);
	memcpy(&size, head + 12, 4);
	memcpy(&ptrsize, head + 16, 4);
	memcpy(&debug, head + 20, 4);
	if (magic != VMEM_ROOT_MAGIC)
		return fail(c,
		            "vmem_debug_root at 0x%llx (in %s) has a bad magic 0x%016llx: not a "
		            "libvmem root",
		            (unsigned long long)ri->addr, ri->object, (unsigned long long)magic);
	if (version != VMEM_ROOT_VERSION)
		return fail(c,
		            "the libvmem in %s has root version %u; this vmemdb reads version %d",
		            ri->object, version, VMEM_ROOT_VERSION);
	if (ptrsize != 4 && ptrsize != 8)
		return fail(c, "the libvmem root in %s has pointer size %u", ri->object, ptrsize);
	if (size < VMEM_ROOT_SIZE_BASE)
		return fail(c, "the libvmem root in %s is %u bytes; version %d has at least %zu",
		            ri->object, size, VMEM_ROOT_VERSION, VMEM_ROOT_SIZE_BASE);
	/* What this vmemdb knows of a larger (newer) root; a smaller (older) one
	 * lacks the groups appended since, which stay zero. */
	memset(&c->r, 0, sizeof(c->r));
	if (!vdb_read(c->t, ri->addr, &c->r, size < sizeof(c->r) ? size : sizeof(c->r)))
		return fail(c, "cannot read vmem_debug_root at 0x%llx (in %s)",
		            (unsigned long long)ri->addr, ri->object);
	c->ps = ptrsize;
	c->mags = size >= VMEM_ROOT_SIZE_MAGS;
	ri->version = version;
	ri->size = size;
	ri->mags = c->mags;
	ri->debug = debug != 0;
	if (check_layout(c) != 0)
		return -1;
	if (!c->mags)
		vdb_note(c->t,
		         "the libvmem in %s has a root without magazines (an older build): cache "
		         "counters other than sizes and slabs are not known%s",
		         ri->object,
		         debug ? ""
		               : ", and objects freed into magazines cannot be told from "
		                 "objects callers hold");
	if (c->r.vr_debug && c->r.vr_dbg != 0 && !vdb_read(c->t, c->r.vr_dbg, &c->d, sizeof(c->d)))
		return fail(c, "cannot read the debug part of the libvmem root at 0x%llx",
		            (unsigned long long)c->r.vr_dbg);
	return 0;
}

/* ---- metadata regions --------------------------------------------------------------- */

static int collect_regions(rctx_t *c)
{
	const vmem_root_region_t *rr = &c->r.vr_region;
	uint32_t hdr = rr->rr_hdrsize;
	uint64_t addr, seg_bytes = 0;
	brent_t b = {0, 0, 0};
	uint8_t buf[256];

	if (hdr == 0) {
		/* the first roots do not give the header's size: read up to the last field */
		hdr = rr->rr_next + c->ps;
		if (rr->rr_size + c->ps > hdr)
			hdr = rr->rr_size + c->ps;
		if (rr->rr_kind + 4 > hdr)
			hdr = rr->rr_kind + 4;
	}
	if (hdr > sizeof(buf))
		return fail(c, "the libvmem root's region header is too large (%u bytes)", hdr);
	if (!rd_ptr(c, c->r.vr_region_head, &addr))
		return fail(c, "cannot read the metadata region list head at 0x%llx",
		            (unsigned long long)c->r.vr_region_head);
	while (addr != 0) {
		vsnap_region_rec_t *g;

		if (c->regions.n >= MAX_REGIONS || brent_cycle(&b, addr)) {
			vdb_note(c->t, "the metadata region list is corrupt (a cycle at 0x%llx)",
			         (unsigned long long)addr);
			break;
		}
		if (!vdb_read(c->t, addr, buf, hdr)) {
			vdb_note(c->t, "the metadata region list is broken: unreadable at 0x%llx",
			         (unsigned long long)addr);
			break;
		}
		if ((g = grow(&c->regions)) == NULL)
			return fail(c, "out of memory");
		g->rg_start = addr;
		g->rg_size = get_ptr(c, buf, rr->rr_size);
		g->rg_kind = (uint32_t)get_uint(buf, rr->rr_kind, 4);
		if (g->rg_kind == REGION_SEGS)
			seg_bytes += g->rg_size;
		addr = get_ptr(c, buf, rr->rr_next);
	}
	/* No arena can have more segments than the records mapped (plus the anchors). */
	c->seg_limit = c->regions.n > 0 ? seg_bytes / c->r.vr_seg.rs_size + 16 : UINT64_MAX;
	return 0;
}

/* ---- arenas ---------------------------------------------------------------------------- */

static int read_arena(rctx_t *c, uint64_t addr, uint64_t *next)
{
	const vmem_root_arena_t *ra = &c->r.vr_arena;
	const uint8_t *b = c->abuf;
	vsnap_arena_t *a;
	uint64_t ctr[13];
	size_t i = c->arenas.n;

	if (!vdb_read(c->t, addr, c->abuf, ra->ra_size))
		return fail(c, "cannot read arena %zu at 0x%llx", i + 1, (unsigned long long)addr);
	if ((a = grow(&c->arenas)) == NULL)
		return fail(c, "out of memory");
	c->arena_addr = realloc(c->arena_addr, c->arenas.cap * sizeof(uint64_t));
	c->arena_src = realloc(c->arena_src, c->arenas.cap * sizeof(uint64_t));
	if (c->arena_addr == NULL || c->arena_src == NULL)
		return fail(c, "out of memory");
	c->arena_addr[i] = addr;
	c->arena_src[i] = get_ptr(c, b, ra->ra_source);
	a->a.ar_id = (uint32_t)get_uint(b, ra->ra_id, 4);
	a->a.ar_cflags = (uint32_t)get_uint(b, ra->ra_cflags, 4);
	a->a.ar_quantum = get_ptr(c, b, ra->ra_quantum);
	a->a.ar_qcache_max = get_ptr(c, b, ra->ra_qcache_max);
	a->a.ar_nqcache = (uint32_t)get_uint(b, ra->ra_nqcache, 4);
	a->a.ar_addr = addr;
	memcpy(a->a.ar_name, b + ra->ra_name,
	       c->r.vr_namelen + 1 < VSNAP_NAMELEN ? c->r.vr_namelen + 1 : VSNAP_NAMELEN - 1);
	a->a.ar_name[VSNAP_NAMELEN - 1] = '\0';
	memcpy(ctr, b + ra->ra_ctr, sizeof(ctr));
	/* the model's kstat order inserts source_id as the 4th counter */
	memcpy(a->a.ar_kstat, ctr, 3 * 8);
	memcpy(a->a.ar_kstat + 4, ctr + 3, 10 * 8);
	*next = get_ptr(c, b, ra->ra_next);
	return 0;
}

static int collect_arenas(rctx_t *c)
{
	uint64_t addr;
	brent_t b = {0, 0, 0};

	if (!rd_ptr(c, c->r.vr_list_head, &addr))
		return fail(c, "cannot read the arena list head at 0x%llx",
		            (unsigned long long)c->r.vr_list_head);
	while (addr != 0) {
		if (c->arenas.n >= MAX_ARENAS || brent_cycle(&b, addr))
			return fail(c, "the arena list is corrupt (a cycle through 0x%llx)",
			            (unsigned long long)addr);
		if (read_arena(c, addr, &addr) != 0)
			return -1;
	}
	/* Sources by address -> by id. */
	for (size_t i = 0; i < c->arenas.n; i++) {
		vsnap_arena_t *a = (vsnap_arena_t *)c->arenas.p + i;

		if (c->arena_src[i] == 0)
			continue;
		for (size_t k = 0; k < c->arenas.n; k++)
			if (c->arena_addr[k] == c->arena_src[i])
				a->a.ar_source_id = ((vsnap_arena_t *)c->arenas.p)[k].a.ar_id;
		if (a->a.ar_source_id == 0)
			vdb_note(c->t,
			         "arena '%s' imports from 0x%llx, which is not on the arena list",
			         a->a.ar_name, (unsigned long long)c->arena_src[i]);
		a->a.ar_kstat[3] = a->a.ar_source_id;
	}
	return 0;
}

/* ---- segments ------------------------------------------------------------------------ */

/* One arena's list, from the anchor embedded in the arena back to it. */
static int collect_segs(rctx_t *c, vsnap_arena_t *a, const uint8_t *abuf)
{
	const vmem_root_seg_t *rs = &c->r.vr_seg;
	uint64_t anchor = a->a.ar_addr + c->r.vr_arena.ra_seg0;
	uint64_t cur = get_ptr(c, abuf, c->r.vr_arena.ra_seg0 + rs->rs_anext), last = 0;
	brent_t b = {0, 0, 0};
	const char *why = NULL;
	uint64_t n = 0;

	a->seg_first = c->segs.n;
	while (cur != anchor) {
		const uint8_t *s = c->sbuf;
		vsnap_seg_rec_t *g;
		uint8_t type, flags;
		uint64_t start;

		if (cur == 0)
			why = "a null link";
		else if (n++ > c->seg_limit || brent_cycle(&b, cur))
			why = "a cycle";
		else if (!vdb_read(c->t, cur, c->sbuf, rs->rs_size))
			why = "an unreadable segment";
		if (why != NULL)
			break;
		type = (uint8_t)get_uint(s, rs->rs_type, 1);
		flags = (uint8_t)get_uint(s, rs->rs_flags, 1);
		start = get_ptr(c, s, rs->rs_start);
		if (type == SEG_WALKER) {
			cur = get_ptr(c, s, rs->rs_anext);
			continue;
		}
		if (type != VSNAP_ALLOC && type != VSNAP_FREE && type != VSNAP_SPAN) {
			why = "a segment of unknown type";
			break;
		}
		if (start < last) {
			why = "segments out of address order";
			break;
		}
		last = start;
		if ((g = grow(&c->segs)) == NULL)
			return fail(c, "out of memory");
		g->sg_arena = a->a.ar_id;
		g->sg_type = type;
		g->sg_flags =
		    flags & (VSNAP_F_IMPORTED | VSNAP_F_XALLOC | VSNAP_F_SLAB | VSNAP_F_QDIRECT);
		g->sg_start = start;
		g->sg_extent = get_ptr(c, s, rs->rs_extent);
		g->sg_size = g->sg_extent;
		g->sg_addr = cur;
		if (type == VSNAP_ALLOC) {
			g->sg_size = get_ptr(c, s, rs->rs_asize);
			if (c->r.vr_debug) {
				g->sg_stack = (uint32_t)get_uint(s, rs->rs_stack, 4);
				g->sg_time = get_uint(s, rs->rs_time, 8);
				g->sg_thread = get_uint(s, rs->rs_thread, 8);
			}
		}
		cur = get_ptr(c, s, rs->rs_anext);
	}
	if (why != NULL)
		vdb_note(c->t, "arena '%s': segment list broken at 0x%llx (%s); %zu segments read",
		         a->a.ar_name, (unsigned long long)cur, why, c->segs.n - a->seg_first);
	a->seg_count = c->segs.n - a->seg_first;
	return 0;
}

/* ---- magazines ------------------------------------------------------------------------- */

/* The cache whose magazines are being read. */
typedef struct qinfo {
	const char *name;
	uint32_t arena; /* its arena's id */
	uint32_t qc;    /* its index in c->qcs */
	uint64_t objsize;
} qinfo_t;

/*
 * The registry: where each thread's table of entries is.  A broken registry
 * loses the magazines of the threads past the break, whose objects then look
 * held (a note says so).
 */
static int collect_tables(rctx_t *c)
{
	const vmem_root_tcache_t *rt = &c->r.vr_tcache;
	brent_t b = {0, 0, 0};
	const char *why = NULL;
	uint64_t addr;

	if (!rd_ptr(c, rt->rt_registry, &addr)) {
		vdb_note(c->t,
		         "the registry of thread magazines is unreadable at 0x%llx: objects in "
		         "threads' magazines look held",
		         (unsigned long long)rt->rt_registry);
		return 0;
	}
	while (addr != 0) {
		ttable_t *tt;

		if (c->tables.n >= MAX_THREADS || brent_cycle(&b, addr))
			why = "a cycle";
		else if (!vdb_read(c->t, addr, c->tbuf, rt->rt_size))
			why = "an unreadable table";
		if (why != NULL)
			break;
		if ((tt = grow(&c->tables)) == NULL)
			return fail(c, "out of memory");
		tt->addr = addr;
		tt->entry = get_ptr(c, c->tbuf, rt->rt_entry);
		tt->nentries = (uint32_t)get_uint(c->tbuf, rt->rt_nentries, 4);
		if (tt->nentries > MAX_ENTRIES) {
			vdb_note(c->t,
			         "the magazine table of a thread (0x%llx) claims %u entries: not "
			         "read; objects in its magazines look held",
			         (unsigned long long)addr, tt->nentries);
			tt->nentries = 0;
		}
		addr = get_ptr(c, c->tbuf, rt->rt_next);
	}
	if (why != NULL)
		vdb_note(c->t,
		         "the registry of thread magazines is broken at 0x%llx (%s; %zu tables "
		         "read): objects in the other threads' magazines look held",
		         (unsigned long long)addr, why, c->tables.n);
	return 0;
}

/*
 * One magazine of cache qi at addr: its rounds become magazine objects, and
 * *count grows by the count it claims (what vmem_qcache_kstat() adds up).
 * The magazine stays in c->mbuf for the caller's list walk.  1: read; 0:
 * unreadable (said once); -1: out of memory.
 */
static int read_mag(rctx_t *c, const qinfo_t *qi, uint64_t addr, uint64_t *count)
{
	const vmem_root_mag_t *m = &c->r.vr_mag;
	uint32_t n;

	if (!vdb_read(c->t, addr, c->mbuf, m->rm_size)) {
		if (!c->said_mags)
			vdb_note(c->t,
			         "cache %s: magazine at 0x%llx unreadable: its objects look held",
			         qi->name, (unsigned long long)addr);
		c->said_mags = true;
		return 0;
	}
	n = (uint32_t)get_uint(c->mbuf, m->rm_count, 4);
	*count += n;
	if (n > m->rm_nrounds) {
		if (!c->said_mags)
			vdb_note(c->t,
			         "cache %s: magazine at 0x%llx claims %u rounds (it holds %u): "
			         "its objects look held",
			         qi->name, (unsigned long long)addr, n, m->rm_nrounds);
		c->said_mags = true;
		return 1;
	}
	for (uint32_t i = 0; i < n; i++) {
		vdb_magobj_t *o = grow(&c->magobj);

		if (o == NULL)
			return fail(c, "out of memory");
		o->addr = get_ptr(c, c->mbuf, m->rm_round + i * c->ps);
		o->size = qi->objsize;
		o->arena = qi->arena;
		o->qc = qi->qc;
	}
	return 1;
}

/* A depot list of magazines, which claims `claimed` of them. */
static int read_depot(rctx_t *c, const qinfo_t *qi, uint64_t head, uint64_t claimed,
                      const char *which, uint64_t *count)
{
	brent_t b = {0, 0, 0};
	uint64_t n = 0;

	/* a process stopped (or dumped) inside a depot operation may be one off */
	if (claimed > MAX_MAGS)
		claimed = MAX_MAGS;
	for (uint64_t m = head; m != 0; m = get_ptr(c, c->mbuf, c->r.vr_mag.rm_next)) {
		int rc;

		if (n++ > claimed + 16 || brent_cycle(&b, m)) {
			vdb_note(
			    c->t,
			    "cache %s: the depot's list of %s magazines is broken at 0x%llx (it "
			    "claims %llu)",
			    qi->name, which, (unsigned long long)m, (unsigned long long)claimed);
			return 0;
		}
		if ((rc = read_mag(c, qi, m, count)) <= 0)
			return rc;
	}
	return 0;
}

/*
 * Every thread's entry of the cache at qaddr (id, gen): its counters into
 * sums (alloc, free, alloc_miss, free_miss) and its loaded and previous
 * magazines, as vmem__tc_sum() finds them.
 */
static int read_thread_mags(rctx_t *c, const qinfo_t *qi, uint64_t qaddr, uint32_t id, uint32_t gen,
                            uint64_t sums[4], uint64_t *count)
{
	const vmem_root_tcache_t *rt = &c->r.vr_tcache;
	const uint32_t ctr[4] = {rt->te_alloc, rt->te_free, rt->te_alloc_miss, rt->te_free_miss};

	for (size_t i = 0; i < c->tables.n; i++) {
		const ttable_t *tt = (const ttable_t *)c->tables.p + i;
		uint64_t e = tt->entry + (uint64_t)id * rt->te_size, mags[2];

		if (id >= tt->nentries)
			continue; /* this thread never used the cache */
		if (!vdb_read(c->t, e, c->ebuf, rt->te_size)) {
			if (!c->said_entries)
				vdb_note(c->t,
				         "the magazine table of a thread (0x%llx) is unreadable at "
				         "0x%llx: objects in its magazines look held",
				         (unsigned long long)tt->addr, (unsigned long long)e);
			c->said_entries = true;
			continue;
		}
		/* unused, or left by an earlier cache with the same id */
		if (get_ptr(c, c->ebuf, rt->te_qc) != qaddr ||
		    (uint32_t)get_uint(c->ebuf, rt->te_gen, 4) != gen)
			continue;
		for (int k = 0; k < 4; k++)
			sums[k] += get_uint(c->ebuf, ctr[k], 8);
		mags[0] = get_ptr(c, c->ebuf, rt->te_loaded);
		mags[1] = get_ptr(c, c->ebuf, rt->te_prev);
		for (int k = 0; k < 2; k++)
			if (mags[k] != 0 && read_mag(c, qi, mags[k], count) < 0)
				return -1;
	}
	return 0;
}

static int magobj_addr_cmp(const void *x, const void *y)
{
	const vdb_magobj_t *a = x, *b = y;

	return a->addr < b->addr ? -1 : a->addr > b->addr;
}

/*
 * The magazines of the cache at qaddr (record r, read into c->qbuf) and the
 * counters that need them: afterwards its magazine objects are
 * c->magobj[*first ..], sorted by address.
 */
static int collect_mags(rctx_t *c, uint32_t qi_index, uint64_t qaddr, size_t *first)
{
	const vmem_root_qcstat_t *qs = &c->r.vr_qcstat;
	const uint8_t *q = c->qbuf;
	vsnap_qcache_rec_t *r = (vsnap_qcache_rec_t *)c->qcs.p + qi_index;
	qinfo_t qi = {r->qr_name, r->qr_arena, qi_index, r->qr_kstat[0]};
	uint64_t sums[4], rounds = 0, empties_rounds = 0;
	uint64_t nfull = get_uint(q, qs->qs_nfull, 8), nempty = get_uint(q, qs->qs_nempty, 8);

	*first = c->magobj.n;
	/* vmem_qcache_kstat(): the cache's own counts, then every live thread's */
	sums[0] = get_uint(q, qs->qs_dead_alloc, 8);
	sums[1] = get_uint(q, qs->qs_dead_free, 8);
	sums[2] = get_uint(q, qs->qs_dead_alloc_miss, 8);
	sums[3] = get_uint(q, qs->qs_dead_free_miss, 8);
	if (read_depot(c, &qi, get_ptr(c, q, qs->qs_full), nfull, "full", &rounds) < 0 ||
	    read_depot(c, &qi, get_ptr(c, q, qs->qs_empty), nempty, "empty", &empties_rounds) < 0 ||
	    read_thread_mags(c, &qi, qaddr, (uint32_t)get_uint(q, qs->qs_id, 4),
	                     (uint32_t)get_uint(q, qs->qs_gen, 4), sums, &rounds) != 0)
		return -1;
	/* Empty magazines hold no rounds; if one did, they would still be free, but
	 * the library's mag_rounds counts full magazines and threads' only. */
	memcpy(&r->qr_kstat[2], sums, sizeof(sums));
	r->qr_kstat[6] = get_uint(q, qs->qs_depot_alloc, 8);
	r->qr_kstat[7] = get_uint(q, qs->qs_depot_free, 8);
	r->qr_kstat[8] = get_uint(q, qs->qs_depot_contention, 8);
	r->qr_kstat[9] = nfull;
	r->qr_kstat[10] = nempty;
	r->qr_kstat[11] = rounds;
	r->qr_kstat[13] = get_uint(q, qs->qs_slab_create, 8);
	r->qr_kstat[14] = get_uint(q, qs->qs_slab_destroy, 8);
	r->qr_kstat[16] = get_uint(q, qs->qs_direct, 8);
	r->qr_kstat[17] = get_uint(q, qs->qs_reaps, 8);
	if (c->magobj.n > *first)
		qsort((vdb_magobj_t *)c->magobj.p + *first, c->magobj.n - *first,
		      sizeof(vdb_magobj_t), magobj_addr_cmp);
	return 0;
}

/* By arena, then address: the order vdb_magobj() searches. */
static int magobj_cmp(const void *x, const void *y)
{
	const vdb_magobj_t *a = x, *b = y;

	if (a->arena != b->arena)
		return a->arena < b->arena ? -1 : 1;
	return magobj_addr_cmp(x, y);
}

/* Is the object at addr in one of the magazines c->magobj[first ..] (sorted)? */
static bool in_mags(const rctx_t *c, size_t first, uint64_t addr)
{
	vdb_magobj_t key = {addr, 0, 0, 0};

	if (c->magobj.n <= first)
		return false; /* none (and perhaps no array at all) */
	return bsearch(&key, (vdb_magobj_t *)c->magobj.p + first, c->magobj.n - first,
	               sizeof(vdb_magobj_t), magobj_addr_cmp) != NULL;
}

/* ---- quantum caches ------------------------------------------------------------------ */

/*
 * The objects of one slab that callers hold: out of the slab (their bit in
 * the free map is clear) and in none of the cache's magazines, c->magobj[mfirst ..].
 */
static int slab_objects(rctx_t *c, const vsnap_arena_t *a, uint64_t slab, uint64_t objsize,
                        uint32_t nobj, size_t mfirst)
{
	const vmem_root_qcache_t *q = &c->r.vr_qcache;
	uint64_t base = get_ptr(c, c->slbuf, q->sl_base);
	uint64_t freemap = get_uint(c->slbuf, q->sl_freemap, 8);
	uint64_t audit = get_ptr(c, c->slbuf, q->sl_audit);
	uint8_t *ab = NULL;

	if (c->r.vr_debug && audit != 0 && q->qa_size != 0) {
		ab = malloc((size_t)nobj * q->qa_size);
		if (ab != NULL && !vdb_read(c->t, audit, ab, (size_t)nobj * q->qa_size)) {
			free(ab);
			ab = NULL;
		}
	}
	for (uint32_t i = 0; i < nobj; i++) {
		vsnap_seg_rec_t *g;

		if (freemap & (1ULL << i))
			continue;
		if (in_mags(c, mfirst, base + (uint64_t)i * objsize))
			continue; /* free, cached in a magazine */
		if ((g = grow(&c->cached)) == NULL) {
			free(ab);
			return fail(c, "out of memory");
		}
		g->sg_arena = a->a.ar_id;
		g->sg_type = VSNAP_CACHED;
		g->sg_start = base + (uint64_t)i * objsize;
		g->sg_size = g->sg_extent = objsize;
		g->sg_addr = slab;
		if (ab != NULL) {
			const uint8_t *r = ab + (size_t)i * q->qa_size;

			g->sg_stack = (uint32_t)get_uint(r, q->qa_alloc_stack, 4);
			g->sg_thread = get_uint(r, q->qa_alloc_tid, 4);
			g->sg_time = get_uint(r, q->qa_alloc_time, 8);
		}
	}
	free(ab);
	return 0;
}

static int collect_qcache(rctx_t *c, vsnap_arena_t *a, uint32_t index, uint64_t qaddr)
{
	const vmem_root_qcache_t *q = &c->r.vr_qcache;
	uint64_t objsize, nslabs;
	vsnap_qcache_rec_t *r;
	uint32_t nobj;
	size_t mfirst;

	if (!vdb_read(c->t, qaddr, c->qbuf, q->rq_size)) {
		vdb_note(c->t, "arena '%s': cache %u unreadable at 0x%llx", a->a.ar_name, index,
		         (unsigned long long)qaddr);
		return 0;
	}
	if ((r = grow(&c->qcs)) == NULL)
		return fail(c, "out of memory");
	r->qr_arena = a->a.ar_id;
	r->qr_index = index;
	memcpy(r->qr_name, c->qbuf + q->rq_name,
	       c->r.vr_namelen + 12 < VSNAP_QNAMELEN ? c->r.vr_namelen + 12 : VSNAP_QNAMELEN - 1);
	r->qr_name[VSNAP_QNAMELEN - 1] = '\0';
	objsize = get_ptr(c, c->qbuf, q->rq_objsize);
	nobj = (uint32_t)get_uint(c->qbuf, q->rq_nobj, 4);
	nslabs = get_ptr(c, c->qbuf, q->rq_nslabs);
	/* the counters of the first roots; the others stay 0 without magazines (qk_partial) */
	r->qr_kstat[0] = objsize;
	r->qr_kstat[1] = get_ptr(c, c->qbuf, q->rq_slabsize);
	r->qr_kstat[12] = nslabs;
	r->qr_kstat[15] = get_uint(c->qbuf, q->rq_slab_out, 8);
	mfirst = c->magobj.n;
	if (c->mags && collect_mags(c, (uint32_t)(c->qcs.n - 1), qaddr, &mfirst) != 0)
		return -1;
	if (nobj > 64 || objsize == 0) {
		vdb_note(c->t, "cache %s: %u objects of %llu bytes per slab: not read", r->qr_name,
		         nobj, (unsigned long long)objsize);
		return 0;
	}
	for (int list = 0; list < 3; list++) {
		uint64_t slab = get_ptr(c, c->qbuf, q->rq_slabs + (uint32_t)list * c->ps);
		brent_t b = {0, 0, 0};
		uint64_t n = 0;

		while (slab != 0) {
			if (n++ > nslabs + 16 || brent_cycle(&b, slab) ||
			    !vdb_read(c->t, slab, c->slbuf, q->sl_size)) {
				vdb_note(c->t, "cache %s: slab list %d broken at 0x%llx",
				         r->qr_name, list, (unsigned long long)slab);
				break;
			}
			if (slab_objects(c, a, slab, objsize, nobj, mfirst) != 0)
				return -1;
			slab = get_ptr(c, c->slbuf, q->sl_next);
		}
	}
	return 0;
}

static int seg_start_cmp(const void *x, const void *y)
{
	const vsnap_seg_rec_t *a = x, *b = y;

	return a->sg_start < b->sg_start ? -1 : a->sg_start > b->sg_start;
}

/* Put the cached objects after their slab's ALLOC record, as a snapshot has them. */
static int merge_cached(rctx_t *c, vsnap_arena_t *a)
{
	vsnap_seg_rec_t *old, *cached = c->cached.p;
	size_t nold = a->seg_count, j = 0, dropped = 0;

	if (c->cached.n == 0)
		return 0;
	qsort(cached, c->cached.n, sizeof(*cached), seg_start_cmp);
	old = malloc(nold * sizeof(*old) + 1);
	if (old == NULL)
		return fail(c, "out of memory");
	if (nold != 0) /* a corrupt target may list cached objects in an arena with no segment */
		memcpy(old, (vsnap_seg_rec_t *)c->segs.p + a->seg_first, nold * sizeof(*old));
	c->segs.n = a->seg_first;
	for (size_t i = 0; i < nold; i++) {
		vsnap_seg_rec_t *g = grow(&c->segs);

		if (g == NULL) {
			free(old);
			return fail(c, "out of memory");
		}
		*g = old[i];
		if (old[i].sg_type != VSNAP_ALLOC || !(old[i].sg_flags & VSNAP_F_SLAB))
			continue;
		while (j < c->cached.n && cached[j].sg_start < old[i].sg_start) {
			j++;
			dropped++;
		}
		while (j < c->cached.n && cached[j].sg_start - old[i].sg_start < old[i].sg_extent) {
			if ((g = grow(&c->segs)) == NULL) {
				free(old);
				return fail(c, "out of memory");
			}
			*g = cached[j++];
		}
	}
	dropped += c->cached.n - j;
	if (dropped > 0)
		vdb_note(c->t,
		         "arena '%s': %zu cached objects outside any slab segment were left out",
		         a->a.ar_name, dropped);
	free(old);
	a->seg_count = c->segs.n - a->seg_first;
	c->cached.n = 0;
	return 0;
}

static int collect_arena_contents(rctx_t *c)
{
	const vmem_root_arena_t *ra = &c->r.vr_arena;
	uint32_t nqmax = ra->ra_nqcache_max != 0 ? ra->ra_nqcache_max : MAX_NQCACHE;

	for (size_t i = 0; i < c->arenas.n; i++) {
		vsnap_arena_t *a = (vsnap_arena_t *)c->arenas.p + i;
		uint32_t nq = a->a.ar_nqcache;

		if (!vdb_read(c->t, a->a.ar_addr, c->abuf, ra->ra_size))
			return fail(c, "cannot read arena '%s' at 0x%llx", a->a.ar_name,
			            (unsigned long long)a->a.ar_addr);
		if (collect_segs(c, a, c->abuf) != 0)
			return -1;
		a->qc_first = c->qcs.n;
		if (nq > nqmax || !fits(ra->ra_qcache, (uint64_t)nq * c->ps, ra->ra_size)) {
			vdb_note(c->t, "arena '%s': %u quantum caches: not read", a->a.ar_name, nq);
			nq = 0;
		}
		for (uint32_t k = 0; k < nq && c->r.vr_qcache.rq_size != 0; k++) {
			uint64_t q = get_ptr(c, c->abuf, ra->ra_qcache + k * c->ps);

			if (q != 0 && collect_qcache(c, a, k, q) != 0)
				return -1;
		}
		a->qc_count = c->qcs.n - a->qc_first;
		if (merge_cached(c, a) != 0)
			return -1;
	}
	return 0;
}

/* ---- the debug library's stacks and log ------------------------------------------------- */

static int collect_stacks(rctx_t *c)
{
	uint64_t table, pcbuf[VSNAP_MAXDEPTH];
	uint32_t count;
	uint8_t *tb;

	if (!rd_ptr(c, c->d.rd_depot_byid, &table) || !rd_u32(c, c->d.rd_depot_count, &count)) {
		vdb_note(c->t, "the stack depot is unreadable: stacks not shown");
		return 0;
	}
	if (table == 0 || count == 0)
		return 0;
	if (count > MAX_STACKS) {
		vdb_note(c->t, "the stack depot claims %u stacks: not read", count);
		return 0;
	}
	tb = malloc((size_t)count * c->ps);
	if (tb == NULL)
		return fail(c, "out of memory");
	if (!vdb_read(c->t, table, tb, (size_t)count * c->ps)) {
		free(tb);
		vdb_note(c->t, "the stack depot's table is unreadable: stacks not shown");
		return 0;
	}
	for (uint32_t id = 1; id <= count; id++) {
		uint64_t rec = get_uint(tb, (id - 1) * c->ps, c->ps);
		uint32_t depth;
		vsnap_stack_t *st;
		uint8_t raw[VSNAP_MAXDEPTH * 8];

		if (rec == 0 || !rd_u32(c, rec + c->d.rd_stack_depth, &depth) || depth == 0)
			continue;
		if (depth > VSNAP_MAXDEPTH)
			depth = VSNAP_MAXDEPTH;
		if (!vdb_read(c->t, rec + c->d.rd_stack_pc, raw, (size_t)depth * c->ps))
			continue;
		for (uint32_t k = 0; k < depth; k++)
			pcbuf[k] = get_uint(raw, k * c->ps, c->ps);
		if ((st = grow(&c->stacks)) == NULL) {
			free(tb);
			return fail(c, "out of memory");
		}
		st->id = id;
		st->depth = depth;
		st->pc =
		    (const uint64_t *)(uintptr_t)c->pcs.n; /* an index until pcs stops moving */
		for (uint32_t k = 0; k < depth; k++) {
			uint64_t *p = grow(&c->pcs);

			if (p == NULL) {
				free(tb);
				return fail(c, "out of memory");
			}
			*p = pcbuf[k];
		}
	}
	free(tb);
	for (size_t i = 0; i < c->stacks.n; i++) {
		vsnap_stack_t *st = (vsnap_stack_t *)c->stacks.p + i;

		st->pc = (const uint64_t *)c->pcs.p + (uintptr_t)st->pc;
	}
	return 0;
}

static int collect_log(rctx_t *c)
{
	uint64_t recs, size, seq, n, first;
	uint32_t rsz = c->d.rd_txrec_size;
	uint8_t *ring;

	if (!rd_ptr(c, c->d.rd_log_recs, &recs) || !rd_ptr(c, c->d.rd_log_size, &size) ||
	    !rd_u64(c, c->d.rd_log_seq, &seq)) {
		vdb_note(c->t, "the transaction log is unreadable: not shown");
		return 0;
	}
	if (recs == 0 || size == 0 || seq == 0 || rsz == 0)
		return 0;
	if (size > MAX_LOG || rsz > 4096) {
		vdb_note(c->t, "the transaction log claims %llu records of %u bytes: not read",
		         (unsigned long long)size, rsz);
		return 0;
	}
	ring = malloc((size_t)size * rsz);
	if (ring == NULL)
		return fail(c, "out of memory");
	if (!vdb_read(c->t, recs, ring, (size_t)size * rsz)) {
		free(ring);
		vdb_note(c->t, "the transaction log's ring is unreadable: not shown");
		return 0;
	}
	n = seq < size ? seq : size;
	first = seq - n;
	for (uint64_t k = first; k < seq; k++) {
		vsnap_txrec_t *tx = grow(&c->log);

		if (tx == NULL) {
			free(ring);
			return fail(c, "out of memory");
		}
		memcpy(tx, ring + (size_t)(k % size) * rsz, rsz < sizeof(*tx) ? rsz : sizeof(*tx));
		memset(tx->tx_pad, 0, sizeof(tx->tx_pad));
		/* a slot rewritten after seq was read, or never written: not this record */
		if (tx->tx_seq != k + 1)
			c->log.n--;
	}
	free(ring);
	return 0;
}

/* ---- the model ---------------------------------------------------------------------------- */

/* Tree order: each root in creation order, then depth first its importers. */
static int order_tree(rctx_t *c, vsnap_t *s)
{
	vsnap_arena_t *in = c->arenas.p;
	size_t n = c->arenas.n, out = 0;
	size_t *stack = malloc((n + 1) * sizeof(size_t));
	bool *done = calloc(n + 1, 1);

	s->arenas = malloc((n + 1) * sizeof(*s->arenas));
	if (stack == NULL || done == NULL || s->arenas == NULL) {
		free(stack);
		free(done);
		return fail(c, "out of memory");
	}
	for (size_t r = 0; r < n; r++) {
		size_t sp = 0;

		if (done[r] || in[r].a.ar_source_id != 0)
			continue;
		stack[sp++] = r;
		while (sp > 0) {
			size_t i = stack[--sp];

			done[i] = true;
			s->arenas[out++] = in[i]; /* depth: below */
			/* children in creation order: push them in reverse */
			for (size_t k = n; k-- > 0;)
				if (!done[k] && in[k].a.ar_source_id == in[i].a.ar_id && sp < n)
					stack[sp++] = k;
		}
	}
	for (size_t i = 0; i < n; i++) /* arenas whose source is lost: at the end */
		if (!done[i])
			s->arenas[out++] = in[i];
	s->narenas = out;
	for (size_t i = 0; i < out; i++) {
		const vsnap_arena_t *src = NULL;

		for (size_t k = 0; k < i && s->arenas[i].a.ar_source_id != 0; k++)
			if (s->arenas[k].a.ar_id == s->arenas[i].a.ar_source_id)
				src = &s->arenas[k];
		s->arenas[i].depth = src != NULL ? src->depth + 1 : 0;
	}
	free(stack);
	free(done);
	return 0;
}

static int collect_errors(rctx_t *c, vsnap_t *s)
{
	uint32_t n = c->r.vr_nkinds;

	if (n > 32)
		n = 32;
	if (n > 0 && !vdb_read(c->t, c->r.vr_error_counts, s->errors, (size_t)n * 8)) {
		vdb_note(c->t, "the error counters are unreadable");
		return 0;
	}
	s->nerrors = n;
	return 0;
}

static int fill_objects(rctx_t *c, vsnap_t *s)
{
	vdb_target_t *t = c->t;

	s->objects = calloc(t->nobjs ? t->nobjs : 1, sizeof(*s->objects));
	if (s->objects == NULL)
		return fail(c, "out of memory");
	for (size_t i = 0; i < t->nobjs; i++) {
		vsnap_object_t *o = &s->objects[s->nobjects];
		size_t len = strlen(t->objs[i].path);

		o->path = strdup(t->objs[i].path);
		if (o->path == NULL)
			return fail(c, "out of memory");
		o->o.ob_base = t->objs[i].base;
		o->o.ob_start = t->objs[i].start;
		o->o.ob_end = t->objs[i].end;
		o->o.ob_build_id_len = (uint32_t)t->objs[i].build_id_len;
		o->o.ob_path_len = (uint32_t)len;
		memcpy(o->o.ob_build_id, t->objs[i].build_id, sizeof(o->o.ob_build_id));
		s->nobjects++;
	}
	return 0;
}

void vdb_collect_free(vsnap_t *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nobjects; i++)
		free((char *)s->objects[i].path);
	free(s->objects);
	free(s->arenas);
	free(s->segs);
	free(s->qcaches);
	if (s->nstacks > 0)
		free((void *)s->stacks[0].pc);
	free(s->stacks);
	free(s->log);
	free(s->regions);
	free(s);
}

static void rctx_free(rctx_t *c)
{
	free(c->abuf);
	free(c->sbuf);
	free(c->qbuf);
	free(c->slbuf);
	free(c->mbuf);
	free(c->tbuf);
	free(c->ebuf);
	free(c->tables.p);
	free(c->magobj.p);
	free(c->arenas.p);
	free(c->segs.p);
	free(c->qcs.p);
	free(c->cached.p);
	free(c->stacks.p);
	free(c->pcs.p);
	free(c->log.p);
	free(c->regions.p);
	free(c->arena_addr);
	free(c->arena_src);
}

static int collect_all(rctx_t *c, vdb_root_info_t *ri, vsnap_t *s)
{
	const vmem_root_t *r = &c->r;

	if (find_root(c, ri) != 0 || read_root(c, ri) != 0)
		return -1;
	c->abuf = malloc(r->vr_arena.ra_size);
	c->sbuf = malloc(r->vr_seg.rs_size);
	c->qbuf = malloc(r->vr_qcache.rq_size + 1);
	c->slbuf = malloc(r->vr_qcache.sl_size + 1);
	if (c->abuf == NULL || c->sbuf == NULL || c->qbuf == NULL || c->slbuf == NULL)
		return fail(c, "out of memory");
	if (c->mags) {
		c->mbuf = malloc(r->vr_mag.rm_size);
		c->tbuf = malloc(r->vr_tcache.rt_size);
		c->ebuf = malloc(r->vr_tcache.te_size);
		if (c->mbuf == NULL || c->tbuf == NULL || c->ebuf == NULL)
			return fail(c, "out of memory");
	}
	if (collect_regions(c) != 0 || collect_arenas(c) != 0)
		return -1;
	/* the threads' tables before the caches, whose magazines they hold */
	if (c->mags && collect_tables(c) != 0)
		return -1;
	if (collect_arena_contents(c) != 0)
		return -1;
	if (r->vr_debug && r->vr_dbg != 0 && (collect_stacks(c) != 0 || collect_log(c) != 0))
		return -1;
	if (order_tree(c, s) != 0 || collect_errors(c, s) != 0 || fill_objects(c, s) != 0)
		return -1;
	return 0;
}

int vdb_collect(vdb_target_t *t, vdb_root_info_t *ri, char *err, size_t errlen)
{
	rctx_t c;
	vsnap_t *s = calloc(1, sizeof(*s));
	struct timespec ts;

	memset(&c, 0, sizeof(c));
	memset(ri, 0, sizeof(*ri));
	c.t = t;
	c.err = err;
	c.errlen = errlen;
	c.arenas.elsize = sizeof(vsnap_arena_t);
	c.segs.elsize = c.cached.elsize = sizeof(vsnap_seg_rec_t);
	c.qcs.elsize = sizeof(vsnap_qcache_rec_t);
	c.stacks.elsize = sizeof(vsnap_stack_t);
	c.pcs.elsize = sizeof(uint64_t);
	c.log.elsize = sizeof(vsnap_txrec_t);
	c.regions.elsize = sizeof(vsnap_region_rec_t);
	c.tables.elsize = sizeof(ttable_t);
	c.magobj.elsize = sizeof(vdb_magobj_t);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (collect_all(&c, ri, s) != 0) {
		vdb_collect_free(s);
		rctx_free(&c);
		return -1;
	}
	s->version = VSNAP_VERSION;
	s->flags = c.r.vr_debug ? VSNAP_F_DEBUG : 0;
	s->ptrsize = c.ps;
	s->pid = t->pid;
	clock_gettime(CLOCK_REALTIME, &ts);
	s->time_ns =
	    t->kind == VDB_LIVE ? (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec : 0;
	/* hand the arrays over to the model */
	s->segs = c.segs.p;
	s->nsegs = c.segs.n;
	s->qcaches = c.qcs.p;
	s->nqcaches = c.qcs.n;
	s->stacks = c.stacks.p;
	s->nstacks = c.stacks.n;
	s->log = c.log.p;
	s->nlog = c.log.n;
	s->regions = c.regions.p;
	s->nregions = c.regions.n;
	c.segs.p = c.qcs.p = c.stacks.p = c.log.p = c.regions.p = NULL;
	if (s->nstacks == 0) {
		free(c.pcs.p);
	}
	c.pcs.p = NULL;
	if (c.magobj.n > 0)
		qsort(c.magobj.p, c.magobj.n, sizeof(vdb_magobj_t), magobj_cmp);
	t->magobj = c.magobj.p;
	t->nmagobj = c.magobj.n;
	c.magobj.p = NULL;
	rctx_free(&c);
	t->snap = s;
	t->snap_free = vdb_collect_free;
	t->qk_partial = !c.mags;
	return 0;
}
