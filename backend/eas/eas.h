/*
 * eas.h - what the files of the ActiveSync (EAS) backend share: caps, the
 * item id scheme, status grading, and the request builders and answer
 * parsers that unit tests and the fuzzer call directly (no HTTP).
 *
 *   wbxml.c      the WBXML codec (MS-ASWBXML code pages)
 *   eas_proto.c  requests and answers: OPTIONS headers, Provision,
 *                FolderSync, Sync, Ping, MoveItems, Folder*, SendMail,
 *                status codes (pure, fuzzed)
 *   eas_fetch.c  ItemOperations Fetch: request and streamed answer
 *   eas_draft.c  drafts from MIME (Sync Add/Change), a message's Message-ID
 *   eas.c        the ops table and the session (HTTP calls, Provision
 *                rounds, the persistent DeviceId)
 *   eas_write.c  the write operations and Ping (watch)
 *   eas_resolve.c ResolveRecipients and GAL Search (the address book)
 *
 * How EAS fits backend.h: folder id = FolderSync ServerId, root "0";
 * item id = "<CollectionId>\t<ServerId>" (an EAS ServerId is only unique
 * within its collection, and ItemOperations, Sync Change and MoveItems
 * need both); folder state = FolderSync SyncKey; item state = the
 * collection's Sync SyncKey; change_key unused.
 */
#ifndef EXCHANGEFS_EAS_H
#define EXCHANGEFS_EAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/eas/wbxml.h"
#include "backend/util.h"

#define EAS_ID_MAX 1024                  /* ServerId, CollectionId */
#define EAS_KEY_MAX 1024                 /* SyncKey, PolicyKey */
#define EAS_TEXT_MAX ((size_t)16 << 20)  /* text held from one answer */
#define EAS_NODES_MAX ((size_t)1 << 20)  /* elements of one answer */
#define EAS_ANSWER_MAX ((size_t)64 << 20)
#define EAS_WINDOW_MAX 512               /* Sync WindowSize */
#define EAS_CONTENT_TYPE "application/vnd.ms-sync.wbxml"
#define EAS_SEP '\t'                     /* in item ids */

/* Protocol versions this client speaks, best first. */
extern const char *const eas_versions[];
/* The best version of ours in a server's MS-ASProtocolVersions list
 * ("2.5,12.0,12.1,14.0,14.1"), or NULL. */
const char *eas_pick_version(const char *offered);
/* Whether a version string (ours) is >= min ("14.1" >= "14.0"). */
bool eas_version_at_least(const char *v, const char *min);

/* Item ids: compose (owned) and split (pointers into a copy, owned by
 * *buf; false if id is not ours). */
char *eas_item_id(const char *collection, const char *server_id);
bool eas_item_split(const char *id, char **buf, const char **collection,
		    const char **server_id);

/* Grade an EAS status code of command cmd (e.g. "Sync") into r; 1 = OK.
 * Status 142-144 give BE_AUTH with code "provision" (the caller
 * provisions and retries once). */
enum be_status eas_status(const char *cmd, const char *status,
			  struct be_result *r);
bool eas_needs_provision(const struct be_result *r);

/* Parse an answer into a tree; BE_PROTOCOL with one line on failure. */
struct wbxml_node *eas_parse(const void *p, size_t n, const char *cmd,
			     struct be_result *r);

/* ---- Provision ---- */
/* ack_key NULL: the first round (ask for the policy); else acknowledge
 * policy ack_key (status 1 = applied). */
void eas_req_provision(struct buf *b, const char *ack_key);
/* Answer: *key (owned) is the policy key; NULL with BE_OK when the server
 * has no policy for this device (policy Status 2). */
enum be_status eas_parse_provision(const void *p, size_t n, char **key,
				   struct be_result *r);

/* ---- FolderSync ---- */
void eas_req_folder_sync(struct buf *b, const char *key);
/* EAS folder Type -> class the core knows (IPF.Note for mail). */
const char *eas_folder_class(int type);
enum be_status eas_parse_folder_sync(const void *p, size_t n,
				     struct be_folder_batch *out,
				     struct be_result *r);
/* Well-known folder roles from a full FolderSync answer (ids owned). */
enum be_status eas_parse_special(const void *p, size_t n,
				 char *ids[BE_SPECIAL_N], struct be_result *r);

