#!/usr/bin/env python3
"""Generates Sources/CMultiHash/sha1_shani_asm.h: SHA-1 compression (FIPS 180-4 6.1.2) of
W = 1...4 independent messages, nblk consecutive 64-byte blocks each, with the Intel SHA
extensions and a hand-made register allocation (GNU inline assembly, AT&T syntax).

    python3 Tools/gen_shani_asm.py > Sources/CMultiHash/sha1_shani_asm.h

Why hand allocation: four interleaved lanes are what keeps SHA1RNDS4 busy (latency about
6 cycles, one issue every 2 cycles on the AMD Zen 3 box, so a lane's next round group may
start 8 cycles after its previous one: only 2 cycles of slack). A lane has 7 live values
(ABCD, two E registers, the 4-quad message window) = 28 for 4 lanes in 16 XMM registers;
compilers spill whichever they like, including ABCD/E on the round chain, and every extra
cycle there is lost. Here each lane owns 4 registers: ABCD, plus three that rotate through
the roles E (this group's), M (the newest message quad, W[4g-4..4g-1], the input of the
schedule recurrence) and a free one; the three older quads live in a 64-byte ring on the
stack (they are needed 2-4 groups later, far off any chain). Chaining values stay in
registers across the nblk blocks of a call.

Per round group g (FIPS 180-4 6.1.2 steps 1-3, four rounds t = 4g...4g+3):
    Z  = W[4g..]    g < 4: the block's words, byte-reversed (big-endian, FIPS 180-4 3.1)
                    g >= 4: SHA1MSG2(SHA1MSG1(W[g-4], W[g-3]) ^ W[g-2], W[g-1]), i.e.
                    W[t] = ROTL1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16])
    ring[g-1] = M   (kept while groups up to 19 still read it)
    X  = SHA1NEXTE(X, Z)  E of round 4g: ROTL30(A of four rounds back) + W (g = 0: E + W)
    Y  = ABCD             saved for the next group's SHA1NEXTE
    ABCD = SHA1RNDS4(ABCD, X, g / 5)   f and K of FIPS 180-4 4.1.1 / 4.2.1
    roles (X, Y, Z) -> (Y, Z, X)
After group 19: H4 += E (SHA1NEXTE of the saved ABCD into the saved E), ABCD += saved ABCD
(FIPS 180-4 6.1.2 step 4).

mh_shani_hmac_x1..x4 (hmac_kernel below) run a whole HMAC-SHA1 (RFC 2104) per lane for
lanes of equal inner block count: the inner blocks through a table of block pointers (the
caller assembles the blocks that cannot be read in place), then the outer block from
registers: W0..W3 = the inner ABCD register as it stands (A in the top dword, where a
byte-reversed quad holds W0), W4 = inner H4, W5 = 0x80000000, W15 = 84 * 8 (FIPS 180-4
5.1.1). Measured on the Zen 3 box: 13.7 ns per block for 4 lanes x 21 blocks, the same as
the plain multi-block kernel.
"""

def emit_block(e, W, A, roles, ring, load, e_start, abcd_save, e_out):
    """One 64-byte block (20 round groups) for W lanes; load(l, g, Z) emits the code that puts
    message quad g < 4 of lane l into Z (it may also replace A[l], see the outer block)."""
    for g in range(20):
        for l in range(W):
            X, Y, Z = roles[l]
            if g < 4:
                load(l, g, Z)
            else:
                e(f"movdqa {ring(l, g - 4)}, {Z}")
                e(f"sha1msg1 {ring(l, g - 3)}, {Z}")
                e(f"pxor {ring(l, g - 2)}, {Z}")
                e(f"sha1msg2 {Y}, {Z}")
            if 1 <= g <= 18:   # quad g-1 is read again by groups g+1...g+3 (<= 19)
                e(f"movdqa {Y}, {ring(l, g - 1)}")
            if g == 0:
                e(f"movdqa {e_start(l)}, {X}")
                e(f"paddd {Z}, {X}")
            else:
                e(f"sha1nexte {Z}, {X}")
            e(f"movdqa {A[l]}, {Y}")
            e(f"sha1rnds4 ${g // 5}, {X}, {A[l]}")
            roles[l] = [Y, Z, X]
    for l in range(W):
        X = roles[l][0]    # ABCD saved by group 19 (the state after round 75)
        e(f"sha1nexte {e_start(l)}, {X}")
        e(f"movdqa {X}, {e_out(l)}")
        e(f"paddd {abcd_save(l)}, {A[l]}")


