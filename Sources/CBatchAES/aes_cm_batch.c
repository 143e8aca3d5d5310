// Batched AES counter mode (RFC 3711 4.1.1; NIST SP 800-38A 6.5).
//
// CTR keystream block j of a packet is E_k(T_j) with T_j = IV + j mod 2^128 (RFC 3711 4.1.1;
// SP 800-38A appendix B.1 "standard incrementing function" over the whole block). ECB
// encryption of the counter blocks T_0, T_1, ... is therefore exactly the CTR keystream. We
// write the counter blocks of many packets back to back into a scratch buffer, encrypt them
// with ONE EVP_EncryptUpdate on an AES-ECB context (padding off), and XOR each packet with its
// part. This replaces, per packet, EVP_EncryptInit_ex(iv) + EVP_EncryptUpdate (the per-call
// cost dominates short packets) with one call per chunk; OpenSSL is the AES implementation
// there (AES-NI, 8 blocks pipelined).
//
// On CPUs with VAES + AVX2 (+ AES-NI, OS YMM state) an own kernel replaces all of that
// (aes_vaes.c): per packet, counter blocks built in ymm registers, 16 blocks (8 registers,
// two blocks per VAESENC) encrypted interleaved, the keystream XORed straight into the packet
// bytes, no scratch round trip, no EVP call. Measured on the development EPYC (Zen 3,
// OpenSSL 3.0.22, clang -O3, batches of 32 packets, medians of 15 runs, C microbenchmark):
//
//                      OpenSSL-ECB path    VAES kernel
//   AES-128, 1200 B       ~199 ns            ~84 ns
//   AES-128,  160 B        ~33 ns            ~12 ns
//   AES-256, 1200 B       ~251 ns           ~109 ns
//   AES-256,  160 B        ~40 ns            ~16 ns
//
// (the OpenSSL path: ~130 ns of it is the ECB call at 1200 B, the rest counters and XOR). In
// the product (`mbms-gateway bench --cases crypto`, "mbms-gateway batch" rows, AES-128-CM +
// HMAC-SHA1-80, medians of 8 runs each on a shared 2-core VM, so +-10% noise) the batch protect
// went from ~679 to ~569 ns/packet at 1200 B and from ~162 to ~144 ns at 160 B; srtp-bench's
// "AES-CM batch only" row: ~195 -> ~82 ns (1200 B), ~34 -> ~12.5 ns (160 B). HMAC-SHA1 is
// now the whole rest of the batch row. The
// choice is made once per process by CPUID; MBMS_BATCHAES=openssl forces this file's OpenSSL
// path (and MBMS_BATCHAES=vaes asks for the kernel), mbms_bcm_aes_select is the test hook.
// The price is own AES code: it is checked byte for byte against OpenSSL's CTR for all three
// key sizes, every length 0...2048 and counters carrying out of 16/32/64 bits and wrapping
// mod 2^128 at every block position (BatchAESTests), and it is constant-time by construction
// (AES-NI/VAES only, no tables; branches only on lengths and counter values, which are public). Without VAES the OpenSSL path below runs unchanged.
//
// The scratch is a fixed 16 KiB (1024 blocks): large enough that the EVP call overhead is
// amortised over ~13 packets of 1200 bytes (or ~100 of 160), small enough that the keystream
// is still in L1 when it is XORed. A batch larger than that runs in several chunks; a packet
// may straddle two chunks. The scratch never grows, so a call never allocates.
#include "CBatchAES.h"
#include "bcm_vaes.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#ifndef BCM_CHUNK_BLOCKS
#define BCM_CHUNK_BLOCKS 1024
#endif

struct mbms_bcm {
    bcm_vaes_key vaes;  // first: 32-byte aligned (the struct is 64-byte aligned); rounds 0 = not expanded
    EVP_CIPHER_CTX *ecb;
    uint8_t *scratch;   // BCM_CHUNK_BLOCKS * 16 bytes, 64-byte aligned; holds keystream
};

size_t mbms_bcm_chunk_blocks(void) { return BCM_CHUNK_BLOCKS; }

// ---- AES implementation choice: once per process (CPUID), MBMS_BATCHAES overrides ----

int mbms_bcm_aes_available(int impl) {
    switch (impl) {
    case MBMS_BCM_AES_OPENSSL: return 1;
    case MBMS_BCM_AES_VAES: return bcm_vaes_supported();
    default: return 0;
    }
}

const char *mbms_bcm_aes_implementation_name(int impl) {
    switch (impl) {
    case MBMS_BCM_AES_OPENSSL: return "openssl";
    case MBMS_BCM_AES_VAES: return "vaes";
    default: return "unknown";
    }
}

static int aes_impl = -1;   // chosen once; a benign race (every thread computes the same value)

