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
#endif
