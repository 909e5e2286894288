/*
 * ews.c - the EWS backend: the ops table and the session.  A session is one
 * HTTP connection (backend/http.c) plus what open() learned (the root
 * folder id).  Each operation builds its request (ews_request.c), POSTs it,
 * and hands the answer to a parser (ews_parse.c, or ews_mime.c streaming).
 * The write operations live in ews_write.c and call through
 * ews_call_write() here.
 *
 * Timeouts: open(), the sync calls and small writes give up after
 * connect_timeout_s + timeout_s; GetItem and uploads larger than
 * EWS_BIG_REQUEST have no overall limit (a large message takes as long as
 * it takes) but are abandoned when they stall (under 1 KiB/s for
 * timeout_s).
 *
 * fetch_mime reports every item exactly once through done(), whatever
 * happens: items the answer did not reach (network failure, malformed
 * answer, aborted sink) get done() with the grade of the whole call.  An
 * item refused with ErrorServerBusy gets done(BE_THROTTLED) and the call
 * still returns BE_OK, with r->retry_after_ms the largest BackOffMilliseconds
 * of such items.
 *
 * watch lives in ews_notify.c; the session only keeps its subscription
 * (and ends it at close).
 */
#include "backend/ews/ews.h"
#include "backend/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct be_session {
	struct http_session *http;
	char *root_id;         /* owned: msgfolderroot's FolderId */
	const char *version;   /* RequestServerVersion the server accepted */
	long call_timeout_s;   /* sync calls: connect + request */
	long stall_s;          /* any call: abort under 1 KiB/s this long */
	struct ews_watch *watch; /* owned: the subscription of watch(), or
				    NULL (ews_notify.c) */
	unsigned pull_period_ms; /* GetEvents period; 0 = EWS_PULL_PERIOD_MS */
};

enum be_status ews_check_answer(struct be_session *s,
				const struct http_response *resp,
				enum ews_ctx ctx, struct be_result *r)
{
	be_result_ok(r);
	if (resp->status / 100 == 2) {
		/* no Content-Type at all: let the parser judge */
		if (resp->content_type[0] && !http_is_xml(resp->content_type)) {
			char q[48];
			be_result_set(r, BE_PROTOCOL,
				      "server at %s did not answer as EWS (got %s)",
				      http_url(s->http),
				      ews_quote(resp->content_type, q));
		}
		return r->status;
	}
	/* EWS sends SOAP faults with HTTP 500 */
	if (resp->status == 500 && resp->body.len && !resp->body_truncated &&
	    ews_parse_fault_body(resp->body.data, resp->body.len, ctx, r))
		return r->status;
	return http_grade(s->http, resp, r);
}

/* POST a request whose answer is held in memory; BE_OK with a 2xx XML
 * answer in resp (free it in any case). */
static enum be_status call_once(struct be_session *s, const char *what,
				const struct buf *req, enum ews_ctx ctx,
				bool once, struct http_response *resp,
				struct be_result *r)
{
	struct http_request rq = {
		.once = once,
		.body = req->data,
		.body_len = req->len,
		.cap = EWS_ANSWER_MAX,
		.timeout_s = req->len > EWS_BIG_REQUEST ? 0 : s->call_timeout_s,
		.stall_s = s->stall_s,
		.what = what,
	};
	if (http_post(s->http, &rq, resp, r) != BE_OK)
		return r->status;
	return ews_check_answer(s, resp, ctx, r);
}

static enum be_status call(struct be_session *s, const char *what,
			   const struct buf *req, enum ews_ctx ctx,
			   struct http_response *resp, struct be_result *r)
{
	return call_once(s, what, req, ctx, false, resp, r);
}

