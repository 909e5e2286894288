/*
 * ews_mime.c - a GetItem answer, parsed as it streams in: the text of each
 * t:MimeContent is base64-decoded piece by piece and handed to the sink;
 * each m:GetItemResponseMessage ends with done(index, grade).  Nothing
 * holds a whole message: libxml2's push parser hands text over in pieces,
 * the decoder keeps at most one group of four characters and a 3 KiB
 * output block, and only short fields (codes, texts) are copied.
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Short text fields captured while streaming. */
enum capture { CAP_NONE, CAP_CODE, CAP_TEXT, CAP_BACKOFF };

struct ews_mime_stream {
	struct xml_push *xp;
	size_t n;              /* items requested */
	size_t index;          /* response messages started */
	size_t reported;       /* items given to done() so far (in order) */
	be_sink_fn sink;
	be_done_fn done;
	void *arg;

	int depth;             /* current element depth (root = 1) */
	int msg_depth;         /* depth of the open response message, 0 none */
	int fault_depth;       /* depth of an open soap:Fault, 0 none */
	bool saw_body;         /* soap:Body seen under the Envelope */

	/* the open response message (or fault) */
	char cls[16];          /* ResponseClass */
	char code[64];
	char text[256];
	char backoff[24];
	enum capture cap;
	int cap_depth;
	size_t cap_len;
	bool cap_over;

	bool in_mime, mime_seen, mime_bad;
	struct b64_stream b64;

	bool sink_aborted;
	bool fault;            /* a soap:Fault ended */
	struct be_result fault_r;
	uint32_t max_backoff;  /* of throttled items */
	char err[200];         /* first structural error */
};

