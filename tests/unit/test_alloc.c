/* test_alloc.c: the allocators of ferry/alloc.h do what the libc ones do
 * when memory is there (the abort when it is not is one fprintf and one
 * abort(), not worth a forked child that ASan would stop first). */
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "check.h"

int main(void)
{
    char *s = ferry_strdup("ferry");
    CHECK_STR(s, "ferry");
    free(s);
    s = ferry_strndup("ferryman", 5);
    CHECK_STR(s, "ferry");
    free(s);
    s = ferry_strndup("ab", 10);
    CHECK_STR(s, "ab");
    free(s);
    s = ferry_asprintf("%s %d", "port", 5222);
    CHECK_STR(s, "port 5222");
    free(s);
    int *z = ferry_calloc(4, sizeof *z);
    CHECK(z[0] == 0 && z[3] == 0, "calloc zeroes");
    z = ferry_realloc(z, 0);
    CHECK(z != NULL, "realloc to 0 keeps a block");
    free(z);
    void *p = ferry_malloc(0);
    CHECK(p != NULL, "malloc(0) is not taken for a failure");
    free(p);
    return check_summary();
}
