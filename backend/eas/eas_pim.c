/*
 * eas_pim.c - ActiveSync Calendar and Tasks <-> iCalendar (see
 * eas_pim.h); contacts are in eas_pim_contact.c.  Reading writes plain
 * iCalendar text (TZIDs are IANA names) and lets ical_normalize() give it
 * its final shape; writing reads the user's file with libical.
 *
 * Mapping (MS-ASCAL, MS-ASTASK; RFC 5545):
 *   Timezone blob        -> the event's zone (tz.c), TZID on every time
 *   StartTime/EndTime    -> DTSTART/DTEND (DATE when AllDayEvent=1)
 *   Subject, Location    -> SUMMARY, LOCATION; Body type 1 -> DESCRIPTION,
 *                           type 2 -> X-ALT-DESC;FMTTYPE=text/html
 *   Recurrence Type 0-6  -> RRULE DAILY, WEEKLY, MONTHLY (BYMONTHDAY or
 *                           BYDAY=nXX / BYSETPOS), YEARLY (same + BYMONTH)
 *   Exceptions           -> EXDATE (Deleted) or a VEVENT with RECURRENCE-ID
 *   Attendees, Organizer -> ATTENDEE (CN, PARTSTAT, ROLE/CUTYPE), ORGANIZER
 *   Reminder (minutes)   -> VALARM TRIGGER:-PTnM
 *   BusyStatus           -> TRANSP and X-MICROSOFT-CDO-BUSYSTATUS
 *   Sensitivity 0-3      -> CLASS PUBLIC, X-PERSONAL, PRIVATE, CONFIDENTIAL
 *   Tasks: Complete/DateCompleted -> STATUS/COMPLETED, Importance 0-2 ->
 *   PRIORITY 9/5/1, StartDate/DueDate -> DTSTART/DUE (dates),
 *   ReminderTime -> VALARM at that time.
 */
#include "backend/eas/eas_pim.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libical/ical.h>

#include "backend/ical.h"
#include "backend/tz.h"
#include "backend/util.h"

/* ---- Small helpers ---- */

static const char *txt(const struct wbxml_node *n, unsigned tag)
{
	const char *t = n ? wbxml_child_text(n, tag) : NULL;
	return t && *t ? t : NULL;
}

/* An iCalendar TEXT value, escaped (folding is ical_normalize's). */
static void put_escaped(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == ';' || *s == ',') {
			buf_append(b, "\\", 1);
			buf_append(b, s, 1);
		} else if (*s == '\n') {
			buf_puts(b, "\\n");
		} else if (*s != '\r' && ((unsigned char)*s >= 0x20 || *s == '\t')) {
			buf_append(b, s, 1);
		}
	}
}

static void put_prop(struct buf *b, const char *name, const char *text)
{
	if (!text)
		return;
	buf_puts(b, name);
	buf_puts(b, ":");
	put_escaped(b, text);
	buf_puts(b, "\r\n");
}

/* A parameter value: no quotes, controls or line breaks; quoted. */
static void put_param(struct buf *b, const char *name, const char *v)
{
	buf_printf(b, ";%s=\"", name);
	for (; *v; v++)
		if (*v != '"' && (unsigned char)*v >= 0x20)
			buf_append(b, v, 1);
	buf_puts(b, "\"");
}

/* "20240108T080000Z" (Calendar) or "2024-01-08T08:00:00.000Z" (Tasks,
 * Contacts) -> a UTC time; null time if neither. */
static struct icaltimetype parse_utc(const char *s)
{
	int y, mo, d, h = 0, mi = 0, se = 0;
	char z = 0;
	struct icaltimetype t = icaltime_null_time();
	if (!s)
		return t;
	if (sscanf(s, "%4d%2d%2dT%2d%2d%2d%c", &y, &mo, &d, &h, &mi, &se, &z) == 7 &&
	    z == 'Z') {
		/* compact */
	} else if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &se) == 6) {
		/* dashed */
	} else {
		return t;
	}
	if (y < 1601 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h > 23 || mi > 59 || se > 60)
		return t;
	t.year = y; t.month = mo; t.day = d;
	t.hour = h; t.minute = mi; t.second = se;
	t.zone = icaltimezone_get_utc_timezone();
	return t;
}

static icaltimezone *zone_of(const char *iana)
{
	if (!iana || !strcmp(iana, "Etc/UTC") || !strcmp(iana, "UTC"))
		return icaltimezone_get_utc_timezone();
	icaltimezone *z = icaltimezone_get_builtin_timezone(iana);
	return z ? z : icaltimezone_get_utc_timezone();
}

static bool is_utc_zone(icaltimezone *z)
{
	return z == icaltimezone_get_utc_timezone();
}

/* NAME;TZID=zone:local, NAME:utcZ or NAME;VALUE=DATE:date. */
static void put_time(struct buf *b, const char *name, struct icaltimetype utc,
		     icaltimezone *z, const char *zname, bool date)
{
	struct icaltimetype t = icaltime_convert_to_zone(utc, z);
	if (date) {
		buf_printf(b, "%s;VALUE=DATE:%04d%02d%02d\r\n", name, t.year,
			   t.month, t.day);
	} else if (is_utc_zone(z)) {
		buf_printf(b, "%s:%04d%02d%02dT%02d%02d%02dZ\r\n", name, t.year,
			   t.month, t.day, t.hour, t.minute, t.second);
	} else {
		buf_printf(b, "%s;TZID=%s:%04d%02d%02dT%02d%02d%02d\r\n", name,
			   zname, t.year, t.month, t.day, t.hour, t.minute,
			   t.second);
	}
}

static void compact_utc(struct icaltimetype t, char out[20])
{
	t = icaltime_convert_to_zone(t, icaltimezone_get_utc_timezone());
	snprintf(out, 20, "%04d%02d%02dT%02d%02d%02dZ", t.year, t.month, t.day,
		 t.hour, t.minute, t.second);
}

static void dashed_utc(struct icaltimetype t, char out[32])
{
	t = icaltime_convert_to_zone(t, icaltimezone_get_utc_timezone());
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.000Z", t.year, t.month,
		 t.day, t.hour, t.minute, t.second);
}

/* ---- Recurrence (the same elements on both pages) ---- */

