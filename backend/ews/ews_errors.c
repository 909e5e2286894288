/*
 * ews_errors.c - the ONE place where EWS ResponseCodes and SOAP faults
 * become be_status grades (docs/ews-subset.md, "How the client grades
 * codes"), with BackOffMilliseconds taken from MessageXml.
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *code;
	enum be_status st;
} ews_codes[] = {
	{ "NoError",                           BE_OK },
	/* about an id: in a call about a folder, the folder is gone */
	{ "ErrorItemNotFound",                 BE_ITEM_GONE },
	{ "ErrorInvalidIdMalformed",           BE_ITEM_GONE },
	{ "ErrorFolderNotFound",               BE_FOLDER_GONE },
	{ "ErrorInvalidSyncStateData",         BE_SYNC_INVALID },
	{ "ErrorSyncFolderNotFound",           BE_FOLDER_GONE },
	{ "ErrorServerBusy",                   BE_THROTTLED },
	{ "ErrorTooManyObjectsOpened",         BE_THROTTLED },
	{ "ErrorMailboxStoreUnavailable",      BE_THROTTLED },
	{ "ErrorExceededConnectionCount",      BE_THROTTLED },
	{ "ErrorAccessDenied",                 BE_AUTH },
	{ "ErrorNonExistentMailbox",           BE_AUTH },
	{ "ErrorInternalServerTransientError", BE_NETWORK },
	{ "ErrorTimeoutExpired",               BE_NETWORK },
	{ "ErrorConnectionFailed",             BE_NETWORK },
	{ "ErrorMailboxMoveInProgress",        BE_NETWORK },
	/* the server, its directory or the server it proxies to cannot
	 * serve right now (failover, memory, a CAS down): try again */
	{ "ErrorADUnavailable",                BE_NETWORK },
	{ "ErrorInsufficientResources",        BE_NETWORK },
	{ "ErrorNotEnoughMemory",              BE_NETWORK },
	{ "ErrorMailboxFailover",              BE_NETWORK },
	{ "ErrorNoRespondingCASInDestinationSite", BE_NETWORK },
	{ "ErrorNoApplicableProxyCASServersAvailable", BE_NETWORK },
	{ "ErrorProxyCallFailed",              BE_NETWORK },
	{ "ErrorProxyRequestProcessingFailed", BE_NETWORK },
	{ "ErrorProxyServiceDiscoveryFailed",  BE_NETWORK },
	/* a batch stopped before this entry: not processed, try again */
	{ "ErrorBatchProcessingStopped",       BE_NETWORK },
	/* writes: where an item or folder was to go is gone */
	{ "ErrorToFolderNotFound",             BE_FOLDER_GONE },
	{ "ErrorParentFolderNotFound",         BE_FOLDER_GONE },
	{ "ErrorSavedItemFolderNotFound",      BE_FOLDER_GONE },
	/* the change key is stale (or needed): re-read it, then retry */
	{ "ErrorIrresolvableConflict",         BE_CONFLICT },
	{ "ErrorStaleObject",                  BE_CONFLICT },
	{ "ErrorChangeKeyRequired",            BE_CONFLICT },
	{ "ErrorChangeKeyRequiredForWriteOperations", BE_CONFLICT },
	{ "ErrorInvalidChangeKey",             BE_CONFLICT },
	{ "ErrorFolderExists",                 BE_EXISTS },
	/* notifications: the subscription (or its watermark) is gone -
	 * subscribe again and report that events may have been missed */
	{ "ErrorSubscriptionNotFound",         BE_SYNC_INVALID },
	{ "ErrorInvalidSubscription",          BE_SYNC_INVALID },
	{ "ErrorExpiredSubscription",          BE_SYNC_INVALID },
	{ "ErrorInvalidWatermark",             BE_SYNC_INVALID },
	{ "ErrorInvalidPullSubscriptionId",    BE_SYNC_INVALID },
	{ "ErrorReadEventsFailed",             BE_SYNC_INVALID },
	{ "ErrorMissedNotificationEvents",     BE_SYNC_INVALID },
	{ "ErrorSubscriptionAccessDenied",     BE_SYNC_INVALID },
	{ "ErrorExceededSubscriptionCount",    BE_THROTTLED },
	/* the server does not offer this form of subscription */
	{ "ErrorInvalidSubscriptionRequest",   BE_REFUSED },
	{ "ErrorInvalidServerVersion",         BE_REFUSED },
	/* refused for good; listed so the table says what writes meet */
	{ "ErrorInvalidRecipients",            BE_REFUSED },
	{ "ErrorMessageSizeExceeded",          BE_REFUSED },
	{ "ErrorMimeContentConversionFailed",  BE_REFUSED },
	{ "ErrorMimeContentInvalid",           BE_REFUSED },
	{ "ErrorQuotaExceeded",                BE_REFUSED },
	{ "ErrorSendAsDenied",                 BE_REFUSED },
	{ "ErrorSubmissionQuotaExceeded",      BE_REFUSED },
	{ "ErrorInvalidPropertySet",           BE_REFUSED },
	{ "ErrorDeleteDistinguishedFolder",    BE_REFUSED },
	{ "ErrorMoveDistinguishedFolder",      BE_REFUSED },
	{ "ErrorCannotDeleteObject",           BE_REFUSED },
	{ "ErrorMoveCopyFailed",               BE_REFUSED },
	/* everything else: BE_REFUSED */
};

