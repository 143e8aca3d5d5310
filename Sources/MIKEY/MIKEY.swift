// MIKEY (RFC 3830, RFC 4563, RFC 4771 SP parameters) as TS 33.246 profiles it for MBMS.
//
// A pure codec and transform: no sockets, clocks or global state. Time (the TS counter),
// counters and randomness (CSB ID, RAND) are parameters. Map of the module:
//
//   wire structures   Header.swift, GeneralExtension.swift (Key ID), Timestamp.swift, SerialNumber.swift, RANDPayload.swift,
//                     IdentityPayload.swift, VerificationPayload.swift, SecurityPolicy.swift, SRTPPolicyParameters.swift, KEMAC.swift,
//                     KeyData.swift, MIKEYMessage.swift (message + decoder), Identifiers.swift
//   crypto            KeyDerivation.swift (RFC 3830 4.1.3 / 4.1.4 on CryptoCore.MIKEYPRF, KEMAC IV,
//                     AES-CM, HMAC), KEMACSealing.swift
//   BM-SC side        MSKDeliveryBuilder.swift (6.4.5.1, pull 6.3.2.2.4, invalidation 6.3.2.1B),
//                     MTKDeliveryBuilder.swift (6.4.5.3), VerificationMessage.swift (6.4.5.2)
//   UE side           UEKeyProcessor.swift (ME 6.4.6 + MGV-F 6.5)
//   errors            MIKEYError.swift (payload, byte offset, clause; never key bytes)
//
// Spec notes: ../shared/spec/mikey.md (ambiguities M-1..M-9 follow its recommendations).
