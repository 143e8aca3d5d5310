// AES counter mode with VAES (RFC 3711 4.1.1; NIST SP 800-38A 6.5), two AES blocks per ymm
// register and per VAESENC. Why it exists and what it buys: header comment of aes_cm_batch.c.
//
// Key schedule: FIPS 197 5.2 KeyExpansion word by word for all three key sizes, SubWord taken
// from AESKEYGENASSIST (one routine instead of three shuffling variants; AES-192's 6-word
// period is then no special case). Cipher: FIPS 197 5.1 as AES-NI does it (AddRoundKey, Nr-1
// AESENC, AESENCLAST). Counter blocks: T_j = IV + j mod 2^128, big-endian (RFC 3711 4.1.1,
// SP 800-38A B.1), the carry propagating through all 128 bits like OpenSSL's CTR.
//
// Only the functions with the BCM_VAES_TARGET attribute use VAES/AVX2 instructions; they are
// reached only after bcm_vaes_supported() (no global -m flags, the binary runs anywhere).
// The entry point ends with VZEROUPPER: the next thing to run is typically the SHA-NI HMAC
// (legacy SSE encoding), and SSE instructions with dirty upper ymm halves are very slow there.
#include "bcm_vaes.h"
#include <openssl/crypto.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define BCM_VAES_TARGET __attribute__((target("vaes,avx2,aes")))
#define BCM_ALWAYS_INLINE __attribute__((always_inline)) static inline

static int aesni_supported(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 25));   // CPUID.1:ECX.AESNI
}

int bcm_vaes_supported(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 25))) return 0;                              // AES-NI
    if (!(c & (1u << 27)) || !(c & (1u << 28))) return 0;         // OSXSAVE, AVX
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 6u) != 6u) return 0;                                // OS saves XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b & (1u << 5)) && (c & (1u << 9));                    // AVX2, VAES
}

/// FIPS 197 5.2 SubWord. AESKEYGENASSIST puts SubWord(source dword 1) in result dword 0
/// (Intel SDM, AESKEYGENASSIST); with round constant 0 nothing else is mixed in.
__attribute__((target("aes")))
static uint32_t sub_word(uint32_t w) {
    __m128i r = _mm_aeskeygenassist_si128(_mm_set_epi32(0, 0, (int)w, 0), 0);
    return (uint32_t)_mm_cvtsi128_si32(r);
}

int bcm_vaes_expand_key(bcm_vaes_key *out, const uint8_t *key, size_t key_len) {
    out->rounds = 0;
    if (key == NULL || (key_len != 16 && key_len != 24 && key_len != 32) || !aesni_supported()) return 0;
    const size_t nk = key_len / 4, nr = nk + 6, total = 4 * (nr + 1);   // FIPS 197 table 4
    // Words as little-endian integers: key byte 4i is bits 0-7 of w[i] (x86 byte order), so
    // RotWord([a0,a1,a2,a3]) = [a1,a2,a3,a0] is a right rotation by 8 and Rcon[i] =
    // [rc,0,0,0] is the integer rc.
    uint32_t w[4 * (BCM_VAES_MAX_ROUNDS + 1)];
    memcpy(w, key, key_len);
    uint32_t rcon = 1;
    for (size_t i = nk; i < total; i++) {
        uint32_t t = w[i - 1];
        if (i % nk == 0) {
            t = sub_word((t >> 8) | (t << 24)) ^ rcon;    // SubWord(RotWord(temp)) xor Rcon[i/Nk]
            rcon = (rcon << 1) ^ ((rcon >> 7) * 0x11bu);  // next Rcon: xtime in GF(2^8)
        } else if (nk > 6 && i % nk == 4) {
            t = sub_word(t);                              // the extra AES-256 step
        }
        w[i] = w[i - nk] ^ t;
    }
    for (size_t r = 0; r <= nr; r++) {
        memcpy(out->rk[r], w + 4 * r, 16);
        memcpy(out->rk[r] + 16, w + 4 * r, 16);
    }
    OPENSSL_cleanse(w, sizeof w);
    out->rounds = (int)nr;
    return 1;
}

static inline uint64_t load_be64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

