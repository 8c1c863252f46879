/*
 * The command language, in the style of mdb:
 *
 *   [ADDR]::dcmd [args...] [| ::dcmd ...] [; ...]
 *
 * ADDR is a number (hex by default as in mdb; 0t for decimal) or an arena
 * name.  A pipeline hands the values a stage produces (arena or segment
 * addresses) to the next stage, which runs once over all of them; a stage
 * that is not last prints nothing.  Commands are separated by ';' or new
 * lines.  "$q" and "::quit" end the session.
 *
 * The prompt uses libedit (line editing, history in ~/.vmemdb_history);
 * when stdin is not a terminal, lines are read from it without a prompt.
 */
#include "vmemdb.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#define MAX_TOKENS 128
#define MAX_STAGES 16

static int dcmd_help(vdb_call_t *c);
static int dcmd_quit(vdb_call_t *c);

static const vdb_dcmd_t dcmds[] = {
    {"vmem", dcmd_vmem, "[ADDR]::vmem",
     "arenas in tree order: address, name (indented under its source), bytes in use, total "
     "bytes of spans, allocations that succeeded and failed\n"
     "  ADDR: one arena (address or name); piped arenas: those"},
    {"vmem_seg", dcmd_vmem_seg,
     "[ADDR]::vmem_seg [-sv] [-T type] [-m minsize] [-M maxsize] [-t thread] [-c caller] "
     "[-e earliest] [-l latest]",
     "segments: type (ALLC, FREE, SPAN, CACH: a cached object a caller holds), start, end "
     "and the allocating caller\n"
     "  ADDR: a segment (its tag or its start) or an arena (name or address); none: every "
     "arena\n"
     "  -v  verbose: size, thread, time and the symbolized stack\n"
     "  -s  SIZE instead of END\n"
     "  -T  only this type: ALLOC (ALLC), FREE, SPAN, CACHED (CACH)\n"
     "  -m/-M  minimum / maximum size (decimal; 0x for hex; K, M, G suffixes)\n"
     "  -t  allocating thread id; -c  a function in the allocation stack (or a pc)\n"
     "  -e/-l  earliest / latest allocation time (ns, CLOCK_MONOTONIC)\n"
     "  -t, -c, -e and -l keep only audited segments (libvmem-debug)"},
    {"walk", dcmd_walk, "[ADDR]::walk WALKER [ARENA]",
     "walk: vmem (arenas; ADDR: that arena's subtree), vmem_seg, vmem_alloc, vmem_free, "
     "vmem_span, vmem_cached (per arena, or every arena), leak (after ::findleaks)\n"
     "  prints one address per line, or passes the values down a pipeline"},
    {"findleaks", dcmd_findleaks, "[ARENA]::findleaks [-v]",
     "leaks grouped by allocation stack, largest first: count, bytes, a representative "
     "segment and its caller, then each group's stack\n"
     "  live process and core: segments no word of writable memory, stacks or registers "
     "refers to (a conservative scan skipping libvmem's metadata)\n"
     "  snapshot: every outstanding allocation (there is no memory to scan)\n"
     "  -v  list every member of every group"},
    {"vmem_log", dcmd_vmem_log, "[ADDR]::vmem_log [-v] [-t thread] [-o op] [-n count]",
     "the transaction log (libvmem-debug), newest first\n"
     "  ADDR: only records whose range contains ADDR\n"
     "  -v  with stacks; -t  one thread; -o  alloc, xalloc, free, xfree, qalloc, qfree, "
     "badfree; -n  at most count records"},
    {"whatis", dcmd_whatis, "ADDR::whatis",
     "which arena and segment hold ADDR, with the allocation's audit record; else the "
     "metadata region or the mapping"},
    {"kstat", dcmd_kstat, "[ARENA]::kstat",
     "the counters of every arena and quantum cache and the error counts, as "
     "vmem_kstat_print(): vmem:<id>:<name>:<statistic>\\t<value>"},
    {"dot", dcmd_dot, "[ARENA]::dot [-T dot|svg|png] [-o file] [ARENA]",
     "Graphviz: without an arena, the import tree (arenas with in-use/total, edges with "
     "imported bytes); with one, its segment map (spans as rows, segments coloured by "
     "state)\n"
     "  -T  output format (default dot); -o  write to file instead of standard output"},
    {"status", dcmd_status, "::status",
     "the target: kind, process, libvmem flavour and root, counts, notes"},
    {"help", dcmd_help, "::help [dcmd]", "the commands, or one command's options"},
    {"quit", dcmd_quit, "::quit", "leave (a live process is resumed); also $q"},
};

