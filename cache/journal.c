/*
 * journal.c - the local side of changes made through the mount: each one
 * changes the cache and appends a journal row in ONE durable transaction
 * (see journal.h), so it survives the daemon being killed the moment the
 * file system replied.  Also the queries the applier (applier.c) uses to
 * take rows in order and record their outcome.
 */
#include "db_internal.h"
#include "names.h"
#include "backend/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

static bool is_create(enum j_op op)
{
	return op == J_SAVE || op == J_DRAFT || op == J_SEND;
}

/* What a row changes, as node.pend bits. */
static unsigned row_bits(enum j_op op, int64_t arg)
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

/* ---- durable transactions: FULL sync for the commit of a change ---- */

static int durable_begin(struct cache *c)
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

static int durable_end(struct cache *c, int rc)
{
	if (!rc)
		rc = db_commit(c);
	if (rc)
		db_rollback(c);
	db_exec(c, "PRAGMA synchronous = NORMAL");
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* ---- well-known folders ---- */

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

/* ---- content files ---- */

char *journal_staging_path(struct cache *c, uint64_t ino)
{
	return xasprintf("%s/local/%llu.w", c->dir, (unsigned long long)ino);
}

char *journal_content_path(struct cache *c, const char *rel)
{
	return xasprintf("%s/%s", c->dir, rel);
}

static char *new_content_name(uint64_t ino)
{
	static unsigned seq;
	return xasprintf("local/%llu.%lld%03u", (unsigned long long)ino,
			 (long long)now_ms(),
			 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) % 1000);
}

static void sync_dir(struct cache *c)
{
	char *path = xasprintf("%s/local", c->dir);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(path);
}

/* Unlink a content file nothing refers to any more (lock held). */
static void content_gc(struct cache *c, const char *rel)
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

/* Move the file being written for ino to a new content name (owned). */
static char *take_staging(struct cache *c, uint64_t ino, int64_t *size)
{
	char *from = journal_staging_path(c, ino);
	char *rel = new_content_name(ino);
	char *to = journal_content_path(c, rel);
	struct stat sb;
	int fd = open(from, O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0 && fsync(fd) == 0 && fstat(fd, &sb) == 0 &&
		  rename(from, to) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok) {
		log_err("cannot keep the content written to %s: %s", from,
			strerror(errno));
		free(rel);
		rel = NULL;
	} else {
		*size = sb.st_size;
		sync_dir(c);
	}
	free(from);
	free(to);
	return rel;
}

/* Put a taken file back after a failed transaction. */
static void give_back(struct cache *c, uint64_t ino, const char *rel)
{
	char *from = journal_content_path(c, rel);
	char *to = journal_staging_path(c, ino);
	rename(from, to);
	free(from);
	free(to);
}

/* ---- small statements (lock held) ---- */

/* name, or name (2), (3)... whichever is free under parent.  Owned. */
static char *free_user_name(struct cache *c, uint64_t parent, const char *name)
{
	for (unsigned n = 1;; n++) {
		char *s = names_suffixed(name, n);
		if (!cache_name_taken(c, parent, s))
			return s;
		free(s);
	}
}

