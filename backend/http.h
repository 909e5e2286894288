/*
 * http.h - a thin libcurl wrapper: one connection (easy handle) per session,
 * reused across requests (keep-alive), POST only.
 *
 * Policy:
 *   - TLS is verified (peer and host name) unless insecure; ca_file adds a
 *     trust anchor instead of the system store.
 *   - Auth (http_config.auth): Basic or NTLM, whichever the server offers
 *     (curl picks, the default), or only one of Basic, NTLM, Negotiate
 *     (Kerberos through GSS-API and the user's ticket cache), or a Bearer
 *     token from a callback (OAuth2): fetched before every request, asked
 *     again once after a 401 (the callback refreshes it), then the request
 *     is sent again.  Secrets go to curl only, never into a URL, a log line
 *     or an error; bodies marked secret are never logged.
 *   - $EXCHANGEFS_CONNECT_TO (like curl --connect-to, comma-separated
 *     HOST:PORT:CONNECT-HOST:CONNECT-PORT) sends connections for a name
 *     elsewhere while TLS still verifies the name: for tests and for
 *     reaching a server by another address.
 *   - Only http and https; redirects are NOT followed: a POST that is
 *     redirected is almost always a wrong URL or a login page, and following
 *     it would resend the body (and, to another host, the credentials).
 *     http_grade() reports a 3xx with its Location.
 *   - Every answer body has a cap (or goes to a streaming sink).
 *   - Failures are graded into be_result with one line a user understands.
 *
 * A session is not thread-safe (like be_session); curl's global init is
 * done once, thread-safely, by http_open.
 */
#ifndef EXCHANGEFS_HTTP_H
#define EXCHANGEFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "util.h"

#define HTTP_DEFAULT_CAP ((size_t)64 << 20)  /* bodies held in memory */
#define HTTP_ERROR_BODY_CAP ((size_t)1 << 20) /* kept of a non-2xx body */

enum http_auth {
	HTTP_AUTH_AUTO = 0,       /* Basic or NTLM, as the server offers */
	HTTP_AUTH_BASIC,
	HTTP_AUTH_NTLM,
	HTTP_AUTH_NEGOTIATE,      /* Kerberos/SPNEGO via GSS-API */
	HTTP_AUTH_BEARER,         /* OAuth2: token from http_config.bearer */
};

/* The Bearer token source: *token (owned by the caller after the call) for
 * the next request.  rejected is NULL, or the token the server just refused
 * with 401 (then get a new one if the source still has that one).  Returns
 * 0, or -1 with *r set (e.g. BE_AUTH "sign-in expired ..."). */
typedef int (*http_bearer_fn)(void *arg, const char *rejected, char **token,
			      struct be_result *r);

struct http_config {
	const char *url;          /* default target; must be http(s) */
	enum http_auth auth;
	http_bearer_fn bearer;    /* HTTP_AUTH_BEARER: the token source */
	void *bearer_arg;
	const char *user;         /* NULL = no authentication */
	const char *password;
	const char *ca_file;      /* NULL = system store */
	bool insecure;
	long connect_timeout_s;   /* 0 = 30 s */
	const char *const *headers; /* NULL-terminated "Name: value" lines
				       sent with every request; copied */
	int verbose;              /* >= 2: log bodies (debug category http) */
};

struct http_session;

/* Check the URL and create the handle (no network traffic yet).  NULL with
 * *r set (BE_REFUSED "invalid URL ...") on failure. */
struct http_session *http_open(const struct http_config *cfg,
			       struct be_result *r);
/* A backend's session from its be_config (URL, sign-in, TLS, verbosity)
 * and its own headers; *call_timeout_s (connect + request) and *stall_s
 * get the limits the config asks for (defaults 30 s and 60 s). */
struct http_session *http_open_backend(const struct be_config *cfg,
				       const char *const *headers,
				       long *call_timeout_s, long *stall_s,
				       struct be_result *r);
void http_close(struct http_session *h);
/* The URL without any user info, for messages (owned by the session). */
const char *http_url(const struct http_session *h);

