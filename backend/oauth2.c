/*
 * oauth2.c - OAuth2 device-code and PKCE sign-in, the token file, and the
 * shared, refreshing token source (see oauth2.h).  Requests to the token
 * endpoint go through backend/http.c with secret bodies (never logged);
 * answers are read with backend/json.c.
 */
#include "oauth2.h"
#include "http.h"
#include "json.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#define TOKEN_ANSWER_MAX ((size_t)256 << 10)
#define TOKEN_FILE_MAX ((size_t)256 << 10)

/* What the token file holds. */
struct tokens {
	char *endpoint;     /* token endpoint URL */
	char *client_id;
	char *scope;
	char *access;       /* secret */
	char *refresh;      /* secret, may be NULL */
	int64_t expires_at; /* Unix seconds */
	int64_t obtained_at; /* when the access token came (0 = unknown) */
};

static void wipe(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

static void tokens_free(struct tokens *t)
{
	free(t->endpoint);
	free(t->client_id);
	free(t->scope);
	wipe(&t->access);
	wipe(&t->refresh);
	memset(t, 0, sizeof(*t));
}

static const char *or(const char *v, const char *dflt)
{
	return v && *v ? v : dflt;
}

/* --- the token file --------------------------------------------------- */

static char *config_dir(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	if (xdg && *xdg == '/')
		return xasprintf("%s/exchangefs", xdg);
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : "/tmp";
	}
	return xasprintf("%s/.config/exchangefs", home);
}

char *oauth2_token_path(const char *address)
{
	char *dir = config_dir();
	char *name = xstrdup(address);
	for (char *p = name; *p; p++)
		if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '_';
	char *path = xasprintf("%s/tokens/%s.json", dir, name);
	free(dir);
	free(name);
	return path;
}

bool oauth2_have_tokens(const char *address)
{
	char *path = oauth2_token_path(address);
	bool have = access(path, R_OK) == 0;
	free(path);
	return have;
}

/* mkdir -p with mode 0700 for the parts we make. */
static int make_dirs(const char *path, struct be_result *r)
{
	char *copy = xstrdup(path);
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(copy, 0700) && errno != EEXIST) {
			be_result_set(r, BE_REFUSED, "cannot create %s: %s", copy,
				      strerror(errno));
			free(copy);
			return -1;
		}
		*p = '/';
	}
	free(copy);
	return 0;
}

