/*
 * test_engine_journal.c - the journal and its applier (cache/journal.c,
 * journal_store.c, applier.c) against the scripted backend, in the spirit
 * of isync's tests: for each kind of local change, the daemon is "killed"
 * at each step - the row written; each request before it reaches the
 * server; each write carried out with its answer lost (the same state on
 * disk as an answer received but not yet recorded) - then restarted, and
 * the final cache and server must be those of a run without a crash, with
 * every create and send done exactly once, and a second run changing
 * nothing.  Then the conflicts: a stale change key, a move or delete of
 * an item gone on the server, a draft edited here and deleted there, a
 * create refused for good (its content kept), folders renamed or removed
 * here while a sync reports them, a message not sent yet into a folder
 * deleted elsewhere.
 */
#include "engine_harness.h"
#include "cache/applier.h"
#include "cache/journal.h"
#include "backend/util.h"
#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the mailbox every scenario starts from ---- */

struct ids {
	const char *inbox, *drafts, *outbox, *sent, *deleted;
	const char *work, *empty;
	const char *one, *two, *three, *draft;
};

static struct sb_model *mailbox(struct ids *x)
{
	struct sb_model *m = sb_new();
	x->inbox = m->special[BE_INBOX];
	x->drafts = m->special[BE_DRAFTS];
	x->outbox = m->special[BE_OUTBOX];
	x->sent = m->special[BE_SENT];
	x->deleted = m->special[BE_DELETED];
	x->work = sb_add_folder(m, "root", "Work");
	x->empty = sb_add_folder(m, "root", "Empty");
	x->one = sb_add_item(m, x->inbox, "one", 1700000000);
	x->two = sb_add_item(m, x->inbox, "two", 1700000060);
	x->three = sb_add_item(m, x->work, "three", 1700000120);
	x->draft = sb_add_item(m, x->drafts, "draft", 1700000180);
	sb_item(m, x->draft)->is_draft = 1;
	return m;
}

static uint64_t ino_of(struct engine *e, const char *sid)
{
	return engine_ino_of_sid(e, sid);
}

static char *name_of(struct engine *e, const char *sid)
{
	struct node n = { 0 };
	char *name = cache_get(e->c, ino_of(e, sid), &n) == 0
		? xstrdup(n.name) : xstrdup("?");
	node_clear(&n);
	return name;
}

/* ---- the local changes, as fs/write.c makes them ---- */

static int do_draft(struct engine *e, const struct ids *x)
{
	uint64_t ino;
	return engine_write_file(e, ino_of(e, x->drafts), "new draft.eml",
				 "new draft", &ino);
}

static int do_save(struct engine *e, const struct ids *x)
{
	uint64_t ino;
	return engine_write_file(e, ino_of(e, x->work), "saved.eml", "saved",
				 &ino);
}

static int do_send(struct engine *e, const struct ids *x)
{
	uint64_t ino;
	return engine_write_file(e, ino_of(e, x->outbox), "out.eml", "sent here",
				 &ino);
}

static int do_edit_draft(struct engine *e, const struct ids *x)
{
	return engine_rewrite_file(e, ino_of(e, x->draft), "edited here");
}

static int do_delete(struct engine *e, const struct ids *x)
{
	char *name = name_of(e, x->one);
	int rc = journal_unlink(e->c, ino_of(e, x->inbox), name);
	free(name);
	return rc;
}

static int do_move(struct engine *e, const struct ids *x)
{
	char *name = name_of(e, x->one);
	int rc = journal_rename(e->c, ino_of(e, x->inbox), name,
				ino_of(e, x->work), name, 0, -1, NULL);
	free(name);
	return rc;
}

static int do_flag(struct engine *e, const struct ids *x)
{
	struct be_props p = { .mask = BE_PROP_FLAG | BE_PROP_READ,
			      .flag = BE_FLAG_FLAGGED, .read = true };
	return journal_set_props(e->c, ino_of(e, x->two), &p);
}

static int do_mkdir(struct engine *e, const struct ids *x)
{
	struct node n = { 0 };
	int rc = journal_mkdir(e->c, CACHE_ROOT_INO, "Projects", &n);
	node_clear(&n);
	return rc;
}

