/* fl_mem: allocation of arrays whose size is counted, not trusted: the count times the element
 * size is checked for overflow before anything is allocated. */
#ifndef FL_MEM_H
#define FL_MEM_H

#include <stddef.h>

/* n elements of size bytes (uninitialised), or NULL on overflow or when memory runs out. An
 * empty array (n or size 0) is a valid pointer too, so NULL always means failure. */
void *fl_malloc_array(size_t n, size_t size);

#endif
