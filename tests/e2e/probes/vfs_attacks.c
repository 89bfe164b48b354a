/* Attacks on the Sentry's file tree from an unprivileged caller (uid 1000,
 * no capabilities); each must fail. Prints one line per try.
 *
 * deleted-dirfd, deleted-cwd: a directory the caller held (as a dirfd, as
 *   its cwd) is removed and a symlink made under the name the kernel gives
 *   it ("<path> (deleted)"), pointing into a directory the caller may not
 *   search: a Sentry that found the directory again by that name, with its
 *   own credentials, would let the caller write there.
 * reopen-proc: a /proc file of a child the caller opened while the child
 *   was its own, reopened through /proc/self/fd/N after the child became a
 *   setuid-root program: a Sentry reopening it with its own credentials
 *   would hand the caller root's environment.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *res(int r) { return r < 0 ? strerror(errno) : "ok"; }

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    /* /priv is root's, 0700; /priv/pub/f is 0666 */
    int fd = open("/priv/pub/f", O_WRONLY);
    printf("direct %s\n", res(fd));

    mkdir("/home/u/d", 0755);
    int d = open("/home/u/d", O_RDONLY | O_DIRECTORY);
    rmdir("/home/u/d");
    symlink("/priv/pub", "/home/u/d (deleted)");
    fd = openat(d, "f", O_WRONLY | O_APPEND);
    printf("deleted-dirfd %s\n", res(fd));
    fd = openat(d, "new-a", O_WRONLY | O_CREAT, 0644);
    printf("deleted-dirfd-create %s\n", res(fd));

    mkdir("/home/u/c", 0755);
    chdir("/home/u/c");
    rmdir("/home/u/c");
    symlink("/priv/pub", "/home/u/c (deleted)");
    fd = open("f", O_WRONLY | O_APPEND);
    printf("deleted-cwd %s\n", res(fd));
    printf("deleted-cwd-mkdir %s\n", res(mkdir("new-b", 0755)));

    int go[2];
    pipe(go);
    pid_t child = fork();
    if (child == 0) {
        char c;
        read(go[0], &c, 1);
        char *argv[] = {"/suid-sleep", 0};
        char *envp[] = {"SECRET=root-only", 0};
        execve(argv[0], argv, envp);
        _exit(1);
    }
    char path[64], alias[64];
    snprintf(path, sizeof path, "/proc/%d/environ", child);
    int env = open(path, O_RDONLY);
    printf("environ-while-ours %s\n", res(env));
    write(go[1], "x", 1);
    for (int i = 0; i < 100; i++) { /* until the child runs as root */
        struct stat st;
        snprintf(alias, sizeof alias, "/proc/%d", child);
        if (stat(alias, &st) == 0 && st.st_uid == 0) break;
        usleep(20000);
    }
    printf("environ-direct %s\n", res(open(path, O_RDONLY)));
    snprintf(alias, sizeof alias, "/proc/self/fd/%d", env);
    printf("environ-reopen %s\n", res(open(alias, O_RDONLY)));
    kill(child, SIGKILL);
    waitpid(child, 0, 0);
    return 0;
}
