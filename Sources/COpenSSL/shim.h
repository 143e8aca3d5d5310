#ifndef MBMS_COPENSSL_SHIM_H
#define MBMS_COPENSSL_SHIM_H

// The only door to OpenSSL. CryptoCore is the only Swift module that imports it.
// Low-level SHA1_* calls are deprecated in OpenSSL 3 but remain exported and are the
// fastest way to reuse precomputed HMAC inner/outer states per packet.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// MARK: - HMAC-SHA1 with precomputed inner/outer states (RFC 2104)

typedef struct {
    SHA_CTX inner;
    SHA_CTX outer;
} mbms_hmac_sha1_state;

static inline mbms_hmac_sha1_state *mbms_hmac_sha1_new(const uint8_t *key, size_t key_len) {
    mbms_hmac_sha1_state *s = (mbms_hmac_sha1_state *)calloc(1, sizeof(mbms_hmac_sha1_state));
    if (s == NULL) return NULL;
    uint8_t block[SHA_CBLOCK];
    memset(block, 0, sizeof(block));
    if (key_len > SHA_CBLOCK) {
        SHA1(key, key_len, block);
    } else if (key_len > 0) {
        memcpy(block, key, key_len);
    }
    uint8_t pad[SHA_CBLOCK];
    for (size_t i = 0; i < SHA_CBLOCK; i++) pad[i] = block[i] ^ 0x36;
    SHA1_Init(&s->inner);
    SHA1_Update(&s->inner, pad, SHA_CBLOCK);
    for (size_t i = 0; i < SHA_CBLOCK; i++) pad[i] = block[i] ^ 0x5c;
    SHA1_Init(&s->outer);
    SHA1_Update(&s->outer, pad, SHA_CBLOCK);
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    return s;
}

static inline void mbms_hmac_sha1_free(mbms_hmac_sha1_state *s) {
    if (s == NULL) return;
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

/// HMAC-SHA1(key, a || b) into out[20]; either part may be empty.
static inline void mbms_hmac_sha1_2(const mbms_hmac_sha1_state *s,
                                    const void *a, size_t a_len,
                                    const void *b, size_t b_len,
                                    uint8_t *out) {
    SHA_CTX c = s->inner;
    if (a_len) SHA1_Update(&c, a, a_len);
    if (b_len) SHA1_Update(&c, b, b_len);
    uint8_t inner[SHA_DIGEST_LENGTH];
    SHA1_Final(inner, &c);
    c = s->outer;
    SHA1_Update(&c, inner, SHA_DIGEST_LENGTH);
    SHA1_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof(c));
}

// MARK: - AES counter mode (EVP, keyed once; only the IV is set per call)

static inline EVP_CIPHER_CTX *mbms_aes_ctr_new(const uint8_t *key, size_t key_len) {
    const EVP_CIPHER *cipher = NULL;
    switch (key_len) {
    case 16: cipher = EVP_aes_128_ctr(); break;
    case 24: cipher = EVP_aes_192_ctr(); break;
    case 32: cipher = EVP_aes_256_ctr(); break;
    default: return NULL;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return NULL;
    if (EVP_EncryptInit_ex(ctx, cipher, NULL, key, NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/// data ^= AES-CM keystream starting at counter block iv. Returns 1 on success.
static inline int mbms_aes_ctr_xor(EVP_CIPHER_CTX *ctx, const uint8_t *iv, uint8_t *data, size_t len) {
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1) return 0;
    if (len == 0) return 1;
    int outl = 0;
    if (EVP_EncryptUpdate(ctx, data, &outl, data, (int)len) != 1) return 0;
    return outl == (int)len;
}

/// out = AES-CM keystream (len bytes) starting at counter block iv.
static inline int mbms_aes_ctr_keystream(EVP_CIPHER_CTX *ctx, const uint8_t *iv, uint8_t *out, size_t len) {
    memset(out, 0, len);
    return mbms_aes_ctr_xor(ctx, iv, out, len);
}

// MARK: - AES-CBC (one shot; padding per RFC 2630 / PKCS#7 when pad != 0)

/// Returns the output length, or -1 on failure. out must hold in_len + 16 bytes.
static inline long mbms_aes_cbc(int encrypt, const uint8_t *key, size_t key_len, const uint8_t *iv,
                                const uint8_t *in, size_t in_len, uint8_t *out, int pad) {
    const EVP_CIPHER *cipher = NULL;
    switch (key_len) {
    case 16: cipher = EVP_aes_128_cbc(); break;
    case 24: cipher = EVP_aes_192_cbc(); break;
    case 32: cipher = EVP_aes_256_cbc(); break;
    default: return -1;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return -1;
    long result = -1;
    int l1 = 0, l2 = 0;
    if (EVP_CipherInit_ex(ctx, cipher, NULL, key, iv, encrypt) != 1) goto done;
    EVP_CIPHER_CTX_set_padding(ctx, pad ? 1 : 0);
    if (EVP_CipherUpdate(ctx, out, &l1, in, (int)in_len) != 1) goto done;
    if (EVP_CipherFinal_ex(ctx, out + l1, &l2) != 1) goto done;
    result = (long)l1 + (long)l2;
done:
    EVP_CIPHER_CTX_free(ctx);
    return result;
}

// MARK: - Digests and one-shot HMAC

static inline int mbms_sha1(const void *data, size_t len, uint8_t *out) {
    return SHA1((const unsigned char *)data, len, out) != NULL;
}

static inline int mbms_md5(const void *data, size_t len, uint8_t *out) {
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_md5(), NULL) == 1 && n == 16;
}

static inline int mbms_sha256(const void *data, size_t len, uint8_t *out) {
    return SHA256((const unsigned char *)data, len, out) != NULL;
}

static inline int mbms_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len, uint8_t *out) {
    unsigned int out_len = 0;
    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, len, out, &out_len) != NULL && out_len == 32;
}

// MARK: - Misc

static inline unsigned long mbms_openssl_version_num(void) { return OpenSSL_version_num(); }
static inline const char *mbms_openssl_version_text(void) { return OpenSSL_version(OPENSSL_VERSION); }
static inline int mbms_rand_bytes(uint8_t *out, size_t len) { return RAND_bytes(out, (int)len); }
static inline void mbms_cleanse(void *p, size_t len) { OPENSSL_cleanse(p, len); }
static inline int mbms_memcmp(const void *a, const void *b, size_t len) { return CRYPTO_memcmp(a, b, len); }

#endif