struct rec_tags { unsigned rec, type, until, occ, interval, dow, dom, wom, moy; };
static const struct rec_tags cal_rec = {
	WB_CAL_RECURRENCE, WB_CAL_TYPE, WB_CAL_UNTIL, WB_CAL_OCCURRENCES,
	WB_CAL_INTERVAL, WB_CAL_DAY_OF_WEEK, WB_CAL_DAY_OF_MONTH,
	WB_CAL_WEEK_OF_MONTH, WB_CAL_MONTH_OF_YEAR,
};
static const struct rec_tags task_rec = {
	WB_TK_RECURRENCE, WB_TK_TYPE, WB_TK_UNTIL, WB_TK_OCCURRENCES,
	WB_TK_INTERVAL, WB_TK_DAY_OF_WEEK, WB_TK_DAY_OF_MONTH,
	WB_TK_WEEK_OF_MONTH, WB_TK_MONTH_OF_YEAR,
};
static const char *const wd[7] = { "SU", "MO", "TU", "WE", "TH", "FR", "SA" };

static void put_days(struct buf *b, unsigned mask, int pos)
{
	bool first = true;
	for (int i = 0; i < 7; i++)
		if (mask & (1u << i)) {
			if (pos)
				buf_printf(b, "%s%d%s", first ? "" : ",", pos, wd[i]);
			else
				buf_printf(b, "%s%s", first ? "" : ",", wd[i]);
			first = false;
		}
}

static long num(const struct wbxml_node *n, unsigned tag, long dflt)
{
	const char *t = txt(n, tag);
	char *end;
	if (!t)
		return dflt;
	long v = strtol(t, &end, 10);
	return *end || v < 0 || v > 1000000 ? dflt : v;
}

/* RRULE from a Recurrence element; -1 if it makes no sense. */
static int put_rrule(struct buf *b, const struct wbxml_node *r,
		     const struct rec_tags *k, icaltimezone *z, bool date)
{
	long type = num(r, k->type, -1), dow = num(r, k->dow, 0),
	     dom = num(r, k->dom, 0), wom = num(r, k->wom, 0),
	     moy = num(r, k->moy, 0);
	int pos = wom == 5 ? -1 : (int)wom;
	bool one_day = dow && !(dow & (dow - 1));
	if (dow > 127 || wom > 5 || dom > 31 || moy > 12)
		return -1;
	static const char *const freq[] = { "DAILY", "WEEKLY", "MONTHLY",
		"MONTHLY", NULL, "YEARLY", "YEARLY" };
	if (type < 0 || type > 6 || !freq[type])
		return -1;
	buf_printf(b, "RRULE:FREQ=%s", freq[type]);
	if (txt(r, k->interval))
		buf_printf(b, ";INTERVAL=%ld", num(r, k->interval, 1));
	if (txt(r, k->occ))
		buf_printf(b, ";COUNT=%ld", num(r, k->occ, 1));
	struct icaltimetype u = parse_utc(txt(r, k->until));
	if (!icaltime_is_null_time(u)) {
		if (date) {
			struct icaltimetype l = icaltime_convert_to_zone(u, z);
			buf_printf(b, ";UNTIL=%04d%02d%02d", l.year, l.month, l.day);
		} else {
			char s[20];
			compact_utc(u, s);
			buf_printf(b, ";UNTIL=%s", s);
		}
	}
	switch (type) {
	case 0: case 1:
		if (dow) {
			buf_puts(b, ";BYDAY=");
			put_days(b, (unsigned)dow, 0);
		}
		break;
	case 2: case 5:
		if (!dom || (type == 5 && !moy))
			return -1;
		if (type == 5)
			buf_printf(b, ";BYMONTH=%ld", moy);
		buf_printf(b, ";BYMONTHDAY=%ld", dom);
		break;
	case 3: case 6:
		if (!dow || !pos || (type == 6 && !moy))
			return -1;
		if (type == 6)
			buf_printf(b, ";BYMONTH=%ld", moy);
		buf_puts(b, ";BYDAY=");
		put_days(b, (unsigned)dow, one_day ? pos : 0);
		if (!one_day)
			buf_printf(b, ";BYSETPOS=%d", pos);
		break;
	}
	buf_puts(b, "\r\n");
	return 0;
}

static void enc_num(struct wbxml_enc *e, unsigned tag, long v)
{
	wbxml_uint(e, tag, (unsigned long)v);
}

/* A Recurrence element from an RRULE; -1 with err if ActiveSync cannot
 * say it. */
static int enc_rrule(struct wbxml_enc *e, icalproperty *p,
		     struct icaltimetype start, const struct rec_tags *k,
		     const char *local_zone, bool task, char *err,
		     size_t errlen)
{
	struct icalrecurrencetype r = icalproperty_get_rrule(p);
	unsigned dow = 0;
	int pos = 0;
	for (int i = 0; i < ICAL_BY_DAY_SIZE &&
			r.by_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++) {
		int d = (int)icalrecurrencetype_day_day_of_week(r.by_day[i]) - 1;
		int ps = icalrecurrencetype_day_position(r.by_day[i]);
		if (d < 0 || d > 6 || (ps && pos && ps != pos) || ps < -1 || ps > 4) {
			snprintf(err, errlen,
				 "RRULE BYDAY has no ActiveSync equivalent");
			return -1;
		}
		dow |= 1u << d;
		if (ps)
			pos = ps;
	}
	if (r.by_set_pos[0] != ICAL_RECURRENCE_ARRAY_MAX) {
		if (pos || r.by_set_pos[1] != ICAL_RECURRENCE_ARRAY_MAX ||
		    r.by_set_pos[0] < -1 || r.by_set_pos[0] > 4 || !r.by_set_pos[0]) {
			snprintf(err, errlen,
				 "RRULE BYSETPOS has no ActiveSync equivalent");
			return -1;
		}
		pos = r.by_set_pos[0];
	}
	if (r.by_month_day[0] != ICAL_RECURRENCE_ARRAY_MAX &&
	    (r.by_month_day[1] != ICAL_RECURRENCE_ARRAY_MAX ||
	     r.by_month_day[0] < 1)) {
		snprintf(err, errlen, "RRULE BYMONTHDAY has no ActiveSync equivalent");
		return -1;
	}
	if (r.by_month[0] != ICAL_RECURRENCE_ARRAY_MAX &&
	    r.by_month[1] != ICAL_RECURRENCE_ARRAY_MAX) {
		snprintf(err, errlen, "RRULE BYMONTH has no ActiveSync equivalent");
		return -1;
	}
	int dom = r.by_month_day[0] != ICAL_RECURRENCE_ARRAY_MAX ?
		  r.by_month_day[0] : start.day;
	int moy = r.by_month[0] != ICAL_RECURRENCE_ARRAY_MAX ?
		  r.by_month[0] : start.month;
	int type;
	switch (r.freq) {
	case ICAL_DAILY_RECURRENCE: type = 0; break;
	case ICAL_WEEKLY_RECURRENCE:
		type = 1;
		if (!dow)
			dow = 1u << (icaltime_day_of_week(start) - 1);
		break;
	case ICAL_MONTHLY_RECURRENCE: type = dow ? 3 : 2; break;
	case ICAL_YEARLY_RECURRENCE: type = dow ? 6 : 5; break;
	default:
		snprintf(err, errlen, "RRULE FREQ=%s has no ActiveSync equivalent",
			 icalrecur_freq_to_string(r.freq));
		return -1;
	}
	if ((type == 3 || type == 6) && !pos) {
		snprintf(err, errlen, "RRULE BYDAY without a position in a month");
		return -1;
	}
	wbxml_start(e, k->rec);
	enc_num(e, k->type, type);
	if (task) {
		char s[32];
		dashed_utc(start, s);
		wbxml_str(e, WB_TK_START, s);
	}
	if (!icaltime_is_null_time(r.until)) {
		struct icaltimetype u = r.until;
		if (u.is_date) {
			u.is_date = 0;
			u.hour = u.minute = u.second = 0;
			u.zone = zone_of(local_zone);
		}
		char s[32];
		if (task)
			dashed_utc(u, s);
		else
			compact_utc(u, s);
		wbxml_str(e, k->until, s);
	}
	if (r.count)
		enc_num(e, k->occ, r.count);
	enc_num(e, k->interval, r.interval > 0 ? r.interval : 1);
	if (type == 2 || type == 5)
		enc_num(e, k->dom, dom);
	if (dow)
		enc_num(e, k->dow, dow);
	if (type == 3 || type == 6)
		enc_num(e, k->wom, pos == -1 ? 5 : pos);
	if (type == 5 || type == 6)
		enc_num(e, k->moy, moy);
	wbxml_end(e);
	return 0;
}

