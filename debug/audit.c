/*
 * Debug layer: audit records and verified frees.
 *
 * Arena segments carry their audit in the tag itself (vs_stack, and in the
 * ALLOC part of the union the thread and the time), so the records live in
 * the allocator's own metadata and cost no extra lookup.  Quantum-cached
 * objects carry theirs in a per-slab array (vmem_qaudit_t, allocation and
 * last free), because an object has no tag; in this library the cache
 * bypasses its magazines, so every cached free is checked against its slab
 * at once.
 *
 * A refused free is classified here: the transaction log (or, for a cached
 * object, its audit) says whether the address was freed before (a double
 * free, with the earlier free's stack) and who allocated it.
 */
#include "dbg_impl.h"

#include <string.h>

#include "../src/qcache.h"

static vmem_pool_t audit_pool =
    VMEM_POOL_INITIALIZER("vmem_qaudit", sizeof(vmem_qaudit_t) * 64, VMEM_META_DEBUG);

void vmem__dbg_arena_init(vmem_t *vmp)
{
	(void)vmp;
	vmem__dbg_init();
}

static uint8_t alloc_op(const vmem_seg_t *vsp)
{
	return (vsp->vs_flags & VMEM_SEGF_XALLOC) ? VMEM_TX_XALLOC : VMEM_TX_ALLOC;
}

void vmem__dbg_on_alloc(vmem_t *vmp, vmem_seg_t *vsp)
{
	vsp->vs_stack = vmem__stack_current();
	vsp->u.a.vs_time = vmem__dbg_now();
	vsp->u.a.vs_thread = vmem__dbg_tid();
	vmem__log(alloc_op(vsp), vmp->vm_id, vsp->vs_start, vsp->u.a.vs_asize, vsp->vs_stack, 0);
}

void vmem__dbg_on_free(vmem_t *vmp, const vmem_seg_t *vsp, size_t size, const char *func)
{
	uint8_t op = strcmp(func, "vmem_xfree") == 0 ? VMEM_TX_XFREE : VMEM_TX_FREE;

	vmem__log(op, vmp->vm_id, vsp->vs_start, size, vmem__stack_current(), vsp->vs_stack);
}

/*
 * The man page: segments from vmem_xalloc() must be freed with vmem_xfree().
 * The fast library lets it pass where it does no harm; here it is always
 * an error.
 */
bool vmem__dbg_free_allowed(const vmem_seg_t *vsp, const char *func)
{
	return !(vsp->vs_flags & VMEM_SEGF_XALLOC) || strcmp(func, "vmem_free") != 0;
}

void vmem__dbg_describe_seg(const vmem_seg_t *vsp, vmem_error_info_t *info)
{
	if (vsp->vs_type != VMEM_SEG_ALLOC)
		return;
	info->ve_alloc_stack = vmem__stack_get(vsp->vs_stack, &info->ve_alloc_depth);
	info->ve_alloc_thread = vsp->u.a.vs_thread;
	info->ve_alloc_time = vsp->u.a.vs_time;
}

/* ---- quantum-cached objects ----------------------------------------------------- */

void *vmem__dbg_slab_audit_new(unsigned nobj)
{
	vmem_qaudit_t *a = vmem__pool_get(&audit_pool);

	if (a != NULL)
		memset(a, 0, sizeof(*a) * nobj);
	return a;
}

void vmem__dbg_slab_audit_free(void *audit)
{
	if (audit != NULL)
		vmem__pool_put(&audit_pool, audit);
}

void vmem__dbg_qc_on_alloc(struct vmem_qcache *qc, void *audit, unsigned obj, uintptr_t addr,
                           size_t size)
{
	vmem_qaudit_t *a = (vmem_qaudit_t *)audit + obj;

	a->qa_asize = size;
	a->qa_alloc_stack = vmem__stack_current();
	a->qa_alloc_tid = (uint32_t)vmem__dbg_tid();
	a->qa_alloc_time = vmem__dbg_now();
	vmem__log(VMEM_TX_QALLOC, qc->qc_arena->vm_id, addr, qc->qc_objsize, a->qa_alloc_stack, 0);
}

