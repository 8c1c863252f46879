/*
 * The tests' snapshot builder (see vsnap_build.h).  Failures to allocate
 * abort: a test cannot go on without its input.
 */
#include "vsnap_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t recsize[VSNAP_SEC_MAX + 1] = {0,
                                                    sizeof(vsnap_arena_rec_t),
                                                    sizeof(vsnap_seg_rec_t),
                                                    sizeof(vsnap_qcache_rec_t),
                                                    0,
                                                    sizeof(vsnap_txrec_t),
                                                    0,
                                                    sizeof(vsnap_region_rec_t),
                                                    sizeof(uint64_t),
                                                    0};

static void reserve(vsb_t *b, size_t n)
{
	if (b->cap - b->len >= n)
		return;
	while (b->cap - b->len < n)
		b->cap = b->cap != 0 ? 2 * b->cap : 4096;
	b->buf = realloc(b->buf, b->cap);
	if (b->buf == NULL) {
		fprintf(stderr, "vsnap_build: out of memory\n");
		abort();
	}
}

static void append(vsb_t *b, const void *p, size_t n)
{
	reserve(b, n);
	if (p != NULL)
		memcpy(b->buf + b->len, p, n);
	else
		memset(b->buf + b->len, 0, n);
	b->len += n;
}

void vsb_init(vsb_t *b, uint32_t flags)
{
	vsnap_file_header_t fh;
	const uint16_t probe = 1;

	/* Records are copied as host structs: only right on a little-endian host. */
	if (*(const uint8_t *)&probe != 1) {
		fprintf(stderr, "vsnap_build: needs a little-endian host\n");
		abort();
	}
	memset(b, 0, sizeof(*b));
	memset(&fh, 0, sizeof(fh));
	memcpy(fh.fh_magic, VSNAP_MAGIC, 8);
	fh.fh_version = VSNAP_VERSION;
	fh.fh_hdrsize = sizeof(fh);
	fh.fh_flags = flags;
	fh.fh_ptrsize = 8;
	fh.fh_pid = 4242;
	fh.fh_time_ns = 1700000000123456789ULL;
	append(b, &fh, sizeof(fh));
}

void vsb_free(vsb_t *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

void vsb_begin_raw(vsb_t *b, uint32_t type, uint32_t size)
{
	vsnap_section_header_t sh = {.sh_type = type, .sh_recsize = size};

	if (b->open != 0)
		vsb_end(b);
	b->open = b->len;
	b->count = 0;
	if (type <= VSNAP_SEC_MAX)
		b->hdr[type] = b->len;
	append(b, &sh, sizeof(sh));
	b->nsections++;
}

void vsb_begin(vsb_t *b, uint32_t type)
{
	vsb_begin_raw(b, type, type <= VSNAP_SEC_MAX ? recsize[type] : 0);
}

void vsb_rec(vsb_t *b, const void *rec, size_t n)
{
	append(b, rec, n);
	b->count++;
}

void vsb_bytes(vsb_t *b, const void *p, size_t n)
{
	append(b, p, n);
}

void vsb_end(vsb_t *b)
{
	vsnap_section_header_t sh;

	if (b->open == 0)
		return;
	memcpy(&sh, b->buf + b->open, sizeof(sh));
	sh.sh_count = b->count;
	sh.sh_bytes = b->len - b->open - sizeof(sh);
	memcpy(b->buf + b->open, &sh, sizeof(sh));
	b->open = 0;
}

void vsb_finish(vsb_t *b)
{
	vsb_begin(b, VSNAP_SEC_END);
	vsb_end(b);
	vsb_put32(b, offsetof(vsnap_file_header_t, fh_nsections), b->nsections);
}

void vsb_stack(vsb_t *b, uint32_t id, uint32_t depth, const uint64_t *pc)
{
	vsnap_stack_rec_t r = {id, depth};

	vsb_rec(b, &r, sizeof(r));
	append(b, pc, (size_t)depth * sizeof(uint64_t));
}

void vsb_object(vsb_t *b, const vsnap_object_rec_t *o, const char *path)
{
	size_t n = strlen(path), pad = (8 - n % 8) % 8;

	vsb_rec(b, o, sizeof(*o));
	append(b, path, n);
	append(b, NULL, pad);
}

size_t vsb_payload(const vsb_t *b, uint32_t type)
{
	return b->hdr[type] + sizeof(vsnap_section_header_t);
}

size_t vsb_rec_off(const vsb_t *b, uint32_t type, size_t i)
{
	return vsb_payload(b, type) + i * recsize[type];
}

void vsb_put8(vsb_t *b, size_t off, uint8_t v)
{
	b->buf[off] = v;
}

void vsb_put32(vsb_t *b, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b->buf[off + i] = (uint8_t)(v >> 8 * i);
}

void vsb_put64(vsb_t *b, size_t off, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b->buf[off + i] = (uint8_t)(v >> 8 * i);
}
