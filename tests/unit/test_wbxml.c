/*
 * test_wbxml.c - the WBXML codec of the ActiveSync backend: tag tables,
 * exact encoder bytes, round trips through the tree, streaming in pieces of
 * every size, and a table of malformed documents that must each fail with
 * the right reason.
 */
#include "backend/eas/wbxml.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

#define B(...) ((const unsigned char[]){ __VA_ARGS__ }), \
	sizeof((const unsigned char[]){ __VA_ARGS__ })

static void test_names(void)
{
	static const struct { unsigned tag; const char *name; } t[] = {
		{ WB_AS_SYNC, "AirSync:Sync" },
		{ WB_AS_SYNC_KEY, "AirSync:SyncKey" },
		{ WB_AS_MIMESUPPORT, "AirSync:MIMESupport" },
		{ WB_AS_HEARTBEAT_INTERVAL, "AirSync:HeartbeatInterval" },
		{ WB_EM_DATE_RECEIVED, "Email:DateReceived" },
		{ WB_EM_FLAG_STATUS, "Email:FlagStatus" },
		{ WB_MV_DST_MSG_ID, "Move:DstMsgId" },
		{ WB_FH_FOLDER_SYNC, "FolderHierarchy:FolderSync" },
		{ WB_FH_COUNT, "FolderHierarchy:Count" },
		{ WB_PING_MAX_FOLDERS, "Ping:MaxFolders" },
		{ WB_PROV_POLICY_KEY, "Provision:PolicyKey" },
		{ WB_PROV_EASPROVISION_DOC, "Provision:EASProvisionDoc" },
		{ WB_SRCH_DEEP_TRAVERSAL, "Search:DeepTraversal" },
		{ WB_ASB_BODY_PREFERENCE, "AirSyncBase:BodyPreference" },
		{ WB_ASB_ESTIMATED_DATA_SIZE, "AirSyncBase:EstimatedDataSize" },
		{ WB_SET_USER_AGENT, "Settings:UserAgent" },
		{ WB_IO_DST_FLD_ID, "ItemOperations:DstFldId" },
		{ WB_CM_SAVE_IN_SENT_ITEMS, "ComposeMail:SaveInSentItems" },
		{ WB_CM_MIME, "ComposeMail:Mime" },
		{ WB_EM2_CONVERSATION_ID, "Email2:ConversationId" },
		{ WB_EM2_IS_DRAFT, "Email2:IsDraft" },
		{ WB_EM2_BCC, "Email2:Bcc" },
		{ WB_EM2_SEND, "Email2:Send" },
		{ WB_ASB_CLIENT_ID, "AirSyncBase:ClientId" },
		{ WB_ASB_LOCATION, "AirSyncBase:Location" },
	};
	char tmp[64];
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_STR(wbxml_tag_name(t[i].tag, tmp, sizeof(tmp)), t[i].name);
	CHECK(wbxml_tag_name(0x0004, tmp, sizeof(tmp)) == NULL);
	CHECK(wbxml_tag_name(0x0305, tmp, sizeof(tmp)) == NULL);  /* AirNotify: not loaded */
	CHECK_STR(wbxml_tag_name(WB_CO_ANNIVERSARY, tmp, sizeof(tmp)), "Contacts:Anniversary");
	CHECK_STR(wbxml_tag_name(WB_CAL_FIRST_DAY_OF_WEEK, tmp, sizeof(tmp)), "Calendar:FirstDayOfWeek");
	CHECK_STR(wbxml_tag_name(WB_CAL_ATTENDEE_TYPE, tmp, sizeof(tmp)), "Calendar:AttendeeType");
	CHECK_STR(wbxml_tag_name(WB_TK_FIRST_DAY_OF_WEEK, tmp, sizeof(tmp)), "Tasks:FirstDayOfWeek");
	CHECK_STR(wbxml_tag_name(WB_CO_WEIGHTED_RANK, tmp, sizeof(tmp)), "Contacts:WeightedRank");
	CHECK(wbxml_tag_name(0x0f06, tmp, sizeof(tmp)) == NULL);  /* Search hole */
	CHECK(wbxml_tag_name(0x3f05, tmp, sizeof(tmp)) == NULL);
	CHECK_STR(wbxml_page_name(17), "AirSyncBase");
}

