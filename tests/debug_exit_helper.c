/* For test_debug: exits with two live segments in arena 'exitleak'. */
#include <vmem.h>

static volatile int count = 2; /* not a constant: the loop is not unrolled into two call sites */

static __attribute__((noinline)) void leak_at_exit(vmem_t *vmp)
{
	for (int i = 0; i < count; i++) { /* one call site: one group */
		(void)vmem_alloc(vmp, 4096, VM_SLEEP);
		__asm__ volatile(""); /* and no tail call */
	}
}

int main(void)
{
	vmem_t *vmp =
	    vmem_create("exitleak", (void *)0x100000, 1 << 20, 4096, NULL, NULL, NULL, 0, VM_SLEEP);

	leak_at_exit(vmp);
	return 0;
}
