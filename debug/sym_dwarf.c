/*
 * DWARF side of the symbolizer, on libdwarf 20210528 (the "old-style" API).
 *
 * Per object: a CU index (address ranges -> CU DIE offset) built once at
 * open, from .debug_aranges when present, else from each CU DIE's own
 * low_pc/high_pc or DW_AT_ranges (clang emits no aranges).
 *
 * Per CU, built on the first lookup that lands in it and kept until close:
 *   - files: the line table's file names, indexed by DWARF file number
 *     minus the table's base (0 in DWARF 5, 1 before);
 *   - scopes: every DW_TAG_subprogram with code and every
 *     DW_TAG_inlined_subroutine inside one, in DIE preorder, each with
 *     `end` = index past its last descendant, its ranges, its name
 *     (through DW_AT_abstract_origin / DW_AT_specification when the DIE
 *     has none) and, for inlined ones, the call site (call_file/call_line);
 *   - funcs: a range index of the real (not inlined) functions' ranges, so
 *     hot/cold splits and .text.startup are found like any function;
 *   - rows: the line rows, sequences sorted by address, binary searched.
 * A lookup is then: CU index, funcs index, a walk down the inlined
 * children containing the address (each level looks at direct children
 * only), and the line rows.
 *
 * libdwarf 20210528 starts the line state machine's file register at 0
 * in DWARF 5 tables (the standard says 1; fixed upstream later), so rows
 * before a sequence's first DW_LNS_set_file report file 0.  gcc never sets
 * file 0 explicitly and relies on the default 1; clang sets 0 explicitly
 * for the primary file.  We repair such rows to file 1 unless the function
 * starting the sequence is declared in file 0 (clang's primary file).
 *
 * Every libdwarf call gets an error pointer (never the abort-on-error
 * handler); errors are freed at once and the item is skipped.
 */
#include "sym_impl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libdwarf/libdwarf.h>
#include <libdwarf/dwarf.h>

#define ROW_END    UINT32_MAX       /* file of a row ending a sequence: no line from here */
#define ROW_NOFILE (UINT32_MAX - 1) /* a line without a usable file number */
#define NO_SCOPE   UINT32_MAX
#define MAX_DEPTH  64 /* DIE nesting and inline chains deeper than this are cut */

typedef struct sym_row {
	uint64_t addr;
	uint32_t line;
	uint32_t file; /* index into files, or ROW_END / ROW_NOFILE */
} sym_row_t;

typedef struct sym_scope {
	const char *name;
	const char *call_file; /* inlined scopes: the call, in the parent's source */
	uint32_t call_line;
	uint32_t end; /* preorder: index past the last descendant */
	uint32_t range_first, range_count;
	int64_t decl_file; /* raw DWARF file number, -1 if unknown */
	int inlined;
} sym_scope_t;

typedef struct sym_cu {
	const char **files;
	size_t nfiles;
	int64_t file_base;
	sym_scope_t *scopes;
	size_t nscopes;
	sym_range_t *ranges; /* every scope's ranges, grouped by scope */
	sym_rindex_t funcs;  /* real functions' ranges, id = scope index */
	sym_row_t *rows;
	size_t nrows;
} sym_cu_t;

struct sym_dwarf {
	Dwarf_Debug dbg;
	sym_rindex_t cu_index; /* id = CU DIE offset */
	uint64_t *cu_offs;     /* sorted, unique */
	sym_cu_t **cus;        /* cache of cu_offs[i], NULL until loaded */
	uint8_t *cu_failed;    /* load tried and failed: do not retry */
	size_t ncus;
};

/* State while one CU is loaded. */
typedef struct cu_build {
	Dwarf_Debug dbg;
	sym_arena_t *strings;
	sym_cu_t *cu;
	uint64_t cu_base; /* the CU's DW_AT_low_pc: base of DWARF 4 range lists */
	size_t scope_cap;
	sym_rvec_t ranges; /* id = scope index */
} cu_build_t;

/* Free a libdwarf error (if any) and pass the verdict through. */
static int dw(Dwarf_Debug dbg, int res, Dwarf_Error *err)
{
	if (res == DW_DLV_ERROR && *err != NULL)
		dwarf_dealloc(dbg, *err, DW_DLA_ERROR);
	*err = NULL;
	return res;
}

/* ---- attributes ------------------------------------------------------ */

