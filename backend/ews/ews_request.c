/*
 * ews_request.c - the SOAP requests exchangefs sends (docs/ews-subset.md),
 * with every value from outside (ids, sync states, names, tokens,
 * categories) XML-escaped.  Elements are written in the order of the
 * schema's sequences (MS-OXWS*), which Exchange validates.
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char envelope_head[] =
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	"<soap:Envelope xmlns:soap=\"" EWS_NS_SOAP "\""
	" xmlns:t=\"" EWS_NS_T "\" xmlns:m=\"" EWS_NS_M "\">"
	"<soap:Header>"
	"<t:RequestServerVersion Version=\"";
static const char envelope_head_end[] = "\"/></soap:Header><soap:Body>";
static const char envelope_tail[] = "</soap:Body></soap:Envelope>\n";

/* The buffers here have no cap, so buf_* cannot fail. */
static void put(struct buf *b, const char *s)
{
	(void)buf_puts(b, s);
}

static void put_escaped(struct buf *b, const char *s)
{
	(void)buf_put_xml_escaped(b, s);
}

/* The envelope up to the body, asking for the given schema version (one
 * of a fixed list in ews.c, so it needs no escaping). */
static void begin(struct buf *b, const char *version)
{
	put(b, envelope_head);
	put(b, version ? version : EWS_VERSION_DEFAULT);
	put(b, envelope_head_end);
}

void ews_req_open(struct buf *b, const char *version)
{
	begin(b, version);
}

void ews_req_close(struct buf *b)
{
	put(b, envelope_tail);
}

static void put_state(struct buf *b, const char *state)
{
	if (!state || !*state)
		return;  /* omitted: from the beginning */
	put(b, "<m:SyncState>");
	put_escaped(b, state);
	put(b, "</m:SyncState>");
}

void ews_req_get_root(struct buf *b, const char *version)
{
	begin(b, version);
	put(b, "<m:GetFolder>"
	       "<m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
	       "<m:FolderIds><t:DistinguishedFolderId Id=\"msgfolderroot\"/></m:FolderIds>"
	       "</m:GetFolder>");
	put(b, envelope_tail);
}

void ews_req_sync_folders(struct buf *b, const char *version,
			  const char *state)
{
	begin(b, version);
	put(b, "<m:SyncFolderHierarchy>"
	       "<m:FolderShape>"
	       "<t:BaseShape>IdOnly</t:BaseShape>"
	       "<t:AdditionalProperties>"
	       "<t:FieldURI FieldURI=\"folder:ParentFolderId\"/>"
	       "<t:FieldURI FieldURI=\"folder:DisplayName\"/>"
	       "<t:FieldURI FieldURI=\"folder:FolderClass\"/>"
	       "<t:FieldURI FieldURI=\"folder:TotalCount\"/>"
	       "<t:FieldURI FieldURI=\"folder:UnreadCount\"/>"
	       "</t:AdditionalProperties>"
	       "</m:FolderShape>"
	       "<m:SyncFolderId><t:DistinguishedFolderId Id=\"msgfolderroot\"/></m:SyncFolderId>");
	put_state(b, state);
	put(b, "</m:SyncFolderHierarchy>");
	put(b, envelope_tail);
}

