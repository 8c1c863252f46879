/*
 * Replays fuzz inputs without libFuzzer, so that ctest (with gcc, or under
 * valgrind) runs the seed corpus and every regression input through the
 * same decoder and model as the fuzzer.
 *
 *   fuzz_replay FILE|DIR...
 *
 * Directories are read in name order (so runs are reproducible); files
 * whose names start with '.' or end in ".md" are skipped.  A failed check
 * aborts: the last "replay:" line on stderr names the input.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_vmem.h"

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
		perror(path);
		return 1;
	}
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		return 1;
	}
	fclose(f);
	fprintf(stderr, "replay: %s (%ld bytes)\n", path, n);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool wanted(const char *name)
{
	size_t len = strlen(name);

	return name[0] != '.' && !(len > 3 && strcmp(name + len - 3, ".md") == 0);
}

static int replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int err = 0;

	if (d == NULL) {
		perror(dir);
		return 1;
	}
	while ((e = readdir(d)) != NULL) {
		if (!wanted(e->d_name))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = realloc(names, cap * sizeof(*names));
		}
		names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
		sprintf(names[n++], "%s/%s", dir, e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		err |= replay_file(names[i]);
		free(names[i]);
	}
	free(names);
	return err;
}

int main(int argc, char **argv)
{
	int err = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			err = 1;
		} else {
			err |= S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
		}
	}
	fprintf(stderr,
	        "replay: %llu inputs, %llu operations: %llu allocations, %llu ENOMEM, %llu EINVAL, "
	        "%llu frees, %llu bad frees, %llu imports, %llu releases, %llu import faults, "
	        "%llu arenas created, %llu destroyed\n",
	        (unsigned long long)fuzz_stats.inputs, (unsigned long long)fuzz_stats.ops,
	        (unsigned long long)fuzz_stats.allocs, (unsigned long long)fuzz_stats.nomem,
	        (unsigned long long)fuzz_stats.einval, (unsigned long long)fuzz_stats.frees,
	        (unsigned long long)fuzz_stats.badfrees, (unsigned long long)fuzz_stats.imports,
	        (unsigned long long)fuzz_stats.releases,
	        (unsigned long long)fuzz_stats.import_faults,
	        (unsigned long long)fuzz_stats.creates, (unsigned long long)fuzz_stats.destroys);
	return err;
}
