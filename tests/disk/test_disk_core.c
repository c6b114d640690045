/* cvmfsd disk's pure logic: areas, whiteout names, private xattrs,
 * reserve/settle accounting (also under 16 racing threads), worst-case
 * write growth, the live-figures JSON and the DATA/state format. */
#include "check.h"

#include "core/core.h"
#include "cvmfs/disk_status.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void test_areas(void)
{
	CHECK_EQ_INT(area_of_path("home"), AREA_HOME);
	CHECK_EQ_INT(area_of_path("home/alice/x"), AREA_HOME);
	CHECK_EQ_INT(area_of_path("/home/alice"), AREA_HOME);
	CHECK_EQ_INT(area_of_path("homes"), AREA_OTHER);
	CHECK_EQ_INT(area_of_path("var/lib/docker"), AREA_DOCKER);
	CHECK_EQ_INT(area_of_path("var/lib/docker/overlay2/a/diff"), AREA_DOCKER);
	CHECK_EQ_INT(area_of_path("var/lib/docker2"), AREA_OTHER);
	CHECK_EQ_INT(area_of_path("var/lib"), AREA_OTHER);
	CHECK_EQ_INT(area_of_path(""), AREA_OTHER);
	CHECK_EQ_INT(area_of_path("."), AREA_OTHER);
	CHECK_STR(area_name(AREA_DOCKER), "docker");
}

static void test_whiteout_names(void)
{
	CHECK_STR(oci_whiteout_target(".wh.foo"), "foo");
	CHECK(oci_whiteout_target(".wh..wh..opq") == NULL);
	CHECK(oci_whiteout_target(".wh.") == NULL);
	CHECK(oci_whiteout_target("foo") == NULL);
	CHECK(oci_is_meta(".wh..wh..opq"));
	CHECK(oci_is_meta(".wh.x"));
	CHECK(!oci_is_meta(".whx"));
}

/* In place (buf == dir) the length of dir is counted once: a join that
 * fits exactly is accepted, one byte more is ENAMETOOLONG. */
static void test_path_join(void)
{
	char buf[4096], dir[4096];

	CHECK_EQ_INT(path_join(buf, sizeof(buf), ".", "a"), 0);
	CHECK_STR(buf, "a");
	CHECK_EQ_INT(path_join(buf, sizeof(buf), "a/b", "c"), 0);
	CHECK_STR(buf, "a/b/c");
	memset(dir, 'd', 4000);
	dir[4000] = '\0';
	snprintf(buf, sizeof(buf), "%s", dir);
	CHECK_EQ_INT(path_join(buf, sizeof(buf), buf, "0123456789"), 0);
	CHECK_EQ_INT((int)strlen(buf), 4011);
	CHECK(!strcmp(buf + 4000, "/0123456789"));
	memset(dir, 'd', 4094 - 2);
	dir[4092] = '\0';
	snprintf(buf, sizeof(buf), "%s", dir);
	CHECK_EQ_INT(path_join(buf, sizeof(buf), buf, "x"), 0); /* 4094 bytes + NUL */
	CHECK_EQ_INT((int)strlen(buf), 4094);
	snprintf(buf, sizeof(buf), "%s", dir);
	CHECK_EQ_INT(path_join(buf, sizeof(buf), buf, "xy"), 0);
	snprintf(buf, sizeof(buf), "%s", dir);
	CHECK_EQ_INT(path_join(buf, sizeof(buf), buf, "xyz"), -ENAMETOOLONG);
	CHECK_EQ_INT(path_join(buf, sizeof(buf), dir, "xyz"), -ENAMETOOLONG);
	CHECK(name_valid("a") && !name_valid("") && !name_valid(".") && !name_valid("..") &&
	      !name_valid("a/b"));
}

static void test_xattr_names(void)
{
	char list[] = "user.a\0trusted.cvmfs.whiteout\0trusted.overlay.opaque\0trusted.b\0";
	char list2[sizeof(list)];
	size_t n;

	CHECK(xattr_hidden("trusted.cvmfs.opaque", false));
	CHECK(xattr_hidden("trusted.cvmfs.opaque", true));
	CHECK(!xattr_hidden("trusted.overlay.opaque", false)); /* upper: the user's */
	CHECK(xattr_hidden("trusted.overlay.opaque", true));   /* image: metadata */
	CHECK(!xattr_hidden("user.x", true));
	memcpy(list2, list, sizeof(list));
	n = xattr_list_filter(list, sizeof(list) - 1, true);
	CHECK_MEM(list, n, "user.a\0trusted.b\0", 17);
	n = xattr_list_filter(list2, sizeof(list2) - 1, false);
	CHECK_MEM(list2, n, "user.a\0trusted.overlay.opaque\0trusted.b\0", 40);
}

