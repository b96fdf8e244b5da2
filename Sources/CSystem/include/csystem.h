#ifndef PROVISION_CSYSTEM_H
#define PROVISION_CSYSTEM_H
// Linux calls Swift's Glibc module does not import: extended attributes and mkostemp.
#include <sys/types.h>
#include <sys/xattr.h>

int provision_mkostemp(char *template_path, int flags);
#endif
