// Fuzz target 4 (issue 19 finding 12): the OMA DCF reader — box parsing ('ftyp', 'odrm',
// 'odhe'/'ohdr'/'obki', 'odda', 'mdri'/'odfs'), signature check and decryption (AES-128-CBC
// with RFC 2630 padding, AES-128-CTR, NULL), and the writer as an oracle: what parses must
// serialise to bytes that parse to the same DCF.
//
// Input: one octet choosing the keys (bit 0: dcf.json vector 2's derived keys, else vector 1's
// AES key), then the DCF file.
import CryptoCore
import DCF
import FuzzSupport

// ../shared/spec/vectors/dcf.json (test keys only).
let vector1 = DCFKeys(encryptionKey: SecretBytes(hexBytes("000102030405060708090a0b0c0d0e0f")),
                      authenticationKey: SecretBytes(hexBytes("02efe6e0e7717ca10a1cf500a546457f45c3fdcd")))
let vector2 = DCFKeys(encryptionKey: SecretBytes(hexBytes("0f68163ff2a51162b146343ce0948a5f")),
                      authenticationKey: SecretBytes(hexBytes("02efe6e0e7717ca10a1cf500a546457f45c3fdcd")))
let reader = DCFReader(maximumSize: 1 << 20)

func fuzzOne(_ input: [UInt8]) {
    var r = FuzzReader(input)
    let keys = r.byte() & 1 != 0 ? vector2 : vector1
    let bytes = r.rest()
    guard let parsed = try? reader.parse(bytes) else { return }
    _ = parsed.mbmsKeyID
    // Writer oracle: serialise what was parsed and parse it again.
    if let written = try? DCFWriter().serialize(parsed.file) {
        do {
            let again = try reader.parse(written)
            if again.file != parsed.file { FuzzMain.fail("parse(serialize(parse(x))).file != parse(x).file") }
        } catch {
            FuzzMain.fail("the DCF writer's output does not parse: \(error)")
        }
    }
    _ = try? reader.verifySignature(parsed, authenticationKey: keys.authenticationKey)
    _ = try? reader.decrypt(parsed, encryptionKey: keys.encryptionKey)
    _ = try? reader.open(bytes, keys: keys, requireSignature: false)
}

// MARK: - Seeds

func makeSeeds(_ w: SeedWriter) throws {
    let v = try SeedWriter.json("dcf.json")
    for (name, flag) in [("vector_1_plain_dcf_cbc", UInt8(0)), ("vector_2_mbms_dcf", UInt8(1))] {
        guard let hex = (v[name] as? [String: Any])?["dcf_hex"] as? String else { continue }
        try w.write("vector-\(name)", [flag] + hexBytes(hex))
    }
    // The writer's other shapes: CTR, NULL (the DCF-wrapped FDT), unsigned, 64-bit box sizes.
    let keyID = MBMSKeyID(keyDomainID: hexBytes("00f110"), mskID: 0x0001_0002, mtkID: 3)
    let keyInfo = keyID.map { OMABCASTKeyInfoBox(mbmsKeyID: $0) }
    let plain = Array("MBMS protected download test object\n".utf8)
    let shapes: [(String, DCFCipher, Bool, Set<FourCC>)] = [
        ("ctr-signed", .aes128CTR(initialCounter: Array(repeating: 7, count: 16)), true, []),
        ("null-signed", .null, true, []),
        ("cbc-unsigned-largesize", .aes128CBC(iv: Array(0..<16)), false, [.odrm, .odda]),
    ]
    for (name, cipher, signed, large) in shapes {
        let dcf = try DCFWriter(largeSizeBoxTypes: large).protect(plaintext: plain, contentType: "text/plain", contentID: "cid:fuzz@bmsc.example.org",
                                                                 keyInfo: keyInfo, cipher: cipher, encryptionKey: vector2.encryptionKey,
                                                                 authenticationKey: signed ? vector2.authenticationKey : nil)
        try w.write("built-\(name)", [1] + dcf)
    }
}

// libFuzzer's entry point; `FuzzMain.run` hands it to the driver (or, where the toolchain links
// libFuzzer's own main, that main calls it directly).
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(FuzzMain.bytes(data, size))
    return 0
}
FuzzMain.run(LLVMFuzzerTestOneInput, makeSeeds: makeSeeds)
