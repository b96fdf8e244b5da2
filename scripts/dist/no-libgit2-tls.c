/* Linked only into the self-contained build, through the linker's --wrap (scripts/dist.sh).
 * Debian's libgit2 is built with mbedTLS, and git_libgit2_init() parses the whole CA bundle
 * (/etc/ssl/certs/ca-certificates.crt, ~140 certificates) before anything else: about 45 % of the
 * instructions of a whole `provision plan`. provision never speaks HTTPS through libgit2 (its
 * history is local; the fleet moves it as bundles over OpenSSH; a ROM download goes through the
 * host's libcurl), so libgit2's TLS is left out: initialising it does nothing, and a TLS stream or
 * a certificate location is refused with an error instead of connecting unverified. */
#include <git2/errors.h>

static int refused(void) {
    git_error_set_str(GIT_ERROR_SSL, "this provision build has no TLS in libgit2 (it never speaks HTTPS through it)");
    return -1;
}

int __wrap_git_mbedtls_stream_global_init(void) { return 0; }
int __wrap_git_mbedtls_stream_new(void **out, const char *host, const char *port) {
    (void)host, (void)port;
    if (out) *out = 0;
    return refused();
}
int __wrap_git_mbedtls_stream_wrap(void **out, void *in, const char *host) {
    (void)in, (void)host;
    if (out) *out = 0;
    return refused();
}
int __wrap_git_mbedtls__set_cert_location(const char *file, const char *path) {
    (void)file, (void)path;
    return refused();
}
