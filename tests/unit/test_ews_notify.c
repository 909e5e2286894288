/*
 * test_ews_notify.c - the watch() loop of EWS notifications
 * (backend/ews/ews_notify.c) against a scripted HTTP server on loopback
 * that streams chunks with pauses, hangs or cuts the connection:
 * streaming, reuse of the subscription, a dropped connection, loss and
 * resubscription, a new folder set, cancellation within a second, the
 * call's time limit, the pull fallback and a server offering neither form.
 * The requests, splitter and parser alone: test_ews_events.c.
 */
#include "backend/backend.h"
#include "backend/ews/ews.h"
#include "backend/xml.h"
#include "ews_canned.h"
#include "test_ews_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a scripted HTTP server that streams ---- */

enum end { END_DONE, END_HANG, END_CUT };

struct reply {
	int status;
	const char *body;            /* the whole body, or ... */
	const char *const *chunks;   /* ... chunked: these pieces, NULL-ended */
	int gap_ms;                  /* pause before each piece */
	enum end end;                /* chunked: after the pieces */
};

#define MAXREQ 64

struct server {
	int lfd, port;
	pthread_t th;
	atomic_bool stop;       /* server_stop(); the server threads poll it */
	pthread_mutex_t mu;
	/* protected by mu */
	struct reply script[16];
	int nscript, next;
	struct reply fallback;       /* once the script is used up */
	struct buf req[MAXREQ];      /* bodies of the requests received */
	int nreq;
	int connections;
	pthread_t conn_th[64];
	int nconn_th;
};

struct conn_arg {
	struct server *s;
	int fd;
};

static int send_all(int fd, const void *p, size_t n)
{
	const char *d = p;
	while (n) {
		ssize_t w = send(fd, d, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		d += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Wait for bytes; false when the server stops or the peer closed. */
static bool wait_readable(struct server *s, int fd)
{
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (s->stop)
			return false;
		int n = poll(&p, 1, 20);
		if (n > 0)
			return true;
	}
}

static int read_request(struct server *s, int fd, struct buf *body)
{
	char tmp[8192];
	struct buf all;
	buf_init(&all, 0);
	char *end = NULL;
	while (!end) {
		if (!wait_readable(s, fd))
			goto fail;
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n <= 0)
			goto fail;
		buf_append(&all, tmp, (size_t)n);
		end = strstr(all.data, "\r\n\r\n");
	}
	size_t hlen = (size_t)(end - all.data) + 4, clen = 0;
	const char *cl = strcasestr(all.data, "\r\nContent-Length:");
	if (cl && cl < end)
		clen = strtoul(cl + 17, NULL, 10);
	buf_reset(body);
	buf_append(body, all.data + hlen, all.len - hlen);
	while (body->len < clen) {
		if (!wait_readable(s, fd))
			goto fail;
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n <= 0)
			goto fail;
		buf_append(body, tmp, (size_t)n);
	}
	buf_free(&all);
	return 0;
fail:
	buf_free(&all);
	return -1;
}

/* 0 = go on with this connection, -1 = close it. */
static int answer(struct server *s, int fd, const struct reply *k)
{
	char head[256];
	if (!k->chunks) {
		const char *body = k->body ? k->body : "";
		snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: "
			 "%s\r\nContent-Length: %zu\r\n\r\n", k->status,
			 k->status == 500 && body[0] != '<' ? "text/html"
							     : "text/xml; charset=utf-8",
			 strlen(body));
		if (send_all(fd, head, strlen(head)) ||
		    send_all(fd, body, strlen(body)))
			return -1;
		return 0;
	}
	snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: text/xml; "
		 "charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n", k->status);
	if (send_all(fd, head, strlen(head)))
		return -1;
	for (const char *const *c = k->chunks; *c; c++) {
		if (k->gap_ms)
			usleep((useconds_t)k->gap_ms * 1000);
		char sz[32];
		snprintf(sz, sizeof(sz), "%zx\r\n", strlen(*c));
		if (send_all(fd, sz, strlen(sz)) ||
		    send_all(fd, *c, strlen(*c)) || send_all(fd, "\r\n", 2))
			return -1;
	}
	if (k->end == END_CUT)
		return -1;
	if (k->end == END_HANG) {
		/* until the client goes away (or the test ends) */
		char tmp[256];
		while (wait_readable(s, fd) && recv(fd, tmp, sizeof(tmp), 0) > 0)
			;
		return -1;
	}
	return send_all(fd, "0\r\n\r\n", 5);
}