/* An unsigned constant attribute.  dwarf_formudata() of this libdwarf
 * rejects DW_FORM_implicit_const (the value kept in the abbreviation, which
 * gcc uses for DW_AT_call_file/call_line/decl_file): dwarf_formsdata()
 * reads it. */
static int die_udata(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at, Dwarf_Unsigned *out)
{
	Dwarf_Attribute attr = NULL;
	Dwarf_Half form = 0;
	Dwarf_Signed sv = 0;
	Dwarf_Error err = NULL;
	int res = dw(dbg, dwarf_attr(die, at, &attr, &err), &err);

	if (res != DW_DLV_OK)
		return res;
	res = dw(dbg, dwarf_whatform(attr, &form, &err), &err);
	if (res == DW_DLV_OK && form == DW_FORM_implicit_const) {
		res = dw(dbg, dwarf_formsdata(attr, &sv, &err), &err);
		if (res == DW_DLV_OK && sv < 0)
			res = DW_DLV_NO_ENTRY;
		*out = (Dwarf_Unsigned)sv;
	} else if (res == DW_DLV_OK) {
		res = dw(dbg, dwarf_formudata(attr, out, &err), &err);
	}
	dwarf_dealloc_attribute(attr);
	return res;
}

/* A reference attribute as a .debug_info offset. */
static int die_ref(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at, Dwarf_Off *out)
{
	Dwarf_Attribute attr = NULL;
	Dwarf_Error err = NULL;
	int res = dw(dbg, dwarf_attr(die, at, &attr, &err), &err);

	if (res != DW_DLV_OK)
		return res;
	res = dw(dbg, dwarf_global_formref(attr, out, &err), &err);
	dwarf_dealloc_attribute(attr);
	return res;
}

static uint64_t die_lowpc_or_zero(Dwarf_Debug dbg, Dwarf_Die die)
{
	Dwarf_Addr lo = 0;
	Dwarf_Error err = NULL;

	if (dw(dbg, dwarf_lowpc(die, &lo, &err), &err) != DW_DLV_OK)
		return 0;
	return lo;
}

/* ---- address ranges ------------------------------------------------- */

/* Linkers leave discarded code (gc-sections, COMDAT) at 0 or at -1/-2. */
static int add_code_range(sym_rvec_t *r, uint64_t lo, uint64_t hi, uint64_t id)
{
	if (lo == 0 || lo >= UINT64_MAX - 1)
		return 0;
	return sym_rvec_add(r, lo, hi, id);
}

static int is_rle_range(unsigned code)
{
	return code == DW_RLE_offset_pair || code == DW_RLE_start_end ||
	       code == DW_RLE_start_length || code == DW_RLE_startx_endx ||
	       code == DW_RLE_startx_length;
}

/* DWARF 5 DW_AT_ranges (.debug_rnglists): libdwarf applies the bases
 * (DW_RLE_base_address*, the CU's low_pc, .debug_addr) in cooked values. */
static int rnglist_ranges(Dwarf_Debug dbg, Dwarf_Attribute attr, Dwarf_Half form,
                          Dwarf_Unsigned value, sym_rvec_t *r, uint64_t id)
{
	Dwarf_Rnglists_Head head = NULL;
	Dwarf_Unsigned count = 0, goff = 0, i;
	Dwarf_Error err = NULL;
	int rc = 0;

	if (dw(dbg, dwarf_rnglists_get_rle_head(attr, form, value, &head, &count, &goff, &err),
	       &err) != DW_DLV_OK)
		return 0;
	for (i = 0; i < count && rc == 0; i++) {
		unsigned len = 0, code = 0;
		Dwarf_Unsigned raw1 = 0, raw2 = 0, lo = 0, hi = 0;
		Dwarf_Bool unavailable = 0;

		if (dw(dbg,
		       dwarf_get_rnglists_entry_fields_a(head, i, &len, &code, &raw1, &raw2,
		                                         &unavailable, &lo, &hi, &err),
		       &err) != DW_DLV_OK)
			continue;
		if (!unavailable && is_rle_range(code))
			rc = add_code_range(r, lo, hi, id);
	}
	dwarf_dealloc_rnglists_head(head);
	return rc;
}

/* DWARF 2-4 DW_AT_ranges (.debug_ranges): offsets from the CU base,
 * which base-address-selection entries replace. */
