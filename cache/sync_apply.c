/*
 * sync_apply.c - applies a page of server changes (folders or items) and
 * the new sync state to the cache in ONE transaction, so a crash at any
 * point resumes from the last committed page with no loss or duplicate.
 * Records what changed for the kernel (struct cache_changes).
 *
 * Names are given once, when a node is first seen, and only change when
 * the server renames or moves a folder.
 */
#include "db_internal.h"
#include "journal_internal.h"
#include "names.h"
#include "kinds.h"
#include "sync_moves.h"
#include "backend/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cache_change_add(struct cache_changes *ch, int what, uint64_t ino,
		      uint64_t parent, const char *name, uint64_t new_parent,
		      const char *new_name)
{
	if (!ch)
		return;
	if (ch->n == ch->cap) {
		ch->cap = ch->cap ? ch->cap * 2 : 64;
		ch->v = xrealloc(ch->v, ch->cap * sizeof(*ch->v));
	}
	struct cache_change *e = &ch->v[ch->n++];
	e->what = what;
	e->dir = false;
	e->ino = ino;
	e->parent = parent;
	e->name = xstrdup(name);
	e->new_parent = new_parent;
	e->new_name = xstrdup(new_name);
}

void cache_change_add_dir(struct cache_changes *ch, int what, uint64_t ino,
			  uint64_t parent, const char *name,
			  uint64_t new_parent, const char *new_name)
{
	cache_change_add(ch, what, ino, parent, name, new_parent, new_name);
	if (ch)
		ch->v[ch->n - 1].dir = true;
}

/* ---- move hints (cache_hint_move) ---- */

#define HINT_TTL_S 600

void cache_hint_move(struct cache *c, const char *old_id, const char *new_id,
		     const char *new_folder_id)
{
	if (!old_id || !new_id || !new_folder_id || !strcmp(old_id, new_id))
		return;
	pthread_mutex_lock(&c->lock);
	struct move_hint *h = &c->hints[c->next_hint++ % MOVE_HINTS];
	free(h->old_id);
	free(h->new_id);
	free(h->new_folder_id);
	h->old_id = xstrdup(old_id);
	h->new_id = xstrdup(new_id);
	h->new_folder_id = xstrdup(new_folder_id);
	h->at = time(NULL);
	pthread_mutex_unlock(&c->lock);
}

/* The live hint whose old id (by_old) or new id is id, or NULL. */
static const struct move_hint *hinted(struct cache *c, const char *id,
				      bool by_old)
{
	/* on the path of every new and every deleted item: the slots ever
	 * filled only (none, as long as no move was reported) */
	size_t filled = c->next_hint < MOVE_HINTS ? c->next_hint : MOVE_HINTS;
	time_t now = time(NULL);
	for (size_t i = 0; i < filled; i++) {
		const struct move_hint *h = &c->hints[i];
		if (now - h->at > HINT_TTL_S)
			continue;
		if (!strcmp(by_old ? h->old_id : h->new_id, id))
			return h;
	}
	return NULL;
}

void cache_hints_free(struct cache *c)
{
	for (size_t i = 0; i < MOVE_HINTS; i++) {
		free(c->hints[i].old_id);
		free(c->hints[i].new_id);
		free(c->hints[i].new_folder_id);
	}
}

void cache_changes_free(struct cache_changes *ch)
{
	for (size_t i = 0; i < ch->n; i++) {
		free(ch->v[i].name);
		free(ch->v[i].new_name);
	}
	free(ch->v);
	memset(ch, 0, sizeof(*ch));
}

bool cache_name_taken(struct cache *c, uint64_t parent, const char *name)
{
	sqlite3_stmt *st = db_cached(c, "SELECT 1 FROM nodes WHERE parent = ? "
				     "AND name = ?");
	sqlite3_bind_int64(st, 1, (int64_t)parent);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	bool taken = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	/* the control entry is reserved at the root */
	return taken || (parent == CACHE_ROOT_INO && !strcmp(name, ".exchangefs"));
}

/* A free name under parent: base name, then (2), (3), ... in the order the
 * server reported the nodes. */
char *cache_free_name(struct cache *c, uint64_t parent, enum node_kind kind,
		       const char *title, int64_t t)
{
	/* an item's file follows its folder's kind (kinds.h) */
	const struct kind_info *k = kind == NODE_ITEM ? kind_of_folder(c, parent)
						      : NULL;
	for (unsigned n = 1;; n++) {
		char *name = kind == NODE_ITEM
			? names_item(t, title, n, k->ext, k->dated)
			: names_folder(title, n);
		if (!cache_name_taken(c, parent, name))
			return name;
		free(name);
	}
}

static bool folder_visible(struct cache *c, const char *cls)
{
	return kind_folder_visible(cls, c->pim);
}

static uint64_t parent_ino(struct cache *c, const char *root_id,
			   const char *parent_sid)
{
	if (!parent_sid || (root_id && !strcmp(parent_sid, root_id)))
		return CACHE_ROOT_INO;
	struct node p = { 0 };
	if (cache_by_server_id(c, NODE_FOLDER, parent_sid, &p))
		return 0;  /* not known yet: linked after the batch */
	uint64_t ino = p.ino;
	node_clear(&p);
	return ino;
}

/* Remove a folder and everything below it (but what the user wrote and
 * has not sent yet, jr_keep_unsent). */
