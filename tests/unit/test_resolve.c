/*
 * test_resolve.c - the address book without a network: the ActiveSync
 * ResolveRecipients and GAL Search requests (decoded back) and answers
 * (built here, and SOGo 5.8's as captured in the fuzz corpus), and the
 * EWS ResolveNames request and answers (one match, several, none, errors,
 * faults).
 */
#include "backend/eas/eas.h"
#include "backend/ews/ews.h"
#include "backend/xml.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ActiveSync ---- */

static struct wbxml_node *tree_of(const struct buf *b)
{
	char err[160];
	struct wbxml_node *t = wbxml_parse(b->data, b->len, 1 << 20, 10000,
					   err, sizeof(err));
	if (!t)
		printf("FAIL cannot parse a built request: %s\n", err);
	return t;
}

static void test_eas_request(void)
{
	struct buf b;
	buf_init(&b, 0);
	eas_req_resolve(&b, "Smith, Erin", 5, 0);
	struct wbxml_node *t = tree_of(&b);
	struct wbxml_node *rr = wbxml_child(t, WB_RR_RESOLVE_RECIPIENTS);
	CHECK(rr != NULL);
	CHECK_STR(wbxml_child_text(rr, WB_RR_TO), "Smith, Erin");
	struct wbxml_node *o = wbxml_child(rr, WB_RR_OPTIONS);
	CHECK_STR(wbxml_child_text(o, WB_RR_MAX_AMBIGUOUS_RECIPIENTS), "5");
	CHECK(wbxml_child(o, WB_RR_AVAILABILITY) == NULL);
	wbxml_free(t);
	buf_free(&b);

	/* max clamped to 1..100; Availability for half an hour */
	buf_init(&b, 0);
	eas_req_resolve(&b, "x", 500, 1795341600);   /* 2026-11-22 10:00 UTC */
	t = tree_of(&b);
	o = wbxml_path(t, WB_RR_RESOLVE_RECIPIENTS, WB_RR_OPTIONS, 0);
	CHECK_STR(wbxml_child_text(o, WB_RR_MAX_AMBIGUOUS_RECIPIENTS), "100");
	struct wbxml_node *av = wbxml_child(o, WB_RR_AVAILABILITY);
	CHECK_STR(wbxml_child_text(av, WB_RR_START_TIME),
		  "2026-11-22T10:00:00.000Z");
	CHECK_STR(wbxml_child_text(av, WB_RR_END_TIME),
		  "2026-11-22T10:30:00.000Z");
	wbxml_free(t);
	buf_free(&b);
	buf_init(&b, 0);
	eas_req_resolve(&b, "x", 0, 0);
	t = tree_of(&b);
	CHECK_STR(wbxml_child_text(wbxml_path(t, WB_RR_RESOLVE_RECIPIENTS,
					      WB_RR_OPTIONS, 0),
				   WB_RR_MAX_AMBIGUOUS_RECIPIENTS), "1");
	wbxml_free(t);
	buf_free(&b);
}

struct rcpt {
	const char *type, *name, *addr;
};

/* A ResolveRecipients answer: top status, then (resp_status != NULL) one
 * Response with these recipients. */
static void answer(struct buf *b, const char *top, const char *resp_status,
		   const struct rcpt *v, size_t n)
{
	struct wbxml_enc e;
	buf_init(b, 0);
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_RR_RESOLVE_RECIPIENTS);
	wbxml_str(&e, WB_RR_STATUS, top);
	if (resp_status) {
		wbxml_start(&e, WB_RR_RESPONSE);
		wbxml_str(&e, WB_RR_TO, "q");
		wbxml_str(&e, WB_RR_STATUS, resp_status);
		wbxml_uint(&e, WB_RR_RECIPIENT_COUNT, n);
		for (size_t i = 0; i < n; i++) {
			wbxml_start(&e, WB_RR_RECIPIENT);
			if (v[i].type)
				wbxml_str(&e, WB_RR_TYPE, v[i].type);
			if (v[i].name)
				wbxml_str(&e, WB_RR_DISPLAY_NAME, v[i].name);
			if (v[i].addr)
				wbxml_str(&e, WB_RR_EMAIL_ADDRESS, v[i].addr);
			wbxml_end(&e);
		}
		wbxml_end(&e);
	}
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
}