static void test_encode_bytes(void)
{
	struct buf b;
	struct wbxml_enc e;
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_FH_FOLDER_SYNC);
	wbxml_str(&e, WB_FH_SYNC_KEY, "0");
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	static const unsigned char want[] = {
		0x03, 0x01, 0x6a, 0x00, 0x00, 0x07, 0x56, 0x52, 0x03, '0', 0x00,
		0x01, 0x01 };
	CHECK(b.len == sizeof(want) && !memcmp(b.data, want, sizeof(want)));

	/* page switches only when needed; empty element; opaque length as
	 * a multi-byte integer */
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_SYNC);
	wbxml_empty(&e, WB_AS_GET_CHANGES);
	wbxml_start(&e, WB_ASB_BODY_PREFERENCE);
	wbxml_uint(&e, WB_ASB_TYPE, 4);
	wbxml_end(&e);
	char big[200];
	memset(big, 'x', sizeof(big));
	wbxml_opaque(&e, WB_CM_MIME, big, sizeof(big));
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	static const unsigned char want2[] = {
		0x03, 0x01, 0x6a, 0x00, 0x45, 0x13, 0x00, 0x11, 0x45, 0x46,
		0x03, '4', 0x00, 0x01, 0x01, 0x00, 0x15, 0x50, 0xc3, 0x81, 0x48 };
	CHECK(b.len == sizeof(want2) + 200 + 2 &&
	      !memcmp(b.data, want2, sizeof(want2)));
	CHECK(b.len >= 2 && (unsigned char)b.data[b.len - 2] == 0x01 &&
	      (unsigned char)b.data[b.len - 1] == 0x01);

	/* misuse is reported */
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == -1);
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_SYNC);
	CHECK(wbxml_enc_finish(&e) == -1);
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_empty(&e, 0x0003);  /* not a tag token */
	CHECK(wbxml_enc_finish(&e) == -1);
	buf_free(&b);
	/* a full buffer */
	buf_init(&b, 16);
	wbxml_enc_init(&e, &b);
	wbxml_str(&e, WB_AS_SYNC, "a string longer than the cap");
	CHECK(wbxml_enc_finish(&e) == -1);
	buf_free(&b);
}

/* A document with every construct, encoded then parsed back. */
static void build_sample(struct buf *b)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_IO_ITEM_OPERATIONS);
	wbxml_str(&e, WB_IO_STATUS, "1");
	wbxml_start(&e, WB_IO_RESPONSE);
	wbxml_start(&e, WB_IO_FETCH);
	wbxml_str(&e, WB_IO_STATUS, "1");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "mail%2Finbox");
	wbxml_str(&e, WB_AS_SERVER_ID, "17");
	wbxml_start(&e, WB_IO_PROPERTIES);
	wbxml_start(&e, WB_ASB_BODY);
	wbxml_uint(&e, WB_ASB_TYPE, 4);
	wbxml_opaque(&e, WB_ASB_DATA, "MIME\0with\r\nNUL", 14);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_start(&e, WB_IO_FETCH);
	wbxml_str(&e, WB_IO_STATUS, "6");
	wbxml_empty(&e, WB_AS_SERVER_ID);
	wbxml_str(&e, WB_EM_SUBJECT, "caf\xc3\xa9 \xe2\x82\xac");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
}

