/*
 * ::findleaks: allocations nobody refers to, grouped by allocation stack.
 *
 * With process memory (live, core) this is mdb's conservative scan.  The
 * candidates are the allocated segments and cached objects of every arena,
 * except the spans arenas imported from their source (the importer's
 * records refer to those), quantum-cache slabs (their objects are the
 * candidates) and objects free in a cache's magazines (the collector leaves
 * those out of the cached objects; an object the arena served directly
 * stays an allocated segment while it waits in a magazine, so it is looked
 * up here).  The roots are every readable and writable mapping, minus
 * libvmem's metadata regions (the segment records point at every segment,
 * so nothing would ever look leaked) and minus the arenas' own ranges (a
 * leaked block pointing at another would hide it; free space holds stale
 * words), with thread stacks taken from the stack pointer up, plus the
 * threads' registers.  Every aligned word that falls inside a candidate
 * marks it; a marked candidate that is process memory is scanned in turn.
 * What stays unmarked leaked.
 *
 * A snapshot has no memory: every outstanding allocation is listed, and the
 * output says so.
 */
#include "vmemdb.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_CHUNK (1u << 20)
#define RED_ZONE   128 /* x86-64 leaf functions keep data below the stack pointer */

typedef struct cand {
	uint64_t start, end; /* end exclusive (start + extent) */
	size_t seg;
	bool marked;
} cand_t;

typedef struct range {
	uint64_t start, end;
} range_t;

typedef struct scan {
	vdb_t *db;
	cand_t *c;
	size_t n;
	uint64_t *maxend; /* maxend[i]: the largest end of c[0..i] (overlapping arenas) */
	uint64_t lo, hi;  /* every candidate lies in [lo, hi) */
	size_t *work;     /* marked candidates whose memory is still to scan */
	size_t nwork;
	uint64_t bytes, words;
	size_t mappings;
} scan_t;

typedef struct group {
	uint32_t arena;
	uint32_t stack;
	uint64_t key2;       /* the size, for segments without a stack */
	size_t first, count; /* in the sorted leak list */
	uint64_t bytes, min, max;
	size_t rep; /* segment index */
} group_t;

typedef struct leakrun {
	bool scan_mode, verbose;
	const char *notes[4];
	int nnotes;
	size_t *leaked; /* segment indices, sorted by group key */
	size_t nleaked;
	group_t *groups;
	size_t ngroups;
	scan_t sc;
	uint64_t meta_bytes;
} leakrun_t;

static const vdb_t *cmp_db;

/* ---- candidates ------------------------------------------------------------------------ */

typedef struct impkey {
	uint32_t arena;
	uint64_t start;
} impkey_t;

static int impkey_cmp(const void *x, const void *y)
{
	const impkey_t *a = x, *b = y;

	if (a->arena != b->arena)
		return a->arena < b->arena ? -1 : 1;
	return a->start < b->start ? -1 : a->start > b->start;
}

/* (source id, start) of every span an arena imported: the source's segments behind them. */
static impkey_t *imported_spans(const vdb_t *db, size_t *n)
{
	const vsnap_t *s = db->s;
	impkey_t *k;
	size_t cnt = 0;

	for (size_t i = 0; i < s->nsegs; i++)
		cnt += s->segs[i].sg_type == VSNAP_SPAN && (s->segs[i].sg_flags & VSNAP_F_IMPORTED);
	k = malloc((cnt + 1) * sizeof(*k));
	if (k == NULL)
		return NULL;
	*n = 0;
	for (size_t a = 0; a < s->narenas; a++) {
		const vsnap_arena_t *ar = &s->arenas[a];

		for (size_t i = ar->seg_first; i < ar->seg_first + ar->seg_count; i++) {
			const vsnap_seg_rec_t *g = &s->segs[i];

			if (g->sg_type == VSNAP_SPAN && (g->sg_flags & VSNAP_F_IMPORTED) &&
			    ar->a.ar_source_id != 0) {
				k[*n].arena = ar->a.ar_source_id;
				k[*n].start = g->sg_start;
				(*n)++;
			}
		}
	}
	qsort(k, *n, sizeof(*k), impkey_cmp);
	return k;
}