static int do_rename_dir(struct engine *e, const struct ids *x)
{
	return journal_rename(e->c, CACHE_ROOT_INO, "Work", CACHE_ROOT_INO,
			      "Jobs", 0, -1, NULL);
}

static int do_move_dir(struct engine *e, const struct ids *x)
{
	return journal_rename(e->c, CACHE_ROOT_INO, "Empty", ino_of(e, x->work),
			      "Empty", 0, -1, NULL);
}

static int do_rmdir(struct engine *e, const struct ids *x)
{
	return journal_rmdir(e->c, CACHE_ROOT_INO, "Empty");
}

/* Several in a row: a draft made, then moved and flagged before it was
 * sent, and a folder made and a message moved into it. */
static int do_many(struct engine *e, const struct ids *x)
{
	uint64_t ino;
	int rc = engine_write_file(e, ino_of(e, x->drafts), "later.eml", "later",
				   &ino);
	struct node d = { 0 };
	if (!rc)
		rc = journal_mkdir(e->c, CACHE_ROOT_INO, "Box", &d);
	char *name = name_of(e, x->two);
	if (!rc)
		rc = journal_rename(e->c, ino_of(e, x->inbox), name, d.ino, name,
				    0, -1, NULL);
	struct be_props p = { .mask = BE_PROP_CATEGORIES, .categories = "Red" };
	if (!rc)
		rc = journal_set_props(e->c, ino_of(e, x->three), &p);
	free(name);
	node_clear(&d);
	return rc;
}

struct scenario {
	const char *name;
	int (*change)(struct engine *e, const struct ids *x);
	size_t creates;   /* items the server must end with a token on */
	unsigned sent;    /* messages sent */
};

static const struct scenario scenarios[] = {
	{ "create draft", do_draft, 1, 0 },
	{ "save message", do_save, 1, 0 },
	{ "send", do_send, 1, 1 },
	{ "edit draft", do_edit_draft, 0, 0 },
	{ "delete", do_delete, 0, 0 },
	{ "move", do_move, 0, 0 },
	{ "flag", do_flag, 0, 0 },
	{ "mkdir", do_mkdir, 0, 0 },
	{ "rename folder", do_rename_dir, 0, 0 },
	{ "move folder", do_move_dir, 0, 0 },
	{ "rmdir", do_rmdir, 0, 0 },
	{ "several", do_many, 1, 0 },
};

static size_t tokens(const struct sb_model *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n_items; i++)
		n += !m->items[i].gone && m->items[i].token;
	return n;
}

/* An engine on a fresh copy of the mailbox, synced, with the change
 * made; the calls from here on are counted from 1. */
static bool prepare(const struct scenario *sc, struct engine *e,
		    struct sb_model **m, char **dir)
{
	struct ids x;
	*m = mailbox(&x);
	*dir = engine_tmpdir("j");
	if (!engine_start(e, *dir, *m))
		return false;
	CHECK(sync_pass_now(e->s) == BE_OK);
	int rc = sc->change(e, &x);
	if (rc)
		printf("%s: the change failed: %s\n", sc->name, strerror(-rc));
	CHECK(rc == 0);
	sb_clear_calls(*m);
	return rc == 0;
}

/* A crash snapshot: the cache directory and the server at that moment. */
struct snap {
	const char *from;
	char *to;
	struct sb_model *m, *server;
};

static void take_snapshot(void *arg)
{
	struct snap *sn = arg;
	if (sn->server)
		return;
	engine_copy_dir(sn->from, sn->to);
	sn->server = sb_clone(sn->m);
}

/* The calls the applier makes (the sync's reads are the other test's). */
static bool crash_point(enum sb_op op)
{
	return op != SB_SYNC_FOLDERS && op != SB_SYNC_ITEMS && op != SB_OPEN &&
	       op != SB_SPECIAL && op != SB_FETCH;
}

struct point {
	enum sb_op op;
	unsigned nth;
	bool after;
};

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A dump with the inode numbers of messages left out, lines sorted. */
static char *without_item_inos(const char *dump)
{
	char *copy = xstrdup(dump), *save = NULL, *lines[256];
	size_t n = 0;
	for (char *l = strtok_r(copy, "\n", &save); l && n < 256;
	     l = strtok_r(NULL, "\n", &save)) {
		char *in = strstr(l, " in ");
		lines[n++] = !strncmp(l, "N ", 2) && strstr(l, " msg '") && in
			? xasprintf("N ?%s", in) : xstrdup(l);
	}
	qsort(lines, n, sizeof(*lines), cmp_lines);
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		buf_printf(&b, "%s\n", lines[i]);
		free(lines[i]);
	}
	free(copy);
	return b.data ? b.data : xstrdup("");
}

