/*
 * journal.c - the local side of changes made through the mount: each one
 * changes the cache and appends a journal row in ONE durable transaction
 * (see journal.h), so it survives the daemon being killed the moment the
 * file system replied.  This is the file system's side; the rows'
 * storage, recovery and the applier's queries are in journal_store.c.
 */
#include "db_internal.h"
#include "journal_internal.h"
#include "message.h"
#include "names.h"
#include "backend/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- content files ---- */

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

/* Flush the file being written for ino to disk before the cache's lock
 * is taken: every file system call waits for that lock, and a large
 * message on a slow disk takes seconds (the fsync in take_staging, under
 * the lock, then finds nothing left to write).  Errors are take_staging's
 * to report. */
static void flush_staging(struct cache *c, uint64_t ino)
{
	char *path = journal_staging_path(c, ino);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(path);
}

/* Move the file being written for ino to a new content name (owned). */
static char *take_staging(struct cache *c, uint64_t ino, int64_t *size)
{
	char *from = journal_staging_path(c, ino);
	char *rel = jr_new_content_name(ino);
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
		sqlite3_bind_int(st, 1, (int)jr_row_bits(op, arg));
		sqlite3_bind_int64(st, 2, (int64_t)ino);
		rc = db_run(c, st);
	}
	return rc;
}

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
		jr_read_row(st, out);
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

/* A file or folder going away (lock held, in a txn): one that never
 * reached the server is forgotten with everything queued for it; otherwise
 * its deletion (op, arg) is queued and it leaves the tree meanwhile. */
static int remove_node(struct cache *c, const struct node *n, enum j_op op,
		       int64_t arg)
{
	if (n->local != LOCAL_NONE || (!n->server_id && !reached_server(c, n->ino)))
		return jr_forget_node(c, n);
	int rc = insert_row(c, op, n->ino, n->parent, arg, NULL, NULL, NULL);
	return rc ? rc : to_limbo(c, n);
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
		char *token = jr_new_token();
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

static int journal_commit_content_locked(struct cache *c, uint64_t ino,
					 int64_t date, struct cache_changes *ch)
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
	rc = jr_durable_begin(c);
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
	rc = jr_durable_end(c, rc);
	if (rc) {
		give_back(c, ino, rel);
	} else {
		pthread_mutex_lock(&c->lock);
		jr_content_gc(c, n.content);
		jr_content_gc(c, old_rel);
		pthread_mutex_unlock(&c->lock);
		cache_change_add(ch, CC_ATTR, ino, n.parent, n.name, 0, NULL);
	}
	free(old_rel);
	free(rel);
	node_clear(&n);
	return rc;
}

static int journal_reject_locked(struct cache *c, uint64_t ino,
				 const char *reason, char **new_name,
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
	rc = jr_durable_begin(c);
	if (rc) {
		give_back(c, ino, rel);
		free(rel);
		node_clear(&n);
		return rc;
	}
	char *name = jr_free_user_name(c, CACHE_REJECTED_INO, n.name);
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
	rc = jr_durable_end(c, rc);
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

static int journal_unlink_locked(struct cache *c, uint64_t parent,
				 const char *name)
{
	struct node n = { 0 };
	int rc = cache_lookup(c, parent, name, &n);
	if (rc)
		return rc;
	if (n.kind != NODE_ITEM) {
		node_clear(&n);
		return -EISDIR;
	}
	rc = jr_durable_begin(c);
	if (rc) {
		node_clear(&n);
		return rc;
	}
	enum be_delete how = cache_role(c, parent) != BE_DELETED
		? BE_DEL_TO_TRASH : c->trash_delete ? (enum be_delete)c->trash_delete
						    : BE_DEL_HARD;
	rc = remove_node(c, &n, J_DELETE, how);
	rc = jr_durable_end(c, rc);
	node_clear(&n);
	return rc;
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
	jr_content_gc(c, dst->content);
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
		jr_content_gc(c, old_rel);
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
	char *name = clash ? jr_free_user_name(c, newparent, newname)
			   : xstrdup(newname);
	if (clash)
		/* the kernel moved its dentry to newname: make it look
		 * again there and at the name the message really got */
		cache_change_add(ch, CC_RENAMED, n->ino, newparent, newname,
				 newparent, name);
	bool becomes_message = n->local != LOCAL_NONE && message_file_name(name) &&
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
			rc = insert_row(c, J_MOVE, n->ino, newparent,
					(int64_t)n->parent, NULL, NULL, NULL);
		}
		jrow_clear(&last);
	}
	free(name);
	return rc;
}

static int journal_rename_locked(struct cache *c, uint64_t parent,
				 const char *name, uint64_t newparent,
				 const char *newname, unsigned flags,
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
	rc = jr_durable_begin(c);
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
	rc = jr_durable_end(c, rc);
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
	rc = jr_durable_begin(c);
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
	rc = jr_durable_end(c, rc);
	free(sname);
	if (!rc)
		rc = get_node(c, ino, out);
	return rc;
}

static int journal_rmdir_locked(struct cache *c, uint64_t parent,
				const char *name)
{
	struct node n = { 0 };
	int rc = cache_lookup(c, parent, name, &n);
	if (rc)
		return rc;
	if (n.kind != NODE_FOLDER)
		rc = -ENOTDIR;
	else if (cache_role(c, n.ino) >= 0)
		rc = -EPERM;
	if (!rc)
		rc = jr_durable_begin(c);
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
	if (!rc)
		rc = remove_node(c, &n, J_RMDIR, 0);
	rc = jr_durable_end(c, rc);
	node_clear(&n);
	return rc;
}

static int journal_set_props_locked(struct cache *c, uint64_t ino,
				    const struct be_props *p)
{
	struct node n = { 0 };
	int rc = get_node(c, ino, &n);
	if (rc)
		return rc;
	if (n.kind != NODE_ITEM || n.local != LOCAL_NONE) {
		node_clear(&n);
		return -ENOTSUP;
	}
	rc = jr_durable_begin(c);
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
	rc = jr_durable_end(c, rc);
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
	flush_staging(c, ino);
	LOCKED(journal_commit_content_locked(c, ino, date, ch));
}

int journal_reject(struct cache *c, uint64_t ino, const char *reason,
		   char **new_name, struct cache_changes *ch)
{
	flush_staging(c, ino);
	LOCKED(journal_reject_locked(c, ino, reason, new_name, ch));
}

int journal_unlink(struct cache *c, uint64_t parent, const char *name)
{
	LOCKED(journal_unlink_locked(c, parent, name));
}

int journal_rename(struct cache *c, uint64_t parent, const char *name,
		   uint64_t newparent, const char *newname, unsigned flags,
		   int64_t date, struct cache_changes *ch)
{
	LOCKED(journal_rename_locked(c, parent, name, newparent, newname, flags, date, ch));
}

int journal_rmdir(struct cache *c, uint64_t parent, const char *name)
{
	LOCKED(journal_rmdir_locked(c, parent, name));
}

int journal_set_props(struct cache *c, uint64_t ino, const struct be_props *p)
{
	LOCKED(journal_set_props_locked(c, ino, p));
}
