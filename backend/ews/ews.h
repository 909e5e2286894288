/*
 * ews.h - what the files of the EWS backend share: namespaces, caps, and
 * the request builders, parsers and error grading that unit tests and
 * fuzzers call directly (no HTTP involved).
 *
 *   ews.c          the ops table and the session (HTTP calls)
 *   ews_write.c    the write operations (HTTP calls)
 *   ews_request.c  SOAP requests
 *   ews_parse.c    sync, GetFolder and write answers (tree parser)
 *   ews_mime.c     GetItem answers streamed -> MIME bytes (push parser)
 *   ews_errors.c   the one table of ResponseCodes and SOAP faults
 */
#ifndef EXCHANGEFS_EWS_H
#define EXCHANGEFS_EWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "backend/backend.h"
#include "backend/util.h"

#define EWS_NS_SOAP "http://schemas.xmlsoap.org/soap/envelope/"
#define EWS_NS_T "http://schemas.microsoft.com/exchange/services/2006/types"
#define EWS_NS_M "http://schemas.microsoft.com/exchange/services/2006/messages"
#define EWS_NS_E "http://schemas.microsoft.com/exchange/services/2006/errors"

#define EWS_ID_MAX 4096                 /* ItemId/FolderId/ChangeKey */
#define EWS_STATE_MAX ((size_t)1 << 20) /* SyncState */
#define EWS_TEXT_MAX ((size_t)64 << 10) /* subject, names, classes */
#define EWS_ANSWER_MAX ((size_t)64 << 20) /* answers held in memory */
#define EWS_MAX_CHANGES 512             /* SyncFolderItems maximum */

/* --- ews_request.c: SOAP request bodies (escaped; b has no cap) --- */
/* Schema versions asked for in RequestServerVersion, newest first: a
 * server that refuses one (Exchange 2010 and 2007 reject names they do
 * not know) is asked again with the next at sign-in. */
#define EWS_VERSION_DEFAULT "Exchange2013_SP1"
extern const char *const ews_versions[];
void ews_req_get_root(struct buf *b, const char *version);
void ews_req_sync_folders(struct buf *b, const char *version,
			  const char *state);
/* max is clamped to 1..EWS_MAX_CHANGES */
void ews_req_sync_items(struct buf *b, const char *version,
			const char *folder_id,
			const char *state, unsigned max);
void ews_req_get_mime(struct buf *b, const char *version,
		      const char *const *ids, size_t n);

/* Whether the schema version a session speaks is min or newer (names as
 * in RequestServerVersion; NULL means EWS_VERSION_DEFAULT; a name this
 * client does not know counts as newer than all it knows). */
bool ews_version_at_least(const char *version, const char *min);
/* What needs which version: t:Flag (item:Flag) came with Exchange 2013,
 * m:ReturnNewItemIds with Exchange 2010 SP1. */
#define EWS_VERSION_FLAG "Exchange2013"
#define EWS_VERSION_RETURN_NEW_IDS "Exchange2010_SP1"

/* The hidden property create_item stores its token in (a named MAPI
 * property of exchangefs' own property set). */
#define EWS_TOKEN_SET "3c7e2f4a-9b1d-4e6a-8f5c-2d0b7a1e9c43"
#define EWS_TOKEN_NAME "ExchangefsToken"
#define EWS_TOKEN_MAX 64

/* Write requests (docs/ews-subset.md, "Writes").  Ids, names, tokens and
 * categories are escaped here; their validity (length, UTF-8, token
 * alphabet) is checked by the callers in ews_write.c. */
/* GetFolder of inbox, drafts, sentitems, deleteditems, outbox, in the
 * order of enum be_special. */
void ews_req_special_folders(struct buf *b, const char *version);
/* GetFolder of one folder (IdOnly: its current ChangeKey). */
void ews_req_get_folder(struct buf *b, const char *version, const char *id);
/* CreateItem of RFC 5322 bytes (base64 written straight into b).  date
 * (Unix seconds, 0 = now) is used for BE_SAVE only. */
void ews_req_create_item(struct buf *b, const char *version,
			 const char *folder_id, const void *mime, size_t len,
			 enum be_disposition how, int64_t date,
			 const char *token);
/* FindItem of the item in folder_id whose token property is token. */
void ews_req_find_token(struct buf *b, const char *version,
			const char *folder_id, const char *token);
/* UpdateItem setting item:MimeContent; change_key NULL = omitted (and
 * AlwaysOverwrite instead of AutoResolve). */
void ews_req_replace_mime(struct buf *b, const char *version, const char *id,
			  const char *change_key, const void *mime,
			  size_t len);
/* UpdateItem of the properties in p->mask (at least one bit set);
 * change_key as above.  Before EWS_VERSION_FLAG the follow-up flag is
 * written as PidTagFlagStatus (0x1090). */
