/*
 * ews_request.c - the SOAP requests exchangefs sends (docs/ews-subset.md),
 * with every value from outside (ids, sync states) XML-escaped.
 */
#include "backend/ews/ews.h"

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
	       "</t:AdditionalProperties>"
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