static int insert_row(struct cache *c, enum j_op op, uint64_t ino,
		      uint64_t folder, int64_t arg, const char *name,
		      const char *content, const char *token)
{
	sqlite3_stmt *st = db_cached(c, "INSERT INTO journal(op, ino, folder, "
				     "arg, name, content, token, created) "
				     "VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
	sqlite3_bind_int(st, 1, op);
	sqlite3_bind_int64(st, 2, (int64_t)ino);
	sqlite3_bind_int64(st, 3, (int64_t)folder);
	sqlite3_bind_int64(st, 4, arg);
	db_bind_text(st, 5, name);
	db_bind_text(st, 6, content);
	db_bind_text(st, 7, token);
	sqlite3_bind_int64(st, 8, time(NULL));
	int rc = db_run(c, st);
	if (!rc) {
		st = db_cached(c, "UPDATE nodes SET pend = pend | ? WHERE ino = ?");
		sqlite3_bind_int(st, 1, (int)row_bits(op, arg));
		sqlite3_bind_int64(st, 2, (int64_t)ino);
		rc = db_run(c, st);
	}
	return rc;
}

static void read_row(sqlite3_stmt *st, struct jrow *r)
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

#define JROW_COLS "seq, op, ino, folder, arg, name, content, token, state, " \
	"attempts, next_try, created, error"

/* The newest row of ino whose op is one of ops (0-terminated) if no row of
 * ino follows it; -ENOENT otherwise. */
static int last_row_of(struct cache *c, uint64_t ino, const enum j_op *ops,
		       struct jrow *out)
{
	sqlite3_stmt *st = db_cached(c, "SELECT " JROW_COLS " FROM journal "
				     "WHERE ino = ? ORDER BY seq DESC LIMIT 1");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	int rc = -ENOENT;
	if (sqlite3_step(st) == SQLITE_ROW) {
		read_row(st, out);
		for (const enum j_op *o = ops; *o; o++)
			if (out->op == *o)
				rc = 0;
		if (rc)
			jrow_clear(out);
	}
	sqlite3_reset(st);
	return rc;
}

/* Whether any row of ino may already have reached the server. */
static bool reached_server(struct cache *c, uint64_t ino)
{
	sqlite3_stmt *st = db_cached(c, "SELECT 1 FROM journal WHERE ino = ? "
				     "AND state IN (1, 3)");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	bool r = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return r;
}

/* Remove a node and everything queued for it (lock held, in a txn). */
static int forget_node(struct cache *c, const struct node *n)
{
	sqlite3_stmt *st = db_prepare(c, "SELECT content FROM journal WHERE "
				      "ino = ? AND content IS NOT NULL");
	sqlite3_bind_int64(st, 1, (int64_t)n->ino);
	char **files = NULL;
	size_t nf = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		files = xrealloc(files, (nf + 1) * sizeof(*files));
		files[nf++] = xstrdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	st = db_cached(c, "DELETE FROM journal WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)n->ino);
	int rc = db_run(c, st);
	if (!rc) {
		st = db_cached(c, "DELETE FROM nodes WHERE ino = ?");
		sqlite3_bind_int64(st, 1, (int64_t)n->ino);
		rc = db_run(c, st);
	}
	if (!rc && n->kind == NODE_ITEM && n->local == LOCAL_NONE && n->parent)
		rc = count_items(c, n->parent, -1);
	if (!rc) {
		bodies_forget(c, n->ino);
		content_gc(c, n->content);
		for (size_t i = 0; i < nf; i++)
			content_gc(c, files[i]);
	}
	for (size_t i = 0; i < nf; i++)
		free(files[i]);
	free(files);
	return rc;
}

/* Take a node out of the tree while its deletion is queued. */
static int to_limbo(struct cache *c, const struct node *n)
{
	sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET parent = 0, name = "
				     "'#' || ino, visible = 0 WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)n->ino);
	int rc = db_run(c, st);
	if (!rc && n->kind == NODE_ITEM)
		rc = count_items(c, n->parent, -1);
	return rc;
}

static int get_node(struct cache *c, uint64_t ino, struct node *n)
{
	return cache_get(c, ino, n);
}

/* A folder files can be made in: a mail folder of the mailbox. */
static int check_folder(struct cache *c, uint64_t ino, bool allow_root)
{
	if (ino == CACHE_ROOT_INO)
		return allow_root ? 0 : -EPERM;
	if (ino == CACHE_REJECTED_INO)
		return -EPERM;
	struct node p = { 0 };
	int rc = get_node(c, ino, &p);
	if (!rc && p.kind != NODE_FOLDER)
		rc = -ENOTDIR;
	if (!rc && !p.visible)
		rc = -ENOENT;
	node_clear(&p);
	return rc;
}

static enum j_op create_op_for(struct cache *c, uint64_t folder)
{
	int role = cache_role(c, folder);
	return role == BE_OUTBOX ? J_SEND : role == BE_DRAFTS ? J_DRAFT : J_SAVE;
}

static char *new_token(void)
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

/* ---- the file system's side ---- */

int journal_new_file(struct cache *c, uint64_t parent, const char *name,
		     bool temp, struct node *out)
{
	int rc = check_folder(c, parent, temp);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->lock);
	rc = db_begin(c);
	if (!rc && cache_name_taken(c, parent, name))
		rc = -EEXIST;
	time_t now = time(NULL);
	if (!rc) {
		sqlite3_stmt *st = db_cached(c, "INSERT INTO nodes(parent, kind, "
			"name, local, body_size, size, is_read, received, sent, "
			"mtime, is_draft, flag) VALUES(?, 2, ?, ?, 0, -1, 1, ?, ?, "
			"?, ?, 0)");
		sqlite3_bind_int64(st, 1, (int64_t)parent);
		db_bind_text(st, 2, name);
		sqlite3_bind_int(st, 3, temp ? LOCAL_TEMP : LOCAL_NONE);
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_int64(st, 5, now);
		sqlite3_bind_int64(st, 6, now);
		sqlite3_bind_int(st, 7, cache_role(c, parent) == BE_DRAFTS);
		rc = db_run(c, st);
	}
	uint64_t ino = (uint64_t)sqlite3_last_insert_rowid(c->db);
	if (!rc && !temp)
		rc = count_items(c, parent, 1);
	if (!rc)
		rc = db_commit(c);
	if (rc)
		db_rollback(c);
	pthread_mutex_unlock(&c->lock);
	if (!rc)
		rc = get_node(c, ino, out);
	return rc;
}

/* Queue the upload of content rel for node n (lock held, in a txn). */
static int queue_content(struct cache *c, const struct node *n,
			 const char *rel, int64_t date, char **old_rel)
{
	static const enum j_op content_ops[] = { J_SAVE, J_DRAFT, J_SEND,
						 J_REPLACE, 0 };
	struct jrow last = { 0 };
	int rc;
	if (last_row_of(c, n->ino, content_ops, &last) == 0 &&
	    (last.state == JS_QUEUED || last.state == JS_FAILED)) {
		/* not sent yet (or refused): the new content replaces it */
		sqlite3_stmt *st = db_cached(c, "UPDATE journal SET content = ?, "
			"state = 0, error = NULL, attempts = 0, next_try = 0, "
			"arg = CASE WHEN op = 4 THEN arg ELSE ? END WHERE seq = ?");
		db_bind_text(st, 1, rel);
		sqlite3_bind_int64(st, 2, date);
		sqlite3_bind_int64(st, 3, last.seq);
		rc = db_run(c, st);
		*old_rel = last.content;
		last.content = NULL;
	} else if (!n->server_id && !reached_server(c, n->ino)) {
		char *token = new_token();
		rc = insert_row(c, create_op_for(c, n->parent), n->ino,
				n->parent, date, NULL, rel, token);
		free(token);
	} else {
		rc = insert_row(c, J_REPLACE, n->ino, n->parent, date, NULL, rel,
				NULL);
	}
	jrow_clear(&last);
	return rc;
}

/* Make rel the content of node n (lock held, in a txn). */
static int set_content(struct cache *c, const struct node *n, const char *rel,
		       int64_t size)
{
	sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET content = ?, "
				     "body_size = ?, mtime = ?, error = NULL "
				     "WHERE ino = ?");
	db_bind_text(st, 1, rel);
	sqlite3_bind_int64(st, 2, size);
	sqlite3_bind_int64(st, 3, time(NULL));
	sqlite3_bind_int64(st, 4, (int64_t)n->ino);
	return db_run(c, st);
}

