/* fedtl's image preparation against torchvision's on the same files: PIL opens each file,
 * convert("RGB") (ImageFolder's loader), convert("L") for a grey base, then Resize(R),
 * CenterCrop(C), ToTensor(); fedtl's fl_image_read + fl_image_prepare must agree within one
 * grey level (1/255) everywhere. Needs Debian's /usr/bin/python3 with torchvision and PIL. */
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_image.h"
#include "fl_testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes the files fedtl's encoder cannot (RGBA, palette, grey+alpha, 16-bit), then for each
 * (file, R, C, mode) the tensor torchvision makes, as raw float32 in <file>.<R>.<C>.<mode>.f32. */
static const char s_script[] =
    "import sys, numpy as np, torch\n"
    "from PIL import Image\n"
    "from torchvision import transforms as T\n"
    "d = sys.argv[1]\n"
    "rng = np.random.default_rng(5)\n"
    "Image.fromarray(rng.integers(0, 256, (45, 67, 4), dtype=np.uint8), 'RGBA').save(d + "
    "'/rgba.png')\n"
    "Image.fromarray(rng.integers(0, 256, (52, 38, 3), dtype=np.uint8)).convert('P')"
    ".save(d + '/pal.png')\n"
    "Image.fromarray(rng.integers(0, 256, (33, 29, 2), dtype=np.uint8), 'LA').save(d + "
    "'/la.png')\n"
    "files = sys.argv[2].split(',')\n"
    "for spec in sys.argv[3].split(','):\n"
    "    r, c, mode = spec.split(':')\n"
    "    r, c = int(r), int(c)\n"
    "    steps = ([T.Resize(r)] if r else []) + [T.CenterCrop(c), T.ToTensor()]\n"
    "    tf = T.Compose(steps)\n"
    "    for f in files:\n"
    "        img = Image.open(d + '/' + f).convert('RGB')\n"
    "        if mode == 'L':\n"
    "            img = img.convert('L')\n"
    "        t = tf(img).numpy().astype('<f4')\n"
    "        t.tofile('%s/%s.%d.%d.%s.f32' % (d, f, r, c, mode))\n";

static const char *const s_files[] = {"rgb.png",  "grey.png", "photo.jpg", "greyphoto.jpg",
                                      "rgba.png", "pal.png",  "la.png"};
/* resize : crop : mode; every file is at least 29 pixels on its shorter side */
static const char *const s_specs[] = {"24:24:RGB", "28:20:L",  "13:13:RGB", "64:56:RGB",
                                      "0:28:L",    "0:20:RGB", "17:16:L"};

/* A smooth-plus-noise picture, so the JPEGs look like photographs to the codec. */
static void s_write_picture(const char *path, int w, int h, int c, unsigned seed, int quality)
{
    struct fl_image img = {.w = w, .h = h, .c = c, .p = malloc((size_t)w * h * c)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                seed = seed * 1103515245u + 12345u;
                int v = (x * 255 / w + y * 128 / h + k * 60) % 256 + (int)(seed >> 28) - 8;
                img.p[((size_t)y * w + x) * c + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    cr_assert_eq(fl_image_write(path, &img, quality), 0, "%s", fl_error_msg());
    free(img.p);
}

Test(image_parity, fedtl_prepares_files_as_torchvision_does, .timeout = 300)
{
    if (!fl_test_have_python("numpy, torch, torchvision, PIL"))
        cr_skip_test("needs /usr/bin/python3 with torchvision and PIL "
                     "(apt-get install python3-torchvision python3-pil): parity not checked");
    char *dir = fl_test_tmpdir("parity"), *script = fl_test_path(dir, "tv.py");
    char path[2048], cmd[8192], files[512] = "", specs[512] = "";
    cr_assert_eq(fl_fs_write_file(script, s_script, strlen(s_script), 0644), 0);
    snprintf(path, sizeof path, "%s/rgb.png", dir);
    s_write_picture(path, 97, 61, 3, 1, 0);
    snprintf(path, sizeof path, "%s/grey.png", dir);
    s_write_picture(path, 50, 70, 1, 2, 0);
    snprintf(path, sizeof path, "%s/photo.jpg", dir);
    s_write_picture(path, 120, 90, 3, 3, 85);
    snprintf(path, sizeof path, "%s/greyphoto.jpg", dir);
    s_write_picture(path, 64, 80, 1, 4, 75);
    size_t nf = sizeof s_files / sizeof *s_files, ns = sizeof s_specs / sizeof *s_specs;
    for (size_t i = 0; i < nf; i++)
        snprintf(files + strlen(files), sizeof files - strlen(files), "%s%s", i ? "," : "",
                 s_files[i]);
    for (size_t i = 0; i < ns; i++)
        snprintf(specs + strlen(specs), sizeof specs - strlen(specs), "%s%s", i ? "," : "",
                 s_specs[i]);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s %s", script, dir, files, specs);
    char *out = NULL;
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out ? out : "");
    free(out);
    double worst = 0;
    size_t exact = 0, total = 0;
    for (size_t s = 0; s < ns; s++) {
        int r, c;
        char mode[8];
        cr_assert_eq(sscanf(s_specs[s], "%d:%d:%7s", &r, &c, mode), 3);
        int ch = strcmp(mode, "L") == 0 ? 1 : 3;
        struct fl_image_target t = {
            .channels = ch, .height = c, .width = c, .resize = r, .pixel_max = 1};
        size_t dim = (size_t)ch * c * c;
        for (size_t f = 0; f < nf; f++) {
            struct fl_image img;
            snprintf(path, sizeof path, "%s/%s", dir, s_files[f]);
            cr_assert_eq(fl_image_read(path, &img), 0, "%s", fl_error_msg());
            float *mine = malloc(dim * sizeof *mine);
            cr_assert_eq(fl_image_prepare(&img, &t, path, mine, dim), 0, "%s", fl_error_msg());
            fl_image_free(&img);
            snprintf(path, sizeof path, "%s/%s.%d.%d.%s.f32", dir, s_files[f], r, c, mode);
            unsigned char *theirs;
            size_t len;
            cr_assert_eq(fl_fs_read_file(path, 1 << 24, &theirs, &len), 0);
            cr_assert_eq(len, dim * sizeof(float), "%s: torchvision gave %zu bytes", path, len);
            double d = 0;
            for (size_t i = 0; i < dim; i++) {
                float v;
                memcpy(&v, theirs + i * sizeof v, sizeof v);
                double e = fabs((double)v - mine[i]);
                d = e > d ? e : d;
                exact += e == 0.0;
            }
            total += dim;
            cr_assert_leq(d, 1.0 / 255 + 1e-6, "%s: %s differs by %g (more than 1/255)", s_specs[s],
                          s_files[f], d);
            worst = d > worst ? d : worst;
            free(theirs);
            free(mine);
        }
    }
    cr_log_info("image parity: %zu features, %zu identical, largest difference %g (%g grey "
                "levels)",
                total, exact, worst, worst * 255);
    fl_test_rmtree(dir);
    free(script);
    free(dir);
}
