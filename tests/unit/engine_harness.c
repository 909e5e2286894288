/*
 * engine_harness.c - the engine tests' shared driver (engine_harness.h):
 * start and stop an engine over the scripted backend as the daemon does,
 * make local changes as fs/write.c does, dump the cache, copy its
 * directory for crash snapshots.
 */
#include "engine_harness.h"
#include "cache/applier.h"
#include "cache/db_internal.h"
#include "cache/journal.h"
#include "backend/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const struct backend_ops *engine_ops;

bool engine_start(struct engine *e, const char *dir, struct sb_model *m)
{
	char err[256] = "";
	memset(e, 0, sizeof(*e));
	e->dir = xstrdup(dir);
	e->m = m;
	sb_use(m);
	e->c = cache_open(dir, err, sizeof(err));
	if (!e->c) {
		printf("cannot open the cache: %s\n", err);
		return false;
	}
	if (journal_recover(e->c)) {
		printf("journal recovery failed\n");
		return false;
	}
	struct sync_config cfg = {
		.ops = engine_ops ? engine_ops : &scripted_backend,
		.fetch_sessions = 1,
		.prefetch_days = -1,
	};
	cfg.be.url = "scripted:";
	e->s = sync_new(e->c, &cfg);
	struct be_result r;
	be_result_ok(&r);
	if (sync_connect(e->s, &r) != BE_OK) {
		printf("sync_connect: %s\n", r.msg);
		return false;
	}
	e->a = applier_new(e->s);
	return true;
}

void engine_stop(struct engine *e)
{
	applier_stop(e->a);
	sync_free(e->s);
	cache_close(e->c);
	free(e->dir);
	memset(e, 0, sizeof(*e));
}

void engine_apply(struct engine *e)
{
	for (int i = 0; i < 50 && applier_step(e->a) > 0; i++)
		;
}

void engine_settle(struct engine *e)
{
	for (int round = 0; round < 2; round++) {
		engine_apply(e);
		sync_pass_now(e->s);
	}
	engine_apply(e);
}

uint64_t engine_ino(struct engine *e, uint64_t parent, const char *name)
{
	struct node n = { 0 };
	if (cache_lookup(e->c, parent, name, &n))
		return 0;
	uint64_t ino = n.ino;
	node_clear(&n);
	return ino;
}

uint64_t engine_ino_of_sid(struct engine *e, const char *sid)
{
	uint64_t ino = 0;
	pthread_mutex_lock(&e->c->lock);
	sqlite3_stmt *st = db_prepare(e->c, "SELECT ino FROM nodes WHERE "
				      "server_id = ?");
	db_bind_text(st, 1, sid);
	if (sqlite3_step(st) == SQLITE_ROW)
		ino = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&e->c->lock);
	return ino;
}

static int write_staging(struct engine *e, uint64_t ino, const char *subject)
{
	char *path = journal_staging_path(e->c, ino);
	char *text = xasprintf("From: me@example.com\r\nTo: you@example.com\r\n"
			       "Subject: %s\r\nDate: Thu, 13 Feb 2025 10:30:00 "
			       "+0000\r\n\r\nwritten here: %s\r\n", subject,
			       subject);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text)
		? 0 : -EIO;
	if (fd >= 0)
		close(fd);
	free(text);
	free(path);
	return rc;
}

int engine_write_file(struct engine *e, uint64_t folder, const char *name,
		      const char *subject, uint64_t *ino)
{
	struct node n = { 0 };
	int rc = journal_new_file(e->c, folder, name, false, &n);
	*ino = n.ino;
	node_clear(&n);
	return rc ? rc : engine_rewrite_file(e, *ino, subject);
}

int engine_rewrite_file(struct engine *e, uint64_t ino, const char *subject)
{
	int rc = write_staging(e, ino, subject);
	struct cache_changes ch = { 0 };
	if (!rc)
		rc = journal_commit_content(e->c, ino, 1739442600, &ch);
	cache_changes_free(&ch);
	return rc;
}

