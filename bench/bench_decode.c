/* bench_decode: how fast fedtl turns a folder of JPEG class folders into a base's input
 * (list, read, decode, convert, Resize, CenterCrop, ToTensor: fl_dataset_load_ex), per thread
 * count, against the same work in PIL + torchvision (bench/decode.sh runs both).
 *   bench_decode --make DIR [--count 10000] [--width 256] [--height 192]
 *       writes DIR/<class>/<n>.jpg: random smooth textures, 10 class folders, quality 90
 *   bench_decode --data DIR [--resize 128] [--crop 112] [--threads 1,2] [--rounds 3]
 *       prints "bench=decode threads=N images=... seconds=... images_per_s=...
 *       cpu_ms_per_image=... checksum=..." (CPU time of every thread: what a busy machine
 *       does not blur)
 *       per round, then the median per thread count. */
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_image.h"
#include "fl_pool.h"
#include "fl_rng.h"
#include "fl_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (every thread), user and system. */
static double s_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A smooth random texture: a few sinusoids per channel plus noise. */
static void s_texture(struct fl_image *img, struct fl_rng *rng)
{
    double f[3][4];
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 4; j++)
            f[k][j] = fl_rng_uniform(rng) * 0.2;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++)
            for (int k = 0; k < 3; k++) {
                double v = 128 + 60 * sin(f[k][0] * x + f[k][1] * y) +
                           50 * cos(f[k][2] * x - f[k][3] * y) + 20 * (fl_rng_uniform(rng) - 0.5);
                img->p[((size_t)y * img->w + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static int s_make(const char *dir, int count, int w, int h)
{
    struct fl_rng rng;
    fl_rng_seed(&rng, 1);
    struct fl_image img = {.w = w, .h = h, .c = 3, .p = malloc((size_t)w * h * 3)};
    char path[4096];
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%d", dir, i % 10);
        if (i < 10 && fl_fs_mkdirs(path, 0755) != 0)
            return 1;
        snprintf(path, sizeof path, "%s/%d/%05d.jpg", dir, i % 10, i);
        s_texture(&img, &rng);
        if (fl_image_write(path, &img, 90) != 0) {
            fprintf(stderr, "bench_decode: %s\n", fl_error_msg());
            return 1;
        }
    }
    free(img.p);
    printf("wrote %d JPEGs of %d x %d under %s\n", count, w, h, dir);
    return 0;
}

static int s_run(const char *dir, int resize, int crop, const char *threads, int rounds)
{
    char list[256];
    snprintf(list, sizeof list, "%s", threads);
    printf("# fedtl: %s, Resize(%d) CenterCrop(%d) ToTensor, RGB\n", dir, resize, crop);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int nt = atoi(t);
        fl_pool_t *pool = fl_pool_new(nt);
        double rate[64];
        int nr = 0;
        for (int r = 0; r < rounds && r < 64; r++) {
            struct fl_image_target tg = {
                .channels = 3, .height = crop, .width = crop, .resize = resize, .pixel_max = 1};
            struct fl_data_opts o = {.image = &tg, .pool = pool};
            struct fl_dataset ds;
            double t0 = s_now(), c0 = s_cpu();
            if (fl_dataset_load_ex(&ds, dir, NULL, &o, NULL) != 0) {
                fprintf(stderr, "bench_decode: %s\n", fl_error_msg());
                return 1;
            }
            double sec = s_now() - t0, cpu = s_cpu() - c0, sum = 0;
            for (size_t i = 0; i < ds.n * ds.dim; i++)
                sum += ds.x[i];
            rate[nr++] = (double)ds.n / sec;
            printf("bench=decode contender=fedtl threads=%d images=%zu seconds=%.3f "
                   "images_per_s=%.1f cpu_ms_per_image=%.3f checksum=%.4f\n",
                   fl_pool_size(pool), ds.n, sec, rate[nr - 1], 1e3 * cpu / (double)ds.n, sum);
            fflush(stdout);
            fl_dataset_free(&ds);
        }
        qsort(rate, (size_t)nr, sizeof *rate, s_cmp);
        printf("bench=decode_median contender=fedtl threads=%d images_per_s=%.1f\n",
               fl_pool_size(pool), rate[nr / 2]);
        fl_pool_destroy(&pool);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *make = NULL, *data = NULL, *threads = "1,2";
    int count = 10000, w = 256, h = 192, resize = 128, crop = 112, rounds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--make"))
            make = v;
        else if (!strcmp(k, "--data"))
            data = v;
        else if (!strcmp(k, "--count"))
            count = atoi(v);
        else if (!strcmp(k, "--width"))
            w = atoi(v);
        else if (!strcmp(k, "--height"))
            h = atoi(v);
        else if (!strcmp(k, "--resize"))
            resize = atoi(v);
        else if (!strcmp(k, "--crop"))
            crop = atoi(v);
        else if (!strcmp(k, "--threads"))
            threads = v;
        else if (!strcmp(k, "--rounds"))
            rounds = atoi(v);
        else {
            fprintf(stderr, "bench_decode: unknown option %s\n", k);
            return 2;
        }
    }
    if (make)
        return s_make(make, count, w, h);
    if (data)
        return s_run(data, resize, crop, threads, rounds);
    fprintf(stderr, "usage: bench_decode --make DIR [--count N] | --data DIR [--resize R] "
                    "[--crop C] [--threads 1,2] [--rounds 3]\n");
    return 2;
}
