/*
 * Snapshots: the whole state of libvmem written to a file descriptor, in
 * the format of docs/snapshot-format.md (records in src/vsnap.h).
 *
 * Consistency.  The writer first reaps every quantum cache (as vmem_walk
 * does: objects sitting in magazines go back to their slabs, so that a
 * slab object is either free or held by a caller), then takes the arena
 * list lock and every arena's lock, in list order, and writes everything
 * while holding them.  That is safe because no thread ever holds an arena
 * lock while waiting for another arena's lock or the list lock (vmem.c,
 * section 6); cache locks and the debug layer's locks are taken after the
 * arena locks, as everywhere.
 *
 * No malloc.  Each section is walked twice under the locks, once counting
 * and once writing, so that its header (record count, payload bytes) can
 * precede it even on a pipe; output goes through a buffer on the stack.
 * What could change between the two walks without an arena lock (loaded
 * objects, metadata regions, the threads' cache counters) is collected
 * once, beforehand, into static tables; snapshot_lock serializes writers.
 * So a snapshot can be written from an exit handler, a signal-woken thread
 * or a process about to abort.
 *
 * Triggers: vmem_snapshot_write(_fd); VMEM_SNAPSHOT=path at exit; before
 * aborting on a fatal error (error.c); VMEM_SNAPSHOT_SIGNAL=<signal>.
 */
#define _GNU_SOURCE
#include "vmem_impl.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../debug/debug.h"
#include "qcache.h"
#include "vsnap.h"

#define SNAP_BUF    32768
#define SNAP_MAXOBJ 512
#define SNAP_MAXREG 8192
#define SNAP_MAXQC  1024 /* caches whose per-thread counters are kept */

struct vmem_snapw {
	int fd;
	bool counting;
	int err;
	uint64_t count; /* records in the current section */
	uint64_t bytes; /* payload bytes in the current section */
	size_t len;
	char buf[SNAP_BUF];
};

static pthread_mutex_t snapshot_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- output ------------------------------------------------------------------ */

static void w_flush(vmem_snapw_t *w)
{
	size_t off = 0;

	while (off < w->len && w->err == 0) {
		ssize_t n = write(w->fd, w->buf + off, w->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			w->err = n < 0 ? errno : EIO;
		else
			off += (size_t)n;
	}
	w->len = 0;
}

void vmem__snapw_put(vmem_snapw_t *w, const void *p, size_t n)
{
	const char *c = p;

	w->bytes += n;
	if (w->counting)
		return;
	while (n > 0) {
		size_t k = SNAP_BUF - w->len < n ? SNAP_BUF - w->len : n;

		memcpy(w->buf + w->len, c, k);
		w->len += k;
		c += k;
		n -= k;
		if (w->len == SNAP_BUF)
			w_flush(w);
	}
}

void vmem__snapw_record(vmem_snapw_t *w)
{
	static const char zero[8];

	if (w->bytes % 8 != 0) /* variable records are padded to 8 */
		vmem__snapw_put(w, zero, 8 - w->bytes % 8);
	w->count++;
}

/* Write one section: count it, then write its header and its payload. */
static void w_section(vmem_snapw_t *w, uint32_t type, uint32_t recsize,
                      void (*body)(vmem_snapw_t *, void *), void *arg)
{
	vsnap_section_header_t sh = {.sh_type = type, .sh_recsize = recsize};
	uint64_t count, bytes;

	w->counting = true;
	w->count = w->bytes = 0;
	body(w, arg);
	count = w->count;
	bytes = w->bytes;
	w->counting = false;
	sh.sh_count = count;
	sh.sh_bytes = bytes;
	vmem__snapw_put(w, &sh, sizeof(sh));
	w->count = w->bytes = 0;
	body(w, arg);
	if ((w->count != count || w->bytes != bytes) && w->err == 0)
		w->err = EIO; /* cannot happen: the state is locked */
}

/* ---- what is collected before locking ----------------------------------------- */

typedef struct snap_obj {
	vsnap_object_rec_t rec;
	char path[256];
} snap_obj_t;

typedef struct snap_qc {
	const vmem_qcache_t *qc;
	uint32_t gen;
	uint64_t sums[4]; /* alloc, free, alloc_miss, free_miss of live threads */
} snap_qc_t;

static snap_obj_t objs[SNAP_MAXOBJ];
static size_t nobjs;
static vsnap_region_rec_t regs[SNAP_MAXREG];
static size_t nregs;
static snap_qc_t qcsums[SNAP_MAXQC];

/* The GNU build id among an object's notes, read from memory. */
static void build_id_of(const struct dl_phdr_info *info, vsnap_object_rec_t *rec)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr),
		           *end = p + ph->p_memsz;

		if (ph->p_type != PT_NOTE)
			continue;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			size_t name = (nh->n_namesz + 3) & ~(size_t)3,
			       desc = (nh->n_descsz + 3) & ~(size_t)3;
			const char *d = p + sizeof(*nh) + name;

			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(p + sizeof(*nh), "GNU", 4) == 0 && d + nh->n_descsz <= end) {
				rec->ob_build_id_len = nh->n_descsz > 20 ? 20 : nh->n_descsz;
				memcpy(rec->ob_build_id, d, rec->ob_build_id_len);
				return;
			}
			p = d + desc;
		}
	}
}

