/*
 * db.c - the SQLite database of the cache: opening it safely (0700
 * directory, 0600 files, WAL), the versioned schema and its migrations,
 * and the read queries the file system uses.
 */
#include "db_internal.h"
#include "backend/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each entry moves the schema from version i to i+1.  Never edit a shipped
 * entry; append a new one. */
static const char *const migrations[] = {
	/* 0 -> 1: the first schema */
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
	"CREATE TABLE nodes("
	"  ino INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  parent INTEGER NOT NULL,"
	"  kind INTEGER NOT NULL,"
	"  name TEXT NOT NULL,"
	"  server_id TEXT,"
	"  change_key TEXT,"
	"  parent_sid TEXT,"          /* folders: parent's server id */
	"  server_name TEXT,"
	"  folder_class TEXT,"
	"  visible INTEGER NOT NULL DEFAULT 1,"
	"  synced INTEGER NOT NULL DEFAULT 0,"
	"  sync_state TEXT,"
	"  resync_gen INTEGER NOT NULL DEFAULT 0,"
	"  resyncing INTEGER NOT NULL DEFAULT 0,"
	"  total INTEGER NOT NULL DEFAULT -1,"
	"  unread INTEGER NOT NULL DEFAULT -1,"
	"  subject TEXT, sender TEXT, item_class TEXT, message_id TEXT,"
	"  received INTEGER NOT NULL DEFAULT 0,"
	"  sent INTEGER NOT NULL DEFAULT 0,"
	"  size INTEGER NOT NULL DEFAULT -1,"
	"  body_size INTEGER NOT NULL DEFAULT -1,"
	"  is_read INTEGER NOT NULL DEFAULT -1,"
	"  has_attach INTEGER NOT NULL DEFAULT -1,"
	"  seen_gen INTEGER NOT NULL DEFAULT 0,"
	"  mtime INTEGER NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX nodes_name ON nodes(parent, name);"
	"CREATE UNIQUE INDEX nodes_sid ON nodes(kind, server_id);"
	"CREATE TABLE bodies(ino INTEGER PRIMARY KEY, size INTEGER NOT NULL,"
	"  atime INTEGER NOT NULL);"
	"CREATE INDEX bodies_atime ON bodies(atime);"
	"INSERT INTO nodes(ino, parent, kind, name, synced) VALUES(1, 0, 1, '', 1);"
	"UPDATE sqlite_sequence SET seq = 999 WHERE name = 'nodes';",
	/* 1 -> 2: listing a folder in inode order without sorting it */
	"CREATE INDEX nodes_parent ON nodes(parent);",
	/* 2 -> 3: messages per folder kept with the folder (status is read
	 * often; counting a 50,000-message folder each time is not cheap) */
	"ALTER TABLE nodes ADD COLUMN n_items INTEGER NOT NULL DEFAULT 0;"
	"UPDATE nodes SET n_items = (SELECT count(*) FROM nodes i WHERE "
	"  i.parent = nodes.ino AND i.kind = 2) WHERE kind = 1;",
	/* 3 -> 4: write-back.  Items gain their flag, categories and draft
	 * state; nodes gain the local side of changes (content written here
	 * and not yet on the server, pending journal bits, local-only kinds,
	 * the last failure) and the journal of changes to send. */
	"ALTER TABLE nodes ADD COLUMN flag INTEGER NOT NULL DEFAULT -1;"
	"ALTER TABLE nodes ADD COLUMN categories TEXT;"
	"ALTER TABLE nodes ADD COLUMN is_draft INTEGER NOT NULL DEFAULT -1;"
	"ALTER TABLE nodes ADD COLUMN content TEXT;"
	"ALTER TABLE nodes ADD COLUMN pend INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE nodes ADD COLUMN local INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE nodes ADD COLUMN error TEXT;"
	"CREATE TABLE journal("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  op INTEGER NOT NULL,"
	"  ino INTEGER NOT NULL,"
	"  folder INTEGER NOT NULL DEFAULT 0,"
	"  arg INTEGER NOT NULL DEFAULT 0,"
	"  name TEXT, content TEXT, token TEXT,"
	"  state INTEGER NOT NULL DEFAULT 0,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_try INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL,"
	"  error TEXT);"
	"CREATE INDEX journal_ino ON journal(ino);",
};

