/*
 * test_signin.c - the parsers behind sign-in and discovery, table-driven:
 * the flat JSON reader (backend/json.c) with valid and invalid rows, the
 * JSON writer's round trip, POX and v2 Autodiscover answers and DNS SRV
 * answers (backend/autodiscover.c).
 */
#include "backend/autodiscover.h"
#include "backend/json.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static const struct { const char *in; const char *key, *want; } json_ok[] = {
	{ "{\"a\":\"b\"}", "a", "b" },
	{ " {\"a\" : \"x\\n\\\"y\\u00e9\\ud83d\\ude00\"} ", "a",
	  "x\n\"y\xc3\xa9\xf0\x9f\x98\x80" },
	{ "{\"n\":{\"deep\":[1,2,{\"x\":null}]},\"a\":\"after\"}", "a", "after" },
	{ "{\"a\":\"first\",\"a\":\"second\"}", "a", "first" },
	{ "{}", "a", NULL },
	{ "{\"a\":12}", "a", NULL },       /* a number is not a string */
	{ "{\"a\":[\"s\"]}", "a", NULL },  /* nested is not a string */
};

static const char *const json_bad[] = {
	"", "[]", "\"s\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}",
	"{\"a\":01}", "{\"a\":1.}", "{\"a\":-}", "{\"a\":tru}", "{\"a\":\"x}",
	"{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}",
	"{\"a\":\"\\udc00x\"}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\x01\"}",
	"{\"a\":1} x", "{\"a\":1}{}", "{'a':1}",
};

static void test_json(void)
{
	char err[200];
	struct json_obj o;
	for (size_t i = 0; i < sizeof(json_ok) / sizeof(json_ok[0]); i++) {
		int rc = json_parse_object(json_ok[i].in, strlen(json_ok[i].in),
					   &o, err, sizeof(err));
		CHECK(rc == 0);
		if (json_ok[i].want)
			CHECK_STR(json_str(&o, json_ok[i].key), json_ok[i].want);
		else
			CHECK(json_str(&o, json_ok[i].key) == NULL);
		json_free(&o);
	}
	for (size_t i = 0; i < sizeof(json_bad) / sizeof(json_bad[0]); i++) {
		err[0] = 0;
		int rc = json_parse_object(json_bad[i], strlen(json_bad[i]), &o,
					   err, sizeof(err));
		if (rc == 0)
			printf("accepted: %s\n", json_bad[i]);
		CHECK(rc == -1 && err[0]);
		json_free(&o);
	}
	/* integers: numbers and digit strings (expires_in "3599") */
	const char *t = "{\"e\":3599,\"s\":\"60\",\"f\":1.5,\"x\":\"no\"}";
	int64_t v = 0;
	CHECK(!json_parse_object(t, strlen(t), &o, err, sizeof(err)));
	CHECK(!json_int(&o, "e", &v) && v == 3599);
	CHECK(!json_int(&o, "s", &v) && v == 60);
	CHECK(json_int(&o, "f", &v) == -1);
	CHECK(json_int(&o, "x", &v) == -1);
	CHECK(json_int(&o, "missing", &v) == -1);
	json_free(&o);
	/* nesting deeper than the limit is refused, not recursed into */
	struct buf deep;
	buf_init(&deep, 0);
	buf_puts(&deep, "{\"a\":");
	for (int i = 0; i < JSON_MAX_DEPTH + 5; i++)
		buf_puts(&deep, "[");
	CHECK(json_parse_object(deep.data, deep.len, &o, err, sizeof(err)) == -1);
	CHECK(strstr(err, "nested deeper") != NULL);
	json_free(&o);
	buf_free(&deep);
	/* the writer round-trips every byte that is not NUL */
	char all[256];
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = 0;
	struct buf w;
	buf_init(&w, 0);
	buf_puts(&w, "{\"k\":");
	json_put_string(&w, all);
	buf_puts(&w, "}");
	CHECK(!json_parse_object(w.data, w.len, &o, err, sizeof(err)));
	CHECK_STR(json_str(&o, "k"), all);
	json_free(&o);
	buf_free(&w);
}

