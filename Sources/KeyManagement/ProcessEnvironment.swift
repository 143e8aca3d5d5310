import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Secrets given through the environment (`MBMS_KEK`).
public enum ProcessEnvironment {
    /// Removes `name` from the environment and overwrites the bytes of its entry.
    ///
    /// `unsetenv` alone only drops the pointer from `environ`: the kernel serves
    /// /proc/<pid>/environ from the process's original environment block, which would still
    /// hold `NAME=value`. Overwriting the entry in place (it is that block, or glibc's copy
    /// after a `setenv`) removes it there too.
    public static func scrub(_ name: String) {
        let prefix = Array((name + "=").utf8CString.dropLast())   // without the terminating NUL
        var entries: [UnsafeMutablePointer<CChar>] = []
        if var p = currentEnvironment() {
            while let entry = p.pointee {
                if strncmp(entry, prefix, prefix.count) == 0 { entries.append(entry) }
                p += 1
            }
        }
        unsetenv(name)
        for e in entries { memset(e, 0, strlen(e)) }
    }

    private static func currentEnvironment() -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        #if canImport(Glibc)
        return environ
        #else
        return nil
        #endif
    }
}
