/*
 * eas.c - the Exchange ActiveSync backend: the ops table and the session.
 * A session is one HTTP connection (backend/http.c) plus what open()
 * learned: the protocol version (OPTIONS, the best of 16.1 ... 12.1 the
 * server offers), the DeviceId (random once, kept in the cache directory
 * so every session of the account is the same device to the server) and
 * the policy key (Provision, kept there too).
 *
 * Every command goes through eas_call(): POST <url>?Cmd=X&User=&DeviceId=
 * &DeviceType= with MS-ASProtocolVersion and X-MS-PolicyKey; HTTP 449 or a
 * status 142-144 provisions (two rounds: ask, acknowledge) and repeats the
 * command once; 451 names the server to use instead; 503 with Retry-After
 * is "throttled"; 401/403 are authentication.
 *
 * The MIME of a message comes from ItemOperations Fetch (BodyPreference
 * 4, MIMESupport 2), streamed: Sync asks for properties only (MIME
 * truncated to nothing) so a page of 512 items stays small.
 */
#include "backend/eas/eas.h"
#include "backend/http.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#define DEVICE_TYPE "exchangefs"
#define DEVICE_FILE "eas-device-id"
#define POLICY_FILE "eas-policy-key"
#define SPECIAL_FILE "eas-special-folders"

struct be_session {
	struct http_session *http;
	char *query;          /* "&User=...&DeviceId=...&DeviceType=..." */
	char *state_dir;      /* NULL: nothing kept between sessions */
	char device_id[33];
	struct be_account *account; /* the mount's (borrowed); NULL: the
				       process's default (eas_write.c) */
	const char *version;  /* one of eas_versions */
	char *policy_key;     /* NULL = none (no policy, or not yet) */
	bool provisioned;     /* policy_key is known (maybe "none") */
	long call_timeout_s;
	long stall_s;
	char *watch_sig;      /* eas_write.c: the folder set of the last Ping */
	unsigned heartbeat;   /* the server's Ping bound, 0 unknown */
	unsigned max_folders; /* the server's Ping folder limit, 0 unknown */
};

/* ---- small files in the cache directory ---- */

char *eas_state_read_all(const struct be_session *s, const char *name)
{
	if (!s->state_dir)
		return NULL;
	char *path = xasprintf("%s/%s", s->state_dir, name);
	FILE *f = fopen(path, "r");
	free(path);
	if (!f)
		return NULL;
	struct buf b;
	char chunk[4096];
	size_t n;
	buf_init(&b, (size_t)16 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(&b, chunk, n))
			break;
	fclose(f);
	if (!b.data)
		return xstrdup("");
	return b.data;
}

/* The first line of a small file of ours (a key, an id), or NULL. */
static char *state_read(const struct be_session *s, const char *name)
{
	char *v = eas_state_read_all(s, name);
	if (v)
		v[strcspn(v, "\r\n")] = 0;
	if (v && !*v) {   /* an empty file holds nothing */
		free(v);
		v = NULL;
	}
	return v;
}

/* Replace a file atomically (write a temporary, rename). */
static void state_write(const struct be_session *s, const char *name,
			const char *text)
{
	if (!s->state_dir)
		return;
	char *path = xasprintf("%s/%s", s->state_dir, name);
	char *tmp = xasprintf("%s.%ld.tmp", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) || fsync(fd) ||
	    close(fd) || rename(tmp, path)) {
		log_warn("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	free(path);
}

void eas_state_write(const struct be_session *s, const char *name,
		     const char *text)
{
	state_write(s, name, text);
}

static bool device_id_ok(const char *v)
{
	return v && strlen(v) == 32 && strspn(v, "0123456789ABCDEF") == 32;
}

/* The DeviceId: 32 hex digits, made once per account (cache directory);
 * without one, derived from the URL and user so it is still stable.  A
 * file holding anything else (emptied by a full disk, edited) is replaced
 * by a new id, with a warning: the server then sees a new device, and the
 * folders sync again (names and inodes kept).  The sessions of a process
 * start one at a time here; two processes (a mount and a lookup) making
 * the first id at once: the first file wins. */
static void load_device_id(struct be_session *s, const struct be_config *cfg)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&lock);
	char *v = state_read(s, DEVICE_FILE);
	unsigned char rnd[16];
	if (device_id_ok(v)) {
		memcpy(s->device_id, v, 33);
	} else if (s->state_dir && getrandom(rnd, sizeof(rnd), 0) == sizeof(rnd)) {
		for (int i = 0; i < 16; i++)
			snprintf(s->device_id + 2 * i, 3, "%02X", rnd[i]);
		char line[34];
		snprintf(line, sizeof(line), "%s\n", s->device_id);
		char *path = xasprintf("%s/%s", s->state_dir, DEVICE_FILE);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			if (write_all(fd, line, 33) || fsync(fd))
				log_warn("cannot write %s", path);
			close(fd);
		} else if (errno == EEXIST) {
			free(v);
			v = state_read(s, DEVICE_FILE);
			if (device_id_ok(v)) {   /* another process made it */
				memcpy(s->device_id, v, 33);
			} else {
				log_warn("%s is damaged (not 32 hex digits): "
					 "replaced by a new device id; the "
					 "server sees a new device and the "
					 "folders sync again", path);
				state_write(s, DEVICE_FILE, line);
			}
		} else {
			log_warn("cannot create %s: %s", path, strerror(errno));
		}
		free(path);
	} else {
		/* FNV-1a of user and URL, twice with different seeds */
		uint64_t h[2] = { 0xcbf29ce484222325ull, 0x84222325cbf29ce4ull };
		for (int k = 0; k < 2; k++) {
			for (const char *p = cfg->user ? cfg->user : ""; *p; p++)
				h[k] = (h[k] ^ (unsigned char)*p) * 0x100000001b3ull;
			for (const char *p = cfg->url ? cfg->url : ""; *p; p++)
				h[k] = (h[k] ^ (unsigned char)*p) * 0x100000001b3ull;
		}
		snprintf(s->device_id, sizeof(s->device_id), "%016llX%016llX",
			 (unsigned long long)h[0], (unsigned long long)h[1]);
	}
	free(v);
	pthread_mutex_unlock(&lock);
}

