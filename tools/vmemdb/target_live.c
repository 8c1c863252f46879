/*
 * The live target: a running process, stopped with ptrace for as long as
 * vmemdb looks at it (as mdb -p does), so that the model and the memory the
 * leak scan reads are one consistent state, and resumed when vmemdb exits.
 *
 * Stopping: PTRACE_SEIZE and PTRACE_INTERRUPT every thread listed in
 * /proc/PID/task, again until no new thread appears (one may be created
 * while we attach), then waitpid(__WALL) each into its stop.  A thread that
 * stopped for a signal instead keeps the signal, given back at detach.
 * Detaching happens on close, on every error path, and from a handler of
 * SIGINT/SIGTERM/SIGHUP/SIGQUIT (PTRACE_DETACH is a plain system call); if
 * vmemdb dies otherwise, the kernel detaches its tracees itself.
 *
 * Reading: process_vm_readv, through a cache of 4 KiB pages filled 64 KiB
 * at a time (clamped to the mapping), because the collector reads the
 * segment records one by one; reads of 64 KiB or more (the leak scan) go
 * straight to the process.
 */
#define _GNU_SOURCE
#include "vmemdb.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define LIVE_PAGE       4096u
#define LIVE_CHUNK      (64u * 1024u)
#define LIVE_MAXTHREADS 65536

typedef struct page_ent {
	uint64_t page;       /* address >> 12, plus 1 (0: empty slot) */
	const uint8_t *data; /* NULL: unreadable */
} page_ent_t;

typedef struct live {
	pid_t pid;
	pid_t *tids; /* attached threads */
	int *sigs;   /* signal to give back at detach */
	size_t ntids, cap;
	page_ent_t *pages; /* open addressing, power-of-two size */
	size_t npages, pagecap;
	uint8_t **chunks;
	size_t nchunks, chunkcap;
} live_t;

/* The attached threads, for the signal handler (one live target at a time). */
static live_t *volatile live_active;

static void live_detach_all(live_t *l)
{
	for (size_t i = 0; i < l->ntids; i++)
		(void)ptrace(PTRACE_DETACH, l->tids[i], NULL, (void *)(intptr_t)l->sigs[i]);
	l->ntids = 0;
}

static void live_on_signal(int sig)
{
	live_t *l = live_active;

	if (l != NULL) {
		for (size_t i = 0; i < l->ntids; i++)
			(void)ptrace(PTRACE_DETACH, l->tids[i], NULL, (void *)(intptr_t)l->sigs[i]);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void live_handlers(bool on)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on ? live_on_signal : SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* ---- the page cache -------------------------------------------------------------- */

static uint64_t page_hash(uint64_t key)
{
	key *= 0x9e3779b97f4a7c15ULL;
	return key ^ (key >> 29);
}

static page_ent_t *page_slot(live_t *l, uint64_t key)
{
	size_t mask = l->pagecap - 1, i = (size_t)page_hash(key) & mask;

	while (l->pages[i].page != 0 && l->pages[i].page != key)
		i = (i + 1) & mask;
	return &l->pages[i];
}

static bool page_grow(live_t *l)
{
	size_t oldcap = l->pagecap;
	page_ent_t *old = l->pages;

	l->pagecap = oldcap ? oldcap * 2 : 4096;
	l->pages = calloc(l->pagecap, sizeof(*l->pages));
	if (l->pages == NULL) {
		l->pages = old;
		l->pagecap = oldcap;
		return false;
	}
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].page != 0)
			*page_slot(l, old[i].page) = old[i];
	free(old);
	return true;
}

static bool page_put(live_t *l, uint64_t key, const uint8_t *data)
{
	page_ent_t *e;

	if ((l->npages + 1) * 2 > l->pagecap && !page_grow(l))
		return false;
	e = page_slot(l, key);
	if (e->page == 0)
		l->npages++;
	e->page = key;
	e->data = data;
	return true;
}

static size_t direct_read(live_t *l, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
	ssize_t n = process_vm_readv(l->pid, &local, 1, &remote, 1, 0);

	return n > 0 ? (size_t)n : 0;
}

/* Fill the cache from the page holding addr on; false if out of memory. */
static bool page_fill(vdb_target_t *t, live_t *l, uint64_t addr)
{
	uint64_t start = addr & ~(uint64_t)(LIVE_PAGE - 1), end = start + LIVE_CHUNK;
	const vdb_map_t *m = vdb_map_of(t, addr);
	uint8_t *buf;
	size_t n;

	if (m == NULL || !(m->prot & VDB_PROT_R))
		return page_put(l, (start >> 12) + 1, NULL);
	if (end > m->end || end < start)
		end = m->end;
	if (l->nchunks == l->chunkcap) {
		size_t cap = l->chunkcap ? l->chunkcap * 2 : 64;
		uint8_t **c = realloc(l->chunks, cap * sizeof(*c));

		if (c == NULL)
			return false;
		l->chunks = c;
		l->chunkcap = cap;
	}
	buf = malloc(end - start);
	if (buf == NULL)
		return false;
	l->chunks[l->nchunks++] = buf;
	n = direct_read(l, start, buf, end - start);
	for (uint64_t p = start; p < end; p += LIVE_PAGE) {
		bool ok = p + LIVE_PAGE <= start + n;

		if (!page_put(l, (p >> 12) + 1, ok ? buf + (p - start) : NULL))
			return false;
		if (!ok)
			break;
	}
	return true;
}

