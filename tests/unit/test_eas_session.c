/*
 * test_eas_session.c - the ActiveSync session against a scripted loopback
 * HTTP server: OPTIONS and the version choice, the query and headers of
 * every command, Provision in two rounds (and again after HTTP 449), the
 * DeviceId and policy key kept in the state directory and reused by the
 * next session, and HTTP 451 / 503+Retry-After / 401 graded by class.
 */
#include "backend/eas/eas.h"
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct answer {
	int status;
	const char *headers;     /* extra header lines, each ending \r\n */
	struct buf body;
};

#define MAX_STEPS 16
static struct answer script[MAX_STEPS];
static int n_script;
static char *requests[MAX_STEPS];  /* request line + headers */
static struct buf bodies[MAX_STEPS];
static int n_requests;
static int listen_fd;

static void add(int status, const char *headers, const struct buf *body)
{
	struct answer *a = &script[n_script++];
	a->status = status;
	a->headers = headers;
	buf_init(&a->body, 0);
	if (body)
		buf_append(&a->body, body->data, body->len);
}

static void *serve(void *arg)
{
	(void)arg;
	while (n_requests < n_script) {
		int fd = accept(listen_fd, NULL, NULL);
		if (fd < 0)
			break;
		struct buf in;
		buf_init(&in, 0);
		char chunk[4096];
		while (n_requests < n_script) {
			char *end;
			while (!(end = in.data ? strstr(in.data, "\r\n\r\n") : NULL)) {
				ssize_t k = read(fd, chunk, sizeof(chunk));
				if (k <= 0)
					goto next_conn;
				buf_append(&in, chunk, (size_t)k);
			}
			size_t hlen = (size_t)(end - in.data) + 4;
			const char *cl = strcasestr(in.data, "Content-Length:");
			size_t blen = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
			while (in.len < hlen + blen) {
				ssize_t k = read(fd, chunk, sizeof(chunk));
				if (k <= 0)
					goto next_conn;
				buf_append(&in, chunk, (size_t)k);
			}
			int i = n_requests;
			requests[i] = xstrndup(in.data, hlen);
			buf_init(&bodies[i], 0);
			buf_append(&bodies[i], in.data + hlen, blen);
			struct answer *a = &script[i];
			char head[1024];
			int hn = snprintf(head, sizeof(head),
					  "HTTP/1.1 %d X\r\n%sContent-Length: %zu\r\n%s\r\n",
					  a->status, a->headers ? a->headers : "",
					  a->body.len,
					  a->body.len ? "Content-Type: application/vnd.ms-sync.wbxml\r\n" : "");
			if (write(fd, head, (size_t)hn) != hn ||
			    (a->body.len && write(fd, a->body.data, a->body.len) !=
						   (ssize_t)a->body.len))
				goto next_conn;
			n_requests++;
			/* keep what follows this request */
			struct buf rest;
			buf_init(&rest, 0);
			buf_append(&rest, in.data + hlen + blen, in.len - hlen - blen);
			buf_free(&in);
			in = rest;
		}
next_conn:
		buf_free(&in);
		close(fd);
	}
	return NULL;
}

static int start_server(pthread_t *th)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(listen_fd, 8) || getsockname(listen_fd, (struct sockaddr *)&sa, &sl))
		return -1;
	pthread_create(th, NULL, serve, NULL);
	return ntohs(sa.sin_port);
}

static void reset_script(void)
{
	for (int i = 0; i < n_script; i++)
		buf_free(&script[i].body);
	for (int i = 0; i < n_requests; i++) {
		free(requests[i]);
		buf_free(&bodies[i]);
	}
	n_script = n_requests = 0;
}

static void provision_answer(struct buf *b, const char *key)
{
	struct wbxml_enc e;
	buf_init(b, 0);
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_PROV_PROVISION);
	wbxml_str(&e, WB_PROV_STATUS, "1");
	wbxml_start(&e, WB_PROV_POLICIES);
	wbxml_start(&e, WB_PROV_POLICY);
	wbxml_str(&e, WB_PROV_POLICY_TYPE, "MS-EAS-Provisioning-WBXML");
	wbxml_str(&e, WB_PROV_STATUS, "1");
	wbxml_str(&e, WB_PROV_POLICY_KEY, key);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
}