void ews_req_sync_items(struct buf *b, const char *version, const char *folder_id,
			const char *state, unsigned max)
{
	if (max < 1)
		max = 1;
	if (max > EWS_MAX_CHANGES)
		max = EWS_MAX_CHANGES;
	begin(b, version);
	put(b, "<m:SyncFolderItems>"
	       "<m:ItemShape>"
	       "<t:BaseShape>IdOnly</t:BaseShape>"
	       "<t:AdditionalProperties>"
	       "<t:FieldURI FieldURI=\"item:Subject\"/>"
	       "<t:FieldURI FieldURI=\"item:DateTimeReceived\"/>"
	       "<t:FieldURI FieldURI=\"item:DateTimeSent\"/>"
	       "<t:FieldURI FieldURI=\"item:Size\"/>"
	       "<t:FieldURI FieldURI=\"item:ItemClass\"/>"
	       "<t:FieldURI FieldURI=\"item:HasAttachments\"/>"
	       "<t:FieldURI FieldURI=\"message:From\"/>"
	       "<t:FieldURI FieldURI=\"message:IsRead\"/>"
	       "<t:FieldURI FieldURI=\"message:InternetMessageId\"/>"
	       "<t:FieldURI FieldURI=\"item:Categories\"/>"
	       "<t:FieldURI FieldURI=\"item:IsDraft\"/>"
	       /* what calendar items and contacts are named by (Exchange
		* answers only the properties an item has) */
	       "<t:FieldURI FieldURI=\"calendar:Start\"/>"
	       "<t:FieldURI FieldURI=\"contacts:DisplayName\"/>"
	       "<t:FieldURI FieldURI=\"contacts:FileAs\"/>");
	if (ews_version_at_least(version, EWS_VERSION_FLAG))
		put(b, "<t:FieldURI FieldURI=\"item:Flag\"/>");
	put(b, "</t:AdditionalProperties>"
	       "</m:ItemShape>"
	       "<m:SyncFolderId><t:FolderId Id=\"");
	put_escaped(b, folder_id);
	put(b, "\"/></m:SyncFolderId>");
	put_state(b, state);
	(void)buf_printf(b, "<m:MaxChangesReturned>%u</m:MaxChangesReturned>",
			 max);
	put(b, "<m:SyncScope>NormalItems</m:SyncScope>"
	       "</m:SyncFolderItems>");
	put(b, envelope_tail);
}

void ews_req_get_mime(struct buf *b, const char *version,
		      const char *const *ids, size_t n)
{
	begin(b, version);
	put(b, "<m:GetItem>"
	       "<m:ItemShape>"
	       "<t:BaseShape>IdOnly</t:BaseShape>"
	       "<t:IncludeMimeContent>true</t:IncludeMimeContent>"
	       "</m:ItemShape>"
	       "<m:ItemIds>");
	for (size_t i = 0; i < n; i++) {
		put(b, "<t:ItemId Id=\"");
		put_escaped(b, ids[i]);
		put(b, "\"/>");
	}
	put(b, "</m:ItemIds></m:GetItem>");
	put(b, envelope_tail);
}

/* ---- schema versions ---- */

bool ews_version_at_least(const char *version, const char *min)
{
	/* oldest first; anything else is newer than all of these */
	static const char *const known[] = {
		"Exchange2007", "Exchange2007_SP1", "Exchange2010",
		"Exchange2010_SP1", "Exchange2010_SP2", "Exchange2013",
		"Exchange2013_SP1",
	};
	const size_t n = sizeof(known) / sizeof(known[0]);
	size_t rv = n, rm = n;
	if (!version)
		version = EWS_VERSION_DEFAULT;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(known[i], version))
			rv = i;
		if (!strcmp(known[i], min))
			rm = i;
	}
	return rv >= rm;
}

/* ---- pieces of write requests ---- */

/* <t:ItemId> or <t:FolderId> (elem), ChangeKey only when there is one. */
static void put_id(struct buf *b, const char *elem, const char *id,
		   const char *change_key)
{
	put(b, "<t:");
	put(b, elem);
	put(b, " Id=\"");
	put_escaped(b, id);
	if (change_key && *change_key) {
		put(b, "\" ChangeKey=\"");
		put_escaped(b, change_key);
	}
	put(b, "\"/>");
}

/* <m:wrap><t:FolderId Id=".."/></m:wrap> */
static void put_folder_in(struct buf *b, const char *wrap, const char *id)
{
	(void)buf_printf(b, "<m:%s>", wrap);
	put_id(b, "FolderId", id, NULL);
	(void)buf_printf(b, "</m:%s>", wrap);
}

/* <m:wrap><t:ItemId Id=".."/></m:wrap> */
static void put_item_in(struct buf *b, const char *wrap, const char *id)
{
	(void)buf_printf(b, "<m:%s>", wrap);
	put_id(b, "ItemId", id, NULL);
	(void)buf_printf(b, "</m:%s>", wrap);
}

