/*
 * The program vmemdb's end-to-end tests inspect: it builds one known state
 * of libvmem and then either writes a snapshot and exits, waits to be
 * inspected live (or dumped by gcore), or aborts (a kernel core).
 *
 *   e2e_prog snapshot FILE   state, snapshot to FILE, counters to FILE.kstat
 *   e2e_prog wait FILE       state, counters to FILE.kstat, "ready" on stdout, then sleep
 *   e2e_prog crash FILE      state, counters to FILE.kstat, then abort()
 *   e2e_prog corrupt FILE    as wait, after making va's segment list loop back
 *   e2e_prog badmags FILE    as wait, after making heap_16384's depot list loop
 *                            back and a thread's magazine claim 1000 rounds
 *                            (libvmem, not -debug: the debug library has none)
 * Each also writes FILE.magobj: the address of an object the worker freed.
 *
 * The state (the tests check these numbers):
 *   heap  [0x10000000, +64 MiB), quantum 4 KiB, quantum caches up to 16 KiB
 *     va    imports from heap: 5 kept segments of 8 KiB, 3 leaked of 12 KiB
 *           (leak_pages), so 77824 bytes in use
 *     dma   imports from heap: 3 xallocs of 8 KiB, 64 KiB aligned, one freed; a
 *           second thread makes 2 more (kept)
 *   heap's caches: 2 kept objects of 4 KiB, 1 leaked of 8 KiB (leak_cached);
 *         200 objects of 16 KiB allocated and freed, 100 of them allocated
 *         again and freed by the second thread (churn_magazines)
 *   ids   identifiers [1, 1000): 10 allocated, 3 freed, 1 failed allocation
 *   tiny  [0x20000000, +12 KiB), quantum 4 KiB, a cache of 4 KiB whose slabs
 *         cannot fit: one object served by the arena directly, freed (use_tiny)
 * In libvmem (not -debug) freed objects wait in magazines: then heap_16384
 * has all its 200 objects in magazines, one full and one empty magazine in
 * its depot, and both threads' magazines loaded (see churn_magazines); the
 * smaller caches have objects in the main thread's magazines, and tiny's
 * object, freed into a magazine, is still an allocated segment of tiny.
 * Kept pointers live in a global array (so a leak scan finds them); leaked
 * ones are dropped by noinline functions, and the stack below is scrubbed
 * so no stale copy refers to them.  The lines marked LEAK_SITE_* are what
 * vmemdb must name.
 */
#define _GNU_SOURCE
#include <vmem.h>
#include <vmem_root.h>

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define PAGE ((size_t)4096)

void *volatile kept[32];
static volatile int nkept;
static vmem_t *heap, *va, *dma, *ids, *tiny;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int worker_done;

#define CHURN   200 /* 16 KiB objects allocated and freed */
#define HANDOFF 100 /* of them allocated again, for the worker to free */
static void *volatile churn[CHURN];
static uintptr_t magobj; /* one object the worker freed (FILE.magobj) */

static void keep(void *p)
{
	kept[nkept++] = p;
}

__attribute__((noinline)) static void keep_pages(void)
{
	for (int i = 0; i < 5; i++)
		keep(vmem_alloc(va, 2 * PAGE, VM_SLEEP));
}

__attribute__((noinline)) static void leak_pages(void)
{
	for (int i = 0; i < 3; i++) {
		void *p = vmem_alloc(va, 3 * PAGE, VM_SLEEP); /* LEAK_SITE_PAGES */

		__asm__ volatile("" : : "r"(p) : "memory");
	}
}

__attribute__((noinline)) static void leak_cached(void)
{
	void *p = vmem_alloc(heap, 2 * PAGE, VM_SLEEP); /* LEAK_SITE_CACHED */

	__asm__ volatile("" : : "r"(p) : "memory");
}

__attribute__((noinline)) static void use_dma(void)
{
	void *d[3];

	for (int i = 0; i < 3; i++)
		d[i] = vmem_xalloc(dma, 2 * PAGE, 64 * 1024, 0, 0, NULL, NULL, VM_SLEEP);
	vmem_xfree(dma, d[1], 2 * PAGE);
	keep(d[0]);
	keep(d[2]);
}