static int delete_subtree(struct cache *c, uint64_t ino,
			  struct cache_changes *ch)
{
	int rc = jr_keep_unsent(c, ino, ch);
	if (rc)
		return rc;
	sqlite3_stmt *st = db_prepare(c,
		"WITH RECURSIVE sub(ino) AS (SELECT ?1 UNION ALL "
		"SELECT n.ino FROM nodes n JOIN sub ON n.parent = sub.ino) "
		"SELECT b.ino FROM bodies b JOIN sub ON b.ino = sub.ino");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while (sqlite3_step(st) == SQLITE_ROW)
		bodies_forget(c, (uint64_t)sqlite3_column_int64(st, 0));
	sqlite3_finalize(st);
	st = db_prepare(c,
		"WITH RECURSIVE sub(ino) AS (SELECT ?1 UNION ALL "
		"SELECT n.ino FROM nodes n JOIN sub ON n.parent = sub.ino) "
		"DELETE FROM nodes WHERE ino IN sub");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	return db_step_done(c, st);
}

/* A folder made here whose creation's answer was lost (the server says
 * the name exists when it is tried again): the server's folder of that
 * name under the same parent is it - folder names are unique among
 * siblings.  Returns 1 if adopted, 0 if there is no such local folder. */
static int adopt_folder(struct cache *c, uint64_t parent, const char *sname,
			const struct be_folder *f)
{
	sqlite3_stmt *st = db_prepare(c, "SELECT ino FROM nodes WHERE kind = 1 "
				      "AND server_id IS NULL AND parent = ? AND "
				      "server_name = ? AND ino IN (SELECT ino FROM "
				      "journal WHERE op = ? AND state IN (1, 2))");
	sqlite3_bind_int64(st, 1, (int64_t)parent);
	db_bind_text(st, 2, sname);
	sqlite3_bind_int(st, 3, J_MKDIR);
	int64_t ino = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (!ino)
		return 0;
	log_notice("folder '%s' is on the server already (an earlier attempt "
		   "made it): using it", sname);
	st = db_prepare(c, "UPDATE nodes SET server_id = ?, change_key = ?, "
			"parent_sid = ?, error = NULL, pend = 0 WHERE ino = ?");
	db_bind_text(st, 1, f->id);
	db_bind_text(st, 2, f->change_key);
	db_bind_text(st, 3, f->parent_id);
	sqlite3_bind_int64(st, 4, ino);
	int rc = db_step_done(c, st);
	if (!rc) {
		st = db_prepare(c, "DELETE FROM journal WHERE ino = ? AND op = ?");
		sqlite3_bind_int64(st, 1, ino);
		sqlite3_bind_int(st, 2, J_MKDIR);
		rc = db_step_done(c, st);
	}
	return rc ? rc : 1;
}

