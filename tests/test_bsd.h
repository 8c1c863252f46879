/*
 * The two halves of test_bsd.  test_bsd.c uses <vmem/bsd.h> only, as a
 * ported FreeBSD program would; test_bsd_illumos.c uses <vmem.h> and the
 * core's internals (vmem_impl.h) to check what the BSD half cannot see.
 * Linking the two into one binary is itself the test that both APIs can
 * live in one program.  Only vmem_t and standard types cross the line.
 */
#ifndef VMEM_TEST_BSD_H
#define VMEM_TEST_BSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vmem vmem_t;

/* Fail the current test if the arena's internal invariants are broken. */
void tb_assert_arena_ok(vmem_t *vm);

/* Record error reports instead of aborting (report-and-continue). */
void tb_capture_errors(void);
void tb_release_errors(void);
int tb_nerrors(void);
/* Report i: its kind name ("size mismatch", "bad free", "leak", ...). */
const char *tb_error_kind(int i);
const char *tb_error_msg(int i);

/* Threads sleeping in the arena right now. */
unsigned tb_nwaiters(vmem_t *vm);
/* VM_SLEEP waits the arena has counted (vmem_kstat's vk_wait). */
uint64_t tb_nwaits(vmem_t *vm);

/*
 * The arena's free segments (or allocated ones, with their recorded sizes)
 * in address order, through the illumos vmem_walk(); returns how many there
 * are (at most max are stored).
 */
size_t tb_free_segments(vmem_t *vm, uintptr_t *start, size_t *size, size_t max);
size_t tb_alloc_segments(vmem_t *vm, uintptr_t *start, size_t *size, size_t max);

/*
 * Use a BSD arena through the illumos API (vmem_contains, vmem_walk,
 * vmem_size(VMEM_SPAN)) and run an illumos arena beside it.
 * `addr` is an allocated segment of `size` bytes in bsd_arena.
 */
void tb_illumos_side(vmem_t *bsd_arena, uintptr_t addr, size_t size);

#endif /* VMEM_TEST_BSD_H */
