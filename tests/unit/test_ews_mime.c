/*
 * test_ews_mime.c - the streaming GetItem parser (backend/ews/ews_mime.c):
 * recorded multi-item answers cut at every position (inside base64 groups,
 * inside &#13; references, inside tags), per-item errors, SOAP faults,
 * too few and too many answers, sink refusal, bad base64, truncation, and
 * a 64 MiB message whose memory use must stay flat.
 */
#include "backend/ews/ews.h"
#include "test_ews_util.h"

#include <stdbool.h>
#include <sys/resource.h>

#define MAXI 8

struct got {
	struct buf mime[MAXI];
	int done_calls[MAXI];
	enum be_status st[MAXI];
	char msg[MAXI][320];
	int order_bad;         /* done() out of order */
	size_t next;           /* next index expected in done() */
	size_t abort_index;    /* sink refuses for this index ... */
	bool abort;            /* ... when set */
	/* large mode: count and checksum only */
	bool count_only;
	uint64_t bytes;
	uint32_t sum;
};

static int sink(void *arg, size_t index, const void *data, size_t len)
{
	struct got *g = arg;
	if (g->abort && index == g->abort_index)
		return -1;
	if (g->count_only) {
		const unsigned char *p = data;
		for (size_t i = 0; i < len; i++)
			g->sum = g->sum * 31 + p[i];
		g->bytes += len;
		return 0;
	}
	if (index < MAXI)
		buf_append(&g->mime[index], data, len);
	return 0;
}

static void done(void *arg, size_t index, enum be_status st, const char *msg)
{
	struct got *g = arg;
	if (index != g->next++)
		g->order_bad++;
	if (index < MAXI) {
		g->done_calls[index]++;
		g->st[index] = st;
		snprintf(g->msg[index], sizeof(g->msg[index]), "%s",
			 msg ? msg : "");
	}
}

static void got_init(struct got *g)
{
	memset(g, 0, sizeof(*g));
	for (int i = 0; i < MAXI; i++) {
		buf_init(&g->mime[i], 0);
		buf_append(&g->mime[i], "", 0);
	}
}

static void got_free(struct got *g)
{
	for (int i = 0; i < MAXI; i++)
		buf_free(&g->mime[i]);
}

/* Feed d in pieces ending at cuts[], then finish, then (like ews.c)
 * report the rest on failure. */
static enum be_status run(const char *d, size_t len, size_t n,
			  const size_t *cuts, size_t ncuts, struct got *g,
			  struct be_result *r)
{
	struct ews_mime_stream *ms = ews_mime_stream_new(n, sink, done, g);
	size_t at = 0;
	int rc = 0;
	for (size_t i = 0; i <= ncuts && !rc; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		rc = ews_mime_stream_feed(ms, d + at, to - at);
		at = to;
	}
	enum be_status st = ews_mime_stream_finish(ms, r);
	if (st != BE_OK)
		ews_mime_stream_fail_rest(ms, st, r->msg);
	ews_mime_stream_free(ms);
	return st;
}

/* Every item reported exactly once, in order. */
static bool reported_once(const struct got *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (g->done_calls[i] != 1)
			return false;
	return !g->order_bad && g->next == n;
}

static char *eml1, *eml3;
static size_t eml1_len, eml3_len;

static bool multi_ok(const struct got *g, enum be_status st)
{
	return st == BE_OK && reported_once(g, 3) && g->st[0] == BE_OK &&
	       g->mime[0].len == eml1_len &&
	       !memcmp(g->mime[0].data, eml1, eml1_len) &&
	       g->st[1] == BE_ITEM_GONE &&
	       strstr(g->msg[1], "ErrorItemNotFound: The specified object") &&
	       g->mime[1].len == 0 && g->st[2] == BE_OK &&
	       g->mime[2].len == eml3_len &&
	       !memcmp(g->mime[2].data, eml3, eml3_len);
}

