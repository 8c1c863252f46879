/*
 * For test_kstat: a process that writes a snapshot through one trigger.
 *   exit    returns from main (VMEM_SNAPSHOT: written at exit)
 *   signal  raises VMEM_SNAPSHOT_SIGNAL and waits for the file, then _exit
 *   fatal   frees twice (default policy: report, snapshot, abort)
 */
#include <vmem.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	vmem_t *vmp =
	    vmem_create("trigger", (void *)0x100000, 1 << 20, 4096, NULL, NULL, NULL, 0, VM_SLEEP);
	void *p = vmem_alloc(vmp, 4096, VM_SLEEP);

	if (argc < 2)
		return 2;
	if (strcmp(argv[1], "signal") == 0) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		raise(SIGUSR1);
		for (int i = 0; i < 1000; i++) { /* up to 10 s */
			if (access(getenv("VMEM_SNAPSHOT"), R_OK) == 0)
				_exit(0); /* not through exit: the signal wrote it */
			nanosleep(&ts, NULL);
		}
		_exit(1);
	}
	if (strcmp(argv[1], "fatal") == 0) {
		vmem_free(vmp, p, 4096);
		vmem_free(vmp, p, 4096);
	}
	return 0;
}