void ews_req_update_props(struct buf *b, const char *version, const char *id,
			  const char *change_key, const struct be_props *p);
/* GetItem IdOnly: the item's current ChangeKey. */
void ews_req_get_item_id(struct buf *b, const char *version, const char *id);
void ews_req_delete_item(struct buf *b, const char *version, const char *id,
			 enum be_delete how);
void ews_req_move_item(struct buf *b, const char *version, const char *id,
		       const char *to_folder_id);
/* CreateFolder of an IPF.Note folder. */
void ews_req_create_folder(struct buf *b, const char *version,
			   const char *parent_id, const char *name);
/* UpdateFolder of folder:DisplayName; change_key NULL = omitted. */
void ews_req_rename_folder(struct buf *b, const char *version, const char *id,
			   const char *change_key, const char *name);
void ews_req_move_folder(struct buf *b, const char *version, const char *id,
			 const char *to_parent_id);
void ews_req_delete_folder(struct buf *b, const char *version, const char *id,
			   bool hard);

/* --- ews_errors.c --- */
/* Which kind of id a call is about: an id-shaped error in a call about a
 * folder (SyncFolderItems) means the folder is gone. */
enum ews_ctx { EWS_ON_ITEM, EWS_ON_FOLDER };
enum be_status ews_grade(const char *code, enum ews_ctx ctx);
/* Fill r from an EWS error: status from the table, code, "Code: text"
 * (text may be NULL), retry_after_ms = backoff_ms. */
void ews_error_set(struct be_result *r, const char *code, const char *text,
		   uint32_t backoff_ms, enum ews_ctx ctx);
/* BackOffMilliseconds as text (a MessageXml t:Value) -> ms; 0 if absent or
 * malformed, capped at a day. */
uint32_t ews_backoff_parse(const char *text);
/* Whether a response message with this ResponseClass (NULL if absent)
 * and ResponseCode (NULL if absent) reports success. */
bool ews_response_ok(const char *cls, const char *code);
/* The result of one response message element (ResponseClass,
 * ResponseCode, MessageText, MessageXml): BE_OK or the graded error. */
enum be_status ews_message_result(const xmlNode *msg, enum ews_ctx ctx,
				  struct be_result *r);
/* The result of a soap:Fault element. */
enum be_status ews_fault_result(const xmlNode *fault, enum ews_ctx ctx,
				struct be_result *r);
/* Copy s for an error message: at most 40 bytes, control characters
 * replaced; out must hold 48 bytes. */
const char *ews_quote(const char *s, char out[48]);

/* --- ews_parse.c: answers held in memory.  Each returns BE_OK with the
 * result filled, or a grade with r set (BE_PROTOCOL for anything
 * malformed; the EWS error for an error answer or SOAP fault) and nothing
 * to free.  *out is overwritten. --- */
enum be_status ews_parse_root(const char *data, size_t len, char **root_id,
			      struct be_result *r);
enum be_status ews_parse_folders(const char *data, size_t len,
				 struct be_folder_batch *out,
				 struct be_result *r);
enum be_status ews_parse_items(const char *data, size_t len,
			       struct be_item_batch *out, struct be_result *r);
/* The answers to the writes of ews_write.c, one entity each. */
enum ews_write_op {
	EWS_W_CREATE_ITEM, EWS_W_FIND_ITEM, EWS_W_UPDATE_ITEM, EWS_W_GET_ITEM,
	EWS_W_DELETE_ITEM, EWS_W_MOVE_ITEM, EWS_W_GET_FOLDER,
	EWS_W_CREATE_FOLDER, EWS_W_UPDATE_FOLDER, EWS_W_MOVE_FOLDER,
	EWS_W_DELETE_FOLDER, EWS_W_OP_N
};
/* Which id an error in the answer to op is about (the folder for
 * CreateItem and FindItem, whose only id is a folder's). */
enum ews_ctx ews_write_ctx(enum ews_write_op op);
/* The answer to a write of op: BE_OK with out->id / out->change_key the
 * ItemId (FolderId for folder ops) of the entity in the answer, each NULL
 * when the answer has none (a sent message, a delete, a server that
 * returns no new id); or the response message's grade with out empty.
 * EWS_W_FIND_ITEM: the first item found; none is BE_ITEM_GONE.
 * EWS_W_CREATE_FOLDER needs the id, EWS_W_GET_ITEM and EWS_W_GET_FOLDER
 * the id and the ChangeKey: without them the answer is BE_PROTOCOL. */
enum be_status ews_parse_write(const char *data, size_t len,
			       enum ews_write_op op, struct be_new *out,
			       struct be_result *r);
/* The answer to ews_req_special_folders: ids[k] owned, NULL for a folder
 * the server reports as missing or refuses; a throttled, transient or
 * malformed entry fails the whole call (ids all NULL). */
