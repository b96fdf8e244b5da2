#ifndef PROVISION_CSYSTEM_H
#define PROVISION_CSYSTEM_H
// Linux calls Swift's Glibc module does not import: extended attributes, mkostemp, closing every
// inherited descriptor in a spawned child, and opening a path confined to a directory.
#include <spawn.h>
#include <sys/types.h>
#include <sys/xattr.h>

int provision_mkostemp(char *template_path, int flags);
/// Closes every descriptor from `lowest` up in the child (glibc's posix_spawn_file_actions_addclosefrom_np).
int provision_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);
/// Opens `relative` below the directory `rootfd` without ever leaving it and without following any
/// symlink on the way: openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS where the kernel has it
/// (5.6+), else one component at a time with O_NOFOLLOW. A symlink anywhere fails with ELOOP.
/// An empty `relative` opens the root itself.
int provision_open_beneath(int rootfd, const char *relative, int flags, mode_t mode);
/// O_PATH, which Swift's Glibc module does not export.
extern const int provision_O_PATH;

/// One HTTP(S) GET through the system's libcurl, loaded with dlopen on first use so that every
/// other command starts without libcurl and its TLS, Kerberos and LDAP libraries, and so a binary
/// built here runs on hosts whose libcurl differs. Redirects are not followed: the caller checks
/// each Location. Returns 0 when a response arrived (`*status`, `*body`, `*body_length` and, for a
/// redirect, `*location` are set; free them with free()); 1 when the body passed `max_bytes`
/// (announced or received); -1 on failure with the reason in `error`.
int provision_http_get(const char *url, long timeout_seconds, long long max_bytes, long *status, unsigned char **body,
                       size_t *body_length, char **location, char *error, size_t error_length);
/// syncfs(2): flushes the one file system holding `fd` (Swift's Glibc module does not import it).
int provision_syncfs(int fd);
/// The process's arguments as the kernel passed them (captured before main, so they are there even
/// where /proc is not mounted).
int provision_argc(void);
char **provision_argv(void);
#endif