static void test_acct(void)
{
	struct acct a = { .limit_bytes = 10000, .limit_inodes = 3 };

	CHECK_EQ_INT(acct_reserve(&a, 8000, 1), 0);
	CHECK_EQ_INT(acct_reserve(&a, 4000, 1), -ENOSPC); /* bytes over */
	CHECK_EQ_INT(a.commit_bytes, 8000);
	CHECK_EQ_INT(a.commit_inodes, 1);
	acct_settle(&a, AREA_HOME, 8000, 4096, 1, 1);
	CHECK_EQ_INT(a.used_bytes, 4096);
	CHECK_EQ_INT(a.commit_bytes, 4096);
	CHECK_EQ_INT(a.area_bytes[AREA_HOME], 4096);
	CHECK_EQ_U64(acct_avail(&a), 10000 - 4096);
	CHECK_EQ_INT(acct_reserve(&a, 100, 2), 0);
	CHECK_EQ_INT(acct_reserve(&a, 0, 1), -ENOSPC); /* inodes over */
	CHECK_EQ_INT(a.commit_bytes, 4196);            /* bytes rolled back */
	acct_unreserve(&a, 100, 2);
	CHECK_EQ_INT(a.commit_inodes, 1);
	CHECK_EQ_INT(acct_reserve(&a, -4096, 0), 0); /* frees never fail */
	acct_move(&a, AREA_HOME, AREA_DOCKER, 4096, 1);
	CHECK_EQ_INT(a.area_bytes[AREA_HOME], 0);
	CHECK_EQ_INT(a.area_bytes[AREA_DOCKER], 4096);
	a.limit_bytes = 1000; /* shrunk below usage (used 4096) */
	CHECK_EQ_U64(acct_avail(&a), 0);
	CHECK_EQ_INT(acct_reserve(&a, 1001, 0), -ENOSPC);
	a.limit_bytes = 0; /* unlimited */
	CHECK_EQ_INT(acct_reserve(&a, 1 << 30, 0), 0);
}

static struct acct race = { .limit_bytes = 1000 * 4096 };
static int64_t max_commit;

