/*
 * kinds.c - the table of item kinds (see kinds.h) and the content
 * normalisers for calendars and contacts.
 */
#include "kinds.h"
#include "db_internal.h"
#include "journal_internal.h"
#include "backend/ical.h"
#include "backend/util.h"
#include "backend/vcard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A vCard from a server as the mount shows it: parsed leniently, given a
 * UID if it has none, written again as 3.0 (what khard and vdirsyncer
 * read best). */
static char *vcard_normalise(const char *data, size_t len,
			     const char *fallback_uid, size_t *outlen,
			     char *err, size_t errlen)
{
	struct vcard *v = vcard_parse(data, len, true, err, errlen);
	if (!v)
		return NULL;
	/* khard and vdirsyncer need a UID; Exchange's cards have none: the
	 * item id is stable while the card stays in its folder */
	const struct vcard_prop *uid = vcard_get(v, "UID");
	char *u = uid ? vcard_text(uid) : NULL;
	if ((!u || !*u) && fallback_uid && *fallback_uid)
		vcard_add_text(v, "UID", fallback_uid);
	free(u);
	struct buf b;
	buf_init(&b, 16u << 20);
	int rc = vcard_write(v, 30, &b);
	vcard_free(v);
	if (rc || !b.data) {
		buf_free(&b);
		snprintf(err, errlen, "the vCard is too large");
		return NULL;
	}
	*outlen = b.len;
	return b.data;
}

static const struct kind_info kinds[] = {
	{ KIND_MAIL, "mail", "IPF.Note", ".eml", true, false, NULL },
	{ KIND_CALENDAR, "calendar", "IPF.Appointment", ".ics", true, true,
	  ical_normalize },
	{ KIND_CONTACTS, "contacts", "IPF.Contact", ".vcf", false, true,
	  vcard_normalise },
};

const struct kind_info *kind_of_class(const char *cls)
{
	if (!cls || !*cls)
		return &kinds[0];
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i].class_prefix);
		/* "IPF.Note" and "IPF.Note.Sub", never "IPF.Notes" */
		if (!strncmp(cls, kinds[i].class_prefix, n) &&
		    (!cls[n] || cls[n] == '.'))
			return &kinds[i];
	}
	return NULL;
}

bool kind_folder_visible(const char *cls, bool pim)
{
	const struct kind_info *k = kind_of_class(cls);
	return k && (!k->pim || pim);
}

static const struct kind_info *kind_by_query(struct cache *c, const char *sql,
					     uint64_t ino)
{
	pthread_mutex_lock(&c->lock);
	sqlite3_stmt *st = db_cached(c, sql);
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	const struct kind_info *k = NULL;
	if (sqlite3_step(st) == SQLITE_ROW)
		k = kind_of_class((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return k ? k : &kinds[0];
}

const struct kind_info *kind_of_item(struct cache *c, uint64_t ino)
{
	return kind_by_query(c, "SELECT f.folder_class FROM nodes i JOIN nodes f "
			     "ON f.ino = i.parent WHERE i.ino = ?", ino);
}

const struct kind_info *kind_of_folder(struct cache *c, uint64_t ino)
{
	return kind_by_query(c, "SELECT folder_class FROM nodes WHERE ino = ? "
			     "AND kind = 1", ino);
}

int cache_set_pim(struct cache *c, bool on)
{
	pthread_mutex_lock(&c->lock);
	c->pim = on;
	/* folders a mount without --pim kept hidden show now, and hide
	 * again without it (a folder the journal is placing keeps its say) */
	int rc = 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && !rc; i++) {
		if (!kinds[i].pim)
			continue;
		sqlite3_stmt *st = db_prepare(c,
			"UPDATE nodes SET visible = ?1 WHERE kind = 1 AND "
			"pend & ?2 = 0 AND (folder_class = ?3 OR "
			"substr(folder_class, 1, length(?3) + 1) = ?3 || '.')");
		sqlite3_bind_int(st, 1, on);
		sqlite3_bind_int(st, 2, (int)JP_PLACE);
		sqlite3_bind_text(st, 3, kinds[i].class_prefix, -1, SQLITE_STATIC);
		rc = db_step_done(c, st);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}
