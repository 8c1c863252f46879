/*
 * The program vmemdb's end-to-end tests inspect: it builds one known state
 * of libvmem and then either writes a snapshot and exits, waits to be
 * inspected live (or dumped by gcore), or aborts (a kernel core).
 *
 *   e2e_prog snapshot FILE   state, snapshot to FILE, counters to FILE.kstat
 *   e2e_prog wait FILE       state, counters to FILE.kstat, "ready" on stdout, then sleep
 *   e2e_prog crash FILE      state, counters to FILE.kstat, then abort()
 *   e2e_prog corrupt FILE    as wait, after making va's segment list loop back
 *
 * The state (the tests check these numbers):
 *   heap  [0x10000000, +64 MiB), quantum 4 KiB, quantum caches up to 16 KiB
 *     va    imports from heap: 5 kept segments of 8 KiB, 3 leaked of 12 KiB
 *           (leak_pages), so 77824 bytes in use
 *     dma   imports from heap: 3 xallocs of 8 KiB, 64 KiB aligned, one freed; a
 *           second thread makes 2 more (kept)
 *   heap's caches: 2 kept objects of 4 KiB, 1 leaked of 8 KiB (leak_cached)
 *   ids   identifiers [1, 1000): 10 allocated, 3 freed, 1 failed allocation
 * Kept pointers live in a global array (so a leak scan finds them); leaked
 * ones are dropped by noinline functions, and the stack below is scrubbed
 * so no stale copy refers to them.  The lines marked LEAK_SITE_* are what
 * vmemdb must name.
 */
#define _GNU_SOURCE
#include <vmem.h>
#include <vmem_root.h>

#include <fcntl.h>
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
static vmem_t *heap, *va, *dma, *ids;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int worker_done;

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
	if (heap == NULL || va == NULL || dma == NULL || ids == NULL) {
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
	if (pthread_create(&t, NULL, worker, NULL) != 0)
		exit(3);
	pthread_mutex_lock(&lock);
	while (!worker_done)
		pthread_cond_wait(&cv, &lock);
	pthread_mutex_unlock(&lock);
}

/* The counters as the library prints them: FILE.kstat (text), FILE.kstat.json. */
static void write_kstat(const char *file)
{
	static const char *const suffix[2] = {"kstat", "kstat.json"};
	char path[4096];

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

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: e2e_prog snapshot|wait|crash|corrupt FILE\n");
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
