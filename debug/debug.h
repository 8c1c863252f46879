/*
 * The only interface between the core and the debug layer.
 *
 * The core calls these hooks behind `if (vmem_debug)`, a compile-time
 * constant (src/config.h): in libvmem the branches fold away and
 * debug/nodebug.c supplies stubs (the public debug functions then return
 * ENOTSUP); libvmem-debug links the real ones (debug/stack.c, log.c,
 * audit.c, report.c).  Unless a comment says otherwise a hook is called
 * with the arena lock held and must not call back into any arena.
 */
#ifndef VMEM_DEBUG_H
#define VMEM_DEBUG_H

#include "../src/vmem_impl.h"

/* ---- API context (no lock held) ---- */
/* A public entry point was entered; ra is its return address. */
void vmem__dbg_api_enter(void *ra);
void vmem__dbg_api_leave(void);

/* ---- arenas (no lock held) ---- */
void vmem__dbg_arena_init(vmem_t *vmp);

/* ---- segments (arena lock held) ---- */
/* Segment vsp was just allocated: record thread, time and stack; log it. */
void vmem__dbg_on_alloc(vmem_t *vmp, vmem_seg_t *vsp);
/* Segment vsp is being freed (out of the hash, still ALLOC); log it. */
void vmem__dbg_on_free(vmem_t *vmp, const vmem_seg_t *vsp, size_t size, const char *func);
/* May vmem_free() free this segment?  (vmem_xalloc segments: no.) */
bool vmem__dbg_free_allowed(const vmem_seg_t *vsp, const char *func);

/* ---- quantum-cached objects (the cache's slab lock held) ---- */
struct vmem_qcache;
struct vmem_slab;
/* Audit storage for a new slab (NULL if none could be had). */
void *vmem__dbg_slab_audit_new(unsigned nobj);
void vmem__dbg_slab_audit_free(void *audit);
/* Object obj was allocated with the caller's exact `size`. */
void vmem__dbg_qc_on_alloc(struct vmem_qcache *qc, void *audit, unsigned obj, uintptr_t addr,
                           size_t size);
void vmem__dbg_qc_on_free(struct vmem_qcache *qc, void *audit, unsigned obj, uintptr_t addr);
/* Fill in what the audit knows about object obj (for reports). */
void vmem__dbg_qc_describe(void *audit, unsigned obj, vmem_error_info_t *info);
/* The size the caller gave when object obj was allocated (0: unknown). */
size_t vmem__dbg_qc_size(const void *audit, unsigned obj);

/* ---- errors (no lock held) ---- */
/* A free was refused: refine the diagnosis (double free) and add stacks. */
void vmem__dbg_classify(vmem_t *vmp, vmem_error_info_t *info);
/* Add what the audit of segment vsp knows (lock held). */
void vmem__dbg_describe_seg(const vmem_seg_t *vsp, vmem_error_info_t *info);
/* Any report without one gets the caller's current stack (PANIC, busy destroy). */
void vmem__dbg_current_stack(vmem_error_info_t *info);
/* After the one-line report: print the stacks (default handler only). */
void vmem__dbg_report_detail(const vmem_error_info_t *info);
/* The process is about to abort on an error. */
void vmem__dbg_before_abort(const vmem_error_info_t *info);

/* ---- leaks ---- */
/* vmem_destroy() found leaks: a report grouped by stack (no lock held;
 * the arena is off every list and no longer used by anyone). */
void vmem__dbg_leak_report_destroy(vmem_t *vmp);

/* ---- snapshots (every arena locked; the writer's pass may count or write) ---- */
struct vmem_snapw;
/* Every stack of the depot as STACK records (ascending ids). */
void vmem__dbg_snap_stacks(struct vmem_snapw *w);
/* The transaction log as TXLOG records, oldest first. */
void vmem__dbg_snap_log(struct vmem_snapw *w);
/* Object obj's audit: its stack id, thread and time (0s if none). */
uint32_t vmem__dbg_qc_audit(void *audit, unsigned obj, uint64_t *tid, uint64_t *time);

/* ---- public debug API backends ---- */
int vmem__dbg_set_log_size(size_t entries);
int vmem__dbg_set_stack_depth(int depth);
int vmem__dbg_leak_report(vmem_t *vmp, int fd, int flags);

#endif /* VMEM_DEBUG_H */
