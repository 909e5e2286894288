/*
 * journal_store.c - the journal's storage (see journal.h): its rows and
 * their durable transactions, the content files in <cache>/local/, the
 * well-known folders, the recovery at start, and the queries and updates
 * the applier (applier.c) makes.  The file system's side of changes is in
 * journal.c.
 */
#include "db_internal.h"
#include "journal_internal.h"
#include "names.h"
#include "backend/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void jrow_clear(struct jrow *r)
{
	free(r->name);
	free(r->content);
	free(r->token);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

void jrows_free(struct jrow *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jrow_clear(&v[i]);
	free(v);
}

const char *jop_name(enum j_op op)
{
	switch (op) {
	case J_SAVE:       return "save message";
	case J_DRAFT:      return "save draft";
	case J_SEND:       return "send";
	case J_REPLACE:    return "update draft";
	case J_PROPS:      return "set flags";
	case J_DELETE:     return "delete";
	case J_MOVE:       return "move";
	case J_MKDIR:      return "create folder";
	case J_RMDIR:      return "delete folder";
	case J_RENAME_DIR: return "rename folder";
	case J_MOVE_DIR:   return "move folder";
	}
	return "change";
}

bool jr_is_create(enum j_op op)
{
	return op == J_SAVE || op == J_DRAFT || op == J_SEND;
}

/* What a row changes, as node.pend bits. */
unsigned jr_row_bits(enum j_op op, int64_t arg)
{
	switch (op) {
	case J_SAVE: case J_DRAFT: case J_SEND:
		return JP_PLACE | JP_CONTENT;
	case J_REPLACE:
		return JP_CONTENT;
	case J_PROPS:
		return (unsigned)arg & (JP_READ | JP_FLAG | JP_CATS);
	default:
		return JP_PLACE;
	}
}

int jr_durable_begin(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	db_exec(c, "PRAGMA synchronous = FULL");
	int rc = db_begin(c);
	if (rc) {
		db_exec(c, "PRAGMA synchronous = NORMAL");
		pthread_mutex_unlock(&c->lock);
	}
	return rc;
}

int jr_durable_end(struct cache *c, int rc)
{
	if (!rc)
		rc = db_commit(c);
	if (rc)
		db_rollback(c);
	db_exec(c, "PRAGMA synchronous = NORMAL");
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static const char *const special_keys[BE_SPECIAL_N] = {
	"special.inbox", "special.drafts", "special.sent", "special.deleted",
	"special.outbox",
};

void cache_set_special(struct cache *c, char *const ids[BE_SPECIAL_N])
{
	for (int k = 0; k < BE_SPECIAL_N; k++)
		if (ids[k])
			cache_meta_set(c, special_keys[k], ids[k]);
}

uint64_t cache_special_ino(struct cache *c, enum be_special role)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "SELECT n.ino FROM nodes n JOIN meta m "
				     "ON m.value = n.server_id WHERE m.key = ? "
				     "AND n.kind = 1");
	sqlite3_bind_text(st, 1, special_keys[role], -1, SQLITE_STATIC);
	uint64_t ino = sqlite3_step(st) == SQLITE_ROW
		? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return ino;
}

int cache_role(struct cache *c, uint64_t ino)
{
	if (ino < CACHE_FIRST_INO)
		return -1;
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "SELECT m.key FROM nodes n JOIN meta m "
				     "ON m.value = n.server_id WHERE n.ino = ? "
				     "AND m.key LIKE 'special.%'");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	int role = -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		for (int i = 0; i < BE_SPECIAL_N; i++)
			if (k && !strcmp(k, special_keys[i]))
				role = i;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return role;
}

void cache_set_trash_delete(struct cache *c, enum be_delete how)
{
	pthread_mutex_lock(&c->lock);
	c->trash_delete = how;
	pthread_mutex_unlock(&c->lock);
}

char *journal_staging_path(struct cache *c, uint64_t ino)
{
	return xasprintf("%s/local/%llu.w", c->dir, (unsigned long long)ino);
}

char *journal_content_path(struct cache *c, const char *rel)
{
	return xasprintf("%s/%s", c->dir, rel);
}

char *jr_new_content_name(uint64_t ino)
{
	static unsigned seq;
	return xasprintf("local/%llu.%lld%03u", (unsigned long long)ino,
			 (long long)now_ms(),
			 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) % 1000);
}