#define NDCMDS (sizeof(dcmds) / sizeof(dcmds[0]))

void vdb_err(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("vmemdb: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void vdb_vals_push(vdb_vals_t *v, enum vdb_val_kind kind, uint64_t addr, size_t idx)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		vdb_val_t *n = realloc(v->v, cap * sizeof(*n));

		if (n == NULL)
			return;
		v->v = n;
		v->cap = cap;
	}
	v->v[v->n].kind = kind;
	v->v[v->n].addr = addr;
	v->v[v->n].idx = idx;
	v->n++;
}

void vdb_vals_free(vdb_vals_t *v)
{
	free(v->v);
	v->v = NULL;
	v->n = v->cap = 0;
}

/* ---- options ------------------------------------------------------------------------ */

int vdb_getopt(vdb_call_t *c, vdb_opt_t *o, const char *spec)
{
	const char *a, *p;
	int ch;

	if (o->ind == 0)
		o->ind = 1;
	if (o->pos == 0) {
		if (o->ind >= c->argc)
			return -1;
		a = c->argv[o->ind];
		if (a[0] != '-' || a[1] == '\0') {
			o->arg = a; /* a positional argument */
			o->ind++;
			return 1;
		}
		o->pos = 1;
	}
	a = c->argv[o->ind];
	ch = (unsigned char)a[o->pos++];
	p = strchr(spec, ch);
	if (p == NULL || ch == ':') {
		vdb_err("::%s: unknown option -%c (see ::help %s)", c->argv[0], ch, c->argv[0]);
		return '?';
	}
	if (p[1] == ':') {
		if (a[o->pos] != '\0') {
			o->arg = a + o->pos;
		} else if (o->ind + 1 < c->argc) {
			o->arg = c->argv[++o->ind];
		} else {
			vdb_err("::%s: option -%c needs a value", c->argv[0], ch);
			return '?';
		}
		o->ind++;
		o->pos = 0;
		return ch;
	}
	if (a[o->pos] == '\0') {
		o->ind++;
		o->pos = 0;
	}
	return ch;
}

/* ---- help and quit --------------------------------------------------------------------- */

static const vdb_dcmd_t *find_dcmd(const char *name)
{
	for (size_t i = 0; i < NDCMDS; i++)
		if (strcmp(dcmds[i].name, name) == 0)
			return &dcmds[i];
	return NULL;
}

static int dcmd_help(vdb_call_t *c)
{
	const vdb_dcmd_t *d;

	if (c->argc > 1) {
		const char *name = c->argv[1] + (strncmp(c->argv[1], "::", 2) == 0 ? 2 : 0);

		if ((d = find_dcmd(name)) == NULL) {
			vdb_err("::help: no command '%s'", c->argv[1]);
			return -1;
		}
		if (c->json) {
			vdb_json_t j;

			vj_init(&j, c->fp);
			vj_obj(&j);
			vj_kstr(&j, "name", d->name);
			vj_kstr(&j, "usage", d->usage);
			vj_kstr(&j, "help", d->help);
			vj_obj_end(&j);
			vj_end(&j);
			return 0;
		}
		fprintf(c->fp, "%s\n%s\n", d->usage, d->help);
		return 0;
	}
	if (c->json) {
		vdb_json_t j;

		vj_init(&j, c->fp);
		vj_arr(&j);
		for (size_t i = 0; i < NDCMDS; i++) {
			vj_obj(&j);
			vj_kstr(&j, "name", dcmds[i].name);
			vj_kstr(&j, "usage", dcmds[i].usage);
			vj_obj_end(&j);
		}
		vj_arr_end(&j);
		vj_end(&j);
		return 0;
	}
	fprintf(c->fp, "commands ([ADDR]::dcmd [args] [| ::dcmd ...] [; ...]; --json on any):\n");
	for (size_t i = 0; i < NDCMDS; i++) {
		size_t len = strcspn(dcmds[i].help, "\n");

		fprintf(c->fp, "  %-12s %.*s\n", dcmds[i].name, (int)len, dcmds[i].help);
	}
	fprintf(c->fp, "::help dcmd for options.  Numbers: ADDR is hex (0t for decimal), option "
	               "values decimal (0x for hex).\n");
	return 0;
}

