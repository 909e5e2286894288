/*
 * autodiscover_parse.c - the parsers of what Autodiscover servers answer
 * (see autodiscover.h): POX answers (libxml2 through backend/xml.c), v2
 * JSON answers (backend/json.c) and DNS SRV answers (libresolv's ns_*
 * parser).  Pure functions of their input: what fuzz_signin calls.
 */
#include "autodiscover.h"
#include "json.h"
#include "xml.h"

#include <arpa/nameser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ad_result_free(struct ad_result *res)
{
	free(res->ews_url);
	free(res->eas_url);
	free(res->mapi_url);
	free(res->address);
	memset(res, 0, sizeof(*res));
}

void ad_answer_free(struct ad_answer *a)
{
	free(a->redirect);
	ad_result_free(&a->urls);
	memset(a, 0, sizeof(*a));
}

/* --- parsers ---------------------------------------------------------- */

/* Element children are matched by local name: Exchange versions and
 * other servers differ in the namespaces (http/https schema URIs). */
static xmlNode *child(const xmlNode *p, const char *name)
{
	for (xmlNode *n = p ? p->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE &&
		    !strcmp((const char *)n->name, name))
			return n;
	return NULL;
}

static xmlNode *next(const xmlNode *n, const char *name)
{
	for (n = n->next; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE &&
		    !strcmp((const char *)n->name, name))
			return (xmlNode *)n;
	return NULL;
}

/* Text of a child, trimmed; owned or NULL (absent, empty or too long). */
static char *child_text(const xmlNode *p, const char *name)
{
	char *t = NULL;
	xmlNode *n = child(p, name);
	if (!n || xml_text(n, 2048, &t))
		return NULL;
	char *s = t;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
		       s[len - 1] == '\r' || s[len - 1] == '\n'))
		len--;
	char *out = len ? xstrndup(s, len) : NULL;
	free(t);
	return out;
}

bool ad_is_https(const char *url)
{
	return url && !strncasecmp(url, "https://", 8) && url[8];
}

int ad_parse_pox(const char *data, size_t len, struct ad_answer *a,
		 struct be_result *r)
{
	char err[200];
	int rc = -1;

	memset(a, 0, sizeof(*a));
	be_result_ok(r);
	xmlDoc *doc = xml_parse(data, len, AD_ANSWER_MAX, err, sizeof(err));
	if (!doc) {
		be_result_set(r, BE_PROTOCOL, "not an Autodiscover answer: %s",
			      err);
		return -1;
	}
	xmlNode *root = xmlDocGetRootElement(doc);
	xmlNode *resp = root && !strcmp((const char *)root->name,
					"Autodiscover")
				? child(root, "Response") : NULL;
	if (!resp) {
		be_result_set(r, BE_PROTOCOL,
			      "not an Autodiscover answer (no Autodiscover/Response)");
		goto out;
	}
	xmlNode *error = child(resp, "Error");
	xmlNode *acct = child(resp, "Account");
	if (error || !acct) {
		char *code = child_text(error, "ErrorCode");
		char *msg = child_text(error, "Message");
		be_result_set(r, BE_REFUSED, "Autodiscover error %s: %.200s",
			      code ? code : "?", msg ? msg : "no settings");
		free(code);
		free(msg);
		goto out;
	}
	char *action = child_text(acct, "Action");
	if (action && !strcasecmp(action, "redirectAddr")) {
		a->action = AD_REDIRECT_ADDR;
		a->redirect = child_text(acct, "RedirectAddr");
		if (!a->redirect || !strchr(a->redirect, '@'))
			be_result_set(r, BE_PROTOCOL,
				      "Autodiscover redirectAddr without an address");
	} else if (action && !strcasecmp(action, "redirectUrl")) {
		a->action = AD_REDIRECT_URL;
		a->redirect = child_text(acct, "RedirectUrl");
		if (!ad_is_https(a->redirect))
			be_result_set(r, BE_PROTOCOL,
				      "Autodiscover redirectUrl is not an https URL");
	} else if (!action || !strcasecmp(action, "settings")) {
		a->action = AD_SETTINGS;
		/* EXPR (from outside) before EXCH (inside the network) */
		char *expr = NULL, *exch = NULL;
		for (xmlNode *p = child(acct, "Protocol"); p;
		     p = next(p, "Protocol")) {
			char *type = child_text(p, "Type"), *attr = NULL;
			xml_attr(p, "Type", 64, &attr);
			if (type && !strcmp(type, "EXPR") && !expr)
				expr = child_text(p, "EwsUrl");
			else if (type && !strcmp(type, "EXCH") && !exch)
				exch = child_text(p, "EwsUrl");
			else if (attr && !strcasecmp(attr, "mapiHttp") &&
				 !a->urls.mapi_url) {
				xmlNode *ms = child(p, "MailStore");
				a->urls.mapi_url = child_text(ms, "ExternalUrl");
				if (!a->urls.mapi_url)
					a->urls.mapi_url =
						child_text(ms, "InternalUrl");
			} else if (type && !strcasecmp(type, "MobileSync") &&
				   !a->urls.eas_url) {
				a->urls.eas_url = child_text(p, "Url");
			}
			free(type);
			free(attr);
		}
		a->urls.ews_url = expr ? expr : exch;
		free(expr == a->urls.ews_url ? exch : expr);
		if (!a->urls.ews_url)
			be_result_set(r, BE_REFUSED,
				      "Autodiscover answer names no EWS URL");
	} else {
		be_result_set(r, BE_PROTOCOL,
			      "Autodiscover answer with unknown Action '%.40s'",
			      action);
	}
	free(action);
	rc = r->status == BE_OK ? 0 : -1;
out:
	xmlFreeDoc(doc);
	return rc;
}

