/*
 * ical.c - iCalendar items normalised for a vdir and user items checked
 * (see ical.h).  libical parses and writes; this file scans for the caps
 * before libical sees the text, resolves time zones through tz.c, and
 * puts the components in their order.
 */
#include "backend/ical.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libical/ical.h>

#include "backend/tz.h"
#include "backend/utf8.h"
#include "backend/util.h"

static pthread_once_t ical_once = PTHREAD_ONCE_INIT;

static void ical_init(void)
{
	/* libical's default can abort on a parse error */
	icalerror_set_errors_are_fatal(0);
}

/* The caps, checked on the raw text before libical parses it (libical
 * itself has none, and frees components recursively). */
static int scan_caps(const char *p, size_t n, char *err, size_t errlen)
{
	size_t lines = 0, comps = 0;
	int depth = 0;
	if (n > ICAL_MAX_BYTES) {
		snprintf(err, errlen, "item of %zu bytes, over the %u byte cap",
			 n, ICAL_MAX_BYTES);
		return -1;
	}
	for (size_t i = 0; i < n;) {
		const char *e = memchr(p + i, '\n', n - i);
		size_t l = e ? (size_t)(e - (p + i)) : n - i;
		const char *s = p + i;
		if (l && s[0] != ' ' && s[0] != '\t') {
			if (++lines > ICAL_MAX_LINES) {
				snprintf(err, errlen, "over %d lines",
					 ICAL_MAX_LINES);
				return -1;
			}
			if (l >= 6 && !strncasecmp(s, "BEGIN:", 6)) {
				if (++comps > ICAL_MAX_COMPONENTS) {
					snprintf(err, errlen,
						 "over %d components",
						 ICAL_MAX_COMPONENTS);
					return -1;
				}
				if (++depth > ICAL_MAX_DEPTH) {
					snprintf(err, errlen,
						 "components nested over %d deep",
						 ICAL_MAX_DEPTH);
					return -1;
				}
			} else if (l >= 4 && !strncasecmp(s, "END:", 4) &&
				   depth > 0) {
				depth--;
			}
		}
		i += l + 1;
	}
	return 0;
}

static bool is_item(icalcomponent *c)
{
	icalcomponent_kind k = icalcomponent_isa(c);
	return k == ICAL_VEVENT_COMPONENT || k == ICAL_VTODO_COMPONENT ||
	       k == ICAL_VJOURNAL_COMPONENT;
}

static bool has_rid(icalcomponent *c)
{
	return icalcomponent_get_first_property(c,
		ICAL_RECURRENCEID_PROPERTY) != NULL;
}

/* Parse text (NUL-terminated) into a VCALENDAR; a bare component is
 * wrapped.  NULL if libical finds nothing. */
static icalcomponent *parse(const char *text)
{
	icalcomponent *c = icalparser_parse_string(text);
	if (!c)
		return NULL;
	if (icalcomponent_isa(c) == ICAL_VCALENDAR_COMPONENT)
		return c;
	if (icalcomponent_isa(c) == ICAL_XROOT_COMPONENT) {
		/* several top-level components: keep the first VCALENDAR */
		icalcomponent *v = icalcomponent_get_first_component(c,
			ICAL_VCALENDAR_COMPONENT);
		if (v) {
			icalcomponent_remove_component(c, v);
			icalcomponent_free(c);
			return v;
		}
		icalcomponent_free(c);
		return NULL;
	}
	if (!is_item(c)) {
		icalcomponent_free(c);
		return NULL;
	}
	icalcomponent *v = icalcomponent_new(ICAL_VCALENDAR_COMPONENT);
	icalcomponent_add_component(v, c);
	return v;
}

/* ---- Time zones ---- */

/* An external iterator: callers may be walking root's components with
 * libical's internal one. */