/// x[0..<nv] = counter blocks T, T+1, ..., T+2nv-1 (two per register, lane 0 first) with
/// T = hi ‖ l. Fastest path, when the low byte of l plus 2nv-1 stays below 256 (always for
/// SRTP: the IV's low 16 bits are zero, RFC 3711 4.1.1, and a packet has < 256 blocks): T
/// byte-reversed to big-endian once, then each register is T plus 2i, 2i+1 added to the last
/// byte (the top byte of each lane's high qword), no carry possible; one vector add per
/// register instead of an add and a byte shuffle (the shuffle competes with VAESENC for a
/// port on Zen 3). Else: the two words kept in host order, 64-bit adds and one in-lane byte
/// reversal per register, valid when l + 2nv-1 does not wrap. Otherwise the blocks are
/// written one by one with the carry into `hi` (SP 800-38A B.1 over 128 bits).
BCM_ALWAYS_INLINE BCM_VAES_TARGET void make_counters(__m256i *x, const int nv, uint64_t hi, uint64_t l) {
    if ((l & 0xFF) + (uint64_t)(2 * nv - 1) <= 0xFF) {
        const __m256i reverse = _mm256_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m256i be = _mm256_shuffle_epi8(_mm256_set_epi64x((long long)hi, (long long)l, (long long)hi, (long long)l),
                                               reverse);
        for (int i = 0; i < nv; i++) {
            // Lane 0: + 2i, lane 1: + 2i + 1, in byte 15 of each lane (bits 56-63 of its high qword).
            __m256i step = _mm256_set_epi64x((long long)((uint64_t)(2 * i + 1) << 56), 0, (long long)((uint64_t)(2 * i) << 56), 0);
            x[i] = _mm256_add_epi64(be, step);
        }
        return;
    }
    if (l + (uint64_t)(2 * nv - 1) >= l) {
        const __m256i reverse = _mm256_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // 64-bit lanes (low to high): l, hi | l+1, hi; reversing each 128-bit lane gives hi ‖ l.
        const __m256i base = _mm256_set_epi64x((long long)hi, (long long)(l + 1), (long long)hi, (long long)l);
        for (int i = 0; i < nv; i++) {
            __m256i step = _mm256_set_epi64x(0, 2 * i, 0, 2 * i);
            x[i] = _mm256_shuffle_epi8(_mm256_add_epi64(base, step), reverse);
        }
        return;
    }
    _Alignas(32) uint8_t blocks[16 * 16];
    for (int m = 0; m < 2 * nv; m++) {
        uint64_t bh = __builtin_bswap64(hi), bl = __builtin_bswap64(l);
        memcpy(blocks + 16 * m, &bh, 8);
        memcpy(blocks + 16 * m + 8, &bl, 8);
        l++;
        if (l == 0) hi++;
    }
    for (int i = 0; i < nv; i++) x[i] = _mm256_load_si256((const __m256i *)(blocks + 32 * i));
    // Counter blocks are public (they are the IVs), nothing to cleanse.
}

/// FIPS 197 5.1 Cipher on 2 nv blocks, the nv registers interleaved round by round so that
/// independent VAESENCs fill the pipeline (latency ~4 cycles, 2 per cycle on Zen 3).
BCM_ALWAYS_INLINE BCM_VAES_TARGET void encrypt_vectors(__m256i *x, const int nv, const bcm_vaes_key *k) {
    const __m256i *rk = (const __m256i *)k->rk;
    const int nr = k->rounds;
    __m256i key = _mm256_load_si256(rk);
    for (int i = 0; i < nv; i++) x[i] = _mm256_xor_si256(x[i], key);
    for (int r = 1; r < nr; r++) {
        key = _mm256_load_si256(rk + r);
        for (int i = 0; i < nv; i++) x[i] = _mm256_aesenc_epi128(x[i], key);
    }
    key = _mm256_load_si256(rk + nr);
    for (int i = 0; i < nv; i++) x[i] = _mm256_aesenclast_epi128(x[i], key);
}

BCM_ALWAYS_INLINE BCM_VAES_TARGET void xor32(uint8_t *p, __m256i ks) {
    _mm256_storeu_si256((__m256i *)p, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)p), ks));
}

