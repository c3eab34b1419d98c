/* fedtl keygen: create a node's Ed25519 identity (PREFIX.key, PREFIX.pub). */
#include "fedtl.h"
#include "fl_error.h"
#include "fl_keys.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_keygen(int argc, char **argv);

static const char s_keygen_usage[] =
    "usage: fedtl keygen --out PREFIX [--name NAME]\n"
    "Create a node identity (an Ed25519 key pair; its X25519 form serves CurveZMQ and sealed\n"
    "updates). Writes PREFIX.key, the secret key (mode 0600: keep it private, never copy it\n"
    "off the node), and PREFIX.pub, the public key line \"fedtl-ed25519 <base64> NAME\" to\n"
    "enrol in the coordinator's allow-list or to pin the coordinator on branches. Refuses to\n"
    "overwrite an existing PREFIX.key.\n"
    "  --out PREFIX   path prefix of the two files\n"
    "  --name NAME    node name (default: the host name; no spaces, at most 63 characters)\n";

enum { O_OUT = 256, O_NAME, O_HELP };

static const struct option s_keygen_long[] = {{"out", required_argument, 0, O_OUT},
                                              {"name", required_argument, 0, O_NAME},
                                              {"help", no_argument, 0, O_HELP},
                                              {0, 0, 0, 0}};

static int s_keygen_fail(int rc)
{
    const char *msg = fl_error_msg();
    fprintf(stderr, "fedtl keygen: %s\n", msg[0] ? msg : fl_strerror(rc));
    return 1;
}

int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL, *name = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", s_keygen_long, NULL)) != -1) {
        switch (c) {
        case O_OUT:
            out = optarg;
            break;
        case O_NAME:
            name = optarg;
            break;
        case O_HELP:
            fputs(s_keygen_usage, stdout);
            return 0;
        case ':':
            fprintf(stderr, "fedtl keygen: option '%s' needs an argument\n%s", argv[optind - 1],
                    s_keygen_usage);
            return 2;
        default:
            fprintf(stderr, "fedtl keygen: unknown option '%s'\n%s", argv[optind - 1],
                    s_keygen_usage);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fedtl keygen: unexpected argument '%s'\n%s", argv[optind], s_keygen_usage);
        return 2;
    }
    if (!out || !out[0]) {
        fprintf(stderr, "fedtl keygen: --out is required\n%s", s_keygen_usage);
        return 2;
    }
    int rc = fl_keygen(out, name);
    if (rc)
        return s_keygen_fail(rc);

    size_t plen = strlen(out) + 5;
    char *pub_path = malloc(plen);
    if (!pub_path)
        return s_keygen_fail(FL_ENOMEM);
    snprintf(pub_path, plen, "%s.pub", out);
    struct fl_pubkey pk;
    rc = fl_pubkey_load(pub_path, &pk);
    if (rc == 0) {
        char line[256], id[FL_KEY_ID_LEN];
        fl_pubkey_format(pk.sign_pk, pk.name, line, sizeof line);
        fl_key_id(pk.sign_pk, id);
        printf("wrote %s.key (secret, mode 0600)\nwrote %s (public)\nkey id %s\n%s\n", out,
               pub_path, id, line);
    }
    free(pub_path);
    return rc ? s_keygen_fail(rc) : 0;
}