#define AD_HEAD "<?xml version=\"1.0\" encoding=\"utf-8\"?>" \
	"<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">" \
	"<Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">"
#define AD_TAIL "</Response></Autodiscover>"

static void test_pox(void)
{
	struct ad_answer a;
	struct be_result r;
	const char *s;

	s = AD_HEAD "<Account><AccountType>email</AccountType><Action>settings</Action>"
	    "<Protocol><Type>EXCH</Type><EwsUrl>https://in/EWS/Exchange.asmx</EwsUrl></Protocol>"
	    "<Protocol><Type>EXPR</Type><EwsUrl> https://out/EWS/Exchange.asmx\n</EwsUrl></Protocol>"
	    "<Protocol Type=\"mapiHttp\" Version=\"1\"><MailStore><InternalUrl>https://in/mapi</InternalUrl>"
	    "<ExternalUrl>https://out/mapi</ExternalUrl></MailStore></Protocol>"
	    "</Account>" AD_TAIL;
	CHECK(!ad_parse_pox(s, strlen(s), &a, &r));
	CHECK(a.action == AD_SETTINGS);
	CHECK_STR(a.urls.ews_url, "https://out/EWS/Exchange.asmx");
	CHECK_STR(a.urls.mapi_url, "https://out/mapi");
	CHECK(a.urls.eas_url == NULL);
	ad_answer_free(&a);

	s = AD_HEAD "<Account><Action>settings</Action><Protocol><Type>EXCH</Type>"
	    "<EwsUrl>https://in/EWS/Exchange.asmx</EwsUrl></Protocol></Account>" AD_TAIL;
	CHECK(!ad_parse_pox(s, strlen(s), &a, &r));
	CHECK_STR(a.urls.ews_url, "https://in/EWS/Exchange.asmx");
	ad_answer_free(&a);

	s = AD_HEAD "<Account><Action>redirectAddr</Action><RedirectAddr>bob@b.test</RedirectAddr></Account>" AD_TAIL;
	CHECK(!ad_parse_pox(s, strlen(s), &a, &r));
	CHECK(a.action == AD_REDIRECT_ADDR);
	CHECK_STR(a.redirect, "bob@b.test");
	ad_answer_free(&a);

	s = AD_HEAD "<Account><Action>redirectUrl</Action><RedirectUrl>https://x/autodiscover/autodiscover.xml</RedirectUrl></Account>" AD_TAIL;
	CHECK(!ad_parse_pox(s, strlen(s), &a, &r));
	CHECK(a.action == AD_REDIRECT_URL);
	CHECK_STR(a.redirect, "https://x/autodiscover/autodiscover.xml");
	ad_answer_free(&a);

	/* invalid rows */
	static const char *const bad[] = {
		AD_HEAD "<Account><Action>redirectUrl</Action><RedirectUrl>http://x/</RedirectUrl></Account>" AD_TAIL,
		AD_HEAD "<Account><Action>redirectAddr</Action><RedirectAddr>nobody</RedirectAddr></Account>" AD_TAIL,
		AD_HEAD "<Account><Action>settings</Action></Account>" AD_TAIL,
		AD_HEAD "<Account><Action>dance</Action></Account>" AD_TAIL,
		AD_HEAD "<Error><ErrorCode>500</ErrorCode><Message>The e-mail address cannot be found.</Message></Error>" AD_TAIL,
		"<Autodiscover/>", "<html><body>login</body></html>", "not xml", "",
		"<!DOCTYPE x [<!ENTITY e \"y\">]><Autodiscover><Response>&e;</Response></Autodiscover>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(ad_parse_pox(bad[i], strlen(bad[i]), &a, &r) == -1);
		CHECK(r.status != BE_OK && r.msg[0]);
		ad_answer_free(&a);
	}
	s = AD_HEAD "<Error><ErrorCode>500</ErrorCode><Message>The e-mail address cannot be found.</Message></Error>" AD_TAIL;
	ad_parse_pox(s, strlen(s), &a, &r);
	CHECK(strstr(r.msg, "500") && strstr(r.msg, "cannot be found"));
	ad_answer_free(&a);

	s = "{\"Protocol\":\"EWS\",\"Url\":\"https://outlook.office365.com/EWS/Exchange.asmx\"}";
	CHECK(!ad_parse_json(s, strlen(s), &a, &r));
	CHECK_STR(a.urls.ews_url, "https://outlook.office365.com/EWS/Exchange.asmx");
	ad_answer_free(&a);
	static const char *const jbad[] = {
		"{\"ErrorCode\":\"MailboxNotFound\",\"ErrorMessage\":\"no\"}",
		"{\"Protocol\":\"EWS\",\"Url\":\"http://plain/EWS\"}", "{}", "[1]",
	};
	for (size_t i = 0; i < sizeof(jbad) / sizeof(jbad[0]); i++) {
		CHECK(ad_parse_json(jbad[i], strlen(jbad[i]), &a, &r) == -1);
		ad_answer_free(&a);
	}
}

