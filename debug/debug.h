/*
 * The only interface between the core and the debug layer.
 *
 * The core calls these hooks behind `if (vmem_debug)`, a compile-time
 * constant (src/config.h): in libvmem the branches fold away and
 * debug/nodebug.c supplies empty definitions; libvmem-debug links the real
 * ones (debug/audit.c and friends).  Hooks are called with the arena lock
 * held unless their comment says otherwise, and must not call back into
 * the arena.
 */
#ifndef VMEM_DEBUG_H
#define VMEM_DEBUG_H

#include "../src/vmem_impl.h"

/* An arena was created / is being destroyed (lock not held). */
void vmem__dbg_arena_init(vmem_t *vmp);
void vmem__dbg_arena_fini(vmem_t *vmp);

/* Segment vsp was just allocated: record the audit (thread, time, stack). */
void vmem__dbg_on_alloc(vmem_t *vmp, vmem_seg_t *vsp);
/* Segment vsp is about to be freed (still ALLOC, out of the hash). */
void vmem__dbg_on_free(vmem_t *vmp, const vmem_seg_t *vsp, size_t size);

/* A free was refused: refine the diagnosis (double free, ...); lock not held. */
void vmem__dbg_classify(vmem_t *vmp, vmem_error_info_t *info);
/* After the one-line report: print stacks and history (lock not held). */
void vmem__dbg_report_detail(const vmem_error_info_t *info);
/* The process is about to abort on an error (lock not held). */
void vmem__dbg_before_abort(const vmem_error_info_t *info);

#endif /* VMEM_DEBUG_H */
