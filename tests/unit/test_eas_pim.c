/*
 * test_eas_pim.c - ActiveSync Calendar, Tasks and Contacts <-> iCalendar
 * and vCard (backend/eas/eas_pim.c, eas_pim_contact.c): each item goes
 * AirSync -> file -> AirSync and must come back equal (children compared
 * regardless of order), and the files must say what they should: a
 * recurring meeting with a deleted and a moved occurrence, an all-day
 * event, events in three time zones, a task with a due date, a contact
 * with a photo and non-ASCII names; plus rules ActiveSync cannot carry,
 * refused with a reason.
 */
#include "backend/eas/eas_pim.h"
#include "backend/ical.h"
#include "backend/tz.h"
#include "backend/util.h"
#include "backend/vcard.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

typedef void (*build_fn)(struct wbxml_enc *e, const void *arg);

/* <ApplicationData> with what build writes, as a tree (its document
 * node: ->child is ApplicationData). */
static struct wbxml_node *appdata(build_fn build, const void *arg)
{
	struct buf b;
	struct wbxml_enc e;
	char err[128];
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_APPLICATION_DATA);
	build(&e, arg);
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	struct wbxml_node *n = wbxml_parse(b.data, b.len, 1 << 22, 10000, err,
					   sizeof(err));
	buf_free(&b);
	return n;
}

/* Deep equality, children matched regardless of order. */
static bool same_tree(const struct wbxml_node *a, const struct wbxml_node *b)
{
	if (a->tag != b->tag)
		return false;
	if ((a->text == NULL) != (b->text == NULL) ||
	    (a->text && (a->len != b->len || memcmp(a->text, b->text, a->len))))
		return false;
	size_t na = 0, nb = 0;
	for (const struct wbxml_node *c = a->child; c; c = c->next)
		na++;
	for (const struct wbxml_node *c = b->child; c; c = c->next)
		nb++;
	if (na != nb)
		return false;
	bool used[256] = { false };
	if (nb > 256)
		return false;
	for (const struct wbxml_node *c = a->child; c; c = c->next) {
		size_t i = 0;
		bool found = false;
		for (const struct wbxml_node *d = b->child; d && !found;
		     d = d->next, i++)
			if (!used[i] && same_tree(c, d))
				found = used[i] = true;
		if (!found)
			return false;
	}
	return true;
}

static void dump(const char *what, const struct wbxml_node *n)
{
	struct buf b;
	buf_init(&b, 0);
	wbxml_dump(n, &b);
	printf("  %s: %s\n", what, b.data);
	buf_free(&b);
}

static void tz_blob(struct wbxml_enc *e, const char *zone)
{
	struct tz_info tz;
	struct buf b;
	buf_init(&b, 0);
	CHECK(tz_iana_to_info(zone, 2024, &tz) == 0);
	CHECK(tz_eas_encode(&tz, &b) == 0);
	wbxml_str(e, WB_CAL_TIMEZONE, b.data);
	buf_free(&b);
}

/* ---- Calendar ---- */

