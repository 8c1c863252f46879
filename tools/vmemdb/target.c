/*
 * What every target shares: reading exactly n bytes, finding the mapping
 * of an address, the list of loaded ELF objects (for the root symbol and
 * for symbolization) built from the mappings, and closing.
 */
#include "vmemdb.h"

#include <elf.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

bool vdb_read(vdb_target_t *t, uint64_t addr, void *buf, size_t len)
{
	if (t->ops == NULL || t->ops->read == NULL)
		return false;
	if (len == 0)
		return true;
	if (addr + (len - 1) < addr)
		return false;
	return t->ops->read(t, addr, buf, len) == len;
}

const vdb_map_t *vdb_map_of(const vdb_target_t *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nmaps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < t->maps[mid].start)
			hi = mid;
		else if (addr >= t->maps[mid].end)
			lo = mid + 1;
		else
			return &t->maps[mid];
	}
	return NULL;
}

void vdb_note(vdb_target_t *t, const char *fmt, ...)
{
	va_list ap;

	if (t->nnotes >= (int)(sizeof(t->notes) / sizeof(t->notes[0])))
		return;
	va_start(ap, fmt);
	vsnprintf(t->notes[t->nnotes++], sizeof(t->notes[0]), fmt, ap);
	va_end(ap);
}

static int map_cmp(const void *a, const void *b)
{
	const vdb_map_t *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int vdb_sort_maps(vdb_target_t *t)
{
	qsort(t->maps, t->nmaps, sizeof(t->maps[0]), map_cmp);
	return 0;
}

/* One object per distinct file path; its range covers every mapping of the file. */
int vdb_objects_from_maps(vdb_target_t *t, char *err, size_t errlen)
{
	t->objs = calloc(t->nmaps ? t->nmaps : 1, sizeof(t->objs[0]));
	if (t->objs == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < t->nmaps; i++) {
		const vdb_map_t *m = &t->maps[i], *low = m;
		uint64_t start = m->start, end = m->end;
		vmem_sym_object_t *o;
		vdb_elf_t e;
		char ebuf[256];
		bool seen = false;

		if (m->path == NULL || m->path[0] != '/')
			continue;
		for (size_t k = 0; k < t->nobjs && !seen; k++)
			seen = strcmp(t->objs[k].path, m->path) == 0;
		if (seen)
			continue;
		for (size_t j = i + 1; j < t->nmaps; j++) {
			const vdb_map_t *n = &t->maps[j];

			if (n->path == NULL || strcmp(n->path, m->path) != 0)
				continue;
			if (n->end > end)
				end = n->end;
			if (n->offset < low->offset)
				low = n;
		}
		if (vdb_elf_inspect(m->path, &e, ebuf, sizeof(ebuf)) != 0 ||
		    (e.type != ET_EXEC && e.type != ET_DYN))
			continue;
		o = &t->objs[t->nobjs];
		o->path = strdup(m->path);
		if (o->path == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		o->base = (uintptr_t)vdb_elf_bias(&e, low->start, low->offset);
		o->start = (uintptr_t)start;
		o->end = (uintptr_t)end;
		memcpy(o->build_id, e.build_id, sizeof(o->build_id));
		o->build_id_len = e.build_id_len;
		t->nobjs++;
	}
	return 0;
}

void vdb_target_free_common(vdb_target_t *t)
{
	for (size_t i = 0; i < t->nmaps; i++)
		free(t->maps[i].path);
	free(t->maps);
	for (size_t i = 0; i < t->nobjs; i++)
		free((char *)t->objs[i].path);
	free(t->objs);
	free(t->threads);
	free(t->magobj);
	t->maps = NULL;
	t->objs = NULL;
	t->threads = NULL;
	t->magobj = NULL;
	t->nmaps = t->nobjs = t->nthreads = t->nmagobj = 0;
}

void vdb_target_close(vdb_target_t *t)
{
	if (t == NULL)
		return;
	if (t->snap != NULL && t->snap_free != NULL)
		t->snap_free(t->snap);
	t->snap = NULL;
	if (t->ops != NULL && t->ops->close != NULL)
		t->ops->close(t);
	vdb_target_free_common(t);
	free(t);
}
