/*
 * notify.c - keeps the kernel true to the cache, and turns the server's
 * changes into inotify events.
 *
 * Invalidation: names that appeared or went away (positive and negative
 * dentries), attributes that changed, directories whose listing changed.
 * Never sent from inside a handler of a related request (see
 * fuse_lowlevel.h on deadlocks): changes our own handlers made go through
 * a queue and a thread of their own (notify_later).
 *
 * Reflection: no FUSE notification makes the kernel emit inotify events,
 * so changes from the server (struct cache_changes.from_server) are
 * performed through the VFS on our own mount by one reflector thread fed
 * by a queue: a new message is openat(O_CREAT|O_EXCL) + close (IN_CREATE,
 * IN_CLOSE_WRITE), a deleted one unlinkat (IN_DELETE), a move renameat2
 * (IN_MOVED_FROM/IN_MOVED_TO with one cookie), new attributes utimensat
 * (IN_ATTRIB), new content open + ftruncate + close (IN_MODIFY,
 * IN_CLOSE_WRITE); folders likewise with mkdirat, unlinkat(AT_REMOVEDIR)
 * and renameat2.  The cache is already committed when that happens: the
 * handlers know the reflector's requests by the caller's thread id
 * (fuse_req_ctx()->pid is the tid of the thread that made the syscall) and
 * answer them from the cache and from the operation in flight (for the
 * lookups of a name that the cache no longer, or already, has).  Paths are
 * resolved from an O_PATH fd of the mount root, opened for each batch and
 * checked to be our mount, so after an unmount nothing lands in the
 * directory underneath, and the root is not kept busy between batches.
 * When a reflection fails (a user raced it, ENOTCONN), the change is
 * applied by invalidation alone.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define FUSE_MAGIC 0x65735546
#define REFLECT_QUEUE_MAX 100000  /* changes waiting; beyond: invalidate */

static atomic_bool stopping;

/* Copy the changes of src to the end of a queue. */
static void append_changes(struct cache_changes *dst,
			   const struct cache_changes *src)
{
	for (size_t i = 0; i < src->n; i++) {
		const struct cache_change *c = &src->v[i];
		cache_change_add(dst, c->what, c->ino, c->parent, c->name,
				 c->new_parent, c->new_name);
		dst->v[dst->n - 1].dir = c->dir;
	}
}

static void inval_entry(struct xfs *fs, uint64_t parent, const char *name)
{
	if (!name || !*name || atomic_load(&stopping))
		return;
	int rc = fuse_lowlevel_notify_inval_entry(fs->se, parent, name,
						  strlen(name));
	if (rc && rc != -ENOENT)
		log_dbg(LC_FS, "inval_entry(%llu, %s): %s",
			(unsigned long long)parent, name, strerror(-rc));
}

static void inval_attr(struct xfs *fs, uint64_t ino)
{
	if (atomic_load(&stopping))
		return;
	int rc = fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	if (rc && rc != -ENOENT)
		log_dbg(LC_FS, "inval_inode(%llu): %s", (unsigned long long)ino,
			strerror(-rc));
}

static void invalidate(struct xfs *fs, const struct cache_changes *ch)
{
	if (!atomic_load(&fs->kernel_ready))
		return;
	uint64_t last_parent = 0;
	for (size_t i = 0; i < ch->n; i++) {
		const struct cache_change *c = &ch->v[i];
		switch (c->what) {
		case CC_NEW:
		case CC_GONE:
		case CC_HIDDEN:
			inval_entry(fs, c->parent, c->name);
			if (c->what == CC_GONE)
				inval_attr(fs, c->ino);
			break;
		case CC_ATTR:
		case CC_CONTENT:
			inval_attr(fs, c->ino);
			break;
		case CC_RENAMED:
			inval_entry(fs, c->parent, c->name);
			inval_entry(fs, c->new_parent, c->new_name);
			inval_attr(fs, c->new_parent);
			break;
		}
		/* the parent's mtime and link count: once per run of changes
		 * in the same directory */
		if (c->parent && c->parent != last_parent) {
			inval_attr(fs, c->parent);
			last_parent = c->parent;
		}
	}
}

/* ---- changes made by our own handlers: told to the kernel later ----
 * A handler must not notify about the directory it works in (the kernel
 * holds its lock until we reply), so these go through a queue and a
 * thread of their own. */

static pthread_mutex_t later_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t later_cond = PTHREAD_COND_INITIALIZER;
static struct cache_changes later;
static bool later_stop, later_running;
static pthread_t later_thread;

