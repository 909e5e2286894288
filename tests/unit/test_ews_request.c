/*
 * test_ews_request.c - the SOAP requests of backend/ews/ews_request.c:
 * each one parses as XML, has the envelope and server version of
 * docs/ews-subset.md, escapes ids and states, omits an empty SyncState,
 * clamps MaxChangesReturned and asks for item:Flag only from Exchange 2013
 * on.  (The write requests are tested in test_ews_write.c.)
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"
#include "test_ews_util.h"

#include <stdbool.h>

/* Whether AdditionalProperties of an ItemShape asks for field uri. */
static bool asks_for(const xmlNode *op, const char *uri)
{
	const xmlNode *ap = xml_child(xml_child(op, EWS_NS_M, "ItemShape"),
				      EWS_NS_T, "AdditionalProperties");
	for (xmlNode *f = xml_child(ap, EWS_NS_T, "FieldURI"); f;
	     f = xml_next(f, EWS_NS_T, "FieldURI")) {
		char *v = NULL;
		bool hit = !xml_attr(f, "FieldURI", 256, &v) && v &&
			   !strcmp(v, uri);
		free(v);
		if (hit)
			return true;
	}
	return false;
}

static int count(const xmlNode *parent, const char *ns, const char *name)
{
	int n = 0;
	for (xmlNode *c = xml_child(parent, ns, name); c;
	     c = xml_next(c, ns, name))
		n++;
	return n;
}

