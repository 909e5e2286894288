/*
 * write.c - the FUSE requests that change the mailbox: files created and
 * written, unlinked, renamed; folders made, renamed, removed; flags set as
 * extended attributes.  Each one becomes one durable journal transaction
 * (cache/journal.c) before the reply; the applier sends it to the server.
 *
 * Files being written are kept in <cache>/local/<ino>.w ("staging"), keyed
 * by inode, not by file handle: with zero-message opens the kernel sends
 * WRITE and FLUSH with fh 0.  At FLUSH (close) a dirty staging file is
 * checked and committed: a message file (*.eml) must have an RFC 5322
 * header section, else close() fails with EINVAL and the bytes are kept in
 * .exchangefs/rejected; so is one the server cannot store (ENOTSUP: the
 * backend's caps); empty content is judged at the last close only; other
 * names (editor swap and backup files) are local-only and never uploaded.
 * A rename into GIO's trash (.Trash-<uid>/files, see vfiles.c) is a move
 * to Deleted Items; no folder named ".x" is made on the server.
 */
#include "fs.h"
#include "cache/journal.h"
#include "cache/kinds.h"
#include "cache/message.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct wfile {
	uint64_t ino;
	int fd;
	bool dirty;
	struct wfile *next;
};

/* One lock per inode being changed here (struct ilock, counted while
 * taken or waited for), so a write, truncate, flush or unlink of one file
 * never waits for another's.  No lock of this file is held across the
 * network: a body to fetch before the first write of a draft is fetched
 * with nothing held (wget_locked), and fsync runs on a copy of the fd.
 *
 * Lock order: an inode's lock, then the cache's lock, then list_lock.
 * list_lock only guards the list of staging files, so getattr and readdir
 * (which run under the cache's lock) can ask for the size of a file being
 * written without waiting for a commit; ilocks_lock only guards the table
 * of inode locks and is never held while waiting for anything else. */
struct ilock {
	uint64_t ino;
	int users;               /* protected by ilocks_lock */
	pthread_mutex_t lock;    /* held while the inode's file is changed */
	struct ilock *next;      /* protected by ilocks_lock */
};

static pthread_mutex_t ilocks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ilock *ilocks;
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wfile *wfiles;
static int n_wfiles;  /* atomic: lets getattr skip the lock when 0 */

/* Take the lock of ino (made on first use, freed by the last user). */
static struct ilock *ino_lock(uint64_t ino)
{
	pthread_mutex_lock(&ilocks_lock);
	struct ilock *l = ilocks;
	while (l && l->ino != ino)
		l = l->next;
	if (!l) {
		l = xcalloc(1, sizeof(*l));
		l->ino = ino;
		pthread_mutex_init(&l->lock, NULL);
		l->next = ilocks;
		ilocks = l;
	}
	l->users++;
	pthread_mutex_unlock(&ilocks_lock);
	pthread_mutex_lock(&l->lock);
	return l;
}

static void ino_unlock(struct ilock *l)
{
	pthread_mutex_unlock(&l->lock);
	pthread_mutex_lock(&ilocks_lock);
	if (--l->users == 0) {
		for (struct ilock **p = &ilocks; *p; p = &(*p)->next)
			if (*p == l) {
				*p = l->next;
				break;
			}
		pthread_mutex_destroy(&l->lock);
		free(l);
	}
	pthread_mutex_unlock(&ilocks_lock);
}

/* list_lock held */
static struct wfile *wfind(uint64_t ino)
{
	for (struct wfile *w = wfiles; w; w = w->next)
		if (w->ino == ino)
			return w;
	return NULL;
}

/* Close a staging file before it is renamed (its inode lock held). */
static void wclose(struct wfile *w)
{
	pthread_mutex_lock(&list_lock);
	close(w->fd);
	w->fd = -1;
	pthread_mutex_unlock(&list_lock);
}

