/*
 * ews_notify.c - notifications for the EWS backend: the watch operation
 * (backend.h) over a streaming subscription (Subscribe, then one
 * GetStreamingEvents request whose chunked answer is a stream of SOAP
 * envelopes) or, where the server refuses streaming, a pull subscription
 * (GetEvents every few seconds).  Per MS-OXWSNTIF; docs/ews-subset.md,
 * "Client: notifications".
 *
 * In four parts, the first three pure functions over bytes (unit tests and
 * tests/fuzz/fuzz_ews_events.c call them without HTTP):
 *   - requests: Subscribe, GetStreamingEvents, GetEvents, Unsubscribe;
 *   - the stream splitter: bytes -> complete envelopes, each capped;
 *   - the parsers: a Subscribe answer, and one envelope's events
 *     collapsed into what the core needs (folders whose items changed,
 *     hierarchy changed, move hints);
 *   - watch(): subscription kept in the session across calls, the stream
 *     or the pull loop, cancellation, loss and fallback.
 */
#include "backend/ews/ews.h"
#include "backend/http.h"
#include "backend/xml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- requests ---- */

static const char *const event_types[] = {
	"NewMailEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent",
	"MovedEvent", "CopiedEvent",
};

void ews_req_subscribe(struct buf *b, const char *version,
		       const char *const *folder_ids, size_t n, bool streaming,
		       unsigned pull_timeout_min)
{
	const char *form = streaming ? "StreamingSubscriptionRequest"
				     : "PullSubscriptionRequest";
	ews_req_open(b, version);
	(void)buf_printf(b, "<m:Subscribe><m:%s><t:FolderIds>", form);
	for (size_t i = 0; i < n; i++) {
		(void)buf_puts(b, "<t:FolderId Id=\"");
		(void)buf_put_xml_escaped(b, folder_ids[i]);
		(void)buf_puts(b, "\"/>");
	}
	(void)buf_puts(b, "</t:FolderIds><t:EventTypes>");
	for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]);
	     i++)
		(void)buf_printf(b, "<t:EventType>%s</t:EventType>",
				 event_types[i]);
	(void)buf_puts(b, "</t:EventTypes>");
	/* PullSubscriptionRequestType: Timeout after the base sequence
	 * (FolderIds, EventTypes, Watermark), 1 to 1440 minutes */
	if (!streaming)
		(void)buf_printf(b, "<t:Timeout>%u</t:Timeout>",
				 pull_timeout_min < 1 ? 1
				 : pull_timeout_min > 1440 ? 1440
							   : pull_timeout_min);
	(void)buf_printf(b, "</m:%s></m:Subscribe>", form);
	ews_req_close(b);
}

void ews_req_get_streaming_events(struct buf *b, const char *version,
				  const char *sub_id, unsigned minutes)
{
	ews_req_open(b, version);
	(void)buf_puts(b, "<m:GetStreamingEvents><m:SubscriptionIds>"
			  "<t:SubscriptionId>");
	(void)buf_put_xml_escaped(b, sub_id);
	(void)buf_printf(b, "</t:SubscriptionId></m:SubscriptionIds>"
			 "<m:ConnectionTimeout>%u</m:ConnectionTimeout>"
			 "</m:GetStreamingEvents>",
			 minutes < 1 ? 1 : minutes > 30 ? 30 : minutes);
	ews_req_close(b);
}

void ews_req_get_events(struct buf *b, const char *version,
			const char *sub_id, const char *watermark)
{
	ews_req_open(b, version);
	(void)buf_puts(b, "<m:GetEvents><m:SubscriptionId>");
	(void)buf_put_xml_escaped(b, sub_id);
	(void)buf_puts(b, "</m:SubscriptionId><m:Watermark>");
	(void)buf_put_xml_escaped(b, watermark);
	(void)buf_puts(b, "</m:Watermark></m:GetEvents>");
	ews_req_close(b);
}

void ews_req_unsubscribe(struct buf *b, const char *version,
			 const char *sub_id)
{
	ews_req_open(b, version);
	(void)buf_puts(b, "<m:Unsubscribe><m:SubscriptionId>");
	(void)buf_put_xml_escaped(b, sub_id);
	(void)buf_puts(b, "</m:SubscriptionId></m:Unsubscribe>");
	ews_req_close(b);
}

/* ---- the stream splitter ----
 * A small lexer that knows just enough XML to find where each top-level
 * element ends: start tags (quoted attribute values may hold '>'), end
 * tags, empty-element tags, comments, CDATA sections and processing
 * instructions.  Whether an envelope is well-formed is the parser's
 * business; the lexer only has to be deterministic, so its outcome does
 * not depend on how the bytes were cut. */

enum sp_state {
	SP_OUT,      /* between envelopes */
	SP_TEXT,     /* inside an envelope, in character data */
	SP_LT,       /* after '<' */
	SP_STAG,     /* in a start tag */
	SP_ETAG,     /* in an end tag */
	SP_PI,       /* in <? ... ?> */
	SP_BANG,     /* after "<!" */
	SP_COMMENT,  /* in <!-- ... --> */
	SP_CDATA,    /* in <![CDATA[ ... ]]> */
};

