/*
 * utf8.h - UTF-8 checks for text that comes from servers and users (the
 * iCalendar and vCard layers): where the first bad byte is, and a copy
 * with every bad sequence replaced by U+FFFD.  NUL counts as bad (these
 * texts become C strings).
 */
#ifndef EXCHANGEFS_UTF8_H
#define EXCHANGEFS_UTF8_H

#include <stddef.h>

/* Length of the longest valid prefix of p (n if all of it is valid).
 * Overlong forms, surrogates and code points above U+10FFFF are bad. */
size_t utf8_valid_prefix(const char *p, size_t n);
/* A NUL-terminated copy of p (owned by the caller, xmalloc'd) with each
 * bad byte replaced by U+FFFD; *outlen gets its length if not NULL. */
char *utf8_repair(const char *p, size_t n, size_t *outlen);

#endif
