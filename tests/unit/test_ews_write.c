/*
 * test_ews_write.c - the write side of the EWS backend without a server,
 * its answers: every write answer of ews_parse.c on recorded-format answers
 * in data/ews/write_*.xml (success, per-item errors graded through the one
 * table, an empty Items for a send, a missing ChangeKey, garbage and every
 * truncation), and the checks ews_write.c makes before any request.  The
 * requests: test_ews_write_requests.c.
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"
#include "test_ews_util.h"

#include <stdbool.h>
#include <time.h>


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

	case_begin("caps: everything but many folders per call");
	struct be_caps caps;
	be_caps_get(ops, NULL, &caps);
	CHECK_INT(caps.can, BE_CAN_ALL & ~BE_CAN_SYNC_MANY);
	CHECK_STR(caps.speaks, "EWS");
	char *missing = be_caps_missing(caps.can);
	CHECK_STR(missing, "nothing");
	free(missing);
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
	test_answers();
	test_special_answers();
	test_bad_answers();
	test_truncations();
	test_input_checks();
	return check_done("test_ews_write");
}
