import CCorosync

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// libcpg and libvotequorum, opened with dlopen when the first CPG connection is made, not
/// linked: so the `hamn-events` executable (whose `validate`, `simulate` and `test` never
/// touch corosync) starts on a machine without them, and only the corosync transport needs them.
/// Each function is looked up with dlsym by its C name and typed by the pointer types shim.h
/// takes from the headers' declarations; the properties keep the C names, so the calls read as
/// the C API does.
// swift-format-ignore: AlwaysUseLowerCamelCase
struct CorosyncLibrary: @unchecked Sendable {  // immutable C function pointers
    /// A shared object this module opens, and the Debian package that installs it.
    struct Library: Sendable {
        var file: String
        var package: String
    }
    static let cpg = Library(file: "libcpg.so.4", package: "libcpg4")
    static let votequorum = Library(file: "libvotequorum.so.8", package: "libvotequorum8")

    let cpg_model_initialize: hamn_cpg_model_initialize_t
    let cpg_finalize: hamn_cpg_finalize_t
    let cpg_fd_get: hamn_cpg_fd_get_t
    let cpg_max_atomic_msgsize_get: hamn_cpg_max_atomic_msgsize_get_t
    let cpg_context_get: hamn_cpg_context_get_t
    let cpg_context_set: hamn_cpg_context_set_t
    let cpg_dispatch: hamn_cpg_dispatch_t
    let cpg_join: hamn_cpg_join_t
    let cpg_leave: hamn_cpg_leave_t
    let cpg_mcast_joined: hamn_cpg_mcast_joined_t
    let cpg_local_get: hamn_cpg_local_get_t

    let votequorum_initialize: hamn_votequorum_initialize_t
    let votequorum_finalize: hamn_votequorum_finalize_t
    let votequorum_dispatch: hamn_votequorum_dispatch_t
    let votequorum_fd_get: hamn_votequorum_fd_get_t
    let votequorum_getinfo: hamn_votequorum_getinfo_t
    let votequorum_trackstart: hamn_votequorum_trackstart_t
    let votequorum_context_get: hamn_votequorum_context_get_t
    let votequorum_context_set: hamn_votequorum_context_set_t

    /// The libraries, opened once per process; a failure is kept, so every later call throws it too.
    ///
    /// Throws `CPGError.libraryMissing` naming the file, its Debian package and dlerror's reason.
    static func shared() throws(CPGError) -> CorosyncLibrary {
        try loaded.get()
    }

    /// The libraries once opened (callbacks run inside a dispatch, after `shared()` succeeded).
    static var opened: CorosyncLibrary? { try? loaded.get() }

    private static let loaded = Result<CorosyncLibrary, CPGError> { () throws(CPGError) in try CorosyncLibrary() }

    private init() throws(CPGError) {
        let cpg = try Self.open(Self.cpg)
        cpg_model_initialize = try Self.function(cpg, Self.cpg, "cpg_model_initialize")
        cpg_finalize = try Self.function(cpg, Self.cpg, "cpg_finalize")
        cpg_fd_get = try Self.function(cpg, Self.cpg, "cpg_fd_get")
        cpg_max_atomic_msgsize_get = try Self.function(cpg, Self.cpg, "cpg_max_atomic_msgsize_get")
        cpg_context_get = try Self.function(cpg, Self.cpg, "cpg_context_get")
        cpg_context_set = try Self.function(cpg, Self.cpg, "cpg_context_set")
        cpg_dispatch = try Self.function(cpg, Self.cpg, "cpg_dispatch")
        cpg_join = try Self.function(cpg, Self.cpg, "cpg_join")
        cpg_leave = try Self.function(cpg, Self.cpg, "cpg_leave")
        cpg_mcast_joined = try Self.function(cpg, Self.cpg, "cpg_mcast_joined")
        cpg_local_get = try Self.function(cpg, Self.cpg, "cpg_local_get")

        let quorum = try Self.open(Self.votequorum)
        votequorum_initialize = try Self.function(quorum, Self.votequorum, "votequorum_initialize")
        votequorum_finalize = try Self.function(quorum, Self.votequorum, "votequorum_finalize")
        votequorum_dispatch = try Self.function(quorum, Self.votequorum, "votequorum_dispatch")
        votequorum_fd_get = try Self.function(quorum, Self.votequorum, "votequorum_fd_get")
        votequorum_getinfo = try Self.function(quorum, Self.votequorum, "votequorum_getinfo")
        votequorum_trackstart = try Self.function(quorum, Self.votequorum, "votequorum_trackstart")
        votequorum_context_get = try Self.function(quorum, Self.votequorum, "votequorum_context_get")
        votequorum_context_set = try Self.function(quorum, Self.votequorum, "votequorum_context_set")
    }

    /// dlopen of `library` for the life of the process (never closed: callbacks may run until exit).
    private static func open(_ library: Library) throws(CPGError) -> UnsafeMutableRawPointer {
        guard let handle = dlopen(library.file, RTLD_NOW | RTLD_LOCAL) else {
            throw .libraryMissing(library: library.file, package: library.package, reason: lastError())
        }
        return handle
    }

    /// The function `name` of `library`, as `F` (a C function pointer type from shim.h).
    private static func function<F>(_ handle: UnsafeMutableRawPointer, _ library: Library, _ name: String)
        throws(CPGError) -> F
    {
        guard let symbol = dlsym(handle, name) else {
            throw .libraryMissing(library: library.file, package: library.package, reason: lastError())
        }
        return unsafeBitCast(symbol, to: F.self)
    }

    private static func lastError() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }
}
