/*
 * eas_fetch.c - ItemOperations Fetch with no network: the request for
 * several messages of one folder, and the answer's parser, fed as HTTP
 * delivers it, that streams each message's MIME (opaque data) to the
 * caller's sink and reports each message once (MS-ASCMD ItemOperations).
 * Split from eas_proto.c; eas.c sends it, the unit tests and the fuzzer
 * call it directly.
 */
#include "backend/eas/eas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- ItemOperations Fetch, streamed ---- */

/* One Fetch element per item (MS-ASCMD ItemOperations: 0..N Fetch; the
 * answer has one Fetch per item, each with its own Status). */
void eas_req_fetch_n(struct buf *b, const char *const *collections,
		     const char *const *server_ids, size_t n)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_IO_ITEM_OPERATIONS);
	for (size_t i = 0; i < n; i++) {
		wbxml_start(&e, WB_IO_FETCH);
		wbxml_str(&e, WB_IO_STORE, "Mailbox");
		wbxml_str(&e, WB_AS_COLLECTION_ID, collections[i]);
		wbxml_str(&e, WB_AS_SERVER_ID, server_ids[i]);
		wbxml_start(&e, WB_IO_OPTIONS);
		wbxml_str(&e, WB_AS_MIMESUPPORT, "2");
		wbxml_start(&e, WB_ASB_BODY_PREFERENCE);
		wbxml_str(&e, WB_ASB_TYPE, "4");
		wbxml_end(&e);
		wbxml_end(&e);
		wbxml_end(&e);
	}
	wbxml_end(&e);
}

void eas_req_fetch(struct buf *b, const char *collection,
		   const char *server_id)
{
	eas_req_fetch_n(b, &collection, &server_id, 1);
}

/* Where the decoder is, as far as the fetch cares. */
enum { F_SMALL_MAX = EAS_KEY_MAX + 1 };
struct eas_fetch {
	const char *const *ids;
	size_t n;
	bool *reported;
	be_sink_fn sink;
	be_done_fn done;
	void *arg;
	struct wbxml_dec dec;
	unsigned path[WBXML_MAX_DEPTH];
	int depth;
	/* the current Fetch element */
	char status[16], coll[F_SMALL_MAX], sid[F_SMALL_MAX];
	char top_status[16];
	char *target;          /* small text being captured, or NULL */
	size_t target_max, target_len;
	bool over;             /* a captured text was too long */
	bool in_data;          /* streaming MIME */
	bool got_data;
	long cur;              /* index of the current item, -1 unknown */
	size_t nth;            /* Fetch elements of the answer so far */
	bool sink_failed;
	char err[160];
};

static void report(struct eas_fetch *f, size_t i, enum be_status st,
		   const char *msg)
{
	if (i >= f->n || f->reported[i])
		return;
	f->reported[i] = true;
	if (f->done)
		f->done(f->arg, i, st, msg);
}

static long find_item(struct eas_fetch *f)
{
	size_t lc = strlen(f->coll);
	for (size_t i = 0; i < f->n; i++) {
		const char *id = f->ids[i];
		if (!f->reported[i] && !strncmp(id, f->coll, lc) &&
		    id[lc] == EAS_SEP && !strcmp(id + lc + 1, f->sid))
			return (long)i;
	}
	/* an answer without CollectionId: the ServerId alone */
	if (!lc)
		for (size_t i = 0; i < f->n; i++) {
			const char *sep = strchr(f->ids[i], EAS_SEP);
			if (!f->reported[i] && sep && !strcmp(sep + 1, f->sid))
				return (long)i;
		}
	return -1;
}

/* The item the current Fetch is about: by its ids, or when it names
 * none (they are optional in an answer) by position: the answer keeps the
 * request's order. */
static long current_item(struct eas_fetch *f)
{
	long i = find_item(f);
	if (i < 0 && !f->coll[0] && !f->sid[0] && f->nth < f->n &&
	    !f->reported[f->nth])
		i = (long)f->nth;
	return i;
}

static int f_start(void *arg, unsigned tag, bool empty)
{
	struct eas_fetch *f = arg;
	(void)empty;
	if (f->depth >= WBXML_MAX_DEPTH)
		return -1;
	f->path[f->depth++] = tag;
	f->target = NULL;
	/* ItemOperations > Response > Fetch > ... */
	if (f->depth == 3 && tag == WB_IO_FETCH && f->path[1] == WB_IO_RESPONSE) {
		f->status[0] = f->coll[0] = f->sid[0] = 0;
		f->got_data = false;
		f->cur = -1;
	} else if (f->depth == 2 && tag == WB_IO_STATUS) {
		f->target = f->top_status;
		f->target_max = sizeof(f->top_status);
	} else if (f->depth == 4 && f->path[2] == WB_IO_FETCH) {
		if (tag == WB_IO_STATUS) {
			f->target = f->status;
			f->target_max = sizeof(f->status);
		} else if (tag == WB_AS_COLLECTION_ID) {
			f->target = f->coll;
			f->target_max = sizeof(f->coll);
		} else if (tag == WB_AS_SERVER_ID) {
			f->target = f->sid;
			f->target_max = sizeof(f->sid);
		}
	} else if (f->depth == 6 && tag == WB_ASB_DATA &&
		   f->path[4] == WB_ASB_BODY && f->path[3] == WB_IO_PROPERTIES &&
		   f->path[2] == WB_IO_FETCH) {
		if (f->got_data) {
			snprintf(f->err, sizeof(f->err),
				 "ItemOperations answer: two bodies for one item");
			return -1;
		}
		f->cur = current_item(f);
		if (f->cur < 0) {
			snprintf(f->err, sizeof(f->err),
				 "ItemOperations answer: a body for an item not asked for");
			return -1;
		}
		f->in_data = true;
		f->got_data = true;
	}
	if (f->target) {
		f->target[0] = 0;
		f->target_len = 0;
	}
	return 0;
}