/* the inode's lock held: only its holder adds or drops its entry */
static struct wfile *wlookup(uint64_t ino)
{
	pthread_mutex_lock(&list_lock);
	struct wfile *w = wfind(ino);
	pthread_mutex_unlock(&list_lock);
	return w;
}

static void wdrop(uint64_t ino)
{
	pthread_mutex_lock(&list_lock);
	for (struct wfile **p = &wfiles; *p; p = &(*p)->next)
		if ((*p)->ino == ino) {
			struct wfile *w = *p;
			*p = w->next;
			if (w->fd >= 0)
				close(w->fd);
			free(w);
			__atomic_sub_fetch(&n_wfiles, 1, __ATOMIC_RELEASE);
			break;
		}
	pthread_mutex_unlock(&list_lock);
}

int write_pim_refused(struct xfs *fs, uint64_t folder, const char *name)
{
	if (!kind_of_folder(fs->cache, folder)->pim)
		return 0;
	log_warn("'%s' not changed: %s", name, KIND_READ_ONLY_MSG);
	sync_note_failure(fs->sync, "'%s' not changed: %s", name,
			  KIND_READ_ONLY_MSG);
	return -EROFS;
}

/* The same for a node: a folder of that kind itself, or what is in one. */
static int node_pim_refused(struct xfs *fs, uint64_t parent, const char *name)
{
	struct node n = { 0 };
	int rc = write_pim_refused(fs, parent, name);
	if (!rc && cache_lookup(fs->cache, parent, name, &n) == 0 &&
	    n.kind == NODE_FOLDER)
		rc = write_pim_refused(fs, n.ino, name);
	node_clear(&n);
	return rc;
}

bool write_allowed(struct xfs *fs, const struct node *n)
{
	if (n->kind != NODE_ITEM)
		return false;
	if (n->local != LOCAL_NONE || !n->server_id)
		return true;
	return cache_role(fs->cache, n->parent) == BE_DRAFTS;
}

/* The current content of n as an fd: written here, or the server's body.
 * -EAGAIN when that body is not cached (it is fetched with no lock held,
 * see wget_locked), -ENOENT when nothing was written yet, or -errno. */
static int current_content(struct xfs *fs, const struct node *n)
{
	if (n->content) {
		char *p = journal_content_path(fs->cache, n->content);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		free(p);
		return fd < 0 ? -errno : fd;
	}
	if (n->local != LOCAL_NONE || !n->server_id)
		return -ENOENT;  /* nothing written yet */
	int fd = cache_body_open(fs->cache, n->ino);
	return fd >= 0 ? fd : -EAGAIN;
}

static int copy_fd(int from, int to)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(from, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		for (ssize_t off = 0; off < n;) {
			ssize_t m = write(to, buf + off, (size_t)(n - off));
			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0)
				return -errno;
			off += m;
		}
	}
}

/* The staging file of ino, made from the current content unless empty is
 * asked for (its inode lock held).  *out, -EAGAIN if the server's body must
 * be fetched first, or -errno. */
static int wget(struct xfs *fs, uint64_t ino, bool empty, struct wfile **out)
{
	struct wfile *w = wlookup(ino);
	if (w) {
		*out = w;
		return 0;
	}
	struct node n = { 0 };
	int rc = cache_get(fs->cache, ino, &n);
	if (rc)
		return rc;
	rc = n.kind == NODE_ITEM ? write_pim_refused(fs, n.parent, n.name) : 0;
	if (!rc && !write_allowed(fs, &n))
		rc = -EPERM;
	if (rc) {
		node_clear(&n);
		return rc;
	}
	char *path = journal_staging_path(fs->cache, ino);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		log_err("cannot create %s: %s", path, strerror(errno));
	}
	if (fd >= 0 && !empty) {
		int src = current_content(fs, &n);
		if (src >= 0) {
			rc = copy_fd(src, fd);
			close(src);
		} else if (src != -ENOENT) {
			rc = src;
		}
		if (rc) {
			close(fd);
			fd = -1;
			unlink(path);
		}
	}
	free(path);
	node_clear(&n);
	if (fd < 0)
		return rc ? rc : -EIO;
	w = xcalloc(1, sizeof(*w));
	w->ino = ino;
	w->fd = fd;
	pthread_mutex_lock(&list_lock);
	w->next = wfiles;
	wfiles = w;
	__atomic_add_fetch(&n_wfiles, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&list_lock);
	*out = w;
	return 0;
}