def emit_table_block(e, W, A, R, m, ring):
    """One inner block of every lane through the block-pointer table (the loop body of the
    whole-HMAC kernels): lane l's block from tab[l], ABCD saved at m(128 + 16 l) for step 4 of
    FIPS 180-4 6.1.2, E at m(64 + 16 l); then the table pointer moves to the next row.
    Returns the register roles as the last group left them."""
    for l in range(W):
        e(f"mov {8 * l}(%[tab]), %[p{l}]")
    for l in range(W):
        e(f"movdqa {A[l]}, {m(128 + 16 * l)}")
    roles = [[R[l][0], R[l][1], R[l][2]] for l in range(W)]
    def load(l, g, Z):
        e(f"movdqu {16 * g}(%[p{l}]), {Z}")
        e(f"pshufb (%[mask]), {Z}")
    emit_block(e, W, A, roles, ring, load, lambda l: m(64 + 16 * l),
               lambda l: m(128 + 16 * l), lambda l: m(64 + 16 * l))
    e(f"add ${8 * W}, %[tab]")
    return roles   # rotated by the 20 groups: the outer block of hmac_kernel continues from them


def kernel(W):
    A = [f"%%xmm{l}" for l in range(W)]
    R = [[f"%%xmm{4 + 3 * l + i}" for i in range(3)] for l in range(W)]
    # st layout (bytes): ABCD[4] @0, E (H4 in the top dword) [4] @64, ABCD at block start [4] @128,
    # message ring [lane][4 quads] @192.
    def ring(l, g): return f"{192 + 64 * l + 16 * (g % 4)}(%[st])"
    out = []
    e = out.append
    for l in range(W):
        e(f"movdqa {16 * l}(%[st]), {A[l]}")
    e("1:")
    for l in range(W):
        e(f"movdqa {A[l]}, {128 + 16 * l}(%[st])")
    roles = [[R[l][0], R[l][1], R[l][2]] for l in range(W)]   # X = E, Y = newest quad, Z = free
    def load(l, g, Z):
        e(f"movdqu {16 * g}(%[p{l}]), {Z}")
        e(f"pshufb (%[mask]), {Z}")
    emit_block(e, W, A, roles, ring, load, lambda l: f"{64 + 16 * l}(%[st])",
               lambda l: f"{128 + 16 * l}(%[st])", lambda l: f"{64 + 16 * l}(%[st])")
    for l in range(W):
        e(f"add $64, %[p{l}]")
    e("dec %[n]")
    e("jnz 1b")
    for l in range(W):
        e(f"movdqa {A[l]}, {16 * l}(%[st])")
    body = "\n".join('        "' + s + '\\n\\t"' for s in out)
    ptrs = ", ".join(f'[p{l}] "+r" (p{l})' for l in range(W))
    regs = ", ".join(f'"xmm{i}"' for i in range(4 + 3 * W) if i < W or i >= 4)
    decl = " ".join(f"const uint8_t *p{l} = blk[{l}];" for l in range(W))
    return f'''
/// {W} lane(s), nblk >= 1 consecutive blocks each (lane l: blk[l], blk[l] + 64, ...).
static __attribute__((noinline)) MH_TARGET
void mh_shani_asm_x{W}(uint32_t *const h[], const uint8_t *const blk[], size_t nblk) {{
    __attribute__((aligned(16))) uint8_t st[192 + 64 * {W}];
    for (int l = 0; l < {W}; l++) {{
        _mm_store_si128((__m128i *)(st + 16 * l), _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h[l]), 0x1B));
        _mm_store_si128((__m128i *)(st + 64 + 16 * l), _mm_set_epi32((int)h[l][4], 0, 0, 0));
    }}
    {decl}
    size_t n = nblk;
    __asm__ volatile(
{body}
        : {ptrs}, [n] "+r" (n)
        : [st] "r" (st), [mask] "r" (mh_asm_bswap_mask)
        : "memory", "cc", {regs});
    for (int l = 0; l < {W}; l++) {{
        _mm_storeu_si128((__m128i *)h[l], _mm_shuffle_epi32(_mm_load_si128((const __m128i *)(st + 16 * l)), 0x1B));
        h[l][4] = (uint32_t)_mm_extract_epi32(_mm_load_si128((const __m128i *)(st + 64 + 16 * l)), 3);
    }}
}}
'''