static icalcomponent *find_vtimezone(icalcomponent *root, const char *tzid)
{
	icalcompiter it = icalcomponent_begin_component(root,
		ICAL_VTIMEZONE_COMPONENT);
	for (icalcomponent *z; (z = icalcompiter_deref(&it)) != NULL;
	     icalcompiter_next(&it)) {
		icalproperty *p = icalcomponent_get_first_property(z,
			ICAL_TZID_PROPERTY);
		const char *id = p ? icalproperty_get_tzid(p) : NULL;
		if (id && !strcmp(id, tzid))
			return z;
	}
	return NULL;
}

/* The last observance of a kind (by DTSTART) with its yearly rule. */
static icalcomponent *last_observance(icalcomponent *vtz,
				      icalcomponent_kind k)
{
	icalcomponent *best = NULL;
	struct icaltimetype bt = icaltime_null_time();
	for (icalcomponent *o = icalcomponent_get_first_component(vtz, k); o;
	     o = icalcomponent_get_next_component(vtz, k)) {
		icalproperty *p = icalcomponent_get_first_property(o,
			ICAL_DTSTART_PROPERTY);
		struct icaltimetype t = p ? icalproperty_get_dtstart(p)
					  : icaltime_null_time();
		if (!best || icaltime_compare(t, bt) >= 0) {
			best = o;
			bt = t;
		}
	}
	return best;
}

/* A yearly observance rule as a SYSTEMTIME rule; -1 if it is not one. */
static int observance_rule(icalcomponent *o, struct tz_systemtime *st)
{
	icalproperty *rp = icalcomponent_get_first_property(o,
		ICAL_RRULE_PROPERTY);
	icalproperty *dp = icalcomponent_get_first_property(o,
		ICAL_DTSTART_PROPERTY);
	if (!rp || !dp)
		return -1;
	struct icalrecurrencetype r = icalproperty_get_rrule(rp);
	struct icaltimetype t = icalproperty_get_dtstart(dp);
	if (r.freq != ICAL_YEARLY_RECURRENCE ||
	    r.by_month[0] == ICAL_RECURRENCE_ARRAY_MAX ||
	    r.by_day[0] == ICAL_RECURRENCE_ARRAY_MAX)
		return -1;
	int pos = icalrecurrencetype_day_position(r.by_day[0]);
	int dow = (int)icalrecurrencetype_day_day_of_week(r.by_day[0]) - 1;
	if (r.by_month[0] < 1 || r.by_month[0] > 12 || dow < 0 || dow > 6 ||
	    pos == 0 || pos > 5 || pos < -1)
		return -1;
	memset(st, 0, sizeof(*st));
	st->month = (uint16_t)r.by_month[0];
	st->dow = (uint16_t)dow;
	st->day = (uint16_t)(pos == -1 ? 5 : pos);
	st->hour = (uint16_t)t.hour;
	st->minute = (uint16_t)t.minute;
	return 0;
}

/* A VTIMEZONE the IANA names do not cover ("(UTC+01:00) Amsterdam,
 * Berlin, ...", "Customized Time Zone"): the zone with its rules. */
static int vtimezone_to_iana(icalcomponent *vtz, int year,
			     char out[TZ_NAME_MAX])
{
	icalproperty *p = icalcomponent_get_first_property(vtz,
		ICAL_X_PROPERTY);
	for (; p; p = icalcomponent_get_next_property(vtz, ICAL_X_PROPERTY)) {
		const char *xn = icalproperty_get_x_name(p);
		if (xn && !strcasecmp(xn, "X-LIC-LOCATION") &&
		    !tz_canonical_iana(icalproperty_get_x(p), out))
			return 0;
	}
	icalcomponent *s = last_observance(vtz, ICAL_XSTANDARD_COMPONENT);
	icalcomponent *d = last_observance(vtz, ICAL_XDAYLIGHT_COMPONENT);
	icalproperty *so = s ? icalcomponent_get_first_property(s,
		ICAL_TZOFFSETTO_PROPERTY) : NULL;
	if (!so)
		return -1;
	struct tz_info tz;
	memset(&tz, 0, sizeof(tz));
	int std_off = icalproperty_get_tzoffsetto(so);
	tz.bias = -std_off / 60;
	icalproperty *dof = d ? icalcomponent_get_first_property(d,
		ICAL_TZOFFSETTO_PROPERTY) : NULL;
	if (dof && !observance_rule(s, &tz.std_date) &&
	    !observance_rule(d, &tz.dst_date)) {
		tz.dst_bias = -(icalproperty_get_tzoffsetto(dof) - std_off) / 60;
	} else {
		memset(&tz.std_date, 0, sizeof(tz.std_date));
		memset(&tz.dst_date, 0, sizeof(tz.dst_date));
	}
	return tz_info_to_iana(&tz, year, out);
}

