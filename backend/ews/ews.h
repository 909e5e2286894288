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
 *   ews_events.c   notification requests, the GetStreamingEvents stream
 *                  split into envelopes, events -> batches (pure, fuzzed)
 *   ews_notify.c   the watch operation: streaming or pull subscription
 *   ews_resolve.c  ResolveNames (the address book)
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
/* The envelope around an operation, for request builders in other files:
 * ews_req_open() writes everything up to <soap:Body>, ews_req_close() the
 * rest. */
void ews_req_open(struct buf *b, const char *version);
void ews_req_close(struct buf *b);

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
/* Parse an answer of at most max bytes into *doc (the caller frees it,
 * even on failure) and return its soap:Body, or NULL with r set: a SOAP
 * fault graded in context ctx, or BE_PROTOCOL. */
xmlNode *ews_open_body(const char *data, size_t len, size_t max, xmlDoc **doc,
		       enum ews_ctx ctx, struct be_result *r);
/* m:ResponseMessages inside the operation's response element, or NULL. */
xmlNode *ews_response_messages(const xmlNode *body);
/* Parse state of the answer parsers: the first failure wins (BE_PROTOCOL
 * with the formatted message in *r). */
struct pctx {
	struct be_result *r;
	bool failed;
};
void ews_fail(struct pctx *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
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

/* --- ews_events.c and ews_notify.c: notifications (docs/ews-subset.md,
 * "Client: notifications").  The request builders, the stream splitter and
 * the events parser (ews_events.c) are pure functions over bytes (unit
 * tests and the fuzzer call them); ews_watch() (ews_notify.c) is the watch
 * operation of the ops table. --- */
#define EWS_VERSION_STREAMING "Exchange2010_SP1" /* streaming came with it */
#define EWS_EVENTS_MAX ((size_t)4 << 20)   /* one envelope of the stream,
					      one GetEvents answer */
#define EWS_EVENTS_FOLDERS_MAX 1024  /* distinct folders in one batch; more
					is reported as lost (sync all) */
#define EWS_EVENTS_MOVED_MAX 1024    /* move hints kept per batch */
#define EWS_PULL_PERIOD_MS 2000      /* default: GetEvents every 2 s */
#define EWS_PULL_TIMEOUT_MIN 10      /* a pull subscription not asked for
					this many minutes expires */
#define EWS_STREAM_STALL_S 300       /* a stream with no byte for this long
					is dropped (keep-alives come about
					every minute) */

/* Subscribe to NewMail, Created, Deleted, Modified, Moved and Copied
 * events in n folders: StreamingSubscriptionRequest, or
 * PullSubscriptionRequest with a Timeout of pull_timeout_min minutes. */
void ews_req_subscribe(struct buf *b, const char *version,
		       const char *const *folder_ids, size_t n, bool streaming,
		       unsigned pull_timeout_min);
/* minutes is clamped to 1..30 (ConnectionTimeout's range). */
void ews_req_get_streaming_events(struct buf *b, const char *version,
				  const char *sub_id, unsigned minutes);
void ews_req_get_events(struct buf *b, const char *version,
			const char *sub_id, const char *watermark);
void ews_req_unsubscribe(struct buf *b, const char *version,
			 const char *sub_id);

/* The answer to Subscribe: BE_OK with *sub_id (owned) and *watermark
 * (owned; NULL when the answer has none, as for streaming), or the grade
 * of the error (nothing to free). */
enum be_status ews_parse_subscribe(const char *data, size_t len,
				   char **sub_id, char **watermark,
				   struct be_result *r);

/* The events of one envelope (a GetStreamingEvents envelope or a
 * GetEvents answer), collapsed.  All owned; ews_events_free(). */
struct ews_moved {
	char *old_id, *old_folder_id, *new_id, *new_folder_id;
};
enum ews_conn { EWS_CONN_NONE, EWS_CONN_OK, EWS_CONN_CLOSED };
struct ews_events {
	char **folders;        /* ParentFolderId / OldParentFolderId of item
				  events, each once, in order of appearance */
	size_t n_folders;
	bool hierarchy;        /* an event about a folder */
	bool lost;             /* more folders than EWS_EVENTS_FOLDERS_MAX:
				  sync everything */
	struct ews_moved *moved; /* item MovedEvents (up to
				    EWS_EVENTS_MOVED_MAX) */
	size_t n_moved;
	size_t n_events;       /* events of any kind, StatusEvent included */
	enum ews_conn conn;    /* ConnectionStatus (streaming) */
	char *watermark;       /* the last event's Watermark; NULL if none */
	bool more;             /* MoreEvents (pull): ask again at once */
};
/* Parse one envelope.  BE_OK with *out filled; or BE_PROTOCOL (malformed:
 * an item event without ParentFolderId, an event without an id, an id
 * over EWS_ID_MAX, ...), the grade of an error response message or SOAP
 * fault (the subscription codes grade BE_SYNC_INVALID: subscribe again),
 * with *out empty.  ErrorSubscriptionIds naming any subscription is
 * BE_SYNC_INVALID too. */
enum be_status ews_parse_events(const char *data, size_t len,
				struct ews_events *out, struct be_result *r);
void ews_events_free(struct ews_events *e);
/* Fold src into dst (folders each once, moves appended up to the cap,
 * flags or-ed); src is left as it was. */
void ews_events_merge(struct ews_events *dst, const struct ews_events *src);
/* Whether a batch carries anything for the core. */
bool ews_events_any(const struct ews_events *e);

/* Splits a GetStreamingEvents body - SOAP envelopes one after another,
 * each optionally preceded by an XML declaration, white space or
 * comments - into envelopes as bytes arrive, whatever the chunk
 * boundaries.  Nothing is held but the current envelope, at most cap
 * bytes. */
struct ews_stream;
typedef int (*ews_envelope_fn)(void *arg, const char *data, size_t len);
struct ews_stream *ews_stream_new(size_t cap);
/* Feed bytes; env() gets each complete envelope (from its root element's
 * '<' to its end) as soon as its last byte arrives.  0, or -1 when the
 * stream is malformed (text between envelopes, a DOCTYPE, an end tag
 * outside an envelope), an envelope or a construct between envelopes
 * exceeds cap, or env() returned -1; after -1 the stream stays failed. */
int ews_stream_feed(struct ews_stream *es, const void *data, size_t len,
		    ews_envelope_fn env, void *arg);
/* Whether part of an envelope is held (the stream stopped inside one). */
bool ews_stream_partial(const struct ews_stream *es);
/* Why feed failed ("" if it did not, or env() stopped it). */
const char *ews_stream_error(const struct ews_stream *es);
void ews_stream_free(struct ews_stream *es);

/* The watch operation (backend.h): the subscription is kept in the
 * session (ews_session_watch) and ended by ews_watch_end() at close. */
struct ews_watch;
enum be_status ews_watch(struct be_session *s, const struct be_watch *w,
			 enum be_watch_mode *mode, struct be_result *r);
/* Unsubscribe (best effort, a few seconds at most) and free. */
void ews_watch_end(struct be_session *s, struct ews_watch *sw);
/* The pull period (GetEvents every ms milliseconds; 0 = the default,
 * EWS_PULL_PERIOD_MS). */
void ews_set_pull_period(struct be_session *s, unsigned ms);

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

/* POST req and hand back the answer (held in memory) in *resp, which
 * the caller frees in any case: BE_OK for a 2xx XML answer. */
struct http_response;
enum be_status ews_call_answer(struct be_session *s, const char *what,
			       const struct buf *req,
			       struct http_response *resp,
			       struct be_result *r);

/* --- ews_resolve.c: ResolveNames (the address book) --- */
void ews_req_resolve(struct buf *b, const char *version, const char *query);
/* At most max (<= BE_PEOPLE_MAX) people of the answer; BE_OK with none
 * for ErrorNameResolutionNoResults. */
enum be_status ews_parse_resolve(const char *data, size_t len, unsigned max,
				 struct be_person **out, size_t *nout,
				 struct be_result *r);
enum be_status ews_resolve_names(struct be_session *s, const char *query,
				 unsigned max, struct be_person **out,
				 size_t *n, struct be_result *r);

/* --- ews.c: what ews_notify.c uses of the session --- */
struct http_session;
struct http_response;
struct http_session *ews_session_http(struct be_session *s);
const char *ews_session_root(const struct be_session *s);
/* connect + request timeout of ordinary calls, seconds */
long ews_session_call_timeout(const struct be_session *s);
unsigned ews_session_pull_period(const struct be_session *s);
/* The session's subscription (NULL = none); set it with the setter. */
struct ews_watch *ews_session_watch(const struct be_session *s);
void ews_session_set_watch(struct be_session *s, struct ews_watch *sw);
/* An answer as graded before parsing: a 2xx that is XML (or has no
 * Content-Type) is BE_OK; a 500 with a SOAP fault is the fault's grade;
 * any other status is graded by http_grade(). */
enum be_status ews_check_answer(struct be_session *s,
				const struct http_response *resp,
				enum ews_ctx ctx, struct be_result *r);

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