enum be_status ews_grade(const char *code, enum ews_ctx ctx)
{
	for (size_t i = 0; i < sizeof(ews_codes) / sizeof(ews_codes[0]); i++)
		if (!strcmp(ews_codes[i].code, code)) {
			enum be_status st = ews_codes[i].st;
			if (st == BE_ITEM_GONE && ctx == EWS_ON_FOLDER)
				st = BE_FOLDER_GONE;
			return st;
		}
	return BE_REFUSED;
}

const char *ews_quote(const char *s, char out[48])
{
	size_t i;
	for (i = 0; s && s[i] && i < 40; i++)
		out[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	if (s && s[i])
		out[i++] = '~';
	out[i] = 0;
	return out;
}

void ews_error_set(struct be_result *r, const char *code, const char *text,
		   uint32_t backoff_ms, enum ews_ctx ctx)
{
	be_result_ok(r);
	r->status = ews_grade(code, ctx);
	snprintf(r->code, sizeof(r->code), "%s", code);
	r->retry_after_ms = backoff_ms;
	int n;
	if (text && *text)
		n = snprintf(r->msg, sizeof(r->msg), "%s: %s", code, text);
	else
		n = snprintf(r->msg, sizeof(r->msg), "%s", code);
	if (backoff_ms && n >= 0 && (size_t)n < sizeof(r->msg))
		snprintf(r->msg + n, sizeof(r->msg) - (size_t)n,
			 " (retry after %u ms)", backoff_ms);
	/* one line, whatever the server sent */
	for (char *c = r->msg; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
}

uint32_t ews_backoff_parse(const char *text)
{
	const int64_t day = 24LL * 3600 * 1000;
	int64_t v;
	if (!text || xs_nonneg_long(text, &v))
		return 0;
	return v > day ? (uint32_t)day : (uint32_t)v;
}

/* The first descendant element with local name `name` (any namespace:
 * fault details and MessageXml come with varying namespaces). */
static const xmlNode *find_local(const xmlNode *n, const char *name, int depth)
{
	if (depth > 8)
		return NULL;
	for (const xmlNode *c = n->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (!strcmp((const char *)c->name, name))
			return c;
		const xmlNode *d = find_local(c, name, depth + 1);
		if (d)
			return d;
	}
	return NULL;
}

/* BackOffMilliseconds from a MessageXml element (or an element holding
 * one), 0 if absent. */
static uint32_t backoff_from(const xmlNode *n)
{
	const xmlNode *mx = n ? find_local(n, "MessageXml", 0) : NULL;
	if (!mx)
		return 0;
	for (const xmlNode *v = xml_child(mx, NULL, NULL); v;
	     v = xml_next(v, NULL, NULL)) {
		char *name = NULL, *text = NULL;
		uint32_t ms = 0;
		if (!strcmp((const char *)v->name, "Value") &&
		    !xml_attr(v, "Name", 64, &name) && name &&
		    !strcmp(name, "BackOffMilliseconds") &&
		    !xml_text(v, 64, &text))
			ms = ews_backoff_parse(text);
		free(name);
		free(text);
		if (ms)
			return ms;
	}
	return 0;
}

/* Text of an element with XML white space trimmed (codes are xs:token),
 * or NULL (owned). */
static char *text_of(const xmlNode *n, size_t cap)
{
	char *s = NULL;
	if (!n || xml_text(n, cap, &s))
		return NULL;
	size_t lead = strspn(s, " \t\r\n"), len = strlen(s + lead);
	memmove(s, s + lead, len + 1);
	while (len && strchr(" \t\r\n", s[len - 1]))
		s[--len] = 0;
	return s;
}

bool ews_response_ok(const char *cls, const char *code)
{
	bool no_error = code && !strcmp(code, "NoError");
	if (!cls)
		return no_error;
	if (!strcmp(cls, "Error"))
		return false;
	/* "Warning": the entry was not processed (a batch stopped), unless
	 * the code says otherwise */
	if (!strcmp(cls, "Warning"))
		return no_error || !code || !*code;
	return true;
}

enum be_status ews_message_result(const xmlNode *msg, enum ews_ctx ctx,
				  struct be_result *r)
{
	char *cls = NULL;
	char *code = text_of(xml_child(msg, EWS_NS_M, "ResponseCode"), 64);
	char *text = NULL;
	enum be_status st;

	xml_attr(msg, "ResponseClass", 32, &cls);
	if (ews_response_ok(cls, code)) {
		be_result_ok(r);
		st = BE_OK;
	} else {
		text = text_of(xml_child(msg, EWS_NS_M, "MessageText"), 4096);
		ews_error_set(r, code && *code ? code : "ErrorUnknown", text,
			      backoff_from(msg), ctx);
		st = r->status;
		if (st == BE_OK) {  /* "Error" with NoError: make no sense */
			be_result_set(r, BE_PROTOCOL,
				      "error answer with ResponseCode NoError");
			st = BE_PROTOCOL;
		}
	}
	free(cls);
	free(code);
	free(text);
	return st;
}

enum be_status ews_fault_result(const xmlNode *fault, enum ews_ctx ctx,
				struct be_result *r)
{
	const xmlNode *detail = find_local(fault, "detail", 0);
	char *code = detail ? text_of(find_local(detail, "ResponseCode", 0), 64)
			    : NULL;
	char *fcode = text_of(find_local(fault, "faultcode", 0), 256);
	char *text = text_of(find_local(fault, "faultstring", 0), 4096);
	char name[64];

	if (code && *code) {
		snprintf(name, sizeof(name), "%s", code);
	} else if (fcode) {
		/* a QName such as a:ErrorServerBusy or s:Client */
		const char *local = strrchr(fcode, ':');
		snprintf(name, sizeof(name), "%s", local ? local + 1 : fcode);
	} else {
		snprintf(name, sizeof(name), "SoapFault");
	}
	ews_error_set(r, *name ? name : "SoapFault", text, backoff_from(fault),
		      ctx);
	if (r->status == BE_OK) {
		be_result_set(r, BE_PROTOCOL, "SOAP fault with code NoError");
	}
	free(code);
	free(fcode);
	free(text);
	return r->status;
}
