/*
 * ::vmem (the arena table), ::walk (walkers over arenas and segments),
 * ::kstat (every counter, in vmem_kstat_print()'s form) and ::status.
 */
#include "vmemdb.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* vmem_kstat_t's fields without the vk_ prefix, and vmem_qcache_kstat_t's after qk_name. */
static const char *const arena_stats[VSNAP_NKSTAT] = {
    "mem_inuse",     "mem_import",    "mem_total", "source_id",      "alloc",
    "free",          "wait",          "fail",      "lookup",         "search",
    "populate_wait", "populate_fail", "contains",  "contains_search"};

static const char *const cache_stats[VSNAP_NQKSTAT] = {
    "objsize",     "slabsize",    "alloc",
    "free",        "alloc_miss",  "free_miss",
    "depot_alloc", "depot_free",  "depot_contention",
    "depot_full",  "depot_empty", "mag_rounds",
    "slabs",       "slab_create", "slab_destroy",
    "slab_out",    "direct",      "reaps"};

/* The cache counters every version-1 root describes: all a process or a core whose
 * root predates the description of magazines (qk_partial) can show. */
static const bool cache_known_remote[VSNAP_NQKSTAT] = {
    [0] = true, [1] = true, [12] = true, [15] = true};

/* vmem_error_kind_t names, as vmem_kstat_print() prints them (index = kind). */
static const char *const error_names[] = {
    NULL,          "bad_free",     "double_free",  "interior_free", "size_mismatch", "wrong_arena",
    "free_xalloc", "xfree_cached", "destroy_busy", "leak",          "panic"};

#define NERROR_NAMES (sizeof(error_names) / sizeof(error_names[0]))

enum { K_INUSE = 0, K_IMPORT = 1, K_TOTAL = 2, K_SOURCE = 3, K_ALLOC = 4, K_FREE = 5, K_FAIL = 7 };

/* ---- which arenas a call is about ------------------------------------------------------ */

int vdb_arenas_of_call(vdb_call_t *c, size_t **idx, size_t *n, bool *all)
{
	vdb_t *db = c->db;
	size_t cnt = 0;

	*all = !c->have_input;
	*idx = malloc((c->have_input ? c->nin : db->s->narenas) * sizeof(size_t) + 1);
	if (*idx == NULL)
		return -1;
	if (!c->have_input) {
		if (db->s->narenas != 0) /* db->tree may be NULL then */
			memcpy(*idx, db->tree, db->s->narenas * sizeof(size_t));
		*n = db->s->narenas;
		return 0;
	}
	for (size_t i = 0; i < c->nin; i++) {
		const vdb_val_t *v = &c->in[i];
		const vsnap_arena_t *a = NULL;

		if (v->kind == VAL_ARENA)
			a = &db->s->arenas[v->idx];
		else if (v->kind == VAL_ADDR)
			a = vdb_arena_by_addr(db, v->addr);
		else if (v->kind == VAL_SEG)
			a = vdb_seg_arena(db, v->idx);
		if (a == NULL) {
			vdb_err("::%s: %" PRIx64 " is not an arena", c->argv[0], v->addr);
			free(*idx);
			*idx = NULL;
			return -1;
		}
		(*idx)[cnt++] = vdb_arena_index(db, a);
	}
	*n = cnt;
	return 0;
}

/* ---- ::vmem --------------------------------------------------------------------------- */

static void vmem_json_row(vdb_json_t *j, const vsnap_arena_t *a)
{
	const uint64_t *k = a->a.ar_kstat;

	vj_obj(j);
	vj_kaddr(j, "addr", a->a.ar_addr);
	vj_ku64(j, "id", a->a.ar_id);
	vj_kstr(j, "name", a->a.ar_name);
	vj_ku64(j, "source_id", a->a.ar_source_id);
	vj_ku64(j, "depth", (uint64_t)a->depth);
	vj_ku64(j, "quantum", a->a.ar_quantum);
	vj_ku64(j, "qcache_max", a->a.ar_qcache_max);
	vj_ku64(j, "nqcache", a->a.ar_nqcache);
	vj_ku64(j, "flags", a->a.ar_cflags);
	vj_ku64(j, "inuse", k[K_INUSE]);
	vj_ku64(j, "import", k[K_IMPORT]);
	vj_ku64(j, "total", k[K_TOTAL]);
	vj_ku64(j, "succeed", k[K_ALLOC]);
	vj_ku64(j, "free", k[K_FREE]);
	vj_ku64(j, "fail", k[K_FAIL]);
	vj_obj_end(j);
}