/* A TZID as servers write it -> an IANA zone: itself, a Windows id, a
 * prefixed id ("/freeassociation.sourceforge.net/Europe/Berlin"), or what
 * its VTIMEZONE says. */
static int resolve_tzid(icalcomponent *root, const char *tzid, int year,
			char out[TZ_NAME_MAX])
{
	if (!tz_canonical_iana(tzid, out) || !tz_windows_to_iana(tzid, out))
		return 0;
	for (const char *s = strchr(tzid, '/'); s; s = strchr(s + 1, '/'))
		if (!tz_canonical_iana(s + 1, out))
			return 0;
	icalcomponent *vtz = find_vtimezone(root, tzid);
	return vtz ? vtimezone_to_iana(vtz, year, out) : -1;
}

struct zone_map {
	char from[ICAL_MAX_ZONES][TZ_NAME_MAX * 2];
	char to[ICAL_MAX_ZONES][TZ_NAME_MAX];   /* "" = unresolved */
	int n;
};

static bool is_utc_name(const char *z)
{
	return !strcmp(z, "Etc/UTC") || !strcmp(z, "UTC") ||
	       !strcmp(z, "Etc/GMT") || !strcmp(z, "Etc/GMT+0") ||
	       !strcmp(z, "Etc/GMT-0");
}

/* Rewrite one DATE-TIME property's TZID: to its IANA zone, to UTC, or
 * (unresolved) to UTC through the item's own VTIMEZONE, or floating if
 * there is none. */
static void rewrite_time(icalcomponent *root, icalproperty *p,
			 const char *tzid, const char *to)
{
	icalvalue *v = icalproperty_get_value(p);
	icalparameter *par = icalproperty_get_first_parameter(p,
		ICAL_TZID_PARAMETER);
	if (!v || icalvalue_isa(v) != ICAL_DATETIME_VALUE) {
		if (to[0] && !is_utc_name(to))
			icalparameter_set_tzid(par, to);
		else
			icalproperty_remove_parameter_by_kind(p,
				ICAL_TZID_PARAMETER);
		return;
	}
	struct icaltimetype t = icalvalue_get_datetime(v);
	if (to[0] && !is_utc_name(to)) {
		icalparameter_set_tzid(par, to);
		return;
	}
	if (to[0]) {
		t.zone = icaltimezone_get_utc_timezone();
	} else {
		icaltimezone *z = icalcomponent_get_timezone(root, tzid);
		if (z) {
			t.zone = z;
			t = icaltime_convert_to_zone(t,
				icaltimezone_get_utc_timezone());
		} else {
			t.zone = NULL;
		}
	}
	icalproperty_remove_parameter_by_kind(p, ICAL_TZID_PARAMETER);
	icalvalue_set_datetime(v, t);
}

static int map_zone(struct zone_map *m, icalcomponent *root,
		    const char *tzid, int year, char *err, size_t errlen)
{
	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->from[i], tzid))
			return i;
	if (m->n == ICAL_MAX_ZONES) {
		snprintf(err, errlen, "over %d time zones", ICAL_MAX_ZONES);
		return -1;
	}
	snprintf(m->from[m->n], sizeof(m->from[0]), "%s", tzid);
	if (strlen(tzid) >= sizeof(m->from[0]) ||
	    resolve_tzid(root, tzid, year, m->to[m->n]) ||
	    (!is_utc_name(m->to[m->n]) &&
	     !icaltimezone_get_builtin_timezone(m->to[m->n])))
		m->to[m->n][0] = 0;
	return m->n++;
}

