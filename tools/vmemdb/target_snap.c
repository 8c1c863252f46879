/*
 * The snapshot target: a file written by vmem_snapshot_write(), read and
 * validated by the project's reader (src/vsnap_read.c).  It has the model
 * but no process memory: ::findleaks lists outstanding segments instead of
 * scanning, and ::whatis only knows the arenas.  Stacks are symbolized with
 * the objects the snapshot lists (same binaries needed on this machine).
 */
#include "vmemdb.h"

#include <stdlib.h>
#include <string.h>

vdb_target_t *vdb_open_snapshot(const char *path, char *err, size_t errlen)
{
	vdb_target_t *t = calloc(1, sizeof(*t));
	vsnap_t *s = NULL;

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (vsnap_read_file(path, &s, err, errlen) != 0) {
		free(t);
		return NULL;
	}
	t->kind = VDB_SNAP;
	t->snap = s;
	t->snap_free = vsnap_free;
	t->pid = s->pid;
	snprintf(t->name, sizeof(t->name), "snapshot %s", path);
	t->objs = calloc(s->nobjects ? s->nobjects : 1, sizeof(t->objs[0]));
	if (t->objs == NULL) {
		vdb_target_close(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < s->nobjects; i++) {
		const vsnap_object_t *o = &s->objects[i];
		vmem_sym_object_t *d = &t->objs[t->nobjs];

		d->path = strdup(o->path);
		if (d->path == NULL)
			continue;
		d->base = (uintptr_t)o->o.ob_base;
		d->start = (uintptr_t)o->o.ob_start;
		d->end = (uintptr_t)o->o.ob_end;
		d->build_id_len = (int)o->o.ob_build_id_len;
		memcpy(d->build_id, o->o.ob_build_id, sizeof(d->build_id));
		t->nobjs++;
	}
	return t;
}
