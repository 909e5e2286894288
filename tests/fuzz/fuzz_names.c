/*
 * fuzz_names.c - libFuzzer target for the naming contract: any subject or
 * folder name a server sends must become a safe file name (at most 255
 * bytes, valid UTF-8, no '/', no control characters, no leading dot) and
 * folder names must map back to the server's name when they were valid.
 */
#include "cache/names.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool safe(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255 || s[0] == '.' || strchr(s, '/'))
		return false;
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		if (*p < 0x20 || *p == 0x7f)
			return false;
		int len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 :
			  (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		if (!len)
			return false;
		for (int i = 1; i < len; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += len;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 9)
		return 0;
	int64_t t;
	memcpy(&t, data, sizeof(t));
	unsigned n = data[8] % 12;
	char *s = malloc(size - 9 + 1);
	memcpy(s, data + 9, size - 9);
	s[size - 9] = 0;
	char *m = names_message(t, s, n);
	if (!safe(m) || strcmp(m + strlen(m) - 4, ".eml"))
		abort();
	char *f = names_folder(s, n);
	if (!safe(f))
		abort();
	char *back = names_folder_to_server(f);
	free(back);
	free(m);
	free(f);
	free(s);
	return 0;
}