static int f_text(void *arg, const void *p, size_t n, bool last)
{
	struct eas_fetch *f = arg;
	(void)last;
	if (f->in_data) {
		if (n && f->sink(f->arg, (size_t)f->cur, p, n)) {
			f->sink_failed = true;
			return -1;
		}
		return 0;
	}
	if (!f->target)
		return 0;
	if (n >= f->target_max - f->target_len) {
		f->over = true;
		snprintf(f->err, sizeof(f->err),
			 "ItemOperations answer: an id or status too long");
		return -1;
	}
	memcpy(f->target + f->target_len, p, n);
	f->target_len += n;
	f->target[f->target_len] = 0;
	return 0;
}

static int f_end(void *arg, unsigned tag)
{
	struct eas_fetch *f = arg;
	struct be_result r;
	f->target = NULL;
	if (f->in_data && tag == WB_ASB_DATA)
		f->in_data = false;
	if (f->depth == 3 && tag == WB_IO_FETCH) {
		long i = f->cur >= 0 ? f->cur : current_item(f);
		f->nth++;
		if (i < 0) {
			snprintf(f->err, sizeof(f->err),
				 "ItemOperations answer about an item not asked for");
			return -1;
		}
		if (eas_status("ItemOperations", f->status, &r) != BE_OK)
			report(f, (size_t)i, r.status, r.msg);
		else if (!f->got_data)
			report(f, (size_t)i, BE_PROTOCOL,
			       "ItemOperations answer without the message");
		else
			report(f, (size_t)i, BE_OK, "");
	}
	if (f->depth > 0)
		f->depth--;
	return 0;
}

struct eas_fetch *eas_fetch_new(const char *const *ids, size_t n,
				be_sink_fn sink, be_done_fn done, void *arg)
{
	struct eas_fetch *f = xcalloc(1, sizeof(*f));
	f->ids = ids;
	f->n = n;
	f->reported = xcalloc(n ? n : 1, sizeof(bool));
	f->sink = sink;
	f->done = done;
	f->arg = arg;
	f->cur = -1;
	struct wbxml_handler h = { f_start, f_end, f_text, f };
	wbxml_dec_init(&f->dec, &h);
	return f;
}

int eas_fetch_feed(struct eas_fetch *f, const void *p, size_t n)
{
	return wbxml_feed(&f->dec, p, n);
}

void eas_fetch_fail_rest(struct eas_fetch *f, enum be_status st,
			 const char *msg)
{
	for (size_t i = 0; i < f->n; i++)
		report(f, i, st, msg);
}

enum be_status eas_fetch_finish(struct eas_fetch *f, struct be_result *r)
{
	be_result_ok(r);
	if (f->sink_failed) {
		be_result_set(r, BE_REFUSED, "transfer aborted by receiver");
	} else if (f->err[0]) {
		be_result_set(r, BE_PROTOCOL, "%s", f->err);
	} else if (wbxml_dec_finish(&f->dec)) {
		be_result_set(r, BE_PROTOCOL, "ItemOperations answer: malformed WBXML: %s",
			      f->dec.err);
	} else if (f->top_status[0] &&
		   eas_status("ItemOperations", f->top_status, r) != BE_OK) {
		/* graded in r */
	} else {
		eas_fetch_fail_rest(f, BE_PROTOCOL,
				    "the server's answer did not include this message");
	}
	if (r->status != BE_OK)
		eas_fetch_fail_rest(f, r->status, r->msg);
	return r->status;
}

bool eas_fetch_reported(const struct eas_fetch *f, size_t i)
{
	return i < f->n && f->reported[i];
}

bool eas_fetch_failed_whole(const struct eas_fetch *f, struct be_result *r)
{
	be_result_ok(r);
	if (f->sink_failed || f->err[0] || !f->top_status[0] ||
	    eas_status("ItemOperations", f->top_status, r) == BE_OK)
		return false;
	if (r->status == BE_AUTH || r->status == BE_THROTTLED ||
	    r->status == BE_UNSUPPORTED)
		return false;
	for (size_t i = 0; i < f->n; i++)
		if (!f->reported[i])
			return true;
	return false;
}

bool eas_fetch_wants_provision(const struct eas_fetch *f)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->reported[i])
			return false;
	return !strcmp(f->top_status, "142") || !strcmp(f->top_status, "143") ||
	       !strcmp(f->top_status, "144");
}

void eas_fetch_free(struct eas_fetch *f)
{
	if (!f)
		return;
	free(f->reported);
	free(f);
}