static int dcmd_quit(vdb_call_t *c)
{
	c->db->quit = true;
	return 0;
}

/* ---- tokens ------------------------------------------------------------------------ */

typedef struct stage {
	char *tok[MAX_TOKENS];
	int ntok;
} stage_t;

/*
 * Split one command (no ';' inside, quotes honoured) into pipeline stages of
 * tokens.  Tokens point into buf, which is modified.  -1 on a syntax error.
 */
static int tokenize(char *buf, stage_t *st, int *nst)
{
	char *r = buf, *w;
	int ns = 0;

	st[0].ntok = 0;
	while (*r != '\0') {
		char quote = 0;

		while (isspace((unsigned char)*r))
			r++;
		if (*r == '\0')
			break;
		if (*r == '|') {
			if (st[ns].ntok == 0 || ns + 1 >= MAX_STAGES) {
				vdb_err("syntax error: empty pipeline stage");
				return -1;
			}
			st[++ns].ntok = 0;
			r++;
			continue;
		}
		if (st[ns].ntok >= MAX_TOKENS - 1) {
			vdb_err("syntax error: too many words");
			return -1;
		}
		st[ns].tok[st[ns].ntok++] = w = r;
		while (*r != '\0' && (quote || (!isspace((unsigned char)*r) && *r != '|'))) {
			if (quote && *r == quote) {
				quote = 0;
				r++;
			} else if (!quote && (*r == '\'' || *r == '"')) {
				quote = *r++;
			} else {
				*w++ = *r++;
			}
		}
		if (quote) {
			vdb_err("syntax error: unterminated quote");
			return -1;
		}
		{
			/* w may be r itself: keep the stop character before ending the token */
			char stop = *r;

			*w = '\0';
			if (stop == '\0')
				break;
			r++;
			if (stop == '|') {
				if (ns + 1 >= MAX_STAGES) {
					vdb_err("syntax error: too many pipeline stages");
					return -1;
				}
				st[++ns].ntok = 0;
			}
		}
	}
	if (st[ns].ntok == 0 && ns > 0) {
		vdb_err("syntax error: empty pipeline stage");
		return -1;
	}
	*nst = st[0].ntok == 0 ? 0 : ns + 1;
	return 0;
}

/* ADDR before ::: a number, or an arena's name.  -1 if it is neither. */
static int resolve_addr(vdb_t *db, const char *tok, vdb_val_t *v)
{
	const vsnap_arena_t *a = NULL;
	uint64_t n;
	bool numeric = isdigit((unsigned char)tok[0]);

	if (!numeric)
		a = vdb_arena_lookup(db, tok);
	if (a != NULL) {
		v->kind = VAL_ARENA;
		v->idx = vdb_arena_index(db, a);
		v->addr = a->a.ar_addr;
		return 0;
	}
	if (vdb_parse_num(tok, 16, false, &n)) {
		v->kind = VAL_ADDR;
		v->addr = n;
		v->idx = 0;
		return 0;
	}
	vdb_err("'%s' is neither an address nor an arena", tok);
	return -1;
}

/* Split a stage's words into ADDR, the command name and its arguments. */
static int parse_stage(vdb_t *db, stage_t *st, bool first, vdb_val_t *addr, bool *have_addr,
                       const vdb_dcmd_t **d, int *argi)
{
	char *t0 = st->tok[0], *sep = strstr(t0, "::"), *name;

	*have_addr = false;
	if (sep == NULL && st->ntok > 1 && strncmp(st->tok[1], "::", 2) == 0) {
		/* "ADDR ::dcmd" */
		if (resolve_addr(db, t0, addr) != 0)
			return -1;
		*have_addr = true;
		name = st->tok[1] + 2;
		*argi = 1;
	} else if (sep != NULL) {
		*sep = '\0';
		if (*t0 != '\0') {
			if (resolve_addr(db, t0, addr) != 0)
				return -1;
			*have_addr = true;
		}
		name = sep + 2;
		*argi = 0;
	} else {
		vdb_err("'%s': expected [ADDR]::dcmd (see ::help)", t0);
		return -1;
	}
	if (*have_addr && !first) {
		vdb_err("::%s: an address cannot follow a pipe", name);
		return -1;
	}
	if ((*d = find_dcmd(name)) == NULL) {
		vdb_err("no command '::%s' (see ::help)", name);
		return -1;
	}
	st->tok[*argi] = (char *)(*d)->name;
	return 0;
}