static void *later_main(void *arg)
{
	struct xfs *fs = arg;
	pthread_mutex_lock(&later_lock);
	for (;;) {
		while (!later.n && !later_stop)
			pthread_cond_wait(&later_cond, &later_lock);
		if (!later.n && later_stop)
			break;
		struct cache_changes mine = later;
		memset(&later, 0, sizeof(later));
		pthread_mutex_unlock(&later_lock);
		invalidate(fs, &mine);
		cache_changes_free(&mine);
		pthread_mutex_lock(&later_lock);
	}
	pthread_mutex_unlock(&later_lock);
	return NULL;
}

/* ---- reflection ---- */

static pthread_mutex_t rq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rq_cond = PTHREAD_COND_INITIALIZER;
static struct cache_changes rq;    /* waiting, protected by rq_lock */
static bool rq_stop, rq_running;
static pthread_t rq_thread;
static _Atomic pid_t reflector_tid;
static dev_t mount_dev;            /* st_dev of our root, once known */
/* figures, protected by rq_lock */
static unsigned long n_reflected, n_fallback, n_overflow;

/* The change being reflected, for the handlers (protected by op_lock). */
static pthread_mutex_t op_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct cache_change *op;

bool reflecting(fuse_req_t req)
{
	pid_t tid = atomic_load(&reflector_tid);
	return tid && fuse_req_ctx(req)->pid == tid;
}

static bool names(uint64_t p1, const char *n1, uint64_t p2, const char *n2)
{
	return p1 == p2 && n1 && n2 && !strcmp(n1, n2);
}

int reflect_lookup(struct xfs *fs, fuse_ino_t parent, const char *name,
		   struct fuse_entry_param *e)
{
	int rc = 0;
	pthread_mutex_lock(&op_lock);
	if (!op) {
		pthread_mutex_unlock(&op_lock);
		return 0;
	}
	bool old_side = names(parent, name, op->parent, op->name);
	bool new_side = op->what == CC_RENAMED &&
			names(parent, name, op->new_parent, op->new_name);
	if ((op->what == CC_NEW && old_side) || new_side) {
		rc = -ENOENT;  /* the name the operation creates */
	} else if ((op->what == CC_GONE || op->what == CC_RENAMED) && old_side) {
		/* the name as the kernel last knew it */
		struct node n = { 0 };
		memset(e, 0, sizeof(*e));
		if (cache_get(fs->cache, op->ino, &n) == 0) {
			fill_entry(fs, &n, e);
		} else {
			e->ino = op->ino;
			e->generation = 1;
			e->attr.st_ino = op->ino;
			e->attr.st_mode = op->dir ? S_IFDIR | 0755 : S_IFREG | 0644;
			e->attr.st_nlink = op->dir ? 2 : 1;
			e->attr.st_uid = fs->uid;
			e->attr.st_gid = fs->gid;
		}
		e->entry_timeout = e->attr_timeout = 0;
		node_clear(&n);
		rc = 1;
	}
	pthread_mutex_unlock(&op_lock);
	return rc;
}

int reflect_entry(struct xfs *fs, fuse_ino_t parent, const char *name,
		  struct fuse_entry_param *e)
{
	struct node n = { 0 };
	int rc = cache_lookup(fs->cache, parent, name, &n);
	if (!rc)
		fill_entry(fs, &n, e);
	node_clear(&n);
	return rc;
}

/* "Inbox/Projects/name": the path below the root of (parent, name) as
 * the cache has it now, or NULL if a folder on the way is unknown. */
static char *path_of(struct xfs *fs, uint64_t parent, const char *name)
{
	char *path = xstrdup(name);
	for (int depth = 0; parent != CACHE_ROOT_INO; depth++) {
		struct node p = { 0 };
		if (depth > 64 || cache_get(fs->cache, parent, &p) ||
		    p.kind != NODE_FOLDER || !p.visible) {
			node_clear(&p);
			free(path);
			return NULL;
		}
		char *longer = xasprintf("%s/%s", p.name, path);
		free(path);
		path = longer;
		parent = p.parent;
		node_clear(&p);
	}
	return path;
}

/* The root of our mount, O_PATH, or -1 (not mounted, or something else is
 * mounted there now). */