int dcmd_vmem(vdb_call_t *c)
{
	vdb_t *db = c->db;
	size_t *idx, n, namew = 22;
	bool all;
	vdb_opt_t o = {0, 0, NULL};
	int ch;

	while ((ch = vdb_getopt(c, &o, "")) != -1) {
		if (ch == '?')
			return -1;
		vdb_err("::vmem: unexpected argument '%s'", o.arg);
		return -1;
	}
	if (vdb_arenas_of_call(c, &idx, &n, &all) != 0)
		return -1;
	if (c->pipe != NULL) {
		for (size_t i = 0; i < n; i++)
			vdb_vals_push(c->pipe, VAL_ARENA, db->s->arenas[idx[i]].a.ar_addr, idx[i]);
	} else if (c->json) {
		vdb_json_t j;

		vj_init(&j, c->fp);
		vj_arr(&j);
		for (size_t i = 0; i < n; i++)
			vmem_json_row(&j, &db->s->arenas[idx[i]]);
		vj_arr_end(&j);
		vj_end(&j);
	} else {
		for (size_t i = 0; i < n; i++) {
			const vsnap_arena_t *a = &db->s->arenas[idx[i]];
			size_t w = 2 * (size_t)a->depth + strlen(a->a.ar_name) + 1;

			if (w > namew)
				namew = w;
		}
		fprintf(c->fp, "%-16s %-*s %10s %12s %9s %5s\n", "ADDR", (int)namew, "NAME",
		        "INUSE", "TOTAL", "SUCCEED", "FAIL");
		for (size_t i = 0; i < n; i++) {
			const vsnap_arena_t *a = &db->s->arenas[idx[i]];
			const uint64_t *k = a->a.ar_kstat;
			char name[VSNAP_NAMELEN + 160];

			snprintf(name, sizeof(name), "%*s%s", 2 * (a->depth < 64 ? a->depth : 64),
			         "", a->a.ar_name);
			fprintf(c->fp,
			        "%016" PRIx64 " %-*s %10" PRIu64 " %12" PRIu64 " %9" PRIu64
			        " %5" PRIu64 "\n",
			        a->a.ar_addr, (int)namew, name, k[K_INUSE], k[K_TOTAL], k[K_ALLOC],
			        k[K_FAIL]);
		}
	}
	free(idx);
	return 0;
}

/* ---- ::walk ---------------------------------------------------------------------------- */

typedef struct walker {
	const char *name;
	int type; /* 0: every record; else the VSNAP_* type */
} walker_t;

static const walker_t seg_walkers[] = {{"vmem_seg", 0},
                                       {"vmem_alloc", VSNAP_ALLOC},
                                       {"vmem_free", VSNAP_FREE},
                                       {"vmem_span", VSNAP_SPAN},
                                       {"vmem_cached", VSNAP_CACHED}};

/* The arena and its importers, depth first (the subtree in tree order). */
static void walk_subtree(vdb_t *db, size_t root, vdb_vals_t *out)
{
	size_t pos = 0;
	int depth = db->s->arenas[root].depth;

	while (pos < db->s->narenas && db->tree[pos] != root)
		pos++;
	for (size_t i = pos; i < db->s->narenas; i++) {
		const vsnap_arena_t *a = &db->s->arenas[db->tree[i]];

		if (i > pos && a->depth <= depth)
			break;
		vdb_vals_push(out, VAL_ARENA, a->a.ar_addr, db->tree[i]);
	}
}