static int tokens_save(const char *path, const struct tokens *t,
		       struct be_result *r)
{
	struct buf b;
	int rc = -1;
	if (make_dirs(path, r))
		return -1;
	buf_init(&b, 0);
	buf_puts(&b, "{\"token_endpoint\": ");
	json_put_string(&b, t->endpoint);
	buf_puts(&b, ",\n \"client_id\": ");
	json_put_string(&b, t->client_id);
	buf_puts(&b, ",\n \"scope\": ");
	json_put_string(&b, t->scope);
	buf_puts(&b, ",\n \"access_token\": ");
	json_put_string(&b, t->access);
	buf_printf(&b, ",\n \"expires_at\": %lld,\n \"obtained_at\": %lld",
		   (long long)t->expires_at, (long long)t->obtained_at);
	if (t->refresh) {
		buf_puts(&b, ",\n \"refresh_token\": ");
		json_put_string(&b, t->refresh);
	}
	buf_puts(&b, "}\n");
	char *tmp = xasprintf("%s.tmp%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fchmod(fd, 0600) || write_all(fd, b.data, b.len) ||
	    fsync(fd)) {
		be_result_set(r, BE_REFUSED, "cannot write the token file %s: %s",
			      path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path)) {
		be_result_set(r, BE_REFUSED, "cannot write the token file %s: %s",
			      path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	free(tmp);
	explicit_bzero(b.data, b.len);
	buf_free(&b);
	return rc;
}

static int tokens_load(const char *path, struct tokens *t, time_t *mtime,
		       struct be_result *r, const char *address)
{
	struct json_obj o;
	char err[200];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	memset(t, 0, sizeof(*t));
	if (fd < 0) {
		be_result_set(r, BE_AUTH,
			      "not signed in: run exchangefs login %s", address);
		return -1;
	}
	if (fstat(fd, &st) || st.st_size > (off_t)TOKEN_FILE_MAX) {
		close(fd);
		be_result_set(r, BE_REFUSED, "token file %s is too large", path);
		return -1;
	}
	if (st.st_mode & 077)
		log_warn("token file %s can be read by other users (chmod 600 it)",
			 path);
	char *data = xmalloc((size_t)st.st_size + 1);
	ssize_t n = read(fd, data, (size_t)st.st_size);
	close(fd);
	*mtime = st.st_mtime;
	int rc = -1;
	if (n != st.st_size ||
	    json_parse_object(data, (size_t)n, &o, err, sizeof(err))) {
		be_result_set(r, BE_AUTH,
			      "token file %s is damaged: run exchangefs login %s",
			      path, address);
		goto out;
	}
	const char *ep = json_str(&o, "token_endpoint"),
		   *id = json_str(&o, "client_id"),
		   *acc = json_str(&o, "access_token");
	if (!ep || !id || !acc || json_int(&o, "expires_at", &t->expires_at)) {
		be_result_set(r, BE_AUTH,
			      "token file %s is incomplete: run exchangefs login %s",
			      path, address);
		goto out_json;
	}
	json_int(&o, "obtained_at", &t->obtained_at);
	t->endpoint = xstrdup(ep);
	t->client_id = xstrdup(id);
	t->scope = xstrdup(or(json_str(&o, "scope"), OAUTH2_DEFAULT_SCOPE));
	t->access = xstrdup(acc);
	t->refresh = xstrdup(json_str(&o, "refresh_token"));
	rc = 0;
out_json:
	for (size_t i = 0; i < o.n; i++)
		explicit_bzero(o.v[i].value, strlen(o.v[i].value));
	json_free(&o);
out:
	explicit_bzero(data, (size_t)st.st_size);
	free(data);
	return rc;
}

/* --- token endpoint requests ------------------------------------------ */

static void form_put(struct buf *b, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	if (b->len)
		buf_puts(b, "&");
	buf_puts(b, name);
	buf_puts(b, "=");
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			buf_append(b, p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			buf_append(b, e, 3);
		}
	}
}

/* An OAuth2 answer (success or error) of the server. */
struct answer {
	long status;
	struct json_obj json;
	const char *error;       /* "error" member, or NULL */
};

static void answer_free(struct answer *a)
{
	for (size_t i = 0; i < a->json.n; i++)
		explicit_bzero(a->json.v[i].value, strlen(a->json.v[i].value));
	json_free(&a->json);
}

/* POST the form to url; BE_OK with a JSON answer (any status) in a. */
static enum be_status oauth_post(const char *url, const struct buf *form,
				 const struct oauth2_config *cfg,
				 const char *what, struct answer *a,
				 struct be_result *r)
{
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded",
		"Accept: application/json",
		"User-Agent: exchangefs/" EXCHANGEFS_VERSION,
		NULL,
	};
	struct http_config hc = {
		.url = url, .ca_file = cfg->ca_file, .insecure = cfg->insecure,
		.connect_timeout_s = 15, .headers = headers,
		.verbose = cfg->verbose,
	};
	struct http_request rq = {
		.body = form->data, .body_len = form->len,
		.cap = TOKEN_ANSWER_MAX,
		.timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 60,
		.what = what, .secret = true,
	};
	struct http_response resp;
	char err[200];

