/*
 * ELF side of the symbolizer, on libelf (elfutils): function symbols for
 * code DWARF does not name (crt's _start, assembler, objects built without
 * -g, libraries whose debug package is absent) and build ids.
 *
 * Symbols come from .symtab and .dynsym; only defined functions (STT_FUNC,
 * STT_GNU_IFUNC) with an address.  Several names often share an address
 * (write, __write, __libc_write): one is kept, preferring the fewest
 * leading underscores, then global over weak over local, then the
 * shortest, so reports show the name a programmer calls.
 */
#include "sym_impl.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gelf.h>
#include <libelf.h>

static pthread_once_t elf_once = PTHREAD_ONCE_INIT;
static int elf_ready;

static void elf_init(void)
{
	elf_ready = elf_version(EV_CURRENT) != EV_NONE;
}

/* Open path for reading with libelf; *fd must be closed after elf_end. */
static Elf *elf_open(const char *path, int *fd)
{
	Elf *e;

	pthread_once(&elf_once, elf_init);
	*fd = -1;
	if (!elf_ready || path == NULL)
		return NULL;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return NULL;
	e = elf_begin(*fd, ELF_C_READ_MMAP, NULL);
	if (e == NULL || elf_kind(e) != ELF_K_ELF) {
		if (e != NULL)
			elf_end(e);
		close(*fd);
		*fd = -1;
		return NULL;
	}
	return e;
}

static void elf_close(Elf *e, int fd)
{
	elf_end(e);
	close(fd);
}

/* ---- symbols ------------------------------------------------------- */

typedef struct cand {
	sym_sym_t s;
	int rank; /* lower is better */
} cand_t;

typedef struct cvec {
	cand_t *v;
	size_t n, cap;
} cvec_t;

static int name_rank(const char *name, int bind)
{
	int underscores = 0, b;

	while (name[underscores] == '_')
		underscores++;
	b = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;
	return underscores * 4 + b;
}

static int is_code_symbol(const GElf_Sym *sym)
{
	int type = GELF_ST_TYPE(sym->st_info);

	return (type == STT_FUNC || type == STT_GNU_IFUNC) && sym->st_shndx != SHN_UNDEF &&
	       sym->st_value != 0;
}

/* Append the function symbols of one symbol table section. */
static int read_symtab(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, sym_arena_t *strings, cvec_t *c)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t i, n;

	if (data == NULL || sh->sh_entsize == 0)
		return 0;
	n = sh->sh_size / sh->sh_entsize;
	for (i = 0; i < n; i++) {
		GElf_Sym sym;
		const char *name;

		if (gelf_getsym(data, (int)i, &sym) == NULL || !is_code_symbol(&sym))
			continue;
		name = elf_strptr(e, sh->sh_link, sym.st_name);
		if (name == NULL || name[0] == '\0')
			continue;
		if (sym_grow((void **)&c->v, &c->cap, c->n + 1, sizeof(*c->v)) != 0)
			return -1;
		c->v[c->n].s.addr = sym.st_value;
		c->v[c->n].s.size = sym.st_size;
		c->v[c->n].s.name = sym_arena_strdup(strings, name);
		c->v[c->n].rank = name_rank(name, GELF_ST_BIND(sym.st_info));
		if (c->v[c->n].s.name == NULL)
			return -1;
		c->n++;
	}
	return 0;
}

static int read_file_symbols(const char *path, sym_arena_t *strings, cvec_t *c)
{
	Elf_Scn *scn = NULL;
	int fd, rc = 0;
	Elf *e = elf_open(path, &fd);

	if (e == NULL)
		return 0;
	while (rc == 0 && (scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) == NULL)
			continue;
		if (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM)
			rc = read_symtab(e, scn, &sh, strings, c);
	}
	elf_close(e, fd);
	return rc;
}

static int cand_cmp(const void *a, const void *b)
{
	const cand_t *x = a, *y = b;
	size_t lx, ly;

	if (x->s.addr != y->s.addr)
		return x->s.addr < y->s.addr ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank - y->rank;
	lx = strlen(x->s.name);
	ly = strlen(y->s.name);
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x->s.name, y->s.name);
}

/* Sort, keep the best name per address with the largest size seen there. */
static int finish_symbols(cvec_t *c, sym_syms_t *out)
{
	size_t i, n = 0;

	out->v = malloc((c->n + 1) * sizeof(*out->v));
	if (out->v == NULL)
		return -1;
	if (c->n > 1) /* c->v may be NULL */
		qsort(c->v, c->n, sizeof(*c->v), cand_cmp);
	for (i = 0; i < c->n; i++) {
		if (n > 0 && out->v[n - 1].addr == c->v[i].s.addr) {
			if (c->v[i].s.size > out->v[n - 1].size)
				out->v[n - 1].size = c->v[i].s.size;
			continue;
		}
		out->v[n++] = c->v[i].s;
	}
	out->n = n;
	return 0;
}

int sym_elf_load_symbols(const char *const *paths, int npaths, sym_arena_t *strings,
                         sym_syms_t *out)
{
	cvec_t c = {0};
	int i, rc = 0;

	out->v = NULL;
	out->n = 0;
	for (i = 0; i < npaths && rc == 0; i++)
		if (paths[i] != NULL)
			rc = read_file_symbols(paths[i], strings, &c);
	if (finish_symbols(&c, out) != 0)
		rc = -1;
	free(c.v);
	return rc;
}

const sym_sym_t *sym_elf_find(const sym_syms_t *s, uint64_t vaddr)
{
	size_t lo = 0, hi = s->n, back;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].addr <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* A sized symbol must contain vaddr; an unsized one (hand-written
	 * assembler) is taken to run up to the next symbol.  A few steps back
	 * find a big symbol with small ones inside it. */
	for (back = 0; back < 4 && lo > 0; back++) {
		const sym_sym_t *c = &s->v[--lo];

		if (c->size == 0)
			return back == 0 ? c : NULL;
		if (vaddr - c->addr < c->size)
			return c;
	}
	return NULL;
}

void sym_elf_free_symbols(sym_syms_t *s)
{
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* ---- build id ------------------------------------------------------ */

static int note_build_id(Elf_Data *data, uint8_t out[20])
{
	size_t off = 0, next, name_off, desc_off;
	GElf_Nhdr nh;

	while ((next = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
		const char *name = (const char *)data->d_buf + name_off;

		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    memcmp(name, "GNU", 4) == 0) {
			size_t len = nh.n_descsz < 20 ? nh.n_descsz : 20;

			memcpy(out, (const char *)data->d_buf + desc_off, len);
			return (int)len;
		}
		off = next;
	}
	return 0;
}

int sym_elf_build_id(const char *path, uint8_t out[20])
{
	Elf_Scn *scn = NULL;
	int fd, len = 0;
	Elf *e = elf_open(path, &fd);

	if (e == NULL)
		return -1;
	while (len == 0 && (scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		Elf_Data *data;

		if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type != SHT_NOTE)
			continue;
		data = elf_getdata(scn, NULL);
		if (data != NULL)
			len = note_build_id(data, out);
	}
	elf_close(e, fd);
	return len;
}