struct ews_stream {
	struct buf doc;      /* the envelope (or construct between envelopes)
				read so far, at most cap bytes */
	size_t cap;
	enum sp_state st;
	bool in_env;         /* an envelope's root element has started */
	size_t depth;        /* its open elements */
	char quote;          /* SP_STAG: the open quote, or 0 */
	char last;           /* SP_STAG: the character before, outside
				quotes */
	int run;             /* '?' (PI), '-' (comment), ']' (CDATA) just
				before */
	int bang;            /* SP_BANG: characters matched */
	bool bang_cdata;     /* SP_BANG: "[CDATA[" rather than "--" */
	bool failed;
	char err[96];
};

struct ews_stream *ews_stream_new(size_t cap)
{
	struct ews_stream *es = xcalloc(1, sizeof(*es));
	es->cap = cap;
	buf_init(&es->doc, cap);
	return es;
}

void ews_stream_free(struct ews_stream *es)
{
	if (!es)
		return;
	buf_free(&es->doc);
	free(es);
}

bool ews_stream_partial(const struct ews_stream *es)
{
	return es->in_env;
}

const char *ews_stream_error(const struct ews_stream *es)
{
	return es->err;
}

static int sp_fail(struct ews_stream *es, const char *what)
{
	es->failed = true;
	snprintf(es->err, sizeof(es->err), "%s", what);
	return -1;
}

/* What one byte does.  Returns 0 (go on), 1 (an envelope ended with this
 * byte), 2 (a construct between envelopes ended: its bytes can go), or -1. */
static int sp_step(struct ews_stream *es, unsigned char c)
{
	switch (es->st) {
	case SP_OUT:
		/* white space, and a UTF-8 byte order mark, are dropped */
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
		    c == 0xef || c == 0xbb || c == 0xbf)
			return 2;
		if (c != '<')
			return sp_fail(es, "text between envelopes");
		es->st = SP_LT;
		return 0;
	case SP_TEXT:
		if (c == '<')
			es->st = SP_LT;
		return 0;
	case SP_LT:
		if (c == '/') {
			if (!es->in_env)
				return sp_fail(es,
					       "end tag outside an envelope");
			es->st = SP_ETAG;
		} else if (c == '?') {
			es->st = SP_PI;
			es->run = 0;
		} else if (c == '!') {
			es->st = SP_BANG;
			es->bang = 0;
		} else {
			if (!es->in_env) {
				es->in_env = true;
				es->depth = 0;
			}
			es->st = SP_STAG;
			es->quote = 0;
			es->last = (char)c;
		}
		return 0;
	case SP_STAG:
		if (es->quote) {
			if (c == (unsigned char)es->quote)
				es->quote = 0;
			es->last = (char)c;
			return 0;
		}
		if (c == '"' || c == '\'') {
			es->quote = (char)c;
			es->last = (char)c;
			return 0;
		}
		if (c != '>') {
			es->last = (char)c;
			return 0;
		}
		es->st = SP_TEXT;
		if (es->last != '/')
			es->depth++;
		return es->depth == 0 ? 1 : 0;   /* <Envelope/> */
	case SP_ETAG:
		if (c != '>')
			return 0;
		if (es->depth == 0)
			return sp_fail(es, "unbalanced end tag");
		es->st = SP_TEXT;
		return --es->depth == 0 ? 1 : 0;
	case SP_PI:
		if (es->run && c == '>') {
			es->st = es->in_env ? SP_TEXT : SP_OUT;
			return es->in_env ? 0 : 2;
		}
		es->run = c == '?';
		return 0;
	case SP_BANG: {
		/* "<!--", or "<![CDATA[" inside an envelope; anything else
		 * (a DOCTYPE above all) is refused */
		if (es->bang == 0)
			es->bang_cdata = c == '[';
		const char *want = es->bang_cdata ? "[CDATA[" : "--";
		if ((es->bang_cdata && !es->in_env) ||
		    c != (unsigned char)want[es->bang])
			return sp_fail(es, "document type declaration or "
					   "unknown markup in the stream");
		if (want[++es->bang] == 0) {
			es->st = es->bang_cdata ? SP_CDATA : SP_COMMENT;
			es->run = 0;
		}
		return 0;
	}
	case SP_COMMENT:
		if (c == '>' && es->run >= 2) {
			es->st = es->in_env ? SP_TEXT : SP_OUT;
			return es->in_env ? 0 : 2;
		}
		es->run = c == '-' ? es->run + 1 : 0;
		return 0;
	case SP_CDATA:
		if (c == '>' && es->run >= 2) {
			es->st = SP_TEXT;
			return 0;
		}
		es->run = c == ']' ? es->run + 1 : 0;
		return 0;
	}
	return sp_fail(es, "bad state");
}

int ews_stream_feed(struct ews_stream *es, const void *data, size_t len,
		    ews_envelope_fn env, void *arg)
{
	const char *d = data;
	size_t seg = 0;   /* first byte of d not yet in es->doc */

	if (es->failed)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (es->doc.len + (i - seg) + 1 > es->cap) {
			char m[64];
			snprintf(m, sizeof(m), "envelope larger than %zu bytes",
				 es->cap);
			return sp_fail(es, m);
		}
		int step = sp_step(es, (unsigned char)d[i]);
		if (step < 0)
			return -1;
		if (step == 0)
			continue;
		if (step == 1) {
			(void)buf_append(&es->doc, d + seg, i + 1 - seg);
			es->in_env = false;
			es->st = SP_OUT;
			int rc = env(arg, es->doc.data, es->doc.len);
			buf_reset(&es->doc);
			seg = i + 1;
			if (rc) {
				es->failed = true;
				return -1;
			}
		} else {
			/* what lies between envelopes is not kept */
			buf_reset(&es->doc);
			seg = i + 1;
		}
	}
	(void)buf_append(&es->doc, d + seg, len - seg);
	return 0;
}

