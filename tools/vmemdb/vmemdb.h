/*
 * vmemdb: an mdb-style inspector for libvmem's state in a snapshot file, a
 * live process or a core file.
 *
 * Every target is reduced to one model, a vsnap_t (src/vsnap.h): the
 * snapshot reader builds it from a file, the collector (collect.c) builds it
 * by walking the allocator's structures in another process's memory through
 * the self-describing root.  The commands only look at the model, plus, for
 * live and core targets, the target's memory, mappings and registers (the
 * leak scan and ::whatis of arbitrary addresses).
 *
 * Files: target*.c (the three targets behind vdb_target_t), elfobj.c (ELF
 * files: symbols, build ids, load bias), collect.c (remote walk -> model),
 * model.c (indexes over the model, symbolization), cmd.c (the command
 * language), dcmd_*.c, leaks.c, dot.c (the commands), json.c, main.c.
 */
#ifndef VMEMDB_H
#define VMEMDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "symbolize.h"
#include "vsnap.h"

/* ---- targets ----------------------------------------------------------------------- */

enum vdb_kind { VDB_SNAP = 1, VDB_LIVE, VDB_CORE };

#define VDB_PROT_R 1
#define VDB_PROT_W 2
#define VDB_PROT_X 4

#define VDB_MAP_NODUMP 0x1 /* excluded from core dumps (MADV_DONTDUMP): not scanned */

/* One mapping of the target's address space. */
typedef struct vdb_map {
	uint64_t start, end; /* [start, end) */
	uint64_t offset;     /* file offset of start (file-backed mappings) */
	uint32_t prot;       /* VDB_PROT_* */
	uint32_t flags;      /* VDB_MAP_* */
	char *path; /* NULL for anonymous memory; "[stack]" and the like as the kernel names them */
} vdb_map_t;

#define VDB_MAXREGS 64

/* One thread: its id and general registers (the leak scan's roots). */
typedef struct vdb_thread {
	uint64_t tid;
	uint64_t sp;
	size_t nregs;
	uint64_t regs[VDB_MAXREGS];
} vdb_thread_t;

/*
 * An object sitting in a quantum cache's magazine (a thread's or the
 * depot's) of a live process or a core: out of its slab, yet free for
 * callers.  The model has no record for it (a snapshot drains magazines
 * before it is written); the leak scan and ::whatis look it up here.
 */
typedef struct vdb_magobj {
	uint64_t addr;  /* the object's first address */
	uint64_t size;  /* its cache's object size */
	uint32_t arena; /* arena id */
	uint32_t qc;    /* its cache: index in the model's qcaches */
} vdb_magobj_t;

typedef struct vdb_target vdb_target_t;

typedef struct vdb_target_ops {
	/* Read up to len bytes at addr: the number read from addr on (short at a hole). */
	size_t (*read)(vdb_target_t *t, uint64_t addr, void *buf, size_t len);
	void (*close)(vdb_target_t *t);
} vdb_target_ops_t;

struct vdb_target {
	enum vdb_kind kind;
	char name[512];              /* "snapshot FILE", "process PID", "core CORE (EXE)" */
	const vdb_target_ops_t *ops; /* NULL for a snapshot: no memory */
	uint64_t pid;
	vdb_map_t *maps; /* sorted by start */
	size_t nmaps;
	vdb_thread_t *threads;
	size_t nthreads;
	vmem_sym_object_t *objs; /* loaded ELF objects (paths owned here) */
	size_t nobjs;
	vsnap_t *snap;                /* the model */
	void (*snap_free)(vsnap_t *); /* how the model is freed */
	/* The root predates the description of magazines (an older libvmem): cache
	 * counters other than sizes and slabs are unknown, and objects out of their
	 * slabs may be free in magazines rather than held. */
	bool qk_partial;
	vdb_magobj_t *magobj; /* live, core: objects in magazines, by arena id then address */
	size_t nmagobj;
	char notes[8][256]; /* said once when the target opens (warnings) */
	int nnotes;
	void *priv;
};

