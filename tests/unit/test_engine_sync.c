/*
 * test_engine_sync.c - the sync engine (cache/sync.c, sync_apply.c) against
 * the scripted backend: the page-commit contract (a fault or a crash after
 * page N leaves exactly pages 1..N and page N's state, the next pass goes
 * on from page N+1, a page applied twice changes nothing), and a resync
 * after an invalid sync state that keeps the names and inodes of items and
 * folders that still exist.
 */
#include "engine_harness.h"
#include "backend/util.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

#define PAGES 3
#define PER_PAGE 2

/* A server with folder "Big" of PAGES pages of PER_PAGE messages. */
static struct sb_model *big_mailbox(const char **big, const char **ids)
{
	struct sb_model *m = sb_new();
	m->page_size = PER_PAGE;
	*big = sb_add_folder(m, "root", "Big");
	for (int i = 0; i < PAGES * PER_PAGE; i++) {
		char subj[32];
		snprintf(subj, sizeof(subj), "message %d", i);
		ids[i] = sb_add_item(m, *big, subj, 1700000000 + i * 60);
	}
	return m;
}

/* The state a page ends with: the cursor of its last message (the last
 * page's: the server's head). */
static char *state_after(struct sb_model *m, const char *const *ids, int page)
{
	if (page == 0)
		return NULL;
	return xasprintf("%u:%lld", m->epoch, page == PAGES ? (long long)m->seq
			 : (long long)sb_item(m, ids[page * PER_PAGE - 1])->seq);
}

/* What a whole pass without faults leaves. */
static char *reference_dump(void)
{
	const char *big, *ids[PAGES * PER_PAGE];
	struct sb_model *m = big_mailbox(&big, ids);
	struct engine e;
	char *dir = engine_tmpdir("ref");
	char *dump = NULL;
	if (engine_start(&e, dir, m)) {
		CHECK(sync_pass_now(e.s) == BE_OK);
		dump = engine_dump(&e);
	}
	engine_stop(&e);
	sb_free(m);
	free(dir);
	return dump ? dump : xstrdup("");
}

/* The cache holds exactly the messages of pages 1..n and page n's state. */
static void check_pages(struct engine *e, struct sb_model *m, uint64_t folder,
			const char *const *ids, int n)
{
	for (int i = 0; i < PAGES * PER_PAGE; i++)
		CHECK((engine_ino_of_sid(e, ids[i]) != 0) == (i < n * PER_PAGE));
	char *want = state_after(m, ids, n);
	char *got = cache_folder_state(e->c, folder);
	CHECK((!want && !got) || (want && got && !strcmp(want, got)));
	free(want);
	free(got);
	struct node f = { 0 };
	CHECK(cache_get(e->c, folder, &f) == 0 && !f.synced);
	node_clear(&f);
}

/* Page n again (from page n-1's state), as the server sends it. */
static void page_again(struct engine *e, struct sb_model *m, const char *big,
		       const char *const *ids, uint64_t folder, int n)
{
	struct be_result r;
	struct be_session *bs = scripted_backend.open(NULL, &r);
	char *from = state_after(m, ids, n - 1);
	struct be_item_batch b = { 0 };
	CHECK(scripted_backend.sync_items(bs, big, from, 512, &b, &r) == BE_OK);
	CHECK(b.n == PER_PAGE);
	char *before = engine_dump(e);
	char *state_before = cache_folder_state(e->c, folder);
	struct cache_changes ch = { 0 };
	CHECK(cache_apply_items(e->c, folder, &b, !b.more, &ch) == 0);
	CHECK(ch.n == 0);  /* nothing to tell the kernel */
	char *after = engine_dump(e);
	CHECK(engine_same("cache after a page applied twice", before, after));
	char *state = cache_folder_state(e->c, folder);
	CHECK(state && state_before && !strcmp(state, state_before));
	free(state);
	free(state_before);
	free(before);
	free(after);
	cache_changes_free(&ch);
	be_item_batch_free(&b);
	free(from);
	scripted_backend.close(bs);
}

/* Resuming: one call per page left, the first from page n's state, and
 * the result of a pass without faults. */
static void check_resume(struct engine *e, struct sb_model *m, const char *big,
			 const char *const *ids, int n, const char *ref)
{
	sb_clear_faults(m);
	sb_clear_calls(m);
	CHECK(sync_pass_now(e->s) == BE_OK);
	CHECK(sb_calls(m, SB_SYNC_ITEMS, big) == (size_t)(PAGES - n));
	char *want = state_after(m, ids, n);
	for (size_t i = 0; i < m->n_calls; i++)
		if (m->calls[i].op == SB_SYNC_ITEMS && !strcmp(m->calls[i].arg, big)) {
			CHECK_STR(m->calls[i].state, want ? want : "");
			break;
		}
	free(want);
	char *dump = engine_dump(e);
	CHECK(engine_same("cache after resuming", ref, dump));
	free(dump);
}

