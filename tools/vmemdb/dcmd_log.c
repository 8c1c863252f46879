/*
 * ::vmem_log (the debug library's transaction log) and ::whatis (what holds
 * an address: the arenas and segments containing it, innermost first, with
 * the audit record; else libvmem's metadata or, for a process, a mapping).
 */
#include "vmemdb.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {"?",     "alloc",  "xalloc", "free",
                                       "xfree", "qalloc", "qfree",  "badfree"};

#define NOPS (sizeof(op_names) / sizeof(op_names[0]))

static const char *op_name(uint8_t op)
{
	return op < NOPS ? op_names[op] : "?";
}

static const char *arena_name(const vdb_t *db, uint32_t id)
{
	const vsnap_arena_t *a = vdb_arena_by_id(db, id);

	return a != NULL ? a->a.ar_name : "?";
}

static void print_frames(vdb_t *db, FILE *fp, uint32_t stack, int indent)
{
	const vdb_frames_t *fr = vdb_frames(db, stack);

	for (size_t i = 0; fr != NULL && i < fr->n; i++)
		fprintf(fp, "%*s%s\n", indent, "", fr->f[i].text);
}

static void json_frames(vdb_t *db, vdb_json_t *j, const char *key, uint32_t stack)
{
	const vdb_frames_t *fr = vdb_frames(db, stack);

	vj_key(j, key);
	vj_arr(j);
	for (size_t i = 0; fr != NULL && i < fr->n; i++)
		vj_str(j, fr->f[i].text);
	vj_arr_end(j);
}

/* ---- ::vmem_log ------------------------------------------------------------------------ */

typedef struct log_filter {
	bool verbose, have_thread;
	uint64_t thread, limit;
	int op; /* 0: any */
	const vdb_val_t *in;
	size_t nin;
	bool have_input;
} log_filter_t;

static bool tx_matches(const vdb_t *db, const log_filter_t *f, const vsnap_txrec_t *tx)
{
	if (f->have_thread && tx->tx_tid != f->thread)
		return false;
	if (f->op != 0 && tx->tx_op != f->op)
		return false;
	if (!f->have_input)
		return true;
	for (size_t i = 0; i < f->nin; i++) {
		const vdb_val_t *v = &f->in[i];
		uint64_t a = v->addr, len = tx->tx_size ? tx->tx_size : 1;

		if (v->kind == VAL_ARENA) {
			if (tx->tx_arena == db->s->arenas[v->idx].a.ar_id)
				return true;
			continue;
		}
		if (v->kind == VAL_SEG)
			a = db->s->segs[v->idx].sg_start;
		if (a >= tx->tx_addr && a - tx->tx_addr < len)
			return true;
	}
	return false;
}

static int log_options(vdb_call_t *c, log_filter_t *f)
{
	vdb_opt_t o = {0, 0, NULL};
	int ch;

	memset(f, 0, sizeof(*f));
	f->limit = UINT64_MAX;
	while ((ch = vdb_getopt(c, &o, "vt:o:n:")) != -1) {
		bool ok = true;

		switch (ch) {
		case 'v':
			f->verbose = true;
			break;
		case 't':
			ok = f->have_thread = vdb_parse_num(o.arg, 10, false, &f->thread);
			break;
		case 'n':
			ok = vdb_parse_num(o.arg, 10, false, &f->limit);
			break;
		case 'o':
			ok = false;
			for (size_t k = 1; k < NOPS; k++)
				if (strcmp(o.arg, op_names[k]) == 0) {
					f->op = (int)k;
					ok = true;
				}
			break;
		case 1:
			vdb_err("::vmem_log: unexpected argument '%s'", o.arg);
			return -1;
		default:
			return -1;
		}
		if (!ok) {
			vdb_err("::vmem_log: bad value '%s' for -%c", o.arg, ch);
			return -1;
		}
	}
	f->in = c->in;
	f->nin = c->nin;
	f->have_input = c->have_input;
	return 0;
}

static void log_row(vdb_call_t *c, const log_filter_t *f, const vsnap_txrec_t *tx)
{
	vdb_t *db = c->db;
	const vdb_frames_t *fr = vdb_frames(db, tx->tx_stack);

	fprintf(
	    c->fp, "%-10" PRIu64 " %16" PRIx64 " %8u %-7s %-16s %016" PRIx64 " %10" PRIu64 " %s\n",
	    tx->tx_seq, tx->tx_time, tx->tx_tid, op_name(tx->tx_op), arena_name(db, tx->tx_arena),
	    tx->tx_addr, tx->tx_size, fr != NULL && fr->who != NULL ? fr->who : "");
	if (!f->verbose)
		return;
	print_frames(db, c->fp, tx->tx_stack, 11);
	if (tx->tx_stack2 != 0) {
		fprintf(c->fp, "%11sallocated by:\n", "");
		print_frames(db, c->fp, tx->tx_stack2, 13);
	}
	fputc('\n', c->fp);
}

