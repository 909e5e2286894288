/*
 * test_ews_parse.c - the EWS answer parsers (backend/ews/ews_parse.c,
 * ews_errors.c) on recorded-format answers from data/ews/: every field of
 * GetFolder, SyncFolderHierarchy and SyncFolderItems answers, error answers
 * and SOAP faults graded through the one table, and a table of hostile
 * answers that must each give a clean BE_PROTOCOL (or the right grade).
 */
#include "backend/ews/ews.h"
#include "test_ews_util.h"

#include <stdbool.h>

/* ---- well-formed answers, every field ---- */

static void test_root(void)
{
	size_t len;
	char *d, *id;
	struct be_result r;

	case_begin("GetFolder root, prefixed");
	d = data_file("getfolder_root.xml", &len);
	CHECK_INT(ews_parse_root(d, len, &id, &r), BE_OK);
	CHECK_STR(id, "AAMkADk0N2Y2ZjU4LTU0MGYtNDA5Ny1hNjU3LWEyMmJhMjI1YmYzOQAuAAAAAAB2Rr2SqMw8R7bXTu1i4iO0AQCmHNlkFx5mS5PYOvrvJnMaAAAAAAEIAAA=");
	free(id);
	free(d);
	case_end();

	case_begin("GetFolder root, default namespaces, attributes reordered");
	d = data_file("getfolder_root_default_ns.xml", &len);
	CHECK_INT(ews_parse_root(d, len, &id, &r), BE_OK);
	CHECK_STR(id, "root-id-42");
	free(id);
	free(d);
	case_end();

	case_begin("GetFolder error ErrorNonExistentMailbox -> auth");
	d = data_file("getfolder_no_mailbox.xml", &len);
	CHECK_INT(ews_parse_root(d, len, &id, &r), BE_AUTH);
	CHECK(id == NULL);
	CHECK_STR(r.code, "ErrorNonExistentMailbox");
	CHECK_CONTAINS(r.msg, "ErrorNonExistentMailbox: The SMTP address has no mailbox");
	free(d);
	case_end();

	case_begin("GetFolder SOAP fault ErrorServerBusy -> throttled 5000 ms");
	d = data_file("fault_busy.xml", &len);
	CHECK_INT(ews_parse_root(d, len, &id, &r), BE_THROTTLED);
	CHECK_INT(r.retry_after_ms, 5000);
	CHECK_STR(r.code, "ErrorServerBusy");
	CHECK_CONTAINS(r.msg, "cannot service this request");
	free(d);
	case_end();

	case_begin("GetFolder answered by an HTML page");
	d = data_file("not_ews.html", &len);
	CHECK_INT(ews_parse_root(d, len, &id, &r), BE_PROTOCOL);
	CHECK(id == NULL);
	CHECK(r.msg[0] != 0);
	free(d);
	case_end();
}

static void check_folder(const struct be_folder *f, enum be_change ch,
			 const char *id, const char *ck, const char *parent,
			 const char *name, const char *cls, int64_t total,
			 int64_t unread)
{
	CHECK_INT(f->change, ch);
	CHECK_STR(f->id, id);
	CHECK_OPT_STR(f->change_key, ck);
	CHECK_OPT_STR(f->parent_id, parent);
	CHECK_OPT_STR(f->name, name);
	CHECK_OPT_STR(f->folder_class, cls);
	CHECK_INT(f->total_count, total);
	CHECK_INT(f->unread_count, unread);
}

static void test_folders(void)
{
	size_t len;
	char *d;
	struct be_result r;
	struct be_folder_batch b;

	case_begin("SyncFolderHierarchy first sync: all folder kinds");
	d = data_file("sync_folders_first.xml", &len);
	CHECK_INT(ews_parse_folders(d, len, &b, &r), BE_OK);
	CHECK_INT(b.n, 6);
	CHECK(!b.more);
	CHECK_STR(b.new_state, "H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBMk2JBAEOzBiM3mkuwdaUcjKasqgcplVmVdZhZAzO2dvPfee++999577733ZiAA");
	if (b.n == 6) {
		check_folder(&b.v[0], BE_CREATE, "AAMkAGInbox", "AQAAABYAAAInbox",
			     "AAMkARoot", "Inbox", "IPF.Note", 12, 3);
		check_folder(&b.v[1], BE_CREATE, "AAMkACal", "AgAAABYAAACal",
			     "AAMkARoot", "Calendar", "IPF.Appointment", 0, -1);
		check_folder(&b.v[2], BE_CREATE, "AAMkACon", "AwAAABYAAACon",
			     "AAMkARoot", "Contacts", "IPF.Contact", 250, 0);
		check_folder(&b.v[3], BE_CREATE, "AAMkATasks", "BAAAABYAAATasks",
			     "AAMkARoot", "Tasks", "IPF.Task", -1, -1);
		check_folder(&b.v[4], BE_CREATE, "AAMkASearch",
			     "BQAAABYAAASearch", "AAMkARoot",
			     "Unread & flagged <mail>", "IPF.Note", 7, 7);
		check_folder(&b.v[5], BE_CREATE, "AAMkASub", "BgAAABYAAASub",
			     "AAMkAGInbox",
			     "Projekte/\xc3\x84rger 2026 \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac",
			     NULL, 0, 0);
	}
	be_folder_batch_free(&b);
	free(d);
	case_end();

	case_begin("SyncFolderHierarchy page: update, delete, sparse create, more");
	d = data_file("sync_folders_page.xml", &len);
	CHECK_INT(ews_parse_folders(d, len, &b, &r), BE_OK);
	CHECK_INT(b.n, 3);
	CHECK(b.more);
	CHECK_STR(b.new_state, "H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBMk2JBAEOzBiM3mkuwdaUcjKasqgcplVmVdZhZAzO2dvPfee++999577733ZiAA2");
	if (b.n == 3) {
		check_folder(&b.v[0], BE_UPDATE, "AAMkAGInbox", "AQAAABYAAAInbox2",
			     "AAMkARoot", "Inbox", "IPF.Note", 13, 4);
		check_folder(&b.v[1], BE_DELETE, "AAMkASub", "BgAAABYAAASub",
			     NULL, NULL, NULL, -1, -1);
		check_folder(&b.v[2], BE_CREATE, "AAMkANew", NULL, NULL, "",
			     NULL, -1, -1);
	}
	be_folder_batch_free(&b);
	free(d);
	case_end();
}

