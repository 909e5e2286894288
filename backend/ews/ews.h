/*
 * ews.h - what the files of the EWS backend share: namespaces, caps, and
 * the request builders, parsers and error grading that unit tests and
 * fuzzers call directly (no HTTP involved).
 *
 *   ews.c          the ops table and the session (HTTP calls)
 *   ews_request.c  SOAP requests
 *   ews_parse.c    sync and GetFolder answers -> batches (tree parser)
 *   ews_mime.c     GetItem answers streamed -> MIME bytes (push parser)
 *   ews_errors.c   the one table of ResponseCodes and SOAP faults
 */
#ifndef EXCHANGEFS_EWS_H
#define EXCHANGEFS_EWS_H

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

#endif