static int journal_commit_content_locked(struct cache *c, uint64_t ino, int64_t date,
			   struct cache_changes *ch)
{
	struct node n = { 0 };
	int rc = get_node(c, ino, &n);
	if (rc)
		return rc;
	int64_t size = 0;
	char *rel = take_staging(c, ino, &size);
	if (!rel) {
		node_clear(&n);
		return -EIO;
	}
	char *old_rel = NULL;
	rc = durable_begin(c);
	if (rc) {
		give_back(c, ino, rel);
		free(rel);
		node_clear(&n);
		return rc;
	}
	/* the server's body no longer is the content (before set_content:
	 * forgetting a body resets the size) */
	if (n.local == LOCAL_NONE)
		bodies_forget(c, ino);
	rc = set_content(c, &n, rel, size);
	if (!rc && n.local == LOCAL_NONE)
		rc = queue_content(c, &n, rel, date, &old_rel);
	rc = durable_end(c, rc);
	if (rc) {
		give_back(c, ino, rel);
	} else {
		pthread_mutex_lock(&c->lock);
		content_gc(c, n.content);
		content_gc(c, old_rel);
		pthread_mutex_unlock(&c->lock);
		cache_change_add(ch, CC_ATTR, ino, n.parent, n.name, 0, NULL);
	}
	free(old_rel);
	free(rel);
	node_clear(&n);
	return rc;
}