static void check_item(const struct be_item *it, enum be_change ch,
		       const char *id, const char *ck, const char *subject,
		       const char *from, const char *cls, const char *msgid,
		       int64_t received, int64_t sent, int64_t size,
		       int is_read, int has_att)
{
	CHECK_INT(it->change, ch);
	CHECK_STR(it->id, id);
	CHECK_OPT_STR(it->change_key, ck);
	CHECK_OPT_STR(it->subject, subject);
	CHECK_OPT_STR(it->from, from);
	CHECK_OPT_STR(it->item_class, cls);
	CHECK_OPT_STR(it->message_id, msgid);
	CHECK_INT(it->received, received);
	CHECK_INT(it->sent, sent);
	CHECK_INT(it->size, size);
	CHECK_INT(it->is_read, is_read);
	CHECK_INT(it->has_attachments, has_att);
}

static void test_items(void)
{
	size_t len;
	char *d;
	struct be_result r;
	struct be_item_batch b;

	case_begin("SyncFolderItems first page: all fields, dates with offsets");
	d = data_file("sync_items_first.xml", &len);
	CHECK_INT(ews_parse_items(d, len, &b, &r), BE_OK);
	CHECK_INT(b.n, 4);
	CHECK(b.more);
	CHECK_STR(b.new_state, "H4sIAAAAAAAEAGNgYGCEYhYGBvYDBgYGBkYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYG");
	if (b.n == 4) {
		check_item(&b.v[0], BE_CREATE, "AAMkAItem1", "CQAAABYAAAItem1",
			   "Quarterly numbers", "Bob Smith <bob@example.com>",
			   "IPM.Note", "<abc@example.com>", 1795167067,
			   1795167059, 5123, 0, 0);
		check_item(&b.v[1], BE_CREATE, "AAMkAItem2", "DwAAABYAAAItem2",
			   "Planning \xe2\x80\x93 Q1 & Q2", "carol@example.org",
			   "IPM.Schedule.Meeting.Request", NULL, 1795167001,
			   1795165200, 20480, 1, 1);
		check_item(&b.v[2], BE_CREATE, "AAMkAItem3", NULL, NULL,
			   "Mail Delivery System", NULL, NULL, 946684799, 0, -1,
			   -1, -1);
		check_item(&b.v[3], BE_CREATE, "AAMkAItem4", NULL, "",
			   "Dave Internal", NULL, NULL, 1772371800, 1709114400,
			   0, -1, -1);
	}
	be_item_batch_free(&b);
	free(d);
	case_end();

	case_begin("SyncFolderItems changes: delete, read flag, update, unknown");
	d = data_file("sync_items_changes.xml", &len);
	CHECK_INT(ews_parse_items(d, len, &b, &r), BE_OK);
	CHECK_INT(b.n, 4);
	CHECK(!b.more);
	CHECK_STR(b.new_state, "H4sIAAAAAAAEAGNgYGCEYhYGBvYDBgYGBkYGBgYGBgYGBgYGBgYGBgYG");
	if (b.n == 4) {
		check_item(&b.v[0], BE_DELETE, "AAMkAItem3", "CQAAAB3", NULL,
			   NULL, NULL, NULL, 0, 0, -1, -1, -1);
		check_item(&b.v[1], BE_READ_FLAG, "AAMkAItem1", "CQAAAB1b", NULL,
			   NULL, NULL, NULL, 0, 0, -1, 1, -1);
		check_item(&b.v[2], BE_UPDATE, "AAMkAItem2", "DwAAAB2b",
			   "Re: Planning", NULL, "IPM.Note", NULL, 1795248000,
			   0, 20999, 0, -1);
		check_item(&b.v[3], BE_CREATE, "AAMkAItem5", NULL, NULL,
			   "x@example.com", NULL, NULL, 0, 0, -1, -1, -1);
	}
	be_item_batch_free(&b);
	free(d);
	case_end();

	case_begin("SyncFolderItems: calendar items, contacts, other kinds");
	d = data_file("sync_items_pim.xml", &len);
	CHECK_INT(ews_parse_items(d, len, &b, &r), BE_OK);
	CHECK_INT(b.n, 6);
	if (b.n == 6) {
		CHECK_INT(b.v[0].kind, BE_KIND_CALENDAR);
		CHECK_INT(b.v[0].start, 1795251600);  /* 2026-11-21 09:00 UTC */
		CHECK_STR(b.v[0].subject, "Design review");
		CHECK_INT(b.v[1].kind, BE_KIND_CONTACT);
		CHECK_STR(b.v[1].subject, "J\xc3\xbcrgen M\xc3\xbcller");
		CHECK_INT(b.v[1].start, 0);
		CHECK_INT(b.v[2].kind, BE_KIND_CONTACT);
		CHECK_STR(b.v[2].subject, "Only FileAs");
		CHECK_INT(b.v[3].kind, BE_KIND_TASK);
		CHECK_INT(b.v[4].kind, BE_KIND_OTHER);
		CHECK_STR(b.v[4].id, "DL1");
		CHECK_INT(b.v[5].kind, BE_KIND_MAIL);
	}
	be_item_batch_free(&b);
	free(d);
	case_end();

	case_begin("SyncFolderItems: Flag, Categories, IsDraft");
	d = data_file("sync_items_props.xml", &len);
	CHECK_INT(ews_parse_items(d, len, &b, &r), BE_OK);
	CHECK_INT(b.n, 5);
	if (b.n == 5) {
		CHECK_INT(b.v[0].flag, BE_FLAG_FLAGGED);
		CHECK_STR(b.v[0].categories, "Red category,Project X");
		CHECK_INT(b.v[0].is_draft, 0);
		CHECK_INT(b.v[0].is_read, 1);
		/* a comma inside a category becomes a space; empty skipped */
		CHECK_INT(b.v[1].flag, BE_FLAG_COMPLETE);
		CHECK_STR(b.v[1].categories, "a  b,Caf\xc3\xa9 & more");
		CHECK_INT(b.v[1].is_draft, 1);
		CHECK_INT(b.v[2].change, BE_UPDATE);
		CHECK_INT(b.v[2].flag, BE_FLAG_NONE);
		CHECK_STR(b.v[2].categories, "");
		CHECK_INT(b.v[2].is_draft, 0);
		/* not asked for (before Exchange 2013) or not sent: unknown;
		 * categories were asked for, and Exchange leaves out empty
		 * ones: none */
		CHECK_INT(b.v[3].flag, -1);
		CHECK_STR(b.v[3].categories, "");
		CHECK_INT(b.v[3].is_draft, -1);
		CHECK_INT(b.v[4].change, BE_READ_FLAG);
		CHECK_INT(b.v[4].flag, -1);
		CHECK(b.v[4].categories == NULL);
		CHECK_INT(b.v[4].is_draft, -1);
	}
	be_item_batch_free(&b);
	free(d);
	case_end();

	case_begin("SyncFolderItems delete: no properties");
	d = data_file("sync_items_changes.xml", &len);
	CHECK_INT(ews_parse_items(d, len, &b, &r), BE_OK);
	if (b.n == 4) {
		CHECK(b.v[0].categories == NULL);
		CHECK_INT(b.v[0].flag, -1);
		CHECK_INT(b.v[0].is_draft, -1);
	}
	be_item_batch_free(&b);
	free(d);
	case_end();

	static const struct {
		const char *file;
		enum be_status st;
		const char *code;
		uint32_t retry;
	} errors[] = {
		{ "sync_items_invalid_state.xml", BE_SYNC_INVALID,
		  "ErrorInvalidSyncStateData", 0 },
		{ "sync_items_busy.xml", BE_THROTTLED, "ErrorServerBusy", 2500 },
		{ "sync_items_bad_folder.xml", BE_FOLDER_GONE,
		  "ErrorInvalidIdMalformed", 0 },
		{ "fault_busy.xml", BE_THROTTLED, "ErrorServerBusy", 5000 },
		{ "fault_schema.xml", BE_REFUSED, "ErrorSchemaValidation", 0 },
	};
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		char name[128];
		snprintf(name, sizeof(name), "SyncFolderItems error answer %s",
			 errors[i].file);
		case_begin(name);
		d = data_file(errors[i].file, &len);
		memset(&b, 0x5a, sizeof(b));
		CHECK_INT(ews_parse_items(d, len, &b, &r), errors[i].st);
		CHECK_STR(r.code, errors[i].code);
		CHECK_INT(r.retry_after_ms, errors[i].retry);
		CHECK(b.n == 0 && b.v == NULL && b.new_state == NULL);
		CHECK_CONTAINS(r.msg, errors[i].code);
		free(d);
		case_end();
	}
}