/* Restart from a snapshot and compare with the run without a crash.
 *
 * One known difference: a message moved here whose MoveItem was carried
 * out but its answer lost (the new id unknown) is dropped when the retry
 * finds the old id gone, and the target folder's next sync brings it back
 * as a new node - same folder, same name, same server item, but a new
 * inode (and its cached body fetched again).  Nothing is lost or doubled;
 * the inode is the difference, so there only the rest is compared.
 *
 * The restarted daemon runs its applier and sync thread side by side;
 * either may go first, so both orders are tried, each from its own copy
 * of the snapshot. */
static void restart_one(const struct scenario *sc, const char *what,
			const char *dir, struct sb_model *server,
			bool sync_first, const char *want_cache,
			const char *want_server, bool lost_move)
{
	struct engine e;
	CHECK(engine_start(&e, dir, server));
	if (sync_first)
		sync_pass_now(e.s);
	engine_settle(&e);
	char *cache = engine_dump(&e), *srv = sb_dump(server);
	char *label = xasprintf("%s, crash %s, %s first: cache", sc->name, what,
				sync_first ? "sync" : "applier");
	if (lost_move) {
		char *a = without_item_inos(want_cache), *b = without_item_inos(cache);
		CHECK(engine_same(label, a, b));
		free(a);
		free(b);
	} else {
		CHECK(engine_same(label, want_cache, cache));
	}
	free(label);
	label = xasprintf("%s, crash %s, %s first: server", sc->name, what,
			  sync_first ? "sync" : "applier");
	CHECK(engine_same(label, want_server, srv));
	free(label);
	CHECK(tokens(server) == sc->creates);
	CHECK(server->sent == sc->sent);
	CHECK(engine_rows(&e) == 0);
	/* and a second run changes nothing */
	engine_settle(&e);
	char *again = engine_dump(&e);
	CHECK(engine_same("a second run", cache, again));
	free(again);
	free(cache);
	free(srv);
	engine_stop(&e);
}

static void restart(const struct scenario *sc, const char *what,
		    struct snap *sn, const char *want_cache,
		    const char *want_server, bool lost_move)
{
	if (!sn->server) {
		printf("%s, %s: no snapshot taken\n", sc->name, what);
		CHECK(sn->server != NULL);
		return;
	}
	char *other = engine_tmpdir("crash-sync-first");
	engine_copy_dir(sn->to, other);
	struct sb_model *server = sb_clone(sn->server);
	restart_one(sc, what, other, server, true, want_cache, want_server,
		    lost_move);
	sb_free(server);
	free(other);
	restart_one(sc, what, sn->to, sn->server, false, want_cache, want_server,
		    lost_move);
}