/* Every TZID parameter of comp (and its subcomponents, e.g. a VALARM's
 * TRIGGER) rewritten. */
static int rewrite_zones(icalcomponent *root, icalcomponent *comp,
			 struct zone_map *m, int year, char *err,
			 size_t errlen)
{
	for (icalproperty *p = icalcomponent_get_first_property(comp,
			ICAL_ANY_PROPERTY);
	     p; p = icalcomponent_get_next_property(comp, ICAL_ANY_PROPERTY)) {
		icalparameter *par = icalproperty_get_first_parameter(p,
			ICAL_TZID_PARAMETER);
		const char *tzid = par ? icalparameter_get_tzid(par) : NULL;
		if (!tzid)
			continue;
		char copy[TZ_NAME_MAX * 2];
		snprintf(copy, sizeof(copy), "%s", tzid);
		if (icalproperty_count_parameters(p) > 1) {
			/* a second TZID: the first one counts */
			while (icalproperty_get_first_parameter(p,
					ICAL_TZID_PARAMETER))
				icalproperty_remove_parameter_by_kind(p,
					ICAL_TZID_PARAMETER);
			icalproperty_add_parameter(p,
				icalparameter_new_tzid(copy));
		}
		int i = map_zone(m, root, copy, year, err, errlen);
		if (i < 0)
			return -1;
		rewrite_time(root, p, copy, m->to[i]);
	}
	for (icalcomponent *c = icalcomponent_get_first_component(comp,
			ICAL_ANY_COMPONENT);
	     c; c = icalcomponent_get_next_component(comp, ICAL_ANY_COMPONENT))
		if (rewrite_zones(root, c, m, year, err, errlen))
			return -1;
	return 0;
}

/* libical's definition of an IANA zone under its own name as TZID. */
static icalcomponent *builtin_vtimezone(const char *iana)
{
	icaltimezone *z = icaltimezone_get_builtin_timezone(iana);
	icalcomponent *c = z ? icaltimezone_get_component(z) : NULL;
	if (!c)
		return NULL;
	c = icalcomponent_new_clone(c);
	icalproperty *p = icalcomponent_get_first_property(c,
		ICAL_TZID_PROPERTY);
	if (p)
		icalproperty_set_tzid(p, iana);
	return c;
}

/* ---- Shape ---- */

static void strip_errors(icalcomponent *c)
{
	/* libical's own strip walks the whole tree */
	icalcomponent_strip_errors(c);
}

/* Only VALARMs, with nothing inside, may sit in an event or task
 * (RFC 5545 3.6); anything else there (a VTIMEZONE, another event) goes. */
static void prune_subcomponents(icalcomponent *c, bool alarms_ok)
{
	icalcomponent *s, *next;
	for (s = icalcomponent_get_first_component(c, ICAL_ANY_COMPONENT); s;
	     s = next) {
		next = icalcomponent_get_next_component(c, ICAL_ANY_COMPONENT);
		if (alarms_ok && icalcomponent_isa(s) == ICAL_VALARM_COMPONENT) {
			prune_subcomponents(s, false);
			continue;
		}
		icalcomponent_remove_component(c, s);
		icalcomponent_free(s);
	}
}

static int cmp_rid(const void *a, const void *b)
{
	icalcomponent *x = *(icalcomponent *const *)a;
	icalcomponent *y = *(icalcomponent *const *)b;
	return icaltime_compare(icalcomponent_get_recurrenceid(x),
				icalcomponent_get_recurrenceid(y));
}