void node_clear(struct node *n)
{
	free(n->name);
	free(n->server_id);
	free(n->change_key);
	free(n->server_name);
	free(n->folder_class);
	free(n->subject);
	free(n->sender);
	free(n->item_class);
	free(n->message_id);
	free(n->categories);
	free(n->content);
	free(n->error);
	memset(n, 0, sizeof(*n));
}

static char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? xstrdup((const char *)t) : NULL;
}

void node_from_row(sqlite3_stmt *st, struct node *n)
{
	n->ino = (uint64_t)sqlite3_column_int64(st, 0);
	n->parent = (uint64_t)sqlite3_column_int64(st, 1);
	n->kind = (enum node_kind)sqlite3_column_int(st, 2);
	n->name = col_text(st, 3);
	n->server_id = col_text(st, 4);
	n->change_key = col_text(st, 5);
	n->server_name = col_text(st, 6);
	n->folder_class = col_text(st, 7);
	n->visible = sqlite3_column_int(st, 8) != 0;
	n->synced = sqlite3_column_int(st, 9) != 0;
	n->total = sqlite3_column_int64(st, 10);
	n->unread = sqlite3_column_int64(st, 11);
	n->subject = col_text(st, 12);
	n->sender = col_text(st, 13);
	n->item_class = col_text(st, 14);
	n->message_id = col_text(st, 15);
	n->received = sqlite3_column_int64(st, 16);
	n->sent = sqlite3_column_int64(st, 17);
	n->size = sqlite3_column_int64(st, 18);
	n->body_size = sqlite3_column_int64(st, 19);
	n->is_read = sqlite3_column_int(st, 20);
	n->has_attachments = sqlite3_column_int(st, 21);
	n->mtime = sqlite3_column_int64(st, 22);
	n->flag = sqlite3_column_int(st, 23);
	n->categories = col_text(st, 24);
	n->is_draft = sqlite3_column_int(st, 25);
	n->content = col_text(st, 26);
	n->pend = (unsigned)sqlite3_column_int(st, 27);
	n->local = sqlite3_column_int(st, 28);
	n->error = col_text(st, 29);
}

int db_exec(struct cache *c, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(c->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_err("cache database: %s", err ? err : "unknown error");
		sqlite3_free(err);
		return -EIO;
	}
	return 0;
}

sqlite3_stmt *db_prepare(struct cache *c, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		/* a bug in our SQL, not a runtime condition */
		log_err("cache database: cannot prepare query: %s",
			sqlite3_errmsg(c->db));
		abort();
	}
	return st;
}

sqlite3_stmt *db_cached(struct cache *c, const char *sql)
{
	/* keyed by the address of the SQL literal: each call site has one */
	size_t i;
	for (i = 0; i < c->n_cached; i++)
		if (c->cached[i].sql == sql)
			return c->cached[i].st;
	if (c->n_cached == sizeof(c->cached) / sizeof(c->cached[0])) {
		log_err("cache database: too many cached statements");
		abort();
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
			       NULL) != SQLITE_OK) {
		log_err("cache database: cannot prepare query: %s",
			sqlite3_errmsg(c->db));
		abort();
	}
	c->cached[c->n_cached].sql = sql;
	c->cached[c->n_cached++].st = st;
	return st;
}

int db_run(struct cache *c, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_err("cache database: %s", sqlite3_errmsg(c->db));
		ret = rc == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

int db_step_done(struct cache *c, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_err("cache database: %s", sqlite3_errmsg(c->db));
		sqlite3_finalize(st);
		return rc == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
	}
	sqlite3_finalize(st);
	return 0;
}

int db_begin(struct cache *c)
{
	return db_exec(c, "BEGIN IMMEDIATE");
}

int db_commit(struct cache *c)
{
	return db_exec(c, "COMMIT");
}