/* Run one command: a pipeline of stages. */
static int run_command(vdb_t *db, char *text)
{
	stage_t st[MAX_STAGES];
	vdb_vals_t vals[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
	int nst, rc = 0, cur = 0;

	if (tokenize(text, st, &nst) != 0)
		return -1;
	if (nst == 0)
		return 0;
	if (nst == 1 && st[0].ntok == 1 && strcmp(st[0].tok[0], "$q") == 0) {
		db->quit = true;
		return 0;
	}
	for (int i = 0; i < nst && rc == 0; i++) {
		const vdb_dcmd_t *d;
		vdb_val_t addr;
		bool have_addr;
		int argi, argc = 0;
		char *argv[MAX_TOKENS];
		vdb_call_t c;

		if (parse_stage(db, &st[i], i == 0, &addr, &have_addr, &d, &argi) != 0) {
			rc = -1;
			break;
		}
		memset(&c, 0, sizeof(c));
		c.db = db;
		c.json = db->json;
		for (int k = argi; k < st[i].ntok; k++) {
			if (strcmp(st[i].tok[k], "--json") == 0)
				c.json = true;
			else
				argv[argc++] = st[i].tok[k];
		}
		argv[argc] = NULL;
		c.argc = argc;
		c.argv = argv;
		c.fp = db->out;
		if (i == 0) {
			c.have_input = have_addr;
			c.in = have_addr ? &addr : NULL;
			c.nin = have_addr ? 1 : 0;
		} else {
			c.have_input = true;
			c.in = vals[cur].v;
			c.nin = vals[cur].n;
		}
		vals[!cur].n = 0;
		c.pipe = i + 1 < nst ? &vals[!cur] : NULL;
		rc = d->fn(&c);
		cur = !cur;
		if (rc == 0 && c.pipe != NULL && vals[cur].n == 0)
			break; /* nothing to hand down */
	}
	vdb_vals_free(&vals[0]);
	vdb_vals_free(&vals[1]);
	fflush(db->out);
	return rc;
}

int vdb_run_line(vdb_t *db, const char *line)
{
	size_t len = strlen(line);
	char *buf = malloc(len + 1), *p;
	int rc = 0;

	if (buf == NULL)
		return -1;
	memcpy(buf, line, len + 1);
	p = buf;
	while (p != NULL && rc == 0 && !db->quit) {
		char *end = p;
		char quote = 0;

		/* the end of this command: ';' or a new line outside quotes */
		for (; *end != '\0'; end++) {
			if (quote) {
				if (*end == quote)
					quote = 0;
			} else if (*end == '\'' || *end == '"') {
				quote = *end;
			} else if (*end == ';' || *end == '\n') {
				break;
			}
		}
		if (*end != '\0')
			*end++ = '\0';
		else
			end = NULL;
		rc = run_command(db, p);
		p = end;
	}
	free(buf);
	return rc;
}

/* ---- the prompt ----------------------------------------------------------------------- */

static char *history_path(void)
{
	const char *home = getenv("HOME");
	char *p;

	if (home == NULL || *home == '\0')
		return NULL;
	p = malloc(strlen(home) + 32);
	if (p != NULL)
		sprintf(p, "%s/.vmemdb_history", home);
	return p;
}

static int repl_tty(vdb_t *db)
{
	char *hist = history_path(), *line;
	int status = 0;

	using_history();
	stifle_history(1000);
	if (hist != NULL)
		(void)read_history(hist);
	while (!db->quit && (line = readline("> ")) != NULL) {
		if (*line != '\0') {
			add_history(line);
			if (vdb_run_line(db, line) != 0)
				status = 1;
		}
		free(line);
	}
	if (hist != NULL)
		(void)write_history(hist);
	free(hist);
	return status;
}

int vdb_repl(vdb_t *db)
{
	char *line = NULL;
	size_t cap = 0;
	int status = 0;

	if (isatty(STDIN_FILENO))
		return repl_tty(db);
	while (!db->quit && getline(&line, &cap, stdin) >= 0) {
		if (vdb_run_line(db, line) != 0)
			status = 1;
	}
	free(line);
	return status;
}
