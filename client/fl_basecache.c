/* fl_basecache: cached bases and their chunked, resumable download. */
#include "fl_basecache.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct fl_basecache {
    char *dir;                          /* cache directory */
    uint8_t coord_pk[FL_SIGN_PK_BYTES]; /* the coordinator's Ed25519 key */
    uint64_t stall_ms;                  /* re-request after this long without progress */
    bool active;                        /* a download is running */
    struct fl_base_offer offer;         /* what is being downloaded */
    int fd;                             /* the .part file (locked), -1 when none */
    char part[PATH_MAX];                /* its path */
    uint64_t have;                      /* bytes [0, have) are written */
    uint64_t requested;                 /* bytes [0, requested) have been asked for */
    uint64_t last_progress;             /* when a chunk was last accepted (ms) */
};

fl_basecache_t *fl_basecache_new(const char *dir, const uint8_t coord_sign_pk[FL_SIGN_PK_BYTES])
{
    if (fl_fs_mkdirs(dir, 0755) != 0)
        return NULL;
    fl_basecache_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        free(self);
        fl_error_set("out of memory");
        return NULL;
    }
    memcpy(self->coord_pk, coord_sign_pk, FL_SIGN_PK_BYTES);
    self->stall_ms = 5000;
    self->fd = -1;
    return self;
}

static void s_close_part(fl_basecache_t *self)
{
    if (self->fd >= 0)
        close(self->fd); /* also drops the lock */
    self->fd = -1;
    self->active = false;
}