static void run_scenario(const struct scenario *sc)
{
	/* the run without a crash */
	struct engine e;
	struct sb_model *m;
	char *dir;
	if (!prepare(sc, &e, &m, &dir)) {
		engine_stop(&e);
		sb_free(m);
		free(dir);
		return;
	}
	/* the row written, nothing sent: the state to restart from */
	struct snap first = { .from = dir, .to = engine_tmpdir("row") , .m = m };
	take_snapshot(&first);
	engine_settle(&e);
	char *want_cache = engine_dump(&e), *want_server = sb_dump(m);
	CHECK(tokens(m) == sc->creates);
	CHECK(m->sent == sc->sent);
	CHECK(engine_rows(&e) == 0);
	struct point pts[64];
	size_t npts = 0;
	unsigned seen[SB_OP_N] = { 0 };
	for (size_t i = 0; i < m->n_calls && npts + 2 <= 64; i++) {
		enum sb_op op = m->calls[i].op;
		seen[op]++;
		if (!crash_point(op))
			continue;
		pts[npts++] = (struct point){ op, seen[op], false };
		if (sb_op_writes(op))
			pts[npts++] = (struct point){ op, seen[op], true };
	}
	engine_stop(&e);
	sb_free(m);
	free(dir);

	restart(sc, "after the row was written", &first, want_cache, want_server,
		false);
	sb_free(first.server);
	free(first.to);

	for (size_t k = 0; k < npts; k++) {
		if (!prepare(sc, &e, &m, &dir)) {
			engine_stop(&e);
			sb_free(m);
			free(dir);
			continue;
		}
		struct snap sn = { .from = dir, .to = engine_tmpdir("crash"), .m = m };
		m->hook = take_snapshot;
		m->hook_arg = &sn;
		m->hook_op = pts[k].op;
		m->hook_nth = pts[k].nth;
		m->hook_after = pts[k].after;
		engine_settle(&e);  /* the run that dies at the snapshot */
		engine_stop(&e);
		char *what = xasprintf("%s %s #%u", pts[k].after
				       ? "with the answer lost of" : "before",
				       sb_op_name(pts[k].op), pts[k].nth);
		restart(sc, what, &sn, want_cache, want_server,
			pts[k].op == SB_MOVE && pts[k].after);
		free(what);
		sb_free(sn.server);
		free(sn.to);
		sb_free(m);
		free(dir);
		if (!pts[k].after)
			continue;
		/* the same answer lost without a crash: a network error after
		 * the server did it; the applier settles it on its own */
		if (!prepare(sc, &e, &m, &dir)) {
			engine_stop(&e);
			sb_free(m);
			free(dir);
			continue;
		}
		sb_fault(m, pts[k].op, NULL, pts[k].nth, BE_NETWORK, true);
		engine_settle(&e);
		char *cache = engine_dump(&e), *server = sb_dump(m);
		char *label = xasprintf("%s, answer of %s #%u lost", sc->name,
					sb_op_name(pts[k].op), pts[k].nth);
		if (pts[k].op == SB_MOVE) {
			char *a = without_item_inos(want_cache);
			char *b = without_item_inos(cache);
			CHECK(engine_same(label, a, b));
			free(a);
			free(b);
		} else {
			CHECK(engine_same(label, want_cache, cache));
		}
		CHECK(engine_same(label, want_server, server));
		CHECK(tokens(m) == sc->creates);
		CHECK(m->sent == sc->sent);
		CHECK(engine_rows(&e) == 0);
		free(label);
		free(cache);
		free(server);
		engine_stop(&e);
		sb_free(m);
		free(dir);
	}
	free(want_cache);
	free(want_server);
}

/* ---- conflicts and things gone on the server ---- */

static bool start_synced(struct engine *e, struct sb_model **m, struct ids *x,
			 char **dir)
{
	*m = mailbox(x);
	*dir = engine_tmpdir("conflict");
	if (!engine_start(e, *dir, *m))
		return false;
	CHECK(sync_pass_now(e->s) == BE_OK);
	return true;
}

static void done_with(struct engine *e, struct sb_model *m, char *dir)
{
	engine_stop(e);
	sb_free(m);
	free(dir);
}

/* A flag set here on a message changed on the server meanwhile (its
 * change key is stale): re-read, applied again; both sides agree. */
static void test_stale_change_key(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		sb_item(m, x.two)->categories[0] = 0;
		sb_touch_item(m, sb_item(m, x.two));  /* another client */
		CHECK(do_flag(&e, &x) == 0);
		sb_clear_calls(m);
		engine_settle(&e);
		CHECK(sb_item(m, x.two)->flag == BE_FLAG_FLAGGED);
		CHECK(sb_item(m, x.two)->is_read == 1);
		CHECK(sb_calls(m, SB_GET_CK, x.two) == 1);
		struct node n = { 0 };
		CHECK(cache_get(e.c, ino_of(&e, x.two), &n) == 0 &&
		      n.flag == BE_FLAG_FLAGGED && n.pend == 0 && !n.error);
		node_clear(&n);
		CHECK(engine_rows(&e) == 0);
	}
	done_with(&e, m, dir);
}

/* A draft edited here and elsewhere: what was written here wins (it is
 * what the user saved last). */
static void test_draft_conflict(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		sb_touch_item(m, sb_item(m, x.draft));
		CHECK(do_edit_draft(&e, &x) == 0);
		engine_settle(&e);
		CHECK_STR(sb_item(m, x.draft)->subject, "edited here");
		CHECK(engine_rows(&e) == 0);
	}
	done_with(&e, m, dir);
}

