/*
 * eas_resolve.c - the address book over ActiveSync: ResolveRecipients
 * (MS-ASCMD 2.2.1.15) and GAL Search request builders, answer parsers
 * (pure, unit-tested and fuzzed) and the resolve_names operation.
 *
 * One To per request; the Response for it says 1 (resolved), 2 (ambiguous:
 * the Recipients are suggestions), 3 (ambiguous, partial list) or 4 (no
 * one): 1-3 give the Recipients found, 4 gives none, and none of them is a
 * failure.  Recipient Type 1 is the directory (GAL), 2 the user's contacts.
 *
 * SOGo 5.8 answers only a request that asks for Availability (free/busy)
 * too - otherwise an empty HTTP 200 - and leaves out the Response of a To
 * it cannot resolve.  So an empty answer is asked again once with
 * Availability for the next half hour (14.0+, where it exists), and a
 * missing Response means no one.  SOGo also resolves only a login or a
 * whole address, so when ResolveRecipients finds no one, the directory is
 * searched (Search in the GAL store, MS-ASCMD 2.2.1.16), which matches part
 * of a name or an address; a server without Search leaves the answer at
 * "no one".
 */
#include "backend/eas/eas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RR_FIELD_MAX 1024   /* a display name or address longer is not one */

/* An EAS date-time of Unix seconds t. */
static void eas_time(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) ||
	    !strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm))
		snprintf(out, 32, "1970-01-01T00:00:00.000Z");
}

void eas_req_resolve(struct buf *b, const char *query, unsigned max,
		     int64_t avail_start)
{
	struct wbxml_enc e;
	if (max < 1)
		max = 1;
	if (max > BE_PEOPLE_MAX)
		max = BE_PEOPLE_MAX;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_RR_RESOLVE_RECIPIENTS);
	wbxml_str(&e, WB_RR_TO, query);
	wbxml_start(&e, WB_RR_OPTIONS);
	wbxml_uint(&e, WB_RR_MAX_AMBIGUOUS_RECIPIENTS, max);
	if (avail_start > 0) {
		char t0[32], t1[32];
		eas_time(avail_start, t0);
		eas_time(avail_start + 1800, t1);
		wbxml_start(&e, WB_RR_AVAILABILITY);
		wbxml_str(&e, WB_RR_START_TIME, t0);
		wbxml_str(&e, WB_RR_END_TIME, t1);
		wbxml_end(&e);
	}
	wbxml_end(&e);
	wbxml_end(&e);
}

/* Text of a child if present, non-empty and of a sane length. */
static const char *field(const struct wbxml_node *n, unsigned tag)
{
	const struct wbxml_node *c = wbxml_child(n, tag);
	if (!c || !c->text || !*c->text || c->len > RR_FIELD_MAX ||
	    strlen(c->text) != c->len)
		return NULL;
	return c->text;
}

/* The top-level or a Response status, graded; 1 is BE_OK. */
static enum be_status top_status(const char *st, struct be_result *r)
{
	if (st && !strcmp(st, "5"))
		be_result_set(r, BE_PROTOCOL,
			      "ResolveRecipients: the server says the request is malformed (status 5)");
	else if (st && !strcmp(st, "6"))
		be_result_set(r, BE_NETWORK,
			      "ResolveRecipients: server error (status 6)");
	else
		eas_status("ResolveRecipients", st, r);
	return r->status;
}

/* One person of an answer into (*v)[*k] (the array of max made on first
 * use); one with neither a name nor an address is left out. */
static void add_person(struct be_person **v, size_t *k, unsigned max,
		       const char *name, const char *addr,
		       enum be_person_kind kind)
{
	if (!name && !addr)
		return;
	if (!*v)
		*v = xcalloc(max, sizeof(**v));
	(*v)[*k].name = xstrdup(name);
	(*v)[*k].address = xstrdup(addr);
	(*v)[*k].kind = kind;
	(*k)++;
}

/* What both people answers start with: no one yet, max capped, and the
 * tree of a non-empty answer (NULL with r set). */
static struct wbxml_node *people_answer(const void *p, size_t n,
					const char *cmd, unsigned *max,
					struct be_person **out, size_t *nout,
					struct be_result *r)
{
	*out = NULL;
	*nout = 0;
	be_result_ok(r);
	if (*max > BE_PEOPLE_MAX)
		*max = BE_PEOPLE_MAX;
	if (!n) {
		be_result_set(r, BE_PROTOCOL, "empty %s answer", cmd);
		return NULL;
	}
	return eas_parse(p, n, cmd, r);
}

enum be_status eas_parse_resolve(const void *p, size_t n, unsigned max,
				 struct be_person **out, size_t *nout,
				 struct be_result *r)
{
	struct wbxml_node *t = people_answer(p, n, "ResolveRecipients", &max,
					     out, nout, r);
	if (!t)
		return r->status;
	struct wbxml_node *root = wbxml_child(t, WB_RR_RESOLVE_RECIPIENTS);
	if (!root) {
		be_result_set(r, BE_PROTOCOL,
			      "ResolveRecipients answer with another root element");
		goto out;
	}
	if (top_status(wbxml_child_text(root, WB_RR_STATUS), r) != BE_OK)
		goto out;
	struct wbxml_node *resp = wbxml_child(root, WB_RR_RESPONSE);
	if (!resp)
		goto out;   /* SOGo: no one */
	const char *st = wbxml_child_text(resp, WB_RR_STATUS);
	if (!st || (strcmp(st, "1") && strcmp(st, "2") && strcmp(st, "3") &&
		    strcmp(st, "4"))) {
		if (top_status(st, r) == BE_OK)
			be_result_set(r, BE_PROTOCOL,
				      "ResolveRecipients answer with status %.12s",
				      st);
		goto out;
	}
	if (!strcmp(st, "4"))
		goto out;   /* no one: BE_OK, nothing */
	struct be_person *v = NULL;
	size_t k = 0;
	for (struct wbxml_node *rc = wbxml_child(resp, WB_RR_RECIPIENT);
	     rc && k < max; rc = wbxml_next(rc)) {
		const char *name = field(rc, WB_RR_DISPLAY_NAME);
		const char *addr = field(rc, WB_RR_EMAIL_ADDRESS);
		const char *type = wbxml_child_text(rc, WB_RR_TYPE);
		add_person(&v, &k, max, name, addr,
			   !type ? BE_PERSON_OTHER
			   : !strcmp(type, "1") ? BE_PERSON_DIRECTORY
			   : !strcmp(type, "2") ? BE_PERSON_CONTACT
						: BE_PERSON_OTHER);
	}
	*out = v;
	*nout = k;
out:
	wbxml_free(t);
	return r->status;
}