static int journal_reject_locked(struct cache *c, uint64_t ino, const char *reason,
		   char **new_name, struct cache_changes *ch)
{
	struct node n = { 0 };
	int rc = get_node(c, ino, &n);
	if (rc)
		return rc;
	int64_t size = 0;
	char *rel = take_staging(c, ino, &size);
	if (!rel) {
		node_clear(&n);
		return -EIO;
	}
	rc = durable_begin(c);
	if (rc) {
		give_back(c, ino, rel);
		free(rel);
		node_clear(&n);
		return rc;
	}
	char *name = free_user_name(c, CACHE_REJECTED_INO, n.name);
	/* a new message that never was one: the node itself moves; bad
	 * content written over a message: the message keeps what it had and
	 * the bytes go to a new rejected file */
	bool fresh = !n.server_id && !n.content && n.local == LOCAL_NONE &&
		     !reached_server(c, ino);
	sqlite3_stmt *st = fresh
		? db_cached(c, "UPDATE nodes SET parent = ?1, name = ?2, "
			    "local = 2, content = ?3, body_size = ?4, error = ?5 "
			    "WHERE ino = ?6")
		: db_cached(c, "INSERT INTO nodes(parent, kind, name, local, "
			    "content, body_size, error, size, mtime) VALUES(?1, "
			    "2, ?2, 2, ?3, ?4, ?5, -1, strftime('%s'))");
	sqlite3_bind_int64(st, 1, CACHE_REJECTED_INO);
	db_bind_text(st, 2, name);
	db_bind_text(st, 3, rel);
	sqlite3_bind_int64(st, 4, size);
	db_bind_text(st, 5, reason);
	if (fresh)
		sqlite3_bind_int64(st, 6, (int64_t)ino);
	rc = db_run(c, st);
	if (!rc && fresh)
		rc = count_items(c, n.parent, -1);
	cache_change_add(ch, fresh ? CC_GONE : CC_ATTR, ino, n.parent, n.name,
			 0, NULL);
	rc = durable_end(c, rc);
	if (rc) {
		give_back(c, ino, rel);
		free(name);
	} else {
		*new_name = name;
	}
	free(rel);
	node_clear(&n);
	return rc;
}

static int journal_unlink_locked(struct cache *c, uint64_t parent, const char *name,
		   struct cache_changes *ch)
{
	(void)ch;
	struct node n = { 0 };
	int rc = cache_lookup(c, parent, name, &n);
	if (rc)
		return rc;
	if (n.kind != NODE_ITEM) {
		node_clear(&n);
		return -EISDIR;
	}
	rc = durable_begin(c);
	if (rc) {
		node_clear(&n);
		return rc;
	}
	if (n.local != LOCAL_NONE || (!n.server_id && !reached_server(c, n.ino))) {
		/* never reached the server: cancel what is queued */
		rc = forget_node(c, &n);
	} else {
		enum be_delete how = cache_role(c, parent) != BE_DELETED
			? BE_DEL_TO_TRASH : c->trash_delete ? (enum be_delete)c->trash_delete
							    : BE_DEL_HARD;
		rc = insert_row(c, J_DELETE, n.ino, parent, how, NULL, NULL, NULL);
		if (!rc)
			rc = to_limbo(c, &n);
	}
	rc = durable_end(c, rc);
	node_clear(&n);
	return rc;
}

static bool eml_name(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && n > 4 && !strcasecmp(name + n - 4, ".eml");
}

/* Move node n to (newparent, newname) in the cache (lock held, txn). */
static int place(struct cache *c, const struct node *n, uint64_t newparent,
		 const char *newname)
{
	sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET parent = ?, name = ? "
				     "WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)newparent);
	db_bind_text(st, 2, newname);
	sqlite3_bind_int64(st, 3, (int64_t)n->ino);
	int rc = db_run(c, st);
	if (!rc && n->kind == NODE_ITEM && n->local == LOCAL_NONE &&
	    newparent != n->parent) {
		rc = count_items(c, n->parent, -1);
		if (!rc)
			rc = count_items(c, newparent, 1);
	}
	return rc;
}