void fl_basecache_destroy(fl_basecache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_basecache_t *self = *self_p;
    s_close_part(self);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

void fl_basecache_set_stall_ms(fl_basecache_t *self, uint64_t ms)
{
    self->stall_ms = ms;
}

void fl_basecache_path(const fl_basecache_t *self, const uint8_t hash[FL_HASH_BYTES],
                       const char *ext, char *out, size_t len)
{
    char hex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(hash, hex);
    snprintf(out, len, "%s/%s%s", self->dir, hex, ext);
}

/* The offer must be signed by the coordinator we pinned and describe a plausible file. */
static int s_check_offer(const fl_basecache_t *self, const struct fl_base_offer *offer)
{
    char hex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(offer->hash, hex);
    if (fl_verify_base(self->coord_pk, offer->hash, offer->signature) != 0)
        return fl_fail(FL_ECRYPTO,
                       "the coordinator's signature over base %s does not verify "
                       "(wrong --coordinator-key?)",
                       hex);
    if (offer->size <= FL_MODELFILE_PREAMBLE || offer->size > (uint64_t)SIZE_MAX ||
        offer->size > (uint64_t)INT64_MAX || offer->chunk_size == 0)
        return fl_fail(FL_EFORMAT, "base %s: implausible size %llu or chunk size %u", hex,
                       (unsigned long long)offer->size, offer->chunk_size);
    return 0;
}

/* Read path and check it is the offered base; *out is open only on success. */
static int s_read_checked(const fl_basecache_t *self, const char *path,
                          const struct fl_base_offer *offer, struct fl_base_file *out)
{
    int rc = fl_base_read(path, out);
    if (rc)
        return rc;
    if (memcmp(out->hash, offer->hash, FL_HASH_BYTES) != 0) {
        char want[2 * FL_HASH_BYTES + 1], got[2 * FL_HASH_BYTES + 1];
        fl_hash_hex(offer->hash, want);
        fl_hash_hex(out->hash, got);
        fl_base_close(out);
        return fl_fail(FL_EHASH, "%s: content hash %s, the coordinator announced %s", path, got,
                       want);
    }
    if (fl_verify_base(self->coord_pk, out->hash, offer->signature) != 0) {
        fl_base_close(out);
        return fl_fail(FL_ECRYPTO, "%s: the coordinator's signature does not verify", path);
    }
    return 0;
}

int fl_basecache_open(fl_basecache_t *self, const struct fl_base_offer *offer,
                      struct fl_base_file *out)
{
    memset(out, 0, sizeof *out);
    int rc = s_check_offer(self, offer);
    if (rc)
        return rc;
    char path[PATH_MAX];
    fl_basecache_path(self, offer->hash, ".ftm", path, sizeof path);
    if (access(path, F_OK) != 0)
        return FL_ENOTFOUND;
    if ((rc = s_read_checked(self, path, offer, out)) != 0) {
        char msg[512];
        fl_log(FL_LOG_WARN, "base_cache_invalid", "path=%s error=%s msg=%s", path, fl_strerror(rc),
               fl_log_str(fl_error_msg(), msg, sizeof msg));
        unlink(path);
        return FL_ENOTFOUND;
    }
    fl_log(FL_LOG_INFO, "base_cached", "path=%s bytes=%zu", path, out->map_len);
    return 0;
}

int fl_basecache_begin(fl_basecache_t *self, const struct fl_base_offer *offer, uint64_t now_ms)
{
    int rc = s_check_offer(self, offer);
    if (rc)
        return rc;
    if (self->active && memcmp(self->offer.hash, offer->hash, FL_HASH_BYTES) == 0) {
        self->offer = *offer;
        fl_basecache_restart(self);
        return self->have >= self->offer.size ? 1 : 0;
    }
    s_close_part(self);
    self->offer = *offer;
    fl_basecache_path(self, offer->hash, ".part", self->part, sizeof self->part);
    self->fd = open(self->part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->fd < 0)
        return fl_fail(FL_EIO, "%s: cannot open: %s", self->part, strerror(errno));
    if (flock(self->fd, LOCK_EX | LOCK_NB) != 0) {
        s_close_part(self);
        return fl_fail(FL_EIO, "%s: another fedtl-client is downloading into this cache",
                       self->part);
    }
    struct stat st;
    if (fstat(self->fd, &st) != 0) {
        rc = fl_fail(FL_EIO, "%s: cannot stat: %s", self->part, strerror(errno));
        goto out_close;
    }
    uint64_t size = (uint64_t)st.st_size;
    /* Whole chunks only: a chunk cut short by a crash is fetched again. */
    uint64_t keep =
        size >= offer->size ? (size == offer->size ? size : 0) : size - size % offer->chunk_size;
    if (keep != size && ftruncate(self->fd, (off_t)keep) != 0) {
        rc = fl_fail(FL_EIO, "%s: cannot truncate: %s", self->part, strerror(errno));
        goto out_close;
    }
    self->have = self->requested = keep;
    self->last_progress = now_ms;
    self->active = true;
    if (keep > 0)
        fl_log(FL_LOG_INFO, "base_resume", "path=%s offset=%llu size=%llu", self->part,
               (unsigned long long)keep, (unsigned long long)offer->size);
    return keep == offer->size ? 1 : 0;
out_close:
    s_close_part(self);
    return rc;
}

bool fl_basecache_active(const fl_basecache_t *self)
{
    return self->active;
}

void fl_basecache_restart(fl_basecache_t *self)
{
    self->requested = self->have;
}

bool fl_basecache_next_request(fl_basecache_t *self, uint64_t now_ms, uint64_t *offset,
                               uint32_t *credit)
{
    const uint64_t size = self->offer.size, chunk = self->offer.chunk_size;
    if (!self->active || self->have >= size)
        return false;
    if (self->requested < self->have)
        self->requested = self->have;
    if (self->requested > self->have && now_ms - self->last_progress >= self->stall_ms) {
        fl_log(FL_LOG_WARN, "base_stalled", "offset=%llu ms=%llu", (unsigned long long)self->have,
               (unsigned long long)(now_ms - self->last_progress));
        self->requested = self->have;
    }
    uint64_t inflight = (self->requested - self->have + chunk - 1) / chunk;
    if (inflight > FL_BASECACHE_CREDIT / 2 || self->requested >= size)
        return false;
    if (inflight == 0)
        self->last_progress = now_ms; /* the stall clock starts with the request */
    uint64_t want = FL_BASECACHE_CREDIT - inflight;
    uint64_t end = size - self->requested > want * chunk ? self->requested + want * chunk : size;
    *offset = self->requested;
    *credit = (uint32_t)((end - self->requested + chunk - 1) / chunk);
    self->requested = end;
    return true;
}

static int s_pwrite_all(int fd, const uint8_t *data, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, data, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

int fl_basecache_chunk(fl_basecache_t *self, const uint8_t *hash, size_t hash_len, uint64_t offset,
                       const uint8_t *data, size_t len, uint64_t now_ms)
{
    if (!self->active || hash_len != FL_HASH_BYTES ||
        memcmp(hash, self->offer.hash, FL_HASH_BYTES) != 0) {
        fl_log(FL_LOG_DEBUG, "base_chunk_ignored", "reason=\"another base\" offset=%llu",
               (unsigned long long)offset);
        return 0;
    }
    if (offset != self->have || len == 0 || len > self->offer.size - offset) {
        fl_log(FL_LOG_DEBUG, "base_chunk_ignored",
               "reason=\"unexpected offset\" offset=%llu "
               "want=%llu len=%zu",
               (unsigned long long)offset, (unsigned long long)self->have, len);
        return 0;
    }
    if (s_pwrite_all(self->fd, data, len, offset) != 0)
        return fl_fail(FL_EIO, "%s: write failed: %s", self->part, strerror(errno));
    self->have += len;
    self->last_progress = now_ms;
    return self->have == self->offer.size ? 1 : 0;
}

void fl_basecache_progress(const fl_basecache_t *self, uint64_t *have, uint64_t *size)
{
    *have = self->have;
    *size = self->offer.size;
}

static void s_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int fl_basecache_finish(fl_basecache_t *self, struct fl_base_file *out)
{
    memset(out, 0, sizeof *out);
    if (!self->active || self->have != self->offer.size)
        return fl_fail(FL_ETRUNC, "base download is not complete");
    int rc = 0;
    char path[PATH_MAX];
    fl_basecache_path(self, self->offer.hash, ".ftm", path, sizeof path);
    if (fsync(self->fd) != 0) {
        rc = fl_fail(FL_EIO, "%s: fsync failed: %s", self->part, strerror(errno));
        goto out_close;
    }
    /* Checked under its .part name, so a .ftm in the cache is always a verified base. */
    if ((rc = s_read_checked(self, self->part, &self->offer, out)) != 0) {
        unlink(self->part);
        goto out_close;
    }
    if (rename(self->part, path) != 0) {
        rc = fl_fail(FL_EIO, "%s: cannot rename to %s: %s", self->part, path, strerror(errno));
        fl_base_close(out);
        goto out_close;
    }
    s_fsync_dir(self->dir);
out_close:
    s_close_part(self);
    return rc;
}