/* Unlink a content file nothing refers to any more (lock held). */
void jr_content_gc(struct cache *c, const char *rel)
{
	if (!rel)
		return;
	sqlite3_stmt *st = db_cached(c, "SELECT (SELECT count(*) FROM nodes "
				     "WHERE content = ?1) + (SELECT count(*) FROM "
				     "journal WHERE content = ?1)");
	sqlite3_bind_text(st, 1, rel, -1, SQLITE_STATIC);
	int64_t refs = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
	sqlite3_reset(st);
	if (refs == 0) {
		char *p = journal_content_path(c, rel);
		unlink(p);
		free(p);
	}
}

/* name, or name (2), (3)... whichever is free under parent.  Owned. */
char *jr_free_user_name(struct cache *c, uint64_t parent, const char *name)
{
	for (unsigned n = 1;; n++) {
		char *s = names_suffixed(name, n);
		if (!cache_name_taken(c, parent, s))
			return s;
		free(s);
	}
}

void jr_read_row(sqlite3_stmt *st, struct jrow *r)
{
	r->seq = sqlite3_column_int64(st, 0);
	r->op = (enum j_op)sqlite3_column_int(st, 1);
	r->ino = (uint64_t)sqlite3_column_int64(st, 2);
	r->folder = (uint64_t)sqlite3_column_int64(st, 3);
	r->arg = sqlite3_column_int64(st, 4);
	const unsigned char *t;
	r->name = (t = sqlite3_column_text(st, 5)) ? xstrdup((const char *)t) : NULL;
	r->content = (t = sqlite3_column_text(st, 6)) ? xstrdup((const char *)t) : NULL;
	r->token = (t = sqlite3_column_text(st, 7)) ? xstrdup((const char *)t) : NULL;
	r->state = (enum j_state)sqlite3_column_int(st, 8);
	r->attempts = sqlite3_column_int(st, 9);
	r->next_try = sqlite3_column_int64(st, 10);
	r->created = sqlite3_column_int64(st, 11);
	r->error = (t = sqlite3_column_text(st, 12)) ? xstrdup((const char *)t) : NULL;
}

/* Delete every journal row of ino (lock held, in a txn).  *files gets
 * the rows' own content files (owned array of owned names), which the
 * caller collects (jr_content_gc) once the rows are gone, and frees. */
