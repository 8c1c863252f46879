/*
 * ELF files through libelf (elfutils): what vmemdb needs to know about the
 * objects a process had loaded, and about core files.
 *
 *   - the type, machine, entry point and first PT_LOAD (for the load bias);
 *   - the GNU build id and where it is loaded (to match a core with its
 *     executable: the kernel dumps the first page of every ELF mapping);
 *   - one symbol's value, from .symtab (static programs keep the root only
 *     there) and else .dynsym (stripped shared libraries).
 */
#include "vmemdb.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool elf_ready(void)
{
	static int ok = -1;

	if (ok < 0)
		ok = elf_version(EV_CURRENT) != EV_NONE;
	return ok;
}

/* Open path as an ELF file: the descriptor in *fdp, NULL on failure. */
static Elf *elf_open_path(const char *path, int *fdp, char *err, size_t errlen)
{
	int fd;
	Elf *e;

	if (!elf_ready()) {
		snprintf(err, errlen, "libelf: %s", elf_errmsg(-1));
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (e == NULL || elf_kind(e) != ELF_K_ELF) {
		snprintf(err, errlen, "%s: not an ELF file", path);
		if (e != NULL)
			elf_end(e);
		close(fd);
		return NULL;
	}
	*fdp = fd;
	return e;
}

/* The build id in one PT_NOTE segment, if any. */
static void find_build_id(Elf *e, const GElf_Phdr *ph, vdb_elf_t *out)
{
	Elf_Data *d = elf_getdata_rawchunk(e, (int64_t)ph->p_offset, ph->p_filesz, ELF_T_NHDR);
	size_t off = 0, name_off, desc_off;
	GElf_Nhdr nh;

	if (d == NULL)
		return;
	while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    memcmp((char *)d->d_buf + name_off, "GNU", 4) == 0 && nh.n_descsz > 0) {
			out->build_id_len = nh.n_descsz > 20 ? 20 : (int)nh.n_descsz;
			memcpy(out->build_id, (char *)d->d_buf + desc_off,
			       (size_t)out->build_id_len);
			out->build_id_vaddr = ph->p_vaddr + desc_off;
			return;
		}
	}
}

int vdb_elf_inspect(const char *path, vdb_elf_t *out, char *err, size_t errlen)
{
	GElf_Ehdr eh;
	size_t nph;
	bool have_load = false;
	int fd;
	Elf *e = elf_open_path(path, &fd, err, errlen);

	memset(out, 0, sizeof(*out));
	if (e == NULL)
		return -1;
	if (gelf_getehdr(e, &eh) == NULL || elf_getphdrnum(e, &nph) != 0) {
		snprintf(err, errlen, "%s: unreadable ELF header: %s", path, elf_errmsg(-1));
		elf_end(e);
		close(fd);
		return -1;
	}
	out->type = eh.e_type;
	out->machine = eh.e_machine;
	out->entry = eh.e_entry;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(e, (int)i, &ph) == NULL)
			continue;
		if (ph.p_type == PT_LOAD) {
			if (!have_load) {
				out->load_vaddr = ph.p_vaddr;
				out->load_offset = ph.p_offset;
				have_load = true;
			}
			if (ph.p_vaddr + ph.p_memsz > out->load_end)
				out->load_end = ph.p_vaddr + ph.p_memsz;
		} else if (ph.p_type == PT_NOTE && out->build_id_len == 0 && eh.e_type != ET_CORE) {
			find_build_id(e, &ph, out);
		}
	}
	elf_end(e);
	close(fd);
	return 0;
}

/* Look name up in every section of type `type`: 1 found, 0 not. */
static int find_in_symtabs(Elf *e, Elf64_Word type, const char *name, uint64_t *value)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type != type || sh.sh_entsize == 0)
			continue;
		d = elf_getdata(scn, NULL);
		if (d == NULL)
			continue;
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *n;

			if (gelf_getsym(d, (int)i, &sym) == NULL || sym.st_shndx == SHN_UNDEF ||
			    sym.st_name == 0)
				continue;
			n = elf_strptr(e, sh.sh_link, sym.st_name);
			if (n != NULL && strcmp(n, name) == 0) {
				*value = sym.st_value;
				return 1;
			}
		}
	}
	return 0;
}

int vdb_elf_symbol(const char *path, const char *name, uint64_t *value)
{
	char err[256];
	int fd, rc;
	Elf *e = elf_open_path(path, &fd, err, sizeof(err));

	if (e == NULL)
		return -1;
	rc = find_in_symtabs(e, SHT_SYMTAB, name, value);
	if (rc == 0)
		rc = find_in_symtabs(e, SHT_DYNSYM, name, value);
	elf_end(e);
	close(fd);
	return rc;
}

uint64_t vdb_elf_bias(const vdb_elf_t *e, uint64_t map_start, uint64_t map_off)
{
	if (e->type == ET_EXEC)
		return 0;
	/* The mapping puts file offset map_off at map_start; the first PT_LOAD puts
	 * file offset load_offset at bias + load_vaddr. */
	return map_start + (e->load_offset - map_off) - e->load_vaddr;
}

void vdb_hex(const uint8_t *p, int n, char *buf, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (int i = 0; i < n && o + 3 <= len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%02x", p[i]);
}
