/* A program built against an installed libvmem, as a user would. */
#include <vmem.h>

#include <stdio.h>

int main(void)
{
	vmem_t *vmp = vmem_create("installed", (void *)0x1000, 0x10000, 0x1000, NULL, NULL, NULL, 0,
	                          VM_SLEEP);
	void *p = vmp != NULL ? vmem_alloc(vmp, 0x2000, VM_SLEEP) : NULL;

	if (p == NULL)
		return 1;
	vmem_free(vmp, p, 0x2000);
	printf("ok: %s, debug %d\n", vmem_name(vmp), vmem_debug_enabled());
	vmem_destroy(vmp);
	return 0;
}
