/*
 * oauth2.c - the token file, requests to the token endpoint, and the
 * shared, refreshing token source of a mount (see oauth2.h; the sign-in
 * flows are in oauth2_login.c).  Requests to the token endpoint go through
 * backend/http.c with secret bodies (never logged); answers are read with
 * backend/json.c.
 */
#include "oauth2_internal.h"
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void oa_wipe(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void oa_tokens_free(struct tokens *t)
{
	free(t->endpoint);
	free(t->client_id);
	free(t->scope);
	oa_wipe(&t->access);
	oa_wipe(&t->refresh);
	memset(t, 0, sizeof(*t));
}

const char *oa_or(const char *v, const char *dflt)
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

int oa_tokens_save(const char *path, const struct tokens *t,
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

int oa_tokens_load(const char *path, struct tokens *t, struct timespec *mtime,
		       struct be_result *r, const char *address)
{
	struct json_obj o = { 0 };
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
	*mtime = st.st_mtim;
	int rc = -1;
	if (n != st.st_size ||
	    json_parse_object(data, (size_t)n, &o, err, sizeof(err))) {
		be_result_set(r, BE_AUTH,
			      "token file %s is damaged: run exchangefs login %s",
			      path, address);
		goto out_json;   /* a partial parse keeps what it read */
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
	t->scope = xstrdup(oa_or(json_str(&o, "scope"), OAUTH2_DEFAULT_SCOPE));
	t->access = xstrdup(acc);
	t->refresh = xstrdup(json_str(&o, "refresh_token"));
	rc = 0;
out_json:
	for (size_t i = 0; i < o.n; i++)
		explicit_bzero(o.v[i].value, strlen(o.v[i].value));
	json_free(&o);
	explicit_bzero(data, (size_t)st.st_size);
	free(data);
	return rc;
}

/* --- token endpoint requests ------------------------------------------ */

void oa_form_put(struct buf *b, const char *name, const char *value)
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

void oa_answer_free(struct answer *a)
{
	for (size_t i = 0; i < a->json.n; i++)
		explicit_bzero(a->json.v[i].value, strlen(a->json.v[i].value));
	json_free(&a->json);
}

/* POST the form to url; BE_OK with a JSON answer (any status) in a. */
enum be_status oa_post(const char *url, const struct buf *form,
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
int oa_take_tokens(struct tokens *t, const struct answer *a,
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
	oa_wipe(&t->access);
	t->access = xstrdup(acc);
	t->obtained_at = (int64_t)time(NULL);
	t->expires_at = t->obtained_at + ttl;
	if (ref && *ref) {   /* servers may or may not rotate it */
		oa_wipe(&t->refresh);
		t->refresh = xstrdup(ref);
	}
	return 0;
}

/* An OAuth2 error answer as one line: the error code and the first line of
 * its description (descriptions carry no secrets). */
void oa_error(struct be_result *r, enum be_status st,
			const char *prefix, const struct answer *a)
{
	const char *d = json_str(&a->json, "error_description");
	be_result_set(r, st, "%s: %s%s%.*s", prefix,
		      a->error ? a->error : "error",
		      d ? ": " : "", d ? (int)strcspn(d, "\r\n") : 0,
		      d ? d : "");
	snprintf(r->code, sizeof(r->code), "%s", a->error ? a->error : "");
}

char *oa_endpoint(const struct oauth2_config *cfg, const char *what)
{
	const char *auth = oa_or(cfg->authority, OAUTH2_DEFAULT_AUTHORITY);
	size_t n = strlen(auth);
	while (n && auth[n - 1] == '/')
		n--;
	return xasprintf("%.*s/%s/oauth2/v2.0/%s", (int)n, auth,
			 oa_or(cfg->tenant, OAUTH2_DEFAULT_TENANT), what);
}

/* --- device code ------------------------------------------------------ */

/* --- the token source of a mount -------------------------------------- */

struct oauth2 {
	pthread_mutex_t lock;
	char *address;          /* owned */
	char *path;             /* owned: the token file */
	struct oauth2_config cfg; /* strings borrowed from the caller */
	struct tokens t;        /* protected by lock */
	struct timespec file_mtime; /* of the file t came from */
	bool dead;              /* the refresh token was refused */
	struct be_result dead_r; /* what to say while dead */
	bool refreshing;        /* a session is asking for a new token; the
				 * lock is not held across that request */
	pthread_cond_t refreshed; /* refreshing ended */
};

struct oauth2 *oauth2_open(const char *address, const struct oauth2_config *cfg,
			   struct be_result *r)
{
	struct oauth2 *o = xcalloc(1, sizeof(*o));
	be_result_ok(r);
	o->address = xstrdup(address);
	o->path = oauth2_token_path(address);
	o->cfg = *cfg;
	if (oa_tokens_load(o->path, &o->t, &o->file_mtime, r, address)) {
		oauth2_free(o);
		return NULL;
	}
	pthread_mutex_init(&o->lock, NULL);
	cond_init_monotonic(&o->refreshed);
	return o;
}

void oauth2_free(struct oauth2 *o)
{
	if (!o)
		return;
	if (o->t.endpoint) {
		pthread_mutex_destroy(&o->lock);
		pthread_cond_destroy(&o->refreshed);
	}
	oa_tokens_free(&o->t);
	free(o->address);
	free(o->path);
	free(o);
}

/* Use the refresh token; under o->lock, which is let go for the request
 * (o->refreshing keeps other sessions from asking too). */
static int refresh(struct oauth2 *o, struct be_result *r)
{
	struct answer a;
	struct buf form;
	int rc = -1;
	enum be_status sent;

	if (!o->t.refresh) {
		be_result_set(r, BE_AUTH,
			      "sign-in expired: run exchangefs login %s",
			      o->address);
		o->dead = true;
		o->dead_r = *r;
		return -1;
	}
	buf_init(&form, 0);
	oa_form_put(&form, "grant_type", "refresh_token");
	oa_form_put(&form, "client_id", o->t.client_id);
	oa_form_put(&form, "refresh_token", o->t.refresh);
	oa_form_put(&form, "scope", o->t.scope);
	log_dbg(LC_HTTP, "refreshing the access token of %s", o->address);
	char *endpoint = xstrdup(o->t.endpoint);
	pthread_mutex_unlock(&o->lock);
	sent = oa_post(endpoint, &form, &o->cfg, "token refresh", &a, r);
	pthread_mutex_lock(&o->lock);
	free(endpoint);
	if (sent != BE_OK) {
		/* network or server trouble: transient, try again later */
		goto out;
	}
	if (a.error || a.status / 100 != 2) {
		if (a.error && strcmp(a.error, "invalid_grant") &&
		    strcmp(a.error, "invalid_client") &&
		    strcmp(a.error, "unauthorized_client") &&
		    strcmp(a.error, "interaction_required")) {
			oa_error(r, BE_NETWORK, "token refresh failed", &a);
		} else {
			be_result_set(r, BE_AUTH,
				      "sign-in expired: run exchangefs login %s",
				      o->address);
			snprintf(r->code, sizeof(r->code), "%s",
				 a.error ? a.error : "");
			o->dead = true;
			o->dead_r = *r;
		}
	} else if (!oa_take_tokens(&o->t, &a, o->t.endpoint, r) &&
		   !oa_tokens_save(o->path, &o->t, r)) {
		struct stat st;
		if (!stat(o->path, &st))
			o->file_mtime = st.st_mtim;
		rc = 0;
	}
	oa_answer_free(&a);
out:
	explicit_bzero(form.data, form.len);
	buf_free(&form);
	return rc;
}

/* Take the token file if it changed since we read or wrote it: a new
 * `exchangefs login`, or another process of the same account that
 * refreshed (and so spent the refresh token we hold).  Whether it did.
 * Under o->lock. */
static bool reload_if_renewed(struct oauth2 *o)
{
	struct stat st;
	struct tokens t;
	struct be_result r;
	struct timespec mt;
	if (stat(o->path, &st) ||
	    (st.st_mtim.tv_sec == o->file_mtime.tv_sec &&
	     st.st_mtim.tv_nsec == o->file_mtime.tv_nsec))
		return false;
	if (oa_tokens_load(o->path, &t, &mt, &r, o->address))
		return false;
	oa_tokens_free(&o->t);
	o->t = t;
	o->file_mtime = mt;
	if (o->dead)
		log_notice("signed in again: using the new tokens of %s",
			   o->address);
	else
		log_dbg(LC_HTTP, "the token file of %s changed: using its tokens",
			o->address);
	o->dead = false;
	return true;
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

/* Whether the access token must be replaced before it is sent; under
 * o->lock. */
static bool needs_refresh(const struct oauth2 *o, const char *rejected)
{
	return (rejected && !strcmp(rejected, o->t.access)) ||
	       o->t.expires_at - (int64_t)time(NULL) < margin(&o->t);
}

int oauth2_bearer(void *arg, const char *rejected, char **token,
		  struct be_result *r)
{
	struct oauth2 *o = arg;
	int rc = 0;

	be_result_ok(r);
	pthread_mutex_lock(&o->lock);
	/* another session is refreshing: the token it replaces still works
	 * until it expires (and was not refused), so use it rather than wait
	 * for a token endpoint that may be slow; else wait for the new one */
	while (o->refreshing && !o->dead && needs_refresh(o, rejected) &&
	       ((rejected && !strcmp(rejected, o->t.access)) ||
		o->t.expires_at <= (int64_t)time(NULL))) {
		struct timespec ts;
		deadline_ms(&ts, 1000);
		pthread_cond_timedwait(&o->refreshed, &o->lock, &ts);
	}
	if (o->dead && !o->refreshing)
		reload_if_renewed(o);
	if (o->dead) {
		*r = o->dead_r;
		rc = -1;
	} else if (needs_refresh(o, rejected) && !o->refreshing) {
		o->refreshing = true;
		rc = refresh(o, r);
		/* refused: another process may have refreshed first (spending
		 * our refresh token) and written the file; take its tokens */
		if (rc && o->dead) {
			o->dead = false;
			if (!reload_if_renewed(o)) {
				o->dead = true;
			} else {
				be_result_ok(r);
				rc = 0;
				if (needs_refresh(o, rejected))
					rc = refresh(o, r);
			}
		}
		o->refreshing = false;
		pthread_cond_broadcast(&o->refreshed);
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
