/*
 * The debug hooks of the fast library: empty.  The core only calls them
 * behind `if (vmem_debug)`, which is false here, so these exist only to
 * satisfy the linker in unoptimized builds.
 */
#include "debug.h"

void vmem__dbg_arena_init(vmem_t *vmp)
{
	(void)vmp;
}

void vmem__dbg_arena_fini(vmem_t *vmp)
{
	(void)vmp;
}

void vmem__dbg_on_alloc(vmem_t *vmp, vmem_seg_t *vsp)
{
	(void)vmp;
	(void)vsp;
}

void vmem__dbg_on_free(vmem_t *vmp, const vmem_seg_t *vsp, size_t size)
{
	(void)vmp;
	(void)vsp;
	(void)size;
}

void vmem__dbg_classify(vmem_t *vmp, vmem_error_info_t *info)
{
	(void)vmp;
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