static int cmp_zone(const void *a, const void *b)
{
	icalcomponent *x = *(icalcomponent *const *)a;
	icalcomponent *y = *(icalcomponent *const *)b;
	icalproperty *px = icalcomponent_get_first_property(x, ICAL_TZID_PROPERTY);
	icalproperty *py = icalcomponent_get_first_property(y, ICAL_TZID_PROPERTY);
	return strcmp(px ? icalproperty_get_tzid(px) : "",
		      py ? icalproperty_get_tzid(py) : "");
}

static int item_year(icalcomponent *items)
{
	struct icaltimetype t = icaltime_null_time();
	icalproperty *p = icalcomponent_get_first_property(items,
		ICAL_DTSTART_PROPERTY);
	if (!p)
		p = icalcomponent_get_first_property(items, ICAL_DUE_PROPERTY);
	if (p) {
		icalvalue *v = icalproperty_get_value(p);
		if (v && (icalvalue_isa(v) == ICAL_DATETIME_VALUE ||
			  icalvalue_isa(v) == ICAL_DATE_VALUE))
			t = icalvalue_get_datetime(v);
	}
	if (t.year >= 1900 && t.year <= 2200)
		return t.year;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	return tm.tm_year + 1900;
}

/* libical's text, unfolded, made UTF-8 (libical can cut a character
 * it unescapes: "\\" before a UTF-8 sequence), and folded again our way:
 * at 75 octets, never inside a character.  libical's own folding is not
 * a function of the text alone (fuzz_pim found a line it folded only
 * the second time), and the output must be. */
static char *refold(const char *s, size_t *outlen)
{
	size_t n = strlen(s), u = 0;
	char *flat = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && s[i + 1] == '\n' &&
		    (s[i + 2] == ' ' || s[i + 2] == '\t')) {
			i += 2;
			continue;
		}
		flat[u++] = s[i];
	}
	size_t fl;
	char *text = utf8_repair(flat, u, &fl);
	free(flat);
	struct buf b;
	buf_init(&b, 0);
	for (const char *l = text; *l;) {
		const char *e = strstr(l, "\r\n");
		size_t len = e ? (size_t)(e - l) : strlen(l), width = 75;
		while (len > width) {
			size_t k = width;
			while (k > 1 && ((unsigned char)l[k] & 0xc0) == 0x80)
				k--;
			buf_append(&b, l, k);
			buf_puts(&b, "\r\n ");
			l += k;
			len -= k;
			width = 74;
		}
		buf_append(&b, l, len);
		buf_puts(&b, "\r\n");
		l += len + (e ? 2 : 0);
	}
	free(text);
	*outlen = b.len;
	return b.data ? b.data : xstrdup("");
}

/* Control characters other than tab and line ends, which iCalendar does
 * not allow in a value, go. */
static void drop_controls(char *s)
{
	char *o = s;
	for (; *s; s++)
		if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\r' ||
		    *s == '\n')
			if (*s != 0x7f)
				*o++ = *s;
	*o = 0;
}

static char *normalize_once(const char *data, size_t len,
			    const char *fallback_uid, size_t *outlen,
			    char *err, size_t errlen);

/* One pass of libical is not always a fixed point (a value it reads as
 * starting with a space, from an escape it does not know, loses the
 * space when read again: found by fuzz_pim), and the output must be the
 * same whenever it is normalised again: a second pass settles it. */
char *ical_normalize(const char *data, size_t len, const char *fallback_uid,
		     size_t *outlen, char *err, size_t errlen)
{
	size_t n1;
	char *once = normalize_once(data, len, fallback_uid, &n1, err, errlen);
	if (!once)
		return NULL;
	char *twice = normalize_once(once, n1, fallback_uid, outlen, err,
				     errlen);
	free(once);
	return twice;
}

