// Fuzz target 2 (issue 19 finding 12): MIKEY — the decoder, the UE's MGV-F checks
// (`UEKeyProcessor`: MSK and MTK messages, TS 33.246 6.4.6, 6.5.3, 6.5.4), the BM-SC's check of
// verification messages (6.4.5.2), and decode → encode → decode stability.
//
// Input: one mode octet, then records [flags][u16 length][message]:
//   mode bit 0: start from a UE that already holds the MSK of mikey.md 9.1 (else a fresh UE).
//   flags bit 0 "fix-up": the KEMAC's encrypted data holds *plaintext* Key data; the harness
//   encrypts it and recomputes the MAC with the right key (MUK for MSK messages, the held MSK
//   for MTK messages), so mutations reach the Key data decoder behind the MAC check.
//   flags bit 1: also check the message as a verification message (BM-SC side).
import CryptoCore
import FuzzSupport
import MIKEY

// The worked examples' inputs (../shared/spec/mikey.md section 9; test keys only).
let muk = SecretBytes((0..<32).map { UInt8($0) })
let nafID = "bmsc.example.org", bTID = "btid@bsf.example.org"
let mskRAND = hexBytes("101112131415161718191a1b1c1d1e1f")
let csbMSK = CSBID(0xCAFE_0001)
/// mikey.md 9.1 (MSK message, V = 1, TS 42), 9.2 (MTK message, MTK ID 5, TS 7), 9.3 (verification).
let example91 = hexBytes("01001580cafe000101000012345678000000000503000d00000300f110010004000100020b020000002a0610101112131415161718191a1b1c1d1e1f06000010626d73632e6578616d706c652e6f72670a00001462746964406273662e6578616d706c652e6f7267010000003400010101011002010303011404010e0501000601000701010801000901000a01010b010e0d0200400e01030f010112010e13010a0001001a8731745437bb61b0933e47a8f042e45eaa87274745d9b95078d4015d1b3034e4ca9190f92bb51b51be169a82119721")
let example92 = hexBytes("010015001122334400010503001200000300f11001000400010002020002000501020000000700010024ff536f8997e0d262b4a723a2eb5a5760989531e0f046eb84c0a6d7cadb98aa17a284c4d901f4c717371b3a658f00ebed345a9a15c376de5371")
let example93 = hexBytes("01010500cafe00010001" + "0602" + "0000002a" + "0900" + "0014" + "62746964406273662e6578616d706c652e6f7267"
                         + "0001" + "a0a27b4b3ccbf8553988161f0081a2e9246d85ea")

let freshUE = UEKeyProcessor(muk: muk, nafID: nafID, bTID: bTID)
let ueWithMSK: UEKeyProcessor = {
    var p = freshUE
    if case .failure(let e) = p.process(example91) { FuzzMain.fail("mikey.md 9.1 refused: \(e)") }
    return p
}()

/// Encrypts the KEMAC's (plaintext) Key data and recomputes the MAC, as a BM-SC would have.
func fixUp(_ bytes: [UInt8], _ ue: UEKeyProcessor) -> [UInt8] {
    guard let m = try? MIKEYDecoder.decode(bytes), let kemac = m.kemac, let off = m.kemacEncryptedDataOffset,
          let ts = m.timestamp, let keyID = m.keyIDInformation else { return bytes }
    let psk: SecretBytes, rand: [UInt8]
    if keyID.mtkID != nil {
        guard let d = keyID.keyDomainID, let id = keyID.mskID, let held = ue.msk(d, id) else { return bytes }
        psk = held.key; rand = held.rand
    } else {
        guard let r = m.rand else { return bytes }
        psk = muk; rand = r
    }
    guard let keys = try? MIKEYKeyDerivation.pskKeys(psk: psk, csbID: m.header.csbID, rand: rand) else { return bytes }
    var out = bytes
    let n = kemac.encryptedData.count
    if n > 0, off >= 0, off + n <= out.count, let ct = try? KEMACCrypto.crypt(kemac.encryptedData, keys: keys, csbID: m.header.csbID, timestamp: ts) {
        out.replaceSubrange(off..<(off + n), with: ct)
    }
    let macLength = kemac.mac.count
    if macLength == 20, out.count >= macLength, let mac = try? KEMACCrypto.mac(authenticationKey: keys.authenticationKey, Array(out[0..<(out.count - macLength)])) {
        out.replaceSubrange((out.count - macLength)..., with: mac)
    }
    return out
}

func fuzzOne(_ input: [UInt8]) {
    var r = FuzzReader(input)
    let mode = r.byte()
    var ue = mode & 1 != 0 ? ueWithMSK : freshUE
    var n = 0
    while !r.isAtEnd, n < 8 {
        n += 1
        let flags = r.byte()
        var message = r.chunk()
        if flags & 1 != 0 { message = fixUp(message, ue) }
        // The decoder alone, and its encoder as an oracle: what decodes must re-encode to
        // something that decodes to the same message.
        if let m = try? MIKEYDecoder.decode(message) {
            let again = m.encode()
            do {
                let m2 = try MIKEYDecoder.decode(again)
                if m2 != m { FuzzMain.fail("decode(encode(m)) != m") }
            } catch {
                FuzzMain.fail("re-encoded message does not decode: \(error)")
            }
        }
        switch ue.process(message) {
        case .success(.mtk(let mtk)):
            if mtk.kind == .download { _ = try? mtk.downloadKeys() }
            _ = mtk.mki
        default: break
        }
        if flags & 2 != 0 {
            _ = MSKVerificationMessage.verify(message, muk: muk, mskRAND: mskRAND, nafID: Array(nafID.utf8), bTID: Array(bTID.utf8),
                                              expectedCSBID: csbMSK, expectedTimestamp: 42)
        }
    }
}