struct http_response {
	long status;              /* HTTP status of the final answer */
	char content_type[128];   /* "" if none */
	char location[512];       /* Location of a 3xx, "" otherwise */
	uint32_t retry_after_ms;  /* from Retry-After, 0 if none */
	struct buf body;          /* the body, unless streamed (owned) */
	bool body_truncated;      /* a non-2xx body exceeded its cap */
	bool cancelled;           /* rq->cancelled ended the transfer: what
				     arrived is incomplete (see http_post) */
};
void http_response_free(struct http_response *resp);

/* Streaming sink: receives the body of a 2xx answer in pieces, after
 * resp->status and resp->content_type are filled.  Returns 0, or -1 to
 * abort the transfer. */
typedef int (*http_sink_fn)(void *arg, const struct http_response *resp,
			    const void *data, size_t len);

struct http_request {
	const void *body;
	size_t body_len;
	size_t cap;           /* body cap; 0 = HTTP_DEFAULT_CAP */
	long timeout_s;       /* whole transfer; 0 = none, only the
				 low-speed limit below */
	long stall_s;         /* abort if under stall_bps for this long;
				 0 = 60 s */
	long stall_bps;       /* the low-speed limit in bytes/s; 0 = 1 KiB/s
				 (a stream that is idle between keep-alives
				 wants 1: "no byte for stall_s") */
	http_sink_fn sink;    /* non-NULL: stream 2xx bodies here */
	void *sink_arg;
	bool (*cancelled)(void *arg); /* non-NULL: polled at least every
				 250 ms, even while no byte arrives, and
				 whenever bytes do; true abandons the
				 transfer */
	void *cancel_arg;
	const char *what;     /* operation name for logs, e.g. "GetItem" */
	const char *query;    /* non-NULL: appended to the session URL
				 ("?Cmd=Sync&..."; ActiveSync) */
	const char *const *headers; /* NULL-terminated "Name: value" lines
				 for this request only, after the
				 session's */
	bool options;         /* send OPTIONS (no body) instead of POST */
	bool get;             /* GET instead of POST (body ignored) */
	bool secret;          /* the bodies carry secrets: never log them */
	bool once;            /* not safe to send twice (it creates
				 something): send it on a new connection.
				 libcurl silently sends a request again when
				 a kept-alive connection it reused turns out
				 closed before any answer - after the server
				 may have acted on it. */
};

/* POST (or GET) rq to the session URL.  BE_OK when an HTTP answer was received,
 * whatever its status (resp filled; free it with http_response_free even
 * on failure).  Otherwise a graded failure: BE_NETWORK (resolve, connect,
 * reset, timeout), BE_TLS (certificate), BE_NOMEM (over the cap),
 * BE_REFUSED (the sink aborted: "transfer aborted by receiver").
 * Cancellation is not a failure: when rq->cancelled said so, the transfer
 * is abandoned (its connection closed) and http_post returns BE_OK with
 * resp->cancelled set and r->msg "cancelled"; resp->status is that of the
 * answer if its headers had arrived, else 0, and its body is incomplete. */
enum be_status http_post(struct http_session *h, const struct http_request *rq,
			 struct http_response *resp, struct be_result *r);

/* A hook polled like rq->cancelled by every transfer the calling thread
 * makes until it is set again (NULL: none): true abandons the transfer
 * (its connection closed) and http_post fails with BE_NETWORK,
 * "abandoned: <why>".  For work done on behalf of a FUSE request the user
 * interrupted (cache/fetch.c), and for the daemon's own threads (sync,
 * applier, prefetch) when it stops, whatever backend call they are in. */
void http_thread_abandon(bool (*fn)(void *arg), void *arg, const char *why);

/* The value of a header of the last answer (copied into out, at most
 * len - 1 bytes); false if it had none. */
bool http_header(struct http_session *h, const char *name, char *out,
		 size_t len);

/* Grade a non-2xx status: 401/403 BE_AUTH, 429 BE_THROTTLED, 3xx
 * BE_PROTOCOL naming the Location, other 4xx BE_REFUSED, 5xx BE_NETWORK
 * (retry_after_ms from Retry-After where sent).  2xx gives BE_OK. */
enum be_status http_grade(const struct http_session *h,
			  const struct http_response *resp,
			  struct be_result *r);

/* Whether a Content-Type is XML (text/xml, application/xml, +xml types),
 * with or without parameters. */
bool http_is_xml(const char *content_type);

#endif
