/*
 * http.c - POST over one reused libcurl easy handle, with capped or
 * streamed bodies and failures graded into be_result.  See http.h for the
 * policy (TLS, auth, redirects, caps).  Transfers run on a multi handle
 * of the session so that a caller's cancellation is polled often.
 */
#include "http.h"
#include "oauth2.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

struct http_session {
	CURL *curl;
	CURLM *multi;                /* runs every transfer of curl (and keeps
					its connections) */
	struct curl_slist *headers;  /* owned */
	struct curl_slist *connect_to; /* owned: $EXCHANGEFS_CONNECT_TO */
	enum http_auth auth;
	http_bearer_fn bearer;
	void *bearer_arg;
	char *token;                 /* owned: the Bearer token in use */
	char gss_err[200];           /* Negotiate: why GSS-API gave no token */
	char *url;                   /* normalised, without user info */
	char *host;                  /* "host:port" for messages */
	char errbuf[CURL_ERROR_SIZE];
	int verbose;
	bool own_ca;                 /* --ca-file given: for messages */
};

/* One transfer in progress. */
struct xfer {
	const struct http_request *rq;
	struct http_response *resp;
	CURL *curl;
	size_t cap;          /* for the current body */
	size_t received;     /* bytes of the final body */
	bool stream;         /* current body goes to rq->sink */
	bool over_cap;       /* a 2xx body exceeded the cap */
	bool sink_abort;     /* the sink returned -1 */
	bool cancelled;      /* rq->cancelled returned true */
	bool abandoned;      /* the thread's abandon hook returned true */
};

/* The calling thread's abandon hook (http_thread_abandon). */
static __thread bool (*thread_abandon)(void *arg);
static __thread void *thread_abandon_arg;
static __thread const char *thread_abandon_why;

