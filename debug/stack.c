/*
 * Debug layer: stack capture and the stack depot.
 *
 * Capture.  Every public entry point records its return address (the
 * caller's call site) in a thread-local context on entry (VMEM_API_SCOPE in
 * vmem_impl.h).  The outermost entry captures the stack with libunwind's
 * unw_backtrace() (150-220 ns for 16 frames; the unw_step loop is two
 * syscalls a frame on Debian, see dependencies.md) and keeps the frames
 * from that return address on: the library's own frames are gone whatever
 * was inlined, in the shared and the static library alike.  Nested entries
 * (an import calling vmem_alloc on the source) reuse the outer capture, so
 * a parent's segment is charged to the user code that caused the import.
 *
 * The depot.  Identical stacks are stored once, in memory the library maps
 * itself, and named by a 32-bit id (0: no stack); segments, cached objects
 * and log records keep only the id.  Stacks are kept as raw return
 * addresses and symbolized only when a report is printed.
 *
 * Locking: depot_lock protects the depot (hash, id table, bump region).
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "dbg_impl.h"

#include <vmem_root.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEPOT_BUCKETS (1u << 16)
#define DEPOT_CHUNK   (1u << 20)

typedef struct stack_rec {
	struct stack_rec *sr_next; /* hash chain */
	uint32_t sr_hash;
	uint32_t sr_id;
	uint32_t sr_depth;
	uint32_t sr_pad;
	uintptr_t sr_pc[];
} stack_rec_t;

int vmem__dbg_depth = 16;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t depot_lock = PTHREAD_MUTEX_INITIALIZER;
static stack_rec_t **depot_hash;
static stack_rec_t **depot_byid; /* [id - 1] */
static uint32_t depot_count, depot_cap;
static char *bump, *bump_end;

/* Where a debugger finds the depot and the log (see vmem_root.h). */
extern vmem_txrec_t *vmem__dbg_log_recs;
extern size_t vmem__dbg_log_size;
extern uint64_t vmem__dbg_log_seq;
const vmem_root_debug_t vmem__dbg_root_part = {
    .rd_depot_byid = (uint64_t)(uintptr_t)&depot_byid,
    .rd_depot_count = (uint64_t)(uintptr_t)&depot_count,
    .rd_stack_depth = offsetof(stack_rec_t, sr_depth),
    .rd_stack_pc = offsetof(stack_rec_t, sr_pc),
    .rd_log_recs = (uint64_t)(uintptr_t)&vmem__dbg_log_recs,
    .rd_log_size = (uint64_t)(uintptr_t)&vmem__dbg_log_size,
    .rd_log_seq = (uint64_t)(uintptr_t)&vmem__dbg_log_seq,
    .rd_txrec_size = sizeof(vmem_txrec_t),
};

/* The thread's API context. */
static __thread struct {
	int depth;      /* public entry points on this thread's stack */
	uint32_t stack; /* the outermost one's capture */
	uint64_t tid;
} ctx __attribute__((tls_model("initial-exec")));

static void init(void)
{
	const char *v = getenv("VMEM_STACK_DEPTH");
	uintptr_t pcs[4];

	if (v != NULL && atoi(v) > 0)
		vmem__dbg_depth = atoi(v) > VMEM_DBG_MAXDEPTH ? VMEM_DBG_MAXDEPTH : atoi(v);
	/* The first capture in a process costs a fraction of a millisecond. */
	if (!VMEM_TSAN)
		(void)unw_backtrace((void **)pcs, 4);
}

void vmem__dbg_init(void)
{
	pthread_once(&init_once, init);
}

uint64_t vmem__dbg_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t vmem__dbg_tid(void)
{
	if (ctx.tid == 0)
		ctx.tid = (uint64_t)syscall(SYS_gettid);
	return ctx.tid;
}

int vmem__dbg_set_stack_depth(int depth)
{
	if (depth < 1 || depth > VMEM_DBG_MAXDEPTH) {
		errno = EINVAL;
		return -1;
	}
	vmem__dbg_init();
	vmem__dbg_depth = depth;
	return 0;
}

/* ---- the depot --------------------------------------------------------------- */

static uint32_t hash_pcs(const uintptr_t *pcs, int depth)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (int i = 0; i < depth; i++)
		h = (h ^ pcs[i]) * 0x100000001b3ULL;
	return (uint32_t)(h ^ (h >> 32));
}

/* Room for a record of `depth` frames (depot_lock held); NULL if none. */
static stack_rec_t *depot_carve(int depth)
{
	size_t need = sizeof(stack_rec_t) + (size_t)depth * sizeof(uintptr_t);

	if (bump == NULL || (size_t)(bump_end - bump) < need) {
		bump = vmem__meta_map(DEPOT_CHUNK, VMEM_META_DEBUG);
		if (bump == NULL)
			return NULL;
		bump_end = bump + DEPOT_CHUNK;
	}
	bump += need;
	return (stack_rec_t *)(bump - need);
}

