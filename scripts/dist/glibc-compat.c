/* Linked only into the self-contained build, so that it runs on glibc 2.35 and newer (Ubuntu
 * 22.04, Pop!_OS 22.04, Debian 12, Fedora, Arch) although it is built on Debian 12's glibc 2.36:
 * - Debian's libarchive.a calls arc4random_buf and GCC 12's libstdc++.a (std::random_device)
 *   arc4random, new in glibc 2.36: these fill from getrandom(2) (glibc 2.25), as glibc's do;
 * - Foundation calls hypot and Swift's Glibc module hypotf, which glibc 2.35 versioned anew
 *   (for errno handling only): these call the original GLIBC_2.2.5 versions. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/random.h>

void arc4random_buf(void *buffer, size_t length) {
    unsigned char *next = buffer;
    while (length > 0) {
        ssize_t got = getrandom(next, length, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            abort(); /* no entropy at all: never hand out predictable bytes */
        }
        next += got;
        length -= (size_t)got;
    }
}

unsigned int arc4random(void) {
    unsigned int value;
    arc4random_buf(&value, sizeof value);
    return value;
}

double provision_hypot_2_2_5(double, double);
float provision_hypotf_2_2_5(float, float);
__asm__(".symver provision_hypot_2_2_5, hypot@GLIBC_2.2.5");
__asm__(".symver provision_hypotf_2_2_5, hypotf@GLIBC_2.2.5");
double hypot(double x, double y) { return provision_hypot_2_2_5(x, y); }
float hypotf(float x, float y) { return provision_hypotf_2_2_5(x, y); }