void http_thread_abandon(bool (*fn)(void *arg), void *arg, const char *why)
{
	thread_abandon = fn;
	thread_abandon_arg = arg;
	thread_abandon_why = why;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Check the URL: http(s), a host, no user info.  Fills the normalised URL
 * and "host:port".  Messages never echo a URL that carries a password. */
static int check_url(const char *url, char **norm, char **hostport,
		     struct be_result *r)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL,
	     *pass = NULL, *out = NULL;
	int rc = -1;

	if (!u) {
		fprintf(stderr, "exchangefs: out of memory (curl_url)\n");
		abort();
	}
	if (!url || !*url) {
		be_result_set(r, BE_REFUSED, "invalid URL: no server URL given");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		be_result_set(r, BE_REFUSED,
			      "invalid URL '%.200s': expected https://host/EWS/Exchange.asmx",
			      url);
		goto out;
	}
	curl_url_get(u, CURLUPART_USER, &user, 0);
	curl_url_get(u, CURLUPART_PASSWORD, &pass, 0);
	if (user || pass) {
		be_result_set(r, BE_REFUSED,
			      "invalid URL: it must not contain a user name or password (use the user and password options)");
		goto out;
	}
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	if (!scheme || (strcmp(scheme, "https") && strcmp(scheme, "http"))) {
		be_result_set(r, BE_REFUSED,
			      "invalid URL '%.200s': only http and https are supported",
			      url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		be_result_set(r, BE_REFUSED, "invalid URL '%.200s': no host",
			      url);
		goto out;
	}
	curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
	if (curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK) {
		be_result_set(r, BE_REFUSED, "invalid URL '%.200s'", url);
		goto out;
	}
	*norm = xstrdup(out);
	*hostport = xasprintf("%s:%s", host, port ? port : "?");
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_free(pass);
	curl_free(out);
	curl_url_cleanup(u);
	return rc;
}

/* Negotiate sessions only: curl tells why GSS-API produced no token only
 * as verbose text ("gss_init_sec_context() failed: ..."); keep that line
 * for the error message.  Headers and data are ignored, never stored. */
static int on_curl_debug(CURL *c, curl_infotype type, char *data, size_t n,
			 void *arg)
{
	struct http_session *h = arg;
	(void)c;
	if (type == CURLINFO_TEXT && n > 4 && !strncmp(data, "gss_", 4)) {
		while (n && (data[n - 1] == '\n' || data[n - 1] == ' '))
			n--;
		snprintf(h->gss_err, sizeof(h->gss_err), "%.*s", (int)n, data);
	}
	return 0;
}

struct http_session *http_open(const struct http_config *cfg,
			       struct be_result *r)
{
	char *norm = NULL, *hostport = NULL;

	be_result_ok(r);
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		be_result_set(r, BE_NETWORK, "cannot initialise libcurl: %s",
			      curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	if (check_url(cfg->url, &norm, &hostport, r))
		return NULL;

	struct http_session *h = xcalloc(1, sizeof(*h));
	h->url = norm;
	h->host = hostport;
	h->verbose = cfg->verbose;
	h->own_ca = cfg->ca_file != NULL;
	h->curl = curl_easy_init();
	h->multi = curl_multi_init();
	if (!h->curl || !h->multi) {
		fprintf(stderr, "exchangefs: out of memory (curl_easy_init)\n");
		abort();
	}
	for (const char *const *p = cfg->headers; p && *p; p++)
		h->headers = curl_slist_append(h->headers, *p);
	/* no "Expect: 100-continue" round trip for larger bodies */
	h->headers = curl_slist_append(h->headers, "Expect:");

	CURL *c = h->curl;
	long ct = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 30;
	curl_easy_setopt(c, CURLOPT_URL, h->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, ct);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, cfg->insecure ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, cfg->insecure ? 0L : 2L);
	if (cfg->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, cfg->ca_file);
	const char *ct_env = getenv("EXCHANGEFS_CONNECT_TO");
	if (ct_env && *ct_env) {
		char *copy = xstrdup(ct_env), *save = NULL;
		for (char *e = strtok_r(copy, ",", &save); e;
		     e = strtok_r(NULL, ",", &save))
			h->connect_to = curl_slist_append(h->connect_to, e);
		free(copy);
		curl_easy_setopt(c, CURLOPT_CONNECT_TO, h->connect_to);
	}
	h->auth = cfg->auth;
	switch (cfg->auth) {
	case HTTP_AUTH_BEARER:
		if (!cfg->bearer) {
			be_result_set(r, BE_REFUSED, "OAuth2 sign-in without a token source");
			http_close(h);
			return NULL;
		}
		h->bearer = cfg->bearer;
		h->bearer_arg = cfg->bearer_arg;
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		break;
	case HTTP_AUTH_NEGOTIATE: {
		curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
		if (!(vi->features & CURL_VERSION_SPNEGO) ||
		    !(vi->features & CURL_VERSION_GSSAPI)) {
			be_result_set(r, BE_REFUSED,
				      "Kerberos sign-in is not possible: this libcurl (%s) was built without GSS-API",
				      vi->version);
			http_close(h);
			return NULL;
		}
		/* the user's ticket cache signs in; curl wants a (blank) user
		 * name to use any authentication at all */
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_NEGOTIATE);
		curl_easy_setopt(c, CURLOPT_USERNAME, "");
		curl_easy_setopt(c, CURLOPT_PASSWORD, "");
		curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_curl_debug);
		curl_easy_setopt(c, CURLOPT_DEBUGDATA, h);
		curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
		break;
	}
	default:
		if (!cfg->user)
			break;
		curl_easy_setopt(c, CURLOPT_HTTPAUTH,
				 cfg->auth == HTTP_AUTH_BASIC ? (long)CURLAUTH_BASIC
				 : cfg->auth == HTTP_AUTH_NTLM ? (long)CURLAUTH_NTLM
				 : (long)(CURLAUTH_BASIC | CURLAUTH_NTLM));
		curl_easy_setopt(c, CURLOPT_USERNAME, cfg->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD,
				 cfg->password ? cfg->password : "");
		break;
	}
	return h;
}

struct http_session *http_open_backend(const struct be_config *cfg,
				       const char *const *headers,
				       long *call_timeout_s, long *stall_s,
				       struct be_result *r)
{
	struct http_config hc = {
		.url = cfg->url,
		.auth = (enum http_auth)cfg->auth,
		.bearer = cfg->oauth2 ? oauth2_bearer : NULL,
		.bearer_arg = cfg->oauth2,
		.user = cfg->user,
		.password = cfg->password,
		.ca_file = cfg->ca_file,
		.insecure = cfg->insecure,
		.connect_timeout_s = cfg->connect_timeout_s,
		.headers = headers,
		.verbose = cfg->verbose,
	};
	long ct = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 30;
	long rt = cfg->timeout_s > 0 ? cfg->timeout_s : 60;
	*call_timeout_s = ct + rt;
	*stall_s = rt;
	return http_open(&hc, r);
}

