/// The release: `hamn-events --version` prints it with the wire format's version
/// (`WireFormat.version`: engines of one cluster must share it); scripts/build-deb names the
/// package after it.
let hamnEventsVersion = "0.14.0"
