/*
 * The self-describing root (include/vmem_root.h): what a debugger reading
 * another process needs to find and decode libvmem's state.  Everything is
 * computed by the compiler, so a vmemdb built from one version reads any
 * build (debug or not) that speaks the same root version, or says why not.
 */
#include "vmem_impl.h"

#include <vmem_root.h>

#include "../debug/dbg_impl.h"
#include "qcache.h"

#define OFF(type, field) ((uint32_t)offsetof(type, field))
#define ADDR(x)          ((uint64_t)(uintptr_t)(x))

extern const vmem_root_debug_t vmem__dbg_root_part; /* debug/stack.c or nodebug.c */
extern _Atomic uint64_t vmem__error_kind_counts[VMEM_ERR_NKINDS];

const vmem_root_t vmem_debug_root = {
    .vr_magic = VMEM_ROOT_MAGIC,
    .vr_version = VMEM_ROOT_VERSION,
    .vr_size = sizeof(vmem_root_t),
    .vr_ptrsize = sizeof(void *),
    .vr_debug = VMEM_DEBUG,
    .vr_list_head = ADDR(&vmem__list_head),
    .vr_list_lock = ADDR(&vmem__list_lock),
    .vr_region_head = ADDR(&vmem__meta_region_head_var),
    .vr_error_counts = ADDR(vmem__error_kind_counts),
    .vr_nkinds = VMEM_ERR_NKINDS,
    .vr_namelen = VMEM_NAMELEN,
    .vr_arena =
        {
            .ra_size = sizeof(vmem_t),
            .ra_name = OFF(vmem_t, vm_name),
            .ra_id = OFF(vmem_t, vm_id),
            .ra_cflags = OFF(vmem_t, vm_cflags),
            .ra_quantum = OFF(vmem_t, vm_quantum),
            .ra_qcache_max = OFF(vmem_t, vm_qcache_max),
            .ra_seg0 = OFF(vmem_t, vm_seg0),
            .ra_next = OFF(vmem_t, vm_next),
            .ra_source = OFF(vmem_t, vm_source),
            .ra_nqcache = OFF(vmem_t, vm_nqcache),
            .ra_qcache = OFF(vmem_t, vm_qcache),
            .ra_ctr = OFF(vmem_t, vm_ctr),
            .ra_spans_count = OFF(vmem_t, vm_spans.at_count),
            .ra_hash_count = OFF(vmem_t, vm_hash_count),
        },
    .vr_seg =
        {
            .rs_size = sizeof(vmem_seg_t),
            .rs_start = OFF(vmem_seg_t, vs_start),
            .rs_extent = OFF(vmem_seg_t, vs_size),
            .rs_anext = OFF(vmem_seg_t, vs_anext),
            .rs_type = OFF(vmem_seg_t, vs_type),
            .rs_flags = OFF(vmem_seg_t, vs_flags),
            .rs_stack = OFF(vmem_seg_t, vs_stack),
            .rs_asize = OFF(vmem_seg_t, u.a.vs_asize),
            .rs_time = OFF(vmem_seg_t, u.a.vs_time),
            .rs_thread = OFF(vmem_seg_t, u.a.vs_thread),
        },
    .vr_qcache =
        {
            .rq_size = sizeof(vmem_qcache_t),
            .rq_name = OFF(vmem_qcache_t, qc_name),
            .rq_objsize = OFF(vmem_qcache_t, qc_objsize),
            .rq_slabsize = OFF(vmem_qcache_t, qc_slabsize),
            .rq_nobj = OFF(vmem_qcache_t, qc_nobj),
            .rq_slabs = OFF(vmem_qcache_t, qc_slabs),
            .rq_nslabs = OFF(vmem_qcache_t, qc_nslabs),
            .rq_slab_out = OFF(vmem_qcache_t, qc_slab_out),
            .sl_size = sizeof(vmem_slab_t),
            .sl_next = OFF(vmem_slab_t, sl_next),
            .sl_base = OFF(vmem_slab_t, sl_base),
            .sl_freemap = OFF(vmem_slab_t, sl_freemap),
            .sl_audit = OFF(vmem_slab_t, sl_audit),
            .qa_size = sizeof(vmem_qaudit_t),
            .qa_alloc_stack = OFF(vmem_qaudit_t, qa_alloc_stack),
            .qa_alloc_tid = OFF(vmem_qaudit_t, qa_alloc_tid),
            .qa_alloc_time = OFF(vmem_qaudit_t, qa_alloc_time),
        },
    .vr_region =
        {
            .rr_next = OFF(vmem_meta_region_t, mr_next),
            .rr_size = OFF(vmem_meta_region_t, mr_size),
            .rr_kind = OFF(vmem_meta_region_t, mr_kind),
        },
    .vr_dbg = VMEM_DEBUG ? ADDR(&vmem__dbg_root_part) : 0,
};
