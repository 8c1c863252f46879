/*
 * Internals of the symbolizer (debug/symbolize.h), shared by its files:
 *
 *   symbolize.c   the symtab: object list, lazy opening, lookup, format
 *   sym_dwarf.c   libdwarf: CU index, per-CU cache (lines, scope tree)
 *   sym_elf.c     libelf: symbol tables, build ids
 *   sym_self.c    this process's objects (dl_iterate_phdr, no malloc)
 *   sym_util.c    string arena, growable arrays, range index
 *
 * All addresses below are ELF virtual addresses of the object (runtime
 * address - load bias), so one cache serves any load address.
 */
#ifndef VMEM_SYM_IMPL_H
#define VMEM_SYM_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "symbolize.h"

/* ---- sym_util.c ---------------------------------------------------- */

/* Append-only string storage: a string never moves until the arena is freed. */
typedef struct sym_chunk sym_chunk_t;
typedef struct sym_arena {
	sym_chunk_t *head;
} sym_arena_t;

/* Copy s (n bytes, NUL added) into the arena; NULL if memory runs out. */
const char *sym_arena_strndup(sym_arena_t *a, const char *s, size_t n);
const char *sym_arena_strdup(sym_arena_t *a, const char *s);
void sym_arena_free(sym_arena_t *a);

/* Make room for `need` elements of `elem` bytes in *v (capacity *cap); 0 on success. */
int sym_grow(void **v, size_t *cap, size_t need, size_t elem);

/* A half-open address range [lo, hi) tagged with an id (CU offset, scope index). */
typedef struct sym_range {
	uint64_t lo, hi;
	uint64_t id;
} sym_range_t;

typedef struct sym_rvec {
	sym_range_t *v;
	size_t n, cap;
} sym_rvec_t;

/* Append [lo, hi) to r if non-empty; 0 on success or empty, -1 out of memory. */
int sym_rvec_add(sym_rvec_t *r, uint64_t lo, uint64_t hi, uint64_t id);

/*
 * A sorted range index: ranges by lo, and maxhi[i] = max(hi[0..i]), so a
 * lookup can walk back over earlier, longer ranges that still cover the
 * address (nesting and overlaps) and stop as soon as none can.
 */
typedef struct sym_rindex {
	sym_range_t *v;
	uint64_t *maxhi;
	size_t n;
} sym_rindex_t;

/* Sort r and build the index; takes ownership of r->v (r is emptied). 0 or -1. */
int sym_rindex_build(sym_rindex_t *ix, sym_rvec_t *r);
/* The latest-starting range containing addr, or NULL. */
const sym_range_t *sym_rindex_find(const sym_rindex_t *ix, uint64_t addr);
void sym_rindex_free(sym_rindex_t *ix);

/* ---- sym_dwarf.c --------------------------------------------------- */

typedef struct sym_dwarf sym_dwarf_t;

/*
 * Open the DWARF of the ELF file at path.  NULL if there is none or it is
 * unusable.  With follow_links, a file without DWARF leads through its
 * .gnu_debuglink or build id to a separate debug file; *debug_path (if
 * debug_path is not NULL) then gets that file's name, an arena copy, so
 * its .symtab can serve as well; it is left alone otherwise.
 */
sym_dwarf_t *sym_dwarf_open(const char *path, int follow_links, sym_arena_t *strings,
                            const char **debug_path);
void sym_dwarf_close(sym_dwarf_t *dw);

/*
 * Frames for vaddr (innermost first, at most max), strings from *strings.
 * Offsets are computed against report_vaddr.  The outermost frame's
 * function is NULL when DWARF has line information but no function there.
 * Returns the number of frames (0: DWARF knows nothing of vaddr).
 */
int sym_dwarf_lookup(sym_dwarf_t *dw, sym_arena_t *strings, uint64_t vaddr, uint64_t report_vaddr,
                     vmem_sym_frame_t *frames, int max);

/* ---- sym_elf.c ----------------------------------------------------- */

typedef struct sym_sym {
	uint64_t addr, size;
	const char *name;
} sym_sym_t;

typedef struct sym_syms {
	sym_sym_t *v; /* sorted by addr, one entry per address */
	size_t n;
} sym_syms_t;

/*
 * Read the function symbols (.symtab and .dynsym) of each non-NULL file in
 * paths[0..npaths) into *out, names copied into *strings.  0, or -1 if
 * memory ran out (what was read is kept).
 */
int sym_elf_load_symbols(const char *const *paths, int npaths, sym_arena_t *strings,
                         sym_syms_t *out);
/* The symbol containing vaddr, or NULL. */
const sym_sym_t *sym_elf_find(const sym_syms_t *s, uint64_t vaddr);
void sym_elf_free_symbols(sym_syms_t *s);

/* The NT_GNU_BUILD_ID of the file (at most 20 bytes) into out; its length, 0 if none, -1 if
 * unreadable. */
int sym_elf_build_id(const char *path, uint8_t out[20]);

/* ---- symbolize.c --------------------------------------------------- */

/* One object of a symtab. */
typedef struct sym_obj {
	const char *path; /* as listed (symtab arena) */
	uintptr_t base, start, end;
	uint8_t build_id[20];
	int build_id_len;
	int opened;             /* the lazy open below has run */
	const char *file;       /* the ELF file used: path, a build-id debug file, or NULL */
	const char *debug_file; /* where the DWARF came from when not `file` */
	sym_dwarf_t *dw;        /* NULL: no DWARF */
	int syms_loaded;
	sym_syms_t syms;
	sym_arena_t strings; /* names, file names: valid until close */
} sym_obj_t;

struct vmem_symtab {
	pthread_mutex_t lock;
	sym_obj_t *objs; /* sorted by start, disjoint */
	size_t nobjs, cap;
	int self;          /* objects of this process: rescan on a miss */
	sym_arena_t paths; /* object paths */
};

#endif /* VMEM_SYM_IMPL_H */