/// The last 1...32 * nv bytes of a packet (nv = ceil(len / 32) registers, at most 8): whole
/// registers straight into the packet, the final 1...31 bytes through 16-byte halves and,
/// for the last partial block, a 16-byte spill slot (cleansed by the caller).
BCM_ALWAYS_INLINE BCM_VAES_TARGET void tail(const bcm_vaes_key *k, uint8_t *p, size_t len, uint64_t hi,
                                            uint64_t l, const int nv, uint8_t *spill) {
    __m256i x[8];
    make_counters(x, nv, hi, l);
    encrypt_vectors(x, nv, k);
    for (int i = 0; i < nv - 1; i++) xor32(p + 32 * i, x[i]);
    size_t r = len - 32 * (size_t)(nv - 1);   // 1...32
    uint8_t *q = p + 32 * (nv - 1);
    if (r == 32) { xor32(q, x[nv - 1]); return; }
    __m128i half = _mm256_castsi256_si128(x[nv - 1]);
    if (r >= 16) {
        _mm_storeu_si128((__m128i *)q, _mm_xor_si128(_mm_loadu_si128((const __m128i *)q), half));
        q += 16;
        r -= 16;
        half = _mm256_extracti128_si256(x[nv - 1], 1);
    }
    if (r == 0) return;
    _mm_store_si128((__m128i *)spill, half);
    size_t b = 0;
    if (r >= 8) {
        uint64_t a, s;
        memcpy(&a, q, 8);
        memcpy(&s, spill, 8);
        a ^= s;
        memcpy(q, &a, 8);
        b = 8;
    }
    for (; b < r; b++) q[b] ^= spill[b];
}

BCM_ALWAYS_INLINE BCM_VAES_TARGET void ctr_xor_one(const bcm_vaes_key *k, const uint8_t *iv, uint8_t *p, size_t len,
                                                   uint8_t *spill) {
    const uint64_t hi0 = load_be64(iv), lo0 = load_be64(iv + 8);
    uint64_t j = 0;   // block index (< 2^60: len is a size_t)
    // Whole groups of 16 blocks: 8 registers, the widest interleave that still leaves the
    // round key and the XOR operands in registers (16 ymm).
    while (len >= 256) {
        uint64_t l = lo0 + j, hi = hi0 + (l < lo0);   // IV + j, carry into the high word
        __m256i x[8];
        make_counters(x, 8, hi, l);
        encrypt_vectors(x, 8, k);
        for (int i = 0; i < 8; i++) xor32(p + 32 * i, x[i]);
        p += 256;
        len -= 256;
        j += 16;
    }
    if (len == 0) return;
    uint64_t l = lo0 + j, hi = hi0 + (l < lo0);
    // One specialised copy per register count, so that x[] stays in registers.
    switch ((len + 31) / 32) {
    case 1: tail(k, p, len, hi, l, 1, spill); break;
    case 2: tail(k, p, len, hi, l, 2, spill); break;
    case 3: tail(k, p, len, hi, l, 3, spill); break;
    case 4: tail(k, p, len, hi, l, 4, spill); break;
    case 5: tail(k, p, len, hi, l, 5, spill); break;
    case 6: tail(k, p, len, hi, l, 6, spill); break;
    case 7: tail(k, p, len, hi, l, 7, spill); break;
    default: tail(k, p, len, hi, l, 8, spill); break;
    }
}

BCM_VAES_TARGET
void bcm_vaes_ctr_xor(const bcm_vaes_key *k, size_t n, const uint8_t *ivs, void *const *data, const size_t *len) {
    _Alignas(16) uint8_t spill[16];
    for (size_t i = 0; i < n; i++) {
        if (len[i] == 0) continue;
        ctr_xor_one(k, ivs + 16 * i, (uint8_t *)data[i], len[i], spill);
    }
    // Clean upper ymm state before returning to SSE code (see the header comment).
    _mm256_zeroupper();
    OPENSSL_cleanse(spill, sizeof spill);   // keystream of a final partial block
}

#else   // not x86-64: no kernel, the OpenSSL path is used

int bcm_vaes_supported(void) { return 0; }

int bcm_vaes_expand_key(bcm_vaes_key *out, const uint8_t *key, size_t key_len) {
    (void)key;
    (void)key_len;
    out->rounds = 0;
    return 0;
}

void bcm_vaes_ctr_xor(const bcm_vaes_key *k, size_t n, const uint8_t *ivs, void *const *data, const size_t *len) {
    (void)k; (void)n; (void)ivs; (void)data; (void)len;
}
#endif
