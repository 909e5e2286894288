/*
 * cache.h - the local SQLite mirror of a mailbox: folders and messages as
 * "nodes" with stable inode numbers and stored file names, per-folder sync
 * states, and an on-disk store of MIME bodies with LRU eviction.
 *
 * Inode numbers are the nodes table's row ids (AUTOINCREMENT, never reused),
 * so they are stable across remounts.  Ino 1 is the root (msgfolderroot);
 * rows start at CACHE_FIRST_INO; the numbers in between are reserved for
 * virtual files (fs/vfiles.c).
 *
 * Threading: a struct cache is shared by all threads; every function takes
 * the cache's lock (a recursive mutex) around its SQLite work, so calls from
 * FUSE workers and the sync thread interleave safely.  A batch applied by
 * the sync engine holds the lock for one transaction (a few ms per 512
 * items).  Body file I/O happens outside the lock.
 */
#ifndef EXCHANGEFS_CACHE_H
#define EXCHANGEFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/backend.h"

#define CACHE_ROOT_INO 1
#define CACHE_FIRST_INO 1000
#define CACHE_SCHEMA_VERSION 1

enum node_kind { NODE_FOLDER = 1, NODE_ITEM = 2 };

/* A node as the file system sees it.  Strings are owned by the struct and
 * freed with node_clear(). */
struct node {
	uint64_t ino;
	uint64_t parent;
	enum node_kind kind;
	char *name;           /* file name on the mount */
	char *server_id;      /* opaque backend id (NULL for the root) */
	char *change_key;
	/* folders */
	char *server_name;    /* display name exactly as the server has it */
	char *folder_class;
	bool visible;         /* a mail folder (shown) */
	bool synced;          /* first complete item sync done */
	int64_t total, unread;
	/* items */
	char *subject, *sender, *item_class, *message_id;
	int64_t received, sent; /* Unix seconds */
	int64_t size;         /* server's size; -1 unknown */
	int64_t body_size;    /* exact MIME size if cached, else -1 */
	int is_read, has_attachments;  /* -1 unknown */
	int64_t mtime;        /* seconds; for folders the last change */
	int flag;             /* enum be_flag, -1 unknown */
	char *categories;     /* comma-separated, NULL unknown */
	int is_draft;         /* -1 unknown */
	/* the local side (write-back, cache/journal.c) */
	char *content;        /* content file written here, relative to the
				 cache dir, or NULL (server's body) */
	unsigned pend;        /* JP_* bits of journal entries not yet done */
	int local;            /* enum node_local */
	char *error;          /* last failure sending a change, or NULL */
};

/* What kind of node this is on the local side. */
enum node_local {
	LOCAL_NONE = 0,    /* a message or folder of the mailbox (server_id
			      NULL while its creation is queued) */
	LOCAL_TEMP = 1,    /* a local-only file (editor swap, backup): never
			      uploaded, removed when the daemon starts */
	LOCAL_REJECTED = 2,/* content refused as a message, kept in
			      .exchangefs/rejected */
};

void node_clear(struct node *n);

struct cache;

/* Open (creating if needed) the cache in dir: dir is made 0700, files in it
 * 0600.  On failure returns NULL and writes one line into err. */
struct cache *cache_open(const char *dir, char *err, size_t errlen);

/* Make dir (and its parents) 0700; an existing dir is made 0700 too.
 * Returns 0, or -1 with one line in err. */
int cache_make_dir(const char *dir, char *err, size_t errlen);

/* One daemon per cache directory (cache/lock.c).  cache_lock() takes an
 * exclusive lock on <dir>/lock, noting this process and mountpoint in it,
 * and returns the descriptor that holds it (kept across fork(); close it
 * with cache_unlock()).  When another daemon holds it: -1 and one line in
 * err naming that daemon's pid and mount point.  A file system without
 * locks: a warning, and a descriptor that holds nothing. */
int cache_lock(const char *dir, const char *mountpoint, char *err,
	       size_t errlen);
/* After fuse_daemonize(): note the daemon's own pid again; with a NULL
 * mountpoint, note that the daemon is stopping (a daemon starting on the
 * cache then waits for the lock, up to 30 s, instead of giving up). */
void cache_lock_note(int fd, const char *mountpoint);
void cache_unlock(int fd);
void cache_close(struct cache *c);
const char *cache_dir(struct cache *c);