static void *conn_main(void *arg)
{
	struct conn_arg *ca = arg;
	struct server *s = ca->s;
	struct buf body;
	buf_init(&body, 0);
	while (read_request(s, ca->fd, &body) == 0) {
		pthread_mutex_lock(&s->mu);
		struct reply k = s->next < s->nscript ? s->script[s->next++]
						      : s->fallback;
		/* a copy: the test may free the scripted text as soon as the
		 * client has it, and ASan looks at send()'s buffer after the
		 * call */
		char *own = xstrdup(k.body);
		k.body = own;
		if (s->nreq < MAXREQ) {
			buf_init(&s->req[s->nreq], 0);
			buf_append(&s->req[s->nreq], body.data ? body.data : "",
				   body.len);
			s->nreq++;
		}
		pthread_mutex_unlock(&s->mu);
		int rc = answer(s, ca->fd, &k);
		free(own);
		if (rc)
			break;
	}
	buf_free(&body);
	close(ca->fd);
	free(ca);
	return NULL;
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	while (!s->stop) {
		struct pollfd p = { s->lfd, POLLIN, 0 };
		if (poll(&p, 1, 20) <= 0)
			continue;
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		struct conn_arg *ca = xcalloc(1, sizeof(*ca));
		ca->s = s;
		ca->fd = fd;
		pthread_mutex_lock(&s->mu);
		s->connections++;
		if (s->nconn_th < 64 &&
		    !pthread_create(&s->conn_th[s->nconn_th], NULL, conn_main, ca))
			s->nconn_th++;
		else {
			close(fd);
			free(ca);
		}
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

static void server_start(struct server *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->fallback = (struct reply){ 500, "script exhausted", NULL, 0, END_DONE };
	s->lfd = listen_loopback(&s->port);
	pthread_create(&s->th, NULL, server_main, s);
}

static void server_stop(struct server *s)
{
	s->stop = true;
	pthread_join(s->th, NULL);
	for (int i = 0; i < s->nconn_th; i++)
		pthread_join(s->conn_th[i], NULL);
	close(s->lfd);
	for (int i = 0; i < s->nreq; i++)
		buf_free(&s->req[i]);
	pthread_mutex_destroy(&s->mu);
}

static void script(struct server *s, const struct reply *k, int n)
{
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < n; i++)
		s->script[i] = k[i];
	s->nscript = n;
	s->next = 0;
	pthread_mutex_unlock(&s->mu);
}

static int nreq(struct server *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->nreq;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* The body of request i (a copy, owned). */
static char *req(struct server *s, int i)
{
	pthread_mutex_lock(&s->mu);
	char *r = i >= 0 && i < s->nreq ? xstrdup(s->req[i].data) : xstrdup("");
	pthread_mutex_unlock(&s->mu);
	return r;
}

#define CHECK_REQ(s, i, needle) do { \
	char *q_ = req((s), (i)); \
	CHECK_CONTAINS(q_, (needle)); \
	free(q_); \
} while (0)

/* ---- the watch() loop ---- */

struct watcher {
	struct buf log;       /* one line per batch, ";" after each */
	int batches;
	int stop_after;       /* the callback returns -1 at this batch */
	int64_t cancel_at;    /* cancelled() true from then (0 = never) */
	int64_t cancelled_seen; /* when cancelled() first said true */
	enum be_watch_mode mode; /* of the last batch */
};

static int on_events(void *arg, const struct be_events *ev)
{
	struct watcher *w = arg;
	batch_line(&w->log, ev->folder_ids, ev->n_folders, ev->hierarchy,
		   ev->lost, ev->moved, ev->n_moved);
	buf_puts(&w->log, ";");
	w->mode = ev->mode;
	w->batches++;
	return w->stop_after && w->batches == w->stop_after ? -1 : 0;
}

static bool is_cancelled(void *arg)
{
	struct watcher *w = arg;
	if (!w->cancel_at || now_ms() < w->cancel_at)
		return false;
	if (!w->cancelled_seen)
		w->cancelled_seen = now_ms();
	return true;
}

static void watcher_reset(struct watcher *w)
{
	buf_free(&w->log);
	memset(w, 0, sizeof(*w));
	buf_init(&w->log, 0);
	buf_puts(&w->log, "");
}

static enum be_status watch(struct be_session *es, const char *const *ids,
			    size_t n, unsigned timeout_s, struct watcher *w,
			    enum be_watch_mode *mode, struct be_result *r)
{
	struct be_watch bw = {
		.folder_ids = ids, .n = n, .timeout_s = timeout_s,
		.events = on_events, .cancelled = is_cancelled, .arg = w,
	};
	return ews_backend.watch(es, &bw, mode, r);
}

/* A session; the first `refuse` schema versions are refused (2: the
 * session speaks Exchange2010). */
static struct be_session *open_session_v(struct server *s, struct be_result *r,
					 int refuse)
{
	static char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/EWS/Exchange.asmx",
		 s->port);
	struct be_config cfg = {
		.url = url, .connect_timeout_s = 5, .timeout_s = 10,
	};
	size_t len;
	char *root = data_file("getfolder_root.xml", &len);
	struct reply k[4];
	for (int i = 0; i < refuse && i < 3; i++)
		k[i] = (struct reply){ 200, RESP("GetFolder", "Error",
				       ERR("ErrorInvalidServerVersion")), NULL,
				       0, END_DONE };
	k[refuse < 3 ? refuse : 3] = (struct reply){ 200, root, NULL, 0,
						    END_DONE };
	script(s, k, (refuse < 3 ? refuse : 3) + 1);
	struct be_session *es = ews_backend.open(&cfg, r);
	free(root);
	CHECK(es != NULL);
	if (!es)
		printf("  open: %s\n", r->msg);
	return es;
}

