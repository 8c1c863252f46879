/*
 * Identifier spaces (illumos id_space(9F)) on the arena core.
 *
 * An id space is an identifier arena of quantum 1 whose integers are the
 * ids themselves.  illumos stores id n at address n + 1 because its arenas
 * cannot hold 0; ours are created with ca_zero_ok, so id 0 needs no offset
 * and every id is its own address.  No quantum cache, no source: the
 * arena's spans are exactly the ranges given to id_space_create() and
 * id_space_extend().
 *
 * Mapping (each call is one core call on the arena):
 *   id_alloc            vmem__alloc(1, VM_NEXTFIT | VM_SLEEP)
 *   id_alloc_nosleep    vmem__alloc(1, VM_NEXTFIT | VM_NOSLEEP)
 *   id_allocff          vmem__alloc(1, VM_FIRSTFIT | VM_SLEEP)   lowest free id
 *   id_allocff_nosleep  vmem__alloc(1, VM_FIRSTFIT | VM_NOSLEEP)
 *   id_alloc_specific   vmem__xalloc(1, min = last = id, VM_NOSLEEP)
 *   id_free             vmem__free(id, 1)
 * Next fit moves the arena's rotor and first fit does not, so id_allocff()
 * leaves id_alloc()'s sequence alone.  The core's VM_SLEEP waits on the
 * arena's condition variable, which every free and every add broadcast:
 * the sleeping calls wake as soon as an id is freed or the space extended.
 *
 * id_t is unsigned on Linux, so "-1" is the largest id_t; ranges are
 * [low, high) with high <= (id_t)-1, hence -1 is never a valid id.
 */
#include <id_space.h>

#include "vmem_impl.h"

#include <errno.h>

_Static_assert((id_t)-1 > (id_t)0, "id_space.c assumes an unsigned id_t (glibc)");

#define ID_NONE ((id_t)-1)

/* The two views of one object: an id space is its arena. */
static vmem_t *arena_of(id_space_t *isp)
{
	return (vmem_t *)isp;
}

id_space_t *id_space_create(const char *name, id_t low, id_t high)
{
	vmem_create_args_t a = {
	    .ca_name = name,
	    .ca_base = (uintptr_t)low,
	    .ca_size = (size_t)high - (size_t)low,
	    .ca_quantum = 1,
	    .ca_vmflag = VMC_IDENTIFIER | VMC_NO_QCACHE | VM_SLEEP,
	    .ca_zero_ok = true,
	};

	if (low >= high) {
		errno = EINVAL;
		return NULL;
	}
	return (id_space_t *)vmem__create(&a);
}

void id_space_destroy(id_space_t *isp)
{
	vmem_destroy(arena_of(isp));
}

int id_space_extend(id_space_t *isp, id_t low, id_t high)
{
	if (isp == NULL || low >= high)
		return EINVAL;
	return vmem__add(arena_of(isp), (uintptr_t)low, (size_t)high - (size_t)low, VM_SLEEP);
}

/* One id under the given policy and sleep flag; ID_NONE on failure. */
static id_t alloc_one(id_space_t *isp, int vmflag)
{
	uintptr_t addr;

	if (isp == NULL || vmem__alloc(arena_of(isp), 1, vmflag, &addr) != 0)
		return ID_NONE;
	return (id_t)addr;
}

id_t id_alloc(id_space_t *isp)
{
	VMEM_API_SCOPE();
	return alloc_one(isp, VM_NEXTFIT | VM_SLEEP);
}

id_t id_alloc_nosleep(id_space_t *isp)
{
	VMEM_API_SCOPE();
	return alloc_one(isp, VM_NEXTFIT | VM_NOSLEEP);
}

id_t id_allocff(id_space_t *isp)
{
	VMEM_API_SCOPE();
	return alloc_one(isp, VM_FIRSTFIT | VM_SLEEP);
}

id_t id_allocff_nosleep(id_space_t *isp)
{
	VMEM_API_SCOPE();
	return alloc_one(isp, VM_FIRSTFIT | VM_NOSLEEP);
}

id_t id_alloc_specific_nosleep(id_space_t *isp, id_t id)
{
	VMEM_API_SCOPE();
	uintptr_t addr;

	if (isp == NULL || id == ID_NONE ||
	    vmem__xalloc(arena_of(isp), 1, 0, 0, 0, (uintptr_t)id, (uintptr_t)id, VM_NOSLEEP, &addr,
	                 NULL) != 0)
		return ID_NONE;
	return (id_t)addr;
}

void id_free(id_space_t *isp, id_t id)
{
	VMEM_API_SCOPE();
	vmem__free(arena_of(isp), (uintptr_t)id, 1, "id_free");
}
