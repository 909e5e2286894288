/*
 * ops.c - the FUSE low-level request handlers: folders are directories,
 * messages are .eml files whose content is the server's exact MIME.  Every
 * request gets exactly one reply: helpers return 0 or -errno and the
 * handler sends either the success reply or fuse_reply_err once.
 *
 * Requests that change the mailbox are in write.c.
 */
#include "fs.h"
#include "cache/journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static struct xfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* A request that waits in the engine (a folder's first sync, a body)
 * honours FUSE_INTERRUPT: libfuse calls on_interrupt from the thread that
 * read the INTERRUPT, which wakes every wait so it polls
 * fuse_req_interrupted() now, and the wait ends with -EINTR. */
static bool req_interrupted(void *arg)
{
	return fuse_req_interrupted(arg);
}

static void on_interrupt(fuse_req_t req, void *arg)
{
	(void)req;
	sync_wake_waiters(arg);
}

static struct sync_waiter wait_begin(fuse_req_t req, struct xfs *fs)
{
	/* before any lock: libfuse calls on_interrupt at once if the
	 * request is already interrupted */
	fuse_req_interrupt_func(req, on_interrupt, fs->sync);
	return (struct sync_waiter){ req_interrupted, req };
}

static void wait_end(fuse_req_t req)
{
	fuse_req_interrupt_func(req, NULL, NULL);
}

static void node_stat(struct xfs *fs, const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = n->mtime;
	if (n->kind == NODE_FOLDER) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		st->st_size = 4096;
	} else {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		/* exact once the body is cached; the server's estimate
		 * before (reads always go to the real end of the message) */
		st->st_size = n->body_size >= 0 ? n->body_size
						: (n->size > 0 ? n->size : 0);
		int64_t writing = write_size(n->ino);
		if (writing >= 0)
			st->st_size = writing;
	}
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
}

void fill_entry(struct xfs *fs, const struct node *n,
		struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->generation = 1;
	e->entry_timeout = fs->entry_timeout;
	e->attr_timeout = fs->attr_timeout;
	node_stat(fs, n, &e->attr);
}

static void xfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct xfs *fs = userdata;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	/* Zero-message opens: the kernel opens files itself and keeps their
	 * page cache across opens, so a warm grep -r costs no request per
	 * file.  Bodies are then fetched at the first READ.  The kernel drops
	 * cached pages when size or mtime change (auto_inval_data): after a
	 * sync changed a message, and for the control files. */
	if ((conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) && !fs->open_requests) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT | FUSE_CAP_AUTO_INVAL_DATA;
		fs->zero_open = true;
	} else {
		conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	}
	/* Every listing chunk carries its entries' attributes, not only the
	 * first (readdirplus "auto"): a grep -r or find after a remount, or
	 * once the entry timeouts ran out, then costs one READDIRPLUS per
	 * chunk instead of one LOOKUP per file (tests/bench/bench_warm.py). */
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	}
	/* O_TRUNC must reach us as a SETATTR even when opens do not */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	atomic_store(&fs->kernel_ready, true);
	log_dbg(LC_FS, "kernel connection ready (proto %u.%u, capable 0x%x, want 0x%x)",
		conn->proto_major, conn->proto_minor, conn->capable, conn->want);
}

static void xfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct xfs *fs = fs_of(req);
	struct fuse_entry_param e;
	int rrc = reflecting(req) ? reflect_lookup(fs, parent, name, &e) : 0;
	if (rrc > 0) {
		fuse_reply_entry(req, &e);
		return;
	}
	if (rrc < 0) {
		fuse_reply_err(req, -rrc);
		return;
	}
	if (vfile_lookup(fs, parent, name, &e) == 0) {
		fuse_reply_entry(req, &e);
		return;
	}
	struct node n = { 0 };
	int rc = cache_lookup(fs->cache, parent, name, &n);
	if (rc == -ENOENT) {
		/* A negative entry is safe to cache in a synced folder: new
		 * names are invalidated when they appear.  Before the first
		 * sync of a folder, never cache a miss. */
		struct node p = { 0 };
		memset(&e, 0, sizeof(e));
		if (cache_get(fs->cache, parent, &p) == 0 && p.synced)
			e.entry_timeout = fs->entry_timeout;
		node_clear(&p);
		if (e.entry_timeout > 0)
			fuse_reply_entry(req, &e);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fill_entry(fs, &n, &e);
	node_clear(&n);
	fuse_reply_entry(req, &e);
}