static void meeting(struct wbxml_enc *e, const void *arg)
{
	(void)arg;
	tz_blob(e, "Europe/Berlin");
	wbxml_str(e, WB_CAL_ALL_DAY_EVENT, "0");
	wbxml_start(e, WB_ASB_BODY);
	wbxml_str(e, WB_ASB_TYPE, "1");
	wbxml_str(e, WB_ASB_DATA, "Agenda:\nline 2, with; specials \\ here");
	wbxml_end(e);
	wbxml_str(e, WB_CAL_BUSY_STATUS, "1");
	wbxml_str(e, WB_CAL_ORGANIZER_NAME, "J\xc3\xb6rg M\xc3\xbcller");
	wbxml_str(e, WB_CAL_ORGANIZER_EMAIL, "joerg@example.org");
	wbxml_str(e, WB_CAL_DTSTAMP, "20240101T120000Z");
	wbxml_str(e, WB_CAL_END_TIME, "20240108T090000Z");
	wbxml_str(e, WB_CAL_LOCATION, "Room \"Ume\xc3\xa5\", 3rd floor");
	wbxml_str(e, WB_CAL_REMINDER, "15");
	wbxml_str(e, WB_CAL_SENSITIVITY, "2");
	wbxml_str(e, WB_CAL_SUBJECT, "Weekly sync \xe2\x9c\x93");
	wbxml_str(e, WB_CAL_START_TIME, "20240108T080000Z");
	wbxml_str(e, WB_CAL_UID, "040000008200E00074C5B7101A82E008");
	wbxml_start(e, WB_CAL_ATTENDEES);
	wbxml_start(e, WB_CAL_ATTENDEE);
	wbxml_str(e, WB_CAL_EMAIL, "ann@example.org");
	wbxml_str(e, WB_CAL_NAME, "Ann O'Neil");
	wbxml_str(e, WB_CAL_ATTENDEE_STATUS, "3");
	wbxml_str(e, WB_CAL_ATTENDEE_TYPE, "1");
	wbxml_end(e);
	wbxml_start(e, WB_CAL_ATTENDEE);
	wbxml_str(e, WB_CAL_EMAIL, "room@example.org");
	wbxml_str(e, WB_CAL_ATTENDEE_TYPE, "3");
	wbxml_end(e);
	wbxml_start(e, WB_CAL_ATTENDEE);
	wbxml_str(e, WB_CAL_EMAIL, "bob@example.org");
	wbxml_str(e, WB_CAL_ATTENDEE_STATUS, "4");
	wbxml_str(e, WB_CAL_ATTENDEE_TYPE, "2");
	wbxml_end(e);
	wbxml_end(e);
	wbxml_start(e, WB_CAL_CATEGORIES);
	wbxml_str(e, WB_CAL_CATEGORY, "Work");
	wbxml_str(e, WB_CAL_CATEGORY, "Blue category");
	wbxml_end(e);
	wbxml_start(e, WB_CAL_RECURRENCE);
	wbxml_str(e, WB_CAL_TYPE, "1");
	wbxml_str(e, WB_CAL_OCCURRENCES, "10");
	wbxml_str(e, WB_CAL_INTERVAL, "1");
	wbxml_str(e, WB_CAL_DAY_OF_WEEK, "2");
	wbxml_end(e);
	wbxml_start(e, WB_CAL_EXCEPTIONS);
	wbxml_start(e, WB_CAL_EXCEPTION);
	wbxml_str(e, WB_CAL_DELETED, "1");
	wbxml_str(e, WB_CAL_EXCEPTION_START_TIME, "20240122T080000Z");
	wbxml_end(e);
	wbxml_start(e, WB_CAL_EXCEPTION);
	wbxml_str(e, WB_CAL_EXCEPTION_START_TIME, "20240115T080000Z");
	wbxml_str(e, WB_CAL_START_TIME, "20240115T090000Z");
	wbxml_str(e, WB_CAL_END_TIME, "20240115T100000Z");
	wbxml_str(e, WB_CAL_SUBJECT, "Weekly sync (moved)");
	wbxml_end(e);
	wbxml_end(e);
}

/* item -> file -> item; returns the file (owned) */
static char *cal_round_trip(build_fn build, const void *arg, const char *zone)
{
	char err[256] = "";
	struct wbxml_node *in = appdata(build, arg);
	size_t len;
	char *ics = eas_calendar_to_ical(in->child, "srv-1", zone, &len, err,
					 sizeof(err));
	CHECK(ics != NULL);
	if (!ics) {
		printf("  to ical: %s\n", err);
		wbxml_free(in);
		return NULL;
	}
	CHECK(ical_validate(ics, len, ICAL_KIND_EVENT, err, sizeof(err)) == 0);
	struct buf b;
	struct wbxml_enc e;
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_APPLICATION_DATA);
	int r = eas_ical_to_calendar(ics, len, zone, &e, err, sizeof(err));
	CHECK(r == 0);
	if (r)
		printf("  from ical: %s\n", err);
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	struct wbxml_node *out = wbxml_parse(b.data, b.len, 1 << 22, 10000, err,
					     sizeof(err));
	CHECK(out && same_tree(in, out));
	if (out && !same_tree(in, out)) {
		dump("in ", in);
		dump("out", out);
		printf("%s", ics);
	}
	wbxml_free(in);
	wbxml_free(out);
	buf_free(&b);
	return ics;
}

