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
    size_t cap = 0;
    char *g = ferry_grow(NULL, &cap, 10, 8);
    CHECK(cap == 16, "grow from nothing: first doubled to fit, got %zu", cap);
    char *same = ferry_grow(g, &cap, 16, 8);
    CHECK(same == g && cap == 16, "no growth when it fits");
    g = ferry_grow(g, &cap, 17, 8);
    CHECK(cap == 32, "doubled, got %zu", cap);
    free(g);
    return check_summary();
}
