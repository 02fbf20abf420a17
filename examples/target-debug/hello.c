/* A tiny C program: compiled in a toolchain stage, shipped on a base without a shell. */
#include <gnu/libc-version.h>
#include <stdio.h>

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "world";
    printf("hello, %s! (C on glibc %s, no shell in this image, built by whittle)\n", name,
           gnu_get_libc_version());
    return 0;
}