static void test_multi(void)
{
	size_t len;
	char *d = data_file("getitem_multi.xml", &len);
	struct got g;
	struct be_result r;
	enum be_status st;

	eml1 = data_file("getitem_multi.1.eml", &eml1_len);
	eml3 = data_file("getitem_multi.3.eml", &eml3_len);

	case_begin("GetItem 3 ids: ok, ErrorItemNotFound, ok (one piece)");
	got_init(&g);
	st = run(d, len, 3, NULL, 0, &g, &r);
	CHECK_INT(st, BE_OK);
	CHECK_INT(r.retry_after_ms, 0);
	CHECK(multi_ok(&g, st));
	got_free(&g);
	case_end();

	case_begin("GetItem cut in two at every position (incl. inside &#13; and base64 groups)");
	CHECK(strstr(d, "&#13;&#10;") != NULL);
	int bad = 0;
	for (size_t cut = 0; cut <= len; cut++) {
		got_init(&g);
		st = run(d, len, 3, &cut, 1, &g, &r);
		if (!multi_ok(&g, st))
			bad++;
		got_free(&g);
	}
	CHECK_INT(bad, 0);
	case_end();

	case_begin("GetItem fed one byte at a time");
	size_t *cuts = xmalloc(len * sizeof(*cuts));
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	got_init(&g);
	st = run(d, len, 3, cuts, len, &g, &r);
	CHECK(multi_ok(&g, st));
	got_free(&g);
	case_end();

	case_begin("GetItem in random pieces (200 runs)");
	bad = 0;
	uint32_t x = 7;
	for (int run_no = 0; run_no < 200; run_no++) {
		size_t nc = 0, at = 0;
		while (1) {
			x = x * 1664525 + 1013904223;
			at += 1 + (x >> 8) % 97;
			if (at >= len)
				break;
			cuts[nc++] = at;
		}
		got_init(&g);
		st = run(d, len, 3, cuts, nc, &g, &r);
		if (!multi_ok(&g, st))
			bad++;
		got_free(&g);
	}
	CHECK_INT(bad, 0);
	case_end();

	case_begin("GetItem answer covers fewer items than asked");
	got_init(&g);
	st = run(d, len, 5, NULL, 0, &g, &r);
	CHECK_INT(st, BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "answered 3 of 5 items");
	CHECK(reported_once(&g, 5));
	CHECK(g.st[0] == BE_OK && g.st[2] == BE_OK);
	CHECK(g.st[3] == BE_PROTOCOL && g.st[4] == BE_PROTOCOL);
	got_free(&g);
	case_end();

	case_begin("GetItem answer with more items than asked");
	got_init(&g);
	st = run(d, len, 2, NULL, 0, &g, &r);
	CHECK_INT(st, BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "more answers than the 2 items");
	CHECK(reported_once(&g, 2));
	CHECK(g.st[0] == BE_OK && g.st[1] == BE_ITEM_GONE);
	got_free(&g);
	case_end();

	case_begin("GetItem sink refuses item 2: whole call refused, each item once");
	got_init(&g);
	g.abort = true;
	g.abort_index = 2;
	st = run(d, len, 3, NULL, 0, &g, &r);
	CHECK_INT(st, BE_REFUSED);
	CHECK(reported_once(&g, 3));
	CHECK(g.st[0] == BE_OK && g.st[1] == BE_ITEM_GONE &&
	      g.st[2] == BE_REFUSED);
	got_free(&g);
	case_end();

	case_begin("GetItem truncated at every position: clean failure");
	bad = 0;
	size_t end = (size_t)(strrchr(d, '>') - d) + 1;
	for (size_t cut = 0; cut < end; cut++) {
		got_init(&g);
		st = run(d, cut, 3, NULL, 0, &g, &r);
		if (st != BE_PROTOCOL || !reported_once(&g, 3) || !r.msg[0])
			bad++;
		got_free(&g);
	}
	CHECK_INT(bad, 0);
	case_end();

	free(cuts);
	free(d);
}