void db_rollback(struct cache *c)
{
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

void db_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* mkdir -p with mode 0700 for every directory we create; the last one is
 * forced to 0700 even if it existed. */
int cache_make_dir(const char *path, char *err, size_t errlen)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", p,
				 strerror(errno));
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", path,
			 strerror(errno));
		return -1;
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", path);
		return -1;
	}
	if ((st.st_mode & 077) && chmod(path, 0700) < 0) {
		snprintf(err, errlen, "cannot make %s private: %s", path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int migrate(struct cache *c, char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prepare(c, "PRAGMA user_version");
	int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	int latest = (int)(sizeof(migrations) / sizeof(migrations[0]));
	if (version > latest) {
		snprintf(err, errlen, "cache was written by a newer exchangefs "
			 "(schema %d, this one knows %d): use another --cache-dir",
			 version, latest);
		return -1;
	}
	for (int v = version; v < latest; v++) {
		char pragma[64];
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if (db_begin(c) || db_exec(c, migrations[v]) ||
		    db_exec(c, pragma) || db_commit(c)) {
			db_rollback(c);
			snprintf(err, errlen, "cannot upgrade cache schema to %d",
				 v + 1);
			return -1;
		}
		log_dbg(LC_CACHE, "cache schema upgraded to version %d", v + 1);
	}
	/* a new database: what local/ holds (nothing, unless a database was
	 * lost) is adopted, not collected, by journal_recover() */
	if (version == 0 && cache_meta_set(c, "adopt-local", "1")) {
		snprintf(err, errlen, "cannot write to the new cache database");
		return -1;
	}
	return 0;
}

/* A damaged database (emptied pages, random bytes, a truncated file) is
 * found here, before anything reads it (a query that cannot be prepared
 * aborts: db_prepare), and refused with one line saying what to do: it
 * holds the journal of changes not yet sent, so it is not thrown away
 * without the user's word.  quick_check reads every page once (60 ms for
 * 100,000 messages).  An empty file is a new database. */
static int check_usable(struct cache *c, const char *path, char *err,
			size_t errlen)
{
	char *msg = NULL;
	sqlite3_stmt *st = NULL;
	const char *why = NULL;
	int rc = sqlite3_exec(c->db, "PRAGMA journal_mode = WAL", NULL, NULL,
			      &msg);
	if (rc == SQLITE_OK && sqlite3_prepare_v2(c->db, "PRAGMA quick_check(1)",
						  -1, &st, NULL) == SQLITE_OK) {
		rc = sqlite3_step(st);
		const char *v = rc == SQLITE_ROW
			? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (rc == SQLITE_ROW && v && !strcmp(v, "ok"))
			rc = SQLITE_OK;
		else if (rc == SQLITE_ROW)
			why = v ? v : "integrity check failed";
	} else if (rc == SQLITE_OK) {
		rc = sqlite3_errcode(c->db);
	}
	if (rc == SQLITE_OK) {
		sqlite3_finalize(st);
		return 0;
	}
	if (!why)
		why = msg ? msg : sqlite3_errmsg(c->db);
	if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB || rc == SQLITE_ROW)
		snprintf(err, errlen, "cache %s is damaged (%.200s): move it away "
			 "(mv %s %s.damaged) and the next mount starts again "
			 "from the server; changes in it not yet sent are lost",
			 path, why, path, path);
	else
		snprintf(err, errlen, "cannot use cache %s: %.200s", path, why);
	sqlite3_finalize(st);
	sqlite3_free(msg);
	return -1;
}

/* What the cache directory holds is the user's mail and keys: files 0600,
 * directories 0700, whatever a copy, an editor or an older version left
 * (one level down: bodies/ and local/ are made by us, 0600 each). */
static void make_private_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st,
						   AT_SYMLINK_NOFOLLOW))
			continue;
		mode_t want = S_ISDIR(st.st_mode) ? 0700 : 0600;
		if ((S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) &&
		    (st.st_mode & 0777) != want &&
		    fchmodat(dirfd(d), e->d_name, want, 0) == 0)
			log_warn("%s/%s was mode %03o: made %03o (the cache is "
				 "private)", dir, e->d_name,
				 (unsigned)(st.st_mode & 0777), (unsigned)want);
	}
	if (d)
		closedir(d);
}