static void xfs_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct xfs *fs = fs_of(req);
	struct stat st;
	if (vfile_is(ino) || ino == CACHE_REJECTED_INO ||
	    ino == CACHE_TRASH_INFO_INO) {
		vfile_stat(fs, ino, &st);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	struct node n = { 0 };
	int rc = cache_get(fs->cache, ino, &n);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	node_stat(fs, &n, &st);
	node_clear(&n);
	fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void xfs_opendir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct xfs *fs = fs_of(req);
	if (ino < CACHE_FIRST_INO) {
		fuse_reply_open(req, fi);
		return;
	}
	/* a listing is never partial: the first one of a folder waits for
	 * its first complete sync */
	struct sync_waiter w = wait_begin(req, fs);
	int rc = sync_wait_folder(fs->sync, ino, &w);
	wait_end(req);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fuse_reply_open(req, fi);
}

struct dir_fill {
	struct xfs *fs;
	fuse_req_t req;
	char *buf;
	size_t size, used;
	bool plus, full;
};

static int add_entry(void *arg, const struct node *n)
{
	struct dir_fill *d = arg;
	struct fuse_entry_param e;
	fill_entry(d->fs, n, &e);
	size_t len;
	if (d->plus)
		len = fuse_add_direntry_plus(d->req, d->buf + d->used,
					     d->size - d->used, n->name, &e,
					     (off_t)n->ino);
	else
		len = fuse_add_direntry(d->req, d->buf + d->used,
					d->size - d->used, n->name, &e.attr,
					(off_t)n->ino);
	if (len > d->size - d->used) {
		d->full = true;
		return 1;
	}
	d->used += len;
	return 0;
}

/* Offsets: 1 after ".", 2 after "..", then the ino of the last entry (a
 * stable cookie: entries added or removed meanwhile do not shift it). */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
{
	struct xfs *fs = fs_of(req);
	if (vfile_is(ino)) {
		vfile_readdir(fs, req, ino, size, off, plus);
		return;
	}
	struct dir_fill d = { fs, req, xcalloc(1, size), size, 0, plus, false };
	static const char *const dots[] = { ".", ".." };
	for (off_t i = off; i < 2; i++) {
		struct fuse_entry_param e = { 0 };
		e.attr.st_mode = S_IFDIR;
		e.attr.st_ino = i == 0 ? ino : CACHE_ROOT_INO;
		size_t len = plus
			? fuse_add_direntry_plus(req, d.buf + d.used, size - d.used,
						 dots[i], &e, i + 1)
			: fuse_add_direntry(req, d.buf + d.used, size - d.used,
					    dots[i], &e.attr, i + 1);
		if (len > size - d.used) {
			d.full = true;
			break;
		}
		d.used += len;
	}
	int rc = 0;
	if (!d.full)
		rc = cache_list(fs->cache, ino, off <= 2 ? 0 : (uint64_t)off,
				add_entry, &d);
	if (rc && !d.used)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

static void xfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

static void xfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

/* Open a message: its cached body, fetched first if need be. */
static int open_item(fuse_req_t req, struct xfs *fs, fuse_ino_t ino,
		     struct fuse_file_info *fi, int *fdp)
{
	struct node n = { 0 };
	int rc = cache_get(fs->cache, ino, &n);
	if (rc)
		return rc;
	enum node_kind kind = n.kind;
	int64_t shown = n.body_size >= 0 ? n.body_size : n.size;
	if (kind != NODE_ITEM) {
		node_clear(&n);
		return -EISDIR;
	}
	int fd = write_content_fd(fs, &n);
	node_clear(&n);
	if (fd >= 0) {
		*fdp = fd;
		fi->keep_cache = 0;
		return 0;
	}
	fd = cache_body_open(fs->cache, ino);
	bool fetched = false;
	if (fd < 0) {
		struct sync_waiter w = wait_begin(req, fs);
		rc = sync_fetch_body_for(fs->sync, ino, &w);
		wait_end(req);
		if (rc)
			return rc;
		fd = cache_body_open(fs->cache, ino);
		if (fd < 0)
			return -EIO;
		fetched = true;
	}
	*fdp = fd;
	/* A body fetched now may differ from bytes the kernel cached from
	 * an earlier fetch (servers rebuild MIME), and its exact size may
	 * differ from the estimate stat showed: drop both. */
	fi->keep_cache = !fetched;
	if (fetched && atomic_load(&fs->kernel_ready)) {
		struct stat sb;
		if (fstat(fd, &sb) == 0 && sb.st_size != shown)
			fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	}
	return 0;
}

static void xfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct xfs *fs = fs_of(req);
	if (fs->zero_open) {
		/* "success, and do not ask again": writes still come to us
		 * as WRITE/SETATTR requests and are refused there */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (reflecting(req)) {
		fi->fh = 0;
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		if (fs->read_only) {
			fuse_reply_err(req, EROFS);
			return;
		}
		/* writes are served by inode (write.c), like with
		 * zero-message opens */
		struct node n = { 0 };
		int rc = vfile_is(ino) ? -EPERM : cache_get(fs->cache, ino, &n);
		if (!rc && n.kind == NODE_ITEM)
			rc = write_pim_refused(fs, n.parent, n.name);
		if (!rc && !write_allowed(fs, &n))
			rc = -EPERM;
		node_clear(&n);
		if (rc) {
			fuse_reply_err(req, -rc);
			return;
		}
		fi->fh = 0;
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
		return;
	}
	int fd = -1, rc;
	if (vfile_is(ino))
		rc = -EISDIR;  /* the control directory; status is a link */
	else
		rc = open_item(req, fs, ino, fi, &fd);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = handle_new(fd);
	if (fuse_reply_open(req, fi) == -ENOENT)
		handle_release(fi->fh);  /* the opener was interrupted */
}

static void reply_fd(fuse_req_t req, int fd, size_t size, off_t off)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = fd;
	bv.buf[0].pos = off;
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
}