enum be_status ews_parse_special(const char *data, size_t len,
				 char *ids[BE_SPECIAL_N], struct be_result *r);
/* A non-2xx body: BE_OK if it holds no SOAP fault, else the fault's
 * grade. */
enum be_status ews_parse_fault_body(const char *data, size_t len,
				    enum ews_ctx ctx, struct be_result *r);

/* --- ews_mime.c: GetItem answers, streamed.  Feed the body as it
 * arrives; MIME bytes go to sink(arg, index, ...) as they are decoded and
 * done(arg, index, ...) is called once per item as its response message
 * ends.  Memory stays flat whatever the size of a message. --- */
struct ews_mime_stream;
struct ews_mime_stream *ews_mime_stream_new(size_t n, be_sink_fn sink,
					    be_done_fn done, void *arg);
/* 0, or -1 when the stream cannot go on (malformed, sink aborted). */
int ews_mime_stream_feed(struct ews_mime_stream *ms, const void *data,
			 size_t len);
/* End of the body: BE_OK, or why the call failed (BE_PROTOCOL, BE_REFUSED
 * when the sink aborted, a SOAP fault's grade).  Items the answer did not
 * cover get done(BE_PROTOCOL).  If items were throttled, r->retry_after_ms
 * is the largest BackOffMilliseconds even with BE_OK. */
enum be_status ews_mime_stream_finish(struct ews_mime_stream *ms,
				      struct be_result *r);
/* After a failure of the whole call: done(st, msg) for every item not yet
 * reported, so each item is reported exactly once. */
void ews_mime_stream_fail_rest(struct ews_mime_stream *ms, enum be_status st,
			       const char *msg);
void ews_mime_stream_free(struct ews_mime_stream *ms);

/* --- ews.c: what ews_write.c uses of the session --- */
/* The RequestServerVersion the server accepted at sign-in. */
const char *ews_session_version(const struct be_session *s);
/* Requests larger than this (a message upload) have no overall time
 * limit, only the stall limit: a large body takes as long as it takes. */
#define EWS_BIG_REQUEST ((size_t)1 << 20)
/* POST req and parse the answer (held in memory, at most EWS_ANSWER_MAX)
 * with ews_parse_write(op); frees req. */
enum be_status ews_call_write(struct be_session *s, const char *what,
			      struct buf *req, enum ews_write_op op,
			      struct be_new *out, struct be_result *r);
/* POST req and parse the answer with ews_parse_special(); frees req. */
enum be_status ews_call_special(struct be_session *s, struct buf *req,
				char *ids[BE_SPECIAL_N], struct be_result *r);
/* An id handed in by the core: non-empty, at most EWS_ID_MAX; otherwise
 * false with r set (BE_REFUSED "invalid <what> id"). */
bool ews_id_ok(const char *id, const char *what, struct be_result *r);

/* --- ews_write.c: the write operations of the ops table (backend.h) --- */
/* Whether s is UTF-8 made only of characters XML 1.0 can carry (no C0
 * controls but tab, LF, CR; no U+FFFE, U+FFFF; no surrogates or overlong
 * forms): what names and categories must be. */
bool ews_text_ok(const char *s);
enum be_status ews_special_folders(struct be_session *s,
				   char *ids[BE_SPECIAL_N],
				   struct be_result *r);
enum be_status ews_create_item(struct be_session *s, const char *folder_id,
			       const void *mime, size_t len,
			       enum be_disposition how, int64_t date,
			       const char *token, struct be_new *out,
			       struct be_result *r);
enum be_status ews_find_token(struct be_session *s, const char *folder_id,
			      const char *token, struct be_new *out,
			      struct be_result *r);
enum be_status ews_replace_mime(struct be_session *s, const char *id,
				const char *change_key, const void *mime,
				size_t len, struct be_new *out,
				struct be_result *r);
enum be_status ews_update_props(struct be_session *s, const char *id,
				const char *change_key,
				const struct be_props *p, struct be_new *out,
				struct be_result *r);
enum be_status ews_get_change_key(struct be_session *s, const char *id,
				  char **change_key, struct be_result *r);
enum be_status ews_delete_item(struct be_session *s, const char *id,
			       enum be_delete how, struct be_result *r);
enum be_status ews_move_item(struct be_session *s, const char *id,
			     const char *to_folder_id, struct be_new *out,
			     struct be_result *r);
enum be_status ews_create_folder(struct be_session *s, const char *parent_id,
				 const char *name, struct be_new *out,
				 struct be_result *r);
enum be_status ews_rename_folder(struct be_session *s, const char *id,
				 const char *name, struct be_new *out,
				 struct be_result *r);
enum be_status ews_move_folder(struct be_session *s, const char *id,
			       const char *to_parent_id, struct be_new *out,
			       struct be_result *r);
enum be_status ews_delete_folder(struct be_session *s, const char *id,
				 bool hard, struct be_result *r);

#endif
