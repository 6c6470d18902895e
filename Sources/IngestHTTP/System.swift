import CSystemShims

#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call and its errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32

    public var description: String { "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// The result of a non-blocking I/O call: `wouldBlock` is a value, not an error.
enum IOResult<T> {
    case processed(T)
    case wouldBlock
}

/// Thin wrappers over the socket calls the server uses. Each retries `EINTR` and reports
/// `EAGAIN`/`EWOULDBLOCK` as ``IOResult/wouldBlock``.
enum Posix {
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return .processed(n) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            throw SystemError(call: "read", errno: e)
        }
    }

    static func send(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        while true {
            let n = Glibc.send(fd, buffer.baseAddress, buffer.count, CSYS_MSG_NOSIGNAL)
            if n >= 0 { return .processed(n) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            throw SystemError(call: "send", errno: e)
        }
    }

    static func accept(_ fd: Int32) throws(SystemError) -> IOResult<Int32> {
        while true {
            let c = csys_accept4(fd, CSYS_SOCK_NONBLOCK | CSYS_SOCK_CLOEXEC)
            if c >= 0 { return .processed(c) }
            let e = Glibc.errno
            if e == EINTR || e == ECONNABORTED { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            throw SystemError(call: "accept4", errno: e)
        }
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Creates a non-blocking IPv4 listening socket; returns it and the bound port.
    static func listen(host: String, port: Int, backlog: Int32) throws(SystemError) -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | CSYS_SOCK_NONBLOCK | CSYS_SOCK_CLOEXEC, 0)
        if fd < 0 { throw SystemError(call: "socket", errno: Glibc.errno) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        if inet_pton(AF_INET, host, &addr.sin_addr) != 1 {
            Glibc.close(fd)
            throw SystemError(call: "inet_pton(\(host))", errno: EINVAL)
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if bound != 0 {
            let e = Glibc.errno
            Glibc.close(fd)
            throw SystemError(call: "bind(\(host):\(port))", errno: e)
        }
        if Glibc.listen(fd, backlog) != 0 {
            let e = Glibc.errno
            Glibc.close(fd)
            throw SystemError(call: "listen", errno: e)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: actual.sin_port)))
    }
}
