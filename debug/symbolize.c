/*
 * The symbol table: a sorted list of objects (this process's, or another
 * process's as listed by the caller), each opened on the first lookup that
 * lands in it, and the lookup that combines DWARF (sym_dwarf.c) with the
 * ELF symbol table (sym_elf.c).  See symbolize.h for the contract.
 *
 * Invariants (under st->lock):
 *   - st->objs is sorted by start, and ranges do not overlap (an object
 *     overlapping one already listed is dropped);
 *   - every string handed out (object paths, names, files) lives in an
 *     arena freed only by vmem_sym_close, so frames stay valid after the
 *     lock is released even if objects are added meanwhile.
 */
#include "sym_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEBUG_BUILD_ID_DIR "/usr/lib/debug/.build-id/"

/* ---- the object list ----------------------------------------------- */

static int obj_cmp(const void *a, const void *b)
{
	const sym_obj_t *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* The object containing addr, or NULL. */
static sym_obj_t *find_obj(vmem_symtab_t *st, uintptr_t addr)
{
	size_t lo = 0, hi = st->nobjs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->objs[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || addr >= st->objs[lo - 1].end)
		return NULL;
	return &st->objs[lo - 1];
}

static int overlaps_any(const vmem_symtab_t *st, uintptr_t start, uintptr_t end)
{
	size_t i;

	for (i = 0; i < st->nobjs; i++)
		if (start < st->objs[i].end && st->objs[i].start < end)
			return 1;
	return 0;
}

/* Append (unsorted) a copy of o; 1 added, 0 ignored, -1 out of memory. */
static int add_obj(vmem_symtab_t *st, const vmem_sym_object_t *o)
{
	sym_obj_t *so;

	if (o->path == NULL || o->path[0] == '\0' || o->end <= o->start ||
	    overlaps_any(st, o->start, o->end))
		return 0;
	if (sym_grow((void **)&st->objs, &st->cap, st->nobjs + 1, sizeof(*st->objs)) != 0)
		return -1;
	so = &st->objs[st->nobjs];
	memset(so, 0, sizeof(*so));
	so->path = sym_arena_strdup(&st->paths, o->path);
	if (so->path == NULL)
		return -1;
	so->base = o->base;
	so->start = o->start;
	so->end = o->end;
	so->build_id_len = o->build_id_len < 0 ? 0 : o->build_id_len > 20 ? 20 : o->build_id_len;
	memcpy(so->build_id, o->build_id, (size_t)so->build_id_len);
	st->nobjs++;
	return 1;
}

static void sort_objs(vmem_symtab_t *st)
{
	if (st->nobjs > 1) /* objs may still be NULL */
		qsort(st->objs, st->nobjs, sizeof(*st->objs), obj_cmp);
}

static void obj_free(sym_obj_t *o)
{
	sym_dwarf_close(o->dw);
	sym_elf_free_symbols(&o->syms);
	sym_arena_free(&o->strings);
}

/* ---- opening an object --------------------------------------------- */

/* /usr/lib/debug/.build-id/ab/cdef....debug for a build id, if readable. */
static const char *build_id_file(sym_obj_t *o, const uint8_t *id, int len)
{
	char buf[sizeof(DEBUG_BUILD_ID_DIR) + 64];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", DEBUG_BUILD_ID_DIR);
	int i;

	if (len <= 1)
		return NULL;
	for (i = 0; i < len; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%02x%s", id[i], i == 0 ? "/" : "");
	snprintf(buf + n, sizeof(buf) - n, ".debug");
	if (access(buf, R_OK) != 0)
		return NULL;
	return sym_arena_strdup(&o->strings, buf);
}

/*
 * Decide which files describe the object, then open its DWARF.
 *
 * The object's own file is trusted unless the caller gave a build id the
 * file does not carry (rebuilt or replaced since the process loaded it):
 * symbolizing with the wrong file gives wrong answers, so then only the
 * debug file named by the build id may serve.
 *
 * A debug file under /usr/lib/debug/.build-id/ is opened directly rather
 * than through dwarf_init_path's .gnu_debuglink search, which checksums
 * the whole object first (about 20 ms of the 100 ms cold open of libc).
 */
static void obj_open(sym_obj_t *o)
{
	uint8_t id[20];
	int len;

	if (o->opened)
		return;
	o->opened = 1;
	len = sym_elf_build_id(o->path, id);
	if (o->build_id_len == 0 ||
	    (len == o->build_id_len && memcmp(id, o->build_id, (size_t)len) == 0))
		o->file = o->path;
	if (o->build_id_len > 0)
		o->debug_file = build_id_file(o, o->build_id, o->build_id_len);
	else if (len > 0)
		o->debug_file = build_id_file(o, id, len);
	if (o->debug_file != NULL)
		o->dw = sym_dwarf_open(o->debug_file, 0, &o->strings, NULL);
	if (o->dw == NULL && o->file != NULL)
		o->dw = sym_dwarf_open(o->file, 1, &o->strings, &o->debug_file);
}

/* The ELF symbols, read on the first lookup DWARF does not name: from the
 * file, and from the separate debug file (its .symtab is complete). */
static const sym_sym_t *obj_symbol(sym_obj_t *o, uint64_t vaddr)
{
	if (!o->syms_loaded) {
		const char *files[2] = {o->file, o->debug_file};

		o->syms_loaded = 1;
		sym_elf_load_symbols(files, 2, &o->strings, &o->syms);
	}
	return sym_elf_find(&o->syms, vaddr);
}

/* ---- open / close -------------------------------------------------- */

static vmem_symtab_t *symtab_new(void)
{
	vmem_symtab_t *st = calloc(1, sizeof(*st));

	if (st != NULL && pthread_mutex_init(&st->lock, NULL) != 0) {
		free(st);
		st = NULL;
	}
	return st;
}

vmem_symtab_t *vmem_sym_open(const vmem_sym_object_t *objs, size_t n)
{
	vmem_symtab_t *st = symtab_new();
	size_t i;

	if (st == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (add_obj(st, &objs[i]) < 0) {
			vmem_sym_close(st);
			return NULL;
		}
	}
	sort_objs(st);
	return st;
}

/* Add this process's objects not listed yet; -1 if memory ran out. */
static int self_refresh(vmem_symtab_t *st)
{
	size_t max = 64, n = 0, i;
	vmem_sym_object_t *objs = NULL;
	char(*paths)[256] = NULL;
	int rc = 0;

	for (;;) {
		free(objs);
		free(paths);
		objs = malloc(max * sizeof(*objs));
		paths = malloc(max * sizeof(*paths));
		if (objs == NULL || paths == NULL) {
			rc = -1;
			break;
		}
		n = vmem_sym_self_objects(objs, paths, max);
		if (n <= max)
			break;
		max = n + 16; /* objects appeared meanwhile: try again */
	}
	for (i = 0; rc == 0 && i < n; i++)
		if (add_obj(st, &objs[i]) < 0)
			rc = -1;
	sort_objs(st);
	free(objs);
	free(paths);
	return rc;
}

vmem_symtab_t *vmem_sym_open_self(void)
{
	vmem_symtab_t *st = symtab_new();

	if (st == NULL)
		return NULL;
	st->self = 1;
	if (self_refresh(st) != 0) {
		vmem_sym_close(st);
		return NULL;
	}
	return st;
}

void vmem_sym_close(vmem_symtab_t *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < st->nobjs; i++)
		obj_free(&st->objs[i]);
	free(st->objs);
	sym_arena_free(&st->paths);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* ---- lookup -------------------------------------------------------- */

/* Frames for pc in o (lock held); returns how many, >= 1. */
static int obj_lookup(sym_obj_t *o, uintptr_t pc, uintptr_t addr, vmem_sym_frame_t *frames, int max)
{
	uint64_t vaddr = addr - o->base, report = pc - o->base;
	int n = 0, i;

	obj_open(o);
	if (o->dw != NULL)
		n = sym_dwarf_lookup(o->dw, &o->strings, vaddr, report, frames, max);
	if (n == 0 || frames[n - 1].function == NULL) {
		const sym_sym_t *s = o->file != NULL ? obj_symbol(o, vaddr) : NULL;

		if (n == 0) {
			memset(&frames[0], 0, sizeof(frames[0]));
			n = 1;
		}
		if (s != NULL) {
			frames[n - 1].function = s->name;
			frames[n - 1].offset = (uintptr_t)(report - s->addr);
		}
	}
	for (i = 0; i < n; i++) {
		frames[i].pc = pc;
		frames[i].object = o->path;
		frames[i].vaddr = (uintptr_t)report;
	}
	return n;
}

int vmem_sym_lookup(vmem_symtab_t *st, uintptr_t pc, int return_address, vmem_sym_frame_t *frames,
                    int max)
{
	uintptr_t addr = return_address && pc > 0 ? pc - 1 : pc;
	sym_obj_t *o;
	int n = 0;

	if (st == NULL || frames == NULL || max <= 0)
		return 0;
	pthread_mutex_lock(&st->lock);
	o = find_obj(st, addr);
	if (o == NULL && st->self && self_refresh(st) == 0)
		o = find_obj(st, addr); /* perhaps dlopen()ed since */
	if (o != NULL)
		n = obj_lookup(o, pc, addr, frames, max);
	pthread_mutex_unlock(&st->lock);
	return n;
}

/* ---- format -------------------------------------------------------- */

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

int vmem_sym_format(const vmem_sym_frame_t *f, char *buf, size_t len)
{
	char dummy[1];

	if (buf == NULL || len == 0) {
		buf = dummy; /* measure only, like snprintf(NULL, 0, ...) */
		len = sizeof(dummy);
	}
	if (f == NULL)
		return snprintf(buf, len, "?");
	if (f->function != NULL && f->file != NULL && f->line != 0)
		return snprintf(buf, len, "%s (%s:%u)", f->function, f->file, f->line);
	if (f->function != NULL && f->object != NULL)
		return snprintf(buf, len, "%s (%s+0x%" PRIxPTR ")", f->function,
		                basename_of(f->object), f->vaddr);
	if (f->function != NULL)
		return snprintf(buf, len, "%s", f->function);
	if (f->object != NULL)
		return snprintf(buf, len, "0x%" PRIxPTR " (%s+0x%" PRIxPTR ")", f->pc,
		                basename_of(f->object), f->vaddr);
	return snprintf(buf, len, "0x%" PRIxPTR, f->pc);
}