static int drop_rows(struct cache *c, uint64_t ino, char ***files,
		     size_t *nf)
{
	sqlite3_stmt *st = db_prepare(c, "SELECT content FROM journal WHERE "
				      "ino = ? AND content IS NOT NULL");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	*files = NULL;
	*nf = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		*files = xrealloc(*files, (*nf + 1) * sizeof(**files));
		(*files)[(*nf)++] = xstrdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	st = db_cached(c, "DELETE FROM journal WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	return db_run(c, st);
}

/* Remove a node and everything queued for it (lock held, in a txn). */
int jr_forget_node(struct cache *c, const struct node *n)
{
	char **files;
	size_t nf;
	int rc = drop_rows(c, n->ino, &files, &nf);
	sqlite3_stmt *st;
	if (!rc) {
		st = db_cached(c, "DELETE FROM nodes WHERE ino = ?");
		sqlite3_bind_int64(st, 1, (int64_t)n->ino);
		rc = db_run(c, st);
	}
	if (!rc && n->kind == NODE_ITEM && n->local == LOCAL_NONE && n->parent)
		rc = count_items(c, n->parent, -1);
	if (!rc) {
		bodies_forget(c, n->ino);
		jr_content_gc(c, n->content);
		for (size_t i = 0; i < nf; i++)
			jr_content_gc(c, files[i]);
	}
	for (size_t i = 0; i < nf; i++)
		free(files[i]);
	free(files);
	return rc;
}

char *jr_new_token(void)
{
	unsigned char raw[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;
	if (fd >= 0)
		close(fd);
	if (got != (ssize_t)sizeof(raw)) {
		uint64_t t = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32);
		for (size_t i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)(i * 37);
	}
	char *s = xmalloc(sizeof(raw) * 2 + 1);
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(s + 2 * i, 3, "%02x", raw[i]);
	return s;
}

/* A file of local/ that a lost database knew: kept as a rejected file
 * (.exchangefs/rejected/recovered <file>.eml), so its bytes can be read
 * and put back where they belong.  Lock held. */
static void adopt_orphan(struct cache *c, const char *rel)
{
	char *path = journal_content_path(c, rel);
	struct stat sb;
	int bad = stat(path, &sb) || !S_ISREG(sb.st_mode) || sb.st_size == 0;
	free(path);
	if (bad)
		return;
	char *want = xasprintf("recovered %s.eml", rel + strlen("local/"));
	char *name = jr_free_user_name(c, CACHE_REJECTED_INO, want);
	sqlite3_stmt *st = db_prepare(c, "INSERT INTO nodes(parent, kind, "
		"name, local, content, body_size, error, size, mtime) VALUES("
		"?, 2, ?, 2, ?, ?, 'written here, not yet sent when the cache "
		"database was lost', -1, strftime('%s'))");
	sqlite3_bind_int64(st, 1, CACHE_REJECTED_INO);
	db_bind_text(st, 2, name);
	db_bind_text(st, 3, rel);
	sqlite3_bind_int64(st, 4, sb.st_size);
	if (!db_step_done(c, st))
		log_warn("%s was written here and not yet sent when the cache "
			 "database was lost: kept as .exchangefs/rejected/%s",
			 rel, name);
	free(name);
	free(want);
}

int journal_recover(struct cache *c)
{
	char *dir = xasprintf("%s/local", c->dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_err("cannot create %s: %s", dir, strerror(errno));
		free(dir);
		return -EIO;
	}
	char *adopt = cache_meta_get(c, "adopt-local");
	pthread_mutex_lock(&c->lock);
	int rc = db_begin(c);
	/* local-only files vanish with the mount */
	if (!rc)
		rc = db_exec(c, "DELETE FROM nodes WHERE local = 1");
	/* rows being sent when the daemon stopped may have reached it */
	if (!rc)
		rc = db_exec(c, "UPDATE journal SET state = 1 WHERE state = 3");
	/* messages being written when the daemon stopped: their bytes are
	 * kept in rejected/ (never uploaded half-written) */
	if (!rc) {
		sqlite3_stmt *st = db_prepare(c, "SELECT ino, parent, name FROM "
			"nodes WHERE kind = 2 AND local = 0 AND server_id IS NULL "
			"AND parent != 0 AND ino NOT IN (SELECT ino FROM journal)");
		while (!rc && sqlite3_step(st) == SQLITE_ROW) {
			uint64_t ino = (uint64_t)sqlite3_column_int64(st, 0);
			uint64_t parent = (uint64_t)sqlite3_column_int64(st, 1);
			const char *name = (const char *)sqlite3_column_text(st, 2);
			char *staging = journal_staging_path(c, ino);
			struct stat sb;
			bool has = stat(staging, &sb) == 0 && sb.st_size > 0;
			char *rel = has ? jr_new_content_name(ino) : NULL;
			if (has) {
				char *to = journal_content_path(c, rel);
				if (rename(staging, to) < 0) {
					free(rel);
					rel = NULL;
				}
				free(to);
			}
			sqlite3_stmt *up;
			if (rel) {
				char *nn = jr_free_user_name(c, CACHE_REJECTED_INO, name);
				up = db_prepare(c, "UPDATE nodes SET parent = ?, "
					"name = ?, local = 2, content = ?, body_size = ?, "
					"error = 'was being written when exchangefs "
					"stopped' WHERE ino = ?");
				sqlite3_bind_int64(up, 1, CACHE_REJECTED_INO);
				db_bind_text(up, 2, nn);
				db_bind_text(up, 3, rel);
				sqlite3_bind_int64(up, 4, sb.st_size);
				sqlite3_bind_int64(up, 5, (int64_t)ino);
				log_warn("'%s' was being written when exchangefs "
					 "stopped: kept as .exchangefs/rejected/%s",
					 name, nn);
				free(nn);
			} else {
				/* created and never written: nothing to keep */
				log_warn("'%s' was still empty when exchangefs "
					 "stopped: removed (not a message)", name);
				up = db_prepare(c, "DELETE FROM nodes WHERE ino = ?");
				sqlite3_bind_int64(up, 1, (int64_t)ino);
			}
			rc = db_step_done(c, up);
			if (!rc)
				rc = count_items(c, parent, -1);
			free(rel);
			free(staging);
		}
		sqlite3_finalize(st);
	}
	if (!rc)
		rc = db_commit(c);
	if (rc)
		db_rollback(c);
	/* files nothing refers to: staging leftovers, superseded versions;
	 * unless the database is new beside them (it was lost: emptied,
	 * moved away as damaged), when they are what the user wrote and
	 * the journal can no longer say where it goes */
	DIR *d = opendir(dir);
	struct dirent *de;
	while (!rc && d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *rel = xasprintf("local/%s", de->d_name);
		if (adopt)
			adopt_orphan(c, rel);
		else
			jr_content_gc(c, rel);
		free(rel);
	}
	if (d)
		closedir(d);
	if (!rc && adopt)
		rc = db_exec(c, "DELETE FROM meta WHERE key = 'adopt-local'");
	pthread_mutex_unlock(&c->lock);
	free(adopt);
	free(dir);
	return rc;
}

/* ---- the applier's side ---- */

int journal_first(struct cache *c, struct jrow *out)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "SELECT " JROW_COLS " FROM journal "
				     "WHERE state != 2 ORDER BY seq LIMIT 1");
	int rc = -ENOENT;
	if (sqlite3_step(st) == SQLITE_ROW) {
		jr_read_row(st, out);
		rc = 0;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int journal_take(struct cache *c, struct jrow *row)
{
	int rc = jr_durable_begin(c);
	if (rc)
		return rc;
	sqlite3_stmt *st = db_cached(c, "UPDATE journal SET state = 3 WHERE "
				     "seq = ? AND state = 0");
	sqlite3_bind_int64(st, 1, row->seq);
	rc = db_run(c, st);
	st = db_cached(c, "SELECT " JROW_COLS " FROM journal WHERE seq = ?");
	sqlite3_bind_int64(st, 1, row->seq);
	if (!rc && sqlite3_step(st) == SQLITE_ROW) {
		jrow_clear(row);
		jr_read_row(st, row);
	} else if (!rc) {
		rc = -ENOENT;
	}
	sqlite3_reset(st);
	return jr_durable_end(c, rc);
}

int journal_retry_later(struct cache *c, int64_t seq, int64_t next_try,
			const char *error)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "UPDATE journal SET attempts = attempts "
				     "+ 1, next_try = ?, error = ?, state = CASE WHEN "
				     "state = 3 THEN 1 ELSE state END WHERE seq = ?");
	sqlite3_bind_int64(st, 1, next_try);
	db_bind_text(st, 2, error);
	sqlite3_bind_int64(st, 3, seq);
	int rc = db_run(c, st);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int journal_fail(struct cache *c, const struct jrow *r, const char *error)
{
	int rc = jr_durable_begin(c);
	if (rc)
		return rc;
	sqlite3_stmt *st = db_cached(c, "UPDATE journal SET state = 2, error = ? "
				     "WHERE seq = ?");
	db_bind_text(st, 1, error);
	sqlite3_bind_int64(st, 2, r->seq);
	rc = db_run(c, st);
	if (!rc) {
		st = db_cached(c, "UPDATE nodes SET error = ? WHERE ino = ?");
		db_bind_text(st, 1, error);
		sqlite3_bind_int64(st, 2, (int64_t)r->ino);
		rc = db_run(c, st);
	}
	return jr_durable_end(c, rc);
}

