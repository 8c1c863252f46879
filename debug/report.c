/*
 * Debug layer: what the user reads.  Symbolized stacks under error
 * reports, and leak reports grouped by allocation stack, largest first, in
 * the shape LeakSanitizer users know (text) or as JSON.
 *
 * Reports are written with write(2) to a file descriptor.  Unlike the
 * allocator itself they may use malloc (for grouping) and the symbolizer
 * (which uses libdwarf): a report is made when an error or a leak has been
 * found, not on an allocation path.
 */
#include "dbg_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/qcache.h"
#include "symbolize.h"

static pthread_mutex_t sym_lock = PTHREAD_MUTEX_INITIALIZER;
static vmem_symtab_t *symtab;

static vmem_symtab_t *self_symtab(void)
{
	pthread_mutex_lock(&sym_lock);
	if (symtab == NULL)
		symtab = vmem_sym_open_self();
	pthread_mutex_unlock(&sym_lock);
	return symtab;
}

/* printf to a file descriptor, in pieces of at most 4 KiB. */
static void fdprintf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fdprintf(int fd, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;
	size_t off = 0;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	while (off < (size_t)n) {
		ssize_t w = write(fd, buf + off, (size_t)n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

void vmem__dbg_print_stack(int fd, const char *indent, const uintptr_t *pcs, int depth)
{
	vmem_symtab_t *st = self_symtab();
	int k = 0;

	if (depth == 0) {
		fdprintf(fd, "%s<no stack recorded>\n", indent);
		return;
	}
	for (int i = 0; i < depth; i++) {
		vmem_sym_frame_t f[8];
		int n = st != NULL ? vmem_sym_lookup(st, pcs[i], 1, f, 8) : 0;
		char buf[1024];

		if (n == 0) {
			fdprintf(fd, "%s#%d %#lx\n", indent, k++, (unsigned long)pcs[i]);
			continue;
		}
		for (int j = 0; j < n; j++) {
			vmem_sym_format(&f[j], buf, sizeof(buf));
			fdprintf(fd, "%s#%d %#lx in %s\n", indent, k++, (unsigned long)pcs[i], buf);
		}
	}
}

static void print_when(int fd, const char *what, uint64_t tid, uint64_t ns)
{
	fdprintf(fd, "libvmem:   %s by thread %llu at %llu.%09llu s:\n", what,
	         (unsigned long long)tid, (unsigned long long)(ns / 1000000000ULL),
	         (unsigned long long)(ns % 1000000000ULL));
}

void vmem__dbg_report_detail(const vmem_error_info_t *info)
{
	int fd = STDERR_FILENO;

	if (info->ve_kind == VMEM_ERR_LEAK)
		return; /* the grouped leak report came first */
	fdprintf(fd, "libvmem:   current stack (thread %llu):\n",
	         (unsigned long long)vmem__dbg_tid());
	vmem__dbg_print_stack(fd, "    ", info->ve_cur_stack, info->ve_cur_depth);
	if (info->ve_alloc_stack != NULL) {
		print_when(fd, "allocated", info->ve_alloc_thread, info->ve_alloc_time);
		vmem__dbg_print_stack(fd, "    ", info->ve_alloc_stack, info->ve_alloc_depth);
	}
	if (info->ve_free_stack != NULL) {
		print_when(fd, info->ve_kind == VMEM_ERR_DOUBLE_FREE ? "first freed" : "last freed",
		           info->ve_free_thread, info->ve_free_time);
		vmem__dbg_print_stack(fd, "    ", info->ve_free_stack, info->ve_free_depth);
	}
}

void vmem__dbg_before_abort(const vmem_error_info_t *info)
{
	(void)info;
}

/* ---- leak reports ------------------------------------------------------------------ */

typedef struct leak_group {
	uint32_t stack;
	uint64_t count, bytes;
	uintptr_t example; /* one leaked address */
} leak_group_t;

typedef struct leak_set {
	leak_group_t *g;
	size_t n, cap;
	uint64_t count, bytes;
} leak_set_t;

static void leak_add(leak_set_t *ls, uint32_t stack, uint64_t bytes, uintptr_t addr)
{
	size_t i;

	ls->count++;
	ls->bytes += bytes;
	for (i = 0; i < ls->n; i++) {
		if (ls->g[i].stack == stack) {
			ls->g[i].count++;
			ls->g[i].bytes += bytes;
			return;
		}
	}
	if (ls->n == ls->cap) {
		size_t cap = ls->cap ? 2 * ls->cap : 16;
		leak_group_t *g = realloc(ls->g, cap * sizeof(*g));

		if (g == NULL)
			return;
		ls->g = g;
		ls->cap = cap;
	}
	ls->g[ls->n++] = (leak_group_t){stack, 1, bytes, addr};
}

static int by_bytes_desc(const void *a, const void *b)
{
	const leak_group_t *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

/*
 * The starts of the spans that vmp's importers hold: vmp's segments (or
 * cached objects) behind them are not leaks of vmp but spans of a live
 * arena, whose own report shows what it still holds -- reporting both
 * would count every leak of a child twice.  Caller holds vmem__list_lock
 * (which keeps the tree still); takes each child's lock in turn.
 */
typedef struct imp_set {
	uintptr_t *start;
	size_t n, cap;
} imp_set_t;

static int uintptr_cmp(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

static void imported_by_children(vmem_t *vmp, imp_set_t *is)
{
	for (vmem_t *c = vmp->vm_children; c != NULL; c = c->vm_sibling) {
		pthread_mutex_lock(&c->vm_lock);
		for (vmem_seg_t *vsp = c->vm_seg0.vs_anext; vsp != &c->vm_seg0;
		     vsp = vsp->vs_anext) {
			if (vsp->vs_type != VMEM_SEG_SPAN || !(vsp->vs_flags & VMEM_SEGF_IMPORTED))
				continue;
			if (is->n == is->cap) {
				size_t cap = is->cap ? 2 * is->cap : 64;
				uintptr_t *p = realloc(is->start, cap * sizeof(*p));

				if (p == NULL)
					break; /* report too much rather than nothing */
				is->start = p;
				is->cap = cap;
			}
			is->start[is->n++] = vsp->vs_start;
		}
		pthread_mutex_unlock(&c->vm_lock);
	}
	if (is->n > 1)
		qsort(is->start, is->n, sizeof(*is->start), uintptr_cmp);
}

static bool imported(const imp_set_t *is, uintptr_t start)
{
	return is != NULL && is->n != 0 &&
	       bsearch(&start, is->start, is->n, sizeof(*is->start), uintptr_cmp) != NULL;
}

/* Collect the outstanding segments and cached objects of vmp, but `imp`. */
static void leak_collect(vmem_t *vmp, const imp_set_t *imp, leak_set_t *ls)
{
	vmem_seg_t *vsp;

	pthread_mutex_lock(&vmp->vm_lock);
	for (vsp = vmp->vm_seg0.vs_anext; vsp != &vmp->vm_seg0; vsp = vsp->vs_anext) {
		if (vsp->vs_type == VMEM_SEG_ALLOC && !(vsp->vs_flags & VMEM_SEGF_SLAB) &&
		    !imported(imp, vsp->vs_start))
			leak_add(ls, vsp->vs_stack, vsp->u.a.vs_asize, vsp->vs_start);
	}
	pthread_mutex_unlock(&vmp->vm_lock);
	for (int i = 0; i < vmp->vm_nqcache; i++) {
		vmem_qcache_t *qc = vmp->vm_qcache[i];

		pthread_mutex_lock(&qc->qc_slab_lock);
		for (int l = 0; l < QC_SLAB_NLISTS; l++) {
			for (vmem_slab_t *sl = qc->qc_slabs[l]; sl != NULL; sl = sl->sl_next) {
				for (unsigned o = 0; o < qc->qc_nobj; o++) {
					const vmem_qaudit_t *a = sl->sl_audit;

					if ((sl->sl_freemap & (1ULL << o)) ||
					    imported(imp, sl->sl_base + o * qc->qc_objsize))
						continue;
					leak_add(ls, a != NULL ? a[o].qa_alloc_stack : 0,
					         a != NULL && a[o].qa_asize != 0 ? a[o].qa_asize
					                                         : qc->qc_objsize,
					         sl->sl_base + o * qc->qc_objsize);
				}
			}
		}
		pthread_mutex_unlock(&qc->qc_slab_lock);
	}
	if (ls->n > 1)
		qsort(ls->g, ls->n, sizeof(*ls->g), by_bytes_desc);
}

static const char *unit(const vmem_t *vmp)
{
	return (vmp->vm_cflags & VMC_IDENTIFIER) ? "identifier(s)" : "byte(s)";
}

static void leak_print_text(int fd, const vmem_t *vmp, const leak_set_t *ls)
{
	fdprintf(fd, "\n=================================================================\n");
	fdprintf(fd, "==%d==ERROR: libvmem: detected leaks in arena '%s' (id %u)\n\n",
	         (int)getpid(), vmp->vm_name, vmp->vm_id);
	for (size_t i = 0; i < ls->n; i++) {
		const leak_group_t *g = &ls->g[i];
		int depth;
		const uintptr_t *pcs = vmem__stack_get(g->stack, &depth);

		fdprintf(fd, "Leak of %llu %s in %llu segment(s) allocated from arena '%s':\n",
		         (unsigned long long)g->bytes, unit(vmp), (unsigned long long)g->count,
		         vmp->vm_name);
		vmem__dbg_print_stack(fd, "    ", pcs, depth);
		fdprintf(fd, "\n");
	}
	fdprintf(fd, "SUMMARY: libvmem: %llu %s leaked in %llu segment(s) from arena '%s'.\n",
	         (unsigned long long)ls->bytes, unit(vmp), (unsigned long long)ls->count,
	         vmp->vm_name);
}

/* Write s as a JSON string. */
static void json_str(int fd, const char *s)
{
	char buf[1024];
	size_t n = 0;

	buf[n++] = '"';
	for (; s != NULL && *s != '\0' && n < sizeof(buf) - 8; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\\u%04x", c);
		} else {
			buf[n++] = (char)c;
		}
	}
	buf[n++] = '"';
	buf[n] = '\0';
	fdprintf(fd, "%s", buf);
}

static void json_stack(int fd, const uintptr_t *pcs, int depth)
{
	vmem_symtab_t *st = self_symtab();
	bool first = true;

	fdprintf(fd, "[");
	for (int i = 0; i < depth; i++) {
		vmem_sym_frame_t f[8];
		int n = st != NULL ? vmem_sym_lookup(st, pcs[i], 1, f, 8) : 0;

		if (n == 0) {
			fdprintf(fd, "%s{\"pc\":\"%#lx\"}", first ? "" : ",",
			         (unsigned long)pcs[i]);
			first = false;
			continue;
		}
		for (int j = 0; j < n; j++) {
			fdprintf(fd, "%s{\"pc\":\"%#lx\",\"function\":", first ? "" : ",",
			         (unsigned long)pcs[i]);
			json_str(fd, f[j].function);
			fdprintf(fd, ",\"file\":");
			json_str(fd, f[j].file);
			fdprintf(fd, ",\"line\":%u,\"inlined\":%s,\"object\":", f[j].line,
			         f[j].inlined ? "true" : "false");
			json_str(fd, f[j].object);
			fdprintf(fd, "}");
			first = false;
		}
	}
	fdprintf(fd, "]");
}

static void leak_print_json(int fd, const vmem_t *vmp, const leak_set_t *ls)
{
	fdprintf(fd, "{\"arena\":");
	json_str(fd, vmp->vm_name);
	fdprintf(fd,
	         ",\"arena_id\":%u,\"unit\":\"%s\",\"total_bytes\":%llu,\"total_count\":%llu,"
	         "\"leaks\":[",
	         vmp->vm_id, (vmp->vm_cflags & VMC_IDENTIFIER) ? "identifiers" : "bytes",
	         (unsigned long long)ls->bytes, (unsigned long long)ls->count);
	for (size_t i = 0; i < ls->n; i++) {
		int depth;
		const uintptr_t *pcs = vmem__stack_get(ls->g[i].stack, &depth);

		fdprintf(fd, "%s{\"bytes\":%llu,\"count\":%llu,\"example\":\"%#lx\",\"stack\":",
		         i ? "," : "", (unsigned long long)ls->g[i].bytes,
		         (unsigned long long)ls->g[i].count, (unsigned long)ls->g[i].example);
		json_stack(fd, pcs, depth);
		fdprintf(fd, "}");
	}
	fdprintf(fd, "]}\n");
}

/*
 * Report vmp's leaks to fd (and to VMEM_LEAK_JSON when asked); count them.
 * `imp`: the spans vmp's importers hold (NULL: none).  `always`: print a
 * report with no leak too (an explicit JSON request gets a document).
 */
static uint64_t leak_report_one(vmem_t *vmp, const imp_set_t *imp, int fd, int flags, bool env_json,
                                bool always)
{
	leak_set_t ls = {0};

	leak_collect(vmp, imp, &ls);
	if (ls.count == 0 && always && (flags & VMEM_REPORT_JSON))
		leak_print_json(fd, vmp, &ls);
	if (ls.count != 0) {
		if (flags & VMEM_REPORT_JSON)
			leak_print_json(fd, vmp, &ls);
		else
			leak_print_text(fd, vmp, &ls);
		if (env_json && getenv("VMEM_LEAK_JSON") != NULL) {
			int jfd =
			    open(getenv("VMEM_LEAK_JSON"), O_WRONLY | O_CREAT | O_APPEND, 0644);

			if (jfd >= 0) {
				leak_print_json(jfd, vmp, &ls);
				close(jfd);
			}
		}
	}
	free(ls.g);
	return ls.count;
}

/* At vmem_destroy(): the arena has no importers left (destroy refuses them). */
void vmem__dbg_leak_report_destroy(vmem_t *vmp)
{
	(void)leak_report_one(vmp, NULL, STDERR_FILENO, VMEM_REPORT_TEXT, true, false);
}

/* Every arena's report, with vmem__list_lock held (it keeps them alive). */
static void leak_report_all_locked(int fd, int flags, bool env_json)
{
	for (vmem_t *a = vmem__list_head; a != NULL; a = a->vm_next) {
		imp_set_t imp = {0};

		imported_by_children(a, &imp);
		(void)leak_report_one(a, &imp, fd, flags, env_json, false);
		free(imp.start);
	}
}

int vmem__dbg_leak_report(vmem_t *vmp, int fd, int flags)
{
	imp_set_t imp = {0};

	pthread_mutex_lock(&vmem__list_lock);
	if (vmp == NULL) {
		leak_report_all_locked(fd, flags, false);
		pthread_mutex_unlock(&vmem__list_lock);
		return 0;
	}
	imported_by_children(vmp, &imp);
	pthread_mutex_unlock(&vmem__list_lock);
	(void)leak_report_one(vmp, &imp, fd, flags, false, true);
	free(imp.start);
	return 0;
}

/* VMEM_LEAK_CHECK=1: report every arena's outstanding segments at exit. */
static void leak_check_at_exit(void)
{
	pthread_mutex_lock(&vmem__list_lock);
	leak_report_all_locked(STDERR_FILENO, VMEM_REPORT_TEXT, true);
	pthread_mutex_unlock(&vmem__list_lock);
}

__attribute__((constructor)) static void report_init(void)
{
	const char *v = getenv("VMEM_LEAK_CHECK");

	if (v != NULL && *v != '\0' && *v != '0')
		atexit(leak_check_at_exit);
}