static int apply_folder(struct cache *c, const char *root_id,
			const struct be_folder *f, struct cache_changes *ch)
{
	struct node old = { 0 };
	bool exists = f->id && cache_by_server_id(c, NODE_FOLDER, f->id, &old) == 0;
	int rc = 0;
	time_t now = time(NULL);

	if (f->change == BE_DELETE) {
		if (exists) {
			rc = delete_subtree(c, old.ino, ch);
			cache_change_add_dir(ch, CC_GONE, old.ino, old.parent, old.name, 0, NULL);
		}
		node_clear(&old);
		return rc;
	}
	if (!f->id) {
		node_clear(&old);
		return 0;
	}
	uint64_t parent = parent_ino(c, root_id, f->parent_id);
	const char *sname = f->name ? f->name : (exists ? old.server_name : "");
	if (!exists && parent && adopt_folder(c, parent, sname, f) == 1) {
		node_clear(&old);
		return 0;
	}
	if (!exists) {
		char *name = cache_free_name(c, parent, NODE_FOLDER, sname, 0);
		sqlite3_stmt *st = db_prepare(c,
			"INSERT INTO nodes(parent, kind, name, server_id, "
			"change_key, parent_sid, server_name, folder_class, "
			"visible, total, unread, mtime) "
			"VALUES(?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
		sqlite3_bind_int64(st, 1, (int64_t)parent);
		db_bind_text(st, 2, name);
		db_bind_text(st, 3, f->id);
		db_bind_text(st, 4, f->change_key);
		db_bind_text(st, 5, f->parent_id);
		db_bind_text(st, 6, sname);
		db_bind_text(st, 7, f->folder_class);
		sqlite3_bind_int(st, 8, folder_visible(c, f->folder_class));
		sqlite3_bind_int64(st, 9, f->total_count);
		sqlite3_bind_int64(st, 10, f->unread_count);
		sqlite3_bind_int64(st, 11, now);
		rc = db_step_done(c, st);
		if (!rc && parent)
			cache_change_add_dir(ch, CC_NEW, (uint64_t)sqlite3_last_insert_rowid(c->db),
				   parent, name, 0, NULL);
		free(name);
		return rc;
	}
	/* an existing folder: renamed or moved?  Not while the journal has a
	 * move or rename of it to send: this page may have been read before
	 * the user's change (or the server has not caught up), and the
	 * user's change wins - it must look done the moment it returned,
	 * never renamed back and forth.  The page after the journal's send
	 * reports the place the user chose. */
	bool ours = (old.pend & JP_PLACE) != 0;
	if (ours) {
		parent = old.parent;
		sname = old.server_name ? old.server_name : "";
	}
	char *name = xstrdup(old.name);
	bool moved = parent != old.parent;
	bool renamed = strcmp(sname, old.server_name ? old.server_name : "") != 0;
	if (moved || renamed) {
		free(name);
		/* release the old name first so a folder can take its own
		 * name back, e.g. "A (2)" -> "A" when "A" went away */
		sqlite3_stmt *st = db_prepare(c, "UPDATE nodes SET name = '//' || ino "
					      "WHERE ino = ?");
		sqlite3_bind_int64(st, 1, (int64_t)old.ino);
		db_step_done(c, st);
		name = cache_free_name(c, parent, NODE_FOLDER, sname, 0);
	}
	sqlite3_stmt *st = db_prepare(c,
		"UPDATE nodes SET parent = ?1, name = ?2, change_key = ?3, "
		"parent_sid = CASE WHEN ?12 THEN parent_sid ELSE ?4 END, "
		"server_name = ?5, folder_class = ?6, "
		"visible = CASE WHEN ?12 THEN visible ELSE ?7 END, "
		"total = ?8, unread = ?9, mtime = ?10 WHERE ino = ?11");
	sqlite3_bind_int64(st, 1, (int64_t)parent);
	db_bind_text(st, 2, name);
	db_bind_text(st, 3, f->change_key);
	db_bind_text(st, 4, f->parent_id);
	db_bind_text(st, 5, sname);
	db_bind_text(st, 6, f->folder_class ? f->folder_class : old.folder_class);
	sqlite3_bind_int(st, 7, (old.pend & JP_PLACE) ? old.visible
				: folder_visible(c, f->folder_class ? f->folder_class
						 : old.folder_class));
	sqlite3_bind_int64(st, 8, f->total_count);
	sqlite3_bind_int64(st, 9, f->unread_count);
	sqlite3_bind_int64(st, 10, (moved || renamed) ? now : old.mtime);
	sqlite3_bind_int64(st, 11, (int64_t)old.ino);
	sqlite3_bind_int(st, 12, ours);
	rc = db_step_done(c, st);
	if (!rc && (moved || renamed))
		cache_change_add_dir(ch, CC_RENAMED, old.ino, old.parent, old.name, parent,
			   name);
	free(name);
	node_clear(&old);
	return rc;
}

/* Folders whose parent arrived after them (or not yet) have parent 0;
 * link those whose parent is now known.  A folder removed here whose
 * deletion is still queued has parent 0 too (journal.c's limbo): it is no
 * orphan and stays out of the tree. */
static int link_orphans(struct cache *c, struct cache_changes *ch)
{
	sqlite3_stmt *st = db_prepare(c,
		"SELECT o.ino, p.ino, o.server_name FROM nodes o "
		"JOIN nodes p ON p.kind = 1 AND p.server_id = o.parent_sid "
		"WHERE o.kind = 1 AND o.parent = 0 AND o.ino != 1 AND "
		"o.pend & ? = 0");
	sqlite3_bind_int(st, 1, (int)JP_PLACE);
	int rc = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t parent = (uint64_t)sqlite3_column_int64(st, 1);
		const char *sname = (const char *)sqlite3_column_text(st, 2);
		char *name = cache_free_name(c, parent, NODE_FOLDER, sname, 0);
		sqlite3_stmt *up = db_prepare(c, "UPDATE nodes SET parent = ?, "
					      "name = ? WHERE ino = ?");
		sqlite3_bind_int64(up, 1, (int64_t)parent);
		db_bind_text(up, 2, name);
		sqlite3_bind_int64(up, 3, (int64_t)ino);
		rc = db_step_done(c, up);
		cache_change_add_dir(ch, CC_NEW, ino, parent, name, 0, NULL);
		free(name);
		if (rc)
			break;
	}
	sqlite3_finalize(st);
	return rc;
}

int cache_apply_folders(struct cache *c, const char *root_id,
			const struct be_folder_batch *b,
			struct cache_changes *ch)
{
	pthread_mutex_lock(&c->lock);
	int rc = db_begin(c);
	for (size_t i = 0; !rc && i < b->n; i++)
		rc = apply_folder(c, root_id, &b->v[i], ch);
	if (!rc)
		rc = link_orphans(c, ch);
	if (!rc && b->new_state) {
		sqlite3_stmt *st = db_prepare(c, "INSERT OR REPLACE INTO meta"
					      "(key, value) VALUES('hierarchy_state', ?)");
		db_bind_text(st, 1, b->new_state);
		rc = db_step_done(c, st);
	}
	if (!rc)
		rc = db_commit(c);
	if (rc)
		db_rollback(c);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* The few fields of a known item that applying a change needs: cheaper
 * than a whole node, and this runs once per item of every page. */
static bool item_by_server_id(struct cache *c, const char *sid, struct node *out)
{
	sqlite3_stmt *st = db_cached(c, "SELECT ino, parent, name, size, pend, "
				     "content IS NOT NULL, is_read, flag, "
				     "categories, is_draft, received, change_key, "
				     "message_id, subject "
				     "FROM nodes WHERE kind = 2 AND server_id = ?");
	sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		out->ino = (uint64_t)sqlite3_column_int64(st, 0);
		out->parent = (uint64_t)sqlite3_column_int64(st, 1);
		out->name = xstrdup((const char *)sqlite3_column_text(st, 2));
		out->size = sqlite3_column_int64(st, 3);
		out->pend = (unsigned)sqlite3_column_int(st, 4);
		out->local = sqlite3_column_int(st, 5);  /* has local content */
		out->is_read = sqlite3_column_int(st, 6);
		out->flag = sqlite3_column_int(st, 7);
		out->categories = xstrdup((const char *)sqlite3_column_text(st, 8));
		out->is_draft = sqlite3_column_int(st, 9);
		out->received = sqlite3_column_int64(st, 10);
		out->change_key = xstrdup((const char *)sqlite3_column_text(st, 11));
		out->message_id = xstrdup((const char *)sqlite3_column_text(st, 12));
		out->subject = xstrdup((const char *)sqlite3_column_text(st, 13));
	}
	sqlite3_reset(st);
	return found;
}