/* A network error answering page n+1. */
static void test_fault_after_page(int n, const char *ref)
{
	const char *big, *ids[PAGES * PER_PAGE];
	struct sb_model *m = big_mailbox(&big, ids);
	struct engine e;
	char *dir = engine_tmpdir("fault");
	CHECK(engine_start(&e, dir, m));
	uint64_t folder = engine_ino(&e, CACHE_ROOT_INO, "Big");
	CHECK(folder != 0);
	sb_fault(m, SB_SYNC_ITEMS, big, (unsigned)n + 1, BE_NETWORK, false);
	CHECK(sync_pass_now(e.s) == BE_NETWORK);
	check_pages(&e, m, folder, ids, n);
	if (n > 0)
		page_again(&e, m, big, ids, folder, n);
	check_resume(&e, m, big, ids, n, ref);
	engine_stop(&e);
	sb_free(m);
	free(dir);
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

/* The daemon killed as it asks for page n+1: restarted, it holds pages
 * 1..n and goes on from there. */
static void test_crash_after_page(int n, const char *ref)
{
	const char *big, *ids[PAGES * PER_PAGE];
	struct sb_model *m = big_mailbox(&big, ids);
	struct engine e;
	char *dir = engine_tmpdir("crash");
	struct snap sn = { .from = dir, .to = engine_tmpdir("crash-copy"), .m = m };
	CHECK(engine_start(&e, dir, m));
	m->hook = take_snapshot;
	m->hook_arg = &sn;
	m->hook_op = SB_SYNC_ITEMS;
	m->hook_on = big;
	m->hook_nth = (unsigned)n + 1;
	CHECK(sync_pass_now(e.s) == BE_OK);
	engine_stop(&e);
	CHECK(sn.server != NULL);
	if (sn.server) {
		struct engine r;
		CHECK(engine_start(&r, sn.to, sn.server));
		uint64_t folder = engine_ino(&r, CACHE_ROOT_INO, "Big");
		check_pages(&r, sn.server, folder, ids, n);
		check_resume(&r, sn.server, big, ids, n, ref);
		engine_stop(&r);
	}
	sb_free(sn.server);
	sb_free(m);
	free(sn.to);
	free(dir);
}

/* ---- resync ---- */

struct seen {
	uint64_t ino;
	char *name;
};

static struct seen seen_of(struct engine *e, const char *sid)
{
	struct seen s = { engine_ino_of_sid(e, sid), NULL };
	struct node n = { 0 };
	if (s.ino && cache_get(e->c, s.ino, &n) == 0)
		s.name = xstrdup(n.name);
	node_clear(&n);
	return s;
}

static bool same_seen(struct engine *e, const char *sid, struct seen was)
{
	struct seen now = seen_of(e, sid);
	bool same = now.ino == was.ino && now.name && was.name &&
		    !strcmp(now.name, was.name);
	if (!same)
		printf("%s: was ino %llu '%s', now ino %llu '%s'\n", sid,
		       (unsigned long long)was.ino, was.name ? was.name : "",
		       (unsigned long long)now.ino, now.name ? now.name : "");
	free(now.name);
	return same;
}

static void test_resync(void)
{
	struct sb_model *m = sb_new();
	const char *inbox = m->special[BE_INBOX];
	const char *a = sb_add_item(m, inbox, "alpha", 1700000000);
	const char *b = sb_add_item(m, inbox, "beta", 1700000060);
	const char *c = sb_add_item(m, inbox, "gamma", 1700000120);
	/* two with one name: "x" and "x (2)" stay as they were */
	const char *d1 = sb_add_item(m, inbox, "same", 1700000180);
	const char *d2 = sb_add_item(m, inbox, "same", 1700000180);
	const char *work = sb_add_folder(m, "root", "Work");
	const char *sub = sb_add_folder(m, work, "Sub");
	const char *old = sb_add_folder(m, "root", "Old");
	const char *again = sb_add_folder(m, "root", "Again");
	const char *w1 = sb_add_item(m, work, "in work", 1700000240);
	struct engine e;
	char *dir = engine_tmpdir("resync");
	CHECK(engine_start(&e, dir, m));
	CHECK(sync_pass_now(e.s) == BE_OK);
	struct seen sa = seen_of(&e, a), sc = seen_of(&e, c), s1 = seen_of(&e, d1),
		    s2 = seen_of(&e, d2), sw = seen_of(&e, work),
		    ss = seen_of(&e, sub), sw1 = seen_of(&e, w1),
		    sagain = seen_of(&e, again);
	CHECK(s1.name && s2.name && strcmp(s1.name, s2.name));
	uint64_t inbox_ino = engine_ino_of_sid(&e, inbox);

	/* meanwhile on the server: beta and Old go, delta and New come, Again
	 * is deleted and made anew under its name; and every state is
	 * refused */
	sb_remove_item(m, b);
	const char *dl = sb_add_item(m, inbox, "delta", 1700000300);
	sb_remove_folder(m, old);
	const char *nw = sb_add_folder(m, "root", "New");
	sb_remove_folder(m, again);
	const char *again2 = sb_add_folder(m, "root", "Again");
	m->epoch++;
	m->hier_epoch++;
	sb_clear_calls(m);
	CHECK(sync_pass_now(e.s) == BE_OK);

	/* each state was refused once, then read from empty */
	size_t refused = 0;
	for (size_t i = 0; i < m->n_calls; i++)
		refused += m->calls[i].st == BE_SYNC_INVALID;
	CHECK(refused >= 3);  /* the hierarchy, Inbox, Work at least */
	CHECK(same_seen(&e, a, sa));
	CHECK(same_seen(&e, c, sc));
	CHECK(same_seen(&e, d1, s1));
	CHECK(same_seen(&e, d2, s2));
	CHECK(same_seen(&e, work, sw));
	CHECK(same_seen(&e, sub, ss));
	CHECK(same_seen(&e, w1, sw1));
	/* a message the resync no longer finds leaves the tree at once; it is
	 * held aside for a moment in case a page creates it elsewhere (a move,
	 * cache/sync_moves.c), then deleted: settle what is held as a restart
	 * would, instead of waiting */
	uint64_t held = engine_ino_of_sid(&e, b);
	if (held) {
		struct node hn = { 0 };
		CHECK(cache_get(e.c, held, &hn) == 0 && hn.parent == 0);
		node_clear(&hn);
		CHECK(cache_moves_recover(e.c) == 0);
	}
	CHECK(engine_ino_of_sid(&e, b) == 0);
	CHECK(engine_ino_of_sid(&e, old) == 0);
	CHECK(engine_ino_of_sid(&e, again) == 0);
	struct seen sd = seen_of(&e, dl), sn = seen_of(&e, nw),
		    sagain2 = seen_of(&e, again2);
	CHECK(sd.ino && engine_ino(&e, inbox_ino, sd.name) == sd.ino);
	CHECK(sn.ino && engine_ino(&e, CACHE_ROOT_INO, "New") == sn.ino);
	/* a folder made anew under its name gets the name, not "Again (2)" */
	CHECK(sagain2.name && !strcmp(sagain2.name, sagain.name));
	struct node f = { 0 };
	CHECK(cache_get(e.c, inbox_ino, &f) == 0 && f.synced);
	node_clear(&f);

	/* a second run changes nothing */
	char *before = engine_dump(&e);
	CHECK(sync_pass_now(e.s) == BE_OK);
	char *after = engine_dump(&e);
	CHECK(engine_same("cache after a second pass", before, after));
	free(before);
	free(after);

	struct seen *all[] = { &sa, &sc, &s1, &s2, &sw, &ss, &sw1, &sagain, &sd,
			       &sn, &sagain2 };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]->name);
	engine_stop(&e);
	sb_free(m);
	free(dir);
}