/* Percent-encode a query value. */
static void put_query_value(struct buf *b, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			buf_append(b, p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			buf_append(b, e, 3);
		}
	}
}

/* ---- HTTP ---- */

/* The Status element right under the answer's top element (any command
 * may answer 142-144 there). */
static const unsigned status_tags[] = {
	WB_AS_STATUS, WB_FH_STATUS, WB_IO_STATUS, WB_PING_STATUS,
	WB_MV_STATUS, WB_CM_STATUS, WB_SET_STATUS, WB_SRCH_STATUS,
	WB_GIE_STATUS, WB_PROV_STATUS,
};

struct top_status {
	int depth;
	bool in, done;
	char v[8];
	size_t len;
};

static int ts_start(void *arg, unsigned tag, bool empty)
{
	struct top_status *t = arg;
	(void)empty;
	t->depth++;
	t->in = false;
	if (t->depth == 2)
		for (size_t i = 0; i < sizeof(status_tags) / sizeof(status_tags[0]); i++)
			t->in |= tag == status_tags[i];
	return 0;
}

static int ts_end(void *arg, unsigned tag)
{
	struct top_status *t = arg;
	(void)tag;
	if (t->in) {
		t->done = true;
		return -1;  /* enough */
	}
	t->depth--;
	return 0;
}

static int ts_text(void *arg, const void *p, size_t n, bool last)
{
	struct top_status *t = arg;
	(void)last;
	if (t->in && n < sizeof(t->v) - t->len) {
		memcpy(t->v + t->len, p, n);
		t->len += n;
	}
	return 0;
}

static bool answer_wants_provision(const struct buf *body)
{
	struct top_status t = { 0 };
	struct wbxml_handler h = { ts_start, ts_end, ts_text, &t };
	struct wbxml_dec d;
	wbxml_dec_init(&d, &h);
	/* the status comes first: the first 256 bytes are plenty */
	wbxml_feed(&d, body->data, body->len < 256 ? body->len : 256);
	return t.done && (!strcmp(t.v, "142") || !strcmp(t.v, "143") ||
			  !strcmp(t.v, "144"));
}

static enum be_status provision(struct be_session *s, struct be_result *r);

/* One POST of command cmd; no provisioning. */
static enum be_status post(struct be_session *s, const char *cmd,
			   const struct buf *req, bool once, long timeout_s,
			   bool (*cancelled)(void *arg), void *cancel_arg,
			   http_sink_fn sink, void *sink_arg,
			   struct http_response *resp, struct be_result *r)
{
	char ver[48], pol[EAS_KEY_MAX + 32];
	const char *headers[3];
	int nh = 0;
	snprintf(ver, sizeof(ver), "MS-ASProtocolVersion: %s", s->version);
	headers[nh++] = ver;
	if (s->policy_key && strcmp(cmd, "Provision")) {
		snprintf(pol, sizeof(pol), "X-MS-PolicyKey: %s", s->policy_key);
		headers[nh++] = pol;
	}
	headers[nh] = NULL;
	char *query = xasprintf("?Cmd=%s%s", cmd, s->query);
	struct http_request rq = {
		.body = req ? req->data : "",
		.body_len = req ? req->len : 0,
		.cap = EAS_ANSWER_MAX,
		.timeout_s = timeout_s ? timeout_s
			   : req && req->len > ((size_t)1 << 20) ? 0
							       : s->call_timeout_s,
		.stall_s = timeout_s ? timeout_s : s->stall_s,
		.stall_bps = timeout_s ? 1 : 0,
		.what = cmd,
		.query = query,
		.headers = headers,
		.once = once,
		.cancelled = cancelled,
		.cancel_arg = cancel_arg,
		.sink = sink,
		.sink_arg = sink_arg,
	};
	if (sink)  /* a streamed answer takes as long as it takes */
		rq.timeout_s = 0;
	enum be_status st = http_post(s->http, &rq, resp, r);
	free(query);
	return st;
}

/* Grade an answer's HTTP status and type; BE_OK for a 2xx WBXML (or empty)
 * answer. */