static int walk_collect(vdb_call_t *c, const char *name, const char *arena, vdb_vals_t *out)
{
	vdb_t *db = c->db;
	const walker_t *w = NULL;
	size_t *idx = NULL, n;
	bool all;

	if (arena != NULL) {
		const vsnap_arena_t *a = vdb_arena_lookup(db, arena);

		if (a == NULL) {
			vdb_err("::walk: no arena '%s'", arena);
			return -1;
		}
		idx = malloc(sizeof(size_t));
		if (idx == NULL)
			return -1;
		idx[0] = vdb_arena_index(db, a);
		n = 1;
		all = false;
	} else if (strcmp(name, "leak") != 0 && vdb_arenas_of_call(c, &idx, &n, &all) != 0) {
		return -1;
	}
	if (strcmp(name, "vmem") == 0) {
		if (all)
			for (size_t i = 0; i < db->s->narenas; i++)
				vdb_vals_push(out, VAL_ARENA, db->s->arenas[db->tree[i]].a.ar_addr,
				              db->tree[i]);
		else
			for (size_t i = 0; i < n; i++)
				walk_subtree(db, idx[i], out);
		free(idx);
		return 0;
	}
	if (strcmp(name, "leak") == 0) {
		if (!db->leaks_valid) {
			vdb_err("::walk leak: run ::findleaks first");
			return -1;
		}
		for (size_t i = 0; i < db->leaks.n; i++)
			vdb_vals_push(out, VAL_SEG, db->leaks.v[i].addr, db->leaks.v[i].idx);
		return 0;
	}
	for (size_t i = 0; i < sizeof(seg_walkers) / sizeof(seg_walkers[0]); i++)
		if (strcmp(seg_walkers[i].name, name) == 0)
			w = &seg_walkers[i];
	if (w == NULL) {
		vdb_err("::walk: no walker '%s' (vmem, vmem_seg, vmem_alloc, vmem_free, vmem_span, "
		        "vmem_cached, leak)",
		        name);
		free(idx);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const vsnap_arena_t *a = &db->s->arenas[idx[i]];

		for (size_t k = a->seg_first; k < a->seg_first + a->seg_count; k++)
			if (w->type == 0 || db->s->segs[k].sg_type == w->type)
				vdb_vals_push(out, VAL_SEG, vdb_seg_addr(db, k), k);
	}
	free(idx);
	return 0;
}

int dcmd_walk(vdb_call_t *c)
{
	vdb_vals_t local = {NULL, 0, 0}, *out = c->pipe != NULL ? c->pipe : &local;
	const char *name = NULL, *arena = NULL;
	vdb_opt_t o = {0, 0, NULL};
	int ch;

	while ((ch = vdb_getopt(c, &o, "")) != -1) {
		if (ch == '?')
			return -1;
		if (name == NULL)
			name = o.arg;
		else if (arena == NULL)
			arena = o.arg;
		else {
			vdb_err("::walk: unexpected argument '%s'", o.arg);
			return -1;
		}
	}
	if (name == NULL) {
		vdb_err("::walk: which walker? (vmem, vmem_seg, vmem_alloc, vmem_free, vmem_span, "
		        "vmem_cached, leak)");
		return -1;
	}
	if (walk_collect(c, name, arena, out) != 0) {
		vdb_vals_free(&local);
		return -1;
	}
	if (c->pipe == NULL && c->json) {
		vdb_json_t j;

		vj_init(&j, c->fp);
		vj_obj(&j);
		vj_kstr(&j, "walker", name);
		vj_key(&j, "items");
		vj_arr(&j);
		for (size_t i = 0; i < local.n; i++) {
			const vdb_val_t *v = &local.v[i];

			vj_obj(&j);
			vj_kaddr(&j, "addr", v->addr);
			if (v->kind == VAL_SEG) {
				const vsnap_seg_rec_t *g = &c->db->s->segs[v->idx];
				const vsnap_arena_t *a = vdb_arena_by_id(c->db, g->sg_arena);

				vj_kstr(&j, "arena", a != NULL ? a->a.ar_name : NULL);
				vj_kstr(&j, "type", vdb_seg_type_long(g->sg_type));
				vj_kaddr(&j, "start", g->sg_start);
				vj_ku64(&j, "size", g->sg_size);
			} else {
				vj_kstr(&j, "arena", c->db->s->arenas[v->idx].a.ar_name);
			}
			vj_obj_end(&j);
		}
		vj_arr_end(&j);
		vj_obj_end(&j);
		vj_end(&j);
	} else if (c->pipe == NULL) {
		for (size_t i = 0; i < local.n; i++)
			fprintf(c->fp, "%" PRIx64 "\n", local.v[i].addr);
	}
	vdb_vals_free(&local);
	return 0;
}

