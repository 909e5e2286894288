/*
 * fs.h - what the FUSE daemon's files share: the mount's state, the
 * reserved inode numbers of the control entry, and the entry points of
 * ops.c (FUSE requests), vfiles.c (control files), notify.c (kernel cache
 * invalidation) and options.c (command line).
 */
#ifndef EXCHANGEFS_FS_H
#define EXCHANGEFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "backend/util.h"
#include "cache/cache.h"
#include "cache/sync.h"

/* Inodes below CACHE_FIRST_INO that are not the root: the control entry
 * (and CACHE_REJECTED_INO, cache/journal.h), and GIO's trash directory at
 * the root with its files/ (and info/: CACHE_TRASH_INFO_INO); vfiles.c. */
#define CTL_DIR_INO 2
#define CTL_STATUS_INO 3
#define CTL_NAME ".exchangefs"
#define TRASH_DIR_INO 5
#define TRASH_FILES_INO 6

struct xfs {
	struct cache *cache;
	struct sync *sync;
	struct fuse_session *se;
	/* INIT done: notifications may be sent.  Set by the FUSE thread that
	 * answers INIT, read by the sync and reflector threads: atomic. */
	atomic_bool kernel_ready;
	bool zero_open;        /* the kernel opens files without asking us
				  (FUSE no_open): reads come with fh 0 */
	bool open_requests;    /* --open-requests: do not ask for no_open */
	bool read_only;        /* -o ro: every change refused with EROFS */
	bool reflect;          /* turn server changes into inotify events */
	const char *mountpoint;
	uid_t uid;
	gid_t gid;
	double entry_timeout;  /* names: invalidated on change, so long */
	double attr_timeout;
};

extern const struct fuse_lowlevel_ops xfs_ops;

/* vfiles.c: the control entry ".exchangefs" and the trash ".Trash-<uid>"
 * (never listed by readdir).  vfile_is: a virtual inode holding no nodes
 * (not rejected/ nor the trash's info/, which hold local ones). */
bool vfile_is(fuse_ino_t ino);
/* Whether name is the trash directory's name at the root (".Trash-<uid>",
 * uid: the mount's owner). */
bool vfile_trash_name(struct xfs *fs, const char *name);
int vfile_lookup(struct xfs *fs, fuse_ino_t parent, const char *name,
		 struct fuse_entry_param *e);
int vfile_stat(struct xfs *fs, fuse_ino_t ino, struct stat *st);
/* The target of the status link, rendered into the cache directory. */
int vfile_readlink(struct xfs *fs, fuse_ino_t ino, char **target);
int vfile_readdir(struct xfs *fs, fuse_req_t req, fuse_ino_t ino, size_t size,
		  off_t off, bool plus);

/* handles.c: open files by id (fi->fh), safe against RELEASE racing READ. */
struct handle {
	uint64_t id;
	int fd;            /* a body file */
	int users;         /* pinned by requests in progress */
	bool released;
};
/* Takes ownership of fd. */
uint64_t handle_new(int fd);
struct handle *handle_get(uint64_t id);  /* pinned, or NULL if released */
void handle_put(struct handle *h);
void handle_release(uint64_t id);

/* notify.c: tell the kernel what changed.  Changes from the server are
 * "reflected": a thread of ours performs them through the mount, so the
 * kernel emits the inotify events; the handlers recognise its requests
 * and only answer from the cache (reflect_*). */
void notify_changes(void *arg, const struct cache_changes *ch);
/* Changes our own handlers made: told to the kernel from another thread
 * once the handler replied (takes the entries; ch is emptied). */
void notify_start(struct xfs *fs);
/* After the FUSE loop ended, before the session is unmounted/destroyed:
 * no notification is sent after it returns. */
void notify_stop(void);
/* After the session is destroyed (its requests aborted): join the
 * reflector if notify_stop() could not. */
void notify_finish(void);
void notify_later(struct cache_changes *ch);
/* Whether req comes from the reflector thread. */
bool reflecting(fuse_req_t req);
/* LOOKUP from the reflector: 1 with *e filled, -ENOENT, or 0 when the
 * name is not the one being reflected (answer as usual). */
int reflect_lookup(struct xfs *fs, fuse_ino_t parent, const char *name,
		   struct fuse_entry_param *e);
/* CREATE / MKDIR from the reflector: the node the cache already holds. */
int reflect_entry(struct xfs *fs, fuse_ino_t parent, const char *name,
		  struct fuse_entry_param *e);
/* The status file's line on reflection (a sync_hooks.status). */
void notify_status(void *arg, struct buf *out);

/* write.c: everything that changes the mailbox (see write.c). */
extern const char *const xattr_settable[];
/* A file being written: its content fd (dup, caller closes) or -ENOENT;
 * a node whose content was written here: that file.  -ENOENT when the
 * server's body is the content. */
int write_content_fd(struct xfs *fs, const struct node *n);
/* Size of a file being written, or -1. */
int64_t write_size(uint64_t ino);
/* Whether the content of item n may be rewritten (drafts, files made
 * here). */
bool write_allowed(struct xfs *fs, const struct node *n);
/* -EROFS, with a line in the log and the status, for a change in a folder
 * of a read-only kind (calendars and contacts: cache/kinds.h); else 0. */
int write_pim_refused(struct xfs *fs, uint64_t folder, const char *name);
void xfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, struct fuse_file_info *fi);
void xfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	       off_t off, struct fuse_file_info *fi);
void xfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void xfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	       struct fuse_file_info *fi);
/* SETATTR: size changes of writable files; mode/owner/times accepted and
 * ignored.  Returns 0 or -errno. */