/* A header value may not carry line breaks or other control characters. */
static bool header_safe(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

static void ews_close(struct be_session *s)
{
	if (!s)
		return;
	ews_watch_end(s, s->watch);
	s->watch = NULL;
	http_close(s->http);
	free(s->root_id);
	free(s);
}

const char *const ews_versions[] = {
	EWS_VERSION_DEFAULT, "Exchange2010_SP2", "Exchange2010", "Exchange2007_SP1",
	NULL,
};

/* Did the server refuse the RequestServerVersion we asked for?  Exchange
 * says ErrorInvalidServerVersion, or fails schema validation of the
 * Version attribute. */
static bool version_refused(const struct be_result *r)
{
	if (r->status == BE_OK)
		return false;
	return !strcmp(r->code, "ErrorInvalidServerVersion") ||
	       (!strcmp(r->code, "ErrorSchemaValidation") &&
		strstr(r->msg, "Version"));
}

static struct be_session *ews_open(const struct be_config *cfg,
				   struct be_result *r)
{
	const char *anchor = cfg->mailbox;
	char *anchor_hdr = NULL;
	const char *headers[5];
	int nh = 0;

	if (!anchor && cfg->user && strchr(cfg->user, '@'))
		anchor = cfg->user;
	if (anchor && (!*anchor || !header_safe(anchor))) {
		be_result_set(r, BE_REFUSED,
			      "invalid mailbox address (empty or with control characters)");
		return NULL;
	}
	if (cfg->user && !header_safe(cfg->user)) {
		be_result_set(r, BE_REFUSED,
			      "invalid user name (control characters)");
		return NULL;
	}
	headers[nh++] = "Content-Type: text/xml; charset=utf-8";
	headers[nh++] = "Accept: text/xml";
	headers[nh++] = "User-Agent: exchangefs/" EXCHANGEFS_VERSION;
	if (anchor) {
		anchor_hdr = xasprintf("X-AnchorMailbox: %s", anchor);
		headers[nh++] = anchor_hdr;
	}
	headers[nh] = NULL;

	struct be_session *s = xcalloc(1, sizeof(*s));
	s->http = http_open_backend(cfg, headers, &s->call_timeout_s,
				    &s->stall_s, r);
	free(anchor_hdr);
	if (!s->http) {
		free(s);
		return NULL;
	}

	/* GetFolder msgfolderroot: checks URL, TLS, credentials, and that
	 * the server speaks EWS; learns the root id. */
	struct buf req;
	struct http_response resp;
	for (size_t v = 0; ews_versions[v]; v++) {
		s->version = ews_versions[v];
		buf_init(&req, 0);
		ews_req_get_root(&req, s->version);
		if (call(s, "GetFolder", &req, EWS_ON_FOLDER, &resp, r) == BE_OK &&
		    ews_parse_root(resp.body.data, resp.body.len, &s->root_id,
				   r) == BE_PROTOCOL) {
			char detail[sizeof(r->msg)];
			snprintf(detail, sizeof(detail), "%s", r->msg);
			be_result_set(r, BE_PROTOCOL,
				      "server at %s did not answer as EWS: %s",
				      http_url(s->http), detail);
		}
		buf_free(&req);
		http_response_free(&resp);
		if (!version_refused(r))
			break;
		log_dbg(LC_HTTP, "server refused schema version %s: %s",
			s->version, r->msg);
	}
	if (r->status != BE_OK) {
		log_dbg(LC_HTTP, "open %s failed: %s", http_url(s->http),
			r->msg);
		ews_close(s);
		return NULL;
	}
	log_dbg(LC_HTTP, "EWS session to %s open, root folder %.40s...",
		http_url(s->http), s->root_id);
	return s;
}

static const char *ews_root_id(struct be_session *s)
{
	return s->root_id;
}

static bool state_ok(const char *state, struct be_result *r)
{
	if (state && strlen(state) > EWS_STATE_MAX) {
		be_result_set(r, BE_SYNC_INVALID, "sync state too large");
		return false;
	}
	return true;
}

static enum be_status ews_sync_folders(struct be_session *s, const char *state,
				       struct be_folder_batch *out,
				       struct be_result *r)
{
	struct buf req;
	struct http_response resp;

	memset(out, 0, sizeof(*out));
	if (!state_ok(state, r))
		return r->status;
	buf_init(&req, 0);
	ews_req_sync_folders(&req, s->version, state);
	if (call(s, "SyncFolderHierarchy", &req, EWS_ON_FOLDER, &resp, r) ==
	    BE_OK &&
	    ews_parse_folders(resp.body.data, resp.body.len, out, r) == BE_OK) {
		/* a folder without ParentFolderId goes under the root */
		for (size_t i = 0; i < out->n; i++)
			if (out->v[i].change != BE_DELETE &&
			    !out->v[i].parent_id)
				out->v[i].parent_id = xstrdup(s->root_id);
	}
	buf_free(&req);
	http_response_free(&resp);
	return r->status;
}

bool ews_id_ok(const char *id, const char *what, struct be_result *r)
{
	if (!id || !*id || strlen(id) > EWS_ID_MAX) {
		be_result_set(r, BE_REFUSED, "invalid %s id", what);
		return false;
	}
	return true;
}

static enum be_status ews_sync_items(struct be_session *s,
				     const char *folder_id, const char *state,
				     unsigned max, struct be_item_batch *out,
				     struct be_result *r)
{
	struct buf req;
	struct http_response resp;

	memset(out, 0, sizeof(*out));
	if (!ews_id_ok(folder_id, "folder", r) || !state_ok(state, r))
		return r->status;
	buf_init(&req, 0);
	ews_req_sync_items(&req, s->version, folder_id, state, max);
	if (call(s, "SyncFolderItems", &req, EWS_ON_FOLDER, &resp, r) == BE_OK)
		ews_parse_items(resp.body.data, resp.body.len, out, r);
	buf_free(&req);
	http_response_free(&resp);
	return r->status;
}

/* Streaming GetItem: the HTTP body goes straight into the parser. */
struct fetch {
	struct ews_mime_stream *ms;
	bool checked;   /* Content-Type looked at */
	bool not_xml;
};

static int fetch_sink(void *arg, const struct http_response *resp,
		      const void *data, size_t len)
{
	struct fetch *f = arg;
	if (!f->checked) {
		f->checked = true;
		if (resp->content_type[0] && !http_is_xml(resp->content_type)) {
			f->not_xml = true;
			return -1;
		}
	}
	return ews_mime_stream_feed(f->ms, data, len);
}

static enum be_status ews_fetch_mime(struct be_session *s,
				     const char *const *ids, size_t n,
				     be_sink_fn sink, be_done_fn done,
				     void *arg, struct be_result *r)
{
	struct buf req;
	struct http_response resp;
	struct fetch f = { 0 };

	be_result_ok(r);
	for (size_t i = 0; i < n; i++)
		if (!ews_id_ok(ids[i], "item", r))
			break;
	f.ms = ews_mime_stream_new(n, sink, done, arg);
	if (n == 0 || r->status != BE_OK)
		goto out;

	buf_init(&req, 0);
	ews_req_get_mime(&req, s->version, ids, n);
	struct http_request rq = {
		.body = req.data,
		.body_len = req.len,
		.cap = EWS_ANSWER_MAX,
		.stall_s = s->stall_s,
		.sink = fetch_sink,
		.sink_arg = &f,
		.what = "GetItem",
	};
	enum be_status st = http_post(s->http, &rq, &resp, r);
	if (f.not_xml) {
		ews_check_answer(s, &resp, EWS_ON_ITEM, r);
	} else if (st == BE_OK && resp.status / 100 != 2) {
		ews_check_answer(s, &resp, EWS_ON_ITEM, r);
	} else if (st == BE_OK || (st == BE_REFUSED && f.checked)) {
		/* complete, or stopped by the stream: it knows why */
		struct be_result net = *r;
		ews_mime_stream_finish(f.ms, r);
		if (st != BE_OK && r->status == BE_OK)
			*r = net;
	}
	buf_free(&req);
	http_response_free(&resp);
out:
	if (r->status != BE_OK)
		ews_mime_stream_fail_rest(f.ms, r->status, r->msg);
	ews_mime_stream_free(f.ms);
	return r->status;
}

const char *ews_session_version(const struct be_session *s)
{
	return s->version;
}

struct http_session *ews_session_http(struct be_session *s)
{
	return s->http;
}

const char *ews_session_root(const struct be_session *s)
{
	return s->root_id;
}

long ews_session_call_timeout(const struct be_session *s)
{
	return s->call_timeout_s;
}

unsigned ews_session_pull_period(const struct be_session *s)
{
	return s->pull_period_ms ? s->pull_period_ms : EWS_PULL_PERIOD_MS;
}

void ews_set_pull_period(struct be_session *s, unsigned ms)
{
	s->pull_period_ms = ms;
}

struct ews_watch *ews_session_watch(const struct be_session *s)
{
	return s->watch;
}

void ews_session_set_watch(struct be_session *s, struct ews_watch *sw)
{
	s->watch = sw;
}

enum be_status ews_call_write(struct be_session *s, const char *what,
			      struct buf *req, enum ews_write_op op,
			      struct be_new *out, struct be_result *r)
{
	struct http_response resp;
	memset(out, 0, sizeof(*out));
	/* a create or move sent twice makes a second item (or loses track
	 * of the first): never let the HTTP layer repeat one by itself */
	bool once = op == EWS_W_CREATE_ITEM || op == EWS_W_CREATE_FOLDER ||
		    op == EWS_W_MOVE_ITEM || op == EWS_W_MOVE_FOLDER;
	if (call_once(s, what, req, ews_write_ctx(op), once, &resp, r) == BE_OK)
		ews_parse_write(resp.body.data, resp.body.len, op, out, r);
	buf_free(req);
	http_response_free(&resp);
	return r->status;
}

enum be_status ews_call_special(struct be_session *s, struct buf *req,
				char *ids[BE_SPECIAL_N], struct be_result *r)
{
	struct http_response resp;

	for (int k = 0; k < BE_SPECIAL_N; k++)
		ids[k] = NULL;
	if (call(s, "GetFolder", req, EWS_ON_FOLDER, &resp, r) == BE_OK)
		ews_parse_special(resp.body.data, resp.body.len, ids, r);
	buf_free(req);
	http_response_free(&resp);
	return r->status;
}

enum be_status ews_call_answer(struct be_session *s, const char *what,
			       const struct buf *req,
			       struct http_response *resp,
			       struct be_result *r)
{
	return call(s, what, req, EWS_ON_ITEM, resp, r);
}

/* EWS keeps no device-wide state: every session stands alone (its
 * subscription is its own).  The account is there so every backend has
 * the same shape. */
struct be_account {
	int unused;
};

static struct be_account *ews_account_new(const struct be_config *cfg)
{
	(void)cfg;
	return xcalloc(1, sizeof(struct be_account));
}

static void ews_account_free(struct be_account *a)
{
	free(a);
}

/* Everything but many folders in one call (EWS SyncFolderItems takes one
 * folder): the token is a hidden extended property FindItem can search,
 * the Outbox is a distinguished folder, notifications stream or pull. */
static void ews_caps(struct be_session *s, struct be_caps *out)
{
	out->can = BE_CAN_ALL & ~BE_CAN_SYNC_MANY;
	snprintf(out->speaks, sizeof(out->speaks), "EWS%s%s", s ? " " : "",
		 s ? ews_session_version(s) : "");
}

const struct backend_ops ews_backend = {
	.name = "ews",
	.open = ews_open,
	.close = ews_close,
	.caps = ews_caps,
	.account_new = ews_account_new,
	.account_free = ews_account_free,
	.root_id = ews_root_id,
	.sync_folders = ews_sync_folders,
	.sync_items = ews_sync_items,
	.fetch_mime = ews_fetch_mime,
	.special_folders = ews_special_folders,
	.create_item = ews_create_item,
	.find_token = ews_find_token,
	.replace_mime = ews_replace_mime,
	.update_props = ews_update_props,
	.get_change_key = ews_get_change_key,
	.delete_item = ews_delete_item,
	.move_item = ews_move_item,
	.create_folder = ews_create_folder,
	.rename_folder = ews_rename_folder,
	.move_folder = ews_move_folder,
	.delete_folder = ews_delete_folder,
	.watch = ews_watch,
	.resolve_names = ews_resolve_names,
};