static enum be_status grade(struct be_session *s, const char *cmd,
			    const struct http_response *resp,
			    struct be_result *r)
{
	be_result_ok(r);
	if (resp->status == 451) {
		char loc[512] = "";
		http_header(s->http, "X-MS-Location", loc, sizeof(loc));
		be_result_set(r, BE_REFUSED,
			      "the server says this mailbox is served at another address%s%.300s (HTTP 451): use it as --url",
			      loc[0] ? ": " : "", loc);
		snprintf(r->code, sizeof(r->code), "HTTP 451");
		return r->status;
	}
	if (resp->status == 503 && resp->retry_after_ms) {
		be_result_set(r, BE_THROTTLED,
			      "server busy (HTTP 503), asked to wait %u s",
			      resp->retry_after_ms / 1000);
		r->retry_after_ms = resp->retry_after_ms;
		snprintf(r->code, sizeof(r->code), "HTTP 503");
		return r->status;
	}
	if (resp->status / 100 != 2) {
		http_grade(s->http, resp, r);
		if (resp->status / 100 == 3 || resp->status == 404) {
			/* http_grade names EWS; say it for ActiveSync */
			char msg[sizeof(r->msg)];
			snprintf(msg, sizeof(msg), "%s", r->msg);
			char *ews = strstr(msg, "the EWS URL");
			if (ews) {
				*ews = 0;
				be_result_set(r, r->status,
					      "%sthe ActiveSync URL (usually https://host/Microsoft-Server-ActiveSync)",
					      msg);
			}
		}
		return r->status;
	}
	if (resp->body.len && strncasecmp(resp->content_type, EAS_CONTENT_TYPE,
					  strlen(EAS_CONTENT_TYPE))) {
		be_result_set(r, BE_PROTOCOL,
			      "server at %s did not answer %s as ActiveSync (got %.60s)",
			      http_url(s->http), cmd,
			      resp->content_type[0] ? resp->content_type : "no type");
	}
	return r->status;
}

static enum be_status call(struct be_session *s, const char *cmd,
			   const struct buf *req, bool once, long timeout_s,
			   bool (*cancelled)(void *arg), void *arg,
			   struct buf *answer, struct be_result *r)
{
	struct http_response resp;
	buf_init(answer, 0);
	for (int attempt = 0;; attempt++) {
		if (post(s, cmd, req, once, timeout_s, cancelled, arg, NULL,
			 NULL, &resp, r) != BE_OK) {
			http_response_free(&resp);
			return r->status;
		}
		if (resp.cancelled) {
			http_response_free(&resp);
			be_result_ok(r);
			return BE_OK;
		}
		bool again = resp.status == 449 ||
			     (resp.status / 100 == 2 &&
			      answer_wants_provision(&resp.body));
		if (again && attempt == 0) {
			log_dbg(LC_HTTP, "%s: the server asks to provision", cmd);
			http_response_free(&resp);
			if (provision(s, r) != BE_OK)
				return r->status;
			continue;
		}
		if (again) {
			http_response_free(&resp);
			be_result_set(r, BE_AUTH,
				      "the server keeps asking to provision this device (policy refused?)");
			return r->status;
		}
		if (grade(s, cmd, &resp, r) == BE_OK) {
			*answer = resp.body;   /* moved */
			buf_init(&resp.body, 0);
		}
		http_response_free(&resp);
		return r->status;
	}
}

enum be_status eas_call(struct be_session *s, const char *cmd,
			const struct buf *req, bool once, struct buf *answer,
			struct be_result *r)
{
	return call(s, cmd, req, once, 0, NULL, NULL, answer, r);
}

enum be_status eas_call_long(struct be_session *s, const char *cmd,
			     const struct buf *req, long timeout_s,
			     bool (*cancelled)(void *arg), void *arg,
			     struct buf *answer, struct be_result *r)
{
	return call(s, cmd, req, false, timeout_s, cancelled, arg, answer, r);
}

/* ---- Provision ---- */

static enum be_status provision(struct be_session *s, struct be_result *r)
{
	struct buf req;
	struct http_response resp;
	char *key = NULL;

	free(s->policy_key);
	s->policy_key = NULL;
	s->provisioned = false;
	for (int round = 0; round < 2; round++) {
		buf_init(&req, 0);
		eas_req_provision(&req, key);
		/* the acknowledgement carries the temporary key */
		free(s->policy_key);
		s->policy_key = key;
		key = NULL;
		enum be_status st = post(s, "Provision", &req, false, 0, NULL,
					 NULL, NULL, NULL, &resp, r);
		buf_free(&req);
		if (st == BE_OK && grade(s, "Provision", &resp, r) == BE_OK)
			eas_parse_provision(resp.body.data, resp.body.len, &key, r);
		http_response_free(&resp);
		if (r->status != BE_OK) {
			free(s->policy_key);
			s->policy_key = NULL;
			return r->status;
		}
		if (!key)  /* no policy */
			break;
		if (round == 1)
			break;
	}
	free(s->policy_key);
	s->policy_key = key;
	s->provisioned = true;
	state_write(s, POLICY_FILE, key ? key : "none");
	log_dbg(LC_HTTP, "provisioned: %s", key ? "policy acknowledged"
					       : "the server has no policy");
	return BE_OK;
}

