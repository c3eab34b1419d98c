/* bench_basedist: base-model distribution by a real fedtl-coordinator process to 10
 * concurrent CURVE branches in this process. Each branch follows the protocol: Hello without a
 * base hash -> Welcome -> BaseRequest{hash, 0, credit} -> BaseChunks, asking for one more
 * chunk as each arrives (so `credit` chunks stay in flight), hashing the chunks in order
 * into a /dev/null-like sink (BLAKE2b-256 over the file as its content hash is defined in
 * fl_modelfile.h: bytes [0, 24) and [56, end), the hash field itself skipped and compared),
 * and checking the hash equals the Welcome's and the coordinator's signature over it.
 * The base is ~100 MB: mlp with a wide input (fc1 = in_dim x 256 floats). Every case (chunk
 * size, credit, round) gets a coordinator of its own (--chunk-size), since a coordinator sends
 * one key the base at most twice per 10 minutes. Cases are interleaved over rounds and medians
 * reported. Both ends share the machine's cores. */
#include "bench_fed.h"

#include "fl_codec.h"
#include "fl_keys.h"
#include "fl_model.h"
#include "fl_net.h"
#include "fl_seal.h"

#include <math.h>
#include <sodium.h>
#include <zmq.h>

#define S_FED  "benchfed"
#define S_MAXB 64

struct s_dl {
    struct fl_identity *id;       /* branch key */
    void *sock;                   /* DEALER */
    uint8_t hash[FL_HASH_BYTES];  /* from Welcome */
    uint64_t size, next_req, got; /* base size, next offset to ask for, bytes hashed */
    uint32_t chunk;               /* chunk size from Welcome */
    crypto_generichash_state st;  /* running hash */
    double t0, t_done;            /* Hello sent, hash verified */
    bool done, ok;                /* finished; hash and signature good */
};

static int s_request(struct s_dl *d, uint64_t off, uint32_t credit)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__BaseRequest q = FEDTL__BASE_REQUEST__INIT;
    q.base_hash = (ProtobufCBinaryData){32, d->hash};
    q.offset = off;
    q.credit = credit;
    env.body_case = FEDTL__ENVELOPE__BODY_BASE_REQUEST;
    env.base_request = &q;
    return fl_net_send(d->sock, NULL, 0, &env, 0, NULL);
}

/* One download by nb branches at `credit`; fills per-branch seconds, returns wall seconds
 * (negative on failure). */
static double s_download(const char *dir, const char *ep, const struct fl_identity *hq, int nb,
                         uint32_t credit, int io_threads, double *per)
{
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, io_threads);
    struct s_dl *d = calloc((size_t)nb, sizeof *d);
    zmq_pollitem_t *items = calloc((size_t)nb, sizeof *items);
    double wall = -1;
    char path[1200];
    for (int i = 0; i < nb; i++) {
        snprintf(path, sizeof path, "%s/b%03d.key", dir, i);
        if (!(d[i].id = fl_identity_load(path)) ||
            !(d[i].sock = fl_net_dealer(ctx, d[i].id, hq->box_pk, ep)))
            goto out;
        items[i] = (zmq_pollitem_t){d[i].sock, 0, ZMQ_POLLIN, 0};
    }
    double t0 = fl_now_s();
    for (int i = 0; i < nb; i++) {
        d[i].t0 = fl_now_s();
        s_fed_hello(d[i].sock, d[i].id, NULL, NULL, 0);
    }
    int done = 0;
    double end = t0 + 120;
    while (done < nb && fl_now_s() < end) {
        if (zmq_poll(items, nb, 100) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < nb; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            struct s_dl *b = &d[i];
            Fedtl__Envelope *env = NULL;
            int r;
            while ((r = fl_net_recv(b->sock, false, NULL, NULL, &env, NULL)) != 1) {
                if (r < 0)
                    continue;
                if (env->body_case == FEDTL__ENVELOPE__BODY_CHALLENGE) {
                    s_fed_hello(b->sock, b->id, NULL, env->challenge, 0);
                } else if (env->body_case == FEDTL__ENVELOPE__BODY_WELCOME && b->size == 0) {
                    const Fedtl__Welcome *w = env->welcome;
                    memcpy(b->hash, w->base_hash.data, 32);
                    b->size = w->base_size;
                    b->chunk = w->chunk_size;
                    b->ok = fl_verify_base(hq->sign_pk, b->hash, w->base_signature.data) == 0;
                    crypto_generichash_init(&b->st, NULL, 0, 32);
                    s_request(b, 0, credit);
                    b->next_req = (uint64_t)credit * b->chunk;
                } else if (env->body_case == FEDTL__ENVELOPE__BODY_BASE_CHUNK && !b->done) {
                    const Fedtl__BaseChunk *c = env->base_chunk;
                    if (c->offset != b->got) {
                        fprintf(stderr, "bench_basedist: out-of-order chunk %llu (want %llu)\n",
                                (unsigned long long)c->offset, (unsigned long long)b->got);
                        b->ok = false;
                    }
                    if (c->offset == 0 && c->data.len >= FL_MODELFILE_PREAMBLE) {
                        /* The content hash (fl_modelfile.h) covers [0, 24) and [56, end):
                         * not the hash field itself, which must hold the same value. */
                        crypto_generichash_update(&b->st, c->data.data, 24);
                        crypto_generichash_update(&b->st, c->data.data + FL_MODELFILE_PREAMBLE,
                                                  c->data.len - FL_MODELFILE_PREAMBLE);
                        b->ok = b->ok && crypto_verify_32(c->data.data + 24, b->hash) == 0;
                    } else {
                        crypto_generichash_update(&b->st, c->data.data, c->data.len);
                    }
                    b->got += c->data.len;
                    if (b->next_req < b->size) {
                        s_request(b, b->next_req, 1);
                        b->next_req += b->chunk;
                    }
                    if (b->got >= b->size) {
                        uint8_t h[FL_HASH_BYTES];
                        crypto_generichash_final(&b->st, h, 32);
                        b->ok = b->ok && crypto_verify_32(h, b->hash) == 0;
                        b->done = true;
                        b->t_done = fl_now_s();
                        done++;
                    }
                } else if (env->body_case == FEDTL__ENVELOPE__BODY_BYE) {
                    fprintf(stderr, "bench_basedist: bye: %s\n", env->bye->reason);
                }
                fl_wire_free(&env);
            }
        }
    }
    wall = fl_now_s() - t0;
    for (int i = 0; i < nb; i++) {
        per[i] = d[i].done ? d[i].t_done - d[i].t0 : -1;
        if (!d[i].done || !d[i].ok) {
            fprintf(stderr, "bench_basedist: branch %d: done=%d ok=%d got=%llu of %llu\n", i,
                    d[i].done, d[i].ok, (unsigned long long)d[i].got,
                    (unsigned long long)d[i].size);
            wall = -1;
        }
    }
