/*
 * Counters: a consistent copy of an arena's vmem_counters_t, taken under
 * its lock, in the illumos kstat vocabulary.
 */
#include "vmem_impl.h"

#include <errno.h>

int vmem_kstat(vmem_t *vmp, vmem_kstat_t *ks)
{
	if (vmp == NULL || ks == NULL) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&vmp->vm_lock);
	ks->vk_mem_inuse = vmp->vm_ctr.vc_mem_inuse;
	ks->vk_mem_import = vmp->vm_ctr.vc_mem_import;
	ks->vk_mem_total = vmp->vm_ctr.vc_mem_total;
	ks->vk_source_id = vmp->vm_source != NULL ? vmp->vm_source->vm_id : 0;
	ks->vk_alloc = vmp->vm_ctr.vc_alloc;
	ks->vk_free = vmp->vm_ctr.vc_free;
	ks->vk_wait = vmp->vm_ctr.vc_wait;
	ks->vk_fail = vmp->vm_ctr.vc_fail;
	ks->vk_lookup = vmp->vm_ctr.vc_lookup;
	ks->vk_search = vmp->vm_ctr.vc_search;
	ks->vk_populate_wait = vmp->vm_ctr.vc_populate_wait;
	ks->vk_populate_fail = vmp->vm_ctr.vc_populate_fail;
	ks->vk_contains = vmp->vm_ctr.vc_contains;
	ks->vk_contains_search = vmp->vm_ctr.vc_contains_search;
	pthread_mutex_unlock(&vmp->vm_lock);
	return 0;
}

uint32_t vmem_id(const vmem_t *vmp)
{
	return vmp != NULL ? vmp->vm_id : 0;
}