static void test_meeting(void)
{
	char *ics = cal_round_trip(meeting, NULL, "Europe/Berlin");
	if (!ics)
		return;
	CHECK(strstr(ics, "DTSTART;TZID=Europe/Berlin:20240108T090000") != NULL);
	CHECK(strstr(ics, "RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO\r\n") != NULL);
	CHECK(strstr(ics, "EXDATE;TZID=Europe/Berlin:20240122T090000") != NULL);
	CHECK(strstr(ics, "RECURRENCE-ID;TZID=Europe/Berlin:20240115T090000") != NULL);
	CHECK(strstr(ics, "SUMMARY:Weekly sync (moved)") != NULL);
	CHECK(strstr(ics, "TRIGGER:-PT15M") != NULL);
	CHECK(strstr(ics, "CLASS:PRIVATE") != NULL);
	CHECK(strstr(ics, "X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE") != NULL);
	CHECK(strstr(ics, "PARTSTAT=ACCEPTED") != NULL);
	CHECK(strstr(ics, "CUTYPE=RESOURCE") != NULL);
	CHECK(strstr(ics, "DESCRIPTION:Agenda:\\nline 2\\, with\\; specials \\\\ here") != NULL);
	CHECK(strstr(ics, "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin") != NULL);
	free(ics);
}

static void allday(struct wbxml_enc *e, const void *arg)
{
	(void)arg;
	tz_blob(e, "Europe/Berlin");
	wbxml_str(e, WB_CAL_ALL_DAY_EVENT, "1");
	wbxml_str(e, WB_CAL_END_TIME, "20240229T230000Z");
	wbxml_str(e, WB_CAL_SUBJECT, "Leap day");
	wbxml_str(e, WB_CAL_START_TIME, "20240228T230000Z");
	wbxml_str(e, WB_CAL_UID, "leap");
	wbxml_start(e, WB_CAL_RECURRENCE);
	wbxml_str(e, WB_CAL_TYPE, "5");
	wbxml_str(e, WB_CAL_INTERVAL, "4");
	wbxml_str(e, WB_CAL_DAY_OF_MONTH, "29");
	wbxml_str(e, WB_CAL_MONTH_OF_YEAR, "2");
	wbxml_end(e);
}

static void test_allday(void)
{
	char *ics = cal_round_trip(allday, NULL, "Europe/Berlin");
	CHECK(ics && strstr(ics, "DTSTART;VALUE=DATE:20240229\r\n"));
	CHECK(ics && strstr(ics, "DTEND;VALUE=DATE:20240301\r\n"));
	CHECK(ics && strstr(ics, "BYMONTH=2") && strstr(ics, "BYMONTHDAY=29"));
	free(ics);
}

struct zoned { const char *zone, *start, *end, *local; int type; };

