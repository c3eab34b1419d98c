/* fl_augment: random crop with zero padding and horizontal flip, seeded per record. */
#include "fl_augment.h"
#include "fl_error.h"
#include "fl_rng.h"

#include <string.h>

int fl_augment_parse(const char *spec, unsigned *ops)
{
    static const struct {
        const char *name;
        unsigned bit;
    } known[] = {{"crop", FL_AUGMENT_CROP}, {"flip", FL_AUGMENT_FLIP}, {"none", 0}};
    *ops = 0;
    unsigned seen = 0;
    const char *p = spec ? spec : "";
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, ", \t");
        size_t k = 0;
        for (; k < sizeof known / sizeof known[0]; k++)
            if (strlen(known[k].name) == n && strncmp(p, known[k].name, n) == 0)
                break;
        if (n == 0 || k == sizeof known / sizeof known[0])
            return fl_fail(FL_EINVAL, "'%s': unknown augmentation at '%.*s' (crop, flip or none)",
                           spec, (int)(n ? n : strlen(p)), p);
        unsigned bit = known[k].bit ? known[k].bit : 1u << 31;
        if (seen & bit)
            return fl_fail(FL_EINVAL, "'%s': '%s' is listed twice", spec, known[k].name);
        seen |= bit;
        *ops |= known[k].bit;
        p += n;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == ',' && *++p == '\0')
            return fl_fail(FL_EINVAL, "'%s': ends with a comma", spec);
    }
    if ((seen & (1u << 31)) && *ops)
        return fl_fail(FL_EINVAL, "'%s': 'none' with other operations", spec);
    return 0;
}

int fl_augment_validate(const char *spec)
{
    unsigned ops;
    return fl_augment_parse(spec, &ops);
}

int fl_augment_shape_of(const struct fl_arch *arch, struct fl_augment_shape *s)
{
    *s = (struct fl_augment_shape){.c = arch->in_c, .h = arch->in_h, .w = arch->in_w};
    s->hwc = !arch->graph && arch->nlayers > 0; /* a chain reads HxWxC */
    if (arch->in_h <= 1 || arch->in_w <= 1 || arch->in_c < 1)
        return fl_fail(FL_EINVAL,
                       "augmentation needs image records (C x H x W); the model (%s) takes "
                       "%d x %d x %d: flat records are not augmented",
                       arch->name, arch->in_c, arch->in_h, arch->in_w);
    return 0;
}

/* splitmix64's finaliser: the record's own stream from (seed, epoch, record). */
static uint64_t s_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void fl_augment_draw(const struct fl_augment *a, uint64_t seed, uint64_t epoch, uint64_t record,
                     struct fl_augment_draw *d)
{
    struct fl_rng r;
    fl_rng_seed(&r, s_mix(seed ^ s_mix(epoch ^ s_mix(record))));
    int pad = (a->ops & FL_AUGMENT_CROP) ? (a->pad > 0 ? a->pad : FL_AUGMENT_PAD) : 0;
    d->top = pad ? (int)fl_rng_below(&r, (uint64_t)(2 * pad + 1)) - pad : 0;
    d->left = pad ? (int)fl_rng_below(&r, (uint64_t)(2 * pad + 1)) - pad : 0;
    d->flip = (a->ops & FL_AUGMENT_FLIP) && fl_rng_uniform(&r) < 0.5;
}

void fl_augment_apply(const struct fl_augment_shape *s, const struct fl_augment_draw *d, float *x,
                      float *tmp)
{
    if (d->top == 0 && d->left == 0 && !d->flip)
        return;
    int c = s->c, h = s->h, w = s->w;
    size_t plane = (size_t)h * (size_t)w;
    for (int y = 0; y < h; y++) {
        int sy = y + d->top;
        for (int xo = 0; xo < w; xo++) {
            int sx = (d->flip ? w - 1 - xo : xo) + d->left;
            bool in = sy >= 0 && sy < h && sx >= 0 && sx < w;
            size_t src = in ? (size_t)sy * (size_t)w + (size_t)sx : 0;
            size_t dst = (size_t)y * (size_t)w + (size_t)xo;
            for (int k = 0; k < c; k++) {
                size_t si = s->hwc ? src * (size_t)c + (size_t)k : (size_t)k * plane + src;
                size_t di = s->hwc ? dst * (size_t)c + (size_t)k : (size_t)k * plane + dst;
                tmp[di] = in ? x[si] : 0.0f;
            }
        }
    }
    memcpy(x, tmp, sizeof(float) * plane * (size_t)c);
}

void fl_augment_record(const struct fl_augment *a, const struct fl_augment_shape *s, uint64_t seed,
                       uint64_t epoch, uint64_t record, float *x, float *tmp)
{
    if (!a->ops)
        return;
    struct fl_augment_draw d;
    fl_augment_draw(a, seed, epoch, record, &d);
    fl_augment_apply(s, &d, x, tmp);
}