static int collect_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	snap_obj_t *o;
	uintptr_t lo = UINTPTR_MAX, hi = 0;

	(void)size;
	(void)arg;
	if (nobjs == SNAP_MAXOBJ)
		return 1;
	o = &objs[nobjs];
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD)
			continue;
		if (info->dlpi_addr + ph->p_vaddr < lo)
			lo = info->dlpi_addr + ph->p_vaddr;
		if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > hi)
			hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
	}
	if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0') {
		ssize_t n =
		    nobjs == 0 ? readlink("/proc/self/exe", o->path, sizeof(o->path) - 1) : -1;

		if (n <= 0)
			return 0; /* the vdso, or an anonymous object */
		o->path[n] = '\0';
	} else {
		snprintf(o->path, sizeof(o->path), "%s", info->dlpi_name);
	}
	if (lo >= hi)
		return 0;
	o->rec.ob_base = info->dlpi_addr;
	o->rec.ob_start = lo;
	o->rec.ob_end = hi;
	o->rec.ob_path_len = (uint32_t)strlen(o->path);
	build_id_of(info, &o->rec);
	nobjs++;
	return 0;
}

static void collect_region(const vmem_meta_region_t *r, void *arg)
{
	(void)arg;
	if (nregs < SNAP_MAXREG)
		regs[nregs++] =
		    (vsnap_region_rec_t){(uint64_t)(uintptr_t)r, r->mr_size, r->mr_kind, 0};
}

static void collect_qcsum(const vmem_qcache_t *qc, uint32_t gen, const uint64_t sums[4], void *arg)
{
	size_t h = ((uintptr_t)qc >> 6) % SNAP_MAXQC;

	(void)arg;
	for (size_t k = 0; k < SNAP_MAXQC; k++, h = (h + 1) % SNAP_MAXQC) {
		snap_qc_t *q = &qcsums[h];

		if (q->qc == NULL) {
			q->qc = qc;
			q->gen = gen;
		}
		if (q->qc == qc && q->gen == gen) {
			for (int i = 0; i < 4; i++)
				q->sums[i] += sums[i];
			return;
		}
	}
}

static const uint64_t *qcsum_of(const vmem_qcache_t *qc)
{
	size_t h = ((uintptr_t)qc >> 6) % SNAP_MAXQC;

	for (size_t k = 0; k < SNAP_MAXQC && qcsums[h].qc != NULL; k++, h = (h + 1) % SNAP_MAXQC) {
		if (qcsums[h].qc == qc && qcsums[h].gen == qc->qc_gen)
			return qcsums[h].sums;
	}
	return NULL;
}

/*
 * Reap every cache (one arena at a time, pinned so that it cannot be
 * destroyed meanwhile; never holding the list lock while reaping).
 */
static void reap_all(void)
{
	uint32_t last = 0;

	for (;;) {
		vmem_t *vmp, *pick = NULL;

		pthread_mutex_lock(&vmem__list_lock);
		for (vmp = vmem__list_head; vmp != NULL; vmp = vmp->vm_next) {
			if (vmp->vm_id > last && vmp->vm_nqcache != 0) {
				pick = vmp;
				atomic_fetch_add(&pick->vm_pins, 1);
				break;
			}
		}
		pthread_mutex_unlock(&vmem__list_lock);
		if (pick == NULL)
			return;
		last = pick->vm_id;
		(void)vmem__qc_reap(pick, true);
		atomic_fetch_sub(&pick->vm_pins, 1);
	}
}

/* ---- sections (every arena locked) ----------------------------------------------- */