	memset(a, 0, sizeof(*a));
	struct http_session *h = http_open(&hc, r);
	if (!h)
		return r->status;
	if (http_post(h, &rq, &resp, r) != BE_OK)
		goto out;
	a->status = resp.status;
	if (json_parse_object(resp.body.data ? resp.body.data : "",
			      resp.body.len, &a->json, err, sizeof(err))) {
		if (http_grade(h, &resp, r) == BE_OK)
			be_result_set(r, BE_PROTOCOL,
				      "sign-in server at %s did not answer OAuth2 JSON (%s)",
				      url, err);
		goto out;
	}
	a->error = json_str(&a->json, "error");
	if (resp.status / 100 != 2 && !a->error && resp.status / 100 != 4)
		http_grade(h, &resp, r);
out:
	if (resp.body.data)
		explicit_bzero(resp.body.data, resp.body.len);
	http_response_free(&resp);
	http_close(h);
	return r->status;
}

/* Take a successful token answer into t (access, expiry, refresh). */
static int take_tokens(struct tokens *t, const struct answer *a,
		       const char *url, struct be_result *r)
{
	const char *acc = json_str(&a->json, "access_token");
	const char *ref = json_str(&a->json, "refresh_token");
	int64_t ttl = 3600;
	if (!acc || !*acc) {
		be_result_set(r, BE_PROTOCOL,
			      "sign-in server at %s answered without an access token",
			      url);
		return -1;
	}
	json_int(&a->json, "expires_in", &ttl);
	if (ttl < 0)
		ttl = 0;
	wipe(&t->access);
	t->access = xstrdup(acc);
	t->obtained_at = (int64_t)time(NULL);
	t->expires_at = t->obtained_at + ttl;
	if (ref && *ref) {   /* servers may or may not rotate it */
		wipe(&t->refresh);
		t->refresh = xstrdup(ref);
	}
	return 0;
}

/* An OAuth2 error answer as one line: the error code and the first line of
 * its description (descriptions carry no secrets). */
static void oauth_error(struct be_result *r, enum be_status st,
			const char *prefix, const struct answer *a)
{
	const char *d = json_str(&a->json, "error_description");
	be_result_set(r, st, "%s: %s%s%.*s", prefix,
		      a->error ? a->error : "error",
		      d ? ": " : "", d ? (int)strcspn(d, "\r\n") : 0,
		      d ? d : "");
	snprintf(r->code, sizeof(r->code), "%s", a->error ? a->error : "");
}

static char *endpoint(const struct oauth2_config *cfg, const char *what)
{
	const char *auth = or(cfg->authority, OAUTH2_DEFAULT_AUTHORITY);
	size_t n = strlen(auth);
	while (n && auth[n - 1] == '/')
		n--;
	return xasprintf("%.*s/%s/oauth2/v2.0/%s", (int)n, auth,
			 or(cfg->tenant, OAUTH2_DEFAULT_TENANT), what);
}

/* --- device code ------------------------------------------------------ */

enum be_status oauth2_login_device(const char *address,
				   const struct oauth2_config *cfg, FILE *out,
				   struct be_result *r)
{
	struct tokens t = {
		.endpoint = endpoint(cfg, "token"),
		.client_id = xstrdup(or(cfg->client_id, OAUTH2_DEFAULT_CLIENT_ID)),
		.scope = xstrdup(or(cfg->scope, OAUTH2_DEFAULT_SCOPE)),
	};
	char *dc_url = endpoint(cfg, "devicecode");
	char *device_code = NULL, *path = NULL;
	struct answer a;
	struct buf form;