static int ranges_v4(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Unsigned off, uint64_t base,
                     sym_rvec_t *r, uint64_t id)
{
	Dwarf_Ranges *rb = NULL;
	Dwarf_Signed n = 0, i;
	Dwarf_Unsigned bytes = 0;
	Dwarf_Off real = 0;
	Dwarf_Error err = NULL;
	int rc = 0;

	if (dw(dbg, dwarf_get_ranges_b(dbg, off, die, &real, &rb, &n, &bytes, &err), &err) !=
	    DW_DLV_OK)
		return 0;
	for (i = 0; i < n && rc == 0; i++) {
		if (rb[i].dwr_type == DW_RANGES_END)
			break;
		if (rb[i].dwr_type == DW_RANGES_ADDRESS_SELECTION)
			base = rb[i].dwr_addr2;
		else
			rc = add_code_range(r, base + rb[i].dwr_addr1, base + rb[i].dwr_addr2, id);
	}
	dwarf_ranges_dealloc(dbg, rb, n);
	return rc;
}

static int attr_ranges(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Attribute attr, uint64_t cu_base,
                       sym_rvec_t *r, uint64_t id)
{
	Dwarf_Half version = 0, offsize = 0, form = 0;
	Dwarf_Unsigned value = 0;
	Dwarf_Off off = 0;
	Dwarf_Error err = NULL;

	if (dw(dbg, dwarf_whatform(attr, &form, &err), &err) != DW_DLV_OK)
		return 0;
	if (form != DW_FORM_rnglistx &&
	    dw(dbg, dwarf_global_formref(attr, &off, &err), &err) == DW_DLV_OK)
		value = off;
	else if (dw(dbg, dwarf_formudata(attr, &value, &err), &err) != DW_DLV_OK)
		return 0;
	if (dwarf_get_version_of_die(die, &version, &offsize) != DW_DLV_OK)
		return 0;
	if (version >= 5)
		return rnglist_ranges(dbg, attr, form, value, r, id);
	return ranges_v4(dbg, die, value, cu_base, r, id);
}

/* Append the code ranges of die (low_pc/high_pc or DW_AT_ranges) to r.
 * 0 (possibly nothing added), or -1 if memory ran out. */
static int die_ranges(Dwarf_Debug dbg, Dwarf_Die die, uint64_t cu_base, sym_rvec_t *r, uint64_t id)
{
	Dwarf_Attribute attr = NULL;
	Dwarf_Addr lo = 0, hi = 0;
	Dwarf_Half form = 0;
	enum Dwarf_Form_Class cls = DW_FORM_CLASS_UNKNOWN;
	Dwarf_Error err = NULL;
	int rc;

	if (dw(dbg, dwarf_attr(die, DW_AT_ranges, &attr, &err), &err) == DW_DLV_OK) {
		rc = attr_ranges(dbg, die, attr, cu_base, r, id);
		dwarf_dealloc_attribute(attr);
		return rc;
	}
	if (dw(dbg, dwarf_lowpc(die, &lo, &err), &err) != DW_DLV_OK ||
	    dw(dbg, dwarf_highpc_b(die, &hi, &form, &cls, &err), &err) != DW_DLV_OK)
		return 0;
	if (cls == DW_FORM_CLASS_CONSTANT)
		hi += lo; /* DWARF 4+: high_pc is the length */
	return add_code_range(r, lo, hi, id);
}

/* ---- the CU index --------------------------------------------------- */

static void index_from_aranges(Dwarf_Debug dbg, sym_rvec_t *r)
{
	Dwarf_Arange *ar = NULL;
	Dwarf_Signed n = 0, i;
	Dwarf_Error err = NULL;

	if (dw(dbg, dwarf_get_aranges(dbg, &ar, &n, &err), &err) != DW_DLV_OK)
		return;
	for (i = 0; i < n; i++) {
		Dwarf_Unsigned seg = 0, segsize = 0, len = 0;
		Dwarf_Addr start = 0;
		Dwarf_Off cuoff = 0;

		if (dw(dbg,
		       dwarf_get_arange_info_b(ar[i], &seg, &segsize, &start, &len, &cuoff, &err),
		       &err) == DW_DLV_OK)
			add_code_range(r, start, start + len, cuoff);
		dwarf_dealloc(dbg, ar[i], DW_DLA_ARANGE);
	}
	dwarf_dealloc(dbg, ar, DW_DLA_LIST);
}

/* No aranges: read every CU header and its DIE's ranges.  Runs the
 * (stateful) CU iteration to its end, once per object. */