int dcmd_vmem_log(vdb_call_t *c)
{
	vdb_t *db = c->db;
	log_filter_t f;
	vdb_json_t j;
	uint64_t shown = 0;

	if (log_options(c, &f) != 0)
		return -1;
	if (c->json && c->pipe == NULL) {
		vj_init(&j, c->fp);
		vj_obj(&j);
		vj_ku64(&j, "records", db->s->nlog);
		vj_key(&j, "log");
		vj_arr(&j);
	} else if (c->pipe == NULL) {
		if (db->s->nlog == 0) {
			fprintf(c->fp, "no transaction log: %s\n",
			        (db->s->flags & VSNAP_F_DEBUG)
			            ? "it is empty (VMEM_LOG_SIZE=0?)"
			            : "the target uses libvmem, not libvmem-debug");
			return 0;
		}
		fprintf(c->fp, "%-10s %16s %8s %-7s %-16s %-16s %10s %s\n", "SEQ", "TIMESTAMP",
		        "THREAD", "OP", "ARENA", "ADDR", "SIZE", "CALLER");
	}
	for (size_t i = db->s->nlog; i-- > 0 && shown < f.limit;) {
		const vsnap_txrec_t *tx = &db->s->log[i];

		if (!tx_matches(db, &f, tx))
			continue;
		shown++;
		if (c->pipe != NULL) {
			vdb_vals_push(c->pipe, VAL_ADDR, tx->tx_addr, 0);
		} else if (c->json) {
			vj_obj(&j);
			vj_ku64(&j, "seq", tx->tx_seq);
			vj_ku64(&j, "time", tx->tx_time);
			vj_ku64(&j, "thread", tx->tx_tid);
			vj_kstr(&j, "op", op_name(tx->tx_op));
			vj_kstr(&j, "arena", arena_name(db, tx->tx_arena));
			vj_kaddr(&j, "addr", tx->tx_addr);
			vj_ku64(&j, "size", tx->tx_size);
			vj_ku64(&j, "stack", tx->tx_stack);
			if (f.verbose) {
				json_frames(db, &j, "frames", tx->tx_stack);
				if (tx->tx_stack2 != 0)
					json_frames(db, &j, "alloc_frames", tx->tx_stack2);
			}
			vj_obj_end(&j);
		} else {
			log_row(c, &f, tx);
		}
	}
	if (c->json && c->pipe == NULL) {
		vj_arr_end(&j);
		vj_obj_end(&j);
		vj_end(&j);
	}
	return 0;
}

/* ---- ::whatis ---------------------------------------------------------------------------- */

/* A child arena's imported span starting at start, importing from arena a (its name or NULL). */
static const char *importer_of(const vdb_t *db, const vsnap_arena_t *a, uint64_t start)
{
	for (size_t i = 0; i < db->s->narenas; i++) {
		const vsnap_arena_t *ch = &db->s->arenas[i];

		if (ch->a.ar_source_id != a->a.ar_id)
			continue;
		for (size_t k = ch->seg_first; k < ch->seg_first + ch->seg_count; k++) {
			const vsnap_seg_rec_t *g = &db->s->segs[k];

			if (g->sg_type == VSNAP_SPAN && (g->sg_flags & VSNAP_F_IMPORTED) &&
			    g->sg_start == start)
				return ch->a.ar_name;
		}
	}
	return NULL;
}

/* The cache of arena a whose objects are `size` bytes, or NULL. */
static const char *cache_of(const vdb_t *db, const vsnap_arena_t *a, uint64_t size)
{
	for (size_t q = a->qc_first; q < a->qc_first + a->qc_count && q < db->s->nqcaches; q++)
		if (db->s->qcaches[q].qr_kstat[0] == size)
			return db->s->qcaches[q].qr_name;
	return NULL;
}