__attribute__((noinline)) static void use_ids(void)
{
	uintptr_t id[10];

	for (int i = 0; i < 10; i++)
		id[i] = (uintptr_t)vmem_alloc(ids, 1, VM_SLEEP | VM_NEXTFIT);
	for (int i = 0; i < 3; i++)
		vmem_free(ids, (void *)id[i], 1);
	if (vmem_alloc(ids, 2000, VM_NOSLEEP) != NULL) /* fails: counted in FAIL */
		abort();
}

/*
 * Fill heap_16384's magazines (libvmem, not -debug; magazines hold 62
 * rounds, a slab 4 objects).  Allocating 200 leaves the main thread's loaded
 * magazine empty; freeing them fills it and the previous one and sends two
 * full magazines to the depot.  Allocating 100 again empties the loaded,
 * the previous and one full magazine from the depot, which takes the empty
 * previous one in exchange: one full and one empty magazine stay in the
 * depot, 38 rounds in the loaded magazine.  The worker frees those 100 into
 * its own two magazines (62 and 38 rounds), so every object is free and in
 * a magazine.  The debug library has no magazines: the same calls leave
 * everything in the slabs.
 */
__attribute__((noinline)) static void churn_magazines(void)
{
	for (int i = 0; i < CHURN; i++)
		churn[i] = vmem_alloc(heap, 4 * PAGE, VM_SLEEP);
	for (int i = 0; i < CHURN; i++)
		vmem_free(heap, churn[i], 4 * PAGE);
	for (int i = 0; i < HANDOFF; i++)
		churn[i] = vmem_alloc(heap, 4 * PAGE, VM_SLEEP);
	magobj = (uintptr_t)churn[0];
}

/*
 * tiny's cache wants 16 KiB slabs (the power of two above 3 * qcache_max),
 * which its 12 KiB cannot hold: the object is served by the arena directly
 * (VMEM_SEGF_QDIRECT).  libvmem (not -debug) frees it into a magazine, where
 * it stays an allocated segment of the arena although it is free; the debug
 * library gives it back to the arena.  No pointer to it is kept, so a leak
 * scan that took it for held would report it.
 */
__attribute__((noinline)) static void use_tiny(void)
{
	void *p = vmem_alloc(tiny, PAGE, VM_SLEEP);

	vmem_free(tiny, p, PAGE);
}

/* Overwrite the dead stack below us, where leaked pointers may linger. */
__attribute__((noinline)) static void scrub_stack(void)
{
	volatile char buf[32768];

	memset((char *)buf, 0, sizeof(buf));
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	keep(vmem_xalloc(dma, 2 * PAGE, 64 * 1024, 0, 0, NULL, NULL, VM_SLEEP));
	keep(vmem_xalloc(dma, 2 * PAGE, 64 * 1024, 0, 0, NULL, NULL, VM_SLEEP));
	/* the main thread's objects, into this thread's magazines */
	for (int i = 0; i < HANDOFF; i++) {
		vmem_free(heap, churn[i], 4 * PAGE);
		churn[i] = NULL;
	}
	worker_done = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&lock);
	for (;;)
		pause();
	return NULL;
}

static void build_state(void)
{
	pthread_t t;

	heap = vmem_create("heap", (void *)0x10000000, 64 << 20, PAGE, NULL, NULL, NULL, 4 * PAGE,
	                   VM_SLEEP);
	va = vmem_create("va", NULL, 0, PAGE, vmem_alloc, vmem_free, heap, 0, VM_SLEEP);
	dma = vmem_create("dma", NULL, 0, PAGE, vmem_alloc, vmem_free, heap, 0, VM_SLEEP);
	ids = vmem_create("ids", (void *)1, 999, 1, NULL, NULL, NULL, 0, VM_SLEEP | VMC_IDENTIFIER);
	tiny = vmem_create("tiny", (void *)0x20000000, 3 * PAGE, PAGE, NULL, NULL, NULL, PAGE,
	                   VM_SLEEP);
	if (heap == NULL || va == NULL || dma == NULL || ids == NULL || tiny == NULL) {
		perror("vmem_create");
		exit(3);
	}
	keep_pages();
	leak_pages();
	keep(vmem_alloc(heap, PAGE, VM_SLEEP));
	keep(vmem_alloc(heap, PAGE, VM_SLEEP));
	leak_cached();
	use_dma();
	use_ids();
	use_tiny();
	churn_magazines();
	if (pthread_create(&t, NULL, worker, NULL) != 0)
		exit(3);
	pthread_mutex_lock(&lock);
	while (!worker_done)
		pthread_cond_wait(&cv, &lock);
	pthread_mutex_unlock(&lock);
}

