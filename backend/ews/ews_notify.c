/*
 * ews_notify.c - the watch operation of the EWS backend (backend.h): a
 * streaming subscription (Subscribe, then one GetStreamingEvents request
 * whose chunked answer is a stream of SOAP envelopes) or, where the server
 * refuses streaming, a pull subscription (GetEvents every few seconds); the
 * subscription kept in the session across calls, cancellation, loss and
 * fallback.  Requests, the stream splitter and the event parsers are in
 * ews_events.c.  Per MS-OXWSNTIF; docs/ews-subset.md, "Client:
 * notifications".
 */
#include "backend/ews/ews.h"
#include "backend/http.h"
#include "backend/xml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	unsigned bare_500[2];     /* plain HTTP 500s in a row met by pull
				     [0] and streaming [1] */
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

/* Whether the failure r of a form (streaming or pull) is its refusal.  A
 * plain HTTP 500 is one only the second time in a row: a server
 * restarting answers so too, and a form refused stays so for the
 * session (both refused: polling for the rest of the mount). */
static bool refused(struct ews_watch *sw, bool streaming,
		    const struct be_result *r)
{
	unsigned *n = &sw->bare_500[streaming];
	if (r->status == BE_OK) {
		*n = 0;
		return false;
	}
	if (r->status == BE_NETWORK && !strcmp(r->code, "HTTP 500"))
		return ++*n >= 2;
	*n = 0;
	return form_refused(r);
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
		subscribe_as(c, true, r);
		if (c->stopped || !refused(sw, true, r))
			return r->status;
		snprintf(push_why, sizeof(push_why), "%s", r->msg);
		log_info("server refused streaming notifications (%s): "
			 "asking for events every %u ms instead", r->msg,
			 ews_session_pull_period(c->s));
		sw->push_refused = true;
	}
	subscribe_as(c, false, r);
	if (c->stopped || !refused(sw, false, r))
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
		if (m == BE_WATCH_PUSH && refused(sw, true, r)) {
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
