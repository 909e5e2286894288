/*
 * bodies.c - the on-disk store of MIME bodies: one file per message under
 * <cache>/bodies/, named by inode number, written to a temporary file and
 * renamed into place, recorded in the bodies table with its size and last
 * use, evicted least-recently-used first when over the size limit.
 *
 * A body file that is missing or whose size differs from the recorded one
 * (a crash between write and record) is treated as not cached: the next
 * open fetches it again.  An open body survives eviction (the fd keeps the
 * unlinked file).
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
#include <time.h>
#include <unistd.h>

struct body_writer {
	struct cache *c;
	uint64_t ino;
	int fd;
	int64_t len;
	char tmp[64];
};

static void remove_temp_files(struct cache *c);

int bodies_init(struct cache *c)
{
	char *path = xasprintf("%s/bodies", c->dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		log_err("cannot create %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	c->bodies_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(path);
	if (c->bodies_fd < 0)
		return -1;
	remove_temp_files(c);
	sqlite3_stmt *st = db_prepare(c, "SELECT coalesce(sum(size), 0) FROM bodies");
	c->body_bytes = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
}

/* Temporary files of writes a crash (kill -9) interrupted: never
 * recorded, so nothing refers to them. */
static void remove_temp_files(struct cache *c)
{
	int fd = dup(c->bodies_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "tmp.", 4))
			unlinkat(c->bodies_fd, e->d_name, 0);
	closedir(d);
}

static void body_name(uint64_t ino, char *buf, size_t len)
{
	snprintf(buf, len, "%llu", (unsigned long long)ino);
}

