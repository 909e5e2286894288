/*
 * ews_events.c - the byte-level half of EWS notifications (MS-OXWSNTIF;
 * docs/ews-subset.md, "Client: notifications"), pure functions over bytes
 * that the unit tests and tests/fuzz/fuzz_ews_events.c call without HTTP:
 *   - requests: Subscribe, GetStreamingEvents, GetEvents, Unsubscribe;
 *   - the stream splitter: bytes -> complete envelopes, each capped;
 *   - the parsers: a Subscribe answer, and one envelope's events
 *     collapsed into what the core needs (folders whose items changed,
 *     hierarchy changed, move hints).
 * The watch operation that uses them is ews_notify.c.
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