static char *normalize_once(const char *data, size_t len,
			    const char *fallback_uid, size_t *outlen,
			    char *err, size_t errlen)
{
	pthread_once(&ical_once, ical_init);
	if (scan_caps(data, len, err, errlen))
		return NULL;
	char *text = utf8_repair(data, len, NULL);
	drop_controls(text);
	icalcomponent *root = parse(text);
	free(text);
	if (!root) {
		snprintf(err, errlen, "not iCalendar");
		return NULL;
	}
	strip_errors(root);

	/* The items: the first one's UID decides; others dropped. */
	size_t n = 0, nz = 0;
	icalcomponent **items = NULL, **zones = NULL, *master = NULL;
	icalcomponent *c, *next;
	const char *uid = NULL;
	char *uid_copy = NULL;
	for (c = icalcomponent_get_first_component(root, ICAL_ANY_COMPONENT);
	     c; c = icalcomponent_get_next_component(root, ICAL_ANY_COMPONENT))
		if (is_item(c) && icalcomponent_get_uid(c)) {
			uid_copy = xstrdup(icalcomponent_get_uid(c));
			break;
		}
	uid = uid_copy ? uid_copy : fallback_uid;
	if (!uid || !*uid) {
		snprintf(err, errlen, "no UID and no server id to make one");
		free(uid_copy);
		icalcomponent_free(root);
		return NULL;
	}
	items = xcalloc(ICAL_MAX_COMPONENTS, sizeof(*items));
	zones = xcalloc(ICAL_MAX_COMPONENTS, sizeof(*zones));
	icalcomponent_kind kind = ICAL_NO_COMPONENT;
	for (c = icalcomponent_get_first_component(root, ICAL_ANY_COMPONENT);
	     c; c = next) {
		next = icalcomponent_get_next_component(root, ICAL_ANY_COMPONENT);
		icalcomponent_remove_component(root, c);
		const char *u = is_item(c) ? icalcomponent_get_uid(c) : NULL;
		if (icalcomponent_isa(c) == ICAL_VTIMEZONE_COMPONENT) {
			zones[nz++] = c;
			continue;
		}
		if (!is_item(c) || (u && strcmp(u, uid)) ||
		    (kind != ICAL_NO_COMPONENT && icalcomponent_isa(c) != kind) ||
		    (!has_rid(c) && master)) {
			icalcomponent_free(c);
			continue;
		}
		kind = icalcomponent_isa(c);
		prune_subcomponents(c, true);
		if (!u)
			icalcomponent_set_uid(c, uid);
		if (has_rid(c)) {
			bool dup = false;
			for (size_t i = 0; i < n && !dup; i++)
				dup = has_rid(items[i]) && !icaltime_compare(
					icalcomponent_get_recurrenceid(items[i]),
					icalcomponent_get_recurrenceid(c));
			if (dup) {
				icalcomponent_free(c);
				continue;
			}
			items[n++] = c;
		} else {
			master = c;
		}
	}
	free(uid_copy);
	/* The zones back (root owns them again): times are rewritten while
	 * the item's own VTIMEZONEs are there to convert with. */
	for (size_t i = 0; i < nz; i++)
		icalcomponent_add_component(root, zones[i]);
	if (!master && !n) {
		snprintf(err, errlen, "no event, task or journal in it");
		goto fail;
	}
	struct zone_map *m = xcalloc(1, sizeof(*m));
	int year = item_year(master ? master : items[0]);
	int r = master ? rewrite_zones(root, master, m, year, err, errlen) : 0;
	for (size_t i = 0; !r && i < n; i++)
		r = rewrite_zones(root, items[i], m, year, err, errlen);
	for (c = icalcomponent_get_first_component(root,
			ICAL_VTIMEZONE_COMPONENT); c; c = next) {
		next = icalcomponent_get_next_component(root,
			ICAL_VTIMEZONE_COMPONENT);
		icalcomponent_remove_component(root, c);
		icalcomponent_free(c);
	}
	nz = 0;
	for (int i = 0; !r && i < m->n; i++) {
		bool seen = false;
		if (!m->to[i][0] || is_utc_name(m->to[i]))
			continue;
		for (int j = 0; j < i && !seen; j++)
			seen = !strcmp(m->to[j], m->to[i]);
		icalcomponent *z = seen ? NULL : builtin_vtimezone(m->to[i]);
		if (z)
			zones[nz++] = z;
	}
	free(m);
	if (r)
		goto fail;
	qsort(zones, nz, sizeof(*zones), cmp_zone);
	qsort(items, n, sizeof(*items), cmp_rid);

	/* The calendar's own properties: VERSION, PRODID, CALSCALE kept,
	 * METHOD dropped. */
	icalproperty *p, *pn;
	for (p = icalcomponent_get_first_property(root, ICAL_METHOD_PROPERTY);
	     p; p = pn) {
		pn = icalcomponent_get_next_property(root, ICAL_METHOD_PROPERTY);
		icalcomponent_remove_property(root, p);
		icalproperty_free(p);
	}
	if (!icalcomponent_get_first_property(root, ICAL_VERSION_PROPERTY))
		icalcomponent_add_property(root, icalproperty_new_version("2.0"));
	if (!icalcomponent_get_first_property(root, ICAL_PRODID_PROPERTY))
		icalcomponent_add_property(root,
			icalproperty_new_prodid("-//exchangefs//EN"));
	/* libical puts an added VTIMEZONE before the others: last first */
	for (size_t i = nz; i-- > 0;)
		icalcomponent_add_component(root, zones[i]);
	if (master)
		icalcomponent_add_component(root, master);
	for (size_t i = 0; i < n; i++)
		icalcomponent_add_component(root, items[i]);
	free(items);
	free(zones);
	char *s = icalcomponent_as_ical_string_r(root);
	icalcomponent_free(root);
	if (!s) {
		snprintf(err, errlen, "libical could not write the item");
		return NULL;
	}
	size_t olen;
	char *out = refold(s, &olen);
	icalmemory_free_buffer(s);
	if (outlen)
		*outlen = olen;
	return out;
fail:
	for (size_t i = 0; i < n; i++)
		icalcomponent_free(items[i]);
	if (master)
		icalcomponent_free(master);
	free(items);
	free(zones);
	icalcomponent_free(root);
	return NULL;
}

