/*
 * ::vmem_seg: segments, as mdb prints them (ADDR TYPE START END WHO), with
 * the filters of mdb's ::vmem_seg; -v adds the audit record (thread, time,
 * symbolized stack) of libvmem-debug.
 */
#include "vmemdb.h"

#include <inttypes.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

typedef struct seg_filter {
	bool verbose, size_col;
	int type; /* 0: any */
	uint64_t minsize, maxsize;
	bool have_thread, have_earliest, have_latest;
	uint64_t thread, earliest, latest;
	const char *caller; /* function name */
} seg_filter_t;

static int parse_type(const char *s)
{
	if (strcasecmp(s, "ALLOC") == 0 || strcasecmp(s, "ALLC") == 0)
		return VSNAP_ALLOC;
	if (strcasecmp(s, "FREE") == 0)
		return VSNAP_FREE;
	if (strcasecmp(s, "SPAN") == 0)
		return VSNAP_SPAN;
	if (strcasecmp(s, "CACHED") == 0 || strcasecmp(s, "CACH") == 0)
		return VSNAP_CACHED;
	return -1;
}

/* -c: a function name, or a pc standing for the function that contains it. */
static const char *caller_name(vdb_t *db, const char *arg)
{
	uint64_t pc;
	vmem_sym_frame_t f[8];
	vmem_symtab_t *st;
	int n;

	if (strncmp(arg, "0x", 2) != 0 || !vdb_parse_num(arg, 16, false, &pc))
		return arg;
	st = vdb_symtab(db);
	n = st != NULL ? vmem_sym_lookup(st, (uintptr_t)pc, 0, f, 8) : 0;
	return n > 0 && f[n - 1].function != NULL ? f[n - 1].function : arg;
}

static bool stack_has(vdb_t *db, uint32_t stack, const char *fn)
{
	const vdb_frames_t *fr = vdb_frames(db, stack);

	for (size_t i = 0; fr != NULL && i < fr->n; i++)
		if (fr->f[i].function != NULL && strcmp(fr->f[i].function, fn) == 0)
			return true;
	return false;
}

static bool seg_passes(vdb_t *db, const seg_filter_t *f, const vsnap_seg_rec_t *g)
{
	bool audited = vdb_seg_audited(db, g);

	if (f->type != 0 && g->sg_type != f->type)
		return false;
	if (g->sg_size < f->minsize || g->sg_size > f->maxsize)
		return false;
	if ((f->have_thread || f->have_earliest || f->have_latest || f->caller != NULL) && !audited)
		return false;
	if (f->have_thread && g->sg_thread != f->thread)
		return false;
	if (f->have_earliest && g->sg_time < f->earliest)
		return false;
	if (f->have_latest && g->sg_time > f->latest)
		return false;
	return f->caller == NULL || stack_has(db, g->sg_stack, f->caller);
}

static int parse_filter(vdb_call_t *c, seg_filter_t *f)
{
	vdb_opt_t o = {0, 0, NULL};
	int ch;

	memset(f, 0, sizeof(*f));
	f->maxsize = UINT64_MAX;
	while ((ch = vdb_getopt(c, &o, "svT:m:M:t:c:e:l:")) != -1) {
		bool ok = true;

		switch (ch) {
		case 's':
			f->size_col = true;
			break;
		case 'v':
			f->verbose = true;
			break;
		case 'T':
			f->type = parse_type(o.arg);
			ok = f->type > 0;
			break;
		case 'm':
			ok = vdb_parse_num(o.arg, 10, true, &f->minsize);
			break;
		case 'M':
			ok = vdb_parse_num(o.arg, 10, true, &f->maxsize);
			break;
		case 't':
			ok = f->have_thread = vdb_parse_num(o.arg, 10, false, &f->thread);
			break;
		case 'e':
			ok = f->have_earliest = vdb_parse_num(o.arg, 10, false, &f->earliest);
			break;
		case 'l':
			ok = f->have_latest = vdb_parse_num(o.arg, 10, false, &f->latest);
			break;
		case 'c':
			f->caller = caller_name(c->db, o.arg);
			break;
		case 1:
			vdb_err("::vmem_seg: unexpected argument '%s' (an arena goes before ::)",
			        o.arg);
			return -1;
		default:
			return -1;
		}
		if (!ok) {
			vdb_err("::vmem_seg: bad value '%s' for -%c", o.arg, ch);
			return -1;
		}
	}
	return 0;
}