out:
    for (int i = 0; i < nb; i++) {
        if (d[i].sock)
            zmq_close(d[i].sock);
        fl_identity_destroy(&d[i].id);
    }
    zmq_ctx_term(ctx);
    free(d);
    free(items);
    return wall;
}

static pid_t s_start_coord(const char *bin, const char *dir, const char *ep, long chunk,
                           long credit, int round)
{
    char coord[1100], key[1200], allow[1200], base[1200], state[1200], logp[1200], cs[32];
    snprintf(coord, sizeof coord, "%s/fedtl-coordinator", bin);
    snprintf(key, sizeof key, "%s/hq.key", dir);
    snprintf(allow, sizeof allow, "%s/allow", dir);
    snprintf(base, sizeof base, "%s/base.ftm", dir);
    snprintf(state, sizeof state, "%s/state-%ld-%ld-%d", dir, chunk, credit, round);
    snprintf(logp, sizeof logp, "%s/coord-%ld-%ld-%d.log", dir, chunk, credit, round);
    snprintf(cs, sizeof cs, "%ld", chunk);
    char *argv[] = {coord, "--key",       key,    "--allow",        allow,      "--base",
                    base,  "--state-dir", state,  "--endpoint",     (char *)ep, "--federation",
                    S_FED, "--method",    "lora", "--targets",      "fc1",      "--rank",
                    "4",   "--classes",   "0-9",  "--heartbeat-ms", "5000",     "--rounds",
                    "1",   "--min-start", "1000", "--chunk-size",   cs,         NULL};
    pid_t pid = fl_test_spawnv(argv, logp);
    /* Ready when it logs coordinator_start (it hashes the whole base first). */
    for (int i = 0; i < 300 && pid > 0; i++) {
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "grep -q coordinator_start '%s'", logp);
        if (system(cmd) == 0)
            return pid;
        usleep(50000);
    }
    fprintf(stderr, "bench_basedist: coordinator did not start (log %s)\n", logp);
    if (pid > 0) {
        kill(pid, SIGTERM);
        fl_test_wait(pid, 10);
    }
    return -1;
}

