/*
 * oauth2_login.c - `exchangefs login`: OAuth2 sign-in with the device-code
 * flow, or the authorization-code flow with PKCE (S256) on a loopback
 * redirect; both end by storing the tokens (oauth2.c).
 */
#include "oauth2_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/sha.h>

/* --- device code ------------------------------------------------------ */

enum be_status oauth2_login_device(const char *address,
				   const struct oauth2_config *cfg, FILE *out,
				   struct be_result *r)
{
	struct tokens t = {
		.endpoint = oa_endpoint(cfg, "token"),
		.client_id = xstrdup(oa_or(cfg->client_id, OAUTH2_DEFAULT_CLIENT_ID)),
		.scope = xstrdup(oa_or(cfg->scope, OAUTH2_DEFAULT_SCOPE)),
	};
	char *dc_url = oa_endpoint(cfg, "devicecode");
	char *device_code = NULL, *path = NULL;
	struct answer a;
	struct buf form;

	be_result_ok(r);
	buf_init(&form, 0);
	oa_form_put(&form, "client_id", t.client_id);
	oa_form_put(&form, "scope", t.scope);
	if (oa_post(dc_url, &form, cfg, "device code", &a, r) != BE_OK)
		goto out;
	const char *uri = json_str(&a.json, "verification_uri");
	if (!uri)   /* the older v1 name */
		uri = json_str(&a.json, "verification_url");
	const char *code = json_str(&a.json, "user_code");
	const char *dc = json_str(&a.json, "device_code");
	int64_t interval = 5, expires = 900;
	if (a.error || a.status / 100 != 2) {
		oa_error(r, BE_AUTH, "the sign-in server refused to start", &a);
		oa_answer_free(&a);
		goto out;
	}
	if (!uri || !code || !dc) {
		be_result_set(r, BE_PROTOCOL,
			      "sign-in server at %s answered without a device code",
			      dc_url);
		oa_answer_free(&a);
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
	oa_answer_free(&a);

	int64_t deadline = now_ms() + expires * 1000;
	for (;;) {
		sleep_ms(interval * 1000);
		if (now_ms() > deadline) {
			be_result_set(r, BE_AUTH,
				      "the sign-in code expired before it was used: run exchangefs login again");
			goto out;
		}
		buf_reset(&form);
		oa_form_put(&form, "grant_type",
			 "urn:ietf:params:oauth:grant-type:device_code");
		oa_form_put(&form, "client_id", t.client_id);
		oa_form_put(&form, "device_code", device_code);
		if (oa_post(t.endpoint, &form, cfg, "device token", &a, r) !=
		    BE_OK)
			goto out;
		if (a.error && !strcmp(a.error, "authorization_pending")) {
			oa_answer_free(&a);
			continue;
		}
		if (a.error && !strcmp(a.error, "slow_down")) {
			interval += 5;
			oa_answer_free(&a);
			continue;
		}
		if (a.error || a.status / 100 != 2) {
			oa_error(r, BE_AUTH, "sign-in failed", &a);
			oa_answer_free(&a);
			goto out;
		}
		int rc = oa_take_tokens(&t, &a, t.endpoint, r);
		oa_answer_free(&a);
		if (rc)
			goto out;
		break;
	}
	path = oauth2_token_path(address);
	if (!oa_tokens_save(path, &t, r))
		fprintf(out, "Signed in as %s; tokens stored in %s\n", address,
			path);
out:
	if (device_code)
		oa_wipe(&device_code);
	explicit_bzero(form.data, form.len);
	buf_free(&form);
	free(dc_url);
	free(path);
	oa_tokens_free(&t);
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
		.endpoint = oa_endpoint(cfg, "token"),
		.client_id = xstrdup(oa_or(cfg->client_id, OAUTH2_DEFAULT_CLIENT_ID)),
		.scope = xstrdup(oa_or(cfg->scope, OAUTH2_DEFAULT_SCOPE)),
	};
	char *auth_url = oa_endpoint(cfg, "authorize"), *redirect = NULL,
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
	oa_form_put(&url, "client_id", t.client_id);
	oa_form_put(&url, "response_type", "code");
	oa_form_put(&url, "redirect_uri", redirect);
	oa_form_put(&url, "response_mode", "query");
	oa_form_put(&url, "scope", t.scope);
	oa_form_put(&url, "state", state.data);
	oa_form_put(&url, "code_challenge", challenge.data);
	oa_form_put(&url, "code_challenge_method", "S256");
	oa_form_put(&url, "login_hint", address);
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
	oa_form_put(&form, "grant_type", "authorization_code");
	oa_form_put(&form, "client_id", t.client_id);
	oa_form_put(&form, "code", code);
	oa_form_put(&form, "redirect_uri", redirect);
	oa_form_put(&form, "code_verifier", verifier.data);
	oa_form_put(&form, "scope", t.scope);
	if (oa_post(t.endpoint, &form, cfg, "authorization code", &a, r) !=
	    BE_OK)
		goto out;
	if (a.error || a.status / 100 != 2)
		oa_error(r, BE_AUTH, "sign-in failed", &a);
	else if (!oa_take_tokens(&t, &a, t.endpoint, r)) {
		path = oauth2_token_path(address);
		if (!oa_tokens_save(path, &t, r))
			fprintf(out, "Signed in as %s; tokens stored in %s\n",
				address, path);
	}
	oa_answer_free(&a);
out:
	if (lfd >= 0)
		close(lfd);
	oa_wipe(&code);
	oa_wipe(&query);
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
	oa_tokens_free(&t);
	return r->status;
}