/* A READ without an open handle (zero-message opens): serve it by inode,
 * fetching the body first if it is not cached. */
static void read_by_ino(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	struct xfs *fs = fs_of(req);
	if (vfile_is(ino)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	struct node ln = { 0 };
	int fd = cache_get(fs->cache, ino, &ln) == 0 ? write_content_fd(fs, &ln)
						      : -ENOENT;
	node_clear(&ln);
	if (fd >= 0) {
		reply_fd(req, fd, size, off);
		close(fd);
		return;
	}
	fd = cache_body_open(fs->cache, ino);
	if (fd < 0) {
		struct node n = { 0 };
		int rc = cache_get(fs->cache, ino, &n);
		int64_t estimate = n.size;
		node_clear(&n);
		if (!rc) {
			struct sync_waiter w = wait_begin(req, fs);
			rc = sync_fetch_body_for(fs->sync, ino, &w);
			wait_end(req);
		}
		if (!rc)
			fd = cache_body_open(fs->cache, ino);
		if (fd < 0) {
			fuse_reply_err(req, rc ? -rc : EIO);
			return;
		}
		/* The kernel sized this read by the server's estimate.  A
		 * body larger than that: drop the cached attributes (only
		 * them: no page is touched, so this is safe inside a READ),
		 * and the next read past the estimate learns the exact size.
		 * A body smaller or equal: the short read itself makes the
		 * kernel shrink the size; an invalidation here would stop it. */
		struct stat sb;
		if (fstat(fd, &sb) == 0 && sb.st_size > estimate &&
		    atomic_load(&fs->kernel_ready))
			fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	}
	reply_fd(req, fd, size, off);
	close(fd);
}

static void xfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	if (!fi->fh) {
		read_by_ino(req, ino, size, off);
		return;
	}
	struct handle *h = handle_get(fi->fh);
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	reply_fd(req, h->fd, size, off);
	handle_put(h);
}

static void xfs_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	if (fi->fh)
		handle_release(fi->fh);
	fuse_reply_err(req, 0);
}

/* df shows the cache: its size is --cache-size (unlimited: what it holds
 * plus the free space of its disk), used is the bodies it holds, and
 * available is the free space of the disk it lives on, which is what a
 * write can use: written files are staged there, and bodies are evicted
 * to stay within the limit, so a cache full of bodies does not stop a
 * copy (available may then exceed size - used).  An answer of 0
 * available made file managers refuse to copy. */
static void xfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct xfs *fs = fs_of(req);
	struct cache_stats cs;
	cache_stats(fs->cache, &cs);
	const uint64_t bs = 4096;
	struct statvfs disk;
	uint64_t avail = 0, ffree = 1u << 20;
	if (statvfs(cache_dir(fs->cache), &disk) == 0) {
		avail = (uint64_t)disk.f_bavail * disk.f_frsize / bs;
		ffree = disk.f_favail;
	}
	uint64_t used = ((uint64_t)cs.body_bytes + bs - 1) / bs;
	uint64_t size = cs.body_limit > 0 ? ((uint64_t)cs.body_limit + bs - 1) / bs
					  : used + avail;
	if (size < used)
		size = used;  /* over the limit until eviction catches up */
	struct statvfs sv = { 0 };
	sv.f_bsize = sv.f_frsize = bs;
	sv.f_blocks = size;
	sv.f_bfree = size - used;  /* df's "used" is blocks - bfree */
	sv.f_bavail = avail;
	sv.f_files = (fsfilcnt_t)(cs.folders + cs.items) + ffree;
	sv.f_ffree = sv.f_favail = ffree;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes: what the server says about a message ---- */

