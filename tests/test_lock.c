/* test_lock.c - several runs on one results folder (host/base/claim.c, host/run/run.c): a claim is exclusive
 * between processes and freed when its holder exits or is killed; owner records tell a gone process (PID 1 of an
 * earlier container included) from a live one; and two `promptad run` processes started together on the demo
 * configuration generate the synthetic data once, split the units between them without computing any twice, and
 * report computed / skipped / finished-by-another counts that add up. */
#include "check.h"
#include "claim.h"
#include "fsutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(lock, .init = pad_test_log_start, .timeout = 900);

// Runs fn in a child process and returns its exit status.
static int in_child(int (*fn)(const char *), const char *arg) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) _exit(fn(arg));
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

// 0: got the claim, 1: busy, 2: error
static int try_claim(const char *path) {
    pad_claim c = PAD_CLAIM_INIT;
    bool got = false;
    if (pad_claim_acquire(&c, path, false, &got) != PAD_OK) return 2;
    pad_claim_release(&c);
    return got ? 0 : 1;
}

static int hold_and_exit(const char *path) {
    pad_claim c = PAD_CLAIM_INIT;
    bool got = false;
    return pad_claim_acquire(&c, path, false, &got) == PAD_OK && got ? 0 : 2; // exits holding it
}

static int hold_and_die(const char *path) {
    pad_claim c = PAD_CLAIM_INIT;
    bool got = false;
    if (pad_claim_acquire(&c, path, false, &got) != PAD_OK || !got) return 2;
    raise(SIGKILL);
    return 3;
}

Test(lock, claims_are_exclusive_and_die_with_their_holder) {
    const char *dir = pad_test_tmpdir("claim");
    const char *path = pad_test_fmt("%s/.claim", dir);
    pad_claim c = PAD_CLAIM_INIT;
    bool got = false;
    cr_assert_eq(pad_claim_acquire(&c, path, false, &got), PAD_OK);
    cr_assert(got && c.fd >= 0 && !c.unlocked);
    cr_assert_eq(in_child(try_claim, path), 1, "another process got a held claim");
    char *rec = NULL;
    cr_assert_eq(pad_read_file(path, &rec, NULL), PAD_OK);
    char me[512];
    pad_owner_self(me, sizeof me);
    cr_assert_str_eq(rec, me, "the lock file names its holder");
    free(rec);
    pad_claim_release(&c);
    cr_assert_eq(c.fd, -1);
    cr_assert_eq(in_child(try_claim, path), 0, "a released claim stays taken");
    // a holder that exits without releasing, or is killed, leaves nothing stale
    cr_assert_eq(in_child(hold_and_exit, path), 0);
    cr_assert_eq(in_child(try_claim, path), 0);
    cr_assert_eq(in_child(hold_and_die, path), 100 + SIGKILL);
    cr_assert_eq(in_child(try_claim, path), 0, "the claim of a killed process is still held");
    cr_assert_eq(try_claim(pad_test_fmt("%s/no/such/folder/.claim", dir)), 2);
}

Test(lock, owner_records) {
    char me[512], host[256], boot[64];
    long pid = 0;
    unsigned long long start = 0;
    pad_owner_self(me, sizeof me);
    cr_assert_eq(sscanf(me, "host=%255s boot=%63s pid=%ld start=%llu", host, boot, &pid, &start), 4, "%s", me);
    cr_assert_eq(pid, (long)getpid());
    cr_assert(start > 0);
    cr_assert(!pad_owner_is_gone(me), "this process is alive");
    // PID 1 is alive here, but not with this start time: the record of an earlier container's main process
    cr_assert(pad_owner_is_gone(pad_test_fmt("host=%s boot=%s pid=1 start=%llu", host, boot, start + 12345)));
    cr_assert(pad_owner_is_gone(pad_test_fmt("host=%s boot=%s pid=999999999 start=1", host, boot)));
    cr_assert(pad_owner_is_gone(pad_test_fmt("host=%s boot=another-boot pid=%ld start=%llu", host, pid, start)),
              "a record from before a reboot");
    cr_assert(!pad_owner_is_gone(pad_test_fmt("host=other-%s boot=%s pid=999999999 start=1", host, boot)),
              "another machine's process cannot be judged");
    cr_assert(!pad_owner_is_gone("garbage"));
    // temporary folders: by their .owner record, else by the pid in their name
    const char *dir = pad_test_tmpdir("owner");
    const char *t1 = pad_test_fmt("%s/.seg.tmp-1", dir);
    cr_assert_eq(pad_mkdir_p(t1), PAD_OK);
    const char *rec = pad_test_fmt("host=%s boot=%s pid=1 start=%llu\n", host, boot, start + 12345);
    pad_test_write_file(pad_test_fmt("%s/.owner", t1), rec, strlen(rec));
    cr_assert(pad_tmp_dir_is_orphan(t1), "PID 1 of another container");
    const char *t2 = pad_test_fmt("%s/.cls.tmp-%ld", dir, pid);
    cr_assert_eq(pad_mkdir_p(t2), PAD_OK);
    cr_assert_eq(pad_owner_write(t2), PAD_OK);
    cr_assert(!pad_tmp_dir_is_orphan(t2), "our own folder");
    const char *t3 = pad_test_fmt("%s/.cls.tmp-999999999", dir);
    cr_assert_eq(pad_mkdir_p(t3), PAD_OK);
    cr_assert(pad_tmp_dir_is_orphan(t3), "no .owner, no such pid");
}