static const char *region_kind(uint32_t k)
{
	static const char *const names[] = {"?",           "segment records", "arenas",
	                                    "hash tables", "quantum caches",  "debug data",
	                                    "other"};

	return k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

/*
 * The magazine object containing addr, when the innermost record of arena a
 * there (g) is the slab it belongs to, or the object itself (one the arena
 * served directly); else NULL.
 */
static const vdb_magobj_t *magazine_of(const vdb_t *db, const vsnap_arena_t *a,
                                       const vsnap_seg_rec_t *g, uint64_t addr)
{
	const vdb_magobj_t *m = vdb_magobj(db, a->a.ar_id, addr);

	if (m == NULL || g->sg_type != VSNAP_ALLOC)
		return NULL;
	return (g->sg_flags & VSNAP_F_SLAB) || g->sg_start == m->addr ? m : NULL;
}

static const char *magazine_cache(const vdb_t *db, const vdb_magobj_t *m)
{
	return m->qc < db->s->nqcaches ? db->s->qcaches[m->qc].qr_name : "?";
}

/* One containing segment, as a line of text (and the audit record with it). */
static void whatis_text(vdb_call_t *c, uint64_t addr, const vsnap_arena_t *a, size_t k)
{
	vdb_t *db = c->db;
	const vsnap_seg_rec_t *g = &db->s->segs[k];
	const char *imp = NULL, *cache = NULL;
	const vdb_magobj_t *m = magazine_of(db, a, g, addr);

	if (m != NULL) { /* described by the object, as a held one would be */
		fprintf(c->fp,
		        "%" PRIx64 " is %" PRIx64 "+%" PRIx64
		        ", free in a magazine of the %s cache of the %s vmem arena%s (vmem_seg "
		        "%" PRIx64 ", %" PRIu64 " bytes)\n",
		        addr, m->addr, addr - m->addr, magazine_cache(db, m), a->a.ar_name,
		        (g->sg_flags & VSNAP_F_SLAB) ? "" : ", served by the arena directly",
		        vdb_seg_addr(db, k), m->size);
		return;
	}
	fprintf(c->fp, "%" PRIx64 " is %" PRIx64 "+%" PRIx64 ", ", addr, g->sg_start,
	        addr - g->sg_start);
	switch (g->sg_type) {
	case VSNAP_CACHED:
		cache = cache_of(db, a, g->sg_extent);
		imp = importer_of(db, a, g->sg_start);
		fprintf(c->fp, "allocated from the %s cache of the %s vmem arena",
		        cache ? cache : "?", a->a.ar_name);
		if (imp != NULL)
			fprintf(c->fp, " (a span imported by %s)", imp);
		break;
	case VSNAP_ALLOC:
		if (g->sg_flags & VSNAP_F_SLAB) {
			fprintf(c->fp, "free in a quantum-cache slab of the %s vmem arena",
			        a->a.ar_name);
			break;
		}
		imp = importer_of(db, a, g->sg_start);
		fprintf(c->fp, "allocated from the %s vmem arena", a->a.ar_name);
		if (imp != NULL)
			fprintf(c->fp, " (a span imported by %s)", imp);
		break;
	case VSNAP_FREE:
		fprintf(c->fp, "free in the %s vmem arena", a->a.ar_name);
		break;
	default:
		fprintf(c->fp, "in a span of the %s vmem arena", a->a.ar_name);
	}
	fprintf(c->fp, " (vmem_seg %" PRIx64 ", %" PRIu64 " bytes)\n", vdb_seg_addr(db, k),
	        g->sg_size);
	if (vdb_seg_audited(db, g) && imp == NULL) {
		fprintf(c->fp,
		        "    allocated by thread %" PRIu64 " at %" PRIu64 ".%09" PRIu64 " s:\n",
		        g->sg_thread, g->sg_time / UINT64_C(1000000000),
		        g->sg_time % UINT64_C(1000000000));
		print_frames(db, c->fp, g->sg_stack, 17);
	}
}

/* The newest log record of arena a about the address, or NULL. */
static const vsnap_txrec_t *last_tx(const vdb_t *db, const vsnap_arena_t *a, uint64_t addr)
{
	for (size_t i = db->s->nlog; i-- > 0;) {
		const vsnap_txrec_t *tx = &db->s->log[i];
		uint64_t len = tx->tx_size ? tx->tx_size : 1;

		if (tx->tx_arena == a->a.ar_id && addr >= tx->tx_addr && addr - tx->tx_addr < len)
			return tx;
	}
	return NULL;
}

static void whatis_one(vdb_call_t *c, vdb_json_t *j, uint64_t addr)
{
	vdb_t *db = c->db;
	bool found = false;
	const vdb_magobj_t *mag = NULL;
	const vsnap_arena_t *mag_arena = NULL;

	if (c->json) {
		vj_obj(j);
		vj_kaddr(j, "addr", addr);
		vj_key(j, "segments");
		vj_arr(j);
	}
	/* innermost first: deeper arenas are later in tree order */
	for (size_t t = db->s->narenas; t-- > 0;) {
		const vsnap_arena_t *a = &db->s->arenas[db->tree[t]];
		size_t k = vdb_seg_containing(db, a, addr);
		const vsnap_txrec_t *tx;

		if (k == SIZE_MAX)
			continue;
		found = true;
		if (c->json) {
			vdb_seg_json(db, j, k, true);
			if (mag == NULL &&
			    (mag = magazine_of(db, a, &db->s->segs[k], addr)) != NULL)
				mag_arena = a;
			continue;
		}
		whatis_text(c, addr, a, k);
		if (db->s->segs[k].sg_type == VSNAP_FREE && (tx = last_tx(db, a, addr)) != NULL)
			fprintf(c->fp,
			        "    last logged: %s of %" PRIx64 " (%" PRIu64
			        " bytes) by thread %u, seq %" PRIu64 "\n",
			        op_name(tx->tx_op), tx->tx_addr, tx->tx_size, tx->tx_tid,
			        tx->tx_seq);
	}
	if (c->json)
		vj_arr_end(j);
	if (c->json && mag != NULL) {
		vj_key(j, "magazine");
		vj_obj(j);
		vj_kstr(j, "cache", magazine_cache(db, mag));
		vj_kstr(j, "arena", mag_arena->a.ar_name);
		vj_kaddr(j, "start", mag->addr);
		vj_ku64(j, "size", mag->size);
		vj_obj_end(j);
	}
	for (size_t i = 0; i < db->s->nregions && !found; i++) {
		const vsnap_region_rec_t *r = &db->s->regions[i];

		if (addr < r->rg_start || addr - r->rg_start >= r->rg_size)
			continue;
		found = true;
		if (c->json) {
			vj_key(j, "region");
			vj_obj(j);
			vj_kaddr(j, "start", r->rg_start);
			vj_ku64(j, "size", r->rg_size);
			vj_kstr(j, "kind", region_kind(r->rg_kind));
			vj_obj_end(j);
		} else {
			fprintf(c->fp,
			        "%" PRIx64 " is %" PRIx64 "+%" PRIx64
			        ", in libvmem's metadata (%s, a region of %" PRIu64 " bytes)\n",
			        addr, r->rg_start, addr - r->rg_start, region_kind(r->rg_kind),
			        r->rg_size);
		}
	}
	if (!found) {
		const vdb_map_t *m = vdb_map_of(db->t, addr);

		if (m != NULL && c->json) {
			vj_key(j, "mapping");
			vj_obj(j);
			vj_kaddr(j, "start", m->start);
			vj_kaddr(j, "end", m->end);
			vj_kstr(j, "path", m->path);
			vj_obj_end(j);
		} else if (m != NULL) {
			fprintf(c->fp,
			        "%" PRIx64 " is %" PRIx64 "+%" PRIx64 ", in the mapping [%" PRIx64
			        ", %" PRIx64 ") %c%c%c %s\n",
			        addr, m->start, addr - m->start, m->start, m->end,
			        (m->prot & VDB_PROT_R) ? 'r' : '-',
			        (m->prot & VDB_PROT_W) ? 'w' : '-',
			        (m->prot & VDB_PROT_X) ? 'x' : '-', m->path ? m->path : "[anon]");
		} else if (!c->json) {
			fprintf(c->fp, "%" PRIx64 " is in no arena%s\n", addr,
			        db->t->kind == VDB_SNAP
			            ? " and no metadata region (a snapshot has no "
			              "other memory)"
			            : ", metadata region or mapping");
		}
	}
	if (c->json)
		vj_obj_end(j);
}

int dcmd_whatis(vdb_call_t *c)
{
	vdb_t *db = c->db;
	vdb_json_t j;
	vdb_opt_t o = {0, 0, NULL};
	int ch;

	while ((ch = vdb_getopt(c, &o, "")) != -1) {
		if (ch == '?')
			return -1;
		vdb_err("::whatis: unexpected argument '%s' (the address goes before ::)", o.arg);
		return -1;
	}
	if (!c->have_input) {
		vdb_err("::whatis needs an address: ADDR::whatis");
		return -1;
	}
	if (c->json) {
		vj_init(&j, c->fp);
		vj_arr(&j);
	}
	for (size_t i = 0; i < c->nin; i++) {
		const vdb_val_t *v = &c->in[i];
		uint64_t addr = v->addr;

		if (v->kind == VAL_SEG)
			addr = db->s->segs[v->idx].sg_start;
		if (v->kind == VAL_ARENA && !c->json) {
			fprintf(c->fp, "%" PRIx64 " is the %s vmem arena (its vmem_t)\n", addr,
			        db->s->arenas[v->idx].a.ar_name);
			continue;
		}
		if (c->pipe != NULL)
			vdb_vals_push(c->pipe, VAL_ADDR, addr, 0);
		else
			whatis_one(c, &j, addr);
	}
	if (c->json) {
		vj_arr_end(&j);
		vj_end(&j);
	}
	return 0;
}
