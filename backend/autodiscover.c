/*
 * autodiscover.c - Autodiscover (see autodiscover.h): the candidate URLs,
 * POX and v2 JSON requests, redirections with a hop limit and loop check,
 * the SRV lookup and the result cache.  The parsers of the answers are in
 * autodiscover_parse.c.
 */
#include "autodiscover.h"
#include "http.h"
#include "json.h"
#include "oauth2.h"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POX_REQUEST_NS \
	"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
#define POX_RESPONSE_SCHEMA \
	"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

/* --- requests --------------------------------------------------------- */

struct run {
	const struct ad_config *cfg;
	char *visited[2 * AD_MAX_HOPS + 16];  /* owned: addresses and URLs */
	size_t nvisited;
	int hops;
	int tries;
	char last[200];           /* the last failure, for the final line */
	char hint[256];           /* a refused untrusted target: said instead */
};

static bool seen(struct run *run, const char *what)
{
	for (size_t i = 0; i < run->nvisited; i++)
		if (!strcasecmp(run->visited[i], what))
			return true;
	if (run->nvisited < sizeof(run->visited) / sizeof(run->visited[0]))
		run->visited[run->nvisited++] = xstrdup(what);
	return false;
}

static void attempt_failed(struct run *run, const char *url, const char *why)
{
	log_dbg(LC_MAIN, "autodiscover: %s: %s", url, why);
	snprintf(run->last, sizeof(run->last), "%.199s", why);
}

/* One request to url.  BE_OK with the answer in resp (free it). */
static enum be_status request(struct run *run, const char *url, bool get,
			      bool creds, const struct buf *body,
			      struct http_response *resp, struct be_result *r)
{
	const struct ad_config *cfg = run->cfg;
	const char *headers[] = {
		get ? "Accept: application/json" : "Content-Type: text/xml; charset=utf-8",
		"User-Agent: exchangefs/" EXCHANGEFS_VERSION, NULL,
	};
	struct http_config hc = {
		.url = url, .ca_file = cfg->ca_file, .insecure = cfg->insecure,
		.connect_timeout_s = 10, .headers = headers,
		.verbose = cfg->verbose,
	};
	if (creds) {
		hc.auth = (enum http_auth)cfg->auth;
		hc.user = cfg->user;
		hc.password = cfg->password;
		if (cfg->oauth2) {
			hc.bearer = oauth2_bearer;
			hc.bearer_arg = cfg->oauth2;
		}
	}
	struct http_request rq = {
		.get = get, .body = body ? body->data : NULL,
		.body_len = body ? body->len : 0, .cap = AD_ANSWER_MAX,
		.timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 30,
		.what = "Autodiscover",
	};
	memset(resp, 0, sizeof(*resp));
	run->tries++;
	log_dbg(LC_MAIN, "autodiscover: trying %s %s", get ? "GET" : "POST",
		url);
	struct http_session *h = http_open(&hc, r);
	if (!h)
		return r->status;
	http_post(h, &rq, resp, r);
	http_close(h);
	return r->status;
}

/* Where a 3xx answer points, if it may be followed (https only). */
static char *redirect_target(struct run *run, const char *url,
			     const struct http_response *resp)
{
	if (resp->status / 100 != 3)
		return NULL;
	if (!ad_is_https(resp->location)) {
		attempt_failed(run, url, resp->location[0]
			       ? "redirected to a URL that is not https (not followed)"
			       : "redirected without a Location");
		return NULL;
	}
	return xstrdup(resp->location);
}

/* POX at url (following redirectUrl and https 3xx).  0 with *a filled
 * (settings or redirectAddr), 1 to try the next candidate, -1 to stop
 * with r set (the hop limit, a loop). */
static int try_pox(struct run *run, const char *address, const char *start,
		   struct ad_answer *a, struct be_result *r)
{
	struct buf body;
	char *url = xstrdup(start);
	int rc = 1;

