/*
 * utf8.c - UTF-8 validation and repair (see utf8.h).
 */
#include "backend/utf8.h"

#include <stdint.h>
#include <string.h>

#include "backend/util.h"

/* Length of the valid sequence at p (1-4), or 0 if it is bad. */
static size_t seq_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	if (c >= 0x01 && c < 0x80)
		return 1;
	size_t len;
	unsigned min;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4; min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	unsigned cp = c & (0x3f >> (len - 1));
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t utf8_valid_prefix(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t l = seq_len(p + i, n - i);
		if (!l)
			return i;
		i += l;
	}
	return n;
}

char *utf8_repair(const char *s, size_t n, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)s;
	/* each bad byte grows to 3 */
	char *out = xmalloc(n > (SIZE_MAX - 1) / 3 ? SIZE_MAX : n * 3 + 1);
	size_t i = 0, o = 0;
	while (i < n) {
		size_t l = seq_len(p + i, n - i);
		if (l) {
			memcpy(out + o, p + i, l);
			o += l;
			i += l;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	out[o] = 0;
	if (outlen)
		*outlen = o;
	return out;
}