/* ---- Calendar -> iCalendar ---- */

static const char *body_text(const struct wbxml_node *n, unsigned legacy,
			     int *type)
{
	const struct wbxml_node *body = wbxml_child(n, WB_ASB_BODY);
	*type = 1;
	if (body) {
		const char *t = txt(body, WB_ASB_TYPE);
		*type = t ? atoi(t) : 1;
		return txt(body, WB_ASB_DATA);
	}
	return legacy ? txt(n, legacy) : NULL;
}

static void put_body(struct buf *b, const struct wbxml_node *n,
		     unsigned legacy)
{
	int type;
	const char *t = body_text(n, legacy, &type);
	if (!t)
		return;
	if (type == 2) {
		buf_puts(b, "X-ALT-DESC;FMTTYPE=text/html:");
		put_escaped(b, t);
		buf_puts(b, "\r\n");
	} else {
		put_prop(b, "DESCRIPTION", t);
	}
}

static void put_categories(struct buf *b, const struct wbxml_node *n,
			   unsigned cats, unsigned cat)
{
	const struct wbxml_node *c = wbxml_child(n, cats);
	for (const struct wbxml_node *x = wbxml_child(c, cat); x;
	     x = wbxml_next(x))
		if (x->text && *x->text)
			put_prop(b, "CATEGORIES", x->text);
}

static void put_class(struct buf *b, const char *sens)
{
	static const char *const cls[] = { "PUBLIC", "X-PERSONAL", "PRIVATE",
					   "CONFIDENTIAL" };
	if (sens && sens[0] >= '0' && sens[0] <= '3' && !sens[1])
		buf_printf(b, "CLASS:%s\r\n", cls[sens[0] - '0']);
}

static const char *const busy_names[] = { "FREE", "TENTATIVE", "BUSY", "OOF",
					  "WORKINGELSEWHERE" };

/* The fields an exception may change, taken from ex, else from master. */
static const char *pick(const struct wbxml_node *ex,
			const struct wbxml_node *master, unsigned tag)
{
	const char *t = ex ? txt(ex, tag) : NULL;
	return t ? t : txt(master, tag);
}

static void put_event_fields(struct buf *b, const struct wbxml_node *ex,
			     const struct wbxml_node *master,
			     icaltimezone *z, const char *zname)
{
	const char *ad = pick(ex, master, WB_CAL_ALL_DAY_EVENT);
	bool allday = ad && !strcmp(ad, "1");
	struct icaltimetype st = parse_utc(pick(ex, master, WB_CAL_START_TIME));
	struct icaltimetype en = parse_utc(pick(ex, master, WB_CAL_END_TIME));
	struct icaltimetype ds = parse_utc(pick(ex, master, WB_CAL_DTSTAMP));
	if (!icaltime_is_null_time(ds)) {
		char s[20];
		compact_utc(ds, s);
		buf_printf(b, "DTSTAMP:%s\r\n", s);
	}
	if (!icaltime_is_null_time(st))
		put_time(b, "DTSTART", st, z, zname, allday);
	if (!icaltime_is_null_time(en))
		put_time(b, "DTEND", en, z, zname, allday);
	put_prop(b, "SUMMARY", pick(ex, master, WB_CAL_SUBJECT));
	put_prop(b, "LOCATION", pick(ex, master, WB_CAL_LOCATION));
	put_body(b, ex && (wbxml_child(ex, WB_ASB_BODY) || txt(ex, WB_CAL_BODY))
		 ? ex : master, WB_CAL_BODY);
	put_class(b, pick(ex, master, WB_CAL_SENSITIVITY));
	const char *busy = pick(ex, master, WB_CAL_BUSY_STATUS);
	if (busy && busy[0] >= '0' && busy[0] <= '4' && !busy[1]) {
		buf_printf(b, "TRANSP:%s\r\n", busy[0] == '0' ? "TRANSPARENT" : "OPAQUE");
		buf_printf(b, "X-MICROSOFT-CDO-BUSYSTATUS:%s\r\n",
			   busy_names[busy[0] - '0']);
	}
	put_categories(b, ex && wbxml_child(ex, WB_CAL_CATEGORIES) ? ex : master,
		       WB_CAL_CATEGORIES, WB_CAL_CATEGORY);
	const char *on = txt(master, WB_CAL_ORGANIZER_NAME);
	const char *oe = txt(master, WB_CAL_ORGANIZER_EMAIL);
	if (oe) {
		buf_puts(b, "ORGANIZER");
		if (on)
			put_param(b, "CN", on);
		buf_puts(b, ":mailto:");
		put_escaped(b, oe);
		buf_puts(b, "\r\n");
	}
	const struct wbxml_node *atts = wbxml_child(
		ex && wbxml_child(ex, WB_CAL_ATTENDEES) ? ex : master,
		WB_CAL_ATTENDEES);
	for (const struct wbxml_node *a = wbxml_child(atts, WB_CAL_ATTENDEE); a;
	     a = wbxml_next(a)) {
		static const char *const ps[] = { NULL, NULL, "TENTATIVE",
			"ACCEPTED", "DECLINED", "NEEDS-ACTION" };
		const char *em = txt(a, WB_CAL_EMAIL), *nm = txt(a, WB_CAL_NAME);
		long stt = num(a, WB_CAL_ATTENDEE_STATUS, 0);
		long typ = num(a, WB_CAL_ATTENDEE_TYPE, 0);
		if (!em)
			continue;
		buf_puts(b, "ATTENDEE");
		if (nm)
			put_param(b, "CN", nm);
		if (stt >= 0 && stt <= 5 && ps[stt])
			buf_printf(b, ";PARTSTAT=%s", ps[stt]);
		if (typ == 1)
			buf_puts(b, ";ROLE=REQ-PARTICIPANT");
		else if (typ == 2)
			buf_puts(b, ";ROLE=OPT-PARTICIPANT");
		else if (typ == 3)
			buf_puts(b, ";CUTYPE=RESOURCE");
		buf_puts(b, ":mailto:");
		put_escaped(b, em);
		buf_puts(b, "\r\n");
	}
	const char *rem = pick(ex, master, WB_CAL_REMINDER);
	if (rem && num(ex && txt(ex, WB_CAL_REMINDER) ? ex : master,
		       WB_CAL_REMINDER, -1) >= 0)
		buf_printf(b, "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\n"
			   "TRIGGER:-PT%ldM\r\nEND:VALARM\r\n",
			   num(ex && txt(ex, WB_CAL_REMINDER) ? ex : master,
			       WB_CAL_REMINDER, 0));
}

