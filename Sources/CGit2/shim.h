#ifndef PROVISION_CGIT2_SHIM_H
#define PROVISION_CGIT2_SHIM_H
#include <git2.h>
#endif