/* The message as base64, encoded straight into b. */
static void put_mime(struct buf *b, const void *mime, size_t len)
{
	put(b, "<t:MimeContent CharacterSet=\"UTF-8\">");
	(void)b64_encode(b, mime, len);
	put(b, "</t:MimeContent>");
}

static const char token_uri[] =
	"<t:ExtendedFieldURI PropertySetId=\"" EWS_TOKEN_SET "\""
	" PropertyName=\"" EWS_TOKEN_NAME "\" PropertyType=\"String\"/>";

/* MAPI properties by tag (PidTag...), for what EWS has no field for. */
#define URI_MESSAGE_FLAGS \
	"<t:ExtendedFieldURI PropertyTag=\"0x0E07\" PropertyType=\"Integer\"/>"
#define URI_DELIVERY_TIME \
	"<t:ExtendedFieldURI PropertyTag=\"0x0E06\" PropertyType=\"SystemTime\"/>"
#define URI_FLAG_STATUS \
	"<t:ExtendedFieldURI PropertyTag=\"0x1090\" PropertyType=\"Integer\"/>"
#define MSGFLAG_READ 1  /* and not MSGFLAG_UNSENT (8): not a draft */

/* <t:ExtendedProperty> of uri (literal XML) with an escaped value. */
static void put_ext_prop(struct buf *b, const char *uri, const char *value)
{
	put(b, "<t:ExtendedProperty>");
	put(b, uri);
	put(b, "<t:Value>");
	put_escaped(b, value);
	put(b, "</t:Value></t:ExtendedProperty>");
}

/* The GetFolder of the special folders and of one folder by id. */
static void get_folders(struct buf *b, const char *version, const char *id)
{
	static const char *const names[BE_SPECIAL_N] = {
		[BE_INBOX] = "inbox", [BE_DRAFTS] = "drafts",
		[BE_SENT] = "sentitems", [BE_DELETED] = "deleteditems",
		[BE_OUTBOX] = "outbox",
	};
	begin(b, version);
	put(b, "<m:GetFolder>"
	       "<m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
	       "<m:FolderIds>");
	if (id) {
		put_id(b, "FolderId", id, NULL);
	} else {
		for (int k = 0; k < BE_SPECIAL_N; k++)
			(void)buf_printf(b, "<t:DistinguishedFolderId Id=\"%s\"/>",
					 names[k]);
	}
	put(b, "</m:FolderIds></m:GetFolder>");
	put(b, envelope_tail);
}

void ews_req_special_folders(struct buf *b, const char *version)
{
	get_folders(b, version, NULL);
}

void ews_req_get_folder(struct buf *b, const char *version, const char *id)
{
	get_folders(b, version, id);
}

/* ---- items ---- */

void ews_req_create_item(struct buf *b, const char *version,
			 const char *folder_id, const void *mime, size_t len,
			 enum be_disposition how, int64_t date,
			 const char *token)
{
	begin(b, version);
	(void)buf_printf(b, "<m:CreateItem MessageDisposition=\"%s\">",
			 how == BE_SEND ? "SendAndSaveCopy" : "SaveOnly");
	put_folder_in(b, "SavedItemFolderId", folder_id);
	/* t:Message: MimeContent is first in ItemType's sequence, the
	 * ExtendedProperty elements come after HasAttachments */
	put(b, "<m:Items><t:Message>");
	put_mime(b, mime, len);
	put_ext_prop(b, token_uri, token);
	if (how == BE_SAVE) {
		char v[32];
		snprintf(v, sizeof(v), "%d", MSGFLAG_READ);
		put_ext_prop(b, URI_MESSAGE_FLAGS, v);
		xs_datetime_format(date ? date : (int64_t)time(NULL), v);
		put_ext_prop(b, URI_DELIVERY_TIME, v);
	}
	put(b, "</t:Message></m:Items></m:CreateItem>");
	put(b, envelope_tail);
}

