/*
 * JSON output for --json: a streaming writer that places the commas, so the
 * commands can emit values as they walk the model without building a tree.
 * Addresses are written as "0x..." strings because JSON numbers are only
 * exact up to 2^53 in most readers; sizes and counts are numbers.
 */
#include "vmemdb.h"

#include <inttypes.h>
#include <math.h>

void vj_init(vdb_json_t *j, FILE *fp)
{
	j->fp = fp;
	j->depth = 0;
	j->need_comma[0] = false;
	j->after_key = false;
}

/* Before any value: a comma if this container already has an element. */
static void vj_sep(vdb_json_t *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->need_comma[j->depth])
		fputc(',', j->fp);
	j->need_comma[j->depth] = true;
}

static void vj_open(vdb_json_t *j, int ch)
{
	vj_sep(j);
	fputc(ch, j->fp);
	if (j->depth < 63)
		j->depth++;
	j->need_comma[j->depth] = false;
}

static void vj_close(vdb_json_t *j, int ch)
{
	if (j->depth > 0)
		j->depth--;
	fputc(ch, j->fp);
}

void vj_obj(vdb_json_t *j)
{
	vj_open(j, '{');
}

void vj_obj_end(vdb_json_t *j)
{
	vj_close(j, '}');
}

void vj_arr(vdb_json_t *j)
{
	vj_open(j, '[');
}

void vj_arr_end(vdb_json_t *j)
{
	vj_close(j, ']');
}

static void vj_quoted(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", fp);
			break;
		case '\\':
			fputs("\\\\", fp);
			break;
		case '\n':
			fputs("\\n", fp);
			break;
		case '\t':
			fputs("\\t", fp);
			break;
		default:
			if (*p < 0x20)
				fprintf(fp, "\\u%04x", *p);
			else
				fputc(*p, fp);
		}
	}
	fputc('"', fp);
}

void vj_key(vdb_json_t *j, const char *key)
{
	vj_sep(j);
	vj_quoted(j->fp, key);
	fputc(':', j->fp);
	j->after_key = true;
}

void vj_str(vdb_json_t *j, const char *s)
{
	vj_sep(j);
	if (s == NULL)
		fputs("null", j->fp);
	else
		vj_quoted(j->fp, s);
}

void vj_u64(vdb_json_t *j, uint64_t v)
{
	vj_sep(j);
	fprintf(j->fp, "%" PRIu64, v);
}

void vj_i64(vdb_json_t *j, int64_t v)
{
	vj_sep(j);
	fprintf(j->fp, "%" PRId64, v);
}

void vj_dbl(vdb_json_t *j, double v)
{
	vj_sep(j);
	if (isfinite(v))
		fprintf(j->fp, "%.6g", v);
	else
		fputs("null", j->fp);
}

void vj_addr(vdb_json_t *j, uint64_t v)
{
	vj_sep(j);
	fprintf(j->fp, "\"0x%" PRIx64 "\"", v);
}

void vj_bool(vdb_json_t *j, bool v)
{
	vj_sep(j);
	fputs(v ? "true" : "false", j->fp);
}

void vj_null(vdb_json_t *j)
{
	vj_sep(j);
	fputs("null", j->fp);
}

void vj_end(vdb_json_t *j)
{
	fputc('\n', j->fp);
	j->depth = 0;
	j->need_comma[0] = false;
	j->after_key = false;
}

void vj_kstr(vdb_json_t *j, const char *k, const char *v)
{
	vj_key(j, k);
	vj_str(j, v);
}

void vj_ku64(vdb_json_t *j, const char *k, uint64_t v)
{
	vj_key(j, k);
	vj_u64(j, v);
}

void vj_kaddr(vdb_json_t *j, const char *k, uint64_t v)
{
	vj_key(j, k);
	vj_addr(j, v);
}

void vj_kbool(vdb_json_t *j, const char *k, bool v)
{
	vj_key(j, k);
	vj_bool(j, v);
}
