/*
 * Shared helpers for the cmocka tests.  cmocka.h must come after the libc
 * headers (it redefines malloc & co. under UNIT_TESTING).
 */
#ifndef VMEM_TESTUTIL_H
#define VMEM_TESTUTIL_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vmem.h>

#include "vmem_impl.h"

#include <cmocka.h>

/* Fail the test, naming the broken invariant, if the arena is inconsistent. */
#define assert_arena_ok(vmp)                                                                       \
	do {                                                                                       \
		const char *why_ = NULL;                                                           \
		if (!vmem__verify((vmp), &why_))                                                   \
			fail_msg("arena '%s' inconsistent: %s", vmem_name(vmp), why_);             \
	} while (0)

/* Errors captured by capture_errors(). */
typedef struct captured {
	int n;
	vmem_error_kind_t kind[16];
	uintptr_t addr[16];
	size_t size[16];
	size_t seg_size[16];
	uint64_t count[16];
	uint64_t bytes[16];
	char msg[16][512];
} captured_t;

static void capture_handler(const vmem_error_info_t *info, void *arg)
{
	captured_t *c = arg;
	int i = c->n < 16 ? c->n : 15;

	c->kind[i] = info->ve_kind;
	c->addr[i] = info->ve_addr;
	c->size[i] = info->ve_size;
	c->seg_size[i] = info->ve_seg_size;
	c->count[i] = info->ve_count;
	c->bytes[i] = info->ve_bytes;
	snprintf(c->msg[i], sizeof(c->msg[i]), "%s", info->ve_message);
	c->n++;
}

/* Report-and-continue with a handler that records each report in *c. */
static inline void capture_errors(captured_t *c)
{
	memset(c, 0, sizeof(*c));
	vmem_set_error_policy(VMEM_ERRORS_CONTINUE);
	vmem_set_error_handler(capture_handler, c);
}

static inline void release_errors(void)
{
	vmem_set_error_handler(NULL, NULL);
	vmem_set_error_policy(VMEM_ERRORS_ABORT);
}

/*
 * Run fn(arg) in a child process with stderr captured; returns the child's
 * wait status and puts what it wrote to stderr in buf.
 */
static inline int run_child(void (*fn)(void *), void *arg, char *buf, size_t buflen)
{
	int fds[2], status = 0;
	size_t got = 0;
	pid_t pid;

	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		fn(arg);
		_exit(0);
	}
	close(fds[1]);
	for (;;) {
		ssize_t n = read(fds[0], buf + got, buflen - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == buflen - 1)
			break;
	}
	buf[got] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	return status;
}

#define assert_aborted(status) assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)

#endif /* VMEM_TESTUTIL_H */
