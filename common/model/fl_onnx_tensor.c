/* fl_onnx_tensor: ONNX tensors (initializers, Constant values) into the importer's constants:
 * float32, float16, bfloat16 and float64 become float32, integers int64; data from raw_data,
 * the typed fields or a side file in the model's folder (external data). */
#include "fl_onnx_impl.h"

#include "fl_error.h"
#include "fl_fs.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    S_F32 = 1,
    S_U8,
    S_I8,
    S_U16,
    S_I16,
    S_I32,
    S_I64,
    S_STR,
    S_BOOL,
    S_F16,
    S_F64,
    S_U32,
    S_U64,
    S_BF16 = 16
};

/* Bytes per element in raw_data, 0 for a type not read. */
static size_t s_esize(int dt)
{
    switch (dt) {
    case S_F32:
    case S_I32:
    case S_U32:
        return 4;
    case S_F64:
    case S_I64:
    case S_U64:
        return 8;
    case S_F16:
    case S_BF16:
    case S_I16:
    case S_U16:
        return 2;
    case S_I8:
    case S_U8:
    case S_BOOL:
        return 1;
    default:
        return 0;
    }
}

static bool s_is_float(int dt)
{
    return dt == S_F32 || dt == S_F16 || dt == S_F64 || dt == S_BF16;
}