static void zoned(struct wbxml_enc *e, const void *arg)
{
	const struct zoned *z = arg;
	tz_blob(e, z->zone);
	wbxml_str(e, WB_CAL_ALL_DAY_EVENT, "0");
	wbxml_str(e, WB_CAL_END_TIME, z->end);
	wbxml_str(e, WB_CAL_SUBJECT, z->zone);
	wbxml_str(e, WB_CAL_START_TIME, z->start);
	wbxml_str(e, WB_CAL_UID, z->zone);
	wbxml_start(e, WB_CAL_RECURRENCE);
	wbxml_uint(e, WB_CAL_TYPE, (unsigned long)z->type);
	if (z->type == 0) {
		wbxml_str(e, WB_CAL_UNTIL, "20240401T000000Z");
		wbxml_str(e, WB_CAL_INTERVAL, "2");
	} else if (z->type == 3) {
		wbxml_str(e, WB_CAL_OCCURRENCES, "6");
		wbxml_str(e, WB_CAL_INTERVAL, "1");
		wbxml_str(e, WB_CAL_DAY_OF_WEEK, "62");  /* a weekday */
		wbxml_str(e, WB_CAL_WEEK_OF_MONTH, "5"); /* the last */
	} else {
		wbxml_str(e, WB_CAL_INTERVAL, "1");
		wbxml_str(e, WB_CAL_DAY_OF_WEEK, "16");
		wbxml_str(e, WB_CAL_WEEK_OF_MONTH, "4");
		wbxml_str(e, WB_CAL_MONTH_OF_YEAR, "11");
	}
	wbxml_end(e);
}

static void test_three_zones(void)
{
	static const struct zoned z[] = {
		{ "America/New_York", "20240310T140000Z", "20240310T150000Z",
		  "DTSTART;TZID=America/New_York:20240310T100000", 0 },
		{ "Asia/Tokyo", "20240131T003000Z", "20240131T013000Z",
		  "DTSTART;TZID=Asia/Tokyo:20240131T093000", 3 },
		{ "Australia/Sydney", "20241127T230000Z", "20241128T000000Z",
		  "DTSTART;TZID=Australia/Sydney:20241128T100000", 6 },
	};
	for (size_t i = 0; i < 3; i++) {
		char *ics = cal_round_trip(zoned, &z[i], "Europe/Berlin");
		CHECK(ics && strstr(ics, z[i].local));
		if (ics && !strstr(ics, z[i].local))
			printf("%s", ics);
		free(ics);
	}
}