/* ---- open / close ---- */

static bool header_safe(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

static void eas_close(struct be_session *s)
{
	if (!s)
		return;
	http_close(s->http);
	free(s->query);
	free(s->state_dir);
	free(s->policy_key);
	free(s->watch_sig);
	free(s);
}

static struct be_session *eas_open(const struct be_config *cfg,
				   struct be_result *r)
{
	be_result_ok(r);
	if (!cfg->user || !*cfg->user || !header_safe(cfg->user)) {
		be_result_set(r, BE_REFUSED,
			      "invalid user name (empty or with control characters)");
		return NULL;
	}
	const char *headers[] = {
		"Content-Type: " EAS_CONTENT_TYPE,
		"User-Agent: exchangefs/" EXCHANGEFS_VERSION,
		NULL,
	};
	struct be_session *s = xcalloc(1, sizeof(*s));
	s->state_dir = xstrdup(cfg->state_dir);
	s->account = cfg->account;
	s->version = eas_versions[0];
	s->http = http_open_backend(cfg, headers, &s->call_timeout_s,
				    &s->stall_s, r);
	if (!s->http) {
		eas_close(s);
		return NULL;
	}
	load_device_id(s, cfg);
	struct buf q;
	buf_init(&q, 0);
	buf_puts(&q, "&User=");
	put_query_value(&q, cfg->user);
	buf_printf(&q, "&DeviceId=%s&DeviceType=%s", s->device_id, DEVICE_TYPE);
	s->query = q.data;

	/* OPTIONS: credentials, and the versions the server speaks */
	struct http_request rq = {
		.options = true,
		.cap = 1 << 20,
		.timeout_s = s->call_timeout_s,
		.stall_s = s->stall_s,
		.what = "OPTIONS",
	};
	struct http_response resp;
	char offered[256] = "";
	if (http_post(s->http, &rq, &resp, r) == BE_OK &&
	    grade(s, "OPTIONS", &resp, r) == BE_OK) {
		if (!http_header(s->http, "MS-ASProtocolVersions", offered,
				 sizeof(offered)))
			be_result_set(r, BE_PROTOCOL,
				      "server at %s does not speak ActiveSync (no MS-ASProtocolVersions in its OPTIONS answer); check the URL",
				      http_url(s->http));
		else if (!(s->version = eas_pick_version(offered)))
			be_result_set(r, BE_UNSUPPORTED,
				      "server offers ActiveSync versions %.100s; exchangefs needs 12.1 or later",
				      offered);
	}
	http_response_free(&resp);
	if (r->status != BE_OK) {
		eas_close(s);
		return NULL;
	}
	char *pk = state_read(s, POLICY_FILE);
	if (pk && *pk && strlen(pk) <= EAS_KEY_MAX && header_safe(pk)) {
		s->provisioned = true;
		if (strcmp(pk, "none"))
			s->policy_key = xstrdup(pk);
	}
	free(pk);
	if (!s->provisioned && provision(s, r) != BE_OK) {
		eas_close(s);
		return NULL;
	}
	log_dbg(LC_HTTP, "ActiveSync %s session to %s open (device %s)",
		s->version, http_url(s->http), s->device_id);
	return s;
}

const char *eas_session_version(const struct be_session *s)
{
	return s->version;
}

const char *eas_session_device(const struct be_session *s)
{
	return s->device_id;
}

struct be_account *eas_session_account(const struct be_session *s)
{
	return s->account;
}

const char *eas_session_watch_sig(const struct be_session *s)
{
	return s->watch_sig;
}

void eas_session_set_watch_sig(struct be_session *s, const char *sig)
{
	free(s->watch_sig);
	s->watch_sig = xstrdup(sig);
}

unsigned eas_session_heartbeat(const struct be_session *s)
{
	return s->heartbeat;
}

void eas_session_set_heartbeat(struct be_session *s, unsigned hb)
{
	s->heartbeat = hb;
}

unsigned eas_session_max_folders(const struct be_session *s)
{
	return s->max_folders;
}

void eas_session_set_max_folders(struct be_session *s, unsigned n)
{
	s->max_folders = n;
}

static const char *eas_root_id(struct be_session *s)
{
	(void)s;
	return "0";
}

/* ---- read operations ---- */

static bool key_ok(const char *key, struct be_result *r)
{
	if (key && (strlen(key) > EAS_KEY_MAX || !header_safe(key))) {
		be_result_set(r, BE_SYNC_INVALID, "sync state not usable");
		return false;
	}
	return true;
}

/* The well-known folders kept in the cache directory ("k id" lines, k an
 * enum be_special); false if there is no such file. */
static bool special_read(const struct be_session *s, char *ids[BE_SPECIAL_N])
{
	for (int k = 0; k < BE_SPECIAL_N; k++)
		ids[k] = NULL;
	char *text = eas_state_read_all(s, SPECIAL_FILE);
	if (!text)
		return false;
	for (char *l = text, *nl; *l; l = nl) {
		nl = l + strcspn(l, "\n");
		if (*nl)
			*nl++ = 0;
		int k = l[0] - '0';
		if (k >= 0 && k < BE_SPECIAL_N && l[1] == ' ' && l[2] && !ids[k])
			ids[k] = xstrdup(l + 2);
	}
	free(text);
	return true;
}

bool eas_server_has_outbox(const struct be_session *s)
{
	char *ids[BE_SPECIAL_N];
	bool known = special_read(s, ids);
	bool has = !known || ids[BE_OUTBOX];
	for (int k = 0; k < BE_SPECIAL_N; k++)
		free(ids[k]);
	return has;
}

/* Remember the well-known folders of a hierarchy answer for
 * special_folders(), which must not start a hierarchy sync of its own
 * (a FolderSync from 0 resets the device's sync states on Exchange).  An
 * incremental answer names only some: the others stay as they were. */
static void remember_special(struct be_session *s, const struct buf *ans)
{
	char *ids[BE_SPECIAL_N], *old[BE_SPECIAL_N];
	struct be_result r;
	bool any = false;
	if (eas_parse_special(ans->data, ans->len, ids, &r) != BE_OK)
		return;
	for (int k = 0; k < BE_SPECIAL_N; k++)
		any |= ids[k] != NULL;
	if (any) {
		struct buf b;
		buf_init(&b, 0);
		special_read(s, old);
		for (int k = 0; k < BE_SPECIAL_N; k++) {
			const char *v = ids[k] ? ids[k] : old[k];
			if (v)
				buf_printf(&b, "%d %s\n", k, v);
			free(old[k]);
		}
		state_write(s, SPECIAL_FILE, b.data ? b.data : "");
		buf_free(&b);
	}
	for (int k = 0; k < BE_SPECIAL_N; k++)
		free(ids[k]);
}

/* A command that only reads (FolderSync, a Sync without changes; the
 * server accepts the same SyncKey again) that died on its connection before
 * any answer - a kept-alive connection the server closed as the request
 * went out: SOGo drops one now and then, "Connection reset by peer" at
 * once - is sent once more on a new connection. */
static enum be_status read_call(struct be_session *s, const char *cmd,
				const struct buf *req, struct buf *answer,
				struct be_result *r)
{
	if (eas_call(s, cmd, req, false, answer, r) != BE_NETWORK ||
	    (strcmp(r->code, "curl 52") && strcmp(r->code, "curl 55") &&
	     strcmp(r->code, "curl 56")))
		return r->status;
	log_dbg(LC_HTTP, "%s: %s; once more on a new connection", cmd, r->msg);
	buf_free(answer);
	return eas_call(s, cmd, req, true, answer, r);
}

static enum be_status eas_sync_folders(struct be_session *s, const char *state,
				       struct be_folder_batch *out,
				       struct be_result *r)
{
	struct buf req, ans;
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (!key_ok(state, r))
		return r->status;
	eas_sync_lock(s->account);
	char *key = state && *state && strcmp(state, "0")
		? eas_key_for_read(s->account, s->device_id, "", state) : NULL;
	buf_init(&req, 0);
	eas_req_folder_sync(&req, key);
	if (read_call(s, "FolderSync", &req, &ans, r) == BE_OK &&
	    eas_parse_folder_sync(ans.data, ans.len, out, r) == BE_OK) {
		eas_key_note(s->account, s->device_id, "", NULL, out->new_state, false);
		eas_folders_note(s, out);
		char *ids[BE_SPECIAL_N];
		struct be_result r2;
		remember_special(s, &ans);
		/* a full list without an Outbox: add ours */
		if ((!state || !*state || !strcmp(state, "0")) &&
		    eas_parse_special(ans.data, ans.len, ids, &r2) == BE_OK) {
			if (!ids[BE_OUTBOX]) {
				struct be_folder *f = be_folder_batch_add(out);
				f->change = BE_CREATE;
				f->id = xstrdup(EAS_VIRTUAL_OUTBOX);
				f->parent_id = xstrdup("0");
				f->name = xstrdup("Outbox");
				f->folder_class = xstrdup("IPF.Note");
			}
			for (int k = 0; k < BE_SPECIAL_N; k++)
				free(ids[k]);
		}
	} else if (r->status == BE_SYNC_INVALID) {
		eas_key_note(s->account, s->device_id, "", NULL, NULL, false);
	}
	eas_sync_unlock(s->account);
	free(key);
	buf_free(&req);
	buf_free(&ans);
	return r->status;
}

static enum be_status eas_sync_items(struct be_session *s,
				     const char *folder_id, const char *state,
				     unsigned max, struct be_item_batch *out,
				     struct be_result *r)
{
	struct buf req, ans;
	char *key = xstrdup(state && *state ? state : "0");

	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (!folder_id || !*folder_id || strlen(folder_id) > EAS_ID_MAX) {
		be_result_set(r, BE_REFUSED, "invalid folder id");
		free(key);
		return r->status;
	}
	if (!key_ok(key, r)) {
		free(key);
		return r->status;
	}
	if (!strcmp(folder_id, EAS_VIRTUAL_OUTBOX)) {
		out->new_state = key;  /* never holds anything */
		return BE_OK;
	}
	eas_sync_lock(s->account);
	if (strcmp(key, "0")) {
		char *k = eas_key_for_read(s->account, s->device_id, folder_id, key);
		free(key);
		key = k;
	}
	for (int round = 0; round < 2; round++) {
		bool start = !strcmp(key, "0");
		buf_init(&req, 0);
		eas_req_sync(&req, folder_id, key, max);
		enum be_status st = read_call(s, "Sync", &req, &ans, r);
		buf_free(&req);
		if (st == BE_OK && ans.len == 0) {
			/* 12.1+: no changes since key */
			out->new_state = xstrdup(key);
		} else if (st == BE_OK) {
			eas_parse_sync(ans.data, ans.len, folder_id, out, r);
		}
		buf_free(&ans);
		if (r->status != BE_OK || !start)
			break;
		/* the first Sync (key 0) only gives a key: ask for items */
		if (out->n) {
			/* a server that sent items at once: keep them */
			break;
		}
		free(key);
		key = out->new_state;
		out->new_state = NULL;
		be_item_batch_free(out);
		if (!key || !strcmp(key, "0")) {
			be_result_set(r, BE_PROTOCOL,
				      "Sync answer: no usable SyncKey for a new sync");
			break;
		}
	}
	if (r->status == BE_OK)
		eas_key_note(s->account, s->device_id, folder_id, NULL, out->new_state,
			     false);
	else if (r->status == BE_SYNC_INVALID)
		eas_key_note(s->account, s->device_id, folder_id, NULL, NULL, false);
	eas_sync_unlock(s->account);
	if (r->status != BE_OK)
		be_item_batch_free(out);
	free(key);
	return r->status;
}

/* Several collections in one Sync (the core sends folders that have a
 * state; a first sync goes through eas_sync_items).  Each collection gets
 * a share of the window so the answer stays about one page. */
static enum be_status eas_sync_items_many(struct be_session *s,
					  struct be_sync_one *v, size_t n,
					  unsigned max, struct be_result *r)
{
	struct be_sync_one *w = xcalloc(n ? n : 1, sizeof(*w));
	const char **colls = xcalloc(n ? n : 1, sizeof(*colls));
	const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
	size_t *from = xcalloc(n ? n : 1, sizeof(*from)), m = 0;
	struct buf req, ans;

	be_result_ok(r);
	for (size_t k = 0; k < n; k++) {
		memset(&v[k].out, 0, sizeof(v[k].out));
		be_result_ok(&v[k].r);
		const char *id = v[k].folder_id, *st = v[k].state;
		if (!id || !*id || strlen(id) > EAS_ID_MAX) {
			be_result_set(&v[k].r, BE_REFUSED, "invalid folder id");
		} else if (!st || !*st || !strcmp(st, "0")) {
			be_result_set(&v[k].r, BE_REFUSED,
				      "a first sync goes alone");
		} else if (key_ok(st, &v[k].r) &&
			   !strcmp(id, EAS_VIRTUAL_OUTBOX)) {
			v[k].out.new_state = xstrdup(st);
		} else if (v[k].r.status == BE_OK) {
			from[m] = k;
			colls[m] = id;
			m++;
		}
	}
	if (!m)
		goto out;
	eas_sync_lock(s->account);
	for (size_t j = 0; j < m; j++) {
		w[j].folder_id = colls[j];
		w[j].state = keys[j] = eas_key_for_read(s->account, s->device_id, colls[j],
							v[from[j]].state);
	}
	unsigned window = max / (unsigned)m;
	if (window < 32)
		window = 32;
	if (window > max)
		window = max;
	buf_init(&req, 0);
	eas_req_sync_many(&req, colls, keys, m, window);
	if (read_call(s, "Sync", &req, &ans, r) == BE_OK &&
	    eas_parse_sync_many(ans.data, ans.len, w, m, r) == BE_OK) {
		for (size_t j = 0; j < m; j++) {
			struct be_sync_one *o = &v[from[j]];
			o->out = w[j].out;
			o->r = w[j].r;
			if (o->r.status == BE_OK)
				eas_key_note(s->account, s->device_id, colls[j], NULL,
					     o->out.new_state, false);
			else if (o->r.status == BE_SYNC_INVALID)
				eas_key_note(s->account, s->device_id, colls[j], NULL,
					     NULL, false);
		}
	}
	eas_sync_unlock(s->account);
	buf_free(&req);
	buf_free(&ans);
	for (size_t j = 0; j < m; j++)
		free((char *)keys[j]);
out:
	if (r->status != BE_OK)
		for (size_t k = 0; k < n; k++)
			be_item_batch_free(&v[k].out);
	free(w);
	free(colls);
	free(keys);
	free(from);
	return r->status;
}

/* Streaming ItemOperations: the body goes into the fetch parser. */
struct fetch_io {
	struct eas_fetch *f;
	bool checked, not_wbxml;
};

static int fetch_sink(void *arg, const struct http_response *resp,
		      const void *data, size_t len)
{
	struct fetch_io *io = arg;
	if (!io->checked) {
		io->checked = true;
		if (strncasecmp(resp->content_type, EAS_CONTENT_TYPE,
				strlen(EAS_CONTENT_TYPE))) {
			io->not_wbxml = true;
			return -1;
		}
	}
	return eas_fetch_feed(io->f, data, len);
}

/* The fetch parser numbers the items of one request from 0; the core's
 * index of item j is map[j]. */
struct reindex {
	const size_t *map;
	be_sink_fn sink;
	be_done_fn done;
	void *arg;
};

static int ri_sink(void *arg, size_t index, const void *data, size_t len)
{
	struct reindex *x = arg;
	return x->sink(x->arg, x->map[index], data, len);
}

static void ri_done(void *arg, size_t index, enum be_status st,
		    const char *msg)
{
	struct reindex *x = arg;
	x->done(x->arg, x->map[index], st, msg);
}

/* One ItemOperations with a Fetch for each of the k items ids[map[j]]
 * (valid ids); done() is called for every one of them whatever happens,
 * except when *split says the server failed the request as a whole (HTTP
 * 500/501, or a top-level Status) with k > 1: then the items with left[j]
 * have had no done() and are the caller's to ask for one by one. */
static enum be_status fetch_some(struct be_session *s, const char *const *ids,
				 const size_t *map, size_t k, be_sink_fn sink,
				 be_done_fn done, void *arg, bool *left,
				 bool *split, struct be_result *r)
{
	char *bufs[EAS_FETCH_BATCH];
	const char *coll[EAS_FETCH_BATCH], *sid[EAS_FETCH_BATCH];
	const char *sub[EAS_FETCH_BATCH];
	struct reindex x = { map, sink, done, arg };
	struct fetch_io io = { 0 };
	struct be_result why;
	be_result_ok(r);
	*split = false;
	for (size_t j = 0; j < k; j++) {
		sub[j] = ids[map[j]];
		eas_item_split(sub[j], &bufs[j], &coll[j], &sid[j]);
	}
	io.f = eas_fetch_new(sub, k, ri_sink, ri_done, &x);
	struct buf req;
	buf_init(&req, 0);
	eas_req_fetch_n(&req, coll, sid, k);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct http_response resp;
		enum be_status st = post(s, "ItemOperations", &req, false, 0,
					 NULL, NULL, fetch_sink, &io, &resp, r);
		if (st == BE_OK && resp.status == 449 && attempt == 0) {
			http_response_free(&resp);
			if (provision(s, r) != BE_OK)
				break;
			continue;
		}
		if (io.not_wbxml || (st == BE_OK && resp.status / 100 != 2)) {
			grade(s, "ItemOperations", &resp, r);
			if ((resp.status == 501 || resp.status == 500) && k > 1) {
				/* SOGo fails so when one of them is gone */
				*split = true;
				log_dbg(LC_HTTP, "ItemOperations of %zu messages failed as a whole (HTTP %ld): asking for them one by one",
					k, resp.status);
			} else if (resp.status == 501 || resp.status == 500) {
				/* SOGo answers a lone Fetch of a message gone
				 * so too, but so does any server's hiccup:
				 * not proof that it is gone (the core asks
				 * the folder's Sync, which says so) */
				be_result_set(r, BE_NETWORK,
					      "server failed to fetch the message (HTTP %ld)",
					      resp.status);
			}
			if (r->status == BE_OK)
				be_result_set(r, BE_PROTOCOL,
					      "server did not answer ItemOperations as ActiveSync");
		} else if (st == BE_OK && attempt == 0 &&
			   eas_fetch_wants_provision(io.f)) {
			/* status 142-144 in the answer: nothing was
			 * delivered; provision and ask again */
			http_response_free(&resp);
			eas_fetch_free(io.f);
			io = (struct fetch_io){ .f = eas_fetch_new(sub, k, ri_sink,
								    ri_done, &x) };
			if (provision(s, r) != BE_OK)
				break;
			continue;
		} else if (st == BE_OK && k > 1 &&
			   eas_fetch_failed_whole(io.f, &why)) {
			*split = true;
			log_dbg(LC_HTTP, "ItemOperations of %zu messages failed as a whole (%s): asking for the rest one by one",
				k, why.msg);
		} else if (st == BE_OK || (st == BE_REFUSED && io.checked)) {
			struct be_result net = *r;
			eas_fetch_finish(io.f, r);
			if (st != BE_OK && r->status == BE_OK)
				*r = net;
		}
		http_response_free(&resp);
		break;
	}
	buf_free(&req);
	for (size_t j = 0; j < k; j++) {
		free(bufs[j]);
		left[j] = *split && !eas_fetch_reported(io.f, j);
	}
	if (*split)
		be_result_ok(r);
	else if (r->status != BE_OK)
		eas_fetch_fail_rest(io.f, r->status, r->msg);
	eas_fetch_free(io.f);
	return r->status;
}