/* The zone of an item: its Timezone blob, else local_zone, else UTC. */
static void item_zone(const struct wbxml_node *n, unsigned tztag,
		      const char *start, const char *local_zone,
		      char zname[TZ_NAME_MAX])
{
	struct tz_info tz;
	char err[128];
	struct icaltimetype st = parse_utc(start);
	int year = icaltime_is_null_time(st) ? 2024 : st.year;
	if (tztag && !tz_eas_decode(txt(n, tztag), &tz, err, sizeof(err)) &&
	    !tz_info_to_iana(&tz, year, zname) &&
	    icaltimezone_get_builtin_timezone(zname))
		return;
	snprintf(zname, TZ_NAME_MAX, "%s", local_zone ? local_zone : "Etc/UTC");
}

char *eas_calendar_to_ical(const struct wbxml_node *ad, const char *server_id,
			   const char *local_zone, size_t *len, char *err,
			   size_t errlen)
{
	char zname[TZ_NAME_MAX];
	item_zone(ad, WB_CAL_TIMEZONE, txt(ad, WB_CAL_START_TIME), local_zone,
		  zname);
	icaltimezone *z = zone_of(zname);
	const char *uid = txt(ad, WB_CAL_UID);
	const char *adv = txt(ad, WB_CAL_ALL_DAY_EVENT);
	bool allday = adv && !strcmp(adv, "1");
	struct buf b;
	buf_init(&b, ICAL_MAX_BYTES);
	buf_puts(&b, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//exchangefs//EN\r\n"
		 "BEGIN:VEVENT\r\n");
	put_prop(&b, "UID", uid ? uid : server_id);
	put_event_fields(&b, NULL, ad, z, zname);
	const struct wbxml_node *rec = wbxml_child(ad, WB_CAL_RECURRENCE);
	if (rec && put_rrule(&b, rec, &cal_rec, z, allday)) {
		snprintf(err, errlen, "Recurrence that makes no sense");
		buf_free(&b);
		return NULL;
	}
	const struct wbxml_node *exs = wbxml_child(ad, WB_CAL_EXCEPTIONS);
	for (const struct wbxml_node *x = wbxml_child(exs, WB_CAL_EXCEPTION); x;
	     x = wbxml_next(x)) {
		const char *del = txt(x, WB_CAL_DELETED);
		struct icaltimetype orig = parse_utc(txt(x, WB_CAL_EXCEPTION_START_TIME));
		if (del && !strcmp(del, "1") && !icaltime_is_null_time(orig))
			put_time(&b, "EXDATE", orig, z, zname, allday);
	}
	buf_puts(&b, "END:VEVENT\r\n");
	for (const struct wbxml_node *x = wbxml_child(exs, WB_CAL_EXCEPTION); x;
	     x = wbxml_next(x)) {
		const char *del = txt(x, WB_CAL_DELETED);
		struct icaltimetype orig = parse_utc(txt(x, WB_CAL_EXCEPTION_START_TIME));
		if ((del && !strcmp(del, "1")) || icaltime_is_null_time(orig))
			continue;
		buf_puts(&b, "BEGIN:VEVENT\r\n");
		put_prop(&b, "UID", uid ? uid : server_id);
		put_time(&b, "RECURRENCE-ID", orig, z, zname, allday);
		put_event_fields(&b, x, ad, z, zname);
		buf_puts(&b, "END:VEVENT\r\n");
	}
	buf_puts(&b, "END:VCALENDAR\r\n");
	char *out = ical_normalize(b.data, b.len, server_id, len, err, errlen);
	buf_free(&b);
	return out;
}

/* ---- iCalendar -> Calendar ---- */

