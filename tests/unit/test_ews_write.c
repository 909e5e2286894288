/*
 * test_ews_write.c - the write side of the EWS backend without a server:
 * every write request of ews_request.c parsed back with libxml2 (elements,
 * attributes, schema order, base64 of the message round-tripping through
 * the decoder, hostile ids/names/tokens/categories escaped, what depends
 * on the server version), every write answer of ews_parse.c on recorded-
 * format answers in data/ews/write_*.xml (success, per-item errors graded
 * through the one table, an empty Items for a send, a missing ChangeKey,
 * garbage and every truncation), and the checks ews_write.c makes before
 * any request.
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"
#include "test_ews_util.h"

#include <stdbool.h>
#include <time.h>

static const char nasty[] = "id\"<&'>\x01\xc3\xa9=\t";
static const char nasty_out[] = "id\"<&'>\xc3\xa9=\t";  /* control dropped */

/* ---- reading requests back ---- */

static char *text(const xmlNode *n)
{
	char *s = NULL;
	if (n)
		xml_text(n, (size_t)1 << 28, &s);
	return s;
}

static char *attr(const xmlNode *n, const char *name)
{
	char *s = NULL;
	if (n)
		xml_attr(n, name, 1 << 20, &s);
	return s;
}

#define CHECK_OWNED_STR(expr, want) do { \
	char *s_ = (expr); \
	CHECK_STR(s_, want); \
	free(s_); \
} while (0)

#define CHECK_NO_ATTR(node, name) do { \
	char *a_ = attr((node), (name)); \
	CHECK(a_ == NULL); \
	free(a_); \
} while (0)

/* Child `name` in the messages (m) or types (t) namespace. */
static xmlNode *m_(const xmlNode *n, const char *name)
{
	return xml_child(n, EWS_NS_M, name);
}

static xmlNode *t_(const xmlNode *n, const char *name)
{
	return xml_child(n, EWS_NS_T, name);
}

/* The local names of the element children of n, joined by ' '. */
static char *children(const xmlNode *n)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append(&b, "", 0);
	for (xmlNode *c = xml_child(n, NULL, NULL); c;
	     c = xml_next(c, NULL, NULL))
		buf_printf(&b, "%s%s", b.len ? " " : "", (const char *)c->name);
	return b.data;
}

static int count(const xmlNode *parent, const char *ns, const char *name)
{
	int n = 0;
	for (xmlNode *c = xml_child(parent, ns, name); c;
	     c = xml_next(c, ns, name))
		n++;
	return n;
}

/* The Id (and ChangeKey, NULL = must be absent) of a t:ItemId/FolderId. */
static void check_id(const xmlNode *n, const char *id, const char *ck)
{
	CHECK(n != NULL);
	CHECK_OWNED_STR(attr(n, "Id"), id);
	if (ck)
		CHECK_OWNED_STR(attr(n, "ChangeKey"), ck);
	else
		CHECK_NO_ATTR(n, "ChangeKey");
}

struct bytes {
	struct buf b;
};

static int collect(void *arg, const void *data, size_t len)
{
	return buf_append(&((struct bytes *)arg)->b, data, len);
}

/* Whether the text of a t:MimeContent decodes to exactly mime[0..len). */
static bool mime_round_trips(const xmlNode *mc, const void *mime, size_t len)
{
	char *t = text(mc);
	struct bytes out;
	struct b64_stream d;
	bool ok;
	buf_init(&out.b, 0);
	b64_stream_init(&d, collect, &out);
	ok = t && !b64_stream_feed(&d, t, strlen(t)) && !b64_stream_finish(&d) &&
	     out.b.len == len && (!len || !memcmp(out.b.data, mime, len));
	/* one line, as we write it */
	ok = ok && !strpbrk(t, " \r\n\t");
	free(t);
	buf_free(&out.b);
	return ok;
}

/* The t:ExtendedProperty in parent whose ExtendedFieldURI has attribute
 * key=value. */
static xmlNode *ext_prop(const xmlNode *parent, const char *key,
			 const char *value)
{
	for (xmlNode *p = t_(parent, "ExtendedProperty"); p;
	     p = xml_next(p, EWS_NS_T, "ExtendedProperty")) {
		char *v = attr(t_(p, "ExtendedFieldURI"), key);
		bool hit = v && !strcmp(v, value);
		free(v);
		if (hit)
			return p;
	}
	return NULL;
}

static void check_token_uri(const xmlNode *uri)
{
	CHECK(uri != NULL);
	CHECK_OWNED_STR(attr(uri, "PropertySetId"),
			"3c7e2f4a-9b1d-4e6a-8f5c-2d0b7a1e9c43");
	CHECK_OWNED_STR(attr(uri, "PropertyName"), "ExchangefsToken");
	CHECK_OWNED_STR(attr(uri, "PropertyType"), "String");
	CHECK_NO_ATTR(uri, "PropertyTag");
}

/* ---- the encoders under the requests ---- */

static void test_encoders(void)
{
	case_begin("base64 encoder: RFC 4648 vectors");
	static const char *const vec[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		struct buf b;
		buf_init(&b, 0);
		CHECK_INT(b64_encode(&b, vec[i][0], strlen(vec[i][0])), 0);
		CHECK_STR(b.data, vec[i][1]);
		buf_free(&b);
	}
	case_end();

	case_begin("base64 encoder: every length 0..9000 of every byte value round-trips");
	unsigned char *raw = xmalloc(9000);
	for (size_t i = 0; i < 9000; i++)
		raw[i] = (unsigned char)(i * 131 + (i >> 8));
	int bad = 0;
	for (size_t n = 0; n <= 9000; n += n < 64 ? 1 : 997) {
		struct buf b;
		struct bytes out;
		struct b64_stream d;
		buf_init(&b, 0);
		buf_init(&out.b, 0);
		b64_encode(&b, raw, n);
		b64_stream_init(&d, collect, &out);
		if (b.len != (n + 2) / 3 * 4 ||
		    b64_stream_feed(&d, b.data ? b.data : "", b.len) ||
		    b64_stream_finish(&d) || out.b.len != n ||
		    (n && memcmp(out.b.data, raw, n)))
			bad++;
		buf_free(&b);
		buf_free(&out.b);
	}
	CHECK_INT(bad, 0);
	case_end();

	case_begin("base64 encoder: stops at the buffer's cap");
	struct buf capped;
	buf_init(&capped, 100);
	CHECK_INT(b64_encode(&capped, raw, 9000), -1);
	CHECK(capped.len <= 100);
	buf_free(&capped);
	free(raw);
	case_end();

	case_begin("xs:dateTime written for PR_MESSAGE_DELIVERY_TIME");
	static const struct { int64_t t; const char *s; } dates[] = {
		{ 0, "1970-01-01T00:00:00Z" },
		{ 1795167067, "2026-11-20T09:31:07Z" },
		{ 951782400, "2000-02-29T00:00:00Z" },
		{ -1, "1969-12-31T23:59:59Z" },
		{ -86400, "1969-12-31T00:00:00Z" },
		{ -62135596800LL, "0001-01-01T00:00:00Z" },
		{ -99999999999999LL, "0001-01-01T00:00:00Z" },
		{ 253402300799LL, "9999-12-31T23:59:59Z" },
		{ INT64_MAX, "9999-12-31T23:59:59Z" },
	};
	for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		char s[32];
		int64_t back;
		xs_datetime_format(dates[i].t, s);
		CHECK_STR(s, dates[i].s);
		CHECK(!xs_datetime(s, &back));
	}
	/* and back, over a range of days */
	bad = 0;
	for (int64_t t = -400LL * 366 * 86400; t < 400LL * 366 * 86400;
	     t += 86400 * 7 + 3607) {
		char s[32];
		int64_t back;
		xs_datetime_format(t, s);
		if (xs_datetime(s, &back) || back != t)
			bad++;
	}
	CHECK_INT(bad, 0);
	case_end();

	case_begin("schema versions compared");
	CHECK(ews_version_at_least("Exchange2013_SP1", "Exchange2013"));
	CHECK(ews_version_at_least("Exchange2013", "Exchange2013"));
	CHECK(!ews_version_at_least("Exchange2010_SP2", "Exchange2013"));
	CHECK(!ews_version_at_least("Exchange2007_SP1", "Exchange2010_SP1"));
	CHECK(ews_version_at_least("Exchange2010_SP2", "Exchange2010_SP1"));
	CHECK(!ews_version_at_least("Exchange2010", "Exchange2010_SP1"));
	CHECK(ews_version_at_least(NULL, "Exchange2013"));
	CHECK(ews_version_at_least("V2017_07_11", "Exchange2013_SP1"));
	for (size_t i = 0; ews_versions[i]; i++)
		CHECK(ews_version_at_least(ews_versions[i], "Exchange2007_SP1"));
	case_end();
}

