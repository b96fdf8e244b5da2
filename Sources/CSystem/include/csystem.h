#ifndef PROVISION_CSYSTEM_H
#define PROVISION_CSYSTEM_H
// Linux calls Swift's Glibc module does not import: extended attributes, mkostemp, and closing
// every inherited descriptor in a spawned child.
#include <spawn.h>
#include <sys/types.h>
#include <sys/xattr.h>

int provision_mkostemp(char *template_path, int flags);
/// Closes every descriptor from `lowest` up in the child (glibc's posix_spawn_file_actions_addclosefrom_np).
int provision_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);
#endif