/* Rules ActiveSync cannot say, and files that are not events. */
static void test_refused(void)
{
	static const struct { const char *rule, *why; } t[] = {
		{ "RRULE:FREQ=HOURLY", "FREQ=HOURLY has no ActiveSync equivalent" },
		{ "RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15", "BYMONTHDAY has no" },
		{ "RRULE:FREQ=MONTHLY;BYDAY=1MO,2TU", "BYDAY has no" },
		{ "RRULE:FREQ=MONTHLY;BYDAY=MO", "without a position" },
		{ "RRULE:FREQ=YEARLY;BYMONTH=1,2", "BYMONTH has no" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char ics[512], err[256] = "";
		struct buf b;
		struct wbxml_enc e;
		snprintf(ics, sizeof(ics),
			 "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\n"
			 "UID:r\r\nDTSTART:20240101T100000Z\r\n%s\r\nEND:VEVENT\r\n"
			 "END:VCALENDAR\r\n", t[i].rule);
		buf_init(&b, 0);
		wbxml_enc_init(&e, &b);
		CHECK(eas_ical_to_calendar(ics, strlen(ics), NULL, &e, err,
					   sizeof(err)) == -1);
		CHECK(strstr(err, t[i].why) != NULL);
		if (!strstr(err, t[i].why))
			printf("  row %zu: %s\n", i, err);
		buf_free(&b);
	}
	char err[256];
	struct buf b;
	struct wbxml_enc e;
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	const char *todo = "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
	CHECK(eas_ical_to_calendar(todo, strlen(todo), NULL, &e, err,
				   sizeof(err)) == -1);
	CHECK(strstr(err, "VTODO in a collection of VEVENTs") != NULL);
	const char *only_ex = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:t\r\n"
		"RECURRENCE-ID:20240101T100000Z\r\nDTSTART:20240101T110000Z\r\n"
		"END:VEVENT\r\nEND:VCALENDAR\r\n";
	CHECK(eas_ical_to_calendar(only_ex, strlen(only_ex), NULL, &e, err,
				   sizeof(err)) == -1);
	CHECK(strstr(err, "no master") != NULL);
	buf_free(&b);
	/* a Recurrence that makes no sense from the server */
	static const struct zoned bad = { "Europe/Berlin", "20240101T100000Z",
		"20240101T110000Z", "", 4 };
	struct wbxml_node *n = appdata(zoned, &bad);
	size_t len;
	char *ics = eas_calendar_to_ical(n->child, "s", NULL, &len, err, sizeof(err));
	CHECK(!ics && strstr(err, "Recurrence"));
	wbxml_free(n);
	/* no UID: the server id */
	struct wbxml_node *m = appdata(allday, NULL);
	wbxml_free(m);
}

/* ---- Tasks ---- */

static void task(struct wbxml_enc *e, const void *arg)
{
	(void)arg;
	wbxml_start(e, WB_ASB_BODY);
	wbxml_str(e, WB_ASB_TYPE, "1");
	wbxml_str(e, WB_ASB_DATA, "Forms 1040, 8949");
	wbxml_end(e);
	wbxml_start(e, WB_TK_CATEGORIES);
	wbxml_str(e, WB_TK_CATEGORY, "Home");
	wbxml_end(e);
	wbxml_str(e, WB_TK_COMPLETE, "1");
	wbxml_str(e, WB_TK_DATE_COMPLETED, "2024-03-05T10:00:00.000Z");
	wbxml_str(e, WB_TK_DUE_DATE, "2024-03-10T00:00:00.000Z");
	wbxml_str(e, WB_TK_UTC_DUE_DATE, "2024-03-09T23:00:00.000Z");
	wbxml_str(e, WB_TK_IMPORTANCE, "2");
	wbxml_start(e, WB_TK_RECURRENCE);
	wbxml_str(e, WB_TK_TYPE, "2");
	wbxml_str(e, WB_TK_START, "2024-03-01T00:00:00.000Z");
	wbxml_str(e, WB_TK_INTERVAL, "1");
	wbxml_str(e, WB_TK_DAY_OF_MONTH, "1");
	wbxml_end(e);
	wbxml_str(e, WB_TK_REMINDER_SET, "1");
	wbxml_str(e, WB_TK_REMINDER_TIME, "2024-03-09T08:00:00.000Z");
	wbxml_str(e, WB_TK_SENSITIVITY, "0");
	wbxml_str(e, WB_TK_START_DATE, "2024-03-01T00:00:00.000Z");
	wbxml_str(e, WB_TK_UTC_START_DATE, "2024-02-29T23:00:00.000Z");
	wbxml_str(e, WB_TK_SUBJECT, "Taxes \xe2\x82\xac");
}

static void test_task(void)
{
	char err[256] = "";
	struct wbxml_node *in = appdata(task, NULL);
	size_t len;
	char *ics = eas_task_to_ical(in->child, "task-7", "Europe/Berlin", &len, err,
				     sizeof(err));
	CHECK(ics != NULL);
	if (!ics) {
		printf("  %s\n", err);
		wbxml_free(in);
		return;
	}
	CHECK(strstr(ics, "DUE;VALUE=DATE:20240310\r\n") != NULL);
	CHECK(strstr(ics, "STATUS:COMPLETED\r\n") != NULL);
	CHECK(strstr(ics, "COMPLETED:20240305T100000Z\r\n") != NULL);
	CHECK(strstr(ics, "PRIORITY:1\r\n") != NULL);
	CHECK(strstr(ics, "UID:task-7\r\n") != NULL);
	CHECK(strstr(ics, "TRIGGER;VALUE=DATE-TIME:20240309T080000Z") != NULL);
	CHECK(ical_validate(ics, len, ICAL_KIND_TODO, err, sizeof(err)) == 0);
	struct buf b;
	struct wbxml_enc e;
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_APPLICATION_DATA);
	CHECK(eas_ical_to_task(ics, len, "Europe/Berlin", &e, err, sizeof(err)) == 0);
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	struct wbxml_node *out = wbxml_parse(b.data, b.len, 1 << 22, 10000, err,
					     sizeof(err));
	CHECK(out && same_tree(in, out));
	if (out && !same_tree(in, out)) {
		dump("in ", in);
		dump("out", out);
		printf("%s", ics);
	}
	wbxml_free(in);
	wbxml_free(out);
	buf_free(&b);
	free(ics);
}

