/* The Sentry remembers a thread's credentials between the calls it makes
 * for it; every change to them must reach it first. As root (with
 * containerd's capabilities), write, then change umask and ids, and write
 * again: each answer must follow the change at once.
 * Prints one line per step. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void try_create(const char *name, const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        printf("%s %s\n", name, strerror(errno));
        return;
    }
    close(fd);
    struct stat st;
    stat(path, &st);
    printf("%s ok %o\n", name, st.st_mode & 0777);
}

int main(void) {
    umask(022);
    try_create("root-022", "/etc/creds-a");
    umask(077);
    try_create("root-077", "/etc/creds-b");
    umask(0);
    try_create("root-000", "/tmp/creds-c");
    if (setgid(1000) != 0 || setuid(1000) != 0) {
        perror("setuid");
        return 1;
    }
    try_create("user-etc", "/etc/creds-d");
    try_create("user-tmp", "/tmp/creds-e");
    int fd = open("/etc/creds-a", O_WRONLY);
    printf("user-rewrite %s\n", fd < 0 ? strerror(errno) : "ok");
    return 0;
}
