/*
 * Counters: a consistent copy of an arena's vmem_counters_t, taken under
 * its lock, in the illumos kstat vocabulary.
 */
#include "vmem_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

int vmem_kstat(vmem_t *vmp, vmem_kstat_t *ks)
{
	if (vmp == NULL || ks == NULL) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&vmp->vm_lock);
	ks->vk_mem_inuse = vmp->vm_ctr.vc_mem_inuse;
	ks->vk_mem_import = vmp->vm_ctr.vc_mem_import;
	ks->vk_mem_total = vmp->vm_ctr.vc_mem_total;
	ks->vk_source_id = vmp->vm_source != NULL ? vmp->vm_source->vm_id : 0;
	ks->vk_alloc = vmp->vm_ctr.vc_alloc;
	ks->vk_free = vmp->vm_ctr.vc_free;
	ks->vk_wait = vmp->vm_ctr.vc_wait;
	ks->vk_fail = vmp->vm_ctr.vc_fail;
	ks->vk_lookup = vmp->vm_ctr.vc_lookup;
	ks->vk_search = vmp->vm_ctr.vc_search;
	ks->vk_populate_wait = vmp->vm_ctr.vc_populate_wait;
	ks->vk_populate_fail = vmp->vm_ctr.vc_populate_fail;
	ks->vk_contains = vmp->vm_ctr.vc_contains;
	ks->vk_contains_search = vmp->vm_ctr.vc_contains_search;
	pthread_mutex_unlock(&vmp->vm_lock);
	return 0;
}

uint32_t vmem_id(const vmem_t *vmp)
{
	return vmp != NULL ? vmp->vm_id : 0;
}

/* ---- arenas in tree order ------------------------------------------------------- */

/*
 * Preorder over the forest of arenas, without recursion or memory: from an
 * arena, go to its first importer; else to its next sibling; else climb
 * (vm_source) until an ancestor has a next sibling.  Roots are taken in
 * creation order.  List lock held.
 */
static int foreach_locked(int (*fn)(const vmem_arena_info_t *, void *), void *arg)
{
	for (vmem_t *root = vmem__list_head; root != NULL; root = root->vm_next) {
		vmem_t *vmp = root;
		int depth = 0;

		if (root->vm_source != NULL)
			continue;
		while (vmp != NULL) {
			vmem_arena_info_t info = {
			    vmp,
			    vmp->vm_id,
			    vmp->vm_source != NULL ? vmp->vm_source->vm_id : 0,
			    depth,
			    vmp->vm_cflags,
			    vmp->vm_quantum,
			    vmp->vm_name};
			int rc = fn(&info, arg);

			if (rc != 0)
				return rc;
			if (vmp->vm_children != NULL) {
				vmp = vmp->vm_children;
				depth++;
				continue;
			}
			while (vmp != root && vmp->vm_sibling == NULL) {
				vmp = vmp->vm_source;
				depth--;
			}
			vmp = vmp == root ? NULL : vmp->vm_sibling;
		}
	}
	return 0;
}

int vmem_arena_foreach(int (*fn)(const vmem_arena_info_t *info, void *arg), void *arg)
{
	int rc;

	if (fn == NULL) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&vmem__list_lock);
	rc = foreach_locked(fn, arg);
	pthread_mutex_unlock(&vmem__list_lock);
	return rc;
}

/* ---- printing --------------------------------------------------------------------- */

static const char *const arena_stats[] = {
    "mem_inuse",     "mem_import",    "mem_total", "source_id",      "alloc",
    "free",          "wait",          "fail",      "lookup",         "search",
    "populate_wait", "populate_fail", "contains",  "contains_search"};

static const char *const cache_stats[] = {"objsize",     "slabsize",    "alloc",
                                          "free",        "alloc_miss",  "free_miss",
                                          "depot_alloc", "depot_free",  "depot_contention",
                                          "depot_full",  "depot_empty", "mag_rounds",
                                          "slabs",       "slab_create", "slab_destroy",
                                          "slab_out",    "direct",      "reaps"};

static const char *const error_names[VMEM_ERR_NKINDS] = {[VMEM_ERR_BAD_FREE] = "bad_free",
                                                         [VMEM_ERR_DOUBLE_FREE] = "double_free",
                                                         [VMEM_ERR_INTERIOR_FREE] = "interior_free",
                                                         [VMEM_ERR_SIZE_MISMATCH] = "size_mismatch",
                                                         [VMEM_ERR_WRONG_ARENA] = "wrong_arena",
                                                         [VMEM_ERR_FREE_XALLOC] = "free_xalloc",
                                                         [VMEM_ERR_XFREE_CACHED] = "xfree_cached",
                                                         [VMEM_ERR_DESTROY_BUSY] = "destroy_busy",
                                                         [VMEM_ERR_LEAK] = "leak",
                                                         [VMEM_ERR_PANIC] = "panic"};

