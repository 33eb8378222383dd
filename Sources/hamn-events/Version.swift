/// The release: `hamn-events --version` prints it with the wire formats it speaks
/// (`WireFormat.versions`: a cluster speaks the newest one all its engines speak); scripts/build-deb names the
/// package after it.
let hamnEventsVersion = "0.14.0"