int ad_parse_json(const char *data, size_t len, struct ad_answer *a,
		  struct be_result *r)
{
	struct json_obj o;
	char err[200];

	memset(a, 0, sizeof(*a));
	be_result_ok(r);
	if (json_parse_object(data, len, &o, err, sizeof(err))) {
		be_result_set(r, BE_PROTOCOL,
			      "not an Autodiscover v2 answer: %s", err);
		json_free(&o);
		return -1;
	}
	const char *url = json_str(&o, "Url");
	const char *ecode = json_str(&o, "ErrorCode");
	if (ecode || !url) {
		const char *m = json_str(&o, "ErrorMessage");
		be_result_set(r, BE_REFUSED, "Autodiscover v2 error %.60s: %.200s",
			      ecode ? ecode : "?", m ? m : "no URL");
	} else if (!ad_is_https(url)) {
		be_result_set(r, BE_PROTOCOL,
			      "Autodiscover v2 URL is not an https URL");
	} else {
		a->action = AD_SETTINGS;
		a->urls.ews_url = xstrdup(url);
	}
	json_free(&o);
	return r->status == BE_OK ? 0 : -1;
}

int ad_parse_srv(const unsigned char *msg, size_t len, char **target)
{
	ns_msg h;
	ns_rr rr;
	int best_prio = 1 << 17, best_weight = -1;

	*target = NULL;
	if (len > 65535 || ns_initparse(msg, (int)len, &h) < 0)
		return -1;
	for (int i = 0; i < ns_msg_count(h, ns_s_an); i++) {
		char name[NS_MAXDNAME];
		if (ns_parserr(&h, ns_s_an, i, &rr) < 0)
			break;
		if (ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7)
			continue;
		const unsigned char *rd = ns_rr_rdata(rr);
		int prio = rd[0] << 8 | rd[1], weight = rd[2] << 8 | rd[3];
		int port = rd[4] << 8 | rd[5];
		if (ns_name_uncompress(ns_msg_base(h), ns_msg_end(h), rd + 6,
				       name, sizeof(name)) < 0 ||
		    !name[0] || !strcmp(name, ".") || port == 0)
			continue;
		if (prio < best_prio || (prio == best_prio && weight > best_weight)) {
			free(*target);
			size_t n = strlen(name);
			if (n && name[n - 1] == '.')
				name[n - 1] = 0;
			*target = xasprintf("%s:%d", name, port);
			best_prio = prio;
			best_weight = weight;
		}
	}
	return *target ? 0 : -1;
}