/* A draft edited here and deleted on the server: saved as a new draft,
 * in the same file. */
static void test_draft_gone(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		uint64_t ino = ino_of(&e, x.draft);
		char *name = name_of(&e, x.draft);
		sb_remove_item(m, x.draft);
		CHECK(do_edit_draft(&e, &x) == 0);
		engine_settle(&e);
		CHECK(sb_count_items(m, x.drafts) == 1);
		struct node n = { 0 };
		CHECK(cache_get(e.c, ino, &n) == 0 && n.server_id &&
		      strcmp(n.server_id, x.draft) && !strcmp(n.name, name));
		const struct sb_item *it = n.server_id ? sb_item(m, n.server_id) : NULL;
		CHECK(it && !strcmp(it->subject, "edited here") && it->is_draft);
		node_clear(&n);
		free(name);
		CHECK(engine_rows(&e) == 0);
	}
	done_with(&e, m, dir);
}

/* A move, a delete and a flag of messages the server no longer has:
 * nothing left to apply them to; dropped, no failure left behind. */
static void test_gone_on_server(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		char *one = name_of(&e, x.one);
		sb_remove_item(m, x.one);
		sb_remove_item(m, x.two);
		sb_remove_item(m, x.three);
		CHECK(do_move(&e, &x) == 0);
		CHECK(do_flag(&e, &x) == 0);
		char *three = name_of(&e, x.three);
		CHECK(journal_unlink(e.c, ino_of(&e, x.work), three) == 0);
		engine_settle(&e);
		CHECK(engine_rows(&e) == 0);
		CHECK(ino_of(&e, x.one) == 0);
		CHECK(ino_of(&e, x.two) == 0);
		CHECK(ino_of(&e, x.three) == 0);
		CHECK(engine_ino(&e, ino_of(&e, x.work), one) == 0);
		CHECK(sb_count_items(m, x.work) == 0);
		CHECK(sb_count_items(m, x.deleted) == 0);
		free(one);
		free(three);
	}
	done_with(&e, m, dir);
}

/* A write met by a failure of the connection, not of the write (an
 * untrusted certificate: a captive portal, a certificate renewed before
 * the CA file was): retried when the connection works again, never marked
 * failed as if the server had refused it. */
static void test_transient_write_retried(void)
{
	static const enum be_status sts[] = { BE_TLS, BE_NETWORK,
					      BE_THROTTLED, BE_PROTOCOL };
	for (size_t k = 0; k < sizeof(sts) / sizeof(sts[0]); k++) {
		struct engine e;
		struct sb_model *m;
		struct ids x;
		char *dir;
		if (start_synced(&e, &m, &x, &dir)) {
			sb_fault(m, SB_CREATE, NULL, 1, sts[k], false);
			uint64_t ino;
			CHECK(engine_write_file(&e, ino_of(&e, x.work),
						"later.eml", "later", &ino) == 0);
			CHECK(applier_step(e.a) == 1);   /* the failed try */
			struct journal_stats js;
			journal_stats(e.c, &js);
			if (js.failed)
				fprintf(stderr, "  a write met by %s was marked "
					"failed\n", be_status_name(sts[k]));
			CHECK(js.failed == 0 && js.queued == 1);
			engine_settle(&e);
			journal_stats(e.c, &js);
			CHECK(js.failed == 0 && js.queued == 0);
			CHECK(sb_count_items(m, x.work) == 2);
		}
		done_with(&e, m, dir);
	}
}

/* An answer that is never the server's (a proxy's page for every try):
 * tried PROTOCOL_TRIES times, then kept failed, not retried for ever
 * ahead of the rest of the queue. */
static void test_garbled_answers_end_failed(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		sb_fault(m, SB_CREATE, NULL, 0, BE_PROTOCOL, false);
		uint64_t ino;
		CHECK(engine_write_file(&e, ino_of(&e, x.work), "garbled.eml",
					"garbled", &ino) == 0);
		engine_apply(&e);
		struct journal_stats js;
		journal_stats(e.c, &js);
		CHECK(js.failed == 1);
		CHECK(sb_calls(m, SB_CREATE, NULL) == 10);
		struct node n = { 0 };
		CHECK(cache_get(e.c, ino, &n) == 0 && n.error && n.content);
		node_clear(&n);
	}
	done_with(&e, m, dir);
}