struct xattr_val {
	const char *name;
	char *value;  /* owned */
};

static void put_attr(struct xattr_val *v, size_t *n, const char *name,
		     char *value)
{
	if (!value)
		return;
	v[*n].name = name;
	v[(*n)++].value = value;
}

static char *fmt_time(int64_t t)
{
	if (!t)
		return NULL;
	time_t tt = (time_t)t;
	struct tm tm;
	char s[64];
	gmtime_r(&tt, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(s);
}

static char *fmt_bool(int v)
{
	return v < 0 ? NULL : xstrdup(v ? "1" : "0");
}

static size_t node_xattrs(const struct node *n, struct xattr_val *v)
{
	size_t k = 0;
	put_attr(v, &k, "user.exchangefs.id", xstrdup(n->server_id));
	put_attr(v, &k, "user.exchangefs.error", xstrdup(n->error));
	if (n->pend)
		put_attr(v, &k, "user.exchangefs.pending", xstrdup("1"));
	put_attr(v, &k, "user.exchangefs.change_key", xstrdup(n->change_key));
	if (n->kind == NODE_FOLDER) {
		put_attr(v, &k, "user.exchangefs.folder_class", xstrdup(n->folder_class));
		put_attr(v, &k, "user.exchangefs.server_name", xstrdup(n->server_name));
		if (n->total >= 0)
			put_attr(v, &k, "user.mail.total", xasprintf("%lld", (long long)n->total));
		if (n->unread >= 0)
			put_attr(v, &k, "user.mail.unread", xasprintf("%lld", (long long)n->unread));
		return k;
	}
	put_attr(v, &k, "user.mail.subject", xstrdup(n->subject));
	put_attr(v, &k, "user.mail.from", xstrdup(n->sender));
	put_attr(v, &k, "user.mail.date", fmt_time(n->received));
	put_attr(v, &k, "user.mail.sent", fmt_time(n->sent));
	if (n->local != LOCAL_NONE)
		return k;  /* a local file, not a message */
	put_attr(v, &k, "user.mail.read", fmt_bool(n->is_read));
	static const char *const flags[] = { "none", "flagged", "complete" };
	put_attr(v, &k, "user.mail.flag", xstrdup(flags[n->flag > 0 && n->flag <= 2
							   ? n->flag : 0]));
	put_attr(v, &k, "user.mail.categories",
		 xstrdup(n->categories ? n->categories : ""));
	put_attr(v, &k, "user.mail.draft", fmt_bool(n->is_draft));
	put_attr(v, &k, "user.mail.class", xstrdup(n->item_class));
	put_attr(v, &k, "user.mail.message_id", xstrdup(n->message_id));
	put_attr(v, &k, "user.mail.has_attachments", fmt_bool(n->has_attachments));
	if (n->size >= 0)
		put_attr(v, &k, "user.mail.size", xasprintf("%lld", (long long)n->size));
	put_attr(v, &k, "user.exchangefs.cached", fmt_bool(n->body_size >= 0));
	return k;
}

#define MAX_XATTRS 24

static int load_xattrs(struct xfs *fs, fuse_ino_t ino, struct xattr_val *v,
		       size_t *n)
{
	*n = 0;
	if (ino < CACHE_FIRST_INO)
		return 0;
	struct node node = { 0 };
	int rc = cache_get(fs->cache, ino, &node);
	if (rc)
		return rc;
	*n = node_xattrs(&node, v);
	node_clear(&node);
	return 0;
}

static void free_xattrs(struct xattr_val *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].value);
}

/* Names outside user.* are a namespace we do not have: EOPNOTSUPP, as
 * ext4 without ACLs answers for system.posix_acl_access (not ENODATA,
 * "this file has none").  ls -l probes security.selinux and
 * system.posix_acl_access on every file and the kernel cannot cache a
 * FUSE answer to either; coreutils remembers EOPNOTSUPP per device and
 * stops asking, so a listing costs two such requests, not two per file. */
static void xfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	struct xattr_val v[MAX_XATTRS];
	size_t n;
	int rc = strncmp(name, "user.", 5) ? -EOPNOTSUPP
					   : load_xattrs(fs_of(req), ino, v, &n);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	const char *val = NULL;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			val = v[i].value;
	if (!val)
		fuse_reply_err(req, ENODATA);
	else if (!size)
		fuse_reply_xattr(req, strlen(val));
	else if (size < strlen(val))
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, strlen(val));
	free_xattrs(v, n);
}