static float s_half(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0 && man == 0)
        bits = sign;
    else if (exp == 0) { /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 1024));
        bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 1023) << 13;
    } else if (exp == 31)
        bits = sign | 0x7f800000u | man << 13;
    else
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Element j of little-endian raw bytes of type dt, as a double (floats) or int64. */
static double s_raw_f(const uint8_t *p, int dt, size_t j)
{
    if (dt == S_F32) {
        float f;
        memcpy(&f, p + 4 * j, 4);
        return f;
    }
    if (dt == S_F64) {
        double d;
        memcpy(&d, p + 8 * j, 8);
        return d;
    }
    uint16_t h;
    memcpy(&h, p + 2 * j, 2);
    if (dt == S_F16)
        return s_half(h);
    uint32_t bits = (uint32_t)h << 16; /* bfloat16 */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static int64_t s_raw_i(const uint8_t *p, int dt, size_t j)
{
    switch (dt) {
    case S_I64:
    case S_U64: {
        int64_t v;
        memcpy(&v, p + 8 * j, 8);
        return v;
    }
    case S_I32: {
        int32_t v;
        memcpy(&v, p + 4 * j, 4);
        return v;
    }
    case S_U32: {
        uint32_t v;
        memcpy(&v, p + 4 * j, 4);
        return v;
    }
    case S_I16: {
        int16_t v;
        memcpy(&v, p + 2 * j, 2);
        return v;
    }
    case S_U16: {
        uint16_t v;
        memcpy(&v, p + 2 * j, 2);
        return v;
    }
    case S_I8:
        return (int8_t)p[j];
    default:
        return p[j];
    }
}

/* Is location a relative path with no ".." component? */
static bool s_relative_inside(const char *loc)
{
    if (!*loc || loc[0] == '/')
        return false;
    for (const char *p = loc; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += n;
        while (*p == '/')
            p++;
    }
    return true;
}

/* Open location under the model's folder, refusing anything that resolves outside it. */
static int s_open_inside(struct fl_ox *ox, const char *tname, const char *loc, int *fd,
                         struct stat *st)
{
    if (!ox->dir)
        return fl_ox_fail(ox, FL_EINVAL,
                          "tensor '%.200s' has external data ('%.200s') and no folder was "
                          "given to read it from",
                          tname, loc);
    if (!s_relative_inside(loc))
        return fl_ox_fail(ox, FL_EINVAL,
                          "tensor '%.200s': external data '%.200s' is outside the model's "
                          "folder (absolute or '..'): refused",
                          tname, loc);
    char rdir[PATH_MAX], rfile[PATH_MAX], full[PATH_MAX * 2];
    snprintf(full, sizeof full, "%s/%s", ox->dir, loc);
    if (!realpath(ox->dir, rdir) || !realpath(full, rfile))
        return fl_ox_fail(ox, FL_EIO, "tensor '%.200s': external data '%.200s' cannot be opened",
                          tname, full);
    size_t dl = strlen(rdir);
    if (strncmp(rfile, rdir, dl) != 0 || (rfile[dl] != '/' && rdir[dl - 1] != '/'))
        return fl_ox_fail(ox, FL_EINVAL,
                          "tensor '%.200s': external data '%.200s' resolves to '%.200s', "
                          "outside the model's folder: refused",
                          tname, loc, rfile);
    int rc = fl_fs_open_regular(rfile, fd, st);
    return rc ? fl_ox_fail(ox, rc, "tensor '%.200s': external data '%.200s' cannot be opened",
                           tname, full)
              : 0;
}

/* The need bytes of a tensor's external data (malloc'd into *out). */
static int s_external(struct fl_ox *ox, const Onnx__TensorProto *t, const char *tname, size_t need,
                      uint8_t **out)
{
    const char *loc = NULL;
    long long off = 0, len = -1;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = t->external_data[i];
        if (!e->key || !e->value)
            continue;
        char *end = NULL;
        if (strcmp(e->key, "location") == 0)
            loc = e->value;
        else if (strcmp(e->key, "offset") == 0)
            off = strtoll(e->value, &end, 10);
        else if (strcmp(e->key, "length") == 0)
            len = strtoll(e->value, &end, 10);
        if (end && (*end || end == e->value))
            return fl_ox_fail(ox, FL_EFORMAT, "tensor '%.200s': external data %s '%.40s'", tname,
                              e->key, e->value);
    }
    if (!loc)
        return fl_ox_fail(ox, FL_EFORMAT, "tensor '%.200s': external data has no location", tname);
    int fd;
    struct stat st;
    int rc = s_open_inside(ox, tname, loc, &fd, &st);
    if (rc)
        return rc;
    if (len < 0)
        len = (long long)need;
    if (off < 0 || (size_t)len != need || off > (long long)st.st_size ||
        len > (long long)st.st_size - off) {
        close(fd);
        return fl_ox_fail(ox, FL_ETRUNC,
                          "tensor '%.200s': external data '%.200s' at %lld, %lld bytes: the "
                          "tensor needs %zu and the file has %lld",
                          tname, loc, off, len, need, (long long)st.st_size);
    }
    uint8_t *buf = malloc(need ? need : 1);
    size_t got = 0;
    if (buf && lseek(fd, (off_t)off, SEEK_SET) == (off_t)off)
        got = fl_fs_read_fd(fd, buf, need);
    close(fd);
    if (!buf || got != need) {
        free(buf);
        return fl_ox_fail(ox, buf ? FL_EIO : FL_ENOMEM,
                          "tensor '%.200s': cannot read external data '%.200s'", tname, loc);
    }
    *out = buf;
    return 0;
}

/* Elements in the typed field that holds type dt. */
static size_t s_typed_count(const Onnx__TensorProto *t, int dt)
{
    switch (dt) {
    case S_F32:
        return t->n_float_data;
    case S_F64:
        return t->n_double_data;
    case S_I64:
        return t->n_int64_data;
    case S_U32:
    case S_U64:
        return t->n_uint64_data;
    default:
        return t->n_int32_data;
    }
}

