/*
 * A snapshot builder for tests only: assembles snapshot files in memory,
 * section by section, so that tests can craft valid and hostile inputs for
 * the reader without the library's writer (src/snapshot.c).
 *
 * Records are the on-disk structs of src/vsnap.h copied as they are: the
 * tests run on little-endian hosts (vsb_init checks), where that is the
 * file's byte order.  Nothing here validates: a test may write sections
 * out of order, twice, with wrong counts, or no END at all.
 */
#ifndef VMEM_VSNAP_BUILD_H
#define VMEM_VSNAP_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "vsnap.h"

typedef struct vsb {
	uint8_t *buf;
	size_t len, cap;
	uint32_t nsections;            /* written into the file header by vsb_finish */
	size_t open;                   /* header offset of the open section, 0: none */
	uint64_t count;                /* records in the open section */
	size_t hdr[VSNAP_SEC_MAX + 1]; /* header offset of each section written (last one) */
} vsb_t;

/* A file header (magic, version 1, 64, flags, pointer size 8, pid, time). */
void vsb_init(vsb_t *b, uint32_t flags);
void vsb_free(vsb_t *b);

/* Open a section with the format's record size for its type, or any size. */
void vsb_begin(vsb_t *b, uint32_t type);
void vsb_begin_raw(vsb_t *b, uint32_t type, uint32_t recsize);
/* Append one record (counted) or raw bytes (not counted) to the open section. */
void vsb_rec(vsb_t *b, const void *rec, size_t n);
void vsb_bytes(vsb_t *b, const void *p, size_t n);
/* Close the open section: its header gets the count and the payload size. */
void vsb_end(vsb_t *b);
/* The END section, and the section count in the file header. */
void vsb_finish(vsb_t *b);

/* Variable-size records, padded as the format says. */
void vsb_stack(vsb_t *b, uint32_t id, uint32_t depth, const uint64_t *pc);
void vsb_object(vsb_t *b, const vsnap_object_rec_t *o, const char *path);

/* Offset of the payload of section `type` (the last one written of that type). */
size_t vsb_payload(const vsb_t *b, uint32_t type);
/* Offset of fixed-size record i of section `type`. */
size_t vsb_rec_off(const vsb_t *b, uint32_t type, size_t i);

/* Overwrite little-endian integers at an offset (for corrupting a built file). */
void vsb_put8(vsb_t *b, size_t off, uint8_t v);
void vsb_put32(vsb_t *b, size_t off, uint32_t v);
void vsb_put64(vsb_t *b, size_t off, uint64_t v);

#endif /* VMEM_VSNAP_BUILD_H */