static bool cand_cmp_lt(const cand_t *a, const cand_t *b)
{
	return a->start < b->start || (a->start == b->start && a->seg < b->seg);
}

static int cand_cmp(const void *x, const void *y)
{
	const cand_t *a = x, *b = y;

	return cand_cmp_lt(a, b) ? -1 : cand_cmp_lt(b, a);
}

static bool in_arenas(const size_t *only, size_t nonly, size_t arena_idx)
{
	if (only == NULL)
		return true;
	for (size_t i = 0; i < nonly; i++)
		if (only[i] == arena_idx)
			return true;
	return false;
}

static int collect_candidates(leakrun_t *lr, const size_t *only, size_t nonly)
{
	vdb_t *db = lr->sc.db;
	const vsnap_t *s = db->s;
	bool debug = (s->flags & VSNAP_F_DEBUG) != 0, skipped_ids = false, skipped_cached = false;
	size_t nimp = 0;
	impkey_t *imp = imported_spans(db, &nimp);
	scan_t *sc = &lr->sc;

	sc->c = malloc((s->nsegs + 1) * sizeof(*sc->c));
	if (imp == NULL || sc->c == NULL) {
		free(imp);
		return -1;
	}
	for (size_t a = 0; a < s->narenas; a++) {
		const vsnap_arena_t *ar = &s->arenas[a];
		bool ids = (ar->a.ar_cflags & 0x00040000) != 0; /* VMC_IDENTIFIER */

		if (!in_arenas(only, nonly, a))
			continue;
		if (lr->scan_mode && ids) {
			skipped_ids = skipped_ids || ar->seg_count > 0;
			continue;
		}
		for (size_t i = ar->seg_first; i < ar->seg_first + ar->seg_count; i++) {
			const vsnap_seg_rec_t *g = &s->segs[i];
			impkey_t key = {ar->a.ar_id, g->sg_start};
			const vdb_magobj_t *m;

			/* an older root: objects out of their slabs may be in magazines */
			if (g->sg_type == VSNAP_CACHED && lr->scan_mode && !debug &&
			    db->t->qk_partial) {
				skipped_cached = true;
				continue;
			}
			if (g->sg_type != VSNAP_ALLOC && g->sg_type != VSNAP_CACHED)
				continue;
			if (g->sg_type == VSNAP_ALLOC && (g->sg_flags & VSNAP_F_SLAB))
				continue;
			if (g->sg_type == VSNAP_ALLOC && (g->sg_flags & VSNAP_F_QDIRECT) &&
			    (m = vdb_magobj(db, ar->a.ar_id, g->sg_start)) != NULL &&
			    m->addr == g->sg_start)
				continue; /* free: the arena's, cached in a magazine */
			/* a span an importer took (an ALLOC segment, or a cached object when the
			 * import size is a cached one) is the importer's business */
			if (bsearch(&key, imp, nimp, sizeof(*imp), impkey_cmp) != NULL)
				continue;
			sc->c[sc->n].start = g->sg_start;
			sc->c[sc->n].end = g->sg_start + g->sg_extent;
			sc->c[sc->n].seg = i;
			sc->c[sc->n].marked = false;
			sc->n++;
		}
	}
	free(imp);
	if (skipped_ids)
		lr->notes[lr->nnotes++] = "identifier arenas were not checked: their integers are "
		                          "not addresses, any word could name them";
	if (skipped_cached)
		lr->notes[lr->nnotes++] =
		    "quantum-cached objects were not checked: libvmem (not "
		    "-debug) keeps freed objects in magazines, which the root of "
		    "this older build does not describe";
	return 0;
}

/* ---- the scan ------------------------------------------------------------------------------ */

