/*
 * sync_moves.c - a message moved on the server is one rename on the mount
 * (its inode, name and cached body kept, IN_MOVED_FROM/IN_MOVED_TO)
 * whatever order the sync reads the two folders in, with or without the
 * server's MovedEvent hint (cache_hint_move; ActiveSync has none).
 *
 * A page that deletes a message does not drop it at once: the node leaves
 * the tree (parent 0, so no listing shows it) and is held for
 * MOVE_HOLD_MS ("leaving").  A page that creates a message whose identity
 * (Message-ID, received time and size) matches a held one takes that node
 * instead of a new one.  The other order: a page that creates a message
 * whose twin still sits in another folder holds the new node out of the
 * tree ("arriving", its folder's server id in parent_sid); if the twin's
 * delete comes in time, the twin moves there and the new row goes.  What
 * is still held when its time is up becomes what the page said: leaving
 * nodes are deleted (one IN_DELETE), arriving ones linked (one IN_CREATE).
 *
 * The held list is memory (struct cache, protected by its lock); the rows
 * are in SQLite, so after a crash cache_moves_recover() settles them.
 */
#include "db_internal.h"
#include "sync_moves.h"
#include "backend/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MOVE_HOLD_MS 5000

/* EXCHANGEFS_MOVE_HOLD_MS overrides the hold for tests (1 ms to 10 min). */
static int64_t hold_ms(void)
{
	static int64_t ms;
	if (!__atomic_load_n(&ms, __ATOMIC_RELAXED)) {
		const char *env = getenv("EXCHANGEFS_MOVE_HOLD_MS");
		long long v = env ? atoll(env) : 0;
		__atomic_store_n(&ms, v >= 1 && v <= 600000 ? v : MOVE_HOLD_MS,
				 __ATOMIC_RELAXED);
	}
	return __atomic_load_n(&ms, __ATOMIC_RELAXED);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct held_item *find(struct cache *c, uint64_t ino)
{
	for (size_t i = 0; i < c->n_held; i++)
		if (c->held[i].ino == ino)
			return &c->held[i];
	return NULL;
}

static void drop(struct cache *c, struct held_item *h)
{
	free(h->name);
	*h = c->held[--c->n_held];
}

int moves_held(struct cache *c, uint64_t ino)
{
	struct held_item *h = find(c, ino);
	return !h ? 0 : h->arriving ? MOVE_ARRIVING : MOVE_LEAVING;
}

uint64_t moves_held_parent(struct cache *c, uint64_t ino)
{
	struct held_item *h = find(c, ino);
	return h ? h->parent : 0;
}

static bool add(struct cache *c, uint64_t ino, uint64_t parent,
		const char *name, bool arriving)
{
	if (c->n_held == MOVE_HELD_MAX)
		return false;
	struct held_item *h = &c->held[c->n_held++];
	h->ino = ino;
	h->parent = parent;
	h->name = name ? xstrdup(name) : NULL;
	h->until_ms = mono_ms() + hold_ms();
	h->arriving = arriving;
	return true;
}

static int to_hold(struct cache *c, uint64_t ino, const char *folder_sid)
{
	sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET parent = 0, name = "
				     "'~' || ino, parent_sid = ? WHERE ino = ?");
	db_bind_text(st, 1, folder_sid);
	sqlite3_bind_int64(st, 2, (int64_t)ino);
	return db_run(c, st);
}

int moves_hold_leaving(struct cache *c, const struct node *old)
{
	if (c->n_held == MOVE_HELD_MAX)
		return 1;
	int rc = to_hold(c, old->ino, NULL);
	if (!rc)
		add(c, old->ino, old->parent, old->name, false);
	return rc;
}

