/*
 * The core target: an ELF core file (from the kernel or from gcore) and the
 * executable that produced it, read with libelf.
 *
 * What a core holds here: a PT_LOAD per mapping, with the bytes of the
 * anonymous and written-to memory (heap, stacks, .data/.bss, RELRO), but
 * not the file-backed memory nobody wrote (text, rodata): those bytes come
 * from the files the NT_FILE note names, at their page offset.  Threads and
 * registers come from the NT_PRSTATUS notes, the entry point from NT_AUXV.
 *
 * The executable must be the one that produced the core: its build id must
 * equal the one in the core's copy of its first page (the kernel dumps the
 * first page of every ELF mapping), and its entry point must land where
 * AT_ENTRY says.  Without the build id in the core, the file named by the
 * core must be the same file (or carry the same build id).  A mismatch is
 * refused: reading a process through the wrong binary only yields garbage.
 */
#define _GNU_SOURCE
#include "vmemdb.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <unistd.h>

#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif

typedef struct core_load {
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags;
} core_load_t;

typedef struct core_file {
	uint64_t start, end, fileoff;
	char *path;
	int fd; /* opened on first read; -1 not yet, -2 unavailable */
} core_file_t;

typedef struct core {
	int fd;
	const uint8_t *base; /* the core, mapped */
	size_t size;
	core_load_t *loads; /* sorted by vaddr */
	size_t nloads;
	core_file_t *files;
	size_t nfiles;
	uint64_t entry; /* AT_ENTRY, 0 if unknown */
	char fname[17]; /* NT_PRPSINFO pr_fname */
	int machine;
	bool truncated;
} core_t;

static void core_free(core_t *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nfiles; i++) {
		free(c->files[i].path);
		if (c->files[i].fd >= 0)
			close(c->files[i].fd);
	}
	free(c->files);
	free(c->loads);
	if (c->base != NULL)
		munmap((void *)c->base, c->size);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* ---- notes ------------------------------------------------------------------------- */

static int parse_nt_file(core_t *c, const uint8_t *d, size_t n)
{
	uint64_t count, page;
	const char *names;
	size_t left;

	if (n < 16)
		return -1;
	memcpy(&count, d, 8);
	memcpy(&page, d + 8, 8);
	if (count > (n - 16) / 24 || page == 0)
		return -1;
	c->files = calloc(count ? count : 1, sizeof(*c->files));
	if (c->files == NULL)
		return -1;
	names = (const char *)d + 16 + count * 24;
	left = n - 16 - count * 24;
	for (uint64_t i = 0; i < count; i++) {
		core_file_t *f = &c->files[c->nfiles];
		uint64_t v[3];
		size_t len = strnlen(names, left);

		if (len == left)
			break;
		memcpy(v, d + 16 + i * 24, sizeof(v));
		f->start = v[0];
		f->end = v[1];
		f->fileoff = v[2] * page;
		f->path = strdup(names);
		f->fd = -1;
		if (f->path == NULL)
			return -1;
		c->nfiles++;
		names += len + 1;
		left -= len + 1;
	}
	return 0;
}

static void parse_prstatus(vdb_target_t *t, const uint8_t *d, size_t n)
{
	struct elf_prstatus pr;
	vdb_thread_t *th, *nt;

	if (n < sizeof(pr))
		return;
	memcpy(&pr, d, sizeof(pr));
	nt = realloc(t->threads, (t->nthreads + 1) * sizeof(*nt));
	if (nt == NULL)
		return;
	t->threads = nt;
	th = &t->threads[t->nthreads++];
	memset(th, 0, sizeof(*th));
	th->tid = (uint64_t)pr.pr_pid;
	th->nregs = sizeof(pr.pr_reg) / sizeof(uint64_t);
	if (th->nregs > VDB_MAXREGS)
		th->nregs = VDB_MAXREGS;
	memcpy(th->regs, &pr.pr_reg, th->nregs * sizeof(uint64_t));
#if defined(__x86_64__)
	th->sp = ((const struct user_regs_struct *)(const void *)&pr.pr_reg)->rsp;
#elif defined(__aarch64__)
	th->sp = ((const struct user_regs_struct *)(const void *)&pr.pr_reg)->sp;
#endif
	if (t->pid == 0)
		t->pid = (uint64_t)pr.pr_pid;
}

static void parse_auxv(core_t *c, const uint8_t *d, size_t n)
{
	for (size_t o = 0; o + 16 <= n; o += 16) {
		uint64_t type, val;

		memcpy(&type, d + o, 8);
		memcpy(&val, d + o + 8, 8);
		if (type == AT_ENTRY)
			c->entry = val;
		if (type == AT_NULL)
			break;
	}
}

