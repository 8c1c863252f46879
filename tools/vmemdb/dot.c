/*
 * ::dot: pictures through Graphviz, built with cgraph and laid out and
 * rendered in-process with gvc.
 *
 * The import tree: one node per arena (name, bytes in use of the total,
 * allocations that succeeded and failed; filled from green to red as it
 * fills up), an edge from each source to each importer labelled with the
 * bytes imported.  Layout costs grow with nodes (1,000 arenas take under a
 * second), so this is the whole tree, drawn left to right when it is large.
 *
 * A segment map: one node with an HTML-like table (record shapes flip with
 * rankdir, tables do not), one row per span, a cell per segment as wide as
 * its share of the span and coloured by state.  Rows of more than
 * MAP_CELLS segments become MAP_CELLS equal slices of the span shaded by
 * how much of each is allocated, and arenas of more than MAP_ROWS spans end
 * with a summary row, so that a million segments still draw as a legible
 * picture of a few thousand cells.  Cells carry tooltips (SVG titles).
 */
#define _GNU_SOURCE
#include "vmemdb.h"

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define MAP_ROWS  64
#define MAP_CELLS 48
#define ROW_WIDTH 640 /* points */
#define MIN_CELL  6

#define C_ALLOC  "#f4a582"
#define C_IMPORT "#92c5de"
#define C_SLAB   "#c2a5cf"
#define C_FREE   "#d9f0d3"

/* A growing string (the HTML labels). */
typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p != NULL ? b->p + b->len : NULL,
		              b->p != NULL ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->p != NULL && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (p == NULL)
			return;
		b->p = p;
		b->cap = cap;
	}
}

/* Text for an HTML-like label: &, <, > and " escaped. */
static void sb_text(sbuf_t *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			sb_printf(b, "&amp;");
			break;
		case '<':
			sb_printf(b, "&lt;");
			break;
		case '>':
			sb_printf(b, "&gt;");
			break;
		case '"':
			sb_printf(b, "&quot;");
			break;
		default:
			sb_printf(b, "%c", *s);
		}
	}
}

static void set_html(Agraph_t *g, void *obj, const char *attr, const char *html)
{
	char *h = agstrdup_html(g, (char *)html);

	agsafeset(obj, (char *)attr, h, "");
	agstrfree(g, h);
}

/* Green when empty, red when full. */
static void fill_colour(double f, char *buf, size_t len)
{
	static const int lo[3] = {0xd9, 0xf0, 0xd3}, hi[3] = {0xf4, 0xa5, 0x82};
	int c[3];

	if (f < 0)
		f = 0;
	if (f > 1)
		f = 1;
	for (int i = 0; i < 3; i++)
		c[i] = lo[i] + (int)((hi[i] - lo[i]) * f);
	snprintf(buf, len, "#%02x%02x%02x", c[0], c[1], c[2]);
}

static const char *amount(const vsnap_arena_t *a, uint64_t v, char *buf, size_t len)
{
	if (a->a.ar_cflags & 0x00040000) { /* VMC_IDENTIFIER: integers, not bytes */
		snprintf(buf, len, "%" PRIu64 " ids", v);
		return buf;
	}
	return vdb_human(v, buf, len);
}

/* ---- the import tree ------------------------------------------------------------------- */

