/*
 * fuzz_signin.c - libFuzzer target for the parsers of sign-in and discovery
 * answers: the flat JSON reader (OAuth2 token and device-code answers, the
 * token file), POX and v2 JSON Autodiscover answers, and DNS SRV answers.
 * The first byte picks the parser; the rest is the input.  Besides
 * crashes, leaks and undefined behaviour it checks:
 *   - JSON: every string member written back with json_put_string and
 *     read again is the same string; json_int agrees with the type;
 *   - Autodiscover: an answer that parses has what its action needs (an
 *     EWS URL for settings, an https URL for redirectUrl, an address for
 *     redirectAddr); one that does not has a message and nothing kept;
 *   - SRV: a target is "host:port" with a port from 1 to 65535.
 *
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true
 *        ninja -C build-fuzz tests/fuzz/fuzz_signin
 * Run:   build-fuzz/tests/fuzz/fuzz_signin -max_total_time=60 \
 *            -dict=tests/fuzz/fuzz_signin.dict tests/fuzz/corpus/fuzz_signin
 */
#include "backend/autodiscover.h"
#include "backend/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_json(const char *s, size_t n)
{
	struct json_obj o, back;
	char err[200];
	if (json_parse_object(s, n, &o, err, sizeof(err))) {
		if (!err[0])
			abort();
		json_free(&o);
		return;
	}
	if (o.n > JSON_MAX_MEMBERS)
		abort();
	for (size_t i = 0; i < o.n; i++) {
		int64_t v;
		size_t first = 0;
		while (strcmp(o.v[first].key, o.v[i].key))
			first++;
		/* the first member of a name decides what the getters see */
		if (first == i &&
		    ((json_str(&o, o.v[i].key) != NULL) !=
			     (o.v[i].type == JSON_STRING) ||
		     (!json_int(&o, o.v[i].key, &v) &&
		      o.v[i].type != JSON_STRING && o.v[i].type != JSON_NUMBER)))
			abort();
		if (o.v[i].type != JSON_STRING)
			continue;
		struct buf w;
		buf_init(&w, 0);
		buf_puts(&w, "{");
		json_put_string(&w, o.v[i].key);
		buf_puts(&w, ":");
		json_put_string(&w, o.v[i].value);
		buf_puts(&w, "}");
		if (json_parse_object(w.data, w.len, &back, err, sizeof(err)) ||
		    back.n != 1 || strcmp(back.v[0].key, o.v[i].key) ||
		    strcmp(back.v[0].value, o.v[i].value))
			abort();
		json_free(&back);
		buf_free(&w);
	}
	json_free(&o);
}

static void check_answer(int rc, const struct ad_answer *a,
			 const struct be_result *r)
{
	if (rc) {
		if (r->status == BE_OK || !r->msg[0])
			abort();
		return;
	}
	switch (a->action) {
	case AD_SETTINGS:
		if (!a->urls.ews_url || !a->urls.ews_url[0])
			abort();
		break;
	case AD_REDIRECT_URL:
		if (!a->redirect || strncasecmp(a->redirect, "https://", 8))
			abort();
		break;
	case AD_REDIRECT_ADDR:
		if (!a->redirect || !strchr(a->redirect, '@'))
			abort();
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ad_answer a;
	struct be_result r;
	char *target = NULL;

	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0] % 4) {
	case 0:
		fuzz_json(s, n);
		break;
	case 1:
		check_answer(ad_parse_pox(s, n, &a, &r), &a, &r);
		ad_answer_free(&a);
		break;
	case 2:
		check_answer(ad_parse_json(s, n, &a, &r), &a, &r);
		ad_answer_free(&a);
		break;
	case 3:
		if (!ad_parse_srv(data + 1, n, &target)) {
			char *c = strrchr(target, ':');
			long port = c ? strtol(c + 1, NULL, 10) : 0;
			if (!c || c == target || port < 1 || port > 65535)
				abort();
			free(target);
		} else if (target) {
			abort();
		}
		break;
	}
	return 0;
}