/* ---- Validation of what users write ---- */

static const char *kind_name(enum ical_kind k)
{
	return k == ICAL_KIND_TODO ? "VTODO" : "VEVENT";
}

/* The first libical error property in c or below, as its text. */
static const char *first_error(icalcomponent *c)
{
	icalproperty *p = icalcomponent_get_first_property(c,
		ICAL_XLICERROR_PROPERTY);
	if (p)
		return icalproperty_get_xlicerror(p);
	for (icalcomponent *s = icalcomponent_get_first_component(c,
			ICAL_ANY_COMPONENT);
	     s; s = icalcomponent_get_next_component(c, ICAL_ANY_COMPONENT)) {
		const char *e = first_error(s);
		if (e)
			return e;
	}
	return NULL;
}

/* Every TZID parameter in c has a VTIMEZONE in root or names a zone.
 * VTIMEZONEs themselves are not looked into: a TZID inside one means
 * nothing, and find_vtimezone() would restart the property walk of the
 * very VTIMEZONE being walked (a hang found by fuzz_pim). */
static const char *undefined_tzid(icalcomponent *root, icalcomponent *c)
{
	char z[TZ_NAME_MAX];
	if (icalcomponent_isa(c) == ICAL_VTIMEZONE_COMPONENT)
		return NULL;
	for (icalproperty *p = icalcomponent_get_first_property(c,
			ICAL_ANY_PROPERTY);
	     p; p = icalcomponent_get_next_property(c, ICAL_ANY_PROPERTY)) {
		icalparameter *par = icalproperty_get_first_parameter(p,
			ICAL_TZID_PARAMETER);
		const char *tzid = par ? icalparameter_get_tzid(par) : NULL;
		if (tzid && !find_vtimezone(root, tzid) &&
		    tz_canonical_iana(tzid, z) && tz_windows_to_iana(tzid, z))
			return tzid;
	}
	for (icalcomponent *s = icalcomponent_get_first_component(c,
			ICAL_ANY_COMPONENT);
	     s; s = icalcomponent_get_next_component(c, ICAL_ANY_COMPONENT)) {
		const char *t = undefined_tzid(root, s);
		if (t)
			return t;
	}
	return NULL;
}