/* ---- parsers ---- */

/* The text of n without leading and trailing XML white space (owned), or
 * NULL after ews_fail() when longer than cap. */
static char *trimmed_text(struct pctx *p, const xmlNode *n, size_t cap,
			  const char *what)
{
	char *s = NULL;
	if (xml_text(n, cap + 64, &s)) {
		ews_fail(p, "%s longer than %zu bytes", what, cap);
		return NULL;
	}
	size_t lead = strspn(s, " \t\r\n"), len = strlen(s + lead);
	while (len && strchr(" \t\r\n", s[lead + len - 1]))
		len--;
	if (len > cap) {
		free(s);
		ews_fail(p, "%s longer than %zu bytes", what, cap);
		return NULL;
	}
	memmove(s, s + lead, len);
	s[len] = 0;
	return s;
}

/* The Id attribute of the child `name` (T namespace), NULL if there is no
 * such child; an empty or over-long Id fails. */
static char *child_id(struct pctx *p, const xmlNode *parent, const char *name)
{
	const xmlNode *n = xml_child(parent, EWS_NS_T, name);
	char *v = NULL;
	if (!n)
		return NULL;
	if (xml_attr(n, "Id", EWS_ID_MAX, &v))
		ews_fail(p, "%s Id longer than %d bytes", name, EWS_ID_MAX);
	else if (!v || !*v)
		ews_fail(p, "%s without Id", name);
	if (p->failed) {
		free(v);
		return NULL;
	}
	return v;
}

enum be_status ews_parse_subscribe(const char *data, size_t len,
				   char **sub_id, char **watermark,
				   struct be_result *r)
{
	xmlDoc *doc = NULL;
	struct pctx p = { r, false };
	*sub_id = *watermark = NULL;
	be_result_ok(r);
	const xmlNode *body = ews_open_body(data, len, EWS_EVENTS_MAX, &doc, EWS_ON_FOLDER, r);
	if (!body)
		goto out;
	const xmlNode *msg = xml_child(ews_response_messages(body), EWS_NS_M,
				       "SubscribeResponseMessage");
	if (!msg) {
		be_result_set(r, BE_PROTOCOL,
			      "no SubscribeResponseMessage in the answer");
		goto out;
	}
	if (ews_message_result(msg, EWS_ON_FOLDER, r) != BE_OK)
		goto out;
	const xmlNode *n = xml_child(msg, EWS_NS_M, "SubscriptionId");
	if (!n) {
		ews_fail(&p, "no SubscriptionId in the Subscribe answer");
		goto out;
	}
	*sub_id = trimmed_text(&p, n, EWS_ID_MAX, "SubscriptionId");
	if (*sub_id && !**sub_id)
		ews_fail(&p, "empty SubscriptionId in the Subscribe answer");
	n = xml_child(msg, EWS_NS_M, "Watermark");
	if (n && !p.failed)
		*watermark = trimmed_text(&p, n, EWS_ID_MAX, "Watermark");
out:
	if (r->status != BE_OK) {
		free(*sub_id);
		free(*watermark);
		*sub_id = *watermark = NULL;
	}
	xmlFreeDoc(doc);
	return r->status;
}

void ews_events_free(struct ews_events *e)
{
	for (size_t i = 0; i < e->n_folders; i++)
		free(e->folders[i]);
	free(e->folders);
	for (size_t i = 0; i < e->n_moved; i++) {
		free(e->moved[i].old_id);
		free(e->moved[i].old_folder_id);
		free(e->moved[i].new_id);
		free(e->moved[i].new_folder_id);
	}
	free(e->moved);
	free(e->watermark);
	memset(e, 0, sizeof(*e));
}

/* Add a folder once; past the cap the batch says "sync everything". */
static void add_folder(struct ews_events *e, const char *id)
{
	for (size_t i = 0; i < e->n_folders; i++)
		if (!strcmp(e->folders[i], id))
			return;
	if (e->n_folders == EWS_EVENTS_FOLDERS_MAX) {
		e->lost = true;
		return;
	}
	if ((e->n_folders & (e->n_folders - 1)) == 0)  /* 0, 1, 2, 4, ... */
		e->folders = xrealloc(e->folders, (e->n_folders ? 2 * e->n_folders
							       : 1) *
						  sizeof(*e->folders));
	e->folders[e->n_folders++] = xstrdup(id);
}

static void add_moved(struct ews_events *e, const struct ews_moved *m)
{
	if (e->n_moved == EWS_EVENTS_MOVED_MAX)
		return;   /* only hints: the sync pages decide */
	if ((e->n_moved & (e->n_moved - 1)) == 0)
		e->moved = xrealloc(e->moved, (e->n_moved ? 2 * e->n_moved : 1) *
					      sizeof(*e->moved));
	struct ews_moved *d = &e->moved[e->n_moved++];
	d->old_id = xstrdup(m->old_id);
	d->old_folder_id = xstrdup(m->old_folder_id);
	d->new_id = xstrdup(m->new_id);
	d->new_folder_id = xstrdup(m->new_folder_id);
}

void ews_events_merge(struct ews_events *dst, const struct ews_events *src)
{
	for (size_t i = 0; i < src->n_folders; i++)
		add_folder(dst, src->folders[i]);
	for (size_t i = 0; i < src->n_moved; i++)
		add_moved(dst, &src->moved[i]);
	dst->hierarchy |= src->hierarchy;
	dst->lost |= src->lost;
	dst->n_events += src->n_events;
}