static void folder_sync_answer(struct buf *b)
{
	struct wbxml_enc e;
	buf_init(b, 0);
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_FH_FOLDER_SYNC);
	wbxml_str(&e, WB_FH_STATUS, "1");
	wbxml_str(&e, WB_FH_SYNC_KEY, "fk1");
	wbxml_start(&e, WB_FH_CHANGES);
	wbxml_start(&e, WB_FH_ADD);
	wbxml_str(&e, WB_FH_SERVER_ID, "inbox-id");
	wbxml_str(&e, WB_FH_PARENT_ID, "0");
	wbxml_str(&e, WB_FH_DISPLAY_NAME, "Inbox");
	wbxml_str(&e, WB_FH_TYPE, "2");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
}

static char *slurp(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char line[256] = "";
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	line[strcspn(line, "\n")] = 0;
	return xstrdup(line);
}

static void test_session(void)
{
	char dir[] = "/tmp/test_eas_session.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	pthread_t th;
	struct buf p1, p2, p3, p4, fs;
	provision_answer(&p1, "111");
	provision_answer(&p2, "222");
	provision_answer(&p3, "333");
	provision_answer(&p4, "444");
	folder_sync_answer(&fs);
	add(200, "MS-ASProtocolVersions: 2.5,12.1,14.0,14.1,16.0\r\n"
		 "MS-ASProtocolCommands: Sync,FolderSync,Provision\r\n", NULL);
	add(200, NULL, &p1);
	add(200, NULL, &p2);
	add(449, NULL, NULL);
	add(200, NULL, &p3);
	add(200, NULL, &p4);
	add(200, NULL, &fs);
	int port = start_server(&th);
	CHECK(port > 0);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/Microsoft-Server-ActiveSync", port);
	struct be_config cfg = { .url = url, .user = "al@ex.test", .password = "pw",
				 .connect_timeout_s = 5, .timeout_s = 10,
				 .state_dir = dir };
	struct be_result r;
	struct be_session *s = eas_backend.open(&cfg, &r);
	CHECK(s != NULL);
	if (!s) {
		printf("open: %s\n", r.msg);
		return;
	}
	CHECK_STR(eas_session_version(s), "16.0");
	CHECK_STR(eas_backend.root_id(s), "0");
	struct be_folder_batch b;
	CHECK(eas_backend.sync_folders(s, NULL, &b, &r) == BE_OK);
	CHECK(b.n == 2);  /* Inbox, and our Outbox: the server has none */
	CHECK_STR(b.new_state, "fk1");
	if (b.n == 2) {
		CHECK_STR(b.v[1].id, EAS_VIRTUAL_OUTBOX);
		CHECK_STR(b.v[1].name, "Outbox");
	}
	be_folder_batch_free(&b);
	char *ids[BE_SPECIAL_N];
	CHECK(eas_backend.special_folders(s, ids, &r) == BE_OK);
	CHECK_STR(ids[BE_INBOX], "inbox-id");
	CHECK_STR(ids[BE_OUTBOX], EAS_VIRTUAL_OUTBOX);
	for (int k = 0; k < BE_SPECIAL_N; k++)
		free(ids[k]);
	/* 16.0: drafts and sending; no search by token, no Outbox here */
	struct be_caps caps;
	be_caps_get(&eas_backend, s, &caps);
	CHECK(caps.can == (BE_CAN_DRAFT | BE_CAN_EDIT_DRAFT | BE_CAN_SEND |
			   BE_CAN_NOTIFY | BE_CAN_RESOLVE | BE_CAN_SYNC_MANY));
	CHECK_STR(caps.speaks, "ActiveSync 16.0");
	char *missing = be_caps_missing(caps.can);
	CHECK_STR(missing, "store a message in a folder, find a message whose "
		  "upload answer was lost (it is sent again; the server drops "
		  "the duplicate), keep an Outbox (exchangefs shows one: what "
		  "is written there is sent)");
	free(missing);
	eas_backend.close(s);
	pthread_join(th, NULL);
	close(listen_fd);

	CHECK(n_requests == 7);
	if (n_requests == 7) {
		CHECK(!strncmp(requests[0], "OPTIONS /Microsoft-Server-ActiveSync ", 37));
		CHECK(strstr(requests[1], "POST /Microsoft-Server-ActiveSync?Cmd=Provision&User=al%40ex.test&DeviceId=") != NULL);
		CHECK(strstr(requests[1], "&DeviceType=exchangefs ") != NULL);
		CHECK(strstr(requests[1], "MS-ASProtocolVersion: 16.0\r\n") != NULL);
		CHECK(strstr(requests[1], "X-MS-PolicyKey") == NULL);
		CHECK(strstr(requests[1], "Content-Type: application/vnd.ms-sync.wbxml\r\n") != NULL);
		/* the acknowledgement names the temporary key */
		char err[128];
		struct wbxml_node *t = wbxml_parse(bodies[2].data, bodies[2].len,
						   4096, 100, err, sizeof(err));
		CHECK_STR(wbxml_child_text(wbxml_path(t, WB_PROV_PROVISION, WB_PROV_POLICIES,
						      WB_PROV_POLICY, 0), WB_PROV_POLICY_KEY), "111");
		wbxml_free(t);
		CHECK(strstr(requests[3], "Cmd=FolderSync") != NULL);
		CHECK(strstr(requests[3], "X-MS-PolicyKey: 222\r\n") != NULL);
		/* after 449: provisioned again, the command repeated */
		CHECK(strstr(requests[4], "Cmd=Provision") != NULL);
		CHECK(strstr(requests[6], "Cmd=FolderSync") != NULL);
		CHECK(strstr(requests[6], "X-MS-PolicyKey: 444\r\n") != NULL);
		CHECK(bodies[6].len == bodies[3].len &&
		      !memcmp(bodies[6].data, bodies[3].data, bodies[3].len));
	}
	char *dev = slurp(dir, "eas-device-id");
	char *pol = slurp(dir, "eas-policy-key");
	CHECK(dev && strlen(dev) == 32);
	CHECK_STR(pol, "444");
	CHECK(dev && n_requests && strstr(requests[1], dev) != NULL);
	reset_script();

	/* the next session: the same device, no Provision; then 503, 451 */
	add(200, "MS-ASProtocolVersions: 14.1\r\n", NULL);
	add(503, "Retry-After: 7\r\n", NULL);
	add(451, "X-MS-Location: https://other.example.test/Microsoft-Server-ActiveSync\r\n", NULL);
	add(401, NULL, NULL);
	port = start_server(&th);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/Microsoft-Server-ActiveSync", port);
	s = eas_backend.open(&cfg, &r);
	CHECK(s != NULL);
	if (s) {
		CHECK_STR(eas_session_version(s), "14.1");
		/* 14.1: sending only */
		be_caps_get(&eas_backend, s, &caps);
		CHECK(caps.can == (BE_CAN_SEND | BE_CAN_NOTIFY | BE_CAN_RESOLVE |
				   BE_CAN_SYNC_MANY));
		CHECK_STR(caps.speaks, "ActiveSync 14.1");
		CHECK(eas_backend.sync_folders(s, "fk1", &b, &r) == BE_THROTTLED);
		CHECK(r.retry_after_ms == 7000);
		CHECK(eas_backend.sync_folders(s, "fk1", &b, &r) == BE_REFUSED);
		CHECK(strstr(r.msg, "https://other.example.test/Microsoft-Server-ActiveSync") != NULL);
		CHECK(eas_backend.sync_folders(s, "fk1", &b, &r) == BE_AUTH);
		eas_backend.close(s);
	}
	pthread_join(th, NULL);
	close(listen_fd);
	CHECK(n_requests == 4);
	if (n_requests >= 2) {
		CHECK(strstr(requests[1], dev) != NULL);
		CHECK(strstr(requests[1], "X-MS-PolicyKey: 444\r\n") != NULL);
		CHECK(strstr(requests[1], "MS-ASProtocolVersion: 14.1\r\n") != NULL);
	}
	reset_script();

	/* 16.1 on a server whose folder list has an Outbox */
	add(200, "MS-ASProtocolVersions: 14.1,16.0,16.1\r\n", NULL);
	port = start_server(&th);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/Microsoft-Server-ActiveSync", port);
	{
		char path[512];
		snprintf(path, sizeof(path), "%s/eas-special-folders", dir);
		FILE *f = fopen(path, "w");
		CHECK(f != NULL);
		if (f) {
			fprintf(f, "%d inbox-id\n%d outbox-id\n", BE_INBOX, BE_OUTBOX);
			fclose(f);
		}
	}
	s = eas_backend.open(&cfg, &r);
	CHECK(s != NULL);
	if (s) {
		be_caps_get(&eas_backend, s, &caps);
		CHECK(caps.can == (BE_CAN_ALL & ~(BE_CAN_SAVE | BE_CAN_FIND_TOKEN)));
		CHECK_STR(caps.speaks, "ActiveSync 16.1");
		eas_backend.close(s);
	}
	pthread_join(th, NULL);
	close(listen_fd);
	reset_script();

	/* a server that speaks no version of ours; one that is not EAS */
	add(200, "MS-ASProtocolVersions: 2.5,12.0\r\n", NULL);
	add(200, NULL, NULL);
	port = start_server(&th);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/Microsoft-Server-ActiveSync", port);
	CHECK(eas_backend.open(&cfg, &r) == NULL && r.status == BE_UNSUPPORTED);
	CHECK(strstr(r.msg, "12.1 or later") != NULL);
	CHECK(eas_backend.open(&cfg, &r) == NULL && r.status == BE_PROTOCOL);
	CHECK(strstr(r.msg, "does not speak ActiveSync") != NULL);
	pthread_join(th, NULL);
	close(listen_fd);
	reset_script();

	free(dev);
	free(pol);
	buf_free(&p1);
	buf_free(&p2);
	buf_free(&p3);
	buf_free(&p4);
	buf_free(&fs);
	eas_keys_free_all();
	eas_folders_free_all();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

/* An ItemOperations answer: item k of sids gets status st[k], and the
 * body "Subject: <sid>" when its status is 1. */
static void fetch_answer(struct buf *b, const char *coll,
			 const char *const *sids, const char *const *st,
			 size_t n)
{
	struct wbxml_enc e;
	buf_init(b, 0);
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_IO_ITEM_OPERATIONS);
	wbxml_str(&e, WB_IO_STATUS, "1");
	wbxml_start(&e, WB_IO_RESPONSE);
	for (size_t k = 0; k < n; k++) {
		wbxml_start(&e, WB_IO_FETCH);
		wbxml_str(&e, WB_IO_STATUS, st[k]);
		wbxml_str(&e, WB_AS_COLLECTION_ID, coll);
		wbxml_str(&e, WB_AS_SERVER_ID, sids[k]);
		if (!strcmp(st[k], "1")) {
			char mime[64];
			snprintf(mime, sizeof(mime), "Subject: %s\r\n\r\nx", sids[k]);
			wbxml_start(&e, WB_IO_PROPERTIES);
			wbxml_start(&e, WB_ASB_BODY);
			wbxml_opaque(&e, WB_ASB_DATA, mime, strlen(mime));
			wbxml_end(&e);
			wbxml_end(&e);
		}
		wbxml_end(&e);
	}
	wbxml_end(&e);
	wbxml_end(&e);
}