static void mark_word(scan_t *sc, uint64_t v)
{
	size_t lo = 0, hi = sc->n;

	if (v < sc->lo || v >= sc->hi)
		return;
	while (lo < hi) { /* the last candidate starting at or below v */
		size_t mid = lo + (hi - lo) / 2;

		if (sc->c[mid].start <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i-- > 0 && sc->maxend[i] > v;) {
		cand_t *c = &sc->c[i];

		if (c->end > v && !c->marked) {
			c->marked = true;
			sc->work[sc->nwork++] = i;
		}
	}
}

static void scan_words(scan_t *sc, const uint8_t *buf, size_t len)
{
	uint32_t ps = sc->db->s->ptrsize == 4 ? 4 : 8;

	for (size_t o = 0; o + ps <= len; o += ps) {
		uint64_t v = 0;

		memcpy(&v, buf + o, ps);
		mark_word(sc, v);
	}
	sc->words += len / ps;
	sc->bytes += len;
}

/* Scan [start, end) of the target's memory; holes are skipped a page at a time. */
static void scan_memory(scan_t *sc, uint64_t start, uint64_t end, uint8_t *buf)
{
	vdb_target_t *t = sc->db->t;

	start = (start + 7) & ~(uint64_t)7;
	while (start < end) {
		size_t want = end - start > SCAN_CHUNK ? SCAN_CHUNK : (size_t)(end - start);
		size_t got = t->ops->read(t, start, buf, want);

		scan_words(sc, buf, got);
		if (got == want) {
			start += want;
			continue;
		}
		start = ((start + got) | 4095) + 1; /* past the unreadable page */
	}
}

/* qsort, skipped when the array is already in order (one arena's records are). */
static void sort_maybe(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	for (size_t i = 1; i < n; i++) {
		if (cmp((char *)base + (i - 1) * size, (char *)base + i * size) > 0) {
			qsort(base, n, size, cmp);
			return;
		}
	}
}

static int range_cmp(const void *x, const void *y)
{
	const range_t *a = x, *b = y;

	return a->start < b->start ? -1 : a->start > b->start;
}

/* The memory not to take as roots: libvmem's metadata and the arenas' own ranges. */
static range_t *exclusions(leakrun_t *lr, size_t *n)
{
	const vsnap_t *s = lr->sc.db->s;
	range_t *seg = malloc((s->nsegs + 1) * sizeof(*seg));
	range_t *reg = malloc((s->nregions + 1) * sizeof(*reg));
	range_t *r = malloc((s->nregions + s->nsegs + 1) * sizeof(*r));
	size_t ns = 0, nr = 0, i = 0, j = 0, k = 0, m = 0;

	if (seg == NULL || reg == NULL || r == NULL) {
		free(seg);
		free(reg);
		free(r);
		return NULL;
	}
	for (size_t x = 0; x < s->nsegs; x++) {
		const vsnap_seg_rec_t *g = &s->segs[x];

		if (g->sg_type == VSNAP_ALLOC || g->sg_type == VSNAP_FREE) {
			seg[ns].start = g->sg_start;
			seg[ns++].end = g->sg_start + g->sg_extent;
		}
	}
	for (size_t x = 0; x < s->nregions; x++) {
		reg[nr].start = s->regions[x].rg_start;
		reg[nr++].end = s->regions[x].rg_start + s->regions[x].rg_size;
		lr->meta_bytes += s->regions[x].rg_size;
	}
	/* one arena's segments are in order already: sorting them would cost the most */
	sort_maybe(seg, ns, sizeof(*seg), range_cmp);
	qsort(reg, nr, sizeof(*reg), range_cmp);
	while (i < ns || j < nr)
		r[k++] = j >= nr || (i < ns && seg[i].start < reg[j].start) ? seg[i++] : reg[j++];
	free(seg);
	free(reg);
	for (i = 0; i < k; i++) { /* merge overlapping and touching ranges */
		if (m > 0 && r[i].start <= r[m - 1].end) {
			if (r[i].end > r[m - 1].end)
				r[m - 1].end = r[i].end;
		} else {
			r[m++] = r[i];
		}
	}
	*n = m;
	return r;
}

/* Where to start scanning a mapping: a thread's stack from its stack pointer up. */
static uint64_t scan_start(const vdb_target_t *t, const vdb_map_t *m)
{
	uint64_t start = m->start;

	for (size_t i = 0; i < t->nthreads; i++) {
		uint64_t sp = t->threads[i].sp;

		if (sp >= m->start && sp < m->end) {
			uint64_t s = sp >= m->start + RED_ZONE ? sp - RED_ZONE : m->start;

			if (start == m->start || s < start)
				start = s;
		}
	}
	return start;
}

static void scan_roots(leakrun_t *lr, uint8_t *buf)
{
	scan_t *sc = &lr->sc;
	vdb_target_t *t = sc->db->t;
	size_t nex = 0, e = 0;
	range_t *ex = exclusions(lr, &nex);

	if (ex == NULL)
		nex = 0;

	for (size_t i = 0; i < t->nmaps; i++) {
		const vdb_map_t *m = &t->maps[i];
		uint64_t pos;

		if ((m->prot & (VDB_PROT_R | VDB_PROT_W)) != (VDB_PROT_R | VDB_PROT_W) ||
		    (m->flags & VDB_MAP_NODUMP))
			continue;
		sc->mappings++;
		pos = scan_start(t, m);
		while (e < nex && ex[e].end <= pos)
			e++;
		for (size_t k = e; pos < m->end;) {
			if (k < nex && ex[k].start < m->end) {
				if (ex[k].start > pos)
					scan_memory(sc, pos, ex[k].start, buf);
				if (ex[k].end > pos)
					pos = ex[k].end;
				k++;
			} else {
				scan_memory(sc, pos, m->end, buf);
				break;
			}
		}
	}
	free(ex);
	for (size_t i = 0; i < t->nthreads; i++)
		for (size_t r = 0; r < t->threads[i].nregs; r++)
			mark_word(sc, t->threads[i].regs[r]);
}

/* Marked candidates that are memory of the process are roots too. */
static void scan_marked(scan_t *sc, uint8_t *buf)
{
	while (sc->nwork > 0) {
		const cand_t *c = &sc->c[sc->work[--sc->nwork]];
		const vsnap_seg_rec_t *g = &sc->db->s->segs[c->seg];

		if (vdb_map_of(sc->db->t, c->start) != NULL)
			scan_memory(sc, c->start, c->start + g->sg_size, buf);
	}
}

static int run_scan(leakrun_t *lr)
{
	scan_t *sc = &lr->sc;
	uint8_t *buf = malloc(SCAN_CHUNK);

	sort_maybe(sc->c, sc->n, sizeof(*sc->c), cand_cmp);
	sc->maxend = malloc((sc->n + 1) * sizeof(uint64_t));
	sc->work = malloc((sc->n + 1) * sizeof(size_t));
	if (buf == NULL || sc->maxend == NULL || sc->work == NULL) {
		free(buf);
		return -1;
	}
	sc->lo = sc->n > 0 ? sc->c[0].start : 0;
	for (size_t i = 0; i < sc->n; i++) {
		sc->maxend[i] =
		    i > 0 && sc->maxend[i - 1] > sc->c[i].end ? sc->maxend[i - 1] : sc->c[i].end;
		if (sc->c[i].end > sc->hi)
			sc->hi = sc->c[i].end;
	}
	scan_roots(lr, buf);
	scan_marked(sc, buf);
	free(buf);
	return 0;
}

/* ---- groups ------------------------------------------------------------------------------------
 */

static uint64_t group_size_key(const vsnap_seg_rec_t *g)
{
	return g->sg_stack != 0 ? 0 : g->sg_size;
}

static int leak_cmp(const void *x, const void *y)
{
	const vsnap_seg_rec_t *a = &cmp_db->s->segs[*(const size_t *)x];
	const vsnap_seg_rec_t *b = &cmp_db->s->segs[*(const size_t *)y];

	if (a->sg_arena != b->sg_arena)
		return a->sg_arena < b->sg_arena ? -1 : 1;
	if (a->sg_stack != b->sg_stack)
		return a->sg_stack < b->sg_stack ? -1 : 1;
	if (group_size_key(a) != group_size_key(b))
		return group_size_key(a) < group_size_key(b) ? -1 : 1;
	return a->sg_start < b->sg_start ? -1 : a->sg_start > b->sg_start;
}

static int group_cmp(const void *x, const void *y)
{
	const group_t *a = x, *b = y;

	if (a->bytes != b->bytes)
		return a->bytes > b->bytes ? -1 : 1;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	if (a->arena != b->arena)
		return a->arena < b->arena ? -1 : 1;
	return a->stack < b->stack ? -1 : a->stack > b->stack;
}

static int make_groups(leakrun_t *lr)
{
	vdb_t *db = lr->sc.db;
	const vsnap_seg_rec_t *segs = db->s->segs;

	cmp_db = db;
	qsort(lr->leaked, lr->nleaked, sizeof(size_t), leak_cmp);
	lr->groups = malloc((lr->nleaked + 1) * sizeof(group_t));
	if (lr->groups == NULL)
		return -1;
	for (size_t i = 0; i < lr->nleaked; i++) {
		const vsnap_seg_rec_t *g = &segs[lr->leaked[i]];
		group_t *gr = lr->ngroups > 0 ? &lr->groups[lr->ngroups - 1] : NULL;

		if (gr == NULL || gr->arena != g->sg_arena || gr->stack != g->sg_stack ||
		    gr->key2 != group_size_key(g)) {
			gr = &lr->groups[lr->ngroups++];
			memset(gr, 0, sizeof(*gr));
			gr->arena = g->sg_arena;
			gr->stack = g->sg_stack;
			gr->key2 = group_size_key(g);
			gr->first = i;
			gr->min = UINT64_MAX;
			gr->rep = lr->leaked[i];
		}
		gr->count++;
		gr->bytes += g->sg_size;
		if (g->sg_size < gr->min)
			gr->min = g->sg_size;
		if (g->sg_size > gr->max)
			gr->max = g->sg_size;
		/* the oldest member represents the group (as mdb) */
		if (g->sg_time < segs[gr->rep].sg_time)
			gr->rep = lr->leaked[i];
	}
	qsort(lr->groups, lr->ngroups, sizeof(group_t), group_cmp);
	return 0;
}

/* ---- output
 * --------------------------------------------------------------------------------------- */

static const char *arena_name(const vdb_t *db, uint32_t id)
{
	const vsnap_arena_t *a = vdb_arena_by_id(db, id);

	return a != NULL ? a->a.ar_name : "?";
}

static void mode_line(vdb_call_t *c, leakrun_t *lr)
{
	char h1[32], h2[32];

	if (!lr->scan_mode) {
		fprintf(c->fp,
		        "findleaks: snapshot: no process memory to scan, so every outstanding "
		        "allocation is listed\n");
	} else {
		fprintf(c->fp,
		        "findleaks: conservative scan of %zu mappings (%s) and the registers of "
		        "%zu threads; libvmem's metadata (%zu regions, %s) skipped\n",
		        lr->sc.mappings, vdb_human(lr->sc.bytes, h1, sizeof(h1)),
		        c->db->t->nthreads, c->db->s->nregions,
		        vdb_human(lr->meta_bytes, h2, sizeof(h2)));
	}
	for (int i = 0; i < lr->nnotes; i++)
		fprintf(c->fp, "findleaks: %s\n", lr->notes[i]);
}

static void print_member(vdb_call_t *c, size_t i)
{
	const vsnap_seg_rec_t *g = &c->db->s->segs[i];

	fprintf(c->fp, "    %016" PRIx64 " %-4s %016" PRIx64 " %016" PRIx64 " %10" PRIu64 "\n",
	        vdb_seg_addr(c->db, i), vdb_seg_type_name(g->sg_type), g->sg_start,
	        g->sg_start + g->sg_extent, g->sg_size);
}

static void print_text(vdb_call_t *c, leakrun_t *lr)
{
	vdb_t *db = c->db;
	uint64_t total = 0;
	size_t namew = 5;

	mode_line(c, lr);
	if (lr->ngroups == 0) {
		fprintf(c->fp, "findleaks: no memory leaks detected\n");
		return;
	}
	for (size_t i = 0; i < lr->ngroups; i++) {
		size_t w = strlen(arena_name(db, lr->groups[i].arena));

		if (w > namew)
			namew = w;
	}
	fprintf(c->fp, "%-16s %7s %-16s %-*s %s\n", "BYTES", "LEAKED", "VMEM_SEG", (int)namew,
	        "ARENA", "CALLER");
	for (size_t i = 0; i < lr->ngroups; i++) {
		const group_t *g = &lr->groups[i];
		const vdb_frames_t *fr = vdb_frames(db, g->stack);
		char bytes[48];

		if (g->min == g->max)
			snprintf(bytes, sizeof(bytes), "%" PRIu64, g->min);
		else
			snprintf(bytes, sizeof(bytes), "%" PRIu64 "-%" PRIu64, g->min, g->max);
		fprintf(c->fp, "%-16s %7zu %016" PRIx64 " %-*s %s\n", bytes, g->count,
		        vdb_seg_addr(db, g->rep), (int)namew, arena_name(db, g->arena),
		        fr != NULL && fr->who != NULL ? fr->who : "-");
		total += g->bytes;
	}
	fprintf(c->fp,
	        "------------------------------------------------------------------------\n");
	fprintf(c->fp, "%16s %7zu %s leak%s, %" PRIu64 " byte%s\n", "Total", lr->nleaked,
	        "vmem_seg", lr->nleaked == 1 ? "" : "s", total, total == 1 ? "" : "s");
	for (size_t i = 0; i < lr->ngroups; i++) {
		const group_t *g = &lr->groups[i];
		const vsnap_seg_rec_t *rep = &db->s->segs[g->rep];
		const vdb_frames_t *fr = vdb_frames(db, g->stack);

		fprintf(c->fp, "\nleak %zu: %zu segment%s, %" PRIu64 " byte%s, arena %s", i + 1,
		        g->count, g->count == 1 ? "" : "s", g->bytes, g->bytes == 1 ? "" : "s",
		        arena_name(db, g->arena));
		if (fr != NULL && vdb_seg_audited(db, rep))
			fprintf(c->fp,
			        "; the oldest allocated by thread %" PRIu64 " at %" PRIu64
			        ".%09" PRIu64 " s:\n",
			        rep->sg_thread, rep->sg_time / UINT64_C(1000000000),
			        rep->sg_time % UINT64_C(1000000000));
		else
			fprintf(c->fp, "; no stack recorded (%s)\n",
			        (db->s->flags & VSNAP_F_DEBUG) ? "none captured"
			                                       : "libvmem, not -debug");
		for (size_t k = 0; fr != NULL && k < fr->n; k++)
			fprintf(c->fp, "%17s%s\n", "", fr->f[k].text);
		if (lr->verbose)
			for (size_t k = g->first; k < g->first + g->count; k++)
				print_member(c, lr->leaked[k]);
	}
}

static void print_json(vdb_call_t *c, leakrun_t *lr)
{
	vdb_t *db = c->db;
	uint64_t total = 0;
	vdb_json_t j;

	vj_init(&j, c->fp);
	vj_obj(&j);
	vj_kstr(&j, "mode", lr->scan_mode ? "scan" : "outstanding");
	if (lr->scan_mode) {
		vj_key(&j, "scanned");
		vj_obj(&j);
		vj_ku64(&j, "mappings", lr->sc.mappings);
		vj_ku64(&j, "bytes", lr->sc.bytes);
		vj_ku64(&j, "threads", db->t->nthreads);
		vj_ku64(&j, "metadata_regions", db->s->nregions);
		vj_ku64(&j, "metadata_bytes", lr->meta_bytes);
		vj_obj_end(&j);
	}
	vj_key(&j, "notes");
	vj_arr(&j);
	for (int i = 0; i < lr->nnotes; i++)
		vj_str(&j, lr->notes[i]);
	vj_arr_end(&j);
	vj_key(&j, "groups");
	vj_arr(&j);
	for (size_t i = 0; i < lr->ngroups; i++) {
		const group_t *g = &lr->groups[i];
		const vdb_frames_t *fr = vdb_frames(db, g->stack);

		vj_obj(&j);
		vj_kstr(&j, "arena", arena_name(db, g->arena));
		vj_ku64(&j, "stack", g->stack);
		vj_ku64(&j, "count", g->count);
		vj_ku64(&j, "bytes", g->bytes);
		vj_ku64(&j, "min_size", g->min);
		vj_ku64(&j, "max_size", g->max);
		vj_kstr(&j, "caller", fr != NULL ? fr->who : NULL);
		vj_key(&j, "representative");
		vdb_seg_json(db, &j, g->rep, true);
		if (lr->verbose) {
			vj_key(&j, "members");
			vj_arr(&j);
			for (size_t k = g->first; k < g->first + g->count; k++)
				vdb_seg_json(db, &j, lr->leaked[k], false);
			vj_arr_end(&j);
		}
		vj_obj_end(&j);
		total += g->bytes;
	}
	vj_arr_end(&j);
	vj_key(&j, "total");
	vj_obj(&j);
	vj_ku64(&j, "count", lr->nleaked);
	vj_ku64(&j, "bytes", total);
	vj_obj_end(&j);
	vj_obj_end(&j);
	vj_end(&j);
}

static void leakrun_free(leakrun_t *lr)
{
	free(lr->sc.c);
	free(lr->sc.maxend);
	free(lr->sc.work);
	free(lr->leaked);
	free(lr->groups);
}

int dcmd_findleaks(vdb_call_t *c)
{
	vdb_t *db = c->db;
	leakrun_t lr;
	size_t *only = NULL, nonly = 0;
	bool all;
	vdb_opt_t o = {0, 0, NULL};
	int ch, rc = -1;

	memset(&lr, 0, sizeof(lr));
	lr.sc.db = db;
	while ((ch = vdb_getopt(c, &o, "v")) != -1) {
		if (ch == 'v') {
			lr.verbose = true;
			continue;
		}
		if (ch == 1)
			vdb_err("::findleaks: unexpected argument '%s' (an arena goes before ::)",
			        o.arg);
		return -1;
	}
	if (c->have_input && vdb_arenas_of_call(c, &only, &nonly, &all) != 0)
		return -1;
	lr.scan_mode = db->t->kind != VDB_SNAP && db->t->ops != NULL;
	if (collect_candidates(&lr, only, nonly) != 0)
		goto out;
	if (lr.scan_mode && run_scan(&lr) != 0)
		goto out;
	lr.leaked = malloc((lr.sc.n + 1) * sizeof(size_t));
	if (lr.leaked == NULL)
		goto out;
	for (size_t i = 0; i < lr.sc.n; i++)
		if (!lr.sc.c[i].marked)
			lr.leaked[lr.nleaked++] = lr.sc.c[i].seg;
	if (make_groups(&lr) != 0)
		goto out;
	/* remembered for ::walk leak, in report order */
	db->leaks.n = 0;
	db->leaks_valid = true;
	for (size_t i = 0; i < lr.ngroups; i++)
		for (size_t k = lr.groups[i].first; k < lr.groups[i].first + lr.groups[i].count;
		     k++)
			vdb_vals_push(&db->leaks, VAL_SEG, vdb_seg_addr(db, lr.leaked[k]),
			              lr.leaked[k]);
	if (c->pipe != NULL) {
		for (size_t i = 0; i < db->leaks.n; i++)
			vdb_vals_push(c->pipe, VAL_SEG, db->leaks.v[i].addr, db->leaks.v[i].idx);
	} else if (c->json) {
		print_json(c, &lr);
	} else {
		print_text(c, &lr);
	}
	rc = 0;
out:
	if (rc != 0)
		vdb_err("::findleaks: out of memory");
	free(only);
	leakrun_free(&lr);
	return rc;
}