/* Make room for one more id (depot_lock held). */
static bool depot_grow_ids(void)
{
	uint32_t cap = depot_cap ? depot_cap * 2 : 4096;
	stack_rec_t **t;

	if (depot_count < depot_cap)
		return true;
	t = vmem__meta_map(cap * sizeof(*t), VMEM_META_DEBUG);
	if (t == NULL)
		return false;
	if (depot_byid != NULL) {
		memcpy(t, depot_byid, depot_cap * sizeof(*t));
		vmem__meta_unmap(depot_byid);
	}
	depot_byid = t;
	depot_cap = cap;
	return true;
}

uint32_t vmem__stack_intern(const uintptr_t *pcs, int depth)
{
	uint32_t h, id = 0;
	stack_rec_t *r;

	if (depth <= 0)
		return 0;
	h = hash_pcs(pcs, depth);
	pthread_mutex_lock(&depot_lock);
	if (depot_hash == NULL && (depot_hash = vmem__meta_map(DEPOT_BUCKETS * sizeof(*depot_hash),
	                                                       VMEM_META_DEBUG)) == NULL)
		goto out;
	for (r = depot_hash[h % DEPOT_BUCKETS]; r != NULL; r = r->sr_next) {
		if (r->sr_hash == h && r->sr_depth == (uint32_t)depth &&
		    memcmp(r->sr_pc, pcs, (size_t)depth * sizeof(uintptr_t)) == 0) {
			id = r->sr_id;
			goto out;
		}
	}
	if (!depot_grow_ids() || (r = depot_carve(depth)) == NULL)
		goto out;
	r->sr_hash = h;
	r->sr_depth = (uint32_t)depth;
	memcpy(r->sr_pc, pcs, (size_t)depth * sizeof(uintptr_t));
	r->sr_id = id = ++depot_count;
	depot_byid[id - 1] = r;
	r->sr_next = depot_hash[h % DEPOT_BUCKETS];
	depot_hash[h % DEPOT_BUCKETS] = r;
out:
	pthread_mutex_unlock(&depot_lock);
	return id;
}

const uintptr_t *vmem__stack_get(uint32_t id, int *depthp)
{
	stack_rec_t *r = NULL;

	*depthp = 0;
	if (id == 0)
		return NULL;
	pthread_mutex_lock(&depot_lock);
	if (id <= depot_count)
		r = depot_byid[id - 1];
	pthread_mutex_unlock(&depot_lock);
	if (r == NULL)
		return NULL;
	*depthp = (int)r->sr_depth;
	return r->sr_pc;
}

/* ---- capture ------------------------------------------------------------------ */

/*
 * Capture the calling stack from the frame that returns to `ra` (or, if ra
 * is not found, from the caller of our caller) and intern it.
 */
static __attribute__((noinline)) uint32_t capture_from(void *ra)
{
	uintptr_t pcs[VMEM_DBG_MAXDEPTH + 16];
	int n, first = 2, i;

	/*
	 * Under ThreadSanitizer, libunwind's per-thread trace cache crashes in
	 * its thread-exit destructor (the library is not instrumented): TSan
	 * builds record no stacks and check everything else.
	 */
	if (VMEM_TSAN)
		return 0;
	/*
	 * The caller's frame is a few frames down (this function, the API
	 * scope, the public entry): unwind that much more than needed, and
	 * only if it is not found there, everything.
	 */
	n = unw_backtrace((void **)pcs, vmem__dbg_depth + 4);
	for (int pass = 0; pass < 2; pass++) {
		for (i = 0; i < n && ra != NULL; i++) {
			if (pcs[i] == (uintptr_t)ra) {
				first = i;
				break;
			}
		}
		if (ra == NULL || i < n || n < vmem__dbg_depth + 4)
			break;
		n = unw_backtrace((void **)pcs, vmem__dbg_depth + 16);
	}
	if (first >= n)
		return 0;
	if (n - first > vmem__dbg_depth)
		n = first + vmem__dbg_depth;
	return vmem__stack_intern(&pcs[first], n - first);
}

void vmem__dbg_api_enter(void *ra)
{
	if (ctx.depth++ == 0) {
		vmem__dbg_init();
		ctx.stack = capture_from(ra);
	}
}

void vmem__dbg_api_leave(void)
{
	if (--ctx.depth == 0)
		ctx.stack = 0;
}

uint32_t vmem__stack_current(void)
{
	if (ctx.depth > 0)
		return ctx.stack;
	vmem__dbg_init();
	return capture_from(NULL);
}

void vmem__dbg_snap_stacks(struct vmem_snapw *w)
{
	pthread_mutex_lock(&depot_lock);
	for (uint32_t id = 1; id <= depot_count; id++) {
		const stack_rec_t *r = depot_byid[id - 1];
		uint32_t hdr[2] = {id, r->sr_depth};

		vmem__snapw_put(w, hdr, sizeof(hdr));
		for (uint32_t i = 0; i < r->sr_depth; i++) {
			uint64_t pc = r->sr_pc[i];

			vmem__snapw_put(w, &pc, sizeof(pc));
		}
		vmem__snapw_record(w);
	}
	pthread_mutex_unlock(&depot_lock);
}
