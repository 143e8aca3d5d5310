#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "CBenchFloor.h"
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

struct bench_floor {
    EVP_CIPHER_CTX *aes;
    HMAC_CTX *hmac;
    EVP_MAC_CTX *mac;
    SHA_CTX inner, outer;
    int mode;
};

bench_floor *bench_floor_new(const uint8_t key[16], const uint8_t auth_key[20], int mode) {
    bench_floor *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->mode = mode;
    f->aes = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(f->aes, EVP_aes_128_ctr(), NULL, key, NULL);
    if (mode == 2) {
        uint8_t pad[64];
        memset(pad, 0x36, 64);
        for (int i = 0; i < 20; i++) pad[i] ^= auth_key[i];
        SHA1_Init(&f->inner); SHA1_Update(&f->inner, pad, 64);
        memset(pad, 0x5c, 64);
        for (int i = 0; i < 20; i++) pad[i] ^= auth_key[i];
        SHA1_Init(&f->outer); SHA1_Update(&f->outer, pad, 64);
    } else if (mode == 0) {
        f->hmac = HMAC_CTX_new();
        HMAC_Init_ex(f->hmac, auth_key, 20, EVP_sha1(), NULL);
    } else {
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        f->mac = EVP_MAC_CTX_new(mac);
        EVP_MAC_free(mac);
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA1", 0);
        params[1] = OSSL_PARAM_construct_end();
        EVP_MAC_init(f->mac, auth_key, 20, params);
    }
    return f;
}

void bench_floor_free(bench_floor *f) {
    if (!f) return;
    EVP_CIPHER_CTX_free(f->aes);
    if (f->hmac) HMAC_CTX_free(f->hmac);
    if (f->mac) EVP_MAC_CTX_free(f->mac);
    free(f);
}

static int tag(bench_floor *f, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[20]) {
    if (f->mode == 2) {
        SHA_CTX c = f->inner;
        uint8_t inner[20];
        SHA1_Update(&c, a, alen);
        if (blen) SHA1_Update(&c, b, blen);
        SHA1_Final(inner, &c);
        c = f->outer;
        SHA1_Update(&c, inner, 20);
        return SHA1_Final(out, &c);
    }
    if (f->mode == 0) {
        unsigned int n = 0;
        if (!HMAC_Init_ex(f->hmac, NULL, 0, NULL, NULL)) return 0;
        HMAC_Update(f->hmac, a, alen);
        if (blen) HMAC_Update(f->hmac, b, blen);
        return HMAC_Final(f->hmac, out, &n);
    }
    size_t n = 0;
    if (!EVP_MAC_init(f->mac, NULL, 0, NULL)) return 0;
    EVP_MAC_update(f->mac, a, alen);
    if (blen) EVP_MAC_update(f->mac, b, blen);
    return EVP_MAC_final(f->mac, out, &n, 20);
}

int bench_floor_protect(bench_floor *f, uint8_t *buf, size_t len, size_t header_len, const uint8_t salt[14], uint32_t roc) {
    // RFC 3711 4.1.1: IV = (k_s << 16) XOR (SSRC << 64) XOR (i << 16).
    uint8_t iv[16];
    memcpy(iv, salt, 14);
    iv[14] = iv[15] = 0;
    for (int i = 0; i < 4; i++) iv[4 + i] ^= buf[8 + i];
    iv[8] ^= (uint8_t)(roc >> 24); iv[9] ^= (uint8_t)(roc >> 16); iv[10] ^= (uint8_t)(roc >> 8); iv[11] ^= (uint8_t)roc;
    iv[12] ^= buf[2]; iv[13] ^= buf[3];
    int outl = 0;
    if (!EVP_EncryptInit_ex(f->aes, NULL, NULL, NULL, iv)) return 0;
    if (!EVP_EncryptUpdate(f->aes, buf + header_len, &outl, buf + header_len, (int)(len - header_len))) return 0;
    uint8_t r[4] = {(uint8_t)(roc >> 24), (uint8_t)(roc >> 16), (uint8_t)(roc >> 8), (uint8_t)roc};
    uint8_t digest[20];
    if (!tag(f, buf, len, r, 4, digest)) return 0;
    memset(buf + len, 0, 6);              // MKI position (value irrelevant to cost)
    memcpy(buf + len + 6, digest, 10);
    return 1;
}

int bench_floor_aes_only(bench_floor *f, uint8_t *buf, size_t n, const uint8_t iv[16]) {
    int outl = 0;
    if (!EVP_EncryptInit_ex(f->aes, NULL, NULL, NULL, iv)) return 0;
    return EVP_EncryptUpdate(f->aes, buf, &outl, buf, (int)n);
}

int bench_floor_hmac_only(bench_floor *f, const uint8_t *buf, size_t n, uint8_t out[20]) {
    return tag(f, buf, n, NULL, 0, out);
}
