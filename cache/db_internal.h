/*
 * db_internal.h - what the cache's own files (db.c, sync_apply.c,
 * bodies.c) share: the struct cache and statement helpers.  Not for use
 * outside cache/.
 */
#ifndef EXCHANGEFS_DB_INTERNAL_H
#define EXCHANGEFS_DB_INTERNAL_H

#include "cache.h"
#include "journal.h"

#include <pthread.h>
#include <time.h>
#include <sqlite3.h>

struct cache {
	sqlite3 *db;
	pthread_mutex_t lock;  /* recursive; guards db and the fields below */
	char *dir;             /* owned */
	int bodies_fd;         /* O_PATH|O_DIRECTORY fd of dir/bodies */
	int64_t body_bytes;    /* protected by lock: sum of bodies.size */
	int64_t body_limit;    /* 0 = unlimited */
	int trash_delete;      /* enum be_delete for rm inside Deleted Items */
	bool pim;              /* calendars and contacts shown (kinds.h) */
	/* prepared statements, protected by lock */
	sqlite3_stmt *st_lookup, *st_get, *st_list, *st_by_sid;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cached[128];         /* db_cached(), protected by lock */
	size_t n_cached;
	/* moves the server reported (cache_hint_move), protected by lock */
#define MOVE_HINTS 512
	struct move_hint {
		char *old_id, *new_id, *new_folder_id;
		time_t at;
	} hints[MOVE_HINTS];
	size_t next_hint;
	/* messages held while the other half of a move may come
	 * (sync_moves.c), protected by lock */
#define MOVE_HELD_MAX 512
	struct held_item {
		uint64_t ino;
		uint64_t parent;  /* leaving: where it was; arriving: its folder */
		char *name;       /* leaving: its name there (owned) */
		int64_t until_ms; /* CLOCK_MONOTONIC */
		bool arriving;
	} held[MOVE_HELD_MAX];
	size_t n_held;
};
/* A free name under parent: base name, then (2), (3), ... (sync_apply.c) */
char *cache_free_name(struct cache *c, uint64_t parent, enum node_kind kind,
		      const char *title, int64_t t);
void cache_moves_free(struct cache *c);
void cache_hints_free(struct cache *c);

/* The columns every node query selects, in the order node_from_row reads. */
#define NODE_COLS \
	"ino, parent, kind, name, server_id, change_key, server_name, " \
	"folder_class, visible, synced, total, unread, subject, sender, " \
	"item_class, message_id, received, sent, size, body_size, is_read, " \
	"has_attach, mtime, flag, categories, is_draft, content, pend, local, " \
	"error"

void node_from_row(sqlite3_stmt *st, struct node *n);
int db_exec(struct cache *c, const char *sql);
sqlite3_stmt *db_prepare(struct cache *c, const char *sql);
/* A prepared statement kept for the life of the cache, for hot paths: sql
 * must be a string literal (its address is the key).  Use it with the lock
 * held and finish it with db_run() or sqlite3_reset(). */
sqlite3_stmt *db_cached(struct cache *c, const char *sql);
/* Step a cached statement once and reset it. 0, -EEXIST or -EIO. */
int db_run(struct cache *c, sqlite3_stmt *st);
/* Run a statement that returns nothing; finalizes it. 0 or -EIO. */
int db_step_done(struct cache *c, sqlite3_stmt *st);
int db_begin(struct cache *c);
int db_commit(struct cache *c);
void db_rollback(struct cache *c);
void db_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Remove a body's file and row (lock held, inside or outside a txn). */
void bodies_forget(struct cache *c, uint64_t ino);
int bodies_init(struct cache *c);
/* The node with a server id (lock held or not: the lock is recursive). */
int cache_by_server_id(struct cache *c, enum node_kind kind, const char *sid,
		       struct node *out);
/* Whether parent has a child of that name (the control entry's name is
 * reserved at the root). */
bool cache_name_taken(struct cache *c, uint64_t parent, const char *name);
/* Adjust a folder's message count (lock held, inside a transaction). */
int count_items(struct cache *c, uint64_t folder, int64_t delta);


#endif