static struct be_session *open_session(struct server *s, struct be_result *r)
{
	return open_session_v(s, r, 0);
}

static const char *const F12[] = { "F1", "F2" };
static const char *const F21[] = { "F2", "F1" };
static const char *const F13[] = { "F1", "F3" };

static const char *const ST_NOTIF_SPLIT[] = {
	KEEPALIVE "<Envelope xmlns=\"" NS_SOAP "\"><Header/><Bo",
	"dy><m:GetStreamingEventsResponse xmlns:m=\"" NS_M "\" xmlns:t=\"" NS_T "\">"
	"<m:ResponseMessages><m:GetStreamingEventsResponseMessage ResponseClass=\"Success\">"
	"<m:ResponseCode>NoError</m:ResponseCode><m:Notifications><m:Notification>"
	"<t:SubscriptionId>SUB1</t:SubscriptionId>" ITEM_EV("NewMailEvent", "I1", "F1")
	ITEM_EV("CreatedEvent", "I1", "F1") "</m:Notification></m:Notifications>"
	SE_CLOSE "\r\n" NOTIF("SUB1", ITEM_MC("MovedEvent", "I2n", "F2", "I2", "F1")
			      FOLDER_EV("CreatedEvent", "F9", "F1")),
	KEEPALIVE,
	CLOSED,
	NULL,
};

static void test_streaming(void)
{
	struct server s;
	struct be_result r;
	struct watcher w = { 0 };
	enum be_watch_mode mode;
	int64_t t0;

	server_start(&s);
	watcher_reset(&w);
	struct be_session *es = open_session(&s, &r);
	if (!es) {
		server_stop(&s);
		return;
	}
	int base = nreq(&s);   /* GetFolder */

	case_begin("watch: streaming subscription, events cut across chunks, Closed");
	struct reply k1[] = {
		{ 200, SUB_OK("SUB1"), NULL, 0, END_DONE },
		{ 200, NULL, ST_NOTIF_SPLIT, 30, END_DONE },
	};
	script(&s, k1, 2);
	t0 = now_ms();
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_OK);
	CHECK(now_ms() - t0 < 5000);
	CHECK_INT(mode, BE_WATCH_PUSH);
	CHECK_INT(w.mode, BE_WATCH_PUSH);
	CHECK_STR(w.log.data, "L f=;f=F1;H f=F2,F1 m=I2@F1>I2n@F2;");
	CHECK_STR(r.msg, "");
	CHECK_INT(nreq(&s), base + 2);
	CHECK_REQ(&s, base, "<m:Subscribe><m:StreamingSubscriptionRequest>"
		  "<t:FolderIds><t:FolderId Id=\"F1\"/><t:FolderId Id=\"F2\"/>"
		  "<t:FolderId Id=\"" ROOT_ID "\"/></t:FolderIds><t:EventTypes>");
	CHECK_REQ(&s, base + 1, "<m:SubscriptionIds><t:SubscriptionId>SUB1"
		  "</t:SubscriptionId></m:SubscriptionIds>"
		  "<m:ConnectionTimeout>1</m:ConnectionTimeout>");
	case_end();

	case_begin("watch: the same set (any order) reuses the subscription");
	watcher_reset(&w);
	static const char *const st2[] = {
		NOTIF("SUB1", ITEM_EV("DeletedEvent", "I7", "F2")) CLOSED, NULL };
	struct reply k2[] = { { 200, NULL, st2, 0, END_DONE } };
	script(&s, k2, 1);
	CHECK_INT(watch(es, F21, 2, 1800, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "f=F2;");
	CHECK_INT(nreq(&s), base + 3);
	CHECK_REQ(&s, base + 2, "<m:ConnectionTimeout>30</m:ConnectionTimeout>");
	case_end();

	case_begin("watch: a dropped connection is BE_NETWORK; then the same subscription");
	watcher_reset(&w);
	static const char *const st3[] = {
		NOTIF("SUB1", ITEM_EV("ModifiedEvent", "I7", "F1")), NULL };
	static const char *const st_closed[] = { CLOSED, NULL };
	struct reply k3[] = {
		{ 200, NULL, st3, 0, END_CUT },
		{ 200, NULL, st_closed, 0, END_DONE },
	};
	script(&s, k3, 2);
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_NETWORK);
	CHECK_STR(w.log.data, "f=F1;");
	CHECK_INT(mode, BE_WATCH_PUSH);
	watcher_reset(&w);
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "");
	CHECK_INT(nreq(&s), base + 5);
	CHECK_REQ(&s, base + 4, "<t:SubscriptionId>SUB1</t:SubscriptionId>");
	case_end();

	case_begin("watch: an answer that ends without Closed is a dropped connection");
	watcher_reset(&w);
	static const char *const st_ka[] = { KEEPALIVE, NULL };
	struct reply k3b[] = { { 200, NULL, st_ka, 0, END_DONE } };
	script(&s, k3b, 1);
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_NETWORK);
	CHECK_STR(r.msg, "notification stream ended without ConnectionStatus Closed");
	CHECK_STR(w.log.data, "");
	case_end();

	case_begin("watch: cut inside an envelope: BE_NETWORK, lost reported next");
	watcher_reset(&w);
	static const char *const st4[] = { KEEPALIVE "<Envelope xmlns=\"" NS_SOAP
					   "\"><Body>", NULL };
	struct reply k4[] = {
		{ 200, NULL, st4, 0, END_CUT },
		{ 200, NULL, st_closed, 0, END_DONE },
	};
	script(&s, k4, 2);
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_NETWORK);
	CHECK_STR(w.log.data, "");
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "L f=;");
	case_end();

	case_begin("watch: cancelled while the stream is idle: back within a second");
	watcher_reset(&w);
	static const char *const st5[] = { KEEPALIVE, NULL };
	struct reply k5[] = { { 200, NULL, st5, 0, END_HANG } };
	script(&s, k5, 1);
	t0 = now_ms();
	w.cancel_at = t0 + 300;
	CHECK_INT(watch(es, F12, 2, 600, &w, &mode, &r), BE_OK);
	int64_t back = now_ms();
	CHECK(w.cancelled_seen >= w.cancel_at);
	CHECK(back - w.cancel_at < 1000);
	printf("  cancel: seen after %lld ms, returned after %lld ms\n",
	       (long long)(w.cancelled_seen - w.cancel_at),
	       (long long)(back - w.cancel_at));
	CHECK_STR(r.msg, "");
	CHECK_INT(mode, BE_WATCH_PUSH);
	case_end();

	case_begin("watch: the call's time is up");
	watcher_reset(&w);
	script(&s, k5, 1);
	t0 = now_ms();
	CHECK_INT(watch(es, F12, 2, 1, &w, &mode, &r), BE_OK);
	int64_t took = now_ms() - t0;
	CHECK(took >= 900 && took < 2500);
	CHECK_STR(w.log.data, "");
	case_end();

	case_begin("watch: the core stops; envelopes after that come next call");
	watcher_reset(&w);
	static const char *const st6[] = {
		NOTIF("SUB1", ITEM_EV("CreatedEvent", "A", "F1"))
		NOTIF("SUB1", ITEM_EV("CreatedEvent", "B", "F2")), NULL };
	struct reply k6[] = {
		{ 200, NULL, st6, 0, END_HANG },
		{ 200, NULL, st_closed, 0, END_DONE },
	};
	script(&s, k6, 2);
	w.stop_after = 1;
	t0 = now_ms();
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_OK);
	CHECK(now_ms() - t0 < 2000);
	CHECK_STR(w.log.data, "f=F1;");
	watcher_reset(&w);
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "f=F2;");
	case_end();

	case_begin("watch: the server lost the subscription: subscribe again, lost first");
	watcher_reset(&w);
	int n0 = nreq(&s);
	static const char *const st7[] = { SE_ERROR("ErrorSubscriptionNotFound"),
					   NULL };
	static const char *const st8[] = {
		NOTIF("SUB2", ITEM_EV("CreatedEvent", "C", "F2")) CLOSED, NULL };
	struct reply k7[] = {
		{ 200, NULL, st7, 0, END_DONE },
		{ 200, SUB_OK("SUB2"), NULL, 0, END_DONE },
		{ 200, NULL, st8, 0, END_DONE },
	};
	script(&s, k7, 3);
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "L f=;f=F2;");
	CHECK_INT(nreq(&s), n0 + 3);
	CHECK_REQ(&s, n0 + 1, "<m:StreamingSubscriptionRequest>");
	CHECK_REQ(&s, n0 + 2, "<t:SubscriptionId>SUB2</t:SubscriptionId>");
	case_end();

	case_begin("watch: lost by a SOAP fault too (HTTP 500)");
	watcher_reset(&w);
	n0 = nreq(&s);
	struct reply k7b[] = {
		{ 500, XMLDECL "<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Body><s:Fault>"
		  "<faultcode xmlns:a=\"" NS_T "\">a:ErrorSubscriptionNotFound</faultcode>"
		  "<faultstring>The subscription was not found.</faultstring>"
		  "</s:Fault></s:Body></s:Envelope>", NULL, 0, END_DONE },
		{ 200, SUB_OK("SUB2b"), NULL, 0, END_DONE },
		{ 200, NULL, st_closed, 0, END_DONE },
	};
	script(&s, k7b, 3);
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "L f=;");
	CHECK_INT(nreq(&s), n0 + 3);
	case_end();

	case_begin("watch: a different folder set: Unsubscribe, Subscribe, lost");
	watcher_reset(&w);
	n0 = nreq(&s);
	struct reply k9[] = {
		{ 200, UNSUB_OK, NULL, 0, END_DONE },
		{ 200, SUB_OK("SUB3"), NULL, 0, END_DONE },
		{ 200, NULL, st_closed, 0, END_DONE },
	};
	script(&s, k9, 3);
	CHECK_INT(watch(es, F13, 2, 60, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "L f=;");
	CHECK_INT(nreq(&s), n0 + 3);
	CHECK_REQ(&s, n0, "<m:Unsubscribe><m:SubscriptionId>SUB2b</m:SubscriptionId>");
	CHECK_REQ(&s, n0 + 1, "<t:FolderId Id=\"F1\"/><t:FolderId Id=\"F3\"/>");
	case_end();

	case_begin("watch: a malformed stream is BE_PROTOCOL; lost reported next");
	watcher_reset(&w);
	static const char *const st10[] = { KEEPALIVE "garbage", NULL };
	struct reply k10[] = {
		{ 200, NULL, st10, 0, END_HANG },
		{ 200, NULL, st_closed, 0, END_DONE },
	};
	script(&s, k10, 2);
	CHECK_INT(watch(es, F13, 2, 60, &w, &mode, &r), BE_PROTOCOL);
	CHECK_STR(r.msg, "notification stream: text between envelopes");
	CHECK_INT(watch(es, F13, 2, 60, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "L f=;");
	case_end();

	case_begin("watch: invalid arguments are refused without a request");
	n0 = nreq(&s);
	const char *const bad[] = { "F1", "" };
	CHECK_INT(watch(es, bad, 2, 60, &w, &mode, &r), BE_REFUSED);
	CHECK_INT(watch(es, F12, 0, 60, &w, &mode, &r), BE_REFUSED);
	CHECK_INT(nreq(&s), n0);
	case_end();

	case_begin("close: Unsubscribe on the way out");
	n0 = nreq(&s);
	struct reply k11[] = { { 200, UNSUB_OK, NULL, 0, END_DONE } };
	script(&s, k11, 1);
	ews_backend.close(es);
	CHECK_INT(nreq(&s), n0 + 1);
	CHECK_REQ(&s, n0, "<m:Unsubscribe><m:SubscriptionId>SUB3</m:SubscriptionId>");
	case_end();

	buf_free(&w.log);
	server_stop(&s);
}

static void test_pull(void)
{
	struct server s;
	struct be_result r;
	struct watcher w = { 0 };
	enum be_watch_mode mode;

	server_start(&s);
	watcher_reset(&w);
	struct be_session *es = open_session(&s, &r);
	if (!es) {
		server_stop(&s);
		return;
	}
	ews_set_pull_period(es, 100);
	int base = nreq(&s);

	case_begin("watch: streaming refused -> pull subscription, GetEvents");
	struct reply k1[] = {
		{ 200, SUB_ERR("ErrorInvalidSubscriptionRequest"), NULL, 0, END_DONE },
		{ 200, SUB_PULL_OK("P1", "W0"), NULL, 0, END_DONE },
		{ 200, GE("true", "W0", PULL_EV("CreatedEvent", "W1", "I1", "F1")),
		  NULL, 0, END_DONE },
		{ 200, GE("false", "W1", PULL_EV("DeletedEvent", "W2", "I2", "F2")),
		  NULL, 0, END_DONE },
	};
	script(&s, k1, 4);
	s.fallback = (struct reply){ 200, GE("false", "W2", STATUS_EV("W3")),
				     NULL, 0, END_DONE };
	int64_t t0 = now_ms();
	CHECK_INT(watch(es, F12, 2, 1, &w, &mode, &r), BE_OK);
	int64_t took = now_ms() - t0;
	CHECK(took >= 900 && took < 2500);
	CHECK_INT(mode, BE_WATCH_PULL);
	CHECK_INT(w.mode, BE_WATCH_PULL);
	CHECK_STR(w.log.data, "L f=;f=F1;f=F2;");
	int n = nreq(&s);
	CHECK(n - base >= 6);   /* 2 Subscribes, 2 at once, then every 100 ms */
	CHECK_REQ(&s, base, "<m:StreamingSubscriptionRequest>");
	CHECK_REQ(&s, base + 1, "<m:PullSubscriptionRequest>");
	CHECK_REQ(&s, base + 1, "<t:Timeout>10</t:Timeout>");
	CHECK_REQ(&s, base + 2, "<m:SubscriptionId>P1</m:SubscriptionId>"
		  "<m:Watermark>W0</m:Watermark>");
	CHECK_REQ(&s, base + 3, "<m:Watermark>W1</m:Watermark>");
	CHECK_REQ(&s, base + 4, "<m:Watermark>W2</m:Watermark>");
	CHECK_REQ(&s, base + 5, "<m:Watermark>W3</m:Watermark>");
	case_end();

	case_begin("watch: pull again on the same subscription (no new Subscribe)");
	watcher_reset(&w);
	base = nreq(&s);
	script(&s, NULL, 0);
	CHECK_INT(watch(es, F21, 2, 1, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "");
	CHECK_REQ(&s, base, "<m:GetEvents><m:SubscriptionId>P1</m:SubscriptionId>");
	case_end();

	case_begin("watch: ErrorInvalidWatermark -> pull subscription again, lost");
	watcher_reset(&w);
	base = nreq(&s);
	struct reply k2[] = {
		{ 200, GE_ERR("ErrorInvalidWatermark"), NULL, 0, END_DONE },
		{ 200, SUB_PULL_OK("P2", "X0"), NULL, 0, END_DONE },
	};
	script(&s, k2, 2);
	s.fallback = (struct reply){ 200, GE("false", "X0", STATUS_EV("X1")),
				     NULL, 0, END_DONE };
	CHECK_INT(watch(es, F12, 2, 1, &w, &mode, &r), BE_OK);
	CHECK_STR(w.log.data, "L f=;");
	CHECK_REQ(&s, base + 1, "<m:PullSubscriptionRequest>");
	CHECK_REQ(&s, base + 2, "<m:SubscriptionId>P2</m:SubscriptionId>"
		  "<m:Watermark>X0</m:Watermark>");
	case_end();

	case_begin("watch: cancelled between pulls: back within a second");
	watcher_reset(&w);
	ews_set_pull_period(es, 5000);
	t0 = now_ms();
	w.cancel_at = t0 + 300;
	CHECK_INT(watch(es, F12, 2, 60, &w, &mode, &r), BE_OK);
	CHECK(now_ms() - w.cancel_at < 500);
	case_end();

	case_begin("watch: pull's transient failure is returned as it is");
	watcher_reset(&w);
	struct reply k3[] = { { 503, "<html/>", NULL, 0, END_DONE } };
	script(&s, k3, 1);
	CHECK_INT(watch(es, F12, 2, 1, &w, &mode, &r), BE_NETWORK);
	CHECK_CONTAINS(r.msg, "HTTP 503");
	CHECK_INT(mode, BE_WATCH_PULL);
	ews_set_pull_period(es, 0);
	case_end();

	case_begin("close after pull: Unsubscribe");
	base = nreq(&s);
	struct reply k4[] = { { 200, UNSUB_OK, NULL, 0, END_DONE } };
	script(&s, k4, 1);
	ews_backend.close(es);
	CHECK_REQ(&s, base, "<m:SubscriptionId>P2</m:SubscriptionId>");
	case_end();

	case_begin("watch: neither form -> BE_UNSUPPORTED, one line");
	watcher_reset(&w);
	es = open_session(&s, &r);
	/* a plain 500 is a refusal only the second time in a row (a server
	 * restarting answers so too): the first is a failure for a while */
	struct reply k5[] = {
		{ 500, "<html>Internal error</html>", NULL, 0, END_DONE },
		{ 500, "<html>Internal error</html>", NULL, 0, END_DONE },
		{ 200, SUB_ERR("ErrorInvalidSubscriptionRequest"), NULL, 0, END_DONE },
	};
	script(&s, k5, 3);
	CHECK_INT(watch(es, F12, 2, 1, &w, &mode, &r), BE_NETWORK);
	CHECK_CONTAINS(r.msg, "HTTP 500");
	CHECK_INT(watch(es, F12, 2, 1, &w, &mode, &r), BE_UNSUPPORTED);
	CHECK_INT(mode, BE_WATCH_NONE);
	CHECK_CONTAINS(r.msg, "server offers no notifications (streaming: "
		       "server at ");
	CHECK_CONTAINS(r.msg, "HTTP 500; pull: ErrorInvalidSubscriptionRequest");
	CHECK(!strchr(r.msg, '\n'));
	ews_backend.close(es);
	case_end();

	case_begin("watch: a transient failure at Subscribe is no refusal");
	watcher_reset(&w);
	es = open_session(&s, &r);
	base = nreq(&s);
	struct reply k6[] = {
		{ 503, "<html/>", NULL, 0, END_DONE },
		{ 200, SUB_OK("S9"), NULL, 0, END_DONE },
		{ 200, NULL, (const char *const[]){ CLOSED, NULL }, 0, END_DONE },
	};
	script(&s, k6, 3);
	CHECK_INT(watch(es, F12, 2, 1, &w, &mode, &r), BE_NETWORK);
	CHECK_INT(mode, BE_WATCH_NONE);
	CHECK_INT(watch(es, F12, 2, 1, &w, &mode, &r), BE_OK);
	CHECK_INT(mode, BE_WATCH_PUSH);
	CHECK_REQ(&s, base + 1, "<m:StreamingSubscriptionRequest>");
	case_end();

	case_begin("watch: GetStreamingEvents refused -> pull");
	watcher_reset(&w);
	base = nreq(&s);
	struct reply k7[] = {
		{ 200, UNSUB_OK, NULL, 0, END_DONE },           /* F13 */
		{ 200, SUB_OK("S10"), NULL, 0, END_DONE },
		{ 400, "<html>bad request</html>", NULL, 0, END_DONE },
		{ 200, UNSUB_OK, NULL, 0, END_DONE },
		{ 200, SUB_PULL_OK("P3", "Y0"), NULL, 0, END_DONE },
	};
	script(&s, k7, 5);
	s.fallback = (struct reply){ 200, GE("false", "Y0", STATUS_EV("Y1")),
				     NULL, 0, END_DONE };
	CHECK_INT(watch(es, F13, 2, 1, &w, &mode, &r), BE_OK);
	CHECK_INT(mode, BE_WATCH_PULL);
	CHECK_STR(w.log.data, "L f=;L f=;");
	CHECK_REQ(&s, base + 3, "<m:Unsubscribe><m:SubscriptionId>S10");
	CHECK_REQ(&s, base + 4, "<m:PullSubscriptionRequest>");
	case_end();

	struct reply k8[] = { { 200, UNSUB_OK, NULL, 0, END_DONE } };
	script(&s, k8, 1);
	ews_backend.close(es);

	case_begin("watch: a server too old for streaming is asked to pull at once");
	watcher_reset(&w);
	es = open_session_v(&s, &r, 2);   /* Exchange2010 */
	base = nreq(&s);
	struct reply k9[] = {
		{ 200, SUB_PULL_OK("P4", "Z0"), NULL, 0, END_DONE },
		{ 200, GE("false", "Z0", STATUS_EV("Z1")), NULL, 0, END_DONE },
		{ 200, UNSUB_OK, NULL, 0, END_DONE },
	};
	script(&s, k9, 3);
	CHECK_INT(watch(es, F12, 2, 0, &w, &mode, &r), BE_OK);
	CHECK_INT(mode, BE_WATCH_PULL);
	CHECK_STR(w.log.data, "L f=;");
	CHECK_REQ(&s, base, "Version=\"Exchange2010\"");
	CHECK_REQ(&s, base, "<m:PullSubscriptionRequest>");
	ews_backend.close(es);
	CHECK_INT(nreq(&s), base + 3);
	case_end();

	buf_free(&w.log);
	server_stop(&s);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_streaming();
	test_pull();
	return check_done("test_ews_notify");
}
