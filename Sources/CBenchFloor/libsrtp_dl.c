// Debian's libsrtp2 through dlopen/dlsym: the product does not link libsrtp2 (bench only).
// The structures below mirror /usr/include/srtp2/srtp.h of libsrtp 2.x (2.3 ... 2.5 share
// this layout); bench_libsrtp_open refuses a library whose version string is not "libsrtp2 2.*".
#include "CBenchFloor.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint32_t cipher_type;   // srtp_cipher_type_id_t
    int cipher_key_len;
    uint32_t auth_type;     // srtp_auth_type_id_t
    int auth_key_len;
    int auth_tag_len;
    int sec_serv;           // srtp_sec_serv_t
} m_crypto_policy;

typedef struct { int type; unsigned int value; } m_ssrc;   // srtp_ssrc_t (type: ssrc_specific = 1)

typedef struct { unsigned char *key; unsigned char *mki_id; unsigned int mki_size; } m_master_key;

typedef struct m_policy {
    m_ssrc ssrc;
    m_crypto_policy rtp;
    m_crypto_policy rtcp;
    unsigned char *key;
    m_master_key **keys;
    unsigned long num_master_keys;
    void *deprecated_ekt;
    unsigned long window_size;
    int allow_repeat_tx;
    int *enc_xtn_hdr;
    int enc_xtn_hdr_count;
    struct m_policy *next;
} m_policy;

_Static_assert(sizeof(m_crypto_policy) == 24, "srtp_crypto_policy_t layout");
_Static_assert(sizeof(m_policy) == 128, "srtp_policy_t layout (LP64)");

static int (*p_init)(void);
static int (*p_create)(void **, const m_policy *);
static int (*p_protect_mki)(void *, void *, int *, unsigned int, unsigned int);
static int (*p_dealloc)(void *);
static void (*p_rtp_default)(m_crypto_policy *);
static void (*p_rtcp_default)(m_crypto_policy *);
static const char *(*p_version)(void);
static int opened = 0;

int bench_libsrtp_open(char *why, size_t why_len) {
    if (opened) return 0;
    void *h = dlopen("libsrtp2.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, why_len, "%s (install it: apt-get install libsrtp2-1)", dlerror());
        return -1;
    }
#define LOAD(var, name) do { *(void **)(&var) = dlsym(h, name); \
        if (!var) { snprintf(why, why_len, "libsrtp2.so.1 has no %s", name); return -1; } } while (0)
    LOAD(p_init, "srtp_init");
    LOAD(p_create, "srtp_create");
    LOAD(p_protect_mki, "srtp_protect_mki");
    LOAD(p_dealloc, "srtp_dealloc");
    LOAD(p_rtp_default, "srtp_crypto_policy_set_rtp_default");
    LOAD(p_rtcp_default, "srtp_crypto_policy_set_rtcp_default");
    LOAD(p_version, "srtp_get_version_string");
#undef LOAD
    const char *v = p_version();
    if (!v || strncmp(v, "libsrtp2 2.", 11) != 0) {
        snprintf(why, why_len, "unexpected libsrtp version \"%s\" (the bench mirrors the 2.x policy layout)", v ? v : "?");
        return -1;
    }
    (void)p_init();
    opened = 1;
    return 0;
}

const char *bench_libsrtp_version(void) { return opened ? p_version() : ""; }

void *bench_libsrtp_create(uint32_t ssrc, const uint8_t key_and_salt[30], const uint8_t *mki, int mki_len, int *status) {
    if (!opened) { *status = -1; return NULL; }
    m_policy policy;
    memset(&policy, 0, sizeof(policy));
    p_rtp_default(&policy.rtp);
    p_rtcp_default(&policy.rtcp);
    policy.ssrc.type = 1;   // ssrc_specific
    policy.ssrc.value = ssrc;
    policy.window_size = 1024;
    policy.allow_repeat_tx = 1;
    unsigned char key[30], id[16];
    memcpy(key, key_and_salt, 30);
    if (mki_len > 16) mki_len = 16;
    if (mki_len > 0) memcpy(id, mki, (size_t)mki_len);
    m_master_key master = { key, id, (unsigned int)mki_len };
    m_master_key *keys[1] = { &master };
    if (mki_len > 0) { policy.keys = keys; policy.num_master_keys = 1; } else { policy.key = key; }
    void *session = NULL;
    *status = p_create(&session, &policy);   // copies the key material
    return *status == 0 ? session : NULL;
}

int bench_libsrtp_protect(void *session, void *pkt, int *len, int use_mki) {
    return p_protect_mki(session, pkt, len, (unsigned int)use_mki, 0);
}

void bench_libsrtp_dealloc(void *session) { if (session && p_dealloc) p_dealloc(session); }