/* The segments a call designates, in order, into out (indices into s->segs). */
static int segs_of_call(vdb_call_t *c, vdb_vals_t *out)
{
	vdb_t *db = c->db;

	if (!c->have_input) {
		for (size_t i = 0; i < db->s->narenas; i++) {
			const vsnap_arena_t *a = &db->s->arenas[db->tree[i]];

			for (size_t k = a->seg_first; k < a->seg_first + a->seg_count; k++)
				vdb_vals_push(out, VAL_SEG, 0, k);
		}
		return 0;
	}
	for (size_t i = 0; i < c->nin; i++) {
		const vdb_val_t *v = &c->in[i];
		const vsnap_arena_t *a = NULL;
		size_t k;

		if (v->kind == VAL_SEG) {
			vdb_vals_push(out, VAL_SEG, 0, v->idx);
			continue;
		}
		if (v->kind == VAL_ARENA)
			a = &db->s->arenas[v->idx];
		else if ((k = vdb_seg_lookup(db, v->addr)) != SIZE_MAX) {
			vdb_vals_push(out, VAL_SEG, 0, k);
			continue;
		} else
			a = vdb_arena_by_addr(db, v->addr);
		if (a == NULL) {
			vdb_err("::vmem_seg: %" PRIx64 " is neither a segment nor an arena",
			        v->addr);
			return -1;
		}
		for (k = a->seg_first; k < a->seg_first + a->seg_count; k++)
			vdb_vals_push(out, VAL_SEG, 0, k);
	}
	return 0;
}

static void print_header(vdb_call_t *c, const seg_filter_t *f)
{
	if (f->verbose) {
		fprintf(c->fp, "%-16s %-4s %-16s %-16s %16s\n", "ADDR", "TYPE", "START", "END",
		        "SIZE");
		fprintf(c->fp, "%-16s %-4s %16s %16s\n", "", "", "THREAD", "TIMESTAMP");
	} else {
		fprintf(c->fp, "%-16s %-4s %-16s %-16s %s\n", "ADDR", "TYPE", "START",
		        f->size_col ? "SIZE" : "END", "WHO");
	}
}

static void print_stack(vdb_call_t *c, uint32_t stack, int indent)
{
	const vdb_frames_t *fr = vdb_frames(c->db, stack);

	for (size_t i = 0; fr != NULL && i < fr->n; i++)
		fprintf(c->fp, "%*s%s\n", indent, "", fr->f[i].text);
}

static void print_row(vdb_call_t *c, const seg_filter_t *f, size_t i)
{
	vdb_t *db = c->db;
	const vsnap_seg_rec_t *g = &db->s->segs[i];
	uint64_t end = g->sg_start + g->sg_extent;

	if (f->verbose) {
		fprintf(c->fp, "%016" PRIx64 " %-4s %016" PRIx64 " %016" PRIx64 " %16" PRIu64 "\n",
		        vdb_seg_addr(db, i), vdb_seg_type_name(g->sg_type), g->sg_start, end,
		        g->sg_size);
		if (vdb_seg_audited(db, g)) {
			fprintf(c->fp, "%-16s %-4s %16" PRIu64 " %16" PRIx64 "\n", "", "",
			        g->sg_thread, g->sg_time);
			print_stack(c, g->sg_stack, 17);
			fputc('\n', c->fp);
		}
		return;
	}
	fprintf(c->fp, "%016" PRIx64 " %-4s %016" PRIx64 " ", vdb_seg_addr(db, i),
	        vdb_seg_type_name(g->sg_type), g->sg_start);
	if (f->size_col)
		fprintf(c->fp, "%16" PRIu64, g->sg_size);
	else
		fprintf(c->fp, "%016" PRIx64, end);
	if (vdb_seg_audited(db, g)) {
		const vdb_frames_t *fr = vdb_frames(db, g->sg_stack);

		if (fr != NULL && fr->who != NULL)
			fprintf(c->fp, " %s", fr->who);
	}
	fputc('\n', c->fp);
}

