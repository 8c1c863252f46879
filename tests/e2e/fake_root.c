/*
 * Processes with a root vmemdb must refuse, with the reason, or read as an
 * older libvmem:
 *
 *   e2e_fake_root version|magic   exports a vmem_debug_root with an unknown
 *                                 version or a bad magic (it is not libvmem)
 *   e2e_fake_root short           a version-1 root smaller than the first ones
 *   e2e_fake_root old             the root of a libvmem of the first version-1
 *                                 layout (without magazines): no arenas, 3
 *                                 bad frees counted
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
/* The header declares the library's root, const and of another type: that
 * declaration is renamed out of the way of ours. */
#define vmem_debug_root vmem_debug_root_of_libvmem
#include <vmem_root.h>
#undef vmem_debug_root

/* Room past what this vmemdb knows, as a newer library's root would have. */
struct fake_root {
	vmem_root_t r;
	uint8_t rest[1024];
};

/* Writable, so main can change it before anyone looks. */
struct fake_root vmem_debug_root = {{.vr_magic = VMEM_ROOT_MAGIC,
                                     .vr_version = 99,
                                     .vr_size = sizeof(struct fake_root),
                                     .vr_ptrsize = sizeof(void *)},
                                    {0}};

/*
 * The structures the "old" root describes.  Its lists are empty, so they are
 * never read, but their layout must be consistent for vmemdb to accept it:
 * offsets come from these declarations, as the library's come from its own.
 */
struct fake_seg {
	uintptr_t start, size;
	struct fake_seg *anext;
	uint8_t type, flags;
	uint32_t stack;
	size_t asize;
	uint64_t time, thread;
};

struct fake_arena {
	char name[31];
	uint32_t id;
	int cflags;
	size_t quantum, qcache_max;
	struct fake_seg seg0;
	struct fake_arena *next, *source;
	int nqcache;
	void *qcache[16];
	uint64_t ctr[13];
	size_t nspans, nhash;
};

struct fake_region {
	uint64_t magic;
	struct fake_region *next, *prev;
	size_t size;
	uint32_t kind;
};

static struct fake_arena *no_arenas;
static struct fake_region *no_regions;
static uint64_t error_counts[11] = {0, 3}; /* 3 bad frees */

#define OFF(type, field) ((uint32_t)offsetof(type, field))

/* A root as the first libvmem builds of version 1 exported it. */
static void make_old_root(vmem_root_t *r)
{
	r->vr_version = 1;
	r->vr_size = (uint32_t)VMEM_ROOT_SIZE_BASE;
	r->vr_ptrsize = sizeof(void *);
	r->vr_list_head = (uint64_t)(uintptr_t)&no_arenas;
	r->vr_region_head = (uint64_t)(uintptr_t)&no_regions;
	r->vr_error_counts = (uint64_t)(uintptr_t)error_counts;
	r->vr_nkinds = sizeof(error_counts) / sizeof(error_counts[0]);
	r->vr_namelen = sizeof(((struct fake_arena *)0)->name) - 1;
	r->vr_arena = (vmem_root_arena_t){.ra_size = sizeof(struct fake_arena),
	                                  .ra_name = OFF(struct fake_arena, name),
	                                  .ra_id = OFF(struct fake_arena, id),
	                                  .ra_cflags = OFF(struct fake_arena, cflags),
	                                  .ra_quantum = OFF(struct fake_arena, quantum),
	                                  .ra_qcache_max = OFF(struct fake_arena, qcache_max),
	                                  .ra_seg0 = OFF(struct fake_arena, seg0),
	                                  .ra_next = OFF(struct fake_arena, next),
	                                  .ra_source = OFF(struct fake_arena, source),
	                                  .ra_nqcache = OFF(struct fake_arena, nqcache),
	                                  .ra_qcache = OFF(struct fake_arena, qcache),
	                                  .ra_ctr = OFF(struct fake_arena, ctr),
	                                  .ra_spans_count = OFF(struct fake_arena, nspans),
	                                  .ra_hash_count = OFF(struct fake_arena, nhash)};
	r->vr_seg = (vmem_root_seg_t){.rs_size = sizeof(struct fake_seg),
	                              .rs_start = OFF(struct fake_seg, start),
	                              .rs_extent = OFF(struct fake_seg, size),
	                              .rs_anext = OFF(struct fake_seg, anext),
	                              .rs_type = OFF(struct fake_seg, type),
	                              .rs_flags = OFF(struct fake_seg, flags),
	                              .rs_stack = OFF(struct fake_seg, stack),
	                              .rs_asize = OFF(struct fake_seg, asize),
	                              .rs_time = OFF(struct fake_seg, time),
	                              .rs_thread = OFF(struct fake_seg, thread)};
	r->vr_region = (vmem_root_region_t){.rr_next = OFF(struct fake_region, next),
	                                    .rr_size = OFF(struct fake_region, size),
	                                    .rr_kind = OFF(struct fake_region, kind)};
}
#endif

int main(int argc, char **argv)
{
	alarm(120);
	prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0); /* traced by a sibling */
#ifndef NO_ROOT
	if (argc > 1 && strcmp(argv[1], "magic") == 0) {
		vmem_debug_root.r.vr_magic = 0x1122334455667788ULL;
		vmem_debug_root.r.vr_version = 1;
	} else if (argc > 1 && strcmp(argv[1], "short") == 0) {
		vmem_debug_root.r.vr_version = 1;
		vmem_debug_root.r.vr_size = (uint32_t)VMEM_ROOT_SIZE_BASE - 8;
	} else if (argc > 1 && strcmp(argv[1], "old") == 0) {
		make_old_root(&vmem_debug_root.r);
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