void http_close(struct http_session *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	curl_multi_cleanup(h->multi);
	curl_slist_free_all(h->headers);
	curl_slist_free_all(h->connect_to);
	if (h->token) {
		explicit_bzero(h->token, strlen(h->token));
		free(h->token);
	}
	free(h->url);
	free(h->host);
	free(h);
}

const char *http_url(const struct http_session *h)
{
	return h->url;
}

void http_response_free(struct http_response *resp)
{
	buf_free(&resp->body);
}

/* Log a body in pieces that fit a log line, at most 64 KiB of it. */
static void log_body(const char *dir, const char *data, size_t len)
{
	const size_t piece = 1536, most = 64 << 10;
	size_t shown = len < most ? len : most;
	for (size_t at = 0; at < shown; at += piece) {
		size_t n = shown - at < piece ? shown - at : piece;
		log_dbg(LC_HTTP, "%s %.*s", dir, (int)n, data + at);
	}
	if (shown < len)
		log_dbg(LC_HTTP, "%s ... (%zu more bytes not shown)", dir,
			len - shown);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	struct http_response *resp = x->resp;
	size_t n = size * nmemb;
	long status = 0;

	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != resp->status || !x->received) {
		/* first bytes of a new answer (after auth rounds) */
		char *ct = NULL;
		resp->status = status;
		curl_easy_getinfo(x->curl, CURLINFO_CONTENT_TYPE, &ct);
		snprintf(resp->content_type, sizeof(resp->content_type), "%s",
			 ct ? ct : "");
		buf_reset(&resp->body);
		x->received = 0;
		x->stream = x->rq->sink && status / 100 == 2;
		x->cap = status / 100 == 2 ? (x->rq->cap ? x->rq->cap
							 : HTTP_DEFAULT_CAP)
					   : HTTP_ERROR_BODY_CAP;
		resp->body.cap = x->cap;
	}
	x->received += n;
	if (x->stream) {
		if (x->rq->sink(x->rq->sink_arg, resp, data, n)) {
			x->sink_abort = true;
			return 0;
		}
		return n;
	}
	if (buf_append(&resp->body, data, n)) {
		if (status / 100 == 2)
			x->over_cap = true;
		else
			resp->body_truncated = true;
		return 0;
	}
	return n;
}

/* Run the transfer on the session's multi handle, waking at least every
 * HTTP_POLL_MS (and whenever bytes arrive) to poll rq->cancelled: the one
 * place a caller's cancellation is looked at.  (curl_easy_perform wakes
 * about once a second when nothing arrives, its progress callback no more
 * often: not enough for "at least once a second".) */
#define HTTP_POLL_MS 250

