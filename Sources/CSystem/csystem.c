#define _GNU_SOURCE
#include <spawn.h>
#include <stdlib.h>
#include "csystem.h"

int provision_mkostemp(char *template_path, int flags) { return mkostemp(template_path, flags); }

int provision_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}