/* Take ino's lock and its staging file (wget).  A server body the file
 * starts from is fetched first, with no lock held, so a stalled fetch
 * holds up only the writer of that draft.  On success the caller holds *l
 * and gives it back with ino_unlock. */
static int wget_locked(struct xfs *fs, uint64_t ino, bool empty,
		       struct wfile **out, struct ilock **l)
{
	for (int tries = 0;; tries++) {
		*l = ino_lock(ino);
		int rc = wget(fs, ino, empty, out);
		if (!rc)
			return 0;
		ino_unlock(*l);
		*l = NULL;
		if (rc != -EAGAIN)
			return rc;
		if (tries == 3) {
			/* fetched, and evicted again before it was copied */
			log_err("cannot keep the server's body of inode %llu "
				"in the cache long enough to edit it",
				(unsigned long long)ino);
			return -EIO;
		}
		rc = sync_fetch_body(fs->sync, ino);
		if (rc)
			return rc;
	}
}

int write_content_fd(struct xfs *fs, const struct node *n)
{
	pthread_mutex_lock(&list_lock);
	struct wfile *w = wfind(n->ino);
	int fd = w && w->fd >= 0 ? fcntl(w->fd, F_DUPFD_CLOEXEC, 0) : -ENOENT;
	pthread_mutex_unlock(&list_lock);
	if (fd >= 0 || !n->content)
		return fd;
	char *p = journal_content_path(fs->cache, n->content);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	free(p);
	return fd < 0 ? -errno : fd;
}

int64_t write_size(uint64_t ino)
{
	/* on every getattr and readdir entry: nothing being written is the
	 * common case */
	if (!__atomic_load_n(&n_wfiles, __ATOMIC_ACQUIRE))
		return -1;
	pthread_mutex_lock(&list_lock);
	struct wfile *w = wfind(ino);
	struct stat sb;
	int64_t size = w && w->fd >= 0 && fstat(w->fd, &sb) == 0 ? sb.st_size : -1;
	pthread_mutex_unlock(&list_lock);
	return size;
}

static void done_change(struct xfs *fs, struct cache_changes *ch)
{
	sync_writes_kick(fs->sync);
	if (ch)
		notify_later(ch);
}

void xfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, struct fuse_file_info *fi)
{
	struct xfs *fs = fuse_req_userdata(req);
	if (!S_ISREG(mode) || vfile_is(parent)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	bool temp = !message_file_name(name);
	struct node n = { 0 };
	int rc = write_pim_refused(fs, parent, name);
	if (!rc)
		rc = journal_new_file(fs->cache, parent, name, temp, &n);
	if (!rc) {
		struct wfile *w;
		struct ilock *l;
		rc = wget_locked(fs, n.ino, true, &w, &l);
		if (!rc) {
			w->dirty = true;
			ino_unlock(l);
		}
		if (rc)
			journal_unlink(fs->cache, parent, name);
	}
	if (rc) {
		node_clear(&n);
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	fill_entry(fs, &n, &e);
	node_clear(&n);
	fi->fh = 0;
	fi->keep_cache = 0;
	log_dbg(LC_FS, "created '%s'%s", name, temp ? " (local only)" : "");
	fuse_reply_create(req, &e, fi);
}

void xfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	       off_t off, struct fuse_file_info *fi)
{
	struct xfs *fs = fuse_req_userdata(req);
	if (vfile_is(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	struct wfile *w;
	struct ilock *l;
	int rc = wget_locked(fs, ino, false, &w, &l);
	ssize_t n = -1;
	if (!rc) {
		n = pwrite(w->fd, buf, size, off);
		if (n < 0)
			rc = -errno;
		else
			w->dirty = true;
		ino_unlock(l);
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, (size_t)n);
}

int write_setattr(struct xfs *fs, fuse_ino_t ino, struct stat *attr, int to_set)
{
	if (!(to_set & FUSE_SET_ATTR_SIZE))
		return 0;  /* mode, owner, times: accepted, not kept */
	if (vfile_is(ino))
		return -EPERM;
	struct wfile *w;
	struct ilock *l;
	int rc = wget_locked(fs, ino, attr->st_size == 0, &w, &l);
	if (rc)
		return rc;
	if (ftruncate(w->fd, attr->st_size) < 0)
		rc = -errno;
	else
		w->dirty = true;
	ino_unlock(l);
	return rc;
}

/* What storing content in folder parent asks of the server (a node with
 * a server id is a draft being changed). */
static unsigned store_need(struct xfs *fs, uint64_t parent,
			   const char *server_id)
{
	int role = cache_role(fs->cache, parent);
	if (role == BE_OUTBOX)
		return BE_CAN_SEND;
	if (server_id)
		return BE_CAN_EDIT_DRAFT;
	return role == BE_DRAFTS ? BE_CAN_DRAFT : BE_CAN_SAVE;
}

/* Content refused at close(): one line where a user looks, the log
 * (stderr in the foreground; syslog, or the cache's log file, in the
 * background) and the status's last error. */
static void refused_note(struct xfs *fs, const char *name, const char *what,
			 const char *why, const char *kept)
{
	log_warn("'%s' %s (%s): not uploaded; its bytes are kept as "
		 ".exchangefs/rejected/%s", name, what, why, kept ? kept : "?");
	sync_note_failure(fs->sync, "'%s' %s (%s): kept as "
			  ".exchangefs/rejected/%s", name, what, why,
			  kept ? kept : "?");
}

/* Commit a dirty staging file (its inode lock held).  0, -errno, or 1 for a
 * message file whose content is empty (nothing committed): FLUSH judges
 * that at the last close only (empty_flush), and then asks again with
 * last set. */
static int commit(struct xfs *fs, uint64_t ino, bool last)
{
	struct wfile *w = wlookup(ino);
	if (!w || !w->dirty)
		return 0;
	struct node n = { 0 };
	int rc = cache_get(fs->cache, ino, &n);
	if (rc) {
		wdrop(ino);
		return rc == -ENOENT ? 0 : rc;
	}
	struct stat sb;
	if (fstat(w->fd, &sb) < 0) {
		node_clear(&n);
		return -errno;
	}
	struct cache_changes ch = { 0 };
	bool message = n.local == LOCAL_NONE;
	if (message && sb.st_size == 0 && !last) {
		/* empty: a new file (touch, or create before the first
		 * write), or one truncated by a shell's "cmd > x.eml", which
		 * closes a duplicate descriptor before cmd writes */
		node_clear(&n);
		return 1;
	}
	int64_t date = 0;
	char why[256];
	const char *what = NULL;
	int refuse = 0;
	if (message && !message_check_fd(w->fd, &date, why, sizeof(why))) {
		what = "is not a message";
		refuse = -EINVAL;
	} else if (message && !sync_can_store(fs->sync, store_need(fs, n.parent,
				n.server_id), why, sizeof(why))) {
		what = "cannot be stored";
		refuse = -ENOTSUP;
	}
	if (refuse) {
		char *kept = NULL;
		wclose(w);
		rc = journal_reject(fs->cache, ino, why, &kept, &ch);
		refused_note(fs, n.name, what, why, kept);
		free(kept);
		wdrop(ino);
		node_clear(&n);
		done_change(fs, &ch);
		return rc ? rc : refuse;
	}
	wclose(w);
	rc = journal_commit_content(fs->cache, ino, date, &ch);
	wdrop(ino);
	if (rc)
		log_err("cannot keep what was written to '%s': %s", n.name,
			strerror(-rc));
	else
		log_dbg(LC_FS, "'%s' saved (%lld bytes)%s", n.name,
			(long long)sb.st_size, message ? ", queued for the server" : "");
	node_clear(&n);
	/* the kernel has these pages already (it wrote them) */
	cache_changes_free(&ch);
	done_change(fs, NULL);
	return rc;
}

/* Whether process pid (a /proc name) holds inode ino of the mount at mnt
 * open: /proc/PID/fdinfo/FD gives each descriptor's inode, its link
 * whether it is on this mount. */
static bool pid_holds(const char *pid, uint64_t ino, const char *mnt)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%s/fdinfo", pid);
	DIR *d = opendir(path);
	if (!d)
		return false;
	bool found = false;
	size_t ml = strlen(mnt);
	struct dirent *de;
	while (!found && (de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fdinfo/%s", pid, de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		char line[128];
		unsigned long long i = 0;
		bool have = false;
		while (!have && fgets(line, sizeof(line), f))
			have = sscanf(line, "ino: %llu", &i) == 1;
		fclose(f);
		if (!have || i != ino)
			continue;
		char link[PATH_MAX];
		snprintf(path, sizeof(path), "/proc/%s/fd/%s", pid, de->d_name);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		found = !strncmp(link, mnt, ml) && link[ml] == '/';
	}
	closedir(d);
	return found;
}

/* Whether a process still holds ino open: the closing one (tid) first,
 * then any other we may look at (a child given the descriptor). */
static bool still_open(struct xfs *fs, pid_t tid, uint64_t ino)
{
	char *mnt = realpath(fs->mountpoint, NULL);
	if (!mnt)
		return true;  /* cannot tell: say nothing */
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)tid);
	bool held = pid_holds(pid, ino, mnt);
	DIR *d = held ? NULL : opendir("/proc");
	struct dirent *de;
	while (d && !held && (de = readdir(d)) != NULL)
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9' &&
		    strcmp(de->d_name, pid))
			held = pid_holds(de->d_name, ino, mnt);
	if (d)
		closedir(d);
	free(mnt);
	return held;
}

