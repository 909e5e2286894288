/*
 * journal.h - the durable queue of changes made through the mount, and the
 * applier thread that sends them to the server.
 *
 * Every change a user makes (a message written, deleted, moved, flagged; a
 * folder made, renamed, removed) is ONE SQLite transaction that changes the
 * local cache and appends a journal row, committed with synchronous=FULL
 * before the file system replies.  The applier (cache/applier.c) sends the
 * rows in order through its own backend session, retrying transient
 * failures with back-off, and applies the server's answer (new id, change
 * key) back to the cache.  A row whose outcome is unknown (the connection
 * dropped after the request went out, or the daemon was killed) is marked
 * "unsure" before the request is sent; a create is then looked up by the
 * token stored on the item before it is tried again, so it never becomes a
 * duplicate.  A change the server refuses for good stays visible: the row is
 * kept as failed with the server's reason, the content stays in the cache.
 *
 * Content written through the mount lives in <cache>/local/: "<ino>.w" is
 * the file being written, "<ino>.<n>" a committed version that a journal
 * row and/or the node point to (node.content).
 */
#ifndef EXCHANGEFS_JOURNAL_H
#define EXCHANGEFS_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "cache/cache.h"

/* Reserved inode of .exchangefs/rejected (see fs/vfiles.c). */
#define CACHE_REJECTED_INO 4
/* Reserved inode of .Trash-<uid>/info at the root (see fs/vfiles.c): a
 * directory of local-only files (a desktop's trash bookkeeping), never
 * uploaded, gone at the next start. */
#define CACHE_TRASH_INFO_INO 7

/* Bits of node.pend: what journal rows not yet done change. */
#define JP_READ    0x1u
#define JP_FLAG    0x2u
#define JP_CATS    0x4u
#define JP_CONTENT 0x8u
#define JP_PLACE   0x10u  /* created, moved or deleted here */

enum j_op {
	J_SAVE = 1,   /* create a normal message (content) in its folder */
	J_DRAFT,      /* create a draft (content) */
	J_SEND,       /* send (content), copy to Sent Items, then drop it */
	J_REPLACE,    /* replace a draft's content */
	J_PROPS,      /* set read / flag / categories (arg = JP_ bits) */
	J_DELETE,     /* delete the item (arg = enum be_delete) */
	J_MOVE,       /* move the item to folder (arg = the folder it left) */
	J_MKDIR,      /* create the folder under its parent */
	J_RMDIR,      /* delete the folder */
	J_RENAME_DIR, /* rename the folder (name = server name) */
	J_MOVE_DIR,   /* move the folder under folder */
};

/* QUEUED rows may still be merged with later changes; SENDING is being
 * sent right now; UNSURE may have reached the server (an attempt failed
 * without an answer, or the daemon stopped while SENDING). */
enum j_state { JS_QUEUED = 0, JS_UNSURE = 1, JS_FAILED = 2, JS_SENDING = 3 };

struct jrow {
	int64_t seq;
	enum j_op op;
	uint64_t ino;
	uint64_t folder;  /* target folder (create/move/send), 0 if none */
	int64_t arg;
	char *name;       /* J_RENAME_DIR / J_MKDIR: the server name */
	char *content;    /* content file, relative to the cache dir */
	char *token;      /* creates: the dedup token */
	enum j_state state;
	int attempts;
	int64_t next_try; /* ms (CLOCK_REALTIME) */
	int64_t created;  /* s */
	char *error;
};
void jrow_clear(struct jrow *r);
const char *jop_name(enum j_op op);

/* ---- Well-known folders (filled from the backend's special_folders) --- */
void cache_set_special(struct cache *c, char *const ids[BE_SPECIAL_N]);
/* The role (enum be_special) of folder ino, or -1. */
int cache_role(struct cache *c, uint64_t ino);
/* The ino of a role's folder, or 0. */
uint64_t cache_special_ino(struct cache *c, enum be_special role);

/* How rm inside Deleted Items deletes (BE_DEL_HARD by default). */
void cache_set_trash_delete(struct cache *c, enum be_delete how);

/* ---- The file system's side: each call is one durable transaction. ----
 * They return 0 or -errno and append what the kernel must be told to ch
 * (ch may be NULL). */