#define FN 20
struct fetched {
	struct buf data[FN];
	int st[FN];
	int calls[FN];
};

static int f_sink(void *arg, size_t i, const void *p, size_t n)
{
	struct fetched *g = arg;
	if (i < FN)
		buf_append(&g->data[i], p, n);
	return 0;
}

static void f_done(void *arg, size_t i, enum be_status st, const char *msg)
{
	struct fetched *g = arg;
	(void)msg;
	if (i < FN) {
		g->st[i] = (int)st;
		g->calls[i]++;
	}
}

static void fetched_reset(struct fetched *g)
{
	for (int i = 0; i < FN; i++) {
		buf_free(&g->data[i]);
		buf_init(&g->data[i], 0);
		g->st[i] = -1;
		g->calls[i] = 0;
	}
}

/* The Fetch elements of a request body: count, and the ServerIds. */
static size_t fetches_in(const struct buf *body, char *sids, size_t cap,
			 bool with_coll)
{
	char err[128];
	size_t n = 0;
	sids[0] = 0;
	struct wbxml_node *t = wbxml_parse(body->data, body->len, 1 << 20, 10000,
					   err, sizeof(err));
	for (struct wbxml_node *f = wbxml_path(t, WB_IO_ITEM_OPERATIONS, WB_IO_FETCH, 0);
	     f; f = wbxml_next(f), n++) {
		size_t l = strlen(sids);
		snprintf(sids + l, cap - l, "%s%s%s%s", l ? "," : "",
			 with_coll ? wbxml_child_text(f, WB_AS_COLLECTION_ID) : "",
			 with_coll ? ":" : "",
			 wbxml_child_text(f, WB_AS_SERVER_ID));
	}
	wbxml_free(t);
	return n;
}

