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

#define OFF(type, field)   ((uint32_t)offsetof(type, field))
#define ADDR(x)            ((uint64_t)(uintptr_t)(x))
#define WIDTH(type, field) sizeof(((type *)0)->field)
#define NELEM(type, field) ((uint32_t)(WIDTH(type, field) / sizeof(((type *)0)->field[0])))

/*
 * The root's comments promise readers the width of each field (a reader has
 * no other way to know it): a change of type here must be a change of the
 * root, so it stops the build instead of misleading a debugger.
 */
#define SAME_WIDTH(type, field, w) _Static_assert(WIDTH(type, field) == (w), #type "." #field)
SAME_WIDTH(vmem_qcache_t, qc_id, 4);
SAME_WIDTH(vmem_qcache_t, qc_gen, 4);
SAME_WIDTH(vmem_qcache_t, qc_nfull, 8);
SAME_WIDTH(vmem_qcache_t, qc_nempty, 8);
SAME_WIDTH(vmem_qcache_t, qc_depot_alloc, 8);
SAME_WIDTH(vmem_qcache_t, qc_depot_free, 8);
SAME_WIDTH(vmem_qcache_t, qc_depot_contention, 8);
SAME_WIDTH(vmem_qcache_t, qc_slab_create, 8);
SAME_WIDTH(vmem_qcache_t, qc_slab_destroy, 8);
SAME_WIDTH(vmem_qcache_t, qc_direct, 8);
SAME_WIDTH(vmem_qcache_t, qc_reaps, 8);
SAME_WIDTH(vmem_qcache_t, qc_dead_alloc, 8);
SAME_WIDTH(vmem_qcache_t, qc_dead_free, 8);
SAME_WIDTH(vmem_qcache_t, qc_dead_alloc_miss, 8);
SAME_WIDTH(vmem_qcache_t, qc_dead_free_miss, 8);
SAME_WIDTH(vmem_mag_t, mg_count, 4);
SAME_WIDTH(vmem_mag_t, mg_round[0], sizeof(void *));
SAME_WIDTH(vmem_tcache_t, tc_nentries, 4);
SAME_WIDTH(vmem_tc_entry_t, te_gen, 4);
SAME_WIDTH(vmem_tc_entry_t, te_alloc, 8);
SAME_WIDTH(vmem_tc_entry_t, te_free, 8);
SAME_WIDTH(vmem_tc_entry_t, te_alloc_miss, 8);
SAME_WIDTH(vmem_tc_entry_t, te_free_miss, 8);

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
            .ra_nqcache_max = NELEM(vmem_t, vm_qcache),
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
            .rr_hdrsize = sizeof(vmem_meta_region_t),
        },
    .vr_dbg = VMEM_DEBUG ? ADDR(&vmem__dbg_root_part) : 0,
    .vr_qcstat =
        {
            .qs_id = OFF(vmem_qcache_t, qc_id),
            .qs_gen = OFF(vmem_qcache_t, qc_gen),
            .qs_full = OFF(vmem_qcache_t, qc_full),
            .qs_empty = OFF(vmem_qcache_t, qc_empty),
            .qs_nfull = OFF(vmem_qcache_t, qc_nfull),
            .qs_nempty = OFF(vmem_qcache_t, qc_nempty),
            .qs_depot_alloc = OFF(vmem_qcache_t, qc_depot_alloc),
            .qs_depot_free = OFF(vmem_qcache_t, qc_depot_free),
            .qs_depot_contention = OFF(vmem_qcache_t, qc_depot_contention),
            .qs_slab_create = OFF(vmem_qcache_t, qc_slab_create),
            .qs_slab_destroy = OFF(vmem_qcache_t, qc_slab_destroy),
            .qs_direct = OFF(vmem_qcache_t, qc_direct),
            .qs_reaps = OFF(vmem_qcache_t, qc_reaps),
            .qs_dead_alloc = OFF(vmem_qcache_t, qc_dead_alloc),
            .qs_dead_free = OFF(vmem_qcache_t, qc_dead_free),
            .qs_dead_alloc_miss = OFF(vmem_qcache_t, qc_dead_alloc_miss),
            .qs_dead_free_miss = OFF(vmem_qcache_t, qc_dead_free_miss),
        },
    .vr_mag =
        {
            .rm_size = sizeof(vmem_mag_t),
            .rm_next = OFF(vmem_mag_t, mg_next),
            .rm_count = OFF(vmem_mag_t, mg_count),
            .rm_round = OFF(vmem_mag_t, mg_round),
            .rm_nrounds = NELEM(vmem_mag_t, mg_round),
        },
    .vr_tcache =
        {
            .rt_registry = ADDR(&vmem__tc_registry),
            .rt_size = sizeof(vmem_tcache_t),
            .rt_next = OFF(vmem_tcache_t, tc_next),
            .rt_nentries = OFF(vmem_tcache_t, tc_nentries),
            .rt_entry = OFF(vmem_tcache_t, tc_entry),
            .te_size = sizeof(vmem_tc_entry_t),
            .te_qc = OFF(vmem_tc_entry_t, te_qc),
            .te_gen = OFF(vmem_tc_entry_t, te_gen),
            .te_loaded = OFF(vmem_tc_entry_t, te_loaded),
            .te_prev = OFF(vmem_tc_entry_t, te_prev),
            .te_alloc = OFF(vmem_tc_entry_t, te_alloc),
            .te_free = OFF(vmem_tc_entry_t, te_free),
            .te_alloc_miss = OFF(vmem_tc_entry_t, te_alloc_miss),
            .te_free_miss = OFF(vmem_tc_entry_t, te_free_miss),
        },
};

/* Appended groups must not move what the first roots had (vmem_root.h, "Versions"). */
_Static_assert(VMEM_ROOT_SIZE_BASE == offsetof(vmem_root_t, vr_dbg) + sizeof(uint64_t),
               "the first roots end at vr_dbg");