/* Absolute path of the file being written for ino (owned). */
char *journal_staging_path(struct cache *c, uint64_t ino);
/* Absolute path of a content file (owned). */
char *journal_content_path(struct cache *c, const char *rel);

/* A new file under folder parent: a message to upload (an .eml name) or a
 * local-only file (temp).  Fills *out. */
int journal_new_file(struct cache *c, uint64_t parent, const char *name,
		     bool temp, struct node *out);
/* The file being written for ino (journal_staging_path) is complete: make
 * it the node's content and queue its upload (create, draft, send or
 * replace, by the node's state and folder).  date (Unix s, 0 unknown) is
 * the message's Date.  Temp files just keep it. */
int journal_commit_content(struct cache *c, uint64_t ino, int64_t date,
			   struct cache_changes *ch);
/* Content refused as a message: move the written file and the node to
 * .exchangefs/rejected, with reason as its error.  *new_name gets the name
 * there (owned). */
int journal_reject(struct cache *c, uint64_t ino, const char *reason,
		   char **new_name, struct cache_changes *ch);
/* Unlink a file: a queued upload is cancelled, a server item deleted
 * (moved to Deleted Items, or hard-deleted inside it). */
int journal_unlink(struct cache *c, uint64_t parent, const char *name);
/* rename(2) of a file or folder; flags as renameat2 (RENAME_NOREPLACE
 * is honoured, RENAME_EXCHANGE refused).  When the source is a local file
 * whose content would become a message (a temp file renamed to .eml or
 * over a draft), date is its Date (>= 0) if the caller found the content
 * to be a valid message, -1 if not (the rename then fails with EINVAL). */
#define RENAME_NOREPLACE_FLAG 1u
#define RENAME_EXCHANGE_FLAG 2u
int journal_rename(struct cache *c, uint64_t parent, const char *name,
		   uint64_t newparent, const char *newname, unsigned flags,
		   int64_t date, struct cache_changes *ch);
int journal_mkdir(struct cache *c, uint64_t parent, const char *name,
		  struct node *out);
/* A name like name free under parent ("name (2).eml", ...; owned). */
char *journal_free_name(struct cache *c, uint64_t parent, const char *name);
int journal_rmdir(struct cache *c, uint64_t parent, const char *name);
/* Set properties (p->mask) of item ino. */
int journal_set_props(struct cache *c, uint64_t ino, const struct be_props *p);

/* At start: drop local-only files, move messages that were being written
 * when the daemon stopped to rejected/, remove unreferenced content. */
int journal_recover(struct cache *c);

/* ---- The applier's side ---- */

/* The first row not done and not failed, in order; -ENOENT if none. */
int journal_first(struct cache *c, struct jrow *out);
/* Mark it SENDING (from QUEUED; an UNSURE row stays UNSURE) and read it
 * back as it is now: no change is merged into it any more. */
int journal_take(struct cache *c, struct jrow *row);
/* A transient failure: try again at next_try (ms); the row is UNSURE. */
int journal_retry_later(struct cache *c, int64_t seq, int64_t next_try,
			const char *error);
/* A permanent failure: the row stays, failed, with error; so does the
 * node (node.error). */
int journal_fail(struct cache *c, const struct jrow *r, const char *error);
/* The row is done: remove it and recompute the node's pending bits.  If
 * the row gave the node a server identity, new_id/new_ck (either may be
 * NULL) are recorded; drop removes the node (sent, deleted). */
int journal_done(struct cache *c, const struct jrow *r, const char *new_id,
		 const char *new_ck, bool drop, struct cache_changes *ch);
/* Whether rows of unknown outcome touch folder ino (the sync engine then
 * leaves it alone until they are settled). */
bool journal_folder_unsure(struct cache *c, uint64_t ino);
/* Point a draft row (J_REPLACE whose draft is gone) at a re-creation. */
int journal_recreate(struct cache *c, const struct jrow *r);

/* For status: queued count, failed count, age of the oldest (s). */
struct journal_stats {
	int64_t queued, failed, oldest_age;
};
void journal_stats(struct cache *c, struct journal_stats *st);
/* Up to max failed rows (owned), newest first. */
int journal_failures(struct cache *c, struct jrow **out, size_t *n, size_t max);
void jrows_free(struct jrow *v, size_t n);

#endif
