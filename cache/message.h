/*
 * message.h - the check a file must pass to be uploaded as a message: an
 * RFC 5322 header section (at least one well-formed field, folded lines
 * allowed, ended by an empty line or the end of the file).  Also reads the
 * Date field (RFC 5322 section 3.3, with the obsolete forms).  Pure
 * functions over bytes from the user: fuzzed (tests/fuzz/fuzz_message.c).
 */
#ifndef EXCHANGEFS_MESSAGE_H
#define EXCHANGEFS_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How much of a file the check reads: a header section longer than this
 * is refused. */
#define MESSAGE_HEADER_MAX ((size_t)1 << 20)

/* Check the header section at the start of data (len bytes; it may be just
 * the first MESSAGE_HEADER_MAX bytes of a longer file: complete says
 * whether data is the whole file).  Returns true if it is a message, with
 * *date the Date field as Unix seconds (0 if absent or unreadable);
 * otherwise false with one line in why. */
bool message_check(const char *data, size_t len, bool complete,
		   int64_t *date, char *why, size_t whylen);

/* Whether a file name is one that is uploaded as a message: "*.eml"
 * (any case), not hidden.  Other names (editor swap and backup files)
 * stay local. */
bool message_file_name(const char *name);

/* message_check() on the start of an open file (at most
 * MESSAGE_HEADER_MAX bytes read). */
bool message_check_fd(int fd, int64_t *date, char *why, size_t whylen);

/* Parse an RFC 5322 date-time ("Thu, 13 Feb 2025 10:30:00 +0100"); 0 on
 * failure. */
int64_t message_parse_date(const char *s, size_t len);

#endif
