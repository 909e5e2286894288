/*
 * lock.c - one daemon per cache directory.  The daemon takes an exclusive
 * lock on <cache>/lock before anything at start touches the cache (journal
 * recovery, leftover body downloads, local-only nodes) and holds it until
 * it exits; a second daemon on the same cache is refused with one line
 * naming the first one's pid and mount point, which the holder keeps in
 * the file ("pid\nmount point\n"; no mount point once it is stopping:
 * then a new daemon waits for it, up to 30 s).
 *
 * The lock is an open file description lock (F_OFD_SETLK; flock() where
 * there is none): it belongs to the open file, not to the process, so it
 * holds across fuse_daemonize()'s fork (the child keeps the descriptor;
 * a POSIX F_SETLK lock would stay with the parent, which exits), and the
 * kernel drops it when the daemon dies, kill -9 included.  Subcommands that
 * only read the cache directory (lookup) never take it.
 */
#include "cache/cache.h"
#include "backend/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_FILE "lock"
#define STOPPING_WAIT_MS 30000

/* 0 locked, -1 held by someone else (errno EAGAIN), -1 other errno. */
static int try_lock(int fd)
{
#ifdef F_OFD_SETLK
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EACCES || errno == EAGAIN) {
		errno = EAGAIN;
		return -1;
	}
	if (errno != EINVAL)
		return -1;
	/* a kernel older than 3.15: flock() is per open file too */
#endif
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		errno = EAGAIN;
	return -1;
}

/* The holder's "pid" and "mount point" from the file, into the buffers
 * (empty when it has not written them yet). */
static void read_holder(int fd, char *pid, size_t pidlen, char *mnt,
			size_t mntlen)
{
	char text[4200];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	*pid = *mnt = 0;
	if (n <= 0)
		return;
	text[n] = 0;
	char *nl = strchr(text, '\n');
	if (!nl)
		return;
	*nl = 0;
	size_t digits = strspn(text, "0123456789");
	if (!digits || digits != strlen(text) || digits >= pidlen)
		return;
	memcpy(pid, text, digits + 1);
	char *m = nl + 1;
	m[strcspn(m, "\n")] = 0;
	snprintf(mnt, mntlen, "%s", m);
}

int cache_lock(const char *dir, const char *mountpoint, char *err,
	       size_t errlen)
{
	if (cache_make_dir(dir, err, errlen))
		return -1;
	char *path = xasprintf("%s/" LOCK_FILE, dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	fchmod(fd, 0600);
	/* a holder that is stopping (unmounted, its threads ending) is waited
	 * for, so "fusermount3 -u DIR && exchangefs ..." works */
	char pid[24], mnt[4096];
	int rc, e = 0;
	for (int i = 0; (rc = try_lock(fd)) && (e = errno) == EAGAIN &&
			i < STOPPING_WAIT_MS / 100; i++) {
		read_holder(fd, pid, sizeof(pid), mnt, sizeof(mnt));
		if (!*pid || *mnt)
			break;
		if (i == 0)
			log_notice("waiting for exchangefs (pid %s), which is "
				   "stopping, to free the cache in %s", pid, dir);
		struct timespec ts = { 0, 100 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (rc) {
		if (e == EAGAIN) {
			read_holder(fd, pid, sizeof(pid), mnt, sizeof(mnt));
			if (*pid && *mnt)
				snprintf(err, errlen, "the cache in %s is in use by "
					 "exchangefs (pid %s) mounted on %s: one "
					 "cache serves one mount (unmount that one, "
					 "or use another --cache-dir)", dir, pid, mnt);
			else if (*pid)
				snprintf(err, errlen, "the cache in %s is in use by "
					 "exchangefs (pid %s), which has been stopping "
					 "for %d s: try again when it has exited", dir,
					 pid, STOPPING_WAIT_MS / 1000);
			else
				snprintf(err, errlen, "the cache in %s is in use by "
					 "another exchangefs: one cache serves one "
					 "mount", dir);
			close(fd);
			free(path);
			return -1;
		}
		/* a file system without locks: go on, as before there were any */
		log_warn("cannot lock %s (%s): nothing stops a second daemon "
			 "from using this cache", path, strerror(e));
	}
	free(path);
	cache_lock_note(fd, mountpoint);
	return fd;
}

void cache_lock_note(int fd, const char *mountpoint)
{
	if (fd < 0)
		return;
	char *text = xasprintf("%ld\n%s\n", (long)getpid(),
			       mountpoint ? mountpoint : "");
	if (ftruncate(fd, 0) || pwrite(fd, text, strlen(text), 0) < 0)
		log_warn("cannot note this daemon in the cache's lock file: %s",
			 strerror(errno));
	free(text);
}

void cache_unlock(int fd)
{
	if (fd < 0)
		return;
	/* the file stays: unlinking it would let a daemon starting now lock
	 * a new file while another still waits on the old one */
	if (ftruncate(fd, 0) < 0)
		log_dbg(LC_CACHE, "cannot empty the lock file: %s",
			strerror(errno));
	close(fd);
}