void bodies_forget(struct cache *c, uint64_t ino)
{
	log_dbg(LC_CACHE, "body of %llu forgotten", (unsigned long long)ino);
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_prepare(c, "DELETE FROM bodies WHERE ino = ? "
				      "RETURNING size");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	if (sqlite3_step(st) == SQLITE_ROW)
		c->body_bytes -= sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = db_prepare(c, "UPDATE nodes SET body_size = -1 WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	db_step_done(c, st);
	char name[32];
	body_name(ino, name, sizeof(name));
	unlinkat(c->bodies_fd, name, 0);
	pthread_mutex_unlock(&c->lock);
}

void cache_set_body_limit(struct cache *c, int64_t bytes)
{
	pthread_mutex_lock(&c->lock);
	c->body_limit = bytes;
	pthread_mutex_unlock(&c->lock);
}

int cache_body_open(struct cache *c, uint64_t ino)
{
	char name[32];
	body_name(ino, name, sizeof(name));
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, "SELECT size, atime FROM bodies WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	int64_t size = -1, atime = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		size = sqlite3_column_int64(st, 0);
		atime = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (size < 0) {
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	int fd = openat(c->bodies_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size != size) {
		if (fd >= 0)
			close(fd);
		log_dbg(LC_CACHE, "body of %llu missing or damaged: refetching",
			(unsigned long long)ino);
		bodies_forget(c, ino);
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	/* LRU: record a use at most once a minute per body, so reading a
	 * whole folder does not turn into a write per file */
	time_t now = time(NULL);
	if (now - atime >= 60) {
		st = db_cached(c, "UPDATE bodies SET atime = ? WHERE ino = ?");
		sqlite3_bind_int64(st, 1, now);
		sqlite3_bind_int64(st, 2, (int64_t)ino);
		db_run(c, st);
	}
	pthread_mutex_unlock(&c->lock);
	return fd;
}

struct body_writer *cache_body_begin(struct cache *c, uint64_t ino)
{
	static unsigned seq;
	struct body_writer *w = xcalloc(1, sizeof(*w));
	w->c = c;
	w->ino = ino;
	snprintf(w->tmp, sizeof(w->tmp), "tmp.%llu.%u.%d",
		 (unsigned long long)ino, __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED),
		 (int)getpid());
	w->fd = openat(c->bodies_fd, w->tmp,
		       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		log_err("cannot create body file in %s/bodies: %s", c->dir,
			strerror(errno));
		free(w);
		return NULL;
	}
	return w;
}

int cache_body_write(struct body_writer *w, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("cannot write body file in %s/bodies: %s",
				w->c->dir, strerror(errno));
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		w->len += n;
	}
	return 0;
}

void cache_body_abort(struct body_writer *w)
{
	if (!w)
		return;
	close(w->fd);
	unlinkat(w->c->bodies_fd, w->tmp, 0);
	free(w);
}

/* Evict least recently used bodies until under the limit, sparing keep. */
static void evict(struct cache *c, uint64_t keep, struct cache_changes *ch)
{
	if (!c->body_limit || c->body_bytes <= c->body_limit)
		return;
	sqlite3_stmt *st = db_prepare(c, "SELECT ino FROM bodies WHERE ino != ? "
				      "ORDER BY atime, ino LIMIT 256");
	sqlite3_bind_int64(st, 1, (int64_t)keep);
	uint64_t victims[256];
	size_t n = 0;
	while (n < 256 && sqlite3_step(st) == SQLITE_ROW)
		victims[n++] = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	for (size_t i = 0; i < n && c->body_bytes > c->body_limit; i++) {
		log_dbg(LC_CACHE, "evicting body %llu", (unsigned long long)victims[i]);
		bodies_forget(c, victims[i]);
		cache_change_add(ch, CC_ATTR, victims[i], 0, NULL, 0, NULL);
	}
}

static int commit(struct body_writer *w, struct cache_changes *evicted,
		  bool within)
{
	struct cache *c = w->c;
	char name[32];
	body_name(w->ino, name, sizeof(name));
	if (close(w->fd) < 0) {
		w->fd = -1;
		unlinkat(c->bodies_fd, w->tmp, 0);
		free(w);
		return -EIO;
	}
	pthread_mutex_lock(&c->lock);
	int rc = 0;
	if (within && c->body_limit && c->body_bytes + w->len > c->body_limit) {
		rc = -ENOSPC;
		unlinkat(c->bodies_fd, w->tmp, 0);
	} else if (renameat(c->bodies_fd, w->tmp, c->bodies_fd, name) < 0) {
		rc = -errno;
		unlinkat(c->bodies_fd, w->tmp, 0);
	} else {
		/* one transaction (unless inside one already): one WAL
		 * commit per body, not three */
		bool txn = sqlite3_get_autocommit(c->db) && !db_begin(c);
		/* a body fetched twice (two readers raced) replaces the
		 * first copy: count its bytes once */
		int64_t old = 0;
		sqlite3_stmt *st = db_cached(c, "DELETE FROM bodies WHERE ino = ? "
					     "RETURNING size");
		sqlite3_bind_int64(st, 1, (int64_t)w->ino);
		if (sqlite3_step(st) == SQLITE_ROW)
			old = sqlite3_column_int64(st, 0);
		while (sqlite3_step(st) == SQLITE_ROW)
			;
		sqlite3_reset(st);
		st = db_cached(c, "INSERT INTO bodies(ino, size, atime) "
			       "VALUES(?, ?, ?)");
		sqlite3_bind_int64(st, 1, (int64_t)w->ino);
		sqlite3_bind_int64(st, 2, w->len);
		sqlite3_bind_int64(st, 3, time(NULL));
		rc = db_run(c, st);
		if (!rc) {
			st = db_cached(c, "UPDATE nodes SET body_size = ? WHERE ino = ?");
			sqlite3_bind_int64(st, 1, w->len);
			sqlite3_bind_int64(st, 2, (int64_t)w->ino);
			rc = db_run(c, st);
		}
		if (txn && rc)
			db_rollback(c);
		else if (txn)
			rc = db_commit(c);
		if (!rc) {
			c->body_bytes += w->len - old;
			if (!within)
				evict(c, w->ino, evicted);
		}
	}
	pthread_mutex_unlock(&c->lock);
	free(w);
	return rc;
}

int cache_body_commit(struct body_writer *w, struct cache_changes *evicted)
{
	return commit(w, evicted, false);
}

int cache_body_commit_within(struct body_writer *w)
{
	return commit(w, NULL, true);
}