int main(int argc, char **argv)
{
    int nb = 10, in_dim = 97000, rounds = 3, io_threads = 1;
    long chunks[8] = {256 << 10, 1 << 20, 4 << 20}, credits[8] = {4, 8, 16};
    int nch = 3, ncr = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--branches"))
            nb = atoi(v);
        else if (!strcmp(a, "--in-dim"))
            in_dim = atoi(v);
        else if (!strcmp(a, "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(a, "--io-threads"))
            io_threads = atoi(v);
        else if (!strcmp(a, "--chunks"))
            nch = s_fed_parse_list(v, chunks, 8);
        else if (!strcmp(a, "--credits"))
            ncr = s_fed_parse_list(v, credits, 8);
        else {
            fprintf(stderr, "usage: bench_basedist [--branches 10] [--in-dim 97000] [--rounds 3]\n"
                            "       [--chunks 262144,1048576,4194304] [--credits 4,8,16] "
                            "[--io-threads 1]\n");
            return 2;
        }
    }
    if (nb < 1 || nb > S_MAXB || rounds < 1 || rounds > 32)
        return 2;
    if (sodium_init() < 0)
        return 1;
    s_fed_machine(stdout);
    char bin[1024], base[1200];
    s_fed_bin_dir(bin, sizeof bin);
    char *dir = fl_test_tmpdir("basedist");
    if (!dir || s_fed_keys(bin, dir, "b", nb) != 0)
        return 1;
    snprintf(base, sizeof base, "%s/base.ftm", dir);
    struct fl_base_file bf = {0};
    if (s_bench_random_base(base, "mlp", in_dim, 10, 0.0f, 1.0f, &bf) != 0) {
        fprintf(stderr, "bench_basedist: base: %s\n", fl_error_msg());
        return 1;
    }
    double size = (double)bf.map_len;
    fl_base_close(&bf);
    char key[1200];
    snprintf(key, sizeof key, "%s/hq.key", dir);
    struct fl_identity *hq = fl_identity_load(key);
    if (!hq)
        return 1;
    printf("bench=basedist_setup base_bytes=%.0f branches=%d io_threads=%d\n", size, nb,
           io_threads);
    fflush(stdout);
    int ncase = nch * ncr, fail = 0;
    double *mbs = calloc((size_t)(ncase * rounds), sizeof *mbs);
    double *per = calloc((size_t)(ncase * rounds * nb), sizeof *per);
    for (int r = 0; r < rounds && !fail; r++)
        for (int c = 0; c < nch && !fail; c++)
            for (int k = 0; k < ncr && !fail; k++) {
                char ep[64];
                snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", fl_test_free_port());
                pid_t pid = s_start_coord(bin, dir, ep, chunks[c], credits[k], r);
                if (pid < 0) {
                    fail = 1;
                    break;
                }
                int idx = (c * ncr + k) * rounds + r;
                double *pb = per + (size_t)idx * nb;
                double wall = s_download(dir, ep, hq, nb, (uint32_t)credits[k], io_threads, pb);
                kill(pid, SIGTERM);
                fl_test_wait(pid, 20);
                if (wall < 0) {
                    fail = 1;
                    break;
                }
                mbs[idx] = nb * size / wall / 1e6;
                double sorted[S_MAXB];
                memcpy(sorted, pb, sizeof(double) * (size_t)nb);
                double med = s_bench_median(sorted, nb);
                printf("bench=basedist chunk=%ld credit=%ld round=%d wall_s=%.3f total_mbps=%.1f "
                       "branch_s_median=%.3f branch_s_min=%.3f branch_s_max=%.3f per_branch_s=",
                       chunks[c], credits[k], r, wall, mbs[idx], med, sorted[0], sorted[nb - 1]);
                for (int i = 0; i < nb; i++)
                    printf("%s%.2f", i ? "," : "", pb[i]);
                printf("\n");
                fflush(stdout);
            }
    if (!fail) {
        printf("\n%d branches x %.1f MB, total MB/s (median of %d rounds; per-branch seconds, "
               "median branch of the median round)\n%-10s",
               nb, size / 1e6, rounds, "chunk");
        for (int k = 0; k < ncr; k++)
            printf("   credit %-3ld      ", credits[k]);
        printf("\n");
        for (int c = 0; c < nch; c++) {
            printf("%-7ldKiB", chunks[c] >> 10);
            for (int k = 0; k < ncr; k++) {
                int idx0 = (c * ncr + k) * rounds;
                double v[32], pb[S_MAXB];
                memcpy(v, mbs + idx0, sizeof(double) * (size_t)rounds);
                double med = s_bench_median(v, rounds);
                int mr = 0; /* the round closest to the median */
                for (int r = 1; r < rounds; r++)
                    if (fabs(mbs[idx0 + r] - med) < fabs(mbs[idx0 + mr] - med))
                        mr = r;
                memcpy(pb, per + (size_t)(idx0 + mr) * nb, sizeof(double) * (size_t)nb);
                printf("   %6.1f (%5.2f s)", med, s_bench_median(pb, nb));
            }
            printf("\n");
        }
    }
    fl_identity_destroy(&hq);
    free(mbs);
    free(per);
    fl_test_rmtree(dir);
    free(dir);
    return fail;
}
