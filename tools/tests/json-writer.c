// SPDX-License-Identifier: GPL-2.0-only
/*
 * json-writer: emit a document with kheapctl's JSON writer (src/json.c)
 * full of awkward values, for json-writer-check.sh to parse back.
 */
#include <stdint.h>

#include "../src/json.h"

int main(void)
{
	static const char bad_utf8[] = "a\xff" "b\xc3" "c\xe2\x82" "d\xed\xa0\x80" "e";
	static const char nul_inside[] = { 'x', '\0', 'y' };
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_string(&j, "quote", "say \"hi\" \\ bye");
	json_string(&j, "controls", "tab\tnl\ncr\rbs\bff\fbell\x07" "del\x7f");
	json_string(&j, "utf8", "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80");
	json_string(&j, "bad_utf8", bad_utf8);
	json_string_n(&j, "nul", nul_inside, sizeof(nul_inside));
	json_string(&j, "key \"with\" quotes", "v");
	json_string(&j, "null_string", NULL);
	json_u64(&j, "u64_max", UINT64_MAX);
	json_i64(&j, "i64_min", INT64_MIN);
	json_bool(&j, "t", true);
	json_bool(&j, "f", false);
	json_null(&j, "n");
	json_object_begin(&j, "empty_object");
	json_object_end(&j);
	json_array_begin(&j, "empty_array");
	json_array_end(&j);
	json_array_begin(&j, "nested");
	for (int i = 0; i < 3; i++) {
		json_object_begin(&j, NULL);
		json_u64(&j, "i", (uint64_t)i);
		json_array_begin(&j, "deep");
		json_array_begin(&j, NULL);
		json_u64(&j, NULL, (uint64_t)i * 10);
		json_array_end(&j);
		json_array_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
	return 0;
}
