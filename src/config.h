/*
 * Build configuration as constants, so that debug and non-debug builds share
 * one source: code says `if (vmem_debug)` and the compiler drops the branch
 * in the fast library.  VMEM_DEBUG is set by the build (0 for libvmem, 1 for
 * libvmem-debug); this is the only place it is tested with #if.
 */
#ifndef VMEM_CONFIG_H
#define VMEM_CONFIG_H

#include <stdbool.h>

#ifndef VMEM_DEBUG
#define VMEM_DEBUG 0
#endif

__attribute__((unused)) static const bool vmem_debug = VMEM_DEBUG;

/* Built under ThreadSanitizer: use fences it understands (qcache.h). */
#if defined(__SANITIZE_THREAD__)
#define VMEM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VMEM_TSAN 1
#endif
#endif
#ifndef VMEM_TSAN
#define VMEM_TSAN 0
#endif

#endif /* VMEM_CONFIG_H */