/* Key/value settings (hierarchy sync state, root id, account url). */
char *cache_meta_get(struct cache *c, const char *key);      /* owned */
int cache_meta_set(struct cache *c, const char *key, const char *value);

/* ---- Queries for the file system.  Return 0, -ENOENT, or -EIO. ---- */
int cache_lookup(struct cache *c, uint64_t parent, const char *name,
		 struct node *out);
int cache_get(struct cache *c, uint64_t ino, struct node *out);
/* Calls fn for visible children of parent with ino > after, in ino order,
 * until fn returns non-zero or all are listed.  Returns 0 or -errno. */
typedef int (*cache_list_fn)(void *arg, const struct node *n);
int cache_list(struct cache *c, uint64_t parent, uint64_t after,
	       cache_list_fn fn, void *arg);
/* Counts for statfs and status. */
struct cache_stats {
	int64_t folders, items, bodies, body_bytes, body_limit;
};
void cache_stats(struct cache *c, struct cache_stats *st);
/* The visible folders, for the sync engine: owned array of owned nodes. */
int cache_folders(struct cache *c, struct node **out, size_t *n);
void cache_nodes_free(struct node *v, size_t n);
/* A value that changes when the set cache_folders() lists changes (a folder
 * added, removed, or given another server id) - whoever changed it: the
 * sync engine, or a folder made through the mount getting its id. */
uint64_t cache_folder_set_sig(struct cache *c);

/* ---- Applying server changes (cache/sync_apply.c). ---- */

/* What the file system must tell the kernel after a batch committed.  The
 * apply functions append to it; the caller passes it to its hooks. */
struct cache_change {
	enum {
		CC_NEW,      /* ino appeared as parent/name */
		CC_GONE,     /* ino (at parent/name) went away */
		CC_ATTR,     /* what stat or the mail attributes show changed
				(read, flag, categories, draft state) */
		CC_CONTENT,  /* the content changed (a draft edited elsewhere) */
		CC_RENAMED,  /* moved from parent/name to new_parent/new_name */
		CC_HIDDEN,   /* ino (at parent/name) left the tree for now,
				maybe half of a move (sync_moves.c): the
				kernel forgets the name, no inotify event */
	} what;
	bool dir;        /* the node is a folder */
	uint64_t ino, parent;
	char *name;      /* owned: the name (old name for CC_RENAMED/CC_GONE) */
	uint64_t new_parent;
	char *new_name;  /* owned: CC_RENAMED only */
};
/* from_server: the changes came from the server (a sync page after the
 * folder's first sync, a sent message leaving Outbox), not from the
 * user's own requests: the file system turns them into inotify events. */
struct cache_changes {
	struct cache_change *v;
	size_t n, cap;
	bool from_server;
};
void cache_changes_free(struct cache_changes *ch);
/* Append a change for the kernel (ch may be NULL). */
void cache_change_add(struct cache_changes *ch, int what, uint64_t ino,
		      uint64_t parent, const char *name, uint64_t new_parent,
		      const char *new_name);
/* The same for a folder (dir set). */
void cache_change_add_dir(struct cache_changes *ch, int what, uint64_t ino,
			  uint64_t parent, const char *name,
			  uint64_t new_parent, const char *new_name);

/* A move the server reported (an event's hint, struct be_moved): when a
 * sync page then reports old_id deleted or new_id created, the cache moves
 * the node (keeping its inode, name and cached body) instead of deleting
 * one and creating another.  Hints are kept for ten minutes. */
void cache_hint_move(struct cache *c, const char *old_id, const char *new_id,
		     const char *new_folder_id);

/* Moves without a hint (sync_moves.c): a message a page deleted is held
 * out of the tree for a few seconds in case a page creates it elsewhere
 * (and a new message whose twin is still in another folder, in case the
 * twin's delete comes).  cache_settle_moves makes what is held past its
 * time what the pages said (changes into ch); cache_moves_due_ms is the
 * time until the next such settling, -1 if nothing is held;
 * cache_moves_recover (at start) settles what a stopped daemon held. */
int cache_settle_moves(struct cache *c, struct cache_changes *ch);
int64_t cache_moves_due_ms(struct cache *c);
int cache_moves_recover(struct cache *c);

/* Apply one page of hierarchy changes and the new hierarchy state in one
 * transaction.  root_id links top-level folders to ino 1. */
