/*
 * Counters and their outputs: every vmem_kstat_t field against a scripted
 * sequence of operations (exact values), arenas in tree order, the
 * kstat(1M) and JSON printouts, and the snapshot triggers (the API, a pipe,
 * VMEM_SNAPSHOT at exit, VMEM_SNAPSHOT_SIGNAL, a fatal error).
 */
#define _GNU_SOURCE /* memmem */
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "vsnap.h"

#define PG ((size_t)4096)

static vmem_kstat_t ks(vmem_t *vmp)
{
	vmem_kstat_t k;

	assert_int_equal(vmem_kstat(vmp, &k), 0);
	return k;
}

/* The bucket the arena's hash gives addr (a copy of its function, for tests). */
static size_t bucket(uintptr_t addr, int qshift, int bits)
{
	return (size_t)(((uint64_t)(addr >> qshift) * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
}

typedef struct sleeper {
	vmem_t *vmp;
	void *got;
} sleeper_t;

static void *sleep_alloc(void *arg)
{
	sleeper_t *s = arg;

	s->got = vmem_alloc(s->vmp, PG, VM_SLEEP);
	return NULL;
}

static void test_scripted_counters(void **state)
{
	vmem_t *a = vmem_create("ka", (void *)0x100000, 64 * PG, PG, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *c = vmem_create("kc", NULL, 0, PG, vmem_alloc, vmem_free, a, 0, VM_SLEEP);
	vmem_kstat_t k;
	void *p[8];
	uintptr_t x, y;
	int i;

	(void)state;
	k = ks(a);
	assert_int_equal(k.vk_mem_total, 64 * PG);
	assert_int_equal(k.vk_mem_inuse, 0);
	assert_int_equal(k.vk_mem_import, 0);
	assert_int_equal(k.vk_source_id, 0);
	assert_int_equal(ks(c).vk_source_id, vmem_id(a));
	assert_true(vmem_id(a) >= 1 && vmem_id(c) == vmem_id(a) + 1);

	/* alloc, search (instant fit looks at one segment), mem_inuse (caller sizes) */
	for (i = 0; i < 3; i++)
		p[i] = vmem_alloc(a, 100 + (size_t)i, VM_SLEEP);
	k = ks(a);
	assert_int_equal(k.vk_alloc, 3);
	assert_int_equal(k.vk_search, 3);
	assert_int_equal(k.vk_mem_inuse, 100 + 101 + 102);

	/* free, lookup: the newest entry of a chain costs no lookup */
	vmem_free(a, p[2], 102);
	k = ks(a);
	assert_int_equal(k.vk_free, 1);
	assert_int_equal(k.vk_lookup, 0);
	assert_int_equal(k.vk_mem_inuse, 201);

	/* lookup: two segments in one bucket, the older freed first costs one */
	for (x = 0x100000; x < 0x100000 + 64 * PG; x += PG)
		for (y = x + PG; y < 0x100000 + 64 * PG; y += PG)
			if (bucket(x, 12, 4) == bucket(y, 12, 4) && x >= 0x100000 + 3 * PG)
				goto found;
	fail_msg("no two pages of the arena share a bucket");
found:
	assert_non_null(vmem_xalloc(a, PG, 0, 0, 0, (void *)x, (void *)(x + PG), VM_NOSLEEP));
	assert_non_null(vmem_xalloc(a, PG, 0, 0, 0, (void *)y, (void *)(y + PG), VM_NOSLEEP));
	vmem_xfree(a, (void *)x, PG);
	k = ks(a);
	assert_int_equal(k.vk_lookup, 1);
	assert_int_equal(k.vk_alloc, 5);
	vmem_xfree(a, (void *)y, PG);

	/* fail: an allocation that cannot be met with VM_NOSLEEP */
	assert_null(vmem_alloc(a, 64 * PG, VM_NOSLEEP));
	assert_int_equal(ks(a).vk_fail, 1);

	/* contains and contains_search: one span, one node per call */
	assert_true(vmem_contains(a, p[0], 1));
	assert_false(vmem_contains(a, (void *)0x10, 1));
	k = ks(a);
	assert_int_equal(k.vk_contains, 2);
	assert_int_equal(k.vk_contains_search, 2);

	/* mem_import in the child, and the source's view of it */
	p[3] = vmem_alloc(c, 2 * PG, VM_SLEEP);
	k = ks(c);
	assert_int_equal(k.vk_mem_import, 2 * PG);
	assert_int_equal(k.vk_mem_total, 2 * PG);
	assert_int_equal(k.vk_mem_inuse, 2 * PG);
	assert_int_equal(ks(a).vk_mem_inuse, 201 + 2 * PG);
	vmem_free(c, p[3], 2 * PG); /* the span goes back */
	assert_int_equal(ks(c).vk_mem_import, 0);
	assert_int_equal(ks(c).vk_mem_total, 0);

	/* wait: a VM_SLEEP allocation that has to sleep once */
	{
		sleeper_t s = {a, NULL};
		pthread_t th;
		void *fill[64];
		int n = 0;

		while ((fill[n] = vmem_alloc(a, PG, VM_NOSLEEP)) != NULL)
			n++;
		k = ks(a);
		pthread_create(&th, NULL, sleep_alloc, &s);
		for (;;) {
			unsigned w;

			pthread_mutex_lock(&a->vm_lock);
			w = a->vm_nwaiters;
			pthread_mutex_unlock(&a->vm_lock);
			if (w == 1)
				break;
			sched_yield();
		}
		vmem_free(a, fill[0], PG);
		pthread_join(th, NULL);
		assert_non_null(s.got);
		assert_int_equal(ks(a).vk_wait, k.vk_wait + 1);
		vmem_free(a, s.got, PG);
		for (i = 1; i < n; i++)
			vmem_free(a, fill[i], PG);
	}

	/* populate_fail and populate_wait: metadata that cannot be mapped */
	{
		vmem_t *m =
		    vmem_create("km", (void *)0x100000, 1 << 30, PG, NULL, NULL, NULL, 0, VM_SLEEP);
		void *q;

		/* No new mappings: use up the arena's reserve and the global pool. */
		vmem__fault_map(0, -1);
		while ((q = vmem_alloc(m, PG, VM_NOSLEEP)) != NULL)
			;
		k = ks(m);
		assert_true(k.vk_populate_fail >= 1);
		assert_int_equal(k.vk_populate_wait, 0);
		/* one more failure, then mapping works: a VM_SLEEP caller waits once */
		vmem__fault_map(0, 1);
		k = ks(m);
		q = vmem_alloc(m, PG, VM_SLEEP);
		assert_non_null(q);
		assert_int_equal(ks(m).vk_populate_fail, k.vk_populate_fail + 1);
		assert_int_equal(ks(m).vk_populate_wait, k.vk_populate_wait + 1);
		vmem__fault_clear();
		captured_t cap;
		capture_errors(&cap);
		vmem_destroy(m);
		release_errors();
	}
	errno = 0;
	assert_int_equal(vmem_kstat(NULL, &k), -1);
	assert_int_equal(errno, EINVAL);
	vmem_free(a, p[0], 100);
	vmem_free(a, p[1], 101);
	vmem_destroy(c);
	vmem_destroy(a);
}

/* ---- tree order ----------------------------------------------------------------- */

typedef struct order {
	int n;
	char names[16][32];
	int depth[16];
} order_t;

static int collect(const vmem_arena_info_t *info, void *arg)
{
	order_t *o = arg;

	if (strncmp(info->vai_name, "t_", 2) == 0 && o->n < 16) {
		snprintf(o->names[o->n], 32, "%s", info->vai_name);
		o->depth[o->n] = info->vai_depth;
		o->n++;
	}
	return 0;
}

static void test_tree_order(void **state)
{
	vmem_t *r1 = vmem_create("t_r1", (void *)0x100000, 64 * PG, PG, NULL, NULL, NULL, 0, 0);
	vmem_t *r2 = vmem_create("t_r2", (void *)0x900000, 64 * PG, PG, NULL, NULL, NULL, 0, 0);
	vmem_t *a = vmem_create("t_a", NULL, 0, PG, vmem_alloc, vmem_free, r1, 0, 0);
	vmem_t *b = vmem_create("t_b", NULL, 0, PG, vmem_alloc, vmem_free, r2, 0, 0);
	vmem_t *aa = vmem_create("t_aa", NULL, 0, PG, vmem_alloc, vmem_free, a, 0, 0);
	vmem_t *c = vmem_create("t_c", NULL, 0, PG, vmem_alloc, vmem_free, r1, 0, 0);
	static const char *want[] = {"t_r1", "t_a", "t_aa", "t_c", "t_r2", "t_b"};
	static const int wdepth[] = {0, 1, 2, 1, 0, 1};
	order_t o = {0};

	(void)state;
	assert_int_equal(vmem_arena_foreach(collect, &o), 0);
	assert_int_equal(o.n, 6);
	for (int i = 0; i < 6; i++) {
		assert_string_equal(o.names[i], want[i]);
		assert_int_equal(o.depth[i], wdepth[i]);
	}
	vmem_destroy(c);
	vmem_destroy(aa);
	vmem_destroy(b);
	vmem_destroy(a);
	vmem_destroy(r2);
	vmem_destroy(r1);
}

/* ---- printing ---------------------------------------------------------------------- */

/* Everything written to a pipe by fn. */
static size_t capture_fd(int (*fn)(int, int), int flags, char *buf, size_t len)
{
	char path[] = "/tmp/vmem-kstat-XXXXXX";
	int fd = mkstemp(path);
	ssize_t n;

	assert_true(fd >= 0);
	assert_int_equal(fn(fd, flags), 0);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, len - 1);
	close(fd);
	unlink(path);
	assert_true(n > 0);
	buf[n] = '\0';
	return (size_t)n;
}

static void test_kstat_print(void **state)
{
	vmem_t *a = vmem_create("kp_heap", (void *)0x100000, 64 * PG, PG, NULL, NULL, NULL, 2 * PG,
	                        VM_SLEEP);
	static char buf[1 << 20];
	void *p = vmem_alloc(a, PG, VM_SLEEP), *q = vmem_alloc(a, 5 * PG, VM_SLEEP);
	char line[256];

	(void)state;
	capture_fd(vmem_kstat_print, 0, buf, sizeof(buf));
	snprintf(line, sizeof(line), "vmem:%u:kp_heap:mem_total\t%zu\n", vmem_id(a), 64 * PG);
	assert_non_null(strstr(buf, line));
	snprintf(line, sizeof(line), "vmem:%u:kp_heap:source_id\t0\n", vmem_id(a));
	assert_non_null(strstr(buf, line));
	snprintf(line, sizeof(line), "vmem:%u:kp_heap_4096:alloc\t1\n", vmem_id(a));
	assert_non_null(strstr(buf, line));
	snprintf(line, sizeof(line), "vmem:%u:kp_heap_8192:objsize\t8192\n", vmem_id(a));
	assert_non_null(strstr(buf, line));
	assert_non_null(strstr(buf, "vmem:0:errors:double_free\t"));
	/* every line has the form vmem:<id>:<name>:<stat>\t<value> */
	for (char *l = buf; *l != '\0';) {
		char *nl = strchr(l, '\n'), *tab = strchr(l, '\t');

		assert_non_null(nl);
		assert_true(strncmp(l, "vmem:", 5) == 0 && tab != NULL && tab < nl);
		l = nl + 1;
	}
	capture_fd(vmem_kstat_print, VMEM_KSTAT_JSON, buf, sizeof(buf));
	assert_true(buf[0] == '{');
	assert_non_null(strstr(buf, "\"name\":\"kp_heap\""));
	assert_non_null(strstr(buf, "\"name\":\"kp_heap_4096\",\"objsize\":4096"));
	assert_non_null(strstr(buf, "\"errors\":{\"bad_free\":"));
	errno = 0;
	assert_int_equal(vmem_kstat_print(-1, 0), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(vmem_kstat_print(1, 42), -1);
	vmem_free(a, p, PG);
	vmem_free(a, q, 5 * PG);
	vmem_destroy(a);
}

/* ---- snapshots: the writer's triggers ---------------------------------------------------- */

static void assert_snapshot_file(const char *path, const char *arena)
{
	vsnap_file_header_t fh;
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((size_t)st.st_size > sizeof(fh));
	buf = malloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	memcpy(&fh, buf, sizeof(fh));
	assert_memory_equal(fh.fh_magic, VSNAP_MAGIC, 8);
	assert_int_equal(fh.fh_version, VSNAP_VERSION);
	assert_int_equal(fh.fh_nsections, VSNAP_SEC_MAX);
	buf[st.st_size] = '\0';
	if (arena != NULL)
		assert_non_null(memmem(buf, (size_t)st.st_size, arena, strlen(arena)));
	free(buf);
}

static void test_snapshot_api(void **state)
{
	vmem_t *a =
	    vmem_create("snap_api", (void *)0x100000, 64 * PG, PG, NULL, NULL, NULL, PG, VM_SLEEP);
	void *p = vmem_alloc(a, PG, VM_SLEEP);
	char path[] = "/tmp/vmem-snap-XXXXXX";
	int fds[2];
	char hdr[64];

	(void)state;
	close(mkstemp(path));
	assert_int_equal(vmem_snapshot_write(path), 0);
	assert_snapshot_file(path, "snap_api");
	unlink(path);
	/* to a pipe: section headers come before their payloads, no seeking */
	assert_int_equal(pipe(fds), 0);
	if (fork() == 0) {
		close(fds[0]);
		_exit(vmem_snapshot_write_fd(fds[1]) == 0 ? 0 : 1);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], hdr, sizeof(hdr)), sizeof(hdr));
	assert_memory_equal(hdr, VSNAP_MAGIC, 8);
	while (read(fds[0], hdr, sizeof(hdr)) > 0)
		;
	close(fds[0]);
	{
		int status;

		wait(&status);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	errno = 0;
	assert_int_equal(vmem_snapshot_write("/nonexistent/dir/x.vsnap"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(vmem_snapshot_write_fd(-1), -1);
	vmem_free(a, p, PG);
	vmem_destroy(a);
}

/* Run the helper with the environment given; returns its wait status. */
static int run_helper(const char *env, const char *mode)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "%s %s %s >/dev/null 2>&1", env, SNAPSHOT_HELPER, mode);
	return system(cmd);
}

static void test_snapshot_triggers(void **state)
{
	char dir[] = "/tmp/vmem-trig-XXXXXX", env[1024], path[512];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/exit.vsnap", dir);
	snprintf(env, sizeof(env), "VMEM_SNAPSHOT=%s", path);
	assert_int_equal(run_helper(env, "exit"), 0);
	assert_snapshot_file(path, "trigger");
	unlink(path);

	snprintf(path, sizeof(path), "%s/sig.vsnap", dir);
	snprintf(env, sizeof(env), "VMEM_SNAPSHOT=%s VMEM_SNAPSHOT_SIGNAL=USR1", path);
	assert_int_equal(run_helper(env, "signal"), 0);
	assert_snapshot_file(path, "trigger");
	unlink(path);

	snprintf(path, sizeof(path), "%s/fatal.vsnap", dir);
	snprintf(env, sizeof(env), "VMEM_SNAPSHOT=%s", path);
	assert_int_not_equal(run_helper(env, "fatal"), 0); /* it aborted */
	assert_snapshot_file(path, "trigger");
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scripted_counters), cmocka_unit_test(test_tree_order),
	    cmocka_unit_test(test_kstat_print),       cmocka_unit_test(test_snapshot_api),
	    cmocka_unit_test(test_snapshot_triggers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