def hmac_kernel(W):
    """Whole HMAC-SHA1 (RFC 2104) of W lanes with the same inner block count in one call:
    nblk inner blocks from the pointer table tab[j * W + l] (in-place blocks of a or b, or
    blocks assembled by the caller: a/b straddle, padding), then the outer block built in
    registers from the inner digest, with the chaining values never leaving registers."""
    A = [f"%%xmm{l}" for l in range(W)]
    R = [[f"%%xmm{4 + 3 * l + i}" for i in range(3)] for l in range(W)]
    # st layout (bytes): ABCD[4] @0, E [4] @64, ABCD at block start [4] @128, message ring
    # [lane][4 quads] @192, outer ABCD @192+64W, outer E @208+64W (the same for all lanes).
    # Two base registers, sa = st + 128 and sb = st + 384, so that every displacement fits
    # in one signed byte: the code is ~20 % shorter, and its speed stopped depending on
    # where the linker and the compiler's frame layout put it (measured: with 4-byte
    # displacements the same bytes ran 176-byte HMACs in 76 or 104 ns depending on code
    # placement and -fno-omit-frame-pointer, which SwiftPM release builds use).
    def m(off): return f"{off - 128}(%[sa])" if off < 256 else f"{off - 384}(%[sb])"
    OA = m(192 + 64 * W)
    OE = m(208 + 64 * W)
    def ring(l, g): return m(192 + 64 * l + 16 * (g % 4))
    out = []
    e = out.append
    for l in range(W):
        e(f"movdqa {m(16 * l)}, {A[l]}")
    e("1:")
    roles = emit_table_block(e, W, A, R, m, ring)
    e("dec %[n]")
    e("jnz 1b")
    # Outer block (RFC 2104: K^opad block already in OA/OE; FIPS 180-4 5.1.1 padding of the
    # 84-byte message): W0..W3 = inner ABCD (the register holds A in the top dword, as a
    # byte-reversed message quad holds W0), W4 = inner H4, W5 = 0x80000000, W6..W14 = 0,
    # W15 = 84 * 8. mask + 16: the dword 0x80000000 in position 2; mask + 32: 672 in position 0.
    def outer_load(l, g, Z):
        if g == 0:
            e(f"movdqa {A[l]}, {Z}")
            e(f"movdqa {OA}, {A[l]}")
        elif g == 1:
            e(f"movdqa {m(64 + 16 * l)}, {Z}")
            e(f"por 16(%[mask]), {Z}")
        elif g == 2:
            e(f"pxor {Z}, {Z}")
        else:
            e(f"movdqa 32(%[mask]), {Z}")
    emit_block(e, W, A, roles, ring, outer_load, lambda l: OE, lambda l: OA,
               lambda l: m(64 + 16 * l))
    for l in range(W):
        e(f"movdqa {A[l]}, {m(16 * l)}")
    body = "\n".join('        "' + s + '\\n\\t"' for s in out)
    ptrs = ", ".join(f'[p{l}] "=&r" (p{l})' for l in range(W))
    regs = ", ".join(f'"xmm{i}"' for i in range(4 + 3 * W) if i < W or i >= 4)
    decl = " ".join(f"const uint8_t *p{l};" for l in range(W))
    return f'''
/// HMAC-SHA1 of {W} lane(s) with nblk >= 1 inner blocks each (block j of lane l: tab[j * {W} + l]),
/// then the outer block; out[l] receives lane l's 20-byte digest.
static __attribute__((noinline)) MH_TARGET
void mh_shani_hmac_x{W}(const mbms_mh_key *k, const uint8_t *const *tab, size_t nblk, uint8_t *const out[]) {{
    __attribute__((aligned(16))) uint8_t st[512];
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)k->inner), 0x1B);
    __m128i e0 = _mm_set_epi32((int)k->inner[4], 0, 0, 0);
    for (int l = 0; l < {W}; l++) {{
        _mm_store_si128((__m128i *)(st + 16 * l), abcd);
        _mm_store_si128((__m128i *)(st + 64 + 16 * l), e0);
    }}
    _mm_store_si128((__m128i *)(st + 192 + 64 * {W}), _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)k->outer), 0x1B));
    _mm_store_si128((__m128i *)(st + 208 + 64 * {W}), _mm_set_epi32((int)k->outer[4], 0, 0, 0));
    {decl}
    size_t n = nblk;
    __asm__ volatile(
{body}
        : {ptrs}, [tab] "+r" (tab), [n] "+r" (n)
        : [sa] "r" (st + 128), [sb] "r" (st + 384), [mask] "r" (mh_asm_bswap_mask)
        : "memory", "cc", {regs});
    for (int l = 0; l < {W}; l++) {{
        // Digest = H0..H4 big-endian (FIPS 180-4 6.1.2): the ABCD register byte-reversed is H0..H3.
        _mm_storeu_si128((__m128i *)out[l], _mm_shuffle_epi8(_mm_load_si128((const __m128i *)(st + 16 * l)),
                                                              _mm_load_si128((const __m128i *)mh_asm_bswap_mask)));
        mbms_mh_store_be32(out[l] + 16, (uint32_t)_mm_extract_epi32(_mm_load_si128((const __m128i *)(st + 64 + 16 * l)), 3));
    }}
}}
'''