char *engine_dump(struct engine *e)
{
	struct buf b;
	buf_init(&b, 0);
	pthread_mutex_lock(&e->c->lock);
	sqlite3_stmt *st = db_prepare(e->c, "SELECT ino, parent, kind, name, "
		"coalesce(server_id, '-'), coalesce(is_read, -1), "
		"coalesce(flag, -1), coalesce(categories, '-'), "
		"coalesce(is_draft, -1), pend, local, content IS NOT NULL, "
		"error IS NOT NULL, synced FROM nodes ORDER BY ino");
	while (sqlite3_step(st) == SQLITE_ROW)
		buf_printf(&b, "N %lld in %lld %s '%s' sid %s read %d flag %d "
			   "cats '%s' draft %d pend %d local %d content %d "
			   "error %d synced %d\n",
			   sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
			   sqlite3_column_int(st, 2) == NODE_FOLDER ? "dir" : "msg",
			   (const char *)sqlite3_column_text(st, 3),
			   (const char *)sqlite3_column_text(st, 4),
			   sqlite3_column_int(st, 5), sqlite3_column_int(st, 6),
			   (const char *)sqlite3_column_text(st, 7),
			   sqlite3_column_int(st, 8), sqlite3_column_int(st, 9),
			   sqlite3_column_int(st, 10), sqlite3_column_int(st, 11),
			   sqlite3_column_int(st, 12), sqlite3_column_int(st, 13));
	sqlite3_finalize(st);
	st = db_prepare(e->c, "SELECT op, ino, folder, state FROM journal "
			"ORDER BY seq");
	while (sqlite3_step(st) == SQLITE_ROW)
		buf_printf(&b, "J %s ino %lld folder %lld state %d\n",
			   jop_name((enum j_op)sqlite3_column_int(st, 0)),
			   sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
			   sqlite3_column_int(st, 3));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&e->c->lock);
	if (!b.data)
		buf_puts(&b, "");
	return b.data;
}

int engine_rows(struct engine *e)
{
	struct journal_stats js;
	journal_stats(e->c, &js);
	return (int)(js.queued + js.failed);
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char chunk[65536];
	ssize_t n;
	while (in >= 0 && out >= 0 && (n = read(in, chunk, sizeof(chunk))) > 0)
		if (write(out, chunk, (size_t)n) != n)
			break;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
}

void engine_copy_dir(const char *from, const char *to)
{
	mkdir(to, 0700);
	DIR *d = opendir(from);
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		/* the shared-memory index is rebuilt from the log at open */
		if (de->d_name[0] == '.' ||
		    (len > 4 && !strcmp(de->d_name + len - 4, "-shm")))
			continue;
		char *src = xasprintf("%s/%s", from, de->d_name);
		char *dst = xasprintf("%s/%s", to, de->d_name);
		struct stat sb;
		if (stat(src, &sb) == 0 && S_ISDIR(sb.st_mode))
			engine_copy_dir(src, dst);
		else if (S_ISREG(sb.st_mode))
			copy_file(src, dst);
		free(src);
		free(dst);
	}
	if (d)
		closedir(d);
}

static char *base;  /* the test's directory, made at first use */

static int remove_one(const char *path, const struct stat *sb, int type,
		      struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

void engine_cleanup(void)
{
	if (base)
		nftw(base, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	free(base);
	base = NULL;
}

char *engine_tmpdir(const char *tag)
{
	static unsigned n;
	if (!base) {
		const char *t = getenv("TMPDIR");
		char *tmpl = xasprintf("%s/exchangefs-test-engine-XXXXXX",
				       t && *t ? t : "/tmp");
		base = mkdtemp(tmpl);
		if (!base)
			abort();
	}
	return xasprintf("%s/%s-%u", base, tag, ++n);
}

bool engine_same(const char *what, const char *a, const char *b)
{
	if (!strcmp(a, b))
		return true;
	printf("--- %s differs; expected:\n%s--- got:\n%s---\n", what, a, b);
	return false;
}
