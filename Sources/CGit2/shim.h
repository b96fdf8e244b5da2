#ifndef PROVISION_CGIT2_SHIM_H
#define PROVISION_CGIT2_SHIM_H
#include <git2.h>
#include <git2/sys/mempack.h>

/// git_libgit2_opts is variadic, so Swift cannot call it: the few options provision sets.
static inline int provision_git_enable_fsync(int enabled) {
    return git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, enabled);
}
#endif
