/* Reference for mmlab's mlock-throughput: the same mmap, mlock, munlock, munmap in C, each call timed
 * with CLOCK_MONOTONIC right around it. Prints one JSON object. Built by benchmarks/run.py with gcc. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s BYTES\n", argv[0]); return 2; }
    size_t len = strtoull(argv[1], NULL, 10);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    long long t0 = now_ns();
    if (mlock(p, len)) { perror("mlock"); return 1; }
    long long t1 = now_ns();
    if (munlock(p, len)) { perror("munlock"); return 1; }
    long long t2 = now_ns();
    munmap(p, len);
    printf("{\"mlock_ns\": %lld, \"munlock_ns\": %lld}\n", t1 - t0, t2 - t1);
    return 0;
}
