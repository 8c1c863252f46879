/*
 * Processes vmemdb must refuse, with the reason:
 *
 *   e2e_fake_root version|magic   exports a vmem_debug_root with an unknown
 *                                 version or a bad magic (it is not libvmem)
 *   e2e_no_vmem                   (built with NO_ROOT) has no libvmem at all
 *
 * Each prints "ready PID" and sleeps.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef NO_ROOT
struct fake_root {
	uint64_t magic;
	uint32_t version, size, ptrsize, debug;
	uint8_t rest[1024];
};

/* Writable, so main can change it before anyone looks. */
struct fake_root vmem_debug_root = {0x544f4f524d454d56ULL, 99, sizeof(struct fake_root), 8, 0, {0}};
#endif

int main(int argc, char **argv)
{
	alarm(120);
	prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0); /* traced by a sibling */
#ifndef NO_ROOT
	if (argc > 1 && strcmp(argv[1], "magic") == 0) {
		vmem_debug_root.magic = 0x1122334455667788ULL;
		vmem_debug_root.version = 1;
	}
#else
	(void)argc;
	(void)argv;
#endif
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