	be_result_ok(r);
	buf_init(&form, 0);
	form_put(&form, "client_id", t.client_id);
	form_put(&form, "scope", t.scope);
	if (oauth_post(dc_url, &form, cfg, "device code", &a, r) != BE_OK)
		goto out;
	const char *uri = json_str(&a.json, "verification_uri");
	if (!uri)   /* the older v1 name */
		uri = json_str(&a.json, "verification_url");
	const char *code = json_str(&a.json, "user_code");
	const char *dc = json_str(&a.json, "device_code");
	int64_t interval = 5, expires = 900;
	if (a.error || a.status / 100 != 2) {
		oauth_error(r, BE_AUTH, "the sign-in server refused to start", &a);
		answer_free(&a);
		goto out;
	}
	if (!uri || !code || !dc) {
		be_result_set(r, BE_PROTOCOL,
			      "sign-in server at %s answered without a device code",
			      dc_url);
		answer_free(&a);
		goto out;
	}
	json_int(&a.json, "interval", &interval);
	json_int(&a.json, "expires_in", &expires);
	if (interval < 1 || interval > 60)
		interval = 5;
	if (expires < 1 || expires > 3600)
		expires = 900;
	fprintf(out, "To sign in as %s, open %s in a browser and enter the code %s\n"
		"(waiting up to %lld minutes)\n",
		address, uri, code, (long long)(expires + 59) / 60);
	fflush(out);
	device_code = xstrdup(dc);
	answer_free(&a);

	int64_t deadline = now_ms() + expires * 1000;
	for (;;) {
		sleep_ms(interval * 1000);
		if (now_ms() > deadline) {
			be_result_set(r, BE_AUTH,
				      "the sign-in code expired before it was used: run exchangefs login again");
			goto out;
		}
		buf_reset(&form);
		form_put(&form, "grant_type",
			 "urn:ietf:params:oauth:grant-type:device_code");
		form_put(&form, "client_id", t.client_id);
		form_put(&form, "device_code", device_code);
		if (oauth_post(t.endpoint, &form, cfg, "device token", &a, r) !=
		    BE_OK)
			goto out;
		if (a.error && !strcmp(a.error, "authorization_pending")) {
			answer_free(&a);
			continue;
		}
		if (a.error && !strcmp(a.error, "slow_down")) {
			interval += 5;
			answer_free(&a);
			continue;
		}
		if (a.error || a.status / 100 != 2) {
			oauth_error(r, BE_AUTH, "sign-in failed", &a);
			answer_free(&a);
			goto out;
		}
		int rc = take_tokens(&t, &a, t.endpoint, r);
		answer_free(&a);
		if (rc)
			goto out;
		break;
	}
	path = oauth2_token_path(address);
	if (!tokens_save(path, &t, r))
		fprintf(out, "Signed in as %s; tokens stored in %s\n", address,
			path);
out:
	if (device_code)
		wipe(&device_code);
	explicit_bzero(form.data, form.len);
	buf_free(&form);
	free(dc_url);
	free(path);
	tokens_free(&t);
	return r->status;
}

/* --- authorization code with PKCE on a loopback redirect -------------- */

static void b64url(struct buf *b, const unsigned char *p, size_t n)
{
	static const char al[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		char c[4] = { al[v >> 18 & 63], al[v >> 12 & 63], al[v >> 6 & 63],
			      al[v & 63] };
		buf_append(b, c, n - i >= 3 ? 4 : n - i + 1);
	}
}

static void random_b64url(struct buf *b, size_t bytes)
{
	unsigned char r[64];
	if (bytes > sizeof(r))
		bytes = sizeof(r);
	if (getrandom(r, bytes, 0) != (ssize_t)bytes) {
		fprintf(stderr, "exchangefs: no random numbers (getrandom)\n");
		abort();
	}
	b64url(b, r, bytes);
}

/* The value of name in a query string, percent-decoded (owned) or NULL. */
static char *query_value(const char *q, const char *name)
{
	size_t nl = strlen(name);
	while (q && *q) {
		size_t len = strcspn(q, "& ");
		if (len > nl && !strncmp(q, name, nl) && q[nl] == '=') {
			struct buf v;
			buf_init(&v, 0);
			for (const char *p = q + nl + 1; p < q + len; p++) {
				if (*p == '%' && p + 2 < q + len) {
					char hx[3] = { p[1], p[2], 0 };
					char ch = (char)strtol(hx, NULL, 16);
					if (ch)
						buf_append(&v, &ch, 1);
					p += 2;
				} else {
					buf_append(&v, *p == '+' ? " " : p, 1);
				}
			}
			if (!v.data)
				buf_puts(&v, "");
			return v.data;
		}
		if (q[len] != '&')
			break;
		q += len + 1;
	}
	return NULL;
}

