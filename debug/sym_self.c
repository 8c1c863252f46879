/*
 * The calling process's loaded objects, for vmem_sym_open_self() and for a
 * dying process writing a snapshot: hence no malloc, no stdio, only
 * dl_iterate_phdr (which takes the loader's lock but does not allocate),
 * getauxval, readlink and the stack.  Build ids are read from the
 * PT_NOTE segments already mapped in memory.
 */
#define _GNU_SOURCE
#include "sym_impl.h"

#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

typedef struct self_ctx {
	vmem_sym_object_t *out;
	char (*paths)[256];
	size_t max, n;
	uintptr_t vdso; /* its ELF header, 0 if the kernel gave none */
	int seen_main;
} self_ctx_t;

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* NT_GNU_BUILD_ID in one mapped PT_NOTE segment; its length or 0. */
static int note_segment_build_id(const char *p, size_t size, size_t align, uint8_t out[20])
{
	size_t off = 0;

	while (off + sizeof(ElfW(Nhdr)) <= size) {
		const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)(p + off);
		size_t name_off = off + sizeof(*nh);
		size_t desc_off = name_off + align_up(nh->n_namesz, align);
		size_t next = desc_off + align_up(nh->n_descsz, align);

		if (next > size || next <= off)
			return 0;
		if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
		    memcmp(p + name_off, "GNU", 4) == 0) {
			size_t len = nh->n_descsz < 20 ? nh->n_descsz : 20;

			memcpy(out, p + desc_off, len);
			return (int)len;
		}
		off = next;
	}
	return 0;
}

static int self_build_id(const struct dl_phdr_info *info, uint8_t out[20])
{
	int i, len = 0;

	for (i = 0; i < info->dlpi_phnum && len == 0; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		/* Notes of 8-byte aligned segments (.note.gnu.property) pad to 8. */
		if (ph->p_type == PT_NOTE)
			len = note_segment_build_id((const char *)(info->dlpi_addr + ph->p_vaddr),
			                            ph->p_memsz, ph->p_align == 8 ? 8 : 4, out);
	}
	return len;
}

/* [start, end) of the PT_LOAD segments at run time; 0 if there are none. */
static int self_range(const struct dl_phdr_info *info, uintptr_t *start, uintptr_t *end)
{
	int i, found = 0;

	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;

		if (ph->p_type != PT_LOAD)
			continue;
		if (!found || lo < *start)
			*start = lo;
		if (!found || hi > *end)
			*end = hi;
		found = 1;
	}
	return found;
}

/* The path of an object: the main program's (dlpi_name "") through
 * /proc/self/exe.  0 if it cannot be named. */
static int self_path(const char *name, char path[256])
{
	size_t n;

	if (name[0] == '\0') {
		ssize_t r = readlink("/proc/self/exe", path, 255);

		if (r <= 0)
			return 0;
		path[r] = '\0';
		return 1;
	}
	n = strlen(name);
	if (n > 255)
		n = 255;
	memcpy(path, name, n);
	path[n] = '\0';
	return 1;
}

static int self_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	self_ctx_t *c = arg;
	const char *name = info->dlpi_name != NULL ? info->dlpi_name : "";
	uintptr_t start = 0, end = 0;
	vmem_sym_object_t *o;

	(void)size;
	if (!self_range(info, &start, &end))
		return 0;
	if (c->vdso != 0 && c->vdso >= start && c->vdso < end)
		return 0; /* the vdso: no file */
	if (name[0] == '\0' && c->seen_main++)
		return 0; /* only the first nameless object is the main program */
	if (c->n >= c->max) {
		c->n++;
		return 0;
	}
	o = &c->out[c->n];
	if (!self_path(name, c->paths[c->n]))
		return 0;
	o->path = c->paths[c->n];
	o->base = info->dlpi_addr;
	o->start = start;
	o->end = end;
	memset(o->build_id, 0, sizeof(o->build_id));
	o->build_id_len = self_build_id(info, o->build_id);
	c->n++;
	return 0;
}

size_t vmem_sym_self_objects(vmem_sym_object_t *out, char (*paths)[256], size_t max)
{
	self_ctx_t c;

	memset(&c, 0, sizeof(c));
	c.out = out;
	c.paths = paths;
	c.max = out != NULL && paths != NULL ? max : 0;
	c.vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
	dl_iterate_phdr(self_cb, &c);
	return c.n;
}
