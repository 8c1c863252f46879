/*
 * Debug layer: the transaction log, a ring of the last N allocations and
 * frees of every arena (arena id, address, size, thread, time, stack; for
 * frees also the allocation's stack).  It answers "what happened to this
 * address last" when a free is refused (a double free shows the first
 * free), and it is what vmemdb's ::vmem_log prints from a snapshot.
 *
 * N comes from VMEM_LOG_SIZE (default 16384, 0 disables) or
 * vmem_debug_set_log_size(); the ring lives in memory the library maps
 * itself.  log_lock serializes writers (this is the debug library: an
 * uncontended mutex per operation is cheap next to the stack capture).
 */
#include "dbg_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_DEFAULT 16384

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

/* Exported for snapshots and the inspector (see the root in vmem.c). */
vmem_txrec_t *vmem__dbg_log_recs;
size_t vmem__dbg_log_size;
uint64_t vmem__dbg_log_seq; /* sequence number of the newest record */

static int log_resize_locked(size_t entries)
{
	vmem_txrec_t *recs = NULL;

	if (entries > ((size_t)1 << 32))
		return EINVAL;
	if (entries != 0) {
		recs = vmem__meta_map(entries * sizeof(*recs), VMEM_META_DEBUG);
		if (recs == NULL)
			return ENOMEM;
	}
	if (vmem__dbg_log_recs != NULL)
		vmem__meta_unmap(vmem__dbg_log_recs);
	vmem__dbg_log_recs = recs;
	vmem__dbg_log_size = entries;
	return 0;
}

static void log_init(void)
{
	const char *v = getenv("VMEM_LOG_SIZE");
	size_t n = v != NULL ? strtoull(v, NULL, 0) : LOG_DEFAULT;

	pthread_mutex_lock(&log_lock);
	(void)log_resize_locked(n);
	pthread_mutex_unlock(&log_lock);
}

int vmem__dbg_set_log_size(size_t entries)
{
	int err;

	pthread_once(&log_once, log_init);
	pthread_mutex_lock(&log_lock);
	err = log_resize_locked(entries);
	pthread_mutex_unlock(&log_lock);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

void vmem__log(uint8_t op, uint32_t arena, uintptr_t addr, size_t size, uint32_t stack,
               uint32_t stack2)
{
	vmem_txrec_t *r;

	pthread_once(&log_once, log_init);
	pthread_mutex_lock(&log_lock);
	if (vmem__dbg_log_size != 0) {
		r = &vmem__dbg_log_recs[vmem__dbg_log_seq % vmem__dbg_log_size];
		r->tx_seq = ++vmem__dbg_log_seq;
		r->tx_time = vmem__dbg_now();
		r->tx_addr = addr;
		r->tx_size = size;
		r->tx_tid = (uint32_t)vmem__dbg_tid();
		r->tx_arena = arena;
		r->tx_stack = stack;
		r->tx_stack2 = stack2;
		r->tx_op = op;
	}
	pthread_mutex_unlock(&log_lock);
}

bool vmem__log_find(uint32_t arena, uintptr_t addr, uint64_t before_seq, unsigned opmask,
                    vmem_txrec_t *out)
{
	bool found = false;

	pthread_once(&log_once, log_init);
	pthread_mutex_lock(&log_lock);
	for (uint64_t k = 0; k < vmem__dbg_log_size && k < vmem__dbg_log_seq; k++) {
		const vmem_txrec_t *r =
		    &vmem__dbg_log_recs[(vmem__dbg_log_seq - 1 - k) % vmem__dbg_log_size];

		if (r->tx_seq < before_seq && r->tx_arena == arena && r->tx_addr == addr &&
		    ((1u << r->tx_op) & opmask) != 0) {
			*out = *r;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&log_lock);
	return found;
}

bool vmem__log_last(uint32_t arena, uintptr_t addr, vmem_txrec_t *out)
{
	bool found = false;

	pthread_once(&log_once, log_init);
	pthread_mutex_lock(&log_lock);
	for (uint64_t k = 0; k < vmem__dbg_log_size && k < vmem__dbg_log_seq; k++) {
		const vmem_txrec_t *r =
		    &vmem__dbg_log_recs[(vmem__dbg_log_seq - 1 - k) % vmem__dbg_log_size];

		if (r->tx_arena == arena && r->tx_addr == addr && r->tx_op != VMEM_TX_BADFREE) {
			*out = *r;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&log_lock);
	return found;
}

void vmem__dbg_snap_log(struct vmem_snapw *w)
{
	uint64_t n;

	pthread_once(&log_once, log_init);
	pthread_mutex_lock(&log_lock);
	n = vmem__dbg_log_seq < vmem__dbg_log_size ? vmem__dbg_log_seq : vmem__dbg_log_size;
	for (uint64_t k = n; k > 0; k--) {
		const vmem_txrec_t *r =
		    &vmem__dbg_log_recs[(vmem__dbg_log_seq - k) % vmem__dbg_log_size];

		vmem__snapw_put(w, r, sizeof(*r));
		vmem__snapw_record(w);
	}
	pthread_mutex_unlock(&log_lock);
}
