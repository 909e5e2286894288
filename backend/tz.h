/*
 * tz.h - time zones as Exchange names them, turned into the IANA names
 * khal, vdirsyncer and libical understand, and back.
 *
 *  - Windows zone ids ("W. Europe Standard Time"), which EWS puts in
 *    TZIDs, <-> IANA ids ("Europe/Berlin"), by CLDR's windowsZones
 *    mapping (through ICU; see tz.c for why).
 *  - ActiveSync's Timezone element (MS-ASDTYPE 2.6.4): a base64
 *    TIME_ZONE_INFORMATION of 172 bytes -> the IANA zone that best fits
 *    it, and an IANA zone -> that blob.
 *
 * Every function is thread-safe and allocates nothing the caller frees
 * unless it says so.
 */
#ifndef EXCHANGEFS_TZ_H
#define EXCHANGEFS_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* Longest zone id we hand out or take ("America/Argentina/ComodRivadavia"
 * is 32; Windows ids are shorter). */
#define TZ_NAME_MAX 64

/* "W. Europe Standard Time" -> "Europe/Berlin" (the CLDR "001" zone of
 * that Windows id, under its current tz database name: "India Standard
 * Time" -> "Asia/Kolkata", not CLDR's "Asia/Calcutta").  0, or -1 if the name is not a Windows zone id. */
int tz_windows_to_iana(const char *win, char out[TZ_NAME_MAX]);
/* "Europe/Paris" -> "Romance Standard Time".  0, or -1 if the zone is
 * unknown or has no Windows equivalent. */
int tz_iana_to_windows(const char *iana, char out[TZ_NAME_MAX]);
/* An IANA id or alias as today's tz database names it ("US/Eastern" ->
 * "America/New_York", "Asia/Calcutta" -> "Asia/Kolkata").  0, or -1 if
 * the tz database does not know it. */
int tz_canonical_iana(const char *name, char out[TZ_NAME_MAX]);
/* Whether name is a zone id of the tz database (as ICU knows it,
 * including links such as "US/Eastern"). */
bool tz_is_iana(const char *name);

/* A TIME_ZONE_INFORMATION (MS-ASDTYPE 2.6.4), decoded.  A SYSTEMTIME with
 * year 0 is a yearly rule: month, day of week (0 = Sunday), day = week of
 * the month (1-4, 5 = the last), hour, minute; month 0 = no transition. */
struct tz_systemtime {
	uint16_t year, month, dow, day, hour, minute, second, ms;
};
struct tz_info {
	int32_t bias;          /* minutes: UTC = local standard time + bias */
	int32_t std_bias;      /* added to bias in standard time (usually 0) */
	int32_t dst_bias;      /* added in daylight time (usually -60) */
	char std_name[100];    /* UTF-8, from 32 UTF-16 units */
	char dst_name[100];
	struct tz_systemtime std_date; /* daylight -> standard, local (DST) */
	struct tz_systemtime dst_date; /* standard -> daylight, local (std) */
};
#define TZ_EAS_BLOB_LEN 172

/* Decode the base64 Timezone element.  0, or -1 with a one-line reason in
 * err (bad base64, not 172 bytes, a field out of range). */
int tz_eas_decode(const char *b64, struct tz_info *tz, char *err,
		  size_t errlen);
/* Encode tz as the base64 Timezone element, appended to b: 0 or -1 (b's
 * cap). */
int tz_eas_encode(const struct tz_info *tz, struct buf *b);

/* The IANA zone that fits tz in the given year: the standard name when it
 * is a Windows zone id, otherwise the zone whose offsets and transitions
 * in that year are those of tz (preferring CLDR's main zone of a Windows
 * id, then the first by name), otherwise "UTC" for a zero offset without
 * daylight saving or "Etc/GMT-1"-style for whole hours.  0, or -1 when no
 * zone fits (a caller then keeps times in UTC). */
int tz_info_to_iana(const struct tz_info *tz, int year,
		    char out[TZ_NAME_MAX]);
/* The rules of an IANA zone in the given year as a TIME_ZONE_INFORMATION
 * (names: the Windows id, its "Daylight Time" twin; the IANA id if the
 * zone has no Windows id).  0, or -1 if the zone is unknown. */
int tz_iana_to_info(const char *iana, int year, struct tz_info *tz);

/* The day of the month (1-31) a yearly SYSTEMTIME rule falls on in year,
 * or its day if the rule is absolute (year != 0); 0 if st is invalid. */
int tz_rule_day(const struct tz_systemtime *st, int year);

#endif
