import HamnConfiguration
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The self-fencing watchdog (HACMP's dead man switch, sbd's watchdog): the Linux watchdog API
/// on `/dev/watchdog`, or a FIFO or regular file as a stand-in for tests.
///
/// Each write feeds it; if no write comes within its timeout, the kernel resets the node. The
/// service feeds it from its own thread while it is healthy (`NodeService.feedWatchdog`), so a
/// killed, stopped or stuck engine stops feeding it. On a graceful stop it writes the magic
/// close character 'V' before closing, which disarms a real watchdog (unless the kernel was
/// built with `nowayout`); a service that ends any other way (killed, a fatal error) closes
/// it without 'V', and the node is reset.
public final class Watchdog: Sendable {
    public let device: String
    /// The open descriptor; nil once closed (feeds come from the service's thread, the close
    /// from the runner's).
    private let descriptor: Mutex<Int32?>

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens `configuration.device` for writing (without following a symbolic link, never
    /// creating or truncating a file); on a real watchdog sets its timeout.
    public init(_ configuration: ServiceConfiguration.Watchdog) throws(Failure) {
        device = configuration.device
        if let problem = ConfigurationLoader.watchdogDeviceProblem(device) { throw Failure(description: problem) }
        var info = stat()
        _ = lstat(device, &info)
        let isFIFO = info.st_mode & S_IFMT == S_IFIFO
        // A FIFO opens without waiting for a reader (none: ENXIO, said at once).
        let flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | (isFIFO ? O_NONBLOCK : 0) | O_APPEND
        let fd = open(device, flags)
        guard fd >= 0 else {
            throw Failure(description: "cannot open the watchdog \(device): \(String(cString: strerror(errno)))")
        }
        descriptor = Mutex(fd)
        if info.st_mode & S_IFMT == S_IFCHR {
            // WDIOC_SETTIMEOUT, _IOWR('W', 6, int): whole seconds.
            var seconds = Int32(configuration.timeout.rounded(.up))
            _ = ioctl(fd, 0xC004_5706, &seconds)
        }
    }

    /// One feed: a single byte. False when it could not be written (the caller logs it once).
    @discardableResult
    public func feed() -> Bool {
        descriptor.withLock { descriptor in
            guard let fd = descriptor else { return false }
            var byte: UInt8 = 0x31  // "1"
            return write(fd, &byte, 1) == 1
        }
    }

    /// Closes the device; with `disarm` (a graceful stop) writes 'V' first.
    public func close(disarm: Bool) {
        descriptor.withLock { descriptor in
            guard let fd = descriptor else { return }
            descriptor = nil
            if disarm {
                var byte: UInt8 = 0x56  // "V"
                _ = write(fd, &byte, 1)
            }
            closeDescriptor(fd)
        }
    }
}

private func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}