def hmac_ragged_kernel():
    """Whole HMAC-SHA1 of four lanes whose inner block counts differ (the SRTP batch of mixed
    packet sizes): hmac_kernel with the outer block moved into the loop. The loop runs max
    count + 1 iterations; block j of lane l comes from tab[4 j + l]. A per-lane countdown
    (CNT) is decremented after every iteration: when it reaches 0 the first time, the lane's
    inner hash is done, so its digest is written big-endian into the lane's outer block (OB,
    prepared by the caller with 0x80 and the 84-byte length, FIPS 180-4 5.1.1; RFC 2104) and
    its chaining values are reset to the outer key state, whose one block (OB, in the table
    at index count) the next iteration hashes; when it reaches 0 again, the outer digest is
    saved (OUT) and the lane idles on its OB until the longest lane is done. The caller sorts
    lanes by block count and groups similar ones, so little time is spent idling. The
    branches sit between iterations, outside the interleaved round groups, and are taken
    twice per lane.
    st layout (bytes): ABCD[4] @0, E[4] @64, saved ABCD[4] @128, ring @192, outer ABCD @448,
    outer E @464, CNT[4] (8 bytes) @480, OUT ABCD[4] @512, OUT E[4] @576, OB pointers[4] @640,
    phase bytes[4] @672; three base registers (st + 128, + 384, + 640) keep displacements
    one byte."""
    W = 4
    A = [f"%%xmm{l}" for l in range(W)]
    R = [[f"%%xmm{4 + 3 * l + i}" for i in range(3)] for l in range(W)]
    def m(off):
        if off < 256: return f"{off - 128}(%[sa])"
        if off < 512: return f"{off - 384}(%[sb])"
        return f"{off - 640}(%[sc])"
    def ring(l, g): return m(192 + 64 * l + 16 * (g % 4))
    out = []
    e = out.append
    T = R[0][0]
    for l in range(W):
        e(f"movdqa {m(16 * l)}, {A[l]}")
    e("1:")
    emit_table_block(e, W, A, R, m, ring)
    for l in range(W):
        e(f"decq {m(480 + 8 * l)}")
        e(f"jnz .Lnext%=_{l}")
        e(f"cmpb $0, {m(672 + l)}")
        e(f"jne .Lout%=_{l}")
        # Inner hash done: outer block = digest (H0..H3 from ABCD, H4 from E's top dword), big-endian.
        e(f"mov {m(640 + 8 * l)}, %[t]")
        e(f"movdqa {A[l]}, {T}")
        e(f"pshufb (%[mask]), {T}")
        e(f"movdqu {T}, (%[t])")
        e(f"movl {m(64 + 16 * l + 12)}, %k[u]")
        e("bswap %k[u]")
        e("movl %k[u], 16(%[t])")
        e(f"movdqa {m(448)}, {A[l]}")
        e(f"movdqa {m(464)}, {T}")
        e(f"movdqa {T}, {m(64 + 16 * l)}")
        e(f"movq $1, {m(480 + 8 * l)}")
        e(f"movb $1, {m(672 + l)}")
        e(f"jmp .Lnext%=_{l}")
        e(f".Lout%=_{l}:")
        e(f"movdqa {A[l]}, {m(512 + 16 * l)}")
        e(f"movdqa {m(64 + 16 * l)}, {T}")
        e(f"movdqa {T}, {m(576 + 16 * l)}")
        e(f"movq $0x7fffffff, {m(480 + 8 * l)}")
        e(f".Lnext%=_{l}:")
    e("dec %[n]")
    e("jnz 1b")
    body = "\n".join('        "' + s + '\\n\\t"' for s in out)
    ptrs = ", ".join(f'[p{l}] "=&r" (p{l})' for l in range(W))
    regs = ", ".join(f'"xmm{i}"' for i in range(16))
    return f'''
/// HMAC-SHA1 of 4 lanes with count[l] >= 1 inner blocks each (block j of lane l: tab[4 j + l];
/// tab[4 count[l] + l] and every later entry of lane l: its outer block ob[l], 64 bytes the
/// caller prepared: zeros, 0x80 at 20, the bit length 84 * 8 at 56..63); the loop runs
/// max(count) + 1 times; out[l] receives lane l's 20-byte digest.
static __attribute__((noinline)) MH_TARGET
void mh_shani_hmac_ragged_x4(const mbms_mh_key *k, const uint8_t *const *tab, const size_t count[4],
                             uint8_t *const ob[4], uint8_t *const out[4]) {{
    __attribute__((aligned(16))) uint8_t st[768];
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)k->inner), 0x1B);
    __m128i e0 = _mm_set_epi32((int)k->inner[4], 0, 0, 0);
    size_t n = 0;
    for (int l = 0; l < 4; l++) {{
        _mm_store_si128((__m128i *)(st + 16 * l), abcd);
        _mm_store_si128((__m128i *)(st + 64 + 16 * l), e0);
        uint64_t c = count[l];
        memcpy(st + 480 + 8 * l, &c, 8);
        memcpy(st + 640 + 8 * l, &ob[l], 8);
        st[672 + l] = 0;
        if (count[l] > n) n = count[l];
    }}
    n += 1;
    _mm_store_si128((__m128i *)(st + 448), _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)k->outer), 0x1B));
    _mm_store_si128((__m128i *)(st + 464), _mm_set_epi32((int)k->outer[4], 0, 0, 0));
    const uint8_t *p0, *p1, *p2, *p3;
    uintptr_t t, u;
    __asm__ volatile(
{body}
        : {ptrs}, [t] "=&r" (t), [u] "=&r" (u), [tab] "+r" (tab), [n] "+r" (n)
        : [sa] "r" (st + 128), [sb] "r" (st + 384), [sc] "r" (st + 640), [mask] "r" (mh_asm_bswap_mask)
        : "memory", "cc", {regs});
    for (int l = 0; l < 4; l++) {{
        _mm_storeu_si128((__m128i *)out[l], _mm_shuffle_epi8(_mm_load_si128((const __m128i *)(st + 512 + 16 * l)),
                                                              _mm_load_si128((const __m128i *)mh_asm_bswap_mask)));
        mbms_mh_store_be32(out[l] + 16, (uint32_t)_mm_extract_epi32(_mm_load_si128((const __m128i *)(st + 576 + 16 * l)), 3));
    }}
}}
'''

print("// Generated by Tools/gen_shani_asm.py -- do not edit; see that script for the design.")
print("// Included by sha1_shani.c (x86-64 only: it needs xmm8-15 and seven general registers).")
print("/// pshufb mask reversing 16 bytes; then the outer block's constant quads (see hmac_kernel):")
print("/// W5 = 0x80000000 (dword 2, little-endian bytes 8..11) and W15 = 84 * 8 = 0x2a0 (dword 0).")
print("static const __attribute__((aligned(16))) uint8_t mh_asm_bswap_mask[48] = {15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,")
print("    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0,")
print("    0xa0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};")
for w in range(1, 5):
    print(kernel(w))
for w in range(1, 5):
    print(hmac_kernel(w))
print(hmac_ragged_kernel())