static int rename_folder(struct cache *c, const struct node *n,
			 uint64_t newparent, const char *newname)
{
	if (cache_role(c, n->ino) >= 0)
		return -EPERM;
	int rc = place(c, n, newparent, newname);
	char *sname = names_folder_to_server(newname);
	if (!rc) {
		sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET server_name = ? "
					     "WHERE ino = ?");
		db_bind_text(st, 1, sname);
		sqlite3_bind_int64(st, 2, (int64_t)n->ino);
		rc = db_run(c, st);
	}
	static const enum j_op mk[] = { J_MKDIR, 0 };
	struct jrow last = { 0 };
	bool queued_mkdir = last_row_of(c, n->ino, mk, &last) == 0 &&
			    last.state == JS_QUEUED;
	jrow_clear(&last);
	if (!rc && !queued_mkdir) {
		/* a folder still to be made takes its place and name when it
		 * is made; one on the server moves and/or is renamed */
		if (newparent != n->parent)
			rc = insert_row(c, J_MOVE_DIR, n->ino, newparent, 0, NULL,
					NULL, NULL);
		if (!rc && strcmp(sname, n->server_name ? n->server_name : ""))
			rc = insert_row(c, J_RENAME_DIR, n->ino, 0, 0, sname,
					NULL, NULL);
	}
	free(sname);
	return rc;
}

/* An editor's write-temp-then-rename: local file src replaces dst.  Like a
 * local file system, the node that survives is src's (the kernel now has
 * src's inode at that name); it takes over dst's identity (server id,
 * properties, queued changes) and its content is queued as dst's new
 * content (lock held, in a txn). */
static int content_over(struct cache *c, const struct node *src,
			const struct node *dst, int64_t date)
{
	if (dst->local == LOCAL_NONE && dst->server_id &&
	    cache_role(c, dst->parent) != BE_DRAFTS)
		return -EPERM;  /* messages outside Drafts are read-only */
	if (dst->local == LOCAL_NONE && (date < 0 || !src->content))
		return -EINVAL;
	static const char *const sql[] = {
		"CREATE TEMP TABLE IF NOT EXISTS hold AS SELECT * FROM nodes "
		"WHERE 0",
		"DELETE FROM hold",
		"INSERT INTO hold SELECT * FROM nodes WHERE ino = ?2",
		"DELETE FROM nodes WHERE ino = ?2",
		"UPDATE nodes SET (parent, name, server_id, change_key, subject, "
		"sender, item_class, message_id, received, sent, size, is_read, "
		"has_attach, flag, categories, is_draft, pend, local, error, "
		"seen_gen) = (SELECT parent, name, server_id, change_key, subject, "
		"sender, item_class, message_id, received, sent, size, is_read, "
		"has_attach, flag, categories, is_draft, pend, local, error, "
		"seen_gen FROM hold), mtime = strftime('%s') WHERE ino = ?1",
		"UPDATE journal SET ino = ?1 WHERE ino = ?2",
		"UPDATE nodes SET body_size = ?3 WHERE ino = ?1",
	};
	bodies_forget(c, dst->ino);
	bodies_forget(c, src->ino);
	int rc = 0;
	for (size_t i = 0; !rc && i < sizeof(sql) / sizeof(sql[0]); i++) {
		sqlite3_stmt *st = db_prepare(c, sql[i]);
		if (sqlite3_bind_parameter_count(st) >= 1)
			sqlite3_bind_int64(st, 1, (int64_t)src->ino);
		if (sqlite3_bind_parameter_count(st) >= 2)
			sqlite3_bind_int64(st, 2, (int64_t)dst->ino);
		if (sqlite3_bind_parameter_count(st) >= 3)
			sqlite3_bind_int64(st, 3, src->body_size > 0 ? src->body_size : 0);
		rc = db_step_done(c, st);
	}
	if (rc)
		return rc;
	content_gc(c, dst->content);
	/* the message count: dst's place stays counted; src's own goes */
	if (src->local == LOCAL_NONE && dst->local == LOCAL_NONE)
		rc = count_items(c, src->parent, -1);
	else if (src->local == LOCAL_NONE)
		rc = count_items(c, src->parent, -1);
	else if (dst->local == LOCAL_NONE)
		rc = 0;
	if (!rc && dst->local == LOCAL_NONE) {
		struct node m = *dst;
		m.ino = src->ino;
		char *old_rel = NULL;
		rc = queue_content(c, &m, src->content, date, &old_rel);
		content_gc(c, old_rel);
		free(old_rel);
	}
	return rc;
}