static int aes_choose(void) {
    const char *env = getenv("MBMS_BATCHAES");
    if (env != NULL) {
        for (int i = MBMS_BCM_AES_OPENSSL; i <= MBMS_BCM_AES_VAES; i++)
            if (strcmp(env, mbms_bcm_aes_implementation_name(i)) == 0 && mbms_bcm_aes_available(i)) return i;
    }
    return mbms_bcm_aes_available(MBMS_BCM_AES_VAES) ? MBMS_BCM_AES_VAES : MBMS_BCM_AES_OPENSSL;
}

int mbms_bcm_aes_implementation(void) {
    int v = __atomic_load_n(&aes_impl, __ATOMIC_RELAXED);
    if (v < 0) {
        v = aes_choose();
        __atomic_store_n(&aes_impl, v, __ATOMIC_RELAXED);
    }
    return v;
}

int mbms_bcm_aes_select(int impl) {
    if (impl < 0) {
        __atomic_store_n(&aes_impl, aes_choose(), __ATOMIC_RELAXED);
        return 1;
    }
    if (!mbms_bcm_aes_available(impl)) return 0;
    __atomic_store_n(&aes_impl, impl, __ATOMIC_RELAXED);
    return 1;
}

// ---- Contexts ----

static mbms_bcm *bcm_alloc(EVP_CIPHER_CTX *ecb) {
    // 64-byte aligned for the VAES round keys (aligned 256-bit loads); size rounded up as
    // aligned_alloc requires.
    size_t size = (sizeof(mbms_bcm) + 63) & ~(size_t)63;
    mbms_bcm *c = (mbms_bcm *)aligned_alloc(64, size);
    if (c == NULL) return NULL;
    memset(c, 0, size);
    c->scratch = (uint8_t *)aligned_alloc(64, BCM_CHUNK_BLOCKS * 16);
    if (c->scratch == NULL) { free(c); return NULL; }
    memset(c->scratch, 0, BCM_CHUNK_BLOCKS * 16);
    c->ecb = ecb;
    return c;
}

mbms_bcm *mbms_bcm_new(const uint8_t *key, size_t key_len) {
    const EVP_CIPHER *cipher = NULL;
    switch (key_len) {
    case 16: cipher = EVP_aes_128_ecb(); break;
    case 24: cipher = EVP_aes_192_ecb(); break;
    case 32: cipher = EVP_aes_256_ecb(); break;
    default: return NULL;
    }
    if (key == NULL) return NULL;
    EVP_CIPHER_CTX *ecb = EVP_CIPHER_CTX_new();
    if (ecb == NULL) return NULL;
    if (EVP_EncryptInit_ex(ecb, cipher, NULL, key, NULL) != 1 || EVP_CIPHER_CTX_set_padding(ecb, 0) != 1) {
        EVP_CIPHER_CTX_free(ecb);
        return NULL;
    }
    mbms_bcm *c = bcm_alloc(ecb);
    if (c == NULL) { EVP_CIPHER_CTX_free(ecb); return NULL; }
    // Round keys for the VAES path whenever the CPU has AES-NI, whatever is selected now, so
    // that a later select (tests, benchmarks) finds them. rounds stays 0 without AES-NI.
    (void)bcm_vaes_expand_key(&c->vaes, key, key_len);
    return c;
}

mbms_bcm *mbms_bcm_dup(const mbms_bcm *o) {
    if (o == NULL) return NULL;
    EVP_CIPHER_CTX *ecb = EVP_CIPHER_CTX_new();
    if (ecb == NULL) return NULL;
    if (EVP_CIPHER_CTX_copy(ecb, o->ecb) != 1) {
        EVP_CIPHER_CTX_free(ecb);
        return NULL;
    }
    mbms_bcm *c = bcm_alloc(ecb);
    if (c == NULL) { EVP_CIPHER_CTX_free(ecb); return NULL; }
    c->vaes = o->vaes;   // the round keys (or rounds 0)
    return c;
}

void mbms_bcm_free(mbms_bcm *c) {
    if (c == NULL) return;
    OPENSSL_cleanse(c->scratch, BCM_CHUNK_BLOCKS * 16);   // the last chunk's keystream
    free(c->scratch);
    EVP_CIPHER_CTX_free(c->ecb);                          // cleanses the key schedule
    OPENSSL_cleanse(&c->vaes, sizeof c->vaes);            // our round keys
    free(c);
}

static inline uint64_t load_be64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