int moves_unhold_leaving(struct cache *c, struct node *old)
{
	struct held_item *h = find(c, old->ino);
	if (!h || h->arriving)
		return 0;
	char *name = cache_name_taken(c, h->parent, h->name)
		? cache_free_name(c, h->parent, NODE_ITEM, old->subject,
				  old->received)
		: xstrdup(h->name);
	sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET parent = ?, name = ? "
				     "WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)h->parent);
	db_bind_text(st, 2, name);
	sqlite3_bind_int64(st, 3, (int64_t)old->ino);
	int rc = db_run(c, st);
	if (!rc)
		rc = count_items(c, h->parent, 1);
	if (!rc) {
		/* the node is back where the kernel last saw it */
		old->parent = h->parent;
		free(old->name);
		old->name = name;
		name = NULL;
		drop(c, h);
	}
	free(name);
	return rc;
}

int moves_hold_arriving(struct cache *c, uint64_t ino, uint64_t folder,
			const char *folder_sid)
{
	int rc = to_hold(c, ino, folder_sid);
	if (!rc && !add(c, ino, folder, NULL, true))
		rc = -ENOSPC;  /* checked by moves_room() before */
	return rc;
}

bool moves_room(struct cache *c)
{
	return c->n_held < MOVE_HELD_MAX;
}

/* Whether node ino has this identity. */
static bool same_identity(struct cache *c, uint64_t ino, const char *mid,
			  int64_t received, int64_t size)
{
	sqlite3_stmt *st = db_cached(c, "SELECT 1 FROM nodes WHERE ino = ? AND "
				     "message_id = ? AND received = ? AND "
				     "size = ?");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	db_bind_text(st, 2, mid);
	sqlite3_bind_int64(st, 3, received);
	sqlite3_bind_int64(st, 4, size);
	bool same = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return same;
}

static bool has_identity(const char *mid, int64_t size)
{
	return mid && *mid && size >= 0;
}

uint64_t moves_match(struct cache *c, bool arriving, const char *mid,
		     int64_t received, int64_t size, uint64_t *folder)
{
	if (!has_identity(mid, size))
		return 0;
	for (size_t i = 0; i < c->n_held; i++) {
		struct held_item *h = &c->held[i];
		if (h->arriving == arriving &&
		    same_identity(c, h->ino, mid, received, size)) {
			if (folder)
				*folder = h->parent;
			return h->ino;
		}
	}
	return 0;
}

bool moves_twin_elsewhere(struct cache *c, uint64_t folder, const char *mid,
			  int64_t received, int64_t size)
{
	if (!has_identity(mid, size))
		return false;
	/* nodes_mid (cache_moves_recover) makes this a look-up */
	sqlite3_stmt *st = db_cached(c, "SELECT 1 FROM nodes WHERE kind = 2 AND "
		"message_id = ? AND received = ? AND size = ? AND parent NOT "
		"IN (0, ?) AND pend = 0 AND local = 0 AND server_id IS NOT "
		"NULL LIMIT 1");
	db_bind_text(st, 1, mid);
	sqlite3_bind_int64(st, 2, received);
	sqlite3_bind_int64(st, 3, size);
	sqlite3_bind_int64(st, 4, (int64_t)folder);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return found;
}

void moves_forget(struct cache *c, uint64_t ino)
{
	struct held_item *h = find(c, ino);
	if (h)
		drop(c, h);
}

/* Link an arriving node into its folder under a free name (lock held). */
static int link_arriving(struct cache *c, uint64_t ino, uint64_t folder,
			 struct cache_changes *ch)
{
	sqlite3_stmt *st = db_cached(c, "SELECT subject, received, sent, "
				     "(SELECT count(*) FROM nodes WHERE ino = ?2 "
				     "AND kind = 1) FROM nodes WHERE ino = ?1");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, (int64_t)folder);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return 0;  /* gone meanwhile */
	}
	if (sqlite3_column_int(st, 3) == 0) {
		/* its folder went away meanwhile: so did the message */
		sqlite3_reset(st);
		st = db_cached(c, "DELETE FROM nodes WHERE ino = ?");
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		return db_run(c, st);
	}
	char *subject = xstrdup((const char *)sqlite3_column_text(st, 0));
	int64_t t = sqlite3_column_int64(st, 1);
	if (!t)
		t = sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	char *name = cache_free_name(c, folder, NODE_ITEM, subject, t);
	st = db_cached(c, "UPDATE nodes SET parent = ?, name = ?, parent_sid = "
		       "NULL WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)folder);
	db_bind_text(st, 2, name);
	sqlite3_bind_int64(st, 3, (int64_t)ino);
	int rc = db_run(c, st);
	if (!rc)
		rc = count_items(c, folder, 1);
	if (!rc)
		cache_change_add(ch, CC_NEW, ino, folder, name, 0, NULL);
	free(name);
	free(subject);
	return rc;
}

