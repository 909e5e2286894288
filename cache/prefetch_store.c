/*
 * prefetch_store.c - what the body prefetcher (cache/prefetch.c) asks the
 * cache: which messages have no cached body yet (newest first, or in
 * listing order after a position for read-ahead), how far the policy's
 * set of messages is cached, and the bodies that failed (with the reason
 * and when to try again), kept in the prefetch_fail table so a restart
 * neither forgets them nor hammers them.
 *
 * The indexes and table are created here with IF NOT EXISTS when the
 * prefetcher starts: partial indexes holding only messages without a
 * cached body, ordered by arrival (and by folder, then arrival), so
 * finding the next batch costs the same whether 10 or 100,000 bodies are
 * already cached, and never sorts.
 */
#include "db_internal.h"
#include "backend/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A message whose body the server has and the cache does not, in the
 * tree (not held out of it: a delete waiting in the journal, or half of a
 * move, sync_moves.c - fetching it would find it gone and drop the node). */
#define UNCACHED \
	"parent != 0 AND " \
	"kind = 2 AND body_size < 0 AND server_id IS NOT NULL AND " \
	"content IS NULL AND local = 0"

int cache_prefetch_init(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	int rc = db_exec(c,
		"CREATE INDEX IF NOT EXISTS nodes_uncached ON nodes(received) "
		"WHERE kind = 2 AND body_size < 0;"
		"CREATE INDEX IF NOT EXISTS nodes_uncached_f ON nodes(parent, "
		"received) WHERE kind = 2 AND body_size < 0;"
		"CREATE TABLE IF NOT EXISTS prefetch_fail(ino INTEGER PRIMARY KEY,"
		"  attempts INTEGER NOT NULL, next_try INTEGER NOT NULL,"
		"  reason TEXT NOT NULL);");
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static bool excluded(const uint64_t *skip, size_t n_skip, uint64_t ino)
{
	for (size_t i = 0; i < n_skip; i++)
		if (skip[i] == ino)
			return true;
	return false;
}

size_t cache_prefetch_pick(struct cache *c, const struct prefetch_query *q,
			   const uint64_t *skip, size_t n_skip,
			   struct prefetch_pick *out, size_t max)
{
	static const char sql_new[] =
		"SELECT ino, parent, server_id, size FROM nodes INDEXED BY "
		"nodes_uncached WHERE " UNCACHED
		" AND received >= ?1 AND ?3 = 0 AND ino NOT IN "
		"(SELECT ino FROM prefetch_fail WHERE next_try > ?2) "
		"ORDER BY received DESC, ino DESC LIMIT ?4";
	static const char sql_folder[] =
		"SELECT ino, parent, server_id, size FROM nodes INDEXED BY "
		"nodes_uncached_f WHERE " UNCACHED
		" AND received >= ?1 AND parent = ?3 AND ino NOT IN "
		"(SELECT ino FROM prefetch_fail WHERE next_try > ?2) "
		"ORDER BY received DESC, ino DESC LIMIT ?4";
	static const char sql_after[] =
		"SELECT ino, parent, server_id, size FROM nodes WHERE " UNCACHED
		" AND parent = ?3 AND ino > ?5 AND ino NOT IN "
		"(SELECT ino FROM prefetch_fail WHERE next_try > ?2) "
		"ORDER BY ino LIMIT ?4";
	size_t n = 0;
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, q->after ? sql_after
					 : q->folder ? sql_folder : sql_new);
	sqlite3_bind_int64(st, 1, q->since);
	sqlite3_bind_int64(st, 2, q->now);
	sqlite3_bind_int64(st, 3, (int64_t)q->folder);
	sqlite3_bind_int64(st, 4, (int64_t)(max + n_skip));
	if (q->after)
		sqlite3_bind_int64(st, 5, (int64_t)q->after);
	while (n < max && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(st, 0);
		if (excluded(skip, n_skip, ino))
			continue;
		out[n].ino = ino;
		out[n].parent = (uint64_t)sqlite3_column_int64(st, 1);
		out[n].server_id = xstrdup((const char *)sqlite3_column_text(st, 2));
		out[n].size = sqlite3_column_int64(st, 3);
		n++;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return n;
}

void cache_prefetch_picks_free(struct prefetch_pick *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].server_id);
		v[i].server_id = NULL;
	}
}

void cache_prefetch_counts(struct cache *c, int64_t since,
			   struct prefetch_counts *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c,
		"SELECT count(*), coalesce(sum(body_size >= 0), 0), "
		"coalesce(sum(CASE WHEN body_size >= 0 THEN body_size END), 0) "
		"FROM nodes WHERE kind = 2 AND server_id IS NOT NULL AND "
		"content IS NULL AND local = 0 AND received >= ?");
	sqlite3_bind_int64(st, 1, since);
	if (sqlite3_step(st) == SQLITE_ROW) {
		out->total = sqlite3_column_int64(st, 0);
		out->cached = sqlite3_column_int64(st, 1);
		out->cached_bytes = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	out->failed = cache_prefetch_failed_count(c);
}

int64_t cache_prefetch_failed_count(struct cache *c)
{
	int64_t n = 0;
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "SELECT count(*) FROM prefetch_fail f "
				     "JOIN nodes n USING(ino) WHERE n.body_size < 0");
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return n;
}

void cache_prefetch_failed(struct cache *c, uint64_t ino, const char *reason,
			   int64_t now)
{
	pthread_mutex_lock(&c->lock);
	/* retry after 1 minute, doubling to 6 hours */
	sqlite3_stmt *st = db_cached(c,
		"INSERT INTO prefetch_fail(ino, attempts, next_try, reason) "
		"VALUES(?1, 1, ?2 + 60, ?3) ON CONFLICT(ino) DO UPDATE SET "
		"attempts = attempts + 1, reason = ?3, next_try = ?2 + "
		"min(21600, 60 << min(attempts, 9))");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, now);
	db_bind_text(st, 3, reason);
	db_run(c, st);
	pthread_mutex_unlock(&c->lock);
}

void cache_prefetch_succeeded(struct cache *c, uint64_t ino)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "DELETE FROM prefetch_fail WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	db_run(c, st);
	pthread_mutex_unlock(&c->lock);
}

void cache_prefetch_failures(struct cache *c, struct buf *out, size_t max)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c,
		"SELECT n.name, f.attempts, f.reason, f.next_try FROM prefetch_fail f "
		"JOIN nodes n USING(ino) WHERE n.body_size < 0 "
		"ORDER BY f.ino LIMIT ?");
	sqlite3_bind_int64(st, 1, (int64_t)max);
	while (sqlite3_step(st) == SQLITE_ROW)
		buf_printf(out, "  %s: %s (%lld attempts)\n",
			   (const char *)sqlite3_column_text(st, 0),
			   (const char *)sqlite3_column_text(st, 2),
			   (long long)sqlite3_column_int64(st, 1));
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
}

bool cache_body_room(struct cache *c, int64_t bytes)
{
	pthread_mutex_lock(&c->lock);
	bool room = !c->body_limit || c->body_bytes + bytes <= c->body_limit;
	pthread_mutex_unlock(&c->lock);
	return room;
}
