/* fl_mem: overflow-checked array allocation. */
#include "fl_mem.h"

#include <stdint.h>
#include <stdlib.h>

void *fl_malloc_array(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return malloc(n && size ? n * size : 1);
}
