/*
 * signin.c - how a mount signs in: the method (--auth, or OAuth2 when
 * `exchangefs login` stored tokens for the address, else Basic/NTLM with a
 * password from options.c), Autodiscover when no --url was given, and the
 * `exchangefs login` command (OAuth2 device code, or --browser: PKCE).
 */
#include "fs.h"
#include "backend/autodiscover.h"
#include "backend/http.h"
#include "backend/oauth2.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oauth_config(const struct options *o, struct oauth2_config *oc)
{
	memset(oc, 0, sizeof(*oc));
	oc->authority = o->oauth_authority;
	oc->tenant = o->oauth_tenant;
	oc->client_id = o->oauth_client_id;
	oc->scope = o->oauth_scope ? o->oauth_scope
		  : !strcmp(o->protocol, "eas") ? OAUTH2_EAS_SCOPE : NULL;
	oc->ca_file = o->ca_file;
	oc->insecure = o->insecure;
	oc->timeout_s = o->timeout;
	oc->verbose = log_debug_on(LC_HTTP) ? 2 : 0;
}

/* $XDG_CACHE_HOME/exchangefs/autodiscover/<address>.json */
static char *autodiscover_cache(const char *address)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	char *base, *path;
	if (xdg && *xdg == '/') {
		base = xasprintf("%s/exchangefs", xdg);
	} else {
		const char *home = getenv("HOME");
		if (!home || !*home) {
			struct passwd *pw = getpwuid(getuid());
			home = pw ? pw->pw_dir : "/tmp";
		}
		base = xasprintf("%s/.cache/exchangefs", home);
	}
	path = xasprintf("%s/autodiscover/%s.json", base, address);
	for (char *p = path + strlen(base) + 14; *p; p++)
		if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '_';
	free(base);
	return path;
}

static int prepare(struct options *o, struct signin *si, bool fresh,
		   struct ad_result *found)
{
	struct be_result r;
	struct oauth2_config oc;
	const char *who = o->address ? o->address : o->user;

	memset(si, 0, sizeof(*si));
	oauth_config(o, &oc);
	if (!o->auth)
		si->auth = o->address && oauth2_have_tokens(o->address)
				   ? HTTP_AUTH_BEARER : HTTP_AUTH_AUTO;
	else if (!strcmp(o->auth, "basic"))
		si->auth = HTTP_AUTH_BASIC;
	else if (!strcmp(o->auth, "ntlm"))
		si->auth = HTTP_AUTH_NTLM;
	else if (!strcmp(o->auth, "kerberos"))
		si->auth = HTTP_AUTH_NEGOTIATE;
	else
		si->auth = HTTP_AUTH_BEARER;

	if (si->auth == HTTP_AUTH_BEARER) {
		if (!who || !strchr(who, '@')) {
			fprintf(stderr, "exchangefs: OAuth2 needs the e-mail "
				"address (exchangefs ADDRESS MOUNTPOINT)\n");
			return -1;
		}
		si->oauth2 = oauth2_open(who, &oc, &r);
		if (!si->oauth2) {
			fprintf(stderr, "exchangefs: %s\n", r.msg);
			return -1;
		}
	} else if (si->auth != HTTP_AUTH_NEGOTIATE) {
		si->password = options_password(o);
		if (!si->password)
			return -1;
	}
	if (o->url && !fresh)
		return 0;

	char *cache = autodiscover_cache(o->address);
	struct ad_config ac = {
		.address = o->address, .user = o->user,
		.password = si->password, .auth = si->auth,
		.oauth2 = si->oauth2, .ca_file = o->ca_file,
		.insecure = o->insecure, .timeout_s = o->timeout,
		.verbose = log_debug_on(LC_HTTP) ? 2 : 0,
		.cache_file = cache, .fresh = fresh,
		.trust = o->autodiscover_trust,
	};
	struct ad_result res;
	if (o->foreground && !fresh)
		fprintf(stderr, "exchangefs: looking up the server of %s "
			"(Autodiscover)...\n", o->address);
	enum be_status st = autodiscover(&ac, &res, &r);
	free(cache);
	if (st != BE_OK) {
		fprintf(stderr, "exchangefs: %s\n", r.msg);
		return -1;
	}
	if (o->foreground && !fresh)
		fprintf(stderr, "exchangefs: %s is served by %s%s\n",
			o->address, res.ews_url,
			res.from_cache ? " (cached; Autodiscover again in a day)"
				       : "");
	if (found) {
		*found = res;
		return 0;
	}
	const char *h = strstr(res.ews_url, "://");
	if (!strcmp(o->protocol, "eas") && h)
		/* Exchange serves ActiveSync on the host that serves EWS */
		o->url = xasprintf("%.*s/Microsoft-Server-ActiveSync",
				   (int)(h + 3 + strcspn(h + 3, "/") - res.ews_url),
				   res.ews_url);
	else
		o->url = xstrdup(res.ews_url);
	if (res.from_cache)
		si->ad_cache = autodiscover_cache(o->address);
	ad_result_free(&res);
	return 0;
}

int signin_prepare(struct options *o, struct signin *si)
{
	return prepare(o, si, false, NULL);
}

int signin_discover(struct options *o)
{
	struct signin si;
	struct ad_result res;
	int rc = prepare(o, &si, true, &res);
	if (!rc) {
		printf("address: %s\news_url: %s\n", res.address, res.ews_url);
		if (res.eas_url)
			printf("activesync_url: %s\n", res.eas_url);
		if (res.mapi_url)
			printf("mapi_url: %s\n", res.mapi_url);
		ad_result_free(&res);
	}
	signin_free(&si);
	return rc ? 1 : 0;
}

void signin_free(struct signin *si)
{
	if (si->password) {
		explicit_bzero(si->password, strlen(si->password));
		free(si->password);
	}
	oauth2_free(si->oauth2);
	free(si->ad_cache);
	memset(si, 0, sizeof(*si));
}

void signin_forget(struct signin *si)
{
	if (si->ad_cache && unlink(si->ad_cache) == 0)
		log_dbg(LC_MAIN, "autodiscover: dropped the cached answer %s",
			si->ad_cache);
}

int signin_login(const struct options *o)
{
	struct oauth2_config oc;
	struct be_result r;
	enum be_status st;

	oauth_config(o, &oc);
	if (o->browser)
		st = oauth2_login_browser(o->address, &oc,
					  getenv("DISPLAY") || getenv("WAYLAND_DISPLAY"),
					  stdout, &r);
	else
		st = oauth2_login_device(o->address, &oc, stdout, &r);
	if (st != BE_OK) {
		fprintf(stderr, "exchangefs: %s\n", r.msg);
		return 1;
	}
	return 0;
}