static void test_eas_answers(void)
{
	struct buf b;
	struct be_result r;
	struct be_person *v;
	size_t n;

	static const struct rcpt one[] = {
		{ "1", "Bob Smith", "bob@example.com" },
	};
	answer(&b, "1", "1", one, 1);
	CHECK(eas_parse_resolve(b.data, b.len, 10, &v, &n, &r) == BE_OK);
	CHECK(n == 1);
	if (n == 1) {
		CHECK_STR(v[0].name, "Bob Smith");
		CHECK_STR(v[0].address, "bob@example.com");
		CHECK(v[0].kind == BE_PERSON_DIRECTORY);
	}
	be_people_free(v, n);
	buf_free(&b);

	/* ambiguous: suggestions, cut at max; an entry with neither a name
	 * nor an address is skipped; a name too long to be one is dropped */
	char longname[1100];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	static struct rcpt several[] = {
		{ "2", "Erin Smith", "erin@example.com" },
		{ "1", NULL, NULL },
		{ NULL, NULL, "nameless@example.com" },
		{ "1", NULL, "long@example.com" },
		{ "1", "Fourth", "fourth@example.com" },
	};
	several[3].name = longname;
	answer(&b, "1", "2", several, 5);
	CHECK(eas_parse_resolve(b.data, b.len, 3, &v, &n, &r) == BE_OK);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(v[0].kind == BE_PERSON_CONTACT);
		CHECK(v[1].name == NULL);
		CHECK_STR(v[1].address, "nameless@example.com");
		CHECK(v[1].kind == BE_PERSON_OTHER);
		CHECK(v[2].name == NULL);
		CHECK_STR(v[2].address, "long@example.com");
	}
	be_people_free(v, n);
	buf_free(&b);

	/* 3: ambiguous, partial list - still what was found */
	answer(&b, "1", "3", one, 1);
	CHECK(eas_parse_resolve(b.data, b.len, 10, &v, &n, &r) == BE_OK);
	CHECK(n == 1);
	be_people_free(v, n);
	buf_free(&b);

	/* 4: no one; no Response at all (SOGo): no one */
	answer(&b, "1", "4", NULL, 0);
	CHECK(eas_parse_resolve(b.data, b.len, 10, &v, &n, &r) == BE_OK);
	CHECK(n == 0 && v == NULL);
	buf_free(&b);
	answer(&b, "1", NULL, NULL, 0);
	CHECK(eas_parse_resolve(b.data, b.len, 10, &v, &n, &r) == BE_OK);
	CHECK(n == 0 && v == NULL);
	buf_free(&b);

	/* failures of the whole command, and of the Response */
	answer(&b, "5", NULL, NULL, 0);
	CHECK(eas_parse_resolve(b.data, b.len, 10, &v, &n, &r) == BE_PROTOCOL);
	CHECK(strstr(r.msg, "status 5") != NULL);
	CHECK(n == 0 && v == NULL);
	buf_free(&b);
	answer(&b, "6", NULL, NULL, 0);
	CHECK(eas_parse_resolve(b.data, b.len, 10, &v, &n, &r) == BE_NETWORK);
	buf_free(&b);
	answer(&b, "142", NULL, NULL, 0);
	CHECK(eas_parse_resolve(b.data, b.len, 10, &v, &n, &r) == BE_AUTH);
	buf_free(&b);
	answer(&b, "1", "9", one, 1);
	CHECK(eas_parse_resolve(b.data, b.len, 10, &v, &n, &r) != BE_OK);
	CHECK(r.msg[0] && n == 0 && v == NULL);
	buf_free(&b);

	/* not an answer */
	CHECK(eas_parse_resolve("", 0, 10, &v, &n, &r) == BE_PROTOCOL);
	CHECK(eas_parse_resolve("\x03\x01\x6a\x00\x45", 5, 10, &v, &n, &r) ==
	      BE_PROTOCOL);
	CHECK(r.msg[0] && n == 0 && v == NULL);
	struct wbxml_enc e;
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_MV_MOVE_ITEMS);
	wbxml_str(&e, WB_MV_STATUS, "1");
	wbxml_end(&e);
	CHECK(eas_parse_resolve(b.data, b.len, 10, &v, &n, &r) == BE_PROTOCOL);
	buf_free(&b);
}