/* A time property as UTC, with the zone it was written in (IANA). */
static struct icaltimetype prop_utc(icalcomponent *root, icalproperty *p,
				    const char *local_zone, bool *is_date,
				    char zname[TZ_NAME_MAX])
{
	struct icaltimetype t = icaltime_null_time();
	icalvalue *v = p ? icalproperty_get_value(p) : NULL;
	if (zname)
		snprintf(zname, TZ_NAME_MAX, "%s", local_zone ? local_zone : "Etc/UTC");
	if (!v || (icalvalue_isa(v) != ICAL_DATETIME_VALUE &&
		   icalvalue_isa(v) != ICAL_DATE_VALUE))
		return t;
	t = icalvalue_get_datetime(v);
	if (is_date)
		*is_date = t.is_date;
	if (t.is_date) {
		t.is_date = 0;
		t.hour = t.minute = t.second = 0;
		t.zone = zone_of(local_zone);
	} else if (!icaltime_is_utc(t)) {
		icalparameter *par = icalproperty_get_first_parameter(p,
			ICAL_TZID_PARAMETER);
		const char *tzid = par ? icalparameter_get_tzid(par) : NULL;
		char iana[TZ_NAME_MAX];
		icaltimezone *z = NULL;
		if (tzid && (!tz_canonical_iana(tzid, iana) ||
			     !tz_windows_to_iana(tzid, iana))) {
			z = icaltimezone_get_builtin_timezone(iana);
			if (z && zname)
				snprintf(zname, TZ_NAME_MAX, "%s", iana);
		}
		if (!z && tzid)
			z = icalcomponent_get_timezone(root, tzid);
		t.zone = z ? z : zone_of(local_zone);
	} else if (zname) {
		snprintf(zname, TZ_NAME_MAX, "Etc/UTC");
	}
	return icaltime_convert_to_zone(t, icaltimezone_get_utc_timezone());
}

static void enc_time(struct wbxml_enc *e, unsigned tag, struct icaltimetype t)
{
	char s[20];
	if (icaltime_is_null_time(t))
		return;
	compact_utc(t, s);
	wbxml_str(e, tag, s);
}

static const char *xprop(icalcomponent *c, const char *name)
{
	for (icalproperty *p = icalcomponent_get_first_property(c, ICAL_X_PROPERTY);
	     p; p = icalcomponent_get_next_property(c, ICAL_X_PROPERTY)) {
		const char *n = icalproperty_get_x_name(p);
		if (n && !strcasecmp(n, name))
			return icalproperty_get_x(p);
	}
	return NULL;
}

static const char *str_prop(icalcomponent *c, icalproperty_kind k)
{
	icalproperty *p = icalcomponent_get_first_property(c, k);
	const char *s = p ? icalproperty_get_value_as_string(p) : NULL;
	return s && *s ? s : NULL;
}

static void enc_body(struct wbxml_enc *e, icalcomponent *c)
{
	icalproperty *d = icalcomponent_get_first_property(c,
		ICAL_DESCRIPTION_PROPERTY);
	const char *html = xprop(c, "X-ALT-DESC");
	const char *t = d ? icalproperty_get_description(d) : NULL;
	if (!t && !html)
		return;
	wbxml_start(e, WB_ASB_BODY);
	wbxml_uint(e, WB_ASB_TYPE, t ? 1 : 2);
	wbxml_str(e, WB_ASB_DATA, t ? t : html);
	wbxml_end(e);
}

static int sensitivity(icalcomponent *c)
{
	icalproperty *p = icalcomponent_get_first_property(c, ICAL_CLASS_PROPERTY);
	if (!p)
		return -1;
	const char *s = icalproperty_get_value_as_string(p);
	if (!s)
		return -1;
	if (!strcasecmp(s, "PUBLIC")) return 0;
	if (!strcasecmp(s, "X-PERSONAL")) return 1;
	if (!strcasecmp(s, "PRIVATE")) return 2;
	if (!strcasecmp(s, "CONFIDENTIAL")) return 3;
	return -1;
}

static int busy_status(icalcomponent *c)
{
	const char *x = xprop(c, "X-MICROSOFT-CDO-BUSYSTATUS");
	for (int i = 0; x && i < 5; i++)
		if (!strcasecmp(x, busy_names[i]))
			return i;
	icalproperty *p = icalcomponent_get_first_property(c, ICAL_TRANSP_PROPERTY);
	if (!p)
		return -1;
	return icalproperty_get_transp(p) == ICAL_TRANSP_TRANSPARENT ? 0 : 2;
}

static long reminder_minutes(icalcomponent *c)
{
	icalcomponent *a = icalcomponent_get_first_component(c,
		ICAL_VALARM_COMPONENT);
	icalproperty *t = a ? icalcomponent_get_first_property(a,
		ICAL_TRIGGER_PROPERTY) : NULL;
	if (!t)
		return -1;
	struct icaltriggertype tr = icalproperty_get_trigger(t);
	if (!icaltime_is_null_time(tr.time))
		return -1;
	int secs = icaldurationtype_as_int(tr.duration);
	return secs <= 0 ? -secs / 60 : -1;
}

/* The simple fields of a VEVENT as (tag, text), in the order written. */
#define EV_FIELDS 10
struct ev_fields { unsigned tag[EV_FIELDS]; char val[EV_FIELDS][40]; int n; };

static void ev_add(struct ev_fields *f, unsigned tag, const char *v)
{
	f->tag[f->n] = tag;
	snprintf(f->val[f->n], sizeof(f->val[0]), "%s", v);
	f->n++;
}

static void ev_simple(icalcomponent *root, icalcomponent *c,
		      const char *local_zone, struct ev_fields *f)
{
	bool date = false;
	char s[40];
	f->n = 0;
	struct icaltimetype st = prop_utc(root, icalcomponent_get_first_property(c,
		ICAL_DTSTART_PROPERTY), local_zone, &date, NULL);
	struct icaltimetype en = prop_utc(root, icalcomponent_get_first_property(c,
		ICAL_DTEND_PROPERTY), local_zone, NULL, NULL);
	if (icaltime_is_null_time(en) && !icaltime_is_null_time(st)) {
		icalproperty *d = icalcomponent_get_first_property(c,
			ICAL_DURATION_PROPERTY);
		en = d ? icaltime_add(st, icalproperty_get_duration(d)) : st;
		if (!d && date)
			icaltime_adjust(&en, 1, 0, 0, 0);
	}
	ev_add(f, WB_CAL_ALL_DAY_EVENT, date ? "1" : "0");
	int busy = busy_status(c);
	if (busy >= 0) {
		snprintf(s, sizeof(s), "%d", busy);
		ev_add(f, WB_CAL_BUSY_STATUS, s);
	}
	struct icaltimetype ds = prop_utc(root, icalcomponent_get_first_property(c,
		ICAL_DTSTAMP_PROPERTY), local_zone, NULL, NULL);
	if (!icaltime_is_null_time(ds)) {
		compact_utc(ds, s);
		ev_add(f, WB_CAL_DTSTAMP, s);
	}
	if (!icaltime_is_null_time(en)) {
		compact_utc(en, s);
		ev_add(f, WB_CAL_END_TIME, s);
	}
	long rem = reminder_minutes(c);
	if (rem >= 0) {
		snprintf(s, sizeof(s), "%ld", rem);
		ev_add(f, WB_CAL_REMINDER, s);
	}
	int sens = sensitivity(c);
	if (sens >= 0) {
		snprintf(s, sizeof(s), "%d", sens);
		ev_add(f, WB_CAL_SENSITIVITY, s);
	}
	if (!icaltime_is_null_time(st)) {
		compact_utc(st, s);
		ev_add(f, WB_CAL_START_TIME, s);
	}
}

