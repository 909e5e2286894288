/*
 * test_cache.c - the cache's transactions: hierarchy pages (orphans,
 * hidden folders, rename, delete), item pages (names with collisions,
 * read flags, deletes), a resync that keeps names and inodes, changes
 * reported only when visible (no echo), moves paired by hints, the body
 * store and its LRU limit, file modes, and stability across reopen.
 */
#include "cache/cache.h"
#include "backend/util.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct be_folder *folder(struct be_folder_batch *b, enum be_change c,
				const char *id, const char *parent,
				const char *name, const char *cls)
{
	struct be_folder *f = be_folder_batch_add(b);
	f->change = c;
	f->id = xstrdup(id);
	f->parent_id = xstrdup(parent);
	f->name = xstrdup(name);
	f->folder_class = xstrdup(cls);
	return f;
}

static struct be_item *item(struct be_item_batch *b, enum be_change c,
			    const char *id, const char *subject, int64_t t)
{
	struct be_item *it = be_item_batch_add(b);
	it->change = c;
	it->id = xstrdup(id);
	it->subject = xstrdup(subject);
	it->received = t;
	it->size = 100;
	it->is_read = 0;
	return it;
}

static uint64_t ino_of(struct cache *c, uint64_t parent, const char *name)
{
	struct node n = { 0 };
	if (cache_lookup(c, parent, name, &n))
		return 0;
	uint64_t ino = n.ino;
	node_clear(&n);
	return ino;
}

static int count_fn(void *arg, const struct node *n)
{
	(void)n;
	(*(int *)arg)++;
	return 0;
}

static int count_children(struct cache *c, uint64_t parent)
{
	int n = 0;
	cache_list(c, parent, 0, count_fn, &n);
	return n;
}