bool ews_events_any(const struct ews_events *e)
{
	return e->n_folders || e->hierarchy || e->lost || e->n_moved;
}

/* The events that carry an object (BaseObjectChangedEventType); the others
 * (StatusEvent, FreeBusyChangedEvent, anything newer) only move the
 * watermark. */
static bool object_event(const char *name, bool *moved_or_copied)
{
	static const char *const names[] = {
		"NewMailEvent", "CreatedEvent", "DeletedEvent",
		"ModifiedEvent", "MovedEvent", "CopiedEvent",
	};
	*moved_or_copied = !strcmp(name, "MovedEvent") ||
			   !strcmp(name, "CopiedEvent");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

/* One event element into e. */
static void parse_event(struct pctx *p, const xmlNode *ev, struct ews_events *e)
{
	const char *name = (const char *)ev->name;
	bool mc;
	const xmlNode *wm = xml_child(ev, EWS_NS_T, "Watermark");
	char *item = NULL, *parent = NULL, *old_item = NULL,
	     *old_parent = NULL, *folder = NULL;

	e->n_events++;
	if (wm) {
		char *w = trimmed_text(p, wm, EWS_ID_MAX, "Watermark");
		if (w && *w) {
			free(e->watermark);
			e->watermark = w;
		} else {
			free(w);
		}
	}
	if (p->failed || !object_event(name, &mc))
		return;
	item = child_id(p, ev, "ItemId");
	folder = item ? NULL : child_id(p, ev, "FolderId");
	if (p->failed)
		goto out;
	if (!item && !folder) {
		ews_fail(p, "%.40s without ItemId or FolderId", name);
		goto out;
	}
	if (folder) {   /* a folder created, deleted, moved, renamed ... */
		e->hierarchy = true;
		goto out;
	}
	parent = child_id(p, ev, "ParentFolderId");
	if (mc) {
		old_item = child_id(p, ev, "OldItemId");
		old_parent = child_id(p, ev, "OldParentFolderId");
	}
	if (p->failed)
		goto out;
	if (!parent || (mc && !old_parent)) {
		ews_fail(p, "%.40s of an item without %s", name,
		     parent ? "OldParentFolderId" : "ParentFolderId");
		goto out;
	}
	add_folder(e, parent);
	if (mc)
		add_folder(e, old_parent);
	if (!strcmp(name, "MovedEvent") && old_item) {
		struct ews_moved m = { old_item, old_parent, item, parent };
		add_moved(e, &m);
	}
out:
	free(item);
	free(parent);
	free(old_item);
	free(old_parent);
	free(folder);
}

static void parse_notification(struct pctx *p, const xmlNode *n,
			       struct ews_events *e)
{
	const xmlNode *more = xml_child(n, EWS_NS_T, "MoreEvents");
	if (more) {
		char *v = trimmed_text(p, more, 64, "MoreEvents");
		bool b = false;
		if (v && xs_boolean(v, &b))
			ews_fail(p, "bad MoreEvents");
		e->more |= b;
		free(v);
	}
	/* (xml_child and xml_next match any element when name is NULL) */
	for (const xmlNode *c = xml_child(n, NULL, NULL); c && !p->failed;
	     c = xml_next(c, NULL, NULL)) {
		if (!xml_is(c, EWS_NS_T, NULL) ||
		    xml_is(c, EWS_NS_T, "SubscriptionId") ||
		    xml_is(c, EWS_NS_T, "PreviousWatermark") ||
		    xml_is(c, EWS_NS_T, "MoreEvents"))
			continue;
		parse_event(p, c, e);
	}
}

/* Notification elements are m: in the answers Exchange sends (the schema
 * would make those inside m:Notifications t:); either is taken. */
static bool is_notification(const xmlNode *n)
{
	return xml_is(n, EWS_NS_M, "Notification") ||
	       xml_is(n, EWS_NS_T, "Notification");
}

/* One response message (GetStreamingEventsResponseMessage or
 * GetEventsResponseMessage). */
static void parse_events_message(struct pctx *p, const xmlNode *msg,
				 struct ews_events *e)
{
	const xmlNode *errs = xml_child(msg, EWS_NS_M, "ErrorSubscriptionIds");
	if (ews_message_result(msg, EWS_ON_FOLDER, p->r) != BE_OK) {
		if (errs && p->r->status != BE_SYNC_INVALID)
			p->r->status = BE_SYNC_INVALID;
		p->failed = true;
		return;
	}
	if (errs && xml_child(errs, NULL, NULL)) {
		be_result_set(p->r, BE_SYNC_INVALID,
			      "the server reports the subscription in error "
			      "(ErrorSubscriptionIds)");
		snprintf(p->r->code, sizeof(p->r->code), "ErrorSubscriptionIds");
		p->failed = true;
		return;
	}
	for (const xmlNode *c = xml_child(msg, NULL, NULL); c && !p->failed;
	     c = xml_next(c, NULL, NULL)) {
		if (is_notification(c)) {
			parse_notification(p, c, e);
		} else if (xml_is(c, EWS_NS_M, "Notifications")) {
			for (const xmlNode *n = xml_child(c, NULL, NULL);
			     n && !p->failed; n = xml_next(n, NULL, NULL))
				if (is_notification(n))
					parse_notification(p, n, e);
		} else if (xml_is(c, EWS_NS_M, "ConnectionStatus")) {
			char *v = trimmed_text(p, c, 64, "ConnectionStatus");
			char q[48];
			if (!v)
				break;
			if (!strcmp(v, "OK"))
				e->conn = EWS_CONN_OK;
			else if (!strcmp(v, "Closed"))
				e->conn = EWS_CONN_CLOSED;
			else
				ews_fail(p, "bad ConnectionStatus '%s'",
				     ews_quote(v, q));
			free(v);
		}
	}
}

enum be_status ews_parse_events(const char *data, size_t len,
				struct ews_events *out, struct be_result *r)
{
	xmlDoc *doc = NULL;
	struct pctx p = { r, false };
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	const xmlNode *body = ews_open_body(data, len, EWS_EVENTS_MAX, &doc, EWS_ON_FOLDER, r);
	if (!body)
		goto out;
	const xmlNode *msgs = ews_response_messages(body);
	size_t n_msgs = 0;
	for (const xmlNode *m = xml_child(msgs, NULL, NULL); m && !p.failed;
	     m = xml_next(m, NULL, NULL))
		if (xml_is(m, EWS_NS_M, NULL)) {
			n_msgs++;
			parse_events_message(&p, m, out);
		}
	if (!n_msgs)
		be_result_set(r, BE_PROTOCOL,
			      "no response message in the events answer");
out:
	if (r->status != BE_OK)
		ews_events_free(out);
	xmlFreeDoc(doc);
	return r->status;
}

/* ---- watch() ---- */

/* The session's subscription, kept across calls. */
struct ews_watch {
	enum be_watch_mode mode;  /* of sub_id; BE_WATCH_NONE: none */
	char *sub_id;             /* owned */
	char *watermark;          /* owned: the last one seen (pull asks
				     from it) */
	char **folders;           /* owned, sorted: the set sub_id covers,
				     as the core gave it */
	size_t n;
	bool push_refused;        /* streaming was refused: pull from now */
	struct ews_events pend;   /* to report first in the next batch: lost
				     (a new subscription, or part of an
				     envelope lost) and envelopes read
				     after the core said stop */
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sorted copy of the core's folder set, each once. */
static char **sorted_set(const char *const *ids, size_t n, size_t *out_n)
{
	char **v = xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = (char *)ids[i];
	qsort(v, n, sizeof(*v), cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!k || strcmp(v[k - 1], v[i]))
			v[k++] = v[i];
	for (size_t i = 0; i < k; i++)
		v[i] = xstrdup(v[i]);
	*out_n = k;
	return v;
}

static void free_set(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool same_set(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

/* What a call needs besides the session. */
struct call {
	struct be_session *s;
	struct ews_watch *sw;
	const struct be_watch *w;
	int64_t deadline;   /* now_ms() when the call must end */
	bool stopped;       /* the core's callback returned -1, or it
			       cancelled */
};

/* The cancellation hook of every request: the core's, and for the stream
 * the call's deadline too. */
struct guard {
	struct call *c;
	bool use_deadline;
	bool by_deadline;   /* the deadline ended the transfer */
};

static bool call_cancelled(struct call *c)
{
	if (!c->stopped && c->w->cancelled && c->w->cancelled(c->w->arg))
		c->stopped = true;
	return c->stopped;
}

static bool guard_fired(void *arg)
{
	struct guard *g = arg;
	if (call_cancelled(g->c))
		return true;
	if (g->use_deadline && now_ms() >= g->c->deadline) {
		g->by_deadline = true;
		return true;
	}
	return false;
}

/* Hand a batch to the core.  Returns -1 when the core says stop. */
static int deliver(struct call *c, const struct ews_events *e)
{
	if (!ews_events_any(e))
		return 0;
	struct be_moved *mv = xcalloc(e->n_moved ? e->n_moved : 1, sizeof(*mv));
	for (size_t i = 0; i < e->n_moved; i++) {
		mv[i].old_id = e->moved[i].old_id;
		mv[i].old_folder_id = e->moved[i].old_folder_id;
		mv[i].new_id = e->moved[i].new_id;
		mv[i].new_folder_id = e->moved[i].new_folder_id;
	}
	struct be_events ev = {
		.folder_ids = (const char *const *)e->folders,
		.n_folders = e->n_folders,
		.hierarchy = e->hierarchy,
		.lost = e->lost,
		.moved = mv,
		.n_moved = e->n_moved,
		.mode = c->sw->mode,
	};
	log_dbg(LC_SYNC, "watch: %zu folder(s)%s%s, %zu move(s)",
		e->n_folders, e->hierarchy ? ", hierarchy" : "",
		e->lost ? ", lost" : "", e->n_moved);
	int rc = c->w->events(c->w->arg, &ev);
	free(mv);
	if (rc)
		c->stopped = true;
	return rc ? -1 : 0;
}

/* Report what is pending (first, before any new event). */
static int deliver_pending(struct call *c)
{
	if (!ews_events_any(&c->sw->pend))
		return 0;
	struct ews_events e = c->sw->pend;
	memset(&c->sw->pend, 0, sizeof(c->sw->pend));
	int rc = deliver(c, &e);
	ews_events_free(&e);
	return rc;
}

/* POST a short request (Subscribe, GetEvents, Unsubscribe): the session's
 * ordinary time limit, the core's cancellation; BE_OK with a 2xx XML
 * answer in resp, resp->cancelled when cancelled. */
static enum be_status post_short(struct call *c, const char *what,
				 const struct buf *req, long timeout_s,
				 struct http_response *resp,
				 struct be_result *r)
{
	struct guard g = { c, false, false };
	struct http_request rq = {
		.body = req->data,
		.body_len = req->len,
		.cap = EWS_EVENTS_MAX,
		.timeout_s = timeout_s,
		.stall_s = timeout_s,
		.cancelled = c->w ? guard_fired : NULL,
		.cancel_arg = &g,
		.what = what,
	};
	if (http_post(ews_session_http(c->s), &rq, resp, r) != BE_OK ||
	    resp->cancelled)
		return r->status;
	return ews_check_answer(c->s, resp, EWS_ON_FOLDER, r);
}

static void drop_subscription(struct ews_watch *sw)
{
	free(sw->sub_id);
	free(sw->watermark);
	free_set(sw->folders, sw->n);
	sw->sub_id = sw->watermark = NULL;
	sw->folders = NULL;
	sw->n = 0;
	sw->mode = BE_WATCH_NONE;
}

/* Unsubscribe, best effort: the answer does not matter (a subscription
 * nobody reads expires on the server). */
static void unsubscribe(struct call *c, long timeout_s)
{
	struct buf req;
	struct http_response resp;
	struct be_result r;
	buf_init(&req, 0);
	ews_req_unsubscribe(&req, ews_session_version(c->s), c->sw->sub_id);
	post_short(c, "Unsubscribe", &req, timeout_s, &resp, &r);
	log_dbg(LC_HTTP, "Unsubscribe: %s", r.status == BE_OK ? "done"
								: r.msg);
	buf_free(&req);
	http_response_free(&resp);
}

/* Did the server refuse this form of subscription (rather than fail for
 * a while)?  A refusal, a SOAP fault about the request (an element it
 * does not know), HTTP 400, or HTTP 500/501 without a SOAP fault. */
static bool form_refused(const struct be_result *r)
{
	return r->status == BE_REFUSED || r->status == BE_UNSUPPORTED ||
	       (r->status == BE_NETWORK && (!strcmp(r->code, "HTTP 500") ||
					    !strcmp(r->code, "HTTP 501")));
}

/* Subscribe in one form: BE_OK with the subscription stored. */
static enum be_status subscribe_as(struct call *c, bool streaming,
				   struct be_result *r)
{
	struct ews_watch *sw = c->sw;
	const struct be_watch *w = c->w;
	const char *root = ews_session_root(c->s);
	struct buf req;
	struct http_response resp;
	char *sub = NULL, *wm = NULL;

	/* the root too: top-level folders created, renamed, moved or
	 * deleted show as folder events there */
	const char **ids = xcalloc(w->n + 1, sizeof(*ids));
	size_t n = 0;
	bool has_root = false;
	for (size_t i = 0; i < w->n; i++) {
		ids[n++] = w->folder_ids[i];
		has_root |= root && !strcmp(root, w->folder_ids[i]);
	}
	if (root && !has_root)
		ids[n++] = root;
	buf_init(&req, 0);
	ews_req_subscribe(&req, ews_session_version(c->s), ids, n, streaming,
			  EWS_PULL_TIMEOUT_MIN);
	free(ids);
	if (post_short(c, "Subscribe", &req, ews_session_call_timeout(c->s),
		       &resp, r) == BE_OK && !resp.cancelled &&
	    ews_parse_subscribe(resp.body.data, resp.body.len, &sub, &wm,
				r) == BE_OK &&
	    !streaming && !wm) {
		be_result_set(r, BE_PROTOCOL,
			      "no Watermark in the answer to a pull Subscribe");
		free(sub);
		sub = NULL;
	}
	bool cancelled = resp.cancelled;
	buf_free(&req);
	http_response_free(&resp);
	if (cancelled) {
		free(sub);
		free(wm);
		return BE_OK;   /* c->stopped says so */
	}
	if (r->status != BE_OK)
		return r->status;
	drop_subscription(sw);
	sw->sub_id = sub;
	sw->watermark = wm;
	sw->folders = sorted_set(w->folder_ids, w->n, &sw->n);
	sw->mode = streaming ? BE_WATCH_PUSH : BE_WATCH_PULL;
	/* what happened before this moment may not be reported: the first
	 * batch says so */
	sw->pend.lost = true;
	log_dbg(LC_HTTP, "subscribed (%s) to %zu folder(s)",
		streaming ? "streaming" : "pull", w->n);
	return BE_OK;
}

/* Subscribe: streaming first, pull where the server refuses it. */
static enum be_status subscribe(struct call *c, struct be_result *r)
{
	struct ews_watch *sw = c->sw;
	char push_why[sizeof(r->msg)] = "";

	if (!ews_version_at_least(ews_session_version(c->s),
				  EWS_VERSION_STREAMING)) {
		sw->push_refused = true;
		snprintf(push_why, sizeof(push_why),
			 "schema version %s is older than %s",
			 ews_session_version(c->s), EWS_VERSION_STREAMING);
	}
	if (!sw->push_refused) {
		if (subscribe_as(c, true, r) == BE_OK || c->stopped ||
		    !form_refused(r))
			return r->status;
		snprintf(push_why, sizeof(push_why), "%s", r->msg);
		log_info("server refused streaming notifications (%s): "
			 "asking for events every %u ms instead", r->msg,
			 ews_session_pull_period(c->s));
		sw->push_refused = true;
	}
	if (subscribe_as(c, false, r) == BE_OK || c->stopped ||
	    !form_refused(r))
		return r->status;
	char pull_why[sizeof(r->msg)];
	snprintf(pull_why, sizeof(pull_why), "%s", r->msg);
	be_result_set(r, BE_UNSUPPORTED,
		      "server offers no notifications (streaming: %.120s; "
		      "pull: %.120s)",
		      push_why[0] ? push_why : "refused", pull_why);
	return BE_UNSUPPORTED;
}

/* ---- the stream ---- */

struct stream {
	struct call *c;
	struct ews_stream *es;
	bool checked, not_xml;
	bool closed;          /* ConnectionStatus Closed */
	bool failed;          /* an envelope was an error or malformed */
	struct be_result err; /* its result */
};

static int on_envelope(void *arg, const char *data, size_t len)
{
	struct stream *st = arg;
	struct ews_events e;
	if (ews_parse_events(data, len, &e, &st->err) != BE_OK) {
		st->failed = true;
		return -1;
	}
	if (e.watermark) {
		free(st->c->sw->watermark);
		st->c->sw->watermark = e.watermark;
		e.watermark = NULL;
	}
	if (st->c->stopped)   /* the core said stop: keep for the next call */
		ews_events_merge(&st->c->sw->pend, &e);
	else
		deliver(st->c, &e);
	bool closed = e.conn == EWS_CONN_CLOSED;
	ews_events_free(&e);
	if (closed) {
		st->closed = true;
		return -1;
	}
	return 0;
}

static int stream_sink(void *arg, const struct http_response *resp,
		       const void *data, size_t len)
{
	struct stream *st = arg;
	if (!st->checked) {
		st->checked = true;
		if (resp->content_type[0] && !http_is_xml(resp->content_type)) {
			st->not_xml = true;
			return -1;
		}
	}
	if (ews_stream_feed(st->es, data, len, on_envelope, st))
		return -1;
	/* the whole piece is read (envelopes after a stop are kept for the
	 * next call); then the transfer ends */
	return st->c->stopped ? -1 : 0;
}

/* GetStreamingEvents: events as they arrive, until the server closes the
 * stream, the call's time is up or the core stops it. */
static enum be_status stream(struct call *c, struct be_result *r)
{
	struct ews_watch *sw = c->sw;
	unsigned minutes = c->w->timeout_s / 60;
	minutes = minutes < 1 ? 1 : minutes > 30 ? 30 : minutes;
	struct buf req;
	struct http_response resp;
	struct guard g = { c, true, false };
	struct stream st = { .c = c, .es = ews_stream_new(EWS_EVENTS_MAX) };

	buf_init(&req, 0);
	ews_req_get_streaming_events(&req, ews_session_version(c->s),
				     sw->sub_id, minutes);
	struct http_request rq = {
		.body = req.data,
		.body_len = req.len,
		.cap = EWS_EVENTS_MAX,
		/* the server ends the stream after ConnectionTimeout */
		.timeout_s = (long)minutes * 60 + ews_session_call_timeout(c->s),
		/* idle between keep-alives is not a stall: "no byte for
		 * EWS_STREAM_STALL_S" is */
		.stall_s = EWS_STREAM_STALL_S,
		.stall_bps = 1,
		.sink = stream_sink,
		.sink_arg = &st,
		.cancelled = guard_fired,
		.cancel_arg = &g,
		.what = "GetStreamingEvents",
	};
	enum be_status hs = http_post(ews_session_http(c->s), &rq, &resp, r);
	/* part of an envelope read and then lost: its events are unknown */
	bool partial = ews_stream_partial(st.es);

	if (st.failed) {
		*r = st.err;
		/* a malformed envelope's events are lost; a subscription
		 * error is handled by the caller */
		if (r->status != BE_SYNC_INVALID)
			sw->pend.lost = true;
	} else if (st.not_xml || (hs == BE_OK && !resp.cancelled &&
				  resp.status / 100 != 2)) {
		ews_check_answer(c->s, &resp, EWS_ON_FOLDER, r);
	} else if (st.closed || c->stopped || resp.cancelled) {
		be_result_ok(r);
		if (partial)
			sw->pend.lost = true;
	} else if (hs == BE_REFUSED && st.checked) {
		/* the splitter stopped it */
		be_result_set(r, BE_PROTOCOL, "notification stream: %s",
			      ews_stream_error(st.es));
		sw->pend.lost = true;
	} else if (hs != BE_OK) {
		if (partial)
			sw->pend.lost = true;   /* the network error stands */
	} else {
		/* the server ends a stream with ConnectionStatus Closed; an
		 * answer that just stops is a connection that dropped (and
		 * a server answering so at once is not called in a loop:
		 * the core backs off) */
		be_result_set(r, BE_NETWORK, "notification stream ended %s",
			      partial ? "inside an envelope"
				      : "without ConnectionStatus Closed");
		if (partial)
			sw->pend.lost = true;
	}
	if (r->status == BE_OK)
		log_dbg(LC_HTTP, "GetStreamingEvents ended (%s)",
			st.closed ? "closed by the server"
			: g.by_deadline ? "call's time up"
			: c->stopped ? "stopped" : "end of answer");
	ews_stream_free(st.es);
	buf_free(&req);
	http_response_free(&resp);
	return r->status;
}

/* ---- pulling ---- */

/* Sleep until the next pull, waking to look at the core's cancellation
 * at least every 100 ms. */
static void pull_pause(struct call *c, int64_t until)
{
	for (int64_t now = now_ms(); now < until && !call_cancelled(c);
	     now = now_ms())
		sleep_ms(until - now < 100 ? until - now : 100);
}

/* GetEvents every period until the call's time is up: at least once per
 * call (which keeps the subscription alive), again at once while the
 * server says MoreEvents. */
static enum be_status pull(struct call *c, struct be_result *r)
{
	struct ews_watch *sw = c->sw;
	unsigned period = ews_session_pull_period(c->s);

	for (;;) {
		struct buf req;
		struct http_response resp;
		struct ews_events e = { 0 };
		char *before = xstrdup(sw->watermark ? sw->watermark : "");

		buf_init(&req, 0);
		ews_req_get_events(&req, ews_session_version(c->s), sw->sub_id,
				   sw->watermark);
		if (post_short(c, "GetEvents", &req,
			       ews_session_call_timeout(c->s), &resp,
			       r) == BE_OK && !resp.cancelled &&
		    ews_parse_events(resp.body.data, resp.body.len, &e,
				     r) == BE_OK) {
			if (e.watermark) {
				free(sw->watermark);
				sw->watermark = e.watermark;
				e.watermark = NULL;
			}
			deliver(c, &e);
			ews_events_free(&e);
		}
		/* more at once - unless the watermark did not move */
		bool again = r->status == BE_OK && !resp.cancelled && e.more &&
			     sw->watermark && strcmp(before, sw->watermark);
		free(before);
		buf_free(&req);
		http_response_free(&resp);
		if (r->status != BE_OK || c->stopped)
			return r->status;
		if (again)
			continue;
		if (now_ms() >= c->deadline)
			return BE_OK;
		int64_t next = now_ms() + period;
		pull_pause(c, next < c->deadline ? next : c->deadline);
		if (c->stopped || now_ms() >= c->deadline)
			return BE_OK;
	}
}

/* ---- the operation ---- */

static bool watch_ok(const struct be_watch *w, struct be_result *r)
{
	if (!w || !w->events || !w->n || !w->folder_ids) {
		be_result_set(r, BE_REFUSED, "no folders to watch");
		return false;
	}
	for (size_t i = 0; i < w->n; i++)
		if (!ews_id_ok(w->folder_ids[i], "folder", r))
			return false;
	return true;
}

/* A different folder set than the subscription's: it goes (a new one
 * follows, reporting lost). */
static void change_set(struct call *c)
{
	struct ews_watch *sw = c->sw;
	size_t n;
	char **v = sorted_set(c->w->folder_ids, c->w->n, &n);
	bool same = same_set(sw->folders, sw->n, v, n);
	free_set(v, n);
	if (!sw->sub_id || same)
		return;
	unsubscribe(c, ews_session_call_timeout(c->s));
	drop_subscription(sw);
}

enum be_status ews_watch(struct be_session *s, const struct be_watch *w,
			 enum be_watch_mode *mode, struct be_result *r)
{
	struct ews_watch *sw = ews_session_watch(s);
	int lost_in_a_row = 0;

	be_result_ok(r);
	if (!sw) {
		sw = xcalloc(1, sizeof(*sw));
		ews_session_set_watch(s, sw);
	}
	*mode = sw->mode;
	if (!watch_ok(w, r))
		return r->status;
	struct call c = {
		.s = s, .sw = sw, .w = w,
		.deadline = now_ms() + (int64_t)(w->timeout_s ? w->timeout_s
							      : 1) * 1000,
	};
	change_set(&c);
	for (;;) {
		if (call_cancelled(&c))
			break;
		if (!sw->sub_id && subscribe(&c, r) != BE_OK)
			break;
		*mode = sw->mode;
		if (!sw->sub_id || deliver_pending(&c))
			break;   /* cancelled while subscribing; stopped */
		enum be_watch_mode m = sw->mode;
		if ((m == BE_WATCH_PUSH ? stream(&c, r) : pull(&c, r)) == BE_OK)
			break;
		if (r->status == BE_SYNC_INVALID) {
			/* the server lost it: subscribe again at once (the
			 * new one reports lost) */
			log_info("notification subscription lost (%s): "
				 "subscribing again", r->msg);
			drop_subscription(sw);
			if (++lost_in_a_row < 3)
				continue;
			be_result_set(r, BE_NETWORK,
				      "the server lost 3 new notification "
				      "subscriptions in a row");
			break;
		}
		if (m == BE_WATCH_PUSH && form_refused(r)) {
			/* GetStreamingEvents itself refused */
			log_info("server refused GetStreamingEvents (%s): "
				 "pulling instead", r->msg);
			unsubscribe(&c, ews_session_call_timeout(s));
			drop_subscription(sw);
			sw->push_refused = true;
			continue;
		}
		break;
	}
	*mode = sw->mode;
	if (r->status == BE_OK)
		r->msg[0] = 0;   /* "cancelled" from http_post is no failure */
	return r->status;
}

void ews_watch_end(struct be_session *s, struct ews_watch *sw)
{
	if (!sw)
		return;
	if (sw->sub_id) {
		struct call c = { .s = s, .sw = sw };
		long t = ews_session_call_timeout(s);
		unsubscribe(&c, t < 5 ? t : 5);
	}
	drop_subscription(sw);
	ews_events_free(&sw->pend);
	free(sw);
}
