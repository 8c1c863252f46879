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
#define MAX_NQCACHE 64
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
	uint8_t *abuf, *sbuf, *qbuf, *slbuf; /* one structure each, sized from the root */
	growbuf_t arenas, segs, qcs, cached, stacks, pcs, log, regions;
	uint64_t *arena_addr; /* parallel to arenas: the vmem_t's address */
	uint64_t *arena_src;  /* and its source's address */
} rctx_t;

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
	if (size < sizeof(vmem_root_t))
		return fail(c, "the libvmem root in %s is %u bytes; version %d has at least %zu",
		            ri->object, size, VMEM_ROOT_VERSION, sizeof(vmem_root_t));
	if (!vdb_read(c->t, ri->addr, &c->r, sizeof(c->r)))
		return fail(c, "cannot read vmem_debug_root at 0x%llx (in %s)",
		            (unsigned long long)ri->addr, ri->object);
	c->ps = ptrsize;
	ri->version = version;
	ri->debug = debug != 0;
	if (check_layout(c) != 0)
		return -1;
	if (c->r.vr_debug && c->r.vr_dbg != 0 && !vdb_read(c->t, c->r.vr_dbg, &c->d, sizeof(c->d)))
		return fail(c, "cannot read the debug part of the libvmem root at 0x%llx",
		            (unsigned long long)c->r.vr_dbg);
	return 0;
}

/* ---- metadata regions --------------------------------------------------------------- */

static int collect_regions(rctx_t *c)
{
	const vmem_root_region_t *rr = &c->r.vr_region;
	uint32_t hdr = rr->rr_next + c->ps;
	uint64_t addr, seg_bytes = 0;
	brent_t b = {0, 0, 0};
	uint8_t buf[256];

	if (rr->rr_size + c->ps > hdr)
		hdr = rr->rr_size + c->ps;
	if (rr->rr_kind + 4 > hdr)
		hdr = rr->rr_kind + 4;
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

/* ---- quantum caches ------------------------------------------------------------------ */

/* The objects of one slab that callers hold (their bit in the free map is clear). */
static int slab_objects(rctx_t *c, const vsnap_arena_t *a, uint64_t slab, uint64_t objsize,
                        uint32_t nobj)
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
	/* the counters the root describes; the others stay 0 (t->qk_partial) */
	r->qr_kstat[0] = objsize;
	r->qr_kstat[1] = get_ptr(c, c->qbuf, q->rq_slabsize);
	r->qr_kstat[12] = nslabs;
	r->qr_kstat[15] = get_uint(c->qbuf, q->rq_slab_out, 8);
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
			if (slab_objects(c, a, slab, objsize, nobj) != 0)
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

	for (size_t i = 0; i < c->arenas.n; i++) {
		vsnap_arena_t *a = (vsnap_arena_t *)c->arenas.p + i;
		uint32_t nq = a->a.ar_nqcache;

		if (!vdb_read(c->t, a->a.ar_addr, c->abuf, ra->ra_size))
			return fail(c, "cannot read arena '%s' at 0x%llx", a->a.ar_name,
			            (unsigned long long)a->a.ar_addr);
		if (collect_segs(c, a, c->abuf) != 0)
			return -1;
		a->qc_first = c->qcs.n;
		if (nq > MAX_NQCACHE || !fits(ra->ra_qcache, (uint64_t)nq * c->ps, ra->ra_size)) {
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
	if (collect_regions(c) != 0 || collect_arenas(c) != 0 || collect_arena_contents(c) != 0)
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
	rctx_free(&c);
	t->snap = s;
	t->snap_free = vdb_collect_free;
	t->qk_partial = true;
	return 0;
}
