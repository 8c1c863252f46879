/*
 * Reporting misuse: bad frees, leaks at destroy, fatal VM_PANIC failures.
 *
 * Policy (documented in vmem.h and the README):
 *   - every report goes to the handler (default: one line on stderr,
 *     prefixed "libvmem: ", plus whatever the debug layer adds);
 *   - VMEM_ERR_LEAK is a warning and never aborts;
 *   - VMEM_ERR_PANIC always aborts;
 *   - the other kinds abort under VMEM_ERRORS_ABORT (the default) and return
 *     to the caller, which then changes nothing, under VMEM_ERRORS_CONTINUE.
 * Reports are formatted on the stack and written with write(2): nothing
 * here calls malloc, so it works inside a malloc or a dying process.
 */
#include "vmem_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../debug/debug.h"

static const char *const kind_names[VMEM_ERR_NKINDS] = {
    [VMEM_ERR_BAD_FREE] = "bad free",
    [VMEM_ERR_DOUBLE_FREE] = "double free",
    [VMEM_ERR_INTERIOR_FREE] = "free of an address inside a segment",
    [VMEM_ERR_SIZE_MISMATCH] = "size mismatch",
    [VMEM_ERR_WRONG_ARENA] = "free to the wrong arena",
    [VMEM_ERR_FREE_XALLOC] = "vmem_free of a vmem_xalloc segment",
    [VMEM_ERR_XFREE_CACHED] = "vmem_xfree of a quantum-cached segment",
    [VMEM_ERR_DESTROY_BUSY] = "destroy of an arena with importers",
    [VMEM_ERR_LEAK] = "leak",
    [VMEM_ERR_PANIC] = "mandatory allocation failed",
};

static pthread_once_t policy_once = PTHREAD_ONCE_INIT;
static _Atomic int policy = VMEM_ERRORS_ABORT;
static _Atomic uint64_t error_count;
/* Reports by kind (the root points here, for debuggers). */
_Atomic uint64_t vmem__error_kind_counts[VMEM_ERR_NKINDS];
static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static vmem_error_handler_t *handler;
static void *handler_arg;

static void policy_from_env(void)
{
	const char *v = getenv("VMEM_ERROR_POLICY");

	if (v == NULL || *v == '\0')
		return;
	if (strcasecmp(v, "continue") == 0)
		atomic_store(&policy, VMEM_ERRORS_CONTINUE);
	else if (strcasecmp(v, "abort") == 0)
		atomic_store(&policy, VMEM_ERRORS_ABORT);
	else /* say so: a misspelt "continue" would otherwise abort silently */
		vmem__write_line("VMEM_ERROR_POLICY: expected 'abort' or 'continue'; errors abort");
}

int vmem_set_error_policy(int p)
{
	if (p != VMEM_ERRORS_ABORT && p != VMEM_ERRORS_CONTINUE) {
		errno = EINVAL;
		return -1;
	}
	pthread_once(&policy_once, policy_from_env);
	return atomic_exchange(&policy, p);
}

int vmem_get_error_policy(void)
{
	pthread_once(&policy_once, policy_from_env);
	return atomic_load(&policy);
}

void vmem_set_error_handler(vmem_error_handler_t *h, void *arg)
{
	pthread_mutex_lock(&handler_lock);
	handler = h;
	handler_arg = arg;
	pthread_mutex_unlock(&handler_lock);
}

uint64_t vmem_error_count(void)
{
	return atomic_load(&error_count);
}

uint64_t vmem_error_count_kind(vmem_error_kind_t kind)
{
	if (kind <= 0 || kind >= VMEM_ERR_NKINDS)
		return 0;
	return atomic_load(&vmem__error_kind_counts[kind]);
}

/* ---- the debug library's controls (ENOTSUP in the fast library) ---- */

int vmem_debug_enabled(void)
{
	return vmem_debug;
}

int vmem_debug_set_log_size(size_t entries)
{
	return vmem__dbg_set_log_size(entries);
}

int vmem_debug_set_stack_depth(int depth)
{
	return vmem__dbg_set_stack_depth(depth);
}

int vmem_debug_leak_report(vmem_t *vmp, int fd, int flags)
{
	if (flags & ~VMEM_REPORT_JSON) {
		errno = EINVAL;
		return -1;
	}
	return vmem__dbg_leak_report(vmp, fd, flags);
}

/* Write all of buf to stderr, retrying short writes. */
static void write_stderr(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

void vmem__write_line(const char *msg)
{
	char buf[1200];
	int n = snprintf(buf, sizeof(buf), "libvmem: %s\n", msg);

	write_stderr(buf, n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void vmem__report(vmem_error_info_t *info, const char *fmt, ...)
{
	char msg[1024];
	vmem_error_handler_t *h;
	void *harg;
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	info->ve_message = msg;
	if (vmem_debug && info->ve_kind != VMEM_ERR_LEAK)
		vmem__dbg_current_stack(info); /* frees have theirs already */
	if (info->ve_kind > 0 && info->ve_kind < VMEM_ERR_NKINDS)
		info->ve_kind_name = kind_names[info->ve_kind];
	if (info->ve_kind != VMEM_ERR_LEAK)
		atomic_fetch_add(&error_count, 1);
	if (info->ve_kind > 0 && info->ve_kind < VMEM_ERR_NKINDS)
		atomic_fetch_add(&vmem__error_kind_counts[info->ve_kind], 1);

	pthread_mutex_lock(&handler_lock);
	h = handler;
	harg = handler_arg;
	pthread_mutex_unlock(&handler_lock);
	if (h != NULL) {
		h(info, harg);
	} else {
		vmem__write_line(msg);
		if (vmem_debug)
			vmem__dbg_report_detail(info);
	}
	if (info->ve_kind == VMEM_ERR_PANIC ||
	    (info->ve_kind != VMEM_ERR_LEAK && vmem_get_error_policy() == VMEM_ERRORS_ABORT)) {
		if (vmem_debug)
			vmem__dbg_before_abort(info);
		vmem__snapshot_on_fatal();
		abort();
	}
	errno = saved;
}

void vmem__panic(const char *fmt, ...)
{
	vmem_error_info_t info = {.ve_kind = VMEM_ERR_PANIC, .ve_func = "vmem"};
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vmem__report(&info, "%s", msg);
	abort(); /* not reached: VMEM_ERR_PANIC always aborts */
}
