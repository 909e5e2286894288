/*
 * vfiles.c - the control entry ".exchangefs" at the root of the mount.  It
 * resolves by name but is never listed by readdir, so grep -r and find do
 * not descend into it.  It holds "status": connection state, per-folder
 * sync progress, the last error, cache size, queued changes; and
 * "rejected/", files written as messages that were not (their nodes live in
 * the cache under CACHE_REJECTED_INO and are served like messages).  Content is rendered at open
 * and served with direct_io, so every read sees fresh figures.
 */
#include "fs.h"
#include "cache/journal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const struct {
	fuse_ino_t ino;
	const char *name;
} vfiles[] = {
	{ CTL_STATUS_INO, "status" },
	{ CACHE_REJECTED_INO, "rejected" },
};

/* The status as rendered for the last stat.  The kernel clips a read to
 * the size the stat gave, so the READ that follows a stat must get that
 * same rendering: a newer, longer one would be cut, possibly inside a
 * UTF-8 character.  It serves one read from offset 0 soon after the stat
 * (and the reads further into the same pass); any other read from offset
 * 0 (the kernel skips a stat within the same tick) renders afresh. */
static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct buf snap;
static bool snap_used;
static int64_t snap_at;
#define SNAP_MAX_AGE_MS 100  /* a stat and the read it sized are close */

int vfile_read(struct xfs *fs, fuse_ino_t ino, off_t off, struct buf *out)
{
	if (ino != CTL_STATUS_INO)
		return -EISDIR;
	pthread_mutex_lock(&snap_lock);
	if (!snap.data || (off == 0 && (snap_used ||
					now_ms() - snap_at > SNAP_MAX_AGE_MS))) {
		buf_reset(&snap);
		sync_status(fs->sync, &snap);
	}
	if (off == 0)
		snap_used = true;
	buf_append(out, snap.data ? snap.data : "", snap.len);
	pthread_mutex_unlock(&snap_lock);
	return 0;
}

bool vfile_is(fuse_ino_t ino)
{
	return ino == CTL_DIR_INO || ino == CTL_STATUS_INO;
}

int vfile_stat(struct xfs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = time(NULL);
	if (ino == CACHE_REJECTED_INO) {
		/* messages the server could not take, kept by name */
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (ino == CTL_DIR_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	if (ino == CTL_STATUS_INO) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		/* The size of the content as of now, and an mtime that moves,
		 * so that the kernel (which may cache the pages when opens do
		 * not reach us) reads it afresh every time. */
		struct buf b;
		buf_init(&b, 0);
		pthread_mutex_lock(&snap_lock);
		buf_reset(&snap);
		sync_status(fs->sync, &snap);
		snap_used = false;
		snap_at = now_ms();
		buf_append(&b, snap.data ? snap.data : "", snap.len);
		pthread_mutex_unlock(&snap_lock);
		st->st_size = (off_t)b.len;
		buf_free(&b);
		clock_gettime(CLOCK_REALTIME, &st->st_mtim);
		st->st_ctim = st->st_mtim;
		return 0;
	}
	return -ENOENT;
}

int vfile_lookup(struct xfs *fs, fuse_ino_t parent, const char *name,
		 struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	if (parent == CACHE_ROOT_INO && !strcmp(name, CTL_NAME))
		e->ino = CTL_DIR_INO;
	for (size_t i = 0; parent == CTL_DIR_INO && i < sizeof(vfiles) /
	     sizeof(vfiles[0]); i++)
		if (!strcmp(name, vfiles[i].name))
			e->ino = vfiles[i].ino;
	if (!e->ino)
		return -ENOENT;
	e->attr_timeout = 0;
	e->entry_timeout = 1;
	return vfile_stat(fs, e->ino, &e->attr);
}

int vfile_render(struct xfs *fs, fuse_ino_t ino, struct buf *out)
{
	if (ino != CTL_STATUS_INO)
		return -EISDIR;
	sync_status(fs->sync, out);
	return 0;
}

int vfile_readdir(struct xfs *fs, fuse_req_t req, fuse_ino_t ino, size_t size,
		  off_t off, bool plus)
{
	char *buf = xcalloc(1, size);
	size_t used = 0;
	struct {
		fuse_ino_t ino;
		const char *name;
	} ents[] = { { CTL_DIR_INO, "." }, { CACHE_ROOT_INO, ".." },
		     { CTL_STATUS_INO, "status" },
		     { CACHE_REJECTED_INO, "rejected" } };
	for (size_t i = (size_t)off; i < sizeof(ents) / sizeof(ents[0]); i++) {
		struct fuse_entry_param e = { 0 };
		e.ino = ents[i].ino;
		if (ents[i].ino == CACHE_ROOT_INO) {
			e.attr.st_mode = S_IFDIR | 0755;
			e.attr.st_ino = CACHE_ROOT_INO;
		} else {
			vfile_stat(fs, ents[i].ino, &e.attr);
		}
		size_t n;
		if (plus) {
			/* only real entries count as lookups */
			if (i < 2)
				e.ino = 0, e.attr.st_ino = ents[i].ino;
			e.entry_timeout = 1;
			e.attr_timeout = 0;  /* status: sized afresh at each stat */
			n = fuse_add_direntry_plus(req, buf + used, size - used,
						   ents[i].name, &e, (off_t)i + 1);
		} else {
			n = fuse_add_direntry(req, buf + used, size - used,
					      ents[i].name, &e.attr, (off_t)i + 1);
		}
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
	return 0;
}