/* Shared by eas_proto.c and eas_draft.c: a text field short enough to be
 * an id or key (NULL otherwise); a Sync with one Collection whose Commands
 * the caller fills (open) and closes; the Message-ID of a message's first
 * bytes (owned; NULL when the header is missing or cut off). */
const char *eas_short_text(const struct wbxml_node *n, unsigned tag);
void eas_sync_open(struct wbxml_enc *e, struct buf *b, const char *collection,
		   const char *key);
void eas_sync_close(struct wbxml_enc *e);
char *eas_mime_message_id(const char *p, size_t len);

/* ---- Sync ---- */
/* key "0" = start (no options, no GetChanges). */
void eas_req_sync(struct buf *b, const char *collection, const char *key,
		  unsigned window);
/* One Sync reading n collections, each with its key and window. */
void eas_req_sync_many(struct buf *b, const char *const *collections,
		       const char *const *keys, size_t n, unsigned window);
/* Empty answer (HTTP 200 without a body): no changes, state unchanged.
 * BE_SYNC_INVALID on status 3. */
enum be_status eas_parse_sync(const void *p, size_t n, const char *collection,
			      struct be_item_batch *out, struct be_result *r);
/* The answer to eas_req_sync_many(): v[k].state is the key that was sent
 * for v[k].folder_id.  BE_OK when the answer as a whole is usable; then
 * each folder's own outcome is in v[k].r and its changes in v[k].out (a
 * folder the answer leaves out, or an empty answer: no changes, state =
 * the key sent).  Otherwise every v[k].out is empty. */
enum be_status eas_parse_sync_many(const void *p, size_t n,
				   struct be_sync_one *v, size_t nv,
				   struct be_result *r);
/* Unix seconds of an EAS date ("2026-11-22T05:00:00.000Z"), 0 if bad. */
int64_t eas_parse_date(const char *s);

/* ---- ItemOperations Fetch (streamed MIME) ---- */
struct eas_fetch;
void eas_req_fetch(struct buf *b, const char *collection,
		   const char *server_id);
/* One request for n items (a Fetch element each, in this order). */
void eas_req_fetch_n(struct buf *b, const char *const *collections,
		     const char *const *server_ids, size_t n);
#define EAS_FETCH_BATCH 16               /* items per ItemOperations */
/* ids: the core's item ids; sink/done as in be fetch_mime. */
struct eas_fetch *eas_fetch_new(const char *const *ids, size_t n,
				be_sink_fn sink, be_done_fn done, void *arg);
int eas_fetch_feed(struct eas_fetch *f, const void *p, size_t n);
/* The answer is complete: items not reported get done() with the
 * grade in r (BE_PROTOCOL if the answer was fine but did not mention
 * them). */
enum be_status eas_fetch_finish(struct eas_fetch *f, struct be_result *r);
/* Items not reported yet get done(st, msg). */
void eas_fetch_fail_rest(struct eas_fetch *f, enum be_status st,
			 const char *msg);
/* The answer said only "provision first" (status 142-144), nothing
 * reported yet. */
bool eas_fetch_wants_provision(const struct eas_fetch *f);
/* Whether item i has had its done() yet. */
bool eas_fetch_reported(const struct eas_fetch *f, size_t i);
/* A complete answer whose top-level Status failed the whole request
 * (graded in r; not "provision first", not throttling) while some items
 * were not reported: asked one by one, the others may still come. */
bool eas_fetch_failed_whole(const struct eas_fetch *f, struct be_result *r);
void eas_fetch_free(struct eas_fetch *f);

/* ---- Writes ---- */
/* Sync Change of read / flag (BE_PROP_CATEGORIES unsupported: ignored). */
void eas_req_change(struct buf *b, const char *collection, const char *key,
		    const char *server_id, const struct be_props *p);
/* Sync Delete; deletes_as_moves: to Deleted Items. */
void eas_req_delete(struct buf *b, const char *collection, const char *key,
		    const char *server_id, bool deletes_as_moves);
/* Status of the one Change/Delete/Add in a Sync answer (its Responses
 * entry if any, else the collection's), and the collection's new key. */
enum be_status eas_parse_sync_write(const void *p, size_t n, char **new_key,
				    struct be_result *r);
void eas_req_move(struct buf *b, const char *src_collection,
		  const char *server_id, const char *dst_collection);
