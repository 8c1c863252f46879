/*
 * What the fuzz target shares with its replay driver.
 */
#ifndef FUZZ_VMEM_H
#define FUZZ_VMEM_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Totals over the process, printed by the replay driver. */
struct fuzz_stats {
	uint64_t inputs, ops, allocs, nomem, einval, frees, badfrees, imports, releases,
	    import_faults, creates, destroys;
};
extern struct fuzz_stats fuzz_stats;

#endif /* FUZZ_VMEM_H */