static int rename_item(struct cache *c, const struct node *n,
		       uint64_t newparent, const char *newname, unsigned flags,
		       int64_t date, struct cache_changes *ch)
{
	struct node dst = { 0 };
	int rc;
	bool clash = cache_lookup(c, newparent, newname, &dst) == 0;
	if (clash && dst.ino == n->ino) {
		node_clear(&dst);
		return 0;
	}
	if (clash) {
		if (dst.kind == NODE_FOLDER)
			rc = -EISDIR;
		else if (flags & RENAME_NOREPLACE_FLAG)
			rc = -EEXIST;
		else if (n->local != LOCAL_NONE || (!n->server_id &&
			 !reached_server(c, n->ino)))
			/* an editor's write-temp-then-rename */
			rc = content_over(c, n, &dst, date);
		else
			rc = 1;  /* a message onto a name in use: suffix */
		node_clear(&dst);
		if (rc <= 0)
			return rc;
	}
	char *name = clash ? free_user_name(c, newparent, newname)
			   : xstrdup(newname);
	if (clash)
		/* the kernel moved its dentry to newname: make it look
		 * again there and at the name the message really got */
		cache_change_add(ch, CC_RENAMED, n->ino, newparent, newname,
				 newparent, name);
	bool becomes_message = n->local != LOCAL_NONE && eml_name(name) &&
			       newparent != CACHE_REJECTED_INO;
	if (becomes_message && check_folder(c, newparent, false)) {
		free(name);
		return -EPERM;
	}
	if (becomes_message && n->content && date < 0) {
		free(name);
		return -EINVAL;
	}
	rc = place(c, n, newparent, name);
	if (!rc && becomes_message) {
		/* a local file named as a message (or taken out of
		 * rejected/): upload it */
		sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET local = 0, "
					     "error = NULL WHERE ino = ?");
		sqlite3_bind_int64(st, 1, (int64_t)n->ino);
		rc = db_run(c, st);
		if (!rc && n->parent != newparent)
			rc = count_items(c, newparent, 1);
		else if (!rc)
			rc = count_items(c, newparent, 1);
		struct node m = *n;
		m.parent = newparent;
		char *old_rel = NULL;
		if (!rc && n->content)
			rc = queue_content(c, &m, n->content, date, &old_rel);
		free(old_rel);
	} else if (!rc && n->local == LOCAL_NONE && newparent != n->parent) {
		static const enum j_op creates[] = { J_SAVE, J_DRAFT, J_SEND, 0 };
		struct jrow last = { 0 };
		if (!n->server_id && last_row_of(c, n->ino, creates, &last) == 0 &&
		    (last.state == JS_QUEUED || last.state == JS_FAILED)) {
			/* not created yet: create it where it is now */
			sqlite3_stmt *st = db_cached(c, "UPDATE journal SET "
						     "folder = ?, op = ? WHERE seq = ?");
			sqlite3_bind_int64(st, 1, (int64_t)newparent);
			sqlite3_bind_int(st, 2, create_op_for(c, newparent));
			sqlite3_bind_int64(st, 3, last.seq);
			rc = db_run(c, st);
		} else {
			rc = insert_row(c, J_MOVE, n->ino, newparent, 0, NULL,
					NULL, NULL);
		}
		jrow_clear(&last);
	}
	free(name);
	return rc;
}

static int journal_rename_locked(struct cache *c, uint64_t parent, const char *name,
		   uint64_t newparent, const char *newname, unsigned flags,
		   int64_t date, struct cache_changes *ch)
{
	if (flags & RENAME_EXCHANGE_FLAG)
		return -EINVAL;
	struct node n = { 0 };
	int rc = cache_lookup(c, parent, name, &n);
	if (rc)
		return rc;
	if (newparent == CACHE_REJECTED_INO && parent != CACHE_REJECTED_INO)
		rc = -EPERM;
	else if (newparent != parent)
		rc = check_folder(c, newparent, n.kind == NODE_FOLDER ||
				  n.local == LOCAL_TEMP);
	if (rc) {
		node_clear(&n);
		return rc;
	}
	rc = durable_begin(c);
	if (rc) {
		node_clear(&n);
		return rc;
	}
	if (n.kind == NODE_FOLDER) {
		struct node dst = { 0 };
		if (cache_lookup(c, newparent, newname, &dst) == 0)
			rc = dst.ino == n.ino ? 0 : -EEXIST;
		else
			rc = rename_folder(c, &n, newparent, newname);
		node_clear(&dst);
	} else {
		rc = rename_item(c, &n, newparent, newname, flags, date, ch);
	}
	rc = durable_end(c, rc);
	node_clear(&n);
	return rc;
}

