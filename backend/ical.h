/*
 * ical.h - iCalendar items as the mount shows them: one VCALENDAR per
 * file that khal, vdirsyncer and todoman read (a vdir item), made from
 * what a server sends, and the checks on what a user writes.  Parsing is
 * libical's; this layer adds the caps, the time zones and the shape.
 *
 * The shape of a normalised item: VERSION and PRODID, then one VTIMEZONE
 * per zone used (IANA TZID, libical's definition from the tz database),
 * then one master component and its exceptions (RECURRENCE-ID, sorted),
 * all with the same UID.  No METHOD (a file is not an iTIP message), no
 * libical error properties.  The same input gives the same bytes.
 */
#ifndef EXCHANGEFS_ICAL_H
#define EXCHANGEFS_ICAL_H

#include <stddef.h>

/* The caps on one item, named once. */
#define ICAL_MAX_BYTES (4u << 20)   /* the item's text */
#define ICAL_MAX_LINES 20000        /* content lines (after unfolding) */
#define ICAL_MAX_COMPONENTS 1000    /* BEGIN: lines (master, exceptions,
				       alarms, time zones and theirs) */
#define ICAL_MAX_DEPTH 6            /* VCALENDAR/VEVENT/VALARM is 3 */
#define ICAL_MAX_ZONES 32           /* distinct TZIDs */

enum ical_kind {
	ICAL_KIND_EVENT,   /* VEVENT: a calendar collection */
	ICAL_KIND_TODO,    /* VTODO: a task list */
	ICAL_KIND_ANY,     /* either (normalise keeps what the item has) */
};

/* Normalise an item from a server (see above).  fallback_uid (derived by
 * the caller from the server's item id; may be NULL) is used when the
 * item has no UID.  Invalid UTF-8 becomes U+FFFD; lines libical cannot
 * read are dropped; components with another UID than the first are
 * dropped.  Returns the text (owned by the caller, free()) and its length
 * in *outlen, or NULL with a one-line reason in err: over a cap, not
 * iCalendar, no event or task, no UID and no fallback. */
char *ical_normalize(const char *data, size_t len, const char *fallback_uid,
		     size_t *outlen, char *err, size_t errlen);

/* Check an item a user wrote into a collection of the given kind: valid
 * UTF-8 within the caps, parses without errors, a VCALENDAR holding only
 * time zones and components of that kind, exactly one UID among them, no
 * duplicate master or RECURRENCE-ID, a DTSTART in each VEVENT, every
 * TZID defined or known.  0, or -1 with a one-line reason in err (for
 * close() to fail with EINVAL). */
int ical_validate(const char *data, size_t len, enum ical_kind kind,
		  char *err, size_t errlen);

#endif