static void test_fault_body(void)
{
	size_t len;
	char *d;
	struct be_result r;

	case_begin("HTTP 500 body with SOAP fault ErrorServerBusy");
	d = data_file("fault_busy.xml", &len);
	CHECK_INT(ews_parse_fault_body(d, len, EWS_ON_ITEM, &r), BE_THROTTLED);
	CHECK_INT(r.retry_after_ms, 5000);
	free(d);
	case_end();

	case_begin("HTTP 500 body without a fault");
	CHECK_INT(ews_parse_fault_body("<html/>", 7, EWS_ON_ITEM, &r), BE_OK);
	CHECK_INT(ews_parse_fault_body("garbage", 7, EWS_ON_ITEM, &r), BE_OK);
	CHECK_INT(ews_parse_fault_body("", 0, EWS_ON_ITEM, &r), BE_OK);
	case_end();

	case_begin("ResponseClass and ResponseCode: which mean success");
	CHECK(ews_response_ok("Success", "NoError"));
	CHECK(ews_response_ok("Success", NULL));
	CHECK(!ews_response_ok("Error", "NoError"));
	CHECK(!ews_response_ok("Error", NULL));
	CHECK(ews_response_ok(NULL, "NoError"));
	CHECK(!ews_response_ok(NULL, "ErrorItemNotFound"));
	CHECK(!ews_response_ok(NULL, NULL));
	/* a Warning entry was not processed, unless its code says NoError */
	CHECK(!ews_response_ok("Warning", "ErrorBatchProcessingStopped"));
	CHECK(ews_response_ok("Warning", "NoError"));
	CHECK(ews_response_ok("Warning", NULL));
	case_end();

	case_begin("error grading table");
	CHECK_INT(ews_grade("NoError", EWS_ON_ITEM), BE_OK);
	CHECK_INT(ews_grade("ErrorItemNotFound", EWS_ON_ITEM), BE_ITEM_GONE);
	CHECK_INT(ews_grade("ErrorInvalidIdMalformed", EWS_ON_ITEM),
		  BE_ITEM_GONE);
	CHECK_INT(ews_grade("ErrorInvalidIdMalformed", EWS_ON_FOLDER),
		  BE_FOLDER_GONE);
	CHECK_INT(ews_grade("ErrorFolderNotFound", EWS_ON_ITEM),
		  BE_FOLDER_GONE);
	/* the folder itself is gone: a resync from empty would fail again */
	CHECK_INT(ews_grade("ErrorSyncFolderNotFound", EWS_ON_FOLDER),
		  BE_FOLDER_GONE);
	CHECK_INT(ews_grade("ErrorTooManyObjectsOpened", EWS_ON_ITEM),
		  BE_THROTTLED);
	CHECK_INT(ews_grade("ErrorMailboxStoreUnavailable", EWS_ON_ITEM),
		  BE_THROTTLED);
	CHECK_INT(ews_grade("ErrorAccessDenied", EWS_ON_ITEM), BE_AUTH);
	CHECK_INT(ews_grade("ErrorTimeoutExpired", EWS_ON_ITEM), BE_NETWORK);
	CHECK_INT(ews_grade("ErrorConnectionFailed", EWS_ON_ITEM), BE_NETWORK);
	CHECK_INT(ews_grade("ErrorInternalServerTransientError", EWS_ON_ITEM),
		  BE_NETWORK);
	/* a server or its directory briefly unable to serve: try again, never
	 * a refusal (a queued write failed, a reader given EPERM) */
	static const char *const again[] = {
		"ErrorADUnavailable", "ErrorInsufficientResources",
		"ErrorNotEnoughMemory", "ErrorMailboxFailover",
		"ErrorNoRespondingCASInDestinationSite",
		"ErrorNoApplicableProxyCASServersAvailable",
		"ErrorProxyCallFailed", "ErrorProxyRequestProcessingFailed",
		"ErrorProxyServiceDiscoveryFailed",
	};
	for (size_t i = 0; i < sizeof(again) / sizeof(again[0]); i++) {
		if (ews_grade(again[i], EWS_ON_ITEM) != BE_NETWORK)
			printf("  %s is not graded transient\n", again[i]);
		CHECK_INT(ews_grade(again[i], EWS_ON_ITEM), BE_NETWORK);
	}
	CHECK_INT(ews_grade("ErrorIrresolvableConflict", EWS_ON_ITEM),
		  BE_CONFLICT);
	CHECK_INT(ews_grade("ErrorStaleObject", EWS_ON_ITEM), BE_CONFLICT);
	CHECK_INT(ews_grade("ErrorChangeKeyRequiredForWriteOperations",
			    EWS_ON_FOLDER), BE_CONFLICT);
	CHECK_INT(ews_grade("ErrorFolderExists", EWS_ON_FOLDER), BE_EXISTS);
	CHECK_INT(ews_grade("ErrorToFolderNotFound", EWS_ON_ITEM),
		  BE_FOLDER_GONE);
	CHECK_INT(ews_grade("ErrorParentFolderNotFound", EWS_ON_FOLDER),
		  BE_FOLDER_GONE);
	CHECK_INT(ews_grade("ErrorSavedItemFolderNotFound", EWS_ON_FOLDER),
		  BE_FOLDER_GONE);
	CHECK_INT(ews_grade("ErrorInvalidChangeKey", EWS_ON_ITEM), BE_CONFLICT);
	CHECK_INT(ews_grade("ErrorBatchProcessingStopped", EWS_ON_ITEM),
		  BE_NETWORK);
	CHECK_INT(ews_grade("ErrorInvalidRecipients", EWS_ON_FOLDER),
		  BE_REFUSED);
	CHECK_INT(ews_grade("ErrorMessageSizeExceeded", EWS_ON_FOLDER),
		  BE_REFUSED);
	CHECK_INT(ews_grade("ErrorMimeContentConversionFailed", EWS_ON_ITEM),
		  BE_REFUSED);
	CHECK_INT(ews_grade("ErrorDeleteDistinguishedFolder", EWS_ON_FOLDER),
		  BE_REFUSED);
	CHECK_INT(ews_grade("ErrorMoveDistinguishedFolder", EWS_ON_FOLDER),
		  BE_REFUSED);
	CHECK_INT(ews_grade("ErrorCannotDeleteObject", EWS_ON_ITEM),
		  BE_REFUSED);
	CHECK_INT(ews_grade("ErrorSomethingNew", EWS_ON_ITEM), BE_REFUSED);
	CHECK_INT(ews_grade("", EWS_ON_ITEM), BE_REFUSED);
	CHECK_INT(ews_backoff_parse(" 300000 "), 300000);
	CHECK_INT(ews_backoff_parse("999999999999"), 24u * 3600 * 1000);
	CHECK_INT(ews_backoff_parse("-1"), 0);
	CHECK_INT(ews_backoff_parse("soon"), 0);
	case_end();
}