int journal_mkdir(struct cache *c, uint64_t parent, const char *name,
		  struct node *out)
{
	int rc = check_folder(c, parent, true);
	if (rc)
		return rc;
	char *sname = names_folder_to_server(name);
	rc = durable_begin(c);
	if (rc) {
		free(sname);
		return rc;
	}
	if (cache_name_taken(c, parent, name))
		rc = -EEXIST;
	if (!rc) {
		sqlite3_stmt *st = db_cached(c, "INSERT INTO nodes(parent, kind, "
			"name, server_name, folder_class, visible, synced, mtime) "
			"VALUES(?, 1, ?, ?, 'IPF.Note', 1, 1, ?)");
		sqlite3_bind_int64(st, 1, (int64_t)parent);
		db_bind_text(st, 2, name);
		db_bind_text(st, 3, sname);
		sqlite3_bind_int64(st, 4, time(NULL));
		rc = db_run(c, st);
	}
	uint64_t ino = (uint64_t)sqlite3_last_insert_rowid(c->db);
	if (!rc)
		rc = insert_row(c, J_MKDIR, ino, parent, 0, sname, NULL, NULL);
	rc = durable_end(c, rc);
	free(sname);
	if (!rc)
		rc = get_node(c, ino, out);
	return rc;
}

static int journal_rmdir_locked(struct cache *c, uint64_t parent, const char *name,
		  struct cache_changes *ch)
{
	(void)ch;
	struct node n = { 0 };
	int rc = cache_lookup(c, parent, name, &n);
	if (rc)
		return rc;
	if (n.kind != NODE_FOLDER)
		rc = -ENOTDIR;
	else if (cache_role(c, n.ino) >= 0)
		rc = -EPERM;
	if (!rc)
		rc = durable_begin(c);
	if (rc) {
		node_clear(&n);
		return rc;
	}
	sqlite3_stmt *st = db_cached(c, "SELECT 1 FROM nodes WHERE parent = ? "
				     "LIMIT 1");
	sqlite3_bind_int64(st, 1, (int64_t)n.ino);
	if (sqlite3_step(st) == SQLITE_ROW)
		rc = -ENOTEMPTY;
	sqlite3_reset(st);
	if (!rc && !n.server_id && !reached_server(c, n.ino)) {
		rc = forget_node(c, &n);
	} else if (!rc) {
		rc = insert_row(c, J_RMDIR, n.ino, parent, 0, NULL, NULL, NULL);
		if (!rc)
			rc = to_limbo(c, &n);
	}
	rc = durable_end(c, rc);
	node_clear(&n);
	return rc;
}

static int journal_set_props_locked(struct cache *c, uint64_t ino, const struct be_props *p)
{
	struct node n = { 0 };
	int rc = get_node(c, ino, &n);
	if (rc)
		return rc;
	if (n.kind != NODE_ITEM || n.local != LOCAL_NONE) {
		node_clear(&n);
		return -ENOTSUP;
	}
	rc = durable_begin(c);
	if (rc) {
		node_clear(&n);
		return rc;
	}
	sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET "
		"is_read = CASE WHEN ?1 & 1 THEN ?2 ELSE is_read END, "
		"flag = CASE WHEN ?1 & 2 THEN ?3 ELSE flag END, "
		"categories = CASE WHEN ?1 & 4 THEN ?4 ELSE categories END "
		"WHERE ino = ?5");
	unsigned bits = (p->mask & BE_PROP_READ ? JP_READ : 0) |
			(p->mask & BE_PROP_FLAG ? JP_FLAG : 0) |
			(p->mask & BE_PROP_CATEGORIES ? JP_CATS : 0);
	sqlite3_bind_int(st, 1, (int)bits);
	sqlite3_bind_int(st, 2, p->read);
	sqlite3_bind_int(st, 3, p->flag);
	db_bind_text(st, 4, p->categories ? p->categories : "");
	sqlite3_bind_int64(st, 5, (int64_t)ino);
	rc = db_run(c, st);
	static const enum j_op props[] = { J_PROPS, 0 };
	struct jrow last = { 0 };
	if (!rc && last_row_of(c, ino, props, &last) == 0 &&
	    last.state == JS_QUEUED) {
		/* the applier reads the values when it sends: merge */
		st = db_cached(c, "UPDATE journal SET arg = arg | ? WHERE seq = ?");
		sqlite3_bind_int(st, 1, (int)bits);
		sqlite3_bind_int64(st, 2, last.seq);
		rc = db_run(c, st);
		if (!rc) {
			st = db_cached(c, "UPDATE nodes SET pend = pend | ? WHERE "
				       "ino = ?");
			sqlite3_bind_int(st, 1, (int)bits);
			sqlite3_bind_int64(st, 2, (int64_t)ino);
			rc = db_run(c, st);
		}
	} else if (!rc) {
		rc = insert_row(c, J_PROPS, ino, 0, bits, NULL, NULL, NULL);
	}
	jrow_clear(&last);
	rc = durable_end(c, rc);
	node_clear(&n);
	return rc;
}

