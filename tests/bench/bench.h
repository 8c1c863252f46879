/* Shared pieces of the benchmark suite (tests/bench). */
#ifndef VMEM_BENCH_H
#define VMEM_BENCH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct bench_result {
	const char *workload; /* "W1" ... */
	const char *policy;   /* "instantfit", "bestfit", ... or "-" */
	const char *variant;  /* "vmem", "vmem-nocache", "vmem-debug", "malloc", "rmalloc" */
	long n;               /* live segments, or operations, as the workload says */
	int threads;
	double ns_per_op;
	double ratio;     /* W5: peak span / peak live; 0 if not applicable */
	double ops_per_s; /* W6: total throughput; 0 if not applicable */
	const char *note;
} bench_result_t;

void bench_emit(const bench_result_t *r);
double bench_now(void);
uint64_t bench_rand(void);
void bench_seed(uint64_t seed);
bool bench_quick(void);
bool bench_selected(const char *workload);

#endif