/* ---- hostile answers ---- */

static const char items_head[] =
	"<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body>"
	"<m:SyncFolderItemsResponse xmlns:m=\"" EWS_NS_M "\" xmlns:t=\"" EWS_NS_T "\">"
	"<m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass=\"Success\">"
	"<m:ResponseCode>NoError</m:ResponseCode>";
static const char items_tail[] =
	"</m:SyncFolderItemsResponseMessage></m:ResponseMessages>"
	"</m:SyncFolderItemsResponse></s:Body></s:Envelope>";
#define ST "<m:SyncState>S1</m:SyncState>"
#define MSG(x) "<t:Create><t:Message><t:ItemId Id=\"i1\"/>" x \
	"</t:Message></t:Create>"

enum which { ITEMS, FOLDERS, ROOT };

struct bad_row {
	const char *name;
	enum which which;
	bool wrap;          /* put between items_head and items_tail */
	const char *xml;
	enum be_status st;
	const char *msg;    /* substring of r.msg */
};

static const struct bad_row bad_rows[] = {
	{ "empty answer", ITEMS, false, "", BE_PROTOCOL, "malformed XML" },
	{ "not XML", ITEMS, false, "HTTP/1.1 200 OK", BE_PROTOCOL,
	  "malformed XML" },
	{ "truncated", ITEMS, false, "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Bo",
	  BE_PROTOCOL, "malformed XML" },
	{ "wrong root", ITEMS, false, "<Envelope/>", BE_PROTOCOL,
	  "not a SOAP envelope" },
	{ "SOAP 1.2 envelope", FOLDERS, false,
	  "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\"><e:Body/></e:Envelope>",
	  BE_PROTOCOL, "not a SOAP envelope" },
	{ "envelope without Body", ROOT, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Header/></s:Envelope>",
	  BE_PROTOCOL, "without a Body" },
	{ "empty Body", ITEMS, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body/></s:Envelope>",
	  BE_PROTOCOL, "no SyncFolderItemsResponseMessage" },
	{ "response message in the types namespace", ITEMS, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:R xmlns:m=\""
	  EWS_NS_M "\"><m:ResponseMessages><t:SyncFolderItemsResponseMessage xmlns:t=\""
	  EWS_NS_T "\" ResponseClass=\"Success\"/></m:ResponseMessages></m:R></s:Body></s:Envelope>",
	  BE_PROTOCOL, "no SyncFolderItemsResponseMessage" },
	{ "answer to another operation", FOLDERS, true, ST, BE_PROTOCOL,
	  "no SyncFolderHierarchyResponseMessage" },
	{ "no SyncState", ITEMS, true, "<m:Changes/>", BE_PROTOCOL,
	  "no SyncState" },
	{ "empty SyncState", ITEMS, true, "<m:SyncState> </m:SyncState>",
	  BE_PROTOCOL, "empty SyncState" },
	{ "SyncState in the types namespace", ITEMS, true,
	  "<t:SyncState>S</t:SyncState>", BE_PROTOCOL, "no SyncState" },
	{ "IncludesLastItemInRange garbage", ITEMS, true,
	  ST "<m:IncludesLastItemInRange>maybe</m:IncludesLastItemInRange>",
	  BE_PROTOCOL, "bad IncludesLastItemInRange 'maybe'" },
	{ "Size with garbage", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:Size>12abc</t:Size>") "</m:Changes>",
	  BE_PROTOCOL, "bad Size '12abc'" },
	{ "Size negative", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:Size>-5</t:Size>") "</m:Changes>",
	  BE_PROTOCOL, "bad Size" },
	{ "Size overflowing", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:Size>99999999999999999999</t:Size>") "</m:Changes>",
	  BE_PROTOCOL, "bad Size" },
	{ "Size empty", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:Size/>") "</m:Changes>",
	  BE_PROTOCOL, "bad Size" },
	{ "date with month 13", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:DateTimeSent>2026-13-01T00:00:00Z</t:DateTimeSent>") "</m:Changes>",
	  BE_PROTOCOL, "bad DateTimeSent" },
	{ "date in words", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:DateTimeReceived>yesterday</t:DateTimeReceived>") "</m:Changes>",
	  BE_PROTOCOL, "bad DateTimeReceived 'yesterday'" },
	{ "IsRead yes", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:IsRead>yes</t:IsRead>") "</m:Changes>",
	  BE_PROTOCOL, "bad IsRead" },
	{ "HasAttachments with a control character", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:HasAttachments>tr&#9;ue</t:HasAttachments>") "</m:Changes>",
	  BE_PROTOCOL, "bad HasAttachments 'tr?ue'" },
	{ "FlagStatus unknown", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:Flag><t:FlagStatus>Maybe</t:FlagStatus></t:Flag>") "</m:Changes>",
	  BE_PROTOCOL, "bad FlagStatus 'Maybe'" },
	{ "FlagStatus in the wrong case", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:Flag><t:FlagStatus>flagged</t:FlagStatus></t:Flag>") "</m:Changes>",
	  BE_PROTOCOL, "bad FlagStatus" },
	{ "IsDraft garbage", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:IsDraft>perhaps</t:IsDraft>") "</m:Changes>",
	  BE_PROTOCOL, "bad IsDraft 'perhaps'" },
	{ "ReadFlagChange without IsRead", ITEMS, true,
	  ST "<m:Changes><t:ReadFlagChange><t:ItemId Id=\"a\"/></t:ReadFlagChange></m:Changes>",
	  BE_PROTOCOL, "ReadFlagChange without IsRead" },
	{ "Create without an item", ITEMS, true,
	  ST "<m:Changes><t:Create><t:Message/></t:Create></m:Changes>",
	  BE_PROTOCOL, "Create without an item" },
	{ "ItemId without Id", ITEMS, true,
	  ST "<m:Changes><t:Delete><t:ItemId ChangeKey=\"x\"/></t:Delete></m:Changes>",
	  BE_PROTOCOL, "ItemId without Id" },
	{ "Delete without ItemId", ITEMS, true,
	  ST "<m:Changes><t:Delete/></m:Changes>", BE_PROTOCOL,
	  "ItemId missing" },
	{ "ItemId in the messages namespace", ITEMS, true,
	  ST "<m:Changes><t:Delete><m:ItemId Id=\"x\"/></t:Delete></m:Changes>",
	  BE_PROTOCOL, "ItemId missing" },
	{ "folder Create without FolderId", FOLDERS, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:R xmlns:m=\"" EWS_NS_M
	  "\" xmlns:t=\"" EWS_NS_T "\"><m:ResponseMessages><m:SyncFolderHierarchyResponseMessage>"
	  "<m:ResponseCode>NoError</m:ResponseCode>" ST
	  "<m:Changes><t:Create><t:Folder><t:DisplayName>x</t:DisplayName></t:Folder></t:Create></m:Changes>"
	  "</m:SyncFolderHierarchyResponseMessage></m:ResponseMessages></m:R></s:Body></s:Envelope>",
	  BE_PROTOCOL, "Create without a folder" },
	{ "folder TotalCount garbage", FOLDERS, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:R xmlns:m=\"" EWS_NS_M
	  "\" xmlns:t=\"" EWS_NS_T "\"><m:ResponseMessages><m:SyncFolderHierarchyResponseMessage>"
	  "<m:ResponseCode>NoError</m:ResponseCode>" ST
	  "<m:Changes><t:Create><t:Folder><t:FolderId Id=\"f\"/><t:TotalCount>0x10</t:TotalCount></t:Folder></t:Create></m:Changes>"
	  "</m:SyncFolderHierarchyResponseMessage></m:ResponseMessages></m:R></s:Body></s:Envelope>",
	  BE_PROTOCOL, "bad TotalCount '0x10'" },
	{ "GetFolder without a folder", ROOT, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:R xmlns:m=\"" EWS_NS_M
	  "\"><m:ResponseMessages><m:GetFolderResponseMessage ResponseClass=\"Success\">"
	  "<m:ResponseCode>NoError</m:ResponseCode><m:Folders/></m:GetFolderResponseMessage>"
	  "</m:ResponseMessages></m:R></s:Body></s:Envelope>",
	  BE_PROTOCOL, "no folder" },
	{ "Error class with NoError code", ITEMS, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:R xmlns:m=\"" EWS_NS_M
	  "\"><m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass=\"Error\">"
	  "<m:ResponseCode>NoError</m:ResponseCode></m:SyncFolderItemsResponseMessage>"
	  "</m:ResponseMessages></m:R></s:Body></s:Envelope>",
	  BE_PROTOCOL, "NoError" },
	{ "Error class without a code", ITEMS, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:R xmlns:m=\"" EWS_NS_M
	  "\"><m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass=\"Error\"/>"
	  "</m:ResponseMessages></m:R></s:Body></s:Envelope>",
	  BE_REFUSED, "ErrorUnknown" },
	{ "no ResponseClass, code only", ITEMS, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><m:R xmlns:m=\"" EWS_NS_M
	  "\"><m:ResponseMessages><m:SyncFolderItemsResponseMessage>"
	  "<m:ResponseCode> ErrorFolderNotFound\n</m:ResponseCode></m:SyncFolderItemsResponseMessage>"
	  "</m:ResponseMessages></m:R></s:Body></s:Envelope>",
	  BE_FOLDER_GONE, "ErrorFolderNotFound" },
	{ "fault without detail", ITEMS, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><s:Fault><faultcode>s:Client</faultcode>"
	  "<faultstring>bad\nrequest</faultstring></s:Fault></s:Body></s:Envelope>",
	  BE_REFUSED, "Client: bad request" },
	{ "empty fault", ROOT, false,
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body><s:Fault/></s:Body></s:Envelope>",
	  BE_REFUSED, "SoapFault" },
	{ "DOCTYPE with entities (billion laughs)", ITEMS, false,
	  "<?xml version=\"1.0\"?><!DOCTYPE s [<!ENTITY a \"aaaaaaaaaa\">"
	  "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>"
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body>&c;</s:Body></s:Envelope>",
	  BE_PROTOCOL, "document type declaration refused" },
	{ "external entity", ITEMS, false,
	  "<?xml version=\"1.0\"?><!DOCTYPE s [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body>&x;</s:Body></s:Envelope>",
	  BE_PROTOCOL, "document type declaration refused" },
	{ "external DTD", ITEMS, false,
	  "<?xml version=\"1.0\"?><!DOCTYPE s SYSTEM \"http://127.0.0.1:9/x.dtd\">"
	  "<s:Envelope xmlns:s=\"" EWS_NS_SOAP "\"><s:Body/></s:Envelope>",
	  BE_PROTOCOL, "document type declaration refused" },
	{ "undeclared entity", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:Subject>&xxe;</t:Subject>") "</m:Changes>",
	  BE_PROTOCOL, "malformed XML" },
	{ "invalid UTF-8", ITEMS, true,
	  ST "<m:Changes>" MSG("<t:Subject>\xc3\x28</t:Subject>") "</m:Changes>",
	  BE_PROTOCOL, "malformed XML" },
	{ "undeclared prefix", ITEMS, true, ST "<x:Changes/>", BE_PROTOCOL,
	  "malformed XML" },
};