/* The file system's calls read the node and change it under one hold of
 * the cache's lock: the applier records a new server id under the same
 * lock, so a decision ("never reached the server: just forget it") is
 * never taken on a stale read. */
#define LOCKED(call) do { \
	pthread_mutex_lock(&c->lock); \
	int rc_ = call; \
	pthread_mutex_unlock(&c->lock); \
	return rc_; \
} while (0)

int journal_commit_content(struct cache *c, uint64_t ino, int64_t date,
			   struct cache_changes *ch)
{
	LOCKED(journal_commit_content_locked(c, ino, date, ch));
}

int journal_reject(struct cache *c, uint64_t ino, const char *reason,
		   char **new_name, struct cache_changes *ch)
{
	LOCKED(journal_reject_locked(c, ino, reason, new_name, ch));
}

int journal_unlink(struct cache *c, uint64_t parent, const char *name,
		   struct cache_changes *ch)
{
	LOCKED(journal_unlink_locked(c, parent, name, ch));
}

int journal_rename(struct cache *c, uint64_t parent, const char *name,
		   uint64_t newparent, const char *newname, unsigned flags,
		   int64_t date, struct cache_changes *ch)
{
	LOCKED(journal_rename_locked(c, parent, name, newparent, newname, flags, date, ch));
}

int journal_rmdir(struct cache *c, uint64_t parent, const char *name,
		  struct cache_changes *ch)
{
	LOCKED(journal_rmdir_locked(c, parent, name, ch));
}

int journal_set_props(struct cache *c, uint64_t ino, const struct be_props *p)
{
	LOCKED(journal_set_props_locked(c, ino, p));
}

int journal_recover(struct cache *c)
{
	char *dir = xasprintf("%s/local", c->dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_err("cannot create %s: %s", dir, strerror(errno));
		free(dir);
		return -EIO;
	}
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
			char *rel = has ? new_content_name(ino) : NULL;
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
				char *nn = free_user_name(c, CACHE_REJECTED_INO, name);
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
	/* files nothing refers to: staging leftovers, superseded versions */
	DIR *d = opendir(dir);
	struct dirent *de;
	while (!rc && d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *rel = xasprintf("local/%s", de->d_name);
		content_gc(c, rel);
		free(rel);
	}
	if (d)
		closedir(d);
	pthread_mutex_unlock(&c->lock);
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
		read_row(st, out);
		rc = 0;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int journal_take(struct cache *c, struct jrow *row)
{
	int rc = durable_begin(c);
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
		read_row(st, row);
	} else if (!rc) {
		rc = -ENOENT;
	}
	sqlite3_reset(st);
	return durable_end(c, rc);
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
	int rc = durable_begin(c);
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
	return durable_end(c, rc);
}

/* Recompute node.pend from the rows left (lock held). */
static int recompute_pend(struct cache *c, uint64_t ino)
{
	sqlite3_stmt *st = db_cached(c, "SELECT op, arg FROM journal WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	unsigned bits = 0;
	while (sqlite3_step(st) == SQLITE_ROW)
		bits |= row_bits((enum j_op)sqlite3_column_int(st, 0),
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
	int rc = durable_begin(c);
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
		rc = forget_node(c, &n);
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
				rc = forget_node(c, &other);
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
		if (!rc && (is_create(r->op) || r->op == J_REPLACE)) {
			/* the server's size of this content is not known
			 * yet: the next sync records it without dropping the
			 * content as changed */
			st = db_cached(c, "UPDATE nodes SET size = -1 WHERE ino = ?");
			sqlite3_bind_int64(st, 1, (int64_t)r->ino);
			rc = db_run(c, st);
		}
	}
	if (!rc)
		content_gc(c, r->content);
	node_clear(&n);
	return durable_end(c, rc);
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
	int rc = durable_begin(c);
	if (rc)
		return rc;
	char *token = new_token();
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
	return durable_end(c, rc);
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
		read_row(st, &(*out)[(*n)++]);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return 0;
}