void vmem__dbg_qc_on_free(struct vmem_qcache *qc, void *audit, unsigned obj, uintptr_t addr)
{
	vmem_qaudit_t *a = (vmem_qaudit_t *)audit + obj;

	a->qa_free_stack = vmem__stack_current();
	a->qa_free_tid = (uint32_t)vmem__dbg_tid();
	a->qa_free_time = vmem__dbg_now();
	vmem__log(VMEM_TX_QFREE, qc->qc_arena->vm_id, addr, qc->qc_objsize, a->qa_free_stack,
	          a->qa_alloc_stack);
}

size_t vmem__dbg_qc_size(const void *audit, unsigned obj)
{
	return audit != NULL ? (size_t)((const vmem_qaudit_t *)audit)[obj].qa_asize : 0;
}

void vmem__dbg_qc_describe(void *audit, unsigned obj, vmem_error_info_t *info)
{
	const vmem_qaudit_t *a = (const vmem_qaudit_t *)audit + obj;

	if (audit == NULL)
		return;
	info->ve_alloc_stack = vmem__stack_get(a->qa_alloc_stack, &info->ve_alloc_depth);
	info->ve_alloc_thread = a->qa_alloc_tid;
	info->ve_alloc_time = a->qa_alloc_time;
	info->ve_free_stack = vmem__stack_get(a->qa_free_stack, &info->ve_free_depth);
	info->ve_free_thread = a->qa_free_tid;
	info->ve_free_time = a->qa_free_time;
}

/* ---- classification ----------------------------------------------------------------- */

void vmem__dbg_current_stack(vmem_error_info_t *info)
{
	if (info->ve_cur_stack == NULL)
		info->ve_cur_stack = vmem__stack_get(vmem__stack_current(), &info->ve_cur_depth);
}

void vmem__dbg_classify(vmem_t *vmp, vmem_error_info_t *info)
{
	vmem_txrec_t last;

	info->ve_cur_stack = vmem__stack_get(vmem__stack_current(), &info->ve_cur_depth);
	vmem__log(VMEM_TX_BADFREE, vmp->vm_id, info->ve_addr, info->ve_size, vmem__stack_current(),
	          0);
	if (info->ve_kind != VMEM_ERR_BAD_FREE || info->ve_free_stack != NULL)
		return;
	/* Was it freed before?  Then the log's last word on it is that free. */
	if (vmem__log_last(vmp->vm_id, info->ve_addr, &last) &&
	    (last.tx_op == VMEM_TX_FREE || last.tx_op == VMEM_TX_XFREE ||
	     last.tx_op == VMEM_TX_QFREE)) {
		info->ve_kind = VMEM_ERR_DOUBLE_FREE;
		info->ve_seg_start = last.tx_addr;
		info->ve_seg_size = last.tx_size;
		info->ve_free_stack = vmem__stack_get(last.tx_stack, &info->ve_free_depth);
		info->ve_free_thread = last.tx_tid;
		info->ve_free_time = last.tx_time;
		info->ve_alloc_stack = vmem__stack_get(last.tx_stack2, &info->ve_alloc_depth);
		/* and, if the log still has it, who allocated it and when */
		if (vmem__log_find(vmp->vm_id, info->ve_addr, last.tx_seq, VMEM_TX_ALLOCS, &last)) {
			info->ve_alloc_thread = last.tx_tid;
			info->ve_alloc_time = last.tx_time;
		}
	}
}

uint32_t vmem__dbg_qc_audit(void *audit, unsigned obj, uint64_t *tid, uint64_t *time)
{
	const vmem_qaudit_t *a = (const vmem_qaudit_t *)audit + obj;

	if (audit == NULL) {
		*tid = *time = 0;
		return 0;
	}
	*tid = a->qa_alloc_tid;
	*time = a->qa_alloc_time;
	return a->qa_alloc_stack;
}