static size_t live_read(vdb_target_t *t, uint64_t addr, void *buf, size_t len)
{
	live_t *l = t->priv;
	size_t done = 0;

	if (len >= LIVE_CHUNK)
		return direct_read(l, addr, buf, len);
	while (done < len) {
		uint64_t a = addr + done, key = (a >> 12) + 1;
		size_t off = (size_t)(a & (LIVE_PAGE - 1)), n = LIVE_PAGE - off;
		page_ent_t *e = l->pagecap ? page_slot(l, key) : NULL;

		if (e == NULL || e->page == 0) {
			if (!page_fill(t, l, a))
				return done;
			e = page_slot(l, key);
		}
		if (e->data == NULL)
			return done;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)buf + done, e->data + off, n);
		done += n;
	}
	return done;
}

static void live_close(vdb_target_t *t)
{
	live_t *l = t->priv;

	if (l == NULL)
		return;
	live_detach_all(l);
	live_active = NULL;
	live_handlers(false);
	for (size_t i = 0; i < l->nchunks; i++)
		free(l->chunks[i]);
	free(l->chunks);
	free(l->pages);
	free(l->tids);
	free(l->sigs);
	free(l);
	t->priv = NULL;
}

static const vdb_target_ops_t live_ops = {live_read, live_close};

/* ---- mappings --------------------------------------------------------------------- */

static bool push_map(vdb_target_t *t, size_t *cap, const vdb_map_t *m)
{
	if (t->nmaps == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		vdb_map_t *n = realloc(t->maps, nc * sizeof(*n));

		if (n == NULL)
			return false;
		t->maps = n;
		*cap = nc;
	}
	t->maps[t->nmaps++] = *m;
	return true;
}

/* The mappings from /proc/PID/smaps (for VmFlags: "dd" is excluded from dumps). */
static int read_maps(vdb_target_t *t, pid_t pid, char *err, size_t errlen)
{
	char path[64], line[4096 + 128];
	size_t cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long start, end, off;
		char perms[8];
		int pos = 0;
		vdb_map_t m;

		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "VmFlags:", 8) == 0) {
			if (t->nmaps > 0 && strstr(line + 8, " dd") != NULL)
				t->maps[t->nmaps - 1].flags |= VDB_MAP_NODUMP;
			continue;
		}
		if (sscanf(line, "%llx-%llx %7s %llx %*s %*u %n", &start, &end, perms, &off, &pos) <
		        4 ||
		    pos == 0)
			continue;
		memset(&m, 0, sizeof(m));
		m.start = start;
		m.end = end;
		m.offset = off;
		m.prot = (perms[0] == 'r' ? VDB_PROT_R : 0) | (perms[1] == 'w' ? VDB_PROT_W : 0) |
		         (perms[2] == 'x' ? VDB_PROT_X : 0);
		if (line[pos] != '\0') {
			char *p = line + pos, *del = strstr(p, " (deleted)");

			if (del != NULL && del[10] == '\0')
				*del = '\0';
			m.path = strdup(p);
		}
		if (!push_map(t, &cap, &m)) {
			free(m.path);
			fclose(f);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	fclose(f);
	return vdb_sort_maps(t);
}

/* ---- stopping the threads ------------------------------------------------------------ */

static bool have_tid(const live_t *l, pid_t tid)
{
	for (size_t i = 0; i < l->ntids; i++)
		if (l->tids[i] == tid)
			return true;
	return false;
}

static bool add_tid(live_t *l, pid_t tid)
{
	if (l->ntids == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		pid_t *nt = realloc(l->tids, nc * sizeof(*nt));
		int *ns;

		if (nt == NULL)
			return false;
		l->tids = nt;
		ns = realloc(l->sigs, nc * sizeof(*ns));
		if (ns == NULL)
			return false;
		l->sigs = ns;
		l->cap = nc;
	}
	l->tids[l->ntids] = tid;
	l->sigs[l->ntids] = 0;
	l->ntids++;
	return true;
}

static void remove_tid(live_t *l, size_t i)
{
	l->tids[i] = l->tids[l->ntids - 1];
	l->sigs[i] = l->sigs[l->ntids - 1];
	l->ntids--;
}

/* Who traces pid already (TracerPid in /proc/PID/status), 0 if nobody. */
static long tracer_of(pid_t pid)
{
	char path[64], line[256];
	long tracer = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "TracerPid: %ld", &tracer) == 1)
			break;
	fclose(f);
	return tracer;
}