/* A message the server refuses for good: the row stays, failed, with the
 * reason on the file, and what the user wrote stays readable. */
static void test_refused_kept(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		sb_fault(m, SB_CREATE, NULL, 0, BE_REFUSED, false);
		uint64_t ino;
		CHECK(engine_write_file(&e, ino_of(&e, x.work), "refused.eml",
					"refused", &ino) == 0);
		engine_settle(&e);
		struct journal_stats js;
		journal_stats(e.c, &js);
		CHECK(js.failed == 1);
		struct node n = { 0 };
		CHECK(cache_get(e.c, ino, &n) == 0 && n.error && n.content &&
		      n.parent == ino_of(&e, x.work));
		struct stat sb;
		char *path = n.content ? journal_content_path(e.c, n.content) : NULL;
		CHECK(path && stat(path, &sb) == 0 && sb.st_size == n.body_size &&
		      sb.st_size > 0);
		free(path);
		node_clear(&n);
		CHECK(sb_count_items(m, x.work) == 1);  /* three only */
		/* a restart keeps it as it is */
		engine_stop(&e);
		CHECK(engine_start(&e, dir, m));
		engine_settle(&e);
		CHECK(cache_get(e.c, ino, &n) == 0 && n.error && n.content);
		node_clear(&n);
	}
	done_with(&e, m, dir);
}

/* A backend that declares no BE_CAN_FIND_TOKEN (ActiveSync, whose
 * find_token used to fake "not found"): a create whose answer was lost is
 * not looked for; it goes again with the same token, for the protocol's own
 * duplicate check to drop (the scripted server has none: two copies). */
static void test_create_without_find_token(void)
{
	struct backend_ops ops = scripted_backend;
	ops.find_token = NULL;
	engine_ops = &ops;
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		sb_fault(m, SB_CREATE, NULL, 1, BE_NETWORK, true);
		uint64_t ino;
		CHECK(engine_write_file(&e, ino_of(&e, x.work), "again.eml",
					"again", &ino) == 0);
		engine_settle(&e);
		struct journal_stats js;
		journal_stats(e.c, &js);
		CHECK(js.failed == 0);
		CHECK(engine_rows(&e) == 0);
		CHECK(sb_calls(m, SB_FIND_TOKEN, NULL) == 0);
		CHECK(sb_calls(m, SB_CREATE, NULL) == 2);
	}
	done_with(&e, m, dir);
	engine_ops = NULL;
}

/* A folder renamed here and one removed here, neither sent yet, reported
 * by a sync meanwhile (something in them changed on the server): the one
 * keeps the name the user gave it, the other does not come back. */
static void test_pending_folder_rename_kept(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		uint64_t work = ino_of(&e, x.work);
		CHECK(do_rename_dir(&e, &x) == 0);
		CHECK(do_rmdir(&e, &x) == 0);
		sb_folder(m, x.work)->seq = ++m->seq;  /* reported again */
		sb_folder(m, x.empty)->seq = ++m->seq;
		CHECK(sync_pass_now(e.s) == BE_OK);
		CHECK(engine_ino(&e, CACHE_ROOT_INO, "Jobs") == work);
		CHECK(engine_ino(&e, CACHE_ROOT_INO, "Work") == 0);
		CHECK(engine_ino(&e, CACHE_ROOT_INO, "Empty") == 0);
		/* any page of the folder list: Empty is not linked back */
		sb_folder(m, x.inbox)->seq = ++m->seq;
		CHECK(sync_pass_now(e.s) == BE_OK);
		CHECK(engine_ino(&e, CACHE_ROOT_INO, "Empty") == 0);
		engine_settle(&e);
		CHECK(engine_ino(&e, CACHE_ROOT_INO, "Jobs") == work);
		CHECK_STR(sb_folder(m, x.work)->name, "Jobs");
		CHECK(sb_folder(m, x.empty) == NULL);
		CHECK(engine_rows(&e) == 0);
	}
	done_with(&e, m, dir);
}