static void s_convert_typed(const Onnx__TensorProto *t, int dt, struct fl_ox_val *v)
{
    for (size_t j = 0; j < v->numel; j++) {
        if (dt == S_F32)
            v->f[j] = t->float_data[j];
        else if (dt == S_F64)
            v->f[j] = (float)t->double_data[j];
        else if (dt == S_F16 || dt == S_BF16) {
            uint8_t b[2] = {(uint8_t)t->int32_data[j], (uint8_t)(t->int32_data[j] >> 8)};
            v->f[j] = (float)s_raw_f(b, dt, 0);
        } else if (dt == S_I64)
            v->i[j] = t->int64_data[j];
        else if (dt == S_U32 || dt == S_U64)
            v->i[j] = (int64_t)t->uint64_data[j];
        else
            v->i[j] = t->int32_data[j];
    }
}

static int s_shape(struct fl_ox *ox, const Onnx__TensorProto *t, const char *name, int64_t *dims,
                   size_t *numel)
{
    if (t->n_dims > FL_OX_MAX_DIMS)
        return fl_ox_fail(ox, FL_ERANGE, "tensor '%.200s' has %zu axes (at most %d)", name,
                          t->n_dims, FL_OX_MAX_DIMS);
    int64_t n = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        dims[d] = t->dims[d];
        if (dims[d] < 0 || dims[d] > FL_ONNX_MAX_NUMEL || (n *= dims[d]) > FL_ONNX_MAX_NUMEL)
            return fl_ox_fail(ox, FL_ERANGE,
                              "tensor '%.200s': absurd dimensions (axis %zu = %lld; at most "
                              "%lld elements)",
                              name, d, (long long)t->dims[d], (long long)FL_ONNX_MAX_NUMEL);
    }
    *numel = (size_t)n;
    return 0;
}

int fl_ox_tensor(struct fl_ox *ox, const Onnx__TensorProto *t, const char *name, int *idx)
{
    int64_t dims[FL_OX_MAX_DIMS];
    size_t numel = 0, es;
    name = name ? name : "";
    int dt = t->has_data_type ? t->data_type : 0, rc = s_shape(ox, t, name, dims, &numel);
    if (rc)
        return rc;
    if (!(es = s_esize(dt)))
        return fl_ox_fail(ox, FL_EINVAL,
                          "tensor '%.200s' has data type %d (floats and integers "
                          "are read)",
                          name, dt);
    uint8_t *ext = NULL;
    const uint8_t *raw = NULL;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        if ((rc = s_external(ox, t, name, numel * es, &ext)))
            return rc;
        raw = ext;
    } else if (t->has_raw_data) {
        if (t->raw_data.len != numel * es)
            return fl_ox_fail(ox, FL_EFORMAT,
                              "tensor '%.200s': raw_data has %zu bytes, its shape needs %zu", name,
                              t->raw_data.len, numel * es);
        raw = t->raw_data.data;
    } else if (s_typed_count(t, dt) != numel)
        return fl_ox_fail(ox, FL_EFORMAT, "tensor '%.200s': %zu values for %zu elements", name,
                          s_typed_count(t, dt), numel);
    rc = fl_ox_new_val(ox, name, s_is_float(dt) ? FL_OX_FLOAT : FL_OX_INT, idx);
    struct fl_ox_val *v = rc ? NULL : &ox->vals[*idx];
    if (v) {
        v->ndim = (int)t->n_dims;
        memcpy(v->dims, dims, t->n_dims * sizeof *dims);
        v->numel = numel;
        if (v->kind == FL_OX_FLOAT)
            v->f = fl_falloc(numel ? numel : 1);
        else
            v->i = calloc(numel ? numel : 1, sizeof *v->i);
        if (!v->f && !v->i)
            rc =
                fl_fail(FL_ENOMEM, "onnx: %s: out of memory for tensor '%.200s'", ox->origin, name);
    }
    for (size_t j = 0; rc == 0 && raw && j < numel; j++) {
        if (v->kind == FL_OX_FLOAT)
            v->f[j] = (float)s_raw_f(raw, dt, j);
        else
            v->i[j] = s_raw_i(raw, dt, j);
    }
    if (rc == 0 && !raw)
        s_convert_typed(t, dt, v);
    free(ext);
    return rc;
}