/* Recompute node.pend from the rows left (lock held). */
static int recompute_pend(struct cache *c, uint64_t ino)
{
	sqlite3_stmt *st = db_cached(c, "SELECT op, arg FROM journal WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	unsigned bits = 0;
	while (sqlite3_step(st) == SQLITE_ROW)
		bits |= jr_row_bits((enum j_op)sqlite3_column_int(st, 0),
				 sqlite3_column_int64(st, 1));
	sqlite3_reset(st);
	st = db_cached(c, "UPDATE nodes SET pend = ? WHERE ino = ?");
	sqlite3_bind_int(st, 1, (int)bits);
	sqlite3_bind_int64(st, 2, (int64_t)ino);
	return db_run(c, st);
}

int journal_done(struct cache *c, const struct jrow *r, const char *new_id,
		 const char *new_ck, bool drop, struct cache_changes *ch)
{
	int rc = jr_durable_begin(c);
	if (rc)
		return rc;
	sqlite3_stmt *st = db_cached(c, "DELETE FROM journal WHERE seq = ?");
	sqlite3_bind_int64(st, 1, r->seq);
	rc = db_run(c, st);
	struct node n = { 0 };
	bool have = !rc && cache_get(c, r->ino, &n) == 0;
	if (have && drop) {
		if (n.parent && n.visible)
			cache_change_add(ch, CC_GONE, n.ino, n.parent, n.name, 0, NULL);
		rc = jr_forget_node(c, &n);
	} else if (have) {
		if (new_id) {
			/* an id the sync engine already gave another node
			 * (the server reported the item before we learned its
			 * id): that node is the same item, drop it */
			struct node other = { 0 };
			if (cache_by_server_id(c, n.kind, new_id, &other) == 0 &&
			    other.ino != n.ino) {
				if (other.parent && other.visible)
					cache_change_add(ch, CC_GONE, other.ino,
							 other.parent, other.name, 0, NULL);
				rc = jr_forget_node(c, &other);
			}
			node_clear(&other);
		}
		st = db_cached(c, "UPDATE nodes SET server_id = coalesce(?, "
			       "server_id), change_key = coalesce(?, change_key), "
			       "error = NULL WHERE ino = ?");
		db_bind_text(st, 1, new_id);
		db_bind_text(st, 2, new_ck);
		sqlite3_bind_int64(st, 3, (int64_t)r->ino);
		if (!rc)
			rc = db_run(c, st);
		if (!rc)
			rc = recompute_pend(c, r->ino);
		if (!rc && (jr_is_create(r->op) || r->op == J_REPLACE)) {
			/* the server's size of this content is not known
			 * yet: the next sync records it without dropping the
			 * content as changed */
			st = db_cached(c, "UPDATE nodes SET size = -1 WHERE ino = ?");
			sqlite3_bind_int64(st, 1, (int64_t)r->ino);
			rc = db_run(c, st);
		}
	}
	if (!rc)
		jr_content_gc(c, r->content);
	node_clear(&n);
	return jr_durable_end(c, rc);
}

bool journal_folder_unsure(struct cache *c, uint64_t ino)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "SELECT 1 FROM journal WHERE state IN "
				     "(1, 3) AND (folder = ?1 OR ino = ?1) LIMIT 1");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	bool r = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return r;
}

