// Receiver: the UE side of TS 33.246 streaming over a capture (`mbms-gateway receive` and
// `mbms-gateway inspect`), and the oracle of the end-to-end tests.
//
//   KeyMaterial.swift     UEKeyState: MSK messages under the MUK (`keys deliver`) or MSKs of a
//                         `keys export-ue` JSON, both through MIKEY.UEKeyProcessor (ME 6.4.6 +
//                         MGV-F 6.5); PolicyMapping: MIKEY SP (RFC 3830 6.10.1, RFC 4771) -> SRTPPolicy.
//   CaptureReceiver.swift session discovery (MIKEY destination addresses, MKIs of held key groups),
//                         MTK messages -> SRTPSessionKeys -> one SRTPReceiver per flow, SRTP/SRTCP
//                         unprotect with RFC 4771 late join (frames held back to keep output order),
//                         the rule checks of ViolationKind, the plaintext capture.
//   ReceiveReport.swift   the --report JSON (contains MTKs and salts) and the printed summary.
//   Inspector.swift       keyless per-packet decoding of MIKEY, SRTP and SRTCP security fields.
//
// Specs: ../shared/spec/mikey.md 7.3 (UE rules), srtp.md 7 (MKI), rfc4771.md 4 (receiver).
