/*
 * eas_pim.h - ActiveSync's Calendar, Contacts and Tasks classes (the
 * ApplicationData of a Sync, MS-ASCAL, MS-ASCNTC, MS-ASTASK) converted
 * to and from the files of the mount: iCalendar (VEVENT, VTODO) and
 * vCard.  Lossless for what both sides carry; docs/architecture.md ("The
 * content layer") lists what is not carried.
 *
 * Reading: the decoded ApplicationData element (a wbxml tree) -> text
 * (owned by the caller, free()), normalised by ical_normalize() or
 * written by vcard_write(); server_id gives the UID when the item has
 * none.  Writing: text a user wrote -> the children of ApplicationData,
 * encoded into e for a Sync Add or Change; the caller writes the
 * ApplicationData element around them.  local_zone (an IANA id, NULL =
 * UTC) is the zone of all-day events and floating times, which
 * ActiveSync stores as UTC instants.  Each returns NULL or -1 with a
 * one-line reason in err (EINVAL for a user's file).
 */
#ifndef EXCHANGEFS_EAS_PIM_H
#define EXCHANGEFS_EAS_PIM_H

#include <stddef.h>

#include "backend/eas/wbxml.h"

char *eas_calendar_to_ical(const struct wbxml_node *appdata,
			   const char *server_id, const char *local_zone,
			   size_t *len, char *err, size_t errlen);
int eas_ical_to_calendar(const char *ical, size_t len, const char *local_zone,
			 struct wbxml_enc *e, char *err, size_t errlen);

char *eas_task_to_ical(const struct wbxml_node *appdata,
		       const char *server_id, const char *local_zone,
		       size_t *len, char *err, size_t errlen);
int eas_ical_to_task(const char *ical, size_t len, const char *local_zone,
		     struct wbxml_enc *e, char *err, size_t errlen);

/* version: 30 or 40, what vcard_write() writes. */
char *eas_contact_to_vcard(const struct wbxml_node *appdata,
			   const char *server_id, int version, size_t *len,
			   char *err, size_t errlen);
int eas_vcard_to_contact(const char *vcf, size_t len, struct wbxml_enc *e,
			 char *err, size_t errlen);

#endif
