// Corosync's client libraries: closed process groups (libcpg) and votequorum.
// apt: libcpg-dev libvotequorum-dev (they come with corosync's corotypes.h).
#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/votequorum.h>