static enum be_status run_parser(enum which w, const char *d, size_t len,
				 struct be_result *r)
{
	struct be_item_batch ib;
	struct be_folder_batch fb;
	char *id = NULL;
	enum be_status st;
	switch (w) {
	case ITEMS:
		st = ews_parse_items(d, len, &ib, r);
		be_item_batch_free(&ib);
		break;
	case FOLDERS:
		st = ews_parse_folders(d, len, &fb, r);
		be_folder_batch_free(&fb);
		break;
	default:
		st = ews_parse_root(d, len, &id, r);
		free(id);
		break;
	}
	return st;
}

static void test_bad_rows(void)
{
	for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
		const struct bad_row *row = &bad_rows[i];
		struct buf b;
		struct be_result r;
		buf_init(&b, 0);
		if (row->wrap)
			buf_puts(&b, items_head);
		buf_puts(&b, row->xml);
		if (row->wrap)
			buf_puts(&b, items_tail);
		case_begin(row->name);
		CHECK_INT(run_parser(row->which, b.data, b.len, &r), row->st);
		CHECK_CONTAINS(r.msg, row->msg);
		case_end();
		buf_free(&b);
	}
}

/* Exchange writes characters XML 1.0 forbids as references (&#x1;):
 * they are dropped, everything else is kept. */