static Agraph_t *import_tree(vdb_t *db)
{
	Agraph_t *g = agopen("vmem", Agdirected, NULL);
	Agnode_t **nodes = calloc(db->s->narenas + 1, sizeof(*nodes));
	sbuf_t b = {NULL, 0, 0};

	if (g == NULL || nodes == NULL) {
		free(nodes);
		return g;
	}
	/* a wide tree reads better sideways: scrolling down a long page beats a banner */
	agsafeset(g, "rankdir", db->s->narenas > 40 ? "LR" : "TB", "");
	agsafeset(g, "fontname", "Helvetica", "");
	agattr(g, AGNODE, "shape", "plain");
	agattr(g, AGNODE, "fontname", "Helvetica");
	agattr(g, AGEDGE, "fontname", "Helvetica");
	agattr(g, AGEDGE, "fontsize", "10");
	agattr(g, AGEDGE, "color", "#555555");
	for (size_t t = 0; t < db->s->narenas; t++) {
		size_t i = db->tree[t];
		const vsnap_arena_t *a = &db->s->arenas[i];
		const uint64_t *k = a->a.ar_kstat;
		char name[32], colour[16], h1[32], h2[32], tip[160];

		snprintf(name, sizeof(name), "a%u", a->a.ar_id);
		nodes[i] = agnode(g, name, 1);
		fill_colour(k[2] ? (double)k[0] / (double)k[2] : 0, colour, sizeof(colour));
		b.len = 0;
		sb_printf(&b,
		          "<TABLE BORDER=\"1\" CELLBORDER=\"0\" CELLSPACING=\"0\" "
		          "CELLPADDING=\"3\" COLOR=\"#555555\" BGCOLOR=\"%s\"><TR><TD><B>",
		          colour);
		sb_text(&b, a->a.ar_name);
		sb_printf(&b, "</B></TD></TR><TR><TD>%s / %s</TD></TR>",
		          amount(a, k[0], h1, sizeof(h1)), amount(a, k[2], h2, sizeof(h2)));
		sb_printf(&b,
		          "<TR><TD><FONT POINT-SIZE=\"9\">%" PRIu64 " allocs, %" PRIu64
		          " failed</FONT></TD></TR></TABLE>",
		          k[4], k[7]);
		set_html(g, nodes[i], "label", b.p);
		snprintf(tip, sizeof(tip), "arena %u at 0x%" PRIx64 ", quantum %" PRIu64,
		         a->a.ar_id, a->a.ar_addr, a->a.ar_quantum);
		agsafeset(nodes[i], "tooltip", tip, "");
	}
	for (size_t i = 0; i < db->s->narenas; i++) {
		const vsnap_arena_t *a = &db->s->arenas[i];
		const vsnap_arena_t *src =
		    a->a.ar_source_id ? vdb_arena_by_id(db, a->a.ar_source_id) : NULL;
		char h[32];
		Agedge_t *e;

		if (src == NULL)
			continue;
		e = agedge(g, nodes[vdb_arena_index(db, src)], nodes[i], NULL, 1);
		agsafeset(e, "label", (char *)amount(src, a->a.ar_kstat[1], h, sizeof(h)), "");
	}
	free(b.p);
	free(nodes);
	return g;
}

/* ---- a segment map ------------------------------------------------------------------------ */

/* Whether the ALLOC segment at start is a span one of a's importers took. */
static const char *importer(const vdb_t *db, const vsnap_arena_t *a, uint64_t start)
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

static const char *seg_colour(const vdb_t *db, const vsnap_arena_t *a, const vsnap_seg_rec_t *g,
                              const char **imp)
{
	*imp = NULL;
	if (g->sg_type == VSNAP_FREE)
		return C_FREE;
	if (g->sg_flags & VSNAP_F_SLAB)
		return C_SLAB;
	if ((*imp = importer(db, a, g->sg_start)) != NULL)
		return C_IMPORT;
	return C_ALLOC;
}

static void short_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	int u = -1;

	while (v >= 1024 && (v % 1024) == 0 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
}

/* One cell per segment of the span (records [first, end)). */
static void row_cells(vdb_t *db, const vsnap_arena_t *a, sbuf_t *b, const vsnap_seg_rec_t *span,
                      size_t first, size_t end)
{
	for (size_t i = first; i < end; i++) {
		const vsnap_seg_rec_t *g = &db->s->segs[i];
		const char *imp, *col;
		double share = span->sg_extent ? (double)g->sg_extent / (double)span->sg_extent : 1;
		int w = (int)(share * ROW_WIDTH);
		char sz[32];

		if (g->sg_type == VSNAP_CACHED)
			continue;
		col = seg_colour(db, a, g, &imp);
		if (w < MIN_CELL)
			w = MIN_CELL;
		short_size(g->sg_extent, sz, sizeof(sz));
		sb_printf(b,
		          "<TD FIXEDSIZE=\"TRUE\" WIDTH=\"%d\" HEIGHT=\"22\" BGCOLOR=\"%s\" "
		          "HREF=\"#\" TITLE=\"%s "
		          "0x%" PRIx64 " %" PRIu64 " bytes",
		          w, col, vdb_seg_type_long(g->sg_type), g->sg_start, g->sg_size);
		if (imp != NULL) {
			sb_printf(b, ", imported by ");
			sb_text(b, imp);
		}
		if (g->sg_flags & VSNAP_F_SLAB) {
			size_t held = 0;

			for (size_t k = i + 1; k < end && db->s->segs[k].sg_type == VSNAP_CACHED;
			     k++)
				held++;
			sb_printf(b, ", a quantum-cache slab: %zu objects held", held);
		}
		/* an empty <FONT></FONT> is a syntax error for Graphviz */
		if (w >= 30)
			sb_printf(b, "\"><FONT POINT-SIZE=\"8\">%s</FONT></TD>", sz);
		else
			sb_printf(b, "\"></TD>");
	}
}

