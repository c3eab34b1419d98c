/* The one harness for running fedtl's real programs, shared by the Criterion tests and the
 * benchmarks: scratch directories, shell commands, processes started in the background and
 * waited for with a time-out, free loopback ports, reading what they wrote. */
#ifndef FL_TESTUTIL_H
#define FL_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Create a fresh temporary directory under $TMPDIR (or /tmp); returns a static-lifetime
 * malloc'd path the caller frees. */
char *fl_test_tmpdir(const char *tag);
/* Remove a directory tree (rm -rf); kept when FEDTL_KEEP_TMP is set, for a post-mortem. */
void fl_test_rmtree(const char *path);
/* Path join into a malloc'd string. */
char *fl_test_path(const char *dir, const char *name);
/* Run a shell command, capturing stdout+stderr into *out (malloc'd, may be NULL).
 * Returns the exit status (or -1). */
int fl_test_run(const char *cmd, char **out);

#include <sys/types.h>

/* Start `cmd` (through /bin/sh) in the background, stdout+stderr appended to log_path; it is
 * killed when the calling process ends. Returns its pid, or -1. */
pid_t fl_test_spawn(const char *cmd, const char *log_path);
/* Start argv[0] with arguments argv (NULL-terminated, no shell) in the background, stdout and
 * stderr appended to log_path; killed when the calling process ends. Returns its pid, or -1. */
pid_t fl_test_spawnv(char *const argv[], const char *log_path);
/* Wait up to timeout_s for pid; returns its exit status, 128+signal when killed by one, or
 * -1 on time-out (the process is then killed). */
int fl_test_wait(pid_t pid, double timeout_s);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int fl_test_free_port(void);
/* The peers of the side-by-side tests (scripts/peers.sh installs them): ONNX Runtime for node in
 * SRC_DIR/tests/peers/node_modules, and Debian's /usr/bin/python3 importing the comma list
 * `modules` (e.g. "torch, torchvision, onnx"). */
bool fl_test_have_ort(const char *src_dir);
bool fl_test_have_python(const char *modules);
/* Read a whole text file (malloc'd, NUL-terminated) or NULL. */
char *fl_test_slurp(const char *path);
/* Count occurrences of needle in the file at path. */
int fl_test_count(const char *path, const char *needle);

/* A "VmHWM:"-style field of /proc/PID/status (pid 0: this process) in KiB, or -1. */
long fl_test_proc_status_kb(pid_t pid, const char *field);
/* A hostile frame of about len bytes that parses as an Envelope (version 3) made of 3-byte
 * fields no message has: with body a message type's field number (10-19) they fill that
 * body, with body 0 they sit in the Envelope itself, which then has no body at all. Cheap for
 * a sender, millions of allocations for a parser that keeps unknown fields. malloc'd (caller
 * frees), its size in *out_len; NULL when out of memory. */
unsigned char *fl_test_bomb_frame(int body, size_t len, size_t *out_len);

struct cJSON;
/* Parse a whole file as one JSON value (cJSON_Delete it); NULL when it is missing or not JSON. */
struct cJSON *fl_test_json(const char *path);
/* Parse a file of JSON lines (rounds.jsonl) into an array of its values, in order; NULL when it
 * is missing or a line is not JSON. */
struct cJSON *fl_test_jsonl(const char *path);
/* The ledger lines (of fl_test_jsonl) for `round` (-1: any) with "aggregated" equal to
 * `aggregated` (1 true, 0 false, -1 either): how many, and the last of them in *last (or NULL). */
int fl_test_ledger_lines(const struct cJSON *lines, int round, int aggregated,
                         const struct cJSON **last);

/* ---- the federation of the end-to-end tests: fedtl's programs in a scratch directory ---- */

#define FL_TEST_FED_MAX 6 /* branches at most */

/* A federation of fedtl's real programs in a scratch directory. */
struct fl_test_fed {
    char *dir;                     /* scratch directory */
    int port;                      /* the coordinator's port on 127.0.0.1 */
    int nb;                        /* branches */
    pid_t coord;                   /* the coordinator, or 0 */
    pid_t branch[FL_TEST_FED_MAX]; /* the clients, or 0 */
};

/* The seed of fl_test_write_blobs whose samples go on from the stream that drew the centres
 * rather than start one of their own. */
#define FL_TEST_BLOBS_CENTRES_STREAM 0xffffffffffffffffULL

/* Write n samples of four Gaussian classes in 20 dimensions (the same centres whatever the
 * seed) to the CSV file path. 0, or -1 when it cannot be written. */
int fl_test_write_blobs(const char *path, int n, unsigned long long seed);
/* A fresh federation of nb branches (at most FL_TEST_FED_MAX) in a scratch directory named
 * after tag, made with bin_dir's programs: keys hq and b0..b5 (the first nb branches' public
 * keys in allow/), train.csv (3000 samples of fl_test_write_blobs), base.ftm (an mlp pretrained
 * on classes 0-2) and nb shards of classes 1-3 in shards/client-NN.csv; nothing runs yet.
 * 0, or -1 with what failed in *why (malloc'd, the caller frees it). */
int fl_test_fed_setup(struct fl_test_fed *f, const char *tag, int nb, const char *bin_dir,
                      char **why);

/* What a federation of fl_test_fed_setup_opts holds other than fl_test_fed_setup's; each field
 * zero or NULL: as fl_test_fed_setup. Names and options go to the shell as they are. */
struct fl_test_fed_opts {
    unsigned long long blobs_seed;      /* train.csv's seed (fl_test_write_blobs), 0: 1 */
    int test_rows;                      /* rows of test.csv (blobs of seed 2), 0: none */
    const char *names[FL_TEST_FED_MAX]; /* branch i's name (keygen --name, no '), NULL: bI */
    const char *more_keys;              /* keys made and not enrolled ("stranger"), or NULL */
    const char *pretrain; /* fedtl pretrain's options but --out, NULL: the mlp of classes 0-2 */
    const char *shards;   /* fedtl partition's data, classes and --samples, NULL: 1200 of 1-3 */
};

/* fl_test_fed_setup with the differences of opts (NULL: none). */
int fl_test_fed_setup_opts(struct fl_test_fed *f, const char *tag, int nb,
                           const struct fl_test_fed_opts *opts, const char *bin_dir, char **why);
/* Kill the coordinator and the clients still running, remove the directory (kept with
 * FEDTL_KEEP_TMP). */
void fl_test_fed_teardown(struct fl_test_fed *f);

/* A fresh scratch directory named after tag holding base.ftm, for scripts/simulate.sh:
 * cnn-small pretrained by bin_dir's fedtl on `samples` Fashion-MNIST training images of
 * classes 0-4 for `epochs` epochs. The directory (malloc'd), or NULL with what failed in *why
 * (malloc'd, the caller frees it). */
char *fl_test_fashion_base(const char *tag, int samples, int epochs, const char *bin_dir,
                           char **why);

#endif
