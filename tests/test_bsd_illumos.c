/*
 * The illumos half of test_bsd (see test_bsd.h): this translation unit
 * includes <vmem.h> and the core's internals, the other <vmem/bsd.h>.
 */
#include "testutil.h"

#include "test_bsd.h"

static captured_t errors;

void tb_assert_arena_ok(vmem_t *vm)
{
	assert_arena_ok(vm);
}

void tb_capture_errors(void)
{
	capture_errors(&errors);
}

void tb_release_errors(void)
{
	release_errors();
}

int tb_nerrors(void)
{
	return errors.n;
}

const char *tb_error_kind(int i)
{
	switch (errors.kind[i]) {
	case VMEM_ERR_BAD_FREE:
		return "bad free";
	case VMEM_ERR_SIZE_MISMATCH:
		return "size mismatch";
	case VMEM_ERR_INTERIOR_FREE:
		return "interior free";
	case VMEM_ERR_WRONG_ARENA:
		return "wrong arena";
	case VMEM_ERR_LEAK:
		return "leak";
	default:
		return "other";
	}
}

const char *tb_error_msg(int i)
{
	return errors.msg[i];
}

unsigned tb_nwaiters(vmem_t *vm)
{
	unsigned n;

	pthread_mutex_lock(&vm->vm_lock);
	n = vm->vm_nwaiters;
	pthread_mutex_unlock(&vm->vm_lock);
	return n;
}

uint64_t tb_nwaits(vmem_t *vm)
{
	vmem_kstat_t ks;

	assert_int_equal(vmem_kstat(vm, &ks), 0);
	return ks.vk_wait;
}

typedef struct seglist {
	uintptr_t *start;
	size_t *size;
	size_t n, max;
} seglist_t;

static void collect(void *arg, void *addr, size_t size)
{
	seglist_t *l = arg;

	if (l->n < l->max) {
		l->start[l->n] = (uintptr_t)addr;
		l->size[l->n] = size;
	}
	l->n++;
}

size_t tb_free_segments(vmem_t *vm, uintptr_t *start, size_t *size, size_t max)
{
	seglist_t l = {start, size, 0, max};

	vmem_walk(vm, VMEM_FREE, collect, &l);
	return l.n;
}

size_t tb_alloc_segments(vmem_t *vm, uintptr_t *start, size_t *size, size_t max)
{
	seglist_t l = {start, size, 0, max};

	vmem_walk(vm, VMEM_ALLOC, collect, &l);
	return l.n;
}

void tb_illumos_side(vmem_t *bsd_arena, uintptr_t addr, size_t size)
{
	vmem_t *il;
	void *p;

	/* The BSD arena, seen through the illumos API. */
	assert_true(vmem_contains(bsd_arena, (void *)addr, size));
	assert_true(vmem_size(bsd_arena, VMEM_SPAN) >= size);
	assert_true(vmem_size(bsd_arena, VMEM_ALLOC) >= size);

	/* An illumos arena in the same program keeps the illumos rules. */
	il = vmem_create("illumos-side", (void *)0x1000, 0x1000, 16, NULL, NULL, NULL, 0, VM_SLEEP);
	assert_non_null(il);
	p = vmem_xalloc(il, 16, 0, 0, 0, NULL, (void *)0x1010, VM_NOSLEEP); /* exclusive max */
	assert_ptr_equal(p, (void *)0x1000);
	errno = 0;
	assert_null(vmem_xalloc(il, 16, 0, 0, 0, NULL, (void *)0x1010, VM_NOSLEEP));
	assert_int_equal(errno, ENOMEM);
	vmem_xfree(il, p, 16);
	errno = 0;
	assert_null(vmem_add(il, NULL, 0x1000, VM_NOSLEEP)); /* no address 0 here */
	assert_int_equal(errno, EINVAL);
	assert_arena_ok(il);
	vmem_destroy(il);
}
