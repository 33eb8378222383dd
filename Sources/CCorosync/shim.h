// Corosync's client libraries: closed process groups (libcpg) and votequorum.
// apt: libcpg-dev libvotequorum-dev (they come with corosync's corotypes.h).
// Headers only: nothing links libcpg or libvotequorum. CorosyncTransport's CorosyncLibrary opens
// them with dlopen and finds the functions below with dlsym, typed by these pointer types, which
// are taken from the headers' own declarations (so a changed prototype fails to compile).
#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/votequorum.h>

typedef __typeof__(cpg_model_initialize) *hamn_cpg_model_initialize_t;
typedef __typeof__(cpg_finalize) *hamn_cpg_finalize_t;
typedef __typeof__(cpg_fd_get) *hamn_cpg_fd_get_t;
typedef __typeof__(cpg_max_atomic_msgsize_get) *hamn_cpg_max_atomic_msgsize_get_t;
typedef __typeof__(cpg_context_get) *hamn_cpg_context_get_t;
typedef __typeof__(cpg_context_set) *hamn_cpg_context_set_t;
typedef __typeof__(cpg_dispatch) *hamn_cpg_dispatch_t;
typedef __typeof__(cpg_join) *hamn_cpg_join_t;
typedef __typeof__(cpg_leave) *hamn_cpg_leave_t;
typedef __typeof__(cpg_mcast_joined) *hamn_cpg_mcast_joined_t;
typedef __typeof__(cpg_local_get) *hamn_cpg_local_get_t;

typedef __typeof__(votequorum_initialize) *hamn_votequorum_initialize_t;
typedef __typeof__(votequorum_finalize) *hamn_votequorum_finalize_t;
typedef __typeof__(votequorum_dispatch) *hamn_votequorum_dispatch_t;
typedef __typeof__(votequorum_fd_get) *hamn_votequorum_fd_get_t;
typedef __typeof__(votequorum_getinfo) *hamn_votequorum_getinfo_t;
typedef __typeof__(votequorum_trackstart) *hamn_votequorum_trackstart_t;
typedef __typeof__(votequorum_context_get) *hamn_votequorum_context_get_t;
typedef __typeof__(votequorum_context_set) *hamn_votequorum_context_set_t;