static void test_other_answers(void)
{
	size_t len;
	char *d;
	struct got g;
	struct be_result r;
	enum be_status st;

	case_begin("GetItem empty MimeContent, then ErrorServerBusy with BackOff");
	d = data_file("getitem_empty_busy.xml", &len);
	got_init(&g);
	st = run(d, len, 2, NULL, 0, &g, &r);
	CHECK_INT(st, BE_OK);
	CHECK(reported_once(&g, 2));
	CHECK_INT(g.st[0], BE_OK);
	CHECK_INT(g.mime[0].len, 0);
	CHECK_INT(g.st[1], BE_THROTTLED);
	CHECK_CONTAINS(g.msg[1], "ErrorServerBusy");
	CHECK_CONTAINS(g.msg[1], "1500 ms");
	CHECK_INT(r.retry_after_ms, 1500);
	got_free(&g);
	free(d);
	case_end();

	case_begin("GetItem answered with a SOAP fault (HTTP 200)");
	d = data_file("fault_busy.xml", &len);
	got_init(&g);
	st = run(d, len, 2, NULL, 0, &g, &r);
	CHECK_INT(st, BE_THROTTLED);
	CHECK_INT(r.retry_after_ms, 5000);
	CHECK_STR(r.code, "ErrorServerBusy");
	CHECK(reported_once(&g, 2));
	CHECK(g.st[0] == BE_THROTTLED && g.st[1] == BE_THROTTLED);
	got_free(&g);
	free(d);
	case_end();

	static const struct {
		const char *name, *xml;
		enum be_status st, item_st;
		const char *msg;
	} rows[] = {
		{ "not a SOAP envelope", "<html><body>hi</body></html>",
		  BE_PROTOCOL, BE_PROTOCOL, "not a SOAP envelope" },
		{ "envelope without Body",
		  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"/>", BE_PROTOCOL,
		  BE_PROTOCOL, "without a Body" },
		{ "DOCTYPE refused",
		  "<!DOCTYPE s [<!ENTITY a \"b\">]><s:Envelope xmlns:s=\""
		  EWS_NS_SOAP "\"/>", BE_PROTOCOL, BE_PROTOCOL,
		  "document type declaration refused" },
		{ "undeclared entity in MimeContent",
		  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:GetItemResponseMessage xmlns:m=\""
		  EWS_NS_M "\" ResponseClass=\"Success\"><t:MimeContent xmlns:t=\"" EWS_NS_T
		  "\">TWFu&xxe;</t:MimeContent></m:GetItemResponseMessage></s:Body></s:Envelope>",
		  BE_PROTOCOL, BE_PROTOCOL, "malformed XML" },
		{ "bad base64: that item fails, the call works",
		  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:GetItemResponseMessage xmlns:m=\""
		  EWS_NS_M "\" ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode>"
		  "<t:MimeContent xmlns:t=\"" EWS_NS_T "\">TW*u</t:MimeContent>"
		  "</m:GetItemResponseMessage></s:Body></s:Envelope>",
		  BE_OK, BE_PROTOCOL, "bad base64" },
		{ "success without MimeContent",
		  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:GetItemResponseMessage xmlns:m=\""
		  EWS_NS_M "\" ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode>"
		  "</m:GetItemResponseMessage></s:Body></s:Envelope>",
		  BE_OK, BE_PROTOCOL, "no MimeContent" },
		{ "two MimeContent in one message",
		  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:GetItemResponseMessage xmlns:m=\""
		  EWS_NS_M "\" xmlns:t=\"" EWS_NS_T "\" ResponseClass=\"Success\">"
		  "<t:MimeContent>TWFu</t:MimeContent><t:MimeContent>TWFu</t:MimeContent>"
		  "</m:GetItemResponseMessage></s:Body></s:Envelope>",
		  BE_PROTOCOL, BE_PROTOCOL, "two MimeContent" },
		{ "element inside MimeContent",
		  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:GetItemResponseMessage xmlns:m=\""
		  EWS_NS_M "\" xmlns:t=\"" EWS_NS_T "\" ResponseClass=\"Success\">"
		  "<t:MimeContent>TW<b/>Fu</t:MimeContent>"
		  "</m:GetItemResponseMessage></s:Body></s:Envelope>",
		  BE_PROTOCOL, BE_PROTOCOL, "inside MimeContent" },
		{ "nested response messages",
		  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:GetItemResponseMessage xmlns:m=\""
		  EWS_NS_M "\"><m:GetItemResponseMessage/></m:GetItemResponseMessage></s:Body></s:Envelope>",
		  BE_PROTOCOL, BE_PROTOCOL, "inside another" },
		{ "error without code and class",
		  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:GetItemResponseMessage xmlns:m=\""
		  EWS_NS_M "\"><m:MessageText>oops</m:MessageText></m:GetItemResponseMessage></s:Body></s:Envelope>",
		  BE_OK, BE_REFUSED, "ErrorUnknown: oops" },
		{ "MimeContent in CDATA",
		  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:GetItemResponseMessage xmlns:m=\""
		  EWS_NS_M "\" xmlns:t=\"" EWS_NS_T "\" ResponseClass=\"Success\">"
		  "<t:MimeContent><![CDATA[TW]]>Fu</t:MimeContent>"
		  "</m:GetItemResponseMessage></s:Body></s:Envelope>",
		  BE_OK, BE_OK, "" },
	};
	case_begin("encodings: UTF-8 with BOM works, others are refused alike in any cut");
	{
		static const char ok_doc[] =
			"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?>"
			"<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body>"
			"<m:GetItemResponseMessage xmlns:m=\"" EWS_NS_M "\" xmlns:t=\""
			EWS_NS_T "\" ResponseClass=\"Success\"><t:MimeContent>"
			"w6k=</t:MimeContent></m:GetItemResponseMessage>"
			"</s:Body></s:Envelope>";
		static const char latin1[] =
			"<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>"
			"<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body>\xe9"
			"</s:Body></s:Envelope>";
		static const char utf16[] =
			"\xff\xfe<\0s\0:\0E\0n\0v\0e\0l\0o\0p\0e\0/\0>\0";
		for (size_t cut = 0; cut <= 4; cut++) {
			size_t cuts[1] = { cut };
			got_init(&g);
			st = run(ok_doc, strlen(ok_doc), 1, cuts, 1, &g, &r);
			CHECK_INT(st, BE_OK);
			CHECK(g.st[0] == BE_OK && g.mime[0].len == 2 &&
			      !memcmp(g.mime[0].data, "\xc3\xa9", 2));
			got_free(&g);
		}
		for (size_t cut = 0; cut < sizeof(latin1) - 1; cut++) {
			got_init(&g);
			st = run(latin1, sizeof(latin1) - 1, 1, &cut, 1, &g, &r);
			CHECK_INT(st, BE_PROTOCOL);
			got_free(&g);
		}
		got_init(&g);
		st = run(utf16, sizeof(utf16) - 1, 1, NULL, 0, &g, &r);
		CHECK_INT(st, BE_PROTOCOL);
		CHECK(reported_once(&g, 1));
		got_free(&g);
	}
	case_end();

	case_begin("forbidden character reference in an error text, every cut");
	{
		static const char doc[] =
			"<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body>"
			"<m:GetItemResponseMessage xmlns:m=\"" EWS_NS_M "\" "
			"ResponseClass=\"Error\"><m:MessageText>a&#x1;b&#66;&#0;"
			"</m:MessageText><m:ResponseCode>ErrorItemNotFound"
			"</m:ResponseCode></m:GetItemResponseMessage>"
			"</s:Body></s:Envelope>";
		for (size_t cut = 0; cut <= sizeof(doc) - 1; cut++) {
			got_init(&g);
			st = run(doc, sizeof(doc) - 1, 1, &cut, 1, &g, &r);
			CHECK_INT(st, BE_OK);
			CHECK_INT(g.st[0], BE_ITEM_GONE);
			CHECK_STR(g.msg[0], "ErrorItemNotFound: abB");
			got_free(&g);
		}
	}
	case_end();

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		case_begin(rows[i].name);
		got_init(&g);
		st = run(rows[i].xml, strlen(rows[i].xml), 1, NULL, 0, &g, &r);
		CHECK_INT(st, rows[i].st);
		CHECK(reported_once(&g, 1));
		CHECK_INT(g.st[0], rows[i].item_st);
		CHECK_CONTAINS(st == BE_OK ? g.msg[0] : r.msg, rows[i].msg);
		got_free(&g);
		case_end();
	}
}