static inline void store_be64(uint8_t *p, uint64_t v) {
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
/// The counter blocks hi ‖ l, hi ‖ l+1, ... when l + count does not wrap: the two words kept
/// as one vector in host order, one 64-bit add and one byte shuffle (to big-endian) per block.
/// SSSE3 is enabled for this function only (target attribute) and checked once with CPUID.
__attribute__((target("ssse3")))
static void write_counters_nocarry_ssse3(uint8_t *out, uint64_t hi, uint64_t l, size_t count) {
    // Lane 0 = l, lane 1 = hi; reversing all 16 bytes gives hi (BE) ‖ l (BE).
    const __m128i reverse = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m128i one = _mm_set_epi64x(0, 1);
    __m128i v = _mm_set_epi64x((long long)hi, (long long)l);
    for (size_t k = 0; k < count; k++) {
        _mm_storeu_si128((__m128i *)(out + 16 * k), _mm_shuffle_epi8(v, reverse));
        v = _mm_add_epi64(v, one);
    }
}

static int bcm_has_ssse3 = -1;

static inline void write_counters_nocarry(uint8_t *out, uint64_t hi, uint64_t l, size_t count) {
    int has = __atomic_load_n(&bcm_has_ssse3, __ATOMIC_RELAXED);
    if (has < 0) {
        unsigned a, b, c, d;
        has = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 9)) ? 1 : 0;   // CPUID.1:ECX.SSSE3
        __atomic_store_n(&bcm_has_ssse3, has, __ATOMIC_RELAXED);
    }
    if (has) { write_counters_nocarry_ssse3(out, hi, l, count); return; }
    for (size_t k = 0; k < count; k++) {
        store_be64(out + 16 * k, hi);
        store_be64(out + 16 * k + 8, l + k);
    }
}
#endif

/// Writes T_j = IV + j (mod 2^128) for j in first..<first+count to out (SP 800-38A B.1 over
/// the full 128-bit block; for SRTP the low 16 bits of the IV are zero and j < 2^16, so no
/// carry ever leaves the low word, but the general case is handled).
static inline void write_counters(uint8_t *out, const uint8_t *iv, uint64_t first, size_t count) {
    uint64_t hi = load_be64(iv), lo = load_be64(iv + 8);
    uint64_t l = lo + first;
    if (l < lo) hi++;
#if defined(__x86_64__)
    if (l + count >= l) {   // no carry out of the low word in this range (always, for SRTP)
        write_counters_nocarry(out, hi, l, count);
        return;
    }
#endif
    for (size_t k = 0; k < count; k++) {
        store_be64(out + 16 * k, hi);
        store_be64(out + 16 * k + 8, l);
        l++;
        if (l == 0) hi++;
    }
}

int mbms_bcm_xor(mbms_bcm *c, size_t n, const uint8_t *ivs, void *const *data, const size_t *len) {
    if (c->vaes.rounds != 0 && mbms_bcm_aes_implementation() == MBMS_BCM_AES_VAES) {
        bcm_vaes_ctr_xor(&c->vaes, n, ivs, data, len);
        return 1;
    }
    // Cursor (packet p, byte offset off within it) of the fill pass; the XOR pass replays the
    // same walk from the chunk's start cursor.
    size_t p = 0, off = 0;
    while (p < n) {
        size_t start_p = p, start_off = off;
        size_t blocks = 0;
        // Fill: counter blocks of as many packets (or packet parts) as fit in the chunk.
        while (p < n && blocks < BCM_CHUNK_BLOCKS) {
            size_t remaining = len[p] - off;
            if (remaining == 0) { p++; off = 0; continue; }
            size_t need = (remaining + 15) / 16;
            size_t take = need <= BCM_CHUNK_BLOCKS - blocks ? need : BCM_CHUNK_BLOCKS - blocks;
            write_counters(c->scratch + 16 * blocks, ivs + 16 * p, (uint64_t)(off / 16), take);
            blocks += take;
            if (take == need) { p++; off = 0; } else { off += 16 * take; }
        }
        if (blocks == 0) break;
        int outl = 0;
        if (EVP_EncryptUpdate(c->ecb, c->scratch, &outl, c->scratch, (int)(blocks * 16)) != 1 ||
            outl != (int)(blocks * 16))
            return 0;
        // XOR: replay the walk over exactly `blocks` blocks.
        const uint8_t *ks = c->scratch;
        size_t left = blocks * 16;
        size_t q = start_p, o = start_off;
        while (left > 0 && q < n) {
            size_t remaining = len[q] - o;
            if (remaining == 0) { q++; o = 0; continue; }
            size_t padded = (remaining + 15) & ~(size_t)15;
            if (padded <= left) {
                mbms_bcm_xor_bytes((uint8_t *)data[q] + o, ks, remaining);
                ks += padded;
                left -= padded;
                q++;
                o = 0;
            } else {   // straddles into the next chunk: `left` is a multiple of 16 here
                mbms_bcm_xor_bytes((uint8_t *)data[q] + o, ks, left);
                o += left;
                left = 0;
            }
        }
    }
    return 1;
}
