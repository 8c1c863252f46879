/*
 * The debug hooks of the fast library.  The core only calls them behind
 * `if (vmem_debug)`, which is false here, so most exist only to satisfy the
 * linker in unoptimized builds; the public debug functions end up in the
 * last three, which say the feature is not in this library.
 */
#include "debug.h"

#include <errno.h>

#include <vmem_root.h>

/* No debug state in this library (vmem_debug_root.vr_dbg is 0). */
const vmem_root_debug_t vmem__dbg_root_part;

void vmem__dbg_api_enter(void *ra)
{
	(void)ra;
}

void vmem__dbg_api_leave(void)
{
}

void vmem__dbg_arena_init(vmem_t *vmp)
{
	(void)vmp;
}

void vmem__dbg_on_alloc(vmem_t *vmp, vmem_seg_t *vsp)
{
	(void)vmp;
	(void)vsp;
}

void vmem__dbg_on_free(vmem_t *vmp, const vmem_seg_t *vsp, size_t size, const char *func)
{
	(void)vmp;
	(void)vsp;
	(void)size;
	(void)func;
}

bool vmem__dbg_free_allowed(const vmem_seg_t *vsp, const char *func)
{
	(void)vsp;
	(void)func;
	return true;
}

void *vmem__dbg_slab_audit_new(unsigned nobj)
{
	(void)nobj;
	return NULL;
}

void vmem__dbg_slab_audit_free(void *audit)
{
	(void)audit;
}

void vmem__dbg_qc_on_alloc(struct vmem_qcache *qc, void *audit, unsigned obj, uintptr_t addr,
                           size_t size)
{
	(void)qc;
	(void)audit;
	(void)obj;
	(void)addr;
	(void)size;
}

size_t vmem__dbg_qc_size(const void *audit, unsigned obj)
{
	(void)audit;
	(void)obj;
	return 0;
}

void vmem__dbg_qc_on_free(struct vmem_qcache *qc, void *audit, unsigned obj, uintptr_t addr)
{
	(void)qc;
	(void)audit;
	(void)obj;
	(void)addr;
}

void vmem__dbg_qc_describe(void *audit, unsigned obj, vmem_error_info_t *info)
{
	(void)audit;
	(void)obj;
	(void)info;
}

void vmem__dbg_classify(vmem_t *vmp, vmem_error_info_t *info)
{
	(void)vmp;
	(void)info;
}

void vmem__dbg_describe_seg(const vmem_seg_t *vsp, vmem_error_info_t *info)
{
	(void)vsp;
	(void)info;
}

void vmem__dbg_current_stack(vmem_error_info_t *info)
{
	(void)info;
}

void vmem__dbg_report_detail(const vmem_error_info_t *info)
{
	(void)info;
}

void vmem__dbg_before_abort(const vmem_error_info_t *info)
{
	(void)info;
}

void vmem__dbg_leak_report_destroy(vmem_t *vmp)
{
	(void)vmp;
}

int vmem__dbg_set_log_size(size_t entries)
{
	(void)entries;
	errno = ENOTSUP;
	return -1;
}

int vmem__dbg_set_stack_depth(int depth)
{
	(void)depth;
	errno = ENOTSUP;
	return -1;
}

int vmem__dbg_leak_report(vmem_t *vmp, int fd, int flags)
{
	(void)vmp;
	(void)fd;
	(void)flags;
	errno = ENOTSUP;
	return -1;
}

void vmem__dbg_snap_stacks(struct vmem_snapw *w)
{
	(void)w;
}

void vmem__dbg_snap_log(struct vmem_snapw *w)
{
	(void)w;
}

uint32_t vmem__dbg_qc_audit(void *audit, unsigned obj, uint64_t *tid, uint64_t *time)
{
	(void)audit;
	(void)obj;
	*tid = *time = 0;
	return 0;
}
