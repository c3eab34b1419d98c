/* fl_zap: the ZAP handler and the check of a proven key against the connection's. */
#include "fl_zap.h"
#include "fl_error.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_MAX_PARTS                                                                                \
    8 /* of a ZAP request: version, id, domain, address, identity, mechanism, key                  \
       */

struct fl_zap {
    void *sock; /* REP on inproc://zeromq.zap.01 */
};

fl_zap_t *fl_zap_new(void *ctx)
{
    fl_zap_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->sock = zmq_socket(ctx, ZMQ_REP);
    if (!self->sock || zmq_bind(self->sock, "inproc://zeromq.zap.01") != 0) {
        fl_error_set("cannot bind the ZAP handler: %s", zmq_strerror(errno));
        fl_zap_destroy(&self);
    }
    return self;
}

void fl_zap_destroy(fl_zap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->sock)
        zmq_close((*self_p)->sock);
    free(*self_p);
    *self_p = NULL;
}

void *fl_zap_socket(fl_zap_t *self)
{
    return self->sock;
}

/* Send the reply: version, request id, status, its text, User-Id, metadata. */
static void s_reply(fl_zap_t *self, zmq_msg_t *request_id, bool ok, const char *user_id)
{
    zmq_send(self->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(self->sock, zmq_msg_data(request_id), zmq_msg_size(request_id), ZMQ_SNDMORE);
    zmq_send(self->sock, ok ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(self->sock, ok ? "OK" : "not enrolled", ok ? 2 : 12, ZMQ_SNDMORE);
    zmq_send(self->sock, user_id, strlen(user_id), ZMQ_SNDMORE);
    zmq_send(self->sock, "", 0, 0);
}

void fl_zap_answer(fl_zap_t *self, const fl_allowlist_t *allow)
{
    zmq_msg_t part[S_MAX_PARTS];
    int n = 0, more = 1;
    while (more && n < S_MAX_PARTS) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[n]);
            break;
        }
        more = zmq_msg_more(&part[n]);
        n++;
    }
    if (n >= 6) {
        bool ok = zmq_msg_size(&part[5]) == 5 && memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
                  n >= 7 && zmq_msg_size(&part[6]) == FL_BOX_PK_BYTES &&
                  fl_allowlist_has_curve(allow, zmq_msg_data(&part[6]));
        if (!ok) {
            char addr[64] = "", shown[160];
            size_t al =
                zmq_msg_size(&part[3]) < sizeof addr - 1 ? zmq_msg_size(&part[3]) : sizeof addr - 1;
            memcpy(addr, zmq_msg_data(&part[3]), al);
            fl_log(FL_LOG_WARN, "handshake_refused", "address=%s reason=\"key not enrolled\"",
                   fl_log_str(addr, shown, sizeof shown));
        }
        /* The User-Id is the client's CurveZMQ key: messages carry it, and a Hello's proven
         * key is checked against it. */
        char uid[FL_ZAP_USER_ID_LEN] = "";
        if (ok)
            sodium_bin2hex(uid, sizeof uid, zmq_msg_data(&part[6]), FL_BOX_PK_BYTES);
        s_reply(self, &part[1], ok, uid);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

bool fl_zap_key_ok(const uint8_t key[FL_SIGN_PK_BYTES], const char *user_id)
{
    uint8_t x[FL_BOX_PK_BYTES];
    char hex[FL_ZAP_USER_ID_LEN];
    if (crypto_sign_ed25519_pk_to_curve25519(x, key) != 0)
        return false;
    sodium_bin2hex(hex, sizeof hex, x, sizeof x);
    return strcmp(hex, user_id) == 0;
}