/* SOGo 5.8's answers as captured (tests/fuzz/corpus/fuzz_wbxml/15-* to
 * 18-*; the first byte is the fuzzer's selector). */
static void test_eas_sogo(void)
{
	static const char *const files[] = { "15-resolve-sogo",
					     "16-resolve-sogo-none",
					     "17-gal-search-sogo",
					     "18-gal-search-sogo-none" };
	for (int k = 0; k < 4; k++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/../../fuzz/corpus/fuzz_wbxml/%s",
			 TEST_DATA_DIR, files[k]);
		FILE *f = fopen(path, "rb");
		CHECK(f != NULL);
		if (!f)
			continue;
		static char data[4096];
		size_t len = fread(data, 1, sizeof(data), f);
		fclose(f);
		struct be_result r;
		struct be_person *v;
		size_t n;
		CHECK(len > 1);
		CHECK((k < 2 ? eas_parse_resolve(data + 1, len - 1, 10, &v, &n, &r)
			     : eas_parse_gal_search(data + 1, len - 1, 10, &v, &n,
						    &r)) == BE_OK);
		if (k == 0) {
			CHECK(n == 1);
			if (n == 1) {
				CHECK_STR(v[0].name, "Test User One");
				CHECK_STR(v[0].address, "sogo1@example.test");
				CHECK(v[0].kind == BE_PERSON_DIRECTORY);
			}
		} else if (k == 2) {   /* SOGo's Search gives no names */
			CHECK(n == 1);
			if (n == 1) {
				CHECK(v[0].name == NULL);
				CHECK_STR(v[0].address, "sogo2@example.test");
			}
		} else {
			CHECK(n == 0);
		}
		be_people_free(v, n);
	}
}

static void test_eas_gal_search(void)
{
	struct buf b;
	buf_init(&b, 0);
	eas_req_gal_search(&b, "smi", 50);
	struct wbxml_node *t = tree_of(&b);
	struct wbxml_node *st = wbxml_path(t, WB_SRCH_SEARCH, WB_SRCH_STORE, 0);
	CHECK_STR(wbxml_child_text(st, WB_SRCH_NAME), "GAL");
	CHECK_STR(wbxml_child_text(st, WB_SRCH_QUERY), "smi");
	CHECK_STR(wbxml_child_text(wbxml_child(st, WB_SRCH_OPTIONS),
				   WB_SRCH_RANGE), "0-49");
	wbxml_free(t);
	buf_free(&b);

	/* an answer: two results (one without a name), a third cut by max */
	struct wbxml_enc e;
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_SRCH_SEARCH);
	wbxml_str(&e, WB_SRCH_STATUS, "1");
	wbxml_start(&e, WB_SRCH_RESPONSE);
	wbxml_start(&e, WB_SRCH_STORE);
	wbxml_str(&e, WB_SRCH_STATUS, "1");
	static const char *const names[] = { "Bob Smith", NULL, "Third" };
	static const char *const addrs[] = { "bob@example.com",
					     "smithers@example.com",
					     "third@example.com" };
	for (int i = 0; i < 3; i++) {
		wbxml_start(&e, WB_SRCH_RESULT);
		wbxml_start(&e, WB_SRCH_PROPERTIES);
		if (names[i])
			wbxml_str(&e, WB_GAL_DISPLAY_NAME, names[i]);
		wbxml_str(&e, WB_GAL_EMAIL_ADDRESS, addrs[i]);
		wbxml_end(&e);
		wbxml_end(&e);
	}
	wbxml_str(&e, WB_SRCH_RANGE, "0-2");
	wbxml_str(&e, WB_SRCH_TOTAL, "3");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	struct be_result r;
	struct be_person *v;
	size_t n;
	CHECK(eas_parse_gal_search(b.data, b.len, 2, &v, &n, &r) == BE_OK);
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(v[0].name, "Bob Smith");
		CHECK_STR(v[0].address, "bob@example.com");
		CHECK(v[0].kind == BE_PERSON_DIRECTORY);
		CHECK(v[1].name == NULL);
		CHECK_STR(v[1].address, "smithers@example.com");
	}
	be_people_free(v, n);
	buf_free(&b);

	/* the store refused (status 3: server error), a bad top status */
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_SRCH_SEARCH);
	wbxml_str(&e, WB_SRCH_STATUS, "1");
	wbxml_start(&e, WB_SRCH_RESPONSE);
	wbxml_start(&e, WB_SRCH_STORE);
	wbxml_str(&e, WB_SRCH_STATUS, "3");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(eas_parse_gal_search(b.data, b.len, 5, &v, &n, &r) == BE_REFUSED);
	CHECK(strstr(r.msg, "status 3") != NULL && n == 0 && v == NULL);
	buf_free(&b);
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_SRCH_SEARCH);
	wbxml_str(&e, WB_SRCH_STATUS, "x");
	wbxml_end(&e);
	CHECK(eas_parse_gal_search(b.data, b.len, 5, &v, &n, &r) == BE_PROTOCOL);
	buf_free(&b);
	CHECK(eas_parse_gal_search("", 0, 5, &v, &n, &r) == BE_PROTOCOL);
}