/* *dst_id: the new ServerId (owned). */
enum be_status eas_parse_move(const void *p, size_t n, char **dst_id,
			      struct be_result *r);
/* FolderCreate (name, parent), FolderUpdate (id, name, parent),
 * FolderDelete (id). */
void eas_req_folder_create(struct buf *b, const char *key,
			   const char *parent, const char *name);
void eas_req_folder_update(struct buf *b, const char *key, const char *id,
			   const char *parent, const char *name);
void eas_req_folder_delete(struct buf *b, const char *key, const char *id);
/* Answer of one of the three (cmd "FolderCreate" ...): *new_key the
 * hierarchy SyncKey, *id the new folder's ServerId (FolderCreate). */
enum be_status eas_parse_folder_op(const void *p, size_t n, const char *cmd,
				   char **new_key, char **id,
				   struct be_result *r);
/* Drafts (16.0+): the fields Sync Add takes, from RFC 5322 bytes (a
 * single text/plain or text/html part; quoted-printable and base64 are
 * decoded); -1 with r set (BE_UNSUPPORTED) for anything else. */
struct eas_draft {
	char *to, *cc, *bcc, *subject, *body;
	bool html;
};
int eas_draft_from_mime(const void *mime, size_t len, struct eas_draft *d,
			struct be_result *r);
void eas_draft_free(struct eas_draft *d);
void eas_req_add_draft(struct buf *b, const char *collection, const char *key,
		       const char *client_id, const struct eas_draft *d);
/* Sync Change of a stored draft (16.0+): all its fields again. */
void eas_req_change_draft(struct buf *b, const char *collection,
			  const char *key, const char *server_id,
			  const struct eas_draft *d);
/* The Add's new ServerId (owned) and the collection's new key. */
enum be_status eas_parse_sync_add(const void *p, size_t n, char **new_key,
				  char **server_id, struct be_result *r);
/* SendMail (14.0+: WBXML; the MIME as opaque data). */
void eas_req_send_mail(struct buf *b, const char *client_id,
		       const void *mime, size_t len, bool save_in_sent);
enum be_status eas_parse_send_mail(const void *p, size_t n,
				   struct be_result *r);

/* ---- Ping ---- */
void eas_req_ping(struct buf *b, unsigned heartbeat_s,
		  const char *const *folders, size_t n);
/* Status 1: nothing changed; 2: *changed (owned array of n_changed
 * ids); 5: *heartbeat_s is the server's bound (retry with it). */
struct eas_ping {
	int status;
	char **changed;
	size_t n_changed;
	unsigned heartbeat_s;   /* 0 unless the server said */
	unsigned max_folders;   /* 0 unless the server said */
};
enum be_status eas_parse_ping(const void *p, size_t n, struct eas_ping *out,
			      struct be_result *r);
void eas_ping_free(struct eas_ping *p);

/* ---- The session, for eas_write.c ---- */
/* POST command cmd with body req (NULL for none); the answer (held in
 * memory) in *tree, NULL for an empty body.  Handles Provision (HTTP 449
 * and status 142-144 retried once after provisioning) and grades HTTP. */
enum be_status eas_call(struct be_session *s, const char *cmd,
			const struct buf *req, bool once,
			struct buf *answer, struct be_result *r);
/* The same for a long call (Ping): up to timeout_s, ended early when
 * cancelled(arg) says so (then BE_OK with an empty answer). */
enum be_status eas_call_long(struct be_session *s, const char *cmd,
			     const struct buf *req, long timeout_s,
			     bool (*cancelled)(void *arg), void *arg,
			     struct buf *answer, struct be_result *r);
const char *eas_session_version(const struct be_session *s);
const char *eas_session_device(const struct be_session *s);
const char *eas_session_watch_sig(const struct be_session *s);
void eas_session_set_watch_sig(struct be_session *s, const char *sig);
unsigned eas_session_heartbeat(const struct be_session *s);
void eas_session_set_heartbeat(struct be_session *s, unsigned hb);
unsigned eas_session_max_folders(const struct be_session *s);
void eas_session_set_max_folders(struct be_session *s, unsigned n);

/* The Outbox a server without one (SOGo) gets, so that sending works as
 * on Exchange: a folder of the tree that never holds anything. */
#define EAS_VIRTUAL_OUTBOX "exchangefs-outbox"