static void sec_arenas(vmem_snapw_t *w, void *arg)
{
	(void)arg;
	for (vmem_t *vmp = vmem__list_head; vmp != NULL; vmp = vmp->vm_next) {
		vsnap_arena_rec_t r;
		const vmem_counters_t *c = &vmp->vm_ctr;
		uint64_t k[VSNAP_NKSTAT] = {
		    c->vc_mem_inuse,     c->vc_mem_import,
		    c->vc_mem_total,     vmp->vm_source != NULL ? vmp->vm_source->vm_id : 0,
		    c->vc_alloc,         c->vc_free,
		    c->vc_wait,          c->vc_fail,
		    c->vc_lookup,        c->vc_search,
		    c->vc_populate_wait, c->vc_populate_fail,
		    c->vc_contains,      c->vc_contains_search};

		memset(&r, 0, sizeof(r));
		r.ar_id = vmp->vm_id;
		r.ar_source_id = (uint32_t)k[3];
		r.ar_cflags = (uint32_t)vmp->vm_cflags;
		r.ar_nqcache = (uint32_t)vmp->vm_nqcache;
		r.ar_quantum = vmp->vm_quantum;
		r.ar_qcache_max = vmp->vm_qcache_max;
		r.ar_addr = (uint64_t)(uintptr_t)vmp;
		snprintf(r.ar_name, sizeof(r.ar_name), "%s", vmp->vm_name);
		memcpy(r.ar_kstat, k, sizeof(k));
		vmem__snapw_put(w, &r, sizeof(r));
		vmem__snapw_record(w);
	}
}

/* A slab's objects that callers hold, as CACHED records. */
static void slab_objects(vmem_snapw_t *w, const vmem_t *vmp, const vmem_seg_t *vsp)
{
	size_t objsize;
	unsigned nobj;
	uint64_t freemap;
	void *audit;
	uintptr_t slabaddr;

	if (!vmem__qc_slab_info((vmem_t *)vmp, vsp->vs_start, &objsize, &nobj, &freemap, &audit,
	                        &slabaddr))
		return;
	for (unsigned i = 0; i < nobj; i++) {
		vsnap_seg_rec_t r;

		if (freemap & (1ULL << i))
			continue;
		memset(&r, 0, sizeof(r));
		r.sg_arena = vmp->vm_id;
		r.sg_type = VSNAP_CACHED;
		r.sg_start = vsp->vs_start + (uintptr_t)i * objsize;
		r.sg_size = r.sg_extent = objsize;
		r.sg_stack =
		    vmem_debug ? vmem__dbg_qc_audit(audit, i, &r.sg_thread, &r.sg_time) : 0;
		r.sg_addr = slabaddr;
		vmem__snapw_put(w, &r, sizeof(r));
		vmem__snapw_record(w);
	}
}

static void sec_segs(vmem_snapw_t *w, void *arg)
{
	(void)arg;
	for (vmem_t *vmp = vmem__list_head; vmp != NULL; vmp = vmp->vm_next) {
		for (vmem_seg_t *vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0;
		     vsp = vsp->vs_anext) {
			vsnap_seg_rec_t r;

			if (vsp->vs_type == VMEM_SEG_WALKER)
				continue;
			memset(&r, 0, sizeof(r));
			r.sg_arena = vmp->vm_id;
			r.sg_type = vsp->vs_type;
			r.sg_flags = vsp->vs_flags;
			r.sg_start = vsp->vs_start;
			r.sg_extent = vsp->vs_size;
			r.sg_size = vsp->vs_size;
			r.sg_addr = (uint64_t)(uintptr_t)vsp;
			if (vsp->vs_type == VMEM_SEG_ALLOC) {
				r.sg_size = vsp->u.a.vs_asize;
				r.sg_stack = vsp->vs_stack;
				r.sg_thread = vsp->u.a.vs_thread;
				r.sg_time = vsp->u.a.vs_time;
			}
			vmem__snapw_put(w, &r, sizeof(r));
			vmem__snapw_record(w);
			if (vsp->vs_type == VMEM_SEG_ALLOC && (vsp->vs_flags & VMEM_SEGF_SLAB))
				slab_objects(w, vmp, vsp);
		}
	}
}