/* ---- ::kstat ----------------------------------------------------------------------------- */

static void kstat_text(vdb_call_t *c, const vsnap_arena_t *a)
{
	const vsnap_t *s = c->db->s;
	bool partial = c->db->t->qk_partial;

	for (int i = 0; i < VSNAP_NKSTAT; i++)
		fprintf(c->fp, "vmem:%u:%s:%s\t%" PRIu64 "\n", a->a.ar_id, a->a.ar_name,
		        arena_stats[i], a->a.ar_kstat[i]);
	for (size_t q = a->qc_first; q < a->qc_first + a->qc_count && q < s->nqcaches; q++)
		for (int i = 0; i < VSNAP_NQKSTAT; i++)
			if (!partial || cache_known_remote[i])
				fprintf(c->fp, "vmem:%u:%s:%s\t%" PRIu64 "\n", a->a.ar_id,
				        s->qcaches[q].qr_name, cache_stats[i],
				        s->qcaches[q].qr_kstat[i]);
}

static void kstat_json_arena(vdb_call_t *c, vdb_json_t *j, const vsnap_arena_t *a)
{
	const vsnap_t *s = c->db->s;
	bool partial = c->db->t->qk_partial;

	vj_obj(j);
	vj_ku64(j, "id", a->a.ar_id);
	vj_kstr(j, "name", a->a.ar_name);
	vj_ku64(j, "source_id", a->a.ar_source_id);
	vj_ku64(j, "depth", (uint64_t)a->depth);
	vj_ku64(j, "flags", a->a.ar_cflags);
	vj_ku64(j, "quantum", a->a.ar_quantum);
	vj_key(j, "kstat");
	vj_obj(j);
	for (int i = 0; i < VSNAP_NKSTAT; i++)
		vj_ku64(j, arena_stats[i], a->a.ar_kstat[i]);
	vj_obj_end(j);
	vj_key(j, "qcaches");
	vj_arr(j);
	for (size_t q = a->qc_first; q < a->qc_first + a->qc_count && q < s->nqcaches; q++) {
		vj_obj(j);
		vj_kstr(j, "name", s->qcaches[q].qr_name);
		for (int i = 0; i < VSNAP_NQKSTAT; i++)
			if (!partial || cache_known_remote[i])
				vj_ku64(j, cache_stats[i], s->qcaches[q].qr_kstat[i]);
		vj_obj_end(j);
	}
	vj_arr_end(j);
	vj_obj_end(j);
}

int dcmd_kstat(vdb_call_t *c)
{
	vdb_t *db = c->db;
	const vsnap_t *s = db->s;
	size_t *idx, n;
	bool all;
	vdb_json_t j;
	vdb_opt_t o = {0, 0, NULL};
	int ch;

	while ((ch = vdb_getopt(c, &o, "")) != -1) {
		if (ch == '?')
			return -1;
		vdb_err("::kstat: unexpected argument '%s'", o.arg);
		return -1;
	}
	if (vdb_arenas_of_call(c, &idx, &n, &all) != 0)
		return -1;
	if (c->json) {
		vj_init(&j, c->fp);
		vj_obj(&j);
		vj_key(&j, "arenas");
		vj_arr(&j);
	}
	for (size_t i = 0; i < n; i++) {
		if (c->json)
			kstat_json_arena(c, &j, &s->arenas[idx[i]]);
		else
			kstat_text(c, &s->arenas[idx[i]]);
	}
	if (c->json) {
		vj_arr_end(&j);
		if (all) {
			vj_key(&j, "errors");
			vj_obj(&j);
		}
	}
	for (uint32_t k = 1; all && k < NERROR_NAMES; k++) {
		uint64_t v = k < s->nerrors ? s->errors[k] : 0;

		if (c->json)
			vj_ku64(&j, error_names[k], v);
		else
			fprintf(c->fp, "vmem:0:errors:%s\t%" PRIu64 "\n", error_names[k], v);
	}
	if (c->json) {
		if (all)
			vj_obj_end(&j);
		vj_obj_end(&j);
		vj_end(&j);
	}
	free(idx);
	return 0;
}

/* ---- ::status ------------------------------------------------------------------------------ */

