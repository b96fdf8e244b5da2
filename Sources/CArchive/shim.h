#ifndef PROVISION_CARCHIVE_SHIM_H
#define PROVISION_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