static bool has_change(const struct cache_changes *ch, int what,
		       const char *name)
{
	for (size_t i = 0; i < ch->n; i++)
		if ((int)ch->v[i].what == what && !strcmp(ch->v[i].name, name))
			return true;
	return false;
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	char tmpl[] = "/tmp/exchangefs-test-cache-XXXXXX";
	char *base = mkdtemp(tmpl);
	char *dir = xasprintf("%s/sub/acct", base);
	char err[256] = "";
	struct cache *c = cache_open(dir, err, sizeof(err));
	CHECK(c != NULL);
	if (!c) {
		printf("%s\n", err);
		return 1;
	}

	/* modes: 0700 directory, 0600 database */
	struct stat st;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	char *db = xasprintf("%s/cache.db", dir);
	CHECK(stat(db, &st) == 0 && (st.st_mode & 0777) == 0600);
	free(db);

	/* hierarchy: a child before its parent, a hidden calendar */
	struct be_folder_batch fb = { 0 };
	folder(&fb, BE_CREATE, "F-SUB", "F-INBOX", "Projects", "IPF.Note");
	folder(&fb, BE_CREATE, "F-INBOX", "ROOT", "Inbox", "IPF.Note");
	folder(&fb, BE_CREATE, "F-CAL", "ROOT", "Calendar", "IPF.Appointment");
	folder(&fb, BE_CREATE, "F-SLASH", "ROOT", "a/b", NULL);
	fb.new_state = xstrdup("H1");
	struct cache_changes ch = { 0 };
	CHECK(cache_apply_folders(c, "ROOT", &fb, &ch) == 0);
	be_folder_batch_free(&fb);
	cache_changes_free(&ch);
	uint64_t inbox = ino_of(c, CACHE_ROOT_INO, "Inbox");
	CHECK(inbox >= CACHE_FIRST_INO);
	uint64_t sub = ino_of(c, inbox, "Projects");
	CHECK(sub >= CACHE_FIRST_INO);
	CHECK(ino_of(c, CACHE_ROOT_INO, "Calendar") == 0);  /* hidden */
	CHECK(ino_of(c, CACHE_ROOT_INO, "a\xe2\x88\x95" "b") != 0);
	CHECK(count_children(c, CACHE_ROOT_INO) == 2);
	char *hs = cache_meta_get(c, "hierarchy_state");
	CHECK_STR(hs, "H1");
	free(hs);

	/* items: two with the same subject and minute */
	struct be_item_batch ib = { 0 };
	int64_t t = 1795167060;
	item(&ib, BE_CREATE, "I1", "Hello", t);
	item(&ib, BE_CREATE, "I2", "Hello", t + 10);
	item(&ib, BE_CREATE, "I3", "../evil", t);
	ib.new_state = xstrdup("S1");
	ib.more = true;
	CHECK(cache_apply_items(c, inbox, &ib, false, &ch) == 0);
	CHECK(ch.n == 3 && has_change(&ch, CC_NEW, "2026-11-20 0931 Hello (2).eml"));
	be_item_batch_free(&ib);
	cache_changes_free(&ch);
	uint64_t i1 = ino_of(c, inbox, "2026-11-20 0931 Hello.eml");
	uint64_t i2 = ino_of(c, inbox, "2026-11-20 0931 Hello (2).eml");
	CHECK(i1 && i2 && i1 != i2);
	CHECK(ino_of(c, inbox, "2026-11-20 0931 ..\xe2\x88\x95" "evil.eml") != 0);
	struct node n = { 0 };
	CHECK(cache_get(c, inbox, &n) == 0 && !n.synced);  /* not the last page */
	node_clear(&n);
	char *s = cache_folder_state(c, inbox);
	CHECK_STR(s, "S1");
	free(s);

	/* the same page again (a crash after the server answered but before
	 * the commit): no duplicates */
	item(&ib, BE_CREATE, "I1", "Hello", t);
	ib.new_state = xstrdup("S2");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	be_item_batch_free(&ib);
	cache_changes_free(&ch);
	CHECK(count_children(c, inbox) == 4);  /* 3 items + Projects */
	CHECK(cache_folder_count(c, inbox) == 3);
	CHECK(cache_get(c, inbox, &n) == 0 && n.synced);
	node_clear(&n);

	/* read flag and delete */
	struct be_item *rf = be_item_batch_add(&ib);
	rf->change = BE_READ_FLAG;
	rf->id = xstrdup("I1");
	rf->is_read = 1;
	struct be_item *del = be_item_batch_add(&ib);
	del->change = BE_DELETE;
	del->id = xstrdup("I3");
	ib.new_state = xstrdup("S3");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	be_item_batch_free(&ib);
	cache_changes_free(&ch);
	CHECK(cache_get(c, i1, &n) == 0 && n.is_read == 1);
	node_clear(&n);
	CHECK(count_children(c, inbox) == 3);
	CHECK(cache_folder_count(c, inbox) == 2);

	/* bodies: store, open, exact size, LRU limit */
	struct body_writer *w = cache_body_begin(c, i1);
	CHECK(w && cache_body_write(w, "0123456789", 10) == 0);
	CHECK(cache_body_commit(w, &ch) == 0);
	int fd = cache_body_open(c, i1);
	CHECK(fd >= 0);
	char buf[32] = "";
	CHECK(read(fd, buf, sizeof(buf)) == 10 && !memcmp(buf, "0123456789", 10));
	close(fd);
	CHECK(cache_get(c, i1, &n) == 0 && n.body_size == 10);
	node_clear(&n);
	cache_set_body_limit(c, 15);
	w = cache_body_begin(c, i2);
	CHECK(w && cache_body_write(w, "abcdefghij", 10) == 0);
	CHECK(cache_body_commit(w, &ch) == 0);
	CHECK(cache_body_open(c, i1) == -ENOENT);  /* evicted */
	CHECK(ch.n == 1 && ch.v[0].what == CC_ATTR && ch.v[0].ino == i1);
	cache_changes_free(&ch);
	fd = cache_body_open(c, i2);
	CHECK(fd >= 0);
	close(fd);
	struct cache_stats cs;
	cache_stats(c, &cs);
	CHECK(cs.bodies == 1 && cs.body_bytes == 10);
	/* an aborted write leaves nothing */
	w = cache_body_begin(c, i1);
	cache_body_write(w, "zz", 2);
	cache_body_abort(w);
	CHECK(cache_body_open(c, i1) == -ENOENT);

	/* resync: the server reports only I1 again; I2 is swept, I1 keeps
	 * its inode and name */
	CHECK(cache_begin_resync(c, inbox) == 0);
	s = cache_folder_state(c, inbox);
	CHECK(s == NULL);
	free(s);
	item(&ib, BE_CREATE, "I1", "Hello renamed?", t + 3600);
	ib.new_state = xstrdup("R1");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	CHECK(has_change(&ch, CC_GONE, "2026-11-20 0931 Hello (2).eml"));
	be_item_batch_free(&ib);
	cache_changes_free(&ch);
	CHECK(ino_of(c, inbox, "2026-11-20 0931 Hello.eml") == i1);
	CHECK(ino_of(c, inbox, "2026-11-20 0931 Hello (2).eml") == 0);
	CHECK(cache_folder_count(c, inbox) == 1);
	cache_stats(c, &cs);
	CHECK(cs.bodies == 0);  /* I2's body went with it */

	/* folder rename and move keep the inode */
	folder(&fb, BE_UPDATE, "F-SUB", "ROOT", "Old projects", "IPF.Note");
	fb.new_state = xstrdup("H2");
	CHECK(cache_apply_folders(c, "ROOT", &fb, &ch) == 0);
	CHECK(has_change(&ch, CC_RENAMED, "Projects"));
	be_folder_batch_free(&fb);
	cache_changes_free(&ch);
	CHECK(ino_of(c, CACHE_ROOT_INO, "Old projects") == sub);

	/* updates report only what the mount shows: the same values again
	 * (the server echoing a change made here) are no change */
	item(&ib, BE_UPDATE, "I1", "Hello renamed?", t + 3600);
	ib.new_state = xstrdup("R2");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	CHECK(ch.n == 0);
	be_item_batch_free(&ib);
	item(&ib, BE_READ_FLAG, "I1", NULL, 0);
	ib.new_state = xstrdup("R3");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	CHECK(ch.n == 0);
	be_item_batch_free(&ib);
	item(&ib, BE_READ_FLAG, "I1", NULL, 0)->is_read = 1;
	ib.new_state = xstrdup("R4");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	CHECK(ch.n == 1 && ch.v[0].what == CC_ATTR && ch.v[0].ino == i1);
	be_item_batch_free(&ib);
	cache_changes_free(&ch);
	/* a new size alone is new content; with a new flag, the flag's */
	struct be_item *u = item(&ib, BE_UPDATE, "I1", "Hello renamed?", t + 3600);
	u->is_read = 1;
	u->size = 200;
	ib.new_state = xstrdup("R5");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	CHECK(ch.n == 1 && ch.v[0].what == CC_CONTENT);
	be_item_batch_free(&ib);
	cache_changes_free(&ch);
	u = item(&ib, BE_UPDATE, "I1", "Hello renamed?", t + 3600);
	u->is_read = 1;
	u->size = 300;
	u->flag = BE_FLAG_FLAGGED;
	ib.new_state = xstrdup("R6");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	CHECK(ch.n == 1 && ch.v[0].what == CC_ATTR);
	be_item_batch_free(&ib);
	cache_changes_free(&ch);

	/* a move the server reported (an event's hint): the source's delete
	 * first moves the node, keeping inode and name ... */
	cache_hint_move(c, "I1", "I1b", "F-SUB");
	item(&ib, BE_DELETE, "I1", NULL, 0);
	ib.new_state = xstrdup("R7");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	CHECK(ch.n == 1 && ch.v[0].what == CC_RENAMED && ch.v[0].ino == i1 &&
	      ch.v[0].new_parent == sub);
	be_item_batch_free(&ib);
	cache_changes_free(&ch);
	CHECK(ino_of(c, sub, "2026-11-20 0931 Hello.eml") == i1);
	u = item(&ib, BE_CREATE, "I1b", "Hello renamed?", t + 3600);
	u->is_read = 1;
	u->size = 300;
	u->flag = BE_FLAG_FLAGGED;
	ib.new_state = xstrdup("P1");
	CHECK(cache_apply_items(c, sub, &ib, true, &ch) == 0);
	CHECK(ch.n == 0);  /* the destination's create is the same node */
	be_item_batch_free(&ib);
	/* ... and back, the destination's create first */
	cache_hint_move(c, "I1b", "I1c", "F-INBOX");
	u = item(&ib, BE_CREATE, "I1c", "Hello renamed?", t + 3600);
	u->is_read = 1;
	u->size = 300;
	u->flag = BE_FLAG_FLAGGED;
	ib.new_state = xstrdup("R8");
	CHECK(cache_apply_items(c, inbox, &ib, true, &ch) == 0);
	CHECK(ch.n == 1 && ch.v[0].what == CC_RENAMED && ch.v[0].ino == i1);
	be_item_batch_free(&ib);
	cache_changes_free(&ch);
	item(&ib, BE_DELETE, "I1b", NULL, 0);
	ib.new_state = xstrdup("P2");
	CHECK(cache_apply_items(c, sub, &ib, true, &ch) == 0);
	CHECK(ch.n == 0);
	be_item_batch_free(&ib);
	CHECK(ino_of(c, inbox, "2026-11-20 0931 Hello.eml") == i1);
	CHECK(cache_folder_count(c, inbox) == 1 && cache_folder_count(c, sub) == 0);

	/* reopen: same inodes, same names */
	cache_close(c);
	c = cache_open(dir, err, sizeof(err));
	CHECK(c != NULL);
	CHECK(ino_of(c, CACHE_ROOT_INO, "Inbox") == inbox);
	CHECK(ino_of(c, inbox, "2026-11-20 0931 Hello.eml") == i1);

	/* a deleted folder takes its items with it */
	struct be_folder *df = be_folder_batch_add(&fb);
	df->change = BE_DELETE;
	df->id = xstrdup("F-INBOX");
	fb.new_state = xstrdup("H3");
	CHECK(cache_apply_folders(c, "ROOT", &fb, &ch) == 0);
	be_folder_batch_free(&fb);
	cache_changes_free(&ch);
	CHECK(ino_of(c, CACHE_ROOT_INO, "Inbox") == 0);
	CHECK(cache_get(c, i1, &n) == -ENOENT);
	/* inode numbers are never reused */
	folder(&fb, BE_CREATE, "F-NEW", "ROOT", "New", NULL);
	CHECK(cache_apply_folders(c, "ROOT", &fb, &ch) == 0);
	be_folder_batch_free(&fb);
	cache_changes_free(&ch);
	CHECK(ino_of(c, CACHE_ROOT_INO, "New") > i2);

	/* a later hierarchy resync that no longer reports a folder */
	char *ids[] = { "F-NEW" };
	CHECK(cache_sweep_folders(c, ids, 1, &ch) == 0);
	cache_changes_free(&ch);
	CHECK(ino_of(c, CACHE_ROOT_INO, "New") != 0);
	CHECK(ino_of(c, CACHE_ROOT_INO, "Old projects") == 0);

	cache_close(c);
	char *cmd = xasprintf("rm -rf '%s'", base);
	CHECK(system(cmd) == 0);
	free(cmd);
	free(dir);
	return check_done("test_cache");
}