static CURLcode perform(struct http_session *h, struct xfer *x)
{
	CURLcode rc = CURLE_OK;
	int running = 1, left;

	if (curl_multi_add_handle(h->multi, h->curl) != CURLM_OK)
		return CURLE_FAILED_INIT;
	while (running) {
		CURLMcode mc = curl_multi_perform(h->multi, &running);
		if (mc == CURLM_OK && running && x->rq->cancelled &&
		    x->rq->cancelled(x->rq->cancel_arg)) {
			x->cancelled = true;
			rc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if (mc == CURLM_OK && running && thread_abandon &&
		    thread_abandon(thread_abandon_arg)) {
			x->abandoned = true;
			rc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if (mc == CURLM_OK && running)
			mc = curl_multi_poll(h->multi, NULL, 0, HTTP_POLL_MS,
					     NULL);
		if (mc != CURLM_OK) {
			rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
						       : CURLE_FAILED_INIT;
			break;
		}
	}
	for (CURLMsg *m; (m = curl_multi_info_read(h->multi, &left));)
		if (m->msg == CURLMSG_DONE && m->easy_handle == h->curl)
			rc = m->data.result;
	/* an unfinished transfer is abandoned and its connection closed */
	curl_multi_remove_handle(h->multi, h->curl);
	return rc;
}

/* Retry-After: delay-seconds or an HTTP-date; capped at a day. */
static uint32_t parse_retry_after(const char *v)
{
	const uint32_t most = 24u * 3600 * 1000;
	while (*v == ' ')
		v++;
	if (isdigit((unsigned char)*v)) {
		unsigned long long s = 0;
		for (; isdigit((unsigned char)*v) && s < most; v++)
			s = s * 10 + (unsigned)(*v - '0');
		return s * 1000 >= most ? most : (uint32_t)(s * 1000);
	}
	time_t t = curl_getdate(v, NULL);
	time_t now = time(NULL);
	if (t == (time_t)-1 || t <= now)
		return 0;
	return t - now >= most / 1000 ? most : (uint32_t)(t - now) * 1000;
}

static void read_headers(struct http_session *h, struct http_response *resp)
{
	struct curl_header *hh = NULL;
	char *loc = NULL;

	if (curl_easy_header(h->curl, "Retry-After", 0, CURLH_HEADER, -1,
			     &hh) == CURLHE_OK && hh->value)
		resp->retry_after_ms = parse_retry_after(hh->value);
	if (resp->status / 100 == 3 &&
	    curl_easy_getinfo(h->curl, CURLINFO_REDIRECT_URL, &loc) ==
		    CURLE_OK && loc)
		snprintf(resp->location, sizeof(resp->location), "%s", loc);
}

/* Turn a curl failure into a grade and one line. */
static void grade_curl(struct http_session *h, CURLcode rc, double secs,
		       struct be_result *r)
{
	const char *detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
	long os_errno = 0;

	snprintf(r->code, sizeof(r->code), "curl %d", (int)rc);
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		be_result_set(r, BE_NETWORK, "cannot resolve host name of %s",
			      h->host);
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
		be_result_set(r, BE_NETWORK, "cannot resolve proxy: %s", detail);
		break;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(h->curl, CURLINFO_OS_ERRNO, &os_errno);
		be_result_set(r, BE_NETWORK, "cannot connect to %s: %s", h->host,
			      os_errno ? strerror((int)os_errno) : detail);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		be_result_set(r, BE_NETWORK,
			      "no answer from %s within %.0f s (%s)", h->host,
			      secs, detail);
		break;
	case CURLE_PEER_FAILED_VERIFICATION:  /* = CURLE_SSL_CACERT */
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		/* say what to do: a private CA is given with --ca-file; a
		 * certificate for another name is not fixed by one */
		be_result_set(r, BE_TLS,
			      "TLS certificate of host %s not trusted: %s (%s)",
			      h->host, detail,
			      strstr(detail, "match") ? "it was issued for another "
			      "host name: use that name in --url"
			      : h->own_ca ? "nor by the CA file given with --ca-file"
			      : "if a private CA issued it, give that CA's "
			      "certificate with --ca-file FILE");
		break;
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		be_result_set(r, BE_TLS,
			      "cannot use the TLS certificate file: %s", detail);
		break;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		be_result_set(r, BE_REFUSED, "invalid URL %s: %s", h->url,
			      detail);
		break;
	case CURLE_LOGIN_DENIED:
	case CURLE_AUTH_ERROR:
		be_result_set(r, BE_AUTH,
			      "server refused the user name or password: %s",
			      detail);
		break;
	case CURLE_WEIRD_SERVER_REPLY:
		be_result_set(r, BE_PROTOCOL,
			      "server at %s did not answer HTTP: %s", h->url,
			      detail);
		break;
	case CURLE_SSL_CONNECT_ERROR:
		be_result_set(r, BE_NETWORK,
			      "TLS handshake with %s failed (is it an https server?): %s",
			      h->host, detail);
		break;
	case CURLE_OUT_OF_MEMORY:
		be_result_set(r, BE_NOMEM, "out of memory in libcurl");
		break;
	default:
		/* TLS handshake, reset, truncated body: transient */
		be_result_set(r, BE_NETWORK, "connection to %s failed: %s",
			      h->host, detail);
		break;
	}
}

static enum be_status post_once(struct http_session *h,
				const struct http_request *rq,
				struct http_response *resp, struct be_result *r)
{
	struct xfer x = { .rq = rq, .resp = resp, .curl = h->curl };
	CURL *c = h->curl;
	const char *what = rq->what ? rq->what : "request";
	double secs = 0;

	be_result_ok(r);
	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body, HTTP_ERROR_BODY_CAP);
	h->errbuf[0] = 0;
	h->gss_err[0] = 0;

	struct curl_slist *extra = NULL;
	char *url = NULL;
	if (rq->query) {
		url = xasprintf("%s%s", h->url, rq->query);
		curl_easy_setopt(c, CURLOPT_URL, url);
	}
	if (rq->headers) {
		for (struct curl_slist *l = h->headers; l; l = l->next)
			extra = curl_slist_append(extra, l->data);
		for (const char *const *p = rq->headers; *p; p++)
			extra = curl_slist_append(extra, *p);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, extra);
	}
	if (rq->options) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "OPTIONS");
	}
	curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, rq->once ? 1L : 0L);
	if (rq->get || rq->options) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)rq->body_len);
	}
	if (h->bearer)
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, h->token);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, rq->timeout_s > 0 ? rq->timeout_s
							       : 0L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT,
			 rq->stall_bps > 0 ? rq->stall_bps : 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
			 rq->stall_s > 0 ? rq->stall_s : 60L);

	bool bodyless = rq->get || rq->options;
	log_dbg(LC_HTTP, "%s %s %s (%zu bytes)",
		rq->options ? "OPTIONS" : rq->get ? "GET" : "POST", h->url, what,
		bodyless ? 0 : rq->body_len);
	if (h->verbose >= 2 && !bodyless && rq->secret)
		log_dbg(LC_HTTP, "> (%zu bytes not shown: they carry secrets)",
			rq->body_len);
	else if (h->verbose >= 2 && !bodyless)
		log_body(">", rq->body, rq->body_len);

	CURLcode rc = perform(h, &x);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &secs);
	if (url) {
		curl_easy_setopt(c, CURLOPT_URL, h->url);
		free(url);
	}
	if (extra) {
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
		curl_slist_free_all(extra);
	}
	if (rq->options) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
		curl_easy_setopt(c, CURLOPT_POST, 1L);
	}
	if (!x.received)   /* no body: still learn the status */
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);

	if (x.cancelled) {
		resp->cancelled = true;
		if (!resp->status)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE,
					  &resp->status);
		snprintf(r->msg, sizeof(r->msg), "cancelled");
		log_dbg(LC_HTTP, "%s cancelled after %.0f ms", what,
			secs * 1000);
		return BE_OK;
	} else if (x.abandoned) {
		be_result_set(r, BE_NETWORK, "abandoned: %s",
			      thread_abandon_why ? thread_abandon_why
						 : "the request waiting for it was interrupted");
		log_dbg(LC_HTTP, "%s abandoned after %.0f ms", what,
			secs * 1000);
	} else if (x.sink_abort) {
		be_result_set(r, BE_REFUSED, "transfer aborted by receiver");
	} else if (x.over_cap) {
		be_result_set(r, BE_NOMEM,
			      "answer to %s from %s larger than %zu MiB", what,
			      h->host, x.cap >> 20);
	} else if (rc != CURLE_OK &&
		   !(rc == CURLE_WRITE_ERROR && resp->body_truncated)) {
		grade_curl(h, rc, secs, r);
	}
	if (r->status == BE_OK) {
		read_headers(h, resp);
		if (!resp->content_type[0]) {
			char *ct = NULL;
			curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
			snprintf(resp->content_type,
				 sizeof(resp->content_type), "%s",
				 ct ? ct : "");
		}
		log_dbg(LC_HTTP, "%s: HTTP %ld, %s, %zu bytes%s in %.0f ms",
			what, resp->status, resp->content_type, x.received,
			x.stream ? " (streamed)" : "", secs * 1000);
		if (h->verbose >= 2 && !x.stream && rq->secret)
			log_dbg(LC_HTTP, "< (%zu bytes not shown: they carry secrets)",
				resp->body.len);
		else if (h->verbose >= 2 && !x.stream)
			log_body("<", resp->body.data ? resp->body.data : "",
				 resp->body.len);
	} else {
		log_dbg(LC_HTTP, "%s failed after %.0f ms: %s", what,
			secs * 1000, r->msg);
	}
	return r->status;
}

