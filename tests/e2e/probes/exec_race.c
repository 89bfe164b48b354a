/* A thread other than the leader execs a setuid-root program while the
 * leader keeps making served calls (mkdir, rmdir): the Sentry must not
 * remember the leader's credentials, from before the exec, for the new
 * program. Forks `n` such processes; each new program (this binary with
 * the argument "made") creates a file and prints whether it is root's. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void *exec_suid(void *delay) {
    usleep((useconds_t)(long)delay);
    char *argv[] = {"/suid-made", NULL};
    execv(argv[0], argv);
    _exit(127);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    setvbuf(stdout, 0, _IONBF, 0);
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            char d[64];
            snprintf(d, sizeof d, "/work/l%d", getpid());
            pthread_t t;
            pthread_create(&t, 0, exec_suid, (void *)(long)((i % 50) * 20));
            for (;;) {
                mkdir(d, 0700);
                rmdir(d);
            }
        }
        waitpid(p, 0, 0);
    }
    return 0;
}