static void xfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct xattr_val v[MAX_XATTRS];
	size_t n;
	int rc = load_xattrs(fs_of(req), ino, v, &n);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++)
		buf_append(&b, v[i].name, strlen(v[i].name) + 1);
	if (!size)
		fuse_reply_xattr(req, b.len);
	else if (size < b.len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, b.data, b.len);
	buf_free(&b);
	free_xattrs(v, n);
}

/* ---- requests that change the mailbox: see write.c ---- */

/* Requests that change something.  Those of the reflector (notify.c)
 * mirror a change the cache holds already: they are answered from it and
 * change nothing.  On a read-only mount (-o ro, kept read-write underneath
 * for the reflector) the user's are refused with EROFS. */
static bool refused(fuse_req_t req)
{
	if (!fs_of(req)->read_only)
		return false;
	fuse_reply_err(req, EROFS);
	return true;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	if (reflecting(req)) {
		struct fuse_entry_param e;
		int rc = reflect_entry(fs_of(req), parent, name, &e);
		fi->fh = 0;
		if (rc)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_create(req, &e, fi);
		return;
	}
	if (!refused(req))
		xfs_create(req, parent, name, mode, fi);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	if (reflecting(req)) {
		struct fuse_entry_param e;
		int rc = reflect_entry(fs_of(req), parent, name, &e);
		if (rc)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_entry(req, &e);
		return;
	}
	if (!refused(req))
		xfs_mkdir(req, parent, name, mode);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (reflecting(req))
		fuse_reply_err(req, 0);
	else if (!refused(req))
		xfs_unlink(req, parent, name);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (reflecting(req))
		fuse_reply_err(req, 0);
	else if (!refused(req))
		xfs_rmdir(req, parent, name);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	if (reflecting(req))
		fuse_reply_err(req, 0);
	else if (!refused(req))
		xfs_rename(req, parent, name, newparent, newname, flags);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	if (reflecting(req))
		fuse_reply_err(req, EPERM);  /* it never writes */
	else if (!refused(req))
		xfs_write(req, ino, buf, size, off, fi);
}

/* With zero-message opens a FLUSH at each close is the one request a warm
 * read still costs (the kernel sends it for read-only opens too), and on
 * a read-write mount it is when a written file is committed.  A read-only
 * mount commits nothing: ENOSYS, and the kernel never sends one again
 * (the reflector's closes need none either). */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fs_of(req)->read_only)
		fuse_reply_err(req, ENOSYS);
	else if (reflecting(req))
		fuse_reply_err(req, 0);
	else
		xfs_flush(req, ino, fi);
}

static void xfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	struct xfs *fs = fs_of(req);
	if (reflecting(req)) {
		xfs_getattr(req, ino, fi);
		return;
	}
	if (refused(req))
		return;
	int rc = write_setattr(fs, ino, attr, to_set);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	xfs_getattr(req, ino, fi);
}

static void xfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	if (refused(req))
		return;
	fuse_reply_err(req, -write_setxattr(fs_of(req), ino, name, value, size));
}

static void xfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (refused(req))
		return;
	fuse_reply_err(req, -write_removexattr(fs_of(req), ino, name));
}

static void eperm_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EPERM);
}

static void xfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char *target = NULL;
	int rc = vfile_is(ino) ? vfile_readlink(fs_of(req), ino, &target)
			       : -EINVAL;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, target);
	free(target);
}

static void eperm_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			  const char *name)
{
	fuse_reply_err(req, EPERM);
}

static void eperm_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		       const char *newname)
{
	fuse_reply_err(req, EPERM);
}

const struct fuse_lowlevel_ops xfs_ops = {
	.init = xfs_init,
	.lookup = xfs_lookup,
	.getattr = xfs_getattr,
	.opendir = xfs_opendir,
	.readdir = xfs_readdir,
	.readdirplus = xfs_readdirplus,
	.readlink = xfs_readlink,
	.open = xfs_open,
	.read = xfs_read,
	.release = xfs_release,
	.statfs = xfs_statfs,
	.getxattr = xfs_getxattr,
	.listxattr = xfs_listxattr,
	.setattr = xfs_setattr,
	.write = op_write,
	.flush = op_flush,
	.fsync = xfs_fsync,
	.mknod = eperm_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.setxattr = xfs_setxattr,
	.removexattr = xfs_removexattr,
	.symlink = eperm_symlink,
	.link = eperm_link,
};