/* Wait (up to timeout_ms in all) for the browser's redirect on the
 * listener: the first GET whose query carries a state; other requests
 * (a favicon, an empty speculative connection) get a 404 and are passed
 * over.  The query into *query (owned). */
static int take_redirect(int lfd, int timeout_ms, char **query,
			 struct be_result *r)
{
	static const char page[] =
		"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
		"Connection: close\r\n\r\n<html><body><p>exchangefs: sign-in "
		"finished; you can close this window.</p></body></html>\n";
	static const char not_found[] =
		"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
		"Connection: close\r\n\r\n";
	int64_t end = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		char req[8192];
		size_t got = 0;
		int64_t left = end - now_ms();
		int fd;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0 ||
		    (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			be_result_set(r, BE_AUTH,
				      "no answer from the browser within %d minutes",
				      timeout_ms / 60000);
			return -1;
		}
		struct timeval tv = { .tv_sec = 10 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while (got < sizeof(req) - 1 && !memchr(req, '\n', got)) {
			ssize_t n = read(fd, req + got, sizeof(req) - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		req[got] = 0;
		char *q = strchr(req, '?');
		if (q)
			q[strcspn(q, " \r\n")] = 0;
		bool ours = !strncmp(req, "GET ", 4) && q && strstr(q, "state=");
		(void)!write(fd, ours ? page : not_found,
			     ours ? sizeof(page) - 1 : sizeof(not_found) - 1);
		close(fd);
		if (ours) {
			*query = xstrdup(q + 1);
			explicit_bzero(req, sizeof(req));
			return 0;
		}
	}
}

enum be_status oauth2_login_browser(const char *address,
				    const struct oauth2_config *cfg,
				    bool open_browser, FILE *out,
				    struct be_result *r)
{
	struct tokens t = {
		.endpoint = endpoint(cfg, "token"),
		.client_id = xstrdup(or(cfg->client_id, OAUTH2_DEFAULT_CLIENT_ID)),
		.scope = xstrdup(or(cfg->scope, OAUTH2_DEFAULT_SCOPE)),
	};
	char *auth_url = endpoint(cfg, "authorize"), *redirect = NULL,
	     *query = NULL, *code = NULL, *state_back = NULL, *path = NULL;
	struct buf verifier, challenge, state, url, form;
	unsigned char digest[SHA256_DIGEST_LENGTH];
	struct answer a;
	int lfd = -1;