/* ---- Contacts ---- */

struct person { const char *fileas, *first, *last; bool full; };

static void contact(struct wbxml_enc *e, const void *arg)
{
	const struct person *p = arg;
	if (p->full) {
		wbxml_str(e, WB_CO_BIRTHDAY, "1980-02-29T00:00:00.000Z");
		wbxml_start(e, WB_ASB_BODY);
		wbxml_str(e, WB_ASB_TYPE, "1");
		wbxml_str(e, WB_ASB_DATA, "Met at FOSDEM;\nlikes \"tea\", not coffee");
		wbxml_end(e);
		wbxml_str(e, WB_CO_BUSINESS_CITY, "Stockholm");
		wbxml_str(e, WB_CO_BUSINESS_COUNTRY, "Sweden");
		wbxml_str(e, WB_CO_BUSINESS_POSTAL_CODE, "111 51");
		wbxml_str(e, WB_CO_BUSINESS_STREET, "Drottninggatan 1, 3 tr");
		wbxml_str(e, WB_CO_BUSINESS_FAX, "+46 8 000 01");
		wbxml_str(e, WB_CO_BUSINESS_PHONE, "+46 8 000 00");
		wbxml_start(e, WB_CO_CATEGORIES);
		wbxml_str(e, WB_CO_CATEGORY, "Friends, old");
		wbxml_str(e, WB_CO_CATEGORY, "Work");
		wbxml_end(e);
		wbxml_str(e, WB_CO_COMPANY_NAME, "Acme AB");
		wbxml_str(e, WB_CO_DEPARTMENT, "R&D");
		wbxml_str(e, WB_CO_EMAIL1, "zoe@example.org");
		wbxml_str(e, WB_CO_EMAIL2, "\"Zo\xc3\xab\" <zoe@home.example>");
	}
	if (p->fileas)
		wbxml_str(e, WB_CO_FILE_AS, p->fileas);
	wbxml_str(e, WB_CO_FIRST_NAME, p->first);
	if (p->full) {
		wbxml_str(e, WB_CO_HOME_CITY, "Ume\xc3\xa5");
		wbxml_str(e, WB_CO_HOME2_PHONE, "+46 90 2");
		wbxml_str(e, WB_CO_HOME_PHONE, "+46 90 1");
		wbxml_str(e, WB_CO_JOB_TITLE, "Engineer");
	}
	wbxml_str(e, WB_CO_LAST_NAME, p->last);
	if (p->full) {
		wbxml_str(e, WB_CO_MOBILE_PHONE, "+46 70 123 45 67");
		wbxml_str(e, WB_CO_SUFFIX, "PhD");
		wbxml_str(e, WB_CO_TITLE, "Dr.");
		wbxml_str(e, WB_CO_WEB_PAGE, "https://example.org/~zoe");
		/* a JPEG's first bytes */
		wbxml_str(e, WB_CO_PICTURE, "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAA==");
	}
}