static void index_from_cus(Dwarf_Debug dbg, sym_rvec_t *r)
{
	for (;;) {
		Dwarf_Unsigned hdrlen = 0, typeoff = 0, next = 0;
		Dwarf_Half version = 0, asize = 0, lsize = 0, esize = 0, cutype = 0;
		Dwarf_Off abbrev = 0, off = 0;
		Dwarf_Sig8 sig;
		Dwarf_Die cu = NULL;
		Dwarf_Error err = NULL;

		if (dw(dbg,
		       dwarf_next_cu_header_d(dbg, 1, &hdrlen, &version, &abbrev, &asize, &lsize,
		                              &esize, &sig, &typeoff, &next, &cutype, &err),
		       &err) != DW_DLV_OK)
			break;
		if (dw(dbg, dwarf_siblingof_b(dbg, NULL, 1, &cu, &err), &err) != DW_DLV_OK)
			continue;
		if (dw(dbg, dwarf_dieoffset(cu, &off, &err), &err) == DW_DLV_OK)
			die_ranges(dbg, cu, die_lowpc_or_zero(dbg, cu), r, off);
		dwarf_dealloc_die(cu);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* cu_offs: the distinct CU offsets named by the index, sorted. */
static int build_cu_table(sym_dwarf_t *d)
{
	size_t i, n = 0;

	d->cu_offs = malloc((d->cu_index.n + 1) * sizeof(*d->cu_offs));
	if (d->cu_offs == NULL)
		return -1;
	for (i = 0; i < d->cu_index.n; i++)
		d->cu_offs[i] = d->cu_index.v[i].id;
	qsort(d->cu_offs, d->cu_index.n, sizeof(*d->cu_offs), cmp_u64);
	for (i = 0; i < d->cu_index.n; i++)
		if (n == 0 || d->cu_offs[n - 1] != d->cu_offs[i])
			d->cu_offs[n++] = d->cu_offs[i];
	d->ncus = n;
	d->cus = calloc(n + 1, sizeof(*d->cus));
	d->cu_failed = calloc(n + 1, 1);
	return d->cus != NULL && d->cu_failed != NULL ? 0 : -1;
}

static int build_cu_index(sym_dwarf_t *d)
{
	sym_rvec_t r = {0};

	index_from_aranges(d->dbg, &r);
	if (r.n == 0)
		index_from_cus(d->dbg, &r);
	if (sym_rindex_build(&d->cu_index, &r) != 0 || d->cu_index.n == 0)
		return -1;
	return build_cu_table(d);
}

sym_dwarf_t *sym_dwarf_open(const char *path, int follow_links, sym_arena_t *strings,
                            const char **debug_path)
{
	char true_path[PATH_MAX];
	Dwarf_Debug dbg = NULL;
	Dwarf_Error err = NULL;
	sym_dwarf_t *d;
	int res;

	/* No output buffer: dwarf_init_path then skips the debuglink search. */
	true_path[0] = '\0';
	res = dwarf_init_path(path, follow_links ? true_path : NULL,
	                      follow_links ? (unsigned)sizeof(true_path) : 0, DW_DLC_READ,
	                      DW_GROUPNUMBER_ANY, NULL, NULL, &dbg, NULL, 0, NULL, &err);
	if (dw(NULL, res, &err) != DW_DLV_OK)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		dwarf_finish(dbg, &err);
		return NULL;
	}
	d->dbg = dbg;
	if (build_cu_index(d) != 0) {
		sym_dwarf_close(d);
		return NULL;
	}
	if (debug_path != NULL && true_path[0] != '\0' && strcmp(true_path, path) != 0)
		*debug_path = sym_arena_strdup(strings, true_path);
	return d;
}

static void cu_free(sym_cu_t *cu)
{
	if (cu == NULL)
		return;
	free(cu->files);
	free(cu->scopes);
	free(cu->ranges);
	sym_rindex_free(&cu->funcs);
	free(cu->rows);
	free(cu);
}

void sym_dwarf_close(sym_dwarf_t *d)
{
	Dwarf_Error err = NULL;
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->ncus; i++)
		cu_free(d->cus[i]);
	free(d->cus);
	free(d->cu_failed);
	free(d->cu_offs);
	sym_rindex_free(&d->cu_index);
	dw(d->dbg, dwarf_finish(d->dbg, &err), &err);
	free(d);
}