int journal_recreate(struct cache *c, const struct jrow *r)
{
	int rc = jr_durable_begin(c);
	if (rc)
		return rc;
	char *token = jr_new_token();
	sqlite3_stmt *st = db_cached(c, "UPDATE journal SET op = ?, token = ?, "
				     "state = 0 WHERE seq = ?");
	sqlite3_bind_int(st, 1, J_DRAFT);
	db_bind_text(st, 2, token);
	sqlite3_bind_int64(st, 3, r->seq);
	rc = db_run(c, st);
	free(token);
	if (!rc) {
		st = db_cached(c, "UPDATE nodes SET server_id = NULL, change_key = "
			       "NULL, pend = pend | ? WHERE ino = ?");
		sqlite3_bind_int(st, 1, (int)(JP_PLACE | JP_CONTENT));
		sqlite3_bind_int64(st, 2, (int64_t)r->ino);
		rc = db_run(c, st);
	}
	return jr_durable_end(c, rc);
}

void journal_stats(struct cache *c, struct journal_stats *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "SELECT sum(state != 2), sum(state = 2), "
				     "min(CASE WHEN state != 2 THEN created END) "
				     "FROM journal");
	if (sqlite3_step(st) == SQLITE_ROW) {
		s->queued = sqlite3_column_int64(st, 0);
		s->failed = sqlite3_column_int64(st, 1);
		if (sqlite3_column_type(st, 2) != SQLITE_NULL)
			s->oldest_age = time(NULL) - sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
}