static void test_contact(void)
{
	static const struct person people[] = {
		{ "\xc3\x85ngstr\xc3\xb6m, Zo\xc3\xab", "Zo\xc3\xab",
		  "\xc3\x85ngstr\xc3\xb6m", true },
		/* no FileAs: FN is the names, and goes back as nothing */
		{ NULL, "\xe5\xa4\xaa\xe9\x83\x8e", "\xe5\xb1\xb1\xe7\x94\xb0", false },
	};
	for (size_t k = 0; k < 2; k++) {
		for (int version = 30; version <= 40; version += 10) {
			char err[256] = "";
			struct wbxml_node *in = appdata(contact, &people[k]);
			size_t len;
			char *vcf = eas_contact_to_vcard(in->child, "c-9", version,
							 &len, err, sizeof(err));
			CHECK(vcf != NULL);
			if (!vcf) {
				printf("  %s\n", err);
				wbxml_free(in);
				continue;
			}
			CHECK(vcard_validate(vcf, len, NULL, err, sizeof(err)) == 0);
			CHECK(strstr(vcf, "UID:c-9\r\n") != NULL);
			if (people[k].full) {
				CHECK(strstr(vcf, "FN:\xc3\x85ngstr\xc3\xb6m\\, Zo\xc3\xab\r\n") != NULL);
				CHECK(strstr(vcf, "N:\xc3\x85ngstr\xc3\xb6m;Zo\xc3\xab;;Dr.;PhD\r\n") != NULL);
				CHECK(strstr(vcf, version == 30 ? "BDAY:1980-02-29" : "BDAY:19800229") != NULL);
				CHECK(strstr(vcf, version == 30 ? "PHOTO;ENCODING=b;TYPE=JPEG:/9j/"
							      : "PHOTO:data:image/jpeg;base64,/9j/") != NULL);
				CHECK(strstr(vcf, "TEL;TYPE=CELL:+46 70 123 45 67") != NULL);
				CHECK(strstr(vcf, "ADR;TYPE=WORK:;;Drottninggatan 1\\, 3 tr;Stockholm;;111 51;Sweden") != NULL);
			} else {
				CHECK(strstr(vcf, "FN:\xe5\xa4\xaa\xe9\x83\x8e \xe5\xb1\xb1\xe7\x94\xb0\r\n") != NULL);
			}
			struct buf b;
			struct wbxml_enc e;
			buf_init(&b, 0);
			wbxml_enc_init(&e, &b);
			wbxml_start(&e, WB_AS_APPLICATION_DATA);
			CHECK(eas_vcard_to_contact(vcf, len, &e, err, sizeof(err)) == 0);
			wbxml_end(&e);
			CHECK(wbxml_enc_finish(&e) == 0);
			struct wbxml_node *out = wbxml_parse(b.data, b.len, 1 << 22,
							     10000, err, sizeof(err));
			CHECK(out && same_tree(in, out));
			if (out && !same_tree(in, out)) {
				dump("in ", in);
				dump("out", out);
				printf("%s", vcf);
			}
			wbxml_free(in);
			wbxml_free(out);
			buf_free(&b);
			free(vcf);
		}
	}
	/* what ActiveSync cannot keep is refused, not dropped */
	static const struct { const char *card, *why; } t[] = {
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:a\r\nEMAIL:1@x\r\nEMAIL:2@x\r\n"
		  "EMAIL:3@x\r\nEMAIL:4@x\r\nEND:VCARD\r\n", "more than 3 EMAIL" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:a\r\nTEL;TYPE=CELL:1\r\n"
		  "TEL;TYPE=CELL:2\r\nEND:VCARD\r\n", "no ActiveSync field left for TEL 2" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:a\r\nADR;TYPE=HOME:;;a;b;;;\r\n"
		  "ADR;TYPE=HOME:;;c;d;;;\r\nEND:VCARD\r\n", "two ADR of type HOME" },
		{ "BEGIN:VCARD\r\nVERSION:3.0\r\nN:a;b;;;\r\nEND:VCARD\r\n", "no FN" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char err[256] = "";
		struct buf b;
		struct wbxml_enc e;
		buf_init(&b, 0);
		wbxml_enc_init(&e, &b);
		CHECK(eas_vcard_to_contact(t[i].card, strlen(t[i].card), &e, err,
					   sizeof(err)) == -1);
		CHECK(strstr(err, t[i].why) != NULL);
		if (!strstr(err, t[i].why))
			printf("  row %zu: %s\n", i, err);
		buf_free(&b);
	}
}

int main(void)
{
	test_meeting();
	test_allday();
	test_three_zones();
	test_refused();
	test_task();
	test_contact();
	return check_done("test_eas_pim");
}