static int validate_tree(icalcomponent *root, enum ical_kind kind,
			 char *err, size_t errlen)
{
	const char *e = first_error(root);
	if (e) {
		snprintf(err, errlen, "iCalendar error: %.200s", e);
		return -1;
	}
	icalcomponent_kind want = kind == ICAL_KIND_TODO ?
		ICAL_VTODO_COMPONENT : ICAL_VEVENT_COMPONENT;
	const char *uid = NULL;
	int masters = 0, count = 0;
	struct icaltimetype *rids = xcalloc(ICAL_MAX_COMPONENTS, sizeof(*rids));
	int nr = 0, r = -1;
	for (icalcomponent *c = icalcomponent_get_first_component(root,
			ICAL_ANY_COMPONENT);
	     c; c = icalcomponent_get_next_component(root, ICAL_ANY_COMPONENT)) {
		icalcomponent_kind k = icalcomponent_isa(c);
		if (k == ICAL_VTIMEZONE_COMPONENT)
			continue;
		if ((kind == ICAL_KIND_ANY && !is_item(c)) ||
		    (kind != ICAL_KIND_ANY && k != want)) {
			snprintf(err, errlen, "a %s in a collection of %ss",
				 icalcomponent_kind_to_string(k),
				 kind_name(kind));
			goto out;
		}
		count++;
		const char *u = icalcomponent_get_uid(c);
		if (!u || !*u) {
			snprintf(err, errlen, "a %s without a UID",
				 icalcomponent_kind_to_string(k));
			goto out;
		}
		if (uid && strcmp(u, uid)) {
			snprintf(err, errlen,
				 "more than one UID (%.60s, %.60s): one item per file",
				 uid, u);
			goto out;
		}
		uid = u;
		if (k == ICAL_VEVENT_COMPONENT &&
		    !icalcomponent_get_first_property(c, ICAL_DTSTART_PROPERTY)) {
			snprintf(err, errlen, "a VEVENT without DTSTART");
			goto out;
		}
		if (!has_rid(c)) {
			if (++masters > 1) {
				snprintf(err, errlen,
					 "two components with UID %.60s and no RECURRENCE-ID",
					 uid);
				goto out;
			}
			continue;
		}
		struct icaltimetype t = icalcomponent_get_recurrenceid(c);
		for (int i = 0; i < nr; i++)
			if (!icaltime_compare(rids[i], t)) {
				snprintf(err, errlen,
					 "two exceptions with RECURRENCE-ID %s",
					 icaltime_as_ical_string(t));
				goto out;
			}
		rids[nr++] = t;
	}
	if (!count) {
		snprintf(err, errlen, "no %s in it", kind_name(kind));
		goto out;
	}
	const char *tz = undefined_tzid(root, root);
	if (tz) {
		snprintf(err, errlen, "TZID %.80s has no VTIMEZONE", tz);
		goto out;
	}
	r = 0;
out:
	free(rids);
	return r;
}

int ical_validate(const char *data, size_t len, enum ical_kind kind,
		  char *err, size_t errlen)
{
	pthread_once(&ical_once, ical_init);
	if (scan_caps(data, len, err, errlen))
		return -1;
	size_t ok = utf8_valid_prefix(data, len);
	if (ok < len) {
		snprintf(err, errlen, "invalid UTF-8 at byte %zu", ok);
		return -1;
	}
	char *text = xstrndup(data, len);
	icalcomponent *root = icalparser_parse_string(text);
	free(text);
	if (!root || icalcomponent_isa(root) != ICAL_VCALENDAR_COMPONENT) {
		snprintf(err, errlen, "not a VCALENDAR");
		if (root)
			icalcomponent_free(root);
		return -1;
	}
	int r = validate_tree(root, kind, err, errlen);
	icalcomponent_free(root);
	return r;
}