/* The counters as the library prints them: FILE.kstat (text), FILE.kstat.json;
 * and FILE.magobj. */
static void write_kstat(const char *file)
{
	static const char *const suffix[2] = {"kstat", "kstat.json"};
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s.magobj", file);
	if ((fp = fopen(path, "w")) == NULL || fprintf(fp, "%" PRIxPTR "\n", magobj) < 0 ||
	    fclose(fp) != 0) {
		perror(path);
		exit(3);
	}

	for (int json = 0; json < 2; json++) {
		int fd;

		snprintf(path, sizeof(path), "%s.%s", file, suffix[json]);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || vmem_kstat_print(fd, json ? VMEM_KSTAT_JSON : 0) != 0) {
			perror(path);
			exit(3);
		}
		close(fd);
	}
}

/*
 * Make va's address-ordered list loop: its second record points back at its
 * first, never returning to the anchor.  Only the root (the same offsets
 * vmemdb reads) is used to find them.
 */
static void corrupt_va(void)
{
	const vmem_root_t *r = &vmem_debug_root;
	char *anchor = (char *)va + r->vr_arena.ra_seg0;
	char *first = *(char **)(anchor + r->vr_seg.rs_anext);
	char *second = *(char **)(first + r->vr_seg.rs_anext);

	*(char **)(second + r->vr_seg.rs_anext) = first;
}

/*
 * Break heap_16384's magazines, again through the root only: the full
 * magazine in its depot links to itself, and the loaded magazine of the
 * thread first on the registry (the worker, which registered last) claims
 * more rounds than a magazine holds.
 */
static void corrupt_mags(void)
{
	const vmem_root_t *r = &vmem_debug_root;
	const vmem_root_tcache_t *rt = &r->vr_tcache;
	char *qc = *(char **)((char *)heap + r->vr_arena.ra_qcache + 3 * sizeof(void *));
	char *full = *(char **)(qc + r->vr_qcstat.qs_full);
	char *tc = *(char **)(uintptr_t)rt->rt_registry;
	uint32_t id = *(uint32_t *)(qc + r->vr_qcstat.qs_id);
	char *entry, *loaded;

	if (full == NULL || tc == NULL) {
		fprintf(stderr, "e2e_prog: no magazines to corrupt (libvmem-debug?)\n");
		exit(3);
	}
	*(char **)(full + r->vr_mag.rm_next) = full;
	entry = *(char **)(tc + rt->rt_entry) + (size_t)id * rt->te_size;
	loaded = *(char **)(entry + rt->te_loaded);
	*(uint32_t *)(loaded + r->vr_mag.rm_count) = 1000;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: e2e_prog snapshot|wait|crash|corrupt|badmags FILE\n");
		return 2;
	}
	alarm(120); /* a watchdog: never outlive a test that forgot us */
	/* vmemdb and gcore are our siblings, not our parents: let them trace us
	 * under kernel.yama.ptrace_scope 1 */
	prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
	build_state();
	scrub_stack();
	if (strcmp(argv[1], "snapshot") == 0) {
		/* the writer drains the magazines first: counters after it match the file */
		if (vmem_snapshot_write(argv[2]) != 0) {
			perror("vmem_snapshot_write");
			return 3;
		}
		write_kstat(argv[2]);
		return 0;
	}
	write_kstat(argv[2]);
	if (strcmp(argv[1], "corrupt") == 0)
		corrupt_va();
	if (strcmp(argv[1], "badmags") == 0)
		corrupt_mags();
	if (strcmp(argv[1], "crash") == 0) {
		scrub_stack();
		abort();
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	scrub_stack();
	for (;;)
		pause();
}