static void test_forbidden_charrefs(void)
{
	struct buf b;
	struct be_result r;
	struct be_item_batch ib;

	case_begin("references to forbidden characters dropped (Exchange quirk)");
	buf_init(&b, 0);
	buf_printf(&b, "%s" ST "<m:Changes>"
		   "<t:Create><t:Message><t:ItemId Id=\"a&#x2;b\"/>"
		   "<t:Subject>A&#x1;B&#65;&#x1F600;&#0;C&#xFFFE;D&#55296;&#9;"
		   "&amp;#1;&#x10FFFF;&#x110000;&#1114112;E&#X1;&#32</t:Subject>"
		   "</t:Message></t:Create></m:Changes>%s", items_head,
		   items_tail);
	/* "&#X1;" (capital X) and "&#32" (no ';') are not references: the
	 * parser judges them (malformed) */
	CHECK_INT(ews_parse_items(b.data, b.len, &ib, &r), BE_PROTOCOL);
	buf_free(&b);
	buf_init(&b, 0);
	buf_printf(&b, "%s" ST "<m:Changes>"
		   "<t:Create><t:Message><t:ItemId Id=\"a&#x2;b\"/>"
		   "<t:Subject>A&#x1;B&#65;&#x1F600;&#0;C&#xFFFE;D&#55296;&#9;"
		   "&amp;#1;&#x10FFFF;&#x110000;&#1114112;E&#0000000001;F"
		   "</t:Subject></t:Message></t:Create></m:Changes>%s",
		   items_head, items_tail);
	CHECK_INT(ews_parse_items(b.data, b.len, &ib, &r), BE_OK);
	if (ib.n == 1) {
		CHECK_STR(ib.v[0].id, "ab");
		CHECK_STR(ib.v[0].subject, "ABA\xf0\x9f\x98\x80" "CD\t&#1;"
			  "\xf4\x8f\xbf\xbf" "EF");
	}
	be_item_batch_free(&ib);
	buf_free(&b);
	case_end();
}