/* A resync of Big (3 pages: 6 messages, 2 gone, 1 new) killed at each of
 * its calls - the refused one and each page from empty: restarted, it
 * ends as a resync without a crash (the gone removed at the end, the
 * others keeping their inodes). */
static struct sb_model *resync_mailbox(const char **big, const char **ids)
{
	struct sb_model *m = big_mailbox(big, ids);
	return m;
}

static void resync_change(struct sb_model *m, const char *big,
			  const char *const *ids)
{
	sb_remove_item(m, ids[1]);
	sb_remove_item(m, ids[4]);
	sb_add_item(m, big, "late", 1700009000);
	m->epoch++;
}

static void test_resync_crash(void)
{
	const char *big, *ids[PAGES * PER_PAGE];
	struct sb_model *m = resync_mailbox(&big, ids);
	struct engine e;
	char *dir = engine_tmpdir("resync-ref");
	CHECK(engine_start(&e, dir, m));
	CHECK(sync_pass_now(e.s) == BE_OK);
	resync_change(m, big, ids);
	sb_clear_calls(m);
	CHECK(sync_pass_now(e.s) == BE_OK);
	char *ref = engine_dump(&e);
	size_t calls = sb_calls(m, SB_SYNC_ITEMS, big);
	CHECK(calls >= 4);  /* refused, then the pages from empty */
	engine_stop(&e);
	sb_free(m);
	free(dir);
	for (unsigned k = 1; k <= calls; k++) {
		m = resync_mailbox(&big, ids);
		dir = engine_tmpdir("resync-crash");
		struct snap sn = { .from = dir, .to = engine_tmpdir("resync-copy"),
				   .m = m };
		CHECK(engine_start(&e, dir, m));
		CHECK(sync_pass_now(e.s) == BE_OK);
		resync_change(m, big, ids);
		sb_clear_calls(m);
		m->hook = take_snapshot;
		m->hook_arg = &sn;
		m->hook_op = SB_SYNC_ITEMS;
		m->hook_on = big;
		m->hook_nth = k;
		sync_pass_now(e.s);
		engine_stop(&e);
		CHECK(sn.server != NULL);
		if (sn.server) {
			struct engine r;
			CHECK(engine_start(&r, sn.to, sn.server));
			CHECK(sync_pass_now(r.s) == BE_OK);
			char *dump = engine_dump(&r);
			char *label = xasprintf("resync killed at call %u", k);
			CHECK(engine_same(label, ref, dump));
			free(label);
			free(dump);
			engine_stop(&r);
		}
		sb_free(sn.server);
		sb_free(m);
		free(sn.to);
		free(dir);
	}
	free(ref);
}

