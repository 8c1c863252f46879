/*
 * Symbolization: program counters -> "function (file:line)".
 *
 * Used by the debug build (leak and bad-free reports with symbolized stacks
 * of this process) and by the inspector (stacks recorded in another process,
 * live, core or snapshot).  Both go through one code path: a symbol table
 * (vmem_symtab_t) built over a list of loaded objects, each an ELF file on
 * disk plus the bias it was loaded at.
 *
 * Per object, opened lazily on the first lookup that lands in it:
 *   - DWARF through libdwarf (dwarf_init_path follows .gnu_debuglink and
 *     the build id to /usr/lib/debug), a CU index from .debug_aranges or,
 *     when there are none (clang), from the CU DIEs' own ranges;
 *   - per CU, loaded on the first lookup in it and kept until close: the
 *     line rows sorted by address and the function/inlined-call tree with
 *     its ranges, so a warm lookup is a handful of binary searches;
 *   - the ELF symbol table (.symtab, else .dynsym, via libelf), loaded only
 *     when DWARF does not name the function (crt code, assembler, objects
 *     without debug information).
 *
 * Everything here is internal to the project (vmem_sym_ prefix); the
 * strings returned in frames belong to the symbol table and stay valid
 * until vmem_sym_close().
 */
#ifndef VMEM_SYMBOLIZE_H
#define VMEM_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

/* One loaded object of a process. */
typedef struct vmem_sym_object {
	const char *path; /* file on disk; never "" (the main program is given by its real path) */
	uintptr_t base;   /* load bias: runtime address = ELF vaddr + base (dlpi_addr) */
	uintptr_t start;  /* runtime range covered by its PT_LOAD segments ... */
	uintptr_t end;    /* ... end exclusive */
	uint8_t build_id[20]; /* NT_GNU_BUILD_ID (first 20 bytes) */
	int build_id_len;     /* 0 if none */
} vmem_sym_object_t;

/* One frame of a symbolized pc (several when calls were inlined). */
typedef struct vmem_sym_frame {
	uintptr_t pc;         /* the address looked up, as the caller gave it */
	const char *function; /* NULL if unknown; owned by the symtab (valid until close) */
	const char *file;     /* source file (full path as DWARF gives it), NULL if unknown */
	unsigned line;        /* 0 if unknown */
	int inlined;          /* 1 if this frame is an inlined call inside the next frame */
	const char *object;   /* object path, NULL if pc is in no known object */
	uintptr_t offset;     /* pc - start of the real function containing pc (of the part
	                         containing pc for hot/cold split functions; inlined frames carry
	                         the same value), or pc - symbol start; 0 if unknown */
	uintptr_t vaddr;      /* pc - base: the address in the object's own ELF coordinates,
	                         what addr2line -e object takes */
} vmem_sym_frame_t;

typedef struct vmem_symtab vmem_symtab_t;

/*
 * A symbol table over the objects of the calling process, found with
 * dl_iterate_phdr (the main program through /proc/self/exe; the vdso and
 * objects without a file are skipped).  Objects dlopen()ed later are found
 * too: a lookup that misses every known object enumerates them again.
 * Objects dlclose()d stay listed (a library later loaded over the same
 * addresses is not seen: open a new symtab).  Returns NULL if memory runs
 * out.
 */
vmem_symtab_t *vmem_sym_open_self(void);

/*
 * A symbol table over the objects of another process (or of this one, or
 * a fake layout), as listed by the caller; objs[] and the path strings are
 * copied.  Objects with an empty path or an empty range, or overlapping an
 * object listed before them, are ignored.  For an object whose file does
 * not carry the build id given, only the debug file named by the build id
 * in /usr/lib/debug/.build-id/ is used; failing that, only "object+offset"
 * is known.  Returns NULL if memory runs out.
 */
vmem_symtab_t *vmem_sym_open(const vmem_sym_object_t *objs, size_t n);

/* Free everything, including every string returned in frames.  NULL is a no-op. */
void vmem_sym_close(vmem_symtab_t *st);

/*
 * Enumerate the calling process's loaded objects into out[0..max), with
 * out[i].path pointing at paths[i] (a path longer than 255 bytes is
 * truncated).  Returns how many objects there are, which may exceed max.
 * Does not call malloc (usable from a dying process writing a snapshot):
 * only dl_iterate_phdr, getauxval, readlink and the stack.
 */
size_t vmem_sym_self_objects(vmem_sym_object_t *out, char (*paths)[256], size_t max);

/*
 * Look up pc.  If return_address is nonzero, pc is a return address taken
 * from a stack: pc - 1 is looked up (so a call that ends its function is
 * attributed to it) but frames report pc.  Fills frames[0..max) innermost
 * inlined frame first, the containing real function last, and returns the
 * number written: 0 if pc is in no known object, else >= 1 (at worst a frame
 * with only object and vaddr).  If the inline chain is deeper than max, the
 * innermost max frames are written.  Thread-safe (one mutex per symtab).
 */
int vmem_sym_lookup(vmem_symtab_t *st, uintptr_t pc, int return_address, vmem_sym_frame_t *frames,
                    int max);

/*
 * Format one frame, like snprintf (returns the length it needed):
 *   "function (file:line)"            with line information,
 *   "function (object+0xvaddr)"       with a name but no line,
 *   "0xPC (object+0xvaddr)"           in a known object without a name,
 *   "0xPC"                            when nothing is known.
 * object is the basename of the object's path (frames carry the full path).
 */
int vmem_sym_format(const vmem_sym_frame_t *f, char *buf, size_t len);

#endif /* VMEM_SYMBOLIZE_H */
