/* replay.c: a main() for the fuzz targets in builds without libFuzzer (gcc,
 * plain or ASan): runs LLVMFuzzerTestOneInput on every file of the
 * directories given (the seed corpus and the regressions), so that inputs
 * that once crashed stay tested on every build. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 4096, len = 0, n;
    uint8_t *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    /* A copy of exactly LEN bytes, as libFuzzer gives it, so that ASan sees
     * a read one past the end. */
    uint8_t *exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    size_t total = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            printf("%s: no such directory (nothing to replay)\n", argv[a]);
            continue;
        }
        char **names = NULL;
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.' || strcmp(e->d_name, "README") == 0)
                continue;
            names = realloc(names, (n + 1) * sizeof *names);
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
        if (n)
            qsort(names, n, sizeof *names, by_name);
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], names[i]);
            printf("replay %s\n", path);
            fflush(stdout);
            if (replay_file(path) != 0) {
                printf("cannot read %s\n", path);
                return 1;
            }
            total++;
            free(names[i]);
        }
        free(names);
    }
    printf("%zu passed, 0 failed\n", total);
    return 0;
}