	buf_init(&body, 0);
	buf_puts(&body, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		 "<Autodiscover xmlns=\"" POX_REQUEST_NS "\">\n<Request>\n"
		 "<EMailAddress>");
	buf_put_xml_escaped(&body, address);
	buf_puts(&body, "</EMailAddress>\n<AcceptableResponseSchema>"
		 POX_RESPONSE_SCHEMA "</AcceptableResponseSchema>\n"
		 "</Request>\n</Autodiscover>\n");
	for (;;) {
		struct http_response resp;
		struct be_result hr;
		if (request(run, url, false, true, &body, &resp, &hr) != BE_OK) {
			attempt_failed(run, url, hr.msg);
			http_response_free(&resp);
			break;
		}
		char *to = redirect_target(run, url, &resp);
		if (to || resp.status / 100 != 2) {
			if (!to && resp.status / 100 != 3) {
				char why[160];
				snprintf(why, sizeof(why), "HTTP %ld%s",
					 resp.status, resp.status == 401
					 ? " (sign-in refused)" : "");
				attempt_failed(run, url, why);
			}
			http_response_free(&resp);
			if (!to)
				break;
			free(url);
			url = to;
			goto hop;
		}
		if (ad_parse_pox(resp.body.data, resp.body.len, a, &hr)) {
			attempt_failed(run, url, hr.msg);
			http_response_free(&resp);
			ad_answer_free(a);
			break;
		}
		http_response_free(&resp);
		if (a->action != AD_REDIRECT_URL) {
			log_dbg(LC_MAIN, "autodiscover: %s: %s", url,
				a->action == AD_SETTINGS ? "settings"
							 : "redirectAddr");
			rc = 0;
			break;
		}
		log_dbg(LC_MAIN, "autodiscover: %s: redirectUrl to %s", url,
			a->redirect);
		free(url);
		url = a->redirect;
		a->redirect = NULL;
		ad_answer_free(a);
hop:
		if (++run->hops > AD_MAX_HOPS) {
			be_result_set(r, BE_PROTOCOL,
				      "Autodiscover for %s: more than %d redirections, giving up",
				      run->cfg->address, AD_MAX_HOPS);
			rc = -1;
			break;
		}
		if (seen(run, url)) {
			be_result_set(r, BE_PROTOCOL,
				      "Autodiscover for %s: redirection loop (back to %.150s)",
				      run->cfg->address, url);
			rc = -1;
			break;
		}
	}
	free(url);
	buf_free(&body);
	return rc;
}

/* v2 JSON at https://<host>/... (following https 3xx). */
static int try_json_at(struct run *run, const char *address, const char *host,
		       struct ad_answer *a, struct be_result *r)
{
	char *url = xasprintf("https://%s/autodiscover/autodiscover.json/v1.0/%s?Protocol=EWS",
			      host, address);
	int rc = 1;
	for (int n = 0; n <= AD_MAX_HOPS; n++) {
		struct http_response resp;
		struct be_result hr;
		if (request(run, url, true, false, NULL, &resp, &hr) != BE_OK) {
			attempt_failed(run, url, hr.msg);
			http_response_free(&resp);
			break;
		}
		char *to = redirect_target(run, url, &resp);
		if (to) {
			http_response_free(&resp);
			free(url);
			url = to;
			continue;
		}
		if (resp.status / 100 != 2) {
			char why[64];
			snprintf(why, sizeof(why), "HTTP %ld", resp.status);
			attempt_failed(run, url, why);
		} else if (ad_parse_json(resp.body.data ? resp.body.data : "",
					 resp.body.len, a, &hr)) {
			attempt_failed(run, url, hr.msg);
		} else {
			log_dbg(LC_MAIN, "autodiscover: %s: settings", url);
			rc = 0;
		}
		http_response_free(&resp);
		break;
	}
	(void)r;
	free(url);
	return rc;
}

/* v2 JSON on autodiscover.<domain>, then, with OAuth2, on Exchange
 * Online's global endpoint (which answers for every mailbox it hosts,
 * whatever the domain's DNS says; it gives its own URL even for addresses
 * it does not host, and Exchange Online takes no passwords anyway). */
static int try_json(struct run *run, const char *address, const char *domain,
		    struct ad_answer *a, struct be_result *r)
{
	char *host = xasprintf("autodiscover.%s", domain);
	int rc = try_json_at(run, address, host, a, r);
	free(host);
	if (rc == 1 && run->cfg->oauth2)
		rc = try_json_at(run, address, AD_GLOBAL_V2_HOST, a, r);
	return rc;
}

/* The HTTP redirect method: plain GET without credentials; only a 3xx to
 * https is taken, and POX goes there. */
static char *http_redirect_url(struct run *run, const char *domain)
{
	char *url = xasprintf("http://autodiscover.%s/autodiscover/autodiscover.xml",
			      domain);
	struct http_response resp;
	struct be_result hr;
	char *to = NULL;
	if (request(run, url, true, false, NULL, &resp, &hr) != BE_OK)
		attempt_failed(run, url, hr.msg);
	else if (!(to = redirect_target(run, url, &resp)) &&
		 resp.status / 100 != 3)
		attempt_failed(run, url, "no redirection to https");
	else if (to)
		log_dbg(LC_MAIN, "autodiscover: %s: redirected to %s", url, to);
	http_response_free(&resp);
	free(url);
	return to;
}