/* A message file closed empty.  FUSE sends a FLUSH at every close(), and
 * a shell's "cmd > x.eml" truncates, then closes a duplicate of the
 * descriptor before cmd writes: while a process holds the file, nothing
 * is judged (committing the emptiness refused a draft, and cmd's bytes
 * then went over its old content).  At the last close a new file is
 * refused like a non-message, EINVAL with the reason in the log and the
 * status, and stays where it is (empty, never uploaded), so "touch x.eml"
 * then writing it works; an emptied draft is refused as content (its
 * old content stays, the empty copy goes to rejected/). */
static int empty_flush(struct xfs *fs, fuse_req_t req, uint64_t ino)
{
	if (still_open(fs, fuse_req_ctx(req)->pid, ino))
		return 0;
	struct node n = { 0 };
	int rc = cache_get(fs->cache, ino, &n);
	if (!rc && (n.server_id || n.content)) {
		struct ilock *l = ino_lock(ino);
		rc = commit(fs, ino, true);
		ino_unlock(l);
	} else if (!rc) {
		log_warn("'%s' is empty, not a message: nothing is uploaded "
			 "until a message is written into it", n.name);
		sync_note_failure(fs->sync, "'%s' is empty, not a message: "
				  "not uploaded", n.name);
		rc = -EINVAL;
	}
	node_clear(&n);
	return rc == -ENOENT ? 0 : rc;
}

void xfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct xfs *fs = fuse_req_userdata(req);
	struct ilock *l = ino_lock(ino);
	int rc = commit(fs, ino, false);
	ino_unlock(l);
	if (rc == 1)
		rc = empty_flush(fs, req, ino);
	fuse_reply_err(req, -rc);
}

void xfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	       struct fuse_file_info *fi)
{
	/* staging files are fsynced when committed; an fsync before close
	 * makes what was written so far durable locally: on a copy of the fd,
	 * with no lock held, so a slow disk holds up only this caller */
	pthread_mutex_lock(&list_lock);
	struct wfile *w = wfind(ino);
	int fd = w && w->fd >= 0 ? fcntl(w->fd, F_DUPFD_CLOEXEC, 0) : -1;
	pthread_mutex_unlock(&list_lock);
	int rc = fd >= 0 && fsync(fd) < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	fuse_reply_err(req, -rc);
}

void xfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct xfs *fs = fuse_req_userdata(req);
	struct node n = { 0 };
	uint64_t ino = cache_lookup(fs->cache, parent, name, &n) == 0 ? n.ino : 0;
	node_clear(&n);
	int rc = write_pim_refused(fs, parent, name);
	if (!rc)
		rc = journal_unlink(fs->cache, parent, name);
	if (!rc && ino) {
		struct ilock *l = ino_lock(ino);
		wdrop(ino);
		char *staging = journal_staging_path(fs->cache, ino);
		unlink(staging);
		free(staging);
		ino_unlock(l);
	}
	done_change(fs, NULL);
	fuse_reply_err(req, -rc);
}

/* ---- what desktops make at the root: GIO's trash, dot-folders ----
 * (vfiles.c says how the trash is served.) */

/* Whether parent/name is one of the virtual directories. */
static bool virtual_dir(struct xfs *fs, fuse_ino_t parent, const char *name)
{
	return (parent == CACHE_ROOT_INO && (!strcmp(name, CTL_NAME) ||
					     vfile_trash_name(fs, name))) ||
	       parent == TRASH_DIR_INO || parent == CTL_DIR_INO;
}

/* A folder is never made on the server for a name starting with '.' (a
 * desktop's private directory: .Trash, .Trash-1000 of another user, a
 * thumbnail or index cache), nor inside the virtual directories: EPERM.
 * A server folder named ".x" shows as "．x" (U+FF0E), and mkdir of that
 * name makes one. */
static int mkdir_refused(fuse_ino_t parent, const char *name)
{
	if (name[0] == '.' || (parent != CACHE_ROOT_INO &&
			       parent < CACHE_FIRST_INO)) {
		log_dbg(LC_FS, "mkdir '%s' refused: a dot-folder or a virtual "
			"directory is never made on the server", name);
		return -EPERM;
	}
	return 0;
}

/* A rename into the trash's files/ (GIO's trash) moves the node to
 * Deleted Items, under its own name (GIO's may carry a ".2"), made free
 * there.  In Deleted Items already: ENOTSUP, and a file manager offers to
 * delete it (rm there deletes).  *name owned. */
static int trash_target(struct xfs *fs, const struct node *n,
			fuse_ino_t *newparent, char **name)
{
	uint64_t deleted = cache_special_ino(fs->cache, BE_DELETED);
	if (!deleted || n->parent == deleted)
		return -ENOTSUP;
	*newparent = deleted;
	*name = journal_free_name(fs->cache, deleted, n->name);
	return 0;
}

void xfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct xfs *fs = fuse_req_userdata(req);
	if (virtual_dir(fs, parent, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int rc = node_pim_refused(fs, parent, name);
	if (!rc)
		rc = journal_rmdir(fs->cache, parent, name);
	done_change(fs, NULL);
	fuse_reply_err(req, -rc);
}

void xfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode)
{
	struct xfs *fs = fuse_req_userdata(req);
	struct node n = { 0 };
	int rc = mkdir_refused(parent, name);
	if (!rc)
		rc = write_pim_refused(fs, parent, name);
	if (!rc)
		rc = journal_mkdir(fs->cache, parent, name, &n);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	fill_entry(fs, &n, &e);
	node_clear(&n);
	done_change(fs, NULL);
	fuse_reply_entry(req, &e);
}