struct cache *cache_open(const char *dir, char *err, size_t errlen)
{
	if (cache_make_dir(dir, err, errlen))
		return NULL;
	make_private_files(dir);
	char *path = xasprintf("%s/cache.db", dir);
	/* create the file ourselves so it is 0600 whatever the umask; SQLite
	 * gives the -wal and -shm files the database file's mode */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		free(path);
		return NULL;
	}
	fchmod(fd, 0600);
	close(fd);

	struct cache *c = xcalloc(1, sizeof(*c));
	c->dir = xstrdup(dir);
	c->bodies_fd = -1;
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&c->lock, &attr);
	pthread_mutexattr_destroy(&attr);

	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open cache %s: %s", path,
			 c->db ? sqlite3_errmsg(c->db) : "out of memory");
		free(path);
		cache_close(c);
		return NULL;
	}
	sqlite3_busy_timeout(c->db, 10000);
	sqlite3_extended_result_codes(c->db, 0);
	if (check_usable(c, path, err, errlen)) {
		free(path);
		cache_close(c);
		return NULL;
	}
	free(path);
	if (db_exec(c, "PRAGMA journal_mode = WAL") ||
	    db_exec(c, "PRAGMA synchronous = NORMAL") ||
	    db_exec(c, "PRAGMA foreign_keys = OFF") ||
	    db_exec(c, "PRAGMA temp_store = MEMORY") ||
	    /* 16 MB of page cache: the server-id index takes random inserts
	     * and outgrows SQLite's default 2 MB near 20,000 messages */
	    db_exec(c, "PRAGMA cache_size = -16384")) {
		snprintf(err, errlen, "cache %s/cache.db is not a usable SQLite "
			 "database", dir);
		cache_close(c);
		return NULL;
	}
	if (migrate(c, err, errlen) || bodies_init(c)) {
		if (!*err)
			snprintf(err, errlen, "cannot set up body store in %s", dir);
		cache_close(c);
		return NULL;
	}
	c->st_lookup = db_prepare(c, "SELECT " NODE_COLS " FROM nodes "
				  "WHERE parent = ? AND name = ?");
	c->st_get = db_prepare(c, "SELECT " NODE_COLS " FROM nodes WHERE ino = ?");
	c->st_list = db_prepare(c, "SELECT " NODE_COLS " FROM nodes "
				"WHERE parent = ? AND ino > ? AND visible = 1 "
				"ORDER BY ino");
	c->st_by_sid = db_prepare(c, "SELECT " NODE_COLS " FROM nodes "
				  "WHERE kind = ? AND server_id = ?");
	return c;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	sqlite3_finalize(c->st_lookup);
	sqlite3_finalize(c->st_get);
	sqlite3_finalize(c->st_list);
	sqlite3_finalize(c->st_by_sid);
	for (size_t i = 0; i < c->n_cached; i++)
		sqlite3_finalize(c->cached[i].st);
	if (c->db)
		sqlite3_close(c->db);
	if (c->bodies_fd >= 0)
		close(c->bodies_fd);
	cache_hints_free(c);
	cache_moves_free(c);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

const char *cache_dir(struct cache *c)
{
	return c->dir;
}

char *cache_meta_get(struct cache *c, const char *key)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_prepare(c, "SELECT value FROM meta WHERE key = ?");
	db_bind_text(st, 1, key);
	char *v = sqlite3_step(st) == SQLITE_ROW ? col_text(st, 0) : NULL;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&c->lock);
	return v;
}

int cache_meta_set(struct cache *c, const char *key, const char *value)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_prepare(c, "INSERT OR REPLACE INTO meta(key, value) "
				      "VALUES(?, ?)");
	db_bind_text(st, 1, key);
	db_bind_text(st, 2, value);
	int rc = db_step_done(c, st);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Step a cached statement expecting at most one row. */