/* The SRV record's target as an https Autodiscover URL, or NULL. */
static char *srv_url(struct run *run, const char *domain)
{
	char *name = xasprintf("_autodiscover._tcp.%s", domain);
	unsigned char ans[4096];
	struct __res_state rs;
	char *target = NULL, *url = NULL;

	memset(&rs, 0, sizeof(rs));
	if (res_ninit(&rs)) {
		attempt_failed(run, name, "cannot initialise the DNS resolver");
		free(name);
		return NULL;
	}
	const char *server = getenv("EXCHANGEFS_DNS_SERVER");
	if (server && *server) {
		char ip[64];
		unsigned port = 53;
		struct sockaddr_in sa = { .sin_family = AF_INET };
		if (sscanf(server, "%63[0-9.]:%u", ip, &port) >= 1 &&
		    inet_pton(AF_INET, ip, &sa.sin_addr) == 1 && port < 65536) {
			sa.sin_port = htons((uint16_t)port);
			rs.nsaddr_list[0] = sa;
			rs.nscount = 1;
		}
	}
	run->tries++;
	log_dbg(LC_MAIN, "autodiscover: looking up DNS SRV %s", name);
	int n = res_nquery(&rs, name, ns_c_in, ns_t_srv, ans, sizeof(ans));
	if (n < 0)
		attempt_failed(run, name, "no SRV record");
	else if (ad_parse_srv(ans, (size_t)n, &target))
		attempt_failed(run, name, "no usable SRV record");
	else {
		char *colon = strrchr(target, ':');
		url = !strcmp(colon, ":443")
			? xasprintf("https://%.*s/autodiscover/autodiscover.xml",
				    (int)(colon - target), target)
			: xasprintf("https://%s/autodiscover/autodiscover.xml",
				    target);
		log_dbg(LC_MAIN, "autodiscover: %s: %s", name, url);
	}
	res_nclose(&rs);
	free(target);
	free(name);
	return url;
}

/* Whether host is name or below it ("mail.example.com" under
 * "example.com"), case-insensitively. */
static bool host_under(const char *host, const char *name, size_t nlen)
{
	size_t hl = strlen(host);
	while (nlen && name[nlen - 1] == '.')
		nlen--;
	if (!nlen || hl < nlen || strncasecmp(host + hl - nlen, name, nlen))
		return false;
	return hl == nlen || host[hl - nlen - 1] == '.';
}

/* A target learnt without authentication (a plain-http redirect, an SRV
 * record) gets the credentials only inside the address's domain or a
 * domain the user trusts (--autodiscover-trust): anyone on the path could
 * have answered, and an https host of theirs has a valid certificate too.
 * Outlook asks the user at this point; a daemon cannot. */
static bool target_trusted(struct run *run, const char *domain,
			   const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL;
	bool ok = false;
	if (!u) {
		fprintf(stderr, "exchangefs: out of memory (curl_url)\n");
		abort();
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		ok = host_under(host, domain, strlen(domain));
		for (const char *t = run->cfg->trust; !ok && t && *t;) {
			size_t n = strcspn(t, ", ");
			ok = n && host_under(host, t, n);
			t += n;
			t += strspn(t, ", ");
		}
		if (!ok) {
			snprintf(run->hint, sizeof(run->hint),
				 "an unauthenticated lookup leads outside %.60s to %.60s, not followed (use --url, or --autodiscover-trust if that server is yours)",
				 domain, host);
			log_dbg(LC_MAIN, "autodiscover: %s", run->hint);
		}
	}
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* Every method for one address.  0 with a (settings or redirectAddr),
 * 1 when none answered, -1 to stop (r set). */
static int discover_address(struct run *run, const char *address,
			    struct ad_answer *a, struct be_result *r)
{
	const char *domain = strrchr(address, '@') + 1;
	bool json_first = run->cfg->oauth2 != NULL;
	int rc = 1;
	char *url;

	if (json_first && (rc = try_json(run, address, domain, a, r)) != 1)
		return rc;
	url = xasprintf("https://%s/autodiscover/autodiscover.xml", domain);
	rc = try_pox(run, address, url, a, r);
	free(url);
	if (rc != 1)
		return rc;
	url = xasprintf("https://autodiscover.%s/autodiscover/autodiscover.xml",
			domain);
	rc = try_pox(run, address, url, a, r);
	free(url);
	if (rc != 1)
		return rc;
	url = http_redirect_url(run, domain);
	if (url && target_trusted(run, domain, url))
		rc = try_pox(run, address, url, a, r);
	free(url);
	if (rc != 1)
		return rc;
	url = srv_url(run, domain);
	if (url && target_trusted(run, domain, url))
		rc = try_pox(run, address, url, a, r);
	free(url);
	if (rc != 1)
		return rc;
	if (!json_first)
		rc = try_json(run, address, domain, a, r);
	return rc;
}

/* --- cache ------------------------------------------------------------ */

static int cache_read(const char *path, struct ad_result *res)
{
	char data[8192];
	struct json_obj o;
	int64_t exp = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, data, sizeof(data));
	close(fd);
	if (n <= 0 || json_parse_object(data, (size_t)n, &o, NULL, 0)) {
		if (n > 0)
			json_free(&o);
		return -1;
	}
	if (!json_int(&o, "expires_at", &exp) && exp > (int64_t)time(NULL) &&
	    ad_is_https(json_str(&o, "ews_url"))) {
		res->ews_url = xstrdup(json_str(&o, "ews_url"));
		res->eas_url = xstrdup(json_str(&o, "eas_url"));
		res->mapi_url = xstrdup(json_str(&o, "mapi_url"));
		res->from_cache = true;
		rc = 0;
	}
	json_free(&o);
	return rc;
}

static void cache_write(const char *path, const struct ad_result *res)
{
	struct buf b;
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	if (slash) {
		*slash = 0;
		for (char *p = dir + 1; *p; p++)
			if (*p == '/') {
				*p = 0;
				mkdir(dir, 0700);
				*p = '/';
			}
		mkdir(dir, 0700);
	}
	free(dir);
	buf_init(&b, 0);
	buf_puts(&b, "{\"ews_url\": ");
	json_put_string(&b, res->ews_url);
	if (res->eas_url) {
		buf_puts(&b, ", \"eas_url\": ");
		json_put_string(&b, res->eas_url);
	}
	if (res->mapi_url) {
		buf_puts(&b, ", \"mapi_url\": ");
		json_put_string(&b, res->mapi_url);
	}
	buf_printf(&b, ", \"expires_at\": %lld}\n",
		   (long long)time(NULL) + AD_CACHE_TTL_S);
	char *tmp = xasprintf("%s.tmp%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 && !write_all(fd, b.data, b.len) && !close(fd)) {
		if (rename(tmp, path))
			unlink(tmp);
	} else {
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		log_dbg(LC_MAIN, "autodiscover: cannot write the cache %s", path);
	}
	free(tmp);
	buf_free(&b);
}

enum be_status autodiscover(const struct ad_config *cfg, struct ad_result *res,
			    struct be_result *r)
{
	struct run run = { .cfg = cfg };
	char *address = xstrdup(cfg->address);
	struct ad_answer a;
	int rc;

	memset(res, 0, sizeof(*res));
	be_result_ok(r);
	if (!strchr(address, '@') || !strrchr(address, '@')[1]) {
		be_result_set(r, BE_REFUSED,
			      "Autodiscover needs an e-mail address, not '%.100s'",
			      address);
		free(address);
		return r->status;
	}
	if (cfg->cache_file && !cfg->fresh && !cache_read(cfg->cache_file, res)) {
		log_dbg(LC_MAIN, "autodiscover: %s from the cache %s: %s",
			address, cfg->cache_file, res->ews_url);
		res->address = address;
		return BE_OK;
	}
	seen(&run, address);
	for (;;) {
		memset(&a, 0, sizeof(a));
		rc = discover_address(&run, address, &a, r);
		if (rc)
			break;
		if (a.action == AD_SETTINGS) {
			*res = a.urls;
			memset(&a.urls, 0, sizeof(a.urls));
			ad_answer_free(&a);
			break;
		}
		log_dbg(LC_MAIN, "autodiscover: %s: redirectAddr to %s",
			address, a.redirect);
		free(address);
		address = a.redirect;
		a.redirect = NULL;
		ad_answer_free(&a);
		if (++run.hops > AD_MAX_HOPS) {
			be_result_set(r, BE_PROTOCOL,
				      "Autodiscover for %s: more than %d redirections, giving up",
				      cfg->address, AD_MAX_HOPS);
			rc = -1;
			break;
		}
		if (seen(&run, address)) {
			be_result_set(r, BE_PROTOCOL,
				      "Autodiscover for %s: redirection loop (back to %.150s)",
				      cfg->address, address);
			rc = -1;
			break;
		}
	}
	if (rc == 1 && run.hint[0])
		be_result_set(r, BE_REFUSED,
			      "Autodiscover found no server for %s: %s",
			      cfg->address, run.hint);
	else if (rc == 1)
		be_result_set(r, BE_REFUSED,
			      "Autodiscover found no server for %s (%d attempts; the last: %s; -d shows each)",
			      cfg->address, run.tries, run.last);
	if (rc == 0) {
		res->address = address;
		address = NULL;
		log_dbg(LC_MAIN, "autodiscover: EWS URL %s", res->ews_url);
		if (cfg->cache_file)
			cache_write(cfg->cache_file, res);
	}
	free(address);
	for (size_t i = 0; i < run.nvisited; i++)
		free(run.visited[i]);
	return r->status;
}
