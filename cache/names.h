/*
 * names.h - the naming contract: how server names and subjects become file
 * names on the mount.  Pure functions, no I/O; table-tested in
 * tests/unit/test_names.c.
 *
 * Message files: "YYYY-MM-DD HHMM Subject.eml" (local time of the first
 * sighting, stored once, never recomputed), collisions "Subject (2).eml".
 * Folders: the server's display name, with a reversible mapping of the
 * characters a file name cannot hold: '/' <-> U+2215 (DIVISION SLASH),
 * a leading '.' <-> U+FF0E (FULLWIDTH FULL STOP).  Every name: valid UTF-8
 * (invalid bytes become U+FFFD), no NUL or control characters, no leading
 * dot, at most NAME_MAX bytes, cut on a UTF-8 boundary.
 */
#ifndef EXCHANGEFS_NAMES_H
#define EXCHANGEFS_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAMES_MAX 255

/* File name of a message received at t (Unix seconds) with the given
 * subject (may be NULL); n >= 2 adds the collision suffix " (n)".
 * Returns an owned string of at most NAMES_MAX bytes. */
char *names_message(int64_t t, const char *subject, unsigned n);
/* The same for any kind of item (cache/kinds.h): extension ext (".ics"),
 * and the date first only when dated ("Name.vcf" for a contact). */
char *names_item(int64_t t, const char *subject, unsigned n, const char *ext,
		 bool dated);

/* File name of a folder; n >= 2 adds " (n)".  Owned. */
char *names_folder(const char *server_name, unsigned n);

/* Inverse of names_folder (for mkdir/rename later): owned. */
char *names_folder_to_server(const char *file_name);

/* A user's file name with the collision suffix " (n)" before its
 * extension (n >= 2), at most NAMES_MAX bytes.  Owned. */
char *names_suffixed(const char *name, unsigned n);

/* Copy at most max bytes of valid UTF-8 from s into a new string, replacing
 * invalid sequences with U+FFFD, control characters (C0, DEL, C1) with a
 * space, collapsing runs of white space and trimming both ends.  Owned. */
char *names_clean(const char *s, size_t max);

#endif
