/* Helpers shared by the Criterion tests: scratch directories and running the real binaries. */
#ifndef FL_TESTUTIL_H
#define FL_TESTUTIL_H

#include <stddef.h>

/* Create a fresh temporary directory under $TMPDIR (or /tmp); returns a static-lifetime
 * malloc'd path the caller frees. */
char *fl_test_tmpdir(const char *tag);
/* Remove a directory tree (rm -rf). */
void fl_test_rmtree(const char *path);
/* Path join into a malloc'd string. */
char *fl_test_path(const char *dir, const char *name);
/* Run a shell command, capturing stdout+stderr into *out (malloc'd, may be NULL).
 * Returns the exit status (or -1). */
int fl_test_run(const char *cmd, char **out);

#endif