static int open_root(struct xfs *fs)
{
	int fd = open(fs->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	struct statfs sf;
	if (fstat(fd, &st) || fstatfs(fd, &sf) || sf.f_type != FUSE_MAGIC ||
	    st.st_ino != CACHE_ROOT_INO || (mount_dev && st.st_dev != mount_dev)) {
		close(fd);
		return -1;
	}
	mount_dev = st.st_dev;
	return fd;
}

/* Perform one change through the mount: 0 or -errno. */
static int reflect_once(struct xfs *fs, int root, const struct cache_change *c,
			const char *from, const char *to)
{
	int fd, rc = 0;
	switch (c->what) {
	case CC_NEW:
		if (c->dir)
			return mkdirat(root, from, 0755) ? -errno : 0;
		fd = openat(root, from, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
			    O_NOFOLLOW, 0644);
		if (fd < 0)
			return -errno;
		close(fd);
		return 0;
	case CC_GONE:
		return unlinkat(root, from, c->dir ? AT_REMOVEDIR : 0) ? -errno : 0;
	case CC_RENAMED:
		return renameat2(root, from, root, to, RENAME_NOREPLACE) ? -errno
									 : 0;
	case CC_ATTR: {
		struct node n = { 0 };
		if (cache_get(fs->cache, c->ino, &n))
			return -ENOENT;
		/* both times: the kernel reports IN_ATTRIB (mtime alone is
		 * IN_MODIFY); the handler keeps ours either way */
		struct timespec ts[2] = { { n.mtime, 0 }, { n.mtime, 0 } };
		node_clear(&n);
		return utimensat(root, from, ts, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
	}
	case CC_CONTENT: {
		struct node n = { 0 };
		if (cache_get(fs->cache, c->ino, &n))
			return -ENOENT;
		off_t size = n.body_size >= 0 ? n.body_size
					      : (n.size > 0 ? n.size : 0);
		node_clear(&n);
		/* the pages the kernel holds are the old content */
		if (!atomic_load(&stopping))
			fuse_lowlevel_notify_inval_inode(fs->se, c->ino, 0, 0);
		fd = openat(root, from, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, size))
			rc = -errno;
		close(fd);
		return rc;
	}
	case CC_HIDDEN:
		break;  /* never reflected (reflect_main) */
	}
	return -EINVAL;
}

/* Reflect one change; false if it had to fall back to invalidation. */
static bool reflect_one(struct xfs *fs, int root, const struct cache_change *c)
{
	char *from = path_of(fs, c->parent, c->name);
	char *to = c->what == CC_RENAMED ? path_of(fs, c->new_parent, c->new_name)
					 : NULL;
	int rc = -ENOENT;
	if (from && (to || c->what != CC_RENAMED)) {
		pthread_mutex_lock(&op_lock);
		op = c;
		pthread_mutex_unlock(&op_lock);
		rc = reflect_once(fs, root, c, from, to);
		if (rc == -EEXIST || rc == -ENOENT) {
			/* the kernel had its own idea of the name (a listing
			 * made while the change waited): forget it, again */
			inval_entry(fs, c->parent, c->name);
			if (to)
				inval_entry(fs, c->new_parent, c->new_name);
			rc = reflect_once(fs, root, c, from, to);
		}
		pthread_mutex_lock(&op_lock);
		op = NULL;
		pthread_mutex_unlock(&op_lock);
	}
	if (rc)
		log_dbg(LC_FS, "reflecting %s of '%s' failed (%s): invalidating",
			c->what == CC_NEW ? "creation" : c->what == CC_GONE ?
			"removal" : c->what == CC_RENAMED ? "move" : "change",
			from ? from : c->name ? c->name : "?", strerror(-rc));
	free(from);
	free(to);
	return rc == 0;
}

static void *reflect_main(void *arg)
{
	struct xfs *fs = arg;
	atomic_store(&reflector_tid, gettid());
	pthread_mutex_lock(&rq_lock);
	for (;;) {
		while (!rq.n && !rq_stop)
			pthread_cond_wait(&rq_cond, &rq_lock);
		if (rq_stop)
			break;
		struct cache_changes mine = rq;
		memset(&rq, 0, sizeof(rq));
		pthread_mutex_unlock(&rq_lock);

		/* a folder that went away takes its messages along: its own
		 * removal is the event */
		uint64_t *gone_dirs = NULL;
		size_t n_gone = 0;
		for (size_t i = 0; i < mine.n; i++)
			if (mine.v[i].what == CC_GONE && mine.v[i].dir) {
				gone_dirs = xrealloc(gone_dirs, (n_gone + 1) *
						     sizeof(*gone_dirs));
				gone_dirs[n_gone++] = mine.v[i].ino;
			}
		int root = atomic_load(&fs->kernel_ready) ? open_root(fs) : -1;
		unsigned long ok = 0, failed = 0;
		for (size_t i = 0; i < mine.n && !atomic_load(&stopping); i++) {
			const struct cache_change *c = &mine.v[i];
			bool inside_gone = false;
			for (size_t j = 0; j < n_gone && !inside_gone; j++)
				inside_gone = gone_dirs[j] == c->parent;
			if (c->what == CC_HIDDEN) {
				/* no event: the name goes quietly, in order
				 * with the changes around it */
				struct cache_changes one = {
					.v = (struct cache_change *)c, .n = 1 };
				invalidate(fs, &one);
				continue;
			}
			if (root >= 0 && !inside_gone && reflect_one(fs, root, c)) {
				ok++;
				continue;
			}
			failed++;
			struct cache_changes one = { .v = (struct cache_change *)c,
						     .n = 1 };
			invalidate(fs, &one);
		}
		if (root >= 0)
			close(root);
		free(gone_dirs);
		cache_changes_free(&mine);
		pthread_mutex_lock(&rq_lock);
		n_reflected += ok;
		n_fallback += failed;
	}
	pthread_mutex_unlock(&rq_lock);
	atomic_store(&reflector_tid, 0);
	return NULL;
}

void notify_changes(void *arg, const struct cache_changes *ch)
{
	struct xfs *fs = arg;
	if (!atomic_load(&fs->kernel_ready))
		return;
	if (!ch->from_server || !fs->reflect) {
		invalidate(fs, ch);
		return;
	}
	pthread_mutex_lock(&rq_lock);
	if (!rq_running || rq.n + ch->n > REFLECT_QUEUE_MAX) {
		if (rq_running)
			n_overflow += ch->n;
		pthread_mutex_unlock(&rq_lock);
		invalidate(fs, ch);
		return;
	}
	append_changes(&rq, ch);
	pthread_cond_broadcast(&rq_cond);
	pthread_mutex_unlock(&rq_lock);
}

void notify_status(void *arg, struct buf *out)
{
	pthread_mutex_lock(&rq_lock);
	buf_printf(out, "inotify events: %lu server changes reflected, %lu "
		   "invalidated only", n_reflected, n_fallback + n_overflow);
	if (rq.n)
		buf_printf(out, ", %zu waiting", rq.n);
	buf_puts(out, "\n");
	pthread_mutex_unlock(&rq_lock);
}

void notify_start(struct xfs *fs)
{
	later_stop = false;
	if (thread_start(&later_thread, "xfs-later", later_main, fs) == 0)
		later_running = true;
	rq_stop = false;
	if (fs->reflect && thread_start(&rq_thread, "xfs-reflect", reflect_main, fs) == 0)
		rq_running = true;
}

/* Stopping: the reflector may be waiting for an answer to one of its
 * requests that no thread will read any more (the FUSE loop has ended):
 * give it a moment, and otherwise leave it to notify_finish(), after the
 * session's end aborted that request.  From here on nothing sends a
 * notification on the session. */
void notify_stop(void)
{
	atomic_store(&stopping, true);
	if (rq_running) {
		pthread_mutex_lock(&rq_lock);
		rq_stop = true;
		pthread_cond_broadcast(&rq_cond);
		pthread_mutex_unlock(&rq_lock);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		if (pthread_timedjoin_np(rq_thread, NULL, &ts) == 0)
			rq_running = false;
	}
	if (later_running) {
		pthread_mutex_lock(&later_lock);
		later_stop = true;
		pthread_cond_broadcast(&later_cond);
		pthread_mutex_unlock(&later_lock);
		pthread_join(later_thread, NULL);
		later_running = false;
		cache_changes_free(&later);
	}
}

void notify_finish(void)
{
	if (rq_running) {
		pthread_join(rq_thread, NULL);
		rq_running = false;
	}
	cache_changes_free(&rq);
}

void notify_later(struct cache_changes *ch)
{
	if (!ch->n) {
		cache_changes_free(ch);
		return;
	}
	pthread_mutex_lock(&later_lock);
	if (!later_running) {
		pthread_mutex_unlock(&later_lock);
		cache_changes_free(ch);
		return;
	}
	append_changes(&later, ch);
	pthread_cond_broadcast(&later_cond);
	pthread_mutex_unlock(&later_lock);
	cache_changes_free(ch);
}