/* Oversized values, built at run time. */
static void test_oversized(void)
{
	struct buf b;
	struct be_result r;
	char *big;

	case_begin("ItemId of 5000 bytes refused");
	buf_init(&b, 0);
	big = xmalloc(5001);
	memset(big, 'A', 5000);
	big[5000] = 0;
	buf_printf(&b, "%s" ST "<m:Changes><t:Delete><t:ItemId Id=\"%s\"/>"
		   "</t:Delete></m:Changes>%s", items_head, big, items_tail);
	CHECK_INT(run_parser(ITEMS, b.data, b.len, &r), BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "ItemId Id longer than 4096 bytes");
	free(big);
	buf_free(&b);
	case_end();

	case_begin("SyncState over 1 MiB refused");
	buf_init(&b, 0);
	size_t n = ((size_t)1 << 20) + 10;
	big = xmalloc(n + 1);
	memset(big, 'S', n);
	big[n] = 0;
	buf_printf(&b, "%s<m:SyncState>%s</m:SyncState>%s", items_head, big,
		   items_tail);
	CHECK_INT(run_parser(ITEMS, b.data, b.len, &r), BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "SyncState longer than");
	free(big);
	buf_free(&b);
	case_end();

	case_begin("Subject over 64 KiB refused");
	buf_init(&b, 0);
	n = 70000;
	big = xmalloc(n + 1);
	memset(big, 's', n);
	big[n] = 0;
	buf_printf(&b, "%s" ST "<m:Changes>" MSG("<t:Subject>%s</t:Subject>")
		   "</m:Changes>%s", items_head, big, items_tail);
	CHECK_INT(run_parser(ITEMS, b.data, b.len, &r), BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "Subject longer than");
	free(big);
	buf_free(&b);
	case_end();

	case_begin("Categories over 64 KiB in all refused");
	buf_init(&b, 0);
	big = xmalloc(40001);
	memset(big, 'c', 40000);
	big[40000] = 0;
	buf_printf(&b, "%s" ST "<m:Changes>" MSG("<t:Categories><t:String>%s"
		   "</t:String><t:String>%s</t:String></t:Categories>")
		   "</m:Changes>%s", items_head, big, big, items_tail);
	CHECK_INT(run_parser(ITEMS, b.data, b.len, &r), BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "Categories longer than");
	free(big);
	buf_free(&b);
	case_end();

	case_begin("attribute of 12 MB in an unknown element");
	buf_init(&b, 0);
	n = 12u << 20;
	big = xmalloc(n + 1);
	memset(big, 'x', n);
	big[n] = 0;
	buf_printf(&b, "%s" ST "<m:Changes><t:Unknown a=\"%s\"/></m:Changes>%s",
		   items_head, big, items_tail);
	CHECK_INT(run_parser(ITEMS, b.data, b.len, &r), BE_PROTOCOL);
	free(big);
	buf_free(&b);
	case_end();

	case_begin("nesting 100000 deep");
	buf_init(&b, 0);
	buf_printf(&b, "%s" ST "<m:Changes>", items_head);
	for (int i = 0; i < 100000; i++)
		buf_puts(&b, "<t:Create>");
	CHECK_INT(run_parser(ITEMS, b.data, b.len, &r), BE_PROTOCOL);
	buf_free(&b);
	case_end();

	case_begin("answer over the 64 MiB cap refused before parsing");
	CHECK_INT(run_parser(ITEMS, "", EWS_ANSWER_MAX + 1, &r), BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "too large");
	case_end();
}

/* Every truncation of a good answer fails cleanly. */
static int parse_cut(const char *data, size_t len, void *arg)
{
	struct be_result r;
	return run_parser(*(const enum which *)arg, data, len, &r) != BE_PROTOCOL ||
	       !r.msg[0];
}

static void test_truncations(void)
{
	static const struct { const char *file; enum which w; } files[] = {
		{ "getfolder_root.xml", ROOT },
		{ "sync_folders_first.xml", FOLDERS },
		{ "sync_folders_page.xml", FOLDERS },
		{ "sync_items_first.xml", ITEMS },
		{ "sync_items_changes.xml", ITEMS },
		{ "sync_items_props.xml", ITEMS },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		check_truncations(files[i].file, parse_cut, (void *)&files[i].w);
}

int main(void)
{
	test_root();
	test_folders();
	test_items();
	test_fault_body();
	test_bad_rows();
	test_forbidden_charrefs();
	test_oversized();
	test_truncations();
	return check_done("test_ews_parse");
}