/* A grade after which the next request would fare no better. */
static bool fetch_fatal(enum be_status st)
{
	return st == BE_NETWORK || st == BE_AUTH || st == BE_TLS ||
	       st == BE_THROTTLED || st == BE_REFUSED;
}

/* Items ids[map[0..k-1]] in one request; if the server fails it as a
 * whole, one request per item, so the item it fails on is found and the
 * others are delivered.  Items after a fatal grade get done() with it. */
static enum be_status fetch_items(struct be_session *s, const char *const *ids,
				  const size_t *map, size_t k, be_sink_fn sink,
				  be_done_fn done, void *arg, struct be_result *r)
{
	bool left[EAS_FETCH_BATCH], split;
	if (fetch_some(s, ids, map, k, sink, done, arg, left, &split, r) !=
	    BE_OK || !split)
		return r->status;
	for (size_t j = 0; j < k; j++) {
		if (!left[j])
			continue;
		bool one_left;
		enum be_status st1 = fetch_some(s, ids, map + j, 1, sink, done,
						arg, &one_left, &split, r);
		/* HTTP 500/501 for this one alone (done() said so): maybe
		 * it is gone, the others may still come */
		bool its_own = st1 == BE_NETWORK &&
			       (!strcmp(r->code, "HTTP 500") ||
				!strcmp(r->code, "HTTP 501"));
		if (!fetch_fatal(st1) || its_own) {
			be_result_ok(r);
			continue;
		}
		for (size_t l = j + 1; l < k; l++)
			if (left[l])
				done(arg, map[l], r->status, r->msg);
		return r->status;
	}
	return BE_OK;
}