void eas_req_gal_search(struct buf *b, const char *query, unsigned max)
{
	struct wbxml_enc e;
	char range[32];
	if (max < 1)
		max = 1;
	if (max > BE_PEOPLE_MAX)
		max = BE_PEOPLE_MAX;
	snprintf(range, sizeof(range), "0-%u", max - 1);
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_SRCH_SEARCH);
	wbxml_start(&e, WB_SRCH_STORE);
	wbxml_str(&e, WB_SRCH_NAME, "GAL");
	wbxml_str(&e, WB_SRCH_QUERY, query);
	wbxml_start(&e, WB_SRCH_OPTIONS);
	wbxml_str(&e, WB_SRCH_RANGE, range);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
}

enum be_status eas_parse_gal_search(const void *p, size_t n, unsigned max,
				    struct be_person **out, size_t *nout,
				    struct be_result *r)
{
	struct wbxml_node *t = people_answer(p, n, "Search", &max, out, nout,
					     r);
	if (!t)
		return r->status;
	struct wbxml_node *root = wbxml_child(t, WB_SRCH_SEARCH);
	struct wbxml_node *store = wbxml_path(root, WB_SRCH_RESPONSE,
					      WB_SRCH_STORE, 0);
	const char *st;
	if (!root) {
		be_result_set(r, BE_PROTOCOL,
			      "Search answer with another root element");
	} else if (eas_status("Search", wbxml_child_text(root, WB_SRCH_STATUS),
			      r) != BE_OK) {
		/* graded */
	} else if (!store) {
		be_result_set(r, BE_PROTOCOL, "Search answer without a Store");
	} else if (!(st = wbxml_child_text(store, WB_SRCH_STATUS)) ||
		   strcmp(st, "1")) {
		be_result_set(r, BE_REFUSED,
			      "the server refused to search its directory (Search status %.12s)",
			      st ? st : "missing");
	}
	if (r->status != BE_OK)
		goto out;
	struct be_person *v = NULL;
	size_t k = 0;
	for (struct wbxml_node *res = wbxml_child(store, WB_SRCH_RESULT);
	     res && k < max; res = wbxml_next(res)) {
		struct wbxml_node *pr = wbxml_child(res, WB_SRCH_PROPERTIES);
		const char *name = field(pr, WB_GAL_DISPLAY_NAME);
		const char *addr = field(pr, WB_GAL_EMAIL_ADDRESS);
		add_person(&v, &k, max, name, addr, BE_PERSON_DIRECTORY);
	}
	*out = v;
	*nout = k;
out:
	wbxml_free(t);
	return r->status;
}

/* The directory search after a ResolveRecipients that found no one; its
 * failure (a server without Search) leaves the answer at no one. */
static void gal_search(struct be_session *s, const char *query, unsigned max,
		       struct be_person **out, size_t *n)
{
	struct buf req, ans;
	struct be_result r;
	buf_init(&req, 0);
	eas_req_gal_search(&req, query, max);
	if (eas_call(s, "Search", &req, false, &ans, &r) != BE_OK ||
	    eas_parse_gal_search(ans.data, ans.len, max, out, n, &r) != BE_OK)
		log_dbg(LC_HTTP, "Search of the directory: %s", r.msg);
	buf_free(&req);
	buf_free(&ans);
}

enum be_status eas_resolve_names(struct be_session *s, const char *query,
				 unsigned max, struct be_person **out,
				 size_t *n, struct be_result *r)
{
	*out = NULL;
	*n = 0;
	if (!query || !*query || strlen(query) > RR_FIELD_MAX) {
		be_result_set(r, BE_REFUSED, "a name to look up has 1 to %d bytes",
			      RR_FIELD_MAX);
		return r->status;
	}
	struct buf req, ans;
	buf_init(&req, 0);
	eas_req_resolve(&req, query, max, 0);
	if (eas_call(s, "ResolveRecipients", &req, false, &ans, r) == BE_OK &&
	    !ans.len && eas_version_at_least(eas_session_version(s), "14.0")) {
		log_dbg(LC_HTTP, "ResolveRecipients: empty answer, asking again "
			"with Availability");
		buf_free(&req);
		buf_free(&ans);
		buf_init(&req, 0);
		eas_req_resolve(&req, query, max, (int64_t)time(NULL));
		eas_call(s, "ResolveRecipients", &req, false, &ans, r);
	}
	if (r->status == BE_OK &&
	    eas_parse_resolve(ans.data, ans.len, max ? max : 1, out, n, r) ==
		    BE_OK && !*n)
		gal_search(s, query, max ? max : 1, out, n);
	buf_free(&req);
	buf_free(&ans);
	return r->status;
}