/* A long span: MAP_CELLS equal slices, each shaded by its allocated share. */
static void row_slices(vdb_t *db, sbuf_t *b, const vsnap_seg_rec_t *span, size_t first, size_t end)
{
	uint64_t used[MAP_CELLS] = {0}, count[MAP_CELLS] = {0};
	uint64_t slice = span->sg_extent / MAP_CELLS + (span->sg_extent % MAP_CELLS != 0);

	if (slice == 0)
		slice = 1;
	for (size_t i = first; i < end; i++) {
		const vsnap_seg_rec_t *g = &db->s->segs[i];
		uint64_t s = g->sg_start - span->sg_start, e = s + g->sg_extent;

		if (g->sg_type == VSNAP_CACHED)
			continue;
		for (uint64_t k = s / slice; k < MAP_CELLS && k * slice < e; k++) {
			uint64_t lo = k * slice > s ? k * slice : s;
			uint64_t hi = (k + 1) * slice < e ? (k + 1) * slice : e;

			count[k]++;
			if (g->sg_type != VSNAP_FREE)
				used[k] += hi - lo;
		}
	}
	for (int k = 0; k < MAP_CELLS; k++) {
		char col[16];
		double f = (double)used[k] / (double)slice;

		fill_colour(f, col, sizeof(col));
		sb_printf(b,
		          "<TD FIXEDSIZE=\"TRUE\" WIDTH=\"%d\" HEIGHT=\"22\" BGCOLOR=\"%s\" "
		          "HREF=\"#\" TITLE=\"0x%" PRIx64 ": %.0f%% allocated, %" PRIu64
		          " segments\"></TD>",
		          ROW_WIDTH / MAP_CELLS, col, span->sg_start + (uint64_t)k * slice, f * 100,
		          count[k]);
	}
}

static void map_row(vdb_t *db, const vsnap_arena_t *a, sbuf_t *b, size_t span, size_t end)
{
	const vsnap_seg_rec_t *sp = &db->s->segs[span];
	size_t nseg = 0;
	char h[32];

	for (size_t i = span + 1; i < end; i++)
		nseg += db->s->segs[i].sg_type != VSNAP_CACHED;
	sb_printf(b,
	          "<TR><TD ALIGN=\"RIGHT\"><FONT FACE=\"monospace\" POINT-SIZE=\"9\">0x%" PRIx64
	          "</FONT><BR/><FONT POINT-SIZE=\"9\">%s%s, %zu seg%s</FONT></TD><TD><TABLE "
	          "BORDER=\"0\" CELLBORDER=\"1\" CELLSPACING=\"0\" CELLPADDING=\"0\"><TR>",
	          sp->sg_start, amount(a, sp->sg_extent, h, sizeof(h)),
	          (sp->sg_flags & VSNAP_F_IMPORTED) ? " imported" : "", nseg, nseg == 1 ? "" : "s");
	if (nseg <= MAP_CELLS)
		row_cells(db, a, b, sp, span + 1, end);
	else
		row_slices(db, b, sp, span + 1, end);
	sb_printf(b, "</TR></TABLE></TD></TR>");
}

static void map_legend(sbuf_t *b)
{
	static const char *const cols[] = {C_ALLOC, C_IMPORT, C_SLAB, C_FREE};
	static const char *const names[] = {"allocated", "imported by a child",
	                                    "quantum-cache slab", "free"};

	/* one line of text: a nested table would be stretched over the row's width */
	sb_printf(b, "<TR><TD></TD><TD ALIGN=\"LEFT\"><FONT POINT-SIZE=\"9\">");
	for (int i = 0; i < 4; i++)
		sb_printf(b, "%s<FONT COLOR=\"%s\" POINT-SIZE=\"12\">&#9632;</FONT> %s",
		          i ? "&#160;&#160;&#160;" : "", cols[i], names[i]);
	sb_printf(b, "</FONT></TD></TR>");
}

