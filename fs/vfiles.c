/*
 * vfiles.c - the control entry ".exchangefs" at the root of the mount.  It
 * resolves by name but is never listed by readdir, so grep -r and find do
 * not descend into it.  It holds "status": connection state, per-folder
 * sync progress, the last error, cache size, queued changes; and
 * "rejected/", files written as messages that were not (their nodes live in
 * the cache under CACHE_REJECTED_INO and are served like messages).
 * "status" is a symbolic link to a file rendered each time it is followed
 * (vfile_readlink), so every open reads fresh figures, whole.
 *
 * ".Trash-<uid>" is where GIO (g_file_trash: gio trash, a file manager's
 * Delete key) puts what is trashed on a mount without a usable .Trash: it
 * looks the directory up (making it if missing), makes files/ and info/
 * in it, writes info/NAME.trashinfo and renames the file into files/.
 * Left to the mailbox, that made three server folders and moved mail into
 * them.  Here it resolves at the root once Deleted Items is known (uid:
 * the mount's owner; never listed, like .exchangefs); files/ is always
 * empty: a rename into it moves the message or folder to Deleted Items
 * (write.c), so a trashed message lands where rm puts it; info/ holds
 * GIO's .trashinfo files as local-only nodes (CACHE_TRASH_INFO_INO),
 * never uploaded and gone at the next start.
 */
#include "fs.h"
#include "cache/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct {
	fuse_ino_t ino;
	const char *name;
} vfiles[] = {
	{ CTL_STATUS_INO, "status" },
	{ CACHE_REJECTED_INO, "rejected" },
};

/* The status is a symbolic link to a file in the cache directory that is
 * rendered afresh, and replaced by rename, each time the link is followed.
 * With zero-message opens there is no open handle to hold one rendering
 * for a reader, and the kernel clips reads to the size its last stat gave:
 * a regular file whose text changes while it is read splices two
 * renderings (cutting a UTF-8 character, or mixing old and new figures).
 * Each open of the link's target holds exactly one rendering. */
int vfile_readlink(struct xfs *fs, fuse_ino_t ino, char **target)
{
	if (ino != CTL_STATUS_INO)
		return -EINVAL;
	const char *dir = cache_dir(fs->cache);
	char *final = xasprintf("%s/status", dir);
	char *tmp = xasprintf("%s/.status.%ld", dir, (long)gettid());
	struct buf b;
	buf_init(&b, 0);
	sync_status(fs->sync, &b);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		      0600);
	if (fd >= 0 && write_all(fd, b.data ? b.data : "", b.len) < 0) {
		int e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	if (fd < 0 || close(fd) < 0 || rename(tmp, final) < 0) {
		rc = -errno;
		log_err("cannot write the status to %s: %s", final,
			strerror(errno));
		unlink(tmp);
	}
	buf_free(&b);
	free(tmp);
	if (rc)
		free(final);
	else
		*target = final;
	return rc;
}

bool vfile_is(fuse_ino_t ino)
{
	return ino == CTL_DIR_INO || ino == CTL_STATUS_INO ||
	       ino == TRASH_DIR_INO || ino == TRASH_FILES_INO;
}

bool vfile_trash_name(struct xfs *fs, const char *name)
{
	char want[32];
	snprintf(want, sizeof(want), ".Trash-%lu", (unsigned long)fs->uid);
	return !strcmp(name, want);
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
	if (ino == TRASH_DIR_INO || ino == TRASH_FILES_INO ||
	    ino == CACHE_TRASH_INFO_INO) {
		/* GIO uses the trash only if its owner is the user */
		st->st_mode = S_IFDIR | 0700;
		st->st_nlink = 2;
		return 0;
	}
	if (ino == CTL_STATUS_INO) {
		/* a link to "<cache>/status" (see vfile_readlink) */
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(cache_dir(fs->cache)) + strlen("/status");
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
	if (parent == CACHE_ROOT_INO && vfile_trash_name(fs, name) &&
	    cache_special_ino(fs->cache, BE_DELETED))
		e->ino = TRASH_DIR_INO;
	if (parent == TRASH_DIR_INO)
		e->ino = !strcmp(name, "files") ? TRASH_FILES_INO
		       : !strcmp(name, "info") ? CACHE_TRASH_INFO_INO : 0;
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

int vfile_readdir(struct xfs *fs, fuse_req_t req, fuse_ino_t ino, size_t size,
		  off_t off, bool plus)
{
	char *buf = xcalloc(1, size);
	size_t used = 0;
	struct {
		fuse_ino_t ino;
		const char *name;
	} ents[4] = { { ino, "." }, { CACHE_ROOT_INO, ".." } };
	size_t n_ents = 2;
	if (ino == CTL_DIR_INO) {
		ents[n_ents].ino = CTL_STATUS_INO;
		ents[n_ents++].name = "status";
		ents[n_ents].ino = CACHE_REJECTED_INO;
		ents[n_ents++].name = "rejected";
	} else if (ino == TRASH_DIR_INO) {
		ents[n_ents].ino = TRASH_FILES_INO;
		ents[n_ents++].name = "files";
		ents[n_ents].ino = CACHE_TRASH_INFO_INO;
		ents[n_ents++].name = "info";
	}  /* TRASH_FILES_INO: always empty */
	for (size_t i = (size_t)off; i < n_ents; i++) {
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
			e.attr_timeout = 0;
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