/* ---- eas_write.c ---- */
/* The account all sessions of a mount share (struct be_account, defined
 * in eas_write.c): the device's key chains, folder list and Sync lock.
 * NULL below means the process's default account. */
struct be_account *eas_account_new(const struct be_config *cfg);
void eas_account_free(struct be_account *a);
struct be_account *eas_session_account(const struct be_session *s);
/* Every Sync request of the account runs under this lock, so the reads
 * and writes of one device's key chains never cross. */
void eas_sync_lock(struct be_account *a);
void eas_sync_unlock(struct be_account *a);
char *eas_key_latest(struct be_account *a, const char *device,
		     const char *collection);
void eas_key_note(struct be_account *a, const char *device,
		  const char *collection, const char *old_key,
		  const char *new_key, bool by_write);
char *eas_key_for_read(struct be_account *a, const char *device,
		       const char *collection, const char *state);
/* Forget the default account's chains and folders (a restart, in tests). */
void eas_keys_free_all(void);
/* What the backend and server can do (backend.h, struct be_caps): no
 * message into a folder (any version), drafts from 16.0, sending from
 * 14.0, no search by token (ClientId instead), an Outbox only if the
 * folder list has one; Ping, ResolveRecipients, Sync of many (eas_write.c). */
void eas_caps(struct be_session *s, struct be_caps *out);
/* Whether the server has an Outbox of its own, as the last full folder
 * list said (true while no list is known). */
bool eas_server_has_outbox(const struct be_session *s);
enum be_status eas_replace_mime(struct be_session *s, const char *id,
				const char *change_key, const void *mime,
				size_t len, struct be_new *out,
				struct be_result *r);
enum be_status eas_update_props(struct be_session *s, const char *id,
				const char *change_key,
				const struct be_props *p, struct be_new *out,
				struct be_result *r);
enum be_status eas_delete_item(struct be_session *s, const char *id,
			       enum be_delete how, struct be_result *r);
enum be_status eas_move_item(struct be_session *s, const char *id,
			     const char *to_folder_id, struct be_new *out,
			     struct be_result *r);
enum be_status eas_create_item(struct be_session *s, const char *folder_id,
			       const void *mime, size_t len,
			       enum be_disposition how, int64_t date,
			       const char *token, struct be_new *out,
			       struct be_result *r);

enum be_status eas_watch(struct be_session *s, const struct be_watch *w,
			 enum be_watch_mode *mode, struct be_result *r);
/* Folders the device knows (id -> parent, name), from hierarchy answers. */
void eas_folders_note(struct be_session *s, const struct be_folder_batch *b);
void eas_folders_free_all(void);
enum be_status eas_create_folder(struct be_session *s, const char *parent_id,
				 const char *name, struct be_new *out,
				 struct be_result *r);
enum be_status eas_rename_folder(struct be_session *s, const char *id,
				 const char *name, struct be_new *out,
				 struct be_result *r);
enum be_status eas_move_folder(struct be_session *s, const char *id,
			       const char *to_parent_id, struct be_new *out,
			       struct be_result *r);
enum be_status eas_delete_folder(struct be_session *s, const char *id,
				 bool hard, struct be_result *r);
/* ---- eas_resolve.c: ResolveRecipients ---- */
/* avail_start > 0: ask for Availability from then for half an hour. */
void eas_req_resolve(struct buf *b, const char *query, unsigned max,
		     int64_t avail_start);
/* At most max (<= BE_PEOPLE_MAX) people of the answer's Response;
 * BE_OK with none for status 4 (no one) or no Response at all. */
enum be_status eas_parse_resolve(const void *p, size_t n, unsigned max,
				 struct be_person **out, size_t *nout,
				 struct be_result *r);
/* Search of the GAL store (the directory): up to max people whose name or
 * address matches query. */
void eas_req_gal_search(struct buf *b, const char *query, unsigned max);
enum be_status eas_parse_gal_search(const void *p, size_t n, unsigned max,
				    struct be_person **out, size_t *nout,
				    struct be_result *r);
enum be_status eas_resolve_names(struct be_session *s, const char *query,
				 unsigned max, struct be_person **out,
				 size_t *n, struct be_result *r);
/* Small files in the cache directory (eas.c); read_all: owned, NULL if
 * none. */
char *eas_state_read_all(const struct be_session *s, const char *name);
void eas_state_write(const struct be_session *s, const char *name,
		     const char *text);

#endif
