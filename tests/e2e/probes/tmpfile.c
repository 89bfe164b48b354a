/* Files made with O_TMPFILE get a name with linkat(2) through
 * /proc/self/fd/N and AT_SYMLINK_FOLLOW, as on Linux; one made with
 * O_EXCL never does; and the name lands only where the caller may write. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void try_link(const char *what, int fd, const char *to) {
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    int r = linkat(AT_FDCWD, p, AT_FDCWD, to, AT_SYMLINK_FOLLOW);
    printf("%s %s\n", what, r == 0 ? "ok" : strerror(errno));
}

static int tmpfile_in(const char *dir, int excl) {
    int fd = open(dir, O_TMPFILE | O_RDWR | (excl ? O_EXCL : 0), 0640);
    if (fd < 0) {
        printf("open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (write(fd, "tmp\n", 4) != 4)
        printf("write: %s\n", strerror(errno));
    return fd;
}

int main(void) {
    umask(022);
    int fd = tmpfile_in("/data", 0);
    try_link("linked", fd, "/data/linked");
    try_link("again", fd, "/data/linked");
    try_link("excl", tmpfile_in("/data", 1), "/data/excl");
    mkdir("/closed", 0755);
    int roots = tmpfile_in("/tmp", 0);
    if (setgid(1000) || setuid(1000)) {
        printf("setuid: %s\n", strerror(errno));
        return 1;
    }
    int mine = tmpfile_in("/tmp", 0);
    try_link("user-closed", mine, "/closed/x");
    try_link("user-tmp", mine, "/tmp/mine");
    /* fs.protected_hardlinks: not its owner, and it may not write it */
    try_link("user-roots", roots, "/tmp/roots");
    return 0;
}
