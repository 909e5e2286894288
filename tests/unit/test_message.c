/*
 * test_message.c - what counts as a message when a file is uploaded
 * (cache/message.c): header sections accepted and refused, and Date
 * parsing in the forms mail really carries.
 */
#include "cache/message.h"
#include "check.h"

static bool ok(const char *s, int64_t *date)
{
	char why[160];
	int64_t d;
	bool r = message_check(s, strlen(s), true, date ? date : &d, why, sizeof(why));
	return r;
}

static const char *why_not(const char *s)
{
	static char why[160];
	int64_t d;
	why[0] = 0;
	message_check(s, strlen(s), true, &d, why, sizeof(why));
	return why;
}

int main(void)
{
	int64_t d = -1;
	CHECK(ok("From: a@b.c\r\nSubject: x\r\n\r\nbody\r\n", &d) && d == 0);
	CHECK(ok("Subject: LF only\n\nbody\n", NULL));
	CHECK(ok("Subject: folded\r\n\tcontinued\r\nTo: x\r\n\r\n", NULL));
	CHECK(ok("Subject: headers only, no body\r\n", NULL));
	CHECK(ok("Subject : obsolete space before colon\r\n\r\n", NULL));
	CHECK(ok("X-Empty:\r\n\r\n", NULL));
	/* refused, each with a reason */
	CHECK(!ok("", NULL));
	CHECK_STR(why_not(""), "the file is empty");
	CHECK(!ok("hello world\n", NULL));
	CHECK(strstr(why_not("hello world\n"), "line 1 is not a header field"));
	CHECK(!ok("\r\nbody without headers\r\n", NULL));
	CHECK(!ok(" leading space: no\r\n\r\n", NULL));
	CHECK(!ok("Subject: x\r\nnot a field\r\n\r\n", NULL));
	CHECK(strstr(why_not("Subject: x\r\nnot a field\r\n\r\n"), "line 2"));
	CHECK(!ok(": no name\r\n\r\n", NULL));
	{
		const char nul[] = "Subject: a\0b\r\n\r\n";
		char why[160];
		int64_t dd;
		CHECK(!message_check(nul, sizeof(nul) - 1, true, &dd, why, sizeof(why)));
		CHECK(strstr(why, "NUL"));
	}
	{
		/* a header section that does not end within what was read */
		const char *s = "Subject: very long";
		char why[160];
		int64_t dd;
		CHECK(!message_check(s, strlen(s), false, &dd, why, sizeof(why)));
	}
	/* dates */
	CHECK(ok("Date: Thu, 13 Feb 2025 10:30:00 +0100\r\n\r\n", &d) && d == 1739439000);
	CHECK(message_parse_date(" Mon, 3 Mar 2025 08:15:00 +0100", 31) == 1740986100);
	CHECK(message_parse_date("3 Mar 2025 07:15 GMT", 20) == 1740986100);
	CHECK(message_parse_date("Mon, 03 Mar 25 02:15:00 EST", 27) == 1740986100);
	CHECK(message_parse_date("Mon, 03 March 2025 07:15:00 -0000 (UTC)", 39) == 1740986100);
	CHECK(message_parse_date("garbage", 7) == 0);
	CHECK(message_parse_date("32 Jan 2025 00:00 +0000", 23) == 0);
	CHECK(message_parse_date("1 Foo 2025 00:00 +0000", 22) == 0);
	CHECK(message_parse_date("1 Jan 2025 25:00 +0000", 22) == 0);
	return check_done("test_message");
}
