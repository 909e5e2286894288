/*
 * fuzz_message.c - libFuzzer target for the upload check (cache/message.c):
 * any bytes a user writes into a .eml file are checked without a crash, a
 * read outside the buffer, or a refusal without a reason.
 */
#include "cache/message.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so ASan sees any read past the end */
	char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	char why[160] = "";
	int64_t date = 0;
	bool complete = size == 0 || (data[0] & 1);
	if (!message_check(copy, size, complete, &date, why, sizeof(why)) &&
	    !why[0])
		abort();
	message_parse_date(copy, size);
	free(copy);
	return 0;
}