static int one_node(struct cache *c, sqlite3_stmt *st, struct node *out)
{
	int rc = sqlite3_step(st);
	int ret;
	if (rc == SQLITE_ROW) {
		node_from_row(st, out);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		log_err("cache database: %s", sqlite3_errmsg(c->db));
		ret = -EIO;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

int cache_lookup(struct cache *c, uint64_t parent, const char *name,
		 struct node *out)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int64(c->st_lookup, 1, (int64_t)parent);
	sqlite3_bind_text(c->st_lookup, 2, name, -1, SQLITE_STATIC);
	int rc = one_node(c, c->st_lookup, out);
	if (rc == 0 && !out->visible) {
		node_clear(out);
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cache_get(struct cache *c, uint64_t ino, struct node *out)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int64(c->st_get, 1, (int64_t)ino);
	int rc = one_node(c, c->st_get, out);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cache_by_server_id(struct cache *c, enum node_kind kind, const char *sid,
		       struct node *out)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int(c->st_by_sid, 1, kind);
	sqlite3_bind_text(c->st_by_sid, 2, sid, -1, SQLITE_STATIC);
	int rc = one_node(c, c->st_by_sid, out);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cache_list(struct cache *c, uint64_t parent, uint64_t after,
	       cache_list_fn fn, void *arg)
{
	int ret = 0;
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = c->st_list;
	sqlite3_bind_int64(st, 1, (int64_t)parent);
	sqlite3_bind_int64(st, 2, (int64_t)after);
	for (;;) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			log_err("cache database: %s", sqlite3_errmsg(c->db));
			ret = -EIO;
			break;
		}
		struct node n = { 0 };
		node_from_row(st, &n);
		int stop = fn(arg, &n);
		node_clear(&n);
		if (stop)
			break;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int64_t count_query(struct cache *c, const char *sql, int64_t arg)
{
	sqlite3_stmt *st = db_prepare(c, sql);
	if (arg >= 0)
		sqlite3_bind_int64(st, 1, arg);
	int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return v;
}

void cache_stats(struct cache *c, struct cache_stats *s)
{
	pthread_mutex_lock(&c->lock);
	s->folders = count_query(c, "SELECT count(*) FROM nodes WHERE kind = 1 "
				 "AND visible = 1 AND ino != 1", -1);
	s->items = count_query(c, "SELECT count(*) FROM nodes WHERE kind = 2", -1);
	s->bodies = count_query(c, "SELECT count(*) FROM bodies", -1);
	s->body_bytes = c->body_bytes;
	s->body_limit = c->body_limit;
	pthread_mutex_unlock(&c->lock);
}

int64_t cache_folder_count(struct cache *c, uint64_t folder)
{
	pthread_mutex_lock(&c->lock);
	int64_t n = count_query(c, "SELECT n_items FROM nodes WHERE ino = ?",
				(int64_t)folder);
	pthread_mutex_unlock(&c->lock);
	return n;
}

int cache_folders(struct cache *c, struct node **out, size_t *n)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_prepare(c, "SELECT " NODE_COLS " FROM nodes "
				      "WHERE kind = 1 AND visible = 1 AND ino != 1 "
				      "AND server_id IS NOT NULL "
				      "AND parent != 0 ORDER BY ino");
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		memset(&(*out)[*n], 0, sizeof(**out));
		node_from_row(st, &(*out)[(*n)++]);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

uint64_t cache_folder_set_sig(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "SELECT count(*), total(ino), "
				     "total(length(server_id)) FROM nodes "
				     "WHERE kind = 1 AND visible = 1 AND ino != 1 "
				     "AND server_id IS NOT NULL AND parent != 0");
	uint64_t sig = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		sig = (uint64_t)sqlite3_column_int64(st, 0) * 1000003u ^
		      (uint64_t)sqlite3_column_double(st, 1) * 31u ^
		      (uint64_t)sqlite3_column_double(st, 2) << 40;
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return sig;
}

void cache_nodes_free(struct node *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		node_clear(&v[i]);
	free(v);
}

char *cache_folder_state(struct cache *c, uint64_t folder)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_prepare(c, "SELECT sync_state FROM nodes WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)folder);
	char *v = sqlite3_step(st) == SQLITE_ROW ? col_text(st, 0) : NULL;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&c->lock);
	return v;
}
