/*
 * Small containers for the symbolizer: a string arena (strings handed out
 * in frames must outlive every lookup, so they are never freed one by one),
 * growable arrays, and a range index answering "which range holds addr".
 */
#include "sym_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---- string arena -------------------------------------------------- */

#define SYM_CHUNK_SIZE 16384

struct sym_chunk {
	sym_chunk_t *next;
	size_t used, size;
	char data[];
};

const char *sym_arena_strndup(sym_arena_t *a, const char *s, size_t n)
{
	sym_chunk_t *c = a->head;
	char *p;

	if (c == NULL || c->size - c->used < n + 1) {
		size_t size = n + 1 > SYM_CHUNK_SIZE ? n + 1 : SYM_CHUNK_SIZE;

		c = malloc(sizeof(*c) + size);
		if (c == NULL)
			return NULL;
		c->size = size;
		c->used = 0;
		/* A big string gets a chunk of its own behind the current one,
		 * so the current chunk's free space is not wasted. */
		if (a->head != NULL && size > SYM_CHUNK_SIZE) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	p = c->data + c->used;
	memcpy(p, s, n);
	p[n] = '\0';
	c->used += n + 1;
	return p;
}

const char *sym_arena_strdup(sym_arena_t *a, const char *s)
{
	return s == NULL ? NULL : sym_arena_strndup(a, s, strlen(s));
}

void sym_arena_free(sym_arena_t *a)
{
	sym_chunk_t *c = a->head;

	while (c != NULL) {
		sym_chunk_t *next = c->next;

		free(c);
		c = next;
	}
	a->head = NULL;
}

/* ---- growable arrays ----------------------------------------------- */

int sym_grow(void **v, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *nv;

	if (need <= *cap)
		return 0;
	ncap = *cap < 16 ? 16 : *cap;
	while (ncap < need)
		ncap *= 2;
	nv = realloc(*v, ncap * elem);
	if (nv == NULL)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

int sym_rvec_add(sym_rvec_t *r, uint64_t lo, uint64_t hi, uint64_t id)
{
	if (hi <= lo)
		return 0;
	if (sym_grow((void **)&r->v, &r->cap, r->n + 1, sizeof(*r->v)) != 0)
		return -1;
	r->v[r->n].lo = lo;
	r->v[r->n].hi = hi;
	r->v[r->n].id = id;
	r->n++;
	return 0;
}

/* ---- range index --------------------------------------------------- */

/* By lo; among equal starts the longer range first, so the walk back from
 * the last start <= addr meets the innermost candidate first. */
static int range_cmp(const void *a, const void *b)
{
	const sym_range_t *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi > y->hi ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

int sym_rindex_build(sym_rindex_t *ix, sym_rvec_t *r)
{
	size_t i;

	ix->v = r->v;
	ix->n = r->n;
	ix->maxhi = NULL;
	r->v = NULL;
	r->n = r->cap = 0;
	if (ix->n == 0)
		return 0;
	qsort(ix->v, ix->n, sizeof(*ix->v), range_cmp);
	ix->maxhi = malloc(ix->n * sizeof(*ix->maxhi));
	if (ix->maxhi == NULL) {
		free(ix->v);
		ix->v = NULL;
		ix->n = 0;
		return -1;
	}
	for (i = 0; i < ix->n; i++) {
		uint64_t prev = i > 0 ? ix->maxhi[i - 1] : 0;

		ix->maxhi[i] = ix->v[i].hi > prev ? ix->v[i].hi : prev;
	}
	return 0;
}

const sym_range_t *sym_rindex_find(const sym_rindex_t *ix, uint64_t addr)
{
	size_t lo = 0, hi = ix->n;

	/* Invariant: every range before lo starts at or below addr, every
	 * range from hi on starts above it. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->v[mid].lo <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo > 0) {
		const sym_range_t *r = &ix->v[--lo];

		if (ix->maxhi[lo] <= addr)
			return NULL; /* no range at or before this one reaches addr */
		if (addr < r->hi)
			return r;
	}
	return NULL;
}

void sym_rindex_free(sym_rindex_t *ix)
{
	free(ix->v);
	free(ix->maxhi);
	ix->v = NULL;
	ix->maxhi = NULL;
	ix->n = 0;
}
