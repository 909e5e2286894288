/*
 * test_ews_write_requests.c - every write request of ews_request.c parsed
 * back with libxml2 (elements, attributes, schema order, base64 of the
 * message round-tripping through the decoder, hostile ids/names/tokens/
 * categories escaped, what depends on the server version), and the
 * encoders under them.  The answers: test_ews_write.c.
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"
#include "test_ews_util.h"

#include <stdbool.h>
#include <time.h>

static const char nasty[] = "id\"<&'>\x01\xc3\xa9=\t";
static const char nasty_out[] = "id\"<&'>\xc3\xa9=\t";  /* control dropped */

/* ---- reading requests back ---- */

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
	return check_done("test_ews_write_requests");
}
