/* A setuid-root program: creates a file and prints whether root owns it. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    char p[64];
    snprintf(p, sizeof p, "/work/made-%d", getpid());
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror("made");
        return 1;
    }
    printf("%s\n", st.st_uid == 0 ? "root" : "stale");
    unlink(p);
    return 0;
}