static Agraph_t *segment_map(vdb_t *db, const vsnap_arena_t *a)
{
	Agraph_t *g = agopen("vmem_segments", Agdirected, NULL);
	const vsnap_seg_rec_t *segs = db->s->segs;
	size_t end = a->seg_first + a->seg_count, rows = 0, more = 0, nspans = 0;
	uint64_t more_bytes = 0, more_used = 0;
	sbuf_t b = {NULL, 0, 0};
	char h1[32], h2[32];
	Agnode_t *n;

	if (g == NULL)
		return NULL;
	agattr(g, AGNODE, "shape", "plain");
	agattr(g, AGNODE, "fontname", "Helvetica");
	for (size_t i = a->seg_first; i < end; i++)
		nspans += segs[i].sg_type == VSNAP_SPAN;
	sb_printf(&b, "<TABLE BORDER=\"0\" CELLBORDER=\"0\" CELLSPACING=\"3\"><TR><TD "
	              "COLSPAN=\"2\" ALIGN=\"LEFT\"><B>");
	sb_text(&b, a->a.ar_name);
	sb_printf(&b, "</B>: %s in use of %s, %zu span%s</TD></TR>",
	          amount(a, a->a.ar_kstat[0], h1, sizeof(h1)),
	          amount(a, a->a.ar_kstat[2], h2, sizeof(h2)), nspans, nspans == 1 ? "" : "s");
	for (size_t i = a->seg_first; i < end;) {
		size_t j = i + 1;

		while (j < end && segs[j].sg_type != VSNAP_SPAN)
			j++;
		if (segs[i].sg_type != VSNAP_SPAN) { /* records before any span: skip them */
			i = j;
			continue;
		}
		if (rows < MAP_ROWS) {
			map_row(db, a, &b, i, j);
			rows++;
		} else {
			more++;
			more_bytes += segs[i].sg_extent;
			for (size_t k = i + 1; k < j; k++)
				if (segs[k].sg_type == VSNAP_ALLOC)
					more_used += segs[k].sg_extent;
		}
		i = j;
	}
	if (more > 0)
		sb_printf(&b,
		          "<TR><TD></TD><TD ALIGN=\"LEFT\">... and %zu more spans: %s, %.0f%% "
		          "allocated</TD></TR>",
		          more, amount(a, more_bytes, h1, sizeof(h1)),
		          more_bytes ? 100.0 * (double)more_used / (double)more_bytes : 0.0);
	if (nspans == 0)
		sb_printf(&b, "<TR><TD COLSPAN=\"2\">no spans</TD></TR>");
	map_legend(&b);
	sb_printf(&b, "</TABLE>");
	n = agnode(g, "map", 1);
	set_html(g, n, "label", b.p);
	free(b.p);
	return g;
}

/* ---- output -------------------------------------------------------------------------------- */

/* Graphviz's messages, as ours: one line, prefixed, on stderr. */
static int gv_message(char *msg)
{
	size_t len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		len--;
	if (strncmp(msg, "(null): ", 8) == 0) {
		msg += 8;
		len -= 8;
	}
	fflush(stdout);
	fprintf(stderr, "vmemdb: ::dot: graphviz: %.*s\n", (int)len, msg);
	return 0;
}

