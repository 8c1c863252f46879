/*
 * The session: the model of the target plus the indexes the commands need
 * (arenas by id and in tree order, segments by address), and symbolization
 * of recorded stacks, done once per stack and only when a command shows it.
 */
#include "vmemdb.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INLINE 8

static const vdb_t *sort_db; /* for qsort comparators (the session is single-threaded) */

static int by_arena_id(const void *x, const void *y)
{
	uint32_t a = sort_db->s->arenas[*(const size_t *)x].a.ar_id;
	uint32_t b = sort_db->s->arenas[*(const size_t *)y].a.ar_id;

	return a < b ? -1 : a > b;
}

/* Tree order: roots in model order, then depth first their importers in model order. */
static int build_tree(vdb_t *db)
{
	const vsnap_t *s = db->s;
	size_t n = s->narenas, out = 0, *stack;
	bool *done;

	db->tree = malloc((n + 1) * sizeof(size_t));
	stack = malloc((n + 1) * sizeof(size_t));
	done = calloc(n + 1, 1);
	if (db->tree == NULL || stack == NULL || done == NULL) {
		free(stack);
		free(done);
		return -1;
	}
	for (size_t pass = 0; pass < 2; pass++) {
		for (size_t r = 0; r < n; r++) {
			size_t sp = 0;

			/* pass 0: real roots; pass 1: arenas whose source is missing */
			if (done[r] || (pass == 0 && s->arenas[r].a.ar_source_id != 0))
				continue;
			stack[sp++] = r;
			while (sp > 0) {
				size_t i = stack[--sp];

				if (done[i])
					continue;
				done[i] = true;
				db->tree[out++] = i;
				for (size_t k = n; k-- > 0;)
					if (!done[k] &&
					    s->arenas[k].a.ar_source_id == s->arenas[i].a.ar_id &&
					    sp < n)
						stack[sp++] = k;
			}
		}
	}
	free(stack);
	free(done);
	return 0;
}

int vdb_session_init(vdb_t *db, vdb_target_t *t)
{
	vsnap_t *s = t->snap;

	db->t = t;
	db->s = s;
	db->arena_by_id = malloc((s->narenas + 1) * sizeof(size_t));
	db->frames = calloc(s->nstacks + 1, sizeof(*db->frames));
	if (db->arena_by_id == NULL || db->frames == NULL || build_tree(db) != 0)
		return -1;
	for (size_t i = 0; i < s->narenas; i++)
		db->arena_by_id[i] = i;
	sort_db = db;
	qsort(db->arena_by_id, s->narenas, sizeof(size_t), by_arena_id);
	return 0;
}

void vdb_session_fini(vdb_t *db)
{
	if (db->frames != NULL) {
		for (size_t i = 0; i < db->s->nstacks; i++) {
			for (size_t k = 0; k < db->frames[i].n; k++)
				free(db->frames[i].f[k].text);
			free(db->frames[i].f);
			free(db->frames[i].who);
		}
	}
	free(db->frames);
	free(db->tree);
	free(db->arena_by_id);
	free(db->seg_order);
	vdb_vals_free(&db->leaks);
	vmem_sym_close(db->sym);
	db->sym = NULL;
}

/* ---- arenas ---------------------------------------------------------------------- */