/* ---- loading one CU: files ----------------------------------------- */

/* The line table's file names, full paths as dwarf_srcfiles builds them. */
static void load_files(cu_build_t *b, Dwarf_Die cu_die, Dwarf_Line_Context lc,
                       Dwarf_Unsigned line_version)
{
	Dwarf_Signed base = 0, count = 0, endidx = 0, n = 0, i;
	char **src = NULL;
	Dwarf_Error err = NULL;

	if (dw(b->dbg, dwarf_srclines_files_indexes(lc, &base, &count, &endidx, &err), &err) !=
	    DW_DLV_OK)
		base = line_version >= 5 ? 0 : 1;
	b->cu->file_base = base;
	if (dw(b->dbg, dwarf_srcfiles(cu_die, &src, &n, &err), &err) != DW_DLV_OK)
		return;
	b->cu->files = calloc((size_t)n + 1, sizeof(*b->cu->files));
	for (i = 0; i < n; i++) {
		if (b->cu->files != NULL)
			b->cu->files[i] = sym_arena_strdup(b->strings, src[i]);
		dwarf_dealloc(b->dbg, src[i], DW_DLA_STRING);
	}
	dwarf_dealloc(b->dbg, src, DW_DLA_LIST);
	if (b->cu->files != NULL)
		b->cu->nfiles = (size_t)n;
}

/* Index into files of a raw DWARF file number, ROW_NOFILE if out of range. */
static uint32_t file_index(const sym_cu_t *cu, uint64_t raw)
{
	if (raw < (uint64_t)cu->file_base || raw - (uint64_t)cu->file_base >= cu->nfiles)
		return ROW_NOFILE;
	return (uint32_t)(raw - (uint64_t)cu->file_base);
}

static const char *file_name(const sym_cu_t *cu, uint32_t idx)
{
	return idx < cu->nfiles ? cu->files[idx] : NULL;
}

/* ---- loading one CU: scopes ---------------------------------------- */

/*
 * Name and declaration file of a function DIE.  Out-of-line copies of
 * inlined functions and inlined calls have neither: they point at the
 * abstract instance (DW_AT_abstract_origin), and definitions of declared
 * functions at the declaration (DW_AT_specification).
 */
static void origin_info(cu_build_t *b, Dwarf_Die die, const char **name, int64_t *decl_file)
{
	Dwarf_Die cur = die;
	int hops;

	*name = NULL;
	*decl_file = -1;
	for (hops = 0; hops < 8 && cur != NULL; hops++) {
		Dwarf_Die next = NULL;
		Dwarf_Unsigned df = 0;
		Dwarf_Off ref = 0;
		Dwarf_Error err = NULL;
		char *nm = NULL;

		if (*decl_file < 0 && die_udata(b->dbg, cur, DW_AT_decl_file, &df) == DW_DLV_OK)
			*decl_file = (int64_t)df;
		if (dw(b->dbg, dwarf_diename(cur, &nm, &err), &err) == DW_DLV_OK) {
			*name = sym_arena_strdup(b->strings, nm); /* nm lives in a section */
			break;
		}
		if (die_ref(b->dbg, cur, DW_AT_abstract_origin, &ref) != DW_DLV_OK &&
		    die_ref(b->dbg, cur, DW_AT_specification, &ref) != DW_DLV_OK)
			break;
		if (dw(b->dbg, dwarf_offdie_b(b->dbg, ref, 1, &next, &err), &err) != DW_DLV_OK)
			next = NULL;
		if (cur != die)
			dwarf_dealloc_die(cur);
		cur = next;
	}
	if (cur != NULL && cur != die)
		dwarf_dealloc_die(cur);
}

static void call_site(cu_build_t *b, Dwarf_Die die, sym_scope_t *s)
{
	Dwarf_Unsigned v = 0;

	if (die_udata(b->dbg, die, DW_AT_call_file, &v) == DW_DLV_OK)
		s->call_file = file_name(b->cu, file_index(b->cu, v));
	if (die_udata(b->dbg, die, DW_AT_call_line, &v) == DW_DLV_OK)
		s->call_line = (uint32_t)v;
}

static void walk_children(cu_build_t *b, Dwarf_Die parent, int in_func, int depth);

/* A function or inlined call with code becomes a scope, then its children
 * are walked (inlined calls nest); one without code (a declaration, an
 * abstract instance) is skipped with its children. */