/* Open a target; NULL and a one-line message in err on failure. */
vdb_target_t *vdb_open_snapshot(const char *path, char *err, size_t errlen);
vdb_target_t *vdb_open_live(uint64_t pid, char *err, size_t errlen);
vdb_target_t *vdb_open_core(const char *exe, const char *core, char *err, size_t errlen);
void vdb_target_close(vdb_target_t *t);
/* Tell apart a snapshot and a core given alone: 1 ELF core, 0 other, -1 unreadable. */
int vdb_file_is_core(const char *path);
/* The executable named by a core's NT_FILE note (into buf); 0, or -1. */
int vdb_core_exe(const char *core, char *buf, size_t len);

/* Exactly len bytes at addr, or false. */
bool vdb_read(vdb_target_t *t, uint64_t addr, void *buf, size_t len);
/* The mapping containing addr, or NULL. */
const vdb_map_t *vdb_map_of(const vdb_target_t *t, uint64_t addr);
void vdb_note(vdb_target_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Shared by the live and core targets (target.c). */
int vdb_sort_maps(vdb_target_t *t);
/* Build t->objs from the file-backed mappings (ELF files only). */
int vdb_objects_from_maps(vdb_target_t *t, char *err, size_t errlen);
/* Free the fields of t common to every target (not t itself). */
void vdb_target_free_common(vdb_target_t *t);

/* ---- ELF files (elfobj.c) ---------------------------------------------------------- */

typedef struct vdb_elf {
	int type;                         /* ET_EXEC, ET_DYN, ET_CORE */
	int machine;                      /* EM_* */
	uint64_t entry;                   /* e_entry */
	uint64_t load_vaddr, load_offset; /* the first PT_LOAD */
	uint64_t load_end;                /* highest PT_LOAD vaddr + memsz */
	uint8_t build_id[20];
	int build_id_len;
	uint64_t build_id_vaddr; /* where the build id's bytes are loaded (0: not loaded) */
} vdb_elf_t;

/* 0, or -1 with a message ("not an ELF file", ...). */
int vdb_elf_inspect(const char *path, vdb_elf_t *out, char *err, size_t errlen);
/* Symbol `name` (.symtab, then .dynsym): 1 found, 0 not found, -1 unreadable. */
int vdb_elf_symbol(const char *path, const char *name, uint64_t *value);
/* The load bias of an object whose first PT_LOAD is mapped at map_start (file offset map_off). */
uint64_t vdb_elf_bias(const vdb_elf_t *e, uint64_t map_start, uint64_t map_off);
void vdb_hex(const uint8_t *p, int n, char *buf, size_t len);

/* ---- the collector (collect.c): a live or core target's memory -> the model ------------ */

typedef struct vdb_root_info {
	uint64_t addr;      /* of vmem_debug_root */
	const char *object; /* the object defining it */
	bool debug;         /* libvmem-debug */
	uint32_t version;
	uint32_t size; /* its vr_size */
	bool mags;     /* it describes magazines (vr_size >= VMEM_ROOT_SIZE_MAGS) */
} vdb_root_info_t;

/* Find and validate the root, walk the allocator: 0 and t->snap, or -1 and a message. */
int vdb_collect(vdb_target_t *t, vdb_root_info_t *ri, char *err, size_t errlen);
void vdb_collect_free(vsnap_t *s);

/* ---- JSON output (json.c) ---------------------------------------------------------- */

typedef struct vdb_json {
	FILE *fp;
	int depth;
	bool need_comma[64];
	bool after_key;
} vdb_json_t;

void vj_init(vdb_json_t *j, FILE *fp);
void vj_obj(vdb_json_t *j);
void vj_obj_end(vdb_json_t *j);
void vj_arr(vdb_json_t *j);
void vj_arr_end(vdb_json_t *j);
void vj_key(vdb_json_t *j, const char *key);
void vj_str(vdb_json_t *j, const char *s);
void vj_u64(vdb_json_t *j, uint64_t v);
void vj_i64(vdb_json_t *j, int64_t v);
void vj_dbl(vdb_json_t *j, double v);
void vj_addr(vdb_json_t *j, uint64_t v); /* "0x..." (addresses exceed JSON's exact integers) */
void vj_bool(vdb_json_t *j, bool v);
void vj_null(vdb_json_t *j);
void vj_end(vdb_json_t *j); /* the document's closing newline */
/* key + value in one call */
void vj_kstr(vdb_json_t *j, const char *k, const char *v);
void vj_ku64(vdb_json_t *j, const char *k, uint64_t v);
void vj_kaddr(vdb_json_t *j, const char *k, uint64_t v);
void vj_kbool(vdb_json_t *j, const char *k, bool v);

/* ---- the session and the model's indexes (model.c) ---------------------------------- */

/* One symbolized frame of a recorded stack (inlined frames get entries of their own). */
typedef struct vdb_frame {
	uint64_t pc;
	const char *function; /* NULL if unknown */
	const char *file;     /* NULL if unknown */
	unsigned line;
	uint64_t offset; /* pc - function start (0: unknown) */
	bool inlined;
	char *text; /* "function (file:line)" as vmem_sym_format gives it */
} vdb_frame_t;

typedef struct vdb_frames {
	bool done;
	size_t n;
	vdb_frame_t *f;
	char *who;                 /* the first frame outside libvmem, "function+0xoff" */
	const vdb_frame_t *caller; /* that frame, or NULL */
} vdb_frames_t;

/* A value passed along a pipeline. */
enum vdb_val_kind { VAL_ADDR, VAL_ARENA, VAL_SEG };

typedef struct vdb_val {
	enum vdb_val_kind kind;
	uint64_t addr;
	size_t idx; /* arena or segment index in the model */
} vdb_val_t;

typedef struct vdb_vals {
	vdb_val_t *v;
	size_t n, cap;
} vdb_vals_t;

typedef struct vdb {
	vdb_target_t *t;
	vsnap_t *s;
	vdb_root_info_t root;
	bool json; /* --json: every command writes JSON */
	bool interactive;
	bool quit;
	FILE *out;
	/* indexes */
	size_t *tree;        /* arena indices in tree order */
	size_t *arena_by_id; /* arena indices sorted by id */
	uint64_t *seg_order; /* segment indices by pipeline address (built on first lookup) */
	vmem_symtab_t *sym;
	bool sym_tried;
	vdb_frames_t *frames; /* per stack index, filled on demand */
	void *gvc;            /* Graphviz context, created on first use */
	vdb_vals_t leaks;     /* segments found by the last ::findleaks */
	bool leaks_valid;
} vdb_t;

int vdb_session_init(vdb_t *db, vdb_target_t *t);
void vdb_session_fini(vdb_t *db);

const vsnap_arena_t *vdb_arena_by_id(const vdb_t *db, uint32_t id);
size_t vdb_arena_index(const vdb_t *db, const vsnap_arena_t *a);
/* An arena by name, by address (of its vmem_t) or, given "#N", by id; NULL if none. */
const vsnap_arena_t *vdb_arena_lookup(const vdb_t *db, const char *tok);
const vsnap_arena_t *vdb_arena_by_addr(const vdb_t *db, uint64_t addr);
const vsnap_stack_t *vdb_stack(const vdb_t *db, uint32_t id);
/* The symbol table over the target's objects (opened on first use; NULL if impossible). */
vmem_symtab_t *vdb_symtab(vdb_t *db);
/* The symbolized frames of stack id (NULL for id 0 or unknown). */
const vdb_frames_t *vdb_frames(vdb_t *db, uint32_t id);
/* The segment with this tag address, or starting there; SIZE_MAX if none. */
size_t vdb_seg_lookup(const vdb_t *db, uint64_t addr);
/* Index (in s->segs) of the innermost record of arena a containing addr, or SIZE_MAX. */
size_t vdb_seg_containing(const vdb_t *db, const vsnap_arena_t *a, uint64_t addr);
/* The address a pipeline prints for segment i (its tag; a cached object: its start). */
uint64_t vdb_seg_addr(const vdb_t *db, size_t i);
const char *vdb_seg_type_name(uint8_t type); /* "ALLC", "FREE", "SPAN", "CACH" */
const char *vdb_seg_type_long(uint8_t type); /* "alloc", "free", "span", "cached" */
/* The arena a segment index belongs to. */
const vsnap_arena_t *vdb_seg_arena(const vdb_t *db, size_t i);
bool vdb_seg_audited(const vdb_t *db, const vsnap_seg_rec_t *g);
/* The object in a magazine of arena `arena` (an id) that contains addr, or NULL. */
const vdb_magobj_t *vdb_magobj(const vdb_t *db, uint32_t arena, uint64_t addr);

/* Numbers: 0x.. hex, 0t.. decimal, 0o.. octal, else `radix`; K/M/G/T suffixes if sizes. */
bool vdb_parse_num(const char *s, int radix, bool sizes, uint64_t *out);
/* "12.0 MiB" */
const char *vdb_human(uint64_t bytes, char *buf, size_t len);

/* ---- commands (cmd.c and the dcmd files) --------------------------------------------- */

typedef struct vdb_call {
	vdb_t *db;
	bool have_input; /* an address was given, or values were piped in */
	const vdb_val_t *in;
	size_t nin;
	int argc;
	char **argv; /* argv[0] is the command's name */
	FILE *fp;
	bool json;
	vdb_vals_t *pipe; /* not NULL: give values to the next stage instead of printing */
} vdb_call_t;

typedef int vdb_dcmd_fn(vdb_call_t *c);

typedef struct vdb_dcmd {
	const char *name;
	vdb_dcmd_fn *fn;
	const char *usage;
	const char *help; /* first line: the summary */
} vdb_dcmd_t;

/* Run one line (commands separated by ';' or newlines): 0, or -1 after an error message. */
int vdb_run_line(vdb_t *db, const char *line);
/* The prompt (libedit), or lines from a non-terminal stdin: the exit status. */
int vdb_repl(vdb_t *db);
/* Say an error about a command, one line on stderr. */
void vdb_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Options: a small getopt over the command's argv.  Returns the option letter, -1 at
 * the end, '?' after reporting an error.  optarg in *arg. */
typedef struct vdb_opt {
	int ind; /* next argv index */
	int pos; /* position within a bundle of flags */
	const char *arg;
} vdb_opt_t;
int vdb_getopt(vdb_call_t *c, vdb_opt_t *o, const char *spec);

void vdb_vals_push(vdb_vals_t *v, enum vdb_val_kind kind, uint64_t addr, size_t idx);
void vdb_vals_free(vdb_vals_t *v);

/* The commands (each file's entry points). */
int dcmd_vmem(vdb_call_t *c);
int dcmd_walk(vdb_call_t *c);
int dcmd_kstat(vdb_call_t *c);
int dcmd_status(vdb_call_t *c);
int dcmd_vmem_seg(vdb_call_t *c);
int dcmd_vmem_log(vdb_call_t *c);
int dcmd_whatis(vdb_call_t *c);
int dcmd_findleaks(vdb_call_t *c);
int dcmd_dot(vdb_call_t *c);

/* The arenas a call designates (its input, else every arena in tree order). */
int vdb_arenas_of_call(vdb_call_t *c, size_t **idx, size_t *n, bool *all);
/* A segment as a JSON object (frames: with its symbolized stack). */
void vdb_seg_json(vdb_t *db, vdb_json_t *j, size_t i, bool frames);
void vdb_dot_fini(vdb_t *db);

#endif /* VMEMDB_H */