/* Whether an update changes what the mount shows of a known item (stat,
 * the user.mail.* attributes): a change the user made here, reported back
 * by the server, does not - it must not come back as a second event. */
static bool shows_change(const struct node *old, const struct be_item *it)
{
	unsigned pend = old->pend;
	if (it->is_read >= 0 && !(pend & JP_READ) && it->is_read != old->is_read)
		return true;
	if (it->flag >= 0 && !(pend & JP_FLAG) && it->flag != old->flag)
		return true;
	if (it->categories && !(pend & JP_CATS) &&
	    strcmp(it->categories, old->categories ? old->categories : ""))
		return true;
	return it->is_draft >= 0 && it->is_draft != old->is_draft;
}

/* The content file of a node (relative to the cache dir), or NULL. */
static char *node_content(struct cache *c, uint64_t ino)
{
	sqlite3_stmt *st = db_cached(c, "SELECT content FROM nodes WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	char *rel = sqlite3_step(st) == SQLITE_ROW
		? xstrdup((const char *)sqlite3_column_text(st, 0)) : NULL;
	sqlite3_reset(st);
	return rel;
}

/* Move a known item to folder (a server-side move: the same id in another
 * folder, or a hinted move), keeping its name if it is free there. */
static int move_item_node(struct cache *c, const struct node *old,
			  uint64_t folder, const char *new_id,
			  const char *subject, int64_t received,
			  struct cache_changes *ch)
{
	char *name = cache_name_taken(c, folder, old->name)
		? cache_free_name(c, folder, NODE_ITEM, subject, received)
		: xstrdup(old->name);
	sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET parent = ?, name = ?, "
				     "server_id = coalesce(?, server_id) "
				     "WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)folder);
	db_bind_text(st, 2, name);
	db_bind_text(st, 3, new_id);
	sqlite3_bind_int64(st, 4, (int64_t)old->ino);
	int rc = db_run(c, st);
	if (!rc)
		rc = count_items(c, old->parent, -1);
	if (!rc)
		rc = count_items(c, folder, 1);
	if (!rc)
		cache_change_add(ch, CC_RENAMED, old->ino, old->parent, old->name,
				 folder, name);
	free(name);
	return rc;
}

/* Adjust a folder's message count (n_items) by delta. */
int count_items(struct cache *c, uint64_t folder, int64_t delta)
{
	if (!delta)
		return 0;
	sqlite3_stmt *st = db_cached(c, "UPDATE nodes SET n_items = n_items + ? "
				     "WHERE ino = ?");
	sqlite3_bind_int64(st, 1, delta);
	sqlite3_bind_int64(st, 2, (int64_t)folder);
	return db_run(c, st);
}

/* The source half of a move whose target page came first (a node held
 * arriving, sync_moves.c): old moves there and takes the new node's server
 * id; the new node, never shown, goes. */
static int take_arriving(struct cache *c, const struct node *old,
			 uint64_t arriving, uint64_t dest,
			 struct cache_changes *ch)
{
	sqlite3_stmt *st = db_cached(c, "SELECT server_id, change_key FROM "
				     "nodes WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)arriving);
	char *sid = NULL, *ck = NULL;
	if (sqlite3_step(st) == SQLITE_ROW) {
		sid = xstrdup((const char *)sqlite3_column_text(st, 0));
		ck = xstrdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_reset(st);
	moves_forget(c, arriving);
	st = db_cached(c, "DELETE FROM nodes WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)arriving);
	int rc = db_run(c, st);
	if (!rc)
		rc = move_item_node(c, old, dest, sid, old->subject,
				    old->received, ch);
	if (!rc && ck) {
		st = db_cached(c, "UPDATE nodes SET change_key = ? WHERE ino = ?");
		db_bind_text(st, 1, ck);
		sqlite3_bind_int64(st, 2, (int64_t)old->ino);
		rc = db_run(c, st);
	}
	free(sid);
	free(ck);
	return rc;
}

/* Whether an item the server reports is one its folder's kind shows: a
 * calendar shows events, a contacts folder cards (a distribution list,
 * a task filed there: not in this version); a mail folder everything, as
 * before. */
static bool kind_fits(const struct kind_info *k, const struct be_item *it)
{
	switch (k->kind) {
	case KIND_CALENDAR: return it->kind == BE_KIND_CALENDAR;
	case KIND_CONTACTS: return it->kind == BE_KIND_CONTACT;
	default: return true;
	}
}

/* Apply one item change; *added counts messages added to (or, negative,
 * removed from) folder, so the page updates the folder's count once.
 * folder_sid is the folder's server id once it synced before (NULL on its
 * first sync: nothing there can be half of a move worth holding). */
static int apply_item(struct cache *c, uint64_t folder, const char *folder_sid,
		      int64_t gen, const struct be_item *it,
		      struct cache_changes *ch, int64_t *added)
{
	if (!it->id)
		return 0;
	struct node old = { 0 };
	bool exists = item_by_server_id(c, it->id, &old);
	int rc = 0;
	sqlite3_stmt *st;
	const struct kind_info *k;
	struct be_item adj;

	/* a node held as half of a move (sync_moves.c) reported again */
	int held = exists && !old.pend && old.parent == 0
		? moves_held(c, old.ino) : 0;
	if (held && it->change == BE_DELETE) {
		if (held == MOVE_ARRIVING) {
			/* created and deleted again: never shown */
			moves_forget(c, old.ino);
			st = db_cached(c, "DELETE FROM nodes WHERE ino = ?");
			sqlite3_bind_int64(st, 1, (int64_t)old.ino);
			rc = db_run(c, st);
		}
		goto out;  /* a leaving one is on its way out already */
	}
	if (held == MOVE_LEAVING) {
		rc = moves_unhold_leaving(c, &old);
		if (rc)
			goto out;
	} else if (held == MOVE_ARRIVING) {
		rc = moves_link_arriving(c, old.ino, ch);
		node_clear(&old);
		if (rc)
			goto out;
		exists = item_by_server_id(c, it->id, &old);
	}

	/* A move the server reported: the new id is created here, and the
	 * item still has its old id (the source folder's delete may come
	 * later): the node moves, with its inode, name and body. */
	const struct move_hint *h;
	uint64_t other = 0;
	if (!exists && it->change != BE_DELETE &&
	    (h = hinted(c, it->id, false)) != NULL &&
	    item_by_server_id(c, h->old_id, &old) && !(old.pend & JP_PLACE)) {
		if (old.parent == 0 && moves_held(c, old.ino) == MOVE_LEAVING)
			rc = moves_unhold_leaving(c, &old);
		if (!rc)
			rc = move_item_node(c, &old, folder, it->id, it->subject,
					    it->received, ch);
		if (rc)
			goto out;
		old.parent = folder;  /* counted by move_item_node */
		exists = true;
	} else if (!exists && it->change != BE_DELETE &&
		   (other = moves_match(c, false, it->message_id, it->received,
					it->size, NULL)) != 0) {
		/* no hint, but a message of the same identity left another
		 * folder moments ago (its page came first): that node moves
		 * here */
		node_clear(&old);
		sqlite3_stmt *q = db_cached(c, "SELECT server_id FROM nodes "
					    "WHERE ino = ?");
		sqlite3_bind_int64(q, 1, (int64_t)other);
		char *sid = sqlite3_step(q) == SQLITE_ROW
			? xstrdup((const char *)sqlite3_column_text(q, 0)) : NULL;
		sqlite3_reset(q);
		bool found = sid && item_by_server_id(c, sid, &old);
		free(sid);
		if (found)
			rc = moves_unhold_leaving(c, &old);
		if (found && !rc)
			rc = move_item_node(c, &old, folder, it->id, it->subject,
					    it->received, ch);
		if (rc)
			goto out;
		if (found) {
			old.parent = folder;
			exists = true;
		} else {
			node_clear(&old);
		}
	} else if (!exists) {
		node_clear(&old);
	}

	/* A change the user made here and the journal has not sent yet wins
	 * over what the server reports meanwhile (the journal settles it,
	 * cache/journal.c): such an item is not deleted or moved by a sync,
	 * and its pending fields are kept. */
	if (exists && it->change == BE_DELETE && (old.pend & (JP_PLACE | JP_CONTENT)))
		goto out;
	if (exists && it->change == BE_READ_FLAG && (old.pend & JP_READ))
		goto out;

	switch (it->change) {
	case BE_DELETE:
		if (exists && !(old.pend & JP_PLACE)) {
			/* moved, and the target's page came first: the new
			 * node waits out of the tree (sync_moves.c) */
			uint64_t dest = 0, arr = 0;
			struct node a = { 0 };
			if ((h = hinted(c, it->id, true)) != NULL &&
			    item_by_server_id(c, h->new_id, &a) && !a.pend &&
			    a.parent == 0 && moves_held(c, a.ino) == MOVE_ARRIVING)
				arr = a.ino;
			node_clear(&a);
			if (arr)
				dest = moves_held_parent(c, arr);
			else
				arr = moves_match(c, true, old.message_id,
						  old.received, old.size, &dest);
			if (arr) {
				rc = take_arriving(c, &old, arr, dest, ch);
				break;
			}
		}
		if (exists && !(old.pend & JP_PLACE) &&
		    (h = hinted(c, it->id, true)) != NULL) {
			/* deleted here because it moved (the destination's
			 * page may come later): move the node now */
			struct node to = { 0 };
			bool known = cache_by_server_id(c, NODE_FOLDER,
						h->new_folder_id, &to) == 0 &&
				     to.ino != old.parent;
			uint64_t dest = to.ino;
			node_clear(&to);
			if (known) {
				rc = move_item_node(c, &old, dest, h->new_id,
						    NULL, old.received, ch);
				break;
			}
		}
		if (exists && folder_sid && !(old.pend & JP_PLACE)) {
			/* maybe the source half of a move whose target page
			 * comes later: held out of the tree for a while */
			rc = moves_hold_leaving(c, &old);
			if (rc <= 0) {
				if (!rc && old.parent == folder)
					(*added)--;
				else if (!rc)
					rc = count_items(c, old.parent, -1);
				if (!rc)
					cache_change_add(ch, CC_HIDDEN, old.ino,
							 old.parent, old.name,
							 0, NULL);
				break;
			}
			rc = 0;
		}
		if (exists) {
			bodies_forget(c, old.ino);
			st = db_cached(c, "DELETE FROM nodes WHERE ino = ?");
			sqlite3_bind_int64(st, 1, (int64_t)old.ino);
			rc = db_run(c, st);
			if (!rc && old.parent == folder)
				(*added)--;
			else if (!rc)
				rc = count_items(c, old.parent, -1);
			cache_change_add(ch, CC_GONE, old.ino, old.parent, old.name, 0, NULL);
		}
		break;
	case BE_READ_FLAG:
		if (exists) {
			st = db_cached(c, "UPDATE nodes SET is_read = ?, "
					"change_key = coalesce(?, change_key), "
					"seen_gen = ? WHERE ino = ?");
			sqlite3_bind_int(st, 1, it->is_read);
			db_bind_text(st, 2, it->change_key);
			sqlite3_bind_int64(st, 3, gen);
			sqlite3_bind_int64(st, 4, (int64_t)old.ino);
			rc = db_run(c, st);
			if (old.is_read != it->is_read)
				cache_change_add(ch, CC_ATTR, old.ino, old.parent,
						 old.name, 0, NULL);
		}
		break;
	case BE_CREATE:
	case BE_UPDATE:
		k = kind_of_folder(c, folder);
		if (!exists && !kind_fits(k, it))
			break;   /* e.g. a task in a calendar: not shown yet */
		if (k->normalise && it->size >= 0) {
			/* the server's size of an event or a card says
			 * nothing of its normalised text: stat shows 1 until
			 * the body is cached, an estimate below any body, so
			 * the first read finds the size (the "larger than
			 * the estimate" path, docs/architecture.md); one
			 * above it would lean on the kernel's short-read
			 * path, which leaks zeros when the attributes are
			 * refreshed during the read */
			adj = *it;
			adj.size = 1;
			it = &adj;
		}
		if (!exists) {
			/* a calendar item is named and dated by its start */
			int64_t t = it->start ? it->start : it->received
				  ? it->received : it->sent;
			char *name = cache_free_name(c, folder, NODE_ITEM, it->subject, t);
			st = db_cached(c,
				"INSERT INTO nodes(parent, kind, name, server_id, "
				"change_key, subject, sender, item_class, message_id, "
				"received, sent, size, is_read, has_attach, seen_gen, "
				"mtime, flag, categories, is_draft) VALUES(?, 2, ?, ?, "
				"?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
			sqlite3_bind_int64(st, 1, (int64_t)folder);
			db_bind_text(st, 2, name);
			db_bind_text(st, 3, it->id);
			db_bind_text(st, 4, it->change_key);
			db_bind_text(st, 5, it->subject);
			db_bind_text(st, 6, it->from);
			db_bind_text(st, 7, it->item_class);
			db_bind_text(st, 8, it->message_id);
			sqlite3_bind_int64(st, 9, it->received);
			sqlite3_bind_int64(st, 10, it->sent);
			sqlite3_bind_int64(st, 11, it->size);
			sqlite3_bind_int(st, 12, it->is_read);
			sqlite3_bind_int(st, 13, it->has_attachments);
			sqlite3_bind_int64(st, 14, gen);
			sqlite3_bind_int64(st, 15, t);
			sqlite3_bind_int(st, 16, it->flag);
			db_bind_text(st, 17, it->categories);
			sqlite3_bind_int(st, 18, it->is_draft);
			rc = db_run(c, st);
			uint64_t ino = (uint64_t)sqlite3_last_insert_rowid(c->db);
			if (!rc && folder_sid && moves_room(c) &&
			    moves_twin_elsewhere(c, folder, it->message_id,
						 it->received, it->size))
				/* the target half of a move whose source page
				 * comes later, or a copy: held for a while */
				rc = moves_hold_arriving(c, ino, folder, folder_sid);
			else if (!rc) {
				(*added)++;
				cache_change_add(ch, CC_NEW, ino, folder, name, 0, NULL);
			}
			free(name);
			break;
		}
		/* Known item: keep its name and inode.  Its content may have
		 * changed (a draft edited elsewhere) when the size changed,
		 * or, for a draft, the change key (an edit of the same
		 * length): drop the cached body so the next read fetches the
		 * new bytes.  A new size with new flags may be just their
		 * bytes (Size counts properties too): the body goes, but the
		 * event is the flags'.  A protocol without change keys says
		 * so itself (content_changed: an ActiveSync Change with the
		 * body). */
		bool attrs = shows_change(&old, it);
		bool new_ck = it->change_key && old.change_key &&
			      strcmp(it->change_key, old.change_key);
		bool new_size = it->size >= 0 && old.size >= 0 &&
				it->size != old.size;
		bool edited;
		if (old.pend & JP_CONTENT)
			edited = false;  /* ours waits to be sent: it wins */
		else if (old.local)
			/* content written here and sent: the change key the
			 * server gave it is recorded, so only a new one says
			 * it was edited elsewhere (the sizes are ours vs the
			 * store's) */
			edited = old.is_draft == 1 &&
				 ((new_ck && !attrs) || it->content_changed);
		else
			edited = new_size || (old.is_draft == 1 && new_ck) ||
				 it->content_changed ||
				 /* an event or a card: a new change key is
				  * a new content (its file is made from the
				  * properties, not only from the size) */
				 (new_ck && kind_of_folder(c, old.parent)->pim);
		if (edited && old.local) {
			/* the server's version replaces what was written */
			char *rel = node_content(c, old.ino);
			st = db_cached(c, "UPDATE nodes SET content = NULL "
				       "WHERE ino = ?");
			sqlite3_bind_int64(st, 1, (int64_t)old.ino);
			rc = db_run(c, st);
			jr_content_gc(c, rel);
			free(rel);
			if (rc)
				break;
		}
		if (edited)
			bodies_forget(c, old.ino);
		bool content = edited && !attrs;
		if (old.parent != folder && !(old.pend & JP_PLACE)) {
			/* the same id in another folder (protocols whose ids
			 * survive a move) */
			rc = move_item_node(c, &old, folder, NULL, it->subject,
					    it->received, ch);
			if (rc)
				break;
		}
		st = db_cached(c,
			"UPDATE nodes SET change_key = coalesce(?, change_key), "
			"subject = coalesce(?, subject), sender = coalesce(?, sender), "
			"item_class = coalesce(?, item_class), "
			"message_id = coalesce(?, message_id), "
			"size = CASE WHEN ? >= 0 THEN ? ELSE size END, "
			"is_read = CASE WHEN ? >= 0 AND pend & 1 = 0 THEN ? "
			"  ELSE is_read END, "
			"has_attach = CASE WHEN ? >= 0 THEN ? ELSE has_attach END, "
			"flag = CASE WHEN ? >= 0 AND pend & 2 = 0 THEN ? ELSE flag END, "
			"categories = CASE WHEN ? IS NOT NULL AND pend & 4 = 0 "
			"  THEN ? ELSE categories END, "
			"is_draft = CASE WHEN ? >= 0 THEN ? ELSE is_draft END, "
			"seen_gen = ? WHERE ino = ?");
		db_bind_text(st, 1, it->change_key);
		db_bind_text(st, 2, it->subject);
		db_bind_text(st, 3, it->from);
		db_bind_text(st, 4, it->item_class);
		db_bind_text(st, 5, it->message_id);
		sqlite3_bind_int64(st, 6, it->size);
		sqlite3_bind_int64(st, 7, it->size);
		sqlite3_bind_int(st, 8, it->is_read);
		sqlite3_bind_int(st, 9, it->is_read);
		sqlite3_bind_int(st, 10, it->has_attachments);
		sqlite3_bind_int(st, 11, it->has_attachments);
		sqlite3_bind_int(st, 12, it->flag);
		sqlite3_bind_int(st, 13, it->flag);
		db_bind_text(st, 14, it->categories);
		db_bind_text(st, 15, it->categories);
		sqlite3_bind_int(st, 16, it->is_draft);
		sqlite3_bind_int(st, 17, it->is_draft);
		sqlite3_bind_int64(st, 18, gen);
		sqlite3_bind_int64(st, 19, (int64_t)old.ino);
		rc = db_run(c, st);
		if (!rc && edited && kind_of_folder(c, old.parent)->pim) {
			/* what khal and vdirsyncer look at to see a change */
			st = db_cached(c, "UPDATE nodes SET mtime = ? WHERE ino = ?");
			sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
			sqlite3_bind_int64(st, 2, (int64_t)old.ino);
			rc = db_run(c, st);
		}
		if (content)
			cache_change_add(ch, CC_CONTENT, old.ino, old.parent, old.name, 0, NULL);
		else if (attrs)
			cache_change_add(ch, CC_ATTR, old.ino, old.parent, old.name, 0, NULL);
		break;
	}
out:
	node_clear(&old);
	return rc;
}

/* The sweep at the end of a resync: items of the folder the server did
 * not report again are gone. */
static int sweep(struct cache *c, uint64_t folder, int64_t gen,
		 struct cache_changes *ch, int64_t *added)
{
	/* items created or changed here and not yet sent are not the
	 * server's to remove */
#define SWEPT "parent = ? AND kind = 2 AND seen_gen < ? AND server_id IS NOT " \
	"NULL AND pend = 0 AND local = 0"
	sqlite3_stmt *st = db_prepare(c, "SELECT ino, name FROM nodes WHERE " SWEPT);
	sqlite3_bind_int64(st, 1, (int64_t)folder);
	sqlite3_bind_int64(st, 2, gen);
	while (sqlite3_step(st) == SQLITE_ROW) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(st, 0);
		bodies_forget(c, ino);
		cache_change_add(ch, CC_GONE, ino, folder,
			   (const char *)sqlite3_column_text(st, 1), 0, NULL);
	}
	sqlite3_finalize(st);
	st = db_prepare(c, "DELETE FROM nodes WHERE " SWEPT);
#undef SWEPT
	sqlite3_bind_int64(st, 1, (int64_t)folder);
	sqlite3_bind_int64(st, 2, gen);
	int rc = db_step_done(c, st);
	if (!rc)
		*added -= sqlite3_changes(c->db);
	return rc;
}

int cache_apply_items(struct cache *c, uint64_t folder,
		      const struct be_item_batch *b, bool last_page,
		      struct cache_changes *ch)
{
	pthread_mutex_lock(&c->lock);
	int rc = db_begin(c);
	int64_t gen = 0;
	bool resyncing = false;
	char *folder_sid = NULL;  /* once synced: moves are held (sync_moves.c) */
	if (!rc) {
		sqlite3_stmt *st = db_cached(c, "SELECT resync_gen, resyncing, "
					     "CASE WHEN synced THEN server_id END "
					     "FROM nodes WHERE ino = ?");
		sqlite3_bind_int64(st, 1, (int64_t)folder);
		if (sqlite3_step(st) == SQLITE_ROW) {
			gen = sqlite3_column_int64(st, 0);
			resyncing = sqlite3_column_int(st, 1) != 0;
			folder_sid = xstrdup((const char *)sqlite3_column_text(st, 2));
		} else {
			rc = -ENOENT;  /* the folder went away meanwhile */
		}
		sqlite3_reset(st);
	}
	int64_t added = 0;
	for (size_t i = 0; !rc && i < b->n; i++)
		rc = apply_item(c, folder, folder_sid, gen, &b->v[i], ch, &added);
	free(folder_sid);
	if (!rc && last_page && resyncing)
		rc = sweep(c, folder, gen, ch, &added);
	if (!rc)
		rc = count_items(c, folder, added);
	if (!rc)
		rc = moves_settle(c, ch);
	if (!rc) {
		sqlite3_stmt *st = db_cached(c,
			"UPDATE nodes SET sync_state = ?, "
			"synced = CASE WHEN ? THEN 1 ELSE synced END, "
			"resyncing = CASE WHEN ? THEN 0 ELSE resyncing END, "
			"mtime = CASE WHEN ? THEN ? ELSE mtime END WHERE ino = ?");
		db_bind_text(st, 1, b->new_state);
		sqlite3_bind_int(st, 2, last_page);
		sqlite3_bind_int(st, 3, last_page);
		sqlite3_bind_int(st, 4, b->n > 0);
		sqlite3_bind_int64(st, 5, time(NULL));
		sqlite3_bind_int64(st, 6, (int64_t)folder);
		rc = db_run(c, st);
	}
	if (!rc)
		rc = db_commit(c);
	if (rc)
		db_rollback(c);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cache_begin_resync(struct cache *c, uint64_t folder)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_prepare(c, "UPDATE nodes SET sync_state = NULL, "
				      "resync_gen = resync_gen + 1, resyncing = 1 "
				      "WHERE ino = ?");
	sqlite3_bind_int64(st, 1, (int64_t)folder);
	int rc = db_step_done(c, st);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cache_remove_item(struct cache *c, uint64_t ino, struct cache_changes *ch)
{
	struct node n = { 0 };
	pthread_mutex_lock(&c->lock);
	int rc = cache_get(c, ino, &n);
	if (!rc && n.kind == NODE_ITEM) {
		bodies_forget(c, ino);
		sqlite3_stmt *st = db_prepare(c, "DELETE FROM nodes WHERE ino = ?");
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		rc = db_step_done(c, st);
		if (!rc)
			rc = count_items(c, n.parent, -1);
		if (!rc)
			cache_change_add(ch, CC_GONE, ino, n.parent, n.name, 0, NULL);
	}
	pthread_mutex_unlock(&c->lock);
	node_clear(&n);
	return rc;
}

int cache_sweep_folders(struct cache *c, char *const *ids, size_t n,
			struct cache_changes *ch)
{
	pthread_mutex_lock(&c->lock);
	int rc = db_begin(c);
	if (!rc)
		rc = db_exec(c, "CREATE TEMP TABLE IF NOT EXISTS seen(id TEXT "
			     "PRIMARY KEY); DELETE FROM seen");
	for (size_t i = 0; !rc && i < n; i++) {
		sqlite3_stmt *st = db_prepare(c, "INSERT OR IGNORE INTO seen "
					      "VALUES(?)");
		db_bind_text(st, 1, ids[i]);
		rc = db_step_done(c, st);
	}
	if (!rc) {
		sqlite3_stmt *st = db_prepare(c, "SELECT ino, parent, name FROM "
			"nodes WHERE kind = 1 AND ino != 1 AND server_id NOT IN "
			"(SELECT id FROM seen)");
		uint64_t *gone = NULL;
		size_t ng = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			gone = xrealloc(gone, (ng + 1) * sizeof(*gone));
			gone[ng++] = (uint64_t)sqlite3_column_int64(st, 0);
			cache_change_add_dir(ch, CC_GONE, gone[ng - 1],
				   (uint64_t)sqlite3_column_int64(st, 1),
				   (const char *)sqlite3_column_text(st, 2), 0, NULL);
		}
		sqlite3_finalize(st);
		for (size_t i = 0; !rc && i < ng; i++)
			rc = delete_subtree(c, gone[i], ch);
		free(gone);
	}
	if (!rc)
		rc = db_commit(c);
	if (rc)
		db_rollback(c);
	pthread_mutex_unlock(&c->lock);
	return rc;
}