static int render(vdb_call_t *c, Agraph_t *g, const char *fmt, const char *out, int nodes)
{
	vdb_t *db = c->db;
	char *data = NULL;
	unsigned int len = 0;
	size_t slen = 0;
	int rc = 0;

	if (strcmp(fmt, "dot") == 0) {
		FILE *f = out != NULL ? fopen(out, "w") : open_memstream(&data, &slen);

		if (f == NULL) {
			vdb_err("::dot: %s: cannot write", out != NULL ? out : "memory");
			return -1;
		}
		rc = agwrite(g, f) == EOF ? -1 : 0;
		if (fclose(f) != 0)
			rc = -1;
		len = (unsigned int)slen;
	} else {
		if (db->gvc == NULL) {
			agseterrf(gv_message);
			db->gvc = gvContext();
		}
		if (db->gvc == NULL || gvLayout(db->gvc, g, "dot") != 0) {
			vdb_err("::dot: Graphviz could not lay the graph out");
			return -1;
		}
		/*
		 * Always into memory: gvRenderFilename() reports success when it
		 * cannot open the file, so we write the file ourselves.
		 */
		rc = gvRenderData(db->gvc, g, fmt, &data, &len);
		gvFreeLayout(db->gvc, g);
		if (rc == 0 && out != NULL) {
			FILE *f = fopen(out, "w");
			bool ok = f != NULL && fwrite(data, 1, len, f) == len;

			if (f != NULL && fclose(f) != 0)
				ok = false;
			gvFreeRenderData(data);
			data = NULL;
			len = 0;
			if (!ok) {
				vdb_err("::dot: %s: cannot write: %s", out, strerror(errno));
				return -1;
			}
		}
	}
	if (rc != 0) {
		vdb_err("::dot: rendering %s failed%s%s", fmt, out != NULL ? " to " : "",
		        out != NULL ? out : "");
		if (data != NULL && strcmp(fmt, "dot") != 0)
			gvFreeRenderData(data);
		else
			free(data);
		return -1;
	}
	if (c->json) {
		vdb_json_t j;

		vj_init(&j, c->fp);
		vj_obj(&j);
		vj_kstr(&j, "format", fmt);
		vj_kstr(&j, "file", out);
		vj_ku64(&j, "nodes", (uint64_t)nodes);
		if (data != NULL) {
			vj_kstr(&j, "data", data);
		}
		vj_obj_end(&j);
		vj_end(&j);
	} else if (data != NULL) {
		fwrite(data, 1, len, c->fp);
	} else {
		fprintf(c->fp, "::dot: wrote %s (%s)\n", out, fmt);
	}
	if (data != NULL && strcmp(fmt, "dot") != 0)
		gvFreeRenderData(data);
	else
		free(data);
	return 0;
}

int dcmd_dot(vdb_call_t *c)
{
	vdb_t *db = c->db;
	const char *fmt = "dot", *out = NULL;
	const vsnap_arena_t *a = NULL;
	vdb_opt_t o = {0, 0, NULL};
	Agraph_t *g;
	int ch, rc, nodes;

	while ((ch = vdb_getopt(c, &o, "T:o:")) != -1) {
		if (ch == 'T') {
			fmt = o.arg;
		} else if (ch == 'o') {
			out = o.arg;
		} else if (ch == 1 && a == NULL) {
			if ((a = vdb_arena_lookup(db, o.arg)) == NULL) {
				vdb_err("::dot: no arena '%s'", o.arg);
				return -1;
			}
		} else {
			if (ch == 1)
				vdb_err("::dot: unexpected argument '%s'", o.arg);
			return -1;
		}
	}
	if (strcmp(fmt, "dot") != 0 && strcmp(fmt, "svg") != 0 && strcmp(fmt, "png") != 0) {
		vdb_err("::dot: unknown format '%s' (dot, svg or png)", fmt);
		return -1;
	}
	if (strcmp(fmt, "png") == 0 && out == NULL) {
		vdb_err("::dot: -T png needs -o FILE");
		return -1;
	}
	if (a == NULL && c->have_input) {
		size_t *idx, n;
		bool all;

		if (vdb_arenas_of_call(c, &idx, &n, &all) != 0)
			return -1;
		if (n != 1) {
			free(idx);
			vdb_err("::dot: one arena at a time");
			return -1;
		}
		a = &db->s->arenas[idx[0]];
		free(idx);
	}
	g = a != NULL ? segment_map(db, a) : import_tree(db);
	if (g == NULL) {
		vdb_err("::dot: out of memory");
		return -1;
	}
	nodes = agnnodes(g);
	rc = render(c, g, fmt, out, nodes);
	agclose(g);
	return rc;
}

void vdb_dot_fini(vdb_t *db)
{
	if (db->gvc != NULL)
		gvFreeContext(db->gvc);
	db->gvc = NULL;
}