/* Seize and interrupt the threads not yet attached: how many, or -1. */
static int seize_new(live_t *l, char *err, size_t errlen)
{
	char path[64];
	struct dirent *d;
	int added = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)l->pid);
	dir = opendir(path);
	if (dir == NULL) {
		snprintf(err, errlen, "no process %d", (int)l->pid);
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		pid_t tid = (pid_t)atoi(d->d_name);

		if (tid <= 0 || have_tid(l, tid))
			continue;
		if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0) {
			long tracer;

			if (errno == ESRCH)
				continue; /* the thread exited meanwhile */
			tracer = tracer_of(l->pid);
			if (tracer != 0)
				snprintf(err, errlen, "process %d is already traced by process %ld",
				         (int)l->pid, tracer);
			else
				snprintf(
				    err, errlen,
				    "cannot trace process %d: %s (ptrace needs the same user and "
				    "kernel.yama.ptrace_scope 0, or CAP_SYS_PTRACE)",
				    (int)l->pid, strerror(errno));
			closedir(dir);
			return -1;
		}
		if (!add_tid(l, tid) || l->ntids > LIVE_MAXTHREADS) {
			(void)ptrace(PTRACE_DETACH, tid, NULL, NULL);
			snprintf(err, errlen, "too many threads");
			closedir(dir);
			return -1;
		}
		(void)ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
		added++;
	}
	closedir(dir);
	return added;
}

/* Wait until every attached thread is in a stop; forget those that exited. */
static int wait_stopped(live_t *l, size_t from, char *err, size_t errlen)
{
	for (size_t i = from; i < l->ntids;) {
		int st;
		pid_t r = waitpid(l->tids[i], &st, __WALL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECHILD) { /* gone */
				remove_tid(l, i);
				continue;
			}
			snprintf(err, errlen, "waitpid(%d): %s", (int)l->tids[i], strerror(errno));
			return -1;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			remove_tid(l, i);
			continue;
		}
		if (WIFSTOPPED(st) && (st >> 16) == 0 && WSTOPSIG(st) != SIGTRAP)
			l->sigs[i] = WSTOPSIG(st); /* a signal arrived first: keep it for later */
		i++;
	}
	return 0;
}

static int attach_all(live_t *l, char *err, size_t errlen)
{
	for (int round = 0; round < 100; round++) {
		size_t before = l->ntids;
		int added = seize_new(l, err, errlen);

		if (added < 0)
			return -1;
		if (wait_stopped(l, before, err, errlen) != 0)
			return -1;
		if (added == 0)
			break;
	}
	if (l->ntids == 0) {
		snprintf(err, errlen, "process %d exited", (int)l->pid);
		return -1;
	}
	return 0;
}

static int read_regs(vdb_target_t *t, live_t *l, char *err, size_t errlen)
{
	t->threads = calloc(l->ntids, sizeof(*t->threads));
	if (t->threads == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < l->ntids; i++) {
		struct user_regs_struct regs;
		struct iovec iov = {&regs, sizeof(regs)};
		vdb_thread_t *th = &t->threads[t->nthreads];

		if (ptrace(PTRACE_GETREGSET, l->tids[i], (void *)(uintptr_t)NT_PRSTATUS, &iov) != 0)
			continue;
		th->tid = (uint64_t)l->tids[i];
		th->nregs = iov.iov_len / sizeof(uint64_t);
		if (th->nregs > VDB_MAXREGS)
			th->nregs = VDB_MAXREGS;
		memcpy(th->regs, &regs, th->nregs * sizeof(uint64_t));
#if defined(__x86_64__)
		th->sp = regs.rsp;
#elif defined(__aarch64__)
		th->sp = regs.sp;
#endif
		t->nthreads++;
	}
	return 0;
}

vdb_target_t *vdb_open_live(uint64_t pid, char *err, size_t errlen)
{
	vdb_target_t *t;
	live_t *l;
	char path[64];

	if (pid == 0 || pid > 0x7fffffff) {
		snprintf(err, errlen, "bad process id %llu", (unsigned long long)pid);
		return NULL;
	}
	if ((pid_t)pid == getpid()) {
		snprintf(err, errlen, "process %llu is vmemdb itself", (unsigned long long)pid);
		return NULL;
	}
	snprintf(path, sizeof(path), "/proc/%llu", (unsigned long long)pid);
	if (access(path, F_OK) != 0) {
		snprintf(err, errlen, "no process %llu", (unsigned long long)pid);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	l = calloc(1, sizeof(*l));
	if (t == NULL || l == NULL) {
		free(t);
		free(l);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->kind = VDB_LIVE;
	t->pid = pid;
	t->ops = &live_ops;
	t->priv = l;
	l->pid = (pid_t)pid;
	snprintf(t->name, sizeof(t->name), "live process %llu", (unsigned long long)pid);
	live_active = l;
	live_handlers(true);
	if (attach_all(l, err, errlen) != 0 || read_maps(t, l->pid, err, errlen) != 0 ||
	    read_regs(t, l, err, errlen) != 0 || vdb_objects_from_maps(t, err, errlen) != 0) {
		vdb_target_close(t);
		return NULL;
	}
	return t;
}
