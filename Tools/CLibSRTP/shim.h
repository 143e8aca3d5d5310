#ifndef MBMS_CLIBSRTP_SHIM_H
#define MBMS_CLIBSRTP_SHIM_H
// Debian's libsrtp2 (cisco/libsrtp 2.5, crypto from NSS): the independent SRTP peer for
// interop tests and the comparison benchmark. Test/benchmark only.
#include <srtp2/srtp.h>
#include <string.h>
#include <stdlib.h>

/// One libsrtp session for a single SSRC with a single master key carrying `mki`.
/// rtp_cipher: 1 = AES-CM-128 + HMAC-SHA1-80, 0 = NULL cipher + HMAC-SHA1-80.
/// rtcp_encrypt: 1 = AES-CM-128 + HMAC-SHA1-80 for RTCP, 0 = NULL cipher + HMAC-SHA1-80.
/// inbound: 1 for a receiver session. Returns 0 on success (srtp_err_status_t otherwise).
static inline int mbms_libsrtp_create(srtp_t *session, int inbound, uint32_t ssrc,
                                      const uint8_t *key_and_salt, int key_len,
                                      const uint8_t *mki, int mki_len,
                                      int rtp_cipher, int rtcp_encrypt) {
    // srtp_init on every call: a static "done" flag would be per Swift module (this header is
    // compiled into each), and another test module may have shut libsrtp down. A second
    // srtp_init reports an error that is harmless; srtp_create below fails if it mattered.
    (void)srtp_init();
    srtp_policy_t policy;
    memset(&policy, 0, sizeof(policy));
    if (key_len == 32) {
        if (rtp_cipher) srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtp);
        else srtp_crypto_policy_set_null_cipher_hmac_sha1_80(&policy.rtp);
    } else {
        if (rtp_cipher) srtp_crypto_policy_set_rtp_default(&policy.rtp);
        else srtp_crypto_policy_set_null_cipher_hmac_sha1_80(&policy.rtp);
    }
    if (rtcp_encrypt) {
        if (key_len == 32) srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtcp);
        else srtp_crypto_policy_set_rtcp_default(&policy.rtcp);
    } else {
        srtp_crypto_policy_set_null_cipher_hmac_sha1_80(&policy.rtcp);
    }
    policy.ssrc.type = inbound ? ssrc_specific : ssrc_specific;
    policy.ssrc.value = ssrc;
    policy.window_size = 1024;
    policy.allow_repeat_tx = 1;
    policy.next = NULL;
    static srtp_master_key_t master;
    static srtp_master_key_t *keys[1];
    uint8_t *key_copy = (uint8_t *)malloc(64);
    uint8_t *mki_copy = (uint8_t *)malloc(16);
    memcpy(key_copy, key_and_salt, (size_t)key_len + 14);
    if (mki_len > 0) memcpy(mki_copy, mki, (size_t)mki_len);
    master.key = key_copy;
    master.mki_id = mki_copy;
    master.mki_size = (unsigned int)mki_len;
    keys[0] = &master;
    if (mki_len > 0) {
        policy.keys = keys;
        policy.num_master_keys = 1;
        policy.key = NULL;
    } else {
        policy.key = key_copy;
    }
    int rc = (int)srtp_create(session, &policy);
    free(key_copy);
    free(mki_copy);
    return rc;
}

static inline int mbms_libsrtp_protect(srtp_t s, void *pkt, int *len, int use_mki) {
    return (int)srtp_protect_mki(s, pkt, len, use_mki, 0);
}
static inline int mbms_libsrtp_unprotect(srtp_t s, void *pkt, int *len, int use_mki) {
    return (int)srtp_unprotect_mki(s, pkt, len, use_mki);
}
static inline int mbms_libsrtp_protect_rtcp(srtp_t s, void *pkt, int *len, int use_mki) {
    return (int)srtp_protect_rtcp_mki(s, pkt, len, use_mki, 0);
}
static inline int mbms_libsrtp_unprotect_rtcp(srtp_t s, void *pkt, int *len, int use_mki) {
    return (int)srtp_unprotect_rtcp_mki(s, pkt, len, use_mki);
}
#endif