static int parse_notes(vdb_target_t *t, core_t *c, Elf *e, const GElf_Phdr *ph)
{
	Elf_Data *d = elf_getdata_rawchunk(e, (int64_t)ph->p_offset, ph->p_filesz, ELF_T_NHDR);
	size_t off = 0, name_off, desc_off;
	GElf_Nhdr nh;

	if (d == NULL)
		return 0;
	while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
		const uint8_t *desc = (const uint8_t *)d->d_buf + desc_off;

		if (nh.n_namesz != 5 || memcmp((char *)d->d_buf + name_off, "CORE", 5) != 0)
			continue;
		switch (nh.n_type) {
		case NT_FILE:
			if (c->files == NULL && parse_nt_file(c, desc, nh.n_descsz) != 0)
				return -1;
			break;
		case NT_PRSTATUS:
			parse_prstatus(t, desc, nh.n_descsz);
			break;
		case NT_PRPSINFO:
			if (nh.n_descsz >= sizeof(struct elf_prpsinfo)) {
				struct elf_prpsinfo ps;

				memcpy(&ps, desc, sizeof(ps));
				memcpy(c->fname, ps.pr_fname, sizeof(ps.pr_fname));
				c->fname[sizeof(ps.pr_fname)] = '\0';
			}
			break;
		case NT_AUXV:
			parse_auxv(c, desc, nh.n_descsz);
			break;
		}
	}
	return 0;
}

