/*
 * test_oauth2.c - the shared token source of a mount (backend/oauth2.c)
 * against a token endpoint that takes the request and never answers: a
 * refresh in flight does not hold up the other sessions while the access
 * token they have still works (every session of a mount asks the source
 * before each request, readers included).
 */
#include "backend/oauth2.h"
#include "backend/oauth2_internal.h"
#include "backend/util.h"
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ADDRESS "alice@example.com"

struct call {
	struct oauth2 *o;
	pthread_mutex_t lock;
	bool done;
	int rc;
	char *token;
};

static void *bearer(void *arg)
{
	struct call *c = arg;
	struct be_result r;
	char *tok = NULL;
	int rc = oauth2_bearer(c->o, NULL, &tok, &r);
	pthread_mutex_lock(&c->lock);
	c->rc = rc;
	c->token = tok;
	c->done = true;
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static bool call_done(struct call *c)
{
	pthread_mutex_lock(&c->lock);
	bool d = c->done;
	pthread_mutex_unlock(&c->lock);
	return d;
}

/* Poll until c is done, at most s seconds. */
static bool wait_done(struct call *c, int s)
{
	for (int i = 0; i < s * 20 && !call_done(c); i++)
		usleep(50 * 1000);
	return call_done(c);
}

static void test_refresh_in_flight_does_not_block(void)
{
	char dir[] = "/tmp/test_oauth2.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	setenv("XDG_CONFIG_HOME", dir, 1);
	char *sub = xasprintf("%s/exchangefs", dir);
	char *toks = xasprintf("%s/exchangefs/tokens", dir);
	CHECK(mkdir(sub, 0700) == 0 && mkdir(toks, 0700) == 0);

	/* an endpoint that takes the connection and says nothing */
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	CHECK(bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	      listen(ls, 4) == 0 &&
	      getsockname(ls, (struct sockaddr *)&sa, &sl) == 0);

	/* an access token valid for another minute: inside the refresh
	 * margin, so the next request refreshes it */
	int64_t now = time(NULL);
	struct tokens t = {
		.endpoint = xasprintf("http://127.0.0.1:%u/token",
				      ntohs(sa.sin_port)),
		.client_id = xstrdup("test-client"),
		.scope = xstrdup("EWS.AccessAsUser.All offline_access"),
		.access = xstrdup("at-old"),
		.refresh = xstrdup("rt-old"),
		.expires_at = now + 60,
		.obtained_at = now - 3540,
	};
	struct be_result r;
	char *path = oauth2_token_path(ADDRESS);
	CHECK(oa_tokens_save(path, &t, &r) == 0);
	struct oauth2_config cfg = { .timeout_s = 120 };
	struct oauth2 *o = oauth2_open(ADDRESS, &cfg, &r);
	CHECK(o != NULL);
	if (!o)
		goto out;

	/* the first session refreshes: its request is held */
	struct call a = { .o = o, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct call b = { .o = o, .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t ta, tb;
	CHECK(pthread_create(&ta, NULL, bearer, &a) == 0);
	struct pollfd pf = { .fd = ls, .events = POLLIN };
	CHECK(poll(&pf, 1, 30000) == 1);
	int held = accept(ls, NULL, NULL);
	CHECK(held >= 0);
	/* another session meanwhile: the old token, at once */
	CHECK(pthread_create(&tb, NULL, bearer, &b) == 0);
	bool quick = wait_done(&b, 20);
	if (!quick)
		printf("  a second session waited for the refresh in flight\n");
	CHECK(quick);
	CHECK(!quick || (b.rc == 0 && b.token && !strcmp(b.token, "at-old")));
	CHECK(!call_done(&a));
	/* the endpoint goes away: the refresh fails, the old token serves */
	close(held);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(a.rc == 0 && a.token && !strcmp(a.token, "at-old"));
	free(a.token);
	free(b.token);
	oauth2_free(o);
out:
	close(ls);
	unlink(path);
	rmdir(toks);
	rmdir(sub);
	rmdir(dir);
	free(path);
	free(toks);
	free(sub);
	oa_tokens_free(&t);
}

int main(void)
{
	test_refresh_in_flight_does_not_block();
	return check_done("test_oauth2");
}