/* A server that says "more changes follow" but sends none, with the same
 * state, every time: the folder's sync ends with one error instead of
 * asking again for ever (a hook lets a looping engine out at call 1000). */
static bool looped;

static void unstick(void *arg)
{
	struct sb_model *m = arg;
	m->page_size = 2;
	looped = true;
}

static void test_more_without_changes(void)
{
	struct sb_model *m = sb_new();
	const char *stuck = sb_add_folder(m, "root", "Stuck");
	const char *a = sb_add_item(m, stuck, "a", 1700000000);
	char *dir = engine_tmpdir("stuck");
	struct engine e;
	CHECK(engine_start(&e, dir, m));
	m->page_size = 0;
	m->hook = unstick;
	m->hook_arg = m;
	m->hook_op = SB_SYNC_ITEMS;
	m->hook_on = stuck;
	m->hook_nth = 1000;
	enum be_status st = sync_pass_now(e.s);
	if (looped)
		printf("  the sync asked for the same empty page 1000 times\n");
	CHECK(!looped);
	CHECK(st != BE_OK);     /* the folder's sync failed */
	CHECK(sb_calls(m, SB_SYNC_ITEMS, stuck) < 10);
	/* the server mended: the next pass syncs the folder */
	m->page_size = 2;
	m->hook_nth = 0;
	CHECK(sync_pass_now(e.s) == BE_OK);
	CHECK(engine_ino_of_sid(&e, a) != 0);
	/* the same with the folder list */
	looped = false;
	sb_add_folder(m, "root", "New");
	m->page_size = 0;
	m->hook_op = SB_SYNC_FOLDERS;
	m->hook_on = NULL;
	m->hook_seen = 0;
	m->hook_nth = 1000;
	sync_pass_now(e.s);
	if (looped)
		printf("  the folder sync asked for the same empty page 1000 "
		       "times\n");
	CHECK(!looped);
	m->page_size = 2;
	m->hook_nth = 0;
	CHECK(sync_pass_now(e.s) == BE_OK);
	CHECK(engine_ino(&e, CACHE_ROOT_INO, "New") != 0);
	engine_stop(&e);
	sb_free(m);
	free(dir);
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	/* ENGINE_LOG=1 shows what the engine logs */
	log_set_level(getenv("ENGINE_LOG") ? LOG_INFO_ : LOG_ERR_);
	char *ref = reference_dump();
	for (int n = 0; n < PAGES; n++) {
		test_fault_after_page(n, ref);
		test_crash_after_page(n, ref);
	}
	free(ref);
	test_resync();
	test_resync_crash();
	test_more_without_changes();
	engine_cleanup();
	return check_done("test_engine_sync");
}