/* ---- requests ---- */

static void test_special_request(void)
{
	struct buf b;
	xmlDoc *doc;
	case_begin("GetFolder of the five special folders, in enum order");
	buf_init(&b, 0);
	ews_req_special_folders(&b, EWS_VERSION_DEFAULT);
	xmlNode *op = op_of(&b, &doc);
	CHECK(xml_is(op, EWS_NS_M, "GetFolder"));
	CHECK_OWNED_STR(children(op), "FolderShape FolderIds");
	CHECK_OWNED_STR(text(t_(m_(op, "FolderShape"), "BaseShape")), "IdOnly");
	static const char *const want[BE_SPECIAL_N] = {
		[BE_INBOX] = "inbox", [BE_DRAFTS] = "drafts",
		[BE_SENT] = "sentitems", [BE_DELETED] = "deleteditems",
		[BE_OUTBOX] = "outbox",
	};
	xmlNode *ids = m_(op, "FolderIds");
	CHECK_INT(count(ids, NULL, NULL), BE_SPECIAL_N);
	xmlNode *d = t_(ids, "DistinguishedFolderId");
	for (int k = 0; k < BE_SPECIAL_N; k++) {
		CHECK_OWNED_STR(attr(d, "Id"), want[k]);
		d = xml_next(d, EWS_NS_T, "DistinguishedFolderId");
	}
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("GetFolder of one folder by id (its ChangeKey)");
	buf_init(&b, 0);
	ews_req_get_folder(&b, "Exchange2010", nasty);
	op = request_op_v(&b, &doc, "Exchange2010");
	CHECK(xml_is(op, EWS_NS_M, "GetFolder"));
	CHECK_OWNED_STR(text(t_(m_(op, "FolderShape"), "BaseShape")), "IdOnly");
	check_id(t_(m_(op, "FolderIds"), "FolderId"), nasty_out, NULL);
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();
}

/* A message with every byte value, CR LF line ends and a NUL. */
static char *sample_mime(size_t *len)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "From: a@example.com\r\nTo: b@example.com\r\n"
		     "Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n");
	for (int i = 0; i < 256; i++) {
		unsigned char c = (unsigned char)i;
		buf_append(&b, &c, 1);
	}
	buf_puts(&b, "\r\n]]></t:MimeContent>&amp;\r\n");
	*len = b.len;
	return b.data;
}