static const char *ev_get(const struct ev_fields *f, unsigned tag)
{
	for (int i = 0; i < f->n; i++)
		if (f->tag[i] == tag)
			return f->val[i];
	return NULL;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void enc_categories(struct wbxml_enc *e, icalcomponent *c,
			   unsigned cats, unsigned cat)
{
	icalproperty *p = icalcomponent_get_first_property(c,
		ICAL_CATEGORIES_PROPERTY);
	if (!p)
		return;
	wbxml_start(e, cats);
	for (; p; p = icalcomponent_get_next_property(c, ICAL_CATEGORIES_PROPERTY))
		wbxml_str(e, cat, icalproperty_get_categories(p));
	wbxml_end(e);
}

static const char *mailto(const char *v)
{
	return v && !strncasecmp(v, "mailto:", 7) ? v + 7 : v;
}

static void enc_attendees(struct wbxml_enc *e, icalcomponent *c)
{
	icalproperty *p = icalcomponent_get_first_property(c,
		ICAL_ATTENDEE_PROPERTY);
	if (!p)
		return;
	wbxml_start(e, WB_CAL_ATTENDEES);
	for (; p; p = icalcomponent_get_next_property(c, ICAL_ATTENDEE_PROPERTY)) {
		icalparameter *cn = icalproperty_get_first_parameter(p, ICAL_CN_PARAMETER);
		icalparameter *ps = icalproperty_get_first_parameter(p, ICAL_PARTSTAT_PARAMETER);
		icalparameter *ro = icalproperty_get_first_parameter(p, ICAL_ROLE_PARAMETER);
		icalparameter *cu = icalproperty_get_first_parameter(p, ICAL_CUTYPE_PARAMETER);
		wbxml_start(e, WB_CAL_ATTENDEE);
		wbxml_str(e, WB_CAL_EMAIL, mailto(icalproperty_get_attendee(p)));
		if (cn)
			wbxml_str(e, WB_CAL_NAME, icalparameter_get_cn(cn));
		if (ps) {
			int v = -1;
			switch (icalparameter_get_partstat(ps)) {
			case ICAL_PARTSTAT_TENTATIVE: v = 2; break;
			case ICAL_PARTSTAT_ACCEPTED: v = 3; break;
			case ICAL_PARTSTAT_DECLINED: v = 4; break;
			case ICAL_PARTSTAT_NEEDSACTION: v = 5; break;
			default: break;
			}
			if (v >= 0)
				wbxml_uint(e, WB_CAL_ATTENDEE_STATUS, (unsigned)v);
		}
		if (cu && (icalparameter_get_cutype(cu) == ICAL_CUTYPE_RESOURCE ||
			   icalparameter_get_cutype(cu) == ICAL_CUTYPE_ROOM))
			wbxml_uint(e, WB_CAL_ATTENDEE_TYPE, 3);
		else if (ro && icalparameter_get_role(ro) == ICAL_ROLE_OPTPARTICIPANT)
			wbxml_uint(e, WB_CAL_ATTENDEE_TYPE, 2);
		else if (ro)
			wbxml_uint(e, WB_CAL_ATTENDEE_TYPE, 1);
		wbxml_end(e);
	}
	wbxml_end(e);
}

/* Parse a user's item of the kind: root and its master (and the first
 * component if there is no master).  NULL with err. */
static icalcomponent *parse_user(const char *text, size_t len,
				 enum ical_kind kind, icalcomponent **master,
				 char *err, size_t errlen)
{
	if (ical_validate(text, len, kind, err, errlen))
		return NULL;
	char *s = xstrndup(text, len);
	icalcomponent *root = icalparser_parse_string(s);
	free(s);
	icalcomponent_kind k = kind == ICAL_KIND_TODO ? ICAL_VTODO_COMPONENT
						      : ICAL_VEVENT_COMPONENT;
	*master = NULL;
	for (icalcomponent *c = icalcomponent_get_first_component(root, k); c;
	     c = icalcomponent_get_next_component(root, k))
		if (!icalcomponent_get_first_property(c, ICAL_RECURRENCEID_PROPERTY))
			*master = c;
	if (!*master) {
		snprintf(err, errlen, "only exceptions, no master %s",
			 kind == ICAL_KIND_TODO ? "VTODO" : "VEVENT");
		icalcomponent_free(root);
		return NULL;
	}
	return root;
}

int eas_ical_to_calendar(const char *ical, size_t len, const char *local_zone,
			 struct wbxml_enc *e, char *err, size_t errlen)
{
	icalcomponent *m, *root = parse_user(ical, len, ICAL_KIND_EVENT, &m,
					     err, errlen);
	if (!root)
		return -1;
	char zname[TZ_NAME_MAX];
	bool date = false;
	struct icaltimetype st = prop_utc(root, icalcomponent_get_first_property(m,
		ICAL_DTSTART_PROPERTY), local_zone, &date, zname);
	struct tz_info tz;
	struct buf tzb;
	buf_init(&tzb, 1024);
	if (tz_iana_to_info(zname, st.year, &tz) || tz_eas_encode(&tz, &tzb)) {
		snprintf(err, errlen, "time zone %s unknown", zname);
		buf_free(&tzb);
		icalcomponent_free(root);
		return -1;
	}
	struct ev_fields f;
	ev_simple(root, m, local_zone, &f);
	wbxml_str(e, WB_CAL_TIMEZONE, tzb.data);
	buf_free(&tzb);
	/* the schema's order (MS-ASCAL 2.2.2) */
	wbxml_str(e, WB_CAL_ALL_DAY_EVENT, ev_get(&f, WB_CAL_ALL_DAY_EVENT));
	enc_body(e, m);
	if (ev_get(&f, WB_CAL_BUSY_STATUS))
		wbxml_str(e, WB_CAL_BUSY_STATUS, ev_get(&f, WB_CAL_BUSY_STATUS));
	icalproperty *org = icalcomponent_get_first_property(m, ICAL_ORGANIZER_PROPERTY);
	if (org) {
		icalparameter *cn = icalproperty_get_first_parameter(org, ICAL_CN_PARAMETER);
		if (cn)
			wbxml_str(e, WB_CAL_ORGANIZER_NAME, icalparameter_get_cn(cn));
		wbxml_str(e, WB_CAL_ORGANIZER_EMAIL,
			  mailto(icalproperty_get_organizer(org)));
	}
	static const unsigned order[] = { WB_CAL_DTSTAMP, WB_CAL_END_TIME };
	for (size_t i = 0; i < 2; i++)
		if (ev_get(&f, order[i]))
			wbxml_str(e, order[i], ev_get(&f, order[i]));
	if (str_prop(m, ICAL_LOCATION_PROPERTY))
		wbxml_str(e, WB_CAL_LOCATION, icalproperty_get_location(
			icalcomponent_get_first_property(m, ICAL_LOCATION_PROPERTY)));
	static const unsigned order2[] = { WB_CAL_REMINDER, WB_CAL_SENSITIVITY };
	for (size_t i = 0; i < 2; i++)
		if (ev_get(&f, order2[i]))
			wbxml_str(e, order2[i], ev_get(&f, order2[i]));
	if (str_prop(m, ICAL_SUMMARY_PROPERTY))
		wbxml_str(e, WB_CAL_SUBJECT, icalcomponent_get_summary(m));
	wbxml_str(e, WB_CAL_START_TIME, ev_get(&f, WB_CAL_START_TIME));
	wbxml_str(e, WB_CAL_UID, icalcomponent_get_uid(m));
	enc_attendees(e, m);
	enc_categories(e, m, WB_CAL_CATEGORIES, WB_CAL_CATEGORY);
	icalproperty *rr = icalcomponent_get_first_property(m, ICAL_RRULE_PROPERTY);
	struct icaltimetype lst = icaltime_convert_to_zone(st, zone_of(zname));
	if (rr && enc_rrule(e, rr, lst, &cal_rec, local_zone, false, err, errlen)) {
		icalcomponent_free(root);
		return -1;
	}
	/* Exceptions: EXDATEs, then the overridden instances with what they
	 * change. */
	icalproperty *ex = icalcomponent_get_first_property(m, ICAL_EXDATE_PROPERTY);
	icalcomponent *oc = icalcomponent_get_first_component(root,
		ICAL_VEVENT_COMPONENT);
	bool any = ex != NULL;
	for (icalcomponent *c = oc; c && !any;
	     c = icalcomponent_get_next_component(root, ICAL_VEVENT_COMPONENT))
		any = c != m;
	if (any) {
		wbxml_start(e, WB_CAL_EXCEPTIONS);
		for (; ex; ex = icalcomponent_get_next_property(m, ICAL_EXDATE_PROPERTY)) {
			wbxml_start(e, WB_CAL_EXCEPTION);
			wbxml_str(e, WB_CAL_DELETED, "1");
			enc_time(e, WB_CAL_EXCEPTION_START_TIME,
				 prop_utc(root, ex, local_zone, NULL, NULL));
			wbxml_end(e);
		}
		icalcompiter it = icalcomponent_begin_component(root,
			ICAL_VEVENT_COMPONENT);
		for (icalcomponent *c; (c = icalcompiter_deref(&it)) != NULL;
		     icalcompiter_next(&it)) {
			if (c == m)
				continue;
			struct ev_fields g;
			ev_simple(root, c, local_zone, &g);
			wbxml_start(e, WB_CAL_EXCEPTION);
			enc_time(e, WB_CAL_EXCEPTION_START_TIME, prop_utc(root,
				icalcomponent_get_first_property(c,
					ICAL_RECURRENCEID_PROPERTY),
				local_zone, NULL, NULL));
			for (int i = 0; i < g.n; i++)
				if (g.tag[i] == WB_CAL_START_TIME ||
				    g.tag[i] == WB_CAL_END_TIME ||
				    !same_str(g.val[i], ev_get(&f, g.tag[i])))
					wbxml_str(e, g.tag[i], g.val[i]);
			const char *s1 = str_prop(c, ICAL_SUMMARY_PROPERTY);
			const char *s0 = str_prop(m, ICAL_SUMMARY_PROPERTY);
			if (s1 && !same_str(s1, s0))
				wbxml_str(e, WB_CAL_SUBJECT, icalcomponent_get_summary(c));
			const char *l1 = str_prop(c, ICAL_LOCATION_PROPERTY);
			if (l1 && !same_str(l1, str_prop(m, ICAL_LOCATION_PROPERTY)))
				wbxml_str(e, WB_CAL_LOCATION, icalproperty_get_location(
					icalcomponent_get_first_property(c,
						ICAL_LOCATION_PROPERTY)));
			const char *d1 = str_prop(c, ICAL_DESCRIPTION_PROPERTY);
			if (d1 && !same_str(d1, str_prop(m, ICAL_DESCRIPTION_PROPERTY)))
				enc_body(e, c);
			wbxml_end(e);
		}
		wbxml_end(e);
	}
	icalcomponent_free(root);
	return 0;
}

/* ---- Tasks ---- */

/* "2024-03-10T00:00:00.000Z" (a task's local date) -> DATE. */
static void put_task_date(struct buf *b, const char *name, const char *v)
{
	struct icaltimetype t = parse_utc(v);
	if (!icaltime_is_null_time(t))
		buf_printf(b, "%s;VALUE=DATE:%04d%02d%02d\r\n", name, t.year,
			   t.month, t.day);
}

char *eas_task_to_ical(const struct wbxml_node *ad, const char *server_id,
		       const char *local_zone, size_t *len, char *err,
		       size_t errlen)
{
	struct buf b;
	buf_init(&b, ICAL_MAX_BYTES);
	buf_puts(&b, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//exchangefs//EN\r\n"
		 "BEGIN:VTODO\r\n");
	put_prop(&b, "UID", server_id);
	put_prop(&b, "SUMMARY", txt(ad, WB_TK_SUBJECT));
	put_body(&b, ad, WB_TK_BODY);
	const struct wbxml_node *rec = wbxml_child(ad, WB_TK_RECURRENCE);
	const char *start = txt(ad, WB_TK_START_DATE);
	put_task_date(&b, "DTSTART", start ? start : txt(rec, WB_TK_START));
	put_task_date(&b, "DUE", txt(ad, WB_TK_DUE_DATE));
	const char *c = txt(ad, WB_TK_COMPLETE);
	if (c) {
		bool done = !strcmp(c, "1");
		buf_printf(&b, "STATUS:%s\r\n", done ? "COMPLETED" : "NEEDS-ACTION");
		struct icaltimetype dc = parse_utc(txt(ad, WB_TK_DATE_COMPLETED));
		if (done && !icaltime_is_null_time(dc)) {
			char s[20];
			compact_utc(dc, s);
			buf_printf(&b, "COMPLETED:%s\r\n", s);
		}
	}
	long imp = num(ad, WB_TK_IMPORTANCE, -1);
	if (imp >= 0 && imp <= 2)
		buf_printf(&b, "PRIORITY:%d\r\n", imp == 0 ? 9 : imp == 1 ? 5 : 1);
	put_class(&b, txt(ad, WB_TK_SENSITIVITY));
	put_categories(&b, ad, WB_TK_CATEGORIES, WB_TK_CATEGORY);
	if (rec && put_rrule(&b, rec, &task_rec, zone_of(local_zone), true)) {
		snprintf(err, errlen, "Recurrence that makes no sense");
		buf_free(&b);
		return NULL;
	}
	const char *rs = txt(ad, WB_TK_REMINDER_SET);
	struct icaltimetype rt = parse_utc(txt(ad, WB_TK_REMINDER_TIME));
	if (rs && !strcmp(rs, "1") && !icaltime_is_null_time(rt)) {
		char s[20];
		compact_utc(rt, s);
		buf_printf(&b, "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\n"
			   "TRIGGER;VALUE=DATE-TIME:%s\r\nEND:VALARM\r\n", s);
	}
	buf_puts(&b, "END:VTODO\r\nEND:VCALENDAR\r\n");
	char *out = ical_normalize(b.data, b.len, server_id, len, err, errlen);
	buf_free(&b);
	return out;
}

/* A task date: DueDate/StartDate (the local date at midnight, written as
 * if UTC) and its Utc twin (that midnight in local_zone, in UTC). */
static void enc_task_date(struct wbxml_enc *e, unsigned tag, unsigned utc_tag,
			  icalproperty *p, const char *local_zone)
{
	icalvalue *v = p ? icalproperty_get_value(p) : NULL;
	if (!v || (icalvalue_isa(v) != ICAL_DATE_VALUE &&
		   icalvalue_isa(v) != ICAL_DATETIME_VALUE))
		return;
	struct icaltimetype t = icalvalue_get_datetime(v);
	char s[32];
	snprintf(s, sizeof(s), "%04d-%02d-%02dT00:00:00.000Z", t.year, t.month,
		 t.day);
	wbxml_str(e, tag, s);
	struct icaltimetype m = t;
	m.is_date = 0;
	m.hour = m.minute = m.second = 0;
	m.zone = zone_of(local_zone);
	dashed_utc(m, s);
	wbxml_str(e, utc_tag, s);
}

int eas_ical_to_task(const char *ical, size_t len, const char *local_zone,
		     struct wbxml_enc *e, char *err, size_t errlen)
{
	icalcomponent *m, *root = parse_user(ical, len, ICAL_KIND_TODO, &m,
					     err, errlen);
	if (!root)
		return -1;
	enc_body(e, m);
	enc_categories(e, m, WB_TK_CATEGORIES, WB_TK_CATEGORY);
	icalproperty *st = icalcomponent_get_first_property(m, ICAL_STATUS_PROPERTY);
	icalproperty *cp = icalcomponent_get_first_property(m, ICAL_COMPLETED_PROPERTY);
	bool done = (st && icalproperty_get_status(st) == ICAL_STATUS_COMPLETED) || cp;
	wbxml_uint(e, WB_TK_COMPLETE, done);
	if (done && cp) {
		char s[32];
		dashed_utc(icalproperty_get_completed(cp), s);
		wbxml_str(e, WB_TK_DATE_COMPLETED, s);
	}
	enc_task_date(e, WB_TK_DUE_DATE, WB_TK_UTC_DUE_DATE,
		      icalcomponent_get_first_property(m, ICAL_DUE_PROPERTY),
		      local_zone);
	icalproperty *pr = icalcomponent_get_first_property(m, ICAL_PRIORITY_PROPERTY);
	if (pr) {
		int p = icalproperty_get_priority(pr);
		if (p >= 1 && p <= 9)
			wbxml_uint(e, WB_TK_IMPORTANCE, p <= 4 ? 2 : p == 5 ? 1 : 0);
	}
	icalproperty *rr = icalcomponent_get_first_property(m, ICAL_RRULE_PROPERTY);
	icalproperty *ds = icalcomponent_get_first_property(m, ICAL_DTSTART_PROPERTY);
	if (rr) {
		struct icaltimetype s0 = ds ? icalproperty_get_dtstart(ds)
					    : icaltime_null_time();
		if (icaltime_is_null_time(s0)) {
			snprintf(err, errlen, "a repeating VTODO without DTSTART");
			icalcomponent_free(root);
			return -1;
		}
		struct icaltimetype sm = s0;
		sm.is_date = 0;
		sm.hour = sm.minute = sm.second = 0;
		sm.zone = icaltimezone_get_utc_timezone();
		if (enc_rrule(e, rr, sm, &task_rec, local_zone, true, err, errlen)) {
			icalcomponent_free(root);
			return -1;
		}
	}
	icalcomponent *al = icalcomponent_get_first_component(m, ICAL_VALARM_COMPONENT);
	icalproperty *tr = al ? icalcomponent_get_first_property(al,
		ICAL_TRIGGER_PROPERTY) : NULL;
	struct icaltriggertype t = tr ? icalproperty_get_trigger(tr)
				      : (struct icaltriggertype){ 0 };
	if (tr && !icaltime_is_null_time(t.time)) {
		char s[32];
		wbxml_uint(e, WB_TK_REMINDER_SET, 1);
		dashed_utc(t.time, s);
		wbxml_str(e, WB_TK_REMINDER_TIME, s);
	} else {
		wbxml_uint(e, WB_TK_REMINDER_SET, 0);
	}
	int sens = sensitivity(m);
	if (sens >= 0)
		wbxml_uint(e, WB_TK_SENSITIVITY, (unsigned)sens);
	enc_task_date(e, WB_TK_START_DATE, WB_TK_UTC_START_DATE, ds, local_zone);
	if (str_prop(m, ICAL_SUMMARY_PROPERTY))
		wbxml_str(e, WB_TK_SUBJECT, icalcomponent_get_summary(m));
	icalcomponent_free(root);
	return 0;
}
