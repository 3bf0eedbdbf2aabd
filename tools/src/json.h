/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A small streaming JSON writer for kheapctl's --json output.
 *
 * The writer keeps one "first element?" flag per nesting level, so callers
 * never think about commas.  Inside an object every value takes a key;
 * inside an array (or at the top) the key must be NULL.  Strings are
 * escaped per RFC 8259 and invalid UTF-8 becomes U+FFFD, so the output is
 * valid JSON whatever bytes the caller hands in.
 */
#ifndef KHEAPCTL_JSON_H
#define KHEAPCTL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json {
	FILE *out;
	int depth;
	bool first[JSON_MAX_DEPTH];
};

void json_init(struct json *j, FILE *out);
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_string(struct json *j, const char *key, const char *value);
void json_string_n(struct json *j, const char *key, const void *bytes, size_t len);
void json_u64(struct json *j, const char *key, uint64_t value);
void json_i64(struct json *j, const char *key, int64_t value);
void json_bool(struct json *j, const char *key, bool value);
void json_null(struct json *j, const char *key);
/* Ends the document with a newline and flushes. */
void json_finish(struct json *j);

#endif