static void check_sample_tree(const struct wbxml_node *doc)
{
	const struct wbxml_node *top = wbxml_child(doc, WB_IO_ITEM_OPERATIONS);
	CHECK(top != NULL);
	CHECK_STR(wbxml_child_text(top, WB_IO_STATUS), "1");
	const struct wbxml_node *f = wbxml_path(doc, WB_IO_ITEM_OPERATIONS,
						WB_IO_RESPONSE, WB_IO_FETCH, 0);
	CHECK(f != NULL);
	CHECK_STR(wbxml_child_text(f, WB_AS_SERVER_ID), "17");
	CHECK_STR(wbxml_child_text(f, WB_AS_COLLECTION_ID), "mail%2Finbox");
	const struct wbxml_node *d = wbxml_path(f, WB_IO_PROPERTIES, WB_ASB_BODY,
						WB_ASB_DATA, 0);
	CHECK(d && d->len == 14 && !memcmp(d->text, "MIME\0with\r\nNUL", 14));
	const struct wbxml_node *f2 = wbxml_next(f);
	CHECK(f2 != NULL);
	CHECK_STR(wbxml_child_text(f2, WB_IO_STATUS), "6");
	CHECK_STR(wbxml_child_text(f2, WB_AS_SERVER_ID), "");
	CHECK_STR(wbxml_child_text(f2, WB_EM_SUBJECT), "caf\xc3\xa9 \xe2\x82\xac");
	CHECK(wbxml_child_text(f2, WB_EM_FROM) == NULL);
	CHECK(f2 && wbxml_next(f2) == NULL);
}

static void test_roundtrip(void)
{
	struct buf b;
	char err[128];
	buf_init(&b, 0);
	build_sample(&b);
	struct wbxml_node *doc = wbxml_parse(b.data, b.len, 1 << 20, 1000,
					     err, sizeof(err));
	CHECK(doc != NULL);
	if (doc)
		check_sample_tree(doc);
	struct buf dump;
	buf_init(&dump, 0);
	wbxml_dump(doc, &dump);
	if (!strstr(dump.data, "NUL</AirSyncBase:Data>"))
		printf("%s", dump.data);
	CHECK(strstr(dump.data, "<AirSyncBase:Data>MIME\\x00with\\x0d\\x0aNUL</AirSyncBase:Data>") != NULL);
	buf_free(&dump);
	wbxml_free(doc);

	/* limits */
	CHECK(wbxml_parse(b.data, b.len, 1 << 20, 5, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "limit") != NULL);
	CHECK(wbxml_parse(b.data, b.len, 20, 1000, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "limit") != NULL);

	/* every truncation fails cleanly */
	int bad = 0;
	for (size_t n = 0; n < b.len; n++) {
		struct wbxml_node *t = wbxml_parse(b.data, n, 1 << 20, 1000,
						   err, sizeof(err));
		if (t) {
			bad++;
			wbxml_free(t);
		}
	}
	CHECK(bad == 0);
	buf_free(&b);
}

/* Streaming: the same events whatever the piece size; opaque content
 * arrives in order. */
struct rec {
	struct buf ev;
	struct buf data;  /* all content bytes */
	int stop_at;      /* stop at the nth start, 0 never */
	int starts;
};

static int r_start(void *arg, unsigned tag, bool empty)
{
	struct rec *r = arg;
	buf_printf(&r->ev, "<%x%s>", tag, empty ? "/" : "");
	return ++r->starts == r->stop_at ? -1 : 0;
}

static int r_end(void *arg, unsigned tag)
{
	struct rec *r = arg;
	buf_printf(&r->ev, "</%x>", tag);
	return 0;
}

static int r_text(void *arg, const void *p, size_t n, bool last)
{
	struct rec *r = arg;
	buf_append(&r->data, p, n);
	if (last)
		buf_puts(&r->ev, "[t]");
	return 0;
}