/* Shared with ::findleaks and ::whatis. */
void vdb_seg_json(vdb_t *db, vdb_json_t *j, size_t i, bool frames)
{
	const vsnap_seg_rec_t *g = &db->s->segs[i];
	const vsnap_arena_t *a = vdb_arena_by_id(db, g->sg_arena);

	vj_obj(j);
	vj_kaddr(j, "addr", vdb_seg_addr(db, i));
	vj_kstr(j, "arena", a != NULL ? a->a.ar_name : NULL);
	vj_kstr(j, "type", vdb_seg_type_long(g->sg_type));
	vj_kaddr(j, "start", g->sg_start);
	vj_kaddr(j, "end", g->sg_start + g->sg_extent);
	vj_ku64(j, "size", g->sg_size);
	vj_ku64(j, "extent", g->sg_extent);
	vj_key(j, "flags");
	vj_arr(j);
	if (g->sg_flags & VSNAP_F_IMPORTED)
		vj_str(j, "imported");
	if (g->sg_flags & VSNAP_F_XALLOC)
		vj_str(j, "xalloc");
	if (g->sg_flags & VSNAP_F_SLAB)
		vj_str(j, "slab");
	if (g->sg_flags & VSNAP_F_QDIRECT)
		vj_str(j, "qdirect");
	vj_arr_end(j);
	if (vdb_seg_audited(db, g)) {
		const vdb_frames_t *fr = vdb_frames(db, g->sg_stack);

		vj_ku64(j, "thread", g->sg_thread);
		vj_ku64(j, "time", g->sg_time);
		vj_ku64(j, "stack", g->sg_stack);
		vj_kstr(j, "caller", fr != NULL ? fr->who : NULL);
		if (frames) {
			vj_key(j, "frames");
			vj_arr(j);
			for (size_t k = 0; fr != NULL && k < fr->n; k++) {
				vj_obj(j);
				vj_kaddr(j, "pc", fr->f[k].pc);
				vj_kstr(j, "function", fr->f[k].function);
				vj_kstr(j, "file", fr->f[k].file);
				vj_ku64(j, "line", fr->f[k].line);
				vj_kbool(j, "inlined", fr->f[k].inlined);
				vj_obj_end(j);
			}
			vj_arr_end(j);
		}
	}
	vj_obj_end(j);
}

int dcmd_vmem_seg(vdb_call_t *c)
{
	vdb_t *db = c->db;
	seg_filter_t f;
	vdb_vals_t segs = {NULL, 0, 0};
	vdb_json_t j;
	bool header = false;

	if (parse_filter(c, &f) != 0 || segs_of_call(c, &segs) != 0) {
		vdb_vals_free(&segs);
		return -1;
	}
	if (c->json && c->pipe == NULL) {
		vj_init(&j, c->fp);
		vj_arr(&j);
	}
	for (size_t n = 0; n < segs.n; n++) {
		size_t i = segs.v[n].idx;

		if (!seg_passes(db, &f, &db->s->segs[i]))
			continue;
		if (c->pipe != NULL) {
			vdb_vals_push(c->pipe, VAL_SEG, vdb_seg_addr(db, i), i);
		} else if (c->json) {
			vdb_seg_json(db, &j, i, f.verbose);
		} else {
			if (!header)
				print_header(c, &f);
			header = true;
			print_row(c, &f, i);
		}
	}
	if (c->json && c->pipe == NULL) {
		vj_arr_end(&j);
		vj_end(&j);
	}
	vdb_vals_free(&segs);
	return 0;
}
