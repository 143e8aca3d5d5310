import CryptoCore
import Foundation

/// Files that hold secrets (MIKEY MSK messages, UE exports, receiver reports with MTKs).
public enum SecretFile {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// Writes `bytes` to `path` so that no one else can ever read them there: a temporary file
    /// in the same directory, created with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, written,
    /// fsynced, then renamed over `path` (an existing file of any mode is replaced, never
    /// written through). A `path` that is a symbolic link, or not a regular file, is refused.
    public static func write(_ bytes: [UInt8], to path: String) throws(Failure) {
        var st = stat()
        if lstat(path, &st) == 0 {
            if st.st_mode & S_IFMT == S_IFLNK {
                throw Failure(path: path, reason: "is a symbolic link; refusing to write secrets through it; fix: give the path of a file (or a new name)")
            }
            if st.st_mode & S_IFMT != S_IFREG {
                throw Failure(path: path, reason: "exists and is not a regular file; fix: give the path of a file (or a new name)")
            }
        }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var suffix = (try? SecureRandom.bytes(count: 8)).map { Hex.encode($0) } ?? String(UInt64.random(in: 0...UInt64.max), radix: 16)
        var temporary = "", fd: Int32 = -1
        for _ in 0..<8 {
            temporary = (directory as NSString).appendingPathComponent(".\(url.lastPathComponent).\(suffix).tmp")
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 || errno != EEXIST { break }
            suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        }
        guard fd >= 0 else {
            throw Failure(path: path, reason: "cannot create a file in \(directory) (\(String(cString: strerror(errno)))); fix: check that the directory exists and is writable")
        }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        do {
            defer { close(fd) }
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { posixWrite(fd, $0.baseAddress! + done, $0.count - done) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw Failure(path: path, reason: "cannot write (\(String(cString: strerror(errno)))); fix: check free space") }
                done += n
            }
            guard fsync(fd) == 0 else { throw Failure(path: path, reason: "cannot sync (\(String(cString: strerror(errno)))); fix: check the file system") }
        }
        guard rename(temporary, path) == 0 else {
            throw Failure(path: path, reason: "cannot replace (\(String(cString: strerror(errno)))); fix: check that the directory is writable")
        }
        renamed = true
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}

/// `write(2)` (the enum's own `write` shadows it inside `SecretFile`).
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }
