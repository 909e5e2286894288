/*
 * test_ews_http.c - the EWS backend end to end over real HTTP on loopback:
 * a canned server in a thread (curl's way: each case is a scripted reply
 * plus checks on the request received) drives open, sync_folders,
 * sync_items and fetch_mime through backend/http.c, including Basic auth,
 * keep-alive, chunked streaming, error grading (401, HTML, SOAP fault 500,
 * 503 Retry-After, 429, redirects, refused connections, timeouts, cut
 * connections, over-cap answers) and TLS with a certificate made on the
 * spot (untrusted, trusted through ca_file, insecure).  The write
 * operations too: one request each, a 3 MB upload, rename_folder's second
 * try with the ChangeKey.  Checks that the password never reaches a log
 * line.
 */
#include "backend/backend.h"
#include "backend/ews/ews.h"
#include "test_ews_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <strings.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define USER "alice@example.com"
#define PASS "s3cr3t-Pa55word"
/* base64("alice@example.com:s3cr3t-Pa55word") */
#define AUTH_OK "Authorization: Basic YWxpY2VAZXhhbXBsZS5jb206czNjcjN0LVBhNTV3b3Jk"

enum mode {
	M_NORMAL,     /* Content-Length body */
	M_CHUNKED,    /* chunked, 7-byte chunks */
	M_HANG,       /* read the request, never answer */
	M_CUT,        /* send headers and half the body, then close */
	M_HUGE,       /* Content-Length body of `huge` spaces */
};

struct canned {
	int status;
	const char *ctype;
	const char *extra;       /* more header lines, each ending \r\n */
	const char *file;        /* body from data/ews/, or ... */
	const char *body;        /* ... this text */
	enum mode mode;
	size_t huge;
};

struct server {
	int lfd, port;
	SSL_CTX *tls;
	pthread_t th;
	atomic_bool stop;       /* server_stop(); the server threads poll it */
	pthread_mutex_t mu;
	/* protected by mu */
	struct canned script[12];
	int nscript, next;
	int requests, connections, challenges;
	bool bad_password;       /* answer 401 to everything */
	struct buf req_head, req_body;  /* last request */
};

/* ---- connection I/O, plain or TLS ---- */

struct conn {
	int fd;
	SSL *ssl;
};

static ssize_t conn_read(struct conn *c, void *p, size_t n)
{
	if (c->ssl) {
		int r = SSL_read(c->ssl, p, (int)n);
		return r > 0 ? r : -1;
	}
	return recv(c->fd, p, n, 0);
}

static int conn_write(struct conn *c, const void *p, size_t n)
{
	const char *d = p;
	while (n) {
		ssize_t w = c->ssl ? SSL_write(c->ssl, d, (int)n)
				   : send(c->fd, d, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		d += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read one request into head/body; -1 when the client closed. */
static int read_request(struct conn *c, struct buf *head, struct buf *body)
{
	char tmp[8192];
	buf_reset(head);
	buf_reset(body);
	struct buf all;
	buf_init(&all, 0);
	char *end = NULL;
	while (!end) {
		ssize_t n = conn_read(c, tmp, sizeof(tmp));
		if (n <= 0) {
			buf_free(&all);
			return -1;
		}
		buf_append(&all, tmp, (size_t)n);
		if ((unsigned char)all.data[0] == 0x16) {
			/* a TLS ClientHello: answer like an HTTP server */
			conn_write(c, "HTTP/1.1 400 Bad Request\r\n\r\n", 28);
			buf_free(&all);
			return -1;
		}
		end = strstr(all.data, "\r\n\r\n");
	}
	size_t hlen = (size_t)(end - all.data) + 4;
	buf_append(head, all.data, hlen);
	size_t clen = 0;
	for (char *l = head->data; l; l = strstr(l, "\r\n")) {
		l += l == head->data ? 0 : 2;
		if (!strncasecmp(l, "Content-Length:", 15))
			clen = strtoul(l + 15, NULL, 10);
		if (!*l)
			break;
	}
	buf_append(body, all.data + hlen, all.len - hlen);
	buf_free(&all);
	while (body->len < clen) {
		ssize_t n = conn_read(c, tmp, sizeof(tmp));
		if (n <= 0)
			return -1;
		buf_append(body, tmp, (size_t)n);
	}
	return 0;
}

static void answer(struct conn *c, struct server *s, const struct canned *k)
{
	struct buf out, body;
	buf_init(&out, 0);
	buf_init(&body, 0);
	if (k->file) {
		size_t len;
		char *d = data_file(k->file, &len);
		buf_append(&body, d, len);
		free(d);
	} else if (k->body) {
		buf_puts(&body, k->body);
	}
	if (!body.data)
		buf_append(&body, "", 0);
	buf_printf(&out, "HTTP/1.1 %d X\r\n", k->status);
	if (k->ctype)
		buf_printf(&out, "Content-Type: %s\r\n", k->ctype);
	if (k->extra)
		buf_puts(&out, k->extra);
	if (k->mode == M_CHUNKED) {
		buf_puts(&out, "Transfer-Encoding: chunked\r\n\r\n");
		for (size_t at = 0; at < body.len; at += 7) {
			size_t n = body.len - at < 7 ? body.len - at : 7;
			buf_printf(&out, "%zx\r\n", n);
			buf_append(&out, body.data + at, n);
			buf_puts(&out, "\r\n");
		}
		buf_puts(&out, "0\r\n\r\n");
		conn_write(c, out.data, out.len);
	} else if (k->mode == M_HUGE) {
		buf_printf(&out, "Content-Length: %zu\r\n\r\n", k->huge);
		conn_write(c, out.data, out.len);
		char sp[65536];
		memset(sp, ' ', sizeof(sp));
		for (size_t at = 0; at < k->huge; at += sizeof(sp))
			if (conn_write(c, sp, k->huge - at < sizeof(sp)
						      ? k->huge - at
						      : sizeof(sp)))
				break;
	} else {
		size_t send_len = k->mode == M_CUT ? body.len / 2 : body.len;
		buf_printf(&out, "Content-Length: %zu\r\n\r\n", body.len);
		buf_append(&out, body.data, send_len);
		conn_write(c, out.data, out.len);
	}
	(void)s;
	buf_free(&out);
	buf_free(&body);
}

static void serve_conn(struct server *s, struct conn *c)
{
	struct buf head, body;
	buf_init(&head, 0);
	buf_init(&body, 0);
	for (;;) {
		/* between requests: a client that opens a new connection
		 * (creates go on a fresh one) leaves this one idle - serve
		 * the new one (one connection at a time, like before) */
		struct pollfd pf[2] = { { c->fd, POLLIN, 0 }, { s->lfd, POLLIN, 0 } };
		if (!c->ssl || !SSL_pending(c->ssl)) {
			while (!s->stop && poll(pf, 2, 50) == 0)
				;
			if (s->stop || (!(pf[0].revents & POLLIN) &&
					(pf[1].revents & POLLIN)))
				break;
		}
		if (read_request(c, &head, &body) != 0)
			break;
		pthread_mutex_lock(&s->mu);
		s->requests++;
		bool authed = strstr(head.data, AUTH_OK "\r\n") &&
			      !s->bad_password;
		struct canned k = { .status = 500, .ctype = "text/plain",
				    .body = "script exhausted" };
		if (!authed) {
			s->challenges++;
			k = (struct canned){ .status = 401, .ctype = "text/html",
				.extra = "WWW-Authenticate: Basic realm=\"EWS\"\r\n",
				.body = "<html>401 Unauthorized</html>" };
		} else if (s->next < s->nscript) {
			k = s->script[s->next++];
		}
		buf_reset(&s->req_head);
		buf_reset(&s->req_body);
		buf_append(&s->req_head, head.data, head.len);
		buf_append(&s->req_body, body.data, body.len);
		pthread_mutex_unlock(&s->mu);
		if (k.mode == M_HANG) {
			while (!s->stop)
				usleep(10000);
			break;
		}
		answer(c, s, &k);
		if (k.mode == M_CUT || k.mode == M_HUGE)
			break;
	}
	buf_free(&head);
	buf_free(&body);
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	while (!s->stop) {
		struct pollfd p = { s->lfd, POLLIN, 0 };
		if (poll(&p, 1, 50) <= 0)
			continue;
		struct conn c = { accept(s->lfd, NULL, NULL), NULL };
		if (c.fd < 0)
			continue;
		pthread_mutex_lock(&s->mu);
		s->connections++;
		pthread_mutex_unlock(&s->mu);
		if (s->tls) {
			c.ssl = SSL_new(s->tls);
			SSL_set_fd(c.ssl, c.fd);
			if (SSL_accept(c.ssl) == 1)
				serve_conn(s, &c);
			SSL_shutdown(c.ssl);
			SSL_free(c.ssl);
		} else {
			serve_conn(s, &c);
		}
		close(c.fd);
	}
	return NULL;
}

static void server_start(struct server *s, SSL_CTX *tls)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	buf_init(&s->req_head, 0);
	buf_init(&s->req_body, 0);
	s->tls = tls;
	s->lfd = listen_loopback(&s->port);
	pthread_create(&s->th, NULL, server_main, s);
}

static void server_stop(struct server *s)
{
	s->stop = true;
	pthread_join(s->th, NULL);
	close(s->lfd);
	buf_free(&s->req_head);
	buf_free(&s->req_body);
	pthread_mutex_destroy(&s->mu);
}

static void script(struct server *s, const struct canned *k, int n)
{
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < n; i++)
		s->script[i] = k[i];
	s->nscript = n;
	s->next = 0;
	pthread_mutex_unlock(&s->mu);
}

/* ---- log capture: the password must never show ---- */

static int secret_leaks, log_lines;

static void log_capture(enum log_level lvl, const char *line)
{
	(void)lvl;
	log_lines++;
	if (strstr(line, PASS) || strstr(line, "YWxpY2VAZXhhbXBsZS5jb206") ||
	    strcasestr(line, "Authorization"))
		secret_leaks++;
}

/* ---- fetch_mime collectors ---- */

struct got {
	struct buf mime[4];
	enum be_status st[4];
	int calls[4];
	bool abort;
};

static int got_sink(void *arg, size_t i, const void *d, size_t len)
{
	struct got *g = arg;
	if (g->abort)
		return -1;
	if (i < 4)
		buf_append(&g->mime[i], d, len);
	return 0;
}

static void got_done(void *arg, size_t i, enum be_status st, const char *msg)
{
	struct got *g = arg;
	(void)msg;
	if (i < 4) {
		g->st[i] = st;
		g->calls[i]++;
	}
}

static void got_init(struct got *g)
{
	memset(g, 0, sizeof(*g));
	for (int i = 0; i < 4; i++)
		buf_init(&g->mime[i], 0);
}

static void got_free(struct got *g)
{
	for (int i = 0; i < 4; i++)
		buf_free(&g->mime[i]);
}

static struct be_config config(const char *url)
{
	struct be_config c = {
		.url = url, .user = USER, .password = PASS,
		.connect_timeout_s = 5, .timeout_s = 10, .verbose = 2,
	};
	return c;
}

static const struct canned ROOT_OK = { 200, "text/xml; charset=utf-8", NULL,
				       "getfolder_root.xml", NULL, M_NORMAL, 0 };

/* ---- the cases ---- */

static void test_session(void)
{
	struct server s;
	char url[128];
	struct be_result r;
	server_start(&s, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/EWS/Exchange.asmx",
		 s.port);

	case_begin("open, sync_folders, sync_items, fetch_mime on one connection");
	const struct canned k[] = {
		ROOT_OK,
		{ 200, "text/xml; charset=utf-8", NULL, "sync_folders_page.xml",
		  NULL, M_NORMAL, 0 },
		{ 200, "application/xml", NULL, "sync_items_first.xml", NULL,
		  M_NORMAL, 0 },
		{ 200, "text/xml", NULL, "getitem_multi.xml", NULL, M_CHUNKED,
		  0 },
	};
	script(&s, k, 4);
	struct be_config cfg = config(url);
	struct be_session *es = ews_backend.open(&cfg, &r);
	CHECK(es != NULL);
	if (!es) {
		printf("  open: %s\n", r.msg);
		server_stop(&s);
		case_end();
		return;
	}
	CHECK_STR(ews_backend.root_id(es), "AAMkADk0N2Y2ZjU4LTU0MGYtNDA5Ny1hNjU3LWEyMmJhMjI1YmYzOQAuAAAAAAB2Rr2SqMw8R7bXTu1i4iO0AQCmHNlkFx5mS5PYOvrvJnMaAAAAAAEIAAA=");
	pthread_mutex_lock(&s.mu);
	CHECK_CONTAINS(s.req_head.data, "POST /EWS/Exchange.asmx HTTP/1.1\r\n");
	CHECK_CONTAINS(s.req_head.data, "Content-Type: text/xml; charset=utf-8\r\n");
	CHECK_CONTAINS(s.req_head.data, "X-AnchorMailbox: " USER "\r\n");
	CHECK_CONTAINS(s.req_head.data, "User-Agent: exchangefs/" EXCHANGEFS_VERSION "\r\n");
	CHECK_CONTAINS(s.req_head.data, "Accept: text/xml\r\n");
	CHECK(!strstr(s.req_head.data, "Expect:"));
	CHECK_CONTAINS(s.req_body.data, "<m:GetFolder>");
	pthread_mutex_unlock(&s.mu);

	struct be_folder_batch fb;
	CHECK_INT(ews_backend.sync_folders(es, "S0", &fb, &r), BE_OK);
	CHECK_INT(fb.n, 3);
	CHECK(fb.more);
	/* the sparse Create had no ParentFolderId: placed under the root */
	if (fb.n == 3)
		CHECK_STR(fb.v[2].parent_id, ews_backend.root_id(es));
	be_folder_batch_free(&fb);
	pthread_mutex_lock(&s.mu);
	CHECK_CONTAINS(s.req_body.data, "<m:SyncState>S0</m:SyncState>");
	pthread_mutex_unlock(&s.mu);

	struct be_item_batch ib;
	CHECK_INT(ews_backend.sync_items(es, "AAMkAGInbox", NULL, 100, &ib, &r),
		  BE_OK);
	CHECK_INT(ib.n, 4);
	be_item_batch_free(&ib);
	pthread_mutex_lock(&s.mu);
	CHECK_CONTAINS(s.req_body.data, "<m:MaxChangesReturned>100</m:MaxChangesReturned>");
	CHECK_CONTAINS(s.req_body.data, "<t:FolderId Id=\"AAMkAGInbox\"/>");
	pthread_mutex_unlock(&s.mu);

	struct got g;
	got_init(&g);
	const char *ids[] = { "AAMkAItem1", "AAMkAItem2", "AAMkAItem3" };
	CHECK_INT(ews_backend.fetch_mime(es, ids, 3, got_sink, got_done, &g, &r),
		  BE_OK);
	size_t len;
	char *eml = data_file("getitem_multi.1.eml", &len);
	CHECK(g.mime[0].len == len && !memcmp(g.mime[0].data, eml, len));
	free(eml);
	CHECK(g.st[0] == BE_OK && g.st[1] == BE_ITEM_GONE && g.st[2] == BE_OK);
	CHECK(g.calls[0] == 1 && g.calls[1] == 1 && g.calls[2] == 1);
	got_free(&g);

	pthread_mutex_lock(&s.mu);
	CHECK_INT(s.connections, 1);     /* keep-alive */
	CHECK_INT(s.requests, 5);        /* one auth challenge, then 4 */
	CHECK_INT(s.challenges, 1);      /* Basic remembered */
	pthread_mutex_unlock(&s.mu);
	case_end();

	case_begin("errors of one session: fault 500, 503, 429, 302, HTML 200, 408");
	const struct canned e[] = {
		{ 500, "text/xml; charset=utf-8", NULL, "fault_busy.xml", NULL,
		  M_NORMAL, 0 },
		{ 503, "text/html", "Retry-After: 7\r\n", NULL, "<html/>",
		  M_NORMAL, 0 },
		{ 429, NULL, "Retry-After: 3\r\n", NULL, "", M_NORMAL, 0 },
		{ 302, "text/html", "Location: https://owa.example.com/owa/auth/logon.aspx\r\n",
		  NULL, "moved", M_NORMAL, 0 },
		{ 200, "text/html; charset=utf-8", NULL, "not_ews.html", NULL,
		  M_NORMAL, 0 },
		{ 500, "text/html", NULL, NULL, "<html>Internal error</html>",
		  M_NORMAL, 0 },
		{ 404, "text/html", NULL, NULL, "nope", M_NORMAL, 0 },
		{ 200, "text/xml", NULL, "sync_items_invalid_state.xml", NULL,
		  M_NORMAL, 0 },
		/* a proxy timing out a slow upload: try again, not refused */
		{ 408, "text/html", NULL, NULL, "Request Time-out", M_NORMAL,
		  0 },
	};
	script(&s, e, 9);
	CHECK_INT(ews_backend.sync_items(es, "F", "S", 512, &ib, &r),
		  BE_THROTTLED);
	CHECK_INT(r.retry_after_ms, 5000);
	CHECK_INT(ews_backend.sync_items(es, "F", "S", 512, &ib, &r),
		  BE_NETWORK);
	CHECK_INT(r.retry_after_ms, 7000);
	CHECK_CONTAINS(r.msg, "answered HTTP 503");
	CHECK_INT(ews_backend.sync_folders(es, NULL, &fb, &r), BE_THROTTLED);
	CHECK_INT(r.retry_after_ms, 3000);
	CHECK_INT(ews_backend.sync_folders(es, NULL, &fb, &r), BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "redirected to https://owa.example.com/owa/auth/logon.aspx");
	CHECK_INT(ews_backend.sync_folders(es, NULL, &fb, &r), BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "did not answer as EWS (got text/html; charset=utf-8)");
	CHECK_INT(ews_backend.sync_folders(es, NULL, &fb, &r), BE_NETWORK);
	CHECK_CONTAINS(r.msg, "answered HTTP 500");
	CHECK_INT(ews_backend.sync_folders(es, NULL, &fb, &r), BE_REFUSED);
	CHECK_CONTAINS(r.msg, "HTTP 404");
	CHECK_INT(ews_backend.sync_items(es, "F", "S", 5, &ib, &r),
		  BE_SYNC_INVALID);
	CHECK_INT(ews_backend.sync_folders(es, NULL, &fb, &r), BE_NETWORK);
	CHECK_CONTAINS(r.msg, "HTTP 408");
	CHECK(fb.n == 0 && ib.n == 0);
	pthread_mutex_lock(&s.mu);
	CHECK_INT(s.next, 9);   /* the redirect was not followed */
	pthread_mutex_unlock(&s.mu);
	case_end();

	case_begin("fetch_mime: HTTP 500 fault, sink abort, cut connection");
	const struct canned f[] = {
		{ 500, "text/xml", NULL, "fault_busy.xml", NULL, M_NORMAL, 0 },
		{ 200, "text/xml", NULL, "getitem_multi.xml", NULL, M_NORMAL, 0 },
		{ 200, "text/xml", NULL, "getitem_multi.xml", NULL, M_CUT, 0 },
		{ 200, "text/html", NULL, NULL, "<html/>", M_NORMAL, 0 },
	};
	script(&s, f, 4);
	got_init(&g);
	CHECK_INT(ews_backend.fetch_mime(es, ids, 3, got_sink, got_done, &g, &r),
		  BE_THROTTLED);
	CHECK_INT(r.retry_after_ms, 5000);
	CHECK(g.calls[0] == 1 && g.calls[1] == 1 && g.calls[2] == 1);
	CHECK(g.st[0] == BE_THROTTLED && g.st[2] == BE_THROTTLED);
	got_free(&g);

	got_init(&g);
	g.abort = true;
	CHECK_INT(ews_backend.fetch_mime(es, ids, 3, got_sink, got_done, &g, &r),
		  BE_REFUSED);
	CHECK(g.calls[0] == 1 && g.calls[1] == 1 && g.calls[2] == 1);
	CHECK(g.st[0] == BE_REFUSED);
	got_free(&g);

	got_init(&g);
	CHECK_INT(ews_backend.fetch_mime(es, ids, 3, got_sink, got_done, &g, &r),
		  BE_NETWORK);
	CHECK(g.calls[0] == 1 && g.calls[1] == 1 && g.calls[2] == 1);
	CHECK(g.st[2] == BE_NETWORK);
	got_free(&g);

	got_init(&g);
	CHECK_INT(ews_backend.fetch_mime(es, ids, 2, got_sink, got_done, &g, &r),
		  BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "did not answer as EWS (got text/html)");
	CHECK(g.calls[0] == 1 && g.calls[1] == 1);
	got_free(&g);

	got_init(&g);
	CHECK_INT(ews_backend.fetch_mime(es, ids, 0, got_sink, got_done, &g, &r),
		  BE_OK);
	const char *bad_ids[] = { "ok", "" };
	CHECK_INT(ews_backend.fetch_mime(es, bad_ids, 2, got_sink, got_done, &g,
					 &r), BE_REFUSED);
	CHECK(g.calls[0] == 1 && g.calls[1] == 1);
	got_free(&g);
	case_end();

	case_begin("answer over the 64 MiB cap");
	const struct canned h[] = {
		{ 200, "text/xml", NULL, NULL, NULL, M_HUGE,
		  ((size_t)64 << 20) + 1 },
	};
	script(&s, h, 1);
	CHECK_INT(ews_backend.sync_folders(es, NULL, &fb, &r), BE_NOMEM);
	CHECK_CONTAINS(r.msg, "larger than 64 MiB");
	case_end();

	case_begin("timeout: the server never answers");
	ews_backend.close(es);
	const struct canned t[] = { ROOT_OK, { .mode = M_HANG } };
	script(&s, t, 2);
	cfg.connect_timeout_s = 1;
	cfg.timeout_s = 1;
	es = ews_backend.open(&cfg, &r);
	CHECK(es != NULL);
	int64_t t0 = now_ms();
	if (es)
		CHECK_INT(ews_backend.sync_folders(es, NULL, &fb, &r),
			  BE_NETWORK);
	int64_t took = now_ms() - t0;
	CHECK_CONTAINS(r.msg, "no answer from 127.0.0.1:");
	CHECK(took >= 1500 && took < 5000);
	ews_backend.close(es);
	server_stop(&s);
	case_end();
}

static void test_open_errors(void)
{
	struct server s;
	char url[128];
	struct be_result r;
	struct be_config cfg;
	server_start(&s, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/EWS/Exchange.asmx",
		 s.port);

	case_begin("open with a wrong password: one clear line");
	cfg = config(url);
	s.bad_password = true;
	CHECK(ews_backend.open(&cfg, &r) == NULL);
	CHECK_INT(r.status, BE_AUTH);
	CHECK_STR(r.msg, "server refused the user name or password (HTTP 401)");
	s.bad_password = false;
	case_end();

	case_begin("open against an HTML page");
	const struct canned html = { 200, "text/html", NULL, "not_ews.html",
				     NULL, M_NORMAL, 0 };
	script(&s, &html, 1);
	CHECK(ews_backend.open(&cfg, &r) == NULL);
	CHECK_INT(r.status, BE_PROTOCOL);
	char want[200];
	snprintf(want, sizeof(want),
		 "server at %s did not answer as EWS (got text/html)", url);
	CHECK_STR(r.msg, want);
	case_end();

	case_begin("open against XML that is not SOAP");
	const struct canned xml = { 200, "text/xml", NULL, NULL,
				    "<rss version=\"2.0\"/>", M_NORMAL, 0 };
	script(&s, &xml, 1);
	CHECK(ews_backend.open(&cfg, &r) == NULL);
	CHECK_INT(r.status, BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "did not answer as EWS: answer is not a SOAP envelope");
	case_end();

	case_begin("open: ErrorNonExistentMailbox");
	const struct canned nm = { 200, "text/xml", NULL,
				   "getfolder_no_mailbox.xml", NULL, M_NORMAL, 0 };
	script(&s, &nm, 1);
	CHECK(ews_backend.open(&cfg, &r) == NULL);
	CHECK_INT(r.status, BE_AUTH);
	case_end();

	case_begin("open: https to a plain HTTP server");
	char https[128];
	snprintf(https, sizeof(https), "https://127.0.0.1:%d/EWS/Exchange.asmx",
		 s.port);
	cfg.url = https;
	CHECK(ews_backend.open(&cfg, &r) == NULL);
	CHECK_INT(r.status, BE_NETWORK);
	CHECK_CONTAINS(r.msg, "TLS handshake with 127.0.0.1:");
	cfg.url = url;
	server_stop(&s);
	case_end();

	case_begin("open: connection refused (closed port)");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/EWS/Exchange.asmx",
		 s.port);
	CHECK(ews_backend.open(&cfg, &r) == NULL);
	CHECK_INT(r.status, BE_NETWORK);
	snprintf(want, sizeof(want), "cannot connect to 127.0.0.1:%d: Connection refused",
		 s.port);
	CHECK_STR(r.msg, want);
	case_end();

	case_begin("open: invalid URLs and header injection");
	static const struct { const char *url, *msg; } bad[] = {
		{ "ftp://example.com/EWS", "only http and https" },
		{ "file:///etc/passwd", "only http and https" },
		{ "example.com", "invalid URL" },
		{ "https://", "invalid URL" },
		{ "", "no server URL" },
		{ "https://bob:" PASS "@example.com/EWS/Exchange.asmx",
		  "must not contain a user name or password" },
		{ "https://ex ample.com/", "invalid URL" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = config(bad[i].url);
		CHECK(ews_backend.open(&cfg, &r) == NULL);
		CHECK_INT(r.status, BE_REFUSED);
		CHECK_CONTAINS(r.msg, bad[i].msg);
		CHECK(!strstr(r.msg, PASS));
	}
	cfg = config(url);
	cfg.mailbox = "a@b\r\nX-Evil: 1";
	CHECK(ews_backend.open(&cfg, &r) == NULL);
	CHECK_INT(r.status, BE_REFUSED);
	CHECK_CONTAINS(r.msg, "invalid mailbox");
	case_end();
}

/* ---- TLS with a certificate made here ---- */

static SSL_CTX *make_tls(const char *pem_path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3,
						  NID_subject_alt_name,
						  "IP:127.0.0.1");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
				  "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, key, EVP_sha256());

	FILE *f = fopen(pem_path, "w");
	PEM_write_X509(f, x);
	fclose(f);

	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_use_certificate(ctx, x);
	SSL_CTX_use_PrivateKey(ctx, key);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

static void test_tls(void)
{
	const char *tmp = getenv("TMPDIR");
	char pem[512];
	snprintf(pem, sizeof(pem), "%s/exchangefs-test-ca-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(pem);
	close(fd);
	SSL_CTX *ctx = make_tls(pem);
	struct server s;
	char url[128];
	struct be_result r;
	server_start(&s, ctx);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/EWS/Exchange.asmx",
		 s.port);
	struct be_config cfg = config(url);

	case_begin("TLS: self-signed certificate not trusted");
	CHECK(ews_backend.open(&cfg, &r) == NULL);
	CHECK_INT(r.status, BE_TLS);
	char want[100];
	snprintf(want, sizeof(want),
		 "TLS certificate of host 127.0.0.1:%d not trusted: ", s.port);
	CHECK_CONTAINS(r.msg, want);
	CHECK_CONTAINS(r.msg, "give that CA's certificate with --ca-file");
	printf("  (%s)\n", r.msg);
	case_end();

	case_begin("TLS: trusted through ca_file");
	script(&s, &ROOT_OK, 1);
	cfg.ca_file = pem;
	struct be_session *es = ews_backend.open(&cfg, &r);
	CHECK(es != NULL);
	if (!es)
		printf("  %s\n", r.msg);
	ews_backend.close(es);
	case_end();

	case_begin("TLS: insecure skips verification");
	script(&s, &ROOT_OK, 1);
	cfg.ca_file = NULL;
	cfg.insecure = true;
	es = ews_backend.open(&cfg, &r);
	CHECK(es != NULL);
	ews_backend.close(es);
	case_end();

	case_begin("TLS: unreadable ca_file");
	cfg.insecure = false;
	cfg.ca_file = "/nonexistent/ca.pem";
	CHECK(ews_backend.open(&cfg, &r) == NULL);
	CHECK_INT(r.status, BE_TLS);
	case_end();

	server_stop(&s);
	SSL_CTX_free(ctx);
	unlink(pem);
}

/* ---- writes over HTTP ---- */

static int requests_of(struct server *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->requests;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static bool last_body_has(struct server *s, const char *needle)
{
	pthread_mutex_lock(&s->mu);
	bool has = s->req_body.data && strstr(s->req_body.data, needle);
	pthread_mutex_unlock(&s->mu);
	return has;
}

#define XML_OK(file) { 200, "text/xml; charset=utf-8", NULL, file, NULL, \
		       M_NORMAL, 0 }

static void test_writes(void)
{
	struct server s;
	char url[128];
	struct be_result r;
	struct be_new out;
	server_start(&s, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/EWS/Exchange.asmx",
		 s.port);
	script(&s, &ROOT_OK, 1);
	struct be_config cfg = config(url);
	struct be_session *es = ews_backend.open(&cfg, &r);
	CHECK(es != NULL);
	if (!es) {
		server_stop(&s);
		return;
	}

	case_begin("rename_folder: one request when the server needs no ChangeKey");
	const struct canned up_ok = XML_OK("write_update_folder.xml");
	script(&s, &up_ok, 1);
	int before = requests_of(&s);
	CHECK_INT(ews_backend.rename_folder(es, "AAMkAFolder", "New & <name>",
					    &out, &r), BE_OK);
	CHECK_INT(requests_of(&s) - before, 1);
	CHECK_OPT_STR(out.id, "AAMkAFolder");
	CHECK_OPT_STR(out.change_key, "AQAAABYAAAFolder2");
	CHECK(last_body_has(&s, "<t:DisplayName>New &amp; &lt;name&gt;</t:DisplayName>"));
	CHECK(!last_body_has(&s, "ChangeKey="));
	be_new_free(&out);
	case_end();

	case_begin("rename_folder: a server that wants the ChangeKey gets it, once");
	const struct canned ck[] = {
		XML_OK("write_update_folder_ck.xml"), ROOT_OK,
		XML_OK("write_update_folder.xml"),
	};
	script(&s, ck, 3);
	before = requests_of(&s);
	CHECK_INT(ews_backend.rename_folder(es, "AAMkAFolder", "N", &out, &r),
		  BE_OK);
	CHECK_INT(requests_of(&s) - before, 3);
	CHECK(last_body_has(&s, "<m:UpdateFolder>"));
	CHECK(last_body_has(&s, "ChangeKey=\"AQAAABYAAACmHNlkFx5mS5PYOvrvJnMaAAAAAAAM\""));
	CHECK_OPT_STR(out.change_key, "AQAAABYAAAFolder2");
	be_new_free(&out);
	/* still refused with the key: the conflict is the answer */
	const struct canned ck2[] = {
		XML_OK("write_update_folder_ck.xml"), ROOT_OK,
		XML_OK("write_update_folder_ck.xml"),
	};
	script(&s, ck2, 3);
	CHECK_INT(ews_backend.rename_folder(es, "AAMkAFolder", "N", &out, &r),
		  BE_CONFLICT);
	CHECK(out.id == NULL);
	case_end();

	case_begin("create_item of 3 MB: one POST, base64 body, id back");
	size_t big = 3u << 20;
	char *mime = xmalloc(big);
	for (size_t i = 0; i < big; i++)
		mime[i] = (char)('a' + i % 26);
	const struct canned created = XML_OK("write_create_item.xml");
	script(&s, &created, 1);
	before = requests_of(&s);
	CHECK_INT(ews_backend.create_item(es, "AAMkAInbox", mime, big, BE_SAVE,
					  1795167067, "tok-1", &out, &r), BE_OK);
	CHECK_INT(requests_of(&s) - before, 1);
	CHECK_OPT_STR(out.id, "AAMkANewDraft1");
	pthread_mutex_lock(&s.mu);
	CHECK(s.req_body.len > big / 3 * 4);
	pthread_mutex_unlock(&s.mu);
	CHECK(last_body_has(&s, "<m:CreateItem MessageDisposition=\"SaveOnly\">"));
	CHECK(last_body_has(&s, "<t:Value>tok-1</t:Value>"));
	be_new_free(&out);
	free(mime);
	case_end();

	case_begin("create_item send: BE_OK without an id");
	const struct canned sent = XML_OK("write_create_item_sent.xml");
	script(&s, &sent, 1);
	CHECK_INT(ews_backend.create_item(es, "AAMkASent", "x", 1, BE_SEND, 0,
					  "tok-2", &out, &r), BE_OK);
	CHECK(out.id == NULL && out.change_key == NULL);
	CHECK(last_body_has(&s, "SendAndSaveCopy"));
	case_end();

	case_begin("special_folders, get_change_key, delete over HTTP");
	const struct canned more[] = {
		XML_OK("write_special_folders.xml"), XML_OK("write_get_item.xml"),
		XML_OK("write_delete_item_gone.xml"),
		{ 500, "text/xml; charset=utf-8", NULL, "fault_busy.xml", NULL,
		  M_NORMAL, 0 },
	};
	script(&s, more, 4);
	char *ids[BE_SPECIAL_N];
	CHECK_INT(ews_backend.special_folders(es, ids, &r), BE_OK);
	CHECK_OPT_STR(ids[BE_INBOX], "AAMkAInbox");
	CHECK(ids[BE_OUTBOX] == NULL);
	for (int k = 0; k < BE_SPECIAL_N; k++)
		free(ids[k]);
	char *key = NULL;
	CHECK_INT(ews_backend.get_change_key(es, "AAMkADraft1", &key, &r),
		  BE_OK);
	CHECK_OPT_STR(key, "CQAAABYAAADraft1c");
	free(key);
	CHECK_INT(ews_backend.delete_item(es, "AAMkAX", BE_DEL_SOFT, &r),
		  BE_ITEM_GONE);
	CHECK(last_body_has(&s, "DeleteType=\"SoftDelete\""));
	/* a SOAP fault with HTTP 500 is graded like any answer */
	struct be_props p = { BE_PROP_READ, true, 0, NULL };
	CHECK_INT(ews_backend.update_props(es, "AAMkAX", NULL, &p, &out, &r),
		  BE_THROTTLED);
	CHECK_INT(r.retry_after_ms, 5000);
	CHECK(out.id == NULL);
	case_end();

	ews_backend.close(es);
	server_stop(&s);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_set_sink(log_capture);
	log_set_debug(~0u);
	test_session();
	test_open_errors();
	test_tls();
	test_writes();

	case_begin("no log line carries the password or Authorization");
	CHECK(log_lines > 20);
	CHECK_INT(secret_leaks, 0);
	case_end();
	return check_done("test_ews_http");
}
