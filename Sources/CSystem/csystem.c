#define _GNU_SOURCE
#include <stdlib.h>
#include "csystem.h"

int provision_mkostemp(char *template_path, int flags) { return mkostemp(template_path, flags); }