int write_setattr(struct xfs *fs, fuse_ino_t ino, struct stat *attr, int to_set);
void xfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void xfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void xfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode);
void xfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		fuse_ino_t newparent, const char *newname, unsigned int flags);
/* setxattr of user.mail.read / flag / categories: 0 or -errno. */
int write_setxattr(struct xfs *fs, fuse_ino_t ino, const char *name,
		   const char *value, size_t size);
int write_removexattr(struct xfs *fs, fuse_ino_t ino, const char *name);
/* Entry/attributes of a node for replies (ops.c). */
void fill_entry(struct xfs *fs, const struct node *n,
		struct fuse_entry_param *e);

/* options.c: the command line and the accounts file. */
struct options {
	char *url, *user, *mailbox, *password_file, *password_command;
	char *account;              /* --account, or NAME in NAME MOUNTPOINT */
	char *config;               /* --config, else config_default_path() */
	char *password;             /* "password" in a 0600 accounts file */
	char *protocol, *cache_dir, *ca_file, *mountpoint, *fuse_opts;
	bool insecure, foreground, show_help, show_version;
	bool open_requests;         /* never use zero-message opens */
	bool soft_delete_in_trash;  /* rm in Deleted Items: soft, not hard */
	bool read_only;             /* -o ro: refuse changes (EROFS) */
	bool no_notify;             /* poll only */
	bool pim;                   /* calendars and contacts shown (kinds.h) */
	unsigned debug;             /* log categories */
	unsigned sync_interval;     /* seconds */
	long timeout;               /* seconds */
	int64_t cache_size;         /* bytes, 0 = unlimited */
	/* sign-in (fs/signin.c) */
	char *auth;                 /* basic|ntlm|kerberos|oauth2, NULL = auto */
	char *address;              /* e-mail address: ADDRESS, --email (Autodiscover,
				       login, default --user and --mailbox) */
	char *oauth_authority, *oauth_tenant, *oauth_client_id, *oauth_scope;
	char *autodiscover_trust;   /* comma-separated domains */
	bool login;                 /* `exchangefs login ADDRESS` */
	bool discover;              /* `exchangefs autodiscover ADDRESS` */
	bool browser;               /* login --browser: PKCE, not device code */
	bool lookup;                /* `exchangefs lookup [ACCOUNT] NAME` */
	char *query;                /* ... its NAME */
	char *prefetch;             /* --prefetch as given, or NULL */
	int prefetch_days;          /* ... parsed (prefetch_parse) */
};
/* Parse argv; on a usage error prints one line and returns -1. */
int options_parse(int argc, char **argv, struct options *o);
void options_usage(const char *prog);
void options_free(struct options *o);
/* The password from --password-file, --password-command, the environment
 * or a prompt; NULL with a message printed on failure.  Owned. */
char *options_password(const struct options *o);
/* The host[:port] part of --url: a pointer into o->url and its length. */
const char *options_host(const struct options *o, size_t *len);
/* $XDG_CACHE_HOME/exchangefs/<account> unless --cache-dir.  Owned. */
char *options_cache_dir(const struct options *o);

/* unix.c: "exchangefs status MOUNTPOINT" and "exchangefs unmount
 * ACCOUNT|MOUNTPOINT" (argv[1] is the subcommand; returns the exit
 * status), and a state ("READY=1") for systemd when $NOTIFY_SOCKET is set. */
int unix_command(int argc, char **argv);
void unix_notify(const char *state);
/* The source ("exchangefs:user@host") of the exchangefs mount on path (a
 * real path), or NULL if none is mounted there.  Owned. */
char *unix_mount_source(const char *path);

/* lookup.c: `exchangefs lookup`: signs in like a mount and prints the
 * people of the address book matching o->query; the exit status. */
int lookup_command(struct options *o);

/* config.c: the accounts file.  An entry with key NULL marks a
 * "[section]" line; section NULL is the part before the first section. */
struct cfg_entry {
	char *section, *key, *value;
	unsigned line;
};
struct config {
	char *path;
	struct cfg_entry *e;
	size_t n;
	mode_t mode;
	bool has_password;          /* some section sets "password" */
};
/* $XDG_CONFIG_HOME/exchangefs/config or ~/.config/exchangefs/config. */
char *config_default_path(void);
/* "~/x" -> "$HOME/x"; anything else copied. */
char *config_expand_home(const char *value);
/* 0 read, 1 absent (only when !must_exist), -1 with one line printed
 * (FILE:LINE: what is wrong).  config_free() in every case. */
int config_load(const char *path, bool must_exist, struct config *c);
bool config_has_section(const struct config *c, const char *name);
/* "work, home" (owned), for messages. */
char *config_sections(const struct config *c);
void config_free(struct config *c);

/* signin.c: how the mount signs in. */
struct signin {
	char *password;             /* owned, secret; NULL without one */
	int auth;                   /* enum http_auth */
	struct oauth2 *oauth2;      /* owned: the token source, or NULL */
	char *ad_cache;             /* owned: the Autodiscover cache file the
				       URL came from, or NULL */
};
/* Choose the sign-in method, get the password or the tokens, and run
 * Autodiscover when there is no --url (sets o->url).  0, or -1 with one
 * line printed. */
int signin_prepare(struct options *o, struct signin *si);
void signin_free(struct signin *si);
/* The mount failed: drop a cached Autodiscover answer it used, so the next
 * start looks the server up again. */
void signin_forget(struct signin *si);
/* `exchangefs login`: OAuth2 sign-in; the exit status. */
int signin_login(const struct options *o);
/* `exchangefs autodiscover`: Autodiscover afresh, print the URLs; the exit
 * status. */
int signin_discover(struct options *o);

#endif