// MARK: - Seeds

/// A message with its KEMAC Key data decrypted in place (for fix-up records).
func plaintextForm(_ bytes: [UInt8], psk: SecretBytes, rand: [UInt8]) -> [UInt8] {
    guard let m = try? MIKEYDecoder.decode(bytes), let kemac = m.kemac, let off = m.kemacEncryptedDataOffset, let ts = m.timestamp,
          let keys = try? MIKEYKeyDerivation.pskKeys(psk: psk, csbID: m.header.csbID, rand: rand),
          let pt = try? KEMACCrypto.crypt(kemac.encryptedData, keys: keys, csbID: m.header.csbID, timestamp: ts) else { return bytes }
    var out = bytes
    out.replaceSubrange(off..<(off + pt.count), with: pt)
    return out
}

func makeSeeds(_ w: SeedWriter) throws {
    let msk = SecretBytes(hexBytes("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"))
    func seed(_ name: String, mode: UInt8, _ records: [(UInt8, [UInt8])]) throws {
        var b = FuzzInputBuilder()
        b.byte(mode)
        for (f, m) in records { b.byte(f); b.chunk(m) }
        try w.write(name, b.bytes)
    }
    try seed("spec-9.1-msk", mode: 0, [(0, example91)])
    try seed("spec-9.1-then-9.2", mode: 0, [(0, example91), (0, example92)])
    try seed("spec-9.2-mtk", mode: 1, [(0, example92)])
    try seed("spec-9.3-verification", mode: 0, [(2, example93)])
    try seed("spec-9.1-plain", mode: 0, [(1, plaintextForm(example91, psk: muk, rand: mskRAND))])
    try seed("spec-9.2-plain", mode: 1, [(1, plaintextForm(example92, psk: msk, rand: mskRAND))])

    // More shapes from the product's builders: download MSK, solicited pull, invalidation,
    // download MTK, several MTKs in a row.
    let domain = KeyDomainID(bytes: [0x00, 0xF1, 0x10])!
    let mskID = MSKID(rawValue: 0x0001_0002)
    func mskMessage(_ content: MSKDeliveryBuilder.Content, _ service: MSKDeliveryBuilder.Service, ts: UInt32, id: MSKID = mskID, v: Bool = false) throws -> [UInt8] {
        try MSKDeliveryBuilder(muk: muk, nafID: nafID, bTID: bTID, keyDomainID: domain, mskID: id, content: content, service: service,
                               rand: mskRAND, csbID: csbMSK, timestamp: ts, verificationRequested: v).build()
    }
    func mtkMessage(_ id: UInt16, ts: UInt32, download: Bool = false) throws -> [UInt8] {
        let content: MTKDeliveryBuilder.Content = download ? .download(mtk: SecretBytes(hexBytes("00112233445566778899aabbccddeeff")))
            : .streaming(mtk: SecretBytes(hexBytes("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")), salt: SecretBytes(hexBytes("b0b1b2b3b4b5b6b7b8b9babbbcbd")))
        return try MTKDeliveryBuilder(msk: msk, mskRAND: mskRAND, keyDomainID: domain, mskID: mskID, mtkID: MTKID(id), content: content,
                                      csbID: CSBID(0x1122_3344), timestamp: ts).build()
    }
    let download = try mskMessage(.key(msk: msk, seqL: 0, seqU: 0xFFFE), .download, ts: 50)
    try seed("built-download-msk-and-mtk", mode: 0, [(0, download), (0, try mtkMessage(3, ts: 9, download: true))])
    try seed("built-download-mtk-plain", mode: 1, [(1, plaintextForm(try mtkMessage(4, ts: 10, download: true), psk: msk, rand: mskRAND))])
    try seed("built-solicited-pull", mode: 1, [(0, try mskMessage(.solicitedPull, .download, ts: 60, id: MSKID(rawValue: 0x0001_0000)))])
    try seed("built-invalidation", mode: 1, [(0, try mskMessage(.invalidation(msk: msk, seqL: 9, seqU: 1), .download, ts: 61))])
    try seed("built-mtk-sequence", mode: 1, [(0, try mtkMessage(6, ts: 8)), (0, try mtkMessage(7, ts: 9)), (0, try mtkMessage(7, ts: 10))])
    let streaming = SRTPPolicyParameters.mbmsRecommended(rocTransmissionRate: 1, authentication: .rccm3, srtcpEncryption: true)
    let s = try mskMessage(.key(msk: msk, seqL: 2, seqU: 100), .streaming(policy: streaming, policyNumber: 3, ssrc: 0xCAFE_BABE, roc: 7), ts: 70, v: true)
    try seed("built-streaming-msk-plain", mode: 0, [(1, plaintextForm(s, psk: muk, rand: mskRAND))])
}

// libFuzzer's entry point; `FuzzMain.run` hands it to the driver (or, where the toolchain links
// libFuzzer's own main, that main calls it directly).
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(FuzzMain.bytes(data, size))
    return 0
}
FuzzMain.run(LLVMFuzzerTestOneInput, makeSeeds: makeSeeds)