bool http_header(struct http_session *h, const char *name, char *out,
		 size_t len)
{
	struct curl_header *hh = NULL;
	if (curl_easy_header(h->curl, name, 0, CURLH_HEADER, -1, &hh) !=
		    CURLHE_OK || !hh->value)
		return false;
	snprintf(out, len, "%s", hh->value);
	return true;
}

/* Ask the token source for the token to send (again, after a 401, with
 * the refused one). */
static int bearer_token(struct http_session *h, bool after_401,
			struct be_result *r)
{
	char *tok = NULL;
	if (h->bearer(h->bearer_arg, after_401 ? h->token : NULL, &tok, r))
		return -1;
	if (h->token) {
		explicit_bzero(h->token, strlen(h->token));
		free(h->token);
	}
	h->token = tok;
	return 0;
}

enum be_status http_post(struct http_session *h, const struct http_request *rq,
			 struct http_response *resp, struct be_result *r)
{
	if (h->bearer && bearer_token(h, false, r)) {
		memset(resp, 0, sizeof(*resp));
		return r->status;
	}
	enum be_status st = post_once(h, rq, resp, r);
	if (st != BE_OK || !h->bearer || resp->status != 401 ||
	    resp->cancelled)
		return st;
	/* the token expired early or was revoked: a new one, once (a 401 is
	 * an answer to a request the server did not act on) */
	log_dbg(LC_HTTP, "%s: Bearer token refused (HTTP 401), getting a new one",
		rq->what ? rq->what : "request");
	if (bearer_token(h, true, r))
		return r->status;
	http_response_free(resp);
	return post_once(h, rq, resp, r);
}

