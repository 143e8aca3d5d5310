#ifndef MBMS_CMULTIHASH_H
#define MBMS_CMULTIHASH_H

// Multi-message HMAC-SHA1 (RFC 2104 over SHA-1, FIPS 180-4): N independent messages per
// call, each the concatenation of two parts a_i || b_i (SRTP: packet || ROC), hashed from
// pre-keyed inner/outer chaining values. On x86-64 with the Intel SHA extensions the
// compression function runs several messages interleaved so the latency of SHA1RNDS4 of
// one message is hidden behind the others; elsewhere OpenSSL's SHA-1 (or, forced, a portable
// scalar path) computes the same bytes. Only CryptoCore calls this.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// SHA-1 chaining values (FIPS 180-4 6.1.2 H0..H4) after compressing the 64-byte
/// K^ipad and K^opad blocks (RFC 2104 section 2).
typedef struct {
    uint32_t inner[5];
    uint32_t outer[5];
} mbms_mh_key;

/// Implementations; values are stable (tests and the environment variable use them).
enum {
    MBMS_MH_SCALAR = 0,   ///< portable C compression, one message at a time
    MBMS_MH_OPENSSL = 1,  ///< OpenSSL SHA1_Update/SHA1_Final from the chaining values
    MBMS_MH_SHANI = 2,    ///< Intel SHA extensions, interleaved lanes
};

/// Keys `k` (RFC 2104: keys longer than 64 bytes are first hashed with SHA-1).
void mbms_mh_key_init(mbms_mh_key *k, const uint8_t *key, size_t key_len);
/// Overwrites `k` with zeros in a way the compiler may not elide.
void mbms_mh_key_clear(mbms_mh_key *k);

/// digests[20*i ..< 20*i+20] = HMAC-SHA1(key, a[i] || b[i]) for i in 0..<n. Any n; lanes
/// of different lengths may be mixed; a[i]/b[i] may be NULL when their length is 0; b and
/// b_len may both be NULL when every b_i is empty. One-part messages (every b_i empty) of
/// one length of at least 64 bytes take the fastest path with the SHA extensions (the SRTP
/// batch writes the ROC behind each packet for this, RFC 3711 4.2). Allocates nothing.
void mbms_mh_hmac_sha1(const mbms_mh_key *k, size_t n,
                       const void *const *a, const size_t *a_len,
                       const void *const *b, const size_t *b_len,
                       uint8_t *digests);

/// The active implementation (chosen on first use: MBMS_MULTIHASH=scalar|openssl|shani if
/// set and available, else SHA-NI when CPUID reports it, else OpenSSL).
int mbms_mh_implementation(void);
const char *mbms_mh_implementation_name(int impl);
/// 1 if `impl` can run on this machine.
int mbms_mh_available(int impl);
/// Test/benchmark hook: selects `impl` (or, with -1, re-reads the environment and CPUID).
/// Returns 0 and changes nothing when `impl` is not available.
int mbms_mh_select(int impl);

#ifdef __cplusplus
}
#endif
#endif