/* ---- EWS ---- */

#define ENV_HEAD \
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>" \
	"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">" \
	"<s:Body><m:ResolveNamesResponse " \
	"xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\" " \
	"xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\">" \
	"<m:ResponseMessages>"
#define ENV_TAIL "</m:ResponseMessages></m:ResolveNamesResponse></s:Body></s:Envelope>"
#define MBX(name, addr, type) \
	"<t:Resolution><t:Mailbox><t:Name>" name "</t:Name><t:EmailAddress>" \
	addr "</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType>" \
	"<t:MailboxType>" type "</t:MailboxType></t:Mailbox></t:Resolution>"

static void test_ews_request(void)
{
	struct buf b;
	buf_init(&b, 0);
	ews_req_resolve(&b, "Exchange2013_SP1", "O'Brien & <Co>");
	CHECK(strstr(b.data, "<m:ResolveNames ReturnFullContactData=\"false\">"
			     "<m:UnresolvedEntry>O&apos;Brien &amp; &lt;Co&gt;"
			     "</m:UnresolvedEntry></m:ResolveNames>") != NULL);
	char err[200];
	xmlDoc *doc = xml_parse(b.data, b.len, 1 << 20, err, sizeof(err));
	CHECK(doc != NULL);
	xmlFreeDoc(doc);
	buf_free(&b);
}

static enum be_status ews(const char *xml, unsigned max,
			  struct be_person **v, size_t *n, struct be_result *r)
{
	return ews_parse_resolve(xml, strlen(xml), max, v, n, r);
}