static void add_scope(cu_build_t *b, Dwarf_Die die, int inlined, int depth)
{
	size_t first = b->ranges.n, s = b->cu->nscopes;
	sym_scope_t *sc;

	if (s >= NO_SCOPE - 1 ||
	    sym_grow((void **)&b->cu->scopes, &b->scope_cap, s + 1, sizeof(*sc)) != 0)
		return;
	if (die_ranges(b->dbg, die, b->cu_base, &b->ranges, s) != 0 || b->ranges.n == first) {
		b->ranges.n = first;
		return;
	}
	sc = &b->cu->scopes[s];
	memset(sc, 0, sizeof(*sc));
	sc->range_first = (uint32_t)first;
	sc->range_count = (uint32_t)(b->ranges.n - first);
	sc->inlined = inlined;
	origin_info(b, die, &sc->name, &sc->decl_file);
	if (inlined)
		call_site(b, die, sc);
	b->cu->nscopes = s + 1;
	walk_children(b, die, 1, depth + 1);
	b->cu->scopes[s].end = (uint32_t)b->cu->nscopes; /* scopes may have moved */
}

static void visit(cu_build_t *b, Dwarf_Die die, int in_func, int depth)
{
	Dwarf_Half tag = 0;
	Dwarf_Error err = NULL;

	if (dw(b->dbg, dwarf_tag(die, &tag, &err), &err) != DW_DLV_OK)
		return;
	switch (tag) {
	case DW_TAG_subprogram:
		add_scope(b, die, 0, depth);
		break;
	case DW_TAG_inlined_subroutine:
		if (in_func)
			add_scope(b, die, 1, depth);
		break;
	case DW_TAG_lexical_block:
	case DW_TAG_namespace:
	case DW_TAG_try_block:
	case DW_TAG_catch_block:
		walk_children(b, die, in_func, depth + 1); /* transparent */
		break;
	default:
		break; /* types, variables, parameters: no code */
	}
}

static void walk_children(cu_build_t *b, Dwarf_Die parent, int in_func, int depth)
{
	Dwarf_Die child = NULL;
	Dwarf_Error err = NULL;

	if (depth > MAX_DEPTH || dw(b->dbg, dwarf_child(parent, &child, &err), &err) != DW_DLV_OK)
		return;
	while (child != NULL) {
		Dwarf_Die next = NULL;

		visit(b, child, in_func, depth);
		if (dw(b->dbg, dwarf_siblingof_b(b->dbg, child, 1, &next, &err), &err) != DW_DLV_OK)
			next = NULL;
		dwarf_dealloc_die(child);
		child = next;
	}
}

/* funcs: the ranges of the real functions, for the first step of a lookup. */
static int build_funcs(sym_cu_t *cu)
{
	sym_rvec_t r = {0};
	size_t s, i;

	for (s = 0; s < cu->nscopes; s++) {
		const sym_scope_t *sc = &cu->scopes[s];

		if (sc->inlined)
			continue;
		for (i = 0; i < sc->range_count; i++) {
			const sym_range_t *g = &cu->ranges[sc->range_first + i];

			if (sym_rvec_add(&r, g->lo, g->hi, s) != 0) {
				free(r.v);
				return -1;
			}
		}
	}
	return sym_rindex_build(&cu->funcs, &r);
}

/* ---- loading one CU: line rows ------------------------------------- */

typedef struct seq {
	uint64_t addr;     /* of its first row */
	size_t first, end; /* rows [first, end) of the unsorted table */
} seq_t;