/* Buffered output to a file descriptor. */
typedef struct kout {
	int fd, err;
	size_t len;
	bool first; /* JSON: no comma before the next element */
	char buf[8192];
} kout_t;

static vmem_pool_t kout_pool = VMEM_POOL_INITIALIZER("vmem_kout", sizeof(kout_t), VMEM_META_OTHER);

static void k_flush(kout_t *o)
{
	size_t off = 0;

	while (off < o->len && o->err == 0) {
		ssize_t n = write(o->fd, o->buf + off, o->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			o->err = n < 0 ? errno : EIO;
		else
			off += (size_t)n;
	}
	o->len = 0;
}

static void k_printf(kout_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void k_printf(kout_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->len > sizeof(o->buf) - 512)
		k_flush(o);
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len +=
		    (size_t)n < sizeof(o->buf) - o->len ? (size_t)n : sizeof(o->buf) - o->len - 1;
}

typedef struct kprint {
	kout_t *o;
	int flags;
} kprint_t;

static int print_arena(const vmem_arena_info_t *info, void *arg)
{
	kprint_t *kp = arg;
	kout_t *o = kp->o;
	vmem_kstat_t ks;
	uint64_t *v = (uint64_t *)&ks;
	bool json = kp->flags & VMEM_KSTAT_JSON;

	vmem_kstat(info->vai_arena, &ks);
	if (json) {
		k_printf(o,
		         "%s{\"id\":%u,\"name\":\"%s\",\"source_id\":%u,\"depth\":%d,\"flags\":%d,"
		         "\"quantum\":%zu,\"kstat\":{",
		         o->first ? "" : ",", info->vai_id, info->vai_name, info->vai_source_id,
		         info->vai_depth, info->vai_cflags, info->vai_quantum);
		o->first = false;
		for (size_t i = 0; i < sizeof(arena_stats) / sizeof(arena_stats[0]); i++)
			k_printf(o, "%s\"%s\":%llu", i ? "," : "", arena_stats[i],
			         (unsigned long long)v[i]);
		k_printf(o, "},\"qcaches\":[");
	} else {
		for (size_t i = 0; i < sizeof(arena_stats) / sizeof(arena_stats[0]); i++)
			k_printf(o, "vmem:%u:%s:%s\t%llu\n", info->vai_id, info->vai_name,
			         arena_stats[i], (unsigned long long)v[i]);
	}
	for (unsigned c = 0; c < vmem_qcache_count(info->vai_arena); c++) {
		vmem_qcache_kstat_t q;
		const uint64_t *qv = &q.qk_objsize;

		vmem_qcache_kstat(info->vai_arena, c, &q);
		if (json)
			k_printf(o, "%s{\"name\":\"%s\"", c ? "," : "", q.qk_name);
		for (size_t i = 0; i < sizeof(cache_stats) / sizeof(cache_stats[0]); i++) {
			if (json)
				k_printf(o, ",\"%s\":%llu", cache_stats[i],
				         (unsigned long long)qv[i]);
			else
				k_printf(o, "vmem:%u:%s:%s\t%llu\n", info->vai_id, q.qk_name,
				         cache_stats[i], (unsigned long long)qv[i]);
		}
		if (json)
			k_printf(o, "}");
	}
	if (json)
		k_printf(o, "]}");
	return 0;
}

int vmem_kstat_print(int fd, int flags)
{
	kout_t *o;
	kprint_t kp;
	int err;
	bool json = flags & VMEM_KSTAT_JSON;

	if (fd < 0 || (flags & ~VMEM_KSTAT_JSON)) {
		errno = fd < 0 ? EBADF : EINVAL;
		return -1;
	}
	o = vmem__pool_get(&kout_pool); /* 8 KiB of buffer: not on the stack, not malloc */
	if (o == NULL)
		return -1;
	o->fd = fd;
	o->err = 0;
	o->len = 0;
	o->first = true;
	kp.o = o;
	kp.flags = flags;
	if (json)
		k_printf(o, "{\"arenas\":[");
	(void)vmem_arena_foreach(print_arena, &kp);
	if (json)
		k_printf(o, "],\"errors\":{");
	for (int k = 1; k < VMEM_ERR_NKINDS; k++) {
		if (json)
			k_printf(o, "%s\"%s\":%llu", k > 1 ? "," : "", error_names[k],
			         (unsigned long long)vmem_error_count_kind((vmem_error_kind_t)k));
		else
			k_printf(o, "vmem:0:errors:%s\t%llu\n", error_names[k],
			         (unsigned long long)vmem_error_count_kind((vmem_error_kind_t)k));
	}
	if (json)
		k_printf(o, "}}\n");
	k_flush(o);
	err = o->err;
	vmem__pool_put(&kout_pool, o);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}