/* The Date of a local file about to become a message, -1 if it is not a
 * message. */
static int64_t local_date(struct xfs *fs, const struct node *n)
{
	int fd = write_content_fd(fs, n);
	if (fd < 0)
		return -1;
	char why[160];
	int64_t date;
	bool ok = message_check_fd(fd, &date, why, sizeof(why));
	close(fd);
	if (!ok)
		log_warn("'%s' is not a message (%s): not uploaded", n->name, why);
	return ok ? date : -1;
}

void xfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct xfs *fs = fuse_req_userdata(req);
	struct node n = { 0 };
	char *trashed_as = NULL;
	const char *kernel_name = newname;
	int rc = virtual_dir(fs, parent, name) || parent == TRASH_DIR_INO ||
		 newparent == TRASH_DIR_INO || parent == TRASH_FILES_INO
		? -EPERM : cache_lookup(fs->cache, parent, name, &n);
	if (!rc)
		rc = node_pim_refused(fs, parent, name);
	if (!rc)
		rc = write_pim_refused(fs, newparent, newname);
	if (!rc && newparent == TRASH_FILES_INO) {
		rc = trash_target(fs, &n, &newparent, &trashed_as);
		newname = trashed_as;
		flags |= RENAME_NOREPLACE_FLAG;
	} else if (!rc && n.kind == NODE_FOLDER && newname[0] == '.') {
		rc = -EPERM;  /* as mkdir: no dot-folder on the server */
	}
	if (rc) {
		node_clear(&n);
		fuse_reply_err(req, -rc);
		return;
	}
	/* a local file still being written is saved first, so the rename
	 * moves what the writer wrote */
	if (n.local != LOCAL_NONE) {
		struct ilock *l = ino_lock(n.ino);
		rc = commit(fs, n.ino, true);
		ino_unlock(l);
		if (rc > 0)
			rc = 0;  /* (an empty message: only for LOCAL_NONE) */
	}
	int64_t date = -1;
	if (!rc) {
		/* re-read: the commit may have changed its content */
		node_clear(&n);
		rc = cache_lookup(fs->cache, parent, name, &n);
	}
	/* only a name that makes it a message needs its Date (and a check:
	 * renaming one swap file over another is no message) */
	if (!rc && n.kind == NODE_ITEM && n.content &&
	    (n.local != LOCAL_NONE || !n.server_id) &&
	    message_file_name(newname) && newparent != CACHE_REJECTED_INO) {
		date = local_date(fs, &n);
		/* ... and one the server can store (an editor's save over a
		 * draft changes it) */
		struct node dst = { 0 };
		bool over = cache_lookup(fs->cache, newparent, newname, &dst) == 0;
		char why[256];
		if (date >= 0 && !sync_can_store(fs->sync, store_need(fs, newparent,
				over ? dst.server_id : NULL), why, sizeof(why))) {
			log_warn("'%s' not renamed to '%s': %s", name, newname, why);
			sync_note_failure(fs->sync, "'%s' not renamed to '%s': %s",
					  name, newname, why);
			rc = -ENOTSUP;
		}
		node_clear(&dst);
	}
	struct cache_changes ch = { 0 };
	if (!rc)
		rc = journal_rename(fs->cache, parent, name, newparent, newname,
				    flags, date, &ch);
	if (!rc && trashed_as) {
		/* the kernel put its dentry in files/: make it look again
		 * there, and in Deleted Items */
		cache_change_add(&ch, CC_RENAMED, n.ino, TRASH_FILES_INO,
				 kernel_name, newparent, trashed_as);
		ch.v[ch.n - 1].dir = n.kind == NODE_FOLDER;
		log_dbg(LC_FS, "'%s' trashed: moved to Deleted Items as '%s'",
			name, trashed_as);
	}
	node_clear(&n);
	free(trashed_as);
	done_change(fs, &ch);
	fuse_reply_err(req, -rc);
}