static void test_streaming(void)
{
	struct buf b;
	buf_init(&b, 0);
	build_sample(&b);
	struct rec whole = { 0 };
	buf_init(&whole.ev, 0);
	buf_init(&whole.data, 0);
	struct wbxml_handler h = { r_start, r_end, r_text, &whole };
	struct wbxml_dec d;
	wbxml_dec_init(&d, &h);
	CHECK(wbxml_feed(&d, b.data, b.len) == 0);
	CHECK(wbxml_dec_finish(&d) == 0);
	CHECK(d.offset == b.len);
	for (size_t piece = 1; piece <= 7; piece++) {
		struct rec r = { 0 };
		buf_init(&r.ev, 0);
		buf_init(&r.data, 0);
		h.arg = &r;
		wbxml_dec_init(&d, &h);
		int rc = 0;
		for (size_t at = 0; at < b.len && !rc; at += piece)
			rc = wbxml_feed(&d, b.data + at,
					b.len - at < piece ? b.len - at : piece);
		CHECK(rc == 0 && wbxml_dec_finish(&d) == 0);
		CHECK(r.ev.len == whole.ev.len &&
		      !memcmp(r.ev.data, whole.ev.data, r.ev.len));
		CHECK(r.data.len == whole.data.len &&
		      !memcmp(r.data.data, whole.data.data, r.data.len));
		buf_free(&r.ev);
		buf_free(&r.data);
	}
	/* a receiver can stop the decoder */
	struct rec s = { .stop_at = 3 };
	buf_init(&s.ev, 0);
	buf_init(&s.data, 0);
	h.arg = &s;
	wbxml_dec_init(&d, &h);
	CHECK(wbxml_feed(&d, b.data, b.len) == -1);
	CHECK(d.stopped && strstr(d.err, "stopped") != NULL);
	CHECK(wbxml_feed(&d, b.data, 1) == -1);
	buf_free(&s.ev);
	buf_free(&s.data);
	buf_free(&whole.ev);
	buf_free(&whole.data);
	buf_free(&b);
}

/* A large opaque block (1 MiB) passes through in pieces without being
 * held by the decoder. */
static size_t big_seen;
static size_t big_pieces;
static int big_text(void *arg, const void *p, size_t n, bool last)
{
	(void)arg; (void)p; (void)last;
	big_seen += n;
	big_pieces++;
	return 0;
}

static void test_big_opaque(void)
{
	size_t n = 1 << 20;
	char *mime = malloc(n);
	memset(mime, 'm', n);
	struct buf b;
	buf_init(&b, 0);
	struct wbxml_enc e;
	wbxml_enc_init(&e, &b);
	wbxml_opaque(&e, WB_ASB_DATA, mime, n);
	CHECK(wbxml_enc_finish(&e) == 0);
	struct wbxml_handler h = { NULL, NULL, big_text, NULL };
	struct wbxml_dec d;
	wbxml_dec_init(&d, &h);
	int rc = 0;
	for (size_t at = 0; at < b.len && !rc; at += 16384)
		rc = wbxml_feed(&d, b.data + at,
				b.len - at < 16384 ? b.len - at : 16384);
	CHECK(rc == 0 && wbxml_dec_finish(&d) == 0);
	CHECK(big_seen == n);
	CHECK(big_pieces >= 64);
	free(mime);
	buf_free(&b);
}