int journal_failures(struct cache *c, struct jrow **out, size_t *n, size_t max)
{
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "SELECT " JROW_COLS " FROM journal "
				     "WHERE state = 2 OR error IS NOT NULL "
				     "ORDER BY seq DESC LIMIT ?");
	sqlite3_bind_int64(st, 1, (int64_t)max);
	while (sqlite3_step(st) == SQLITE_ROW) {
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		memset(&(*out)[*n], 0, sizeof(**out));
		jr_read_row(st, &(*out)[(*n)++]);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Messages moved here into folder ino (or below it), the first move not
 * sent yet, when the server deleted the folder: on the server they are
 * still in the folder they left (the row's arg), so they go back there,
 * their moves dropped (lock held, in a txn). */
static int moves_back(struct cache *c, uint64_t ino, struct cache_changes *ch)
{
	sqlite3_stmt *st = db_prepare(c,
		"WITH RECURSIVE sub(ino) AS (SELECT ?1 UNION ALL "
		"SELECT n.ino FROM nodes n JOIN sub ON n.parent = sub.ino) "
		"SELECT n.ino, n.name, j.arg FROM nodes n JOIN sub ON n.ino = sub.ino "
		"JOIN journal j ON j.seq = (SELECT min(seq) FROM journal WHERE "
		"ino = n.ino AND op = ?2) JOIN nodes f ON f.ino = j.arg AND "
		"f.kind = 1 AND f.server_id IS NOT NULL "
		"WHERE n.kind = 2 AND n.local = 0 AND j.state IN (0, 2) AND "
		"j.arg NOT IN sub");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int(st, 2, J_MOVE);
	struct node *v = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		v = xrealloc(v, (n + 1) * sizeof(*v));
		memset(&v[n], 0, sizeof(*v));
		v[n].ino = (uint64_t)sqlite3_column_int64(st, 0);
		v[n].name = xstrdup((const char *)sqlite3_column_text(st, 1));
		v[n++].parent = (uint64_t)sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	int rc = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		char *name = jr_free_user_name(c, v[i].parent, v[i].name);
		log_notice("'%s' was moved into a folder that was deleted on "
			   "the server before the move was sent: it stays where "
			   "it is, as '%s'", v[i].name, name);
		st = db_prepare(c, "UPDATE nodes SET parent = ?, name = ? "
				"WHERE ino = ?");
		sqlite3_bind_int64(st, 1, (int64_t)v[i].parent);
		db_bind_text(st, 2, name);
		sqlite3_bind_int64(st, 3, (int64_t)v[i].ino);
		rc = db_step_done(c, st);
		if (!rc) {
			st = db_prepare(c, "DELETE FROM journal WHERE ino = ? AND "
					"op = ?");
			sqlite3_bind_int64(st, 1, (int64_t)v[i].ino);
			sqlite3_bind_int(st, 2, J_MOVE);
			rc = db_step_done(c, st);
		}
		if (!rc)
			rc = recompute_pend(c, v[i].ino);
		if (!rc)
			rc = count_items(c, v[i].parent, 1);
		if (!rc)
			cache_change_add(ch, CC_NEW, v[i].ino, v[i].parent, name,
					 0, NULL);
		free(name);
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return rc;
}

/* Called by the sync engine (sync_apply.c) before it removes a folder the
 * server deleted. */
int jr_keep_unsent(struct cache *c, uint64_t ino, struct cache_changes *ch)
{
	int rc = moves_back(c, ino, ch);
	if (rc)
		return rc;
	sqlite3_stmt *st = db_prepare(c,
		"WITH RECURSIVE sub(ino) AS (SELECT ?1 UNION ALL "
		"SELECT n.ino FROM nodes n JOIN sub ON n.parent = sub.ino) "
		"SELECT n.ino, n.name FROM nodes n JOIN sub ON n.ino = sub.ino "
		"WHERE n.kind = 2 AND n.local = 0 AND n.content IS NOT NULL "
		"AND n.pend & ?2 != 0");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int(st, 2, (int)JP_CONTENT);
	struct node *v = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		v = xrealloc(v, (n + 1) * sizeof(*v));
		memset(&v[n], 0, sizeof(*v));
		v[n].ino = (uint64_t)sqlite3_column_int64(st, 0);
		v[n++].name = xstrdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	for (size_t i = 0; !rc && i < n; i++) {
		char *name = jr_free_user_name(c, CACHE_REJECTED_INO, v[i].name);
		log_warn("'%s' was not sent yet when its folder was deleted on "
			 "the server: kept as .exchangefs/rejected/%s",
			 v[i].name, name);
		st = db_prepare(c, "UPDATE nodes SET parent = ?, name = ?, "
				"local = 2, server_id = NULL, change_key = NULL, "
				"pend = 0, error = 'its folder was deleted on the "
				"server before it was sent' WHERE ino = ?");
		sqlite3_bind_int64(st, 1, CACHE_REJECTED_INO);
		db_bind_text(st, 2, name);
		sqlite3_bind_int64(st, 3, (int64_t)v[i].ino);
		rc = db_step_done(c, st);
		free(name);
		if (!rc) {
			/* the rows' own content files: the node keeps its own */
			char **files;
			size_t nf;
			rc = drop_rows(c, v[i].ino, &files, &nf);
			for (size_t k = 0; k < nf; k++) {
				if (!rc)
					jr_content_gc(c, files[k]);
				free(files[k]);
			}
			free(files);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return rc;
}