const vsnap_arena_t *vdb_arena_by_id(const vdb_t *db, uint32_t id)
{
	size_t lo = 0, hi = db->s->narenas;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const vsnap_arena_t *a = &db->s->arenas[db->arena_by_id[mid]];

		if (a->a.ar_id == id)
			return a;
		if (a->a.ar_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

size_t vdb_arena_index(const vdb_t *db, const vsnap_arena_t *a)
{
	return (size_t)(a - db->s->arenas);
}

const vsnap_arena_t *vdb_arena_by_addr(const vdb_t *db, uint64_t addr)
{
	for (size_t i = 0; i < db->s->narenas; i++)
		if (db->s->arenas[i].a.ar_addr == addr)
			return &db->s->arenas[i];
	return NULL;
}

const vsnap_arena_t *vdb_arena_lookup(const vdb_t *db, const char *tok)
{
	uint64_t v;

	for (size_t i = 0; i < db->s->narenas; i++)
		if (strcmp(db->s->arenas[db->tree[i]].a.ar_name, tok) == 0)
			return &db->s->arenas[db->tree[i]];
	if (tok[0] == '#' && vdb_parse_num(tok + 1, 10, false, &v) && v <= UINT32_MAX)
		return vdb_arena_by_id(db, (uint32_t)v);
	if (vdb_parse_num(tok, 16, false, &v))
		return vdb_arena_by_addr(db, v);
	return NULL;
}

/* ---- stacks ----------------------------------------------------------------------- */

static size_t stack_index(const vdb_t *db, uint32_t id)
{
	size_t lo = 0, hi = db->s->nstacks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t m = db->s->stacks[mid].id;

		if (m == id)
			return mid;
		if (m < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

const vsnap_stack_t *vdb_stack(const vdb_t *db, uint32_t id)
{
	size_t i = id != 0 ? stack_index(db, id) : SIZE_MAX;

	return i == SIZE_MAX ? NULL : &db->s->stacks[i];
}

vmem_symtab_t *vdb_symtab(vdb_t *db)
{
	if (!db->sym_tried) {
		db->sym_tried = true;
		db->sym = vmem_sym_open(db->t->objs, db->t->nobjs);
	}
	return db->sym;
}

/* libvmem's own functions are not "who" allocated. */
static bool is_libvmem(const char *fn)
{
	return fn != NULL && strncmp(fn, "vmem_", 5) == 0;
}

static bool push_frame(vdb_frames_t *fr, size_t *cap, const vmem_sym_frame_t *sf, uint64_t pc)
{
	vdb_frame_t *f;
	char buf[1024];

	if (fr->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		vdb_frame_t *nf = realloc(fr->f, nc * sizeof(*nf));

		if (nf == NULL)
			return false;
		fr->f = nf;
		*cap = nc;
	}
	f = &fr->f[fr->n];
	memset(f, 0, sizeof(*f));
	f->pc = pc;
	if (sf != NULL) {
		f->function = sf->function;
		f->file = sf->file;
		f->line = sf->line;
		f->offset = sf->offset;
		f->inlined = sf->inlined != 0;
		vmem_sym_format(sf, buf, sizeof(buf));
	} else {
		snprintf(buf, sizeof(buf), "0x%" PRIx64, pc);
	}
	f->text = strdup(buf);
	if (f->text == NULL)
		return false;
	fr->n++;
	return true;
}

static void symbolize(vdb_t *db, const vsnap_stack_t *st, vdb_frames_t *fr)
{
	vmem_symtab_t *sym = vdb_symtab(db);
	size_t cap = 0;
	char buf[512];

	fr->done = true;
	for (uint32_t i = 0; i < st->depth; i++) {
		vmem_sym_frame_t sf[MAX_INLINE];
		int n =
		    sym != NULL ? vmem_sym_lookup(sym, (uintptr_t)st->pc[i], 1, sf, MAX_INLINE) : 0;

		if (n <= 0) {
			if (!push_frame(fr, &cap, NULL, st->pc[i]))
				return;
			continue;
		}
		for (int k = 0; k < n; k++)
			if (!push_frame(fr, &cap, &sf[k], st->pc[i]))
				return;
	}
	for (size_t i = 0; i < fr->n; i++) {
		const vdb_frame_t *f = &fr->f[i];

		if (is_libvmem(f->function))
			continue;
		fr->caller = f;
		if (f->function != NULL)
			snprintf(buf, sizeof(buf), "%s+0x%" PRIx64, f->function, f->offset);
		else
			snprintf(buf, sizeof(buf), "0x%" PRIx64, f->pc);
		fr->who = strdup(buf);
		break;
	}
}

const vdb_frames_t *vdb_frames(vdb_t *db, uint32_t id)
{
	size_t i = id != 0 ? stack_index(db, id) : SIZE_MAX;

	if (i == SIZE_MAX)
		return NULL;
	if (!db->frames[i].done)
		symbolize(db, &db->s->stacks[i], &db->frames[i]);
	return &db->frames[i];
}

/* ---- segments --------------------------------------------------------------------- */

const char *vdb_seg_type_name(uint8_t type)
{
	switch (type) {
	case VSNAP_ALLOC:
		return "ALLC";
	case VSNAP_FREE:
		return "FREE";
	case VSNAP_SPAN:
		return "SPAN";
	case VSNAP_CACHED:
		return "CACH";
	}
	return "????";
}

const char *vdb_seg_type_long(uint8_t type)
{
	switch (type) {
	case VSNAP_ALLOC:
		return "alloc";
	case VSNAP_FREE:
		return "free";
	case VSNAP_SPAN:
		return "span";
	case VSNAP_CACHED:
		return "cached";
	}
	return "unknown";
}

const vsnap_arena_t *vdb_seg_arena(const vdb_t *db, size_t i)
{
	return vdb_arena_by_id(db, db->s->segs[i].sg_arena);
}

uint64_t vdb_seg_addr(const vdb_t *db, size_t i)
{
	const vsnap_seg_rec_t *g = &db->s->segs[i];

	return g->sg_type == VSNAP_CACHED ? g->sg_start : g->sg_addr;
}

bool vdb_seg_audited(const vdb_t *db, const vsnap_seg_rec_t *g)
{
	return (db->s->flags & VSNAP_F_DEBUG) &&
	       (g->sg_type == VSNAP_ALLOC || g->sg_type == VSNAP_CACHED) &&
	       (g->sg_stack != 0 || g->sg_time != 0 || g->sg_thread != 0);
}

const vdb_magobj_t *vdb_magobj(const vdb_t *db, uint32_t arena, uint64_t addr)
{
	const vdb_magobj_t *m = db->t->magobj;
	size_t lo = 0, hi = db->t->nmagobj;

	while (lo < hi) { /* past the last object of `arena` starting at or below addr */
		size_t mid = lo + (hi - lo) / 2;

		if (m[mid].arena < arena || (m[mid].arena == arena && m[mid].addr <= addr))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || m[lo - 1].arena != arena || addr - m[lo - 1].addr >= m[lo - 1].size)
		return NULL;
	return &m[lo - 1];
}

static int by_pipe_addr(const void *x, const void *y)
{
	uint64_t a = vdb_seg_addr(sort_db, (size_t) * (const uint64_t *)x);
	uint64_t b = vdb_seg_addr(sort_db, (size_t) * (const uint64_t *)y);

	return a < b ? -1 : a > b;
}

size_t vdb_seg_lookup(const vdb_t *cdb, uint64_t addr)
{
	vdb_t *db = (vdb_t *)cdb;
	size_t n = db->s->nsegs, lo = 0, hi = n;

	if (db->seg_order == NULL) {
		db->seg_order = malloc((n + 1) * sizeof(uint64_t));
		if (db->seg_order == NULL)
			return SIZE_MAX;
		for (size_t i = 0; i < n; i++)
			db->seg_order[i] = i;
		sort_db = db;
		qsort(db->seg_order, n, sizeof(uint64_t), by_pipe_addr);
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (vdb_seg_addr(db, (size_t)db->seg_order[mid]) < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n && vdb_seg_addr(db, (size_t)db->seg_order[lo]) == addr)
		return (size_t)db->seg_order[lo];
	/* not a tag: the allocated segment (or cached object) starting there */
	for (size_t i = 0; i < db->s->narenas; i++) {
		size_t k = vdb_seg_containing(db, &db->s->arenas[i], addr);

		if (k != SIZE_MAX && db->s->segs[k].sg_start == addr)
			return k;
	}
	return SIZE_MAX;
}

static bool seg_contains(const vsnap_seg_rec_t *g, uint64_t addr)
{
	return addr >= g->sg_start && addr - g->sg_start < g->sg_extent;
}

size_t vdb_seg_containing(const vdb_t *db, const vsnap_arena_t *a, uint64_t addr)
{
	const vsnap_seg_rec_t *segs = db->s->segs + a->seg_first;
	size_t lo = 0, hi = a->seg_count;

	/* the last record starting at or below addr (records are in start order) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (segs[mid].sg_start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t j = lo; j-- > 0;) {
		const vsnap_seg_rec_t *g = &segs[j];

		if (g->sg_type == VSNAP_CACHED) {
			if (seg_contains(g, addr))
				return a->seg_first + j;
			continue; /* a free slot of a slab: look for the slab */
		}
		if (g->sg_type == VSNAP_SPAN)
			return seg_contains(g, addr) ? a->seg_first + j : SIZE_MAX;
		return seg_contains(g, addr) ? a->seg_first + j : SIZE_MAX;
	}
	return SIZE_MAX;
}

/* ---- numbers ------------------------------------------------------------------------ */

bool vdb_parse_num(const char *s, int radix, bool sizes, uint64_t *out)
{
	unsigned long long v, mult = 1;
	char *end;
	size_t len;
	char buf[64];

	if (s == NULL || *s == '\0' || strlen(s) >= sizeof(buf) || *s == '-' || *s == '+')
		return false;
	snprintf(buf, sizeof(buf), "%s", s);
	len = strlen(buf);
	if (sizes && len > 1) {
		switch (toupper((unsigned char)buf[len - 1])) {
		case 'K':
			mult = 1ULL << 10;
			break;
		case 'M':
			mult = 1ULL << 20;
			break;
		case 'G':
			mult = 1ULL << 30;
			break;
		case 'T':
			mult = 1ULL << 40;
			break;
		}
		if (mult != 1)
			buf[--len] = '\0';
	}
	s = buf;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		radix = 16;
		s += 2;
	} else if (s[0] == '0' && (s[1] == 't' || s[1] == 'T')) {
		radix = 10;
		s += 2;
	} else if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) {
		radix = 8;
		s += 2;
	}
	if (*s == '\0' || !isxdigit((unsigned char)*s))
		return false;
	v = strtoull(s, &end, radix);
	if (*end != '\0' || (mult > 1 && v > UINT64_MAX / mult))
		return false;
	*out = v * mult;
	return true;
}

const char *vdb_human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return buf;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}