static void test_create_request(void)
{
	size_t mlen;
	char *mime = sample_mime(&mlen);
	static const struct {
		enum be_disposition how;
		const char *disposition;
		const char *name;
	} rows[] = {
		{ BE_SAVE_DRAFT, "SaveOnly", "CreateItem draft: SaveOnly, MIME and token only" },
		{ BE_SAVE, "SaveOnly", "CreateItem saved message: read, delivery time" },
		{ BE_SEND, "SendAndSaveCopy", "CreateItem send: SendAndSaveCopy to the folder given" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct buf b;
		xmlDoc *doc;
		case_begin(rows[i].name);
		buf_init(&b, 0);
		ews_req_create_item(&b, EWS_VERSION_DEFAULT, nasty, mime, mlen,
				    rows[i].how, 1795167067, "tok-123-ABC");
		xmlNode *op = op_of(&b, &doc);
		CHECK(xml_is(op, EWS_NS_M, "CreateItem"));
		CHECK_OWNED_STR(attr(op, "MessageDisposition"),
				rows[i].disposition);
		CHECK_OWNED_STR(children(op), "SavedItemFolderId Items");
		check_id(t_(m_(op, "SavedItemFolderId"), "FolderId"), nasty_out,
			 NULL);
		xmlNode *items = m_(op, "Items");
		CHECK_INT(count(items, NULL, NULL), 1);
		xmlNode *msg = t_(items, "Message");
		CHECK(msg != NULL);
		/* ItemType's sequence: MimeContent first, ExtendedProperty
		 * (after HasAttachments) later */
		CHECK_OWNED_STR(children(msg),
				rows[i].how == BE_SAVE
					? "MimeContent ExtendedProperty ExtendedProperty ExtendedProperty"
					: "MimeContent ExtendedProperty");
		xmlNode *mc = t_(msg, "MimeContent");
		CHECK_OWNED_STR(attr(mc, "CharacterSet"), "UTF-8");
		CHECK(mime_round_trips(mc, mime, mlen));
		xmlNode *tok = ext_prop(msg, "PropertyName", "ExchangefsToken");
		check_token_uri(t_(tok, "ExtendedFieldURI"));
		CHECK_OWNED_STR(text(t_(tok, "Value")), "tok-123-ABC");
		xmlNode *flags = ext_prop(msg, "PropertyTag", "0x0E07");
		xmlNode *when = ext_prop(msg, "PropertyTag", "0x0E06");
		if (rows[i].how == BE_SAVE) {
			CHECK_OWNED_STR(attr(t_(flags, "ExtendedFieldURI"),
					     "PropertyType"), "Integer");
			CHECK_OWNED_STR(text(t_(flags, "Value")), "1");
			CHECK_OWNED_STR(attr(t_(when, "ExtendedFieldURI"),
					     "PropertyType"), "SystemTime");
			CHECK_OWNED_STR(text(t_(when, "Value")),
					"2026-11-20T09:31:07Z");
		} else {
			CHECK(flags == NULL && when == NULL);
		}
		xmlFreeDoc(doc);
		buf_free(&b);
		case_end();
	}

	case_begin("CreateItem saved message with date 0: delivered now");
	struct buf b;
	xmlDoc *doc;
	buf_init(&b, 0);
	int64_t before = time(NULL);
	ews_req_create_item(&b, EWS_VERSION_DEFAULT, "F", "x", 1, BE_SAVE, 0,
			    "t");
	xmlNode *op = op_of(&b, &doc);
	char *v = text(t_(ext_prop(t_(m_(op, "Items"), "Message"),
				   "PropertyTag", "0x0E06"), "Value"));
	int64_t t = 0;
	CHECK(v && !xs_datetime(v, &t));
	CHECK(t >= before && t <= time(NULL));
	free(v);
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	/* (libxml2 refuses text nodes over 10 MB without XML_PARSE_HUGE, so
	 * the tree parser here reads back at most 7.5 MB of message) */
	case_begin("CreateItem of 7 MB: base64 in one piece round-trips");
	size_t big = 7u << 20;
	char *huge = xmalloc(big);
	for (size_t i = 0; i < big; i++)
		huge[i] = (char)(i * 7 + (i >> 12));
	buf_init(&b, 0);
	ews_req_create_item(&b, EWS_VERSION_DEFAULT, "F", huge, big,
			    BE_SAVE_DRAFT, 0, "t");
	CHECK(b.len > big / 3 * 4 && b.len < big / 3 * 4 + 4096);
	op = op_of(&b, &doc);
	CHECK(mime_round_trips(t_(t_(m_(op, "Items"), "Message"), "MimeContent"),
			       huge, big));
	xmlFreeDoc(doc);
	buf_free(&b);
	free(huge);
	case_end();
	free(mime);
}

static void test_find_request(void)
{
	struct buf b;
	xmlDoc *doc;
	case_begin("FindItem by token: Shallow, IdOnly, IsEqualTo, folder");
	buf_init(&b, 0);
	ews_req_find_token(&b, EWS_VERSION_DEFAULT, nasty, "0123-abcd");
	xmlNode *op = op_of(&b, &doc);
	CHECK(xml_is(op, EWS_NS_M, "FindItem"));
	CHECK_OWNED_STR(attr(op, "Traversal"), "Shallow");
	/* FindItemType: ItemShape, (view), Restriction, SortOrder,
	 * ParentFolderIds */
	CHECK_OWNED_STR(children(op), "ItemShape Restriction ParentFolderIds");
	CHECK_OWNED_STR(text(t_(m_(op, "ItemShape"), "BaseShape")), "IdOnly");
	xmlNode *eq = t_(m_(op, "Restriction"), "IsEqualTo");
	CHECK_OWNED_STR(children(eq), "ExtendedFieldURI FieldURIOrConstant");
	check_token_uri(t_(eq, "ExtendedFieldURI"));
	CHECK_OWNED_STR(attr(t_(t_(eq, "FieldURIOrConstant"), "Constant"),
			     "Value"), "0123-abcd");
	CHECK_INT(count(m_(op, "ParentFolderIds"), NULL, NULL), 1);
	check_id(t_(m_(op, "ParentFolderIds"), "FolderId"), nasty_out, NULL);
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();
}

/* The t:Updates of an UpdateItem of `id`, checking the envelope of it. */
static xmlNode *updates_of(xmlNode *op, const char *id, const char *ck)
{
	CHECK(xml_is(op, EWS_NS_M, "UpdateItem"));
	CHECK_OWNED_STR(attr(op, "MessageDisposition"), "SaveOnly");
	CHECK_OWNED_STR(attr(op, "ConflictResolution"),
			ck ? "AutoResolve" : "AlwaysOverwrite");
	CHECK_OWNED_STR(children(op), "ItemChanges");
	xmlNode *ch = t_(m_(op, "ItemChanges"), "ItemChange");
	CHECK_INT(count(m_(op, "ItemChanges"), NULL, NULL), 1);
	CHECK_OWNED_STR(children(ch), "ItemId Updates");
	check_id(t_(ch, "ItemId"), id, ck);
	return t_(ch, "Updates");
}

static void test_replace_request(void)
{
	size_t mlen;
	char *mime = sample_mime(&mlen);
	for (int with_ck = 0; with_ck < 2; with_ck++) {
		struct buf b;
		xmlDoc *doc;
		case_begin(with_ck ? "UpdateItem MimeContent with ChangeKey: AutoResolve"
				   : "UpdateItem MimeContent without ChangeKey: AlwaysOverwrite");
		buf_init(&b, 0);
		ews_req_replace_mime(&b, EWS_VERSION_DEFAULT, nasty,
				     with_ck ? "CK&\"1" : NULL, mime, mlen);
		xmlNode *up = updates_of(op_of(&b, &doc), nasty_out,
					 with_ck ? "CK&\"1" : NULL);
		CHECK_OWNED_STR(children(up), "SetItemField");
		xmlNode *set = t_(up, "SetItemField");
		CHECK_OWNED_STR(children(set), "FieldURI Message");
		CHECK_OWNED_STR(attr(t_(set, "FieldURI"), "FieldURI"),
				"item:MimeContent");
		xmlNode *msg = t_(set, "Message");
		CHECK_OWNED_STR(children(msg), "MimeContent");
		CHECK(mime_round_trips(t_(msg, "MimeContent"), mime, mlen));
		xmlFreeDoc(doc);
		buf_free(&b);
		case_end();
	}
	free(mime);
}

/* The SetItemField (or DeleteItemField, del) whose FieldURI is uri, or
 * whose ExtendedFieldURI has PropertyTag uri. */
static xmlNode *field(const xmlNode *updates, const char *uri, bool del)
{
	const char *el = del ? "DeleteItemField" : "SetItemField";
	for (xmlNode *f = t_(updates, el); f; f = xml_next(f, EWS_NS_T, el)) {
		char *a = attr(t_(f, "FieldURI"), "FieldURI");
		char *tag = attr(t_(f, "ExtendedFieldURI"), "PropertyTag");
		bool hit = (a && !strcmp(a, uri)) || (tag && !strcmp(tag, uri));
		free(a);
		free(tag);
		if (hit)
			return f;
	}
	return NULL;
}

static void test_props_request(void)
{
	struct buf b;
	xmlDoc *doc;
	xmlNode *up, *f;

	case_begin("UpdateItem of read, flag and categories (Exchange 2013)");
	struct be_props p = {
		BE_PROP_READ | BE_PROP_FLAG | BE_PROP_CATEGORIES, true,
		BE_FLAG_FLAGGED, ",Red,,a&b <c>\"d\",\xc3\xa9t\xc3\xa9,",
	};
	buf_init(&b, 0);
	ews_req_update_props(&b, EWS_VERSION_DEFAULT, "I1", "C1", &p);
	up = updates_of(op_of(&b, &doc), "I1", "C1");
	CHECK_OWNED_STR(children(up), "SetItemField SetItemField SetItemField");
	f = field(up, "message:IsRead", false);
	CHECK_OWNED_STR(children(f), "FieldURI Message");
	CHECK_OWNED_STR(text(t_(t_(f, "Message"), "IsRead")), "true");
	f = field(up, "item:Flag", false);
	CHECK_OWNED_STR(children(t_(t_(f, "Message"), "Flag")), "FlagStatus");
	CHECK_OWNED_STR(text(t_(t_(t_(f, "Message"), "Flag"), "FlagStatus")),
			"Flagged");
	f = field(up, "item:Categories", false);
	xmlNode *cats = t_(t_(f, "Message"), "Categories");
	CHECK_INT(count(cats, NULL, NULL), 3);
	xmlNode *st = t_(cats, "String");
	CHECK_OWNED_STR(text(st), "Red");
	st = xml_next(st, EWS_NS_T, "String");
	CHECK_OWNED_STR(text(st), "a&b <c>\"d\"");
	st = xml_next(st, EWS_NS_T, "String");
	CHECK_OWNED_STR(text(st), "\xc3\xa9t\xc3\xa9");
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("UpdateItem: only the fields in the mask; unread; complete");
	p = (struct be_props){ BE_PROP_READ, false, BE_FLAG_COMPLETE, "x" };
	buf_init(&b, 0);
	ews_req_update_props(&b, EWS_VERSION_DEFAULT, "I1", NULL, &p);
	up = updates_of(op_of(&b, &doc), "I1", NULL);
	CHECK_OWNED_STR(children(up), "SetItemField");
	CHECK_OWNED_STR(text(t_(t_(field(up, "message:IsRead", false),
				   "Message"), "IsRead")), "false");
	xmlFreeDoc(doc);
	buf_free(&b);
	p = (struct be_props){ BE_PROP_FLAG, false, BE_FLAG_COMPLETE, NULL };
	buf_init(&b, 0);
	ews_req_update_props(&b, EWS_VERSION_DEFAULT, "I1", NULL, &p);
	up = updates_of(op_of(&b, &doc), "I1", NULL);
	CHECK_OWNED_STR(children(up), "SetItemField");
	CHECK_OWNED_STR(text(t_(t_(t_(field(up, "item:Flag", false), "Message"),
				   "Flag"), "FlagStatus")), "Complete");
	xmlFreeDoc(doc);
	buf_free(&b);
	p = (struct be_props){ BE_PROP_FLAG, false, BE_FLAG_NONE, NULL };
	buf_init(&b, 0);
	ews_req_update_props(&b, EWS_VERSION_DEFAULT, "I1", NULL, &p);
	up = updates_of(op_of(&b, &doc), "I1", NULL);
	CHECK_OWNED_STR(text(t_(t_(t_(field(up, "item:Flag", false), "Message"),
				   "Flag"), "FlagStatus")), "NotFlagged");
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("UpdateItem: no categories deletes the field");
	static const char *const none[] = { "", ",", ",,,", NULL };
	for (size_t i = 0; i < 4; i++) {
		p = (struct be_props){ BE_PROP_CATEGORIES, false, 0, none[i] };
		buf_init(&b, 0);
		ews_req_update_props(&b, EWS_VERSION_DEFAULT, "I1", "C", &p);
		up = updates_of(op_of(&b, &doc), "I1", "C");
		CHECK_OWNED_STR(children(up), "DeleteItemField");
		f = field(up, "item:Categories", true);
		CHECK_OWNED_STR(children(f), "FieldURI");
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();

	case_begin("UpdateItem flag before Exchange 2013: PidTagFlagStatus");
	static const struct {
		enum be_flag flag;
		const char *value;  /* NULL: property deleted */
	} old[] = {
		{ BE_FLAG_FLAGGED, "2" }, { BE_FLAG_COMPLETE, "1" },
		{ BE_FLAG_NONE, NULL },
	};
	for (size_t i = 0; i < 3; i++) {
		p = (struct be_props){ BE_PROP_FLAG | BE_PROP_READ, true,
				       old[i].flag, NULL };
		buf_init(&b, 0);
		ews_req_update_props(&b, "Exchange2010_SP2", "I1", "C", &p);
		up = updates_of(request_op_v(&b, &doc, "Exchange2010_SP2"), "I1", "C");
		CHECK(field(up, "item:Flag", false) == NULL);
		CHECK(strstr(b.data, "t:Flag>") == NULL);
		f = field(up, "0x1090", old[i].value == NULL);
		CHECK(f != NULL);
		CHECK_OWNED_STR(attr(t_(f, "ExtendedFieldURI"), "PropertyType"),
				"Integer");
		if (old[i].value) {
			CHECK_OWNED_STR(children(f), "ExtendedFieldURI Message");
			xmlNode *ep = t_(t_(f, "Message"), "ExtendedProperty");
			CHECK_OWNED_STR(children(ep), "ExtendedFieldURI Value");
			CHECK_OWNED_STR(attr(t_(ep, "ExtendedFieldURI"),
					     "PropertyTag"), "0x1090");
			CHECK_OWNED_STR(text(t_(ep, "Value")), old[i].value);
		} else {
			CHECK_OWNED_STR(children(f), "ExtendedFieldURI");
		}
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();
}

static void test_item_requests(void)
{
	struct buf b;
	xmlDoc *doc;
	xmlNode *op;

	case_begin("GetItem IdOnly for a change key");
	buf_init(&b, 0);
	ews_req_get_item_id(&b, EWS_VERSION_DEFAULT, nasty);
	op = op_of(&b, &doc);
	CHECK(xml_is(op, EWS_NS_M, "GetItem"));
	CHECK_OWNED_STR(children(op), "ItemShape ItemIds");
	CHECK_OWNED_STR(children(m_(op, "ItemShape")), "BaseShape");
	CHECK_OWNED_STR(text(t_(m_(op, "ItemShape"), "BaseShape")), "IdOnly");
	check_id(t_(m_(op, "ItemIds"), "ItemId"), nasty_out, NULL);
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("DeleteItem: the three delete types");
	static const struct { enum be_delete how; const char *type; } del[] = {
		{ BE_DEL_TO_TRASH, "MoveToDeletedItems" },
		{ BE_DEL_SOFT, "SoftDelete" }, { BE_DEL_HARD, "HardDelete" },
	};
	for (size_t i = 0; i < 3; i++) {
		buf_init(&b, 0);
		ews_req_delete_item(&b, EWS_VERSION_DEFAULT, nasty, del[i].how);
		op = op_of(&b, &doc);
		CHECK(xml_is(op, EWS_NS_M, "DeleteItem"));
		CHECK_OWNED_STR(attr(op, "DeleteType"), del[i].type);
		CHECK_OWNED_STR(children(op), "ItemIds");
		check_id(t_(m_(op, "ItemIds"), "ItemId"), nasty_out, NULL);
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();

	case_begin("MoveItem: ReturnNewItemIds from Exchange 2010 SP1 on");
	static const struct { const char *v; bool rni; } mv[] = {
		{ "Exchange2013_SP1", true }, { "Exchange2010_SP2", true },
		{ "Exchange2010", false }, { "Exchange2007_SP1", false },
	};
	for (size_t i = 0; i < 4; i++) {
		buf_init(&b, 0);
		ews_req_move_item(&b, mv[i].v, nasty, "To<Folder>");
		op = request_op_v(&b, &doc, mv[i].v);
		CHECK(xml_is(op, EWS_NS_M, "MoveItem"));
		CHECK_OWNED_STR(children(op),
				mv[i].rni ? "ToFolderId ItemIds ReturnNewItemIds"
					  : "ToFolderId ItemIds");
		check_id(t_(m_(op, "ToFolderId"), "FolderId"), "To<Folder>",
			 NULL);
		check_id(t_(m_(op, "ItemIds"), "ItemId"), nasty_out, NULL);
		if (mv[i].rni)
			CHECK_OWNED_STR(text(m_(op, "ReturnNewItemIds")),
					"true");
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();
}

static void test_folder_requests(void)
{
	struct buf b;
	xmlDoc *doc;
	xmlNode *op;
	/* everything XML could trip over, and white space that attribute
	 * or line-end normalization would change */
	const char *name = "a&b <c> \"d\" 'e' ]]> \xe6\x9d\xb1 /x\\ \t\r\n.";
	const char *ctl = "bell\x07" "here";

	case_begin("CreateFolder: IPF.Note, FolderClass before DisplayName, hostile name");
	buf_init(&b, 0);
	ews_req_create_folder(&b, EWS_VERSION_DEFAULT, nasty, name);
	op = op_of(&b, &doc);
	CHECK(xml_is(op, EWS_NS_M, "CreateFolder"));
	CHECK_OWNED_STR(children(op), "ParentFolderId Folders");
	check_id(t_(m_(op, "ParentFolderId"), "FolderId"), nasty_out, NULL);
	xmlNode *f = t_(m_(op, "Folders"), "Folder");
	CHECK_INT(count(m_(op, "Folders"), NULL, NULL), 1);
	CHECK_OWNED_STR(children(f), "FolderClass DisplayName");
	CHECK_OWNED_STR(text(t_(f, "FolderClass")), "IPF.Note");
	CHECK_OWNED_STR(text(t_(f, "DisplayName")), name);
	xmlFreeDoc(doc);
	buf_free(&b);
	buf_init(&b, 0);
	ews_req_create_folder(&b, EWS_VERSION_DEFAULT, "P", ctl);
	op = op_of(&b, &doc);
	CHECK_OWNED_STR(text(t_(t_(m_(op, "Folders"), "Folder"), "DisplayName")),
			"bellhere");
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("UpdateFolder DisplayName, with and without ChangeKey");
	for (int with_ck = 0; with_ck < 2; with_ck++) {
		buf_init(&b, 0);
		ews_req_rename_folder(&b, EWS_VERSION_DEFAULT, nasty,
				      with_ck ? "FCK" : NULL, name);
		op = op_of(&b, &doc);
		CHECK(xml_is(op, EWS_NS_M, "UpdateFolder"));
		CHECK_OWNED_STR(children(op), "FolderChanges");
		xmlNode *ch = t_(m_(op, "FolderChanges"), "FolderChange");
		CHECK_OWNED_STR(children(ch), "FolderId Updates");
		check_id(t_(ch, "FolderId"), nasty_out, with_ck ? "FCK" : NULL);
		xmlNode *set = t_(t_(ch, "Updates"), "SetFolderField");
		CHECK_OWNED_STR(children(t_(ch, "Updates")), "SetFolderField");
		CHECK_OWNED_STR(children(set), "FieldURI Folder");
		CHECK_OWNED_STR(attr(t_(set, "FieldURI"), "FieldURI"),
				"folder:DisplayName");
		CHECK_OWNED_STR(children(t_(set, "Folder")), "DisplayName");
		CHECK_OWNED_STR(text(t_(t_(set, "Folder"), "DisplayName")), name);
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();

	case_begin("MoveFolder: ToFolderId, FolderIds");
	buf_init(&b, 0);
	ews_req_move_folder(&b, EWS_VERSION_DEFAULT, nasty, "Dest");
	op = op_of(&b, &doc);
	CHECK(xml_is(op, EWS_NS_M, "MoveFolder"));
	CHECK_OWNED_STR(children(op), "ToFolderId FolderIds");
	check_id(t_(m_(op, "ToFolderId"), "FolderId"), "Dest", NULL);
	check_id(t_(m_(op, "FolderIds"), "FolderId"), nasty_out, NULL);
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("DeleteFolder: HardDelete or MoveToDeletedItems");
	for (int hard = 0; hard < 2; hard++) {
		buf_init(&b, 0);
		ews_req_delete_folder(&b, EWS_VERSION_DEFAULT, nasty, hard);
		op = op_of(&b, &doc);
		CHECK(xml_is(op, EWS_NS_M, "DeleteFolder"));
		CHECK_OWNED_STR(attr(op, "DeleteType"),
				hard ? "HardDelete" : "MoveToDeletedItems");
		CHECK_OWNED_STR(children(op), "FolderIds");
		check_id(t_(m_(op, "FolderIds"), "FolderId"), nasty_out, NULL);
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();
}

/* ---- answers ---- */

struct answer_row {
	const char *file;
	enum ews_write_op op;
	enum be_status st;
	const char *id, *ck;  /* expected out (NULL: none) */
	const char *msg;      /* substring of r.msg, or NULL */
	const char *code;     /* r.code, or NULL */
};

static const struct answer_row answers[] = {
	{ "write_create_item.xml", EWS_W_CREATE_ITEM, BE_OK,
	  "AAMkANewDraft1", "CQAAABYAAADraft1", NULL, NULL },
	{ "write_create_item_sent.xml", EWS_W_CREATE_ITEM, BE_OK, NULL, NULL,
	  NULL, NULL },
	{ "write_create_item_recipients.xml", EWS_W_CREATE_ITEM, BE_REFUSED,
	  NULL, NULL, "ErrorInvalidRecipients: At least one recipient is not valid., A message can't be sent",
	  "ErrorInvalidRecipients" },
	{ "write_create_item_too_big.xml", EWS_W_CREATE_ITEM, BE_REFUSED, NULL,
	  NULL, "exceeds the maximum", "ErrorMessageSizeExceeded" },
	{ "write_find_token.xml", EWS_W_FIND_ITEM, BE_OK, "AAMkAFound",
	  "CQAAABYAAAFound", NULL, NULL },
	{ "write_find_token_none.xml", EWS_W_FIND_ITEM, BE_ITEM_GONE, NULL,
	  NULL, "no item with that token", NULL },
	{ "write_find_token_no_folder.xml", EWS_W_FIND_ITEM, BE_FOLDER_GONE,
	  NULL, NULL, "ErrorFolderNotFound", "ErrorFolderNotFound" },
	{ "write_update_item.xml", EWS_W_UPDATE_ITEM, BE_OK, "AAMkADraft1",
	  "CQAAABYAAADraft1b", NULL, NULL },
	{ "write_update_item_conflict.xml", EWS_W_UPDATE_ITEM, BE_CONFLICT,
	  NULL, NULL, "does not match", "ErrorIrresolvableConflict" },
	{ "write_update_item_stale.xml", EWS_W_UPDATE_ITEM, BE_CONFLICT, NULL,
	  NULL, NULL, "ErrorStaleObject" },
	{ "write_get_item.xml", EWS_W_GET_ITEM, BE_OK, "AAMkADraft1",
	  "CQAAABYAAADraft1c", NULL, NULL },
	{ "write_get_item_no_ck.xml", EWS_W_GET_ITEM, BE_PROTOCOL, NULL, NULL,
	  "ItemId without ChangeKey", NULL },
	{ "write_delete_item.xml", EWS_W_DELETE_ITEM, BE_OK, NULL, NULL, NULL,
	  NULL },
	{ "write_delete_item_gone.xml", EWS_W_DELETE_ITEM, BE_ITEM_GONE, NULL,
	  NULL, "not found", "ErrorItemNotFound" },
	{ "write_move_item.xml", EWS_W_MOVE_ITEM, BE_OK, "AAMkAMoved",
	  "CQAAABYAAAMoved", NULL, NULL },
	{ "write_move_item_no_id.xml", EWS_W_MOVE_ITEM, BE_OK, NULL, NULL,
	  NULL, NULL },
	{ "write_move_item_no_folder.xml", EWS_W_MOVE_ITEM, BE_FOLDER_GONE,
	  NULL, NULL, NULL, "ErrorToFolderNotFound" },
	{ "write_create_folder.xml", EWS_W_CREATE_FOLDER, BE_OK,
	  "AAMkANewFolder", "AQAAABYAAANewFolder", NULL, NULL },
	{ "write_create_folder_exists.xml", EWS_W_CREATE_FOLDER, BE_EXISTS,
	  NULL, NULL, "already exists", "ErrorFolderExists" },
	/* a CreateFolder answer must name the new folder */
	{ "write_delete_folder.xml", EWS_W_CREATE_FOLDER, BE_PROTOCOL, NULL,
	  NULL, "no CreateFolderResponseMessage", NULL },
	{ "write_update_folder.xml", EWS_W_UPDATE_FOLDER, BE_OK, "AAMkAFolder",
	  "AQAAABYAAAFolder2", NULL, NULL },
	{ "write_update_folder_ck.xml", EWS_W_UPDATE_FOLDER, BE_CONFLICT, NULL,
	  NULL, NULL, "ErrorChangeKeyRequiredForWriteOperations" },
	{ "write_move_folder.xml", EWS_W_MOVE_FOLDER, BE_OK, "AAMkAFolder",
	  "AQAAABYAAAFolder3", NULL, NULL },
	{ "write_move_folder_distinguished.xml", EWS_W_MOVE_FOLDER, BE_REFUSED,
	  NULL, NULL, "cannot be moved", "ErrorMoveDistinguishedFolder" },
	{ "write_delete_folder.xml", EWS_W_DELETE_FOLDER, BE_OK, NULL, NULL,
	  NULL, NULL },
	{ "write_delete_folder_distinguished.xml", EWS_W_DELETE_FOLDER,
	  BE_REFUSED, NULL, NULL, "cannot be deleted",
	  "ErrorDeleteDistinguishedFolder" },
	{ "getfolder_root.xml", EWS_W_GET_FOLDER, BE_OK,
	  "AAMkADk0N2Y2ZjU4LTU0MGYtNDA5Ny1hNjU3LWEyMmJhMjI1YmYzOQAuAAAAAAB2Rr2SqMw8R7bXTu1i4iO0AQCmHNlkFx5mS5PYOvrvJnMaAAAAAAEIAAA=",
	  "AQAAABYAAACmHNlkFx5mS5PYOvrvJnMaAAAAAAAM", NULL, NULL },
	{ "fault_busy.xml", EWS_W_UPDATE_ITEM, BE_THROTTLED, NULL, NULL,
	  "retry after 5000 ms", "ErrorServerBusy" },
	{ "fault_schema.xml", EWS_W_CREATE_ITEM, BE_REFUSED, NULL, NULL, NULL,
	  "ErrorSchemaValidation" },
	{ "not_ews.html", EWS_W_DELETE_ITEM, BE_PROTOCOL, NULL, NULL, NULL,
	  NULL },
	/* the answer to another operation */
	{ "write_create_item.xml", EWS_W_UPDATE_ITEM, BE_PROTOCOL, NULL, NULL,
	  "no UpdateItemResponseMessage", NULL },
};

static void test_answers(void)
{
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		const struct answer_row *a = &answers[i];
		char name[160];
		size_t len;
		char *d = data_file(a->file, &len);
		struct be_new out;
		struct be_result r;
		snprintf(name, sizeof(name), "answer %s as op %d -> %s",
			 a->file, a->op, be_status_name(a->st));
		case_begin(name);
		memset(&out, 0x5a, sizeof(out));
		CHECK_INT(ews_parse_write(d, len, a->op, &out, &r), a->st);
		CHECK_INT(r.status, a->st);
		CHECK_OPT_STR(out.id, a->id);
		CHECK_OPT_STR(out.change_key, a->ck);
		if (a->msg)
			CHECK_CONTAINS(r.msg, a->msg);
		if (a->code)
			CHECK_STR(r.code, a->code);
		if (a->st != BE_OK)
			CHECK(r.msg[0] != 0);
		be_new_free(&out);
		free(d);
		case_end();
	}
}

static void test_special_answers(void)
{
	size_t len;
	char *d;
	char *ids[BE_SPECIAL_N];
	struct be_result r;

	case_begin("special folders: four found, outbox missing -> NULL");
	d = data_file("write_special_folders.xml", &len);
	memset(ids, 0x5a, sizeof(ids));
	CHECK_INT(ews_parse_special(d, len, ids, &r), BE_OK);
	CHECK_OPT_STR(ids[BE_INBOX], "AAMkAInbox");
	CHECK_OPT_STR(ids[BE_DRAFTS], "AAMkADrafts");
	CHECK_OPT_STR(ids[BE_SENT], "AAMkASent");
	CHECK_OPT_STR(ids[BE_DELETED], "AAMkADeleted");
	CHECK(ids[BE_OUTBOX] == NULL);
	for (int k = 0; k < BE_SPECIAL_N; k++)
		free(ids[k]);
	free(d);
	case_end();

	case_begin("special folders: a busy entry fails the call, nothing kept");
	d = data_file("write_special_folders_busy.xml", &len);
	memset(ids, 0x5a, sizeof(ids));
	CHECK_INT(ews_parse_special(d, len, ids, &r), BE_THROTTLED);
	CHECK_INT(r.retry_after_ms, 750);
	CHECK_STR(r.code, "ErrorServerBusy");
	for (int k = 0; k < BE_SPECIAL_N; k++)
		CHECK(ids[k] == NULL);
	free(d);
	case_end();

	case_begin("special folders: too few entries, faults, garbage");
	static const struct { const char *file; enum be_status st; } bad[] = {
		{ "getfolder_root.xml", BE_PROTOCOL },
		{ "fault_busy.xml", BE_THROTTLED },
		{ "not_ews.html", BE_PROTOCOL },
		{ "getfolder_no_mailbox.xml", BE_AUTH },
		{ "write_create_item.xml", BE_PROTOCOL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = data_file(bad[i].file, &len);
		CHECK_INT(ews_parse_special(d, len, ids, &r), bad[i].st);
		CHECK(r.msg[0] != 0);
		for (int k = 0; k < BE_SPECIAL_N; k++)
			CHECK(ids[k] == NULL);
		free(d);
	}
	case_end();
}

/* Hostile answers, built around one response message. */
static const char w_head[] =
	"<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body>"
	"<m:X xmlns:m=\"" EWS_NS_M "\" xmlns:t=\"" EWS_NS_T "\">"
	"<m:ResponseMessages>";
static const char w_tail[] = "</m:ResponseMessages></m:X></s:Body></s:Envelope>";
#define UPD_OK(x) "<m:UpdateItemResponseMessage ResponseClass=\"Success\">" \
	"<m:ResponseCode>NoError</m:ResponseCode>" x \
	"</m:UpdateItemResponseMessage>"

static const struct {
	const char *name;
	enum ews_write_op op;
	const char *xml;
	enum be_status st;
	const char *msg;
} w_bad[] = {
	{ "ItemId without Id", EWS_W_UPDATE_ITEM,
	  UPD_OK("<m:Items><t:Message><t:ItemId ChangeKey=\"c\"/></t:Message></m:Items>"),
	  BE_PROTOCOL, "ItemId without Id" },
	{ "ItemId with an empty Id", EWS_W_UPDATE_ITEM,
	  UPD_OK("<m:Items><t:Message><t:ItemId Id=\"\"/></t:Message></m:Items>"),
	  BE_PROTOCOL, "ItemId without Id" },
	{ "empty ChangeKey is none", EWS_W_UPDATE_ITEM,
	  UPD_OK("<m:Items><t:Message><t:ItemId Id=\"i\" ChangeKey=\"\"/></t:Message></m:Items>"),
	  BE_OK, NULL },
	{ "ItemId in the messages namespace is no id", EWS_W_UPDATE_ITEM,
	  UPD_OK("<m:Items><t:Message><m:ItemId Id=\"i\"/></t:Message></m:Items>"),
	  BE_OK, NULL },
	{ "Items in the types namespace are not looked at", EWS_W_UPDATE_ITEM,
	  UPD_OK("<t:Items><t:Message><t:ItemId Id=\"i\"/></t:Message></t:Items>"),
	  BE_OK, NULL },
	{ "FindItem without RootFolder", EWS_W_FIND_ITEM,
	  "<m:FindItemResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode></m:FindItemResponseMessage>",
	  BE_PROTOCOL, "no RootFolder" },
	{ "FindItem: first of two items", EWS_W_FIND_ITEM,
	  "<m:FindItemResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode>"
	  "<m:RootFolder><t:Items><t:Message><t:ItemId Id=\"first\"/></t:Message>"
	  "<t:Message><t:ItemId Id=\"second\"/></t:Message></t:Items></m:RootFolder></m:FindItemResponseMessage>",
	  BE_OK, NULL },
	{ "Warning: batch stopped, not processed", EWS_W_DELETE_ITEM,
	  "<m:DeleteItemResponseMessage ResponseClass=\"Warning\"><m:MessageText>stopped</m:MessageText>"
	  "<m:ResponseCode>ErrorBatchProcessingStopped</m:ResponseCode></m:DeleteItemResponseMessage>",
	  BE_NETWORK, "ErrorBatchProcessingStopped: stopped" },
	{ "Error class with NoError", EWS_W_DELETE_FOLDER,
	  "<m:DeleteFolderResponseMessage ResponseClass=\"Error\"><m:ResponseCode>NoError</m:ResponseCode></m:DeleteFolderResponseMessage>",
	  BE_PROTOCOL, "NoError" },
	{ "Error without a code", EWS_W_MOVE_ITEM,
	  "<m:MoveItemResponseMessage ResponseClass=\"Error\"/>",
	  BE_REFUSED, "ErrorUnknown" },
	{ "no response message", EWS_W_CREATE_FOLDER, "", BE_PROTOCOL,
	  "no CreateFolderResponseMessage" },
	{ "CreateFolder success without a folder", EWS_W_CREATE_FOLDER,
	  "<m:CreateFolderResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode><m:Folders/></m:CreateFolderResponseMessage>",
	  BE_PROTOCOL, "no FolderId" },
	{ "GetItem success without an item", EWS_W_GET_ITEM,
	  "<m:GetItemResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode><m:Items/></m:GetItemResponseMessage>",
	  BE_PROTOCOL, "no ItemId" },
	{ "unknown operation", EWS_W_OP_N, "", BE_REFUSED, "unknown write" },
};

static void test_bad_answers(void)
{
	for (size_t i = 0; i < sizeof(w_bad) / sizeof(w_bad[0]); i++) {
		struct buf b;
		struct be_new out;
		struct be_result r;
		buf_init(&b, 0);
		buf_printf(&b, "%s%s%s", w_head, w_bad[i].xml, w_tail);
		case_begin(w_bad[i].name);
		CHECK_INT(ews_parse_write(b.data, b.len, w_bad[i].op, &out, &r),
			  w_bad[i].st);
		if (w_bad[i].msg)
			CHECK_CONTAINS(r.msg, w_bad[i].msg);
		if (w_bad[i].st != BE_OK)
			CHECK(out.id == NULL && out.change_key == NULL);
		be_new_free(&out);
		case_end();
		buf_free(&b);
	}

	case_begin("FindItem gives the first item");
	{
		struct buf b;
		struct be_new out;
		struct be_result r;
		buf_init(&b, 0);
		buf_printf(&b, "%s%s%s", w_head, w_bad[6].xml, w_tail);
		CHECK_INT(ews_parse_write(b.data, b.len, EWS_W_FIND_ITEM, &out,
					  &r), BE_OK);
		CHECK_OPT_STR(out.id, "first");
		CHECK(out.change_key == NULL);
		be_new_free(&out);
		buf_free(&b);
	}
	case_end();

	case_begin("ItemId of 5000 bytes refused");
	{
		struct buf b;
		struct be_new out;
		struct be_result r;
		char *big = xmalloc(5001);
		memset(big, 'A', 5000);
		big[5000] = 0;
		buf_init(&b, 0);
		buf_printf(&b, "%s" UPD_OK("<m:Items><t:Message><t:ItemId Id=\"%s\"/>"
					   "</t:Message></m:Items>") "%s",
			   w_head, big, w_tail);
		CHECK_INT(ews_parse_write(b.data, b.len, EWS_W_UPDATE_ITEM, &out,
					  &r), BE_PROTOCOL);
		CHECK_CONTAINS(r.msg, "longer than 4096");
		CHECK(out.id == NULL);
		free(big);
		buf_free(&b);
	}
	case_end();
}

/* Every truncation of every success answer fails cleanly. */
static int write_cut(const char *data, size_t len, void *arg)
{
	int op = *(const int *)arg, bad = 0;
	struct be_result r;
	struct be_new out;
	char *ids[BE_SPECIAL_N];
	enum be_status st;
	if (op < 0) {
		st = ews_parse_special(data, len, ids, &r);
		for (int k = 0; k < BE_SPECIAL_N; k++)
			if (ids[k])
				bad++;
	} else {
		st = ews_parse_write(data, len, op, &out, &r);
		if (out.id || out.change_key)
			bad++;
	}
	return bad + (st != BE_PROTOCOL || !r.msg[0]);
}

static void test_truncations(void)
{
	static const struct { const char *file; int op; } files[] = {
		{ "write_create_item.xml", EWS_W_CREATE_ITEM },
		{ "write_find_token.xml", EWS_W_FIND_ITEM },
		{ "write_update_item.xml", EWS_W_UPDATE_ITEM },
		{ "write_move_folder.xml", EWS_W_MOVE_FOLDER },
		{ "write_special_folders.xml", -1 },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		check_truncations(files[i].file, write_cut, (void *)&files[i].op);
}

/* ---- the checks before any request (no session needed: they refuse
 * before touching it) ---- */

static void test_input_checks(void)
{
	const struct backend_ops *ops = &ews_backend;
	struct be_result r;
	struct be_new out;
	char *long_id = xmalloc(EWS_ID_MAX + 2);
	memset(long_id, 'i', EWS_ID_MAX + 1);
	long_id[EWS_ID_MAX + 1] = 0;

	case_begin("the ops table has every write operation");
	CHECK(ops->special_folders && ops->create_item && ops->find_token &&
	      ops->replace_mime && ops->update_props && ops->get_change_key &&
	      ops->delete_item && ops->move_item && ops->create_folder &&
	      ops->rename_folder && ops->move_folder && ops->delete_folder);
	CHECK(ops->watch != NULL);  /* ews_notify.c */
	case_end();

	case_begin("tokens: [A-Za-z0-9-], 1..64 bytes");
	static const char *const bad_tokens[] = {
		NULL, "", "a b", "a\"b", "tok<en>", "x_y", "\xc3\xa9",
		"0123456789012345678901234567890123456789012345678901234567890123X",
	};
	for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
		CHECK_INT(ops->create_item(NULL, "F", "m", 1, BE_SAVE, 0,
					   bad_tokens[i], &out, &r), BE_REFUSED);
		CHECK_CONTAINS(r.msg, "invalid token");
		CHECK(out.id == NULL && out.change_key == NULL);
		CHECK_INT(ops->find_token(NULL, "F", bad_tokens[i], &out, &r),
			  BE_REFUSED);
	}
	case_end();

	case_begin("ids: empty, NULL or over 4096 bytes refused");
	CHECK_INT(ops->create_item(NULL, "", "m", 1, BE_SAVE, 0, "t", &out, &r),
		  BE_REFUSED);
	CHECK_CONTAINS(r.msg, "invalid folder id");
	CHECK_INT(ops->create_item(NULL, long_id, "m", 1, BE_SAVE, 0, "t", &out,
				   &r), BE_REFUSED);
	CHECK_INT(ops->replace_mime(NULL, NULL, NULL, "m", 1, &out, &r),
		  BE_REFUSED);
	CHECK_INT(ops->replace_mime(NULL, "i", long_id, "m", 1, &out, &r),
		  BE_REFUSED);
	CHECK_CONTAINS(r.msg, "invalid change key id");
	CHECK_INT(ops->delete_item(NULL, "", BE_DEL_HARD, &r), BE_REFUSED);
	CHECK_INT(ops->move_item(NULL, "i", "", &out, &r), BE_REFUSED);
	CHECK_INT(ops->move_folder(NULL, long_id, "p", &out, &r), BE_REFUSED);
	CHECK_INT(ops->delete_folder(NULL, NULL, true, &r), BE_REFUSED);
	char *ck = (char *)"untouched";
	CHECK_INT(ops->get_change_key(NULL, "", &ck, &r), BE_REFUSED);
	CHECK(ck == NULL);
	case_end();

	case_begin("enums out of range and empty messages refused");
	CHECK_INT(ops->create_item(NULL, "F", "m", 1, (enum be_disposition)0, 0,
				   "t", &out, &r), BE_REFUSED);
	CHECK_INT(ops->create_item(NULL, "F", "m", 1, (enum be_disposition)9, 0,
				   "t", &out, &r), BE_REFUSED);
	CHECK_INT(ops->create_item(NULL, "F", NULL, 0, BE_SAVE, 0, "t", &out,
				   &r), BE_REFUSED);
	CHECK_CONTAINS(r.msg, "empty message");
	CHECK_INT(ops->replace_mime(NULL, "i", NULL, "", 0, &out, &r),
		  BE_REFUSED);
	CHECK_INT(ops->delete_item(NULL, "i", (enum be_delete)0, &r),
		  BE_REFUSED);
	struct be_props p = { BE_PROP_FLAG, false, (enum be_flag)7, NULL };
	CHECK_INT(ops->update_props(NULL, "i", NULL, &p, &out, &r), BE_REFUSED);
	CHECK_CONTAINS(r.msg, "invalid flag");
	case_end();

	case_begin("update_props with nothing to set: BE_OK, no request");
	p = (struct be_props){ 0, true, BE_FLAG_FLAGGED, "x" };
	CHECK_INT(ops->update_props(NULL, "i", "c", &p, &out, &r), BE_OK);
	CHECK(out.id == NULL && out.change_key == NULL);
	p.mask = 0x100;
	CHECK_INT(ops->update_props(NULL, "i", "c", &p, &out, &r), BE_OK);
	case_end();

	case_begin("names and categories: UTF-8 text XML can carry");
	static const char *const bad_names[] = {
		NULL, "", "\xc3", "\xc3\x28", "\xe0\x80\xaf" /* overlong */,
		"\xed\xa0\x80" /* surrogate */, "\xef\xbf\xbe" /* U+FFFE */,
		"\xf4\x90\x80\x80" /* > U+10FFFF */, "bell\x07", "\xff",
		"esc\x1b[0m",
	};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		CHECK_INT(ops->create_folder(NULL, "P", bad_names[i], &out, &r),
			  BE_REFUSED);
		CHECK_CONTAINS(r.msg, "invalid folder name");
		CHECK_INT(ops->rename_folder(NULL, "F", bad_names[i], &out, &r),
			  BE_REFUSED);
		if (bad_names[i] && *bad_names[i]) {
			p = (struct be_props){ BE_PROP_CATEGORIES, false, 0,
					       bad_names[i] };
			CHECK_INT(ops->update_props(NULL, "i", NULL, &p, &out,
						    &r), BE_REFUSED);
			CHECK_CONTAINS(r.msg, "invalid categories");
		}
	}
	char *long_name = xmalloc(EWS_TEXT_MAX + 2);
	memset(long_name, 'n', EWS_TEXT_MAX + 1);
	long_name[EWS_TEXT_MAX + 1] = 0;
	CHECK_INT(ops->create_folder(NULL, "P", long_name, &out, &r),
		  BE_REFUSED);
	free(long_name);
	case_end();
	free(long_id);
}

int main(void)
{
	test_encoders();
	test_special_request();
	test_create_request();
	test_find_request();
	test_replace_request();
	test_props_request();
	test_item_requests();
	test_folder_requests();
	test_answers();
	test_special_answers();
	test_bad_answers();
	test_truncations();
	test_input_checks();
	return check_done("test_ews_write");
}