static void test_requests(void)
{
	struct buf b;
	xmlDoc *doc;
	xmlNode *op;
	const char *nasty = "id\"<&'>\x01\xc3\xa9=";
	const char *nasty_out = "id\"<&'>\xc3\xa9=";  /* control char dropped */

	case_begin("GetFolder msgfolderroot");
	buf_init(&b, 0);
	ews_req_get_root(&b, EWS_VERSION_DEFAULT);
	op = op_of(&b, &doc);
	CHECK(xml_is(op, EWS_NS_M, "GetFolder"));
	CHECK_OWNED_STR(attr(xml_child(xml_child(op, EWS_NS_M, "FolderIds"),
				       EWS_NS_T, "DistinguishedFolderId"), "Id"),
			"msgfolderroot");
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("SyncFolderHierarchy first call: no SyncState, 5 fields");
	buf_init(&b, 0);
	ews_req_sync_folders(&b, EWS_VERSION_DEFAULT, "");
	op = op_of(&b, &doc);
	CHECK(xml_is(op, EWS_NS_M, "SyncFolderHierarchy"));
	CHECK(xml_child(op, EWS_NS_M, "SyncState") == NULL);
	CHECK_INT(count(xml_child(xml_child(op, EWS_NS_M, "FolderShape"),
				  EWS_NS_T, "AdditionalProperties"),
			EWS_NS_T, "FieldURI"), 5);
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("SyncFolderHierarchy with an escaped state");
	buf_init(&b, 0);
	ews_req_sync_folders(&b, EWS_VERSION_DEFAULT, nasty);
	op = op_of(&b, &doc);
	CHECK_OWNED_STR(text(xml_child(op, EWS_NS_M, "SyncState")), nasty_out);
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("SyncFolderItems: folder id escaped, order, 15 fields, max clamped");
	static const struct { unsigned in; const char *out; } clamp[] = {
		{ 0, "1" }, { 1, "1" }, { 100, "100" }, { 512, "512" },
		{ 513, "512" }, { 4000000000u, "512" },
	};
	for (size_t i = 0; i < sizeof(clamp) / sizeof(clamp[0]); i++) {
		buf_init(&b, 0);
		ews_req_sync_items(&b, EWS_VERSION_DEFAULT, nasty, i ? "H4sI+/=" : NULL,
				   clamp[i].in);
		op = op_of(&b, &doc);
		CHECK(xml_is(op, EWS_NS_M, "SyncFolderItems"));
		CHECK_OWNED_STR(attr(xml_child(xml_child(op, EWS_NS_M,
							 "SyncFolderId"),
					       EWS_NS_T, "FolderId"), "Id"),
				nasty_out);
		CHECK_OWNED_STR(text(xml_child(op, EWS_NS_M,
					       "MaxChangesReturned")),
				clamp[i].out);
		CHECK_OWNED_STR(text(xml_child(op, EWS_NS_M, "SyncScope")),
				"NormalItems");
		if (i)
			CHECK_OWNED_STR(text(xml_child(op, EWS_NS_M,
						       "SyncState")),
					"H4sI+/=");
		else
			CHECK(!xml_child(op, EWS_NS_M, "SyncState"));
		CHECK_INT(count(xml_child(xml_child(op, EWS_NS_M, "ItemShape"),
					  EWS_NS_T, "AdditionalProperties"),
				EWS_NS_T, "FieldURI"), 15);
		CHECK(asks_for(op, "item:Flag"));
		CHECK(asks_for(op, "calendar:Start"));
		CHECK(asks_for(op, "contacts:DisplayName"));
		CHECK(asks_for(op, "contacts:FileAs"));
		CHECK(asks_for(op, "item:Categories"));
		CHECK(asks_for(op, "item:IsDraft"));
		/* schema order: ItemShape, SyncFolderId, SyncState,
		 * MaxChangesReturned, SyncScope */
		const char *order[] = { "ItemShape", "SyncFolderId",
					"SyncState", "MaxChangesReturned",
					"SyncScope" };
		size_t k = 0;
		for (xmlNode *c = xml_child(op, NULL, NULL); c;
		     c = xml_next(c, NULL, NULL)) {
			while (k < 5 && strcmp((const char *)c->name, order[k]))
				k++;
			CHECK(k < 5);
		}
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();

	case_begin("SyncFolderItems before Exchange 2013: no item:Flag");
	static const char *const old_versions[] = {
		"Exchange2010_SP2", "Exchange2010", "Exchange2007_SP1",
	};
	for (size_t i = 0; i < 3; i++) {
		buf_init(&b, 0);
		ews_req_sync_items(&b, old_versions[i], "f", NULL, 10);
		op = request_op_v(&b, &doc, old_versions[i]);
		CHECK_INT(count(xml_child(xml_child(op, EWS_NS_M, "ItemShape"),
					  EWS_NS_T, "AdditionalProperties"),
				EWS_NS_T, "FieldURI"), 14);
		CHECK(!asks_for(op, "item:Flag"));
		CHECK(asks_for(op, "item:Categories"));
		CHECK(asks_for(op, "item:IsDraft"));
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();

	case_begin("GetItem with MimeContent for 3 ids in order");
	const char *ids[] = { "A1", nasty, "A3" };
	buf_init(&b, 0);
	ews_req_get_mime(&b, EWS_VERSION_DEFAULT, ids, 3);
	op = op_of(&b, &doc);
	CHECK(xml_is(op, EWS_NS_M, "GetItem"));
	CHECK_OWNED_STR(text(xml_child(xml_child(op, EWS_NS_M, "ItemShape"),
				       EWS_NS_T, "IncludeMimeContent")),
			"true");
	xmlNode *ii = xml_child(op, EWS_NS_M, "ItemIds");
	CHECK_INT(count(ii, EWS_NS_T, "ItemId"), 3);
	xmlNode *id = xml_child(ii, EWS_NS_T, "ItemId");
	CHECK_OWNED_STR(attr(id, "Id"), "A1");
	id = xml_next(id, EWS_NS_T, "ItemId");
	CHECK_OWNED_STR(attr(id, "Id"), nasty_out);
	id = xml_next(id, EWS_NS_T, "ItemId");
	CHECK_OWNED_STR(attr(id, "Id"), "A3");
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();
}

int main(void)
{
	test_requests();
	return check_done("test_ews_request");
}