static int seq_cmp(const void *a, const void *b)
{
	const seq_t *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* See the top comment: the file of rows before a DWARF 5 sequence's first
 * DW_LNS_set_file, which libdwarf reports as 0. */
static uint64_t default_file(const sym_cu_t *cu, uint64_t addr)
{
	const sym_range_t *f = sym_rindex_find(&cu->funcs, addr);

	if (f != NULL && cu->scopes[f->id].decl_file == 0)
		return 0;
	return 1;
}

/* Read the rows, repairing DWARF 5 file numbers; returns the sequences. */
static seq_t *read_rows(cu_build_t *b, Dwarf_Line *lines, Dwarf_Signed n, int v5, size_t *nseq)
{
	seq_t *seqs = NULL;
	size_t seq_cap = 0, start = 0, i;
	uint64_t dflt = 1;
	int prefix = 1;

	*nseq = 0;
	b->cu->rows = malloc(((size_t)n + 1) * sizeof(*b->cu->rows));
	if (b->cu->rows == NULL)
		return NULL;
	for (i = 0; i < (size_t)n; i++) {
		Dwarf_Addr addr = 0;
		Dwarf_Unsigned line = 0, fileno = 0;
		Dwarf_Bool end = 0;
		Dwarf_Error err = NULL;
		sym_row_t *row = &b->cu->rows[i];

		dw(b->dbg, dwarf_lineaddr(lines[i], &addr, &err), &err);
		dw(b->dbg, dwarf_lineno(lines[i], &line, &err), &err);
		dw(b->dbg, dwarf_line_srcfileno(lines[i], &fileno, &err), &err);
		dw(b->dbg, dwarf_lineendsequence(lines[i], &end, &err), &err);
		if (i == start)
			dflt = v5 ? default_file(b->cu, addr) : 1;
		if (fileno != 0)
			prefix = 0;
		else if (v5 && prefix)
			fileno = dflt;
		row->addr = addr;
		row->line = (uint32_t)line;
		row->file = end ? ROW_END : file_index(b->cu, fileno);
		if (end || i + 1 == (size_t)n) {
			if (sym_grow((void **)&seqs, &seq_cap, *nseq + 1, sizeof(*seqs)) == 0) {
				seqs[*nseq].addr = b->cu->rows[start].addr;
				seqs[*nseq].first = start;
				seqs[(*nseq)++].end = i + 1;
			}
			start = i + 1;
			prefix = 1;
		}
	}
	return seqs;
}

/* Sequences are each sorted; order them by start address (a sequence
 * ending where the next begins puts its end row first, so the next
 * sequence's rows win the lookup at that address).  Sequences at address
 * 0 are code the linker discarded. */
static void sort_rows(sym_cu_t *cu, seq_t *seqs, size_t nseq)
{
	sym_row_t *out = malloc((cu->nrows + 1) * sizeof(*out));
	size_t i, n = 0;

	if (out == NULL) {
		cu->nrows = 0;
		return;
	}
	if (nseq > 1)
		qsort(seqs, nseq, sizeof(*seqs), seq_cmp);
	for (i = 0; i < nseq; i++) {
		if (seqs[i].addr == 0)
			continue;
		memcpy(out + n, cu->rows + seqs[i].first,
		       (seqs[i].end - seqs[i].first) * sizeof(*out));
		n += seqs[i].end - seqs[i].first;
	}
	free(cu->rows);
	cu->rows = out;
	cu->nrows = n;
}

static void load_rows(cu_build_t *b, Dwarf_Line_Context lc, Dwarf_Unsigned line_version)
{
	Dwarf_Line *lines = NULL;
	Dwarf_Signed n = 0;
	Dwarf_Error err = NULL;
	seq_t *seqs;
	size_t nseq = 0;

	if (dw(b->dbg, dwarf_srclines_from_linecontext(lc, &lines, &n, &err), &err) != DW_DLV_OK ||
	    n <= 0)
		return;
	seqs = read_rows(b, lines, n, line_version >= 5, &nseq);
	if (b->cu->rows == NULL)
		return;
	b->cu->nrows = (size_t)n;
	sort_rows(b->cu, seqs, nseq);
	free(seqs);
}

/* ---- loading one CU ------------------------------------------------ */

static sym_cu_t *load_cu(sym_dwarf_t *d, sym_arena_t *strings, uint64_t off)
{
	Dwarf_Die cu_die = NULL;
	Dwarf_Line_Context lc = NULL;
	Dwarf_Unsigned line_version = 0;
	Dwarf_Small table_count = 0;
	Dwarf_Error err = NULL;
	cu_build_t b = {.dbg = d->dbg, .strings = strings};

	if (dw(d->dbg, dwarf_offdie_b(d->dbg, off, 1, &cu_die, &err), &err) != DW_DLV_OK)
		return NULL;
	b.cu = calloc(1, sizeof(*b.cu));
	if (b.cu == NULL) {
		dwarf_dealloc_die(cu_die);
		return NULL;
	}
	b.cu_base = die_lowpc_or_zero(d->dbg, cu_die);
	if (dw(d->dbg, dwarf_srclines_b(cu_die, &line_version, &table_count, &lc, &err), &err) !=
	    DW_DLV_OK)
		lc = NULL;
	if (lc != NULL)
		load_files(&b, cu_die, lc, line_version);
	walk_children(&b, cu_die, 0, 0);
	b.cu->ranges = b.ranges.v;
	build_funcs(b.cu);
	if (lc != NULL) {
		load_rows(&b, lc, line_version);
		dwarf_srclines_dealloc_b(lc);
	}
	dwarf_dealloc_die(cu_die);
	return b.cu;
}

static sym_cu_t *get_cu(sym_dwarf_t *d, sym_arena_t *strings, uint64_t off)
{
	size_t lo = 0, hi = d->ncus;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->cu_offs[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == d->ncus || d->cu_offs[lo] != off || d->cu_failed[lo])
		return NULL;
	if (d->cus[lo] == NULL) {
		d->cus[lo] = load_cu(d, strings, off);
		d->cu_failed[lo] = d->cus[lo] == NULL;
	}
	return d->cus[lo];
}

/* ---- lookup -------------------------------------------------------- */

/* The row in effect at addr: the last at or below it, unless that one
 * ends a sequence. */
static const sym_row_t *row_find(const sym_cu_t *cu, uint64_t addr)
{
	size_t lo = 0, hi = cu->nrows;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cu->rows[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || cu->rows[lo - 1].file == ROW_END)
		return NULL;
	return &cu->rows[lo - 1];
}

static int scope_contains(const sym_cu_t *cu, uint32_t s, uint64_t addr)
{
	const sym_scope_t *sc = &cu->scopes[s];
	uint32_t i;

	for (i = 0; i < sc->range_count; i++) {
		const sym_range_t *r = &cu->ranges[sc->range_first + i];

		if (r->lo <= addr && addr < r->hi)
			return 1;
	}
	return 0;
}

/* path[0] = the real function, then each inlined call containing addr. */
static int inline_path(const sym_cu_t *cu, uint32_t func, uint64_t addr, uint32_t *path)
{
	int depth = 0;
	uint32_t cur = func;

	path[depth++] = func;
	while (depth < MAX_DEPTH) {
		uint32_t c = cur + 1, found = NO_SCOPE;

		for (; c < cu->scopes[cur].end; c = cu->scopes[c].end) {
			if (cu->scopes[c].inlined && scope_contains(cu, c, addr)) {
				found = c;
				break;
			}
		}
		if (found == NO_SCOPE)
			break;
		path[depth++] = found;
		cur = found;
	}
	return depth;
}

static int cu_frames(const sym_cu_t *cu, uint64_t vaddr, uint64_t report, vmem_sym_frame_t *fr,
                     int max)
{
	const sym_range_t *fn = sym_rindex_find(&cu->funcs, vaddr);
	const sym_row_t *row = row_find(cu, vaddr);
	uint32_t path[MAX_DEPTH];
	int depth, n, i;

	if (fn == NULL) {
		if (row == NULL)
			return 0;
		memset(&fr[0], 0, sizeof(fr[0]));
		fr[0].file = file_name(cu, row->file);
		fr[0].line = row->line;
		return 1;
	}
	depth = inline_path(cu, (uint32_t)fn->id, vaddr, path);
	n = depth < max ? depth : max;
	for (i = 0; i < n; i++) {
		int k = depth - 1 - i; /* frames innermost first */
		vmem_sym_frame_t *f = &fr[i];

		memset(f, 0, sizeof(*f));
		f->function = cu->scopes[path[k]].name;
		if (k == depth - 1 && row != NULL) {
			f->file = file_name(cu, row->file);
			f->line = row->line;
		} else if (k < depth - 1) {
			f->file = cu->scopes[path[k + 1]].call_file;
			f->line = cu->scopes[path[k + 1]].call_line;
		}
		f->inlined = k > 0;
		f->offset = (uintptr_t)(report - fn->lo);
	}
	return n;
}

int sym_dwarf_lookup(sym_dwarf_t *d, sym_arena_t *strings, uint64_t vaddr, uint64_t report_vaddr,
                     vmem_sym_frame_t *frames, int max)
{
	const sym_range_t *r = sym_rindex_find(&d->cu_index, vaddr);
	sym_cu_t *cu;

	if (r == NULL || max <= 0)
		return 0;
	cu = get_cu(d, strings, r->id);
	if (cu == NULL)
		return 0;
	return cu_frames(cu, vaddr, report_vaddr, frames, max);
}