	be_result_ok(r);
	buf_init(&verifier, 0);
	buf_init(&challenge, 0);
	buf_init(&state, 0);
	buf_init(&url, 0);
	buf_init(&form, 0);
	random_b64url(&verifier, 48);
	SHA256((const unsigned char *)verifier.data, verifier.len, digest);
	b64url(&challenge, digest, sizeof(digest));
	random_b64url(&state, 16);

	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 4) || getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		be_result_set(r, BE_NETWORK,
			      "cannot listen on a loopback port for the browser: %s",
			      strerror(errno));
		goto out;
	}
	redirect = xasprintf("http://localhost:%u/", ntohs(sa.sin_port));
	form_put(&url, "client_id", t.client_id);
	form_put(&url, "response_type", "code");
	form_put(&url, "redirect_uri", redirect);
	form_put(&url, "response_mode", "query");
	form_put(&url, "scope", t.scope);
	form_put(&url, "state", state.data);
	form_put(&url, "code_challenge", challenge.data);
	form_put(&url, "code_challenge_method", "S256");
	form_put(&url, "login_hint", address);
	fprintf(out, "To sign in as %s, open this address in a browser on this machine:\n"
		"%s?%s\n(waiting up to 5 minutes)\n", address, auth_url,
		url.data);
	fflush(out);
	if (open_browser) {
		/* xdg-open in a grandchild, so no zombie is left behind */
		char *u = xasprintf("%s?%s", auth_url, url.data);
		pid_t pid = fork();
		if (pid == 0) {
			if (fork() == 0) {
				int nul = open("/dev/null", O_RDWR);
				if (nul >= 0) {
					dup2(nul, 1);
					dup2(nul, 2);
				}
				execlp("xdg-open", "xdg-open", u, (char *)NULL);
			}
			_exit(0);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
		free(u);
	}
	if (take_redirect(lfd, 5 * 60 * 1000, &query, r))
		goto out;
	state_back = query_value(query, "state");
	code = query_value(query, "code");
	if (!state_back || strcmp(state_back, state.data)) {
		be_result_set(r, BE_AUTH,
			      "the browser's answer does not belong to this sign-in (state differs)");
		goto out;
	}
	if (!code) {
		char *e = query_value(query, "error");
		be_result_set(r, BE_AUTH, "sign-in failed: %.100s",
			      e ? e : "no authorization code");
		free(e);
		goto out;
	}
	form_put(&form, "grant_type", "authorization_code");
	form_put(&form, "client_id", t.client_id);
	form_put(&form, "code", code);
	form_put(&form, "redirect_uri", redirect);
	form_put(&form, "code_verifier", verifier.data);
	form_put(&form, "scope", t.scope);
	if (oauth_post(t.endpoint, &form, cfg, "authorization code", &a, r) !=
	    BE_OK)
		goto out;
	if (a.error || a.status / 100 != 2)
		oauth_error(r, BE_AUTH, "sign-in failed", &a);
	else if (!take_tokens(&t, &a, t.endpoint, r)) {
		path = oauth2_token_path(address);
		if (!tokens_save(path, &t, r))
			fprintf(out, "Signed in as %s; tokens stored in %s\n",
				address, path);
	}
	answer_free(&a);
out:
	if (lfd >= 0)
		close(lfd);
	wipe(&code);
	wipe(&query);
	free(state_back);
	free(redirect);
	free(auth_url);
	free(path);
	explicit_bzero(verifier.data, verifier.len);
	explicit_bzero(form.data, form.len);
	buf_free(&verifier);
	buf_free(&challenge);
	buf_free(&state);
	buf_free(&url);
	buf_free(&form);
	tokens_free(&t);
	return r->status;
}

/* --- the token source of a mount -------------------------------------- */

struct oauth2 {
	pthread_mutex_t lock;
	char *address;          /* owned */
	char *path;             /* owned: the token file */
	struct oauth2_config cfg; /* strings borrowed from the caller */
	struct tokens t;        /* protected by lock */
	time_t file_mtime;      /* of the file t came from */
	bool dead;              /* the refresh token was refused */
	struct be_result dead_r; /* what to say while dead */
};

struct oauth2 *oauth2_open(const char *address, const struct oauth2_config *cfg,
			   struct be_result *r)
{
	struct oauth2 *o = xcalloc(1, sizeof(*o));
	be_result_ok(r);
	o->address = xstrdup(address);
	o->path = oauth2_token_path(address);
	o->cfg = *cfg;
	if (tokens_load(o->path, &o->t, &o->file_mtime, r, address)) {
		oauth2_free(o);
		return NULL;
	}
	pthread_mutex_init(&o->lock, NULL);
	return o;
}

void oauth2_free(struct oauth2 *o)
{
	if (!o)
		return;
	if (o->t.endpoint)
		pthread_mutex_destroy(&o->lock);
	tokens_free(&o->t);
	free(o->address);
	free(o->path);
	free(o);
}

/* Use the refresh token; under o->lock. */
static int refresh(struct oauth2 *o, struct be_result *r)
{
	struct answer a;
	struct buf form;
	int rc = -1;

	if (!o->t.refresh) {
		be_result_set(r, BE_AUTH,
			      "sign-in expired: run exchangefs login %s",
			      o->address);
		o->dead = true;
		o->dead_r = *r;
		return -1;
	}
	buf_init(&form, 0);
	form_put(&form, "grant_type", "refresh_token");
	form_put(&form, "client_id", o->t.client_id);
	form_put(&form, "refresh_token", o->t.refresh);
	form_put(&form, "scope", o->t.scope);
	log_dbg(LC_HTTP, "refreshing the access token of %s", o->address);
	if (oauth_post(o->t.endpoint, &form, &o->cfg, "token refresh", &a, r) !=
	    BE_OK) {
		/* network or server trouble: transient, try again later */
		goto out;
	}
	if (a.error || a.status / 100 != 2) {
		if (a.error && strcmp(a.error, "invalid_grant") &&
		    strcmp(a.error, "invalid_client") &&
		    strcmp(a.error, "unauthorized_client") &&
		    strcmp(a.error, "interaction_required")) {
			oauth_error(r, BE_NETWORK, "token refresh failed", &a);
		} else {
			be_result_set(r, BE_AUTH,
				      "sign-in expired: run exchangefs login %s",
				      o->address);
			snprintf(r->code, sizeof(r->code), "%s",
				 a.error ? a.error : "");
			o->dead = true;
			o->dead_r = *r;
		}
	} else if (!take_tokens(&o->t, &a, o->t.endpoint, r) &&
		   !tokens_save(o->path, &o->t, r)) {
		struct stat st;
		if (!stat(o->path, &st))
			o->file_mtime = st.st_mtime;
		rc = 0;
	}
	answer_free(&a);
out:
	explicit_bzero(form.data, form.len);
	buf_free(&form);
	return rc;
}

/* After a refused refresh token: a new `exchangefs login` renews the file;
 * take it.  Under o->lock. */
static void reload_if_renewed(struct oauth2 *o)
{
	struct stat st;
	struct tokens t;
	struct be_result r;
	time_t mt;
	if (stat(o->path, &st) || st.st_mtime == o->file_mtime)
		return;
	if (tokens_load(o->path, &t, &mt, &r, o->address))
		return;
	tokens_free(&o->t);
	o->t = t;
	o->file_mtime = mt;
	o->dead = false;
	log_notice("signed in again: using the new tokens of %s", o->address);
}

/* How long before expiry to refresh: OAUTH2_REFRESH_MARGIN_S, or a
 * quarter of the token's lifetime when that is shorter. */
static int64_t margin(const struct tokens *t)
{
	int64_t life = t->obtained_at ? t->expires_at - t->obtained_at : 0;
	if (life > 0 && life / 4 < OAUTH2_REFRESH_MARGIN_S)
		return life / 4;
	return OAUTH2_REFRESH_MARGIN_S;
}

int oauth2_bearer(void *arg, const char *rejected, char **token,
		  struct be_result *r)
{
	struct oauth2 *o = arg;
	int rc = 0;

	be_result_ok(r);
	pthread_mutex_lock(&o->lock);
	if (o->dead)
		reload_if_renewed(o);
	if (o->dead) {
		*r = o->dead_r;
		rc = -1;
	} else if ((rejected && !strcmp(rejected, o->t.access)) ||
		   o->t.expires_at - (int64_t)time(NULL) < margin(&o->t)) {
		rc = refresh(o, r);
		/* a transient failure while the old token still works: use it */
		if (rc && !o->dead && !rejected &&
		    o->t.expires_at > (int64_t)time(NULL)) {
			rc = 0;
			be_result_ok(r);
		}
	}
	if (!rc)
		*token = xstrdup(o->t.access);
	pthread_mutex_unlock(&o->lock);
	return rc;
}