/* A DNS answer with SRV records (priority, weight, port, target). */
static size_t srv_answer(unsigned char *m, const int (*rr)[3],
			 const char *const *targets, size_t n)
{
	static const char q[] = "\x0d_autodiscover\x04_tcp\x07" "example\x04test";
	size_t at = 0;
	const unsigned char hdr[12] = { 0x12, 0x34, 0x81, 0x80, 0, 1, 0,
					(unsigned char)n, 0, 0, 0, 0 };
	memcpy(m, hdr, 12);
	at = 12;
	memcpy(m + at, q, sizeof(q));  /* with the final 0 label */
	at += sizeof(q);
	memcpy(m + at, "\x00\x21\x00\x01", 4);
	at += 4;
	for (size_t i = 0; i < n; i++) {
		unsigned char name[256];
		size_t nl = 0;
		const char *t = targets[i];
		while (*t) {
			size_t l = strcspn(t, ".");
			name[nl++] = (unsigned char)l;
			memcpy(name + nl, t, l);
			nl += l;
			t += l + (t[l] == '.');
		}
		name[nl++] = 0;
		const unsigned char rrh[] = { 0xc0, 0x0c, 0, 33, 0, 1, 0, 0, 0, 60,
			0, (unsigned char)(6 + nl), 0, (unsigned char)rr[i][0], 0,
			(unsigned char)rr[i][1], (unsigned char)(rr[i][2] >> 8),
			(unsigned char)rr[i][2] };
		memcpy(m + at, rrh, sizeof(rrh));
		at += sizeof(rrh);
		memcpy(m + at, name, nl);
		at += nl;
	}
	return at;
}

static void test_srv(void)
{
	unsigned char m[1024];
	char *target = NULL;
	const int rr[3][3] = { { 10, 5, 443 }, { 0, 1, 8443 }, { 0, 9, 443 } };
	const char *const names[] = { "a.example.test", "b.example.test",
				      "c.example.test" };
	size_t n = srv_answer(m, rr, names, 3);
	CHECK(!ad_parse_srv(m, n, &target));
	CHECK_STR(target, "c.example.test:443");  /* priority 0, weight 9 */
	free(target);
	CHECK(ad_parse_srv(m, 0, &target) == -1 && !target);
	for (size_t cut = 12; cut < n; cut += 7) {   /* truncations */
		if (!ad_parse_srv(m, cut, &target))
			free(target);
	}
	n = srv_answer(m, rr, names, 0);
	CHECK(ad_parse_srv(m, n, &target) == -1);
}

int main(void)
{
	test_json();
	test_pox();
	test_srv();
	return check_done("test_signin");
}