static size_t fetches_of(const struct buf *body, char *sids, size_t cap)
{
	return fetches_in(body, sids, cap, false);
}

/* Several messages per ItemOperations; mixed statuses; an invalid id; a
 * server that fails the whole request (HTTP 501, as SOGo does when one is
 * gone) asked one by one; more than EAS_FETCH_BATCH in two requests. */
static void test_fetch_batch(void)
{
	char dir[] = "/tmp/test_eas_fetch.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[600];
	snprintf(path, sizeof(path), "%s/eas-policy-key", dir);
	FILE *pf = fopen(path, "w");
	CHECK(pf != NULL);
	if (!pf)
		return;
	fputs("none\n", pf);
	fclose(pf);

	struct buf a1, a2, a4, empty;
	static const char *const s13[] = { "1", "2", "3" };
	static const char *const st_mixed[] = { "1", "6", "1" };
	static const char *const ok1[] = { "1" };
	static const char *const ok2[] = { "1", "1" };
	struct buf ca, cb;
	fetch_answer(&a1, "c", s13, st_mixed, 3);
	fetch_answer(&a2, "c", s13, ok1, 1);
	fetch_answer(&a4, "c", s13 + 2, ok1, 1);
	fetch_answer(&empty, "c", NULL, NULL, 0);
	fetch_answer(&ca, "a", s13, ok2, 2);
	fetch_answer(&cb, "b", s13, ok1, 1);
	add(200, "MS-ASProtocolVersions: 16.1\r\n", NULL);
	add(200, NULL, &a1);          /* 1: one request for c1, c2, c3 */
	add(501, NULL, NULL);         /* 2: the whole request fails ... */
	add(200, NULL, &a2);          /* 3: ... then one by one: c1 */
	add(501, NULL, NULL);         /* 4: c2 fails alone: gone or a hiccup */
	add(200, NULL, &a4);          /* 5: c3 */
	add(200, NULL, &empty);       /* 6, 7: 20 items in 16 + 4 */
	add(200, NULL, &empty);
	add(200, NULL, &ca);          /* 8, 9: one collection per request */
	add(200, NULL, &cb);
	pthread_t th;
	int port = start_server(&th);
	CHECK(port > 0);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/Microsoft-Server-ActiveSync", port);
	struct be_config cfg = { .url = url, .user = "al@ex.test", .password = "pw",
				 .connect_timeout_s = 5, .timeout_s = 10,
				 .state_dir = dir };
	struct be_result r;
	struct fetched g = { 0 };
	fetched_reset(&g);
	struct be_session *s = eas_backend.open(&cfg, &r);
	CHECK(s != NULL);
	if (s) {
		static const char *const ids[] = { "c\t1", "c\t2", "bad", "c\t3" };
		CHECK(eas_backend.fetch_mime(s, ids, 4, f_sink, f_done, &g, &r) == BE_OK);
		for (int i = 0; i < 4; i++)
			CHECK(g.calls[i] == 1);
		CHECK(g.st[0] == BE_OK && g.st[1] == BE_ITEM_GONE &&
		      g.st[2] == BE_ITEM_GONE && g.st[3] == BE_OK);
		CHECK_STR(g.data[0].data, "Subject: 1\r\n\r\nx");
		CHECK_STR(g.data[3].data, "Subject: 3\r\n\r\nx");

		fetched_reset(&g);
		static const char *const three[] = { "c\t1", "c\t2", "c\t3" };
		CHECK(eas_backend.fetch_mime(s, three, 3, f_sink, f_done, &g, &r) == BE_OK);
		for (int i = 0; i < 3; i++)
			CHECK(g.calls[i] == 1);
		/* a lone HTTP 501 is no proof the message is gone: a
		 * server failure (the core has the folder synced), and c3
		 * is still asked for */
		CHECK(g.st[0] == BE_OK && g.st[1] == BE_NETWORK && g.st[2] == BE_OK);
		CHECK_STR(g.data[0].data, "Subject: 1\r\n\r\nx");
		CHECK_STR(g.data[2].data, "Subject: 3\r\n\r\nx");

		fetched_reset(&g);
		char idbuf[FN][16];
		const char *many[FN];
		for (int i = 0; i < FN; i++) {
			snprintf(idbuf[i], sizeof(idbuf[i]), "c\t%d", 100 + i);
			many[i] = idbuf[i];
		}
		CHECK(eas_backend.fetch_mime(s, many, FN, f_sink, f_done, &g, &r) == BE_OK);
		for (int i = 0; i < FN; i++)
			CHECK(g.calls[i] == 1 && g.st[i] == BE_PROTOCOL);

		/* items of two folders: a request each (SOGo answers every
		 * Fetch from the first one's folder) */
		fetched_reset(&g);
		static const char *const mixed[] = { "a\t1", "b\t1", "a\t2" };
		CHECK(eas_backend.fetch_mime(s, mixed, 3, f_sink, f_done, &g, &r) == BE_OK);
		for (int i = 0; i < 3; i++)
			CHECK(g.calls[i] == 1 && g.st[i] == BE_OK);
		CHECK_STR(g.data[0].data, "Subject: 1\r\n\r\nx");
		CHECK_STR(g.data[1].data, "Subject: 1\r\n\r\nx");
		CHECK_STR(g.data[2].data, "Subject: 2\r\n\r\nx");
		eas_backend.close(s);
	}
	pthread_join(th, NULL);
	close(listen_fd);
	CHECK(n_requests == 10);
	if (n_requests == 10) {
		char sids[512];
		CHECK(strstr(requests[1], "Cmd=ItemOperations") != NULL);
		CHECK(fetches_of(&bodies[1], sids, sizeof(sids)) == 3);
		CHECK_STR(sids, "1,2,3");
		CHECK(fetches_of(&bodies[2], sids, sizeof(sids)) == 3);
		CHECK(fetches_of(&bodies[3], sids, sizeof(sids)) == 1);
		CHECK_STR(sids, "1");
		CHECK(fetches_of(&bodies[4], sids, sizeof(sids)) == 1);
		CHECK_STR(sids, "2");
		CHECK(fetches_of(&bodies[5], sids, sizeof(sids)) == 1);
		CHECK_STR(sids, "3");
		CHECK(fetches_of(&bodies[6], sids, sizeof(sids)) == EAS_FETCH_BATCH);
		CHECK(fetches_of(&bodies[7], sids, sizeof(sids)) == FN - EAS_FETCH_BATCH);
		CHECK_STR(sids, "116,117,118,119");
		CHECK(fetches_in(&bodies[8], sids, sizeof(sids), true) == 2);
		CHECK_STR(sids, "a:1,a:2");
		CHECK(fetches_in(&bodies[9], sids, sizeof(sids), true) == 1);
		CHECK_STR(sids, "b:1");
	}
	reset_script();
	for (int i = 0; i < FN; i++)
		buf_free(&g.data[i]);
	buf_free(&a1);
	buf_free(&a2);
	buf_free(&a4);
	buf_free(&empty);
	buf_free(&ca);
	buf_free(&cb);
	eas_keys_free_all();
	eas_folders_free_all();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

/* A damaged eas-device-id (emptied by a full disk, cut short, edited,
 * binary) is replaced by a new id: load_device_id() used to call itself
 * without end on anything but 32 upper-case hex digits. */
static void test_damaged_device_id(void)
{
	static const struct { const char *text; size_t len; } bad[] = {
		{ "", 0 },
		{ "0123456789ABCDEF", 16 },
		{ "0123456789abcdef0123456789abcdef\n", 33 },
		{ "\x01\xff\x00garbage\n\x7f", 13 },
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		char dir[] = "/tmp/test_eas_session.XXXXXX";
		CHECK(mkdtemp(dir) != NULL);
		char path[512];
		snprintf(path, sizeof(path), "%s/eas-device-id", dir);
		FILE *f = fopen(path, "w");
		CHECK(f && fwrite(bad[k].text, 1, bad[k].len, f) == bad[k].len);
		fclose(f);
		snprintf(path, sizeof(path), "%s/eas-policy-key", dir);
		f = fopen(path, "w");
		fputs("none\n", f);
		fclose(f);
		add(200, "MS-ASProtocolVersions: 14.1,16.1\r\n", NULL);
		pthread_t th;
		int port = start_server(&th);
		CHECK(port > 0);
		char url[128];
		snprintf(url, sizeof(url),
			 "http://127.0.0.1:%d/Microsoft-Server-ActiveSync", port);
		struct be_config cfg = { .url = url, .user = "al", .password = "pw",
					 .connect_timeout_s = 5, .timeout_s = 10,
					 .state_dir = dir };
		struct be_result r;
		struct be_session *s = eas_backend.open(&cfg, &r);
		CHECK(s != NULL);
		char *dev = slurp(dir, "eas-device-id");
		if (s) {
			const char *id = eas_session_device(s);
			CHECK(strlen(id) == 32 &&
			      strspn(id, "0123456789ABCDEF") == 32);
			CHECK_STR(dev, id);
			eas_backend.close(s);
		}
		free(dev);
		pthread_join(th, NULL);
		close(listen_fd);
		reset_script();
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		CHECK(system(cmd) == 0);
	}
}

int main(void)
{
	test_session();
	test_fetch_batch();
	test_damaged_device_id();
	return check_done("test_eas_session");
}
