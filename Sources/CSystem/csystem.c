#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "csystem.h"

int provision_mkostemp(char *template_path, int flags) { return mkostemp(template_path, flags); }

int provision_syncfs(int fd) { return syncfs(fd); }

int provision_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

const int provision_O_PATH = O_PATH;

static int openat2_available = 1;

static int open_by_components(int rootfd, const char *relative, int flags, mode_t mode) {
    char buffer[4096];
    size_t length = strlen(relative);
    if (length >= sizeof buffer) { errno = ENAMETOOLONG; return -1; }
    memcpy(buffer, relative, length + 1);
    /* Split into components, dropping empty ones. */
    char *parts[1024];
    int count = 0;
    for (char *cursor = buffer; *cursor;) {
        while (*cursor == '/') *cursor++ = '\0';
        if (!*cursor) break;
        if (count == 1024) { errno = ENAMETOOLONG; return -1; }
        parts[count++] = cursor;
        while (*cursor && *cursor != '/') cursor++;
    }
    int current = dup(rootfd);
    if (current < 0) return -1;
    if (count == 0) {
        int fd = openat(current, ".", flags | O_CLOEXEC, mode);
        int saved = errno;
        close(current);
        errno = saved;
        return fd;
    }
    for (int index = 0; index < count; index++) {
        if (strcmp(parts[index], "..") == 0 || strcmp(parts[index], ".") == 0) { close(current); errno = EXDEV; return -1; }
        if (index == count - 1) {
            int fd = openat(current, parts[index], flags | O_NOFOLLOW | O_CLOEXEC, mode);
            int saved = errno;
            close(current);
            errno = saved;
            return fd;
        }
        int next = openat(current, parts[index], O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) { int saved = errno; close(current); errno = saved; return -1; }
        struct stat info;
        if (fstat(next, &info) != 0) { int saved = errno; close(next); close(current); errno = saved; return -1; }
        close(current);
        if (!S_ISDIR(info.st_mode)) { close(next); errno = S_ISLNK(info.st_mode) ? ELOOP : ENOTDIR; return -1; }
        current = next;
    }
    close(current);
    errno = EINVAL;
    return -1;
}

int provision_open_beneath(int rootfd, const char *relative, int flags, mode_t mode) {
    while (*relative == '/') relative++;
    if (openat2_available) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = (unsigned long long)(flags | O_CLOEXEC);
        how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
        how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        long fd = syscall(SYS_openat2, rootfd, *relative ? relative : ".", &how, sizeof how);
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return (int)fd;
        if (errno == ENOSYS) openat2_available = 0;
    }
    return open_by_components(rootfd, relative, flags, mode);
}

/* argc and argv as the kernel gave them: glibc passes them to every .init_array function. The
 * statically linked Swift runtime otherwise reads its arguments from /proc/self/cmdline, which a
 * chroot or container without /proc does not have (provision would then see none). */
static int captured_argc;
static char **captured_argv;
static void capture_arguments(int argc, char **argv, char **envp) {
    (void)envp;
    captured_argc = argc;
    captured_argv = argv;
}
__attribute__((section(".init_array"), used)) static void (*const capture_arguments_entry)(int, char **, char **) = capture_arguments;

int provision_argc(void) { return captured_argc; }
char **provision_argv(void) { return captured_argv; }
