/*
 * kinds.h - the one table of item kinds the mount shows: which folder
 * classes appear, what their files are called and what content they hold.
 *
 *   kind       folder class prefix   file                          content
 *   mail       IPF.Note (or none)    "YYYY-MM-DD HHMM Subject.eml" RFC 5322, as sent
 *   calendar   IPF.Appointment       "YYYY-MM-DD HHMM Subject.ics" iCalendar (ical_normalize)
 *   contacts   IPF.Contact           "Name.vcf"                    vCard 3.0 (vcard_parse/write)
 *
 * A folder's kind follows its class; an item's kind is its folder's.
 * Calendars and contacts are shown only when the mount asks for them
 * (--pim) and are read-only for now (writes fail with EROFS).  The
 * content normaliser runs in the core's fetch (cache/fetch.c) on the
 * bytes a backend's fetch_mime gives, before they enter the body store,
 * so every backend (EWS, ActiveSync, MAPI/HTTP) shares it.
 */
#ifndef EXCHANGEFS_KINDS_H
#define EXCHANGEFS_KINDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;

enum item_kind { KIND_MAIL, KIND_CALENDAR, KIND_CONTACTS };

struct kind_info {
	enum item_kind kind;
	const char *name;          /* "mail", "calendar", "contacts" */
	const char *class_prefix;  /* folder class, e.g. "IPF.Appointment" */
	const char *ext;           /* ".eml", ".ics", ".vcf" */
	bool dated;                /* the file name starts with the date */
	bool pim;                  /* shown only with --pim; read-only */
	/* The bytes a backend sent -> the file's bytes (owned, *outlen), or
	 * NULL with a one-line reason in err.  NULL for mail: kept as sent. */
	char *(*normalise)(const char *data, size_t len, const char *fallback_uid,
			   size_t *outlen, char *err, size_t errlen);
};

/* The kind of a folder class (NULL or "" is mail); NULL for classes the
 * mount does not show (tasks, notes, journal, ...). */
const struct kind_info *kind_of_class(const char *folder_class);

/* The kind of an item, from its parent folder's class (mail if unknown). */
const struct kind_info *kind_of_item(struct cache *c, uint64_t ino);
/* The kind of a folder node (mail if unknown). */
const struct kind_info *kind_of_folder(struct cache *c, uint64_t ino);

/* Whether a folder of this class is shown, calendars and contacts only
 * when pim is on. */
bool kind_folder_visible(const char *folder_class, bool pim);

/* Show calendars and contacts (--pim), or not: also for the folders the
 * cache already holds.  0 or a database error. */
int cache_set_pim(struct cache *c, bool on);

/* One line saying why a kind is not writable. */
#define KIND_READ_ONLY_MSG "calendars and contacts are read-only in this version"

#endif