static int load_cmp(const void *a, const void *b)
{
	const core_load_t *x = a, *y = b;

	return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

/* Map the core, list its PT_LOADs, read its notes. */
static core_t *core_parse(vdb_target_t *t, const char *path, char *err, size_t errlen)
{
	core_t *c = calloc(1, sizeof(*c));
	struct stat st;
	GElf_Ehdr eh;
	size_t nph;
	Elf *e = NULL;

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (c->fd < 0 || fstat(c->fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	c->size = (size_t)st.st_size;
	if (c->size < sizeof(Elf64_Ehdr) || elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(err, errlen, "%s: not an ELF core file (too short)", path);
		goto fail;
	}
	c->base = mmap(NULL, c->size, PROT_READ, MAP_PRIVATE, c->fd, 0);
	if (c->base == MAP_FAILED) {
		c->base = NULL;
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	e = elf_memory((char *)c->base, c->size);
	if (e == NULL || elf_kind(e) != ELF_K_ELF || gelf_getehdr(e, &eh) == NULL) {
		snprintf(err, errlen, "%s: not an ELF file", path);
		goto fail;
	}
	if (eh.e_type != ET_CORE) {
		snprintf(err, errlen, "%s: not a core file (ELF type %d)", path, eh.e_type);
		goto fail;
	}
	if (gelf_getclass(e) != ELFCLASS64) {
		snprintf(err, errlen, "%s: only 64-bit cores are supported", path);
		goto fail;
	}
	c->machine = eh.e_machine;
	if (elf_getphdrnum(e, &nph) != 0) {
		snprintf(err, errlen, "%s: unreadable program headers", path);
		goto fail;
	}
	c->loads = calloc(nph ? nph : 1, sizeof(*c->loads));
	if (c->loads == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(e, (int)i, &ph) == NULL)
			continue;
		if (ph.p_type == PT_LOAD) {
			core_load_t *l = &c->loads[c->nloads++];

			l->vaddr = ph.p_vaddr;
			l->memsz = ph.p_memsz;
			l->offset = ph.p_offset;
			l->filesz = ph.p_filesz;
			l->flags = ph.p_flags;
			if (l->offset > c->size || l->filesz > c->size - l->offset) {
				c->truncated = true;
				l->filesz = l->offset > c->size ? 0 : c->size - l->offset;
			}
		} else if (ph.p_type == PT_NOTE) {
			if (ph.p_offset > c->size || ph.p_filesz > c->size - ph.p_offset) {
				snprintf(err, errlen, "%s: truncated core (notes past the end)",
				         path);
				goto fail;
			}
			if (parse_notes(t, c, e, &ph) != 0) {
				snprintf(err, errlen, "%s: bad NT_FILE note", path);
				goto fail;
			}
		}
	}
	elf_end(e);
	qsort(c->loads, c->nloads, sizeof(*c->loads), load_cmp);
	return c;
fail:
	if (e != NULL)
		elf_end(e);
	core_free(c);
	return NULL;
}

/* ---- reading ------------------------------------------------------------------------ */

static const core_load_t *load_of(const core_t *c, uint64_t addr)
{
	size_t lo = 0, hi = c->nloads;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const core_load_t *l = &c->loads[mid];

		if (addr < l->vaddr)
			hi = mid;
		else if (addr - l->vaddr >= l->memsz)
			lo = mid + 1;
		else
			return l;
	}
	return NULL;
}

static core_file_t *file_of(core_t *c, uint64_t addr)
{
	for (size_t i = 0; i < c->nfiles; i++)
		if (addr >= c->files[i].start && addr < c->files[i].end)
			return &c->files[i];
	return NULL;
}

/* Bytes from one place (the core or a file) at addr, at most len: how many. */
static size_t core_read_one(core_t *c, uint64_t addr, uint8_t *buf, size_t len, bool dumped_only)
{
	const core_load_t *l = load_of(c, addr);
	uint64_t off;
	core_file_t *f;
	ssize_t n;

	if (l == NULL)
		return 0;
	off = addr - l->vaddr;
	if (len > l->memsz - off)
		len = (size_t)(l->memsz - off);
	if (off < l->filesz) {
		if (len > l->filesz - off)
			len = (size_t)(l->filesz - off);
		memcpy(buf, c->base + l->offset + off, len);
		return len;
	}
	if (dumped_only || (f = file_of(c, addr)) == NULL)
		return 0;
	if (f->fd == -1) {
		f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (f->fd < 0)
			f->fd = -2;
	}
	if (f->fd < 0)
		return 0;
	if (len > f->end - addr)
		len = (size_t)(f->end - addr);
	n = pread(f->fd, buf, len, (off_t)(f->fileoff + (addr - f->start)));
	return n > 0 ? (size_t)n : 0;
}

static size_t core_read_ex(core_t *c, uint64_t addr, void *buf, size_t len, bool dumped_only)
{
	size_t done = 0;

	while (done < len) {
		size_t n =
		    core_read_one(c, addr + done, (uint8_t *)buf + done, len - done, dumped_only);

		if (n == 0)
			break;
		done += n;
	}
	return done;
}

static size_t core_read(vdb_target_t *t, uint64_t addr, void *buf, size_t len)
{
	return core_read_ex(t->priv, addr, buf, len, false);
}

static void core_close(vdb_target_t *t)
{
	core_free(t->priv);
	t->priv = NULL;
}

static const vdb_target_ops_t core_ops = {core_read, core_close};

/* ---- the executable ------------------------------------------------------------------ */

/* The NT_FILE entry of the executable: the file holding AT_ENTRY, else the first. */
static const core_file_t *exe_file(const core_t *c)
{
	if (c->nfiles == 0)
		return NULL;
	for (size_t i = 0; i < c->nfiles && c->entry != 0; i++)
		if (c->entry >= c->files[i].start && c->entry < c->files[i].end)
			return &c->files[i];
	return &c->files[0];
}

/* The lowest-offset mapping of path (for the load bias). */
static const core_file_t *first_mapping(const core_t *c, const char *path)
{
	const core_file_t *best = NULL;

	for (size_t i = 0; i < c->nfiles; i++)
		if (strcmp(c->files[i].path, path) == 0 &&
		    (best == NULL || c->files[i].fileoff < best->fileoff))
			best = &c->files[i];
	return best;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* Check that exe produced the core; 0, or -1 and a one-line reason. */
static int check_exe(core_t *c, const char *exe, const char *core, char *err, size_t errlen)
{
	const core_file_t *ef = exe_file(c), *low;
	vdb_elf_t e, other;
	char ebuf[256], h1[48], h2[48], tmp[PATH_MAX];
	uint8_t id[20];
	uint64_t bias;

	if (vdb_elf_inspect(exe, &e, ebuf, sizeof(ebuf)) != 0) {
		snprintf(err, errlen, "%s", ebuf);
		return -1;
	}
	if (e.type != ET_EXEC && e.type != ET_DYN) {
		snprintf(err, errlen, "%s: not an executable (ELF type %d)", exe, e.type);
		return -1;
	}
	if (e.machine != c->machine) {
		snprintf(err, errlen, "%s is for another machine than core %s", exe, core);
		return -1;
	}
	if (ef == NULL) {
		snprintf(err, errlen, "%s: no NT_FILE note: cannot tell which files were loaded",
		         core);
		return -1;
	}
	low = first_mapping(c, ef->path);
	bias = vdb_elf_bias(&e, low->start, low->fileoff);
	if (c->entry != 0 && e.entry + bias != c->entry) {
		snprintf(err, errlen,
		         "core %s was not produced by %s (it was by %s: entry points differ)", core,
		         exe, ef->path);
		return -1;
	}
	vdb_hex(e.build_id, e.build_id_len, h2, sizeof(h2));
	if (e.build_id_len > 0 && e.build_id_vaddr != 0 &&
	    core_read_ex(c, e.build_id_vaddr + bias, id, (size_t)e.build_id_len, true) ==
	        (size_t)e.build_id_len) {
		if (memcmp(id, e.build_id, (size_t)e.build_id_len) != 0) {
			vdb_hex(id, e.build_id_len, h1, sizeof(h1));
			snprintf(err, errlen,
			         "core %s was not produced by %s: build id %s in the core, %s in "
			         "the file",
			         core, exe, h1, h2);
			return -1;
		}
		return 0;
	}
	/* No build id in the core: the file it names must be this one, or an identical build. */
	if (same_file(exe, ef->path))
		return 0;
	if (vdb_elf_inspect(ef->path, &other, ebuf, sizeof(ebuf)) == 0 && e.build_id_len > 0 &&
	    other.build_id_len == e.build_id_len &&
	    memcmp(other.build_id, e.build_id, (size_t)e.build_id_len) == 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s", exe);
	if (access(ef->path, F_OK) != 0 && strcmp(basename(tmp), c->fname) == 0)
		return 0;
	snprintf(err, errlen, "core %s was not produced by %s (it was by %s)", core, exe, ef->path);
	return -1;
}

/* Mappings from the PT_LOADs, named after the NT_FILE entries (the executable as given). */
static int build_maps(vdb_target_t *t, core_t *c, const char *exe_in_core, const char *exe)
{
	t->maps = calloc(c->nloads ? c->nloads : 1, sizeof(*t->maps));
	if (t->maps == NULL)
		return -1;
	for (size_t i = 0; i < c->nfiles; i++) {
		if (strcmp(c->files[i].path, exe_in_core) == 0) {
			char *p = strdup(exe);

			if (p == NULL)
				return -1;
			free(c->files[i].path);
			c->files[i].path = p;
		}
	}
	for (size_t i = 0; i < c->nloads; i++) {
		const core_load_t *l = &c->loads[i];
		vdb_map_t *m = &t->maps[t->nmaps++];
		const core_file_t *f = file_of(c, l->vaddr);

		m->start = l->vaddr;
		m->end = l->vaddr + l->memsz;
		m->prot = ((l->flags & PF_R) ? VDB_PROT_R : 0) |
		          ((l->flags & PF_W) ? VDB_PROT_W : 0) |
		          ((l->flags & PF_X) ? VDB_PROT_X : 0);
		if (f != NULL) {
			m->offset = f->fileoff + (l->vaddr - f->start);
			m->path = strdup(f->path);
			if (m->path == NULL)
				return -1;
		}
		/* What the kernel did not dump (filesz 0, no file) is not memory we can scan. */
		if (l->filesz == 0 && f == NULL)
			m->flags |= VDB_MAP_NODUMP;
	}
	return vdb_sort_maps(t);
}

vdb_target_t *vdb_open_core(const char *exe, const char *core, char *err, size_t errlen)
{
	vdb_target_t *t = calloc(1, sizeof(*t));
	const core_file_t *ef;
	char *exe_in_core = NULL, *abs_exe = NULL;
	core_t *c;

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->kind = VDB_CORE;
	snprintf(t->name, sizeof(t->name), "core %s (executable %s)", core, exe);
	c = core_parse(t, core, err, errlen);
	if (c == NULL) {
		vdb_target_close(t);
		return NULL;
	}
	t->priv = c;
	t->ops = &core_ops;
	if (check_exe(c, exe, core, err, errlen) != 0)
		goto fail;
	ef = exe_file(c);
	exe_in_core = strdup(ef->path);
	/* Mappings are named by absolute paths: "./prog" must become one too. */
	abs_exe = realpath(exe, NULL);
	if (exe_in_core == NULL ||
	    build_maps(t, c, exe_in_core, abs_exe != NULL ? abs_exe : exe) != 0 ||
	    vdb_objects_from_maps(t, err, errlen) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (c->truncated)
		vdb_note(t, "core %s is truncated: some memory is missing", core);
	free(exe_in_core);
	free(abs_exe);
	return t;
fail:
	free(exe_in_core);
	free(abs_exe);
	vdb_target_close(t);
	return NULL;
}

int vdb_file_is_core(const char *path)
{
	unsigned char h[18];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, h, sizeof(h));
	close(fd);
	if (n < (ssize_t)sizeof(h) || memcmp(h, ELFMAG, SELFMAG) != 0)
		return 0;
	/* e_type is at offset 16, in the file's byte order (little-endian here) */
	return (h[EI_DATA] == ELFDATA2LSB ? h[16] | h[17] << 8 : h[17] | h[16] << 8) == ET_CORE;
}

int vdb_core_exe(const char *core, char *buf, size_t len)
{
	vdb_target_t tmp;
	char err[256];
	core_t *c;
	const core_file_t *ef;
	int rc = -1;

	memset(&tmp, 0, sizeof(tmp));
	c = core_parse(&tmp, core, err, sizeof(err));
	if (c == NULL)
		return -1;
	ef = exe_file(c);
	if (ef != NULL) {
		snprintf(buf, len, "%s", ef->path);
		rc = 0;
	}
	core_free(c);
	free(tmp.threads);
	return rc;
}