static void test_malformed(void)
{
	const struct {
		const char *name;
		const unsigned char *p;
		size_t n;
		const char *err;
	} t[] = {
		{ "empty", (const unsigned char *)"", 0, "no root" },
		{ "version", B(0x04, 0x01, 0x6a, 0x00, 0x45, 0x01), "version" },
		{ "header only", B(0x03, 0x01, 0x6a, 0x00), "no root" },
		{ "charset latin1", B(0x03, 0x01, 0x04, 0x00, 0x05), "not UTF-8" },
		{ "mb too long", B(0x03, 0x81, 0x81, 0x81, 0x81, 0x81, 0x01), "multi-byte" },
		{ "mb leading 0x80", B(0x03, 0x80, 0x01, 0x6a, 0x00, 0x05), "multi-byte" },
		{ "mb overflow", B(0x03, 0x01, 0x6a, 0x9f, 0xff, 0xff, 0xff, 0x7f), "multi-byte" },
		{ "string table too big", B(0x03, 0x01, 0x6a, 0x84, 0x80, 0x81, 0x00), "string table" },
		{ "string table cut", B(0x03, 0x01, 0x6a, 0x05, 'a', 'b'), "no root" },
		{ "attributes", B(0x03, 0x01, 0x6a, 0x00, 0x85, 0x01), "attributes" },
		{ "STR_T", B(0x03, 0x01, 0x6a, 0x00, 0x45, 0x83, 0x00, 0x01), "unsupported" },
		{ "entity", B(0x03, 0x01, 0x6a, 0x00, 0x45, 0x02, 0x41, 0x01), "unsupported" },
		{ "literal", B(0x03, 0x01, 0x6a, 0x00, 0x04, 0x00), "unsupported" },
		{ "EXT_I_0", B(0x03, 0x01, 0x6a, 0x00, 0x45, 0x40, 'a', 0, 0x01), "unsupported" },
		{ "PI", B(0x03, 0x01, 0x6a, 0x00, 0x43, 0x01), "unsupported" },
		{ "end at top", B(0x03, 0x01, 0x6a, 0x00, 0x01), "end tag" },
		{ "text at top", B(0x03, 0x01, 0x6a, 0x00, 0x03, 'a', 0), "outside" },
		{ "opaque at top", B(0x03, 0x01, 0x6a, 0x00, 0xc3, 0x01, 'a'), "outside" },
		{ "two roots", B(0x03, 0x01, 0x6a, 0x00, 0x05, 0x06), "after the root" },
		{ "after root", B(0x03, 0x01, 0x6a, 0x00, 0x45, 0x01, 0x03), "after the root" },
		{ "unclosed", B(0x03, 0x01, 0x6a, 0x00, 0x45, 0x46, 0x01), "cut short" },
		{ "string cut", B(0x03, 0x01, 0x6a, 0x00, 0x45, 0x03, 'a', 'b'), "cut short" },
		{ "opaque cut", B(0x03, 0x01, 0x6a, 0x00, 0x45, 0xc3, 0x05, 'a'), "cut short" },
		{ "opaque len cut", B(0x03, 0x01, 0x6a, 0x00, 0x45, 0xc3, 0x85), "cut short" },
		{ "switch cut", B(0x03, 0x01, 0x6a, 0x00, 0x45, 0x00), "cut short" },
	};
	char err[160];
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct wbxml_node *doc = wbxml_parse(t[i].p, t[i].n, 1 << 20,
						     1000, err, sizeof(err));
		if (doc || !strstr(err, t[i].err)) {
			check_failed++;
			printf("FAIL malformed '%s': %s\n", t[i].name,
			       doc ? "accepted" : err);
		}
		check_run++;
		wbxml_free(doc);
	}
	/* nesting: 64 levels are fine, 65 are not */
	for (int depth = 64; depth <= 65; depth++) {
		struct buf b;
		buf_init(&b, 0);
		buf_append(&b, "\x03\x01\x6a\x00", 4);
		for (int k = 0; k < depth; k++)
			buf_append(&b, "\x45", 1);
		for (int k = 0; k < depth; k++)
			buf_append(&b, "\x01", 1);
		struct wbxml_node *doc = wbxml_parse(b.data, b.len, 1 << 20,
						     1000, err, sizeof(err));
		CHECK((doc != NULL) == (depth == 64));
		if (!doc)
			CHECK(strstr(err, "deeper") != NULL);
		wbxml_free(doc);
		buf_free(&b);
	}
	/* public id 0 takes a string table index; page switch at the end */
	struct wbxml_node *doc = wbxml_parse(
		B(0x02, 0x00, 0x00, 0x6a, 0x00, 0x45, 0x01, 0x00, 0x07),
		1 << 20, 100, err, sizeof(err));
	CHECK(doc != NULL && doc->child && doc->child->tag == WB_AS_SYNC);
	wbxml_free(doc);
}

int main(void)
{
	test_names();
	test_encode_bytes();
	test_roundtrip();
	test_streaming();
	test_big_opaque();
	test_malformed();
	return check_done("test_wbxml");
}
