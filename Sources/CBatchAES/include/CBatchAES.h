#ifndef MBMS_CBATCHAES_H
#define MBMS_CBATCHAES_H

// Batched AES counter mode (RFC 3711 4.1.1 "AES-CM"; NIST SP 800-38A 6.5 CTR): the keystreams
// of many packets of a batch from one AES-ECB call over their counter blocks, then one
// vectorised XOR per packet; or, on CPUs with VAES, an own VAES kernel that XORs the keystream
// straight into the packets (see aes_cm_batch.c). Only CryptoCore calls this.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A keyed AES-ECB context (and VAES round keys) plus a preallocated counter/keystream scratch. Mutated per call:
/// one thread at a time (duplicate it for another thread).
typedef struct mbms_bcm mbms_bcm;

/// XOR implementations; values are stable (tests use them).
enum {
    MBMS_BCM_XOR_PORTABLE = 0,  ///< 8 bytes at a time (memcpy loads), any CPU
    MBMS_BCM_XOR_AVX2 = 1,      ///< 32 bytes at a time, unaligned AVX2 loads/stores
};

/// AES implementations; values are stable (tests use them).
enum {
    MBMS_BCM_AES_OPENSSL = 0,   ///< counter blocks through one OpenSSL AES-ECB call per chunk, any CPU
    MBMS_BCM_AES_VAES = 1,      ///< own VAES kernel (2 blocks per instruction), CPUs with VAES + AVX2
};

/// Keys a context (key_len 16, 24 or 32). NULL on a bad length or an OpenSSL failure.
mbms_bcm *mbms_bcm_new(const uint8_t *key, size_t key_len);
/// An independent context with the same key (its own scratch). NULL on failure.
mbms_bcm *mbms_bcm_dup(const mbms_bcm *c);
/// Zeroes the scratch (it held keystream) and the round keys, and frees. NULL is allowed.
void mbms_bcm_free(mbms_bcm *c);

/// For i in 0..<n: data[i][0..<len[i]] ^= AES-CM keystream from counter block ivs[16 i ..< 16 i + 16]
/// (block j = AES_k(IV_i + j mod 2^128), big-endian). data[i] may be NULL when len[i] is 0;
/// buffers must not overlap. Allocates nothing. Returns 1 on success, 0 on an OpenSSL failure.
int mbms_bcm_xor(mbms_bcm *c, size_t n, const uint8_t *ivs, void *const *data, const size_t *len);

/// dst[0..<len] ^= src[0..<len] with the active XOR implementation (exposed for tests).
void mbms_bcm_xor_bytes(uint8_t *dst, const uint8_t *src, size_t len);

/// The active XOR implementation (AVX2 when CPUID reports it, unless MBMS_BATCHAES_XOR=portable).
int mbms_bcm_xor_implementation(void);
const char *mbms_bcm_xor_implementation_name(int impl);
int mbms_bcm_xor_available(int impl);
/// Test/benchmark hook: selects `impl` (-1: back to the environment/CPUID choice). Returns 0 and
/// changes nothing when unavailable.
int mbms_bcm_xor_select(int impl);

/// The active AES implementation: VAES when CPUID reports VAES, AVX2, AES-NI and OS YMM
/// support, unless MBMS_BATCHAES=openssl (MBMS_BATCHAES=vaes asks for it explicitly).
int mbms_bcm_aes_implementation(void);
const char *mbms_bcm_aes_implementation_name(int impl);
int mbms_bcm_aes_available(int impl);
/// Test/benchmark hook: selects `impl` (-1: back to the environment/CPUID choice). Returns 0 and
/// changes nothing when unavailable. Applies to existing contexts too (their round keys are
/// expanded at creation whenever the CPU has AES-NI).
int mbms_bcm_aes_select(int impl);

/// Blocks per ECB call (the scratch size / 16): bounds the work set to the L1 cache.
size_t mbms_bcm_chunk_blocks(void);

#ifdef __cplusplus
}
#endif
#endif