/* Length of the CollectionId of item id "<collection>\t<server id>". */
static size_t coll_len(const char *id)
{
	return strcspn(id, "\t");
}

/* Up to EAS_FETCH_BATCH items of one collection per ItemOperations (the
 * core sizes its batches by the items' estimated sizes; this caps the
 * count), one Fetch each, the answer streamed: one round trip for the
 * batch instead of one per message.  One collection per request: SOGo
 * answers every Fetch of a request from the first Fetch's collection
 * (another folder's message of the same ServerId). */
static enum be_status eas_fetch_mime(struct be_session *s,
				     const char *const *ids, size_t n,
				     be_sink_fn sink, be_done_fn done,
				     void *arg, struct be_result *r)
{
	bool *handled = xcalloc(n ? n : 1, sizeof(bool));
	be_result_ok(r);
	for (size_t i = 0; i < n; i++) {
		char *buf = NULL;
		const char *coll, *sid;
		bool ok = eas_item_split(ids[i], &buf, &coll, &sid);
		free(buf);
		if (!ok) {
			handled[i] = true;
			done(arg, i, BE_ITEM_GONE, "invalid item id");
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (handled[i])
			continue;
		/* item i and the next ones of its collection */
		size_t map[EAS_FETCH_BATCH], k = 0, cl = coll_len(ids[i]);
		for (size_t j = i; j < n && k < EAS_FETCH_BATCH; j++) {
			if (handled[j] || coll_len(ids[j]) != cl ||
			    strncmp(ids[j], ids[i], cl))
				continue;
			handled[j] = true;
			map[k++] = j;
		}
		if (fetch_fatal(fetch_items(s, ids, map, k, sink, done, arg,
					    r))) {
			for (size_t l = i + 1; l < n; l++)
				if (!handled[l])
					done(arg, l, r->status, r->msg);
			free(handled);
			return r->status;
		}
	}
	free(handled);
	be_result_ok(r);
	return BE_OK;
}

static enum be_status eas_special_folders(struct be_session *s,
					  char *ids[BE_SPECIAL_N],
					  struct be_result *r)
{
	be_result_ok(r);
	for (int k = 0; k < BE_SPECIAL_N; k++)
		ids[k] = NULL;
	if (special_read(s, ids)) {
		if (!ids[BE_OUTBOX])
			ids[BE_OUTBOX] = xstrdup(EAS_VIRTUAL_OUTBOX);
		return BE_OK;
	}
	/* no hierarchy synced yet: a FolderSync from 0 is what the first
	 * hierarchy sync does anyway */
	struct buf req, ans;
	buf_init(&req, 0);
	eas_req_folder_sync(&req, NULL);
	if (read_call(s, "FolderSync", &req, &ans, r) == BE_OK &&
	    eas_parse_special(ans.data, ans.len, ids, r) == BE_OK &&
	    !ids[BE_OUTBOX])
		ids[BE_OUTBOX] = xstrdup(EAS_VIRTUAL_OUTBOX);
	buf_free(&req);
	buf_free(&ans);
	return r->status;
}

const struct backend_ops eas_backend = {
	.name = "eas",
	.open = eas_open,
	.close = eas_close,
	.account_new = eas_account_new,
	.account_free = eas_account_free,
	.caps = eas_caps,
	.root_id = eas_root_id,
	.sync_folders = eas_sync_folders,
	.sync_items = eas_sync_items,
	.sync_items_many = eas_sync_items_many,
	.fetch_mime = eas_fetch_mime,
	.special_folders = eas_special_folders,
	.create_item = eas_create_item,
	.replace_mime = eas_replace_mime,
	.update_props = eas_update_props,
	.delete_item = eas_delete_item,
	.move_item = eas_move_item,
	.create_folder = eas_create_folder,
	.rename_folder = eas_rename_folder,
	.move_folder = eas_move_folder,
	.delete_folder = eas_delete_folder,
	.watch = eas_watch,
	.resolve_names = eas_resolve_names,
};