int cache_apply_folders(struct cache *c, const char *root_id,
			const struct be_folder_batch *b,
			struct cache_changes *ch);
/* Apply one page of item changes for folder ino and store the folder's new
 * state in the same transaction.  If last_page, the folder is marked synced
 * and, when a resync is in progress, items not seen since it began are
 * removed (a resync keeps the names and inodes of items that still exist). */
int cache_apply_items(struct cache *c, uint64_t folder,
		      const struct be_item_batch *b, bool last_page,
		      struct cache_changes *ch);
/* After a hierarchy resync: remove folders whose ids are not in ids[]. */
int cache_sweep_folders(struct cache *c, char *const *ids, size_t n,
			struct cache_changes *ch);
/* Start a resync of a folder: forget its state, begin a new generation. */
int cache_begin_resync(struct cache *c, uint64_t folder);
/* Remove one item (the server said it is gone). */
int cache_remove_item(struct cache *c, uint64_t ino, struct cache_changes *ch);
/* The folder's item sync state (owned; NULL if none). */
char *cache_folder_state(struct cache *c, uint64_t folder);
/* Items of a folder the sync engine has synced (for status): count. */
int64_t cache_folder_count(struct cache *c, uint64_t folder);

/* ---- Bodies (cache/bodies.c). ---- */

/* Set the byte limit of the body store (0 = unlimited). */
void cache_set_body_limit(struct cache *c, int64_t bytes);
/* Open the cached body of ino read-only; returns an fd or -ENOENT if not
 * cached (or the cached file does not match its recorded size). Marks it
 * recently used. */
int cache_body_open(struct cache *c, uint64_t ino);
/* Start writing a body: returns a write handle (an fd on a temp file). */
struct body_writer;
struct body_writer *cache_body_begin(struct cache *c, uint64_t ino);
int cache_body_write(struct body_writer *w, const void *data, size_t len);
/* Finish: rename into place, record size, evict over the limit (the
 * evicted messages are added to *evicted as CC_ATTR: their size is the
 * server's estimate again).  On success returns 0; abort discards. */
int cache_body_commit(struct body_writer *w, struct cache_changes *evicted);
/* The same for a body nobody asked for (prefetch): it never evicts; if it
 * does not fit under the limit it is discarded and -ENOSPC returned. */
int cache_body_commit_within(struct body_writer *w);
void cache_body_abort(struct body_writer *w);
/* Whether bytes more fit under the limit. */
bool cache_body_room(struct cache *c, int64_t bytes);

/* ---- Prefetch (cache/prefetch_store.c). ---- */

/* Create the index and table the prefetcher uses (idempotent). */
int cache_prefetch_init(struct cache *c);
/* Messages without a cached body, for the prefetcher. */
struct prefetch_query {
	int64_t since;     /* received >= since (INT64_MIN: all) */
	int64_t now;       /* skip failures whose next try is later */
	uint64_t folder;   /* only this folder (0: any) */
	uint64_t after;    /* with folder: ino > after, in ino (listing)
			      order, whatever the date (read-ahead);
			      0: newest first */
};
struct prefetch_pick {
	uint64_t ino, parent;
	char *server_id;   /* owned */
	int64_t size;      /* the server's estimate, -1 unknown */
};
/* Up to max picks, leaving out the inos in skip[] (those being fetched);
 * free with cache_prefetch_picks_free(). */
size_t cache_prefetch_pick(struct cache *c, const struct prefetch_query *q,
			   const uint64_t *skip, size_t n_skip,
			   struct prefetch_pick *out, size_t max);
void cache_prefetch_picks_free(struct prefetch_pick *v, size_t n);
struct prefetch_counts {
	int64_t total, cached, cached_bytes, failed;
};
/* Messages received since `since`, and how many have a cached body. */
void cache_prefetch_counts(struct cache *c, int64_t since,
			   struct prefetch_counts *out);
/* Bodies recorded as failed that are still not cached. */
int64_t cache_prefetch_failed_count(struct cache *c);
/* A body could not be fetched: record why; it is tried again after a
 * minute, then doubling up to 6 hours. */
void cache_prefetch_failed(struct cache *c, uint64_t ino, const char *reason,
			   int64_t now);
void cache_prefetch_succeeded(struct cache *c, uint64_t ino);
/* One line per failed body (name: reason), at most max. */
struct buf;
void cache_prefetch_failures(struct cache *c, struct buf *out, size_t max);

#endif