static const char *kind_name(enum vdb_kind k)
{
	return k == VDB_SNAP ? "snapshot" : k == VDB_LIVE ? "live process" : "core file";
}

int dcmd_status(vdb_call_t *c)
{
	vdb_t *db = c->db;
	const vsnap_t *s = db->s;
	size_t count[4] = {0, 0, 0, 0};
	uint64_t meta = 0;
	char h[32];

	for (size_t i = 0; i < s->nsegs; i++) {
		uint8_t t = s->segs[i].sg_type;

		count[t == VSNAP_SPAN ? 0 : t == VSNAP_ALLOC ? 1 : t == VSNAP_FREE ? 2 : 3]++;
	}
	for (size_t i = 0; i < s->nregions; i++)
		meta += s->regions[i].rg_size;
	if (c->json) {
		vdb_json_t j;

		vj_init(&j, c->fp);
		vj_obj(&j);
		vj_kstr(&j, "target", kind_name(db->t->kind));
		vj_kstr(&j, "name", db->t->name);
		vj_ku64(&j, "pid", s->pid);
		vj_kbool(&j, "debug", (s->flags & VSNAP_F_DEBUG) != 0);
		if (db->root.addr != 0) {
			vj_kaddr(&j, "root", db->root.addr);
			vj_kstr(&j, "root_object", db->root.object);
			vj_ku64(&j, "root_version", db->root.version);
			vj_ku64(&j, "root_size", db->root.size);
			vj_kbool(&j, "root_magazines", db->root.mags);
		}
		vj_ku64(&j, "arenas", s->narenas);
		vj_ku64(&j, "spans", count[0]);
		vj_ku64(&j, "allocated", count[1]);
		vj_ku64(&j, "free", count[2]);
		vj_ku64(&j, "cached", count[3]);
		vj_ku64(&j, "qcaches", s->nqcaches);
		if (db->t->kind != VDB_SNAP && !db->t->qk_partial)
			vj_ku64(&j, "magazine_objects", db->t->nmagobj);
		vj_ku64(&j, "stacks", s->nstacks);
		vj_ku64(&j, "log", s->nlog);
		vj_ku64(&j, "regions", s->nregions);
		vj_ku64(&j, "metadata_bytes", meta);
		vj_key(&j, "notes");
		vj_arr(&j);
		for (int i = 0; i < db->t->nnotes; i++)
			vj_str(&j, db->t->notes[i]);
		vj_arr_end(&j);
		vj_obj_end(&j);
		vj_end(&j);
		return 0;
	}
	fprintf(c->fp, "target:   %s\n", db->t->name);
	if (db->t->kind == VDB_LIVE)
		fprintf(c->fp, "          stopped while vmemdb runs; resumed when it exits\n");
	if (db->t->kind == VDB_SNAP) {
		time_t secs = (time_t)(s->time_ns / 1000000000ULL);
		char when[64];
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&secs, &tm));
		fprintf(c->fp, "written:  by process %" PRIu64 " at %s\n", s->pid, when);
	}
	fprintf(c->fp, "library:  %s", (s->flags & VSNAP_F_DEBUG) ? "libvmem-debug" : "libvmem");
	if (db->root.addr != 0)
		fprintf(c->fp, ", root version %u at 0x%" PRIx64 " in %s", db->root.version,
		        db->root.addr, db->root.object);
	fprintf(c->fp,
	        "\narenas:   %zu; %zu spans, %zu allocated, %zu free, %zu cached objects; "
	        "%zu quantum caches\n",
	        s->narenas, count[0], count[1], count[2], count[3], s->nqcaches);
	/* a snapshot's writer emptied the magazines; a process's may hold objects */
	if (db->t->kind != VDB_SNAP && !db->t->qk_partial)
		fprintf(c->fp, "cached:   %zu objects free in magazines (not held by callers)\n",
		        db->t->nmagobj);
	fprintf(c->fp, "debug:    %zu stacks, %zu log records\n", s->nstacks, s->nlog);
	fprintf(c->fp, "metadata: %zu regions, %s\n", s->nregions, vdb_human(meta, h, sizeof(h)));
	for (int i = 0; i < db->t->nnotes; i++)
		fprintf(c->fp, "note:     %s\n", db->t->notes[i]);
	return 0;
}
