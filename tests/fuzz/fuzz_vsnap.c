/*
 * libFuzzer target for the snapshot reader (src/vsnap_read.c): any input
 * is either rejected with a one-line message and nothing allocated, or
 * accepted as a model that holds together.  The model is then walked in
 * full, touching every field and resolving every arena and stack id that
 * any record names, as vmemdb would; ASan and UBSan see every access.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -Iinclude \
 *       tests/fuzz/fuzz_vsnap.c src/vsnap_read.c -o fuzz_vsnap
 *   mkdir -p /tmp/vsnap-corpus
 *   ./fuzz_vsnap -max_total_time=60 /tmp/vsnap-corpus tests/fuzz/corpus/vsnap
 *
 * (libFuzzer writes new inputs into the first directory: never the seeds'.)
 *
 * With -DVSNAP_FUZZ_REPLAY (any compiler) it is instead a program that runs
 * files and directories through the same function, for ctest:
 *
 *   fuzz_vsnap_replay [--expect-valid] FILE|DIR...
 *
 * --expect-valid also requires every input to be accepted (the seed
 * corpus holds real snapshots written by the library).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vsnap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keeps the compiler from dropping the loads that touch the model. */
static volatile uint64_t sink;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_vsnap: broken model: %s (line %d)\n", #cond,         \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void touch(const void *p, size_t n)
{
	const uint8_t *c = p;
	uint64_t h = 0;

	for (size_t i = 0; i < n; i++)
		h = h * 31 + c[i];
	sink += h;
}

static void walk_arenas(const vsnap_t *s)
{
	size_t segs = 0, qcs = 0;

	for (size_t t = 0; t < s->narenas; t++) {
		const vsnap_arena_t *a = &s->arenas[t];

		touch(a, sizeof(*a));
		CHECK(vsnap_arena(s, a->a.ar_id) == a);
		CHECK(strlen(a->a.ar_name) < VSNAP_NAMELEN);
		if (a->a.ar_source_id != 0) {
			const vsnap_arena_t *src = vsnap_arena(s, a->a.ar_source_id);

			CHECK(src != NULL && src < a && a->depth == src->depth + 1);
		} else {
			CHECK(a->depth == 0);
		}
		CHECK(a->seg_count <= s->nsegs && a->seg_first <= s->nsegs - a->seg_count);
		CHECK(a->qc_count <= s->nqcaches && a->qc_first <= s->nqcaches - a->qc_count);
		for (size_t i = a->seg_first; i < a->seg_first + a->seg_count; i++)
			CHECK(s->segs[i].sg_arena == a->a.ar_id);
		for (size_t i = a->qc_first; i < a->qc_first + a->qc_count; i++)
			CHECK(s->qcaches[i].qr_arena == a->a.ar_id &&
			      s->qcaches[i].qr_index < a->a.ar_nqcache);
		segs += a->seg_count;
		qcs += a->qc_count;
	}
	CHECK(segs == s->nsegs && qcs == s->nqcaches);
}

static void walk_records(const vsnap_t *s)
{
	for (size_t i = 0; i < s->nsegs; i++) {
		const vsnap_seg_rec_t *g = &s->segs[i];

		touch(g, sizeof(*g));
		CHECK(vsnap_arena(s, g->sg_arena) != NULL);
		CHECK(g->sg_size <= g->sg_extent);
		CHECK(g->sg_stack == 0 || vsnap_stack(s, g->sg_stack) != NULL);
	}
	for (size_t i = 0; i < s->nqcaches; i++) {
		touch(&s->qcaches[i], sizeof(s->qcaches[i]));
		CHECK(strlen(s->qcaches[i].qr_name) < VSNAP_QNAMELEN);
		CHECK(vsnap_arena(s, s->qcaches[i].qr_arena) != NULL);
	}
	for (size_t i = 0; i < s->nstacks; i++) {
		const vsnap_stack_t *st = &s->stacks[i];

		CHECK(st->depth >= 1 && st->depth <= VSNAP_MAXDEPTH);
		CHECK(vsnap_stack(s, st->id) == st);
		touch(st->pc, st->depth * sizeof(uint64_t));
	}
	/* Log records may name arenas destroyed since, and stacks: resolve, never require. */
	for (size_t i = 0; i < s->nlog; i++) {
		const vsnap_txrec_t *t = &s->log[i];

		touch(t, sizeof(*t));
		CHECK(i == 0 || t->tx_seq > t[-1].tx_seq);
		sink += (uintptr_t)vsnap_arena(s, t->tx_arena) +
		        (uintptr_t)vsnap_stack(s, t->tx_stack) +
		        (uintptr_t)vsnap_stack(s, t->tx_stack2);
	}
	for (size_t i = 0; i < s->nobjects; i++) {
		const vsnap_object_t *o = &s->objects[i];

		touch(&o->o, sizeof(o->o));
		CHECK(o->o.ob_build_id_len <= 20);
		CHECK(strlen(o->path) == o->o.ob_path_len);
	}
	touch(s->regions, s->nregions * sizeof(s->regions[0]));
	CHECK(s->nerrors <= sizeof(s->errors) / sizeof(s->errors[0]));
	touch(s->errors, s->nerrors * sizeof(s->errors[0]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	vsnap_t *s = NULL;

	err[0] = '\0';
	if (vsnap_read_buf(data, size, &s, err, sizeof(err)) != 0) {
		CHECK(s == NULL);
		CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
		return 0;
	}
	CHECK(s != NULL && s->version == VSNAP_VERSION);
	walk_arenas(s);
	walk_records(s);
	vsnap_free(s);
	return 0;
}

#ifdef VSNAP_FUZZ_REPLAY
#include <dirent.h>
#include <sys/stat.h>

static int expect_valid;
static unsigned long inputs, accepted;

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;
	char err[512];
	vsnap_t *s = NULL;

	if (f == NULL) {
		perror(path);
		return 1;
	}
	do {
		if (len == cap) {
			cap = cap ? 2 * cap : 65536;
			buf = realloc(buf, cap);
			if (buf == NULL) {
				fclose(f);
				return 1;
			}
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	inputs++;
	if (vsnap_read_buf(buf, len, &s, err, sizeof(err)) == 0) {
		accepted++;
		vsnap_free(s);
	} else if (expect_valid) {
		fprintf(stderr, "fuzz_vsnap_replay: %s rejected: %s\n", path, err);
		free(buf);
		return 1;
	}
	free(buf);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* In name order, skipping dot files and notes (*.md), so runs are reproducible. */
static int replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;

	if (d == NULL) {
		perror(dir);
		return 1;
	}
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (e->d_name[0] == '.' || (l > 3 && strcmp(e->d_name + l - 3, ".md") == 0))
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		names[n] = malloc(strlen(dir) + l + 2);
		if (names == NULL || names[n] == NULL)
			abort();
		sprintf(names[n++], "%s/%s", dir, e->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		rc |= replay_file(names[i]);
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = 0, i = 1;

	if (i < argc && strcmp(argv[i], "--expect-valid") == 0) {
		expect_valid = 1;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s [--expect-valid] FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			rc = 1;
		} else {
			rc |= S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
		}
	}
	fprintf(stderr, "fuzz_vsnap_replay: %lu inputs, %lu accepted\n", inputs, accepted);
	if (expect_valid && inputs == 0) {
		fprintf(stderr, "fuzz_vsnap_replay: no inputs\n");
		rc = 1;
	}
	return rc;
}
#endif
