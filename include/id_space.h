/*
 * libvmem: identifier spaces, the illumos id_space(9F) API.
 *
 * An id space hands out integer identifiers (process ids, minor numbers,
 * handles) from one or more ranges [low, high).  It is a vmem arena of
 * quantum 1 in which id n is the integer n itself; identifiers are never
 * memory.  Code written against illumos <sys/id_space.h> compiles
 * unchanged; the differences a caller can observe are:
 *
 *   - id_t is the platform's (on Linux, glibc's unsigned int), so the
 *     failure value -1 is (id_t)-1 and ids lie in [0, (id_t)-1): a range's
 *     `high` is exclusive, so (id_t)-1 itself is never handed out;
 *   - id_allocff() returns the LOWEST free id (illumos only promises "the
 *     first available", which its freelist order makes the most recently
 *     freed isolated id);
 *   - the sleeping calls really sleep, until an id is freed or the space
 *     is extended (the illumos userland port turns them into nosleep);
 *   - bad arguments return NULL / -1 / EINVAL instead of panicking, and a
 *     bad id_free() is reported like a bad vmem_free() (see vmem.h).
 *
 * Thread safety: every function may be called from any thread; an id
 * space has one lock (its arena's).
 */
#ifndef VMEM_ID_SPACE_H
#define VMEM_ID_SPACE_H

#include <sys/types.h> /* id_t */

#ifdef __cplusplus
extern "C" {
#endif

/*
 * An id space.  Opaque; it is in fact the arena behind it, but it is not a
 * vmem_t to the compiler, so that an id space cannot be passed to the
 * vmem_*() functions by mistake (vmem_alloc() would return NULL for id 0).
 */
typedef struct id_space id_space_t;

/*
 * Create an id space for the ids [low, high).  Requires low < high.
 * Returns NULL with errno EINVAL for a NULL name or an empty range, ENOMEM
 * if no metadata memory can be mapped.  The name is truncated to
 * VMEM_NAMELEN (30) characters and names the arena in error reports.
 */
id_space_t *id_space_create(const char *name, id_t low, id_t high);

/*
 * Destroy an id space.  Ids still allocated are reported once, as a
 * warning ("leaked N identifiers"), through the vmem error handler.
 * Threads still sleeping in id_alloc() must have been woken first.
 */
void id_space_destroy(id_space_t *isp);

/*
 * Add the ids [low, high) to the space and wake the threads sleeping in
 * it.  The range must not overlap the space's existing ranges.  Returns 0,
 * or EINVAL (empty or overlapping range; nothing changed).  illumos
 * returns void; ignoring the result is source-compatible.
 */
int id_space_extend(id_space_t *isp, id_t low, id_t high);

/*
 * Allocate the next id after the last one id_alloc() or id_alloc_nosleep()
 * returned, wrapping around to the lowest free id (next fit): ids are
 * handed out in increasing order and not reused soon after being freed.
 * id_alloc() sleeps while the space is full and returns only with an id;
 * id_alloc_nosleep() returns -1 instead.
 */
id_t id_alloc(id_space_t *isp);
id_t id_alloc_nosleep(id_space_t *isp);

/*
 * Allocate the lowest free id (first fit).  id_allocff() sleeps while the
 * space is full; id_allocff_nosleep() returns -1 instead.  Does not move
 * id_alloc()'s position.
 */
id_t id_allocff(id_space_t *isp);
id_t id_allocff_nosleep(id_space_t *isp);

/*
 * Allocate exactly `id`: returns id, or -1 if it is taken or outside the
 * space.  Never sleeps.
 */
id_t id_alloc_specific_nosleep(id_space_t *isp, id_t id);

/*
 * Give back an id obtained from any of the allocation functions.  Freeing
 * an id that is not allocated is reported (bad free, function "id_free")
 * and, under the default error policy, aborts.
 */
void id_free(id_space_t *isp, id_t id);

#ifdef __cplusplus
}
#endif

#endif /* VMEM_ID_SPACE_H */