static void sec_qcaches(vmem_snapw_t *w, void *arg)
{
	(void)arg;
	for (vmem_t *vmp = vmem__list_head; vmp != NULL; vmp = vmp->vm_next) {
		for (int i = 0; i < vmp->vm_nqcache; i++) {
			vmem_qcache_t *qc = vmp->vm_qcache[i];
			const uint64_t *sums = qcsum_of(qc);
			vmem_qcache_kstat_t ks;
			vsnap_qcache_rec_t r;

			vmem__qc_kstat_shared(qc, &ks);
			if (sums != NULL) {
				ks.qk_alloc += sums[0];
				ks.qk_free += sums[1];
				ks.qk_alloc_miss += sums[2];
				ks.qk_free_miss += sums[3];
			}
			memset(&r, 0, sizeof(r));
			r.qr_arena = vmp->vm_id;
			r.qr_index = (uint32_t)i;
			memcpy(r.qr_name, ks.qk_name, sizeof(r.qr_name));
			memcpy(r.qr_kstat, &ks.qk_objsize, sizeof(r.qr_kstat));
			vmem__snapw_put(w, &r, sizeof(r));
			vmem__snapw_record(w);
		}
	}
}

_Static_assert(sizeof(vmem_qcache_kstat_t) - offsetof(vmem_qcache_kstat_t, qk_objsize) ==
                   VSNAP_NQKSTAT * sizeof(uint64_t),
               "the cache counters follow the name, in the snapshot's order");

static void sec_stacks(vmem_snapw_t *w, void *arg)
{
	(void)arg;
	if (vmem_debug)
		vmem__dbg_snap_stacks(w);
}

static void sec_log(vmem_snapw_t *w, void *arg)
{
	(void)arg;
	if (vmem_debug)
		vmem__dbg_snap_log(w);
}

static void sec_objects(vmem_snapw_t *w, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < nobjs; i++) {
		vmem__snapw_put(w, &objs[i].rec, sizeof(objs[i].rec));
		vmem__snapw_put(w, objs[i].path, objs[i].rec.ob_path_len);
		vmem__snapw_record(w);
	}
}

static void sec_regions(vmem_snapw_t *w, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < nregs; i++) {
		vmem__snapw_put(w, &regs[i], sizeof(regs[i]));
		vmem__snapw_record(w);
	}
}

extern _Atomic uint64_t vmem__error_kind_counts[VMEM_ERR_NKINDS];

static void sec_errors(vmem_snapw_t *w, void *arg)
{
	(void)arg;
	for (int k = 0; k < VMEM_ERR_NKINDS; k++) {
		uint64_t n = atomic_load(&vmem__error_kind_counts[k]);

		vmem__snapw_put(w, &n, sizeof(n));
		vmem__snapw_record(w);
	}
}

static void sec_end(vmem_snapw_t *w, void *arg)
{
	(void)w;
	(void)arg;
}

/* ---- the writer ---------------------------------------------------------------------- */

static void lock_world(void)
{
	pthread_mutex_lock(&vmem__list_lock);
	for (vmem_t *vmp = vmem__list_head; vmp != NULL; vmp = vmp->vm_next)
		pthread_mutex_lock(&vmp->vm_lock);
}

static void unlock_world(void)
{
	for (vmem_t *vmp = vmem__list_head; vmp != NULL; vmp = vmp->vm_next)
		pthread_mutex_unlock(&vmp->vm_lock);
	pthread_mutex_unlock(&vmem__list_lock);
}

int vmem_snapshot_write_fd(int fd)
{
	vmem_snapw_t w;
	vsnap_file_header_t fh;
	struct timespec ts;

	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	memset(&w.fd, 0, offsetof(vmem_snapw_t, buf));
	w.fd = fd;
	reap_all();
	pthread_mutex_lock(&snapshot_lock);
	nobjs = nregs = 0;
	memset(qcsums, 0, sizeof(qcsums));
	dl_iterate_phdr(collect_object, NULL);
	vmem__meta_foreach(collect_region, NULL);
	vmem__tc_sum_all(collect_qcsum, NULL);

	memset(&fh, 0, sizeof(fh));
	memcpy(fh.fh_magic, VSNAP_MAGIC, 8);
	fh.fh_version = VSNAP_VERSION;
	fh.fh_hdrsize = sizeof(fh);
	fh.fh_flags = vmem_debug ? VSNAP_F_DEBUG : 0;
	fh.fh_ptrsize = sizeof(void *);
	fh.fh_pid = (uint64_t)getpid();
	clock_gettime(CLOCK_REALTIME, &ts);
	fh.fh_time_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	fh.fh_nsections = VSNAP_SEC_MAX;
	vmem__snapw_put(&w, &fh, sizeof(fh));

	lock_world();
	w_section(&w, VSNAP_SEC_ARENA, sizeof(vsnap_arena_rec_t), sec_arenas, NULL);
	w_section(&w, VSNAP_SEC_SEG, sizeof(vsnap_seg_rec_t), sec_segs, NULL);
	w_section(&w, VSNAP_SEC_QCACHE, sizeof(vsnap_qcache_rec_t), sec_qcaches, NULL);
	w_section(&w, VSNAP_SEC_STACK, 0, sec_stacks, NULL);
	w_section(&w, VSNAP_SEC_TXLOG, sizeof(vsnap_txrec_t), sec_log, NULL);
	unlock_world();
	w_section(&w, VSNAP_SEC_OBJECT, 0, sec_objects, NULL);
	w_section(&w, VSNAP_SEC_REGION, sizeof(vsnap_region_rec_t), sec_regions, NULL);
	w_section(&w, VSNAP_SEC_ERRORS, sizeof(uint64_t), sec_errors, NULL);
	w_section(&w, VSNAP_SEC_END, 0, sec_end, NULL);
	w_flush(&w);
	pthread_mutex_unlock(&snapshot_lock);
	if (w.err != 0) {
		errno = w.err;
		return -1;
	}
	return 0;
}