void ews_req_find_token(struct buf *b, const char *version,
			const char *folder_id, const char *token)
{
	begin(b, version);
	put(b, "<m:FindItem Traversal=\"Shallow\">"
	       "<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
	       "<m:Restriction><t:IsEqualTo>");
	put(b, token_uri);
	put(b, "<t:FieldURIOrConstant><t:Constant Value=\"");
	put_escaped(b, token);
	put(b, "\"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>");
	put_folder_in(b, "ParentFolderIds", folder_id);
	put(b, "</m:FindItem>");
	put(b, envelope_tail);
}

/* UpdateItem of one item up to its t:Updates.  AutoResolve needs the
 * change key to compare with; without one the last writer wins. */
static void begin_update_item(struct buf *b, const char *version,
			      const char *id, const char *change_key)
{
	begin(b, version);
	(void)buf_printf(b, "<m:UpdateItem MessageDisposition=\"SaveOnly\""
			 " ConflictResolution=\"%s\">",
			 change_key && *change_key ? "AutoResolve"
						   : "AlwaysOverwrite");
	put(b, "<m:ItemChanges><t:ItemChange>");
	put_id(b, "ItemId", id, change_key);
	put(b, "<t:Updates>");
}

static void end_update_item(struct buf *b)
{
	put(b, "</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>");
	put(b, envelope_tail);
}

void ews_req_replace_mime(struct buf *b, const char *version, const char *id,
			  const char *change_key, const void *mime,
			  size_t len)
{
	begin_update_item(b, version, id, change_key);
	put(b, "<t:SetItemField><t:FieldURI FieldURI=\"item:MimeContent\"/>"
	       "<t:Message>");
	put_mime(b, mime, len);
	put(b, "</t:Message></t:SetItemField>");
	end_update_item(b);
}

/* SetItemField of a field (FieldURI) with the t:Message content given. */
static void set_field(struct buf *b, const char *uri, const char *content)
{
	(void)buf_printf(b, "<t:SetItemField><t:FieldURI FieldURI=\"%s\"/>"
			 "<t:Message>%s</t:Message></t:SetItemField>", uri,
			 content);
}

static void put_flag(struct buf *b, const char *version, enum be_flag flag)
{
	if (ews_version_at_least(version, EWS_VERSION_FLAG)) {
		char v[96];
		snprintf(v, sizeof(v), "<t:Flag><t:FlagStatus>%s</t:FlagStatus></t:Flag>",
			 flag == BE_FLAG_FLAGGED ? "Flagged"
			 : flag == BE_FLAG_COMPLETE ? "Complete" : "NotFlagged");
		set_field(b, "item:Flag", v);
		return;
	}
	/* PidTagFlagStatus (MS-OXOFLAG): 1 complete, 2 flagged; an item
	 * that is not flagged has no such property */
	if (flag != BE_FLAG_FLAGGED && flag != BE_FLAG_COMPLETE) {
		put(b, "<t:DeleteItemField>" URI_FLAG_STATUS
		       "</t:DeleteItemField>");
		return;
	}
	put(b, "<t:SetItemField>" URI_FLAG_STATUS "<t:Message>");
	put_ext_prop(b, URI_FLAG_STATUS, flag == BE_FLAG_COMPLETE ? "1" : "2");
	put(b, "</t:Message></t:SetItemField>");
}

/* Categories from "a,b,c": one t:String each, empty pieces skipped; none
 * left deletes the field. */
static void put_categories(struct buf *b, const char *cats)
{
	bool any = false;
	for (const char *p = cats ? cats : ""; *p;) {
		size_t n = strcspn(p, ",");
		if (n) {
			char *one = xstrndup(p, n);
			if (!any)
				put(b, "<t:SetItemField>"
				       "<t:FieldURI FieldURI=\"item:Categories\"/>"
				       "<t:Message><t:Categories>");
			any = true;
			put(b, "<t:String>");
			put_escaped(b, one);
			put(b, "</t:String>");
			free(one);
		}
		p += n + (p[n] == ',');
	}
	if (any)
		put(b, "</t:Categories></t:Message></t:SetItemField>");
	else
		put(b, "<t:DeleteItemField>"
		       "<t:FieldURI FieldURI=\"item:Categories\"/>"
		       "</t:DeleteItemField>");
}