static long maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* 64 MiB of MIME streamed in 16 KiB pieces: decoded bytes all arrive and
 * the peak memory hardly moves. */
static void test_large(void)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const size_t total = (size_t)64 << 20;
	const char *head =
		"<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\""
		EWS_NS_SOAP "\"><s:Body><m:GetItemResponse xmlns:m=\"" EWS_NS_M
		"\" xmlns:t=\"" EWS_NS_T "\"><m:ResponseMessages>"
		"<m:GetItemResponseMessage ResponseClass=\"Success\">"
		"<m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Message>"
		"<t:MimeContent CharacterSet=\"UTF-8\">";
	const char *tail =
		"</t:MimeContent><t:ItemId Id=\"big\"/></t:Message></m:Items>"
		"</m:GetItemResponseMessage></m:ResponseMessages>"
		"</m:GetItemResponse></s:Body></s:Envelope>";
	struct got g;
	struct be_result r;

	case_begin("GetItem 64 MiB message streamed with flat memory");
	got_init(&g);
	g.count_only = true;
	long rss0 = maxrss_kb();
	struct ews_mime_stream *ms = ews_mime_stream_new(1, sink, done, &g);
	int rc = ews_mime_stream_feed(ms, head, strlen(head));
	char chunk[16384 + 64];
	size_t made = 0, clen = 0;
	uint32_t x = 99, want_sum = 0;
	while (made < total && !rc) {
		/* 3 raw bytes -> 4 characters, a CRLF every 76 */
		unsigned char raw[3];
		for (int k = 0; k < 3; k++) {
			x = x * 1103515245 + 12345;
			raw[k] = (unsigned char)(x >> 16);
			want_sum = want_sum * 31 + raw[k];
		}
		unsigned v = raw[0] << 16 | raw[1] << 8 | raw[2];
		chunk[clen++] = alphabet[v >> 18];
		chunk[clen++] = alphabet[(v >> 12) & 63];
		chunk[clen++] = alphabet[(v >> 6) & 63];
		chunk[clen++] = alphabet[v & 63];
		made += 3;
		if (made % 57 == 0) {
			chunk[clen++] = '\r';
			chunk[clen++] = '\n';
		}
		if (clen >= 16384) {
			rc = ews_mime_stream_feed(ms, chunk, clen);
			clen = 0;
		}
	}
	if (!rc && clen)
		rc = ews_mime_stream_feed(ms, chunk, clen);
	if (!rc)
		rc = ews_mime_stream_feed(ms, tail, strlen(tail));
	CHECK_INT(rc, 0);
	CHECK_INT(ews_mime_stream_finish(ms, &r), BE_OK);
	ews_mime_stream_free(ms);
	long grew = maxrss_kb() - rss0;
	CHECK_INT(g.bytes, made);
	CHECK(g.sum == want_sum);
	CHECK(reported_once(&g, 1) && g.st[0] == BE_OK);
	printf("  %zu MiB decoded, peak memory grew by %ld KiB\n", made >> 20,
	       grew);
	CHECK(grew < 16 * 1024);
	got_free(&g);
	case_end();
}

int main(void)
{
	test_multi();
	test_other_answers();
	test_large();
	free(eml1);
	free(eml3);
	return check_done("test_ews_mime");
}