static void test_ews_answers(void)
{
	struct be_result r;
	struct be_person *v;
	size_t n;

	CHECK(ews(ENV_HEAD
		  "<m:ResolveNamesResponseMessage ResponseClass=\"Success\">"
		  "<m:ResponseCode>NoError</m:ResponseCode>"
		  "<m:ResolutionSet TotalItemsInView=\"1\" IncludesLastItemInRange=\"true\">"
		  MBX("Bob Smith", "bob@example.com", "Mailbox")
		  "</m:ResolutionSet></m:ResolveNamesResponseMessage>" ENV_TAIL,
		  10, &v, &n, &r) == BE_OK);
	CHECK(n == 1);
	if (n == 1) {
		CHECK_STR(v[0].name, "Bob Smith");
		CHECK_STR(v[0].address, "bob@example.com");
		CHECK(v[0].kind == BE_PERSON_DIRECTORY);
	}
	be_people_free(v, n);

	/* several: a Warning that is an outcome; kinds; max; a contact
	 * whose Mailbox has no Name gives its Contact's DisplayName */
	static const char several[] = ENV_HEAD
		"<m:ResolveNamesResponseMessage ResponseClass=\"Warning\">"
		"<m:MessageText>Multiple results were found.</m:MessageText>"
		"<m:ResponseCode>ErrorNameResolutionMultipleResults</m:ResponseCode>"
		"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
		"<m:ResolutionSet TotalItemsInView=\"4\" IncludesLastItemInRange=\"true\">"
		MBX("Smith, Erin", "erin@example.com", "Contact")
		MBX("Team", "team@example.com", "PublicDL")
		"<t:Resolution><t:Mailbox><t:EmailAddress>c@example.com</t:EmailAddress>"
		"<t:MailboxType>Contact</t:MailboxType></t:Mailbox>"
		"<t:Contact><t:DisplayName>Carol &amp; Co</t:DisplayName></t:Contact>"
		"</t:Resolution>"
		"<t:Resolution><t:Mailbox/></t:Resolution>"
		MBX("Last", "last@example.com", "OneOff")
		"</m:ResolutionSet></m:ResolveNamesResponseMessage>" ENV_TAIL;
	CHECK(ews(several, 10, &v, &n, &r) == BE_OK);
	CHECK(n == 4);
	if (n == 4) {
		CHECK_STR(v[0].name, "Smith, Erin");
		CHECK(v[0].kind == BE_PERSON_CONTACT);
		CHECK(v[1].kind == BE_PERSON_GROUP);
		CHECK_STR(v[2].name, "Carol & Co");
		CHECK_STR(v[2].address, "c@example.com");
		CHECK_STR(v[3].name, "Last");
		CHECK(v[3].kind == BE_PERSON_OTHER);
	}
	be_people_free(v, n);
	CHECK(ews(several, 2, &v, &n, &r) == BE_OK);
	CHECK(n == 2);
	be_people_free(v, n);

	/* no one */
	CHECK(ews(ENV_HEAD
		  "<m:ResolveNamesResponseMessage ResponseClass=\"Error\">"
		  "<m:MessageText>No results were found.</m:MessageText>"
		  "<m:ResponseCode>ErrorNameResolutionNoResults</m:ResponseCode>"
		  "<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
		  "</m:ResolveNamesResponseMessage>" ENV_TAIL,
		  10, &v, &n, &r) == BE_OK);
	CHECK(n == 0 && v == NULL);

	/* real errors: graded, nothing given */
	CHECK(ews(ENV_HEAD
		  "<m:ResolveNamesResponseMessage ResponseClass=\"Error\">"
		  "<m:MessageText>Access is denied.</m:MessageText>"
		  "<m:ResponseCode>ErrorAccessDenied</m:ResponseCode>"
		  "</m:ResolveNamesResponseMessage>" ENV_TAIL,
		  10, &v, &n, &r) != BE_OK);
	CHECK(strstr(r.msg, "ErrorAccessDenied") != NULL);
	CHECK(n == 0 && v == NULL);
	CHECK(ews(ENV_HEAD ENV_TAIL, 10, &v, &n, &r) == BE_PROTOCOL);
	CHECK(ews("<?xml version=\"1.0\"?><s:Envelope xmlns:s=\""
		  "http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><s:Fault>"
		  "<faultcode>s:Client</faultcode><faultstring>The request is "
		  "invalid.</faultstring><detail><e:ResponseCode xmlns:e=\""
		  "http://schemas.microsoft.com/exchange/services/2006/errors\">"
		  "ErrorInvalidRequest</e:ResponseCode></detail></s:Fault>"
		  "</s:Body></s:Envelope>", 10, &v, &n, &r) != BE_OK);
	CHECK(r.msg[0] && n == 0 && v == NULL);
	CHECK(ews("<not xml", 10, &v, &n, &r) == BE_PROTOCOL);
	CHECK(n == 0 && v == NULL);
}

int main(void)
{
	xml_init();
	test_eas_request();
	test_eas_answers();
	test_eas_gal_search();
	test_eas_sogo();
	test_ews_request();
	test_ews_answers();
	return check_done("test_resolve");
}