int vmem_snapshot_write(const char *path)
{
	char tmp[4096];
	int fd, rc, saved;

	if (path == NULL || snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errno = EINVAL;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	rc = vmem_snapshot_write_fd(fd);
	saved = errno;
	if (close(fd) != 0 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	if (rc == 0 && rename(tmp, path) != 0) {
		rc = -1;
		saved = errno;
	}
	if (rc != 0)
		unlink(tmp);
	errno = saved;
	return rc;
}

/* ---- triggers ---------------------------------------------------------------------------- */

/* The snapshot path from VMEM_SNAPSHOT, or vmem-<pid>.vsnap. */
static const char *snapshot_path(char *buf, size_t len)
{
	const char *p = getenv("VMEM_SNAPSHOT");

	if (p != NULL && *p != '\0')
		return p;
	snprintf(buf, len, "vmem-%d.vsnap", (int)getpid());
	return buf;
}

void vmem__snapshot_on_fatal(void)
{
	const char *p = getenv("VMEM_SNAPSHOT");

	if (p != NULL && *p != '\0' && vmem_snapshot_write(p) == 0) {
		char msg[4200];

		snprintf(msg, sizeof(msg), "snapshot written to %s", p);
		vmem__write_line(msg);
	}
}

static void snapshot_at_exit(void)
{
	char buf[64];

	(void)vmem_snapshot_write(snapshot_path(buf, sizeof(buf)));
}

static int sig_pipe[2] = {-1, -1};

/* Async-signal-safe: only wakes the snapshot thread. */
static void on_snapshot_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	(void)!write(sig_pipe[1], &c, 1);
	errno = saved;
}

static void *snapshot_thread(void *arg)
{
	char c, buf[64];

	(void)arg;
	for (;;) {
		ssize_t n = read(sig_pipe[0], &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		if (vmem_snapshot_write(snapshot_path(buf, sizeof(buf))) != 0)
			vmem__write_line("snapshot on signal failed");
	}
}

/* "USR1", "SIGUSR1" or a number. */
static int signal_number(const char *name)
{
	static const struct {
		const char *n;
		int s;
	} sigs[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP},
	            {"QUIT", SIGQUIT}, {"PWR", SIGPWR},   {"WINCH", SIGWINCH}};

	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (strcmp(name, sigs[i].n) == 0)
			return sigs[i].s;
	}
	return atoi(name) > 0 && atoi(name) < NSIG ? atoi(name) : 0;
}

static void install_signal_trigger(const char *name)
{
	struct sigaction sa;
	pthread_t th;
	pthread_attr_t attr;
	int sig = signal_number(name);

	if (sig == 0 || pipe2(sig_pipe, O_CLOEXEC) != 0) {
		vmem__write_line("VMEM_SNAPSHOT_SIGNAL: unknown signal or no pipe; ignored");
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, snapshot_thread, NULL) != 0) {
		vmem__write_line("VMEM_SNAPSHOT_SIGNAL: cannot start the snapshot thread; ignored");
		pthread_attr_destroy(&attr);
		return;
	}
	pthread_attr_destroy(&attr);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_snapshot_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

__attribute__((constructor)) static void snapshot_init(void)
{
	const char *p = getenv("VMEM_SNAPSHOT"), *s = getenv("VMEM_SNAPSHOT_SIGNAL");

	if (p != NULL && *p != '\0')
		atexit(snapshot_at_exit);
	if (s != NULL && *s != '\0')
		install_signal_trigger(s);
}