void ews_req_update_props(struct buf *b, const char *version, const char *id,
			  const char *change_key, const struct be_props *p)
{
	begin_update_item(b, version, id, change_key);
	if (p->mask & BE_PROP_READ)
		set_field(b, "message:IsRead",
			  p->read ? "<t:IsRead>true</t:IsRead>"
				  : "<t:IsRead>false</t:IsRead>");
	if (p->mask & BE_PROP_FLAG)
		put_flag(b, version, p->flag);
	if (p->mask & BE_PROP_CATEGORIES)
		put_categories(b, p->categories);
	end_update_item(b);
}

void ews_req_get_item_id(struct buf *b, const char *version, const char *id)
{
	begin(b, version);
	put(b, "<m:GetItem>"
	       "<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>");
	put_item_in(b, "ItemIds", id);
	put(b, "</m:GetItem>");
	put(b, envelope_tail);
}

void ews_req_delete_item(struct buf *b, const char *version, const char *id,
			 enum be_delete how)
{
	begin(b, version);
	(void)buf_printf(b, "<m:DeleteItem DeleteType=\"%s\">",
			 how == BE_DEL_HARD ? "HardDelete"
			 : how == BE_DEL_SOFT ? "SoftDelete"
					      : "MoveToDeletedItems");
	put_item_in(b, "ItemIds", id);
	put(b, "</m:DeleteItem>");
	put(b, envelope_tail);
}

void ews_req_move_item(struct buf *b, const char *version, const char *id,
		       const char *to_folder_id)
{
	begin(b, version);
	put(b, "<m:MoveItem>");
	put_folder_in(b, "ToFolderId", to_folder_id);
	put_item_in(b, "ItemIds", id);
	/* older servers do not know the element, and return new ids anyway */
	if (ews_version_at_least(version, EWS_VERSION_RETURN_NEW_IDS))
		put(b, "<m:ReturnNewItemIds>true</m:ReturnNewItemIds>");
	put(b, "</m:MoveItem>");
	put(b, envelope_tail);
}

/* ---- folders ---- */

void ews_req_create_folder(struct buf *b, const char *version,
			   const char *parent_id, const char *name)
{
	begin(b, version);
	put(b, "<m:CreateFolder>");
	put_folder_in(b, "ParentFolderId", parent_id);
	/* BaseFolderType: FolderClass before DisplayName */
	put(b, "<m:Folders><t:Folder><t:FolderClass>IPF.Note</t:FolderClass>"
	       "<t:DisplayName>");
	put_escaped(b, name);
	put(b, "</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>");
	put(b, envelope_tail);
}

void ews_req_rename_folder(struct buf *b, const char *version, const char *id,
			   const char *change_key, const char *name)
{
	begin(b, version);
	put(b, "<m:UpdateFolder><m:FolderChanges><t:FolderChange>");
	put_id(b, "FolderId", id, change_key);
	put(b, "<t:Updates><t:SetFolderField>"
	       "<t:FieldURI FieldURI=\"folder:DisplayName\"/>"
	       "<t:Folder><t:DisplayName>");
	put_escaped(b, name);
	put(b, "</t:DisplayName></t:Folder></t:SetFolderField></t:Updates>"
	       "</t:FolderChange></m:FolderChanges></m:UpdateFolder>");
	put(b, envelope_tail);
}

void ews_req_move_folder(struct buf *b, const char *version, const char *id,
			 const char *to_parent_id)
{
	begin(b, version);
	put(b, "<m:MoveFolder>");
	put_folder_in(b, "ToFolderId", to_parent_id);
	put_folder_in(b, "FolderIds", id);
	put(b, "</m:MoveFolder>");
	put(b, envelope_tail);
}

void ews_req_delete_folder(struct buf *b, const char *version, const char *id,
			   bool hard)
{
	begin(b, version);
	(void)buf_printf(b, "<m:DeleteFolder DeleteType=\"%s\">",
			 hard ? "HardDelete" : "MoveToDeletedItems");
	put_folder_in(b, "FolderIds", id);
	put(b, "</m:DeleteFolder>");
	put(b, envelope_tail);
}