// "promptad run: 7 units computed, 0 skipped (already finished), 9 finished by another run, 0 left; ..."
static void counts(const char *err, int *computed, int *skipped, int *other, int *left) {
    const char *p = strstr(err, "units computed, ");
    cr_assert(p != NULL, "no final counts in:\n%s", err);
    while (p > err && p[-1] != '\n')
        p--;
    cr_assert_eq(sscanf(p,
                        "promptad run: %d units computed, %d skipped (already finished), %d finished by another "
                        "run, %d left",
                        computed, skipped, other, left),
                 4, "%s", p);
}

static int count_occurrences(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

Test(lock, two_runs_share_one_results_folder) {
    const char *dir = pad_test_tmpdir("two_runs");
    const char *sets = pad_test_fmt(
        "--set model.weights=%s/model/tiny.safetensors --set model.vocab=%s/model/vocab.txt.gz --set data.root=%s/data "
        "--set output.dir=%s/results --set data.synth.size=64 --set data.synth.train=3 --set data.synth.test_good=3 "
        "--set data.synth.test_bad=3 --set run.epochs=2 --set run.resolution=64 --set run.device=cpu "
        "--set run.threads=1 --set output.heatmaps=1",
        dir, dir, dir, dir);
    const char *one = pad_test_fmt("%s run --config %s/configs/demo.yaml %s", pad_test_binary(), PAD_SOURCE_DIR, sets);
    pad_cmd_result r = pad_cmd_run("(%s >%s/a.out 2>%s/a.err; echo $? >%s/a.rc) & (%s >%s/b.out 2>%s/b.err; echo $? "
                                   ">%s/b.rc) & wait",
                                   one, dir, dir, dir, one, dir, dir, dir);
    pad_cmd_free(&r);
    char *ea = NULL, *eb = NULL, *ra = NULL, *rb = NULL;
    cr_assert_eq(pad_read_file(pad_test_fmt("%s/a.err", dir), &ea, NULL), PAD_OK);
    cr_assert_eq(pad_read_file(pad_test_fmt("%s/b.err", dir), &eb, NULL), PAD_OK);
    cr_assert_eq(pad_read_file(pad_test_fmt("%s/a.rc", dir), &ra, NULL), PAD_OK);
    cr_assert_eq(pad_read_file(pad_test_fmt("%s/b.rc", dir), &rb, NULL), PAD_OK);
    cr_assert(atoi(ra) == 0 && atoi(rb) == 0, "exit codes %s / %s\n--- a:\n%s\n--- b:\n%s", ra, rb, ea, eb);
    int ca, sa, oa, la, cb, sb, ob, lb;
    counts(ea, &ca, &sa, &oa, &la);
    counts(eb, &cb, &sb, &ob, &lb);
    const int n = 16; // 2 classes x shots 1,2 x seeds 0,1 x 2 tasks
    cr_assert_eq(ca + cb, n, "units computed twice or not at all: %d + %d\n--- a:\n%s\n--- b:\n%s", ca, cb, ea, eb);
    cr_assert(ca + sa + oa == n && la == 0 && cb + sb + ob == n && lb == 0, "a: %d %d %d %d, b: %d %d %d %d", ca, sa,
              oa, la, cb, sb, ob, lb);
    cr_assert(ca > 0 && cb > 0, "the work was not split: %d / %d", ca, cb);
    cr_assert_eq(count_occurrences(ea, "wrote a synthetic dataset") +
                     count_occurrences(eb, "wrote a synthetic dataset"),
                 1, "the dataset was generated twice or not at all");
    // every unit is there once, finished, and nothing temporary is left
    r = pad_cmd_run("find %s/results -name metrics.json | wc -l; find %s -name '*.tmp-*' | wc -l", dir, dir);
    int units = -1, tmps = -1;
    cr_assert_eq(sscanf(r.out, "%d %d", &units, &tmps), 2, "%s", r.out);
    cr_assert_eq(units, n);
    cr_assert_eq(tmps, 0, "temporary folders left behind");
    pad_cmd_free(&r);
    cr_assert(pad_path_is_file(pad_test_fmt("%s/results/synth/summary.md", dir)));
    // a third run finds everything finished
    r = pad_cmd_run("%s", one);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    int c3, s3, o3, l3;
    counts(r.err, &c3, &s3, &o3, &l3);
    cr_assert(c3 == 0 && s3 == n && o3 == 0 && l3 == 0, "%s", r.err);
    pad_cmd_free(&r);
    free(ea);
    free(eb);
    free(ra);
    free(rb);
}