static void *racer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100000; i++) {
		if (acct_reserve(&race, 4096, 0) == 0) {
			int64_t c = __atomic_load_n(&race.commit_bytes, __ATOMIC_RELAXED);
			int64_t m = __atomic_load_n(&max_commit, __ATOMIC_RELAXED);

			while (c > m && !__atomic_compare_exchange_n(&max_commit, &m, c, true,
								     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
				;
			acct_settle(&race, AREA_OTHER, 4096, i % 3 ? 4096 : 0, 0, 0);
			if (i % 2)
				acct_settle(&race, AREA_OTHER, 0, i % 3 ? -4096 : 0, 0, 0);
		}
	}
	return NULL;
}

static void test_acct_race(void)
{
	pthread_t t[16];

	for (int i = 0; i < 16; i++)
		pthread_create(&t[i], NULL, racer, NULL);
	for (int i = 0; i < 16; i++)
		pthread_join(t[i], NULL);
	CHECK(max_commit <= (int64_t)race.limit_bytes);
	CHECK(race.used_bytes <= (int64_t)race.limit_bytes);
	CHECK_EQ_INT(race.commit_bytes, race.used_bytes);
}

static void test_worst_case(void)
{
	CHECK_EQ_INT(write_worst_case(0, 0, 4096), 0);
	CHECK_EQ_INT(write_worst_case(0, 1, 4096), 8192);
	CHECK_EQ_INT(write_worst_case(0, 4096, 4096), 8192);
	CHECK_EQ_INT(write_worst_case(4095, 2, 4096), 12288); /* straddles two blocks */
	CHECK_EQ_INT(write_worst_case(0, 1 << 20, 4096), (1 << 20) + 4096);
}

/* What the daemon writes is what every other program reads. */
static void test_figures_json(void)
{
	struct figures f = { .name = "ws-1", .state = "running", .limit_bytes = 1ULL << 40,
			     .used_bytes = 123, .avail_bytes = (1ULL << 40) - 123,
			     .area_bytes = { 1, 2, 3, 117 }, .inodes_used = 9, .inodes_limit = 0,
			     .pid = 4242, .known_inodes = 1000001,
			     .extra_json = ",\"volume\":\"loop:/v/ws-1.img\",\"volume_mnt\":\"/m\","
					   "\"lanes\":[{\"path\":\"/home\","
					   "\"dir\":\"/m/lanes/home\",\"x\":[1,{}]}]" };
	struct disk_status g;
	char buf[1024];
	int n = figures_to_json(&f, buf, sizeof(buf));

	CHECK(n > 0);
	CHECK_EQ_INT(disk_status_parse(buf, &g), 0);
	CHECK_STR(g.name, "ws-1");
	CHECK_STR(g.state, "running");
	CHECK_EQ_U64(g.limit_bytes, 1ULL << 40);
	CHECK_EQ_U64(g.area_bytes[DISK_AREA_OTHER], 117);
	CHECK_EQ_U64(g.area_bytes[DISK_AREA_DOCKER], 2);
	CHECK_EQ_INT(g.pid, 4242);
	CHECK_EQ_U64(g.known_inodes, 1000001);
	CHECK_STR(g.volume, "loop:/v/ws-1.img");
	CHECK_STR(g.volume_mnt, "/m");
	CHECK_EQ_INT((int)g.n_lanes, 1);
	CHECK_STR(g.lanes[0].path, "/home");
	CHECK_STR(g.lanes[0].dir, "/m/lanes/home");
	disk_status_free(&g);
	CHECK_EQ_INT(figures_to_json(&f, buf, 20), -ENOSPC);
	CHECK_EQ_INT(disk_status_parse("{\"name\":\"x\"", &g), -EINVAL);
	disk_status_free(&g);
	CHECK_EQ_INT(disk_status_parse("{ \"state\": \"stopped\", \"name\": \"z\", \"x\": 5 }", &g), 0);
	CHECK_STR(g.name, "z");
	disk_status_free(&g);
	CHECK_EQ_INT(disk_status_parse("[]", &g), -EINVAL);
	disk_status_free(&g);
	/* What it serves, any characters: escaped and read back. */
	f.data = "/d\"q\\b\nl\x01";
	f.image = "";
	f.image_idmap = "100000:100000:65536";
	CHECK(figures_to_json(&f, buf, sizeof(buf)) > 0);
	CHECK_EQ_INT(disk_status_parse(buf, &g), 0);
	CHECK_STR(g.data, "/d\"q\\b\nl\x01");
	CHECK_STR(g.image, "");
	CHECK_STR(g.image_idmap, "100000:100000:65536");
	CHECK_STR(g.lanes[0].dir, "/m/lanes/home");
	disk_status_free(&g);
	CHECK_EQ_INT(figures_to_json(&f, buf, strlen(buf) - 1), -ENOSPC);
	/* A lane without its dir, a repeated volume, a bad escape: not the daemon's. */
	CHECK_EQ_INT(disk_status_parse("{\"name\":\"a\",\"state\":\"running\","
				       "\"lanes\":[{\"path\":\"/home\"}]}", &g), -EINVAL);
	disk_status_free(&g);
	CHECK_EQ_INT(disk_status_parse("{\"name\":\"a\",\"state\":\"running\","
				       "\"volume\":\"none\",\"volume\":\"none\"}", &g), -EINVAL);
	disk_status_free(&g);
	CHECK_EQ_INT(disk_status_parse("{\"name\":\"a\\qb\",\"state\":\"running\"}", &g),
		     -EINVAL);
	disk_status_free(&g);
	CHECK_EQ_INT(disk_status_parse("{\"name\":\"a\\u00zz\",\"state\":\"x\"}", &g), -EINVAL);
	disk_status_free(&g);
	CHECK_EQ_INT(disk_status_parse("{\"name\":\"a\\\"b\",\"state\":\"running\"}", &g), 0);
	CHECK_STR(g.name, "a\"b");
	disk_status_free(&g);
}

static void test_state(void)
{
	struct disk_state s = { .clean = true, .used_bytes = 1 << 20, .used_inodes = 7,
				.area_bytes = { 10, 20, 30, 40 }, .area_inodes = { 1, 2, 3, 4 },
				.image = "/a:/b c" };
	struct disk_state t;
	char buf[8192];

	CHECK(state_format(&s, buf, sizeof(buf)) > 0);
	CHECK_EQ_INT(state_parse(buf, &t), 0);
	CHECK(t.clean);
	CHECK_EQ_U64(t.used_bytes, 1 << 20);
	CHECK_EQ_U64(t.area_inodes[AREA_HOME], 3);
	CHECK_STR(t.image, "/a:/b c");
	CHECK_EQ_INT(state_parse("version 1\nclean 1\nused_bytes 12x\n", &t), -EINVAL);
	CHECK(!t.clean); /* damaged: never trusted */
	CHECK_EQ_INT(state_parse("clean 1\nused_bytes 12\n", &t), -EINVAL); /* no version */
	CHECK(!t.clean);
	CHECK_EQ_INT(state_parse("version 1\nclean 1\nbogus 3\n", &t), -EINVAL);
	CHECK_EQ_INT(state_parse("version 1\nclean 0\nused_bytes 5\n", &t), 0);
	CHECK(!t.clean);
	CHECK_EQ_U64(t.used_bytes, 5);
}

int main(void)
{
	test_areas();
	test_whiteout_names();
	test_xattr_names();
	test_path_join();
	test_acct();
	test_acct_race();
	test_worst_case();
	test_figures_json();
	test_state();
	return check_done();
}
