/* fedtl keygen: create a node's Ed25519 identity (PREFIX.key, PREFIX.pub). */
#include "fedtl.h"
#include "fl_error.h"
#include "fl_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct fl_option s_keygen_options[] = {
    TOOL_PATH("out", out, FL_OPTION_REQUIRED, "PREFIX", "path prefix of the two files"),
    {"name", .type = FL_OPTION_STRING, TOOL_ARG, TOOL_FIELD(name), .max_len = 63, .metavar = "NAME",
     .help = "node name (unset: the host name; no spaces, at most 63 characters)"},
};

const struct fl_options_spec tool_keygen_spec = TOOL_SPEC(
    "keygen",
    "Create a node identity (an Ed25519 key pair; its X25519 form serves CurveZMQ and sealed\n"
    "updates). Writes PREFIX.key, the secret key (mode 0600: keep it private, never copy it\n"
    "off the node), and PREFIX.pub, the public key line \"fedtl-ed25519 <base64> NAME\" to\n"
    "enrol in the coordinator's allow-list or to pin the coordinator on branches. Refuses to\n"
    "overwrite an existing PREFIX.key.\n",
    s_keygen_options);

static int s_keygen_fail(int rc)
{
    const char *msg = fl_error_msg();
    fprintf(stderr, "fedtl keygen: %s\n", msg[0] ? msg : fl_strerror(rc));
    return 1;
}

int cmd_keygen(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_keygen_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    const char *out = o.out;
    rc = fl_keygen(out, o.name);
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