int moves_link_arriving(struct cache *c, uint64_t ino,
			struct cache_changes *ch)
{
	struct held_item *h = find(c, ino);
	if (!h || !h->arriving)
		return 0;
	uint64_t folder = h->parent;
	drop(c, h);
	return link_arriving(c, ino, folder, ch);
}

/* Make what is held past its time (all: everything) what the pages said
 * (lock held, in a txn). */
static int settle(struct cache *c, bool all, struct cache_changes *ch)
{
	int64_t now = mono_ms();
	int rc = 0;
	for (size_t i = 0; !rc && i < c->n_held;) {
		struct held_item *h = &c->held[i];
		if (!all && h->until_ms > now) {
			i++;
			continue;
		}
		if (h->arriving) {
			rc = link_arriving(c, h->ino, h->parent, ch);
		} else {
			bodies_forget(c, h->ino);
			sqlite3_stmt *st = db_cached(c, "DELETE FROM nodes WHERE "
						     "ino = ? AND parent = 0");
			sqlite3_bind_int64(st, 1, (int64_t)h->ino);
			rc = db_run(c, st);
			if (!rc)
				cache_change_add(ch, CC_GONE, h->ino, h->parent,
						 h->name, 0, NULL);
		}
		drop(c, h);  /* i now holds the last one */
	}
	return rc;
}

int moves_settle(struct cache *c, struct cache_changes *ch)
{
	return settle(c, false, ch);
}

int cache_settle_moves(struct cache *c, struct cache_changes *ch)
{
	pthread_mutex_lock(&c->lock);
	int rc = 0;
	if (c->n_held) {
		rc = db_begin(c);
		if (!rc)
			rc = settle(c, false, ch);
		if (!rc)
			rc = db_commit(c);
		if (rc)
			db_rollback(c);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int64_t cache_moves_due_ms(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	int64_t due = -1, now = mono_ms();
	for (size_t i = 0; i < c->n_held; i++) {
		int64_t left = c->held[i].until_ms - now;
		if (left < 0)
			left = 0;
		if (due < 0 || left < due)
			due = left;
	}
	pthread_mutex_unlock(&c->lock);
	return due;
}

int cache_moves_recover(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	int rc = db_exec(c, "CREATE INDEX IF NOT EXISTS nodes_mid ON "
			 "nodes(message_id) WHERE kind = 2");
	if (!rc)
		rc = db_begin(c);
	/* held when the daemon stopped: a leaving node's move never came
	 * (it is gone), an arriving one's twin never left (a copy) */
	if (!rc)
		rc = db_exec(c, "DELETE FROM nodes WHERE kind = 2 AND parent = 0 "
			     "AND pend = 0 AND local = 0 AND server_id IS NOT "
			     "NULL AND parent_sid IS NULL");
	sqlite3_stmt *st = rc ? NULL : db_prepare(c,
		"SELECT n.ino, f.ino FROM nodes n JOIN nodes f ON f.kind = 1 "
		"AND f.server_id = n.parent_sid WHERE n.kind = 2 AND "
		"n.parent = 0 AND n.pend = 0 AND n.local = 0");
	while (st && !rc && sqlite3_step(st) == SQLITE_ROW)
		rc = link_arriving(c, (uint64_t)sqlite3_column_int64(st, 0),
				   (uint64_t)sqlite3_column_int64(st, 1), NULL);
	if (st)
		sqlite3_finalize(st);
	if (!rc)
		rc = db_commit(c);
	if (rc)
		db_rollback(c);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void cache_moves_free(struct cache *c)
{
	for (size_t i = 0; i < c->n_held; i++)
		free(c->held[i].name);
	c->n_held = 0;
}
