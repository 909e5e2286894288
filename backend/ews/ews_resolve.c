/*
 * ews_resolve.c - the address book over EWS: ResolveNames (MS-OXWSRSLNM)
 * request builder, answer parser (pure, unit-tested and fuzzed) and the
 * resolve_names operation of the ops table.
 *
 * One UnresolvedEntry per request, ReturnFullContactData false (the
 * Mailbox element has what we show).  ErrorNameResolutionMultipleResults
 * (a Warning with the candidates) and ErrorNameResolutionNoResults are
 * outcomes, not failures.  MailboxType says where an entry comes from:
 * Mailbox (the directory), Contact (the user's contacts), PublicDL or
 * PrivateDL (groups).
 */
#include "backend/ews/ews.h"
#include "backend/http.h"
#include "backend/xml.h"

#include <stdlib.h>
#include <string.h>

#define RN_FIELD_MAX 1024   /* a display name or address longer is not one */

void ews_req_resolve(struct buf *b, const char *version, const char *query)
{
	ews_req_open(b, version);
	buf_puts(b, "<m:ResolveNames ReturnFullContactData=\"false\">"
		    "<m:UnresolvedEntry>");
	buf_put_xml_escaped(b, query);
	buf_puts(b, "</m:UnresolvedEntry></m:ResolveNames>");
	ews_req_close(b);
}

/* Text of a child (t: namespace) if present, non-empty and not too long. */
static char *field(const xmlNode *n, const char *name)
{
	char *v = NULL;
	const xmlNode *c = xml_child(n, EWS_NS_T, name);
	if (!c || xml_text(c, RN_FIELD_MAX, &v) || !*v) {
		free(v);
		return NULL;
	}
	return v;
}

static enum be_person_kind kind_of(const char *type)
{
	if (!type)
		return BE_PERSON_OTHER;
	if (!strcmp(type, "Mailbox") || !strcmp(type, "User"))
		return BE_PERSON_DIRECTORY;
	if (!strcmp(type, "Contact"))
		return BE_PERSON_CONTACT;
	if (!strcmp(type, "PublicDL") || !strcmp(type, "PrivateDL") ||
	    !strcmp(type, "GroupMailbox"))
		return BE_PERSON_GROUP;
	return BE_PERSON_OTHER;
}

enum be_status ews_parse_resolve(const char *data, size_t len, unsigned max,
				 struct be_person **out, size_t *nout,
				 struct be_result *r)
{
	xmlDoc *doc = NULL;
	char *code = NULL;
	*out = NULL;
	*nout = 0;
	be_result_ok(r);
	if (max > BE_PEOPLE_MAX)
		max = BE_PEOPLE_MAX;
	const xmlNode *body = ews_open_body(data, len, EWS_ANSWER_MAX, &doc,
					    EWS_ON_ITEM, r);
	if (!body)
		goto out;
	const xmlNode *msg = xml_child(ews_response_messages(body), EWS_NS_M,
				       "ResolveNamesResponseMessage");
	if (!msg) {
		be_result_set(r, BE_PROTOCOL,
			      "ResolveNames answer without a response message");
		goto out;
	}
	const xmlNode *c = xml_child(msg, EWS_NS_M, "ResponseCode");
	if (c && xml_text(c, 64, &code))
		code = NULL;
	if (code && !strcmp(code, "ErrorNameResolutionNoResults"))
		goto out;   /* no one: BE_OK, nothing */
	if (!(code && !strcmp(code, "ErrorNameResolutionMultipleResults")) &&
	    ews_message_result(msg, EWS_ON_ITEM, r) != BE_OK)
		goto out;
	be_result_ok(r);
	const xmlNode *set = xml_child(msg, EWS_NS_M, "ResolutionSet");
	struct be_person *v = NULL;
	size_t k = 0;
	for (const xmlNode *res = xml_child(set, EWS_NS_T, "Resolution");
	     res && k < max; res = xml_next(res, EWS_NS_T, "Resolution")) {
		const xmlNode *mb = xml_child(res, EWS_NS_T, "Mailbox");
		char *name = field(mb, "Name");
		char *addr = field(mb, "EmailAddress");
		char *type = field(mb, "MailboxType");
		if (!name)  /* a contact without a mailbox name */
			name = field(xml_child(res, EWS_NS_T, "Contact"),
				     "DisplayName");
		if (!name && !addr) {
			free(type);
			continue;
		}
		if (!v)
			v = xcalloc(max, sizeof(*v));
		v[k].name = name;
		v[k].address = addr;
		v[k].kind = kind_of(type);
		free(type);
		k++;
	}
	*out = v;
	*nout = k;
out:
	free(code);
	xmlFreeDoc(doc);
	return r->status;
}

enum be_status ews_resolve_names(struct be_session *s, const char *query,
				 unsigned max, struct be_person **out,
				 size_t *n, struct be_result *r)
{
	*out = NULL;
	*n = 0;
	if (!query || !*query || strlen(query) > RN_FIELD_MAX ||
	    !ews_text_ok(query)) {
		be_result_set(r, BE_REFUSED,
			      "a name to look up is 1 to %d bytes of text",
			      RN_FIELD_MAX);
		return r->status;
	}
	struct buf req;
	struct http_response resp;
	buf_init(&req, 0);
	ews_req_resolve(&req, ews_session_version(s), query);
	if (ews_call_answer(s, "ResolveNames", &req, &resp, r) == BE_OK)
		ews_parse_resolve(resp.body.data, resp.body.len,
				  max ? max : 1, out, n, r);
	buf_free(&req);
	http_response_free(&resp);
	return r->status;
}
