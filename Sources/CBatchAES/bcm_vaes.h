#ifndef MBMS_BCM_VAES_H
#define MBMS_BCM_VAES_H
// Private to CBatchAES: the VAES (+AVX2, AES-NI) AES counter-mode kernel of aes_vaes.c, used
// by aes_cm_batch.c when CPUID reports VAES (see the header comment of aes_cm_batch.c).

#include <stddef.h>
#include <stdint.h>

/// Round keys 0...Nr (at most 14 for AES-256), each 16-byte round key stored twice (both
/// 128-bit lanes of a ymm register), so the kernel loads them with plain 256-bit loads.
/// Must be 32-byte aligned.
#define BCM_VAES_MAX_ROUNDS 14
typedef struct {
    uint8_t rk[BCM_VAES_MAX_ROUNDS + 1][32];
    int rounds;   // Nr: 10, 12 or 14 (FIPS 197 5.1); 0 when not expanded
} bcm_vaes_key;

/// 1 when this CPU and OS can run the kernel: AES-NI (CPUID.1:ECX bit 25), AVX with OS YMM
/// state (OSXSAVE, XCR0 bits 1 and 2), AVX2 (CPUID.7.0:EBX bit 5) and VAES (CPUID.7.0:ECX bit 9).
int bcm_vaes_supported(void);

/// FIPS 197 5.2 key expansion (key_len 16, 24 or 32) with AES-NI; returns 0 (and leaves
/// `out->rounds` 0) on a bad length or when AES-NI is missing.
int bcm_vaes_expand_key(bcm_vaes_key *out, const uint8_t *key, size_t key_len);

/// For i in 0..<n: data[i][0..<len[i]] ^= AES-CTR keystream from counter block ivs[16 i...]
/// (same contract as mbms_bcm_xor). Only call when bcm_vaes_supported() and the key was expanded.
void bcm_vaes_ctr_xor(const bcm_vaes_key *k, size_t n, const uint8_t *ivs, void *const *data, const size_t *len);

#endif