/* A message written here, not uploaded yet, into a folder another client
 * deletes meanwhile: what the user wrote is kept (in
 * .exchangefs/rejected, with the reason), not deleted with the folder. */
static void test_folder_gone_keeps_unsent(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		uint64_t ino;
		CHECK(engine_write_file(&e, ino_of(&e, x.work), "unsent.eml",
					"unsent", &ino) == 0);
		sb_remove_folder(m, x.work);
		CHECK(sync_pass_now(e.s) == BE_OK);  /* before the applier */
		engine_settle(&e);
		CHECK(ino_of(&e, x.work) == 0);
		struct node n = { 0 };
		CHECK(cache_get(e.c, ino, &n) == 0);
		CHECK(n.parent == CACHE_REJECTED_INO && n.content && n.error);
		struct stat sb;
		char *path = n.content ? journal_content_path(e.c, n.content) : NULL;
		CHECK(path && stat(path, &sb) == 0 && sb.st_size > 0);
		free(path);
		node_clear(&n);
		CHECK(engine_rows(&e) == 0);
	}
	done_with(&e, m, dir);
}

/* A message moved here into a folder another client deletes before the
 * move is sent: the message is still where it was on the server, and
 * stays in view. */
static void test_move_into_deleted_folder(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		char *name = name_of(&e, x.one);
		CHECK(do_move(&e, &x) == 0);
		sb_remove_folder(m, x.work);
		CHECK(sync_pass_now(e.s) == BE_OK);
		engine_settle(&e);
		CHECK(sb_item(m, x.one) != NULL);
		CHECK(engine_ino(&e, ino_of(&e, x.inbox), name) != 0);
		CHECK(engine_rows(&e) == 0);
		free(name);
	}
	done_with(&e, m, dir);
}

/* A flag set here on a message another client deletes, while Inbox's
 * state is refused: the resync leaves the message alone (a change of ours
 * waits for it), the flag finds it gone - and the message goes, rather
 * than staying as a file the server no longer has. */
static void test_flag_gone_during_resync(void)
{
	struct engine e;
	struct sb_model *m;
	struct ids x;
	char *dir;
	if (start_synced(&e, &m, &x, &dir)) {
		CHECK(do_flag(&e, &x) == 0);
		sb_remove_item(m, x.two);
		m->epoch++;
		CHECK(sync_pass_now(e.s) == BE_OK);
		engine_settle(&e);
		CHECK(ino_of(&e, x.two) == 0);
		CHECK(engine_rows(&e) == 0);
		CHECK(ino_of(&e, x.one) != 0);
		/* a draft flagged, then edited here, deleted elsewhere: the
		 * flag does not take the edit with it (saved anew) */
		uint64_t d = ino_of(&e, x.draft);
		struct be_props p = { .mask = BE_PROP_FLAG, .flag = BE_FLAG_FLAGGED };
		CHECK(journal_set_props(e.c, d, &p) == 0);
		CHECK(do_edit_draft(&e, &x) == 0);
		sb_remove_item(m, x.draft);
		m->epoch++;
		CHECK(sync_pass_now(e.s) == BE_OK);
		engine_settle(&e);
		struct node n = { 0 };
		CHECK(cache_get(e.c, d, &n) == 0 && n.server_id &&
		      sb_item(m, n.server_id) &&
		      !strcmp(sb_item(m, n.server_id)->subject, "edited here"));
		node_clear(&n);
		CHECK(engine_rows(&e) == 0);
	}
	done_with(&e, m, dir);
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	/* ENGINE_LOG=1 shows what the engine logs */
	log_set_level(getenv("ENGINE_LOG") ? LOG_INFO_ : LOG_ERR_);
	const char *only = getenv("ENGINE_SCENARIO");
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!only || !strcmp(only, scenarios[i].name))
			run_scenario(&scenarios[i]);
	test_stale_change_key();
	test_draft_conflict();
	test_draft_gone();
	test_gone_on_server();
	test_refused_kept();
	test_transient_write_retried();
	test_garbled_answers_end_failed();
	test_create_without_find_token();
	test_pending_folder_rename_kept();
	test_folder_gone_keeps_unsent();
	test_move_into_deleted_folder();
	test_flag_gone_during_resync();
	engine_cleanup();
	return check_done("test_engine_journal");
}
