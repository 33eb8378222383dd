#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The load of issue 15's overhead figure, against a service's web view on loopback: `/metrics`
/// fetched `rate` times a second (a new connection each time, as a conservative Prometheus), and
/// the live feed (`/events`) held open and read, as an open browser tab would. Two threads of
/// hamn-bench's own, plain sockets: no HTTP library in the measuring process.
///
/// With `namespace` (`hamn-bench cluster`, whose engines run in network namespaces), both
/// threads first enter that network namespace (setns(2) on /run/netns/NAME: a thread's own,
/// the rest of the process stays where it is), so that 127.0.0.1 is the engine's loopback.
final class ScrapeLoad: @unchecked Sendable {
    struct Counts {
        var scrapes = 0
        var failed = 0
        var feedMessages = 0
        var metricsBytes = 0
        /// Why a thread could not start its load (it could not enter the namespace).
        var problem: String?
    }

    private let port: UInt16
    private let rate: Double
    private let namespace: String?
    private var lock = pthread_mutex_t()
    private var counts = Counts()
    private var stopping = false
    private var threads: [pthread_t] = []

    init(port: UInt16, rate: Double, namespace: String? = nil) {
        self.port = port
        self.rate = rate
        self.namespace = namespace
        pthread_mutex_init(&lock, nil)
    }

    /// The port of a URL like `http://127.0.0.1:PORT/`; nil for any other host than loopback.
    static func loopbackPort(of url: String) -> UInt16? {
        let prefix = "http://127.0.0.1:"
        guard url.hasPrefix(prefix) else { return nil }
        return UInt16(url.dropFirst(prefix.count).prefix { $0.isNumber })
    }

    func start() {
        for loop in [scrapeLoop, feedLoop] {
            let body = { [self] in
                if let namespace, let problem = Self.enter(namespace: namespace) {
                    locked { counts.problem = problem }
                    return
                }
                loop()
            }
            let box = Unmanaged.passRetained(Body(body))
            var thread = pthread_t()
            pthread_create(
                &thread, nil,
                { raw in
                    let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
                    body.run()
                    return nil
                }, box.toOpaque())
            threads.append(thread)
        }
    }

    /// Stops both threads (within the socket time-out) and returns what they did.
    func stop() -> Counts {
        locked { stopping = true }
        for thread in threads { pthread_join(thread, nil) }
        threads = []
        return locked { counts }
    }

    // setns is left out of Swift's Glibc module (it needs _GNU_SOURCE): found by dlsym.
    private typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    private static let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET

    /// Moves the calling thread into network namespace `name`; nil when it did, else why not.
    private static func enter(namespace name: String) -> String? {
        guard let symbol = dlsym(nil, "setns") else { return "setns: not found" }
        let setns = unsafeBitCast(symbol, to: SetNS.self)
        let fd = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "open /run/netns/\(name): \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        guard setns(fd, cloneNewNet) == 0 else { return "setns \(name): \(String(cString: strerror(errno)))" }
        return nil
    }

    private final class Body: @unchecked Sendable {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return body()
    }

    private var isStopping: Bool { locked { stopping } }

    private func scrapeLoop() {
        let period = 1 / rate
        var next = ChildProcess.monotonicSeconds()
        while !isStopping {
            let answer = request("/metrics", close: true).flatMap { fd -> [UInt8]? in
                defer { close(fd) }
                return readAll(fd)
            }
            locked {
                if let answer, answer.starts(with: Array("HTTP/1.1 200".utf8)) {
                    counts.scrapes += 1
                    counts.metricsBytes = answer.count
                } else {
                    counts.failed += 1
                }
            }
            next += period
            let wait = next - ChildProcess.monotonicSeconds()
            if wait > 0 { sleepSeconds(wait) } else { next = ChildProcess.monotonicSeconds() }
        }
    }

    private func feedLoop() {
        while !isStopping {
            guard let fd = request("/events", close: false) else {
                sleepSeconds(0.2)
                continue
            }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            var tail: [UInt8] = []
            while !isStopping {
                let n = read(fd, &buffer, buffer.count)
                if n == 0 { break }
                if n < 0 {
                    if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                    break
                }
                // Count "\ndata:" across reads: keep the last five bytes of the previous read.
                let chunk = tail + buffer[0..<n]
                var found = 0
                let pattern = Array("\ndata:".utf8)
                if chunk.count >= pattern.count {
                    for i in 0...(chunk.count - pattern.count) where chunk[i] == 10 {
                        if Array(chunk[i..<(i + pattern.count)]) == pattern { found += 1 }
                    }
                }
                tail = Array(chunk.suffix(pattern.count - 1))
                locked { counts.feedMessages += found }
            }
            close(fd)
        }
    }

    /// A connected socket with the request sent, or nil. Reads time out after 0.5 s, so that the
    /// loops see `stop()`.
    private func request(_ path: String, close closing: Bool) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var timeout = timeval(tv_sec: 0, tv_usec: 500_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let text = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(closing ? "Connection: close\r\n" : "")\r\n"
        let bytes = Array(text.utf8)
        guard connected == 0, write(fd, bytes, bytes.count) == bytes.count else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Everything until the server closes (the request asked it to), or nil on a time-out of
    /// 5 s in all.
    private func readAll(_ fd: Int32) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let deadline = ChildProcess.monotonicSeconds() + 5
        while ChildProcess.monotonicSeconds() < deadline {
            let n = read(fd, &buffer, buffer.count)
            if n == 0 { return out }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return nil
            }
            out += buffer[0..<n]
        }
        return nil
    }
}
