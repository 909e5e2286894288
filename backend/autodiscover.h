/*
 * autodiscover.h - find the EWS URL (and the ActiveSync and MAPI/HTTP URLs
 * where the server says them) for an e-mail address, as Outlook does:
 *
 *   1. POX Autodiscover: POST an Autodiscover request for the address to
 *      https://<domain>/autodiscover/autodiscover.xml, then
 *      https://autodiscover.<domain>/autodiscover/autodiscover.xml;
 *   2. the HTTP redirect method: GET http://autodiscover.<domain>/...
 *      without credentials, and only a 301/302 to an https URL is followed;
 *   3. the DNS SRV record _autodiscover._tcp.<domain>: POX at its target.
 *      The targets of 2 and 3 are learnt without authentication: they get
 *      the credentials only inside <domain> or a domain in cfg->trust;
 *   4. Autodiscover v2 (JSON): GET https://autodiscover.<domain>/autodiscover/
 *      autodiscover.json/v1.0/<address>?Protocol=EWS, and with OAuth2 the
 *      same on Exchange Online's AD_GLOBAL_V2_HOST (with OAuth2 these go
 *      first, as Exchange Online answers them without sign-in).
 *
 * An answer may redirect to another address (redirectAddr: start over for
 * it) or URL (redirectUrl, https only); at most AD_MAX_HOPS redirections,
 * and a redirection back to an address or URL already tried is a loop.
 * Every attempt and why it failed is logged with -d (category main).  TLS
 * is verified at every step (unless insecure).  The result is cached in a
 * file for AD_CACHE_TTL_S.
 *
 * For tests: $EXCHANGEFS_DNS_SERVER=IP:PORT asks that DNS server for the
 * SRV record; $EXCHANGEFS_CONNECT_TO (backend/http.h) points names at
 * local ports.
 */
#ifndef EXCHANGEFS_AUTODISCOVER_H
#define EXCHANGEFS_AUTODISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"

#define AD_MAX_HOPS 10
#define AD_ANSWER_MAX ((size_t)1 << 20)
#define AD_CACHE_TTL_S (24 * 3600)
#define AD_GLOBAL_V2_HOST "outlook.office365.com"

struct ad_config {
	const char *address;      /* the e-mail address */
	const char *user;         /* credentials for POX; NULL = none */
	const char *password;
	int auth;                 /* enum http_auth */
	struct oauth2 *oauth2;    /* auth = Bearer */
	const char *ca_file;
	bool insecure;
	long timeout_s;           /* per request; 0 = 30 */
	int verbose;
	const char *trust;        /* comma-separated domains whose hosts may
				     get the credentials when a plain-http
				     redirect or an SRV record names them
				     (besides the address's own domain) */
	const char *cache_file;   /* NULL = no cache */
	bool fresh;               /* ignore a cached result (then cache anew) */
};

struct ad_result {
	char *ews_url;            /* owned */
	char *eas_url;            /* owned, NULL if not said */
	char *mapi_url;           /* owned, NULL if not said */
	char *address;            /* owned: the address it ended at */
	bool from_cache;
};
void ad_result_free(struct ad_result *res);

/* Find the URLs.  BE_OK with res filled, or a graded failure with one line
 * (every attempt's reason is in the -d log). */
enum be_status autodiscover(const struct ad_config *cfg, struct ad_result *res,
			    struct be_result *r);

/* --- the parsers (server input: fuzzed) --- */
enum ad_action { AD_SETTINGS = 1, AD_REDIRECT_ADDR, AD_REDIRECT_URL };
struct ad_answer {
	enum ad_action action;
	char *redirect;           /* owned: address or URL of a redirect */
	struct ad_result urls;    /* AD_SETTINGS */
};
void ad_answer_free(struct ad_answer *a);
/* A POX Autodiscover answer: 0, or -1 with r set (BE_PROTOCOL for a
 * malformed answer, BE_REFUSED for an Autodiscover error such as 500
 * "The e-mail address cannot be found"). */
int ad_parse_pox(const char *data, size_t len, struct ad_answer *a,
		 struct be_result *r);
/* An Autodiscover v2 JSON answer ({"Protocol":"EWS","Url":...}). */
int ad_parse_json(const char *data, size_t len, struct ad_answer *a,
		  struct be_result *r);
/* Whether url is https://something. */
bool ad_is_https(const char *url);
/* A DNS answer to an SRV query: the best target ("host:port", owned; the
 * lowest priority, then the highest weight) or -1. */
int ad_parse_srv(const unsigned char *msg, size_t len, char **target);

#endif