static int bad(struct ews_mime_stream *ms, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(struct ews_mime_stream *ms, const char *fmt, ...)
{
	if (!ms->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ms->err, sizeof(ms->err), fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int mime_out(void *arg, const void *data, size_t len)
{
	struct ews_mime_stream *ms = arg;
	if (ms->sink(ms->arg, ms->index - 1, data, len)) {
		ms->sink_aborted = true;
		return -1;
	}
	return 0;
}

static void report(struct ews_mime_stream *ms, enum be_status st,
		   const char *msg)
{
	if (ms->reported < ms->n)
		ms->done(ms->arg, ms->reported++, st, msg);
}

static void start_capture(struct ews_mime_stream *ms, enum capture c)
{
	char *dst = c == CAP_CODE ? ms->code
		  : c == CAP_TEXT ? ms->text : ms->backoff;
	dst[0] = 0;
	ms->cap = c;
	ms->cap_depth = ms->depth;
	ms->cap_len = 0;
	ms->cap_over = false;
}

static void capture_text(struct ews_mime_stream *ms, const char *s, size_t len)
{
	char *dst;
	size_t size;
	switch (ms->cap) {
	case CAP_CODE: dst = ms->code; size = sizeof(ms->code); break;
	case CAP_TEXT: dst = ms->text; size = sizeof(ms->text); break;
	case CAP_BACKOFF: dst = ms->backoff; size = sizeof(ms->backoff); break;
	default: return;
	}
	size_t room = size - 1 - ms->cap_len;
	if (len > room) {
		len = room;
		ms->cap_over = true;
	}
	memcpy(dst + ms->cap_len, s, len);
	ms->cap_len += len;
	dst[ms->cap_len] = 0;
}

/* Trim XML white space in place. */
static char *trim(char *s)
{
	size_t lead = strspn(s, " \t\r\n"), len = strlen(s + lead);
	memmove(s, s + lead, len + 1);
	while (len && strchr(" \t\r\n", s[len - 1]))
		s[--len] = 0;
	return s;
}

static void begin_message(struct ews_mime_stream *ms,
			  const struct xml_attrs *a)
{
	ms->msg_depth = ms->depth;
	ms->index++;
	if (xml_attrs_get(a, "ResponseClass", ms->cls, sizeof(ms->cls)))
		ms->cls[0] = 0;
	ms->code[0] = ms->text[0] = ms->backoff[0] = 0;
	ms->mime_seen = ms->mime_bad = false;
}

static void end_message(struct ews_mime_stream *ms)
{
	struct be_result r;
	const char *code = trim(ms->code);
	bool ok = ews_response_ok(ms->cls[0] ? ms->cls : NULL, code);

	ms->msg_depth = 0;
	if (ok && ms->mime_bad) {
		report(ms, BE_PROTOCOL, "bad base64 in MimeContent");
	} else if (ok && !ms->mime_seen) {
		report(ms, BE_PROTOCOL, "no MimeContent in the answer");
	} else if (ok) {
		report(ms, BE_OK, NULL);
	} else {
		ews_error_set(&r, *code ? code : "ErrorUnknown", trim(ms->text),
			      ews_backoff_parse(ms->backoff), EWS_ON_ITEM);
		if (r.status == BE_OK)
			be_result_set(&r, BE_PROTOCOL,
				      "error answer with ResponseCode NoError");
		if (r.status == BE_THROTTLED &&
		    r.retry_after_ms > ms->max_backoff)
			ms->max_backoff = r.retry_after_ms;
		report(ms, r.status, r.msg);
	}
}

static int on_start(void *arg, const char *ns, const char *name,
		    const struct xml_attrs *a)
{
	struct ews_mime_stream *ms = arg;
	char v[32];

	ms->depth++;
	if (ms->depth == 1 && !(ns && !strcmp(ns, EWS_NS_SOAP) &&
				!strcmp(name, "Envelope")))
		return bad(ms, "answer is not a SOAP envelope");
	if (ms->depth == 2 && ns && !strcmp(ns, EWS_NS_SOAP) &&
	    !strcmp(name, "Body"))
		ms->saw_body = true;
	if (ms->depth > 64)
		return bad(ms, "XML nested too deeply");
	if (ms->in_mime)
		return bad(ms, "element inside MimeContent");
	if (ms->cap != CAP_NONE)
		return 0;  /* nested in a short field: ignore */

	bool in_m = ns && !strcmp(ns, EWS_NS_M);
	if (ms->fault_depth || ms->msg_depth) {
		if (in_m && !strcmp(name, "GetItemResponseMessage"))
			return bad(ms, "response message inside another");
		if (!strcmp(name, "Value") &&
		    !xml_attrs_get(a, "Name", v, sizeof(v)) &&
		    !strcmp(v, "BackOffMilliseconds"))
			start_capture(ms, CAP_BACKOFF);
	}
	if (ms->msg_depth) {
		if (in_m && !strcmp(name, "ResponseCode")) {
			start_capture(ms, CAP_CODE);
		} else if (in_m && !strcmp(name, "MessageText")) {
			start_capture(ms, CAP_TEXT);
		} else if (ns && !strcmp(ns, EWS_NS_T) &&
			   !strcmp(name, "MimeContent")) {
			if (ms->mime_seen)
				return bad(ms, "two MimeContent in one answer");
			ms->mime_seen = ms->in_mime = true;
			b64_stream_init(&ms->b64, mime_out, ms);
		}
	} else if (ms->fault_depth) {
		if (!strcmp(name, "ResponseCode"))
			start_capture(ms, CAP_CODE);
		else if (!strcmp(name, "faultstring"))
			start_capture(ms, CAP_TEXT);
		else if (!strcmp(name, "faultcode") && !ms->code[0])
			start_capture(ms, CAP_CODE);
	} else if (in_m && !strcmp(name, "GetItemResponseMessage")) {
		if (ms->index >= ms->n)
			return bad(ms, "more answers than the %zu items asked for",
				   ms->n);
		begin_message(ms, a);
	} else if (ns && !strcmp(ns, EWS_NS_SOAP) && !strcmp(name, "Fault")) {
		ms->fault_depth = ms->depth;
		ms->code[0] = ms->text[0] = ms->backoff[0] = 0;
	}
	return 0;
}

static int on_end(void *arg, const char *ns, const char *name)
{
	struct ews_mime_stream *ms = arg;
	(void)ns; (void)name;

	if (ms->cap != CAP_NONE && ms->depth == ms->cap_depth)
		ms->cap = CAP_NONE;
	if (ms->in_mime) {
		ms->in_mime = false;
		if (!ms->mime_bad && b64_stream_finish(&ms->b64))
			ms->mime_bad = true;
		if (ms->sink_aborted)
			return -1;
	}
	if (ms->msg_depth == ms->depth) {
		end_message(ms);
	} else if (ms->fault_depth == ms->depth) {
		/* a faultcode QName such as a:ErrorServerBusy */
		char *code = trim(ms->code), *colon = strrchr(code, ':');
		if (colon)
			code = colon + 1;
		ews_error_set(&ms->fault_r, *code ? code : "SoapFault",
			      trim(ms->text), ews_backoff_parse(ms->backoff),
			      EWS_ON_ITEM);
		if (ms->fault_r.status == BE_OK)
			be_result_set(&ms->fault_r, BE_PROTOCOL,
				      "SOAP fault with code NoError");
		ms->fault = true;
		ms->fault_depth = 0;
	}
	ms->depth--;
	return 0;
}

static int on_text(void *arg, const char *s, size_t len)
{
	struct ews_mime_stream *ms = arg;
	if (ms->in_mime) {
		if (!ms->mime_bad && b64_stream_feed(&ms->b64, s, len)) {
			if (ms->sink_aborted)
				return -1;
			ms->mime_bad = true;  /* this item fails, go on */
		}
	} else if (ms->cap != CAP_NONE) {
		capture_text(ms, s, len);
	}
	return 0;
}

struct ews_mime_stream *ews_mime_stream_new(size_t n, be_sink_fn sink,
					    be_done_fn done, void *arg)
{
	static const struct xml_push_cb cb = { on_start, on_end, on_text };
	struct ews_mime_stream *ms = xcalloc(1, sizeof(*ms));
	ms->n = n;
	ms->sink = sink;
	ms->done = done;
	ms->arg = arg;
	ms->xp = xml_push_new(&cb, ms);
	return ms;
}

int ews_mime_stream_feed(struct ews_mime_stream *ms, const void *data,
			 size_t len)
{
	return xml_push_feed(ms->xp, data, len);
}

enum be_status ews_mime_stream_finish(struct ews_mime_stream *ms,
				      struct be_result *r)
{
	be_result_ok(r);
	if (ms->sink_aborted) {
		be_result_set(r, BE_REFUSED, "transfer aborted by receiver");
	} else if (ms->err[0]) {
		be_result_set(r, BE_PROTOCOL, "%s", ms->err);
	} else if (xml_push_finish(ms->xp)) {
		/* the sink may have aborted inside the last bytes */
		if (ms->sink_aborted)
			be_result_set(r, BE_REFUSED,
				      "transfer aborted by receiver");
		else
			be_result_set(r, BE_PROTOCOL, "%s",
				      ms->err[0] ? ms->err
						 : xml_push_error(ms->xp));
	} else if (ms->fault) {
		*r = ms->fault_r;
	} else if (!ms->saw_body) {
		be_result_set(r, BE_PROTOCOL, "SOAP envelope without a Body");
	} else if (ms->reported < ms->n) {
		be_result_set(r, BE_PROTOCOL,
			      "server answered %zu of %zu items", ms->reported,
			      ms->n);
		ews_mime_stream_fail_rest(ms, BE_PROTOCOL,
					  "no answer for this item");
	}
	if (r->status == BE_OK)
		r->retry_after_ms = ms->max_backoff;
	return r->status;
}

void ews_mime_stream_fail_rest(struct ews_mime_stream *ms, enum be_status st,
			       const char *msg)
{
	while (ms->reported < ms->n)
		report(ms, st, msg);
}

void ews_mime_stream_free(struct ews_mime_stream *ms)
{
	if (!ms)
		return;
	xml_push_free(ms->xp);
	free(ms);
}
