/*
 * journal_internal.h - what journal.c (the file system's side of changes)
 * and journal_store.c (rows, content files, recovery, the applier's
 * queries) share.  Not for use outside cache/.  "lock held" means the
 * cache's (recursive) lock.
 */
#ifndef EXCHANGEFS_JOURNAL_INTERNAL_H
#define EXCHANGEFS_JOURNAL_INTERNAL_H

#include "db_internal.h"

/* The columns jr_read_row() reads, in order. */
#define JROW_COLS "seq, op, ino, folder, arg, name, content, token, state, " \
	"attempts, next_try, created, error"

bool jr_is_create(enum j_op op);
/* What a row changes, as node.pend bits. */
unsigned jr_row_bits(enum j_op op, int64_t arg);
/* Take the lock and begin a transaction committed with synchronous=FULL;
 * jr_durable_end() commits (rc == 0) or rolls back, and unlocks. */
int jr_durable_begin(struct cache *c);
int jr_durable_end(struct cache *c, int rc);
/* A new content file name for ino, relative to the cache dir.  Owned. */
char *jr_new_content_name(uint64_t ino);
/* Unlink a content file nothing refers to any more (lock held). */
void jr_content_gc(struct cache *c, const char *rel);
/* name, or name (2), (3)... whichever is free under parent.  Owned. */
char *jr_free_user_name(struct cache *c, uint64_t parent, const char *name);
void jr_read_row(sqlite3_stmt *st, struct jrow *r);
/* Remove a node and everything queued for it (lock held, in a txn). */
int jr_forget_node(struct cache *c, const struct node *n);
/* When the server deleted folder ino, before the cache removes it: the
 * messages below it that were moved there here and whose move was not
 * sent go back where they are on the server; those whose content was
 * written here and not sent yet (a new message, a draft's edit) move to
 * .exchangefs/rejected with the reason, their rows dropped - what the
 * user wrote or sees on the server is never deleted with a folder.  The
 * messages moved back are added to ch (lock held, in a txn). */
int jr_keep_unsent(struct cache *c, uint64_t folder,
		   struct cache_changes *ch);
/* A random dedup token for a create.  Owned. */
char *jr_new_token(void);

#endif