/* ---- flags as extended attributes ---- */

const char *const xattr_settable[] = {
	"user.mail.read", "user.mail.flag", "user.mail.categories", NULL,
};

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on", NULL };
	static const char *const no[] = { "0", "false", "no", "off", NULL };
	for (int i = 0; yes[i]; i++)
		if (!strcasecmp(v, yes[i]))
			return *out = true, 0;
	for (int i = 0; no[i]; i++)
		if (!strcasecmp(v, no[i]))
			return *out = false, 0;
	return -EINVAL;
}

static int parse_flag(const char *v, enum be_flag *out)
{
	if (!strcasecmp(v, "none") || !strcasecmp(v, "0") || !*v)
		*out = BE_FLAG_NONE;
	else if (!strcasecmp(v, "flagged") || !strcasecmp(v, "1"))
		*out = BE_FLAG_FLAGGED;
	else if (!strcasecmp(v, "complete") || !strcasecmp(v, "completed"))
		*out = BE_FLAG_COMPLETE;
	else
		return -EINVAL;
	return 0;
}

/* "a, b,,c " -> "a,b,c" (owned) */
static char *clean_categories(const char *v)
{
	struct buf b;
	buf_init(&b, 0);
	const char *p = v;
	while (*p) {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end > start) {
			if (b.len)
				buf_puts(&b, ",");
			buf_append(&b, start, (size_t)(end - start));
		}
	}
	if (!b.data)
		buf_append(&b, "", 0);
	return b.data;
}

int write_setxattr(struct xfs *fs, fuse_ino_t ino, const char *name,
		   const char *value, size_t size)
{
	if (strncmp(name, "user.", 5))
		return -ENOTSUP;
	if (memchr(value, 0, size) || size > 4096)
		return -EINVAL;
	char *v = xstrndup(value, size);
	struct be_props p = { 0 };
	char *cats = NULL;
	int rc = 0;
	if (!strcmp(name, "user.mail.read")) {
		p.mask = BE_PROP_READ;
		char *t = v;
		while (*t == ' ')
			t++;
		t[strcspn(t, " \n")] = 0;
		rc = parse_bool(t, &p.read);
	} else if (!strcmp(name, "user.mail.flag")) {
		p.mask = BE_PROP_FLAG;
		v[strcspn(v, " \n")] = 0;
		rc = parse_flag(v, &p.flag);
	} else if (!strcmp(name, "user.mail.categories")) {
		p.mask = BE_PROP_CATEGORIES;
		v[strcspn(v, "\n")] = 0;
		p.categories = cats = clean_categories(v);
	} else {
		rc = -EPERM;  /* what the server says is not ours to set */
	}
	if (!rc && kind_of_item(fs->cache, ino)->pim) {
		struct node n = { 0 };
		if (cache_get(fs->cache, ino, &n) == 0)
			rc = write_pim_refused(fs, n.parent, n.name);
		node_clear(&n);
	}
	if (!rc)
		rc = journal_set_props(fs->cache, ino, &p);
	free(v);
	free(cats);
	if (!rc) {
		struct cache_changes ch = { 0 };
		cache_change_add(&ch, CC_ATTR, ino, 0, NULL, 0, NULL);
		done_change(fs, &ch);
	}
	return rc;
}

int write_removexattr(struct xfs *fs, fuse_ino_t ino, const char *name)
{
	if (!strcmp(name, "user.mail.categories"))
		return write_setxattr(fs, ino, name, "", 0);
	if (!strcmp(name, "user.mail.flag"))
		return write_setxattr(fs, ino, name, "none", 4);
	return strncmp(name, "user.", 5) ? -ENOTSUP : -EPERM;
}