enum be_status http_grade(const struct http_session *h,
			  const struct http_response *resp,
			  struct be_result *r)
{
	long st = resp->status;

	be_result_ok(r);
	if (st / 100 == 2)
		return BE_OK;
	snprintf(r->code, sizeof(r->code), "HTTP %ld", st);
	r->retry_after_ms = resp->retry_after_ms;
	if (st == 401 && h->auth == HTTP_AUTH_NEGOTIATE && h->gss_err[0])
		be_result_set(r, BE_AUTH,
			      "Kerberos sign-in failed (HTTP 401): %s; is there a valid ticket (klist, kinit)?",
			      h->gss_err);
	else if (st == 401 && h->auth == HTTP_AUTH_NEGOTIATE)
		be_result_set(r, BE_AUTH,
			      "server refused Kerberos sign-in (HTTP 401): is there a valid ticket (klist, kinit) and does the server offer Negotiate?");
	else if (st == 401 && h->auth == HTTP_AUTH_BEARER)
		be_result_set(r, BE_AUTH,
			      "server refused the OAuth2 access token (HTTP 401)");
	else if (st == 401)
		be_result_set(r, BE_AUTH,
			      "server refused the user name or password (HTTP 401)");
	else if (st == 403)
		be_result_set(r, BE_AUTH,
			      "server refused access for this user (HTTP 403)");
	else if (st == 429)
		be_result_set(r, BE_THROTTLED,
			      "server is throttling requests (HTTP 429)");
	else if (st / 100 == 3)
		be_result_set(r, BE_PROTOCOL,
			      "server at %s redirected to %.150s (HTTP %ld, not followed); check the EWS URL",
			      h->url, resp->location[0] ? resp->location : "?",
			      st);
	else if (st == 408)  /* a proxy timed the request out: not acted on */
		be_result_set(r, BE_NETWORK,
			      "server at %s timed the request out (HTTP 408)",
			      h->url);
	else if (st == 404)
		be_result_set(r, BE_REFUSED,
			      "server at %s answered HTTP 404 (not found); check the EWS URL",
			      h->url);
	else if (st / 100 == 4)
		be_result_set(r, BE_REFUSED, "server at %s answered HTTP %ld",
			      h->url, st);
	else if (st / 100 == 5)
		be_result_set(r, BE_NETWORK, "server at %s answered HTTP %ld",
			      h->url, st);
	else
		be_result_set(r, BE_PROTOCOL,
			      "server at %s answered with HTTP status %ld",
			      h->url, st);
	return r->status;
}

bool http_is_xml(const char *ct)
{
	size_t n = strcspn(ct, ";");
	while (n && ct[n - 1] == ' ')
		n--;
	if ((n == 8 && !strncasecmp(ct, "text/xml", 8)) ||
	    (n == 15 && !strncasecmp(ct, "application/xml", 15)))
		return true;
	/* application/soap+xml and other +xml types */
	return n > 4 && !strncasecmp(ct + n - 4, "+xml", 4) &&
	       memchr(ct, '/', n);
}
